/* SPDX-License-Identifier: MIT */
/*
 * The backends part: what a dirty-tracking mechanism implements (struct
 * pmt_backend_ops), the tracker state it works on (struct pmtrack, whose
 * table of ranges the track part keeps), the software dirty bits shared by
 * the backends that keep their own (swbits.c), and the mappings of the
 * tracked process (vma.c).  Seen by the backends and by the part above
 * them, track; nothing else.
 */
#ifndef PMT_BACKEND_H
#define PMT_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <pmtrack/pmtrack.h>

#include "base.h"
#include "bitmap.h"
#include "probe.h"
#include "proc.h"

/* Default and stack-buffer size of a PAGEMAP_SCAN output vector. */
#define PMT_SCAN_BATCH_DEFAULT 512u

/* what PMTRACK_REARM_AUTO means (<pmtrack/pmtrack.h>, docs/benchmarks.md) */
#define PMT_REARM_DEFAULT PMTRACK_REARM_RANGE

/* --- collect requests, shared by the tracker and the backends ----------- */

struct pmt_collect;
typedef void (*pmt_emit_fn)(struct pmt_collect *c, uintptr_t start,
			    uintptr_t end);

/*
 * One collect over [start, end).  The backend reports written runs, in
 * ascending order, through emit(); it never reports more than pages_left
 * pages, and never more runs than runs_left can hold (a run adjacent to the
 * previous one costs none).  Sinks decrement both as they store.  SIZE_MAX
 * means unlimited.  The backend sets next to where it stopped scanning.
 */
struct pmt_collect {
	uintptr_t start, end;
	bool reset;
	size_t pages_left;
	size_t runs_left;
	uintptr_t next;
	pmt_emit_fn emit;
	void *sink;
	bool started;	    /* the backend was called: next is meaningful */
	uintptr_t last_end; /* end of the last emitted run, 0 if none */
	uint64_t pages;	    /* pages emitted so far */
};

/* --- the tracker ------------------------------------------------------- */

struct pmt_sb;

struct pmt_range {
	uintptr_t start, end;
	size_t align; /* largest VMA page size inside at watch time */
	bool shared;  /* some of it was MAP_SHARED at watch time */
	struct pmt_sb
		*sb; /* software dirty bits, for backends that keep them */
};

struct pmt_stats {
	atomic_uint_fast64_t collects, resets, pages_reported, scans, scan_ns;
	atomic_uint_fast64_t injections;
};

/* vma.c: the mappings of the tracked process */

/*
 * What a mapping maps: a file (shmem, memfd and shared anonymous memory
 * have one too, each MAP_SHARED|MAP_ANONYMOUS mmap() its own), and where
 * in it; the same however the kernel splits or merges the mapping.
 * Private anonymous memory has no file: all of it looks the same.
 */
struct pmt_vma_id {
	uint64_t ino; /* 0: private anonymous memory */
	unsigned int dev_major, dev_minor;
	uint64_t base; /* file offset minus address (0 without a file) */
	bool shared;   /* MAP_SHARED */
};

static inline bool pmt_vma_id_eq(const struct pmt_vma_id *a,
				 const struct pmt_vma_id *b)
{
	return a->ino == b->ino && a->dev_major == b->dev_major &&
	       a->dev_minor == b->dev_minor && a->base == b->base &&
	       a->shared == b->shared;
}

/* one mapping (VMA) */
struct pmt_vma {
	uintptr_t start, end;
	unsigned int prot; /* PROT_* */
	struct pmt_vma_id id;
};

struct pmt_vma_span {
	size_t min_page_size, max_page_size; /* over the VMAs of the span */
	unsigned int prot_all, prot_any;     /* PROT_* AND / OR over them */
	bool any_shared;		     /* some VMA is MAP_SHARED */
	struct pmt_vma_id id;		     /* of the first VMA */
	bool id_mixed;			     /* another VMA maps another */
};

struct pmtrack;

/*
 * vma.c: a cursor that looks mappings of t's target up, cheapest in
 * ascending order: one PROCMAP_QUERY call per lookup (Linux 6.11), else
 * one pass over /proc/PID/maps for all of them, read as it goes (a lookup
 * below what was passed reads it again).  What it says was true when it
 * was read; pmt_vma_iter_reset() makes the next lookup read afresh.
 */
struct pmt_vma_iter {
	struct pmtrack *t;
	bool no_query; /* PROCMAP_QUERY failed as unknown */
	FILE *maps;
	char *line;
	size_t cap;
	struct pmt_vma cur; /* the last line read */
	bool have, eof;
	uintptr_t passed; /* lines ending at or below it were dropped */
};

PMT_HIDDEN void pmt_vma_iter_init(struct pmt_vma_iter *it, struct pmtrack *t);
/* the mapping holding @addr, else the first above it: 0; -ENOMEM if there
 * is none at or above @addr; another -errno */
PMT_HIDDEN int pmt_vma_find(struct pmt_vma_iter *it, uintptr_t addr,
			    struct pmt_vma *out);
PMT_HIDDEN void pmt_vma_iter_reset(struct pmt_vma_iter *it);
/* reset, and free what it holds */
PMT_HIDDEN void pmt_vma_iter_end(struct pmt_vma_iter *it);

/*
 * What a collect or reset that re-arms the pages it took carries from one
 * piece to the next: [held_s, held_e), the span whose bits it took and has
 * not armed yet (the range's lock keeps every other clear bit armed, but
 * for fault handlers in flight), and a cursor for a backend that looks at
 * the mappings.
 */
struct pmt_arming {
	uintptr_t held_s, held_e;
	struct pmt_vma_iter vmas;
};

/*
 * Re-arm [s, e) after its bits were cleared.  Returns 0, PMT_ARM_DIRTY if
 * the pages stay writable (they are marked written again and still
 * reported), PMT_ARM_GONE if they are no longer mapped (not reported), or
 * -errno to stop the collect (the pages are marked written again).
 */
#define PMT_ARM_DIRTY 1
#define PMT_ARM_GONE 2
typedef int (*pmt_arm_fn)(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
			  uintptr_t e, struct pmt_arming *a);
/* un-protect [s, e) for a kernel write: 0 or -errno */
typedef int (*pmt_unarm_fn)(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
			    uintptr_t e);

/*
 * A backend.  The tracker checks arguments, keeps the range table and holds
 * t->lock (write for watch/unwatch, read otherwise) around every call but
 * open/close; "first" is the index of the first table entry that overlaps
 * the range.  A backend with an outer lock has it taken before t->lock.
 */
struct pmt_backend_ops {
	enum pmtrack_backend id;
	pthread_mutex_t *outer;
	int (*usable)(void); /* 1, 0, or -errno: the probes say */
	int (*open)(struct pmtrack *t);
	void (*close)(struct pmtrack *t);
	int (*watch)(struct pmtrack *t, struct pmt_range *r,
		     const struct pmt_vma_span *span);
	/* stop watching [s, e) of *r; *head and *tail (already holding the
	 * bounds of what stays, possibly empty) get their own state */
	int (*unwatch)(struct pmtrack *t, struct pmt_range *r, uintptr_t s,
		       uintptr_t e, struct pmt_range *head,
		       struct pmt_range *tail);
	int (*collect)(struct pmtrack *t, struct pmt_collect *c, size_t first);
	int (*reset)(struct pmtrack *t, uintptr_t s, uintptr_t e, size_t first);
	int (*first_written)(struct pmtrack *t, uintptr_t s, uintptr_t e,
			     size_t first, uintptr_t *addr);
	/* backends with software bits (swbits.c): re-protect pages after
	 * their bits were taken, and un-protect them for a kernel write
	 * (0 or -errno); NULL for the others */
	pmt_arm_fn arm;
	pmt_unarm_fn unarm;
	/* give [s, e) of *r the protection @prot without changing what is
	 * tracked (pmt_protect()); NULL: plain mprotect() does that */
	int (*protect)(struct pmtrack *t, struct pmt_range *r, uintptr_t s,
		       uintptr_t e, int prot);
};

PMT_HIDDEN extern const struct pmt_backend_ops pmt_pagemap_scan_ops;
PMT_HIDDEN extern const struct pmt_backend_ops pmt_soft_dirty_ops;
PMT_HIDDEN extern const struct pmt_backend_ops pmt_uffd_wp_ops;
PMT_HIDDEN extern const struct pmt_backend_ops pmt_mprotect_ops;

struct pmt_uw; /* uffd_wp.c */

struct pmtrack {
	const struct pmt_backend_ops *ops;
	unsigned int caps;
	pid_t pid;    /* creator; calls from a forked child are refused */
	pid_t target; /* tracked process: 0 for the creator */
	size_t page_size;
	unsigned int scan_batch;
	enum pmtrack_rearm rearm; /* never AUTO */

	int pagemap_fd;	   /* /proc/<target>/pagemap */
	int uffd;	   /* pagemap-scan, uffd-wp: the userfaultfd */
	/* pagemap-scan of another process: a userfaultfd of the target
	 * obtained beforehand (by a tracer that has it stopped), taken over
	 * by open; -1 to inject one */
	int uffd_given;
	/* its UFFDIO_API was made already (a fork event's userfaultfd,
	 * which inherits its parent's features and registrations) */
	bool uffd_ready;
	/* pagemap-scan: features asked of UFFDIO_API besides its own */
	uint64_t uffd_extra;
	/* pagemap-scan: watch keeps the registration the range has (a
	 * forked child's) without registering or re-arming (pmt_adopt()) */
	bool adopt;
	uint64_t inject_ns;  /* how long the injection stopped the target */
	bool uffd_user_only; /* the target's uffd has UFFD_USER_MODE_ONLY */
	int maps_fd;	   /* /proc/<target>/maps for PROCMAP_QUERY, or -1 */
	int clear_refs_fd; /* soft-dirty: /proc/<target>/clear_refs */
	bool smaps_only;   /* no PROCMAP_QUERY nor maps parse (tests) */
	struct pmtrack *sd_next; /* soft-dirty: list of all such trackers */
	struct pmt_uw *uw;	 /* uffd-wp: handler thread */

	pthread_rwlock_t lock;	  /* ranges: write for watch/unwatch */
	struct pmt_range *ranges; /* sorted, disjoint */
	size_t nranges, cap_ranges;

	struct pmt_stats st;
};

/*
 * vma.c: check that [start, end) is fully mapped in the tracked process,
 * and describe its mappings.  0, -ENOMEM if some page is not mapped, or
 * another -errno.
 */
PMT_HIDDEN int pmt_vma_check(struct pmtrack *t, uintptr_t start, uintptr_t end,
			     struct pmt_vma_span *out);

/* --- software dirty bits (swbits.c) -------------------------------------- */

enum pmt_sb_kind { PMT_SB_PLAIN, PMT_SB_MPROTECT, PMT_SB_UFFD };

/*
 * One watched range with a bit per base page, set by fault handlers
 * (mprotect, uffd-wp) or by folds of the kernel's soft-dirty bits.
 */
struct pmt_sb {
	uintptr_t start, end;
	size_t gran;	     /* bytes per protection unit (huge page size) */
	unsigned int pshift; /* log2 of the base page size */
	unsigned int prot;   /* mprotect: the protection to give back */
	/* mprotect: what the range mapped when watched, if one object
	 * throughout (else id_known is false) */
	struct pmt_vma_id id;
	bool id_known;
	enum pmt_sb_kind kind;
	const void *owner; /* the tracker */
	int slot;	   /* index in the lookup table, -1 if unpublished */
	size_t nwords;
	/*
	 * soft-dirty, and uffd-wp where it sweeps by reading pagemap (before
	 * 6.7): pages that were filled at the last look (fold, sweep).  A
	 * page filled then and not now was dropped in between (MADV_DONTNEED
	 * and the like): its content changed with no write to see, so it
	 * reads as written.  What "filled" means is each backend's: for
	 * soft-dirty, data of the page's own (present and exclusive, or in
	 * swap); for uffd-wp, any entry (present or swap).  nwords long.
	 */
	_Atomic uint64_t *filled;
	/* mprotect: pages whose protection the owner set with pmt_protect()
	 * to deny writes (a write fault there is not ours), nwords long;
	 * and the grace period that lets pmt_protect() wait for handlers
	 * that looked at them before a change (mprotect.c) */
	_Atomic uint64_t *deny;
	_Atomic unsigned int epoch;
	_Atomic long inflight[2];
	/* held by RESET collects, resets and prepares of this range, so
	 * that besides fault handlers only the holder clears bits and
	 * changes arming there (swbits.c) */
	pthread_mutex_t lock;
	_Atomic uint64_t bits[];
};

PMT_HIDDEN struct pmt_sb *pmt_sb_new(const struct pmtrack *t,
				     enum pmt_sb_kind kind, uintptr_t s,
				     uintptr_t e, size_t gran);
/* unpublish (if published) and free; NULL is nothing */
PMT_HIDDEN void pmt_sb_free(struct pmt_sb *sb);
/* the table's generation: odd while pmt_sb_publish() or _unpublish()
 * changes it, and different after any change (a lookup that missed with
 * the same even value before and after saw a table that did not change) */
PMT_HIDDEN unsigned int pmt_sb_gen(void);
/* make @sb findable by pmt_sb_get(), and undo that (waits for users) */
PMT_HIDDEN int pmt_sb_publish(struct pmt_sb *sb);
PMT_HIDDEN void pmt_sb_unpublish(struct pmt_sb *sb);
/* lock-free and async-signal-safe: the published range of @kind (and of
 * @owner unless NULL) holding @addr, pinned until pmt_sb_put(slot) */
PMT_HIDDEN struct pmt_sb *pmt_sb_get(enum pmt_sb_kind kind, const void *owner,
				     uintptr_t addr, int *slot);
PMT_HIDDEN void pmt_sb_put(int slot);
/* does a published range of @kind overlap [s, e)? */
PMT_HIDDEN bool pmt_sb_overlaps(enum pmt_sb_kind kind, uintptr_t s,
				uintptr_t e);
/* [s, e) clipped to @sb and widened to whole protection units */
PMT_HIDDEN void pmt_sb_unit_span(const struct pmt_sb *sb, uintptr_t s,
				 uintptr_t e, uintptr_t *a, uintptr_t *b);
/* set / clear the bits of [s, e) (clipped to the range); signal-safe */
PMT_HIDDEN void pmt_sb_mark(struct pmt_sb *sb, uintptr_t s, uintptr_t e);
PMT_HIDDEN void pmt_sb_clear(struct pmt_sb *sb, uintptr_t s, uintptr_t e);
/* the same for the deny bits (mprotect), and: is any of [s, e) denied? */
PMT_HIDDEN void pmt_sb_deny(struct pmt_sb *sb, uintptr_t s, uintptr_t e,
			    bool on);
PMT_HIDDEN bool pmt_sb_denied(const struct pmt_sb *sb, uintptr_t s,
			      uintptr_t e);
/* is some page of [s, e) not denied? */
PMT_HIDDEN bool pmt_sb_undenied(const struct pmt_sb *sb, uintptr_t s,
				uintptr_t e);
/* is every page of [s, e) (clipped to the range) written or in
 * [held_s, held_e), and none denied? */
PMT_HIDDEN bool pmt_sb_all_written(const struct pmt_sb *sb, uintptr_t s,
				   uintptr_t e, uintptr_t held_s,
				   uintptr_t held_e);
/* set or clear the filled bit of the page at @page; returns the old one */
PMT_HIDDEN bool pmt_sb_set_filled(struct pmt_sb *sb, uintptr_t page, bool on);
/* set the filled bits of [s, e) (clipped to the range) */
PMT_HIDDEN void pmt_sb_fill(struct pmt_sb *sb, uintptr_t s, uintptr_t e);

/* mark in @sb the pages of [s, e) that PAGEMAP_SCAN on t->pagemap_fd finds
 * in every category of @cat (soft-dirty; uffd-wp's sweep for WRITTEN) */
PMT_HIDDEN int pmt_sb_mark_scan(struct pmtrack *t, struct pmt_sb *sb,
				uintptr_t s, uintptr_t e, uint64_t cat);

/* arm [s, e) of @sb, whose bits the caller cleared, with t->ops->arm,
 * piece by piece where it must */
PMT_HIDDEN int pmt_sb_arm(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
			  uintptr_t e);
/* collect / first written / reset over the software bits of the ranges,
 * re-arming with t->ops->arm */
PMT_HIDDEN int pmt_sb_collect(struct pmtrack *t, struct pmt_collect *c,
			      size_t first);
PMT_HIDDEN int pmt_sb_first_written(struct pmtrack *t, uintptr_t s, uintptr_t e,
				    size_t first, uintptr_t *addr);
PMT_HIDDEN int pmt_sb_reset(struct pmtrack *t, uintptr_t s, uintptr_t e,
			    size_t first);
/* un-protect whole units over [s, e) with t->ops->unarm and mark them
 * written: pmtrack_prepare_kernel_write() */
PMT_HIDDEN int pmt_sb_prepare(struct pmtrack *t, uintptr_t s, uintptr_t e,
			      size_t first);
/* give *head and *tail software bits of their own, carrying r's over;
 * with @published, handlers may be using r->sb meanwhile */
PMT_HIDDEN int pmt_sb_split(struct pmtrack *t, struct pmt_range *r,
			    struct pmt_range *head, struct pmt_range *tail,
			    bool published);

#endif /* PMT_BACKEND_H */

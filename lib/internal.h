/* SPDX-License-Identifier: MIT */
/* Private declarations shared by the library's translation units. */
#ifndef PMTRACK_INTERNAL_H
#define PMTRACK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pmtrack/pmtrack.h>

#define PMT_HIDDEN __attribute__((visibility("hidden")))

#define pmt_offsetofend(T, m) (offsetof(T, m) + sizeof(((T *)0)->m))

/*
 * An options struct from the caller is valid if it is NULL, or its size is
 * at least a size_t and every byte the library does not know is zero.
 */
PMT_HIDDEN bool pmt_opts_valid(const void *opts, size_t known, size_t user_sz);

#define PMT_OPTS_VALID(o, type)                                                \
	(!(o) ||                                                               \
	 pmt_opts_valid((o), pmt_offsetofend(struct type, type##__last_field), \
			(o)->sz))
#define PMT_OPTS_GET(o, f, dflt)                                               \
	(((o) && (o)->sz >= pmt_offsetofend(__typeof__(*(o)), f)) ? (o)->f     \
								  : (dflt))

/* Default and stack-buffer size of a PAGEMAP_SCAN output vector. */
#define PMT_SCAN_BATCH_DEFAULT 512u

/* probe.c: supported userfaultfd features (UFFDIO_API answer), or -errno. */
PMT_HIDDEN int pmt_uffd_features(uint64_t *features);

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

struct pmt_range {
	uintptr_t start, end;
	size_t align; /* largest VMA page size inside at watch time */
};

struct pmt_stats {
	atomic_uint_fast64_t collects, resets, pages_reported, scans, scan_ns;
};

struct pmtrack {
	enum pmtrack_backend backend;
	pid_t pid; /* creator; calls from a forked child are refused */
	size_t page_size;
	unsigned int scan_batch;

	int pagemap_fd; /* /proc/self/pagemap */
	int uffd;	/* async write-protect userfaultfd */
	int maps_fd;	/* /proc/self/maps for PROCMAP_QUERY, or -1 */

	pthread_rwlock_t lock;	  /* ranges: write for watch/unwatch */
	struct pmt_range *ranges; /* sorted, disjoint */
	size_t nranges, cap_ranges;

	struct pmt_stats st;
};

/* pagemap_scan.c: the PAGEMAP_SCAN + async uffd-wp backend */
PMT_HIDDEN int pmt_ps_open(struct pmtrack *t);
PMT_HIDDEN void pmt_ps_close(struct pmtrack *t);
PMT_HIDDEN int pmt_ps_watch(struct pmtrack *t, uintptr_t start, uintptr_t end);
PMT_HIDDEN int pmt_ps_unwatch(struct pmtrack *t, uintptr_t start,
			      uintptr_t end);
PMT_HIDDEN int pmt_ps_collect(struct pmtrack *t, struct pmt_collect *c);
PMT_HIDDEN int pmt_ps_reset(struct pmtrack *t, uintptr_t start, uintptr_t end);
PMT_HIDDEN int pmt_ps_first_written(struct pmtrack *t, uintptr_t start,
				    uintptr_t end, uintptr_t *addr);

/* vma.c: the mappings of the calling process */
struct pmt_vma_span {
	size_t min_page_size, max_page_size; /* over the VMAs of the span */
};
PMT_HIDDEN int pmt_vma_check(struct pmtrack *t, uintptr_t start, uintptr_t end,
			     struct pmt_vma_span *out);

PMT_HIDDEN uint64_t pmt_now_ns(void);

static inline void pmt_stat_add(atomic_uint_fast64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

#endif /* PMTRACK_INTERNAL_H */

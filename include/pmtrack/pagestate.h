/* SPDX-License-Identifier: MIT */
/*
 * libpmtrack page-state maps: for every page of a range, a mapping or a whole
 * address space (of the calling process or of another one), is it in RAM,
 * in swap, file-backed, the shared zero page, mapped by this process alone,
 * huge, written?
 *
 * One pass over /proc/PID/maps and the PAGEMAP_SCAN ioctl (Linux 6.7+), or
 * reads of /proc/PID/pagemap where the ioctl is missing.  The kernel's own
 * answers have holes, which this API fills or reports:
 *
 *  - Shared memory (memfd, tmpfs files, MAP_SHARED|MAP_ANONYMOUS, SysV shm)
 *    that was swapped out, or that this process never faulted in, has no
 *    page-table entry: pagemap says nothing, the same as for a page that was
 *    never populated.  For those pages the backing object is consulted
 *    (cachestat(2) on Linux 6.5+ counts its pages in the page cache and in
 *    swap, once per gap; lseek(SEEK_DATA/SEEK_HOLE) finds where they are
 *    when a gap holds both, mincore(2) tells residency, cachestat the
 *    swap cache).  A page fallocate(2) allocated and nobody wrote yet takes
 *    RAM and is PMTRACK_PAGE_PRESENT (SEEK_DATA and mincore call it a hole:
 *    before 6.5 it is one here too, and a page written to swap but still in
 *    the swap cache is in RAM and reads as PMTRACK_PAGE_PRESENT, although
 *    smaps counts it as swap).  The object
 *    is reached through /proc/PID/map_files (needs CAP_SYS_ADMIN or
 *    CAP_CHECKPOINT_RESTORE) or through an open descriptor of the process
 *    (/proc/PID/fd; a memfd the process keeps open, for instance).  Where it
 *    cannot be reached, such pages are PMTRACK_PAGE_UNSURE, never guessed
 *    (for the calling process mincore(2) on its own mapping still tells
 *    pages in RAM; and with no swap area enabled nothing can be in swap, so
 *    a page not in RAM is a hole).
 *  - The kernel reports userfaultfd write-protect markers, guard-region
 *    markers, poison markers (UFFDIO_POISON), migration and hwpoison
 *    entries as "swapped".  Guard markers are PMTRACK_PAGE_GUARD (Linux
 *    6.15+).  With CAP_SYS_ADMIN the swap type in the pagemap entry tells
 *    every PTE marker from swap.  Without it, a uffd-wp marker looks like a
 *    write-protected page in swap, and such a page in a private mapping is
 *    PMTRACK_PAGE_UNSURE (a uffd-wp marker is never PMTRACK_PAGE_SWAPPED);
 *    a poison marker, which carries no uffd-wp bit, reads as swapped.
 *  - A migration entry (a page being moved between NUMA nodes or compacted,
 *    for microseconds) is reported as swapped, as the kernel does.
 *
 * Thread safety: a pmtrack_pstate handle may be used by one thread at a
 * time; different handles are independent.  The scanned process keeps
 * running: each answer is what the kernel said while the call ran.
 */
#ifndef PMTRACK_PAGESTATE_H
#define PMTRACK_PAGESTATE_H

#include <stddef.h>
#include <stdint.h>

#include <pmtrack/pmtrack.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Page states, one bit each; a page may have several (PRESENT|FILE|HUGE).
 * A page with none is mapped but holds nothing yet (or is not mapped).
 */
enum pmtrack_page_state {
	/* in RAM: mapped by the process, or (shared memory) in the backing
	 * object's page cache although this process has not mapped it */
	PMTRACK_PAGE_PRESENT = 1u << 0,
	/* in swap (for shared memory: the object's page is in swap, possibly
	 * still cached in RAM by the swap cache) */
	PMTRACK_PAGE_SWAPPED = 1u << 1,
	/* not private anonymous memory: a page-cache page of a file, or a
	 * shared-memory page (what the kernel calls a file page) */
	PMTRACK_PAGE_FILE = 1u << 2,
	/* mapped to the kernel's shared zero page (reads as zeroes, costs no
	 * memory) */
	PMTRACK_PAGE_ZERO = 1u << 3,
	/* present and mapped by this process only (pagemap bit 56); a page
	 * shared copy-on-write with a fork, or mapped by another process, is
	 * not */
	PMTRACK_PAGE_EXCLUSIVE = 1u << 4,
	/* part of a PMD-mapped transparent huge page or of a hugetlb page */
	PMTRACK_PAGE_HUGE = 1u << 5,
	/* written since its write tracking was last reset; reported only in
	 * mappings the kernel tracks (PMTRACK_MAP_TRACKED) */
	PMTRACK_PAGE_WRITTEN = 1u << 6,
	/* swapped out or never populated: the kernel's answer fits both and
	 * nothing else could tell (see the top of this header) */
	PMTRACK_PAGE_UNSURE = 1u << 7,
	/* a guard region (madvise MADV_GUARD_INSTALL): access faults */
	PMTRACK_PAGE_GUARD = 1u << 8,
};
#define PMTRACK_PAGE_NSTATES 9
#define PMTRACK_PAGE_ALL ((1u << PMTRACK_PAGE_NSTATES) - 1)

/* Kinds of mapping, in struct pmtrack_mapping.flags. */
#define PMTRACK_MAP_SHARED (1u << 0)  /* MAP_SHARED ('s' in maps) */
#define PMTRACK_MAP_ANON (1u << 1)    /* no file: heap, stack, MAP_ANONYMOUS */
#define PMTRACK_MAP_SHMEM (1u << 2)   /* shared memory (tmpfs/shmem object) */
#define PMTRACK_MAP_HUGETLB (1u << 3) /* hugetlbfs or MAP_HUGETLB */
/* the kernel tracks writes here with async userfaultfd write-protect (a
 * pagemap-scan tracker watches it): PMTRACK_PAGE_WRITTEN is meaningful;
 * known only once the mapping was scanned */
#define PMTRACK_MAP_TRACKED (1u << 4)
/* not scannable ([vsyscall], [vvar], PFN mappings): no page states */
#define PMTRACK_MAP_SPECIAL (1u << 5)
/* a page the process maps here is mapped elsewhere too: its pagemap
 * exclusive bit (56) is 0, because another process maps it, another mapping
 * of this process does, it is shared copy-on-write with a fork, or it is
 * the zero page.  Says nothing of shared-memory pages the process does not
 * map (present only in the backing object, or PMTRACK_PAGE_UNSURE); set by
 * a scan that asked for PMTRACK_PAGE_EXCLUSIVE, cleared by
 * pmtrack_pstate_maps() */
#define PMTRACK_MAP_MAPPED_ELSEWHERE (1u << 6)

/* One line of /proc/PID/maps. */
struct pmtrack_mapping {
	uint64_t start, end; /* [start, end), page-aligned */
	uint64_t offset;     /* file offset of start (0 for anonymous) */
	uint64_t inode; /* inode of the mapped file or object; 0 if none */
	/* device of the mapped file or object, as maps shows it (0:0 for
	   anonymous memory) */
	unsigned int dev_major, dev_minor;
	unsigned int prot;  /* PROT_READ | PROT_WRITE | PROT_EXEC */
	unsigned int flags; /* PMTRACK_MAP_* */
	/* path, "[heap]", "/memfd:name (deleted)", ... or "" */
	const char *name;
};

/* A run of pages [start, end) of one mapping with the same states. */
struct pmtrack_page_run {
	uint64_t start, end; /* addresses in the process, page-aligned */
	unsigned int states; /* PMTRACK_PAGE_* (never 0) */
	unsigned int map;    /* index into pmtrack_pstate_maps() */
};

/* Page counts over a range, per state. */
struct pmtrack_page_counts {
	size_t sz; /* sizeof(struct pmtrack_page_counts), set by the caller */
	uint64_t pages; /* mapped pages looked at */
	/* pages with each state, indexed by bit number
	 * (PMTRACK_PAGE_SWAPPED is index 1) */
	uint64_t state[PMTRACK_PAGE_NSTATES];
	size_t : 0;
};
#define pmtrack_page_counts__last_field state

struct pmtrack_pstate; /* opaque */

/* pmtrack_pstate_opts.flags */
/* read /proc/PID/pagemap even where PAGEMAP_SCAN works (what kernels
 * before 6.7 get; for tests and comparisons) */
#define PMTRACK_PSTATE_PAGEMAP_READ (1u << 0)
/* do not consult shared-memory objects: shared-memory pages this process
 * has not mapped are PMTRACK_PAGE_UNSURE unless residency (mincore, for the
 * calling process only) or the absence of swap settles them */
#define PMTRACK_PSTATE_NO_OBJECTS (1u << 1)

struct pmtrack_pstate_opts {
	size_t sz; /* sizeof(struct pmtrack_pstate_opts) */
	int pid;   /* process to look at: 0 (or getpid()) for the caller */
	unsigned int flags; /* PMTRACK_PSTATE_* */
	size_t : 0;
};
#define pmtrack_pstate_opts__last_field flags

/**
 * pmtrack_pstate_new() - open a page-state scanner on a process.
 * @opts: NULL for the calling process with defaults
 * @out: receives the handle, freed with pmtrack_pstate_free()
 *
 * Another process needs ptrace-read access to it (/proc/PID/pagemap).
 * The handle stays bound to the address space it opened: after the process
 * execs or exits, scans fail with -ESRCH or find nothing; open a new one.
 *
 * Return: 0; -EINVAL for bad opts; -ESRCH if the process does not exist
 * or has no memory to show: a kernel thread, a zombie, or a process whose
 * main thread exited while other threads run on (open one of those by its
 * thread id); -EACCES or -EPERM without access (which is what unprivileged
 * callers may get for a task with no memory too); -ENOMEM.
 */
PMTRACK_API int pmtrack_pstate_new(const struct pmtrack_pstate_opts *opts,
				   struct pmtrack_pstate **out);

/** pmtrack_pstate_free() - close @ps; NULL is a no-op. */
PMTRACK_API void pmtrack_pstate_free(struct pmtrack_pstate *ps);

/**
 * pmtrack_pstate_known() - the states a scanner can report.
 * @ps: the scanner
 *
 * A state outside the set is never reported, whatever the pages hold:
 * ZERO needs PAGEMAP_SCAN or CAP_SYS_ADMIN, HUGE and WRITTEN need
 * PAGEMAP_SCAN, GUARD Linux 6.15+.
 *
 * Return: the PMTRACK_PAGE_* states @ps can report on this kernel with
 * the caller's privileges.
 */
PMTRACK_API unsigned int pmtrack_pstate_known(const struct pmtrack_pstate *ps);

/**
 * pmtrack_pstate_uses_scan() - how a scanner asks the kernel.
 * @ps: the scanner
 *
 * Return: 1 if @ps asks PAGEMAP_SCAN, 0 if it reads /proc/PID/pagemap.
 */
PMTRACK_API int pmtrack_pstate_uses_scan(const struct pmtrack_pstate *ps);

/**
 * pmtrack_pstate_maps() - read the process's mappings (/proc/PID/maps) now.
 * @maps, @n: receive the table, sorted by address; it belongs to @ps and
 *	stays valid until the next pmtrack_pstate_maps() or
 *	pmtrack_pstate_free().  Scans only refine the flags: they add
 *	PMTRACK_MAP_TRACKED and PMTRACK_MAP_MAPPED_ELSEWHERE, and a shared
 *	mapping whose object turns out to live on hugetlbfs trades
 *	PMTRACK_MAP_SHMEM for PMTRACK_MAP_HUGETLB.
 *
 * The scans below use the table of the last call, reading it first if
 * there is none yet.
 *
 * Return: 0; -ESRCH if the process is gone; -ENOMEM; -EIO for a maps line
 * this library cannot parse.
 */
PMTRACK_API int pmtrack_pstate_maps(struct pmtrack_pstate *ps,
				    const struct pmtrack_mapping **maps,
				    size_t *n);

/**
 * pmtrack_pstate_runs() - page states of [@start, @end) as runs.
 * @start, @end: page-aligned; anything, including 0 .. UINT64_MAX for the
 *	whole address space (only mapped pages are reported)
 * @want: the PMTRACK_PAGE_* states to compute; others are left out of the
 *	runs (EXCLUSIVE costs a pagemap read of the present pages, and the
 *	swap states of shared memory cost object lookups; leave out what you
 *	do not need)
 * @runs: array of *@count entries
 * @count: in: capacity of @runs (> 0); out: runs stored
 * @next: optional; receives where the next call should start: @end when
 *	everything was reported, else the first page not reported (the array
 *	was full)
 *
 * Runs are in ascending order, one mapping each; pages with no state among
 * @want (and not-mapped addresses) are left out.  Runs of equal states may
 * be split.
 *
 * Return: 0; -EINVAL (unaligned, @end < @start, @count 0, unknown bits in
 * @want); -ESRCH; -ENOMEM; -EIO if the kernel answered something
 * inconsistent.
 */
PMTRACK_API int pmtrack_pstate_runs(struct pmtrack_pstate *ps, uint64_t start,
				    uint64_t end, unsigned int want,
				    struct pmtrack_page_run *runs,
				    size_t *count, uint64_t *next);

/**
 * pmtrack_pstate_bitmaps() - page states of [@start, @end) as one bitmap
 * per state.
 * @bits: indexed by state bit number; for each state in @want, an array of
 *	((@end - @start) / page size + 63) / 64 words the library zeroes and
 *	fills: page i of the range is bit (i % 64) of word i / 64.  Entries
 *	for states not in @want are ignored (may be NULL).
 *
 * Return: as pmtrack_pstate_runs(); -EINVAL also for an empty range or a
 * NULL array for a wanted state.
 */
PMTRACK_API int
pmtrack_pstate_bitmaps(struct pmtrack_pstate *ps, uint64_t start, uint64_t end,
		       unsigned int want,
		       uint64_t *const bits[PMTRACK_PAGE_NSTATES]);

/**
 * pmtrack_pstate_count() - number of pages in each state over
 * [@start, @end) (0 .. UINT64_MAX for the whole address space).
 * @c: c->sz must be set (PMTRACK_OPTS()); filled on success
 *
 * Return: as pmtrack_pstate_runs().
 */
PMTRACK_API int pmtrack_pstate_count(struct pmtrack_pstate *ps, uint64_t start,
				     uint64_t end, unsigned int want,
				     struct pmtrack_page_counts *c);

#ifdef __cplusplus
}
#endif

#endif /* PMTRACK_PAGESTATE_H */

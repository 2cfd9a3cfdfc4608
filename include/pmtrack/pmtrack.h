/* SPDX-License-Identifier: MIT */
/*
 * libpmtrack: which pages of memory were written since you last asked.
 *
 * Conventions used throughout this header:
 *  - Functions that can fail return 0 (or a documented non-negative value) on
 *    success and a negative errno on failure.  errno itself is not used.
 *  - Objects are opaque and created by a pmtrack_*_new() function that takes
 *    an out-parameter; the matching pmtrack_*_free() accepts NULL.
 *  - Options and statistics structs start with `size_t sz`.  Initialise
 *    them with PMTRACK_OPTS(), which zeroes the whole struct and sets sz; a
 *    NULL opts pointer means "all defaults".  A struct from a newer header
 *    whose extra fields are all zero is accepted; non-zero unknown fields
 *    give -EINVAL.  <pmtrack/common.h> has the rules for structs of other
 *    sizes, statistics included.
 *  - Addresses and lengths given to the tracker must be multiples of the
 *    granularity (pmtrack_granularity(), the system page size).
 */
#ifndef PMTRACK_PMTRACK_H
#define PMTRACK_PMTRACK_H

#include <stddef.h>
#include <stdint.h>

#include <pmtrack/common.h>
#include <pmtrack/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * pmtrack_version() - the library's version string.
 *
 * The version of the library the program runs with, which may be newer
 * than the PMTRACK_VERSION_* of the header it was compiled with.
 *
 * Return: a static string such as "0.1.0".  Thread-safe.
 */
PMTRACK_API const char *pmtrack_version(void);

/* ------------------------------------------------------------------------ */
/* Feature probes                                                            */
/* ------------------------------------------------------------------------ */

enum pmtrack_feature {
	/* ioctl(PAGEMAP_SCAN) on /proc/self/pagemap reports a present page
	   (6.7+) */
	PMTRACK_FEAT_PAGEMAP_SCAN = 1,
	/* userfaultfd write-protect in async mode: a write to a protected page
	 * is resolved by the kernel and the page's uffd-wp bit is cleared
	 * (6.7+) */
	PMTRACK_FEAT_UFFD_WP_ASYNC,
	/* synchronous userfaultfd write-protect: a write to a protected page
	 * blocks and is delivered as a UFFD_PAGEFAULT_FLAG_WP message (5.7+) */
	PMTRACK_FEAT_UFFD_WP,
	/* soft-dirty: after clear_refs "4", a write sets bit 55 in pagemap.
	 * Needs CONFIG_MEM_SOFT_DIRTY (x86_64, s390, ppc64; not arm64). */
	PMTRACK_FEAT_SOFT_DIRTY,
	/* PAGEMAP_SCAN categories: the kernel accepts the PAGE_IS_* bit.
	 * PAGE_IS_SOFT_DIRTY also requires PMTRACK_FEAT_SOFT_DIRTY, since a
	 * kernel without soft-dirty accepts the bit but never reports it. */
	PMTRACK_FEAT_PAGE_IS_WPALLOWED,
	PMTRACK_FEAT_PAGE_IS_WRITTEN,
	PMTRACK_FEAT_PAGE_IS_FILE,
	PMTRACK_FEAT_PAGE_IS_PRESENT,
	PMTRACK_FEAT_PAGE_IS_SWAPPED,
	PMTRACK_FEAT_PAGE_IS_PFNZERO,
	PMTRACK_FEAT_PAGE_IS_HUGE,
	PMTRACK_FEAT_PAGE_IS_SOFT_DIRTY,
	PMTRACK_FEAT_PAGE_IS_GUARD,
	PMTRACK_FEAT_MAX, /* one past the last feature; not a feature */
};

/**
 * pmtrack_probe() - can this process use a kernel feature?
 * @feat: the feature
 * @opts: reserved, must be NULL
 *
 * Each answer comes from exercising the feature (e.g. write-protecting a
 * scratch page, writing it and checking the kernel saw the write), never
 * from version numbers or config files.  Definite answers are cached for
 * the life of the process; a probe that failed is retried on the next call.
 *
 * Probing PMTRACK_FEAT_SOFT_DIRTY (and PAGE_IS_SOFT_DIRTY) writes "4" to
 * /proc/self/clear_refs, which clears the soft-dirty bits of the whole
 * process: do not probe it while something else relies on them.
 *
 * Return: 1 if usable, 0 if not, -EINVAL for an unknown @feat or non-NULL
 * @opts, another negative errno if the probe itself failed unexpectedly.
 * Thread-safe.
 */
PMTRACK_API int pmtrack_probe(enum pmtrack_feature feat, const void *opts);

/**
 * pmtrack_feature_name() - short name of a kernel feature.
 * @feat: the feature, as for pmtrack_probe()
 *
 * Return: a static string ("pagemap-scan", "uffd-wp-async", ...), or NULL
 * for an unknown @feat.  Thread-safe.
 */
PMTRACK_API const char *pmtrack_feature_name(enum pmtrack_feature feat);

/* ------------------------------------------------------------------------ */
/* Tracker                                                                   */
/* ------------------------------------------------------------------------ */

struct pmtrack; /* opaque tracker handle */

enum pmtrack_backend {
	PMTRACK_BACKEND_AUTO = 0, /* the best backend the probes allow */
	/* PAGEMAP_SCAN + async userfaultfd write-protect (Linux 6.7+) */
	PMTRACK_BACKEND_PAGEMAP_SCAN = 1,
	/* soft-dirty bits: /proc/PID/pagemap bit 55 + clear_refs "4" (needs
	 * CONFIG_MEM_SOFT_DIRTY; not on arm64).  Resets are process-wide. */
	PMTRACK_BACKEND_SOFT_DIRTY = 2,
	/* synchronous userfaultfd write-protect with a handler thread (5.14+;
	 * shmem and hugetlb need 5.19+) */
	PMTRACK_BACKEND_UFFD_WP = 3,
	/* mprotect(PROT_READ) + a SIGSEGV handler: works everywhere */
	PMTRACK_BACKEND_MPROTECT = 4,
};

/**
 * pmtrack_backend_name() - the name of a backend.
 * @b: the backend
 *
 * The names are those the PMTRACK_BACKEND environment variable takes.
 *
 * Return: a static string: "pagemap-scan", "soft-dirty", "uffd-wp",
 * "mprotect" ("auto" for PMTRACK_BACKEND_AUTO), or NULL if @b is unknown.
 * Thread-safe.
 */
PMTRACK_API const char *pmtrack_backend_name(enum pmtrack_backend b);

/*
 * Guarantees a tracker gives; pmtrack_caps() returns them for a tracker and
 * pmtrack_opts.require asks for them.  What every backend guarantees is not
 * listed: writes made through the tracked process's own mapping of watched
 * memory are reported (at least once) by the next collect, in ascending
 * order, at page granularity.  No capability extends that to writes that
 * reach the same memory another way (another mapping, another process's
 * mapping, write(2) to the file): no backend sees those (see
 * pmtrack_watch(), "What a tracker sees").
 *
 * PMTRACK_CAP_ATOMIC_RESET: a collect with PMTRACK_COLLECT_RESET loses no
 *	write made by threads running during the collect: a racing write is
 *	in this report (the page is reported and the write landed before the
 *	collect returned) or in the next one.  Without it (soft-dirty), writes
 *	made during a RESET collect, pmtrack_reset() or pmtrack_watch() (which
 *	resets the kernel's bits too), on any soft-dirty tracker of the
 *	process, may be lost: stop the writers (or the target process) around
 *	those calls.
 * PMTRACK_CAP_RANGE_RESET: a reset touches only the pages asked for.
 *	Without it (soft-dirty) the kernel clears the bits of the whole target
 *	process; the library folds the state of every other watched page (of
 *	every soft-dirty tracker on that process in this program) into a
 *	software bitmap first, so it is not lost, but anything else in the
 *	process relying on soft-dirty bits (another library, CRIU) loses them.
 * PMTRACK_CAP_KERNEL_WRITES: system calls writing into watched memory
 *	(read(2), recv(2), ..., and process_vm_writev(2) by another process)
 *	succeed and are reported without further ado.  Without it
 *	(mprotect; uffd-wp when the process may not trap kernel faults)
 *	such calls fail with EFAULT on an armed page: call
 *	pmtrack_prepare_kernel_write() on the buffer first.
 *	KVM guest RAM needs this capability: KVM writes guest memory
 *	through get_user_pages(), so with mprotect or user-mode-only
 *	userfaultfd KVM_RUN fails with EFAULT, or a write the kernel
 *	emulates is lost.  A VMM sets .require =
 *	PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_ATOMIC_RESET (and .rearm =
 *	PMTRACK_REARM_WRITTEN); one such tracker on the guest RAM mapping
 *	sees the guest's writes and the VMM's own (device emulation)
 *	writes, which KVM's dirty log never sees (docs/kvm.md).
 * PMTRACK_CAP_FILE_MAPPINGS: page-cache file mappings (MAP_SHARED or
 *	MAP_PRIVATE of a regular file) can be watched.  Anonymous memory,
 *	shmem/memfd and transparent huge pages work with every backend.
 * PMTRACK_CAP_HUGETLB: hugetlb mappings can be watched (not on soft-dirty:
 *	clear_refs does not re-arm hugetlb pages, so writes after the first
 *	reset would be missed).
 * PMTRACK_CAP_OTHER_PROCESS: pmtrack_opts.pid may name another process
 *	(pagemap-scan where the library can inject into it, soft-dirty).
 * PMTRACK_CAP_NO_SIGNALS: the backend does not install a signal handler
 *	(mprotect installs one for SIGSEGV).
 * PMTRACK_CAP_SHARED_EXACT: in MAP_SHARED memory (shmem, memfd, shared
 *	anonymous, page cache) a collect reports exactly the pages written
 *	through the watched mapping since their last reset, across swap-out
 *	and swap-in, MADV_DONTNEED and huge-page splits.  It does not mean
 *	that every change to the shared memory is seen: a write through
 *	another mapping of it (a second mmap() of the memfd, a forked
 *	child's inherited mapping, another process) or by write(2) to its
 *	file is not reported, on any backend, although the watched mapping
 *	reads the new data (see pmtrack_watch()).  Without it (soft-dirty,
 *	whose bits live in page-table entries the kernel drops then) a range
 *	that was shared when watched is reported written in full by every
 *	collect: never a lost write, but no precision.  Such a report holds
 *	the pages other writers changed too, only because it holds every
 *	page.
 */
#define PMTRACK_CAP_ATOMIC_RESET (1u << 0)
#define PMTRACK_CAP_RANGE_RESET (1u << 1)
#define PMTRACK_CAP_KERNEL_WRITES (1u << 2)
#define PMTRACK_CAP_FILE_MAPPINGS (1u << 3)
#define PMTRACK_CAP_OTHER_PROCESS (1u << 4)
#define PMTRACK_CAP_NO_SIGNALS (1u << 5)
#define PMTRACK_CAP_HUGETLB (1u << 6)
#define PMTRACK_CAP_SHARED_EXACT (1u << 7)
#define PMTRACK_CAP_ALL ((1u << 8) - 1)

/*
 * How a RESET collect re-arms (write-protects again) the pages it reports:
 * pmtrack_opts.rearm.  It matters on pagemap-scan alone.
 *
 * PMTRACK_REARM_RANGE: one re-protecting PAGEMAP_SCAN (PM_SCAN_WP_MATCHING)
 *	walks the whole collected range, reporting and re-protecting the
 *	written pages as it goes.  The kernel announces that protection
 *	change to secondary MMUs (mmu notifiers) for the whole range walked,
 *	clean pages included: KVM, for one, then drops its mappings of every
 *	page of the range, and a guest whose RAM is watched faults again on
 *	every page it touches after each collect (measured on guest RAM: a
 *	read-mostly guest spent 184 ms per round re-faulting 18,437 pages,
 *	against 87 ms and 4,100 faults with PMTRACK_REARM_WRITTEN:
 *	pmtrack-bench-kvm, docs/kvm.md).
 * PMTRACK_REARM_WRITTEN: a PAGEMAP_SCAN that does not re-protect finds the
 *	written runs first, a batch at a time, and a re-protecting scan over
 *	each run (a span) reports and re-protects its written pages: only
 *	written pages are announced to secondary MMUs, and KVM keeps its
 *	mappings of every clean page (runs are not merged across clean
 *	pages: under KVM a re-protecting call costs an invalidation with a
 *	TLB flush, 21 us a run in pmtrack-bench-kvm, and each clean page
 *	it would cover a re-fault of about 11 us if the guest uses it, so
 *	merging pays for gaps of a page at most).  The
 *	system calls are one search per 512 runs found and one per written
 *	run: proportional to what was written, never to the range.  What is
 *	reported is what those span scans saw: a page written between the
 *	two scans inside a span is in this report, one outside every span
 *	stays written and is in the next one.  It costs a second walk of the
 *	written spans: see docs/benchmarks.md.
 * PMTRACK_REARM_AUTO (0): the library's choice, PMTRACK_REARM_RANGE: for
 *	a process without a secondary MMU WRITTEN gains nothing and costs
 *	more per collect wherever pages were written: 1.2-1.4x RANGE for one
 *	sequential run or all pages, 1.7x for 0.1% of 256 MiB written at
 *	random and up to 21x for 10-50% at random (a call per run), the same
 *	with none written
 *	(docs/benchmarks.md).  A VMM (or anything else whose watched memory
 *	a hypervisor or device maps) should ask for PMTRACK_REARM_WRITTEN.
 *	pmtrack_rearm() tells which mode a tracker uses.
 *
 * Both modes report the same pages, give the same guarantees and leave the
 * same pages armed: PMTRACK_CAP_ATOMIC_RESET (no write made during a
 * RESET collect is lost: it is in this report or the next), two concurrent
 * RESET collects over the same pages report a written page at most once
 * between them, a collect stopped by a full output re-protects nothing
 * past what it reported (and @next says where it stopped), and an error
 * leaves in the output every page reported and re-protected before it.
 * pmtrack_reset() follows the mode too (a reset re-arms the written pages,
 * by definition of clean: in WRITTEN mode it re-protects only the spans
 * holding them); pmtrack_watch() arms the whole range in both modes.
 * (A page dropped by MADV_DONTNEED from private memory outside every
 * span, then read, is not reported after a WRITTEN pmtrack_reset() either:
 * checked on Linux 6.18.)
 *
 * On uffd-wp and mprotect a RESET collect re-protects the reported pages
 * alone in every mode; on soft-dirty the kernel resets the whole process
 * (PMTRACK_CAP_RANGE_RESET): the option changes nothing there.
 */
enum pmtrack_rearm {
	PMTRACK_REARM_AUTO = 0,	   /* the library's default (above) */
	PMTRACK_REARM_WRITTEN = 1, /* re-protect only the written runs */
	/* one re-protecting scan over the whole collected range */
	PMTRACK_REARM_RANGE = 2,
};

/* Largest pmtrack_opts.scan_batch. */
#define PMTRACK_SCAN_BATCH_MAX 65536u

struct pmtrack_opts {
	size_t sz; /* sizeof(struct pmtrack_opts) */
	/* backend to use; PMTRACK_BACKEND_AUTO (0) picks the best one (see
	 * pmtrack_new()) */
	enum pmtrack_backend backend;
	/* regions asked of the kernel per PAGEMAP_SCAN call: 1 ..
	 * PMTRACK_SCAN_BATCH_MAX; 0 means the default (512, the kernel's
	 * internal buffer on x86_64).  Results never depend on it. */
	unsigned int scan_batch;
	/* PMTRACK_CAP_* the tracker must give; AUTO skips backends that lack
	 * one, a forced backend that lacks one fails with -EOPNOTSUPP */
	unsigned int require;
	/* process whose memory is tracked: 0 (or getpid()) for the caller.
	 * Another process needs a backend with PMTRACK_CAP_OTHER_PROCESS
	 * (pagemap-scan on x86_64, soft-dirty) and ptrace access to it: see
	 * pmtrack_new(), "Another process".  Addresses given to the other
	 * calls are then the target's. */
	int pid;
	/* how RESET collects and pmtrack_reset() re-arm pages on
	 * pagemap-scan (enum pmtrack_rearm, before this struct in
	 * <pmtrack/pmtrack.h>); 0 is AUTO, a value not in the enum is
	 * -EINVAL */
	enum pmtrack_rearm rearm;
	size_t : 0;
};
#define pmtrack_opts__last_field rearm

/**
 * pmtrack_new() - create a tracker.
 * @opts: optional (NULL for defaults)
 * @out: receives the tracker, to be freed with pmtrack_free()
 *
 * Backend selection.  A backend named in @opts is used or the call fails.
 * With PMTRACK_BACKEND_AUTO, the environment variable PMTRACK_BACKEND
 * (pagemap-scan, soft-dirty, uffd-wp, mprotect or auto) names the backend
 * instead; an unknown value fails with -EINVAL.  Otherwise the first
 * backend in the order pagemap-scan, soft-dirty, uffd-wp, mprotect whose
 * probes pass and which gives every capability in @opts->require is used.
 * Note that soft-dirty, picked on
 * kernels without PAGEMAP_SCAN that have it, lacks
 * PMTRACK_CAP_ATOMIC_RESET: require that capability if writers run during
 * resets.  pmtrack_backend() and pmtrack_caps() tell what was chosen.
 *
 * Another process (@opts->pid).  pagemap-scan gives the same
 * capabilities as for the caller, PMTRACK_CAP_ATOMIC_RESET included: one
 * system call, userfaultfd(), is run inside the target (every thread is
 * stopped with PTRACE_SEIZE + PTRACE_INTERRUPT, which sends no signal,
 * for a fraction of a millisecond: pmtrack_stats.inject_stop_ns; a
 * blocking call Linux does not restart after a stop, such as
 * sigtimedwait() or epoll_wait(), returns EINTR: see signal(7)),
 * its descriptor is taken with pidfd_getfd() and closed in the target
 * before any thread runs again.  So this tracker holds the only
 * reference: whatever the target does (fork, exec, close_range) it never
 * holds one, and when the tracker is freed or its process dies, even by
 * SIGKILL, the target's memory is as if it had never been tracked.  Not
 * covered: a tracker killed while pmtrack_new() itself runs (the
 * injection is done by a process forked for it, which finishes it, but
 * that is known to fail now and then: the target may be left traced by
 * that process, or the next injection fail).  The
 * userfaultfd gets UFFD_USER_MODE_ONLY where the target may not have one
 * without (vm.unprivileged_userfaultfd = 0 and no CAP_SYS_PTRACE); kernel
 * writes into its memory are still reported.  It needs ptrace access
 * (PTRACE_MODE_ATTACH: same uid and not yama-restricted, or
 * CAP_SYS_PTRACE): without it pmtrack_new() fails with -EPERM or -EACCES
 * rather than fall back; it fails with -EPERM too if the caller already
 * ptraces the target (see <pmtrack/process.h>, which does).  A target
 * whose seccomp filter kills userfaultfd() dies of it.  Where the
 * architecture has no injection (only x86_64 has one so far) or the
 * kernel no PAGEMAP_SCAN, AUTO picks soft-dirty, which needs only
 * ptrace-read access.  The tracker follows the address space the target
 * had at pmtrack_new(): after an exec calls fail with -ESRCH.
 *
 * A tracker serves the process that created it: in a child after fork(),
 * calls on it fail with -ECHILD.  Every call except pmtrack_free() may be
 * made from any number of threads at once; watch and unwatch serialise
 * with each other and with collects, collects run in parallel (on
 * soft-dirty, every call on any soft-dirty tracker is serialised).
 *
 * Return: 0; -EINVAL for bad arguments or options (an unknown
 * @opts->rearm, say, or PMTRACK_BACKEND);
 * -EOPNOTSUPP if the requested backend (or, with AUTO, every backend) is
 * unusable here or lacks a required capability; -ESRCH, -EACCES, -EPERM
 * if another process cannot be tracked; -ENOMEM, -EMFILE, ... if a
 * resource could not be had.  *@out is NULL on failure.
 */
PMTRACK_API int pmtrack_new(const struct pmtrack_opts *opts,
			    struct pmtrack **out);

/**
 * pmtrack_free() - stop tracking every watched range and free @t.
 *
 * Unreported writes are discarded.  The memory itself is untouched.  NULL
 * is a no-op.  No other call may be running on @t.
 */
PMTRACK_API void pmtrack_free(struct pmtrack *t);

/**
 * pmtrack_backend() - the backend a tracker uses.
 * @t: the tracker
 *
 * Return: the backend pmtrack_new() chose, never PMTRACK_BACKEND_AUTO.
 * Thread-safe.
 */
PMTRACK_API enum pmtrack_backend pmtrack_backend(const struct pmtrack *t);

/**
 * pmtrack_caps() - the guarantees a tracker gives.
 * @t: the tracker
 *
 * The capabilities are described in <pmtrack/pmtrack.h> next to their
 * PMTRACK_CAP_* definitions; pmtrack_opts.require asks for them.
 *
 * Return: the PMTRACK_CAP_* bits @t gives; 0 for NULL.  Thread-safe.
 */
PMTRACK_API unsigned int pmtrack_caps(const struct pmtrack *t);

/**
 * pmtrack_rearm() - how a tracker's RESET collects re-arm pages.
 * @t: the tracker
 *
 * The mode is reported whatever the backend, although only pagemap-scan
 * acts on it (see enum pmtrack_rearm).
 *
 * Return: PMTRACK_REARM_WRITTEN or PMTRACK_REARM_RANGE (what
 * PMTRACK_REARM_AUTO became); PMTRACK_REARM_AUTO for NULL.  Thread-safe.
 */
PMTRACK_API enum pmtrack_rearm pmtrack_rearm(const struct pmtrack *t);

/**
 * pmtrack_granularity() - bytes per reported page: the system page size.
 * @t: the tracker
 *
 * Reports are always in these units.  A written hugetlb page is reported as
 * all of its base pages; a transparent huge page is split by the kernel on
 * its first tracked write, so it reports at base-page granularity.
 *
 * Return: the page size in bytes.  Thread-safe.
 */
PMTRACK_API size_t pmtrack_granularity(const struct pmtrack *t);

/**
 * pmtrack_watch() - start tracking writes to [@addr, @addr + @len).
 *
 * The range must be mapped in the calling process.  Any kind of mapping
 * works: private or shared anonymous memory, memfd/shmem, MAP_SHARED or
 * MAP_PRIVATE files, transparent huge pages and hugetlb (whose ranges must
 * be aligned to the huge page size, and hold only hugetlb memory of one
 * page size).  Pages start clean: only writes made after this call returns
 * are reported.
 *
 * What a tracker sees: writes made through the page-table entries of the
 * watched range in the tracked process (the caller, or pmtrack_opts.pid),
 * and only those.  They are stores by its threads, system calls writing
 * into the range (read(2) into it, for example), and another process's
 * process_vm_writev(2) into it; on backends without
 * PMTRACK_CAP_KERNEL_WRITES the last two fail with EFAULT on an armed page
 * unless pmtrack_prepare_kernel_write() was called.  Not seen, on any
 * backend, although the watched mapping reads the new data:
 *  - stores through another mapping of the same memory: a second mmap()
 *    of the memfd or file in this process, or a mapping in another one;
 *  - stores by a child after fork() through a MAP_SHARED mapping it
 *    inherited.  A tracker does not follow fork().  On mprotect the child
 *    inherits the read-only protection and the library's SIGSEGV handler:
 *    the child's first write to a watched page faults, the handler makes
 *    that page writable in the child alone and the write completes (the
 *    child does not crash); the parent's tracker never hears of it;
 *  - write(2), pwrite(2) and the like to the file or memfd the range maps.
 * On soft-dirty a range that was shared when watched is reported written
 * in full by every collect (see PMTRACK_CAP_SHARED_EXACT), so its reports
 * hold such pages too, as they hold every page.
 *
 * Backend rules.  uffd-wp cannot watch page-cache file mappings, nor
 * soft-dirty hugetlb (-EOPNOTSUPP; see PMTRACK_CAP_FILE_MAPPINGS and
 * PMTRACK_CAP_HUGETLB).  mprotect needs the range
 * readable and writable with one protection throughout (-EACCES
 * otherwise), changes it to read-only until unwatched, and reports a
 * fault it cannot attribute to its own ranges to the SIGSEGV handler that
 * was installed before the first mprotect tracker: install yours before,
 * or chain to the one you replace.  Do not mprotect() watched memory
 * yourself on that backend.  Under memory-map pressure (vm.max_map_count)
 * it un-protects larger spans and reports them as written: more pages
 * than were written, never fewer.  soft-dirty reports every page of a
 * mapping the kernel flags VM_SOFTDIRTY (new, grown or moved mappings, and
 * a watched mapping a new neighbour merged with) as written until the next
 * reset, a transparent huge page as a whole, a private page dropped
 * (MADV_DONTNEED) or shared copy-on-write by fork() since the last collect
 * as written, and never lets a written page go unreported; pages of pinned
 * copy-on-write memory may stay written.
 *
 * A range stays watched until pmtrack_unwatch() or pmtrack_free().  Unwatch
 * before unmapping.  If the mapping is unmapped (or mremap()ed away), its
 * pages are no longer reported.  If other memory is then mapped there,
 * collects over it fail with -ESTALE on pagemap-scan; uffd-wp reports
 * nothing for it; soft-dirty reports it as written; and if another
 * tracker watches the new memory, this one cannot tell it is not its own
 * and its collects would report and reset the other tracker's pages.
 *
 * On mprotect, memory mapped over a watched range keeps its protection:
 * a RESET collect or pmtrack_reset() that would re-arm a page of it
 * (one written before it was replaced and not collected since) fails
 * there with -ESTALE, after reporting the pages before it, and fails so
 * again until that part is unwatched; pmtrack_unwatch(), pmtrack_free()
 * and pmtrack_prepare_kernel_write() leave it alone.  A collect without
 * RESET does not look, and reports such pages.  The backend knows its
 * own pages by the object the range mapped when watched (a file, memfd
 * or shared anonymous mapping, at its offset; private anonymous memory
 * has no name) and by the protections it gives: read-only when armed
 * (PROT_EXEC kept), the watched protection once written.  It cannot tell
 * new memory that maps the same object (private anonymous memory again,
 * or the same file at the same offset) and has either
 *  - the armed protection: its pages written before are reported, and
 *    unwatch, free and pmtrack_prepare_kernel_write() give it the
 *    watched protection; or
 *  - the watched protection, where every page of the range the new
 *    mapping spans (as the kernel merged it with its neighbours) was
 *    written and not collected since, such as a one-page MAP_FIXED
 *    mapping laid exactly over a written page: a RESET collect reports
 *    those pages and makes them read-only.
 * Where the kernel merges such a new writable mapping with a written,
 * uncollected page of the range next to it, that page cannot be told
 * from the new memory either: RESET collects over it fail with -ESTALE
 * rather than drop the write; it is reported once the new part is
 * unwatched.  Nor does the SIGSEGV handler look: a write that faults in
 * new memory without write access (even PROT_NONE) is taken for a watched
 * page's first write, and the page is made writable.
 *
 * Return: 0; -EINVAL if @addr or @len is not a multiple of the granularity
 * (or of the huge page size of a hugetlb mapping in the range), @len is 0,
 * or the range mixes hugetlb memory with memory of another page size;
 * -EOPNOTSUPP for hugetlb pages larger than a PMD (1 GiB pages on x86_64),
 * which the kernel's PAGEMAP_SCAN cannot write-protect;
 * -EOVERFLOW if @addr + @len wraps; -EEXIST if it overlaps a range this tracker
 * watches; -ENOMEM if part of it is not mapped (or memory ran out); -EBUSY if
 * another userfaultfd (another tracker, perhaps) already has part of it, or
 * on mprotect another mprotect tracker does; -EACCES on mprotect if the
 * range is not readable and writable throughout;
 * -ECHILD if called in a child process after fork().
 */
PMTRACK_API int pmtrack_watch(struct pmtrack *t, void *addr, size_t len);

/**
 * pmtrack_unwatch() - stop tracking [@addr, @addr + @len).
 *
 * Any watched part of a range may be unwatched: the rest stays watched.
 * Writes not yet reported in that part are discarded.  Works whether or not
 * the memory is still mapped.
 *
 * Return: 0; -EINVAL / -EOVERFLOW as for pmtrack_watch(); -ENOENT if some
 * page of it is not watched by @t (nothing is changed then); -ECHILD.
 */
PMTRACK_API int pmtrack_unwatch(struct pmtrack *t, void *addr, size_t len);

/* ------------------------------------------------------------------------ */
/* Collecting written pages                                                  */
/* ------------------------------------------------------------------------ */

/**
 * DOC: collect
 *
 * A collect reports the pages of [addr, addr + len) written since they were
 * last reset (by a collect with PMTRACK_COLLECT_RESET, pmtrack_reset(), or
 * pmtrack_watch()).  The range must lie within watched ranges (it may span
 * several adjacent ones).  Pages are reported in ascending address order.
 *
 * With PMTRACK_COLLECT_RESET, each page is reported and reset in one atomic
 * kernel step (PAGEMAP_SCAN with PM_SCAN_WP_MATCHING), or, on uffd-wp and
 * mprotect, the page is marked clean and then protected again: a write
 * that lands during the collect is either in this report or in the next
 * one, never lost (PMTRACK_CAP_ATOMIC_RESET).  Only the pages that were
 * reported are reset.  On soft-dirty the kernel resets the whole process
 * at once and a write racing with the collect can be lost: see
 * PMTRACK_CAP_ATOMIC_RESET.
 *
 * Common errors: -EINVAL for a bad argument, an unaligned range or unknown
 * flags; -EOVERFLOW if the range wraps; -ENOENT if part of the range is not
 * watched; -ESTALE if a watched mapping was replaced by an unwatched one
 * (munmap + mmap; on mprotect, RESET collects and resets only, see
 * pmtrack_watch()): unwatch and watch it again; -ECHILD after fork();
 * -EINTR, -ENOMEM, -EFAULT from the kernel.  On an error after the scan
 * started, the output still holds every page reported (and, with RESET,
 * reset) before the error, so nothing is lost.
 *
 * Collects are thread-safe; they run concurrently with each other and with
 * writers.  Two concurrent RESET collects over the same pages each report a
 * written page at most once between them.
 */
#define PMTRACK_COLLECT_RESET (1u << 0)

struct pmtrack_bitmap; /* opaque; one bit per page of a range */

/**
 * pmtrack_bitmap_new() - create an empty bitmap, to be filled by
 * pmtrack_collect_bitmap() and freed with pmtrack_bitmap_free().
 * @out: receives the bitmap
 *
 * Return: 0; -EINVAL if @out is NULL; -ENOMEM.
 */
PMTRACK_API int pmtrack_bitmap_new(struct pmtrack_bitmap **out);
/**
 * pmtrack_bitmap_free() - free a bitmap.
 * @bm: the bitmap; NULL is a no-op
 */
PMTRACK_API void pmtrack_bitmap_free(struct pmtrack_bitmap *bm);
/**
 * pmtrack_bitmap_addr() - the address a bitmap starts at.
 * @bm: a bitmap filled by pmtrack_collect_bitmap()
 *
 * Return: the address of the page bit 0 stands for.
 */
PMTRACK_API void *pmtrack_bitmap_addr(const struct pmtrack_bitmap *bm);
/**
 * pmtrack_bitmap_npages() - the size of a bitmap.
 * @bm: a bitmap filled by pmtrack_collect_bitmap()
 *
 * Return: the number of pages (bits) @bm covers.
 */
PMTRACK_API size_t pmtrack_bitmap_npages(const struct pmtrack_bitmap *bm);
/**
 * pmtrack_bitmap_count() - the written pages in a bitmap.
 * @bm: a bitmap filled by pmtrack_collect_bitmap()
 *
 * Return: the number of set bits (written pages).
 */
PMTRACK_API size_t pmtrack_bitmap_count(const struct pmtrack_bitmap *bm);
/**
 * pmtrack_bitmap_test() - was a page written?
 * @bm: a bitmap filled by pmtrack_collect_bitmap()
 * @idx: the page's index, from 0 at pmtrack_bitmap_addr()
 *
 * Return: 1 if page @idx is set, 0 if not or out of range.
 */
PMTRACK_API int pmtrack_bitmap_test(const struct pmtrack_bitmap *bm,
				    size_t idx);
/**
 * pmtrack_bitmap_next() - the next written page of a bitmap.
 * @bm: a bitmap filled by pmtrack_collect_bitmap()
 * @from: the index to search from
 *
 * Return: the index of the first set bit at or after @from, or
 * pmtrack_bitmap_npages() if there is none.
 */
PMTRACK_API size_t pmtrack_bitmap_next(const struct pmtrack_bitmap *bm,
				       size_t from);
/**
 * pmtrack_bitmap_words() - the raw bits of a bitmap.
 * @bm: a bitmap filled by pmtrack_collect_bitmap()
 * @nwords: optional; receives the number of words
 *
 * Page i is bit (i % 64) of word (i / 64).  Bits past npages are zero.
 *
 * Return: the words, valid until @bm is next filled or freed.
 */
PMTRACK_API const uint64_t *
pmtrack_bitmap_words(const struct pmtrack_bitmap *bm, size_t *nwords);

/**
 * pmtrack_collect_bitmap() - report written pages as a bitmap.
 * @bm: filled to cover exactly [@addr, @addr + @len); its old contents are
 *      replaced.  Its memory is allocated before the scan starts, so an
 *      -ENOMEM never loses a reset page.  After an argument error (-EINVAL,
 *      -EOVERFLOW, -ECHILD) @bm is unchanged; after a later error it holds
 *      the pages reported before the error.
 *
 * DOC: collect
 *
 * Return: 0 or a negative errno (above).  Thread-safe for distinct @bm.
 */
PMTRACK_API int pmtrack_collect_bitmap(struct pmtrack *t, void *addr,
				       size_t len, unsigned int flags,
				       struct pmtrack_bitmap *bm);

/**
 * pmtrack_collect_pages() - report written pages as an array of addresses.
 * @t: the tracker
 * @addr, @len: the range to report, inside watched ranges
 * @flags: 0 or PMTRACK_COLLECT_RESET
 * @pages: caller's array
 * @count: in: capacity of @pages (> 0); out: number of addresses stored
 * @next: optional; receives the address where the scan stopped: @addr +
 *        @len if the whole range was scanned, else the first page not
 *        scanned.  Scan again from there to get the rest.
 *
 * When @pages fills, the scan stops at that page.  With RESET, only the
 * pages scanned so far are reset; written pages after the last one stored
 * stay written and are reported by the next collect.  This is the
 * GetWriteWatch() truncation rule.  In hugetlb memory, where a huge page is
 * reset whole or not at all, a RESET collect stores only whole huge pages:
 * it stops before a written one that does not fit, and fails with -ENOSPC
 * if that is the first page of the range.
 *
 * DOC: collect
 *
 * Return: 0 or a negative errno (above).  Thread-safe.
 */
PMTRACK_API int pmtrack_collect_pages(struct pmtrack *t, void *addr, size_t len,
				      unsigned int flags, void **pages,
				      size_t *count, void **next);

/* A run of written pages: [addr, addr + len). */
struct pmtrack_run {
	void *addr; /* the first page, aligned to the granularity */
	size_t len; /* bytes, a multiple of the granularity */
};

/**
 * pmtrack_collect_runs() - report written pages as maximal runs.
 * @runs: caller's array; adjacent written pages always share one run
 * @count: in: capacity of @runs (> 0); out: number of runs stored
 * @next: optional, as for pmtrack_collect_pages()
 *
 * When @runs fills, the scan stops before the next written page that would
 * need a new run; with RESET, only what was reported is reset.
 *
 * DOC: collect
 *
 * Return: 0 or a negative errno (above).
 */
PMTRACK_API int pmtrack_collect_runs(struct pmtrack *t, void *addr, size_t len,
				     unsigned int flags,
				     struct pmtrack_run *runs, size_t *count,
				     void **next);

/**
 * pmtrack_reset() - mark every page of [@addr, @addr + @len) clean without
 * reporting it.
 * @t: the tracker
 * @addr, @len: the range, inside watched ranges
 *
 * Writes after this call are reported.  The same range rules as a
 * collect:
 *
 * DOC: collect
 *
 * Return: 0 or a negative errno, the errors of a collect.  Thread-safe.
 */
PMTRACK_API int pmtrack_reset(struct pmtrack *t, void *addr, size_t len);

/**
 * pmtrack_prepare_kernel_write() - let system calls write into watched
 * memory (on backends without PMTRACK_CAP_KERNEL_WRITES).
 * @addr, @len: any byte range inside watched ranges (it is widened to
 *	whole pages, or whole huge pages in hugetlb memory)
 *
 * On mprotect and on uffd-wp without kernel-fault trapping, the kernel
 * cannot write into an armed page: read(2), recv(2), pread(2) and the like
 * fail with EFAULT (possibly after a partial transfer).  This call marks
 * the pages written and un-protects them, so such a call succeeds; the
 * pages are reported by the next collect like any other written pages.
 * A RESET collect or pmtrack_reset() over them arms them again, so call
 * this after any reset and before the system call (retry both on EFAULT
 * if resets run concurrently).  On other backends it checks its arguments
 * and does nothing.
 *
 * Return: 0; -EINVAL if @len is 0; -EOVERFLOW; -ENOENT if some page is not
 * watched; -ECHILD; -ENOMEM if the kernel could not change protections.
 * Thread-safe.
 */
PMTRACK_API int pmtrack_prepare_kernel_write(struct pmtrack *t, void *addr,
					     size_t len);

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

struct pmtrack_stats {
	size_t sz;	   /* sizeof(struct pmtrack_stats), set by the caller */
	uint64_t collects; /* successful collect calls of any output kind */
	uint64_t resets;   /* successful pmtrack_reset() calls */
	uint64_t pages_reported; /* pages reported by collects */
	/* kernel scan calls issued: PAGEMAP_SCAN ioctls, or pagemap reads
	 * (soft-dirty; uffd-wp's sweep for dropped protections); mprotect
	 * makes none */
	uint64_t scans;
	uint64_t scan_ns; /* wall time spent in those calls, nanoseconds */
	/* pagemap-scan of another process: system calls injected into it to
	 * get its userfaultfd (one per pmtrack_new()); else 0 */
	uint64_t injections;
	/* how long those injections kept the target stopped, nanoseconds */
	uint64_t inject_stop_ns;
	size_t : 0;
};
#define pmtrack_stats__last_field inject_stop_ns

/**
 * pmtrack_get_stats() - read @t's counters (cumulative since pmtrack_new(),
 * including arming done by pmtrack_watch()).
 * @st: st->sz must be set (PMTRACK_OPTS() does it); fields past the ones
 *      this library knows are zeroed.
 * Return: 0 or -EINVAL.  Thread-safe; each counter is read atomically, the
 * set as a whole is not a snapshot.
 */
PMTRACK_API int pmtrack_get_stats(const struct pmtrack *t,
				  struct pmtrack_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* PMTRACK_PMTRACK_H */

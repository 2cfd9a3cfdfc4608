// SPDX-License-Identifier: MIT
/*
 * Backend: synchronous userfaultfd write-protect (Linux 5.7+; shmem and
 * hugetlb 5.19+) with a handler thread.
 *
 * A write to an armed page blocks the writer and queues a WP message; the
 * thread un-protects the page (which wakes the writer) and sets its bit.
 * Collects take bits and write-protect those pages again.
 *
 * The userfaultfd traps kernel-mode faults too when the process may ask for
 * that (CAP_SYS_PTRACE, or vm.unprivileged_userfaultfd=1): then read(2)
 * into an armed page blocks until the thread has handled it, and is
 * reported.  Otherwise it is created with UFFD_USER_MODE_ONLY, which any
 * process may do, and such system calls fail with EFAULT (the tracker then
 * lacks PMTRACK_CAP_KERNEL_WRITES; see pmtrack_prepare_kernel_write()).
 *
 * Without UFFD_FEATURE_WP_UNPOPULATED (before 6.4), write-protect skips
 * anonymous pages never touched, so watch maps them first
 * (MADV_POPULATE_READ puts the shared zero page there).
 *
 * Protection lives in page-table entries.  When the kernel drops one of
 * private anonymous memory (MADV_DONTNEED, which also zeroes the page),
 * the next write maps a fresh page without a fault we would see.  So every
 * collect first sweeps the range (PAGEMAP_SCAN for PAGE_IS_WRITTEN, or
 * /proc/self/pagemap before 6.7): a page whose entry lacks the uffd-wp bit
 * (57) was unprotected behind our back and is marked written; the collect
 * then protects it again.  Reading pagemap, an empty entry is written only
 * if it was filled at the last sweep (a page dropped since); one that
 * stays empty (a PROT_NONE page that cannot be populated again before 6.4)
 * is not reported at every collect, and a page a read maps there later
 * (the zero page: not exclusive) is not written.  The price: a page
 * written there without a fault and then shared copy-on-write by fork()
 * before the next collect is missed.  PAGEMAP_SCAN says PAGE_IS_WRITTEN
 * from the uffd-wp bit alone, and WP_UNPOPULATED (6.4+) protects empty
 * entries, so none of this applies there.  Shared memory keeps
 * a marker in the dropped entry and needs no such help, but the sweep
 * does not care which.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "uapi_compat.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

struct pmt_uw {
	pthread_t thread;
	int stop_fd; /* eventfd: written to stop the thread */
	bool running;
	bool unpopulated; /* WP_UNPOPULATED granted */
	bool scan;	  /* PAGEMAP_SCAN works: sweep with it */
};

static int uw_usable(void)
{
	return pmtrack_probe(PMTRACK_FEAT_UFFD_WP, NULL);
}

static int uw_writeprotect(int uffd, uintptr_t s, uintptr_t e, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = s, .len = e - s },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	while (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp)) {
		if (errno != EAGAIN)
			return -errno;
	}
	return 0;
}

static void uw_fault(struct pmtrack *t, uintptr_t addr, uint64_t flags)
{
	int slot;
	struct pmt_sb *sb = pmt_sb_get(PMT_SB_UFFD, t, addr, &slot);
	size_t gran = sb ? sb->gran : t->page_size;
	uintptr_t g = addr & ~(uintptr_t)(gran - 1);
	struct uffdio_writeprotect wp = {
		.range = { .start = g, .len = gran },
		.mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};

	/*
	 * Mark, un-protect without waking, mark again, then wake the
	 * writer.  The first mark makes a write by another thread that
	 * finds the page writable visible to that thread's next collect;
	 * the second covers a collect that took the first and armed the
	 * page before we un-protected it (see swbits.c).  Waking last
	 * means the writer's own later reset comes after both marks.
	 */
	if (sb)
		pmt_sb_mark(sb, g, g + gran);
	/* no range found: unwatched (already un-protected), or a split
	 * published its new ranges where the lookup had passed; either
	 * way only wake the writer, and a write still armed faults again */
	if (sb && (flags & UFFD_PAGEFAULT_FLAG_WP)) {
		while (ioctl(t->uffd, UFFDIO_WRITEPROTECT, &wp) &&
		       errno == EAGAIN)
			;
	}
	if (sb) {
		pmt_sb_mark(sb, g, g + gran);
		pmt_sb_put(slot);
	}
	/* also when un-protecting failed (unwatched meanwhile): the
	 * writer retries and finds the page as it is now */
	ioctl(t->uffd, UFFDIO_WAKE, &wp.range);
}

static void *uw_thread(void *arg)
{
	struct pmtrack *t = arg;
	struct uffd_msg msg[64];
	struct pollfd pfd[2] = {
		{ .fd = t->uffd, .events = POLLIN },
		{ .fd = t->uw->stop_fd, .events = POLLIN },
	};

	for (;;) {
		ssize_t n;

		if (poll(pfd, 2, -1) < 0)
			continue; /* EINTR; nothing else can fail here */
		if (pfd[1].revents)
			break;
		n = read(t->uffd, msg, sizeof(msg));
		if (n <= 0)
			continue; /* EAGAIN: another wakeup raced us */
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				uw_fault(
					t,
					(uintptr_t)msg[i].arg.pagefault.address,
					msg[i].arg.pagefault.flags);
	}
	return NULL;
}

static int uw_open(struct pmtrack *t)
{
	struct uffdio_api api = { .api = UFFD_API };
	sigset_t all, old;
	uint64_t feats;
	int ret;

	ret = pmt_uffd_features(&feats);
	if (ret)
		return ret;
	if (!(feats & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		return -EOPNOTSUPP;
	api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP |
		       (feats & (UFFD_FEATURE_WP_UNPOPULATED |
				 UFFD_FEATURE_WP_HUGETLBFS_SHMEM));
	t->uw = calloc(1, sizeof(*t->uw));
	if (!t->uw)
		return -ENOMEM;
	t->uw->stop_fd = -1;
	t->caps = PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET |
		  PMTRACK_CAP_SHARED_EXACT | PMTRACK_CAP_NO_SIGNALS |
		  PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_HUGETLB;
	/* trap kernel-mode faults when allowed, else user mode only */
	t->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (t->uffd < 0 && errno == EPERM) {
		t->caps &= ~PMTRACK_CAP_KERNEL_WRITES;
		t->uffd = (int)syscall(SYS_userfaultfd,
				       O_CLOEXEC | O_NONBLOCK |
					       UFFD_USER_MODE_ONLY);
	}
	if (t->uffd < 0)
		return errno == EPERM || errno == ENOSYS ? -EOPNOTSUPP : -errno;
	if (ioctl(t->uffd, UFFDIO_API, &api))
		return -errno;
	t->uw->unpopulated = api.features & UFFD_FEATURE_WP_UNPOPULATED;
	t->uw->scan = pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL) == 1;
	t->pagemap_fd = pmt_proc_open(0, "pagemap", O_RDONLY);
	if (t->pagemap_fd < 0)
		return -errno;
	t->uw->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (t->uw->stop_fd < 0)
		return -errno;
	/* the thread must never run the program's signal handlers */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&t->uw->thread, NULL, uw_thread, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return ret;
	t->uw->running = true;
	return 0;
}

static void uw_close(struct pmtrack *t)
{
	struct pmt_uw *uw = t->uw;

	if (uw) {
		if (uw->running) {
			uint64_t one = 1;

			while (write(uw->stop_fd, &one, sizeof(one)) < 0 &&
			       errno == EINTR)
				;
			pthread_join(uw->thread, NULL);
		}
		if (uw->stop_fd >= 0)
			close(uw->stop_fd);
		free(uw);
		t->uw = NULL;
	}
	/* closing it wakes any blocked writer and drops every protection */
	if (t->uffd >= 0)
		close(t->uffd);
	t->uffd = -1;
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	t->pagemap_fd = -1;
	for (size_t i = 0; i < t->nranges; i++) {
		pmt_sb_free(t->ranges[i].sb);
		t->ranges[i].sb = NULL;
	}
}

/* map what is not mapped in [s, e), the shared zero page for anonymous
 * memory; a signal may cut it short (EINTR), which is not an error */
static int populate(uintptr_t s, uintptr_t e)
{
	int r;

	while ((r = madvise((void *)s, e - s, MADV_POPULATE_READ)) &&
	       errno == EINTR)
		;
	return r ? -errno : 0;
}

static int uw_arm(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
		  uintptr_t e, struct pmt_arming *a)
{
	struct pmt_vma_span span;
	int r;

	(void)a;
	/* without WP_UNPOPULATED an empty entry (a page dropped since the
	 * last arm, reported by the sweep) cannot be protected: map the
	 * zero page there first, or it would read as written forever */
	if (!t->uw->unpopulated)
		(void)populate(s, e);
	r = uw_writeprotect(t->uffd, s, e, true);

	/* ENOENT: no longer registered there (unmapped or replaced) */
	if (r == -ENOENT)
		return PMT_ARM_GONE;
	/* the kernel skips holes between VMAs without a word: a run of
	 * several units may have lost some */
	if (!r && e - s > sb->gran && pmt_vma_check(t, s, e, &span) == -ENOMEM)
		return PMT_ARM_GONE;
	return r;
}

static int uw_watch(struct pmtrack *t, struct pmt_range *r,
		    const struct pmt_vma_span *span)
{
	struct uffdio_register reg = {
		.range = { .start = r->start, .len = r->end - r->start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_range ur = reg.range;
	struct pmt_sb *sb;
	int ret;

	(void)span;
	if (!t->uw->unpopulated && (ret = populate(r->start, r->end)))
		return ret == -EINVAL ? -EOPNOTSUPP : ret;
	sb = pmt_sb_new(t, PMT_SB_UFFD, r->start, r->end, r->align);
	if (!sb)
		return -ENOMEM;
	/* the pagemap sweep (before 6.7) starts from "every page filled"
	 * (an entry there): watch populated them; one that could not be
	 * (PROT_NONE) reads as written once */
	if (!t->uw->scan)
		pmt_sb_fill(sb, r->start, r->end);
	ret = pmt_sb_publish(sb);
	if (ret)
		goto fail;
	if (ioctl(t->uffd, UFFDIO_REGISTER, &reg)) {
		/* EINVAL: a kind of memory sync WP cannot track here */
		ret = errno == EINVAL ? -EOPNOTSUPP : -errno;
		goto fail;
	}
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		ret = -EOPNOTSUPP;
		goto fail_unreg;
	}
	/* piecewise where one call cannot span VMAs (before about 6.5) */
	ret = pmt_sb_arm(t, sb, r->start, r->end);
	if (ret)
		goto fail_unreg;
	r->sb = sb;
	return 0;
fail_unreg:
	ioctl(t->uffd, UFFDIO_UNREGISTER, &ur);
fail:
	pmt_sb_free(sb);
	return ret;
}

static int uw_unwatch(struct pmtrack *t, struct pmt_range *r, uintptr_t s,
		      uintptr_t e, struct pmt_range *head,
		      struct pmt_range *tail)
{
	struct uffdio_range ur = { .start = s, .len = e - s };

	/* un-protecting wakes blocked writers; unregistering leaves the
	 * rest of the mapping alone.  Both fail harmlessly where nothing is
	 * mapped any more. */
	int ret;

	uw_writeprotect(t->uffd, s, e, false);
	if (ioctl(t->uffd, UFFDIO_UNREGISTER, &ur) && errno != EINVAL &&
	    errno != ENOENT) {
		ret = -errno;
		goto fail;
	}
	ret = pmt_sb_split(t, r, head, tail, true);
	if (!ret)
		return 0;
fail:
	/* [s, e) may be writable but stays watched: it reads as written */
	pmt_sb_mark(r->sb, s, e);
	return ret;
}

/* is all of [p, p + len) mapped?  (mincore fails with ENOMEM on a hole) */
static bool page_mapped(uintptr_t p, size_t len)
{
	unsigned char v[512];

	return !mincore((void *)p, len, v) || errno != ENOMEM;
}

/* mark pages of [s, e) (within t's ranges from @first) whose entries lack
 * the uffd-wp bit: see the top of this file */
static int uw_sweep(struct pmtrack *t, uintptr_t s, uintptr_t e, size_t first)
{
	uint64_t ent[512];
	size_t ps = t->page_size;

	for (size_t i = first; i < t->nranges && t->ranges[i].start < e; i++) {
		struct pmt_range *r = &t->ranges[i];
		uintptr_t a = s > r->start ? s : r->start;
		uintptr_t b = e < r->end ? e : r->end;

		if (t->uw->scan && a < b) {
			/* PAGEMAP_SCAN (6.7+) is several times cheaper than
			 * reading pagemap: asked for PAGE_IS_WRITTEN alone it
			 * reports every entry without the uffd-wp bit, the
			 * empty ones of a mapping included */
			int ret = pmt_sb_mark_scan(t, r->sb, a, b,
						   PAGE_IS_WRITTEN);

			if (ret)
				return ret;
			continue;
		}

		while (a < b) {
			size_t n = (b - a) / ps;
			uint64_t t0 = pmt_now_ns();
			ssize_t got;

			if (n > 512)
				n = 512;
			got = pread(t->pagemap_fd, ent, n * sizeof(ent[0]),
				    (off_t)(a / ps * sizeof(ent[0])));
			pmt_stat_add(&t->st.scan_ns, pmt_now_ns() - t0);
			pmt_stat_add(&t->st.scans, 1);
			if (got < (ssize_t)sizeof(ent[0]))
				return got < 0 ? -errno : -EIO;
			n = (size_t)got / sizeof(ent[0]);
			for (size_t j = 0, k; j < n; j = k) {
				uintptr_t p = a + j * ps;

				/* bit 55 alone (a VM_SOFTDIRTY mapping
				 * where soft-dirty is built in) is no entry */
				bool filled =
					ent[j] & (PMT_PM_PRESENT | PMT_PM_SWAP);
				bool was = pmt_sb_set_filled(r->sb, p, filled);

				k = j + 1;
				/* unprotected: written, unless the page is
				 * not exclusive (the zero page or a file page
				 * that a read mapped where protection could
				 * not go, a page shared copy-on-write) */
				if (filled) {
					if (!(ent[j] & PMT_PM_UFFD_WP) &&
					    ent[j] & (PMT_PM_SWAP |
						      PMT_PM_EXCLUSIVE))
						pmt_sb_mark(r->sb, p, p + ps);
					continue;
				}
				/* an empty entry that was not at the last
				 * sweep: zapped (written to zero) if still
				 * mapped, else gone.  Empty before, it
				 * changed nothing. */
				if (was && page_mapped(p, ps))
					pmt_sb_mark(r->sb, p, p + ps);
			}
			a += n * ps;
		}
	}
	return 0;
}

static int uw_collect(struct pmtrack *t, struct pmt_collect *c, size_t first)
{
	int ret = uw_sweep(t, c->start, c->end, first);

	return ret ? ret : pmt_sb_collect(t, c, first);
}

static int uw_reset(struct pmtrack *t, uintptr_t s, uintptr_t e, size_t first)
{
	/* reading pagemap, the sweep also notes which entries are empty
	 * now: a page dropped before the reset is not written after it */
	int ret = t->uw->scan ? 0 : uw_sweep(t, s, e, first);

	return ret ? ret : pmt_sb_reset(t, s, e, first);
}

static int uw_first_written(struct pmtrack *t, uintptr_t s, uintptr_t e,
			    size_t first, uintptr_t *addr)
{
	int ret = uw_sweep(t, s, e, first);

	return ret ? ret : pmt_sb_first_written(t, s, e, first, addr);
}

static int uw_unarm(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
		    uintptr_t e)
{
	int r = uw_writeprotect(t->uffd, s, e, false);

	(void)sb;
	return r == -ENOENT ? 0 : r; /* not registered: nothing armed */
}

/* collects and resets one at a time: a sweep must not see pages another
 * collect has taken the bits of and not yet protected again */
static pthread_mutex_t uw_lock = PTHREAD_MUTEX_INITIALIZER;

const struct pmt_backend_ops pmt_uffd_wp_ops = {
	.id = PMTRACK_BACKEND_UFFD_WP,
	.outer = &uw_lock,
	.usable = uw_usable,
	.open = uw_open,
	.close = uw_close,
	.watch = uw_watch,
	.unwatch = uw_unwatch,
	.collect = uw_collect,
	.reset = uw_reset,
	.first_written = uw_first_written,
	.arm = uw_arm,
	.unarm = uw_unarm,
};

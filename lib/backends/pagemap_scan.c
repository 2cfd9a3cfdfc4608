// SPDX-License-Identifier: MIT
/*
 * Backend: PAGEMAP_SCAN on /proc/self/pagemap over ranges registered with an
 * async write-protect userfaultfd (Linux 6.7+).
 *
 * Watching registers the range in UFFDIO_REGISTER_MODE_WP and arms it; a
 * write clears the page's uffd-wp bit in the kernel without any message.
 * Collecting asks PAGEMAP_SCAN for pages whose bit is clear (PAGE_IS_WRITTEN)
 * and, for a reset, sets it again in the same walk (PM_SCAN_WP_MATCHING),
 * so report and re-arm are atomic per page.  PM_SCAN_CHECK_WPASYNC makes a
 * mapping that lost its registration an error (-EPERM) instead of a silent
 * gap in the report.
 *
 * In PMTRACK_REARM_WRITTEN mode a reset (collect or pmtrack_reset()) first
 * finds the written runs with a scan that re-protects nothing, then
 * re-protects span by span: the kernel tells secondary MMUs (KVM) about a
 * protection change over the whole range a re-protecting scan walks, so
 * the clean pages between the spans keep their secondary mappings.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "inject.h"
#include "uapi_compat.h"

#define PS_UFFD_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)

static int ps_usable(void)
{
	int ret = pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL);

	if (ret <= 0)
		return ret;
	return pmtrack_probe(PMTRACK_FEAT_UFFD_WP_ASYNC, NULL);
}

static int ps_open(struct pmtrack *t)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t feats;
	int ret;

	ret = pmt_uffd_features(&feats);
	if (ret)
		return ret;
	if ((feats & (PS_UFFD_FEATURES | t->uffd_extra)) !=
	    (PS_UFFD_FEATURES | t->uffd_extra))
		return -EOPNOTSUPP;
	t->caps = PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET |
		  PMTRACK_CAP_SHARED_EXACT |
		  PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_FILE_MAPPINGS |
		  PMTRACK_CAP_NO_SIGNALS | PMTRACK_CAP_HUGETLB;
	if (pmt_arch_inject)
		t->caps |= PMTRACK_CAP_OTHER_PROCESS;
	/* shmem and hugetlb need this one; take it whenever it exists */
	api.features = PS_UFFD_FEATURES | t->uffd_extra |
		       (feats & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);

	t->pagemap_fd = pmt_proc_open(t->target, "pagemap", O_RDONLY);
	if (t->pagemap_fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if (t->target) {
		/* the target's own userfaultfd, held by us alone: what we
		 * register and write-protect through it acts on its memory */
		ret = t->uffd_given >= 0 ? t->uffd_given
					 : pmt_remote_uffd(t->target,
							   &t->inject_ns,
							   &t->uffd_user_only);
		t->uffd_given = -1;
		if (ret < 0)
			return ret;
		t->uffd = ret;
		if (t->inject_ns)
			pmt_stat_add(&t->st.injections, 1);
	} else {
		t->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK |
							UFFD_USER_MODE_ONLY);
		if (t->uffd < 0)
			return -errno;
	}
	/* a fork event's userfaultfd has its parent's features already */
	if (t->uffd_ready)
		return 0;
	/* UFFD_FEATURE_EVENT_FORK: EPERM without CAP_SYS_PTRACE */
	if (ioctl(t->uffd, UFFDIO_API, &api))
		return -errno;
	if ((api.features & PS_UFFD_FEATURES) != PS_UFFD_FEATURES)
		return -EOPNOTSUPP;
	return 0;
}

static void ps_close(struct pmtrack *t)
{
	/* closing the userfaultfd unregisters every range and drops the
	 * uffd-wp bits it set */
	if (t->uffd >= 0)
		close(t->uffd);
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
}

static int ps_ioctl(struct pmtrack *t, struct pm_scan_arg *arg)
{
	uint64_t t0 = pmt_now_ns();
	int ret = ioctl(t->pagemap_fd, PAGEMAP_SCAN, arg);
	int err = errno;

	pmt_stat_add(&t->st.scan_ns, pmt_now_ns() - t0);
	pmt_stat_add(&t->st.scans, 1);
	if (ret < 0)
		return err == EPERM ? -ESTALE : -err;
	return ret;
}

static int ps_unregister(struct pmtrack *t, uintptr_t start, uintptr_t end)
{
	struct uffdio_range r = { .start = start, .len = end - start };

	return ioctl(t->uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

static int ps_reset_range(struct pmtrack *t, uintptr_t start, uintptr_t end)
{
	/* no output vector: the kernel's fast path re-protects every page
	 * that is not protected yet, holes included */
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = start,
		.end = end,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	int ret = ps_ioctl(t, &arg);

	return ret < 0 ? ret : 0;
}

static int ps_reset_written(struct pmtrack *t, uintptr_t start,
			    uintptr_t end);

static int ps_reset(struct pmtrack *t, uintptr_t start, uintptr_t end,
		    size_t first)
{
	(void)first;
	if (t->rearm == PMTRACK_REARM_WRITTEN)
		return ps_reset_written(t, start, end);
	return ps_reset_range(t, start, end);
}

static int ps_watch(struct pmtrack *t, struct pmt_range *rg,
		    const struct pmt_vma_span *span)
{
	uintptr_t start = rg->start, end = rg->end;
	struct uffdio_register reg = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	int ret;

	(void)span;
	/* inherited at a fork: registered and armed as the child's parent
	 * had it; a part that is not is caught by PM_SCAN_CHECK_WPASYNC */
	if (t->adopt)
		return 0;
	if (ioctl(t->uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		ret = -EOPNOTSUPP;
		goto fail;
	}
	ret = ps_reset_range(t, start, end);
	if (ret)
		goto fail;
	return 0;
fail:
	ps_unregister(t, start, end);
	return ret;
}

static int ps_unwatch(struct pmtrack *t, struct pmt_range *rg, uintptr_t start,
		      uintptr_t end, struct pmt_range *head,
		      struct pmt_range *tail)
{
	int ret = ps_unregister(t, start, end);

	(void)rg;
	(void)head;
	(void)tail;
	/* the range was checked (aligned, watched): EINVAL here means no VMA
	 * is left in it, so there is nothing to unregister */
	return ret == -EINVAL ? 0 : ret;
}

/* Address of the first written page in [start, end), or end; no reset. */
static int ps_first_written(struct pmtrack *t, uintptr_t start, uintptr_t end,
			    size_t first, uintptr_t *addr)
{
	struct page_region r = { 0 };
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_CHECK_WPASYNC,
		.start = start,
		.end = end,
		.vec = (uintptr_t)&r,
		.vec_len = 1,
		.max_pages = 1,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	int ret;

	(void)first;
	ret = ps_ioctl(t, &arg);
	if (ret < 0)
		return ret;
	*addr = ret ? (uintptr_t)r.start : end;
	return 0;
}

static void ps_emit(struct pmt_collect *c, const struct page_region *r,
		    size_t n)
{
	for (size_t i = 0; i < n; i++)
		c->emit(c, (uintptr_t)r[i].start, (uintptr_t)r[i].end);
}

static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;

	return m < c ? m : c;
}

/* an output vector, shared by the scans of one collect */
struct ps_vec {
	struct page_region *r;
	size_t cap;   /* entries */
	size_t stale; /* leading entries that may hold old data */
};

/*
 * One PAGEMAP_SCAN of [start, end) for written pages into at most @vlen
 * entries of @v; on an error the entries the kernel filled (and, with
 * PM_SCAN_WP_MATCHING, re-protected) are counted into *@got.
 */
static int ps_scan_once(struct pmtrack *t, struct ps_vec *v, uintptr_t start,
			uintptr_t end, size_t vlen, size_t max_pages, bool wp,
			uint64_t *walk_end, size_t *got)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_CHECK_WPASYNC | (wp ? PM_SCAN_WP_MATCHING : 0),
		.start = start,
		.end = end,
		.vec = (uintptr_t)v->r,
		.vec_len = vlen,
		.max_pages = max_pages,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	size_t n;
	int ret;

	/* on an error the kernel does not say how many regions it wrote
	 * (and reset): zeroed slots let us count them */
	memset(v->r, 0, (v->stale < vlen ? v->stale : vlen) * sizeof(*v->r));
	if (v->stale <= vlen)
		v->stale = 0;
	ret = ps_ioctl(t, &arg);
	if (ret < 0) {
		for (n = 0; n < vlen && v->r[n].end; n++)
			;
	} else {
		n = (size_t)ret;
	}
	if (n > v->stale)
		v->stale = n;
	*got = n;
	*walk_end = arg.walk_end;
	return ret < 0 ? ret : 0;
}

/*
 * The scan loop over [start, end).  Each call asks for at most as many
 * regions as the caller can still store (so a reset never reaches a page
 * that could not be reported) and at most pages_left pages; c->next says
 * where it stopped.
 *
 * Where to resume: on Linux 6.7 .. 6.18 at least, walk_end is stale when
 * one call returns more than the kernel's internal buffer of regions (512
 * on x86_64): it still holds an intermediate flush point although the walk
 * went on.  A short call (fewer regions than asked) means the walk reached
 * the end or the page limit; a full call resumes at
 * max(walk_end, end of the last region), which is right in both cases.
 */
static int ps_scan(struct pmtrack *t, struct pmt_collect *c, struct ps_vec *v,
		   uintptr_t start, uintptr_t end, bool wp)
{
	uintptr_t cur = start;
	int ret = 0;

	c->next = start;
	while (cur < end) {
		/* a region holds at least one page and costs at most one
		 * run, so asking for more than either limit is useless */
		size_t vlen = min3(v->cap, c->runs_left, c->pages_left);
		uint64_t walk_end;
		size_t n;

		if (!vlen)
			break;
		ret = ps_scan_once(t, v, cur, end, vlen,
				   c->pages_left == SIZE_MAX ? 0
							     : c->pages_left,
				   wp, &walk_end, &n);
		ps_emit(c, v->r, n);
		if (ret) {
			if (n)
				c->next = (uintptr_t)v->r[n - 1].end;
			break;
		}
		if (n < vlen) {
			if (!c->pages_left) {
				/* stopped by max_pages; walk_end may be the
				 * next written page or (stale) earlier */
				cur = walk_end;
				if (n && cur < v->r[n - 1].end)
					cur = v->r[n - 1].end;
			} else {
				cur = end;
			}
			c->next = cur;
			break;
		}
		cur = walk_end;
		if (cur < v->r[n - 1].end)
			cur = v->r[n - 1].end;
		c->next = cur;
	}
	if (cur >= end)
		c->next = end;
	return ret;
}

/*
 * PMTRACK_REARM_WRITTEN: each written run is its own span, re-protected by
 * a scan of its own, so that a secondary MMU (KVM) is told about written
 * pages only: merging two runs would make it drop its mappings of the
 * clean pages between them, each a re-fault (about 11 us under KVM in
 * pmtrack-bench-kvm) against one invalidation saved (about 21 us): a gain
 * for gaps of one page at most, a loss beyond (a read-mostly guest writing
 * one page in 8 re-faulted its whole working set with runs merged across
 * 16 pages).
 * A search asks for at most PS_MAX_SPANS regions (the kernel returns them
 * maximal), so the re-protecting scans are one per written run, at most
 * PS_MAX_SPANS per search, whatever scan_batch says.
 */
#define PS_MAX_SPANS PMT_SCAN_BATCH_DEFAULT

struct ps_span {
	uintptr_t start, end;
};

/*
 * Find the written runs of [start, end), at most @vlen (<= PS_MAX_SPANS) of
 * them, without re-protecting anything, into @sp.  Returns their number (0
 * if nothing is written) or -errno; *@bend receives the end of what this
 * batch covers (@end, or the end of the last run when there may be more
 * past it).  An error after some runs were found (a replaced mapping
 * further on: -ESTALE) goes to *@err, and the runs before it are returned,
 * to be reported before the error is.
 */
static int ps_find_spans(struct pmtrack *t, struct ps_vec *v, uintptr_t start,
			 uintptr_t end, size_t vlen, struct ps_span *sp,
			 uintptr_t *bend, int *err)
{
	uint64_t walk_end;
	size_t n;
	int ret;

	if (vlen > PS_MAX_SPANS)
		vlen = PS_MAX_SPANS;
	ret = ps_scan_once(t, v, start, end, vlen, 0, false, &walk_end, &n);
	*err = ret;
	if (ret && !n)
		return ret;
	*bend = n < vlen && !ret ? end : (uintptr_t)v->r[n - 1].end;
	/* copied: the span scans reuse the vector */
	for (size_t i = 0; i < n; i++) {
		sp[i].start = (uintptr_t)v->r[i].start;
		sp[i].end = (uintptr_t)v->r[i].end;
	}
	return (int)n;
}

/*
 * A RESET collect in PMTRACK_REARM_WRITTEN mode: batch by batch, find the
 * written spans, then run the re-protecting scan loop over each.  The span
 * scans' output is the report: a page written after the search is in it
 * if it lies in a span, and stays written for the next collect if not.
 * The caller's limits stop a span scan as they stop a whole-range one; a
 * span not started leaves c->next at the end of the previous one.
 */
static int ps_collect_written(struct pmtrack *t, struct pmt_collect *c,
			      struct ps_vec *v)
{
	struct ps_span sp[PS_MAX_SPANS];
	uintptr_t cur = c->start, bend;
	int ret = 0, err;

	c->next = c->start;
	while (cur < c->end) {
		size_t vlen = min3(v->cap, c->runs_left, c->pages_left);
		int nsp;

		if (!vlen)
			break;
		nsp = ps_find_spans(t, v, cur, c->end, vlen, sp, &bend, &err);
		if (nsp < 0)
			return nsp;
		for (int i = 0; i < nsp; i++) {
			if (!c->runs_left || !c->pages_left)
				return 0;
			ret = ps_scan(t, c, v, sp[i].start, sp[i].end, true);
			if (ret || c->next < sp[i].end)
				return ret;
		}
		if (err)
			return err;
		cur = bend;
		c->next = cur;
	}
	return 0;
}

/* pmtrack_reset() in PMTRACK_REARM_WRITTEN mode: re-protect only spans
 * that hold written pages, with the kernel's fast path (no output) */
static int ps_reset_written(struct pmtrack *t, uintptr_t start, uintptr_t end)
{
	struct page_region buf[PMT_SCAN_BATCH_DEFAULT];
	struct ps_vec v = {
		.r = buf,
		.cap = t->scan_batch < PMT_SCAN_BATCH_DEFAULT
			       ? t->scan_batch
			       : PMT_SCAN_BATCH_DEFAULT,
	};
	struct ps_span sp[PS_MAX_SPANS];
	uintptr_t cur = start, bend;

	v.stale = v.cap; /* not initialised */
	while (cur < end) {
		int err, nsp = ps_find_spans(t, &v, cur, end, v.cap, sp, &bend,
					     &err);

		if (nsp < 0)
			return nsp;
		for (int i = 0; i < nsp; i++) {
			int ret = ps_reset_range(t, sp[i].start, sp[i].end);

			if (ret)
				return ret;
		}
		if (err)
			return err;
		cur = bend;
	}
	return 0;
}

static int ps_collect(struct pmtrack *t, struct pmt_collect *c, size_t first)
{
	struct page_region stackbuf[PMT_SCAN_BATCH_DEFAULT];
	/* the number of regions asked for never grows from one call to
	 * the next, so the vector is sized for the first */
	struct ps_vec v = {
		.r = stackbuf,
		.cap = min3(t->scan_batch, c->runs_left, c->pages_left),
	};
	int ret;

	(void)first;
	if (v.cap > PMT_SCAN_BATCH_DEFAULT) {
		v.r = calloc(v.cap, sizeof(*v.r));
		if (!v.r)
			return -ENOMEM;
	} else {
		v.stale = v.cap; /* not initialised */
	}
	if (c->reset && t->rearm == PMTRACK_REARM_WRITTEN)
		ret = ps_collect_written(t, c, &v);
	else
		ret = ps_scan(t, c, &v, c->start, c->end, c->reset);
	if (v.r != stackbuf)
		free(v.r);
	return ret;
}

const struct pmt_backend_ops pmt_pagemap_scan_ops = {
	.id = PMTRACK_BACKEND_PAGEMAP_SCAN,
	.usable = ps_usable,
	.open = ps_open,
	.close = ps_close,
	.watch = ps_watch,
	.unwatch = ps_unwatch,
	.collect = ps_collect,
	.reset = ps_reset,
	.first_written = ps_first_written,
};

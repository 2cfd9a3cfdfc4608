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

static int ps_reset(struct pmtrack *t, uintptr_t start, uintptr_t end,
		    size_t first)
{
	(void)first;
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

/*
 * The scan loop.  Each call covers [cur, end) and asks for at most as many
 * regions as the caller can still store (so a reset never reaches a page
 * that could not be reported) and at most pages_left pages.
 *
 * Where to resume: on Linux 6.7 .. 6.18 at least, walk_end is stale when
 * one call returns more than the kernel's internal buffer of regions (512
 * on x86_64): it still holds an intermediate flush point although the walk
 * went on.  A short call (fewer regions than asked) means the walk reached
 * the end or the page limit; a full call resumes at
 * max(walk_end, end of the last region), which is right in both cases.
 */
static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;

	return m < c ? m : c;
}

static int ps_collect(struct pmtrack *t, struct pmt_collect *c, size_t first)
{
	struct page_region stackbuf[PMT_SCAN_BATCH_DEFAULT];
	struct page_region *vec = stackbuf;
	/* a region holds at least one page and costs at most one run, so
	 * asking for more than either limit is useless; the number asked
	 * for never grows from one call to the next */
	size_t vlen = min3(t->scan_batch, c->runs_left, c->pages_left);
	size_t stale = vlen; /* leading entries that may hold old data */
	uintptr_t cur = c->start;
	int ret = 0;

	(void)first;
	if (vlen > PMT_SCAN_BATCH_DEFAULT) {
		vec = calloc(vlen, sizeof(*vec));
		if (!vec)
			return -ENOMEM;
		stale = 0;
	}
	c->next = c->start;
	while (cur < c->end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = PM_SCAN_CHECK_WPASYNC |
				 (c->reset ? PM_SCAN_WP_MATCHING : 0),
			.start = cur,
			.end = c->end,
			.vec = (uintptr_t)vec,
			.max_pages =
				c->pages_left == SIZE_MAX ? 0 : c->pages_left,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		size_t n;

		vlen = min3(vlen, c->runs_left, c->pages_left);
		if (!vlen)
			break;
		arg.vec_len = vlen;
		/* on an error the kernel does not say how many regions it
		 * wrote (and reset): zeroed slots let us count them */
		memset(vec, 0, (stale < vlen ? stale : vlen) * sizeof(*vec));
		ret = ps_ioctl(t, &arg);
		if (ret < 0) {
			for (n = 0; n < vlen && vec[n].end; n++)
				;
			ps_emit(c, vec, n);
			if (n)
				c->next = (uintptr_t)vec[n - 1].end;
			break;
		}
		n = (size_t)ret;
		stale = n;
		ret = 0;
		ps_emit(c, vec, n);
		if (n < vlen) {
			if (!c->pages_left) {
				/* stopped by max_pages; walk_end may be the
				 * next written page or (stale) earlier */
				cur = arg.walk_end;
				if (n && cur < vec[n - 1].end)
					cur = vec[n - 1].end;
			} else {
				cur = c->end;
			}
			c->next = cur;
			break;
		}
		cur = arg.walk_end;
		if (cur < vec[n - 1].end)
			cur = vec[n - 1].end;
		c->next = cur;
	}
	if (cur >= c->end)
		c->next = c->end;
	if (vec != stackbuf)
		free(vec);
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

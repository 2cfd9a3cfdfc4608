// SPDX-License-Identifier: MIT
/*
 * Behavioural feature probes.  Every answer comes from using the feature on
 * a scratch page of this process; only the errnos that mean "this kernel or
 * sandbox does not have it" count as "no", anything else is an error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pmtrack/pmtrack.h>

#include "probe.h"
#include "proc.h"
#include "uapi_compat.h"

/* cache values: 0 unknown, 1 unsupported, 2 supported */
static atomic_int feat_cache[PMTRACK_FEAT_MAX];
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const feat_names[PMTRACK_FEAT_MAX] = {
	[PMTRACK_FEAT_PAGEMAP_SCAN] = "pagemap-scan",
	[PMTRACK_FEAT_UFFD_WP_ASYNC] = "uffd-wp-async",
	[PMTRACK_FEAT_UFFD_WP] = "uffd-wp",
	[PMTRACK_FEAT_SOFT_DIRTY] = "soft-dirty",
	[PMTRACK_FEAT_PAGE_IS_WPALLOWED] = "page-is-wpallowed",
	[PMTRACK_FEAT_PAGE_IS_WRITTEN] = "page-is-written",
	[PMTRACK_FEAT_PAGE_IS_FILE] = "page-is-file",
	[PMTRACK_FEAT_PAGE_IS_PRESENT] = "page-is-present",
	[PMTRACK_FEAT_PAGE_IS_SWAPPED] = "page-is-swapped",
	[PMTRACK_FEAT_PAGE_IS_PFNZERO] = "page-is-pfnzero",
	[PMTRACK_FEAT_PAGE_IS_HUGE] = "page-is-huge",
	[PMTRACK_FEAT_PAGE_IS_SOFT_DIRTY] = "page-is-soft-dirty",
	[PMTRACK_FEAT_PAGE_IS_GUARD] = "page-is-guard",
};

PMTRACK_API const char *pmtrack_feature_name(enum pmtrack_feature feat)
{
	if ((int)feat <= 0 || feat >= PMTRACK_FEAT_MAX)
		return NULL;
	return feat_names[feat];
}

/* errnos meaning "not available to this process" rather than "broken" */
static bool unsupported_errno(int err)
{
	return err == ENOSYS || err == ENOTTY || err == EINVAL ||
	       err == EOPNOTSUPP || err == EPERM || err == EACCES ||
	       err == ENOENT;
}

static void *scratch_page(size_t ps)
{
	void *p = mmap(NULL, ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Read the /proc/self/pagemap entry of @addr. */
static int pagemap_entry(int fd, const void *addr, size_t ps, uint64_t *ent)
{
	off_t off = (off_t)((uintptr_t)addr / ps * sizeof(*ent));
	ssize_t n = pread(fd, ent, sizeof(*ent), off);

	if (n < 0)
		return -errno;
	return n == sizeof(*ent) ? 0 : -EIO;
}

/* ---- userfaultfd -------------------------------------------------------- */

static int uffd_create(void)
{
	int fd = (int)syscall(SYS_userfaultfd,
			      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	return fd < 0 ? -errno : fd;
}

static int uffd_api(int fd, uint64_t want, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	if (got)
		*got = api.features;
	return 0;
}

static atomic_uint_fast64_t uffd_feat_cache; /* bit 63 set = known */
#define UFFD_FEAT_KNOWN (1ULL << 63)

int pmt_uffd_features(uint64_t *features)
{
	uint64_t v = atomic_load(&uffd_feat_cache);
	int fd, err;

	if (!(v & UFFD_FEAT_KNOWN)) {
		fd = uffd_create();
		if (fd < 0) {
			if (!unsupported_errno(-fd))
				return fd;
			v = 0;
		} else {
			/* features = 0 asks for the supported set */
			err = uffd_api(fd, 0, &v);
			close(fd);
			if (err) {
				if (!unsupported_errno(-err))
					return err;
				v = 0;
			}
		}
		v &= ~UFFD_FEAT_KNOWN;
		atomic_store(&uffd_feat_cache, v | UFFD_FEAT_KNOWN);
	}
	*features = v & ~UFFD_FEAT_KNOWN;
	return 0;
}

static int uffd_register_wp(int fd, void *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT)))
		return -EOPNOTSUPP;
	return 0;
}

static int uffd_wp(int fd, void *p, size_t len, bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

/*
 * A userfaultfd with features @need (which the caller found supported),
 * and a scratch page, written once, that it write-protects.  Return 1 with
 * both in *fd and *page, 0 if this kernel or sandbox does not let us, or
 * -errno; on anything but 1 nothing is left open.
 */
static int wp_scratch(uint64_t need, size_t ps, int *fd, volatile char **page)
{
	volatile char *p = NULL;
	int u = uffd_create(), ret;

	if (u < 0)
		return unsupported_errno(-u) ? 0 : u;
	ret = uffd_api(u, need, NULL);
	if (!ret) {
		p = scratch_page(ps);
		if (!p) {
			close(u);
			return -ENOMEM;
		}
		p[0] = 1;
		ret = uffd_register_wp(u, (void *)p, ps);
	}
	if (!ret)
		ret = uffd_wp(u, (void *)p, ps, true);
	if (ret) {
		if (p)
			munmap((void *)p, ps);
		close(u);
		return unsupported_errno(-ret) ? 0 : ret;
	}
	*fd = u;
	*page = p;
	return 1;
}

/* does pagemap show the protected @page's uffd-wp bit, and no longer once
 * a write was let through by the kernel? */
static int wp_async_resolves(int pm, volatile char *page, size_t ps)
{
	uint64_t ent;
	int ret = pagemap_entry(pm, (void *)page, ps, &ent);

	if (ret || !(ent & PMT_PM_UFFD_WP))
		return ret;
	page[0] = 2;
	ret = pagemap_entry(pm, (void *)page, ps, &ent);
	if (ret)
		return ret;
	return !(ent & PMT_PM_UFFD_WP) && page[0] == 2;
}

/*
 * Async WP: protect a page, check pagemap shows the uffd-wp bit, write it
 * (the kernel resolves the fault itself), check the bit is gone.
 */
static int probe_uffd_wp_async(size_t ps)
{
	const uint64_t need =
		UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
	volatile char *page;
	uint64_t feats;
	int fd, pm, ret;

	ret = pmt_uffd_features(&feats);
	if (ret < 0)
		return ret;
	if ((feats & need) != need)
		return 0;
	pm = pmt_proc_open(0, "pagemap", O_RDONLY);
	if (pm < 0)
		return unsupported_errno(errno) ? 0 : -errno;
	ret = wp_scratch(need, ps, &fd, &page);
	if (ret == 1) {
		ret = wp_async_resolves(pm, page, ps);
		munmap((void *)page, ps);
		close(fd);
	}
	close(pm);
	return ret;
}

struct wp_writer {
	volatile char *page;
};

static void *wp_writer_fn(void *arg)
{
	struct wp_writer *w = arg;

	w->page[0] = 42;
	return NULL;
}

/* wait (2 s at most) for a message on @fd: 1 if it is a WP page fault, 0
 * if none came or it is another, or -errno */
static int wp_fault_arrives(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct uffd_msg msg;
	int ret;

	/* a signal handler without SA_RESTART cuts poll short */
	while ((ret = poll(&pfd, 1, 2000)) < 0 && errno == EINTR)
		;
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return 0; /* the write never reached us: not usable */
	if (read(fd, &msg, sizeof(msg)) != sizeof(msg))
		return -EIO;
	return msg.event == UFFD_EVENT_PAGEFAULT &&
	       (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
}

/*
 * Sync WP: protect a page, let a thread write it, and expect the write to
 * arrive as a WP page-fault message; resolving it lets the writer go on.
 */
static int probe_uffd_wp_sync(size_t ps)
{
	struct wp_writer w = { 0 };
	uint64_t feats;
	pthread_t th;
	int fd, ret, err;

	ret = pmt_uffd_features(&feats);
	if (ret < 0)
		return ret;
	if (!(feats & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		return 0;
	ret = wp_scratch(UFFD_FEATURE_PAGEFAULT_FLAG_WP, ps, &fd, &w.page);
	if (ret != 1)
		return ret;
	ret = -pthread_create(&th, NULL, wp_writer_fn, &w);
	if (!ret) {
		ret = wp_fault_arrives(fd);
		/* un-protect and wake the writer whatever happened */
		err = uffd_wp(fd, (void *)w.page, ps, false);
		if (err && ret >= 0)
			ret = err;
		pthread_join(th, NULL);
		if (ret == 1 && w.page[0] != 42)
			ret = 0;
	}
	munmap((void *)w.page, ps);
	close(fd);
	return ret;
}

/* ---- PAGEMAP_SCAN ------------------------------------------------------- */

static int pm_scan(int fd, struct pm_scan_arg *arg)
{
	int ret = ioctl(fd, PAGEMAP_SCAN, arg);

	return ret < 0 ? -errno : ret;
}

/*
 * Open /proc/self/pagemap and map a scratch page with a byte written to it.
 * Return: 1 ready, 0 if pagemap cannot be used here, or -errno.
 */
static int pagemap_and_page(size_t ps, int *fd, volatile char **page)
{
	*fd = pmt_proc_open(0, "pagemap", O_RDONLY);
	if (*fd < 0)
		return unsupported_errno(errno) ? 0 : -errno;
	*page = scratch_page(ps);
	if (!*page) {
		close(*fd);
		return -ENOMEM;
	}
	(*page)[0] = 1;
	return 1;
}

/* A real scan of a touched page must report it PRESENT. */
static int probe_pagemap_scan(size_t ps)
{
	struct page_region r[2];
	struct pm_scan_arg arg;
	volatile char *page;
	int fd, ret;

	ret = pagemap_and_page(ps, &fd, &page);
	if (ret <= 0)
		return ret;
	memset(r, 0, sizeof(r));
	arg = (struct pm_scan_arg){
		.size = sizeof(arg),
		.start = (uintptr_t)page,
		.end = (uintptr_t)page + ps,
		.vec = (uintptr_t)r,
		.vec_len = 2,
		.category_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	ret = pm_scan(fd, &arg);
	if (ret < 0)
		ret = unsupported_errno(-ret) ? 0 : ret;
	else
		ret = ret == 1 && r[0].start == (uintptr_t)page &&
		      r[0].end == (uintptr_t)page + ps &&
		      r[0].categories == PAGE_IS_PRESENT;
	munmap((void *)page, ps);
	close(fd);
	return ret;
}

/* A zero-length scan accepts exactly the category bits the kernel knows. */
static int probe_locked(enum pmtrack_feature feat, size_t ps);

static int probe_category(uint64_t bit, size_t ps)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = ps,
		.end = ps,
		.return_mask = bit,
	};
	int fd, ret;

	ret = probe_locked(PMTRACK_FEAT_PAGEMAP_SCAN, ps);
	if (ret <= 0)
		return ret;
	fd = pmt_proc_open(0, "pagemap", O_RDONLY);
	if (fd < 0)
		return unsupported_errno(errno) ? 0 : -errno;
	ret = pm_scan(fd, &arg);
	close(fd);
	if (ret == -EINVAL)
		return 0;
	return ret < 0 ? ret : 1;
}

/* ---- soft-dirty --------------------------------------------------------- */

static int clear_soft_dirty(void)
{
	int fd = pmt_proc_open(0, "clear_refs", O_WRONLY);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, "4", 1);
	err = n == 1 ? 0 : n < 0 ? -errno : -EIO;
	close(fd);
	return err;
}

/*
 * Write a page, clear, check bit 55 went away, write again, check it came
 * back.  A kernel without CONFIG_MEM_SOFT_DIRTY accepts "4" but never sets
 * the bit, so only the final read decides.
 */
static int probe_soft_dirty(size_t ps)
{
	volatile char *page;
	uint64_t ent;
	int pm, ret;

	ret = pagemap_and_page(ps, &pm, &page);
	if (ret <= 0)
		return ret;
	ret = clear_soft_dirty();
	if (ret) {
		ret = unsupported_errno(-ret) ? 0 : ret;
		goto out;
	}
	ret = pagemap_entry(pm, (void *)page, ps, &ent);
	if (ret)
		goto out;
	if (ent & PMT_PM_SOFT_DIRTY) {
		ret = 0; /* clearing does not work */
		goto out;
	}
	page[0] = 2;
	ret = pagemap_entry(pm, (void *)page, ps, &ent);
	if (!ret)
		ret = !!(ent & PMT_PM_SOFT_DIRTY);
out:
	munmap((void *)page, ps);
	close(pm);
	return ret;
}

/* ---- dispatch ----------------------------------------------------------- */

static int probe_uncached(enum pmtrack_feature feat, size_t ps)
{
	int ret;

	switch (feat) {
	case PMTRACK_FEAT_PAGEMAP_SCAN:
		return probe_pagemap_scan(ps);
	case PMTRACK_FEAT_UFFD_WP_ASYNC:
		return probe_uffd_wp_async(ps);
	case PMTRACK_FEAT_UFFD_WP:
		return probe_uffd_wp_sync(ps);
	case PMTRACK_FEAT_SOFT_DIRTY:
		return probe_soft_dirty(ps);
	case PMTRACK_FEAT_PAGE_IS_WPALLOWED:
		return probe_category(PAGE_IS_WPALLOWED, ps);
	case PMTRACK_FEAT_PAGE_IS_WRITTEN:
		return probe_category(PAGE_IS_WRITTEN, ps);
	case PMTRACK_FEAT_PAGE_IS_FILE:
		return probe_category(PAGE_IS_FILE, ps);
	case PMTRACK_FEAT_PAGE_IS_PRESENT:
		return probe_category(PAGE_IS_PRESENT, ps);
	case PMTRACK_FEAT_PAGE_IS_SWAPPED:
		return probe_category(PAGE_IS_SWAPPED, ps);
	case PMTRACK_FEAT_PAGE_IS_PFNZERO:
		return probe_category(PAGE_IS_PFNZERO, ps);
	case PMTRACK_FEAT_PAGE_IS_HUGE:
		return probe_category(PAGE_IS_HUGE, ps);
	case PMTRACK_FEAT_PAGE_IS_GUARD:
		return probe_category(PAGE_IS_GUARD, ps);
	case PMTRACK_FEAT_PAGE_IS_SOFT_DIRTY:
		ret = probe_category(PAGE_IS_SOFT_DIRTY, ps);
		if (ret <= 0)
			return ret;
		return probe_locked(PMTRACK_FEAT_SOFT_DIRTY, ps);
	default:
		return -EINVAL;
	}
}

/* Cached answer, or probe now.  Called with probe_lock held. */
static int probe_locked(enum pmtrack_feature feat, size_t ps)
{
	int v = atomic_load_explicit(&feat_cache[feat], memory_order_acquire);
	int ret;

	if (v)
		return v - 1;
	ret = probe_uncached(feat, ps);
	if (ret >= 0)
		atomic_store_explicit(&feat_cache[feat], ret + 1,
				      memory_order_release);
	return ret;
}

PMTRACK_API int pmtrack_probe(enum pmtrack_feature feat, const void *opts)
{
	int v, ret;

	if (opts || (int)feat <= 0 || feat >= PMTRACK_FEAT_MAX)
		return -EINVAL;
	v = atomic_load_explicit(&feat_cache[feat], memory_order_acquire);
	if (v)
		return v - 1;

	/* one probe at a time: some touch process-wide state (clear_refs) */
	pthread_mutex_lock(&probe_lock);
	ret = probe_locked(feat, (size_t)sysconf(_SC_PAGESIZE));
	pthread_mutex_unlock(&probe_lock);
	return ret;
}

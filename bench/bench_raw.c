// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench_raw.h"

#include "uapi_compat.h"

#define RAW_UFFD_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)

_Static_assert(sizeof(((struct bench_raw *)0)->vec) >=
		       BENCH_RAW_VEC_LEN * sizeof(struct page_region),
	       "bench_raw.vec too small");

int bench_raw_setup(struct bench_raw *r, char *base, size_t len,
		    size_t page_size)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = RAW_UFFD_FEATURES,
	};
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	int ret;

	memset(r, 0, sizeof(*r));
	r->base = base;
	r->len = len;
	r->page_size = page_size;
	r->uffd = -1;
	r->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (r->pagemap_fd < 0)
		return -errno;
	r->uffd = (int)syscall(SYS_userfaultfd,
			       O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (r->uffd < 0)
		goto err;
	if (ioctl(r->uffd, UFFDIO_API, &api)) {
		errno = errno == EINVAL ? EOPNOTSUPP : errno;
		goto err;
	}
	reg.range.start = (uintptr_t)base;
	reg.range.len = len;
	if (ioctl(r->uffd, UFFDIO_REGISTER, &reg))
		goto err;
	ret = bench_raw_arm(r, (uintptr_t)base, (uintptr_t)base + len);
	if (ret) {
		errno = -ret;
		goto err;
	}
	return 0;
err:
	ret = -errno;
	bench_raw_close(r);
	return ret;
}

void bench_raw_close(struct bench_raw *r)
{
	if (r->uffd >= 0)
		close(r->uffd);
	if (r->pagemap_fd >= 0)
		close(r->pagemap_fd);
	r->uffd = r->pagemap_fd = -1;
}

int bench_raw_arm(struct bench_raw *r, uintptr_t s, uintptr_t e)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = s,
		.end = e,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};

	return ioctl(r->pagemap_fd, PAGEMAP_SCAN, &arg) < 0 ? -errno : 0;
}

/*
 * A call that fills the vector may have stopped anywhere: resume at
 * max(walk_end, end of the last region), since walk_end is stale when the
 * kernel produced more than its internal buffer of regions in one call.
 */
long bench_raw_collect(struct bench_raw *r, uintptr_t s, uintptr_t e,
		       bool reset, size_t max, void **out)
{
	struct page_region *vec = (struct page_region *)r->vec;
	size_t pages = 0;

	while (s < e && (!max || pages < max)) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = reset ? PM_SCAN_WP_MATCHING |
						 PM_SCAN_CHECK_WPASYNC
				       : 0,
			.start = s,
			.end = e,
			.vec = (uintptr_t)vec,
			.vec_len = BENCH_RAW_VEC_LEN,
			.max_pages = max ? max - pages : 0,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		int n = ioctl(r->pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++)
			for (uintptr_t a = vec[i].start; a < vec[i].end;
			     a += r->page_size) {
				if (out)
					out[pages] = (void *)a;
				pages++;
			}
		if (n < BENCH_RAW_VEC_LEN)
			break;
		s = arg.walk_end;
		if (s < vec[n - 1].end)
			s = vec[n - 1].end;
	}
	return (long)pages;
}

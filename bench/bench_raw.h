/* SPDX-License-Identifier: MIT */
/*
 * The raw kernel mechanism the library is measured against: a range
 * registered with an async write-protect userfaultfd, read and re-armed with
 * PAGEMAP_SCAN on /proc/self/pagemap, written out by hand with no library.
 */
#ifndef PMTRACK_BENCH_RAW_H
#define PMTRACK_BENCH_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_RAW_VEC_LEN 512

struct bench_raw {
	int uffd;
	int pagemap_fd;
	char *base;
	size_t len;
	size_t page_size;
	/* struct page_region, kept opaque here */
	uint64_t vec[BENCH_RAW_VEC_LEN * 3];
};

/* register [base, base + len) and write-protect it: 0, or -errno
 * (-EOPNOTSUPP if the kernel lacks async write-protect) */
int bench_raw_setup(struct bench_raw *r, char *base, size_t len,
		    size_t page_size);
void bench_raw_close(struct bench_raw *r);

/* write-protect every page of [s, e) again: 0 or -errno */
int bench_raw_arm(struct bench_raw *r, uintptr_t s, uintptr_t e);

/*
 * The written pages of [s, e), at most @max pages (0: no limit), stored in
 * @out (page addresses) unless NULL; with @reset they are write-protected
 * again, only those reported.  Returns the count or -errno.
 */
long bench_raw_collect(struct bench_raw *r, uintptr_t s, uintptr_t e,
		       bool reset, size_t max, void **out);

#endif

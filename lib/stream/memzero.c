// SPDX-License-Identifier: MIT
/*
 * Making memory read as zero without committing memory for it.
 *
 * A receiver applying zero pages into memory it just mapped would commit
 * every page if it wrote the zeros (and a tiny stream can declare gigabytes
 * of them).  Private anonymous memory is dropped instead: after
 * MADV_DONTNEED its pages read as zero and cost nothing until written.
 * That is only true of private anonymous memory (in a shared or file
 * mapping the pages come back from the object), and the kernel says which
 * memory that is: MADV_FREE is accepted exactly there (anonymous, private,
 * not locked, not hugetlb), and it only marks pages we are about to drop.
 * In a shared writable mapping, MADV_REMOVE punches a hole in the object
 * (shmem, memfd, hugetlbfs, and files whose file system can), which reads
 * as zero through every mapping of it, as written zeros would.  Anything
 * else is written, and only where it is not zero already.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stream_internal.h"

#ifndef MADV_FREE
#define MADV_FREE 8
#endif

/* Zero [p, p + len), writing only the 256-byte blocks that are not zero. */
static void zero_written(uint8_t *p, size_t len)
{
	while (len) {
		size_t n = len < 256 ? len : 256;
		const uint8_t *q = p;
		uint8_t acc = 0;

		for (size_t i = 0; i < n; i++)
			acc |= q[i];
		if (acc)
			memset(p, 0, n);
		p += n;
		len -= n;
	}
}

int pmt_zero_range(void *addr, size_t len)
{
	size_t hp = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)addr, e = a + len;
	uintptr_t s = (a + hp - 1) & ~(uintptr_t)(hp - 1);
	uintptr_t t = e & ~(uintptr_t)(hp - 1);

	if (t <= s) {
		zero_written(addr, len);
		return 0;
	}
	zero_written(addr, s - a);
	zero_written((uint8_t *)t, e - t);
	if (!madvise((void *)s, t - s, MADV_FREE) &&
	    !madvise((void *)s, t - s, MADV_DONTNEED))
		return 1;
	if (!madvise((void *)s, t - s, MADV_REMOVE))
		return 1;
	/* a mix, or memory neither works on: what was freed or removed of
	   it reads as zero already, and writing cancels a free */
	zero_written((uint8_t *)s, t - s);
	return 0;
}

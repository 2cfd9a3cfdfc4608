// SPDX-License-Identifier: MIT
/*
 * What a collect reports: exact page sets in all three output forms, reset
 * and no-reset, sub-ranges, truncation (the GetWriteWatch rule), reset-only,
 * kernel writes, statistics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

#define N 64

static struct pmtrack *t;
static char *buf;

static void setup(void)
{
	t = t_new(0);
	buf = t_map_anon(N);
	ck_assert_int_eq(pmtrack_watch(t, buf, N * ps), 0);
}

static void teardown(void)
{
	pmtrack_free(t);
	munmap(buf, N * ps);
}

START_TEST(starts_clean)
{
	/* pages written before watch are not reported */
	char *b = t_map_anon(8);
	struct pmtrack *t2 = t_new(0);

	memset(b, 1, 8 * ps);
	ck_assert_int_eq(pmtrack_watch(t2, b, 8 * ps), 0);
	t_expect_idx(t2, b, 8, 0, NULL, 0);
	b[2 * ps] = 1;
	t_expect_idx(t2, b, 8, 0, (size_t[]){ 2 }, 1);
	pmtrack_free(t2);
	munmap(b, 8 * ps);
}
END_TEST

START_TEST(pages_exact)
{
	const size_t want[] = { 0, 1, 2, 9, 31, 32, 63 };

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		buf[want[i] * ps + (i * 97) % ps] = (char)i;
	/* without reset: reported twice */
	t_expect_idx(t, buf, N, 0, want, 7);
	t_expect_idx(t, buf, N, 0, want, 7);
	/* with reset: reported once, then clean */
	t_expect_idx(t, buf, N, PMTRACK_COLLECT_RESET, want, 7);
	t_expect_idx(t, buf, N, 0, NULL, 0);
	/* rewriting a reported page reports it again */
	buf[9 * ps] = 5;
	t_expect_idx(t, buf, N, PMTRACK_COLLECT_RESET, (size_t[]){ 9 }, 1);
}
END_TEST

START_TEST(reads_do_not_count)
{
	volatile char sink = 0;

	for (size_t i = 0; i < N; i++)
		sink += buf[i * ps];
	(void)sink;
	t_expect_idx(t, buf, N, 0, NULL, 0);
}
END_TEST

START_TEST(straddling_write)
{
	/* a 4-byte store across a page boundary dirties both pages */
	uint32_t v = 0xdeadbeef;

	memcpy(&buf[5 * ps - 2], &v, sizeof(v));
	t_expect_idx(t, buf, N, 0, (size_t[]){ 4, 5 }, 2);
}
END_TEST

START_TEST(bitmap_exact)
{
	struct pmtrack_bitmap *bm;
	const uint64_t *w;
	size_t nw;

	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	buf[0] = buf[1 * ps] = buf[40 * ps] = buf[63 * ps] = 1;
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, N * ps, 0, bm), 0);
	ck_assert_ptr_eq(pmtrack_bitmap_addr(bm), buf);
	ck_assert_uint_eq(pmtrack_bitmap_npages(bm), N);
	ck_assert_uint_eq(pmtrack_bitmap_count(bm), 4);
	w = pmtrack_bitmap_words(bm, &nw);
	ck_assert_uint_eq(nw, 1);
	ck_assert_uint_eq(w[0], (1ULL << 0) | (1ULL << 1) | (1ULL << 40) |
					(1ULL << 63));
	ck_assert_int_eq(pmtrack_bitmap_test(bm, 40), 1);
	ck_assert_int_eq(pmtrack_bitmap_test(bm, 41), 0);
	ck_assert_int_eq(pmtrack_bitmap_test(bm, N), 0);
	ck_assert_uint_eq(pmtrack_bitmap_next(bm, 0), 0);
	ck_assert_uint_eq(pmtrack_bitmap_next(bm, 2), 40);
	ck_assert_uint_eq(pmtrack_bitmap_next(bm, 41), 63);
	ck_assert_uint_eq(pmtrack_bitmap_next(bm, 64), N);

	/* sub-range: bit 0 is the sub-range's first page; reset it only */
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf + 32 * ps, 32 * ps,
						PMTRACK_COLLECT_RESET, bm),
			 0);
	ck_assert_ptr_eq(pmtrack_bitmap_addr(bm), buf + 32 * ps);
	ck_assert_uint_eq(pmtrack_bitmap_npages(bm), 32);
	ck_assert_uint_eq(pmtrack_bitmap_count(bm), 2);
	ck_assert_int_eq(pmtrack_bitmap_test(bm, 8), 1);
	ck_assert_int_eq(pmtrack_bitmap_test(bm, 31), 1);
	t_expect_idx(t, buf, N, 0, (size_t[]){ 0, 1 }, 2);

	/* argument errors leave the bitmap as it was */
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, N * ps + 1, 0, bm),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, N * ps, 4, bm),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, 0, 0, bm), -EINVAL);
	ck_assert_ptr_eq(pmtrack_bitmap_addr(bm), buf + 32 * ps);
	ck_assert_uint_eq(pmtrack_bitmap_npages(bm), 32);
	ck_assert_uint_eq(pmtrack_bitmap_count(bm), 2);
	ck_assert_int_eq(pmtrack_bitmap_test(bm, 8), 1);
	pmtrack_bitmap_free(bm);
}
END_TEST

START_TEST(bitmap_large_runs)
{
	/* runs crossing word boundaries, a full-word run, and reuse of a
	 * bitmap for a larger range */
	struct pmtrack_bitmap *bm;
	size_t i;

	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, ps, 0, bm), 0);
	ck_assert_uint_eq(pmtrack_bitmap_count(bm), 0);
	memset(buf + 3 * ps, 1, 58 * ps); /* pages 3..60 */
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, N * ps, 0, bm), 0);
	ck_assert_uint_eq(pmtrack_bitmap_count(bm), 58);
	for (i = 0; i < N; i++)
		ck_assert_int_eq(pmtrack_bitmap_test(bm, i), i >= 3 && i <= 60);
	pmtrack_bitmap_free(bm);
}
END_TEST

START_TEST(runs_maximal)
{
	struct pmtrack_run r[8];
	size_t n = 8;

	memset(buf + 10 * ps, 1, 5 * ps); /* 10..14 */
	buf[20 * ps] = 1;
	memset(buf + 21 * ps, 1, 2 * ps); /* 20..22, written in two steps */
	buf[63 * ps] = 1;
	ck_assert_int_eq(pmtrack_collect_runs(t, buf, N * ps, 0, r, &n, NULL),
			 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_ptr_eq(r[0].addr, buf + 10 * ps);
	ck_assert_uint_eq(r[0].len, 5 * ps);
	ck_assert_ptr_eq(r[1].addr, buf + 20 * ps);
	ck_assert_uint_eq(r[1].len, 3 * ps);
	ck_assert_ptr_eq(r[2].addr, buf + 63 * ps);
	ck_assert_uint_eq(r[2].len, ps);
}
END_TEST

START_TEST(truncation_rule)
{
	/* GetWriteWatch: pages 1, 2, 4 written, room for one address: only
	 * page 1 comes back, and a reset covers only up to it */
	void *pages[4] = { 0 };
	void *next = NULL;
	size_t n = 1;

	buf[1 * ps] = buf[2 * ps] = buf[4 * ps] = 1;
	ck_assert_int_eq(pmtrack_collect_pages(t, buf, N * ps,
					       PMTRACK_COLLECT_RESET, pages, &n,
					       &next),
			 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_eq(pages[0], buf + ps);
	ck_assert_ptr_null(pages[1]);
	/* next is page 2: resume from there */
	ck_assert_ptr_eq(next, buf + 2 * ps);
	t_expect_idx(t, buf, N, 0, (size_t[]){ 2, 4 }, 2);

	/* room for two: pages 2 and 4, everything up to page 4 reset */
	n = 2;
	ck_assert_int_eq(pmtrack_collect_pages(t, buf, N * ps,
					       PMTRACK_COLLECT_RESET, pages, &n,
					       &next),
			 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_eq(pages[0], buf + 2 * ps);
	ck_assert_ptr_eq(pages[1], buf + 4 * ps);
	t_expect_idx(t, buf, N, 0, NULL, 0);
}
END_TEST

START_TEST(truncation_within_run)
{
	/* a run longer than the capacity is cut at the capacity */
	void *pages[3];
	void *next;
	size_t n = 3;

	memset(buf + 8 * ps, 1, 6 * ps); /* 8..13 */
	ck_assert_int_eq(pmtrack_collect_pages(t, buf, N * ps,
					       PMTRACK_COLLECT_RESET, pages, &n,
					       &next),
			 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_ptr_eq(pages[2], buf + 10 * ps);
	ck_assert_ptr_eq(next, buf + 11 * ps);
	t_expect_idx(t, buf, N, 0, (size_t[]){ 11, 12, 13 }, 3);
}
END_TEST

START_TEST(truncation_runs)
{
	struct pmtrack_run r[2];
	void *next;
	size_t n = 2;

	buf[1 * ps] = buf[2 * ps] = buf[5 * ps] = buf[7 * ps] = 1;
	ck_assert_int_eq(pmtrack_collect_runs(t, buf, N * ps,
					      PMTRACK_COLLECT_RESET, r, &n,
					      &next),
			 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_eq(r[0].addr, buf + ps);
	ck_assert_uint_eq(r[0].len, 2 * ps);
	ck_assert_ptr_eq(r[1].addr, buf + 5 * ps);
	t_assert_ptr_gt(next, buf + 5 * ps);
	t_assert_ptr_le(next, buf + 7 * ps);
	t_expect_idx(t, buf, N, 0, (size_t[]){ 7 }, 1);
}
END_TEST

START_TEST(next_whole_range)
{
	void *pages[N];
	void *next = NULL;
	size_t n = N;

	buf[3 * ps] = 1;
	ck_assert_int_eq(
		pmtrack_collect_pages(t, buf, N * ps, 0, pages, &n, &next), 0);
	ck_assert_ptr_eq(next, buf + N * ps);
	/* exactly as many written pages as room */
	n = 1;
	ck_assert_int_eq(
		pmtrack_collect_pages(t, buf, N * ps, 0, pages, &n, &next), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_eq(next, buf + N * ps);
	/* one more written page than room: next is that page */
	buf[9 * ps] = 1;
	n = 1;
	ck_assert_int_eq(
		pmtrack_collect_pages(t, buf, N * ps, 0, pages, &n, &next), 0);
	ck_assert_ptr_eq(next, buf + 9 * ps);
}
END_TEST

START_TEST(subrange_absolute)
{
	buf[5 * ps] = buf[20 * ps] = buf[21 * ps] = buf[50 * ps] = 1;
	/* sub-range [16, 48): absolute addresses, only inside it */
	{
		void *pages[32];
		size_t n = 32;

		ck_assert_int_eq(pmtrack_collect_pages(t, buf + 16 * ps,
						       32 * ps,
						       PMTRACK_COLLECT_RESET,
						       pages, &n, NULL),
				 0);
		ck_assert_uint_eq(n, 2);
		ck_assert_ptr_eq(pages[0], buf + 20 * ps);
		ck_assert_ptr_eq(pages[1], buf + 21 * ps);
	}
	/* the reset touched only the sub-range */
	t_expect_idx(t, buf, N, 0, (size_t[]){ 5, 50 }, 2);
}
END_TEST

START_TEST(reset_only)
{
	buf[1 * ps] = buf[30 * ps] = buf[60 * ps] = 1;
	ck_assert_int_eq(pmtrack_reset(t, buf + 16 * ps, 32 * ps), 0);
	t_expect_idx(t, buf, N, 0, (size_t[]){ 1, 60 }, 2);
	ck_assert_int_eq(pmtrack_reset(t, buf, N * ps), 0);
	t_expect_idx(t, buf, N, 0, NULL, 0);
	buf[30 * ps] = 2;
	t_expect_idx(t, buf, N, 0, (size_t[]){ 30 }, 1);
}
END_TEST

START_TEST(kernel_writes)
{
	/* read(2) writes into watched pages from the kernel */
	int fds[2];
	char data[3 * 4096];

	ck_assert_int_eq(pipe(fds), 0);
	memset(data, 'x', sizeof(data));
	ck_assert_int_eq(write(fds[1], data, 2 * ps + 10),
			 (ssize_t)(2 * ps + 10));
	/* from the middle of page 6 to the start of page 9 */
	if (!(t_caps & PMTRACK_CAP_KERNEL_WRITES)) {
		/* as documented: an armed page makes the kernel fail */
		errno = 0;
		ck_assert_int_eq(read(fds[0], buf + 6 * ps + 100, 10), -1);
		ck_assert_int_eq(errno, EFAULT);
		t_expect_idx(t, buf, N, 0, NULL, 0);
		/* arguments: any byte range inside watched memory */
		ck_assert_int_eq(pmtrack_prepare_kernel_write(t, buf, 0),
				 -EINVAL);
		ck_assert_int_eq(pmtrack_prepare_kernel_write(
					 t, buf + (N - 1) * ps + 1, ps),
				 -ENOENT);
		ck_assert_int_eq(pmtrack_prepare_kernel_write(NULL, buf, ps),
				 -EINVAL);
	}
	ck_assert_int_eq(t_kread(t, fds[0], buf + 6 * ps + 100, 2 * ps + 10),
			 (ssize_t)(2 * ps + 10));
	t_expect_idx(t, buf, N, 0, (size_t[]){ 6, 7, 8 }, 3);
	/* the pages are armed again by a reset, and report new writes */
	t_expect_idx(t, buf, N, PMTRACK_COLLECT_RESET, (size_t[]){ 6, 7, 8 },
		     3);
	buf[7 * ps] = 1;
	t_expect_idx(t, buf, N, 0, (size_t[]){ 7 }, 1);
	/* on every backend the call is valid on watched memory */
	ck_assert_int_eq(pmtrack_prepare_kernel_write(t, buf + 10, 5), 0);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(several_ranges)
{
	/* a collect may span adjacent watched ranges */
	char *b = t_map_anon(32);

	ck_assert_int_eq(pmtrack_watch(t, b, 16 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 16 * ps, 16 * ps), 0);
	b[15 * ps] = b[16 * ps] = b[31 * ps] = 1;
	t_expect_idx(t, b, 32, PMTRACK_COLLECT_RESET, (size_t[]){ 15, 16, 31 },
		     3);
	t_expect_idx(t, b, 32, 0, NULL, 0);
	munmap(b, 32 * ps);
}
END_TEST

START_TEST(stats_count)
{
	struct pmtrack_stats st;
	struct pmtrack_bitmap *bm;
	void *pages[N];
	size_t n = N;

	memset(&st, 0xff, sizeof(st));
	st.sz = sizeof(st);
	ck_assert_int_eq(pmtrack_get_stats(t, &st), 0);
	ck_assert_uint_eq(st.collects, 0);
	ck_assert_uint_eq(st.pages_reported, 0);
	/* watch armed the range with a scan (pagemap-scan), or read the
	 * pagemap (soft-dirty); the others make no scans */
	if (t_backend == PMTRACK_BACKEND_PAGEMAP_SCAN)
		ck_assert_uint_ge(st.scans, 1);

	buf[0] = buf[ps] = buf[7 * ps] = 1;
	ck_assert_int_eq(
		pmtrack_collect_pages(t, buf, N * ps, 0, pages, &n, NULL), 0);
	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, N * ps,
						PMTRACK_COLLECT_RESET, bm),
			 0);
	ck_assert_int_eq(pmtrack_reset(t, buf, N * ps), 0);
	ck_assert_int_eq(pmtrack_get_stats(t, &st), 0);
	ck_assert_uint_eq(st.collects, 2);
	ck_assert_uint_eq(st.resets, 1);
	ck_assert_uint_eq(st.pages_reported, 6);
	if (t_backend != PMTRACK_BACKEND_MPROTECT) {
		/* uffd-wp: one pagemap sweep per collect, none per reset;
		 * soft-dirty: a fold per collect and per reset */
		ck_assert_uint_ge(st.scans,
				  t_backend == PMTRACK_BACKEND_UFFD_WP ? 2 : 3);
		ck_assert_uint_gt(st.scan_ns, 0);
	} else {
		ck_assert_uint_eq(st.scans, 0);
	}

	/* a failed collect is not counted */
	n = N;
	ck_assert_int_eq(
		pmtrack_collect_pages(t, buf, (N + 1) * ps, 0, pages, &n, NULL),
		-ENOENT);
	ck_assert_int_eq(pmtrack_get_stats(t, &st), 0);
	ck_assert_uint_eq(st.collects, 2);
	pmtrack_bitmap_free(bm);
}
END_TEST

START_TEST(stats_sizes)
{
	/* an older, smaller struct gets only its fields; a newer, larger one
	 * gets zeroes past ours */
	struct {
		struct pmtrack_stats s;
		uint64_t future[2];
	} big;
	struct pmtrack_stats small;

	buf[0] = 1;
	t_expect_idx(t, buf, N, 0, (size_t[]){ 0 }, 1);
	memset(&small, 0xab, sizeof(small));
	small.sz = offsetof(struct pmtrack_stats, resets);
	ck_assert_int_eq(pmtrack_get_stats(t, &small), 0);
	ck_assert_uint_eq(small.collects, 1);
	ck_assert_uint_eq(small.resets, 0xababababababababULL);

	memset(&big, 0xab, sizeof(big));
	big.s.sz = sizeof(big);
	ck_assert_int_eq(pmtrack_get_stats(t, &big.s), 0);
	ck_assert_uint_eq(big.s.collects, 1);
	ck_assert_uint_eq(big.future[0], 0);
	ck_assert_uint_eq(big.future[1], 0);

	small.sz = 3;
	ck_assert_int_eq(pmtrack_get_stats(t, &small), -EINVAL);
	ck_assert_int_eq(pmtrack_get_stats(NULL, &big.s), -EINVAL);
}
END_TEST

START_TEST(granularity)
{
	ck_assert_uint_eq(pmtrack_granularity(t),
			  (size_t)sysconf(_SC_PAGESIZE));
	ck_assert_uint_eq(pmtrack_granularity(NULL), 0);
}
END_TEST

struct racer {
	struct pmtrack *t;
	char *buf;
	size_t npages;
	unsigned char *seen; /* per page: times reported */
};

static void *reset_collector(void *arg)
{
	struct racer *r = arg;
	char *at = r->buf, *end = r->buf + r->npages * ps;

	while (at < end) {
		void *pages[5], *next;
		size_t n = 5;

		if (pmtrack_collect_pages(r->t, at, end - at,
					  PMTRACK_COLLECT_RESET, pages, &n,
					  &next))
			return (void *)1;
		for (size_t i = 0; i < n; i++)
			__atomic_fetch_add(
				&r->seen[((char *)pages[i] - r->buf) / ps], 1,
				__ATOMIC_RELAXED);
		at = next;
	}
	return NULL;
}

START_TEST(concurrent_reset_collects)
{
	/* two threads collect+reset the same written pages at once: between
	 * them every page is reported exactly once */
	enum { NP = 4096 };
	struct racer r = { .t = t_new(0), .npages = NP };
	pthread_t th[2];
	void *ret[2];
	size_t i;

	r.buf = t_map_anon(NP);
	r.seen = calloc(NP, 1);
	ck_assert_int_eq(pmtrack_watch(r.t, r.buf, NP * ps), 0);
	for (int round = 0; round < 5; round++) {
		memset(r.seen, 0, NP);
		for (i = 0; i < NP; i++)
			if (i % 3 != 1)
				r.buf[i * ps] = 1;
		for (i = 0; i < 2; i++)
			ck_assert_int_eq(pthread_create(&th[i], NULL,
							reset_collector, &r),
					 0);
		for (i = 0; i < 2; i++) {
			pthread_join(th[i], &ret[i]);
			ck_assert_ptr_null(ret[i]);
		}
		for (i = 0; i < NP; i++)
			t_check(r.seen[i] == (i % 3 != 1), "page %zu seen %d",
				i, r.seen[i]);
	}
	free(r.seen);
	pmtrack_free(r.t);
	munmap(r.buf, NP * ps);
}
END_TEST

static Suite *collect_suite(void)
{
	Suite *s = suite_create("collect");
	TCase *tc = tcase_create("outputs");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, starts_clean);
	tcase_add_test(tc, pages_exact);
	tcase_add_test(tc, reads_do_not_count);
	tcase_add_test(tc, straddling_write);
	tcase_add_test(tc, bitmap_exact);
	tcase_add_test(tc, bitmap_large_runs);
	tcase_add_test(tc, runs_maximal);
	tcase_add_test(tc, truncation_rule);
	tcase_add_test(tc, truncation_within_run);
	tcase_add_test(tc, truncation_runs);
	tcase_add_test(tc, next_whole_range);
	tcase_add_test(tc, subrange_absolute);
	tcase_add_test(tc, reset_only);
	tcase_add_test(tc, kernel_writes);
	tcase_add_test(tc, several_ranges);
	tcase_add_test(tc, stats_count);
	tcase_add_test(tc, stats_sizes);
	tcase_add_test(tc, granularity);
	tcase_add_test(tc, concurrent_reset_collects);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int r = t_init();

	return r ? r : t_run(collect_suite());
}

// SPDX-License-Identifier: MIT
/*
 * pagemap-scan's re-arm modes (pmtrack_opts.rearm), each test in both:
 * exact reports for written pages laid out to make many spans (more than
 * the 32 a batch may have, so the gap between runs must widen), a reset
 * that re-arms exactly what was written, output limits that stop the scan
 * and leave the rest for the next collect, two threads collecting with
 * RESET at once, and the system calls each mode makes.
 *
 * What it cannot show: that WRITTEN keeps a secondary MMU's mappings of
 * clean pages (the point of the mode).  No userspace-visible state of this
 * process differs between the modes (the same pages end up write-protected,
 * pagemap reads the same); only a secondary MMU sees the difference, and
 * that is for a test with a KVM guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

#define NP 8192 /* pages watched */

static const enum pmtrack_rearm modes[] = { PMTRACK_REARM_WRITTEN,
					    PMTRACK_REARM_RANGE };

static struct pmtrack *t;
static char *buf;
static bool *want; /* per page: written since the last reset */

static struct pmtrack *new_mode(enum pmtrack_rearm m)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .rearm = m);
	struct pmtrack *r = NULL;

	ck_assert_int_eq(pmtrack_new(&o, &r), 0);
	ck_assert_int_eq(pmtrack_rearm(r), m);
	return r;
}

static void setup_mode(int i)
{
	t = new_mode(modes[i]);
	buf = t_map_anon(NP);
	want = calloc(NP, sizeof(*want));
	ck_assert_ptr_nonnull(want);
	ck_assert_int_eq(pmtrack_watch(t, buf, NP * ps), 0);
}

/* maximal runs of written pages in want[] */
static size_t runs_wanted(void)
{
	size_t n = 0;

	for (size_t p = 0; p < NP; p++)
		n += want[p] && (!p || !want[p - 1]);
	return n;
}

static void teardown_mode(void)
{
	pmtrack_free(t);
	munmap(buf, NP * ps);
	free(want);
}

static void write_page(size_t p)
{
	buf[p * ps + p % 61] = (char)(p + 1);
	want[p] = true;
}

/*
 * Lone pages 40 apart, pairs exactly 16 and 17 pages apart, a run of 300
 * pages, the first and the last page: about 150 runs, each re-protected
 * on its own in WRITTEN mode.
 */
static void write_pattern(unsigned int seed)
{
	write_page(0);
	write_page(NP - 1);
	for (size_t p = 100 + seed; p < 4000; p += 40)
		write_page(p);
	write_page(4100);
	write_page(4117); /* 16 clean pages between */
	write_page(4200);
	write_page(4218); /* 17 */
	for (size_t p = 5000; p < 5300; p++)
		write_page(p);
	for (size_t p = 6000 + seed; p < NP - 1; p += 97)
		write_page(p);
}

static size_t expected(void)
{
	size_t n = 0;

	for (size_t p = 0; p < NP; p++)
		n += want[p];
	return n;
}

/* the report of a bitmap collect equals want[] */
static void expect_bitmap(unsigned int flags)
{
	struct pmtrack_bitmap *bm;

	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, NP * ps, flags, bm), 0);
	for (size_t p = 0; p < NP; p++)
		t_check(pmtrack_bitmap_test(bm, p) == want[p],
			"page %zu: reported %d, written %d", p,
			pmtrack_bitmap_test(bm, p), want[p]);
	ck_assert_uint_eq(pmtrack_bitmap_count(bm), expected());
	pmtrack_bitmap_free(bm);
	if (flags & PMTRACK_COLLECT_RESET)
		memset(want, 0, NP * sizeof(*want));
}

START_TEST(exact_reports)
{
	setup_mode(_i);
	expect_bitmap(PMTRACK_COLLECT_RESET); /* nothing yet */
	for (unsigned int round = 0; round < 4; round++) {
		write_pattern(round);
		expect_bitmap(0); /* without reset: all of it, twice */
		expect_bitmap(0);
		expect_bitmap(PMTRACK_COLLECT_RESET);
		expect_bitmap(0); /* and clean after it */
		/* a page written after the reset is reported alone */
		write_page(4117);
		write_page(NP / 2);
		expect_bitmap(PMTRACK_COLLECT_RESET);
	}
	teardown_mode();
}
END_TEST

START_TEST(reset_rearms_written)
{
	setup_mode(_i);
	for (unsigned int round = 0; round < 3; round++) {
		write_pattern(round);
		ck_assert_int_eq(pmtrack_reset(t, buf, NP * ps), 0);
		memset(want, 0, NP * sizeof(*want));
		expect_bitmap(0);
		/* every page re-armed: written again, reported again */
		write_pattern(round + 7);
		expect_bitmap(PMTRACK_COLLECT_RESET);
	}
	/* a sub-range reset leaves the rest written */
	write_pattern(0);
	ck_assert_int_eq(pmtrack_reset(t, buf + 4096 * ps, 4096 * ps), 0);
	memset(want + 4096, 0, 4096 * sizeof(*want));
	expect_bitmap(PMTRACK_COLLECT_RESET);
	teardown_mode();
}
END_TEST

/*
 * Collect with RESET into small arrays, resuming at @next: every call
 * stores what fits, the pages past the last one stored stay written
 * (checked with a collect without RESET), and the calls together report
 * each written page once.
 */
START_TEST(limits_leave_the_rest)
{
	setup_mode(_i / 2);
	write_pattern(3);
	size_t total = expected(), got = 0, calls = 0;
	char *at = buf, *end = buf + NP * ps;

	while (at < end) {
		void *pages[5], *next = NULL;
		struct pmtrack_run runs[3];
		size_t n, i;
		char *last = NULL;

		if (_i % 2 == 0) {
			n = 5;
			ck_assert_int_eq(
				pmtrack_collect_pages(t, at, end - at,
						      PMTRACK_COLLECT_RESET,
						      pages, &n, &next),
				0);
			for (i = 0; i < n; i++) {
				size_t p = ((char *)pages[i] - buf) / ps;

				t_check(want[p], "page %zu not written", p);
				want[p] = false;
				got++;
				last = pages[i];
			}
			if (n < 5)
				ck_assert_ptr_eq(next, end);
		} else {
			n = 3;
			ck_assert_int_eq(
				pmtrack_collect_runs(t, at, end - at,
						     PMTRACK_COLLECT_RESET,
						     runs, &n, &next),
				0);
			for (i = 0; i < n; i++) {
				for (size_t o = 0; o < runs[i].len; o += ps) {
					size_t p = ((char *)runs[i].addr + o -
						    buf) /
						   ps;

					t_check(want[p], "page %zu not written",
						p);
					want[p] = false;
					got++;
				}
				last = (char *)runs[i].addr + runs[i].len - ps;
			}
			if (n < 3)
				ck_assert_ptr_eq(next, end);
		}
		ck_assert_ptr_nonnull(next);
		t_assert_ptr_gt(next, at);
		if (last)
			t_assert_ptr_gt(next, last);
		/* nothing past the scan was reset: still written, and
		 * nothing before @next is */
		if ((char *)next < end) {
			size_t from = ((char *)next - buf) / ps;

			for (size_t p = 0; p < from; p++)
				t_check(!want[p],
					"page %zu before next "
					"not reported",
					p);
			ck_assert_uint_gt(expected(), 0);
			if (++calls % 8 == 1)
				expect_bitmap(0);
		}
		at = next;
	}
	ck_assert_uint_eq(got, total);
	ck_assert_uint_eq(expected(), 0);
	expect_bitmap(0);
	teardown_mode();
}
END_TEST

struct racer {
	char *buf;
	unsigned char *seen;
	int kind; /* 0: pages of 7, 1: runs of 2, 2: bitmap */
};

static void *collector(void *arg)
{
	struct racer *r = arg;
	char *at = r->buf, *end = r->buf + NP * ps;

	if (r->kind == 2) {
		struct pmtrack_bitmap *bm;

		if (pmtrack_bitmap_new(&bm) ||
		    pmtrack_collect_bitmap(t, r->buf, NP * ps,
					   PMTRACK_COLLECT_RESET, bm))
			return (void *)1;
		for (size_t p = pmtrack_bitmap_next(bm, 0); p < NP;
		     p = pmtrack_bitmap_next(bm, p + 1))
			__atomic_fetch_add(&r->seen[p], 1, __ATOMIC_RELAXED);
		pmtrack_bitmap_free(bm);
		return NULL;
	}
	while (at < end) {
		void *pages[7], *next;
		struct pmtrack_run runs[2];
		size_t n = r->kind ? 2 : 7;

		if (r->kind == 0) {
			if (pmtrack_collect_pages(t, at, end - at,
						  PMTRACK_COLLECT_RESET, pages,
						  &n, &next))
				return (void *)1;
			for (size_t i = 0; i < n; i++)
				__atomic_fetch_add(
					&r->seen[((char *)pages[i] - r->buf) /
						 ps],
					1, __ATOMIC_RELAXED);
		} else {
			if (pmtrack_collect_runs(t, at, end - at,
						 PMTRACK_COLLECT_RESET, runs,
						 &n, &next))
				return (void *)1;
			for (size_t i = 0; i < n; i++)
				for (size_t o = 0; o < runs[i].len; o += ps)
					__atomic_fetch_add(
						&r->seen[((char *)runs[i].addr +
							  o - r->buf) /
							 ps],
						1, __ATOMIC_RELAXED);
		}
		at = next;
	}
	return NULL;
}

/* two threads collect with RESET at once, in every pair of output forms:
 * between them each written page is reported exactly once */
START_TEST(concurrent_collects)
{
	unsigned char *seen = calloc(NP, 1);
	struct racer r[2];
	pthread_t th[2];

	ck_assert_ptr_nonnull(seen);
	setup_mode(_i % 2);
	for (int round = 0; round < 30; round++) {
		void *ret;

		memset(seen, 0, NP);
		write_pattern((unsigned int)round);
		for (int k = 0; k < 2; k++) {
			r[k] = (struct racer){
				.buf = buf,
				.seen = seen,
				.kind = (round + k * (1 + _i / 2)) % 3
			};
			ck_assert_int_eq(
				pthread_create(&th[k], NULL, collector, &r[k]),
				0);
		}
		for (int k = 0; k < 2; k++) {
			pthread_join(th[k], &ret);
			ck_assert_ptr_null(ret);
		}
		for (size_t p = 0; p < NP; p++)
			t_check(seen[p] == want[p],
				"round %d page %zu seen %d times, written %d",
				round, p, seen[p], want[p]);
		memset(want, 0, NP * sizeof(*want));
		expect_bitmap(0);
	}
	teardown_mode();
	free(seen);
}
END_TEST

static uint64_t scans(void)
{
	PMTRACK_OPTS(pmtrack_stats, st);

	ck_assert_int_eq(pmtrack_get_stats(t, &st), 0);
	return st.scans;
}

/*
 * The system calls a RESET collect makes: RANGE one (the batch holds every
 * region), WRITTEN one to find and one per written run (each its own
 * span: at most 512 per batch).  A clean range costs WRITTEN its one search and
 * nothing else.
 */
START_TEST(scan_counts)
{
	uint64_t before;
	size_t nruns;

	setup_mode(_i);
	before = scans();
	expect_bitmap(PMTRACK_COLLECT_RESET);
	ck_assert_uint_eq(scans() - before, 1);

	write_pattern(0); /* under 512 runs: one search, one scan a run */
	nruns = runs_wanted();
	ck_assert_uint_lt(nruns, 512);
	before = scans();
	expect_bitmap(PMTRACK_COLLECT_RESET);
	ck_assert_uint_eq(scans() - before,
			  modes[_i] == PMTRACK_REARM_RANGE ? 1 : 1 + nruns);

	/* one run: one span */
	for (size_t p = 10; p < 20; p++)
		write_page(p);
	before = scans();
	expect_bitmap(PMTRACK_COLLECT_RESET);
	ck_assert_uint_eq(scans() - before,
			  modes[_i] == PMTRACK_REARM_RANGE ? 1 : 2);
	teardown_mode();
}
END_TEST

/*
 * 1,500 lone pages with scan_batch 4096: RANGE finds them in one call;
 * WRITTEN searches at most 512 runs at a time whatever scan_batch says
 * (three searches) and re-protects each run on its own, merging none;
 * then everything is armed again.
 */
START_TEST(many_runs_big_batch)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .rearm = modes[_i], .scan_batch = 4096);
	uint64_t before;

	buf = t_map_anon(NP);
	want = calloc(NP, sizeof(*want));
	ck_assert_ptr_nonnull(want);
	ck_assert_int_eq(pmtrack_new(&o, &t), 0);
	ck_assert_int_eq(pmtrack_watch(t, buf, NP * ps), 0);
	for (size_t p = 1; p < 3001; p += 2)
		write_page(p);
	ck_assert_uint_eq(runs_wanted(), 1500);
	before = scans();
	expect_bitmap(PMTRACK_COLLECT_RESET);
	ck_assert_uint_eq(scans() - before,
			  modes[_i] == PMTRACK_REARM_RANGE ? 1 : 3 + 1500);
	expect_bitmap(PMTRACK_COLLECT_RESET); /* nothing: all re-armed */
	write_page(2999);
	expect_bitmap(PMTRACK_COLLECT_RESET);
	teardown_mode();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rearm");
	TCase *tc = tcase_create("modes");
	int r = t_init();

	if (r)
		return r;
	if (t_backend != PMTRACK_BACKEND_PAGEMAP_SCAN) {
		printf("SKIP: re-arm modes act on pagemap-scan alone (backend "
		       "here: %s)\n",
		       pmtrack_backend_name(t_backend));
		return T_SKIP;
	}
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, exact_reports, 0, 2);
	tcase_add_loop_test(tc, many_runs_big_batch, 0, 2);
	tcase_add_loop_test(tc, reset_rearms_written, 0, 2);
	tcase_add_loop_test(tc, limits_leave_the_rest, 0, 4);
	tcase_add_loop_test(tc, concurrent_collects, 0, 4);
	tcase_add_loop_test(tc, scan_counts, 0, 2);
	suite_add_tcase(s, tc);
	return t_run(s);
}

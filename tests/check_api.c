// SPDX-License-Identifier: MIT
/*
 * The API's contracts: options validation, argument errors, the range
 * table (overlap, partial unwatch, many ranges), mapping errors (unmapped,
 * another userfaultfd, replaced mapping), fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* pmtrack_opts.rearm: the three values on every backend (it acts on
 * pagemap-scan alone), anything else refused; an older struct without it
 * gets AUTO */
START_TEST(rearm_option)
{
	static const int bad[] = { 3, 4, 100, -1 };
	struct pmtrack *t = (void *)1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		PMTRACK_OPTS(pmtrack_opts, o,
			     .rearm = (enum pmtrack_rearm)bad[i]);
		ck_assert_int_eq(pmtrack_new(&o, &t), -EINVAL);
		ck_assert_ptr_null(t);
	}
	{
		PMTRACK_OPTS(pmtrack_opts, o, .rearm = PMTRACK_REARM_WRITTEN);
		ck_assert_int_eq(pmtrack_new(&o, &t), 0);
		ck_assert_int_eq(pmtrack_rearm(t), PMTRACK_REARM_WRITTEN);
		pmtrack_free(t);
	}
	{
		PMTRACK_OPTS(pmtrack_opts, o, .rearm = PMTRACK_REARM_RANGE);
		ck_assert_int_eq(pmtrack_new(&o, &t), 0);
		ck_assert_int_eq(pmtrack_rearm(t), PMTRACK_REARM_RANGE);
		pmtrack_free(t);
	}
	{
		/* AUTO becomes the library's default, never AUTO itself */
		PMTRACK_OPTS(pmtrack_opts, o, .rearm = PMTRACK_REARM_AUTO);
		ck_assert_int_eq(pmtrack_new(&o, &t), 0);
		ck_assert_int_eq(pmtrack_rearm(t), PMTRACK_REARM_RANGE);
		pmtrack_free(t);
	}
	{
		/* a caller compiled before the field: its struct ends at
		 * pid, whatever lies past it is not read */
		struct {
			struct pmtrack_opts o;
			char past[8];
		} old;

		memset(&old, 0xa5, sizeof(old));
		memset(&old.o, 0, offsetof(struct pmtrack_opts, rearm));
		old.o.sz = offsetof(struct pmtrack_opts, rearm);
		ck_assert_int_eq(pmtrack_new(&old.o, &t), 0);
		ck_assert_int_eq(pmtrack_rearm(t), PMTRACK_REARM_RANGE);
		pmtrack_free(t);
	}
	ck_assert_int_eq(pmtrack_rearm(NULL), PMTRACK_REARM_AUTO);
}
END_TEST

START_TEST(opts_validation)
{
	struct pmtrack *t = (void *)1;
	struct {
		struct pmtrack_opts o;
		char future[16];
	} big;

	ck_assert_int_eq(pmtrack_new(NULL, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_new(NULL, &t), 0);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(pmtrack_backend(t), t_backend);
	ck_assert_uint_eq(pmtrack_caps(t), t_caps);
	pmtrack_free(t);

	/* sz smaller than a size_t */
	memset(&big, 0, sizeof(big));
	big.o.sz = 4;
	ck_assert_int_eq(pmtrack_new(&big.o, &t), -EINVAL);
	ck_assert_ptr_null(t);
	/* a newer, larger struct: fine while the unknown tail is zero */
	big.o.sz = sizeof(big);
	ck_assert_int_eq(pmtrack_new(&big.o, &t), 0);
	pmtrack_free(t);
	big.future[3] = 1;
	ck_assert_int_eq(pmtrack_new(&big.o, &t), -EINVAL);
	/* an older struct that ends before scan_batch */
	memset(&big, 0, sizeof(big));
	big.o.sz = offsetof(struct pmtrack_opts, scan_batch);
	ck_assert_int_eq(pmtrack_new(&big.o, &t), 0);
	pmtrack_free(t);

	{
		PMTRACK_OPTS(pmtrack_opts, o, .backend = 99);
		ck_assert_int_eq(pmtrack_new(&o, &t), -EINVAL);
	}
	{
		PMTRACK_OPTS(pmtrack_opts, o,
			     .scan_batch = PMTRACK_SCAN_BATCH_MAX + 1);
		ck_assert_int_eq(pmtrack_new(&o, &t), -EINVAL);
	}
	{
		PMTRACK_OPTS(pmtrack_opts, o,
			     .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
			     .scan_batch = PMTRACK_SCAN_BATCH_MAX);
		int r = pmtrack_new(&o, &t);

		/* accepted; refused only by a kernel without the backend */
		if (pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL) == 1 &&
		    pmtrack_probe(PMTRACK_FEAT_UFFD_WP_ASYNC, NULL) == 1) {
			ck_assert_int_eq(r, 0);
			pmtrack_free(t);
		} else {
			ck_assert_int_eq(r, -EOPNOTSUPP);
		}
	}
	pmtrack_free(NULL);
	ck_assert_ptr_null(pmtrack_backend_name(42));
	ck_assert_str_eq(pmtrack_version(), PMTRACK_VERSION_STRING);
	ck_assert(PMTRACK_VERSION_AT_LEAST(0, 1));
	ck_assert(!PMTRACK_VERSION_AT_LEAST(PMTRACK_VERSION_MAJOR + 1, 0));
}
END_TEST

START_TEST(watch_arg_errors)
{
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(8);

	ck_assert_int_eq(pmtrack_watch(NULL, b, ps), -EINVAL);
	ck_assert_int_eq(pmtrack_watch(t, b + 1, ps), -EINVAL);
	ck_assert_int_eq(pmtrack_watch(t, b, ps + 1), -EINVAL);
	ck_assert_int_eq(pmtrack_watch(t, b, 0), -EINVAL);
	ck_assert_int_eq(
		pmtrack_watch(t, (void *)(UINTPTR_MAX & ~(ps - 1)), 2 * ps),
		-EOVERFLOW);
	ck_assert_int_eq(pmtrack_unwatch(t, b + 1, ps), -EINVAL);
	ck_assert_int_eq(pmtrack_unwatch(t, b, 0), -EINVAL);
	ck_assert_int_eq(pmtrack_unwatch(t, b, ps), -ENOENT);
	pmtrack_free(t);
	munmap(b, 8 * ps);
}
END_TEST

START_TEST(watch_unmapped)
{
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(8);

	/* a hole in the middle, then a range entirely unmapped */
	ck_assert_int_eq(munmap(b + 3 * ps, ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, 8 * ps), -ENOMEM);
	ck_assert_int_eq(pmtrack_watch(t, b + 3 * ps, ps), -ENOMEM);
	ck_assert_int_eq(pmtrack_watch(t, b + 4 * ps, 4 * ps), 0);
	ck_assert_int_eq(munmap(b, 8 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, 2 * ps), -ENOMEM);
	pmtrack_free(t);
}
END_TEST

START_TEST(watch_unmapped_smaps)
{
	/* the same answers from the fallbacks of kernels before 6.11:
	 * /proc/self/maps (_i = 0), /proc/self/smaps (_i = 1) */
	struct pmtrack *t;
	char *b = t_map_anon(8);

	setenv("PMTRACK_NO_PROCMAP_QUERY", _i ? "smaps" : "1", 1);
	t = t_new(0);
	ck_assert_int_eq(munmap(b + 3 * ps, ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, 8 * ps), -ENOMEM);
	ck_assert_int_eq(pmtrack_watch(t, b + 3 * ps, ps), -ENOMEM);
	ck_assert_int_eq(pmtrack_watch(t, b + 4 * ps, 4 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, 3 * ps), 0);
	b[0] = b[5 * ps] = 1;
	t_expect_idx(t, b + 4 * ps, 4, 0, (size_t[]){ 1 }, 1);
	t_expect_idx(t, b, 3, 0, (size_t[]){ 0 }, 1);
	pmtrack_free(t);
	munmap(b, 8 * ps);
	unsetenv("PMTRACK_NO_PROCMAP_QUERY");
}
END_TEST

START_TEST(watch_overlap)
{
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(16);

	ck_assert_int_eq(pmtrack_watch(t, b + 4 * ps, 4 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 4 * ps, 4 * ps), -EEXIST);
	ck_assert_int_eq(pmtrack_watch(t, b, 5 * ps), -EEXIST);
	ck_assert_int_eq(pmtrack_watch(t, b + 7 * ps, 2 * ps), -EEXIST);
	ck_assert_int_eq(pmtrack_watch(t, b + 5 * ps, ps), -EEXIST);
	ck_assert_int_eq(pmtrack_watch(t, b, 16 * ps), -EEXIST);
	/* adjacent ranges on both sides are fine */
	ck_assert_int_eq(pmtrack_watch(t, b, 4 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 8 * ps, 8 * ps), 0);
	b[3 * ps] = b[4 * ps] = b[8 * ps] = 1;
	t_expect_idx(t, b, 16, 0, (size_t[]){ 3, 4, 8 }, 3);
	pmtrack_free(t);
	munmap(b, 16 * ps);
}
END_TEST

START_TEST(watch_other_uffd)
{
	/* memory another userfaultfd has (here: another tracker) */
	struct pmtrack *t1 = t_new(0), *t2 = t_new(0);
	char *b = t_map_anon(8);

	ck_assert_int_eq(pmtrack_watch(t1, b, 4 * ps), 0);
	if (t_backend == PMTRACK_BACKEND_SOFT_DIRTY) {
		/* no userfaultfd, nothing owned: both trackers see writes */
		ck_assert_int_eq(pmtrack_watch(t2, b + 2 * ps, 4 * ps), 0);
		b[3 * ps] = 1;
		t_expect_idx(t1, b, 4, 0, (size_t[]){ 3 }, 1);
		t_expect_idx(t2, b + 2 * ps, 4, 0, (size_t[]){ 1 }, 1);
		pmtrack_free(t1);
		pmtrack_free(t2);
		munmap(b, 8 * ps);
		return;
	}
	ck_assert_int_eq(pmtrack_watch(t2, b + 2 * ps, 4 * ps), -EBUSY);
	ck_assert_int_eq(pmtrack_watch(t2, b + 4 * ps, 4 * ps), 0);
	b[ps] = b[5 * ps] = 1;
	t_expect_idx(t1, b, 4, 0, (size_t[]){ 1 }, 1);
	t_expect_idx(t2, b + 4 * ps, 4, 0, (size_t[]){ 1 }, 1);
	/* after the first tracker is gone its memory can be taken */
	pmtrack_free(t1);
	ck_assert_int_eq(pmtrack_watch(t2, b, 4 * ps), 0);
	pmtrack_free(t2);
	munmap(b, 8 * ps);
}
END_TEST

START_TEST(collect_arg_errors)
{
	struct pmtrack *t = t_new(0);
	struct pmtrack_bitmap *bm;
	struct pmtrack_run runs[4];
	char *b = t_map_anon(16);
	void *pages[16], *next = (void *)1;
	size_t n;

	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 4 * ps, 8 * ps), 0);
	b[5 * ps] = 1;

	n = 16;
	ck_assert_int_eq(pmtrack_collect_pages(t, b + 4 * ps, 8 * ps, 2, pages,
					       &n, &next),
			 -EINVAL);
	ck_assert_ptr_eq(next, (void *)1); /* untouched on early errors */
	ck_assert_int_eq(pmtrack_collect_pages(t, b + 4 * ps + 8, 4 * ps, 0,
					       pages, &n, NULL),
			 -EINVAL);
	ck_assert_int_eq(
		pmtrack_collect_pages(t, b + 4 * ps, 0, 0, pages, &n, NULL),
		-EINVAL);
	ck_assert_int_eq(
		pmtrack_collect_pages(t, b + 4 * ps, 8 * ps, 0, NULL, &n, NULL),
		-EINVAL);
	ck_assert_int_eq(pmtrack_collect_pages(t, b + 4 * ps, 8 * ps, 0, pages,
					       NULL, NULL),
			 -EINVAL);
	n = 0;
	ck_assert_int_eq(pmtrack_collect_pages(t, b + 4 * ps, 8 * ps, 0, pages,
					       &n, NULL),
			 -EINVAL);
	n = 4;
	ck_assert_int_eq(
		pmtrack_collect_runs(t, b + 4 * ps, 8 * ps, 0, NULL, &n, NULL),
		-EINVAL);
	ck_assert_int_eq(pmtrack_collect_bitmap(t, b + 4 * ps, 8 * ps, 0, NULL),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_collect_bitmap(NULL, b, ps, 0, bm), -EINVAL);

	/* not watched, partly watched, one page past the end */
	n = 16;
	ck_assert_int_eq(
		pmtrack_collect_pages(t, b, 4 * ps, 0, pages, &n, NULL),
		-ENOENT);
	n = 16;
	ck_assert_int_eq(pmtrack_collect_pages(t, b + 3 * ps, 2 * ps, 0, pages,
					       &n, NULL),
			 -ENOENT);
	ck_assert_uint_eq(n, 0);
	n = 16;
	ck_assert_int_eq(pmtrack_collect_pages(t, b + 4 * ps, 9 * ps, 0, pages,
					       &n, NULL),
			 -ENOENT);
	ck_assert_int_eq(pmtrack_collect_bitmap(t, b + 11 * ps, 2 * ps, 0, bm),
			 -ENOENT);
	n = 4;
	ck_assert_int_eq(pmtrack_collect_runs(t, b, 16 * ps,
					      PMTRACK_COLLECT_RESET, runs, &n,
					      NULL),
			 -ENOENT);
	ck_assert_int_eq(pmtrack_reset(t, b, 16 * ps), -ENOENT);
	ck_assert_int_eq(pmtrack_reset(t, b + 4 * ps, 3), -EINVAL);
	n = 16;
	ck_assert_int_eq(
		pmtrack_collect_pages(t, (void *)(UINTPTR_MAX & ~(ps - 1)),
				      2 * ps, 0, pages, &n, NULL),
		-EOVERFLOW);
	/* the failed calls reset nothing */
	t_expect_idx(t, b + 4 * ps, 8, 0, (size_t[]){ 1 }, 1);
	pmtrack_bitmap_free(bm);
	pmtrack_free(t);
	munmap(b, 16 * ps);
}
END_TEST

START_TEST(unwatch_partial)
{
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(32);

	ck_assert_int_eq(pmtrack_watch(t, b, 16 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 16 * ps, 16 * ps), 0);
	/* a hole in the middle of the first range, spanning into nothing
	 * else; then across the boundary of both */
	ck_assert_int_eq(pmtrack_unwatch(t, b + 4 * ps, 4 * ps), 0);
	ck_assert_int_eq(pmtrack_unwatch(t, b + 4 * ps, ps), -ENOENT);
	ck_assert_int_eq(pmtrack_unwatch(t, b + 2 * ps, 4 * ps), -ENOENT);
	ck_assert_int_eq(pmtrack_unwatch(t, b + 14 * ps, 4 * ps), 0);

	/* watched now: [0,4) [8,14) [18,32) */
	memset(b, 1, 32 * ps);
	t_expect_idx(t, b, 4, 0, (size_t[]){ 0, 1, 2, 3 }, 4);
	t_expect_idx(t, b + 8 * ps, 6, 0, (size_t[]){ 0, 1, 2, 3, 4, 5 }, 6);
	t_expect_idx(t, b + 18 * ps, 2, 0, (size_t[]){ 0, 1 }, 2);
	{
		void *pages[32];
		size_t n = 32;

		ck_assert_int_eq(
			pmtrack_collect_pages(t, b, 9 * ps, 0, pages, &n, NULL),
			-ENOENT);
		n = 32;
		ck_assert_int_eq(pmtrack_collect_pages(t, b + 12 * ps, 8 * ps,
						       0, pages, &n, NULL),
				 -ENOENT);
	}
	/* unwatched parts can be watched again, and start clean */
	ck_assert_int_eq(pmtrack_watch(t, b + 4 * ps, 4 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 14 * ps, 4 * ps), 0);
	b[15 * ps] = 2;
	t_expect_idx(t, b, 32, PMTRACK_COLLECT_RESET,
		     (size_t[]){ 0,  1,	 2,  3,	 8,  9,	 10, 11, 12,
				 13, 15, 18, 19, 20, 21, 22, 23, 24,
				 25, 26, 27, 28, 29, 30, 31 },
		     25);
	/* unwatch everything in one call spanning five ranges */
	ck_assert_int_eq(pmtrack_unwatch(t, b, 32 * ps), 0);
	ck_assert_int_eq(pmtrack_unwatch(t, b, ps), -ENOENT);
	ck_assert_int_eq(pmtrack_watch(t, b, 32 * ps), 0);
	pmtrack_free(t);
	munmap(b, 32 * ps);
}
END_TEST

START_TEST(unwatch_keeps_pending)
{
	/* writes not yet reported in the parts that stay watched survive
	 * the split (offsets chosen to cross 64-page words) */
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(200);
	static const size_t w[] = { 0, 63, 64, 100, 128, 130, 199 };

	ck_assert_int_eq(pmtrack_watch(t, b, 200 * ps), 0);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		b[w[i] * ps] = 1;
	ck_assert_int_eq(pmtrack_unwatch(t, b + 65 * ps, 64 * ps), 0);
	t_expect_idx(t, b, 65, 0, (size_t[]){ 0, 63, 64 }, 3);
	t_expect_idx(t, b + 129 * ps, 71, PMTRACK_COLLECT_RESET,
		     (size_t[]){ 1, 70 }, 2);
	/* and a second split of what is left */
	ck_assert_int_eq(pmtrack_unwatch(t, b + ps, 62 * ps), 0);
	t_expect_idx(t, b, 1, 0, (size_t[]){ 0 }, 1);
	t_expect_idx(t, b + 63 * ps, 2, 0, (size_t[]){ 0, 1 }, 2);
	pmtrack_free(t);
	munmap(b, 200 * ps);
}
END_TEST

START_TEST(unwatch_after_munmap)
{
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(8);

	ck_assert_int_eq(pmtrack_watch(t, b, 8 * ps), 0);
	ck_assert_int_eq(munmap(b, 8 * ps), 0);
	/* the unmapped range reports nothing, and can be unwatched */
	t_expect_idx(t, b, 8, PMTRACK_COLLECT_RESET, NULL, 0);
	ck_assert_int_eq(pmtrack_unwatch(t, b, 8 * ps), 0);
	pmtrack_free(t);
}
END_TEST

START_TEST(hole_in_written_run)
{
	/* a page unmapped from the middle of a written run: the pages
	 * around it are still reported, re-armed and tracked */
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(3);

	ck_assert_int_eq(pmtrack_watch(t, b, 3 * ps), 0);
	b[0] = b[ps] = b[2 * ps] = 1;
	ck_assert_int_eq(munmap(b + ps, ps), 0);
	t_expect_idx(t, b, 3, PMTRACK_COLLECT_RESET, (size_t[]){ 0, 2 }, 2);
	t_expect_idx(t, b, 3, 0, NULL, 0);
	b[2 * ps] = 2;
	t_expect_idx(t, b, 3, 0, (size_t[]){ 2 }, 1);
	b[0] = 2;
	t_expect_idx(t, b, 3, PMTRACK_COLLECT_RESET, (size_t[]){ 0, 2 }, 2);
	ck_assert_int_eq(pmtrack_unwatch(t, b, 3 * ps), 0);
	pmtrack_free(t);
	munmap(b, 3 * ps);
}
END_TEST

struct churn {
	char *buf;
	atomic_int stop;
	atomic_long writes;
};

/* writes all over 64 pages, watched or not at the moment */
static void *churn_writer(void *arg)
{
	struct churn *c = arg;
	uint64_t rnd = (uint64_t)(uintptr_t)&rnd | 1;

	while (!atomic_load(&c->stop)) {
		size_t p = (size_t)(t_rand(&rnd) % 64);

		__atomic_store_n(&c->buf[p * ps + 8], (char)p,
				 __ATOMIC_RELAXED);
		atomic_fetch_add(&c->writes, 1);
	}
	return NULL;
}

START_TEST(split_while_writing)
{
	/* the middle of a range is unwatched and watched again (splitting
	 * and merging the fallbacks' per-page state) while threads write
	 * everywhere and the pages are re-armed: no write to a page that
	 * stays watched may go astray (on mprotect it would reach the
	 * default SIGSEGV action and kill the test) */
	struct pmtrack *t = t_new(0);
	struct churn c = { .buf = t_map_anon(64) };
	pthread_t th[2];

	ck_assert_int_eq(pmtrack_watch(t, c.buf, 64 * ps), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, churn_writer, &c),
				 0);
	while (atomic_load(&c.writes) < 1000)
		sched_yield();
	for (int i = 0; i < 300 || atomic_load(&c.writes) < 20000; i++) {
		size_t at = 8 + (size_t)(i % 40);

		ck_assert_int_eq(pmtrack_unwatch(t, c.buf + at * ps, 16 * ps),
				 0);
		ck_assert_int_eq(pmtrack_reset(t, c.buf, 8 * ps), 0);
		ck_assert_int_eq(pmtrack_watch(t, c.buf + at * ps, 16 * ps), 0);
		ck_assert_int_eq(pmtrack_reset(t, c.buf, 64 * ps), 0);
	}
	atomic_store(&c.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	/* still tracking, exactly */
	ck_assert_int_eq(pmtrack_reset(t, c.buf, 64 * ps), 0);
	t_expect_idx(t, c.buf, 64, 0, NULL, 0);
	c.buf[5 * ps] = c.buf[40 * ps] = 1;
	t_expect_idx(t, c.buf, 64, 0, (size_t[]){ 5, 40 }, 2);
	pmtrack_free(t);
	munmap(c.buf, 64 * ps);
}
END_TEST

START_TEST(many_ranges)
{
	/* 2000 ranges of one page each, every other page of a mapping */
	enum { R = 2000 };
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(2 * R);
	size_t i;

	for (i = 0; i < R; i += 2)
		ck_assert_int_eq(pmtrack_watch(t, b + 2 * i * ps, ps), 0);
	for (i = 1; i < R; i += 2) /* filled in out of order */
		ck_assert_int_eq(pmtrack_watch(t, b + 2 * i * ps, ps), 0);
	for (i = 0; i < 2 * R; i++)
		b[i * ps] = 1;
	for (i = 0; i < R; i++) {
		void *p[1];
		size_t n = 1;

		ck_assert_int_eq(pmtrack_collect_pages(t, b + 2 * i * ps, ps,
						       PMTRACK_COLLECT_RESET, p,
						       &n, NULL),
				 0);
		ck_assert_uint_eq(n, 1);
		ck_assert_ptr_eq(p[0], b + 2 * i * ps);
		ck_assert_int_eq(pmtrack_watch(t, b + (2 * i + 1) * ps, ps), 0);
	}
	/* now every page is watched, in 4000 adjacent ranges: one collect
	 * spans them all */
	b[7 * ps] = b[3999 * ps] = 1;
	{
		void **p = calloc(2 * R, sizeof(*p));
		size_t n = 2 * R;

		ck_assert_int_eq(
			pmtrack_collect_pages(t, b, 2 * R * ps, 0, p, &n, NULL),
			0);
		ck_assert_uint_eq(n, 2);
		ck_assert_ptr_eq(p[0], b + 7 * ps);
		ck_assert_ptr_eq(p[1], b + 3999 * ps);
		free(p);
	}
	pmtrack_free(t);
	munmap(b, 2 * R * ps);
}
END_TEST

START_TEST(replaced_mapping)
{
	/* a watched range that is unmapped and mapped again is no longer
	 * tracked: collects say so instead of reporting a silent gap, and
	 * keep what they collected before the stale part */
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(8), *p;
	struct pmtrack_bitmap *bm;
	void *pages[8], *next = NULL;
	size_t n = 8;

	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, 8 * ps), 0);
	b[1 * ps] = b[6 * ps] = 1;
	p = mmap(b + 4 * ps, ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(p, b + 4 * ps);
	if (t_backend == PMTRACK_BACKEND_PAGEMAP_SCAN) {
		ck_assert_int_eq(pmtrack_collect_pages(t, b, 8 * ps,
						       PMTRACK_COLLECT_RESET,
						       pages, &n, &next),
				 -ESTALE);
		ck_assert_uint_eq(n, 1);
		ck_assert_ptr_eq(pages[0], b + ps);
		t_assert_ptr_ge(next, b + 2 * ps);
		t_assert_ptr_le(next, b + 4 * ps);
		ck_assert_int_eq(pmtrack_collect_bitmap(t, b, 8 * ps, 0, bm),
				 -ESTALE);
		ck_assert_int_eq(pmtrack_reset(t, b, 8 * ps), -ESTALE);
		/* the untouched parts still work */
		t_expect_idx(t, b + 5 * ps, 3, 0, (size_t[]){ 1 }, 1);
	} else if (t_backend == PMTRACK_BACKEND_SOFT_DIRTY) {
		/* the kernel flags the new mapping VM_SOFTDIRTY, and the old
		 * one with it when the two merge: written (documented), the
		 * pages written before too, perhaps more */
		size_t got[8], m;

		b[4 * ps] = 1;
		m = t_collect_idx(t, b, 8, PMTRACK_COLLECT_RESET, got);
		ck_assert(t_has_idx(got, m, 1) && t_has_idx(got, m, 4) &&
			  t_has_idx(got, m, 6));
		b[6 * ps] = 2;
		m = t_collect_idx(t, b, 8, 0, got);
		ck_assert(t_has_idx(got, m, 6));
	} else {
		/* the other backends cannot tell (documented): the new
		 * memory is not tracked, the rest is */
		b[4 * ps] = 1;
		t_expect_idx(t, b, 8, PMTRACK_COLLECT_RESET, (size_t[]){ 1, 6 },
			     2);
		b[6 * ps] = 2;
		t_expect_idx(t, b + 5 * ps, 3, 0, (size_t[]){ 1 }, 1);
	}
	/* re-watching the new mapping works */
	ck_assert_int_eq(pmtrack_unwatch(t, b + 4 * ps, ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 4 * ps, ps), 0);
	b[4 * ps] = 1;
	t_expect_idx(t, b, 8, 0, (size_t[]){ 4, 6 }, 2);
	pmtrack_bitmap_free(bm);
	pmtrack_free(t);
	munmap(b, 8 * ps);
}
END_TEST

START_TEST(refused_after_fork)
{
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(4);
	int status;
	pid_t pid;

	ck_assert_int_eq(pmtrack_watch(t, b, 4 * ps), 0);
	b[0] = 1;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		void *p[4];
		size_t n = 4;
		int ok = pmtrack_collect_pages(t, b, 4 * ps, 0, p, &n, NULL) ==
				 -ECHILD &&
			 pmtrack_reset(t, b, 4 * ps) == -ECHILD &&
			 pmtrack_watch(t, b, 4 * ps) == -ECHILD &&
			 pmtrack_unwatch(t, b, 4 * ps) == -ECHILD;

		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the parent's state is intact */
	b[ps] = 1;
	t_expect_idx(t, b, 4, 0, (size_t[]){ 0, 1 }, 2);
	pmtrack_free(t);
	munmap(b, 4 * ps);
}
END_TEST

START_TEST(free_restores_memory)
{
	/* after pmtrack_free the memory behaves normally and a new tracker
	 * can take it */
	struct pmtrack *t = t_new(0);
	char *b = t_map_anon(4);

	ck_assert_int_eq(pmtrack_watch(t, b, 4 * ps), 0);
	pmtrack_free(t);
	memset(b, 7, 4 * ps);
	ck_assert_int_eq(b[3 * ps + 5], 7);
	t = t_new(0);
	ck_assert_int_eq(pmtrack_watch(t, b, 4 * ps), 0);
	t_expect_idx(t, b, 4, 0, NULL, 0);
	b[2 * ps] = 1;
	t_expect_idx(t, b, 4, 0, (size_t[]){ 2 }, 1);
	pmtrack_free(t);
	munmap(b, 4 * ps);
}
END_TEST

struct spinner {
	struct pmtrack *t;
	char *buf;
	atomic_int stop;
	atomic_long collects;
	atomic_int err;
};

static void *collect_loop(void *arg)
{
	struct spinner *sp = arg;
	struct pmtrack_bitmap *bm;

	if (pmtrack_bitmap_new(&bm))
		return NULL;
	/* without PMTRACK_CAP_ATOMIC_RESET (soft-dirty) a reset may lose
	 * writes to any watched page of the process, and the main thread
	 * writes: the documented rule says not to reset then */
	unsigned int flags = pmtrack_caps(sp->t) & PMTRACK_CAP_ATOMIC_RESET
				     ? PMTRACK_COLLECT_RESET
				     : 0;

	while (!atomic_load(&sp->stop)) {
		int r = pmtrack_collect_bitmap(sp->t, sp->buf, 64 * ps, flags,
					       bm);

		if (r)
			atomic_store(&sp->err, r);
		atomic_fetch_add(&sp->collects, 1);
	}
	pmtrack_bitmap_free(bm);
	return NULL;
}

START_TEST(watch_while_collecting)
{
	/* two threads collect in a tight loop; watch and unwatch of other
	 * ranges still get the lock, and the collects stay correct */
	struct spinner sp = { .t = t_new(0) };
	char *other = t_map_anon(64);
	pthread_t th[2];

	sp.buf = t_map_anon(64);
	ck_assert_int_eq(pmtrack_watch(sp.t, sp.buf, 64 * ps), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, collect_loop, &sp), 0);
	/* the collectors are running before the first watch, however the
	   threads get scheduled */
	while (!atomic_load(&sp.collects) && !atomic_load(&sp.err))
		sched_yield();
	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(pmtrack_watch(sp.t, other + (i % 64) * ps, ps),
				 0);
		other[(i % 64) * ps] = 1;
		t_expect_idx(sp.t, other + (i % 64) * ps, 1,
			     PMTRACK_COLLECT_RESET, (size_t[]){ 0 }, 1);
		ck_assert_int_eq(
			pmtrack_unwatch(sp.t, other + (i % 64) * ps, ps), 0);
	}
	atomic_store(&sp.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&sp.err), 0);
	ck_assert_int_gt(atomic_load(&sp.collects), 0);
	pmtrack_free(sp.t);
	munmap(sp.buf, 64 * ps);
	munmap(other, 64 * ps);
}
END_TEST

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("contracts");

	tcase_add_test(tc, opts_validation);
	tcase_add_test(tc, rearm_option);
	tcase_add_test(tc, watch_arg_errors);
	tcase_add_test(tc, watch_unmapped);
	tcase_add_loop_test(tc, watch_unmapped_smaps, 0, 2);
	tcase_add_test(tc, watch_overlap);
	tcase_add_test(tc, watch_other_uffd);
	tcase_add_test(tc, collect_arg_errors);
	tcase_add_test(tc, unwatch_partial);
	tcase_add_test(tc, unwatch_keeps_pending);
	tcase_add_test(tc, unwatch_after_munmap);
	tcase_add_test(tc, hole_in_written_run);
	tcase_add_test(tc, split_while_writing);
	tcase_add_test(tc, many_ranges);
	tcase_add_test(tc, replaced_mapping);
	tcase_add_test(tc, refused_after_fork);
	tcase_add_test(tc, free_restores_memory);
	tcase_add_test(tc, watch_while_collecting);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int r = t_init();

	return r ? r : t_run(api_suite());
}

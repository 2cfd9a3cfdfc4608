// SPDX-License-Identifier: MIT
/*
 * No lost writes.  Writer threads keep writing random pages of a watched
 * buffer; every write is logged with a global sequence number taken just
 * before the store.  The main thread collects with atomic reset in rounds,
 * cycling through the three output forms (the array forms with small
 * capacities, so truncation and resume are part of it), and after each round
 * copies the reported pages into a shadow buffer, as a migration or checkpoint
 * would.
 *
 * After the writers stop and a final collect:
 *  - every logged write (page p, sequence s) is covered by a report of p
 *    that completed after the write began: the last round that reported p
 *    read the counter after it returned, and that value is above s;
 *  - the shadow equals the buffer: every write's data reached a copy.
 * Together they leave no room for a lost write: a write that began after
 * the last report of its page must be in a later report (first check); one
 * that overlapped that report must be in its copy (second check).
 *
 * One writer writes through the kernel (read(2) from a pipe), the others
 * with plain stores.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define NPAGES 1024
#define NWRITERS 3
#define NWRITES (1u << 20) /* log capacity per writer */
#define NROUNDS 60

struct logent {
	uint32_t page;
	uint64_t seq;
};

struct writer {
	pthread_t th;
	unsigned int id;
	bool kernel; /* write through read(2) */
	int pipe[2];
	struct logent *log;
	size_t n; /* writes logged */
	atomic_uint_fast64_t last; /* seq of the last write begun */
};

static char *buf, *shadow;
static atomic_uint_fast64_t seq = 1;
static atomic_int stop;
static struct pmtrack *trk;
/*
 * Backends without PMTRACK_CAP_ATOMIC_RESET (soft-dirty) document that
 * writers must be stopped around resets: writers hold this for reading
 * around each write, the collector for writing around each round.
 */
static pthread_rwlock_t quiesce = PTHREAD_RWLOCK_INITIALIZER;
#define NEED_QUIESCE (!(t_caps & PMTRACK_CAP_ATOMIC_RESET))
static uint64_t *covered_until; /* per page: counter after its last report */

static void *writer_fn(void *arg)
{
	struct writer *w = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL * (w->id + 1);

	for (uint64_t i = 0; i < NWRITES && !atomic_load(&stop); i++) {
		uint32_t p = (uint32_t)(t_rand(&rnd) % NPAGES);
		uint64_t *slot = (uint64_t *)(buf + (size_t)p * ps) + w->id;
		uint64_t val = (i << 8) | w->id;

		w->log[i].page = p;
		w->log[i].seq = atomic_fetch_add(&seq, 1);
		w->n = i + 1;
		atomic_store_explicit(&w->last, w->log[i].seq,
				      memory_order_relaxed);
		if (NEED_QUIESCE)
			pthread_rwlock_rdlock(&quiesce);
		if (w->kernel) {
			/* the kernel's copy races with the shadow copy on
			 * purpose (t_kread uses the raw syscall) */
			if (write(w->pipe[1], &val, sizeof(val)) !=
				    sizeof(val) ||
			    t_kread(trk, w->pipe[0], slot, sizeof(val)) !=
				    (long)sizeof(val))
				abort();
		} else {
			__atomic_store_n(slot, val, __ATOMIC_RELAXED);
		}
		if (NEED_QUIESCE)
			pthread_rwlock_unlock(&quiesce);
		if (!w->kernel && i % 64 == 63) /* keep writing until the end */
			nanosleep(&(struct timespec){ 0, 20000 }, NULL);
	}
	return NULL;
}

/* copy a reported page like a migration would: racing writers re-dirty it */
static void copy_page(size_t p)
{
	uint64_t *src = (uint64_t *)(buf + p * ps);
	uint64_t *dst = (uint64_t *)(shadow + p * ps);

	for (size_t i = 0; i < ps / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

static void reported(char *addr, size_t len)
{
	uint64_t now = atomic_load(&seq);

	for (size_t p = (size_t)(addr - buf) / ps; len; len -= ps, p++) {
		covered_until[p] = now;
		copy_page(p);
	}
}

/* one round: collect+reset everything, in output form @kind */
static size_t round_collect(struct pmtrack *t, struct pmtrack_bitmap *bm,
			    int kind)
{
	char *at = buf, *end = buf + NPAGES * ps;
	size_t total = 0;

	if (kind == 0) {
		t_check(pmtrack_collect_bitmap(t, buf, NPAGES * ps,
					       PMTRACK_COLLECT_RESET, bm) == 0,
			"collect_bitmap");
		for (size_t i = pmtrack_bitmap_next(bm, 0); i < NPAGES;
		     i = pmtrack_bitmap_next(bm, i + 1)) {
			reported(buf + i * ps, ps);
			total++;
		}
		return total;
	}
	while (at < end) {
		void *pages[7], *next;
		struct pmtrack_run runs[3];
		size_t n;
		int r;

		if (kind == 1) {
			n = 7;
			r = pmtrack_collect_pages(t, at, end - at,
						  PMTRACK_COLLECT_RESET, pages,
						  &n, &next);
			t_check(r == 0, "collect_pages %d", r);
			for (size_t i = 0; i < n; i++)
				reported(pages[i], ps);
			total += n;
		} else {
			n = 3;
			r = pmtrack_collect_runs(t, at, end - at,
						 PMTRACK_COLLECT_RESET, runs,
						 &n, &next);
			t_check(r == 0, "collect_runs %d", r);
			for (size_t i = 0; i < n; i++) {
				reported(runs[i].addr, runs[i].len);
				total += runs[i].len / ps;
			}
		}
		t_check((char *)next > at, "no progress");
		at = next;
	}
	return total;
}

START_TEST(no_lost_writes)
{
	struct writer w[NWRITERS];
	struct pmtrack_bitmap *bm;
	struct pmtrack *t = t_new(0);
	size_t rounds = 0, busy_rounds = 0, reports = 0, i;
	uint64_t midway = 0;

	buf = t_map_anon(NPAGES);
	shadow = calloc(NPAGES, ps);
	covered_until = calloc(NPAGES, sizeof(*covered_until));
	ck_assert_ptr_nonnull(shadow);
	ck_assert_ptr_nonnull(covered_until);
	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_watch(t, buf, NPAGES * ps), 0);
	trk = t;

	atomic_store(&stop, 0);
	for (i = 0; i < NWRITERS; i++) {
		w[i].id = (unsigned int)i;
		w[i].kernel = i == 0;
		atomic_init(&w[i].last, 0);
		w[i].log = calloc(NWRITES, sizeof(*w[i].log));
		ck_assert_ptr_nonnull(w[i].log);
		if (w[i].kernel)
			ck_assert_int_eq(pipe(w[i].pipe), 0);
		ck_assert_int_eq(
			pthread_create(&w[i].th, NULL, writer_fn, &w[i]), 0);
	}
	while (rounds < NROUNDS) {
		struct timespec pause = { 0, 200 * 1000 };
		size_t n;

		if (NEED_QUIESCE)
			pthread_rwlock_wrlock(&quiesce);
		n = round_collect(t, bm, (int)(rounds % 3));
		if (NEED_QUIESCE)
			pthread_rwlock_unlock(&quiesce);

		if (++rounds == NROUNDS / 2)
			midway = atomic_load(&seq);
		reports += n;
		busy_rounds += n > 0;
		/* let the writers make progress before the next round, also
		 * on slow backends (uffd-wp under sanitizers): a few writes,
		 * or at most about 50 ms */
		for (int k = 0, base = (int)atomic_load(&seq);
		     k < 250 && (int)atomic_load(&seq) - base < 16; k++)
			nanosleep(&pause, NULL);
	}
	/* every writer writes past halfway before they stop, however the
	   threads were scheduled (a busy machine can hold one back for the
	   second half of the rounds); collects go on meanwhile */
	for (int k = 0; k < 60000; k++) {
		struct timespec ms = { 0, 1000 * 1000 };
		bool all = true;

		for (i = 0; i < NWRITERS; i++)
			all &= atomic_load_explicit(&w[i].last,
						    memory_order_relaxed) >
			       midway;
		if (all)
			break;
		if (NEED_QUIESCE)
			pthread_rwlock_wrlock(&quiesce);
		reports += round_collect(t, bm, (int)(rounds++ % 3));
		if (NEED_QUIESCE)
			pthread_rwlock_unlock(&quiesce);
		nanosleep(&ms, NULL);
	}
	atomic_store(&stop, 1);
	for (i = 0; i < NWRITERS; i++)
		pthread_join(w[i].th, NULL);
	reports += round_collect(t, bm, (int)(rounds++ % 3));

	/* the test means something only if collects raced with writers */
	ck_assert_uint_ge(busy_rounds, NROUNDS / 2);
	for (i = 0; i < NWRITERS; i++) /* every writer ran past halfway */
		ck_assert_uint_gt(w[i].log[w[i].n - 1].seq, midway);

	for (i = 0; i < NWRITERS; i++) {
		for (size_t k = 0; k < w[i].n; k++) {
			struct logent *e = &w[i].log[k];

			t_check(e->seq < covered_until[e->page],
				"writer %zu write %zu (page %u, seq %llu) "
				"not reported after it began",
				i, k, e->page, (unsigned long long)e->seq);
		}
	}
	for (i = 0; i < NPAGES; i++)
		t_check(memcmp(buf + i * ps, shadow + i * ps, ps) == 0,
			"page %zu: shadow copy missed a write", i);
	/* and nothing is left over */
	t_expect_idx(t, buf, NPAGES, 0, NULL, 0);

	for (i = 0; i < NWRITERS; i++) {
		free(w[i].log);
		if (w[i].kernel) {
			close(w[i].pipe[0]);
			close(w[i].pipe[1]);
		}
	}
	pmtrack_bitmap_free(bm);
	pmtrack_free(t);
	munmap(buf, NPAGES * ps);
	free(shadow);
	free(covered_until);
	printf("no_lost_writes: %zu rounds (%zu with reports), %zu pages "
	       "reported for %zu + %zu + %zu writes\n",
	       rounds, busy_rounds, reports, w[0].n, w[1].n, w[2].n);
}
END_TEST

static Suite *nolost_suite(void)
{
	Suite *s = suite_create("nolost");
	TCase *tc = tcase_create("concurrent_writers");

	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, no_lost_writes, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int r = t_init();

	return r ? r : t_run(nolost_suite());
}

// SPDX-License-Identifier: MIT
/*
 * The scan loop against the kernel's stale walk_end: on the kernels we run,
 * a PAGEMAP_SCAN call that returns more than 512 regions leaves walk_end at
 * an intermediate flush point.  A loop that trusts it reports pages twice.
 *
 * Thousands of isolated written pages are collected with every kernel batch
 * size from 1 to beyond the kernel's buffer, and with output arrays from one
 * entry to more than enough, resuming from `next` each time.  Every written
 * page must come back exactly once, in order, and nothing else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "../lib/base/uapi_compat.h"

#define NPAGES 16384u /* 64 MiB with 4 KiB pages */

static const unsigned int batches[] = { 1, 7, 511, 513, 4096 };
static const size_t caps[] = { 1, 3, 512, 513, NPAGES };

enum pattern { ISOLATED, RANDOM, MIXED, NPATTERNS };

static size_t make_pattern(enum pattern p, bool *written)
{
	uint64_t seed = 0x5eed + p;
	size_t i, n = 0;

	memset(written, 0, NPAGES * sizeof(*written));
	switch (p) {
	case ISOLATED: /* 3000 single pages, one apart */
		for (i = 0; i < 6000; i += 2)
			written[i + 100] = true;
		break;
	case RANDOM: /* ~4000 random pages across the whole range */
		for (i = 0; i < 4000; i++)
			written[t_rand(&seed) % NPAGES] = true;
		break;
	case MIXED: /* isolated pages between runs of every length */
		for (i = 0; i < NPAGES;) {
			size_t run = 1 + t_rand(&seed) % 40;

			if (t_rand(&seed) % 3 == 0)
				run = 1;
			for (size_t j = i; j < i + run && j < NPAGES; j++)
				written[j] = true;
			i += run + 1 + t_rand(&seed) % 8;
		}
		break;
	default:
		break;
	}
	for (i = 0; i < NPAGES; i++)
		n += written[i];
	return n;
}

static void write_pattern(char *buf, const bool *written)
{
	for (size_t i = 0; i < NPAGES; i++)
		if (written[i])
			buf[i * ps] = (char)i;
}

/* collect everything with @cap-sized arrays, resuming at next */
static void drain_pages(struct pmtrack *t, char *buf, size_t cap,
			unsigned int flags, const bool *written, size_t want)
{
	void **pages = calloc(cap, sizeof(*pages));
	char *at = buf, *end = buf + NPAGES * ps, *last = NULL;
	size_t total = 0, calls = 0;

	ck_assert_ptr_nonnull(pages);
	while (at < end) {
		size_t n = cap;
		void *next = NULL;

		int r = pmtrack_collect_pages(t, at, end - at, flags, pages, &n,
					      &next);

		t_check(r == 0, "collect_pages: %d", r);
		for (size_t i = 0; i < n; i++) {
			char *p = pages[i];
			size_t idx = (size_t)(p - buf) / ps;

			t_check(p >= at && p < end, "page outside range");
			t_check(!last || p > last,
				"page %zu out of order or twice", idx);
			t_check(written[idx], "page %zu not written", idx);
			last = p;
		}
		total += n;
		t_check((char *)next > at || (n == 0 && next == end),
			"no progress");
		t_check(n == cap || next == end,
			"short result must mean the scan finished");
		at = next;
		t_check(++calls <= want + 2, "too many calls");
	}
	ck_assert_uint_eq(total, want);
	free(pages);
}

static void drain_runs(struct pmtrack *t, char *buf, size_t cap,
		       unsigned int flags, const bool *written, size_t want)
{
	struct pmtrack_run *runs = calloc(cap, sizeof(*runs));
	char *at = buf, *end = buf + NPAGES * ps, *last_end = NULL;
	size_t total = 0;

	ck_assert_ptr_nonnull(runs);
	while (at < end) {
		size_t n = cap;
		void *next = NULL;

		int r = pmtrack_collect_runs(t, at, end - at, flags, runs, &n,
					     &next);

		t_check(r == 0, "collect_runs: %d", r);
		for (size_t i = 0; i < n; i++) {
			char *s = runs[i].addr, *e = s + runs[i].len;
			size_t a = (size_t)(s - buf) / ps;
			size_t b = (size_t)(e - buf) / ps;

			t_check(runs[i].len > 0, "empty run");
			/* ordered, disjoint and maximal: never adjacent to
			 * the previous run, bounded by unwritten pages */
			t_check(!last_end || s > last_end,
				"run at %zu overlaps, or touches the "
				"previous one",
				a);
			t_check(a == 0 || !written[a - 1],
				"run %zu not maximal", a);
			t_check(b == NPAGES || !written[b],
				"run %zu not maximal", a);
			for (size_t j = a; j < b; j++)
				t_check(written[j], "page %zu", j);
			total += b - a;
			last_end = e;
		}
		t_check((char *)next > at, "no progress");
		at = next;
	}
	ck_assert_uint_eq(total, want);
	free(runs);
}

/*
 * Does a RESET collect read /proc/self/maps here?  mprotect looks up the
 * mappings under every run it re-arms; without PROCMAP_QUERY (before
 * 6.11, or PMTRACK_NO_PROCMAP_QUERY) that is a pass over the maps file up
 * to the run, so each collect costs the mappings below it (docs/backends.md,
 * "Backends") and one-page arrays over thousands of runs cost their
 * square.
 */
static bool collect_reads_maps(void)
{
	struct procmap_query q = { .size = sizeof(q),
				   .query_flags =
					   PROCMAP_QUERY_COVERING_OR_NEXT_VMA };
	int fd, r;

	if (t_backend != PMTRACK_BACKEND_MPROTECT)
		return false;
	if (getenv("PMTRACK_NO_PROCMAP_QUERY"))
		return true;
	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	r = ioctl(fd, PROCMAP_QUERY, &q);
	close(fd);
	return r && (errno == ENOTTY || errno == EINVAL);
}

/*
 * Do collects here go without PAGEMAP_SCAN (before 6.7) on a backend that
 * reads pagemap instead?  The batch quirk this test is for cannot happen
 * then, and every collect is a pagemap read: on 6.1 under emulation the
 * 1- and 3-entry arrays over all three patterns (about 50,000 collects)
 * took 240 s of CI's 300 s limit.
 */
static bool collect_reads_pagemap(void)
{
	return t_backend != PMTRACK_BACKEND_MPROTECT &&
	       pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL) != 1;
}

enum collect_reads { READS_LITTLE, READS_MAPS, READS_PAGEMAP };

/*
 * Why the small arrays over pattern @p are left out where each collect
 * reads @reads, or NULL.  Where it is the maps file, only 3-entry arrays
 * over the isolated pattern stand for them (1000 collects, not 3 x
 * 4000-8000 twice); where it is pagemap, the isolated pattern's 1- and
 * 3-entry arrays do.
 */
static const char *left_out(enum pattern p, size_t cap,
			    enum collect_reads reads)
{
	if (cap >= 512)
		return NULL;
	if (reads == READS_MAPS && (p != ISOLATED || cap == 1))
		return "each collect reads the maps file here";
	if (reads == READS_PAGEMAP && p != ISOLATED)
		return "no PAGEMAP_SCAN: each collect reads pagemap here";
	return NULL;
}

static void check_bitmap(struct pmtrack *t, char *buf, const bool *written,
			 size_t want)
{
	struct pmtrack_bitmap *bm;

	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_collect_bitmap(t, buf, NPAGES * ps, 0, bm), 0);
	ck_assert_uint_eq(pmtrack_bitmap_count(bm), want);
	for (size_t i = 0; i < NPAGES; i++)
		t_check(pmtrack_bitmap_test(bm, i) == written[i], "page %zu",
			i);
	pmtrack_bitmap_free(bm);
}

START_TEST(every_batch_and_capacity)
{
	unsigned int batch = batches[_i];
	bool *written = calloc(NPAGES, sizeof(*written));
	enum collect_reads reads = READS_LITTLE;
	struct pmtrack *t = t_new(batch);
	char *buf = t_map_anon(NPAGES);

	if (collect_reads_maps())
		reads = READS_MAPS;
	else if (collect_reads_pagemap())
		reads = READS_PAGEMAP;
	/* the batch is PAGEMAP_SCAN's: without that ioctl (mprotect, or an
	 * older kernel) the other batches would repeat the first run */
	if (_i && (t_backend == PMTRACK_BACKEND_MPROTECT ||
		   pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL) != 1)) {
		printf("batch %u: no PAGEMAP_SCAN here, same as batch %u\n",
		       batch, batches[0]);
		goto out;
	}
	ck_assert_int_eq(pmtrack_watch(t, buf, NPAGES * ps), 0);
	for (int p = 0; p < NPATTERNS; p++) {
		size_t want = make_pattern(p, written);

		write_pattern(buf, written);
		check_bitmap(t, buf, written, want);
		for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
			const char *why = left_out(p, caps[c], reads);

			if (why) {
				printf("pattern %d, %zu-entry arrays: left out "
				       "(%s)\n",
				       p, caps[c], why);
				continue;
			}
			/* without reset the same set comes back every time;
			 * with reset it comes back once, then nothing */
			drain_pages(t, buf, caps[c], 0, written, want);
			drain_runs(t, buf, caps[c], 0, written, want);
			if (c % 2) {
				drain_runs(t, buf, caps[c],
					   PMTRACK_COLLECT_RESET, written,
					   want);
			} else {
				drain_pages(t, buf, caps[c],
					    PMTRACK_COLLECT_RESET, written,
					    want);
			}
			t_expect_idx(t, buf, NPAGES, 0, NULL, 0);
			write_pattern(buf, written);
		}
		ck_assert_int_eq(pmtrack_reset(t, buf, NPAGES * ps), 0);
	}
out:
	pmtrack_free(t);
	munmap(buf, NPAGES * ps);
	free(written);
}
END_TEST

/*
 * Not a test of the library: tell whether this kernel has the stale
 * walk_end, so the log shows the workaround was exercised.
 */
static void report_kernel_quirk(void)
{
	static struct page_region vec[2048];
	struct pm_scan_arg arg = { .size = sizeof(arg) };
	char *buf = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("/proc/self/pagemap", O_RDONLY), n;

	if (buf == MAP_FAILED || fd < 0)
		return;
	for (size_t i = 0; i < 2000; i++)
		buf[2 * i * ps] = 1;
	arg.start = (uintptr_t)buf;
	arg.end = (uintptr_t)buf + NPAGES * ps;
	arg.vec = (uintptr_t)vec;
	arg.vec_len = 2048;
	arg.category_mask = arg.return_mask = PAGE_IS_PRESENT;
	n = ioctl(fd, PAGEMAP_SCAN, &arg);
	if (n < 0)
		printf("kernel: no PAGEMAP_SCAN (%s)\n", strerror(errno));
	else
		printf("kernel: one PAGEMAP_SCAN returned %d regions, "
		       "walk_end %s\n",
		       n,
		       arg.walk_end == arg.end ? "== end" : "is stale (< end)");
	close(fd);
	munmap(buf, NPAGES * ps);
}

static Suite *scanloop_suite(void)
{
	Suite *s = suite_create("scanloop");
	TCase *tc = tcase_create("stale_walk_end");

	tcase_set_timeout(tc, 300);

	tcase_add_loop_test(tc, every_batch_and_capacity, 0,
			    sizeof(batches) / sizeof(batches[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int r = t_init();

	if (r)
		return r;
	report_kernel_quirk();
	return t_run(scanloop_suite());
}

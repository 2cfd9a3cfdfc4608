// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench: libpmtrack against a hand-written loop of the same kernel
 * calls (PAGEMAP_SCAN on /proc/self/pagemap over a range registered with an
 * async write-protect userfaultfd).
 *
 * Two equally sized anonymous regions are populated; one is tracked by a
 * raw userfaultfd set up here ("raw"), the other by a pmtrack tracker
 * ("lib").  For each write pattern (0%, 1% scattered, 1% clustered, 100% of
 * the pages) we measure:
 *
 *  write          after arming, the cost of writing one byte to each page of
 *                 the pattern, in ns per write.  Each is the first write to
 *                 its page since arming, so each takes the async uffd-wp
 *                 fault, which the kernel resolves by itself: the library is
 *                 not on this path and the ratio should be 1.
 *  collect+reset  one collect with reset over the whole region after those
 *                 writes: a PAGEMAP_SCAN loop here, pmtrack_collect_bitmap()
 *                 with PMTRACK_COLLECT_RESET for the library.  Both must
 *                 report exactly the pages written.
 *
 * Every measurement is repeated --reps times.  In each rep raw and lib run
 * one after the other (alternating which goes first), each re-arming its
 * region, writing the pattern and collecting.  The table shows the medians
 * and the ratio lib/raw.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/pmtrack.h>

#include "args.h"
#include "bench_raw.h"
#include "bench_util.h"

#define EXIT_SKIP 77

enum pattern {
	PAT_NONE,
	PAT_SCATTERED,
	PAT_CLUSTERED,
	PAT_ALL,
	PAT_NR,
};

static const char *const pattern_name[PAT_NR] = {
	[PAT_NONE] = "0%",
	[PAT_SCATTERED] = "1% scattered",
	[PAT_CLUSTERED] = "1% clustered",
	[PAT_ALL] = "100%",
};

/* the library's side */
struct lib {
	struct pmtrack *t;
	struct pmtrack_bitmap *bm;
	char *base;
	size_t len;
};

enum { RAW, LIB };

__attribute__((noreturn)) static void fail(const char *what, int err)
{
	fprintf(stderr, "pmtrack-bench: %s: %s\n", what, strerror(err));
	exit(1);
}

static char *map_populated(size_t len, size_t page_size)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap", errno);
	for (size_t off = 0; off < len; off += page_size)
		p[off] = 1;
	return p;
}

/* map and register the hand-written tracker's region (bench_raw.c) */
static void raw_setup(struct bench_raw *r, size_t len, size_t page_size)
{
	int ret = bench_raw_setup(r, map_populated(len, page_size), len,
				  page_size);

	if (ret)
		fail("userfaultfd async write-protect setup", -ret);
}

static void raw_arm(struct bench_raw *r)
{
	int ret = bench_raw_arm(r, (uintptr_t)r->base,
				(uintptr_t)r->base + r->len);

	if (ret)
		fail("PAGEMAP_SCAN (arm)", -ret);
}

/* collect with reset over the whole region; returns the pages reported */
static size_t raw_collect(struct bench_raw *r)
{
	long n = bench_raw_collect(r, (uintptr_t)r->base,
				   (uintptr_t)r->base + r->len, true, 0, NULL);

	if (n < 0)
		fail("PAGEMAP_SCAN (collect)", (int)-n);
	return (size_t)n;
}

/* page indices written by pattern @p; returns how many */
static size_t pattern_build(enum pattern p, size_t npages, size_t *idx)
{
	size_t n1 = npages / 100 ? npages / 100 : 1;
	size_t i;

	switch (p) {
	case PAT_NONE:
		return 0;
	case PAT_SCATTERED:
		for (i = 0; i < n1; i++)
			idx[i] = i * (npages / n1);
		return n1;
	case PAT_CLUSTERED:
		for (i = 0; i < n1; i++)
			idx[i] = (npages - n1) / 2 + i;
		return n1;
	case PAT_ALL:
	default:
		for (i = 0; i < npages; i++)
			idx[i] = i;
		return npages;
	}
}

static void write_pages(char *base, const size_t *idx, size_t n,
			size_t page_size, char val)
{
	volatile char *b = base;

	for (size_t i = 0; i < n; i++)
		b[idx[i] * page_size] = val;
}

/*
 * One rep of one side (@raw, or @lib if @raw is NULL): arm, time the
 * pattern's writes (*@wr_ns per write), then time a collect with reset over
 * the whole region (*@co_us).  Returns the pages the collect reported.
 *
 * Each side runs the whole sequence back to back: the first collect after
 * a burst of write faults is measurably slower here, so doing both sides'
 * writes before both collects would favour whichever collects second.
 */
static size_t measure(struct bench_raw *raw, struct lib *lib, const size_t *idx,
		      size_t n, size_t page_size, char val, double *wr_ns,
		      double *co_us)
{
	size_t got;
	uint64_t t0;
	int ret;

	if (raw) {
		raw_arm(raw);
	} else {
		ret = pmtrack_reset(lib->t, lib->base, lib->len);
		if (ret)
			fail("pmtrack_reset", -ret);
	}

	t0 = bench_now_ns();
	write_pages(raw ? raw->base : lib->base, idx, n, page_size, val);
	*wr_ns = n ? (double)(bench_now_ns() - t0) / n : 0;

	t0 = bench_now_ns();
	if (raw) {
		got = raw_collect(raw);
		*co_us = (bench_now_ns() - t0) / 1e3;
	} else {
		ret = pmtrack_collect_bitmap(lib->t, lib->base, lib->len,
					     PMTRACK_COLLECT_RESET, lib->bm);
		*co_us = (bench_now_ns() - t0) / 1e3;
		if (ret)
			fail("pmtrack_collect_bitmap", -ret);
		got = pmtrack_bitmap_count(lib->bm);
	}
	return got;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pmtrack-bench [--size-mib N] [--reps N]\n"
		   "  --size-mib N  size of each of the two regions (1024)\n"
		   "  --reps N      repetitions per measurement (5)\n");
}

static void skip_unless(enum pmtrack_feature f)
{
	int r = pmtrack_probe(f, NULL);

	if (r == 1)
		return;
	printf("SKIP: %s unavailable (%s)\n", pmtrack_feature_name(f),
	       r < 0 ? strerror(-r) : "probe says no");
	exit(EXIT_SKIP);
}

static void parse_args(int argc, char **argv, size_t *size_mib, int *reps)
{
	static const struct option longopts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			*size_mib = bench_parse_num("pmtrack-bench", optarg,
						    "--size-mib");
			break;
		case 'r':
			*reps = (int)bench_parse_num("pmtrack-bench", optarg,
						     "--reps");
			break;
		default:
			pmt_usage_exit(opt, usage);
		}
	}
	pmt_no_operands(argc, usage);
}

/* everything a run uses */
struct ctx {
	struct bench_raw *raw;
	struct lib lib;
	size_t page_size, len, npages, *idx;
	double *wr[2], *co[2]; /* per side, per rep */
	int reps;
};

/* both sides' regions and trackers, and the buffers for the results */
static void setup(struct ctx *c)
{
	int ret;

	c->raw = malloc(sizeof(*c->raw));
	c->idx = malloc(c->npages * sizeof(*c->idx));
	if (!c->raw || !c->idx)
		fail("malloc", ENOMEM);
	for (int s = 0; s < 2; s++) {
		c->wr[s] = malloc((size_t)c->reps * sizeof(double));
		c->co[s] = malloc((size_t)c->reps * sizeof(double));
		if (!c->wr[s] || !c->co[s])
			fail("malloc", ENOMEM);
	}

	raw_setup(c->raw, c->len, c->page_size);

	c->lib.len = c->len;
	c->lib.base = map_populated(c->len, c->page_size);
	ret = pmtrack_new(NULL, &c->lib.t);
	if (ret)
		fail("pmtrack_new", -ret);
	ret = pmtrack_watch(c->lib.t, c->lib.base, c->len);
	if (ret)
		fail("pmtrack_watch", -ret);
	ret = pmtrack_bitmap_new(&c->lib.bm);
	if (ret)
		fail("pmtrack_bitmap_new", -ret);

	/* one untimed collect each, so that no timed one pays for faulting
	 * in the output buffers */
	raw_collect(c->raw);
	ret = pmtrack_collect_bitmap(c->lib.t, c->lib.base, c->len,
				     PMTRACK_COLLECT_RESET, c->lib.bm);
	if (ret)
		fail("pmtrack_collect_bitmap", -ret);
}

static void teardown(struct ctx *c)
{
	pmtrack_bitmap_free(c->lib.bm);
	pmtrack_free(c->lib.t);
	munmap(c->lib.base, c->len);
	close(c->raw->uffd);
	close(c->raw->pagemap_fd);
	munmap(c->raw->base, c->len);
	free(c->raw);
	free(c->idx);
	for (int s = 0; s < 2; s++) {
		free(c->wr[s]);
		free(c->co[s]);
	}
}

static void print_header(const struct ctx *c, size_t size_mib)
{
	struct utsname uts;

	if (uname(&uts))
		fail("uname", errno);
	printf("pmtrack-bench: kernel %s, libpmtrack %s, 2 regions of %zu MiB "
	       "(%zu pages of %zu B), %d reps, medians\n\n",
	       uts.release, pmtrack_version(), size_mib, c->npages,
	       c->page_size, c->reps);
	printf("| pattern | dirty pages | write raw ns | write lib ns | ratio "
	       "| collect+reset raw us | collect+reset lib us | ratio |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|--:|\n");
	fflush(stdout);
}

/* every rep of pattern @p on both sides, and its row; 1 if a collect
 * reported other pages than were written */
static int run_pattern(struct ctx *c, enum pattern p)
{
	size_t n = pattern_build(p, c->npages, c->idx);
	double w[2], co[2];

	for (int rep = 0; rep < c->reps; rep++) {
		/* raw first on even reps, lib first on odd ones */
		for (int k = 0; k < 2; k++) {
			int s = k ^ (rep & 1);
			size_t got;

			got = measure(s == RAW ? c->raw : NULL, &c->lib, c->idx,
				      n, c->page_size, (char)(rep + 2),
				      &c->wr[s][rep], &c->co[s][rep]);
			if (got == n)
				continue;
			fprintf(stderr,
				"pmtrack-bench: %s, %s, rep %d: "
				"collect reported %zu pages, expected "
				"%zu\n",
				pattern_name[p], s == LIB ? "lib" : "raw", rep,
				got, n);
			return 1;
		}
	}

	for (int s = 0; s < 2; s++) {
		w[s] = n ? bench_median(c->wr[s], c->reps) : 0;
		co[s] = bench_median(c->co[s], c->reps);
	}
	if (n)
		printf("| %s | %zu | %.0f | %.0f | %.3f ", pattern_name[p], n,
		       w[RAW], w[LIB], w[LIB] / w[RAW]);
	else
		printf("| %s | 0 | - | - | - ", pattern_name[p]);
	printf("| %.1f | %.1f | %.3f |\n", co[RAW], co[LIB],
	       co[LIB] / co[RAW]);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct ctx c = { .reps = 5 };
	size_t size_mib = 1024;

	parse_args(argc, argv, &size_mib, &c.reps);

	skip_unless(PMTRACK_FEAT_PAGEMAP_SCAN);
	skip_unless(PMTRACK_FEAT_UFFD_WP_ASYNC);

	c.page_size = (size_t)sysconf(_SC_PAGESIZE);
	c.len = size_mib << 20;
	c.npages = c.len / c.page_size;
	setup(&c);
	print_header(&c, size_mib);
	for (int p = 0; p < PAT_NR; p++)
		if (run_pattern(&c, p))
			return 1;
	teardown(&c);
	return 0;
}

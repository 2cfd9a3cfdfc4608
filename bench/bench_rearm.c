// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench-rearm: what a RESET collect costs an ordinary process (no
 * secondary MMU) in pagemap-scan's two re-arm modes, PMTRACK_REARM_RANGE
 * (one re-protecting scan over the whole range) and PMTRACK_REARM_WRITTEN
 * (a search, then a re-protecting scan per span of written runs).
 *
 * Two equally sized populated anonymous regions, one tracker each (one
 * per mode).  For each pattern (0%, 0.1%, 1%, 10% of the pages at random,
 * 10% as one sequential run, 50% at random, 100%) and each repetition,
 * both sides write the same pages and are then collected with
 * pmtrack_collect_bitmap(RESET), one after the other (alternating which
 * goes first); each collect must report exactly the pages written.  The
 * table shows medians of the collect time, the ratio WRITTEN / RANGE and
 * the PAGEMAP_SCAN calls per collect (pmtrack_stats.scans).  Only the
 * ratios carry over to another machine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <pmtrack/pmtrack.h>

#include "bench_util.h"

#define PROG "pmtrack-bench-rearm"
#define EXIT_SKIP 77

enum side { RANGE, WRITTEN, NSIDES };

static const enum pmtrack_rearm side_mode[NSIDES] = {
	[RANGE] = PMTRACK_REARM_RANGE,
	[WRITTEN] = PMTRACK_REARM_WRITTEN,
};

static const struct pattern {
	const char *name;
	double frac;	 /* of the pages */
	bool sequential; /* one run from the middle, else at random */
} patterns[] = {
	{ "0%", 0, false },
	{ "0.1% random", 0.001, false },
	{ "1% random", 0.01, false },
	{ "10% random", 0.1, false },
	{ "10% sequential", 0.1, true },
	{ "50% random", 0.5, false },
	{ "100%", 1, true },
};
#define NPATTERNS (sizeof(patterns) / sizeof(patterns[0]))

struct side_state {
	struct pmtrack *t;
	struct pmtrack_bitmap *bm;
	char *base;
};

__attribute__((noreturn)) static void fail(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err));
	exit(1);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* the pages of pattern @p over @npages, into @pages; returns the count */
static size_t make_pattern(const struct pattern *p, size_t npages,
			   size_t *pages)
{
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	size_t n = 0, want = (size_t)((double)npages * p->frac);

	if (p->sequential) {
		size_t from = want == npages ? 0 : npages / 3;

		for (size_t i = 0; i < want; i++)
			pages[n++] = from + i;
		return n;
	}
	for (size_t i = 0; i < npages; i++)
		if ((double)(rnd(&s) >> 11) / (double)(1ULL << 53) < p->frac)
			pages[n++] = i;
	return n;
}

static uint64_t scans(const struct side_state *st)
{
	PMTRACK_OPTS(pmtrack_stats, s);

	if (pmtrack_get_stats(st->t, &s))
		fail("pmtrack_get_stats", EINVAL);
	return s.scans;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	size_t size_mib = 256, ps = (size_t)sysconf(_SC_PAGESIZE);
	int reps = 7, c;
	struct side_state st[NSIDES];
	struct utsname u;
	size_t npages, len, *pages;
	double *ns[NSIDES];
	uint64_t nscans[NSIDES];

	while ((c = getopt_long(argc, argv, "s:r:h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			size_mib = bench_parse_num(PROG, optarg, "--size-mib");
			break;
		case 'r':
			reps = (int)bench_parse_num(PROG, optarg, "--reps");
			break;
		default:
			printf("usage: " PROG " [--size-mib N (256)] "
			       "[--reps N (7)]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	len = size_mib << 20;
	npages = len / ps;
	pages = calloc(npages, sizeof(*pages));
	ns[RANGE] = calloc((size_t)reps, sizeof(double));
	ns[WRITTEN] = calloc((size_t)reps, sizeof(double));
	if (!pages || !ns[RANGE] || !ns[WRITTEN])
		fail("calloc", ENOMEM);
	for (int s = 0; s < NSIDES; s++) {
		PMTRACK_OPTS(pmtrack_opts, o,
			     .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
			     .rearm = side_mode[s]);
		int ret = pmtrack_new(&o, &st[s].t);

		if (ret == -EOPNOTSUPP) {
			printf("SKIP: pagemap-scan is not usable here\n");
			return EXIT_SKIP;
		}
		if (ret)
			fail("pmtrack_new", -ret);
		st[s].base =
			mmap(NULL, len, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (st[s].base == MAP_FAILED)
			fail("mmap", errno);
		/* base pages: a THP would be split by the first write */
		(void)madvise(st[s].base, len, MADV_NOHUGEPAGE);
		memset(st[s].base, 1, len);
		ret = pmtrack_watch(st[s].t, st[s].base, len);
		if (!ret)
			ret = pmtrack_bitmap_new(&st[s].bm);
		if (ret)
			fail("pmtrack_watch", -ret);
	}
	uname(&u);
	printf(PROG ": kernel %s, libpmtrack %s, 2 regions of %zu MiB (%zu "
		    "pages of %zu B), %d reps, medians\n\n",
	       u.release, pmtrack_version(), size_mib, npages, ps, reps);
	printf("| pattern | written pages | RANGE ms | WRITTEN ms | "
	       "WRITTEN / RANGE | scans RANGE | scans WRITTEN |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|\n");
	for (size_t p = 0; p < NPATTERNS; p++) {
		size_t n = make_pattern(&patterns[p], npages, pages);

		for (int r = 0; r < reps; r++) {
			for (int k = 0; k < NSIDES; k++) {
				int s = (k + r) % NSIDES;
				uint64_t t0, sc;
				int ret;

				for (size_t i = 0; i < n; i++)
					st[s].base[pages[i] * ps] = (char)r;
				sc = scans(&st[s]);
				t0 = bench_now_ns();
				ret = pmtrack_collect_bitmap(
					st[s].t, st[s].base, len,
					PMTRACK_COLLECT_RESET, st[s].bm);
				ns[s][r] = (double)(bench_now_ns() - t0);
				if (ret)
					fail("pmtrack_collect_bitmap", -ret);
				nscans[s] = scans(&st[s]) - sc;
				if (pmtrack_bitmap_count(st[s].bm) != n) {
					fprintf(stderr,
						PROG ": %s, %s: reported %zu "
						     "pages, written %zu\n",
						patterns[p].name,
						s == RANGE ? "RANGE"
							   : "WRITTEN",
						pmtrack_bitmap_count(st[s].bm),
						n);
					return 1;
				}
			}
		}
		double mr = bench_median(ns[RANGE], reps) / 1e6;
		double mw = bench_median(ns[WRITTEN], reps) / 1e6;

		printf("| %s | %zu | %.3f | %.3f | %.2f | %llu | %llu |\n",
		       patterns[p].name, n, mr, mw, mw / mr,
		       (unsigned long long)nscans[RANGE],
		       (unsigned long long)nscans[WRITTEN]);
		fflush(stdout);
	}
	for (int s = 0; s < NSIDES; s++) {
		pmtrack_bitmap_free(st[s].bm);
		pmtrack_free(st[s].t);
		munmap(st[s].base, len);
	}
	free(pages);
	free(ns[RANGE]);
	free(ns[WRITTEN]);
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * pmtrack-demo: watch a buffer, write to some of its pages, and ask which
 * pages were written, in each of the three output forms.
 *
 *   pmtrack-demo
 *   pmtrack-demo --help | --version
 *
 * Exit status: 0 done, 1 failed, 2 a bad command line, 77 this machine
 * cannot run it (no backend works here; why on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <pmtrack/pmtrack.h>

#include "args.h"
#include "excli.h"
#include "status.h"

#define PROG "pmtrack-demo"
#define NPAGES 64

static void help(FILE *f)
{
	fputs("usage: " PROG "\n"
	      "       " PROG " --help | --version\n"
	      "\n"
	      "Prints which kernel features this machine has, then watches a "
	      "64-page buffer,\n"
	      "writes some of its pages and asks which were written: as page "
	      "addresses, as\n"
	      "runs and as a bitmap.  Exit status: 0 done, 1 failed, 2 a bad "
	      "command line,\n"
	      "77 this machine cannot run it (why on stderr).\n"
	      "\n"
	      "  -h, --help    print this help and exit\n"
	      "  --version     print the version and exit\n",
	      f);
}

static void parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, PMT_CLI_HELP },
		{ "version", no_argument, NULL, PMT_CLI_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const struct pmt_cli cli = { PROG, longopts, help };

	while (pmt_cli_next(&cli, argc, argv) != -1)
		;
	pmt_cli_end(&cli, argc, argv);
}

static void print_probes(void)
{
	printf("libpmtrack %s, kernel features:\n", pmtrack_version());
	for (int f = 1; f < PMTRACK_FEAT_MAX; f++) {
		int r = pmtrack_probe(f, NULL);

		printf("  %-20s %s\n", pmtrack_feature_name(f),
		       r > 0	? "yes"
		       : r == 0 ? "no"
				: strerror(-r));
	}
}

/* 1. page addresses, without resetting */
static int show_pages(struct pmtrack *t, char *buf, size_t ps)
{
	void *pages[NPAGES], *next;
	size_t n = NPAGES;
	int ret;

	ret = pmtrack_collect_pages(t, buf, NPAGES * ps, 0, pages, &n, &next);
	if (ret)
		return ret;
	printf("written pages (%zu):", n);
	for (size_t i = 0; i < n; i++)
		printf(" %zu", (size_t)((char *)pages[i] - buf) / ps);
	printf("\n");
	return 0;
}

/* 2. runs, and reset what was reported */
static int show_runs(struct pmtrack *t, char *buf, size_t ps)
{
	struct pmtrack_run runs[8];
	size_t n = 8;
	int ret;

	ret = pmtrack_collect_runs(t, buf, NPAGES * ps, PMTRACK_COLLECT_RESET,
				   runs, &n, NULL);
	if (ret)
		return ret;
	printf("written runs (%zu):", n);
	for (size_t i = 0; i < n; i++)
		printf(" [%zu,+%zu)", (size_t)((char *)runs[i].addr - buf) / ps,
		       runs[i].len / ps);
	printf("\n");
	return 0;
}

/* 3. a bitmap after one more write */
static int show_bitmap(struct pmtrack *t, char *buf, size_t ps)
{
	struct pmtrack_bitmap *bm = NULL;
	int ret;

	buf[63 * ps] = 3;
	ret = pmtrack_bitmap_new(&bm);
	if (!ret)
		ret = pmtrack_collect_bitmap(t, buf, NPAGES * ps,
					     PMTRACK_COLLECT_RESET, bm);
	if (!ret)
		printf("bitmap after reset and one write: %zu page(s) set, "
		       "first %zu\n",
		       pmtrack_bitmap_count(bm), pmtrack_bitmap_next(bm, 0));
	pmtrack_bitmap_free(bm);
	return ret;
}

static void show_stats(struct pmtrack *t)
{
	struct pmtrack_stats st;
	char d[PMT_UNIT_LEN];

	st.sz = sizeof(st);
	pmtrack_get_stats(t, &st);
	printf("stats: %llu collects, %llu pages reported, %llu scans, %s "
	       "scanning\n",
	       (unsigned long long)st.collects,
	       (unsigned long long)st.pages_reported,
	       (unsigned long long)st.scans,
	       pmt_fmt_dur(d, sizeof(d), st.scan_ns));
}

int main(int argc, char **argv)
{
	struct pmtrack *t = NULL;
	size_t ps;
	char *buf;
	int ret;

	parse(argc, argv);
	print_probes();

	ret = pmtrack_new(NULL, &t);
	if (ret == -EOPNOTSUPP) {
		fprintf(stderr,
			PROG ": this machine cannot run it: no backend works "
			     "here (pmtrack_new: %s; the features above say "
			     "which are missing)\n",
			strerror(-ret));
		return 77;
	}
	if (ret) {
		fprintf(stderr, PROG ": pmtrack_new: %s\n", strerror(-ret));
		return 1;
	}
	ps = pmtrack_granularity(t);
	printf("backend %s, granularity %s (%zu bytes)\n",
	       pmtrack_backend_name(pmtrack_backend(t)), pmt_iec(ps), ps);

	buf = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	ret = pmtrack_watch(t, buf, NPAGES * ps);
	if (ret) {
		fprintf(stderr, PROG ": pmtrack_watch: %s\n", strerror(-ret));
		return 1;
	}

	/* write pages 3, 4, 5, 17 and 40 */
	buf[3 * ps] = buf[4 * ps] = buf[5 * ps + 100] = 1;
	buf[17 * ps + ps - 1] = 2;
	strcpy(&buf[40 * ps], "hello");

	ret = show_pages(t, buf, ps);
	if (!ret)
		ret = show_runs(t, buf, ps);
	if (!ret)
		ret = show_bitmap(t, buf, ps);
	if (ret) {
		fprintf(stderr, PROG ": collect: %s\n", strerror(-ret));
		return 1;
	}
	show_stats(t);
	pmtrack_free(t);
	munmap(buf, NPAGES * ps);
	return 0;
}

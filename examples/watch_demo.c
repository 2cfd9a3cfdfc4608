// SPDX-License-Identifier: MIT
/*
 * pmtrack-demo: watch a buffer, write to some of its pages, and ask which
 * pages were written, in each of the three output forms.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <pmtrack/pmtrack.h>

#define NPAGES 64

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

int main(void)
{
	struct pmtrack_bitmap *bm = NULL;
	struct pmtrack_run runs[8];
	struct pmtrack_stats st;
	struct pmtrack *t = NULL;
	void *pages[NPAGES], *next;
	size_t ps, n, i;
	char *buf;
	int ret;

	print_probes();

	ret = pmtrack_new(NULL, &t);
	if (ret) {
		fprintf(stderr, "pmtrack_new: %s\n", strerror(-ret));
		return ret == -EOPNOTSUPP ? 77 : 1;
	}
	ps = pmtrack_granularity(t);
	printf("backend %s, granularity %zu bytes\n",
	       pmtrack_backend_name(pmtrack_backend(t)), ps);

	buf = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	ret = pmtrack_watch(t, buf, NPAGES * ps);
	if (ret) {
		fprintf(stderr, "pmtrack_watch: %s\n", strerror(-ret));
		return 1;
	}

	/* write pages 3, 4, 5, 17 and 40 */
	buf[3 * ps] = buf[4 * ps] = buf[5 * ps + 100] = 1;
	buf[17 * ps + ps - 1] = 2;
	strcpy(&buf[40 * ps], "hello");

	/* 1. page addresses, without resetting */
	n = NPAGES;
	ret = pmtrack_collect_pages(t, buf, NPAGES * ps, 0, pages, &n, &next);
	if (ret)
		goto fail;
	printf("written pages (%zu):", n);
	for (i = 0; i < n; i++)
		printf(" %zu", (size_t)((char *)pages[i] - buf) / ps);
	printf("\n");

	/* 2. runs, and reset what was reported */
	n = 8;
	ret = pmtrack_collect_runs(t, buf, NPAGES * ps, PMTRACK_COLLECT_RESET,
				   runs, &n, NULL);
	if (ret)
		goto fail;
	printf("written runs (%zu):", n);
	for (i = 0; i < n; i++)
		printf(" [%zu,+%zu)", (size_t)((char *)runs[i].addr - buf) / ps,
		       runs[i].len / ps);
	printf("\n");

	/* 3. a bitmap after one more write */
	buf[63 * ps] = 3;
	ret = pmtrack_bitmap_new(&bm);
	if (!ret)
		ret = pmtrack_collect_bitmap(t, buf, NPAGES * ps,
					     PMTRACK_COLLECT_RESET, bm);
	if (ret)
		goto fail;
	printf("bitmap after reset and one write: %zu page(s) set, first %zu\n",
	       pmtrack_bitmap_count(bm), pmtrack_bitmap_next(bm, 0));

	st.sz = sizeof(st);
	pmtrack_get_stats(t, &st);
	printf("stats: %llu collects, %llu pages reported, %llu scans, %llu ns "
	       "scanning\n",
	       (unsigned long long)st.collects,
	       (unsigned long long)st.pages_reported,
	       (unsigned long long)st.scans, (unsigned long long)st.scan_ns);
	pmtrack_bitmap_free(bm);
	pmtrack_free(t);
	munmap(buf, NPAGES * ps);
	return 0;
fail:
	fprintf(stderr, "collect: %s\n", strerror(-ret));
	return 1;
}

// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

size_t ps;

int t_init(void)
{
	static const enum pmtrack_feature need[] = {
		PMTRACK_FEAT_PAGEMAP_SCAN,
		PMTRACK_FEAT_UFFD_WP_ASYNC,
	};

	ps = (size_t)sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		int r = pmtrack_probe(need[i], NULL);

		if (r == 0) {
			printf("SKIP: kernel lacks %s (needs Linux 6.7+ with "
			       "userfaultfd allowed)\n",
			       pmtrack_feature_name(need[i]));
			return T_SKIP;
		}
		if (r < 0) {
			fprintf(stderr, "probe %s failed: %s\n",
				pmtrack_feature_name(need[i]), strerror(-r));
			return 1;
		}
	}
	return 0;
}

int t_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

char *t_map_anon(size_t npages)
{
	char *p = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

struct pmtrack *t_new(unsigned int scan_batch)
{
	PMTRACK_OPTS(pmtrack_opts, o, .scan_batch = scan_batch);
	struct pmtrack *t = NULL;
	int r = pmtrack_new(&o, &t);

	ck_assert_msg(r == 0, "pmtrack_new: %s", strerror(-r));
	return t;
}

size_t t_collect_idx(struct pmtrack *t, char *buf, size_t npages,
		     unsigned int flags, size_t *idx)
{
	void **pages = calloc(npages, sizeof(*pages));
	size_t n = npages;
	int r;

	ck_assert_ptr_nonnull(pages);
	r = pmtrack_collect_pages(t, buf, npages * ps, flags, pages, &n, NULL);
	ck_assert_msg(r == 0, "collect_pages: %s", strerror(-r));
	for (size_t i = 0; i < n; i++)
		idx[i] = (size_t)((char *)pages[i] - buf) / ps;
	free(pages);
	return n;
}

void t_expect_idx(struct pmtrack *t, char *buf, size_t npages,
		  unsigned int flags, const size_t *want, size_t n)
{
	size_t *got = calloc(npages + 1, sizeof(*got));
	size_t m;

	ck_assert_ptr_nonnull(got);
	m = t_collect_idx(t, buf, npages, flags, got);
	ck_assert_uint_eq(m, n);
	for (size_t i = 0; i < n; i++)
		t_check(got[i] == want[i], "page #%zu: got %zu want %zu", i,
			got[i], want[i]);
	free(got);
}

uint64_t t_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

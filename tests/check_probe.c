// SPDX-License-Identifier: MIT
/*
 * Feature probes: argument checks, caching, agreement with the raw kernel
 * interfaces exercised by hand, and thread safety of the first probe.
 * Runs on any kernel: it asserts agreement, not availability.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"
#include "../lib/base/uapi_compat.h"

START_TEST(bad_arguments)
{
	int dummy;

	ck_assert_int_eq(pmtrack_probe(0, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_probe(PMTRACK_FEAT_MAX, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_probe(-1, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, &dummy),
			 -EINVAL);
	ck_assert_ptr_null(pmtrack_feature_name(0));
	ck_assert_ptr_null(pmtrack_feature_name(PMTRACK_FEAT_MAX));
	for (int f = 1; f < PMTRACK_FEAT_MAX; f++)
		ck_assert_ptr_nonnull(pmtrack_feature_name(f));
	ck_assert_str_eq(pmtrack_feature_name(PMTRACK_FEAT_SOFT_DIRTY),
			 "soft-dirty");
}
END_TEST

START_TEST(answers_are_stable)
{
	for (int f = 1; f < PMTRACK_FEAT_MAX; f++) {
		int a = pmtrack_probe(f, NULL), b = pmtrack_probe(f, NULL);

		ck_assert_msg(a == 0 || a == 1, "%s: %d",
			      pmtrack_feature_name(f), a);
		ck_assert_int_eq(a, b);
	}
}
END_TEST

static int raw_scan(uint64_t return_mask, void *start, size_t len,
		    struct page_region *vec, size_t vlen)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)start,
		.end = (uintptr_t)start + len,
		.vec = (uintptr_t)vec,
		.vec_len = vlen,
		.category_mask = return_mask,
		.return_mask = return_mask,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY), r;

	if (fd < 0)
		return -errno;
	r = ioctl(fd, PAGEMAP_SCAN, &arg);
	r = r < 0 ? -errno : r;
	close(fd);
	return r;
}

START_TEST(pagemap_scan_agrees)
{
	struct page_region r[2];
	char *p = t_map_anon(1);
	int got;

	p[0] = 1;
	got = raw_scan(PAGE_IS_PRESENT, p, ps, r, 2);
	ck_assert_int_eq(pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL),
			 got == 1 && r[0].start == (uintptr_t)p);
	munmap(p, ps);
}
END_TEST

START_TEST(categories_agree)
{
	static const struct {
		enum pmtrack_feature f;
		uint64_t bit;
	} cats[] = {
		{ PMTRACK_FEAT_PAGE_IS_WPALLOWED, PAGE_IS_WPALLOWED },
		{ PMTRACK_FEAT_PAGE_IS_WRITTEN, PAGE_IS_WRITTEN },
		{ PMTRACK_FEAT_PAGE_IS_FILE, PAGE_IS_FILE },
		{ PMTRACK_FEAT_PAGE_IS_PRESENT, PAGE_IS_PRESENT },
		{ PMTRACK_FEAT_PAGE_IS_SWAPPED, PAGE_IS_SWAPPED },
		{ PMTRACK_FEAT_PAGE_IS_PFNZERO, PAGE_IS_PFNZERO },
		{ PMTRACK_FEAT_PAGE_IS_HUGE, PAGE_IS_HUGE },
		{ PMTRACK_FEAT_PAGE_IS_GUARD, PAGE_IS_GUARD },
		{ PMTRACK_FEAT_PAGE_IS_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY },
	};
	int scan = pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL);
	int sd = pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY, NULL);

	for (size_t i = 0; i < sizeof(cats) / sizeof(cats[0]); i++) {
		int raw = raw_scan(cats[i].bit, (void *)ps, 0, NULL, 0);
		int want = scan == 1 && raw == 0;

		if (cats[i].f == PMTRACK_FEAT_PAGE_IS_SOFT_DIRTY)
			want = want && sd == 1;
		ck_assert_msg(pmtrack_probe(cats[i].f, NULL) == want,
			      "%s: probe %d, raw scan %d",
			      pmtrack_feature_name(cats[i].f),
			      pmtrack_probe(cats[i].f, NULL), raw);
	}
	/* the first categories came with PAGEMAP_SCAN itself */
	ck_assert_int_eq(pmtrack_probe(PMTRACK_FEAT_PAGE_IS_WRITTEN, NULL),
			 scan);
}
END_TEST

static uint64_t raw_uffd_features(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	uint64_t f = 0;

	if (fd < 0)
		return 0;
	if (!ioctl(fd, UFFDIO_API, &api))
		f = api.features;
	close(fd);
	return f;
}

START_TEST(uffd_agrees)
{
	uint64_t f = raw_uffd_features();
	int async = pmtrack_probe(PMTRACK_FEAT_UFFD_WP_ASYNC, NULL);
	int sync = pmtrack_probe(PMTRACK_FEAT_UFFD_WP, NULL);

	/* a kernel that advertises the feature must also pass the
	 * behavioural probe, and one that does not must fail it */
	ck_assert_int_eq(async, (f & UFFD_FEATURE_WP_ASYNC) &&
					(f & UFFD_FEATURE_WP_UNPOPULATED));
	ck_assert_int_eq(sync, !!(f & UFFD_FEATURE_PAGEFAULT_FLAG_WP));
}
END_TEST

START_TEST(soft_dirty_agrees)
{
	/* do it by hand: clear, write, read bit 55 */
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int cr = open("/proc/self/clear_refs", O_WRONLY);
	char *p = t_map_anon(1);
	uint64_t ent = 0;
	int manual = 0;

	p[0] = 1;
	if (pm >= 0 && cr >= 0 && write(cr, "4", 1) == 1) {
		p[0] = 2;
		ck_assert_int_eq(
			pread(pm, &ent, 8, (off_t)((uintptr_t)p / ps * 8)), 8);
		manual = !!(ent & PMT_PM_SOFT_DIRTY);
	}
	ck_assert_int_eq(pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY, NULL), manual);
	if (pm >= 0)
		close(pm);
	if (cr >= 0)
		close(cr);
	munmap(p, ps);
}
END_TEST

static void *probe_all(void *arg)
{
	int *out = arg;

	for (int f = PMTRACK_FEAT_MAX - 1; f >= 1; f--)
		out[f] = pmtrack_probe(f, NULL);
	return NULL;
}

START_TEST(first_probe_from_threads)
{
	/* a fresh process (empty cache) probes everything from four threads
	 * at once; the answers must agree with each other and with ours */
	char exe[512], cmd[600], line[128] = "", want[PMTRACK_FEAT_MAX + 1];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	FILE *f;

	ck_assert_int_gt(n, 0);
	exe[n] = 0;
	for (int i = 1; i < PMTRACK_FEAT_MAX; i++)
		want[i - 1] = (char)('0' + pmtrack_probe(i, NULL));
	want[PMTRACK_FEAT_MAX - 1] = 0;
	snprintf(cmd, sizeof(cmd), "'%s' --threads", exe);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	ck_assert_int_eq(pclose(f), 0);
	line[strcspn(line, "\n")] = 0;
	ck_assert_str_eq(line, want);
}
END_TEST

/* check_probe --threads: probe from 4 threads, print the answers */
static int threads_main(void)
{
	int res[4][PMTRACK_FEAT_MAX];
	pthread_t th[4];

	for (int i = 0; i < 4; i++)
		if (pthread_create(&th[i], NULL, probe_all, res[i]))
			return 2;
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int f = 1; f < PMTRACK_FEAT_MAX; f++) {
		for (int i = 1; i < 4; i++)
			if (res[i][f] != res[0][f])
				return 3;
		if (res[0][f] != 0 && res[0][f] != 1)
			return 4;
		putchar('0' + res[0][f]);
	}
	putchar('\n');
	return 0;
}

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (argc == 2 && !strcmp(argv[1], "--threads"))
		return threads_main();
	s = suite_create("probe");
	tc = tcase_create("probes");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, answers_are_stable);
	tcase_add_test(tc, pagemap_scan_agrees);
	tcase_add_test(tc, categories_agree);
	tcase_add_test(tc, uffd_agrees);
	tcase_add_test(tc, soft_dirty_agrees);
	tcase_add_test(tc, first_probe_from_threads);
	suite_add_tcase(s, tc);
	return t_run(s);
}

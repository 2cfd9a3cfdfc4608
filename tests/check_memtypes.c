// SPDX-License-Identifier: MIT
/*
 * Every kind of mapping the tracker promises to watch, one per run:
 *   check_memtypes anon|shared-anon|memfd|file-shared|file-private|thp|hugetlb
 * Each is watched half populated, written (populated and unpopulated pages,
 * by the CPU and by the kernel) and collected in every output form.
 * thp and hugetlb skip (77) where the machine cannot provide huge pages;
 * hugetlb reserves pages itself when run as root and gives them back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "helpers.h"
#include "../lib/base/uapi_compat.h"

#define HPAGE (2u << 20)
#define NPAGES 2048u /* 8 MiB: four 2 MiB huge pages */

static const char *kind;
static char file_path[256];

/* a directory for a page-cache file: the first of TMPDIR, /var/tmp, /tmp
 * and the working directory that is not on tmpfs */
static const char *file_dir(void)
{
	const char *dirs[] = { getenv("TMPDIR"), "/var/tmp", "/tmp", "." };
	struct statfs sfs;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (dirs[i] && !statfs(dirs[i], &sfs) &&
		    sfs.f_type != TMPFS_MAGIC && !access(dirs[i], W_OK))
			return dirs[i];
	return NULL;
}
static long saved_nr_hugepages = -1;

static char *map_kind(size_t len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS, fd = -1;
	char *p;

	if (!strcmp(kind, "shared-anon")) {
		flags = MAP_SHARED | MAP_ANONYMOUS;
	} else if (!strcmp(kind, "memfd")) {
		fd = memfd_create("pmtrack-test", MFD_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
		flags = MAP_SHARED;
	} else if (!strncmp(kind, "file-", 5)) {
		fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0600);
		ck_assert_int_ge(fd, 0);
		unlink(file_path);
		ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
		flags = !strcmp(kind, "file-shared") ? MAP_SHARED : MAP_PRIVATE;
	} else if (!strcmp(kind, "hugetlb")) {
		flags |= MAP_HUGETLB;
	} else if (!strcmp(kind, "thp")) {
		/* over-map to get a 2 MiB aligned range */
		char *raw = mmap(NULL, len + HPAGE, PROT_READ | PROT_WRITE,
				 flags, -1, 0);

		ck_assert_ptr_ne(raw, MAP_FAILED);
		p = (char *)(((uintptr_t)raw + HPAGE - 1) &
			     ~(uintptr_t)(HPAGE - 1));
		ck_assert_int_eq(madvise(p, len, MADV_HUGEPAGE), 0);
		return p;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);
	ck_assert_msg(p != MAP_FAILED, "mmap %s: %s", kind, strerror(errno));
	if (fd >= 0)
		close(fd);
	/* base pages where THP is "always" (Debian's kernels): "thp" is
	 * the kind for huge pages */
	if (!strcmp(kind, "anon"))
		(void)madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/*
 * soft-dirty on THP: the kernel keeps one bit per huge page and a write
 * marks all of it (no split, unlike write-protect faults): every written
 * page is reported, and nothing outside the huge pages written to.
 */
static void thp_whole(struct pmtrack *t, char *b)
{
	const size_t wrote[] = { 5, 700, 1500 }, hp = HPAGE / ps;
	size_t *got = calloc(NPAGES, sizeof(*got)), n, i, j;

	ck_assert_ptr_nonnull(got);
	for (i = 0; i < 3; i++)
		b[wrote[i] * ps] = 7;
	n = t_collect_idx(t, b, NPAGES, PMTRACK_COLLECT_RESET, got);
	for (i = 0; i < 3; i++)
		t_check(t_has_idx(got, n, wrote[i]),
			"written page %zu not reported", wrote[i]);
	for (j = 0; j < n; j++)
		t_check(got[j] / hp == 0 || got[j] / hp == 700 / hp ||
				got[j] / hp == 1500 / hp,
			"page %zu reported, its huge page was not written",
			got[j]);
	t_expect_idx(t, b, NPAGES, 0, NULL, 0);
	free(got);
}

START_TEST(base_pages)
{
	/* kinds with base-page granularity (THP included: the kernel splits
	 * a huge page on its first write-protect fault; not on soft-dirty) */
	struct pmtrack *t = t_new(0);
	size_t len = NPAGES * ps, i;
	char *b = map_kind(len);
	int fds[2];

	/* populate the first half (all of it for THP, to get huge pages) */
	memset(b, 0x11, !strcmp(kind, "thp") ? len : len / 2);
	if (!strcmp(kind, "thp"))
		ck_assert_uint_gt(t_scan_count(b, len, PAGE_IS_HUGE), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, len), 0);
	t_expect_idx(t, b, NPAGES, 0, NULL, 0);
	if (!strcmp(kind, "thp") && t_backend == PMTRACK_BACKEND_SOFT_DIRTY) {
		thp_whole(t, b);
		pmtrack_free(t);
		return;
	}

	/* populated and unpopulated pages, runs and single pages */
	b[0] = 1;
	b[5 * ps + 17] = 1;
	memset(b + 100 * ps, 2, 3 * ps); /* 100..102 */
	b[1023 * ps] = b[1024 * ps] = 3; /* populated / not */
	b[1500 * ps] = 4;
	b[(NPAGES - 1) * ps + ps - 1] = 5;
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(write(fds[1], "kernel", 6), 6);
	ck_assert_int_eq(t_kread(t, fds[0], b + 1800 * ps, 6), 6);
	close(fds[0]);
	close(fds[1]);
	{
		const size_t want[] = { 0,    5,    100,  101,	102,
					1023, 1024, 1500, 1800, NPAGES - 1 };
		struct pmtrack_bitmap *bm;
		struct pmtrack_run runs[16];
		size_t n = 16;

		t_expect_idx(t, b, NPAGES, 0, want, 10);
		ck_assert_int_eq(
			pmtrack_collect_runs(t, b, len, 0, runs, &n, NULL), 0);
		ck_assert_uint_eq(n, 7);
		ck_assert_ptr_eq(runs[2].addr, b + 100 * ps);
		ck_assert_uint_eq(runs[2].len, 3 * ps);
		ck_assert_ptr_eq(runs[3].addr, b + 1023 * ps);
		ck_assert_uint_eq(runs[3].len, 2 * ps);
		ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
		/* a sub-range that cuts a (former) huge page in half */
		ck_assert_int_eq(
			pmtrack_collect_bitmap(t, b + 768 * ps, 512 * ps,
					       PMTRACK_COLLECT_RESET, bm),
			0);
		ck_assert_uint_eq(pmtrack_bitmap_count(bm), 2);
		ck_assert_int_eq(pmtrack_bitmap_test(bm, 1023 - 768), 1);
		ck_assert_int_eq(pmtrack_bitmap_test(bm, 1024 - 768), 1);
		pmtrack_bitmap_free(bm);
		t_expect_idx(t, b, NPAGES, PMTRACK_COLLECT_RESET,
			     (size_t[]){ 0, 5, 100, 101, 102, 1500, 1800,
					 NPAGES - 1 },
			     8);
	}
	t_expect_idx(t, b, NPAGES, 0, NULL, 0);
	/* again after the reset: every page written once */
	for (i = 0; i < NPAGES; i += 3)
		b[i * ps] = 9;
	{
		size_t *got = calloc(NPAGES, sizeof(*got));
		size_t n =
			t_collect_idx(t, b, NPAGES, PMTRACK_COLLECT_RESET, got);

		ck_assert_uint_eq(n, (NPAGES + 2) / 3);
		for (i = 0; i < n; i++)
			t_check(got[i] == 3 * i, "page %zu", got[i]);
		free(got);
	}
	ck_assert_int_eq(pmtrack_reset(t, b, len), 0);
	t_expect_idx(t, b, NPAGES, 0, NULL, 0);
	pmtrack_free(t);
}
END_TEST

START_TEST(huge_tlb)
{
	/* hugetlb: a write reports its whole huge page; ranges must not cut
	 * a huge page */
	struct pmtrack *t = t_new(0);
	size_t len = NPAGES * ps, hp = HPAGE / ps, i;
	char *b = map_kind(len);
	size_t *got = calloc(NPAGES, sizeof(*got));
	void *pages[4];
	size_t n = 4;

	b[0] = 1; /* populate huge page 0 only */
	ck_assert_int_eq(pmtrack_watch(t, b + ps, len - ps), -EINVAL);
	ck_assert_int_eq(pmtrack_watch(t, b, len - ps), -EINVAL);
	{
		/* hugetlb next to base pages: one range may not mix them */
		char *raw = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *m = (char *)(((uintptr_t)raw + HPAGE - 1) &
				   ~(uintptr_t)(HPAGE - 1));

		ck_assert_ptr_ne(raw, MAP_FAILED);
		ck_assert_ptr_eq(mmap(m + HPAGE, HPAGE, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS |
					      MAP_HUGETLB | MAP_FIXED,
				      -1, 0),
				 m + HPAGE);
		ck_assert_int_eq(pmtrack_watch(t, m, 2 * HPAGE), -EINVAL);
		{
			/* the same from the /proc/self/smaps fallback */
			struct pmtrack *t2;

			setenv("PMTRACK_NO_PROCMAP_QUERY", "1", 1);
			t2 = t_new(0);
			unsetenv("PMTRACK_NO_PROCMAP_QUERY");
			ck_assert_int_eq(pmtrack_watch(t2, m, 2 * HPAGE),
					 -EINVAL);
			ck_assert_int_eq(
				pmtrack_watch(t2, m + HPAGE - ps, HPAGE),
				-EINVAL);
			ck_assert_int_eq(pmtrack_watch(t2, m + HPAGE, HPAGE),
					 0);
			ck_assert_int_eq(pmtrack_watch(t2, m, HPAGE), 0);
			pmtrack_free(t2);
		}
		ck_assert_int_eq(pmtrack_watch(t, m, HPAGE), 0);
		ck_assert_int_eq(pmtrack_watch(t, m + HPAGE, HPAGE), 0);
		ck_assert_int_eq(pmtrack_unwatch(t, m, 2 * HPAGE), 0);
		munmap(raw, 3 * HPAGE);
	}
	ck_assert_int_eq(pmtrack_watch(t, b, len), 0);
	t_expect_idx(t, b, NPAGES, 0, NULL, 0);
	{
		/* too little room for a huge page: clean huge pages are
		 * skipped, the scan stops before a written one, and fails
		 * only when that one is first */
		void *next;

		n = 4;
		ck_assert_int_eq(pmtrack_collect_pages(t, b, len,
						       PMTRACK_COLLECT_RESET,
						       pages, &n, &next),
				 0);
		ck_assert_uint_eq(n, 0);
		ck_assert_ptr_eq(next, b + len);
		b[2 * HPAGE + 5] = 1;
		n = 4;
		ck_assert_int_eq(pmtrack_collect_pages(t, b, len,
						       PMTRACK_COLLECT_RESET,
						       pages, &n, &next),
				 0);
		ck_assert_uint_eq(n, 0);
		ck_assert_ptr_eq(next, b + 2 * HPAGE);
		n = 4;
		ck_assert_int_eq(pmtrack_collect_pages(t, next, 2 * HPAGE,
						       PMTRACK_COLLECT_RESET,
						       pages, &n, &next),
				 -ENOSPC);
		ck_assert_int_eq(pmtrack_reset(t, b, len), 0);
	}

	b[hp * ps + 12345] = 1; /* huge page 1, unpopulated before */
	b[17] = 2;		/* huge page 0, populated */
	n = t_collect_idx(t, b, NPAGES, 0, got);
	ck_assert_uint_eq(n, 2 * hp);
	for (i = 0; i < n; i++)
		t_check(got[i] == i, "page %zu", got[i]);
	ck_assert_int_eq(
		pmtrack_collect_pages(t, b + ps, HPAGE, 0, pages, &n, NULL),
		-EINVAL);
	ck_assert_int_eq(pmtrack_reset(t, b, HPAGE / 2), -EINVAL);
	/* a huge page is reset whole or not at all: a page array with room
	 * for less than one cannot take part of it with RESET */
	n = 4;
	ck_assert_int_eq(pmtrack_collect_pages(t, b + HPAGE, HPAGE,
					       PMTRACK_COLLECT_RESET, pages, &n,
					       NULL),
			 -ENOSPC);
	ck_assert_uint_eq(n, 0);
	n = 4; /* without RESET, truncation is fine */
	ck_assert_int_eq(
		pmtrack_collect_pages(t, b + HPAGE, HPAGE, 0, pages, &n, NULL),
		0);
	ck_assert_uint_eq(n, 4);
	ck_assert_ptr_eq(pages[3], b + HPAGE + 3 * ps);
	{
		/* room for 1.5 huge pages: the first whole, stop before the
		 * second, which stays written */
		void **many = calloc(hp + hp / 2, sizeof(*many));
		void *next;

		n = hp + hp / 2;
		ck_assert_int_eq(pmtrack_collect_pages(t, b, len,
						       PMTRACK_COLLECT_RESET,
						       many, &n, &next),
				 0);
		ck_assert_uint_eq(n, hp);
		ck_assert_ptr_eq(many[hp - 1], b + HPAGE - ps);
		ck_assert_ptr_eq(next, b + HPAGE);
		free(many);
	}
	n = t_collect_idx(t, b, NPAGES, 0, got);
	ck_assert_uint_eq(n, hp);
	ck_assert_uint_eq(got[0], hp);
	/* an aligned sub-range resets only its huge page */
	b[0] = 3;
	n = 4;
	ck_assert_int_eq(
		pmtrack_collect_runs(t, b + HPAGE, HPAGE, PMTRACK_COLLECT_RESET,
				     (struct pmtrack_run *)got, &n, NULL),
		0);
	ck_assert_uint_eq(n, 1);
	n = t_collect_idx(t, b, NPAGES, 0, got);
	ck_assert_uint_eq(n, hp);
	ck_assert_uint_eq(got[0], 0);
	ck_assert_int_eq(pmtrack_reset(t, b, len), 0);
	b[3 * hp * ps] = 1;
	n = t_collect_idx(t, b, NPAGES, PMTRACK_COLLECT_RESET, got);
	ck_assert_uint_eq(n, hp);
	ck_assert_uint_eq(got[0], 3 * hp);
	t_expect_idx(t, b, NPAGES, 0, NULL, 0);
	{
		/* read(2) into the middle of a huge page: prepared (where
		 * needed) as the whole huge page, reported as one */
		int fds[2];

		ck_assert_int_eq(pipe(fds), 0);
		ck_assert_int_eq(write(fds[1], "kernel", 6), 6);
		ck_assert_int_eq(t_kread(t, fds[0], b + 2 * HPAGE + 12345, 6),
				 6);
		close(fds[0]);
		close(fds[1]);
		n = t_collect_idx(t, b, NPAGES, PMTRACK_COLLECT_RESET, got);
		ck_assert_uint_eq(n, hp);
		ck_assert_uint_eq(got[0], 2 * hp);
		ck_assert_int_eq(memcmp(b + 2 * HPAGE + 12345, "kernel", 6), 0);
	}
	free(got);
	pmtrack_free(t);
	munmap(b, len);
}
END_TEST

#define NR_HUGE "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
#define FREE_HUGE "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"

/* make 5 free 2 MiB huge pages available; NULL if done, else why not */
static const char *hugetlb_setup(void)
{
	long nr = t_read_long(NR_HUGE), fr = t_read_long(FREE_HUGE);

	if (ps != 4096)
		return "the test assumes 4 KiB base pages";
	if (nr < 0 || fr < 0)
		return "no 2 MiB hugetlb pages on this machine";
	if (fr >= 5)
		return NULL;
	if (geteuid() != 0)
		return "fewer than 5 free 2 MiB huge pages and not root";
	if (!t_write_long(NR_HUGE, nr + 5 - fr) || t_read_long(FREE_HUGE) < 5) {
		t_write_long(NR_HUGE, nr);
		return "could not reserve 5 huge pages";
	}
	saved_nr_hugepages = nr;
	return NULL;
}

static const char *thp_setup(void)
{
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return "no transparent huge pages in this kernel";
	if (!fgets(mode, sizeof(mode), f))
		mode[0] = 0;
	fclose(f);
	if (strstr(mode, "[never]"))
		return "transparent huge pages are disabled ([never])";
	return NULL;
}

/* without PMTRACK_CAP_SHARED_EXACT a shared range reads as written in
 * full, before and after every reset: nothing lost, nothing precise */
START_TEST(shared_in_full)
{
	struct pmtrack *t = t_new(0);
	size_t len = NPAGES * ps;
	char *b = map_kind(len);
	struct pmtrack_bitmap *bm;

	memset(b, 0x11, len / 2);
	ck_assert_int_eq(pmtrack_watch(t, b, len), 0);
	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	for (int round = 0; round < 3; round++) {
		b[round * 7 * ps] = (char)round;
		ck_assert_int_eq(pmtrack_collect_bitmap(
					 t, b, len, PMTRACK_COLLECT_RESET, bm),
				 0);
		ck_assert_uint_eq(pmtrack_bitmap_count(bm), NPAGES);
	}
	pmtrack_bitmap_free(bm);
	pmtrack_free(t);
	munmap(b, len);
}
END_TEST

START_TEST(kind_refused)
{
	/* a backend without PMTRACK_CAP_FILE_MAPPINGS (or _HUGETLB) says so
	 * at watch time, and the mapping stays usable and unwatched */
	struct pmtrack *t = t_new(0);
	size_t len = strcmp(kind, "hugetlb") ? 16 * ps : HPAGE;
	char *b = map_kind(len);

	ck_assert_int_eq(pmtrack_watch(t, b, len), -EOPNOTSUPP);
	b[3 * ps] = 1;
	ck_assert_int_eq(pmtrack_unwatch(t, b, len), -ENOENT);
	pmtrack_free(t);
	munmap(b, len);
}
END_TEST

int main(int argc, char **argv)
{
	static const char *const kinds[] = { "anon",	     "shared-anon",
					     "memfd",	     "file-shared",
					     "file-private", "thp",
					     "hugetlb" };
	const char *skip = NULL;
	Suite *s;
	TCase *tc;
	bool known = false;
	int r;

	for (size_t i = 0; argc == 2 && i < sizeof(kinds) / sizeof(*kinds); i++)
		known |= !strcmp(argv[1], kinds[i]);
	if (!known) {
		fprintf(stderr,
			"usage: %s anon|shared-anon|memfd|file-shared|"
			"file-private|thp|hugetlb\n",
			argv[0]);
		return 2;
	}
	kind = argv[1];
	r = t_init();
	if (r)
		return r;
	if (!strncmp(kind, "file-", 5)) {
		/* page cache: a file on tmpfs would be shmem */
		const char *dir = file_dir();

		if (!dir) {
			printf("SKIP: %s: TMPDIR, /var/tmp, /tmp and the "
			       "working directory are all tmpfs, which is "
			       "shmem, not page cache\n",
			       kind);
			return T_SKIP;
		}
		snprintf(file_path, sizeof(file_path), "%s/pmtrack-memtype-%d",
			 dir, (int)getpid());
	}
	if (!strcmp(kind, "hugetlb"))
		skip = hugetlb_setup();
	else if (!strcmp(kind, "thp"))
		skip = thp_setup();
	if (skip) {
		printf("SKIP: %s: %s\n", kind, skip);
		return T_SKIP;
	}

	s = suite_create("memtypes");
	tc = tcase_create(kind);
	tcase_set_timeout(tc, 120);
	if ((!strncmp(kind, "file-", 5) &&
	     !(t_caps & PMTRACK_CAP_FILE_MAPPINGS)) ||
	    (!strcmp(kind, "hugetlb") && !(t_caps & PMTRACK_CAP_HUGETLB))) {
		printf("%s: backend %s cannot watch this kind; checking that "
		       "it refuses it\n",
		       kind, pmtrack_backend_name(t_backend));
		tcase_add_test(tc, kind_refused);
	} else if (!(t_caps & PMTRACK_CAP_SHARED_EXACT) &&
		   (!strcmp(kind, "shared-anon") || !strcmp(kind, "memfd") ||
		    !strcmp(kind, "file-shared"))) {
		printf("%s: backend %s reports shared memory in full; "
		       "checking that it does\n",
		       kind, pmtrack_backend_name(t_backend));
		tcase_add_test(tc, shared_in_full);
	} else {
		tcase_add_test(tc, !strcmp(kind, "hugetlb") ? huge_tlb
							    : base_pages);
	}
	suite_add_tcase(s, tc);
	r = t_run(s);
	if (saved_nr_hugepages >= 0)
		t_write_long(NR_HUGE, saved_nr_hugepages);
	return r;
}

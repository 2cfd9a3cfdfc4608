// SPDX-License-Identifier: MIT
/*
 * No write is lost when the kernel drops page-table entries under a
 * tracker: check_shmem_track zap|swap|thp, once per backend.
 *   zap   MADV_DONTNEED before or after a write, and reads in between;
 *   swap  the same with MADV_PAGEOUT to a swap file of the test's own
 *         (root; skips with the reason otherwise);
 *   thp   huge pages split under tracking: anonymous, and shmem where
 *         the test may enable shmem THP (root).
 * Each runs on private anonymous, MAP_SHARED|MAP_ANONYMOUS and memfd memory.
 * Every written page must be reported; a backend with
 * PMTRACK_CAP_SHARED_EXACT must also leave untouched pages out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "../lib/base/uapi_compat.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define NP 16u
#define HPAGE (2u << 20)

static const char *const kinds[] = { "anon", "shared-anon", "memfd" };
static int drop_advice; /* MADV_DONTNEED or MADV_PAGEOUT */
static const char *shmem_thp_path =
	"/sys/kernel/mm/transparent_hugepage/shmem_enabled";
static char shmem_thp_saved[64];

static char *map_kind(int kind, size_t len, size_t align)
{
	int fd = -1, flags = MAP_PRIVATE | MAP_ANONYMOUS;
	char *raw, *b;

	if (kind == 1) {
		flags = MAP_SHARED | MAP_ANONYMOUS;
	} else if (kind == 2) {
		fd = memfd_create("pmtrack-shmem-track", MFD_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, (off_t)(len + align)), 0);
		flags = MAP_SHARED;
	}
	raw = mmap(NULL, len + align, PROT_READ | PROT_WRITE, flags, fd, 0);
	ck_assert_ptr_ne(raw, MAP_FAILED);
	if (fd >= 0)
		close(fd);
	b = align ? (char *)(((uintptr_t)raw + align - 1) &
			     ~(uintptr_t)(align - 1))
		  : raw;
	if (b > raw)
		munmap(raw, (size_t)(b - raw));
	if (align)
		munmap(b + len, (size_t)(raw + align - b));
	return b;
}

/* collect with reset; every page of @must reported; with exact shared
 * tracking, nothing of @never */
static void expect_reported(struct pmtrack *t, char *b, size_t npages,
			    const size_t *must, size_t nmust, size_t never_from,
			    const char *what)
{
	size_t *got = calloc(npages, sizeof(*got));
	size_t n = t_collect_idx(t, b, npages, PMTRACK_COLLECT_RESET, got);

	for (size_t i = 0; i < nmust; i++)
		ck_assert_msg(
			t_has_idx(got, n, must[i]),
			"%s: written page %zu not reported (%zu reported)",
			what, must[i], n);
	if (t_caps & PMTRACK_CAP_SHARED_EXACT)
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(got[i] < never_from,
				      "%s: untouched page %zu reported", what,
				      got[i]);
	free(got);
}

/* 1 if pages went to swap (or the drop was a zap) */
static int drop(char *b, size_t from, size_t to)
{
	long before = t_swapped_pages(b + from * ps);

	if (drop_advice == MADV_DONTNEED)
		ck_assert_int_eq(
			madvise(b + from * ps, (to - from) * ps, MADV_DONTNEED),
			0);
	else if (t_pageout(b + from * ps, (to - from) * ps, before + 1) <=
		 before) {
		/* reclaim may refuse a page now and then (busy, isolated
		 * elsewhere): the case still runs, on what it got */
		printf("note: MADV_PAGEOUT of pages %zu..%zu put nothing in "
		       "swap\n",
		       from, to - 1);
		return 0;
	}
	return 1;
}

START_TEST(dropped_entries)
{
	int kind = _i;
	struct pmtrack *t = t_new(0);
	char *b = map_kind(kind, NP * ps, 0);
	volatile char c;
	bool anon_zap = kind == 0 && drop_advice == MADV_DONTNEED;
	int dropped = 0;

	for (size_t i = 0; i < NP; i++)
		memset(b + i * ps, (int)i + 1, ps);
	ck_assert_int_eq(pmtrack_watch(t, b, NP * ps), 0);

	/* A: written, then dropped */
	b[2 * ps] = 'a';
	dropped += drop(b, 0, 4);
	expect_reported(t, b, NP, (size_t[]){ 2 }, 1, 12,
			"written then dropped");

	/* B: dropped, then written (faulted back in by the write) */
	dropped += drop(b, 4, 8);
	b[5 * ps] = 'b';
	expect_reported(t, b, NP, (size_t[]){ 5 }, 1, 12,
			"dropped then written");

	/* C: dropped, read back in, then written */
	dropped += drop(b, 8, 10);
	c = b[8 * ps];
	(void)c;
	b[8 * ps] = 'c';
	expect_reported(t, b, NP, (size_t[]){ 8 }, 1, 12,
			"dropped, read, written");

	/* D: written, dropped, read back in: the write came first */
	b[10 * ps] = 'd';
	dropped += drop(b, 10, 12);
	c = b[10 * ps];
	(void)c;
	expect_reported(t, b, NP, (size_t[]){ 10 }, 1, 12,
			"written, dropped, read");

	ck_assert_msg(dropped >= 2, "%s: only %d of 4 drops took effect",
		      kinds[kind], dropped);
	/* nothing since: nothing reported (a precise backend) */
	expect_reported(t, b, NP, NULL, 0,
			t_caps & PMTRACK_CAP_SHARED_EXACT ? 0 : NP, "quiet");

	/* the data survived (private anonymous memory zapped reads zeroes) */
	for (size_t i = 0; i < NP; i++) {
		char want = (char)(i + 1);

		if (anon_zap && i < 12 && i != 5 && i != 8)
			want = 0; /* zapped after any write to it */
		else if (i == 2 || i == 5 || i == 8 || i == 10)
			want = "abcd"[i == 2 ? 0 : i == 5 ? 1 : i == 8 ? 2 : 3];
		ck_assert_msg(b[i * ps] == want, "%s page %zu: %d, want %d",
			      kinds[kind], i, b[i * ps], want);
	}
	pmtrack_free(t);
	munmap(b, NP * ps);
}
END_TEST

START_TEST(thp_split)
{
	int kind = _i;
	size_t npages = 2 * HPAGE / ps, huge;
	struct pmtrack *t;
	char *b;

	if (kind == 1) /* shared anonymous THP is the same shmem as memfd */
		return;
	if (kind == 2 && !shmem_thp_saved[0]) {
		printf("memfd: shmem THP not enabled here (needs root and %s); "
		       "only anonymous THP checked\n",
		       shmem_thp_path);
		return;
	}
	t = t_new(0);
	b = map_kind(kind, 2 * HPAGE, HPAGE);
	ck_assert_int_eq(madvise(b, 2 * HPAGE, MADV_HUGEPAGE), 0);
	memset(b, 1, 2 * HPAGE);
	huge = t_scan_count(b, 2 * HPAGE, PAGE_IS_HUGE);
	printf("%s: %zu of %zu pages huge before watching\n", kinds[kind],
	       huge == SIZE_MAX ? 0 : huge, npages);
	ck_assert_int_eq(pmtrack_watch(t, b, 2 * HPAGE), 0);

	/* the first write splits the first huge page */
	b[5 * ps] = 2;
	expect_reported(t, b, npages, (size_t[]){ 5 }, 1, npages,
			"first write");
	/* split the second one by changing one page's protection, then
	 * write elsewhere in it */
	ck_assert_int_eq(mprotect(b + HPAGE + 7 * ps, ps, PROT_READ), 0);
	ck_assert_int_eq(
		mprotect(b + HPAGE + 7 * ps, ps, PROT_READ | PROT_WRITE), 0);
	b[HPAGE + 300 * ps] = 3;
	b[700 * ps] = 4;
	expect_reported(t, b, npages, (size_t[]){ 512 + 300, 700 }, 2, npages,
			"after a split");
	/* and a huge page dropped in part */
	b[HPAGE + 9 * ps] = 5;
	ck_assert_int_eq(madvise(b + HPAGE, 8 * ps, MADV_DONTNEED), 0);
	expect_reported(t, b, npages, (size_t[]){ 512 + 9 }, 1, npages,
			"after a partial drop");
	for (size_t i = 0; i < npages; i++)
		if (i != 5 && i != 700 && i != 512 + 300 && i != 512 + 9 &&
		    !(i >= 512 && i < 520 && kind == 0))
			t_check(b[i * ps] == 1, "%s page %zu lost its data",
				kinds[kind], i);
	pmtrack_free(t);
	munmap(b, 2 * HPAGE);
}
END_TEST

static void shmem_thp_restore(void)
{
	FILE *f;

	if (!shmem_thp_saved[0])
		return;
	f = fopen(shmem_thp_path, "w");
	if (f) {
		fputs(shmem_thp_saved, f);
		fclose(f);
	}
	shmem_thp_saved[0] = 0;
}

/* shmem_enabled reads like "always within_size [never] advise deny force" */
static void shmem_thp_enable(void)
{
	char buf[256], *open_b, *close_b;
	FILE *f = fopen(shmem_thp_path, "r");

	if (!f)
		return;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return;
	}
	fclose(f);
	open_b = strchr(buf, '[');
	close_b = open_b ? strchr(open_b, ']') : NULL;
	if (!close_b || geteuid() != 0)
		return;
	*close_b = 0;
	snprintf(shmem_thp_saved, sizeof(shmem_thp_saved), "%s", open_b + 1);
	if (!strcmp(shmem_thp_saved, "advise") ||
	    !strcmp(shmem_thp_saved, "always"))
		return; /* nothing to change, nothing to restore */
	f = fopen(shmem_thp_path, "w");
	if (!f || fputs("advise", f) < 0 || fclose(f)) {
		shmem_thp_saved[0] = 0;
		return;
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc == 2 ? argv[1] : "";
	Suite *s;
	TCase *tc;
	int r;

	if (strcmp(mode, "zap") && strcmp(mode, "swap") &&
	    strcmp(mode, "thp")) {
		fprintf(stderr, "usage: %s zap|swap|thp\n", argv[0]);
		return 2;
	}
	r = t_init();
	if (r)
		return r;
	drop_advice = strcmp(mode, "swap") ? MADV_DONTNEED : MADV_PAGEOUT;
	s = suite_create("shmem_track");
	tc = tcase_create(mode);
	tcase_set_timeout(tc, 120);
	if (!strcmp(mode, "thp")) {
		const char *skip = NULL;
		FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled",
				"r");
		char buf[128] = "";

		if (!f || !fgets(buf, sizeof(buf), f))
			skip = "no transparent huge pages in this kernel";
		else if (strstr(buf, "[never]"))
			skip = "transparent huge pages are disabled ([never])";
		if (f)
			fclose(f);
		if (skip) {
			printf("SKIP: %s\n", skip);
			return T_SKIP;
		}
		shmem_thp_enable();
		tcase_add_loop_test(tc, thp_split, 0, 3);
	} else {
		if (!strcmp(mode, "swap")) {
			r = t_swap_on(64);
			if (r)
				return r;
		}
		tcase_add_loop_test(tc, dropped_entries, 0, 3);
	}
	suite_add_tcase(s, tc);
	r = t_run(s);
	t_swap_off();
	shmem_thp_restore();
	return r;
}

// SPDX-License-Identifier: MIT
/*
 * Backend selection: automatic choice from the probes, forcing by option and
 * by PMTRACK_BACKEND, required capabilities, another pid, and what each
 * backend says it guarantees.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static const enum pmtrack_backend all[] = {
	PMTRACK_BACKEND_PAGEMAP_SCAN,
	PMTRACK_BACKEND_SOFT_DIRTY,
	PMTRACK_BACKEND_UFFD_WP,
	PMTRACK_BACKEND_MPROTECT,
};
#define NALL (sizeof(all) / sizeof(all[0]))

/* what the probes say about a backend on this machine */
static int usable(enum pmtrack_backend b)
{
	switch (b) {
	case PMTRACK_BACKEND_PAGEMAP_SCAN:
		return pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL) == 1 &&
		       pmtrack_probe(PMTRACK_FEAT_UFFD_WP_ASYNC, NULL) == 1;
	case PMTRACK_BACKEND_SOFT_DIRTY:
		return pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY, NULL) == 1;
	case PMTRACK_BACKEND_UFFD_WP:
		return pmtrack_probe(PMTRACK_FEAT_UFFD_WP, NULL) == 1;
	default:
		return 1;
	}
}

/* vm.unprivileged_userfaultfd = 1? */
static bool unpriv_uffd_allowed(void)
{
	return t_read_long("/proc/sys/vm/unprivileged_userfaultfd") == 1;
}

static int new_with(enum pmtrack_backend b, unsigned int require, int pid,
		    struct pmtrack **t)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = b, .require = require,
		     .pid = pid);

	return pmtrack_new(&o, t);
}

START_TEST(names)
{
	ck_assert_str_eq(pmtrack_backend_name(PMTRACK_BACKEND_AUTO), "auto");
	ck_assert_str_eq(pmtrack_backend_name(PMTRACK_BACKEND_PAGEMAP_SCAN),
			 "pagemap-scan");
	ck_assert_str_eq(pmtrack_backend_name(PMTRACK_BACKEND_SOFT_DIRTY),
			 "soft-dirty");
	ck_assert_str_eq(pmtrack_backend_name(PMTRACK_BACKEND_UFFD_WP),
			 "uffd-wp");
	ck_assert_str_eq(pmtrack_backend_name(PMTRACK_BACKEND_MPROTECT),
			 "mprotect");
	ck_assert_ptr_null(pmtrack_backend_name((enum pmtrack_backend)5));
	ck_assert_ptr_null(pmtrack_backend_name((enum pmtrack_backend) - 1));
	ck_assert_uint_eq(pmtrack_caps(NULL), 0);
}
END_TEST

START_TEST(auto_is_best_usable)
{
	struct pmtrack *t;
	enum pmtrack_backend want = PMTRACK_BACKEND_AUTO;

	for (size_t i = 0; i < NALL && want == PMTRACK_BACKEND_AUTO; i++)
		if (usable(all[i]))
			want = all[i];
	unsetenv("PMTRACK_BACKEND");
	ck_assert_int_eq(pmtrack_new(NULL, &t), 0);
	ck_assert_int_eq(pmtrack_backend(t), want);
	pmtrack_free(t);
	printf("auto picks %s here\n", pmtrack_backend_name(want));
}
END_TEST

START_TEST(forced_by_option)
{
	/* each backend is used when asked for, or refused if unusable */
	unsetenv("PMTRACK_BACKEND");
	for (size_t i = 0; i < NALL; i++) {
		struct pmtrack *t = (void *)1;
		int r = new_with(all[i], 0, 0, &t);

		if (!usable(all[i])) {
			ck_assert_int_eq(r, -EOPNOTSUPP);
			ck_assert_ptr_null(t);
			continue;
		}
		ck_assert_int_eq(r, 0);
		ck_assert_int_eq(pmtrack_backend(t), all[i]);
		pmtrack_free(t);
	}
	ck_assert_int_eq(new_with((enum pmtrack_backend)5, 0, 0,
				  &(struct pmtrack *){ 0 }),
			 -EINVAL);
}
END_TEST

START_TEST(forced_by_env)
{
	static const char *const envs[] = { "pagemap-scan", "soft-dirty",
					    "uffd-wp", "mprotect" };
	struct pmtrack *t;

	for (size_t i = 0; i < NALL; i++) {
		int r;

		setenv("PMTRACK_BACKEND", envs[i], 1);
		r = pmtrack_new(NULL, &t);
		if (!usable(all[i])) {
			ck_assert_int_eq(r, -EOPNOTSUPP);
			continue;
		}
		ck_assert_int_eq(r, 0);
		ck_assert_int_eq(pmtrack_backend(t), all[i]);
		pmtrack_free(t);
	}
	/* an explicit option wins over the variable */
	setenv("PMTRACK_BACKEND", "uffd-wp", 1);
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_MPROTECT, 0, 0, &t), 0);
	ck_assert_int_eq(pmtrack_backend(t), PMTRACK_BACKEND_MPROTECT);
	pmtrack_free(t);
	/* a typo is an error, not a silent fallback */
	setenv("PMTRACK_BACKEND", "mprotect ", 1);
	ck_assert_int_eq(pmtrack_new(NULL, &t), -EINVAL);
	setenv("PMTRACK_BACKEND", "softdirty", 1);
	ck_assert_int_eq(pmtrack_new(NULL, &t), -EINVAL);
	/* "auto" and empty mean automatic */
	setenv("PMTRACK_BACKEND", "auto", 1);
	ck_assert_int_eq(pmtrack_new(NULL, &t), 0);
	pmtrack_free(t);
	setenv("PMTRACK_BACKEND", "", 1);
	ck_assert_int_eq(pmtrack_new(NULL, &t), 0);
	pmtrack_free(t);
	unsetenv("PMTRACK_BACKEND");
}
END_TEST

START_TEST(caps_as_documented)
{
	static const unsigned int caps[] = {
		/* another process where the library can inject (x86_64) */
		PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET |
			PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_FILE_MAPPINGS |
			PMTRACK_CAP_NO_SIGNALS | PMTRACK_CAP_HUGETLB |
			PMTRACK_CAP_SHARED_EXACT |
#if defined(__x86_64__)
			PMTRACK_CAP_OTHER_PROCESS |
#endif
			0,
		PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_FILE_MAPPINGS |
			PMTRACK_CAP_OTHER_PROCESS | PMTRACK_CAP_NO_SIGNALS,
		/* kernel writes: only when the process may trap them, which
		 * these tests (root) may: check_uffd_wp covers the rest */
		PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET |
			PMTRACK_CAP_NO_SIGNALS | PMTRACK_CAP_KERNEL_WRITES |
			PMTRACK_CAP_HUGETLB | PMTRACK_CAP_SHARED_EXACT,
		PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET |
			PMTRACK_CAP_FILE_MAPPINGS | PMTRACK_CAP_HUGETLB |
			PMTRACK_CAP_SHARED_EXACT,
	};

	unsetenv("PMTRACK_BACKEND");
	for (size_t i = 0; i < NALL; i++) {
		struct pmtrack *t;
		unsigned int want = caps[i];

		if (!usable(all[i]))
			continue;
		if (all[i] == PMTRACK_BACKEND_UFFD_WP && geteuid() != 0 &&
		    !unpriv_uffd_allowed())
			want &= ~PMTRACK_CAP_KERNEL_WRITES;
		ck_assert_int_eq(new_with(all[i], 0, 0, &t), 0);
		ck_assert_msg(
			pmtrack_caps(t) == want, "%s: caps 0x%x, want 0x%x",
			pmtrack_backend_name(all[i]), pmtrack_caps(t), want);
		pmtrack_free(t);
	}
}
END_TEST

START_TEST(require_filters)
{
	struct pmtrack *t;
	unsigned int need = PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_NO_SIGNALS;

	unsetenv("PMTRACK_BACKEND");
	/* AUTO skips backends without the capability */
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_AUTO, need, 0, &t), 0);
	ck_assert_uint_eq(pmtrack_caps(t) & need, need);
	ck_assert_int_ne(pmtrack_backend(t), PMTRACK_BACKEND_SOFT_DIRTY);
	ck_assert_int_ne(pmtrack_backend(t), PMTRACK_BACKEND_MPROTECT);
	pmtrack_free(t);
	/* a forced backend that lacks it is refused */
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_MPROTECT,
				  PMTRACK_CAP_NO_SIGNALS, 0, &t),
			 -EOPNOTSUPP);
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_MPROTECT,
				  PMTRACK_CAP_ATOMIC_RESET, 0, &t),
			 0);
	pmtrack_free(t);
	/* unknown capability bits are an error */
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_AUTO, 1u << 20, 0, &t),
			 -EINVAL);
	/* AUTO with the variable set obeys require too */
	setenv("PMTRACK_BACKEND", "mprotect", 1);
	ck_assert_int_eq(
		new_with(PMTRACK_BACKEND_AUTO, PMTRACK_CAP_NO_SIGNALS, 0, &t),
		-EOPNOTSUPP);
	unsetenv("PMTRACK_BACKEND");
}
END_TEST

START_TEST(other_pid)
{
	struct pmtrack *t;
	int status;
	pid_t child = fork();

	ck_assert_int_ge(child, 0);
	if (!child) {
		pause();
		_exit(0);
	}
	unsetenv("PMTRACK_BACKEND");
	/* pagemap-scan (injected, on x86_64) and soft-dirty can track
	 * another process, in that order; the others cannot */
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_MPROTECT, 0, (int)child, &t),
			 -EOPNOTSUPP);
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_UFFD_WP, 0, (int)child, &t),
			 -EOPNOTSUPP);
#if defined(__x86_64__)
	ck_assert_int_eq(
		new_with(PMTRACK_BACKEND_PAGEMAP_SCAN, 0, (int)child, &t),
		usable(PMTRACK_BACKEND_PAGEMAP_SCAN) ? 0 : -EOPNOTSUPP);
	if (usable(PMTRACK_BACKEND_PAGEMAP_SCAN)) {
		ck_assert_uint_ne(pmtrack_caps(t) & PMTRACK_CAP_OTHER_PROCESS,
				  0);
		ck_assert_uint_ne(pmtrack_caps(t) & PMTRACK_CAP_ATOMIC_RESET,
				  0);
		pmtrack_free(t);
	}
#endif
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_AUTO, 0, (int)child, &t),
			 usable(PMTRACK_BACKEND_PAGEMAP_SCAN) ||
					 usable(PMTRACK_BACKEND_SOFT_DIRTY)
				 ? 0
				 : -EOPNOTSUPP);
	if (usable(PMTRACK_BACKEND_PAGEMAP_SCAN) ||
	    usable(PMTRACK_BACKEND_SOFT_DIRTY)) {
		ck_assert_int_eq(pmtrack_backend(t),
				 usable(PMTRACK_BACKEND_PAGEMAP_SCAN)
					 ? PMTRACK_BACKEND_PAGEMAP_SCAN
					 : PMTRACK_BACKEND_SOFT_DIRTY);
		pmtrack_free(t);
	}
	/* our own pid means ourselves, any backend */
	ck_assert_int_eq(
		new_with(PMTRACK_BACKEND_MPROTECT, 0, (int)getpid(), &t), 0);
	pmtrack_free(t);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	/* a process that is gone, and a negative pid */
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_AUTO, 0, (int)child, &t),
			 -ESRCH);
	ck_assert_int_eq(new_with(PMTRACK_BACKEND_AUTO, 0, -5, &t), -EINVAL);
}
END_TEST

START_TEST(every_backend_tracks)
{
	/* the same few steps on every usable backend, side by side */
	char *b = t_map_anon(16);

	unsetenv("PMTRACK_BACKEND");
	for (size_t i = 0; i < NALL; i++) {
		struct pmtrack *t;

		if (!usable(all[i]))
			continue;
		ck_assert_int_eq(new_with(all[i], 0, 0, &t), 0);
		ck_assert_int_eq(pmtrack_watch(t, b, 16 * ps), 0);
		b[3 * ps] = b[9 * ps + 7] = (char)i;
		t_expect_idx(t, b, 16, PMTRACK_COLLECT_RESET,
			     (size_t[]){ 3, 9 }, 2);
		t_expect_idx(t, b, 16, 0, NULL, 0);
		ck_assert_int_eq(pmtrack_unwatch(t, b, 16 * ps), 0);
		pmtrack_free(t);
	}
	munmap(b, 16 * ps);
}
END_TEST

static Suite *backends_suite(void)
{
	Suite *s = suite_create("backends");
	TCase *tc = tcase_create("selection");

	tcase_add_test(tc, names);
	tcase_add_test(tc, auto_is_best_usable);
	tcase_add_test(tc, forced_by_option);
	tcase_add_test(tc, forced_by_env);
	tcase_add_test(tc, caps_as_documented);
	tcase_add_test(tc, require_filters);
	tcase_add_test(tc, other_pid);
	tcase_add_test(tc, every_backend_tracks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ps = (size_t)sysconf(_SC_PAGESIZE);
	return t_run(backends_suite());
}

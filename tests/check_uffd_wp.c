// SPDX-License-Identifier: MIT
/*
 * The uffd-wp backend's own promises: its handler thread starts and stops
 * with the tracker, memory is usable after free, and it works without
 * privilege (UFFD_USER_MODE_ONLY) with vm.unprivileged_userfaultfd=0, where
 * system calls writing into armed pages fail with EFAULT until the buffer
 * is prepared.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define UNPRIV "/proc/sys/vm/unprivileged_userfaultfd"

static struct pmtrack *uw_new(void)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_UFFD_WP);
	struct pmtrack *t = NULL;
	int r = pmtrack_new(&o, &t);

	ck_assert_msg(r == 0, "pmtrack_new: %s", strerror(-r));
	return t;
}

static int nthreads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/*
 * nthreads() once it equals @want, or what it is after 10 s.  A joined
 * thread can still be listed for a moment: pthread_join() returns when the
 * kernel clears its tid, before the task has finished exiting.
 */
static int nthreads_settled(int want)
{
	int n = nthreads();

	for (int i = 0; i < 10000 && n != want; i++) {
		usleep(1000);
		n = nthreads();
	}
	return n;
}

START_TEST(start_stop)
{
	int before = nthreads();
	char *b = t_map_anon(8);

	for (int i = 0; i < 20; i++) {
		struct pmtrack *t = uw_new();

		ck_assert_int_eq(nthreads_settled(before + 1), before + 1);
		ck_assert_int_eq(pmtrack_watch(t, b, 8 * ps), 0);
		b[(size_t)(i % 8) * ps] = (char)i;
		t_expect_idx(t, b, 8, PMTRACK_COLLECT_RESET,
			     (size_t[]){ (size_t)(i % 8) }, 1);
		/* freed while armed: later writes must not block */
		pmtrack_free(t);
		ck_assert_int_eq(nthreads_settled(before), before);
		for (size_t p = 0; p < 8; p++)
			b[p * ps] = 1;
	}
	munmap(b, 8 * ps);
}
END_TEST

START_TEST(unwatch_unblocks)
{
	/* unwatched pages are plain memory again, watched ones still
	 * tracked */
	struct pmtrack *t = uw_new();
	char *b = t_map_anon(8);

	ck_assert_int_eq(pmtrack_watch(t, b, 8 * ps), 0);
	ck_assert_int_eq(pmtrack_unwatch(t, b + 2 * ps, 3 * ps), 0);
	b[3 * ps] = b[6 * ps] = 1;
	t_expect_idx(t, b, 2, 0, NULL, 0);
	t_expect_idx(t, b + 5 * ps, 3, 0, (size_t[]){ 1 }, 1);
	pmtrack_free(t);
	munmap(b, 8 * ps);
}
END_TEST

/* In a child without privilege: exit 0 if every check held. */
static int unprivileged_child(void)
{
	struct pmtrack *t = NULL;
	char *b;
	int fds[2], r;
	void *pages[8];
	size_t n = 8;

	if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		return 10;
	/* setuid made /proc/self root-owned; we still read our own */
	prctl(PR_SET_DUMPABLE, 1);
	{
		PMTRACK_OPTS(pmtrack_opts, o,
			     .backend = PMTRACK_BACKEND_UFFD_WP);

		r = pmtrack_new(&o, &t);
	}
	if (r) {
		fprintf(stderr, "unprivileged pmtrack_new: %s\n", strerror(-r));
		return 11;
	}
	if (pmtrack_caps(t) & PMTRACK_CAP_KERNEL_WRITES)
		return 12; /* cannot trap kernel faults without privilege */
	b = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED || pmtrack_watch(t, b, 8 * ps))
		return 13;
	b[ps] = 1;
	if (pipe(fds) || write(fds[1], "abcdef", 6) != 6)
		return 14;
	/* a system call writing into an armed page fails... */
	if (read(fds[0], b + 4 * ps, 3) != -1 || errno != EFAULT)
		return 15;
	/* ...until the buffer is prepared, and then it is reported */
	if (pmtrack_prepare_kernel_write(t, b + 4 * ps, 3) ||
	    read(fds[0], b + 4 * ps, 3) != 3)
		return 16;
	if (pmtrack_collect_pages(t, b, 8 * ps, PMTRACK_COLLECT_RESET, pages,
				  &n, NULL) ||
	    n != 2 || pages[0] != b + ps || pages[1] != b + 4 * ps)
		return 17;
	/* re-armed by the reset: fails again */
	if (read(fds[0], b + 4 * ps, 3) != -1 || errno != EFAULT)
		return 18;
	pmtrack_free(t);
	return 0;
}

START_TEST(unprivileged)
{
	long sysctl = t_read_long(UNPRIV);
	int status;
	pid_t pid;

	ck_assert_int_ge(sysctl, 0);
	/* the default (0) is the case to prove; root can set it for the
	 * length of the test (root's own trackers do not depend on it) */
	if (sysctl != 0)
		ck_assert(t_write_long(UNPRIV, 0));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid)
		_exit(unprivileged_child());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (sysctl != 0)
		ck_assert(t_write_long(UNPRIV, sysctl));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status 0x%x", status);
}
END_TEST

START_TEST(kernel_writes_trapped)
{
	/* with privilege the thread resolves kernel faults: read(2) into
	 * an armed page just works and is reported */
	struct pmtrack *t = uw_new();
	char *b = t_map_anon(4);
	int fds[2];

	ck_assert_uint_ne(pmtrack_caps(t) & PMTRACK_CAP_KERNEL_WRITES, 0);
	ck_assert_int_eq(pmtrack_watch(t, b, 4 * ps), 0);
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(write(fds[1], "0123456789", 10), 10);
	ck_assert_int_eq(read(fds[0], b + 2 * ps - 4, 10), 10);
	t_expect_idx(t, b, 4, 0, (size_t[]){ 1, 2 }, 2);
	ck_assert_int_eq(memcmp(b + 2 * ps - 4, "0123456789", 10), 0);
	close(fds[0]);
	close(fds[1]);
	pmtrack_free(t);
	munmap(b, 4 * ps);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;
	int r;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	r = t_need(PMTRACK_FEAT_UFFD_WP,
		   "synchronous userfaultfd write-protect is not usable here");
	if (r)
		return r;
	s = suite_create("uffd_wp");
	tc = tcase_create("thread");
	tcase_add_test(tc, start_stop);
	tcase_add_test(tc, unwatch_unblocks);
	if (geteuid() == 0) {
		tcase_add_test(tc, unprivileged);
		tcase_add_test(tc, kernel_writes_trapped);
	} else {
		printf("note: not root: the unprivileged case is this "
		       "process itself (covered by the conformance suite); "
		       "kernel-fault trapping not tested\n");
	}
	suite_add_tcase(s, tc);
	return t_run(s);
}

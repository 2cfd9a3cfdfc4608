// SPDX-License-Identifier: MIT
/*
 * <pmtrack/process.h>, PMTRACK_PROC_FULL: a writable mapping of 1 GiB or
 * more of which fewer than 1/16 of the pages exist is not armed (arming it
 * would give every page a page-table entry in the target), is reported
 * FULL | UNTRACKED by every collect, and is armed once it is denser.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pmtrack/process.h>

#include "helpers.h"

#define BIG (2ull << 30)	    /* a 2 GiB reservation */
#define DENSE (256ull << 20) /* 1/8 of it: more than 1/16 */

static uint64_t big; /* its address in the target (the same as here) */

struct seen {
	unsigned int flags; /* of the report of the big mapping, 0 if none */
	int n;
};

static int fn(void *arg, const struct pmtrack_proc_report *r)
{
	struct seen *s = arg;

	if (r->map->start == big) {
		s->flags = r->flags;
		s->n++;
	}
	return 0;
}

/* the target's page tables, kB */
static long vm_pte(pid_t pid)
{
	return t_status_long(pid, "VmPTE:");
}

START_TEST(sparse_not_armed)
{
	struct pmtrack_proc *p;
	struct seen s = { 0 };
	int ctl[2], ack[2];
	long before, after;
	char c = 0;
	pid_t pid;
	char *m = mmap(NULL, BIG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ck_assert_ptr_ne(m, MAP_FAILED);
	big = (uintptr_t)m;
	for (uint64_t i = 0; i < BIG; i += 64ull << 20)
		m[i] = 1; /* 32 pages exist */
	ck_assert_int_eq(pipe(ctl), 0);
	ck_assert_int_eq(pipe(ack), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid) {
		/* on a byte: make the reservation dense, say so, wait */
		if (read(ctl[0], &c, 1) == 1) {
			memset(m, 2, DENSE);
			if (write(ack[1], &c, 1) != 1)
				_exit(1);
		}
		for (;;)
			pause();
	}
	before = vm_pte(pid);
	ck_assert_int_eq(pmtrack_proc_new(pid, NULL, &p), 0);
	ck_assert_int_eq(pmtrack_proc_backend(p), PMTRACK_BACKEND_PAGEMAP_SCAN);
	for (int k = 0; k < 3; k++) {
		s = (struct seen){ 0 };
		ck_assert_int_eq(pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET,
						      fn, &s),
				 0);
		ck_assert_int_eq(s.n, 1);
		ck_assert_uint_eq(s.flags & (PMTRACK_PROC_FULL |
					     PMTRACK_PROC_UNTRACKED),
				  PMTRACK_PROC_FULL | PMTRACK_PROC_UNTRACKED);
	}
	after = vm_pte(pid);
	/* arming 2 GiB would take 4 MiB of page tables */
	ck_assert_msg(after - before < 1024,
		      "page tables grew from %ld to %ld kB", before, after);
	/* denser: armed, reported in full once more (new to the tracker),
	 * then exactly: nothing written since */
	ck_assert_int_eq(write(ctl[1], &c, 1), 1);
	ck_assert_int_eq(read(ack[0], &c, 1), 1);
	s = (struct seen){ 0 };
	ck_assert_int_eq(
		pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, fn, &s), 0);
	ck_assert_uint_eq(s.flags & PMTRACK_PROC_UNTRACKED, 0);
	s = (struct seen){ 0 };
	ck_assert_int_eq(
		pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, fn, &s), 0);
	ck_assert_int_eq(s.n, 0);
	pmtrack_proc_free(p);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	munmap(m, BIG);
}
END_TEST

/*
 * Is another process tracked with pagemap-scan here?  The rule is about
 * uffd-wp's page-table entries: soft-dirty arms nothing.  0, T_SKIP or 1;
 * decided here, before the test's own process is forked, so that a skip
 * is a skip and not a failed test.
 */
static int can_run(void)
{
	struct pmtrack_proc *p;
	int r, ret = 0;
	pid_t pid = fork();

	if (pid < 0)
		return 1;
	if (!pid) {
		for (;;)
			pause();
	}
	r = pmtrack_proc_new(pid, NULL, &p);
	if (r == -EOPNOTSUPP || r == -EPERM || r == -EACCES) {
		printf("SKIP: no tracking of another process here: %s\n",
		       strerror(-r));
		ret = T_SKIP;
	} else if (r) {
		printf("pmtrack_proc_new: %s\n", strerror(-r));
		ret = 1;
	} else {
		if (pmtrack_proc_backend(p) != PMTRACK_BACKEND_PAGEMAP_SCAN) {
			printf("SKIP: another process is tracked with %s here, "
			       "not pagemap-scan: the rule is about uffd-wp\n",
			       pmtrack_backend_name(pmtrack_proc_backend(p)));
			ret = T_SKIP;
		}
		pmtrack_proc_free(p);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fflush(stdout);
	return ret;
}

int main(void)
{
	Suite *s = suite_create("sparse");
	TCase *tc = tcase_create("sparse");
	SRunner *sr;
	int failed, r = can_run();

	if (r)
		return r;

	tcase_add_test(tc, sparse_not_armed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/*
 * The mprotect backend's own promises: faults that are not ours reach the
 * SIGSEGV handler installed before (SA_SIGINFO, plain, or the default
 * action), protections come back on unwatch and free, and running out of
 * vm.max_map_count neither crashes nor loses a write.
 *
 *   check_mprotect             the handler and protection tests
 *   check_mprotect --map-count lowers vm.max_map_count (root; else 77)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* a sanitizer's handler was there before ours */
#else
#define SANITIZED 0
#endif

static struct pmtrack *mp_new(void)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_MPROTECT);
	struct pmtrack *t = NULL;

	ck_assert_int_eq(pmtrack_new(&o, &t), 0);
	return t;
}

static sigjmp_buf jb;
static void *volatile seen_addr;
static volatile int seen_sig, seen_calls;

static void old_siginfo(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	seen_sig = sig;
	seen_addr = si->si_addr;
	seen_calls++;
	siglongjmp(jb, 1);
}

static void old_plain(int sig)
{
	seen_sig = sig;
	seen_calls++;
	siglongjmp(jb, 1);
}

/* write to @p; 1 if the store completed, 0 if a handler jumped out */
static int try_write(volatile char *p)
{
	if (sigsetjmp(jb, 1))
		return 0;
	*p = 7;
	return 1;
}

static void install(struct sigaction *sa)
{
	sigemptyset(&sa->sa_mask);
	ck_assert_int_eq(sigaction(SIGSEGV, sa, NULL), 0);
}

/* foreign faults of both kinds reach the old handler; ours are handled */
static void foreign_faults(bool siginfo)
{
	struct sigaction sa = { 0 };
	struct pmtrack *t;
	char *w = t_map_anon(8), *ro = t_map_anon(2);

	if (siginfo) {
		sa.sa_sigaction = old_siginfo;
		sa.sa_flags = SA_SIGINFO;
	} else {
		sa.sa_handler = old_plain;
	}
	install(&sa); /* before the first mprotect tracker */
	t = mp_new();
	ck_assert_int_eq(pmtrack_watch(t, w, 8 * ps), 0);
	ck_assert_int_eq(mprotect(ro, ps, PROT_NONE), 0);
	ck_assert_int_eq(mprotect(ro + ps, ps, PROT_READ), 0);

	/* ours: handled, no call to the old handler */
	ck_assert_int_eq(try_write(w + 2 * ps + 5), 1);
	ck_assert_int_eq(seen_calls, 0);
	/* a read of a PROT_NONE page, a write to a read-only one that is
	 * not watched: both the old handler's */
	ck_assert_int_eq(try_write(ro), 0);
	ck_assert_int_eq(seen_calls, 1);
	ck_assert_int_eq(seen_sig, SIGSEGV);
	if (siginfo)
		ck_assert_ptr_eq(seen_addr, ro);
	ck_assert_int_eq(try_write(ro + ps + 9), 0);
	ck_assert_int_eq(seen_calls, 2);
	if (siginfo)
		ck_assert_ptr_eq(seen_addr, ro + ps + 9);
	/* an address nothing is mapped at */
	munmap(ro, 2 * ps);
	ck_assert_int_eq(try_write(ro), 0);
	ck_assert_int_eq(seen_calls, 3);
	/* a signal sent with kill() is not a fault: passed on as well */
	if (!sigsetjmp(jb, 1))
		raise(SIGSEGV);
	ck_assert_int_eq(seen_calls, 4);
	/* and tracking went on through all that */
	ck_assert_int_eq(try_write(w + 6 * ps), 1);
	t_expect_idx(t, w, 8, 0, (size_t[]){ 2, 6 }, 2);
	pmtrack_free(t);
	munmap(w, 8 * ps);
}

START_TEST(foreign_to_siginfo_handler)
{
	foreign_faults(true);
}
END_TEST

START_TEST(foreign_to_plain_handler)
{
	foreign_faults(false);
}
END_TEST

/* Child: watch, then cause a foreign fault (how = 0) or raise (1). */
static void default_action_child(int how)
{
	struct pmtrack *t = mp_new();
	char *w = t_map_anon(4), *ro = t_map_anon(1);

	if (pmtrack_watch(t, w, 4 * ps) || mprotect(ro, ps, PROT_READ))
		_exit(3);
	w[ps] = 1; /* ours: fine */
	if (how == 0)
		*(volatile char *)ro = 1;
	else
		raise(SIGSEGV);
	_exit(4); /* not reached */
}

START_TEST(foreign_to_default_action)
{
	for (int how = 0; how < 2; how++) {
		int status;
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (!pid)
			default_action_child(how);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		if (SANITIZED) {
			/* the sanitizer's handler reports and exits */
			ck_assert(!WIFEXITED(status) ||
				  (WEXITSTATUS(status) != 0 &&
				   WEXITSTATUS(status) != 3 &&
				   WEXITSTATUS(status) != 4));
		} else {
			ck_assert_msg(WIFSIGNALED(status) &&
					      WTERMSIG(status) == SIGSEGV,
				      "how %d: status 0x%x", how, status);
		}
	}
}
END_TEST

START_TEST(handler_installed_later_chains)
{
	/* a handler installed after ours that passes faults it does not
	 * own to the one it replaced keeps tracking working */
	static struct sigaction ours;
	struct sigaction sa = { 0 };
	struct pmtrack *t = mp_new();
	char *w = t_map_anon(4);

	ck_assert_int_eq(pmtrack_watch(t, w, 4 * ps), 0);
	sa.sa_sigaction = old_siginfo; /* not called for our faults */
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGSEGV, &sa, &ours), 0);
	ck_assert(ours.sa_flags & SA_SIGINFO);
	/* put ours back, as a chaining program would on "not mine" */
	ck_assert_int_eq(sigaction(SIGSEGV, &ours, NULL), 0);
	ck_assert_int_eq(try_write(w + 3 * ps), 1);
	t_expect_idx(t, w, 4, 0, (size_t[]){ 3 }, 1);
	pmtrack_free(t);
	munmap(w, 4 * ps);
}
END_TEST

START_TEST(protections)
{
	struct pmtrack *t = mp_new(), *t2 = mp_new();
	char *w = t_map_anon(16), *r = t_map_anon(4);

	/* read-only, and mixed protection: refused */
	ck_assert_int_eq(mprotect(r, 4 * ps, PROT_READ), 0);
	ck_assert_int_eq(pmtrack_watch(t, r, 4 * ps), -EACCES);
	ck_assert_int_eq(mprotect(r, 2 * ps, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(pmtrack_watch(t, r, 4 * ps), -EACCES);
	ck_assert_int_eq(pmtrack_watch(t, r, 2 * ps), 0);
	/* another mprotect tracker cannot watch the same pages */
	ck_assert_int_eq(pmtrack_watch(t, w, 16 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t2, w + 4 * ps, ps), -EBUSY);
	/* unwatch of the middle gives write access back there only; the
	 * rest stays tracked */
	ck_assert_int_eq(pmtrack_unwatch(t, w + 4 * ps, 4 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t2, w + 4 * ps, ps), 0);
	ck_assert_int_eq(pmtrack_unwatch(t2, w + 4 * ps, ps), 0);
	pmtrack_free(t2);
	/* a fault on a page left read-only is not ours and goes to the
	 * default action, killing the test: these writes show none is */
	w[5 * ps] = 1;
	w[0] = w[15 * ps] = 1;
	t_expect_idx(t, w, 4, 0, (size_t[]){ 0 }, 1);
	t_expect_idx(t, w + 8 * ps, 8, 0, (size_t[]){ 7 }, 1);
	/* free gives everything back */
	pmtrack_free(t);
	for (size_t i = 0; i < 16; i++)
		w[i * ps] = 2;
	r[0] = r[ps] = 2;
	munmap(w, 16 * ps);
	munmap(r, 4 * ps);
}
END_TEST

/* ---- vm.max_map_count -------------------------------------------------- */

#define MAPCOUNT "/proc/sys/vm/max_map_count"

static long count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static long saved_limit = -1;

static void limit_restore(void)
{
	if (saved_limit > 0)
		t_write_long(MAPCOUNT, saved_limit);
}

#define MC_PAGES 16384u /* 64 MiB */

START_TEST(map_count_exhausted)
{
	/* isolated writes split the mapping until mprotect fails with
	 * ENOMEM in the handler; it must un-protect a larger span instead
	 * of crashing, and no write may go unreported */
	struct pmtrack *t = mp_new();
	char *b = t_map_anon(MC_PAGES);
	unsigned char *written = calloc(MC_PAGES, 1);
	struct pmtrack_bitmap *bm;
	uint64_t rnd = 42;
	size_t nw = 0, extra, extra_total = 0;

	ck_assert_ptr_nonnull(written);
	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, MC_PAGES * ps), 0);
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < 3000; i++) {
			/* even pages only: no two written pages touch */
			size_t p = (size_t)(t_rand(&rnd) % (MC_PAGES / 2)) * 2;

			b[p * ps + (i % ps)] = (char)i;
			if (!written[p])
				nw++;
			written[p] = 1;
		}
		ck_assert_int_eq(pmtrack_collect_bitmap(t, b, MC_PAGES * ps,
							PMTRACK_COLLECT_RESET,
							bm),
				 0);
		for (size_t p = 0; p < MC_PAGES; p++)
			t_check(!written[p] || pmtrack_bitmap_test(bm, p),
				"round %d: written page %zu not reported",
				round, p);
		extra = pmtrack_bitmap_count(bm) - nw;
		extra_total += extra;
		printf("map_count round %d: %zu pages written, %zu reported "
		       "(%zu extra from coarsening), %ld mappings\n",
		       round, nw, pmtrack_bitmap_count(bm), extra,
		       count_maps());
		memset(written, 0, MC_PAGES);
		nw = 0;
	}
	/* the limit was reached and spans were coarsened: pages that were
	 * not written were reported (3000 isolated pages need 6000 maps) */
	ck_assert_uint_gt(extra_total, 0);
	pmtrack_free(t);
	/* all writable again */
	for (size_t p = 0; p < MC_PAGES; p++)
		b[p * ps] = 1;
	pmtrack_bitmap_free(bm);
	free(written);
	munmap(b, MC_PAGES * ps);
}
END_TEST

static int run_map_count(void)
{
	Suite *s = suite_create("mprotect_map_count");
	TCase *tc = tcase_create("max_map_count");
	long now, limit;
	int r;

	if (geteuid() != 0) {
		printf("SKIP: lowering vm.max_map_count needs root\n");
		return T_SKIP;
	}
	saved_limit = t_read_long(MAPCOUNT);
	now = count_maps();
	if (saved_limit <= 0 || now <= 0) {
		fprintf(stderr, "cannot read %s or /proc/self/maps\n",
			MAPCOUNT);
		return 1;
	}
	/* room for the test's own mappings and about 100 split pages */
	limit = now + 200;
	if (!t_write_long(MAPCOUNT, limit)) {
		printf("SKIP: cannot write %s: %s\n", MAPCOUNT,
		       strerror(errno));
		return T_SKIP;
	}
	atexit(limit_restore);
	printf("vm.max_map_count lowered from %ld to %ld (%ld mappings "
	       "now)\n",
	       saved_limit, limit, now);
	tcase_add_test(tc, map_count_exhausted);
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	r = t_run(s);
	limit_restore();
	saved_limit = -1;
	return r;
}

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (argc == 2 && !strcmp(argv[1], "--map-count"))
		return run_map_count();
	s = suite_create("mprotect");
	tc = tcase_create("handler");
	tcase_add_test(tc, foreign_to_siginfo_handler);
	tcase_add_test(tc, foreign_to_plain_handler);
	tcase_add_test(tc, foreign_to_default_action);
	tcase_add_test(tc, handler_installed_later_chains);
	tcase_add_test(tc, protections);
	suite_add_tcase(s, tc);
	return t_run(s);
}

// SPDX-License-Identifier: MIT
/*
 * The mprotect backend's own promises: faults that are not ours reach the
 * SIGSEGV handler installed before (SA_SIGINFO, plain, or the default
 * action), protections come back on unwatch and free, a mapping that
 * replaced a watched one keeps its protection through collects, resets,
 * unwatch and free (which fail with -ESTALE or leave it alone), and
 * running out of vm.max_map_count neither crashes nor loses a write.
 *
 *   check_mprotect             the handler, protection and replaced-mapping
 *                              tests
 *   check_mprotect --maps      the replaced-mapping tests, reading
 *                              /proc/self/maps as before Linux 6.11
 *   check_mprotect --map-count lowers vm.max_map_count (root; else 77)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

/* ---- a watched mapping replaced behind the tracker's back -------------- */

/* the mapping /proc/self/maps shows at @p: its permissions ("rw-p", or
 * "none" where nothing is mapped) and, if @s and @e are not NULL, bounds */
static void maps_at(const void *p, char perm[5], uintptr_t *s, uintptr_t *e)
{
	FILE *f = fopen("/proc/self/maps", "r");
	uintptr_t a = (uintptr_t)p;
	unsigned long vs, ve;
	char line[512];

	ck_assert_ptr_nonnull(f);
	strcpy(perm, "none");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &vs, &ve, perm) == 3 &&
		    vs <= a && a < ve) {
			if (s && e) {
				*s = vs;
				*e = ve;
			}
			break;
		}
		strcpy(perm, "none");
	}
	fclose(f);
}

/* every page of [p, p + n pages) has the permissions @want in the maps */
static void expect_perm(const char *p, size_t n, const char *want,
			const char *when)
{
	char perm[5];

	for (size_t i = 0; i < n; i++) {
		maps_at(p + i * ps, perm, NULL, NULL);
		t_check(!strcmp(perm, want), "%s: page %zu is %s, not %s", when,
			i, perm, want);
	}
}

/* replace [p, p + n pages) with a new private anonymous mapping, flagged
 * like t_map_anon()'s so that the kernel may merge the two */
static void replace_anon(char *p, size_t n, int prot)
{
	ck_assert_int_eq(munmap(p, n * ps), 0);
	ck_assert_ptr_eq(mmap(p, n * ps, prot,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			      -1, 0),
			 p);
	ck_assert_int_eq(madvise(p, n * ps, MADV_NOHUGEPAGE), 0);
}

/* a RESET collect of [p, p + n pages) into a page array: its result, and
 * how many pages it reported in *got */
static int reset_collect(struct pmtrack *t, char *p, size_t n, size_t *got)
{
	void *pages[64];
	size_t m = 64;
	int r;

	ck_assert_uint_le(n, 64);
	r = pmtrack_collect_pages(t, p, n * ps, PMTRACK_COLLECT_RESET, pages,
				  &m, NULL);
	*got = m;
	return r;
}

START_TEST(replaced_collect_unwatch)
{
	/* the case: watch 16 pages, write page 2, unmap, map a new
	 * PROT_NONE (_i = 0) or read-write (_i = 1) mapping there */
	static const int prots[] = { PROT_NONE, PROT_READ | PROT_WRITE };
	static const char *const perms[] = { "---p", "rw-p" };
	struct pmtrack *t = mp_new();
	char *b = t_map_anon(16);
	size_t n;
	int r;

	ck_assert_int_eq(pmtrack_watch(t, b, 16 * ps), 0);
	b[2 * ps] = 1;
	replace_anon(b, 16, prots[_i]);
	/* not ours: a RESET collect says so and changes nothing, again and
	 * again */
	for (int k = 0; k < 2; k++) {
		r = reset_collect(t, b, 16, &n);
		expect_perm(b, 16, perms[_i], "after a RESET collect");
		ck_assert_int_eq(r, -ESTALE);
		ck_assert_uint_eq(n, 0);
	}
	r = pmtrack_reset(t, b, 16 * ps);
	expect_perm(b, 16, perms[_i], "after pmtrack_reset");
	ck_assert_int_eq(r, -ESTALE);
	if (prots[_i] & PROT_WRITE)
		for (size_t i = 0; i < 16; i++)
			b[i * ps] = 3;
	ck_assert_int_eq(pmtrack_unwatch(t, b, 16 * ps), 0);
	expect_perm(b, 16, perms[_i], "after unwatch");
	pmtrack_free(t);
	expect_perm(b, 16, perms[_i], "after free");
	munmap(b, 16 * ps);
}
END_TEST

START_TEST(replaced_free)
{
	/* pmtrack_free() gives protections back only to what it armed */
	static const int prots[] = { PROT_NONE, PROT_READ | PROT_EXEC };
	static const char *const perms[] = { "---p", "r-xp" };
	struct pmtrack *t = mp_new();
	char *b = t_map_anon(16), *c = t_map_anon(4);

	ck_assert_int_eq(pmtrack_watch(t, b, 16 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, c, 4 * ps), 0);
	b[2 * ps] = b[5 * ps] = 1;
	c[ps] = 1;
	/* the whole range, and part of one */
	replace_anon(b, 16, prots[_i]);
	replace_anon(c + 2 * ps, 1, prots[_i]);
	pmtrack_free(t);
	expect_perm(b, 16, perms[_i], "after free");
	expect_perm(c + 2 * ps, 1, perms[_i], "after free");
	/* the rest of the second range is writable again */
	expect_perm(c, 2, "rw-p", "after free");
	expect_perm(c + 3 * ps, 1, "rw-p", "after free");
	munmap(b, 16 * ps);
	munmap(c, 4 * ps);
}
END_TEST

START_TEST(replaced_unwatch_prepare)
{
	/* unwatch and pmtrack_prepare_kernel_write() give protections back
	 * only to what was armed: not to PROT_NONE (_i = 0) or
	 * PROT_READ|PROT_EXEC (1) memory mapped over part of the range */
	static const int prots[] = { PROT_NONE, PROT_READ | PROT_EXEC };
	static const char *const perms[] = { "---p", "r-xp" };
	struct pmtrack *t = mp_new();
	char *b = t_map_anon(16);

	ck_assert_int_eq(pmtrack_watch(t, b, 16 * ps), 0);
	b[2 * ps] = b[9 * ps] = 1;
	replace_anon(b + 4 * ps, 8, prots[_i]);
	ck_assert_int_eq(pmtrack_prepare_kernel_write(t, b + 3 * ps, 10 * ps),
			 0);
	expect_perm(b + 4 * ps, 8, perms[_i], "after prepare");
	expect_perm(b + 3 * ps, 1, "rw-p", "after prepare");
	expect_perm(b + 12 * ps, 1, "rw-p", "after prepare");
	ck_assert_int_eq(pmtrack_unwatch(t, b, 16 * ps), 0);
	expect_perm(b + 4 * ps, 8, perms[_i], "after unwatch");
	expect_perm(b, 4, "rw-p", "after unwatch");
	expect_perm(b + 12 * ps, 4, "rw-p", "after unwatch");
	pmtrack_free(t);
	munmap(b, 16 * ps);
}
END_TEST

/* a shared mapping of @n pages: memfd (@memfd) or shared anonymous */
static char *map_shared(size_t n, bool memfd, void *at)
{
	int fd = -1, flags = MAP_SHARED | (at ? MAP_FIXED : 0);
	char *p;

	if (memfd) {
		fd = memfd_create("pmtrack-replaced", MFD_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, (off_t)(n * ps)), 0);
	} else {
		flags |= MAP_ANONYMOUS;
	}
	p = mmap(at, n * ps, PROT_READ | PROT_WRITE, flags, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	if (fd >= 0)
		close(fd);
	return p;
}

START_TEST(replaced_by_file)
{
	/* Replacements with the protection a written page has, laid over
	 * written pages only, where only the mapping's identity tells:
	 * _i = 0: a memfd page over a written page of anonymous memory;
	 * 1: a memfd range by another memfd; 2: shared anonymous memory by
	 * another such mapping; 3: anonymous memory by a private mapping of
	 * a file. */
	static const char *const perms[] = { "rw-s", "rw-s", "rw-s", "rw-p" };
	struct pmtrack *t = mp_new();
	char *b = _i == 1 || _i == 2 ? map_shared(16, _i == 1, NULL)
				     : t_map_anon(16);
	size_t n;
	int r;

	ck_assert_int_eq(pmtrack_watch(t, b, 16 * ps), 0);
	b[2 * ps] = b[9 * ps] = 1;
	if (_i == 0) {
		map_shared(1, true, b + 2 * ps);
	} else if (_i == 1 || _i == 2) {
		ck_assert_int_eq(munmap(b, 16 * ps), 0);
		map_shared(16, _i == 1, b);
	} else {
		char path[] = "pmtrack-replaced-XXXXXX";
		int fd = mkstemp(path);

		ck_assert_int_ge(fd, 0);
		unlink(path);
		ck_assert_int_eq(ftruncate(fd, (off_t)ps), 0);
		ck_assert_ptr_eq(mmap(b + 2 * ps, ps, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_FIXED, fd, 0),
				 b + 2 * ps);
		close(fd);
	}
	r = reset_collect(t, b, 16, &n);
	expect_perm(b + 2 * ps, 1, perms[_i], "after a RESET collect");
	ck_assert_int_eq(r, -ESTALE);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(pmtrack_unwatch(t, b + 2 * ps, ps), 0);
	expect_perm(b + 2 * ps, 1, perms[_i], "after unwatch");
	if (_i == 0 || _i == 3) {
		/* the rest is still ours, and tracked */
		t_expect_idx(t, b + 3 * ps, 13, PMTRACK_COLLECT_RESET,
			     (size_t[]){ 6 }, 1);
		b[9 * ps] = b[15 * ps] = 2;
		t_expect_idx(t, b + 3 * ps, 13, PMTRACK_COLLECT_RESET,
			     (size_t[]){ 6, 12 }, 2);
	} else {
		ck_assert_int_eq(reset_collect(t, b + 3 * ps, 13, &n), -ESTALE);
		expect_perm(b, 16, perms[_i], "after a RESET collect");
	}
	pmtrack_free(t);
	expect_perm(b + 2 * ps, 1, perms[_i], "after free");
	munmap(b, 16 * ps);
}
END_TEST

START_TEST(replaced_neighbours)
{
	/* Three adjacent ranges A, B, C; B's memory is replaced by a new
	 * read-write mapping (which the kernel may merge with the written
	 * pages of A and C next to it).  A and C stay tracked, write for
	 * write; B fails with -ESTALE. */
	struct pmtrack *t = mp_new();
	char *b = t_map_anon(24), *a = b, *c = b + 16 * ps;
	size_t n;
	int r;

	ck_assert_int_eq(pmtrack_watch(t, a, 8 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 8 * ps, 8 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, c, 8 * ps), 0);
	a[3 * ps] = a[7 * ps] = b[9 * ps] = c[0] = c[5 * ps] = 1;
	replace_anon(b + 8 * ps, 8, PROT_READ | PROT_WRITE);
	/* across all three: A's pages, then the error */
	r = reset_collect(t, b, 24, &n);
	expect_perm(b + 8 * ps, 8, "rw-p", "after a RESET collect");
	ck_assert_int_eq(r, -ESTALE);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(reset_collect(t, b + 8 * ps, 8, &n), -ESTALE);
	expect_perm(b + 8 * ps, 8, "rw-p", "after RESET collects");
	t_expect_idx(t, c, 8, PMTRACK_COLLECT_RESET, (size_t[]){ 0, 5 }, 2);
	for (size_t p = 1; p < 5; p++) {
		/* pages 7 of A and 0 of C are next to B */
		a[7 * ps] = a[p * ps] = 2;
		c[0] = c[(p + 2) * ps] = 2;
		t_expect_idx(t, a, 8, PMTRACK_COLLECT_RESET, (size_t[]){ p, 7 },
			     2);
		t_expect_idx(t, c, 8, PMTRACK_COLLECT_RESET,
			     (size_t[]){ 0, p + 2 }, 2);
		expect_perm(b + 8 * ps, 8, "rw-p", "after RESET collects");
	}
	pmtrack_free(t);
	expect_perm(b + 8 * ps, 8, "rw-p", "after free");
	munmap(b, 24 * ps);
}
END_TEST

START_TEST(replaced_part_keeps_writes)
{
	/* A page next to a written one is replaced by a read-write mapping.
	 * Where the kernel merges the two into one mapping they look alike:
	 * the collect fails rather than drop the written page or re-arm the
	 * new one; once the new page is unwatched the write is reported. */
	struct pmtrack *t = mp_new();
	char *b = t_map_anon(8), perm[5];
	uintptr_t s, e;
	size_t n;
	int r;

	ck_assert_int_eq(pmtrack_watch(t, b, 8 * ps), 0);
	b[2 * ps] = 1;
	replace_anon(b + 3 * ps, 1, PROT_READ | PROT_WRITE);
	maps_at(b + 2 * ps, perm, &s, &e);
	r = reset_collect(t, b, 8, &n);
	expect_perm(b + 3 * ps, 1, "rw-p", "after a RESET collect");
	if (e > (uintptr_t)b + 3 * ps) {
		/* merged */
		ck_assert_int_eq(r, -ESTALE);
		ck_assert_uint_eq(n, 0);
		ck_assert_int_eq(pmtrack_unwatch(t, b + 3 * ps, ps), 0);
		t_expect_idx(t, b, 3, PMTRACK_COLLECT_RESET, (size_t[]){ 2 },
			     1);
	} else {
		printf("replaced_part_keeps_writes: the kernel did not merge "
		       "the new page with the written one\n");
		ck_assert_int_eq(r, 0);
		ck_assert_uint_eq(n, 1);
		ck_assert_int_eq(pmtrack_unwatch(t, b + 3 * ps, ps), 0);
	}
	expect_perm(b + 3 * ps, 1, "rw-p", "after unwatch");
	b[2 * ps] = 2;
	t_expect_idx(t, b, 3, PMTRACK_COLLECT_RESET, (size_t[]){ 2 }, 1);
	pmtrack_free(t);
	munmap(b, 8 * ps);
}
END_TEST

/* ---- no replacement is seen where there is none ------------------------ */

#define RACE_PAGES 256
#define RACE_COLLECTS 5000

struct race {
	struct pmtrack *t;
	char *buf;
	atomic_int stop;
	atomic_int collectors_left;
	int pipe[2];
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	uint64_t rnd = (uint64_t)(uintptr_t)&rnd;

	while (!atomic_load(&r->stop)) {
		/* pairs of pages too: written neighbours share a mapping */
		size_t p = (size_t)(t_rand(&rnd) % (RACE_PAGES - 1));

		/* atomic: both writers store to the same bytes */
		__atomic_store_n(&r->buf[p * ps], 1, __ATOMIC_RELAXED);
		if (t_rand(&rnd) & 1)
			__atomic_store_n(&r->buf[(p + 1) * ps], 1,
					 __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *race_kernel_writer(void *arg)
{
	struct race *r = arg;
	uint64_t rnd = 7;
	char c = 1;

	while (!atomic_load(&r->stop)) {
		size_t p = (size_t)(t_rand(&rnd) % RACE_PAGES);

		t_check(write(r->pipe[1], &c, 1) == 1, "pipe write");
		t_check(t_kread(r->t, r->pipe[0], r->buf + p * ps, 1) == 1,
			"read into page %zu: %s", p, strerror(errno));
	}
	return NULL;
}

static void *race_collector(void *arg)
{
	struct race *r = arg;
	uint64_t rnd = (uint64_t)(uintptr_t)arg ^ (uint64_t)pthread_self();

	for (int i = 0; i < RACE_COLLECTS; i++) {
		size_t from = (size_t)(t_rand(&rnd) % RACE_PAGES);
		size_t len = 1 + (size_t)(t_rand(&rnd) % (RACE_PAGES - from));
		struct pmtrack_run runs[4];
		size_t n = 4;
		int ret;

		if (i % 5 == 4)
			ret = pmtrack_reset(r->t, r->buf + from * ps, len * ps);
		else
			ret = pmtrack_collect_runs(
				r->t, r->buf + from * ps, len * ps,
				PMTRACK_COLLECT_RESET, runs, &n, NULL);
		t_check(ret == 0, "collect %d of [%zu, %zu): %s", i, from,
			from + len, strerror(-ret));
	}
	atomic_fetch_sub(&r->collectors_left, 1);
	return NULL;
}

START_TEST(no_stale_while_racing)
{
	/* Writers (stores and read(2)) and two threads collecting and
	 * resetting random parts of one range at once: pages are written,
	 * armed and written again around every collect, and no collect may
	 * mistake that for a replaced mapping.  Afterwards every page is
	 * still tracked. */
	struct race r = { .t = mp_new() };
	pthread_t w[3], col[2];
	size_t all[RACE_PAGES];

	r.buf = t_map_anon(RACE_PAGES);
	ck_assert_int_eq(pipe(r.pipe), 0);
	ck_assert_int_eq(pmtrack_watch(r.t, r.buf, RACE_PAGES * ps), 0);
	atomic_store(&r.collectors_left, 2);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&w[i], NULL, race_writer, &r),
				 0);
	ck_assert_int_eq(pthread_create(&w[2], NULL, race_kernel_writer, &r),
			 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(
			pthread_create(&col[i], NULL, race_collector, &r), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(col[i], NULL);
	atomic_store(&r.stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(w[i], NULL);
	ck_assert_int_eq(pmtrack_reset(r.t, r.buf, RACE_PAGES * ps), 0);
	for (size_t i = 0; i < RACE_PAGES; i++) {
		r.buf[i * ps] = 2;
		all[i] = i;
	}
	t_expect_idx(r.t, r.buf, RACE_PAGES, PMTRACK_COLLECT_RESET, all,
		     RACE_PAGES);
	expect_perm(r.buf, RACE_PAGES, "r--p", "armed after the race");
	pmtrack_free(r.t);
	expect_perm(r.buf, RACE_PAGES, "rw-p", "after free");
	close(r.pipe[0]);
	close(r.pipe[1]);
	munmap(r.buf, RACE_PAGES * ps);
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

/*
 * 64 MiB of anonymous memory; with @straddle, across a 1 GiB boundary, so
 * that the handler's coarsest aligned span (1 GiB) holds only part of it.
 */
static char *mc_map(bool straddle)
{
	size_t len = (size_t)MC_PAGES * ps, gib = (size_t)1 << 30;
	char *r, *b;

	if (!straddle)
		return t_map_anon(MC_PAGES);
	r = mmap(NULL, 2 * gib, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_ptr_ne(r, MAP_FAILED);
	b = (char *)(((uintptr_t)r + gib - 1) & ~(uintptr_t)(gib - 1)) -
	    len / 2;
	ck_assert_ptr_ne(mmap(b, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			 MAP_FAILED);
	/* only the 64 MiB stay mapped */
	munmap(r, (size_t)(b - r));
	munmap(b + len, (size_t)(r + 2 * gib - (b + len)));
	return b;
}

START_TEST(map_count_exhausted)
{
	/* isolated writes split the mapping until mprotect fails with
	 * ENOMEM in the handler; it must un-protect a larger span instead
	 * of crashing, and no write may go unreported; _i = 1: the range
	 * crosses a 1 GiB boundary */
	struct pmtrack *t = mp_new();
	char *b = mc_map(_i);
	unsigned char *written = calloc(MC_PAGES, 1);
	struct pmtrack_bitmap *bm;
	uint64_t rnd = 42;
	size_t nw = 0, extra, extra_total = 0;
	long limit;

	ck_assert_ptr_nonnull(written);
	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, MC_PAGES * ps), 0);
	/* room for the test's own mappings and about 100 split pages; set
	 * here, in the test's own process: one that ends puts the old limit
	 * back (atexit) */
	limit = count_maps() + 200;
	ck_assert(t_write_long(MAPCOUNT, limit));
	printf("vm.max_map_count lowered from %ld to %ld\n", saved_limit,
	       limit);
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
	limit_restore();
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
	int r;

	if (geteuid() != 0) {
		printf("SKIP: lowering vm.max_map_count needs root\n");
		return T_SKIP;
	}
	saved_limit = t_read_long(MAPCOUNT);
	if (saved_limit <= 0 || count_maps() <= 0) {
		fprintf(stderr, "cannot read %s or /proc/self/maps\n",
			MAPCOUNT);
		return 1;
	}
	/* the same value back: can this process change it at all? */
	if (!t_write_long(MAPCOUNT, saved_limit)) {
		printf("SKIP: cannot write %s: %s\n", MAPCOUNT,
		       strerror(errno));
		return T_SKIP;
	}
	atexit(limit_restore);
	tcase_add_loop_test(tc, map_count_exhausted, 0, 2);
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
	bool maps;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (argc == 2 && !strcmp(argv[1], "--map-count"))
		return run_map_count();
	maps = argc == 2 && !strcmp(argv[1], "--maps");
	if (maps)
		setenv("PMTRACK_NO_PROCMAP_QUERY", "1", 1);
	s = suite_create("mprotect");
	if (!maps) {
		tc = tcase_create("handler");
		tcase_add_test(tc, foreign_to_siginfo_handler);
		tcase_add_test(tc, foreign_to_plain_handler);
		tcase_add_test(tc, foreign_to_default_action);
		tcase_add_test(tc, handler_installed_later_chains);
		tcase_add_test(tc, protections);
		suite_add_tcase(s, tc);
	}
	tc = tcase_create("replaced");
	tcase_add_loop_test(tc, replaced_collect_unwatch, 0, 2);
	tcase_add_loop_test(tc, replaced_free, 0, 2);
	tcase_add_loop_test(tc, replaced_unwatch_prepare, 0, 2);
	tcase_add_loop_test(tc, replaced_by_file, 0, 4);
	tcase_add_test(tc, replaced_neighbours);
	tcase_add_test(tc, replaced_part_keeps_writes);
	tcase_add_test(tc, no_stale_while_racing);
	suite_add_tcase(s, tc);
	return t_run(s);
}

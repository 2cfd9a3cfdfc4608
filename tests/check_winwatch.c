// SPDX-License-Identifier: MIT
/*
 * The GetWriteWatch shim (winwatch.h): Windows semantics and error codes, on
 * the backend PMTRACK_BACKEND names (CTest runs it once per backend).  Uses
 * the unprefixed Windows names, as a compatibility layer would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PMTRACK_WINAPI_NAMES
#include <pmtrack/winwatch.h>

#include "helpers.h"
#include "winwatch_own_types.h"

#define P 4096u
#define FAIL ((UINT)-1)

/* soft-dirty is refused by the shim (no atomic, range-local reset) */
static bool refused;

static char *ww_alloc(size_t npages, DWORD type, DWORD prot)
{
	char *p = VirtualAlloc(NULL, npages * P, type, prot);

	ck_assert_msg(p, "VirtualAlloc: error %u", GetLastError());
	ck_assert_uint_eq((uintptr_t)p % 65536, 0);
	return p;
}

static char *ww_rw(size_t npages)
{
	return ww_alloc(npages, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
			PAGE_READWRITE);
}

/* GetWriteWatch that must succeed; returns the count, fills idx[] with page
 * indices relative to @buf */
static size_t ww_get(DWORD flags, char *buf, void *base, size_t size,
		     size_t cap, size_t *idx)
{
	PVOID addrs[cap ? cap : 1];
	ULONG_PTR count = cap;
	DWORD gran = 0;
	UINT r = GetWriteWatch(flags, base, size, addrs, &count, &gran);

	ck_assert_msg(r == 0, "GetWriteWatch: %u, error %u", r, GetLastError());
	ck_assert_uint_eq(gran, 4096);
	ck_assert_uint_le(count, cap);
	for (size_t i = 0; i < count; i++) {
		ck_assert_uint_eq((uintptr_t)addrs[i] % P, 0);
		if (i)
			t_assert_ptr_gt(addrs[i], addrs[i - 1]);
		idx[i] = (size_t)((char *)addrs[i] - buf) / P;
	}
	return count;
}

static void expect(DWORD flags, char *buf, void *base, size_t size, size_t cap,
		   const size_t *want, size_t n)
{
	size_t idx[cap ? cap : 1];
	size_t got = ww_get(flags, buf, base, size, cap, idx);

	ck_assert_msg(got == n,
		      "%zu pages reported, want %zu; first %zu, last %zu", got,
		      n, got ? idx[0] : 0, got ? idx[got - 1] : 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(idx[i], want[i]);
}

#define EXPECT(flags, buf, base, size, cap, ...)                               \
	do {                                                                   \
		const size_t w_[] = { __VA_ARGS__ };                           \
		expect(flags, buf, base, size, cap, w_,                        \
		       sizeof(w_) / sizeof(w_[0]) - 1);                        \
	} while (0)
/* the list ends with a dummy entry so it may be empty: EXPECT(.., 99) */
#define END 99

static void expect_none(char *buf, size_t npages)
{
	EXPECT(0, buf, buf, npages * P, npages, END);
}

static void expect_segv(volatile char *addr);

/* ---- allocation rules ----------------------------------------------- */

START_TEST(alloc_rules)
{
	char *p;

	SetLastError(0);
	ck_assert_ptr_null(
		VirtualAlloc(NULL, P, MEM_WRITE_WATCH, PAGE_READWRITE));
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_ptr_null(VirtualAlloc(NULL, P, MEM_WRITE_WATCH | MEM_COMMIT,
					PAGE_READWRITE));
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_ptr_null(VirtualAlloc(NULL, 0, MEM_RESERVE, PAGE_READWRITE));
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_ptr_null(VirtualAlloc(NULL, P, MEM_RESERVE, 0x10));
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_ptr_null(
		VirtualAlloc(NULL, P, MEM_RESERVE | MEM_RESET, PAGE_READWRITE));
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_ptr_null(VirtualAlloc(NULL, P, 0, PAGE_READWRITE));
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);

	/* reserve-only, PAGE_NOACCESS: queries work, nothing is written */
	p = ww_alloc(16, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_NOACCESS);
	expect_none(p, 16);
	ck_assert_uint_eq(ResetWriteWatch(p, 16 * P), 0);
	/* commit part of it, write, see it */
	ck_assert_ptr_eq(
		VirtualAlloc(p + 5 * P + 7, 2 * P, MEM_COMMIT, PAGE_READWRITE),
		p + 5 * P);
	p[5 * P] = 1;
	p[7 * P + 6] = 1; /* the third page the rounded range covers */
	EXPECT(0, p, p, 16 * P, 16, 5, 7, END);
	/* committing committed pages changes their protection, keeps their
	 * contents and marks nothing */
	ck_assert_ptr_eq(VirtualAlloc(p + 5 * P, P, MEM_COMMIT, PAGE_READONLY),
			 p + 5 * P);
	ck_assert_int_eq(p[5 * P], 1);
	expect_segv(p + 5 * P);
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 16 * P, 16, 5, 7, END);
	ck_assert_ptr_eq(
		VirtualAlloc(p + 5 * P, 3 * P, MEM_COMMIT, PAGE_READWRITE),
		p + 5 * P);
	expect_none(p, 16);
	/* commit outside any allocation */
	ck_assert_ptr_null(
		VirtualAlloc(p + 16 * P, P, MEM_COMMIT, PAGE_READWRITE));
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_ADDRESS);
	/* an explicit, unaligned base is rounded down to 64 KiB; a taken
	 * one is refused */
	ck_assert_int_ne(VirtualFree(p, 0, MEM_RELEASE), 0);
	ck_assert_ptr_eq(VirtualAlloc(p + 12345, P,
				      MEM_RESERVE | MEM_WRITE_WATCH,
				      PAGE_NOACCESS),
			 p);
	ck_assert_ptr_null(VirtualAlloc(p, P, MEM_RESERVE, PAGE_READWRITE));
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_ADDRESS);
	/* MEM_TOP_DOWN is a hint, accepted */
	{
		char *q = VirtualAlloc(NULL, P,
				       MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN,
				       PAGE_READWRITE);

		ck_assert_ptr_nonnull(q);
		ck_assert_int_ne(VirtualFree(q, 0, MEM_RELEASE), 0);
	}
	/* MEM_COMMIT alone with no address reserves too; no write watch */
	{
		char *q = VirtualAlloc(NULL, P, MEM_COMMIT, PAGE_READWRITE);
		ULONG_PTR n = 1;
		DWORD g;
		PVOID a;

		ck_assert_ptr_nonnull(q);
		q[0] = 1;
		ck_assert_uint_eq(GetWriteWatch(0, q, P, &a, &n, &g), FAIL);
		ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
		ck_assert_int_ne(VirtualFree(q, 0, MEM_RELEASE), 0);
	}
}
END_TEST

START_TEST(release)
{
	char *p = ww_rw(4);
	PVOID a;
	ULONG_PTR n = 1;
	DWORD g;

	p[0] = 1;
	ck_assert_int_eq(VirtualFree(p, P, MEM_RELEASE), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_int_eq(VirtualFree(p + P, 0, MEM_RELEASE), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_ADDRESS);
	ck_assert_int_eq(VirtualFree(p, 0, MEM_RELEASE | MEM_DECOMMIT), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_int_ne(VirtualFree(p, 0, MEM_RELEASE), 0);
	ck_assert_uint_eq(GetWriteWatch(0, p, P, &a, &n, &g), FAIL);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_int_eq(VirtualFree(p, 0, MEM_RELEASE), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_ADDRESS);
	/* the same place again starts clean */
	ck_assert_ptr_eq(
		VirtualAlloc(p, 4 * P,
			     MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
			     PAGE_READWRITE),
		p);
	ck_assert_int_eq(p[0], 0);
	expect_none(p, 4);
	p[3 * P] = 1;
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 4 * P, 4, 3, END);
}
END_TEST

/* ---- reporting -------------------------------------------------------- */

START_TEST(ascending_absolute_subrange)
{
	enum { N = 64 };
	char *p = ww_rw(N);
	const size_t order[] = { 40, 3, 63, 0, 17, 18, 41 };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		p[order[i] * P + 100] = 1;
	EXPECT(0, p, p, N * P, N, 0, 3, 17, 18, 40, 41, 63, END);
	/* a sub-range: only pages inside, as absolute addresses */
	EXPECT(0, p, p + 17 * P, 24 * P, N, 17, 18, 40, END);
	/* unaligned base rounded down, size rounded up */
	EXPECT(0, p, p + 17 * P + 5, 1, N, 17, END);
	EXPECT(0, p, p + 16 * P + 4095, 2, N, 17, END);
	/* a RESET of a sub-range leaves the rest */
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p + 18 * P, 30 * P, N, 18, 40, 41,
	       END);
	EXPECT(0, p, p, N * P, N, 0, 3, 17, 63, END);
	/* each report is exact: a second RESET finds nothing */
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, N * P, N, 0, 3, 17, 63, END);
	expect_none(p, N);
}
END_TEST

START_TEST(truncation_resets_only_returned)
{
	char *p = ww_rw(8);

	p[1 * P] = p[2 * P] = p[4 * P] = 1;
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 8 * P, 1, 1, END);
	EXPECT(0, p, p, 8 * P, 8, 2, 4, END);
	/* pages held back by a truncated RESET and pages written since come
	 * together, in order, and a query without RESET changes nothing */
	p[6 * P] = 1;
	EXPECT(0, p, p, 8 * P, 8, 2, 4, 6, END);
	EXPECT(0, p, p + 3 * P, 5 * P, 8, 4, 6, END);
	/* a filled array with RESET resets through the last page returned */
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 8 * P, 1, 2, END);
	p[1 * P] = 2;
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 8 * P, 2, 1, 4, END);
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 8 * P, 8, 6, END);
	expect_none(p, 8);
	/* a large region, every page written, collected in slices */
	{
		enum { N = 3000 };
		char *q = ww_rw(N);
		size_t *idx = malloc(N * sizeof(*idx)), seen = 0, got;

		for (size_t i = 0; i < N; i++)
			q[i * P] = 1;
		while ((got = ww_get(WRITE_WATCH_FLAG_RESET, q, q, N * P, 511,
				     idx))) {
			for (size_t i = 0; i < got; i++)
				ck_assert_uint_eq(idx[i], seen + i);
			seen += got;
		}
		ck_assert_uint_eq(seen, N);
		free(idx);
	}
}
END_TEST

START_TEST(empty_leaves_array)
{
	char *p = ww_rw(4);
	PVOID a[2] = { (PVOID)0xdeadbeef, (PVOID)0xdeadbeef };
	ULONG_PTR n = 2;
	DWORD g = 0;

	ck_assert_uint_eq(
		GetWriteWatch(WRITE_WATCH_FLAG_RESET, p, 4 * P, a, &n, &g), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(g, 4096);
	ck_assert_ptr_eq(a[0], (PVOID)0xdeadbeef);
	ck_assert_ptr_eq(a[1], (PVOID)0xdeadbeef);
}
END_TEST

START_TEST(straddling_write)
{
	char *p = ww_rw(4);
	/* one 4-byte store across the boundary, declared unaligned */
	typedef uint32_t __attribute__((aligned(1))) u32_unaligned;
	volatile u32_unaligned *u = (volatile u32_unaligned *)(p + 2 * P - 2);

	*u = 0x01020304;
	EXPECT(0, p, p, 4 * P, 4, 1, 2, END);
}
END_TEST

/* ---- protections, decommit -------------------------------------------- */

START_TEST(protection_is_neutral)
{
	char *p = ww_rw(8);
	DWORD old = 0;

	p[0] = p[P] = 1;
	ck_assert_int_ne(VirtualProtect(p, 4 * P, PAGE_READONLY, &old), 0);
	ck_assert_uint_eq(old, PAGE_READWRITE);
	EXPECT(0, p, p, 8 * P, 8, 0, 1, END);
	ck_assert_int_ne(VirtualProtect(p + P, P, PAGE_NOACCESS, &old), 0);
	ck_assert_uint_eq(old, PAGE_READONLY);
	EXPECT(0, p, p, 8 * P, 8, 0, 1, END);
	ck_assert_int_ne(VirtualProtect(p, 8 * P, PAGE_READWRITE, &old), 0);
	ck_assert_uint_eq(old, PAGE_READONLY);
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 8 * P, 8, 0, 1, END);
	/* clean pages stay clean through any protection change */
	ck_assert_int_ne(VirtualProtect(p, 8 * P, PAGE_NOACCESS, &old), 0);
	ck_assert_int_ne(VirtualProtect(p, 8 * P, PAGE_READONLY, &old), 0);
	ck_assert_uint_eq(p[5 * P], 0); /* readable */
	ck_assert_int_ne(VirtualProtect(p, 8 * P, PAGE_READWRITE, &old), 0);
	expect_none(p, 8);
	/* and a write after going writable again is reported */
	p[6 * P] = 1;
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 8 * P, 8, 6, END);
	/* a page written read-write, protected, reset while protected, made
	 * writable: clean, and tracked again */
	p[2 * P] = 1;
	ck_assert_int_ne(VirtualProtect(p + 2 * P, P, PAGE_READONLY, &old), 0);
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 8 * P, 8, 2, END);
	ck_assert_int_ne(VirtualProtect(p + 2 * P, P, PAGE_READWRITE, &old), 0);
	expect_none(p, 8);
	p[2 * P] = 2;
	EXPECT(0, p, p, 8 * P, 8, 2, END);
	/* errors */
	ck_assert_int_eq(VirtualProtect(p, P, PAGE_READONLY, NULL), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_NOACCESS);
	ck_assert_int_eq(
		VirtualProtect(p, P, 0x40 /* EXECUTE_READWRITE */, &old), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_int_eq(VirtualProtect(p, 9 * P, PAGE_READONLY, &old), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_ADDRESS);
}
END_TEST

/*
 * The program's own SIGSEGV handler, installed before any tracker (the
 * mprotect backend chains to it): a fault at the address a child expects
 * exits 42, any other 43.
 */
static volatile char *volatile segv_expected;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	_exit(si->si_addr == (void *)segv_expected ? 42 : 43);
}

/* a child writes to a page it may not write: the write must fault */
static void expect_segv(volatile char *addr)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		segv_expected = addr;
		*addr = 1;
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 42,
		      "child status 0x%x: the write went through", st);
}

START_TEST(non_writable_pages_fault)
{
	char *p = ww_alloc(8, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_NOACCESS);
	DWORD old;

	ck_assert_ptr_nonnull(
		VirtualAlloc(p, 4 * P, MEM_COMMIT, PAGE_READONLY));
	ck_assert_ptr_nonnull(
		VirtualAlloc(p + P, P, MEM_COMMIT, PAGE_NOACCESS));
	expect_segv(p);		/* read-only */
	expect_segv(p + P);	/* no access */
	expect_segv(p + 6 * P); /* reserved */
	ck_assert_int_ne(VirtualProtect(p + 2 * P, P, PAGE_READWRITE, &old), 0);
	p[2 * P] = 1;
	ck_assert_int_ne(VirtualProtect(p + 2 * P, P, PAGE_READONLY, &old), 0);
	expect_segv(p + 2 * P);
	EXPECT(0, p, p, 8 * P, 8, 2, END);
}
END_TEST

START_TEST(decommit_clears_recommit_clean)
{
	char *p = ww_rw(8);

	for (int i = 0; i < 4; i++)
		p[i * P] = (char)(i + 1);
	ck_assert_int_ne(VirtualFree(p + P, 2 * P, MEM_DECOMMIT), 0);
	EXPECT(0, p, p, 8 * P, 8, 0, 3, END);
	/* decommitted pages are not accessible, committed ones keep data */
	expect_segv(p + P);
	ck_assert_int_eq(p[3 * P], 4);
	ck_assert_ptr_eq(VirtualAlloc(p + P, 2 * P, MEM_COMMIT, PAGE_READWRITE),
			 p + P);
	EXPECT(0, p, p, 8 * P, 8, 0, 3, END);
	ck_assert_int_eq(p[P], 0);
	ck_assert_int_eq(p[2 * P], 0);
	p[2 * P] = 9;
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 8 * P, 8, 0, 2, 3, END);
	/* decommit of the whole allocation: size 0 at the base */
	p[5 * P] = 1;
	ck_assert_int_eq(VirtualFree(p + P, 0, MEM_DECOMMIT), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_int_eq(VirtualFree(p, 9 * P, MEM_DECOMMIT), 0);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_ADDRESS);
	ck_assert_int_ne(VirtualFree(p, 0, MEM_DECOMMIT), 0);
	expect_none(p, 8);
	ck_assert_ptr_eq(VirtualAlloc(p, 8 * P, MEM_COMMIT, PAGE_READWRITE), p);
	expect_none(p, 8);
	p[7 * P] = 1;
	EXPECT(0, p, p, 8 * P, 8, 7, END);
}
END_TEST

/* Windows: a page written and then passed to VirtualProtect keeps its
 * state across decommit and recommit, until reset */
START_TEST(protect_latches_across_decommit)
{
	char *p = ww_rw(4);
	DWORD old;

	p[0] = 1;
	p[P] = 1;
	ck_assert_int_ne(VirtualProtect(p, P, PAGE_READONLY, &old), 0);
	ck_assert_int_ne(VirtualProtect(p, P, PAGE_READWRITE, &old), 0);
	ck_assert_int_ne(VirtualFree(p, 2 * P, MEM_DECOMMIT), 0);
	EXPECT(0, p, p, 4 * P, 4, 0, END);
	ck_assert_ptr_nonnull(
		VirtualAlloc(p, 2 * P, MEM_COMMIT, PAGE_READWRITE));
	EXPECT(WRITE_WATCH_FLAG_RESET, p, p, 4 * P, 4, 0, END);
	/* reset ends the latch: written, decommitted: clean */
	p[0] = 2;
	ck_assert_int_ne(VirtualFree(p, P, MEM_DECOMMIT), 0);
	expect_none(p, 4);
}
END_TEST

/* ---- errors ------------------------------------------------------------ */

static void expect_fail(DWORD flags, void *base, size_t size, PVOID *a,
			ULONG_PTR *n, DWORD *g, DWORD err)
{
	SetLastError(0);
	ck_assert_uint_eq(GetWriteWatch(flags, base, size, a, n, g), FAIL);
	ck_assert_uint_eq(GetLastError(), err);
}

START_TEST(error_precedence)
{
	char *x = ww_alloc(32, MEM_RESERVE, PAGE_NOACCESS), *p, *q;
	char *plain =
		VirtualAlloc(NULL, P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	PVOID a[4] = { (PVOID)1, (PVOID)1, (PVOID)1, (PVOID)1 };
	ULONG_PTR n = 4, zero = 0;
	DWORD g = 7;
	int stack;

	/* two write-watch allocations back to back: reserve room, free it,
	 * allocate both there (retried: malloc may take the room meanwhile) */
	for (int tries = 0;; tries++) {
		ck_assert_int_lt(tries, 20);
		ck_assert_int_ne(VirtualFree(x, 0, MEM_RELEASE), 0);
		p = VirtualAlloc(x, 16 * P,
				 MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
				 PAGE_READWRITE);
		q = VirtualAlloc(x + 16 * P, 16 * P,
				 MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
				 PAGE_READWRITE);
		if (p == x && q == x + 16 * P)
			break;
		if (p)
			VirtualFree(p, 0, MEM_RELEASE);
		if (q)
			VirtualFree(q, 0, MEM_RELEASE);
		x = ww_alloc(32, MEM_RESERVE, PAGE_NOACCESS);
	}
	p[0] = 1;
	/* NULL count or granularity first, whatever else is wrong */
	expect_fail(2, p, 0, NULL, NULL, &g, ERROR_NOACCESS);
	expect_fail(2, p, 0, NULL, &n, NULL, ERROR_NOACCESS);
	/* then zero count or size (even with a NULL array) */
	expect_fail(2, p, 4 * P, NULL, &zero, &g, ERROR_INVALID_PARAMETER);
	expect_fail(2, p, 0, NULL, &n, &g, ERROR_INVALID_PARAMETER);
	/* then flags (before the NULL array) */
	expect_fail(2, p, 4 * P, NULL, &n, &g, ERROR_INVALID_PARAMETER);
	expect_fail(WRITE_WATCH_FLAG_RESET | 4, p, 4 * P, a, &n, &g,
		    ERROR_INVALID_PARAMETER);
	/* then the array */
	expect_fail(0, p, 4 * P, NULL, &n, &g, ERROR_NOACCESS);
	/* then the range */
	expect_fail(0, p, 16 * P + 1, a, &n, &g, ERROR_INVALID_PARAMETER);
	expect_fail(0, p + 15 * P, 2 * P, a, &n, &g, ERROR_INVALID_PARAMETER);
	expect_fail(0, q + 16 * P, P, a, &n, &g, ERROR_INVALID_PARAMETER);
	expect_fail(0, plain, P, a, &n, &g, ERROR_INVALID_PARAMETER);
	expect_fail(0, &stack, 4, a, &n, &g, ERROR_INVALID_PARAMETER);
	expect_fail(0, (void *)-4096, 8192, a, &n, &g, ERROR_INVALID_PARAMETER);
	/* failures touch nothing */
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(g, 7);
	ck_assert_ptr_eq(a[0], (PVOID)1);
	EXPECT(0, p, p, 4 * P, 4, 0, END);
	/* ResetWriteWatch */
	SetLastError(0);
	ck_assert_uint_eq(ResetWriteWatch(p, 0), FAIL);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_uint_eq(ResetWriteWatch(p, 16 * P + 1), FAIL);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	ck_assert_uint_eq(ResetWriteWatch(plain, P), FAIL);
	ck_assert_uint_eq(GetLastError(), ERROR_INVALID_PARAMETER);
	EXPECT(0, p, p, 4 * P, 4, 0, END);
	ck_assert_uint_eq(ResetWriteWatch(p + 1, 1), 0);
	expect_none(p, 4);
	/* and from a file with Windows types of its own */
	ck_assert_uint_eq(own_types_reset(p, 0), FAIL);
	ck_assert_uint_eq(GetLastError(), own_types_invalid_parameter());
	ck_assert_uint_eq(own_types_reset(p, P), 0);
	/* the prefixed names are the same functions */
	ck_assert_ptr_eq((void *)&GetWriteWatch,
			 (void *)&pmtrack_GetWriteWatch);
}
END_TEST

static void *set_error_thread(void *arg)
{
	(void)arg;
	SetLastError(1234);
	return (void *)(uintptr_t)GetLastError();
}

START_TEST(last_error_per_thread)
{
	pthread_t th;
	void *ret;

	SetLastError(42);
	ck_assert_int_eq(pthread_create(&th, NULL, set_error_thread, NULL), 0);
	ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_uint_eq((uintptr_t)ret, 1234);
	ck_assert_uint_eq(GetLastError(), 42);
}
END_TEST

/* ---- kernel writes ------------------------------------------------------ */

START_TEST(kernel_writes_count)
{
	enum { N = 16 };
	char *p = ww_rw(N);
	int fds[2];
	char data[P + 8];

	memset(data, 'x', sizeof(data));
	ck_assert_int_eq(pipe(fds), 0);
	/* Windows' ReadFile: the whole buffer is written at set-up */
	ck_assert_int_eq(pmtrack_winwatch_prepare_io(p, N * P), 0);
	ck_assert_int_eq(write(fds[1], data, 12), 12);
	ck_assert_int_eq(read(fds[0], p, N * P), 12);
	{
		size_t idx[N],
			n = ww_get(WRITE_WATCH_FLAG_RESET, p, p, N * P, N, idx);

		ck_assert_uint_eq(n, N);
	}
	/* without preparing: where the backend lets the kernel write into
	 * armed pages, exactly the pages written count */
	if (t_caps & PMTRACK_CAP_KERNEL_WRITES) {
		ck_assert_int_eq(write(fds[1], data, P + 8), P + 8);
		ck_assert_int_eq(read(fds[0], p + 3 * P - 4, P + 8), P + 8);
		EXPECT(WRITE_WATCH_FLAG_RESET, p, p, N * P, N, 2, 3, 4, END);
	} else {
		ck_assert_int_eq(write(fds[1], data, 8), 8);
		errno = 0;
		ck_assert_int_eq(read(fds[0], p + 5 * P, 8), -1);
		ck_assert_int_eq(errno, EFAULT);
		ck_assert_int_eq(pmtrack_winwatch_prepare_io(p + 5 * P, 8), 0);
		ck_assert_int_eq(read(fds[0], p + 5 * P, 8), 8);
		EXPECT(WRITE_WATCH_FLAG_RESET, p, p, N * P, N, 5, END);
	}
	/* not writable, or not ours: refused, nothing marked */
	{
		DWORD old;

		ck_assert_int_ne(
			VirtualProtect(p + 8 * P, P, PAGE_READONLY, &old), 0);
		ck_assert_int_eq(pmtrack_winwatch_prepare_io(p + 7 * P, 2 * P),
				 -EFAULT);
		ck_assert_int_eq(pmtrack_winwatch_prepare_io(data, 8), -EFAULT);
		/* not watched: nothing to do, but the same checks */
		{
			char *q = VirtualAlloc(NULL, 2 * P,
					       MEM_RESERVE | MEM_COMMIT,
					       PAGE_READWRITE);

			ck_assert_int_eq(pmtrack_winwatch_prepare_io(q, 2 * P),
					 0);
			ck_assert_int_ne(
				VirtualProtect(q + P, P, PAGE_READONLY, &old),
				0);
			ck_assert_int_eq(pmtrack_winwatch_prepare_io(q, 2 * P),
					 -EFAULT);
			ck_assert_int_ne(VirtualFree(q, 0, MEM_RELEASE), 0);
		}
		ck_assert_int_eq(pmtrack_winwatch_prepare_io(p, 0), -EINVAL);
		expect_none(p, N);
	}
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/* ---- concurrency -------------------------------------------------------- */

enum { C_PAGES = 256, C_WRITERS = 3 };

struct conc {
	char *p;
	atomic_bool stop;
	atomic_ulong writes;
	pthread_rwlock_t pause; /* writers: read; a non-atomic reset: write */
};

static void *writer(void *arg)
{
	struct conc *c = arg;
	unsigned int seed = (unsigned int)(uintptr_t)pthread_self();
	unsigned long v = 0;

	while (!atomic_load(&c->stop)) {
		size_t pg = (size_t)rand_r(&seed) % C_PAGES;
		size_t off = ((size_t)rand_r(&seed) % (P / 8)) * 8;

		pthread_rwlock_rdlock(&c->pause);
		/* each store is a new value: a lost one leaves the copy stale
		 */
		atomic_store_explicit(
			(_Atomic unsigned long *)(c->p + pg * P + off),
			++v * 8 + 1, memory_order_relaxed);
		pthread_rwlock_unlock(&c->pause);
		atomic_fetch_add(&c->writes, 1);
	}
	return NULL;
}

/* RESET queries until one comes back short (with writers running, at most
 * 8 of them), copying every page reported */
static void copy_reported(struct conc *c, char *shadow, size_t cap)
{
	size_t idx[C_PAGES], n, calls = 0;

	do {
		n = ww_get(WRITE_WATCH_FLAG_RESET, c->p, c->p, C_PAGES * P, cap,
			   idx);
		for (size_t i = 0; i < n; i++)
			for (size_t o = 0; o < P; o += 8)
				*(unsigned long *)(shadow + idx[i] * P + o) =
					atomic_load_explicit(
						(_Atomic unsigned long
							 *)(c->p + idx[i] * P +
							    o),
						memory_order_relaxed);
	} while (n == cap && (atomic_load(&c->stop) || ++calls < 8));
}

START_TEST(no_write_lost_with_reset)
{
	struct conc c = { .p = ww_rw(C_PAGES) };
	char *shadow = calloc(C_PAGES, P);
	pthread_t th[C_WRITERS];
	const size_t caps[] = { 1, 7, 64, C_PAGES };

	pthread_rwlock_init(&c.pause, NULL);
	for (int i = 0; i < C_WRITERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, writer, &c), 0);
	for (int round = 0; round < 300; round++) {
		unsigned long w = atomic_load(&c.writes);

		copy_reported(&c, shadow, caps[round % 4]);
		while (atomic_load(&c.writes) < w + 50)
			sched_yield();
	}
	atomic_store(&c.stop, true);
	for (int i = 0; i < C_WRITERS; i++)
		pthread_join(th[i], NULL);
	copy_reported(&c, shadow, C_PAGES);
	for (size_t pg = 0; pg < C_PAGES; pg++)
		t_check(!memcmp(shadow + pg * P, c.p + pg * P, P),
			"page %zu changed but was not reported", pg);
	printf("%lu writes, shadow equals memory\n", atomic_load(&c.writes));
	free(shadow);
}
END_TEST

START_TEST(backend_is_the_one_asked)
{
	ck_assert_int_eq(pmtrack_winwatch_backend(), (int)t_backend);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;
	struct sigaction sa = { .sa_sigaction = on_segv,
				.sa_flags = SA_SIGINFO };
	int r;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL))
		return 1;
	r = t_init();
	if (r)
		return r;
	if (t_backend == PMTRACK_BACKEND_SOFT_DIRTY)
		refused = true;
	if (refused) {
		/* the documented refusal is what is asserted here (outside
		 * a Check test: no ck_assert) */
		r = pmtrack_winwatch_backend();
		if (r != -EOPNOTSUPP) {
			fprintf(stderr, "winwatch backend: %d, want %d\n", r,
				-EOPNOTSUPP);
			return 1;
		}
		if (VirtualAlloc(NULL, P, MEM_RESERVE | MEM_WRITE_WATCH,
				 PAGE_READWRITE) ||
		    GetLastError() != ERROR_NOT_SUPPORTED) {
			fprintf(stderr, "soft-dirty was not refused\n");
			return 1;
		}
		printf("soft-dirty refused with ERROR_NOT_SUPPORTED, as "
		       "documented\n");
		return 0;
	}
	s = suite_create("winwatch");
	tc = tcase_create("core");
	tcase_add_test(tc, backend_is_the_one_asked);
	tcase_add_test(tc, alloc_rules);
	tcase_add_test(tc, release);
	tcase_add_test(tc, ascending_absolute_subrange);
	tcase_add_test(tc, truncation_resets_only_returned);
	tcase_add_test(tc, empty_leaves_array);
	tcase_add_test(tc, straddling_write);
	tcase_add_test(tc, protection_is_neutral);
	tcase_add_test(tc, non_writable_pages_fault);
	tcase_add_test(tc, decommit_clears_recommit_clean);
	tcase_add_test(tc, protect_latches_across_decommit);
	tcase_add_test(tc, error_precedence);
	tcase_add_test(tc, last_error_per_thread);
	tcase_add_test(tc, kernel_writes_count);
	tcase_add_test(tc, no_write_lost_with_reset);
	suite_add_tcase(s, tc);
	return t_run(s);
}

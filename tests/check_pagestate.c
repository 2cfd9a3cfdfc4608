// SPDX-License-Identifier: MIT
/*
 * Page-state maps (pagestate.h):
 *   check_pagestate scan|read          states of anon, file, shared memory,
 *                                      markers, fork COW, THP, arguments
 *   check_pagestate scan|read --swap   the same with a real swap file (root;
 *                                      skips with the reason otherwise)
 * "read" forces the /proc/PID/pagemap fallback; "scan" uses PAGEMAP_SCAN
 * (skips where the kernel has none).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pmtrack/pagestate.h>

#include "helpers.h"
#include "../lib/base/uapi_compat.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define NP 16u
#define HPAGE (2u << 20)

static bool read_mode;

/* with no swap area a page not in RAM cannot be in swap */
static bool swap_on(void)
{
	struct sysinfo si;

	return sysinfo(&si) || si.totalswap > 0;
}

static struct pmtrack_pstate *open_ps(int pid, unsigned int flags)
{
	PMTRACK_OPTS(pmtrack_pstate_opts, o, .pid = pid,
		     .flags = flags |
			      (read_mode ? PMTRACK_PSTATE_PAGEMAP_READ : 0));
	struct pmtrack_pstate *p = NULL;

	ck_assert_int_eq(pmtrack_pstate_new(&o, &p), 0);
	ck_assert_int_eq(pmtrack_pstate_uses_scan(p), !read_mode);
	return p;
}

/* states of each page of [b, b + n pages), from runs */
static void states_of(struct pmtrack_pstate *p, const char *b, size_t n,
		      unsigned int want, unsigned int *st)
{
	struct pmtrack_page_run runs[64];
	size_t cnt = 64;
	uint64_t next = 0;

	memset(st, 0, n * sizeof(*st));
	ck_assert_int_eq(pmtrack_pstate_runs(p, (uintptr_t)b,
					     (uintptr_t)b + n * ps, want, runs,
					     &cnt, &next),
			 0);
	ck_assert_uint_eq(next, (uintptr_t)b + n * ps);
	for (size_t i = 0; i < cnt; i++) {
		ck_assert_uint_ge(runs[i].start, (uintptr_t)b);
		ck_assert_uint_le(runs[i].end, (uintptr_t)b + n * ps);
		ck_assert_uint_lt(runs[i].start, runs[i].end);
		ck_assert_uint_ne(runs[i].states, 0);
		ck_assert_uint_eq(runs[i].states & ~want, 0);
		if (i)
			ck_assert_uint_ge(runs[i].start, runs[i - 1].end);
		for (uint64_t a = runs[i].start; a < runs[i].end; a += ps)
			st[(a - (uintptr_t)b) / ps] = runs[i].states;
	}
}

static void expect(const unsigned int *st, size_t from, size_t to,
		   unsigned int set, unsigned int clear, const char *what)
{
	for (size_t i = from; i < to; i++)
		ck_assert_msg((st[i] & (set | clear)) == set,
			      "%s: page %zu has states %#x, want %#x set and "
			      "%#x clear",
			      what, i, st[i], set, clear);
}

static uint64_t raw_entry(const void *a)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &e, 8, (off_t)((uintptr_t)a / ps * 8)), 8);
	close(fd);
	return e;
}

static char *map_shared(bool memfd, int *fdp)
{
	int fd = -1;
	char *b;

	if (memfd) {
		fd = memfd_create("pmtrack-pstate", MFD_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, NP * ps), 0);
	}
	b = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE,
		 MAP_SHARED | (memfd ? 0 : MAP_ANONYMOUS), fd, 0);
	ck_assert_ptr_ne(b, MAP_FAILED);
	if (fdp)
		*fdp = fd;
	else if (fd >= 0)
		close(fd);
	return b;
}

/* cachestat(2) (6.5+): EBADF for a bad descriptor, ENOSYS if missing */
static bool have_cachestat(void)
{
	return syscall(451, -1, NULL, NULL, 0) != -1 || errno != ENOSYS;
}

/* ---- without swap ------------------------------------------------------- */

START_TEST(anon_private)
{
	struct pmtrack_pstate *p = open_ps(0, 0);
	char *b = t_map_anon(NP);
	unsigned int st[NP], known = pmtrack_pstate_known(p);
	volatile char c;

	memset(b, 1, 4 * ps);
	c = b[5 * ps];
	(void)c;
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 4, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE,
	       PMTRACK_PAGE_FILE | PMTRACK_PAGE_SWAPPED | PMTRACK_PAGE_ZERO |
		       PMTRACK_PAGE_UNSURE | PMTRACK_PAGE_WRITTEN,
	       "written anon");
	expect(st, 4, 5, 0, PMTRACK_PAGE_ALL, "untouched");
	expect(st, 6, NP, 0, PMTRACK_PAGE_ALL, "untouched");
	/* a read fault maps the shared zero page, or (some kernels) a fresh
	 * page of our own: the kernel's pagemap entry says which */
	if (raw_entry(b + 5 * ps) & PMT_PM_EXCLUSIVE) {
		expect(st, 5, 6, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE,
		       PMTRACK_PAGE_ZERO, "read-faulted, own page");
	} else {
		expect(st, 5, 6, PMTRACK_PAGE_PRESENT, PMTRACK_PAGE_EXCLUSIVE,
		       "read-faulted, zero page");
		if (known & PMTRACK_PAGE_ZERO)
			expect(st, 5, 6, PMTRACK_PAGE_ZERO, 0, "zero page");
	}
	/* a guard region is not swap */
	if (!madvise(b + 10 * ps, 2 * ps, MADV_GUARD_INSTALL)) {
		ck_assert(pmtrack_pstate_known(p) & PMTRACK_PAGE_GUARD);
		states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
		expect(st, 10, 12, PMTRACK_PAGE_GUARD,
		       PMTRACK_PAGE_ALL & ~PMTRACK_PAGE_GUARD, "guard");
	} else {
		ck_assert_int_eq(errno, EINVAL); /* before Linux 6.13 */
		printf("note: no MADV_GUARD_INSTALL on this kernel\n");
	}
	/* asking for less gives less, and only that */
	states_of(p, b, NP, PMTRACK_PAGE_EXCLUSIVE, st);
	expect(st, 0, 4, PMTRACK_PAGE_EXCLUSIVE, 0, "exclusive only");
	munmap(b, NP * ps);
	pmtrack_pstate_free(p);
}
END_TEST

START_TEST(file_private)
{
	char path[] = "/tmp/pmtrack-pstate-XXXXXX";
	int fd = mkstemp(path);
	struct pmtrack_pstate *p = open_ps(0, 0);
	unsigned int st[NP];
	volatile char c;
	char *b;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, NP * ps), 0);
	b = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne(b, MAP_FAILED);
	c = b[0];
	c = b[ps];
	(void)c;
	b[2 * ps] = 1; /* copy-on-write: now anonymous */
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 2, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_FILE,
	       PMTRACK_PAGE_SWAPPED | PMTRACK_PAGE_UNSURE, "read file page");
	expect(st, 2, 3, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE,
	       PMTRACK_PAGE_FILE, "COW page");
	/* fault-around may have mapped neighbours: as the kernel says */
	for (size_t i = 3; i < NP; i++) {
		if (raw_entry(b + i * ps) & PMT_PM_PRESENT)
			expect(st, i, i + 1,
			       PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_FILE,
			       PMTRACK_PAGE_SWAPPED, "faulted around");
		else
			expect(st, i, i + 1, 0, PMTRACK_PAGE_ALL,
			       "file page not mapped");
	}
	munmap(b, NP * ps);
	close(fd);
	pmtrack_pstate_free(p);
}
END_TEST

/*
 * Shared memory this process has not mapped (zapped, or written through
 * another mapping) has no page-table entry; the object still holds it.
 */
static void shmem_unmapped(bool memfd)
{
	struct pmtrack_pstate *p = open_ps(0, 0), *q;
	unsigned int st[NP];
	int fd;
	char *b = map_shared(memfd, &fd);

	memset(b, 1, 8 * ps);
	ck_assert_int_eq(madvise(b, 4 * ps, MADV_DONTNEED), 0);
	ck_assert_uint_eq(raw_entry(b) & (PMT_PM_PRESENT | PMT_PM_SWAP), 0);
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 8, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_FILE,
	       PMTRACK_PAGE_SWAPPED | PMTRACK_PAGE_UNSURE | PMTRACK_PAGE_ZERO,
	       "shared memory in RAM");
	expect(st, 4, 8, PMTRACK_PAGE_EXCLUSIVE, 0, "mapped by us alone");
	expect(st, 0, 4, 0, PMTRACK_PAGE_EXCLUSIVE, "not mapped here");
	/* a memfd we hold open is found in /proc/self/fd; a shared anonymous
	 * object only through map_files, which needs privilege */
	if (memfd || geteuid() == 0 || !swap_on())
		expect(st, 8, NP, 0, PMTRACK_PAGE_ALL, "never written");
	else
		expect(st, 8, NP, PMTRACK_PAGE_UNSURE | PMTRACK_PAGE_FILE,
		       PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_SWAPPED,
		       "never written, object out of reach");

	/* without the object: residency from mincore on our own memory;
	 * a hole and a swapped page cannot be told apart */
	q = open_ps(0, PMTRACK_PSTATE_NO_OBJECTS);
	states_of(q, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 8, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_FILE,
	       PMTRACK_PAGE_UNSURE, "resident, no object");
	if (swap_on())
		expect(st, 8, NP, PMTRACK_PAGE_UNSURE | PMTRACK_PAGE_FILE,
		       PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_SWAPPED,
		       "hole, no object");
	else
		expect(st, 8, NP, 0, PMTRACK_PAGE_ALL,
		       "hole, no object, no swap");

	/* FILE alone is answered the same way */
	states_of(p, b, NP, PMTRACK_PAGE_FILE, st);
	expect(st, 0, 8, PMTRACK_PAGE_FILE, 0, "FILE only");
	pmtrack_pstate_free(q);
	munmap(b, NP * ps);
	if (fd >= 0)
		close(fd);
	pmtrack_pstate_free(p);
}

START_TEST(shmem_unmapped_anon)
{
	shmem_unmapped(false);
}
END_TEST

START_TEST(shmem_unmapped_memfd)
{
	shmem_unmapped(true);
}
END_TEST

/* uffd-wp markers (armed, never populated) and guard markers read as
 * "swapped" to the kernel's interfaces: never to ours */
static void markers(bool shared)
{
	PMTRACK_OPTS(pmtrack_opts, to, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN);
	struct pmtrack_pstate *p = open_ps(0, 0);
	const struct pmtrack_mapping *maps;
	struct pmtrack *t;
	unsigned int st[NP];
	size_t nmaps;
	bool guard;
	int fd = -1;
	char *b = shared ? map_shared(true, &fd) : t_map_anon(NP);

	ck_assert_int_eq(pmtrack_new(&to, &t), 0);
	b[0] = 1;
	ck_assert_int_eq(pmtrack_watch(t, b, NP * ps), 0);
	b[ps] = 1;
	if (!read_mode && !shared) /* the kernel's view: markers */
		ck_assert_uint_ge(t_scan_count(b, NP * ps, PAGE_IS_SWAPPED),
				  NP - 2);
	ck_assert_uint_ne(raw_entry(b + 8 * ps) & PMT_PM_SWAP, 0);
	guard = !shared && !madvise(b + 12 * ps, ps, MADV_GUARD_INSTALL);
	if (!guard)
		printf("note: MADV_GUARD_INSTALL not available here\n");
	ck_assert_int_eq(pmtrack_pstate_maps(p, &maps, &nmaps), 0);
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 2, PMTRACK_PAGE_PRESENT, PMTRACK_PAGE_SWAPPED, "written");
	for (size_t i = 2; i < NP; i++)
		ck_assert_msg(!(st[i] & PMTRACK_PAGE_SWAPPED),
			      "marker on page %zu reported as swap (%#x)", i,
			      st[i]);
	if (!read_mode) {
		/* the kernel tracks this mapping: written pages say so */
		expect(st, 1, 2, PMTRACK_PAGE_WRITTEN, 0, "written since");
		expect(st, 0, 1, 0, PMTRACK_PAGE_WRITTEN, "clean since");
		for (size_t i = 0; i < nmaps; i++)
			if (maps[i].start <= (uintptr_t)b &&
			    (uintptr_t)b < maps[i].end)
				ck_assert(maps[i].flags & PMTRACK_MAP_TRACKED);
	}
	if (guard && pmtrack_pstate_known(p) & PMTRACK_PAGE_GUARD)
		expect(st, 12, 13, PMTRACK_PAGE_GUARD, PMTRACK_PAGE_SWAPPED,
		       "guard");
	/* an unprivileged reader cannot tell a marker from swap: unsure, but
	 * still not swapped; a privileged one sees the marker's type */
	if (geteuid() == 0 || shared) {
		expect(st, 2, 12, 0, PMTRACK_PAGE_ALL, "armed, unpopulated");
		expect(st, 13, NP, 0, PMTRACK_PAGE_ALL, "armed, unpopulated");
	} else
		expect(st, 2, 12, PMTRACK_PAGE_UNSURE, PMTRACK_PAGE_SWAPPED,
		       "armed, unpopulated (unprivileged)");
	pmtrack_free(t);
	munmap(b, NP * ps);
	if (fd >= 0)
		close(fd);
	pmtrack_pstate_free(p);
}

START_TEST(markers_anon)
{
	markers(false);
}
END_TEST

START_TEST(markers_memfd)
{
	markers(true);
}
END_TEST

/* copy-on-write after fork: shared until one side writes */
START_TEST(fork_cow)
{
	struct pmtrack_pstate *p = open_ps(0, 0), *q;
	int go[2], ready[2];
	unsigned int st[NP];
	char *b = t_map_anon(NP), x;
	pid_t child;

	memset(b, 7, 8 * ps);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(ready), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (!child) {
		b[5 * ps] = 9; /* the child's own copy */
		if (write(ready[1], "r", 1) != 1 || read(go[0], &x, 1) != 1)
			_exit(1);
		_exit(0);
	}
	ck_assert_int_eq(read(ready[0], &x, 1), 1);
	b[3 * ps] = 8; /* ours */
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 3, PMTRACK_PAGE_PRESENT, PMTRACK_PAGE_EXCLUSIVE,
	       "shared COW");
	expect(st, 3, 4, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE, 0,
	       "copied by the parent");
	/* page 5: the child took a copy, so ours is ours alone again */
	expect(st, 5, 6, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE, 0,
	       "left to the parent");
	expect(st, 6, 8, PMTRACK_PAGE_PRESENT, PMTRACK_PAGE_EXCLUSIVE,
	       "shared COW");

	/* and the child, seen from here */
	q = open_ps(child, 0);
	states_of(q, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 3, PMTRACK_PAGE_PRESENT, PMTRACK_PAGE_EXCLUSIVE,
	       "child: shared COW");
	expect(st, 3, 4, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE, 0,
	       "child: left to the child");
	expect(st, 5, 6, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE, 0,
	       "child: copied by the child");
	expect(st, 8, NP, 0, PMTRACK_PAGE_ALL, "child: untouched");
	pmtrack_pstate_free(q);

	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(waitpid(child, NULL, 0), child);
	q = NULL;
	{
		PMTRACK_OPTS(pmtrack_pstate_opts, o, .pid = child);

		ck_assert_int_eq(pmtrack_pstate_new(&o, &q), -ESRCH);
	}
	close(go[0]), close(go[1]), close(ready[0]), close(ready[1]);
	munmap(b, NP * ps);
	pmtrack_pstate_free(p);
}
END_TEST

START_TEST(thp)
{
	struct pmtrack_pstate *p = open_ps(0, 0);
	size_t n = 2 * HPAGE / ps, huge;
	char *raw = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b = (char *)(((uintptr_t)raw + HPAGE - 1) &
			   ~(uintptr_t)(HPAGE - 1));

	ck_assert_ptr_ne(raw, MAP_FAILED);
	ck_assert_int_eq(madvise(b, 2 * HPAGE, MADV_HUGEPAGE), 0);
	memset(b, 1, 2 * HPAGE);
	huge = t_scan_count(b, 2 * HPAGE, PAGE_IS_HUGE);
	printf("thp: the kernel maps %zu of %zu pages huge\n", huge, n);
	{
		struct pmtrack_page_run runs[64];
		size_t cnt = 64, got = 0;

		ck_assert_int_eq(pmtrack_pstate_runs(p, (uintptr_t)b,
						     (uintptr_t)b + 2 * HPAGE,
						     PMTRACK_PAGE_ALL, runs,
						     &cnt, NULL),
				 0);
		for (size_t i = 0; i < cnt; i++) {
			ck_assert(runs[i].states & PMTRACK_PAGE_PRESENT);
			if (runs[i].states & PMTRACK_PAGE_HUGE)
				got += (runs[i].end - runs[i].start) / ps;
		}
		/* the fallback cannot see THP: it never claims HUGE */
		ck_assert_uint_eq(
			got,
			pmtrack_pstate_known(p) & PMTRACK_PAGE_HUGE ? huge : 0);
	}
	munmap(raw, 3 * HPAGE);
	pmtrack_pstate_free(p);
}
END_TEST

/* runs, bitmaps and counts say the same; small arrays resume with next */
START_TEST(outputs_agree)
{
	struct pmtrack_pstate *p = open_ps(0, 0);
	char *b = t_map_anon(4 * NP);
	uint64_t *bits[PMTRACK_PAGE_NSTATES] = { 0 };
	PMTRACK_OPTS(pmtrack_page_counts, cnt);
	struct pmtrack_page_run small[3], all[128];
	size_t nall = 128, total = 0, words = (4 * NP + 63) / 64;
	uint64_t cur = (uintptr_t)b, end = (uintptr_t)b + 4 * NP * ps;
	unsigned int want = PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE |
			    PMTRACK_PAGE_FILE | PMTRACK_PAGE_SWAPPED;

	for (size_t i = 0; i < 4 * NP; i += 1 + i % 3)
		b[i * ps] = 1;
	ck_assert_int_eq(
		pmtrack_pstate_runs(p, cur, end, want, all, &nall, NULL), 0);
	while (cur < end) {
		size_t n = 3;

		ck_assert_int_eq(
			pmtrack_pstate_runs(p, cur, end, want, small, &n, &cur),
			0);
		for (size_t i = 0; i < n; i++, total++) {
			ck_assert_uint_lt(total, nall);
			ck_assert_uint_eq(small[i].start, all[total].start);
			ck_assert_uint_eq(small[i].end, all[total].end);
			ck_assert_uint_eq(small[i].states, all[total].states);
		}
	}
	ck_assert_uint_eq(total, nall);
	for (int i = 0; i < PMTRACK_PAGE_NSTATES; i++)
		bits[i] = calloc(words, 8);
	ck_assert_int_eq(
		pmtrack_pstate_bitmaps(p, (uintptr_t)b, end, want, bits), 0);
	ck_assert_int_eq(pmtrack_pstate_count(p, (uintptr_t)b, end, want, &cnt),
			 0);
	ck_assert_uint_eq(cnt.pages, 4 * NP);
	for (unsigned int s = 0; s < PMTRACK_PAGE_NSTATES; s++) {
		size_t from_runs = 0, from_bits = 0;

		for (size_t i = 0; i < nall; i++)
			if (all[i].states & (1u << s))
				from_runs += (all[i].end - all[i].start) / ps;
		for (size_t w = 0; w < words; w++)
			from_bits += (size_t)__builtin_popcountll(bits[s][w]);
		ck_assert_uint_eq(from_runs, from_bits);
		ck_assert_uint_eq(from_runs, cnt.state[s]);
		if (!(want & (1u << s)))
			ck_assert_uint_eq(from_runs, 0);
		free(bits[s]);
	}
	munmap(b, 4 * NP * ps);
	pmtrack_pstate_free(p);
}
END_TEST

/* the whole address space: every mapping we know of is in the table */
START_TEST(whole_space)
{
	struct pmtrack_pstate *p = open_ps(0, 0);
	const struct pmtrack_mapping *maps;
	PMTRACK_OPTS(pmtrack_page_counts, cnt);
	size_t n, stack = 0, heap = 0, ours = 0;
	char *b = map_shared(true, NULL);

	memset(b, 1, NP * ps);
	ck_assert_int_eq(pmtrack_pstate_maps(p, &maps, &n), 0);
	ck_assert_uint_gt(n, 3);
	for (size_t i = 0; i < n; i++) {
		if (i)
			ck_assert_uint_ge(maps[i].start, maps[i - 1].end);
		stack += !strcmp(maps[i].name, "[stack]");
		heap += !strcmp(maps[i].name, "[heap]");
		if (maps[i].start == (uintptr_t)b) {
			ours++;
			ck_assert(!strncmp(maps[i].name,
					   "/memfd:pmtrack-pstate", 21));
			ck_assert_uint_eq(maps[i].flags & (PMTRACK_MAP_SHARED |
							   PMTRACK_MAP_SHMEM),
					  PMTRACK_MAP_SHARED |
						  PMTRACK_MAP_SHMEM);
			ck_assert_uint_eq(maps[i].prot, PROT_READ | PROT_WRITE);
		}
	}
	ck_assert_uint_eq(stack, 1);
	ck_assert_uint_eq(ours, 1);
	(void)heap;
	/* reading pagemap costs 8 bytes per mapped page, populated or not:
	 * the sanitizers' terabytes of reserved shadow would take minutes,
	 * so the fallback is asked mapping by mapping, without those */
	if (read_mode) {
		for (size_t i = 0; i < n; i++) {
			PMTRACK_OPTS(pmtrack_page_counts, one);

			if (maps[i].end - maps[i].start > (1ULL << 40))
				continue;
			ck_assert_int_eq(pmtrack_pstate_count(
						 p, maps[i].start, maps[i].end,
						 PMTRACK_PAGE_ALL, &one),
					 0);
			cnt.pages += one.pages;
			for (int k = 0; k < PMTRACK_PAGE_NSTATES; k++)
				cnt.state[k] += one.state[k];
		}
	} else {
		ck_assert_int_eq(pmtrack_pstate_count(p, 0, UINT64_MAX,
						      PMTRACK_PAGE_ALL, &cnt),
				 0);
	}
	ck_assert_uint_ge(cnt.state[0], NP);
	ck_assert_uint_ge(cnt.pages, cnt.state[0]);
	munmap(b, NP * ps);
	pmtrack_pstate_free(p);
}
END_TEST

/* an object whose size is not a page multiple: its last page counts */
START_TEST(memfd_partial_page)
{
	struct pmtrack_pstate *p = open_ps(0, 0);
	int fd = memfd_create("pmtrack-partial", MFD_CLOEXEC);
	unsigned int st[2];
	char data[5000];
	char *b;

	ck_assert_int_ge(fd, 0);
	memset(data, 7, sizeof(data));
	ck_assert_int_eq(pwrite(fd, data, sizeof(data), 0), sizeof(data));
	b = mmap(NULL, 2 * ps, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(b, MAP_FAILED);
	states_of(p, b, 2, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 2, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_FILE,
	       PMTRACK_PAGE_UNSURE | PMTRACK_PAGE_SWAPPED, "written by pwrite");
	munmap(b, 2 * ps);
	close(fd);
	pmtrack_pstate_free(p);
}
END_TEST

/* what memfd_gaps() leaves in each page */
enum gap_page { GP_HOLE, GP_MAPPED, GP_ZAPPED, GP_FALLOC };

/*
 * A memfd of @np pages in many runs of 1 to 9 pages, each written (mapped),
 * written and zapped (in the memfd only), allocated by fallocate(2) and
 * never written, or a hole, in turn; then the count of the whole mapping
 * and of a part of it, the runs and the bitmaps must all say so, page by
 * page (a count asks cachestat(2) once per gap; runs and bitmaps walk the
 * gaps that are neither all hole nor all data).
 */
static void memfd_gaps(size_t np)
{
	struct pmtrack_pstate *p = open_ps(0, 0);
	unsigned int want = PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_SWAPPED |
			    PMTRACK_PAGE_FILE | PMTRACK_PAGE_UNSURE |
			    PMTRACK_PAGE_EXCLUSIVE;
	int fd = memfd_create("pmtrack-gaps", MFD_CLOEXEC);
	unsigned char *kind = calloc(np, 1);
	uint64_t *bits[PMTRACK_PAGE_NSTATES] = { 0 };
	size_t words = (np + 63) / 64, nruns = 0, cap = np;
	struct pmtrack_page_run *runs = calloc(cap, sizeof(*runs));
	uint64_t expect_present = 0, part_present = 0, b0, b1;
	bool falloc = have_cachestat();
	char *b;

	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_nonnull(kind);
	ck_assert_ptr_nonnull(runs);
	ck_assert_int_eq(ftruncate(fd, (off_t)(np * ps)), 0);
	b = mmap(NULL, np * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(b, MAP_FAILED);
	for (size_t i = 0, r = 0; i < np; r++) {
		size_t n = 1 + (r * 7 + i) % 9;
		enum gap_page k = (enum gap_page)(r % 4);

		if (n > np - i)
			n = np - i;
		/* before 6.5 fallocated pages are holes: none then */
		if (k == GP_FALLOC && !falloc)
			k = GP_HOLE;
		if (k == GP_MAPPED || k == GP_ZAPPED)
			memset(b + i * ps, 1, n * ps);
		if (k == GP_ZAPPED)
			ck_assert_int_eq(
				madvise(b + i * ps, n * ps, MADV_DONTNEED), 0);
		if (k == GP_FALLOC)
			ck_assert_int_eq(fallocate(fd, 0, (off_t)(i * ps),
						   (off_t)(n * ps)),
					 0);
		memset(kind + i, k, n);
		expect_present += k != GP_HOLE ? n : 0;
		i += n;
	}
	/* the whole mapping, counted */
	{
		PMTRACK_OPTS(pmtrack_page_counts, cnt);

		ck_assert_int_eq(pmtrack_pstate_count(p, (uintptr_t)b,
						      (uintptr_t)b + np * ps,
						      want, &cnt),
				 0);
		ck_assert_uint_eq(cnt.pages, np);
		ck_assert_uint_eq(cnt.state[0], expect_present);
		ck_assert_uint_eq(cnt.state[2], expect_present);
		ck_assert_uint_eq(cnt.state[1], 0);
		ck_assert_uint_eq(cnt.state[7], 0);
	}
	/* a part of it, from mid-run to mid-run */
	b0 = np / 3 + 1;
	b1 = np - np / 4 - 1;
	for (size_t i = b0; i < b1; i++)
		part_present += kind[i] != GP_HOLE;
	{
		PMTRACK_OPTS(pmtrack_page_counts, cnt);

		ck_assert_int_eq(pmtrack_pstate_count(p, (uintptr_t)b + b0 * ps,
						      (uintptr_t)b + b1 * ps,
						      want, &cnt),
				 0);
		ck_assert_uint_eq(cnt.pages, b1 - b0);
		ck_assert_uint_eq(cnt.state[0], part_present);
	}
	/* runs, page by page */
	ck_assert_int_eq(pmtrack_pstate_runs(p, (uintptr_t)b,
					     (uintptr_t)b + np * ps, want, runs,
					     &nruns, NULL),
			 -EINVAL); /* nruns 0 */
	nruns = cap;
	ck_assert_int_eq(pmtrack_pstate_runs(p, (uintptr_t)b,
					     (uintptr_t)b + np * ps, want, runs,
					     &nruns, NULL),
			 0);
	for (size_t i = 0, r = 0; i < np; i++) {
		uintptr_t a = (uintptr_t)b + i * ps;
		unsigned int st = 0;

		while (r < nruns && runs[r].end <= a)
			r++;
		if (r < nruns && runs[r].start <= a)
			st = runs[r].states;
		switch (kind[i]) {
		case GP_MAPPED:
			ck_assert_msg(st == (PMTRACK_PAGE_PRESENT |
					     PMTRACK_PAGE_FILE |
					     PMTRACK_PAGE_EXCLUSIVE),
				      "mapped page %zu: %#x", i, st);
			break;
		case GP_ZAPPED:
		case GP_FALLOC:
			ck_assert_msg(st == (PMTRACK_PAGE_PRESENT |
					     PMTRACK_PAGE_FILE),
				      "page %zu (%s) in the memfd only: %#x", i,
				      kind[i] == GP_ZAPPED ? "zapped"
							   : "fallocated",
				      st);
			break;
		default:
			ck_assert_msg(st == 0, "hole page %zu: %#x", i, st);
		}
	}
	/* and the bitmaps */
	for (int i = 0; i < PMTRACK_PAGE_NSTATES; i++)
		bits[i] = calloc(words, 8);
	ck_assert_int_eq(pmtrack_pstate_bitmaps(p, (uintptr_t)b,
						(uintptr_t)b + np * ps, want,
						bits),
			 0);
	for (size_t i = 0; i < np; i++)
		ck_assert_uint_eq((bits[0][i / 64] >> (i % 64)) & 1,
				  kind[i] != GP_HOLE);
	for (int i = 0; i < PMTRACK_PAGE_NSTATES; i++)
		free(bits[i]);
	free(runs);
	free(kind);
	munmap(b, np * ps);
	close(fd);
	pmtrack_pstate_free(p);
}

START_TEST(memfd_many_gaps)
{
	memfd_gaps(1000);
}
END_TEST

START_TEST(memfd_many_gaps_whole)
{
	memfd_gaps(2 * (HPAGE / ps));
}
END_TEST

/* a tmpfs file, unlinked: still shared memory, still looked up */
START_TEST(tmpfs_unlinked)
{
	struct pmtrack_pstate *p = open_ps(0, 0);
	const struct pmtrack_mapping *maps;
	char path[] = "/dev/shm/pmtrack-pstate-XXXXXX";
	struct statfs sfs;
	unsigned int st[NP];
	size_t n, found = 0;
	int fd;
	char *b;

	if (statfs("/dev/shm", &sfs) || sfs.f_type != 0x01021994) {
		printf("note: /dev/shm is not tmpfs here; unlinked tmpfs file "
		       "not checked\n");
		pmtrack_pstate_free(p);
		return;
	}
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(ftruncate(fd, NP * ps), 0);
	b = mmap(NULL, NP * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(b, MAP_FAILED);
	memset(b, 1, 4 * ps);
	ck_assert_int_eq(madvise(b, 4 * ps, MADV_DONTNEED), 0);
	ck_assert_int_eq(pmtrack_pstate_maps(p, &maps, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (maps[i].start == (uintptr_t)b) {
			ck_assert(maps[i].flags & PMTRACK_MAP_SHMEM);
			ck_assert_ptr_nonnull(
				strstr(maps[i].name, "(deleted)"));
			found++;
		}
	ck_assert_uint_eq(found, 1);
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, 4, PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_FILE,
	       PMTRACK_PAGE_UNSURE, "unlinked tmpfs, dropped");
	expect(st, 4, NP, 0, PMTRACK_PAGE_ALL, "unlinked tmpfs, hole");
	munmap(b, NP * ps);
	close(fd);
	pmtrack_pstate_free(p);
}
END_TEST

/* the flags of the mapping starting at @b after a count over it asking
 * for @want (the table read afresh first) */
static unsigned int flags_after_count(struct pmtrack_pstate *p, const char *b,
				      unsigned int want)
{
	struct pmtrack_page_counts c = { .sz = sizeof(c) };
	const struct pmtrack_mapping *maps;
	size_t n;

	ck_assert_int_eq(pmtrack_pstate_maps(p, &maps, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (maps[i].start != (uintptr_t)b)
			continue;
		ck_assert_int_eq(pmtrack_pstate_count(p, maps[i].start,
						      maps[i].end, want, &c),
				 0);
		return maps[i].flags;
	}
	ck_abort_msg("no mapping starts at %p", (const void *)b);
	return 0;
}

/* is the mapping at @b marked MAPPED_ELSEWHERE after a count asking @want? */
static bool elsewhere(struct pmtrack_pstate *p, const char *b,
		      unsigned int want)
{
	return flags_after_count(p, b, want) & PMTRACK_MAP_MAPPED_ELSEWHERE;
}

/* PMTRACK_MAP_MAPPED_ELSEWHERE: set where a page mapped here is mapped by
 * another process or another mapping too, and only there */
START_TEST(mapped_elsewhere)
{
	struct pmtrack_pstate *p = open_ps(0, 0), *q;
	char *priv = t_map_anon(NP), *sh = map_shared(false, NULL);
	char *a, *b2, x;
	int fd, go[2], ready[2];
	pid_t child;

	memset(priv, 1, NP * ps);
	memset(sh, 1, NP * ps);
	ck_assert(!elsewhere(p, priv, PMTRACK_PAGE_ALL));
	ck_assert(!elsewhere(p, sh, PMTRACK_PAGE_ALL));

	/* a memfd mapped twice here: page 2 through both; pages the first
	 * mapping dropped (still in the memfd) are no one's */
	a = map_shared(true, &fd);
	memset(a, 1, NP * ps);
	ck_assert_int_eq(madvise(a + 8 * ps, 8 * ps, MADV_DONTNEED), 0);
	ck_assert(!elsewhere(p, a, PMTRACK_PAGE_ALL));
	b2 = mmap(NULL, NP * ps, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(b2, MAP_FAILED);
	x = *(volatile char *)(b2 + 2 * ps);
	(void)x;
	ck_assert(elsewhere(p, a, PMTRACK_PAGE_ALL));
	ck_assert(elsewhere(p, b2,
			    PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_EXCLUSIVE));
	/* only a scan asking for EXCLUSIVE looks */
	ck_assert(!elsewhere(p, a, PMTRACK_PAGE_PRESENT));
	munmap(b2, NP * ps);

	/* a child maps pages of the shared anonymous mapping; the private
	 * one is not shared (the child takes its own copy first) */
	ck_assert_int_eq(madvise(priv, NP * ps, MADV_DONTFORK), 0);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(ready), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (!child) {
		x = *(volatile char *)(sh + 3 * ps);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &x, 1) != 1)
			_exit(1);
		_exit(0);
	}
	ck_assert_int_eq(read(ready[0], &x, 1), 1);
	ck_assert(elsewhere(p, sh, PMTRACK_PAGE_ALL));
	ck_assert(!elsewhere(p, priv, PMTRACK_PAGE_ALL));
	/* and seen from outside, in the child */
	q = open_ps(child, 0);
	ck_assert(elsewhere(q, sh, PMTRACK_PAGE_ALL));
	pmtrack_pstate_free(q);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(waitpid(child, NULL, 0), child);
	ck_assert(!elsewhere(p, sh, PMTRACK_PAGE_ALL));
	close(go[0]), close(go[1]), close(ready[0]), close(ready[1]);
	munmap(a, NP * ps);
	close(fd);
	munmap(sh, NP * ps);
	munmap(priv, NP * ps);
	pmtrack_pstate_free(p);
}
END_TEST

/* a task with no memory to show gives -ESRCH, on kernels that open its
 * pagemap (6.1) as on those that do not: a zombie, a kernel thread */
START_TEST(no_memory)
{
	PMTRACK_OPTS(pmtrack_pstate_opts, o);
	struct pmtrack_pstate *q = NULL;
	unsigned long flags = 0;
	char buf[512], *p = NULL;
	siginfo_t si;
	FILE *f;
	int r;
	pid_t z = fork();

	ck_assert_int_ge(z, 0);
	if (z == 0)
		_exit(0);
	ck_assert_int_eq(waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT), 0);
	o.pid = z;
	r = pmtrack_pstate_new(&o, &q);
	/* unprivileged, the kernel refuses the open (EACCES) instead */
	ck_assert_msg(r == -ESRCH ||
			      (geteuid() && (r == -EACCES || r == -EPERM)),
		      "zombie: %s", strerror(-r));
	ck_assert_ptr_null(q);
	ck_assert_int_eq(waitpid(z, NULL, 0), z);

	/* PID 2 is kthreadd where PF_KTHREAD says so */
	f = fopen("/proc/2/stat", "r");
	if (f && fgets(buf, sizeof(buf), f))
		p = strrchr(buf, ')');
	if (f)
		fclose(f);
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1 ||
	    !(flags & 0x00200000)) {
		printf("note: PID 2 is not a kernel thread here: not "
		       "checked\n");
		return;
	}
	o.pid = 2;
	r = pmtrack_pstate_new(&o, &q);
	ck_assert_msg(r == -ESRCH ||
			      (geteuid() && (r == -EACCES || r == -EPERM)),
		      "kernel thread: %s", strerror(-r));
}
END_TEST

START_TEST(bad_args)
{
	struct pmtrack_pstate *p = open_ps(0, 0);
	struct pmtrack_page_run r[2];
	uint64_t *bits[PMTRACK_PAGE_NSTATES] = { 0 };
	size_t n = 2;
	struct {
		struct pmtrack_pstate_opts o;
		uint64_t extra;
	} big = { .o.sz = sizeof(big), .extra = 1 };
	struct pmtrack_pstate *q = NULL;

	ck_assert_int_eq(pmtrack_pstate_new(&big.o, &q), -EINVAL);
	big.extra = 0;
	ck_assert_int_eq(pmtrack_pstate_new(&big.o, &q), 0);
	pmtrack_pstate_free(q);
	{
		PMTRACK_OPTS(pmtrack_pstate_opts, o, .flags = 1u << 20);

		ck_assert_int_eq(pmtrack_pstate_new(&o, &q), -EINVAL);
	}
	{
		PMTRACK_OPTS(pmtrack_pstate_opts, o, .pid = 0x3fffffff);

		ck_assert_int_eq(pmtrack_pstate_new(&o, &q), -ESRCH);
	}
	ck_assert_int_eq(pmtrack_pstate_new(NULL, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_pstate_runs(p, 1, 2 * ps, 1, r, &n, NULL),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_pstate_runs(p, 2 * ps, ps, 1, r, &n, NULL),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_pstate_runs(p, 0, ps, 1u << 30, r, &n, NULL),
			 -EINVAL);
	n = 0;
	ck_assert_int_eq(pmtrack_pstate_runs(p, 0, ps, 1, r, &n, NULL),
			 -EINVAL);
	ck_assert_int_eq(
		pmtrack_pstate_bitmaps(p, 0, ps, PMTRACK_PAGE_PRESENT, bits),
		-EINVAL);
	ck_assert_int_eq(pmtrack_pstate_runs(NULL, 0, ps, 1, r, &n, NULL),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_pstate_count(p, 0, ps, 1, NULL), -EINVAL);
	ck_assert_uint_eq(pmtrack_pstate_known(NULL), 0);
	pmtrack_pstate_free(NULL);
	pmtrack_pstate_free(p);
}
END_TEST

/* ---- with swap ---------------------------------------------------------- */

static void swapped_out(int kind)
{
	static const char *const names[] = { "anon", "shared-anon", "memfd" };
	struct pmtrack_pstate *p = open_ps(0, 0);
	unsigned int st[NP];
	char *b = kind == 0 ? t_map_anon(NP) : map_shared(kind == 2, NULL);
	long sw;

	memset(b, 3, NP * ps);
	sw = t_pageout(b, 8 * ps, 8);
	printf("%s: %ld pages in swap (smaps); pagemap entry of page 0: "
	       "%#llx\n",
	       names[kind], sw, (unsigned long long)raw_entry(b));
	ck_assert_int_eq(sw, 8);
	if (kind) /* the hole this API fills */
		ck_assert_uint_eq(raw_entry(b) & (PMT_PM_PRESENT | PMT_PM_SWAP),
				  0);
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	if (kind && !have_cachestat()) {
		/* before 6.5 a shared page written to swap but still in the
		 * swap cache is resident to mincore, and nothing tells it
		 * from the page cache: PRESENT (documented), once evicted
		 * SWAPPED; never UNSURE, never both */
		for (size_t i = 0; i < 8; i++) {
			unsigned int m = st[i] & (PMTRACK_PAGE_PRESENT |
						  PMTRACK_PAGE_SWAPPED |
						  PMTRACK_PAGE_UNSURE);

			t_check(m == PMTRACK_PAGE_PRESENT ||
					m == PMTRACK_PAGE_SWAPPED,
				"%s: page %zu has states %#x", names[kind], i,
				st[i]);
		}
	} else {
		expect(st, 0, 8, PMTRACK_PAGE_SWAPPED,
		       PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_UNSURE |
			       PMTRACK_PAGE_EXCLUSIVE,
		       names[kind]);
	}
	expect(st, 8, NP, PMTRACK_PAGE_PRESENT,
	       PMTRACK_PAGE_SWAPPED | PMTRACK_PAGE_UNSURE, names[kind]);
	expect(st, 0, NP, kind ? PMTRACK_PAGE_FILE : 0,
	       kind ? 0 : PMTRACK_PAGE_FILE, names[kind]);

	/* swapped in again by a read: present */
	for (size_t i = 0; i < 8; i++)
		ck_assert_int_eq(b[i * ps], 3);
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	expect(st, 0, NP, PMTRACK_PAGE_PRESENT,
	       PMTRACK_PAGE_SWAPPED | PMTRACK_PAGE_UNSURE, "swapped in");
	munmap(b, NP * ps);
	pmtrack_pstate_free(p);
}

START_TEST(swap_anon)
{
	swapped_out(0);
}
END_TEST

START_TEST(swap_shared_anon)
{
	swapped_out(1);
}
END_TEST

START_TEST(swap_memfd)
{
	swapped_out(2);
}
END_TEST

/* write-protected pages in swap next to uffd-wp markers: only the first
 * are swap */
static void swap_and_markers(bool shared)
{
	PMTRACK_OPTS(pmtrack_opts, to, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN);
	struct pmtrack_pstate *p = open_ps(0, 0);
	struct pmtrack *t;
	unsigned int st[NP];
	char *b = shared ? map_shared(true, NULL) : t_map_anon(NP);

	memset(b, 5, 8 * ps);
	ck_assert_int_eq(pmtrack_new(&to, &t), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, NP * ps), 0);
	ck_assert_int_eq(t_pageout(b, 4 * ps, 4), 4);
	states_of(p, b, NP, PMTRACK_PAGE_ALL, st);
	if (geteuid() == 0 || shared) {
		expect(st, 0, 4, PMTRACK_PAGE_SWAPPED,
		       PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_UNSURE |
			       PMTRACK_PAGE_WRITTEN,
		       "protected, in swap");
		expect(st, 8, NP, 0, PMTRACK_PAGE_ALL, "markers");
	} else {
		expect(st, 0, 4, PMTRACK_PAGE_UNSURE, PMTRACK_PAGE_SWAPPED,
		       "protected, in swap (unprivileged)");
	}
	expect(st, 4, 8, PMTRACK_PAGE_PRESENT, PMTRACK_PAGE_SWAPPED, "in RAM");
	pmtrack_free(t);
	munmap(b, NP * ps);
	pmtrack_pstate_free(p);
}

START_TEST(swap_markers_anon)
{
	swap_and_markers(false);
}
END_TEST

START_TEST(swap_markers_memfd)
{
	swap_and_markers(true);
}
END_TEST

int main(int argc, char **argv)
{
	bool swap = argc == 3 && !strcmp(argv[2], "--swap");
	bool async = false;
	Suite *s;
	TCase *tc;
	int r;

	if (argc < 2 || argc > 3 || (argc == 3 && !swap) ||
	    (strcmp(argv[1], "scan") && strcmp(argv[1], "read"))) {
		fprintf(stderr, "usage: %s scan|read [--swap]\n", argv[0]);
		return 2;
	}
	ps = (size_t)sysconf(_SC_PAGESIZE);
	read_mode = !strcmp(argv[1], "read");
	if (!read_mode) {
		r = pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL);
		if (r != 1) {
			printf("SKIP: no PAGEMAP_SCAN on this kernel (%d)\n",
			       r);
			return r == 0 ? T_SKIP : 1;
		}
	}
	r = pmtrack_probe(PMTRACK_FEAT_UFFD_WP_ASYNC, NULL);
	if (r < 0)
		return 1;
	async = r == 1;
	if (!async)
		printf("note: no async uffd-wp here: marker cases not run\n");

	s = suite_create("pagestate");
	tc = tcase_create(argv[1]);
	tcase_set_timeout(tc, 120);
	if (swap) {
		r = t_swap_on(64);
		if (r)
			return r;
		tcase_add_test(tc, swap_anon);
		tcase_add_test(tc, swap_shared_anon);
		tcase_add_test(tc, swap_memfd);
		if (async) {
			tcase_add_test(tc, swap_markers_anon);
			tcase_add_test(tc, swap_markers_memfd);
		}
	} else {
		tcase_add_test(tc, anon_private);
		tcase_add_test(tc, file_private);
		tcase_add_test(tc, shmem_unmapped_anon);
		tcase_add_test(tc, shmem_unmapped_memfd);
		tcase_add_test(tc, fork_cow);
		tcase_add_test(tc, thp);
		tcase_add_test(tc, outputs_agree);
		tcase_add_test(tc, whole_space);
		tcase_add_test(tc, bad_args);
		tcase_add_test(tc, memfd_partial_page);
		tcase_add_test(tc, memfd_many_gaps);
		tcase_add_test(tc, memfd_many_gaps_whole);
		tcase_add_test(tc, tmpfs_unlinked);
		tcase_add_test(tc, mapped_elsewhere);
		tcase_add_test(tc, no_memory);
		if (async) {
			tcase_add_test(tc, markers_anon);
			tcase_add_test(tc, markers_memfd);
		}
	}
	suite_add_tcase(s, tc);
	r = t_run(s);
	t_swap_off();
	return r;
}

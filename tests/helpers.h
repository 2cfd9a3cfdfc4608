/* SPDX-License-Identifier: MIT */
/* Shared helpers for the Check test programs. */
#ifndef PMTRACK_TEST_HELPERS_H
#define PMTRACK_TEST_HELPERS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pmtrack/pmtrack.h>

#define T_SKIP 77

/*
 * Assert in a hot loop: Check's ck_assert* report every passing check to the
 * parent process through a pipe, which costs a syscall each.  This only
 * calls into Check when the condition fails.
 */
#define t_check(cond, ...)                                                     \
	do {                                                                   \
		if (!(cond))                                                   \
			ck_abort_msg(__VA_ARGS__);                             \
	} while (0)

/* pointer ordering asserts (Check has only eq/ne for pointers) */
#define t_assert_ptr_ge(a, b) ck_assert_uint_ge((uintptr_t)(a), (uintptr_t)(b))
#define t_assert_ptr_gt(a, b) ck_assert_uint_gt((uintptr_t)(a), (uintptr_t)(b))
#define t_assert_ptr_le(a, b) ck_assert_uint_le((uintptr_t)(a), (uintptr_t)(b))

extern size_t ps; /* page size, set by t_init() */
/* the backend under test (PMTRACK_BACKEND, else the automatic choice) and
 * its capabilities, set by t_init() */
extern enum pmtrack_backend t_backend;
extern unsigned int t_caps;
/* the re-arm mode t_new() asks for: PMTRACK_TEST_REARM=written|range|auto
 * (CTest's <test>/pagemap-scan-written and -range), else AUTO */
extern enum pmtrack_rearm t_rearm;

/*
 * Set up and decide whether the tracker can run here.  Every test program
 * runs on the backend PMTRACK_BACKEND names (CTest runs each once per
 * backend).  Returns 0 to go on, T_SKIP (after printing why) if that
 * backend cannot work on this machine, or 1 if something failed
 * unexpectedly.
 */
int t_init(void);

/*
 * 0 if the probe says @feat works here; else print "SKIP: @why" and return
 * T_SKIP, or 1 if the probe itself failed.
 */
int t_need(enum pmtrack_feature feat, const char *why);

/*
 * read(2) from @fd into watched memory the way the API documents it: on a
 * backend without PMTRACK_CAP_KERNEL_WRITES, prepare the buffer first and
 * retry when a concurrent reset re-armed it (EFAULT).
 */
ssize_t t_kread(struct pmtrack *t, int fd, void *buf, size_t len);

/* Run @s in fork mode and map the result to an exit code. */
int t_run(Suite *s);

/* mmap helpers; abort the test on failure */
char *t_map_anon(size_t npages);
struct pmtrack *t_new(unsigned int scan_batch);

/*
 * Collect [buf, buf + npages pages) as an address list (capacity npages)
 * and fill @idx with page indices relative to @buf.  Returns the count.
 */
size_t t_collect_idx(struct pmtrack *t, char *buf, size_t npages,
		     unsigned int flags, size_t *idx);

/* Is @page among @idx[0..n)? */
bool t_has_idx(const size_t *idx, size_t n, size_t page);

/* Assert that collecting (as above) yields exactly @want[0..n). */
void t_expect_idx(struct pmtrack *t, char *buf, size_t npages,
		  unsigned int flags, const size_t *want, size_t n);

/* a number from a /proc or /sys file (-1 if unreadable), and back (false on
 * failure) */
long t_read_long(const char *path);
bool t_write_long(const char *path, long v);
/* the number after @key ("TracerPid:", "VmPTE:") in /proc/@pid/status, -1
 * if unreadable or absent */
long t_status_long(pid_t pid, const char *key);

/*
 * A swap file of @mb MiB, created and enabled for this test program (root
 * only), so MADV_PAGEOUT can push pages out.  Returns 0, or T_SKIP after
 * printing why swap cannot be had here (not root, a file system or
 * container that refuses swap files), or 1 after printing an unexpected
 * failure.  t_swap_off() disables and removes it; it also runs at exit of
 * the process that called t_swap_on() (not of forked test children).
 */
int t_swap_on(size_t mb);
void t_swap_off(void);

/* pages of [addr, addr + len) in all the PAGE_IS_* categories @cat, by a
 * raw PAGEMAP_SCAN; SIZE_MAX where the kernel has no PAGEMAP_SCAN */
size_t t_scan_count(const void *addr, size_t len, uint64_t cat);

/* field @field ("Rss", "Swap", ...) of the mapping holding @addr in
 * /proc/self/smaps, in kB; -1 if not found */
long t_smaps_kb(const void *addr, const char *field);

/* pages in swap of the mapping holding @addr (/proc/self/smaps), -1 if
 * unknown */
long t_swapped_pages(const void *addr);

/*
 * MADV_PAGEOUT [addr, addr + len) until the mapping holding it has at
 * least @want pages in swap: a page still in a per-CPU LRU batch cannot be
 * reclaimed at once, so it retries for up to a second.  Returns the count.
 */
long t_pageout(void *addr, size_t len, long want);

/* xorshift64* PRNG, deterministic per seed */
uint64_t t_rand(uint64_t *state);

#endif

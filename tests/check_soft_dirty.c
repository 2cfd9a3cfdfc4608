// SPDX-License-Identifier: MIT
/*
 * The soft-dirty backend's own promises: tracking another process, resets
 * that are process-wide in the kernel but lose nothing another tracker
 * watches, and VM_SOFTDIRTY honoured (a mapping replaced or re-protected
 * inside a watched range is reported, never missed).  Skips (77) with the
 * reason on kernels without soft-dirty; the second-kernel matrix runs it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static struct pmtrack *sd_new(int pid)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_SOFT_DIRTY,
		     .pid = pid);
	struct pmtrack *t = NULL;
	int r = pmtrack_new(&o, &t);

	ck_assert_msg(r == 0, "pmtrack_new: %s", strerror(-r));
	return t;
}

/*
 * @npages of their own VMA: a PROT_NONE page on each side keeps a later
 * mapping from merging with it, which would flag it VM_SOFTDIRTY (written
 * in full: the kernel's rule, checked in vm_softdirty_honoured)
 */
static char *fenced(size_t npages)
{
	char *p = t_map_anon(npages + 2);

	ck_assert_int_eq(mprotect(p, ps, PROT_NONE), 0);
	ck_assert_int_eq(mprotect(p + (npages + 1) * ps, ps, PROT_NONE), 0);
	return p + ps;
}

static void unfence(char *p, size_t npages)
{
	munmap(p - ps, (npages + 2) * ps);
}

/* has bit @i of the collect of [b, b + n pages) */
static void expect(struct pmtrack *t, char *b, size_t n, unsigned int flags,
		   const size_t *want, size_t nwant)
{
	t_expect_idx(t, b, n, flags, want, nwant);
}

START_TEST(caps)
{
	struct pmtrack *t = sd_new(0);
	unsigned int c = pmtrack_caps(t);

	ck_assert_uint_eq(c & PMTRACK_CAP_RANGE_RESET, 0);
	ck_assert_uint_eq(c & PMTRACK_CAP_ATOMIC_RESET, 0);
	ck_assert_uint_ne(c & PMTRACK_CAP_OTHER_PROCESS, 0);
	pmtrack_free(t);
}
END_TEST

START_TEST(resets_keep_other_ranges)
{
	/* the kernel clears the whole process; pages of other ranges and
	 * other trackers are kept and reported by their own collects */
	struct pmtrack *t1 = sd_new(0), *t2 = sd_new(0);
	char *a = fenced(8), *b = fenced(8), *c = fenced(8);

	ck_assert_int_eq(pmtrack_watch(t1, a, 8 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t1, b, 8 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t2, c, 8 * ps), 0);
	a[ps] = b[2 * ps] = c[3 * ps] = 1;
	expect(t1, a, 8, PMTRACK_COLLECT_RESET, (size_t[]){ 1 }, 1);
	expect(t1, a, 8, 0, NULL, 0);
	expect(t1, b, 8, 0, (size_t[]){ 2 }, 1);
	expect(t2, c, 8, 0, (size_t[]){ 3 }, 1);
	ck_assert_int_eq(pmtrack_reset(t2, c, 8 * ps), 0);
	expect(t1, b, 8, PMTRACK_COLLECT_RESET, (size_t[]){ 2 }, 1);
	expect(t2, c, 8, 0, NULL, 0);
	/* a new watch clears the kernel's bits too: nothing lost */
	c[5 * ps] = a[7 * ps] = 1;
	{
		char *d = fenced(4);

		ck_assert_int_eq(pmtrack_watch(t2, d, 4 * ps), 0);
		expect(t2, d, 4, 0, NULL, 0);
		unfence(d, 4);
	}
	expect(t2, c, 8, 0, (size_t[]){ 5 }, 1);
	expect(t1, a, 8, 0, (size_t[]){ 7 }, 1);
	pmtrack_free(t1);
	pmtrack_free(t2);
	unfence(a, 8);
	unfence(b, 8);
	unfence(c, 8);
}
END_TEST

START_TEST(vm_softdirty_honoured)
{
	/* new mappings carry VM_SOFTDIRTY; mprotect may then grant write
	 * access without a fault, so page-table bits alone would miss the
	 * write.  Reports must include the pages. */
	struct pmtrack *t = sd_new(0);
	char *b = t_map_anon(8), *src = t_map_anon(2);
	char *p;
	struct pmtrack_bitmap *bm;

	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	ck_assert_int_eq(pmtrack_watch(t, b, 8 * ps), 0);
	src[0] = src[ps] = 1;
	/* move a mapping over pages 2..3 of the watched range */
	p = mremap(src, 2 * ps, 2 * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
		   b + 2 * ps);
	ck_assert_ptr_eq(p, b + 2 * ps);
	ck_assert_int_eq(mprotect(b + 2 * ps, 2 * ps, PROT_READ), 0);
	ck_assert_int_eq(mprotect(b + 2 * ps, 2 * ps, PROT_READ | PROT_WRITE),
			 0);
	b[2 * ps] = 9;
	ck_assert_int_eq(
		pmtrack_collect_bitmap(t, b, 8 * ps, PMTRACK_COLLECT_RESET, bm),
		0);
	ck_assert_int_eq(pmtrack_bitmap_test(bm, 2), 1);
	/* after the reset, a plain write is reported as usual */
	b[3 * ps] = 9;
	ck_assert_int_eq(pmtrack_collect_bitmap(t, b, 8 * ps, 0, bm), 0);
	ck_assert_int_eq(pmtrack_bitmap_test(bm, 3), 1);
	pmtrack_bitmap_free(bm);
	pmtrack_free(t);
	munmap(b, 8 * ps);
}
END_TEST

/* child: map pages, tell the parent where, then write what it is told */
static void remote_child(int cmd, int rep)
{
	char *b = mmap(NULL, 65 * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned int page;

	/* nothing mapped right after the 64 pages */
	if (b == MAP_FAILED || munmap(b + 64 * ps, ps))
		_exit(2);
	memset(b, 1, 64 * ps);
	if (write(rep, &b, sizeof(b)) != sizeof(b))
		_exit(3);
	while (read(cmd, &page, sizeof(page)) == sizeof(page)) {
		if (page < 64)
			b[page * ps + 11] = 2;
		if (write(rep, &page, sizeof(page)) != sizeof(page))
			_exit(4);
	}
	_exit(0);
}

static void remote_write(int cmd, int rep, unsigned int page)
{
	unsigned int ack;

	ck_assert_int_eq(write(cmd, &page, sizeof(page)), sizeof(page));
	ck_assert_int_eq(read(rep, &ack, sizeof(ack)), sizeof(ack));
	ck_assert_uint_eq(ack, page);
}

START_TEST(other_process)
{
	int cmd[2], rep[2], status;
	struct pmtrack *t;
	char *b;
	pid_t pid;

	ck_assert_int_eq(pipe(cmd), 0);
	ck_assert_int_eq(pipe(rep), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid) {
		close(cmd[1]);
		close(rep[0]);
		remote_child(cmd[0], rep[1]);
	}
	close(cmd[0]);
	close(rep[1]);
	ck_assert_int_eq(read(rep[0], &b, sizeof(b)), sizeof(b));

	t = sd_new((int)pid);
	/* addresses are the child's: checked against its mappings */
	ck_assert_int_eq(pmtrack_watch(t, b, 64 * ps), 0);
	ck_assert_int_eq(pmtrack_watch(t, b + 64 * ps, ps), -ENOMEM);
	expect(t, b, 64, 0, NULL, 0);
	remote_write(cmd[1], rep[0], 3);
	remote_write(cmd[1], rep[0], 40);
	expect(t, b, 64, PMTRACK_COLLECT_RESET, (size_t[]){ 3, 40 }, 2);
	expect(t, b, 64, 0, NULL, 0);
	remote_write(cmd[1], rep[0], 63);
	expect(t, b, 64, 0, (size_t[]){ 63 }, 1);
	pmtrack_free(t);

	close(cmd[1]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(rep[0]);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;
	int r;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	r = t_need(PMTRACK_FEAT_SOFT_DIRTY,
		   "soft-dirty needs CONFIG_MEM_SOFT_DIRTY (x86_64, s390, "
		   "ppc64); the second-kernel matrix runs these tests");
	if (r)
		return r;
	s = suite_create("soft_dirty");
	tc = tcase_create("soft_dirty");
	tcase_add_test(tc, caps);
	tcase_add_test(tc, resets_keep_other_ranges);
	tcase_add_test(tc, vm_softdirty_honoured);
	tcase_add_test(tc, other_process);
	suite_add_tcase(s, tc);
	return t_run(s);
}

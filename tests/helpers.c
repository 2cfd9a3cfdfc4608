// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"
#include "../lib/base/uapi_compat.h"

size_t ps;

enum pmtrack_backend t_backend;
unsigned int t_caps;
enum pmtrack_rearm t_rearm;

/* why @b cannot run here, from the probes it depends on */
static void say_why(const char *name)
{
	static const enum pmtrack_feature feats[] = {
		PMTRACK_FEAT_PAGEMAP_SCAN,
		PMTRACK_FEAT_UFFD_WP_ASYNC,
		PMTRACK_FEAT_UFFD_WP,
		PMTRACK_FEAT_SOFT_DIRTY,
	};

	printf("SKIP: backend %s cannot run on this machine; probes:", name);
	for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++)
		printf(" %s=%d", pmtrack_feature_name(feats[i]),
		       pmtrack_probe(feats[i], NULL));
	printf("\n");
	if (!strcmp(name, "soft-dirty"))
		printf("SKIP: soft-dirty needs CONFIG_MEM_SOFT_DIRTY "
		       "(x86_64, s390, ppc64); this kernel does not set "
		       "pagemap bit 55 after a write\n");
	else if (!strcmp(name, "pagemap-scan"))
		printf("SKIP: pagemap-scan needs Linux 6.7+ with "
		       "userfaultfd allowed\n");
}

int t_init(void)
{
	const char *env = getenv("PMTRACK_BACKEND");
	const char *rearm = getenv("PMTRACK_TEST_REARM");
	struct pmtrack *t = NULL;
	int r;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (rearm && !strcmp(rearm, "written")) {
		t_rearm = PMTRACK_REARM_WRITTEN;
	} else if (rearm && !strcmp(rearm, "range")) {
		t_rearm = PMTRACK_REARM_RANGE;
	} else if (rearm && *rearm && strcmp(rearm, "auto")) {
		fprintf(stderr, "PMTRACK_TEST_REARM=%s: written, range or "
				"auto\n", rearm);
		return 1;
	}
	r = pmtrack_new(NULL, &t);
	if (r == -EOPNOTSUPP) {
		say_why(env && *env ? env : "auto");
		return T_SKIP;
	}
	if (r < 0) {
		fprintf(stderr, "pmtrack_new (PMTRACK_BACKEND=%s): %s\n",
			env ? env : "", strerror(-r));
		return 1;
	}
	t_backend = pmtrack_backend(t);
	t_caps = pmtrack_caps(t);
	pmtrack_free(t);
	printf("backend: %s, caps 0x%x, rearm %s\n",
	       pmtrack_backend_name(t_backend), t_caps,
	       t_rearm == PMTRACK_REARM_WRITTEN ? "written"
	       : t_rearm == PMTRACK_REARM_RANGE ? "range"
						: "auto");
	return 0;
}

int t_need(enum pmtrack_feature feat, const char *why)
{
	int r = pmtrack_probe(feat, NULL);

	if (r == 1)
		return 0;
	if (r == 0) {
		printf("SKIP: %s (probe %s says no)\n", why,
		       pmtrack_feature_name(feat));
		return T_SKIP;
	}
	fprintf(stderr, "probe %s failed: %s\n", pmtrack_feature_name(feat),
		strerror(-r));
	return 1;
}

ssize_t t_kread(struct pmtrack *t, int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n;

		if (!(t_caps & PMTRACK_CAP_KERNEL_WRITES)) {
			int r = pmtrack_prepare_kernel_write(t, buf, len);

			t_check(r == 0, "prepare_kernel_write: %s",
				strerror(-r));
		}
		/* the raw syscall: ThreadSanitizer's read() interceptor
		 * would see the kernel's store as the caller's */
		n = syscall(SYS_read, fd, buf, len);
		if (n >= 0 || errno != EFAULT ||
		    (t_caps & PMTRACK_CAP_KERNEL_WRITES))
			return n;
	}
}

int t_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

char *t_map_anon(size_t npages)
{
	char *p = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
	/* base pages, whatever the THP setting ("always" on Debian's
	 * kernels): on soft-dirty a huge page is written as a whole, and
	 * khugepaged's collapse marks it written; the THP tests map their
	 * own memory */
	(void)madvise(p, npages * ps, MADV_NOHUGEPAGE);
	return p;
}

struct pmtrack *t_new(unsigned int scan_batch)
{
	PMTRACK_OPTS(pmtrack_opts, o, .scan_batch = scan_batch,
		     .rearm = t_rearm);
	struct pmtrack *t = NULL;
	int r = pmtrack_new(&o, &t);

	ck_assert_msg(r == 0, "pmtrack_new: %s", strerror(-r));
	if (t_rearm)
		ck_assert_int_eq(pmtrack_rearm(t), t_rearm);
	return t;
}

size_t t_collect_idx(struct pmtrack *t, char *buf, size_t npages,
		     unsigned int flags, size_t *idx)
{
	void **pages = calloc(npages, sizeof(*pages));
	size_t n = npages;
	int r;

	ck_assert_ptr_nonnull(pages);
	r = pmtrack_collect_pages(t, buf, npages * ps, flags, pages, &n, NULL);
	ck_assert_msg(r == 0, "collect_pages: %s", strerror(-r));
	for (size_t i = 0; i < n; i++)
		idx[i] = (size_t)((char *)pages[i] - buf) / ps;
	free(pages);
	return n;
}

bool t_has_idx(const size_t *idx, size_t n, size_t page)
{
	for (size_t i = 0; i < n; i++)
		if (idx[i] == page)
			return true;
	return false;
}

void t_expect_idx(struct pmtrack *t, char *buf, size_t npages,
		  unsigned int flags, const size_t *want, size_t n)
{
	size_t *got = calloc(npages + 1, sizeof(*got));
	size_t m;

	ck_assert_ptr_nonnull(got);
	m = t_collect_idx(t, buf, npages, flags, got);
	ck_assert_uint_eq(m, n);
	for (size_t i = 0; i < n; i++)
		t_check(got[i] == want[i], "page #%zu: got %zu want %zu", i,
			got[i], want[i]);
	free(got);
}

long t_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

long t_status_long(pid_t pid, const char *key)
{
	char path[64], line[128];
	size_t n = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n))
			v = atol(line + n);
	fclose(f);
	return v;
}

bool t_write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

uint64_t t_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ---- swap ---------------------------------------------------------------- */

static char swap_path[256];
static pid_t swap_owner;

void t_swap_off(void)
{
	if (!swap_path[0] || getpid() != swap_owner)
		return;
	if (syscall(SYS_swapoff, swap_path))
		fprintf(stderr, "swapoff %s: %s\n", swap_path, strerror(errno));
	unlink(swap_path);
	swap_path[0] = 0;
}

/* the on-disk header mkswap(8) writes: version 1, no bad pages */
static int swap_write(int fd, size_t mb)
{
	size_t chunk = 1 << 20, pages = (mb << 20) / ps;
	char *buf = calloc(1, chunk);
	uint32_t hdr[3] = { 1, (uint32_t)(pages - 1), 0 };
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < mb && !ret; i++)
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			ret = -errno;
	memcpy(buf + 1024, hdr, sizeof(hdr));
	memcpy(buf + ps - 10, "SWAPSPACE2", 10);
	if (!ret && pwrite(fd, buf, ps, 0) != (ssize_t)ps)
		ret = -errno;
	if (!ret && fsync(fd))
		ret = -errno;
	free(buf);
	return ret;
}

int t_swap_on(size_t mb)
{
	static const char *const dirs[] = { "/var/tmp", "/tmp" };
	const char *tmp = getenv("TMPDIR");
	int err = 0;

	if (geteuid() != 0) {
		printf("SKIP: enabling a swap file needs root\n");
		return T_SKIP;
	}
	for (size_t i = 0; i < 3; i++) {
		const char *dir = i == 0 ? tmp : dirs[i - 1];
		int fd;

		if (!dir)
			continue;
		snprintf(swap_path, sizeof(swap_path), "%s/pmtrack-swap-%d",
			 dir, (int)getpid());
		fd = open(swap_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			  0600);
		if (fd < 0) {
			err = errno;
			continue;
		}
		err = -swap_write(fd, mb);
		close(fd);
		if (!err && !syscall(SYS_swapon, swap_path, 0)) {
			swap_owner = getpid();
			atexit(t_swap_off);
			return 0;
		}
		if (!err)
			err = errno;
		unlink(swap_path);
		if (err != EINVAL && err != EPERM && err != ENOSYS &&
		    err != EOPNOTSUPP)
			break;
	}
	swap_path[0] = 0;
	if (err == EINVAL || err == EPERM || err == ENOSYS ||
	    err == EOPNOTSUPP || err == EROFS) {
		printf("SKIP: this machine refuses a swap file (%s)\n",
		       strerror(err));
		return T_SKIP;
	}
	printf("swap file: %s\n", strerror(err));
	return 1;
}

long t_smaps_kb(const void *addr, const char *field)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512], fmt[64];
	bool in = false;
	long kb = -1;

	if (!f)
		return -1;
	snprintf(fmt, sizeof(fmt), "%s: %%ld kB", field);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perm[8];

		if (sscanf(line, "%lx-%lx %7s", &s, &e, perm) == 3 &&
		    strlen(perm) == 4)
			in = s <= (uintptr_t)addr && (uintptr_t)addr < e;
		else if (in && sscanf(line, fmt, &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

long t_swapped_pages(const void *addr)
{
	long kb = t_smaps_kb(addr, "Swap");

	return kb < 0 ? -1 : kb * 1024 / (long)ps;
}

long t_pageout(void *addr, size_t len, long want)
{
	cpu_set_t all, one;
	bool turns = !sched_getaffinity(0, sizeof(all), &all);
	long got = -1;
	int cpu = -1;

	for (int i = 0; i < 100 && got < want; i++) {
		/* a page just faulted in waits in the LRU batch of the CPU
		 * that faulted it, which only that CPU drains (MADV_PAGEOUT
		 * drains its own): take turns on every allowed CPU */
		if (turns) {
			do
				cpu = (cpu + 1) % CPU_SETSIZE;
			while (!CPU_ISSET(cpu, &all));
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			sched_setaffinity(0, sizeof(one), &one);
		}
		if (madvise(addr, len, 21 /* MADV_PAGEOUT */)) {
			got = -1;
			break;
		}
		got = t_swapped_pages(addr);
		if (got < want)
			usleep(10000);
	}
	if (turns)
		sched_setaffinity(0, sizeof(all), &all);
	return got;
}

size_t t_scan_count(const void *addr, size_t len, uint64_t cat)
{
	struct page_region r[64];
	size_t pages = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return SIZE_MAX;
	for (uintptr_t s = (uintptr_t)addr, e = s + len; s < e;) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = s,
			.end = e,
			.vec = (uintptr_t)r,
			.vec_len = 64,
			.category_mask = cat,
			.return_mask = cat,
		};
		int n = ioctl(fd, PAGEMAP_SCAN, &arg);

		if (n < 0) {
			pages = SIZE_MAX;
			break;
		}
		for (int i = 0; i < n; i++)
			pages += (r[i].end - r[i].start) / ps;
		if (n < 64)
			break;
		/* walk_end can be stale after a full vector */
		s = arg.walk_end > r[n - 1].end ? arg.walk_end : r[n - 1].end;
	}
	close(fd);
	return pages;
}

// SPDX-License-Identifier: MIT
/*
 * pmtrack probe: what this kernel and this process can use, like
 * criu check.  A verdict line first (the backend pmtrack_new(NULL) picks,
 * its guarantees, whether another process can be tracked), then one row
 * per feature.  Every "no" says why: the library only answers yes or no,
 * so the reasons come from making the system calls again here and reading
 * /proc, the sysctls and the kernel's config: a kernel too old or built
 * without the feature, a missing privilege, a sysctl, a seccomp filter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/userfaultfd.h>
#ifdef PMTRACK_HAVE_ZLIB
#include <zlib.h>
#endif

#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>

#include "cmdline.h"
#include "cli.h"
#include "jsonw.h"
#include "pstate.h"

static void probe_usage(FILE *f)
{
	fputs("usage: pmtrack probe [--feature NAME]... [--pid PID] [--json] "
	      "[--list-features]\n"
	      "What this kernel and this process can use, like criu check.  "
	      "The first line is\n"
	      "the verdict: the backend the library picks (pmtrack_new() with "
	      "no options), its\n"
	      "guarantees, and whether another process can be tracked (how, or "
	      "why not).  Then\n"
	      "one row per feature, 'yes' or 'no: REASON': the kernel features "
	      "(pagemap-scan,\n"
	      "uffd-wp-async, uffd-wp, soft-dirty, page-is-*), each backend "
	      "(backend-NAME:\n"
	      "pmtrack_new() can open it), each guarantee (cap-NAME: some "
	      "usable backend\n"
	      "gives it), remote (tracking another process: a child of the "
	      "probe is tracked\n"
	      "for real) and what page-state maps can tell (pagestate-scan, "
	      "reports-STATE,\n"
	      "map-files, cachestat, swap).  A reason names what is missing: a "
	      "kernel version,\n"
	      "a config option, a privilege, a sysctl or a seccomp filter.  "
	      "Exit status 0, or\n"
	      "1 if a probe failed unexpectedly; with --feature, 0 if every "
	      "feature named is\n"
	      "usable and 1 if one is not; 2 for a bad command line (a NAME "
	      "--list-features\n"
	      "does not print).  With --json a bad command line prints no "
	      "JSON.\n"
	      "  --feature NAME        answer for NAME alone (repeatable: all "
	      "must be usable)\n"
	      "  --pid PID             remote: can process PID be tracked "
	      "(it is not stopped)\n"
	      "  --json                one JSON object\n"
	      "  --list-features       print the feature names, one a line\n",
	      f);
}

/* ---- what the answers are made of --------------------------------------- */

enum section {
	SEC_FEATURES,
	SEC_BACKENDS,
	SEC_CAPS,
	SEC_REMOTE,
	SEC_PAGESTATE,
	SEC_MAX,
};

static const char *const sec_titles[SEC_MAX] = {
	"features:",
	"backends:",
	"guarantees (some usable backend gives it):",
	"other processes:",
	"page states:",
};

/* one row of the report: a name --feature takes */
struct row {
	char name[32];
	enum section sec;
	int ok;		/* 1 yes, 0 no, -1 the probe itself failed */
	bool asked;	/* named by --feature */
	char text[640]; /* yes: how (may be empty); no: why; -1: the error */
};

static const struct {
	unsigned int cap;
	const char *name;
} cap_names[] = {
	{ PMTRACK_CAP_ATOMIC_RESET, "atomic-reset" },
	{ PMTRACK_CAP_RANGE_RESET, "range-reset" },
	{ PMTRACK_CAP_KERNEL_WRITES, "kernel-writes" },
	{ PMTRACK_CAP_FILE_MAPPINGS, "file-mappings" },
	{ PMTRACK_CAP_OTHER_PROCESS, "other-process" },
	{ PMTRACK_CAP_NO_SIGNALS, "no-signals" },
	{ PMTRACK_CAP_HUGETLB, "hugetlb" },
	{ PMTRACK_CAP_SHARED_EXACT, "shared-exact" },
};
#define NCAPS (sizeof(cap_names) / sizeof(*cap_names))

static const enum pmtrack_backend backends[] = {
	PMTRACK_BACKEND_PAGEMAP_SCAN,
	PMTRACK_BACKEND_SOFT_DIRTY,
	PMTRACK_BACKEND_UFFD_WP,
	PMTRACK_BACKEND_MPROTECT,
};
#define NBACKENDS (sizeof(backends) / sizeof(*backends))

/* the kernel config options a reason may quote */
enum ksym {
	K_MEM_SOFT_DIRTY,
	K_ARCH_SOFT_DIRTY,
	K_USERFAULTFD,
	K_ARCH_UFFD_WP,
	K_MAX,
};

static const char *const ksym_names[K_MAX] = {
	"CONFIG_MEM_SOFT_DIRTY",
	"CONFIG_HAVE_ARCH_SOFT_DIRTY",
	"CONFIG_USERFAULTFD",
	"CONFIG_HAVE_ARCH_USERFAULTFD_WP",
};

/* capability numbers (linux/capability.h) */
#define PROBE_CAP_SYS_PTRACE 19
#define PROBE_CAP_SYS_ADMIN 21
#define PROBE_CAP_CHECKPOINT_RESTORE 40

/* userfaultfd features newer than the oldest headers this builds with */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#define PROBE_UFFD_WP_UNPOPULATED (1ULL << 13) /* 6.4 */
#define PROBE_UFFD_WP_ASYNC (1ULL << 15)       /* 6.7 */

/* ioctl(PAGEMAP_SCAN)'s argument (Linux 6.7), as linux/fs.h lays it out */
struct probe_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask;
	uint64_t return_mask;
};
#define PROBE_PAGEMAP_SCAN _IOWR('f', 16, struct probe_scan_arg)

/* the PAGEMAP_SCAN category of each page-is-* feature, and its kernel */
static const struct {
	enum pmtrack_feature feat;
	uint64_t bit;
	const char *flag, *since;
} categories[] = {
	{ PMTRACK_FEAT_PAGE_IS_WPALLOWED, 1u << 0, "PAGE_IS_WPALLOWED", "6.7" },
	{ PMTRACK_FEAT_PAGE_IS_WRITTEN, 1u << 1, "PAGE_IS_WRITTEN", "6.7" },
	{ PMTRACK_FEAT_PAGE_IS_FILE, 1u << 2, "PAGE_IS_FILE", "6.7" },
	{ PMTRACK_FEAT_PAGE_IS_PRESENT, 1u << 3, "PAGE_IS_PRESENT", "6.7" },
	{ PMTRACK_FEAT_PAGE_IS_SWAPPED, 1u << 4, "PAGE_IS_SWAPPED", "6.7" },
	{ PMTRACK_FEAT_PAGE_IS_PFNZERO, 1u << 5, "PAGE_IS_PFNZERO", "6.7" },
	{ PMTRACK_FEAT_PAGE_IS_HUGE, 1u << 6, "PAGE_IS_HUGE", "6.7" },
	{ PMTRACK_FEAT_PAGE_IS_SOFT_DIRTY, 1u << 7, "PAGE_IS_SOFT_DIRTY",
	  "6.8" },
	{ PMTRACK_FEAT_PAGE_IS_GUARD, 1u << 8, "PAGE_IS_GUARD", "6.15" },
};

/* this machine and this process, as far as reasons need them */
struct host {
	struct utsname u;
	int seccomp;	  /* Seccomp: of /proc/self/status; -1 unknown */
	uint64_t cap_eff; /* CapEff: */
	int yama;	  /* kernel.yama.ptrace_scope; -1 without Yama */
	int unpriv_uffd;  /* vm.unprivileged_userfaultfd; -1 if absent */
	char config[128]; /* the kernel config read, or "" */
	int kconf[K_MAX]; /* 1 set (y, m), 0 not set, -1 no config read */
};

struct probe {
	struct host h;
	struct row rows[64];
	int nrows;
	pid_t pid; /* --pid, or 0 */
	struct row *feat[PMTRACK_FEAT_MAX];
	/* userfaultfd(2) as this process gets it */
	int uffd_err, uffd_api_err;
	uint64_t uffd_feats;
	/* each backend's row and, where it opens, its caps */
	struct row *bk[NBACKENDS];
	unsigned int bk_caps[NBACKENDS];
	/* pmtrack_new(NULL) */
	int auto_err;
	enum pmtrack_backend auto_b;
	unsigned int auto_caps;
	struct row *remote, *pstate_scan;
	int swap_areas;
};

static __attribute__((format(printf, 3, 4))) void set(struct row *r, int ok,
						      const char *fmt, ...)
{
	va_list ap;

	r->ok = ok;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* "ENOSYS" */
static const char *ename(int err)
{
	const char *s = strerrorname_np(err);

	return s ? s : "an unknown error";
}

static struct row *add_row(struct probe *p, enum section sec,
			   const char *prefix, const char *name)
{
	struct row *r = &p->rows[p->nrows++];

	snprintf(r->name, sizeof(r->name), "%s%s", prefix, name);
	r->sec = sec;
	r->ok = -1;
	return r;
}

/* every row, not yet answered: the names --feature takes */
static void add_rows(struct probe *p)
{
	for (int i = 1; i < PMTRACK_FEAT_MAX; i++)
		p->feat[i] =
			add_row(p, SEC_FEATURES, "",
				pmtrack_feature_name((enum pmtrack_feature)i));
	for (size_t i = 0; i < NBACKENDS; i++)
		p->bk[i] = add_row(p, SEC_BACKENDS, "backend-",
				   pmtrack_backend_name(backends[i]));
	for (size_t i = 0; i < NCAPS; i++)
		add_row(p, SEC_CAPS, "cap-", cap_names[i].name);
	p->remote = add_row(p, SEC_REMOTE, "", "remote");
	p->pstate_scan = add_row(p, SEC_PAGESTATE, "", "pagestate-scan");
	for (int i = 0; i < PMTRACK_PAGE_NSTATES; i++)
		add_row(p, SEC_PAGESTATE, "reports-", state_names[i]);
	add_row(p, SEC_PAGESTATE, "", "map-files");
	add_row(p, SEC_PAGESTATE, "", "cachestat");
	add_row(p, SEC_PAGESTATE, "", "swap");
}

static struct row *find_row(struct probe *p, const char *name)
{
	for (int i = 0; i < p->nrows; i++)
		if (!strcmp(p->rows[i].name, name))
			return &p->rows[i];
	return NULL;
}

/* ---- the host ----------------------------------------------------------- */

/* field @key of /proc/@pid/status (0: this process) into @buf: 0 or an
   errno */
static int status_field(pid_t pid, const char *key, char *buf, size_t n)
{
	size_t kl = strlen(key);
	char path[64], line[256];
	int err = ENODATA;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		strcpy(path, "/proc/self/status");
	f = fopen(path, "re");
	if (!f)
		return errno;
	while (fgets(line, sizeof(line), f)) {
		char *v = line + kl + 1;

		if (strncmp(line, key, kl) || line[kl] != ':')
			continue;
		v += strspn(v, " \t");
		v[strcspn(v, "\n")] = 0;
		snprintf(buf, n, "%s", v);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

static int read_int(const char *path, int dflt)
{
	FILE *f = fopen(path, "re");
	int v;

	if (!f)
		return dflt;
	if (fscanf(f, "%d", &v) != 1)
		v = dflt;
	fclose(f);
	return v;
}

static void config_line(struct host *h, const char *line)
{
	for (int i = 0; i < K_MAX; i++) {
		size_t n = strlen(ksym_names[i]);

		if (!strncmp(line, ksym_names[i], n) && line[n] == '=')
			h->kconf[i] = line[n + 1] == 'y' || line[n + 1] == 'm';
	}
}

/* the options of ksym_names from /proc/config.gz (with zlib) or
   /boot/config-RELEASE, whichever can be read first */
static void read_config(struct host *h)
{
	char path[2][128], line[512];

	snprintf(path[0], sizeof(path[0]), "/proc/config.gz");
	snprintf(path[1], sizeof(path[1]), "/boot/config-%s", h->u.release);
	for (int i = 0; i < K_MAX; i++)
		h->kconf[i] = -1;
	for (int k = 0; k < 2; k++) {
#ifdef PMTRACK_HAVE_ZLIB
		gzFile z = gzopen(path[k], "rb");

		if (!z)
			continue;
		for (int i = 0; i < K_MAX; i++)
			h->kconf[i] = 0;
		while (gzgets(z, line, sizeof(line)))
			config_line(h, line);
		gzclose(z);
#else
		FILE *f = k ? fopen(path[k], "re") : NULL;

		if (!f)
			continue;
		for (int i = 0; i < K_MAX; i++)
			h->kconf[i] = 0;
		while (fgets(line, sizeof(line), f))
			config_line(h, line);
		fclose(f);
#endif
		snprintf(h->config, sizeof(h->config), "%s", path[k]);
		return;
	}
}

static void host_look(struct host *h)
{
	char v[64];

	if (uname(&h->u))
		strcpy(h->u.release, "?");
	h->seccomp = status_field(0, "Seccomp", v, sizeof(v)) ? -1 : atoi(v);
	h->cap_eff = status_field(0, "CapEff", v, sizeof(v))
			     ? 0
			     : strtoull(v, NULL, 16);
	h->yama = read_int("/proc/sys/kernel/yama/ptrace_scope", -1);
	h->unpriv_uffd = read_int("/proc/sys/vm/unprivileged_userfaultfd", -1);
	read_config(h);
}

static bool has_cap(const struct host *h, int cap)
{
	return h->cap_eff >> cap & 1;
}

/* Could a seccomp filter of this process have made a system call fail
   with @err? */
static bool by_seccomp(const struct host *h, int err)
{
	return h->seccomp == 2 &&
	       (err == ENOSYS || err == EPERM || err == EACCES);
}

static void blocked(struct probe *p, struct row *r, const char *call, int err)
{
	set(r, 0,
	    "%s fails with %s and this process has a seccomp filter "
	    "(Seccomp: %d in /proc/self/status): blocked by a seccomp filter",
	    call, ename(err), p->h.seccomp);
}

/* what the kernel config says of option @k, for a reason: "CONFIG_X is
   not set (/proc/config.gz)" */
static const char *kconfig_says(const struct probe *p, enum ksym k, char *buf,
				size_t n)
{
	if (p->h.kconf[k] == 0)
		snprintf(buf, n, "%s is not set (%s)", ksym_names[k],
			 p->h.config);
	else if (p->h.kconf[k] > 0)
		snprintf(buf, n, "%s=y in %s", ksym_names[k], p->h.config);
	else
		snprintf(buf, n,
			 "%s not set, inferred from the probe: no readable "
			 "/proc/config.gz or /boot/config-%s",
			 ksym_names[k], p->h.u.release);
	return buf;
}

/* ---- kernel features ---------------------------------------------------- */

static void why_pagemap_scan(struct probe *p, struct row *r)
{
	struct probe_scan_arg a = { .size = sizeof(a) };
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), err;

	if (fd < 0) {
		set(r, 0, "/proc/self/pagemap: %s", strerror(errno));
		return;
	}
	/* an empty range is valid wherever the ioctl exists */
	a.start = a.end = (uint64_t)sysconf(_SC_PAGESIZE);
	err = ioctl(fd, PROBE_PAGEMAP_SCAN, &a) ? errno : 0;
	close(fd);
	if (by_seccomp(&p->h, err))
		blocked(p, r, "ioctl(PAGEMAP_SCAN)", err);
	else if (err == ENOTTY || err == EINVAL)
		set(r, 0,
		    "ioctl(PAGEMAP_SCAN) on /proc/self/pagemap fails with %s: "
		    "this kernel does not have it (needs Linux 6.7)",
		    ename(err));
	else if (err)
		set(r, 0, "ioctl(PAGEMAP_SCAN): %s", strerror(err));
	else
		set(r, 0,
		    "the kernel takes PAGEMAP_SCAN but did not report a page "
		    "just written as present");
}

/* userfaultfd(2) and its features, as the library asks for them */
static void uffd_look(struct probe *p)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd,
			      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	p->uffd_err = fd < 0 ? errno : 0;
	if (fd < 0)
		return;
	if (ioctl(fd, UFFDIO_API, &api))
		p->uffd_api_err = errno;
	else
		p->uffd_feats = api.features;
	close(fd);
}

/* why this process gets no userfaultfd: false if it gets one */
static bool why_no_uffd(struct probe *p, struct row *r)
{
	int err = p->uffd_err ? p->uffd_err : p->uffd_api_err;
	char k[300];

	if (!err)
		return false;
	if (by_seccomp(&p->h, err))
		blocked(p, r,
			p->uffd_err ? "userfaultfd(2)" : "ioctl(UFFDIO_API)",
			err);
	else if (!p->uffd_err)
		set(r, 0, "ioctl(UFFDIO_API): %s", strerror(err));
	else if (err == ENOSYS)
		set(r, 0,
		    "userfaultfd(2) fails with ENOSYS: the kernel is built "
		    "without it (%s)",
		    kconfig_says(p, K_USERFAULTFD, k, sizeof(k)));
	else if (err == EINVAL)
		set(r, 0,
		    "userfaultfd(2) refuses UFFD_USER_MODE_ONLY (EINVAL): "
		    "needs Linux 5.11");
	else if (err == EPERM || err == EACCES)
		set(r, 0,
		    "userfaultfd(2) refused (%s): vm.unprivileged_userfaultfd"
		    "=%d and %s CAP_SYS_PTRACE, or a security module",
		    ename(err), p->h.unpriv_uffd,
		    has_cap(&p->h, PROBE_CAP_SYS_PTRACE) ? "with" : "no");
	else
		set(r, 0, "userfaultfd(2): %s", strerror(err));
	return true;
}

/* userfaultfd without write-protect */
static bool why_no_uffd_wp(struct probe *p, struct row *r)
{
	char k[300];

	if (p->uffd_feats & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
		return false;
	set(r, 0,
	    "userfaultfd offers no write-protect "
	    "(UFFD_FEATURE_PAGEFAULT_FLAG_WP): not on this architecture or "
	    "kernel (x86_64 has it from Linux 5.7, arm64 from 6.10; %s)",
	    kconfig_says(p, K_ARCH_UFFD_WP, k, sizeof(k)));
	return true;
}

static void why_uffd_wp_async(struct probe *p, struct row *r)
{
	if (why_no_uffd(p, r) || why_no_uffd_wp(p, r))
		return;
	if (!(p->uffd_feats & PROBE_UFFD_WP_ASYNC))
		set(r, 0,
		    "userfaultfd does not offer UFFD_FEATURE_WP_ASYNC: needs "
		    "Linux 6.7");
	else if (!(p->uffd_feats & PROBE_UFFD_WP_UNPOPULATED))
		set(r, 0,
		    "userfaultfd does not offer UFFD_FEATURE_WP_UNPOPULATED: "
		    "needs Linux 6.4");
	else
		set(r, 0,
		    "the kernel offers async write-protect, but a write to a "
		    "protected page did not clear its uffd-wp bit in "
		    "/proc/self/pagemap");
}

static void why_uffd_wp(struct probe *p, struct row *r)
{
	if (why_no_uffd(p, r) || why_no_uffd_wp(p, r))
		return;
	set(r, 0,
	    "the kernel offers write-protect, but a write to a protected page "
	    "did not arrive as a write-protect fault within 2 s");
}

static void why_soft_dirty(struct probe *p, struct row *r)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	char k[300];

	if (fd < 0) {
		set(r, 0, "/proc/self/clear_refs: %s", strerror(errno));
		return;
	}
	close(fd);
	if (p->h.kconf[K_ARCH_SOFT_DIRTY] == 0)
		set(r, 0, "this architecture has no soft-dirty bits (%s)",
		    kconfig_says(p, K_ARCH_SOFT_DIRTY, k, sizeof(k)));
	else if (p->h.kconf[K_MEM_SOFT_DIRTY] > 0)
		set(r, 0,
		    "%s, yet bit 55 of /proc/self/pagemap stayed clear "
		    "after clear_refs 4 and a write",
		    kconfig_says(p, K_MEM_SOFT_DIRTY, k, sizeof(k)));
	else
		set(r, 0, "%s",
		    kconfig_says(p, K_MEM_SOFT_DIRTY, k, sizeof(k)));
}

static void why_category(struct probe *p, struct row *r, size_t c)
{
	struct probe_scan_arg a = { .size = sizeof(a) };
	struct row *scan = p->feat[PMTRACK_FEAT_PAGEMAP_SCAN];
	struct row *sd = p->feat[PMTRACK_FEAT_SOFT_DIRTY];
	int fd, err;

	if (scan->ok != 1) {
		set(r, 0, "needs pagemap-scan: %s", scan->text);
		return;
	}
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		set(r, 0, "/proc/self/pagemap: %s", strerror(errno));
		return;
	}
	a.start = a.end = (uint64_t)sysconf(_SC_PAGESIZE);
	a.return_mask = categories[c].bit;
	err = ioctl(fd, PROBE_PAGEMAP_SCAN, &a) ? errno : 0;
	close(fd);
	if (err == EINVAL)
		set(r, 0,
		    "PAGEMAP_SCAN refuses %s (EINVAL): this kernel does not "
		    "know it (needs Linux %s)",
		    categories[c].flag, categories[c].since);
	else if (err)
		set(r, 0, "ioctl(PAGEMAP_SCAN) with %s: %s", categories[c].flag,
		    strerror(err));
	else if (categories[c].feat == PMTRACK_FEAT_PAGE_IS_SOFT_DIRTY &&
		 sd->ok != 1)
		set(r, 0,
		    "the kernel takes %s but never reports it: needs "
		    "soft-dirty: %s",
		    categories[c].flag, sd->text);
	else
		set(r, 0, "the kernel takes %s, but the probe said no",
		    categories[c].flag);
}

static void probe_features(struct probe *p)
{
	for (int i = 1; i < PMTRACK_FEAT_MAX; i++) {
		enum pmtrack_feature ft = (enum pmtrack_feature)i;
		struct row *r = p->feat[i];
		int v = pmtrack_probe(ft, NULL);

		if (v < 0) {
			set(r, -1, "the probe failed: %s", strerror(-v));
			continue;
		}
		set(r, v, "%s", "");
		if (v)
			continue;
		switch (ft) {
		case PMTRACK_FEAT_PAGEMAP_SCAN:
			why_pagemap_scan(p, r);
			break;
		case PMTRACK_FEAT_UFFD_WP_ASYNC:
			why_uffd_wp_async(p, r);
			break;
		case PMTRACK_FEAT_UFFD_WP:
			why_uffd_wp(p, r);
			break;
		case PMTRACK_FEAT_SOFT_DIRTY:
			why_soft_dirty(p, r);
			break;
		default:
			for (size_t c = 0;
			     c < sizeof(categories) / sizeof(*categories); c++)
				if (categories[c].feat == ft)
					why_category(p, r, c);
			break;
		}
	}
}

/* ---- backends and guarantees -------------------------------------------- */

/* @caps as "a, b, c" */
static void caps_str(unsigned int caps, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = 0;
	for (size_t i = 0; i < NCAPS && len < n; i++)
		if (caps & cap_names[i].cap)
			len += (size_t)snprintf(buf + len, n - len, "%s%s",
						len ? ", " : "",
						cap_names[i].name);
}

/* why backend @b cannot be opened, when pmtrack_new() said -EOPNOTSUPP */
static void why_backend(struct probe *p, struct row *r, enum pmtrack_backend b)
{
	struct row *need = NULL;

	if (b == PMTRACK_BACKEND_PAGEMAP_SCAN) {
		need = p->feat[PMTRACK_FEAT_PAGEMAP_SCAN];
		if (need->ok == 1)
			need = p->feat[PMTRACK_FEAT_UFFD_WP_ASYNC];
	} else if (b == PMTRACK_BACKEND_SOFT_DIRTY) {
		need = p->feat[PMTRACK_FEAT_SOFT_DIRTY];
	} else if (b == PMTRACK_BACKEND_UFFD_WP) {
		need = p->feat[PMTRACK_FEAT_UFFD_WP];
	}
	if (need && need->ok != 1)
		set(r, 0, "needs %s: %s", need->name, need->text);
	else
		set(r, 0, "pmtrack_new() refuses it: %s", strerror(EOPNOTSUPP));
}

static void probe_backends(struct probe *p)
{
	struct pmtrack *t = NULL;
	char caps[200];
	int ret;

	for (size_t i = 0; i < NBACKENDS; i++) {
		PMTRACK_OPTS(pmtrack_opts, o, .backend = backends[i]);

		ret = pmtrack_new(&o, &t);
		if (!ret) {
			p->bk_caps[i] = pmtrack_caps(t);
			caps_str(p->bk_caps[i], caps, sizeof(caps));
			set(p->bk[i], 1, "%s", caps);
		} else if (ret == -EOPNOTSUPP) {
			why_backend(p, p->bk[i], backends[i]);
		} else {
			set(p->bk[i], -1, "pmtrack_new(): %s", strerror(-ret));
		}
		pmtrack_free(t);
		t = NULL;
	}
	ret = pmtrack_new(NULL, &t);
	p->auto_err = -ret;
	if (!ret) {
		p->auto_b = pmtrack_backend(t);
		p->auto_caps = pmtrack_caps(t);
	}
	pmtrack_free(t);
}

static void probe_caps(struct probe *p)
{
	struct row *r = find_row(p, "cap-atomic-reset");
	char yes[200], usable[200], nope[200];
	size_t ny, nu, nn;

	for (size_t c = 0; c < NCAPS; c++, r++) {
		ny = nu = nn = 0;
		yes[0] = usable[0] = nope[0] = 0;
		for (size_t i = 0; i < NBACKENDS; i++) {
			const char *b = pmtrack_backend_name(backends[i]);

			if (p->bk[i]->ok != 1)
				nn += (size_t)snprintf(
					nope + nn, sizeof(nope) - nn, "%s%s",
					nn ? ", " : "", b);
			else if (p->bk_caps[i] & cap_names[c].cap)
				ny += (size_t)snprintf(yes + ny,
						       sizeof(yes) - ny, "%s%s",
						       ny ? ", " : "", b);
			else
				nu += (size_t)snprintf(
					usable + nu, sizeof(usable) - nu,
					"%s%s", nu ? ", " : "", b);
		}
		if (ny)
			set(r, 1, "%s", yes);
		else
			set(r, 0,
			    "no backend usable here gives it (usable: %s; "
			    "not usable: %s)",
			    nu ? usable : "none", nn ? nope : "none");
	}
}

/* ---- another process ---------------------------------------------------- */

/* whom remote tracking reaches, given access */
static void whom(struct probe *p, char *buf, size_t n, bool attach)
{
	if (has_cap(&p->h, PROBE_CAP_SYS_PTRACE))
		snprintf(buf, n, "any process: CAP_SYS_PTRACE");
	else if (attach && p->h.yama > 0)
		snprintf(buf, n,
			 "processes of uid %d that allow it "
			 "(kernel.yama.ptrace_scope=%d)",
			 (int)geteuid(), p->h.yama);
	else
		snprintf(buf, n, "processes of uid %d", (int)geteuid());
}

/* why no backend can track another process */
static void remote_unsupported(struct probe *p, struct row *r, bool tried)
{
	char ps[700];
	size_t i_ps = 0, i_sd = 1;
	struct row *bps = p->bk[i_ps], *bsd = p->bk[i_sd];

	if (bps->ok != 1)
		snprintf(ps, sizeof(ps), "pagemap-scan %s", bps->text);
	else if (!(p->bk_caps[i_ps] & PMTRACK_CAP_OTHER_PROCESS))
		snprintf(ps, sizeof(ps),
			 "pagemap-scan has no userfaultfd injection on this "
			 "architecture (x86_64 only so far)");
	else if (tried)
		snprintf(ps, sizeof(ps),
			 "pagemap-scan could not inject userfaultfd(2) into "
			 "the process (does its seccomp filter refuse it?)");
	else
		ps[0] = 0;
	set(r, 0, "no backend can track another process here: %s%s%s%s", ps,
	    ps[0] ? "; " : "", bsd->ok == 1 ? "" : "soft-dirty ",
	    bsd->ok == 1 ? "" : bsd->text);
}

/* In a process forked for it, like the library's injector: can it
   ptrace-attach to @pid?  0 or an errno; /proc/PID/mem is opened under
   the same check as PTRACE_ATTACH (PTRACE_MODE_ATTACH), without stopping
   the process. */
static int attach_errno(pid_t pid)
{
	char path[64];
	pid_t c;
	int st, fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	c = fork();
	if (c < 0)
		return errno;
	if (!c) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		_exit(fd < 0 ? (errno & 0xff) : 0);
	}
	while (waitpid(c, &st, 0) < 0)
		if (errno != EINTR)
			return errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
}

/* why ptrace access to @pid is refused (@err, EPERM or EACCES) */
static void remote_denied(struct probe *p, struct row *r, pid_t pid, int err,
			  bool attach)
{
	const char *what = attach ? "ptrace access" : "ptrace-read access";
	bool cap = has_cap(&p->h, PROBE_CAP_SYS_PTRACE);
	char v[64];
	int uid = -1, tracer = 0;

	if (!status_field(pid, "Uid", v, sizeof(v)))
		uid = atoi(v);
	if (!status_field(pid, "TracerPid", v, sizeof(v)))
		tracer = atoi(v);
	if (uid >= 0 && uid != (int)geteuid() && !cap)
		set(r, 0,
		    "%s to PID %d refused (%s): it belongs to uid %d and this "
		    "process runs as uid %d without CAP_SYS_PTRACE",
		    what, (int)pid, ename(err), uid, (int)geteuid());
	else if (attach && p->h.yama == 3)
		set(r, 0,
		    "%s refused (%s): kernel.yama.ptrace_scope=3 forbids "
		    "ptrace attach to everyone",
		    what, ename(err));
	else if (attach && p->h.yama == 2 && !cap)
		set(r, 0,
		    "%s refused (%s): kernel.yama.ptrace_scope=2 and no "
		    "CAP_SYS_PTRACE",
		    what, ename(err));
	else if (attach && p->h.yama == 1 && !cap)
		set(r, 0,
		    "%s refused (%s): kernel.yama.ptrace_scope=1 lets only a "
		    "process's ancestors attach, and the library injects from "
		    "a helper process; needs CAP_SYS_PTRACE or "
		    "kernel.yama.ptrace_scope=0",
		    what, ename(err));
	else if (tracer)
		set(r, 0, "PID %d is already traced by PID %d", (int)pid,
		    tracer);
	else if (by_seccomp(&p->h, err))
		blocked(p, r, "ptrace(2)", err);
	else
		set(r, 0,
		    "%s to PID %d refused (%s): not dumpable (a set-user-ID "
		    "program, prctl(PR_SET_DUMPABLE, 0)) or a security module",
		    what, (int)pid, ename(err));
}

/* In a process forked for it, like the library's injector: ptrace
   seize @pid (which does not stop it) and exit, which detaches.  0 or an
   errno. */
static int seize_errno(pid_t pid)
{
	pid_t c = fork();
	int st;

	if (c < 0)
		return errno;
	if (!c)
		_exit(ptrace(PTRACE_SEIZE, pid, 0, 0) ? (errno & 0xff) : 0);
	while (waitpid(c, &st, 0) < 0)
		if (errno != EINTR)
			return errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
}

/* The system calls the library's injection makes on the process, made
   here on @pid: true with a reason in @r if one fails. */
static bool why_no_inject(struct probe *p, struct row *r, pid_t pid)
{
	static const char *const calls[] = { "ptrace(PTRACE_SEIZE)",
					     "pidfd_open(2)",
					     "pidfd_getfd(2)" };
	static const char *const since[] = { NULL, "5.3", "5.6" };
	int err[3] = { 0 }, pidfd, fd;

	err[0] = seize_errno(pid);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		err[1] = errno;
	} else {
		/* its descriptor 0 or none: EBADF means allowed */
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, 0, 0);
		if (fd >= 0)
			close(fd);
		else if (errno != EBADF)
			err[2] = errno;
		close(pidfd);
	}
	for (int i = 0; i < 3; i++) {
		if (!err[i])
			continue;
		if (by_seccomp(&p->h, err[i]))
			blocked(p, r, calls[i], err[i]);
		else if (err[i] == ENOSYS && since[i])
			set(r, 0, "%s fails with ENOSYS: needs Linux %s",
			    calls[i], since[i]);
		else if (err[i] == EPERM || err[i] == EACCES)
			remote_denied(p, r, pid, err[i], true);
		else
			set(r, 0, "%s: %s", calls[i], strerror(err[i]));
		return true;
	}
	return false;
}

static void remote_yes(struct probe *p, struct row *r, enum pmtrack_backend b,
		       const char *note)
{
	char who[160];
	bool inj = b == PMTRACK_BACKEND_PAGEMAP_SCAN;

	whom(p, who, sizeof(who), inj);
	set(r, 1, "%s, %s; %s%s", pmtrack_backend_name(b),
	    inj ? "userfaultfd injected with ptrace"
		: "pagemap read with ptrace-read access",
	    who, note);
}

/* track a child of ours for real: what the library does with any process
   of our uid */
static void remote_child(struct probe *p, struct row *r)
{
	const char *env = getenv("PMTRACK_BACKEND");
	struct pmtrack *t = NULL;
	pid_t c = fork();
	bool inj;
	int ret;

	if (c < 0) {
		set(r, -1, "fork: %s", strerror(errno));
		return;
	}
	if (!c)
		for (;;)
			pause();
	PMTRACK_OPTS(pmtrack_opts, o, .pid = c);
	ret = pmtrack_new(&o, &t);
	inj = p->bk[0]->ok == 1 && (p->bk_caps[0] & PMTRACK_CAP_OTHER_PROCESS);
	if (!ret)
		remote_yes(p, r, pmtrack_backend(t), "");
	else if (inj && why_no_inject(p, r, c))
		; /* the reason is in @r */
	else if ((ret == -EOPNOTSUPP || ret == -EINVAL) && env && *env &&
		 strcmp(env, "auto"))
		set(r, 0,
		    "PMTRACK_BACKEND=%s: pmtrack_new() of a child fails with "
		    "%s",
		    env, ename(-ret));
	else if (ret == -EOPNOTSUPP)
		remote_unsupported(p, r, true);
	else if (ret == -EPERM || ret == -EACCES)
		remote_denied(p, r, c, -ret, inj);
	else
		set(r, -1, "pmtrack_new() of a child: %s", strerror(-ret));
	pmtrack_free(t);
	kill(c, SIGKILL);
	while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
		;
}

/* can we reach @pid as remote tracking would: 0 or an errno (soft-dirty
   reads pagemap, ptrace-read; pagemap-scan also attaches) */
static int access_errno(pid_t pid, bool inj)
{
	char path[64];
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	err = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	return !err && inj ? attach_errno(pid) : err;
}

/* --pid: could process @pid be tracked?  Checked without stopping it. */
static void remote_pid(struct probe *p, struct row *r, pid_t pid)
{
	bool inj = p->bk[0]->ok == 1 &&
		   (p->bk_caps[0] & PMTRACK_CAP_OTHER_PROCESS);
	char v[64], note[200] = "";
	int err = status_field(pid, "Seccomp", v, sizeof(v));

	if (err == ENOENT || err == ESRCH) {
		set(r, 0, "no process %d", (int)pid);
		return;
	}
	if (!err && atoi(v) == 2 && inj)
		snprintf(note, sizeof(note),
			 "; PID %d has a seccomp filter: if it refuses "
			 "userfaultfd(2) the injection fails, if it kills "
			 "the process that dies",
			 (int)pid);
	if (!inj && p->bk[1]->ok != 1) {
		remote_unsupported(p, r, false);
		return;
	}
	err = access_errno(pid, inj);
	if (err == EPERM || err == EACCES)
		remote_denied(p, r, pid, err, inj);
	else if (err == ENOENT || err == ESRCH)
		set(r, 0, "no process %d", (int)pid);
	else if (err)
		set(r, 0, "/proc/%d: %s", (int)pid, strerror(err));
	else if (inj && !status_field(pid, "TracerPid", v, sizeof(v)) &&
		 atoi(v))
		set(r, 0, "PID %d is already traced by PID %s", (int)pid, v);
	else
		remote_yes(p, r,
			   inj ? PMTRACK_BACKEND_PAGEMAP_SCAN
			       : PMTRACK_BACKEND_SOFT_DIRTY,
			   note);
}

/* ---- page states -------------------------------------------------------- */

/* can /proc/self/map_files/... be opened?  0 or an errno */
static int map_files_errno(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *m = mmap(NULL, (size_t)pg, PROT_READ, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	char path[96];
	int fd, err;

	if (m == MAP_FAILED)
		return errno;
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)m, (unsigned long)m + (unsigned long)pg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	err = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	munmap(m, (size_t)pg);
	return err;
}

/* does cachestat(2) work?  0 or an errno */
static int cachestat_errno(void)
{
	struct {
		uint64_t off, len;
	} range = { 0, 0 };
	uint64_t cs[5];
	int fd = memfd_create("pmtrack-probe", MFD_CLOEXEC), err;

	if (fd < 0)
		return errno;
	err = syscall(451 /* cachestat */, fd, &range, cs, 0) ? errno : 0;
	close(fd);
	return err;
}

/* active swap areas, from /proc/swaps; -errno */
static int swap_areas(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[512];
	int n = -1;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n < 0 ? 0 : n;
}

static void why_state(struct probe *p, struct row *r, unsigned int state)
{
	struct row *scan = p->pstate_scan;
	struct row *guard = p->feat[PMTRACK_FEAT_PAGE_IS_GUARD];

	if (state == PMTRACK_PAGE_GUARD && guard->ok != 1)
		set(r, 0, "needs page-is-guard: %s", guard->text);
	else if (state == PMTRACK_PAGE_ZERO)
		set(r, 0,
		    "needs pagestate-scan or CAP_SYS_ADMIN (frame numbers in "
		    "pagemap): %s",
		    scan->text);
	else if (scan->ok != 1)
		set(r, 0, "needs pagestate-scan: %s", scan->text);
	else
		set(r, 0, "not reported by this kernel");
}

static void probe_pagestate(struct probe *p)
{
	struct pmtrack_pstate *ps = NULL;
	struct row *r = p->pstate_scan;
	struct row *scan = p->feat[PMTRACK_FEAT_PAGEMAP_SCAN];
	unsigned int known;
	int ret = pmtrack_pstate_new(NULL, &ps), err;

	if (ret) {
		for (int i = 0; i <= PMTRACK_PAGE_NSTATES; i++)
			set(r + i, -1, "pmtrack_pstate_new(): %s",
			    strerror(-ret));
	} else {
		known = pmtrack_pstate_known(ps);
		if (pmtrack_pstate_uses_scan(ps))
			set(r, 1, "%s", "");
		else if (scan->ok != 1)
			set(r, 0,
			    "page states read /proc/PID/pagemap: needs "
			    "pagemap-scan: %s",
			    scan->text);
		else
			set(r, 0, "page states read /proc/PID/pagemap");
		for (int i = 0; i < PMTRACK_PAGE_NSTATES; i++) {
			if (known & (1u << i))
				set(r + 1 + i, 1, "%s", "");
			else
				why_state(p, r + 1 + i, 1u << i);
		}
	}
	pmtrack_pstate_free(ps);

	r = find_row(p, "map-files");
	err = map_files_errno();
	if (!err)
		set(r, 1, "shared memory of any process");
	else if (err == EPERM || err == EACCES)
		set(r, 0,
		    "/proc/PID/map_files needs CAP_SYS_ADMIN or "
		    "CAP_CHECKPOINT_RESTORE, which this process has not (%s)",
		    ename(err));
	else
		set(r, 0, "/proc/self/map_files: %s", strerror(err));

	r = find_row(p, "cachestat");
	err = cachestat_errno();
	if (!err)
		set(r, 1, "swap-cache pages");
	else if (by_seccomp(&p->h, err))
		blocked(p, r, "cachestat(2)", err);
	else if (err == ENOSYS)
		set(r, 0,
		    "cachestat(2) fails with ENOSYS: needs Linux 6.5 with "
		    "CONFIG_CACHESTAT_SYSCALL");
	else
		set(r, 0, "cachestat(2): %s", strerror(err));

	r = find_row(p, "swap");
	p->swap_areas = swap_areas();
	if (p->swap_areas > 0)
		set(r, 1, "%d active swap area%s", p->swap_areas,
		    p->swap_areas > 1 ? "s" : "");
	else if (p->swap_areas == 0)
		set(r, 0, "no active swap area (/proc/swaps lists none)");
	else
		set(r, 0, "/proc/swaps: %s", strerror(-p->swap_areas));
}

/* ---- the report --------------------------------------------------------- */

static void verdict(const struct probe *p, char *buf, size_t n)
{
	const char *env = getenv("PMTRACK_BACKEND");
	const struct row *r = p->remote;
	char caps[200], who[40] = "";
	size_t len;

	if (p->auto_err)
		len = (size_t)snprintf(buf, n,
				       "pmtrack probe: no backend "
				       "(pmtrack_new(): %s%s%s)",
				       strerror(p->auto_err),
				       env && *env ? ", PMTRACK_BACKEND=" : "",
				       env && *env ? env : "");
	else {
		caps_str(p->auto_caps, caps, sizeof(caps));
		len = (size_t)snprintf(
			buf, n, "pmtrack probe: backend %s (%s%s%s%s)",
			pmtrack_backend_name(p->auto_b),
			env && *env ? "PMTRACK_BACKEND=" : "",
			env && *env ? env : "", env && *env ? "; " : "", caps);
	}
	if (p->pid)
		snprintf(who, sizeof(who), " of PID %d", (int)p->pid);
	if (len < n)
		snprintf(buf + len, n - len, "; remote tracking%s %s (%s)", who,
			 r->ok == 1 ? "yes"
			 : r->ok    ? "unknown"
				    : "no",
			 r->text);
}

static const char *word(const struct row *r)
{
	return r->ok == 1 ? "yes" : r->ok ? "unknown" : "no";
}

static void put_row(FILE *f, const struct row *r, bool indent)
{
	if (indent)
		fprintf(f, "  %-22s %s", r->name, word(r));
	else
		fprintf(f, "%s: %s", r->name, word(r));
	if (r->ok == 1 && r->text[0])
		fprintf(f, " (%s)\n", r->text);
	else if (r->ok != 1)
		fprintf(f, ": %s\n", r->text);
	else
		fputc('\n', f);
}

static struct json_object *json_row(const struct row *r)
{
	struct json_object *o = jw_obj();

	jw_set(o, "name", jw_str(r->name));
	jw_set(o, "ok", r->ok < 0 ? NULL : jw_bool(r->ok));
	jw_set(o, "detail", jw_str(r->ok == 1 && r->text[0] ? r->text : NULL));
	jw_set(o, "reason", jw_str(r->ok != 1 ? r->text : NULL));
	return o;
}

static void print_text(const struct probe *p, FILE *f)
{
	char v[1024];

	verdict(p, v, sizeof(v));
	fprintf(f, "%s\nkernel: %s\nlibpmtrack: %s\n", v, p->h.u.release,
		pmtrack_version());
	if (p->auto_err) {
		fprintf(f, "backend: none (%s)\ncaps:\n",
			strerror(p->auto_err));
	} else {
		fprintf(f,
			"backend: %s\ncaps:", pmtrack_backend_name(p->auto_b));
		for (size_t i = 0; i < NCAPS; i++)
			if (p->auto_caps & cap_names[i].cap)
				fprintf(f, " %s", cap_names[i].name);
		fputc('\n', f);
	}
	fprintf(f, "kernel config: %s\n",
		p->h.config[0] ? p->h.config : "none readable");
	for (int s = 0; s < SEC_MAX; s++) {
		fprintf(f, "%s\n", sec_titles[s]);
		for (int i = 0; i < p->nrows; i++)
			if (p->rows[i].sec == (enum section)s)
				put_row(f, &p->rows[i], true);
	}
}

/* the text of the first row (of those --feature named, with @asked) whose
   probe failed unexpectedly, or NULL */
static const char *first_failure(const struct probe *p, bool asked)
{
	for (int i = 0; i < p->nrows; i++)
		if (p->rows[i].ok < 0 && (!asked || p->rows[i].asked))
			return p->rows[i].text;
	return NULL;
}

static int print_json(const struct probe *p, FILE *f)
{
	struct json_object *doc = jw_obj(), *caps = jw_arr(), *rem = jw_obj();
	struct json_object *feats = jw_arr(), *pst = jw_arr();
	const struct row *r = p->remote;
	char v[1024];

	verdict(p, v, sizeof(v));
	jw_set(doc, "cmd", jw_str("probe"));
	jw_set(doc, "type", jw_str("result"));
	/* as the exit status: false if a probe failed unexpectedly */
	jw_set(doc, "ok", jw_bool(!first_failure(p, false)));
	jw_set(doc, "error", jw_str(first_failure(p, false)));
	jw_set(doc, "verdict", jw_str(v));
	jw_set(doc, "backend",
	       p->auto_err ? NULL : jw_str(pmtrack_backend_name(p->auto_b)));
	for (size_t i = 0; !p->auto_err && i < NCAPS; i++)
		if (p->auto_caps & cap_names[i].cap)
			jw_push(caps, jw_str(cap_names[i].name));
	jw_set(doc, "caps", caps);
	jw_set(rem, "ok", r->ok < 0 ? NULL : jw_bool(r->ok));
	jw_set(rem, "how", jw_str(r->ok == 1 ? r->text : NULL));
	jw_set(rem, "reason", jw_str(r->ok != 1 ? r->text : NULL));
	jw_set(rem, "pid", p->pid ? jw_i64(p->pid) : NULL);
	jw_set(doc, "remote", rem);
	for (int i = 0; i < p->nrows; i++)
		jw_push(p->rows[i].sec == SEC_PAGESTATE ? pst : feats,
			json_row(&p->rows[i]));
	jw_set(doc, "features", feats);
	jw_set(doc, "pagestate", pst);
	jw_set(doc, "swap_areas",
	       p->swap_areas < 0 ? NULL : jw_i64(p->swap_areas));
	jw_set(doc, "kernel", jw_str(p->h.u.release));
	jw_set(doc, "kernel_config",
	       jw_str(p->h.config[0] ? p->h.config : NULL));
	jw_set(doc, "library", jw_str(pmtrack_version()));
	return jw_print("probe", f, doc);
}

/* --feature: the rows asked, one line each or one JSON object */
static int print_asked(const struct probe *p, FILE *f, bool json)
{
	struct json_object *doc = NULL, *feats = NULL;
	bool all = true;
	int ret = CLI_OK;

	if (json) {
		doc = jw_obj();
		feats = jw_arr();
		jw_set(doc, "cmd", jw_str("probe"));
		jw_set(doc, "type", jw_str("result"));
	}
	for (int i = 0; i < p->nrows; i++) {
		if (!p->rows[i].asked)
			continue;
		all = all && p->rows[i].ok == 1;
		if (json)
			jw_push(feats, json_row(&p->rows[i]));
		else
			put_row(f, &p->rows[i], false);
	}
	if (json) {
		/* as the exit status: every feature asked for is usable */
		jw_set(doc, "ok", jw_bool(all));
		jw_set(doc, "error", jw_str(first_failure(p, true)));
		jw_set(doc, "features", feats);
		ret = jw_print("probe", f, doc);
	}
	return ret ? ret : all ? CLI_OK : CLI_ERROR;
}

/* ---- the command line --------------------------------------------------- */

enum {
	OPT_JSON = ARG_OPT,
	OPT_FEATURE,
	OPT_PID,
	OPT_LIST,
};

struct probe_args {
	struct probe *p;
	bool json, list, any;
};

static bool probe_take(struct cmdline *c, int id, void *arg)
{
	struct probe_args *a = arg;
	struct row *r;
	uint64_t v;

	switch (id) {
	case OPT_JSON:
		a->json = true;
		break;
	case OPT_LIST:
		a->list = true;
		break;
	case OPT_PID:
		if (!opt_u64(c, false, 1, INT32_MAX, &v))
			return false;
		a->p->pid = (pid_t)v;
		break;
	case OPT_FEATURE:
		r = find_row(a->p, c->val);
		if (r) {
			r->asked = a->any = true;
			break;
		}
		return bad_usage(c,
				 "bad value for --feature: '%s' (want a name "
				 "'pmtrack probe --list-features' prints)",
				 c->val);
	default:
		return bad_usage(c, "unexpected argument '%s'", c->val);
	}
	return true;
}

/* is a row of section @sec named by --feature? */
static bool needed(const struct probe *p, enum section sec)
{
	for (int i = 0; i < p->nrows; i++)
		if (p->rows[i].sec == sec && p->rows[i].asked)
			return true;
	return false;
}

int cmd_probe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "feature", required_argument, NULL, OPT_FEATURE },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "list-features", no_argument, NULL, OPT_LIST },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	const struct cmdline_spec spec = { .cmd = "probe",
					   .usage = probe_usage,
					   .opts = opts,
					   .take = probe_take };
	struct probe *p = calloc(1, sizeof(*p));
	struct probe_args a = { .p = p };
	int ret = CLI_OK;

	if (!p) {
		cli_err("probe", "%s", strerror(ENOMEM));
		return CLI_ERROR;
	}
	add_rows(p);
	ret = parse_args(&spec, argc, argv, &a);
	if (ret >= 0)
		goto out;
	ret = CLI_OK;
	if (a.list) {
		for (int i = 0; i < p->nrows; i++)
			printf("%s\n", p->rows[i].name);
		goto out;
	}
	host_look(&p->h);
	uffd_look(p);
	probe_features(p);
	probe_backends(p);
	probe_caps(p);
	/* --feature asks for rows: remote tracking (a child attached with
	   ptrace) and the page-state maps only when one of theirs is named */
	if (!a.any || needed(p, SEC_REMOTE)) {
		if (p->pid)
			remote_pid(p, p->remote, p->pid);
		else
			remote_child(p, p->remote);
	}
	if (!a.any || needed(p, SEC_PAGESTATE))
		probe_pagestate(p);
	for (int i = 0; i < p->nrows; i++) {
		if (p->rows[i].ok >= 0 || (a.any && !p->rows[i].asked))
			continue;
		cli_err("probe", "%s: %s", p->rows[i].name, p->rows[i].text);
		ret = CLI_ERROR;
	}
	if (a.any)
		ret = print_asked(p, stdout, a.json);
	else if (a.json && print_json(p, stdout))
		ret = CLI_ERROR;
	else if (!a.json)
		print_text(p, stdout);
out:
	free(p);
	return cli_flush("probe", stdout) ? CLI_ERROR : ret;
}

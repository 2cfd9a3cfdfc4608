// SPDX-License-Identifier: MIT
/* pmtrack probe: what this kernel and this process can use. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>

#include "args.h"
#include "cli.h"
#include "pstate.h"

static void probe_usage(FILE *f)
{
	fputs("usage: pmtrack probe [--json]\n"
	      "\n"
	      "Exercise each kernel feature libpmtrack can use and print what\n"
	      "works for this process: PAGEMAP_SCAN and its categories,\n"
	      "userfaultfd write-protect (async and sync), soft-dirty, the\n"
	      "backend the library picks and its guarantees, and what "
	      "page-state\n"
	      "maps can tell here (frame numbers, map_files, cachestat, "
	      "swap).\n"
	      "Exit status 0, or 1 if a probe failed unexpectedly.\n",
	      f);
}

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

/* does opening /proc/self/map_files/... work (CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE)? */
static int map_files_ok(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)pg, PROT_READ, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	char path[96];
	int fd;

	if (p == MAP_FAILED)
		return -errno;
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)p, (unsigned long)p + (unsigned long)pg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	munmap(p, (size_t)pg);
	return fd >= 0;
}

static int cachestat_ok(void)
{
	struct {
		uint64_t off, len;
	} r = { 0, 0 };
	uint64_t cs[5];
	int fd = memfd_create("pmtrack-probe", MFD_CLOEXEC), ok;

	if (fd < 0)
		return -errno;
	ok = syscall(451 /* cachestat */, fd, &r, cs, 0) == 0;
	close(fd);
	return ok;
}

/* active swap areas, from /proc/swaps */
static int swap_areas(void)
{
	FILE *f = fopen("/proc/swaps", "r");
	char line[512];
	int n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

static void put_bool(FILE *f, bool json, const char *key, int v, bool *first)
{
	if (json)
		fprintf(f, "%s\"%s\":%s", *first ? "" : ",", key,
			v < 0 ? "null"
			: v   ? "true"
			      : "false");
	else
		fprintf(f, "  %-28s %s\n", key,
			v < 0 ? "unknown"
			: v   ? "yes"
			      : "no");
	*first = false;
}

int cmd_probe(int argc, char **argv)
{
	struct pmtrack_pstate *ps = NULL;
	struct pmtrack *t = NULL;
	struct utsname u;
	bool json = false, first = true;
	int ret = CLI_OK, r;
	FILE *f = stdout;

	r = parse_json_args("probe", argc, argv, &json, NULL, 0, probe_usage);
	if (r >= 0)
		return r;
	if (uname(&u))
		strcpy(u.release, "?");
	if (json) {
		fputs("{\"kernel\":", f);
		put_str(f, u.release, true);
		fprintf(f, ",\"library\":\"%s\",\"features\":{",
			pmtrack_version());
	} else {
		fprintf(f, "kernel: %s\nlibpmtrack: %s\nfeatures:\n", u.release,
			pmtrack_version());
	}
	for (int i = 1; i < PMTRACK_FEAT_MAX; i++) {
		r = pmtrack_probe((enum pmtrack_feature)i, NULL);
		if (r < 0) {
			fprintf(stderr, "pmtrack probe: %s: %s\n",
				pmtrack_feature_name((enum pmtrack_feature)i),
				strerror(-r));
			ret = CLI_ERROR;
		}
		put_bool(f, json, pmtrack_feature_name((enum pmtrack_feature)i),
			 r, &first);
	}
	r = pmtrack_new(NULL, &t);
	if (json) {
		fputs("},\"backend\":", f);
		put_str(f, r ? NULL : pmtrack_backend_name(pmtrack_backend(t)),
			true);
		fputs(",\"caps\":[", f);
	} else if (r) {
		fprintf(f, "backend: none (%s)\n", strerror(-r));
	} else {
		fprintf(f, "backend: %s\ncaps:",
			pmtrack_backend_name(pmtrack_backend(t)));
	}
	first = true;
	for (size_t i = 0; !r && i < sizeof(cap_names) / sizeof(*cap_names);
	     i++) {
		if (!(pmtrack_caps(t) & cap_names[i].cap))
			continue;
		fprintf(f, json ? "%s\"%s\"" : "%s%s",
			json && !first ? "," : " ", cap_names[i].name);
		first = false;
	}
	fputs(json ? "],\"pagestate\":{" : "\npage states:\n", f);
	pmtrack_free(t);

	first = true;
	r = pmtrack_pstate_new(NULL, &ps);
	if (r) {
		fprintf(stderr, "pmtrack probe: page states: %s\n",
			strerror(-r));
		ret = CLI_ERROR;
	} else {
		unsigned int known = pmtrack_pstate_known(ps);

		put_bool(f, json, "pagemap-scan", pmtrack_pstate_uses_scan(ps),
			 &first);
		for (int i = 0; i < PMTRACK_PAGE_NSTATES; i++) {
			char key[40];

			snprintf(key, sizeof(key), "reports-%s",
				 state_names[i]);
			put_bool(f, json, key, !!(known & (1u << i)), &first);
		}
		put_bool(f, json, "map-files (shared memory of any process)",
			 map_files_ok(), &first);
		put_bool(f, json, "cachestat (swap-cache pages)",
			 cachestat_ok(), &first);
		if (json)
			fprintf(f, ",\"swap-areas\":%d", swap_areas());
		else
			fprintf(f, "  %-28s %d\n", "swap-areas", swap_areas());
		pmtrack_pstate_free(ps);
	}
	if (json)
		fputs("}}\n", f);
	return cli_flush("probe", f) ? CLI_ERROR : ret;
}

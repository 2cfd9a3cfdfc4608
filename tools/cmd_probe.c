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

#include "cmdline.h"
#include "cli.h"
#include "jsonw.h"
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

/* where the report goes: text on f, or the JSON document */
struct probe_out {
	FILE *f;
	bool json;
	struct json_object *doc;
	struct json_object *sect; /* the object put_bool() adds to */
};

/* a yes/no/unknown line, or a true/false/null member */
static void put_bool(struct probe_out *o, const char *key, int v)
{
	if (o->json)
		jw_set(o->sect, key, v < 0 ? NULL : jw_bool(v));
	else
		fprintf(o->f, "  %-28s %s\n", key,
			v < 0 ? "unknown"
			: v   ? "yes"
			      : "no");
}

/* a JSON member that is an object put_bool() adds to from now on */
static void json_section(struct probe_out *o, const char *key)
{
	o->sect = jw_obj();
	jw_set(o->doc, key, o->sect);
}

/* the kernel, the library and what each feature probe says */
static int probe_features(struct probe_out *o)
{
	struct utsname u;
	int ret = CLI_OK, r;

	if (uname(&u))
		strcpy(u.release, "?");
	if (o->json) {
		o->doc = jw_obj();
		jw_set(o->doc, "kernel", jw_str(u.release));
		jw_set(o->doc, "library", jw_str(pmtrack_version()));
		json_section(o, "features");
	} else {
		fprintf(o->f, "kernel: %s\nlibpmtrack: %s\nfeatures:\n",
			u.release, pmtrack_version());
	}
	for (int i = 1; i < PMTRACK_FEAT_MAX; i++) {
		enum pmtrack_feature ft = (enum pmtrack_feature)i;

		r = pmtrack_probe(ft, NULL);
		if (r < 0) {
			cli_err("probe", "%s: %s", pmtrack_feature_name(ft),
				strerror(-r));
			ret = CLI_ERROR;
		}
		put_bool(o, pmtrack_feature_name(ft), r);
	}
	return ret;
}

/* the backend pmtrack_new() picks here, and its caps */
static void probe_backend(struct probe_out *o)
{
	struct json_object *caps = NULL;
	struct pmtrack *t = NULL;
	int r = pmtrack_new(NULL, &t);

	if (o->json) {
		jw_set(o->doc, "backend",
		       r ? NULL
			 : jw_str(pmtrack_backend_name(pmtrack_backend(t))));
		caps = jw_arr();
		jw_set(o->doc, "caps", caps);
	} else if (r) {
		fprintf(o->f, "backend: none (%s)\n", strerror(-r));
	} else {
		fprintf(o->f, "backend: %s\ncaps:",
			pmtrack_backend_name(pmtrack_backend(t)));
	}
	for (size_t i = 0; !r && i < sizeof(cap_names) / sizeof(*cap_names);
	     i++) {
		if (!(pmtrack_caps(t) & cap_names[i].cap))
			continue;
		if (o->json)
			jw_push(caps, jw_str(cap_names[i].name));
		else
			fprintf(o->f, " %s", cap_names[i].name);
	}
	if (!o->json)
		fputs("\npage states:\n", o->f);
	pmtrack_free(t);
}

/* what page-state maps can tell here */
static int probe_pagestate(struct probe_out *o)
{
	struct pmtrack_pstate *ps = NULL;
	unsigned int known;
	char key[40];
	int r;

	if (o->json)
		json_section(o, "pagestate");
	r = pmtrack_pstate_new(NULL, &ps);
	if (r) {
		cli_err("probe", "page states: %s", strerror(-r));
		return CLI_ERROR;
	}
	known = pmtrack_pstate_known(ps);
	put_bool(o, "pagemap-scan", pmtrack_pstate_uses_scan(ps));
	for (int i = 0; i < PMTRACK_PAGE_NSTATES; i++) {
		snprintf(key, sizeof(key), "reports-%s", state_names[i]);
		put_bool(o, key, !!(known & (1u << i)));
	}
	put_bool(o, "map-files (shared memory of any process)", map_files_ok());
	put_bool(o, "cachestat (swap-cache pages)", cachestat_ok());
	if (o->json)
		jw_set(o->sect, "swap-areas", jw_i64(swap_areas()));
	else
		fprintf(o->f, "  %-28s %d\n", "swap-areas", swap_areas());
	pmtrack_pstate_free(ps);
	return CLI_OK;
}

int cmd_probe(int argc, char **argv)
{
	struct probe_out o = { .f = stdout };
	int ret, r;

	r = parse_json_args("probe", argc, argv, &o.json, NULL, 0, probe_usage);
	if (r >= 0)
		return r;
	ret = probe_features(&o);
	probe_backend(&o);
	if (probe_pagestate(&o))
		ret = CLI_ERROR;
	if (o.json && jw_print("probe", o.f, o.doc))
		ret = CLI_ERROR;
	return cli_flush("probe", o.f) ? CLI_ERROR : ret;
}

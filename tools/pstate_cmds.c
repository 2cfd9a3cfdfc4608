// SPDX-License-Identifier: MIT
/*
 * pmtrack probe: what this kernel and this process can use.
 * pmtrack stat PID: per mapping, how many pages are present, swapped, file,
 * zero, exclusive, huge, written, unsure, guard.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>

#include "cli.h"

static const char *const state_names[PMTRACK_PAGE_NSTATES] = {
	"present", "swapped", "file",	"zero",	 "exclusive",
	"huge",	   "written", "unsure", "guard",
};

/* --json and --help, plus at most @npos positional arguments */
static int parse(const char *cmd, int argc, char **argv, bool *json, char **pos,
		 int npos, void (*usage)(FILE *))
{
	int got = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			*json = true;
		} else if (!strcmp(argv[i], "--help") ||
			   !strcmp(argv[i], "-h")) {
			usage(stdout);
			return CLI_OK;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "pmtrack %s: unknown option %s\n", cmd,
				argv[i]);
			usage(stderr);
			return CLI_USAGE;
		} else if (got == npos) {
			fprintf(stderr, "pmtrack %s: unexpected argument %s\n",
				cmd, argv[i]);
			usage(stderr);
			return CLI_USAGE;
		} else {
			pos[got++] = argv[i];
		}
	}
	if (got < npos) {
		fprintf(stderr, "pmtrack %s: missing argument\n", cmd);
		usage(stderr);
		return CLI_USAGE;
	}
	return -1;
}

static int finish(const char *cmd, FILE *f, int ret)
{
	if (fflush(f) || ferror(f)) {
		fprintf(stderr, "pmtrack %s: writing output: %s\n", cmd,
			strerror(errno));
		return CLI_ERROR;
	}
	return ret;
}

/* ---- probe --------------------------------------------------------------- */

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

	r = parse("probe", argc, argv, &json, NULL, 0, probe_usage);
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
	return finish("probe", f, ret);
}

/* ---- stat ---------------------------------------------------------------- */

static void stat_usage(FILE *f)
{
	fputs("usage: pmtrack stat [--json] PID\n"
	      "\n"
	      "Per mapping of process PID (0 or self for this one), the number "
	      "of\n"
	      "pages in each state: present (in RAM), swapped, file (page "
	      "cache or\n"
	      "shared memory), zero (the shared zero page), exclusive (mapped "
	      "by\n"
	      "PID alone), huge, written (since tracking was reset, in "
	      "mappings\n"
	      "the kernel tracks), unsure (swapped or never populated: could "
	      "not\n"
	      "tell), guard.  Shared memory that pagemap does not show is "
	      "looked\n"
	      "up in its backing object.  For a shared mapping, \"elsewhere\" "
	      "says\n"
	      "whether another process (or another mapping in PID) maps its "
	      "pages\n"
	      "too: yes, no, or unknown when some of its present pages are "
	      "not\n"
	      "mapped by PID itself (in the object only, or unsure).  Needs\n"
	      "ptrace-read access to PID.\n",
	      f);
}

static void kind_str(const struct pmtrack_mapping *m, char *buf, size_t n)
{
	snprintf(buf, n, "%s",
		 m->flags & PMTRACK_MAP_SPECIAL	  ? "special"
		 : m->flags & PMTRACK_MAP_HUGETLB ? "hugetlb"
		 : m->flags & PMTRACK_MAP_SHMEM	  ? "shmem"
		 : m->flags & PMTRACK_MAP_ANON	  ? "anon"
		 : m->flags & PMTRACK_MAP_SHARED  ? "file-shared"
						  : "file");
}

/* pages of @c with the one state @st */
static uint64_t count_of(const struct pmtrack_page_counts *c, unsigned int st)
{
	return c->state[__builtin_ctz(st)];
}

/*
 * A shared mapping whose present pages another process (or another mapping
 * in the process) maps too: "yes", "no", or "unknown" when some present
 * pages are not mapped by the process (only in the shared-memory object,
 * or unsure: anyone may map those) or pagemap's exclusive bit is not known
 * here.  NULL for a private mapping.
 */
static const char *elsewhere(const struct pmtrack_mapping *m,
			     const struct pmtrack_page_counts *c,
			     unsigned int known)
{
	if (!(m->flags & PMTRACK_MAP_SHARED) || m->flags & PMTRACK_MAP_SPECIAL)
		return NULL;
	if (!(known & PMTRACK_PAGE_EXCLUSIVE))
		return "unknown";
	if (m->flags & PMTRACK_MAP_MAPPED_ELSEWHERE)
		return "yes";
	if (count_of(c, PMTRACK_PAGE_EXCLUSIVE) <
		    count_of(c, PMTRACK_PAGE_PRESENT) ||
	    count_of(c, PMTRACK_PAGE_UNSURE))
		return "unknown";
	return "no";
}

/* the counts of one row: JSON members from "pages" on, or table columns */
static void put_counts(FILE *f, const struct pmtrack_page_counts *c, bool json)
{
	if (json) {
		fprintf(f, "\"pages\":%" PRIu64, c->pages);
		for (int s = 0; s < PMTRACK_PAGE_NSTATES; s++)
			fprintf(f, ",\"%s\":%" PRIu64, state_names[s],
				c->state[s]);
		return;
	}
	fprintf(f, " %8" PRIu64, c->pages);
	for (int s = 0; s <= 7; s++) /* present .. unsure; guard in JSON */
		fprintf(f, s == 7 ? " %6" PRIu64 : " %8" PRIu64, c->state[s]);
}

#define PF_KTHREAD 0x00200000 /* /proc/PID/stat flags: a kernel thread */

/* the first line of /proc/@pid/@file starting with @key, into @buf */
static bool proc_line(long pid, const char *file, const char *key, char *buf,
		      size_t n)
{
	char path[64];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/%s", pid, file);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!found && fgets(buf, (int)n, f))
		found = !strncmp(buf, key, strlen(key));
	fclose(f);
	return found;
}

/*
 * The library says ESRCH for a process that exists but has no memory to
 * show (and unprivileged callers get EACCES or EPERM for it): a kernel
 * thread, a zombie, or a process whose main thread exited while others run
 * on (their memory is reached through their own ids).  Say which, and
 * return true; false if it is none of those.
 */
static bool explain_no_memory(long pid, int err)
{
	char buf[1024], state, *p;
	unsigned long flags;
	int threads = 0;

	if (!pid || (err != -ESRCH && err != -EACCES && err != -EPERM) ||
	    !proc_line(pid, "stat", "", buf, sizeof(buf)))
		return false;
	/* "PID (comm) S ppid pgrp session tty_nr tpgid flags ..."; comm may
	 * hold spaces and parentheses */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2)
		return false;
	if (flags & PF_KTHREAD) {
		fprintf(stderr,
			"pmtrack stat: PID %ld is a kernel thread: it has no "
			"user memory\n",
			pid);
		return true;
	}
	if (state != 'Z' && state != 'X')
		return false;
	if (proc_line(pid, "status", "Threads:", buf, sizeof(buf)))
		threads = atoi(buf + strlen("Threads:"));
	if (threads > 1)
		fprintf(stderr,
			"pmtrack stat: PID %ld's main thread has exited, its "
			"other threads run on: give one of their ids (see "
			"/proc/%ld/task)\n",
			pid, pid);
	else
		fprintf(stderr,
			"pmtrack stat: PID %ld is a zombie: its memory is "
			"gone\n",
			pid);
	return true;
}

int cmd_stat(int argc, char **argv)
{
	struct pmtrack_page_counts tot = { .sz = sizeof(tot) };
	const struct pmtrack_mapping *maps;
	struct pmtrack_pstate *ps = NULL;
	char *pos[1], *end;
	bool json = false;
	size_t n;
	long pid;
	int r;
	FILE *f = stdout;

	r = parse("stat", argc, argv, &json, pos, 1, stat_usage);
	if (r >= 0)
		return r;
	errno = 0;
	pid = strcmp(pos[0], "self") ? strtol(pos[0], &end, 10) : 0;
	if (strcmp(pos[0], "self") &&
	    (errno || *end || end == pos[0] || pid < 0 || pid > 0x7fffffff)) {
		fprintf(stderr, "pmtrack stat: not a process id: %s\n", pos[0]);
		return CLI_USAGE;
	}
	{
		PMTRACK_OPTS(pmtrack_pstate_opts, o, .pid = (int)pid);

		r = pmtrack_pstate_new(&o, &ps);
	}
	if (!r)
		r = pmtrack_pstate_maps(ps, &maps, &n);
	if (r) {
		if (!explain_no_memory(pid, r))
			fprintf(stderr, "pmtrack stat: process %ld: %s\n", pid,
				strerror(-r));
		pmtrack_pstate_free(ps);
		return CLI_ERROR;
	}
	if (json)
		fprintf(f, "{\"pid\":%ld,\"page_size\":%ld,\"known\":[", pid,
			sysconf(_SC_PAGESIZE));
	else
		fprintf(f,
			"%-12s %-12s %-4s %-11s %8s %8s %8s %8s %8s %8s %8s "
			"%8s %6s %-9s  %s\n",
			"start", "end", "perm", "kind", "pages", "present",
			"swapped", "file", "zero", "excl", "huge", "written",
			"unsure", "elsewhere", "name");
	for (int i = 0, k = 0; json && i < PMTRACK_PAGE_NSTATES; i++)
		if (pmtrack_pstate_known(ps) & (1u << i))
			fprintf(f, "%s\"%s\"", k++ ? "," : "", state_names[i]);
	if (json)
		fputs("],\"mappings\":[", f);
	for (size_t i = 0; i < n; i++) {
		const struct pmtrack_mapping *m = &maps[i];
		struct pmtrack_page_counts c = { .sz = sizeof(c) };
		char kind[16], perm[5];
		const char *shared;

		r = pmtrack_pstate_count(ps, m->start, m->end, PMTRACK_PAGE_ALL,
					 &c);
		if (r) {
			if (!explain_no_memory(pid, r))
				fprintf(stderr,
					"pmtrack stat: mapping %" PRIx64
					"-%" PRIx64 ": %s\n",
					m->start, m->end, strerror(-r));
			if (json)
				fputs("]}\n", f);
			pmtrack_pstate_free(ps);
			finish("stat", f, CLI_ERROR);
			return CLI_ERROR;
		}
		kind_str(m, kind, sizeof(kind));
		shared = elsewhere(m, &c, pmtrack_pstate_known(ps));
		snprintf(perm, sizeof(perm), "%c%c%c%c",
			 m->prot & PROT_READ ? 'r' : '-',
			 m->prot & PROT_WRITE ? 'w' : '-',
			 m->prot & PROT_EXEC ? 'x' : '-',
			 m->flags & PMTRACK_MAP_SHARED ? 's' : 'p');
		tot.pages += c.pages;
		for (int s = 0; s < PMTRACK_PAGE_NSTATES; s++)
			tot.state[s] += c.state[s];
		if (json) {
			fprintf(f,
				"%s{\"start\":%" PRIu64 ",\"end\":%" PRIu64
				",\"perm\":\"%s\",\"kind\":\"%s\",\"tracked\":%"
				"s,"
				"\"name\":",
				i ? "," : "", m->start, m->end, perm, kind,
				m->flags & PMTRACK_MAP_TRACKED ? "true"
							       : "false");
			put_str(f, m->name, true);
			fputs(",\"mapped_elsewhere\":", f);
			put_str(f, shared, true);
			fputc(',', f);
			put_counts(f, &c, true);
			fputc('}', f);
		} else {
			fprintf(f, "%-12" PRIx64 " %-12" PRIx64 " %-4s %-11s",
				m->start, m->end, perm, kind);
			put_counts(f, &c, false);
			fprintf(f, " %-9s  %s\n", shared ? shared : "-",
				m->name);
		}
	}
	if (json)
		fputs("],\"total\":{", f);
	else
		fprintf(f, "%-42s", "total");
	put_counts(f, &tot, json);
	fputs(json ? "}}\n" : "\n", f);
	if (!json)
		fputs("elsewhere: a shared mapping's present pages are mapped "
		      "by another process or mapping too (yes/no); unknown: "
		      "some are not mapped by PID, so cannot tell\n",
		      f);
	pmtrack_pstate_free(ps);
	return finish("stat", f, CLI_OK);
}

// SPDX-License-Identifier: MIT
/*
 * pmtrack stat PID: per mapping, how many pages are present, swapped, file,
 * zero, exclusive, huge, written, unsure, guard.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>

#include "args.h"
#include "cli.h"
#include "pstate.h"

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
	const char *pos[1];
	char *end;
	bool json = false;
	size_t n;
	long pid;
	int r;
	FILE *f = stdout;

	r = parse_json_args("stat", argc, argv, &json, pos, 1, stat_usage);
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
			cli_flush("stat", f);
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
	return cli_flush("stat", f);
}

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

#include "cmdline.h"
#include "cli.h"
#include "jsonw.h"
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
	      "ptrace-read access to PID.\n"
	      "  --json                one JSON result object on stdout "
	      "(see pmtrack(1),\n"
	      "                        JSON OUTPUT)\n",
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

/* where the table goes: text on f, or the JSON document */
struct stat_out {
	FILE *f;
	bool json;
	struct json_object *doc;
	struct json_object *maps; /* the "mappings" array */
};

/* the counts of one row: JSON members from "pages" on */
static void counts_json(struct json_object *o,
			const struct pmtrack_page_counts *c)
{
	jw_set(o, "pages", jw_u64(c->pages));
	for (int s = 0; s < PMTRACK_PAGE_NSTATES; s++)
		jw_set(o, state_names[s], jw_u64(c->state[s]));
}

/* the counts of one row: table columns */
static void counts_text(FILE *f, const struct pmtrack_page_counts *c)
{
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

/* PID, or 0 for "self"; false if @s is neither */
static bool parse_pid(const char *s, long *pid)
{
	char *end;

	*pid = 0;
	if (!strcmp(s, "self"))
		return true;
	errno = 0;
	*pid = strtol(s, &end, 10);
	return !errno && !*end && end != s && *pid >= 0 && *pid <= 0x7fffffff;
}

/* The header line, or the members before "mappings". */
static void stat_begin(struct stat_out *o, long pid, unsigned int known)
{
	struct json_object *k;

	if (!o->json) {
		fprintf(o->f,
			"%-12s %-12s %-4s %-11s %8s %8s %8s %8s %8s %8s %8s "
			"%8s %6s %-9s  %s\n",
			"start", "end", "perm", "kind", "pages", "present",
			"swapped", "file", "zero", "excl", "huge", "written",
			"unsure", "elsewhere", "name");
		return;
	}
	o->doc = jw_obj();
	jw_set(o->doc, "pid", jw_i64(pid));
	jw_set(o->doc, "page_size_bytes", jw_i64(sysconf(_SC_PAGESIZE)));
	k = jw_arr();
	for (int i = 0; i < PMTRACK_PAGE_NSTATES; i++)
		if (known & (1u << i))
			jw_push(k, jw_str(state_names[i]));
	jw_set(o->doc, "known", k);
	o->maps = jw_arr();
	jw_set(o->doc, "mappings", o->maps);
}

/* One mapping's row, counted: 0 or -errno. */
static int stat_row(struct stat_out *o, struct pmtrack_pstate *ps,
		    const struct pmtrack_mapping *m,
		    struct pmtrack_page_counts *tot)
{
	struct pmtrack_page_counts c = { .sz = sizeof(c) };
	struct json_object *row;
	char kind[16], perm[5];
	const char *shared;
	int r;

	r = pmtrack_pstate_count(ps, m->start, m->end, PMTRACK_PAGE_ALL, &c);
	if (r)
		return r;
	kind_str(m, kind, sizeof(kind));
	shared = elsewhere(m, &c, pmtrack_pstate_known(ps));
	snprintf(perm, sizeof(perm), "%c%c%c%c",
		 m->prot & PROT_READ ? 'r' : '-',
		 m->prot & PROT_WRITE ? 'w' : '-',
		 m->prot & PROT_EXEC ? 'x' : '-',
		 m->flags & PMTRACK_MAP_SHARED ? 's' : 'p');
	tot->pages += c.pages;
	for (int s = 0; s < PMTRACK_PAGE_NSTATES; s++)
		tot->state[s] += c.state[s];
	if (!o->json) {
		fprintf(o->f, "%-12" PRIx64 " %-12" PRIx64 " %-4s %-11s",
			m->start, m->end, perm, kind);
		counts_text(o->f, &c);
		fprintf(o->f, " %-9s  %s\n", shared ? shared : "-", m->name);
		return 0;
	}
	row = jw_obj();
	jw_set(row, "start", jw_addr(m->start));
	jw_set(row, "end", jw_addr(m->end));
	jw_set(row, "perm", jw_str(perm));
	jw_set(row, "kind", jw_str(kind));
	jw_set(row, "tracked", jw_bool(m->flags & PMTRACK_MAP_TRACKED));
	jw_set(row, "name", jw_str(m->name));
	jw_set(row, "mapped_elsewhere", jw_str(shared));
	counts_json(row, &c);
	jw_push(o->maps, row);
	return 0;
}

/* The total line and the legend, or the "total" member. */
static void stat_total(struct stat_out *o,
		       const struct pmtrack_page_counts *tot)
{
	struct json_object *t;

	if (o->json) {
		t = jw_obj();
		counts_json(t, tot);
		jw_set(o->doc, "total", t);
		return;
	}
	fprintf(o->f, "%-42s", "total");
	counts_text(o->f, tot);
	fputs("\nelsewhere: a shared mapping's present pages are mapped by "
	      "another process or mapping too (yes/no); unknown: some are "
	      "not mapped by PID, so cannot tell\n",
	      o->f);
}

/* The mappings of @pid, or an exit code after a message. */
static int stat_open(long pid, struct pmtrack_pstate **ps,
		     const struct pmtrack_mapping **maps, size_t *n)
{
	PMTRACK_OPTS(pmtrack_pstate_opts, o, .pid = (int)pid);
	int r = pmtrack_pstate_new(&o, ps);

	if (!r)
		r = pmtrack_pstate_maps(*ps, maps, n);
	if (!r)
		return CLI_OK;
	if (!explain_no_memory(pid, r))
		cli_err("stat", "process %ld: %s", pid, strerror(-r));
	pmtrack_pstate_free(*ps);
	return CLI_ERROR;
}

/* the result object (with --json), and the exit code */
static int stat_print(struct stat_out *o, long pid, int ret)
{
	struct json_object *doc;

	if (o->json) {
		doc = jw_head("stat", "result");
		jw_outcome(doc, ret);
		if (!o->doc) {
			/* failed before the first mapping */
			jw_set(doc, "pid", jw_i64(pid));
			jw_set(doc, "page_size_bytes", NULL);
			jw_set(doc, "known", NULL);
			jw_set(doc, "mappings", NULL);
		}
		jw_merge(doc, o->doc);
		if (ret)
			jw_set(doc, "total", NULL);
		o->doc = NULL;
		if (jw_print("stat", o->f, doc))
			ret = CLI_ERROR;
	}
	if (cli_flush("stat", o->f))
		ret = CLI_ERROR;
	return ret;
}

int cmd_stat(int argc, char **argv)
{
	struct pmtrack_page_counts tot = { .sz = sizeof(tot) };
	struct stat_out o = { .f = stdout };
	const struct pmtrack_mapping *maps;
	struct pmtrack_pstate *ps = NULL;
	const char *pos[1];
	int r, ret = CLI_OK;
	size_t n, i;
	long pid;

	r = parse_json_args("stat", argc, argv, &o.json, pos, 1, stat_usage);
	if (r >= 0)
		return r;
	if (!parse_pid(pos[0], &pid)) {
		cli_err("stat",
			"bad value for PID: '%s' (want a process id, "
			"or self)",
			pos[0]);
		cli_hint("stat");
		return CLI_USAGE;
	}
	if (stat_open(pid, &ps, &maps, &n))
		return stat_print(&o, pid, CLI_ERROR);
	stat_begin(&o, pid, pmtrack_pstate_known(ps));
	for (i = 0, r = 0; i < n; i++) {
		r = stat_row(&o, ps, &maps[i], &tot);
		if (r)
			break;
	}
	if (r && !explain_no_memory(pid, r))
		cli_err("stat", "mapping %" PRIx64 "-%" PRIx64 ": %s",
			maps[i].start, maps[i].end, strerror(-r));
	if (r)
		ret = CLI_ERROR;
	else
		stat_total(&o, &tot);
	pmtrack_pstate_free(ps);
	return stat_print(&o, pid, ret);
}

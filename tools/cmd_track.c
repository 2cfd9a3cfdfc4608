// SPDX-License-Identifier: MIT
/*
 * pmtrack track PID: the live dirty rate of any process, like QEMU's
 * calc-dirty-rate: every interval a collect (with reset) of everything
 * it wrote, the rates, a working-set estimate and the busiest mappings
 * (dirtyrate.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/process.h>

#include "args.h" /* support/: pmt_parse_u64() */
#include "cmdline.h"
#include "cli.h"
#include "dirtyrate.h"
#include "jsonw.h"
#include "progress.h" /* support/: pmt_bar_*() */

#define CMD "track"
#define TOP 5 /* mappings in a text report */

static void track_usage(FILE *f)
{
	fputs("usage: pmtrack track PID [--children] [--interval-ms MS] "
	      "[--count N] [--quiet]\n"
	      "                        [--json]\n"
	      "The live dirty rate of process PID: every MS ms, the pages it "
	      "wrote, per second\n"
	      "and in MiB/s, a working-set estimate (the distinct pages "
	      "written during the\n"
	      "last 10 intervals) and the mappings it wrote most.  The first "
	      "collect, which\n"
	      "reports every mapping in full, is taken at the start and not "
	      "counted; later\n"
	      "mappings reported in full (new, grown, moved: their writes "
	      "cannot be told) are\n"
	      "counted apart (full pages), not in the rates.  Needs ptrace "
	      "access to PID.\n"
	      "  --children            track the children it forks from now "
	      "on too\n"
	      "  --interval-ms MS      time between reports; default 500\n"
	      "  --count N             stop after N intervals; default: until "
	      "SIGINT or SIGTERM\n"
	      "  --quiet               no progress bar and no per-interval "
	      "lines: the totals\n"
	      "                        only (with --json: the result "
	      "alone)\n"
	      "  --json                JSON Lines on stdout: a status object "
	      "per interval, then\n"
	      "                        a result (see pmtrack(1), JSON "
	      "OUTPUT)\n",
	      f);
}

struct track_args {
	const char *pid_arg;
	uint64_t pid, interval_ms, count;
	bool children, json, quiet;
};

enum {
	OPT_CHILDREN = ARG_OPT,
	OPT_INTERVAL,
	OPT_COUNT,
	OPT_QUIET,
	OPT_JSON,
};

static bool track_opt(struct cmdline *p, int id, void *arg)
{
	struct track_args *a = arg;

	switch (id) {
	case ARG_POS:
		if (!take_one(p, &a->pid_arg, "PID"))
			return false;
		if (pmt_parse_u64(p->val, 0, 1, INT32_MAX, &a->pid))
			return bad_usage(p, "bad value for PID: '%s' (want a "
					    "process id, 1 to %d)",
					 p->val, INT32_MAX);
		break;
	case OPT_CHILDREN:
		a->children = true;
		break;
	case OPT_INTERVAL:
		return opt_u64(p, false, 1, 86400000, &a->interval_ms);
	case OPT_COUNT:
		return opt_u64(p, false, 1, UINT32_MAX, &a->count);
	case OPT_QUIET:
		a->quiet = true;
		break;
	case OPT_JSON:
		a->json = true;
		break;
	}
	return true;
}

static bool track_done(struct cmdline *p, void *arg)
{
	return ((struct track_args *)arg)->pid_arg || bad_usage(p, "no PID");
}

static int track_parse(struct track_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "children", no_argument, NULL, OPT_CHILDREN },
		{ "interval-ms", required_argument, NULL, OPT_INTERVAL },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "json", no_argument, NULL, OPT_JSON },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	static const struct cmdline_spec spec = { .cmd = CMD,
						  .usage = track_usage,
						  .opts = opts,
						  .take = track_opt,
						  .done = track_done };

	return parse_args(&spec, argc, argv, a);
}

/* ---- the reports --------------------------------------------------------- */

/* one interval: its length and the processes tracked */
struct track_iv {
	double secs;
	uint64_t processes;
	size_t *order; /* the mappings written, busiest first */
	size_t nwritten;
};

static double per_s(uint64_t v, double secs)
{
	return secs > 0 ? (double)v / secs : 0.0;
}

/* the totals over all intervals */
struct track_sum {
	uint64_t intervals, pages, t0;
	struct pmt_bar bar;
};

static const struct dr *sort_dr; /* for by_pages() */

static int by_pages(const void *a, const void *b)
{
	const struct dr_map *x = &sort_dr->m[*(const size_t *)a];
	const struct dr_map *y = &sort_dr->m[*(const size_t *)b];

	return x->pages < y->pages ? 1 : x->pages > y->pages ? -1 : 0;
}

/* the mappings written this interval into iv->order, busiest first */
static int rank(const struct dr *d, struct track_iv *iv)
{
	iv->order = malloc((d->n ? d->n : 1) * sizeof(size_t));
	iv->nwritten = 0;
	if (!iv->order)
		return -ENOMEM;
	for (size_t i = 0; i < d->n; i++)
		if (d->m[i].pages)
			iv->order[iv->nwritten++] = i;
	sort_dr = d;
	qsort(iv->order, iv->nwritten, sizeof(size_t), by_pages);
	return 0;
}

static int report_json(const struct dr *d, const struct track_iv *iv)
{
	struct json_object *o = jw_head(CMD, "status"), *maps = jw_arr();
	uint64_t win = d->interval < DR_WINDOW ? d->interval : DR_WINDOW;

	for (size_t k = 0; k < iv->nwritten; k++) {
		const struct dr_map *m = &d->m[iv->order[k]];
		struct json_object *j = jw_obj();

		jw_set(j, "pid", jw_i64(m->pid));
		jw_set(j, "start", jw_addr(m->start));
		jw_set(j, "end", jw_addr(m->end));
		jw_set(j, "name", jw_str(m->name));
		jw_set(j, "pages", jw_u64(m->pages));
		jw_set(j, "pages_per_s",
		       jw_fixed(per_s(m->pages, iv->secs), 1));
		jw_set(j, "ws_pages", jw_u64(m->ws));
		jw_push(maps, j);
	}
	jw_set(o, "interval", jw_u64(d->interval));
	jw_set(o, "duration_ms", jw_fixed(iv->secs * 1e3, 3));
	jw_set(o, "pages", jw_u64(d->pages));
	jw_set(o, "pages_per_s", jw_fixed(per_s(d->pages, iv->secs), 1));
	jw_set(o, "bytes_per_s",
	       jw_fixed(per_s(d->pages * d->pgsz, iv->secs), 1));
	jw_set(o, "ws_pages", jw_u64(d->ws));
	jw_set(o, "ws_bytes", jw_u64(d->ws * d->pgsz));
	jw_set(o, "ws_intervals", jw_u64(win));
	jw_set(o, "full_pages", jw_u64(d->full_pages));
	jw_set(o, "processes", jw_u64(iv->processes));
	jw_set(o, "maps", maps);
	return jw_print(CMD, stdout, o);
}

static int report_text(const struct dr *d, const struct track_iv *iv)
{
	uint64_t win = d->interval < DR_WINDOW ? d->interval : DR_WINDOW;
	char r[CLI_IEC_LEN], w[CLI_IEC_LEN], t[CLI_IEC_LEN];

	printf("interval %" PRIu64 ": %s, %" PRIu64 " pages written, "
	       "%.1f pages/s, %s; working set %" PRIu64
	       " pages (%s) over %" PRIu64 " intervals",
	       d->interval, dur(t, (uint64_t)(iv->secs * 1e9)), d->pages, per_s(d->pages, iv->secs),
	       iec_rate(r, (uint64_t)per_s(d->pages * d->pgsz, iv->secs)),
	       d->ws, iec(w, d->ws * d->pgsz), win);
	if (d->full_pages)
		printf("; %" PRIu64 " pages in mappings reported in full",
		       d->full_pages);
	putchar('\n');
	for (size_t k = 0; k < iv->nwritten && k < TOP; k++) {
		const struct dr_map *m = &d->m[iv->order[k]];

		printf("  %12.1f pages/s  %012" PRIx64 "-%012" PRIx64
		       "  pid %d  ",
		       per_s(m->pages, iv->secs), m->start, m->end, m->pid);
		put_str(stdout, m->name);
		putchar('\n');
	}
	return cli_flush(CMD, stdout);
}

/* ---- the loop ------------------------------------------------------------ */

static volatile sig_atomic_t track_stop;

static void on_stop(int sig)
{
	(void)sig;
	track_stop = 1;
}

static void catch_stop(void)
{
	struct sigaction sa = { .sa_handler = on_stop }; /* no SA_RESTART */

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* sleep until @t (CLOCK_MONOTONIC ns): false if a signal said stop */
static bool sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u),
			       .tv_nsec = (long)(t % 1000000000u) };

	while (!track_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
					      &ts, NULL) == EINTR)
		;
	return !track_stop;
}

static int ignore_report(void *arg, const struct pmtrack_proc_report *r)
{
	(void)arg;
	(void)r;
	return 0;
}

/* one interval: collect, report; 0, -errno, or 1 if the report could not
   be written (said so) */
static int interval(const struct track_args *a, struct pmtrack_proc *p,
		    struct dr *d, uint64_t *t_prev, struct track_sum *sum)
{
	PMTRACK_OPTS(pmtrack_proc_stats, st);
	struct track_iv iv = { 0 };
	uint64_t t;
	int err;

	dr_begin(d);
	err = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, dr_report, d);
	t = now_ns();
	if (err)
		return err;
	dr_end(d);
	iv.secs = (double)(t - *t_prev) / 1e9;
	*t_prev = t;
	if (!pmtrack_proc_get_stats(p, &st))
		iv.processes = st.processes;
	err = rank(d, &iv);
	sum->intervals++;
	sum->pages += d->pages;
	pmt_bar_clear(&sum->bar);
	/* --quiet: the result alone, in text or JSON */
	if (!err && !a->quiet &&
	    (a->json ? report_json(d, &iv) : report_text(d, &iv)))
		err = 1;
	pmt_bar_draw(&sum->bar, true, sum->intervals, a->count,
		     "interval %" PRIu64 "%s, %.1f pages/s", sum->intervals,
		     a->count ? "" : " (until SIGINT)",
		     per_s(d->pages, iv.secs));
	free(iv.order);
	return err;
}

static int track_err(const struct track_args *a, int err)
{
	if (err == -ESRCH)
		cli_err(CMD, "no process %" PRIu64 " (or it is a zombie)",
			a->pid);
	else if (err == -EPERM || err == -EACCES)
		cli_err(CMD,
			"no ptrace permission on process %" PRIu64 " (%s): run "
			"as root (CAP_SYS_PTRACE), or as its user with "
			"kernel.yama.ptrace_scope 0",
			a->pid, strerror(-err));
	else
		cli_err(CMD, "process %" PRIu64 ": %s", a->pid, strerror(-err));
	return CLI_ERROR;
}

/* the totals, as a line or the result object */
static int track_result(const struct track_args *a,
			const struct track_sum *sum, const char *backend,
			int ret)
{
	uint64_t ns = now_ns() - sum->t0;
	double secs = (double)ns / 1e9;
	struct json_object *o;
	char t[CLI_IEC_LEN];

	if (!a->json) {
		if (ret)
			return ret;
		printf("total: %" PRIu64 " intervals in %s, %" PRIu64
		       " pages written, %.1f pages/s\n",
		       sum->intervals, dur(t, ns), sum->pages,
		       per_s(sum->pages, secs));
		return cli_flush(CMD, stdout);
	}
	o = jw_head(CMD, "result");
	jw_outcome(o, ret);
	jw_set(o, "pid", jw_u64(a->pid));
	jw_set(o, "backend", jw_str(backend));
	jw_set(o, "intervals", jw_u64(sum->intervals));
	jw_set(o, "pages", jw_u64(sum->pages));
	jw_set(o, "pages_per_s", jw_fixed(per_s(sum->pages, secs), 1));
	jw_set(o, "total_ms", jw_fixed(secs * 1e3, 3));
	return jw_print(CMD, stdout, o) ? CLI_ERROR : ret;
}

/* the intervals until --count, a signal, or the process's end */
static int run(const struct track_args *a, struct pmtrack_proc *p)
{
	struct dr d = { .pgsz = (uint64_t)sysconf(_SC_PAGESIZE) };
	uint64_t t0 = now_ns(), t_prev = t0;
	struct track_sum sum = { .t0 = t0 };
	const char *backend = pmtrack_backend_name(pmtrack_proc_backend(p));
	int err = 0, ret;

	pmt_bar_init(&sum.bar, stderr, a->quiet);
	if (!a->json && !a->quiet)
		printf("tracking process %" PRIu64 " (%s) every %" PRIu64
		       " ms; the first collect (every mapping in full) is not "
		       "counted\n",
		       a->pid, backend, a->interval_ms);
	for (uint64_t i = 1; !err && (!a->count || i <= a->count); i++) {
		if (!sleep_until(t0 + i * a->interval_ms * 1000000u))
			break;
		err = interval(a, p, &d, &t_prev, &sum);
	}
	pmt_bar_clear(&sum.bar);
	dr_free(&d);
	if (err == -ESRCH) {
		cli_err(CMD, "process %" PRIu64 " exited", a->pid);
		err = 0;
	}
	ret = err > 0 ? CLI_ERROR /* said so */
	      : err	? track_err(a, err)
			: CLI_OK;
	return track_result(a, &sum, backend, ret);
}

int cmd_track(int argc, char **argv)
{
	struct track_args a = { .interval_ms = 500 };
	struct pmtrack_proc *p = NULL;
	int r;

	r = track_parse(&a, argc, argv);
	if (r >= 0)
		return r;
	{
		PMTRACK_OPTS(pmtrack_proc_opts, po,
			     .flags = a.children ? PMTRACK_PROC_CHILDREN : 0u);

		r = pmtrack_proc_new((int)a.pid, &po, &p);
	}
	/* the first collect reports every mapping in full: not counted */
	if (!r)
		r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET,
					 ignore_report, NULL);
	if (r) {
		pmtrack_proc_free(p);
		r = track_err(&a, r);
		if (a.json) {
			struct json_object *o = jw_head(CMD, "result");

			/* nothing tracked: no backend, no time */
			jw_outcome(o, r);
			jw_set(o, "pid", jw_u64(a.pid));
			jw_set(o, "backend", NULL);
			jw_set(o, "intervals", jw_u64(0));
			jw_set(o, "pages", jw_u64(0));
			jw_set(o, "pages_per_s", NULL);
			jw_set(o, "total_ms", NULL);
			jw_print(CMD, stdout, o);
		}
		return r;
	}
	catch_stop();
	r = run(&a, p);
	pmtrack_proc_free(p);
	return r;
}

// SPDX-License-Identifier: MIT
/*
 * pmtrack dump: incremental checkpoints of a synthetic workload: live
 * pre-dumps, then a final one with the workload paused; or, with --pid,
 * of another running process (rdrun.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <pmtrack/migrate.h>

#include "cmdline.h"
#include "cli.h"
#include "jsonw.h"
#include "progress.h" /* support/: pmt_bar_*() */
#include "rdrun.h"
#include "wldrive.h"

#define DEF_DUMPS 3
#define DEF_INTERVAL_MS 500

static void dump_usage(FILE *f)
{
	fputs("usage: pmtrack dump DIR [OPTIONS]\n"
	      "       pmtrack dump --pid PID DIR [OPTIONS]\n"
	      "Incremental checkpoints of a synthetic workload into DIR: "
	      "live pre-dumps\n"
	      "while the writers run, then the workload is paused and a "
	      "final image is\n"
	      "dumped and audited (the memory read back against what the "
	      "chain sent).\n"
	      "Every image carries the chain's state digest, which restore "
	      "checks.  One line\n"
	      "per image: its pages (zero pages included, and apart), bytes "
	      "and time; on a\n"
	      "terminal a progress bar across the images.  DIR must hold no "
	      "images.\n",
	      f);
	fputs(wl_usage_text, f);
	fputs("  --dumps N             images, the final one included; "
	      "default 3\n"
	      "  --interval-ms MS      time between images; default 500\n"
	      "  --quiet               no progress bar and no per-image "
	      "lines (with --json:\n"
	      "                        the result alone)\n"
	      "  --json                JSON Lines on stdout: a status object "
	      "per image, then\n"
	      "                        a result (see pmtrack(1), JSON "
	      "OUTPUT)\n",
	      f);
	fputs("With --pid, incremental images of process PID, running and "
	      "unmodified (CRIU\n"
	      "pre-dump style): each image holds its writable mappings' "
	      "pages written since\n"
	      "the previous one; the last is taken with the process frozen "
	      "(ptrace), with\n"
	      "the memory's digest; 'pmtrack restore DIR --out-dir D' "
	      "replays them.  Needs\n"
	      "ptrace access to PID.  --level applies; the workload options "
	      "do not.\n"
	      "  --pid PID             the process to dump\n"
	      "  --children            track the children it forks from now "
	      "on, and fold\n"
	      "                        their writes into memory they share "
	      "with it (their\n"
	      "                        private memory is not dumped)\n"
	      "  --leave-stopped       leave the processes stopped (SIGSTOP) "
	      "after the last\n"
	      "                        image; SIGCONT resumes them\n"
	      "  --no-verify           no digest in the last image\n",
	      f);
}

struct dump_args {
	const char *dir;
	struct wl_args wl;
	uint64_t dumps, interval_ms;
	bool quiet, json;
	struct rd_args rd;  /* --pid */
	const char *wl_opt; /* a workload option given, for --pid's message */
	const char *rd_opt; /* an option of --pid's given */
};

enum {
	OPT_DUMPS = WL_OPT_END,
	OPT_INTERVAL,
	OPT_QUIET,
	OPT_JSON,
	OPT_PID,
	OPT_CHILDREN,
	OPT_LEAVE_STOPPED,
	OPT_NO_VERIFY,
};

/* --children, --leave-stopped, --no-verify */
static bool rd_flag(int id, struct rd_args *rd)
{
	bool *f[] = { &rd->children, &rd->leave_stopped, &rd->no_digest };

	*f[id - OPT_CHILDREN] = true;
	return true;
}

static bool dump_opt(struct cmdline *p, int id, void *arg)
{
	struct dump_args *a = arg;

	if (id >= ARG_OPT && id < WL_OPT_END && id != WL_OPT_LEVEL)
		a->wl_opt = p->opt;
	if (id >= ARG_OPT && id < WL_OPT_END)
		return wl_opt(p, id, &a->wl);
	if (id >= OPT_PID)
		a->rd_opt = p->opt;
	switch (id) {
	case ARG_POS:
		return take_one(p, &a->dir, "DIR");
	case OPT_DUMPS:
		return opt_u64(p, false, 1, 1000000, &a->dumps);
	case OPT_INTERVAL:
		return opt_u64(p, false, 0, 86400000, &a->interval_ms);
	case OPT_QUIET:
		a->quiet = true;
		return true;
	case OPT_JSON:
		a->json = true;
		return true;
	case OPT_PID:
		return opt_u64(p, false, 1, INT32_MAX, &a->rd.pid);
	}
	return id >= OPT_CHILDREN ? rd_flag(id, &a->rd) : true;
}

static bool dump_done(struct cmdline *p, void *arg)
{
	struct dump_args *a = arg;

	if (!a->dir)
		return bad_usage(p, "no DIR");
	if (a->rd.pid && a->wl_opt)
		return bad_usage(p,
				 "--%s is for the synthetic workload, not "
				 "--pid",
				 a->wl_opt);
	if (!a->rd.pid && a->rd_opt)
		return bad_usage(p, "--%s needs --pid", a->rd_opt);
	return true;
}

static int dump_parse(struct dump_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		WL_OPTIONS,
		{ "dumps", required_argument, NULL, OPT_DUMPS },
		{ "interval-ms", required_argument, NULL, OPT_INTERVAL },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "children", no_argument, NULL, OPT_CHILDREN },
		{ "leave-stopped", no_argument, NULL, OPT_LEAVE_STOPPED },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	static const struct cmdline_spec spec = { .cmd = "dump",
						  .usage = dump_usage,
						  .opts = opts,
						  .take = dump_opt,
						  .done = dump_done };

	return parse_args(&spec, argc, argv, a);
}

static void sleep_ms(uint64_t v)
{
	struct timespec ts = { .tv_sec = (time_t)(v / 1000),
			       .tv_nsec = (long)(v % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* a synthetic dump under way */
struct dump_run {
	struct dump_args a;
	struct pmt_bar bar;
	uint64_t t0;	  /* its start */
	uint64_t written; /* the images' bytes so far */
	uint64_t images;  /* written */
};

/* an image's status line or object */
static int dump_status(struct dump_run *d, const struct pmtrack_dump_info *in,
		       bool last)
{
	struct json_object *o;
	char b[CLI_IEC_LEN], t[CLI_IEC_LEN], name[16];

	pmt_bar_clear(&d->bar);
	if (d->a.quiet)
		return CLI_OK; /* the result alone, in text or JSON */
	if (!d->a.json) {
		printf("image %" PRIu32 " (%06" PRIu32 ".pmts)%s: %" PRIu64
		       " pages (%" PRIu64 " zero), %" PRIu64
		       " bytes (%s), %s, digest %s%s\n",
		       in->index, in->index, last ? " stopped" : "", in->pages,
		       in->zero_pages, in->bytes, iec(b, in->bytes),
		       dur(t, in->duration_ns),
		       in->has_state || in->has_digest ? "yes" : "no",
		       in->audited ? ", audited" : "");
		return cli_flush("dump", stdout);
	}
	snprintf(name, sizeof(name), "%06" PRIu32 ".pmts", in->index);
	o = jw_head("dump", "status");
	jw_set(o, "index", jw_u64(in->index));
	jw_set(o, "file", jw_str(name));
	jw_set(o, "stopped", jw_bool(last));
	jw_set(o, "pages", jw_u64(in->pages));
	jw_set(o, "zero_pages", jw_u64(in->zero_pages));
	jw_set(o, "bytes", jw_u64(in->bytes));
	jw_set(o, "duration_ms", jw_ms(in->duration_ns));
	jw_set(o, "has_digest", jw_bool(in->has_state || in->has_digest));
	jw_set(o, "audited", jw_bool(in->audited));
	jw_set(o, "written_bytes", jw_u64(d->written));
	jw_set(o, "total_ms", jw_ms(now_ns() - d->t0));
	return jw_print("dump", stdout, o);
}

/* the images, the last one with the workload paused: the exit code */
static int dump_images(struct dump_run *d, struct pmtrack_ckpt *ck,
		       struct wl *w)
{
	const struct dump_args *a = &d->a;
	struct pmtrack_dump_info info;
	char b[CLI_IEC_LEN];
	int r;

	for (uint64_t i = 0; i < a->dumps; i++) {
		bool last = i + 1 == a->dumps;

		pmt_bar_draw(&d->bar, true, i, a->dumps,
			     "image %" PRIu64 " of %" PRIu64 ", written %s", i,
			     a->dumps, iec(b, d->written));
		if (i)
			sleep_ms(a->interval_ms);
		if (last)
			wl_pause(w);
		memset(&info, 0, sizeof(info));
		info.sz = sizeof(info);
		r = pmtrack_ckpt_dump(ck,
				      last ? PMTRACK_DUMP_STOPPED |
						     PMTRACK_DUMP_AUDIT
					   : 0,
				      &info);
		if (r) {
			pmt_bar_clear(&d->bar);
			cli_err("dump", "%s: image %" PRIu64 ": %s", a->dir, i,
				strerror(-r));
			return CLI_ERROR;
		}
		d->written += info.bytes;
		d->images++;
		if (dump_status(d, &info, last))
			return CLI_ERROR;
	}
	return CLI_OK;
}

/* the result: the images and their bytes, or how far it got */
static int dump_result(const struct dump_run *d, int ret)
{
	struct json_object *o;
	char b[CLI_IEC_LEN];

	if (!d->a.json) {
		if (ret)
			return ret;
		printf("images: %" PRIu64 " in %s, %" PRIu64 " bytes (%s)\n",
		       d->images, d->a.dir, d->written, iec(b, d->written));
		return cli_flush("dump", stdout);
	}
	o = jw_head("dump", "result");
	jw_outcome(o, ret);
	jw_set(o, "dir", jw_str(d->a.dir));
	jw_set(o, "images", jw_u64(d->images));
	jw_set(o, "written_bytes", jw_u64(d->written));
	jw_set(o, "total_ms", jw_ms(now_ns() - d->t0));
	return jw_print("dump", stdout, o) ? CLI_ERROR : ret;
}

int cmd_dump(int argc, char **argv)
{
	struct dump_run d = { .a = { .wl = { .size = DEF_SIZE,
					     .writers = DEF_WRITERS,
					     .rate = DEF_RATE },
				     .dumps = DEF_DUMPS,
				     .interval_ms = DEF_INTERVAL_MS } };
	struct dump_args *a = &d.a;
	struct pmtrack_ckpt *ck = NULL;
	struct pmtrack_mem_region reg;
	struct wl *w = NULL;
	int r, ret = CLI_ERROR;

	r = dump_parse(a, argc, argv);
	if (r >= 0)
		return r;
	if (a->rd.pid) {
		a->rd.dir = a->dir;
		a->rd.dumps = a->dumps;
		a->rd.interval_ms = a->interval_ms;
		a->rd.level = a->wl.level;
		a->rd.json = a->json;
		a->rd.quiet = a->quiet;
		return rd_run(&a->rd);
	}
	d.t0 = now_ns();
	pmt_bar_init(&d.bar, stderr, a->quiet);
	if (wl_begin("dump", &a->wl, a->json || a->quiet ? NULL : stdout, &w))
		return dump_result(&d, CLI_ERROR);
	reg = wl_region(w);
	{
		PMTRACK_OPTS(pmtrack_ckpt_opts, co, .level = a->wl.level,
			     .enc_flags =
				     a->wl.level ? PMTRACK_ENC_ADAPTIVE : 0u,
			     .producer = "pmtrack dump");

		r = pmtrack_ckpt_new(a->dir, &co, &reg, 1, &ck);
	}
	if (r == -EEXIST)
		cli_err("dump", "%s already holds checkpoint images", a->dir);
	else if (r)
		cli_err("dump", "%s: %s", a->dir, strerror(-r));
	else
		ret = dump_images(&d, ck, w);
	ret = dump_result(&d, ret);
	pmtrack_ckpt_free(ck);
	wl_free(w);
	return ret;
}

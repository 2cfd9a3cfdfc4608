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
	      "checks.\n"
	      "DIR must hold no images.\n",
	      f);
	fputs(wl_usage_text, f);
	fputs("  --dumps N             images, the final one included; "
	      "default 3\n"
	      "  --interval MS         time between images; default 500\n",
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
	      "  --no-digest           no digest in the last image\n"
	      "  --json                one JSON object per image, then a "
	      "summary\n",
	      f);
}

struct dump_args {
	const char *dir;
	struct wl_args wl;
	uint64_t dumps, interval_ms;
	struct rd_args rd;  /* --pid */
	const char *wl_opt; /* a workload option given, for --pid's message */
	const char *rd_opt; /* an option of --pid's given */
};

enum {
	OPT_DUMPS = WL_OPT_END,
	OPT_INTERVAL,
	OPT_PID,
	OPT_CHILDREN,
	OPT_LEAVE_STOPPED,
	OPT_NO_DIGEST,
	OPT_JSON,
};

/* --children, --leave-stopped, --no-digest, --json */
static bool rd_flag(int id, struct rd_args *rd)
{
	bool *f[] = { &rd->children, &rd->leave_stopped, &rd->no_digest,
		      &rd->json };

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
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "children", no_argument, NULL, OPT_CHILDREN },
		{ "leave-stopped", no_argument, NULL, OPT_LEAVE_STOPPED },
		{ "no-digest", no_argument, NULL, OPT_NO_DIGEST },
		{ "json", no_argument, NULL, OPT_JSON },
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

int cmd_dump(int argc, char **argv)
{
	struct dump_args a = { .wl = { .size = DEF_SIZE,
				       .writers = DEF_WRITERS,
				       .rate = DEF_RATE },
			       .dumps = DEF_DUMPS,
			       .interval_ms = DEF_INTERVAL_MS };
	struct pmtrack_dump_info info;
	struct pmtrack_ckpt *ck = NULL;
	struct pmtrack_mem_region reg;
	struct wl *w = NULL;
	uint64_t total = 0;
	int r, ret = CLI_ERROR;

	r = dump_parse(&a, argc, argv);
	if (r >= 0)
		return r;
	if (a.rd.pid) {
		a.rd.dir = a.dir;
		a.rd.dumps = a.dumps;
		a.rd.interval_ms = a.interval_ms;
		a.rd.level = a.wl.level;
		return rd_run(&a.rd);
	}
	if (wl_begin("dump", &a.wl, stdout, &w))
		return CLI_ERROR;
	reg = wl_region(w);
	{
		PMTRACK_OPTS(pmtrack_ckpt_opts, co, .level = a.wl.level,
			     .enc_flags =
				     a.wl.level ? PMTRACK_ENC_ADAPTIVE : 0u,
			     .producer = "pmtrack dump");

		r = pmtrack_ckpt_new(a.dir, &co, &reg, 1, &ck);
	}
	if (r == -EEXIST) {
		cli_err("dump", "%s already holds checkpoint images", a.dir);
		goto out;
	} else if (r) {
		cli_err("dump", "%s: %s", a.dir, strerror(-r));
		goto out;
	}
	for (uint64_t i = 0; i < a.dumps; i++) {
		bool last = i + 1 == a.dumps;

		if (i)
			sleep_ms(a.interval_ms);
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
			cli_err("dump", "%s: image %" PRIu64 ": %s", a.dir, i,
				strerror(-r));
			goto out;
		}
		total += info.bytes;
		printf("image %" PRIu32 " (%06" PRIu32 ".pmts)%s: %" PRIu64
		       " pages (%" PRIu64 " zero), %" PRIu64
		       " bytes, %.1f ms, digest %s%s\n",
		       info.index, info.index, last ? " stopped" : "",
		       info.pages, info.zero_pages, info.bytes,
		       ms(info.duration_ns),
		       info.has_state || info.has_digest ? "yes" : "no",
		       info.audited ? ", audited" : "");
		fflush(stdout);
	}
	printf("images: %" PRIu64 " in %s, %" PRIu64 " bytes (%.1f MB)\n",
	       a.dumps, a.dir, total, mb(total));
	ret = cli_flush("dump", stdout);
out:
	pmtrack_ckpt_free(ck);
	wl_free(w);
	return ret;
}

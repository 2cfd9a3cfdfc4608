// SPDX-License-Identifier: MIT
/*
 * pmtrack dump: incremental checkpoints of a synthetic workload: live
 * pre-dumps, then a final one with the workload paused.
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
#include "wldrive.h"

#define DEF_DUMPS 3
#define DEF_INTERVAL_MS 500

static void dump_usage(FILE *f)
{
	fputs("usage: pmtrack dump DIR [OPTIONS]\n"
	      "Incremental checkpoints of a synthetic workload into DIR: "
	      "live pre-dumps\n"
	      "while the writers run, then the workload is paused and a "
	      "final image, with\n"
	      "the memory's digest, is dumped.  DIR must hold no images.\n",
	      f);
	fputs(wl_usage_text, f);
	fputs("  --dumps N             images, the final one included; "
	      "default 3\n"
	      "  --interval MS         time between images; default 500\n",
	      f);
}

struct dump_args {
	const char *dir;
	struct wl_args wl;
	uint64_t dumps, interval_ms;
};

enum {
	OPT_DUMPS = WL_OPT_END,
	OPT_INTERVAL,
};

static bool dump_opt(struct cmdline *p, int id, void *arg)
{
	struct dump_args *a = arg;

	if (id >= ARG_OPT && id < WL_OPT_END)
		return wl_opt(p, id, &a->wl);
	switch (id) {
	case ARG_POS:
		return take_one(p, &a->dir, "DIR");
	case OPT_DUMPS:
		return opt_u64(p, false, 1, 1000000, &a->dumps);
	case OPT_INTERVAL:
		return opt_u64(p, false, 0, 86400000, &a->interval_ms);
	}
	return true;
}

static bool dump_done(struct cmdline *p, void *arg)
{
	return ((struct dump_args *)arg)->dir || bad_usage(p, "no DIR");
}

static int dump_parse(struct dump_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		WL_OPTIONS,
		{ "dumps", required_argument, NULL, OPT_DUMPS },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
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
		r = pmtrack_ckpt_dump(ck, last ? PMTRACK_DUMP_STOPPED : 0,
				      &info);
		if (r) {
			cli_err("dump", "%s: image %" PRIu64 ": %s", a.dir, i,
				strerror(-r));
			goto out;
		}
		total += info.bytes;
		printf("image %" PRIu32 " (%06" PRIu32 ".pmts)%s: %" PRIu64
		       " pages (%" PRIu64 " zero), %" PRIu64
		       " bytes, %.1f ms, digest %s\n",
		       info.index, info.index, last ? " stopped" : "",
		       info.pages, info.zero_pages, info.bytes,
		       ms(info.duration_ns), info.has_digest ? "yes" : "no");
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

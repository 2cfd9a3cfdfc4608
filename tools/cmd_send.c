// SPDX-License-Identifier: MIT
/*
 * pmtrack send: live pre-copy of a synthetic workload (workload.h)
 * to a receiver over TCP, or into a file: a load generator for links and
 * receivers, like iperf.  A file written (--out) follows outfile.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "cmdline.h"
#include "cli.h"
#include "status.h" /* support/: pmt_fmt_dur(), pmt_status_line() */
#include "jsonw.h"
#include "net.h"
#include "outfile.h"
#include "progress.h" /* support/: pmt_bar_*() */
#include "wldrive.h"

static void send_usage(FILE *f)
{
	fputs("usage: pmtrack send --to HOST:PORT [OPTIONS]\n"
	      "       pmtrack send --out FILE|- [OPTIONS]\n"
	      "Live pre-copy migration of a synthetic workload (memory and "
	      "writer threads)\n"
	      "to 'pmtrack recv' over TCP, or into a stream file: a load "
	      "generator for links\n"
	      "and receivers.  After each round a status line (like QEMU's "
	      "'info migrate'):\n"
	      "the round's pages (zero pages included, and apart), the dirty "
	      "pages remaining,\n"
	      "the bytes transferred, the dirty rate, the bandwidth and the "
	      "expected downtime;\n"
	      "then the totals.  On a terminal a progress bar moves through "
	      "each round.\n"
	      "  --to HOST:PORT        connect to a receiver ([IPV6]:PORT for "
	      "IPv6)\n"
	      "  --out FILE|-          write the stream to FILE (kept only on "
	      "success), or\n"
	      "                        stdout (the report then goes to "
	      "stderr)\n",
	      f);
	fputs(wl_usage_text, f);
	fputs("  --downtime-ms MS      longest pause of the workload to aim "
	      "for; default 300\n"
	      "  --max-rounds N        pre-copy rounds before stopping anyway; "
	      "default 30\n"
	      "  --max-bandwidth SIZE/S\n"
	      "                        cap on the pre-copy's bytes per second "
	      "(K/KiB ..\n"
	      "                        T/TiB); 0 = none (default)\n" TIMEOUT_MS_USAGE
	      "  --full-digest         also send a digest of all memory, read "
	      "inside the\n"
	      "                        downtime\n"
	      "  --no-verify           no state digest and no audit\n"
	      "  --quiet               no progress bar and no per-round lines "
	      "(with --json: the\n"
	      "                        result alone)\n"
	      "  --json                JSON Lines on stdout: a status object "
	      "per round, then\n"
	      "                        a result (see pmtrack(1), JSON "
	      "OUTPUT)\n"
	      "Over a connection (--to, or --out naming a Unix socket) the "
	      "migration succeeds\n"
	      "only when the receiver answers that it applied and verified "
	      "the stream; the\n"
	      "workload resumes otherwise.  A file or pipe has no way back: "
	      "the stream is then\n"
	      "written, not verified.  Exit status: 0 on success, 1 on "
	      "failure, 2 for a bad\n"
	      "command line.\n",
	      f);
}

struct send_args {
	const char *to, *out;
	struct wl_args wl;
	uint64_t downtime_ms, max_rounds, max_bw, timeout_ms;
	unsigned int flags; /* PMTRACK_PRECOPY_FULL_DIGEST, _NO_DIGEST */
	bool quiet, json;
};

enum {
	OPT_TO = WL_OPT_END,
	OPT_OUT,
	OPT_DOWNTIME,
	OPT_MAX_ROUNDS,
	OPT_MAX_BANDWIDTH,
	OPT_TIMEOUT,
	OPT_FULL_DIGEST,
	OPT_NO_VERIFY,
	OPT_QUIET,
	OPT_JSON,
};

static bool send_opt(struct cmdline *p, int id, void *arg)
{
	struct send_args *a = arg;

	if (id >= ARG_OPT && id < WL_OPT_END)
		return wl_opt(p, id, &a->wl);
	switch (id) {
	case ARG_POS:
		return bad_usage(p, "unexpected argument '%s'", p->val);
	case OPT_TO:
		if (hostport_port(p->val, false) <= 0)
			return bad_usage(p,
					 "bad value for --to: '%s' (want "
					 "HOST:PORT)",
					 p->val);
		a->to = p->val;
		break;
	case OPT_OUT:
		a->out = p->val;
		break;
	case OPT_DOWNTIME:
		return opt_u64(p, false, 1, 3600000, &a->downtime_ms);
	case OPT_MAX_ROUNDS:
		return opt_u64(p, false, 1, UINT32_MAX, &a->max_rounds);
	case OPT_MAX_BANDWIDTH:
		return opt_u64(p, true, 0, UINT64_MAX, &a->max_bw);
	case OPT_TIMEOUT:
		return opt_u64(p, false, 0, 86400000ull * 365, &a->timeout_ms);
	case OPT_FULL_DIGEST:
		a->flags |= PMTRACK_PRECOPY_FULL_DIGEST;
		break;
	case OPT_NO_VERIFY:
		a->flags |= PMTRACK_PRECOPY_NO_DIGEST;
		break;
	case OPT_QUIET:
		a->quiet = true;
		break;
	case OPT_JSON:
		a->json = true;
		break;
	}
	return true;
}

static bool send_done(struct cmdline *p, void *arg)
{
	const struct send_args *a = arg;

	if (!!a->to + !!a->out != 1)
		return bad_usage(p, a->to ? "--to and --out exclude each other"
					  : "no destination: --to or --out");
	if ((a->flags & PMTRACK_PRECOPY_FULL_DIGEST) &&
	    (a->flags & PMTRACK_PRECOPY_NO_DIGEST))
		return bad_usage(p, "--full-digest and --no-verify exclude "
				    "each other");
	if (a->json && a->out && !strcmp(a->out, "-"))
		return bad_usage(p, "--json prints on stdout: not with "
				    "--out -");
	return true;
}

static int send_parse(struct send_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, OPT_TO },
		{ "out", required_argument, NULL, OPT_OUT },
		WL_OPTIONS,
		{ "downtime-ms", required_argument, NULL, OPT_DOWNTIME },
		{ "max-rounds", required_argument, NULL, OPT_MAX_ROUNDS },
		{ "max-bandwidth", required_argument, NULL, OPT_MAX_BANDWIDTH },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "full-digest", no_argument, NULL, OPT_FULL_DIGEST },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "json", no_argument, NULL, OPT_JSON },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	static const struct cmdline_spec spec = { .cmd = "send",
						  .usage = send_usage,
						  .opts = opts,
						  .take = send_opt,
						  .done = send_done };

	return parse_args(&spec, argc, argv, a);
}

struct send_ctx {
	struct wl *wl;
	FILE *info; /* the text lines, NULL with --json */
	bool quiet, json;
	struct pmt_bar bar;
	uint64_t rounds; /* reported so far */
	bool resumed;	 /* the library gave the workload back */
};

static int send_stop(void *arg)
{
	return wl_pause(((struct send_ctx *)arg)->wl);
}

static void send_resume(void *arg)
{
	struct send_ctx *c = arg;

	c->resumed = true;
	wl_resume(c->wl);
}

/* an expected downtime: "12.3 ms" or "unknown" */
static const char *expected_str(char buf[CLI_IEC_LEN], uint64_t ns)
{
	return pmt_fmt_expected(buf, CLI_IEC_LEN, ns);
}

/* an expected downtime in JSON: ms, or null if unknown */
static struct json_object *expected_json(uint64_t ns)
{
	return ns == PMTRACK_PRECOPY_UNKNOWN ? NULL : jw_ms(ns);
}

/* the progress bar through a round: its pages sent of those it has */
static void send_bar(struct send_ctx *c, const struct pmtrack_precopy_round *r)
{
	char t[CLI_IEC_LEN], bw[CLI_IEC_LEN];

	if (!c->bar.on)
		return;
	/* the bar keeps whole parts only, as many as the line holds */
	pmt_bar_draw(&c->bar, false, r->pages, r->pages + r->remaining_pages,
		     "round %" PRIu64 "%s: %" PRIu64 "/%" PRIu64
		     " pages, transferred %s, %s",
		     r->round, r->final ? " (stop-and-copy)" : "", r->pages,
		     r->pages + r->remaining_pages, iec(t, r->total_bytes),
		     iec_rate(bw, bytes_per_s(r->bytes, r->duration_ns)));
}

/* a round's status line, like QEMU's "info migrate" (support/status.c,
   which the migration examples print too) */
static void send_status_text(FILE *f, const struct pmtrack_precopy_round *r)
{
	char line[PMT_STATUS_LEN];

	pmt_status_line(line, sizeof(line), r);
	fprintf(f, "%s\n", line);
	fflush(f);
}

/* a round's status object */
static int send_status_json(const struct pmtrack_precopy_round *r)
{
	struct json_object *o = jw_head("send", "status");

	jw_set(o, "round", jw_u64(r->round));
	jw_set(o, "final", jw_bool(r->final));
	jw_set(o, "pages", jw_u64(r->pages));
	jw_set(o, "zero_pages", jw_u64(r->zero_pages));
	jw_set(o, "bytes", jw_u64(r->bytes));
	jw_set(o, "duration_ms", jw_ms(r->duration_ns));
	jw_set(o, "remaining_pages", jw_u64(r->remaining_pages));
	jw_set(o, "remaining_bytes", jw_u64(r->remaining_bytes));
	jw_set(o, "transferred_bytes", jw_u64(r->total_bytes));
	jw_set(o, "total_pages", jw_u64(r->total_pages));
	jw_set(o, "dirty_rate_pages_per_s", jw_u64(r->dirty_rate));
	jw_set(o, "bandwidth_bytes_per_s",
	       r->bandwidth ? jw_u64(r->bandwidth) : NULL);
	jw_set(o, "expected_downtime_ms",
	       r->final ? NULL : expected_json(r->expected_downtime_ns));
	jw_set(o, "total_ms", jw_ms(r->elapsed_ns));
	return jw_print("send", stdout, o) ? -EIO : 0;
}

static int send_progress(void *arg, const struct pmtrack_precopy_round *r)
{
	struct send_ctx *c = arg;

	if (r->partial) {
		send_bar(c, r);
		return 0;
	}
	c->rounds = r->round + 1;
	pmt_bar_clear(&c->bar);
	if (c->quiet)
		return 0; /* the result alone, in text or JSON */
	if (c->json)
		return send_status_json(r);
	send_status_text(c->info, r);
	return 0;
}

static int xport_flush_cb(void *x)
{
	return pmtrack_xport_flush(x);
}

/* converged: "yes", or why not */
static const char *send_why(const struct pmtrack_precopy_stats *st,
			    uint64_t max_rounds)
{
	/* rounds = pre-copy rounds + the final one; pre-copy rounds = 1 +
	   the rounds after round 0 */
	if (st->converged)
		return "yes";
	return st->rounds >= max_rounds + 2
		       ? "no (stopped after --max-rounds)"
		       : "no (the digest alone takes longer than "
			 "--downtime-ms)";
}

static void send_totals(FILE *f, const struct pmtrack_precopy_stats *st,
			uint64_t limit_ns, uint64_t max_rounds)
{
	const char *backend = pmtrack_backend_name(st->backend);
	char b[CLI_IEC_LEN], bw[CLI_IEC_LEN], t[CLI_IEC_LEN], d[CLI_IEC_LEN],
		e[CLI_IEC_LEN], l[CLI_IEC_LEN];

	fprintf(f, "rounds: %" PRIu64 "\n", st->rounds);
	fprintf(f, "pages: %" PRIu64 " (%" PRIu64 " zero)\n", st->pages,
		st->zero_pages);
	fprintf(f, "bytes: %" PRIu64 " (%s)\n", st->bytes, iec(b, st->bytes));
	fprintf(f, "total time: %s (%s)\n", dur(t, st->total_ns),
		iec_rate(bw, bytes_per_s(st->bytes, st->total_ns)));
	fprintf(f, "downtime: %s (expected %s, limit %s)\n",
		dur(d, st->downtime_ns),
		expected_str(e, st->expected_downtime_ns), dur(l, limit_ns));
	fprintf(f, "converged: %s\n", send_why(st, max_rounds));
	fprintf(f, "backend: %s\n", backend ? backend : "unknown");
}

/* Why the migration failed, in words. */
static void send_failure(const struct send_args *a, const char *dest,
			 const struct send_ctx *c, int r,
			 const struct pmtrack_precopy_stats *st)
{
	switch (r) {
	case -EREMOTEIO:
		if (st->remote_reason != PMTRACK_SERR_OK)
			cli_err("send",
				"%s: the receiver refused the stream: %s (%s)",
				dest, st->remote_message,
				pmtrack_stream_error_name(st->remote_reason));
		else
			cli_err("send",
				"%s: the receiver refused the stream: %s", dest,
				st->remote_message[0]
					? st->remote_message
					: strerror(st->remote_error));
		break;
	case -ENODATA:
		cli_err("send",
			"%s: the peer closed the connection without an answer: "
			"nothing says it has the memory",
			dest);
		break;
	case -EPROTO:
		cli_err("send",
			"%s: the peer's answer is not a pmtrack receiver's "
			"answer to this stream",
			dest);
		break;
	case -ETIMEDOUT:
		cli_err("send",
			"%s: no progress and no answer for %" PRIu64
			" ms (--timeout-ms)",
			dest, a->timeout_ms);
		break;
	default:
		cli_err("send",
			"%s: migration failed after %" PRIu64 " rounds: %s",
			dest, c->rounds, strerror(-r));
	}
	if (c->resumed)
		cli_err("send", "the workload was paused for the switchover "
				"and runs on here");
}

/* where the stream goes */
struct send_dest {
	const char *name; /* in messages: --to's, --out's, or "stdout" */
	struct outfile of;
	int fd;
	bool conn; /* a connection: the receiver answers on it */
};

/* Connect to --to, or open --out: 0, or -1 after a message. */
static int send_open(const struct send_args *a, struct send_dest *d)
{
	d->name = a->to ? a->to : a->out;
	if (a->to) {
		d->fd = tcp_connect("send", a->to, a->timeout_ms);
		d->conn = true;
		return d->fd < 0 ? -1 : 0;
	}
	if (!strcmp(a->out, "-")) {
		/* stdout: written, whatever it is (an ssh session's socket
		   has no receiver of ours behind it) */
		d->fd = STDOUT_FILENO;
		d->name = "stdout";
		return 0;
	}
	if (outfile_open("send", "--out", &d->of, a->out))
		return -1;
	d->fd = d->of.fd;
	d->conn = d->of.conn; /* a receiver there can answer */
	return 0;
}

/* how often the bar moves inside a round */
#define SEND_BAR_MS 100

/* The pre-copy of the running workload through @x: 0 or -errno. */
static int send_precopy(const struct send_args *a, struct send_ctx *c,
			struct pmtrack_xport *x, bool conn,
			struct pmtrack_precopy_stats *st)
{
	static const struct pmtrack_precopy_ops ops = {
		.stop = send_stop,
		.resume = send_resume,
		.progress = send_progress,
	};
	struct pmtrack_mem_region reg = wl_region(c->wl);
	PMTRACK_OPTS(pmtrack_precopy_opts, po, .write = pmtrack_xport_write,
		     .write_arg = x, .flush = xport_flush_cb, .ops = &ops,
		     .arg = c, .downtime_limit_ns = a->downtime_ms * 1000000u,
		     .max_rounds = (uint32_t)a->max_rounds, .flags = a->flags,
		     .max_bandwidth = a->max_bw, .level = a->wl.level,
		     .enc_flags = a->wl.level ? PMTRACK_ENC_ADAPTIVE : 0u,
		     .producer = "pmtrack send", .reply = conn ? x : NULL,
		     .progress_ms = c->bar.on ? SEND_BAR_MS : 0u);

	return pmtrack_precopy(&po, &reg, 1, st);
}

/* what the receiver did, in words */
static const char *send_receiver(const struct send_dest *d)
{
	return d->conn ? "applied and verified the stream (its answer)"
		       : "none: the stream was written, not verified (a "
			 "file or pipe has no return path)";
}

/* the result object: the totals, or how far it got */
static int send_result_json(const struct send_args *a, const char *dest,
			    const struct pmtrack_precopy_stats *st,
			    bool conn, int ret)
{
	struct json_object *o = jw_head("send", "result");
	const char *backend = pmtrack_backend_name(st->backend);

	jw_outcome(o, ret);
	jw_set(o, "destination", jw_str(dest));
	jw_set(o, "rounds", jw_u64(st->rounds));
	jw_set(o, "pages", jw_u64(st->pages));
	jw_set(o, "zero_pages", jw_u64(st->zero_pages));
	jw_set(o, "bytes", jw_u64(st->bytes));
	jw_set(o, "total_ms", jw_ms(st->total_ns));
	jw_set(o, "bandwidth_bytes_per_s",
	       jw_u64(bytes_per_s(st->bytes, st->total_ns)));
	jw_set(o, "downtime_ms", jw_ms(st->downtime_ns));
	jw_set(o, "expected_downtime_ms",
	       st->rounds ? expected_json(st->expected_downtime_ns) : NULL);
	jw_set(o, "downtime_limit_ms", jw_ms(a->downtime_ms * 1000000u));
	jw_set(o, "converged", jw_bool(st->converged));
	jw_set(o, "backend", jw_str(backend));
	jw_set(o, "verified", jw_bool(conn && st->acked));
	jw_set(o, "audited", jw_bool(st->audited));
	return jw_print("send", stdout, o);
}

/* Migrate the running workload to @d, and report: the exit code. */
static int send_migrate(const struct send_args *a, struct send_ctx *c,
			struct send_dest *d, struct pmtrack_xport *x,
			struct pmtrack_precopy_stats *st)
{
	int r;

	if (c->info && !c->quiet) {
		fprintf(c->info, "sending to %s\n", d->name);
		fflush(c->info);
	}
	r = send_precopy(a, c, x, d->conn, st);
	pmt_bar_clear(&c->bar);
	if (r) {
		send_failure(a, d->name, c, r, st);
		return CLI_ERROR;
	}
	if (a->out && d->fd != STDOUT_FILENO && outfile_commit("send", &d->of))
		return CLI_ERROR;
	if (!c->info)
		return CLI_OK;
	send_totals(c->info, st, a->downtime_ms * 1000000u,
		    a->max_rounds ? a->max_rounds : 30);
	fprintf(c->info, "receiver: %s\n", send_receiver(d));
	return cli_flush("send", c->info);
}

int cmd_send(int argc, char **argv)
{
	struct send_args a = { .wl = { .size = DEF_SIZE,
				       .writers = DEF_WRITERS,
				       .rate = DEF_RATE },
			       .downtime_ms = 300,
			       .timeout_ms = DEF_TIMEOUT_MS };
	struct send_dest d = { .of = { .fd = -1 }, .fd = -1 };
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct pmtrack_xport *x = NULL;
	struct send_ctx c = { 0 };
	int r, ret = CLI_ERROR;

	r = send_parse(&a, argc, argv);
	if (r >= 0)
		return r;
	c.quiet = a.quiet;
	c.json = a.json;
	c.info = a.json				  ? NULL
		 : a.out && !strcmp(a.out, "-") ? stderr
						  : stdout;
	pmt_bar_init(&c.bar, stderr, a.quiet);
	/* a closed pipe is -EPIPE from the transport, not a signal */
	signal(SIGPIPE, SIG_IGN);
	if (!send_open(&a, &d)) {
		PMTRACK_OPTS(pmtrack_xport_opts, xo,
			     .timeout_ns = a.timeout_ms * 1000000u);

		r = pmtrack_xport_new(d.fd, &xo, &x);
		if (r)
			cli_err("send", "transport: %s", strerror(-r));
		else if (!wl_begin("send", &a.wl, a.quiet ? NULL : c.info,
				   &c.wl))
			ret = send_migrate(&a, &c, &d, x, &st);
	}
	if (a.json && send_result_json(&a, d.name, &st, d.conn, ret))
		ret = CLI_ERROR;
	wl_free(c.wl);
	pmtrack_xport_free(x);
	outfile_abort(&d.of);
	if (a.to && d.fd >= 0)
		close(d.fd);
	return ret;
}

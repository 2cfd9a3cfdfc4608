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
#include "net.h"
#include "outfile.h"
#include "wldrive.h"

static void send_usage(FILE *f)
{
	fputs("usage: pmtrack send --to HOST:PORT | --out FILE|- [OPTIONS]\n"
	      "Live pre-copy migration of a synthetic workload (guest RAM and "
	      "writer threads)\n"
	      "to 'pmtrack recv' over TCP, or into a stream file: a load "
	      "generator for links\n"
	      "and receivers.  One line per round, then the totals.\n"
	      "  --to HOST:PORT        connect to a receiver ([IPV6]:PORT for "
	      "IPv6)\n"
	      "  --out FILE|-          write the stream to FILE (kept only on "
	      "success), or\n"
	      "                        stdout (the report then goes to "
	      "stderr)\n",
	      f);
	fputs(wl_usage_text, f);
	fputs("  --downtime MS         longest pause to aim for; default 300\n"
	      "  --max-rounds N        pre-copy rounds before stopping anyway; "
	      "default 30\n"
	      "  --max-bandwidth B/S   cap on pre-copy bytes per second "
	      "(K, M, G); 0 = none\n"
	      "  --timeout SECONDS     give up on a connection that takes, "
	      "or stays silent,\n"
	      "                        this long (connecting, sending, the "
	      "answer); 0 = never;\n"
	      "                        default 60\n"
	      "  --quiet               no per-round lines\n"
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
	uint64_t downtime_ms, max_rounds, max_bw, timeout_s;
	bool quiet;
};

enum {
	OPT_TO = WL_OPT_END,
	OPT_OUT,
	OPT_DOWNTIME,
	OPT_MAX_ROUNDS,
	OPT_MAX_BANDWIDTH,
	OPT_TIMEOUT,
	OPT_QUIET,
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
			return bad_usage(p, "invalid --to '%s': want HOST:PORT",
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
		return opt_u64(p, false, 0, 86400 * 365, &a->timeout_s);
	case OPT_QUIET:
		a->quiet = true;
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
	return true;
}

static int send_parse(struct send_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, OPT_TO },
		{ "out", required_argument, NULL, OPT_OUT },
		WL_OPTIONS,
		{ "downtime", required_argument, NULL, OPT_DOWNTIME },
		{ "max-rounds", required_argument, NULL, OPT_MAX_ROUNDS },
		{ "max-bandwidth", required_argument, NULL, OPT_MAX_BANDWIDTH },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "quiet", no_argument, NULL, OPT_QUIET },
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
	FILE *info;
	bool quiet;
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

/* an expected downtime: "N.N ms" or "unknown" */
static void put_expected(FILE *f, uint64_t ns)
{
	if (ns == PMTRACK_PRECOPY_UNKNOWN)
		fputs("unknown", f);
	else
		fprintf(f, "%.1f ms", ms(ns));
}

static int send_progress(void *arg, const struct pmtrack_precopy_round *r)
{
	struct send_ctx *c = arg;
	FILE *f = c->info;

	c->rounds = r->round + 1;
	if (c->quiet)
		return 0;
	fprintf(f,
		"round %" PRIu64 "%s: %" PRIu64 " pages (%" PRIu64
		" zero), %.2f MB in %.1f ms, %.1f MB/s",
		r->round, r->final ? " (stop-and-copy)" : "", r->pages,
		r->zero_pages, mb(r->bytes), ms(r->duration_ns),
		mbps(r->bytes, r->duration_ns));
	if (!r->final) {
		fprintf(f, "; dirty %" PRIu64 ", expected downtime ",
			r->dirty_pages);
		put_expected(f, r->expected_downtime_ns);
	}
	fputc('\n', f);
	fflush(f);
	return 0;
}

static int xport_flush_cb(void *x)
{
	return pmtrack_xport_flush(x);
}

static void send_totals(FILE *f, const struct pmtrack_precopy_stats *st,
			uint64_t limit_ns, uint64_t max_rounds)
{
	const char *backend = pmtrack_backend_name(st->backend);
	const char *why = "yes";

	fprintf(f, "rounds: %" PRIu64 "\n", st->rounds);
	fprintf(f, "pages: %" PRIu64 " (%" PRIu64 " zero)\n", st->pages,
		st->zero_pages);
	fprintf(f, "bytes: %" PRIu64 " (%.1f MB)\n", st->bytes, mb(st->bytes));
	fprintf(f, "total time: %.3f s (%.1f MB/s)\n",
		(double)st->total_ns / 1e9, mbps(st->bytes, st->total_ns));
	fprintf(f, "downtime: %.1f ms (expected ", ms(st->downtime_ns));
	put_expected(f, st->expected_downtime_ns);
	fprintf(f, ", limit %.0f ms)\n", ms(limit_ns));
	/* rounds = pre-copy rounds + the final one; pre-copy rounds = 1 +
	   the rounds after round 0 */
	if (!st->converged)
		why = st->rounds >= max_rounds + 2
			      ? "no (stopped after --max-rounds)"
			      : "no (the digest alone takes longer than "
				"--downtime)";
	fprintf(f, "converged: %s\n", why);
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
			" s (--timeout)",
			dest, a->timeout_s);
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
		d->fd = tcp_connect("send", a->to, (unsigned int)a->timeout_s);
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
		     .max_rounds = (uint32_t)a->max_rounds,
		     .max_bandwidth = a->max_bw, .level = a->wl.level,
		     .enc_flags = a->wl.level ? PMTRACK_ENC_ADAPTIVE : 0u,
		     .producer = "pmtrack send", .reply = conn ? x : NULL);

	return pmtrack_precopy(&po, &reg, 1, st);
}

/* Migrate the running workload to @d, and report: the exit code. */
static int send_migrate(const struct send_args *a, struct send_ctx *c,
			struct send_dest *d, struct pmtrack_xport *x)
{
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	int r;

	fprintf(c->info, "sending to %s\n", d->name);
	fflush(c->info);
	r = send_precopy(a, c, x, d->conn, &st);
	if (r) {
		send_failure(a, d->name, c, r, &st);
		return CLI_ERROR;
	}
	if (a->out && d->fd != STDOUT_FILENO && outfile_commit("send", &d->of))
		return CLI_ERROR;
	send_totals(c->info, &st, a->downtime_ms * 1000000u,
		    a->max_rounds ? a->max_rounds : 30);
	fprintf(c->info, "receiver: %s\n",
		d->conn ? "applied and verified the stream (its answer)"
			: "none: the stream was written, not verified (a "
			  "file or pipe has no return path)");
	return cli_flush("send", c->info);
}

int cmd_send(int argc, char **argv)
{
	struct send_args a = { .wl = { .size = DEF_SIZE,
				       .writers = DEF_WRITERS,
				       .rate = DEF_RATE },
			       .downtime_ms = 300,
			       .timeout_s = DEF_TIMEOUT_S };
	struct send_dest d = { .of = { .fd = -1 }, .fd = -1 };
	struct pmtrack_xport *x = NULL;
	struct send_ctx c = { 0 };
	int r, ret = CLI_ERROR;

	r = send_parse(&a, argc, argv);
	if (r >= 0)
		return r;
	c.quiet = a.quiet;
	c.info = a.out && !strcmp(a.out, "-") ? stderr : stdout;
	/* a closed pipe is -EPIPE from the transport, not a signal */
	signal(SIGPIPE, SIG_IGN);
	if (send_open(&a, &d))
		return CLI_ERROR;
	{
		PMTRACK_OPTS(pmtrack_xport_opts, xo,
			     .timeout_ns = a.timeout_s * 1000000000u);

		r = pmtrack_xport_new(d.fd, &xo, &x);
	}
	if (r)
		cli_err("send", "transport: %s", strerror(-r));
	else if (!wl_begin("send", &a.wl, c.info, &c.wl))
		ret = send_migrate(&a, &c, &d, x);
	wl_free(c.wl);
	pmtrack_xport_free(x);
	outfile_abort(&d.of);
	if (a.to && d.fd >= 0)
		close(d.fd);
	return ret;
}

// SPDX-License-Identifier: MIT
/*
 * pmtrack recv: receive one stream (TCP, a file or stdin) into memory it
 * creates, verify it, and optionally keep it as an image (outfile.c: kept
 * only once complete and verified).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "jsonw.h"
#include "net.h"
#include "outfile.h"
#include "progress.h" /* support/: pmt_bar_*() */
#include "rxreport.h"

static void recv_usage(FILE *f)
{
	fputs("usage: pmtrack recv [OPTIONS] --listen [ADDR:]PORT | FILE | -\n"
	      "Receive one libpmtrack stream into memory, checking every "
	      "checksum and the\n"
	      "END digest: from one TCP connection (--listen), a file, or "
	      "stdin (-).\n"
	      "  --listen [ADDR:]PORT  accept one connection; port 0 picks "
	      "a free one\n"
	      "  --port-file PATH      write the port to PATH once "
	      "listening\n"
	      "  --image OUT           also save the stream as the image OUT "
	      "(kept only if\n"
	      "                        the command succeeds)\n"
	      "  --allow-unverified    accept a complete stream that carries "
	      "no digest\n"
	      "  --timeout-ms MS       give up when the connection or pipe "
	      "stays silent this\n"
	      "                        long (not while waiting for the "
	      "connection); 0 = never;\n"
	      "                        default 60000\n"
	      "  --max-memory SIZE     most memory to map for the stream's "
	      "regions (K/KiB ..\n"
	      "                        T/TiB); default: this machine's "
	      "physical memory\n"
	      "  --quiet               no progress bar, no 'listening on' "
	      "and 'connection\n"
	      "                        from' lines\n"
	      "  --json                JSON Lines on stdout: one result "
	      "object (see pmtrack(1),\n"
	      "                        JSON OUTPUT)\n"
	      "Pages are counted zero pages included; the zero pages are "
	      "also given apart.\n"
	      "Over TCP the answer (applied and verified, or why not) goes "
	      "back to the sender\n"
	      "on the same connection.  Exit status: 0 if the stream was "
	      "complete, its\n"
	      "digest verified and, over TCP, the answer sent; 1 if not or on "
	      "errors; 2 for\n"
	      "a bad command line.\n",
	      f);
}

struct recv_args {
	const char *listen, *path, *image, *port_file;
	bool json, allow_unverified, quiet;
	uint64_t timeout_ms, max_memory;
};

enum {
	OPT_LISTEN = ARG_OPT,
	OPT_PORT_FILE,
	OPT_IMAGE,
	OPT_ALLOW_UNVERIFIED,
	OPT_TIMEOUT,
	OPT_MAX_MEMORY,
	OPT_QUIET,
	OPT_JSON,
};

static bool recv_opt(struct cmdline *p, int id, void *arg)
{
	struct recv_args *a = arg;

	switch (id) {
	case ARG_POS:
		return take_one(p, &a->path, "FILE");
	case OPT_LISTEN:
		if (hostport_port(p->val, true) < 0)
			return bad_usage(p,
					 "bad value for --listen: '%s' (want "
					 "[ADDR:]PORT)",
					 p->val);
		a->listen = p->val;
		break;
	case OPT_PORT_FILE:
		a->port_file = p->val;
		break;
	case OPT_IMAGE:
		a->image = p->val;
		break;
	case OPT_ALLOW_UNVERIFIED:
		a->allow_unverified = true;
		break;
	case OPT_TIMEOUT:
		return opt_u64(p, false, 0, 86400000ull * 365, &a->timeout_ms);
	case OPT_MAX_MEMORY:
		return opt_u64(p, true, 1, SIZE_MAX, &a->max_memory);
	case OPT_QUIET:
		a->quiet = true;
		break;
	case OPT_JSON:
		a->json = true;
		break;
	}
	return true;
}

static bool recv_done(struct cmdline *p, void *arg)
{
	const struct recv_args *a = arg;

	if (!!a->listen + !!a->path != 1)
		return bad_usage(
			p, a->listen ? "--listen and FILE exclude each other"
				     : "no source: --listen, FILE or -");
	if (a->port_file && !a->listen)
		return bad_usage(p, "--port-file needs --listen");
	return true;
}

static int recv_parse(struct recv_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "port-file", required_argument, NULL, OPT_PORT_FILE },
		{ "image", required_argument, NULL, OPT_IMAGE },
		{ "allow-unverified", no_argument, NULL, OPT_ALLOW_UNVERIFIED },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "json", no_argument, NULL, OPT_JSON },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	static const struct cmdline_spec spec = { .cmd = "recv",
						  .usage = recv_usage,
						  .opts = opts,
						  .take = recv_opt,
						  .done = recv_done };

	return parse_args(&spec, argc, argv, a);
}

/* Write @port to the port file (see outfile.c for where it goes). */
static int write_port_file(const char *cmd, struct outfile *of,
			   unsigned int port)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%u\n", port);

	if (write(of->fd, buf, (size_t)n) != n) {
		cli_err(cmd, "--port-file %s: %s", of->path,
			strerror(errno ? errno : EIO));
		outfile_abort(of);
		return -1;
	}
	return outfile_commit(cmd, of) ? -1 : 0;
}

/* a receive, from the command line to the report */
struct recv_run {
	struct recv_args a;
	FILE *info;	   /* where what happens goes */
	struct outfile of; /* --image */
	int fd;		   /* the stream */
	char src[160];	   /* where it comes from, for messages */
	struct pmtrack_rx *rx;
	struct pmtrack_xport *x;
	struct rx_result res;
	struct pmt_bar bar;
	uint64_t got, size; /* bytes received; the file's size, or 0 */
};

/* The tee of every byte received: the progress bar, and --image. */
static int recv_tee(void *arg, const struct iovec *iov, int iovcnt)
{
	struct recv_run *c = arg;
	char b[CLI_IEC_LEN];

	for (int i = 0; i < iovcnt; i++)
		c->got += iov[i].iov_len;
	pmt_bar_draw(&c->bar, false, c->got, c->size, "received %s",
		     iec(b, c->got));
	if (!c->a.image)
		return 0;
	return pmtrack_write_fd((void *)(intptr_t)c->of.fd, iov, iovcnt);
}

/* The connection, or -1 after a message. */
static int recv_accept(const struct recv_args *a, FILE *info, char *src,
		       size_t src_size)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char where[128], peer[128];
	struct outfile pf = { .fd = -1 };
	unsigned int port;
	int lfd, fd;

	/* a port file that cannot be written fails before listening */
	if (a->port_file &&
	    outfile_open("recv", "--port-file", &pf, a->port_file))
		return -1;
	lfd = tcp_listen("recv", a->listen, where, sizeof(where), &port);
	if (lfd < 0) {
		outfile_abort(&pf);
		return -1;
	}
	if (a->port_file && write_port_file("recv", &pf, port)) {
		close(lfd);
		return -1;
	}
	if (info) {
		fprintf(info, "listening on %s\n", where);
		fflush(info);
	}
	do
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		cli_err("recv", "accept: %s", strerror(errno));
	close(lfd);
	if (fd < 0)
		return -1;
	addr_str((struct sockaddr *)&ss, sl, peer, sizeof(peer));
	if (info) {
		fprintf(info, "connection from %s\n", peer);
		fflush(info);
	}
	snprintf(src, src_size, "%s", peer);
	return fd;
}

/* The stream (a connection, stdin or FILE), the receiver and its
   transport: 0, or -1 after a message. */
static int recv_open(struct recv_run *c)
{
	const struct recv_args *a = &c->a;
	int r;

	if (a->listen) {
		c->fd = recv_accept(a, c->info, c->src, sizeof(c->src));
		if (c->fd < 0)
			return -1;
	} else if (!strcmp(a->path, "-")) {
		c->fd = STDIN_FILENO;
		snprintf(c->src, sizeof(c->src), "stdin");
	} else {
		c->fd = open(a->path, O_RDONLY | O_CLOEXEC);
		if (c->fd < 0) {
			cli_err("recv", "%s: %s", a->path, strerror(errno));
			return -1;
		}
		snprintf(c->src, sizeof(c->src), "%s", a->path);
	}
	if (c->bar.on) {
		struct stat sb;

		if (!fstat(c->fd, &sb) && S_ISREG(sb.st_mode))
			c->size = (uint64_t)sb.st_size;
	}
	{
		PMTRACK_OPTS(pmtrack_rx_opts, ro,
			     .tee = a->image || c->bar.on ? recv_tee : NULL,
			     .tee_arg = c, .map_limit = (size_t)a->max_memory);
		PMTRACK_OPTS(pmtrack_xport_opts, xo,
			     .timeout_ns = a->timeout_ms * 1000000u);

		r = pmtrack_rx_new(&ro, &c->rx);
		if (!r)
			r = pmtrack_xport_new(c->fd, &xo, &c->x);
	}
	if (r)
		cli_err("recv", "%s", strerror(-r));
	return r ? -1 : 0;
}

/* Apply the stream, say what went wrong, keep the image if all went
   right: the exit code. */
static int recv_apply(struct recv_run *c)
{
	int r = pmtrack_rx_apply(c->rx, c->x), ret;

	pmt_bar_clear(&c->bar);
	rx_result_get(c->rx, r, &c->res);
	ret = rx_result_exit("recv", &c->res, c->a.allow_unverified);
	if (r == -ETIMEDOUT)
		cli_err("recv",
			"%s: nothing received for %" PRIu64
			" ms (--timeout-ms)",
			c->src, c->a.timeout_ms);
	else if (r)
		rx_error_print("recv", c->src, &c->res);
	if (c->res.st.reply == PMTRACK_RX_REPLY_FAILED) {
		cli_err("recv",
			"%s: the sender closed the connection before the "
			"answer: it does not know this copy is complete",
			c->src);
		ret = CLI_ERROR;
	}
	if (c->a.image && ret == CLI_OK && outfile_commit("recv", &c->of))
		ret = CLI_ERROR;
	return ret;
}

/* The report on stdout, for exit code @ret: the exit code. */
static int recv_report(struct recv_run *c, int ret)
{
	const struct recv_args *a = &c->a;
	struct json_object *doc;
	FILE *out = stdout;

	if (a->json) {
		doc = jw_head("recv", "result");
		jw_outcome(doc, ret);
		jw_set(doc, "source", jw_str(a->listen ? "tcp" : a->path));
		jw_set(doc, "peer", jw_str(a->listen ? c->src : NULL));
		rx_json(doc, c->rx, &c->res);
		jw_set(doc, "image",
		       jw_str(a->image && ret == CLI_OK ? a->image : NULL));
		if (jw_print("recv", out, doc))
			ret = CLI_ERROR;
	} else {
		print_rx_text(out, c->rx, &c->res);
		if (a->image)
			fprintf(out, "image: %s\n",
				ret == CLI_OK ? a->image : "not saved");
	}
	if (cli_flush("recv", out))
		ret = CLI_ERROR;
	return ret;
}

/* the result of a receive that could not start receiving */
static void recv_failed_json(const struct recv_run *c)
{
	struct json_object *doc = jw_head("recv", "result");

	jw_outcome(doc, CLI_ERROR);
	jw_set(doc, "source", jw_str(c->a.listen ? "tcp" : c->a.path));
	jw_set(doc, "peer", NULL);
	rx_json_none(doc);
	jw_set(doc, "image", NULL);
	jw_print("recv", stdout, doc);
}

int cmd_recv(int argc, char **argv)
{
	struct recv_run c = { .a = { .timeout_ms = DEF_TIMEOUT_MS },
			      .of = { .fd = -1 },
			      .fd = -1 };
	int r, ret = CLI_ERROR;

	r = recv_parse(&c.a, argc, argv);
	if (r >= 0)
		return r;
	c.info = c.a.quiet ? NULL : c.a.json ? stderr : stdout;
	pmt_bar_init(&c.bar, stderr, c.a.quiet);
	/* an image that cannot be written fails before anything else */
	if (c.a.image && outfile_open("recv", "--image", &c.of, c.a.image)) {
		if (c.a.json)
			recv_failed_json(&c);
		return CLI_ERROR;
	}
	if (!recv_open(&c))
		ret = recv_report(&c, recv_apply(&c));
	else if (c.a.json)
		recv_failed_json(&c);
	outfile_abort(&c.of); /* if not committed */
	pmtrack_xport_free(c.x);
	pmtrack_rx_free(c.rx);
	if (c.fd >= 0 && c.fd != STDIN_FILENO)
		close(c.fd);
	return ret;
}

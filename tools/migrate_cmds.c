// SPDX-License-Identifier: MIT
/*
 * pmtrack send, recv, dump and restore.
 *
 *   send     live pre-copy of a synthetic workload (examples/workload.h) to
 *            a receiver over TCP, or into a file: a load generator for
 *            links and receivers, like iperf
 *   recv     receive one stream (TCP, a file or stdin) into memory it
 *            creates, verify it, and optionally keep it as an image
 *   dump     incremental checkpoints of a synthetic workload: live
 *            pre-dumps, then a final one with the workload paused
 *   restore  replay a checkpoint directory and verify it
 *
 * Files the tool writes (recv --image, send --out, --port-file) follow
 * outfile.c: a regular file is written beside its name and renamed to it
 * only once complete (and, for recv, verified); a device, FIFO or socket
 * is written in place; a symlink is followed; a directory is refused
 * before anything starts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "cli.h"
#include "workload.h"

/* workload defaults shared by send and dump */
#define DEF_SIZE ((uint64_t)256 << 20)
#define DEF_WRITERS 2
#define DEF_RATE 10000
#define DEF_DUMPS 3
#define DEF_INTERVAL_MS 500
/* zstd's levels (ZSTD_minCLevel() is -ZSTD_TARGETLENGTH_MAX) */
#define LEVEL_MIN (-131072)
#define LEVEL_MAX 22
/* the workload's region in the stream */
#define WL_REGION_ID 1
#define WL_REGION_NAME "guest-ram"

/* ---- messages ------------------------------------------------------- */

#define err_msg cli_err

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double mb(uint64_t bytes)
{
	return (double)bytes / 1e6;
}

/* MB/s, 0 if no time passed */
static double mbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes * 1e3 / (double)ns : 0.0;
}

/* ---- command lines -------------------------------------------------- */

enum {
	OPT_BAD = -2, /* reported; exit CLI_USAGE */
	OPT_END = -1,
	OPT_ARG = 0, /* a positional argument, in p->val */
	OPT_HELP = 1,
	/* each command's options from here on */
	OPT_JSON,
	OPT_LISTEN,
	OPT_IMAGE,
	OPT_PORT_FILE,
	OPT_ALLOW_UNVERIFIED,
	OPT_TO,
	OPT_OUT,
	OPT_SIZE,
	OPT_WRITERS,
	OPT_RATE,
	OPT_DOWNTIME,
	OPT_MAX_ROUNDS,
	OPT_MAX_BANDWIDTH,
	OPT_LEVEL,
	OPT_QUIET,
	OPT_DUMPS,
	OPT_INTERVAL,
	OPT_UPTO,
	OPT_TIMEOUT,
	OPT_MAX_MEMORY,
};

struct opt {
	const char *name; /* without "--" */
	int id;
	bool has_val;
};

struct parser {
	const char *cmd;
	void (*usage)(FILE *f);
	int argc, i;
	char **argv;
	bool no_opts;	 /* after "--" */
	const char *opt; /* the option's name */
	const char *val; /* its value, or the positional argument */
};

__attribute__((format(printf, 2, 3))) static int bad_usage(struct parser *p,
							   const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pmtrack %s: ", p->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	p->usage(stderr);
	return OPT_BAD;
}

/*
 * The next argument: an option's id (its value, from "--opt VALUE" or
 * "--opt=VALUE", in p->val), OPT_ARG, OPT_HELP, OPT_END, or OPT_BAD after
 * a message and the usage on stderr.
 */
static int next_opt(struct parser *p, const struct opt *tab)
{
	const char *a, *eq;
	size_t len;

	for (;;) {
		if (p->i >= p->argc)
			return OPT_END;
		a = p->argv[p->i++];
		if (p->no_opts || a[0] != '-' || !a[1]) {
			p->val = a;
			return OPT_ARG;
		}
		if (strcmp(a, "--"))
			break;
		p->no_opts = true;
	}
	if (!strcmp(a, "-h") || !strcmp(a, "--help"))
		return OPT_HELP;
	if (a[1] != '-')
		return bad_usage(p, "unknown option '%s'", a);
	a += 2;
	eq = strchr(a, '=');
	len = eq ? (size_t)(eq - a) : strlen(a);
	for (; tab->name; tab++) {
		if (strlen(tab->name) != len || strncmp(tab->name, a, len))
			continue;
		p->opt = tab->name;
		if (!tab->has_val) {
			if (eq)
				return bad_usage(p, "--%s takes no value",
						 tab->name);
			return tab->id;
		}
		if (eq)
			p->val = eq + 1;
		else if (p->i < p->argc)
			p->val = p->argv[p->i++];
		else
			return bad_usage(p, "--%s needs a value", tab->name);
		return tab->id;
	}
	return bad_usage(p, "unknown option '--%s'", a);
}

/* @s: decimal digits, then (if @suffix) K, M or G for 2^10, 2^20, 2^30. */
static bool parse_u64(const char *s, bool suffix, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (suffix)
		return !wl_parse_size(s, out);
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = (uint64_t)v;
	return true;
}

/* p->val as a number in [min, max]; false after a usage message. */
static bool opt_u64(struct parser *p, bool suffix, uint64_t min, uint64_t max,
		    uint64_t *out)
{
	if (!parse_u64(p->val, suffix, out)) {
		bad_usage(p, "invalid --%s '%s': want a number%s", p->opt,
			  p->val, suffix ? " (K, M, G suffixes allowed)" : "");
		return false;
	}
	if (*out < min || *out > max) {
		bad_usage(p,
			  "--%s %s is out of range (%" PRIu64 "..%" PRIu64 ")",
			  p->opt, p->val, min, max);
		return false;
	}
	return true;
}

/* p->val as a zstd level. */
static bool opt_level(struct parser *p, int *out)
{
	const char *s = p->val + (p->val[0] == '-');
	uint64_t v;

	if (!parse_u64(s, false, &v) ||
	    v > (p->val[0] == '-' ? (uint64_t)-LEVEL_MIN : LEVEL_MAX)) {
		bad_usage(p,
			  "invalid --level '%s': want a zstd level, %d..%d "
			  "(0 = no compression)",
			  p->val, LEVEL_MIN, LEVEL_MAX);
		return false;
	}
	*out = p->val[0] == '-' ? -(int)v : (int)v;
	return true;
}

/* ---- TCP ------------------------------------------------------------ */

/*
 * Split "HOST:PORT", "[IPV6]:PORT" or, if @host_optional, "PORT" (host
 * NULL).  @s is modified.  false if malformed.
 */
static bool split_hostport(char *s, bool host_optional, char **host,
			   char **port)
{
	char *c;

	*host = NULL;
	if (s[0] == '[') {
		c = strchr(s, ']');
		if (!c || c[1] != ':')
			return false;
		*c = 0;
		*host = s + 1;
		*port = c + 2;
	} else if ((c = strrchr(s, ':'))) {
		if (strchr(s, ':') != c)
			return false; /* a bare IPv6 address: use [ ] */
		*c = 0;
		*host = s;
		*port = c + 1;
	} else if (host_optional) {
		*port = s;
	} else {
		return false;
	}
	if (*host && !**host)
		return false;
	for (c = *port; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return **port && strlen(*port) <= 5 && atoi(*port) <= 65535;
}

/* "ADDR:PORT" or "[ADDR]:PORT" of a socket address. */
static void addr_str(const struct sockaddr *sa, socklen_t len, char *buf,
		     size_t size)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, size, "?");
		return;
	}
	snprintf(buf, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host,
		 serv);
}

/* A listening socket on [ADDR:]PORT, or -1 after a message. */
static int tcp_listen(const char *cmd, const char *spec, char *desc,
		      size_t desc_size, unsigned int *port_out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char *copy = strdup(spec), *host, *port;
	int fd = -1, r, e = 0, one = 1, zero = 0;

	if (!copy) {
		err_msg(cmd, "out of memory");
		return -1;
	}
	split_hostport(copy, true, &host, &port); /* checked by the caller */
	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		err_msg(cmd, "--listen %s: %s", spec, gai_strerror(r));
		free(copy);
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* no address given: the IPv6 wildcard takes IPv4 too */
		if (ai->ai_family == AF_INET6 && !host)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
				   sizeof(zero));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 1))
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	free(copy);
	if (fd < 0) {
		err_msg(cmd, "cannot listen on %s: %s", spec, strerror(e));
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		err_msg(cmd, "getsockname: %s", strerror(errno));
		close(fd);
		return -1;
	}
	addr_str((struct sockaddr *)&ss, sl, desc, desc_size);
	*port_out = ntohs(ss.ss_family == AF_INET6
				  ? ((struct sockaddr_in6 *)&ss)->sin6_port
				  : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Write @port to the port file (see outfile.c for where it goes). */
static int write_port_file(const char *cmd, struct outfile *of,
			   unsigned int port)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%u\n", port);

	if (write(of->fd, buf, (size_t)n) != n) {
		err_msg(cmd, "--port-file %s: %s", of->path,
			strerror(errno ? errno : EIO));
		outfile_abort(of);
		return -1;
	}
	return outfile_commit(cmd, of) ? -1 : 0;
}

/* A connected socket to HOST:PORT, or -1 after a message. */
/* connect(), giving up after @timeout_s seconds (0: the kernel's own) */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len,
			  unsigned int timeout_s)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int fl = fcntl(fd, F_GETFL), e = 0, r;
	socklen_t el = sizeof(e);

	if (!timeout_s)
		return connect(fd, sa, len) ? errno : 0;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return errno;
	if (connect(fd, sa, len) && errno != EINPROGRESS)
		return errno;
	do
		r = poll(&p, 1, (int)(timeout_s > INT_MAX / 1000
					      ? INT_MAX
					      : timeout_s * 1000));
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r ? errno : ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el))
		return errno;
	if (!e && fcntl(fd, F_SETFL, fl))
		return errno;
	return e;
}

static int tcp_connect(const char *cmd, const char *spec,
		       unsigned int timeout_s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	char *copy = strdup(spec), *host, *port;
	int fd = -1, r, e = ECONNREFUSED, one = 1;

	if (!copy) {
		err_msg(cmd, "out of memory");
		return -1;
	}
	split_hostport(copy, false, &host, &port); /* checked by the caller */
	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		err_msg(cmd, "%s: %s", spec, gai_strerror(r));
		free(copy);
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		e = connect_within(fd, ai->ai_addr, ai->ai_addrlen,
				   timeout_s);
		if (!e)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	free(copy);
	if (fd < 0) {
		err_msg(cmd, "cannot connect to %s: %s", spec, strerror(e));
		return -1;
	}
	/* the transport sends whole buffers; the last one should not wait */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* ---- receiver reports (recv, restore) -------------------------------- */

static const char *rx_state_name(enum pmtrack_rx_state s)
{
	switch (s) {
	case PMTRACK_RX_EMPTY:
		return "empty";
	case PMTRACK_RX_COMPLETE:
		return "complete";
	case PMTRACK_RX_PARTIAL:
		return "partial";
	}
	return "unknown";
}

struct rx_result {
	int err; /* the apply's or restore's return */
	const char *msg;
	int reason; /* enum pmtrack_stream_error */
	struct pmtrack_rx_stats st;
	/* the digest line: NULL = verified */
	const char *unverified;
	/* the state line, if not just the state's name */
	char state[160];
};

static void rx_result_get(struct pmtrack_rx *rx, int err, struct rx_result *res)
{
	memset(res, 0, sizeof(*res));
	res->err = err;
	res->st.sz = sizeof(res->st);
	pmtrack_rx_get_stats(rx, &res->st);
	res->msg = pmtrack_rx_error(rx, &res->reason);
	if (err && (!res->msg || !*res->msg))
		res->msg = strerror(-err);
	if (err && res->reason == PMTRACK_SERR_DIGEST)
		res->unverified = "MISMATCH";
	else if (err)
		res->unverified = "not verified (failed)";
	else if (res->st.state != PMTRACK_RX_COMPLETE)
		res->unverified = "not verified (nothing applied)";
	else if (!res->st.digest_verified)
		res->unverified = "not verified (no digest)";
}

/* Exit code for a result, with the message for an unverified one. */
static int rx_result_exit(const char *cmd, const struct rx_result *res,
			  bool allow_unverified)
{
	if (res->err)
		return CLI_ERROR;
	if (res->unverified && !allow_unverified) {
		err_msg(cmd,
			"the memory is complete but its digest was not "
			"verified: the %s carried none (--allow-unverified "
			"accepts it)",
			strcmp(cmd, "restore") ? "stream" : "last image");
		return CLI_ERROR;
	}
	return CLI_OK;
}

static void rx_error_print(const char *cmd, const char *what,
			   const struct rx_result *res)
{
	if (res->reason != PMTRACK_SERR_OK)
		err_msg(cmd, "%s: %s (%s)", what, res->msg,
			pmtrack_stream_error_name(res->reason));
	else
		err_msg(cmd, "%s: %s", what, res->msg);
}

static void print_regions_text(FILE *f, struct pmtrack_rx *rx)
{
	size_t n = pmtrack_rx_nregions(rx);
	/* the stream's pages, which need not be this machine's */
	size_t ps = pmtrack_rx_page_size(rx);
	struct pmtrack_rx_region r;

	fprintf(f, "regions: %zu\n", n);
	if (!n)
		return;
	fprintf(f, "page size: %zu\n", ps);
	fprintf(f, "  %5s %10s %18s %14s %10s  %s\n", "index", "id", "start",
		"length", "pages", "name");
	for (size_t i = 0; i < n && !pmtrack_rx_region(rx, i, &r); i++) {
		fprintf(f,
			"  %5zu %10" PRIu32 " 0x%016" PRIx64 " %14zu %10zu  ",
			i, r.id, r.start, r.len, r.len / ps);
		put_str(f, r.name, false);
		fputc('\n', f);
	}
}

static void print_rx_text(FILE *f, struct pmtrack_rx *rx,
			  const struct rx_result *res)
{
	const struct pmtrack_rx_stats *st = &res->st;

	if (st->streams) {
		fputs("stream: ", f);
		put_hex(f, st->stream_id, PMTRACK_STREAM_ID_LEN);
		fputc('\n', f);
	}
	print_regions_text(f, rx);
	fprintf(f, "rounds: %" PRIu64 "\n", st->rounds);
	fprintf(f, "pages: %" PRIu64 " (%" PRIu64 " zero)\n",
		st->pages + st->zero_pages, st->zero_pages);
	fprintf(f, "bytes: %" PRIu64 " (%.1f MB)\n", st->bytes, mb(st->bytes));
	fprintf(f, "time: %.3f s (%.1f MB/s)\n", (double)st->apply_ns / 1e9,
		mbps(st->bytes, st->apply_ns));
	fprintf(f, "state: %s\n",
		res->state[0] ? res->state : rx_state_name(st->state));
	fprintf(f, "digest: %s\n",
		res->unverified ? res->unverified : "verified");
	if (st->reply != PMTRACK_RX_REPLY_NONE)
		fprintf(f, "answer: %s\n",
			st->reply == PMTRACK_RX_REPLY_SENT
				? "sent to the sender"
				: "not delivered (the sender had closed)");
}

static const char *rx_reply_name(enum pmtrack_rx_reply r)
{
	return r == PMTRACK_RX_REPLY_SENT     ? "sent"
	       : r == PMTRACK_RX_REPLY_FAILED ? "failed"
					      : NULL;
}

/* The members every receiver report has, for a JSON object. */
static void print_rx_json(FILE *f, struct pmtrack_rx *rx,
			  const struct rx_result *res)
{
	const struct pmtrack_rx_stats *st = &res->st;
	size_t n = pmtrack_rx_nregions(rx);
	struct pmtrack_rx_region r;

	fprintf(f, "\"state\":\"%s\",\"stream_id\":", rx_state_name(st->state));
	if (st->streams) {
		fputc('"', f);
		put_hex(f, st->stream_id, PMTRACK_STREAM_ID_LEN);
		fputc('"', f);
	} else {
		fputs("null", f);
	}
	fprintf(f, ",\"page_size\":%" PRIu32 ",\"regions\":[",
		pmtrack_rx_page_size(rx));
	for (size_t i = 0; i < n && !pmtrack_rx_region(rx, i, &r); i++) {
		fprintf(f,
			"%s{\"index\":%zu,\"id\":%" PRIu32 ",\"start\":%" PRIu64
			",\"length\":%zu,\"pages\":%zu,\"name\":",
			i ? "," : "", i, r.id, r.start, r.len,
			r.len / pmtrack_rx_page_size(rx));
		put_str(f, r.name, true);
		fputc('}', f);
	}
	fprintf(f,
		"],\"streams\":%" PRIu32 ",\"rounds\":%" PRIu64
		",\"pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64
		",\"bytes\":%" PRIu64 ",\"seconds\":%.6f"
		",\"digest_verified\":%s,\"digest\":",
		st->streams, st->rounds, st->pages + st->zero_pages,
		st->zero_pages, st->bytes, (double)st->apply_ns / 1e9,
		res->unverified ? "false" : "true");
	put_str(f, res->unverified ? res->unverified : "verified", true);
	fputs(",\"answer\":", f);
	put_str(f, rx_reply_name(st->reply), true);
	fputs(",\"error\":", f);
	if (res->err) {
		fputs("{\"reason\":", f);
		if (res->reason != PMTRACK_SERR_OK)
			put_str(f, pmtrack_stream_error_name(res->reason),
				true);
		else
			fputs("null", f);
		fprintf(f, ",\"errno\":%d,\"message\":", -res->err);
		put_str(f, res->msg, true);
		fputc('}', f);
	} else {
		fputs("null", f);
	}
}

static int flush_out(const char *cmd, FILE *f)
{
	if (fflush(f) || ferror(f)) {
		err_msg(cmd, "writing output: %s", strerror(errno));
		return CLI_ERROR;
	}
	return CLI_OK;
}

/* ---- recv ----------------------------------------------------------- */

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
	      "  --timeout SECONDS     give up when the connection or pipe "
	      "stays silent this\n"
	      "                        long (not while waiting for the "
	      "connection); 0 = never;\n"
	      "                        default 60\n"
	      "  --max-memory SIZE     most memory to map for the stream's "
	      "regions (K, M, G);\n"
	      "                        default: this machine's physical "
	      "memory\n"
	      "  --json                print one JSON document\n"
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
	bool json, allow_unverified;
	uint64_t timeout_s, max_memory;
};

#define DEF_TIMEOUT_S 60

static int recv_parse(struct recv_args *a, int argc, char **argv)
{
	static const struct opt tab[] = {
		{ "listen", OPT_LISTEN, true },
		{ "port-file", OPT_PORT_FILE, true },
		{ "image", OPT_IMAGE, true },
		{ "allow-unverified", OPT_ALLOW_UNVERIFIED, false },
		{ "timeout", OPT_TIMEOUT, true },
		{ "max-memory", OPT_MAX_MEMORY, true },
		{ "json", OPT_JSON, false },
		{ NULL, 0, false },
	};
	struct parser p = { .cmd = "recv",
			    .usage = recv_usage,
			    .argc = argc,
			    .argv = argv,
			    .i = 1 };
	char *copy, *host, *port;
	bool ok;
	int id;

	while ((id = next_opt(&p, tab)) != OPT_END) {
		switch (id) {
		case OPT_BAD:
			return CLI_USAGE;
		case OPT_HELP:
			recv_usage(stdout);
			return CLI_OK;
		case OPT_ARG:
			if (a->path) {
				bad_usage(&p, "more than one FILE");
				return CLI_USAGE;
			}
			a->path = p.val;
			break;
		case OPT_LISTEN:
			copy = strdup(p.val);
			ok = copy && split_hostport(copy, true, &host, &port);
			free(copy);
			if (!ok) {
				bad_usage(&p,
					  "invalid --listen '%s': want "
					  "[ADDR:]PORT",
					  p.val);
				return CLI_USAGE;
			}
			a->listen = p.val;
			break;
		case OPT_PORT_FILE:
			a->port_file = p.val;
			break;
		case OPT_IMAGE:
			a->image = p.val;
			break;
		case OPT_ALLOW_UNVERIFIED:
			a->allow_unverified = true;
			break;
		case OPT_TIMEOUT:
			if (!opt_u64(&p, false, 0, 86400 * 365, &a->timeout_s))
				return CLI_USAGE;
			break;
		case OPT_MAX_MEMORY:
			if (!opt_u64(&p, true, 1, SIZE_MAX, &a->max_memory))
				return CLI_USAGE;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		}
	}
	if (!!a->listen + !!a->path != 1) {
		bad_usage(&p, a->listen ? "--listen and FILE exclude each other"
					: "no source: --listen, FILE or -");
		return CLI_USAGE;
	}
	if (a->port_file && !a->listen) {
		bad_usage(&p, "--port-file needs --listen");
		return CLI_USAGE;
	}
	return -1;
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
	if (a->port_file && outfile_open("recv", "--port-file", &pf,
					 a->port_file))
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
	fprintf(info, "listening on %s\n", where);
	fflush(info);
	do
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		err_msg("recv", "accept: %s", strerror(errno));
	close(lfd);
	if (fd < 0)
		return -1;
	addr_str((struct sockaddr *)&ss, sl, peer, sizeof(peer));
	fprintf(info, "connection from %s\n", peer);
	fflush(info);
	snprintf(src, src_size, "%s", peer);
	return fd;
}

int cmd_recv(int argc, char **argv)
{
	struct recv_args a = { .timeout_s = DEF_TIMEOUT_S };
	struct outfile of = { .fd = -1 };
	struct pmtrack_rx *rx = NULL;
	struct pmtrack_xport *x = NULL;
	struct rx_result res;
	FILE *out = stdout, *info;
	char src[160];
	int fd = -1, r, ret;

	r = recv_parse(&a, argc, argv);
	if (r >= 0)
		return r;
	info = a.json ? stderr : stdout;

	/* an image that cannot be written fails before anything else */
	if (a.image && outfile_open("recv", "--image", &of, a.image))
		return CLI_ERROR;
	ret = CLI_ERROR;
	if (a.listen) {
		fd = recv_accept(&a, info, src, sizeof(src));
		if (fd < 0)
			goto out;
	} else if (!strcmp(a.path, "-")) {
		fd = STDIN_FILENO;
		snprintf(src, sizeof(src), "stdin");
	} else {
		fd = open(a.path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err_msg("recv", "%s: %s", a.path, strerror(errno));
			goto out;
		}
		snprintf(src, sizeof(src), "%s", a.path);
	}
	{
		PMTRACK_OPTS(pmtrack_rx_opts, ro,
			     .tee = a.image ? pmtrack_write_fd : NULL,
			     .tee_arg = (void *)(intptr_t)of.fd,
			     .map_limit = (size_t)a.max_memory);
		PMTRACK_OPTS(pmtrack_xport_opts, xo,
			     .timeout_ns = a.timeout_s * 1000000000u);

		r = pmtrack_rx_new(&ro, &rx);
		if (!r)
			r = pmtrack_xport_new(fd, &xo, &x);
	}
	if (r) {
		err_msg("recv", "%s", strerror(-r));
		goto out;
	}
	r = pmtrack_rx_apply(rx, x);
	rx_result_get(rx, r, &res);
	ret = rx_result_exit("recv", &res, a.allow_unverified);
	if (r == -ETIMEDOUT)
		err_msg("recv", "%s: nothing received for %" PRIu64
			" s (--timeout)", src, a.timeout_s);
	else if (r)
		rx_error_print("recv", src, &res);
	if (res.st.reply == PMTRACK_RX_REPLY_FAILED) {
		err_msg("recv",
			"%s: the sender closed the connection before the "
			"answer: it does not know this copy is complete",
			src);
		ret = CLI_ERROR;
	}
	if (a.image && ret == CLI_OK && outfile_commit("recv", &of))
		ret = CLI_ERROR;

	if (a.json) {
		fputs("{\"source\":", out);
		put_str(out, a.listen ? "tcp" : a.path, true);
		fputs(",\"peer\":", out);
		put_str(out, a.listen ? src : NULL, true);
		fputc(',', out);
		print_rx_json(out, rx, &res);
		fputs(",\"image\":", out);
		put_str(out, a.image && ret == CLI_OK ? a.image : NULL, true);
		fputs("}\n", out);
	} else {
		print_rx_text(out, rx, &res);
		if (a.image)
			fprintf(out, "image: %s\n",
				ret == CLI_OK ? a.image : "not saved");
	}
	if (flush_out("recv", out))
		ret = CLI_ERROR;
out:
	outfile_abort(&of); /* if not committed */
	pmtrack_xport_free(x);
	pmtrack_rx_free(rx);
	if (fd >= 0 && fd != STDIN_FILENO)
		close(fd);
	return ret;
}

/* ---- the synthetic workload (send, dump) ------------------------------ */

struct wl_args {
	uint64_t size, rate;
	uint64_t writers;
	int level;
};

static const char wl_usage_text[] =
	"  --size N              guest RAM, bytes (K, M, G suffixes); "
	"default 256M\n"
	"  --writers N           writer threads, 0..64; default 2\n"
	"  --rate PAGES/S        pages dirtied per second, all writers "
	"together (K, M, G\n"
	"                        suffixes; 0 = as fast as they can); "
	"default 10000\n"
	"  --level N             zstd level, -131072..22; 0 = no "
	"compression (default)\n";

/* A workload option, or false if @id is none (false with *bad on error). */
static bool wl_opt(struct parser *p, int id, struct wl_args *w, bool *bad)
{
	switch (id) {
	case OPT_SIZE:
		*bad = !opt_u64(p, true, 1, (uint64_t)1 << 46, &w->size);
		return true;
	case OPT_WRITERS:
		*bad = !opt_u64(p, false, 0, 64, &w->writers);
		return true;
	case OPT_RATE:
		*bad = !opt_u64(p, true, 0, (uint64_t)1 << 40, &w->rate);
		return true;
	case OPT_LEVEL:
		*bad = !opt_level(p, &w->level);
		return true;
	}
	return false;
}

static int wl_begin(const char *cmd, const struct wl_args *a, FILE *info,
		    struct wl **out)
{
	struct wl_opts o = { .bytes = (size_t)a->size,
			     .writers = (int)a->writers,
			     .rate = a->rate,
			     .seed = 1 };
	int r;

	r = wl_start(&o, out);
	if (r) {
		err_msg(cmd, "starting the workload (%" PRIu64 " bytes): %s",
			a->size, strerror(-r));
		return -1;
	}
	fprintf(info, "workload: %zu bytes, %d writers", wl_len(*out),
		o.writers);
	if (o.writers && o.rate)
		fprintf(info, " at %" PRIu64 " pages/s", o.rate);
	else if (o.writers)
		fputs(" at full speed", info);
	fputc('\n', info);
	return 0;
}

static struct pmtrack_mem_region wl_region(struct wl *w)
{
	return (struct pmtrack_mem_region){ .addr = wl_mem(w),
					    .len = wl_len(w),
					    .id = WL_REGION_ID,
					    .name = WL_REGION_NAME };
}

/* ---- send ----------------------------------------------------------- */

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

static int send_parse(struct send_args *a, int argc, char **argv)
{
	static const struct opt tab[] = {
		{ "to", OPT_TO, true },
		{ "out", OPT_OUT, true },
		{ "size", OPT_SIZE, true },
		{ "writers", OPT_WRITERS, true },
		{ "rate", OPT_RATE, true },
		{ "level", OPT_LEVEL, true },
		{ "downtime", OPT_DOWNTIME, true },
		{ "max-rounds", OPT_MAX_ROUNDS, true },
		{ "max-bandwidth", OPT_MAX_BANDWIDTH, true },
		{ "timeout", OPT_TIMEOUT, true },
		{ "quiet", OPT_QUIET, false },
		{ NULL, 0, false },
	};
	struct parser p = { .cmd = "send",
			    .usage = send_usage,
			    .argc = argc,
			    .argv = argv,
			    .i = 1 };
	char *copy, *host, *port;
	bool ok, bad = false;
	int id;

	while ((id = next_opt(&p, tab)) != OPT_END) {
		if (wl_opt(&p, id, &a->wl, &bad)) {
			if (bad)
				return CLI_USAGE;
			continue;
		}
		switch (id) {
		case OPT_BAD:
			return CLI_USAGE;
		case OPT_HELP:
			send_usage(stdout);
			return CLI_OK;
		case OPT_ARG:
			bad_usage(&p, "unexpected argument '%s'", p.val);
			return CLI_USAGE;
		case OPT_TO:
			copy = strdup(p.val);
			ok = copy &&
			     split_hostport(copy, false, &host, &port) &&
			     atoi(port) > 0;
			free(copy);
			if (!ok) {
				bad_usage(&p,
					  "invalid --to '%s': want HOST:PORT",
					  p.val);
				return CLI_USAGE;
			}
			a->to = p.val;
			break;
		case OPT_OUT:
			a->out = p.val;
			break;
		case OPT_DOWNTIME:
			if (!opt_u64(&p, false, 1, 3600000, &a->downtime_ms))
				return CLI_USAGE;
			break;
		case OPT_MAX_ROUNDS:
			if (!opt_u64(&p, false, 1, UINT32_MAX, &a->max_rounds))
				return CLI_USAGE;
			break;
		case OPT_MAX_BANDWIDTH:
			if (!opt_u64(&p, true, 0, UINT64_MAX, &a->max_bw))
				return CLI_USAGE;
			break;
		case OPT_TIMEOUT:
			if (!opt_u64(&p, false, 0, 86400 * 365, &a->timeout_s))
				return CLI_USAGE;
			break;
		case OPT_QUIET:
			a->quiet = true;
			break;
		}
	}
	if (!!a->to + !!a->out != 1) {
		bad_usage(&p, a->to ? "--to and --out exclude each other"
				    : "no destination: --to or --out");
		return CLI_USAGE;
	}
	return -1;
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
		if (r->expected_downtime_ns == PMTRACK_PRECOPY_UNKNOWN)
			fputs("unknown", f);
		else
			fprintf(f, "%.1f ms", ms(r->expected_downtime_ns));
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
	if (st->expected_downtime_ns == PMTRACK_PRECOPY_UNKNOWN)
		fputs("unknown", f);
	else
		fprintf(f, "%.1f ms", ms(st->expected_downtime_ns));
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
			err_msg("send",
				"%s: the receiver refused the stream: %s (%s)",
				dest, st->remote_message,
				pmtrack_stream_error_name(st->remote_reason));
		else
			err_msg("send", "%s: the receiver refused the stream: %s",
				dest,
				st->remote_message[0]
					? st->remote_message
					: strerror(st->remote_error));
		break;
	case -ENODATA:
		err_msg("send",
			"%s: the peer closed the connection without an answer: "
			"nothing says it has the memory",
			dest);
		break;
	case -EPROTO:
		err_msg("send",
			"%s: the peer's answer is not a pmtrack receiver's "
			"answer to this stream",
			dest);
		break;
	case -ETIMEDOUT:
		err_msg("send",
			"%s: no progress and no answer for %" PRIu64
			" s (--timeout)",
			dest, a->timeout_s);
		break;
	default:
		err_msg("send",
			"%s: migration failed after %" PRIu64 " rounds: %s",
			dest, c->rounds, strerror(-r));
	}
	if (c->resumed)
		err_msg("send", "the workload was paused for the switchover "
				"and runs on here");
}

/* Is @fd a stream socket, where a receiver can answer? */
static bool is_conn(int fd)
{
	struct stat sb;
	int type = 0;
	socklen_t len = sizeof(type);

	return !fstat(fd, &sb) && S_ISSOCK(sb.st_mode) &&
	       !getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) &&
	       type == SOCK_STREAM;
}

int cmd_send(int argc, char **argv)
{
	struct send_args a = { .wl = { .size = DEF_SIZE,
				       .writers = DEF_WRITERS,
				       .rate = DEF_RATE },
			       .downtime_ms = 300,
			       .timeout_s = DEF_TIMEOUT_S };
	static const struct pmtrack_precopy_ops ops = {
		.stop = send_stop,
		.resume = send_resume,
		.progress = send_progress,
	};
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct outfile of = { .fd = -1 };
	struct pmtrack_xport *x = NULL;
	struct pmtrack_mem_region reg;
	struct send_ctx c = { 0 };
	const char *dest;
	bool conn = false;
	int fd = -1, r, ret = CLI_ERROR;

	r = send_parse(&a, argc, argv);
	if (r >= 0)
		return r;
	c.quiet = a.quiet;
	c.info = a.out && !strcmp(a.out, "-") ? stderr : stdout;
	dest = a.to ? a.to : a.out;
	/* a closed pipe is -EPIPE from the transport, not a signal */
	signal(SIGPIPE, SIG_IGN);

	if (a.to) {
		fd = tcp_connect("send", a.to, (unsigned int)a.timeout_s);
		if (fd < 0)
			return CLI_ERROR;
		conn = true;
	} else if (!strcmp(a.out, "-")) {
		/* stdout: written, whatever it is (an ssh session's socket
		   has no receiver of ours behind it) */
		fd = STDOUT_FILENO;
		dest = "stdout";
	} else {
		if (outfile_open("send", "--out", &of, a.out))
			return CLI_ERROR;
		fd = of.fd;
		conn = of.in_place && is_conn(fd);
	}
	{
		PMTRACK_OPTS(pmtrack_xport_opts, xo,
			     .timeout_ns = a.timeout_s * 1000000000u);

		r = pmtrack_xport_new(fd, &xo, &x);
	}
	if (r) {
		err_msg("send", "transport: %s", strerror(-r));
		goto out;
	}
	if (wl_begin("send", &a.wl, c.info, &c.wl))
		goto out;
	reg = wl_region(c.wl);
	fprintf(c.info, "sending to %s\n", dest);
	fflush(c.info);
	{
		PMTRACK_OPTS(pmtrack_precopy_opts, po,
			     .write = pmtrack_xport_write, .write_arg = x,
			     .flush = xport_flush_cb, .ops = &ops, .arg = &c,
			     .downtime_limit_ns = a.downtime_ms * 1000000u,
			     .max_rounds = (uint32_t)a.max_rounds,
			     .max_bandwidth = a.max_bw, .level = a.wl.level,
			     .enc_flags =
				     a.wl.level ? PMTRACK_ENC_ADAPTIVE : 0u,
			     .producer = "pmtrack send",
			     .reply = conn ? x : NULL);

		r = pmtrack_precopy(&po, &reg, 1, &st);
	}
	if (r) {
		send_failure(&a, dest, &c, r, &st);
		goto out;
	}
	if (a.out && fd != STDOUT_FILENO) {
		r = outfile_commit("send", &of);
		if (r)
			goto out;
	}
	send_totals(c.info, &st, a.downtime_ms * 1000000u,
		    a.max_rounds ? a.max_rounds : 30);
	fprintf(c.info, "receiver: %s\n",
		conn ? "applied and verified the stream (its answer)"
		     : "none: the stream was written, not verified (a file or "
		       "pipe has no return path)");
	ret = flush_out("send", c.info);
out:
	wl_free(c.wl);
	pmtrack_xport_free(x);
	outfile_abort(&of);
	if (a.to && fd >= 0)
		close(fd);
	return ret;
}

/* ---- dump ----------------------------------------------------------- */

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

static int dump_parse(struct dump_args *a, int argc, char **argv)
{
	static const struct opt tab[] = {
		{ "size", OPT_SIZE, true },
		{ "writers", OPT_WRITERS, true },
		{ "rate", OPT_RATE, true },
		{ "level", OPT_LEVEL, true },
		{ "dumps", OPT_DUMPS, true },
		{ "interval", OPT_INTERVAL, true },
		{ NULL, 0, false },
	};
	struct parser p = { .cmd = "dump",
			    .usage = dump_usage,
			    .argc = argc,
			    .argv = argv,
			    .i = 1 };
	bool bad = false;
	int id;

	while ((id = next_opt(&p, tab)) != OPT_END) {
		if (wl_opt(&p, id, &a->wl, &bad)) {
			if (bad)
				return CLI_USAGE;
			continue;
		}
		switch (id) {
		case OPT_BAD:
			return CLI_USAGE;
		case OPT_HELP:
			dump_usage(stdout);
			return CLI_OK;
		case OPT_ARG:
			if (a->dir) {
				bad_usage(&p, "more than one DIR");
				return CLI_USAGE;
			}
			a->dir = p.val;
			break;
		case OPT_DUMPS:
			if (!opt_u64(&p, false, 1, 1000000, &a->dumps))
				return CLI_USAGE;
			break;
		case OPT_INTERVAL:
			if (!opt_u64(&p, false, 0, 86400000, &a->interval_ms))
				return CLI_USAGE;
			break;
		}
	}
	if (!a->dir) {
		bad_usage(&p, "no DIR");
		return CLI_USAGE;
	}
	return -1;
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
		err_msg("dump", "%s already holds checkpoint images", a.dir);
		goto out;
	} else if (r) {
		err_msg("dump", "%s: %s", a.dir, strerror(-r));
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
			err_msg("dump", "%s: image %" PRIu64 ": %s", a.dir, i,
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
	ret = flush_out("dump", stdout);
out:
	pmtrack_ckpt_free(ck);
	wl_free(w);
	return ret;
}

/* ---- restore -------------------------------------------------------- */

static void restore_usage(FILE *f)
{
	fputs("usage: pmtrack restore DIR [--upto N] [--allow-unverified] "
	      "[--json]\n"
	      "Replay the checkpoint images 0..N in DIR into memory, checking "
	      "every checksum,\n"
	      "the chain's links and the last image's digest.\n"
	      "  --upto N              the last image to apply; default the "
	      "newest\n"
	      "  --allow-unverified    accept a last image without a digest "
	      "(a live pre-dump)\n"
	      "  --json                print one JSON document\n"
	      "Exit status: 0 if the chain applied and the digest verified, 1 "
	      "if not or on\n"
	      "errors, 2 for a bad command line.\n",
	      f);
}

struct restore_args {
	const char *dir;
	uint64_t upto;
	bool json, allow_unverified;
};

static int restore_parse(struct restore_args *a, int argc, char **argv)
{
	static const struct opt tab[] = {
		{ "upto", OPT_UPTO, true },
		{ "allow-unverified", OPT_ALLOW_UNVERIFIED, false },
		{ "json", OPT_JSON, false },
		{ NULL, 0, false },
	};
	struct parser p = { .cmd = "restore",
			    .usage = restore_usage,
			    .argc = argc,
			    .argv = argv,
			    .i = 1 };
	int id;

	while ((id = next_opt(&p, tab)) != OPT_END) {
		switch (id) {
		case OPT_BAD:
			return CLI_USAGE;
		case OPT_HELP:
			restore_usage(stdout);
			return CLI_OK;
		case OPT_ARG:
			if (a->dir) {
				bad_usage(&p, "more than one DIR");
				return CLI_USAGE;
			}
			a->dir = p.val;
			break;
		case OPT_UPTO:
			if (!opt_u64(&p, false, 0, 999999, &a->upto))
				return CLI_USAGE;
			break;
		case OPT_ALLOW_UNVERIFIED:
			a->allow_unverified = true;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		}
	}
	if (!a->dir) {
		bad_usage(&p, "no DIR");
		return CLI_USAGE;
	}
	return -1;
}

int cmd_restore(int argc, char **argv)
{
	struct restore_args a = { .upto = UINT32_MAX };
	struct pmtrack_restore_info info = { .sz = sizeof(info) };
	struct pmtrack_rx *rx = NULL;
	struct rx_result res;
	char what[4096 + 32];
	FILE *out = stdout;
	int r, ret;

	r = restore_parse(&a, argc, argv);
	if (r >= 0)
		return r;
	r = pmtrack_rx_new(NULL, &rx);
	if (r) {
		err_msg("restore", "%s", strerror(-r));
		return CLI_ERROR;
	}
	r = pmtrack_ckpt_restore(rx, a.dir, (uint32_t)a.upto, &info);
	rx_result_get(rx, r, &res);
	if (r && res.st.state == PMTRACK_RX_COMPLETE) {
		/* the failing image wrote nothing: the memory is the last
		   good image, which is not what was asked for */
		snprintf(res.state, sizeof(res.state),
			 "complete up to image %06" PRIu32
			 ".pmts only (image %06" PRIu32
			 ".pmts was not applied)",
			 info.images - 1, info.images);
		res.unverified = "not verified (the restore failed)";
	}
	ret = rx_result_exit("restore", &res, a.allow_unverified);
	if (r == -ENOENT && info.images) {
		/* a gap, or --upto past the newest image */
		err_msg("restore", "%s: no image %06" PRIu32 ".pmts", a.dir,
			info.images);
	} else if (r == -ENOENT) {
		err_msg("restore", "%s: no checkpoint images (%s)", a.dir,
			access(a.dir, F_OK) ? "no such directory"
					    : "no 000000.pmts");
	} else if (r) {
		snprintf(what, sizeof(what), "%s: image %06" PRIu32 ".pmts",
			 a.dir, info.images);
		rx_error_print("restore", what, &res);
	}
	if (a.json) {
		fputs("{\"dir\":", out);
		put_str(out, a.dir, true);
		fprintf(out,
			",\"images\":%" PRIu32 ",\"image_bytes\":%" PRIu64 ",",
			info.images, info.bytes);
		print_rx_json(out, rx, &res);
		fputs("}\n", out);
	} else {
		fprintf(out, "images: %" PRIu32, info.images);
		if (info.images)
			fprintf(out, " (%06u.pmts to %06" PRIu32 ".pmts)", 0u,
				info.images - 1);
		fputc('\n', out);
		print_rx_text(out, rx, &res);
	}
	if (flush_out("restore", out))
		ret = CLI_ERROR;
	pmtrack_rx_free(rx);
	return ret;
}

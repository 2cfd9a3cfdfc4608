// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench-migrate: pre-copy migration, incremental checkpoints and the
 * stream transport (<pmtrack/migrate.h>), each next to the raw mechanism
 * measured in the same run.
 *
 * Every transfer goes from this process to a receiver process forked for
 * it, over a TCP connection on 127.0.0.1 (ephemeral port).  The receiver
 * maps and pre-faults its own destination before the sender starts, then
 * reports CLOCK_MONOTONIC (system-wide) when it has everything; a
 * transfer's time runs from the sender's first byte to that moment.  The
 * big buffers of this process are MADV_DONTFORK: the fork copies no page
 * tables and leaves no copy-on-write faults behind.  Pre-copy uses the
 * return path (opts.reply): the receiver's answer ends the downtime.
 * Afterwards (untimed) the receiver sends back the pmtrack_digest() of its
 * destination, which must equal the source's, and its state; a migration
 * must be acked, its receiver COMPLETE, and with verification on END
 * verified (state_verified, digest_verified) and the source audited.
 * Anything that does not verify fails the program (exit 1).  Timing never
 * does.
 *
 * Verification modes of pre-copy (--verify): "none" is
 * PMTRACK_PRECOPY_NO_DIGEST; "state+audit" the default (END's state digest,
 * the sum of per-page hashes both sides keep as pages are sent and
 * applied, so the receiver checks it at the cost of the pages it applied;
 * then, after the receiver's answer and outside the downtime, the audit
 * reads the stopped source once, on every CPU); "full digest" is
 * PMTRACK_PRECOPY_FULL_DIGEST | NO_AUDIT (the digest of all memory, read by
 * the sender and the receiver inside the downtime: the verification before
 * 0.2).
 *
 *  throughput  one pre-copy with no writers (round 0 sends every page, the
 *              next collect finds nothing, the stop callback is a no-op)
 *              over pmtrack_xport (syscall and io_uring), level 0, into
 *              pmtrack_rx_apply() on the receiver, against send() of the
 *              same memory in 1 MiB chunks into recv() straight into the
 *              receiver's buffer.  Contents: random (incompressible, no
 *              zero pages) and the workload's fill (a quarter zero pages).
 *              Each verification mode, and PMTRACK_ENC_STABLE (no private
 *              copy of each page; right here as nothing writes) with the
 *              default verification, next to the live-memory default.
 *              Ratio = raw time / stream time (a throughput ratio; target
 *              >= 0.85 with verification on); the audit, after the
 *              receiver's answer, is outside the time and reported.
 *  migrate     pmtrack_precopy() of fresh workload RAM for every run
 *              (support/workload.h, huge pages: 2 writers, 80% of writes
 *              into the hot 1/16; rate 0 = no writers) in each
 *              verification mode (the same RAM contents and writes for
 *              each) with the default transport and downtime limit,
 *              wl_pause() as the stop callback.  Just before each
 *              migration, send() of the same (live) memory to a receiver
 *              measures the raw bandwidth, and one untracked
 *              pmtrack_digest() of it is timed.  Reported for the default
 *              mode: rounds, total time, bytes, round-0 bandwidth (its
 *              bytes / its duration, on the sender), (total - audit) /
 *              (bytes / that bandwidth) (target <= 1.25), final-round
 *              pages, downtime / limit (target <= 1.0; the library's
 *              downtime: stop() to the receiver's answer), the audit time,
 *              converged; then those ratios, downtimes and final pages of
 *              the three modes side by side; then the raw-bandwidth ratio,
 *              the ratio with the audit included, the digest times and
 *              THP PMD splits.
 *  downtime    the same pre-copy at one dirty rate (--scale-rate, 5,000
 *              pages/s) over several memory sizes (--scale-sizes, 256 MiB,
 *              1 GiB, 4 GiB), each verification mode: final-round pages,
 *              downtime, what verifying adds to it (less the unverified
 *              run's), downtime / final pages, the audit, and the largest
 *              size against the smallest.  With the state digest
 *              the downtime follows the final round's pages, not the
 *              memory; with the full digest it follows the memory.
 *  ckpt        pmtrack_ckpt_dump() of fresh workload RAM (no writers) for
 *              every run, a chain of five images: image 0 stopped (full),
 *              then before each image 1% of the pages (scattered) written:
 *              a live incremental, a stopped incremental (target: <= 5% of
 *              the full dump's time), a stopped one with
 *              PMTRACK_DUMP_AUDIT and one with PMTRACK_DUMP_FULL_DIGEST.
 *              Right after image 0, write(2) of as many bytes as it has,
 *              from the memory, into the same directory (target: full
 *              dump / raw <= 1.3 without fsync).  With and without fsync
 *              (no_sync).  Every image must carry the state digest (the
 *              memory digest only with FULL_DIGEST, audited only with
 *              AUDIT); the chain is restored into a second buffer, must
 *              report state and digest verified, and is compared byte for
 *              byte.
 *  transport   pmtrack_xport, io_uring against system calls: writes of
 *              1 MiB + 64 B (a batch and its record header, as the encoder
 *              issues them) to a file, its fsync, reading it back from the
 *              page cache and cold (after fsync and POSIX_FADV_DONTNEED),
 *              each read chunk copied into a destination; and the same
 *              writes over TCP to a receiver process reading through the
 *              same kind of transport.
 *
 * Each measurement is repeated --reps times (the raw and library sides of a
 * row alternate which goes first, and so do the verification modes) and
 * medians are reported.  --no-thp (PR_SET_THP_DISABLE) runs everything on
 * 4 KiB pages; --verify picks the modes (--no-digest: none only).  --quick
 * (the smoke test) runs every section small: 32 MiB, sizes 16 and 32 MiB,
 * one repetition, a few seconds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "args.h"
#include "bench_util.h"
#include "workload.h"

#define PROG "pmtrack-bench-migrate"
#define EXIT_SKIP 77
#define REGION_ID 7u
#define CHUNK (1u << 20)
/* the transport section's writes: a batch of 256 pages and a header */
#define XP_CHUNK ((1u << 20) + 64u)
#define MAX_RATES 16
#define MAX_SIZES 8
/* 30 pre-copy rounds after round 0 (the default), the final one, spare */
#define MAX_ROUNDS 40

enum section {
	SEC_THROUGHPUT = 1 << 0,
	SEC_MIGRATE = 1 << 1,
	SEC_CKPT = 1 << 2,
	SEC_TRANSPORT = 1 << 3,
	SEC_DOWNTIME = 1 << 4,
	SEC_ALL = (1 << 5) - 1,
};

static const char *const section_name[] = {
	"throughput",
	"migrate",
	"ckpt",
	"transport",
	"downtime",
};

/* how a pre-copy is verified */
enum verify {
	V_NONE,	 /* PMTRACK_PRECOPY_NO_DIGEST */
	V_STATE, /* the default: END's state digest, then the audit */
	V_FULL,	 /* FULL_DIGEST | NO_AUDIT: the memory digest, as before 0.2 */
	V_NR,
};

static const char *const verify_name[V_NR] = {
	[V_NONE] = "none",
	[V_STATE] = "state+audit",
	[V_FULL] = "full digest",
};

/* the names --verify takes */
static const char *const verify_arg[V_NR] = {
	[V_NONE] = "none",
	[V_STATE] = "state",
	[V_FULL] = "full",
};

static unsigned int verify_flags(enum verify v)
{
	return v == V_NONE ? PMTRACK_PRECOPY_NO_DIGEST
	       : v == V_FULL
		       ? PMTRACK_PRECOPY_FULL_DIGEST | PMTRACK_PRECOPY_NO_AUDIT
		       : 0;
}

struct cfg {
	size_t len; /* bytes of every region */
	size_t ps;
	int reps;
	unsigned int only; /* enum section */
	const char *csv_dir;
	const char *dir; /* checkpoints and transport files */
	uint64_t rates[MAX_RATES];
	int nrates;
	uint64_t limit_ns;
	unsigned int verify; /* 1 << enum verify, the modes to run */
	/* downtime: one dirty rate over several sizes */
	uint64_t scale_rate;
	size_t scale_mib[MAX_SIZES];
	int nsizes;
	bool uring; /* io_uring can be set up */
};

/* ---- helpers -------------------------------------------------------- */

__attribute__((noreturn)) static void fail(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err));
	exit(1);
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt,
								...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* a path from a format; exits if it does not fit */
__attribute__((format(printf, 3, 4))) static void
path_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		die("path too long: %s", fmt);
}

static uint64_t cpu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* a /proc/vmstat counter, 0 if unreadable */
static uint64_t vmstat(const char *name)
{
	char line[256];
	size_t n = strlen(name);
	uint64_t v = 0;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ' ') {
			v = strtoull(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* the active THP mode, "always", "madvise" or "never" */
static const char *thp_mode(void)
{
	static char mode[32] = "unknown";
	char line[128], *a, *b;
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return mode;
	if (fgets(line, sizeof(line), f) && (a = strchr(line, '[')) &&
	    (b = strchr(a, ']')) && b - a - 1 < (long)sizeof(mode)) {
		memcpy(mode, a + 1, (size_t)(b - a - 1));
		mode[b - a - 1] = 0;
	}
	fclose(f);
	return mode;
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void fill_random(char *p, size_t len, uint64_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = xorshift64(&s);

		memcpy(p + i, &v, 8);
	}
}

/* Children (the receivers) do not inherit it: fork() stays cheap. */
static void no_fork(void *p, size_t len)
{
	if (madvise(p, len, MADV_DONTFORK))
		fail("madvise(MADV_DONTFORK)", errno);
}

/* an anonymous mapping, every page written with @byte */
static char *map_big(size_t len, int byte)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap", errno);
	no_fork(p, len);
	/* like the workload's RAM and the library's receiver: huge pages
	   where THP is "madvise" (a failure only costs speed) */
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, byte, len);
	return p;
}

static void digest_of(const void *p, size_t len,
		      uint8_t out[PMTRACK_DIGEST_LEN])
{
	struct iovec iov = { (void *)p, len };

	pmtrack_digest(&iov, 1, out);
}

/* the median of v[0..n), v left as it is */
static double med(const double *v, int n)
{
	double *tmp = malloc((size_t)n * sizeof(*v)), r;

	if (!tmp)
		fail("malloc", ENOMEM);
	memcpy(tmp, v, (size_t)n * sizeof(*v));
	r = bench_median(tmp, n);
	free(tmp);
	return r;
}

static double gbps(size_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / secs / 1e9 : 0;
}

static const char *kind_name(enum pmtrack_xport_kind k)
{
	return k == PMTRACK_XPORT_URING	    ? "io_uring"
	       : k == PMTRACK_XPORT_SYSCALL ? "syscall"
					    : "auto";
}

static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, (char *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			break;
		off += (size_t)n;
	}
	return (ssize_t)off;
}

/* send() @len bytes in 1 MiB chunks */
static int send_all(int fd, const char *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		size_t k = len - off < CHUNK ? len - off : CHUNK;
		ssize_t n = send(fd, p + off, k, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

/* pmtrack_xport_write() of @len bytes in chunks of @chunk */
static int xport_write_all(struct pmtrack_xport *x, const char *p, size_t len,
			   size_t chunk)
{
	for (size_t off = 0; off < len;) {
		struct iovec iov = { (void *)(p + off),
				     len - off < chunk ? len - off : chunk };
		int r = pmtrack_xport_write(x, &iov, 1);

		if (r)
			return r;
		off += iov.iov_len;
	}
	return pmtrack_xport_flush(x);
}

/* everything pmtrack_xport_read() gives, copied to dst; bytes or -errno */
static ssize_t xport_read_all(struct pmtrack_xport *x, char *dst, size_t len)
{
	size_t off = 0;

	for (;;) {
		const void *buf;
		ssize_t n = pmtrack_xport_read(x, &buf);

		if (n < 0)
			return n;
		if (!n)
			return (ssize_t)off;
		if ((size_t)n > len - off)
			return -EMSGSIZE;
		memcpy(dst + off, buf, (size_t)n);
		off += (size_t)n;
	}
}

/* ---- the receiver process ----------------------------------------------- */

enum rx_mode {
	RX_RAW,	   /* recv() straight into the destination */
	RX_STREAM, /* pmtrack_rx_apply() into the destination */
	RX_XPORT,  /* pmtrack_xport_read(), each chunk copied */
};

struct rx_req {
	enum rx_mode mode;
	enum pmtrack_xport_kind kind;
	size_t len;
};

/* what the receiver reports, in one write to a pipe (< PIPE_BUF) */
struct rx_res {
	int err;	 /* 0 or -errno */
	int state;	 /* RX_STREAM: enum pmtrack_rx_state */
	int verified;	 /* RX_STREAM: digest_verified */
	int state_ok;	 /* RX_STREAM: state_verified */
	int reply;	 /* RX_STREAM: enum pmtrack_rx_reply */
	uint64_t t_done; /* CLOCK_MONOTONIC when all was received */
	uint64_t bytes;
	uint64_t cpu_ns; /* the receiver's CPU time from accept to done */
	uint8_t digest[PMTRACK_DIGEST_LEN]; /* of the destination */
	char msg[200];
};

struct peer {
	pid_t pid;
	int ctl; /* a ready byte, then struct rx_res */
	int lfd;
	struct sockaddr_in addr;
};

static int recv_raw(int fd, char *dst, size_t len, struct rx_res *r)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = recv(fd, dst + off, len - off, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -ENODATA;
		off += (size_t)n;
	}
	r->bytes = off;
	return 0;
}

static int recv_stream(const struct rx_req *q, int fd, char *dst,
		       struct rx_res *r)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = q->kind);
	PMTRACK_OPTS(pmtrack_rx_stats, st);
	struct pmtrack_xport *x;
	struct pmtrack_rx *rx;
	int err;

	err = pmtrack_xport_new(fd, &xo, &x);
	if (err)
		return err;
	err = pmtrack_rx_new(NULL, &rx);
	if (err) {
		pmtrack_xport_free(x);
		return err;
	}
	err = pmtrack_rx_set_dest(rx, REGION_ID, dst, q->len);
	if (!err)
		err = pmtrack_rx_apply(rx, x);
	if (err)
		snprintf(r->msg, sizeof(r->msg), "%s",
			 pmtrack_rx_error(rx, NULL));
	if (!pmtrack_rx_get_stats(rx, &st)) {
		r->state = (int)st.state;
		r->verified = st.digest_verified;
		r->state_ok = st.state_verified;
		r->reply = (int)st.reply;
		r->bytes = st.bytes;
	}
	pmtrack_rx_free(rx);
	pmtrack_xport_free(x);
	return err;
}

static int recv_xport(const struct rx_req *q, int fd, char *dst,
		      struct rx_res *r)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = q->kind);
	struct pmtrack_xport *x;
	ssize_t n;
	int err;

	err = pmtrack_xport_new(fd, &xo, &x);
	if (err)
		return err;
	n = xport_read_all(x, dst, q->len);
	pmtrack_xport_free(x);
	if (n < 0)
		return (int)n;
	r->bytes = (uint64_t)n;
	return (size_t)n == q->len ? 0 : -ENODATA;
}

__attribute__((noreturn)) static void rx_child(const struct rx_req *q, int lfd,
					       int ctl)
{
	struct rx_res r = { 0 };
	char *dst = map_big(q->len, 0x5a);
	uint64_t c0;
	int fd;

	if (write(ctl, "r", 1) != 1)
		_exit(1);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		r.err = -errno;
		goto out;
	}
	c0 = cpu_now_ns();
	switch (q->mode) {
	case RX_RAW:
		r.err = recv_raw(fd, dst, q->len, &r);
		break;
	case RX_STREAM:
		r.err = recv_stream(q, fd, dst, &r);
		break;
	case RX_XPORT:
	default:
		r.err = recv_xport(q, fd, dst, &r);
		break;
	}
	r.t_done = bench_now_ns();
	r.cpu_ns = cpu_now_ns() - c0;
	close(fd);
	digest_of(dst, q->len, r.digest);
out:
	if (write(ctl, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
	_exit(0);
}

/* Fork a receiver for @q; returns once its destination is faulted in. */
static void peer_start(struct peer *p, const struct rx_req *q)
{
	socklen_t al = sizeof(p->addr);
	pid_t parent = getpid();
	int pfd[2];
	char c;

	memset(p, 0, sizeof(*p));
	p->addr.sin_family = AF_INET;
	p->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0)
		fail("socket", errno);
	if (bind(p->lfd, (struct sockaddr *)&p->addr, sizeof(p->addr)) ||
	    listen(p->lfd, 1) ||
	    getsockname(p->lfd, (struct sockaddr *)&p->addr, &al))
		fail("bind/listen on 127.0.0.1", errno);
	if (pipe2(pfd, O_CLOEXEC))
		fail("pipe2", errno);
	fflush(stdout);
	fflush(stderr);
	p->pid = fork();
	if (p->pid < 0)
		fail("fork", errno);
	if (!p->pid) {
		close(pfd[0]);
		/* never outlive a failed sender */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		rx_child(q, p->lfd, pfd[1]);
	}
	close(pfd[1]);
	p->ctl = pfd[0];
	if (read_full(p->ctl, &c, 1) != 1)
		die("the receiver process did not start");
}

/* A connection to the receiver. */
static int peer_connect(struct peer *p)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fail("socket", errno);
	if (connect(fd, (struct sockaddr *)&p->addr, sizeof(p->addr)))
		fail("connect to 127.0.0.1", errno);
	close(p->lfd);
	p->lfd = -1;
	return fd;
}

/* The receiver's report; the caller has shut down its side. */
static void peer_finish(struct peer *p, struct rx_res *r)
{
	int status;

	if (read_full(p->ctl, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		die("the receiver process sent no report");
	close(p->ctl);
	while (waitpid(p->pid, &status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid", errno);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		die("the receiver process failed (status %#x)", status);
}

/* ---- single transfers ------------------------------------------------ */

struct xfer {
	double secs;	/* first byte to the receiver done */
	double snd_cpu; /* seconds */
	double rcv_cpu;
	uint64_t t0; /* the first byte */
	struct rx_res rx;
};

/* send() @len bytes of @src into recv(); @want: digest to check, or NULL */
static void run_raw(const char *src, size_t len, const uint8_t *want,
		    struct xfer *out)
{
	struct rx_req q = { .mode = RX_RAW, .len = len };
	struct peer p;
	uint64_t c0;
	int fd, err;

	peer_start(&p, &q);
	fd = peer_connect(&p);
	c0 = cpu_now_ns();
	out->t0 = bench_now_ns();
	BENCH_LIVE_READ_BEGIN(); /* src may be live RAM */
	err = send_all(fd, src, len);
	BENCH_LIVE_READ_END();
	out->snd_cpu = (double)(cpu_now_ns() - c0) / 1e9;
	shutdown(fd, SHUT_WR);
	peer_finish(&p, &out->rx);
	close(fd);
	if (err || out->rx.err)
		die("raw transfer: send: %s, recv: %s", strerror(-err),
		    strerror(-out->rx.err));
	if (want && memcmp(want, out->rx.digest, PMTRACK_DIGEST_LEN))
		die("raw transfer: the receiver's memory differs");
	out->secs = (double)(out->rx.t_done - out->t0) / 1e9;
	out->rcv_cpu = (double)out->rx.cpu_ns / 1e9;
}

/* one pmtrack_precopy() into a receiver process */
struct mig {
	/* in */
	char *mem;
	size_t len;
	struct wl *w; /* NULL: nothing writes */
	enum pmtrack_xport_kind kind;
	enum verify v;
	unsigned int enc_flags; /* enum pmtrack_enc_flags */
	/* out */
	struct pmtrack_xport *x;
	enum pmtrack_xport_kind used;
	struct pmtrack_precopy_stats st;
	struct pmtrack_precopy_round rounds[MAX_ROUNDS];
	int nrounds;
	uint64_t t_first, cpu_first, t_stop, t_switch, cpu_end;
	/* page writes from the pmtrack_precopy() call to stop(), and when */
	uint64_t t_call, w_call, w_stop;
	struct xfer xf;
};

static int mig_write(void *arg, const struct iovec *iov, int iovcnt)
{
	struct mig *m = arg;

	if (!m->t_first) {
		m->t_first = bench_now_ns();
		m->cpu_first = cpu_now_ns();
	}
	return pmtrack_xport_write(m->x, iov, iovcnt);
}

static int mig_flush(void *arg)
{
	struct mig *m = arg;

	return pmtrack_xport_flush(m->x);
}

static int mig_stop(void *arg)
{
	struct mig *m = arg;

	m->t_stop = bench_now_ns();
	m->w_stop = m->w ? wl_writes(m->w) : 0;
	return m->w ? wl_pause(m->w) : 0;
}

/* the destination has the stream; the audit (if any) comes next */
static int mig_switchover(void *arg)
{
	struct mig *m = arg;

	m->t_switch = bench_now_ns();
	return 0;
}

static void mig_resume(void *arg)
{
	struct mig *m = arg;

	if (m->w)
		wl_resume(m->w);
}

static int mig_progress(void *arg, const struct pmtrack_precopy_round *r)
{
	struct mig *m = arg;

	if (m->nrounds < MAX_ROUNDS)
		m->rounds[m->nrounds++] = *r;
	return 0;
}

/*
 * Migrate m->mem to a receiver process, with the return path (the
 * receiver's answer ends the downtime), and check what arrived: the
 * answer, the receiver's state, its END checks (the state digest, and the
 * memory digest with V_FULL), the sender's audit (V_STATE), and the
 * receiver's memory against the (now paused) source, byte for byte by
 * their digests.  The workload is left paused.
 */
static void run_mig(const struct cfg *c, struct mig *m)
{
	static const struct pmtrack_precopy_ops ops = {
		.stop = mig_stop,
		.resume = mig_resume,
		.progress = mig_progress,
	};
	struct rx_req q = { .mode = RX_STREAM, .kind = m->kind, .len = m->len };
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = m->kind);
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = mig_write,
		     .write_arg = m, .flush = mig_flush, .ops = &ops, .arg = m,
		     .downtime_limit_ns = c->limit_ns,
		     .flags = verify_flags(m->v), .enc_flags = m->enc_flags,
		     .producer = PROG, .switchover = mig_switchover);
	struct pmtrack_mem_region reg = {
		.addr = m->mem,
		.len = m->len,
		.id = REGION_ID,
		.name = "ram",
	};
	uint8_t want[PMTRACK_DIGEST_LEN];
	struct peer p;
	int fd, err;

	m->nrounds = 0;
	m->t_first = m->t_stop = m->t_switch = 0;
	peer_start(&p, &q);
	fd = peer_connect(&p);
	err = pmtrack_xport_new(fd, &xo, &m->x);
	if (err)
		fail("pmtrack_xport_new", -err);
	m->used = pmtrack_xport_kind(m->x);
	/* the answer is read on the same connection, once flushed */
	o.reply = m->x;
	memset(&m->st, 0, sizeof(m->st));
	m->st.sz = sizeof(m->st);
	m->w_call = m->w ? wl_writes(m->w) : 0;
	m->t_call = bench_now_ns();
	err = pmtrack_precopy(&o, &reg, 1, &m->st);
	m->cpu_end = cpu_now_ns();
	pmtrack_xport_free(m->x);
	m->x = NULL;
	shutdown(fd, SHUT_WR);
	peer_finish(&p, &m->xf.rx);
	close(fd);
	if (err)
		die("pmtrack_precopy (verify: %s): %s (receiver: %s%s%s; "
		    "audit: %llu pages differ, the first at %#llx)",
		    verify_name[m->v], strerror(-err),
		    m->xf.rx.err ? strerror(-m->xf.rx.err) : "ok",
		    m->xf.rx.msg[0] ? ": " : "", m->xf.rx.msg,
		    (unsigned long long)m->st.audit_differ,
		    (unsigned long long)m->st.audit_first_addr);
	if (m->xf.rx.err)
		die("migration: receiver: %s: %s", strerror(-m->xf.rx.err),
		    m->xf.rx.msg);
	if (m->xf.rx.state != PMTRACK_RX_COMPLETE)
		die("migration: receiver state %d, not COMPLETE",
		    m->xf.rx.state);
	if (!m->st.acked || m->xf.rx.reply != PMTRACK_RX_REPLY_SENT ||
	    !m->t_switch || m->t_switch < m->t_stop)
		die("migration: acked %d, the receiver's reply %d, "
		    "switchover %s",
		    m->st.acked, m->xf.rx.reply,
		    m->t_switch ? "before stop()" : "not called");
	if (m->v != V_NONE && (!m->xf.rx.verified || !m->xf.rx.state_ok))
		die("migration (verify: %s): the receiver did not verify END "
		    "(digest_verified %d, state_verified %d)",
		    verify_name[m->v], m->xf.rx.verified, m->xf.rx.state_ok);
	if ((m->v == V_STATE) != !!m->st.audited || m->st.audit_differ)
		die("migration (verify: %s): audited %d, %llu pages differ",
		    verify_name[m->v], m->st.audited,
		    (unsigned long long)m->st.audit_differ);
	digest_of(m->mem, m->len, want);
	if (memcmp(want, m->xf.rx.digest, PMTRACK_DIGEST_LEN))
		die("migration: the receiver's memory differs from the source");
	m->xf.t0 = m->t_first;
	m->xf.secs = (double)(m->xf.rx.t_done - m->t_first) / 1e9;
	m->xf.snd_cpu = (double)(m->cpu_end - m->cpu_first) / 1e9;
	m->xf.rcv_cpu = (double)m->xf.rx.cpu_ns / 1e9;
}

/* ---- 1. throughput --------------------------------------------------- */

struct trow {
	enum pmtrack_xport_kind kind;
	enum verify v;
	unsigned int enc_flags;
};

static const struct trow trows[] = {
	{ PMTRACK_XPORT_SYSCALL, V_NONE, 0 },
	{ PMTRACK_XPORT_URING, V_NONE, 0 },
	{ PMTRACK_XPORT_SYSCALL, V_STATE, 0 },
	{ PMTRACK_XPORT_URING, V_STATE, 0 },
	{ PMTRACK_XPORT_SYSCALL, V_FULL, 0 },
	{ PMTRACK_XPORT_URING, V_FULL, 0 },
	{ PMTRACK_XPORT_SYSCALL, V_STATE, PMTRACK_ENC_STABLE },
	{ PMTRACK_XPORT_URING, V_STATE, PMTRACK_ENC_STABLE },
};

static void throughput_content(const struct cfg *c, const char *content,
			       char *mem)
{
	double *raw_s = calloc((size_t)c->reps, sizeof(double) * 7);
	double *str_s = raw_s + c->reps, *rs_cpu = raw_s + 2 * c->reps;
	double *rr_cpu = raw_s + 3 * c->reps, *ss_cpu = raw_s + 4 * c->reps;
	double *sr_cpu = raw_s + 5 * c->reps, *aud = raw_s + 6 * c->reps;
	uint8_t want[PMTRACK_DIGEST_LEN];
	struct mig *m = calloc(1, sizeof(*m));

	if (!raw_s || !m)
		fail("calloc", ENOMEM);
	digest_of(mem, c->len, want);
	for (size_t i = 0; i < sizeof(trows) / sizeof(trows[0]); i++) {
		const struct trow *t = &trows[i];
		double raw, str;

		if (!(c->verify & 1u << t->v))
			continue;
		if (t->kind == PMTRACK_XPORT_URING && !c->uring) {
			printf("| %s | io_uring | %s | n/a | n/a | n/a | n/a "
			       "| n/a | n/a | n/a | n/a | n/a |\n",
			       content, verify_name[t->v]);
			continue;
		}
		for (int rep = 0; rep < c->reps; rep++) {
			for (int k = 0; k < 2; k++) {
				struct xfer xf;

				if ((k == 0) == (rep % 2 == 0)) {
					run_raw(mem, c->len, want, &xf);
					raw_s[rep] = xf.secs;
					rs_cpu[rep] = xf.snd_cpu;
					rr_cpu[rep] = xf.rcv_cpu;
					continue;
				}
				memset(m, 0, sizeof(*m));
				m->mem = mem;
				m->len = c->len;
				m->kind = t->kind;
				m->v = t->v;
				m->enc_flags = t->enc_flags;
				run_mig(c, m);
				if (m->st.rounds != 2 || m->st.final_pages)
					die("throughput: %llu rounds, %llu "
					    "final pages (expected 2, 0)",
					    (unsigned long long)m->st.rounds,
					    (unsigned long long)
						    m->st.final_pages);
				str_s[rep] = m->xf.secs;
				ss_cpu[rep] = m->xf.snd_cpu;
				sr_cpu[rep] = m->xf.rcv_cpu;
				aud[rep] = (double)m->st.audit_ns / 1e9;
			}
		}
		raw = med(raw_s, c->reps);
		str = med(str_s, c->reps);
		printf("| %s | %s | %s | %s | %.2f | %.2f | **%.3f** | %.4f "
		       "| %.2f / %.2f | %.2f / %.2f | ",
		       content, kind_name(m->used), verify_name[t->v],
		       t->enc_flags & PMTRACK_ENC_STABLE ? "stable" : "copying",
		       gbps(c->len, raw), gbps(c->len, str), raw / str,
		       (double)m->st.bytes / (double)c->len,
		       med(rs_cpu, c->reps), med(ss_cpu, c->reps),
		       med(rr_cpu, c->reps), med(sr_cpu, c->reps));
		if (t->v == V_STATE)
			printf("%.1f |\n", med(aud, c->reps) * 1e3);
		else
			printf("- |\n");
		fflush(stdout);
	}
	free(raw_s);
	free(m);
}

static void section_throughput(const struct cfg *c)
{
	char *mem = map_big(c->len, 0);
	struct wl_opts wo = { .bytes = c->len, .writers = 0, .seed = 42 };
	struct wl *w;
	int err;

	printf("\n## throughput: one pre-copy round of %zu MiB, level 0, no "
	       "writers, vs send()/recv()\n\n",
	       c->len >> 20);
	printf("| content | transport | verify | encoder | raw GB/s "
	       "| stream GB/s | raw ÷ stream time | wire/region "
	       "| sender CPU s raw / stream | receiver CPU s raw / stream "
	       "| audit ms (after) |\n");
	printf("|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|\n");
	fflush(stdout);
	fill_random(mem, c->len, 0x9e3779b97f4a7c15ull);
	throughput_content(c, "random", mem);
	munmap(mem, c->len);

	err = wl_start(&wo, &w);
	if (err)
		fail("wl_start", -err);
	no_fork(wl_mem(w), wl_len(w));
	throughput_content(c, "workload", wl_mem(w));
	wl_free(w);
	printf("\nTime: the sender's first byte to the receiver having "
	       "applied and verified\neverything and answered "
	       "(pmtrack_rx_apply() returned; raw: the last recv()).\nGB/s = "
	       "region bytes / median time.  verify: \"none\" "
	       "is\nPMTRACK_PRECOPY_NO_DIGEST; \"state+audit\" the default "
	       "(each page hashed as it\nis sent and as it is applied, END's "
	       "state digest checked by the receiver, then\nthe sender's "
	       "audit reads the stopped memory once, after the receiver's "
	       "answer:\nnot in the time); \"full digest\" is "
	       "PMTRACK_PRECOPY_FULL_DIGEST | NO_AUDIT (the\nstate digest and "
	       "the XXH3-128 of all memory, read by the sender after "
	       "stopping\nand by the receiver at END: the verification before "
	       "0.2).  encoder: \"copying\"\nis the live-memory default (each "
	       "page copied before it is hashed and sent),\n\"stable\" is "
	       "PMTRACK_ENC_STABLE.  Both ends use the same transport kind.  "
	       "Raw:\nsend() in 1 MiB chunks, recv() straight into the "
	       "receiver's buffer.  CPU:\nprocess CPU time over the transfer "
	       "(medians).  audit: stats.audit_ns (medians).\n");
}

/* ---- 2. migrate ------------------------------------------------------ */

static void write_csv(const struct cfg *c, uint64_t rate, const struct mig *m)
{
	char path[4096];
	FILE *f;

	path_fmt(path, sizeof(path), "%s/rounds-%llu.csv", c->csv_dir,
		 (unsigned long long)rate);
	f = fopen(path, "w");
	if (!f)
		fail(path, errno);
	fprintf(f, "round,pages,dirty_pages,bytes,duration_ms,"
		   "expected_downtime_ms\n");
	for (int i = 0; i < m->nrounds; i++) {
		const struct pmtrack_precopy_round *r = &m->rounds[i];

		fprintf(f, "%llu,%llu,%llu,%llu,%.3f,%.3f\n",
			(unsigned long long)r->round,
			(unsigned long long)r->pages,
			(unsigned long long)r->dirty_pages,
			(unsigned long long)r->bytes,
			(double)r->duration_ns / 1e6,
			(double)r->expected_downtime_ns / 1e6);
	}
	if (fclose(f))
		fail(path, errno);
}

/* the numbers of one migration */
struct mrep {
	double rounds, total, audit, bytes, bw0, bw_raw, ratio0, ratio0_all,
		ratio_raw, dt, final, dtpp, writes, dg0, dg, splits;
	int converged;
};

/*
 * One migration of @len bytes of fresh workload RAM at @rate (rep @i),
 * verified as @v: its numbers into *@r, its rounds and stats in *@m.
 * With @baseline, send() of the same live memory to a receiver and one
 * untracked digest of it are timed first.
 */
static void migrate_once(const struct cfg *c, size_t len, uint64_t rate, int i,
			 enum verify v, bool baseline, struct mig *m,
			 struct mrep *r)
{
	/* fresh RAM each time: every run starts from the same state
	   (huge pages not yet split by tracking); the same contents and
	   write pattern for every verification mode */
	struct wl_opts wo = {
		.bytes = len,
		.writers = rate ? 2 : 0,
		.rate = rate,
		.seed = 42 + rate + (uint64_t)i,
		.hot = 80,
	};
	const struct pmtrack_precopy_round *r0;
	uint8_t d[PMTRACK_DIGEST_LEN];
	uint64_t t0, s0;
	struct xfer raw;
	struct wl *w;
	double sw;
	int err;

	memset(r, 0, sizeof(*r));
	err = wl_start(&wo, &w);
	if (err)
		fail("wl_start", -err);
	no_fork(wl_mem(w), wl_len(w));
	if (baseline) {
		/* the raw bandwidth, the writers running as they will */
		run_raw(wl_mem(w), len, NULL, &raw);
		r->bw_raw = (double)len / raw.secs;
		/* one digest of the memory, untracked, for comparison with
		   the one pmtrack_precopy() times after round 0 (full
		   digest) and with the audit */
		t0 = bench_now_ns();
		BENCH_LIVE_READ_BEGIN();
		digest_of(wl_mem(w), len, d);
		BENCH_LIVE_READ_END();
		r->dg0 = (double)(bench_now_ns() - t0) / 1e9;
	}
	s0 = vmstat("thp_split_pmd");
	memset(m, 0, sizeof(*m));
	m->mem = wl_mem(w);
	m->len = len;
	m->w = w;
	m->kind = PMTRACK_XPORT_AUTO;
	m->v = v;
	run_mig(c, m);
	if (m->nrounds < 2 || (uint64_t)m->nrounds != m->st.rounds)
		die("migrate: %d progress calls for %llu rounds", m->nrounds,
		    (unsigned long long)m->st.rounds);
	r0 = &m->rounds[0];
	r->rounds = (double)m->st.rounds;
	r->total = (double)m->st.total_ns / 1e9;
	r->audit = (double)m->st.audit_ns / 1e9;
	r->bytes = (double)m->st.bytes;
	r->bw0 = (double)r0->bytes * 1e9 / (double)r0->duration_ns;
	/* the migration up to the switchover: the audit is after it */
	sw = r->total - r->audit;
	r->ratio0 = sw / (r->bytes / r->bw0);
	r->ratio0_all = r->total / (r->bytes / r->bw0);
	if (baseline)
		r->ratio_raw = sw / (r->bytes / r->bw_raw);
	r->dt = (double)m->st.downtime_ns / 1e9;
	r->final = (double)m->st.final_pages;
	r->dtpp = m->st.final_pages ? r->dt / r->final : 0;
	r->writes = (double)(m->w_stop - m->w_call) * 1e9 /
		    (double)(m->t_stop - m->t_call);
	r->converged = m->st.converged;
	r->dg = (double)m->st.digest_ns / 1e9;
	r->splits = (double)(vmstat("thp_split_pmd") - s0);
	m->w = NULL;
	m->mem = NULL;
	wl_free(w);
}

/* the medians of the reps in @rep into *@m (@v: room for c->reps) */
static void migrate_medians(const struct cfg *c, const struct mrep *rep,
			    double *v, struct mrep *m)
{
#define MED(field)                                                             \
	({                                                                     \
		for (int _i = 0; _i < c->reps; _i++)                           \
			v[_i] = rep[_i].field;                                 \
		med(v, c->reps);                                               \
	})
	memset(m, 0, sizeof(*m));
	for (int k = 0; k < c->reps; k++)
		m->converged += rep[k].converged;
	m->writes = MED(writes);
	m->rounds = MED(rounds);
	m->total = MED(total);
	m->audit = MED(audit);
	m->bytes = MED(bytes);
	m->bw0 = MED(bw0);
	m->bw_raw = MED(bw_raw);
	m->ratio0 = MED(ratio0);
	m->ratio0_all = MED(ratio0_all);
	m->ratio_raw = MED(ratio_raw);
	m->dt = MED(dt);
	m->final = MED(final);
	m->dtpp = MED(dtpp);
	m->dg0 = MED(dg0);
	m->dg = MED(dg);
	m->splits = MED(splits);
#undef MED
}

/* the mode the main tables show: the default, unless --verify left it out */
static enum verify primary_verify(const struct cfg *c)
{
	if (c->verify & 1u << V_STATE)
		return V_STATE;
	for (int v = 0; v < V_NR; v++)
		if (c->verify & 1u << v)
			return (enum verify)v;
	return V_STATE;
}

/*
 * Every selected mode of one setting, @c->reps times, the modes' order
 * turning with the rep; medians into res[mode].  @keep: the primary
 * mode's runs (c->reps of them), or NULL.
 */
static void migrate_modes(const struct cfg *c, size_t len, uint64_t rate,
			  bool baseline, struct mrep *res, struct mig *keep,
			  const char **kind, const char **backend)
{
	struct mrep *rep = calloc((size_t)c->reps * V_NR, sizeof(*rep));
	double *v = calloc((size_t)c->reps, sizeof(double));
	struct mig *tmp = calloc(1, sizeof(*tmp));
	enum verify pv = primary_verify(c);

	if (!rep || !v || !tmp)
		fail("calloc", ENOMEM);
	for (int k = 0; k < c->reps; k++) {
		for (int j = 0; j < V_NR; j++) {
			enum verify mv = (enum verify)((j + k) % V_NR);
			struct mig *m = keep && mv == pv ? &keep[k] : tmp;

			if (!(c->verify & 1u << mv))
				continue;
			migrate_once(c, len, rate, k, mv, baseline, m,
				     &rep[mv * c->reps + k]);
			*kind = kind_name(m->used);
			*backend = pmtrack_backend_name(m->st.backend);
		}
	}
	for (int mv = 0; mv < V_NR; mv++)
		if (c->verify & 1u << mv)
			migrate_medians(c, &rep[mv * c->reps], v, &res[mv]);
	free(rep);
	free(v);
	free(tmp);
}

/* @keep[0..c->reps): the run whose total time is the median */
static const struct mig *median_run(const struct cfg *c, const struct mig *keep)
{
	double *tot = calloc((size_t)c->reps, sizeof(double)), mt;
	int best = 0;

	if (!tot)
		fail("calloc", ENOMEM);
	for (int i = 0; i < c->reps; i++)
		tot[i] = (double)keep[i].st.total_ns;
	mt = med(tot, c->reps);
	for (int i = 1; i < c->reps; i++)
		if ((tot[i] - mt) * (tot[i] - mt) <
		    (tot[best] - mt) * (tot[best] - mt))
			best = i;
	free(tot);
	return &keep[best];
}

/* "a / b / c" of one double field over the modes, n/a where not run */
static void print_modes(const struct cfg *c, const struct mrep *res, size_t off,
			double scale, const char *fmt)
{
	printf(" ");
	for (int mv = 0; mv < V_NR; mv++) {
		if (mv)
			printf(" / ");
		if (c->verify & 1u << mv)
			printf(fmt,
			       *(const double *)((const char *)&res[mv] + off) *
				       scale);
		else
			printf("n/a");
	}
	printf(" |");
}

#define MODES(c, res, field, scale, fmt)                                       \
	print_modes(c, res, offsetof(struct mrep, field), scale, fmt)

static void migrate_head(const struct cfg *c, enum verify pv)
{
	printf("\n## migrate: pmtrack_precopy() of %zu MiB of workload RAM "
	       "(2 writers, 80%% hot), downtime limit %llu ms, verify: %s\n\n",
	       c->len >> 20, (unsigned long long)(c->limit_ns / 1000000),
	       verify_name[pv]);
	printf("| dirty rate pages/s (achieved) | rounds | total s "
	       "| bytes ÷ region | round-0 GB/s "
	       "| (total − audit) ÷ (bytes ÷ round-0 bw) | final pages "
	       "| downtime ms | downtime ÷ limit | audit ms (after) "
	       "| converged |\n");
	printf("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	fflush(stdout);
}

static void migrate_row(const struct cfg *c, uint64_t rate,
			const struct mrep *m)
{
	printf("| %llu (%.0f) | %.0f | %.3f | %.3f | %.2f | **%.3f** "
	       "| %.0f | %.1f | **%.3f** | %.0f | %d of %d |\n",
	       (unsigned long long)rate, m->writes, m->rounds, m->total,
	       m->bytes / (double)c->len, m->bw0 / 1e9, m->ratio0, m->final,
	       m->dt * 1e3, m->dt * 1e9 / (double)c->limit_ns, m->audit * 1e3,
	       m->converged, c->reps);
	fflush(stdout);
}

/* the other tables and the notes; @mr[rate * V_NR + mode]: medians */
static void migrate_tail(const struct cfg *c, const struct mrep *mr,
			 enum verify pv, const char *kind, const char *backend)
{
	const double lim = 1e9 / (double)c->limit_ns;

	printf("\nSide by side, verify: none / state+audit / full digest:\n\n"
	       "| dirty rate pages/s | (total − audit) ÷ (bytes ÷ round-0 "
	       "bw) | downtime ms | downtime ÷ limit | final pages "
	       "| converged (of %d) |\n",
	       c->reps);
	printf("|--:|--:|--:|--:|--:|--:|\n");
	for (int i = 0; i < c->nrates; i++) {
		const struct mrep *m = &mr[i * V_NR];
		struct mrep conv[V_NR];

		memset(conv, 0, sizeof(conv));
		for (int mv = 0; mv < V_NR; mv++)
			conv[mv].rounds = m[mv].converged;
		printf("| %llu |", (unsigned long long)c->rates[i]);
		MODES(c, m, ratio0, 1, "%.3f");
		MODES(c, m, dt, 1e3, "%.1f");
		MODES(c, m, dt, lim, "%.3f");
		MODES(c, m, final, 1, "%.0f");
		MODES(c, conv, rounds, 1, "%.0f");
		printf("\n");
	}
	printf("\nverify: %s:\n\n| dirty rate pages/s | raw GB/s "
	       "| (total − audit) ÷ (bytes ÷ raw bw) | total ÷ (bytes ÷ "
	       "round-0 bw), audit included | digest ms, untracked "
	       "| audit ms | digest ms timed by pre-copy (full digest) "
	       "| THP PMD splits |\n",
	       verify_name[pv]);
	printf("|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int i = 0; i < c->nrates; i++) {
		const struct mrep *m = &mr[i * V_NR + pv];

		printf("| %llu | %.2f | %.3f | %.3f | %.0f | %.0f | ",
		       (unsigned long long)c->rates[i], m->bw_raw / 1e9,
		       m->ratio_raw, m->ratio0_all, m->dg0 * 1e3,
		       m->audit * 1e3);
		if (c->verify & 1u << V_FULL)
			printf("%.0f", mr[i * V_NR + V_FULL].dg * 1e3);
		else
			printf("n/a");
		printf(" | %.0f |\n", m->splits);
	}
	printf("\nMedians of %d; fresh workload RAM for each run, the same "
	       "contents and writes\nfor each mode, whose order turns with "
	       "the rep.  Transport: %s\n(PMTRACK_XPORT_AUTO on a socket); "
	       "tracker: %s; level 0; the return\npath (opts.reply): the "
	       "receiver's answer ends the downtime.  Rate 0 has no\nwriter "
	       "threads, the others 2 writers (64-byte records, 80%% of them "
	       "into the\nhot 1/16 of the RAM); achieved = page writes "
	       "(repeats included) per second\nfrom the pmtrack_precopy() "
	       "call to stop().  verify: \"none\" "
	       "is\nPMTRACK_PRECOPY_NO_DIGEST, \"state+audit\" the default "
	       "(END's state digest,\nchecked by the receiver in the downtime "
	       "at the cost of the pages it applied;\nthen the audit reads "
	       "the stopped source once, after the answer), \"full "
	       "digest\"\nFULL_DIGEST | NO_AUDIT (the digest of all memory on "
	       "both sides inside the\ndowntime, as before 0.2).  total: "
	       "pmtrack_precopy()'s total_ns (tracker setup\nand the audit "
	       "included); total − audit: to the switchover.  round-0 bw: "
	       "round\n0's stream bytes / its duration on the sender.  "
	       "downtime: stats.downtime_ns,\nstop() to the receiver's answer "
	       "(it applied and verified everything).  final\npages: the "
	       "stop-and-copy round's.  audit: stats.audit_ns.  raw bw: "
	       "send() of\nthe same live memory to a receiver process just "
	       "before each migration.\ndigest: one pmtrack_digest() of the "
	       "memory just before the migration\n(untracked, writers "
	       "running), and the one pre-copy times after round 0 for "
	       "its\nestimate (stats.digest_ns).  THP PMD splits: "
	       "/proc/vmstat thp_split_pmd over\nthe migration "
	       "(system-wide).\n",
	       c->reps, kind, backend);
	if (c->csv_dir)
		printf("Rounds of the median %s run per rate: "
		       "%s/rounds-<rate>.csv\n",
		       verify_name[pv], c->csv_dir);
}

static void section_migrate(const struct cfg *c)
{
	struct mrep *mr = calloc((size_t)c->nrates * V_NR, sizeof(*mr));
	struct mig *keep = calloc((size_t)c->reps, sizeof(*keep));
	const char *backend = "?", *kind = "?";
	enum verify pv = primary_verify(c);

	if (!mr || !keep)
		fail("calloc", ENOMEM);
	if (c->csv_dir && mkdir(c->csv_dir, 0755) && errno != EEXIST)
		fail(c->csv_dir, errno);
	migrate_head(c, pv);
	for (int i = 0; i < c->nrates; i++) {
		migrate_modes(c, c->len, c->rates[i], true, &mr[i * V_NR], keep,
			      &kind, &backend);
		migrate_row(c, c->rates[i], &mr[i * V_NR + pv]);
		if (c->csv_dir)
			write_csv(c, c->rates[i], median_run(c, keep));
	}
	migrate_tail(c, mr, pv, kind, backend);
	free(mr);
	free(keep);
}

/* ---- 3. downtime ----------------------------------------------------- */

/* @r[mode]: the medians of one size */
static void downtime_row(const struct cfg *c, size_t mib, enum verify mv,
			 const struct mrep *r)
{
	const struct mrep *m = &r[mv];

	printf("| %zu | %s | %.0f | %.0f | %.1f | ", mib, verify_name[mv],
	       m->rounds, m->final, m->dt * 1e3);
	if (mv != V_NONE && c->verify & 1u << V_NONE)
		printf("%.1f | ", (m->dt - r[V_NONE].dt) * 1e3);
	else
		printf("- | ");
	if (m->final > 0)
		printf("**%.2f**", m->dtpp * 1e6);
	else
		printf("-");
	printf(" | %.3f | ", m->dt * 1e9 / (double)c->limit_ns);
	if (mv == V_STATE)
		printf("%.0f", m->audit * 1e3);
	else
		printf("-");
	printf(" | ");
	if (mv == V_FULL)
		printf("%.0f", m->dg * 1e3);
	else
		printf("-");
	printf(" | %d of %d |\n", m->converged, c->reps);
	fflush(stdout);
}

/*
 * Pre-copy at one dirty rate over memory of several sizes: the downtime
 * follows the final round's pages, not the memory (with the state
 * digest); the audit, after it, follows the memory.
 */
static void section_downtime(const struct cfg *c)
{
	struct mrep *res = calloc((size_t)c->nsizes * V_NR, sizeof(*res));
	const char *backend = "?", *kind = "?";
	const struct mrep *a, *b;
	size_t m0, m1;

	if (!res)
		fail("calloc", ENOMEM);
	printf("\n## downtime: pmtrack_precopy() at %llu pages/s (2 writers, "
	       "80%% hot) by memory size, downtime limit %llu ms\n\n",
	       (unsigned long long)c->scale_rate,
	       (unsigned long long)(c->limit_ns / 1000000));
	printf("| MiB | verify | rounds | final pages | downtime ms "
	       "| − none's, ms | downtime ÷ final pages, µs "
	       "| downtime ÷ limit | audit ms (after) "
	       "| digest ms timed by pre-copy | converged |\n");
	printf("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	fflush(stdout);
	for (int s = 0; s < c->nsizes; s++) {
		struct mrep *r = &res[s * V_NR];

		migrate_modes(c, c->scale_mib[s] << 20, c->scale_rate, false, r,
			      NULL, &kind, &backend);
		for (int mv = 0; mv < V_NR; mv++)
			if (c->verify & 1u << mv)
				downtime_row(c, c->scale_mib[s],
					     (enum verify)mv, r);
	}
	/* the largest size against the smallest */
	m0 = m1 = 0;
	for (int s = 1; s < c->nsizes; s++) {
		if (c->scale_mib[s] < c->scale_mib[m0])
			m0 = (size_t)s;
		if (c->scale_mib[s] > c->scale_mib[m1])
			m1 = (size_t)s;
	}
	if (m0 != m1) {
		printf("\n%zu MiB against %zu MiB (memory ×%.1f):\n\n"
		       "| verify | final pages × | downtime × "
		       "| downtime ÷ final pages × | audit × "
		       "| digest × |\n|---|--:|--:|--:|--:|--:|\n",
		       c->scale_mib[m1], c->scale_mib[m0],
		       (double)c->scale_mib[m1] / (double)c->scale_mib[m0]);
		for (int mv = 0; mv < V_NR; mv++) {
			if (!(c->verify & 1u << mv))
				continue;
			a = &res[m0 * V_NR + mv];
			b = &res[m1 * V_NR + mv];
			printf("| %s | %.2f | **%.2f** | ", verify_name[mv],
			       a->final > 0 ? b->final / a->final : 0,
			       a->dt > 0 ? b->dt / a->dt : 0);
			if (a->dtpp > 0 && b->dtpp > 0)
				printf("%.2f", b->dtpp / a->dtpp);
			else
				printf("-");
			if (mv == V_STATE && a->audit > 0)
				printf(" | %.2f", b->audit / a->audit);
			else
				printf(" | -");
			if (mv == V_FULL && a->dg > 0)
				printf(" | %.2f |\n", b->dg / a->dg);
			else
				printf(" | - |\n");
		}
	}
	printf("\nMedians of %d; fresh workload RAM for each run (the same "
	       "for every mode),\ntransport %s, tracker %s, level 0, the "
	       "return path; verify\nas in \"migrate\".  downtime: "
	       "stats.downtime_ns (stop() to the receiver's\nanswer); − "
	       "none's: that less the downtime without verification (what "
	       "verifying\nadds to the pause); final pages: the stop-and-copy "
	       "round's pages (zero pages\nincluded; they grow with the "
	       "memory as the last pre-copy round, which sends\nthem, takes "
	       "longer); audit: stats.audit_ns, after the downtime; "
	       "digest:\nstats.digest_ns (full digest: one digest of all "
	       "memory, timed after round 0;\nthe downtime holds two such "
	       "reads, the sender's and the receiver's).\n",
	       c->reps, kind, backend);
	free(res);
}

/* ---- 4. ckpt --------------------------------------------------------- */

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		fail(dir, errno);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			if (unlinkat(dirfd(d), de->d_name, 0))
				fail(de->d_name, errno);
	closedir(d);
	if (rmdir(dir))
		fail(dir, errno);
}

/* write exactly 1% of the pages (distinct, scattered) */
static void dirty_percent(char *mem, size_t len, size_t ps, uint64_t *seed)
{
	size_t pages = len / ps, n = pages / 100, done = 0;
	uint64_t *picked = calloc((pages + 63) / 64, 8);

	if (!picked)
		fail("calloc", ENOMEM);
	while (done < n) {
		uint64_t r = xorshift64(seed);
		size_t p = (size_t)(r % pages);

		if (picked[p / 64] & 1ull << (p % 64))
			continue;
		picked[p / 64] |= 1ull << (p % 64);
		r |= 1;
		memcpy(mem + p * ps + (r >> 32) % (ps / 8) * 8, &r, 8);
		done++;
	}
	free(picked);
}

/*
 * write(2) of @bytes bytes from @mem (again from its start past @len) in
 * 1 MiB chunks into a new file in @dir, + fsync if @sync; seconds
 */
static double raw_file_write(const char *dir, const char *mem, size_t len,
			     size_t bytes, bool sync)
{
	char path[4096];
	uint64_t t0;
	double s;
	int fd;

	path_fmt(path, sizeof(path), "%s/raw.bin", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail(path, errno);
	t0 = bench_now_ns();
	for (size_t off = 0; off < bytes;) {
		size_t at = off % len, k = bytes - off;
		ssize_t n;

		if (k > CHUNK)
			k = CHUNK;
		if (k > len - at)
			k = len - at;
		n = write(fd, mem + at, k);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("write", n ? errno : EIO);
		off += (size_t)n;
	}
	if (sync && fsync(fd))
		fail("fsync", errno);
	s = (double)(bench_now_ns() - t0) / 1e9;
	close(fd);
	if (unlink(path))
		fail(path, errno);
	return s;
}

/* the images of a chain, in order */
enum {
	IMG_FULL,   /* stopped, every page */
	IMG_LIVE,   /* 1 %, live pre-dump */
	IMG_INCR,   /* 1 %, stopped: the target */
	IMG_AUDIT,  /* 1 %, stopped + AUDIT */
	IMG_DIGEST, /* 1 %, stopped + FULL_DIGEST */
	IMG_NR,
};

static const unsigned int img_flags[IMG_NR] = {
	[IMG_FULL] = PMTRACK_DUMP_STOPPED,
	[IMG_LIVE] = 0,
	[IMG_INCR] = PMTRACK_DUMP_STOPPED,
	[IMG_AUDIT] = PMTRACK_DUMP_STOPPED | PMTRACK_DUMP_AUDIT,
	[IMG_DIGEST] = PMTRACK_DUMP_STOPPED | PMTRACK_DUMP_FULL_DIGEST,
};

static const char *const img_name[IMG_NR] = {
	[IMG_FULL] = "full",
	[IMG_LIVE] = "live incremental",
	[IMG_INCR] = "stopped incremental",
	[IMG_AUDIT] = "stopped incremental + AUDIT",
	[IMG_DIGEST] = "stopped incremental + FULL_DIGEST",
};

struct crep {
	double img[IMG_NR], img_b[IMG_NR], raw, restore, dg0, dg1, splits;
};

static double time_digest(const void *p, size_t len)
{
	uint8_t d[PMTRACK_DIGEST_LEN];
	uint64_t t0 = bench_now_ns();

	digest_of(p, len, d);
	return (double)(bench_now_ns() - t0) / 1e9;
}

/*
 * The chain in @dir: image 0 of @mem stopped (full), then before each
 * further image 1% of the pages written (IMG_*).  Right after image 0,
 * write(2) of as many bytes as it has into the same directory: r->raw.
 */
static void ckpt_chain(const struct cfg *c, const char *dir, char *mem,
		       bool sync, uint64_t *seed,
		       struct pmtrack_dump_info info[IMG_NR], struct crep *r)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, o, .level = 0, .no_sync = !sync,
		     .producer = PROG);
	struct pmtrack_mem_region reg = {
		.addr = mem,
		.len = c->len,
		.id = REGION_ID,
		.name = "ram",
	};
	struct pmtrack_ckpt *ck;
	int err;

	err = pmtrack_ckpt_new(dir, &o, &reg, 1, &ck);
	if (err)
		fail("pmtrack_ckpt_new", -err);
	for (int i = 0; i < IMG_NR; i++) {
		if (i)
			dirty_percent(mem, c->len, c->ps, seed);
		err = pmtrack_ckpt_dump(ck, img_flags[i], &info[i]);
		if (err)
			die("pmtrack_ckpt_dump (%s): %s (audit: %llu pages "
			    "differ, the first at %#llx)",
			    img_name[i], strerror(-err),
			    (unsigned long long)info[i].audit_differ,
			    (unsigned long long)info[i].audit_first_addr);
		if (i == IMG_FULL)
			r->raw = raw_file_write(dir, mem, c->len,
						(size_t)info[i].bytes, sync);
	}
	pmtrack_ckpt_free(ck);
}

/* the incremental images hold exactly the 1% written; every one the
 * state digest, only FULL_DIGEST the memory's, only AUDIT audited */
static void ckpt_check_images(const struct cfg *c,
			      const struct pmtrack_dump_info i[IMG_NR])
{
	size_t one = c->len / c->ps / 100;

	for (int k = 0; k < IMG_NR; k++) {
		bool digest = img_flags[k] & PMTRACK_DUMP_FULL_DIGEST;
		bool audit = img_flags[k] & PMTRACK_DUMP_AUDIT;

		if ((k != IMG_FULL && i[k].pages != one) ||
		    (k == IMG_FULL && i[k].pages != c->len / c->ps) ||
		    i[k].index != (uint32_t)k || !i[k].has_state ||
		    !i[k].has_digest != !digest || !i[k].audited != !audit ||
		    i[k].audit_differ)
			die("ckpt: image %d (%s): %llu pages (1%% = %zu), "
			    "index %u, state digest %d, memory digest %d, "
			    "audited %d, %llu pages differ",
			    k, img_name[k], (unsigned long long)i[k].pages, one,
			    i[k].index, i[k].has_state, i[k].has_digest,
			    i[k].audited,
			    (unsigned long long)i[k].audit_differ);
	}
}

/* restore the chain in @dir into @buf: it must be @mem; seconds */
static double ckpt_restore(const struct cfg *c, const char *dir, char *buf,
			   const char *mem)
{
	PMTRACK_OPTS(pmtrack_restore_info, ri);
	PMTRACK_OPTS(pmtrack_rx_stats, st);
	struct pmtrack_rx *rx;
	uint64_t t0;
	double secs;
	int err;

	memset(buf, 0x5a, c->len);
	err = pmtrack_rx_new(NULL, &rx);
	if (!err)
		err = pmtrack_rx_set_dest(rx, REGION_ID, buf, c->len);
	if (err)
		fail("pmtrack_rx_new/set_dest", -err);
	t0 = bench_now_ns();
	err = pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri);
	secs = (double)(bench_now_ns() - t0) / 1e9;
	if (err)
		die("ckpt: restore: %s: %s", strerror(-err),
		    pmtrack_rx_error(rx, NULL));
	if (pmtrack_rx_get_stats(rx, &st) || st.state != PMTRACK_RX_COMPLETE ||
	    !st.digest_verified || !st.state_verified || ri.images != IMG_NR ||
	    !ri.digest_verified)
		die("ckpt: restore: state %d, digest verified %d (restore "
		    "%d), state verified %d, %u images",
		    st.state, st.digest_verified, ri.digest_verified,
		    st.state_verified, ri.images);
	pmtrack_rx_free(rx);
	if (memcmp(buf, mem, c->len))
		die("ckpt: the restored memory differs from the source");
	return secs;
}

/* one chain of fresh workload RAM, restored and checked */
static void ckpt_once(const struct cfg *c, char *buf, bool sync, int rep,
		      struct crep *r)
{
	struct pmtrack_dump_info info[IMG_NR];
	struct wl_opts wo = {
		.bytes = c->len,
		.writers = 0,
		.seed = 7 + (uint64_t)rep,
	};
	uint64_t seed = 0x2545f4914f6cdd1dull + (uint64_t)rep, s0;
	char dir[4096], *mem;
	struct wl *w;
	int err;

	memset(info, 0, sizeof(info));
	for (int i = 0; i < IMG_NR; i++)
		info[i].sz = sizeof(info[i]);
	err = wl_start(&wo, &w);
	if (err)
		fail("wl_start", -err);
	mem = wl_mem(w);
	no_fork(mem, c->len);
	path_fmt(dir, sizeof(dir), "%s/" PROG ".XXXXXX", c->dir);
	if (!mkdtemp(dir))
		fail(dir, errno);
	r->dg0 = time_digest(mem, c->len);
	s0 = vmstat("thp_split_pmd");
	ckpt_chain(c, dir, mem, sync, &seed, info, r);
	r->splits = (double)(vmstat("thp_split_pmd") - s0);
	r->dg1 = time_digest(mem, c->len);
	ckpt_check_images(c, info);
	r->restore = ckpt_restore(c, dir, buf, mem);
	rm_dir(dir);
	wl_free(w);
	for (int i = 0; i < IMG_NR; i++) {
		r->img[i] = (double)info[i].duration_ns / 1e9;
		r->img_b[i] = (double)info[i].bytes;
	}
}

static void section_ckpt(const struct cfg *c)
{
	struct crep *r = calloc((size_t)c->reps * 2, sizeof(*r));
	double *v = calloc((size_t)c->reps, sizeof(double));
	char *buf;

	if (!r || !v)
		fail("calloc", ENOMEM);
	buf = map_big(c->len, 0x5a);
	printf("\n## ckpt: %zu MiB of workload RAM, full stopped dump, then "
	       "1%% of pages written before each incremental dump\n\n",
	       c->len >> 20);
	printf("| fsync | full s | full MB | stopped incremental s | MB "
	       "| **time ÷ full** | bytes ÷ full | live incremental s "
	       "| time ÷ full | + AUDIT s | time ÷ full | + FULL_DIGEST s "
	       "| time ÷ full |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	fflush(stdout);
#define MED(s, field)                                                          \
	({                                                                     \
		for (int _i = 0; _i < c->reps; _i++)                           \
			v[_i] = r[(s)*c->reps + _i].field;                     \
		med(v, c->reps);                                               \
	})
	for (int s = 1; s >= 0; s--) {
		double full;

		for (int i = 0; i < c->reps; i++)
			ckpt_once(c, buf, s, i, &r[s * c->reps + i]);
		full = MED(s, img[IMG_FULL]);
		printf("| %s | %.3f | %.1f | %.4f | %.2f | **%.4f** | %.4f "
		       "| %.4f | %.4f | %.3f | %.3f | %.3f | %.3f |\n",
		       s ? "on" : "off", full, MED(s, img_b[IMG_FULL]) / 1e6,
		       MED(s, img[IMG_INCR]), MED(s, img_b[IMG_INCR]) / 1e6,
		       MED(s, img[IMG_INCR]) / full,
		       MED(s, img_b[IMG_INCR]) / MED(s, img_b[IMG_FULL]),
		       MED(s, img[IMG_LIVE]), MED(s, img[IMG_LIVE]) / full,
		       MED(s, img[IMG_AUDIT]), MED(s, img[IMG_AUDIT]) / full,
		       MED(s, img[IMG_DIGEST]), MED(s, img[IMG_DIGEST]) / full);
		fflush(stdout);
	}
	printf("\n| fsync | raw write s (image 0's bytes) | **full ÷ raw** "
	       "| restore s (%d images, verified) | digest ms, before / "
	       "after the writes | THP PMD splits |\n",
	       IMG_NR);
	printf("|---|--:|--:|--:|--:|--:|\n");
	for (int s = 1; s >= 0; s--)
		printf("| %s | %.3f | %s%.3f%s | %.3f | %.0f / %.0f | %.0f |\n",
		       s ? "on" : "off", MED(s, raw), s ? "" : "**",
		       MED(s, img[IMG_FULL]) / MED(s, raw), s ? "" : "**",
		       MED(s, restore), MED(s, dg0) * 1e3, MED(s, dg1) * 1e3,
		       MED(s, splits));
#undef MED
	printf("\nMedians of %d, in %s.  Each run: fresh workload RAM (no "
	       "writers), a fresh\nchain: image 0 stopped (every page, zero "
	       "pages as bits), then before each\nfurther image 1%% of the "
	       "pages (scattered) written: image 1 live, image 2\nstopped, "
	       "image 3 stopped with PMTRACK_DUMP_AUDIT (all memory read "
	       "and\nchecked), image 4 stopped with PMTRACK_DUMP_FULL_DIGEST "
	       "(the digest of all\nmemory in the image).  Every image "
	       "carries the chain's state digest.\nDurations are "
	       "pmtrack_dump_info's (collect, encode, write, fsync of "
	       "file\nand directory when on, link).  Level 0, default "
	       "transport.  raw: write(2) of\nas many bytes as image 0 has, "
	       "from the memory, in 1 MiB chunks, to a new file\nin the same "
	       "directory right after image 0, + fsync when on (the "
	       "dumps'\nno_sync is 0 when on, 1 when off).  digest: "
	       "pmtrack_digest() of the memory\nbefore image 0 and after "
	       "image 4 (untimed by the dumps).  THP PMD "
	       "splits:\n/proc/vmstat over the chain.  The restore of the "
	       "whole chain verified every\nimage's state digest and image "
	       "4's memory digest, and the restored memory\nequals the source "
	       "byte for byte.\n",
	       c->reps, c->dir);
	munmap(buf, c->len);
	free(r);
	free(v);
}

/* ---- 5. transport ---------------------------------------------------- */

static const char *fs_name(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf))
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0xEF53:
		return "ext4 (ext2/3/4)";
	case 0x01021994:
		return "tmpfs";
	case 0x58465342:
		return "xfs";
	case 0x9123683E:
		return "btrfs";
	case 0x794c7630:
		return "overlayfs";
	default:
		return "other";
	}
}

enum xp_test {
	XT_WRITE,
	XT_WRITE_SYNC,
	XT_READ_WARM,
	XT_READ_COLD,
	XT_SOCKET,
	XT_NR,
};

static const char *const xp_test_name[XT_NR] = {
	[XT_WRITE] = "file write (page cache)",
	[XT_WRITE_SYNC] = "file write + fsync",
	[XT_READ_WARM] = "file read (page cache)",
	[XT_READ_COLD] = "file read (cold: after fsync + FADV_DONTNEED)",
	[XT_SOCKET] = "TCP loopback, process to process",
};

/* the file tests with one kind; fills secs[XT_WRITE..XT_READ_COLD] */
static void xp_file(int fd, enum pmtrack_xport_kind kind, const char *src,
		    char *dst, size_t len, double *secs)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kind);
	struct pmtrack_xport *x;
	uint64_t t0, t1;
	ssize_t n;
	int err;

	if (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET))
		fail("ftruncate", errno);
	err = pmtrack_xport_new(fd, &xo, &x);
	if (err)
		fail("pmtrack_xport_new", -err);
	t0 = bench_now_ns();
	err = xport_write_all(x, src, len, XP_CHUNK);
	t1 = bench_now_ns();
	if (err)
		fail("file write", -err);
	if (fsync(fd))
		fail("fsync", errno);
	secs[XT_WRITE] = (double)(t1 - t0) / 1e9;
	secs[XT_WRITE_SYNC] = (double)(bench_now_ns() - t0) / 1e9;
	pmtrack_xport_free(x);

	for (int cold = 0; cold < 2; cold++) {
		if (cold && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
			fail("posix_fadvise", errno);
		memset(dst, 0x5a, len);
		if (lseek(fd, 0, SEEK_SET))
			fail("lseek", errno);
		err = pmtrack_xport_new(fd, &xo, &x);
		if (err)
			fail("pmtrack_xport_new", -err);
		t0 = bench_now_ns();
		n = xport_read_all(x, dst, len);
		t1 = bench_now_ns();
		pmtrack_xport_free(x);
		if (n < 0)
			fail("file read", (int)-n);
		if ((size_t)n != len || memcmp(dst, src, len))
			die("transport: %s read back %zd bytes, not the ones "
			    "written",
			    kind_name(kind), n);
		secs[cold ? XT_READ_COLD : XT_READ_WARM] =
			(double)(t1 - t0) / 1e9;
	}
}

static double xp_socket(enum pmtrack_xport_kind kind, const char *src,
			size_t len, const uint8_t *want)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kind);
	struct rx_req q = { .mode = RX_XPORT, .kind = kind, .len = len };
	struct pmtrack_xport *x;
	struct rx_res rr;
	struct peer p;
	uint64_t t0;
	int fd, err;

	peer_start(&p, &q);
	fd = peer_connect(&p);
	err = pmtrack_xport_new(fd, &xo, &x);
	if (err)
		fail("pmtrack_xport_new", -err);
	t0 = bench_now_ns();
	err = xport_write_all(x, src, len, XP_CHUNK);
	pmtrack_xport_free(x);
	shutdown(fd, SHUT_WR);
	peer_finish(&p, &rr);
	close(fd);
	if (err || rr.err)
		die("transport: %s socket: send: %s, receive: %s",
		    kind_name(kind), strerror(-err), strerror(-rr.err));
	if (memcmp(want, rr.digest, PMTRACK_DIGEST_LEN))
		die("transport: %s socket: the receiver's bytes differ",
		    kind_name(kind));
	return (double)(rr.t_done - t0) / 1e9;
}

static void section_transport(const struct cfg *c)
{
	static const enum pmtrack_xport_kind kinds[2] = { PMTRACK_XPORT_SYSCALL,
							  PMTRACK_XPORT_URING };
	double *secs = calloc((size_t)c->reps * 2 * XT_NR, sizeof(double));
	char *src = map_big(c->len, 0), *dst = map_big(c->len, 0x5a);
	uint8_t want[PMTRACK_DIGEST_LEN];
	char path[4096];
	int fd, nk = c->uring ? 2 : 1;

	if (!secs)
		fail("calloc", ENOMEM);
	fill_random(src, c->len, 0x243f6a8885a308d3ull);
	digest_of(src, c->len, want);
	path_fmt(path, sizeof(path), "%s/" PROG ".XXXXXX", c->dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		fail(path, errno);
	printf("\n## transport: pmtrack_xport moving %zu MiB, io_uring vs "
	       "system calls (%s is %s)\n\n",
	       c->len >> 20, c->dir, fs_name(c->dir));
	printf("| test | syscall GB/s | io_uring GB/s "
	       "| **io_uring ÷ syscall** | AUTO picks |\n");
	printf("|---|--:|--:|--:|---|\n");
	fflush(stdout);
	/* secs[(rep * 2 + kind) * XT_NR + test] */
	for (int rep = 0; rep < c->reps; rep++) {
		for (int j = 0; j < nk; j++) {
			int k = (j + rep) % nk;
			double *s = &secs[(rep * 2 + k) * XT_NR];

			xp_file(fd, kinds[k], src, dst, c->len, s);
			s[XT_SOCKET] = xp_socket(kinds[k], src, c->len, want);
		}
	}
	for (int t = 0; t < XT_NR; t++) {
		double *v = malloc((size_t)c->reps * sizeof(double));
		double g[2] = { 0, 0 };

		if (!v)
			fail("malloc", ENOMEM);
		for (int k = 0; k < nk; k++) {
			for (int rep = 0; rep < c->reps; rep++)
				v[rep] = secs[(rep * 2 + k) * XT_NR + t];
			g[k] = gbps(c->len, med(v, c->reps));
		}
		free(v);
		if (nk == 2)
			printf("| %s | %.2f | %.2f | **%.3f** | %s |\n",
			       xp_test_name[t], g[0], g[1], g[1] / g[0],
			       t == XT_SOCKET ? "syscall" : "io_uring");
		else
			printf("| %s | %.2f | n/a | n/a | syscall |\n",
			       xp_test_name[t], g[0]);
	}
	printf("\nMedians of %d; the two kinds alternate.  Writes: "
	       "pmtrack_xport_write() of\n%u-byte pieces (a 256-page batch "
	       "and its record header), then\npmtrack_xport_flush(); "
	       "default options (4 buffers of 1 MiB for io_uring).  Reads:\n"
	       "pmtrack_xport_read() until the end, each chunk copied into "
	       "a pre-faulted\ndestination.  Socket: the receiver process "
	       "reads through the same kind; time\nfrom the first write to "
	       "the receiver having everything.  Random bytes; every\n"
	       "transfer is checked.\n",
	       c->reps, XP_CHUNK);
	close(fd);
	unlink(path);
	munmap(src, c->len);
	munmap(dst, c->len);
	free(secs);
}

/* ---- main ------------------------------------------------------------ */

/* one item of --only: a section's name, or all, into the mask @arg */
static int section_item(void *arg, int i, const char *text)
{
	unsigned int *m = arg;

	(void)i;
	if (!strcmp(text, "all")) {
		*m |= SEC_ALL;
		return 0;
	}
	for (size_t k = 0; k < sizeof(section_name) / sizeof(*section_name);
	     k++) {
		if (!strcmp(text, section_name[k])) {
			*m |= 1u << k;
			return 0;
		}
	}
	return -1;
}

static unsigned int parse_only(const char *s)
{
	unsigned int m = 0;

	pmt_arg_list(PROG, "--only", s, INT32_MAX, section_item, &m,
		     "comma-separated sections: throughput, migrate, "
		     "downtime, ckpt, transport or all");
	return m;
}

/* one item of --verify: a mode's name, or all, into the mask @arg */
static int verify_item(void *arg, int i, const char *text)
{
	unsigned int *m = arg;

	(void)i;
	if (!strcmp(text, "all")) {
		*m |= (1u << V_NR) - 1;
		return 0;
	}
	for (int v = 0; v < V_NR; v++) {
		if (!strcmp(text, verify_arg[v])) {
			*m |= 1u << v;
			return 0;
		}
	}
	return -1;
}

static unsigned int parse_verify(const char *s)
{
	unsigned int m = 0;

	pmt_arg_list(PROG, "--verify", s, INT32_MAX, verify_item, &m,
		     "comma-separated verification modes: none, state, full "
		     "or all");
	return m;
}

static int size_item(void *arg, int i, const char *text)
{
	size_t *mib = arg;
	uint64_t v;
	int err = pmt_parse_u64(text, 0, 1, 1u << 20, &v);

	mib[i] = (size_t)v;
	return err;
}

static int parse_sizes(const char *s, size_t *mib)
{
	return pmt_arg_list(PROG, "--scale-sizes", s, MAX_SIZES, size_item, mib,
			    "up to %d comma-separated sizes in MiB, each "
			    "1..1048576",
			    MAX_SIZES);
}

static int rate_item(void *arg, int i, const char *text)
{
	uint64_t *rates = arg;

	return pmt_parse_u64(text, 0, 0, 100000000, &rates[i]);
}

static int parse_rates(const char *s, uint64_t *rates)
{
	return pmt_arg_list(PROG, "--rates", s, MAX_RATES, rate_item, rates,
			    "up to %d comma-separated dirty rates in pages/s, "
			    "each at most 100000000",
			    MAX_RATES);
}

/* io_uring usable?  (a pipe: the kind this build's kernel may refuse) */
static bool probe_uring(void)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = PMTRACK_XPORT_URING);
	struct pmtrack_xport *x;
	int p[2], err;

	if (pipe2(p, O_CLOEXEC))
		fail("pipe2", errno);
	err = pmtrack_xport_new(p[1], &xo, &x);
	close(p[0]);
	close(p[1]);
	if (err && err != -EOPNOTSUPP)
		fail("pmtrack_xport_new (io_uring probe)", -err);
	if (!err)
		pmtrack_xport_free(x);
	return !err;
}

/* the tracker pre-copy and checkpoints use; exits 77 if there is none */
static const char *probe_tracker(void)
{
	PMTRACK_OPTS(pmtrack_opts, o, .require = PMTRACK_CAP_ATOMIC_RESET);
	struct pmtrack *t;
	const char *name;
	int err = pmtrack_new(&o, &t);

	if (err == -EOPNOTSUPP || err == -ENOSYS || err == -EPERM) {
		printf(PROG ": no tracker with PMTRACK_CAP_ATOMIC_RESET here "
			    "(%s): skipped\n",
		       strerror(-err));
		exit(EXIT_SKIP);
	}
	if (err)
		fail("pmtrack_new", -err);
	name = pmtrack_backend_name(pmtrack_backend(t));
	pmtrack_free(t);
	return name;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--size-mib N] [--reps N] [--only LIST] "
		"[--rates LIST]\n"
		"       [--verify LIST] [--no-digest] [--downtime-ms N]\n"
		"       [--scale-sizes LIST] [--scale-rate N] [--csv-dir DIR] "
		"[--dir DIR]\n"
		"       [--no-thp] [--quick]\n"
		"  --size-mib N     memory per test, except downtime's (1024; "
		"--quick: 32)\n"
		"  --reps N         repetitions, medians reported (3; --quick: "
		"1)\n"
		"  --only LIST      comma-separated sections: throughput, "
		"migrate, downtime,\n"
		"                   ckpt, transport, all (all)\n"
		"  --rates LIST     migrate: dirty rates in pages/s "
		"(0,5000,20000,50000)\n"
		"  --verify LIST    throughput, migrate, downtime: pre-copy "
		"verification modes,\n"
		"                   none (NO_DIGEST), state (the default: "
		"state digest + audit),\n"
		"                   full (FULL_DIGEST | NO_AUDIT), all (all)\n"
		"  --no-digest      the same as --verify none\n"
		"  --downtime-ms N  pre-copy downtime limit (300)\n"
		"  --scale-sizes LIST  downtime: memory sizes in MiB "
		"(256,1024,4096;\n"
		"                   --quick: 16,32)\n"
		"  --scale-rate N   downtime: the dirty rate in pages/s "
		"(5000)\n"
		"  --csv-dir DIR    migrate: write DIR/rounds-<rate>.csv "
		"(created)\n"
		"  --dir DIR        checkpoints and transport files (/tmp)\n"
		"  --no-thp         no transparent huge pages "
		"(PR_SET_THP_DISABLE)"
		"\n"
		"  --quick          a short smoke run (CI)\n");
}

/* the options that are not in struct cfg */
struct args {
	size_t size_mib; /* 0: the default */
	int reps;	 /* 0: the default */
	bool quick, no_thp;
};

static void parse_args(int argc, char **argv, struct cfg *c, struct args *a)
{
	static const struct option longopts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' },
		{ "rates", required_argument, NULL, 'R' },
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ "csv-dir", required_argument, NULL, 'c' },
		{ "dir", required_argument, NULL, 'D' },
		{ "quick", no_argument, NULL, 'q' },
		{ "no-thp", no_argument, NULL, 'T' },
		{ "no-digest", no_argument, NULL, 'N' },
		{ "verify", required_argument, NULL, 'V' },
		{ "scale-sizes", required_argument, NULL, 'S' },
		{ "scale-rate", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			a->size_mib = bench_parse_num(PROG, optarg,
						      "--size-mib");
			break;
		case 'r':
			a->reps = (int)bench_parse_num(PROG, optarg, "--reps");
			break;
		case 'o':
			c->only = parse_only(optarg);
			break;
		case 'R':
			c->nrates = parse_rates(optarg, c->rates);
			break;
		case 'd':
			c->limit_ns = (uint64_t)bench_parse_num(
					      PROG, optarg, "--downtime-ms") *
				      1000000u;
			break;
		case 'c':
			c->csv_dir = optarg;
			break;
		case 'D':
			c->dir = optarg;
			break;
		case 'q':
			a->quick = true;
			break;
		case 'T':
			a->no_thp = true;
			break;
		case 'N':
			c->verify = 1u << V_NONE;
			break;
		case 'V':
			c->verify = parse_verify(optarg);
			break;
		case 'S':
			c->nsizes = parse_sizes(optarg, c->scale_mib);
			break;
		case 'E':
			c->scale_rate = pmt_arg_u64(PROG, "--scale-rate",
						    optarg, 0, 1, 100000000);
			break;
		default:
			pmt_usage_exit(opt, usage);
		}
	}
	pmt_no_operands(argc, usage);
}

static void print_header(const struct cfg *c, const struct args *a,
			 const char *backend)
{
	struct utsname uts;

	if (uname(&uts))
		fail("uname", errno);
	printf(PROG ": kernel %s, libpmtrack %s, %ld CPUs online, %zu MiB, "
		    "%d reps, medians; tracker %s, io_uring %s; THP %s, %s\n",
	       uts.release, pmtrack_version(), sysconf(_SC_NPROCESSORS_ONLN),
	       a->size_mib, c->reps, backend,
	       c->uring ? "usable" : "unavailable", thp_mode(),
	       a->no_thp ? "disabled for this run (--no-thp)"
			 : "big buffers MADV_HUGEPAGE");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct cfg c = {
		.only = SEC_ALL,
		.dir = "/tmp",
		.rates = { 0, 5000, 20000, 50000 },
		.nrates = 4,
		.limit_ns = 300000000u,
		.verify = (1u << V_NR) - 1,
		.scale_rate = 5000,
	};
	struct args a = { 0 };
	const char *backend = "n/a";
	uint64_t t0 = bench_now_ns();

	parse_args(argc, argv, &c, &a);
	if (!a.size_mib)
		a.size_mib = a.quick ? 32 : 1024;
	if (!a.reps)
		a.reps = a.quick ? 1 : 3;
	c.reps = a.reps;
	c.len = a.size_mib << 20;
	c.ps = (size_t)sysconf(_SC_PAGESIZE);
	if (c.len / c.ps < 100) {
		fprintf(stderr, PROG ": --size-mib too small\n");
		return 2;
	}
	if (!c.nsizes) {
		static const size_t full[] = { 256, 1024, 4096 };
		static const size_t quick[] = { 16, 32 };
		const size_t *d = a.quick ? quick : full;

		c.nsizes = a.quick ? 2 : 3;
		memcpy(c.scale_mib, d, (size_t)c.nsizes * sizeof(*d));
	}
	/* inherited by the receivers; overrides MADV_HUGEPAGE */
	if (a.no_thp && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		fail("prctl(PR_SET_THP_DISABLE)", errno);
	/* a receiver that dies must not kill us with SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	if (c.only & (SEC_THROUGHPUT | SEC_MIGRATE | SEC_DOWNTIME | SEC_CKPT))
		backend = probe_tracker();
	c.uring = probe_uring();
	print_header(&c, &a, backend);

	if (c.only & SEC_THROUGHPUT)
		section_throughput(&c);
	if (c.only & SEC_MIGRATE)
		section_migrate(&c);
	if (c.only & SEC_DOWNTIME)
		section_downtime(&c);
	if (c.only & SEC_CKPT)
		section_ckpt(&c);
	if (c.only & SEC_TRANSPORT)
		section_transport(&c);
	printf("\n" PROG ": all transfers and restores verified; %.0f s\n",
	       (double)(bench_now_ns() - t0) / 1e9);
	return 0;
}

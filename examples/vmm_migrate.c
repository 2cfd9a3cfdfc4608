// SPDX-License-Identifier: MIT
/*
 * vmm_migrate: a VMM-style live migration over TCP loopback.
 *
 * The source process owns "guest RAM" (default 256 MiB) that writer threads
 * keep dirtying at a set rate, like vCPUs.  It migrates the RAM with
 * pmtrack_precopy() to a receiver process: round 0 sends everything, each
 * later round what was written meanwhile, until the expected downtime fits
 * the limit; then the writers are paused (the "VM" stops), the rest is
 * sent, and the receiver checks every checksum and the state digest (the
 * pages it applied are exactly the pages sent); after its answer the
 * source audits its paused RAM against what it sent (a write the tracker
 * missed would fail the migration).
 *
 * To check the result byte for byte, the receiver then sends the RAM it
 * rebuilt back over the same connection, and the source, whose writers
 * are still paused, compares it with its own.
 *
 *   pmtrack-vmm-migrate [--size SIZE] [--writers N] [--rate PAGES/S]
 *                       [--hot PCT] [--downtime-ms MS] [--max-rounds N]
 *                       [--max-bandwidth SIZE/S] [--level N]
 *                       [--full-digest] [--no-verify] [--quiet]
 *
 * The options and their defaults are in help() below (--help prints
 * them); the grammar is docs/cli.md's.  Exit status: 0 verified, 1
 * failed, 2 a bad command line, 77 this machine cannot run it (no backend
 * here tracks the RAM; why on stderr).
 *
 * The state digest costs a hash of each page sent and nothing in the
 * downtime beyond the last round's pages; the audit reads all RAM once,
 * after the downtime.  --full-digest adds the END digest of all guest RAM
 * (PMTRACK_PRECOPY_FULL_DIGEST), which both sides compute inside the
 * downtime by reading every page (about 1.5 s per GiB of 4 KiB-mapped
 * memory in our shadow-paging VMs, 70 ms on bare metal); --no-verify
 * turns all verification off (PMTRACK_PRECOPY_NO_DIGEST).  The
 * byte-for-byte comparison runs either way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "args.h"
#include "excli.h"
#include "loopback.h"
#include "progress.h"
#include "status.h"
#include "workload.h"

#define PROG "pmtrack-vmm-migrate"

struct cfg {
	uint64_t size, rate, downtime_ms, max_rounds, bw;
	uint64_t writers, hot;
	int level;
	int quiet;
	int digest, verify;
};

static void help(FILE *f)
{
	fputs("usage: " PROG " [--size SIZE] [--writers N] [--rate PAGES/S]\n"
	      "         [--hot PCT] [--downtime-ms MS] [--max-rounds N]\n"
	      "         [--max-bandwidth SIZE/S] [--level N] [--full-digest]\n"
	      "         [--no-verify] [--quiet]\n"
	      "       " PROG " --help | --version\n"
	      "\n"
	      "Live-migrates \"guest RAM\" that writer threads (the vCPUs) keep "
	      "dirtying to a\n"
	      "receiver process over TCP loopback: pre-copy rounds until the "
	      "expected\n"
	      "downtime fits the limit, then the writers pause for the "
	      "stop-and-copy round.\n"
	      "The receiver checks every batch checksum and the state digest, "
	      "the source\n"
	      "audits its paused RAM, and the receiver sends its RAM back to be "
	      "compared\n"
	      "byte for byte.  Page counts include the zero pages, which are "
	      "also given\n"
	      "apart.  After each round a status line like pmtrack send's.\n"
	      "Exit status: 0 verified, 1 failed, 2 a bad command line, 77 "
	      "this machine\n"
	      "cannot run it (why on stderr).\n"
	      "\n"
	      "  --size SIZE            guest RAM (default 256 MiB)\n"
	      "  --writers N            writer threads, 0..64 (default 2)\n"
	      "  --rate PAGES/S         pages the writers dirty per second, "
	      "all together;\n"
	      "                         0 = as fast as they can (default "
	      "10000)\n"
	      "  --hot PCT              share of the writes that go to a hot "
	      "1/16 of RAM\n"
	      "                         (default 0)\n"
	      "  --downtime-ms MS       longest pause of the writers to aim for "
	      "(default 300)\n"
	      "  --max-rounds N         pre-copy rounds before stopping anyway "
	      "(default 30)\n"
	      "  --max-bandwidth SIZE/S\n"
	      "                         cap on the pre-copy's bytes per second;\n"
	      "                         0 = none (default 0)\n"
	      "  --level N              zstd level, -131072..22; 0 = no "
	      "compression\n"
	      "                         (default 0)\n"
	      "  --full-digest          also send a digest of all RAM, read "
	      "inside the\n"
	      "                         downtime (default off)\n"
	      "  --no-verify            no state digest and no audit (default "
	      "verification\n"
	      "                         on); the byte-for-byte comparison runs "
	      "either way\n"
	      "  --quiet                no progress bar and no per-round lines\n"
	      "  -h, --help             print this help and exit\n"
	      "  --version              print the version and exit\n",
	      f);
}

enum opt_id {
	/* the numeric ones, indices into num_opt[] */
	O_SIZE,
	O_WRITERS,
	O_RATE,
	O_HOT,
	O_DOWNTIME,
	O_ROUNDS,
	O_BW,
	O_NUM,
	O_LEVEL = 'l',
	O_DIGEST = 'd',
	O_QUIET = 'q',
	O_NO_VERIFY = 'v',
};

/* where each numeric option goes, the values it takes and whether a size
 * suffix (K, M, G, T) is allowed */
static const struct {
	const char *name;
	size_t off;
	uint64_t min, max;
	unsigned int flags;
} num_opt[O_NUM] = {
	[O_SIZE] = { "--size", offsetof(struct cfg, size), 1, SIZE_MAX,
		     PMT_NUM_SUFFIX },
	[O_WRITERS] = { "--writers", offsetof(struct cfg, writers), 0, 64, 0 },
	[O_RATE] = { "--rate", offsetof(struct cfg, rate), 0, UINT64_MAX, 0 },
	[O_HOT] = { "--hot", offsetof(struct cfg, hot), 0, 100, 0 },
	/* in ns it must fit 64 bits, and the rounds 32 */
	[O_DOWNTIME] = { "--downtime-ms", offsetof(struct cfg, downtime_ms),
			 0, UINT64_MAX / 1000000, 0 },
	[O_ROUNDS] = { "--max-rounds", offsetof(struct cfg, max_rounds), 0,
		       UINT32_MAX, 0 },
	[O_BW] = { "--max-bandwidth", offsetof(struct cfg, bw), 0, UINT64_MAX,
		   PMT_NUM_SUFFIX },
};

static void parse(int argc, char **argv, struct cfg *c)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, O_SIZE },
		{ "writers", required_argument, NULL, O_WRITERS },
		{ "rate", required_argument, NULL, O_RATE },
		{ "hot", required_argument, NULL, O_HOT },
		{ "downtime-ms", required_argument, NULL, O_DOWNTIME },
		{ "max-rounds", required_argument, NULL, O_ROUNDS },
		{ "max-bandwidth", required_argument, NULL, O_BW },
		{ "level", required_argument, NULL, O_LEVEL },
		{ "full-digest", no_argument, NULL, O_DIGEST },
		{ "no-verify", no_argument, NULL, O_NO_VERIFY },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, PMT_CLI_HELP },
		{ "version", no_argument, NULL, PMT_CLI_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const struct pmt_cli cli = { PROG, longopts, help };
	int opt;

	while ((opt = pmt_cli_next(&cli, argc, argv)) != -1) {
		if (opt >= 0 && opt < O_NUM) {
			*(uint64_t *)((char *)c + num_opt[opt].off) =
				pmt_arg_u64(PROG, num_opt[opt].name, optarg,
					    num_opt[opt].flags,
					    num_opt[opt].min, num_opt[opt].max);
			continue;
		}
		switch (opt) {
		case O_LEVEL:
			c->level = pmt_arg_int(PROG, "--level", optarg,
					       PMT_LEVEL_MIN, PMT_LEVEL_MAX);
			break;
		case O_DIGEST:
			c->digest = 1;
			break;
		case O_QUIET:
			c->quiet = 1;
			break;
		case O_NO_VERIFY:
			c->verify = 0;
			break;
		}
	}
	pmt_cli_end(&cli, argc, argv);
}

/* ---- receiver (child process) ------------------------------------------ */

/* Write all of [p, p + len) to @fd. */
static int send_all(int fd, const void *p, size_t len)
{
	const char *c = p;
	ssize_t n;

	while (len) {
		n = send(fd, c, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static int receive(int lfd)
{
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	struct pmtrack_rx_region rg;
	struct pmtrack_rx *rx = NULL;
	char d[PMT_UNIT_LEN];
	int fd, err, reason, ok;

	fd = accept(lfd, NULL, NULL);
	close(lfd);
	if (fd < 0) {
		perror("receiver: accept");
		return 1;
	}
	/* the receiver maps the guest RAM itself, as the header describes */
	err = pmtrack_rx_new(NULL, &rx);
	if (!err)
		err = pmtrack_rx_apply_fd(rx, fd);
	if (err) {
		const char *msg = rx ? pmtrack_rx_error(rx, &reason) : "";

		fprintf(stderr, "receiver: %s: %s\n", strerror(-err), msg);
		pmtrack_rx_free(rx);
		close(fd);
		return 1;
	}
	pmtrack_rx_get_stats(rx, &rs);
	if (rs.reply != PMTRACK_RX_REPLY_SENT) {
		fprintf(stderr, "receiver: the answer did not reach the "
				"source\n");
		pmtrack_rx_free(rx);
		close(fd);
		return 1;
	}
	/* the receiver counts the zero pages apart; the report includes
	   them, as everywhere */
	printf("receiver: %llu rounds, %llu pages (zero pages included; "
	       "%llu zero), %s received in %s; batch checksums verified, "
	       "END %s\n",
	       (unsigned long long)rs.rounds,
	       (unsigned long long)(rs.pages + rs.zero_pages),
	       (unsigned long long)rs.zero_pages, pmt_iec(rs.bytes),
	       pmt_fmt_dur(d, sizeof(d), rs.apply_ns),
	       rs.digest_verified ? "verified" : "not checked");
	fflush(stdout);
	/* the check: the whole RAM goes back to the source */
	ok = !pmtrack_rx_region(rx, 0, &rg) && !send_all(fd, rg.mem, rg.len);
	pmtrack_rx_free(rx);
	close(fd);
	return ok ? 0 : 1;
}

/* Compare what the receiver sends back with @mem. */
static int compare_back(int fd, const char *mem, size_t len)
{
	static char buf[1 << 20];
	size_t off = 0;
	ssize_t n;
	int same = 1;

	while (off < len) {
		n = recv(fd, buf,
			 len - off < sizeof(buf) ? len - off : sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (memcmp(buf, mem + off, (size_t)n))
			same = 0;
		off += (size_t)n;
	}
	return same;
}

/* ---- source ------------------------------------------------------------ */

struct src {
	struct cfg *c;
	struct wl *wl;
	struct pmtrack_xport *x;
	size_t ps;
	struct pmt_bar bar;
	/* the bar: bytes written this round against its estimate */
	uint64_t round_bytes, round_est;
	uint64_t round;
};

static int counting_write(void *arg, const struct iovec *iov, int n)
{
	struct src *s = arg;

	for (int i = 0; i < n; i++)
		s->round_bytes += iov[i].iov_len;
	pmt_bar_draw(&s->bar, false, s->round_bytes, s->round_est,
		     "round %llu: %s of about %s",
		     (unsigned long long)s->round, pmt_iec(s->round_bytes),
		     pmt_iec(s->round_est));
	return pmtrack_xport_write(s->x, iov, n);
}

static int flush(void *arg)
{
	return pmtrack_xport_flush(((struct src *)arg)->x);
}

/* after each round, its status line (pmtrack send's, support/status.h) */
static int on_round(void *arg, const struct pmtrack_precopy_round *r)
{
	struct src *s = arg;
	char line[PMT_STATUS_LEN];

	pmt_bar_clear(&s->bar);
	if (!s->c->quiet) {
		pmt_status_line(line, sizeof(line), r);
		printf("%s\n", line);
		fflush(stdout);
	}
	/* the next round sends what was dirtied, at this round's ratio */
	s->round++;
	s->round_bytes = 0;
	s->round_est = r->pages ? r->bytes * r->dirty_pages / r->pages : 0;
	return 0;
}

static int stop_vm(void *arg)
{
	struct src *s = arg;

	pmt_bar_clear(&s->bar);
	if (!s->c->quiet) {
		printf("stop: pausing %llu writers (vCPUs) for stop-and-copy\n",
		       (unsigned long long)s->c->writers);
		fflush(stdout);
	}
	return wl_pause(s->wl);
}

static void resume_vm(void *arg)
{
	struct src *s = arg;

	pmt_bar_clear(&s->bar);
	fprintf(stderr, PROG ": stop-and-copy failed: resuming the "
			     "workload\n");
	wl_resume(s->wl);
}

/* Listen on a loopback port and fork the receiver to accept there. */
static int start_receiver(uint16_t *port, pid_t *pid)
{
	int lfd = pmt_loopback_listen(port);

	if (lfd < 0)
		return 1;
	fflush(stdout);
	*pid = fork();
	if (*pid < 0) {
		perror("fork");
		return 1;
	}
	if (!*pid)
		_exit(receive(lfd));
	close(lfd);
	return 0;
}

static int start_workload(const struct cfg *c, size_t len, struct wl **wl)
{
	struct wl_opts wo = { .bytes = len,
			      .writers = (int)c->writers,
			      .rate = c->rate,
			      .seed = 0x5eed,
			      .hot = (unsigned int)c->hot };
	int err = wl_start(&wo, wl);

	if (err) {
		fprintf(stderr, "workload: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}

/* pmtrack_precopy() of the guest RAM through s->x: 0 or -errno */
static int migrate(struct src *s, size_t len,
		   struct pmtrack_precopy_stats *st)
{
	static const struct pmtrack_precopy_ops ops = {
		.stop = stop_vm,
		.resume = resume_vm,
		.progress = on_round,
	};
	const struct cfg *c = s->c;
	struct pmtrack_mem_region reg = { wl_mem(s->wl), len, 0,
					  "guest-ram" };
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = counting_write,
		     .write_arg = s, .flush = flush, .ops = &ops, .arg = s,
		     .downtime_limit_ns = c->downtime_ms * 1000000,
		     .max_rounds = (uint32_t)c->max_rounds,
		     .max_bandwidth = c->bw, .level = c->level,
		     .flags = !c->verify  ? PMTRACK_PRECOPY_NO_DIGEST
			      : c->digest ? PMTRACK_PRECOPY_FULL_DIGEST
					  : 0,
		     /* success only once the destination says
			it has everything (the return path) */
		     .reply = s->x);

	s->round_est = len;
	return pmtrack_precopy(&o, &reg, 1, st);
}

static void print_migrated(const struct cfg *c,
			   const struct pmtrack_precopy_stats *st)
{
	char t[PMT_UNIT_LEN], bw[PMT_UNIT_LEN], d[PMT_UNIT_LEN],
		l[PMT_UNIT_LEN], e[PMT_UNIT_LEN], g[PMT_UNIT_LEN];

	printf("migrated: %llu rounds, %llu pages (zero pages included; "
	       "%llu zero), %s sent, %s total (%s pre-copy), downtime "
	       "%s (limit %s, expected %s, digest %s), %s, backend %s\n",
	       (unsigned long long)st->rounds, (unsigned long long)st->pages,
	       (unsigned long long)st->zero_pages, pmt_iec(st->bytes),
	       pmt_fmt_dur(t, sizeof(t), st->total_ns),
	       pmt_fmt_rate(bw, sizeof(bw), st->bandwidth),
	       pmt_fmt_dur(d, sizeof(d), st->downtime_ns),
	       pmt_fmt_dur(l, sizeof(l), c->downtime_ms * 1000000),
	       pmt_fmt_expected(e, sizeof(e), st->expected_downtime_ns),
	       pmt_fmt_dur(g, sizeof(g), st->digest_ns),
	       st->converged ? "converged" : "did not converge, stopped anyway",
	       pmtrack_backend_name(st->backend));
	printf("destination answered: applied%s%s\n",
	       c->verify ? ", state digest verified" : "",
	       c->verify && c->digest ? ", memory digest verified" : "");
	if (c->verify)
		printf("audit: the paused RAM is what was sent (%s, after the "
		       "downtime)\n",
		       pmt_fmt_dur(d, sizeof(d), st->audit_ns));
	fflush(stdout);
}

/*
 * A tracker as pmtrack_precopy() makes one (automatic backend, atomic
 * resets), before anything starts: 0, or the exit status after a message
 * (77 when no backend here can track the RAM).
 */
static int check_tracker(void)
{
	PMTRACK_OPTS(pmtrack_opts, o, .require = PMTRACK_CAP_ATOMIC_RESET);
	struct pmtrack *t;
	int r = pmtrack_new(&o, &t);

	if (!r) {
		pmtrack_free(t);
		return 0;
	}
	if (r == -EOPNOTSUPP) {
		fprintf(stderr,
			PROG ": this machine cannot run it: no backend here "
			     "tracks the guest RAM with atomic resets (%s; "
			     "'pmtrack probe' lists the kernel features)\n",
			strerror(-r));
		return 77;
	}
	fprintf(stderr, PROG ": pmtrack_new: %s\n", strerror(-r));
	return 1;
}

int main(int argc, char **argv)
{
	struct cfg c = { .size = 256u << 20,
			 .writers = 2,
			 .rate = 10000,
			 .hot = 0,
			 .downtime_ms = 300,
			 .max_rounds = 30,
			 .verify = 1 };
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct src s = { .c = &c, .ps = (size_t)sysconf(_SC_PAGESIZE) };
	int fd, err, status, ok = -1;
	char lim[PMT_UNIT_LEN];
	uint16_t port;
	size_t len;
	pid_t pid;

	parse(argc, argv, &c);
	err = check_tracker();
	if (err)
		return err;
	pmt_bar_init(&s.bar, stderr, c.quiet);
	len = (c.size + s.ps - 1) / s.ps * s.ps;
	if (start_receiver(&port, &pid))
		return 1;
	printf("guest RAM %s, %llu writers dirtying %llu pages/s "
	       "(%llu%% in a hot 1/16), downtime limit %s, TCP loopback "
	       "port %u\n",
	       pmt_iec(len), (unsigned long long)c.writers,
	       (unsigned long long)c.rate, (unsigned long long)c.hot,
	       pmt_fmt_dur(lim, sizeof(lim), c.downtime_ms * 1000000), port);
	if (start_workload(&c, len, &s.wl))
		return 1;
	fd = pmt_loopback_connect(port);
	if (fd < 0)
		return 1;
	err = pmtrack_xport_new(fd, NULL, &s.x);
	if (err) {
		fprintf(stderr, PROG ": transport: %s\n", strerror(-err));
		return 1;
	}
	err = migrate(&s, len, &st);
	pmt_bar_clear(&s.bar);
	pmtrack_xport_free(s.x);
	if (err) {
		fprintf(stderr, PROG ": migration failed: %s\n",
			strerror(-err));
	} else {
		print_migrated(&c, &st);
		/* end of stream; the writers stay paused while we compare */
		shutdown(fd, SHUT_WR);
		ok = compare_back(fd, wl_mem(s.wl), len);
	}
	close(fd);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, PROG ": receiver failed\n");
		return 1;
	}
	if (err)
		return 1;
	printf("%s: destination %s source byte for byte (%s, %llu page "
	       "writes during the migration)\n",
	       ok == 1 ? "verified" : "FAILED",
	       ok == 1 ? "equals"
	       : ok    ? "was not sent back by"
		       : "differs from",
	       pmt_iec(len), (unsigned long long)wl_writes(s.wl));
	wl_free(s.wl);
	return ok == 1 ? 0 : 1;
}

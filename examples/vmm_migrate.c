// SPDX-License-Identifier: MIT
/*
 * vmm_migrate: a VMM-style live migration over TCP loopback.
 *
 * The source process owns "guest RAM" (default 1 GiB) that writer threads
 * keep dirtying at a set rate, like vCPUs.  It migrates the RAM with
 * pmtrack_precopy() to a receiver process: round 0 sends everything, each
 * later round what was written meanwhile, until the expected downtime fits
 * the limit; then the writers are paused (the "VM" stops), the rest is
 * sent, and the receiver checks every checksum and the memory digest.
 *
 * To check the result byte for byte, the receiver then sends the RAM it
 * rebuilt back over the same connection, and the source, whose writers
 * are still paused, compares it with its own.
 *
 *   pmtrack-vmm-migrate [--size 1G] [--writers 2] [--rate 20000]
 *                       [--hot 80] [--downtime-ms 300] [--max-rounds 30]
 *                       [--max-bandwidth B/S] [--level N] [--digest]
 *                       [--no-bar]
 *
 * --digest adds the END digest of all guest RAM, which the receiver
 * checks.  Computing it is part of the downtime (pmtrack_precopy() times
 * one digest after round 0 and counts it in every estimate), and reading
 * a GiB of 4 KiB-mapped memory is slow in shadow-paging VMs (about 1.5 s
 * on our test machines, 70 ms on bare metal), so it is off by default;
 * the byte-for-byte comparison checks more than the digest would.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "workload.h"

struct cfg {
	uint64_t size, rate, downtime_ms, max_rounds, bw;
	uint64_t writers, hot;
	int level;
	int bar;
	int digest;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fputs("usage: pmtrack-vmm-migrate [--size 1G] [--writers 2] "
	      "[--rate PAGES/S] [--hot PCT]\n"
	      "         [--downtime-ms 300] [--max-rounds 30] "
	      "[--max-bandwidth B/S] [--level N] [--digest] [--no-bar]\n",
	      stderr);
	exit(2);
}

static void parse(int argc, char **argv, struct cfg *c)
{
	static const struct {
		const char *name;
		size_t off;
	} opt[] = {
		{ "--size", offsetof(struct cfg, size) },
		{ "--writers", offsetof(struct cfg, writers) },
		{ "--rate", offsetof(struct cfg, rate) },
		{ "--hot", offsetof(struct cfg, hot) },
		{ "--downtime-ms", offsetof(struct cfg, downtime_ms) },
		{ "--max-rounds", offsetof(struct cfg, max_rounds) },
		{ "--max-bandwidth", offsetof(struct cfg, bw) },
	};

	for (int i = 1; i < argc; i++) {
		size_t k;

		if (!strcmp(argv[i], "--no-bar")) {
			c->bar = 0;
			continue;
		}
		if (!strcmp(argv[i], "--digest")) {
			c->digest = 1;
			continue;
		}
		if (!strcmp(argv[i], "--level") && i + 1 < argc) {
			c->level = atoi(argv[++i]);
			continue;
		}
		for (k = 0; k < sizeof(opt) / sizeof(opt[0]); k++)
			if (!strcmp(argv[i], opt[k].name))
				break;
		if (k == sizeof(opt) / sizeof(opt[0]) || i + 1 >= argc ||
		    wl_parse_size(argv[i + 1],
				  (uint64_t *)((char *)c + opt[k].off)))
			usage();
		i++;
	}
	if (!c->size || c->writers > 64 || c->hot > 100)
		usage();
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
	printf("receiver: %llu rounds, %llu pages + %llu zero pages, "
	       "%.1f MiB received in %.2f s; batch checksums verified, "
	       "digest %s\n",
	       (unsigned long long)rs.rounds, (unsigned long long)rs.pages,
	       (unsigned long long)rs.zero_pages, (double)rs.bytes / 1048576.0,
	       (double)rs.apply_ns / 1e9,
	       rs.digest_verified ? "verified" : "not sent");
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
	/* progress bar: bytes written this round against its estimate */
	uint64_t round_bytes, round_est, last_draw;
	uint64_t round;
};

static void draw_bar(struct src *s, int final)
{
	double f = s->round_est ? (double)s->round_bytes / (double)s->round_est
				: 1.0;
	int w = 40, n;

	if (f > 1.0)
		f = 1.0;
	n = (int)(f * w);
	fprintf(stderr, "\r  round %-3llu [%.*s%*s] %5.1f%%%s",
		(unsigned long long)s->round, n,
		"########################################", w - n, "",
		100.0 * f, final ? "\n" : "");
}

static int counting_write(void *arg, const struct iovec *iov, int n)
{
	struct src *s = arg;
	uint64_t t;

	for (int i = 0; i < n; i++)
		s->round_bytes += iov[i].iov_len;
	if (s->c->bar && (t = now_ns()) - s->last_draw > 100000000u) {
		s->last_draw = t;
		draw_bar(s, 0);
	}
	return pmtrack_xport_write(s->x, iov, n);
}

static int flush(void *arg)
{
	return pmtrack_xport_flush(((struct src *)arg)->x);
}

static int on_round(void *arg, const struct pmtrack_precopy_round *r)
{
	struct src *s = arg;

	if (s->c->bar) {
		s->round_bytes = s->round_est;
		draw_bar(s, 1);
	}
	printf("round %2llu%s %8llu pages (%llu zero) %8.1f MiB %6.0f ms "
	       "%7.1f MiB/s | dirtied %7llu (%6.0f/s) | expected downtime "
	       "%.0f ms\n",
	       (unsigned long long)r->round, r->final ? "*" : " ",
	       (unsigned long long)r->pages, (unsigned long long)r->zero_pages,
	       (double)r->bytes / 1048576.0, (double)r->duration_ns / 1e6,
	       (double)r->bytes / 1048576.0 /
		       ((double)r->duration_ns / 1e9 + 1e-9),
	       (unsigned long long)r->dirty_pages, (double)r->dirty_rate,
	       (double)r->expected_downtime_ns / 1e6);
	fflush(stdout);
	/* the next round sends what was dirtied, at this round's ratio */
	s->round++;
	s->round_bytes = 0;
	s->round_est = r->pages ? r->bytes * r->dirty_pages / r->pages : 0;
	return 0;
}

static int stop_vm(void *arg)
{
	struct src *s = arg;

	printf("stop: pausing %llu writers (vCPUs) for stop-and-copy\n",
	       (unsigned long long)s->c->writers);
	return wl_pause(s->wl);
}

static void resume_vm(void *arg)
{
	struct src *s = arg;

	fprintf(stderr, "stop-and-copy failed: resuming the workload\n");
	wl_resume(s->wl);
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("connect");
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct cfg c = { .size = 1ull << 30,
			 .writers = 2,
			 .rate = 20000,
			 .hot = 80,
			 .downtime_ms = 300,
			 .max_rounds = 30,
			 .bar = 1 };
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	static const struct pmtrack_precopy_ops ops = {
		.stop = stop_vm,
		.resume = resume_vm,
		.progress = on_round,
	};
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	struct src s = { .c = &c, .ps = (size_t)sysconf(_SC_PAGESIZE) };
	struct pmtrack_mem_region reg;
	int lfd, fd, err, status, ok = -1;
	size_t len;
	pid_t pid;

	parse(argc, argv, &c);
	if (!isatty(2))
		c.bar = 0;
	len = (c.size + s.ps - 1) / s.ps * s.ps;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&a, &alen)) {
		perror("listen");
		return 1;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (!pid)
		_exit(receive(lfd));
	close(lfd);

	printf("guest RAM %.0f MiB, %llu writers dirtying %llu pages/s "
	       "(%llu%% in a hot 1/16), downtime limit %llu ms, TCP loopback "
	       "port %u\n",
	       (double)len / 1048576.0, (unsigned long long)c.writers,
	       (unsigned long long)c.rate, (unsigned long long)c.hot,
	       (unsigned long long)c.downtime_ms, ntohs(a.sin_port));
	{
		struct wl_opts wo = { .bytes = len,
				      .writers = (int)c.writers,
				      .rate = c.rate,
				      .seed = 0x5eed,
				      .hot = (unsigned int)c.hot };

		err = wl_start(&wo, &s.wl);
		if (err) {
			fprintf(stderr, "workload: %s\n", strerror(-err));
			return 1;
		}
	}
	fd = connect_to(ntohs(a.sin_port));
	if (fd < 0)
		return 1;
	err = pmtrack_xport_new(fd, NULL, &s.x);
	if (err) {
		fprintf(stderr, "transport: %s\n", strerror(-err));
		return 1;
	}
	reg = (struct pmtrack_mem_region){ wl_mem(s.wl), len, 0, "guest-ram" };
	s.round_est = len;
	{
		PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = counting_write,
			     .write_arg = &s, .flush = flush, .ops = &ops,
			     .arg = &s,
			     .downtime_limit_ns = c.downtime_ms * 1000000,
			     .max_rounds = (uint32_t)c.max_rounds,
			     .max_bandwidth = c.bw, .level = c.level,
			     .flags = c.digest ? 0 : PMTRACK_PRECOPY_NO_DIGEST,
			     /* success only once the destination says
				it has everything (the return path) */
			     .reply = s.x);

		err = pmtrack_precopy(&o, &reg, 1, &st);
	}
	pmtrack_xport_free(s.x);
	if (err) {
		fprintf(stderr, "migration failed: %s\n", strerror(-err));
	} else {
		printf("migrated: %llu rounds, %.1f MiB sent, %.2f s total "
		       "(%.0f MiB/s pre-copy), downtime %.1f ms (limit %llu "
		       "ms, expected %.1f ms, digest %.0f ms), %s, backend "
		       "%s\n",
		       (unsigned long long)st.rounds,
		       (double)st.bytes / 1048576.0, (double)st.total_ns / 1e9,
		       (double)st.bandwidth / 1048576.0,
		       (double)st.downtime_ns / 1e6,
		       (unsigned long long)c.downtime_ms,
		       (double)st.expected_downtime_ns / 1e6,
		       (double)st.digest_ns / 1e6,
		       st.converged ? "converged"
				    : "did not converge, stopped anyway",
		       pmtrack_backend_name(st.backend));
		printf("destination answered: applied%s\n",
		       c.digest ? " and digest verified" : "");
		fflush(stdout);
		/* end of stream; the writers stay paused while we compare */
		shutdown(fd, SHUT_WR);
		ok = compare_back(fd, wl_mem(s.wl), len);
	}
	close(fd);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "receiver failed\n");
		return 1;
	}
	if (err)
		return 1;
	printf("%s: destination %s source byte for byte (%zu bytes, %llu "
	       "page writes during the migration)\n",
	       ok == 1 ? "verified" : "FAILED",
	       ok == 1 ? "equals"
	       : ok    ? "was not sent back by"
		       : "differs from",
	       len, (unsigned long long)wl_writes(s.wl));
	wl_free(s.wl);
	return ok == 1 ? 0 : 1;
}

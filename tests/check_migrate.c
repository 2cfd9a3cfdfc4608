// SPDX-License-Identifier: MIT
/*
 * Transport, pre-copy, receiver and checkpoints: live memory with writer
 * threads arrives byte for byte, and every failure (closed peer, truncated
 * or corrupt stream, broken chain, ENOSPC, EINTR) is reported and loses
 * nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "helpers.h"

#define NKINDS 2
static const enum pmtrack_xport_kind kinds[NKINDS] = { PMTRACK_XPORT_URING,
						       PMTRACK_XPORT_SYSCALL };

/* ---- a workload: writer threads that can be paused ------------------- */

struct work {
	char *mem[2];
	int burst; /* writes per 50 us */
	size_t pages[2];
	int nwriters;
	pthread_t th[4];
	atomic_int quit, pause, parked;
	atomic_ulong writes;
	uint64_t seed;
	atomic_int stops, resumes;
};

static void *writer(void *arg)
{
	struct work *w = arg;
	uint64_t st = w->seed ^ (uint64_t)pthread_self();
	bool parked = false;

	while (!atomic_load(&w->quit)) {
		if (atomic_load(&w->pause)) {
			if (!parked)
				atomic_fetch_add(&w->parked, 1);
			parked = true;
			sched_yield();
			continue;
		}
		if (parked)
			atomic_fetch_sub(&w->parked, 1);
		parked = false;
		for (int k = 0; k < w->burst; k++) {
			uint64_t r = t_rand(&st);
			int g = (r & 7) == 0; /* 1 in 8 to the small region */
			size_t pg = (r >> 8) % w->pages[g];
			size_t off = (r >> 40) % (ps / 8) * 8;

			/* relaxed atomics: writers may hit the same word */
			__atomic_store_n(
				(uint64_t *)(w->mem[g] + pg * ps + off), r,
				__ATOMIC_RELAXED);
		}
		atomic_fetch_add(&w->writes, (unsigned long)w->burst);
		usleep(50);
	}
	if (parked)
		atomic_fetch_sub(&w->parked, 1);
	return NULL;
}

static void work_start(struct work *w, size_t p0, size_t p1, int nwriters,
		       uint64_t seed, int burst)
{
	uint64_t st = seed;

	memset(w, 0, sizeof(*w));
	w->pages[0] = p0;
	w->pages[1] = p1;
	w->mem[0] = t_map_anon(p0);
	w->mem[1] = t_map_anon(p1);
	w->seed = seed;
	w->burst = burst;
	/* realistic content: some pages random, some zero, some text */
	for (size_t i = 0; i < p0; i++) {
		uint64_t r = t_rand(&st);

		if (r % 4 == 0)
			continue;
		for (size_t k = 0; k < ps / 8; k += (r % 4 == 1) ? 1 : 16)
			((uint64_t *)(w->mem[0] + i * ps))[k] = t_rand(&st);
	}
	memset(w->mem[1], 'x', p1 * ps / 2);
	w->nwriters = nwriters;
	for (int i = 0; i < nwriters; i++)
		ck_assert_int_eq(pthread_create(&w->th[i], NULL, writer, w), 0);
}

static int work_stop(void *arg)
{
	struct work *w = arg;

	atomic_fetch_add(&w->stops, 1);
	atomic_store(&w->pause, 1);
	while (atomic_load(&w->parked) < w->nwriters)
		sched_yield();
	return 0;
}

static void work_resume(void *arg)
{
	struct work *w = arg;

	atomic_fetch_add(&w->resumes, 1);
	atomic_store(&w->pause, 0);
}

static void work_end(struct work *w)
{
	atomic_store(&w->quit, 1);
	for (int i = 0; i < w->nwriters; i++)
		pthread_join(w->th[i], NULL);
	munmap(w->mem[0], w->pages[0] * ps);
	munmap(w->mem[1], w->pages[1] * ps);
}

static void work_regions(struct work *w, struct pmtrack_mem_region r[2])
{
	r[0] = (struct pmtrack_mem_region){ w->mem[0], w->pages[0] * ps, 7,
					    "ram" };
	r[1] = (struct pmtrack_mem_region){ w->mem[1], w->pages[1] * ps, 9,
					    NULL };
}

/* The receiver's memory equals the workload's, byte for byte. */
static void expect_same(struct pmtrack_rx *rx, struct work *w)
{
	struct pmtrack_rx_region rg;

	ck_assert_uint_eq(pmtrack_rx_nregions(rx), 2);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(pmtrack_rx_region(rx, (size_t)i, &rg), 0);
		ck_assert_uint_eq(rg.len, w->pages[i] * ps);
		ck_assert_uint_eq(rg.start, (uintptr_t)w->mem[i]);
		for (size_t p = 0; p < w->pages[i]; p++)
			t_check(!memcmp((char *)rg.mem + p * ps,
					w->mem[i] + p * ps, ps),
				"region %d page %zu differs", i, p);
	}
}

/* ---- receiving in a thread -------------------------------------------- */

struct rxjob {
	int fd;
	enum pmtrack_xport_kind kind;
	struct pmtrack_rx *rx;
	int err;
	pthread_t th;
};

static void *rx_thread(void *arg)
{
	struct rxjob *j = arg;
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = j->kind);
	struct pmtrack_xport *x;

	j->err = pmtrack_xport_new(j->fd, &xo, &x);
	if (!j->err)
		j->err = pmtrack_rx_apply(j->rx, x);
	pmtrack_xport_free(x);
	close(j->fd);
	return NULL;
}

static void rx_start(struct rxjob *j, int fd, enum pmtrack_xport_kind kind)
{
	j->fd = fd;
	j->kind = kind;
	ck_assert_int_eq(pmtrack_rx_new(NULL, &j->rx), 0);
	ck_assert_int_eq(pthread_create(&j->th, NULL, rx_thread, j), 0);
}

/* ---- transport ---------------------------------------------------------- */

struct pump {
	int fd;
	enum pmtrack_xport_kind kind;
	uint8_t *out;
	size_t len, got;
	int err;
};

static void *pump_read(void *arg)
{
	struct pump *p = arg;
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = p->kind, .depth = 3,
		     .buf_size = 8192);
	struct pmtrack_xport *x;
	const void *b;
	ssize_t n;

	p->err = pmtrack_xport_new(p->fd, &xo, &x);
	while (!p->err && (n = pmtrack_xport_read(x, &b)) > 0) {
		if (p->got + (size_t)n > p->len) {
			p->err = -EMSGSIZE;
			break;
		}
		memcpy(p->out + p->got, b, (size_t)n);
		p->got += (size_t)n;
	}
	if (!p->err && n < 0)
		p->err = (int)n;
	pmtrack_xport_free(x);
	return NULL;
}

/* Write @len pseudo-random bytes in iovecs of random sizes through @fd. */
static void pump_write(int fd, enum pmtrack_xport_kind kind, const uint8_t *src,
		       size_t len, uint64_t seed)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kind, .depth = 3,
		     .buf_size = 8192);
	struct pmtrack_xport_stats st = { .sz = sizeof(st) };
	struct pmtrack_xport *x;
	struct iovec iov[4];
	size_t off = 0;
	int r;

	ck_assert_int_eq(pmtrack_xport_new(fd, &xo, &x), 0);
	ck_assert_int_eq(pmtrack_xport_kind(x), kind);
	while (off < len) {
		int n = 1 + (int)(t_rand(&seed) % 4);

		for (int i = 0; i < n; i++) {
			uint64_t r2 = t_rand(&seed);
			size_t k = (r2 & 1) ? r2 % 64 : r2 % 40000;

			if (k > len - off)
				k = len - off;
			iov[i].iov_base = (void *)(src + off);
			iov[i].iov_len = k;
			off += k;
		}
		r = pmtrack_xport_write(x, iov, n);
		ck_assert_msg(r == 0, "write: %s", strerror(-r));
	}
	ck_assert_int_eq(pmtrack_xport_flush(x), 0);
	ck_assert_int_eq(pmtrack_xport_get_stats(x, &st), 0);
	ck_assert_uint_eq(st.bytes, len);
	ck_assert_uint_gt(st.calls, 0);
	pmtrack_xport_free(x);
}

static uint8_t *random_bytes(size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = t_rand(&seed);

		memcpy(b + i, &v, len - i < 8 ? len - i : 8);
	}
	return b;
}

static void roundtrip(int kind_i, int what, uint64_t seed)
{
	size_t len = 3u << 20;
	uint8_t *src = random_bytes(len, seed);
	struct pump p = { .kind = kinds[kind_i], .len = len };
	pthread_t th;
	int fds[2];
	char path[] = "/tmp/pmt-xport-XXXXXX";

	p.out = malloc(len);
	ck_assert_ptr_nonnull(p.out);
	if (what == 2) {
		/* a file, with a prefix before the stream's first byte */
		fds[1] = mkstemp(path);
		ck_assert_int_ge(fds[1], 0);
		unlink(path);
		ck_assert_int_eq(write(fds[1], "pre", 3), 3);
		pump_write(fds[1], kinds[kind_i], src, len, seed);
		ck_assert_int_eq(lseek(fds[1], 0, SEEK_CUR), (off_t)len + 3);
		ck_assert_int_eq(lseek(fds[1], 3, SEEK_SET), 3);
		p.fd = fds[1];
		pump_read(&p);
		ck_assert_int_eq(lseek(fds[1], 0, SEEK_CUR), (off_t)len + 3);
		/* a reader that stops early: the offset is after its bytes */
		{
			PMTRACK_OPTS(pmtrack_xport_opts, xo,
				     .kind = kinds[kind_i], .depth = 3,
				     .buf_size = 8192);
			struct pmtrack_xport *x;
			const void *b;
			ssize_t n;

			ck_assert_int_eq(lseek(fds[1], 3, SEEK_SET), 3);
			ck_assert_int_eq(pmtrack_xport_new(fds[1], &xo, &x), 0);
			n = pmtrack_xport_read(x, &b);
			ck_assert_int_gt(n, 0);
			ck_assert(!memcmp(b, src, (size_t)n));
			pmtrack_xport_free(x);
			ck_assert_int_eq(lseek(fds[1], 0, SEEK_CUR), 3 + n);
		}
		close(fds[1]);
	} else {
		if (what == 0)
			ck_assert_int_eq(
				socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
		else
			ck_assert_int_eq(pipe(fds), 0);
		p.fd = fds[0];
		ck_assert_int_eq(pthread_create(&th, NULL, pump_read, &p), 0);
		pump_write(fds[1], kinds[kind_i], src, len, seed);
		close(fds[1]);
		pthread_join(th, NULL);
		close(fds[0]);
	}
	ck_assert_msg(p.err == 0, "read: %s", strerror(-p.err));
	ck_assert_uint_eq(p.got, len);
	ck_assert(!memcmp(p.out, src, len));
	free(p.out);
	free(src);
}

/* every kind over a socket, a pipe and a file */
START_TEST(xport_roundtrip)
{
	roundtrip(_i / 3, _i % 3, 1000 + (uint64_t)_i);
}
END_TEST

static void on_sig(int sig)
{
	(void)sig;
}

/* A signal every 50 us without SA_RESTART: EINTR everywhere, nothing lost. */
static void signal_storm(bool on)
{
	struct sigaction sa = { .sa_handler = on_sig };
	struct itimerval it = { { 0, 50 }, { 0, 50 } };

	if (!on)
		memset(&it, 0, sizeof(it));
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

START_TEST(xport_eintr)
{
	signal_storm(true);
	for (int i = 0; i < 6; i++)
		roundtrip(i / 3, i % 3, 77 + (uint64_t)i);
	signal_storm(false);
}
END_TEST

/* A closed peer is -EPIPE (no SIGPIPE kills us), and stays the error. */
START_TEST(xport_epipe)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kinds[_i]);
	static char big[1 << 20];
	struct iovec v = { big, sizeof(big) };
	struct pmtrack_xport *x;
	int fds[2], r = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	close(fds[0]);
	ck_assert_int_eq(pmtrack_xport_new(fds[1], &xo, &x), 0);
	for (int i = 0; i < 8 && !r; i++)
		r = pmtrack_xport_write(x, &v, 1);
	if (!r)
		r = pmtrack_xport_flush(x);
	ck_assert_int_eq(r, -EPIPE);
	ck_assert_int_eq(pmtrack_xport_write(x, &v, 1), -EPIPE);
	ck_assert_int_eq(pmtrack_xport_flush(x), -EPIPE);
	pmtrack_xport_free(x);
	close(fds[1]);
}
END_TEST

START_TEST(xport_args)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo);
	struct pmtrack_xport *x = (void *)1;
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(pmtrack_xport_new(-1, NULL, &x), -EINVAL);
	ck_assert_ptr_null(x);
	ck_assert_int_eq(pmtrack_xport_new(fds[0], NULL, NULL), -EINVAL);
	xo.kind = 3;
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), -EINVAL);
	xo.kind = 0;
	xo.depth = 65;
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), -EINVAL);
	xo.depth = 0;
	xo.buf_size = 100;
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), -EINVAL);
	setenv("PMTRACK_TRANSPORT", "bogus", 1);
	ck_assert_int_eq(pmtrack_xport_new(fds[0], NULL, &x), -EINVAL);
	setenv("PMTRACK_TRANSPORT", "uring", 1);
	ck_assert_int_eq(pmtrack_xport_new(fds[0], NULL, &x), 0);
	ck_assert_int_eq(pmtrack_xport_kind(x), PMTRACK_XPORT_URING);
	pmtrack_xport_free(x);
	unsetenv("PMTRACK_TRANSPORT");
	/* AUTO: sockets and pipes use system calls (measured: docs/benchmarks.md) */
	ck_assert_int_eq(pmtrack_xport_new(fds[0], NULL, &x), 0);
	ck_assert_int_eq(pmtrack_xport_kind(x), PMTRACK_XPORT_SYSCALL);
	pmtrack_xport_free(x);
	close(fds[0]);
	close(fds[1]);
	pmtrack_xport_free(NULL);
}
END_TEST

/* the VmSize of this process in KiB, or -1 */
static long vm_size_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Forced fallback: in a child whose seccomp filter makes io_uring_setup
 * fail with ENOSYS (as in a container), AUTO uses system calls and works,
 * and a required io_uring fails with -EOPNOTSUPP.
 */
START_TEST(xport_fallback_seccomp)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (!pid) {
		PMTRACK_OPTS(pmtrack_xport_opts, xo,
			     .kind = PMTRACK_XPORT_URING);
		struct pmtrack_xport *x;
		char path[] = "/tmp/pmt-fb-XXXXXX";
		int fd = mkstemp(path);

		unlink(path);
		if (fd < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(10);
		if (pmtrack_xport_new(fd, &xo, &x) != -EOPNOTSUPP)
			_exit(11);
		if (pmtrack_xport_new(fd, NULL, &x) ||
		    pmtrack_xport_kind(x) != PMTRACK_XPORT_SYSCALL)
			_exit(12);
		pmtrack_xport_free(x);
		/* a transport that fell back frees all it mapped (it kept one
		   buffer of the depth it mapped, and unmapped only that) */
		{
			long before = vm_size_kb(), after;

			for (int i = 0; i < 16; i++) {
				if (pmtrack_xport_new(fd, NULL, &x))
					_exit(18);
				pmtrack_xport_free(x);
			}
			after = vm_size_kb();
			if (before < 0 || after < 0 || after - before > 1024)
				_exit(19);
		}
		/* PMTRACK_TRANSPORT=auto still falls back; =uring requires */
		setenv("PMTRACK_TRANSPORT", "auto", 1);
		if (pmtrack_xport_new(fd, NULL, &x) ||
		    pmtrack_xport_kind(x) != PMTRACK_XPORT_SYSCALL)
			_exit(16);
		pmtrack_xport_free(x);
		setenv("PMTRACK_TRANSPORT", "uring", 1);
		if (pmtrack_xport_new(fd, NULL, &x) != -EOPNOTSUPP)
			_exit(17);
		unsetenv("PMTRACK_TRANSPORT");
		/* and a whole round trip over a file on the fallback */
		{
			uint8_t *src = malloc(1 << 20), *dst = malloc(1 << 20);
			struct iovec v = { src, 1 << 20 };
			const void *b;
			size_t got = 0;
			ssize_t n;

			for (int i = 0; i < 1 << 20; i++)
				src[i] = (uint8_t)(i * 7);
			if (pmtrack_xport_new(fd, NULL, &x) ||
			    pmtrack_xport_write(x, &v, 1) ||
			    pmtrack_xport_flush(x))
				_exit(13);
			pmtrack_xport_free(x);
			lseek(fd, 0, SEEK_SET);
			if (pmtrack_xport_new(fd, NULL, &x))
				_exit(14);
			while ((n = pmtrack_xport_read(x, &b)) > 0 &&
			       got + (size_t)n <= (1u << 20)) {
				memcpy(dst + got, b, (size_t)n);
				got += (size_t)n;
			}
			if (n || got != 1u << 20 || memcmp(src, dst, got))
				_exit(15);
			pmtrack_xport_free(x);
		}
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "child failed with %d", WEXITSTATUS(st));
}
END_TEST

/* ---- pre-copy --------------------------------------------------------- */

struct prog {
	uint64_t rounds, next, pages, finals;
	uint64_t pre_bytes, pre_elapsed; /* over the pre-copy rounds */
	int fail_at; /* cancel after this round (-1: never) */
	bool poke;   /* write a page in every pre-copy round's callback */
	bool reply;  /* wait for the receiver's answer (return path) */
	bool mid;    /* progress_ms is set: reports inside rounds expected */
	uint64_t partials;   /* reports from inside rounds */
	uint64_t mid_pages;  /* the last one's pages */
	uint64_t pending;    /* the pages of the round being sent */
	bool fail_mid;	     /* cancel from the first report inside a round */
	/* stall: once 1 MiB is written, one write takes a second longer;
	   then the bytes written in the 50 ms after it */
	bool stall;
	uint64_t written, stall_end, after_stall, max_write;
};

struct pcctx {
	struct work w;
	struct prog p;
	struct pmtrack_xport *x;
};

/*
 * With p.poke, every write of the stream before stop() also writes a page:
 * each round's collect finds one, so the estimate never fits.
 */
static int poke_write(void *arg, const struct iovec *iov, int n)
{
	struct pcctx *c = arg;

	if (!atomic_load(&c->w.stops))
		__atomic_fetch_xor(&c->w.mem[0][0], 1, __ATOMIC_RELAXED);
	return pmtrack_xport_write(c->x, iov, n);
}

static uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int stall_write(void *arg, const struct iovec *iov, int n)
{
	struct pcctx *c = arg;
	uint64_t t = t_now_ns(), bytes = 0;

	for (int i = 0; i < n; i++)
		bytes += iov[i].iov_len;
	if (c->p.stall_end && t < c->p.stall_end + 50000000u)
		c->p.after_stall += bytes;
	if (bytes > c->p.max_write)
		c->p.max_write = bytes;
	c->p.written += bytes;
	if (!c->p.stall_end && c->p.written >= (1u << 20)) {
		struct timespec ts = { 1, 0 };

		nanosleep(&ts, NULL);
		c->p.stall_end = t_now_ns();
	}
	return pmtrack_xport_write(c->x, iov, n);
}

static int pc_stop(void *arg)
{
	return work_stop(&((struct pcctx *)arg)->w);
}

static void pc_resume(void *arg)
{
	work_resume(&((struct pcctx *)arg)->w);
}

/*
 * A report from inside a round (progress_ms): the round's pages so far and
 * those still to send add up to the round's, and nothing was collected.
 */
static void pc_partial(struct pcctx *c, const struct pmtrack_precopy_round *r)
{
	t_check(c->p.mid, "a report inside a round without progress_ms");
	t_check(!r->final, "a report inside the final round");
	t_check(r->round == c->p.next, "partial round %llu, expected %llu",
		(unsigned long long)r->round, (unsigned long long)c->p.next);
	t_check(r->pages >= c->p.mid_pages, "partial pages went back");
	t_check(r->pages + r->remaining_pages == c->p.pending,
		"partial: %llu sent + %llu remaining != %llu",
		(unsigned long long)r->pages,
		(unsigned long long)r->remaining_pages,
		(unsigned long long)c->p.pending);
	t_check(r->remaining_pages || !r->remaining_bytes,
		"partial: bytes remain with no pages");
	t_check(!r->dirty_pages && !r->collect_ns, "partial: collected");
	t_check(r->zero_pages <= r->pages, "partial: zero pages > pages");
	c->p.partials++;
	c->p.mid_pages = r->pages;
}

/* remaining_* after a complete round: its dirty pages, at the estimate's
   bytes per page */
static void pc_remaining(struct pcctx *c, const struct pmtrack_precopy_round *r)
{
	uint64_t data = r->pages - r->zero_pages;
	double per = 0, want;

	t_check(!r->partial, "a complete round marked partial");
	if (r->final) {
		t_check(!r->remaining_pages && !r->remaining_bytes,
			"the final round leaves pages");
		return;
	}
	t_check(r->remaining_pages == r->dirty_pages,
		"remaining %llu != dirty %llu",
		(unsigned long long)r->remaining_pages,
		(unsigned long long)r->dirty_pages);
	if (r->round && r->pages)
		per = (double)r->bytes / (double)r->pages;
	else if (!r->round && data)
		per = (double)r->bytes / (double)data;
	else if (!r->round)
		per = (double)sysconf(_SC_PAGESIZE);
	if (!r->dirty_pages)
		t_check(!r->remaining_bytes, "bytes remain, no pages");
	else if (per > 0) {
		want = (double)r->dirty_pages * per;
		t_check(r->remaining_bytes + 1 >= want &&
				(double)r->remaining_bytes <= want + 1,
			"remaining bytes %llu, want %.1f",
			(unsigned long long)r->remaining_bytes, want);
	}
	c->p.pending = r->dirty_pages;
	c->p.mid_pages = 0;
}

static int pc_progress(void *arg, const struct pmtrack_precopy_round *r)
{
	struct pcctx *c = arg;

	if (r->partial) {
		pc_partial(c, r);
		return c->p.fail_mid ? -ECANCELED : 0;
	}
	pc_remaining(c, r);
	t_check(r->round == c->p.next, "round %llu, expected %llu",
		(unsigned long long)r->round, (unsigned long long)c->p.next);
	t_check(r->sz == sizeof(*r), "round stats size");
	c->p.next++;
	c->p.rounds++;
	c->p.pages += r->pages;
	c->p.finals += (uint64_t)r->final;
	if (!r->final) {
		c->p.pre_bytes += r->bytes;
		c->p.pre_elapsed = r->elapsed_ns;
	}
	t_check(r->zero_pages <= r->pages, "zero pages > pages");
	t_check(r->total_pages == c->w.pages[0] + c->w.pages[1], "total");
	if (r->round == 0)
		t_check(r->pages == r->total_pages, "round 0 sends every page");
	if (c->p.fail_at >= 0 && r->round == (uint64_t)c->p.fail_at)
		return -ECANCELED;
	return 0;
}

static const struct pmtrack_precopy_ops pc_ops = {
	.stop = pc_stop,
	.resume = pc_resume,
	.progress = pc_progress,
};

static int poke_flush(void *arg)
{
	return pmtrack_xport_flush(((struct pcctx *)arg)->x);
}

/* Migrate a workload over a socket pair to a receiver thread. */
static int migrate(struct pcctx *c, const struct pmtrack_precopy_opts *base,
		   enum pmtrack_xport_kind kind,
		   struct pmtrack_precopy_stats *st, struct rxjob *j)
{
	struct pmtrack_precopy_opts o = *base;
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kind);
	struct pmtrack_mem_region r[2];
	struct pmtrack_xport *x;
	int fds[2], err;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	rx_start(j, fds[0], kind);
	ck_assert_int_eq(pmtrack_xport_new(fds[1], &xo, &x), 0);
	o.write = pmtrack_xport_write;
	o.write_arg = x;
	o.flush = (int (*)(void *))pmtrack_xport_flush;
	if (c->p.poke || c->p.stall) {
		c->x = x;
		o.write = c->p.poke ? poke_write : stall_write;
		o.write_arg = c;
		o.flush = poke_flush;
	}
	o.ops = &pc_ops;
	o.arg = c;
	if (c->p.reply)
		o.reply = x;
	work_regions(&c->w, r);
	st->sz = sizeof(*st);
	err = pmtrack_precopy(&o, r, 2, st);
	pmtrack_xport_free(x);
	close(fds[1]);
	pthread_join(j->th, NULL);
	return err;
}

/* With writers running, many seeds: the receiver ends byte-identical. */
START_TEST(precopy_writers)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o);
	struct pmtrack_precopy_stats st;
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	struct pcctx c = { .p.fail_at = -1, .p.reply = _i % 2 };
	struct rxjob j;
	int err;

	o.level = (_i % 3 == 1) ? 1 : 0;
	o.enc_flags = (_i % 3 == 2) ? PMTRACK_ENC_ADAPTIVE : 0;
	o.downtime_limit_ns = (_i % 2) ? 2000000 : 50000000;
	o.max_rounds = 1 + (uint32_t)(_i % 5);
	work_start(&c.w, 2048 + 97 * (size_t)_i, 300, 1 + _i % 3,
		   5000 + (uint64_t)_i, 64);
	err = migrate(&c, &o, kinds[_i % NKINDS], &st, &j);
	ck_assert_msg(err == 0, "precopy: %s", strerror(-err));
	ck_assert_msg(j.err == 0, "rx: %s (%s)", strerror(-j.err),
		      pmtrack_rx_error(j.rx, NULL));
	/* paused by stop(), never resumed: the memory is the final image */
	ck_assert_int_eq(atomic_load(&c.w.stops), 1);
	ck_assert_int_eq(atomic_load(&c.w.resumes), 0);
	expect_same(j.rx, &c.w);
	ck_assert_int_eq(pmtrack_rx_get_stats(j.rx, &rs), 0);
	ck_assert_int_eq(rs.state, PMTRACK_RX_COMPLETE);
	ck_assert_int_eq(rs.digest_verified, 1);
	/* a connection: the receiver answers; the sender read it if asked */
	ck_assert_int_eq(st.acked, c.p.reply);
	if (c.p.reply)
		ck_assert_int_eq(rs.reply, PMTRACK_RX_REPLY_SENT);
	ck_assert_uint_eq(rs.rounds, st.rounds);
	ck_assert_uint_eq(rs.pages + rs.zero_pages, st.pages);
	ck_assert_uint_eq(rs.bytes, st.bytes);
	ck_assert_uint_eq(c.p.rounds, st.rounds);
	ck_assert_uint_eq(c.p.finals, 1);
	ck_assert_uint_eq(c.p.pages, st.pages);
	ck_assert_uint_le(st.rounds, (uint64_t)o.max_rounds + 2);
	ck_assert_uint_gt(st.downtime_ns, 0);
	ck_assert_uint_le(st.downtime_ns, st.total_ns);
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/* An estimate that never fits: max_rounds, then stop anyway or fail. */
START_TEST(precopy_max_rounds)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .downtime_limit_ns = 1,
		     .max_rounds = 3,
		     .flags = _i ? PMTRACK_PRECOPY_NO_FORCE : 0);
	struct pmtrack_precopy_stats st;
	struct pcctx c = { .p.fail_at = -1, .p.poke = true };
	struct rxjob j;
	int err;

	work_start(&c.w, 512, 64, 1, 42, 64);
	err = migrate(&c, &o, PMTRACK_XPORT_SYSCALL, &st, &j);
	if (_i) {
		ck_assert_int_eq(err, -ETIMEDOUT);
		ck_assert_int_eq(atomic_load(&c.w.stops), 0);
		ck_assert_int_eq(j.err, -ENODATA); /* no END */
		ck_assert_uint_eq(st.rounds, 4);
	} else {
		ck_assert_int_eq(err, 0);
		ck_assert_int_eq(j.err, 0);
		ck_assert_uint_eq(st.rounds, 5); /* 0..3, then final */
		ck_assert_int_eq(st.converged, 0);
		expect_same(j.rx, &c.w);
	}
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/*
 * The digest alone takes longer than the limit: no round can help, so the
 * first round with nothing left to send stops the workload (or fails).
 */
START_TEST(precopy_digest_over_limit)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .downtime_limit_ns = 1000,
		     .flags = PMTRACK_PRECOPY_FULL_DIGEST |
			      (_i ? PMTRACK_PRECOPY_NO_FORCE : 0));
	struct pmtrack_precopy_stats st;
	struct pcctx c = { .p.fail_at = -1 };
	struct rxjob j;
	int err;

	work_start(&c.w, 2048, 64, 0, 47, 64); /* no writers */
	err = migrate(&c, &o, PMTRACK_XPORT_SYSCALL, &st, &j);
	ck_assert_uint_gt(st.digest_ns, 1000);
	if (_i) {
		ck_assert_int_eq(err, -ETIMEDOUT);
		ck_assert_uint_eq(st.rounds, 1);
		ck_assert_int_eq(atomic_load(&c.w.stops), 0);
	} else {
		ck_assert_int_eq(err, 0);
		ck_assert_int_eq(j.err, 0);
		ck_assert_uint_eq(st.rounds, 2);
		ck_assert_int_eq(st.converged, 0);
		expect_same(j.rx, &c.w);
	}
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/* switchover_bandwidth replaces the measured one in every estimate. */
static int check_bw(void *arg, const struct pmtrack_precopy_round *r)
{
	(void)arg;
	t_check(r->final || r->bandwidth == 1ull << 50,
		"round %llu estimated with %llu B/s",
		(unsigned long long)r->round, (unsigned long long)r->bandwidth);
	return 0;
}

START_TEST(precopy_switchover_bandwidth)
{
	static const struct pmtrack_precopy_ops ops = { .stop = pc_stop,
							.resume = pc_resume,
							.progress = check_bw };
	struct pcctx c = { .p.fail_at = -1, .p.poke = true };
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .downtime_limit_ns = 1000,
		     .switchover_bandwidth = 1ull << 50,
		     .flags = PMTRACK_PRECOPY_NO_DIGEST, .max_rounds = 20);
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = PMTRACK_XPORT_SYSCALL);
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	struct pmtrack_mem_region r[2];
	struct rxjob j;
	int fds[2];

	/* every round leaves pages dirty (poke), and only a bandwidth of
	   2^50 B/s makes them fit 1 us: converged right after round 0 */
	work_start(&c.w, 1024, 16, 1, 48, 64);
	work_regions(&c.w, r);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	rx_start(&j, fds[0], PMTRACK_XPORT_SYSCALL);
	ck_assert_int_eq(pmtrack_xport_new(fds[1], &xo, &c.x), 0);
	o.write = poke_write;
	o.write_arg = &c;
	o.flush = poke_flush;
	o.ops = &ops;
	o.arg = &c;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 2, &st), 0);
	pmtrack_xport_free(c.x);
	close(fds[1]);
	pthread_join(j.th, NULL);
	ck_assert_int_eq(j.err, 0);
	ck_assert_int_eq(st.converged, 1);
	ck_assert_uint_eq(st.rounds, 2);
	ck_assert_uint_le(st.expected_downtime_ns, 1000);
	ck_assert_uint_eq(st.digest_ns, 0);
	expect_same(j.rx, &c.w);
	/* NO_DIGEST: complete, with nothing to verify */
	ck_assert_int_eq(pmtrack_rx_get_stats(j.rx, &rs), 0);
	ck_assert_int_eq(rs.state, PMTRACK_RX_COMPLETE);
	ck_assert_int_eq(rs.digest_verified, 0);
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/*
 * The progress callback cancels; the workload was never stopped.  Every
 * write of the stream dirties a page (poke), so round 0 never leaves the
 * memory clean: with nothing dirty the engine would stop at once (the digest
 * alone is over 1 ns), whatever the writer thread managed to do.  Round 0
 * holds over 3 MiB of data pages, more than the transport's 1 MiB buffer,
 * so the receiver has pages when the stream breaks off (PARTIAL), however
 * many zero pages the writer filled in.
 */
START_TEST(precopy_cancel)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .downtime_limit_ns = 1,
		     .max_rounds = 10);
	struct pmtrack_precopy_stats st;
	struct pcctx c = { .p.fail_at = 1, .p.poke = true };
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	struct rxjob j;

	work_start(&c.w, 1024, 16, 1, 43, 64);
	ck_assert_int_eq(migrate(&c, &o, PMTRACK_XPORT_URING, &st, &j),
			 -ECANCELED);
	ck_assert_int_eq(atomic_load(&c.w.stops), 0);
	ck_assert_uint_eq(c.p.rounds, 2);
	ck_assert_int_eq(j.err, -ENODATA);
	ck_assert_int_eq(pmtrack_rx_get_stats(j.rx, &rs), 0);
	ck_assert_int_eq(rs.state, PMTRACK_RX_PARTIAL);
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/* A transport failing during stop-and-copy: resume() runs, error returned. */
struct failing {
	struct pcctx *c;
	int fd;
};

static int fail_after_stop(void *arg, const struct iovec *iov, int n)
{
	struct failing *f = arg;

	if (atomic_load(&f->c->w.stops))
		return -EIO;
	return pmtrack_write_fd((void *)(intptr_t)f->fd, iov, n);
}

START_TEST(precopy_resume_on_failure)
{
	struct pcctx c = { .p.fail_at = -1 };
	struct failing f = { &c, open("/dev/null", O_WRONLY | O_CLOEXEC) };
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = fail_after_stop,
		     .write_arg = &f, .ops = &pc_ops, .arg = &c);
	struct pmtrack_mem_region r[2];

	work_start(&c.w, 256, 16, 2, 44, 64);
	work_regions(&c.w, r);
	ck_assert_int_eq(pmtrack_precopy(&o, r, 2, NULL), -EIO);
	ck_assert_int_eq(atomic_load(&c.w.stops), 1);
	ck_assert_int_eq(atomic_load(&c.w.resumes), 1);
	ck_assert_int_eq(atomic_load(&c.w.pause), 0);
	close(f.fd);
	work_end(&c.w);
}
END_TEST

/* The receiver closes mid-stream: the sender gets -EPIPE/-ECONNRESET. */
struct closer {
	int fd;
	size_t after;
};

static void *close_after(void *arg)
{
	struct closer *cl = arg;
	char buf[4096];
	size_t got = 0;
	ssize_t n;

	while (got < cl->after && (n = read(cl->fd, buf, sizeof(buf))) > 0)
		got += (size_t)n;
	close(cl->fd);
	return NULL;
}

START_TEST(precopy_peer_close)
{
	struct pcctx c = { .p.fail_at = -1 };
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kinds[_i]);
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .ops = &pc_ops, .arg = &c);
	struct pmtrack_mem_region r[2];
	struct pmtrack_xport *x;
	struct closer cl;
	pthread_t th;
	int fds[2], err;

	work_start(&c.w, 4096, 16, 1, 45, 64);
	work_regions(&c.w, r);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	cl.fd = fds[0];
	cl.after = 1u << 20;
	ck_assert_int_eq(pthread_create(&th, NULL, close_after, &cl), 0);
	ck_assert_int_eq(pmtrack_xport_new(fds[1], &xo, &x), 0);
	o.write = pmtrack_xport_write;
	o.write_arg = x;
	o.flush = (int (*)(void *))pmtrack_xport_flush;
	err = pmtrack_precopy(&o, r, 2, NULL);
	ck_assert_msg(err == -EPIPE || err == -ECONNRESET, "got %s",
		      strerror(-err));
	pthread_join(th, NULL);
	ck_assert_int_eq(atomic_load(&c.w.stops), 0);
	pmtrack_xport_free(x);
	close(fds[1]);
	work_end(&c.w);
}
END_TEST

/* The bandwidth cap holds: rounds never run faster than it allows. */
/*
 * progress_ms: reports inside the capped, long round 0 too, each with the
 * pages so far; without it (the same migration), none.
 */
START_TEST(precopy_progress_ms)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .max_bandwidth = 40u << 20,
		     .downtime_limit_ns = 1000000000,
		     .progress_ms = (uint32_t)(_i ? 10 : 0));
	struct pmtrack_precopy_stats st;
	struct pcctx c = { .p.fail_at = -1, .p.mid = _i };
	struct rxjob j;

	work_start(&c.w, 2048, 16, 1, 46, 64); /* 8 MiB: at least 0.2 s */
	c.p.pending = c.w.pages[0] + c.w.pages[1]; /* round 0's */
	ck_assert_int_eq(migrate(&c, &o, PMTRACK_XPORT_SYSCALL, &st, &j), 0);
	ck_assert_int_eq(j.err, 0);
	ck_assert_uint_eq(c.p.rounds, st.rounds);
	if (_i)
		ck_assert_uint_ge(c.p.partials, 3);
	else
		ck_assert_uint_eq(c.p.partials, 0);
	expect_same(j.rx, &c.w);
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/*
 * The cap does not make up for a stall with a burst: after a write that
 * took a second, the next 50 ms carry at most the cap's 100 ms of credit
 * and its 50 ms, and one write; a cap that counted from the start would
 * let the second's 40 MiB go at once.
 */
START_TEST(precopy_cap_no_burst)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .max_bandwidth = 40u << 20,
		     .downtime_limit_ns = 1000000000);
	struct pmtrack_precopy_stats st;
	struct pcctx c = { .p.fail_at = -1, .p.stall = true };
	uint64_t bound;
	struct rxjob j;

	work_start(&c.w, 16384, 16, 1, 48, 64); /* 64 MiB */
	ck_assert_int_eq(migrate(&c, &o, PMTRACK_XPORT_SYSCALL, &st, &j), 0);
	ck_assert_int_eq(j.err, 0);
	ck_assert_uint_ne(c.p.stall_end, 0);
	bound = (uint64_t)(0.15 * (40u << 20)) + c.p.max_write;
	ck_assert_msg(c.p.after_stall <= bound,
		      "%llu bytes in the 50 ms after the stall, cap allows %llu",
		      (unsigned long long)c.p.after_stall,
		      (unsigned long long)bound);
	expect_same(j.rx, &c.w);
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/*
 * A report from inside a round that returns an error cancels the migration
 * with it, in that round: the workload was never stopped, and the receiver
 * is left with a stream that did not end.
 */
START_TEST(precopy_progress_ms_cancel)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .max_bandwidth = 40u << 20,
		     .downtime_limit_ns = 1000000000, .progress_ms = 10);
	struct pmtrack_precopy_stats st;
	struct pcctx c = { .p.fail_at = -1, .p.mid = true, .p.fail_mid = true };
	struct rxjob j;

	work_start(&c.w, 2048, 16, 1, 47, 64); /* 8 MiB: at least 0.2 s */
	c.p.pending = c.w.pages[0] + c.w.pages[1];
	ck_assert_int_eq(migrate(&c, &o, PMTRACK_XPORT_SYSCALL, &st, &j),
			 -ECANCELED);
	ck_assert_uint_eq(c.p.partials, 1);
	ck_assert_uint_eq(c.p.rounds, 0); /* round 0 never completed */
	ck_assert_int_eq(atomic_load(&c.w.stops), 0);
	ck_assert_int_ne(j.err, 0);
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

START_TEST(precopy_bandwidth_cap)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .max_bandwidth = 40u << 20,
		     .downtime_limit_ns = 1000000000);
	struct pmtrack_precopy_stats st;
	struct pcctx c = { .p.fail_at = -1 };
	struct rxjob j;

	work_start(&c.w, 2048, 16, 1, 46, 64); /* 8 MiB: at least 0.2 s */
	ck_assert_int_eq(migrate(&c, &o, PMTRACK_XPORT_SYSCALL, &st, &j), 0);
	ck_assert_int_eq(j.err, 0);
	/* after each write the limiter sleeps until bytes / cap have
	   passed, and nanosleep never returns early */
	ck_assert_uint_gt(c.p.pre_bytes, 4u << 20);
	ck_assert_uint_ge(
		c.p.pre_elapsed + 1000,
		(uint64_t)((double)c.p.pre_bytes * 1e9 / (40u << 20)));
	ck_assert_uint_le(st.bandwidth, (40u << 20) + (40u << 18));
	expect_same(j.rx, &c.w);
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/*
 * Memory that is all zero, or that nothing writes, converges at once: round
 * 0 sends only bits, the estimate has nothing dirty to send, and no number
 * stands in for a bandwidth nobody measured.
 */
struct zq {
	atomic_int stops;
	uint64_t expected[64], bw[64];
	unsigned int n;
	struct work *w; /* the writers to pause, if any */
};

static int zq_stop(void *arg)
{
	struct zq *q = arg;

	atomic_fetch_add(&q->stops, 1);
	/* nothing may write the regions once stop() returns */
	return q->w ? work_stop(q->w) : 0;
}

static int zq_progress(void *arg, const struct pmtrack_precopy_round *r)
{
	struct zq *q = arg;

	if (!r->final && q->n < 64) {
		q->expected[q->n] = r->expected_downtime_ns;
		q->bw[q->n++] = r->bandwidth;
	}
	return 0;
}

START_TEST(precopy_converges_zero)
{
	static const struct pmtrack_precopy_ops ops = {
		.stop = zq_stop,
		.progress = zq_progress,
	};
	/* 0: 1 GiB never touched, no digest; 1: 16 MiB never touched, with
	   the digest; 2: 64 KiB of data that a writer keeps dirtying */
	size_t pages = _i == 0 ? (1u << 30) / ps : _i == 1 ? 4096 : 16;
	struct zq q = { 0 };
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = pmtrack_write_fd,
		     .ops = &ops, .arg = &q,
		     .flags = _i == 0 ? PMTRACK_PRECOPY_NO_DIGEST : 0u);
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct pmtrack_mem_region r;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct work w = { 0 };
	char *m;

	ck_assert_int_ge(fd, 0);
	o.write_arg = (void *)(intptr_t)fd;
	if (_i == 2) {
		work_start(&w, pages, 1, 1, 49, 16);
		q.w = &w;
		m = w.mem[0];
	} else {
		m = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		ck_assert_ptr_ne(m, MAP_FAILED);
	}
	r = (struct pmtrack_mem_region){ m, pages * ps, 1, NULL };
	ck_assert_int_eq(pmtrack_precopy(&o, &r, 1, &st), 0);
	ck_assert_int_eq(atomic_load(&q.stops), 1);
	ck_assert_int_eq(st.converged, 1);
	ck_assert_uint_lt(st.expected_downtime_ns, o.downtime_limit_ns
						      ? o.downtime_limit_ns
						      : 300000000u);
	for (unsigned int i = 0; i < q.n; i++) {
		ck_assert_uint_ne(q.expected[i], PMTRACK_PRECOPY_UNKNOWN);
		ck_assert_uint_gt(q.bw[i], 0);
	}
	if (_i < 2) {
		/* round 0, then the stop-and-copy round with nothing */
		ck_assert_uint_eq(st.rounds, 2);
		ck_assert_uint_eq(st.zero_pages, pages);
		ck_assert_uint_eq(st.final_pages, 0);
		ck_assert_uint_eq(st.expected_downtime_ns, st.digest_ns);
		munmap(m, pages * ps);
	} else {
		/* a writer dirties most of the 16 pages every round: a few
		   pages fit any bandwidth worth the name */
		ck_assert_uint_le(st.rounds, 4);
		work_resume(&w);
		work_end(&w);
	}
	close(fd);
}
END_TEST

/*
 * A write the tracker cannot see: the region is one mapping of a memfd,
 * and stop() writes page MW_PAGE through another mapping of it, after the
 * last collect could have found it.  So the final round leaves it out, as
 * a tracker that dropped a reported page would.  _i: 0 the default (the
 * audit after the switchover catches it: -EBADMSG, the page named); 1
 * with the audit off (the destination acks, and holds the old page: the
 * audit is what caught it); 2 the memory digest instead (the destination
 * refuses the stream); 3 no such write (stop() writes through the tracked
 * mapping), but one byte of the final round's batch flipped on the wire
 * (the destination refuses it).
 */
#define MW_PAGES 64
#define MW_PAGE 37

struct mwctx {
	char *mem, *alias;
	int mode, stops, resumes, switchovers, audited_before;
	bool stopped;
	struct pmtrack_xport *x;
	uint64_t batches_after_stop;
};

static int mw_stop(void *arg)
{
	struct mwctx *c = arg;

	c->stops++;
	c->stopped = true;
	/* mode 3: through the tracked mapping, for the final round to send */
	(c->mode == 3 ? c->mem : c->alias)[MW_PAGE * ps + 5] ^= 0x5a;
	return 0;
}

static void mw_resume(void *arg)
{
	((struct mwctx *)arg)->resumes++;
}

static int mw_switchover(void *arg)
{
	struct mwctx *c = arg;

	c->switchovers++;
	return 0;
}

/* mode 3: the first BATCH after stop() gets a byte of its payload flipped */
static int mw_write(void *arg, const struct iovec *iov, int n)
{
	struct mwctx *c = arg;

	if (c->mode == 3 && c->stopped && n >= 3 &&
	    iov[0].iov_len == PMTRACK_FRAME_LEN &&
	    ((const uint8_t *)iov[0].iov_base)[0] == PMTRACK_REC_BATCH &&
	    !c->batches_after_stop++) {
		uint8_t *p = iov[2].iov_base;
		int r;

		p[7] ^= 1;
		r = pmtrack_xport_write(c->x, iov, n);
		p[7] ^= 1;
		return r;
	}
	return pmtrack_xport_write(c->x, iov, n);
}

static int mw_flush(void *arg)
{
	return pmtrack_xport_flush(((struct mwctx *)arg)->x);
}

START_TEST(precopy_missed_write)
{
	static const unsigned int flags[] = {
		0,
		PMTRACK_PRECOPY_NO_AUDIT,
		PMTRACK_PRECOPY_FULL_DIGEST | PMTRACK_PRECOPY_NO_AUDIT,
		0,
	};
	static const struct pmtrack_precopy_ops ops = {
		.stop = mw_stop,
		.resume = mw_resume,
	};
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = mw_write,
		     .ops = &ops, .flags = flags[_i],
		     .switchover = mw_switchover,
		     /* a batch per page: the flipped one is the final round's */
		     .batch_pages = 1);
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct mwctx c = { .mode = _i };
	size_t len = MW_PAGES * ps;
	struct pmtrack_rx_region rg;
	struct pmtrack_mem_region r;
	struct rxjob j;
	int fd = memfd_create("missed", MFD_CLOEXEC), fds[2], err;
	char *mem;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	c.alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	c.mem = mem;
	ck_assert_ptr_ne(mem, MAP_FAILED);
	ck_assert_ptr_ne(c.alias, MAP_FAILED);
	for (size_t i = 0; i < len; i += 64)
		mem[i] = (char)(i / 64 + 1);
	r = (struct pmtrack_mem_region){ mem, len, 9, NULL };
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	rx_start(&j, fds[0], PMTRACK_XPORT_SYSCALL);
	ck_assert_int_eq(pmtrack_xport_new(fds[1], NULL, &c.x), 0);
	o.write_arg = &c;
	o.flush = mw_flush;
	o.arg = &c;
	o.reply = c.x;
	err = pmtrack_precopy(&o, &r, 1, &st);
	pmtrack_xport_free(c.x);
	close(fds[1]);
	pthread_join(j.th, NULL);

	ck_assert_int_eq(c.stops, 1);
	switch (_i) {
	case 0:
		/* acked, let run, then caught on the source */
		ck_assert_int_eq(err, -EBADMSG);
		ck_assert_int_eq(st.acked, 1);
		ck_assert_int_eq(j.err, 0);
		ck_assert_int_eq(c.switchovers, 1);
		ck_assert_int_eq(c.resumes, 1);
		ck_assert_int_eq(st.audited, 0);
		ck_assert_uint_eq(st.audit_differ, 1);
		ck_assert_uint_eq(st.audit_first_addr,
				  (uintptr_t)mem + MW_PAGE * ps);
		ck_assert_uint_gt(st.audit_ns, 0);
		break;
	case 1:
		/* nothing looks at the source: "success", and wrong */
		ck_assert_int_eq(err, 0);
		ck_assert_int_eq(j.err, 0);
		ck_assert_int_eq(c.switchovers, 1);
		ck_assert_int_eq(c.resumes, 0);
		ck_assert_int_eq(st.audited, 0);
		ck_assert_int_eq(pmtrack_rx_region(j.rx, 0, &rg), 0);
		ck_assert_int_ne(memcmp(rg.mem, mem, len), 0);
		ck_assert_int_eq(memcmp(rg.mem, mem, MW_PAGE * ps), 0);
		break;
	case 2:
		ck_assert_int_eq(err, -EREMOTEIO);
		ck_assert_int_eq(j.err, -EBADMSG);
		ck_assert_int_eq(st.remote_reason, PMTRACK_SERR_DIGEST);
		ck_assert_int_eq(c.switchovers, 0);
		ck_assert_int_eq(c.resumes, 1);
		break;
	default:
		ck_assert_int_eq(err, -EREMOTEIO);
		ck_assert_int_eq(j.err, -EBADMSG);
		ck_assert_int_eq(st.remote_reason, PMTRACK_SERR_CHECKSUM);
		ck_assert_uint_ge(c.batches_after_stop, 1);
		ck_assert_int_eq(c.switchovers, 0);
		ck_assert_int_eq(c.resumes, 1);
		break;
	}
	pmtrack_rx_free(j.rx);
	munmap(mem, len);
	munmap(c.alias, len);
	close(fd);
}
END_TEST

/* The audit passes for untouched memory, and switchover()'s error fails. */
static int sw_fail(void *arg)
{
	(void)arg;
	return -ECANCELED;
}

START_TEST(precopy_audit_clean)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .switchover = _i ? sw_fail : NULL);
	struct pmtrack_precopy_stats st;
	struct pcctx c = { .p.fail_at = -1, .p.reply = true };
	struct rxjob j;
	int err;

	work_start(&c.w, 512, 64, 0, 91, 64); /* no writers */
	err = migrate(&c, &o, PMTRACK_XPORT_SYSCALL, &st, &j);
	ck_assert_int_eq(st.acked, 1);
	ck_assert_uint_eq(st.digest_ns, 0);
	if (_i) {
		ck_assert_int_eq(err, -ECANCELED);
		ck_assert_int_eq(st.audited, 0);
		ck_assert_int_eq(atomic_load(&c.w.resumes), 1);
	} else {
		ck_assert_int_eq(err, 0);
		ck_assert_int_eq(st.audited, 1);
		ck_assert_uint_eq(st.audit_differ, 0);
		expect_same(j.rx, &c.w);
	}
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/* ---- channels ------------------------------------------------------------ */

#define CH_MAX 5

/* a receiver of a stream over n channels (fds[i] of each socket pair) */
struct chjob {
	int fd[CH_MAX];
	size_t n, nread; /* channels the stream has, channels read */
	bool swap;	 /* read channels 1 and 2 the wrong way round */
	enum pmtrack_xport_kind kind;
	struct pmtrack_rx *rx;
	int err;
	pthread_t th;
};

static void *ch_thread(void *arg)
{
	struct chjob *j = arg;
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = j->kind);
	struct pmtrack_xport *x[CH_MAX] = { 0 }, *t;

	for (size_t i = 0; i < j->n; i++)
		ck_assert_int_eq(pmtrack_xport_new(j->fd[i], &xo, &x[i]), 0);
	if (j->swap) {
		t = x[1];
		x[1] = x[2];
		x[2] = t;
	}
	j->err = j->nread == 1 ? pmtrack_rx_apply(j->rx, x[0])
			       : pmtrack_rx_apply_channels(j->rx, x, j->nread);
	for (size_t i = 0; i < j->n; i++) {
		pmtrack_xport_free(x[i]);
		close(j->fd[i]);
	}
	return NULL;
}

static int ch_flush(void *arg)
{
	return pmtrack_xport_flush(arg);
}

/*
 * Pre-copy with writers over 2, 3 or 5 channels: the destination ends
 * byte-identical, its state verified, the source audited, and every
 * channel carried batches.  _i / 3 picks the transport kind.
 */
START_TEST(precopy_channels)
{
	static const size_t nch[] = { 2, 3, 5 };
	size_t n = nch[_i % 3];
	enum pmtrack_xport_kind kind = kinds[_i / 3 % NKINDS];
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kind);
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .ops = &pc_ops,
		     .batch_pages = 16, .workers = 2);
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct pmtrack_xport_stats xs = { .sz = sizeof(xs) };
	struct pmtrack_channel ch[CH_MAX - 1];
	struct pmtrack_xport *x[CH_MAX];
	struct pmtrack_mem_region r[2];
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	struct pcctx c = { .p.fail_at = -1 };
	struct chjob j = { .n = n, .nread = n, .kind = kind };
	int sp[2];

	work_start(&c.w, 1500, 300, 2, 40 + (uint64_t)_i, 4);
	work_regions(&c.w, r);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
		j.fd[i] = sp[0];
		ck_assert_int_eq(pmtrack_xport_new(sp[1], &xo, &x[i]), 0);
		if (i)
			ch[i - 1] = (struct pmtrack_channel){
				pmtrack_xport_write, x[i], ch_flush };
	}
	ck_assert_int_eq(pmtrack_rx_new(NULL, &j.rx), 0);
	ck_assert_int_eq(pthread_create(&j.th, NULL, ch_thread, &j), 0);
	o.write = pmtrack_xport_write;
	o.write_arg = x[0];
	o.flush = ch_flush;
	o.arg = &c;
	o.reply = x[0];
	o.channels = (uint32_t)n;
	o.channel = ch;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 2, &st), 0);
	ck_assert_int_eq(pthread_join(j.th, NULL), 0);
	ck_assert_int_eq(j.err, 0);
	ck_assert_int_eq(st.acked, 1);
	ck_assert_int_eq(st.audited, 1);
	ck_assert_int_eq(pmtrack_rx_get_stats(j.rx, &rs), 0);
	ck_assert_int_eq(rs.state_verified, 1);
	ck_assert_uint_eq(rs.bytes, st.bytes);
	expect_same(j.rx, &c.w);
	/* round 0 alone has 112 batches: every channel carried some */
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(pmtrack_xport_get_stats(x[i], &xs), 0);
		ck_assert_uint_gt(xs.bytes, 16 * ps);
		pmtrack_xport_free(x[i]);
	}
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/*
 * The receiver reads the channels wrongly: two swapped, one too few, or a
 * one-channel receiver.  It refuses the stream (mismatch) before writing a
 * page, says why, and the source hears it (-EREMOTEIO) and resumes.
 */
START_TEST(precopy_channels_mismatch)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .ops = &pc_ops,
		     .batch_pages = 16);
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct pmtrack_channel ch[2];
	struct pmtrack_xport *x[3];
	struct pmtrack_mem_region r[2];
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	struct pcctx c = { .p.fail_at = -1 };
	struct chjob j = { .n = 3, .nread = _i == 1 ? 2 : _i == 2 ? 1 : 3,
			   .swap = _i == 0, .kind = PMTRACK_XPORT_SYSCALL };
	int sp[2], reason, err;
	const char *msg;

	work_start(&c.w, 256, 64, 0, 7, 1);
	work_regions(&c.w, r);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
		j.fd[i] = sp[0];
		ck_assert_int_eq(pmtrack_xport_new(sp[1], NULL, &x[i]), 0);
		if (i)
			ch[i - 1] = (struct pmtrack_channel){
				pmtrack_xport_write, x[i], ch_flush };
	}
	ck_assert_int_eq(pmtrack_rx_new(NULL, &j.rx), 0);
	ck_assert_int_eq(pthread_create(&j.th, NULL, ch_thread, &j), 0);
	o.write = pmtrack_xport_write;
	o.write_arg = x[0];
	o.flush = ch_flush;
	o.arg = &c;
	o.reply = x[0];
	o.channels = 3;
	o.channel = ch;
	err = pmtrack_precopy(&o, r, 2, &st);
	/* the receiver answers and goes: the source hears the answer, or
	   finds the connection closed while it still writes */
	ck_assert_msg(err == -EREMOTEIO || err == -EPIPE ||
			      err == -ECONNRESET,
		      "precopy: %s", strerror(-err));
	ck_assert_int_eq(pthread_join(j.th, NULL), 0);
	ck_assert_int_eq(j.err, -EBADMSG);
	msg = pmtrack_rx_error(j.rx, &reason);
	ck_assert_int_eq(reason, PMTRACK_SERR_MISMATCH);
	ck_assert_msg(strstr(msg, "channel"), "message: %s", msg);
	if (err == -EREMOTEIO)
		ck_assert_int_eq(st.remote_reason, PMTRACK_SERR_MISMATCH);
	ck_assert_int_eq(st.acked, 0);
	ck_assert_int_eq(atomic_load(&c.w.resumes), atomic_load(&c.w.stops));
	ck_assert_int_eq(pmtrack_rx_get_stats(j.rx, &rs), 0);
	ck_assert_uint_eq(rs.pages, 0);
	for (size_t i = 0; i < 3; i++)
		pmtrack_xport_free(x[i]);
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

START_TEST(precopy_args)
{
	static const struct pmtrack_precopy_ops nostop = { 0 };
	struct pcctx c = { .p.fail_at = -1 };
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = pmtrack_write_fd,
		     .write_arg = (void *)(intptr_t)1, .ops = &pc_ops,
		     .arg = &c);
	char *m = t_map_anon(4);
	struct pmtrack_mem_region r[2] = { { m, 2 * ps, 1, NULL },
					   { m + 2 * ps, 2 * ps, 1, NULL } };
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };

	ck_assert_int_eq(pmtrack_precopy(NULL, r, 1, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_precopy(&o, r, 0, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_precopy(&o, NULL, 1, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_precopy(&o, r, 2, &st), -EINVAL); /* dup id */
	r[1].id = 2;
	r[1].len = 100;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 2, NULL), -EINVAL);
	r[1].len = 2 * ps;
	r[1].addr = m + 1;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 2, NULL), -EINVAL);
	o.ops = &nostop;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 1, NULL), -EINVAL);
	o.ops = &pc_ops;
	o.flags = 1u << 7;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 1, NULL), -EINVAL);
	/* no verification, and the memory digest: which? */
	o.flags = PMTRACK_PRECOPY_NO_DIGEST | PMTRACK_PRECOPY_FULL_DIGEST;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 1, NULL), -EINVAL);
	o.flags = 0;
	/* channels: more than the most, none given, one without write */
	{
		struct pmtrack_channel ch = { NULL, NULL, NULL };

		o.channels = PMTRACK_CHANNELS_MAX + 1;
		o.channel = &ch;
		ck_assert_int_eq(pmtrack_precopy(&o, r, 1, NULL), -EINVAL);
		o.channels = 2;
		ck_assert_int_eq(pmtrack_precopy(&o, r, 1, NULL), -EINVAL);
		o.channel = NULL;
		ck_assert_int_eq(pmtrack_precopy(&o, r, 1, NULL), -EINVAL);
		o.channels = 0;
	}
	o.write = NULL;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 1, NULL), -EINVAL);
	st.sz = 0;
	ck_assert_int_eq(pmtrack_precopy(&o, r, 1, &st), -EINVAL);
	munmap(m, 4 * ps);
}
END_TEST

/* ---- the return path ---------------------------------------------------- */

/* An answer survives encoding; every prefix asks for more; every flipped
   byte is refused. */
START_TEST(ack_codec)
{
	struct pmtrack_stream_ack a = { .sz = sizeof(a) }, b;
	uint8_t buf[PMTRACK_ACK_MAX], bad[PMTRACK_ACK_MAX];
	int len;

	memcpy(a.stream_id, "0123456789abcdef", 16);
	a.error = EBADMSG;
	a.reason = PMTRACK_SERR_DIGEST;
	a.state = PMTRACK_RX_PARTIAL;
	a.rounds = 3;
	a.pages = 1u << 20;
	a.zero_pages = 7;
	a.bytes = 1ull << 40;
	snprintf(a.message, sizeof(a.message), "offset 12: it does not add up");
	len = pmtrack_ack_encode(&a, buf, sizeof(buf));
	ck_assert_int_gt(len, PMTRACK_STREAM_PREAMBLE_LEN + PMTRACK_FRAME_LEN);
	ck_assert_int_le(len, PMTRACK_ACK_MAX);
	ck_assert_int_eq(pmtrack_ack_encode(&a, buf, (size_t)len - 1),
			 -ENOSPC);
	for (int n = 0; n < len; n++) {
		b.sz = sizeof(b);
		ck_assert_int_eq(pmtrack_ack_decode(buf, (size_t)n, &b), 0);
	}
	memset(&b, 0x55, sizeof(b));
	b.sz = sizeof(b);
	ck_assert_int_eq(pmtrack_ack_decode(buf, (size_t)len + 9, &b), len);
	ck_assert(!memcmp(&a, &b, sizeof(a)));
	for (int i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit++) {
			memcpy(bad, buf, (size_t)len);
			bad[i] ^= (uint8_t)(1u << bit);
			b.sz = sizeof(b);
			t_check(pmtrack_ack_decode(bad, (size_t)len, &b) <= 0,
				"byte %d bit %d flipped: accepted", i, bit);
		}
	/* not an answer at all: refused as soon as it shows */
	b.sz = sizeof(b);
	ck_assert_int_eq(pmtrack_ack_decode("HTTP/1.1 400", 12, &b), -EBADMSG);
	ck_assert_int_eq(pmtrack_ack_decode("H", 1, &b), -EBADMSG);
	/* bad answers are not encoded */
	a.error = -1;
	ck_assert_int_eq(pmtrack_ack_encode(&a, buf, sizeof(buf)), -EINVAL);
	a.error = 0;
	a.state = 3;
	ck_assert_int_eq(pmtrack_ack_encode(&a, buf, sizeof(buf)), -EINVAL);
	a.state = 0;
	memset(a.message, 'x', sizeof(a.message));
	ck_assert_int_eq(pmtrack_ack_encode(&a, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(pmtrack_ack_encode(NULL, buf, sizeof(buf)), -EINVAL);
}
END_TEST

/*
 * A peer that is not a libpmtrack receiver.  It reads the stream with a
 * decoder of its own until END, then: closes without a word (0), answers
 * junk (1), answers for another stream (2), refuses (3), counts other
 * pages (4), or says it applied everything (5).
 */
struct fake_rx {
	int fd, mode;
	bool ended;
	uint8_t id[PMTRACK_STREAM_ID_LEN];
	uint64_t rounds, pages, zero, bytes;
};

static int fake_header(void *arg, struct pmtrack_dec *dec,
		       const struct pmtrack_dec_header *h)
{
	(void)dec;
	memcpy(((struct fake_rx *)arg)->id, h->stream_id, PMTRACK_STREAM_ID_LEN);
	return 0;
}

static int fake_end(void *arg, const struct pmtrack_dec_end *e)
{
	struct fake_rx *f = arg;

	f->ended = true;
	f->rounds = e->rounds;
	f->pages = e->pages;
	f->zero = e->zero_pages;
	return 0;
}

static void *fake_rx_thread(void *arg)
{
	static const struct pmtrack_dec_ops ops = { .header = fake_header,
						    .end = fake_end };
	struct fake_rx *f = arg;
	PMTRACK_OPTS(pmtrack_dec_opts, dopts, .ops = &ops, .arg = f);
	struct pmtrack_stream_ack a = { .sz = sizeof(a) };
	struct pmtrack_dec *dec;
	uint8_t buf[65536];
	ssize_t n;
	int len;

	if (pmtrack_dec_new(&dopts, &dec))
		return NULL;
	while (!f->ended && (n = read(f->fd, buf, sizeof(buf))) > 0) {
		f->bytes += (uint64_t)n;
		if (pmtrack_dec_feed(dec, buf, (size_t)n))
			break;
	}
	pmtrack_dec_free(dec);
	memcpy(a.stream_id, f->id, sizeof(a.stream_id));
	a.state = PMTRACK_RX_COMPLETE;
	a.digest_verified = 1;
	a.rounds = f->rounds;
	a.pages = f->pages;
	a.zero_pages = f->zero;
	a.bytes = f->bytes;
	if (f->mode == 2)
		a.stream_id[3] ^= 1;
	if (f->mode == 3) {
		a.error = EBADMSG;
		a.reason = PMTRACK_SERR_DIGEST;
		a.state = PMTRACK_RX_PARTIAL;
		a.digest_verified = 0;
		snprintf(a.message, sizeof(a.message), "not today");
	}
	if (f->mode == 4)
		a.pages--;
	len = pmtrack_ack_encode(&a, buf, sizeof(buf));
	/* the connection goes on after a yes: the sender must leave the
	   rest where it is (one write: both arrive together) */
	if (f->mode == 5 && len > 0) {
		memcpy(buf + len, "AFTER-THE-ANSWER", 16);
		len += 16;
	}
	if (f->mode == 1)
		len = snprintf((char *)buf, sizeof(buf), "HTTP/1.1 400 Bad\r\n");
	if (f->mode && len > 0 && write(f->fd, buf, (size_t)len) != len)
		f->mode = -1;
	close(f->fd);
	return NULL;
}

START_TEST(precopy_reply_judged)
{
	static const int want[] = { -ENODATA, -EPROTO, -EPROTO,
				    -EREMOTEIO, -EPROTO, 0 };
	struct pcctx c = { .p.fail_at = -1 };
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kinds[_i % NKINDS]);
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .ops = &pc_ops, .arg = &c,
		     .flush = (int (*)(void *))pmtrack_xport_flush);
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct fake_rx f = { .mode = _i / NKINDS };
	struct pmtrack_mem_region r[2];
	struct pmtrack_xport *x;
	pthread_t th;
	int fds[2], err;

	work_start(&c.w, 256, 16, 1, 50 + (uint64_t)_i, 16);
	work_regions(&c.w, r);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	f.fd = fds[0];
	ck_assert_int_eq(pthread_create(&th, NULL, fake_rx_thread, &f), 0);
	ck_assert_int_eq(pmtrack_xport_new(fds[1], &xo, &x), 0);
	o.write = pmtrack_xport_write;
	o.write_arg = x;
	o.reply = x;
	err = pmtrack_precopy(&o, r, 2, &st);
	pthread_join(th, NULL);
	ck_assert_int_ne(f.mode, -1);
	ck_assert_msg(err == want[f.mode], "mode %d: %s", f.mode,
		      strerror(-err));
	/* stopped for the switchover; resumed unless the answer was yes */
	ck_assert_int_eq(atomic_load(&c.w.stops), 1);
	ck_assert_int_eq(atomic_load(&c.w.resumes), err ? 1 : 0);
	ck_assert_int_eq(st.acked, !err);
	if (f.mode == 3) {
		ck_assert_int_eq(st.remote_error, EBADMSG);
		ck_assert_int_eq(st.remote_reason, PMTRACK_SERR_DIGEST);
		ck_assert_str_eq(st.remote_message, "not today");
	} else {
		ck_assert_int_eq(st.remote_error, 0);
	}
	if (f.mode == 5) {
		char after[32];

		ck_assert_int_eq(read(fds[1], after, sizeof(after)), 16);
		ck_assert(!memcmp(after, "AFTER-THE-ANSWER", 16));
	}
	pmtrack_xport_free(x);
	close(fds[1]);
	if (!err)
		work_resume(&c.w);
	work_end(&c.w);
}
END_TEST

/*
 * The real receiver refuses the stream (its map limit): the sender hears
 * the refusal, or the connection breaks first; it never succeeds.
 */
START_TEST(precopy_reply_refused)
{
	PMTRACK_OPTS(pmtrack_rx_opts, ro, .map_limit = 1);
	PMTRACK_OPTS(pmtrack_precopy_opts, o);
	struct pmtrack_precopy_stats st;
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	struct pcctx c = { .p.fail_at = -1, .p.reply = true };
	struct rxjob j;
	int err;

	work_start(&c.w, 512, 16, 1, 60, 16);
	/* migrate() makes the receiver; give it a limit first */
	j.rx = NULL;
	{
		struct pmtrack_mem_region r[2];
		PMTRACK_OPTS(pmtrack_xport_opts, xo,
			     .kind = PMTRACK_XPORT_SYSCALL);
		struct pmtrack_xport *x;
		int fds[2];

		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
		j.fd = fds[0];
		j.kind = PMTRACK_XPORT_SYSCALL;
		ck_assert_int_eq(pmtrack_rx_new(&ro, &j.rx), 0);
		ck_assert_int_eq(pthread_create(&j.th, NULL, rx_thread, &j),
				 0);
		ck_assert_int_eq(pmtrack_xport_new(fds[1], &xo, &x), 0);
		o.write = pmtrack_xport_write;
		o.write_arg = x;
		o.flush = (int (*)(void *))pmtrack_xport_flush;
		o.reply = x;
		o.ops = &pc_ops;
		o.arg = &c;
		work_regions(&c.w, r);
		st.sz = sizeof(st);
		err = pmtrack_precopy(&o, r, 2, &st);
		pmtrack_xport_free(x);
		close(fds[1]);
		pthread_join(j.th, NULL);
	}
	ck_assert_int_eq(j.err, -E2BIG);
	ck_assert_int_eq(pmtrack_rx_get_stats(j.rx, &rs), 0);
	ck_assert_int_eq(rs.reply, PMTRACK_RX_REPLY_SENT);
	ck_assert_msg(err == -EREMOTEIO || err == -EPIPE ||
			      err == -ECONNRESET,
		      "precopy: %s", strerror(-err));
	ck_assert_int_eq(st.acked, 0);
	if (err == -EREMOTEIO) {
		ck_assert_int_eq(st.remote_error, E2BIG);
		ck_assert_int_eq(st.remote_reason, PMTRACK_SERR_LIMIT);
		ck_assert_msg(strstr(st.remote_message, "map limit"), "%s",
			      st.remote_message);
	}
	ck_assert_int_eq(atomic_load(&c.w.resumes), atomic_load(&c.w.stops));
	pmtrack_rx_free(j.rx);
	work_end(&c.w);
}
END_TEST

/*
 * Timeouts: a peer that sends nothing, or reads nothing, does not hold a
 * transport for ever; a receiver on a silent connection gives up too.
 */
START_TEST(xport_timeout)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kinds[_i],
		     .timeout_ns = 100000000, .buf_size = 65536);
	static uint8_t chunk[65536];
	struct pmtrack_xport *x;
	struct pmtrack_rx *rx;
	struct iovec iov = { chunk, sizeof(chunk) };
	const void *b;
	int fds[2], r = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), 0);
	ck_assert_int_eq(pmtrack_xport_read(x, &b), -ETIMEDOUT);
	ck_assert_int_eq(pmtrack_xport_read(x, &b), -ETIMEDOUT); /* sticky */
	pmtrack_xport_free(x);
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), 0);
	ck_assert_int_eq(pmtrack_xport_read_exact(x, chunk, 1), -ETIMEDOUT);
	pmtrack_xport_free(x);
	/* nobody reads: the socket's buffers fill, then the wait ends */
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), 0);
	for (int i = 0; i < 4096 && !r; i++)
		r = pmtrack_xport_write(x, &iov, 1);
	if (!r)
		r = pmtrack_xport_flush(x);
	ck_assert_int_eq(r, -ETIMEDOUT);
	pmtrack_xport_free(x);
	close(fds[0]);
	close(fds[1]);
	/* a receiver on a connection that stays silent */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_rx_apply(rx, x), -ETIMEDOUT);
	{
		struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };

		ck_assert_int_eq(pmtrack_rx_get_stats(rx, &rs), 0);
		ck_assert_int_eq(rs.state, PMTRACK_RX_EMPTY);
	}
	pmtrack_rx_free(rx);
	pmtrack_xport_free(x);
	close(fds[0]);
	close(fds[1]);
	/* files never wait */
	{
		FILE *f = tmpfile();

		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(pmtrack_xport_new(fileno(f), &xo, &x), 0);
		ck_assert_int_eq(pmtrack_xport_read(x, &b), 0);
		pmtrack_xport_free(x);
		fclose(f);
	}
}
END_TEST

/* A transport reads after writing only on a flushed socket. */
START_TEST(xport_turnaround)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = kinds[_i]);
	struct pmtrack_xport *x;
	struct iovec iov = { "ping", 4 };
	const void *b;
	char got[8];
	int fds[2];
	FILE *f;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), 0);
	ck_assert_int_eq(pmtrack_xport_write(x, &iov, 1), 0);
	ck_assert_int_eq(pmtrack_xport_read(x, &b), -EINVAL); /* unflushed */
	ck_assert_int_eq(pmtrack_xport_read_exact(x, got, 1), -EINVAL);
	ck_assert_int_eq(pmtrack_xport_flush(x), 0);
	ck_assert_int_eq(pmtrack_xport_read_exact(NULL, got, 1), -EINVAL);
	ck_assert_int_eq(pmtrack_xport_read_exact(x, NULL, 1), -EINVAL);
	ck_assert_int_eq(read(fds[1], got, sizeof(got)), 4);
	ck_assert_int_eq(write(fds[1], "pongXYZ", 7), 7);
	/* exactly four: the rest stays in the socket */
	ck_assert_int_eq(pmtrack_xport_read_exact(x, got, 4), 4);
	ck_assert(!memcmp(got, "pong", 4));
	ck_assert_int_eq(recv(fds[0], got, sizeof(got), MSG_DONTWAIT), 3);
	ck_assert(!memcmp(got, "XYZ", 3));
	ck_assert_int_eq(write(fds[1], "pong", 4), 4);
	ck_assert_int_eq(pmtrack_xport_read(x, &b), 4);
	ck_assert(!memcmp(b, "pong", 4));
	/* a transport that reads has reads in flight: not exact */
	ck_assert_int_eq(pmtrack_xport_read_exact(x, got, 1), -EINVAL);
	ck_assert_int_eq(pmtrack_xport_fd(x), fds[0]);
	pmtrack_xport_free(x);
	close(fds[0]);
	close(fds[1]);
	/* fewer at the end of input, then 0 */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	ck_assert_int_eq(pmtrack_xport_new(fds[0], &xo, &x), 0);
	ck_assert_int_eq(write(fds[1], "ab", 2), 2);
	ck_assert_int_eq(shutdown(fds[1], SHUT_WR), 0);
	ck_assert_int_eq(pmtrack_xport_read_exact(x, got, 4), 2);
	ck_assert(!memcmp(got, "ab", 2));
	ck_assert_int_eq(pmtrack_xport_read_exact(x, got, 4), 0);
	pmtrack_xport_free(x);
	close(fds[0]);
	close(fds[1]);
	/* a file: the bytes at the read offset, and the next read goes on
	   from there */
	f = tmpfile();
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(write(fileno(f), "headtail", 8), 8);
	ck_assert_int_eq(lseek(fileno(f), 0, SEEK_SET), 0);
	ck_assert_int_eq(pmtrack_xport_new(fileno(f), &xo, &x), 0);
	ck_assert_int_eq(pmtrack_xport_read_exact(x, got, 4), 4);
	ck_assert(!memcmp(got, "head", 4));
	ck_assert_int_eq(pmtrack_xport_read(x, &b), 4);
	ck_assert(!memcmp(b, "tail", 4));
	pmtrack_xport_free(x);
	fclose(f);
	f = tmpfile();
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(pmtrack_xport_new(fileno(f), &xo, &x), 0);
	ck_assert_int_eq(pmtrack_xport_write(x, &iov, 1), 0);
	ck_assert_int_eq(pmtrack_xport_flush(x), 0);
	ck_assert_int_eq(pmtrack_xport_read(x, &b), -EINVAL); /* a file */
	pmtrack_xport_free(x);
	fclose(f);
	ck_assert_int_eq(pmtrack_xport_fd(NULL), -EINVAL);
}
END_TEST

/* ---- receiver failures ------------------------------------------------- */

/* A complete stream of a quiet workload, in memory. */
struct sbuf {
	uint8_t *b;
	size_t len, cap;
};

static int sbuf_write(void *arg, const struct iovec *iov, int n)
{
	struct sbuf *s = arg;

	for (int i = 0; i < n; i++) {
		if (s->len + iov[i].iov_len > s->cap) {
			s->cap = (s->len + iov[i].iov_len) * 2;
			s->b = realloc(s->b, s->cap);
			ck_assert_ptr_nonnull(s->b);
		}
		if (iov[i].iov_len)
			memcpy(s->b + s->len, iov[i].iov_base, iov[i].iov_len);
		s->len += iov[i].iov_len;
	}
	return 0;
}

static int quiet_stop(void *arg)
{
	(void)arg;
	return 0;
}

static const struct pmtrack_precopy_ops quiet_ops = { .stop = quiet_stop };

static void make_stream(struct sbuf *s, char *mem, size_t pages, int level)
{
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = sbuf_write,
		     .write_arg = s, .ops = &quiet_ops, .level = level);
	struct pmtrack_mem_region r = { mem, pages * ps, 1, "m" };

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(pmtrack_precopy(&o, &r, 1, NULL), 0);
}

/* Apply @len bytes of @s through a pipe; returns the apply's result. */
static int apply_bytes(struct pmtrack_rx *rx, const uint8_t *b, size_t len)
{
	char path[] = "/tmp/pmt-rx-XXXXXX";
	int fd = mkstemp(path), err;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, b, len), (ssize_t)len);
	lseek(fd, 0, SEEK_SET);
	err = pmtrack_rx_apply_fd(rx, fd);
	close(fd);
	return err;
}

static enum pmtrack_rx_state rx_state(struct pmtrack_rx *rx)
{
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };

	ck_assert_int_eq(pmtrack_rx_get_stats(rx, &rs), 0);
	return rs.state;
}

/* Truncated anywhere: -ENODATA, and the state says the memory is unusable. */
START_TEST(rx_truncated)
{
	size_t pages = 64;
	char *mem = t_map_anon(pages);
	struct pmtrack_rx *rx;
	struct sbuf s;
	uint64_t seed = 9;
	int reason;

	for (size_t i = 0; i < pages * ps; i += 8)
		if ((i / ps) % 3)
			*(uint64_t *)(mem + i) = t_rand(&seed);
	make_stream(&s, mem, pages, 0);
	for (size_t cut = 0; cut < s.len; cut += 1 + cut / 7) {
		ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
		ck_assert_int_eq(apply_bytes(rx, s.b, cut), -ENODATA);
		pmtrack_rx_error(rx, &reason);
		ck_assert_int_eq(reason, PMTRACK_SERR_TRUNCATED);
		t_check(rx_state(rx) != PMTRACK_RX_COMPLETE, "cut %zu", cut);
		/* a failed receiver takes no more streams once touched */
		if (rx_state(rx) == PMTRACK_RX_PARTIAL)
			t_check(apply_bytes(rx, s.b, s.len) == -EBADMSG,
				"partial receiver accepted a stream");
		else
			t_check(apply_bytes(rx, s.b, s.len) == 0,
				"untouched receiver refused a stream");
		pmtrack_rx_free(rx);
	}
	free(s.b);
	munmap(mem, pages * ps);
}
END_TEST

/* A corrupt batch: -EBADMSG (checksum), its pages never written. */
START_TEST(rx_corrupt_batch)
{
	size_t pages = 8;
	char *mem = t_map_anon(pages), *dst = t_map_anon(pages);
	struct pmtrack_rx *rx;
	struct sbuf s;
	int reason;

	memset(mem, 'a', pages * ps);
	make_stream(&s, mem, pages, 0);
	memset(dst, '?', pages * ps);
	/* the payload of the single batch ends 4 pages... flip its last page */
	s.b[s.len - 200 - ps] ^= 1;
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_rx_set_dest(rx, 1, dst, pages * ps), 0);
	ck_assert_int_eq(apply_bytes(rx, s.b, s.len), -EBADMSG);
	pmtrack_rx_error(rx, &reason);
	ck_assert_int_eq(reason, PMTRACK_SERR_CHECKSUM);
	ck_assert_int_ne(rx_state(rx), PMTRACK_RX_COMPLETE);
	for (size_t i = 0; i < pages * ps; i++)
		t_check(dst[i] == '?', "byte %zu written from a bad batch", i);
	pmtrack_rx_free(rx);
	free(s.b);
	munmap(mem, pages * ps);
	munmap(dst, pages * ps);
}
END_TEST

/*
 * Zero pages commit no memory: a stream of 256 MiB of zero pages leaves
 * the receiver's own mapping empty (smaps Rss), drops the pages of caller
 * memory that is private anonymous, punches holes in a shared memfd, and
 * the map limit refuses regions larger than it before mapping anything.
 */
#define ZPAGES ((size_t)(256u << 20) / ps)

static void make_zero_stream(struct sbuf *s, bool digest)
{
	PMTRACK_OPTS(pmtrack_enc_opts, eo, .write = sbuf_write,
		     .write_arg = s, .flags = digest ? 0 : PMTRACK_ENC_NO_STATE);
	size_t len = ZPAGES * ps, nw = (ZPAGES + 63) / 64;
	struct pmtrack_stream_region sr = { .id = 1, .length = len };
	struct pmtrack_enc_region_round rr = { .region = 0 };
	uint8_t d[PMTRACK_DIGEST_LEN];
	struct pmtrack_enc *e;
	struct iovec iov;
	uint64_t *dirty = malloc(nw * 8);
	char *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);

	ck_assert_ptr_ne(m, MAP_FAILED);
	ck_assert_ptr_nonnull(dirty);
	memset(dirty, 0xff, nw * 8);
	memset(s, 0, sizeof(*s));
	sr.start = (uintptr_t)m;
	rr.dirty = dirty;
	rr.mem = m;
	iov = (struct iovec){ m, len };
	ck_assert_int_eq(pmtrack_enc_new(&eo, &sr, 1, &e), 0);
	ck_assert_int_eq(pmtrack_enc_round(e, 0, &rr, 1), 0);
	ck_assert_int_eq(pmtrack_digest(&iov, 1, d), 0);
	ck_assert_int_eq(pmtrack_enc_end(e, digest ? d : NULL), 0);
	pmtrack_enc_free(e);
	free(dirty);
	munmap(m, len);
	/* bits, not pages */
	ck_assert_uint_lt(s->len, 4096);
}

static void expect_zero(struct pmtrack_rx *rx, const char *mem, size_t len,
			int verified)
{
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };

	ck_assert_int_eq(pmtrack_rx_get_stats(rx, &rs), 0);
	ck_assert_int_eq(rs.state, PMTRACK_RX_COMPLETE);
	ck_assert_int_eq(rs.digest_verified, verified);
	ck_assert_uint_eq(rs.zero_pages, len / ps);
	for (size_t i = 0; i < len; i += ps / 2)
		t_check(!mem[i] && !mem[i + ps / 2 - 1], "byte %zu", i);
}

START_TEST(rx_zero_pages_free)
{
	size_t len = ZPAGES * ps;
	struct pmtrack_rx_region rg;
	struct pmtrack_rx *rx;
	struct stat sb;
	struct sbuf s, nd;
	char *dst;
	int mfd, reason;

	make_zero_stream(&s, true);
	make_zero_stream(&nd, false);

	/* the receiver's own memory: nothing committed */
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(apply_bytes(rx, s.b, s.len), 0);
	ck_assert_int_eq(pmtrack_rx_region(rx, 0, &rg), 0);
	expect_zero(rx, rg.mem, len, 1);
	ck_assert_int_ge(t_smaps_kb(rg.mem, "Rss"), 0);
	ck_assert_int_lt(t_smaps_kb(rg.mem, "Rss"), 1024);
	pmtrack_rx_free(rx);

	/* caller memory, private anonymous and written: dropped */
	dst = t_map_anon(ZPAGES);
	memset(dst, 0x5a, len);
	ck_assert_int_ge(t_smaps_kb(dst, "Rss"), (long)(len / 1024));
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_rx_set_dest(rx, 1, dst, len), 0);
	ck_assert_int_eq(apply_bytes(rx, s.b, s.len), 0);
	expect_zero(rx, dst, len, 1);
	ck_assert_int_lt(t_smaps_kb(dst, "Rss"), 1024);
	pmtrack_rx_free(rx);
	munmap(dst, len);

	/* caller memory, a shared memfd: its pages given back, and zero
	   for every mapping of it (the digest is left out: reading a hole
	   of shared memory allocates a page) */
	mfd = memfd_create("pmt-zero", MFD_CLOEXEC);
	ck_assert_int_ge(mfd, 0);
	ck_assert_int_eq(ftruncate(mfd, (off_t)len), 0);
	dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ck_assert_ptr_ne(dst, MAP_FAILED);
	memset(dst, 0x5a, len);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_rx_set_dest(rx, 1, dst, len), 0);
	ck_assert_int_eq(apply_bytes(rx, nd.b, nd.len), 0);
	ck_assert_int_eq(fstat(mfd, &sb), 0);
	ck_assert_int_lt(sb.st_blocks * 512, 1 << 20);
	expect_zero(rx, dst, len, 0);
	pmtrack_rx_free(rx);
	munmap(dst, len);
	close(mfd);

	/* a map limit below the regions: refused before mapping */
	{
		PMTRACK_OPTS(pmtrack_rx_opts, ro, .map_limit = len - ps);

		ck_assert_int_eq(pmtrack_rx_new(&ro, &rx), 0);
		ck_assert_int_eq(apply_bytes(rx, s.b, s.len), -E2BIG);
		pmtrack_rx_error(rx, &reason);
		ck_assert_int_eq(reason, PMTRACK_SERR_LIMIT);
		ck_assert_int_eq(rx_state(rx), PMTRACK_RX_EMPTY);
		ck_assert_uint_eq(pmtrack_rx_nregions(rx), 0);
		/* the caller's memory is not the receiver's to limit */
		dst = t_map_anon(ZPAGES);
		ck_assert_int_eq(pmtrack_rx_set_dest(rx, 1, dst, len), 0);
		ck_assert_int_eq(apply_bytes(rx, s.b, s.len), 0);
		pmtrack_rx_free(rx);
		munmap(dst, len);
		ro.map_limit = len;
		ck_assert_int_eq(pmtrack_rx_new(&ro, &rx), 0);
		ck_assert_int_eq(apply_bytes(rx, s.b, s.len), 0);
		pmtrack_rx_free(rx);
	}
	free(s.b);
	free(nd.b);
}
END_TEST

/*
 * pmtrack_rx_apply_channels(): argument errors (a tee too, whose image
 * would be channel 0 alone), and one channel is pmtrack_rx_apply().
 */
START_TEST(rx_channels_args)
{
	PMTRACK_OPTS(pmtrack_rx_opts, ro, .tee = sbuf_write);
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	struct pmtrack_xport *x[2] = { NULL, NULL };
	struct pmtrack_rx *rx, *teed;
	struct sbuf s, t = { 0 };
	int p[2];

	make_zero_stream(&s, true);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], s.b, s.len), (ssize_t)s.len);
	close(p[1]);
	ck_assert_int_eq(pmtrack_xport_new(p[0], NULL, &x[0]), 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ro.tee_arg = &t;
	ck_assert_int_eq(pmtrack_rx_new(&ro, &teed), 0);
	ck_assert_int_eq(pmtrack_rx_apply_channels(NULL, x, 1), -EINVAL);
	ck_assert_int_eq(pmtrack_rx_apply_channels(rx, NULL, 1), -EINVAL);
	ck_assert_int_eq(pmtrack_rx_apply_channels(rx, x, 0), -EINVAL);
	ck_assert_int_eq(pmtrack_rx_apply_channels(rx, x,
						   PMTRACK_CHANNELS_MAX + 1),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_rx_apply_channels(rx, x, 2), -EINVAL);
	x[1] = x[0];
	ck_assert_int_eq(pmtrack_rx_apply_channels(teed, x, 2), -EINVAL);
	/* nothing was read: one channel applies the stream */
	ck_assert_int_eq(pmtrack_rx_apply_channels(rx, x, 1), 0);
	ck_assert_int_eq(pmtrack_rx_get_stats(rx, &rs), 0);
	ck_assert_int_eq(rs.state, PMTRACK_RX_COMPLETE);
	ck_assert_int_eq(rs.state_verified, 1);
	ck_assert_uint_eq(rs.zero_pages, ZPAGES);
	pmtrack_xport_free(x[0]);
	close(p[0]);
	pmtrack_rx_free(rx);
	pmtrack_rx_free(teed);
	free(s.b);
	free(t.b);
}
END_TEST

/* Destinations and chains: wrong lengths, unknown ids, foreign parents. */
START_TEST(rx_chain_rules)
{
	size_t pages = 8;
	char *mem = t_map_anon(pages), *dst = t_map_anon(pages + 1);
	struct pmtrack_rx *rx;
	struct sbuf a, b;
	const char *msg;

	memset(mem, 'a', pages * ps);
	make_stream(&a, mem, pages, 0);
	memset(mem, 'b', ps);
	make_stream(&b, mem, pages, 0); /* no parent: not a continuation */

	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_rx_set_dest(rx, 1, dst, (pages + 1) * ps), 0);
	ck_assert_int_eq(pmtrack_rx_set_dest(rx, 1, dst, pages * ps), -EEXIST);
	ck_assert_int_eq(apply_bytes(rx, a.b, a.len), -EINVAL);
	ck_assert_int_eq(rx_state(rx), PMTRACK_RX_EMPTY);
	pmtrack_rx_free(rx);

	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_rx_set_dest(rx, 5, dst, pages * ps), 0);
	ck_assert_int_eq(apply_bytes(rx, a.b, a.len), -EINVAL);
	pmtrack_rx_free(rx);

	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_rx_set_dest(rx, 1, dst, pages * ps), 0);
	ck_assert_uint_eq(pmtrack_rx_page_size(rx), 0);
	ck_assert_int_eq(apply_bytes(rx, a.b, a.len), 0);
	ck_assert_uint_eq(pmtrack_rx_page_size(rx), ps);
	ck_assert_int_eq(pmtrack_rx_set_dest(rx, 2, dst, ps), -EINVAL);
	ck_assert(!memcmp(dst, mem + ps, ps)); /* page 1 is 'a' */
	/* b does not name a as its parent: refused before any page */
	ck_assert_int_eq(apply_bytes(rx, b.b, b.len), -EBADMSG);
	msg = pmtrack_rx_error(rx, NULL);
	ck_assert_msg(strstr(msg, "parent"), "message: %s", msg);
	ck_assert_int_eq(rx_state(rx), PMTRACK_RX_COMPLETE);
	ck_assert_int_eq(dst[0], 'a');
	pmtrack_rx_free(rx);
	free(a.b);
	free(b.b);
	munmap(mem, pages * ps);
	munmap(dst, (pages + 1) * ps);
}
END_TEST

/* ---- checkpoints ------------------------------------------------------ */

static char *tmpdir(void)
{
	char *d = strdup("/tmp/pmt-ckpt-XXXXXX");

	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

static void rm_rf(const char *d)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	ck_assert_int_eq(system(cmd), 0);
}

static void restore_expect(const char *dir, uint32_t upto, struct work *w,
			   char *snap0, char *snap1, int verified)
{
	struct pmtrack_restore_info ri = { .sz = sizeof(ri) };
	struct pmtrack_rx_region rg;
	struct pmtrack_rx *rx;
	int err;

	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	err = pmtrack_ckpt_restore(rx, dir, upto, &ri);
	ck_assert_msg(err == 0, "restore: %s (%s)", strerror(-err),
		      pmtrack_rx_error(rx, NULL));
	ck_assert_int_eq(ri.digest_verified, verified);
	ck_assert_int_eq(pmtrack_rx_region(rx, 0, &rg), 0);
	ck_assert(!memcmp(rg.mem, snap0 ? snap0 : w->mem[0], rg.len));
	ck_assert_int_eq(pmtrack_rx_region(rx, 1, &rg), 0);
	ck_assert(!memcmp(rg.mem, snap1 ? snap1 : w->mem[1], rg.len));
	pmtrack_rx_free(rx);
}

/*
 * Live pre-dumps while writers run, stopped dumps in between, each
 * restored: every stopped image restores to the memory at its dump,
 * verified by the chain's state digest; the stopped dumps are audited
 * (image 2) or carry the memory digest too (image 5).
 */
START_TEST(ckpt_chain_writers)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .level = _i % 2, .no_sync = 1,
		     .xport = kinds[_i % NKINDS]);
	struct pmtrack_dump_info di = { .sz = sizeof(di) };
	struct pmtrack_mem_region r[2];
	struct pmtrack_ckpt *ck;
	struct work w;
	char *dir = tmpdir(), *s0, *s1;
	uint32_t stopped_at = 0;
	uint64_t full = 0;

	/* one write per 50 us: fewer writes than pages between dumps */
	work_start(&w, 1024 + 31 * (size_t)_i, 64, 2, 700 + (uint64_t)_i, 1);
	work_regions(&w, r);
	ck_assert_int_eq(pmtrack_ckpt_new(dir, &co, r, 2, &ck), 0);
	s0 = malloc(w.pages[0] * ps);
	s1 = malloc(w.pages[1] * ps);
	for (uint32_t i = 0; i < 6; i++) {
		bool stop = i % 3 == 2;
		unsigned int extra = i == 2 ? PMTRACK_DUMP_AUDIT
					    : PMTRACK_DUMP_FULL_DIGEST;

		if (stop)
			work_stop(&w);
		ck_assert_int_eq(
			pmtrack_ckpt_dump(
				ck, stop ? PMTRACK_DUMP_STOPPED | extra : 0,
				&di),
			0);
		ck_assert_uint_eq(di.index, i);
		ck_assert_int_eq(di.has_state, 1);
		ck_assert_int_eq(di.has_digest, i == 5);
		ck_assert_int_eq(di.audited, i == 2);
		ck_assert_uint_eq(di.audit_differ, 0);
		if (i == 0) {
			full = di.pages;
			ck_assert_uint_eq(full, w.pages[0] + w.pages[1]);
		}
		if (stop) {
			memcpy(s0, w.mem[0], w.pages[0] * ps);
			memcpy(s1, w.mem[1], w.pages[1] * ps);
			stopped_at = i;
			restore_expect(dir, i, &w, s0, s1, 1);
			work_resume(&w);
		}
		usleep(2000);
	}
	/* the chain so far, up to the last stopped image */
	restore_expect(dir, stopped_at, &w, s0, s1, 1);
	/* a final stopped dump: the whole chain equals the live memory */
	work_stop(&w);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck,
					   PMTRACK_DUMP_STOPPED |
						   PMTRACK_DUMP_AUDIT,
					   &di),
			 0);
	ck_assert_int_eq(di.audited, 1);
	restore_expect(dir, UINT32_MAX, &w, NULL, NULL, 1);
	/*
	 * An incremental image holds only what was written since its
	 * parent: with the writers paused, exactly the pages written here
	 * (how many the writers hit above depends on the machine's speed).
	 */
	w.mem[0][3 * ps] ^= 1;
	w.mem[0][(w.pages[0] - 1) * ps + 17] ^= 1;
	w.mem[1][5 * ps + 100] ^= 1;
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, &di), 0);
	ck_assert_uint_eq(di.pages, 3);
	ck_assert_uint_lt(di.pages, full);
	restore_expect(dir, UINT32_MAX, &w, NULL, NULL, 1);
	pmtrack_ckpt_free(ck);
	/* a directory with images refuses a new chain */
	ck_assert_int_eq(pmtrack_ckpt_new(dir, &co, r, 2, &ck), -EEXIST);
	work_end(&w);
	free(s0);
	free(s1);
	rm_rf(dir);
	free(dir);
}
END_TEST

/*
 * A write the tracker cannot see (through a second mapping of the memfd
 * that is checkpointed): a stopped dump with PMTRACK_DUMP_AUDIT finds it,
 * publishes nothing, and the next image holds every page; without the
 * audit the dump succeeds and the restore, verified against what the chain
 * sent, lacks the write (the default checks delivery, not the tracker).
 */
START_TEST(ckpt_audit_missed_write)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .no_sync = 1);
	struct pmtrack_dump_info di = { .sz = sizeof(di) };
	struct pmtrack_restore_info ri = { .sz = sizeof(ri) };
	struct pmtrack_rx_region rg;
	struct pmtrack_mem_region r;
	struct pmtrack_rx *rx;
	struct pmtrack_ckpt *ck;
	size_t len = 32 * ps;
	char *dir = tmpdir(), path[600], *mem, *alias;
	int fd = memfd_create("ckpt-missed", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
	ck_assert_ptr_ne(alias, MAP_FAILED);
	memset(mem, 7, len);
	r = (struct pmtrack_mem_region){ mem, len, 4, NULL };
	ck_assert_int_eq(pmtrack_ckpt_new(dir, &co, &r, 1, &ck), 0);
	/* AUDIT and FULL_DIGEST are for stopped memory */
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_AUDIT, &di),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_FULL_DIGEST, &di),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED |
						       PMTRACK_DUMP_AUDIT,
					   &di),
			 0);
	ck_assert_int_eq(di.audited, 1);

	alias[11 * ps + 3] = 42;
	mem[2 * ps] = 1; /* one the tracker sees */
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED |
						       PMTRACK_DUMP_AUDIT,
					   &di),
			 -EBADMSG);
	ck_assert_int_eq(di.audited, 0);
	ck_assert_uint_eq(di.audit_differ, 1);
	ck_assert_uint_eq(di.audit_first_addr, (uintptr_t)mem + 11 * ps);
	snprintf(path, sizeof(path), "%s/000001.pmts", dir);
	ck_assert_int_eq(access(path, F_OK), -1);
	/* the next image sends every page again, and audits clean */
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED |
						       PMTRACK_DUMP_AUDIT,
					   &di),
			 0);
	ck_assert_uint_eq(di.index, 1);
	ck_assert_uint_eq(di.pages, 32);
	ck_assert_int_eq(di.audited, 1);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri), 0);
	ck_assert_int_eq(ri.digest_verified, 1);
	ck_assert_int_eq(pmtrack_rx_region(rx, 0, &rg), 0);
	ck_assert_int_eq(memcmp(rg.mem, mem, len), 0);
	pmtrack_rx_free(rx);

	/* without the audit: published, verified, and missing the write */
	alias[20 * ps] = 43;
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, &di), 0);
	ck_assert_uint_eq(di.pages, 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri), 0);
	ck_assert_int_eq(ri.digest_verified, 1);
	ck_assert_int_eq(pmtrack_rx_region(rx, 0, &rg), 0);
	ck_assert_int_eq(((char *)rg.mem)[20 * ps], 7);
	pmtrack_rx_free(rx);

	pmtrack_ckpt_free(ck);
	munmap(mem, len);
	munmap(alias, len);
	close(fd);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* A damaged chain: truncated image, missing image, unverified tail. */
START_TEST(ckpt_damaged)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .no_sync = 1);
	struct pmtrack_mem_region r = { NULL, 0, 3, NULL };
	struct pmtrack_restore_info ri = { .sz = sizeof(ri) };
	struct pmtrack_rx *rx;
	struct pmtrack_ckpt *ck;
	char *dir = tmpdir(), path[600];
	char *m = t_map_anon(64);
	struct stat sb;
	uint64_t size0;

	r.addr = m;
	r.len = 64 * ps;
	memset(m, 1, 64 * ps);
	ck_assert_int_eq(pmtrack_ckpt_new(dir, &co, &r, 1, &ck), 0);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL), 0);
	memset(m, 2, 8 * ps);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, 0, NULL), 0);
	memset(m, 3, 4 * ps);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, 0, NULL), 0);
	pmtrack_ckpt_free(ck);

	/* the live tail is verified by the chain's state digest */
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri), 0);
	ck_assert_uint_eq(ri.images, 3);
	ck_assert_int_eq(ri.digest_verified, 1);
	pmtrack_rx_free(rx);
	/* a missing image number */
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, 5, NULL), -ENOENT);
	pmtrack_rx_free(rx);
	/* image 1 truncated: -ENODATA, memory flagged partial; 0 alone is
	   fine */
	snprintf(path, sizeof(path), "%s/000000.pmts", dir);
	ck_assert_int_eq(stat(path, &sb), 0);
	size0 = (uint64_t)sb.st_size;
	snprintf(path, sizeof(path), "%s/000001.pmts", dir);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(truncate(path, sb.st_size - 10), 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri),
			 -ENODATA);
	ck_assert_uint_eq(ri.images, 1);
	ck_assert_uint_eq(ri.bytes, size0); /* the applied image only */
	ck_assert_int_eq(rx_state(rx), PMTRACK_RX_PARTIAL);
	pmtrack_rx_free(rx);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, 0, &ri), 0);
	ck_assert_int_eq(ri.digest_verified, 1);
	pmtrack_rx_free(rx);
	/* a gap: image 1 removed */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, NULL),
			 -ENOENT);
	pmtrack_rx_free(rx);
	/* no images at all */
	rm_rf(dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, NULL),
			 -ENOENT);
	pmtrack_rx_free(rx);
	rm_rf(dir);
	free(dir);
	munmap(m, 64 * ps);
}
END_TEST

/*
 * A later image that fails before any of its pages is written (empty, not
 * a stream, the wrong parent, missing) leaves the receiver COMPLETE with
 * the previous image: same stream id, same digest result, and it takes the
 * right image next.
 */
static void rx_expect_holds(struct pmtrack_rx *rx, uint32_t streams,
			    const uint8_t id[PMTRACK_STREAM_ID_LEN],
			    int verified)
{
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };

	ck_assert_int_eq(pmtrack_rx_get_stats(rx, &rs), 0);
	ck_assert_int_eq(rs.state, PMTRACK_RX_COMPLETE);
	ck_assert_uint_eq(rs.streams, streams);
	ck_assert(!memcmp(rs.stream_id, id, PMTRACK_STREAM_ID_LEN));
	ck_assert_int_eq(rs.digest_verified, verified);
}

static int apply_path(struct pmtrack_rx *rx, const char *dir, const char *name)
{
	char path[600];
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	err = pmtrack_rx_apply_fd(rx, fd);
	close(fd);
	return err;
}

START_TEST(rx_failed_later_image)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .no_sync = 1);
	struct pmtrack_mem_region r = { NULL, 0, 3, NULL };
	struct pmtrack_restore_info ri = { .sz = sizeof(ri) };
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	uint8_t id0[PMTRACK_STREAM_ID_LEN];
	struct pmtrack_rx_region rg;
	struct pmtrack_rx *rx;
	struct pmtrack_ckpt *ck;
	char *dir = tmpdir(), *other = tmpdir(), path[600], path2[600];
	char *m = t_map_anon(16);
	int fd;

	r.addr = m;
	r.len = 16 * ps;
	memset(m, 1, 16 * ps);
	ck_assert_int_eq(pmtrack_ckpt_new(dir, &co, &r, 1, &ck), 0);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL), 0);
	memset(m, 2, 4 * ps);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL), 0);
	pmtrack_ckpt_free(ck);
	/* a chain of its own: its image 1 names another parent */
	ck_assert_int_eq(pmtrack_ckpt_new(other, &co, &r, 1, &ck), 0);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL), 0);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL), 0);
	pmtrack_ckpt_free(ck);

	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(apply_path(rx, dir, "000000.pmts"), 0);
	ck_assert_int_eq(pmtrack_rx_get_stats(rx, &rs), 0);
	memcpy(id0, rs.stream_id, sizeof(id0));
	rx_expect_holds(rx, 1, id0, 1);
	/* empty */
	snprintf(path, sizeof(path), "%s/empty", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(apply_path(rx, dir, "empty"), -ENODATA);
	rx_expect_holds(rx, 1, id0, 1);
	/* not a stream */
	snprintf(path, sizeof(path), "%s/junk", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "not a stream at all, not at all", 31), 31);
	close(fd);
	ck_assert_int_eq(apply_path(rx, dir, "junk"), -EBADMSG);
	rx_expect_holds(rx, 1, id0, 1);
	/* another chain's image 1 */
	ck_assert_int_eq(apply_path(rx, other, "000001.pmts"), -EBADMSG);
	rx_expect_holds(rx, 1, id0, 1);
	/* the right one still applies */
	ck_assert_int_eq(apply_path(rx, dir, "000001.pmts"), 0);
	ck_assert_int_eq(pmtrack_rx_region(rx, 0, &rg), 0);
	ck_assert(!memcmp(rg.mem, m, 16 * ps));
	pmtrack_rx_free(rx);

	/* through pmtrack_ckpt_restore(): an empty image 1, then none */
	snprintf(path, sizeof(path), "%s/000001.pmts", dir);
	snprintf(path2, sizeof(path2), "%s/empty", dir);
	ck_assert_int_eq(rename(path2, path), 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri),
			 -ENODATA);
	ck_assert_uint_eq(ri.images, 1);
	rx_expect_holds(rx, 1, id0, 1);
	pmtrack_rx_free(rx);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
	ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, 1, &ri), -ENOENT);
	ck_assert_uint_eq(ri.images, 1);
	rx_expect_holds(rx, 1, id0, 1);
	pmtrack_rx_free(rx);
	rm_rf(dir);
	rm_rf(other);
	free(dir);
	free(other);
	munmap(m, 16 * ps);
}
END_TEST

/*
 * ENOSPC on a small tmpfs (root only): the failed dump leaves no file and
 * keeps its pages; after space is freed the next dump carries them.
 */
START_TEST(ckpt_enospc)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co);
	struct pmtrack_mem_region r = { NULL, 0, 1, NULL };
	struct pmtrack_ckpt *ck;
	char *dir = tmpdir(), path[600], img[600];
	size_t pages = 1024; /* 4 MiB */
	char *m = t_map_anon(pages);
	uint64_t seed = 5;
	int fd, err;
	struct stat sb;

	ck_assert_msg(!mount("pmt", dir, "tmpfs", 0, "size=10m"),
		      "mount tmpfs: %s", strerror(errno));
	for (size_t i = 0; i < pages * ps; i += 8)
		*(uint64_t *)(m + i) = t_rand(&seed);
	r.addr = m;
	r.len = pages * ps;
	ck_assert_int_eq(pmtrack_ckpt_new(dir, &co, &r, 1, &ck), 0);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL), 0);
	/* fill the rest of the file system */
	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	while (write(fd, m, 65536) > 0)
		;
	ck_assert_int_eq(errno, ENOSPC);
	close(fd);
	for (size_t i = 0; i < 600; i++)
		m[i * ps + 8] ^= 0x5a; /* 600 incompressible pages */
	err = pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL);
	ck_assert_int_eq(err, -ENOSPC);
	snprintf(img, sizeof(img), "%s/000001.pmts", dir);
	ck_assert_int_eq(stat(img, &sb), -1);
	{
		/* nothing left behind: image 0 and the filler */
		char cmd[700];

		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 2",
			 dir);
		ck_assert_msg(system(cmd) == 0, "stray files in %s", dir);
	}
	{
		/* the chain is still the one good image */
		struct pmtrack_restore_info ri = { .sz = sizeof(ri) };
		struct pmtrack_rx *rx;

		ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
		ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri),
				 0);
		ck_assert_uint_eq(ri.images, 1);
		pmtrack_rx_free(rx);
	}
	ck_assert_int_eq(unlink(path), 0);
	m[5 * ps] ^= 1; /* one more write after the failure */
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL), 0);
	{
		struct pmtrack_restore_info ri = { .sz = sizeof(ri) };
		struct pmtrack_rx_region rg;
		struct pmtrack_rx *rx;

		ck_assert_int_eq(pmtrack_rx_new(NULL, &rx), 0);
		ck_assert_int_eq(pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri),
				 0);
		ck_assert_uint_eq(ri.images, 2);
		ck_assert_int_eq(ri.digest_verified, 1);
		ck_assert_int_eq(pmtrack_rx_region(rx, 0, &rg), 0);
		ck_assert(!memcmp(rg.mem, m, pages * ps));
		pmtrack_rx_free(rx);
	}
	pmtrack_ckpt_free(ck);
	ck_assert_int_eq(umount(dir), 0);
	rmdir(dir);
	free(dir);
	munmap(m, pages * ps);
}
END_TEST

/* Dumps and restores under a signal storm. */
START_TEST(ckpt_eintr)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .xport = kinds[_i], .level = 1);
	struct pmtrack_mem_region r[2];
	struct pmtrack_ckpt *ck;
	struct work w;
	char *dir = tmpdir();

	work_start(&w, 2048, 64, 1, 900 + (uint64_t)_i, 64);
	work_regions(&w, r);
	signal_storm(true);
	ck_assert_int_eq(pmtrack_ckpt_new(dir, &co, r, 2, &ck), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pmtrack_ckpt_dump(ck, 0, NULL), 0);
	work_stop(&w);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, PMTRACK_DUMP_STOPPED, NULL), 0);
	restore_expect(dir, UINT32_MAX, &w, NULL, NULL, 1);
	signal_storm(false);
	pmtrack_ckpt_free(ck);
	work_end(&w);
	rm_rf(dir);
	free(dir);
}
END_TEST

/*
 * Whatever already has an image's name (a symlink to a file, a FIFO, a
 * dangling symlink) is never replaced nor followed: the dump fails with
 * -EEXIST, keeps its pages, and once the name is free the next dump has
 * them.
 */
START_TEST(ckpt_name_taken)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .no_sync = 1);
	struct pmtrack_mem_region r = { NULL, 0, 3, NULL };
	struct pmtrack_dump_info di = { .sz = sizeof(di) };
	struct pmtrack_ckpt *ck;
	char *dir = tmpdir(), img[600], victim[600], buf[8];
	char *m = t_map_anon(16);
	struct stat sb;
	int fd;

	r.addr = m;
	r.len = 16 * ps;
	memset(m, 1, 16 * ps);
	snprintf(img, sizeof(img), "%s/000001.pmts", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "victim", 6), 6);
	close(fd);
	ck_assert_int_eq(pmtrack_ckpt_new(dir, &co, &r, 1, &ck), 0);
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, 0, NULL), 0);
	memset(m, 2, 3 * ps);
	for (int k = 0; k < 3; k++) {
		if (k == 0)
			ck_assert_int_eq(symlink("victim", img), 0);
		else if (k == 1)
			ck_assert_int_eq(mkfifo(img, 0600), 0);
		else
			ck_assert_int_eq(symlink("nowhere", img), 0);
		ck_assert_int_eq(pmtrack_ckpt_dump(ck, 0, NULL), -EEXIST);
		ck_assert_int_eq(lstat(img, &sb), 0);
		ck_assert(k == 1 ? S_ISFIFO(sb.st_mode) : S_ISLNK(sb.st_mode));
		ck_assert_int_eq(unlink(img), 0);
	}
	/* the victim is untouched, nothing else was left behind */
	fd = open(victim, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 6);
	ck_assert(!memcmp(buf, "victim", 6));
	close(fd);
	snprintf(victim, sizeof(victim), "%s/nowhere", dir);
	ck_assert_int_ne(access(victim, F_OK), 0);
	/* the pages were kept */
	ck_assert_int_eq(pmtrack_ckpt_dump(ck, 0, &di), 0);
	ck_assert_uint_eq(di.index, 1);
	ck_assert_uint_eq(di.pages, 3);
	pmtrack_ckpt_free(ck);
	{
		char cmd[700];

		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 3",
			 dir);
		ck_assert_msg(system(cmd) == 0, "stray files in %s", dir);
	}
	rm_rf(dir);
	free(dir);
	munmap(m, 16 * ps);
}
END_TEST

START_TEST(ckpt_args)
{
	struct pmtrack_ckpt *ck = (void *)1;
	char *m = t_map_anon(2);
	struct pmtrack_mem_region r = { m, 2 * ps, 1, NULL };
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .xport = 9);

	ck_assert_int_eq(pmtrack_ckpt_new(NULL, NULL, &r, 1, &ck), -EINVAL);
	ck_assert_ptr_null(ck);
	ck_assert_int_eq(pmtrack_ckpt_new("/tmp", &co, &r, 1, &ck), -EINVAL);
	ck_assert_int_eq(
		pmtrack_ckpt_new("/proc/nonexistent/x", NULL, &r, 1, &ck),
		-ENOENT);
	ck_assert_int_eq(pmtrack_ckpt_dump(NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_ckpt_restore(NULL, "/tmp", 0, NULL), -EINVAL);
	pmtrack_ckpt_free(NULL);
	munmap(m, 2 * ps);
}
END_TEST

/* Can this process mount a tmpfs (root in the initial namespace)? */
static int can_mount(void)
{
	char d[] = "/tmp/pmt-mnt-XXXXXX";
	int ok;

	if (!mkdtemp(d)) {
		printf("mkdtemp: %s\n", strerror(errno));
		return 0;
	}
	ok = !mount("pmt", d, "tmpfs", 0, "size=1m");

	if (ok)
		umount(d);
	else
		printf("SKIP: cannot mount a small tmpfs for the ENOSPC test "
		       "(%s; needs root)\n",
		       strerror(errno));
	rmdir(d);
	return ok;
}

int main(int argc, char **argv)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("migrate");
	int r = t_init();

	if (r)
		return r;
	tcase_set_timeout(tc, 300);
	if (argc > 1 && !strcmp(argv[1], "--enospc")) {
		if (!can_mount())
			return T_SKIP;
		tcase_add_test(tc, ckpt_enospc);
		suite_add_tcase(s, tc);
		return t_run(s);
	}
	tcase_add_loop_test(tc, xport_roundtrip, 0, NKINDS * 3);
	tcase_add_test(tc, xport_eintr);
	tcase_add_loop_test(tc, xport_epipe, 0, NKINDS);
	tcase_add_test(tc, xport_args);
	tcase_add_test(tc, xport_fallback_seccomp);
	tcase_add_loop_test(tc, precopy_writers, 0, 12);
	tcase_add_loop_test(tc, precopy_max_rounds, 0, 2);
	tcase_add_loop_test(tc, precopy_digest_over_limit, 0, 2);
	tcase_add_test(tc, precopy_switchover_bandwidth);
	tcase_add_test(tc, precopy_cancel);
	tcase_add_test(tc, precopy_resume_on_failure);
	tcase_add_loop_test(tc, precopy_peer_close, 0, NKINDS);
	tcase_add_test(tc, precopy_bandwidth_cap);
	tcase_add_loop_test(tc, precopy_progress_ms, 0, 2);
	tcase_add_test(tc, precopy_progress_ms_cancel);
	tcase_add_test(tc, precopy_cap_no_burst);
	tcase_add_loop_test(tc, precopy_converges_zero, 0, 3);
	tcase_add_loop_test(tc, precopy_missed_write, 0, 4);
	tcase_add_loop_test(tc, precopy_audit_clean, 0, 2);
	tcase_add_loop_test(tc, precopy_channels, 0, 3 * NKINDS);
	tcase_add_loop_test(tc, precopy_channels_mismatch, 0, 3);
	tcase_add_test(tc, precopy_args);
	tcase_add_test(tc, ack_codec);
	tcase_add_loop_test(tc, precopy_reply_judged, 0, 6 * NKINDS);
	tcase_add_test(tc, precopy_reply_refused);
	tcase_add_loop_test(tc, xport_timeout, 0, NKINDS);
	tcase_add_loop_test(tc, xport_turnaround, 0, NKINDS);
	tcase_add_test(tc, rx_truncated);
	tcase_add_test(tc, rx_corrupt_batch);
	tcase_add_test(tc, rx_chain_rules);
	tcase_add_test(tc, rx_zero_pages_free);
	tcase_add_test(tc, rx_channels_args);
	tcase_add_loop_test(tc, ckpt_chain_writers, 0, 6);
	tcase_add_test(tc, ckpt_damaged);
	tcase_add_test(tc, ckpt_audit_missed_write);
	tcase_add_test(tc, rx_failed_later_image);
	tcase_add_test(tc, ckpt_name_taken);
	tcase_add_loop_test(tc, ckpt_eintr, 0, NKINDS);
	tcase_add_test(tc, ckpt_args);
	suite_add_tcase(s, tc);
	return t_run(s);
}

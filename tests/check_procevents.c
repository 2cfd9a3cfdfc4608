// SPDX-License-Identifier: MIT
/*
 * PMTRACK_PROC_CHILDREN with PMTRACK_PROC_EVENTS_CONNECTOR (lib/track/
 * proccn.c): children followed through the proc connector and userfaultfd
 * fork events, without ptrace stops at forks and exits.
 *
 * A target process (forked before it is tracked) shares a MAP_SHARED
 * region with this one and forks on command: a short-lived child that
 * writes pages of the region and exits, a long-lived one that writes on
 * signals, or children in a loop.
 *
 * Run as root; "unpriv" (as uid 65534, tests/unprivileged.sh) checks that
 * asking for the connector without privileges gives -EPERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/process.h>

#include "helpers.h"

/*
 * Built with AddressSanitizer or ThreadSanitizer, the target (a fork of
 * this program) maps the sanitizer's shadow, terabytes of MAP_NORESERVE
 * memory, which tracking a whole process watches and arms page table by
 * page table: the machine runs out of memory.  Those builds skip.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_SHADOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_SHADOW 1
#endif
#endif

#define NPAGES 64
#define ACK_MS 30000 /* a hang fails, it does not stall the suite */

struct cmd {
	/* S short child, L long child, E child that execs, F fork loop,
	 * Q quit */
	char op;
	int a, b;   /* pages [a, b) to write; F: milliseconds */
};

static char *shm;
static int cmd_w, ack_r;
static pid_t target;

/* ---- the target ---------------------------------------------------------- */

static void touch(int a, int b, char v)
{
	for (int i = a; i < b; i++)
		((volatile char *)shm)[(size_t)i * ps] = v;
}

static void ack(int fd, long v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		_exit(3);
}

static void long_main(int fd, const struct cmd *c)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	touch(c->a, c->b, 1);
	ack(fd, getpid());
	for (;;) {
		sigwait(&set, &sig);
		/* the second batch: the pages after the first */
		touch(c->b, 2 * c->b - c->a, 2);
		ack(fd, getpid());
	}
}

static long fork_loop(int ms)
{
	struct timespec t0, t;
	long n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		pid_t pid = fork();

		if (pid == 0) {
			touch((int)(n % NPAGES), (int)(n % NPAGES) + 1, 3);
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, NULL, 0) != pid)
			return -1;
		n++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 +
			 (t.tv_nsec - t0.tv_nsec) / 1000000 <
		 ms);
	return n;
}

static void target_main(int cmd_r, int ack_w)
{
	sigset_t set;
	struct cmd c;

	/* the long child waits for SIGUSR1 with sigwait() */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	while (read(cmd_r, &c, sizeof(c)) == sizeof(c)) {
		pid_t pid;

		if (c.op == 'F') {
			ack(ack_w, fork_loop(c.a));
			continue;
		}
		if (c.op == 'Q')
			break;
		pid = fork();
		if (pid == 0 && c.op == 'L')
			long_main(ack_w, &c);
		if (pid == 0 && c.op == 'E') {
			execl("/proc/self/exe", "check_procevents", "sleeper",
			      (char *)NULL);
			_exit(4);
		}
		if (c.op == 'E') {
			ack(ack_w, pid);
			continue;
		}
		if (pid == 0) {
			touch(c.a, c.b, 1);
			_exit(0);
		}
		waitpid(pid, NULL, 0);
		ack(ack_w, pid);
	}
	_exit(0);
}

/* ---- this side ----------------------------------------------------------- */

static void start_target(void)
{
	int c[2], a[2];

	/* also outside the tests (usable(), unprivileged()): no ck_assert */
	shm = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED || pipe(c) || pipe(a)) {
		perror("start_target");
		exit(1);
	}
	target = fork();
	if (target < 0) {
		perror("fork");
		exit(1);
	}
	if (target == 0) {
		close(c[1]);
		close(a[0]);
		target_main(c[0], a[1]);
	}
	close(c[0]);
	close(a[1]);
	cmd_w = c[1];
	ack_r = a[0];
}

static void stop_target(void)
{
	struct cmd c = { .op = 'Q' };

	if (write(cmd_w, &c, sizeof(c)) != sizeof(c))
		kill(target, SIGKILL);
	waitpid(target, NULL, 0);
	close(cmd_w);
	close(ack_r);
	munmap(shm, NPAGES * ps);
}

static void send_cmd(char op, int a, int b)
{
	struct cmd c = { .op = op, .a = a, .b = b };

	ck_assert_int_eq(write(cmd_w, &c, sizeof(c)), sizeof(c));
}

static long get_ack(void)
{
	struct pollfd pfd = { .fd = ack_r, .events = POLLIN };
	long v;

	ck_assert_msg(poll(&pfd, 1, ACK_MS) == 1,
		      "the target did not answer in %d ms (hung in fork?)",
		      ACK_MS);
	ck_assert_int_eq(read(ack_r, &v, sizeof(v)), sizeof(v));
	return v;
}

static struct pmtrack_proc *track(int *err)
{
	PMTRACK_OPTS(pmtrack_proc_opts, o, .flags = PMTRACK_PROC_CHILDREN,
		     .events = PMTRACK_PROC_EVENTS_CONNECTOR);
	struct pmtrack_proc *p = NULL;

	*err = pmtrack_proc_new(target, &o, &p);
	return p;
}

/* what collects said of the shared region, per pid */
#define MAXP 4096
struct seen {
	int n;
	struct {
		int pid;
		unsigned int flags;  /* of all its reports */
		unsigned int mflags; /* of its reports of the region */
		bool page[NPAGES];
	} p[MAXP];
};

static int on_report(void *arg, const struct pmtrack_proc_report *r)
{
	struct seen *s = arg;
	uint64_t base = (uintptr_t)shm, end = base + NPAGES * ps;
	int i = 0;

	while (i < s->n && s->p[i].pid != r->pid)
		i++;
	if (i == s->n) {
		ck_assert_int_lt(s->n, MAXP);
		s->n++;
		s->p[i].pid = r->pid;
	}
	s->p[i].flags |= r->flags;
	if (r->map->start >= end || r->map->end <= base)
		return 0; /* only the pid and flags of other mappings */
	s->p[i].mflags |= r->flags;
	for (size_t k = 0; k < r->nruns; k++)
		for (uint64_t a = r->runs[k].start; a < r->runs[k].end; a += ps)
			if (a >= base && a < end)
				s->p[i].page[(a - base) / ps] = true;
	return 0;
}

static void collect(struct pmtrack_proc *p, struct seen *s)
{
	int r;

	memset(s, 0, sizeof(*s));
	r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, on_report, s);
	ck_assert_msg(r == 0, "collect: %s", strerror(-r));
}

static int find(const struct seen *s, int pid)
{
	for (int i = 0; i < s->n; i++)
		if (s->p[i].pid == pid)
			return i;
	return -1;
}

/* pages [a, b) and no other, or all of them with FULL */
static void expect_pages(const struct seen *s, int pid, int a, int b,
			 bool exact)
{
	int i = find(s, pid);

	ck_assert_msg(i >= 0, "nothing reported for pid %d", pid);
	for (int k = 0; k < NPAGES; k++) {
		bool want = k >= a && k < b;

		if (want)
			ck_assert_msg(s->p[i].page[k],
				      "pid %d: page %d written, not reported",
				      pid, k);
		else if (exact)
			ck_assert_msg(!s->p[i].page[k],
				      "pid %d: page %d reported, not written",
				      pid, k);
	}
}

START_TEST(short_lived)
{
	struct pmtrack_proc *p;
	static struct seen s;
	int err, i;
	long pid;

	start_target();
	p = track(&err);
	ck_assert_msg(p, "pmtrack_proc_new: %s", strerror(-err));
	collect(p, &s);
	/* gone before the next collect */
	send_cmd('S', 3, 9);
	pid = get_ack();
	collect(p, &s);
	expect_pages(&s, (int)pid, 3, 9, false);
	i = find(&s, (int)pid);
	ck_assert_msg(s.p[i].mflags & PMTRACK_PROC_EXITED,
		      "flags 0x%x: not EXITED", s.p[i].mflags);
	/* said once */
	collect(p, &s);
	ck_assert_int_lt(find(&s, (int)pid), 0);
	pmtrack_proc_free(p);
	stop_target();
}
END_TEST

START_TEST(long_lived)
{
	struct pmtrack_proc *p;
	static struct seen s;
	int err, i;
	long pid;

	start_target();
	p = track(&err);
	ck_assert_msg(p, "pmtrack_proc_new: %s", strerror(-err));
	collect(p, &s);
	send_cmd('L', 10, 14);
	pid = get_ack();
	/* exact from its first instruction, no ptrace stop */
	collect(p, &s);
	expect_pages(&s, (int)pid, 10, 14, true);
	i = find(&s, (int)pid);
	ck_assert_msg(s.p[i].flags & PMTRACK_PROC_NEW, "flags 0x%x",
		      s.p[i].flags);
	ck_assert_msg(!(s.p[i].mflags & PMTRACK_PROC_FULL), "flags 0x%x",
		      s.p[i].mflags);
	kill((pid_t)pid, SIGUSR1);
	ck_assert_int_eq(get_ack(), pid);
	collect(p, &s);
	expect_pages(&s, (int)pid, 14, 18, true);
	/* its exit: the shared mapping in full */
	kill((pid_t)pid, SIGKILL);
	for (int k = 0; k < 100; k++) {
		collect(p, &s);
		i = find(&s, (int)pid);
		if (i >= 0)
			break;
		usleep(10000);
	}
	ck_assert_msg(i >= 0, "the exit of %ld was not reported", pid);
	ck_assert_uint_eq(s.p[i].mflags & (PMTRACK_PROC_FULL |
					   PMTRACK_PROC_EXITED),
			  PMTRACK_PROC_FULL | PMTRACK_PROC_EXITED);
	pmtrack_proc_free(p);
	stop_target();
}
END_TEST

START_TEST(exec_child)
{
	struct pmtrack_proc *p;
	struct seen s;
	int err, i = -1;
	long pid;

	start_target();
	p = track(&err);
	ck_assert_msg(p, "pmtrack_proc_new: %s", strerror(-err));
	collect(p, &s);
	/* fork + exec: its new program is tracked, reported in full */
	send_cmd('E', 0, 0);
	pid = get_ack();
	for (int k = 0; k < 200 && i < 0; k++) {
		collect(p, &s);
		i = find(&s, (int)pid);
		if (i >= 0 && !(s.p[i].flags & PMTRACK_PROC_EXEC))
			i = -1;
		if (i < 0)
			usleep(10000);
	}
	ck_assert_msg(i >= 0, "no report of exec'd child %ld", pid);
	ck_assert_uint_eq(s.p[i].flags & (PMTRACK_PROC_NEW | PMTRACK_PROC_FULL),
			  PMTRACK_PROC_NEW | PMTRACK_PROC_FULL);
	kill((pid_t)pid, SIGKILL);
	pmtrack_proc_free(p);
	stop_target();
}
END_TEST

START_TEST(fork_heavy)
{
	struct pmtrack_proc *p;
	static struct seen s;
	long n, forks = 0;
	int err;

	start_target();
	p = track(&err);
	ck_assert_msg(p, "pmtrack_proc_new: %s", strerror(-err));
	collect(p, &s);
	/* 2 s of fork + write + _exit, collected every 20 ms meanwhile */
	send_cmd('F', 2000, 0);
	for (;;) {
		struct pollfd pfd = { .fd = ack_r, .events = POLLIN };

		if (poll(&pfd, 1, 20) == 1)
			break;
		collect(p, &s);
	}
	n = get_ack();
	ck_assert_int_gt(n, 0);
	collect(p, &s);
	{
		PMTRACK_OPTS(pmtrack_proc_stats, st);

		ck_assert_int_eq(pmtrack_proc_get_stats(p, &st), 0);
		forks = (long)st.forks;
		printf("fork loop: %ld forks, %lu tracked, %lu exits\n", n,
		       (unsigned long)st.forks, (unsigned long)st.exits);
		ck_assert_uint_ge(st.exits, (uint64_t)n);
	}
	(void)forks;
	pmtrack_proc_free(p);
	/* untracked now, and still forking */
	send_cmd('F', 300, 0);
	ck_assert_int_gt(get_ack(), 0);
	stop_target();
}
END_TEST

/* as uid 65534: the connector cannot be bound */
static int unprivileged(void)
{
	struct pmtrack_proc *p;
	int err;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	start_target();
	p = track(&err);
	pmtrack_proc_free(p);
	stop_target();
	if (err != -EPERM) {
		fprintf(stderr, "CONNECTOR unprivileged: %s, not EPERM\n",
			strerror(-err));
		return 1;
	}
	printf("CONNECTOR unprivileged: EPERM\n");
	return 0;
}

/* 0 if the connector mode works here, else why not (and 77) */
static int usable(void)
{
	struct pmtrack_proc *p;
	int err;

	start_target();
	p = track(&err);
	pmtrack_proc_free(p);
	stop_target();
	if (err == -EOPNOTSUPP || err == -EPERM) {
		printf("SKIP: the connector mode is unavailable here (%s): %s\n",
		       strerror(-err),
		       err == -EPERM ? "not root, or no proc connector"
				     : "no pagemap-scan / uffd fork events");
		return T_SKIP;
	}
	if (err) {
		fprintf(stderr, "pmtrack_proc_new: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;
	int r;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (argc > 1 && !strcmp(argv[1], "sleeper"))
		for (;;)
			pause(); /* exec_child's new program */
	if (argc > 1 && !strcmp(argv[1], "unpriv"))
		return unprivileged(); /* fails before watching anything */
#ifdef SANITIZER_SHADOW
	printf("SKIP: built with a sanitizer whose shadow memory (terabytes, "
	       "MAP_NORESERVE) the target inherits: a whole-process tracker "
	       "would arm all of it\n");
	return T_SKIP;
#endif
	r = usable();
	if (r)
		return r;
	s = suite_create("procevents");
	tc = tcase_create("connector");
	tcase_add_test(tc, short_lived);
	tcase_add_test(tc, long_lived);
	tcase_add_test(tc, exec_child);
	tcase_add_test(tc, fork_heavy);
	suite_add_tcase(s, tc);
	return t_run(s);
}

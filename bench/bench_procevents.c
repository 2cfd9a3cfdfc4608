// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench-procevents: what following a process tree costs a
 * fork-heavy target, per way of following it (<pmtrack/process.h>).
 *
 * The target forks in a loop for a fixed time: each child writes a few
 * pages of a MAP_SHARED region and _exits, the parent waits for it.  One
 * run per mode, side by side, alternating, --reps times:
 *
 *   untracked                  nobody looks
 *   tracked, no CHILDREN       pmtrack_proc_new() of the target alone
 *   CHILDREN, ptrace events    PMTRACK_PROC_EVENTS_PTRACE
 *   CHILDREN, connector        PMTRACK_PROC_EVENTS_CONNECTOR
 *
 * While the target runs this program collects (with reset) every
 * --collect-ms.  Reported: the target's forks per second (median) and the
 * ratio to untracked, and the children's pages reported / written: a
 * child's page counts as reported when a report of that child's pid
 * covered it (exactly, or its mapping in full at its exit).  The target
 * logs each child's pid in shared memory, so the pages of each are known.
 *
 * Exit status: 0, 77 if this machine cannot track another process, 1 if
 * a CHILDREN mode missed a page a child wrote (never on timing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pmtrack/process.h>

#include "args.h"
#include "bench_util.h"

/* the target, a fork of this program, would inherit the shadow memory of
 * these sanitizers: terabytes that a whole-process tracker would arm */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_SHADOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_SHADOW 1
#endif
#endif

#define PROG "pmtrack-bench-procevents"
#define EXIT_SKIP 77
#define NPAGES 128u	     /* the shared region */
#define KPAGES 4u	     /* pages each child writes */
#define MAXLOG (1u << 20)    /* children whose pid is logged */
#define HBITS 20	     /* pid table: 2^HBITS entries */
#define MAX_REPS 32

enum mode { M_NONE, M_PROC, M_PTRACE, M_CONNECTOR, NMODES };
static const char *const mode_name[NMODES] = {
	"untracked", "tracked, no CHILDREN", "CHILDREN, ptrace events",
	"CHILDREN, connector"
};

static double seconds = 2;
static int reps = 3;
static int collect_ms = 50;
static size_t page;

static char *shm;	  /* NPAGES pages the children write */
static int32_t *pidlog;	  /* pid of the target's n-th child */

/* pages reported per child pid: open addressing */
struct seen {
	int32_t pid;
	uint8_t bits[NPAGES / 8];
};
static struct seen *tab;

struct result {
	int status; /* 0, or the error of pmtrack_proc_new() */
	double fps[MAX_REPS];
	uint64_t written, reported;
	uint64_t forks, exits, injections, stop_ns;
};

/* ---- the target ---------------------------------------------------------- */

static void target(int go, int ack)
{
	uint64_t t0, end;
	long n = 0;
	char c;

	if (read(go, &c, 1) != 1 || c != 'g')
		_exit(0); /* not tracked after all: not run */
	t0 = bench_now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	while (bench_now_ns() < end) {
		pid_t pid = fork();

		if (pid == 0) {
			for (unsigned int j = 0; j < KPAGES; j++)
				shm[((n * KPAGES + j) % NPAGES) * page] =
					(char)n;
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, NULL, 0) != pid)
			_exit(3);
		if (n < (long)MAXLOG)
			pidlog[n] = pid;
		n++;
	}
	if (write(ack, &n, sizeof(n)) != sizeof(n))
		_exit(4);
	/* stay until told: the last collects see a live process */
	if (read(go, &c, 1) < 0)
		_exit(5);
	_exit(0);
}

/* ---- the pid table ------------------------------------------------------- */

static struct seen *slot(int32_t pid, bool add)
{
	size_t mask = ((size_t)1 << HBITS) - 1;
	size_t i = ((uint32_t)pid * 2654435761u) & mask;

	while (tab[i].pid && tab[i].pid != pid)
		i = (i + 1) & mask;
	if (!tab[i].pid && add)
		tab[i].pid = pid;
	return tab[i].pid ? &tab[i] : NULL;
}

static int on_report(void *arg, const struct pmtrack_proc_report *r)
{
	uint64_t base = (uintptr_t)shm, end = base + NPAGES * page;
	struct seen *s;

	(void)arg;
	if (r->map->start >= end || r->map->end <= base)
		return 0;
	s = slot(r->pid, true);
	for (size_t k = 0; k < r->nruns; k++) {
		uint64_t a = r->runs[k].start < base ? base : r->runs[k].start;

		for (; a < r->runs[k].end && a < end; a += page) {
			size_t i = (a - base) / page;

			s->bits[i / 8] |= (uint8_t)(1u << (i % 8));
		}
	}
	return 0;
}

static void count_pages(long n, struct result *res)
{
	for (long i = 0; i < n && i < (long)MAXLOG; i++) {
		struct seen *s = slot(pidlog[i], false);

		for (unsigned int j = 0; j < KPAGES; j++) {
			size_t pg = (i * KPAGES + j) % NPAGES;

			res->written++;
			if (s && (s->bits[pg / 8] & (1u << (pg % 8))))
				res->reported++;
		}
	}
}

/* ---- one run ------------------------------------------------------------- */

static int track(enum mode m, pid_t pid, struct pmtrack_proc **p)
{
	PMTRACK_OPTS(pmtrack_proc_opts, o);

	*p = NULL;
	if (m == M_NONE)
		return 0;
	if (m != M_PROC)
		o.flags = PMTRACK_PROC_CHILDREN;
	o.events = m == M_PTRACE ? PMTRACK_PROC_EVENTS_PTRACE
				 : PMTRACK_PROC_EVENTS_CONNECTOR;
	return pmtrack_proc_new(pid, &o, p);
}

static void collect(struct pmtrack_proc *p)
{
	if (p)
		pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, on_report, NULL);
}

static void stats(struct pmtrack_proc *p, struct result *res)
{
	PMTRACK_OPTS(pmtrack_proc_stats, st);

	if (!p || pmtrack_proc_get_stats(p, &st))
		return;
	res->forks += st.forks;
	res->exits += st.exits;
	res->injections += st.injections;
	res->stop_ns += st.inject_stop_ns;
}

/* wait for the target's count, collecting meanwhile */
static long wait_count(struct pmtrack_proc *p, int ack)
{
	struct pollfd pfd = { .fd = ack, .events = POLLIN };
	long n = -1;

	while (poll(&pfd, 1, collect_ms) == 0)
		collect(p);
	if (read(ack, &n, sizeof(n)) != sizeof(n))
		return -1;
	/* the last children's exits: events may trail the count */
	for (int i = 0; i < 3; i++) {
		usleep(20000);
		collect(p);
	}
	return n;
}

static int run(enum mode m, struct result *res, int rep)
{
	struct pmtrack_proc *p = NULL;
	int go[2], ack[2], ret;
	pid_t pid;
	long n;

	if (pipe(go) || pipe(ack))
		return -errno;
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		close(ack[0]);
		target(go[0], ack[1]);
	}
	close(go[0]);
	close(ack[1]);
	ret = pid < 0 ? -errno : track(m, pid, &p);
	memset(tab, 0, sizeof(*tab) << HBITS);
	collect(p); /* the first collect reports the target in full */
	if (!ret && write(go[1], "g", 1) != 1)
		ret = -EIO;
	n = ret ? -1 : wait_count(p, ack[0]);
	stats(p, res);
	pmtrack_proc_free(p);
	if (write(go[1], "q", 1) < 0 || pid < 0 || waitpid(pid, NULL, 0) < 0)
		ret = ret ? ret : -ECHILD;
	close(go[1]);
	close(ack[0]);
	if (ret)
		return ret;
	if (n < 0)
		return -EIO;
	res->fps[rep] = (double)n / seconds;
	if (m != M_NONE)
		count_pages(n, res);
	return 0;
}

/* ---- output -------------------------------------------------------------- */

static void print_table(struct result *res)
{
	double base = bench_median(res[M_NONE].fps, reps);

	printf("| mode | forks/s | / untracked | children's pages reported "
	       "/ written | children tracked | exits seen | injections "
	       "(ms stopped) |\n|---|--:|--:|--:|--:|--:|--:|\n");
	for (int m = 0; m < NMODES; m++) {
		double f;

		if (res[m].status) {
			printf("| %s | n/a (%s) | | | | | |\n", mode_name[m],
			       strerror(-res[m].status));
			continue;
		}
		f = bench_median(res[m].fps, reps);
		printf("| %s | %.0f | %.3f |", mode_name[m], f, f / base);
		if (m == M_NONE)
			printf(" - | | | |\n");
		else
			printf(" %llu / %llu | %llu | %llu | %llu (%.1f) |\n",
			       (unsigned long long)res[m].reported,
			       (unsigned long long)res[m].written,
			       (unsigned long long)res[m].forks,
			       (unsigned long long)res[m].exits,
			       (unsigned long long)res[m].injections,
			       (double)res[m].stop_ns / 1e6);
	}
}

/* the cheaper CHILDREN mode; 0 if neither ran */
static enum mode cheaper(struct result *res)
{
	double a, b;

	if (res[M_PTRACE].status || res[M_CONNECTOR].status)
		return res[M_PTRACE].status
			       ? (res[M_CONNECTOR].status ? 0 : M_CONNECTOR)
			       : M_PTRACE;
	a = bench_median(res[M_PTRACE].fps, reps);
	b = bench_median(res[M_CONNECTOR].fps, reps);
	return b >= a ? M_CONNECTOR : M_PTRACE;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--seconds S (per run, default 2)] [--reps N "
		"(default 3, at most %d)] [--collect-ms MS (default 50)]\n",
		MAX_REPS);
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "collect-ms", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			seconds = pmt_arg_double(PROG, "--seconds", optarg,
						 0.05, 3600);
			break;
		case 'r':
			reps = (int)pmt_arg_u64(PROG, "--reps", optarg, 0, 1,
						MAX_REPS);
			break;
		case 'c':
			collect_ms = (int)pmt_arg_u64(PROG, "--collect-ms",
						      optarg, 0, 1, 60000);
			break;
		default:
			pmt_usage_exit(o, usage);
		}
	}
	pmt_no_operands(argc, usage);
}

static int run_all(struct result *res)
{
	for (int r = 0; r < reps; r++) {
		/* alternate the order from one rep to the next */
		for (int k = 0; k < NMODES; k++) {
			int m = r % 2 ? NMODES - 1 - k : k;
			int ret;

			if (res[m].status)
				continue;
			ret = run((enum mode)m, &res[m], r);
			if (ret == -EIO || ret == -ECHILD)
				return 1;
			res[m].status = ret;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct result res[NMODES] = { 0 };
	struct utsname u;
	enum mode best;
	int bad = 0;

	parse_args(argc, argv);
#ifdef SANITIZER_SHADOW
	printf("SKIP: built with a sanitizer whose shadow memory the target "
	       "would inherit (terabytes a whole-process tracker arms)\n");
	return EXIT_SKIP;
#endif
	page = (size_t)sysconf(_SC_PAGESIZE);
	shm = mmap(NULL, NPAGES * page, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pidlog = mmap(NULL, MAXLOG * sizeof(*pidlog), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	tab = calloc((size_t)1 << HBITS, sizeof(*tab));
	if (shm == MAP_FAILED || pidlog == MAP_FAILED || !tab)
		return 1;
	if (run_all(res))
		return 1;
	if (res[M_PROC].status) {
		printf("SKIP: cannot track another process here: %s\n",
		       strerror(-res[M_PROC].status));
		return EXIT_SKIP;
	}
	uname(&u);
	printf(PROG ": kernel %s, libpmtrack %s, %d CPUs, %.2f s per run, "
	       "medians of %d, collect every %d ms; each child writes %u "
	       "shared pages and exits\n\n",
	       u.release, pmtrack_version(), (int)sysconf(_SC_NPROCESSORS_ONLN),
	       seconds, reps, collect_ms, KPAGES);
	print_table(res);
	best = cheaper(res);
	if (best)
		printf("\ncheaper for this tree: %s (%.2fx the forks/s of the "
		       "other)\n", mode_name[best],
		       res[M_PTRACE].status || res[M_CONNECTOR].status
			       ? 1.0
			       : bench_median(res[best].fps, reps) /
					 bench_median(res[best == M_PTRACE
								  ? M_CONNECTOR
								  : M_PTRACE]
							      .fps,
						      reps));
	for (int m = M_PTRACE; m < NMODES; m++) {
		if (!res[m].status && res[m].reported != res[m].written) {
			printf("FAIL: %s missed %llu pages children wrote\n",
			       mode_name[m],
			       (unsigned long long)(res[m].written -
						    res[m].reported));
			bad = 1;
		}
	}
	return bad;
}

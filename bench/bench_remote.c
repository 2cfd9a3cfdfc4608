// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench-remote: tracking another process (pmtrack_new() with
 * opts.pid, <pmtrack/process.h>), each measurement next to the raw
 * mechanism it rests on, measured in the same run.
 *
 * The target is a process this program forks.  After fork() it runs the
 * writer code below and nothing else (never libpmtrack): it maps a private
 * anonymous region of --size-mib MiB (MADV_NOHUGEPAGE, every page written
 * once), starts two writer threads and sleeps.  The writers take orders
 * from a shared page: write random pages at a rate (pages/s, all writers
 * together; one 8-byte store at a random offset of a random page each),
 * store at full speed for a set time and count the stores, or idle.  This
 * program's own big buffers are MADV_DONTFORK, so a target inherits none.
 *
 *  1. inject    pmtrack_new() with .pid = the target (2 writers at 10000
 *               pages/s) and pmtrack_free(), --injections times:
 *               pmtrack_stats.inject_stop_ns, min/median/max.  Interleaved
 *               with a bare stop of the same target by this program:
 *               PTRACE_SEIZE + PTRACE_INTERRUPT of every thread, a wait
 *               for each stop, PTRACE_DETACH, timed as the library times
 *               its stop (first /proc/PID/task listing to last detach).
 *               Ratio injection / bare stop.
 *  2. rounds    a pmtrack_proc on the target; at each rate of --rates,
 *               rounds every 100 ms: pmtrack_proc_collect(RESET) (the
 *               collect, reported pages counted), then process_vm_readv()
 *               of the reported pages (the copy; batches of up to 1024
 *               runs and 4 MiB).  Next to it the local raw mechanism: a
 *               region of the same size in this process, registered with
 *               an async uffd-wp userfaultfd (bench_raw.c), written by two
 *               writer threads of this process at the same rate, and one
 *               PAGEMAP_SCAN + PM_SCAN_WP_MATCHING loop over it per round
 *               (then memcpy() of the reported pages).  Only one side's
 *               writers run at a time.  Ratio remote / local per round.
 *               Each side's writers note their longest gap between two
 *               wake-ups (each sleeps 1 ms): across the collect, and
 *               between collects.  A stop of the target (soft-dirty's
 *               frozen collects) shows in the first.
 *  3. dump      an incremental dump at ~1% dirty / a full dump.  With the
 *               build's `pmtrack dump` if it has --pid: run against the
 *               target, its per-image JSON parsed, image k ms / image 0
 *               ms (and the backend it picked, from its summary).  In
 *               this process, with the library alone: full = the
 *               page-state scan (PRESENT | SWAPPED) of the target's
 *               writable mappings, process_vm_readv() of those pages and
 *               writev() to a file (no fsync); incremental = a RESET
 *               collect one interval after the previous one, then read
 *               and write of the reported pages.
 *  4. downtime  the final frozen image at --size-mib / 4, x1 and x2 (the
 *               largest if memory allows), at one write rate
 *               (--final-rate, 10000 pages/s): a
 *               pmtrack_proc, its first collect, the region read whole
 *               into a shadow copy, pre-dump rounds every 100 ms (collect,
 *               read into the shadow, write), then pmtrack_proc_freeze(),
 *               the final collect, read, write, pmtrack_proc_thaw().
 *               While frozen (untimed) the shadow is compared with the
 *               target's memory: any difference fails the program (exit
 *               1).  (On soft-dirty, whose resets lose racing writes, the
 *               library freezes the target around each RESET collect.)
 *  5. slowdown  one target writer stores at full speed for 2 s, to random
 *               pages of the region and to a working set of 8 pages,
 *               untracked and tracked (a pmtrack_proc collecting with
 *               RESET every 100 ms): stores/s, ratio tracked / untracked,
 *               and the time per first write after a re-arm that the
 *               difference implies.
 *
 * Where soft-dirty works too, items 2-4 also run with it, next to
 * pagemap-scan.  Where PAGEMAP_SCAN with async uffd-wp is missing but
 * soft-dirty works (Linux 6.1), items 2-5 run with soft-dirty alone: item
 * 1 is left out (soft-dirty injects nothing), item 2 has no local side
 * (its remote / local columns are n/a) and reports the pause each RESET
 * collect costs the target (the library freezes it around soft-dirty's
 * resets, which lose racing writes).  --backend picks one of the two;
 * the program exits 77 where the backend asked for (auto: either) does
 * not work, or where the target cannot be ptraced.
 *
 * Each measurement is repeated --reps times and medians are reported.
 * Absolute times vary between machines and between boots of a VM: compare
 * the ratios, measured in one run.  Timing never fails the program; a
 * wrong result does.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>
#include <pmtrack/process.h>

#include "args.h"
#include "bench_raw.h"
#include "bench_util.h"

#define EXIT_SKIP 77
#define PROG "pmtrack-bench-remote"

/* the build's command-line tool (bench/CMakeLists.txt), or "" */
#ifndef PMT_CLI_PATH
#define PMT_CLI_PATH ""
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define NS 1000000000ull
#define MS 1000000ull
#define NWRITERS 2 /* writer threads of a target, and locally */
#define MAX_RATES 8
#define ROUND_NS (100 * MS)	 /* between rounds */
#define IOV_BATCH 1024		 /* UIO_MAXIOV */
#define STAGE_BYTES (4u << 20)	 /* read buffer of a copy batch */
#define SHADOW_PIECE (64u << 20) /* largest read into a shadow at once */
#define BATCH_BYTES (1u << 30)	 /* largest batch */
#define WSET_PAGES 8		 /* item 5's small working set */
#define INJECT_RATE 10000	 /* pages/s while injecting (item 1) */
#define FINAL_RATE 10000	 /* pages/s at every size (item 4's default) */
#define MAX_TIDS 64
#define MAX_BACKENDS 2
#define MAX_IMAGES 16

enum {
	SEC_INJECT = 1u << 0,
	SEC_ROUNDS = 1u << 1,
	SEC_DUMP = 1u << 2,
	SEC_DOWNTIME = 1u << 3,
	SEC_SLOWDOWN = 1u << 4,
	SEC_ALL = (1u << 5) - 1,
};

static const char *const section_name[] = { "inject", "rounds", "dump",
					    "downtime", "slowdown" };
#define NSECTIONS 5

struct cfg {
	size_t size_mib;
	size_t len; /* the target's region */
	size_t npages;
	size_t ps;
	int reps;
	int injections;
	int rounds;	/* item 2: rounds per rate, side and rep */
	int pre_rounds; /* item 4: pre-dump rounds before the final one */
	int incs;	/* item 3: incremental images after the full one */
	uint64_t rates[MAX_RATES];
	int nrates;
	uint64_t interval_ms; /* item 3 */
	uint64_t final_rate;  /* item 4: pages/s */
	uint64_t run_ns;      /* item 5 */
	unsigned int only;
	const char *dir;
	const char *tool;
	bool quick;
	const char *want; /* --backend: auto, pagemap-scan or soft-dirty */
	/* the probes: PAGEMAP_SCAN, async uffd-wp, soft-dirty */
	int probe_scan, probe_async, probe_sd;
	/* PAGEMAP_SCAN with async uffd-wp works: item 2's local side */
	bool raw;
	/* items 2-4: pagemap-scan, and soft-dirty where it works, or
	 * soft-dirty alone; items 1 and 5: backends[0] */
	enum pmtrack_backend backends[MAX_BACKENDS];
	int nbackends;
};

__attribute__((noreturn)) static void fail(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err));
	exit(1);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);

	if (!p)
		fail("calloc", ENOMEM);
	return p;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / NS),
			       .tv_nsec = (long)(ns % NS) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* until CLOCK_MONOTONIC (bench_now_ns()) reads @t */
static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / NS),
			       .tv_nsec = (long)(t % NS) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

/* a private anonymous buffer, populated, that no fork() inherits */
static char *map_big(size_t len, bool nohuge)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap", errno);
	if (madvise(p, len, MADV_DONTFORK))
		fail("madvise(MADV_DONTFORK)", errno);
	if (nohuge && madvise(p, len, MADV_NOHUGEPAGE))
		fail("madvise(MADV_NOHUGEPAGE)", errno);
	if (madvise(p, len, MADV_POPULATE_WRITE))
		memset(p, 0, len);
	return p;
}

static double med(double *v, int n)
{
	return n ? bench_median(v, n) : 0;
}

/* ---- the writers (in a target, or in this process) -------------------- */

enum wmode {
	W_IDLE,
	W_RATE, /* random pages at a rate */
	W_FULL, /* stores at full speed for run_ns, counted */
};

/* one writer's counters, on a cache line of its own */
struct wslot {
	_Atomic uint64_t writes;   /* W_RATE page writes, cumulative */
	_Atomic uint64_t done_gen; /* W_FULL: the order last done */
	uint64_t stores;	   /* its stores */
	uint64_t ns;		   /* and its duration */
	/* W_IDLE and W_RATE: the last wake-up from its 1 ms sleep, and the
	 * longest time between two since gap_take() (a stop shows here) */
	_Atomic uint64_t woke;
	_Atomic uint64_t gap;
} __attribute__((aligned(64)));

/* the orders, in a shared page; the writers re-read them when gen moves */
struct wctl {
	_Atomic uint64_t gen;
	_Atomic int mode;
	_Atomic int nactive;	 /* writers 0 .. nactive-1 work */
	_Atomic uint64_t rate;	 /* W_RATE: pages/s, active writers together */
	_Atomic uint64_t run_ns; /* W_FULL: for how long */
	_Atomic uint64_t span;	 /* W_FULL: the first span pages only */
	_Atomic int quit;
	_Atomic int ready;     /* a target: 1 once running, -errno if not */
	_Atomic uint64_t base; /* a target: its region */
	struct wslot w[NWRITERS];
};

struct writer {
	pthread_t tid;
	struct wctl *ctl;
	int idx;
	char *base;
	size_t npages;
	size_t ps;
	uint64_t rng;
};

/* xorshift64* */
static uint64_t rnd_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* one 8-byte store at a random offset of page @page */
static inline void store(const struct writer *w, uint64_t page, uint64_t r)
{
	size_t off = (size_t)(r >> 40) % (w->ps / 8) * 8;

	*(volatile uint64_t *)(w->base + page * w->ps + off) = r;
}

/* W_RATE: the writes due since @t0 at @rate pages/s, then 1 ms of sleep */
static void pace(struct writer *w, uint64_t rate, uint64_t t0, uint64_t *done)
{
	struct wslot *s = &w->ctl->w[w->idx];
	uint64_t due, lag = rate / 20, n;

	if (!rate) {
		sleep_ns(MS);
		return;
	}
	due = (uint64_t)((unsigned __int128)(bench_now_ns() - t0) * rate / NS);
	/* at most 50 ms behind: no burst after a stall */
	if (due > *done + lag)
		*done = due - lag;
	n = atomic_load_explicit(&s->writes, memory_order_relaxed);
	for (; *done < due; (*done)++) {
		uint64_t r = rnd_next(&w->rng);

		store(w, r % w->npages, r);
		atomic_store_explicit(&s->writes, ++n, memory_order_relaxed);
	}
	sleep_ns(MS);
}

/* W_FULL: stores to random pages of the first span for run_ns, counted */
static void full_run(struct writer *w, uint64_t gen)
{
	struct wctl *c = w->ctl;
	struct wslot *s = &c->w[w->idx];
	uint64_t span = atomic_load(&c->span), n = 0, t0, t, end;

	t0 = bench_now_ns();
	end = t0 + atomic_load(&c->run_ns);
	do {
		for (int i = 0; i < 256; i++) {
			uint64_t r = rnd_next(&w->rng);

			store(w, r % span, r);
		}
		n += 256;
	} while ((t = bench_now_ns()) < end);
	s->stores = n;
	s->ns = t - t0;
	atomic_store(&s->done_gen, gen);
}

/* a wake-up at @now: the gap since the one before (none after 0) */
static void wake_note(struct wslot *s, uint64_t *last, uint64_t now)
{
	uint64_t d = now - *last, g = atomic_load(&s->gap);

	while (*last && d > g && !atomic_compare_exchange_weak(&s->gap, &g, d))
		;
	atomic_store(&s->woke, now);
	*last = now;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct wctl *c = w->ctl;
	uint64_t seen = UINT64_MAX, t0 = 0, done = 0, rate = 0, last = 0;
	int mode = W_IDLE;

	while (!atomic_load(&c->quit)) {
		uint64_t g = atomic_load(&c->gen);

		wake_note(&c->w[w->idx], &last, bench_now_ns());
		if (g != seen) {
			int nact = atomic_load(&c->nactive);
			uint64_t all = atomic_load(&c->rate);

			seen = g;
			mode = w->idx < nact ? atomic_load(&c->mode) : W_IDLE;
			rate = nact ? all / (uint64_t)nact +
					       ((uint64_t)w->idx <
						all % (uint64_t)nact)
				    : 0;
			t0 = bench_now_ns();
			done = 0;
		}
		if (mode == W_RATE) {
			pace(w, rate, t0, &done);
		} else if (mode == W_FULL &&
			   atomic_load(&c->w[w->idx].done_gen) != g) {
			full_run(w, g);
			last = 0; /* not a gap between sleeps */
		} else {
			sleep_ns(MS);
		}
	}
	return NULL;
}

/* NWRITERS writers over [base, base + npages pages): 0 or an errno */
static int writers_start(struct writer *w, struct wctl *c, char *base,
			 size_t npages, size_t ps, uint64_t seed)
{
	for (int i = 0; i < NWRITERS; i++) {
		int ret;

		w[i] = (struct writer){
			.ctl = c,
			.idx = i,
			.base = base,
			.npages = npages,
			.ps = ps,
			.rng = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i + 1,
		};
		ret = pthread_create(&w[i].tid, NULL, writer_main, &w[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static void writers_join(struct writer *w, struct wctl *c)
{
	atomic_store(&c->quit, 1);
	for (int i = 0; i < NWRITERS; i++) {
		int ret = pthread_join(w[i].tid, NULL);

		if (ret)
			fail("pthread_join", ret);
	}
}

static void ctl_order(struct wctl *c, int mode, int nactive, uint64_t rate)
{
	atomic_store(&c->mode, mode);
	atomic_store(&c->nactive, nactive);
	atomic_store(&c->rate, rate);
	atomic_fetch_add(&c->gen, 1);
}

/* W_RATE at @rate with every writer (0: idle) */
static void ctl_rate(struct wctl *c, uint64_t rate)
{
	ctl_order(c, rate ? W_RATE : W_IDLE, NWRITERS, rate);
}

/* writer 0 stores at full speed into the first @span pages for @ns */
static uint64_t ctl_full(struct wctl *c, uint64_t span, uint64_t ns)
{
	atomic_store(&c->span, span);
	atomic_store(&c->run_ns, ns);
	ctl_order(c, W_FULL, 1, 0);
	return atomic_load(&c->gen);
}

static bool ctl_full_done(struct wctl *c, uint64_t gen)
{
	return atomic_load(&c->w[0].done_gen) == gen;
}

/* the longest gap between two wake-ups of a writer since the last call */
static uint64_t gap_take(struct wctl *c)
{
	uint64_t m = 0;

	for (int i = 0; i < NWRITERS; i++) {
		uint64_t g = atomic_exchange(&c->w[i].gap, 0);

		m = g > m ? g : m;
	}
	return m;
}

/* until every writer has woken after @t (at most 1 s more): a stop that
 * ended before @t is then in gap_take() */
static void gap_settle(struct wctl *c, uint64_t t)
{
	uint64_t end = bench_now_ns() + NS;

	for (int i = 0; i < NWRITERS; i++)
		while (atomic_load(&c->w[i].woke) < t && bench_now_ns() < end)
			sleep_ns(MS / 4);
}

static uint64_t ctl_writes(struct wctl *c)
{
	uint64_t n = 0;

	for (int i = 0; i < NWRITERS; i++)
		n += atomic_load(&c->w[i].writes);
	return n;
}

/* ---- the target process ------------------------------------------------ */

struct target {
	pid_t pid;
	struct wctl *ctl;
	size_t len;
	size_t npages;
	uint64_t base; /* the region, in the target */
};

/* the child: map and fill the region, start the writers, sleep */
__attribute__((noreturn)) static void target_main(struct wctl *c, size_t len,
						  size_t ps, pid_t parent)
{
	struct writer w[NWRITERS];
	char *base;
	int ret;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		_exit(1);
	/* nothing of this program's: no descriptor either */
	syscall(SYS_close_range, 3u, ~0u, 0u);
	base = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		atomic_store(&c->ready, -errno);
		_exit(1);
	}
	madvise(base, len, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < len; off += ps)
		*(volatile uint64_t *)(base + off) = off | 1;
	atomic_store(&c->base, (uintptr_t)base);
	ret = writers_start(w, c, base, len / ps, ps, (uint64_t)getpid());
	if (ret) {
		atomic_store(&c->ready, -ret);
		_exit(1);
	}
	atomic_store(&c->ready, 1);
	while (!atomic_load(&c->quit))
		sleep_ns(10 * MS);
	_exit(0);
}

static void target_start(struct target *t, size_t len, size_t ps)
{
	pid_t parent = getpid();
	int st;

	memset(t, 0, sizeof(*t));
	t->ctl = mmap(NULL, sizeof(*t->ctl), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t->ctl == MAP_FAILED)
		fail("mmap", errno);
	t->len = len;
	t->npages = len / ps;
	fflush(NULL);
	t->pid = fork();
	if (t->pid < 0)
		fail("fork", errno);
	if (!t->pid)
		target_main(t->ctl, len, ps, parent);
	for (;;) {
		int r = atomic_load(&t->ctl->ready);

		if (r < 0)
			fail("target: start", -r);
		if (r > 0)
			break;
		if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
			fprintf(stderr, PROG ": the target exited (%#x)\n", st);
			exit(1);
		}
		sleep_ns(MS);
	}
	t->base = atomic_load(&t->ctl->base);
}

static void target_stop(struct target *t)
{
	if (!t->pid)
		return;
	atomic_store(&t->ctl->quit, 1);
	kill(t->pid, SIGKILL);
	while (waitpid(t->pid, NULL, 0) < 0 && errno == EINTR)
		;
	munmap(t->ctl, sizeof(*t->ctl));
	t->pid = 0;
}

/* ---- a bare ptrace stop of every thread -------------------------------- */

struct tids {
	pid_t v[MAX_TIDS];
	int sig[MAX_TIDS];
	int n;
};

static bool tids_have(const struct tids *t, pid_t tid)
{
	for (int i = 0; i < t->n; i++)
		if (t->v[i] == tid)
			return true;
	return false;
}

/* seize and interrupt the threads of @pid not seized yet: how many, or
 * -errno */
static int bare_pass(pid_t pid, struct tids *t)
{
	char path[64];
	struct dirent *e;
	int added = 0, ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!ret && (e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);

		if (tid <= 0 || tids_have(t, tid))
			continue;
		if (t->n == MAX_TIDS)
			ret = -E2BIG;
		else if (ptrace(PTRACE_SEIZE, tid, NULL, NULL))
			ret = errno == ESRCH ? 0 : -errno;
		else {
			t->v[t->n] = tid;
			t->sig[t->n++] = 0;
			added++;
			if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) &&
			    errno != ESRCH)
				ret = -errno;
		}
	}
	closedir(d);
	return ret ? ret : added;
}

/* until thread @i is in its interrupt stop; a signal is kept for later */
static int bare_wait(struct tids *t, int i)
{
	int st;

	for (;;) {
		if (waitpid(t->v[i], &st, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return -ESRCH;
		if (!WIFSTOPPED(st))
			continue;
		if ((st >> 16) == PTRACE_EVENT_STOP)
			return 0;
		t->sig[i] = WSTOPSIG(st);
		if (ptrace(PTRACE_CONT, t->v[i], NULL, NULL))
			return -errno;
	}
}

/*
 * What stopping the target costs with nothing else done: every thread
 * seized and interrupted, each stop waited for, every thread detached.
 * 0 or -errno; @ns the time taken, @nthr the threads.
 */
static int bare_stop(pid_t pid, uint64_t *ns, int *nthr)
{
	struct tids t = { .n = 0 };
	uint64_t t0 = bench_now_ns();
	int ret;

	do {
		ret = bare_pass(pid, &t);
	} while (ret > 0);
	for (int i = 0; !ret && i < t.n; i++)
		ret = bare_wait(&t, i);
	for (int i = 0; i < t.n; i++)
		ptrace(PTRACE_DETACH, t.v[i], NULL, (void *)(long)t.sig[i]);
	*ns = bench_now_ns() - t0;
	*nthr = t.n;
	return ret;
}

/* ---- reports, and reading them from the target ------------------------- */

struct prun {
	uint64_t start, end;
};

/* the runs of one collect (or one full image) */
struct runs {
	struct prun *v;
	size_t n, cap;
	uint64_t pages;	       /* in every run */
	uint64_t region_pages; /* of them, in [rstart, rend) */
	unsigned int full;     /* reports with PMTRACK_PROC_FULL */
	uint64_t rstart, rend;
	size_t ps;
};

static void runs_init(struct runs *r, const struct target *t, size_t ps)
{
	memset(r, 0, sizeof(*r));
	r->rstart = t->base;
	r->rend = t->base + t->len;
	r->ps = ps;
	/* enough for any round: no realloc() in a timed collect */
	r->cap = t->npages / 2 + 4096;
	r->v = xcalloc(r->cap, sizeof(*r->v));
}

static void runs_clear(struct runs *r)
{
	r->n = 0;
	r->pages = r->region_pages = 0;
	r->full = 0;
}

static int runs_add(struct runs *r, uint64_t s, uint64_t e)
{
	uint64_t lo = s > r->rstart ? s : r->rstart;
	uint64_t hi = e < r->rend ? e : r->rend;

	if (r->n && r->v[r->n - 1].end == s) {
		r->v[r->n - 1].end = e;
	} else {
		if (r->n == r->cap) {
			size_t cap = 2 * r->cap;
			struct prun *v = realloc(r->v, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			r->v = v;
			r->cap = cap;
		}
		r->v[r->n++] = (struct prun){ s, e };
	}
	r->pages += (e - s) / r->ps;
	if (lo < hi)
		r->region_pages += (hi - lo) / r->ps;
	return 0;
}

static int on_report(void *arg, const struct pmtrack_proc_report *rep)
{
	struct runs *r = arg;

	if (rep->flags & PMTRACK_PROC_FULL)
		r->full++;
	for (size_t i = 0; i < rep->nruns; i++) {
		int ret = runs_add(r, rep->runs[i].start, rep->runs[i].end);

		if (ret)
			return ret;
	}
	return 0;
}

static struct pmtrack_proc *proc_new(const struct target *t,
				     enum pmtrack_backend be)
{
	PMTRACK_OPTS(pmtrack_proc_opts, o, .backend = be);
	struct pmtrack_proc *p;
	int ret = pmtrack_proc_new(t->pid, &o, &p);

	if (ret)
		fail("pmtrack_proc_new", -ret);
	return p;
}

/* one RESET collect into @r (emptied first); returns its duration */
static uint64_t proc_collect(struct pmtrack_proc *p, struct runs *r)
{
	uint64_t t0;
	int ret;

	runs_clear(r);
	t0 = bench_now_ns();
	ret = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, on_report, r);
	t0 = bench_now_ns() - t0;
	if (ret)
		fail("pmtrack_proc_collect", -ret);
	return t0;
}

/*
 * Reads runs of the target with process_vm_readv(), batched (IOV_BATCH
 * iovecs, STAGE_BYTES of staging), and writes each batch to fd (if >= 0)
 * with writev().  With a shadow, the pages of [sh_start, sh_end) are read
 * into the shadow at their offset instead of the staging buffer.
 */
struct copier {
	pid_t pid;
	int fd;
	char *stage;
	size_t staged; /* bytes of stage in the batch */
	char *shadow;
	uint64_t sh_start, sh_end;
	struct iovec l[IOV_BATCH], r[IOV_BATCH];
	int nl, nr;
	size_t bytes; /* in the batch */
	uint64_t read_ns, write_ns;
};

static struct copier *copier_new(pid_t pid, char *stage)
{
	struct copier *c = xcalloc(1, sizeof(*c));

	c->pid = pid;
	c->fd = -1;
	c->stage = stage;
	return c;
}

static void copier_times(struct copier *c, uint64_t *read_ns,
			 uint64_t *write_ns)
{
	*read_ns = c->read_ns;
	*write_ns = c->write_ns;
	c->read_ns = c->write_ns = 0;
}

static void writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t k = writev(fd, iov, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			fail("writev", errno);
		}
		while (n > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
}

static void copy_flush(struct copier *c)
{
	uint64_t t0, t1;
	ssize_t n;

	if (!c->nr)
		return;
	t0 = bench_now_ns();
	n = process_vm_readv(c->pid, c->l, (unsigned long)c->nl, c->r,
			     (unsigned long)c->nr, 0);
	t1 = bench_now_ns();
	if (n < 0)
		fail("process_vm_readv", errno);
	if ((size_t)n != c->bytes) {
		fprintf(stderr, PROG ": process_vm_readv: %zd of %zu bytes\n",
			n, c->bytes);
		exit(1);
	}
	c->read_ns += t1 - t0;
	if (c->fd >= 0) {
		writev_all(c->fd, c->l, c->nl);
		c->write_ns += bench_now_ns() - t1;
	}
	c->nl = c->nr = 0;
	c->bytes = 0;
	c->staged = 0;
}

/* [s, s + len) of the target into @dst */
static void copy_piece(struct copier *c, uint64_t s, size_t len, char *dst)
{
	struct iovec *l = c->nl ? &c->l[c->nl - 1] : NULL;
	struct iovec *r = c->nr ? &c->r[c->nr - 1] : NULL;

	if (l && (char *)l->iov_base + l->iov_len == dst)
		l->iov_len += len;
	else
		c->l[c->nl++] = (struct iovec){ dst, len };
	if (r && (uintptr_t)r->iov_base + r->iov_len == s)
		r->iov_len += len;
	else
		c->r[c->nr++] = (struct iovec){ (void *)(uintptr_t)s, len };
	c->bytes += len;
	if (c->nl == IOV_BATCH || c->nr == IOV_BATCH)
		copy_flush(c);
}

static void copy_staged(struct copier *c, uint64_t s, uint64_t e)
{
	while (s < e) {
		size_t room = STAGE_BYTES - c->staged;
		size_t len = e - s < room ? (size_t)(e - s) : room;
		char *dst = c->stage + c->staged;

		if (!room) {
			copy_flush(c);
			continue;
		}
		c->staged += len;
		copy_piece(c, s, len, dst);
		s += len;
	}
}

static void copy_run(struct copier *c, uint64_t s, uint64_t e)
{
	uint64_t lo = s > c->sh_start ? s : c->sh_start;
	uint64_t hi = e < c->sh_end ? e : c->sh_end;

	if (!c->shadow || lo >= hi) {
		copy_staged(c, s, e);
		return;
	}
	if (s < lo)
		copy_staged(c, s, lo);
	/* a read moves at most 2 GiB - 4 KiB (MAX_RW_COUNT) */
	for (uint64_t a = lo; a < hi; a += SHADOW_PIECE) {
		size_t len = hi - a < SHADOW_PIECE ? hi - a : SHADOW_PIECE;

		if (c->bytes + len > BATCH_BYTES)
			copy_flush(c);
		copy_piece(c, a, len, c->shadow + (a - c->sh_start));
	}
	if (hi < e)
		copy_staged(c, hi, e);
}

static void copy_runs(struct copier *c, const struct runs *r)
{
	for (size_t i = 0; i < r->n; i++)
		copy_run(c, r->v[i].start, r->v[i].end);
	copy_flush(c);
}

/* an unnamed file in @dir for the images */
static int image_file(const char *dir)
{
	char path[4096];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/" PROG ".XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		fail(path, errno);
	unlink(path);
	return fd;
}

/* empty the image file: each image starts a new one */
static void image_reset(int fd)
{
	if (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET))
		fail("ftruncate", errno);
}

/* ---- 1. stop time per injection ----------------------------------------- */

static void inject_once(pid_t pid, double *stop, double *wall)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .pid = pid);
	PMTRACK_OPTS(pmtrack_stats, st);
	struct pmtrack *tr;
	uint64_t t0 = bench_now_ns();
	int ret = pmtrack_new(&o, &tr);

	if (ret)
		fail("pmtrack_new(.pid)", -ret);
	ret = pmtrack_get_stats(tr, &st);
	pmtrack_free(tr);
	*wall = (double)(bench_now_ns() - t0);
	if (ret)
		fail("pmtrack_get_stats", -ret);
	if (st.injections != 1) {
		fprintf(stderr, PROG ": %" PRIu64 " injections, not 1\n",
			st.injections);
		exit(1);
	}
	*stop = (double)st.inject_stop_ns;
}

static void print_mmm(const char *what, double *v, int n)
{
	double m = med(v, n); /* sorts v */

	printf("| %s | %.3f | %.3f | %.3f |\n", what, v[0] / 1e6, m / 1e6,
	       v[n - 1] / 1e6);
}

static void sec_inject(const struct cfg *c, struct target *t)
{
	int n = c->injections, nthr = 0;
	double *inj = xcalloc((size_t)n, sizeof(*inj));
	double *wall = xcalloc((size_t)n, sizeof(*wall));
	double *bare = xcalloc((size_t)n, sizeof(*bare));
	double mi, mb;

	ctl_rate(t->ctl, INJECT_RATE);
	sleep_ns(100 * MS);
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < 2; k++) {
			uint64_t ns;
			int ret;

			if ((i + k) % 2 == 0) {
				inject_once(t->pid, &inj[i], &wall[i]);
				continue;
			}
			ret = bare_stop(t->pid, &ns, &nthr);
			if (ret)
				fail("bare ptrace stop", -ret);
			bare[i] = (double)ns;
		}
		sleep_ns(10 * MS);
	}
	printf("## 1. Stop time per injection (%d times, %zu MiB target, %d "
	       "threads, %d writers at %d pages/s)\n\n",
	       n, c->size_mib, nthr, NWRITERS, INJECT_RATE);
	printf("injection = pmtrack_stats.inject_stop_ns of pmtrack_new(.pid): "
	       "how long every thread of the target was stopped to run "
	       "userfaultfd() and close() in it.  bare stop = the same "
	       "target stopped by this program alone: PTRACE_SEIZE + "
	       "PTRACE_INTERRUPT of every thread, a wait for each stop, "
	       "PTRACE_DETACH, timed the same way.  The two alternate.\n\n");
	printf("| what | min ms | median ms | max ms |\n|---|--:|--:|--:|\n");
	print_mmm("injection: target stopped", inj, n);
	print_mmm("bare stop (seize + interrupt + wait + detach)", bare, n);
	print_mmm("pmtrack_new(.pid) + pmtrack_free(), wall", wall, n);
	mi = med(inj, n);
	mb = med(bare, n);
	printf("\ninjection / bare stop (medians): **%.2f**\n\n",
	       mb > 0 ? mi / mb : 0);
	fflush(stdout);
	free(inj);
	free(wall);
	free(bare);
}

/* ---- 2. per-round cost vs dirty pages --------------------------------- */

/* one side at one rate: every round of every rep */
struct rstat {
	double *collect; /* ns per round (local: the PAGEMAP_SCAN loop) */
	double *copy;	 /* ns per round (local: memcpy) */
	double *pages;	 /* pages reported per round */
	double *rpages;	 /* of them in the region */
	/* the writers' longest gap between wake-ups (gap_take()): across
	 * the collect (from just before it to their first wake-up after
	 * it), and between the previous one and this */
	double *gap_in, *gap_out;
	int n, cap;
	uint64_t writes, ns; /* writer page writes over the rounds, and time */
	unsigned int full;   /* whole-mapping reports in timed rounds */
};

static void rstat_init(struct rstat *s, int cap)
{
	memset(s, 0, sizeof(*s));
	s->cap = cap;
	s->collect = xcalloc((size_t)cap, sizeof(double));
	s->copy = xcalloc((size_t)cap, sizeof(double));
	s->pages = xcalloc((size_t)cap, sizeof(double));
	s->rpages = xcalloc((size_t)cap, sizeof(double));
	s->gap_in = xcalloc((size_t)cap, sizeof(double));
	s->gap_out = xcalloc((size_t)cap, sizeof(double));
}

static void rstat_free(struct rstat *s)
{
	free(s->collect);
	free(s->copy);
	free(s->pages);
	free(s->rpages);
	free(s->gap_in);
	free(s->gap_out);
}

/* one round's figures (ns, pages) */
struct round {
	uint64_t collect, copy, pages, rpages, gap_in, gap_out;
};

static void rstat_add(struct rstat *s, const struct round *r)
{
	if (s->n == s->cap)
		return;
	s->collect[s->n] = (double)r->collect;
	s->copy[s->n] = (double)r->copy;
	s->pages[s->n] = (double)r->pages;
	s->rpages[s->n] = (double)r->rpages;
	s->gap_in[s->n] = (double)r->gap_in;
	s->gap_out[s->n] = (double)r->gap_out;
	s->n++;
}

/* this process's side: its own region, writers and raw tracker */
struct local {
	char *base;
	size_t len, npages, ps;
	struct bench_raw raw;
	struct wctl ctl;
	struct writer w[NWRITERS];
	void **pages;
	char *stage;
};

static int local_start(struct local *l, size_t len, size_t ps, char *stage)
{
	int ret;

	memset(l, 0, sizeof(*l));
	l->len = len;
	l->ps = ps;
	l->npages = len / ps;
	l->stage = stage;
	l->base = map_big(len, true);
	for (size_t off = 0; off < len; off += ps)
		*(volatile uint64_t *)(l->base + off) = off | 1;
	l->pages = xcalloc(l->npages, sizeof(*l->pages));
	ret = bench_raw_setup(&l->raw, l->base, len, ps);
	if (ret)
		return ret;
	ret = writers_start(l->w, &l->ctl, l->base, l->npages, ps, 7);
	if (ret)
		fail("pthread_create", ret);
	return 0;
}

static void local_stop(struct local *l)
{
	writers_join(l->w, &l->ctl);
	bench_raw_close(&l->raw);
	free(l->pages);
	munmap(l->base, l->len);
}

static long local_scan(struct local *l)
{
	uintptr_t b = (uintptr_t)l->base;
	long n = bench_raw_collect(&l->raw, b, b + l->len, true, 0, l->pages);

	if (n < 0)
		fail("PAGEMAP_SCAN", (int)-n);
	return n;
}

static void local_rounds(const struct cfg *c, struct local *l, struct rstat *s)
{
	size_t slots = STAGE_BYTES / l->ps;
	uint64_t w0, t0, next;

	local_scan(l);
	gap_settle(&l->ctl, bench_now_ns());
	gap_take(&l->ctl);
	w0 = ctl_writes(&l->ctl);
	t0 = bench_now_ns();
	next = t0 + ROUND_NS;
	for (int i = 0; i < c->rounds; i++) {
		struct round rd;
		uint64_t a, b, e;
		long n;

		sleep_until(next);
		next += ROUND_NS;
		rd.gap_out = gap_take(&l->ctl);
		a = bench_now_ns();
		n = local_scan(l);
		b = bench_now_ns();
		BENCH_LIVE_READ_BEGIN();
		for (long k = 0; k < n; k++)
			memcpy(l->stage + (size_t)k % slots * l->ps,
			       l->pages[k], l->ps);
		BENCH_LIVE_READ_END();
		e = bench_now_ns();
		gap_settle(&l->ctl, b);
		rd.gap_in = gap_take(&l->ctl);
		rd.collect = b - a;
		rd.copy = e - b;
		rd.pages = rd.rpages = (uint64_t)n;
		rstat_add(s, &rd);
	}
	s->writes += ctl_writes(&l->ctl) - w0;
	s->ns += bench_now_ns() - t0;
}

static void remote_rounds(const struct cfg *c, struct target *t,
			  struct pmtrack_proc *p, struct runs *r,
			  struct copier *cp, struct rstat *s)
{
	uint64_t w0, t0, next;

	proc_collect(p, r);
	gap_settle(t->ctl, bench_now_ns());
	gap_take(t->ctl);
	w0 = ctl_writes(t->ctl);
	t0 = bench_now_ns();
	next = t0 + ROUND_NS;
	for (int i = 0; i < c->rounds; i++) {
		struct round rd;
		uint64_t b;

		sleep_until(next);
		next += ROUND_NS;
		rd.gap_out = gap_take(t->ctl);
		rd.collect = proc_collect(p, r);
		b = bench_now_ns();
		copy_runs(cp, r);
		rd.copy = bench_now_ns() - b;
		gap_settle(t->ctl, b);
		rd.gap_in = gap_take(t->ctl);
		rd.pages = r->pages;
		rd.rpages = r->region_pages;
		rstat_add(s, &rd);
		s->full += r->full;
	}
	s->writes += ctl_writes(t->ctl) - w0;
	s->ns += bench_now_ns() - t0;
}

/* at a rate something must be reported in the region; at rate 0 nothing
 * if @exact (soft-dirty may report untouched pages: not there) */
static void rounds_check(const char *side, uint64_t rate, const struct rstat *s,
			 bool exact)
{
	double sum = 0;

	for (int i = 0; i < s->n; i++)
		sum += s->rpages[i];
	if (!rate == !sum || (!rate && !exact))
		return;
	fprintf(stderr,
		PROG ": rounds, %s at %" PRIu64 " pages/s: %.0f pages of "
		     "the region reported\n",
		side, rate, sum);
	exit(1);
}

/* the median over the rounds with pages of time / pages, or -1 */
static double per_page(const double *v, const double *pages, int n)
{
	double *r = xcalloc((size_t)n, sizeof(*r)), m;
	int k = 0;

	for (int i = 0; i < n; i++)
		if (pages[i] > 0)
			r[k++] = v[i] / pages[i];
	m = k ? med(r, k) : -1;
	free(r);
	return m;
}

static void print_us(double v)
{
	if (v < 0)
		printf(" - |");
	else
		printf(" %.2f |", v / 1e3);
}

/* one table row; @ref is the local side at the same rate (NULL for it,
 * and for a remote row where there is none: @remote) */
static void rounds_row(uint64_t rate, const char *side, struct rstat *s,
		       struct rstat *ref, bool remote)
{
	double pp = rate ? per_page(s->collect, s->pages, s->n) : -1;
	double cpp = rate ? per_page(s->copy, s->pages, s->n) : -1;
	double col, cp, pg, lcol, lcp, gi, go;

	pg = med(s->pages, s->n);
	col = med(s->collect, s->n);
	cp = med(s->copy, s->n);
	printf("| %" PRIu64 " | %s | %.0f | %.0f | %.1f |", rate, side,
	       s->ns ? (double)s->writes * 1e9 / (double)s->ns : 0, pg,
	       col / 1e3);
	print_us(pp);
	printf(" %.1f |", cp / 1e3);
	print_us(cpp);
	gi = med(s->gap_in, s->n);
	go = med(s->gap_out, s->n);
	printf(" %.2f |", gi / 1e6);
	if (go > 0)
		printf(" %.2f |", go / 1e6);
	else
		printf(" - |");
	if (!ref) {
		printf(remote ? " n/a | n/a |\n" : " - | - |\n");
		return;
	}
	lcol = med(ref->collect, ref->n);
	lcp = med(ref->copy, ref->n);
	printf(" **%.2f** | %.2f |\n", lcol > 0 ? col / lcol : 0,
	       lcol + lcp > 0 ? (col + cp) / (lcol + lcp) : 0);
}

/* what the collect means on soft-dirty, and where the local side is */
static void rounds_notes(const struct cfg *c, bool local)
{
	bool sd = false;

	for (int b = 0; b < c->nbackends; b++)
		sd |= c->backends[b] == PMTRACK_BACKEND_SOFT_DIRTY;
	if (!local)
		printf("No local side here: this kernel has no PAGEMAP_SCAN "
		       "with async uffd-wp, so remote / local is n/a.");
	if (sd)
		printf("%sOn soft-dirty the library freezes the target around "
		       "each RESET collect (its resets lose racing writes): "
		       "the target is stopped for about the collect's time "
		       "every round, and writer gap, collect (less the 1 ms "
		       "sleep) is that pause as the target sees it.",
		       local ? "" : "  ");
	if (sd || !local)
		printf("\n\n");
}

static void rounds_print(const struct cfg *c, struct rstat *loc,
			 struct rstat (*rem)[MAX_RATES])
{
	char side[64];
	unsigned int full = 0;

	printf("## 2. Per-round cost vs dirty pages (%zu MiB, rounds every "
	       "100 ms, %d rounds x %d reps per rate and side, medians)\n\n",
	       c->size_mib, c->rounds, c->reps);
	printf("remote = a pmtrack_proc on the target: collect = "
	       "pmtrack_proc_collect(RESET) (re-reads /proc/PID/maps, scans "
	       "every writable mapping), copy = process_vm_readv() of the "
	       "reported pages.  local = this process's own region of the "
	       "same size under a raw async uffd-wp userfaultfd: scan = one "
	       "PAGEMAP_SCAN + PM_SCAN_WP_MATCHING loop over it, copy = "
	       "memcpy() of the reported pages.  Each side's two writers "
	       "write random pages at the rate while the other side's idle.  "
	       "us/page = median over the rounds of time / pages.  "
	       "remote / local = median remote collect / median local scan "
	       "per round; with copy = (collect + copy) / (scan + "
	       "memcpy).  The remote count includes the target's stacks and "
	       "control page (a few pages per round).  writer gap = the "
	       "longest time between two wake-ups of a writer of that side "
	       "(each sleeps 1 ms between its writes), median over the "
	       "rounds: across the collect (from just before it to the "
	       "writers' first wake-up after it) and between collects (- "
	       "where most rounds had no wake-up between: the collects ran "
	       "back to back); a stop of the target shows in the "
	       "first.\n\n");
	rounds_notes(c, loc != NULL);
	printf("| rate pages/s | side | writes/s done | dirty pages/round | "
	       "collect us/round | collect us/page | copy us/round | copy "
	       "us/page | writer gap ms, collect | writer gap ms, between | "
	       "remote / local | with copy |\n");
	printf("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int i = 0; i < c->nrates; i++) {
		if (loc)
			rounds_row(c->rates[i], "local raw (scan, memcpy)",
				   &loc[i], NULL, false);
		for (int b = 0; b < c->nbackends; b++) {
			snprintf(side, sizeof(side), "remote %s",
				 pmtrack_backend_name(c->backends[b]));
			rounds_row(c->rates[i], side, &rem[b][i],
				   loc ? &loc[i] : NULL, true);
			full += rem[b][i].full;
		}
	}
	if (full)
		printf("\n%u whole-mapping (PMTRACK_PROC_FULL) reports in "
		       "timed rounds.\n",
		       full);
	printf("\n");
	fflush(stdout);
}

/* every rate, local then remote in rotating order, --reps times (remote
 * only without @l) */
static void rounds_backend(const struct cfg *c, struct target *t,
			   struct local *l, enum pmtrack_backend be,
			   struct rstat *loc, struct rstat *rem,
			   struct copier *cp)
{
	struct pmtrack_proc *p = proc_new(t, be);
	struct runs r;

	runs_init(&r, t, c->ps);
	proc_collect(p, &r); /* the first: every mapping, in full */
	for (int rep = 0; rep < c->reps; rep++) {
		for (int i = 0; i < c->nrates; i++) {
			for (int k = 0; k < 2; k++) {
				bool local = (rep + i + k) % 2 == 0;

				if (local && !l)
					continue;
				if (l)
					ctl_rate(&l->ctl,
						 local ? c->rates[i] : 0);
				ctl_rate(t->ctl, local ? 0 : c->rates[i]);
				sleep_ns(ROUND_NS);
				if (local)
					local_rounds(c, l, &loc[i]);
				else
					remote_rounds(c, t, p, &r, cp, &rem[i]);
			}
		}
	}
	if (l)
		ctl_rate(&l->ctl, 0);
	ctl_rate(t->ctl, 0);
	pmtrack_proc_free(p);
	free(r.v);
}

static void sec_rounds(const struct cfg *c, struct target *t, char *stage)
{
	struct rstat loc[MAX_RATES], rem[MAX_BACKENDS][MAX_RATES];
	int cap = c->rounds * c->reps * c->nbackends;
	struct copier *cp = copier_new(t->pid, stage);
	struct local l, *lp = c->raw ? &l : NULL;
	int ret;

	if (lp) {
		ret = local_start(lp, c->len, c->ps, stage);
		if (ret)
			fail("local uffd-wp + PAGEMAP_SCAN", -ret);
	}
	for (int i = 0; i < c->nrates; i++) {
		rstat_init(&loc[i], cap);
		for (int b = 0; b < c->nbackends; b++)
			rstat_init(&rem[b][i], cap);
	}
	for (int b = 0; b < c->nbackends; b++)
		rounds_backend(c, t, lp, c->backends[b], loc, rem[b], cp);
	if (lp)
		local_stop(lp);
	for (int i = 0; i < c->nrates; i++) {
		if (lp)
			rounds_check("local", c->rates[i], &loc[i], true);
		for (int b = 0; b < c->nbackends; b++)
			rounds_check(pmtrack_backend_name(c->backends[b]),
				     c->rates[i], &rem[b][i],
				     c->backends[b] ==
					     PMTRACK_BACKEND_PAGEMAP_SCAN);
	}
	rounds_print(c, lp ? loc : NULL, rem);
	for (int i = 0; i < c->nrates; i++) {
		rstat_free(&loc[i]);
		for (int b = 0; b < c->nbackends; b++)
			rstat_free(&rem[b][i]);
	}
	free(cp);
}

/* ---- 3. incremental dump / full dump ------------------------------------ */

/* read @fd to its end into a growing buffer; after @limit_s seconds the
 * process group @pg is killed (then the end comes) */
static char *read_all(int fd, pid_t pg, unsigned int limit_s)
{
	uint64_t deadline = bench_now_ns() + limit_s * NS;
	size_t len = 0, cap = 65536;
	char *out = xcalloc(cap, 1);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			out = realloc(out, cap *= 2);
			if (!out)
				fail("realloc", ENOMEM);
		}
		if (!poll(&pfd, 1, 100) && pg && bench_now_ns() > deadline) {
			fprintf(stderr, PROG ": killed after %u s\n", limit_s);
			kill(-pg, SIGKILL);
			pg = 0;
		}
		n = read(fd, out + len, cap - len - 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	out[len] = 0;
	return out;
}

/* a child's stdout (and stderr if @both) until it exits; its status.  Its
 * process group is killed after @limit_s seconds. */
static char *run_capture(char *const argv[], bool both, unsigned int limit_s,
			 int *status)
{
	char *out;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		fail("pipe2", errno);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fail("fork", errno);
	if (!pid) {
		setpgid(0, 0);
		if (dup2(p[1], 1) < 0 || (both && dup2(p[1], 2) < 0))
			_exit(127);
		/* blocking writes for the child */
		fcntl(1, F_SETFL, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	setpgid(pid, pid);
	close(p[1]);
	out = read_all(p[0], pid, limit_s);
	close(p[0]);
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid", errno);
	return out;
}

static const char *json_ws(const char *v, const char *end)
{
	while (v < end && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'))
		v++;
	return v;
}

/* the closing quote of the string opening at @p, or @end */
static const char *json_str_end(const char *p, const char *end)
{
	const char *q = p + 1;

	while (q < end && *q != '"')
		q += *q == '\\' ? 2 : 1;
	return q < end ? q : end;
}

/* the scalar at @v (a string without its quotes) into @val */
static void json_scalar(const char *v, const char *end, char *val, size_t vsz)
{
	size_t n = 0;

	if (v < end && *v == '"')
		v++;
	while (v < end && *v && !strchr("\",}] \t\r\n", *v) && n + 1 < vsz)
		val[n++] = *v++;
	val[n] = 0;
}

/* the value of @key at the top level of the JSON object [s, end), as text
 * (a string without its quotes); false if it is not there */
static bool json_get(const char *s, const char *end, const char *key, char *val,
		     size_t vsz)
{
	size_t klen = strlen(key);
	int depth = 0;

	for (const char *p = s; p < end; p++) {
		const char *q, *v;

		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		if (*p != '"')
			continue;
		q = json_str_end(p, end);
		if (q == end)
			return false;
		v = json_ws(q + 1, end);
		if (depth == 1 && v < end && *v == ':' &&
		    (size_t)(q - p - 1) == klen && !memcmp(p + 1, key, klen)) {
			json_scalar(json_ws(v + 1, end), end, val, vsz);
			return true;
		}
		p = q;
	}
	return false;
}

/* one image of a `pmtrack dump --pid` run, from its --json output */
struct tool_img {
	int idx;
	double ms;	   /* the whole image */
	double collect_ms; /* its collect */
	double pages_ms;   /* reading and writing its pages */
	double pages;
	bool frozen;
	char backend[32]; /* image 0: the run's, from its summary */
};

static double json_num(const char *s, const char *e, const char *key)
{
	char v[32];

	return json_get(s, e, key, v, sizeof(v)) ? atof(v) : 0;
}

static void tool_object(const char *s, const char *e, struct tool_img *img,
			int *n)
{
	char type[32], idx[32], frozen[16];
	bool typed = json_get(s, e, "type", type, sizeof(type));

	/* the result (before 0.2 "summary") comes after the images (before
	   0.2 "image", their index "image" and time "ms") */
	if (typed && (!strcmp(type, "result") || !strcmp(type, "summary")))
		json_get(s, e, "backend", img[0].backend,
			 sizeof(img[0].backend));
	if (*n == MAX_IMAGES || !(json_get(s, e, "index", idx, sizeof(idx)) ||
				  json_get(s, e, "image", idx, sizeof(idx))))
		return;
	if (typed && strcmp(type, "status") && strcmp(type, "image"))
		return;
	img[*n] = (struct tool_img){
		.idx = atoi(idx),
		.ms = json_num(s, e, "duration_ms") + json_num(s, e, "ms"),
		.collect_ms = json_num(s, e, "collect_ms"),
		.pages_ms = json_num(s, e, "pages_ms"),
		.pages = json_num(s, e, "pages"),
	};
	if (json_get(s, e, "frozen", frozen, sizeof(frozen)))
		img[*n].frozen = !strcmp(frozen, "true");
	(*n)++;
}

/* the per-image objects of the tool's --json output */
static int tool_parse(const char *out, struct tool_img *img)
{
	const char *obj = NULL;
	int depth = 0, n = 0;

	for (const char *p = out; *p; p++) {
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++)
				if (*p == '\\' && p[1])
					p++;
			if (!*p)
				break;
		} else if (*p == '{' || *p == '[') {
			if (!depth++)
				obj = p;
		} else if ((*p == '}' || *p == ']') && depth > 0) {
			if (!--depth && *obj == '{')
				tool_object(obj, p + 1, img, &n);
		}
	}
	return n;
}

/* the tool, if it is there and has dump --pid; the help text's options */
static bool tool_usable(const struct cfg *c, bool *interval_ms, bool *no_digest,
			bool *no_verify)
{
	char *argv[] = { (char *)c->tool, "dump", "--help", NULL };
	char *help;
	bool ok;
	int st;

	if (!*c->tool || access(c->tool, X_OK))
		return false;
	help = run_capture(argv, true, 30, &st);
	ok = strstr(help, "--pid") && strstr(help, "--json");
	*interval_ms = strstr(help, "--interval-ms") != NULL;
	*no_verify = strstr(help, "--no-verify") != NULL;
	*no_digest = *no_verify ||
		     strstr(help, "--no-digest") != NULL;
	free(help);
	return ok;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* `pmtrack dump --pid` against the target, its images into @img */
static int tool_run(const struct cfg *c, const struct target *t,
		    struct tool_img *img)
{
	char dir[4096], pid[16], dumps[16], ivl[32];
	bool ivl_ms, nodig, noverify;
	char *argv[16], *out;
	int n = 0, st, nimg;

	if (!tool_usable(c, &ivl_ms, &nodig, &noverify))
		return -1;
	snprintf(dir, sizeof(dir), "%s/" PROG ".XXXXXX", c->dir);
	if (!mkdtemp(dir))
		fail(dir, errno);
	snprintf(pid, sizeof(pid), "%d", (int)t->pid);
	snprintf(dumps, sizeof(dumps), "%d", c->incs + 1);
	snprintf(ivl, sizeof(ivl), "%" PRIu64, c->interval_ms);
	argv[n++] = (char *)c->tool;
	argv[n++] = "dump";
	argv[n++] = "--pid";
	argv[n++] = pid;
	argv[n++] = "--dumps";
	argv[n++] = dumps;
	argv[n++] = ivl_ms ? "--interval-ms" : "--interval";
	argv[n++] = ivl;
	argv[n++] = "--json";
	if (nodig)
		argv[n++] = noverify ? "--no-verify" : "--no-digest";
	argv[n++] = dir;
	argv[n] = NULL;
	out = run_capture(
		argv, false,
		(unsigned int)(c->interval_ms * (uint64_t)c->incs / 1000) + 120,
		&st);
	nimg = tool_parse(out, img);
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !nimg) {
		fprintf(stderr,
			PROG ": %s dump --pid: status %#x, %d images; "
			     "output:\n%s\n",
			c->tool, st, nimg, out);
		nimg = -2;
	}
	free(out);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return nimg;
}

/* medians over the @runs runs of the tool, @n images each */
static void tool_print(const struct cfg *c, struct tool_img (*img)[MAX_IMAGES],
		       int runs, int n)
{
	double v[5][64];

	printf("`pmtrack dump --pid PID --dumps %d --interval-ms %" PRIu64
	       " --json --no-verify` (%s; backend %s%s) "
	       "against the target, %d runs, medians.  Its interval is the "
	       "sleep between images, so image "
	       "1 also covers image 0's time.  The last image is taken "
	       "frozen.  collect and pages (read + write) are the tool's own "
	       "figures; rest = ms - collect - pages.\n\n",
	       c->incs + 1, c->interval_ms, c->tool,
	       img[0][0].backend[0] ? img[0][0].backend : "?",
	       strcmp(c->want, "auto") ? ", through PMTRACK_BACKEND"
				       : ", its automatic choice",
	       runs);
	printf("| image | frozen | pages | %% of the region | ms | collect ms "
	       "| pages ms | rest ms | ÷ image 0 |\n"
	       "|--:|---|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int k = 0; k < n; k++) {
		for (int r = 0; r < runs; r++) {
			struct tool_img *x = &img[r][k];

			v[0][r] = x->pages;
			v[1][r] = x->ms;
			v[2][r] = x->collect_ms;
			v[3][r] = x->pages_ms;
			v[4][r] = img[r][0].ms > 0 ? x->ms / img[r][0].ms : 0;
		}
		printf("| %d | %s | %.0f | %.2f | %.1f | %.1f | %.1f | %.1f | "
		       "%s%.3f%s |\n",
		       k, img[0][k].frozen ? "yes" : "no", med(v[0], runs),
		       100.0 * v[0][runs / 2] / (double)c->npages,
		       med(v[1], runs), med(v[2], runs), med(v[3], runs),
		       v[1][runs / 2] - v[2][runs / 2] - v[3][runs / 2],
		       k ? "**" : "", med(v[4], runs), k ? "**" : "");
	}
	printf("\n");
}

/* the tool --reps times; how many images each run gave, or -1 (no tool)
 * or -2 (it failed) */
static int tool_runs(const struct cfg *c, const struct target *t,
		     struct tool_img (*img)[MAX_IMAGES])
{
	int n = MAX_IMAGES;

	for (int r = 0; r < c->reps && r < 64; r++) {
		int k = tool_run(c, t, img[r]);

		if (k < 0)
			return k;
		n = k < n ? k : n;
	}
	return n;
}

/* every existing page (PRESENT | SWAPPED) of the writable mappings */
static void existing_pages(struct pmtrack_pstate *ps, struct runs *r)
{
	struct pmtrack_page_run pr[1024];
	const struct pmtrack_mapping *maps;
	size_t nm;
	int ret;

	runs_clear(r);
	ret = pmtrack_pstate_maps(ps, &maps, &nm);
	if (ret)
		fail("pmtrack_pstate_maps", -ret);
	for (size_t i = 0; i < nm; i++) {
		uint64_t s = maps[i].start, e = maps[i].end;

		if (!(maps[i].prot & PROT_WRITE) ||
		    (maps[i].flags & PMTRACK_MAP_SPECIAL))
			continue;
		while (s < e) {
			size_t cnt = sizeof(pr) / sizeof(*pr);

			ret = pmtrack_pstate_runs(ps, s, e,
						  PMTRACK_PAGE_PRESENT |
							  PMTRACK_PAGE_SWAPPED,
						  pr, &cnt, &s);
			if (ret)
				fail("pmtrack_pstate_runs", -ret);
			for (size_t k = 0; k < cnt; k++)
				if (runs_add(r, pr[k].start, pr[k].end))
					fail("realloc", ENOMEM);
		}
	}
}

/* one image's medians; incremental images 1.., image 0 the full one */
struct dstat {
	double *ms, *scan, *read, *write, *pages;
	int n;
};

static void dstat_add(struct dstat *d, uint64_t total, uint64_t scan,
		      struct copier *cp, uint64_t pages)
{
	uint64_t rd, wr;

	copier_times(cp, &rd, &wr);
	d->ms[d->n] = (double)total / 1e6;
	d->scan[d->n] = (double)scan / 1e6;
	d->read[d->n] = (double)rd / 1e6;
	d->write[d->n] = (double)wr / 1e6;
	d->pages[d->n] = (double)pages;
	d->n++;
}

/* full, then c->incs incremental images, one interval apart */
static void dump_once(const struct cfg *c, struct target *t,
		      enum pmtrack_backend be, struct copier *cp,
		      struct pmtrack_pstate *ps, struct runs *r,
		      struct dstat *d, double *ratio)
{
	struct pmtrack_proc *p = proc_new(t, be);
	uint64_t t0, t1, prev;

	proc_collect(p, r);
	image_reset(cp->fd);
	t0 = bench_now_ns();
	existing_pages(ps, r);
	t1 = bench_now_ns();
	copy_runs(cp, r);
	dstat_add(&d[0], bench_now_ns() - t0, t1 - t0, cp, r->pages);
	proc_collect(p, r);
	prev = bench_now_ns();
	for (int k = 1; k <= c->incs; k++) {
		uint64_t col;

		image_reset(cp->fd);
		sleep_until(prev + c->interval_ms * MS);
		t0 = bench_now_ns();
		col = proc_collect(p, r);
		copy_runs(cp, r);
		dstat_add(&d[k], bench_now_ns() - t0, col, cp, r->pages);
		ratio[k * c->reps + d[k].n - 1] =
			d[k].ms[d[k].n - 1] / d[0].ms[d[0].n - 1];
		prev = t0;
	}
	pmtrack_proc_free(p);
}

static void dump_print(const struct cfg *c, enum pmtrack_backend be,
		       struct dstat *d, double *ratio)
{
	for (int k = 0; k <= c->incs; k++) {
		struct dstat *s = &d[k];
		double pg = med(s->pages, s->n);

		printf("| %s | %s %d | %.0f | %.2f | %.1f | %.1f | %.1f | "
		       "%.1f |",
		       pmtrack_backend_name(be), k ? "incremental" : "full", k,
		       pg, 100.0 * pg / (double)c->npages, med(s->ms, s->n),
		       med(s->scan, s->n), med(s->read, s->n),
		       med(s->write, s->n));
		if (k)
			printf(" **%.3f** |\n",
			       med(&ratio[k * c->reps], c->reps));
		else
			printf(" 1 |\n");
	}
}

static void dump_inproc(const struct cfg *c, struct target *t,
			enum pmtrack_backend be, struct copier *cp,
			struct pmtrack_pstate *ps)
{
	struct dstat *d = xcalloc((size_t)c->incs + 1, sizeof(*d));
	double *ratio = xcalloc((size_t)(c->incs + 1) * (size_t)c->reps,
				sizeof(double));
	struct runs r;

	runs_init(&r, t, c->ps);
	for (int k = 0; k <= c->incs; k++) {
		d[k].ms = xcalloc((size_t)c->reps, sizeof(double));
		d[k].scan = xcalloc((size_t)c->reps, sizeof(double));
		d[k].read = xcalloc((size_t)c->reps, sizeof(double));
		d[k].write = xcalloc((size_t)c->reps, sizeof(double));
		d[k].pages = xcalloc((size_t)c->reps, sizeof(double));
	}
	for (int rep = 0; rep < c->reps; rep++)
		dump_once(c, t, be, cp, ps, &r, d, ratio);
	dump_print(c, be, d, ratio);
	for (int k = 0; k <= c->incs; k++) {
		free(d[k].ms);
		free(d[k].scan);
		free(d[k].read);
		free(d[k].write);
		free(d[k].pages);
	}
	free(d);
	free(ratio);
	free(r.v);
}

static void sec_dump(const struct cfg *c, struct target *t, char *stage)
{
	PMTRACK_OPTS(pmtrack_pstate_opts, po, .pid = t->pid);
	static struct tool_img img[64][MAX_IMAGES];
	uint64_t rate = t->npages * 1000 / 100 / c->interval_ms;
	struct copier *cp = copier_new(t->pid, stage);
	struct pmtrack_pstate *ps;
	int n, ret;

	ctl_rate(t->ctl, rate);
	sleep_ns(ROUND_NS);
	printf("## 3. Incremental dump at ~1%% dirty / full dump (%zu MiB, "
	       "writers at %" PRIu64 " pages/s = 1%% of the region per "
	       "%" PRIu64 " ms)\n\n",
	       c->size_mib, rate, c->interval_ms);
	n = tool_runs(c, t, img);
	if (n > 0)
		tool_print(c, img, c->reps < 64 ? c->reps : 64, n);
	else if (n == -1)
		printf("`pmtrack dump --pid` is not in this build (%s): the "
		       "library alone, in this process:\n\n",
		       *c->tool ? c->tool : "no tool built");
	else
		printf("`pmtrack dump --pid` failed (see stderr): the "
		       "library alone, in this process:\n\n");
	ret = pmtrack_pstate_new(&po, &ps);
	if (ret)
		fail("pmtrack_pstate_new", -ret);
	cp->fd = image_file(c->dir);
	printf("In this process: full = page-state scan (PRESENT | SWAPPED) "
	       "of the target's writable mappings + process_vm_readv() of "
	       "those pages + writev() to a file in %s (no fsync); "
	       "incremental k = pmtrack_proc_collect(RESET) %" PRIu64
	       " ms after the previous collect + read + write of the "
	       "reported pages.  Medians of %d; ratio = incremental ms / "
	       "full ms of the same rep.\n\n",
	       c->dir, c->interval_ms, c->reps);
	printf("| backend | image | pages | %% of the region | ms | "
	       "scan/collect ms | read ms | write ms | ÷ full |\n");
	printf("|---|---|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int b = 0; b < c->nbackends; b++)
		dump_inproc(c, t, c->backends[b], cp, ps);
	printf("\n");
	fflush(stdout);
	ctl_rate(t->ctl, 0);
	close(cp->fd);
	pmtrack_pstate_free(ps);
	free(cp);
}

/* ---- 4. final frozen dump's downtime ------------------------------------ */

struct down {
	double total, freeze, collect, read, write, thaw, pages;
	uint64_t bad; /* pages of the shadow unlike the frozen memory */
};

/* compare the shadow with the target's region: the pages that differ */
static uint64_t shadow_diff(const struct target *t, const char *shadow,
			    char *scratch, size_t ps)
{
	uint64_t bad = 0;

	for (size_t off = 0; off < t->len; off += STAGE_BYTES) {
		size_t n =
			t->len - off < STAGE_BYTES ? t->len - off : STAGE_BYTES;
		struct iovec l = { scratch, n };
		struct iovec r = { (void *)(uintptr_t)(t->base + off), n };

		if (process_vm_readv(t->pid, &l, 1, &r, 1, 0) != (ssize_t)n)
			fail("process_vm_readv (verify)", errno);
		if (!memcmp(scratch, shadow + off, n))
			continue;
		for (size_t k = 0; k < n; k += ps)
			bad += memcmp(scratch + k, shadow + off + k, ps) != 0;
	}
	return bad;
}

/* the frozen part, timed but for the comparison */
static void final_image(const struct cfg *c, struct target *t,
			struct pmtrack_proc *p, struct copier *cp,
			struct runs *r, struct down *d)
{
	uint64_t t0, t1, t2, t3, t4, rd, wr, w;
	int ret;

	t0 = bench_now_ns();
	ret = pmtrack_proc_freeze(p);
	t1 = bench_now_ns();
	if (ret)
		fail("pmtrack_proc_freeze", -ret);
	t2 = t1 + proc_collect(p, r);
	copy_runs(cp, r);
	t3 = bench_now_ns();
	copier_times(cp, &rd, &wr);
	/* untimed, while frozen: is the image the memory? */
	w = ctl_writes(t->ctl);
	d->bad = shadow_diff(t, cp->shadow, cp->stage, c->ps);
	if (ctl_writes(t->ctl) != w) {
		fprintf(stderr, PROG ": the target wrote while frozen\n");
		exit(1);
	}
	t4 = bench_now_ns();
	ret = pmtrack_proc_thaw(p);
	d->thaw = (double)(bench_now_ns() - t4);
	if (ret)
		fail("pmtrack_proc_thaw", -ret);
	d->freeze = (double)(t1 - t0);
	d->collect = (double)(t2 - t1);
	d->read = (double)rd;
	d->write = (double)wr;
	d->total = (double)(t3 - t0) + d->thaw;
	d->pages = (double)r->pages;
}

static void downtime_once(const struct cfg *c, struct target *t,
			  enum pmtrack_backend be, struct copier *cp,
			  struct down *d)
{
	struct pmtrack_proc *p = proc_new(t, be);
	uint64_t next, rd, wr;
	struct runs r;
	int fd;

	runs_init(&r, t, c->ps);
	cp->sh_start = t->base;
	cp->sh_end = t->base + t->len;
	proc_collect(p, &r);
	/* image 0 (untimed): the region, whole, into the shadow */
	runs_clear(&r);
	runs_add(&r, t->base, t->base + t->len);
	fd = cp->fd;
	cp->fd = -1;
	copy_runs(cp, &r);
	cp->fd = fd;
	next = bench_now_ns() + ROUND_NS;
	for (int i = 0; i < c->pre_rounds; i++) {
		sleep_until(next);
		next += ROUND_NS;
		image_reset(cp->fd);
		proc_collect(p, &r);
		copy_runs(cp, &r);
	}
	image_reset(cp->fd);
	copier_times(cp, &rd, &wr);
	sleep_until(next);
	final_image(c, t, p, cp, &r, d);
	pmtrack_proc_free(p);
	free(r.v);
}

/* MemAvailable, bytes (0 if unknown) */
static uint64_t mem_available(void)
{
	unsigned long long kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb << 10;
}

#define NSIZES 3

static void down_print(const struct cfg *c, enum pmtrack_backend be,
		       const size_t *mib, int nsizes, struct down *d)
{
	double v[6][64], per[64], ref = 0;

	for (int s = 0; s < nsizes; s++) {
		struct down *x = &d[s * c->reps];
		uint64_t bad = 0;
		double pp;

		for (int i = 0; i < c->reps; i++) {
			v[0][i] = x[i].total;
			v[1][i] = x[i].pages;
			v[2][i] = x[i].freeze;
			v[3][i] = x[i].collect;
			v[4][i] = x[i].read + x[i].write;
			v[5][i] = x[i].thaw;
			per[i] = x[i].pages > 0 ? x[i].total / x[i].pages : 0;
			bad += x[i].bad;
		}
		pp = med(per, c->reps);
		if (!s)
			ref = pp;
		printf("| %s | %zu | %.0f | %.2f | %.2f | %.2f | %.2f | "
		       "%.2f | **%.2f** | %.2f | %" PRIu64 " |\n",
		       pmtrack_backend_name(be), mib[s], med(v[1], c->reps),
		       med(v[0], c->reps) / 1e6, med(v[2], c->reps) / 1e6,
		       med(v[3], c->reps) / 1e6, med(v[4], c->reps) / 1e6,
		       med(v[5], c->reps) / 1e6, pp / 1e3,
		       ref > 0 ? pp / ref : 0, bad);
	}
}

static void sec_downtime(const struct cfg *c, struct target *main_t,
			 char *stage)
{
	size_t mib[NSIZES] = { c->size_mib / 4, c->size_mib, 2 * c->size_mib };
	struct target tg[NSIZES], *tp[NSIZES];
	int nsizes = NSIZES, reps = c->reps > 64 ? 64 : c->reps;
	struct down *d;
	struct copier *cp = copier_new(0, stage);
	char *shadow;
	uint64_t need = ((uint64_t)mib[2] << 21) + (512ull << 20);

	if (mem_available() < need)
		nsizes = 2;
	shadow = map_big(mib[nsizes - 1] << 20, false);
	cp->shadow = shadow;
	cp->fd = image_file(c->dir);
	for (int s = 0; s < nsizes; s++) {
		tp[s] = s == 1 ? main_t : &tg[s];
		if (s != 1)
			target_start(tp[s], mib[s] << 20, c->ps);
	}
	d = xcalloc((size_t)(nsizes * reps * c->nbackends), sizeof(*d));
	for (int b = 0; b < c->nbackends; b++)
		for (int rep = 0; rep < reps; rep++)
			for (int k = 0; k < nsizes; k++) {
				int s = (rep + k) % nsizes;

				ctl_rate(tp[s]->ctl, c->final_rate);
				sleep_ns(ROUND_NS);
				cp->pid = tp[s]->pid;
				downtime_once(
					c, tp[s], c->backends[b], cp,
					&d[(b * nsizes + s) * reps + rep]);
				ctl_rate(tp[s]->ctl, 0);
			}
	printf("## 4. Final frozen dump: downtime vs dirty pages (writers at "
	       "%" PRIu64 " pages/s at every size, %d pre-dump rounds every "
	       "100 ms, medians of %d)\n\n",
	       c->final_rate, c->pre_rounds, reps);
	if (nsizes < NSIZES)
		printf("%zu MiB left out: MemAvailable below %" PRIu64
		       " MiB.\n\n",
		       mib[2], need >> 20);
	printf("downtime = pmtrack_proc_freeze() + final "
	       "pmtrack_proc_collect(RESET) + process_vm_readv() of the "
	       "reported pages + writev() to a file + pmtrack_proc_thaw(); "
	       "the check that the shadow image equals the frozen memory "
	       "runs in between and is not counted.  dirty pages = pages in "
	       "the final collect.  us/page = downtime / dirty pages; ÷ "
	       "smallest = that over the smallest size's.  differing pages = "
	       "pages of the image unlike the frozen memory, all reps (must "
	       "be 0).\n\n");
	printf("| backend | MiB | dirty pages | downtime ms | freeze ms | "
	       "collect ms | read + write ms | thaw ms | downtime us/page | "
	       "÷ smallest | differing pages |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int b = 0; b < c->nbackends; b++)
		down_print(c, c->backends[b], mib, nsizes,
			   &d[b * nsizes * reps]);
	printf("\n");
	fflush(stdout);
	for (int i = 0; i < nsizes * reps * c->nbackends; i++) {
		if (d[i].bad) {
			fprintf(stderr,
				PROG ": downtime, %s: the frozen image differs "
				     "from the memory in %" PRIu64 " pages\n",
				pmtrack_backend_name(
					c->backends[i / (nsizes * reps)]),
				d[i].bad);
			exit(1);
		}
	}
	for (int s = 0; s < nsizes; s++)
		if (s != 1)
			target_stop(tp[s]);
	close(cp->fd);
	munmap(shadow, mib[nsizes - 1] << 20);
	free(cp);
	free(d);
}

/* ---- 5. the target's slowdown ------------------------------------------- */

struct slow {
	double rate;   /* stores/s */
	double faults; /* first writes after a re-arm: pages reported */
	double ns;
	double stores;
};

static void slow_once(const struct cfg *c, struct target *t, uint64_t span,
		      bool tracked, struct slow *s)
{
	struct pmtrack_proc *p = NULL;
	uint64_t gen, next, faults = 0;
	struct runs r;

	runs_init(&r, t, c->ps);
	if (tracked) {
		p = proc_new(t, c->backends[0]);
		proc_collect(p, &r);
	}
	gen = ctl_full(t->ctl, span, c->run_ns);
	next = bench_now_ns() + ROUND_NS;
	/* both ways wake every 100 ms: only the collect differs */
	while (!ctl_full_done(t->ctl, gen)) {
		sleep_until(next);
		next += ROUND_NS;
		if (!tracked)
			continue;
		proc_collect(p, &r);
		faults += r.region_pages;
	}
	if (tracked) {
		proc_collect(p, &r);
		faults += r.region_pages;
		pmtrack_proc_free(p);
	}
	s->stores = (double)t->ctl->w[0].stores;
	s->ns = (double)t->ctl->w[0].ns;
	s->rate = s->stores * 1e9 / s->ns;
	s->faults = (double)faults;
	ctl_rate(t->ctl, 0);
	free(r.v);
}

/* untracked and tracked, in alternating order, --reps times */
static void slow_pattern(const struct cfg *c, struct target *t, uint64_t span,
			 int reps, struct slow *a, struct slow *b)
{
	for (int rep = 0; rep < reps; rep++) {
		bool tracked_first = rep % 2;

		slow_once(c, t, span, tracked_first,
			  tracked_first ? &b[rep] : &a[rep]);
		slow_once(c, t, span, !tracked_first,
			  tracked_first ? &a[rep] : &b[rep]);
	}
}

static void sec_slowdown(const struct cfg *c, struct target *t)
{
	struct slow a[2][64], b[2][64];
	double u[64], tr[64], ratio[2][64], per[64], fps[64], bg, m;
	int reps = c->reps > 64 ? 64 : c->reps;

	/* the working set first: its slowdown is subtracted below */
	slow_pattern(c, t, WSET_PAGES, reps, a[1], b[1]);
	slow_pattern(c, t, t->npages, reps, a[0], b[0]);
	for (int rep = 0; rep < reps; rep++)
		ratio[1][rep] = b[1][rep].rate / a[1][rep].rate;
	/* noise can make it negative: then nothing is subtracted */
	bg = 1 - med(ratio[1], reps);
	if (bg < 0)
		bg = 0;
	printf("## 5. The target's slowdown while tracked (%s, 1 writer "
	       "thread, full speed for %.1f s, medians of %d)\n\n",
	       pmtrack_backend_name(c->backends[0]), (double)c->run_ns / 1e9,
	       reps);
	printf("stores/s = 8-byte stores by the target's writer, untracked "
	       "and tracked by a pmtrack_proc collecting with RESET every "
	       "100 ms (the collects run in this process, on the other "
	       "CPU).  first writes = pages the collects reported in the "
	       "region: each is one write-protect fault of the writer.  In "
	       "the working set (8 pages) first writes are rare, so its "
	       "slowdown is what tracking costs besides them (the collects' "
	       "TLB flushes and locks); us per first write = (tracked time "
	       "- tracked stores at the untracked rate - that share of the "
	       "tracked time, if positive) / first writes.\n\n");
	if (c->backends[0] == PMTRACK_BACKEND_SOFT_DIRTY)
		printf("On soft-dirty each collect also freezes the target "
		       "(item 2's pause per round): the working set's "
		       "slowdown includes those stops.\n\n");
	printf("| stores to | untracked stores/s | tracked stores/s | "
	       "tracked ÷ untracked | per-rep range | first writes/s | us "
	       "per first write |\n|---|--:|--:|--:|--:|--:|--:|\n");
	for (int k = 0; k < 2; k++) {
		for (int rep = 0; rep < reps; rep++) {
			struct slow *x = &a[k][rep], *y = &b[k][rep];

			u[rep] = x->rate;
			tr[rep] = y->rate;
			ratio[k][rep] = y->rate / x->rate;
			fps[rep] = y->faults * 1e9 / y->ns;
			per[rep] = y->faults > 0 ? (y->ns -
						    y->stores / x->rate * 1e9 -
						    bg * y->ns) /
							   y->faults
						 : 0;
		}
		m = med(ratio[k], reps); /* sorts: the range is at the ends */
		printf("| %s | %.3g | %.3g | **%.4f** | %.4f - %.4f | %.0f |",
		       k ? "a working set of 8 pages"
			 : "random pages of the region",
		       med(u, reps), med(tr, reps), m, ratio[k][0],
		       ratio[k][reps - 1], med(fps, reps));
		if (k)
			printf(" - |\n");
		else
			printf(" %.2f |\n", med(per, reps) / 1e3);
	}
	printf("\n");
	fflush(stdout);
}

/* ---- setup ------------------------------------------------------------- */

/* 0, or EXIT_SKIP after saying why this machine cannot run it */
static int check_access(const struct cfg *c, struct target *t)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = c->backends[0], .pid = t->pid);
	struct pmtrack *tr;
	uint64_t ns;
	int ret, n;

	ret = bare_stop(t->pid, &ns, &n);
	if (ret) {
		printf("SKIP: cannot ptrace the target: %s\n", strerror(-ret));
		return EXIT_SKIP;
	}
	ret = pmtrack_new(&o, &tr);
	if (ret == -EPERM || ret == -EACCES || ret == -EOPNOTSUPP) {
		printf("SKIP: pmtrack_new(.pid) of the target: %s\n",
		       strerror(-ret));
		return EXIT_SKIP;
	}
	if (ret)
		fail("pmtrack_new(.pid)", -ret);
	pmtrack_free(tr);
	return 0;
}

/*
 * Items 2-5's backends, from --backend and the probes: pagemap-scan (with
 * soft-dirty next to it where both work), else soft-dirty alone.  0, or
 * EXIT_SKIP after saying why.
 */
static int pick_backends(struct cfg *c)
{
	bool auto_ = !strcmp(c->want, "auto");

	c->probe_scan = pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL);
	c->probe_async = pmtrack_probe(PMTRACK_FEAT_UFFD_WP_ASYNC, NULL);
	c->probe_sd = pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY, NULL);
	c->raw = c->probe_scan == 1 && c->probe_async == 1;
	if (c->raw && strcmp(c->want, "soft-dirty"))
		c->backends[c->nbackends++] = PMTRACK_BACKEND_PAGEMAP_SCAN;
	if (c->probe_sd == 1 && strcmp(c->want, "pagemap-scan"))
		c->backends[c->nbackends++] = PMTRACK_BACKEND_SOFT_DIRTY;
	if (c->nbackends) {
		/* item 3's `pmtrack dump` picks the same one */
		if (!auto_)
			setenv("PMTRACK_BACKEND", c->want, 1);
		return 0;
	}
	if (!strcmp(c->want, "soft-dirty"))
		printf("SKIP: soft-dirty is not available here "
		       "(pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY) = %d)\n",
		       c->probe_sd);
	else
		printf("SKIP: PAGEMAP_SCAN with async uffd-wp is not "
		       "available here%s\n",
		       auto_ ? ", nor soft-dirty" : "");
	return EXIT_SKIP;
}

/* which backends run, and why: the header's last lines */
static void print_backends(const struct cfg *c)
{
	bool sd_only = c->backends[0] == PMTRACK_BACKEND_SOFT_DIRTY;

	if (strcmp(c->want, "auto"))
		printf("backend used: %s (--backend %s)", c->want, c->want);
	else if (c->nbackends == 2)
		printf("backend used: pagemap-scan, and soft-dirty next to it "
		       "(both work here)");
	else
		printf("backend used: %s (pmtrack_probe(): PAGEMAP_SCAN %d, "
		       "async uffd-wp %d, soft-dirty %d)",
		       pmtrack_backend_name(c->backends[0]), c->probe_scan,
		       c->probe_async, c->probe_sd);
	if (c->nbackends == 2)
		printf(": items 2-4 run with both, items 1 and 5 with "
		       "pagemap-scan\n\n");
	else if (!sd_only && !c->probe_sd)
		printf("\nsoft-dirty: not available here "
		       "(pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY) = 0): items "
		       "2-4 run with pagemap-scan only\n\n");
	else if (!sd_only)
		printf(": every item runs with pagemap-scan only\n\n");
	else
		printf("\nsoft-dirty alone%s: items 2-5 run with it, item 1 "
		       "is left out (soft-dirty injects nothing into the "
		       "target)%s.  Each soft-dirty RESET collect freezes the "
		       "target, as its resets lose racing writes: item 2 "
		       "reports that pause per round.\n\n",
		       c->raw ? ""
			      : " (this kernel has no PAGEMAP_SCAN with "
				"async uffd-wp)",
		       c->raw ? ""
			      : " and item 2's local PAGEMAP_SCAN side "
				"is n/a");
}

static void print_header(const struct cfg *c)
{
	char date[64];
	struct utsname uts;
	time_t now = time(NULL);

	if (uname(&uts))
		fail("uname", errno);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("# " PROG "\n\n");
	printf("%s; %s %s %s; %ld CPUs online; libpmtrack %s\n", date,
	       uts.sysname, uts.release, uts.machine,
	       sysconf(_SC_NPROCESSORS_ONLN), pmtrack_version());
	printf("target: a forked process, %zu MiB private anonymous "
	       "(MADV_NOHUGEPAGE, populated), %d writer threads; %d reps, "
	       "medians%s\n",
	       c->size_mib, NWRITERS, c->reps, c->quick ? "; --quick" : "");
	print_backends(c);
	fflush(stdout);
}

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

static int rate_item(void *arg, int i, const char *text)
{
	uint64_t *rates = arg;

	return pmt_parse_u64(text, 0, 0, 10000000, &rates[i]);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--size-mib N] [--reps N] [--rates LIST] "
		"[--injections N]\n"
		"       [--only LIST] [--dir DIR] [--tool PATH]\n"
		"       [--final-rate N] [--backend NAME] [--quick]\n"
		"  --size-mib N    the target's region (1024; --quick: 32); "
		"item 4 also\n"
		"                  runs at N/4 and 2N\n"
		"  --reps N        repetitions, medians reported (3; --quick: "
		"1)\n"
		"  --rates LIST    item 2's dirty rates, pages/s "
		"(0,1000,10000,100000)\n"
		"  --injections N  item 1's pmtrack_new() calls (20; --quick: "
		"3)\n"
		"  --final-rate N  item 4's dirty rate, pages/s (10000)\n"
		"  --only LIST     comma-separated items: inject, rounds, "
		"dump, "
		"downtime,\n"
		"                  slowdown, all (all)\n"
		"  --dir DIR       where the dump files go (/tmp)\n"
		"  --tool PATH     pmtrack for `dump --pid` (the build's)\n"
		"  --backend NAME  auto (pagemap-scan, with soft-dirty next to "
		"it where\n"
		"                  both work, else soft-dirty), pagemap-scan "
		"or soft-dirty;\n"
		"                  exit 77 where it does not work (auto)\n"
		"  --quick         a short smoke run (CTest)\n");
}

static void parse_args(int argc, char **argv, struct cfg *c)
{
	static const struct option longopts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "rates", required_argument, NULL, 'R' },
		{ "injections", required_argument, NULL, 'i' },
		{ "final-rate", required_argument, NULL, 'F' },
		{ "only", required_argument, NULL, 'o' },
		{ "dir", required_argument, NULL, 'D' },
		{ "tool", required_argument, NULL, 'T' },
		{ "backend", required_argument, NULL, 'b' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c->size_mib =
				bench_parse_num(PROG, optarg, "--size-mib");
			break;
		case 'r':
			c->reps = (int)pmt_arg_u64(PROG, "--reps", optarg, 0, 1,
						   64);
			break;
		case 'R':
			c->nrates = pmt_arg_list(
				PROG, "--rates", optarg, MAX_RATES, rate_item,
				c->rates,
				"up to %d comma-separated rates in pages/s, "
				"each at most 10000000",
				MAX_RATES);
			break;
		case 'i':
			c->injections = (int)bench_parse_num(PROG, optarg,
							     "--injections");
			break;
		case 'F':
			c->final_rate = pmt_arg_u64(PROG, "--final-rate",
						    optarg, 0, 1, 10000000);
			break;
		case 'o':
			c->only = 0;
			pmt_arg_list(PROG, "--only", optarg, INT32_MAX,
				     section_item, &c->only,
				     "comma-separated items: inject, rounds, "
				     "dump, downtime, slowdown or all");
			break;
		case 'D':
			c->dir = optarg;
			break;
		case 'T':
			c->tool = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "auto") &&
			    strcmp(optarg, "pagemap-scan") &&
			    strcmp(optarg, "soft-dirty"))
				pmt_bad_value(PROG, "--backend", optarg,
					      "auto, pagemap-scan or "
					      "soft-dirty");
			c->want = optarg;
			break;
		case 'q':
			c->quick = true;
			break;
		default:
			pmt_usage_exit(opt, usage);
		}
	}
	pmt_no_operands(argc, usage);
}

/* what --quick changes, where no option said otherwise */
static void apply_defaults(struct cfg *c)
{
	static const uint64_t quick_rates[] = { 0, 10000 };

	if (!c->size_mib)
		c->size_mib = c->quick ? 32 : 1024;
	if (!c->reps)
		c->reps = c->quick ? 1 : 3;
	if (!c->injections)
		c->injections = c->quick ? 3 : 20;
	if (c->quick && !c->nrates) {
		memcpy(c->rates, quick_rates, sizeof(quick_rates));
		c->nrates = 2;
	}
	if (!c->nrates) {
		static const uint64_t rates[] = { 0, 1000, 10000, 100000 };

		memcpy(c->rates, rates, sizeof(rates));
		c->nrates = 4;
	}
	c->rounds = c->quick ? 3 : 10;
	c->pre_rounds = c->quick ? 2 : 5;
	c->incs = 2;
	c->interval_ms = c->quick ? 200 : 1000;
	c->run_ns = c->quick ? 200 * MS : 2 * NS;
	c->len = c->size_mib << 20;
	c->npages = c->len / c->ps;
}

/* the items of --only, each one's run time into @secs (-1: not run) */
static void run_sections(const struct cfg *c, struct target *t, char *stage,
			 double *secs)
{
	for (int k = 0; k < NSECTIONS; k++) {
		uint64_t t0 = bench_now_ns();

		secs[k] = -1;
		if (!(c->only & (1u << k)))
			continue;
		if (k == 0 && c->backends[0] != PMTRACK_BACKEND_PAGEMAP_SCAN) {
			printf("## 1. Stop time per injection: not run "
			       "(soft-dirty injects nothing)\n\n");
			continue;
		}
		if (k == 0)
			sec_inject(c, t);
		else if (k == 1)
			sec_rounds(c, t, stage);
		else if (k == 2)
			sec_dump(c, t, stage);
		else if (k == 3)
			sec_downtime(c, t, stage);
		else
			sec_slowdown(c, t);
		secs[k] = (double)(bench_now_ns() - t0) / 1e9;
	}
}

int main(int argc, char **argv)
{
	struct cfg c = {
		.only = SEC_ALL,
		.dir = "/tmp",
		.tool = PMT_CLI_PATH,
		.want = "auto",
		.final_rate = FINAL_RATE,
	};
	static const char *const sep[] = { "", ", " };
	uint64_t t0 = bench_now_ns();
	double secs[NSECTIONS];
	struct target t;
	char *stage;
	int ret, n = 0;

	parse_args(argc, argv, &c);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* timing a sanitizer's code says nothing (check_remote checks the
	 * same things under the sanitizers) */
	printf("SKIP: built with a sanitizer: no benchmark\n");
	return EXIT_SKIP;
#endif
	c.ps = (size_t)sysconf(_SC_PAGESIZE);
	apply_defaults(&c);
	if (c.size_mib < 4) {
		fprintf(stderr, PROG ": --size-mib must be at least 4\n");
		return 2;
	}
	ret = pick_backends(&c);
	if (ret)
		return ret;
	stage = map_big(STAGE_BYTES, false);
	target_start(&t, c.len, c.ps);
	ret = check_access(&c, &t);
	if (ret) {
		target_stop(&t);
		return ret;
	}
	print_header(&c);
	run_sections(&c, &t, stage, secs);
	target_stop(&t);
	printf("total run time: %.1f s (", (double)(bench_now_ns() - t0) / 1e9);
	for (int k = 0; k < NSECTIONS; k++)
		if (secs[k] >= 0)
			printf("%s%s %.1f s", sep[n++ > 0], section_name[k],
			       secs[k]);
	printf(")\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench-backends: the four backends side by side, in one run.
 *
 * Each usable backend gets its own tracker watching its own populated
 * anonymous region of --size-mib MiB; a "plain" region of the same size is
 * never watched.  Every region is mapped with MADV_NOHUGEPAGE, so that all
 * of them fault (or not) per base page from the first rep on, and the
 * plain baseline is not flattered by huge TLB entries the tracked regions
 * lose on their first write.  Three measurements follow:
 *
 *  1. write          after arming (a RESET collect), one byte is written
 *                    to every page in ascending order: each is the first
 *                    write to its page, the tracked fault.  ns per write;
 *                    the plain row is the cost of the same writes without
 *                    tracking.  A RESET collect after the writes must
 *                    report every page.
 *  2. collect+reset  after arming and writing a pattern (1% of the pages,
 *                    random and isolated; 100% of the pages), one
 *                    pmtrack_collect_bitmap() with PMTRACK_COLLECT_RESET
 *                    over the whole region is timed.  It must report
 *                    exactly the pages written.
 *  3. threads        1, 2, 4 and 8 writer threads, started together on a
 *                    barrier, each write the first byte of every page of
 *                    its own slice of the armed region.  Reported: the
 *                    mean over threads of thread wall time / its writes,
 *                    the writers' CPU time (CLOCK_THREAD_CPUTIME_ID)
 *                    summed / all writes, and the process CPU time over
 *                    the phase / all writes (which also counts uffd-wp's
 *                    handler thread, where the writer sleeps).
 *                    Wall time grows with threads just from sharing the
 *                    CPUs; by how much is measured first, by spinning one
 *                    thread and then one per online CPU (a VM's vCPUs
 *                    may share less than that many real CPUs).
 *                    Two more rows run the same workload with no
 *                    libpmtrack at all, to tell the kernel's share of the
 *                    mprotect backend's cost from the library's: "raw
 *                    mprotect" arms with one mprotect(PROT_READ) of the
 *                    region and has a SIGSEGV handler of its own that
 *                    only mprotect()s the faulting page writable and sets
 *                    its bit in an atomic bitmap; "raw + global lock" does
 *                    the same under one process-wide spinlock, to show
 *                    what a lock-based handler design would cost (not
 *                    libpmtrack's design, whose handler takes no lock).
 *                    Each raw run installs its handler just before its
 *                    writers start and puts the previous one (the
 *                    library's) back right after they are joined, so the
 *                    raw rows may run in any order among the others.
 *
 * Every measurement is repeated --reps times; in each rep the sides run in
 * a rotating order, and the tables show medians.  Ratios are to the
 * pagemap-scan backend, since absolute times depend heavily on the cost
 * of a page fault on the machine (large in a paravirtual VM).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/pmtrack.h>

#include "args.h"
#include "bench_util.h"

#define EXIT_SKIP 77
#define PROG "pmtrack-bench-backends"

/* the sides compared: no tracker, then each backend */
enum side {
	S_PLAIN,
	S_PMSCAN,
	S_UFFD,
	S_MPROT,
	S_SOFTD,
	S_NR,
	/* section 3 only: the mprotect workload without libpmtrack */
	S_RAW = S_NR,
	S_RAWLOCK,
	S_ALL,
};

/* everything is reported relative to this side */
#define S_REF S_PMSCAN

static const enum pmtrack_backend side_backend[S_NR] = {
	[S_PMSCAN] = PMTRACK_BACKEND_PAGEMAP_SCAN,
	[S_UFFD] = PMTRACK_BACKEND_UFFD_WP,
	[S_MPROT] = PMTRACK_BACKEND_MPROTECT,
	[S_SOFTD] = PMTRACK_BACKEND_SOFT_DIRTY,
};

struct side_state {
	const char *name;
	struct pmtrack *t; /* NULL for plain, or if unusable */
	struct pmtrack_bitmap *bm;
	char *base; /* NULL if unusable */
	int err;    /* pmtrack_new() error if unusable */
};

enum pattern {
	PAT_SCATTERED,
	PAT_ALL,
	PAT_NR,
};

static const char *const pattern_name[PAT_NR] = {
	[PAT_SCATTERED] = "1% scattered",
	[PAT_ALL] = "100%",
};

static const int thread_counts[] = { 1, 2, 4, 8 };
#define NTHR (sizeof(thread_counts) / sizeof(thread_counts[0]))
#define MAX_THREADS 8

struct bench {
	struct side_state side[S_ALL];
	size_t page_size;
	size_t len;
	size_t npages;
	int reps;
	long ncpus;
	double capacity; /* CPUs' worth of work threads get done at once */
};

struct writer {
	pthread_t tid;
	pthread_barrier_t *bar;
	char *base;
	size_t first; /* first page of the slice */
	size_t n;     /* pages in the slice */
	size_t page_size;
	char val;
	uint64_t wall_ns;
	uint64_t cpu_ns;
};

/* medians of one thread sweep cell */
struct sweep {
	double wall; /* mean thread wall ns per write */
	double cpu;  /* writers' CPU ns per write */
	double proc; /* process CPU ns per write */
};

__attribute__((noreturn)) static void fail(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err));
	exit(1);
}

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts))
		fail("clock_gettime", errno);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void barrier_wait(pthread_barrier_t *bar)
{
	int ret = pthread_barrier_wait(bar);

	if (ret && ret != PTHREAD_BARRIER_SERIAL_THREAD)
		fail("pthread_barrier_wait", ret);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);

	if (!p)
		fail("calloc", ENOMEM);
	return p;
}

static char *map_populated(size_t len, size_t page_size)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap", errno);
	if (madvise(p, len, MADV_NOHUGEPAGE))
		fail("madvise(MADV_NOHUGEPAGE)", errno);
	for (size_t off = 0; off < len; off += page_size)
		p[off] = 1;
	return p;
}

static void write_seq(char *base, size_t first, size_t n, size_t page_size,
		      char val)
{
	volatile char *b = base + first * page_size;

	for (size_t i = 0; i < n; i++)
		b[i * page_size] = val;
}

static void write_idx(char *base, const size_t *idx, size_t n, size_t page_size,
		      char val)
{
	volatile char *b = base;

	for (size_t i = 0; i < n; i++)
		b[idx[i] * page_size] = val;
}

/* RESET collect over the side's region; returns the pages reported */
static size_t collect_reset(struct bench *b, enum side s, uint64_t *ns)
{
	struct side_state *st = &b->side[s];
	uint64_t t0 = bench_now_ns();
	int ret;

	ret = pmtrack_collect_bitmap(st->t, st->base, b->len,
				     PMTRACK_COLLECT_RESET, st->bm);
	if (ns)
		*ns = bench_now_ns() - t0;
	if (ret)
		fail("pmtrack_collect_bitmap", -ret);
	return pmtrack_bitmap_count(st->bm);
}

/* arm every page of a tracked side; plain has nothing to arm */
static void arm(struct bench *b, enum side s)
{
	if (b->side[s].t)
		collect_reset(b, s, NULL);
}

/* exit 1 unless a RESET collect reports exactly @expect pages */
static void check_count(const char *phase, const char *name, int rep,
			size_t got, size_t expect)
{
	if (got == expect)
		return;
	fprintf(stderr,
		PROG ": %s, %s, rep %d: collect reported %zu pages, "
		     "expected %zu\n",
		phase, name, rep, got, expect);
	exit(1);
}

/* usable sides (with or without plain), in table order; returns how many */
static int usable_sides(const struct bench *b, bool with_plain, int *out)
{
	int n = 0;

	for (int s = with_plain ? S_PLAIN : S_PLAIN + 1; s < S_NR; s++)
		if (b->side[s].base)
			out[n++] = s;
	return n;
}

static bool ref_usable(const struct bench *b)
{
	return b->side[S_REF].base != NULL;
}

static void print_ratio(const struct bench *b, double v, double ref)
{
	if (ref_usable(b) && ref > 0)
		printf(" %.3f |", v / ref);
	else
		printf(" n/a |");
}

/* xorshift64*: a fixed, reproducible sequence for the scattered pattern */
static uint64_t rnd_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/*
 * 1% of the pages, random and isolated: one page at a random offset in
 * each slot of npages / n pages, never in a slot's last page, so no two
 * chosen pages are adjacent.  Ascending.  Returns how many.
 */
static size_t pattern_scattered(size_t npages, size_t *idx)
{
	size_t n = npages / 100 ? npages / 100 : 1;
	size_t slot = npages / n;
	uint64_t state = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < n; i++)
		idx[i] = i * slot +
			 (slot > 1 ? rnd_next(&state) % (slot - 1) : 0);
	return n;
}

static size_t pattern_build(enum pattern p, size_t npages, size_t *idx)
{
	if (p == PAT_SCATTERED)
		return pattern_scattered(npages, idx);
	for (size_t i = 0; i < npages; i++)
		idx[i] = i;
	return npages;
}

/* ---- 1. per-write cost ------------------------------------------------- */

static void bench_write(struct bench *b)
{
	double *v = xcalloc((size_t)S_NR * (size_t)b->reps, sizeof(*v));
	double med[S_NR] = { 0 };
	int order[S_NR], n = usable_sides(b, true, order);

	for (int rep = 0; rep < b->reps; rep++) {
		for (int k = 0; k < n; k++) {
			int s = order[(rep + k) % n];
			struct side_state *st = &b->side[s];
			uint64_t t0;

			arm(b, s);
			t0 = bench_now_ns();
			write_seq(st->base, 0, b->npages, b->page_size,
				  (char)(rep + 2));
			v[s * b->reps + rep] = (double)(bench_now_ns() - t0) /
					       (double)b->npages;
			if (st->t)
				check_count("write", st->name, rep,
					    collect_reset(b, s, NULL),
					    b->npages);
		}
	}
	for (int k = 0; k < n; k++)
		med[order[k]] = bench_median(&v[order[k] * b->reps], b->reps);

	printf("## 1. Per-write cost (first write to each page after arming, "
	       "%zu pages in order)\n\n",
	       b->npages);
	printf("| side | ns/write | over plain ns | ratio to pagemap-scan "
	       "|\n");
	printf("|---|--:|--:|--:|\n");
	for (int s = 0; s < S_NR; s++) {
		if (!b->side[s].base) {
			printf("| %s | n/a (unusable here) | - | - |\n",
			       b->side[s].name);
			continue;
		}
		printf("| %s | %.0f |", b->side[s].name, med[s]);
		if (s == S_PLAIN)
			printf(" - |");
		else
			printf(" %.0f |", med[s] - med[S_PLAIN]);
		print_ratio(b, med[s], med[S_REF]);
		printf("\n");
	}
	printf("\n");
	fflush(stdout);
	free(v);
}

/* ---- 2. collect+reset cost --------------------------------------------- */

static void bench_collect(struct bench *b)
{
	size_t *idx = xcalloc(b->npages, sizeof(*idx));
	double *v = xcalloc((size_t)S_NR * (size_t)b->reps, sizeof(*v));
	double med[PAT_NR][S_NR] = { { 0 } };
	size_t npat[PAT_NR];
	int order[S_NR], n = usable_sides(b, false, order);

	for (int p = 0; p < PAT_NR; p++) {
		size_t cnt = pattern_build(p, b->npages, idx);

		npat[p] = cnt;
		for (int rep = 0; rep < b->reps; rep++) {
			for (int k = 0; k < n; k++) {
				int s = order[(rep + k) % n];
				struct side_state *st = &b->side[s];
				uint64_t ns;
				size_t got;

				arm(b, s);
				write_idx(st->base, idx, cnt, b->page_size,
					  (char)(rep + 2));
				got = collect_reset(b, s, &ns);
				check_count(pattern_name[p], st->name, rep, got,
					    cnt);
				v[s * b->reps + rep] = (double)ns;
			}
		}
		for (int k = 0; k < n; k++)
			med[p][order[k]] =
				bench_median(&v[order[k] * b->reps], b->reps);
	}

	printf("## 2. Collect+reset cost (one pmtrack_collect_bitmap(RESET) "
	       "over all %zu pages)\n\n",
	       b->npages);
	printf("| pattern | written pages | backend | ms/collect | "
	       "ratio to pagemap-scan |\n");
	printf("|---|--:|---|--:|--:|\n");
	for (int p = 0; p < PAT_NR; p++) {
		for (int s = S_PLAIN + 1; s < S_NR; s++) {
			printf("| %s | %zu | %s |", pattern_name[p], npat[p],
			       b->side[s].name);
			if (!b->side[s].base) {
				printf(" n/a (unusable here) | - |\n");
				continue;
			}
			printf(" %.3f |", med[p][s] / 1e6);
			print_ratio(b, med[p][s], med[p][S_REF]);
			printf("\n");
		}
	}
	printf("\n");
	fflush(stdout);
	free(v);
	free(idx);
}

/* ---- 3. writer threads ------------------------------------------------- */

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t t0, c0;

	barrier_wait(w->bar);
	t0 = bench_now_ns();
	c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	write_seq(w->base, w->first, w->n, w->page_size, w->val);
	w->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	w->wall_ns = bench_now_ns() - t0;
	return NULL;
}

/*
 * @nthr threads write every page of the side's (armed) region, each its
 * own contiguous slice.  The threads are created first and wait on a
 * barrier that this thread releases once it has read the process CPU
 * clock, so thread creation is not in the process CPU figure.
 */
static void run_writers(struct bench *b, enum side s, int nthr, char val,
			struct sweep *out)
{
	struct writer w[MAX_THREADS];
	pthread_barrier_t bar;
	uint64_t p0, p1, cpu = 0;
	double wall = 0;
	int ret;

	ret = pthread_barrier_init(&bar, NULL, (unsigned int)nthr + 1);
	if (ret)
		fail("pthread_barrier_init", ret);
	for (int i = 0; i < nthr; i++) {
		size_t first = b->npages * (size_t)i / (size_t)nthr;
		size_t end = b->npages * (size_t)(i + 1) / (size_t)nthr;

		w[i] = (struct writer){
			.bar = &bar,
			.base = b->side[s].base,
			.first = first,
			.n = end - first,
			.page_size = b->page_size,
			.val = val,
		};
		ret = pthread_create(&w[i].tid, NULL, writer_main, &w[i]);
		if (ret)
			fail("pthread_create", ret);
	}
	p0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	barrier_wait(&bar);
	for (int i = 0; i < nthr; i++) {
		ret = pthread_join(w[i].tid, NULL);
		if (ret)
			fail("pthread_join", ret);
	}
	p1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	ret = pthread_barrier_destroy(&bar);
	if (ret)
		fail("pthread_barrier_destroy", ret);

	for (int i = 0; i < nthr; i++) {
		wall += (double)w[i].wall_ns / (double)w[i].n;
		cpu += w[i].cpu_ns;
	}
	out->wall = wall / nthr;
	out->cpu = (double)cpu / (double)b->npages;
	out->proc = (double)(p1 - p0) / (double)b->npages;
}

/*
 * The raw mprotect sides: no libpmtrack, only what any mprotect-based
 * tracker must do.  The handler's state is global, as a handler's is; it
 * is set up once, before any raw handler is installed.
 */
static char *raw_base;
static size_t raw_len;
static size_t raw_page_size;
static _Atomic unsigned long *raw_bits;
static size_t raw_words;
static pthread_spinlock_t raw_lock;

#define LBITS (sizeof(unsigned long) * 8)

/*
 * A fault outside the region is not ours: put the default action back and
 * return, so that the fault happens again and kills the process as usual.
 * mprotect() failing in the handler cannot be recovered from.
 */
static void raw_not_ours(int sig)
{
	struct sigaction dfl;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
}

static void raw_mprotect_failed(void)
{
	static const char msg[] = PROG ": raw handler: mprotect failed\n";

	ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);

	(void)r;
	_exit(1);
}

/* un-protect the page holding @a and set its bit */
static void raw_fault(uintptr_t a)
{
	size_t pg = (a - (uintptr_t)raw_base) / raw_page_size;

	if (mprotect(raw_base + pg * raw_page_size, raw_page_size,
		     PROT_READ | PROT_WRITE))
		raw_mprotect_failed();
	atomic_fetch_or(&raw_bits[pg / LBITS], 1ul << (pg % LBITS));
}

static bool raw_ours(const siginfo_t *si)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	return a >= (uintptr_t)raw_base && a - (uintptr_t)raw_base < raw_len;
}

static void raw_segv(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno;

	(void)uctx;
	if (raw_ours(si))
		raw_fault((uintptr_t)si->si_addr);
	else
		raw_not_ours(sig);
	errno = saved;
}

/* the same under one global lock, as a lock-based handler would do it */
static void raw_segv_locked(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno;

	(void)uctx;
	if (raw_ours(si)) {
		pthread_spin_lock(&raw_lock);
		raw_fault((uintptr_t)si->si_addr);
		pthread_spin_unlock(&raw_lock);
	} else {
		raw_not_ours(sig);
	}
	errno = saved;
}

static void raw_setup(struct bench *b)
{
	int ret;

	raw_len = b->len;
	raw_page_size = b->page_size;
	raw_words = (b->npages + LBITS - 1) / LBITS;
	raw_bits = xcalloc(raw_words, sizeof(*raw_bits));
	ret = pthread_spin_init(&raw_lock, PTHREAD_PROCESS_PRIVATE);
	if (ret)
		fail("pthread_spin_init", ret);
	b->side[S_RAW].name = "raw mprotect (no lib)";
	b->side[S_RAWLOCK].name = "raw + global lock (illustration)";
	/* one region each, so neither inherits the other's split VMAs */
	for (int s = S_RAW; s < S_ALL; s++)
		b->side[s].base = map_populated(b->len, b->page_size);
}

static void raw_teardown(void)
{
	int ret = pthread_spin_destroy(&raw_lock);

	if (ret)
		fail("pthread_spin_destroy", ret);
	free((void *)raw_bits);
	raw_bits = NULL;
}

/* clear the bitmap, then protect the whole region again */
static void raw_arm(struct bench *b, enum side s)
{
	for (size_t i = 0; i < raw_words; i++)
		atomic_store(&raw_bits[i], 0);
	raw_base = b->side[s].base;
	if (mprotect(raw_base, raw_len, PROT_READ))
		fail("mprotect(PROT_READ)", errno);
}

/* exit 1 unless exactly the pages [0, npages) have their bits set */
static void raw_check(struct bench *b, enum side s, int rep)
{
	size_t set = 0, stray = 0;

	for (size_t i = 0; i < raw_words; i++) {
		unsigned long w = atomic_load(&raw_bits[i]);

		for (size_t j = 0; j < LBITS; j++) {
			if (!(w & (1ul << j)))
				continue;
			if (i * LBITS + j < b->npages)
				set++;
			else
				stray++;
		}
	}
	if (set == b->npages && !stray)
		return;
	fprintf(stderr,
		PROG ": threads, %s, rep %d: %zu of %zu written pages have "
		     "their bit set, %zu bits beyond the region\n",
		b->side[s].name, rep, set, b->npages, stray);
	exit(1);
}

/* arm, run the writers under the side's own handler, check the bitmap */
static void raw_run(struct bench *b, enum side s, int nthr, char val, int rep,
		    struct sweep *out)
{
	struct sigaction sa, old;

	raw_arm(b, s);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = s == S_RAWLOCK ? raw_segv_locked : raw_segv;
	/* the flags libpmtrack's mprotect handler uses */
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &old))
		fail("sigaction(SIGSEGV)", errno);
	run_writers(b, s, nthr, val, out);
	if (sigaction(SIGSEGV, &old, NULL))
		fail("sigaction(SIGSEGV) restore", errno);
	raw_check(b, s, rep);
}

static void print_lib_raw(const struct bench *b, const struct sweep *lib,
			  const struct sweep *raw)
{
	if (b->side[S_MPROT].base && raw->cpu > 0 && raw->wall > 0)
		printf(" CPU %.2f, wall %.2f |", lib->cpu / raw->cpu,
		       lib->wall / raw->wall);
	else
		printf(" n/a |");
}

/* the cell of side @s, thread count @ti, rep @rep in the sweep's results */
static struct sweep *cell(const struct bench *b, struct sweep *v, int s,
			  size_t ti, int rep)
{
	return &v[((size_t)s * NTHR + ti) * (size_t)b->reps + (size_t)rep];
}

/* every rep of every thread count on the @n sides in @order, into @v */
static void threads_measure(struct bench *b, struct sweep *v,
			    const int *order, int n)
{
	for (int rep = 0; rep < b->reps; rep++) {
		for (size_t ti = 0; ti < NTHR; ti++) {
			for (int k = 0; k < n; k++) {
				int s = order[(rep + k) % n];
				struct sweep *c = cell(b, v, s, ti, rep);

				if (s >= S_RAW) {
					raw_run(b, s, thread_counts[ti],
						(char)(rep + 2), rep, c);
					continue;
				}
				arm(b, s);
				run_writers(b, s, thread_counts[ti],
					    (char)(rep + 2), c);
				check_count("threads", b->side[s].name, rep,
					    collect_reset(b, s, NULL),
					    b->npages);
			}
		}
	}
}

/* the medians over the reps of each cell of the @n sides in @order */
static void threads_medians(const struct bench *b, struct sweep *v,
			    const int *order, int n,
			    struct sweep med[S_ALL][NTHR])
{
	double *tmp = xcalloc((size_t)b->reps, sizeof(*tmp));

	for (int k = 0; k < n; k++) {
		int s = order[k];

		for (size_t ti = 0; ti < NTHR; ti++) {
			struct sweep *c = cell(b, v, s, ti, 0);

			for (int r = 0; r < b->reps; r++)
				tmp[r] = c[r].wall;
			med[s][ti].wall = bench_median(tmp, b->reps);
			for (int r = 0; r < b->reps; r++)
				tmp[r] = c[r].cpu;
			med[s][ti].cpu = bench_median(tmp, b->reps);
			for (int r = 0; r < b->reps; r++)
				tmp[r] = c[r].proc;
			med[s][ti].proc = bench_median(tmp, b->reps);
		}
	}
	free(tmp);
}

static void threads_intro(const struct bench *b)
{
	printf("## 3. Per-write cost vs writer threads (%zu pages split "
	       "into disjoint slices, %ld CPUs online, measured capacity "
	       "%.2f CPUs)\n\n",
	       b->npages, b->ncpus, b->capacity);
	printf("wall = mean over threads of thread wall time / its writes; "
	       "sharing the CPUs alone multiplies it by the time-slice "
	       "factor max(1, threads / measured capacity).  CPU = writers' "
	       "thread CPU time summed / all writes.  process CPU = process "
	       "CPU time over the phase / all writes (includes uffd-wp's "
	       "handler thread).\n\n");
	printf("raw mprotect (no lib) = the same workload without libpmtrack: "
	       "the region mprotect()ed PROT_READ, and a SIGSEGV handler of "
	       "the benchmark's own that mprotect()s the faulting page "
	       "writable and sets its bit (atomic_fetch_or), nothing else.  "
	       "raw + global lock (illustration) = the same with the "
	       "mprotect and bit set under one process-wide spinlock: it "
	       "shows what a lock-based handler design would cost, it is "
	       "not libpmtrack's handler (which takes no lock).  lib / raw = "
	       "mprotect backend's CPU ns/write and wall ns/write over raw "
	       "mprotect's at the same thread count.\n\n");
}

static void threads_table(const struct bench *b,
			  struct sweep med[S_ALL][NTHR])
{
	printf("| backend | threads | wall ns/write | wall / 1 thread | "
	       "time-slice factor | CPU ns/write | CPU / 1 thread | "
	       "process CPU ns/write | CPU ratio to pagemap-scan | "
	       "lib / raw |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int s = S_PLAIN + 1; s < S_ALL; s++) {
		if (!b->side[s].base) {
			printf("| %s | - | n/a (unusable here) | - | - | - | "
			       "- | - | - | - |\n",
			       b->side[s].name);
			continue;
		}
		for (size_t ti = 0; ti < NTHR; ti++) {
			int nthr = thread_counts[ti];
			double slice = (double)nthr / b->capacity;
			struct sweep *c = &med[s][ti];

			printf("| %s | %d | %.0f | %.2f | %.2f | %.0f | %.2f "
			       "| %.0f |",
			       b->side[s].name, nthr, c->wall,
			       c->wall / med[s][0].wall, slice > 1 ? slice : 1,
			       c->cpu, c->cpu / med[s][0].cpu, c->proc);
			print_ratio(b, c->cpu, med[S_REF][ti].cpu);
			if (s == S_MPROT)
				print_lib_raw(b, c, &med[S_RAW][ti]);
			else
				printf(" - |");
			printf("\n");
		}
	}
	printf("\n");
}

static void threads_summary(const struct bench *b,
			    struct sweep med[S_ALL][NTHR])
{
	size_t hi = NTHR - 1;

	if (b->side[S_MPROT].base)
		printf("mprotect at %d threads: lib CPU/write %.2fx its "
		       "1-thread value, raw %.2fx its 1-thread value; "
		       "lib / raw CPU/write %.2f (wall %.2f; at 1 thread "
		       "CPU %.2f, wall %.2f).\n",
		       thread_counts[hi],
		       med[S_MPROT][hi].cpu / med[S_MPROT][0].cpu,
		       med[S_RAW][hi].cpu / med[S_RAW][0].cpu,
		       med[S_MPROT][hi].cpu / med[S_RAW][hi].cpu,
		       med[S_MPROT][hi].wall / med[S_RAW][hi].wall,
		       med[S_MPROT][0].cpu / med[S_RAW][0].cpu,
		       med[S_MPROT][0].wall / med[S_RAW][0].wall);
	printf("raw + global lock (a lock-based design, not libpmtrack's) at "
	       "%d threads: CPU/write %.2fx its 1-thread value, %.2fx raw "
	       "mprotect's (wall %.2fx).\n\n",
	       thread_counts[hi],
	       med[S_RAWLOCK][hi].cpu / med[S_RAWLOCK][0].cpu,
	       med[S_RAWLOCK][hi].cpu / med[S_RAW][hi].cpu,
	       med[S_RAWLOCK][hi].wall / med[S_RAW][hi].wall);
	fflush(stdout);
}

static void bench_threads(struct bench *b)
{
	size_t cells = (size_t)S_ALL * NTHR * (size_t)b->reps;
	struct sweep *v = xcalloc(cells, sizeof(*v));
	struct sweep med[S_ALL][NTHR];
	int order[S_ALL], n = usable_sides(b, false, order);

	/* the raw sides rotate with the others (see raw_run) */
	for (int s = S_RAW; s < S_ALL; s++)
		order[n++] = s;
	memset(med, 0, sizeof(med));
	threads_measure(b, v, order, n);
	threads_medians(b, v, order, n, med);
	threads_intro(b);
	threads_table(b, med);
	threads_summary(b, med);
	free(v);
}

/* ---- parallel capacity ------------------------------------------------ */

#define SPIN_NS 200000000u /* 200 ms per spin */
#define SPIN_ROUNDS 3

struct spinner {
	pthread_t tid;
	pthread_barrier_t *bar;
	uint64_t iters;
};

static void *spinner_main(void *arg)
{
	struct spinner *sp = arg;
	volatile uint64_t x = 0;
	uint64_t end;

	barrier_wait(sp->bar);
	end = bench_now_ns() + SPIN_NS;
	do {
		for (int i = 0; i < 4096; i++)
			x = x + 1;
	} while (bench_now_ns() < end);
	sp->iters = x;
	return NULL;
}

/* loop iterations @nthr threads spinning together for SPIN_NS get done */
static uint64_t spin(int nthr)
{
	struct spinner sp[MAX_THREADS];
	pthread_barrier_t bar;
	uint64_t sum = 0;
	int ret;

	ret = pthread_barrier_init(&bar, NULL, (unsigned int)nthr);
	if (ret)
		fail("pthread_barrier_init", ret);
	for (int i = 0; i < nthr; i++) {
		sp[i] = (struct spinner){ .bar = &bar };
		ret = pthread_create(&sp[i].tid, NULL, spinner_main, &sp[i]);
		if (ret)
			fail("pthread_create", ret);
	}
	for (int i = 0; i < nthr; i++) {
		ret = pthread_join(sp[i].tid, NULL);
		if (ret)
			fail("pthread_join", ret);
		sum += sp[i].iters;
	}
	ret = pthread_barrier_destroy(&bar);
	if (ret)
		fail("pthread_barrier_destroy", ret);
	return sum;
}

/*
 * How many CPUs' worth of work threads get done at once: one spinning
 * thread against one per online CPU (at most MAX_THREADS), the median of
 * SPIN_ROUNDS rounds, clamped to [1, CPUs].
 */
static double measure_capacity(long ncpus)
{
	int n = ncpus < MAX_THREADS ? (int)ncpus : MAX_THREADS;
	double r[SPIN_ROUNDS], c;

	if (n <= 1)
		return 1;
	for (int i = 0; i < SPIN_ROUNDS; i++) {
		uint64_t one = spin(1);

		r[i] = (double)spin(n) / (double)(one ? one : 1);
	}
	c = bench_median(r, SPIN_ROUNDS);
	return c < 1 ? 1 : c > n ? n : c;
}

/* ---- setup ------------------------------------------------------------- */

static void setup_sides(struct bench *b)
{
	b->side[S_PLAIN].name = "plain";
	b->side[S_PLAIN].base = map_populated(b->len, b->page_size);

	for (int s = S_PLAIN + 1; s < S_NR; s++) {
		struct side_state *st = &b->side[s];
		PMTRACK_OPTS(pmtrack_opts, o, .backend = side_backend[s]);
		int ret;

		st->name = pmtrack_backend_name(side_backend[s]);
		ret = pmtrack_new(&o, &st->t);
		if (ret) {
			st->err = -ret;
			continue;
		}
		ret = pmtrack_bitmap_new(&st->bm);
		if (ret)
			fail("pmtrack_bitmap_new", -ret);
		st->base = map_populated(b->len, b->page_size);
		ret = pmtrack_watch(st->t, st->base, b->len);
		if (ret) {
			fprintf(stderr, PROG ": %s: ", st->name);
			fail("pmtrack_watch", -ret);
		}
		/* one untimed collect, so that no timed one pays for
		 * faulting in the bitmap's memory */
		collect_reset(b, s, NULL);
	}
}

static void teardown_sides(struct bench *b)
{
	for (int s = 0; s < S_ALL; s++) {
		struct side_state *st = &b->side[s];

		/* free the tracker (which unwatches) before unmapping */
		pmtrack_free(st->t);
		pmtrack_bitmap_free(st->bm);
		if (st->base && munmap(st->base, b->len))
			fail("munmap", errno);
	}
}

static void print_header(const struct bench *b, size_t size_mib)
{
	int nspin = b->ncpus < MAX_THREADS ? (int)b->ncpus : MAX_THREADS;
	struct utsname uts;

	if (uname(&uts))
		fail("uname", errno);
	printf("# " PROG "\n\n");
	printf("machine: %s %s %s %s; %ld CPUs online\n", uts.sysname,
	       uts.release, uts.version, uts.machine, b->ncpus);
	printf("parallel capacity: %d spinning threads get %.2fx the work "
	       "of one done (ideal: %d)\n",
	       nspin, b->capacity, nspin);
	printf("libpmtrack %s; %zu MiB per region (%zu pages of %zu B, "
	       "MADV_NOHUGEPAGE); %d reps, medians, rotating order\n\n",
	       pmtrack_version(), size_mib, b->npages, b->page_size, b->reps);
	printf("| backend | status |\n|---|---|\n");
	for (int s = S_PLAIN + 1; s < S_NR; s++) {
		const struct side_state *st = &b->side[s];

		if (st->base)
			printf("| %s | usable |\n", st->name);
		else
			printf("| %s | n/a (unusable here): %s |\n", st->name,
			       strerror(st->err));
	}
	printf("\n");
	if (!ref_usable(b))
		printf("pagemap-scan is unusable here: no ratios.\n\n");
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--size-mib N] [--reps N]\n"
		   "  --size-mib N  size of each region (256)\n"
		   "  --reps N      repetitions per measurement (5)\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b = { .reps = 5 };
	size_t size_mib = 256;
	uint64_t t0 = bench_now_ns();
	long ps;
	int opt, order[S_NR];

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			size_mib = bench_parse_num(PROG, optarg, "--size-mib");
			break;
		case 'r':
			b.reps = (int)bench_parse_num(PROG, optarg, "--reps");
			break;
		default:
			pmt_usage_exit(opt, usage);
		}
	}
	pmt_no_operands(argc, usage);

	ps = sysconf(_SC_PAGESIZE);
	if (ps <= 0)
		fail("sysconf(_SC_PAGESIZE)", errno ? errno : EINVAL);
	b.ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (b.ncpus <= 0)
		fail("sysconf(_SC_NPROCESSORS_ONLN)", errno ? errno : EINVAL);
	b.page_size = (size_t)ps;
	b.len = size_mib << 20;
	b.npages = b.len / b.page_size;

	setup_sides(&b);
	if (usable_sides(&b, false, order))
		b.capacity = measure_capacity(b.ncpus);
	if (!usable_sides(&b, false, order)) {
		printf("SKIP: no backend is usable here (pagemap-scan: %s)\n",
		       strerror(b.side[S_PMSCAN].err));
		teardown_sides(&b);
		return EXIT_SKIP;
	}
	raw_setup(&b);
	print_header(&b, size_mib);

	bench_write(&b);
	bench_collect(&b);
	bench_threads(&b);

	teardown_sides(&b);
	raw_teardown();
	printf("total run time: %.1f s\n", (double)(bench_now_ns() - t0) / 1e9);
	return 0;
}

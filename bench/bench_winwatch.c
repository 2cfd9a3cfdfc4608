// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench-winwatch: the GetWriteWatch shim on each backend, next to
 * the raw kernel mechanism (async userfaultfd write-protect + PAGEMAP_SCAN,
 * bench_raw.c), in one run.
 *
 * 1. Fault cost: a populated region is reset (re-armed), then one byte of
 *    each page is written once, in order: ns per first write.  On
 *    pagemap-scan the kernel resolves these faults by itself, so the shim
 *    should cost what the raw mechanism costs.
 * 2. The benchmark Wine used to justify its kernel write-watch path
 *    (threads, pages, delay between queries in ms, random or sequential
 *    writes, reset by WRITE_WATCH_FLAG_RESET or by ResetWriteWatch): writer
 *    threads write one byte at a time to pages of a write-watch region
 *    while the main thread sleeps for the delay, then asks GetWriteWatch
 *    (and resets), over and over.  Reported: ns per page write (run time
 *    x threads / writes, so time spent faulting or waiting counts) and
 *    ms per GetWriteWatch (with the ResetWriteWatch when that is the reset
 *    mode).
 *
 * Each backend runs in a child process, since the shim picks its backend
 * once per process (PMTRACK_BACKEND).  Every measurement is made for the
 * shim and for the raw mechanism in the same child, one after the other
 * (alternating which goes first); the tables show medians of --reps runs
 * and the ratios shim / raw from the same child.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PMTRACK_WINAPI_NAMES
#include <pmtrack/winwatch.h>

#include "args.h"
#include "bench_raw.h"
#include "bench_util.h"

#define PROG "pmtrack-bench-winwatch"
#define EXIT_SKIP 77
#define PAGE 4096u
#define MAX_THREADS 16
#define MAX_REPS 64

enum { IMPL_RAW, IMPL_PAGEMAP_SCAN, IMPL_UFFD_WP, IMPL_MPROTECT, NIMPL };
static const char *const impl_name[NIMPL] = { "raw uffd-async", "pagemap-scan",
					      "uffd-wp", "mprotect" };

struct config {
	int threads;
	size_t pages;
	int delay_ms;
	bool random;
	bool reset_flag;
};

static const struct config configs[] = {
	{ 6, 1080, 3, true, true }, { 6, 1080, 3, true, false },
	{ 8, 8192, 3, true, true }, { 8, 8192, 3, true, false },
	{ 8, 8192, 1, true, true }, { 8, 8192, 3, false, true },
};
#define NCONFIGS (sizeof(configs) / sizeof(configs[0]))

/* results, written by the children into shared memory: each backend's
 * child measures the raw mechanism too, alternating with the shim */
struct result {
	int status;	    /* 0 ok, 77 unavailable, else failed */
	double fault_ns[2]; /* [0] shim, [1] raw */
	double write_ns[2][NCONFIGS], get_ms[2][NCONFIGS];
};

static double seconds = 2;
static int reps = 3;
static size_t fault_pages = 16384;

/* ---- one implementation: the shim, or raw ------------------------------- */

static int impl;
static struct bench_raw raw;

static char *region_new(size_t npages)
{
	char *p;

	if (impl != IMPL_RAW) {
		p = VirtualAlloc(NULL, npages * PAGE,
				 MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
				 PAGE_READWRITE);
		if (!p)
			fprintf(stderr, "VirtualAlloc: error %u\n",
				GetLastError());
		return p;
	}
	p = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Wine, and the shim, keep write-watch memory at 4 KiB pages */
	madvise(p, npages * PAGE, MADV_NOHUGEPAGE);
	errno = -bench_raw_setup(&raw, p, npages * PAGE, PAGE);
	if (errno) {
		fprintf(stderr, "raw setup: %s\n", strerror(errno));
		munmap(p, npages * PAGE);
		return NULL;
	}
	return p;
}

static void region_free(char *p, size_t npages)
{
	if (impl != IMPL_RAW) {
		VirtualFree(p, 0, MEM_RELEASE);
		return;
	}
	bench_raw_close(&raw);
	munmap(p, npages * PAGE);
}

/* GetWriteWatch, or its raw equivalent; the count, or -1 */
static long get_watch(char *p, size_t npages, bool reset, PVOID *out)
{
	ULONG_PTR n = npages;
	DWORD gran;

	if (impl == IMPL_RAW)
		return bench_raw_collect(&raw, (uintptr_t)p,
					 (uintptr_t)p + npages * PAGE, reset,
					 npages, out);
	if (GetWriteWatch(reset ? WRITE_WATCH_FLAG_RESET : 0, p, npages * PAGE,
			  out, &n, &gran))
		return -1;
	return (long)n;
}

static int reset_watch(char *p, size_t npages)
{
	if (impl == IMPL_RAW)
		return bench_raw_arm(&raw, (uintptr_t)p,
				     (uintptr_t)p + npages * PAGE);
	return ResetWriteWatch(p, npages * PAGE) ? -1 : 0;
}

/* ---- 1: fault cost ---------------------------------------------------- */

static int fault_cost(double *ns)
{
	char *p = region_new(fault_pages);
	uint64_t t0;

	if (!p)
		return -1;
	for (size_t i = 0; i < fault_pages; i++)
		p[i * PAGE] = 1;
	if (reset_watch(p, fault_pages))
		return -1;
	t0 = bench_now_ns();
	for (size_t i = 0; i < fault_pages; i++)
		((volatile char *)p)[i * PAGE] = 2;
	*ns = (double)(bench_now_ns() - t0) / (double)fault_pages;
	region_free(p, fault_pages);
	return 0;
}

/* ---- 2: Wine's benchmark --------------------------------------------- */

struct writer {
	pthread_t th;
	char *p;
	const struct config *c;
	int id;
	atomic_bool *stop;
	uint64_t writes;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t s = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->id + 1), n = 0;
	size_t pg = (size_t)w->id;

	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		for (int i = 0; i < 64; i++) {
			if (w->c->random) {
				s ^= s << 13;
				s ^= s >> 7;
				s ^= s << 17;
				pg = (size_t)(s % w->c->pages);
			} else if (++pg == w->c->pages) {
				pg = 0;
			}
			/* each thread its own bytes: no data race */
			((volatile char *)
				 w->p)[pg * PAGE + (size_t)w->id * 64] =
				(char)n;
			n++;
		}
	}
	w->writes = n;
	return NULL;
}

static int wine_run(const struct config *c, double *write_ns, double *get_ms)
{
	struct writer w[MAX_THREADS];
	atomic_bool stop = false;
	PVOID *out = malloc(c->pages * sizeof(*out));
	char *p = region_new(c->pages);
	uint64_t t0, tget = 0, ngets = 0, writes = 0, end;
	int ret = 0;

	if (!p || !out)
		return -1;
	t0 = bench_now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	for (int i = 0; i < c->threads; i++) {
		w[i] = (struct writer){
			.p = p, .c = c, .id = i, .stop = &stop
		};
		pthread_create(&w[i].th, NULL, writer_main, &w[i]);
	}
	while (bench_now_ns() < end) {
		struct timespec d = { 0, c->delay_ms * 1000000L };
		uint64_t g;

		nanosleep(&d, NULL);
		g = bench_now_ns();
		if (get_watch(p, c->pages, c->reset_flag, out) < 0 ||
		    (!c->reset_flag && reset_watch(p, c->pages))) {
			ret = -1;
			break;
		}
		tget += bench_now_ns() - g;
		ngets++;
	}
	atomic_store(&stop, true);
	for (int i = 0; i < c->threads; i++) {
		pthread_join(w[i].th, NULL);
		writes += w[i].writes;
	}
	*write_ns =
		writes ? (double)(bench_now_ns() - t0) * c->threads / (double)writes
		       : 0;
	*get_ms = ngets ? (double)tget / (double)ngets / 1e6 : 0;
	region_free(p, c->pages);
	free(out);
	return ret;
}

/* run @fn for the shim ([0]) and raw ([1]), alternating the order */
#define BOTH(which, r, call)                                                   \
	do {                                                                   \
		for (int k_ = 0; k_ < 2; k_++) {                               \
			int side = ((r) + k_) % 2;                             \
			impl = side ? IMPL_RAW : (which);                      \
			if (call)                                              \
				_exit(1);                                      \
		}                                                              \
	} while (0)

static void child(int which, struct result *res)
{
	static const char *const env[NIMPL] = { NULL, "pagemap-scan", "uffd-wp",
						"mprotect" };
	double fv[2][MAX_REPS], wv[2][MAX_REPS], gv[2][MAX_REPS];
	char *p;
	int b;

	setenv("PMTRACK_BACKEND", env[which], 1);
	impl = IMPL_RAW;
	p = region_new(1);
	if (!p)
		_exit(EXIT_SKIP);
	region_free(p, 1);
	b = pmtrack_winwatch_backend();
	if (b < 0) {
		fprintf(stderr, "%s: %s\n", env[which], strerror(-b));
		_exit(b == -EOPNOTSUPP ? EXIT_SKIP : 1);
	}
	for (int r = 0; r < reps; r++)
		BOTH(which, r, fault_cost(&fv[side][r]));
	for (int k = 0; k < 2; k++)
		res->fault_ns[k] = bench_median(fv[k], reps);
	for (size_t i = 0; i < NCONFIGS; i++) {
		for (int r = 0; r < reps; r++)
			BOTH(which, r,
			     wine_run(&configs[i], &wv[side][r], &gv[side][r]));
		for (int k = 0; k < 2; k++) {
			res->write_ns[k][i] = bench_median(wv[k], reps);
			res->get_ms[k][i] = bench_median(gv[k], reps);
		}
	}
	_exit(0);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--seconds S (per run, default 2)] [--reps N "
		"(default 3, at most %d)] [--fault-pages N (default 16384)]\n",
		MAX_REPS);
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "fault-pages", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			seconds = pmt_arg_double(PROG, "--seconds", optarg, 0,
						 3600);
			break;
		case 'r':
			reps = (int)pmt_arg_u64(PROG, "--reps", optarg, 0, 1,
						MAX_REPS);
			break;
		case 'f':
			fault_pages = bench_parse_num(PROG, optarg,
						      "--fault-pages");
			break;
		default:
			pmt_usage_exit(o, usage);
		}
	}
	pmt_no_operands(argc, usage);
}

/* one child per backend, each filling its res[]: how many ran, or -1 if
 * one failed */
static int run_children(struct result *res)
{
	int ran = 0;

	for (int i = IMPL_PAGEMAP_SCAN; i < NIMPL; i++) {
		pid_t pid = fork();
		int st;

		if (pid == 0)
			child(i, &res[i]);
		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			return -1;
		res[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
		if (res[i].status && res[i].status != EXIT_SKIP) {
			fprintf(stderr, "%s failed\n", impl_name[i]);
			return -1;
		}
		if (!res[i].status)
			ran++;
	}
	return ran;
}

static void print_fault_cost(const struct result *res)
{
	printf("first write after reset, %zu pages: ns per write\n\n",
	       fault_pages);
	printf("| backend | shim | raw | shim / raw |\n|---|--:|--:|--:|\n");
	for (int i = IMPL_PAGEMAP_SCAN; i < NIMPL; i++)
		if (!res[i].status)
			printf("| %s | %.0f | %.0f | %.3f |\n", impl_name[i],
			       res[i].fault_ns[0], res[i].fault_ns[1],
			       res[i].fault_ns[0] / res[i].fault_ns[1]);
}

static void print_wine(const struct result *res)
{
	int first = IMPL_PAGEMAP_SCAN;

	while (res[first].status)
		first++;
	printf("\nWine's benchmark: ns per page write / ms per GetWriteWatch, "
	       "shim (and shim / raw)\n\n| threads, pages, delay ms, random, "
	       "reset flag | raw |");
	for (int i = IMPL_PAGEMAP_SCAN; i < NIMPL; i++)
		if (!res[i].status)
			printf(" %s |", impl_name[i]);
	printf("\n|---|--:|");
	for (int i = IMPL_PAGEMAP_SCAN; i < NIMPL; i++)
		if (!res[i].status)
			printf("--:|");
	printf("\n");
	for (size_t c = 0; c < NCONFIGS; c++) {
		const struct config *k = &configs[c];

		printf("| %d, %zu, %d, %d, %d | %.0f / %.3f |", k->threads,
		       k->pages, k->delay_ms, k->random, k->reset_flag,
		       res[first].write_ns[1][c], res[first].get_ms[1][c]);
		for (int i = IMPL_PAGEMAP_SCAN; i < NIMPL; i++) {
			if (res[i].status)
				continue;
			printf(" %.0f / %.3f (%.2f / %.2f) |",
			       res[i].write_ns[0][c], res[i].get_ms[0][c],
			       res[i].write_ns[0][c] / res[i].write_ns[1][c],
			       res[i].get_ms[0][c] / res[i].get_ms[1][c]);
		}
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	struct result *res;
	struct utsname u;
	int ran;

	parse_args(argc, argv);
	res = mmap(NULL, NIMPL * sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return 1;
	ran = run_children(res);
	if (ran < 0)
		return 1;
	if (!ran) {
		printf("SKIP: no async userfaultfd write-protect here, nothing "
		       "to compare with\n");
		return EXIT_SKIP;
	}
	uname(&u);
	printf("pmtrack-bench-winwatch: kernel %s, libpmtrack %s, %.1f s per "
	       "run, medians of %d; raw measured in each backend's process\n\n",
	       u.release, pmtrack_version(), seconds, reps);
	print_fault_cost(res);
	print_wine(res);
	return 0;
}

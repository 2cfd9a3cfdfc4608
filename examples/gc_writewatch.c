// SPDX-License-Identifier: MIT
/*
 * pmtrack-gc-demo: a concurrent mark phase that uses write watches the way
 * a .NET-like garbage collector does on Windows.
 *
 * The managed heap is one VirtualAlloc(MEM_WRITE_WATCH) allocation of
 * fixed-size objects holding references (object indices).  Mutator threads
 * keep rewiring references while a collector marks concurrently:
 *  1. GetWriteWatch(RESET) clears the heap's write state, then the
 *     collector marks everything reachable from the roots, with the
 *     mutators running;
 *  2. each following round asks GetWriteWatch(RESET) which pages were
 *     written meanwhile and re-scans the marked objects on them (a store of
 *     a reference into an already-scanned object would otherwise hide the
 *     target), until few pages are dirty or the round limit is reached;
 *  3. the mutators are paused for a last, short round.
 * Then, with the mutators still paused, a full stop-the-world mark checks
 * that every reachable object was marked: a write the watch lost would
 * show up as a live object left unmarked.
 *
 * Usage: pmtrack-gc-demo [heap MiB (default 64)] [mutators (default 2)]
 *        pmtrack-gc-demo --help
 * Exit status: 0 verified, 1 failed, 2 usage, 77 no usable backend (it
 * says why, and which backends would do).
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
#include <time.h>
#include <unistd.h>

#define PMTRACK_WINAPI_NAMES
#include <pmtrack/winwatch.h>

#include "args.h"

#define NREFS 7
#define PAGE 4096u

/* 32 bytes: 128 objects per page */
struct obj {
	uint32_t ref[NREFS];
	uint32_t payload;
};

#define PER_PAGE (PAGE / sizeof(struct obj))
#define NROOTS 64

static struct obj *heap;
static size_t nobjs;
static atomic_bool stop, paused_req;
static atomic_int paused;

static uint32_t load_ref(const struct obj *o, int k)
{
	return __atomic_load_n(&o->ref[k], __ATOMIC_RELAXED);
}

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)*s;
}

/* rewire references: copy one found in the heap, or drop one */
static void *mutator(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;

	while (!atomic_load(&stop)) {
		if (atomic_load(&paused_req)) {
			atomic_fetch_add(&paused, 1);
			while (atomic_load(&paused_req) && !atomic_load(&stop))
				sched_yield();
			atomic_fetch_sub(&paused, 1);
			continue;
		}
		for (int i = 0; i < 64; i++) {
			struct obj *a = &heap[1 + rnd(&seed) % (nobjs - 1)];
			struct obj *b = &heap[1 + rnd(&seed) % (nobjs - 1)];
			uint32_t r = load_ref(b, (int)(rnd(&seed) % NREFS));
			uint32_t v = rnd(&seed) % 4 ? r : 0;

			__atomic_store_n(&a->ref[rnd(&seed) % NREFS], v,
					 __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

/* the probes a backend depends on, as "probe NAME: yes/no, ..." */
static void probe_results(enum pmtrack_backend b, char *buf, size_t n)
{
	static const struct {
		enum pmtrack_backend b;
		enum pmtrack_feature feat;
	} deps[] = {
		{ PMTRACK_BACKEND_PAGEMAP_SCAN, PMTRACK_FEAT_PAGEMAP_SCAN },
		{ PMTRACK_BACKEND_PAGEMAP_SCAN, PMTRACK_FEAT_UFFD_WP_ASYNC },
		{ PMTRACK_BACKEND_SOFT_DIRTY, PMTRACK_FEAT_SOFT_DIRTY },
		{ PMTRACK_BACKEND_UFFD_WP, PMTRACK_FEAT_UFFD_WP },
	};
	size_t len = 0;

	buf[0] = 0;
	for (size_t i = 0; i < sizeof(deps) / sizeof(*deps) && len < n; i++)
		if (deps[i].b == b)
			len += (size_t)snprintf(
				buf + len, n - len, "%sprobe %s: %s",
				len ? ", " : "",
				pmtrack_feature_name(deps[i].feat),
				pmtrack_probe(deps[i].feat, NULL) == 1 ? "yes"
								       : "no");
}

/*
 * Why @b cannot serve write watches here, in @buf, or NULL if it can.  They
 * need resets that are atomic and limited to the range asked for, as
 * Windows' are.
 */
static const char *unusable_why(enum pmtrack_backend b, char *buf, size_t n)
{
	const unsigned int need =
		PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET;
	PMTRACK_OPTS(pmtrack_opts, o, .backend = b);
	struct pmtrack *t;
	unsigned int caps;
	char probes[160];
	int r;

	if (sysconf(_SC_PAGESIZE) != PAGE) {
		snprintf(buf, n,
			 "write watches need %u-byte pages, this system's are "
			 "%ld bytes",
			 PAGE, sysconf(_SC_PAGESIZE));
		return buf;
	}
	r = pmtrack_new(&o, &t);
	if (r == -EOPNOTSUPP) {
		probe_results(b, probes, sizeof(probes));
		snprintf(buf, n, "this machine cannot run it%s%s%s",
			 probes[0] ? " (" : "", probes, probes[0] ? ")" : "");
		return buf;
	}
	if (r) {
		snprintf(buf, n, "it failed to start: %s", strerror(-r));
		return buf;
	}
	caps = pmtrack_caps(t);
	pmtrack_free(t);
	if ((caps & need) == need)
		return NULL;
	snprintf(buf, n,
		 "it lacks %s%s%s, which write watches need (a reset of "
		 "exactly the range asked for, losing no concurrent write)",
		 caps & PMTRACK_CAP_ATOMIC_RESET ? "" : "atomic-reset",
		 caps & need ? "" : " and ",
		 caps & PMTRACK_CAP_RANGE_RESET ? "" : "range-reset");
	return buf;
}

/* VirtualAlloc(MEM_WRITE_WATCH) said ERROR_NOT_SUPPORTED: say why, and
 * which backends would do */
static void explain_not_supported(void)
{
	const char *req = getenv("PMTRACK_BACKEND");
	char why[PMTRACK_BACKEND_MPROTECT + 1][512], usable[128] = "";
	bool any = !req || !*req || !strcmp(req, "auto"), named = false;

	for (int b = PMTRACK_BACKEND_PAGEMAP_SCAN;
	     b <= PMTRACK_BACKEND_MPROTECT; b++) {
		const char *name = pmtrack_backend_name(b);

		if (unusable_why((enum pmtrack_backend)b, why[b],
				 sizeof(why[b])))
			continue;
		why[b][0] = 0;
		snprintf(usable + strlen(usable),
			 sizeof(usable) - strlen(usable), "%s%s",
			 usable[0] ? ", " : "", name);
	}
	if (!usable[0])
		strcpy(usable, "none");
	for (int b = PMTRACK_BACKEND_PAGEMAP_SCAN;
	     b <= PMTRACK_BACKEND_MPROTECT; b++) {
		const char *name = pmtrack_backend_name(b);

		if (any && why[b][0])
			printf("SKIP: backend %s: %s\n", name, why[b]);
		if (any || strcmp(req, name))
			continue;
		printf("SKIP: the requested backend (%s, from "
		       "PMTRACK_BACKEND) is unusable here: %s; backends "
		       "usable for write watches here: %s\n",
		       name, why[b][0] ? why[b] : "no reason found", usable);
		named = true;
	}
	if (any)
		printf("SKIP: no backend here gives write watches\n");
	else if (!named)
		printf("SKIP: PMTRACK_BACKEND=%s names no backend; backends "
		       "usable for write watches here: %s\n",
		       req, usable);
}

/* marking with an explicit stack */
static uint8_t *mark;
static uint32_t *stack;
static size_t sp;

static void push(uint32_t i)
{
	if (i && !mark[i]) {
		mark[i] = 1;
		stack[sp++] = i;
	}
}

static size_t trace(void)
{
	size_t n = 0;

	while (sp) {
		const struct obj *o = &heap[stack[--sp]];

		for (int k = 0; k < NREFS; k++)
			push(load_ref(o, k));
		n++;
	}
	return n;
}

static void mark_roots(void)
{
	for (uint32_t r = 1; r <= NROOTS; r++)
		push(r);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * One round: the pages written since the last one, re-scanning the marked
 * objects on them.  A full array means more may be dirty: go on after the
 * last page returned (with RESET only the pages up to it were reset).
 */
static size_t rescan(PVOID *pages, size_t npages, size_t *dirty)
{
	char *at = (char *)heap, *end = (char *)(heap + nobjs);
	size_t total = 0, objs = 0;
	ULONG_PTR count;
	DWORD gran;

	do {
		count = npages;
		if (GetWriteWatch(WRITE_WATCH_FLAG_RESET, at,
				  (size_t)(end - at), pages, &count, &gran)) {
			fprintf(stderr, "GetWriteWatch: error %u\n",
				GetLastError());
			exit(1);
		}
		for (ULONG_PTR i = 0; i < count; i++) {
			size_t first = (size_t)((struct obj *)pages[i] - heap);

			for (size_t j = first; j < first + PER_PAGE; j++)
				if (mark[j]) {
					const struct obj *o = &heap[j];

					for (int k = 0; k < NREFS; k++)
						push(load_ref(o, k));
					objs++;
				}
		}
		total += count;
		if (count)
			at = (char *)pages[count - 1] + gran;
	} while (count == npages && at < end);
	*dirty = total;
	return objs + trace();
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f, "usage: %s [heap MiB] [mutators 1..16]\n", prog);
}

/* [heap MiB (decimal, 0x hex or 0 octal)] [mutators], both optional */
static void parse_args(int argc, char **argv, size_t *mib, int *nmut)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		usage(opt == 'h' ? stdout : stderr, argv[0]);
		exit(opt == 'h' ? 0 : 2);
	}
	if (argc - optind > 2) {
		usage(stderr, argv[0]);
		exit(2);
	}
	/* the heap's bytes must fit a size_t */
	if (optind < argc)
		*mib = pmt_arg_u64(argv[0], "heap MiB", argv[optind],
				   PMT_NUM_BASE0, 1, SIZE_MAX >> 20);
	if (optind + 1 < argc)
		*nmut = (int)pmt_arg_u64(argv[0], "mutators",
					 argv[optind + 1], 0, 1, 16);
}

/* The managed heap, write-watched: 0, or the exit status after a
 * message (77: no backend here gives write watches). */
static int heap_alloc(size_t npages)
{
	DWORD err;

	heap = VirtualAlloc(NULL, npages * PAGE,
			    MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
			    PAGE_READWRITE);
	if (heap)
		return 0;
	err = GetLastError();
	if (err != ERROR_NOT_SUPPORTED) {
		fprintf(stderr, "VirtualAlloc(MEM_WRITE_WATCH): error %u\n",
			err);
		return 1;
	}
	explain_not_supported();
	return 77;
}

/* a random object graph, object 0 is null */
static void build_graph(void)
{
	uint64_t seed = 42;

	for (size_t i = 1; i < nobjs; i++)
		for (int k = 0; k < NREFS; k++)
			heap[i].ref[k] =
				rnd(&seed) % 3
					? 0
					: 1 + rnd(&seed) %
							  (uint32_t)(nobjs - 1);
}

/* Mark with the @nmut mutators running, then pause them for a last
 * round (they stay paused). */
static void mark_concurrently(PVOID *pages, size_t npages, int nmut)
{
	size_t dirty;
	double t0;

	/* 1: start watching from here, mark concurrently */
	t0 = now_ms();
	ResetWriteWatch(heap, nobjs * sizeof(struct obj));
	mark_roots();
	printf("concurrent mark: %zu objects, %.1f ms\n", trace(),
	       now_ms() - t0);
	/* 2: concurrent re-scan rounds */
	for (int round = 1; round <= 8; round++) {
		size_t objs;

		t0 = now_ms();
		objs = rescan(pages, 1024, &dirty);
		printf("round %d: %zu dirty pages, %zu objects re-scanned, "
		       "%.1f ms\n",
		       round, dirty, objs, now_ms() - t0);
		if (dirty < npages / 100)
			break;
	}
	/* 3: pause the mutators, last round */
	atomic_store(&paused_req, true);
	while (atomic_load(&paused) < nmut)
		sched_yield();
	t0 = now_ms();
	rescan(pages, 1024, &dirty);
	printf("final pause: %zu dirty pages, %.2f ms\n", dirty, now_ms() - t0);
}

/*
 * Check the marks against a stop-the-world mark of the same heap: the
 * objects marked, the live ones and those live but unmarked.  0, or -1
 * out of memory.
 */
static int check_marks(size_t *marked, size_t *live, size_t *missed)
{
	uint8_t *inc = mark;

	for (size_t i = 0; i < nobjs; i++)
		*marked += inc[i];
	mark = calloc(nobjs, 1);
	if (!mark)
		return -1;
	mark_roots();
	trace();
	for (size_t i = 0; i < nobjs; i++) {
		*live += mark[i];
		*missed += mark[i] && !inc[i];
	}
	free(inc);
	return 0;
}

int main(int argc, char **argv)
{
	size_t mib = 64, npages, live = 0, missed = 0, marked = 0;
	pthread_t th[16];
	int nmut = 2, ret;
	PVOID *pages;

	parse_args(argc, argv, &mib, &nmut);
	npages = mib * 1024 * 1024 / PAGE;
	nobjs = npages * PER_PAGE;
	ret = heap_alloc(npages);
	if (ret)
		return ret;
	printf("heap %zu MiB, %zu objects, %d mutators, backend %s\n", mib,
	       nobjs, nmut,
	       pmtrack_backend_name(
		       (enum pmtrack_backend)pmtrack_winwatch_backend()));
	mark = calloc(nobjs, 1);
	stack = malloc(nobjs * sizeof(*stack));
	pages = malloc(1024 * sizeof(*pages));
	if (!mark || !stack || !pages)
		return 1;
	build_graph();
	for (int i = 0; i < nmut; i++)
		pthread_create(&th[i], NULL, mutator, (void *)(uintptr_t)i);
	mark_concurrently(pages, npages, nmut);
	if (check_marks(&marked, &live, &missed))
		return 1;
	atomic_store(&stop, true);
	for (int i = 0; i < nmut; i++)
		pthread_join(th[i], NULL);
	printf("live %zu, marked %zu (floating garbage %zu), live but "
	       "unmarked %zu\n",
	       live, marked, marked - (live - missed), missed);
	VirtualFree(heap, 0, MEM_RELEASE);
	free(mark);
	free(stack);
	free(pages);
	if (missed) {
		printf("FAILED: the concurrent mark missed live objects\n");
		return 1;
	}
	printf("OK: every live object was marked\n");
	return 0;
}

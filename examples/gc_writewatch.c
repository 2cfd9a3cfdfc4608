// SPDX-License-Identifier: MIT
/*
 * pmtrack-gc-demo: a concurrent mark phase that uses write watches the way
 * a .NET-like garbage collector does on Windows.
 *
 * The managed heap is one VirtualAlloc(MEM_WRITE_WATCH) allocation of
 * fixed-size objects holding references (object indices).  Mutator threads
 * keep rewiring references while a collector marks concurrently; like a
 * real program's, their stores go to a small part of the heap (the
 * nursery: its last pages, 1/64 of it by default), to random objects
 * there at a set rate (--store-rate), while they read references from all
 * of it.  The nursery bounds the pages a round can re-scan, as a
 * generational write barrier's card table would; within it, the write
 * watch makes a round re-scan only the pages written since the last one,
 * which at the default rate are usually fewer than the nursery's and vary
 * with the round's length:
 *  1. ResetWriteWatch() clears the heap's write state, then the collector
 *     marks everything reachable from the roots, with the mutators
 *     running;
 *  2. each following round asks GetWriteWatch(RESET) which pages were
 *     written meanwhile and re-scans the marked objects on those pages
 *     only (a store of a reference into an already-scanned object would
 *     otherwise hide the target), until few pages are dirty or the round
 *     limit is reached;
 *  3. the mutators are paused for a last, short round.
 * Each round prints how many pages GetWriteWatch reported and how many
 * the re-scan visited, against all the heap's pages; the end, the total:
 * the work write watches save against re-scanning the whole heap.  Then,
 * with the mutators still paused, a full stop-the-world mark checks that
 * every reachable object was marked: a write the watch lost would show up
 * as a live object left unmarked.
 *
 *   pmtrack-gc-demo [--heap SIZE] [--mutators N] [--nursery SIZE]
 *                   [--store-rate N] [--rounds N]
 *   pmtrack-gc-demo --help | --version
 *
 * The options and their defaults are in help() below; the grammar is
 * docs/cli.md's.  Exit status: 0 verified, 1 failed, 2 a bad command
 * line, 77 this machine cannot run it (no usable backend: it says why on
 * stderr, and which backends would do).
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
#include "excli.h"
#include "status.h"

#define PROG "pmtrack-gc-demo"
#define NREFS 7
#define PAGE 4096u

/* 32 bytes: 128 objects per page */
struct obj {
	uint32_t ref[NREFS];
	uint32_t payload;
};

#define PER_PAGE (PAGE / sizeof(struct obj))
#define NROOTS 64
/* a mutator's stores between two looks at the clock and the flags */
#define BATCH 16

static struct obj *heap;
static size_t nobjs;
/* the mutators store into objects [nursery, nobjs) */
static size_t nursery;
static atomic_bool stop, paused_req;
static atomic_int paused;
/* stores the mutators made, all together */
static atomic_ullong stores;
/* the time a mutator takes for a batch at --store-rate; 0 = no pause */
static uint64_t batch_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

/*
 * Sleep until @next (for at most 10 ms, so that the flags are seen): 1 if
 * it is not time yet.  A mutator that fell behind by more than 100 ms
 * (a busy machine) does not catch up in a burst.
 */
static int not_yet(uint64_t *next)
{
	uint64_t now = now_ns();
	struct timespec ts = { 0, 10000000 };

	if (!batch_ns)
		return 0;
	if (*next > now) {
		if (*next - now < 10000000)
			ts.tv_nsec = (long)(*next - now);
		nanosleep(&ts, NULL);
		return 1;
	}
	*next = now - *next > 100000000 ? now + batch_ns : *next + batch_ns;
	return 0;
}

/* rewire references: copy one found in the heap, or drop one, into a
 * random object of the nursery, BATCH stores every batch_ns */
static void *mutator(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
	/* the mutators start a batch apart */
	uint64_t next = now_ns() + (uintptr_t)arg * batch_ns / 16;

	while (!atomic_load(&stop)) {
		if (atomic_load(&paused_req)) {
			atomic_fetch_add(&paused, 1);
			while (atomic_load(&paused_req) && !atomic_load(&stop))
				sched_yield();
			atomic_fetch_sub(&paused, 1);
			next = now_ns();
			continue;
		}
		if (not_yet(&next))
			continue;
		for (int i = 0; i < BATCH; i++) {
			struct obj *a =
				&heap[nursery + rnd(&seed) % (nobjs - nursery)];
			struct obj *b = &heap[1 + rnd(&seed) % (nobjs - 1)];
			uint32_t r = load_ref(b, (int)(rnd(&seed) % NREFS));
			uint32_t v = rnd(&seed) % 4 ? r : 0;

			__atomic_store_n(&a->ref[rnd(&seed) % NREFS], v,
					 __ATOMIC_RELAXED);
		}
		atomic_fetch_add(&stores, BATCH);
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
		char ps[PMT_IEC_LEN];

		snprintf(buf, n,
			 "write watches need 4 KiB pages, this system's are %s",
			 pmt_fmt_iec(ps, sizeof(ps),
				     (uint64_t)sysconf(_SC_PAGESIZE)));
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
			fprintf(stderr, "SKIP: backend %s: %s\n", name,
				why[b]);
		if (any || strcmp(req, name))
			continue;
		fprintf(stderr,
			"SKIP: the requested backend (%s, from "
			"PMTRACK_BACKEND) is unusable here: %s; backends "
			"usable for write watches here: %s\n",
			name, why[b][0] ? why[b] : "no reason found", usable);
		named = true;
	}
	if (any)
		fprintf(stderr, "SKIP: no backend here gives write watches\n");
	else if (!named)
		fprintf(stderr,
			"SKIP: PMTRACK_BACKEND=%s names no backend; backends "
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

/* the time since @t0 (now_ns()), as pmt_fmt_dur() prints it, in one of
 * two buffers that take turns */
static const char *since(uint64_t t0)
{
	static char buf[2][PMT_UNIT_LEN];
	static unsigned int next;

	return pmt_fmt_dur(buf[next++ % 2], PMT_UNIT_LEN, now_ns() - t0);
}

/* what one re-scan round did */
struct round {
	size_t reported; /* pages GetWriteWatch reported */
	size_t visited;	 /* distinct heap pages whose objects were re-scanned */
	size_t objs;	 /* marked objects re-scanned, and newly marked ones */
};

/* per heap page: visited by this round's re-scan */
static uint8_t *visited;

/* Re-scan the marked objects of heap page @pg, once per round. */
static void rescan_page(size_t pg, struct round *r)
{
	if (visited[pg])
		return;
	visited[pg] = 1;
	r->visited++;
	for (size_t j = pg * PER_PAGE; j < (pg + 1) * PER_PAGE; j++)
		if (mark[j]) {
			const struct obj *o = &heap[j];

			for (int k = 0; k < NREFS; k++)
				push(load_ref(o, k));
			r->objs++;
		}
}

/*
 * One round: the pages written since the last one, re-scanning the marked
 * objects on them.  A full array means more may be dirty: go on after the
 * last page returned (with RESET only the pages up to it were reset).
 */
static void rescan(PVOID *pages, size_t max, size_t npages, struct round *r)
{
	char *at = (char *)heap, *end = (char *)(heap + nobjs);
	ULONG_PTR count;
	DWORD gran;

	memset(r, 0, sizeof(*r));
	memset(visited, 0, npages);
	do {
		count = max;
		if (GetWriteWatch(WRITE_WATCH_FLAG_RESET, at,
				  (size_t)(end - at), pages, &count, &gran)) {
			fprintf(stderr, PROG ": GetWriteWatch: error %u\n",
				GetLastError());
			exit(1);
		}
		for (ULONG_PTR i = 0; i < count; i++) {
			size_t off = (size_t)((char *)pages[i] - (char *)heap);

			if ((char *)pages[i] < at || off >= npages * PAGE ||
			    off % PAGE) {
				fprintf(stderr,
					PROG ": GetWriteWatch returned %p, "
					     "not a heap page after %p\n",
					pages[i], (void *)at);
				exit(1);
			}
			rescan_page(off / PAGE, r);
		}
		r->reported += count;
		if (count)
			at = (char *)pages[count - 1] + gran;
	} while (count == max && at < end);
	r->objs += trace();
}

struct cfg {
	uint64_t heap, nursery, mutators, rate, rounds;
};

static void help(FILE *f)
{
	fputs("usage: " PROG " [--heap SIZE] [--mutators N] "
	      "[--nursery SIZE]\n"
	      "                       [--store-rate N] [--rounds N]\n"
	      "       " PROG " --help | --version\n"
	      "\n"
	      "A concurrent mark phase that uses write watches the way a .NET-"
	      "like garbage\n"
	      "collector does on Windows.  Mutator threads rewire references "
	      "while the\n"
	      "collector marks; then each round asks "
	      "GetWriteWatch(WRITE_WATCH_FLAG_RESET)\n"
	      "which pages were written and re-scans only those, and a last "
	      "round runs with\n"
	      "the mutators paused.  Every round prints the pages it re-scanned "
	      "against all\n"
	      "the heap's pages.  A stop-the-world mark then checks that no "
	      "live object was\n"
	      "missed.\n"
	      "\n"
	      "The mutators store only into the nursery, random objects of it "
	      "at --store-rate:\n"
	      "the nursery bounds what a round can re-scan, as a generational "
	      "write barrier\n"
	      "would, and the write watch narrows it to the nursery pages "
	      "written since the\n"
	      "last round.  Exit status: 0 verified, 1 failed, 2 a bad command "
	      "line, 77 this\n"
	      "machine cannot run it (why on stderr: no backend here gives "
	      "write watches;\n"
	      "PMTRACK_BACKEND picks one).\n"
	      "\n"
	      "  --heap SIZE       the managed heap, at least 64 KiB (default 64 "
	      "MiB)\n"
	      "  --mutators N      mutator threads, 1..16 (default 2)\n"
	      "  --nursery SIZE    the only part of the heap the mutators store "
	      "into, at its\n"
	      "                    end, rounded up to 4 KiB pages (default 1/64 "
	      "of the heap)\n"
	      "  --store-rate N    stores per second, all mutators together; 0 "
	      "= as fast as\n"
	      "                    they can, which writes every nursery page "
	      "each round\n"
	      "                    (default 4000)\n"
	      "  --rounds N        most re-scan rounds with the mutators "
	      "running, 1..1000\n"
	      "                    (default 4)\n"
	      "  -h, --help        print this help and exit\n"
	      "  --version         print the version and exit\n",
	      f);
}

static void parse_args(int argc, char **argv, struct cfg *c)
{
	static const struct option longopts[] = {
		{ "heap", required_argument, NULL, 'H' },
		{ "mutators", required_argument, NULL, 'm' },
		{ "nursery", required_argument, NULL, 'n' },
		{ "store-rate", required_argument, NULL, 's' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, PMT_CLI_HELP },
		{ "version", no_argument, NULL, PMT_CLI_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const struct pmt_cli cli = { PROG, longopts, help };
	int opt;

	while ((opt = pmt_cli_next(&cli, argc, argv)) != -1) {
		switch (opt) {
		case 'H': /* object indices are 32 bits: 128 GiB at most */
			c->heap = pmt_arg_u64(PROG, "--heap", optarg,
					      PMT_NUM_SUFFIX, 64 << 10,
					      (uint64_t)UINT32_MAX / PER_PAGE *
						      PAGE);
			break;
		case 'm':
			c->mutators = pmt_arg_u64(PROG, "--mutators", optarg,
						  0, 1, 16);
			break;
		case 'n':
			c->nursery = pmt_arg_u64(PROG, "--nursery", optarg,
						 PMT_NUM_SUFFIX, 1, UINT64_MAX);
			break;
		case 's':
			c->rate = pmt_arg_u64(PROG, "--store-rate", optarg, 0,
					      0, UINT64_MAX);
			break;
		case 'r':
			c->rounds = pmt_arg_u64(PROG, "--rounds", optarg, 0, 1,
						1000);
			break;
		}
	}
	pmt_cli_end(&cli, argc, argv);
	c->heap = (c->heap + PAGE - 1) / PAGE * PAGE;
	if (!c->nursery)
		c->nursery = c->heap / 64;
	c->nursery = (c->nursery + PAGE - 1) / PAGE * PAGE;
	if (c->nursery > c->heap - PAGE)
		pmt_cli_bad(&cli, "--nursery must leave a page of the heap outside "
			    "it (the roots)");
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

/* the mutators' stores when the write state was last reset */
static unsigned long long stores_at_reset;

/*
 * Let the @nmut mutators run until they have stored since the last reset
 * (the collector's other work, in a real program): a batch that was under
 * way at the reset adds at most BATCH, so BATCH more than @nmut such
 * batches mean a batch begun after it.
 */
static void let_mutators_run(int nmut)
{
	while (atomic_load(&stores) <
	       stores_at_reset + BATCH * (unsigned long long)(nmut + 1))
		usleep(200);
}

/* totals of the re-scan rounds */
struct totals {
	size_t rounds, reported, visited;
};

/* one re-scan round, and its line */
static void round_line(PVOID *pages, size_t npages, const char *when,
		       struct round *r, struct totals *t)
{
	uint64_t t0 = now_ns();

	rescan(pages, 1024, npages, r);
	stores_at_reset = atomic_load(&stores);
	t->rounds++;
	t->reported += r->reported;
	t->visited += r->visited;
	printf("round %zu%s: GetWriteWatch reported %zu written pages; "
	       "re-scanned %zu of %zu heap pages (%.2f %%), %zu marked objects, "
	       "%s\n",
	       t->rounds, when, r->reported, r->visited, npages,
	       100.0 * (double)r->visited / (double)npages, r->objs, since(t0));
}

/* Mark with the @nmut mutators running, then pause them for a last
 * round (they stay paused). */
static void mark_concurrently(PVOID *pages, size_t npages, int nmut,
			      uint64_t rounds)
{
	struct totals t = { 0 };
	struct round r;
	uint64_t t0;
	size_t objs;

	/* 1: start watching from here, mark concurrently */
	t0 = now_ns();
	ResetWriteWatch(heap, nobjs * sizeof(struct obj));
	stores_at_reset = atomic_load(&stores);
	mark_roots();
	objs = trace();
	printf("concurrent mark: %zu objects marked, all %zu heap pages "
	       "scanned, %s\n",
	       objs, npages, since(t0));
	/* 2: concurrent re-scan rounds, until few pages are dirty */
	for (uint64_t i = 0; i < rounds; i++) {
		let_mutators_run(nmut);
		round_line(pages, npages, "", &r, &t);
		if (r.reported < npages / 100)
			break;
	}
	/* 3: pause the mutators, last round */
	let_mutators_run(nmut);
	atomic_store(&paused_req, true);
	while (atomic_load(&paused) < nmut)
		sched_yield();
	round_line(pages, npages, " (mutators paused)", &r, &t);
	printf("total: re-scanned %zu pages in %zu rounds (GetWriteWatch "
	       "reported %zu), of %zu if each round had re-scanned the whole "
	       "heap: %.2f %%\n",
	       t.visited, t.rounds, t.reported, t.rounds * npages,
	       100.0 * (double)t.visited / (double)(t.rounds * npages));
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

/* "heap 64 MiB (16384 pages), ..." */
static void print_setup(const struct cfg *c, size_t npages)
{
	char h[PMT_IEC_LEN], n[PMT_IEC_LEN], rate[48] = "as fast as they can";

	if (c->rate)
		snprintf(rate, sizeof(rate), "%llu times a second",
			 (unsigned long long)c->rate);
	printf("heap %s (%zu pages), %zu objects; %llu mutators storing %s "
	       "into random objects of a %s nursery (%llu pages), the only "
	       "pages they write; backend %s\n",
	       pmt_fmt_iec(h, sizeof(h), c->heap), npages, nobjs,
	       (unsigned long long)c->mutators, rate,
	       pmt_fmt_iec(n, sizeof(n), c->nursery),
	       (unsigned long long)(c->nursery / PAGE),
	       pmtrack_backend_name(
		       (enum pmtrack_backend)pmtrack_winwatch_backend()));
}

int main(int argc, char **argv)
{
	struct cfg c = {
		.heap = 64u << 20, .mutators = 2, .rate = 4000, .rounds = 4
	};
	size_t npages, live = 0, missed = 0, marked = 0;
	pthread_t th[16];
	int nmut, ret;
	PVOID *pages;

	parse_args(argc, argv, &c);
	nmut = (int)c.mutators;
	npages = c.heap / PAGE;
	nobjs = npages * PER_PAGE;
	nursery = nobjs - c.nursery / PAGE * PER_PAGE;
	/* each mutator stores BATCH every batch_ns */
	batch_ns = c.rate ? (uint64_t)(1e9 * BATCH * nmut / (double)c.rate) : 0;
	ret = heap_alloc(npages);
	if (ret)
		return ret;
	print_setup(&c, npages);
	mark = calloc(nobjs, 1);
	stack = malloc(nobjs * sizeof(*stack));
	visited = malloc(npages);
	pages = malloc(1024 * sizeof(*pages));
	if (!mark || !stack || !visited || !pages)
		return 1;
	build_graph();
	for (int i = 0; i < nmut; i++)
		pthread_create(&th[i], NULL, mutator, (void *)(uintptr_t)i);
	mark_concurrently(pages, npages, nmut, c.rounds);
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
	free(visited);
	free(pages);
	if (missed) {
		printf("FAILED: the concurrent mark missed live objects\n");
		return 1;
	}
	printf("OK: every live object was marked\n");
	return 0;
}

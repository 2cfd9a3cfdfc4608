// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench-pagestate: pmtrack_pstate_count() over a large address
 * range of mixed page states, against reading /proc/self/pagemap over the
 * same range with pread() at the best of several buffer sizes.
 *
 * One contiguous, 2 MiB-aligned region (--size-mib, 4096 by default) is
 * split into mappings of different kinds, each filled in runs of 1 to 511
 * pages of pseudo-random (fixed seed) length and kind:
 *
 *  anon      private anonymous (MADV_NOHUGEPAGE): runs written, read (the
 *            shared zero page, on kernels that map it) or left untouched
 *  shared    MAP_SHARED | MAP_ANONYMOUS: runs written or untouched
 *  forked    private anonymous, runs written or untouched, then shared
 *            copy-on-write with a child that sleeps until the end; a third
 *            of the written runs are written again (exclusive again)
 *  memfd     MAP_SHARED of a memfd: runs written, written and then zapped
 *            with MADV_DONTNEED (in the object's page cache, not mapped),
 *            or untouched
 *  file      MAP_PRIVATE of an unlinked sparse file in $TMPDIR (or
 *            /var/tmp): runs read or untouched
 *  thp       private anonymous with MADV_HUGEPAGE, written fully
 *
 * Some 45% of the region's pages are touched, so that the setup takes
 * seconds where page faults are expensive.  Then come --reps reps of the
 * nine measurements below, interleaved (read, lib, read, ...) and each rep
 * starting one further along, each timed alone:
 *
 *  pagemap read  pread() of /proc/self/pagemap over the region's mappings
 *                with a 4 KiB, 64 KiB, 512 KiB, 2 MiB and 8 MiB buffer,
 *                every entry counted as present / swapped / file /
 *                exclusive; the buffer size with the lowest median is the
 *                "best pagemap read"
 *  (a)..(d)      one pmtrack_pstate_count() over the whole region: (a) all
 *                states but EXCLUSIVE, (b) all states (EXCLUSIVE costs a
 *                pagemap read of the present pages), (c) PRESENT | SWAPPED,
 *                (d) all states with PMTRACK_PSTATE_PAGEMAP_READ
 *
 * Reported: medians in ms and the ratio of each to the best pagemap read,
 * against the target of 0.5 (a benchmark: a miss is reported, not failed).
 * The library's present pages must equal those of the latest pagemap read
 * plus the zapped memfd pages (which pagemap cannot see), or the program
 * exits 1; zapped pages that reclaim moved to swap meanwhile must be
 * swapped instead.  File and exclusive pages are compared too, with a
 * warning.  The region is locked with MLOCK_ONFAULT after the setup (where
 * allowed), so that reclaim leaves its mapped pages alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>

#include "args.h"
#include "bench_util.h"

#define PROG "pmtrack-bench-pagestate"
#define EXIT_SKIP 77
#define TARGET 0.5
#define MIB (1ul << 20)
#define HPAGE (2ul << 20)

/* /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_FILE (1ULL << 61)
#define PM_EXCLUSIVE (1ULL << 56)

enum part_kind { K_ANON, K_SHARED, K_FORKED, K_MEMFD, K_FILE, K_THP, K_NR };

static const struct {
	const char *name;
	unsigned int permille; /* share of the region; anon takes the rest */
	const char *what;
} kinds[K_NR] = {
	[K_ANON] = { "anon", 0, "private anon: written / read / untouched" },
	[K_SHARED] = { "shared", 100, "shared anon: written / untouched" },
	[K_FORKED] = { "forked", 50,
		       "private anon COW-shared with a child, 1/3 rewritten" },
	[K_MEMFD] = { "memfd", 100,
		      "memfd: written / written+zapped / untouched" },
	[K_FILE] = { "file", 100, "private file: read / untouched" },
	[K_THP] = { "thp", 100, "private anon MADV_HUGEPAGE, all written" },
};

/* layout order in the region */
static const enum part_kind order[K_NR] = { K_ANON,  K_SHARED, K_FORKED,
					    K_MEMFD, K_FILE,   K_THP };

struct part {
	char *base;
	size_t len;
	int fd; /* memfd or file, else -1 */
};

/* what populating a part costs and leaves behind, in pages */
struct tally {
	uint64_t touched; /* pages accessed */
	uint64_t ram;	  /* pages that take memory (file pages: all) */
	uint64_t zapped;  /* memfd pages written and zapped */
};

enum pass { PLAN, POPULATE, REWRITE };

/* an address range of the region's mappings */
struct range {
	uint64_t s, e;
};

/* baseline counters */
struct pm_counts {
	uint64_t pages, present, swapped, file, excl;
};

enum variant { VA, VB, VC, VD, V_NR };

static const struct {
	const char *label;
	unsigned int want;
	bool read_mode;
} variants[V_NR] = {
	[VA] = { "(a) lib, all states but exclusive",
		 PMTRACK_PAGE_ALL & ~PMTRACK_PAGE_EXCLUSIVE, false },
	[VB] = { "(b) lib, all states", PMTRACK_PAGE_ALL, false },
	[VC] = { "(c) lib, present + swapped",
		 PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_SWAPPED, false },
	[VD] = { "(d) lib, pagemap-read mode, all states", PMTRACK_PAGE_ALL,
		 true },
};

static const size_t buf_sizes[] = { 4096, 64 << 10, 512 << 10, 2 << 20,
				    8 << 20 };
#define NBUF (sizeof(buf_sizes) / sizeof(buf_sizes[0]))
/* measurements per rep: the reads at even slots, the variants at odd */
#define NSLOT ((int)NBUF + V_NR)
_Static_assert(NBUF == V_NR + 1, "slots interleave reads and variants");

static size_t page_size;
static unsigned int pshift;
static pid_t child = -1;
static uint64_t rng;

__attribute__((noreturn)) static void fail(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err));
	exit(1);
}

static void kill_child(void)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
}

/* splitmix64 */
static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void touch(char *p, size_t pages, bool write, char val)
{
	volatile char *v = p;

	for (size_t i = 0; i < pages; i++) {
		if (write)
			v[i << pshift] = val;
		else
			(void)v[i << pshift];
	}
}

static void tally_add(struct tally *t, size_t touched, size_t ram)
{
	t->touched += touched;
	t->ram += ram;
}

/* a run of the forked part: 60% written, a third of those again */
static void forked_run(enum pass pass, char *p, size_t n, unsigned int kind,
		       bool again, struct tally *t)
{
	if (kind >= 60)
		return;
	if (pass == REWRITE) {
		if (again)
			touch(p, n, true, 5);
		return;
	}
	tally_add(t, again ? 2 * n : n, again ? 2 * n : n);
	if (pass == POPULATE)
		touch(p, n, true, 4);
}

/* a run of the memfd part: 20% written, 20% written and zapped */
static void memfd_run(enum pass pass, char *p, size_t n, unsigned int kind,
		      struct tally *t)
{
	if (kind >= 40)
		return;
	tally_add(t, n, n);
	t->zapped += kind >= 20 ? n : 0;
	if (pass != POPULATE)
		return;
	touch(p, n, true, 6);
	if (kind >= 20 && madvise(p, n << pshift, MADV_DONTNEED))
		fail("madvise(MADV_DONTNEED) of the memfd", errno);
}

/* one run of @n pages at @p of part @k, of the @kind drawn (0..99) */
static void part_run(enum part_kind k, enum pass pass, char *p, size_t n,
		     unsigned int kind, bool again, struct tally *t)
{
	bool go = pass == POPULATE;

	switch (k) {
	case K_ANON: /* 30% written, 10% read, 60% untouched */
		if (kind >= 40)
			break;
		/* reads: the zero page, or (some kernels) a page */
		tally_add(t, n, n);
		if (go)
			touch(p, n, kind < 30, 2);
		break;
	case K_SHARED: /* 40% written */
		if (kind >= 40)
			break;
		tally_add(t, n, n);
		if (go)
			touch(p, n, true, 3);
		break;
	case K_FORKED:
		forked_run(pass, p, n, kind, again, t);
		break;
	case K_MEMFD:
		memfd_run(pass, p, n, kind, t);
		break;
	case K_FILE: /* 30% read */
		if (kind >= 30)
			break;
		tally_add(t, n, 0);
		if (go)
			touch(p, n, false, 0);
		break;
	default:
		break;
	}
}

/*
 * Walk part @k in runs; the random draws are the same in every pass, so
 * PLAN counts what POPULATE will do and REWRITE finds the forked part's
 * written runs again.
 */
static void part_runs(enum part_kind k, struct part *pt, enum pass pass,
		      struct tally *t)
{
	size_t npages = pt->len >> pshift;

	rng = 0x5eed0000u + (unsigned int)k;
	if (k == K_THP) {
		tally_add(t, npages, npages);
		if (pass == POPULATE)
			touch(pt->base, npages, true, 1);
		return;
	}
	if (k == K_FILE) /* worst case: read-ahead caches all of it */
		t->ram += npages;
	for (size_t i = 0; i < npages;) {
		size_t n = (size_t)1 << (rnd() % 9);
		unsigned int kind = (unsigned int)(rnd() % 100);
		bool again = rnd() % 3 == 0;
		char *p = pt->base + (i << pshift);

		n += (size_t)(rnd() % n);
		if (n > npages - i)
			n = npages - i;
		i += n;
		part_run(k, pass, p, n, kind, again, t);
	}
}

static void map_part(enum part_kind k, struct part *pt)
{
	int prot = PROT_READ | PROT_WRITE;
	int flags = MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS;
	const char *tmp;
	char path[4096];
	void *p;

	pt->fd = -1;
	switch (k) {
	case K_SHARED:
		flags = MAP_FIXED | MAP_SHARED | MAP_ANONYMOUS;
		break;
	case K_MEMFD:
		pt->fd = memfd_create(PROG, MFD_CLOEXEC);
		if (pt->fd < 0)
			fail("memfd_create", errno);
		flags = MAP_FIXED | MAP_SHARED;
		break;
	case K_FILE:
		tmp = getenv("TMPDIR");
		snprintf(path, sizeof(path), "%s/" PROG ".XXXXXX",
			 tmp && *tmp ? tmp : "/var/tmp");
		pt->fd = mkostemp(path, O_CLOEXEC);
		if (pt->fd < 0)
			fail(path, errno);
		unlink(path);
		flags = MAP_FIXED | MAP_PRIVATE;
		break;
	default:
		break;
	}
	if (pt->fd >= 0 && ftruncate(pt->fd, (off_t)pt->len))
		fail("ftruncate", errno);
	p = mmap(pt->base, pt->len, prot, flags, pt->fd, 0);
	if (p == MAP_FAILED)
		fail("mmap of a part of the region", errno);
	if (k == K_THP) {
		if (madvise(p, pt->len, MADV_HUGEPAGE))
			fail("madvise(MADV_HUGEPAGE)", errno);
	} else if ((k == K_ANON || k == K_FORKED) &&
		   madvise(p, pt->len, MADV_NOHUGEPAGE)) {
		fail("madvise(MADV_NOHUGEPAGE)", errno);
	}
	/* only the forked part goes to the child */
	if (k != K_FORKED && madvise(p, pt->len, MADV_DONTFORK))
		fail("madvise(MADV_DONTFORK)", errno);
}

static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb = 0;
	char line[256];

	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb ? (uint64_t)kb << 10 : UINT64_MAX;
}

static void fork_holder(void)
{
	child = fork();
	if (child < 0)
		fail("fork", errno);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	atexit(kill_child);
}

/* ---- the baseline ------------------------------------------------------ */

static void pm_read(int fd, const struct range *ranges, size_t nranges,
		    uint64_t *buf, size_t buf_bytes, struct pm_counts *c)
{
	size_t cap = buf_bytes / sizeof(uint64_t);
	uint64_t present = 0, swapped = 0, file = 0, excl = 0, pages = 0;

	for (size_t r = 0; r < nranges; r++) {
		for (uint64_t a = ranges[r].s; a < ranges[r].e;) {
			size_t n = (size_t)((ranges[r].e - a) >> pshift);
			size_t want, got = 0;
			off_t off = (off_t)((a >> pshift) * sizeof(uint64_t));

			if (n > cap)
				n = cap;
			want = n * sizeof(uint64_t);
			while (got < want) {
				ssize_t k = pread(fd, (char *)buf + got,
						  want - got, off + (off_t)got);

				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0)
					fail("pread of /proc/self/pagemap",
					     k ? errno : EIO);
				got += (size_t)k;
			}
			for (size_t i = 0; i < n; i++) {
				uint64_t e = buf[i];

				present += e >> 63;
				swapped += (e >> 62) & 1;
				file += (e >> 61) & 1;
				excl += (e >> 56) & 1;
			}
			pages += n;
			a += (uint64_t)n << pshift;
		}
	}
	*c = (struct pm_counts){ pages, present, swapped, file, excl };
}

/* ---- the library ------------------------------------------------------- */

static void lib_count(struct pmtrack_pstate *ps, uint64_t s, uint64_t e,
		      unsigned int want, struct pmtrack_page_counts *c)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->sz = sizeof(*c);
	ret = pmtrack_pstate_count(ps, s, e, want, c);
	if (ret)
		fail("pmtrack_pstate_count", -ret);
}

/* most zapped memfd pages the library found in swap: with swap on,
 * reclaim (kswapd, DAMON) may page out these unmapped, cold pages */
static uint64_t max_moved;

/*
 * The library's counts against those of the latest pagemap read.  Present
 * pages must be pagemap's plus the zapped memfd pages, less those of the
 * latter that went to swap meanwhile (then swapped pages are pagemap's plus
 * those), or false is returned.  File and exclusive pages are compared too,
 * with a warning.
 */
static bool check(enum variant v, const struct pmtrack_page_counts *c,
		  const struct pm_counts *b, uint64_t zapped, int rep)
{
	unsigned int want = variants[v].want;
	uint64_t moved = c->state[1] - b->swapped;
	bool ok = true;

	if (c->state[1] < b->swapped || moved > zapped ||
	    c->state[0] != b->present + zapped - moved) {
		fprintf(stderr,
			PROG ": %s, rep %d: %llu present and %llu swapped "
			     "pages; the pagemap read %llu present, %llu "
			     "swapped, and %llu zapped memfd pages\n",
			variants[v].label, rep, (unsigned long long)c->state[0],
			(unsigned long long)c->state[1],
			(unsigned long long)b->present,
			(unsigned long long)b->swapped,
			(unsigned long long)zapped);
		ok = false;
	} else if (moved > max_moved) {
		max_moved = moved;
	}
	if (c->pages != b->pages)
		fprintf(stderr,
			PROG ": warning: %s, rep %d: %llu pages looked at, "
			     "pagemap %llu\n",
			variants[v].label, rep, (unsigned long long)c->pages,
			(unsigned long long)b->pages);
	/* unsure pages here are holes of shared memory whose object the
	 * library cannot reach (unprivileged): file pages too */
	if (want & PMTRACK_PAGE_FILE &&
	    c->state[2] != b->file + zapped + c->state[7])
		fprintf(stderr,
			PROG ": warning: %s, rep %d: %llu file, pagemap %llu "
			     "+ %llu zapped + %llu unsure\n",
			variants[v].label, rep, (unsigned long long)c->state[2],
			(unsigned long long)b->file, (unsigned long long)zapped,
			(unsigned long long)c->state[7]);
	if (want & PMTRACK_PAGE_EXCLUSIVE && c->state[4] != b->excl)
		fprintf(stderr,
			PROG ": warning: %s, rep %d: %llu exclusive, pagemap "
			     "%llu\n",
			variants[v].label, rep, (unsigned long long)c->state[4],
			(unsigned long long)b->excl);
	return ok;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--size-mib N] [--reps N] [--json]\n"
		   "  --size-mib N  size of the region, >= 16 (4096)\n"
		   "  --reps N      repetitions per measurement (7)\n"
		   "  --json        results as one JSON object on stdout\n");
}

static const char *size_str(size_t b, char *s, size_t n)
{
	if (b >= MIB)
		snprintf(s, n, "%zu MiB", b / MIB);
	else
		snprintf(s, n, "%zu KiB", b >> 10);
	return s;
}

/* everything one run sets up and measures */
struct run {
	/* the command line */
	size_t size_mib;
	int reps;
	bool json;
	FILE *out; /* stderr with --json */
	/* the region */
	struct part parts[K_NR];
	struct tally plan;
	uint64_t start, end;
	size_t len;
	bool locked;
	int mlock_err;
	double setup_s;
	/* the library's handles, and the same ranges for the baseline */
	struct pmtrack_pstate *ps[2];
	struct range *ranges;
	size_t nranges, nin; /* ranges, and the mappings in them */
	int pm_fd;
	uint64_t *buf;
	/* results */
	double *t_pm[NBUF], *t_lib[V_NR]; /* ms per rep */
	double m_pm[NBUF], m_lib[V_NR], best;
	unsigned int best_i;
	struct pmtrack_page_counts lc[V_NR];
	struct pm_counts pc0; /* the first pagemap read */
	bool changed;	      /* a later one counted otherwise */
	struct utsname uts;
};

static void parse_args(int argc, char **argv, struct run *r)
{
	static const struct option longopts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			r->size_mib = pmt_arg_u64(PROG, "--size-mib", optarg,
						  0, 16, 1ul << 20);
			break;
		case 'r':
			r->reps = (int)bench_parse_num(PROG, optarg, "--reps");
			break;
		case 'j':
			r->json = true;
			break;
		default:
			pmt_usage_exit(opt, usage);
		}
	}
	pmt_no_operands(argc, usage);
}

/* the parts' sizes, in 2 MiB chunks (anon takes what the others leave),
 * and what populating them will take; exits if memory is short */
static void plan_layout(struct run *r)
{
	size_t chunks = r->size_mib / 2;
	uint64_t need, avail;

	r->len = chunks * HPAGE;
	for (int i = 0; i < K_NR; i++) {
		enum part_kind k = order[i];
		size_t c = chunks * kinds[k].permille / 1000;

		r->parts[k].len = (c ? c : 1) * HPAGE;
	}
	r->parts[K_ANON].len = r->len;
	for (int k = 1; k < K_NR; k++)
		r->parts[K_ANON].len -= r->parts[k].len;
	for (int k = 0; k < K_NR; k++)
		part_runs(k, &r->parts[k], PLAN, &r->plan);
	need = r->plan.ram << pshift;
	avail = mem_available();
	if (need + 256 * MIB > avail) {
		fprintf(stderr,
			PROG ": not enough memory: a %zu MiB region needs "
			     "about %llu MiB of RAM (plus 256 MiB of "
			     "headroom), MemAvailable is %llu MiB; try a "
			     "smaller --size-mib\n",
			r->size_mib, (unsigned long long)(need / MIB),
			(unsigned long long)(avail / MIB));
		exit(1);
	}
}

/* reserve the region 2 MiB-aligned, map the parts over it and populate
 * them, fork the child that shares the forked part, lock the region */
static void setup_region(struct run *r)
{
	uint64_t t0 = bench_now_ns();
	size_t off = 0;
	char *res;

	res = mmap(NULL, r->len + HPAGE, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		fail("mmap of the region", errno);
	r->start = ((uintptr_t)res + HPAGE - 1) & ~(uint64_t)(HPAGE - 1);
	r->end = r->start + r->len;
	if (r->start > (uintptr_t)res)
		munmap(res, r->start - (uintptr_t)res);
	if ((uintptr_t)res + r->len + HPAGE > r->end)
		munmap((void *)(uintptr_t)r->end,
		       (uintptr_t)res + r->len + HPAGE - r->end);
	for (int i = 0; i < K_NR; i++) {
		enum part_kind k = order[i];

		r->parts[k].base = (char *)(uintptr_t)(r->start + off);
		off += r->parts[k].len;
		map_part(k, &r->parts[k]);
		part_runs(k, &r->parts[k], POPULATE, &(struct tally){ 0 });
	}
	fork_holder();
	part_runs(K_FORKED, &r->parts[K_FORKED], REWRITE,
		  &(struct tally){ 0 });
	/* keep reclaim off the mapped pages, so that the counts hold still
	 * (after the zapping: MADV_DONTNEED refuses locked mappings) */
	r->locked = !mlock2((void *)(uintptr_t)r->start, r->len,
			    MLOCK_ONFAULT);
	if (!r->locked)
		r->mlock_err = errno;
	r->setup_s = (double)(bench_now_ns() - t0) / 1e9;
}

/* the library's handles (plain and pagemap-read mode), and the region's
 * mappings as merged ranges for the baseline */
static void open_handles(struct run *r)
{
	const struct pmtrack_mapping *maps;
	size_t nmaps;
	int ret;

	for (int i = 0; i < 2; i++) {
		PMTRACK_OPTS(pmtrack_pstate_opts, o,
			     .flags = i ? PMTRACK_PSTATE_PAGEMAP_READ : 0);

		ret = pmtrack_pstate_new(&o, &r->ps[i]);
		if (ret)
			fail("pmtrack_pstate_new", -ret);
		ret = pmtrack_pstate_maps(r->ps[i], &maps, &nmaps);
		if (ret)
			fail("pmtrack_pstate_maps", -ret);
	}
	if (!pmtrack_pstate_uses_scan(r->ps[0])) {
		printf("SKIP: the library does not use PAGEMAP_SCAN\n");
		exit(EXIT_SKIP);
	}
	r->ranges = calloc(nmaps, sizeof(*r->ranges));
	if (!r->ranges)
		fail("calloc", ENOMEM);
	for (size_t i = 0; i < nmaps; i++) {
		uint64_t s = maps[i].start > r->start ? maps[i].start : r->start;
		uint64_t e = maps[i].end < r->end ? maps[i].end : r->end;

		if (s >= e || maps[i].flags & PMTRACK_MAP_SPECIAL)
			continue;
		r->nin++;
		if (r->nranges && r->ranges[r->nranges - 1].e == s)
			r->ranges[r->nranges - 1].e = e;
		else
			r->ranges[r->nranges++] = (struct range){ s, e };
	}
}

/* /proc/self/pagemap, the read buffer and the per-rep times */
static void alloc_baseline(struct run *r)
{
	r->pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (r->pm_fd < 0)
		fail("/proc/self/pagemap", errno);
	r->buf = malloc(buf_sizes[NBUF - 1]);
	if (!r->buf)
		fail("malloc", ENOMEM);
	memset(r->buf, 0, buf_sizes[NBUF - 1]);
	for (size_t b = 0; b < NBUF; b++) {
		r->t_pm[b] = calloc((size_t)r->reps, sizeof(double));
		if (!r->t_pm[b])
			fail("calloc", ENOMEM);
	}
	for (int v = 0; v < V_NR; v++) {
		r->t_lib[v] = calloc((size_t)r->reps, sizeof(double));
		if (!r->t_lib[v])
			fail("calloc", ENOMEM);
	}
}

static void print_setup(struct run *r)
{
	FILE *out = r->out;

	if (uname(&r->uts))
		fail("uname", errno);
	fprintf(out,
		PROG ": kernel %s, libpmtrack %s, region %zu MiB (%zu pages "
		     "of %zu B) in %zu mappings, %d reps, medians\n",
		r->uts.release, pmtrack_version(), r->len / MIB,
		r->len >> pshift, page_size, r->nin, r->reps);
	for (int i = 0; i < K_NR; i++)
		fprintf(out, "  %-7s %6zu MiB  %s\n", kinds[order[i]].name,
			r->parts[order[i]].len / MIB, kinds[order[i]].what);
	fprintf(out,
		"setup: %.2f s, %llu pages touched (%.0f%% of the region), "
		"%llu zapped memfd pages\n",
		r->setup_s, (unsigned long long)r->plan.touched,
		100.0 * (double)r->plan.touched / (double)(r->len >> pshift),
		(unsigned long long)r->plan.zapped);
	if (!r->locked)
		fprintf(out,
			"note: mlock2(MLOCK_ONFAULT) of the region: %s "
			"(reclaim "
			"may change the counts during the run)\n",
			strerror(r->mlock_err));
}

static void lib_variant(struct run *r, enum variant v)
{
	lib_count(r->ps[variants[v].read_mode], r->start, r->end,
		  variants[v].want, &r->lc[v]);
}

/*
 * The untimed warm-up (it faults in the buffers and checks the counts),
 * then each rep runs the 9 measurements interleaved (read, lib, read,
 * ...), starting one further along each time.  false if a count did not
 * check.
 */
static bool measure(struct run *r)
{
	struct pm_counts pc;
	bool ok = true;
	uint64_t t0;

	pm_read(r->pm_fd, r->ranges, r->nranges, r->buf, buf_sizes[NBUF - 1],
		&r->pc0);
	pc = r->pc0;
	for (int v = 0; v < V_NR; v++) {
		lib_variant(r, v);
		ok &= check(v, &r->lc[v], &r->pc0, r->plan.zapped, -1);
	}
	for (int rep = 0; rep < r->reps && ok; rep++) {
		for (int i = 0; i < NSLOT; i++) {
			int slot = (i + rep) % NSLOT, v = slot / 2;
			size_t b = (size_t)slot / 2;

			t0 = bench_now_ns();
			if (slot % 2 == 0) {
				pm_read(r->pm_fd, r->ranges, r->nranges,
					r->buf, buf_sizes[b], &pc);
				r->t_pm[b][rep] =
					(double)(bench_now_ns() - t0) / 1e6;
				r->changed |=
					memcmp(&pc, &r->pc0, sizeof(pc)) != 0;
				continue;
			}
			lib_variant(r, v);
			r->t_lib[v][rep] = (double)(bench_now_ns() - t0) / 1e6;
			ok &= check(v, &r->lc[v], &pc, r->plan.zapped, rep);
		}
	}
	return ok;
}

static void print_counts(const struct run *r)
{
	const struct pmtrack_page_counts *b = &r->lc[VB];

	fprintf(r->out,
		"pages: pagemap read  present %llu  swapped %llu  file %llu  "
		"exclusive %llu\n",
		(unsigned long long)r->pc0.present,
		(unsigned long long)r->pc0.swapped,
		(unsigned long long)r->pc0.file,
		(unsigned long long)r->pc0.excl);
	fprintf(r->out,
		"pages: lib (b)       present %llu  swapped %llu  file %llu  "
		"exclusive %llu  zero %llu  huge %llu  unsure %llu\n",
		(unsigned long long)b->state[0], (unsigned long long)b->state[1],
		(unsigned long long)b->state[2], (unsigned long long)b->state[4],
		(unsigned long long)b->state[3], (unsigned long long)b->state[5],
		(unsigned long long)b->state[7]);
	if (r->changed)
		fprintf(r->out, "note: the pagemap counts changed during the "
				"run (pages were reclaimed or moved)\n");
	if (max_moved)
		fprintf(r->out,
			"note: up to %llu zapped memfd pages were in swap "
			"(swap is on and reclaim found them cold)\n",
			(unsigned long long)max_moved);
}

/* the medians, and the best pagemap read */
static void medians(struct run *r)
{
	for (size_t b = 0; b < NBUF; b++) {
		r->m_pm[b] = bench_median(r->t_pm[b], r->reps);
		if (r->m_pm[b] < r->m_pm[r->best_i])
			r->best_i = (unsigned int)b;
	}
	r->best = r->m_pm[r->best_i];
	for (int v = 0; v < V_NR; v++)
		r->m_lib[v] = bench_median(r->t_lib[v], r->reps);
}

static void print_json(const struct run *r)
{
	printf("{\"kernel\": \"%s\", \"version\": \"%s\", "
	       "\"size_mib\": %zu, \"pages\": %zu, \"mappings\": %zu, "
	       "\"reps\": %d, \"setup_s\": %.3f, \"target\": %.2f,\n"
	       " \"pagemap_read\": [",
	       r->uts.release, pmtrack_version(), r->len / MIB,
	       r->len >> pshift, r->nin, r->reps, r->setup_s, TARGET);
	for (size_t b = 0; b < NBUF; b++)
		printf("%s{\"buf_bytes\": %zu, \"median_ms\": %.3f}",
		       b ? ", " : "", buf_sizes[b], r->m_pm[b]);
	printf("],\n \"best_buf_bytes\": %zu, \"best_ms\": %.3f,\n"
	       " \"lib\": [",
	       buf_sizes[r->best_i], r->best);
	for (int v = 0; v < V_NR; v++)
		printf("%s\n  {\"variant\": \"%c\", "
		       "\"want\": \"0x%x\", \"pagemap_read_mode\": %s, "
		       "\"median_ms\": %.3f, \"ratio\": %.3f, "
		       "\"pass\": %s}",
		       v ? "," : "", 'a' + v, variants[v].want,
		       variants[v].read_mode ? "true" : "false", r->m_lib[v],
		       r->m_lib[v] / r->best,
		       r->m_lib[v] / r->best <= TARGET ? "true" : "false");
	printf("]}\n");
}

static void print_table(const struct run *r)
{
	char sb[32];

	printf("\n| variant | median ms | ratio to best pagemap read |\n"
	       "|---|--:|--:|\n");
	for (size_t b = 0; b < NBUF; b++)
		printf("| pagemap read, %s buffer%s | %.2f | %.2f |\n",
		       size_str(buf_sizes[b], sb, sizeof(sb)),
		       b == r->best_i ? " (best)" : "", r->m_pm[b],
		       r->m_pm[b] / r->best);
	for (int v = 0; v < V_NR; v++)
		printf("| %s | %.2f | %.3f |\n", variants[v].label,
		       r->m_lib[v], r->m_lib[v] / r->best);
	printf("\ntarget <= %.1f:", TARGET);
	for (int v = 0; v < V_NR; v++)
		printf(" (%c) %s", 'a' + v,
		       r->m_lib[v] / r->best <= TARGET ? "PASS" : "MISS");
	printf("\n");
}

static void teardown(struct run *r)
{
	for (int i = 0; i < 2; i++)
		pmtrack_pstate_free(r->ps[i]);
	close(r->pm_fd);
	free(r->buf);
	free(r->ranges);
	for (size_t b = 0; b < NBUF; b++)
		free(r->t_pm[b]);
	for (int v = 0; v < V_NR; v++)
		free(r->t_lib[v]);
	kill_child();
	for (int k = 0; k < K_NR; k++)
		if (r->parts[k].fd >= 0)
			close(r->parts[k].fd);
	munmap((void *)(uintptr_t)r->start, r->len);
}

int main(int argc, char **argv)
{
	struct run r = { .size_mib = 4096, .reps = 7 };
	int ret;

	parse_args(argc, argv, &r);
	r.out = r.json ? stderr : stdout;

	ret = pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL);
	if (ret != 1) {
		printf("SKIP: %s unavailable (%s)\n",
		       pmtrack_feature_name(PMTRACK_FEAT_PAGEMAP_SCAN),
		       ret < 0 ? strerror(-ret) : "probe says no");
		return EXIT_SKIP;
	}

	page_size = (size_t)sysconf(_SC_PAGESIZE);
	pshift = (unsigned int)__builtin_ctzl(page_size);
	plan_layout(&r);
	setup_region(&r);
	open_handles(&r);
	alloc_baseline(&r);
	print_setup(&r);
	if (!measure(&r)) {
		print_counts(&r);
		fprintf(stderr, PROG ": count mismatch, no results\n");
		return 1;
	}
	print_counts(&r);
	medians(&r);
	if (r.json)
		print_json(&r);
	else
		print_table(&r);
	teardown(&r);
	return 0;
}

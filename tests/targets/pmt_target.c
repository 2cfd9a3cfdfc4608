// SPDX-License-Identifier: MIT
/*
 * pmt-target: a process that knows nothing of libpmtrack and logs every
 * store it makes to its memory, for tests that track or dump it from
 * outside (pmt-logcheck checks memory, or a restored dump, against the
 * log).  Plain libc and pthreads.
 *
 *   pmt-target --mode MODE --log FILE [--size MIB] [--threads N]
 *              [--rate STORES_PER_SEC_PER_THREAD] [--seed S]
 *              [--ready FILE] [--gen G]
 *
 * It maps (a) SIZE MiB private anonymous (default 8), (b) a memfd of
 * SIZE/2 MiB MAP_SHARED, (c) SIZE/4 MiB MAP_SHARED|MAP_ANONYMOUS; writes
 * one random word of every page once (main thread); starts N writer
 * threads (default 2) that each store, --rate times a second (0: as fast
 * as they can; default 0), a unique value to a random aligned word of a
 * random page of (a), (b) or (c) (xorshift from --seed, default 1, plus
 * the thread's index); then writes its pid to the --ready FILE, if
 * given.  Every store is logged after it is made: pmt_log.h has the
 * format.  The log is FILE.<pid> (FILE.<pid>.g<G> in the execer mode).
 * SIGTERM or SIGINT ends it with status 0; it prints nothing but errors.
 * Exit status 77 with a message: the kernel lacks what the mode needs.
 *
 * Modes (the main thread does the extra work, and is thread 0 of the log):
 *   writer    only the above, until killed;
 *   forker    forks in a loop (every ms with --rate, else as fast as it
 *             can) a child that stores to 16 random pages of (b)/(c) and
 *             16 of (a) (copy-on-write), logging into FILE.<childpid>, and
 *             exits; the parent reaps it and counts it in the log header;
 *   shmkids   the same, but each child stores to 64 pages of (b)/(c) only,
 *             spread over about 1.5 ms;
 *   execer    every ~300 ms re-executes itself (/proc/self/exe) with
 *             --gen G+1 until G is 3, then stays a writer; each generation
 *             maps fresh regions and logs into FILE.<pid>.g<G>; with
 *             --ready, generation G > 0 writes READY.g<G>;
 *   mapper    the main thread maps private regions of 1..64 pages, unmaps
 *             them, grows them in place or moves them (mremap), and
 *             stores to them, logging each change in the region table;
 *   closefds  closes every fd >= 3 (close_range) every ~10 ms;
 *   pageout   the writers skip the odd 64-page chunks of (b) and (c), and
 *             every 50 ms the main thread MADV_PAGEOUTs those chunks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pmt_log.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define LOG_SLICES_BYTES (64ull << 20) /* all slices of a process */
#define LOG_REGIONS 65536 /* region-table entries of a process */
#define CHILD_REGIONS 16 /* a child's log: these and one page of records */
#define CHUNK_PAGES 64 /* pageout */
#define LAST_GEN 3
#define DYN_MAX 16 /* mapper: live regions at most */
#define DYN_TAIL 64 /* mapper: reserved pages after a region */

enum mode { M_WRITER, M_FORKER, M_SHMKIDS, M_EXECER, M_MAPPER, M_CLOSEFDS,
	    M_PAGEOUT };
static const char *const mode_names[] = { "writer", "forker", "shmkids",
	"execer", "mapper", "closefds", "pageout" };

static struct {
	enum mode mode;
	const char *log, *ready;
	unsigned long size_mib, threads, rate, gen;
	uint64_t seed;
} opt = { .size_mib = 8, .threads = 2, .seed = 1 };

static int g_argc;
static char **g_argv;
static size_t ps;
static pid_t self;
static sigset_t term_set;

/* the regions and the pages each kind of writer picks from */
struct region {
	char *start;
	size_t len;
	enum pmt_kind kind;
};
static struct region reg[3];
struct pset {
	uintptr_t *page;
	size_t n;
};
static struct pset set_writer, set_shared, set_private;

/* the log of this process */
static struct pmt_log_hdr *hdr;
struct slice {
	struct pmt_log_slice *h;
	struct pmt_log_rec *rec;
	uint64_t cap, tag, base;
};
static struct slice slices[PMT_MAX_THREADS];
static unsigned started;

static void die(const char *what)
{
	fprintf(stderr, "pmt-target: %s: %s\n", what, strerror(errno));
	_exit(1);
}

static void unsupported(const char *what)
{
	fprintf(stderr, "pmt-target: unsupported: %s: %s\n", what,
		strerror(errno));
	_exit(77);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x ? x : 1;
}

/* xorshift64* */
static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t *pick(const struct pset *set, uint64_t *r)
{
	uintptr_t page = set->page[rnd(r) % set->n];

	return (uint64_t *)(page + (rnd(r) % (ps / 8)) * 8);
}

/*
 * Store the slice's next value to *addr and log it; false (and nothing
 * stored) when the slice is full.  The seq_cst store is a locked
 * instruction on x86: visible everywhere before t1 is read.
 */
static bool store_logged(struct slice *s, uint64_t *addr)
{
	uint64_t n = __atomic_load_n(&s->h->count, __ATOMIC_RELAXED);
	struct pmt_log_rec *r = &s->rec[n];
	uint64_t v, t0, t1;

	if (n >= s->cap) {
		__atomic_store_n(&s->h->full, 1, __ATOMIC_RELEASE);
		return false;
	}
	v = s->tag | (s->base + n + 1);
	t0 = now_ns();
	__atomic_store_n(addr, v, __ATOMIC_SEQ_CST);
	t1 = now_ns();
	r->addr = (uintptr_t)addr;
	r->value = v;
	r->t0 = t0;
	r->t1 = t1;
	__atomic_store_n(&s->h->count, n + 1, __ATOMIC_RELEASE);
	return true;
}

/* "%s.%lu" and an optional ".g%lu", without stdio (forked children) */
static void put_ulong(char **p, unsigned long v)
{
	char tmp[24];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*(*p)++ = tmp[--n];
}

static void log_path(char *buf, size_t size, const char *base, pid_t pid,
		     long gen)
{
	char *p = buf;
	size_t n = strlen(base);

	if (n + 40 > size) {
		errno = ENAMETOOLONG;
		die(base);
	}
	memcpy(p, base, n);
	p += n;
	*p++ = '.';
	put_ulong(&p, (unsigned long)pid);
	if (gen >= 0) {
		memcpy(p, ".g", 2);
		p += 2;
		put_ulong(&p, (unsigned long)gen);
	}
	*p = 0;
}

/* create and map the log; it gives nslices slices of slice_size bytes */
static void log_create(const char *path, unsigned nslices, uint64_t slice_size,
		       uint64_t regions_cap)
{
	uint64_t regions_off = ps;
	uint64_t slice_off = regions_off +
		((regions_cap * sizeof(struct pmt_log_region) + ps - 1) &
		 ~(uint64_t)(ps - 1));
	uint64_t size = slice_off + nslices * slice_size;
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	char *base;

	if (fd < 0)
		die(path);
	if (ftruncate(fd, (off_t)size))
		die("ftruncate log");
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		die("mmap log");
	close(fd);
	hdr = (struct pmt_log_hdr *)base;
	hdr->version = PMT_LOG_VERSION;
	hdr->page_size = (uint32_t)ps;
	hdr->pid = (uint64_t)self;
	hdr->ppid = (uint64_t)getppid();
	hdr->gen = (uint32_t)opt.gen;
	hdr->nslices = nslices;
	hdr->slice_off = slice_off;
	hdr->slice_size = slice_size;
	hdr->regions_off = regions_off;
	hdr->regions_cap = regions_cap;
	strncpy(hdr->mode, mode_names[opt.mode], sizeof(hdr->mode) - 1);
	for (unsigned k = 0; k < nslices; k++) {
		char *sb = base + slice_off + k * slice_size;

		slices[k].h = (struct pmt_log_slice *)sb;
		slices[k].rec = (struct pmt_log_rec *)(sb +
			sizeof(struct pmt_log_slice));
		slices[k].cap = (slice_size - sizeof(struct pmt_log_slice)) /
			sizeof(struct pmt_log_rec);
		slices[k].tag = PMT_TAG(self, k);
		slices[k].base = PMT_COUNTER_BASE(opt.gen);
	}
	__atomic_store_n(&hdr->magic, PMT_LOG_MAGIC, __ATOMIC_RELEASE);
}

/* append a region-table entry, placed after thread 0's records so far */
static struct pmt_log_region *log_region(uint32_t op, uint32_t kind,
					 uint32_t state, const void *start,
					 size_t len, const void *old_start,
					 size_t old_len)
{
	uint64_t n = hdr->nregions;
	struct pmt_log_region *e;

	if (n >= hdr->regions_cap)
		return NULL;
	e = (struct pmt_log_region *)((char *)hdr + hdr->regions_off) + n;
	e->op = op;
	e->kind = kind;
	e->slice = 0;
	e->at = slices[0].h->count;
	e->start = (uintptr_t)start;
	e->len = len;
	e->old_start = (uintptr_t)old_start;
	e->old_len = old_len;
	__atomic_store_n(&e->state, state, __ATOMIC_RELEASE);
	__atomic_store_n(&hdr->nregions, n + 1, __ATOMIC_RELEASE);
	return e;
}

static void set_state(struct pmt_log_region *e, uint32_t state)
{
	__atomic_store_n(&e->state, state, __ATOMIC_RELEASE);
}

/* SIGTERM/SIGINT are blocked everywhere; the main thread takes them here */
static void wait_term(const struct timespec *timeout)
{
	if (sigtimedwait(&term_set, NULL, timeout) > 0)
		_exit(0);
}

static void sleep_ns(long ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void pset_add(struct pset *set, const struct region *r, bool odd_chunks)
{
	for (size_t off = 0; off < r->len; off += ps)
		if (odd_chunks || !(off / ps / CHUNK_PAGES % 2))
			set->page[set->n++] = (uintptr_t)r->start + off;
}

static void map_regions(void)
{
	size_t a = (opt.size_mib << 20) & ~(ps - 1);
	size_t sizes[3] = { a, (a / 2) & ~(ps - 1), (a / 4) & ~(ps - 1) };
	size_t total = (sizes[0] + sizes[1] + sizes[2]) / ps;
	int fd = memfd_create("pmt-target", MFD_CLOEXEC);

	if (fd < 0)
		die("memfd_create");
	if (ftruncate(fd, (off_t)sizes[1]))
		die("ftruncate memfd");
	reg[0] = (struct region){ NULL, sizes[0], PMT_KIND_ANON };
	reg[1] = (struct region){ NULL, sizes[1], PMT_KIND_MEMFD };
	reg[2] = (struct region){ NULL, sizes[2], PMT_KIND_SHANON };
	reg[0].start = mmap(NULL, sizes[0], PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg[1].start = mmap(NULL, sizes[1], PROT_READ | PROT_WRITE, MAP_SHARED,
			    fd, 0);
	reg[2].start = mmap(NULL, sizes[2], PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 3; i++)
		if (reg[i].start == MAP_FAILED)
			die("mmap");
	/* the memfd stays open (closefds closes it) */
	set_writer.page = calloc(total, sizeof(uintptr_t));
	set_shared.page = calloc(total, sizeof(uintptr_t));
	set_private.page = calloc(total, sizeof(uintptr_t));
	if (!set_writer.page || !set_shared.page || !set_private.page)
		die("calloc");
	for (int i = 0; i < 3; i++)
		pset_add(&set_writer, &reg[i],
			 i == 0 || opt.mode != M_PAGEOUT);
	pset_add(&set_shared, &reg[1], true);
	pset_add(&set_shared, &reg[2], true);
	pset_add(&set_private, &reg[0], true);
}

/* pace a thread to opt.rate stores a second */
struct pacer {
	uint64_t start, n;
};

static void pace(struct pacer *p)
{
	uint64_t due;
	struct timespec ts;

	if (!opt.rate)
		return;
	p->n++;
	due = p->start + p->n * 1000000000ull / opt.rate;
	if (now_ns() >= due)
		return;
	ts.tv_sec = (time_t)(due / 1000000000u);
	ts.tv_nsec = (long)(due % 1000000000u);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static void *writer(void *arg)
{
	unsigned k = (unsigned)(uintptr_t)arg;
	uint64_t r = splitmix(opt.seed + k);
	struct pacer p = { now_ns(), 0 };

	__atomic_fetch_add(&started, 1, __ATOMIC_RELEASE);
	for (;;) {
		if (!store_logged(&slices[k], pick(&set_writer, &r))) {
			fprintf(stderr,
				"pmt-target: pid %d thread %u: log slice full after %llu stores; this thread stops storing\n",
				(int)self, k,
				(unsigned long long)slices[k].cap);
			return NULL;
		}
		pace(&p);
	}
}

static void write_ready(void)
{
	char path[4096], tmp[4200];
	FILE *f;

	__atomic_store_n(&hdr->ready, 1, __ATOMIC_RELEASE);
	if (!opt.ready)
		return;
	if (opt.gen)
		snprintf(path, sizeof(path), "%s.g%lu", opt.ready, opt.gen);
	else
		snprintf(path, sizeof(path), "%s", opt.ready);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", (int)self) < 0 || fclose(f))
		die(tmp);
	if (rename(tmp, path))
		die(path);
}

/* ---- forker, shmkids: the child ------------------------------------------ */

static void child(unsigned long nth)
{
	uint64_t r = splitmix(opt.seed ^ (nth << 8) ^ 0x5eed);
	struct pmt_log_region *parent_regions =
		(struct pmt_log_region *)((char *)hdr + hdr->regions_off);
	sigset_t none;
	char path[4096];

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	self = getpid();
	log_path(path, sizeof(path), opt.log, self, -1);
	log_create(path, 1, ps, CHILD_REGIONS);
	/* the static regions, as the parent logged them */
	for (int i = 0; i < 3; i++)
		log_region(PMT_OP_MAP, parent_regions[i].kind, PMT_STATE_DONE,
			   (void *)(uintptr_t)parent_regions[i].start,
			   parent_regions[i].len, NULL, 0);
	if (opt.mode == M_FORKER) {
		for (int i = 0; i < 16; i++)
			store_logged(&slices[0], pick(&set_shared, &r));
		for (int i = 0; i < 16; i++)
			store_logged(&slices[0], pick(&set_private, &r));
	} else {
		for (int b = 0; b < 4; b++) {
			if (b)
				sleep_ns(400000);
			for (int i = 0; i < 16; i++)
				store_logged(&slices[0],
					     pick(&set_shared, &r));
		}
	}
	_exit(0);
}

static void fork_loop(void)
{
	static const struct timespec zero = { 0, 0 }, ms = { 0, 1000000 };
	bool told = false;

	for (unsigned long nth = 0;; nth++) {
		pid_t pid;
		int st;

		wait_term(opt.rate ? &ms : &zero);
		pid = fork();
		if (pid == 0)
			child(nth);
		if (pid < 0) {
			if (!told)
				fprintf(stderr, "pmt-target: fork: %s\n",
					strerror(errno));
			told = true;
			sleep_ns(1000000);
			continue;
		}
		__atomic_store_n(&hdr->forks, hdr->forks + 1, __ATOMIC_RELEASE);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!told && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			fprintf(stderr, "pmt-target: child %d: status 0x%x\n",
				(int)pid, st);
			told = true;
		}
	}
}

/* ---- execer -------------------------------------------------------------- */

static void exec_next(void)
{
	char **argv = calloc((size_t)g_argc + 3, sizeof(char *));
	char gen[24];
	int n = 0;

	if (!argv)
		die("calloc");
	for (int i = 0; i < g_argc; i++) {
		if (!strcmp(g_argv[i], "--gen")) {
			i++;
			continue;
		}
		if (!strncmp(g_argv[i], "--gen=", 6))
			continue;
		argv[n++] = g_argv[i];
	}
	snprintf(gen, sizeof(gen), "%lu", opt.gen + 1);
	argv[n++] = "--gen";
	argv[n++] = gen;
	argv[n] = NULL;
	execv("/proc/self/exe", argv);
	die("execv /proc/self/exe");
}

/* ---- mapper -------------------------------------------------------------- */

struct dyn {
	char *start;
	size_t len;
	char *resv_end; /* PROT_NONE reserve from start + len to here */
};
static struct dyn dyns[DYN_MAX];
static unsigned ndyn;

static char *reserve(size_t len)
{
	char *p = mmap(NULL, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap reserve");
	return p;
}

static void dyn_map(uint64_t *r)
{
	size_t len = (1 + rnd(r) % 64) * ps;
	char *resv = reserve(len + DYN_TAIL * ps);
	char *p = mmap(resv, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	if (p == MAP_FAILED)
		die("mmap dyn");
	log_region(PMT_OP_MAP, PMT_KIND_DYN, PMT_STATE_DONE, p, len, NULL, 0);
	dyns[ndyn++] = (struct dyn){ p, len, p + len + DYN_TAIL * ps };
}

static void dyn_unmap(unsigned i)
{
	struct dyn *d = &dyns[i];
	struct pmt_log_region *e = log_region(PMT_OP_UNMAP, PMT_KIND_DYN,
					      PMT_STATE_PENDING, d->start,
					      d->len, NULL, 0);

	if (munmap(d->start, d->len))
		die("munmap dyn");
	set_state(e, PMT_STATE_DONE);
	if (d->resv_end > d->start + d->len &&
	    munmap(d->start + d->len,
		   (size_t)(d->resv_end - d->start) - d->len))
		die("munmap reserve");
	*d = dyns[--ndyn];
}

/* grow in place into the reserve after it; false when there is none */
static bool dyn_grow(unsigned i, uint64_t *r)
{
	struct dyn *d = &dyns[i];
	char *end = d->start + d->len;
	size_t room = (size_t)(d->resv_end - end) / ps, add;
	struct pmt_log_region *e;

	if (!room)
		return false;
	add = (1 + rnd(r) % room) * ps;
	if (munmap(end, add))
		die("munmap reserve");
	e = log_region(PMT_OP_REMAP, PMT_KIND_DYN, PMT_STATE_PENDING, d->start,
		       d->len + add, d->start, d->len);
	if (mremap(d->start, d->len, d->len + add, 0) == MAP_FAILED) {
		/* something took the hole: give up the rest of the reserve */
		set_state(e, PMT_STATE_FAILED);
		if (d->resv_end > end + add &&
		    munmap(end + add, (size_t)(d->resv_end - end) - add))
			die("munmap reserve");
		d->resv_end = end;
		return true;
	}
	set_state(e, PMT_STATE_DONE);
	d->len += add;
	return true;
}

/* move to a fixed new address, sometimes growing on the way */
static void dyn_move(unsigned i, uint64_t *r)
{
	struct dyn *d = &dyns[i];
	size_t len = d->len + (rnd(r) % 2 ? (1 + rnd(r) % 16) * ps : 0);
	char *to = reserve(len + DYN_TAIL * ps);
	struct pmt_log_region *e = log_region(PMT_OP_REMAP, PMT_KIND_DYN,
					      PMT_STATE_PENDING, to, len,
					      d->start, d->len);
	char *old_end = d->start + d->len;

	if (mremap(d->start, d->len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) ==
	    MAP_FAILED) {
		set_state(e, PMT_STATE_FAILED);
		if (munmap(to, len + DYN_TAIL * ps))
			die("munmap reserve");
		return;
	}
	set_state(e, PMT_STATE_DONE);
	if (d->resv_end > old_end &&
	    munmap(old_end, (size_t)(d->resv_end - old_end)))
		die("munmap reserve");
	*d = (struct dyn){ to, len, to + len + DYN_TAIL * ps };
}

/* one change, then 8 stores (4 of them to the region changed) */
static bool mapper_step(uint64_t *r)
{
	unsigned act = (unsigned)(rnd(r) % 8), i = 0;
	int hit = -1;

	/* a change takes at most one entry */
	if (hdr->nregions >= hdr->regions_cap)
		act = 7;
	if (ndyn < 4 || (act == 0 && ndyn < DYN_MAX)) {
		if (hdr->nregions < hdr->regions_cap) {
			dyn_map(r);
			hit = (int)ndyn - 1;
		}
	} else {
		i = (unsigned)(rnd(r) % ndyn);
		if (act == 1)
			dyn_unmap(i);
		else if (act == 2 && dyn_grow(i, r))
			hit = (int)i;
		else if (act == 3) {
			dyn_move(i, r);
			hit = (int)i;
		}
	}
	for (int k = 0; k < 8 && ndyn; k++) {
		struct dyn *d = &dyns[k < 4 && hit >= 0 ? (unsigned)hit
						      : rnd(r) % ndyn];
		uint64_t *a = (uint64_t *)(d->start + rnd(r) % (d->len / 8) * 8);

		if (!store_logged(&slices[0], a))
			return false;
	}
	return true;
}

static void mapper_loop(void)
{
	static const struct timespec ms = { 0, 1000000 };
	uint64_t r = splitmix(opt.seed + PMT_MAX_THREADS);
	bool on = true, told = false;

	for (;;) {
		wait_term(&ms);
		if (on && !mapper_step(&r)) {
			fprintf(stderr,
				"pmt-target: mapper: log slice full; it stops\n");
			on = false;
		}
		if (on && !told && hdr->nregions >= hdr->regions_cap) {
			fprintf(stderr,
				"pmt-target: mapper: region table full; it only stores now\n");
			told = true;
		}
	}
}

/* ---- closefds, pageout --------------------------------------------------- */

static void close_fds(void)
{
	if (syscall(SYS_close_range, 3u, ~0u, 0u)) {
		if (errno == ENOSYS || errno == EINVAL)
			unsupported("close_range");
		die("close_range");
	}
}

static void page_out(void)
{
	size_t chunk = CHUNK_PAGES * ps;

	for (int i = 1; i < 3; i++)
		for (size_t off = chunk; off < reg[i].len; off += 2 * chunk) {
			size_t len = reg[i].len - off < chunk ? reg[i].len - off
							      : chunk;

			if (!madvise(reg[i].start + off, len, MADV_PAGEOUT))
				continue;
			if (errno == EINVAL)
				unsupported("madvise(MADV_PAGEOUT)");
			die("madvise(MADV_PAGEOUT)");
		}
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: pmt-target --mode writer|forker|shmkids|execer|mapper|closefds|pageout\n"
		"                  --log FILE [--size MIB] [--threads N] [--rate STORES_PER_SEC]\n"
		"                  [--seed S] [--ready FILE] [--gen G]\n");
	exit(2);
}

static unsigned long num(const char *s, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || *s == '-' || v < min || v > max) {
		fprintf(stderr, "pmt-target: bad number '%s' (%lu..%lu)\n", s,
			min, max);
		usage();
	}
	return v;
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "log", required_argument, NULL, 'l' },
		{ "size", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 'S' },
		{ "ready", required_argument, NULL, 'R' },
		{ "gen", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = NULL;
	int c, m;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mode = optarg; break;
		case 'l': opt.log = optarg; break;
		case 's': opt.size_mib = num(optarg, 1, 1 << 16); break;
		case 't':
			opt.threads = num(optarg, 1, PMT_MAX_THREADS - 1);
			break;
		case 'r': opt.rate = num(optarg, 0, 1000000000); break;
		case 'S': opt.seed = strtoull(optarg, NULL, 0); break;
		case 'R': opt.ready = optarg; break;
		case 'g': opt.gen = num(optarg, 0, LAST_GEN); break;
		default: usage();
		}
	}
	if (!mode || !opt.log || optind != argc)
		usage();
	for (m = 0; m <= M_PAGEOUT; m++)
		if (!strcmp(mode, mode_names[m]))
			break;
	if (m > M_PAGEOUT)
		usage();
	opt.mode = (enum mode)m;
}

int main(int argc, char **argv)
{
	size_t pages, slice_size;
	char path[4096];
	pthread_t tid;
	uint64_t r;

	g_argc = argc;
	g_argv = argv;
	parse(argc, argv);
	ps = (size_t)sysconf(_SC_PAGESIZE);
	self = getpid();
	sigemptyset(&term_set);
	sigaddset(&term_set, SIGTERM);
	sigaddset(&term_set, SIGINT);
	/* every thread inherits the mask: only wait_term() takes them */
	pthread_sigmask(SIG_BLOCK, &term_set, NULL);

	map_regions();
	pages = (reg[0].len + reg[1].len + reg[2].len) / ps;
	slice_size = LOG_SLICES_BYTES / (opt.threads + 1);
	/* thread 0 logs the first pass, whatever the size */
	if (slice_size < (pages + 65536) * sizeof(struct pmt_log_rec))
		slice_size = (pages + 65536) * sizeof(struct pmt_log_rec);
	slice_size = (slice_size + ps - 1) & ~(ps - 1);
	log_path(path, sizeof(path), opt.log, self,
		 opt.mode == M_EXECER ? (long)opt.gen : -1);
	log_create(path, (unsigned)opt.threads + 1, slice_size, LOG_REGIONS);
	for (int i = 0; i < 3; i++)
		log_region(PMT_OP_MAP, reg[i].kind, PMT_STATE_DONE,
			   reg[i].start, reg[i].len, NULL, 0);

	/* the first pass: one word of every page */
	r = splitmix(opt.seed + 0xf1257);
	for (int i = 0; i < 3; i++)
		for (size_t off = 0; off < reg[i].len; off += ps)
			store_logged(&slices[0],
				     (uint64_t *)(reg[i].start + off +
						  rnd(&r) % (ps / 8) * 8));

	for (unsigned long k = 1; k <= opt.threads; k++) {
		errno = pthread_create(&tid, NULL, writer, (void *)(uintptr_t)k);
		if (errno)
			die("pthread_create");
	}
	while (__atomic_load_n(&started, __ATOMIC_ACQUIRE) < opt.threads)
		sleep_ns(100000);
	/* what the mode needs from the kernel, before saying ready */
	if (opt.mode == M_CLOSEFDS)
		close_fds();
	if (opt.mode == M_PAGEOUT)
		page_out();
	write_ready();

	switch (opt.mode) {
	case M_FORKER:
	case M_SHMKIDS:
		fork_loop();
		break;
	case M_EXECER:
		if (opt.gen < LAST_GEN) {
			static const struct timespec t = { 0, 300000000 };

			wait_term(&t);
			exec_next();
		}
		break;
	case M_MAPPER:
		mapper_loop();
		break;
	case M_CLOSEFDS:
		for (;;) {
			static const struct timespec t = { 0, 10000000 };

			wait_term(&t);
			close_fds();
		}
	case M_PAGEOUT:
		for (;;) {
			static const struct timespec t = { 0, 50000000 };

			wait_term(&t);
			page_out();
		}
	default:
		break;
	}
	for (;;)
		wait_term(NULL);
}

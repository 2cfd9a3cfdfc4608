// SPDX-License-Identifier: MIT
/*
 * pmt-logcheck: checks the memory of a pmt-target process, or a restored
 * dump of it, against the stores the target logged (pmt_log.h).
 *
 *   pmt-logcheck --log FILE... --pid PID --mem
 *	the memory of the target PID, read through /proc/PID/mem; the target
 *	must be frozen (every thread stopped, e.g. by SIGSTOP: this program
 *	waits up to 5 s for that, and for the target's children that have a
 *	log to have exited, but stops nothing itself);
 *   pmt-logcheck --log FILE... [--pid PID] --restored DIR
 *	the files of a restore output directory instead: each is named
 *	<start>-<end> (lowercase hex, no 0x) and holds the bytes of
 *	[start, end); a logged address no file covers is a mismatch;
 *   pmt-logcheck --compare-mem PID --restored DIR
 *	every page of every file of DIR against the frozen target, see
 *	compare_mem();
 *   pmt-logcheck --log FILE... [--pid PID] --regions
 *	the target's regions as its log says they are now, one a line:
 *	"<start>-<end> KIND" (anon, memfd, shanon, dyn).
 * --log may be repeated; --log-glob PATTERN adds every file glob(3)
 * matches (the many logs of a forker's children).  The target is --pid,
 * or else the one process among the logs that is not a child of another.
 * Its log with the highest generation is used (an execer's older
 * generations are skipped: their memory is gone); every other log must
 * be a child's (its header names the target as parent).
 * Prints "stores N, addresses M, mismatches K, inflight I" (or, for
 * --compare-mem, "regions R, pages compared P, differing D,
 * unverifiable U") on stdout, details on stderr; exits 0 when nothing
 * mismatched or differed, 1 when something did, 2 on errors.
 *
 * What the log check proves.  Every store is logged as (addr, value, t0,
 * t1): t0 read before the store, t1 after it (the store is a full
 * barrier), on CLOCK_MONOTONIC, which all CPUs and processes share.  For
 * every address the logs name (that is: each word that was stored to,
 * and only in memory that still exists: the target's regions, and a
 * child's stores to the shared regions it inherited), the word in memory
 * must be
 *   - the value of a logged store S that no other logged store to that
 *     word provably follows: no store T has T.t0 > S.t1 + 10 us.  The last
 *     store in memory order always qualifies (it began after every other
 *     one had been done, so its t1 is at least every other t0); a value
 *     that is provably older, zero, or anything else is a mismatch; or
 *   - exactly the next value of one thread that has not logged it yet
 *     (a store done, its record not yet published: counter one past the
 *     thread's last logged one); at most one such per thread, by
 *     construction.
 * The mapper's regions are followed through the region table: records of
 * a region that moved are checked at its new address, those of a region
 * since unmapped (or shrunk away) are not checked.
 * What it cannot tell:
 *   - among stores to one word within 10 us of each other, or whose
 *     [t0, t1] overlap (a thread preempted between store and clock read
 *     stretches its interval), which one came last: a lost write is not
 *     seen when an almost simultaneous one to the same word is in memory;
 *   - anything about words nobody logged a store to (the other words of
 *     a page, memory outside the regions): --compare-mem compares whole
 *     pages with the live process instead;
 *   - a child's stores to its private (copy-on-write) memory, which is
 *     gone: they are counted and skipped;
 *   - whether an un-logged in-flight value was the last store to its
 *     word (nothing bounds when it happened);
 *   - the contents of a region whose last change was in flight when the
 *     target was frozen (a PENDING entry: moved or unmapped, or not):
 *     its records are skipped and it counts as in flight;
 *   - stores of a process whose pid was reused for another logged one
 *     (a tag names the pid);
 *   - that the target was frozen when a dump was taken: --restored checks
 *     the dump against the log as it is now.
 * It relies on CLOCK_MONOTONIC agreeing across CPUs within 10 us.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pmt_log.h"

#define SLACK_NS 10000u
#define MAX_STATIC 8
#define MAX_REPORT 10

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)

static const char *const kind_names[] = { "?", "anon", "memfd", "shanon",
	"dyn" };

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						     noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("pmt-logcheck: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("pmt-logcheck: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		fail("out of memory");
	return p;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- address ranges ------------------------------------------------------ */

struct range {
	uint64_t start, len;
	uint32_t kind;
};

static bool in_range(const struct range *r, uint64_t addr)
{
	return addr >= r->start && addr - r->start < r->len;
}

/* ---- logs ---------------------------------------------------------------- */

struct log {
	const char *path;
	const uint8_t *base;
	size_t size;
	const struct pmt_log_hdr *h;
	uint64_t pid, ppid;
	uint32_t gen;
	/* read once, the table first: a running target's log stays whole */
	uint64_t nreg, count[PMT_MAX_THREADS];
	bool own, skip;
	/* a process stopped or killed before its log had a header (a child
	 * caught in its first microseconds): it has logged no store */
	bool unborn;
	struct range st[MAX_STATIC]; /* its static regions */
	unsigned nst;
};

static struct log *logs;
static size_t nlogs;

static void log_add(const char *path)
{
	logs = xrealloc(logs, (nlogs + 1) * sizeof(*logs));
	memset(&logs[nlogs], 0, sizeof(*logs));
	logs[nlogs++].path = path;
}

static const struct pmt_log_slice *slice_hdr(const struct log *l, unsigned k)
{
	return (const void *)(l->base + l->h->slice_off +
			      k * l->h->slice_size);
}

static const struct pmt_log_rec *slice_recs(const struct log *l, unsigned k)
{
	return (const void *)((const uint8_t *)slice_hdr(l, k) +
			      sizeof(struct pmt_log_slice));
}

static uint64_t slice_cap(const struct log *l)
{
	return (l->h->slice_size - sizeof(struct pmt_log_slice)) /
	       sizeof(struct pmt_log_rec);
}

static uint64_t slice_count(const struct log *l, unsigned k)
{
	return __atomic_load_n(&slice_hdr(l, k)->count, __ATOMIC_ACQUIRE);
}

static const struct pmt_log_region *log_regions(const struct log *l)
{
	return (const void *)(l->base + l->h->regions_off);
}

static uint64_t log_nregions(const struct log *l)
{
	return __atomic_load_n(&l->h->nregions, __ATOMIC_ACQUIRE);
}

/* map a log and check that its header describes the file */
static void log_open(struct log *l)
{
	const struct pmt_log_hdr *h;
	struct stat st;
	int fd = open(l->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st))
		fail("%s: %s", l->path, strerror(errno));
	if ((size_t)st.st_size < sizeof(*h)) {
		l->unborn = true;
		close(fd);
		return;
	}
	l->size = (size_t)st.st_size;
	l->base = mmap(NULL, l->size, PROT_READ, MAP_SHARED, fd, 0);
	if (l->base == MAP_FAILED)
		fail("%s: mmap: %s", l->path, strerror(errno));
	close(fd);
	h = l->h = (const void *)l->base;
	if (!h->magic) {
		l->unborn = true;
		return;
	}
	if (h->magic != PMT_LOG_MAGIC || h->version != PMT_LOG_VERSION)
		fail("%s: not a pmt-target log (magic, version)", l->path);
	if (!h->nslices || h->nslices > PMT_MAX_THREADS ||
	    h->slice_size <= sizeof(struct pmt_log_slice) ||
	    h->regions_off < sizeof(*h) ||
	    h->regions_off + h->regions_cap * sizeof(struct pmt_log_region) >
		    h->slice_off ||
	    h->slice_off + h->nslices * h->slice_size > l->size)
		fail("%s: inconsistent header", l->path);
	l->nreg = log_nregions(l);
	if (l->nreg > h->regions_cap)
		fail("%s: region table past its end", l->path);
	for (unsigned k = 0; k < h->nslices; k++) {
		l->count[k] = slice_count(l, k);
		if (l->count[k] > slice_cap(l))
			fail("%s: slice %u: count past its end", l->path, k);
	}
	l->pid = h->pid;
	l->ppid = h->ppid;
	l->gen = h->gen;
}

static void log_close(struct log *l)
{
	if (l->base)
		munmap((void *)l->base, l->size);
	l->base = NULL;
	l->h = NULL;
}

/* which log is the target's, which are its children's, which are stale */
static uint64_t pick_target(uint64_t pid)
{
	uint64_t found = 0;
	uint32_t top = 0;
	size_t stale = 0;

	for (size_t i = 0; !pid && i < nlogs; i++) {
		bool child = false;

		if (logs[i].unborn)
			continue;
		for (size_t j = 0; j < nlogs; j++)
			child |= logs[i].ppid == logs[j].pid;
		if (child)
			continue;
		if (found && found != logs[i].pid)
			fail("two logs of unrelated processes (%" PRIu64
			     " and %" PRIu64 "): give --pid", found,
			     logs[i].pid);
		found = logs[i].pid;
	}
	if (!pid)
		pid = found;
	if (!pid)
		fail("no log is the target's: give --pid");
	for (size_t i = 0; i < nlogs; i++)
		if (logs[i].pid == pid && logs[i].gen > top)
			top = logs[i].gen;
	for (size_t i = 0; i < nlogs; i++) {
		struct log *l = &logs[i];

		l->own = l->pid == pid && !l->unborn;
		l->skip = (l->own && l->gen < top) || l->unborn;
		stale += l->skip;
		/* an unborn log (no header yet) names no process */
		if (!l->unborn && !l->own && l->ppid != pid)
			fail("%s: pid %" PRIu64 ", parent %" PRIu64
			     ": neither the target %" PRIu64 " nor its child",
			     l->path, l->pid, l->ppid, pid);
		for (size_t j = 0; j < i; j++)
			if (!l->skip && !logs[j].skip &&
			    logs[j].pid == l->pid && logs[j].gen == l->gen)
				fail("%s and %s: the same process", l->path,
				     logs[j].path);
	}
	if (stale)
		note("%zu log(s) of older generations skipped", stale);
	return pid;
}

/* ---- effective records: what must be in memory --------------------------- */

struct rec {
	uint64_t addr, value, t0, t1;
};

static struct rec *recs;
static size_t nrecs, caprecs;
static uint64_t *inflight; /* the next value of each thread, sorted */
static bool *inflight_used;
static size_t ninflight;

static struct {
	size_t child_logs, child_private, uncertain_recs;
	size_t ev_map, ev_unmap, ev_remap, ev_failed, ev_pending;
	uint64_t forks;
} stats;

static void rec_add(uint64_t addr, const struct pmt_log_rec *r)
{
	if (nrecs == caprecs) {
		caprecs = caprecs ? 2 * caprecs : 1 << 16;
		recs = xrealloc(recs, caprecs * sizeof(*recs));
	}
	recs[nrecs++] = (struct rec){ addr, r->value, r->t0, r->t1 };
}

/* every record is the store its slice says it must be */
static void check_slice(const struct log *l, unsigned k)
{
	const struct pmt_log_rec *r = slice_recs(l, k);
	uint64_t n = l->count[k];
	uint64_t tag = PMT_TAG(l->pid, k), base = PMT_COUNTER_BASE(l->gen);

	for (uint64_t i = 0; i < n; i++)
		if (r[i].value != (tag | (base + i + 1)) || !r[i].addr ||
		    r[i].addr % 8 || r[i].t0 > r[i].t1)
			fail("%s: slice %u record %" PRIu64
			     " is not a store of this thread", l->path, k, i);
	if (n < slice_cap(l) && !slice_hdr(l, k)->full) {
		inflight = xrealloc(inflight,
				    (ninflight + 1) * sizeof(*inflight));
		inflight[ninflight++] = tag | (base + n + 1);
	}
}

/* the static regions of a log: its MAP entries of kinds other than DYN */
static void log_statics(struct log *l)
{
	const struct pmt_log_region *e = log_regions(l);
	uint64_t n = l->nreg;

	for (uint64_t i = 0; i < n; i++) {
		if (e[i].kind == PMT_KIND_DYN)
			continue;
		if (e[i].op != PMT_OP_MAP || e[i].kind > PMT_KIND_DYN ||
		    !e[i].kind || l->nst == MAX_STATIC)
			fail("%s: region entry %" PRIu64 " unexpected", l->path,
			     i);
		l->st[l->nst++] = (struct range){ e[i].start, e[i].len,
						  e[i].kind };
	}
}

/* a child's log: only its stores to the shared regions it inherited */
static void child_records(const struct log *l)
{
	for (unsigned k = 0; k < l->h->nslices; k++) {
		const struct pmt_log_rec *r = slice_recs(l, k);
		uint64_t n = l->count[k];

		for (uint64_t i = 0; i < n; i++) {
			bool shared = false;

			for (unsigned s = 0; s < l->nst; s++)
				shared |= in_range(&l->st[s], r[i].addr) &&
					  l->st[s].kind != PMT_KIND_ANON;
			if (shared)
				rec_add(r[i].addr, &r[i]);
			else
				stats.child_private++;
		}
	}
	stats.child_logs++;
}

/* the mapper's regions, replayed along thread 0's records */
struct dyn {
	uint64_t start, len;
	bool uncertain;
	struct {
		uint64_t off;
		const struct pmt_log_rec *r;
	} *r;
	size_t n;
};
static struct dyn *dyns;
static size_t ndyns;

static struct dyn *dyn_find(uint64_t start, uint64_t len)
{
	for (size_t i = 0; i < ndyns; i++)
		if (dyns[i].start == start && dyns[i].len == len)
			return &dyns[i];
	return NULL;
}

static void dyn_event(const struct log *l, const struct pmt_log_region *e,
		      bool last)
{
	struct dyn *d;

	if (e->state == PMT_STATE_FAILED) {
		stats.ev_failed++;
		return;
	}
	if (e->state == PMT_STATE_PENDING) {
		if (!last)
			fail("%s: a pending region change is not the last",
			     l->path);
		stats.ev_pending++;
	}
	if (e->op == PMT_OP_MAP) {
		dyns = xrealloc(dyns, (ndyns + 1) * sizeof(*dyns));
		dyns[ndyns++] = (struct dyn){ e->start, e->len, false, NULL, 0 };
		stats.ev_map++;
		return;
	}
	d = e->op == PMT_OP_UNMAP ? dyn_find(e->start, e->len)
				  : dyn_find(e->old_start, e->old_len);
	if (!d || (e->op != PMT_OP_UNMAP && e->op != PMT_OP_REMAP))
		fail("%s: region change of an unknown region", l->path);
	if (e->state == PMT_STATE_PENDING) {
		/* moved or unmapped, or not; growing in place moves nothing */
		d->uncertain |= e->op == PMT_OP_UNMAP || e->start != d->start;
		return;
	}
	if (e->op == PMT_OP_UNMAP) {
		stats.ev_unmap++;
		free(d->r);
		*d = dyns[--ndyns];
		return;
	}
	stats.ev_remap++;
	d->start = e->start;
	d->len = e->len;
	for (size_t i = 0; i < d->n; i++)
		if (d->r[i].off + 8 > d->len)
			d->r[i--] = d->r[--d->n];
}

static bool dyn_store(const struct pmt_log_rec *r)
{
	for (size_t i = 0; i < ndyns; i++) {
		struct dyn *d = &dyns[i];

		if (r->addr < d->start || r->addr - d->start >= d->len)
			continue;
		d->r = xrealloc(d->r, (d->n + 1) * sizeof(*d->r));
		d->r[d->n].off = r->addr - d->start;
		d->r[d->n++].r = r;
		return true;
	}
	return false;
}

/* the target's log: every store, its mapper's regions followed */
static void own_records(const struct log *l)
{
	const struct pmt_log_region *e = log_regions(l);
	uint64_t ne = l->nreg, ie = 0;

	for (unsigned k = 0; k < l->h->nslices; k++) {
		const struct pmt_log_rec *r = slice_recs(l, k);
		uint64_t n = l->count[k];

		for (uint64_t i = 0; i <= n; i++) {
			for (; k == 0 && ie < ne && e[ie].at <= i; ie++) {
				if (e[ie].kind != PMT_KIND_DYN)
					continue;
				if (e[ie].slice || e[ie].at != i)
					fail("%s: region entry %" PRIu64
					     " out of order", l->path, ie);
				dyn_event(l, &e[ie], ie + 1 == ne);
			}
			if (i < n && !(k == 0 && dyn_store(&r[i])))
				rec_add(r[i].addr, &r[i]);
		}
	}
	if (ie != ne)
		fail("%s: region entries past the records", l->path);
	for (size_t i = 0; i < ndyns; i++)
		for (size_t j = 0; j < dyns[i].n; j++)
			if (dyns[i].uncertain)
				stats.uncertain_recs++;
			else
				rec_add(dyns[i].start + dyns[i].r[j].off,
					dyns[i].r[j].r);
	stats.forks = l->h->forks;
}

/* the target's regions now: its static ones and the mapper's live ones */
static struct range *target_ranges(const struct log *own, size_t *n)
{
	struct range *r = xrealloc(NULL, (own->nst + ndyns) * sizeof(*r));

	*n = 0;
	for (unsigned i = 0; i < own->nst; i++)
		r[(*n)++] = own->st[i];
	for (size_t i = 0; i < ndyns; i++)
		if (!dyns[i].uncertain)
			r[(*n)++] = (struct range){ dyns[i].start, dyns[i].len,
						    PMT_KIND_DYN };
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* read every log; returns the target's */
static const struct log *load_logs(uint64_t *pid)
{
	const struct log *own = NULL;

	if (!nlogs)
		fail("no --log given");
	for (size_t i = 0; i < nlogs; i++) {
		log_open(&logs[i]);
		if (logs[i].unborn)
			fprintf(stderr, "%s: no header yet: no store logged\n",
				logs[i].path);
		else
			log_statics(&logs[i]);
	}
	*pid = pick_target(*pid);
	for (size_t i = 0; i < nlogs; i++) {
		struct log *l = &logs[i];

		if (l->skip) {
			log_close(l);
			continue;
		}
		for (unsigned k = 0; k < l->h->nslices; k++)
			check_slice(l, k);
		if (l->own) {
			own = l;
			own_records(l);
			continue; /* kept open: --regions */
		}
		child_records(l);
		log_close(l);
	}
	qsort(inflight, ninflight, sizeof(*inflight), cmp_u64);
	inflight_used = xrealloc(NULL, ninflight + 1);
	memset(inflight_used, 0, ninflight + 1);
	return own;
}

/* ---- memory images ------------------------------------------------------- */

struct seg {
	uint64_t start, end;
	const uint8_t *data;
	uint64_t valid; /* bytes of data from start */
	uint8_t *page_ok; /* NULL: every page up to valid */
	const char *name;
};
static struct seg *segs;
static size_t nsegs;
static size_t page_size;

static int cmp_seg(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static void segs_sort(void)
{
	qsort(segs, nsegs, sizeof(*segs), cmp_seg);
	for (size_t i = 1; i < nsegs; i++)
		if (segs[i].start < segs[i - 1].end)
			fail("%s and %s overlap", segs[i - 1].name,
			     segs[i].name);
}

static const struct seg *seg_find(uint64_t addr)
{
	size_t lo = 0, hi = nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (segs[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || addr >= segs[lo - 1].end)
		return NULL;
	return &segs[lo - 1];
}

/* the word at addr, or false when the image does not hold it */
static bool mem_word(uint64_t addr, uint64_t *v)
{
	const struct seg *s = seg_find(addr);
	uint64_t off;

	if (!s || addr + 8 > s->end)
		return false;
	off = addr - s->start;
	if (off + 8 > s->valid ||
	    (s->page_ok && !s->page_ok[off / page_size]))
		return false;
	memcpy(v, s->data + off, 8);
	return true;
}

/* the target's regions, read through /proc/PID/mem (page by page where a
 * read fails) */
static void image_from_mem(uint64_t pid, const struct range *r, size_t n)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("%s: %s", path, strerror(errno));
	segs = xrealloc(NULL, n * sizeof(*segs));
	for (size_t i = 0; i < n; i++) {
		uint8_t *buf = xrealloc(NULL, r[i].len);
		uint8_t *ok = xrealloc(NULL, r[i].len / page_size + 1);
		size_t bad = 0;

		for (uint64_t off = 0; off < r[i].len; off += page_size) {
			ok[off / page_size] =
				pread(fd, buf + off, page_size,
				      (off_t)(r[i].start + off)) ==
				(ssize_t)page_size;
			bad += !ok[off / page_size];
		}
		if (bad)
			note("%zu page(s) of %" PRIx64 "-%" PRIx64
			     " unreadable", bad, r[i].start,
			     r[i].start + r[i].len);
		segs[nsegs++] = (struct seg){ r[i].start, r[i].start + r[i].len,
					      buf, r[i].len, ok, "memory" };
	}
	close(fd);
}

/* "<start>-<end>", lowercase hex without 0x */
static bool parse_name(const char *name, uint64_t *start, uint64_t *end)
{
	const char *p = name;
	char *q;

	for (; *p; p++)
		if (!isxdigit((unsigned char)*p) && *p != '-')
			return false;
		else if (isupper((unsigned char)*p))
			return false;
	if (!isxdigit((unsigned char)name[0]))
		return false;
	*start = strtoull(name, &q, 16);
	if (*q != '-' || !isxdigit((unsigned char)q[1]))
		return false;
	*end = strtoull(q + 1, &q, 16);
	return !*q && *start < *end;
}

static void image_from_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		fail("%s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		uint64_t start, end;
		struct stat st;
		char *path;
		int fd;
		void *p = NULL;

		if (de->d_name[0] == '.')
			continue;
		if (!parse_name(de->d_name, &start, &end)) {
			note("%s/%s: not a region file, ignored", dir,
			     de->d_name);
			continue;
		}
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
			fail("out of memory");
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st))
			fail("%s: %s", path, strerror(errno));
		if ((uint64_t)st.st_size != end - start)
			note("%s: %lld bytes, its name says %" PRIu64, path,
			     (long long)st.st_size, end - start);
		if (st.st_size) {
			p = mmap(NULL, (size_t)st.st_size, PROT_READ,
				 MAP_PRIVATE, fd, 0);
			if (p == MAP_FAILED)
				fail("%s: mmap: %s", path, strerror(errno));
		}
		close(fd);
		segs = xrealloc(segs, (nsegs + 1) * sizeof(*segs));
		segs[nsegs++] = (struct seg){ start, end, p,
					      (uint64_t)st.st_size, NULL,
					      path };
	}
	closedir(d);
	segs_sort();
}

/* ---- the check ----------------------------------------------------------- */

static int cmp_rec(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

static bool take_inflight(uint64_t v)
{
	const uint64_t *p = bsearch(&v, inflight, ninflight, sizeof(v),
				    cmp_u64);

	if (!p || inflight_used[p - inflight])
		return false;
	inflight_used[p - inflight] = true;
	return true;
}

enum why { WHY_STALE, WHY_ZERO, WHY_OTHER, WHY_UNCOVERED, WHY_N };
static const char *const why_names[] = {
	"an older store's value", "zero", "not a value stored there",
	"not in the memory image",
};

static enum why classify(const struct rec *g, size_t n, bool have, uint64_t v)
{
	if (!have)
		return WHY_UNCOVERED;
	for (size_t i = 0; i < n; i++)
		if (g[i].value == v)
			return WHY_STALE;
	return v ? WHY_OTHER : WHY_ZERO;
}

static void report(const struct rec *g, size_t n, enum why why, uint64_t v,
		   uint64_t latest)
{
	const struct rec *last = &g[n - 1];

	for (size_t i = 0; i < n; i++)
		if (g[i].t0 == latest)
			last = &g[i];
	fprintf(stderr,
		"mismatch at %#" PRIx64 ": memory %#" PRIx64
		" (pid %" PRIu64 " thread %" PRIu64 " #%" PRIu64
		"): %s; latest logged %#" PRIx64 " (pid %" PRIu64
		" thread %" PRIu64 " #%" PRIu64 ", t0 %" PRIu64
		"); %zu store(s) logged there\n",
		g->addr, v, PMT_VALUE_PID(v), PMT_VALUE_THREAD(v),
		PMT_VALUE_COUNTER(v), why_names[why], last->value,
		PMT_VALUE_PID(last->value), PMT_VALUE_THREAD(last->value),
		PMT_VALUE_COUNTER(last->value), last->t0, n);
}

static int check(void)
{
	size_t addrs = 0, bad = 0, infl = stats.ev_pending, whys[WHY_N] = { 0 };

	qsort(recs, nrecs, sizeof(*recs), cmp_rec);
	for (size_t i = 0, j; i < nrecs; i = j) {
		uint64_t latest = 0, v = 0;
		bool have, ok = false;
		enum why why;

		for (j = i; j < nrecs && recs[j].addr == recs[i].addr; j++)
			if (recs[j].t0 > latest)
				latest = recs[j].t0;
		addrs++;
		have = mem_word(recs[i].addr, &v);
		for (size_t k = i; have && !ok && k < j; k++)
			ok = recs[k].value == v &&
			     recs[k].t1 + SLACK_NS >= latest;
		if (!ok && have && take_inflight(v)) {
			infl++;
			continue;
		}
		if (ok)
			continue;
		why = classify(&recs[i], j - i, have, v);
		whys[why]++;
		if (bad++ < MAX_REPORT)
			report(&recs[i], j - i, why, v, latest);
	}
	if (bad)
		note("mismatches: %zu older value(s), %zu zero, %zu other value(s), %zu not in the memory image",
		     whys[WHY_STALE], whys[WHY_ZERO], whys[WHY_OTHER],
		     whys[WHY_UNCOVERED]);
	printf("stores %zu, addresses %zu, mismatches %zu, inflight %zu\n",
	       nrecs, addrs, bad, infl);
	return bad ? 1 : 0;
}

/* ---- the processes ------------------------------------------------------- */

/* state and parent of a task from its stat file; false when it is gone */
static bool task_stat(const char *path, char *state, uint64_t *ppid)
{
	char buf[1024], *p;
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
	     sscanf(p + 1, " %c %" SCNu64, state, ppid) == 2;
	fclose(f);
	return ok;
}

/* wait up to 5 s for every thread of pid to be stopped */
static void wait_frozen(uint64_t pid)
{
	char path[512];

	for (int tries = 0; tries < 500; tries++, sleep_ms(10)) {
		bool all = true;
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "/proc/%" PRIu64 "/task", pid);
		d = opendir(path);
		if (!d)
			fail("process %" PRIu64 ": %s", pid, strerror(errno));
		while ((de = readdir(d))) {
			char state = 0;
			uint64_t pp;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path),
				 "/proc/%" PRIu64 "/task/%s/stat", pid,
				 de->d_name);
			if (task_stat(path, &state, &pp) &&
			    !strchr("TtZX", state))
				all = false;
		}
		closedir(d);
		if (all)
			return;
	}
	fail("process %" PRIu64 " is not frozen (SIGSTOP it first)", pid);
}

/* does a child of pid (/proc/PID/task/TID/children) still run? */
static bool child_runs(uint64_t pid)
{
	char path[512];
	struct dirent *de;
	bool runs = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/task", pid);
	d = opendir(path);
	while (d && !runs && (de = readdir(d))) {
		unsigned long long c;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path),
			 "/proc/%" PRIu64 "/task/%s/children", pid, de->d_name);
		f = fopen(path, "r");
		while (f && !runs && fscanf(f, "%llu", &c) == 1) {
			char st[64], state = 0;
			uint64_t pp;

			snprintf(st, sizeof(st), "/proc/%llu/stat", c);
			runs = task_stat(st, &state, &pp) &&
			       !strchr("TtZX", state);
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return runs;
}

/* wait up to 5 s for the target's children to have exited (or stopped) */
static void wait_children(uint64_t pid)
{
	for (int tries = 0; child_runs(pid); tries++) {
		if (tries == 500)
			fail("a child of %" PRIu64 " still runs", pid);
		sleep_ms(10);
	}
}

/* ---- --compare-mem ------------------------------------------------------- */

struct vma {
	uint64_t start, end, off;
	bool shared, file, special;
	int fd; /* /proc/PID/map_files/..., -1: not opened, -2: failed */
};

static struct vma *read_maps(uint64_t pid, size_t *n)
{
	char path[64], line[4096];
	struct vma *v = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/maps", pid);
	f = fopen(path, "r");
	if (!f)
		fail("%s: %s", path, strerror(errno));
	*n = 0;
	while (fgets(line, sizeof(line), f)) {
		char perm[8] = "", name[4096] = "";
		unsigned long long s, e, off, ino;
		struct vma *m;

		if (sscanf(line, "%llx-%llx %7s %llx %*s %llu %4095[^\n]", &s,
			   &e, perm, &off, &ino, name) < 5)
			continue;
		v = xrealloc(v, (*n + 1) * sizeof(*v));
		m = &v[(*n)++];
		*m = (struct vma){ s, e, off, perm[3] == 's', false, false, -1 };
		m->file = ino != 0 || m->shared;
		m->special = name[strspn(name, " ")] == '[' &&
			     strncmp(name + strspn(name, " "), "[heap]", 6) &&
			     strncmp(name + strspn(name, " "), "[stack]", 7) &&
			     strncmp(name + strspn(name, " "), "[anon", 5);
	}
	fclose(f);
	return v;
}

static struct vma *vma_find(struct vma *v, size_t n, uint64_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (addr >= v[i].start && addr < v[i].end)
			return &v[i];
	return NULL;
}

static struct {
	size_t present, swapped, via_file, absent, unmapped;
} cm;

/*
 * One page of the target into buf: 1 read, 0 absent private anonymous
 * (zeros), -1 unverifiable.  Present or swapped pages come through
 * /proc/PID/mem; pages of a file or of shared memory that pagemap shows
 * neither present nor swapped come through /proc/PID/map_files, whose
 * read(2) never allocates (reading a shmem hole through /proc/PID/mem
 * would allocate a page), and private anonymous ones are zero.
 */
static int target_page(uint64_t pid, int mem, uint64_t pm, struct vma *v,
		       uint64_t addr, uint8_t *buf)
{
	char path[128];

	if (pm & (PM_PRESENT | PM_SWAPPED) || (v->special && !v->file)) {
		if (pm & PM_SWAPPED)
			cm.swapped++;
		else
			cm.present++;
		return pread(mem, buf, page_size, (off_t)addr) ==
				       (ssize_t)page_size
			       ? 1
			       : -1;
	}
	if (!v->file) {
		cm.absent++;
		memset(buf, 0, page_size);
		return 0;
	}
	if (v->fd == -1) {
		snprintf(path, sizeof(path),
			 "/proc/%" PRIu64 "/map_files/%" PRIx64 "-%" PRIx64,
			 pid, v->start, v->end);
		v->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (v->fd < 0) {
			note("%s: %s", path, strerror(errno));
			v->fd = -2;
		}
	}
	if (v->fd < 0)
		return -1;
	cm.via_file++;
	memset(buf, 0, page_size); /* past the end of the file: zeros */
	return pread(v->fd, buf, page_size,
		     (off_t)(v->off + addr - v->start)) >= 0
		       ? 1
		       : -1;
}

struct cmp_ctx {
	uint64_t pid;
	int mem, pm;
	struct vma *v;
	size_t nv, pages, unver;
	uint8_t *buf;
};

/* page a of the restored file s against the target: why they differ, or
 * NULL (equal, or counted unverifiable) */
static const char *compare_page(struct cmp_ctx *c, const struct seg *s,
				uint64_t a)
{
	uint64_t off = a - s->start, e = 0;
	struct vma *m = vma_find(c->v, c->nv, a);
	int got;

	if (off + page_size > s->valid)
		return "missing from the file";
	if (!m) {
		cm.unmapped++;
		return "not mapped in the target";
	}
	/* pagemap stops at the top of user space ([vsyscall]) */
	if (pread(c->pm, &e, 8, (off_t)(a / page_size * 8)) != 8 &&
	    !m->special) {
		c->unver++;
		return NULL;
	}
	got = target_page(c->pid, c->mem, e, m, a, c->buf);
	if (got < 0) {
		c->unver++;
		return NULL;
	}
	c->pages++;
	if (!memcmp(c->buf, s->data + off, page_size))
		return NULL;
	return got ? "bytes differ" : "not zero (absent in the target)";
}

static int compare_mem(uint64_t pid, const char *dir)
{
	struct cmp_ctx c = { .pid = pid };
	size_t differ = 0;
	char path[64];

	wait_frozen(pid);
	image_from_dir(dir);
	c.v = read_maps(pid, &c.nv);
	c.buf = xrealloc(NULL, page_size);
	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/mem", pid);
	c.mem = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/pagemap", pid);
	c.pm = open(path, O_RDONLY | O_CLOEXEC);
	if (c.mem < 0 || c.pm < 0)
		fail("/proc/%" PRIu64 "/mem, pagemap: %s", pid,
		     strerror(errno));
	for (size_t i = 0; i < nsegs; i++) {
		for (uint64_t a = segs[i].start; a < segs[i].end;
		     a += page_size) {
			const char *why = compare_page(&c, &segs[i], a);

			if (why && differ++ < MAX_REPORT)
				fprintf(stderr, "differ: page %#" PRIx64
					" of %s: %s\n", a, segs[i].name, why);
		}
	}
	if (differ > MAX_REPORT)
		fprintf(stderr, "... %zu differing pages in all\n", differ);
	note("pages: present %zu, swapped %zu, read through map_files %zu, absent (zero) %zu, not mapped %zu",
	     cm.present, cm.swapped, cm.via_file, cm.absent, cm.unmapped);
	printf("regions %zu, pages compared %zu, differing %zu, unverifiable %zu\n",
	       nsegs, c.pages, differ, c.unver);
	for (size_t i = 0; i < c.nv; i++)
		if (c.v[i].fd >= 0)
			close(c.v[i].fd);
	free(c.v);
	free(c.buf);
	close(c.mem);
	close(c.pm);
	return differ ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: pmt-logcheck --log FILE... --pid PID --mem\n"
		"       pmt-logcheck --log FILE... [--pid PID] --restored DIR\n"
		"       pmt-logcheck --compare-mem PID --restored DIR\n"
		"       pmt-logcheck --log FILE... [--pid PID] --regions\n"
		"       (--log FILE may be repeated; --log-glob PATTERN adds the files it matches)\n");
	exit(2);
}

static uint64_t pid_arg(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (!*s || *end || !v || *s == '-')
		usage();
	return v;
}

static const char **globs;
static size_t nglobs;

/* after the children are done: the logs they created are there */
static void add_globs(void)
{
	for (size_t k = 0; k < nglobs; k++) {
		glob_t g;

		if (glob(globs[k], 0, NULL, &g))
			fail("--log-glob %s: no match", globs[k]);
		for (size_t i = 0; i < g.gl_pathc; i++) {
			char *p = strdup(g.gl_pathv[i]);

			if (!p)
				fail("out of memory");
			log_add(p);
		}
		globfree(&g);
	}
}

static void print_regions(const struct log *own)
{
	size_t n;
	struct range *r = target_ranges(own, &n);

	for (size_t i = 0; i < n; i++)
		printf("%" PRIx64 "-%" PRIx64 " %s\n", r[i].start,
		       r[i].start + r[i].len, kind_names[r[i].kind]);
	free(r);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "log", required_argument, NULL, 'l' },
		{ "log-glob", required_argument, NULL, 'g' },
		{ "pid", required_argument, NULL, 'p' },
		{ "mem", no_argument, NULL, 'm' },
		{ "restored", required_argument, NULL, 'r' },
		{ "compare-mem", required_argument, NULL, 'c' },
		{ "regions", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *restored = NULL;
	uint64_t pid = 0, cmp_pid = 0;
	bool mem = false, regions = false;
	const struct log *own;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': log_add(optarg); break;
		case 'g':
			globs = xrealloc(globs, (nglobs + 1) * sizeof(*globs));
			globs[nglobs++] = optarg;
			break;
		case 'p': pid = pid_arg(optarg); break;
		case 'm': mem = true; break;
		case 'r': restored = optarg; break;
		case 'c': cmp_pid = pid_arg(optarg); break;
		case 'R': regions = true; break;
		default: usage();
		}
	}
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (optind != argc || mem + regions + !!restored != 1 ||
	    (mem && !pid) ||
	    (cmp_pid && (!restored || nlogs || nglobs || pid)))
		usage();
	if (cmp_pid)
		return compare_mem(cmp_pid, restored);
	if (mem) {
		/* before reading the logs: they are final then */
		wait_frozen(pid);
		wait_children(pid);
	}
	add_globs();
	own = load_logs(&pid);
	if (!own)
		fail("no log of the target %" PRIu64, pid);
	note("target %" PRIu64 " (%s, generation %u): %zu child log(s), %" PRIu64
	     " fork(s); mapper: %zu map, %zu unmap, %zu remap, %zu failed, %zu pending; %zu child store(s) to private memory not checked, %zu store(s) in a region in flight not checked",
	     pid, own->h->mode, own->gen, stats.child_logs, stats.forks,
	     stats.ev_map, stats.ev_unmap, stats.ev_remap, stats.ev_failed,
	     stats.ev_pending, stats.child_private, stats.uncertain_recs);
	if (regions) {
		print_regions(own);
		return 0;
	}
	if (mem) {
		size_t n;
		struct range *r = target_ranges(own, &n);

		image_from_mem(pid, r, n);
		segs_sort();
		free(r);
	} else {
		image_from_dir(restored);
	}
	return check();
}

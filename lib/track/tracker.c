// SPDX-License-Identifier: MIT
/*
 * The tracker handle: options, the table of watched ranges, argument
 * checking, the three output sinks and the statistics.  Backends only see
 * ranges that passed these checks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "track.h"

PMTRACK_API const char *pmtrack_version(void)
{
	return PMTRACK_VERSION_STRING;
}

/* best first: the order AUTO tries them in */
static const struct pmt_backend_ops *const backends[] = {
	&pmt_pagemap_scan_ops,
	&pmt_soft_dirty_ops,
	&pmt_uffd_wp_ops,
	&pmt_mprotect_ops,
};
#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

static const char *const backend_names[] = {
	[PMTRACK_BACKEND_AUTO] = "auto",
	[PMTRACK_BACKEND_PAGEMAP_SCAN] = "pagemap-scan",
	[PMTRACK_BACKEND_SOFT_DIRTY] = "soft-dirty",
	[PMTRACK_BACKEND_UFFD_WP] = "uffd-wp",
	[PMTRACK_BACKEND_MPROTECT] = "mprotect",
};
#define NNAMES (sizeof(backend_names) / sizeof(backend_names[0]))

PMTRACK_API const char *pmtrack_backend_name(enum pmtrack_backend b)
{
	if ((unsigned int)b >= NNAMES)
		return NULL;
	return backend_names[b];
}

/* ---- lifecycle ---------------------------------------------------------- */

static void outer_lock(const struct pmtrack *t)
{
	if (t->ops->outer)
		pthread_mutex_lock(t->ops->outer);
}

static void outer_unlock(const struct pmtrack *t)
{
	if (t->ops->outer)
		pthread_mutex_unlock(t->ops->outer);
}

static void backend_close(struct pmtrack *t)
{
	outer_lock(t);
	t->ops->close(t);
	outer_unlock(t);
	t->pagemap_fd = t->uffd = t->clear_refs_fd = -1;
	t->caps = 0;
	t->ops = NULL;
}

/*
 * Open @ops on @t.  Return 0, 1 if it cannot serve this tracker (it is
 * unusable here, or lacks a required capability), or -errno.
 */
static int backend_try(struct pmtrack *t, const struct pmt_backend_ops *ops,
		       unsigned int require)
{
	int ret = ops->usable();

	if (ret <= 0)
		return ret < 0 ? ret : 1;
	t->ops = ops;
	outer_lock(t);
	ret = ops->open(t);
	outer_unlock(t);
	if (!ret && (t->caps & require) != require)
		ret = 1;
	if (ret == -EOPNOTSUPP)
		ret = 1;
	if (ret)
		backend_close(t);
	return ret;
}

static int backend_from_env(enum pmtrack_backend *b)
{
	const char *v = getenv("PMTRACK_BACKEND");

	if (!v || !*v)
		return 0;
	for (size_t i = 0; i < NNAMES; i++) {
		if (!strcmp(v, backend_names[i])) {
			*b = (enum pmtrack_backend)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int pick_backend(struct pmtrack *t, enum pmtrack_backend want,
			unsigned int require)
{
	int ret;

	if (t->target)
		require |= PMTRACK_CAP_OTHER_PROCESS;
	if (want == PMTRACK_BACKEND_AUTO) {
		ret = backend_from_env(&want);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < NBACKENDS; i++) {
		if (want != PMTRACK_BACKEND_AUTO && backends[i]->id != want)
			continue;
		ret = backend_try(t, backends[i], require);
		if (ret <= 0)
			return ret;
		if (want != PMTRACK_BACKEND_AUTO)
			break;
	}
	return want == PMTRACK_BACKEND_AUTO || pmtrack_backend_name(want)
		       ? -EOPNOTSUPP
		       : -EINVAL;
}

/* is another process @pid there, with memory, and may we read it? */
static int check_target(pid_t pid)
{
	uint64_t ent;
	ssize_t n;
	int fd = pmt_proc_open(pid, "pagemap", O_RDONLY);

	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	/* a process without memory (a zombie, one whose exec is dropping
	 * it) reads as nothing */
	n = pread(fd, &ent, sizeof(ent), 0);
	close(fd);
	return n == 0 ? -ESRCH : 0;
}

static int track_new(const struct pmtrack_opts *opts,
		     const struct pmt_uffd_how *how, struct pmtrack **out);

PMTRACK_API int pmtrack_new(const struct pmtrack_opts *opts,
			    struct pmtrack **out)
{
	struct pmt_uffd_how how = { .fd = -1 };

	return track_new(opts, &how, out);
}

int pmt_track_new(const struct pmtrack_opts *opts, int uffd,
		  struct pmtrack **out)
{
	struct pmt_uffd_how how = { .fd = uffd };

	return track_new(opts, &how, out);
}

int pmt_track_new_uffd(const struct pmtrack_opts *opts,
		       const struct pmt_uffd_how *how, struct pmtrack **out)
{
	return track_new(opts, how, out);
}

int pmt_track_uffd(const struct pmtrack *t)
{
	return t && t->ops && t->ops->id == PMTRACK_BACKEND_PAGEMAP_SCAN
		       ? t->uffd
		       : -1;
}

int pmt_adopt(struct pmtrack *t, void *addr, size_t len)
{
	int ret;

	if (!t || !t->uffd_ready)
		return -EINVAL;
	t->adopt = true;
	ret = pmtrack_watch(t, addr, len);
	t->adopt = false;
	return ret;
}

static int track_new(const struct pmtrack_opts *opts,
		     const struct pmt_uffd_how *how, struct pmtrack **out)
{
	int uffd = how->fd;
	pthread_rwlockattr_t attr;
	unsigned int batch = 0, require = 0;
	enum pmtrack_rearm rearm = PMTRACK_REARM_AUTO;
	struct pmtrack *t = NULL;
	const char *env;
	int ret = -EINVAL, pid = -1;

	/* from here on @uffd is ours: closed by pmtrack_free(), or here */
	if (out)
		*out = NULL;
	if (out && PMT_OPTS_VALID(opts, pmtrack_opts)) {
		batch = PMT_OPTS_GET(opts, scan_batch, 0u);
		require = PMT_OPTS_GET(opts, require, 0u);
		pid = PMT_OPTS_GET(opts, pid, 0);
		rearm = PMT_OPTS_GET(opts, rearm, PMTRACK_REARM_AUTO);
	}
	if (!batch)
		batch = PMT_SCAN_BATCH_DEFAULT;
	if (pid >= 0 && batch <= PMTRACK_SCAN_BATCH_MAX &&
	    !(require & ~PMTRACK_CAP_ALL) &&
	    (unsigned int)rearm <= PMTRACK_REARM_RANGE) {
		t = calloc(1, sizeof(*t));
		ret = -ENOMEM;
	}
	if (!t) {
		if (uffd >= 0)
			close(uffd);
		return ret;
	}
	t->pid = getpid();
	t->target = pid == t->pid ? 0 : pid;
	t->page_size = (size_t)sysconf(_SC_PAGESIZE);
	t->scan_batch = batch;
	t->rearm = rearm == PMTRACK_REARM_AUTO ? PMT_REARM_DEFAULT : rearm;
	t->pagemap_fd = t->uffd = t->maps_fd = t->clear_refs_fd = -1;
	t->uffd_given = uffd;
	t->uffd_ready = uffd >= 0 && how->ready;
	t->uffd_extra = how->features;
	/* prefer writers: a collector in a loop must not starve watch */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	ret = -pthread_rwlock_init(&t->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (ret) {
		if (uffd >= 0)
			close(uffd);
		free(t);
		return ret;
	}
	ret = t->target ? check_target(t->target) : 0;
	if (ret)
		goto fail;

	ret = pick_backend(t, PMT_OPTS_GET(opts, backend, PMTRACK_BACKEND_AUTO),
			   require);
	if (ret)
		goto fail;
	/* for tests of the fallbacks of older kernels:
	 * PMTRACK_NO_PROCMAP_QUERY=1 parses /proc/PID/maps (before 6.11),
	 * =smaps only ever reads /proc/PID/smaps (a file out of reach) */
	env = getenv("PMTRACK_NO_PROCMAP_QUERY");
	if (!env)
		t->maps_fd = pmt_proc_open(t->target, "maps", O_RDONLY);
	t->smaps_only = env && !strcmp(env, "smaps");
	*out = t;
	return 0;
fail:
	pmtrack_free(t);
	return ret;
}

PMTRACK_API void pmtrack_free(struct pmtrack *t)
{
	if (!t)
		return;
	if (t->ops)
		backend_close(t);
	if (t->uffd_given >= 0)
		close(t->uffd_given);
	if (t->maps_fd >= 0)
		close(t->maps_fd);
	pthread_rwlock_destroy(&t->lock);
	free(t->ranges);
	free(t);
}

PMTRACK_API enum pmtrack_backend pmtrack_backend(const struct pmtrack *t)
{
	return t ? t->ops->id : PMTRACK_BACKEND_AUTO;
}

PMTRACK_API unsigned int pmtrack_caps(const struct pmtrack *t)
{
	return t ? t->caps : 0;
}

PMTRACK_API enum pmtrack_rearm pmtrack_rearm(const struct pmtrack *t)
{
	return t ? t->rearm : PMTRACK_REARM_AUTO;
}

PMTRACK_API size_t pmtrack_granularity(const struct pmtrack *t)
{
	return t ? t->page_size : 0;
}

/* ---- argument checks and the range table -------------------------------- */

static int check_range(const struct pmtrack *t, const void *addr, size_t len,
		       uintptr_t *start, uintptr_t *end)
{
	uintptr_t a = (uintptr_t)addr;

	if (!t)
		return -EINVAL;
	if (getpid() != t->pid)
		return -ECHILD;
	if (!len || (a | len) & (t->page_size - 1))
		return -EINVAL;
	if (a + len < a)
		return -EOVERFLOW;
	*start = a;
	*end = a + len;
	return 0;
}

/* index of the first range whose end is above addr */
static size_t range_lookup(const struct pmtrack *t, uintptr_t addr)
{
	size_t lo = 0, hi = t->nranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->ranges[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Is [start, end) covered by watched ranges without a gap?  Sets *first to
 * the index of the range holding start.  Also checks that the ends are
 * aligned to the huge page size of the ranges they fall in.
 */
static int range_covered(const struct pmtrack *t, uintptr_t start,
			 uintptr_t end, size_t *first, bool aligned)
{
	size_t i = range_lookup(t, start);
	uintptr_t at = start;

	*first = i;
	for (; i < t->nranges && at < end; i++) {
		const struct pmt_range *r = &t->ranges[i];

		if (r->start > at)
			return -ENOENT;
		if (aligned && at == start && (start - r->start) % r->align)
			return -EINVAL;
		if (aligned && end <= r->end && (r->end - end) % r->align)
			return -EINVAL;
		at = r->end;
	}
	return at >= end ? 0 : -ENOENT;
}

/*
 * Take the locks (write for changes to the table or protections) and check
 * that [start, end) is watched; the locks are held whatever the answer, for
 * unlock_ranges().
 */
static int lock_covered(struct pmtrack *t, uintptr_t start, uintptr_t end,
			bool write, bool aligned, size_t *first)
{
	outer_lock(t);
	if (write)
		pthread_rwlock_wrlock(&t->lock);
	else
		pthread_rwlock_rdlock(&t->lock);
	return range_covered(t, start, end, first, aligned);
}

static void unlock_ranges(struct pmtrack *t)
{
	pthread_rwlock_unlock(&t->lock);
	outer_unlock(t);
}

/* work on watched [start, end), whose first range is at index @first */
typedef int (*span_fn)(struct pmtrack *t, uintptr_t start, uintptr_t end,
		       size_t first, void *arg);

/*
 * Check the caller's [addr, addr + len), take the locks (write for changes
 * to the table or protections) and, if it is watched with its ends on its
 * ranges' huge-page boundaries, run @fn on it; then unlock.
 */
static int on_watched(struct pmtrack *t, void *addr, size_t len, bool write,
		      span_fn fn, void *arg)
{
	uintptr_t start, end;
	size_t first;
	int ret = check_range(t, addr, len, &start, &end);

	if (ret)
		return ret;
	ret = lock_covered(t, start, end, write, true, &first);
	if (!ret)
		ret = fn(t, start, end, first, arg);
	unlock_ranges(t);
	return ret;
}

static int ranges_reserve(struct pmtrack *t, size_t more)
{
	struct pmt_range *n;
	size_t cap;

	if (t->nranges + more <= t->cap_ranges)
		return 0;
	cap = t->cap_ranges ? t->cap_ranges * 2 : 16;
	while (cap < t->nranges + more)
		cap *= 2;
	n = realloc(t->ranges, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	t->ranges = n;
	t->cap_ranges = cap;
	return 0;
}

PMTRACK_API int pmtrack_watch(struct pmtrack *t, void *addr, size_t len)
{
	struct pmt_vma_span span;
	struct pmt_range nr;
	uintptr_t start, end;
	size_t i;
	int ret;

	ret = check_range(t, addr, len, &start, &end);
	if (ret)
		return ret;

	outer_lock(t);
	pthread_rwlock_wrlock(&t->lock);
	i = range_lookup(t, start);
	if (i < t->nranges && t->ranges[i].start < end) {
		ret = -EEXIST;
		goto out;
	}
	ret = pmt_vma_check(t, start, end, &span);
	if (ret)
		goto out;
	/* one page size per range (hugetlb and other memory are watched
	 * separately), and no huge page cut in two */
	if (span.min_page_size != span.max_page_size ||
	    (start | end) & (span.max_page_size - 1)) {
		ret = -EINVAL;
		goto out;
	}
	/* PAGEMAP_SCAN write-protects hugetlb entries only when they are
	 * PMD-sized (it compares with HPAGE_SIZE): larger ones, like 1 GiB
	 * pages, would be skipped without a word on current kernels */
	if (span.max_page_size > t->page_size * (t->page_size / 8)) {
		ret = -EOPNOTSUPP;
		goto out;
	}
	ret = ranges_reserve(t, 1);
	if (ret)
		goto out;
	nr = (struct pmt_range){ .start = start,
				 .end = end,
				 .align = span.max_page_size,
				 .shared = span.any_shared };
	ret = t->ops->watch(t, &nr, &span);
	if (ret)
		goto out;
	memmove(&t->ranges[i + 1], &t->ranges[i],
		(t->nranges - i) * sizeof(*t->ranges));
	t->ranges[i] = nr;
	t->nranges++;
out:
	unlock_ranges(t);
	return ret;
}

/* Unwatch [start, end) within range i; the table stays consistent. */
static int unwatch_one(struct pmtrack *t, size_t i, uintptr_t start,
		       uintptr_t end)
{
	struct pmt_range *r = &t->ranges[i];
	struct pmt_range head = *r, tail = *r;
	size_t keep;
	int ret;

	if (start < r->start)
		start = r->start;
	if (end > r->end)
		end = r->end;
	head.end = start;
	tail.start = end;
	head.sb = tail.sb = NULL;
	ret = t->ops->unwatch(t, r, start, end, &head, &tail);
	if (ret)
		return ret;
	keep = (size_t)(head.end > head.start) +
	       (size_t)(tail.end > tail.start);
	if (keep == 2) {
		/* room was reserved by the caller */
		memmove(&t->ranges[i + 2], &t->ranges[i + 1],
			(t->nranges - i - 1) * sizeof(*t->ranges));
		t->nranges++;
		t->ranges[i] = head;
		t->ranges[i + 1] = tail;
	} else if (keep == 1) {
		t->ranges[i] = head.end > head.start ? head : tail;
	} else {
		memmove(&t->ranges[i], &t->ranges[i + 1],
			(t->nranges - i - 1) * sizeof(*t->ranges));
		t->nranges--;
	}
	return 0;
}

static int unwatch_span(struct pmtrack *t, uintptr_t start, uintptr_t end,
			size_t i, void *arg)
{
	int ret = ranges_reserve(t, 1);

	(void)arg;
	if (ret)
		return ret;
	/* each call leaves the range it worked on at i (a head) or removes
	 * it; only the last one can leave a tail */
	while (i < t->nranges && t->ranges[i].start < end) {
		bool head = t->ranges[i].start < start;

		ret = unwatch_one(t, i, start, end);
		if (ret)
			break;
		if (head)
			i++;
	}
	return ret;
}

PMTRACK_API int pmtrack_unwatch(struct pmtrack *t, void *addr, size_t len)
{
	return on_watched(t, addr, len, true, unwatch_span, NULL);
}

/* ---- collecting --------------------------------------------------------- */

/*
 * A reset of part of a hugetlb page is impossible (the kernel write-protects
 * whole huge pages and silently backs out of a partial one), so a reset
 * collect into a page array goes range by range and, in hugetlb ranges,
 * takes only whole huge pages' worth of the remaining capacity.
 */
static int collect_split(struct pmtrack *t, struct pmt_collect *c, size_t i)
{
	uintptr_t start = c->start, end = c->end;
	int ret = 0;

	for (; i < t->nranges && t->ranges[i].start < end; i++) {
		const struct pmt_range *r = &t->ranges[i];
		size_t per = r->align / t->page_size, left = c->pages_left;
		size_t limit = left / per * per;

		c->start = r->start > start ? r->start : start;
		c->end = r->end < end ? r->end : end;
		if (!limit) {
			/* no room for a huge page: skip clean ones, stop
			 * before the first written one, or fail if that
			 * means no progress at all */
			uintptr_t w;

			ret = t->ops->first_written(t, c->start, c->end, i, &w);
			if (ret)
				break;
			c->next = w;
			if (w == c->end)
				continue;
			if (w == start)
				ret = -ENOSPC;
			break;
		}
		c->pages_left = limit;
		ret = t->ops->collect(t, c, i);
		c->pages_left = left - (limit - c->pages_left);
		if (ret || c->next < c->end)
			break;
	}
	c->start = start;
	c->end = end;
	return ret;
}

static bool has_huge(const struct pmtrack *t, size_t i, uintptr_t end)
{
	for (; i < t->nranges && t->ranges[i].start < end; i++)
		if (t->ranges[i].align != t->page_size)
			return true;
	return false;
}

static int collect_span(struct pmtrack *t, uintptr_t start, uintptr_t end,
			size_t first, void *arg)
{
	struct pmt_collect *c = arg;

	c->start = start;
	c->end = end;
	c->started = true;
	if (c->reset && c->pages_left != SIZE_MAX && has_huge(t, first, end))
		return collect_split(t, c, first);
	return t->ops->collect(t, c, first);
}

/* @t is not NULL */
static int collect(struct pmtrack *t, void *addr, size_t len,
		   unsigned int flags, struct pmt_collect *c)
{
	int ret;

	if (flags & ~PMTRACK_COLLECT_RESET)
		return -EINVAL;
	c->reset = flags & PMTRACK_COLLECT_RESET;
	c->last_end = 0;
	c->pages = 0;
	ret = on_watched(t, addr, len, false, collect_span, c);
	pmt_stat_add(&t->st.pages_reported, c->pages);
	if (!ret)
		pmt_stat_add(&t->st.collects, 1);
	return ret;
}

struct pmtrack_bitmap {
	uintptr_t addr;
	size_t npages;
	size_t nset;
	unsigned int page_shift;
	uint64_t *words;
	size_t cap_words;
};

static void sink_bitmap(struct pmt_collect *c, uintptr_t s, uintptr_t e)
{
	struct pmtrack_bitmap *bm = c->sink;
	size_t n = (e - s) >> bm->page_shift;

	pmt_bits_set(bm->words, (s - bm->addr) >> bm->page_shift, n);
	bm->nset += n;
	c->pages += n;
	c->last_end = e;
}

struct array_sink {
	void *out;
	size_t n;
	size_t page_size;
};

static void sink_pages(struct pmt_collect *c, uintptr_t s, uintptr_t e)
{
	struct array_sink *a = c->sink;
	void **pages = a->out;

	size_t n = (e - s) / a->page_size;

	for (; s < e; s += a->page_size)
		pages[a->n++] = (void *)s;
	c->pages += n;
	c->pages_left -= n;
	c->last_end = e;
}

static void sink_runs(struct pmt_collect *c, uintptr_t s, uintptr_t e)
{
	struct array_sink *a = c->sink;
	struct pmtrack_run *runs = a->out;

	c->pages += (e - s) / a->page_size;
	if (a->n && c->last_end == s) {
		runs[a->n - 1].len += e - s;
	} else {
		runs[a->n].addr = (void *)s;
		runs[a->n].len = e - s;
		a->n++;
		c->runs_left--;
	}
	c->last_end = e;
}

static unsigned int page_shift(size_t ps)
{
	return (unsigned int)__builtin_ctzl(ps);
}

PMTRACK_API int pmtrack_bitmap_new(struct pmtrack_bitmap **out)
{
	if (!out)
		return -EINVAL;
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

PMTRACK_API void pmtrack_bitmap_free(struct pmtrack_bitmap *bm)
{
	if (!bm)
		return;
	free(bm->words);
	free(bm);
}

PMTRACK_API int pmtrack_collect_bitmap(struct pmtrack *t, void *addr,
				       size_t len, unsigned int flags,
				       struct pmtrack_bitmap *bm)
{
	struct pmt_collect c = {
		.pages_left = SIZE_MAX,
		.runs_left = SIZE_MAX,
		.emit = sink_bitmap,
		.sink = bm,
	};
	size_t npages, nwords;

	uintptr_t s, e;
	int ret;

	if (!t || !bm || flags & ~PMTRACK_COLLECT_RESET)
		return -EINVAL;
	ret = check_range(t, addr, len, &s, &e);
	if (ret)
		return ret;
	npages = len / t->page_size;
	nwords = pmt_nwords(npages);
	/* allocate before scanning: a reset page must never be dropped */
	if (nwords > bm->cap_words) {
		uint64_t *w = realloc(bm->words, nwords * sizeof(*w));

		if (!w)
			return -ENOMEM;
		bm->words = w;
		bm->cap_words = nwords;
	}
	if (nwords)
		memset(bm->words, 0, nwords * sizeof(*bm->words));
	bm->addr = (uintptr_t)addr;
	bm->npages = npages;
	bm->nset = 0;
	bm->page_shift = page_shift(t->page_size);
	return collect(t, addr, len, flags, &c);
}

/* the two array outputs: @count limits pages (sink_pages) or runs */
static int collect_array(struct pmtrack *t, void *addr, size_t len,
			 unsigned int flags, void *out, size_t *count,
			 void **next, pmt_emit_fn emit)
{
	struct array_sink a = { .out = out };
	struct pmt_collect c = {
		.pages_left = SIZE_MAX,
		.runs_left = SIZE_MAX,
		.emit = emit,
		.sink = &a,
	};
	int ret;

	if (!t || !out || !count || !*count)
		return -EINVAL;
	a.page_size = t->page_size;
	if (emit == sink_pages)
		c.pages_left = *count;
	else
		c.runs_left = *count;
	ret = collect(t, addr, len, flags, &c);
	*count = a.n;
	if (next && c.started)
		*next = (void *)c.next;
	return ret;
}

PMTRACK_API int pmtrack_collect_pages(struct pmtrack *t, void *addr, size_t len,
				      unsigned int flags, void **pages,
				      size_t *count, void **next)
{
	return collect_array(t, addr, len, flags, pages, count, next,
			     sink_pages);
}

PMTRACK_API int pmtrack_collect_runs(struct pmtrack *t, void *addr, size_t len,
				     unsigned int flags,
				     struct pmtrack_run *runs, size_t *count,
				     void **next)
{
	return collect_array(t, addr, len, flags, runs, count, next, sink_runs);
}

static int reset_span(struct pmtrack *t, uintptr_t start, uintptr_t end,
		      size_t first, void *arg)
{
	(void)arg;
	return t->ops->reset(t, start, end, first);
}

PMTRACK_API int pmtrack_reset(struct pmtrack *t, void *addr, size_t len)
{
	int ret = on_watched(t, addr, len, false, reset_span, NULL);

	if (!ret)
		pmt_stat_add(&t->st.resets, 1);
	return ret;
}

static int protect_span(struct pmtrack *t, uintptr_t start, uintptr_t end,
			size_t first, void *arg)
{
	int prot = *(const int *)arg, ret = 0;

	for (size_t i = first;
	     !ret && i < t->nranges && t->ranges[i].start < end; i++) {
		struct pmt_range *r = &t->ranges[i];
		uintptr_t s = start > r->start ? start : r->start;
		uintptr_t e = end < r->end ? end : r->end;

		if (t->ops->protect)
			ret = t->ops->protect(t, r, s, e, prot);
		else if (mprotect((void *)s, e - s, prot))
			ret = -errno;
	}
	return ret;
}

int pmt_protect(struct pmtrack *t, void *addr, size_t len, int prot)
{
	return on_watched(t, addr, len, true, protect_span, &prot);
}

PMTRACK_API int pmtrack_prepare_kernel_write(struct pmtrack *t, void *addr,
					     size_t len)
{
	uintptr_t a = (uintptr_t)addr, start, end;
	size_t first;
	int ret;

	if (!t)
		return -EINVAL;
	if (getpid() != t->pid)
		return -ECHILD;
	if (!len)
		return -EINVAL;
	if (a + len < a)
		return -EOVERFLOW;
	start = a & ~(uintptr_t)(t->page_size - 1);
	end = (a + len + t->page_size - 1) & ~(uintptr_t)(t->page_size - 1);
	if (end < start)
		return -EOVERFLOW;
	ret = lock_covered(t, start, end, false, false, &first);
	/* only backends that arm pages and cannot trap kernel faults */
	if (!ret && t->ops->unarm && !(t->caps & PMTRACK_CAP_KERNEL_WRITES))
		ret = pmt_sb_prepare(t, start, end, first);
	unlock_ranges(t);
	return ret;
}

/* ---- bitmap accessors --------------------------------------------------- */

PMTRACK_API void *pmtrack_bitmap_addr(const struct pmtrack_bitmap *bm)
{
	return bm ? (void *)bm->addr : NULL;
}

PMTRACK_API size_t pmtrack_bitmap_npages(const struct pmtrack_bitmap *bm)
{
	return bm ? bm->npages : 0;
}

PMTRACK_API size_t pmtrack_bitmap_count(const struct pmtrack_bitmap *bm)
{
	return bm ? bm->nset : 0;
}

PMTRACK_API int pmtrack_bitmap_test(const struct pmtrack_bitmap *bm, size_t idx)
{
	if (!bm || idx >= bm->npages)
		return 0;
	return pmt_bit_test(bm->words, idx);
}

PMTRACK_API size_t pmtrack_bitmap_next(const struct pmtrack_bitmap *bm,
				       size_t from)
{
	if (!bm)
		return 0;
	return (size_t)pmt_bits_next(bm->words, bm->npages, from);
}

PMTRACK_API const uint64_t *
pmtrack_bitmap_words(const struct pmtrack_bitmap *bm, size_t *nwords)
{
	if (nwords)
		*nwords = bm ? pmt_nwords(bm->npages) : 0;
	return bm ? bm->words : NULL;
}

/* ---- statistics --------------------------------------------------------- */

PMTRACK_API int pmtrack_get_stats(const struct pmtrack *t,
				  struct pmtrack_stats *st)
{
	struct pmtrack_stats s = { 0 };

	if (!t)
		return -EINVAL;
	s.collects =
		atomic_load_explicit(&t->st.collects, memory_order_relaxed);
	s.resets = atomic_load_explicit(&t->st.resets, memory_order_relaxed);
	s.pages_reported = atomic_load_explicit(&t->st.pages_reported,
						memory_order_relaxed);
	s.scans = atomic_load_explicit(&t->st.scans, memory_order_relaxed);
	s.scan_ns = atomic_load_explicit(&t->st.scan_ns, memory_order_relaxed);
	s.injections =
		atomic_load_explicit(&t->st.injections, memory_order_relaxed);
	s.inject_stop_ns = t->inject_ns;
	return pmt_stats_out(st, &s, sizeof(s));
}

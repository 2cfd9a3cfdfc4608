// SPDX-License-Identifier: MIT
/*
 * The remote dump's region table of one image (rdtable.h): the writable
 * mappings of the target, which pages of each exist (the page-state maps:
 * shared memory is looked up in its object, so its swapped-out pages
 * count), and which pages the image sends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <pmtrack/stream.h>

#include "bits.h"
#include "rdtable.h"

/* room for one more element of @sz bytes in *@v */
static int grow(void **v, size_t *cap, size_t n, size_t sz)
{
	size_t c = *cap ? *cap * 2 : 256;
	void *p;

	if (n < *cap)
		return 0;
	p = realloc(*v, c * sz);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

static int run_push(struct rd_run **v, size_t *n, size_t *cap, uint64_t s,
		    uint64_t e)
{
	if (*n && (*v)[*n - 1].end == s) {
		(*v)[*n - 1].end = e;
		return 0;
	}
	if (grow((void **)v, cap, *n, sizeof(**v)))
		return -ENOMEM;
	(*v)[(*n)++] = (struct rd_run){ s, e };
	return 0;
}

/* pages [@s, @e) of shared mapping @m, written by another process */
static int obj_push(struct rd_collect *c, const struct pmtrack_mapping *m,
		    uint64_t s, uint64_t e)
{
	struct rd_objrun o = { .inode = m->inode,
			       .start = m->offset + (s - m->start),
			       .end = m->offset + (e - m->start),
			       .major = m->dev_major,
			       .minor = m->dev_minor };
	struct rd_objrun *l = c->nobj ? &c->obj[c->nobj - 1] : NULL;

	if (l && l->inode == o.inode && l->major == o.major &&
	    l->minor == o.minor && l->end == o.start) {
		l->end = o.end;
		return 0;
	}
	if (grow((void **)&c->obj, &c->capobj, c->nobj, sizeof(o)))
		return -ENOMEM;
	c->obj[c->nobj++] = o;
	return 0;
}

int rd_collect_fn(void *arg, const struct pmtrack_proc_report *r)
{
	struct rd_collect *c = arg;
	const struct pmtrack_mapping *m = r->map;
	int err = 0;

	if (r->pid != c->root) {
		/* only what it wrote into memory it shares with the root */
		if (!(m->flags & PMTRACK_MAP_SHARED))
			return 0;
		for (size_t i = 0; i < r->nruns && !err; i++)
			err = obj_push(c, m, r->runs[i].start, r->runs[i].end);
		return err;
	}
	if (r->flags & PMTRACK_PROC_EXEC)
		c->exec = true;
	if (r->flags & PMTRACK_PROC_EXITED)
		return 0; /* its memory is gone */
	if (r->flags & PMTRACK_PROC_FULL)
		return run_push(&c->full, &c->nfull, &c->capfull, m->start,
				m->end);
	for (size_t i = 0; i < r->nruns && !err; i++)
		err = run_push(&c->w, &c->nw, &c->capw, r->runs[i].start,
			       r->runs[i].end);
	return err;
}

void rd_collect_free(struct rd_collect *c)
{
	free(c->w);
	free(c->full);
	free(c->obj);
	c->w = c->full = NULL;
	c->obj = NULL;
	c->nw = c->capw = c->nfull = c->capfull = c->nobj = c->capobj = 0;
}

/* ---- the table ---------------------------------------------------------- */

static bool dumped(const struct pmtrack_mapping *m)
{
	return m->prot & PROT_WRITE && !(m->flags & PMTRACK_MAP_SPECIAL);
}

bool rd_file_backed(const struct pmtrack_mapping *m)
{
	return !(m->flags & PMTRACK_MAP_ANON) &&
	       !(m->flags & PMTRACK_MAP_SHMEM && m->flags & PMTRACK_MAP_SHARED);
}

static int region_init(struct rd_region *r, const struct pmtrack_mapping *m,
		       uint64_t pgsz)
{
	size_t w;

	r->m = *m;
	r->m.name = strndup(m->name ? m->name : "", PMTRACK_STREAM_NAME_MAX);
	r->pages = (m->end - m->start) / pgsz;
	w = bits_words(r->pages);
	r->exist = calloc(w, sizeof(uint64_t));
	r->dirty = calloc(w, sizeof(uint64_t));
	r->retry = calloc(w, sizeof(uint64_t));
	r->sub = calloc(w, sizeof(uint64_t));
	r->swapped = calloc(w, sizeof(uint64_t));
	r->subswap = calloc(w, sizeof(uint64_t));
	if (rd_file_backed(m) && !(r->file = calloc(w, sizeof(uint64_t))))
		return -ENOMEM;
	if (!r->m.name || !r->exist || !r->dirty || !r->retry || !r->sub ||
	    !r->swapped || !r->subswap)
		return -ENOMEM;
	return 0;
}

/*
 * The pages of @r that exist: present or swapped (shared memory's objects
 * consulted), and in a private mapping unsure too (swapped or never
 * populated: reading one that was never populated costs a zero page, not
 * an allocation).  In a file mapping, the others are the file's.  @tmp:
 * a scratch bitmap of the region's words.
 */
static int region_exist(struct pmtrack_pstate *ps, struct rd_region *r,
			uint64_t *tmp)
{
	uint64_t *bits[PMTRACK_PAGE_NSTATES] = { 0 };
	uint64_t *sw = r->swapped, *un = tmp;
	bool priv = !(r->m.flags & PMTRACK_MAP_SHARED);
	int err;

	bits[__builtin_ctz(PMTRACK_PAGE_PRESENT)] = r->exist;
	bits[__builtin_ctz(PMTRACK_PAGE_SWAPPED)] = sw;
	bits[__builtin_ctz(PMTRACK_PAGE_UNSURE)] = un;
	err = pmtrack_pstate_bitmaps(ps, r->m.start, r->m.end,
				     PMTRACK_PAGE_PRESENT |
					     PMTRACK_PAGE_SWAPPED |
					     PMTRACK_PAGE_UNSURE,
				     bits);
	if (err)
		return err;
	for (size_t i = 0; i < bits_words(r->pages); i++) {
		r->exist[i] |= sw[i] | (priv ? un[i] : 0);
		if (r->file)
			r->file[i] = ~r->exist[i];
	}
	if (r->file && r->pages % 64)
		r->file[r->pages / 64] &= bits_mask(0, r->pages % 64);
	return 0;
}

int rd_table_read(struct pmtrack_pstate *ps, uint64_t pgsz, struct rd_table *t)
{
	const struct pmtrack_mapping *maps;
	size_t n, k = 0, maxw = 0;
	uint64_t *tmp = NULL;
	int err;

	memset(t, 0, sizeof(*t));
	err = pmtrack_pstate_maps(ps, &maps, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		size_t w = bits_words((maps[i].end - maps[i].start) / pgsz);

		k += dumped(&maps[i]);
		maxw = dumped(&maps[i]) && w > maxw ? w : maxw;
	}
	if (k > PMTRACK_STREAM_MAX_REGIONS)
		return -E2BIG;
	t->r = calloc(k ? k : 1, sizeof(*t->r));
	tmp = malloc((maxw ? maxw : 1) * sizeof(uint64_t));
	err = t->r && tmp ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && !err; i++)
		if (dumped(&maps[i]))
			err = region_init(&t->r[t->n++], &maps[i], pgsz);
	for (size_t i = 0; i < t->n && !err; i++)
		err = region_exist(ps, &t->r[i], tmp);
	free(tmp);
	if (err)
		rd_table_free(t);
	return err;
}

void rd_table_free(struct rd_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct rd_region *r = &t->r[i];

		free((char *)r->m.name);
		free(r->exist);
		free(r->dirty);
		free(r->retry);
		free(r->sub);
		free(r->swapped);
		free(r->subswap);
		free(r->file);
	}
	free(t->r);
	t->r = NULL;
	t->n = 0;
}

/* ---- what each region sends --------------------------------------------- */

/* the first of @n runs (ascending) that ends after @a */
static size_t run_after(const struct rd_run *v, size_t n, uint64_t a)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].end > a)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* the first region of @t that ends after @a */
static size_t region_after(const struct rd_table *t, uint64_t a)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->r[mid].m.end > a)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static bool any_overlap(const struct rd_run *v, size_t n,
			const struct rd_region *r)
{
	size_t j = run_after(v, n, r->m.start);

	return j < n && v[j].start < r->m.end;
}

/* Did the regions of @prev cover all of @r's addresses? */
static bool covered(const struct rd_table *prev, const struct rd_region *r)
{
	uint64_t pos = r->m.start;

	for (size_t j = region_after(prev, pos);
	     j < prev->n && prev->r[j].m.start <= pos && pos < r->m.end; j++)
		pos = prev->r[j].m.end;
	return pos >= r->m.end;
}

/* set in @r->dirty the pages of the runs @v[@n] */
static void mark_runs(struct rd_region *r, const struct rd_run *v, size_t n,
		      uint64_t pgsz)
{
	for (size_t j = run_after(v, n, r->m.start);
	     j < n && v[j].start < r->m.end; j++) {
		uint64_t a = v[j].start > r->m.start ? v[j].start : r->m.start;
		uint64_t b = v[j].end < r->m.end ? v[j].end : r->m.end;

		bits_set(r->dirty, (a - r->m.start) / pgsz,
			 (b - r->m.start + pgsz - 1) / pgsz);
	}
}

/* set in @r->dirty (a shared mapping) what other processes wrote into the
   same object */
static void mark_obj(struct rd_region *r, const struct rd_collect *c,
		     uint64_t pgsz)
{
	uint64_t off = r->m.offset, end = off + (r->m.end - r->m.start);

	for (size_t j = 0; j < c->nobj; j++) {
		const struct rd_objrun *o = &c->obj[j];
		uint64_t a = o->start > off ? o->start : off;
		uint64_t b = o->end < end ? o->end : end;

		if (o->inode != r->m.inode || o->major != r->m.dev_major ||
		    o->minor != r->m.dev_minor || a >= b)
			continue;
		bits_set(r->dirty, (a - off) / pgsz,
			 (b - off + pgsz - 1) / pgsz);
	}
}

/* the pages to retry into @r->dirty and the pages that existed into
   @r->sub, from the regions of @prev over @r's addresses */
static void from_prev(struct rd_region *r, const struct rd_table *prev,
		      uint64_t pgsz)
{
	for (size_t j = region_after(prev, r->m.start);
	     j < prev->n && prev->r[j].m.start < r->m.end; j++) {
		const struct rd_region *p = &prev->r[j];
		uint64_t a = p->m.start > r->m.start ? p->m.start : r->m.start;
		uint64_t b = p->m.end < r->m.end ? p->m.end : r->m.end;
		uint64_t d = (a - r->m.start) / pgsz,
			 s = (a - p->m.start) / pgsz;

		bits_or_from(r->dirty, d, p->retry, s, p->pages,
			     (b - a) / pgsz);
		bits_or_from(r->sub, d, p->exist, s, p->pages, (b - a) / pgsz);
	}
}

static int run_cmp(const void *a, const void *b)
{
	const struct rd_run *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

void rd_table_mark(struct rd_table *t, const struct rd_table *prev,
		   struct rd_collect *c, uint64_t pgsz)
{
	/* qsort() wants an array even for no elements */
	if (c->nw)
		qsort(c->w, c->nw, sizeof(*c->w), run_cmp);
	if (c->nfull)
		qsort(c->full, c->nfull, sizeof(*c->full), run_cmp);
	for (size_t i = 0; i < t->n; i++) {
		struct rd_region *r = &t->r[i];
		size_t w = bits_words(r->pages);

		r->fresh = !prev || any_overlap(c->full, c->nfull, r) ||
			   !covered(prev, r);
		if (r->fresh) {
			for (size_t k = 0; k < w; k++)
				r->dirty[k] = r->exist[k] |
					      (r->file ? r->file[k] : 0);
			continue;
		}
		mark_runs(r, c->w, c->nw, pgsz);
		if (r->m.flags & PMTRACK_MAP_SHARED)
			mark_obj(r, c, pgsz);
		from_prev(r, prev, pgsz);
		/* written or to retry, if they exist; and the pages that
		   ceased to exist (zero now, or the file's) or came to */
		for (size_t k = 0; k < w; k++) {
			r->dirty[k] = (r->dirty[k] & r->exist[k]) |
				      (r->exist[k] ^ r->sub[k]);
			r->sub[k] = 0;
		}
	}
}

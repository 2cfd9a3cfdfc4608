// SPDX-License-Identifier: MIT
/*
 * Page sums: a 128-bit hash per page of what a stream put there, kept as
 * pages are encoded or decoded, and their sum, the state digest that END
 * carries.  See docs/verification.md for why comparing two sums proves
 * that the receiver holds exactly what was sent.
 *
 * An entry is XXH3-128 of (region index, page index, XXH3-128 of the page)
 * with its lowest bit set, so that 0 means "never sent".  The state is the
 * sum of the entries modulo 2^128: replacing a page's entry subtracts the
 * old one and adds the new, O(1) per page.  Entries live in chunks of 4,096
 * (64 KiB) allocated on first use, so a table costs what was sent, at most
 * 16 bytes per 4 KiB page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <pmtrack/stream.h>

#include "pagesums.h"

#define CHUNK_SHIFT 12
#define CHUNK (1u << CHUNK_SHIFT)
#define AUDIT_THREADS_MAX 64

struct ps_entry {
	uint64_t lo, hi;
};

struct ps_region {
	uint64_t length;
	uint64_t pages;
	uint32_t id;
	size_t nchunks;
	struct ps_entry **chunk;
};

struct pmtrack_pagesums {
	size_t ps;
	size_t n;
	struct ps_region *rg;
	struct ps_entry state;
	XXH128_hash_t zero; /* XXH3-128 of a zero page */
	size_t used, limit; /* bytes of chunks and directories; 0 = none */
	uint64_t known;
	bool valid;	    /* every entry is what its stream sent */
	bool has_last;
	uint8_t last_id[PMTRACK_STREAM_ID_LEN];
};

int pmtrack_pagesums_new(struct pmtrack_pagesums **out)
{
	struct pmtrack_pagesums *s;

	if (!out)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*out = s;
	return 0;
}

/* Unbind: every chunk and directory freed (a directory may be missing
   after a bind that failed part-way). */
static void ps_drop(struct pmtrack_pagesums *s)
{
	for (size_t i = 0; s->rg && i < s->n; i++) {
		for (size_t c = 0; s->rg[i].chunk && c < s->rg[i].nchunks; c++)
			free(s->rg[i].chunk[c]);
		free(s->rg[i].chunk);
	}
	free(s->rg);
	s->rg = NULL;
	s->n = 0;
	s->used = 0;
}

void pmtrack_pagesums_free(struct pmtrack_pagesums *s)
{
	if (!s)
		return;
	ps_drop(s);
	free(s);
}

void pmt_ps_set_limit(struct pmtrack_pagesums *s, size_t limit)
{
	s->limit = limit;
}

static int ps_charge(struct pmtrack_pagesums *s, size_t n)
{
	if (s->limit && (n > s->limit || s->used > s->limit - n))
		return -E2BIG;
	s->used += n;
	return 0;
}

/* Is @s bound to exactly this table? */
static bool ps_same(const struct pmtrack_pagesums *s,
		    const struct pmtrack_stream_region *r, size_t n, size_t ps)
{
	if (s->n != n || s->ps != ps)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s->rg[i].id != r[i].id || s->rg[i].length != r[i].length)
			return false;
	return true;
}

/* Forget every entry; the table stays bound. */
static void ps_clear(struct pmtrack_pagesums *s)
{
	for (size_t i = 0; i < s->n; i++)
		for (size_t c = 0; c < s->rg[i].nchunks; c++) {
			if (s->rg[i].chunk[c])
				s->used -= CHUNK * sizeof(struct ps_entry);
			free(s->rg[i].chunk[c]);
			s->rg[i].chunk[c] = NULL;
		}
	s->state = (struct ps_entry){ 0, 0 };
	s->known = 0;
	s->valid = true;
	s->has_last = false;
}

/* The directories of table @r[0..n), and a zero page's hash. */
static int ps_alloc(struct pmtrack_pagesums *s,
		    const struct pmtrack_stream_region *r, size_t n, size_t ps)
{
	uint8_t page[64] = { 0 };
	XXH3_state_t *st;

	s->rg = calloc(n, sizeof(*s->rg));
	if (!s->rg)
		return -ENOMEM;
	s->n = n;
	s->ps = ps;
	for (size_t i = 0; i < n; i++) {
		struct ps_region *g = &s->rg[i];
		size_t nchunks = (size_t)((r[i].length / ps + CHUNK - 1) >>
					  CHUNK_SHIFT);

		g->id = r[i].id;
		g->length = r[i].length;
		g->pages = r[i].length / ps;
		if (ps_charge(s, nchunks * sizeof(void *)))
			return -E2BIG;
		g->chunk = calloc(nchunks, sizeof(*g->chunk));
		if (!g->chunk)
			return -ENOMEM;
		g->nchunks = nchunks;
	}
	/* a zero page's hash, fed in pieces: no page-sized buffer */
	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_128bits_reset(st);
	for (size_t off = 0; off < ps; off += sizeof(page))
		XXH3_128bits_update(st, page, sizeof(page));
	s->zero = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	return 0;
}

int pmt_ps_bind(struct pmtrack_pagesums *s,
		const struct pmtrack_stream_region *r, size_t n, size_t ps,
		bool fresh)
{
	if (s->n && !ps_same(s, r, n, ps)) {
		if (!fresh)
			return -EINVAL;
		ps_drop(s);
	}
	if (!s->n) {
		int err = ps_alloc(s, r, n, ps);

		if (err) {
			/* bound to nothing, as before */
			ps_drop(s);
			return err;
		}
		fresh = true;
	}
	if (fresh)
		ps_clear(s);
	return 0;
}

bool pmt_ps_follows(const struct pmtrack_pagesums *s, const uint8_t *parent)
{
	return s->valid && s->has_last &&
	       !memcmp(s->last_id, parent, PMTRACK_STREAM_ID_LEN);
}

void pmt_ps_ended(struct pmtrack_pagesums *s, const uint8_t *id)
{
	memcpy(s->last_id, id, PMTRACK_STREAM_ID_LEN);
	s->has_last = true;
}

int pmtrack_pagesums_resume(struct pmtrack_pagesums *s, const uint8_t *id)
{
	if (!s || !id)
		return -EINVAL;
	if (!s->n || !s->valid)
		return -ENODATA;
	pmt_ps_ended(s, id);
	return 0;
}

void pmt_ps_invalidate(struct pmtrack_pagesums *s)
{
	s->valid = false;
	s->has_last = false;
}

bool pmt_ps_valid(const struct pmtrack_pagesums *s)
{
	return s->n && s->valid;
}

static struct ps_entry entry_of(uint32_t region, uint64_t page,
				XXH128_hash_t h)
{
	uint8_t in[32];
	XXH128_hash_t t;

	pmt_put_le64(in, region);
	pmt_put_le64(in + 8, page);
	pmt_put_le64(in + 16, h.low64);
	pmt_put_le64(in + 24, h.high64);
	t = XXH3_128bits(in, sizeof(in));
	return (struct ps_entry){ t.low64 | 1, t.high64 };
}

static void add(struct ps_entry *a, struct ps_entry b)
{
	uint64_t lo = a->lo + b.lo;

	a->hi += b.hi + (lo < a->lo);
	a->lo = lo;
}

static void sub(struct ps_entry *a, struct ps_entry b)
{
	uint64_t lo = a->lo - b.lo;

	a->hi -= b.hi + (lo > a->lo);
	a->lo = lo;
}

/* the entry of (@region, @page), its chunk allocated; NULL = over limit */
static struct ps_entry *slot(struct pmtrack_pagesums *s, uint32_t region,
			     uint64_t page)
{
	struct ps_region *g = &s->rg[region];
	struct ps_entry **c = &g->chunk[page >> CHUNK_SHIFT];

	if (!*c) {
		if (ps_charge(s, CHUNK * sizeof(**c)))
			return NULL;
		*c = calloc(CHUNK, sizeof(**c));
		if (!*c) {
			s->used -= CHUNK * sizeof(**c);
			return NULL;
		}
	}
	return &(*c)[page & (CHUNK - 1)];
}

static int put(struct pmtrack_pagesums *s, uint32_t region, uint64_t page,
	       XXH128_hash_t h)
{
	struct ps_entry *e = slot(s, region, page), v;

	if (!e) {
		pmt_ps_invalidate(s);
		return s->limit ? -E2BIG : -ENOMEM;
	}
	v = entry_of(region, page, h);
	if (e->lo)
		sub(&s->state, *e);
	else
		s->known++;
	add(&s->state, v);
	*e = v;
	return 0;
}

int pmt_ps_put(struct pmtrack_pagesums *s, uint32_t region, uint64_t page,
	       XXH128_hash_t h)
{
	return put(s, region, page, h);
}

int pmt_ps_pages(struct pmtrack_pagesums *s, uint32_t region, uint64_t first,
		 uint64_t n, const void *data)
{
	const uint8_t *p = data;

	for (uint64_t i = 0; i < n; i++) {
		XXH128_hash_t h = p ? XXH3_128bits(p + i * s->ps, s->ps)
				    : s->zero;
		int r = put(s, region, first + i, h);

		if (r)
			return r;
	}
	return 0;
}

int pmtrack_pagesums_state(const struct pmtrack_pagesums *s,
			   uint8_t out[PMTRACK_DIGEST_LEN])
{
	if (!s || !out)
		return -EINVAL;
	if (!pmt_ps_valid(s))
		return -ENODATA;
	for (int i = 0; i < 8; i++) {
		out[i] = (uint8_t)(s->state.hi >> (56 - 8 * i));
		out[8 + i] = (uint8_t)(s->state.lo >> (56 - 8 * i));
	}
	return 0;
}

int pmtrack_pagesums_count(const struct pmtrack_pagesums *s, uint64_t *known)
{
	if (!s || !known)
		return -EINVAL;
	*known = s->known;
	return 0;
}

/* --- audit -------------------------------------------------------------- */

struct audit_job {
	const struct pmtrack_pagesums *s;
	const struct iovec *mem;
	/* pages [lo, hi) of all regions, counted in table order */
	uint64_t lo, hi;
	uint64_t differ, unsent;
	uint64_t first; /* lowest bad page, in table order; UINT64_MAX */
};

static void audit_page(struct audit_job *j, uint32_t region, uint64_t page,
		       uint64_t at)
{
	const struct pmtrack_pagesums *s = j->s;
	const struct ps_region *g = &s->rg[region];
	const struct ps_entry *c = g->chunk[page >> CHUNK_SHIFT];
	const struct ps_entry *e = c ? &c[page & (CHUNK - 1)] : NULL;
	const uint8_t *p = (const uint8_t *)j->mem[region].iov_base +
			   page * s->ps;
	struct ps_entry v;

	if (!e || !e->lo) {
		j->unsent++;
	} else {
		v = entry_of(region, page, XXH3_128bits(p, s->ps));
		if (v.lo == e->lo && v.hi == e->hi)
			return;
		j->differ++;
	}
	if (at < j->first)
		j->first = at;
}

static void *audit_run(void *arg)
{
	struct audit_job *j = arg;
	const struct pmtrack_pagesums *s = j->s;
	uint64_t base = 0;

	for (uint32_t r = 0; r < s->n && base < j->hi; r++) {
		uint64_t np = s->rg[r].pages, a, b;

		a = j->lo > base ? j->lo - base : 0;
		b = j->hi - base < np ? j->hi - base : np;
		for (uint64_t p = a; p < b; p++)
			audit_page(j, r, p, base + p);
		base += np;
	}
	return NULL;
}

/* table-order page @at as (region, page) */
static void audit_where(const struct pmtrack_pagesums *s, uint64_t at,
			struct pmtrack_audit *a)
{
	for (uint32_t r = 0; r < s->n; r++) {
		if (at < s->rg[r].pages) {
			a->first_region = r;
			a->first_page = at;
			return;
		}
		at -= s->rg[r].pages;
	}
}

static int audit_check(const struct pmtrack_pagesums *s,
		       const struct iovec *mem, size_t n)
{
	if (!s || !mem || !n || n != s->n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!mem[i].iov_base || mem[i].iov_len != s->rg[i].length)
			return -EINVAL;
	return 0;
}

int pmtrack_pagesums_audit(const struct pmtrack_pagesums *s,
			   const struct iovec *mem, size_t n,
			   unsigned int threads, struct pmtrack_audit *out)
{
	struct pmtrack_audit a = { .sz = sizeof(a) };
	struct audit_job job[AUDIT_THREADS_MAX];
	pthread_t tid[AUDIT_THREADS_MAX];
	unsigned int started = 0;
	uint64_t total = 0, first = UINT64_MAX;
	int err;

	if (out && out->sz < sizeof(size_t))
		return -EINVAL;
	err = audit_check(s, mem, n);
	if (err)
		return err;
	if (!s->valid)
		return -ENODATA;
	for (size_t i = 0; i < n; i++)
		total += s->rg[i].pages;
	if (!threads)
		threads = 1;
	if (threads > AUDIT_THREADS_MAX)
		threads = AUDIT_THREADS_MAX;
	if (threads > total / CHUNK + 1)
		threads = (unsigned int)(total / CHUNK + 1);
	for (unsigned int t = 0; t < threads; t++)
		job[t] = (struct audit_job){
			.s = s,
			.mem = mem,
			.lo = total * t / threads,
			.hi = total * (t + 1) / threads,
			.first = UINT64_MAX,
		};
	/* job 0 runs here; a thread that cannot start runs here too */
	for (unsigned int t = 1; t < threads; t++, started++)
		if (pthread_create(&tid[t], NULL, audit_run, &job[t]))
			break;
	for (unsigned int t = started + 1; t < threads; t++)
		audit_run(&job[t]);
	audit_run(&job[0]);
	for (unsigned int t = 1; t <= started; t++)
		pthread_join(tid[t], NULL);
	for (unsigned int t = 0; t < threads; t++) {
		a.differ += job[t].differ;
		a.unsent += job[t].unsent;
		if (job[t].first < first)
			first = job[t].first;
	}
	a.pages = total;
	if (first != UINT64_MAX)
		audit_where(s, first, &a);
	if (out)
		pmt_stats_out(out, &a, sizeof(a));
	return a.differ || a.unsent ? -EBADMSG : 0;
}

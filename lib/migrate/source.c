// SPDX-License-Identifier: MIT
/*
 * The sending side's memory: the watched regions, their pending pages and
 * the rounds that send them (see source.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "base.h"
#include "bitmap.h"
#include "source.h"

void pmt_src_free(struct pmt_src *s)
{
	size_t i;

	if (s->t)
		pmtrack_free(s->t);
	if (s->dirty)
		for (i = 0; i < s->n; i++)
			free(s->dirty[i]);
	pmtrack_bitmap_free(s->bm);
	free(s->dirty);
	free(s->nwords);
	free(s->r);
	free(s->sr);
	free(s->rr);
	memset(s, 0, sizeof(*s));
}

/* Is @r no region to watch with pages of @ps bytes? */
static bool src_region_bad(const struct pmtrack_mem_region *r, size_t ps)
{
	return !r->addr || !r->len || (uintptr_t)r->addr % ps || r->len % ps ||
	       (uintptr_t)r->addr + r->len < (uintptr_t)r->addr ||
	       (r->name && strlen(r->name) > PMTRACK_STREAM_NAME_MAX);
}

/* 0 if @r[0..n) are regions to watch, with ids of their own; -EINVAL. */
static int src_check(const struct pmtrack_mem_region *r, size_t n, size_t ps)
{
	size_t i, j;

	if (!r || !n || n > PMTRACK_STREAM_MAX_REGIONS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (src_region_bad(&r[i], ps))
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (r[j].id == r[i].id)
				return -EINVAL;
	}
	return 0;
}

/* The regions' copies, stream descriptions and (empty) bitmaps. */
static int src_alloc(struct pmt_src *s, const struct pmtrack_mem_region *r)
{
	size_t i, n = s->n;
	int err;

	s->r = calloc(n, sizeof(*s->r));
	s->sr = calloc(n, sizeof(*s->sr));
	s->rr = calloc(n, sizeof(*s->rr));
	s->dirty = calloc(n, sizeof(*s->dirty));
	s->nwords = calloc(n, sizeof(*s->nwords));
	if (!s->r || !s->sr || !s->rr || !s->dirty || !s->nwords)
		return -ENOMEM;
	err = pmtrack_bitmap_new(&s->bm);
	if (err)
		return err;
	for (i = 0; i < n; i++) {
		size_t pages = r[i].len / s->ps;

		s->r[i] = r[i];
		s->sr[i] = (struct pmtrack_stream_region){
			.id = r[i].id,
			.start = (uint64_t)(uintptr_t)r[i].addr,
			.length = r[i].len,
			.name = r[i].name,
		};
		s->nwords[i] = pmt_nwords(pages);
		s->dirty[i] = calloc(s->nwords[i], 8);
		if (!s->dirty[i])
			return -ENOMEM;
		s->total_pages += pages;
	}
	return 0;
}

/* A tracker that watches every region. */
static int src_watch(struct pmt_src *s, const struct pmtrack_opts *topts)
{
	PMTRACK_OPTS(pmtrack_opts, dflt, .require = PMTRACK_CAP_ATOMIC_RESET);
	size_t i;
	int err;

	err = pmtrack_new(topts ? topts : &dflt, &s->t);
	if (err)
		return err;
	for (i = 0; i < s->n; i++) {
		err = pmtrack_watch(s->t, s->r[i].addr, s->r[i].len);
		if (err)
			return err;
	}
	return 0;
}

int pmt_src_init(struct pmt_src *s, const struct pmtrack_opts *topts,
		 const struct pmtrack_mem_region *r, size_t n)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	int err;

	memset(s, 0, sizeof(*s));
	err = src_check(r, n, ps);
	if (err)
		return err;
	s->n = n;
	s->ps = ps;
	err = src_alloc(s, r);
	if (!err)
		err = src_watch(s, topts);
	if (err)
		pmt_src_free(s);
	return err;
}

void pmt_src_all(struct pmt_src *s)
{
	for (size_t i = 0; i < s->n; i++)
		pmt_bits_set(s->dirty[i], 0, s->r[i].len / s->ps);
}

int pmt_src_collect(struct pmt_src *s, uint64_t *count)
{
	const uint64_t *w;
	size_t i, k, nw;
	uint64_t c = 0;
	int err = 0, e;

	for (i = 0; i < s->n; i++) {
		e = pmtrack_collect_bitmap(s->t, s->r[i].addr, s->r[i].len,
					   PMTRACK_COLLECT_RESET, s->bm);
		/* after a failure the bitmap still holds what was reset */
		w = pmtrack_bitmap_words(s->bm, &nw);
		if (w && pmtrack_bitmap_npages(s->bm) == s->r[i].len / s->ps)
			for (k = 0; k < nw && k < s->nwords[i]; k++)
				s->dirty[i][k] |= w[k];
		if (e && !err)
			err = e;
	}
	for (i = 0; i < s->n; i++)
		c += pmt_bits_count(s->dirty[i], s->nwords[i]);
	*count = c;
	return err;
}

int pmt_src_round(struct pmt_src *s, struct pmtrack_enc *enc, uint64_t round)
{
	size_t i, m = 0, pages;

	for (i = 0; i < s->n; i++) {
		pages = s->r[i].len / s->ps;
		if (pmt_bits_next(s->dirty[i], pages, 0) >= pages)
			continue; /* nothing to send */
		s->rr[m++] = (struct pmtrack_enc_region_round){
			.region = (uint32_t)i,
			.dirty = s->dirty[i],
			.mem = s->r[i].addr,
		};
	}
	return pmtrack_enc_round(enc, round, s->rr, m);
}

void pmt_src_sent(struct pmt_src *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		memset(s->dirty[i], 0, s->nwords[i] * 8);
}

unsigned int pmt_src_workers(uint32_t want)
{
	long n;

	if (want == PMTRACK_NO_WORKERS)
		return 0;
	if (want)
		return want > 64 ? 64 : want;
	n = sysconf(_SC_NPROCESSORS_ONLN) - 1;
	return n < 1 ? 0 : n > 8 ? 8 : (unsigned int)n;
}

unsigned int pmt_src_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 16 ? 16 : (unsigned int)n;
}

int pmt_src_audit(struct pmt_src *s, const struct pmtrack_pagesums *sums,
		  uint64_t *differ, uint64_t *first)
{
	struct pmtrack_audit a = { .sz = sizeof(a) };
	struct iovec *iov = calloc(s->n, sizeof(*iov));
	int err;

	if (!iov)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++)
		iov[i] = (struct iovec){ s->r[i].addr, s->r[i].len };
	err = pmtrack_pagesums_audit(sums, iov, s->n, pmt_src_cpus(), &a);
	free(iov);
	*differ = a.differ + a.unsent;
	if (err == -EBADMSG)
		*first = (uint64_t)(uintptr_t)s->r[a.first_region].addr +
			 a.first_page * s->ps;
	/* a table that lost an entry has nothing to say: out of memory */
	return err == -ENODATA ? -ENOMEM : err;
}

int pmt_src_digest(struct pmt_src *s, uint8_t out[PMTRACK_DIGEST_LEN])
{
	struct iovec *iov = calloc(s->n, sizeof(*iov));
	size_t i;

	if (!iov)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		iov[i].iov_base = s->r[i].addr;
		iov[i].iov_len = s->r[i].len;
	}
	pmtrack_digest(iov, s->n, out);
	free(iov);
	return 0;
}

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

int pmt_src_init(struct pmt_src *s, const struct pmtrack_opts *topts,
		 const struct pmtrack_mem_region *r, size_t n)
{
	PMTRACK_OPTS(pmtrack_opts, dflt, .require = PMTRACK_CAP_ATOMIC_RESET);
	size_t i, j, ps = (size_t)sysconf(_SC_PAGESIZE);
	int err;

	memset(s, 0, sizeof(*s));
	if (!r || !n || n > PMTRACK_STREAM_MAX_REGIONS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!r[i].addr || !r[i].len || (uintptr_t)r[i].addr % ps ||
		    r[i].len % ps ||
		    (uintptr_t)r[i].addr + r[i].len < (uintptr_t)r[i].addr ||
		    (r[i].name && strlen(r[i].name) > PMTRACK_STREAM_NAME_MAX))
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (r[j].id == r[i].id)
				return -EINVAL;
	}
	s->n = n;
	s->ps = ps;
	s->r = calloc(n, sizeof(*s->r));
	s->sr = calloc(n, sizeof(*s->sr));
	s->rr = calloc(n, sizeof(*s->rr));
	s->dirty = calloc(n, sizeof(*s->dirty));
	s->nwords = calloc(n, sizeof(*s->nwords));
	err = -ENOMEM;
	if (!s->r || !s->sr || !s->rr || !s->dirty || !s->nwords)
		goto fail;
	err = pmtrack_bitmap_new(&s->bm);
	if (err)
		goto fail;
	for (i = 0; i < n; i++) {
		size_t pages = r[i].len / ps;

		s->r[i] = r[i];
		s->sr[i] = (struct pmtrack_stream_region){
			.id = r[i].id,
			.start = (uint64_t)(uintptr_t)r[i].addr,
			.length = r[i].len,
			.name = r[i].name,
		};
		s->nwords[i] = pmt_nwords(pages);
		s->dirty[i] = calloc(s->nwords[i], 8);
		if (!s->dirty[i]) {
			err = -ENOMEM;
			goto fail;
		}
		s->total_pages += pages;
	}
	err = pmtrack_new(topts ? topts : &dflt, &s->t);
	if (err)
		goto fail;
	for (i = 0; i < n; i++) {
		err = pmtrack_watch(s->t, r[i].addr, r[i].len);
		if (err)
			goto fail;
	}
	return 0;
fail:
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

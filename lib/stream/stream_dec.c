/* SPDX-License-Identifier: MIT */
/*
 * Stream decoder.  Untrusted input: every length, count, index and size is
 * checked before it is used, every allocation is charged against mem_limit,
 * and pages are written only inside the destinations the caller set, after
 * their checksum matched.
 *
 * Cost.  A record costs what it spells out, never what the region table or
 * the regions' sizes would suggest.  A ROUND's record is kept until the
 * next ROUND: it lists the regions the round names, and its runs say which
 * bits it set, so pending pages are computed, zero pages delivered and,
 * when the next ROUND starts, its bits cleared run by run.  Work, as
 * pmtrack_dec_get_stats() counts it (bitmap words and region-table entries
 * visited):
 *
 *   HEADER, n regions   O(n log n): the table checked, its ids sorted.  Its
 *                       maps are allocated zeroed, within mem_limit, once.
 *   ROUND, k regions    O(k + r + m/64) for r runs setting m bits, and the
 *                       same again when the next ROUND clears them.  A map
 *                       sent as zstd words costs its region's words per
 *                       use instead, and the zwords rule (proto/bitmap.proto)
 *                       accepts words only for at least as many bits: O(m).
 *   BATCH, p pages      O(r + p/64) for its r runs, besides decompressing
 *                       and hashing the p pages.
 *   END                 O(n); with a digest and a destination for every
 *                       region, one read of all of them: the digest is over
 *                       all memory by design, once per stream.
 *
 * Zero pages cost one deliver() per run (and, with a destination, the
 * writing of the pages).  An INCOMPLETE round is named by searching the
 * runs of the round's dirty maps, within the round's bound.  With
 * constants: a stream of B bytes in R records whose ROUNDs set M bits
 * costs work <= 16 (B + R) + 8 M, which tests/check_stream.c checks on
 * the shapes that used to cost minutes.
 */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include <pmtrack/stream.h>

#include "batch.pb-c.h"
#include "end.pb-c.h"
#include "header.pb-c.h"
#include "pagesums.h"
#include "round.pb-c.h"
#include "stream_internal.h"

#define MEM_LIMIT_DEFAULT (256u << 20)

/*
 * The fuzz build (-DPMTRACK_FUZZ=ON) accepts wrong checksums, so that
 * mutated input reaches the parsers behind them instead of stopping at the
 * first check.  Never defined in a normal build.
 */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CHECKSUMS_BAD(x) ((void)(x), false)
#else
#define CHECKSUMS_BAD(x) (x)
#endif
/* what a ZSTD_DCtx costs, charged once */
#define DCTX_COST (200u << 10)

enum dec_state { ST_PREAMBLE, ST_FRAME, ST_BODY };
enum dec_phase { PH_START, PH_HEADER, PH_ROUND, PH_DONE };

struct dec_region {
	uint64_t pages;
	size_t nwords;
	uint64_t *dirty, *swap, *zero, *pending;
	uint64_t seq; /* the ROUND record that last listed it (dec->seq) */
	uint8_t *dest;
};

struct pmtrack_dec {
	struct pmtrack_dec_ops ops;
	void *arg;
	size_t limit, used;

	enum dec_state state;
	enum dec_phase phase;
	int err, reason;
	char msg[256];

	uint64_t offset; /* stream bytes consumed */
	uint8_t small[PMTRACK_FRAME_LEN];
	size_t small_len;
	struct pmt_frame fr;
	uint8_t frame_raw[PMTRACK_FRAME_LEN];
	uint64_t rec_off; /* offset of the current frame */
	uint64_t body_len;
	uint8_t *rbuf;
	size_t rbuf_cap, rbuf_len;

	/* header */
	uint32_t version, ps;
	char *producer;
	uint8_t stream_id[PMTRACK_STREAM_ID_LEN];
	uint8_t parent_id[PMTRACK_STREAM_ID_LEN];
	bool has_parent;
	bool has_state; /* END will carry a state digest */
	size_t nregions;
	struct pmtrack_stream_region *regions;
	struct dec_region *rg;

	/* channels: the stream's, and the ones the caller merges; batch k
	   comes from channel k mod nchan */
	uint32_t nchan, want_chan;
	uint64_t nbatch;

	/* progress */
	uint64_t round, rounds, pages, zero_pages, pending;
	/*
	 * The current round's record, kept until the next ROUND: its runs
	 * say which bits it set, so that only those are cleared.
	 */
	Pmtrack__Round *cur;
	uint64_t seq; /* ROUND records started */
	/* pmtrack_dec_get_stats() */
	uint64_t records, map_bits, work;

	/* page sums of what was applied: the caller's, or own_sums; NULL =
	   the state digest cannot be checked */
	struct pmtrack_pagesums *sums, *own_sums, *opt_sums;

	ZSTD_DCtx *dctx;
	uint8_t *scratch;
	size_t scratch_cap;
	bool pb_over; /* a protobuf allocation hit the limit */
	ProtobufCAllocator pba;
};

static const char *const rec_names[] = {
	[PMTRACK_REC_HEADER] = "HEADER",
	[PMTRACK_REC_ROUND] = "ROUND",
	[PMTRACK_REC_BATCH] = "BATCH",
	[PMTRACK_REC_END] = "END",
};

static int reason_errno(int reason)
{
	switch (reason) {
	case PMTRACK_SERR_TRUNCATED:
		return -ENODATA;
	case PMTRACK_SERR_VERSION:
		return -EPROTONOSUPPORT;
	case PMTRACK_SERR_LIMIT:
		return -E2BIG;
	case PMTRACK_SERR_NOMEM:
		return -ENOMEM;
	default:
		return -EBADMSG;
	}
}

__attribute__((format(printf, 3, 4))) static int
fail(struct pmtrack_dec *dec, int reason, const char *fmt, ...)
{
	const char *rec = "";
	va_list ap;
	int n;

	if (dec->err)
		return dec->err;
	if (dec->state == ST_BODY && dec->fr.type >= PMTRACK_REC_HEADER &&
	    dec->fr.type <= PMTRACK_REC_END)
		rec = rec_names[dec->fr.type];
	n = snprintf(dec->msg, sizeof(dec->msg),
		     "offset %llu%s%s: ", (unsigned long long)dec->rec_off,
		     *rec ? " " : "", rec);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(dec->msg))
		vsnprintf(dec->msg + n, sizeof(dec->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	dec->reason = reason;
	dec->err = reason_errno(reason);
	return dec->err;
}

static int fail_cb(struct pmtrack_dec *dec, int r, const char *what)
{
	if (dec->err)
		return dec->err;
	fail(dec, PMTRACK_SERR_CALLBACK, "%s callback: %s", what,
	     strerror(r < 0 ? -r : EINVAL));
	dec->err = r < 0 ? r : -EINVAL;
	return dec->err;
}

/* --- memory accounting -------------------------------------------------- */

static int charge(struct pmtrack_dec *dec, size_t n, const char *what)
{
	if (n > dec->limit - dec->used)
		return fail(
			dec, PMTRACK_SERR_LIMIT,
			"%s needs %zu bytes, %zu of the %zu byte limit left",
			what, n, dec->limit - dec->used, dec->limit);
	dec->used += n;
	return 0;
}

static void *dec_calloc(struct pmtrack_dec *dec, size_t n, const char *what)
{
	void *p;

	if (charge(dec, n, what))
		return NULL;
	p = calloc(1, n ? n : 1);
	if (!p) {
		dec->used -= n;
		fail(dec, PMTRACK_SERR_NOMEM, "%s: out of memory", what);
	}
	return p;
}

static void dec_free(struct pmtrack_dec *dec, void *p, size_t n)
{
	if (p)
		dec->used -= n;
	free(p);
}

/*
 * Make *@buf (of *@cap bytes) hold @n: a new zeroed buffer in place of one
 * too small, charged, and the old one given back first.
 */
static int grow(struct pmtrack_dec *dec, uint8_t **buf, size_t *cap,
		uint64_t n, const char *what)
{
	if (n <= *cap)
		return 0;
	dec_free(dec, *buf, *cap);
	*buf = NULL;
	*cap = 0;
	*buf = dec_calloc(dec, (size_t)n, what);
	if (!*buf)
		return dec->err;
	*cap = (size_t)n;
	return 0;
}

/* protobuf-c allocations, charged like the rest */
static void *pb_alloc(void *data, size_t size)
{
	struct pmtrack_dec *dec = data;
	size_t *p;

	if (size > dec->limit - dec->used ||
	    sizeof(size_t) > dec->limit - dec->used - size) {
		dec->pb_over = true;
		return NULL;
	}
	p = malloc(size + sizeof(size_t));
	if (!p)
		return NULL;
	dec->used += size + sizeof(size_t);
	*p = size;
	return p + 1;
}

static void pb_free(void *data, void *ptr)
{
	struct pmtrack_dec *dec = data;
	size_t *p = ptr;

	if (!p)
		return;
	p--;
	dec->used -= *p + sizeof(size_t);
	free(p);
}

static void *unpack(struct pmtrack_dec *dec,
		    const ProtobufCMessageDescriptor *d, const uint8_t *buf,
		    size_t len)
{
	void *m;

	dec->pb_over = false;
	m = protobuf_c_message_unpack(d, &dec->pba, len, buf);
	if (!m) {
		if (dec->pb_over)
			fail(dec, PMTRACK_SERR_LIMIT,
			     "decoding the message would exceed the %zu byte "
			     "limit",
			     dec->limit);
		else
			fail(dec, PMTRACK_SERR_SCHEMA,
			     "not a valid %s message (%zu bytes)", d->name,
			     len);
	}
	return m;
}

static void pack_free(struct pmtrack_dec *dec, void *m)
{
	if (m)
		protobuf_c_message_free_unpacked(m, &dec->pba);
}

/* the zstd context, created (and charged) on first use */
static int need_dctx(struct pmtrack_dec *dec)
{
	if (dec->dctx)
		return 0;
	if (charge(dec, DCTX_COST, "zstd context"))
		return dec->err;
	dec->dctx = ZSTD_createDCtx();
	if (!dec->dctx)
		return fail(dec, PMTRACK_SERR_NOMEM, "zstd context");
	return 0;
}

/* words of a bitmap that bits [start, start + n) touch, n >= 1 */
static uint64_t span_words(uint64_t start, uint64_t n)
{
	return (start + n + 63) / 64 - start / 64;
}

/* --- public lifecycle ---------------------------------------------------- */

int pmtrack_dec_new(const struct pmtrack_dec_opts *opts,
		    struct pmtrack_dec **out)
{
	struct pmtrack_dec *dec;
	const struct pmtrack_dec_ops *ops;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!PMT_OPTS_VALID(opts, pmtrack_dec_opts))
		return -EINVAL;
	dec = calloc(1, sizeof(*dec));
	if (!dec)
		return -ENOMEM;
	ops = PMT_OPTS_GET(opts, ops, NULL);
	if (ops)
		dec->ops = *ops;
	dec->arg = PMT_OPTS_GET(opts, arg, NULL);
	dec->limit = PMT_OPTS_GET(opts, mem_limit, 0);
	if (!dec->limit)
		dec->limit = MEM_LIMIT_DEFAULT;
	dec->opt_sums = PMT_OPTS_GET(opts, sums, NULL);
	dec->want_chan = PMT_OPTS_GET(opts, channels, 0u);
	if (dec->want_chan > PMTRACK_CHANNELS_MAX) {
		free(dec);
		return -EINVAL;
	}
	if (!dec->want_chan)
		dec->want_chan = 1;
	dec->nchan = 1;
	dec->pba = (ProtobufCAllocator){ pb_alloc, pb_free, dec };
	*out = dec;
	return 0;
}

static void free_regions(struct pmtrack_dec *dec)
{
	for (size_t i = 0; dec->rg && i < dec->nregions; i++) {
		struct dec_region *g = &dec->rg[i];

		dec_free(dec, g->dirty, g->nwords * 8 * 4);
		dec_free(dec, (char *)dec->regions[i].name,
			 dec->regions[i].name ? strlen(dec->regions[i].name) + 1
					      : 0);
	}
}

void pmtrack_dec_free(struct pmtrack_dec *dec)
{
	if (!dec)
		return;
	pack_free(dec, dec->cur);
	free_regions(dec);
	free(dec->rg);
	free(dec->regions);
	free(dec->producer);
	free(dec->rbuf);
	free(dec->scratch);
	ZSTD_freeDCtx(dec->dctx);
	pmtrack_pagesums_free(dec->own_sums);
	free(dec);
}

uint32_t pmtrack_dec_next_channel(const struct pmtrack_dec *dec)
{
	if (!dec || dec->nchan < 2 || dec->phase != PH_ROUND || !dec->pending)
		return 0;
	return (uint32_t)(dec->nbatch % dec->nchan);
}

const char *pmtrack_dec_error(const struct pmtrack_dec *dec, int *reason)
{
	if (reason)
		*reason = dec ? dec->reason : PMTRACK_SERR_OK;
	return dec ? dec->msg : "";
}

int pmtrack_dec_set_dest(struct pmtrack_dec *dec, uint32_t region, void *mem,
			 size_t len)
{
	if (!dec || dec->phase == PH_START || region >= dec->nregions || !mem ||
	    len != dec->regions[region].length)
		return -EINVAL;
	dec->rg[region].dest = mem;
	return 0;
}

int pmtrack_dec_listed(const struct pmtrack_dec *dec, size_t i,
		       struct pmtrack_dec_listed *out)
{
	const Pmtrack__RegionMaps *x;
	struct pmtrack_dec_listed l;

	if (!dec || !dec->cur || !out || out->sz < sizeof(size_t))
		return -EINVAL;
	if (i >= dec->cur->n_regions)
		return 0;
	x = dec->cur->regions[i];
	l = (struct pmtrack_dec_listed){
		.sz = sizeof(l),
		.region = x->region,
		.dirty = x->dirty->count,
		.swap = x->swap ? x->swap->count : 0,
		.zero = x->zero ? x->zero->count : 0,
	};
	return pmt_stats_out(out, &l, sizeof(l)) ? -EINVAL : 1;
}

int pmtrack_dec_get_stats(const struct pmtrack_dec *dec,
			  struct pmtrack_dec_stats *st)
{
	struct pmtrack_dec_stats now;

	if (!dec)
		return -EINVAL;
	now = (struct pmtrack_dec_stats){
		.sz = sizeof(now),
		.bytes = dec->offset,
		.records = dec->records,
		.rounds = dec->rounds,
		.pages = dec->pages,
		.zero_pages = dec->zero_pages,
		.map_bits = dec->map_bits,
		.work = dec->work,
	};
	return pmt_stats_out(st, &now, sizeof(now));
}

const uint64_t *pmtrack_dec_map(const struct pmtrack_dec *dec, uint32_t region,
				enum pmtrack_map_kind kind, size_t *nwords)
{
	const struct dec_region *g;

	if (!dec || dec->phase == PH_START || !dec->rounds ||
	    region >= dec->nregions)
		return NULL;
	g = &dec->rg[region];
	if (nwords)
		*nwords = g->nwords;
	switch (kind) {
	case PMTRACK_MAP_DIRTY:
		return g->dirty;
	case PMTRACK_MAP_SWAP:
		return g->swap;
	case PMTRACK_MAP_ZERO:
		return g->zero;
	}
	return NULL;
}

/* --- HEADER ------------------------------------------------------------- */

static int id_cmp(const void *a, const void *b, void *work)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	(*(uint64_t *)work)++;
	return x < y ? -1 : x > y;
}

/* region ids are unique: sorted, in O(n log n) rather than pair by pair */
static int ids_unique(struct pmtrack_dec *dec, const Pmtrack__StreamHeader *h)
{
	size_t n = h->n_regions, bytes = n * sizeof(uint32_t);
	uint32_t *ids = dec_calloc(dec, bytes, "region ids");
	int r = 0;

	if (!ids)
		return dec->err;
	for (size_t i = 0; i < n; i++)
		ids[i] = h->regions[i]->id;
	qsort_r(ids, n, sizeof(*ids), id_cmp, &dec->work);
	for (size_t i = 1; i < n && !r; i++)
		if (ids[i] == ids[i - 1])
			r = fail(dec, PMTRACK_SERR_DUPLICATE,
				 "region id %u twice", ids[i]);
	dec->work += n;
	dec_free(dec, ids, bytes);
	return r;
}

/* the header's fields, and its region count, before the table */
static int header_check(struct pmtrack_dec *dec,
			const Pmtrack__StreamHeader *h)
{
	size_t n = h->n_regions;

	if (h->page_size < PMT_PAGE_MIN || h->page_size > PMT_PAGE_MAX ||
	    (h->page_size & (h->page_size - 1)))
		return fail(dec, PMTRACK_SERR_SCHEMA, "page size %u",
			    h->page_size);
	if (strlen(h->producer) > PMT_NAME_MAX ||
	    h->stream_id.len != PMTRACK_STREAM_ID_LEN ||
	    (h->has_parent_id && h->parent_id.len != PMTRACK_STREAM_ID_LEN))
		return fail(dec, PMTRACK_SERR_SCHEMA,
			    "producer, stream id or parent id of the wrong "
			    "length");
	if (!n || n > PMT_MAX_REGIONS)
		return fail(dec, PMTRACK_SERR_SCHEMA,
			    "%zu regions (1..%u allowed)", n, PMT_MAX_REGIONS);
	if (h->has_channels &&
	    (h->channels < 2 || h->channels > PMTRACK_CHANNELS_MAX))
		return fail(dec, PMTRACK_SERR_SCHEMA, "%u channels",
			    h->channels);
	dec->nchan = h->has_channels ? h->channels : 1;
	if (dec->nchan != dec->want_chan)
		return fail(dec, PMTRACK_SERR_MISMATCH,
			    "the stream spans %u channels; %u are read",
			    dec->nchan, dec->want_chan);
	return 0;
}

/*
 * The region table: every region whole pages that do not wrap, and the
 * bitmaps of all of them within the limit.  Before anything is allocated
 * for it.
 */
static int regions_check(struct pmtrack_dec *dec,
			 const Pmtrack__StreamHeader *h)
{
	uint64_t bits = 0;

	for (size_t i = 0; i < h->n_regions; i++) {
		const Pmtrack__Region *g = h->regions[i];
		uint64_t pages = g->length / h->page_size;

		if (!g->length || g->length % h->page_size ||
		    g->start % h->page_size ||
		    g->start + g->length < g->start ||
		    (g->name && strlen(g->name) > PMT_NAME_MAX))
			return fail(dec, PMTRACK_SERR_SCHEMA,
				    "region %zu: start %#llx length %llu", i,
				    (unsigned long long)g->start,
				    (unsigned long long)g->length);
		dec->work++;
		/* four bitmaps per region, in whole words */
		bits += pmt_nwords(pages) * 64 * 4;
		if (bits / 8 > dec->limit)
			return fail(dec, PMTRACK_SERR_LIMIT,
				    "the regions' bitmaps exceed the %zu byte "
				    "limit",
				    dec->limit);
	}
	return 0;
}

/* region @i of the table: its entry for the caller, its name and maps */
static int region_init(struct pmtrack_dec *dec, size_t i,
		       const Pmtrack__Region *g)
{
	struct dec_region *d = &dec->rg[i];
	struct pmtrack_stream_region *pr = &dec->regions[i];
	uint64_t *maps;

	dec->work++;
	pr->id = g->id;
	pr->flags = g->flags;
	pr->start = g->start;
	pr->length = g->length;
	if (g->name) {
		char *nm = dec_calloc(dec, strlen(g->name) + 1, "name");

		if (!nm)
			return dec->err;
		memcpy(nm, g->name, strlen(g->name));
		pr->name = nm;
	}
	d->pages = g->length / dec->ps;
	d->nwords = pmt_nwords(d->pages);
	maps = dec_calloc(dec, d->nwords * 8 * 4, "bitmaps");
	if (!maps)
		return dec->err;
	d->dirty = maps;
	d->swap = maps + d->nwords;
	d->zero = maps + 2 * d->nwords;
	d->pending = maps + 3 * d->nwords;
	return 0;
}

/* keep what the checked header says: its fields, the region table */
static int header_store(struct pmtrack_dec *dec,
			const Pmtrack__StreamHeader *h)
{
	size_t n = h->n_regions;

	if (charge(dec, n * (sizeof(*dec->rg) + sizeof(*dec->regions)),
		   "region table"))
		return dec->err;
	dec->rg = calloc(n, sizeof(*dec->rg));
	dec->regions = calloc(n, sizeof(*dec->regions));
	dec->producer = strdup(h->producer);
	if (!dec->rg || !dec->regions || !dec->producer)
		return fail(dec, PMTRACK_SERR_NOMEM,
			    "region table: out of memory");
	dec->nregions = n;
	dec->ps = h->page_size;
	memcpy(dec->stream_id, h->stream_id.data, PMTRACK_STREAM_ID_LEN);
	dec->has_parent = h->has_parent_id;
	dec->has_state = h->has_state && h->state;
	if (h->has_parent_id)
		memcpy(dec->parent_id, h->parent_id.data,
		       PMTRACK_STREAM_ID_LEN);
	for (size_t i = 0; i < n; i++)
		if (region_init(dec, i, h->regions[i]))
			return dec->err;
	return 0;
}

/*
 * The page sums this stream's pages go into: the caller's (afresh for a
 * stream without a parent; for a child only if it holds the parent's
 * state), or our own, limited to mem_limit, for a stream without a parent.
 */
static int sums_bind(struct pmtrack_dec *dec)
{
	struct pmtrack_pagesums *s = dec->opt_sums;
	int r;

	dec->work += dec->nregions;
	if (!dec->has_state) {
		/* nothing to check: no page is hashed, and a caller's table
		   no longer follows the chain */
		if (s)
			pmt_ps_invalidate(s);
		return 0;
	}
	if (s && dec->has_parent && !pmt_ps_follows(s, dec->parent_id)) {
		/* not the chain it holds: it cannot hold this one either */
		pmt_ps_invalidate(s);
		return 0;
	}
	if (!s) {
		if (dec->has_parent)
			return 0;
		if (pmtrack_pagesums_new(&dec->own_sums))
			return fail(dec, PMTRACK_SERR_NOMEM,
				    "page sums: out of memory");
		pmt_ps_set_limit(dec->own_sums, dec->limit);
		s = dec->own_sums;
	}
	r = pmt_ps_bind(s, dec->regions, dec->nregions, dec->ps,
			!dec->has_parent);
	if (r == -EINVAL || (r == -E2BIG && s == dec->own_sums)) {
		/* another table, or ours over the limit: left unchecked */
		pmt_ps_invalidate(s);
		return 0;
	}
	if (r)
		return fail(dec, PMTRACK_SERR_NOMEM,
			    "page sums: out of memory");
	dec->sums = s;
	return 0;
}

/* the header is in: tell the caller */
static int header_deliver(struct pmtrack_dec *dec)
{
	struct pmtrack_dec_header info;
	int r;

	dec->phase = PH_HEADER;
	if (!dec->ops.header)
		return 0;
	info = (struct pmtrack_dec_header){
		.version = dec->version,
		.page_size = dec->ps,
		.producer = dec->producer,
		.stream_id = dec->stream_id,
		.parent_id = dec->has_parent ? dec->parent_id : NULL,
		.nregions = dec->nregions,
		.regions = dec->regions,
	};
	r = dec->ops.header(dec->arg, dec, &info);
	if (r)
		return fail_cb(dec, r, "header");
	return 0;
}

static int do_header(struct pmtrack_dec *dec, const uint8_t *meta, size_t len)
{
	Pmtrack__StreamHeader *h;
	int r;

	if (dec->phase != PH_START)
		return fail(dec, PMTRACK_SERR_DUPLICATE, "a second HEADER");
	h = unpack(dec, &pmtrack__stream_header__descriptor, meta, len);
	if (!h)
		return dec->err;
	r = header_check(dec, h) || regions_check(dec, h) ||
	    ids_unique(dec, h) || header_store(dec, h) || header_deliver(dec) ||
	    sums_bind(dec);
	pack_free(dec, h);
	return r ? dec->err : 0;
}

/* --- ROUND -------------------------------------------------------------- */

/*
 * The runs of set bits of a bitmap that bitmap_decode() accepted, in
 * order: read from its runs, or found in the words of a zwords one (no
 * more words than bits, by the zwords rule).  A NULL bitmap has none.
 */
struct run_iter {
	const Pmtrack__Bitmap *b;
	const uint64_t *w;
	uint64_t pages, pos;
	size_t i;
};

static void runs_init(struct run_iter *it, const Pmtrack__Bitmap *b,
		      const uint64_t *w, const struct dec_region *g)
{
	*it = (struct run_iter){ .b = b, .w = w, .pages = g->pages };
}

static bool runs_next(struct pmtrack_dec *dec, struct run_iter *it,
		      uint64_t *start, uint64_t *len)
{
	uint64_t s, e;

	if (!it->b)
		return false;
	if (it->b->has_zwords) {
		if (it->pos >= it->pages)
			return false;
		s = pmt_bits_next(it->w, it->pages, it->pos);
		e = pmt_bits_next_clear(it->w, it->pages, s);
		/* the words scanned, the one holding e included */
		dec->work += span_words(it->pos, e - it->pos) + 1;
		it->pos = e;
		if (s >= it->pages)
			return false;
	} else {
		if (it->i >= it->b->n_runs)
			return false;
		s = it->pos + it->b->runs[it->i];
		e = s + it->b->runs[it->i + 1];
		it->i += 2;
		it->pos = e;
	}
	*start = s;
	*len = e - s;
	return true;
}

/*
 * The words of a zwords bitmap into @w: they decompress to exactly the
 * region's words, and set no bit past its last page.  *@set: bits set.
 */
static int bitmap_words(struct pmtrack_dec *dec, const Pmtrack__Bitmap *b,
			const struct dec_region *g, uint64_t *w,
			const char *what, uint32_t region, uint64_t *set)
{
	size_t want = g->nwords * 8, got;
	uint8_t *le = dec_calloc(dec, want, "bitmap words");

	if (!le)
		return dec->err;
	if (need_dctx(dec)) {
		dec_free(dec, le, want);
		return dec->err;
	}
	got = ZSTD_decompressDCtx(dec->dctx, le, want, b->zwords.data,
				  b->zwords.len);
	if (ZSTD_isError(got) || got != want) {
		dec_free(dec, le, want);
		return fail(dec, PMTRACK_SERR_DECOMPRESS,
			    "region %u %s: words do not decompress to %zu "
			    "bytes",
			    region, what, want);
	}
	for (size_t i = 0; i < g->nwords; i++)
		w[i] = pmt_get_le64(le + 8 * i);
	dec->work += g->nwords;
	dec_free(dec, le, want);
	if (w[g->nwords - 1] & ~pmt_word_mask(g->nwords - 1, 0, g->pages))
		return fail(dec, PMTRACK_SERR_RANGE,
			    "region %u %s: bits past the last page", region,
			    what);
	*set = pmt_bits_count(w, g->nwords);
	return 0;
}

/*
 * The runs of a bitmap into @w: (gap, length) pairs, every run after the
 * first apart from the one before, none empty, none past the last page.
 * *@set: bits set.
 */
static int bitmap_runs(struct pmtrack_dec *dec, const Pmtrack__Bitmap *b,
		       const struct dec_region *g, uint64_t *w,
		       const char *what, uint32_t region, uint64_t *set)
{
	uint64_t pos = 0;

	if (b->n_runs % 2)
		return fail(dec, PMTRACK_SERR_SCHEMA,
			    "region %u %s: odd number of run fields", region,
			    what);
	for (size_t i = 0; i < b->n_runs; i += 2) {
		uint64_t gap = b->runs[i], len = b->runs[i + 1];

		if ((i && !gap) || !len)
			return fail(dec, PMTRACK_SERR_SCHEMA,
				    "region %u %s: run %zu has gap %llu "
				    "length %llu",
				    region, what, i / 2,
				    (unsigned long long)gap,
				    (unsigned long long)len);
		if (gap > g->pages - pos || len > g->pages - pos - gap)
			return fail(dec, PMTRACK_SERR_RANGE,
				    "region %u %s: run %zu ends past page %llu",
				    region, what, i / 2,
				    (unsigned long long)g->pages);
		pos += gap;
		pmt_bits_set(w, pos, len);
		dec->work += span_words(pos, len);
		pos += len;
		*set += len;
	}
	return 0;
}

/* Decode a bitmap message into @w (zeroed, g->nwords words). */
static int bitmap_decode(struct pmtrack_dec *dec, const Pmtrack__Bitmap *b,
			 const struct dec_region *g, uint64_t *w,
			 const char *what, uint32_t region)
{
	uint64_t set = 0;

	if (b->has_zwords && b->n_runs)
		return fail(dec, PMTRACK_SERR_SCHEMA,
			    "region %u %s: both runs and words", region, what);
	/* the zwords rule: at most one word decompressed per bit named */
	if (b->has_zwords && b->count < g->nwords)
		return fail(dec, PMTRACK_SERR_SCHEMA,
			    "region %u %s: %llu bits sent as %zu words (fewer "
			    "bits than words must be runs)",
			    region, what, (unsigned long long)b->count,
			    g->nwords);
	if (b->has_zwords ? bitmap_words(dec, b, g, w, what, region, &set)
			  : bitmap_runs(dec, b, g, w, what, region, &set))
		return dec->err;
	if (set != b->count)
		return fail(dec, PMTRACK_SERR_MISMATCH,
			    "region %u %s: %llu bits set, count says %llu",
			    region, what, (unsigned long long)set,
			    (unsigned long long)b->count);
	dec->map_bits += set;
	return 0;
}

static int deliver(struct pmtrack_dec *dec, uint32_t region, uint64_t first,
		   uint64_t n, const void *data)
{
	struct dec_region *g = &dec->rg[region];
	int r;

	if (g->dest) {
		if (data)
			memcpy(g->dest + first * dec->ps, data, n * dec->ps);
		else
			pmt_zero_range(g->dest + first * dec->ps, n * dec->ps);
	}
	if (dec->sums && pmt_ps_valid(dec->sums)) {
		r = pmt_ps_pages(dec->sums, region, first, n, data);
		/* our own table over its limit only leaves END unchecked */
		if (r && dec->sums != dec->own_sums)
			return fail(dec, PMTRACK_SERR_NOMEM,
				    "page sums: out of memory");
	}
	if (dec->ops.pages) {
		r = dec->ops.pages(dec->arg, region, first, n, data);
		if (r)
			return fail_cb(dec, r, "pages");
	}
	return 0;
}

static int round_complete(struct pmtrack_dec *dec)
{
	if (!dec->pending)
		return 0;
	/* the pages still pending lie in the runs of the round's dirty maps
	   (a map sent as words is searched whole) */
	for (size_t i = 0; dec->cur && i < dec->cur->n_regions; i++) {
		const Pmtrack__RegionMaps *x = dec->cur->regions[i];
		const struct dec_region *g = &dec->rg[x->region];
		struct run_iter it;
		uint64_t s, n, p = g->pages;

		dec->work++;
		if (x->dirty->has_zwords) {
			p = pmt_bits_next(g->pending, g->pages, 0);
			dec->work += g->nwords;
		}
		runs_init(&it, x->dirty->has_zwords ? NULL : x->dirty, g->dirty,
			  g);
		while (p == g->pages && runs_next(dec, &it, &s, &n)) {
			uint64_t q = pmt_bits_next(g->pending, s + n, s);

			dec->work += span_words(s, n);
			if (q < s + n)
				p = q;
		}
		if (p < g->pages)
			return fail(dec, PMTRACK_SERR_INCOMPLETE,
				    "round %llu ended with %llu pages unsent "
				    "(first: region %u page %llu)",
				    (unsigned long long)dec->round,
				    (unsigned long long)dec->pending, x->region,
				    (unsigned long long)p);
	}
	return fail(dec, PMTRACK_SERR_INCOMPLETE,
		    "round %llu: %llu pages unsent",
		    (unsigned long long)dec->round,
		    (unsigned long long)dec->pending);
}

/* Clear the bits @b set in @w: its runs, or every word if it was zwords. */
static void map_clear(struct pmtrack_dec *dec, const Pmtrack__Bitmap *b,
		      uint64_t *w, const struct dec_region *g)
{
	struct run_iter it;
	uint64_t s, n;

	if (b && b->has_zwords) {
		memset(w, 0, g->nwords * 8);
		dec->work += g->nwords;
		return;
	}
	runs_init(&it, b, w, g);
	while (runs_next(dec, &it, &s, &n)) {
		pmt_bits_clear(w, s, n);
		dec->work += span_words(s, n);
	}
}

/*
 * The current round is over: clear what it set, so that every map is all
 * zero again.  Its pending bits are clear already (round_complete()).
 */
static void round_clear(struct pmtrack_dec *dec)
{
	Pmtrack__Round *m = dec->cur;

	for (size_t i = 0; m && i < m->n_regions; i++) {
		const Pmtrack__RegionMaps *x = m->regions[i];
		struct dec_region *g = &dec->rg[x->region];

		dec->work++;
		map_clear(dec, x->dirty, g->dirty, g);
		map_clear(dec, x->swap, g->swap, g);
		map_clear(dec, x->zero, g->zero, g);
	}
	pack_free(dec, m);
	dec->cur = NULL;
}

/*
 * The zero pages of @x must be dirty; the dirty pages that are not zero
 * become pending.  Per run, or per word when a map came as words.
 */
static int round_pending(struct pmtrack_dec *dec, const Pmtrack__RegionMaps *x,
			 struct dec_region *g)
{
	const Pmtrack__Bitmap *z = x->zero;
	struct run_iter it;
	uint64_t s, n, p = UINT64_MAX;

	if (x->dirty->has_zwords || (z && z->has_zwords)) {
		/* at most the count of the zwords map */
		for (size_t w = 0; w < g->nwords && p == UINT64_MAX; w++) {
			uint64_t stray = g->zero[w] & ~g->dirty[w];

			if (stray)
				p = w * 64 + (uint64_t)__builtin_ctzll(stray);
			g->pending[w] = g->dirty[w] & ~g->zero[w];
		}
		dec->work += g->nwords;
	} else {
		runs_init(&it, z, g->zero, g);
		while (p == UINT64_MAX && runs_next(dec, &it, &s, &n)) {
			dec->work += span_words(s, n);
			if (!pmt_bits_all(g->dirty, s, n))
				p = pmt_bits_next_clear(g->dirty, s + n, s);
		}
		runs_init(&it, x->dirty, g->dirty, g);
		while (p == UINT64_MAX && runs_next(dec, &it, &s, &n)) {
			pmt_bits_set(g->pending, s, n);
			dec->work += span_words(s, n);
		}
		runs_init(&it, z, g->zero, g);
		while (p == UINT64_MAX && runs_next(dec, &it, &s, &n)) {
			pmt_bits_clear(g->pending, s, n);
			dec->work += span_words(s, n);
		}
	}
	if (p != UINT64_MAX)
		return fail(dec, PMTRACK_SERR_MISMATCH,
			    "region %u: zero page %llu is not dirty", x->region,
			    (unsigned long long)p);
	/* zero is a subset of dirty, so this does not wrap */
	dec->pending += x->dirty->count - (z ? z->count : 0);
	return 0;
}

/*
 * One region of a ROUND: a region of the table, not listed before in
 * this record; its maps decoded, its pending pages computed.
 */
static int round_region(struct pmtrack_dec *dec, const Pmtrack__RegionMaps *x)
{
	struct dec_region *g;

	if (x->region >= dec->nregions)
		return fail(dec, PMTRACK_SERR_RANGE, "region index %u of %zu",
			    x->region, dec->nregions);
	g = &dec->rg[x->region];
	dec->work++;
	if (g->seq == dec->seq)
		return fail(dec, PMTRACK_SERR_DUPLICATE, "region %u twice",
			    x->region);
	g->seq = dec->seq;
	if (bitmap_decode(dec, x->dirty, g, g->dirty, "dirty", x->region) ||
	    (x->swap &&
	     bitmap_decode(dec, x->swap, g, g->swap, "swap", x->region)) ||
	    (x->zero &&
	     bitmap_decode(dec, x->zero, g, g->zero, "zero", x->region)))
		return dec->err;
	return round_pending(dec, x, g);
}

/* a ROUND's number comes after the last one's; then each region it lists */
static int round_read(struct pmtrack_dec *dec, const Pmtrack__Round *m)
{
	if (dec->rounds && m->number <= dec->round)
		return fail(dec, PMTRACK_SERR_ORDER,
			    "round %llu after round %llu",
			    (unsigned long long)m->number,
			    (unsigned long long)dec->round);
	dec->seq++;
	for (size_t i = 0; i < m->n_regions; i++)
		if (round_region(dec, m->regions[i]))
			return dec->err;
	return 0;
}

/* zero pages need no data: deliver them now, run by run */
static int round_zero(struct pmtrack_dec *dec)
{
	for (size_t i = 0; i < dec->cur->n_regions; i++) {
		const Pmtrack__RegionMaps *x = dec->cur->regions[i];
		struct dec_region *g = &dec->rg[x->region];
		struct run_iter it;
		uint64_t s, n;

		dec->work++;
		runs_init(&it, x->zero, g->zero, g);
		while (runs_next(dec, &it, &s, &n)) {
			if (deliver(dec, x->region, s, n, NULL))
				return dec->err;
			dec->zero_pages += n;
		}
	}
	return 0;
}

static int do_round(struct pmtrack_dec *dec, const uint8_t *meta, size_t len)
{
	Pmtrack__Round *m;
	int r;

	if (dec->phase == PH_START)
		return fail(dec, PMTRACK_SERR_ORDER, "ROUND before HEADER");
	if (round_complete(dec))
		return dec->err;
	/* first, so that one round record is held at a time */
	round_clear(dec);
	m = unpack(dec, &pmtrack__round__descriptor, meta, len);
	if (!m)
		return dec->err;
	if (round_read(dec, m)) {
		pack_free(dec, m);
		return dec->err;
	}
	dec->round = m->number;
	dec->rounds++;
	dec->phase = PH_ROUND;
	dec->cur = m;
	if (round_zero(dec))
		return dec->err;
	if (dec->ops.round) {
		r = dec->ops.round(dec->arg, dec, dec->round);
		if (r)
			return fail_cb(dec, r, "round");
	}
	return 0;
}

/* --- BATCH -------------------------------------------------------------- */

/* why page range [s, s+n) is not all pending */
static int batch_page_error(struct pmtrack_dec *dec, uint32_t region,
			    const struct dec_region *g, uint64_t s, uint64_t n)
{
	uint64_t p = pmt_bits_next_clear(g->pending, s + n, s);

	dec->work += span_words(s, n);
	if (p >= s + n)
		return fail(dec, PMTRACK_SERR_MISMATCH, "region %u", region);
	if (pmt_bit_test(g->dirty, p) && !pmt_bit_test(g->zero, p))
		return fail(dec, PMTRACK_SERR_DUPLICATE,
			    "region %u page %llu sent twice in round %llu",
			    region, (unsigned long long)p,
			    (unsigned long long)dec->round);
	return fail(dec, PMTRACK_SERR_MISMATCH,
		    "region %u page %llu is not a data page of round %llu",
		    region, (unsigned long long)p,
		    (unsigned long long)dec->round);
}

/*
 * A BATCH's region and runs: (gap, length) pairs inside the region, every
 * page of them pending in this round, and raw_len their bytes.  *@pages:
 * the pages they name.
 */
static int batch_check(struct pmtrack_dec *dec, const Pmtrack__Batch *m,
		       uint64_t *pages)
{
	const struct dec_region *g;
	uint64_t pos = 0;

	if (m->region >= dec->nregions)
		return fail(dec, PMTRACK_SERR_RANGE, "region index %u of %zu",
			    m->region, dec->nregions);
	g = &dec->rg[m->region];
	if (!m->n_runs || m->n_runs % 2)
		return fail(dec, PMTRACK_SERR_SCHEMA, "%zu run fields",
			    m->n_runs);
	for (size_t i = 0; i < m->n_runs; i += 2) {
		uint64_t gap = m->runs[i], len = m->runs[i + 1];

		if ((i && !gap) || !len)
			return fail(dec, PMTRACK_SERR_SCHEMA,
				    "run %zu has gap %llu length %llu", i / 2,
				    (unsigned long long)gap,
				    (unsigned long long)len);
		if (gap > g->pages - pos || len > g->pages - pos - gap)
			return fail(dec, PMTRACK_SERR_RANGE,
				    "region %u: run %zu ends past page %llu",
				    m->region, i / 2,
				    (unsigned long long)g->pages);
		pos += gap;
		dec->work += span_words(pos, len);
		if (!pmt_bits_all(g->pending, pos, len))
			return batch_page_error(dec, m->region, g, pos, len);
		pos += len;
		*pages += len;
	}
	/* pages <= region pages, so this does not overflow */
	if (m->raw_len != *pages * dec->ps)
		return fail(dec, PMTRACK_SERR_MISMATCH,
			    "raw length %llu for %llu pages of %u bytes",
			    (unsigned long long)m->raw_len,
			    (unsigned long long)*pages, dec->ps);
	return 0;
}

/* a zstd payload into the decompression buffer: exactly raw_len bytes */
static int batch_unzstd(struct pmtrack_dec *dec, const Pmtrack__Batch *m,
			const uint8_t *payload, uint64_t plen)
{
	size_t got;

	if (grow(dec, &dec->scratch, &dec->scratch_cap, m->raw_len,
		 "decompression buffer") ||
	    need_dctx(dec))
		return dec->err;
	got = ZSTD_decompressDCtx(dec->dctx, dec->scratch, m->raw_len, payload,
				  plen);
	if (ZSTD_isError(got) || got != m->raw_len)
		return fail(dec, PMTRACK_SERR_DECOMPRESS,
			    "payload of %llu bytes: %s",
			    (unsigned long long)plen,
			    ZSTD_isError(got) ? ZSTD_getErrorName(got)
					      : "wrong size");
	return 0;
}

/*
 * The pages a BATCH carries, in run order, at *@data: its payload, or the
 * payload decompressed; and their checksum matched.
 */
static int batch_data(struct pmtrack_dec *dec, const Pmtrack__Batch *m,
		      const uint8_t *payload, uint64_t plen,
		      const uint8_t **data)
{
	switch (m->codec) {
	case PMTRACK__CODEC__RAW:
		if (plen != m->raw_len)
			return fail(dec, PMTRACK_SERR_MISMATCH,
				    "raw payload of %llu bytes for %llu",
				    (unsigned long long)plen,
				    (unsigned long long)m->raw_len);
		*data = payload;
		break;
	case PMTRACK__CODEC__ZSTD:
		if (batch_unzstd(dec, m, payload, plen))
			return dec->err;
		*data = dec->scratch;
		break;
	default:
		return fail(dec, PMTRACK_SERR_SCHEMA, "codec %d",
			    (int)m->codec);
	}
	if (CHECKSUMS_BAD(XXH3_64bits(*data, m->raw_len) != m->xxh3))
		return fail(dec, PMTRACK_SERR_CHECKSUM,
			    "region %u: pages do not match their checksum",
			    m->region);
	return 0;
}

/* the checked pages: no longer pending, to the destination and the caller */
static int batch_deliver(struct pmtrack_dec *dec, const Pmtrack__Batch *m,
			 const uint8_t *data, uint64_t pages)
{
	struct dec_region *g = &dec->rg[m->region];
	uint64_t pos = 0;

	for (size_t i = 0; i < m->n_runs; i += 2) {
		uint64_t len = m->runs[i + 1];

		pos += m->runs[i];
		pmt_bits_clear(g->pending, pos, len);
		dec->work += span_words(pos, len);
		if (deliver(dec, m->region, pos, len, data))
			return dec->err;
		data += len * dec->ps;
		pos += len;
	}
	dec->pending -= pages;
	dec->pages += pages;
	return 0;
}

static int do_batch(struct pmtrack_dec *dec, const uint8_t *meta, size_t mlen,
		    const uint8_t *payload, uint64_t plen,
		    struct pmtrack_dec_record *rec)
{
	Pmtrack__Batch *m;
	const uint8_t *data = NULL;
	uint64_t pages = 0;
	int r;

	if (dec->phase != PH_ROUND)
		return fail(dec, PMTRACK_SERR_ORDER, "BATCH outside a round");
	m = unpack(dec, &pmtrack__batch__descriptor, meta, mlen);
	if (!m)
		return dec->err;
	r = batch_check(dec, m, &pages) ||
	    batch_data(dec, m, payload, plen, &data) ||
	    batch_deliver(dec, m, data, pages);
	if (!r) {
		dec->nbatch++;
		rec->region = m->region;
		rec->codec = (uint32_t)m->codec;
		rec->pages = pages;
		rec->runs = m->n_runs / 2;
	}
	pack_free(dec, m);
	return r ? dec->err : 0;
}

/* --- END ---------------------------------------------------------------- */

/* END's counts are the stream's, and a digest is one */
static int end_check(struct pmtrack_dec *dec, const Pmtrack__End *m)
{
	if (m->rounds != dec->rounds || m->pages != dec->pages ||
	    m->zero_pages != dec->zero_pages)
		return fail(dec, PMTRACK_SERR_MISMATCH,
			    "END counts %llu rounds, %llu pages, %llu zero "
			    "pages; the stream had %llu, %llu, %llu",
			    (unsigned long long)m->rounds,
			    (unsigned long long)m->pages,
			    (unsigned long long)m->zero_pages,
			    (unsigned long long)dec->rounds,
			    (unsigned long long)dec->pages,
			    (unsigned long long)dec->zero_pages);
	if (m->has_digest && m->digest.len != PMTRACK_DIGEST_LEN)
		return fail(dec, PMTRACK_SERR_SCHEMA, "digest of %zu bytes",
			    m->digest.len);
	if (m->has_state && m->state.len != PMTRACK_DIGEST_LEN)
		return fail(dec, PMTRACK_SERR_SCHEMA,
			    "state digest of %zu bytes", m->state.len);
	return 0;
}

/*
 * END's state digest against the page sums of what was applied: equal
 * means every page the stream (and its chain) sent arrived, last content
 * of each, and nothing else.
 */
static int end_state(struct pmtrack_dec *dec, const Pmtrack__End *m,
		     struct pmtrack_dec_end *e)
{
	uint8_t mine[PMTRACK_DIGEST_LEN];

	e->state = m->state.data;
	if (!dec->sums || pmtrack_pagesums_state(dec->sums, mine))
		return 0;
	if (memcmp(mine, m->state.data, sizeof(mine)))
		return fail(dec, PMTRACK_SERR_DIGEST,
			    "the pages applied do not match the stream's "
			    "state digest");
	e->state_verified = 1;
	return 0;
}

/*
 * END's digest, for the caller; checked when every region has a
 * destination, in one read of all of them.
 */
static int end_digest(struct pmtrack_dec *dec, const Pmtrack__End *m,
		      struct pmtrack_dec_end *e)
{
	uint8_t mine[PMTRACK_DIGEST_LEN];
	struct iovec *iov;
	size_t i;
	int r;

	e->digest = m->digest.data;
	for (i = 0; i < dec->nregions && dec->rg[i].dest; i++)
		;
	dec->work += i;
	if (i < dec->nregions)
		return 0;
	iov = dec_calloc(dec, dec->nregions * sizeof(*iov), "digest");
	if (!iov)
		return dec->err;
	for (i = 0; i < dec->nregions; i++)
		iov[i] = (struct iovec){ dec->rg[i].dest,
					 dec->regions[i].length };
	dec->work += dec->nregions;
	r = pmtrack_digest(iov, dec->nregions, mine);
	dec_free(dec, iov, dec->nregions * sizeof(*iov));
	if (r)
		return fail(dec, PMTRACK_SERR_NOMEM, "digest state");
	if (memcmp(mine, m->digest.data, sizeof(mine)))
		return fail(dec, PMTRACK_SERR_DIGEST,
			    "destination memory does not match the stream's "
			    "digest");
	e->digest_verified = 1;
	return 0;
}

/* the stream is over: tell the caller */
static int end_deliver(struct pmtrack_dec *dec,
		       const struct pmtrack_dec_end *e)
{
	int r;

	dec->phase = PH_DONE;
	if (!dec->ops.end)
		return 0;
	r = dec->ops.end(dec->arg, e);
	if (r)
		return fail_cb(dec, r, "end");
	return 0;
}

static int do_end(struct pmtrack_dec *dec, const uint8_t *meta, size_t len)
{
	struct pmtrack_dec_end e = { 0 };
	Pmtrack__End *m;
	int r;

	if (dec->phase == PH_START)
		return fail(dec, PMTRACK_SERR_ORDER, "END before HEADER");
	if (round_complete(dec))
		return dec->err;
	m = unpack(dec, &pmtrack__end__descriptor, meta, len);
	if (!m)
		return dec->err;
	e.rounds = m->rounds;
	e.pages = m->pages;
	e.zero_pages = m->zero_pages;
	r = end_check(dec, m) || (m->has_state && end_state(dec, m, &e)) ||
	    (m->has_digest && end_digest(dec, m, &e)) || end_deliver(dec, &e);
	if (!r && dec->sums)
		pmt_ps_ended(dec->sums, dec->stream_id);
	pack_free(dec, m);
	return r ? dec->err : 0;
}

/* --- framing ------------------------------------------------------------ */

static int check_preamble(struct pmtrack_dec *dec, const uint8_t *p)
{
	uint32_t flags;

	if (memcmp(p, PMT_STREAM_MAGIC, PMT_MAGIC_LEN))
		return fail(dec, PMTRACK_SERR_MAGIC,
			    "not a libpmtrack stream (bad magic)");
	dec->version = pmt_get_le32(p + 8);
	flags = pmt_get_le32(p + 12);
	if (dec->version != PMTRACK_STREAM_VERSION)
		return fail(dec, PMTRACK_SERR_VERSION,
			    "format version %u; this library reads %u",
			    dec->version, PMTRACK_STREAM_VERSION);
	if (flags)
		return fail(dec, PMTRACK_SERR_VERSION,
			    "preamble flags %#x unknown", flags);
	return 0;
}

static int check_frame(struct pmtrack_dec *dec, const uint8_t *raw)
{
	struct pmt_frame *f = &dec->fr;
	bool known;

	memcpy(dec->frame_raw, raw, PMTRACK_FRAME_LEN);
	pmt_frame_get(raw, f);
	known = f->type >= PMTRACK_REC_HEADER && f->type <= PMTRACK_REC_END;
	if (f->reserved || (f->flags & ~PMTRACK_FRAME_SKIPPABLE))
		return fail(dec, PMTRACK_SERR_FRAME,
			    "reserved bits set (flags %#x, reserved %#x)",
			    f->flags, f->reserved);
	if (!known && !(f->flags & PMTRACK_FRAME_SKIPPABLE))
		return fail(dec, PMTRACK_SERR_FRAME, "unknown record type %u",
			    f->type);
	if (known && f->type != PMTRACK_REC_BATCH && f->payload_len)
		return fail(dec, PMTRACK_SERR_FRAME,
			    "%s record with a %llu byte payload",
			    rec_names[f->type],
			    (unsigned long long)f->payload_len);
	if (f->payload_len > dec->limit ||
	    f->meta_len > dec->limit - f->payload_len)
		return fail(
			dec, PMTRACK_SERR_LIMIT,
			"record of %u + %llu bytes exceeds the %zu byte limit",
			f->meta_len, (unsigned long long)f->payload_len,
			dec->limit);
	dec->body_len = f->meta_len + f->payload_len;
	return 0;
}

static int do_record(struct pmtrack_dec *dec, const uint8_t *body)
{
	struct pmt_frame *f = &dec->fr;
	struct pmtrack_dec_record rec = {
		.offset = dec->rec_off,
		.type = f->type,
		.flags = f->flags,
		.meta_len = f->meta_len,
		.payload_len = f->payload_len,
	};
	int r = 0;

	dec->records++;
	if (CHECKSUMS_BAD(pmt_frame_check(dec->frame_raw, body, f->meta_len) !=
			  f->check))
		return fail(dec, PMTRACK_SERR_CHECKSUM,
			    "record checksum mismatch (type %u, %u meta bytes)",
			    f->type, f->meta_len);
	switch (f->type) {
	case PMTRACK_REC_HEADER:
		r = do_header(dec, body, f->meta_len);
		break;
	case PMTRACK_REC_ROUND:
		r = do_round(dec, body, f->meta_len);
		break;
	case PMTRACK_REC_BATCH:
		r = do_batch(dec, body, f->meta_len, body + f->meta_len,
			     f->payload_len, &rec);
		break;
	case PMTRACK_REC_END:
		r = do_end(dec, body, f->meta_len);
		break;
	default:
		if (dec->phase == PH_START)
			r = fail(dec, PMTRACK_SERR_ORDER,
				 "record type %u before HEADER", f->type);
		break; /* skippable */
	}
	if (!r && dec->ops.record) {
		r = dec->ops.record(dec->arg, &rec);
		if (r)
			r = fail_cb(dec, r, "record");
	}
	return r;
}

/*
 * Collect the preamble or a frame, whichever is next, from up to @len
 * bytes at @p; *@take says how many were used.  Once complete, it is
 * checked and the state moves on.
 */
static int feed_small(struct pmtrack_dec *dec, const uint8_t *p, size_t len,
		      size_t *take)
{
	size_t need;

	if (dec->phase == PH_DONE) {
		dec->rec_off = dec->offset;
		return fail(dec, PMTRACK_SERR_TRAILING, "%zu bytes after END",
			    len);
	}
	need = dec->state == ST_PREAMBLE ? PMTRACK_STREAM_PREAMBLE_LEN
					 : PMTRACK_FRAME_LEN;
	*take = need - dec->small_len;
	if (*take > len)
		*take = len;
	memcpy(dec->small + dec->small_len, p, *take);
	dec->small_len += *take;
	if (dec->small_len < need)
		return 0;
	dec->small_len = 0;
	dec->rec_off = dec->offset + *take - need;
	if (dec->state == ST_PREAMBLE) {
		if (check_preamble(dec, dec->small))
			return dec->err;
		dec->state = ST_FRAME;
		return 0;
	}
	if (check_frame(dec, dec->small))
		return dec->err;
	dec->state = ST_BODY;
	return 0;
}

/*
 * Collect the body of the current record from up to @len bytes at @p
 * (*@take says how many were used) and decode it once complete: in place
 * when it is all there, else from the record buffer.
 */
static int feed_body(struct pmtrack_dec *dec, const uint8_t *p, size_t len,
		     size_t *take)
{
	if (!dec->rbuf_len && len >= dec->body_len) {
		*take = (size_t)dec->body_len;
		if (do_record(dec, p))
			return dec->err;
		dec->state = ST_FRAME;
		return 0;
	}
	if (grow(dec, &dec->rbuf, &dec->rbuf_cap, dec->body_len,
		 "record buffer"))
		return dec->err;
	*take = (size_t)dec->body_len - dec->rbuf_len;
	if (*take > len)
		*take = len;
	memcpy(dec->rbuf + dec->rbuf_len, p, *take);
	dec->rbuf_len += *take;
	if (dec->rbuf_len < dec->body_len)
		return 0;
	dec->rbuf_len = 0;
	if (do_record(dec, dec->rbuf))
		return dec->err;
	dec->state = ST_FRAME;
	return 0;
}

/*
 * The bytes taken count towards the offset once the preamble, frame or
 * body they complete passed (a part of one counts at once); an empty body
 * is decoded after its frame counted.
 */
int pmtrack_dec_feed(struct pmtrack_dec *dec, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!dec || (len && !buf))
		return -EINVAL;
	if (dec->err)
		return dec->err;
	while (len) {
		size_t take = 0;

		if (dec->state == ST_BODY ? feed_body(dec, p, len, &take)
					  : feed_small(dec, p, len, &take))
			return dec->err;
		dec->offset += take;
		p += take;
		len -= take;
		if (dec->state == ST_BODY && !dec->body_len) {
			/* an empty body */
			if (do_record(dec, p))
				return dec->err;
			dec->state = ST_FRAME;
		}
	}
	return 0;
}

int pmtrack_dec_finish(struct pmtrack_dec *dec)
{
	if (!dec)
		return -EINVAL;
	if (dec->err)
		return dec->err;
	if (dec->phase != PH_DONE || dec->state != ST_FRAME || dec->small_len)
		return fail(dec, PMTRACK_SERR_TRUNCATED, "the stream ends %s",
			    dec->phase == PH_START && dec->state == ST_PREAMBLE
				    ? "before its preamble"
			    : dec->state == ST_BODY || dec->small_len
				    ? "inside a record"
				    : "before its END record");
	return 0;
}

int pmtrack_dec_read_fd(struct pmtrack_dec *dec, int fd)
{
	size_t cap = 1u << 20;
	char *buf;
	int r = 0;

	if (!dec || fd < 0)
		return -EINVAL;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf, cap);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (!n) {
			r = pmtrack_dec_finish(dec);
			break;
		}
		r = pmtrack_dec_feed(dec, buf, (size_t)n);
		if (r)
			break;
	}
	free(buf);
	return r;
}

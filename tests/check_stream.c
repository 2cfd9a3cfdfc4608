/* SPDX-License-Identifier: MIT */
/*
 * The stream format: round trips of random region sets, bitmaps and pages;
 * golden files; every class of malformed input; the encoder's API errors
 * and adaptive compression; what decoding costs, in the decoder's work.
 *
 *   check_stream                     run the suite (golden files from
 *                                    PMT_GOLDEN_DIR, set by CTest)
 *   check_stream --write-golden DIR  regenerate the golden files (only
 *                                    for a deliberate format change)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include <pmtrack/stream.h>

#include "batch.pb-c.h"
#include "end.pb-c.h"
#include "header.pb-c.h"
#include "helpers.h"
#include "round.pb-c.h"

#define MAXR 8

/* --- a byte sink for the encoder ----------------------------------------- */

struct sink {
	uint8_t *buf;
	size_t len, cap;
	int fail_at; /* fail the n-th write (1-based), 0 = never */
	int writes;
};

static int sink_write(void *arg, const struct iovec *iov, int n)
{
	struct sink *s = arg;

	if (s->fail_at && ++s->writes == s->fail_at)
		return -ENOSPC;
	for (int i = 0; i < n; i++) {
		if (!iov[i].iov_len)
			continue;
		if (s->len + iov[i].iov_len > s->cap) {
			s->cap = (s->len + iov[i].iov_len) * 2 + 4096;
			s->buf = realloc(s->buf, s->cap);
			ck_assert_ptr_nonnull(s->buf);
		}
		memcpy(s->buf + s->len, iov[i].iov_base, iov[i].iov_len);
		s->len += iov[i].iov_len;
	}
	return 0;
}

/* --- source memory -------------------------------------------------------- */

struct src {
	size_t n, ps;
	struct pmtrack_stream_region rg[MAXR];
	uint8_t *mem[MAXR];
	size_t pages[MAXR];
	uint64_t *dirty[MAXR], *swap[MAXR];
};

/* one page: zero, random, text-like or a repeated byte */
static void fill_page(uint8_t *p, size_t len, uint64_t *rs)
{
	uint64_t kind = t_rand(rs) % 4;

	switch (kind) {
	case 0:
		memset(p, 0, len);
		break;
	case 1:
		for (size_t i = 0; i < len; i++)
			p[i] = (uint8_t)t_rand(rs);
		break;
	case 2:
		for (size_t i = 0; i < len; i++)
			p[i] = (uint8_t)("pagemap scan dirty "[t_rand(rs) %
							       19]);
		break;
	default:
		memset(p, (int)(t_rand(rs) % 255 + 1), len);
		break;
	}
}

static void src_init(struct src *s, size_t n, const size_t *pages,
		     size_t pagesz, uint64_t *rs)
{
	memset(s, 0, sizeof(*s));
	s->n = n;
	s->ps = pagesz;
	for (size_t i = 0; i < n; i++) {
		size_t nw = (pages[i] + 63) / 64;

		s->pages[i] = pages[i];
		s->mem[i] = malloc(pages[i] * pagesz);
		s->dirty[i] = calloc(nw, 8);
		s->swap[i] = calloc(nw, 8);
		ck_assert(s->mem[i] && s->dirty[i] && s->swap[i]);
		s->rg[i] = (struct pmtrack_stream_region){
			.id = (uint32_t)(100 + 7 * i),
			.flags = (uint32_t)i,
			.start = (uint64_t)(i + 1) << 32,
			.length = pages[i] * pagesz,
			.name = i % 2 ? "odd" : NULL,
		};
		for (size_t p = 0; p < pages[i]; p++)
			fill_page(s->mem[i] + p * pagesz, pagesz, rs);
	}
}

static void src_free(struct src *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->mem[i]);
		free(s->dirty[i]);
		free(s->swap[i]);
	}
}

static void src_digest(const struct src *s, uint8_t d[PMTRACK_DIGEST_LEN])
{
	struct iovec iov[MAXR];

	for (size_t i = 0; i < s->n; i++)
		iov[i] = (struct iovec){ s->mem[i], s->rg[i].length };
	ck_assert_int_eq(pmtrack_digest(iov, s->n, d), 0);
}

/* a round with every region, its dirty/swap bits as in s */
static int src_round(struct pmtrack_enc *e, struct src *s, uint64_t round)
{
	struct pmtrack_enc_region_round rr[MAXR];

	for (size_t i = 0; i < s->n; i++)
		rr[i] = (struct pmtrack_enc_region_round){
			.region = (uint32_t)i,
			.dirty = s->dirty[i],
			.swap = s->swap[i],
			.mem = s->mem[i],
		};
	return pmtrack_enc_round(e, round, rr, s->n);
}

static void set_all(uint64_t *w, size_t pages)
{
	memset(w, 0, (pages + 63) / 64 * 8);
	for (size_t p = 0; p < pages; p++)
		w[p / 64] |= 1ULL << (p % 64);
}

static bool bit(const uint64_t *w, size_t p)
{
	return w[p / 64] >> (p % 64) & 1;
}

/* --- receiver ------------------------------------------------------------- */

struct rx {
	bool dest; /* give the decoder destinations */
	size_t n, ps;
	uint8_t *mem[MAXR];
	size_t len[MAXR];
	void *map[MAXR];
	size_t maplen[MAXR];
	/* the source's maps, compared with round @expect_round's */
	const struct src *expect;
	uint64_t expect_round;
	int bad_maps, compared;
	/* counters */
	int headers, rounds, ends, verified, state_verified, has_state;
	uint64_t pages, zeros;
	const uint8_t *parent;
	bool had_parent;
	int fail_in; /* 1 header, 2 round, 3 pages, 4 record, 5 end */
};

/* a destination flush against a PROT_NONE page, canaries below */
static uint8_t *guarded(size_t len, void **map, size_t *maplen)
{
	size_t sys = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (len + sys - 1) / sys * sys;
	uint8_t *m = mmap(NULL, body + 2 * sys, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	t_check(m != MAP_FAILED && !mprotect(m, sys, PROT_NONE) &&
			!mprotect(m + sys + body, sys, PROT_NONE),
		"guarded mapping: %s", strerror(errno));
	memset(m + sys, 0xA5, body - len);
	*map = m;
	*maplen = body + 2 * sys;
	return m + sys + body - len;
}

static void rx_check_canary(const struct rx *rx)
{
	size_t sys = (size_t)sysconf(_SC_PAGESIZE);

	for (size_t i = 0; i < rx->n; i++) {
		const uint8_t *lo = (const uint8_t *)rx->map[i] + sys;

		for (; lo < rx->mem[i]; lo++)
			t_check(*lo == 0xA5, "write below region %zu", i);
	}
}

static void rx_free(struct rx *rx)
{
	for (size_t i = 0; i < rx->n; i++)
		if (rx->map[i])
			munmap(rx->map[i], rx->maplen[i]);
	rx->n = 0;
}

static int rx_header(void *arg, struct pmtrack_dec *dec,
		     const struct pmtrack_dec_header *h)
{
	struct rx *rx = arg;

	rx->headers++;
	rx->ps = h->page_size;
	rx->had_parent = h->parent_id != NULL;
	if (rx->fail_in == 1)
		return -ECANCELED;
	if (!rx->dest || h->nregions > MAXR)
		return 0;
	rx->n = h->nregions;
	for (size_t i = 0; i < h->nregions; i++) {
		if (h->regions[i].length > (64u << 20))
			return 0;
		rx->len[i] = h->regions[i].length;
		rx->mem[i] = guarded(rx->len[i], &rx->map[i], &rx->maplen[i]);
		t_check(!pmtrack_dec_set_dest(dec, (uint32_t)i, rx->mem[i],
					      rx->len[i]),
			"set_dest");
	}
	return 0;
}

static int rx_round(void *arg, struct pmtrack_dec *dec, uint64_t round)
{
	struct rx *rx = arg;

	rx->rounds++;
	if (rx->fail_in == 2)
		return -ECANCELED;
	if (rx->expect && round == rx->expect_round) {
		const struct src *s = rx->expect;

		rx->compared++;
		for (size_t i = 0; i < s->n; i++) {
			size_t nw, want = (s->pages[i] + 63) / 64;
			const uint64_t *d = pmtrack_dec_map(
				dec, (uint32_t)i, PMTRACK_MAP_DIRTY, &nw);
			const uint64_t *w = pmtrack_dec_map(
				dec, (uint32_t)i, PMTRACK_MAP_SWAP, NULL);
			const uint64_t *z = pmtrack_dec_map(
				dec, (uint32_t)i, PMTRACK_MAP_ZERO, NULL);

			if (!d || !w || !z || nw != want) {
				rx->bad_maps++;
				continue;
			}
			/* bits past the last page are clear */
			if (s->pages[i] % 64 &&
			    (d[nw - 1] | w[nw - 1] | z[nw - 1]) >>
				    (s->pages[i] % 64))
				rx->bad_maps++;
			for (size_t p = 0; p < s->pages[i]; p++) {
				bool zero = bit(s->dirty[i], p);

				for (size_t b = 0; zero && b < s->ps; b++)
					zero = !s->mem[i][p * s->ps + b];
				if (bit(d, p) != bit(s->dirty[i], p) ||
				    bit(w, p) != bit(s->swap[i], p) ||
				    bit(z, p) != zero)
					rx->bad_maps++;
			}
		}
	}
	return 0;
}

static int rx_pages(void *arg, uint32_t region, uint64_t first, uint64_t n,
		    const void *data)
{
	struct rx *rx = arg;

	(void)region;
	(void)first;
	if (data)
		rx->pages += n;
	else
		rx->zeros += n;
	return rx->fail_in == 3 ? -ECANCELED : 0;
}

static int rx_record(void *arg, const struct pmtrack_dec_record *r)
{
	struct rx *rx = arg;

	(void)r;
	return rx->fail_in == 4 ? -ECANCELED : 0;
}

static int rx_end(void *arg, const struct pmtrack_dec_end *e)
{
	struct rx *rx = arg;

	rx->ends++;
	rx->verified = e->digest_verified;
	rx->state_verified = e->state_verified;
	rx->has_state = e->state != NULL;
	return rx->fail_in == 5 ? -ECANCELED : 0;
}

static const struct pmtrack_dec_ops rx_ops = {
	.header = rx_header,
	.round = rx_round,
	.pages = rx_pages,
	.record = rx_record,
	.end = rx_end,
};

/* Decode @len bytes fed in pieces of @chunk (0: at once); the result of
 * the first failing call or of finish, and the reason. */
static int decode(const uint8_t *buf, size_t len, size_t chunk, size_t limit,
		  struct rx *rx, int *reason)
{
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &rx_ops, .arg = rx,
		     .mem_limit = limit);
	struct pmtrack_dec *dec;
	int r = 0, why;

	t_check(!pmtrack_dec_new(&o, &dec), "pmtrack_dec_new");
	if (!chunk)
		chunk = len ? len : 1;
	for (size_t off = 0; off < len && !r; off += chunk)
		r = pmtrack_dec_feed(dec, buf + off,
				     len - off < chunk ? len - off : chunk);
	if (!r)
		r = pmtrack_dec_finish(dec);
	pmtrack_dec_error(dec, &why);
	/* an error has a message, and sticks */
	t_check(!r || *pmtrack_dec_error(dec, NULL), "error without a message");
	t_check(!r || pmtrack_dec_feed(dec, "x", 1) == r, "error not sticky");
	if (reason)
		*reason = why;
	pmtrack_dec_free(dec);
	return r;
}

static struct pmtrack_enc *enc_new(struct sink *k, const struct src *s,
				   int level, unsigned int flags,
				   uint32_t batch)
{
	PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write, .write_arg = k,
		     .page_size = s->ps, .level = level, .flags = flags,
		     .batch_pages = batch, .producer = "check_stream",
		     .stream_id = (const uint8_t *)"0123456789abcdef");
	struct pmtrack_enc *e;

	ck_assert_int_eq(pmtrack_enc_new(&o, s->rg, s->n, &e), 0);
	return e;
}

/* A valid stream: 2 regions of 12 and 30 pages of @pagesz bytes, 2
 * rounds, batches of 4 pages. */
static void stream_of(struct sink *k, struct src *s, int level, size_t pagesz)
{
	static const size_t pages[] = { 12, 30 };
	uint64_t rs = 42;
	uint8_t d[PMTRACK_DIGEST_LEN];
	struct pmtrack_enc *e;

	src_init(s, 2, pages, pagesz, &rs);
	memset(k, 0, sizeof(*k));
	e = enc_new(k, s, level, 0, 4);
	set_all(s->dirty[0], 12);
	set_all(s->dirty[1], 30);
	s->swap[1][0] = 0x30;
	ck_assert_int_eq(src_round(e, s, 0), 0);
	memset(s->dirty[0], 0, 8);
	s->dirty[1][0] = 0x0f00f0;
	memset(s->mem[1] + 5 * pagesz, 0x77, pagesz);
	memset(s->mem[1] + 6 * pagesz, 0, pagesz);
	memset(s->swap[1], 0, 8);
	ck_assert_int_eq(src_round(e, s, 3), 0);
	src_digest(s, d);
	ck_assert_int_eq(pmtrack_enc_end(e, d), 0);
	pmtrack_enc_free(e);
}

static void small_stream(struct sink *k, struct src *s, int level)
{
	stream_of(k, s, level, 1024);
}

/* --- round trips ---------------------------------------------------------- */

static void mutate(struct src *s, uint64_t *rs, bool first)
{
	for (size_t i = 0; i < s->n; i++) {
		size_t np = s->pages[i];

		memset(s->dirty[i], 0, (np + 63) / 64 * 8);
		memset(s->swap[i], 0, (np + 63) / 64 * 8);
		for (size_t p = 0; p < np; p++) {
			bool d = first || t_rand(rs) % 3 == 0;

			if (d && !first && t_rand(rs) % 2)
				fill_page(s->mem[i] + p * s->ps, s->ps, rs);
			if (d)
				s->dirty[i][p / 64] |= 1ULL << (p % 64);
			if (t_rand(rs) % 5 == 0)
				s->swap[i][p / 64] |= 1ULL << (p % 64);
		}
		/* bits past the last page must be ignored */
		if (np % 64) {
			s->dirty[i][np / 64] |= ~0ULL << (np % 64);
			s->swap[i][np / 64] |= ~0ULL << (np % 64);
		}
	}
}

START_TEST(round_trip_random)
{
	static const int levels[] = { 0, 1, 3, -5 };
	uint64_t rs = 0x9e3779b97f4a7c15ULL * (uint64_t)(_i + 1);
	size_t pages[MAXR];
	size_t n = 1 + t_rand(&rs) % 5;
	size_t pagesz = t_rand(&rs) % 3 ? 4096 : 512u << (t_rand(&rs) % 4);
	int level = levels[t_rand(&rs) % 4];
	unsigned int flags = (unsigned int)(t_rand(&rs) % 4);
	uint32_t batch = t_rand(&rs) % 2 ? 0 : (uint32_t)(1 + t_rand(&rs) % 70);
	int rounds = 1 + (int)(t_rand(&rs) % 4), r, why;
	uint8_t d[PMTRACK_DIGEST_LEN];
	struct pmtrack_enc_stats st = { .sz = sizeof(st) };
	struct sink k = { 0 };
	struct rx rx = { .dest = true };
	struct src s;
	struct pmtrack_enc *e;

	for (size_t i = 0; i < n; i++)
		pages[i] = 1 + t_rand(&rs) % 300;
	src_init(&s, n, pages, pagesz, &rs);
	e = enc_new(&k, &s, level, flags, batch);
	for (int round = 0; round < rounds; round++) {
		mutate(&s, &rs, round == 0);
		ck_assert_int_eq(src_round(e, &s, (uint64_t)round * 2 + 1), 0);
	}
	src_digest(&s, d);
	ck_assert_int_eq(pmtrack_enc_end(e, d), 0);
	ck_assert_int_eq(pmtrack_enc_get_stats(e, &st), 0);
	ck_assert_uint_eq(st.wire_bytes, k.len);
	ck_assert_uint_eq(st.rounds, (uint64_t)rounds);
	pmtrack_enc_free(e);

	/* the last round's maps are checked in the round callback */
	r = decode(k.buf, k.len, 1 + t_rand(&rs) % 5000, 0, &rx, &why);
	ck_assert_msg(r == 0, "seed %d: %s", _i,
		      pmtrack_stream_error_name(why));
	ck_assert_int_eq(rx.ends, 1);
	ck_assert_int_eq(rx.verified, 1);
	ck_assert_uint_eq(rx.pages, st.pages);
	ck_assert_uint_eq(rx.zeros, st.zero_pages);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(!memcmp(rx.mem[i], s.mem[i], s.rg[i].length),
			      "seed %d region %zu differs", _i, i);
	rx_check_canary(&rx);
	rx_free(&rx);

	/* the last round's maps arrive as the source set them */
	rx = (struct rx){ .expect = &s,
			  .expect_round = (uint64_t)(rounds - 1) * 2 + 1 };
	ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &rx, NULL), 0);
	ck_assert_int_eq(rx.compared, 1);
	ck_assert_int_eq(rx.bad_maps, 0);
	free(k.buf);
	src_free(&s);
}
END_TEST

/* The dirty, swap and zero maps arrive as sent: one round per stream. */
START_TEST(maps_round_trip)
{
	uint64_t rs = 7 + (uint64_t)_i;
	/* 1: one page; 64/65: word edges; 5000: runs vs words */
	static const size_t sizes[] = { 1, 64, 65, 5000 };
	size_t pages[2] = { sizes[_i % 4], 1 + t_rand(&rs) % 700 };
	struct sink k = { 0 };
	struct rx rx = { 0 };
	struct src s;
	struct pmtrack_enc *e;

	src_init(&s, 2, pages, 512, &rs);
	e = enc_new(&k, &s, 0, 0, 0);
	for (size_t i = 0; i < 2; i++) {
		for (size_t p = 0; p < pages[i]; p++) {
			/* dense alternating, sparse, all: by test index */
			bool d = _i < 4	  ? p % 2 == 0
				 : _i < 8 ? t_rand(&rs) % 50 == 0
					  : true;

			if (d)
				s.dirty[i][p / 64] |= 1ULL << (p % 64);
			if (t_rand(&rs) % 2)
				s.swap[i][p / 64] |= 1ULL << (p % 64);
		}
	}
	ck_assert_int_eq(src_round(e, &s, 5), 0);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	pmtrack_enc_free(e);
	rx.expect = &s;
	rx.expect_round = 5;
	ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &rx, NULL), 0);
	ck_assert_int_eq(rx.rounds, 1);
	ck_assert_int_eq(rx.compared, 1);
	ck_assert_int_eq(rx.bad_maps, 0);
	ck_assert_int_eq(rx.verified, 0); /* no digest sent */
	free(k.buf);
	src_free(&s);
}
END_TEST

/* Zero pages cost bits: 4096 zero pages in one round take a few bytes. */
START_TEST(zero_pages_are_bits)
{
	size_t pages = 4096;
	struct sink k = { 0 };
	struct rx rx = { .dest = true };
	struct pmtrack_enc_stats st = { .sz = sizeof(st) };
	uint64_t rs = 1;
	struct src s;
	struct pmtrack_enc *e;
	size_t before;

	src_init(&s, 1, &pages, 4096, &rs);
	memset(s.mem[0], 0, pages * 4096);
	e = enc_new(&k, &s, 0, 0, 0);
	before = k.len;
	set_all(s.dirty[0], pages);
	ck_assert_int_eq(src_round(e, &s, 0), 0);
	ck_assert_int_eq(pmtrack_enc_get_stats(e, &st), 0);
	ck_assert_uint_eq(st.zero_pages, pages);
	ck_assert_uint_eq(st.pages, 0);
	ck_assert_uint_eq(st.batches, 0);
	/* frame + a round record with two one-run bitmaps */
	ck_assert_uint_le(k.len - before, 64);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	pmtrack_enc_free(e);
	ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &rx, NULL), 0);
	ck_assert_uint_eq(rx.zeros, pages);
	for (size_t i = 0; i < pages * 4096; i++)
		t_check(!rx.mem[0][i], "byte %zu", i);
	rx_free(&rx);
	free(k.buf);
	src_free(&s);
}
END_TEST

static struct pmtrack_enc_stats adaptive_run(bool random, unsigned int flags,
					     int level, uint64_t link_bw)
{
	size_t pages = 2048;
	struct sink k = { 0 };
	struct pmtrack_enc_stats st = { .sz = sizeof(st) };
	uint64_t rs = 3;
	struct src s;
	struct pmtrack_enc *e;
	PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write, .write_arg = &k,
		     .level = level, .flags = flags, .batch_pages = 16,
		     .page_size = 4096, .link_bw = link_bw);

	src_init(&s, 1, &pages, 4096, &rs);
	for (size_t p = 0; p < pages; p++) {
		uint8_t *pg = s.mem[0] + p * 4096;

		for (size_t b = 0; b < 4096; b++)
			pg[b] = random ? (uint8_t)t_rand(&rs)
				       : (uint8_t)("abcabd"[b % 6] + p % 3);
	}
	ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 1, &e), 0);
	set_all(s.dirty[0], pages);
	ck_assert_int_eq(src_round(e, &s, 0), 0);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	ck_assert_int_eq(pmtrack_enc_get_stats(e, &st), 0);
	pmtrack_enc_free(e);
	ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &(struct rx){ 0 }, NULL),
			 0);
	free(k.buf);
	src_free(&s);
	return st;
}

START_TEST(adaptive_compression)
{
	struct pmtrack_enc_stats st;

	/* fixed level: random data is never sent larger than raw */
	st = adaptive_run(true, 0, 1, 0);
	ck_assert_uint_eq(st.batches, 128);
	ck_assert_uint_eq(st.batches_zstd, 0);
	ck_assert_uint_le(st.payload_bytes, st.page_bytes);
	/* adaptive, incompressible: most batches are not even tried */
	st = adaptive_run(true, PMTRACK_ENC_ADAPTIVE, 1, 0);
	ck_assert_uint_eq(st.batches_zstd, 0);
	ck_assert_uint_ge(st.skipped_incompressible, 100);
	/* adaptive, compressible, slow link (1 MB/s): everything compressed */
	st = adaptive_run(false, PMTRACK_ENC_ADAPTIVE, 3, 1000000);
	ck_assert_uint_eq(st.batches_zstd, 128);
	ck_assert_uint_eq(st.skipped_link + st.skipped_incompressible, 0);
	ck_assert_uint_lt(st.payload_bytes, st.page_bytes / 10);
	/* adaptive, compressible, a link faster than any compressor: raw */
	st = adaptive_run(false, PMTRACK_ENC_ADAPTIVE, 19, 1ULL << 50);
	ck_assert_uint_ge(st.skipped_link, 100);
	ck_assert_uint_lt(st.batches_zstd, 28);
	/* STABLE raw batches go straight from memory */
	st = adaptive_run(false, PMTRACK_ENC_STABLE, 0, 0);
	ck_assert_uint_eq(st.payload_bytes, st.page_bytes);
}
END_TEST

/*
 * Without PMTRACK_ENC_STABLE memory may change while it is encoded: every
 * batch still matches its checksum.  The writer is another process on
 * shared memory (a thread would be a data race by design).
 */
START_TEST(concurrent_writes)
{
	size_t pages = 512, len = pages * 4096;
	uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct pmtrack_stream_region rg = { .id = 1, .length = len };
	uint64_t *dirty = calloc(pages / 64, 8);
	struct sink k = { 0 };
	struct pmtrack_enc *e;
	pid_t child;
	int st;

	ck_assert(mem != MAP_FAILED && dirty);
	memset(mem, 1, len);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		uint64_t rs = 5;

		for (;;)
			mem[t_rand(&rs) % len] = (uint8_t)t_rand(&rs);
	}
	for (int level = 0; level <= 1; level++) {
		PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write,
			     .write_arg = &k, .level = level,
			     .page_size = 4096);

		k.len = 0;
		ck_assert_int_eq(pmtrack_enc_new(&o, &rg, 1, &e), 0);
		for (uint64_t round = 0; round < 20; round++) {
			struct pmtrack_enc_region_round rr = { 0, dirty, NULL,
							       mem };

			set_all(dirty, pages);
			ck_assert_int_eq(pmtrack_enc_round(e, round, &rr, 1),
					 0);
		}
		ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
		pmtrack_enc_free(e);
		ck_assert_int_eq(
			decode(k.buf, k.len, 0, 0, &(struct rx){ 0 }, NULL), 0);
	}
	kill(child, SIGKILL);
	waitpid(child, &st, 0);
	free(k.buf);
	free(dirty);
	munmap(mem, len);
}
END_TEST

/* --- encoder API ---------------------------------------------------------- */

START_TEST(encoder_errors)
{
	struct pmtrack_stream_region rg[2] = { { .id = 1, .length = 8192 },
					       { .id = 2, .length = 4096 } };
	uint64_t dirty = 3;
	uint8_t mem[8192] = { 1 };
	struct pmtrack_enc_region_round rr = { 0, &dirty, NULL, mem };
	struct sink k = { 0 };
	struct pmtrack_enc *e = (void *)1;
	char longname[300];

	{
		PMTRACK_OPTS(pmtrack_enc_opts, o, .write_arg = &k);

		ck_assert_int_eq(pmtrack_enc_new(&o, rg, 2, &e), -EINVAL);
		ck_assert_ptr_null(e);
		ck_assert_int_eq(pmtrack_enc_new(NULL, rg, 2, &e), -EINVAL);
	}
	{
		PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write,
			     .write_arg = &k, .page_size = 4096);
		struct pmtrack_stream_region bad = rg[0];

		ck_assert_int_eq(pmtrack_enc_new(&o, rg, 0, &e), -EINVAL);
		bad.length = 100;
		ck_assert_int_eq(pmtrack_enc_new(&o, &bad, 1, &e), -EINVAL);
		bad = rg[0];
		bad.start = 4095;
		ck_assert_int_eq(pmtrack_enc_new(&o, &bad, 1, &e), -EINVAL);
		bad = rg[1];
		bad.id = 1; /* duplicate id */
		ck_assert_int_eq(
			pmtrack_enc_new(
				&o,
				(struct pmtrack_stream_region[]){ rg[0], bad },
				2, &e),
			-EINVAL);
		memset(longname, 'n', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = 0;
		bad = rg[0];
		bad.name = longname;
		ck_assert_int_eq(pmtrack_enc_new(&o, &bad, 1, &e), -EINVAL);
		o.page_size = 3000;
		ck_assert_int_eq(pmtrack_enc_new(&o, rg, 2, &e), -EINVAL);
		o.page_size = 4096;
		o.level = 99;
		ck_assert_int_eq(pmtrack_enc_new(&o, rg, 2, &e), -EINVAL);
		o.level = 0;
		o.flags = 1u << 7;
		ck_assert_int_eq(pmtrack_enc_new(&o, rg, 2, &e), -EINVAL);
		o.flags = 0;
		ck_assert_int_eq(k.len, 0); /* nothing written on -EINVAL */

		ck_assert_int_eq(pmtrack_enc_new(&o, rg, 2, &e), 0);
		ck_assert_int_eq(pmtrack_enc_round(e, 4, &rr, 1), 0);
		ck_assert_int_eq(pmtrack_enc_round(e, 4, &rr, 1), -EINVAL);
		rr.region = 2;
		ck_assert_int_eq(pmtrack_enc_round(e, 5, &rr, 1), -EINVAL);
		rr.region = 0;
		ck_assert_int_eq(
			pmtrack_enc_round(
				e, 5,
				(struct pmtrack_enc_region_round[]){ rr, rr },
				2),
			-EINVAL);
		rr.mem = NULL;
		ck_assert_int_eq(pmtrack_enc_round(e, 5, &rr, 1), -EINVAL);
		rr.mem = mem;
		/* the -EINVAL calls wrote nothing: the stream is still valid */
		ck_assert_int_eq(pmtrack_enc_round(e, 5, &rr, 1), 0);
		ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
		ck_assert_int_eq(pmtrack_enc_end(e, NULL), -EINVAL);
		ck_assert_int_eq(pmtrack_enc_round(e, 6, &rr, 1), -EINVAL);
		pmtrack_enc_free(e);
		ck_assert_int_eq(
			decode(k.buf, k.len, 0, 0, &(struct rx){ 0 }, NULL), 0);

		/* a failing transport: its error, then -EPIPE */
		k.len = 0;
		k.fail_at = 3; /* preamble, header, round */
		ck_assert_int_eq(pmtrack_enc_new(&o, rg, 2, &e), 0);
		ck_assert_int_eq(pmtrack_enc_round(e, 0, &rr, 1), -ENOSPC);
		ck_assert_int_eq(pmtrack_enc_round(e, 1, &rr, 1), -EPIPE);
		ck_assert_int_eq(pmtrack_enc_end(e, NULL), -EPIPE);
		pmtrack_enc_free(e);
		k.fail_at = 1;
		k.writes = 0;
		ck_assert_int_eq(pmtrack_enc_new(&o, rg, 2, &e), -ENOSPC);
	}
	free(k.buf);
}
END_TEST

/* pmtrack_write_fd and pmtrack_dec_read_fd through a pipe */
START_TEST(fd_transport)
{
	struct sink k = { 0 };
	struct src s;
	struct rx rx = { .dest = true };
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &rx_ops, .arg = &rx);
	struct pmtrack_dec *dec;
	int fds[2], st;
	pid_t child;

	small_stream(&k, &s, 1);
	ck_assert_int_eq(pipe(fds), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct iovec iov = { k.buf, k.len };

		close(fds[0]);
		_exit(pmtrack_write_fd((void *)(intptr_t)fds[1], &iov, 1) ? 1
									  : 0);
	}
	close(fds[1]);
	ck_assert_int_eq(pmtrack_dec_new(&o, &dec), 0);
	ck_assert_int_eq(pmtrack_dec_read_fd(dec, fds[0]), 0);
	pmtrack_dec_free(dec);
	close(fds[0]);
	ck_assert_int_eq(waitpid(child, &st, 0), child);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(rx.verified, 1);
	ck_assert(!memcmp(rx.mem[1], s.mem[1], s.rg[1].length));
	rx_free(&rx);
	free(k.buf);
	src_free(&s);
}
END_TEST

/* --- malformed input ------------------------------------------------------ */

/* byte offsets of the records of a stream */
static size_t record_offsets(const uint8_t *b, size_t len, size_t *off,
			     size_t max)
{
	size_t n = 0, p = PMTRACK_STREAM_PREAMBLE_LEN;

	while (p + PMTRACK_FRAME_LEN <= len && n < max) {
		uint32_t meta;
		uint64_t pay;

		memcpy(&meta, b + p + 4, 4);
		memcpy(&pay, b + p + 8, 8);
		off[n++] = p;
		p += PMTRACK_FRAME_LEN + meta + pay;
	}
	off[n] = p;
	return n;
}

static int expect_fail(const uint8_t *b, size_t len, int reason, int err)
{
	struct rx rx = { .dest = true };
	int why, r = decode(b, len, 0, 0, &rx, &why);

	ck_assert_msg(r == err && why == reason, "got %d (%s), want %d (%s)", r,
		      pmtrack_stream_error_name(why), err,
		      pmtrack_stream_error_name(reason));
	rx_check_canary(&rx);
	rx_free(&rx);
	return r;
}

START_TEST(truncated_everywhere)
{
	struct sink k;
	struct src s;

	stream_of(&k, &s, 0, 512);
	for (size_t cut = 0; cut < k.len; cut++) {
		/* destinations are costly to set up: every 37th cut */
		struct rx rx = { .dest = cut % 37 == 0 };
		int why, r = decode(k.buf, cut, 1 + cut % 977, 0, &rx, &why);

		ck_assert_msg(r == -ENODATA && why == PMTRACK_SERR_TRUNCATED,
			      "cut at %zu: %d %s", cut, r,
			      pmtrack_stream_error_name(why));
		rx_free(&rx);
	}
	free(k.buf);
	src_free(&s);
}
END_TEST

/*
 * Any single corrupted byte is caught, or changes nothing that arrives (a
 * bit of a zstd frame the decompressor does not depend on); nothing lands
 * outside the destinations either way.
 */
START_TEST(corrupt_every_byte)
{
	struct sink k;
	struct src s;
	int missed = 0;

	stream_of(&k, &s, _i, 512);
	for (size_t i = 0; i < k.len; i++) {
		struct rx rx = { .dest = true };
		int r;

		k.buf[i] ^= (uint8_t)(1u << (i % 8));
		r = decode(k.buf, k.len, 0, 0, &rx, NULL);
		k.buf[i] ^= (uint8_t)(1u << (i % 8));
		if (!r) {
			for (size_t j = 0; j < s.n; j++)
				ck_assert_msg(!memcmp(rx.mem[j], s.mem[j],
						      s.rg[j].length),
					      "flip at byte %zu of %zu went "
					      "unnoticed",
					      i, k.len);
			ck_assert_int_eq(rx.verified, 1);
			missed++;
		}
		rx_check_canary(&rx);
		rx_free(&rx);
	}
	/* raw streams have no such bits */
	if (!_i)
		ck_assert_int_eq(missed, 0);
	free(k.buf);
	src_free(&s);
}
END_TEST

START_TEST(bad_preamble_and_frames)
{
	struct sink k;
	struct src s;
	size_t off[64];
	uint8_t *b;

	small_stream(&k, &s, 0);
	record_offsets(k.buf, k.len, off, 63);
	b = malloc(k.len + 64);

	memcpy(b, k.buf, k.len);
	b[1] = 'X';
	expect_fail(b, k.len, PMTRACK_SERR_MAGIC, -EBADMSG);
	memcpy(b, k.buf, k.len);
	b[8] = 2;
	expect_fail(b, k.len, PMTRACK_SERR_VERSION, -EPROTONOSUPPORT);
	memcpy(b, k.buf, k.len);
	b[12] = 1;
	expect_fail(b, k.len, PMTRACK_SERR_VERSION, -EPROTONOSUPPORT);
	/* reserved bits of the first frame, an unknown type */
	memcpy(b, k.buf, k.len);
	b[off[0] + 2] = 1;
	expect_fail(b, k.len, PMTRACK_SERR_FRAME, -EBADMSG);
	memcpy(b, k.buf, k.len);
	b[off[0]] = 9;
	expect_fail(b, k.len, PMTRACK_SERR_FRAME, -EBADMSG);
	/* a header with a payload length */
	memcpy(b, k.buf, k.len);
	b[off[0] + 8] = 1;
	expect_fail(b, k.len, PMTRACK_SERR_FRAME, -EBADMSG);
	/* a frame claiming 2^62 payload bytes */
	memcpy(b, k.buf, k.len);
	b[off[2] + 15] = 0x40;
	expect_fail(b, k.len, PMTRACK_SERR_LIMIT, -E2BIG);
	/* the frame check */
	memcpy(b, k.buf, k.len);
	b[off[1] + 20] ^= 1;
	expect_fail(b, k.len, PMTRACK_SERR_CHECKSUM, -EBADMSG);
	/* bytes after END */
	memcpy(b, k.buf, k.len);
	b[k.len] = 0;
	expect_fail(b, k.len + 1, PMTRACK_SERR_TRAILING, -EBADMSG);
	/* nothing at all */
	expect_fail(b, 0, PMTRACK_SERR_TRUNCATED, -ENODATA);
	free(b);
	free(k.buf);
	src_free(&s);
}
END_TEST

/* write a record with a valid frame check */
static void put_record(struct sink *k, uint8_t type, uint8_t flags,
		       const ProtobufCMessage *m, const void *payload,
		       size_t plen)
{
	size_t mlen = m ? protobuf_c_message_get_packed_size(m) : 0;
	uint8_t fr[PMTRACK_FRAME_LEN] = { type, flags },
		*meta = malloc(mlen + 1);
	uint64_t check;
	struct iovec iov[3];

	if (m)
		protobuf_c_message_pack(m, meta);
	memcpy(fr + 4, &(uint32_t){ (uint32_t)mlen }, 4);
	memcpy(fr + 8, &(uint64_t){ plen }, 8);
	check = XXH3_64bits_withSeed(meta, mlen, XXH3_64bits(fr, 16));
	memcpy(fr + 16, &check, 8);
	iov[0] = (struct iovec){ fr, sizeof(fr) };
	iov[1] = (struct iovec){ meta, mlen };
	iov[2] = (struct iovec){ (void *)payload, plen };
	sink_write(k, iov, 3);
	free(meta);
}

/* A crafted stream: preamble and a header with one region of @pages
 * pages of 512 bytes. */
static void craft_start(struct sink *k, uint64_t pages)
{
	Pmtrack__StreamHeader h = PMTRACK__STREAM_HEADER__INIT;
	Pmtrack__Region rg = PMTRACK__REGION__INIT, *rp = &rg;
	uint8_t pre[16] = "\x89PMT\r\n\x1a\n\x01";
	struct iovec iov = { pre, 16 };

	memset(k, 0, sizeof(*k));
	sink_write(k, &iov, 1);
	rg.id = 1;
	rg.length = pages * 512;
	h.page_size = 512;
	h.producer = "craft";
	h.stream_id.data = (uint8_t *)"0123456789abcdef";
	h.stream_id.len = 16;
	h.n_regions = 1;
	h.regions = &rp;
	put_record(k, PMTRACK_REC_HEADER, 0, &h.base, NULL, 0);
}

static void craft_round(struct sink *k, uint64_t number, uint64_t *runs,
			size_t nruns, uint64_t count, uint64_t *zruns,
			size_t nz)
{
	Pmtrack__Round m = PMTRACK__ROUND__INIT;
	Pmtrack__RegionMaps x = PMTRACK__REGION_MAPS__INIT, *xp = &x;
	Pmtrack__Bitmap d = PMTRACK__BITMAP__INIT, z = PMTRACK__BITMAP__INIT;

	d.count = count;
	d.runs = runs;
	d.n_runs = nruns;
	x.dirty = &d;
	if (zruns) {
		z.runs = zruns;
		z.n_runs = nz;
		for (size_t i = 1; i < nz; i += 2)
			z.count += zruns[i];
		x.zero = &z;
	}
	m.number = number;
	m.n_regions = 1;
	m.regions = &xp;
	put_record(k, PMTRACK_REC_ROUND, 0, &m.base, NULL, 0);
}

static void craft_batch(struct sink *k, uint32_t region, uint64_t *runs,
			size_t nruns, const uint8_t *data, size_t len)
{
	Pmtrack__Batch m = PMTRACK__BATCH__INIT;

	m.region = region;
	m.runs = runs;
	m.n_runs = nruns;
	m.codec = PMTRACK__CODEC__RAW;
	m.raw_len = len;
	m.xxh3 = XXH3_64bits(data, len);
	put_record(k, PMTRACK_REC_BATCH, 0, &m.base, data, len);
}

static void craft_end(struct sink *k, uint64_t rounds, uint64_t pages,
		      uint64_t zeros, const uint8_t *digest)
{
	Pmtrack__End m = PMTRACK__END__INIT;

	m.rounds = rounds;
	m.pages = pages;
	m.zero_pages = zeros;
	if (digest) {
		m.has_digest = 1;
		m.digest.data = (uint8_t *)digest;
		m.digest.len = 16;
	}
	put_record(k, PMTRACK_REC_END, 0, &m.base, NULL, 0);
}

START_TEST(crafted_streams)
{
	uint8_t data[8 * 512];
	struct sink k;

	memset(data, 0x5a, sizeof(data));

	/* the crafting itself is right: a valid stream */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 2, 3 }, 2, 3, NULL, 0);
	craft_batch(&k, 0, (uint64_t[]){ 2, 3 }, 2, data, 3 * 512);
	craft_end(&k, 1, 3, 0, NULL);
	ck_assert_int_eq(
		decode(k.buf, k.len, 0, 0, &(struct rx){ .dest = true }, NULL),
		0);
	free(k.buf);

	/* a page past the region's end (page 8 of 8) */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 7, 1 }, 2, 1, NULL, 0);
	craft_batch(&k, 0, (uint64_t[]){ 8, 1 }, 2, data, 512);
	expect_fail(k.buf, k.len, PMTRACK_SERR_RANGE, -EBADMSG);
	free(k.buf);
	/* the round's bitmap past the end, a region index past the table */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 6, 3 }, 2, 3, NULL, 0);
	expect_fail(k.buf, k.len, PMTRACK_SERR_RANGE, -EBADMSG);
	free(k.buf);
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 1 }, 2, 1, NULL, 0);
	craft_batch(&k, 1, (uint64_t[]){ 0, 1 }, 2, data, 512);
	expect_fail(k.buf, k.len, PMTRACK_SERR_RANGE, -EBADMSG);
	free(k.buf);
	/* a page the round did not announce */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 1 }, 2, 1, NULL, 0);
	craft_batch(&k, 0, (uint64_t[]){ 1, 1 }, 2, data, 512);
	expect_fail(k.buf, k.len, PMTRACK_SERR_MISMATCH, -EBADMSG);
	free(k.buf);
	/* data for a page announced as zero */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 2 }, 2, 2, (uint64_t[]){ 1, 1 }, 2);
	craft_batch(&k, 0, (uint64_t[]){ 0, 2 }, 2, data, 1024);
	expect_fail(k.buf, k.len, PMTRACK_SERR_MISMATCH, -EBADMSG);
	free(k.buf);
	/* a zero page that is not dirty */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 1 }, 2, 1, (uint64_t[]){ 3, 1 }, 2);
	expect_fail(k.buf, k.len, PMTRACK_SERR_MISMATCH, -EBADMSG);
	free(k.buf);
	/* a page sent twice */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 2 }, 2, 2, NULL, 0);
	craft_batch(&k, 0, (uint64_t[]){ 0, 1 }, 2, data, 512);
	craft_batch(&k, 0, (uint64_t[]){ 0, 1 }, 2, data, 512);
	expect_fail(k.buf, k.len, PMTRACK_SERR_DUPLICATE, -EBADMSG);
	free(k.buf);
	/* runs not in canonical form: gap 0 after a run, odd fields */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 1, 0, 1 }, 4, 2, NULL, 0);
	expect_fail(k.buf, k.len, PMTRACK_SERR_SCHEMA, -EBADMSG);
	free(k.buf);
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 2 }, 2, 2, NULL, 0);
	craft_batch(&k, 0, (uint64_t[]){ 0, 2, 1 }, 3, data, 1024);
	expect_fail(k.buf, k.len, PMTRACK_SERR_SCHEMA, -EBADMSG);
	free(k.buf);
	/* a bitmap whose count is wrong */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 2 }, 2, 3, NULL, 0);
	expect_fail(k.buf, k.len, PMTRACK_SERR_MISMATCH, -EBADMSG);
	free(k.buf);
	/* a page missing when the round ends, and at END */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 2 }, 2, 2, NULL, 0);
	craft_batch(&k, 0, (uint64_t[]){ 0, 1 }, 2, data, 512);
	craft_round(&k, 1, NULL, 0, 0, NULL, 0);
	expect_fail(k.buf, k.len, PMTRACK_SERR_INCOMPLETE, -EBADMSG);
	free(k.buf);
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 2 }, 2, 2, NULL, 0);
	craft_batch(&k, 0, (uint64_t[]){ 1, 1 }, 2, data, 512);
	craft_end(&k, 1, 1, 0, NULL);
	expect_fail(k.buf, k.len, PMTRACK_SERR_INCOMPLETE, -EBADMSG);
	free(k.buf);
	/* END counts that disagree with the stream */
	craft_start(&k, 8);
	craft_round(&k, 0, (uint64_t[]){ 0, 1 }, 2, 1, NULL, 0);
	craft_batch(&k, 0, (uint64_t[]){ 0, 1 }, 2, data, 512);
	craft_end(&k, 1, 2, 0, NULL);
	expect_fail(k.buf, k.len, PMTRACK_SERR_MISMATCH, -EBADMSG);
	free(k.buf);
	/* rounds out of order, a batch before any round, two headers */
	craft_start(&k, 8);
	craft_round(&k, 5, NULL, 0, 0, NULL, 0);
	craft_round(&k, 5, NULL, 0, 0, NULL, 0);
	expect_fail(k.buf, k.len, PMTRACK_SERR_ORDER, -EBADMSG);
	free(k.buf);
	craft_start(&k, 8);
	craft_batch(&k, 0, (uint64_t[]){ 0, 1 }, 2, data, 512);
	expect_fail(k.buf, k.len, PMTRACK_SERR_ORDER, -EBADMSG);
	free(k.buf);
	craft_start(&k, 8);
	{
		struct sink h;

		craft_start(&h, 8);
		sink_write(&k, &(struct iovec){ h.buf + 16, h.len - 16 }, 1);
		free(h.buf);
	}
	expect_fail(k.buf, k.len, PMTRACK_SERR_DUPLICATE, -EBADMSG);
	free(k.buf);
	/* a raw batch whose data does not match its checksum: the
	   destination keeps its old contents */
	{
		struct rx rx = { .dest = true };
		int why;

		craft_start(&k, 8);
		craft_round(&k, 0, (uint64_t[]){ 0, 1 }, 2, 1, NULL, 0);
		craft_batch(&k, 0, (uint64_t[]){ 0, 1 }, 2, data, 512);
		k.buf[k.len - 1] ^= 1;
		ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &rx, &why),
				 -EBADMSG);
		ck_assert_int_eq(why, PMTRACK_SERR_CHECKSUM);
		for (size_t i = 0; i < 512; i++)
			ck_assert_int_eq(rx.mem[0][i], 0);
		rx_free(&rx);
		free(k.buf);
	}
	/* a skippable record of an unknown type is skipped */
	craft_start(&k, 8);
	put_record(&k, 77, PMTRACK_FRAME_SKIPPABLE, NULL, NULL, 0);
	craft_round(&k, 0, NULL, 0, 0, NULL, 0);
	craft_end(&k, 1, 0, 0, NULL);
	ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &(struct rx){ 0 }, NULL),
			 0);
	free(k.buf);
	/* a digest that does not match what arrived */
	craft_start(&k, 8);
	craft_round(&k, 0, NULL, 0, 0, NULL, 0);
	craft_end(&k, 1, 0, 0, (const uint8_t *)"0000000000000000");
	expect_fail(k.buf, k.len, PMTRACK_SERR_DIGEST, -EBADMSG);
	free(k.buf);
}
END_TEST

START_TEST(reordered_and_duplicated_records)
{
	struct sink k;
	struct src s;
	size_t off[64], n;
	uint8_t *b;

	small_stream(&k, &s, 0);
	n = record_offsets(k.buf, k.len, off, 63);
	ck_assert_uint_ge(n, 6);
	b = malloc(2 * k.len);
	/* swap the first ROUND and its first BATCH */
	{
		size_t r = off[1], rl = off[2] - off[1], bl = off[3] - off[2];

		memcpy(b, k.buf, k.len);
		memcpy(b + r, k.buf + off[2], bl);
		memcpy(b + r + bl, k.buf + r, rl);
		expect_fail(b, k.len, PMTRACK_SERR_ORDER, -EBADMSG);
	}
	/* a batch twice */
	{
		size_t bl = off[3] - off[2];

		memcpy(b, k.buf, off[3]);
		memcpy(b + off[3], k.buf + off[2], bl);
		memcpy(b + off[3] + bl, k.buf + off[3], k.len - off[3]);
		expect_fail(b, k.len + bl, PMTRACK_SERR_DUPLICATE, -EBADMSG);
	}
	/* a batch dropped */
	{
		size_t bl = off[3] - off[2];

		memcpy(b, k.buf, off[2]);
		memcpy(b + off[2], k.buf + off[3], k.len - off[3]);
		expect_fail(b, k.len - bl, PMTRACK_SERR_INCOMPLETE, -EBADMSG);
	}
	/* END twice */
	{
		size_t el = k.len - off[n - 1];

		memcpy(b, k.buf, k.len);
		memcpy(b + k.len, k.buf + off[n - 1], el);
		expect_fail(b, k.len + el, PMTRACK_SERR_TRAILING, -EBADMSG);
	}
	free(b);
	free(k.buf);
	src_free(&s);
}
END_TEST

START_TEST(memory_limit)
{
	struct sink k = { 0 };
	struct src s;
	int why;

	/* batches of 4 pages of 1 KiB, zstd: 16 KiB is not enough */
	small_stream(&k, &s, 3);
	ck_assert_int_eq(
		decode(k.buf, k.len, 0, 16 << 10, &(struct rx){ 0 }, &why),
		-E2BIG);
	ck_assert_int_eq(why, PMTRACK_SERR_LIMIT);
	/* record split across feeds: the record buffer is charged too */
	ck_assert_int_eq(
		decode(k.buf, k.len, 100, 4 << 10, &(struct rx){ 0 }, &why),
		-E2BIG);
	ck_assert_int_eq(why, PMTRACK_SERR_LIMIT);
	ck_assert_int_eq(
		decode(k.buf, k.len, 100, 1 << 20, &(struct rx){ 0 }, &why), 0);
	free(k.buf);
	src_free(&s);

	/* a header declaring 2^50 bytes of memory: refused, not allocated */
	craft_start(&k, 1ULL << 41);
	expect_fail(k.buf, k.len, PMTRACK_SERR_LIMIT, -E2BIG);
	free(k.buf);
}
END_TEST

START_TEST(callback_errors)
{
	struct sink k;
	struct src s;

	small_stream(&k, &s, 0);
	for (int where = 1; where <= 5; where++) {
		struct rx rx = { .fail_in = where };
		int why;

		ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &rx, &why),
				 -ECANCELED);
		ck_assert_int_eq(why, PMTRACK_SERR_CALLBACK);
	}
	free(k.buf);
	src_free(&s);
}
END_TEST

START_TEST(decoder_api)
{
	struct pmtrack_dec *dec;
	int why;

	ck_assert_int_eq(pmtrack_dec_new(NULL, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_dec_new(NULL, &dec), 0);
	ck_assert_int_eq(pmtrack_dec_set_dest(dec, 0, &why, 4), -EINVAL);
	ck_assert_ptr_null(pmtrack_dec_map(dec, 0, PMTRACK_MAP_DIRTY, NULL));
	ck_assert_str_eq(pmtrack_dec_error(dec, &why), "");
	ck_assert_int_eq(why, PMTRACK_SERR_OK);
	ck_assert_int_eq(pmtrack_dec_feed(dec, NULL, 1), -EINVAL);
	ck_assert_int_eq(pmtrack_dec_feed(dec, NULL, 0), 0);
	ck_assert_int_eq(pmtrack_dec_finish(dec), -ENODATA);
	pmtrack_dec_free(dec);
	pmtrack_dec_free(NULL);
	pmtrack_enc_free(NULL);
	ck_assert_str_eq(pmtrack_stream_error_name(PMTRACK_SERR_CHECKSUM),
			 "checksum");
	ck_assert_str_eq(pmtrack_stream_error_name(1000), "unknown");
}
END_TEST

/*
 * A region a round does not list has all-zero maps in that round; with a
 * destination for only some regions the digest is not checked, and the
 * stream still decodes.
 */
struct partial {
	const struct src *s;
	uint8_t *dest;
	int rounds, zero_maps_ok, verified, ended;
};

static int partial_header(void *arg, struct pmtrack_dec *dec,
			  const struct pmtrack_dec_header *h)
{
	struct partial *x = arg;

	return pmtrack_dec_set_dest(dec, 1, x->dest, h->regions[1].length);
}

static int partial_round(void *arg, struct pmtrack_dec *dec, uint64_t round)
{
	struct partial *x = arg;
	size_t nw;
	bool clear = true;

	x->rounds++;
	for (int k = PMTRACK_MAP_DIRTY; k <= PMTRACK_MAP_ZERO; k++) {
		const uint64_t *w = pmtrack_dec_map(dec, 0, k, &nw);

		for (size_t i = 0; w && i < nw; i++)
			clear = clear && !w[i];
		if (!w)
			clear = false;
	}
	/* round 0 lists region 0 (every page dirty); round 1 does not */
	if (clear == (round == 1))
		x->zero_maps_ok++;
	return 0;
}

static int partial_end(void *arg, const struct pmtrack_dec_end *e)
{
	struct partial *x = arg;

	x->ended = 1;
	x->verified = e->digest_verified;
	return 0;
}

START_TEST(unlisted_region_and_partial_destinations)
{
	static const size_t pages[] = { 70, 9 };
	static const struct pmtrack_dec_ops ops = {
		.header = partial_header,
		.round = partial_round,
		.end = partial_end,
	};
	uint64_t rs = 11;
	uint8_t d[PMTRACK_DIGEST_LEN];
	struct sink k = { 0 };
	struct src s;
	struct partial x = { .s = &s };
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &ops, .arg = &x);
	struct pmtrack_enc_region_round only1;
	struct pmtrack_dec *dec;
	struct pmtrack_enc *e;

	src_init(&s, 2, pages, 512, &rs);
	e = enc_new(&k, &s, 0, 0, 0);
	set_all(s.dirty[0], pages[0]);
	set_all(s.swap[0], pages[0]);
	set_all(s.dirty[1], pages[1]);
	ck_assert_int_eq(src_round(e, &s, 0), 0);
	memset(s.mem[1], 0x3c, 512);
	only1 = (struct pmtrack_enc_region_round){ 1, s.dirty[1], NULL,
						   s.mem[1] };
	ck_assert_int_eq(pmtrack_enc_round(e, 1, &only1, 1), 0);
	src_digest(&s, d);
	ck_assert_int_eq(pmtrack_enc_end(e, d), 0);
	pmtrack_enc_free(e);

	x.dest = calloc(pages[1], 512);
	ck_assert_int_eq(pmtrack_dec_new(&o, &dec), 0);
	ck_assert_int_eq(pmtrack_dec_feed(dec, k.buf, k.len), 0);
	ck_assert_int_eq(pmtrack_dec_finish(dec), 0);
	pmtrack_dec_free(dec);
	ck_assert_int_eq(x.rounds, 2);
	ck_assert_int_eq(x.zero_maps_ok, 2);
	ck_assert_int_eq(x.ended, 1);
	ck_assert_int_eq(x.verified, 0);
	ck_assert(!memcmp(x.dest, s.mem[1], pages[1] * 512));
	free(x.dest);
	free(k.buf);
	src_free(&s);
}
END_TEST

/* Options structs from a newer header: zero tails pass, others do not. */
START_TEST(options_from_a_newer_header)
{
	struct pmtrack_stream_region rg = { .id = 1, .length = 4096 };
	struct {
		struct pmtrack_enc_opts o;
		uint64_t extra;
	} eo = { .o = { .sz = sizeof(eo),
			.write = sink_write,
			.page_size = 4096 } };
	struct {
		struct pmtrack_dec_opts o;
		uint64_t extra;
	} dopt = { .o = { .sz = sizeof(dopt) } };
	struct pmtrack_enc_stats st;
	struct sink k = { 0 };
	struct pmtrack_enc *e;
	struct pmtrack_dec *dec;

	eo.o.write_arg = &k;
	ck_assert_int_eq(pmtrack_enc_new(&eo.o, &rg, 1, &e), 0);
	/* a stats struct of an older header: only the fields it has */
	memset(&st, 0xff, sizeof(st));
	st.sz = offsetof(struct pmtrack_enc_stats, pages);
	ck_assert_int_eq(pmtrack_enc_get_stats(e, &st), 0);
	ck_assert_uint_eq(st.rounds, 0);
	ck_assert_uint_eq(st.pages, UINT64_MAX);
	st.sz = 1;
	ck_assert_int_eq(pmtrack_enc_get_stats(e, &st), -EINVAL);
	pmtrack_enc_free(e);
	eo.extra = 1;
	ck_assert_int_eq(pmtrack_enc_new(&eo.o, &rg, 1, &e), -EINVAL);

	ck_assert_int_eq(pmtrack_dec_new(&dopt.o, &dec), 0);
	pmtrack_dec_free(dec);
	dopt.extra = 1;
	ck_assert_int_eq(pmtrack_dec_new(&dopt.o, &dec), -EINVAL);
	dopt.extra = 0;
	dopt.o.sz = 1;
	ck_assert_int_eq(pmtrack_dec_new(&dopt.o, &dec), -EINVAL);
	free(k.buf);
}
END_TEST

/* --- what decoding costs ------------------------------------------------- */

/*
 * The decoder's bound (<pmtrack/stream.h>, "Cost"), with constants: work
 * (bitmap words and region entries visited) <= 16 (bytes + records) + 8
 * map_bits.  map_bits / 64 would do for bitmaps sent as runs; words cost up
 * to one per bit.
 */
static bool within_bound(const struct pmtrack_dec_stats *st)
{
	return st->work <= 16 * (st->bytes + st->records) + 8 * st->map_bits;
}

/*
 * Decode @len bytes in pieces of @chunk, checking the bound after every
 * piece, so that a decoder that does per-record work out of proportion
 * fails at once rather than after minutes.  The result of the first
 * failing call or of finish; *st the counters at the end.
 */
static int decode_bounded(const uint8_t *buf, size_t len, size_t chunk,
			  struct pmtrack_dec_stats *st)
{
	struct pmtrack_dec *dec;
	int r = 0;

	t_check(!pmtrack_dec_new(NULL, &dec), "pmtrack_dec_new");
	for (size_t off = 0; off < len && !r; off += chunk) {
		r = pmtrack_dec_feed(dec, buf + off,
				     len - off < chunk ? len - off : chunk);
		*st = (struct pmtrack_dec_stats){ .sz = sizeof(*st) };
		ck_assert_int_eq(pmtrack_dec_get_stats(dec, st), 0);
		ck_assert_msg(within_bound(st),
			      "after %llu bytes, %llu records, %llu map bits: "
			      "work %llu",
			      (unsigned long long)st->bytes,
			      (unsigned long long)st->records,
			      (unsigned long long)st->map_bits,
			      (unsigned long long)st->work);
	}
	if (!r)
		r = pmtrack_dec_finish(dec);
	pmtrack_dec_free(dec);
	return r;
}

/* Preamble and a header of @n regions of @len bytes in pages of @pagesz. */
static void craft_table(struct sink *k, uint32_t pagesz, size_t n, uint64_t len)
{
	Pmtrack__StreamHeader h = PMTRACK__STREAM_HEADER__INIT;
	Pmtrack__Region *rg = calloc(n, sizeof(*rg));
	Pmtrack__Region **rp = calloc(n, sizeof(*rp));
	uint8_t pre[16] = "\x89PMT\r\n\x1a\n\x01";
	struct iovec iov = { pre, 16 };

	ck_assert(rg && rp);
	memset(k, 0, sizeof(*k));
	sink_write(k, &iov, 1);
	for (size_t i = 0; i < n; i++) {
		pmtrack__region__init(&rg[i]);
		rg[i].id = (uint32_t)(n - i); /* not sorted: the sort works */
		rg[i].start = i * len;
		rg[i].length = len;
		rp[i] = &rg[i];
	}
	h.page_size = pagesz;
	h.producer = "cost";
	h.stream_id.data = (uint8_t *)"0123456789abcdef";
	h.stream_id.len = 16;
	h.n_regions = n;
	h.regions = rp;
	put_record(k, PMTRACK_REC_HEADER, 0, &h.base, NULL, 0);
	free(rg);
	free(rp);
}

/* A ROUND that lists no region. */
static void craft_empty_round(struct sink *k, uint64_t number)
{
	Pmtrack__Round m = PMTRACK__ROUND__INIT;

	m.number = number;
	put_record(k, PMTRACK_REC_ROUND, 0, &m.base, NULL, 0);
}

/*
 * The first stream: one region of 2^40 bytes (4 KiB pages, 32 MiB
 * per map), 1,500 ROUNDs each listing it with an empty dirty map, END:
 * 52 KB that took minutes, clearing and walking all four maps per ROUND.
 */
START_TEST(cost_of_rounds_on_a_huge_region)
{
	struct pmtrack_dec_stats st;
	struct sink k;

	craft_table(&k, 4096, 1, 1ULL << 40);
	for (uint64_t r = 0; r < 1500; r++)
		craft_round(&k, r, NULL, 0, 0, NULL, 0);
	craft_end(&k, 1500, 0, 0, NULL);
	ck_assert_int_eq(decode_bounded(k.buf, k.len, 512, &st), 0);
	ck_assert_uint_eq(st.bytes, k.len);
	ck_assert_uint_eq(st.records, 1502);
	ck_assert_uint_eq(st.rounds, 1500);
	ck_assert_uint_eq(st.map_bits, 0);
	free(k.buf);
}
END_TEST

/*
 * The second stream: 65,536 one-page regions and 40,000 ROUNDs
 * that list none of them (1.8 MB), which walked every region twice per
 * ROUND.  The header's 65,536 ids are checked for duplicates too.
 */
START_TEST(cost_of_rounds_on_many_regions)
{
	struct pmtrack_dec_stats st;
	struct sink k;

	craft_table(&k, 4096, 65536, 4096);
	for (uint64_t r = 0; r < 40000; r++)
		craft_empty_round(&k, r);
	craft_end(&k, 40000, 0, 0, NULL);
	ck_assert_int_eq(decode_bounded(k.buf, k.len, 512, &st), 0);
	ck_assert_uint_eq(st.bytes, k.len);
	ck_assert_uint_eq(st.rounds, 40000);
	free(k.buf);
}
END_TEST

/* A ROUND whose dirty map is @count bits sent as the zstd of @w. */
static void craft_zwords_round(struct sink *k, uint64_t number,
			       const uint64_t *w, size_t nw, uint64_t count,
			       uint64_t *zruns, size_t nz)
{
	Pmtrack__Round m = PMTRACK__ROUND__INIT;
	Pmtrack__RegionMaps x = PMTRACK__REGION_MAPS__INIT, *xp = &x;
	Pmtrack__Bitmap d = PMTRACK__BITMAP__INIT, z = PMTRACK__BITMAP__INIT;
	size_t cap = ZSTD_compressBound(nw * 8);
	uint8_t *zw = malloc(cap);
	size_t zlen;

	ck_assert_ptr_nonnull(zw);
	zlen = ZSTD_compress(zw, cap, w, nw * 8, 19); /* little-endian host */
	ck_assert(!ZSTD_isError(zlen));
	d.count = count;
	d.has_zwords = 1;
	d.zwords.data = zw;
	d.zwords.len = zlen;
	z.runs = zruns;
	z.n_runs = nz;
	for (size_t i = 1; i < nz; i += 2)
		z.count += zruns[i];
	x.dirty = &d;
	x.zero = &z;
	m.number = number;
	m.n_regions = 1;
	m.regions = &xp;
	put_record(k, PMTRACK_REC_ROUND, 0, &m.base, NULL, 0);
	free(zw);
}

/*
 * zwords cost the region's words whatever the record's size: a few bytes
 * of zstd became 32 MiB of words per round.  The rule: words only for at
 * least as many bits as words, fewer is a schema error.
 */
START_TEST(zwords_need_a_bit_per_word)
{
	enum { NW = 1 << 14 }; /* 2^20 pages of 512 bytes */
	uint64_t *w = calloc(NW, 8);
	struct pmtrack_dec_stats st;
	struct sink k;
	int why;

	ck_assert_ptr_nonnull(w);
	/* one bit in 16384 words (a zero page, so no batch is due) */
	w[NW / 2] = 1;
	craft_start(&k, (uint64_t)NW * 64);
	craft_zwords_round(&k, 0, w, NW, 1, (uint64_t[]){ NW / 2 * 64, 1 }, 2);
	craft_end(&k, 1, 0, 1, NULL);
	ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &(struct rx){ 0 }, &why),
			 -EBADMSG);
	ck_assert_str_eq(pmtrack_stream_error_name(why), "schema");
	free(k.buf);

	/* a bit per word is fine, and costs within the bound */
	memset(w, 0, NW * 8);
	for (size_t i = 0; i < NW; i++)
		w[i / 64] |= 1ULL << (i % 64);
	craft_start(&k, (uint64_t)NW * 64);
	for (uint64_t r = 0; r < 4; r++)
		craft_zwords_round(&k, r, w, NW, NW, (uint64_t[]){ 0, NW }, 2);
	craft_end(&k, 4, 0, 4 * NW, NULL);
	ck_assert_int_eq(decode_bounded(k.buf, k.len, 512, &st), 0);
	ck_assert_uint_eq(st.zero_pages, 4 * NW);
	ck_assert_uint_eq(st.map_bits, 8 * NW);
	free(k.buf);

	/* the same pages as data never sent: incomplete, within the bound */
	craft_start(&k, (uint64_t)NW * 64);
	craft_zwords_round(&k, 0, w, NW, NW, NULL, 0);
	craft_end(&k, 1, 0, 0, NULL);
	ck_assert_int_eq(decode_bounded(k.buf, k.len, 512, &st), -EBADMSG);
	expect_fail(k.buf, k.len, PMTRACK_SERR_INCOMPLETE, -EBADMSG);
	free(k.buf);
	free(w);
}
END_TEST

/* The ROUND record after the header of an encoded stream, unpacked. */
static Pmtrack__Round *first_round(const struct sink *k)
{
	size_t off[4];
	uint32_t mlen;

	ck_assert_uint_ge(record_offsets(k->buf, k->len, off, 3), 2);
	memcpy(&mlen, k->buf + off[1] + 4, 4);
	ck_assert_uint_eq(k->buf[off[1]], PMTRACK_REC_ROUND);
	return pmtrack__round__unpack(NULL, mlen,
				      k->buf + off[1] + PMTRACK_FRAME_LEN);
}

/* Encode @s's dirty pages as round 0 of a stream into @k; its ROUND. */
static Pmtrack__Round *encode_one_round(struct sink *k, struct src *s)
{
	struct pmtrack_enc *e = enc_new(k, s, 0, 0, 0);
	Pmtrack__Round *m;

	ck_assert_int_eq(src_round(e, s, 0), 0);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	pmtrack_enc_free(e);
	m = first_round(k);
	ck_assert_ptr_nonnull(m);
	return m;
}

/*
 * The encoder keeps to the zwords rule: a sparse but regular bitmap, whose
 * runs take over 32 bytes and whose words zstd shrinks below that, goes as
 * runs; a dense one still goes as words.
 */
START_TEST(encoder_sends_sparse_bitmaps_as_runs)
{
	size_t pages = 1 << 14;
	struct sink k = { 0 };
	uint64_t rs = 5;
	Pmtrack__Round *m;
	struct src s;

	src_init(&s, 1, &pages, 512, &rs);
	memset(s.mem[0], 0, pages * 512);
	for (size_t p = 0; p < pages; p += 320)
		s.dirty[0][p / 64] |= 1ULL << (p % 64);
	m = encode_one_round(&k, &s);
	ck_assert_uint_eq(m->regions[0]->dirty->count, (pages + 319) / 320);
	ck_assert_msg(!m->regions[0]->dirty->has_zwords &&
			      !m->regions[0]->zero->has_zwords,
		      "%llu bits in %zu words sent as words",
		      (unsigned long long)m->regions[0]->dirty->count,
		      pages / 64);
	pmtrack__round__free_unpacked(m, NULL);
	ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &(struct rx){ 0 }, NULL),
			 0);
	free(k.buf);

	/* every other page: words */
	memset(&k, 0, sizeof(k));
	for (size_t p = 0; p < pages; p++)
		if (p % 2)
			s.dirty[0][p / 64] |= 1ULL << (p % 64);
	m = encode_one_round(&k, &s);
	ck_assert(m->regions[0]->dirty->has_zwords);
	pmtrack__round__free_unpacked(m, NULL);
	ck_assert_int_eq(decode(k.buf, k.len, 0, 0, &(struct rx){ 0 }, NULL),
			 0);
	free(k.buf);
	src_free(&s);
}
END_TEST

/*
 * The maps of every round, not only the last: what a round set is gone in
 * the next, whether it came as runs or as words, and a region a round
 * does not list reads as all zero.
 */
#define MR_ROUNDS 6
#define MR_WORDS 11 /* 700 pages */

struct mr {
	uint64_t d[MR_ROUNDS][2][MR_WORDS], w[MR_ROUNDS][2][MR_WORDS],
		z[MR_ROUNDS][2][MR_WORDS];
	size_t pages[2];
	int rounds, bad, listed_ok;
};

static int mr_round(void *arg, struct pmtrack_dec *dec, uint64_t round)
{
	struct mr *x = arg;
	PMTRACK_OPTS(pmtrack_dec_listed, l);
	int listed = 0;

	x->rounds++;
	for (uint32_t i = 0; i < 2; i++) {
		size_t nw = (x->pages[i] + 63) / 64, got;
		const uint64_t *m[3] = {
			pmtrack_dec_map(dec, i, PMTRACK_MAP_DIRTY, &got),
			pmtrack_dec_map(dec, i, PMTRACK_MAP_SWAP, NULL),
			pmtrack_dec_map(dec, i, PMTRACK_MAP_ZERO, NULL),
		};

		if (!m[0] || !m[1] || !m[2] || got != nw ||
		    memcmp(m[0], x->d[round][i], nw * 8) ||
		    memcmp(m[1], x->w[round][i], nw * 8) ||
		    memcmp(m[2], x->z[round][i], nw * 8))
			x->bad++;
	}
	/* round 2 lists region 1 only; the others list 0, then 1 */
	while (pmtrack_dec_listed(dec, (size_t)listed, &l) == 1) {
		if (l.region != (uint32_t)(round == 2 ? 1 : listed))
			x->bad++;
		listed++;
	}
	if (listed == (round == 2 ? 1 : 2))
		x->listed_ok++;
	return 0;
}

START_TEST(maps_follow_every_round)
{
	static const struct pmtrack_dec_ops ops = { .round = mr_round };
	struct mr *x = calloc(1, sizeof(*x));
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &ops, .arg = x);
	struct pmtrack_enc_region_round rr[2];
	struct sink k = { 0 };
	uint64_t rs = 99;
	struct pmtrack_dec *dec;
	struct pmtrack_enc *e;
	struct src s;

	ck_assert_ptr_nonnull(x);
	x->pages[0] = 700;
	x->pages[1] = 130;
	src_init(&s, 2, x->pages, 512, &rs);
	e = enc_new(&k, &s, 0, 0, 0);
	for (int r = 0; r < MR_ROUNDS; r++) {
		size_t n = 0;

		for (size_t i = 0; i < 2; i++) {
			size_t np = x->pages[i];

			if (r == 2 && i == 0)
				continue; /* not listed: all zero */
			memset(s.dirty[i], 0, (np + 63) / 64 * 8);
			memset(s.swap[i], 0, (np + 63) / 64 * 8);
			for (size_t p = 0; p < np; p++) {
				/* dense (words) in even rounds, 3 bits
				   (runs) in odd ones */
				bool d = r % 2 ? p % (np / 3) == 1
					       : t_rand(&rs) % 2;

				if (d)
					s.dirty[i][p / 64] |= 1ULL << (p % 64);
				if (d && t_rand(&rs) % 3 == 0)
					memset(s.mem[i] + p * 512, 0, 512);
				if (t_rand(&rs) % (r % 2 ? 200 : 2) == 0)
					s.swap[i][p / 64] |= 1ULL << (p % 64);
			}
			for (size_t p = 0; p < np; p++) {
				bool zero = bit(s.dirty[i], p);

				for (size_t b = 0; zero && b < 512; b++)
					zero = !s.mem[i][p * 512 + b];
				if (zero)
					x->z[r][i][p / 64] |= 1ULL << (p % 64);
			}
			memcpy(x->d[r][i], s.dirty[i], (np + 63) / 64 * 8);
			memcpy(x->w[r][i], s.swap[i], (np + 63) / 64 * 8);
			rr[n++] = (struct pmtrack_enc_region_round){
				(uint32_t)i, s.dirty[i], s.swap[i], s.mem[i]
			};
		}
		ck_assert_int_eq(pmtrack_enc_round(e, (uint64_t)r, rr, n), 0);
	}
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	pmtrack_enc_free(e);

	ck_assert_int_eq(pmtrack_dec_new(&o, &dec), 0);
	ck_assert_int_eq(pmtrack_dec_feed(dec, k.buf, k.len), 0);
	ck_assert_int_eq(pmtrack_dec_finish(dec), 0);
	pmtrack_dec_free(dec);
	ck_assert_int_eq(x->rounds, MR_ROUNDS);
	ck_assert_int_eq(x->bad, 0);
	ck_assert_int_eq(x->listed_ok, MR_ROUNDS);
	free(x);
	free(k.buf);
	src_free(&s);
}
END_TEST

/* The decoder's counters, and their struct from older and newer headers. */
START_TEST(decoder_stats)
{
	struct {
		struct pmtrack_dec_stats s;
		uint64_t extra[2];
	} big;
	PMTRACK_OPTS(pmtrack_dec_stats, st);
	PMTRACK_OPTS(pmtrack_dec_listed, l);
	struct pmtrack_enc_stats es = { .sz = sizeof(es) };
	struct pmtrack_dec *dec;
	struct pmtrack_enc *e;
	struct sink k = { 0 };
	struct src s;
	size_t off[64], pages = 100;
	uint64_t rs = 3;

	src_init(&s, 1, &pages, 1024, &rs);
	e = enc_new(&k, &s, 0, 0, 8);
	set_all(s.dirty[0], pages);
	ck_assert_int_eq(src_round(e, &s, 0), 0);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	ck_assert_int_eq(pmtrack_enc_get_stats(e, &es), 0);
	pmtrack_enc_free(e);

	ck_assert_int_eq(pmtrack_dec_new(NULL, &dec), 0);
	ck_assert_int_eq(pmtrack_dec_get_stats(dec, &st), 0);
	ck_assert_uint_eq(st.bytes + st.records + st.work, 0);
	ck_assert_int_eq(pmtrack_dec_listed(dec, 0, &l), -EINVAL);
	ck_assert_int_eq(pmtrack_dec_feed(dec, k.buf, k.len), 0);
	ck_assert_int_eq(pmtrack_dec_finish(dec), 0);
	ck_assert_int_eq(pmtrack_dec_get_stats(dec, &st), 0);
	ck_assert_uint_eq(st.sz, sizeof(st));
	ck_assert_uint_eq(st.bytes, k.len);
	ck_assert_uint_eq(st.records, record_offsets(k.buf, k.len, off, 63));
	ck_assert_uint_eq(st.rounds, 1);
	ck_assert_uint_eq(st.pages, es.pages);
	ck_assert_uint_eq(st.zero_pages, es.zero_pages);
	ck_assert_uint_eq(st.pages + st.zero_pages, pages);
	ck_assert_uint_eq(st.map_bits, pages + es.zero_pages);
	ck_assert_uint_gt(st.work, 0);
	ck_assert(within_bound(&st));
	/* the last round's one region, then no more */
	ck_assert_int_eq(pmtrack_dec_listed(dec, 0, &l), 1);
	ck_assert_uint_eq(l.region, 0);
	ck_assert_uint_eq(l.dirty, pages);
	ck_assert_uint_eq(l.zero, es.zero_pages);
	ck_assert_uint_eq(l.swap, 0);
	ck_assert_int_eq(pmtrack_dec_listed(dec, 1, &l), 0);

	/* a newer header's larger struct: the tail is zeroed */
	memset(&big, 0xff, sizeof(big));
	big.s.sz = sizeof(big);
	ck_assert_int_eq(pmtrack_dec_get_stats(dec, &big.s), 0);
	ck_assert_uint_eq(big.s.sz, sizeof(big));
	ck_assert_uint_eq(big.s.work, st.work);
	ck_assert_uint_eq(big.extra[0] | big.extra[1], 0);
	/* an older one: only the fields it has */
	memset(&big, 0xff, sizeof(big));
	big.s.sz = offsetof(struct pmtrack_dec_stats, records);
	ck_assert_int_eq(pmtrack_dec_get_stats(dec, &big.s), 0);
	ck_assert_uint_eq(big.s.bytes, k.len);
	ck_assert_uint_eq(big.s.records, UINT64_MAX);
	l.sz = offsetof(struct pmtrack_dec_listed, dirty);
	l.dirty = 7;
	ck_assert_int_eq(pmtrack_dec_listed(dec, 0, &l), 1);
	ck_assert_uint_eq(l.dirty, 7);
	/* bad calls */
	big.s.sz = 1;
	ck_assert_int_eq(pmtrack_dec_get_stats(dec, &big.s), -EINVAL);
	ck_assert_int_eq(pmtrack_dec_get_stats(dec, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_dec_get_stats(NULL, &st), -EINVAL);
	ck_assert_int_eq(pmtrack_dec_listed(dec, 0, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_dec_listed(NULL, 0, &l), -EINVAL);
	pmtrack_dec_free(dec);
	free(k.buf);
	src_free(&s);
}
END_TEST

/* --- page sums and the state digest --------------------------------------- */

/* decode @buf with destinations and page sums @sums (NULL: the decoder's) */
static int decode_sums(const uint8_t *buf, size_t len,
		       struct pmtrack_pagesums *sums, struct rx *rx,
		       int *reason)
{
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &rx_ops, .arg = rx,
		     .sums = sums);
	struct pmtrack_dec *dec;
	int r;

	ck_assert_int_eq(pmtrack_dec_new(&o, &dec), 0);
	r = pmtrack_dec_feed(dec, buf, len);
	if (!r)
		r = pmtrack_dec_finish(dec);
	pmtrack_dec_error(dec, reason);
	pmtrack_dec_free(dec);
	return r;
}

START_TEST(pagesums_args)
{
	struct pmtrack_pagesums *t;
	struct pmtrack_audit a = { .sz = sizeof(a) };
	uint8_t d[PMTRACK_DIGEST_LEN], page[1024] = { 0 };
	struct iovec iov = { page, sizeof(page) };
	uint64_t n = 7;

	ck_assert_int_eq(pmtrack_pagesums_new(NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_pagesums_new(&t), 0);
	/* bound to nothing yet */
	ck_assert_int_eq(pmtrack_pagesums_state(t, d), -ENODATA);
	ck_assert_int_eq(pmtrack_pagesums_resume(t, d), -ENODATA);
	ck_assert_int_eq(pmtrack_pagesums_count(t, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(pmtrack_pagesums_audit(t, &iov, 1, 1, &a), -EINVAL);
	ck_assert_int_eq(pmtrack_pagesums_state(NULL, d), -EINVAL);
	ck_assert_int_eq(pmtrack_pagesums_state(t, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_pagesums_count(t, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_pagesums_resume(NULL, d), -EINVAL);
	ck_assert_int_eq(pmtrack_pagesums_audit(NULL, &iov, 1, 1, NULL),
			 -EINVAL);
	pmtrack_pagesums_free(t);
	pmtrack_pagesums_free(NULL);
}
END_TEST

/*
 * Two rounds send page 0 of a region twice, one page a batch.  Swapping
 * the two BATCH records passes every batch checksum and the round rules
 * (each round still gets its page), but leaves the older content: only
 * the state digest sees it.  Without one (PMTRACK_ENC_NO_STATE) the same
 * swap goes through.
 */
static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* where the record at @off ends; *@type its type */
static size_t next_rec(const uint8_t *b, size_t off, uint8_t *type)
{
	*type = b[off];
	return off + PMTRACK_FRAME_LEN + le(b + off + 4, 4) + le(b + off + 8, 8);
}

START_TEST(state_catches_reorder)
{
	static const size_t pages[] = { 4 };
	uint64_t rs = 77;
	struct sink k = { 0 };
	struct rx rx = { .dest = true };
	struct src s;
	struct pmtrack_enc *e;
	size_t off, b[2][2], nb = 0, len;
	uint8_t type, *sw;
	bool in_round = false;
	int why;

	src_init(&s, 1, pages, 1024, &rs);
	memset(s.mem[0], 0x11, 1024); /* never zero */
	e = enc_new(&k, &s, 0, _i ? PMTRACK_ENC_NO_STATE : 0, 1);
	set_all(s.dirty[0], 4);
	ck_assert_int_eq(src_round(e, &s, 0), 0);
	memset(s.mem[0], 0x22, 1024);
	memset(s.dirty[0], 0, 8);
	s.dirty[0][0] = 1;
	ck_assert_int_eq(src_round(e, &s, 1), 0);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	pmtrack_enc_free(e);
	/* the first BATCH of each round: both carry page 0 only */
	for (off = PMTRACK_STREAM_PREAMBLE_LEN; off < k.len && nb < 2;) {
		size_t end = next_rec(k.buf, off, &type);

		if (type == PMTRACK_REC_ROUND)
			in_round = true;
		if (type == PMTRACK_REC_BATCH && in_round) {
			b[nb][0] = off;
			b[nb++][1] = end;
			in_round = false;
		}
		off = end;
	}
	ck_assert_uint_eq(nb, 2);
	len = b[0][1] - b[0][0];
	ck_assert_uint_eq(len, b[1][1] - b[1][0]);
	sw = malloc(len);
	memcpy(sw, k.buf + b[0][0], len);
	memcpy(k.buf + b[0][0], k.buf + b[1][0], len);
	memcpy(k.buf + b[1][0], sw, len);
	free(sw);
	if (_i) {
		struct pmtrack_pagesums *t;
		uint8_t st[PMTRACK_DIGEST_LEN];
		uint64_t known = 1;

		/* nothing to tell: the old page wins; and since the HEADER
		   said no state would come, no page was hashed into the
		   caller's table, which no longer holds a state */
		ck_assert_int_eq(pmtrack_pagesums_new(&t), 0);
		ck_assert_int_eq(decode_sums(k.buf, k.len, t, &rx, &why), 0);
		ck_assert_int_eq(rx.has_state, 0);
		ck_assert_uint_eq(rx.mem[0][0], 0x11);
		ck_assert_int_eq(pmtrack_pagesums_count(t, &known), 0);
		ck_assert_uint_eq(known, 0);
		ck_assert_int_eq(pmtrack_pagesums_state(t, st), -ENODATA);
		pmtrack_pagesums_free(t);
	} else {
		ck_assert_int_eq(decode_sums(k.buf, k.len, NULL, &rx, &why),
				 -EBADMSG);
		ck_assert_int_eq(why, PMTRACK_SERR_DIGEST);
	}
	rx_free(&rx);
	free(k.buf);
	src_free(&s);
}
END_TEST

/*
 * A tracker that dropped a page: round 1 leaves out page 3 although it was
 * written.  The receiver holds exactly what was sent (its state matches),
 * and the audit of the source finds the page; a table that never saw a
 * page calls it unsent.
 */
START_TEST(state_audit_dropped_page)
{
	static const size_t pages[] = { 40, 9 };
	uint64_t rs = 5;
	struct sink k = { 0 };
	struct rx rx = { .dest = true };
	struct pmtrack_audit a = { .sz = sizeof(a) };
	struct pmtrack_pagesums *t;
	struct iovec iov[2];
	struct src s;
	struct pmtrack_enc *e;
	uint64_t known;
	int why;
	PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write, .write_arg = &k,
		     .page_size = 1024, .batch_pages = 8);

	src_init(&s, 2, pages, 1024, &rs);
	ck_assert_int_eq(pmtrack_pagesums_new(&t), 0);
	o.sums = t;
	ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 2, &e), 0);
	set_all(s.dirty[0], 40);
	set_all(s.dirty[1], 9);
	ck_assert_int_eq(src_round(e, &s, 0), 0);
	for (size_t i = 0; i < 2; i++)
		iov[i] = (struct iovec){ s.mem[i], s.rg[i].length };
	/* what was sent is what memory holds: the audit passes, threaded */
	ck_assert_int_eq(pmtrack_pagesums_audit(t, iov, 2, 3, &a), 0);
	ck_assert_uint_eq(a.pages, 49);
	ck_assert_int_eq(pmtrack_pagesums_count(t, &known), 0);
	ck_assert_uint_eq(known, 49);
	/* pages 3 and 9 written; the "tracker" reports 9 only */
	s.mem[0][3 * 1024 + 1] ^= 0x40;
	s.mem[0][9 * 1024 + 2] ^= 0x40;
	memset(s.dirty[0], 0, 8);
	memset(s.dirty[1], 0, 8);
	s.dirty[0][0] = 1u << 9;
	ck_assert_int_eq(src_round(e, &s, 1), 0);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	pmtrack_enc_free(e);
	ck_assert_int_eq(decode_sums(k.buf, k.len, NULL, &rx, &why), 0);
	ck_assert_int_eq(rx.state_verified, 1);
	ck_assert_int_ne(memcmp(rx.mem[0], s.mem[0], 40 * 1024), 0);
	for (unsigned int th = 1; th <= 4; th++) {
		a = (struct pmtrack_audit){ .sz = sizeof(a) };
		ck_assert_int_eq(pmtrack_pagesums_audit(t, iov, 2, th, &a),
				 -EBADMSG);
		ck_assert_uint_eq(a.differ, 1);
		ck_assert_uint_eq(a.unsent, 0);
		ck_assert_uint_eq(a.first_region, 0);
		ck_assert_uint_eq(a.first_page, 3);
	}
	/* the wrong memory for the table */
	iov[1].iov_len -= 1024;
	ck_assert_int_eq(pmtrack_pagesums_audit(t, iov, 2, 1, &a), -EINVAL);
	ck_assert_int_eq(pmtrack_pagesums_audit(t, iov, 1, 1, &a), -EINVAL);
	iov[1].iov_len += 1024;
	pmtrack_pagesums_free(t);
	rx_free(&rx);
	free(k.buf);
	k = (struct sink){ 0 };

	/* a stream that sends only region 0: region 1 is unsent */
	ck_assert_int_eq(pmtrack_pagesums_new(&t), 0);
	o.sums = t;
	ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 2, &e), 0);
	set_all(s.dirty[0], 40);
	{
		struct pmtrack_enc_region_round rr = { 0, s.dirty[0], NULL,
						       s.mem[0] };

		ck_assert_int_eq(pmtrack_enc_round(e, 0, &rr, 1), 0);
	}
	pmtrack_enc_free(e);
	a = (struct pmtrack_audit){ .sz = sizeof(a) };
	ck_assert_int_eq(pmtrack_pagesums_audit(t, iov, 2, 2, &a), -EBADMSG);
	ck_assert_uint_eq(a.differ, 0);
	ck_assert_uint_eq(a.unsent, 9);
	ck_assert_uint_eq(a.first_region, 1);
	ck_assert_uint_eq(a.first_page, 0);
	pmtrack_pagesums_free(t);
	free(k.buf);
	src_free(&s);
}
END_TEST

/*
 * A chain of streams, one table per side: every END's state is checked
 * on the decoding side; a child stream decoded without its parent's
 * table carries a state that cannot be checked; an encoder refuses a
 * table that does not hold the parent's state, until resumed.
 */
START_TEST(state_chain)
{
	static const size_t pages[] = { 16 };
	uint64_t rs = 9;
	struct sink k[3] = { { 0 } };
	struct rx rx = { .dest = true };
	struct pmtrack_pagesums *et, *dt;
	struct pmtrack_enc *e;
	struct src s;
	uint8_t ids[3][PMTRACK_STREAM_ID_LEN] = { "stream-zero-0000",
						  "stream-one-11111",
						  "stream-two-22222" };
	int why;

	src_init(&s, 1, pages, 1024, &rs);
	ck_assert_int_eq(pmtrack_pagesums_new(&et), 0);
	ck_assert_int_eq(pmtrack_pagesums_new(&dt), 0);
	for (int i = 0; i < 3; i++) {
		PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write,
			     .write_arg = &k[i], .page_size = 1024,
			     .stream_id = ids[i],
			     .parent_id = i ? ids[i - 1] : NULL, .sums = et);

		if (i)
			mutate(&s, &rs, false);
		else
			set_all(s.dirty[0], 16);
		ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 1, &e), 0);
		ck_assert_int_eq(src_round(e, &s, 0), 0);
		ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
		pmtrack_enc_free(e);
	}
	for (int i = 0; i < 3; i++) {
		/* fresh memory each time: the table is what carries over */
		rx = (struct rx){ .dest = true };
		ck_assert_int_eq(decode_sums(k[i].buf, k[i].len, dt, &rx, &why),
				 0);
		ck_assert_int_eq(rx.has_state, 1);
		ck_assert_int_eq(rx.state_verified, 1);
		rx_free(&rx);
	}
	/* image 1 alone: a state it cannot check (its own table would
	   start empty) */
	rx = (struct rx){ .dest = true };
	ck_assert_int_eq(decode_sums(k[1].buf, k[1].len, NULL, &rx, &why), 0);
	ck_assert_int_eq(rx.has_state, 1);
	ck_assert_int_eq(rx.state_verified, 0);
	rx_free(&rx);
	/* a child of stream 1 while the table holds stream 2 */
	{
		PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write,
			     .write_arg = &k[0], .page_size = 1024,
			     .parent_id = ids[1], .sums = et);

		ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 1, &e), -EINVAL);
		ck_assert_int_eq(pmtrack_pagesums_resume(et, ids[1]), 0);
		ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 1, &e), 0);
		pmtrack_enc_free(e);
		/* and one with a table, but NO_STATE: refused */
		o.flags = PMTRACK_ENC_NO_STATE;
		ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 1, &e), -EINVAL);
	}
	pmtrack_pagesums_free(et);
	pmtrack_pagesums_free(dt);
	for (int i = 0; i < 3; i++)
		free(k[i].buf);
	src_free(&s);
}
END_TEST

/* --- worker threads -------------------------------------------------------- */

/* a stream of 3 rounds over 3 regions, encoded with @workers threads */
static void enc_workers(struct sink *k, unsigned int workers, int level,
			unsigned int flags, uint32_t batch, uint64_t seed)
{
	static const size_t pages[] = { 300, 77, 1 };
	PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write, .write_arg = k,
		     .page_size = 1024, .level = level, .flags = flags,
		     .batch_pages = batch, .producer = "workers",
		     .stream_id = (const uint8_t *)"workers-stream-1",
		     .workers = workers);
	uint64_t rs = seed;
	struct pmtrack_enc *e;
	struct src s;

	memset(k, 0, sizeof(*k));
	src_init(&s, 3, pages, 1024, &rs);
	ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 3, &e), 0);
	for (uint64_t round = 0; round < 3; round++) {
		mutate(&s, &rs, round == 0);
		ck_assert_int_eq(src_round(e, &s, round), 0);
	}
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	pmtrack_enc_free(e);
	src_free(&s);
}

/*
 * Workers change who prepares a batch, not the stream: the same bytes as
 * the caller alone, for every level, STABLE or copying, batch size and
 * number of workers; and it decodes with its state verified.
 */
START_TEST(workers_same_bytes)
{
	static const unsigned int nw[] = { 1, 2, 3, 8 };
	static const int levels[] = { 0, 1, 3 };
	int level = levels[_i % 3];
	unsigned int flags = _i / 3 % 2 ? PMTRACK_ENC_STABLE : 0;
	uint32_t batch = _i / 6 % 2 ? 1 : 16;
	struct sink ref, k;

	enc_workers(&ref, 0, level, flags, batch, 1000 + (uint64_t)_i);
	for (size_t w = 0; w < sizeof(nw) / sizeof(*nw); w++) {
		struct rx rx = { .dest = true };
		int why;

		enc_workers(&k, nw[w], level, flags, batch,
			    1000 + (uint64_t)_i);
		ck_assert_msg(k.len == ref.len && !memcmp(k.buf, ref.buf,
							  k.len),
			      "%u workers, level %d, flags %u, batch %u: "
			      "other bytes",
			      nw[w], level, flags, batch);
		ck_assert_int_eq(decode_sums(k.buf, k.len, NULL, &rx, &why),
				 0);
		ck_assert_int_eq(rx.state_verified, 1);
		rx_free(&rx);
		free(k.buf);
	}
	free(ref.buf);
}
END_TEST

/*
 * A write that fails while workers hold batches: the error comes back,
 * the stream is dead, and no worker reads the caller's memory after
 * pmtrack_enc_round() returned (it is unmapped at once).
 */
START_TEST(workers_write_error)
{
	size_t psz = 1024, pages = 2048, len = pages * psz;
	struct sink k = { .fail_at = 3 + _i * 5 };
	PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write, .write_arg = &k,
		     .page_size = psz, .level = _i % 2, .batch_pages = 8,
		     .workers = 3);
	struct pmtrack_stream_region rg = { .id = 1, .length = len };
	uint64_t *dirty = malloc(pages / 8);
	struct pmtrack_enc_region_round rr = { .dirty = dirty };
	struct pmtrack_enc *e;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(m, MAP_FAILED);
	ck_assert_ptr_nonnull(dirty);
	for (size_t i = 0; i < len; i++)
		m[i] = (uint8_t)(i * 31 + i / psz);
	memset(dirty, 0xff, pages / 8);
	rr.mem = m;
	ck_assert_int_eq(pmtrack_enc_new(&o, &rg, 1, &e), 0);
	ck_assert_int_eq(pmtrack_enc_round(e, 0, &rr, 1), -ENOSPC);
	ck_assert_int_eq(munmap(m, len), 0);
	ck_assert_int_eq(pmtrack_enc_round(e, 1, &rr, 1), -EPIPE);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), -EPIPE);
	pmtrack_enc_free(e);
	free(dirty);
	free(k.buf);
	/* too many */
	o.workers = 65;
	ck_assert_int_eq(pmtrack_enc_new(&o, &rg, 1, &e), -EINVAL);
}
END_TEST

/*
 * The decoder's own page sums stay within mem_limit: a stream whose pages
 * need more table than that decodes, its state unchecked; a caller's
 * table, which is not limited, checks it.
 */
START_TEST(state_own_table_limit)
{
	size_t np = 65536, len = np * 1024;
	struct sink k = { 0 };
	PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write, .write_arg = &k,
		     .page_size = 1024);
	struct pmtrack_stream_region rg = { .id = 3, .length = len };
	uint64_t *dirty = malloc(np / 8);
	struct pmtrack_enc_region_round rr = { .dirty = dirty };
	struct pmtrack_pagesums *t;
	struct pmtrack_enc *e;
	uint8_t *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);

	ck_assert_ptr_ne(m, MAP_FAILED);
	ck_assert_ptr_nonnull(dirty);
	memset(dirty, 0xff, np / 8);
	rr.mem = m;
	ck_assert_int_eq(pmtrack_enc_new(&o, &rg, 1, &e), 0);
	ck_assert_int_eq(pmtrack_enc_round(e, 0, &rr, 1), 0);
	ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
	pmtrack_enc_free(e);
	ck_assert_int_eq(pmtrack_pagesums_new(&t), 0);
	for (int mine = 0; mine < 2; mine++) {
		/* 16 chunks of 64 KiB against a 512 KiB limit */
		PMTRACK_OPTS(pmtrack_dec_opts, d, .ops = &rx_ops,
			     .mem_limit = 512 << 10, .sums = mine ? t : NULL);
		struct rx rx = { .dest = false };
		struct pmtrack_dec *dec;

		d.arg = &rx;
		ck_assert_int_eq(pmtrack_dec_new(&d, &dec), 0);
		ck_assert_int_eq(pmtrack_dec_feed(dec, k.buf, k.len), 0);
		ck_assert_int_eq(pmtrack_dec_finish(dec), 0);
		pmtrack_dec_free(dec);
		ck_assert_int_eq(rx.has_state, 1);
		ck_assert_int_eq(rx.state_verified, mine);
		ck_assert_uint_eq(rx.zeros, np);
		rx_free(&rx);
	}
	pmtrack_pagesums_free(t);
	munmap(m, len);
	free(dirty);
	free(k.buf);
}
END_TEST

/* --- channels ------------------------------------------------------------- */

/*
 * A stream over 3 channels, merged record by record in the order
 * pmtrack_dec_next_channel() names, decodes with its state verified, and
 * its records after the HEADER are those of the one-channel stream; each
 * extra channel starts with its CHANNEL record.  Bad channel options,
 * starts and counts are refused.
 */
START_TEST(channels_merge)
{
	static const size_t pages[] = { 200, 33 };
	struct sink k[3] = { { 0 } }, one = { 0 };
	struct pmtrack_channel ch[2] = { { sink_write, &k[1], NULL },
					 { sink_write, &k[2], NULL } };
	struct pmtrack_channel_hello h = { .sz = sizeof(h) };
	struct pmtrack_dec_stats ds = { .sz = sizeof(ds) };
	struct rx rx = { .dest = true };
	struct pmtrack_dec *dec;
	size_t off[3], hdr_end = 0, one_off;
	uint64_t rs = 4;
	struct src s;
	int r, why;

	src_init(&s, 2, pages, 1024, &rs);
	for (int n = 1; n <= 3; n += 2) {
		PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write,
			     .write_arg = n == 1 ? &one : &k[0],
			     .page_size = 1024, .batch_pages = 7,
			     .stream_id = (const uint8_t *)"channel-stream-1",
			     .channels = (uint32_t)n, .channel = ch,
			     .workers = 2);
		struct pmtrack_enc *e;
		uint64_t rs2 = 99;

		ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 2, &e), 0);
		for (uint64_t round = 0; round < 3; round++) {
			mutate(&s, &rs2, round == 0);
			ck_assert_int_eq(src_round(e, &s, round), 0);
		}
		ck_assert_int_eq(pmtrack_enc_end(e, NULL), 0);
		pmtrack_enc_free(e);
		if (n == 3)
			break;
		/* the same memory again for the 3-channel stream */
		src_free(&s);
		rs = 4;
		src_init(&s, 2, pages, 1024, &rs);
	}
	/* the extra channels' starts */
	for (int i = 1; i < 3; i++) {
		r = pmtrack_channel_decode(k[i].buf, k[i].len, &h);
		ck_assert_int_gt(r, 0);
		ck_assert_uint_eq(h.index, (unsigned)i);
		ck_assert_uint_eq(h.count, 3);
		ck_assert_int_eq(memcmp(h.stream_id, "channel-stream-1", 16),
				 0);
		ck_assert_int_eq(pmtrack_channel_decode(k[i].buf, 20, &h), 0);
		off[i] = (size_t)r;
	}
	ck_assert_int_eq(pmtrack_channel_decode(one.buf, one.len, &h),
			 -EBADMSG);
	ck_assert_int_eq(pmtrack_channel_decode(NULL, 1, &h), -EINVAL);
	/* merge */
	{
		PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &rx_ops, .arg = &rx,
			     .channels = 3);
		uint8_t t;

		ck_assert_int_eq(pmtrack_dec_new(&o, &dec), 0);
		off[0] = PMTRACK_STREAM_PREAMBLE_LEN;
		ck_assert_int_eq(pmtrack_dec_feed(dec, k[0].buf, off[0]), 0);
		one_off = PMTRACK_STREAM_PREAMBLE_LEN;
		for (;;) {
			uint32_t c = pmtrack_dec_next_channel(dec);
			size_t e;

			ck_assert_uint_lt(c, 3);
			if (off[c] == k[c].len)
				break;
			e = next_rec(k[c].buf, off[c], &t);
			ck_assert_int_eq(pmtrack_dec_feed(dec, k[c].buf + off[c],
							  e - off[c]),
					 0);
			/* after the HEADER, record for record the same as
			   the one-channel stream */
			if (t == PMTRACK_REC_HEADER) {
				hdr_end = e;
				one_off = next_rec(one.buf, one_off, &t);
			} else {
				size_t oe = next_rec(one.buf, one_off, &t);

				ck_assert_uint_eq(oe - one_off, e - off[c]);
				ck_assert_int_eq(memcmp(one.buf + one_off,
							k[c].buf + off[c],
							e - off[c]),
						 0);
				one_off = oe;
			}
			off[c] = e;
		}
		ck_assert_uint_gt(hdr_end, 0);
		ck_assert_int_eq(pmtrack_dec_finish(dec), 0);
		ck_assert_int_eq(pmtrack_dec_get_stats(dec, &ds), 0);
		pmtrack_dec_free(dec);
	}
	ck_assert_uint_eq(one_off, one.len);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(off[i], k[i].len);
	ck_assert_int_eq(rx.state_verified, 1);
	for (size_t i = 0; i < s.n; i++)
		ck_assert_int_eq(memcmp(rx.mem[i], s.mem[i], s.rg[i].length),
				 0);
	rx_free(&rx);
	/* a one-channel decoder refuses the 3-channel stream at its HEADER */
	rx = (struct rx){ .dest = true };
	ck_assert_int_eq(decode(k[0].buf, k[0].len, 0, 0, &rx, &why),
			 -EBADMSG);
	ck_assert_int_eq(why, PMTRACK_SERR_MISMATCH);
	ck_assert_int_eq(rx.pages, 0);
	rx_free(&rx);
	/* options */
	{
		PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write,
			     .write_arg = &one, .page_size = 1024,
			     .channels = 2);
		PMTRACK_OPTS(pmtrack_dec_opts, d, .channels = 65);
		struct pmtrack_channel bad = { NULL, NULL, NULL };
		struct pmtrack_enc *e;

		ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 2, &e), -EINVAL);
		o.channel = &bad;
		ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 2, &e), -EINVAL);
		o.channel = ch;
		o.channels = 65;
		ck_assert_int_eq(pmtrack_enc_new(&o, s.rg, 2, &e), -EINVAL);
		ck_assert_int_eq(pmtrack_dec_new(&d, &dec), -EINVAL);
		ck_assert_uint_eq(pmtrack_dec_next_channel(NULL), 0);
	}
	for (int i = 0; i < 3; i++)
		free(k[i].buf);
	free(one.buf);
	src_free(&s);
}
END_TEST

/* --- golden files --------------------------------------------------------- */

/*
 * The golden streams, rebuilt from fixed seeds.  "raw" is deterministic
 * down to the byte (level 0; bitmaps that runs encode best) and must be
 * reproduced exactly; the zstd one depends on the zstd version, so it is
 * only decoded.  The first three were written before END carried a state
 * digest (PMTRACK_ENC_NO_STATE writes them still): they must decode as
 * they did.  "state" is the raw one with it.
 */
struct golden {
	const char *name;
	int level;
	bool parent;
	bool exact;
	bool state;
};

static const struct golden goldens[] = {
	{ "raw-v1.pmts", 0, false, true, false },
	{ "zstd-v1.pmts", 3, false, false, false },
	{ "parent-v1.pmts", 0, true, true, false },
	{ "state-v1.pmts", 0, false, true, true },
};

static void golden_build(const struct golden *g, struct sink *k, struct src *s)
{
	static const size_t pages[] = { 12, 30, 3 };
	PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write, .write_arg = k,
		     .page_size = 1024, .level = g->level, .batch_pages = 8,
		     .flags = g->state ? 0 : PMTRACK_ENC_NO_STATE,
		     .producer = "golden",
		     .stream_id = (const uint8_t *)"golden-stream-01",
		     .parent_id = g->parent
					  ? (const uint8_t *)"golden-parent-01"
					  : NULL);
	uint64_t rs = 2026;
	uint8_t d[PMTRACK_DIGEST_LEN];
	struct pmtrack_enc *e;

	memset(k, 0, sizeof(*k));
	src_init(s, 3, pages, 1024, &rs);
	ck_assert_int_eq(pmtrack_enc_new(&o, s->rg, 3, &e), 0);
	for (uint64_t round = 0; round < 3; round++) {
		mutate(s, &rs, round == 0);
		ck_assert_int_eq(src_round(e, s, round), 0);
	}
	src_digest(s, d);
	ck_assert_int_eq(pmtrack_enc_end(e, d), 0);
	pmtrack_enc_free(e);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *b = NULL;
	ssize_t n;
	size_t cap = 0;

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	*len = 0;
	do {
		if (*len == cap) {
			cap = cap * 2 + 65536;
			b = realloc(b, cap);
			ck_assert_ptr_nonnull(b);
		}
		n = read(fd, b + *len, cap - *len);
		ck_assert_int_ge(n, 0);
		*len += (size_t)n;
	} while (n > 0);
	close(fd);
	return b;
}

START_TEST(golden_files)
{
	const struct golden *g = &goldens[_i];
	const char *dir = getenv("PMT_GOLDEN_DIR");
	char path[4096];
	struct rx rx = { .dest = true };
	struct sink k;
	struct src s;
	uint8_t *b;
	size_t len;
	int why;

	ck_assert_msg(dir, "PMT_GOLDEN_DIR is not set");
	snprintf(path, sizeof(path), "%s/%s", dir, g->name);
	b = read_file(path, &len);
	golden_build(g, &k, &s);
	ck_assert_msg(decode(b, len, 0, 0, &rx, &why) == 0, "%s: %s", g->name,
		      pmtrack_stream_error_name(why));
	ck_assert_int_eq(rx.verified, 1);
	ck_assert_int_eq(rx.has_state, g->state);
	ck_assert_int_eq(rx.state_verified, g->state);
	ck_assert_int_eq(rx.had_parent, g->parent);
	ck_assert_uint_eq(rx.ps, 1024);
	for (size_t i = 0; i < s.n; i++)
		ck_assert_msg(!memcmp(rx.mem[i], s.mem[i], s.rg[i].length),
			      "%s region %zu", g->name, i);
	if (g->exact)
		ck_assert_msg(len == k.len && !memcmp(b, k.buf, len),
			      "%s: the encoder no longer writes the golden "
			      "bytes (format change? see proto/README.md)",
			      g->name);
	rx_free(&rx);
	free(b);
	free(k.buf);
	src_free(&s);
}
END_TEST

static const char *golden_out;

/* a test, so that the assertions in the builders have a runner */
START_TEST(write_golden)
{
	for (size_t i = 0; i < sizeof(goldens) / sizeof(*goldens); i++) {
		char path[4096];
		struct sink k;
		struct src s;
		FILE *f;

		golden_build(&goldens[i], &k, &s);
		snprintf(path, sizeof(path), "%s/%s", golden_out,
			 goldens[i].name);
		f = fopen(path, "wb");
		ck_assert_msg(f && fwrite(k.buf, 1, k.len, f) == k.len &&
				      !fclose(f),
			      "%s: %s", path, strerror(errno));
		printf("%s: %zu bytes\n", path, k.len);
		free(k.buf);
		src_free(&s);
	}
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s = suite_create("stream");
	TCase *tc;

	if (argc == 3 && !strcmp(argv[1], "--write-golden")) {
		golden_out = argv[2];
		tc = tcase_create("write");
		tcase_add_test(tc, write_golden);
		suite_add_tcase(s, tc);
		return t_run(s);
	}

	tc = tcase_create("channels");
	tcase_add_test(tc, channels_merge);
	suite_add_tcase(s, tc);

	tc = tcase_create("workers");
	tcase_add_loop_test(tc, workers_same_bytes, 0, 12);
	tcase_add_loop_test(tc, workers_write_error, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("state");
	tcase_add_test(tc, pagesums_args);
	tcase_add_loop_test(tc, state_catches_reorder, 0, 2);
	tcase_add_test(tc, state_audit_dropped_page);
	tcase_add_test(tc, state_chain);
	tcase_add_test(tc, state_own_table_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("round_trip");
	tcase_add_loop_test(tc, round_trip_random, 0, 60);
	tcase_add_loop_test(tc, maps_round_trip, 0, 12);
	tcase_add_test(tc, zero_pages_are_bits);
	tcase_add_test(tc, adaptive_compression);
	tcase_add_test(tc, concurrent_writes);
	tcase_add_test(tc, fd_transport);
	tcase_add_test(tc, unlisted_region_and_partial_destinations);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, encoder_errors);
	tcase_add_test(tc, decoder_api);
	tcase_add_test(tc, options_from_a_newer_header);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_test(tc, truncated_everywhere);
	tcase_add_loop_test(tc, corrupt_every_byte, 0, 2);
	tcase_add_test(tc, bad_preamble_and_frames);
	tcase_add_test(tc, crafted_streams);
	tcase_add_test(tc, reordered_and_duplicated_records);
	tcase_add_test(tc, memory_limit);
	tcase_add_test(tc, callback_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("cost");
	tcase_add_test(tc, cost_of_rounds_on_a_huge_region);
	tcase_add_test(tc, cost_of_rounds_on_many_regions);
	tcase_add_test(tc, zwords_need_a_bit_per_word);
	tcase_add_test(tc, encoder_sends_sparse_bitmaps_as_runs);
	tcase_add_test(tc, maps_follow_every_round);
	tcase_add_test(tc, decoder_stats);
	suite_add_tcase(s, tc);

	tc = tcase_create("golden");
	tcase_add_loop_test(tc, golden_files, 0,
			    (int)(sizeof(goldens) / sizeof(*goldens)));
	suite_add_tcase(s, tc);
	return t_run(s);
}

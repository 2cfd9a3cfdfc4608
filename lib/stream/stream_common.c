/* SPDX-License-Identifier: MIT */
/* Stream framing and bitmap runs, shared by the encoder and decoder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <pmtrack/stream.h>

#include "stream_internal.h"

void pmt_preamble_put(uint8_t out[PMTRACK_STREAM_PREAMBLE_LEN])
{
	memcpy(out, PMT_STREAM_MAGIC, PMT_MAGIC_LEN);
	pmt_put_le32(out + 8, PMTRACK_STREAM_VERSION);
	pmt_put_le32(out + 12, 0);
}

uint64_t pmt_frame_check(const uint8_t hdr[16], const void *meta, size_t len)
{
	return XXH3_64bits_withSeed(meta, len, XXH3_64bits(hdr, 16));
}

void pmt_frame_put(uint8_t out[PMTRACK_FRAME_LEN], const struct pmt_frame *f)
{
	out[0] = f->type;
	out[1] = f->flags;
	out[2] = (uint8_t)f->reserved;
	out[3] = (uint8_t)(f->reserved >> 8);
	pmt_put_le32(out + 4, f->meta_len);
	pmt_put_le64(out + 8, f->payload_len);
	pmt_put_le64(out + 16, f->check);
}

void pmt_frame_get(const uint8_t in[PMTRACK_FRAME_LEN], struct pmt_frame *f)
{
	f->type = in[0];
	f->flags = in[1];
	f->reserved = (uint16_t)(in[2] | in[3] << 8);
	f->meta_len = pmt_get_le32(in + 4);
	f->payload_len = pmt_get_le64(in + 8);
	f->check = pmt_get_le64(in + 16);
}

bool pmt_bits_to_runs(const uint64_t *w, uint64_t nbits, uint64_t *runs,
		      size_t max, size_t *npairs, uint64_t *nset)
{
	uint64_t pos = 0, end = 0, set = 0;
	size_t n = 0;

	for (;;) {
		uint64_t s = pmt_bits_next(w, nbits, pos), e;

		if (s >= nbits)
			break;
		e = pmt_bits_next_clear(w, nbits, s);
		if (n >= max)
			return false;
		if (runs) {
			runs[2 * n] = s - end;
			runs[2 * n + 1] = e - s;
		}
		n++;
		set += e - s;
		end = pos = e;
	}
	*npairs = n;
	*nset = set;
	return true;
}

size_t pmt_varints_len(const uint64_t *v, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t x = v[i];

		do {
			len++;
			x >>= 7;
		} while (x);
	}
	return len;
}

int pmtrack_digest(const struct iovec *iov, size_t n,
		   uint8_t out[PMTRACK_DIGEST_LEN])
{
	/* on the heap: the state's layout is private to libxxhash's
	   version, which may differ from the headers this was built with */
	XXH3_state_t *st;
	XXH128_canonical_t c;

	if (!out || (!iov && n))
		return -EINVAL;
	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_128bits_reset(st);
	for (size_t i = 0; i < n; i++)
		XXH3_128bits_update(st, iov[i].iov_base, iov[i].iov_len);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	XXH3_freeState(st);
	memcpy(out, c.digest, PMTRACK_DIGEST_LEN);
	return 0;
}

/* The same digest over memory given piece by piece. */
struct pmtrack_digest_ctx {
	XXH3_state_t *st;
};

int pmtrack_digest_new(struct pmtrack_digest_ctx **out)
{
	struct pmtrack_digest_ctx *d;

	if (!out)
		return -EINVAL;
	*out = NULL;
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->st = XXH3_createState();
	if (!d->st) {
		free(d);
		return -ENOMEM;
	}
	XXH3_128bits_reset(d->st);
	*out = d;
	return 0;
}

int pmtrack_digest_update(struct pmtrack_digest_ctx *d, const void *buf,
			  size_t len)
{
	if (!d || (!buf && len))
		return -EINVAL;
	if (len && XXH3_128bits_update(d->st, buf, len) != XXH_OK)
		return -EINVAL;
	return 0;
}

int pmtrack_digest_final(const struct pmtrack_digest_ctx *d,
			 uint8_t out[PMTRACK_DIGEST_LEN])
{
	XXH128_canonical_t c;

	if (!d || !out)
		return -EINVAL;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(d->st));
	memcpy(out, c.digest, PMTRACK_DIGEST_LEN);
	return 0;
}

void pmtrack_digest_free(struct pmtrack_digest_ctx *d)
{
	if (!d)
		return;
	XXH3_freeState(d->st);
	free(d);
}

static const char *const serr_names[] = {
	[PMTRACK_SERR_OK] = "ok",
	[PMTRACK_SERR_TRUNCATED] = "truncated",
	[PMTRACK_SERR_MAGIC] = "magic",
	[PMTRACK_SERR_VERSION] = "version",
	[PMTRACK_SERR_FRAME] = "frame",
	[PMTRACK_SERR_CHECKSUM] = "checksum",
	[PMTRACK_SERR_SCHEMA] = "schema",
	[PMTRACK_SERR_ORDER] = "order",
	[PMTRACK_SERR_DUPLICATE] = "duplicate",
	[PMTRACK_SERR_RANGE] = "range",
	[PMTRACK_SERR_MISMATCH] = "mismatch",
	[PMTRACK_SERR_INCOMPLETE] = "incomplete",
	[PMTRACK_SERR_DECOMPRESS] = "decompress",
	[PMTRACK_SERR_DIGEST] = "digest",
	[PMTRACK_SERR_TRAILING] = "trailing",
	[PMTRACK_SERR_LIMIT] = "limit",
	[PMTRACK_SERR_CALLBACK] = "callback",
	[PMTRACK_SERR_NOMEM] = "nomem",
};

const char *pmtrack_stream_error_name(int reason)
{
	if (reason < 0 ||
	    (size_t)reason >= sizeof(serr_names) / sizeof(*serr_names))
		return "unknown";
	return serr_names[reason];
}

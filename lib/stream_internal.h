/* SPDX-License-Identifier: MIT */
/* Shared by the stream encoder and decoder: framing, bitmaps as runs. */
#ifndef PMTRACK_STREAM_INTERNAL_H
#define PMTRACK_STREAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define PMT_STREAM_MAGIC "\x89PMT\r\n\x1a\n"
#define PMT_MAGIC_LEN 8
#define PMT_NAME_MAX 255
#define PMT_MAX_REGIONS 65536u
#define PMT_PAGE_MIN 512u
#define PMT_PAGE_MAX (1u << 30)

struct pmt_frame {
	uint8_t type;
	uint8_t flags;
	uint16_t reserved;
	uint32_t meta_len;
	uint64_t payload_len;
	uint64_t check;
};

PMT_HIDDEN void pmt_put_le32(uint8_t *p, uint32_t v);
PMT_HIDDEN void pmt_put_le64(uint8_t *p, uint64_t v);
PMT_HIDDEN uint32_t pmt_get_le32(const uint8_t *p);
PMT_HIDDEN uint64_t pmt_get_le64(const uint8_t *p);

/* the 16-byte preamble of a stream */
PMT_HIDDEN void pmt_preamble_put(uint8_t out[PMTRACK_STREAM_PREAMBLE_LEN]);

/* encode @f (check included) / decode; get does not validate */
PMT_HIDDEN void pmt_frame_put(uint8_t out[PMTRACK_FRAME_LEN],
			      const struct pmt_frame *f);
PMT_HIDDEN void pmt_frame_get(const uint8_t in[PMTRACK_FRAME_LEN],
			      struct pmt_frame *f);
/* the check of a frame whose first 16 bytes are @hdr, over @meta */
PMT_HIDDEN uint64_t pmt_frame_check(const uint8_t hdr[16], const void *meta,
				    size_t len);

/*
 * Runs of set bits in w[0..nbits) as (gap, length) pairs (see
 * proto/bitmap.proto).  With @runs NULL only counts.  Stops and returns
 * false once more than @max pairs would be needed.
 */
PMT_HIDDEN bool pmt_bits_to_runs(const uint64_t *w, uint64_t nbits,
				 uint64_t *runs, size_t max, size_t *npairs,
				 uint64_t *nset);

/* bytes the packed varints of @v[0..n) take */
PMT_HIDDEN size_t pmt_varints_len(const uint64_t *v, size_t n);

/* set / test-all of bits [start, start + len) */
PMT_HIDDEN void pmt_bits_set(uint64_t *w, uint64_t start, uint64_t len);
PMT_HIDDEN void pmt_bits_clear(uint64_t *w, uint64_t start, uint64_t len);
PMT_HIDDEN bool pmt_bits_all(const uint64_t *w, uint64_t start, uint64_t len);
PMT_HIDDEN uint64_t pmt_bits_count(const uint64_t *w, size_t nwords);

/* first set bit at or after @from, or @nbits */
PMT_HIDDEN uint64_t pmt_bits_next(const uint64_t *w, uint64_t nbits,
				  uint64_t from);
/* first clear bit at or after @from, or @nbits */
PMT_HIDDEN uint64_t pmt_bits_next_clear(const uint64_t *w, uint64_t nbits,
					uint64_t from);

static inline size_t pmt_nwords(uint64_t nbits)
{
	return (size_t)((nbits + 63) / 64);
}

#endif

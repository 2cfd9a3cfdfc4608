/* SPDX-License-Identifier: MIT */
/* Shared by the stream encoder and decoder: framing, bitmaps as runs. */
#ifndef PMTRACK_STREAM_INTERNAL_H
#define PMTRACK_STREAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pmtrack/stream.h>

#include "base.h"
#include "bitmap.h"

#define PMT_STREAM_MAGIC "\x89PMT\r\n\x1a\n"
#define PMT_MAGIC_LEN 8
#define PMT_NAME_MAX PMTRACK_STREAM_NAME_MAX
#define PMT_MAX_REGIONS PMTRACK_STREAM_MAX_REGIONS
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

/*
 * memzero.c: make [addr, addr + len) read as zero.  Whole pages of private
 * anonymous memory are dropped (they then cost nothing until written);
 * other memory is written where it is not zero already.  Returns 1 if the
 * whole pages were dropped, 0 if written.
 */
PMT_HIDDEN int pmt_zero_range(void *addr, size_t len);

/* bytes the packed varints of @v[0..n) take */
PMT_HIDDEN size_t pmt_varints_len(const uint64_t *v, size_t n);

#endif

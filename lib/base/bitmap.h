/* SPDX-License-Identifier: MIT */
/*
 * Bitmaps of 64-bit words, bit i in word i / 64 at position i % 64: the one
 * module every part uses for dirty, zero, held and latch bits.  Ranges are
 * (start, len) in bits, and a len of 0 touches nothing (the caller must
 * not compute len as a difference that can go below zero); scans take the bitmap's length in bits and return it
 * when they find nothing.  Plain (non-atomic) words; a part that needs
 * atomic words builds its loops on pmt_word_mask().
 */
#ifndef PMT_BITMAP_H
#define PMT_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

/* words that hold @nbits bits */
static inline size_t pmt_nwords(uint64_t nbits)
{
	return (size_t)((nbits + 63) / 64);
}

/* bits [from, to) of a bitmap that fall in word w, as a mask of that word */
static inline uint64_t pmt_word_mask(size_t w, uint64_t from, uint64_t to)
{
	uint64_t lo = (uint64_t)w * 64, hi = lo + 64;
	uint64_t m = ~0ULL;

	if (from > lo)
		m &= ~0ULL << (from - lo);
	if (to < hi)
		m &= ~0ULL >> (hi - to);
	return m;
}

static inline bool pmt_bit_test(const uint64_t *w, uint64_t i)
{
	return (w[i / 64] >> (i % 64)) & 1;
}

static inline void pmt_bit_set(uint64_t *w, uint64_t i)
{
	w[i / 64] |= 1ULL << (i % 64);
}

/* set / clear bits [start, start + len) */
PMT_HIDDEN void pmt_bits_set(uint64_t *w, uint64_t start, uint64_t len);
PMT_HIDDEN void pmt_bits_clear(uint64_t *w, uint64_t start, uint64_t len);
/* are all bits of [start, start + len) set? */
PMT_HIDDEN bool pmt_bits_all(const uint64_t *w, uint64_t start, uint64_t len);
/* over bits [start, start + len) only: dst &= src, dst |= src */
PMT_HIDDEN void pmt_bits_and(uint64_t *dst, const uint64_t *src, uint64_t start,
			     uint64_t len);
PMT_HIDDEN void pmt_bits_or(uint64_t *dst, const uint64_t *src, uint64_t start,
			    uint64_t len);
/* set bits in w[0..nwords) */
PMT_HIDDEN uint64_t pmt_bits_count(const uint64_t *w, size_t nwords);

/* first set bit at or after @from, or @nbits */
PMT_HIDDEN uint64_t pmt_bits_next(const uint64_t *w, uint64_t nbits,
				  uint64_t from);
/* first clear bit at or after @from, or @nbits */
PMT_HIDDEN uint64_t pmt_bits_next_clear(const uint64_t *w, uint64_t nbits,
					uint64_t from);

#endif /* PMT_BITMAP_H */

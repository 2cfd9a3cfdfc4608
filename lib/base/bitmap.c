// SPDX-License-Identifier: MIT
/* Bitmaps of 64-bit words (bitmap.h). */
#include "bitmap.h"

static inline void put_word(uint64_t *w, uint64_t m, bool on)
{
	*w = on ? *w | m : *w & ~m;
}

/* set (@on) or clear bits [start, start + len): the words between the
 * first and the last whole, as collects into a bitmap set long runs */
static inline void put_bits(uint64_t *w, uint64_t start, uint64_t len, bool on)
{
	uint64_t end = start + len;
	size_t i = start / 64, last = pmt_nwords(end) - 1;

	if (!len)
		return;
	put_word(&w[i], pmt_word_mask(i, start, end), on);
	if (i == last)
		return;
	while (++i < last)
		w[i] = on ? ~0ULL : 0;
	put_word(&w[last], pmt_word_mask(last, start, end), on);
}

void pmt_bits_set(uint64_t *w, uint64_t start, uint64_t len)
{
	put_bits(w, start, len, true);
}

void pmt_bits_clear(uint64_t *w, uint64_t start, uint64_t len)
{
	put_bits(w, start, len, false);
}

bool pmt_bits_all(const uint64_t *w, uint64_t start, uint64_t len)
{
	uint64_t end = start + len;

	for (size_t i = start / 64; i < pmt_nwords(end); i++) {
		uint64_t m = pmt_word_mask(i, start, end);

		if ((w[i] & m) != m)
			return false;
	}
	return true;
}

uint64_t pmt_bits_count(const uint64_t *w, size_t nwords)
{
	uint64_t n = 0;

	for (size_t i = 0; i < nwords; i++)
		n += (uint64_t)__builtin_popcountll(w[i]);
	return n;
}

void pmt_bits_and(uint64_t *dst, const uint64_t *src, uint64_t start,
		  uint64_t len)
{
	uint64_t end = start + len;

	for (size_t i = start / 64; i < pmt_nwords(end); i++)
		dst[i] &= src[i] | ~pmt_word_mask(i, start, end);
}

void pmt_bits_or(uint64_t *dst, const uint64_t *src, uint64_t start,
		 uint64_t len)
{
	uint64_t end = start + len;

	for (size_t i = start / 64; i < pmt_nwords(end); i++)
		dst[i] |= src[i] & pmt_word_mask(i, start, end);
}

/* the first bit at or after @from of w (or of ~w with @flip all ones) */
static uint64_t next_bit(const uint64_t *w, uint64_t nbits, uint64_t from,
			 uint64_t flip)
{
	uint64_t i = from / 64, m;

	if (from >= nbits)
		return nbits;
	m = (w[i] ^ flip) & (~0ULL << (from % 64));
	while (!m) {
		if (++i >= pmt_nwords(nbits))
			return nbits;
		m = w[i] ^ flip;
	}
	from = i * 64 + (uint64_t)__builtin_ctzll(m);
	return from < nbits ? from : nbits;
}

uint64_t pmt_bits_next(const uint64_t *w, uint64_t nbits, uint64_t from)
{
	return next_bit(w, nbits, from, 0);
}

uint64_t pmt_bits_next_clear(const uint64_t *w, uint64_t nbits, uint64_t from)
{
	return next_bit(w, nbits, from, ~0ULL);
}

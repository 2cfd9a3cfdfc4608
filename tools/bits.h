/* SPDX-License-Identifier: MIT */
/*
 * Page bitmaps of the remote dump, its replay and track: bit i of word i / 64
 * is page i, as in <pmtrack/stream.h> and <pmtrack/pagestate.h>.
 */
#ifndef PMTRACK_TOOLS_BITS_H
#define PMTRACK_TOOLS_BITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* words for @n bits */
static inline size_t bits_words(uint64_t n)
{
	return (size_t)((n + 63) / 64);
}

static inline bool bit_test(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static inline void bit_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline void bit_clear(uint64_t *b, uint64_t i)
{
	b[i / 64] &= ~((uint64_t)1 << (i % 64));
}

/* bits [@a, @b) of a word: a mask (0 <= a < b <= 64) */
static inline uint64_t bits_mask(unsigned int a, unsigned int b)
{
	uint64_t hi = b == 64 ? ~(uint64_t)0 : ((uint64_t)1 << b) - 1;

	return hi & ~(((uint64_t)1 << a) - 1);
}

/* set bits [@a, @b) */
static inline void bits_set(uint64_t *w, uint64_t a, uint64_t b)
{
	while (a < b) {
		uint64_t e = (a / 64 + 1) * 64 < b ? (a / 64 + 1) * 64 : b;

		w[a / 64] |=
			bits_mask(a % 64, (unsigned int)(e - (a / 64) * 64));
		a = e;
	}
}

/* bits set among the first @n */
static inline uint64_t bits_count(const uint64_t *w, uint64_t n)
{
	uint64_t c = 0;

	for (size_t i = 0; i < n / 64; i++)
		c += (uint64_t)__builtin_popcountll(w[i]);
	if (n % 64)
		c += (uint64_t)__builtin_popcountll(
			w[n / 64] & bits_mask(0, (unsigned int)(n % 64)));
	return c;
}

/* the next set bit at or after @i, or @n */
static inline uint64_t bits_next(const uint64_t *w, uint64_t i, uint64_t n)
{
	while (i < n) {
		uint64_t v = w[i / 64] >> (i % 64);

		if (v) {
			i += (uint64_t)__builtin_ctzll(v);
			break;
		}
		i = (i / 64 + 1) * 64;
	}
	return i < n ? i : n;
}

/* the next clear bit at or after @i, or @n */
static inline uint64_t bits_next_clear(const uint64_t *w, uint64_t i,
				       uint64_t n)
{
	while (i < n) {
		uint64_t v = ~w[i / 64] >> (i % 64);

		if (v) {
			i += (uint64_t)__builtin_ctzll(v);
			break;
		}
		i = (i / 64 + 1) * 64;
	}
	return i < n ? i : n;
}

/* the next bit at or after @i that is set in both @a and @b (@set), or
   that is not (!@set); @n if none */
static inline uint64_t bits_next2(const uint64_t *a, const uint64_t *b,
				  uint64_t i, uint64_t n, bool set)
{
	while (i < n) {
		uint64_t v = a[i / 64] & b[i / 64];

		v = (set ? v : ~v) >> (i % 64);
		if (v) {
			i += (uint64_t)__builtin_ctzll(v);
			break;
		}
		i = (i / 64 + 1) * 64;
	}
	return i < n ? i : n;
}

/* the 64 bits of @w from bit @i on (bits past the array's end must be
   readable: @i < the bits the array holds) */
static inline uint64_t bits_get64(const uint64_t *w, uint64_t i, uint64_t nbits)
{
	uint64_t v = w[i / 64] >> (i % 64);

	if (i % 64 && i / 64 + 1 < bits_words(nbits))
		v |= w[i / 64 + 1] << (64 - i % 64);
	return v;
}

/* OR @n bits of @src from bit @s (it holds @srcbits) into @dst from bit @d */
static inline void bits_or_from(uint64_t *dst, uint64_t d, const uint64_t *src,
				uint64_t s, uint64_t srcbits, uint64_t n)
{
	while (n) {
		unsigned int k = (unsigned int)(n < 64 ? n : 64);
		unsigned int room = 64 - (unsigned int)(d % 64);
		uint64_t v;

		if (k > room)
			k = room;
		v = bits_get64(src, s, srcbits) & bits_mask(0, k);
		dst[d / 64] |= v << (d % 64);
		d += k;
		s += k;
		n -= k;
	}
}

#endif /* PMTRACK_TOOLS_BITS_H */

// SPDX-License-Identifier: MIT
/* Options and statistics structs, time and byte order (base.h). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "base.h"

bool pmt_opts_valid(const void *opts, size_t known, size_t user_sz)
{
	const unsigned char *p = opts;

	if (user_sz < sizeof(size_t))
		return false;
	for (size_t i = known; i < user_sz; i++)
		if (p[i])
			return false;
	return true;
}

int pmt_stats_out(void *dst, const void *src, size_t known)
{
	size_t sz, n;

	if (!dst)
		return -EINVAL;
	sz = *(const size_t *)dst;
	if (sz < sizeof(size_t))
		return -EINVAL;
	n = sz < known ? sz : known;
	memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
	       n - sizeof(size_t));
	if (sz > known)
		memset((char *)dst + known, 0, sz - known);
	return 0;
}

uint64_t pmt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pmt_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void pmt_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t pmt_get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

uint64_t pmt_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the stream decoder.  Each input is decoded twice:
 * in one piece and in small pieces, with destinations for the regions when
 * they are small enough, so that a write outside a region is an ASan
 * report and a read of delivered data past its end is one too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pmtrack/stream.h>

#define DEST_MAX (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	void *dest[64];
	size_t n;
	uint64_t sum;
};

static int fz_header(void *arg, struct pmtrack_dec *dec,
		     const struct pmtrack_dec_header *h)
{
	struct fz *f = arg;
	uint64_t total = 0;

	for (size_t i = 0; i < h->nregions; i++)
		total += h->regions[i].length;
	if (h->nregions > 64 || total > DEST_MAX)
		return 0;
	for (size_t i = 0; i < h->nregions; i++) {
		/* exactly the region's size: one byte past it is a report */
		f->dest[i] = malloc(h->regions[i].length);
		if (!f->dest[i])
			return -12;
		f->n = i + 1;
		if (pmtrack_dec_set_dest(dec, (uint32_t)i, f->dest[i],
					 h->regions[i].length))
			abort(); /* the length is the region's: must work */
	}
	return 0;
}

static int fz_round(void *arg, struct pmtrack_dec *dec, uint64_t round)
{
	struct fz *f = arg;
	const uint64_t *w;
	size_t nw;

	(void)round;
	for (uint32_t r = 0;
	     (w = pmtrack_dec_map(dec, r, PMTRACK_MAP_ZERO, &nw)); r++)
		for (size_t i = 0; i < nw; i++)
			f->sum += w[i];
	return 0;
}

static int fz_pages(void *arg, uint32_t region, uint64_t first, uint64_t n,
		    const void *data)
{
	struct fz *f = arg;

	(void)region;
	(void)first;
	/* touch the first and last byte delivered */
	if (data && n)
		f->sum += ((const uint8_t *)data)[0] +
			  ((const uint8_t *)data)[n * 512 - 1];
	return 0;
}

static const struct pmtrack_dec_ops fz_ops = {
	.header = fz_header,
	.round = fz_round,
	.pages = fz_pages,
};

static void run(const uint8_t *data, size_t size, size_t chunk)
{
	struct fz f = { .n = 0 };
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &fz_ops, .arg = &f,
		     .mem_limit = 16u << 20);
	struct pmtrack_dec *dec;
	int r = 0, reason;

	if (pmtrack_dec_new(&o, &dec))
		abort();
	for (size_t off = 0; off < size && !r; off += chunk)
		r = pmtrack_dec_feed(dec, data + off,
				     size - off < chunk ? size - off : chunk);
	if (!r)
		r = pmtrack_dec_finish(dec);
	/* an error always has a reason and a message */
	if (r && (!*pmtrack_dec_error(dec, &reason) || !reason))
		abort();
	pmtrack_dec_free(dec);
	for (size_t i = 0; i < f.n; i++)
		free(f.dest[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size, size ? size : 1);
	run(data, size, 1 + size % 61);
	return 0;
}

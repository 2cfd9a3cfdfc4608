/* SPDX-License-Identifier: MIT */
/*
 * Page sums, as the encoder and decoder keep them (pagesums.c); the
 * public half is in <pmtrack/stream.h>.
 */
#ifndef PMT_PAGESUMS_H
#define PMT_PAGESUMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xxhash.h>

#include <pmtrack/stream.h>

#include "base.h"

/* chunks and directories may take at most @limit bytes (0 = no limit) */
PMT_HIDDEN void pmt_ps_set_limit(struct pmtrack_pagesums *s, size_t limit);
/*
 * Bind @s to a region table.  @fresh: forget every entry (a stream without
 * a parent), rebinding to another table if need be; otherwise the table
 * must be the one @s holds.  0, -EINVAL (another table), -E2BIG (limit),
 * -ENOMEM.
 */
PMT_HIDDEN int pmt_ps_bind(struct pmtrack_pagesums *s,
			   const struct pmtrack_stream_region *r, size_t n,
			   size_t ps, bool fresh);
/* Does @s hold, intact, the state the stream @parent ended with? */
PMT_HIDDEN bool pmt_ps_follows(const struct pmtrack_pagesums *s,
			       const uint8_t *parent);
/* the stream @id ended: @s holds its state */
PMT_HIDDEN void pmt_ps_ended(struct pmtrack_pagesums *s, const uint8_t *id);
/* an entry could not be kept: @s no longer says anything */
PMT_HIDDEN void pmt_ps_invalidate(struct pmtrack_pagesums *s);
PMT_HIDDEN bool pmt_ps_valid(const struct pmtrack_pagesums *s);
/*
 * Pages [@first, @first + @n) of region index @region now hold @data (n
 * pages), or zero (@data NULL).  0, or -E2BIG / -ENOMEM (then invalid).
 */
PMT_HIDDEN int pmt_ps_pages(struct pmtrack_pagesums *s, uint32_t region,
			    uint64_t first, uint64_t n, const void *data);

/* page @page of region index @region now holds a page whose XXH3-128 is
   @h; 0, or -E2BIG / -ENOMEM (then invalid) */
PMT_HIDDEN int pmt_ps_put(struct pmtrack_pagesums *s, uint32_t region,
			  uint64_t page, XXH128_hash_t h);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The sending side's memory, for pre-copy (precopy.c) and checkpoint images
 * (checkpoint.c): a set of watched regions whose written pages are collected
 * into per-region bitmaps and encoded as rounds.  Private to the migrate
 * part.
 *
 * A source keeps the pages it collected until the caller says they were
 * delivered (pmt_src_sent()): a dump that fails keeps them for the next
 * one, so a page reset by the tracker is never dropped.
 */
#ifndef PMT_SOURCE_H
#define PMT_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include <pmtrack/migrate.h>

#include "base.h"

struct pmt_src {
	struct pmtrack *t;
	size_t n;
	size_t ps;
	uint64_t total_pages;
	struct pmtrack_mem_region *r;
	struct pmtrack_stream_region *sr;
	struct pmtrack_bitmap *bm;
	uint64_t **dirty; /* pages to send, per region */
	size_t *nwords;
	struct pmtrack_enc_region_round *rr;
};

/*
 * Watch regions @r[0..n) with a tracker of options @topts (NULL = automatic
 * backend with PMTRACK_CAP_ATOMIC_RESET required); no page is pending yet.
 * 0, -EINVAL for bad regions, the tracker's errors, -ENOMEM.  On failure
 * @s is zeroed, as pmt_src_free() leaves it.
 */
PMT_HIDDEN int pmt_src_init(struct pmt_src *s, const struct pmtrack_opts *topts,
			    const struct pmtrack_mem_region *r, size_t n);
/* Stop watching and free; a zeroed source is a no-op. */
PMT_HIDDEN void pmt_src_free(struct pmt_src *s);

/* Every page goes into the next round. */
PMT_HIDDEN void pmt_src_all(struct pmt_src *s);
/* Add the pages written since the last collect; *count = pages pending. */
PMT_HIDDEN int pmt_src_collect(struct pmt_src *s, uint64_t *count);
/* Encode the pending pages as round @round of @enc. */
PMT_HIDDEN int pmt_src_round(struct pmt_src *s, struct pmtrack_enc *enc,
			     uint64_t round);
/* The pending pages were delivered. */
PMT_HIDDEN void pmt_src_sent(struct pmt_src *s);
/*
 * Encoder workers for a requested number (0 = automatic: the online CPUs
 * beyond the caller's, at most 8; PMTRACK_NO_WORKERS = none).
 */
PMT_HIDDEN unsigned int pmt_src_workers(uint32_t want);
/* Threads for an audit: every online CPU, at most 16. */
PMT_HIDDEN unsigned int pmt_src_cpus(void);
/*
 * pmtrack_pagesums_audit() of all the regions against @sums; the bad
 * pages' count and the first one's address into *@differ and *@first.
 */
PMT_HIDDEN int pmt_src_audit(struct pmt_src *s,
			     const struct pmtrack_pagesums *sums,
			     uint64_t *differ, uint64_t *first);
/* pmtrack_digest() of all the regions; 0 or -ENOMEM. */
PMT_HIDDEN int pmt_src_digest(struct pmt_src *s,
			      uint8_t out[PMTRACK_DIGEST_LEN]);

#endif /* PMT_SOURCE_H */

/* SPDX-License-Identifier: MIT */
/*
 * What the track part offers the parts built on the tracker (winwatch)
 * beyond <pmtrack/pmtrack.h>.  They see struct pmtrack only as the public
 * opaque handle.
 */
#ifndef PMT_TRACK_H
#define PMT_TRACK_H

#include <stddef.h>

#include <pmtrack/pmtrack.h>

#include "base.h"

/*
 * mprotect() [addr, addr + len), which must lie within watched
 * ranges, without disturbing tracking: no page turns written or clean by
 * it, and on the mprotect backend a write to a page made non-writable
 * faults as it would unwatched.  For the winwatch shim.  0 or -errno.
 */
PMT_HIDDEN int pmt_protect(struct pmtrack *t, void *addr, size_t len, int prot);

/*
 * pmtrack_new(), but with @uffd >= 0 a pagemap-scan tracker of another
 * process takes that userfaultfd of the target (which a tracer that has
 * it stopped got for it) instead of injecting one; it is the tracker's
 * from then on, closed on failure too.
 */
PMT_HIDDEN int pmt_track_new(const struct pmtrack_opts *opts, int uffd,
			     struct pmtrack **out);

#endif /* PMT_TRACK_H */

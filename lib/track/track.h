/* SPDX-License-Identifier: MIT */
/*
 * What the track part offers the parts built on the tracker (winwatch)
 * beyond <pmtrack/pmtrack.h>.  They see struct pmtrack only as the public
 * opaque handle.
 */
#ifndef PMT_TRACK_H
#define PMT_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* how pmt_track_new_uffd() gets a pagemap-scan tracker's userfaultfd */
struct pmt_uffd_how {
	int fd;		   /* the target's, as for pmt_track_new(); -1 */
	bool ready;	   /* @fd came from a fork event: no UFFDIO_API */
	uint64_t features; /* asked of UFFDIO_API besides the backend's */
};

/* pmt_track_new() with those; @how->fd is the tracker's from then on */
PMT_HIDDEN int pmt_track_new_uffd(const struct pmtrack_opts *opts,
				  const struct pmt_uffd_how *how,
				  struct pmtrack **out);

/* the tracker's userfaultfd, or -1 (not pagemap-scan) */
PMT_HIDDEN int pmt_track_uffd(const struct pmtrack *t);

/*
 * pmtrack_watch() of a range that a forked child inherited registered and
 * write-protected with its parent's state (a pmt_uffd_how.ready tracker):
 * nothing is registered or re-armed, so what the child wrote stays
 * written.  0 or -errno.
 */
PMT_HIDDEN int pmt_adopt(struct pmtrack *t, void *addr, size_t len);

#endif /* PMT_TRACK_H */

/* SPDX-License-Identifier: MIT */
/* Feature probes (probe.c) that the backends ask besides pmtrack_probe(). */
#ifndef PMT_PROBE_H
#define PMT_PROBE_H

#include <stdint.h>

#include "base.h"

/* supported userfaultfd features (the UFFDIO_API answer), or -errno */
PMT_HIDDEN int pmt_uffd_features(uint64_t *features);

#endif /* PMT_PROBE_H */

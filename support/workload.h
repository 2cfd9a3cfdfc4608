/* SPDX-License-Identifier: MIT */
/*
 * A synthetic workload for the examples, the CLI and the benchmarks: "guest
 * RAM" (an anonymous mapping with realistic contents) and writer threads
 * that dirty pages of it at a set rate, and can be paused and resumed from
 * a pre-copy stop callback.  Not part of the library's API.
 */
#ifndef PMTRACK_SUPPORT_WORKLOAD_H
#define PMTRACK_SUPPORT_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

struct wl;

struct wl_opts {
	size_t bytes;	  /* RAM size, rounded up to pages */
	int writers;	  /* threads, 0..64 */
	uint64_t rate;	  /* pages dirtied per second, all writers together;
			     0 = as fast as they can */
	uint64_t seed;	  /* contents and write pattern */
	unsigned int hot; /* percent of writes into the hot 1/16 of RAM
			     (0 = uniform) */
};

/* Map and fill the RAM, start the writers.  0 or -errno. */
int wl_start(const struct wl_opts *o, struct wl **out);
void *wl_mem(const struct wl *w);
size_t wl_len(const struct wl *w);
/* Pause every writer; returns once none is writing.  Usable directly as
   struct pmtrack_precopy_ops.stop (arg = the struct wl *).  Returns 0. */
int wl_pause(void *w);
/* Let the writers go on (struct pmtrack_precopy_ops.resume). */
void wl_resume(void *w);
/* Pages written so far (counting repeats). */
uint64_t wl_writes(const struct wl *w);
/* Stop the writers and unmap the RAM. */
void wl_free(struct wl *w);

/*
 * A size or rate from a command line: decimal digits, optionally followed
 * by K, M or G (2^10, 2^20, 2^30).  0, or -1 for anything else (overflow
 * included).
 */
int wl_parse_size(const char *s, uint64_t *out);

#endif /* PMTRACK_SUPPORT_WORKLOAD_H */

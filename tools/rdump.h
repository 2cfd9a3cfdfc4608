/* SPDX-License-Identifier: MIT */
/*
 * The remote dump engine of `pmtrack dump --pid` (rdump.c): incremental
 * images of another, running process (CRIU pre-dump style), the last one
 * taken frozen, with the memory's digest.
 */
#ifndef PMTRACK_TOOLS_RDUMP_H
#define PMTRACK_TOOLS_RDUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pmtrack/pmtrack.h>

#include "rdtable.h"

struct rd_opts {
	int pid;
	bool children; /* PMTRACK_PROC_CHILDREN: fold their shared writes */
	bool digest;   /* the final image carries the END digest */
	int level;     /* zstd level of the page batches */
};

/* one image, as written */
struct rd_info {
	uint32_t index;
	bool frozen, has_digest;
	size_t regions, fresh;
	uint64_t pages, zero_pages; /* sent, zero pages included */
	uint64_t bytes;		    /* the image's size */
	uint64_t dropped; /* pages that could not be read: in the next image */
	/* the whole image, and its parts: collect (with the table), pages
	   (reading and writing them), digest */
	uint64_t ns, collect_ns, pages_ns, digest_ns;
	uint64_t frozen_at; /* CLOCK_MONOTONIC ns of the freeze (final) */
	const struct rd_table *table; /* until the next image */
};

struct rdump;

/* Track @o->pid (and its children): 0 or -errno (the library's). */
int rd_new(const struct rd_opts *o, struct rdump **out);
/*
 * Write the next image into directory @dfd (from rimg_dir_open()); @final:
 * freeze the processes first (they stay
 * frozen) and take every page as it is then, with the digest.  0, or
 * -errno (-ESRCH: the process is gone; -EFAULT: a page of the frozen
 * process could not be read).
 */
int rd_image(struct rdump *d, int dfd, bool final, struct rd_info *info);
/* let the frozen processes run again */
int rd_thaw(struct rdump *d);
/* SIGSTOP every tracked process, so that they stay stopped once the
   handle is freed; their pids into *@pids (malloc'ed), *@n of them */
int rd_stop_all(struct rdump *d, int **pids, size_t *n);
enum pmtrack_backend rd_backend(const struct rdump *d);
/* stop tracking (a frozen tree is thawed) */
void rd_free(struct rdump *d);

/* CLOCK_MONOTONIC in ns */
uint64_t rd_now_ns(void);

#endif /* PMTRACK_TOOLS_RDUMP_H */

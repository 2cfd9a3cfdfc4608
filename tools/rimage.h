/* SPDX-License-Identifier: MIT */
/*
 * The images of a `pmtrack dump --pid` chain (rimage.c): DIR/000000.pmts,
 * 000001.pmts, ... in the stream format, written as <pmtrack/migrate.h>'s
 * checkpoints are: to an unnamed O_TMPFILE (or a hidden name created
 * exclusively), synced, then linked to their name, which is never
 * replaced; then the directory is synced.
 */
#ifndef PMTRACK_TOOLS_RIMAGE_H
#define PMTRACK_TOOLS_RIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <pmtrack/migrate.h>
#include <pmtrack/stream.h>

/* the producer string of every image of such a chain */
#define RD_PRODUCER "pmtrack dump --pid"
/* region flags: bit 0 FRESH (the region does not carry over from the
   previous image: restore starts it from zeros), the mapping's
   PMTRACK_MAP_* flags from bit 8 on */
#define RD_FRESH 1u
#define RD_MAP_SHIFT 8
/* the most images a chain holds (six digits) */
#define RD_MAX_IMAGES 1000000u

/* image @i's file name, "NNNNNN.pmts" */
void rimg_name(char buf[16], uint32_t i);

/* Create @path (0755) if missing and open it: the descriptor, -EEXIST if
   it holds images already, or -errno. */
int rimg_dir_open(const char *path);

/* the highest image number in directory @dfd into *@last (-1 if none):
   0 or -errno */
int rimg_last(int dfd, long *last);

/* one image being written */
struct rimg {
	int dfd, fd;
	uint32_t index;
	char tmp[64]; /* its hidden name; "" for an unnamed file */
	struct pmtrack_xport *x;
	struct pmtrack_enc *enc;
	uint8_t id[PMTRACK_STREAM_ID_LEN]; /* its stream id */
};

/*
 * Start image @index in directory @dfd: a new stream id, @parent (NULL for
 * image 0), zstd @level, the region table @r[@n].  On failure nothing is
 * left in the directory.  0 or -errno.
 */
int rimg_begin(struct rimg *im, int dfd, uint32_t index, const uint8_t *parent,
	       int level, const struct pmtrack_stream_region *r, size_t n);
/* END (@digest or NULL), flush, sync and name the image; the encoder's
   counters into @st (sz set) even on failure.  0 or -errno; on failure
   nothing is left. */
int rimg_end(struct rimg *im, const uint8_t *digest,
	     struct pmtrack_enc_stats *st);
/* drop an unfinished image */
void rimg_abort(struct rimg *im);

#endif /* PMTRACK_TOOLS_RIMAGE_H */

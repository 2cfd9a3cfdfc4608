/* SPDX-License-Identifier: MIT */
/*
 * The replay of a `pmtrack dump --pid` chain (rrestore.c): a model of the
 * process's address space, one buffer per region of the last image
 * applied, each image decoded into it.
 */
#ifndef PMTRACK_TOOLS_RRESTORE_H
#define PMTRACK_TOOLS_RRESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* one region of the model */
struct rr_region {
	uint64_t start, len;
	uint32_t flags; /* as in the image: RD_FRESH, mapping flags << 8 */
	char *name;
	void *mem; /* its bytes (anonymous memory, MAP_NORESERVE) */
};

/* what applying one image did */
struct rr_image {
	uint32_t index;
	size_t regions, fresh, kept; /* kept: buffer reused as it was */
	uint64_t pages, zero_pages, bytes;
	bool has_digest, verified;
};

struct rr;

int rr_new(int dfd, struct rr **out);
void rr_free(struct rr *s);
/*
 * Apply image @i of the chain in the directory: its parent must be the
 * image applied before (none for image 0).  0, or -errno (-ENOENT: no such
 * image; -EBADMSG: corrupt, a broken chain, a digest that does not
 * match...), then rr_error() says why.
 */
int rr_apply(struct rr *s, uint32_t i, struct rr_image *im);
const char *rr_error(const struct rr *s);
/* the model: the regions of the last image applied, ascending */
const struct rr_region *rr_regions(const struct rr *s, size_t *n);
uint32_t rr_page_size(const struct rr *s);

/* 1 if DIR/000000.pmts was written by dump --pid, else 0 */
int rr_is_process_chain(const char *dir);

/* "<start>-<end>": a region's file name */
void rr_file_name(char name[40], uint64_t start, uint64_t end);
/*
 * Write @len bytes of @mem into the file "<start>-<end>" (lower-case hex,
 * no 0x) in directory @dfd, created or truncated, all-zero pages of
 * @pgsz bytes left as holes.  @name receives the file name.  0 or -errno.
 */
int rr_write_region(int dfd, uint64_t start, const void *mem, uint64_t len,
		    uint64_t pgsz, char name[40]);

#endif /* PMTRACK_TOOLS_RRESTORE_H */

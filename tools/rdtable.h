/* SPDX-License-Identifier: MIT */
/*
 * The remote dump's region table of one image (rdtable.c): the target's
 * writable mappings, the pages of each that exist, and which pages the
 * image sends, from what a collect reported and the previous image.
 */
#ifndef PMTRACK_TOOLS_RDTABLE_H
#define PMTRACK_TOOLS_RDTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pmtrack/pagestate.h>
#include <pmtrack/process.h>

/* one region: one mapping of the target */
struct rd_region {
	struct pmtrack_mapping m; /* m.name is ours, at most 255 bytes */
	uint64_t pages;
	bool fresh; /* RD_FRESH: restore starts it from zeros */
	/* bitmaps of the region's pages */
	uint64_t *exist; /* present, swapped, or (private) unsure */
	/* a file mapping's pages that exist in the file only (never
	   faulted in): read from the file; NULL for other mappings */
	uint64_t *file;
	uint64_t *dirty; /* sent by this image */
	uint64_t *retry; /* could not be read: for the next image */
	uint64_t *sub;	 /* scratch: one round's share of dirty */
	void *stage;	 /* the copy of the pages, while writing */
};

struct rd_table {
	struct rd_region *r; /* ascending, disjoint */
	size_t n;
};

/* an address range [start, end) */
struct rd_run {
	uint64_t start, end;
};

/* a range of file offsets [start, end) of one object */
struct rd_objrun {
	uint64_t inode, start, end;
	unsigned int major, minor;
};

/* what one collect reported, for the image that follows */
struct rd_collect {
	int root;		 /* the dumped process */
	bool exec;		 /* it exec'd */
	struct rd_run *w, *full; /* its written pages; mappings in full */
	size_t nw, capw, nfull, capfull;
	/* other processes' writes into shared memory */
	struct rd_objrun *obj;
	size_t nobj, capobj;
};

/* a pmtrack_proc_fn filling a struct rd_collect */
int rd_collect_fn(void *arg, const struct pmtrack_proc_report *r);
void rd_collect_free(struct rd_collect *c);

/* The table of the process's writable mappings now (none special), with
   the pages of each that exist.  0 or -errno (-E2BIG: too many). */
/* Is @m backed by a file whose bytes show where it has no page: not
   anonymous, not shared memory (whose holes are holes)? */
bool rd_file_backed(const struct pmtrack_mapping *m);
int rd_table_read(struct pmtrack_pstate *ps, uint64_t pgsz, struct rd_table *t);
/*
 * Which regions of @t are fresh and which pages it sends, after @prev
 * (NULL: every region is fresh): a fresh region sends the pages that
 * exist (and those of its file); another the pages written (@c) or to
 * retry that exist, the ones that ceased to exist (as zero pages, or the
 * file's bytes) and the ones that came to exist.
 * Sorts @c's runs.
 */
void rd_table_mark(struct rd_table *t, const struct rd_table *prev,
		   struct rd_collect *c, uint64_t pgsz);
void rd_table_free(struct rd_table *t);

#endif /* PMTRACK_TOOLS_RDTABLE_H */

/* SPDX-License-Identifier: MIT */
/*
 * The dirty rate of pmtrack track (dirtyrate.c): per interval, the pages
 * each mapping had written, and a working-set estimate, the distinct
 * pages written during the last DR_WINDOW intervals, kept as one bitmap
 * per interval for each mapping (keyed by process and mapping start).
 */
#ifndef PMTRACK_TOOLS_DIRTYRATE_H
#define PMTRACK_TOOLS_DIRTYRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pmtrack/process.h>

#define DR_WINDOW 10

struct dr_map {
	int pid;
	uint64_t start, end;
	char *name;
	uint64_t pages;		   /* written this interval */
	uint64_t ws;		   /* distinct pages written in the window */
	uint64_t npages;	   /* the bitmaps' size */
	uint64_t *ring[DR_WINDOW]; /* pages written, per interval */
};

struct dr {
	uint64_t pgsz;
	uint64_t interval; /* the current one, from 1 */
	struct dr_map *m;  /* by pid, then start */
	size_t n, cap;
	/* this interval: pages written, pages of mappings reported in full
	   (new, grown, moved: their writes could not be told, so they are
	   not counted), the working set */
	uint64_t pages, full_pages, ws;
};

/* start interval d->interval + 1 */
void dr_begin(struct dr *d);
/* a pmtrack_proc_fn: one report of the interval's collect */
int dr_report(void *arg, const struct pmtrack_proc_report *r);
/* the interval's working sets; mappings idle for the whole window go */
void dr_end(struct dr *d);
void dr_free(struct dr *d);

#endif /* PMTRACK_TOOLS_DIRTYRATE_H */

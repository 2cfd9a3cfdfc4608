/* SPDX-License-Identifier: MIT */
/*
 * The progress bar of the long-running commands (pmtrack send, recv, dump,
 * restore, track; the migration and checkpoint examples): one line on a
 * terminal, redrawn in place at most ten times a second and erased before
 * anything else is printed.  It is drawn only when its stream is a
 * terminal (TERM not "dumb") and the command was not given --quiet, so a
 * pipe or a file never sees it.  Not thread-safe: one thread draws.  Not
 * part of the library's API.
 */
#ifndef PMTRACK_SUPPORT_PROGRESS_H
#define PMTRACK_SUPPORT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct pmt_bar {
	FILE *f;
	bool on;	  /* drawing at all */
	bool shown;	  /* a bar is on the line now */
	uint64_t last_ns; /* when it was last drawn */
};

/* Draw on @f if it is a terminal and not @quiet. */
void pmt_bar_init(struct pmt_bar *b, FILE *f, bool quiet);

/*
 * Redraw: a bar filled to @done / @total (no bar, just the text, when
 * @total is 0) and the text of @fmt after it, cut to the terminal's
 * width: at the end of its last part (parts end in ", " or "; ") that
 * fits, or at the width if even the first does not.  Skipped if the last draw was less than 100 ms ago, unless
 * @force.
 */
__attribute__((format(printf, 5, 6))) void
pmt_bar_draw(struct pmt_bar *b, bool force, uint64_t done, uint64_t total,
	     const char *fmt, ...);

/* Erase the bar, if one is shown, so that the next line starts clean. */
void pmt_bar_clear(struct pmt_bar *b);

#endif /* PMTRACK_SUPPORT_PROGRESS_H */

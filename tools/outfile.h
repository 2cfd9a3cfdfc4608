/* SPDX-License-Identifier: MIT */
/*
 * outfile.c: a file the tool writes.  A regular file (or none yet) is
 * written beside the path and renamed over it by outfile_commit(); a
 * device, FIFO or socket is written in place; a symlink is followed; a
 * directory is refused.  @what names the option in messages.
 */
#ifndef PMTRACK_TOOLS_OUTFILE_H
#define PMTRACK_TOOLS_OUTFILE_H

#include <stdbool.h>

struct outfile {
	char *path;    /* where the output goes (a symlink resolved) */
	char *tmp;     /* the temporary file renamed over path, or NULL */
	int fd;	       /* -1 when not open */
	bool in_place; /* a device, FIFO or socket: no rename */
	bool conn;     /* a Unix stream socket it connected to */
};
int outfile_open(const char *cmd, const char *what, struct outfile *of,
		 const char *path);
/* sync (a regular file), close and rename; 0 or -errno after a message */
int outfile_commit(const char *cmd, struct outfile *of);
/* close, and remove the temporary file if any (nothing once committed) */
void outfile_abort(struct outfile *of);
void outfile_release(struct outfile *of);

#endif /* PMTRACK_TOOLS_OUTFILE_H */

/* SPDX-License-Identifier: MIT */
/* /proc/PID files and the one parser of /proc/PID/maps lines (proc.c). */
#ifndef PMT_PROC_H
#define PMT_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "base.h"

/* open /proc/<pid>/<name> (pid 0: /proc/self) with O_CLOEXEC added to
 * @flags; the fd, or -1 and errno */
PMT_HIDDEN int pmt_proc_open(pid_t pid, const char *name, int flags);

/* does process @pid exist, and is it neither a zombie nor dead? */
PMT_HIDDEN bool pmt_proc_alive(pid_t pid);

/* the same file read-only as a stdio stream; NULL with *@err = -errno */
PMT_HIDDEN FILE *pmt_proc_stream(pid_t pid, const char *name, int *err);

/* one line of /proc/PID/maps (also the first line of an smaps entry) */
struct pmt_maps_line {
	uintptr_t start, end;
	unsigned int prot; /* PROT_* */
	bool shared;	   /* 's' */
	uint64_t offset, inode;
	unsigned int dev_major, dev_minor;
	int name_at; /* where the path or [name] starts in the line */
};

/* parse @line; 0, or -EIO if it is no such line (start >= end included) */
PMT_HIDDEN int pmt_maps_parse(const char *line, struct pmt_maps_line *out);

#endif /* PMT_PROC_H */

// SPDX-License-Identifier: MIT
/* /proc/PID files and /proc/PID/maps lines (proc.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proc.h"

int pmt_proc_open(pid_t pid, const char *name, int flags)
{
	char path[64];

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	else
		snprintf(path, sizeof(path), "/proc/self/%s", name);
	return open(path, flags | O_CLOEXEC);
}

FILE *pmt_proc_stream(pid_t pid, const char *name, int *err)
{
	int fd = pmt_proc_open(pid, name, O_RDONLY);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "r");

	if (!f) {
		*err = -errno;
		if (fd >= 0)
			close(fd);
	}
	return f;
}

int pmt_maps_parse(const char *line, struct pmt_maps_line *out)
{
	uintmax_t a, b, off, ino;
	unsigned int maj, min;
	char perm[8];
	int at = 0;

	if (sscanf(line, "%jx-%jx %7s %jx %x:%x %ju %n", &a, &b, perm, &off,
		   &maj, &min, &ino, &at) < 7 ||
	    !at || a >= b || strlen(perm) != 4)
		return -EIO;
	out->start = (uintptr_t)a;
	out->end = (uintptr_t)b;
	out->prot = (perm[0] == 'r' ? PROT_READ : 0) |
		    (perm[1] == 'w' ? PROT_WRITE : 0) |
		    (perm[2] == 'x' ? PROT_EXEC : 0);
	out->shared = perm[3] == 's';
	out->offset = off;
	out->inode = ino;
	out->dev_major = maj;
	out->dev_minor = min;
	out->name_at = at;
	return 0;
}

bool pmt_proc_alive(pid_t pid)
{
	char path[64], buf[256], *c = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f))
		c = strrchr(buf, ')');
	fclose(f);
	/* the state follows the name, which may hold ')' itself */
	return c && c[1] == ' ' && c[2] != 'Z' && c[2] != 'X';
}

/* SPDX-License-Identifier: MIT */
/* pmtrack dump --pid (rdrun.c): the images, their reports and messages. */
#ifndef PMTRACK_TOOLS_RDRUN_H
#define PMTRACK_TOOLS_RDRUN_H

#include <stdbool.h>
#include <stdint.h>

struct rd_args {
	const char *dir;
	uint64_t pid, dumps, interval_ms;
	bool leave_stopped, children, no_digest, json, quiet;
	int level;
};

/* Dump process @a->pid into @a->dir: an exit code (cli.h). */
int rd_run(const struct rd_args *a);

#endif /* PMTRACK_TOOLS_RDRUN_H */

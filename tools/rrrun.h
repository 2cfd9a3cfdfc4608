/* SPDX-License-Identifier: MIT */
/* pmtrack restore of a `dump --pid` chain (rrrun.c): replay and report. */
#ifndef PMTRACK_TOOLS_RRRUN_H
#define PMTRACK_TOOLS_RRRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rrestore.h"

struct rr_args {
	const char *dir, *out_dir; /* out_dir: NULL = verify only */
	uint64_t upto;		   /* UINT32_MAX: the newest */
	bool json, allow_unverified, quiet;
};

/* Replay the chain in @a->dir: an exit code (cli.h). */
int rr_run(const struct rr_args *a);
/* the files of regions @r[@n] (start, len, mem) in @out_dir, created if
   missing: CLI_OK, or CLI_ERROR after a message */
int rr_write_files(const char *out_dir, uint64_t pgsz,
		   const struct rr_region *r, size_t n);

#endif /* PMTRACK_TOOLS_RRRUN_H */

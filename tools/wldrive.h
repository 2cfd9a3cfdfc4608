/* SPDX-License-Identifier: MIT */
/* The synthetic workload that pmtrack send and dump drive (wldrive.c). */
#ifndef PMTRACK_TOOLS_WLDRIVE_H
#define PMTRACK_TOOLS_WLDRIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <pmtrack/migrate.h>

#include "args.h"
#include "workload.h"

/* workload defaults shared by send and dump */
#define DEF_SIZE ((uint64_t)256 << 20)
#define DEF_WRITERS 2
#define DEF_RATE 10000
/* the workload's region in the stream */
#define WL_REGION_ID 1
#define WL_REGION_NAME "guest-ram"

struct wl_args {
	uint64_t size, rate;
	uint64_t writers;
	int level;
};

/* the workload options' lines of a usage text */
extern const char wl_usage_text[];
/* A workload option, or false if @id is none (false with *bad on error). */
bool wl_opt(struct parser *p, int id, struct wl_args *w, bool *bad);
/* Start the workload and say so on @info; -1 after a message. */
int wl_begin(const char *cmd, const struct wl_args *a, FILE *info,
	     struct wl **out);
/* the workload's memory as the stream's one region */
struct pmtrack_mem_region wl_region(struct wl *w);

#endif /* PMTRACK_TOOLS_WLDRIVE_H */

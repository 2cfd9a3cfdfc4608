/* SPDX-License-Identifier: MIT */
/* The synthetic workload that pmtrack send and dump drive (wldrive.c). */
#ifndef PMTRACK_TOOLS_WLDRIVE_H
#define PMTRACK_TOOLS_WLDRIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <pmtrack/migrate.h>

#include "cmdline.h"
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
/* the workload options' ids; a command's own follow WL_OPT_END */
enum {
	WL_OPT_SIZE = ARG_OPT,
	WL_OPT_WRITERS,
	WL_OPT_RATE,
	WL_OPT_LEVEL,
	WL_OPT_END,
};

/* the workload options' entries of an option table */
#define WL_OPTIONS                                                             \
	{ "size", required_argument, NULL, WL_OPT_SIZE },                      \
	{ "writers", required_argument, NULL, WL_OPT_WRITERS },                \
	{ "rate", required_argument, NULL, WL_OPT_RATE },                      \
	{ "level", required_argument, NULL, WL_OPT_LEVEL }

/* p->val for workload option @id (< WL_OPT_END); false after a usage
   message */
bool wl_opt(struct cmdline *p, int id, struct wl_args *w);
/* Start the workload and say so on @info (if not NULL); -1 after a
   message. */
int wl_begin(const char *cmd, const struct wl_args *a, FILE *info,
	     struct wl **out);
/* the workload's memory as the stream's one region */
struct pmtrack_mem_region wl_region(struct wl *w);

#endif /* PMTRACK_TOOLS_WLDRIVE_H */

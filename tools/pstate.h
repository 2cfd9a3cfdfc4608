/* SPDX-License-Identifier: MIT */
/* The page states' names, in the order of their bits (probe, stat). */
#ifndef PMTRACK_TOOLS_PSTATE_H
#define PMTRACK_TOOLS_PSTATE_H

#include <pmtrack/pagestate.h>

static const char *const state_names[PMTRACK_PAGE_NSTATES] = {
	"present", "swapped", "file",	"zero",	 "exclusive",
	"huge",	   "written", "unsure", "guard",
};

#endif /* PMTRACK_TOOLS_PSTATE_H */

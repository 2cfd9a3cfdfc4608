/* SPDX-License-Identifier: MIT */
/* The pmtrack subcommands' command-line parser (args.c). */
#ifndef PMTRACK_TOOLS_ARGS_H
#define PMTRACK_TOOLS_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* zstd's levels (ZSTD_minCLevel() is -ZSTD_TARGETLENGTH_MAX) */
#define LEVEL_MIN (-131072)
#define LEVEL_MAX 22

enum {
	OPT_BAD = -2, /* reported; exit CLI_USAGE */
	OPT_END = -1,
	OPT_ARG = 0, /* a positional argument, in p->val */
	OPT_HELP = 1,
	/* each command's options from here on */
	OPT_JSON,
	OPT_LISTEN,
	OPT_IMAGE,
	OPT_PORT_FILE,
	OPT_ALLOW_UNVERIFIED,
	OPT_TO,
	OPT_OUT,
	OPT_SIZE,
	OPT_WRITERS,
	OPT_RATE,
	OPT_DOWNTIME,
	OPT_MAX_ROUNDS,
	OPT_MAX_BANDWIDTH,
	OPT_LEVEL,
	OPT_QUIET,
	OPT_DUMPS,
	OPT_INTERVAL,
	OPT_UPTO,
	OPT_TIMEOUT,
	OPT_MAX_MEMORY,
};

struct opt {
	const char *name; /* without "--" */
	int id;
	bool has_val;
};

struct parser {
	const char *cmd;
	void (*usage)(FILE *f);
	int argc, i;
	char **argv;
	bool no_opts;	 /* after "--" */
	const char *opt; /* the option's name */
	const char *val; /* its value, or the positional argument */
};

/* a message and the usage on stderr; OPT_BAD */
__attribute__((format(printf, 2, 3))) int bad_usage(struct parser *p,
						    const char *fmt, ...);
/*
 * The next argument: an option's id (its value, from "--opt VALUE" or
 * "--opt=VALUE", in p->val), OPT_ARG, OPT_HELP, OPT_END, or OPT_BAD after
 * a message and the usage on stderr.
 */
int next_opt(struct parser *p, const struct opt *tab);
/* p->val as a number in [min, max] (@suffix: K, M, G allowed); false after
   a usage message */
bool opt_u64(struct parser *p, bool suffix, uint64_t min, uint64_t max,
	     uint64_t *out);
/* p->val as a zstd level; false after a usage message */
bool opt_level(struct parser *p, int *out);
/* --json and --help, plus exactly @npos positional arguments (probe, stat):
   CLI_OK or CLI_USAGE to exit with, or -1 to go on */
int parse_json_args(const char *cmd, int argc, char **argv, bool *json,
		    char **pos, int npos, void (*usage)(FILE *));

#endif /* PMTRACK_TOOLS_ARGS_H */

/* SPDX-License-Identifier: MIT */
/*
 * The pmtrack subcommands' command lines (cmdline.c), over getopt_long():
 * long options only, by their whole names ("--opt VALUE" or
 * "--opt=VALUE"), -h and --help, positional arguments in their order
 * among the options, and "--" before positional arguments that start
 * with '-'.
 */
#ifndef PMTRACK_TOOLS_CMDLINE_H
#define PMTRACK_TOOLS_CMDLINE_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum {
	ARG_POS = 1,	 /* a positional argument, in p->val */
	ARG_HELP = 'h',	 /* -h, --help */
	ARG_OPT = 0x100, /* the commands' own options' ids from here on */
};

/* every command's --help, in its option table */
#define ARG_HELP_OPTION { "help", no_argument, NULL, ARG_HELP }
#define ARG_OPTIONS_END { NULL, 0, NULL, 0 }

struct cmdline;

/* a command's command line */
struct cmdline_spec {
	const char *cmd;
	void (*usage)(FILE *f);
	/* the options, ending with ARG_OPTIONS_END; each id >= ARG_OPT */
	const struct option *opts;
	/* Take an option (its id) or a positional argument (ARG_POS), with its
	   name and value in p->opt and p->val: false after bad_usage(). */
	bool (*take)(struct cmdline *p, int id, void *arg);
	/* Once all are taken (if not NULL): false after a usage message. */
	bool (*done)(struct cmdline *p, void *arg);
};

/* the command line being gone through */
struct cmdline {
	const struct cmdline_spec *spec;
	int argc;
	char **argv;
	const char *opt; /* the option's name */
	const char *val; /* its value, or the positional argument */
	bool rest;	 /* after "--" */
};

/*
 * Go through the command line: each option and each positional argument
 * to spec->take(), in order, then spec->done().  -h or --help prints the
 * usage on stdout.  Returns CLI_OK (help) or CLI_USAGE to exit with, or -1
 * once every argument is taken.
 */
int parse_args(const struct cmdline_spec *spec, int argc, char **argv,
	       void *arg);
/* "pmtrack CMD: message" and the hint "try 'pmtrack help CMD'" on stderr;
   false */
__attribute__((format(printf, 2, 3))) bool bad_usage(struct cmdline *p,
						     const char *fmt, ...);
/* the one positional argument, into *@slot: false after "more than one
   @what" */
bool take_one(struct cmdline *p, const char **slot, const char *what);
/* p->val as a number in [min, max] (@suffix: a SIZE, K..T and KiB..TiB
   allowed, and the range said in IEC units); false after "bad value for
   --OPT: 'VAL' (want ...)" */
bool opt_u64(struct cmdline *p, bool suffix, uint64_t min, uint64_t max,
	     uint64_t *out);
/* p->val as a zstd level; false after a usage message */
bool opt_level(struct cmdline *p, int *out);

/* --json and --help, plus exactly @npos positional arguments (probe, stat):
   CLI_OK or CLI_USAGE to exit with, or -1 to go on */
int parse_json_args(const char *cmd, int argc, char **argv, bool *json,
		    const char **pos, int npos, void (*usage)(FILE *));

#endif /* PMTRACK_TOOLS_CMDLINE_H */

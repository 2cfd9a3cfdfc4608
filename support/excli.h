/* SPDX-License-Identifier: MIT */
/*
 * The command line of the examples, as docs/cli.md has it: long options by
 * their whole names (--opt VALUE or --opt=VALUE; getopt_long()'s
 * abbreviations are refused), -h and --help print the help on stdout and
 * exit 0, --version prints "PROGRAM (libpmtrack X.Y.Z)" and exits 0, and a
 * bad command line is "PROGRAM: message" on stderr and exit status 2.  No
 * operands: "--" ends the options, and anything after it is refused too.
 * Not part of the library's API.
 */
#ifndef PMTRACK_SUPPORT_EXCLI_H
#define PMTRACK_SUPPORT_EXCLI_H

#include <getopt.h>
#include <stdio.h>

/* the values pmt_cli_next() handles itself; give them to "help" and
   "version" in the option table */
#define PMT_CLI_HELP 'h'
#define PMT_CLI_VERSION 0x100

struct pmt_cli {
	const char *prog;
	const struct option *opts; /* ends with a zeroed entry */
	void (*help)(FILE *f);	   /* the whole --help text */
};

/*
 * The next option, as getopt_long() returns it (optarg set), or -1 after
 * the last one.  Never returns for --help, --version or a bad option.
 */
int pmt_cli_next(const struct pmt_cli *c, int argc, char **argv);

/* After the last option: an operand left over is a bad command line. */
void pmt_cli_end(const struct pmt_cli *c, int argc, char **argv);

/* "PROGRAM: message" on stderr, a hint at --help, exit 2. */
__attribute__((noreturn, format(printf, 2, 3))) void
pmt_cli_bad(const struct pmt_cli *c, const char *fmt, ...);

#endif /* PMTRACK_SUPPORT_EXCLI_H */

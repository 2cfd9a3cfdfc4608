// SPDX-License-Identifier: MIT
/* The command line of the examples; see excli.h. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <pmtrack/pmtrack.h>

#include "excli.h"

void pmt_cli_bad(const struct pmt_cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", c->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun '%s --help' for the options.\n", c->prog);
	exit(2);
}

/* @arg (an argv element) names @o whole: "--name" or "--name=..." */
static int whole_name(const char *arg, const struct option *o)
{
	size_t n = strlen(o->name);

	return !strncmp(arg, "--", 2) && !strncmp(arg + 2, o->name, n) &&
	       (!arg[2 + n] || arg[2 + n] == '=');
}

int pmt_cli_next(const struct pmt_cli *c, int argc, char **argv)
{
	int at = optind, idx = -1, opt;

	/* '+': stop at the first operand, so that argv[at] is the option
	   getopt_long() read; ':': say so when a value is missing */
	opterr = 0;
	opt = getopt_long(argc, argv, "+:h", c->opts, &idx);
	if (opt == -1)
		return -1;
	if (opt == ':')
		pmt_cli_bad(c, "option '%s' needs a value", argv[at]);
	if (opt == '?') {
		if (at < argc && !strncmp(argv[at], "--", 2) &&
		    strchr(argv[at], '='))
			pmt_cli_bad(c, "bad option '%s' (unknown, or it "
				       "takes no value)", argv[at]);
		pmt_cli_bad(c, "unknown option '%s'",
			    at < argc ? argv[at] : "?");
	}
	if (idx >= 0 && !whole_name(argv[at], &c->opts[idx]))
		pmt_cli_bad(c, "unknown option '%s' (did you mean '--%s'?)",
			    argv[at], c->opts[idx].name);
	if (opt == PMT_CLI_HELP) {
		c->help(stdout);
		exit(0);
	}
	if (opt == PMT_CLI_VERSION) {
		printf("%s (libpmtrack %s)\n", c->prog, pmtrack_version());
		exit(0);
	}
	return opt;
}

void pmt_cli_end(const struct pmt_cli *c, int argc, char **argv)
{
	if (optind < argc)
		pmt_cli_bad(c, "unexpected argument '%s'", argv[optind]);
}

// SPDX-License-Identifier: MIT
/*
 * Command lines of the pmtrack subcommands: "--opt VALUE" and "--opt=VALUE",
 * positional arguments, "--" and numbers with their ranges.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "workload.h"

int bad_usage(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pmtrack %s: ", p->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	p->usage(stderr);
	return OPT_BAD;
}

/*
 * The next argument: an option's id (its value, from "--opt VALUE" or
 * "--opt=VALUE", in p->val), OPT_ARG, OPT_HELP, OPT_END, or OPT_BAD after
 * a message and the usage on stderr.
 */
int next_opt(struct parser *p, const struct opt *tab)
{
	const char *a, *eq;
	size_t len;

	for (;;) {
		if (p->i >= p->argc)
			return OPT_END;
		a = p->argv[p->i++];
		if (p->no_opts || a[0] != '-' || !a[1]) {
			p->val = a;
			return OPT_ARG;
		}
		if (strcmp(a, "--"))
			break;
		p->no_opts = true;
	}
	if (!strcmp(a, "-h") || !strcmp(a, "--help"))
		return OPT_HELP;
	if (a[1] != '-')
		return bad_usage(p, "unknown option '%s'", a);
	a += 2;
	eq = strchr(a, '=');
	len = eq ? (size_t)(eq - a) : strlen(a);
	for (; tab->name; tab++) {
		if (strlen(tab->name) != len || strncmp(tab->name, a, len))
			continue;
		p->opt = tab->name;
		if (!tab->has_val) {
			if (eq)
				return bad_usage(p, "--%s takes no value",
						 tab->name);
			return tab->id;
		}
		if (eq)
			p->val = eq + 1;
		else if (p->i < p->argc)
			p->val = p->argv[p->i++];
		else
			return bad_usage(p, "--%s needs a value", tab->name);
		return tab->id;
	}
	return bad_usage(p, "unknown option '--%s'", a);
}

/* @s: decimal digits, then (if @suffix) K, M or G for 2^10, 2^20, 2^30. */
static bool parse_u64(const char *s, bool suffix, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (suffix)
		return !wl_parse_size(s, out);
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = (uint64_t)v;
	return true;
}

/* p->val as a number in [min, max]; false after a usage message. */
bool opt_u64(struct parser *p, bool suffix, uint64_t min, uint64_t max,
	     uint64_t *out)
{
	if (!parse_u64(p->val, suffix, out)) {
		bad_usage(p, "invalid --%s '%s': want a number%s", p->opt,
			  p->val, suffix ? " (K, M, G suffixes allowed)" : "");
		return false;
	}
	if (*out < min || *out > max) {
		bad_usage(p,
			  "--%s %s is out of range (%" PRIu64 "..%" PRIu64 ")",
			  p->opt, p->val, min, max);
		return false;
	}
	return true;
}

/* p->val as a zstd level. */
bool opt_level(struct parser *p, int *out)
{
	const char *s = p->val + (p->val[0] == '-');
	uint64_t v;

	if (!parse_u64(s, false, &v) ||
	    v > (p->val[0] == '-' ? (uint64_t)-LEVEL_MIN : LEVEL_MAX)) {
		bad_usage(p,
			  "invalid --level '%s': want a zstd level, %d..%d "
			  "(0 = no compression)",
			  p->val, LEVEL_MIN, LEVEL_MAX);
		return false;
	}
	*out = p->val[0] == '-' ? -(int)v : (int)v;
	return true;
}

/* --json and --help, plus exactly @npos positional arguments (probe, stat):
   CLI_OK or CLI_USAGE to exit with, or -1 to go on */
int parse_json_args(const char *cmd, int argc, char **argv, bool *json,
		    char **pos, int npos, void (*usage)(FILE *))
{
	int got = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			*json = true;
		} else if (!strcmp(argv[i], "--help") ||
			   !strcmp(argv[i], "-h")) {
			usage(stdout);
			return CLI_OK;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "pmtrack %s: unknown option %s\n", cmd,
				argv[i]);
			usage(stderr);
			return CLI_USAGE;
		} else if (got == npos) {
			fprintf(stderr, "pmtrack %s: unexpected argument %s\n",
				cmd, argv[i]);
			usage(stderr);
			return CLI_USAGE;
		} else {
			pos[got++] = argv[i];
		}
	}
	if (got < npos) {
		fprintf(stderr, "pmtrack %s: missing argument\n", cmd);
		usage(stderr);
		return CLI_USAGE;
	}
	return -1;
}

// SPDX-License-Identifier: MIT
/*
 * Command lines of the pmtrack subcommands, over getopt_long() (cmdline.h):
 * options and positional arguments in order, options only by their whole
 * names, and numbers with their ranges.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h" /* support/: the number parsers */
#include "cmdline.h"
#include "cli.h"

bool bad_usage(struct cmdline *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_verr(p->spec->cmd, fmt, ap);
	va_end(ap);
	cli_hint(p->spec->cmd);
	return false;
}

bool take_one(struct cmdline *p, const char **slot, const char *what)
{
	if (*slot)
		return bad_usage(p, "more than one %s", what);
	*slot = p->val;
	return true;
}

static bool unknown_option(struct cmdline *p, const char *arg)
{
	return bad_usage(p, "unknown option '%s'", arg);
}

static const char *opt_name(const struct cmdline *p, int id)
{
	for (const struct option *o = p->spec->opts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

/* Is @arg ("--NAME" or "--NAME=VALUE") option @name, not an abbreviation? */
static bool whole_name(const char *arg, const char *name)
{
	return strcspn(arg + 2, "=") == strlen(name);
}

/*
 * What getopt_long() said was wrong with the option before optind: a
 * long option not known (or an abbreviation of more than one), given a
 * value it does not take or not given the one it needs, or a short option
 * not known.
 */
static bool bad_option(struct cmdline *p, int c)
{
	const char *arg = p->argv[optind - 1];
	char s[3] = { '-', (char)optopt, 0 };

	if (c == '?' && optopt && optopt < ARG_OPT && optopt != ARG_HELP)
		return unknown_option(p, s);
	if (!optopt || !whole_name(arg, opt_name(p, optopt)))
		return unknown_option(p, arg);
	if (c == ':')
		return bad_usage(p, "--%s needs a value", opt_name(p, optopt));
	return bad_usage(p, "--%s takes no value", opt_name(p, optopt));
}

/*
 * The next argument: an option's id, ARG_POS, -1 at the end, or 0 after a
 * message.  In getopt_long()'s "-" mode the positional arguments come in
 * order, and those after "--" once it has returned -1.
 */
static int next_arg(struct cmdline *p)
{
	int idx = -1, c;
	const char *arg;

	if (p->rest) {
		if (optind >= p->argc)
			return -1;
		p->val = p->argv[optind++];
		return ARG_POS;
	}
	c = getopt_long(p->argc, p->argv, "-:h", p->spec->opts, &idx);
	if (c == -1) {
		p->rest = true;
		return next_arg(p);
	}
	if (c == '?' || c == ':')
		return bad_option(p, c);
	p->val = optarg;
	if (idx < 0)
		return c; /* ARG_POS, or -h */
	/* "--NAME VALUE": the value is the argument before optind */
	arg = p->argv[optind - 1 - (optarg && optarg == p->argv[optind - 1])];
	if (!whole_name(arg, p->spec->opts[idx].name))
		return unknown_option(p, arg);
	p->opt = p->spec->opts[idx].name;
	return c;
}

int parse_args(const struct cmdline_spec *spec, int argc, char **argv,
	       void *arg)
{
	struct cmdline p = { .spec = spec, .argc = argc, .argv = argv };
	int id;

	optind = 0; /* glibc: start afresh */
	opterr = 0;
	while ((id = next_arg(&p)) != -1) {
		if (!id)
			return CLI_USAGE;
		if (id == ARG_HELP) {
			spec->usage(stdout);
			return CLI_OK;
		}
		if (!spec->take(&p, id, arg))
			return CLI_USAGE;
	}
	if (spec->done && !spec->done(&p, arg))
		return CLI_USAGE;
	return -1;
}

/* @s: decimal digits, then (if @suffix) K, M, G or T, alone or as KiB,
   MiB, GiB, TiB: 2^10, 2^20, 2^30, 2^40. */
static bool parse_u64(const char *s, bool suffix, uint64_t *out)
{
	return !pmt_parse_u64(s, suffix ? PMT_NUM_SUFFIX : 0, 0, UINT64_MAX,
			      out);
}

/* a bound of a range: a SIZE in IEC units, else a number */
static const char *bound(char buf[CLI_IEC_LEN], bool size, uint64_t v)
{
	if (size)
		return iec(buf, v);
	snprintf(buf, CLI_IEC_LEN, "%" PRIu64, v);
	return buf;
}

/* p->val as a number in [min, max]; false after a usage message. */
bool opt_u64(struct cmdline *p, bool suffix, uint64_t min, uint64_t max,
	     uint64_t *out)
{
	const char *what = suffix ? "a size" : "a whole number";
	char lo[CLI_IEC_LEN], hi[CLI_IEC_LEN];

	if (!parse_u64(p->val, suffix, out))
		return bad_usage(p, "bad value for --%s: '%s' (want %s%s)",
				 p->opt, p->val, what,
				 suffix ? ": digits, then optionally K, M, G, "
					  "T, KiB, MiB, GiB or TiB"
					: "");
	if (*out >= min && *out <= max)
		return true;
	if (max == UINT64_MAX)
		return bad_usage(p,
				 "bad value for --%s: '%s' (want %s of at "
				 "least %s)",
				 p->opt, p->val, what, bound(lo, suffix, min));
	return bad_usage(p, "bad value for --%s: '%s' (want %s from %s to %s)",
			 p->opt, p->val, what, bound(lo, suffix, min),
			 bound(hi, suffix, max));
}

/* p->val as a zstd level. */
bool opt_level(struct cmdline *p, int *out)
{
	if (pmt_parse_int(p->val, PMT_LEVEL_MIN, PMT_LEVEL_MAX, out)) {
		bad_usage(p,
			  "bad value for --level: '%s' (want a zstd level, "
			  "%d to %d; 0 = no compression)",
			  p->val, PMT_LEVEL_MIN, PMT_LEVEL_MAX);
		return false;
	}
	return true;
}

struct json_args {
	bool *json;
	const char **pos;
	int npos, got;
};

static bool json_arg(struct cmdline *p, int id, void *arg)
{
	struct json_args *a = arg;

	if (id != ARG_POS) {
		*a->json = true;
		return true;
	}
	if (a->got == a->npos)
		return bad_usage(p, "unexpected argument '%s'", p->val);
	a->pos[a->got++] = p->val;
	return true;
}

static bool json_done(struct cmdline *p, void *arg)
{
	struct json_args *a = arg;

	return a->got == a->npos || bad_usage(p, "missing argument");
}

int parse_json_args(const char *cmd, int argc, char **argv, bool *json,
		    const char **pos, int npos, void (*usage)(FILE *))
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, ARG_OPT },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	const struct cmdline_spec spec = { .cmd = cmd,
					   .usage = usage,
					   .opts = opts,
					   .take = json_arg,
					   .done = json_done };
	struct json_args a = { .json = json, .pos = pos, .npos = npos };

	return parse_args(&spec, argc, argv, &a);
}

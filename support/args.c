// SPDX-License-Identifier: MIT
/* Option values for the examples and the benchmarks; see args.h. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

/*
 * The IEC suffix at @s: K, M, G or T alone or followed by "iB", for 2^10,
 * 2^20, 2^30, 2^40.  Its shift, with *@len its length; 0 if none is there.
 */
static unsigned int suffix_shift(const char *s, size_t *len)
{
	static const char units[] = "KMGT";
	const char *u = *s ? strchr(units, *s) : NULL;

	if (!u)
		return 0;
	*len = strncmp(s + 1, "iB", 2) ? 1 : 3;
	return 10 * (unsigned int)(u - units + 1);
}

int pmt_parse_u64(const char *s, unsigned int flags, uint64_t min,
		  uint64_t max, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	size_t len = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, flags & PMT_NUM_BASE0 ? 0 : 10);
	if (errno)
		return -1;
	if (flags & PMT_NUM_SUFFIX)
		shift = suffix_shift(end, &len);
	end += len;
	if (*end || v > (UINT64_MAX >> shift))
		return -1;
	v <<= shift;
	if (v < min || v > max)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

const char *pmt_fmt_iec(char *buf, size_t size, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB",
					     "PiB", "EiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	while (v >= 1023.5 && u < 5) {
		v /= 1024.0;
		u++;
	}
	/* three significant digits, trailing zeros dropped: 1.5 GiB */
	snprintf(buf, size, "%.*f", v >= 100.0 ? 0 : v >= 10.0 ? 1 : 2, v);
	if (strchr(buf, '.')) {
		char *e = buf + strlen(buf) - 1;

		while (*e == '0')
			*e-- = 0;
		if (*e == '.')
			*e = 0;
	}
	snprintf(buf + strlen(buf), size - strlen(buf), " %s", units[u]);
	return buf;
}

const char *pmt_iec(uint64_t bytes)
{
	static char buf[4][PMT_IEC_LEN];
	static unsigned int next;

	return pmt_fmt_iec(buf[next++ % 4], PMT_IEC_LEN, bytes);
}

int pmt_parse_int(const char *s, int min, int max, int *out)
{
	int neg = *s == '-';
	uint64_t v;
	long long x;

	if (pmt_parse_u64(s + neg, 0, 0, (uint64_t)INT_MAX + 1, &v))
		return -1;
	x = neg ? -(long long)v : (long long)v;
	if (x < min || x > max)
		return -1;
	*out = (int)x;
	return 0;
}

int pmt_parse_list(const char *s, int max,
		   int (*item)(void *arg, int i, const char *text), void *arg)
{
	char *copy = strdup(s), *p = copy, *comma;
	int n = 0, ret = 0;

	if (!copy)
		return -1;
	do {
		comma = strchr(p, ',');
		if (comma)
			*comma = 0;
		if (n == max || !*p || item(arg, n, p)) {
			ret = -1;
			break;
		}
		n++;
		if (comma)
			p = comma + 1;
	} while (comma);
	free(copy);
	return ret ? ret : n;
}

__attribute__((noreturn)) static void
vbad_value(const char *prog, const char *opt, const char *s, const char *want,
	   va_list ap)
{
	fprintf(stderr, "%s: bad value for %s: '%s' (want ", prog, opt, s);
	vfprintf(stderr, want, ap);
	fprintf(stderr, ")\n");
	exit(2);
}

void pmt_bad_value(const char *prog, const char *opt, const char *s,
		   const char *want, ...)
{
	va_list ap;

	va_start(ap, want);
	vbad_value(prog, opt, s, want, ap);
}

void pmt_usage_exit(int opt, void (*usage)(FILE *))
{
	usage(opt == 'h' ? stdout : stderr);
	exit(opt == 'h' ? 0 : 2);
}

void pmt_no_operands(int argc, void (*usage)(FILE *))
{
	if (optind < argc)
		pmt_usage_exit('?', usage);
}

int pmt_arg_list(const char *prog, const char *opt, const char *s, int max,
		 int (*item)(void *arg, int i, const char *text), void *arg,
		 const char *want, ...)
{
	int n = pmt_parse_list(s, max, item, arg);
	va_list ap;

	if (n >= 0)
		return n;
	va_start(ap, want);
	vbad_value(prog, opt, s, want, ap);
}

uint64_t pmt_arg_u64(const char *prog, const char *opt, const char *s,
		     unsigned int flags, uint64_t min, uint64_t max)
{
	const char *sfx = flags & PMT_NUM_SUFFIX ?
				  ", optionally followed by K, M, G or T "
				  "(KiB, MiB, GiB, TiB)" : "";
	uint64_t v;

	if (!pmt_parse_u64(s, flags, min, max, &v))
		return v;
	if (max == UINT64_MAX && !min)
		pmt_bad_value(prog, opt, s, "a whole number%s", sfx);
	if (max == UINT64_MAX)
		pmt_bad_value(prog, opt, s, "a whole number of at least %llu%s",
			      (unsigned long long)min, sfx);
	pmt_bad_value(prog, opt, s, "a whole number from %llu to %llu%s",
		      (unsigned long long)min, (unsigned long long)max, sfx);
}

int pmt_arg_int(const char *prog, const char *opt, const char *s, int min,
		int max)
{
	int v;

	if (!pmt_parse_int(s, min, max, &v))
		return v;
	pmt_bad_value(prog, opt, s, "a whole number from %d to %d", min, max);
}

double pmt_arg_double(const char *prog, const char *opt, const char *s,
		      double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (((*s >= '0' && *s <= '9') || *s == '.') && !*end && !errno &&
	    v > lo && v < hi)
		return v;
	pmt_bad_value(prog, opt, s, "a number above %g and below %g", lo, hi);
}

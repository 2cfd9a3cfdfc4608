/* SPDX-License-Identifier: MIT */
/*
 * Option values for the examples and the benchmarks: numbers read whole (a
 * leading digit, no trailing characters, no overflow) and checked against a
 * range, comma-separated lists, and one message for a bad value.  Not part
 * of the library's API.
 */
#ifndef PMTRACK_SUPPORT_ARGS_H
#define PMTRACK_SUPPORT_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* how pmt_parse_u64() reads a number */
enum pmt_num_flags {
	/* K, M, G or T after the digits, alone or as KiB, MiB, GiB, TiB:
	   times 2^10, 2^20, 2^30, 2^40 (upper case only: "64k" and "64KB"
	   are refused) */
	PMT_NUM_SUFFIX = 1 << 0,
	/* strtoul's base 0: 0x... hexadecimal, 0... octal */
	PMT_NUM_BASE0 = 1 << 1,
};

/* zstd's compression levels (ZSTD_minCLevel() .. ZSTD_maxCLevel()) */
#define PMT_LEVEL_MIN (-131072)
#define PMT_LEVEL_MAX 22

/*
 * @s as an unsigned number in [@min, @max]: digits (decimal unless
 * PMT_NUM_BASE0), then a suffix if PMT_NUM_SUFFIX, nothing else.  0, or -1
 * for anything else (overflow included).
 */
int pmt_parse_u64(const char *s, unsigned int flags, uint64_t min,
		  uint64_t max, uint64_t *out);

/* PMT_IEC_LEN bytes hold any pmt_fmt_iec() text */
#define PMT_IEC_LEN 16

/*
 * @bytes in IEC units with three significant digits, trailing zeros
 * dropped ("812 B", "64 KiB", "1.5 GiB", "256 MiB") into @buf; returns @buf.
 */
const char *pmt_fmt_iec(char *buf, size_t size, uint64_t bytes);

/*
 * pmt_fmt_iec() into one of four static buffers that take turns, so that
 * up to four can be printed by one printf().  Not thread-safe: for the
 * thread that prints.
 */
const char *pmt_iec(uint64_t bytes);

/* @s as a decimal int in [@min, @max], '-' allowed before the digits. */
int pmt_parse_int(const char *s, int min, int max, int *out);

/*
 * Split @s at commas and hand each item, NUL-terminated, to @item with its
 * index.  Returns how many items there were, or -1 if there are more than
 * @max, one is empty, or @item returned non-zero for one.
 */
int pmt_parse_list(const char *s, int max,
		   int (*item)(void *arg, int i, const char *text), void *arg);

/*
 * "PROG: bad value for OPT: 'S' (want WANT)" on stderr, WANT from the
 * printf format @want, then exit(2).
 */
__attribute__((noreturn, format(printf, 4, 5))) void
pmt_bad_value(const char *prog, const char *opt, const char *s,
	      const char *want, ...);

/*
 * The end of a getopt_long() switch: for @opt 'h' print the usage on
 * stdout and exit 0; for anything else (getopt_long() has said what was
 * wrong) print it on stderr and exit 2.
 */
__attribute__((noreturn)) void pmt_usage_exit(int opt, void (*usage)(FILE *));

/* After the getopt_long() loop: an argument left over is a usage error
 * (the usage on stderr, exit 2). */
void pmt_no_operands(int argc, void (*usage)(FILE *));

/* The value of option @opt of program @prog: as the pmt_parse_*() above,
 * or pmt_bad_value() saying what was wanted. */
uint64_t pmt_arg_u64(const char *prog, const char *opt, const char *s,
		     unsigned int flags, uint64_t min, uint64_t max);
int pmt_arg_int(const char *prog, const char *opt, const char *s, int min,
		int max);
/* pmt_parse_list(), or pmt_bad_value() with @want */
__attribute__((format(printf, 7, 8))) int
pmt_arg_list(const char *prog, const char *opt, const char *s, int max,
	     int (*item)(void *arg, int i, const char *text), void *arg,
	     const char *want, ...);
/* a decimal number (strtod) above @lo and below @hi */
double pmt_arg_double(const char *prog, const char *opt, const char *s,
		      double lo, double hi);

#endif /* PMTRACK_SUPPORT_ARGS_H */

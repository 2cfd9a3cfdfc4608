/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the benchmark programs. */
#ifndef PMTRACK_BENCH_UTIL_H
#define PMTRACK_BENCH_UTIL_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds */
uint64_t bench_now_ns(void);

/* median of v[0..n) (sorts v) */
double bench_median(double *v, int n);

/* a positive decimal option value up to 2^20, or exit(2) with a message
 * naming @prog and @opt */
unsigned long bench_parse_num(const char *prog, const char *s, const char *opt);

#endif

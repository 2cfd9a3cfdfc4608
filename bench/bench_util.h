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
 * naming @prog and @opt (pmt_arg_u64(), support/args.h) */
unsigned long bench_parse_num(const char *prog, const char *s, const char *opt);

/*
 * Around a baseline that reads memory writer threads are changing (raw
 * send() of live RAM): the race is the measurement's, so ThreadSanitizer
 * builds ignore it, as the library does for its own live reads.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define BENCH_LIVE_READ_BEGIN() __tsan_ignore_thread_begin()
#define BENCH_LIVE_READ_END() __tsan_ignore_thread_end()
#else
#define BENCH_LIVE_READ_BEGIN() ((void)0)
#define BENCH_LIVE_READ_END() ((void)0)
#endif

#endif

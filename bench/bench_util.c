// SPDX-License-Identifier: MIT
#include <stdlib.h>
#include <time.h>

#include "args.h"
#include "bench_util.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

unsigned long bench_parse_num(const char *prog, const char *s, const char *opt)
{
	return (unsigned long)pmt_arg_u64(prog, opt, s, 0, 1, 1ul << 20);
}

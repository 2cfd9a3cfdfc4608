/* SPDX-License-Identifier: MIT */
/*
 * The units docs/cli.md prints, beyond pmt_fmt_iec() (args.h): durations,
 * rates of bytes, and the per-round status line of a live migration (as
 * QEMU's "info migrate" has it) that pmtrack send and the migration
 * examples print alike.  Not part of the library's API.
 */
#ifndef PMTRACK_SUPPORT_STATUS_H
#define PMTRACK_SUPPORT_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include <pmtrack/migrate.h>

/* PMT_UNIT_LEN bytes hold any pmt_fmt_dur(), pmt_fmt_rate() or
   pmt_fmt_expected() text */
#define PMT_UNIT_LEN 24

/* @ns as "190.2 ms", or from 10 s on as "12.3 s", into @buf; returns @buf */
const char *pmt_fmt_dur(char *buf, size_t n, uint64_t ns);

/* bytes per second in IEC units, "812 MiB/s", into @buf; returns @buf */
const char *pmt_fmt_rate(char *buf, size_t n, uint64_t bytes_per_s);

/* an expected downtime: pmt_fmt_dur(), or "unknown" for
   PMTRACK_PRECOPY_UNKNOWN; returns @buf */
const char *pmt_fmt_expected(char *buf, size_t n, uint64_t ns);

/* PMT_STATUS_LEN bytes hold any pmt_status_line() text */
#define PMT_STATUS_LEN 512

/*
 * The status line of round @r, without a newline, into @buf (cut to @n
 * bytes):
 *   round 0: 65536 pages (16194 zero), 193 MiB in 964.0 ms; remaining
 *   16804 pages (65.7 MiB); transferred 193 MiB; dirty rate 17410
 *   pages/s; bandwidth 200 MiB/s; expected downtime 328.3 ms; total
 *   965.5 ms
 * (one line).  The final round is "round N (stop-and-copy): ..." with
 * "expected downtime -"; a bandwidth or expected downtime not known yet
 * is "unknown".
 */
void pmt_status_line(char *buf, size_t n, const struct pmtrack_precopy_round *r);

#endif /* PMTRACK_SUPPORT_STATUS_H */

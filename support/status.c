// SPDX-License-Identifier: MIT
/* Durations, rates and the migration status line; see status.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "status.h"

const char *pmt_fmt_dur(char *buf, size_t n, uint64_t ns)
{
	if (ns >= 10000000000u)
		snprintf(buf, n, "%.1f s", (double)ns / 1e9);
	else
		snprintf(buf, n, "%.1f ms", (double)ns / 1e6);
	return buf;
}

const char *pmt_fmt_rate(char *buf, size_t n, uint64_t bytes_per_s)
{
	size_t len;

	if (n < 3) {
		if (n)
			buf[0] = 0;
		return buf;
	}
	pmt_fmt_iec(buf, n - 2, bytes_per_s);
	len = strlen(buf);
	snprintf(buf + len, n - len, "/s");
	return buf;
}

const char *pmt_fmt_expected(char *buf, size_t n, uint64_t ns)
{
	if (ns == PMTRACK_PRECOPY_UNKNOWN) {
		snprintf(buf, n, "unknown");
		return buf;
	}
	return pmt_fmt_dur(buf, n, ns);
}

void pmt_status_line(char *buf, size_t n, const struct pmtrack_precopy_round *r)
{
	char b[PMT_UNIT_LEN], rb[PMT_UNIT_LEN], t[PMT_UNIT_LEN],
		bw[PMT_UNIT_LEN], d[PMT_UNIT_LEN], e[PMT_UNIT_LEN],
		tt[PMT_UNIT_LEN];

	snprintf(buf, n,
		 "round %" PRIu64 "%s: %" PRIu64 " pages (%" PRIu64
		 " zero), %s in %s; remaining %" PRIu64 " pages (%s); "
		 "transferred %s; dirty rate %" PRIu64 " pages/s; "
		 "bandwidth %s; expected downtime %s; total %s",
		 r->round, r->final ? " (stop-and-copy)" : "", r->pages,
		 r->zero_pages, pmt_fmt_iec(b, sizeof(b), r->bytes),
		 pmt_fmt_dur(d, sizeof(d), r->duration_ns), r->remaining_pages,
		 pmt_fmt_iec(rb, sizeof(rb), r->remaining_bytes),
		 pmt_fmt_iec(t, sizeof(t), r->total_bytes), r->dirty_rate,
		 r->bandwidth ? pmt_fmt_rate(bw, sizeof(bw), r->bandwidth)
			      : "unknown",
		 r->final ? "-"
			  : pmt_fmt_expected(e, sizeof(e),
					     r->expected_downtime_ns),
		 pmt_fmt_dur(tt, sizeof(tt), r->elapsed_ns));
}

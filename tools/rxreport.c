// SPDX-License-Identifier: MIT
/*
 * What pmtrack recv and restore say about a receiver: its result (the
 * digest line, the exit code, the error message) and its report, as text
 * or as JSON members.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "rxreport.h"

static const char *rx_state_name(enum pmtrack_rx_state s)
{
	switch (s) {
	case PMTRACK_RX_EMPTY:
		return "empty";
	case PMTRACK_RX_COMPLETE:
		return "complete";
	case PMTRACK_RX_PARTIAL:
		return "partial";
	}
	return "unknown";
}
void rx_result_get(struct pmtrack_rx *rx, int err, struct rx_result *res)
{
	memset(res, 0, sizeof(*res));
	res->err = err;
	res->st.sz = sizeof(res->st);
	pmtrack_rx_get_stats(rx, &res->st);
	res->msg = pmtrack_rx_error(rx, &res->reason);
	if (err && (!res->msg || !*res->msg))
		res->msg = strerror(-err);
	if (err && res->reason == PMTRACK_SERR_DIGEST)
		res->unverified = "MISMATCH";
	else if (err)
		res->unverified = "not verified (failed)";
	else if (res->st.state != PMTRACK_RX_COMPLETE)
		res->unverified = "not verified (nothing applied)";
	else if (!res->st.digest_verified)
		res->unverified = "not verified (no digest)";
}

/* Exit code for a result, with the message for an unverified one. */
int rx_result_exit(const char *cmd, const struct rx_result *res,
		   bool allow_unverified)
{
	if (res->err)
		return CLI_ERROR;
	if (res->unverified && !allow_unverified) {
		cli_err(cmd,
			"the memory is complete but its digest was not "
			"verified: the %s carried none (--allow-unverified "
			"accepts it)",
			strcmp(cmd, "restore") ? "stream" : "last image");
		return CLI_ERROR;
	}
	return CLI_OK;
}

void rx_error_print(const char *cmd, const char *what,
		    const struct rx_result *res)
{
	if (res->reason != PMTRACK_SERR_OK)
		cli_err(cmd, "%s: %s (%s)", what, res->msg,
			pmtrack_stream_error_name(res->reason));
	else
		cli_err(cmd, "%s: %s", what, res->msg);
}

static void print_regions_text(FILE *f, struct pmtrack_rx *rx)
{
	size_t n = pmtrack_rx_nregions(rx);
	/* the stream's pages, which need not be this machine's */
	size_t ps = pmtrack_rx_page_size(rx);
	struct pmtrack_rx_region r;

	fprintf(f, "regions: %zu\n", n);
	if (!n)
		return;
	fprintf(f, "page size: %zu\n", ps);
	fprintf(f, "  %5s %10s %18s %14s %10s  %s\n", "index", "id", "start",
		"length", "pages", "name");
	for (size_t i = 0; i < n && !pmtrack_rx_region(rx, i, &r); i++) {
		fprintf(f,
			"  %5zu %10" PRIu32 " 0x%016" PRIx64 " %14zu %10zu  ",
			i, r.id, r.start, r.len, r.len / ps);
		put_str(f, r.name, false);
		fputc('\n', f);
	}
}

void print_rx_text(FILE *f, struct pmtrack_rx *rx, const struct rx_result *res)
{
	const struct pmtrack_rx_stats *st = &res->st;

	if (st->streams) {
		fputs("stream: ", f);
		put_hex(f, st->stream_id, PMTRACK_STREAM_ID_LEN);
		fputc('\n', f);
	}
	print_regions_text(f, rx);
	fprintf(f, "rounds: %" PRIu64 "\n", st->rounds);
	fprintf(f, "pages: %" PRIu64 " (%" PRIu64 " zero)\n",
		st->pages + st->zero_pages, st->zero_pages);
	fprintf(f, "bytes: %" PRIu64 " (%.1f MB)\n", st->bytes, mb(st->bytes));
	fprintf(f, "time: %.3f s (%.1f MB/s)\n", (double)st->apply_ns / 1e9,
		mbps(st->bytes, st->apply_ns));
	fprintf(f, "state: %s\n",
		res->state[0] ? res->state : rx_state_name(st->state));
	fprintf(f, "digest: %s\n",
		res->unverified ? res->unverified : "verified");
	if (st->reply != PMTRACK_RX_REPLY_NONE)
		fprintf(f, "answer: %s\n",
			st->reply == PMTRACK_RX_REPLY_SENT
				? "sent to the sender"
				: "not delivered (the sender had closed)");
}

static const char *rx_reply_name(enum pmtrack_rx_reply r)
{
	return r == PMTRACK_RX_REPLY_SENT     ? "sent"
	       : r == PMTRACK_RX_REPLY_FAILED ? "failed"
					      : NULL;
}

/* The members every receiver report has, for a JSON object. */
void print_rx_json(FILE *f, struct pmtrack_rx *rx, const struct rx_result *res)
{
	const struct pmtrack_rx_stats *st = &res->st;
	size_t n = pmtrack_rx_nregions(rx);
	struct pmtrack_rx_region r;

	fprintf(f, "\"state\":\"%s\",\"stream_id\":", rx_state_name(st->state));
	if (st->streams) {
		fputc('"', f);
		put_hex(f, st->stream_id, PMTRACK_STREAM_ID_LEN);
		fputc('"', f);
	} else {
		fputs("null", f);
	}
	fprintf(f, ",\"page_size\":%" PRIu32 ",\"regions\":[",
		pmtrack_rx_page_size(rx));
	for (size_t i = 0; i < n && !pmtrack_rx_region(rx, i, &r); i++) {
		fprintf(f,
			"%s{\"index\":%zu,\"id\":%" PRIu32 ",\"start\":%" PRIu64
			",\"length\":%zu,\"pages\":%zu,\"name\":",
			i ? "," : "", i, r.id, r.start, r.len,
			r.len / pmtrack_rx_page_size(rx));
		put_str(f, r.name, true);
		fputc('}', f);
	}
	fprintf(f,
		"],\"streams\":%" PRIu32 ",\"rounds\":%" PRIu64
		",\"pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64
		",\"bytes\":%" PRIu64 ",\"seconds\":%.6f"
		",\"digest_verified\":%s,\"digest\":",
		st->streams, st->rounds, st->pages + st->zero_pages,
		st->zero_pages, st->bytes, (double)st->apply_ns / 1e9,
		res->unverified ? "false" : "true");
	put_str(f, res->unverified ? res->unverified : "verified", true);
	fputs(",\"answer\":", f);
	put_str(f, rx_reply_name(st->reply), true);
	fputs(",\"error\":", f);
	if (res->err) {
		fputs("{\"reason\":", f);
		if (res->reason != PMTRACK_SERR_OK)
			put_str(f, pmtrack_stream_error_name(res->reason),
				true);
		else
			fputs("null", f);
		fprintf(f, ",\"errno\":%d,\"message\":", -res->err);
		put_str(f, res->msg, true);
		fputc('}', f);
	} else {
		fputs("null", f);
	}
}

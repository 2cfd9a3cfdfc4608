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
#include "jsonw.h"
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
	res->status = "verified";
	if (err && res->reason == PMTRACK_SERR_DIGEST) {
		res->unverified = "MISMATCH";
		res->status = "mismatch";
	} else if (err) {
		res->unverified = "not verified (failed)";
		res->status = "failed";
	} else if (res->st.state != PMTRACK_RX_COMPLETE) {
		res->unverified = "not verified (nothing applied)";
		res->status = "incomplete";
	} else if (!res->st.digest_verified) {
		res->unverified = "not verified (no digest)";
		res->status = "none";
	}
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
	char len[CLI_IEC_LEN];

	fprintf(f, "page size: %s\n", iec(len, ps));
	fprintf(f, "  %5s %10s %18s %10s %10s  %s\n", "index", "id", "start",
		"length", "pages", "name");
	for (size_t i = 0; i < n && !pmtrack_rx_region(rx, i, &r); i++) {
		fprintf(f,
			"  %5zu %10" PRIu32 " 0x%016" PRIx64 " %10s %10zu  ",
			i, r.id, r.start, iec(len, r.len), r.len / ps);
		put_str(f, r.name);
		fputc('\n', f);
	}
}

void print_rx_text(FILE *f, struct pmtrack_rx *rx, const struct rx_result *res)
{
	const struct pmtrack_rx_stats *st = &res->st;
	char b[CLI_IEC_LEN], t[CLI_IEC_LEN], bw[CLI_IEC_LEN];

	if (st->streams) {
		fputs("stream: ", f);
		put_hex(f, st->stream_id, PMTRACK_STREAM_ID_LEN);
		fputc('\n', f);
	}
	print_regions_text(f, rx);
	fprintf(f, "rounds: %" PRIu64 "\n", st->rounds);
	fprintf(f, "pages: %" PRIu64 " (%" PRIu64 " zero)\n",
		st->pages + st->zero_pages, st->zero_pages);
	fprintf(f, "bytes: %" PRIu64 " (%s)\n", st->bytes, iec(b, st->bytes));
	fprintf(f, "time: %s (%s)\n", dur(t, st->apply_ns),
		iec_rate(bw, bytes_per_s(st->bytes, st->apply_ns)));
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

static struct json_object *rx_regions_json(struct pmtrack_rx *rx)
{
	struct json_object *regs = jw_arr(), *o;
	size_t n = pmtrack_rx_nregions(rx);
	size_t ps = pmtrack_rx_page_size(rx);
	struct pmtrack_rx_region r;

	for (size_t i = 0; i < n && !pmtrack_rx_region(rx, i, &r); i++) {
		o = jw_obj();
		jw_set(o, "index", jw_u64(i));
		jw_set(o, "id", jw_u64(r.id));
		jw_set(o, "start", jw_addr(r.start));
		jw_set(o, "length_bytes", jw_u64(r.len));
		jw_set(o, "pages", jw_u64(r.len / ps));
		jw_set(o, "name", jw_str(r.name));
		jw_push(regs, o);
	}
	return regs;
}

void rx_json(struct json_object *o, struct pmtrack_rx *rx,
	     const struct rx_result *res)
{
	const struct pmtrack_rx_stats *st = &res->st;

	jw_set(o, "state", jw_str(rx_state_name(st->state)));
	jw_set(o, "stream_id",
	       st->streams ? jw_hex(st->stream_id, PMTRACK_STREAM_ID_LEN)
			   : NULL);
	jw_set(o, "page_size_bytes", jw_u64(pmtrack_rx_page_size(rx)));
	jw_set(o, "regions", rx_regions_json(rx));
	jw_set(o, "streams", jw_u64(st->streams));
	jw_set(o, "rounds", jw_u64(st->rounds));
	jw_set(o, "pages", jw_u64(st->pages + st->zero_pages));
	jw_set(o, "zero_pages", jw_u64(st->zero_pages));
	jw_set(o, "bytes", jw_u64(st->bytes));
	jw_set(o, "apply_ms", jw_ms(st->apply_ns));
	jw_set(o, "digest_verified", jw_bool(!res->unverified));
	jw_set(o, "digest_status", jw_str(res->status));
	jw_set(o, "answer", jw_str(rx_reply_name(st->reply)));
	/* what went wrong: the stream error's name and the errno */
	jw_set(o, "error_reason",
	       res->err && res->reason != PMTRACK_SERR_OK
		       ? jw_str(pmtrack_stream_error_name(res->reason))
		       : NULL);
	jw_set(o, "errno", res->err ? jw_i64(-res->err) : NULL);
}

void rx_json_none(struct json_object *o)
{
	static const char *const keys[] = {
		"state",   "stream_id",	 "page_size_bytes", "regions",
		"streams", "rounds",	 "pages",	    "zero_pages",
		"bytes",   "apply_ms",	 "digest_verified", "digest_status",
		"answer",  "error_reason", "errno",
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		jw_set(o, keys[i], strcmp(keys[i], "regions") ? NULL : jw_arr());
}

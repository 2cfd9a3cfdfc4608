/* SPDX-License-Identifier: MIT */
/* The receiver's result and report, for pmtrack recv and restore. */
#ifndef PMTRACK_TOOLS_RXREPORT_H
#define PMTRACK_TOOLS_RXREPORT_H

#include <stdbool.h>
#include <stdio.h>

#include <pmtrack/migrate.h>

struct json_object;

struct rx_result {
	int err; /* the apply's or restore's return */
	const char *msg;
	int reason; /* enum pmtrack_stream_error */
	struct pmtrack_rx_stats st;
	/* the digest line: NULL = verified */
	const char *unverified;
	/* the same as one word, the "digest_status" of JSON: verified,
	   mismatch, failed, incomplete or none */
	const char *status;
	/* the state line, if not just the state's name */
	char state[160];
};

/* @rx's result after an apply or restore that returned @err */
void rx_result_get(struct pmtrack_rx *rx, int err, struct rx_result *res);
/* Exit code for a result, with the message for an unverified one. */
int rx_result_exit(const char *cmd, const struct rx_result *res,
		   bool allow_unverified);
/* "pmtrack CMD: WHAT: message (reason)" */
void rx_error_print(const char *cmd, const char *what,
		    const struct rx_result *res);
/* the report as text lines */
void print_rx_text(FILE *f, struct pmtrack_rx *rx, const struct rx_result *res);
/* The members every receiver report has, added to JSON object @o (the
   caller adds "ok" and "error": jw_outcome()). */
void rx_json(struct json_object *o, struct pmtrack_rx *rx,
	     const struct rx_result *res);
/* The same members, null (regions: an empty array), for a command that
   failed before it had a receiver. */
void rx_json_none(struct json_object *o);

#endif /* PMTRACK_TOOLS_RXREPORT_H */

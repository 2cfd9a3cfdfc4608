// SPDX-License-Identifier: MIT
/*
 * pmtrack inspect: decode a libpmtrack stream and print what it holds, as
 * text or as one JSON document.  When it can, it gives the decoder
 * zero-filled memory for every region so that END's digest is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pmtrack/stream.h>

#include "args.h"
#include "cli.h"

/* the most memory mapped to check a digest */
#define DEST_MAX ((uint64_t)64 << 30)

struct batch_sum {
	uint64_t batches, pages, raw_bytes, payload_bytes, zstd;
};

struct inspect {
	const char *path;
	bool json, batches;
	FILE *out;
	/* JSON with --batches: the "batches" array, printed after "rounds" */
	FILE *bout;
	char *bbuf;
	size_t blen;
	bool first_round, first_batch;

	bool have_header;
	uint32_t page_size;
	size_t nregions;
	const struct pmtrack_stream_region *regions; /* the decoder's */
	void **dest;
	const char *nocheck; /* why the digest cannot be checked */
	char nocheck_buf[128];

	bool in_round;
	uint64_t round;
	struct batch_sum sum;
	/* the regions the round listed: nregions entries */
	struct pmtrack_dec_listed *listed;

	bool have_end;
	struct pmtrack_dec_end end;
	uint8_t digest[PMTRACK_DIGEST_LEN];

	uint64_t wire_bytes, records, skipped;
};

static void usage(FILE *f)
{
	fputs("usage: pmtrack inspect [--json] [--batches] FILE|-\n"
	      "Decode a libpmtrack stream (FILE, or stdin for -) and print "
	      "it.\n"
	      "  --json     print one JSON document instead of text\n"
	      "  --batches  list every page batch\n",
	      f);
}

/* A JSON hex string, or null. */
static void put_json_hex(FILE *f, const uint8_t *b, size_t n)
{
	if (!b) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	put_hex(f, b, n);
	fputc('"', f);
}

static const char *codec_name(uint32_t codec)
{
	switch (codec) {
	case PMTRACK_CODEC_RAW:
		return "raw";
	case PMTRACK_CODEC_ZSTD:
		return "zstd";
	}
	return "unknown";
}

static uint64_t region_pages(const struct inspect *st, size_t i)
{
	return st->regions[i].length / st->page_size;
}

/* Zero-filled destinations for every region, so END's digest is checked. */
static void setup_dest(struct inspect *st, struct pmtrack_dec *dec,
		       const struct pmtrack_dec_header *h)
{
	uint64_t total = 0;
	int r;

	if (h->parent_id) {
		st->nocheck = "the stream has a parent";
		return;
	}
	for (size_t i = 0; i < h->nregions; i++) {
		if (h->regions[i].length > DEST_MAX - total) {
			st->nocheck = "regions larger than 64 GiB";
			return;
		}
		total += h->regions[i].length;
	}
	st->dest = calloc(h->nregions, sizeof(*st->dest));
	if (!st->dest) {
		st->nocheck = "out of memory";
		return;
	}
	for (size_t i = 0; i < h->nregions; i++) {
		void *p = mmap(
			NULL, h->regions[i].length, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED) {
			snprintf(st->nocheck_buf, sizeof(st->nocheck_buf),
				 "mmap: %s", strerror(errno));
			st->nocheck = st->nocheck_buf;
			return;
		}
		st->dest[i] = p;
	}
	for (size_t i = 0; i < h->nregions; i++) {
		r = pmtrack_dec_set_dest(dec, i, st->dest[i],
					 h->regions[i].length);
		if (r < 0) {
			snprintf(st->nocheck_buf, sizeof(st->nocheck_buf),
				 "pmtrack_dec_set_dest: %s", strerror(-r));
			st->nocheck = st->nocheck_buf;
			return;
		}
	}
}

static void free_dest(struct inspect *st)
{
	if (!st->dest)
		return;
	for (size_t i = 0; i < st->nregions; i++)
		if (st->dest[i])
			munmap(st->dest[i], st->regions[i].length);
	free(st->dest);
	st->dest = NULL;
}

static void print_header_text(struct inspect *st,
			      const struct pmtrack_dec_header *h)
{
	FILE *f = st->out;

	fprintf(f, "format version %" PRIu32 "\n", h->version);
	fprintf(f, "page size %" PRIu32 "\n", h->page_size);
	fputs("producer ", f);
	put_str(f, h->producer, false);
	fputs("\nstream id ", f);
	put_hex(f, h->stream_id, PMTRACK_STREAM_ID_LEN);
	fputs("\nparent id ", f);
	if (h->parent_id)
		put_hex(f, h->parent_id, PMTRACK_STREAM_ID_LEN);
	else
		fputs("none", f);
	fprintf(f, "\nregions %zu\n", h->nregions);
	fprintf(f, "  %5s %10s %18s %14s %12s %10s  %s\n", "index", "id",
		"start", "length", "pages", "flags", "name");
	for (size_t i = 0; i < h->nregions; i++) {
		const struct pmtrack_stream_region *r = &h->regions[i];

		fprintf(f,
			"  %5zu %10" PRIu32 " 0x%016" PRIx64 " %14" PRIu64
			" %12" PRIu64 " 0x%08" PRIx32 "  ",
			i, r->id, r->start, r->length, region_pages(st, i),
			r->flags);
		put_str(f, r->name, false);
		fputc('\n', f);
	}
}

static void print_header_json(struct inspect *st,
			      const struct pmtrack_dec_header *h)
{
	FILE *f = st->out;

	fprintf(f, "\"version\":%" PRIu32 ",\"header\":{\"page_size\":%" PRIu32,
		h->version, h->page_size);
	fputs(",\"producer\":", f);
	put_str(f, h->producer, true);
	fputs(",\"stream_id\":", f);
	put_json_hex(f, h->stream_id, PMTRACK_STREAM_ID_LEN);
	fputs(",\"parent_id\":", f);
	put_json_hex(f, h->parent_id, PMTRACK_STREAM_ID_LEN);
	fputs(",\"regions\":[", f);
	for (size_t i = 0; i < h->nregions; i++) {
		const struct pmtrack_stream_region *r = &h->regions[i];

		fprintf(f,
			"%s{\"index\":%zu,\"id\":%" PRIu32 ",\"start\":%" PRIu64
			",\"length\":%" PRIu64 ",\"pages\":%" PRIu64
			",\"flags\":%" PRIu32 ",\"name\":",
			i ? "," : "", i, r->id, r->start, r->length,
			region_pages(st, i), r->flags);
		put_str(f, r->name, true);
		fputc('}', f);
	}
	fputs("]},\"rounds\":[", f);
}

static int on_header(void *arg, struct pmtrack_dec *dec,
		     const struct pmtrack_dec_header *h)
{
	struct inspect *st = arg;

	st->have_header = true;
	st->page_size = h->page_size;
	st->nregions = h->nregions;
	st->regions = h->regions;
	st->listed = calloc(h->nregions, sizeof(*st->listed));
	if (!st->listed)
		return -ENOMEM;
	setup_dest(st, dec, h);
	if (st->json)
		print_header_json(st, h);
	else
		print_header_text(st, h);
	return 0;
}

static int listed_cmp(const void *a, const void *b)
{
	const struct pmtrack_dec_listed *x = a, *y = b;

	return x->region < y->region ? -1 : x->region > y->region;
}

/*
 * The regions the round listed, in table order: asking the decoder for
 * them, rather than going through the table, keeps a round's cost what
 * the round names.
 */
static size_t round_regions(struct inspect *st, const struct pmtrack_dec *dec)
{
	size_t n = 0;

	while (n < st->nregions) {
		st->listed[n] = (struct pmtrack_dec_listed){
			.sz = sizeof(*st->listed),
		};
		if (pmtrack_dec_listed(dec, n, &st->listed[n]) <= 0)
			break;
		n++;
	}
	qsort(st->listed, n, sizeof(*st->listed), listed_cmp);
	return n;
}

/* The open round's batch totals, once its batches are all seen. */
static void close_round(struct inspect *st)
{
	const struct batch_sum *s = &st->sum;
	FILE *f = st->out;

	if (!st->in_round)
		return;
	st->in_round = false;
	if (st->json) {
		fprintf(f,
			"],\"batches\":%" PRIu64 ",\"pages\":%" PRIu64
			",\"raw_bytes\":%" PRIu64 ",\"payload_bytes\":%" PRIu64
			",\"zstd\":%" PRIu64 ",\"raw\":%" PRIu64 ",\"ratio\":",
			s->batches, s->pages, s->raw_bytes, s->payload_bytes,
			s->zstd, s->batches - s->zstd);
		if (s->payload_bytes)
			fprintf(f, "%.3f}",
				(double)s->raw_bytes / s->payload_bytes);
		else
			fputs("null}", f);
		return;
	}
	if (!s->batches) {
		fputs("  batches 0\n", f);
		return;
	}
	fprintf(f,
		"  batches %" PRIu64 ": %" PRIu64 " pages, %" PRIu64
		" bytes raw, %" PRIu64 " bytes payload (%" PRIu64
		" zstd, %" PRIu64 " raw)",
		s->batches, s->pages, s->raw_bytes, s->payload_bytes, s->zstd,
		s->batches - s->zstd);
	if (s->payload_bytes)
		fprintf(f, ", ratio %.2f",
			(double)s->raw_bytes / s->payload_bytes);
	fputc('\n', f);
}

static int on_round(void *arg, struct pmtrack_dec *dec, uint64_t round)
{
	struct inspect *st = arg;
	FILE *f = st->out;
	bool any = false;
	size_t n;

	close_round(st);
	st->in_round = true;
	st->round = round;
	memset(&st->sum, 0, sizeof(st->sum));
	if (st->json)
		fprintf(f, "%s{\"round\":%" PRIu64 ",\"regions\":[",
			st->first_round ? "" : ",", round);
	else
		fprintf(f, "round %" PRIu64 "\n", round);
	st->first_round = false;
	n = round_regions(st, dec);
	for (size_t j = 0; j < n; j++) {
		uint32_t i = st->listed[j].region;
		uint64_t dirty = st->listed[j].dirty;
		uint64_t zero = st->listed[j].zero;
		uint64_t swap = st->listed[j].swap;

		if (!dirty && !zero && !swap)
			continue;
		if (st->json)
			fprintf(f,
				"%s{\"region\":%" PRIu32 ",\"id\":%" PRIu32
				",\"dirty\":%" PRIu64 ",\"zero\":%" PRIu64
				",\"swap\":%" PRIu64 "}",
				any ? "," : "", i, st->regions[i].id, dirty,
				zero, swap);
		else
			fprintf(f,
				"  region %" PRIu32 " (id %" PRIu32
				"): %" PRIu64 " dirty, %" PRIu64
				" zero, %" PRIu64 " swap\n",
				i, st->regions[i].id, dirty, zero, swap);
		any = true;
	}
	if (!any && !st->json)
		fputs("  no pages\n", f);
	return 0;
}

static void print_batch(struct inspect *st, const struct pmtrack_dec_record *r)
{
	if (st->json) {
		fprintf(st->bout,
			"%s{\"round\":%" PRIu64 ",\"offset\":%" PRIu64
			",\"region\":%" PRIu32 ",\"pages\":%" PRIu64
			",\"runs\":%" PRIu64 ",\"codec\":\"%s\""
			",\"payload_bytes\":%" PRIu64 "}",
			st->first_batch ? "" : ",", st->round, r->offset,
			r->region, r->pages, r->runs, codec_name(r->codec),
			r->payload_len);
		st->first_batch = false;
		return;
	}
	fprintf(st->out,
		"  batch @%" PRIu64 ": region %" PRIu32 ", %" PRIu64
		" pages, %" PRIu64 " runs, %s, %" PRIu64 " bytes\n",
		r->offset, r->region, r->pages, r->runs, codec_name(r->codec),
		r->payload_len);
}

static int on_record(void *arg, const struct pmtrack_dec_record *r)
{
	struct inspect *st = arg;
	uint64_t end =
		r->offset + PMTRACK_FRAME_LEN + r->meta_len + r->payload_len;

	st->records++;
	if (end > st->wire_bytes)
		st->wire_bytes = end;
	switch (r->type) {
	case PMTRACK_REC_HEADER:
	case PMTRACK_REC_ROUND:
	case PMTRACK_REC_END:
		break;
	case PMTRACK_REC_BATCH:
		st->sum.batches++;
		st->sum.pages += r->pages;
		st->sum.raw_bytes += r->pages * st->page_size;
		st->sum.payload_bytes += r->payload_len;
		if (r->codec == PMTRACK_CODEC_ZSTD)
			st->sum.zstd++;
		if (st->batches)
			print_batch(st, r);
		break;
	default:
		st->skipped++;
	}
	return 0;
}

static int on_end(void *arg, const struct pmtrack_dec_end *e)
{
	struct inspect *st = arg;

	close_round(st);
	st->have_end = true;
	st->end = *e;
	if (e->digest) {
		memcpy(st->digest, e->digest, PMTRACK_DIGEST_LEN);
		st->end.digest = st->digest;
	}
	return 0;
}

/* NULL if the digest was verified, else why not. */
static const char *digest_unverified(const struct inspect *st, int reason)
{
	if (reason == PMTRACK_SERR_DIGEST)
		return "mismatch";
	if (st->have_end && st->end.digest_verified)
		return NULL;
	if (!st->have_end)
		return "no END record";
	if (!st->end.digest)
		return "no digest sent";
	if (st->nocheck)
		return st->nocheck;
	return "not verified by the decoder";
}

static void finish_text(struct inspect *st, int reason)
{
	const char *why = digest_unverified(st, reason);
	FILE *f = st->out;

	if (st->have_end) {
		fprintf(f,
			"end: %" PRIu64 " rounds, %" PRIu64 " pages, %" PRIu64
			" zero pages, digest ",
			st->end.rounds, st->end.pages, st->end.zero_pages);
		if (st->end.digest)
			put_hex(f, st->end.digest, PMTRACK_DIGEST_LEN);
		else
			fputs("none", f);
		fputc('\n', f);
	} else {
		fputs("end: missing\n", f);
	}
	if (!why)
		fputs("digest: verified\n", f);
	else if (reason == PMTRACK_SERR_DIGEST)
		fputs("digest: MISMATCH\n", f);
	else
		fprintf(f, "digest: not checked (%s)\n", why);
	fprintf(f, "totals: %" PRIu64 " wire bytes, %" PRIu64 " records",
		st->wire_bytes, st->records);
	if (st->skipped)
		fprintf(f, " (%" PRIu64 " skipped)", st->skipped);
	fputc('\n', f);
}

static void finish_json(struct inspect *st, int reason, const char *rname,
			const char *msg)
{
	const char *why = digest_unverified(st, reason);
	FILE *f = st->out;

	if (!st->have_header)
		fputs("\"version\":null,\"header\":null,\"rounds\":[", f);
	fputc(']', f);
	if (st->batches) {
		fputs(",\"batches\":[", f);
		if (st->blen)
			fwrite(st->bbuf, 1, st->blen, f);
		fputc(']', f);
	}
	fputs(",\"end\":", f);
	if (st->have_end) {
		fprintf(f,
			"{\"rounds\":%" PRIu64 ",\"pages\":%" PRIu64
			",\"zero_pages\":%" PRIu64 ",\"digest\":",
			st->end.rounds, st->end.pages, st->end.zero_pages);
		put_json_hex(f, st->end.digest, PMTRACK_DIGEST_LEN);
		fputc('}', f);
	} else {
		fputs("null", f);
	}
	fprintf(f, ",\"digest_verified\":%s", why ? "false" : "true");
	if (why) {
		fputs(",\"digest_reason\":", f);
		put_str(f, why, true);
	}
	fprintf(f,
		",\"wire_bytes\":%" PRIu64 ",\"records\":%" PRIu64
		",\"skipped\":%" PRIu64,
		st->wire_bytes, st->records, st->skipped);
	if (rname) {
		fputs(",\"error\":{\"reason\":", f);
		put_str(f, rname, true);
		fputs(",\"message\":", f);
		put_str(f, msg, true);
		fputc('}', f);
	}
	fputs("}\n", f);
}

enum {
	OPT_JSON = ARG_OPT,
	OPT_BATCHES,
};

static bool inspect_opt(struct cmdline *p, int id, void *arg)
{
	struct inspect *st = arg;

	switch (id) {
	case ARG_POS:
		if (st->path)
			return bad_usage(p, "more than one FILE");
		st->path = p->val;
		break;
	case OPT_JSON:
		st->json = true;
		break;
	case OPT_BATCHES:
		st->batches = true;
		break;
	}
	return true;
}

static int inspect_parse(struct inspect *st, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "batches", no_argument, NULL, OPT_BATCHES },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	struct cmdline p = { .cmd = "inspect",
			     .usage = usage,
			     .opts = opts,
			     .argc = argc,
			     .argv = argv };
	int r = parse_args(&p, inspect_opt, st);

	if (r >= 0)
		return r;
	if (!st->path) {
		usage(stderr);
		return CLI_USAGE;
	}
	return -1;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct pmtrack_dec_ops ops = {
		.header = on_header,
		.round = on_round,
		.record = on_record,
		.end = on_end,
	};
	struct inspect st = { .out = stdout,
			      .first_round = true,
			      .first_batch = true };
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &ops, .arg = &st);
	struct pmtrack_dec *dec = NULL;
	const char *msg = NULL, *rname = NULL;
	int fd, r, reason = PMTRACK_SERR_OK, ret = CLI_OK;

	r = inspect_parse(&st, argc, argv);
	if (r >= 0)
		return r;
	if (!strcmp(st.path, "-")) {
		fd = STDIN_FILENO;
	} else {
		fd = open(st.path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "pmtrack inspect: %s: %s\n", st.path,
				strerror(errno));
			return CLI_ERROR;
		}
	}
	if (st.json && st.batches) {
		st.bout = open_memstream(&st.bbuf, &st.blen);
		if (!st.bout) {
			r = -errno;
			goto fail;
		}
	}
	r = pmtrack_dec_new(&o, &dec);
	if (r < 0)
		goto fail;

	if (st.json)
		fputc('{', st.out);
	r = pmtrack_dec_read_fd(dec, fd);
	close_round(&st);
	if (r < 0) {
		msg = pmtrack_dec_error(dec, &reason);
		if (reason == PMTRACK_SERR_OK) {
			rname = "io"; /* read() failed */
			msg = strerror(-r);
		} else {
			rname = pmtrack_stream_error_name(reason);
			if (!msg || !*msg)
				msg = strerror(-r);
		}
		ret = CLI_ERROR;
	}
	if (st.bout && fclose(st.bout)) {
		fputs("pmtrack inspect: out of memory for the batch list\n",
		      stderr);
		st.blen = 0;
		ret = CLI_ERROR;
	}
	st.bout = NULL;
	if (st.json)
		finish_json(&st, reason, rname, msg);
	else
		finish_text(&st, reason);
	if (cli_flush("inspect", st.out))
		ret = CLI_ERROR;
	if (rname)
		fprintf(stderr, "pmtrack inspect: %s: %s (%s)\n", st.path, msg,
			rname);
	goto out;

fail:
	fprintf(stderr, "pmtrack inspect: %s\n", strerror(-r));
	ret = CLI_ERROR;
out:
	free_dest(&st); /* before the decoder: it owns st.regions */
	free(st.listed);
	pmtrack_dec_free(dec);
	if (st.bout)
		fclose(st.bout);
	free(st.bbuf);
	if (fd != STDIN_FILENO)
		close(fd);
	return ret;
}

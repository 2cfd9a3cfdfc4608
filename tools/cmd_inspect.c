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

#include "cmdline.h"
#include "cli.h"
#include "jsonw.h"

/* the most memory mapped to check a digest */
#define DEST_MAX ((uint64_t)64 << 30)

struct batch_sum {
	uint64_t batches, pages, raw_bytes, payload_bytes, zstd;
	uint64_t zero; /* the round's zero pages, from its list */
};

struct inspect {
	const char *path;
	bool json, batches;
	FILE *out;
	/* JSON: the document, its "rounds", the open round and, with
	   --batches, the "batches" array added to the document at the end */
	struct json_object *doc, *rounds, *jround, *jbatches;

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
	uint8_t state[PMTRACK_DIGEST_LEN];

	uint64_t wire_bytes, records, skipped;
};

static void usage(FILE *f)
{
	fputs("usage: pmtrack inspect [--json] [--batches] FILE|-\n"
	      "Decode a libpmtrack stream (FILE, or stdin for -) and print "
	      "it.\n"
	      "  --json                one JSON result object on stdout "
	      "instead of text (see\n"
	      "                        pmtrack(1), JSON OUTPUT)\n"
	      "  --batches             list every page batch\n"
	      "Pages are counted zero pages included; the zero pages are "
	      "also given apart.\n",
	      f);
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
	char len[CLI_IEC_LEN];

	fprintf(f, "format version %" PRIu32 "\n", h->version);
	fprintf(f, "page size %s\n", iec(len, h->page_size));
	fputs("producer ", f);
	put_str(f, h->producer);
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
			"  %5zu %10" PRIu32 " 0x%016" PRIx64 " %14s"
			" %12" PRIu64 " 0x%08" PRIx32 "  ",
			i, r->id, r->start, iec(len, r->length),
			region_pages(st, i),
			r->flags);
		put_str(f, r->name);
		fputc('\n', f);
	}
}

static void print_header_json(struct inspect *st,
			      const struct pmtrack_dec_header *h)
{
	struct json_object *hd = jw_obj(), *regs = jw_arr(), *o;

	jw_set(st->doc, "version", jw_u64(h->version));
	jw_set(hd, "page_size_bytes", jw_u64(h->page_size));
	jw_set(hd, "producer", jw_str(h->producer));
	jw_set(hd, "stream_id", jw_hex(h->stream_id, PMTRACK_STREAM_ID_LEN));
	jw_set(hd, "parent_id", jw_hex(h->parent_id, PMTRACK_STREAM_ID_LEN));
	for (size_t i = 0; i < h->nregions; i++) {
		const struct pmtrack_stream_region *r = &h->regions[i];

		o = jw_obj();
		jw_set(o, "index", jw_u64(i));
		jw_set(o, "id", jw_u64(r->id));
		jw_set(o, "start", jw_addr(r->start));
		jw_set(o, "length_bytes", jw_u64(r->length));
		jw_set(o, "pages", jw_u64(region_pages(st, i)));
		jw_set(o, "flags", jw_u64(r->flags));
		jw_set(o, "name", jw_str(r->name));
		jw_push(regs, o);
	}
	jw_set(hd, "regions", regs);
	jw_set(st->doc, "header", hd);
	st->rounds = jw_arr();
	jw_set(st->doc, "rounds", st->rounds);
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

/* raw bytes per payload byte (payload_bytes > 0) */
static double ratio(const struct batch_sum *s)
{
	return (double)s->raw_bytes / (double)s->payload_bytes;
}

/* The open round's batch totals, once its batches are all seen. */
static void close_round(struct inspect *st)
{
	const struct batch_sum *s = &st->sum;
	struct json_object *o = st->jround;
	char rb[CLI_IEC_LEN], pb[CLI_IEC_LEN];
	FILE *f = st->out;

	if (!st->in_round)
		return;
	st->in_round = false;
	if (st->json) {
		jw_set(o, "batches", jw_u64(s->batches));
		jw_set(o, "pages", jw_u64(s->pages + s->zero));
		jw_set(o, "zero_pages", jw_u64(s->zero));
		jw_set(o, "batch_pages", jw_u64(s->pages));
		jw_set(o, "raw_bytes", jw_u64(s->raw_bytes));
		jw_set(o, "payload_bytes", jw_u64(s->payload_bytes));
		jw_set(o, "zstd", jw_u64(s->zstd));
		jw_set(o, "raw", jw_u64(s->batches - s->zstd));
		jw_set(o, "ratio",
		       s->payload_bytes ? jw_fixed(ratio(s), 3) : NULL);
		return;
	}
	if (!s->batches) {
		fputs("  batches 0\n", f);
		return;
	}
	fprintf(f,
		"  batches %" PRIu64 ": %" PRIu64 " pages, %s raw, %s "
		"payload (%" PRIu64 " zstd, %" PRIu64 " raw)",
		s->batches, s->pages, iec(rb, s->raw_bytes),
		iec(pb, s->payload_bytes), s->zstd, s->batches - s->zstd);
	if (s->payload_bytes)
		fprintf(f, ", ratio %.2f", ratio(s));
	fputc('\n', f);
}

/* A round's line for one region, or its object in @regs. */
static void round_region(struct inspect *st, struct json_object *regs,
			 const struct pmtrack_dec_listed *l)
{
	uint32_t id = st->regions[l->region].id;
	struct json_object *o;

	if (!st->json) {
		fprintf(st->out,
			"  region %" PRIu32 " (id %" PRIu32 "): %" PRIu64
			" dirty, %" PRIu64 " zero, %" PRIu64 " swap\n",
			l->region, id, l->dirty, l->zero, l->swap);
		return;
	}
	o = jw_obj();
	jw_set(o, "region", jw_u64(l->region));
	jw_set(o, "id", jw_u64(id));
	jw_set(o, "pages", jw_u64(l->dirty));
	jw_set(o, "zero_pages", jw_u64(l->zero));
	jw_set(o, "swap_pages", jw_u64(l->swap));
	jw_push(regs, o);
}

static int on_round(void *arg, struct pmtrack_dec *dec, uint64_t round)
{
	struct inspect *st = arg;
	struct json_object *regs = NULL;
	bool any = false;
	size_t n;

	close_round(st);
	st->in_round = true;
	st->round = round;
	memset(&st->sum, 0, sizeof(st->sum));
	if (st->json) {
		st->jround = jw_obj();
		jw_set(st->jround, "round", jw_u64(round));
		regs = jw_arr();
		jw_set(st->jround, "regions", regs);
		jw_push(st->rounds, st->jround);
	} else {
		fprintf(st->out, "round %" PRIu64 "\n", round);
	}
	n = round_regions(st, dec);
	for (size_t j = 0; j < n; j++) {
		const struct pmtrack_dec_listed *l = &st->listed[j];

		st->sum.zero += l->zero;
		if (!l->dirty && !l->zero && !l->swap)
			continue;
		round_region(st, regs, l);
		any = true;
	}
	if (!any && !st->json)
		fputs("  no pages\n", st->out);
	return 0;
}

static void print_batch(struct inspect *st, const struct pmtrack_dec_record *r)
{
	struct json_object *o;
	char b[CLI_IEC_LEN];

	if (!st->json) {
		fprintf(st->out,
			"  batch @%" PRIu64 ": region %" PRIu32 ", %" PRIu64
			" pages, %" PRIu64 " runs, %s, %s\n",
			r->offset, r->region, r->pages, r->runs,
			codec_name(r->codec), iec(b, r->payload_len));
		return;
	}
	o = jw_obj();
	jw_set(o, "round", jw_u64(st->round));
	jw_set(o, "offset", jw_u64(r->offset));
	jw_set(o, "region", jw_u64(r->region));
	jw_set(o, "pages", jw_u64(r->pages));
	jw_set(o, "runs", jw_u64(r->runs));
	jw_set(o, "codec", jw_str(codec_name(r->codec)));
	jw_set(o, "payload_bytes", jw_u64(r->payload_len));
	jw_push(st->jbatches, o);
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
	if (e->state) {
		memcpy(st->state, e->state, PMTRACK_DIGEST_LEN);
		st->end.state = st->state;
	}
	return 0;
}

/*
 * NULL if what END carried was verified (the state digest against the
 * pages decoded, the memory digest against the replayed memory; the
 * decoder fails on a mismatch of either), else why not.
 */
static const char *digest_unverified(const struct inspect *st, int reason)
{
	if (reason == PMTRACK_SERR_DIGEST)
		return "mismatch";
	if (st->have_end && (st->end.digest || st->end.state) &&
	    (!st->end.digest || st->end.digest_verified) &&
	    (!st->end.state || st->end.state_verified))
		return NULL;
	if (!st->have_end)
		return "no END record";
	if (!st->end.digest && !st->end.state)
		return "no digest sent";
	if (st->end.state && !st->end.state_verified)
		return "the state digest continues a parent stream";
	if (st->nocheck)
		return st->nocheck;
	return "not verified by the decoder";
}

static void finish_text(struct inspect *st, int reason)
{
	const char *why = digest_unverified(st, reason);
	char b[CLI_IEC_LEN];
	FILE *f = st->out;

	if (st->have_end) {
		fprintf(f,
			"end: %" PRIu64 " rounds, %" PRIu64 " pages (%" PRIu64
			" zero), digest ",
			st->end.rounds, st->end.pages + st->end.zero_pages,
			st->end.zero_pages);
		if (st->end.digest)
			put_hex(f, st->end.digest, PMTRACK_DIGEST_LEN);
		else
			fputs("none", f);
		if (st->end.state) {
			fputs(", state ", f);
			put_hex(f, st->end.state, PMTRACK_DIGEST_LEN);
		}
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
	fprintf(f, "totals: %" PRIu64 " wire bytes (%s), %" PRIu64 " records",
		st->wire_bytes, iec(b, st->wire_bytes), st->records);
	if (st->skipped)
		fprintf(f, " (%" PRIu64 " skipped)", st->skipped);
	fputc('\n', f);
}

static void finish_json(struct inspect *st, int reason, const char *rname,
			const char *msg)
{
	const char *why = digest_unverified(st, reason);
	struct json_object *doc = st->doc, *o = NULL;

	if (!st->have_header) {
		jw_set(doc, "version", NULL);
		jw_set(doc, "header", NULL);
		jw_set(doc, "rounds", jw_arr());
	}
	/* null without --batches */
	jw_set(doc, "batches", st->jbatches);
	st->jbatches = NULL;
	if (st->have_end) {
		o = jw_obj();
		jw_set(o, "rounds", jw_u64(st->end.rounds));
		jw_set(o, "pages",
		       jw_u64(st->end.pages + st->end.zero_pages));
		jw_set(o, "zero_pages", jw_u64(st->end.zero_pages));
		jw_set(o, "digest", jw_hex(st->end.digest, PMTRACK_DIGEST_LEN));
		jw_set(o, "state_digest",
		       jw_hex(st->end.state, PMTRACK_DIGEST_LEN));
	}
	jw_set(doc, "stream_end", o);
	jw_set(doc, "digest_verified", jw_bool(!why));
	jw_set(doc, "digest_reason", jw_str(why)); /* null if verified */
	jw_set(doc, "wire_bytes", jw_u64(st->wire_bytes));
	jw_set(doc, "records", jw_u64(st->records));
	jw_set(doc, "skipped", jw_u64(st->skipped));
	(void)msg; /* the "error" of the outcome */
	jw_set(doc, "error_reason", jw_str(rname));
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
		return take_one(p, &st->path, "FILE");
	case OPT_JSON:
		st->json = true;
		break;
	case OPT_BATCHES:
		st->batches = true;
		break;
	}
	return true;
}

/* no FILE: the usage alone */
static bool inspect_done(struct cmdline *p, void *arg)
{
	(void)p;
	if (((struct inspect *)arg)->path)
		return true;
	usage(stderr);
	return false;
}

static int inspect_parse(struct inspect *st, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "batches", no_argument, NULL, OPT_BATCHES },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	static const struct cmdline_spec spec = { .cmd = "inspect",
						  .usage = usage,
						  .opts = opts,
						  .take = inspect_opt,
						  .done = inspect_done };

	return parse_args(&spec, argc, argv, st);
}

/* An open FILE (- for stdin), or -1 after a message. */
static int inspect_open(const char *path)
{
	int fd;

	if (!strcmp(path, "-"))
		return STDIN_FILENO;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		cli_err("inspect", "%s: %s", path, strerror(errno));
	return fd;
}

/* What is known once the decoder is done (@r its return), printed. */
static int inspect_report(struct inspect *st, struct pmtrack_dec *dec, int r)
{
	const char *msg = NULL, *rname = NULL;
	int reason = PMTRACK_SERR_OK, ret = CLI_OK;

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
	if (rname && st->json)
		cli_err("inspect", "%s: %s (%s)", st->path, msg, rname);
	if (st->json) {
		struct json_object *doc = jw_head("inspect", "result");

		finish_json(st, reason, rname, msg);
		jw_outcome(doc, ret);
		jw_merge(doc, st->doc);
		st->doc = NULL;
		if (jw_print("inspect", st->out, doc))
			ret = CLI_ERROR;
	} else {
		finish_text(st, reason);
	}
	if (cli_flush("inspect", st->out))
		ret = CLI_ERROR;
	if (rname && !st->json)
		cli_err("inspect", "%s: %s (%s)", st->path, msg, rname);
	return ret;
}

/* the result of an inspect that could not begin: every key, null */
static void inspect_failed_json(void)
{
	static const char *const keys[] = {
		"version",	   "header",	    "rounds",	"batches",
		"stream_end",	   "digest_verified", "digest_reason",
		"wire_bytes",	   "records",	    "skipped", "error_reason",
	};
	struct json_object *doc = jw_head("inspect", "result");

	jw_outcome(doc, CLI_ERROR);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		jw_set(doc, keys[i], NULL);
	jw_print("inspect", stdout, doc);
}

/* Decode @fd and print what it holds. */
static int inspect_run(struct inspect *st, int fd)
{
	static const struct pmtrack_dec_ops ops = {
		.header = on_header,
		.round = on_round,
		.record = on_record,
		.end = on_end,
	};
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &ops, .arg = st);
	struct pmtrack_dec *dec = NULL;
	int r, ret;

	if (st->json)
		st->doc = jw_obj();
	if (st->json && st->batches)
		st->jbatches = jw_arr();
	r = pmtrack_dec_new(&o, &dec);
	if (r < 0) {
		cli_err("inspect", "%s", strerror(-r));
		if (st->json)
			inspect_failed_json();
		ret = CLI_ERROR;
	} else {
		r = pmtrack_dec_read_fd(dec, fd);
		close_round(st);
		ret = inspect_report(st, dec, r);
	}
	free_dest(st); /* before the decoder: it owns st->regions */
	free(st->listed);
	pmtrack_dec_free(dec);
	json_object_put(st->jbatches);
	json_object_put(st->doc);
	return ret;
}

int cmd_inspect(int argc, char **argv)
{
	struct inspect st = { .out = stdout };
	int fd, r;

	r = inspect_parse(&st, argc, argv);
	if (r >= 0)
		return r;
	fd = inspect_open(st.path);
	if (fd < 0) {
		if (st.json)
			inspect_failed_json();
		return CLI_ERROR;
	}
	r = inspect_run(&st, fd);
	if (fd != STDIN_FILENO)
		close(fd);
	return r;
}

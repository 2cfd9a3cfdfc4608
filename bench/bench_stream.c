/* SPDX-License-Identifier: MIT */
/*
 * pmtrack-bench-stream: encode and decode throughput of the stream format
 * (<pmtrack/stream.h>) next to memcpy() of the same bytes.
 *
 * A region of --size-mib MiB of system-sized pages is filled with one of
 * three page mixes:
 *
 *  zero       every page all zero (written, so that the pages are real
 *             ones, not the kernel's shared zero page)
 *  random     xorshift64 bytes: incompressible
 *  realistic  each page, picked at random (fixed seed), is one of, with
 *             probability 1/4 each:
 *               zero    all zero
 *               text    words from a 32-word dictionary separated by
 *                       spaces and the odd newline (compressible)
 *               sparse  8-byte slots, 3 in 4 zero, the others small
 *                       integers (< 1024) or pointer-like values
 *                       (0x7f3a00000000 plus a 16-byte aligned offset
 *                       below 16 MiB)
 *               random  as in the random mix
 *
 * For every mix and encoder setting (zstd level off, 1 and 3 with
 * PMTRACK_ENC_STABLE, since the memory does not change; level off without
 * it, so that the encoder copies every page; level 1 with
 * PMTRACK_ENC_ADAPTIVE | PMTRACK_ENC_STABLE and the link speed measured)
 * each rep runs, in a rotating order:
 *
 *  memcpy  the region into a pre-faulted destination
 *  encode  one round with every page dirty, then END with the region's
 *          pmtrack_digest(), into a memory sink: a write callback that
 *          memcpy()s the iovecs into a pre-faulted buffer, as a socket
 *          send buffer would.  Timed: pmtrack_enc_round() and
 *          pmtrack_enc_end(), not pmtrack_enc_new() (preamble, HEADER)
 *  decode  that stream, fed to pmtrack_dec_feed() in one call, written by
 *          the decoder into the pre-faulted destination (set from the
 *          header callback with pmtrack_dec_set_dest()), then
 *          pmtrack_dec_finish().  Timed: feed and finish, not
 *          pmtrack_dec_new().  Afterwards (untimed) the END digest must
 *          have been verified and the destination must equal the region,
 *          or the program fails.
 *
 * The destination is overwritten with a filler before each memcpy and
 * decode (untimed), so that no timed part takes a first-touch fault and
 * the comparison after decoding proves every page was written.
 *
 * Throughput is region bytes / median seconds, in GB/s (1e9 bytes); the
 * ratios are to the memcpy median of the same row.  wire/input is the
 * stream's size over the region's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/pmtrack.h>
#include <pmtrack/stream.h>

#include "args.h"
#include "bench_util.h"

#define PROG "pmtrack-bench-stream"
#define MAX_LEVELS 16

enum mix {
	MIX_ZERO,
	MIX_RANDOM,
	MIX_REAL,
	MIX_NR,
};

static const char *const mix_name[MIX_NR] = {
	[MIX_ZERO] = "zero",
	[MIX_RANDOM] = "random",
	[MIX_REAL] = "realistic",
};

/* one encoder setting: a row of the table */
struct row {
	char label[32];
	int level;
	unsigned int flags;
	unsigned int workers; /* pmtrack_enc_opts.workers */
	double enc_gbps;      /* set by run_row() */
};

/* the memory sink the encoder writes to */
struct sink {
	char *buf;
	size_t len, cap;
};

struct bench {
	char *src, *dst;
	size_t len, npages;
	uint64_t *dirty;
	uint8_t digest[PMTRACK_DIGEST_LEN];
	struct sink sink;
	const char *mix; /* for messages */
	/* set by the decoder's end callback */
	int ended, verified;
};

__attribute__((noreturn)) static void fail(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err));
	exit(1);
}

/* an anonymous mapping, every page touched */
static char *map_faulted(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap", errno);
	memset(p, 0xa5, len);
	return p;
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void fill_random(char *p, size_t len, uint64_t *s)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = xorshift64(s);

		memcpy(p + i, &v, 8);
	}
}

static void fill_text(char *p, size_t len, uint64_t *s)
{
	static const char *const words[32] = {
		"the",	  "of",	     "and",    "to",	 "in",	  "is",
		"that",	  "for",     "it",     "as",	 "with",  "was",
		"on",	  "be",	     "by",     "this",	 "page",  "memory",
		"dirty",  "round",   "stream", "region", "batch", "zero",
		"kernel", "process", "write",  "read",	 "value", "error",
		"return", "buffer",
	};
	size_t off = 0;

	while (off < len) {
		uint64_t r = xorshift64(s);
		const char *w = words[r % 32];

		while (*w && off < len)
			p[off++] = *w++;
		if (off < len)
			p[off++] = (r >> 8) % 12 ? ' ' : '\n';
	}
}

static void fill_sparse(char *p, size_t len, uint64_t *s)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t r = xorshift64(s), v;

		switch (r & 7) {
		case 0:
			v = (r >> 8) & 0x3ff;
			break;
		case 1:
			v = 0x7f3a00000000ull + (((r >> 8) & 0xfffff) << 4);
			break;
		default:
			v = 0;
		}
		memcpy(p + i, &v, 8);
	}
}

static void fill(char *p, size_t len, size_t page_size, enum mix m)
{
	uint64_t s = 0x9e3779b97f4a7c15ull, pick = 0x2545f4914f6cdd1dull;

	switch (m) {
	case MIX_ZERO:
		memset(p, 0, len);
		break;
	case MIX_RANDOM:
		fill_random(p, len, &s);
		break;
	case MIX_REAL:
	default:
		for (size_t off = 0; off < len; off += page_size) {
			switch (xorshift64(&pick) >> 62) {
			case 0:
				memset(p + off, 0, page_size);
				break;
			case 1:
				fill_text(p + off, page_size, &s);
				break;
			case 2:
				fill_sparse(p + off, page_size, &s);
				break;
			default:
				fill_random(p + off, page_size, &s);
			}
		}
	}
}

static int sink_write(void *arg, const struct iovec *iov, int iovcnt)
{
	struct sink *s = arg;

	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > s->cap - s->len)
			return -ENOSPC;
		memcpy(s->buf + s->len, iov[i].iov_base, iov[i].iov_len);
		s->len += iov[i].iov_len;
	}
	return 0;
}

static double time_memcpy(struct bench *b)
{
	uint64_t t0;

	memset(b->dst, 0xa5, b->len);
	t0 = bench_now_ns();
	memcpy(b->dst, b->src, b->len);
	return (bench_now_ns() - t0) / 1e9;
}

/* encode the whole region into b->sink; returns seconds, fills @st */
static double time_encode(struct bench *b, const struct row *r,
			  struct pmtrack_enc_stats *st)
{
	PMTRACK_OPTS(pmtrack_enc_opts, o, .write = sink_write,
		     .write_arg = &b->sink, .level = r->level,
		     .flags = r->flags, .workers = r->workers);
	struct pmtrack_stream_region reg = {
		.id = 0,
		.start = (uintptr_t)b->src,
		.length = b->len,
		.name = "bench",
	};
	struct pmtrack_enc_region_round rr = {
		.region = 0,
		.dirty = b->dirty,
		.mem = b->src,
	};
	struct pmtrack_enc *enc;
	uint64_t t0, t;
	int ret;

	b->sink.len = 0;
	ret = pmtrack_enc_new(&o, &reg, 1, &enc);
	if (ret)
		fail("pmtrack_enc_new", -ret);
	t0 = bench_now_ns();
	ret = pmtrack_enc_round(enc, 1, &rr, 1);
	if (!ret)
		ret = pmtrack_enc_end(enc, b->digest);
	t = bench_now_ns() - t0;
	if (ret)
		fail("pmtrack_enc_round/end", -ret);
	st->sz = sizeof(*st);
	ret = pmtrack_enc_get_stats(enc, st);
	if (ret)
		fail("pmtrack_enc_get_stats", -ret);
	pmtrack_enc_free(enc);
	if (st->wire_bytes != b->sink.len ||
	    st->pages + st->zero_pages != b->npages) {
		fprintf(stderr,
			PROG ": %s, %s: encoder says %llu wire bytes "
			     "(sink: %zu), %llu + %llu zero pages (of %zu)\n",
			b->mix, r->label, (unsigned long long)st->wire_bytes,
			b->sink.len, (unsigned long long)st->pages,
			(unsigned long long)st->zero_pages, b->npages);
		exit(1);
	}
	return t / 1e9;
}

static int on_header(void *arg, struct pmtrack_dec *dec,
		     const struct pmtrack_dec_header *h)
{
	struct bench *b = arg;

	if (h->nregions != 1)
		return -EPROTO;
	return pmtrack_dec_set_dest(dec, 0, b->dst, b->len);
}

static int on_end(void *arg, const struct pmtrack_dec_end *e)
{
	struct bench *b = arg;

	b->ended = 1;
	b->verified = e->digest_verified;
	return 0;
}

/* decode b->sink into b->dst and check it; returns seconds */
static double time_decode(struct bench *b, const struct row *r)
{
	static const struct pmtrack_dec_ops ops = {
		.header = on_header,
		.end = on_end,
	};
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &ops, .arg = b);
	struct pmtrack_dec *dec;
	uint64_t t0, t;
	int ret;

	memset(b->dst, 0xa5, b->len);
	b->ended = b->verified = 0;
	ret = pmtrack_dec_new(&o, &dec);
	if (ret)
		fail("pmtrack_dec_new", -ret);
	t0 = bench_now_ns();
	ret = pmtrack_dec_feed(dec, b->sink.buf, b->sink.len);
	if (!ret)
		ret = pmtrack_dec_finish(dec);
	t = bench_now_ns() - t0;
	if (ret) {
		fprintf(stderr, PROG ": %s, %s: decode: %s (%s)\n", b->mix,
			r->label, pmtrack_dec_error(dec, NULL), strerror(-ret));
		exit(1);
	}
	pmtrack_dec_free(dec);
	if (!b->ended || !b->verified) {
		fprintf(stderr, PROG ": %s, %s: decode: %s\n", b->mix, r->label,
			b->ended ? "digest not verified" : "no END record");
		exit(1);
	}
	if (memcmp(b->dst, b->src, b->len)) {
		fprintf(stderr, PROG ": %s, %s: decoded memory differs\n",
			b->mix, r->label);
		exit(1);
	}
	return t / 1e9;
}

/* one item of --levels: a level, or "off" (0) */
static int level_item(void *arg, int i, const char *text)
{
	int *levels = arg;

	if (!strcmp(text, "off")) {
		levels[i] = 0;
		return 0;
	}
	return pmt_parse_int(text, -1000, 22, &levels[i]);
}

/* "0,1,3" (or "off,1,3") into @levels; returns how many */
static int parse_levels(const char *s, int *levels)
{
	return pmt_arg_list(PROG, "--levels", s, MAX_LEVELS, level_item, levels,
			    "up to %d comma-separated zstd levels from -1000 "
			    "to 22, 0 or off = no compression",
			    MAX_LEVELS);
}

/* "zero", "random", "realistic" or "all" into a bit mask of enum mix */
static int parse_mix(const char *s)
{
	if (!strcmp(s, "all"))
		return (1 << MIX_NR) - 1;
	for (int m = 0; m < MIX_NR; m++)
		if (!strcmp(s, mix_name[m]))
			return 1 << m;
	pmt_bad_value(PROG, "--mix", s, "zero, random, realistic or all");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--size-mib N] [--reps N] [--mix M] "
		   "[--levels L]\n"
		   "  --size-mib N  size of the region (256)\n"
		   "  --reps N      repetitions per measurement (5)\n"
		   "  --mix M       zero, random, realistic or all (all)\n"
		   "  --levels L    comma-separated zstd levels, 0 or off = no "
		   "compression (off,1,3)\n");
}

/* the command line */
struct args {
	size_t size_mib;
	int reps, mixes; /* mixes: a bit mask of enum mix */
	int levels[MAX_LEVELS], nlevels;
};

static void parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "mix", required_argument, NULL, 'm' },
		{ "levels", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			a->size_mib = bench_parse_num(PROG, optarg,
						      "--size-mib");
			break;
		case 'r':
			a->reps = (int)bench_parse_num(PROG, optarg, "--reps");
			break;
		case 'm':
			a->mixes = parse_mix(optarg);
			break;
		case 'l':
			a->nlevels = parse_levels(optarg, a->levels);
			break;
		default:
			pmt_usage_exit(opt, usage);
		}
	}
	pmt_no_operands(argc, usage);
}

/* the table's rows: each level with PMTRACK_ENC_STABLE, then "off,
 * copying" and "1, adaptive"; returns how many */
static int build_rows(const struct args *a, struct row *rows)
{
	int nrows = 0;

	for (int i = 0; i < a->nlevels; i++, nrows++) {
		if (a->levels[i])
			snprintf(rows[nrows].label, sizeof(rows[0].label), "%d",
				 a->levels[i]);
		else
			strcpy(rows[nrows].label, "off");
		rows[nrows].level = a->levels[i];
		rows[nrows].flags = PMTRACK_ENC_STABLE;
	}
	rows[nrows++] = (struct row){ "off, copying", 0, 0, 0, 0 };
	rows[nrows++] =
		(struct row){ "1, adaptive", 1,
			      PMTRACK_ENC_ADAPTIVE | PMTRACK_ENC_STABLE, 0, 0 };
	/* the same compression on worker threads */
	rows[nrows++] = (struct row){ "1, 1 worker", 1, PMTRACK_ENC_STABLE, 1,
				      0 };
	rows[nrows++] = (struct row){ "1, 2 workers", 1, PMTRACK_ENC_STABLE,
				      2, 0 };
	rows[nrows++] = (struct row){ "off, copying, 1 worker", 0, 0, 1, 0 };
	return nrows;
}

/* seconds per rep of each measurement */
struct times {
	double *enc, *dec, *cpy;
};

/* what the notes after the table say */
struct notes {
	uint64_t zero_wire;
	double real_zero;
	char adaptive[MIX_NR][160];
	char workers[MIX_NR][160];
};

/* the region, the sink and the per-rep times for a region of @size_mib */
static void setup(struct bench *b, struct times *t, size_t size_mib,
		  size_t page_size, int reps)
{
	b->len = size_mib << 20;
	b->npages = b->len / page_size;
	b->sink.cap = b->len + b->len / 10 + (1u << 20);
	b->dirty = malloc((b->npages + 63) / 64 * 8);
	t->enc = malloc((size_t)reps * sizeof(double));
	t->dec = malloc((size_t)reps * sizeof(double));
	t->cpy = malloc((size_t)reps * sizeof(double));
	if (!b->dirty || !t->enc || !t->dec || !t->cpy)
		fail("malloc", ENOMEM);
	memset(b->dirty, 0xff, (b->npages + 63) / 64 * 8);
	b->src = map_faulted(b->len);
	b->dst = map_faulted(b->len);
	b->sink.buf = map_faulted(b->sink.cap);
}

static void teardown(struct bench *b, struct times *t)
{
	munmap(b->src, b->len);
	munmap(b->dst, b->len);
	munmap(b->sink.buf, b->sink.cap);
	free(b->dirty);
	free(t->enc);
	free(t->dec);
	free(t->cpy);
}

static void print_header(const struct bench *b, size_t size_mib,
			 size_t page_size, int reps)
{
	struct utsname uts;

	if (uname(&uts))
		fail("uname", errno);
	printf(PROG ": kernel %s, libpmtrack %s, %zu MiB (%zu pages of %zu B), "
		    "%d reps, medians\n\n",
	       uts.release, pmtrack_version(), size_mib, b->npages, page_size,
	       reps);
	printf("| mix | level | encode GB/s | decode GB/s | memcpy GB/s "
	       "| enc ÷ memcpy | dec ÷ memcpy | wire/input |\n");
	printf("|---|---|--:|--:|--:|--:|--:|--:|\n");
	fflush(stdout);
}

/* every rep of row @r on the current mix, and its line of the table */
static void run_row(struct bench *b, struct row *r, struct times *t,
		    int reps, struct pmtrack_enc_stats *st)
{
	double e, d, c;

	/* memcpy first, second or last; decode after encode */
	for (int rep = 0; rep < reps; rep++) {
		for (int step = 0, k = 0; step < 3; step++) {
			if (step == rep % 3)
				t->cpy[rep] = time_memcpy(b);
			else if (k++ == 0)
				t->enc[rep] = time_encode(b, r, st);
			else
				t->dec[rep] = time_decode(b, r);
		}
	}
	e = b->len / bench_median(t->enc, reps) / 1e9;
	d = b->len / bench_median(t->dec, reps) / 1e9;
	c = b->len / bench_median(t->cpy, reps) / 1e9;
	r->enc_gbps = e;
	printf("| %s | %s | %#.3g | %#.3g | %#.3g "
	       "| %.3f | %.3f | %.4f |\n",
	       b->mix, r->label, e, d, c, e / c, d / c,
	       (double)st->wire_bytes / b->len);
	fflush(stdout);
}

/* what row @r of mix @m adds to the notes */
static void take_notes(struct notes *n, enum mix m, const struct row *r,
		       const struct pmtrack_enc_stats *st, size_t npages)
{
	if (m == MIX_ZERO && !n->zero_wire)
		n->zero_wire = st->wire_bytes;
	if (m == MIX_REAL)
		n->real_zero = (double)st->zero_pages / npages;
	if (r->flags & PMTRACK_ENC_ADAPTIVE && st->batches)
		snprintf(n->adaptive[m], sizeof(n->adaptive[m]),
			 "%llu of %llu batches compressed; "
			 "skipped %llu as incompressible, "
			 "%llu for the link",
			 (unsigned long long)st->batches_zstd,
			 (unsigned long long)st->batches,
			 (unsigned long long)st->skipped_incompressible,
			 (unsigned long long)st->skipped_link);
}

/* mix @m into the region, then every row on it */
/* encode GB/s of the row labelled @label, 0 if none */
static double row_gbps(const struct row *rows, int nrows, const char *label)
{
	for (int i = 0; i < nrows; i++)
		if (!strcmp(rows[i].label, label))
			return rows[i].enc_gbps;
	return 0;
}

static void run_mix(struct bench *b, enum mix m, struct row *rows,
		    int nrows, struct times *t, int reps, struct notes *n,
		    size_t page_size)
{
	struct iovec iov = { b->src, b->len };
	int ret;

	b->mix = mix_name[m];
	fill(b->src, b->len, page_size, m);
	ret = pmtrack_digest(&iov, 1, b->digest);
	if (ret)
		fail("pmtrack_digest", -ret);
	for (int i = 0; i < nrows; i++) {
		PMTRACK_OPTS(pmtrack_enc_stats, st);

		run_row(b, &rows[i], t, reps, &st);
		take_notes(n, m, &rows[i], &st, b->npages);
	}
	{
		double w0 = row_gbps(rows, nrows, "1"),
		       w1 = row_gbps(rows, nrows, "1, 1 worker"),
		       w2 = row_gbps(rows, nrows, "1, 2 workers");

		if (w1 > 0 && w2 > 0)
			snprintf(n->workers[m], sizeof(n->workers[m]),
				 "level 1 encode, 2 workers ÷ 1 worker %.2f, "
				 "1 worker ÷ none %.2f",
				 w2 / w1, w0 > 0 ? w1 / w0 : 0);
	}
}

static void print_notes(const struct notes *n, const struct bench *b,
			const char *first_label)
{
	printf("\n");
	if (n->zero_wire)
		printf("Bytes on the wire per zero page: %.4f (zero mix, level "
		       "%s: the whole stream,\n%llu bytes, / %zu pages).\n",
		       (double)n->zero_wire / b->npages, first_label,
		       (unsigned long long)n->zero_wire, b->npages);
	printf("\nOne round with every page dirty.  Encode writes into a "
	       "memory sink (the write\ncallback memcpy()s the stream into "
	       "a pre-faulted buffer, so encode includes\nthat copy); decode "
	       "is one pmtrack_dec_feed() of the whole stream into a\n"
	       "pre-faulted destination, checked against the source and the "
	       "END digest.\nGB/s = region bytes / median time, 1e9 bytes.\n"
	       "Rows use PMTRACK_ENC_STABLE except \"off, copying\" (the "
	       "encoder copies every\npage); \"1, adaptive\" adds "
	       "PMTRACK_ENC_ADAPTIVE with the link speed measured.\n"
	       "Mixes: zero = all pages zero; random = xorshift64 bytes; "
	       "realistic = each\npage at random one of zero, text (words "
	       "from a 32-word dictionary), sparse\n(8-byte slots, 3 in 4 "
	       "zero, else small integers or pointer-like values) or\n"
	       "random, 1/4 each");
	if (n->real_zero >= 0)
		printf(" (%.1f%% zero pages here)", 100 * n->real_zero);
	printf(".\n");
	for (int m = 0; m < MIX_NR; m++)
		if (n->adaptive[m][0])
			printf("Adaptive, %s: %s.\n", mix_name[m],
			       n->adaptive[m]);
	printf("Rows \"N worker(s)\" prepare batches (copy, hash, compress) "
	       "on N threads\n(pmtrack_enc_opts.workers) while the caller "
	       "writes them.\n");
	for (int m = 0; m < MIX_NR; m++)
		if (n->workers[m][0])
			printf("Workers, %s: %s.\n", mix_name[m],
			       n->workers[m]);
}

int main(int argc, char **argv)
{
	struct args a = { .size_mib = 256,
			  .reps = 5,
			  .mixes = (1 << MIX_NR) - 1,
			  .levels = { 0, 1, 3 },
			  .nlevels = 3 };
	struct row rows[MAX_LEVELS + 5] = { { { 0 } } };
	struct notes n = { .real_zero = -1 };
	size_t page_size = (size_t)sysconf(_SC_PAGESIZE);
	struct bench b = { 0 };
	struct times t;
	int nrows;

	parse_args(argc, argv, &a);
	nrows = build_rows(&a, rows);
	setup(&b, &t, a.size_mib, page_size, a.reps);
	print_header(&b, a.size_mib, page_size, a.reps);
	for (int m = 0; m < MIX_NR; m++)
		if (a.mixes & 1 << m)
			run_mix(&b, m, rows, nrows, &t, a.reps, &n, page_size);
	print_notes(&n, &b, rows[0].label);
	teardown(&b, &t);
	return 0;
}

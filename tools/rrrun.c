// SPDX-License-Identifier: MIT
/*
 * pmtrack restore of a `dump --pid` chain: every image replayed into the
 * model (rrestore.c), one line (or JSON member) per image, the verdict on
 * the last image's digest, and one file per region with --out-dir.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "jsonw.h"
#include "progress.h" /* support/: pmt_bar_*() */
#include "rimage.h"
#include "rrrun.h"

#define CMD "restore"

/* the replay's outcome */
struct rr_out {
	uint32_t images; /* applied */
	uint64_t bytes;	 /* their size */
	bool has_digest; /* the last one's */
	bool verified;
	bool written;	   /* the files of --out-dir */
	const char *error; /* why it stopped, or NULL */
	struct json_object *chain;
	struct pmt_bar bar;
};

int rr_write_files(const char *out_dir, uint64_t pgsz,
		   const struct rr_region *r, size_t n)
{
	char name[40];
	int dfd, err = 0;

	if (mkdir(out_dir, 0755) && errno != EEXIST) {
		cli_err(CMD, "%s: %s", out_dir, strerror(errno));
		return CLI_ERROR;
	}
	dfd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		cli_err(CMD, "%s: %s", out_dir, strerror(errno));
		return CLI_ERROR;
	}
	for (size_t i = 0; i < n && !err; i++)
		err = rr_write_region(dfd, r[i].start, r[i].mem, r[i].len, pgsz,
				      name);
	if (!err && fsync(dfd))
		err = -errno;
	close(dfd);
	if (err)
		cli_err(CMD, "%s/%s: %s", out_dir, name, strerror(-err));
	return err ? CLI_ERROR : CLI_OK;
}

static void image_report(const struct rr_args *a, struct rr_out *o,
			 const struct rr_image *im)
{
	struct json_object *j;
	char b[CLI_IEC_LEN];

	if (a->quiet && !a->json)
		return;
	if (!a->json) {
		pmt_bar_clear(&o->bar);
		printf("image %" PRIu32 " (%06" PRIu32 ".pmts): %zu regions "
		       "(%zu fresh, %zu kept), %" PRIu64 " pages (%" PRIu64
		       " zero), %" PRIu64 " bytes (%s)\n",
		       im->index, im->index, im->regions, im->fresh, im->kept,
		       im->pages, im->zero_pages, im->bytes, iec(b, im->bytes));
		return;
	}
	j = jw_obj();
	jw_set(j, "image", jw_u64(im->index));
	jw_set(j, "regions", jw_u64(im->regions));
	jw_set(j, "fresh", jw_u64(im->fresh));
	jw_set(j, "kept", jw_u64(im->kept));
	jw_set(j, "pages", jw_u64(im->pages));
	jw_set(j, "zero_pages", jw_u64(im->zero_pages));
	jw_set(j, "bytes", jw_u64(im->bytes));
	jw_set(j, "has_digest", jw_bool(im->has_digest));
	jw_push(o->chain, j);
}

/* images 0..@upto; *@o says how far it went */
static void replay(const struct rr_args *a, struct rr *s, uint32_t upto,
		   struct rr_out *o)
{
	static char msg[600];
	struct rr_image im;

	for (uint32_t i = 0; i <= upto; i++) {
		int err = rr_apply(s, i, &im);

		if (err) {
			snprintf(msg, sizeof(msg),
				 "image %06" PRIu32 ".pmts: %s", i,
				 rr_error(s));
			o->error = msg;
			return;
		}
		o->images++;
		o->bytes += im.bytes;
		o->has_digest = im.has_digest;
		o->verified = im.verified;
		image_report(a, o, &im);
		pmt_bar_draw(&o->bar, false, i + 1, (uint64_t)upto + 1,
			     "image %" PRIu32 " of %" PRIu32 " applied", i,
			     upto);
	}
	pmt_bar_clear(&o->bar);
}

static const char *digest_word(const struct rr_out *o)
{
	if (o->error)
		return "not verified (failed)";
	if (o->verified)
		return "verified";
	return o->has_digest ? "not verified" : "not verified (no digest)";
}

/* the same as one word: "digest_status" */
static const char *digest_status(const struct rr_out *o)
{
	if (o->error)
		return "failed";
	if (o->verified)
		return "verified";
	return o->has_digest ? "unchecked" : "none";
}

static int report_json(const struct rr_args *a, struct rr *s, struct rr_out *o,
		       int ret)
{
	struct json_object *doc = jw_head(CMD, "result"), *regs = jw_arr();
	const struct rr_region *r;
	size_t n = 0;
	char name[40];

	r = o->error || !s ? NULL : rr_regions(s, &n);
	for (size_t i = 0; i < n; i++) {
		struct json_object *j = jw_obj();

		rr_file_name(name, r[i].start, r[i].start + r[i].len);
		jw_set(j, "start", jw_addr(r[i].start));
		jw_set(j, "end", jw_addr(r[i].start + r[i].len));
		jw_set(j, "name", jw_str(r[i].name));
		jw_set(j, "flags", jw_u64(r[i].flags));
		jw_set(j, "file", jw_str(name));
		jw_push(regs, j);
	}
	jw_outcome(doc, ret);
	jw_set(doc, "dir", jw_str(a->dir));
	jw_set(doc, "kind", jw_str("process"));
	jw_set(doc, "images", jw_u64(o->images));
	jw_set(doc, "image_bytes", jw_u64(o->bytes));
	jw_set(doc, "chain", o->chain);
	jw_set(doc, "regions", regs);
	jw_set(doc, "digest_status", jw_str(digest_status(o)));
	jw_set(doc, "digest_verified", jw_bool(!o->error && o->verified));
	jw_set(doc, "out_dir", jw_str(o->written ? a->out_dir : NULL));
	o->chain = NULL;
	return jw_print(CMD, stdout, doc);
}

static int report(const struct rr_args *a, struct rr *s, struct rr_out *o,
		  int ret)
{
	char b[CLI_IEC_LEN];
	uint64_t mem = 0;
	size_t n = 0;
	const struct rr_region *r = rr_regions(s, &n);

	if (a->json)
		return report_json(a, s, o, ret);
	printf("images: %" PRIu32, o->images);
	if (o->images)
		printf(" (000000.pmts to %06" PRIu32 ".pmts)", o->images - 1);
	printf(", %" PRIu64 " bytes (%s)\n", o->bytes, iec(b, o->bytes));
	for (size_t i = 0; i < n && !o->error; i++)
		mem += r[i].len;
	if (!o->error)
		printf("regions: %zu, %" PRIu64 " bytes (%s) of memory\n", n,
		       mem, iec(b, mem));
	printf("digest: %s\n", digest_word(o));
	if (o->written)
		printf("out-dir: %s, %zu files\n", a->out_dir, n);
	return CLI_OK;
}

/* the last image to apply, or -1 after a message */
static long last_image(const struct rr_args *a, int dfd)
{
	long last;
	int err = rimg_last(dfd, &last);

	if (err)
		cli_err(CMD, "%s: %s", a->dir, strerror(-err));
	else if (last < 0)
		cli_err(CMD, "%s: no checkpoint images", a->dir);
	else if (a->upto != UINT32_MAX && (long)a->upto > last)
		cli_err(CMD, "%s: no image %06" PRIu64 ".pmts", a->dir,
			a->upto);
	else
		return a->upto == UINT32_MAX ? last : (long)a->upto;
	return -1;
}

/* the exit code of a replay that went through; the files written */
static int verdict(const struct rr_args *a, struct rr *s, struct rr_out *o)
{
	size_t n;
	const struct rr_region *r = rr_regions(s, &n);
	int ret;

	if (!o->verified && !(a->allow_unverified && !o->has_digest)) {
		cli_err(CMD, "the memory is complete but its digest was not "
			     "verified: the last image carried none "
			     "(--allow-unverified accepts it)");
		return CLI_ERROR;
	}
	if (!a->out_dir)
		return CLI_OK;
	ret = rr_write_files(a->out_dir, rr_page_size(s), r, n);
	o->written = ret == CLI_OK;
	return ret;
}

int rr_run(const struct rr_args *a)
{
	struct rr_out o = { .chain = a->json ? jw_arr() : NULL };
	int dfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = CLI_ERROR;
	struct rr *s = NULL;
	long upto;

	pmt_bar_init(&o.bar, stderr, a->quiet);
	if (dfd < 0) {
		cli_err(CMD, "%s: %s", a->dir, strerror(errno));
		o.error = "cannot open";
		if (a->json)
			report_json(a, NULL, &o, CLI_ERROR);
		json_object_put(o.chain);
		return CLI_ERROR;
	}
	upto = last_image(a, dfd);
	if (upto >= 0 && rr_new(dfd, &s))
		cli_err(CMD, "%s", strerror(ENOMEM));
	if (s) {
		replay(a, s, (uint32_t)upto, &o);
		if (o.error)
			cli_err(CMD, "%s: %s", a->dir, o.error);
		ret = o.error ? CLI_ERROR : verdict(a, s, &o);
		if (report(a, s, &o, ret) || cli_flush(CMD, stdout))
			ret = CLI_ERROR;
	} else if (a->json) {
		o.error = "not replayed";
		report_json(a, NULL, &o, CLI_ERROR);
	}
	json_object_put(o.chain);
	rr_free(s);
	close(dfd);
	return ret;
}

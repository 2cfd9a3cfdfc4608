// SPDX-License-Identifier: MIT
/*
 * pmtrack restore: replay a checkpoint directory and verify it: a chain
 * of pmtrack dump (a synthetic workload, pmtrack_ckpt_restore()) or of
 * pmtrack dump --pid (another process, rrrun.c), told apart by the first
 * image's producer.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "cmdline.h"
#include "cli.h"
#include "jsonw.h"
#include "progress.h" /* support/: pmt_bar_*() */
#include "rrrun.h"
#include "rxreport.h"

static void restore_usage(FILE *f)
{
	fputs("usage: pmtrack restore DIR [--out-dir D] [--upto N] "
	      "[--allow-unverified]\n"
	      "                       [--quiet] [--json]\n"
	      "Replay the checkpoint images 0..N in DIR into memory, checking "
	      "every checksum,\n"
	      "the chain's links and the last image's digest.  The images of "
	      "pmtrack dump --pid\n"
	      "are replayed into a model of the process's address space (its "
	      "region tables\n"
	      "may differ from image to image).\n"
	      "  --out-dir D           write one file per region of the last "
	      "image into D\n"
	      "                        (created if missing), named START-END "
	      "in hex, holding\n"
	      "                        its bytes; zero pages are holes\n"
	      "  --upto N              the last image to apply; default the "
	      "newest\n"
	      "  --allow-unverified    accept a last image without a digest "
	      "(a live pre-dump)\n"
	      "  --quiet               no progress bar and no per-image "
	      "lines\n"
	      "  --json                JSON Lines on stdout: one result "
	      "object (see pmtrack(1),\n"
	      "                        JSON OUTPUT)\n"
	      "Pages are counted zero pages included; the zero pages are "
	      "also given apart.\n"
	      "Exit status: 0 if the chain applied and the digest verified, 1 "
	      "if not or on\n"
	      "errors, 2 for a bad command line.\n",
	      f);
}

struct restore_args {
	const char *dir, *out_dir;
	uint64_t upto;
	bool json, allow_unverified, quiet;
};

enum {
	OPT_UPTO = ARG_OPT,
	OPT_OUT_DIR,
	OPT_ALLOW_UNVERIFIED,
	OPT_QUIET,
	OPT_JSON,
};

static bool restore_opt(struct cmdline *p, int id, void *arg)
{
	struct restore_args *a = arg;

	switch (id) {
	case ARG_POS:
		return take_one(p, &a->dir, "DIR");
	case OPT_UPTO:
		return opt_u64(p, false, 0, 999999, &a->upto);
	case OPT_OUT_DIR:
		a->out_dir = p->val;
		break;
	case OPT_ALLOW_UNVERIFIED:
		a->allow_unverified = true;
		break;
	case OPT_QUIET:
		a->quiet = true;
		break;
	case OPT_JSON:
		a->json = true;
		break;
	}
	return true;
}

static bool restore_done(struct cmdline *p, void *arg)
{
	return ((struct restore_args *)arg)->dir || bad_usage(p, "no DIR");
}

static int restore_parse(struct restore_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "upto", required_argument, NULL, OPT_UPTO },
		{ "out-dir", required_argument, NULL, OPT_OUT_DIR },
		{ "allow-unverified", no_argument, NULL, OPT_ALLOW_UNVERIFIED },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "json", no_argument, NULL, OPT_JSON },
		ARG_HELP_OPTION,
		ARG_OPTIONS_END,
	};
	static const struct cmdline_spec spec = { .cmd = "restore",
						  .usage = restore_usage,
						  .opts = opts,
						  .take = restore_opt,
						  .done = restore_done };

	return parse_args(&spec, argc, argv, a);
}

/* the regions of a synthetic chain's receiver as files in @dir */
static int rx_write_files(struct pmtrack_rx *rx, const char *dir)
{
	size_t n = pmtrack_rx_nregions(rx);
	struct rr_region *r = calloc(n ? n : 1, sizeof(*r));
	struct pmtrack_rx_region x;
	int ret;

	if (!r) {
		cli_err("restore", "%s", strerror(ENOMEM));
		return CLI_ERROR;
	}
	for (size_t i = 0; i < n; i++) {
		pmtrack_rx_region(rx, i, &x);
		r[i] = (struct rr_region){ .start = x.start,
					   .len = x.len,
					   .mem = x.mem };
	}
	ret = rr_write_files(dir, pmtrack_rx_page_size(rx), r, n);
	free(r);
	return ret;
}

/* the progress bar over the images' bytes */
struct restore_bar {
	struct pmt_bar bar;
	uint64_t done, total;
};

/* the receiver's tee: every byte of the images, as they are applied */
static int restore_tee(void *arg, const struct iovec *iov, int iovcnt)
{
	struct restore_bar *b = arg;
	char t[CLI_IEC_LEN];

	for (int i = 0; i < iovcnt; i++)
		b->done += iov[i].iov_len;
	pmt_bar_draw(&b->bar, false, b->done, b->total, "applied %s",
		     iec(t, b->done));
	return 0;
}

/* the bytes of the images NNNNNN.pmts in @dir */
static uint64_t images_size(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat sb;
	uint64_t n = 0;
	size_t len;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		len = strlen(e->d_name);
		if (len == 11 && !strcmp(e->d_name + 6, ".pmts") &&
		    !fstatat(dirfd(d), e->d_name, &sb, 0))
			n += (uint64_t)sb.st_size;
	}
	closedir(d);
	return n;
}

int cmd_restore(int argc, char **argv)
{
	struct restore_args a = { .upto = UINT32_MAX };
	struct pmtrack_restore_info info = { .sz = sizeof(info) };
	struct pmtrack_rx *rx = NULL;
	struct rx_result res;
	struct restore_bar bar;
	char what[4096 + 32];
	FILE *out = stdout;
	int r, ret;

	r = restore_parse(&a, argc, argv);
	if (r >= 0)
		return r;
	if (rr_is_process_chain(a.dir)) {
		struct rr_args ra = { .dir = a.dir,
				      .out_dir = a.out_dir,
				      .upto = a.upto,
				      .json = a.json,
				      .allow_unverified = a.allow_unverified,
				      .quiet = a.quiet };

		return rr_run(&ra);
	}
	pmt_bar_init(&bar.bar, stderr, a.quiet);
	bar.done = 0;
	bar.total = bar.bar.on ? images_size(a.dir) : 0;
	{
		PMTRACK_OPTS(pmtrack_rx_opts, ro,
			     .tee = bar.bar.on ? restore_tee : NULL,
			     .tee_arg = &bar);

		r = pmtrack_rx_new(&ro, &rx);
	}
	if (r) {
		cli_err("restore", "%s", strerror(-r));
		if (a.json) {
			struct json_object *doc = jw_head("restore", "result");

			jw_outcome(doc, CLI_ERROR);
			jw_set(doc, "dir", jw_str(a.dir));
			jw_set(doc, "images", jw_u64(0));
			jw_set(doc, "image_bytes", jw_u64(0));
			rx_json_none(doc);
			jw_print("restore", out, doc);
		}
		return CLI_ERROR;
	}
	r = pmtrack_ckpt_restore(rx, a.dir, (uint32_t)a.upto, &info);
	pmt_bar_clear(&bar.bar);
	rx_result_get(rx, r, &res);
	if (r && res.st.state == PMTRACK_RX_COMPLETE) {
		/* the failing image wrote nothing: the memory is the last
		   good image, which is not what was asked for */
		snprintf(res.state, sizeof(res.state),
			 "complete up to image %06" PRIu32
			 ".pmts only (image %06" PRIu32
			 ".pmts was not applied)",
			 info.images - 1, info.images);
		res.unverified = "not verified (the restore failed)";
		res.status = "failed";
	}
	ret = rx_result_exit("restore", &res, a.allow_unverified);
	if (ret == CLI_OK && a.out_dir)
		ret = rx_write_files(rx, a.out_dir);
	if (r == -ENOENT && info.images) {
		/* a gap, or --upto past the newest image */
		cli_err("restore", "%s: no image %06" PRIu32 ".pmts", a.dir,
			info.images);
	} else if (r == -ENOENT) {
		cli_err("restore", "%s: no checkpoint images (%s)", a.dir,
			access(a.dir, F_OK) ? "no such directory"
					    : "no 000000.pmts");
	} else if (r) {
		snprintf(what, sizeof(what), "%s: image %06" PRIu32 ".pmts",
			 a.dir, info.images);
		rx_error_print("restore", what, &res);
	}
	if (a.json) {
		struct json_object *doc = jw_head("restore", "result");

		jw_outcome(doc, ret);
		jw_set(doc, "dir", jw_str(a.dir));
		jw_set(doc, "images", jw_u64(info.images));
		jw_set(doc, "image_bytes", jw_u64(info.bytes));
		rx_json(doc, rx, &res);
		if (jw_print("restore", out, doc))
			ret = CLI_ERROR;
	} else {
		fprintf(out, "images: %" PRIu32, info.images);
		if (info.images)
			fprintf(out, " (%06u.pmts to %06" PRIu32 ".pmts)", 0u,
				info.images - 1);
		fputc('\n', out);
		print_rx_text(out, rx, &res);
	}
	if (cli_flush("restore", out))
		ret = CLI_ERROR;
	pmtrack_rx_free(rx);
	return ret;
}

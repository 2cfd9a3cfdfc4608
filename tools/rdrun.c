// SPDX-License-Identifier: MIT
/*
 * pmtrack dump --pid: the images of another process (rdump.c), one line
 * (or JSON object) per image, the final image's downtime, and what the
 * errors mean.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bits.h"
#include "cli.h"
#include "jsonw.h"
#include "progress.h" /* support/: pmt_bar_*() */
#include "rdrun.h"
#include "rdump.h"
#include "rimage.h"

#define CMD "dump"

/* the final image's downtime, from the freeze to the thaw (or the exit) */
struct rd_down {
	const char *backend;
	uint64_t frozen_at, total, collect, pages, digest;
	int *pids; /* left stopped, with --leave-stopped */
	size_t npids;
	uint64_t images; /* written */
	bool has_digest; /* the last one written carries the digest */
};

/* how far the images got: the bar, the bytes written, since when */
struct rd_prog {
	struct pmt_bar bar;
	uint64_t t0, written;
};

static void rd_sleep_ms(uint64_t v)
{
	struct timespec ts = { .tv_sec = (time_t)(v / 1000),
			       .tv_nsec = (long)(v % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* what an error of the library's means for process @pid; @when: NULL at
   the start, else the step */
static void rd_error(const struct rd_args *a, const char *when, int err)
{
	char pre[64] = "";
	int pid = (int)a->pid;

	if (when)
		snprintf(pre, sizeof(pre), "%s: ", when);
	if (err == -ESRCH && !when)
		cli_err(CMD, "no process %d (or it is a zombie)", pid);
	else if (err == -ESRCH)
		cli_err(CMD, "%sprocess %d exited", pre, pid);
	else if (err == -EPERM || err == -EACCES)
		cli_err(CMD,
			"%sno ptrace permission on process %d (%s): run as "
			"root (CAP_SYS_PTRACE), or as its user with "
			"kernel.yama.ptrace_scope 0",
			pre, pid, strerror(-err));
	else if (err == -EOPNOTSUPP)
		cli_err(CMD, "%sno backend can track another process here",
			pre);
	else if (err == -EFAULT)
		cli_err(CMD,
			"%sa page of the frozen process %d could not be "
			"read",
			pre, pid);
	else if (err == -EINVAL && !when)
		cli_err(CMD, "cannot dump process %d (this one?)", pid);
	else
		cli_err(CMD, "%s%s", pre, strerror(-err));
}

/* the pages @r sends that were swapped out */
static uint64_t swapped_sent(const struct rd_region *r)
{
	uint64_t c = 0;

	for (size_t k = 0; k < bits_words(r->pages); k++)
		c += (uint64_t)__builtin_popcountll(r->dirty[k] &
						    r->swapped[k]);
	return c;
}

static uint64_t swapped_total(const struct rd_table *t)
{
	uint64_t c = 0;

	for (size_t i = 0; i < t->n; i++)
		c += swapped_sent(&t->r[i]);
	return c;
}

/* the region table of an image, as a JSON array */
static struct json_object *table_json(const struct rd_table *t)
{
	struct json_object *arr = jw_arr();

	for (size_t i = 0; i < t->n; i++) {
		const struct rd_region *r = &t->r[i];
		struct json_object *o = jw_obj();

		jw_set(o, "id", jw_u64(i));
		jw_set(o, "start", jw_addr(r->m.start));
		jw_set(o, "end", jw_addr(r->m.end));
		jw_set(o, "name", jw_str(r->m.name));
		jw_set(o, "flags", jw_u64(r->m.flags));
		jw_set(o, "fresh", jw_bool(r->fresh));
		jw_set(o, "pages", jw_u64(bits_count(r->dirty, r->pages)));
		jw_set(o, "swapped_pages", jw_u64(swapped_sent(r)));
		jw_push(arr, o);
	}
	return arr;
}

static int image_json(const struct rd_info *in, const struct rd_prog *pg)
{
	struct json_object *o = jw_head(CMD, "status");
	char name[16];

	rimg_name(name, in->index);
	jw_set(o, "index", jw_u64(in->index));
	jw_set(o, "file", jw_str(name));
	jw_set(o, "frozen", jw_bool(in->frozen));
	jw_set(o, "regions", jw_u64(in->regions));
	jw_set(o, "fresh", jw_u64(in->fresh));
	jw_set(o, "pages", jw_u64(in->pages));
	jw_set(o, "zero_pages", jw_u64(in->zero_pages));
	jw_set(o, "swapped_pages", jw_u64(swapped_total(in->table)));
	jw_set(o, "bytes", jw_u64(in->bytes));
	jw_set(o, "dropped_pages", jw_u64(in->dropped));
	jw_set(o, "has_digest", jw_bool(in->has_digest));
	jw_set(o, "duration_ms", jw_ms(in->ns));
	jw_set(o, "collect_ms", jw_fixed(ms(in->collect_ns), 3));
	jw_set(o, "pages_ms", jw_fixed(ms(in->pages_ns), 3));
	jw_set(o, "digest_ms", jw_fixed(ms(in->digest_ns), 3));
	jw_set(o, "written_bytes", jw_u64(pg->written));
	jw_set(o, "total_ms", jw_ms(rd_now_ns() - pg->t0));
	jw_set(o, "table", table_json(in->table));
	return jw_print(CMD, stdout, o);
}

static int image_report(const struct rd_args *a, const struct rd_info *in,
			struct rd_prog *pg)
{
	char b[CLI_IEC_LEN], t[CLI_IEC_LEN];

	pmt_bar_clear(&pg->bar);
	if (a->quiet)
		return 0; /* the result alone, in text or JSON */
	if (a->json)
		return image_json(in, pg);
	printf("image %" PRIu32 " (%06" PRIu32 ".pmts) %s: %zu regions "
	       "(%zu fresh), %" PRIu64 " pages (%" PRIu64 " zero), %" PRIu64
	       " bytes (%s), %s",
	       in->index, in->index, in->frozen ? "frozen" : "live",
	       in->regions, in->fresh, in->pages, in->zero_pages, in->bytes,
	       iec(b, in->bytes), dur(t, in->ns));
	if (swapped_total(in->table))
		printf(", %" PRIu64 " of them were swapped out",
		       swapped_total(in->table));
	if (in->dropped)
		printf(", %" PRIu64 " pages unmapped meanwhile (next image)",
		       in->dropped);
	putchar('\n');
	return cli_flush(CMD, stdout);
}

static int summary_json(const struct rd_args *a, uint64_t bytes,
			const struct rd_down *dn, int ret)
{
	struct json_object *o = jw_head(CMD, "result"), *parts = jw_obj(),
			   *pids = jw_arr();
	bool down = dn->frozen_at && dn->total;

	for (size_t i = 0; i < dn->npids; i++)
		jw_push(pids, jw_i64(dn->pids[i]));
	jw_outcome(o, ret);
	jw_set(o, "pid", jw_u64(a->pid));
	jw_set(o, "dir", jw_str(a->dir));
	jw_set(o, "backend", jw_str(dn->backend));
	jw_set(o, "images", jw_u64(dn->images));
	jw_set(o, "written_bytes", jw_u64(bytes));
	jw_set(o, "has_digest", jw_bool(dn->has_digest));
	/* null until the processes were frozen and let go */
	jw_set(o, "downtime_ms", down ? jw_fixed(ms(dn->total), 3) : NULL);
	jw_set(parts, "collect_ms", down ? jw_fixed(ms(dn->collect), 3) : NULL);
	jw_set(parts, "pages_ms", down ? jw_fixed(ms(dn->pages), 3) : NULL);
	jw_set(parts, "digest_ms", down ? jw_fixed(ms(dn->digest), 3) : NULL);
	jw_set(o, "downtime", parts);
	jw_set(o, "left_stopped", jw_bool(a->leave_stopped));
	jw_set(o, "stopped_pids", pids);
	return jw_print(CMD, stdout, o);
}

static int summary(const struct rd_args *a, uint64_t bytes,
		   const struct rd_down *dn)
{
	char b[CLI_IEC_LEN], t[4][CLI_IEC_LEN];

	if (a->json)
		return summary_json(a, bytes, dn, CLI_OK);
	printf("images: %" PRIu64 " in %s, %" PRIu64 " bytes (%s), "
	       "backend %s\n",
	       dn->images, a->dir, bytes, iec(b, bytes), dn->backend);
	printf("downtime: %s (collect %s, pages %s, digest %s)%s\n",
	       dur(t[0], dn->total), dur(t[1], dn->collect),
	       dur(t[2], dn->pages), dur(t[3], dn->digest),
	       a->leave_stopped ? ", until pmtrack exited" : "");
	for (size_t i = 0; i < dn->npids; i++)
		printf("left stopped: process %d (kill -CONT %d resumes it)\n",
		       dn->pids[i], dn->pids[i]);
	return cli_flush(CMD, stdout);
}

/* the images, the last one frozen; its downtime's parts into @dn */
static int images(const struct rd_args *a, struct rdump *d, int dfd,
		  uint64_t *bytes, struct rd_down *dn)
{
	struct rd_prog pg = { .t0 = rd_now_ns() };
	struct rd_info in;
	char when[48], b[CLI_IEC_LEN];
	int err;

	pmt_bar_init(&pg.bar, stderr, a->quiet);
	for (uint64_t i = 0; i < a->dumps; i++) {
		bool final = i + 1 == a->dumps;

		pmt_bar_draw(&pg.bar, true, i, a->dumps,
			     "image %" PRIu64 " of %" PRIu64 ", written %s", i,
			     a->dumps, iec(b, pg.written));
		if (i)
			rd_sleep_ms(a->interval_ms);
		err = rd_image(d, dfd, final, &in);
		if (err) {
			pmt_bar_clear(&pg.bar);
			snprintf(when, sizeof(when), "image %" PRIu64 " (%s)",
				 i, in.step ? in.step : "start");
			rd_error(a, when, err);
			return CLI_ERROR;
		}
		*bytes += in.bytes;
		pg.written = *bytes;
		dn->images++;
		dn->has_digest = in.has_digest;
		dn->frozen_at = in.frozen_at;
		dn->collect = in.collect_ns;
		dn->pages = in.pages_ns;
		dn->digest = in.digest_ns;
		if (image_report(a, &in, &pg))
			return CLI_ERROR;
	}
	return CLI_OK;
}

/* Is process @pid stopped (state T)? */
static bool is_stopped(int pid)
{
	char path[32], buf[512], *p;
	FILE *f;
	bool ret = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		ret = p[1] == ' ' && p[2] == 'T';
	if (f)
		fclose(f);
	return ret;
}

/* thaw, or SIGSTOP every process and free the handle (which detaches):
   they stay stopped.  The downtime ends here. */
static int release(const struct rd_args *a, struct rdump **d,
		   struct rd_down *dn)
{
	int err = 0;

	if (!a->leave_stopped) {
		err = rd_thaw(*d);
		dn->total = rd_now_ns() - dn->frozen_at;
		if (err)
			rd_error(a, "thaw", err);
		return err ? CLI_ERROR : CLI_OK;
	}
	err = rd_stop_all(*d, &dn->pids, &dn->npids);
	rd_free(*d);
	*d = NULL;
	dn->total = rd_now_ns() - dn->frozen_at;
	for (size_t i = 0; !err && i < dn->npids; i++) {
		/* a stop the detach ate: stop it again */
		for (int k = 0; k < 100 && !is_stopped(dn->pids[i]); k++)
			usleep(1000);
		if (!is_stopped(dn->pids[i]) && kill(dn->pids[i], SIGSTOP))
			err = -errno;
	}
	if (err)
		rd_error(a, "leaving it stopped", err);
	return err ? CLI_ERROR : CLI_OK;
}

int rd_run(const struct rd_args *a)
{
	struct rd_opts o = { .pid = (int)a->pid,
			     .children = a->children,
			     .digest = !a->no_digest,
			     .level = a->level };
	struct rd_down dn = { 0 };
	struct rdump *d = NULL;
	uint64_t bytes = 0;
	int ret, err, dfd = -1;

	err = rd_new(&o, &d);
	if (err) {
		rd_error(a, NULL, err);
		if (a->json)
			summary_json(a, 0, &dn, CLI_ERROR);
		return CLI_ERROR;
	}
	dn.backend = pmtrack_backend_name(rd_backend(d));
	dfd = rimg_dir_open(a->dir);
	if (dfd < 0)
		cli_err(CMD, "%s: %s", a->dir,
			dfd == -EEXIST ? "already holds checkpoint images"
				       : strerror(-dfd));
	ret = dfd < 0 ? CLI_ERROR : images(a, d, dfd, &bytes, &dn);
	if (ret == CLI_OK)
		ret = release(a, &d, &dn);
	if (ret == CLI_OK)
		ret = summary(a, bytes, &dn);
	else if (a->json)
		summary_json(a, bytes, &dn, ret);
	rd_free(d);
	free(dn.pids);
	if (dfd >= 0)
		close(dfd);
	return ret;
}

// SPDX-License-Identifier: MIT
/*
 * The remote dump engine (rdump.h).  Each image: collect what the process
 * wrote (pmtrack_proc_collect, reset), read its writable mappings and the
 * pages of each that exist (rdtable.c), copy the pages to send into a
 * staging copy of each region (process_vm_readv, never a page that does
 * not exist: reading a shared-memory hole would allocate a page in the
 * target; a file mapping's pages that are in its file only are read from
 * the file), and encode them in rounds of at most RD_ROUND_PAGES copied
 * pages, the staging dropped after each round (but in the final image,
 * whose digest needs every page).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/process.h>
#include <pmtrack/stream.h>

#include "bits.h"
#include "rdump.h"
#include "rimage.h"

/* the most pages copied for one round: 64 MiB of 4 KiB pages */
#define RD_ROUND_PAGES 16384u
#define RD_IOV IOV_MAX

struct rdump {
	int pid;
	bool digest;
	int level;
	uint64_t pgsz;
	struct pmtrack_proc *proc;
	struct pmtrack_pstate *ps; /* on the current program of pid */
	struct rd_table prev;	   /* the last image's table */
	uint32_t next;		   /* the next image's index */
	uint8_t last_id[PMTRACK_STREAM_ID_LEN];
};

uint64_t rd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* a page-state handle on the program pid runs now */
static int reopen(struct rdump *d)
{
	PMTRACK_OPTS(pmtrack_pstate_opts, so, .pid = d->pid);

	pmtrack_pstate_free(d->ps);
	d->ps = NULL;
	return pmtrack_pstate_new(&so, &d->ps);
}

int rd_new(const struct rd_opts *o, struct rdump **out)
{
	PMTRACK_OPTS(pmtrack_proc_opts, po,
		     .flags = o->children ? PMTRACK_PROC_CHILDREN : 0u);
	struct rdump *d = calloc(1, sizeof(*d));
	int err;

	if (!d)
		return -ENOMEM;
	d->pid = o->pid;
	d->digest = o->digest;
	d->level = o->level;
	d->pgsz = (uint64_t)sysconf(_SC_PAGESIZE);
	err = pmtrack_proc_new(o->pid, &po, &d->proc);
	if (!err)
		err = reopen(d);
	if (err) {
		rd_free(d);
		return err;
	}
	*out = d;
	return 0;
}

void rd_free(struct rdump *d)
{
	if (!d)
		return;
	pmtrack_proc_free(d->proc);
	pmtrack_pstate_free(d->ps);
	rd_table_free(&d->prev);
	free(d);
}

int rd_thaw(struct rdump *d)
{
	return pmtrack_proc_thaw(d->proc);
}

enum pmtrack_backend rd_backend(const struct rdump *d)
{
	return pmtrack_proc_backend(d->proc);
}

int rd_stop_all(struct rdump *d, int **pids, size_t *n)
{
	size_t cap = 16;
	int err;

	*pids = NULL;
	do {
		int *p = realloc(*pids, cap * sizeof(int));

		if (!p)
			return -ENOMEM;
		*pids = p;
		*n = cap;
		err = pmtrack_proc_pids(d->proc, p, n);
		cap = *n;
	} while (err == -ENOSPC);
	for (size_t i = 0; i < *n && !err; i++)
		if (kill((*pids)[i], SIGSTOP) && errno != ESRCH)
			err = -errno;
	return err;
}

/* ---- reading the target's pages ----------------------------------------- */

/* pages of one region being copied into its staging */
struct rd_reader {
	struct rdump *d;
	struct rd_region *r;
	uint64_t *want; /* the pages asked for; unreadable ones are cleared */
	bool final;	/* an unreadable page is an error */
	uint64_t *dropped;
	int n;
	struct iovec loc[RD_IOV], rem[RD_IOV];
};

/* @len bytes at @addr of @pid through /proc/PID/mem (which also reads
   what process_vm_readv will not, a write-only mapping) */
static int mem_read(int pid, void *buf, size_t len, uint64_t addr)
{
	char path[32];
	ssize_t got;
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	got = pread(fd, buf, len, (off_t)addr);
	err = got == (ssize_t)len ? 0 : got < 0 ? -errno : -EIO;
	close(fd);
	return err;
}

/* skip @got bytes of the iovecs from @i on: the first one not done */
static int advance(struct rd_reader *rd, int i, size_t got)
{
	while (i < rd->n && got >= rd->rem[i].iov_len)
		got -= rd->rem[i++].iov_len;
	if (i < rd->n && got) {
		rd->loc[i].iov_base = (char *)rd->loc[i].iov_base + got;
		rd->rem[i].iov_base = (char *)rd->rem[i].iov_base + got;
		rd->loc[i].iov_len -= got;
		rd->rem[i].iov_len -= got;
	}
	return i;
}

/*
 * process_vm_readv stopped at the page rem[*@i] starts with: read it
 * again alone, or give it up (a live image drops it and sends it with the
 * next; it was being unmapped).
 */
static int one_page(struct rd_reader *rd, int *i)
{
	uint64_t pgsz = rd->d->pgsz;
	uint64_t addr = (uint64_t)(uintptr_t)rd->rem[*i].iov_base;
	uint64_t pg = (addr - rd->r->m.start) / pgsz;
	int err = mem_read(rd->d->pid, rd->loc[*i].iov_base, pgsz, addr);

	if (err == -ESRCH || (err && rd->final))
		return err == -ESRCH ? err : -EFAULT;
	if (err) {
		bit_clear(rd->want, pg);
		bit_clear(rd->r->dirty, pg);
		bit_set(rd->r->retry, pg);
		(*rd->dropped)++;
	}
	*i = advance(rd, *i, pgsz);
	return 0;
}

static int flush(struct rd_reader *rd)
{
	int i = 0, err = 0;

	while (!err && i < rd->n) {
		ssize_t got = process_vm_readv(
			rd->d->pid, rd->loc + i, (unsigned long)(rd->n - i),
			rd->rem + i, (unsigned long)(rd->n - i), 0);

		if (got < 0 && errno != EFAULT)
			return -errno;
		i = advance(rd, i, got < 0 ? 0 : (size_t)got);
		if (i < rd->n)
			err = one_page(rd, &i);
	}
	rd->n = 0;
	return err;
}

/* @len bytes at @off of @fd (a file, or /proc/PID/mem) into @buf; what
   is not there stays zero: past the end of the file, or a page that
   cannot be read (SIGBUS territory) */
static int pread_all(int fd, char *buf, uint64_t len, uint64_t off,
		     uint64_t pgsz)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EIO)
			return -errno;
		if (!n)
			return 0;
		if (n < 0)
			n = (ssize_t)pgsz;
		buf += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/*
 * The pages of @want that a file mapping holds in its file only: read
 * from the file through /proc/PID/map_files, which allocates nothing
 * (needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), else through
 * /proc/PID/mem.
 */
static int read_file_pages(struct rdump *d, struct rd_region *r,
			   const uint64_t *want)
{
	uint64_t i = 0, e, n = r->pages, pg = d->pgsz, base = r->m.offset;
	char path[80];
	int fd, err = 0;

	if (!r->file || bits_next2(want, r->file, 0, n, true) == n)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
		 d->pid, r->m.start, r->m.end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/mem", d->pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		base = r->m.start;
	}
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	while (!err && (i = bits_next2(want, r->file, i, n, true)) < n) {
		e = bits_next2(want, r->file, i, n, false);
		err = pread_all(fd, (char *)r->stage + i * pg, (e - i) * pg,
				base + i * pg, pg);
		i = e;
	}
	close(fd);
	return err;
}

/* copy the pages of @want that exist (or are in the file) into @r's
   staging */
static int read_pages(struct rdump *d, struct rd_region *r, uint64_t *want,
		      bool final, uint64_t *dropped)
{
	struct rd_reader rd = {
		.d = d, .r = r, .want = want, .final = final, .dropped = dropped
	};
	uint64_t i = 0, e, n = r->pages;
	int err = 0;

	while (!err && (i = bits_next2(want, r->exist, i, n, true)) < n) {
		uint64_t off, len;

		e = bits_next2(want, r->exist, i, n, false);
		off = i * d->pgsz;
		len = (e - i) * d->pgsz;
		rd.loc[rd.n] = (struct iovec){ (char *)r->stage + off, len };
		rd.rem[rd.n] =
			(struct iovec){ (void *)(uintptr_t)(r->m.start + off),
					len };
		if (++rd.n == RD_IOV)
			err = flush(&rd);
		i = e;
	}
	if (!err && rd.n)
		err = flush(&rd);
	return err ? err : read_file_pages(d, r, want);
}

/* ---- writing an image ---------------------------------------------------- */

/* where the rounds are in the table: region i, from page pg */
struct rd_pos {
	size_t i;
	uint64_t pg;
};

/* The end of the slice of @r's dirty pages from @pg that holds at most
   @budget of them (*@budget is decreased by their number). */
static uint64_t slice_end(const struct rd_region *r, uint64_t pg,
			  uint64_t *budget)
{
	uint64_t i = pg;

	while (*budget && (i = bits_next(r->dirty, i, r->pages)) < r->pages) {
		(*budget)--;
		i++;
	}
	return bits_next(r->dirty, i, r->pages) == r->pages ? r->pages : i;
}

/* The next round's regions into @rr[*@k], their pages copied. */
static int fill_round(struct rdump *d, struct rd_table *t, struct rd_pos *p,
		      struct pmtrack_enc_region_round *rr, size_t *k,
		      bool final, uint64_t *dropped)
{
	uint64_t budget = RD_ROUND_PAGES;
	int err = 0;

	while (!err && budget && p->i < t->n) {
		struct rd_region *r = &t->r[p->i];
		uint64_t to = slice_end(r, p->pg, &budget);

		if (bits_next(r->dirty, p->pg, to) < to) {
			memset(r->sub, 0, bits_words(r->pages) * 8);
			bits_or_from(r->sub, p->pg, r->dirty, p->pg, r->pages,
				     to - p->pg);
			err = read_pages(d, r, r->sub, final, dropped);
			rr[(*k)++] = (struct pmtrack_enc_region_round){
				.region = (uint32_t)p->i,
				.dirty = r->sub,
				.mem = r->stage
			};
		}
		p->pg = to == r->pages ? 0 : to;
		p->i += to == r->pages;
	}
	return err;
}

static int send_rounds(struct rdump *d, struct rd_table *t, struct rimg *im,
		       bool final, uint64_t *dropped)
{
	struct pmtrack_enc_region_round *rr = calloc(t->n, sizeof(*rr));
	struct rd_pos pos = { 0 };
	uint64_t round = 0;
	int err = rr ? 0 : -ENOMEM;

	while (!err && (pos.i < t->n || !round)) {
		size_t k = 0;

		err = fill_round(d, t, &pos, rr, &k, final, dropped);
		if (!err)
			err = pmtrack_enc_round(im->enc, round++, rr, k);
		for (size_t j = 0; j < k && !final; j++) {
			struct rd_region *r = &t->r[rr[j].region];

			madvise(r->stage, r->m.end - r->m.start, MADV_DONTNEED);
		}
	}
	free(rr);
	return err;
}

/*
 * The END digest: every region in table order, its pages that exist as
 * the frozen process holds them, zeros for the others (never read).  The
 * pages the image copied are in the staging still; the others are read
 * now.
 */
static int digest(struct rdump *d, struct rd_table *t,
		  uint8_t out[PMTRACK_DIGEST_LEN])
{
	struct iovec *iov = calloc(t->n, sizeof(*iov));
	uint64_t none = 0;
	int err = iov ? 0 : -ENOMEM;

	for (size_t i = 0; i < t->n && !err; i++) {
		struct rd_region *r = &t->r[i];

		for (size_t k = 0; k < bits_words(r->pages); k++)
			r->sub[k] = (r->exist[k] | (r->file ? r->file[k] : 0)) &
				    ~r->dirty[k];
		err = read_pages(d, r, r->sub, true, &none);
		iov[i] = (struct iovec){ r->stage, r->m.end - r->m.start };
	}
	if (!err)
		err = pmtrack_digest(iov, t->n, out);
	free(iov);
	return err;
}

static int stage_map(struct rd_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		void *p = mmap(NULL, t->r[i].m.end - t->r[i].m.start,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			       0);

		if (p == MAP_FAILED)
			return -errno;
		t->r[i].stage = p;
	}
	return 0;
}

static void stage_unmap(struct rd_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->r[i].stage)
			munmap(t->r[i].stage, t->r[i].m.end - t->r[i].m.start);
		t->r[i].stage = NULL;
	}
}

/* the stream's region table of @t: id = index, flags, name */
static struct pmtrack_stream_region *stream_table(const struct rd_table *t,
						  size_t *fresh)
{
	struct pmtrack_stream_region *sr = calloc(t->n, sizeof(*sr));

	*fresh = 0;
	for (size_t i = 0; sr && i < t->n; i++) {
		const struct rd_region *r = &t->r[i];

		sr[i] = (struct pmtrack_stream_region){
			.id = (uint32_t)i,
			.flags = r->m.flags << RD_MAP_SHIFT |
				 (r->fresh ? RD_FRESH : 0u),
			.start = r->m.start,
			.length = r->m.end - r->m.start,
			.name = r->m.name
		};
		*fresh += r->fresh;
	}
	return sr;
}

/* the pages and the digest of image d->next, into @im */
static int image_body(struct rdump *d, struct rd_table *t, struct rimg *im,
		      bool final, struct rd_info *info,
		      struct pmtrack_enc_stats *es)
{
	uint8_t dg[PMTRACK_DIGEST_LEN];
	uint64_t t0 = rd_now_ns();
	int err;

	err = send_rounds(d, t, im, final, &info->dropped);
	info->pages_ns = rd_now_ns() - t0;
	info->has_digest = final && d->digest;
	if (!err && info->has_digest) {
		t0 = rd_now_ns();
		err = digest(d, t, dg);
		info->digest_ns = rd_now_ns() - t0;
	}
	if (err) {
		rimg_abort(im);
		return err;
	}
	return rimg_end(im, info->has_digest ? dg : NULL, es);
}

static int write_image(struct rdump *d, int dfd, struct rd_table *t, bool final,
		       struct rd_info *info)
{
	PMTRACK_OPTS(pmtrack_enc_stats, es);
	struct pmtrack_stream_region *sr = stream_table(t, &info->fresh);
	struct rimg im;
	int err = sr ? stage_map(t) : -ENOMEM;

	if (!err)
		err = rimg_begin(&im, dfd, d->next, d->next ? d->last_id : NULL,
				 d->level, sr, t->n);
	free(sr);
	if (!err)
		err = image_body(d, t, &im, final, info, &es);
	stage_unmap(t);
	info->regions = t->n;
	info->pages = es.pages + es.zero_pages;
	info->zero_pages = es.zero_pages;
	info->bytes = es.wire_bytes;
	if (!err)
		memcpy(d->last_id, im.id, sizeof(d->last_id));
	return err;
}

/* the table of image d->next, after collect @c */
static int table_now(struct rdump *d, struct rd_collect *c, struct rd_table *t)
{
	bool fresh = c->exec || !d->next;
	int err = c->exec ? reopen(d) : 0;

	if (!err)
		err = rd_table_read(d->ps, d->pgsz, t);
	if (err == -ESRCH) {
		/* it exec'd since the collect (or is gone) */
		fresh = true;
		err = reopen(d);
		if (!err)
			err = rd_table_read(d->ps, d->pgsz, t);
	}
	if (!err)
		rd_table_mark(t, fresh ? NULL : &d->prev, c, d->pgsz);
	return err;
}

int rd_image(struct rdump *d, int dfd, bool final, struct rd_info *info)
{
	struct rd_collect c = { .root = d->pid };
	struct rd_table t = { 0 };
	uint64_t t0 = rd_now_ns();
	int err = 0;

	memset(info, 0, sizeof(*info));
	info->index = d->next;
	info->frozen = final;
	if (d->next >= RD_MAX_IMAGES)
		return -EOVERFLOW;
	if (final) {
		err = pmtrack_proc_freeze(d->proc);
		info->frozen_at = t0;
	}
	if (!err)
		err = pmtrack_proc_collect(d->proc, PMTRACK_COLLECT_RESET,
					   rd_collect_fn, &c);
	if (!err)
		err = table_now(d, &c, &t);
	rd_collect_free(&c);
	info->collect_ns = rd_now_ns() - t0;
	if (!err)
		err = write_image(d, dfd, &t, final, info);
	if (err) {
		rd_table_free(&t);
		return err;
	}
	rd_table_free(&d->prev);
	d->prev = t;
	d->next++;
	info->table = &d->prev;
	info->ns = rd_now_ns() - t0;
	return 0;
}

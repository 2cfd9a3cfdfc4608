// SPDX-License-Identifier: MIT
/*
 * The replay of a `pmtrack dump --pid` chain (rrestore.h).  The image
 * tables may differ: for each image, each region gets a buffer holding
 * the previous model's bytes over its addresses (the buffer itself when
 * the region is unchanged), or zeros when the image marks it RD_FRESH; the
 * decoder writes the image's pages into those buffers and, at END, checks
 * the digest against all of them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pmtrack/stream.h>

#include "rimage.h"
#include "rrestore.h"

struct rr_model {
	struct rr_region *r;
	size_t n;
};

struct rr {
	int dfd;
	struct rr_model prev; /* the last image applied */
	struct rr_model cur;  /* the image being applied */
	uint32_t index;	      /* its number */
	uint32_t page_size;
	uint8_t last_id[PMTRACK_STREAM_ID_LEN]; /* the last image applied */
	uint8_t cur_id[PMTRACK_STREAM_ID_LEN];	/* the one being applied */
	struct rr_image *im;
	char msg[512]; /* why the last apply failed */
};

static void model_free(struct rr_model *m)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->r[i].mem)
			munmap(m->r[i].mem, m->r[i].len);
		free(m->r[i].name);
	}
	free(m->r);
	m->r = NULL;
	m->n = 0;
}

int rr_new(int dfd, struct rr **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->dfd = dfd;
	return 0;
}

void rr_free(struct rr *s)
{
	if (!s)
		return;
	model_free(&s->prev);
	model_free(&s->cur);
	free(s);
}

const char *rr_error(const struct rr *s)
{
	return s->msg;
}

const struct rr_region *rr_regions(const struct rr *s, size_t *n)
{
	*n = s->prev.n;
	return s->prev.r;
}

uint32_t rr_page_size(const struct rr *s)
{
	return s->page_size;
}

/* -EBADMSG after the message */
__attribute__((format(printf, 2, 3))) static int refuse(struct rr *s,
							const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* Is image s->index's header the next link of the chain? */
static int check_header(struct rr *s, const struct pmtrack_dec_header *h)
{
	const struct pmtrack_stream_region *r = h->regions;

	if (!h->producer || strcmp(h->producer, RD_PRODUCER))
		return refuse(s, "not written by %s", RD_PRODUCER);
	if (!s->index && h->parent_id)
		return refuse(s, "image 0 has a parent: the chain's start "
				 "is missing");
	if (s->index && (!h->parent_id || memcmp(h->parent_id, s->last_id,
						 PMTRACK_STREAM_ID_LEN)))
		return refuse(s,
			      "broken chain: its parent is not image "
			      "%06" PRIu32 ".pmts",
			      s->index - 1);
	if (s->index && h->page_size != s->page_size)
		return refuse(
			s, "page size %" PRIu32 ", not %" PRIu32 " as before",
			h->page_size, s->page_size);
	for (size_t i = 1; i < h->nregions; i++)
		if (r[i].start < r[i - 1].start + r[i - 1].length)
			return refuse(s,
				      "regions %zu and %zu overlap or are "
				      "out of order",
				      i - 1, i);
	return 0;
}

static bool page_zero(const unsigned char *p, size_t len)
{
	return !p[0] && !memcmp(p, p + 1, len - 1);
}

/* @r's bytes over the addresses of the previous model's regions from @j
   on (pages that are zero there are zero here already) */
static void copy_prev(struct rr *s, size_t j, struct rr_region *r)
{
	const struct rr_model *p = &s->prev;
	uint64_t pg = s->page_size;

	for (; j < p->n && p->r[j].start < r->start + r->len; j++) {
		const struct rr_region *q = &p->r[j];
		uint64_t a = q->start > r->start ? q->start : r->start;
		uint64_t b = q->start + q->len < r->start + r->len
				     ? q->start + q->len
				     : r->start + r->len;

		for (; a < b; a += pg) {
			const unsigned char *src =
				(unsigned char *)q->mem + (a - q->start);

			if (!page_zero(src, pg))
				memcpy((char *)r->mem + (a - r->start), src,
				       pg);
		}
	}
}

/* region @r of the new model: the previous one's buffer if unchanged,
   else a new one holding its bytes (or zeros, RD_FRESH) */
static int region_make(struct rr *s, size_t *j, struct rr_region *r)
{
	struct rr_model *p = &s->prev;
	bool fresh = r->flags & RD_FRESH;

	while (*j < p->n && p->r[*j].start + p->r[*j].len <= r->start)
		(*j)++;
	if (!fresh && *j < p->n && p->r[*j].start == r->start &&
	    p->r[*j].len == r->len) {
		r->mem = p->r[*j].mem;
		p->r[*j].mem = NULL;
		s->im->kept++;
		return 0;
	}
	r->mem = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->mem == MAP_FAILED) {
		r->mem = NULL;
		return -errno;
	}
	s->im->fresh += fresh;
	if (!fresh)
		copy_prev(s, *j, r);
	return 0;
}

static int on_header(void *arg, struct pmtrack_dec *dec,
		     const struct pmtrack_dec_header *h)
{
	struct rr *s = arg;
	size_t j = 0;
	int err = check_header(s, h);

	if (err)
		return err;
	s->page_size = h->page_size;
	memcpy(s->cur_id, h->stream_id, sizeof(s->cur_id));
	s->cur.r = calloc(h->nregions, sizeof(*s->cur.r));
	if (!s->cur.r)
		return -ENOMEM;
	s->im->regions = h->nregions;
	for (size_t i = 0; i < h->nregions && !err; i++) {
		struct rr_region *r = &s->cur.r[s->cur.n++];

		r->start = h->regions[i].start;
		r->len = h->regions[i].length;
		r->flags = h->regions[i].flags;
		r->name = strdup(h->regions[i].name ? h->regions[i].name : "");
		err = r->name ? region_make(s, &j, r) : -ENOMEM;
		if (!err)
			err = pmtrack_dec_set_dest(dec, (uint32_t)i, r->mem,
						   r->len);
	}
	return err;
}

static int on_end(void *arg, const struct pmtrack_dec_end *e)
{
	struct rr *s = arg;

	s->im->has_digest = e->digest;
	s->im->verified = e->digest_verified;
	return 0;
}

/* decode the image open at @fd into s->cur */
static int decode(struct rr *s, int fd)
{
	static const struct pmtrack_dec_ops ops = { .header = on_header,
						    .end = on_end };
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &ops, .arg = s);
	PMTRACK_OPTS(pmtrack_dec_stats, st);
	struct pmtrack_dec *dec;
	int reason, err = pmtrack_dec_new(&o, &dec);

	if (err)
		return err;
	err = pmtrack_dec_read_fd(dec, fd);
	if (err && !s->msg[0]) {
		const char *m = pmtrack_dec_error(dec, &reason);

		snprintf(s->msg, sizeof(s->msg), "%s (%s)",
			 m && *m ? m : strerror(-err),
			 pmtrack_stream_error_name(reason));
	}
	pmtrack_dec_get_stats(dec, &st);
	s->im->pages = st.pages + st.zero_pages;
	s->im->zero_pages = st.zero_pages;
	s->im->bytes = st.bytes;
	pmtrack_dec_free(dec);
	return err;
}

int rr_apply(struct rr *s, uint32_t i, struct rr_image *im)
{
	char name[16];
	int fd, err;

	memset(im, 0, sizeof(*im));
	im->index = i;
	s->im = im;
	s->index = i;
	s->msg[0] = 0;
	rimg_name(name, i);
	fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(s->msg, sizeof(s->msg), "%s", strerror(-err));
		return err;
	}
	err = decode(s, fd);
	close(fd);
	if (err) {
		model_free(&s->cur);
		return err;
	}
	model_free(&s->prev);
	memcpy(s->last_id, s->cur_id, sizeof(s->last_id));
	s->prev = s->cur;
	s->cur = (struct rr_model){ 0 };
	return 0;
}

/* ---- the kind of chain, and the files of the regions --------------------- */

static int kind_header(void *arg, struct pmtrack_dec *dec,
		       const struct pmtrack_dec_header *h)
{
	(void)dec;
	*(int *)arg = h->producer && !strcmp(h->producer, RD_PRODUCER);
	return -ECANCELED; /* the header is all we need */
}

int rr_is_process_chain(const char *dir)
{
	static const struct pmtrack_dec_ops ops = { .header = kind_header };
	char path[4096];
	int fd, ret = 0;
	PMTRACK_OPTS(pmtrack_dec_opts, o, .ops = &ops, .arg = &ret);
	struct pmtrack_dec *dec;

	snprintf(path, sizeof(path), "%s/000000.pmts", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (!pmtrack_dec_new(&o, &dec)) {
		pmtrack_dec_read_fd(dec, fd);
		pmtrack_dec_free(dec);
	}
	close(fd);
	return ret;
}

static int write_all(int fd, const char *p, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

void rr_file_name(char name[40], uint64_t start, uint64_t end)
{
	snprintf(name, 40, "%" PRIx64 "-%" PRIx64, start, end);
}

int rr_write_region(int dfd, uint64_t start, const void *mem, uint64_t len,
		    uint64_t pgsz, char name[40])
{
	const unsigned char *m = mem;
	uint64_t a = 0, b;
	int fd, err = 0;

	rr_file_name(name, start, start + len);
	fd = openat(dfd, name,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0644);
	if (fd < 0)
		return -errno;
	while (!err && a < len) {
		/* the holes are skipped, the data between them written */
		while (a < len && page_zero(m + a, pgsz))
			a += pgsz;
		for (b = a; b < len && !page_zero(m + b, pgsz); b += pgsz)
			;
		err = write_all(fd, (const char *)m + a, b - a, (off_t)a);
		a = b;
	}
	if (!err && ftruncate(fd, (off_t)len))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	return err;
}

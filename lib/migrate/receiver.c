// SPDX-License-Identifier: MIT
/*
 * The receiving side: applies a stream, or a chain of incremental streams,
 * into destination memory through the strict decoder.  The first stream
 * fixes the region table; each later one must name the previous stream as
 * its parent and describe the same regions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "base.h"

struct rx_region {
	uint32_t id;
	char *name;
	uint64_t start;
	void *mem;
	size_t len;
	bool owned; /* mapped by us */
};

struct pmtrack_rx {
	size_t mem_limit;
	size_t map_limit; /* destinations the receiver maps itself */
	pmtrack_write_fn tee;
	void *tee_arg;
	/* destinations set before the first stream */
	struct rx_region *pre;
	size_t npre;
	/* the region table, once a header was applied */
	struct rx_region *rg;
	size_t nrg;
	uint32_t page_size;
	bool touched; /* this apply wrote destination memory */
	bool ended;   /* this apply's stream reached END */
	bool have_id; /* this apply's stream had a header */
	/* the applied stream's id (a stream that ends had a header) */
	uint8_t cur_id[PMTRACK_STREAM_ID_LEN];
	char msg[256];
	int reason;
	/* what the chain applied to each page: its state digests */
	struct pmtrack_pagesums *sums;
	struct pmtrack_rx_stats st;
};

int pmtrack_rx_new(const struct pmtrack_rx_opts *o, struct pmtrack_rx **out)
{
	struct pmtrack_rx *rx;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!PMT_OPTS_VALID(o, pmtrack_rx_opts))
		return -EINVAL;
	rx = calloc(1, sizeof(*rx));
	if (!rx || pmtrack_pagesums_new(&rx->sums)) {
		free(rx);
		return -ENOMEM;
	}
	rx->mem_limit = PMT_OPTS_GET(o, mem_limit, (size_t)0);
	rx->tee = PMT_OPTS_GET(o, tee, (pmtrack_write_fn)NULL);
	rx->tee_arg = PMT_OPTS_GET(o, tee_arg, (void *)NULL);
	rx->map_limit = PMT_OPTS_GET(o, map_limit, (size_t)0);
	if (!rx->map_limit) {
		long pages = sysconf(_SC_PHYS_PAGES);
		long psz = sysconf(_SC_PAGESIZE);

		rx->map_limit = pages > 0 && psz > 0 &&
					(unsigned long)pages <=
						SIZE_MAX / (unsigned long)psz
					? (size_t)pages * (size_t)psz
					: SIZE_MAX;
	}
	rx->st.sz = sizeof(rx->st);
	*out = rx;
	return 0;
}

static void rx_drop_regions(struct pmtrack_rx *rx)
{
	size_t i;

	for (i = 0; i < rx->nrg; i++) {
		if (rx->rg[i].owned)
			munmap(rx->rg[i].mem, rx->rg[i].len);
		free(rx->rg[i].name);
	}
	free(rx->rg);
	rx->rg = NULL;
	rx->nrg = 0;
}

void pmtrack_rx_free(struct pmtrack_rx *rx)
{
	if (!rx)
		return;
	rx_drop_regions(rx);
	pmtrack_pagesums_free(rx->sums);
	free(rx->pre);
	free(rx);
}

int pmtrack_rx_set_dest(struct pmtrack_rx *rx, uint32_t id, void *mem,
			size_t len)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), i;
	struct rx_region *p;

	if (!rx || !mem || !len || (uintptr_t)mem % ps || len % ps ||
	    rx->st.state != PMTRACK_RX_EMPTY || rx->nrg)
		return -EINVAL;
	for (i = 0; i < rx->npre; i++)
		if (rx->pre[i].id == id)
			return -EEXIST;
	p = realloc(rx->pre, (rx->npre + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	rx->pre = p;
	rx->pre[rx->npre++] =
		(struct rx_region){ .id = id, .mem = mem, .len = len };
	return 0;
}

__attribute__((format(printf, 3, 4))) static int
rx_fail(struct pmtrack_rx *rx, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rx->msg, sizeof(rx->msg), fmt, ap);
	va_end(ap);
	return err;
}

/* Would the regions without a destination fit the map limit? */
static int rx_check_map_limit(struct pmtrack_rx *rx,
			      const struct pmtrack_dec_header *h)
{
	uint64_t need = 0;
	size_t i, j;

	for (i = 0; i < h->nregions; i++) {
		for (j = 0; j < rx->npre && rx->pre[j].id != h->regions[i].id;
		     j++)
			;
		if (j < rx->npre)
			continue;
		/* each length is below 2^64 and there are at most 65536 */
		need += h->regions[i].length;
		if (need > rx->map_limit || need < h->regions[i].length) {
			rx->reason = PMTRACK_SERR_LIMIT;
			return rx_fail(rx, -E2BIG,
				       "the stream's regions need more than "
				       "the receiver's map limit of %zu bytes",
				       rx->map_limit);
		}
	}
	return 0;
}

/* First stream: build the region table and the destinations. */
static int rx_first_header(struct pmtrack_rx *rx,
			   const struct pmtrack_dec_header *h)
{
	size_t i, j;
	int err;

	if (h->parent_id)
		return rx_fail(rx, -EBADMSG,
			       "the stream continues a parent stream, and "
			       "no parent was applied");
	rx_drop_regions(rx);
	err = rx_check_map_limit(rx, h);
	if (err)
		return err;
	rx->rg = calloc(h->nregions, sizeof(*rx->rg));
	if (!rx->rg)
		return -ENOMEM;
	rx->nrg = h->nregions;
	for (i = 0; i < h->nregions; i++) {
		const struct pmtrack_stream_region *s = &h->regions[i];
		struct rx_region *g = &rx->rg[i];

		g->id = s->id;
		g->start = s->start;
		g->len = (size_t)s->length;
		if (s->name && !(g->name = strdup(s->name)))
			return -ENOMEM;
		for (j = 0; j < rx->npre && rx->pre[j].id != s->id; j++)
			;
		if (j < rx->npre) {
			if (rx->pre[j].len != g->len)
				return rx_fail(rx, -EINVAL,
					       "region %u is %zu bytes, its "
					       "destination %zu",
					       s->id, g->len, rx->pre[j].len);
			g->mem = rx->pre[j].mem;
			continue;
		}
		if (s->length > SIZE_MAX)
			return -ENOMEM;
		g->mem = mmap(NULL, g->len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			      0);
		if (g->mem == MAP_FAILED) {
			g->mem = NULL;
			return rx_fail(rx, -ENOMEM,
				       "cannot map %zu bytes for region %u",
				       g->len, s->id);
		}
		g->owned = true;
		/* like a VMM's guest RAM: 512x fewer first-touch faults where
		   THP is "madvise" (failure only costs speed) */
		madvise(g->mem, g->len, MADV_HUGEPAGE);
	}
	for (j = 0; j < rx->npre; j++) {
		for (i = 0; i < rx->nrg && rx->rg[i].id != rx->pre[j].id; i++)
			;
		if (i == rx->nrg)
			return rx_fail(rx, -EINVAL,
				       "destination for region %u, which the "
				       "stream does not have",
				       rx->pre[j].id);
	}
	rx->page_size = h->page_size;
	return 0;
}

/* A later stream: it must continue the last one, over the same regions. */
static int rx_next_header(struct pmtrack_rx *rx,
			  const struct pmtrack_dec_header *h)
{
	size_t i;

	if (!h->parent_id ||
	    memcmp(h->parent_id, rx->st.stream_id, PMTRACK_STREAM_ID_LEN))
		return rx_fail(rx, -EBADMSG,
			       "the stream's parent is not the stream "
			       "applied before it");
	if (h->nregions != rx->nrg || h->page_size != rx->page_size)
		return rx_fail(rx, -EBADMSG,
			       "the stream's region table differs from its "
			       "parent's");
	for (i = 0; i < rx->nrg; i++)
		if (h->regions[i].id != rx->rg[i].id ||
		    h->regions[i].length != rx->rg[i].len)
			return rx_fail(rx, -EBADMSG,
				       "region %zu differs from the parent's",
				       i);
	return 0;
}

static int rx_header(void *arg, struct pmtrack_dec *dec,
		     const struct pmtrack_dec_header *h)
{
	struct pmtrack_rx *rx = arg;
	size_t i;
	int err;

	err = rx->st.streams ? rx_next_header(rx, h) : rx_first_header(rx, h);
	memcpy(rx->cur_id, h->stream_id, PMTRACK_STREAM_ID_LEN);
	rx->have_id = true;
	for (i = 0; !err && i < rx->nrg; i++)
		err = pmtrack_dec_set_dest(dec, (uint32_t)i, rx->rg[i].mem,
					   rx->rg[i].len);
	return err;
}

static int rx_round(void *arg, struct pmtrack_dec *dec, uint64_t round)
{
	struct pmtrack_rx *rx = arg;

	(void)dec;
	(void)round;
	rx->st.rounds++;
	return 0;
}

static int rx_pages(void *arg, uint32_t region, uint64_t first, uint64_t npages,
		    const void *data)
{
	struct pmtrack_rx *rx = arg;

	(void)region;
	(void)first;
	rx->touched = true;
	if (data)
		rx->st.pages += npages;
	else
		rx->st.zero_pages += npages;
	return 0;
}

static int rx_end(void *arg, const struct pmtrack_dec_end *e)
{
	struct pmtrack_rx *rx = arg;

	/* whatever END carried checked out, and it carried something */
	rx->st.state_verified = e->state_verified;
	rx->st.digest_verified = (e->state || e->digest) &&
				 (!e->state || e->state_verified) &&
				 (!e->digest || e->digest_verified);
	rx->ended = true;
	return 0;
}

static const struct pmtrack_dec_ops rx_ops = {
	.header = rx_header,
	.round = rx_round,
	.pages = rx_pages,
	.end = rx_end,
};

/* Is @fd a connected stream socket (a connection with a return path)? */
static bool rx_is_conn(int fd)
{
	struct stat sb;
	int type = 0;
	socklen_t len = sizeof(type);

	return !fstat(fd, &sb) && S_ISSOCK(sb.st_mode) &&
	       !getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) &&
	       type == SOCK_STREAM;
}

/*
 * Feed the stream from @x to @dec.  On a connection it ends at the END
 * record: the sender waits for the answer and sends nothing more; other
 * input is read to its end, so bytes after END are caught.
 */
static int rx_read(struct pmtrack_rx *rx, struct pmtrack_xport *x,
		   struct pmtrack_dec *dec, bool conn)
{
	struct iovec iov;
	const void *buf;
	ssize_t n;
	int err;

	for (;;) {
		n = pmtrack_xport_read(x, &buf);
		if (!n)
			return pmtrack_dec_finish(dec);
		if (n < 0)
			return rx_fail(rx, (int)n, "receiving: %s",
				       strerror((int)-n));
		rx->st.bytes += (uint64_t)n;
		if (rx->tee) {
			iov.iov_base = (void *)buf;
			iov.iov_len = (size_t)n;
			err = rx->tee(rx->tee_arg, &iov, 1);
			if (err)
				return rx_fail(rx, err,
					       "writing the image: %s",
					       strerror(-err));
		}
		err = pmtrack_dec_feed(dec, buf, (size_t)n);
		if (err || (conn && rx->ended))
			return err ? err : pmtrack_dec_finish(dec);
	}
}

/* a stream over several channels: where its records come from */
struct rx_chans {
	struct pmtrack_xport *const *x; /* [0] the main connection */
	size_t n;
	uint8_t *buf; /* one record at a time */
	size_t cap;
	bool hellos; /* the extra channels' starts were read */
};

/* the most one record of a channel may take here: what the decoder's limit
   lets through, plus its frame */
static size_t rx_record_max(const struct pmtrack_rx *rx)
{
	return (rx->mem_limit ? rx->mem_limit : (size_t)256 << 20) + 4096;
}

/*
 * Exactly @len bytes of channel @ch into c->buf + @off.  1 if the channel
 * ended before the first of them (@eof_ok: a clean end between records),
 * else -ENODATA if it ended first.
 */
static int rx_chan_read(struct pmtrack_rx *rx, struct rx_chans *c, size_t ch,
			size_t off, size_t len, bool eof_ok)
{
	ssize_t n;

	if (off + len > c->cap) {
		uint8_t *p = realloc(c->buf, off + len);

		if (!p)
			return -ENOMEM;
		c->buf = p;
		c->cap = off + len;
	}
	n = pmtrack_xport_read_exact(c->x[ch], c->buf + off, len);
	if (n < 0)
		return rx_fail(rx, (int)n, "channel %zu: %s", ch,
			       strerror((int)-n));
	rx->st.bytes += (uint64_t)n;
	if (!n && eof_ok)
		return 1;
	if ((size_t)n < len) {
		rx->reason = PMTRACK_SERR_TRUNCATED;
		return rx_fail(rx, -ENODATA, "channel %zu ended early", ch);
	}
	return 0;
}

/* Each extra channel's start: the stream's id, its index, the count. */
static int rx_chan_hellos(struct pmtrack_rx *rx, struct rx_chans *c)
{
	struct pmtrack_channel_hello h = { .sz = sizeof(h) };
	size_t len = PMTRACK_STREAM_PREAMBLE_LEN + PMTRACK_FRAME_LEN, meta;
	int r;

	for (size_t ch = 1; ch < c->n; ch++) {
		r = rx_chan_read(rx, c, ch, 0, len, false);
		if (r)
			return r;
		/* judged from the frame first; then its message */
		r = pmtrack_channel_decode(c->buf, len, &h);
		meta = pmt_get_le32(c->buf + PMTRACK_STREAM_PREAMBLE_LEN + 4);
		if (!r)
			r = rx_chan_read(rx, c, ch, len, meta, false);
		if (r < 0 && rx->msg[0])
			return r;
		if (!r)
			r = pmtrack_channel_decode(c->buf, len + meta, &h);
		if (r <= 0 || h.index != ch || h.count != c->n ||
		    memcmp(h.stream_id, rx->cur_id, PMTRACK_STREAM_ID_LEN)) {
			rx->reason = PMTRACK_SERR_MISMATCH;
			return rx_fail(rx, -EBADMSG,
				       "channel %zu does not start as channel "
				       "%zu of %zu of this stream",
				       ch, ch, c->n);
		}
	}
	c->hellos = true;
	return 0;
}

/*
 * Feed @dec record by record, each from the channel it names, until END
 * (on a connection) or the main channel's end.  A record is read whole
 * and fed in one piece, so the decoder decodes it where it lies.
 */
static int rx_read_chans(struct pmtrack_rx *rx, struct rx_chans *c,
			 struct pmtrack_dec *dec, bool conn)
{
	uint64_t meta, payload;
	size_t ch;
	int err;

	err = rx_chan_read(rx, c, 0, 0, PMTRACK_STREAM_PREAMBLE_LEN, true);
	if (!err)
		err = pmtrack_dec_feed(dec, c->buf,
				       PMTRACK_STREAM_PREAMBLE_LEN);
	while (!err && !(conn && rx->ended)) {
		/* once the header named the stream: the other channels */
		if (rx->have_id && !c->hellos) {
			err = rx_chan_hellos(rx, c);
			if (err)
				break;
		}
		ch = pmtrack_dec_next_channel(dec);
		err = rx_chan_read(rx, c, ch, 0, PMTRACK_FRAME_LEN, !ch);
		if (err)
			break;
		meta = pmt_get_le32(c->buf + 4);
		payload = pmt_get_le64(c->buf + 8);
		if (payload > rx_record_max(rx) - meta) {
			/* the decoder refuses it from the frame alone */
			err = pmtrack_dec_feed(dec, c->buf, PMTRACK_FRAME_LEN);
			break;
		}
		err = rx_chan_read(rx, c, ch, PMTRACK_FRAME_LEN,
				   (size_t)(meta + payload), false);
		if (!err)
			err = pmtrack_dec_feed(dec, c->buf,
					       PMTRACK_FRAME_LEN + meta +
						       payload);
	}
	if (err == 1)
		err = 0; /* the main channel ended between records */
	return err ? err : pmtrack_dec_finish(dec);
}

/*
 * Answer the stream on the return path: what became of it, and what this
 * side counted.  0, or -errno if the answer could not be sent.
 */
static int rx_reply(struct pmtrack_rx *rx, int fd, int err,
		    const struct pmtrack_rx_stats *before)
{
	struct pmtrack_stream_ack a = { .sz = sizeof(a) };
	uint8_t buf[PMTRACK_ACK_MAX];
	size_t off = 0;
	ssize_t w;
	int len;

	if (rx->have_id)
		memcpy(a.stream_id, rx->cur_id, sizeof(a.stream_id));
	a.error = err < 0 && -err <= 4095 ? -err : err ? EIO : 0;
	a.reason = rx->reason;
	a.state = (int)rx->st.state;
	a.digest_verified = !err && rx->st.digest_verified;
	a.rounds = rx->st.rounds - before->rounds;
	a.pages = rx->st.pages - before->pages;
	a.zero_pages = rx->st.zero_pages - before->zero_pages;
	a.bytes = rx->st.bytes - before->bytes;
	snprintf(a.message, sizeof(a.message), "%s", err ? rx->msg : "");
	len = pmtrack_ack_encode(&a, buf, sizeof(buf));
	if (len < 0)
		return len;
	/* a few hundred bytes into an idle socket's buffer: never waits */
	while (off < (size_t)len) {
		w = send(fd, buf + off, (size_t)len - off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (size_t)w;
	}
	return 0;
}

/* One stream from @x, or from the channels @c (NULL: @x alone). */
static int rx_apply(struct pmtrack_rx *rx, struct pmtrack_xport *x,
		    struct rx_chans *c)
{
	PMTRACK_OPTS(pmtrack_dec_opts, dopts, .ops = &rx_ops, .arg = rx,
		     .mem_limit = rx ? rx->mem_limit : 0,
		     .sums = rx ? rx->sums : NULL,
		     .channels = c ? (uint32_t)c->n : 1);
	struct pmtrack_rx_stats before;
	struct pmtrack_dec *dec = NULL;
	uint64_t t0 = pmt_now_ns();
	int err, r, reason = PMTRACK_SERR_OK, verified, state_verified;
	bool conn;

	if (!rx || !x)
		return -EINVAL;
	rx->msg[0] = 0;
	rx->reason = PMTRACK_SERR_OK;
	rx->st.reply = PMTRACK_RX_REPLY_NONE;
	conn = rx_is_conn(pmtrack_xport_fd(x));
	before = rx->st;
	rx->touched = rx->ended = rx->have_id = false;
	verified = rx->st.digest_verified;
	state_verified = rx->st.state_verified;
	rx->st.digest_verified = rx->st.state_verified = 0;
	if (rx->st.state == PMTRACK_RX_PARTIAL) {
		err = rx_fail(rx, -EBADMSG,
			      "an earlier stream failed part-way; the memory "
			      "is not usable");
	} else {
		err = pmtrack_dec_new(&dopts, &dec);
		if (!err)
			err = c ? rx_read_chans(rx, c, dec, conn)
				: rx_read(rx, x, dec, conn);
		if (err && !rx->msg[0]) {
			const char *m = pmtrack_dec_error(dec, &reason);

			rx->reason = reason;
			snprintf(rx->msg, sizeof(rx->msg), "%s",
				 *m ? m : strerror(-err));
		}
		pmtrack_dec_free(dec);
	}
	if (!err) {
		memcpy(rx->st.stream_id, rx->cur_id, sizeof(rx->cur_id));
		rx->st.streams++;
		rx->st.state = PMTRACK_RX_COMPLETE;
	} else if (rx->touched) {
		rx->st.state = PMTRACK_RX_PARTIAL;
	} else {
		/* nothing of this stream was written: the memory, and what
		   is known of it, are those of the last complete stream */
		rx->st.digest_verified = verified;
		rx->st.state_verified = state_verified;
		if (!rx->st.streams)
			rx_drop_regions(rx);
	}
	if (conn) {
		/* a sender that waits for the answer has not closed the
		   connection; one that did is not waiting (or is gone) */
		r = rx_reply(rx, pmtrack_xport_fd(x), err, &before);
		rx->st.reply = r ? PMTRACK_RX_REPLY_FAILED
				 : PMTRACK_RX_REPLY_SENT;
	}
	rx->st.apply_ns += pmt_now_ns() - t0;
	return err;
}

int pmtrack_rx_apply(struct pmtrack_rx *rx, struct pmtrack_xport *x)
{
	return rx_apply(rx, x, NULL);
}

int pmtrack_rx_apply_channels(struct pmtrack_rx *rx,
			      struct pmtrack_xport *const *x, size_t n)
{
	struct rx_chans c = { .x = x, .n = n };
	int err;

	if (!rx || !x || !n || n > PMTRACK_CHANNELS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!x[i])
			return -EINVAL;
	if (n == 1)
		return rx_apply(rx, x[0], NULL);
	/* the image a tee keeps would be channel 0 alone */
	if (rx->tee)
		return -EINVAL;
	err = rx_apply(rx, x[0], &c);
	free(c.buf);
	return err;
}

int pmtrack_rx_apply_fd(struct pmtrack_rx *rx, int fd)
{
	struct pmtrack_xport *x;
	int err;

	if (!rx)
		return -EINVAL;
	err = pmtrack_xport_new(fd, NULL, &x);
	if (err)
		return err;
	err = pmtrack_rx_apply(rx, x);
	pmtrack_xport_free(x);
	return err;
}

const char *pmtrack_rx_error(const struct pmtrack_rx *rx, int *reason)
{
	if (reason)
		*reason = rx ? rx->reason : PMTRACK_SERR_OK;
	return rx ? rx->msg : "";
}

uint32_t pmtrack_rx_page_size(const struct pmtrack_rx *rx)
{
	return rx && rx->nrg ? rx->page_size : 0;
}

size_t pmtrack_rx_nregions(const struct pmtrack_rx *rx)
{
	return rx ? rx->nrg : 0;
}

int pmtrack_rx_region(const struct pmtrack_rx *rx, size_t idx,
		      struct pmtrack_rx_region *out)
{
	if (!rx || !out)
		return -EINVAL;
	if (idx >= rx->nrg)
		return -ENOENT;
	*out = (struct pmtrack_rx_region){
		.id = rx->rg[idx].id,
		.name = rx->rg[idx].name,
		.start = rx->rg[idx].start,
		.mem = rx->rg[idx].mem,
		.len = rx->rg[idx].len,
	};
	return 0;
}

int pmtrack_rx_get_stats(const struct pmtrack_rx *rx,
			 struct pmtrack_rx_stats *st)
{
	if (!rx)
		return -EINVAL;
	return pmt_stats_out(st, &rx->st, sizeof(rx->st));
}

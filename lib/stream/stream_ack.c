// SPDX-License-Identifier: MIT
/*
 * The return path: a receiver's answer to a stream, as a return stream of
 * its own (the preamble, then one ACK record framed like every record).
 * The decoder takes bytes from a peer that may not be a libpmtrack
 * receiver at all, so it checks everything before believing any of it.
 * The start of a stream's extra channel (the preamble, then one CHANNEL
 * record) is read the same way.
 */
#include <errno.h>
#include <string.h>

#include <pmtrack/stream.h>

#include "ack.pb-c.h"
#include "channel.pb-c.h"
#include "stream_internal.h"

/* the receiver's states (enum pmtrack_rx_state) */
#define ACK_STATE_MAX 2
/* errno values are small positive numbers */
#define ACK_ERRNO_MAX 4095

static bool ack_fields_ok(int error, int reason, int state)
{
	return error >= 0 && error <= ACK_ERRNO_MAX && reason >= 0 &&
	       reason <= PMTRACK_SERR_NOMEM && state >= 0 &&
	       state <= ACK_STATE_MAX;
}

int pmtrack_ack_encode(const struct pmtrack_stream_ack *a, void *buf,
		       size_t cap)
{
	Pmtrack__Ack m = PMTRACK__ACK__INIT;
	struct pmt_frame f = { .type = PMTRACK_REC_ACK };
	uint8_t *p = buf;
	size_t mlen, total;

	if (!a || !buf || !PMT_OPTS_VALID(a, pmtrack_stream_ack) ||
	    a->sz < pmt_offsetofend(struct pmtrack_stream_ack, message) ||
	    !ack_fields_ok(a->error, a->reason, a->state) ||
	    (a->digest_verified != 0 && a->digest_verified != 1) ||
	    !memchr(a->message, 0, sizeof(a->message)))
		return -EINVAL;
	m.stream_id.data = (uint8_t *)a->stream_id;
	m.stream_id.len = PMTRACK_STREAM_ID_LEN;
	m.error = (uint32_t)a->error;
	m.reason = (uint32_t)a->reason;
	m.state = (uint32_t)a->state;
	m.digest_verified = a->digest_verified;
	m.rounds = a->rounds;
	m.pages = a->pages;
	m.zero_pages = a->zero_pages;
	m.bytes = a->bytes;
	if (a->message[0])
		m.message = (char *)a->message;
	mlen = pmtrack__ack__get_packed_size(&m);
	total = PMTRACK_STREAM_PREAMBLE_LEN + PMTRACK_FRAME_LEN + mlen;
	if (total > PMTRACK_ACK_MAX)
		return -EINVAL; /* cannot happen with the fields checked */
	if (total > cap)
		return -ENOSPC;
	pmt_preamble_put(p);
	pmtrack__ack__pack(&m, p + PMTRACK_STREAM_PREAMBLE_LEN +
				       PMTRACK_FRAME_LEN);
	f.meta_len = (uint32_t)mlen;
	pmt_frame_put(p + PMTRACK_STREAM_PREAMBLE_LEN, &f);
	/* the check covers the frame's first 16 bytes and the message */
	f.check = pmt_frame_check(p + PMTRACK_STREAM_PREAMBLE_LEN,
				  p + PMTRACK_STREAM_PREAMBLE_LEN +
					  PMTRACK_FRAME_LEN,
				  mlen);
	pmt_frame_put(p + PMTRACK_STREAM_PREAMBLE_LEN, &f);
	return (int)total;
}

/*
 * The preamble and the frame of a record of @type, at most @max bytes with
 * them, in @p[0..len), judged as soon as they can be: the length of the
 * whole once it has all arrived, 0 while more is needed, or -errno.  The
 * frame goes to @f.
 */
static int small_frame(const uint8_t *p, size_t len, uint8_t type,
		       size_t max, struct pmt_frame *f)
{
	size_t total;

	if (memcmp(p, PMT_STREAM_MAGIC,
		   len < PMT_MAGIC_LEN ? len : PMT_MAGIC_LEN))
		return -EBADMSG;
	if (len < PMTRACK_STREAM_PREAMBLE_LEN)
		return 0;
	if (pmt_get_le32(p + 8) != PMTRACK_STREAM_VERSION)
		return -EPROTONOSUPPORT;
	if (pmt_get_le32(p + 12))
		return -EBADMSG;
	if (len < PMTRACK_STREAM_PREAMBLE_LEN + PMTRACK_FRAME_LEN)
		return 0;
	pmt_frame_get(p + PMTRACK_STREAM_PREAMBLE_LEN, f);
	if (f->type != type || f->flags || f->reserved || f->payload_len ||
	    f->meta_len > max - PMTRACK_STREAM_PREAMBLE_LEN - PMTRACK_FRAME_LEN)
		return -EBADMSG;
	total = PMTRACK_STREAM_PREAMBLE_LEN + PMTRACK_FRAME_LEN + f->meta_len;
	return len < total ? 0 : (int)total;
}

/*
 * A whole small record of @type in @buf[0..len): its length, once all of
 * it is there and its check matches (@meta, @f: its message and frame); 0
 * while more is needed; -errno.
 */
static int small_record(const void *buf, size_t len, uint8_t type,
			size_t max, const uint8_t **meta, struct pmt_frame *f)
{
	const uint8_t *fr = (const uint8_t *)buf + PMTRACK_STREAM_PREAMBLE_LEN;
	int total;

	if (!len)
		return 0;
	/* judge what has arrived as soon as it can be judged */
	total = small_frame(buf, len, type, max, f);
	if (total <= 0)
		return total;
	*meta = fr + PMTRACK_FRAME_LEN;
	if (pmt_frame_check(fr, *meta, f->meta_len) != f->check)
		return -EBADMSG;
	return total;
}

/* The fields of an unpacked ACK, checked, into @a. */
static int ack_from_msg(const Pmtrack__Ack *m, struct pmtrack_stream_ack *a)
{
	if (m->stream_id.len != PMTRACK_STREAM_ID_LEN ||
	    m->error > ACK_ERRNO_MAX || m->reason > PMTRACK_SERR_NOMEM ||
	    m->state > ACK_STATE_MAX ||
	    (m->message && strlen(m->message) >= sizeof(a->message)))
		return -EBADMSG;
	memcpy(a->stream_id, m->stream_id.data, PMTRACK_STREAM_ID_LEN);
	a->error = (int)m->error;
	a->reason = (int)m->reason;
	a->state = (int)m->state;
	a->digest_verified = m->digest_verified ? 1 : 0;
	a->rounds = m->rounds;
	a->pages = m->pages;
	a->zero_pages = m->zero_pages;
	a->bytes = m->bytes;
	if (m->message)
		memcpy(a->message, m->message, strlen(m->message) + 1);
	return 0;
}

int pmtrack_ack_decode(const void *buf, size_t len,
		       struct pmtrack_stream_ack *out)
{
	struct pmtrack_stream_ack a = { .sz = sizeof(a) };
	const uint8_t *meta = NULL;
	struct pmt_frame f;
	Pmtrack__Ack *m;
	int total, r;

	if ((!buf && len) || !out || out->sz < sizeof(size_t))
		return -EINVAL;
	total = small_record(buf, len, PMTRACK_REC_ACK, PMTRACK_ACK_MAX, &meta,
			     &f);
	if (total <= 0)
		return total;
	m = pmtrack__ack__unpack(NULL, f.meta_len, meta);
	if (!m)
		return -EBADMSG;
	r = ack_from_msg(m, &a);
	pmtrack__ack__free_unpacked(m, NULL);
	if (r)
		return r;
	pmt_stats_out(out, &a, sizeof(a));
	return total;
}

/* a CHANNEL record's frame and message: 16 + 24 + a few dozen bytes */
#define CHANNEL_MAX 128u

int pmtrack_channel_decode(const void *buf, size_t len,
			   struct pmtrack_channel_hello *out)
{
	struct pmtrack_channel_hello h = { .sz = sizeof(h) };
	const uint8_t *meta = NULL;
	struct pmt_frame f;
	Pmtrack__Channel *m;
	int total;
	bool ok;

	if ((!buf && len) || !out || out->sz < sizeof(size_t))
		return -EINVAL;
	total = small_record(buf, len, PMTRACK_REC_CHANNEL, CHANNEL_MAX, &meta,
			     &f);
	if (total <= 0)
		return total;
	m = pmtrack__channel__unpack(NULL, f.meta_len, meta);
	if (!m)
		return -EBADMSG;
	ok = m->stream_id.len == PMTRACK_STREAM_ID_LEN && m->count >= 2 &&
	     m->count <= PMTRACK_CHANNELS_MAX && m->index >= 1 &&
	     m->index < m->count;
	if (ok) {
		memcpy(h.stream_id, m->stream_id.data, PMTRACK_STREAM_ID_LEN);
		h.index = m->index;
		h.count = m->count;
	}
	pmtrack__channel__free_unpacked(m, NULL);
	if (!ok)
		return -EBADMSG;
	pmt_stats_out(out, &h, sizeof(h));
	return total;
}

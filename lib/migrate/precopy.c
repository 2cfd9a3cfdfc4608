// SPDX-License-Identifier: MIT
/*
 * Live pre-copy: rounds of a source (struct pmt_src, source.c) until the
 * expected downtime fits the limit, then stop-and-copy and the return path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <pmtrack/migrate.h>

#include "base.h"
#include "source.h"

struct pc {
	const struct pmtrack_precopy_opts *o;
	struct pmt_src src;
	struct pmtrack_enc *enc;
	/* rate limit: bytes written since cap_t0 */
	uint64_t cap, cap_t0, cap_bytes;
	/* time spent in the write callback, and its bytes */
	uint64_t write_ns, write_bytes;
};

/*
 * What the downtime estimate knows after each round.  Bytes per page come
 * from the last round after round 0 (its zero pages were written as zero,
 * so the next round's may be too); until there is one, from round 0's data
 * pages only (round 0's zero pages are mostly memory never touched, which
 * says nothing of the pages written since), or a whole page each.  The
 * bandwidth is the last round's if it moved at least 256 KiB; smaller
 * rounds are too short to time, and then the write callback's bytes per
 * second so far stand in (memory reads and zero checks are not link time).
 */
struct pc_est {
	double page_bytes; /* stream bytes per dirty page; 0 = unknown */
	uint64_t bw;	   /* bytes/s of the last round of 256 KiB or more */
};

#define PC_TIMED_ROUND (256u << 10)

static void pc_learn(struct pc_est *e, const struct pmtrack_precopy_round *rs)
{
	uint64_t data = rs->pages - rs->zero_pages;

	if (rs->round && rs->pages)
		e->page_bytes = (double)rs->bytes / (double)rs->pages;
	else if (!rs->round && data)
		e->page_bytes = (double)rs->bytes / (double)data;
	if (rs->bytes >= PC_TIMED_ROUND && rs->duration_ns)
		e->bw = (uint64_t)((double)rs->bytes * 1e9 /
				   (double)rs->duration_ns);
}

/* The bandwidth to estimate with, 0 if unknown. */
static uint64_t pc_bandwidth(const struct pc *pc, const struct pc_est *e)
{
	if (pc->o->switchover_bandwidth)
		return pc->o->switchover_bandwidth;
	if (e->bw)
		return e->bw;
	if (pc->write_ns && pc->write_bytes)
		return (uint64_t)((double)pc->write_bytes * 1e9 /
				  (double)pc->write_ns);
	return 0;
}

/*
 * How long the workload would stay paused if it were stopped now: the
 * digest, plus the pending pages' bytes over the bandwidth (nothing for no
 * pages); PMTRACK_PRECOPY_UNKNOWN if pages are pending and no bandwidth is
 * known.
 */
static uint64_t pc_expected(const struct pc *pc, const struct pc_est *e,
			    uint64_t dirty, uint64_t digest_ns, uint64_t bw)
{
	double bytes, ns;

	if (!dirty)
		return digest_ns;
	if (!bw)
		return PMTRACK_PRECOPY_UNKNOWN;
	bytes = (double)dirty *
		(e->page_bytes ? e->page_bytes : (double)pc->src.ps);
	ns = bytes * 1e9 / (double)bw + (double)digest_ns;
	return ns >= (double)(PMTRACK_PRECOPY_UNKNOWN - 1)
		       ? PMTRACK_PRECOPY_UNKNOWN - 1
		       : (uint64_t)ns;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int pc_write(void *arg, const struct iovec *iov, int iovcnt)
{
	struct pc *pc = arg;
	uint64_t n = 0, due, now;
	int i, r;

	now = pmt_now_ns();
	r = pc->o->write(pc->o->write_arg, iov, iovcnt);
	pc->write_ns += pmt_now_ns() - now;
	for (i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	pc->write_bytes += n;
	if (r || !pc->cap)
		return r;
	pc->cap_bytes += n;
	due = (uint64_t)((double)pc->cap_bytes * 1e9 / (double)pc->cap);
	now = pmt_now_ns() - pc->cap_t0;
	if (due > now)
		sleep_ns(due - now);
	return 0;
}

/*
 * Nanoseconds the END digest takes: one timed digest of all the regions,
 * made during pre-copy.  A sample would not do: reading memory costs very
 * different amounts before and after tracking splits huge pages, and in
 * shadow-paging VMs (11 us per 4 KiB page first touched) far more than
 * hashing it.
 */
static uint64_t pc_digest_cost(struct pmt_src *s)
{
	uint8_t d[PMTRACK_DIGEST_LEN];
	uint64_t t0 = pmt_now_ns();
	int err;

	PMT_LIVE_READ_BEGIN(); /* the workload is running */
	err = pmt_src_digest(s, d);
	PMT_LIVE_READ_END();
	return err ? 0 : pmt_now_ns() - t0;
}

/*
 * Read the destination's answer to stream @id from the return path and
 * judge it against what was sent (@es).  0 if it applied everything.
 */
static int pc_reply(const struct pmtrack_precopy_opts *o,
		    const uint8_t id[PMTRACK_STREAM_ID_LEN],
		    const struct pmtrack_enc_stats *es,
		    struct pmtrack_precopy_stats *st)
{
	struct pmtrack_stream_ack a = { .sz = sizeof(a) };
	bool digest = !(o->flags & PMTRACK_PRECOPY_NO_DIGEST);
	uint8_t buf[PMTRACK_ACK_MAX];
	size_t len = 0, want;
	ssize_t n;
	int r;

	if (o->reply == o->write_arg && !o->flush) {
		r = pmtrack_xport_flush(o->reply);
		if (r)
			return r;
	}
	/* exactly the answer's bytes: what follows on the connection is
	   the caller's.  The preamble and frame first, then the message
	   the frame announces. */
	want = PMTRACK_STREAM_PREAMBLE_LEN + PMTRACK_FRAME_LEN;
	for (;;) {
		n = pmtrack_xport_read_exact(o->reply, buf + len, want - len);
		if (n < 0)
			return (int)n;
		len += (size_t)n;
		r = pmtrack_ack_decode(buf, len, &a);
		if (r > 0)
			break;
		if (r < 0)
			return -EPROTO;
		if (len < want)
			return len ? -EPROTO : -ENODATA; /* it closed */
		/* the frame says how long the message is (checked by the
		   decoder: it refused a length past PMTRACK_ACK_MAX) */
		want = PMTRACK_STREAM_PREAMBLE_LEN + PMTRACK_FRAME_LEN +
		       pmt_get_le32(buf + PMTRACK_STREAM_PREAMBLE_LEN + 4);
		if (want <= len)
			return -EPROTO;
	}
	if (memcmp(a.stream_id, id, PMTRACK_STREAM_ID_LEN))
		return -EPROTO;
	if (a.error) {
		st->remote_error = a.error;
		st->remote_reason = a.reason;
		snprintf(st->remote_message, sizeof(st->remote_message), "%s",
			 a.message);
		return -EREMOTEIO;
	}
	if (a.state != PMTRACK_RX_COMPLETE ||
	    (digest && !a.digest_verified) || a.rounds != es->rounds ||
	    a.pages != es->pages || a.zero_pages != es->zero_pages ||
	    a.bytes != es->wire_bytes)
		return -EPROTO;
	st->acked = 1;
	return 0;
}

static int pc_stats_enc(struct pc *pc, struct pmtrack_enc_stats *es)
{
	es->sz = sizeof(*es);
	return pmtrack_enc_get_stats(pc->enc, es);
}

int pmtrack_precopy(const struct pmtrack_precopy_opts *o,
		    const struct pmtrack_mem_region *regions, size_t n,
		    struct pmtrack_precopy_stats *stout)
{
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct pmtrack_enc_stats es0, es;
	struct pmtrack_precopy_round rs;
	struct pc pc = { .o = o };
	uint8_t digest[PMTRACK_DIGEST_LEN], id[PMTRACK_STREAM_ID_LEN];
	uint64_t t0 = pmt_now_ns(), limit, digest_ns = 0, bw = 0, dirty = 0;
	uint64_t round = 0, max_rounds, r0, c0, stop0 = 0, pre_bytes = 0;
	struct pc_est est = { 0 };
	bool stopped = false;
	int err;

	if (stout && stout->sz < sizeof(size_t))
		return -EINVAL;
	if (!o || !PMT_OPTS_VALID(o, pmtrack_precopy_opts) || !o->write ||
	    !o->ops || !o->ops->stop ||
	    (o->flags & ~(unsigned int)(PMTRACK_PRECOPY_NO_DIGEST |
					PMTRACK_PRECOPY_NO_FORCE))) {
		err = -EINVAL;
		goto out_nosrc;
	}
	limit = o->downtime_limit_ns ? o->downtime_limit_ns : 300000000u;
	max_rounds = o->max_rounds ? o->max_rounds : 30;
	/* the answer on the return path names it */
	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
		err = errno ? -errno : -EIO;
		goto out_nosrc;
	}
	err = pmt_src_init(&pc.src, o->tracker, regions, n);
	if (err)
		goto out_nosrc;
	st.backend = pmtrack_backend(pc.src.t);
	st.setup_ns = pmt_now_ns() - t0;
	{
		PMTRACK_OPTS(pmtrack_enc_opts, eo, .write = pc_write,
			     .write_arg = &pc, .page_size = pc.src.ps,
			     .level = o->level, .flags = o->enc_flags,
			     .batch_pages = o->batch_pages,
			     .producer = o->producer, .stream_id = id);
		err = pmtrack_enc_new(&eo, pc.src.sr, n, &pc.enc);
		if (err)
			goto out;
	}
	pc.cap = o->max_bandwidth;
	pc.cap_t0 = pmt_now_ns();
	pmt_src_all(&pc.src);
	dirty = pc.src.total_pages;
	for (;;) {
		memset(&rs, 0, sizeof(rs));
		rs.sz = sizeof(rs);
		rs.round = round;
		rs.total_pages = pc.src.total_pages;
		pc_stats_enc(&pc, &es0);
		r0 = pmt_now_ns();
		err = pmt_src_round(&pc.src, pc.enc, round);
		if (err)
			goto out;
		pmt_src_sent(&pc.src);
		pc_stats_enc(&pc, &es);
		rs.duration_ns = pmt_now_ns() - r0;
		rs.pages =
			es.pages + es.zero_pages - es0.pages - es0.zero_pages;
		rs.zero_pages = es.zero_pages - es0.zero_pages;
		rs.bytes = es.wire_bytes - es0.wire_bytes;
		pc_learn(&est, &rs);
		/* after round 0, with every page read once */
		if (!round && !(o->flags & PMTRACK_PRECOPY_NO_DIGEST))
			st.digest_ns = digest_ns = pc_digest_cost(&pc.src);
		c0 = pmt_now_ns();
		err = pmt_src_collect(&pc.src, &dirty);
		if (err)
			goto out;
		rs.collect_ns = pmt_now_ns() - c0;
		rs.dirty_pages = dirty;
		rs.dirty_rate = (uint64_t)((double)dirty * 1e9 /
					   (double)(rs.duration_ns +
						    rs.collect_ns + 1));
		rs.bandwidth = bw = pc_bandwidth(&pc, &est);
		rs.expected_downtime_ns =
			pc_expected(&pc, &est, dirty, digest_ns, bw);
		rs.total_bytes = es.wire_bytes;
		rs.elapsed_ns = pmt_now_ns() - t0;
		st.rounds++;
		st.expected_downtime_ns = rs.expected_downtime_ns;
		if (o->ops->progress) {
			err = o->ops->progress(o->arg, &rs);
			if (err)
				goto out;
		}
		if (rs.expected_downtime_ns <= limit) {
			st.converged = 1;
			break;
		}
		/* the digest alone exceeds the limit: once the pages would
		   fit, more rounds cannot help */
		if (round >= max_rounds ||
		    (digest_ns >= limit &&
		     rs.expected_downtime_ns != PMTRACK_PRECOPY_UNKNOWN &&
		     rs.expected_downtime_ns - digest_ns <= limit)) {
			if (o->flags & PMTRACK_PRECOPY_NO_FORCE) {
				err = -ETIMEDOUT;
				goto out;
			}
			break;
		}
		round++;
	}
	pre_bytes = es.wire_bytes;
	st.bandwidth =
		(uint64_t)((double)pre_bytes * 1e9 /
			   (double)(pmt_now_ns() - t0 - st.setup_ns + 1));

	/* stop and copy */
	stop0 = pmt_now_ns();
	err = o->ops->stop(o->arg);
	if (err)
		goto out;
	stopped = true;
	pc.cap = 0;
	round++;
	memset(&rs, 0, sizeof(rs));
	rs.sz = sizeof(rs);
	rs.round = round;
	rs.final = 1;
	rs.total_pages = pc.src.total_pages;
	pc_stats_enc(&pc, &es0);
	r0 = pmt_now_ns();
	err = pmt_src_collect(&pc.src, &dirty);
	if (err)
		goto out;
	rs.collect_ns = pmt_now_ns() - r0;
	err = pmt_src_round(&pc.src, pc.enc, round);
	if (err)
		goto out;
	if (!(o->flags & PMTRACK_PRECOPY_NO_DIGEST)) {
		err = pmt_src_digest(&pc.src, digest);
		if (err)
			goto out;
	}
	err = pmtrack_enc_end(
		pc.enc, (o->flags & PMTRACK_PRECOPY_NO_DIGEST) ? NULL : digest);
	if (!err && o->flush)
		err = o->flush(o->write_arg);
	pc_stats_enc(&pc, &es);
	if (!err && o->reply)
		err = pc_reply(o, id, &es, &st);
	if (err)
		goto out;
	st.downtime_ns = pmt_now_ns() - stop0;
	rs.duration_ns = pmt_now_ns() - r0;
	rs.pages = es.pages + es.zero_pages - es0.pages - es0.zero_pages;
	rs.zero_pages = es.zero_pages - es0.zero_pages;
	rs.bytes = es.wire_bytes - es0.wire_bytes;
	rs.bandwidth = bw;
	rs.total_bytes = es.wire_bytes;
	rs.elapsed_ns = pmt_now_ns() - t0;
	st.final_pages = rs.pages;
	st.rounds++;
	if (o->ops->progress)
		err = o->ops->progress(o->arg, &rs);
out:
	if (pc.enc) {
		pc_stats_enc(&pc, &es);
		st.pages = es.pages + es.zero_pages;
		st.zero_pages = es.zero_pages;
		st.bytes = es.wire_bytes;
	}
	if (err && stopped && o->ops->resume)
		o->ops->resume(o->arg);
	pmtrack_enc_free(pc.enc);
	pmt_src_free(&pc.src);
out_nosrc:
	st.total_ns = pmt_now_ns() - t0;
	if (stout)
		pmt_stats_out(stout, &st, sizeof(st));
	return err;
}

// SPDX-License-Identifier: MIT
/*
 * Live pre-copy: rounds of a source (struct pmt_src, source.c) until the
 * expected downtime fits the limit, then stop-and-copy and the return path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "base.h"
#include "source.h"

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

/*
 * The downtime policy (pc_should_stop()): after each pre-copy round, stop
 * when the expected downtime fits the limit; go on while it does not,
 * unless max_rounds rounds followed round 0, or the digest alone exceeds
 * the limit and the pages would fit (more rounds cannot help then).
 */
struct pc_policy {
	uint64_t limit;	     /* the downtime to aim for */
	uint64_t max_rounds; /* pre-copy rounds after round 0 */
	uint64_t digest_ns;  /* the END digest's time; 0 until timed */
};

enum pc_next {
	PC_NEXT_ROUND, /* another pre-copy round */
	PC_CONVERGED,  /* stop: the estimate fits the limit */
	PC_NO_FIT,     /* stop: more rounds will not make it fit */
};

struct pc {
	const struct pmtrack_precopy_opts *o;
	struct pmt_src src;
	struct pmtrack_enc *enc;
	/* what was sent of each page, for the state digest and the audit */
	struct pmtrack_pagesums *sums;
	/* the extra channels, as the encoder writes them */
	uint32_t nchan;
	struct pc_chan *chan;
	struct pmtrack_channel *enc_chan;
	uint8_t id[PMTRACK_STREAM_ID_LEN]; /* the answer names it */
	uint64_t t0;			   /* pmtrack_precopy() started */
	/* rate limit: bytes written since cap_t0 */
	uint64_t cap, cap_t0, cap_bytes;
	/* time spent in the write callback, and its bytes */
	uint64_t write_ns, write_bytes;
	struct pc_policy pol;
	struct pc_est est;
	uint64_t round; /* the round being sent */
	uint64_t bw;	/* the last estimate's bandwidth */
	/* reports inside a round (opts.progress_ms): every mid_ns, the
	   next at mid_next; the round's report so far, NULL between rounds */
	uint64_t mid_ns, mid_next;
	struct pmtrack_precopy_round *mid;
	struct pmtrack_enc_stats mid_es0; /* the encoder's before the round */
	uint64_t mid_t0, mid_pending;	  /* the round's start and pages */
	uint64_t last_expected;		  /* the last complete report's */
	bool stopped;	/* ops->stop() returned 0 */
	struct pmtrack_precopy_stats st;
};

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

static int pc_mid_report(struct pc *pc);

/* how far behind its schedule the rate cap lets writes run before it
   forgets the rest: at most this long's bytes go out above the cap */
#define PC_CAP_CREDIT_NS 100000000u

/* Write to @wr(@warg), timed and counted, within the rate cap. */
static int pc_write_to(struct pc *pc, pmtrack_write_fn wr, void *warg,
		       const struct iovec *iov, int iovcnt)
{
	uint64_t n = 0, due, now;
	int i, r;

	now = pmt_now_ns();
	r = wr(warg, iov, iovcnt);
	pc->write_ns += pmt_now_ns() - now;
	for (i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	pc->write_bytes += n;
	if (!r && pc->mid && pmt_now_ns() >= pc->mid_next)
		r = pc_mid_report(pc);
	if (r || !pc->cap)
		return r;
	pc->cap_bytes += n;
	due = (uint64_t)((double)pc->cap_bytes * 1e9 / (double)pc->cap);
	now = pmt_now_ns() - pc->cap_t0;
	if (due > now) {
		sleep_ns(due - now);
	} else if (now - due > PC_CAP_CREDIT_NS) {
		/* behind the cap's schedule (a collect, a slow link): keep
		   at most PC_CAP_CREDIT_NS of it, so that what follows is
		   not a burst that makes up for the whole delay */
		pc->cap_t0 += now - due - PC_CAP_CREDIT_NS;
	}
	return 0;
}

static int pc_write(void *arg, const struct iovec *iov, int iovcnt)
{
	struct pc *pc = arg;

	return pc_write_to(pc, pc->o->write, pc->o->write_arg, iov, iovcnt);
}

/* An extra channel's writes, counted with the main one's. */
struct pc_chan {
	struct pc *pc;
	const struct pmtrack_channel *c;
};

static int pc_chan_write(void *arg, const struct iovec *iov, int iovcnt)
{
	struct pc_chan *ch = arg;

	return pc_write_to(ch->pc, ch->c->write, ch->c->arg, iov, iovcnt);
}

static int pc_chan_flush(void *arg)
{
	struct pc_chan *ch = arg;

	return ch->c->flush ? ch->c->flush(ch->c->arg) : 0;
}

/* the main channel's flush, as the encoder calls it (with pc) */
static int pc_main_flush(void *arg)
{
	const struct pmtrack_precopy_opts *o = ((struct pc *)arg)->o;

	return o->flush ? o->flush(o->write_arg) : 0;
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
 * Read the answer from @x into @a: exactly its bytes, as what follows on
 * the connection is the caller's.  The preamble and frame first, then the
 * message the frame announces.
 */
static int pc_read_ack(struct pmtrack_xport *x, struct pmtrack_stream_ack *a)
{
	uint8_t buf[PMTRACK_ACK_MAX];
	size_t len = 0, want;
	ssize_t n;
	int r;

	want = PMTRACK_STREAM_PREAMBLE_LEN + PMTRACK_FRAME_LEN;
	for (;;) {
		n = pmtrack_xport_read_exact(x, buf + len, want - len);
		if (n < 0)
			return (int)n;
		len += (size_t)n;
		r = pmtrack_ack_decode(buf, len, a);
		if (r > 0)
			return 0;
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
	bool verify = !(o->flags & PMTRACK_PRECOPY_NO_DIGEST);
	int r;

	if (o->reply == o->write_arg && !o->flush) {
		r = pmtrack_xport_flush(o->reply);
		if (r)
			return r;
	}
	r = pc_read_ack(o->reply, &a);
	if (r)
		return r;
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
	    (verify && !a.digest_verified) || a.rounds != es->rounds ||
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

static bool pc_opts_ok(const struct pmtrack_precopy_opts *o)
{
	return o && PMT_OPTS_VALID(o, pmtrack_precopy_opts) && o->write &&
	       o->ops && o->ops->stop &&
	       !(o->flags & ~(unsigned int)(PMTRACK_PRECOPY_NO_DIGEST |
					    PMTRACK_PRECOPY_NO_FORCE |
					    PMTRACK_PRECOPY_FULL_DIGEST |
					    PMTRACK_PRECOPY_NO_AUDIT)) &&
	       !((o->flags & PMTRACK_PRECOPY_NO_DIGEST) &&
		 (o->flags & PMTRACK_PRECOPY_FULL_DIGEST));
}

static void pc_policy_init(struct pc_policy *p,
			   const struct pmtrack_precopy_opts *o)
{
	p->limit = o->downtime_limit_ns ? o->downtime_limit_ns : 300000000u;
	p->max_rounds = o->max_rounds ? o->max_rounds : 30;
	p->digest_ns = 0;
}

/* After round @round, whose expected downtime is @expected. */
static enum pc_next pc_should_stop(const struct pc_policy *p, uint64_t round,
				   uint64_t expected)
{
	if (expected <= p->limit)
		return PC_CONVERGED;
	if (round >= p->max_rounds)
		return PC_NO_FIT;
	/* the digest alone exceeds the limit: once the pages would fit,
	   more rounds cannot help */
	if (p->digest_ns >= p->limit && expected != PMTRACK_PRECOPY_UNKNOWN &&
	    expected - p->digest_ns <= p->limit)
		return PC_NO_FIT;
	return PC_NEXT_ROUND;
}

/* The extra channels of opts.channel, each written through pc_chan_write. */
static int pc_channels(struct pc *pc)
{
	const struct pmtrack_channel *c = PMT_OPTS_GET(pc->o, channel, NULL);

	pc->nchan = PMT_OPTS_GET(pc->o, channels, (uint32_t)0);
	if (pc->nchan < 2)
		return 0;
	if (pc->nchan > PMTRACK_CHANNELS_MAX || !c)
		return -EINVAL;
	pc->chan = calloc(pc->nchan - 1, sizeof(*pc->chan));
	pc->enc_chan = calloc(pc->nchan - 1, sizeof(*pc->enc_chan));
	if (!pc->chan || !pc->enc_chan)
		return -ENOMEM;
	for (uint32_t i = 0; i + 1 < pc->nchan; i++) {
		if (!c[i].write)
			return -EINVAL;
		pc->chan[i] = (struct pc_chan){ pc, &c[i] };
		pc->enc_chan[i] = (struct pmtrack_channel){
			.write = pc_chan_write,
			.arg = &pc->chan[i],
			.flush = pc_chan_flush,
		};
	}
	return 0;
}

/* Flush the extra channels (their callbacks), then the main one. */
static int pc_flush(struct pc *pc)
{
	int err = 0;

	for (uint32_t i = 0; !err && i + 1 < pc->nchan; i++)
		err = pc_chan_flush(&pc->chan[i]);
	return err ? err : pc_main_flush(pc);
}

static int pc_enc_new(struct pc *pc)
{
	const struct pmtrack_precopy_opts *o = pc->o;
	bool verify = !(o->flags & PMTRACK_PRECOPY_NO_DIGEST);
	PMTRACK_OPTS(pmtrack_enc_opts, eo, .write = pc_write, .write_arg = pc,
		     .page_size = pc->src.ps, .level = o->level,
		     .flags = o->enc_flags | (verify ? 0 : PMTRACK_ENC_NO_STATE),
		     .batch_pages = o->batch_pages, .producer = o->producer,
		     .stream_id = pc->id,
		     .workers = pmt_src_workers(
			     PMT_OPTS_GET(o, workers, (uint32_t)0)));
	int err;

	if (verify) {
		err = pmtrack_pagesums_new(&pc->sums);
		if (err)
			return err;
		eo.sums = pc->sums;
	}
	err = pc_channels(pc);
	if (err)
		return err;
	eo.channels = pc->nchan;
	eo.channel = pc->enc_chan;
	eo.flush = pc_main_flush;
	return pmtrack_enc_new(&eo, pc->src.sr, pc->src.n, &pc->enc);
}

/* The stream's id, the source (set-up time) and the encoder. */
static int pc_start(struct pc *pc, const struct pmtrack_mem_region *regions,
		    size_t n)
{
	int err;

	/* the answer on the return path names it */
	if (getrandom(pc->id, sizeof(pc->id), 0) != (ssize_t)sizeof(pc->id))
		return errno ? -errno : -EIO;
	err = pmt_src_init(&pc->src, pc->o->tracker, regions, n);
	if (err)
		return err;
	pc->st.backend = pmtrack_backend(pc->src.t);
	pc->st.setup_ns = pmt_now_ns() - pc->t0;
	err = pc_enc_new(pc);
	if (err)
		return err;
	pc->cap = pc->o->max_bandwidth;
	pc->cap_t0 = pmt_now_ns();
	pc->mid_ns = (uint64_t)PMT_OPTS_GET(pc->o, progress_ms, (uint32_t)0) *
		     1000000u;
	return 0;
}

static void pc_round_start(const struct pc *pc,
			   struct pmtrack_precopy_round *rs, int final)
{
	memset(rs, 0, sizeof(*rs));
	rs->sz = sizeof(*rs);
	rs->round = pc->round;
	rs->final = final;
	rs->total_pages = pc->src.total_pages;
}

/* What the round sent: the encoder's counts @es less those before, @es0. */
static void pc_round_counts(struct pmtrack_precopy_round *rs,
			    const struct pmtrack_enc_stats *es0,
			    const struct pmtrack_enc_stats *es)
{
	rs->pages = es->pages + es->zero_pages - es0->pages - es0->zero_pages;
	rs->zero_pages = es->zero_pages - es0->zero_pages;
	rs->bytes = es->wire_bytes - es0->wire_bytes;
	rs->total_bytes = es->wire_bytes;
}

/* The stream bytes @pages would take, at the estimate's bytes per page. */
static uint64_t pc_pages_bytes(const struct pc *pc, uint64_t pages)
{
	double per = pc->est.page_bytes ? pc->est.page_bytes
					: (double)pc->src.ps;

	return (uint64_t)((double)pages * per + 0.5);
}

static int pc_progress(const struct pc *pc,
		       const struct pmtrack_precopy_round *rs);

/*
 * A report from inside a live round (opts.progress_ms), called between two
 * writes: the round's counts so far, from the encoder's.
 */
static int pc_mid_report(struct pc *pc)
{
	struct pmtrack_precopy_round *rs = pc->mid;
	struct pmtrack_enc_stats es;
	uint64_t now = pmt_now_ns();

	pc->mid_next = now + pc->mid_ns;
	pc_stats_enc(pc, &es);
	pc_round_counts(rs, &pc->mid_es0, &es);
	rs->partial = 1;
	rs->duration_ns = now - pc->mid_t0;
	rs->elapsed_ns = now - pc->t0;
	rs->remaining_pages =
		pc->mid_pending > rs->pages ? pc->mid_pending - rs->pages : 0;
	rs->remaining_bytes = pc_pages_bytes(pc, rs->remaining_pages);
	rs->bandwidth = pc->bw;
	rs->expected_downtime_ns = pc->last_expected;
	return pc_progress(pc, rs);
}

/* The @dirty pages collected after round @rs, and what they would cost. */
static void pc_estimate(struct pc *pc, struct pmtrack_precopy_round *rs,
			uint64_t dirty)
{
	rs->dirty_pages = dirty;
	rs->dirty_rate =
		(uint64_t)((double)dirty * 1e9 /
			   (double)(rs->duration_ns + rs->collect_ns + 1));
	rs->bandwidth = pc->bw = pc_bandwidth(pc, &pc->est);
	rs->expected_downtime_ns =
		pc_expected(pc, &pc->est, dirty, pc->pol.digest_ns, pc->bw);
	rs->remaining_pages = dirty;
	rs->remaining_bytes = dirty ? pc_pages_bytes(pc, dirty) : 0;
	pc->last_expected = rs->expected_downtime_ns;
}

static int pc_progress(const struct pc *pc,
		       const struct pmtrack_precopy_round *rs)
{
	const struct pmtrack_precopy_ops *ops = pc->o->ops;

	return ops->progress ? ops->progress(pc->o->arg, rs) : 0;
}

/*
 * Pre-copy round pc->round: send the pending pages, then collect the ones
 * written meanwhile and estimate the downtime they would cost.
 */
static int pc_live_round(struct pc *pc, struct pmtrack_precopy_round *rs)
{
	struct pmtrack_enc_stats es0, es;
	uint64_t r0, c0, dirty;
	int err;

	pc_round_start(pc, rs, 0);
	pc_stats_enc(pc, &es0);
	r0 = pmt_now_ns();
	if (pc->mid_ns) {
		/* reports from inside the round, on a copy of its report */
		struct pmtrack_precopy_round mid = *rs;

		pc->mid = &mid;
		pc->mid_es0 = es0;
		pc->mid_t0 = r0;
		pc->mid_next = r0 + pc->mid_ns;
		pc->mid_pending = pc->round ? pc->mid_pending
					    : pc->src.total_pages;
		err = pmt_src_round(&pc->src, pc->enc, pc->round);
		pc->mid = NULL;
	} else {
		err = pmt_src_round(&pc->src, pc->enc, pc->round);
	}
	if (err)
		return err;
	pmt_src_sent(&pc->src);
	pc_stats_enc(pc, &es);
	rs->duration_ns = pmt_now_ns() - r0;
	pc_round_counts(rs, &es0, &es);
	pc_learn(&pc->est, rs);
	/* after round 0, with every page read once */
	if (!pc->round && (pc->o->flags & PMTRACK_PRECOPY_FULL_DIGEST))
		pc->st.digest_ns = pc->pol.digest_ns = pc_digest_cost(&pc->src);
	c0 = pmt_now_ns();
	err = pmt_src_collect(&pc->src, &dirty);
	if (err)
		return err;
	rs->collect_ns = pmt_now_ns() - c0;
	pc_estimate(pc, rs, dirty);
	pc->mid_pending = dirty; /* the next round's pages */
	rs->elapsed_ns = pmt_now_ns() - pc->t0;
	pc->st.rounds++;
	pc->st.expected_downtime_ns = rs->expected_downtime_ns;
	return pc_progress(pc, rs);
}

/*
 * Round 0 with every page, then rounds until the policy says stop; the
 * pre-copy phase's bandwidth.  -ETIMEDOUT if the estimate cannot fit and
 * PMTRACK_PRECOPY_NO_FORCE forbids stopping anyway.
 */
static int pc_precopy_rounds(struct pc *pc)
{
	struct pmtrack_precopy_round rs;
	enum pc_next next;
	int err;

	pmt_src_all(&pc->src);
	for (;; pc->round++) {
		err = pc_live_round(pc, &rs);
		if (err)
			return err;
		next = pc_should_stop(&pc->pol, pc->round,
				      rs.expected_downtime_ns);
		if (next == PC_CONVERGED)
			pc->st.converged = 1;
		if (next == PC_NO_FIT &&
		    (pc->o->flags & PMTRACK_PRECOPY_NO_FORCE))
			return -ETIMEDOUT;
		if (next != PC_NEXT_ROUND)
			break;
	}
	pc->st.bandwidth = (uint64_t)((double)rs.total_bytes * 1e9 /
				      (double)(pmt_now_ns() - pc->t0 -
					       pc->st.setup_ns + 1));
	return 0;
}

/*
 * The final round's pages, END with the state digest (and, with
 * PMTRACK_PRECOPY_FULL_DIGEST, the digest of the paused memory), and
 * flush(); then, with a return path, the destination's answer.  @es
 * receives the encoder's counts.
 */
static int pc_send_rest(struct pc *pc, struct pmtrack_enc_stats *es)
{
	const struct pmtrack_precopy_opts *o = pc->o;
	bool digest = o->flags & PMTRACK_PRECOPY_FULL_DIGEST;
	uint8_t d[PMTRACK_DIGEST_LEN];
	int err;

	err = pmt_src_round(&pc->src, pc->enc, pc->round);
	if (!err && digest)
		err = pmt_src_digest(&pc->src, d);
	if (err)
		return err;
	err = pmtrack_enc_end(pc->enc, digest ? d : NULL);
	if (!err)
		err = pc_flush(pc);
	pc_stats_enc(pc, es);
	if (!err && o->reply)
		err = pc_reply(o, pc->id, es, &pc->st);
	return err;
}

/* Stop the workload and send the rest: the stop-and-copy round. */
static int pc_stop_and_copy(struct pc *pc)
{
	const struct pmtrack_precopy_opts *o = pc->o;
	struct pmtrack_precopy_round rs;
	struct pmtrack_enc_stats es0, es;
	uint64_t stop0 = pmt_now_ns(), r0, dirty;
	int err;

	err = o->ops->stop(o->arg);
	if (err)
		return err;
	pc->stopped = true;
	pc->cap = 0;
	pc->round++;
	pc_round_start(pc, &rs, 1);
	pc_stats_enc(pc, &es0);
	r0 = pmt_now_ns();
	err = pmt_src_collect(&pc->src, &dirty);
	if (err)
		return err;
	rs.collect_ns = pmt_now_ns() - r0;
	err = pc_send_rest(pc, &es);
	if (err)
		return err;
	pc->st.downtime_ns = pmt_now_ns() - stop0;
	rs.duration_ns = pmt_now_ns() - r0;
	pc_round_counts(&rs, &es0, &es);
	rs.bandwidth = pc->bw;
	rs.elapsed_ns = pmt_now_ns() - pc->t0;
	pc->st.final_pages = rs.pages;
	pc->st.rounds++;
	return pc_progress(pc, &rs);
}

/*
 * After the switchover: does the stopped source hold exactly what was
 * sent?  A page that differs was written without the tracker reporting
 * it.  -EBADMSG then, with the first such page's address in the stats.
 * The workload is stopped: every CPU reads.
 */
static int pc_audit(struct pc *pc)
{
	uint64_t t0 = pmt_now_ns();
	int err;

	err = pmt_src_audit(&pc->src, pc->sums, &pc->st.audit_differ,
			    &pc->st.audit_first_addr);
	pc->st.audit_ns = pmt_now_ns() - t0;
	pc->st.audited = !err;
	return err;
}

/* The switchover callback, then the audit unless turned off. */
static int pc_after_switchover(struct pc *pc)
{
	const struct pmtrack_precopy_opts *o = pc->o;
	int err = 0;
	int (*sw)(void *) = PMT_OPTS_GET(o, switchover, NULL);

	if (sw)
		err = sw(o->arg);
	if (!err && pc->sums && !(o->flags & PMTRACK_PRECOPY_NO_AUDIT))
		err = pc_audit(pc);
	return err;
}

/*
 * The stream's counts into the stats, success or not; after a failure
 * past stop(), resume().  Frees what pc_start() made.
 */
static void pc_finish(struct pc *pc, int err,
		      struct pmtrack_precopy_stats *stout)
{
	struct pmtrack_enc_stats es;

	if (pc->enc) {
		pc_stats_enc(pc, &es);
		pc->st.pages = es.pages + es.zero_pages;
		pc->st.zero_pages = es.zero_pages;
		pc->st.bytes = es.wire_bytes;
	}
	if (err && pc->stopped && pc->o->ops->resume)
		pc->o->ops->resume(pc->o->arg);
	pmtrack_enc_free(pc->enc);
	pmtrack_pagesums_free(pc->sums);
	free(pc->chan);
	free(pc->enc_chan);
	pmt_src_free(&pc->src);
	pc->st.total_ns = pmt_now_ns() - pc->t0;
	if (stout)
		pmt_stats_out(stout, &pc->st, sizeof(pc->st));
}

int pmtrack_precopy(const struct pmtrack_precopy_opts *o,
		    const struct pmtrack_mem_region *regions, size_t n,
		    struct pmtrack_precopy_stats *stout)
{
	struct pc pc = {
		.o = o,
		.t0 = pmt_now_ns(),
		.st = { .sz = sizeof(struct pmtrack_precopy_stats) },
	};
	int err;

	if (stout && stout->sz < sizeof(size_t))
		return -EINVAL;
	err = pc_opts_ok(o) ? 0 : -EINVAL;
	if (!err) {
		pc_policy_init(&pc.pol, o);
		err = pc_start(&pc, regions, n);
	}
	if (!err)
		err = pc_precopy_rounds(&pc);
	if (!err)
		err = pc_stop_and_copy(&pc);
	if (!err)
		err = pc_after_switchover(&pc);
	pc_finish(&pc, err, stout);
	return err;
}

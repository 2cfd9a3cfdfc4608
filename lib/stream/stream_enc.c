/* SPDX-License-Identifier: MIT */
/*
 * Stream encoder: preamble and HEADER at creation, then per round a ROUND
 * record (dirty, swap and zero bitmaps) and BATCH records, then END.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include <pmtrack/stream.h>

#include "batch.pb-c.h"
#include "channel.pb-c.h"
#include "end.pb-c.h"
#include "header.pb-c.h"
#include "pagesums.h"
#include "round.pb-c.h"
#include "stream_internal.h"

#define BATCH_PAGES_DEFAULT 256u
#define BATCH_PAGES_MAX (1u << 16)
#define BITMAP_ZLEVEL 3
/* raw batches from STABLE memory go out as one iovec per run up to this */
#define STABLE_IOV_MAX 256
/* ADAPTIVE: batches sent raw before compression is tried again */
#define SKIP_LINK 15u
#define SKIP_INCOMP_MAX 64u
#define WORKERS_MAX 64u

enum job_state { J_FREE, J_QUEUED, J_BUSY, J_DONE };

/* One batch on its way: what the caller asked, what a worker made. */
struct enc_job {
	/* set by the caller */
	uint32_t region;
	const uint8_t *mem;
	uint64_t *runs; /* 2 * batch_pages */
	size_t nruns;
	uint64_t pages;
	bool try_z;
	/* made by prepare: the payload, its checksum, the pages' hashes */
	uint8_t *stage; /* batch_pages pages */
	uint8_t *zbuf;	/* compressBound of a batch, with a level */
	ZSTD_CCtx *cctx;
	XXH3_state_t *hs;
	XXH128_hash_t *ph; /* per page, with page sums */
	struct iovec *pay; /* STABLE_IOV_MAX */
	int npay;
	size_t plen, zret;
	uint64_t xxh3;
	double comp_dt;
	bool zstd;
	enum job_state state;
};

struct enc_region {
	struct pmtrack_stream_region r;
	uint64_t pages;
	uint64_t stamp; /* last round that listed it (duplicate check) */
};

struct pmtrack_enc {
	pmtrack_write_fn write;
	void *write_arg;
	/* channels 1 .. nchan - 1 (channel 0 is write); batch k goes to
	   channel k mod nchan */
	uint32_t nchan;
	struct pmtrack_channel *chan;
	int (*flush0)(void *write_arg);
	uint32_t last_ch; /* the channel written last */
	uint64_t nbatch;
	size_t ps;
	int level;
	unsigned int flags;
	uint32_t batch_pages;
	uint64_t link_bw;

	size_t nregions;
	struct enc_region *regions;

	bool started, ended, broken;
	uint8_t id[PMTRACK_STREAM_ID_LEN];
	/* page sums: the caller's, or own_sums; NULL = no state digest */
	struct pmtrack_pagesums *sums, *own_sums;
	uint64_t last_round;
	uint64_t stamp;

	uint64_t *runs; /* 2 * batch_pages: the batch being built */
	struct iovec *iov;
	uint8_t *meta;
	size_t meta_cap;
	size_t zcap;

	/*
	 * Batches are prepared (copied, hashed, compressed) in jobs, by
	 * @nworkers threads or, with none, by the caller; the caller writes
	 * them in the order it submitted them.  Job seq lives in
	 * jobs[seq % njobs].
	 */
	struct enc_job *jobs;
	unsigned int njobs, nworkers, nthreads;
	pthread_t *th;
	pthread_mutex_t mu;
	pthread_cond_t cv_work, cv_done;
	bool sync_init, stop;
	uint64_t seq_submit, seq_take, seq_emit;

	/* ADAPTIVE state */
	double comp_bw, link_meas;
	unsigned int skip_left, skip_incomp, skip_reason;

	struct pmtrack_enc_stats st;
};

static double now_s(void)
{
	return (double)pmt_now_ns() / 1e9;
}

/* running average of a rate; the first sample starts it */
static void ewma(double *avg, double sample)
{
	*avg = *avg ? 0.75 * *avg + 0.25 * sample : sample;
}

static int meta_reserve(struct pmtrack_enc *enc, size_t len)
{
	uint8_t *p;

	if (len <= enc->meta_cap)
		return 0;
	p = realloc(enc->meta, len);
	if (!p)
		return -ENOMEM;
	enc->meta = p;
	enc->meta_cap = len;
	return 0;
}

/* the write callback and argument of channel @ch */
static pmtrack_write_fn chan_write(const struct pmtrack_enc *enc, uint32_t ch,
				   void **arg)
{
	*arg = ch ? enc->chan[ch - 1].arg : enc->write_arg;
	return ch ? enc->chan[ch - 1].write : enc->write;
}

/* One record on channel @ch: frame + packed @msg + payload iovecs. */
static int emit_on(struct pmtrack_enc *enc, uint32_t ch, uint8_t type,
		   const ProtobufCMessage *msg, const struct iovec *payload,
		   int npayload, size_t payload_len)
{
	void *warg;
	pmtrack_write_fn wr = chan_write(enc, ch, &warg);
	int (*fl)(void *) = enc->last_ch ? enc->chan[enc->last_ch - 1].flush
					 : enc->flush0;
	uint8_t frame[PMTRACK_FRAME_LEN];
	struct pmt_frame f = { .type = type };
	size_t mlen = protobuf_c_message_get_packed_size(msg);
	struct iovec *iov = enc->iov;
	/* ADAPTIVE without link_bw: the link speed is what writing takes */
	bool timed = payload_len && (enc->flags & PMTRACK_ENC_ADAPTIVE) &&
		     !enc->link_bw;
	double t0 = 0;
	int r;

	if (mlen > UINT32_MAX)
		return -EOVERFLOW;
	r = meta_reserve(enc, mlen);
	if (r)
		return r;
	protobuf_c_message_pack(msg, enc->meta);
	f.meta_len = (uint32_t)mlen;
	f.payload_len = payload_len;
	pmt_frame_put(frame, &f);
	f.check = pmt_frame_check(frame, enc->meta, mlen);
	pmt_frame_put(frame, &f);

	/* what the last channel holds goes out before another is written */
	if (ch != enc->last_ch && fl) {
		r = fl(enc->last_ch ? enc->chan[enc->last_ch - 1].arg
				    : enc->write_arg);
		if (r) {
			enc->broken = true;
			return r < 0 ? r : -EIO;
		}
	}
	enc->last_ch = ch;
	iov[0] = (struct iovec){ frame, sizeof(frame) };
	iov[1] = (struct iovec){ enc->meta, mlen };
	for (int i = 0; i < npayload; i++)
		iov[2 + i] = payload[i];
	if (timed)
		t0 = now_s();
	r = wr(warg, iov, 2 + npayload);
	if (r) {
		enc->broken = true;
		return r < 0 ? r : -EIO;
	}
	if (timed) {
		double dt = now_s() - t0;

		ewma(&enc->link_meas,
		     dt > 0 ? (double)(sizeof(frame) + mlen + payload_len) / dt
			    : 1e12);
	}
	enc->st.wire_bytes += sizeof(frame) + mlen + payload_len;
	return 0;
}

/* One record on channel 0. */
static int emit(struct pmtrack_enc *enc, uint8_t type,
		const ProtobufCMessage *msg, const struct iovec *payload,
		int npayload, size_t payload_len)
{
	return emit_on(enc, 0, type, msg, payload, npayload, payload_len);
}

int pmtrack_write_fd(void *arg, const struct iovec *iov, int iovcnt)
{
	int fd = (int)(intptr_t)arg;
	struct iovec local[64];

	while (iovcnt > 0) {
		int n = iovcnt < 64 ? iovcnt : 64;
		ssize_t w;

		memcpy(local, iov, (size_t)n * sizeof(*iov));
		for (int i = 0; i < n;) {
			w = writev(fd, local + i, n - i);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			while (i < n && (size_t)w >= local[i].iov_len)
				w -= (ssize_t)local[i++].iov_len;
			if (i < n) {
				local[i].iov_base =
					(char *)local[i].iov_base + w;
				local[i].iov_len -= (size_t)w;
			}
		}
		iov += n;
		iovcnt -= n;
	}
	return 0;
}

static bool page_size_ok(size_t ps)
{
	return ps >= PMT_PAGE_MIN && ps <= PMT_PAGE_MAX && !(ps & (ps - 1));
}

static int check_regions(const struct pmtrack_stream_region *rg, size_t n,
			 size_t ps)
{
	if (!rg || !n || n > PMT_MAX_REGIONS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!rg[i].length || rg[i].length % ps || rg[i].start % ps ||
		    rg[i].start + rg[i].length < rg[i].start)
			return -EINVAL;
		if (rg[i].name && strlen(rg[i].name) > PMT_NAME_MAX)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (rg[j].id == rg[i].id)
				return -EINVAL;
	}
	return 0;
}

static int write_header(struct pmtrack_enc *enc, const char *producer,
			const uint8_t *sid, const uint8_t *pid)
{
	Pmtrack__StreamHeader h = PMTRACK__STREAM_HEADER__INIT;
	Pmtrack__Region *rs, **rp;
	uint8_t pre[PMTRACK_STREAM_PREAMBLE_LEN];
	struct iovec iov = { pre, sizeof(pre) };
	int r;

	rs = calloc(enc->nregions, sizeof(*rs));
	rp = calloc(enc->nregions, sizeof(*rp));
	if (!rs || !rp) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < enc->nregions; i++) {
		const struct pmtrack_stream_region *g = &enc->regions[i].r;

		pmtrack__region__init(&rs[i]);
		rs[i].id = g->id;
		rs[i].start = g->start;
		rs[i].length = g->length;
		rs[i].has_flags = g->flags != 0;
		rs[i].flags = g->flags;
		rs[i].name = (char *)g->name;
		rp[i] = &rs[i];
	}
	h.page_size = (uint32_t)enc->ps;
	h.producer = (char *)producer;
	h.stream_id.data = (uint8_t *)sid;
	h.stream_id.len = PMTRACK_STREAM_ID_LEN;
	h.has_parent_id = pid != NULL;
	h.parent_id.data = (uint8_t *)pid;
	h.parent_id.len = pid ? PMTRACK_STREAM_ID_LEN : 0;
	h.n_regions = enc->nregions;
	h.regions = rp;
	h.has_channels = enc->nchan > 1;
	h.channels = enc->nchan;
	h.has_state = enc->sums != NULL;
	h.state = enc->sums != NULL;

	pmt_preamble_put(pre);
	r = enc->write(enc->write_arg, &iov, 1);
	if (r) {
		r = r < 0 ? r : -EIO;
		goto out;
	}
	enc->st.wire_bytes += sizeof(pre);
	r = emit(enc, PMTRACK_REC_HEADER, &h.base, NULL, 0, 0);
out:
	free(rs);
	free(rp);
	return r;
}

static void enc_stop_workers(struct pmtrack_enc *enc)
{
	if (!enc->sync_init)
		return;
	pthread_mutex_lock(&enc->mu);
	enc->stop = true;
	pthread_cond_broadcast(&enc->cv_work);
	pthread_mutex_unlock(&enc->mu);
	for (unsigned int i = 0; i < enc->nthreads; i++)
		pthread_join(enc->th[i], NULL);
	free(enc->th);
	pthread_mutex_destroy(&enc->mu);
	pthread_cond_destroy(&enc->cv_work);
	pthread_cond_destroy(&enc->cv_done);
	enc->sync_init = false;
}

void pmtrack_enc_free(struct pmtrack_enc *enc)
{
	if (!enc)
		return;
	for (size_t i = 0; i < enc->nregions; i++)
		free((char *)enc->regions[i].r.name);
	free(enc->regions);
	free(enc->chan);
	enc_stop_workers(enc);
	for (unsigned int i = 0; enc->jobs && i < enc->njobs; i++) {
		struct enc_job *j = &enc->jobs[i];

		ZSTD_freeCCtx(j->cctx);
		free(j->stage);
		free(j->zbuf);
		free(j->runs);
		free(j->ph);
		free(j->pay);
		XXH3_freeState(j->hs);
	}
	free(enc->jobs);
	free(enc->runs);
	free(enc->iov);
	free(enc->meta);
	pmtrack_pagesums_free(enc->own_sums);
	free(enc);
}

/* Channels 1 .. @n - 1 from @c, each with a write callback. */
static int enc_take_channels(struct pmtrack_enc *enc, uint32_t n,
			     const struct pmtrack_channel *c)
{
	enc->nchan = n ? n : 1;
	if (enc->nchan > PMTRACK_CHANNELS_MAX || (enc->nchan > 1 && !c))
		return -EINVAL;
	if (enc->nchan == 1)
		return 0;
	enc->chan = calloc(enc->nchan - 1, sizeof(*enc->chan));
	if (!enc->chan)
		return -ENOMEM;
	for (uint32_t i = 0; i + 1 < enc->nchan; i++) {
		if (!c[i].write)
			return -EINVAL;
		enc->chan[i] = c[i];
	}
	return 0;
}

/* Take the options into @enc and check them. */
static int enc_take_opts(struct pmtrack_enc *enc,
			 const struct pmtrack_enc_opts *opts,
			 const char **producer, const uint8_t **id)
{
	enc->write = opts->write;
	enc->write_arg = opts->write_arg;
	enc->ps = PMT_OPTS_GET(opts, page_size, 0);
	if (!enc->ps)
		enc->ps = (size_t)sysconf(_SC_PAGESIZE);
	enc->level = PMT_OPTS_GET(opts, level, 0);
	enc->flags = PMT_OPTS_GET(opts, flags, 0u);
	enc->batch_pages = PMT_OPTS_GET(opts, batch_pages, 0u);
	if (!enc->batch_pages)
		enc->batch_pages = BATCH_PAGES_DEFAULT;
	enc->link_bw = PMT_OPTS_GET(opts, link_bw, 0);
	enc->sums = PMT_OPTS_GET(opts, sums, NULL);
	enc->nworkers = PMT_OPTS_GET(opts, workers, 0u);
	if (enc->nworkers > WORKERS_MAX)
		return -EINVAL;
	if (enc->sums && (enc->flags & PMTRACK_ENC_NO_STATE))
		return -EINVAL;
	*producer = PMT_OPTS_GET(opts, producer, NULL);
	*id = PMT_OPTS_GET(opts, stream_id, NULL);
	if (!page_size_ok(enc->ps) ||
	    enc->flags & ~(unsigned int)(PMTRACK_ENC_ADAPTIVE |
					 PMTRACK_ENC_STABLE |
					 PMTRACK_ENC_NO_STATE) ||
	    enc->batch_pages > BATCH_PAGES_MAX ||
	    (uint64_t)enc->batch_pages * enc->ps > (1ULL << 31) ||
	    (enc->level && (enc->level < ZSTD_minCLevel() ||
			    enc->level > ZSTD_maxCLevel())) ||
	    (*producer && strlen(*producer) > PMT_NAME_MAX))
		return -EINVAL;
	enc->flush0 = PMT_OPTS_GET(opts, flush, NULL);
	return enc_take_channels(enc, PMT_OPTS_GET(opts, channels, 0u),
				 PMT_OPTS_GET(opts, channel, NULL));
}

/* Each extra channel's preamble and CHANNEL record. */
static int enc_channel_hellos(struct pmtrack_enc *enc)
{
	uint8_t pre[PMTRACK_STREAM_PREAMBLE_LEN];
	struct iovec iov = { pre, sizeof(pre) };
	int r;

	pmt_preamble_put(pre);
	for (uint32_t ch = 1; ch < enc->nchan; ch++) {
		Pmtrack__Channel m = PMTRACK__CHANNEL__INIT;

		m.stream_id.data = enc->id;
		m.stream_id.len = PMTRACK_STREAM_ID_LEN;
		m.index = ch;
		m.count = enc->nchan;
		r = enc->chan[ch - 1].write(enc->chan[ch - 1].arg, &iov, 1);
		if (r)
			return r < 0 ? r : -EIO;
		enc->st.wire_bytes += sizeof(pre);
		r = emit_on(enc, ch, PMTRACK_REC_CHANNEL, &m.base, NULL, 0, 0);
		if (r)
			return r;
	}
	return 0;
}

/* The producer and stream id the caller left out: ours, and a random one. */
static int enc_default_ids(const char **producer, char *defprod, size_t defsz,
			   const uint8_t **id,
			   uint8_t sid[PMTRACK_STREAM_ID_LEN])
{
	if (!*producer) {
		snprintf(defprod, defsz, "libpmtrack %s",
			 PMTRACK_VERSION_STRING);
		*producer = defprod;
	}
	if (!*id) {
		/* a short read (never for 16 bytes) sets no errno */
		if (getrandom(sid, PMTRACK_STREAM_ID_LEN, 0) !=
		    (ssize_t)PMTRACK_STREAM_ID_LEN)
			return errno ? -errno : -EIO;
		*id = sid;
	}
	return 0;
}

/* Our copy of the region table, names included. */
static int enc_copy_regions(struct pmtrack_enc *enc,
			    const struct pmtrack_stream_region *regions,
			    size_t nregions)
{
	enc->regions = calloc(nregions, sizeof(*enc->regions));
	if (!enc->regions)
		return -ENOMEM;
	enc->nregions = nregions;
	for (size_t i = 0; i < nregions; i++) {
		enc->regions[i].r = regions[i];
		enc->regions[i].r.name = NULL;
		if (regions[i].name &&
		    !(enc->regions[i].r.name = strdup(regions[i].name)))
			return -ENOMEM;
		enc->regions[i].pages = regions[i].length / enc->ps;
	}
	return 0;
}

/* A job's buffers, and its compressor if there is a level. */
static int job_alloc(struct pmtrack_enc *enc, struct enc_job *j)
{
	size_t bp = enc->batch_pages;

	j->stage = malloc(bp * enc->ps);
	j->runs = malloc(2 * bp * sizeof(*j->runs));
	j->pay = malloc(STABLE_IOV_MAX * sizeof(*j->pay));
	j->hs = XXH3_createState();
	if (!j->stage || !j->runs || !j->pay || !j->hs)
		return -ENOMEM;
	if (enc->sums && !(j->ph = malloc(bp * sizeof(*j->ph))))
		return -ENOMEM;
	if (!enc->level)
		return 0;
	j->cctx = ZSTD_createCCtx();
	j->zbuf = malloc(enc->zcap);
	if (!j->cctx || !j->zbuf)
		return -ENOMEM;
	ZSTD_CCtx_setParameter(j->cctx, ZSTD_c_compressionLevel, enc->level);
	ZSTD_CCtx_setParameter(j->cctx, ZSTD_c_checksumFlag, 0);
	ZSTD_CCtx_setParameter(j->cctx, ZSTD_c_contentSizeFlag, 1);
	return 0;
}

static void *enc_worker(void *arg);

/* The worker threads, and two jobs for each so that none waits. */
static int enc_start_workers(struct pmtrack_enc *enc)
{
	if (!enc->nworkers)
		return 0;
	enc->th = calloc(enc->nworkers, sizeof(*enc->th));
	if (!enc->th)
		return -ENOMEM;
	if (pthread_mutex_init(&enc->mu, NULL))
		return -ENOMEM;
	if (pthread_cond_init(&enc->cv_work, NULL)) {
		pthread_mutex_destroy(&enc->mu);
		return -ENOMEM;
	}
	if (pthread_cond_init(&enc->cv_done, NULL)) {
		pthread_cond_destroy(&enc->cv_work);
		pthread_mutex_destroy(&enc->mu);
		return -ENOMEM;
	}
	enc->sync_init = true;
	for (; enc->nthreads < enc->nworkers; enc->nthreads++) {
		int r = pthread_create(&enc->th[enc->nthreads], NULL,
				       enc_worker, enc);

		if (r)
			return -r;
	}
	return 0;
}

/* The buffers batches are built in: one job inline, 2 per worker. */
static int enc_alloc_buffers(struct pmtrack_enc *enc)
{
	size_t bp = enc->batch_pages;
	int r;

	enc->runs = malloc(2 * bp * sizeof(*enc->runs));
	enc->iov = malloc((2 + (bp > STABLE_IOV_MAX ? STABLE_IOV_MAX : bp)) *
			  sizeof(*enc->iov));
	if (!enc->runs || !enc->iov)
		return -ENOMEM;
	enc->zcap = enc->level ? ZSTD_compressBound(bp * enc->ps) : 0;
	enc->njobs = enc->nworkers ? 2 * enc->nworkers : 1;
	enc->jobs = calloc(enc->njobs, sizeof(*enc->jobs));
	if (!enc->jobs)
		return -ENOMEM;
	for (unsigned int i = 0; i < enc->njobs; i++) {
		r = job_alloc(enc, &enc->jobs[i]);
		if (r)
			return r;
	}
	return enc_start_workers(enc);
}

/*
 * The page sums this stream keeps: the caller's (which must hold the
 * parent's state for a child stream), our own for a stream without a
 * parent, or none.
 */
static int enc_bind_sums(struct pmtrack_enc *enc,
			 const struct pmtrack_stream_region *regions,
			 size_t nregions, const uint8_t *parent)
{
	int r;

	if (enc->flags & PMTRACK_ENC_NO_STATE)
		return 0;
	if (!enc->sums) {
		if (parent)
			return 0;
		r = pmtrack_pagesums_new(&enc->own_sums);
		if (r)
			return r;
		enc->sums = enc->own_sums;
	}
	if (parent && !pmt_ps_follows(enc->sums, parent))
		return -EINVAL;
	return pmt_ps_bind(enc->sums, regions, nregions, enc->ps, !parent);
}

int pmtrack_enc_new(const struct pmtrack_enc_opts *opts,
		    const struct pmtrack_stream_region *regions,
		    size_t nregions, struct pmtrack_enc **out)
{
	char defprod[64];
	const char *producer;
	uint8_t sid[PMTRACK_STREAM_ID_LEN];
	const uint8_t *id, *parent;
	struct pmtrack_enc *enc;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!opts || !PMT_OPTS_VALID(opts, pmtrack_enc_opts) || !opts->write)
		return -EINVAL;
	enc = calloc(1, sizeof(*enc));
	if (!enc)
		return -ENOMEM;
	r = enc_take_opts(enc, opts, &producer, &id);
	if (r)
		goto fail;
	r = check_regions(regions, nregions, enc->ps);
	if (r)
		goto fail;
	r = enc_default_ids(&producer, defprod, sizeof(defprod), &id, sid);
	if (r)
		goto fail;
	r = enc_copy_regions(enc, regions, nregions);
	if (r)
		goto fail;
	memcpy(enc->id, id, sizeof(enc->id));
	parent = PMT_OPTS_GET(opts, parent_id, NULL);
	r = enc_bind_sums(enc, regions, nregions, parent);
	if (r)
		goto fail;
	r = enc_alloc_buffers(enc);
	if (r)
		goto fail;
	r = write_header(enc, producer, id, parent);
	if (!r)
		r = enc_channel_hellos(enc);
	if (r)
		goto fail;
	enc->started = true;
	*out = enc;
	return 0;
fail:
	pmtrack_enc_free(enc);
	return r;
}

/* --- bitmaps ----------------------------------------------------------- */

struct enc_bitmap {
	Pmtrack__Bitmap msg;
	uint64_t *runs;
	void *z;
};

static void bitmap_release(struct enc_bitmap *b)
{
	free(b->runs);
	free(b->z);
	b->runs = NULL;
	b->z = NULL;
}

/*
 * Encode w[0..nbits) as runs or as zstd words, whichever is smaller; bits
 * past nbits in the last word are ignored.  Words only with at least one
 * bit per word (proto/bitmap.proto): a decoder refuses fewer.  Runs always
 * fit then, since each run holds a bit.
 */
static int bitmap_encode(struct enc_bitmap *b, const uint64_t *w,
			 uint64_t nbits)
{
	size_t nw = pmt_nwords(nbits), bytes = nw * 8, npairs = 0, rlen;
	/* runs are tried while they could beat the raw words */
	size_t max = bytes / 2 + 1;
	uint64_t set = 0, last = pmt_word_mask(nw - 1, 0, nbits);
	bool fits;

	pmtrack__bitmap__init(&b->msg);
	b->runs = NULL;
	b->z = NULL;
	fits = pmt_bits_to_runs(w, nbits, NULL, max, &npairs, &set);
	rlen = SIZE_MAX;
	if (fits) {
		b->runs = malloc((2 * npairs + 1) * sizeof(uint64_t));
		if (!b->runs)
			return -ENOMEM;
		pmt_bits_to_runs(w, nbits, b->runs, npairs, &npairs, &set);
		rlen = pmt_varints_len(b->runs, 2 * npairs);
	} else {
		set = pmt_bits_count(w, nw - 1) +
		      (uint64_t)__builtin_popcountll(w[nw - 1] & last);
	}
	b->msg.count = set;
	if (rlen > 32 && set >= nw) {
		size_t cap = ZSTD_compressBound(bytes), zlen;
		uint8_t *le = malloc(bytes);

		b->z = malloc(cap);
		if (!b->z || !le) {
			free(le);
			return -ENOMEM;
		}
		for (size_t i = 0; i < nw; i++)
			pmt_put_le64(le + 8 * i,
				     i + 1 < nw ? w[i] : w[i] & last);
		zlen = ZSTD_compress(b->z, cap, le, bytes, BITMAP_ZLEVEL);
		free(le);
		if (ZSTD_isError(zlen))
			return -EIO;
		if (zlen < rlen) {
			b->msg.has_zwords = 1;
			b->msg.zwords.data = b->z;
			b->msg.zwords.len = zlen;
			return 0;
		}
	}
	b->msg.n_runs = 2 * npairs;
	b->msg.runs = b->runs;
	return 0;
}

/* --- rounds and batches ------------------------------------------------ */

static bool page_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t acc = 0;

	for (size_t i = 0; i < len / 8; i += 8) {
		for (size_t j = 0; j < 8; j++)
			acc |= w[i + j];
		if (acc)
			return false;
	}
	return true;
}

struct batch {
	uint32_t region;
	const uint8_t *mem;
	size_t nruns; /* pairs in enc->runs */
	uint64_t pages;
	uint64_t end; /* end of the last run */
};

static void adapt_skip(struct pmtrack_enc *enc, unsigned int n,
		       unsigned int reason)
{
	enc->skip_left = n;
	enc->skip_reason = reason;
}

/* ADAPTIVE: whether this batch goes raw untried, the skip counted. */
static bool batch_skips_z(struct pmtrack_enc *enc)
{
	if (!(enc->flags & PMTRACK_ENC_ADAPTIVE) || !enc->skip_left)
		return false;
	enc->skip_left--;
	if (enc->skip_reason)
		enc->st.skipped_link++;
	else
		enc->st.skipped_incompressible++;
	return true;
}

/* each page's XXH3-128, for the page sums */
static void job_page_hashes(const struct pmtrack_enc *enc, struct enc_job *j,
			    const uint8_t *p, uint64_t n, uint64_t *k)
{
	for (uint64_t i = 0; i < n; i++)
		j->ph[(*k)++] = XXH3_128bits(p + i * enc->ps, enc->ps);
}

/* Raw from STABLE memory: one iovec per run, straight from the pages. */
static void job_gather_stable(const struct pmtrack_enc *enc, struct enc_job *j)
{
	XXH3_state_t *hs = j->hs;
	uint64_t pos = 0, k = 0;

	XXH3_64bits_reset(hs);
	for (size_t i = 0; i < j->nruns; i++) {
		pos += j->runs[2 * i];
		j->pay[i].iov_base = (void *)(j->mem + pos * enc->ps);
		j->pay[i].iov_len = j->runs[2 * i + 1] * enc->ps;
		XXH3_64bits_update(hs, j->pay[i].iov_base, j->pay[i].iov_len);
		if (j->ph)
			job_page_hashes(enc, j, j->pay[i].iov_base,
					j->runs[2 * i + 1], &k);
		pos += j->runs[2 * i + 1];
	}
	j->xxh3 = XXH3_64bits_digest(hs);
	j->npay = (int)j->nruns;
}

/* The pages copied into the job's stage, as one iovec. */
static void job_gather_copy(const struct pmtrack_enc *enc, struct enc_job *j)
{
	size_t raw = j->pages * enc->ps;
	uint8_t *dst = j->stage;
	uint64_t pos = 0, k = 0;

	/* one read of each page: what is hashed is what is sent */
	PMT_LIVE_READ_BEGIN();
	for (size_t i = 0; i < j->nruns; i++) {
		size_t len = j->runs[2 * i + 1] * enc->ps;

		pos += j->runs[2 * i];
		memcpy(dst, j->mem + pos * enc->ps, len);
		dst += len;
		pos += j->runs[2 * i + 1];
	}
	PMT_LIVE_READ_END();
	j->xxh3 = XXH3_64bits(j->stage, raw);
	if (j->ph)
		job_page_hashes(enc, j, j->stage, j->pages, &k);
	j->pay[0] = (struct iovec){ j->stage, raw };
	j->npay = 1;
}

/*
 * Prepare a job: gather, hash and maybe compress its pages.  Reads only
 * the encoder's settings, so workers run it side by side.
 */
static void job_prepare(const struct pmtrack_enc *enc, struct enc_job *j)
{
	size_t raw = j->pages * enc->ps;
	bool adaptive = enc->flags & PMTRACK_ENC_ADAPTIVE;
	double t0;

	if ((enc->flags & PMTRACK_ENC_STABLE) && !j->try_z &&
	    j->nruns <= STABLE_IOV_MAX)
		job_gather_stable(enc, j);
	else
		job_gather_copy(enc, j);
	j->plen = raw;
	j->zstd = false;
	if (!j->try_z)
		return;
	t0 = adaptive ? now_s() : 0;
	j->zret = ZSTD_compress2(j->cctx, j->zbuf, enc->zcap, j->stage, raw);
	j->comp_dt = adaptive ? now_s() - t0 : 0;
	/* never send more than the raw pages */
	if (!ZSTD_isError(j->zret) && j->zret < raw) {
		j->zstd = true;
		j->plen = j->zret;
		j->pay[0] = (struct iovec){ j->zbuf, j->zret };
	}
}

static void *enc_worker(void *arg)
{
	struct pmtrack_enc *enc = arg;
	struct enc_job *j;

	pthread_mutex_lock(&enc->mu);
	for (;;) {
		while (!enc->stop && enc->seq_take == enc->seq_submit)
			pthread_cond_wait(&enc->cv_work, &enc->mu);
		if (enc->stop)
			break;
		j = &enc->jobs[enc->seq_take++ % enc->njobs];
		j->state = J_BUSY;
		pthread_mutex_unlock(&enc->mu);
		job_prepare(enc, j);
		pthread_mutex_lock(&enc->mu);
		j->state = J_DONE;
		pthread_cond_broadcast(&enc->cv_done);
	}
	pthread_mutex_unlock(&enc->mu);
	return NULL;
}

/* ADAPTIVE: given @raw bytes compressed to @z, when to try again. */
static void adapt_after(struct pmtrack_enc *enc, size_t raw, size_t z)
{
	double lbw = enc->link_bw ? (double)enc->link_bw : enc->link_meas;

	if (ZSTD_isError(z) || z >= raw - raw / 32) {
		/* incompressible: back off exponentially */
		enc->skip_incomp = enc->skip_incomp ? enc->skip_incomp * 2 : 1;
		if (enc->skip_incomp > SKIP_INCOMP_MAX)
			enc->skip_incomp = SKIP_INCOMP_MAX;
		adapt_skip(enc, enc->skip_incomp, 0);
		return;
	}
	enc->skip_incomp = 0;
	/* compressing costs more time than it saves */
	if (lbw > 0 && enc->comp_bw > 0 &&
	    (double)raw / enc->comp_bw > (double)(raw - z) / lbw)
		adapt_skip(enc, SKIP_LINK, 1);
}

/* the job's page hashes into the page sums, in run order */
static int job_sums(struct pmtrack_enc *enc, const struct enc_job *j)
{
	uint64_t pos = 0, k = 0;

	for (size_t i = 0; enc->sums && i < j->nruns; i++) {
		pos += j->runs[2 * i];
		for (uint64_t e = pos + j->runs[2 * i + 1]; pos < e; pos++)
			if (pmt_ps_put(enc->sums, j->region, pos, j->ph[k++]))
				return -ENOMEM;
	}
	return 0;
}

/* Write a prepared job: its BATCH record, then its page sums. */
static int job_emit(struct pmtrack_enc *enc, struct enc_job *j)
{
	Pmtrack__Batch m = PMTRACK__BATCH__INIT;
	size_t raw = j->pages * enc->ps;
	int r;

	if (j->try_z && (enc->flags & PMTRACK_ENC_ADAPTIVE)) {
		if (!ZSTD_isError(j->zret) && j->comp_dt > 0)
			ewma(&enc->comp_bw, (double)raw / j->comp_dt);
		adapt_after(enc, raw, j->zret);
	}
	m.region = j->region;
	m.n_runs = 2 * j->nruns;
	m.runs = j->runs;
	m.codec = j->zstd ? PMTRACK__CODEC__ZSTD : PMTRACK__CODEC__RAW;
	m.raw_len = raw;
	m.xxh3 = j->xxh3;
	r = emit_on(enc, (uint32_t)(enc->nbatch++ % enc->nchan),
		    PMTRACK_REC_BATCH, &m.base, j->pay, j->npay, j->plen);
	if (!r)
		r = job_sums(enc, j);
	if (r)
		return r;
	enc->st.batches++;
	enc->st.batches_zstd += j->zstd;
	enc->st.pages += j->pages;
	enc->st.page_bytes += raw;
	enc->st.payload_bytes += j->plen;
	return 0;
}

/*
 * Wait for the oldest job in flight and write it (if @write: after an
 * error the rest are only waited for, since they may read the caller's
 * memory).
 */
static int job_retire(struct pmtrack_enc *enc, bool write)
{
	struct enc_job *j = &enc->jobs[enc->seq_emit % enc->njobs];
	int r = 0;

	pthread_mutex_lock(&enc->mu);
	while (j->state != J_DONE)
		pthread_cond_wait(&enc->cv_done, &enc->mu);
	pthread_mutex_unlock(&enc->mu);
	if (write)
		r = job_emit(enc, j);
	j->state = J_FREE;
	enc->seq_emit++;
	return r;
}

/* Every job in flight written (or, after an error, waited for). */
static int jobs_drain(struct pmtrack_enc *enc, int r)
{
	while (enc->seq_emit < enc->seq_submit) {
		int e = job_retire(enc, !r);

		if (!r)
			r = e;
	}
	return r;
}

static int batch_flush(struct pmtrack_enc *enc, struct batch *b)
{
	struct enc_job *j;
	int r = 0;

	if (!b->pages)
		return 0;
	if (!enc->nworkers) {
		j = &enc->jobs[0];
	} else {
		/* the slot's previous job first */
		if (enc->seq_submit - enc->seq_emit == enc->njobs)
			r = job_retire(enc, true);
		if (r)
			return r;
		j = &enc->jobs[enc->seq_submit % enc->njobs];
	}
	j->region = b->region;
	j->mem = b->mem;
	j->nruns = b->nruns;
	j->pages = b->pages;
	memcpy(j->runs, enc->runs, 2 * b->nruns * sizeof(*j->runs));
	j->try_z = enc->level && !batch_skips_z(enc);
	b->nruns = 0;
	b->pages = 0;
	b->end = 0;
	if (!enc->nworkers) {
		job_prepare(enc, j);
		return job_emit(enc, j);
	}
	pthread_mutex_lock(&enc->mu);
	j->state = J_QUEUED;
	enc->seq_submit++;
	pthread_cond_signal(&enc->cv_work);
	pthread_mutex_unlock(&enc->mu);
	return 0;
}

/* Batch the set bits of @send (dirty and not zero) of one region. */
static int region_batches(struct pmtrack_enc *enc, uint32_t region,
			  const void *mem, const uint64_t *send)
{
	struct batch b = { .region = region, .mem = mem };
	uint64_t n = enc->regions[region].pages, pos = 0;
	int r;

	for (;;) {
		uint64_t s = pmt_bits_next(send, n, pos), e;

		if (s >= n)
			break;
		e = pmt_bits_next_clear(send, n, s);
		while (s < e) {
			uint64_t take = e - s,
				 room = enc->batch_pages - b.pages;

			if (take > room)
				take = room;
			enc->runs[2 * b.nruns] = s - b.end;
			enc->runs[2 * b.nruns + 1] = take;
			b.nruns++;
			b.pages += take;
			s += take;
			b.end = s;
			if (b.pages == enc->batch_pages) {
				r = batch_flush(enc, &b);
				if (r)
					return r;
			}
		}
		pos = e;
	}
	return batch_flush(enc, &b);
}

struct round_region {
	uint64_t *dirty; /* masked copy */
	uint64_t *zero;
	uint64_t nzero;
	struct enc_bitmap bd, bs, bz;
	Pmtrack__RegionMaps maps;
};

/* A round's arguments; each region at most once. */
static int round_check(struct pmtrack_enc *enc, uint64_t round,
		       const struct pmtrack_enc_region_round *rr, size_t n)
{
	if (!enc || (n && !rr))
		return -EINVAL;
	if (enc->broken)
		return -EPIPE;
	if (enc->ended || (enc->st.rounds && round <= enc->last_round))
		return -EINVAL;
	enc->stamp++;
	for (size_t i = 0; i < n; i++) {
		struct enc_region *g;

		if (rr[i].region >= enc->nregions || !rr[i].dirty || !rr[i].mem)
			return -EINVAL;
		g = &enc->regions[rr[i].region];
		if (g->stamp == enc->stamp)
			return -EINVAL;
		g->stamp = enc->stamp;
	}
	return 0;
}

/* The dirty bits inside the region, and which of those pages are zero. */
static int round_scan(struct pmtrack_enc *enc, struct round_region *x,
		      const struct pmtrack_enc_region_round *rr)
{
	uint64_t np = enc->regions[rr->region].pages;
	size_t nw = pmt_nwords(np);
	const uint8_t *mem = rr->mem;

	x->dirty = malloc(nw * 8);
	x->zero = calloc(nw, 8);
	if (!x->dirty || !x->zero)
		return -ENOMEM;
	memcpy(x->dirty, rr->dirty, nw * 8);
	x->dirty[nw - 1] &= pmt_word_mask(nw - 1, 0, np);
	PMT_LIVE_READ_BEGIN();
	for (uint64_t p = pmt_bits_next(x->dirty, np, 0); p < np;
	     p = pmt_bits_next(x->dirty, np, p + 1)) {
		if (page_is_zero(mem + p * enc->ps, enc->ps)) {
			pmt_bit_set(x->zero, p);
			x->nzero++;
			if (enc->sums &&
			    pmt_ps_pages(enc->sums, rr->region, p, 1, NULL))
				return -ENOMEM;
		}
	}
	PMT_LIVE_READ_END();
	return 0;
}

/* The region's dirty, swap and zero bitmaps, encoded into x->maps. */
static int round_maps(struct pmtrack_enc *enc, struct round_region *x,
		      const struct pmtrack_enc_region_round *rr)
{
	uint64_t np = enc->regions[rr->region].pages;
	int r;

	pmtrack__region_maps__init(&x->maps);
	x->maps.region = rr->region;
	r = bitmap_encode(&x->bd, x->dirty, np);
	if (r)
		return r;
	x->maps.dirty = &x->bd.msg;
	if (rr->swap) {
		r = bitmap_encode(&x->bs, rr->swap, np);
		if (r)
			return r;
		x->maps.swap = &x->bs.msg;
	}
	if (x->nzero) {
		r = bitmap_encode(&x->bz, x->zero, np);
		if (r)
			return r;
		x->maps.zero = &x->bz.msg;
	}
	return 0;
}

/* The ROUND record: every listed region's bitmaps. */
static int round_record(struct pmtrack_enc *enc, uint64_t round,
			const struct pmtrack_enc_region_round *rr, size_t n,
			struct round_region *rs, Pmtrack__RegionMaps **mp)
{
	Pmtrack__Round m = PMTRACK__ROUND__INIT;
	uint64_t zeros = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		r = round_scan(enc, &rs[i], &rr[i]);
		if (r)
			return r;
		r = round_maps(enc, &rs[i], &rr[i]);
		if (r)
			return r;
		zeros += rs[i].nzero;
		mp[i] = &rs[i].maps;
	}
	m.number = round;
	m.n_regions = n;
	m.regions = mp;
	r = emit(enc, PMTRACK_REC_ROUND, &m.base, NULL, 0, 0);
	if (r)
		return r;
	enc->st.rounds++;
	enc->last_round = round;
	enc->st.zero_pages += zeros;
	return 0;
}

/* The BATCHes of a round: the dirty pages that are not zero. */
static int round_batches(struct pmtrack_enc *enc,
			 const struct pmtrack_enc_region_round *rr, size_t n,
			 struct round_region *rs)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		struct round_region *x = &rs[i];
		size_t nw = pmt_nwords(enc->regions[rr[i].region].pages);

		for (size_t w = 0; w < nw; w++)
			x->dirty[w] &= ~x->zero[w];
		r = region_batches(enc, rr[i].region, rr[i].mem, x->dirty);
		if (r)
			break;
	}
	/* the caller's memory is read by no one once this returns */
	return enc->nworkers ? jobs_drain(enc, r) : r;
}

static void round_release(struct round_region *rs, size_t n)
{
	for (size_t i = 0; rs && i < n; i++) {
		free(rs[i].dirty);
		free(rs[i].zero);
		bitmap_release(&rs[i].bd);
		bitmap_release(&rs[i].bs);
		bitmap_release(&rs[i].bz);
	}
	free(rs);
}

int pmtrack_enc_round(struct pmtrack_enc *enc, uint64_t round,
		      const struct pmtrack_enc_region_round *rr, size_t n)
{
	Pmtrack__RegionMaps **mp;
	struct round_region *rs;
	int r;

	r = round_check(enc, round, rr, n);
	if (r)
		return r;
	rs = calloc(n ? n : 1, sizeof(*rs));
	mp = calloc(n ? n : 1, sizeof(*mp));
	r = rs && mp ? round_record(enc, round, rr, n, rs, mp) : -ENOMEM;
	if (!r)
		r = round_batches(enc, rr, n, rs);
	if (r && r != -EINVAL)
		enc->broken = true;
	round_release(rs, n);
	free(mp);
	return r;
}

int pmtrack_enc_end(struct pmtrack_enc *enc,
		    const uint8_t digest[PMTRACK_DIGEST_LEN])
{
	Pmtrack__End m = PMTRACK__END__INIT;
	uint8_t state[PMTRACK_DIGEST_LEN];
	int r;

	if (!enc)
		return -EINVAL;
	if (enc->broken)
		return -EPIPE;
	if (enc->ended)
		return -EINVAL;
	m.rounds = enc->st.rounds;
	m.pages = enc->st.pages;
	m.zero_pages = enc->st.zero_pages;
	if (digest) {
		m.has_digest = 1;
		m.digest.data = (uint8_t *)digest;
		m.digest.len = PMTRACK_DIGEST_LEN;
	}
	if (enc->sums) {
		if (pmtrack_pagesums_state(enc->sums, state))
			return -ENOMEM; /* an entry could not be kept */
		m.has_state = 1;
		m.state.data = state;
		m.state.len = sizeof(state);
	}
	r = emit(enc, PMTRACK_REC_END, &m.base, NULL, 0, 0);
	if (r)
		return r;
	enc->ended = true;
	if (enc->sums)
		pmt_ps_ended(enc->sums, enc->id);
	return 0;
}

int pmtrack_enc_get_stats(const struct pmtrack_enc *enc,
			  struct pmtrack_enc_stats *st)
{
	if (!enc)
		return -EINVAL;
	return pmt_stats_out(st, &enc->st, sizeof(enc->st));
}

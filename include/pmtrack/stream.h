/* SPDX-License-Identifier: MIT */
/*
 * libpmtrack stream format: one self-describing byte stream for migration
 * (over a socket) and checkpoints (in a file).
 *
 * Layout (all integers little-endian; the record bodies are protobuf
 * messages from proto/ in the source tree):
 *
 *   preamble   8-byte magic 89 'P' 'M' 'T' 0d 0a 1a 0a, le32 format
 *              version (PMTRACK_STREAM_VERSION), le32 flags (0)
 *   record     24-byte frame, then meta_len bytes of protobuf, then
 *              payload_len bytes of payload (page batches only):
 *                u8 type, u8 flags, le16 reserved (0), le32 meta_len,
 *                le64 payload_len, le64 check
 *              check = XXH3-64 of the meta bytes, seeded with the XXH3-64
 *              of the frame's first 16 bytes.
 *
 *   HEADER     page size, producer, stream id, parent id, region table
 *   ROUND      round number; per region a dirty, swap and zero bitmap
 *   BATCH      region, page runs, codec (raw | zstd), raw length and the
 *              XXH3-64 of the uncompressed pages; the payload follows
 *   END        rounds, pages and zero pages sent, XXH3-128 memory digest
 *
 * Order: HEADER, then any number of (ROUND, BATCH...), then END.
 *
 * Channels: a stream may span several connections (QEMU's multifd).  Its
 * HEADER says how many; channel 0 carries every record but the batches
 * of the others, and batch k of the stream (counted from 0 over all
 * rounds) travels on channel k mod channels.  Each other channel starts
 * with the preamble and a CHANNEL record (stream id, index, count), then
 * carries only its batches.  Merged in that order, the records are those
 * of a one-channel stream: checksums, order rules and digests are the
 * same.
 *
 * Return path: over a connection (a stream socket) the receiver answers
 * the stream with a return stream of its own, the preamble then one ACK
 * record (its verdict, and what it counted; see pmtrack_ack_encode()).
 * Files and pipes have no return path.  A round's
 * batches carry exactly the pages that are dirty and not zero in its ROUND
 * record, each once, in any order.  Zero pages travel as bits only.  A frame
 * with an unknown type is an error unless its flags have
 * PMTRACK_FRAME_SKIPPABLE.
 *
 * Conventions are those of <pmtrack/pmtrack.h> (see <pmtrack/common.h>):
 * -errno returns, options and statistics structs with sz (use
 * PMTRACK_OPTS()), opaque handles.  An encoder or
 * decoder is used by one thread at a time; different ones are independent.
 */
#ifndef PMTRACK_STREAM_H
#define PMTRACK_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <pmtrack/common.h>
/* nothing here needs the tracker's header; it stays included for programs
   that were written against <pmtrack/stream.h> alone and use both */
#include <pmtrack/pmtrack.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PMTRACK_STREAM_VERSION 1u
#define PMTRACK_STREAM_ID_LEN 16u
#define PMTRACK_DIGEST_LEN 16u
#define PMTRACK_STREAM_PREAMBLE_LEN 16u
#define PMTRACK_FRAME_LEN 24u
/* the most regions a stream's table holds, and the longest region name or
   producer string, in bytes */
#define PMTRACK_STREAM_MAX_REGIONS 65536u
#define PMTRACK_STREAM_NAME_MAX 255u

enum pmtrack_record_type {
	PMTRACK_REC_HEADER = 1,
	PMTRACK_REC_ROUND = 2,
	PMTRACK_REC_BATCH = 3,
	PMTRACK_REC_END = 4,
	/* only on the return path, never in a stream */
	PMTRACK_REC_ACK = 5,
	/* first record of an extra channel (see struct pmtrack_channel) */
	PMTRACK_REC_CHANNEL = 6,
};

/* the most channels (connections) one stream spans */
#define PMTRACK_CHANNELS_MAX 64u

/* frame flag: a decoder that does not know the type skips the record */
#define PMTRACK_FRAME_SKIPPABLE 0x01u

enum pmtrack_codec {
	PMTRACK_CODEC_RAW = 0,
	PMTRACK_CODEC_ZSTD = 1,
};

/*
 * A region of memory that the stream describes.  Pages are numbered from 0
 * at `start`.  The encoder copies the table; the decoder's table lives as
 * long as the decoder.
 */
struct pmtrack_stream_region {
	uint32_t id;	  /* caller's id, unique within the table */
	uint32_t flags;	  /* carried verbatim, not interpreted */
	uint64_t start;	  /* address at the source, page-aligned */
	uint64_t length;  /* bytes, a non-zero multiple of the page size */
	const char *name; /* NULL or at most 255 bytes, carried verbatim */
};

/**
 * pmtrack_digest() - XXH3-128 of memory, the digest the END record carries.
 * @iov: the regions' contents, in region-table order
 * @n: number of entries
 * @out: PMTRACK_DIGEST_LEN bytes, canonical (big-endian) XXH3-128
 *
 * Return: 0; -EINVAL if @out is NULL, or @iov is NULL while @n is not 0;
 * -ENOMEM if the hash state (a few hundred bytes) cannot be allocated.
 */
PMTRACK_API int pmtrack_digest(const struct iovec *iov, size_t n,
			       uint8_t out[PMTRACK_DIGEST_LEN]);

/*
 * The same digest over memory handed over piece by piece, for memory that
 * is not all in one place at once (another process's, read a chunk at a
 * time): pmtrack_digest_update() with every byte of the regions in
 * region-table order, in pieces of any size, gives what pmtrack_digest()
 * gives for the whole.  A context is used by one thread at a time.
 */
struct pmtrack_digest_ctx;

/**
 * pmtrack_digest_new() - a context to compute a digest piece by piece.
 * @out: receives the context, freed with pmtrack_digest_free()
 *
 * Return: 0; -EINVAL if @out is NULL; -ENOMEM.
 */
PMTRACK_API int pmtrack_digest_new(struct pmtrack_digest_ctx **out);
/**
 * pmtrack_digest_update() - hash more bytes.
 * @d: the context
 * @buf, @len: the next @len bytes of the regions, in region-table order
 *
 * Return: 0, or -EINVAL for a NULL @d, or a NULL @buf with @len not 0.
 */
PMTRACK_API int pmtrack_digest_update(struct pmtrack_digest_ctx *d,
				      const void *buf, size_t len);
/**
 * pmtrack_digest_final() - the digest of everything hashed so far.
 * @d: the context
 * @out: PMTRACK_DIGEST_LEN bytes, as pmtrack_digest() gives them
 *
 * It is a snapshot: more bytes may follow.
 *
 * Return: 0, or -EINVAL for a NULL argument.
 */
PMTRACK_API int pmtrack_digest_final(const struct pmtrack_digest_ctx *d,
				     uint8_t out[PMTRACK_DIGEST_LEN]);
/**
 * pmtrack_digest_free() - free a digest context.
 * @d: the context; NULL is a no-op
 */
PMTRACK_API void pmtrack_digest_free(struct pmtrack_digest_ctx *d);

/* ------------------------------------------------------------------------ */
/* Page sums and the state digest                                            */
/* ------------------------------------------------------------------------ */

/*
 * Page sums: a 128-bit hash of every page a stream carried, kept by the
 * encoder as it sends pages and by the decoder as it applies them, and
 * their sum modulo 2^128, the state digest that END carries.  Sending or
 * applying a page costs one hash of it, and the state digest costs nothing
 * more: equal state digests on both sides prove that the receiver holds
 * exactly the pages the sender sent, last content of each, without reading
 * memory again.  That the memory still holds what was sent (no write was
 * missed) is pmtrack_pagesums_audit(), which reads every page once.  See
 * docs/verification.md for the argument.
 *
 * An entry is XXH3-128 of (region index, page index, XXH3-128 of the page)
 * with its lowest bit set, so that 0 means "never sent".  A table binds to
 * the region table of the first stream that uses it.  It costs 64 KiB per
 * 4,096 pages of a region that any stream touched: 16 bytes per page.
 *
 * Pass one table to the encoders of a chain of incremental streams (each
 * stream's parent is the one before) and another to their decoders, in
 * order: a stream without a parent starts the table afresh.  If a stream
 * fails part-way, the table holds the pages it encoded: the next stream
 * must send them again (as pre-copy and checkpoints do) before its state
 * means anything.  The HEADER says whether END will carry a state digest;
 * a decoder hashes pages only for a stream that will, and a caller's
 * table given a stream that will not stops following its chain (later
 * states go unchecked).  A table is used by one encoder or decoder at a time;
 * pmtrack_pagesums_audit() may run while nothing else uses it.
 */
struct pmtrack_pagesums;

/**
 * pmtrack_pagesums_new() - an empty page-sums table.
 * @out: receives the table, freed with pmtrack_pagesums_free()
 *
 * Return: 0; -EINVAL if @out is NULL; -ENOMEM.
 */
PMTRACK_API int pmtrack_pagesums_new(struct pmtrack_pagesums **out);
/**
 * pmtrack_pagesums_free() - free a page-sums table.
 * @s: the table; NULL is a no-op
 */
PMTRACK_API void pmtrack_pagesums_free(struct pmtrack_pagesums *s);

/**
 * pmtrack_pagesums_state() - the state digest: the entries' sum modulo
 * 2^128, big-endian, as END's state field carries it.
 * Return: 0; -EINVAL; -ENODATA if no stream bound @s yet, or an entry
 * could not be kept (out of memory, or a decoder's mem_limit).
 */
PMTRACK_API int pmtrack_pagesums_state(const struct pmtrack_pagesums *s,
				       uint8_t out[PMTRACK_DIGEST_LEN]);

/**
 * pmtrack_pagesums_resume() - the next stream continues stream @id.
 *
 * After a stream failed (or ended but was not delivered), a caller that
 * sends every page of it again in the next stream names that stream's
 * parent here, so that the encoder accepts the table for it.
 * Return: 0; -EINVAL; -ENODATA if @s holds no usable state.
 */
PMTRACK_API int pmtrack_pagesums_resume(struct pmtrack_pagesums *s,
					const uint8_t *id);

/**
 * pmtrack_pagesums_count() - the pages a table has an entry for.
 * @s: the table
 * @known: receives the number of pages that have an entry
 *
 * Return: 0, or -EINVAL for a NULL argument.
 */
PMTRACK_API int pmtrack_pagesums_count(const struct pmtrack_pagesums *s,
				       uint64_t *known);

/* What pmtrack_pagesums_audit() found. */
struct pmtrack_audit {
	size_t sz;
	uint64_t pages;	       /* pages read */
	uint64_t differ;       /* pages whose content is not what was sent */
	uint64_t unsent;       /* pages no stream of the chain sent */
	uint32_t first_region; /* region index of the first bad page */
	uint64_t first_page;   /* and its page index (valid if any is bad) */
	size_t : 0;
};
#define pmtrack_audit__last_field first_page

/**
 * pmtrack_pagesums_audit() - does memory hold exactly what was sent?
 * @s: the encoder's table
 * @mem: every region's memory, in region-table order, whole (iov_len the
 *       region's length)
 * @n: the number of regions in the table
 * @threads: threads that read (0 or 1 = the caller's only; at most 64)
 * @out: optional; what was found (sz must be set)
 *
 * Reads and hashes every page once and compares it with its entry.  The
 * memory must not change meanwhile (the workload stopped).  A page whose
 * content differs was written after it was last sent: a write the tracker
 * did not report.
 *
 * Return: 0 if every page holds what was last sent; -EBADMSG if any page
 * differs or was never sent; -EINVAL (bad arguments, or the table is of
 * other regions); -ENODATA if @s holds no usable state.
 */
PMTRACK_API int pmtrack_pagesums_audit(const struct pmtrack_pagesums *s,
				       const struct iovec *mem, size_t n,
				       unsigned int threads,
				       struct pmtrack_audit *out);

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Transport callback: write all of iov[0..iovcnt) or fail.  Return 0 or a
 * negative errno, which the encoder call then returns.  The buffers are
 * valid only during the call.
 */
typedef int (*pmtrack_write_fn)(void *arg, const struct iovec *iov, int iovcnt);

/* An extra connection of a stream (pmtrack_enc_opts.channel). */
struct pmtrack_channel {
	/* required: writes this channel's bytes, as pmtrack_enc_opts.write
	   does channel 0's */
	pmtrack_write_fn write;
	void *arg; /* passed to write and flush as their first argument */
	/* push out what write() buffered: the encoder calls it when it moves
	   on to another channel, and pre-copy after the last byte; optional
	   only for a write() that buffers nothing */
	int (*flush)(void *arg);
};

/**
 * pmtrack_write_fd() - a pmtrack_write_fn for a file descriptor.
 * @arg: the descriptor, as (void *)(intptr_t)fd
 * @iov, @iovcnt: the bytes to write
 *
 * Loops over short writes and EINTR.
 *
 * Return: 0 or -errno from writev().
 */
PMTRACK_API int pmtrack_write_fd(void *arg, const struct iovec *iov,
				 int iovcnt);

enum pmtrack_enc_flags {
	/*
	 * Send a batch raw when compressing it does not pay: the data did not
	 * shrink by 1/32, or the link moves raw bytes faster than the
	 * compressor could shrink them (see link_bw).  Batches that were not
	 * compressed are probed again every few batches.
	 */
	PMTRACK_ENC_ADAPTIVE = 1u << 0,
	/*
	 * The memory handed to pmtrack_enc_round() does not change during the
	 * call (a stopped workload, a frozen checkpoint): raw batches are sent
	 * straight from it, without the encoder's private copy.  Without this
	 * flag the encoder copies each page once and sends exactly the bytes
	 * it hashed, so memory may be written concurrently.
	 */
	PMTRACK_ENC_STABLE = 1u << 1,
	/*
	 * Keep no page sums and send no state digest: pages are not hashed
	 * one by one (the batch checksums stay).  For a stream that is not
	 * verified as a whole.
	 */
	PMTRACK_ENC_NO_STATE = 1u << 2,
};

struct pmtrack_enc_opts {
	size_t sz;
	/* required: where the bytes go (channel 0's, with channels) */
	pmtrack_write_fn write;
	void *write_arg; /* passed to write and flush as their first argument */
	/* page size; 0 = the system page size.  A power of two, 512..1 GiB. */
	size_t page_size;
	/* zstd level for page batches; 0 = no compression.  Negative values
	   are zstd's fast levels. */
	int level;
	unsigned int flags; /* enum pmtrack_enc_flags */
	/* pages per BATCH record; 0 = 256.  At most 65536, and at most 2 GiB
	   of pages, else -EINVAL. */
	uint32_t batch_pages;
	/* producer string, at most 255 bytes; NULL = "libpmtrack VERSION" */
	const char *producer;
	/* PMTRACK_STREAM_ID_LEN bytes; NULL = random (getrandom) */
	const uint8_t *stream_id;
	/* the stream this one continues (an incremental checkpoint's parent);
	   NULL = none */
	const uint8_t *parent_id;
	/* ADAPTIVE: link speed in bytes/s; 0 = measure the time spent in the
	   write callback, which is only right for a callback that returns
	   once the bytes are sent (pass the measured bandwidth for an
	   asynchronous transport) */
	uint64_t link_bw;
	/*
	 * The page-sums table to keep the pages sent in
	 * (pmtrack_pagesums_new()); NULL = the encoder's own, for a stream
	 * without a parent.  The table must hold the parent's state
	 * when parent_id is set, or -EINVAL; a stream with a parent and no
	 * table sends no state digest.  Not owned: it must outlive the
	 * encoder.
	 */
	struct pmtrack_pagesums *sums;
	/*
	 * Threads that prepare batches (copy, hash, compress) while the
	 * calling thread writes the ones ready, in order: 0 = none, the
	 * caller does everything; at most 64.  The stream is the same byte
	 * for byte whatever the number (ADAPTIVE's choices aside, which
	 * depend on timing).  Each holds two batches' buffers (and a zstd
	 * context with a level).  pmtrack_enc_round() returns once every
	 * batch of the round is written: no thread reads the caller's
	 * memory after it.
	 */
	unsigned int workers;
	/*
	 * Channels the stream spans (see "Channels" at the top of
	 * <pmtrack/stream.h>): 0 or 1 = one, at most PMTRACK_CHANNELS_MAX.
	 * Channel 0 is write/write_arg; channel i (1 .. channels - 1) is
	 * channel[i - 1], whose preamble and CHANNEL record pmtrack_enc_new()
	 * writes.  The calling thread writes
	 * every channel in turn, in stream order, and flushes a channel
	 * (flush, or the channel's) before it writes another: a receiver
	 * reads the records in stream order, so a record held back in one
	 * channel's buffer while the encoder blocks on another's full
	 * connection would stop both sides.
	 */
	uint32_t channels;
	/* with channels > 1: an array of channels - 1 entries, channel i
	   being channel[i - 1], each with its write set (else -EINVAL);
	   copied by pmtrack_enc_new(), so only their arg must outlive the
	   encoder.  NULL with one channel. */
	const struct pmtrack_channel *channel;
	/* with channels: channel 0's flush, called with write_arg */
	int (*flush)(void *write_arg);
	size_t : 0;
};
#define pmtrack_enc_opts__last_field flush

struct pmtrack_enc;

/**
 * pmtrack_enc_new() - start a stream: writes the preamble and HEADER.
 * @opts: options; write is required
 * @regions: region table (copied), ids unique, lengths multiples of the
 *           page size
 * @nregions: 1..65536
 * @out: the encoder, freed with pmtrack_enc_free()
 *
 * Return: 0; -EINVAL for bad options or regions; -ENOMEM; or the write
 * callback's error.
 */
PMTRACK_API int pmtrack_enc_new(const struct pmtrack_enc_opts *opts,
				const struct pmtrack_stream_region *regions,
				size_t nregions, struct pmtrack_enc **out);

/** pmtrack_enc_free() - free an encoder (NULL is fine); writes nothing. */
PMTRACK_API void pmtrack_enc_free(struct pmtrack_enc *enc);

/* One region's part of a round. */
struct pmtrack_enc_region_round {
	uint32_t region;       /* index in the region table */
	const uint64_t *dirty; /* pages to send: bit i of word i/64 = page i */
	const uint64_t *swap;  /* NULL, or pages that were swapped out */
	const void *mem;       /* the region's contents (length bytes) */
};

/**
 * pmtrack_enc_round() - encode one round: a ROUND record, then batches.
 * @enc: encoder
 * @round: round number, larger than the previous round's
 * @rr: regions that have pages in this round, each at most once
 * @n: entries in @rr (0 is a round with nothing dirty)
 *
 * Reads every dirty page of @rr: all-zero pages go into the zero bitmap,
 * the others into batches of opts.batch_pages pages.  Bits past the
 * region's last page are ignored.
 *
 * Return: 0; -EINVAL (bad index, duplicate region, round not increasing,
 * stream ended); -ENOMEM; or the write callback's error.  After an error
 * other than -EINVAL the stream is unusable (calls return -EPIPE).
 */
PMTRACK_API int pmtrack_enc_round(struct pmtrack_enc *enc, uint64_t round,
				  const struct pmtrack_enc_region_round *rr,
				  size_t n);

/**
 * pmtrack_enc_end() - write the END record.
 * @digest: pmtrack_digest() of the memory the stream reproduces, or NULL
 *
 * END carries the counts, @digest if given, and the state digest of the
 * page sums (pmtrack_pagesums_state()) unless PMTRACK_ENC_NO_STATE, or the
 * stream has a parent and no table was given.  Once it is written, the
 * table holds this stream's state, for a child stream to continue.
 *
 * Return: 0, -EINVAL if already ended, or the write callback's error.
 */
PMTRACK_API int pmtrack_enc_end(struct pmtrack_enc *enc,
				const uint8_t digest[PMTRACK_DIGEST_LEN]);

struct pmtrack_enc_stats {
	size_t sz;
	uint64_t rounds;     /* ROUND records written (pmtrack_enc_round()) */
	uint64_t pages;	     /* pages sent in batches */
	uint64_t zero_pages; /* pages sent as zero bits */
	uint64_t batches;    /* BATCH records written, raw or compressed */
	uint64_t batches_zstd;	/* batches sent compressed */
	uint64_t page_bytes;	/* bytes of the pages in batches */
	uint64_t payload_bytes; /* batch payload bytes written */
	uint64_t wire_bytes;	/* every byte written */
	/* ADAPTIVE: batches sent raw without trying compression, after
	   batches that did not shrink by 1/32 */
	uint64_t skipped_incompressible;
	/* ADAPTIVE: batches sent raw without trying compression, because
	   the link moved raw bytes faster than the compressor shrank them */
	uint64_t skipped_link;
	size_t : 0;
};
#define pmtrack_enc_stats__last_field skipped_link

/**
 * pmtrack_enc_get_stats() - the encoder's counters so far.
 * @st: st->sz must be set (PMTRACK_OPTS() does it); see <pmtrack/common.h>
 *      for a struct larger or smaller than this library's.
 * Return: 0, or -EINVAL if @enc or @st is NULL or st->sz is below a size_t.
 */
PMTRACK_API int pmtrack_enc_get_stats(const struct pmtrack_enc *enc,
				      struct pmtrack_enc_stats *st);

/* ------------------------------------------------------------------------ */
/* Decoder                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Cost.  Decoding a record costs in proportion to the record and the pages
 * it names, never to the number or the size of the regions it does not
 * name.  In the work pmtrack_dec_get_stats() counts (bitmap words and
 * region-table entries visited), a stream of B bytes in R records whose
 * ROUNDs' bitmaps set M bits costs
 *
 *	work = O(B + R + M / 64)
 *
 * except that a bitmap sent as zstd words costs its region's words, which
 * is at most one per bit: such a bitmap must set at least as many bits as
 * it has words (fewer is PMTRACK_SERR_SCHEMA; the encoder sends runs
 * then), so at worst work = O(B + R + M).
 *
 * The exceptions, once per stream: the HEADER of n regions costs
 * O(n log n) and allocates the regions' bitmaps (zeroed, within
 * mem_limit); END with a digest reads every destination once, as the
 * digest covers all memory.  Writing zero pages into a destination costs
 * the pages, as it would if they had come as data.
 */

/*
 * Why a decoder stopped.  The errno each reason is returned as is given;
 * the message from pmtrack_dec_error() says where and what.
 */
enum pmtrack_stream_error {
	PMTRACK_SERR_OK = 0,
	PMTRACK_SERR_TRUNCATED,	 /* -ENODATA: input ended early */
	PMTRACK_SERR_MAGIC,	 /* -EBADMSG: not a libpmtrack stream */
	PMTRACK_SERR_VERSION,	 /* -EPROTONOSUPPORT: format version */
	PMTRACK_SERR_FRAME,	 /* -EBADMSG: bad frame: type, flags, size */
	PMTRACK_SERR_CHECKSUM,	 /* -EBADMSG: record or batch checksum */
	PMTRACK_SERR_SCHEMA,	 /* -EBADMSG: protobuf invalid, field missing
				    or out of range */
	PMTRACK_SERR_ORDER,	 /* -EBADMSG: record out of order */
	PMTRACK_SERR_DUPLICATE,	 /* -EBADMSG: page or region seen twice */
	PMTRACK_SERR_RANGE,	 /* -EBADMSG: page outside its region */
	PMTRACK_SERR_MISMATCH,	 /* -EBADMSG: batch page not announced by its
				    round, or END counts differ */
	PMTRACK_SERR_INCOMPLETE, /* -EBADMSG: round ended with pages unsent */
	PMTRACK_SERR_DECOMPRESS, /* -EBADMSG: zstd error or wrong size */
	PMTRACK_SERR_DIGEST,	 /* -EBADMSG: destination memory != digest */
	PMTRACK_SERR_TRAILING,	 /* -EBADMSG: bytes after END */
	PMTRACK_SERR_LIMIT,	 /* -E2BIG: needs more than mem_limit */
	PMTRACK_SERR_CALLBACK,	 /* a callback returned this error */
	PMTRACK_SERR_NOMEM,	 /* -ENOMEM: allocation failed */
};

struct pmtrack_dec;

struct pmtrack_dec_header {
	uint32_t version;   /* the preamble's format version */
	uint32_t page_size; /* bytes per page: a power of two, 512..1 GiB */
	/* the encoder's producer string (pmtrack_enc_opts.producer), at
	   most 255 bytes, NUL-terminated */
	const char *producer;
	const uint8_t *stream_id; /* PMTRACK_STREAM_ID_LEN bytes */
	const uint8_t *parent_id; /* NULL if the stream has no parent */
	size_t nregions; /* entries in regions, 1..65536 */
	/* the region table, in the HEADER's order; it lives as long as the
	   decoder */
	const struct pmtrack_stream_region *regions;
};

struct pmtrack_dec_end {
	/* END's count of ROUND records.  Each of END's counts equals what
	   the decoder decoded, or the stream failed (PMTRACK_SERR_MISMATCH). */
	uint64_t rounds;
	uint64_t pages;	     /* END's count of pages sent in batches */
	uint64_t zero_pages; /* END's count of pages sent as zero bits */
	const uint8_t *digest; /* NULL if the encoder sent none */
	/* 1: every region had a destination and it matched the digest */
	int digest_verified;
	const uint8_t *state; /* the state digest; NULL if none was sent */
	/* 1: the pages this decoder's page sums hold (the stream's, and its
	   parents' with a table that followed the chain) match the state */
	int state_verified;
};

/* What the record callback sees of each record (inspection, statistics). */
struct pmtrack_dec_record {
	uint64_t offset; /* of the frame in the stream */
	uint32_t type;	 /* enum pmtrack_record_type, or an unknown type */
	uint32_t flags;	 /* frame flags: 0 or PMTRACK_FRAME_SKIPPABLE */
	uint64_t meta_len;    /* bytes of protobuf after the frame */
	uint64_t payload_len; /* payload bytes after those (a BATCH's pages) */
	uint32_t region; /* BATCH only: index in the region table; else 0 */
	uint32_t codec;	 /* BATCH only: enum pmtrack_codec; else 0 */
	uint64_t pages;	 /* BATCH only: pages it carries; else 0 */
	uint64_t runs;	 /* BATCH only: runs of pages it names; else 0 */
};

/*
 * Callbacks, all optional.  They run inside pmtrack_dec_feed(); a negative
 * return stops the decoder with PMTRACK_SERR_CALLBACK and that errno.
 * Pointers passed in are valid only during the call.
 */
struct pmtrack_dec_ops {
	/* after HEADER; the place to call pmtrack_dec_set_dest() */
	int (*header)(void *arg, struct pmtrack_dec *dec,
		      const struct pmtrack_dec_header *h);
	/* after a ROUND record; maps via pmtrack_dec_map() */
	int (*round)(void *arg, struct pmtrack_dec *dec, uint64_t round);
	/* verified page contents; data == NULL means npages zero pages.
	   Called after the data went to the destination, if one is set. */
	int (*pages)(void *arg, uint32_t region, uint64_t first,
		     uint64_t npages, const void *data);
	/* every record, once its checksum and contents are verified */
	int (*record)(void *arg, const struct pmtrack_dec_record *r);
	/* after END, with the digest checked if it could be */
	int (*end)(void *arg, const struct pmtrack_dec_end *e);
};

struct pmtrack_dec_opts {
	size_t sz;
	/* the callbacks, copied by pmtrack_dec_new(); NULL = none */
	const struct pmtrack_dec_ops *ops;
	void *arg; /* passed to every callback as its first argument */
	/* the most the decoder allocates at once, in bytes: records (the
	   current ROUND's is kept until the next), bitmaps, decompression,
	   protobuf; 0 = 256 MiB.  Exceeding it is PMTRACK_SERR_LIMIT. */
	size_t mem_limit;
	/*
	 * The page-sums table (pmtrack_pagesums_new()) to keep the pages
	 * applied in, so that END's state digest is checked across a chain;
	 * not owned.  NULL = the
	 * decoder's own, for a stream without a parent (a stream with a
	 * parent then has its state digest unchecked).  The decoder's own
	 * table is charged against mem_limit; a caller's is not limited.
	 */
	struct pmtrack_pagesums *sums;
	/*
	 * Channels the caller merges (0 or 1 = one): a stream whose HEADER
	 * says another number fails (PMTRACK_SERR_MISMATCH).  With more than
	 * one, feed whole records of channel pmtrack_dec_next_channel() in
	 * turn (the extra channels' preamble and CHANNEL record stripped:
	 * pmtrack_channel_decode()); pmtrack_rx_apply_channels() does it.
	 */
	uint32_t channels;
	size_t : 0;
};
#define pmtrack_dec_opts__last_field channels

/**
 * pmtrack_dec_new() - a stream decoder.
 * @opts: options; NULL for defaults
 * @out: receives the decoder, freed with pmtrack_dec_free()
 *
 * Return: 0; -EINVAL for bad options; -ENOMEM.
 */
PMTRACK_API int pmtrack_dec_new(const struct pmtrack_dec_opts *opts,
				struct pmtrack_dec **out);

/**
 * pmtrack_dec_free() - free a decoder.
 * @dec: the decoder; NULL is a no-op
 */
PMTRACK_API void pmtrack_dec_free(struct pmtrack_dec *dec);

/**
 * pmtrack_dec_feed() - decode the next bytes of the stream.
 * @buf, @len: any split of the stream; records may straddle calls
 *
 * Whole records found in @buf are decoded in place; a partial one is
 * copied (within mem_limit).  Every length, count, index and size is
 * checked before it is used.  The first error stops the decoder for good:
 * this and later calls return it.
 *
 * Return: 0 or the negative errno of the error (see enum
 * pmtrack_stream_error).
 */
PMTRACK_API int pmtrack_dec_feed(struct pmtrack_dec *dec, const void *buf,
				 size_t len);

/**
 * pmtrack_dec_finish() - the input has ended.
 *
 * Return: 0 if the stream ended with its END record; -ENODATA
 * (PMTRACK_SERR_TRUNCATED) if not; or the error that stopped it.
 */
PMTRACK_API int pmtrack_dec_finish(struct pmtrack_dec *dec);

/**
 * pmtrack_dec_read_fd() - feed everything read from @fd until EOF, then
 * finish, reading through a 1 MiB buffer of its own (outside mem_limit).
 * Return: as pmtrack_dec_finish(), or -errno from read().
 */
PMTRACK_API int pmtrack_dec_read_fd(struct pmtrack_dec *dec, int fd);

/**
 * pmtrack_dec_error() - why the decoder stopped.
 * @reason: if not NULL, set to the enum pmtrack_stream_error
 *
 * Return: a message naming the stream offset and the cause ("" if none),
 * valid until the decoder is freed.
 */
PMTRACK_API const char *pmtrack_dec_error(const struct pmtrack_dec *dec,
					  int *reason);

/**
 * pmtrack_dec_set_dest() - let the decoder write a region itself.
 * @region: index in the header's table
 * @mem: @len writable bytes; @len must be the region's length
 *
 * From then on verified pages are written to @mem, and nowhere else; zero
 * pages are made to read as zero without committing memory where that can
 * be done: whole pages of private anonymous memory are dropped
 * (MADV_DONTNEED), other memory is written only where it is not zero.  When every region has a destination, END's digest is
 * checked against them (PMTRACK_SERR_DIGEST on mismatch).  Call it from
 * the header callback or later.
 *
 * Return: 0; -EINVAL (no header yet, bad index, wrong length).
 */
PMTRACK_API int pmtrack_dec_set_dest(struct pmtrack_dec *dec, uint32_t region,
				     void *mem, size_t len);

enum pmtrack_map_kind {
	PMTRACK_MAP_DIRTY = 0,
	PMTRACK_MAP_SWAP = 1,
	PMTRACK_MAP_ZERO = 2,
};

/**
 * pmtrack_dec_map() - a bitmap of the current round (bit i of word i/64 is
 * page i of the region), valid until the next record is decoded.
 * @nwords: if not NULL, set to the number of words
 *
 * Return: the words, or NULL if there is no round or @region is out of
 * range.  A region the round did not mention reads as all zero; bits past
 * the region's last page are always clear.
 */
PMTRACK_API const uint64_t *pmtrack_dec_map(const struct pmtrack_dec *dec,
					    uint32_t region,
					    enum pmtrack_map_kind kind,
					    size_t *nwords);

/* A region the current ROUND record listed, and the bits its maps set. */
struct pmtrack_dec_listed {
	size_t sz; /* sizeof(struct pmtrack_dec_listed), set by the caller */
	uint32_t region; /* index in the header's table */
	/* bits set in its PMTRACK_MAP_DIRTY map (pmtrack_dec_map()): the
	   pages the round sends */
	uint64_t dirty;
	uint64_t swap; /* bits set in its PMTRACK_MAP_SWAP map */
	/* bits set in its PMTRACK_MAP_ZERO map: of the dirty pages, those
	   sent as zero bits */
	uint64_t zero;
	size_t : 0;
};
#define pmtrack_dec_listed__last_field zero

/**
 * pmtrack_dec_listed() - the @i-th region the current round listed, in the
 * ROUND record's order.  Going through a round's regions this way costs
 * what the round names; going through the header's table costs the table.
 * @i: 0, 1, ...
 * @out: out->sz must be set (PMTRACK_OPTS()); filled as
 *       pmtrack_dec_get_stats() fills its struct
 *
 * Valid until the next record is decoded, like pmtrack_dec_map().
 *
 * Return: 1 if @out was filled; 0 if the round listed @i regions or fewer;
 * -EINVAL if there is no round, or @out is NULL or smaller than a size_t.
 */
PMTRACK_API int pmtrack_dec_listed(const struct pmtrack_dec *dec, size_t i,
				   struct pmtrack_dec_listed *out);

struct pmtrack_dec_stats {
	size_t sz; /* sizeof(struct pmtrack_dec_stats), set by the caller */
	uint64_t bytes;	     /* stream bytes consumed */
	uint64_t records;    /* records read, skipped ones included */
	uint64_t rounds;     /* ROUND records decoded */
	uint64_t pages;	     /* pages delivered with data */
	uint64_t zero_pages; /* pages delivered as zero bits */
	uint64_t map_bits;   /* bits set in the ROUND records' bitmaps */
	/* bitmap words and region-table entries the decoder visited: its
	   CPU cost as the bound in the "Cost" comment of <pmtrack/stream.h>
	   counts it (tests assert on it; time they cannot) */
	uint64_t work;
	size_t : 0;
};
#define pmtrack_dec_stats__last_field work

/**
 * pmtrack_dec_get_stats() - the decoder's counters so far.
 * @st: st->sz must be set (PMTRACK_OPTS() does it); a struct from an older
 *      header gets the fields it has, fields past the ones this library
 *      knows are zeroed.
 *
 * Return: 0, or -EINVAL (NULL, or sz smaller than a size_t).
 */
PMTRACK_API int pmtrack_dec_get_stats(const struct pmtrack_dec *dec,
				      struct pmtrack_dec_stats *st);

/* ------------------------------------------------------------------------ */
/* Return path                                                               */
/* ------------------------------------------------------------------------ */

/* The most bytes an encoded answer (preamble, frame and ACK) takes. */
#define PMTRACK_ACK_MAX 512u

/* A receiver's answer to one stream. */
struct pmtrack_stream_ack {
	size_t sz;
	uint8_t stream_id[PMTRACK_STREAM_ID_LEN]; /* the stream answered */
	int error;  /* 0 if applied, else the receiver's errno (positive) */
	int reason; /* enum pmtrack_stream_error, PMTRACK_SERR_OK if none */
	/* the receiver's state after the stream (enum pmtrack_rx_state in
	   <pmtrack/migrate.h>: 1 = complete, 2 = partial, 0 = empty) */
	int state;
	int digest_verified; /* 1: the END digest matched its memory */
	/* this stream as the receiver counted it */
	uint64_t rounds, pages, zero_pages, bytes;
	char message[256]; /* why it failed, "" if it did not */
	size_t : 0;
};
#define pmtrack_stream_ack__last_field message

/**
 * pmtrack_ack_encode() - an answer as return-path bytes.
 * @a: the answer (sz set; message NUL-terminated)
 * @buf, @cap: where to put it; PMTRACK_ACK_MAX bytes always suffice
 *
 * Return: the number of bytes (> 0); -EINVAL for a bad @a (negative error,
 * out-of-range reason or state, unterminated message); -ENOSPC if @cap is
 * too small.
 */
PMTRACK_API int pmtrack_ack_encode(const struct pmtrack_stream_ack *a,
				   void *buf, size_t cap);

/**
 * pmtrack_ack_decode() - read an answer from return-path bytes.
 * @buf, @len: the bytes received so far, from the first
 * @a: receives the answer (sz set by the caller; fields past the ones this
 *     library knows are zeroed)
 *
 * Every length, the record's checksum and every field are checked.  Bytes
 * after the answer are not looked at.
 * Return: the number of bytes the answer took, once @buf holds all of it;
 * 0 if more bytes are needed; -EBADMSG if the bytes are not an answer (a
 * peer that is not a libpmtrack receiver); -EPROTONOSUPPORT for another
 * format version; -EINVAL for bad arguments.
 */
PMTRACK_API int pmtrack_ack_decode(const void *buf, size_t len,
				   struct pmtrack_stream_ack *a);

/* The start of an extra channel: which stream, which channel. */
struct pmtrack_channel_hello {
	size_t sz;
	/* the stream the channel belongs to: its HEADER's stream id */
	uint8_t stream_id[PMTRACK_STREAM_ID_LEN];
	uint32_t index; /* 1 .. count - 1 */
	uint32_t count; /* 2 .. PMTRACK_CHANNELS_MAX */
	size_t : 0;
};
#define pmtrack_channel_hello__last_field count

/**
 * pmtrack_channel_decode() - read the preamble and CHANNEL record that start
 * an extra channel, as pmtrack_ack_decode() reads an answer.
 * Return: the bytes they took, once @buf holds them; 0 if more are needed;
 * -EBADMSG if they are not a channel's start; -EPROTONOSUPPORT for another
 * format version; -EINVAL.
 */
PMTRACK_API int pmtrack_channel_decode(const void *buf, size_t len,
				       struct pmtrack_channel_hello *out);

/**
 * pmtrack_dec_next_channel() - the channel whose record the decoder takes
 * next.
 * @dec: the decoder
 *
 * Return: while a round's batches are pending, batch k's channel (k mod
 * channels), else 0.  Always 0 for a one-channel stream.
 */
PMTRACK_API uint32_t pmtrack_dec_next_channel(const struct pmtrack_dec *dec);

/**
 * pmtrack_stream_error_name() - the short name of a decoder's error.
 * @reason: an enum pmtrack_stream_error
 *
 * Return: a static string ("truncated", "checksum", ...).
 */
PMTRACK_API const char *pmtrack_stream_error_name(int reason);

#ifdef __cplusplus
}
#endif

#endif /* PMTRACK_STREAM_H */

/* SPDX-License-Identifier: MIT */
/*
 * libpmtrack live pre-copy, receiving and incremental checkpoints, built on
 * the tracker (<pmtrack/pmtrack.h>) and the stream format
 * (<pmtrack/stream.h>).
 *
 *   transport   pmtrack_xport: moves stream bytes over a connected socket,
 *               a pipe or a file, with io_uring (liburing) or plain system
 *               calls
 *   pre-copy    pmtrack_precopy(): round 0 sends every page, later rounds
 *               the pages written since the previous one, until the
 *               expected downtime fits the limit; then the caller's stop
 *               callback pauses the workload and the rest is sent
 *   receiver    pmtrack_rx: applies one stream, or a chain of incremental
 *               streams, into destination memory, checking every checksum,
 *               the chain's links and the END digest
 *   checkpoint  pmtrack_ckpt: numbered incremental images in a directory,
 *               each chained to the previous one; pmtrack_ckpt_restore()
 *               replays the chain
 *
 * Conventions are those of <pmtrack/pmtrack.h>.  Each object is used by one
 * thread at a time; different objects are independent.
 */
#ifndef PMTRACK_MIGRATE_H
#define PMTRACK_MIGRATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <pmtrack/pmtrack.h>
#include <pmtrack/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Transport                                                                 */
/* ------------------------------------------------------------------------ */

enum pmtrack_xport_kind {
	/* io_uring where it was measured to pay (see pmtrack_xport_new()),
	   else system calls */
	PMTRACK_XPORT_AUTO = 0,
	/* io_uring; fails with -EOPNOTSUPP where the kernel refuses it */
	PMTRACK_XPORT_URING = 1,
	/* read(2)/write(2)/sendmsg(2) */
	PMTRACK_XPORT_SYSCALL = 2,
};

struct pmtrack_xport_opts {
	size_t sz;
	/* io_uring or system calls; 0 = PMTRACK_XPORT_AUTO */
	enum pmtrack_xport_kind kind;
	/* io_uring: buffers in flight, 1..64; 0 = 4 */
	unsigned int depth;
	/* bytes per buffer, 4 KiB..64 MiB; 0 = 1 MiB */
	size_t buf_size;
	/* sockets and pipes: a read or write that makes no progress for this
	   long (rounded up to milliseconds) fails with -ETIMEDOUT, and the
	   transport with it; 0 = wait for ever.  Files never wait. */
	uint64_t timeout_ns;
	size_t : 0;
};
#define pmtrack_xport_opts__last_field timeout_ns

struct pmtrack_xport;

/**
 * pmtrack_xport_new() - a transport over @fd.
 * @opts: options; NULL for defaults
 * @out: receives the transport, freed with pmtrack_xport_free()
 * @fd: a connected stream socket, a pipe or FIFO, or a regular file open
 *      for the direction it is used in.  Files are read and written from
 *      their current offset on; the offset is left after the last byte
 *      written (at flush) or read (at end of input, or at free).
 *      The descriptor stays the caller's: it is not closed.
 *
 * Writes are buffered: pmtrack_xport_write() copies the bytes into one of
 * depth buffers of buf_size bytes (the options), and a full buffer is sent
 * while the next fills (io_uring), or at once (system calls).  Reads fill a
 * buffer; on files io_uring keeps depth reads in flight ahead of the
 * reader.  A
 * transport is used in one direction, except on a socket, which may be
 * read once everything written was flushed (a sender reading the
 * receiver's answer: pmtrack_precopy_opts.reply).
 *
 * With PMTRACK_XPORT_AUTO the environment variable PMTRACK_TRANSPORT
 * (uring, syscall or auto) decides first; then system calls are used for
 * sockets and pipes (bench/bench_migrate.c measured them 1.4-1.6x faster on
 * loopback) and io_uring for regular files (within noise, with read-ahead
 * for cold reads; see docs/benchmarks.md), and system calls whenever io_uring cannot
 * be set up (kernel.io_uring_disabled, seccomp, old kernels); only
 * PMTRACK_TRANSPORT=uring or PMTRACK_XPORT_URING make that an error.  pmtrack_xport_kind() says what was chosen.  Sockets are
 * written with MSG_NOSIGNAL: a closed peer is -EPIPE, not SIGPIPE.
 *
 * Return: 0; -EINVAL for bad options, a bad PMTRACK_TRANSPORT or a bad
 * @fd; -EOPNOTSUPP if io_uring was required and is unavailable; -ENOMEM.
 */
PMTRACK_API int pmtrack_xport_new(int fd, const struct pmtrack_xport_opts *opts,
				  struct pmtrack_xport **out);

/**
 * pmtrack_xport_free() - free the transport without flushing.
 * @x: the transport; NULL is a no-op
 *
 * Call pmtrack_xport_flush() first to keep what was written.  The
 * descriptor is not closed.
 */
PMTRACK_API void pmtrack_xport_free(struct pmtrack_xport *x);

/**
 * pmtrack_xport_fd() - a transport's descriptor.
 * @x: the transport
 *
 * Return: the descriptor given to pmtrack_xport_new(), or -EINVAL for
 * NULL.
 */
PMTRACK_API int pmtrack_xport_fd(const struct pmtrack_xport *x);

/**
 * pmtrack_xport_kind() - how a transport moves its bytes.
 * @x: the transport
 *
 * Return: PMTRACK_XPORT_URING or PMTRACK_XPORT_SYSCALL, what
 * PMTRACK_XPORT_AUTO became.
 */
PMTRACK_API enum pmtrack_xport_kind
pmtrack_xport_kind(const struct pmtrack_xport *x);

/**
 * pmtrack_xport_write() - a pmtrack_write_fn: queue iov[0..iovcnt).
 * @arg: the struct pmtrack_xport *
 * @iov, @iovcnt: the bytes to queue
 *
 * The bytes are copied; they reach the transport's descriptor in order, at
 * the latest at pmtrack_xport_flush().
 *
 * Return: 0, or the first error of any earlier
 * transfer (-EPIPE, -ECONNRESET, -ENOSPC, -EIO, -ETIMEDOUT...), after
 * which every call fails with it.  EINTR is retried.
 */
PMTRACK_API int pmtrack_xport_write(void *arg, const struct iovec *iov,
				    int iovcnt);

/**
 * pmtrack_xport_flush() - wait until every queued byte is written.
 * @x: the transport
 *
 * Return: 0, or the first error of any transfer, as for
 * pmtrack_xport_write().
 */
PMTRACK_API int pmtrack_xport_flush(struct pmtrack_xport *x);

/**
 * pmtrack_xport_read() - the next bytes from the transport's descriptor.
 * @x: the transport
 * @buf: receives a pointer into the transport's buffer, valid until the
 *       next call
 * Return: the number of bytes (> 0), 0 at end of input, or -errno
 * (-ETIMEDOUT after timeout_ns without a byte; -EINVAL on a transport
 * that wrote, unless it is a flushed socket).  EINTR is retried.
 */
PMTRACK_API ssize_t pmtrack_xport_read(struct pmtrack_xport *x,
				       const void **buf);

/**
 * pmtrack_xport_read_exact() - read exactly @len bytes into @buf, and not
 * one byte more.
 * @x: the transport
 * @buf, @len: where to put the bytes, and how many
 *
 * For a protocol that goes on over the connection after
 * them (the return path's answer, then the caller's own bytes).
 * Only on a transport with no read in flight: one that has only written
 * (and flushed), or has not been used.  No read-ahead is left behind.
 * Return: @len; fewer at end of input; -ETIMEDOUT after timeout_ns
 * without a byte; -EINVAL (a read in flight, unflushed writes, NULL);
 * another -errno.  EINTR is retried.
 */
PMTRACK_API ssize_t pmtrack_xport_read_exact(struct pmtrack_xport *x,
					     void *buf, size_t len);

struct pmtrack_xport_stats {
	size_t sz;
	uint64_t bytes; /* bytes written or read */
	uint64_t calls; /* system calls made (io_uring_enter included) */
	uint64_t waits; /* times the caller waited for a free buffer */
	size_t : 0;
};
#define pmtrack_xport_stats__last_field waits

/**
 * pmtrack_xport_get_stats() - a transport's counters.
 * @x: the transport
 * @st: st->sz must be set (PMTRACK_OPTS() does it)
 *
 * Return: 0, or -EINVAL (NULL, or sz smaller than a size_t).
 */
PMTRACK_API int pmtrack_xport_get_stats(const struct pmtrack_xport *x,
					struct pmtrack_xport_stats *st);

/* ------------------------------------------------------------------------ */
/* Source memory                                                             */
/* ------------------------------------------------------------------------ */

/*
 * workers in struct pmtrack_precopy_opts and pmtrack_ckpt_opts: threads
 * that copy, hash and compress batches while the calling thread writes
 * them (struct pmtrack_enc_opts.workers).  0 = one per online CPU beyond
 * the caller's, at most 8 (none on one CPU); PMTRACK_NO_WORKERS = none;
 * another number is used as it is, up to 64.
 */
#define PMTRACK_NO_WORKERS UINT32_MAX

/* A region of the caller's memory to migrate or checkpoint. */
struct pmtrack_mem_region {
	void *addr;	  /* page-aligned */
	size_t len;	  /* a non-zero multiple of the page size */
	uint32_t id;	  /* unique; names the region in the stream */
	const char *name; /* optional, at most 255 bytes */
};

/* ------------------------------------------------------------------------ */
/* Pre-copy                                                                  */
/* ------------------------------------------------------------------------ */

/* An estimate that could not be made (expected_downtime_ns). */
#define PMTRACK_PRECOPY_UNKNOWN UINT64_MAX

/* Statistics of one round, passed to the progress callback. */
struct pmtrack_precopy_round {
	size_t sz;
	uint64_t round;	      /* 0, 1, ... */
	int final;	      /* 1 for the stop-and-copy round */
	uint64_t pages;	      /* pages this round sent (zero pages included) */
	uint64_t zero_pages;  /* of which sent as zero bits */
	uint64_t bytes;	      /* stream bytes this round wrote */
	uint64_t duration_ns; /* encoding and sending the round */
	uint64_t collect_ns;  /* collecting the pages written meanwhile */
	/* pages written during the round, to be sent by the next one (0 for
	   the final round) */
	uint64_t dirty_pages;
	uint64_t dirty_rate; /* dirty_pages per second of the round */
	/* bytes per second the estimate now uses; 0 = not known yet */
	uint64_t bandwidth;
	/* dirty_pages' bytes / bandwidth (+ the memory digest's time with
	   PMTRACK_PRECOPY_FULL_DIGEST): how long the workload would stay
	   paused if it were stopped now (0, or just the digest's time, when
	   nothing is dirty; PMTRACK_PRECOPY_UNKNOWN when
	   pages are dirty and no bandwidth is known; 0 for the final round,
	   whose downtime is in the stats) */
	uint64_t expected_downtime_ns;
	uint64_t total_pages; /* pages in all regions */
	uint64_t total_bytes; /* stream bytes written so far */
	uint64_t elapsed_ns;  /* since pmtrack_precopy() started */
	/**
	 * @remaining_pages: dirty pages not sent yet: after a pre-copy round
	 * its dirty_pages, after the final round 0, and in a @partial report
	 * the pages of the round not sent so far.
	 */
	uint64_t remaining_pages;
	/**
	 * @remaining_bytes: the stream bytes @remaining_pages would take, at
	 * the bytes per page the downtime estimate uses (the last round's
	 * stream bytes per page; round 0's per non-zero page; a whole page
	 * while neither is known); 0 when nothing remains.
	 */
	uint64_t remaining_bytes;
	/**
	 * @partial: 1 for a report from inside a round (see
	 * pmtrack_precopy_opts.progress_ms): @pages, @zero_pages, @bytes and
	 * @duration_ns are the round's so far, @total_bytes and @elapsed_ns
	 * are now; @dirty_pages, @dirty_rate and @collect_ns are 0 (nothing
	 * was collected yet); @bandwidth and @expected_downtime_ns are the
	 * last complete round's.  0 for the one report after each round.
	 */
	int partial;
	size_t : 0;
};
#define pmtrack_precopy_round__last_field partial

struct pmtrack_precopy_ops {
	/*
	 * Pause the workload: when it returns 0, nothing may write the
	 * regions until resume() or the end of pmtrack_precopy().  A negative
	 * errno aborts the migration (resume() is not called).  Required.
	 */
	int (*stop)(void *arg);
	/* The stop-and-copy step failed after stop(): let the workload run
	   again on the source.  Optional. */
	void (*resume)(void *arg);
	/* After each round (and, with pmtrack_precopy_opts.progress_ms,
	   also inside a pre-copy round: r->partial), on the thread that
	   called pmtrack_precopy(), which it must not call again.  A
	   negative return cancels the migration with that errno, inside a
	   round too.  Optional. */
	int (*progress)(void *arg, const struct pmtrack_precopy_round *r);
};

enum pmtrack_precopy_flags {
	/* verify nothing: no state digest in END (pages are not hashed one
	   by one), no audit, no memory digest */
	PMTRACK_PRECOPY_NO_DIGEST = 1u << 0,
	/* fail with -ETIMEDOUT instead of stopping the workload when the
	   estimate cannot fit the limit (max_rounds, or the digest alone is
	   over it) */
	PMTRACK_PRECOPY_NO_FORCE = 1u << 1,
	/* also send END the digest of all the paused memory, which the
	   destination checks by reading all of its memory: both sides read
	   everything inside the downtime (the only verification before the state digest) */
	PMTRACK_PRECOPY_FULL_DIGEST = 1u << 2,
	/* skip the audit of the stopped source after the switchover: a write
	   the tracker missed then goes unnoticed */
	PMTRACK_PRECOPY_NO_AUDIT = 1u << 3,
};

struct pmtrack_precopy_opts {
	size_t sz;
	/* required: where the stream goes (pmtrack_xport_write() with a
	   struct pmtrack_xport *, pmtrack_write_fd(), or your own) */
	pmtrack_write_fn write;
	/* passed to write and flush as their first argument.  If it is the
	   reply transport and flush is NULL, that transport is flushed
	   before the answer is read. */
	void *write_arg;
	/* called after the last byte is written (pmtrack_xport_flush());
	   its time counts as downtime.  Optional. */
	int (*flush)(void *write_arg);
	const struct pmtrack_precopy_ops *ops; /* required (stop) */
	void *arg;			       /* for ops */
	/* tracker options; NULL = automatic backend with
	   PMTRACK_CAP_ATOMIC_RESET required */
	const struct pmtrack_opts *tracker;
	/* the longest pause to aim for; 0 = 300 ms (QEMU's default) */
	uint64_t downtime_limit_ns;
	/* pre-copy rounds after round 0 before stopping anyway; 0 = 30 */
	uint32_t max_rounds;
	unsigned int flags; /* enum pmtrack_precopy_flags */
	/* cap on pre-copy rounds' rate in bytes/s; 0 = none.  Time the
	   writes fall behind it (a collect, a slow link) is made up for by
	   100 ms of it at most, never by a burst.  The stop-and-copy round
	   is never capped. */
	uint64_t max_bandwidth;
	/* bandwidth to assume for the switchover, bytes/s; 0 = measured */
	uint64_t switchover_bandwidth;
	/* zstd level for page batches (struct pmtrack_enc_opts.level); 0 =
	   no compression, negative = zstd's fast levels */
	int level;
	/* enum pmtrack_enc_flags, passed to the encoder; 0 = none.
	   PMTRACK_ENC_ADAPTIVE is the one that helps here.  Not
	   PMTRACK_ENC_STABLE: the memory is written during the rounds, and
	   the destination could reject a batch whose pages changed as they
	   were sent.  PMTRACK_ENC_NO_STATE is -EINVAL unless
	   PMTRACK_PRECOPY_NO_DIGEST, which sets it. */
	unsigned int enc_flags;
	/* pages per BATCH record; 0 = 256; at most 65536, and at most
	   2 GiB of pages, else -EINVAL */
	uint32_t batch_pages;
	/* the HEADER's producer string, at most 255 bytes; NULL =
	   "libpmtrack VERSION" */
	const char *producer;
	/* the return path: after END, the destination's answer is read here
	   (a transport over the connection; the one write_arg names reads
	   once flushed), and only a positive one is success.  Its
	   timeout_ns bounds the wait.  NULL = no return path: success then
	   means the stream was written, not that anyone applied it. */
	struct pmtrack_xport *reply;
	/*
	 * Called with @arg once the destination holds the stream (its answer
	 * came, or without a return path the stream was flushed) and before
	 * the audit: the moment to let the destination run.  A negative
	 * return fails the migration with it.  Optional.
	 */
	int (*switchover)(void *arg);
	/* batch threads (see PMTRACK_NO_WORKERS); 0 = automatic */
	uint32_t workers;
	/*
	 * Connections the stream spans (QEMU's multifd channels; see
	 * <pmtrack/stream.h>): 0 or 1 = write alone; else channel[0 ..
	 * channels - 2] are the others, whose flush (if set) runs before
	 * flush.  Batches go to each in turn; the rate cap and the bandwidth
	 * count all of them.  The destination reads them with
	 * pmtrack_rx_apply_channels().  At most PMTRACK_CHANNELS_MAX.  A
	 * channel whose write buffers (pmtrack_xport_write()) needs its
	 * flush, and the main one flush: each is flushed before the stream
	 * moves to another (see struct pmtrack_enc_opts.channels).
	 */
	uint32_t channels;
	/* with channels > 1: an array of channels - 1 entries (write, arg,
	   flush), each with its write set, else -EINVAL; read during the
	   call.  NULL with one channel. */
	const struct pmtrack_channel *channel;
	/*
	 * Also call ops->progress every this many milliseconds inside a
	 * pre-copy round (from the calling thread, between two writes of the
	 * stream), with r->partial = 1: a progress bar that moves through a
	 * long round 0.  0 = only after each round, as before.
	 */
	uint32_t progress_ms;
	size_t : 0;
};
#define pmtrack_precopy_opts__last_field progress_ms

struct pmtrack_precopy_stats {
	size_t sz;
	uint64_t rounds;     /* rounds sent, the final one included */
	uint64_t pages;	     /* pages sent in all rounds */
	uint64_t zero_pages; /* of which as zero bits */
	uint64_t bytes;	     /* stream bytes written */
	uint64_t total_ns;   /* the whole migration */
	uint64_t setup_ns;   /* creating the tracker and watching */
	/* from the call to stop() to the destination's answer (with a
	   return path) or the last byte flushed */
	uint64_t downtime_ns;
	uint64_t final_pages; /* pages the stop-and-copy round sent */
	/* expected downtime when the switchover was decided */
	uint64_t expected_downtime_ns;
	uint64_t bandwidth; /* bytes/s of the whole pre-copy phase */
	/* with PMTRACK_PRECOPY_FULL_DIGEST: one digest of all regions,
	   timed after round 0, part of every expected downtime; else 0 */
	uint64_t digest_ns;
	int converged; /* 1: stopped because the estimate fit */
	/* the backend of the tracker that watched the regions
	   (pmtrack_backend()); PMTRACK_BACKEND_AUTO (0) if the call failed
	   before it had one */
	enum pmtrack_backend backend;
	/* with a return path: 1 if the destination answered that it applied
	   the whole stream (and verified its digest, if one was sent) */
	int acked;
	/* the destination's refusal (-EREMOTEIO): its errno, positive; 0
	   if it did not refuse */
	int remote_error;
	/* the enum pmtrack_stream_error it gave (PMTRACK_SERR_OK for an
	   error that is not the stream's) */
	int remote_reason;
	/* its message, why it refused (truncated to 255 bytes,
	   NUL-terminated); "" if it did not */
	char remote_message[256];
	/* 1 if the audit found the stopped source holding exactly what was
	   sent */
	int audited;
	uint64_t audit_ns;	   /* the audit, after the downtime */
	uint64_t audit_differ;	   /* pages that differ (or were never sent) */
	uint64_t audit_first_addr; /* the first of them */
	size_t : 0;
};
#define pmtrack_precopy_stats__last_field audit_first_addr

/**
 * pmtrack_precopy() - migrate live memory.
 * @opts: options; write and ops->stop are required
 * @regions: the memory, mapped and writable by the workload; each region
 *           is watched (by one tracker for all of them) for the duration
 * @n: 1..65536 regions
 * @st: optional; filled on success and on failure (sz must be set)
 *
 * Round 0 watches every region, then sends every page (pages that read as
 * zero, populated or not, travel as bits).  Each later round collects and
 * resets the pages written meanwhile (atomically: a write racing with the
 * collect is in this round or the next) and sends them.  After each round
 * the expected downtime is, if pages are dirty, their bytes over the
 * bandwidth, plus with PMTRACK_PRECOPY_FULL_DIGEST the memory digest's time
 * (one digest of all regions, timed after round 0: reading memory can cost
 * far more than hashing it, so a sample would mislead).  Their bytes are counted at the last round's
 * stream bytes per page (zero pages cost bits), or for the first estimate
 * at round 0's bytes per non-zero page (a whole page each if round 0 had
 * none).  The bandwidth is switchover_bandwidth if set, else the last
 * round's bytes per second if it moved at least 256 KiB, else the bytes
 * per second the write callback took so far.  So a round that leaves
 * nothing dirty converges at once (unless the digest alone exceeds the
 * limit).  When the estimate
 * fits downtime_limit_ns, or after max_rounds, or when the digest alone is
 * over the limit and the pages would fit (more rounds cannot help then;
 * the stats say converged = 0), ops->stop() pauses the
 * workload; the pages written since the last collect are sent with the
 * ones already collected, then END with the state digest (see
 * pmtrack_pagesums_state() in <pmtrack/stream.h>), then flush().  With
 * opts.reply, the destination's answer is then read (see PMTRACK_REC_ACK
 * in <pmtrack/stream.h>): it must name this stream, say it applied it and
 * verified its state digest (every page sent arrived, last content of
 * each), and count the same rounds, pages and bytes.  That ends the
 * downtime, which so costs what the last round's pages cost, whatever the
 * memory's size.  opts.switchover() is called next; then the audit reads
 * every page of the stopped source once, on every CPU, and checks that it
 * holds what was last sent of it: a page written without the tracker
 * reporting it fails the migration (-EBADMSG; the stats give the first
 * such page).  So the destination holds exactly the source's memory when
 * pmtrack_precopy() returns 0, as with the memory digest, which
 * PMTRACK_PRECOPY_FULL_DIGEST still sends (both sides then read all memory
 * inside the downtime).  If anything fails after stop() returned 0, a
 * missing or negative answer and a failed audit included, ops->resume() is
 * called before returning (after a failed audit, the destination that
 * switchover() let run holds wrong memory and must be discarded).  On
 * success the workload is left paused: the stream holds its memory as it
 * is, and with a return path the destination has it.
 *
 * Return: 0; -EINVAL for bad options (NO_DIGEST with FULL_DIGEST
 * included) or regions; the tracker's errors
 * (pmtrack_new(), pmtrack_watch()); the transport's error (-EPIPE,
 * -ECONNRESET, -ENOSPC...); stop()'s or progress()'s error; -ETIMEDOUT
 * with PMTRACK_PRECOPY_NO_FORCE, or when the reply transport's timeout
 * passed without an answer; -EREMOTEIO if the destination refused the
 * stream (remote_error, remote_reason and remote_message in the stats
 * say why); -EBADMSG if the audit found a page of the stopped source
 * that is not what was sent; switchover()'s error; -ENODATA if the
 * connection closed without an answer;
 * -EPROTO if the answer was not one (a peer that is not a libpmtrack
 * receiver), or not about this stream; -ENOMEM.
 */
PMTRACK_API int pmtrack_precopy(const struct pmtrack_precopy_opts *opts,
				const struct pmtrack_mem_region *regions,
				size_t n, struct pmtrack_precopy_stats *st);

/* ------------------------------------------------------------------------ */
/* Receiver                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * What a receiver's memory holds.  Only COMPLETE memory may be used, and it
 * is the memory of the last stream that ended (stats: streams, stream_id),
 * which is not necessarily the last one tried: a stream that fails before
 * any of its pages is written leaves the state as it was.
 */
enum pmtrack_rx_state {
	PMTRACK_RX_EMPTY = 0,	 /* no stream applied */
	PMTRACK_RX_COMPLETE = 1, /* holds exactly the last stream that ended;
				    see digest_verified */
	PMTRACK_RX_PARTIAL = 2,	 /* a stream failed after writing pages: the
				    memory mixes streams or rounds and must
				    not be used */
};

struct pmtrack_rx_opts {
	size_t sz;
	/* decoder memory limit (struct pmtrack_dec_opts): the decoder's own
	   buffers and bitmaps; 0 = 256 MiB */
	size_t mem_limit;
	/* optional: every byte received is also written here (an image of
	   the stream; valid only if the apply call returns 0) */
	pmtrack_write_fn tee;
	void *tee_arg; /* passed to tee as its first argument */
	/* the most destination memory the receiver maps itself, in bytes
	   (the regions without pmtrack_rx_set_dest()); a stream whose
	   regions need more fails with -E2BIG before anything is mapped.
	   0 = this machine's physical memory; SIZE_MAX = no limit. */
	size_t map_limit;
	size_t : 0;
};
#define pmtrack_rx_opts__last_field map_limit

struct pmtrack_rx;

/**
 * pmtrack_rx_new() - a receiver with no memory yet.
 * @opts: options; NULL for defaults
 * @out: receives the receiver, freed with pmtrack_rx_free()
 *
 * Return: 0; -EINVAL for bad options; -ENOMEM.
 */
PMTRACK_API int pmtrack_rx_new(const struct pmtrack_rx_opts *opts,
			       struct pmtrack_rx **out);

/**
 * pmtrack_rx_free() - free the receiver and unmap the memory it created.
 * @rx: the receiver; NULL is a no-op
 *
 * Memory set with pmtrack_rx_set_dest() stays the caller's.
 */
PMTRACK_API void pmtrack_rx_free(struct pmtrack_rx *rx);

/**
 * pmtrack_rx_set_dest() - receive region @id into the caller's memory.
 * @rx: the receiver
 * @id: the region's id in the stream's region table
 * @mem, @len: page-aligned, writable; @len must equal the region's length
 *
 * Call before the first stream.  Regions without a destination get an
 * anonymous private mapping of their length, created by the receiver
 * (within map_limit).  Zero pages cost no memory there; in caller memory
 * they are dropped where it is private anonymous (MADV_DONTNEED) and
 * written elsewhere only where the memory is not zero already.
 * Return: 0; -EINVAL (NULL, unaligned, or a stream was applied); -EEXIST
 * if @id already has one; -ENOMEM.
 */
PMTRACK_API int pmtrack_rx_set_dest(struct pmtrack_rx *rx, uint32_t id,
				    void *mem, size_t len);

/**
 * pmtrack_rx_apply() - decode one whole stream from @x into the memory.
 * @rx: the receiver
 * @x: the transport the stream comes on
 *
 * Over a connection (@x's descriptor is a stream socket) the stream ends
 * at its END record, and the receiver then answers on the same connection
 * (the return path, PMTRACK_REC_ACK in <pmtrack/stream.h>): applied and
 * verified, or why not, with its counts.  It answers a failed stream too,
 * when the connection still works.  stats.reply says whether the answer
 * went out: a sender that waits for it keeps the connection open, so it
 * fails (PMTRACK_RX_REPLY_FAILED) only when the sender closed without
 * waiting, or is gone.  A sender that resumes its own copy when it gets no
 * answer is then running it: where that matters, use this copy only with
 * PMTRACK_RX_REPLY_SENT.  Other input (files, pipes) has no return path
 * and is read to its end, so bytes after END are an error.
 *
 * The first stream must have no parent; each later one must name the
 * previous stream as its parent and carry the same region table (ids,
 * lengths, page size).  Every record and batch checksum is checked before
 * its pages are written; END's state digest against the pages the chain
 * applied (one hash per page as it is written: no read of memory at the
 * end), and END's memory digest, when the stream has one, by reading all
 * the memory.
 *
 * Return: 0 when the stream ended with END (the state is COMPLETE);
 * otherwise -ENODATA (the input ended early: a closed connection, a
 * truncated or empty image), -EBADMSG (corrupt or inconsistent stream, a
 * wrong digest, or a broken chain: see pmtrack_rx_error()),
 * -EPROTONOSUPPORT, -E2BIG, -EINVAL (a destination's length differs from
 * its region's), the transport's or tee's error, or -ENOMEM.  After a
 * failure the state is PARTIAL if any page of this stream was written;
 * if none was (a bad or missing header, a wrong parent or region table,
 * an empty input), the memory, the state (EMPTY, or COMPLETE holding the
 * previous stream), stream_id and digest_verified are as they were, and
 * the receiver takes another stream.  A PARTIAL receiver refuses further
 * streams (-EBADMSG).
 */
PMTRACK_API int pmtrack_rx_apply(struct pmtrack_rx *rx,
				 struct pmtrack_xport *x);

/**
 * pmtrack_rx_apply_channels() - pmtrack_rx_apply() of a stream that spans
 * @n connections.
 * @rx: the receiver
 * @x: the transports, one per channel
 * @n: the number of channels
 *
 * The channels are struct pmtrack_enc_opts.channels, the pre-copy option
 * channels: @x[0] carries its HEADER, ROUND and END records and the
 * answer; @x[1..n) are the other channels, in their order.  Records are
 * read whole, each from the channel it comes on, and decoded in the order
 * of a one-channel stream.  Each extra channel must start with its
 * CHANNEL record for this stream, index and count (else -EBADMSG, reason
 * PMTRACK_SERR_MISMATCH); a stream of another number of channels fails
 * the same way.  @n = 1 is pmtrack_rx_apply().  Not with a tee (-EINVAL).
 * Return: as pmtrack_rx_apply().
 */
PMTRACK_API int pmtrack_rx_apply_channels(struct pmtrack_rx *rx,
					  struct pmtrack_xport *const *x,
					  size_t n);

/**
 * pmtrack_rx_apply_fd() - pmtrack_rx_apply() over a default transport.
 * @rx: the receiver
 * @fd: the descriptor the stream comes on
 *
 * Return: as pmtrack_rx_apply(), or pmtrack_xport_new()'s error.
 */
PMTRACK_API int pmtrack_rx_apply_fd(struct pmtrack_rx *rx, int fd);

/**
 * pmtrack_rx_error() - why the last apply failed.
 * @rx: the receiver
 * @reason: if not NULL, receives the enum pmtrack_stream_error
 *	(PMTRACK_SERR_OK for non-stream errors)
 *
 * Return: a message ("" if the last apply did not fail), valid until the
 * next apply or free.
 */
PMTRACK_API const char *pmtrack_rx_error(const struct pmtrack_rx *rx,
					 int *reason);

struct pmtrack_rx_region {
	uint32_t id;	  /* its id in the stream's region table */
	const char *name; /* NULL if none */
	uint64_t start;	  /* the address at the source */
	void *mem;	  /* the destination */
	size_t len;	  /* bytes, a multiple of the streams' page size */
};

/**
 * pmtrack_rx_page_size() - the streams' page size.
 * @rx: the receiver
 *
 * It is the unit of every page count of this receiver, and may differ
 * from this machine's page size.
 *
 * Return: the page size in bytes; 0 before the first header.
 */
PMTRACK_API uint32_t pmtrack_rx_page_size(const struct pmtrack_rx *rx);

/**
 * pmtrack_rx_nregions() - the regions a receiver knows.
 * @rx: the receiver
 *
 * Return: the number of regions; 0 before the first header.
 */
PMTRACK_API size_t pmtrack_rx_nregions(const struct pmtrack_rx *rx);

/**
 * pmtrack_rx_region() - a region of the receiver.
 * @rx: the receiver
 * @idx: the region's index, in header order
 * @out: receives the region
 *
 * Return: 0; -ENOENT past the end; -EINVAL for a NULL argument.
 */
PMTRACK_API int pmtrack_rx_region(const struct pmtrack_rx *rx, size_t idx,
				  struct pmtrack_rx_region *out);

/* The answer on the return path (pmtrack_rx_stats.reply). */
enum pmtrack_rx_reply {
	PMTRACK_RX_REPLY_NONE = 0,   /* not a connection: no return path */
	PMTRACK_RX_REPLY_SENT = 1,   /* the verdict was sent back */
	PMTRACK_RX_REPLY_FAILED = 2, /* it could not be sent */
};

struct pmtrack_rx_stats {
	size_t sz;
	/* what the memory holds: EMPTY, COMPLETE (usable) or PARTIAL */
	enum pmtrack_rx_state state;
	uint32_t streams;    /* streams applied completely */
	uint64_t rounds;     /* rounds applied, all streams */
	uint64_t pages;	     /* pages written from batches */
	uint64_t zero_pages; /* pages written as zero */
	uint64_t bytes;	     /* stream bytes received */
	uint64_t apply_ns;   /* time inside the apply calls */
	/* 1: the END of the last stream that ended (stream_id) carried a
	   state digest or a memory digest, and each it carried matched; 0:
	   it had neither, no stream ended, or the state is PARTIAL */
	int digest_verified;
	/* the last complete stream's id */
	uint8_t stream_id[PMTRACK_STREAM_ID_LEN];
	/* the last apply's answer on the return path */
	enum pmtrack_rx_reply reply;
	/* 1: that END's state digest matched: the memory holds exactly
	   every page the chain sent, last content of each */
	int state_verified;
	size_t : 0;
};
#define pmtrack_rx_stats__last_field state_verified

/**
 * pmtrack_rx_get_stats() - a receiver's state and counters.
 * @rx: the receiver
 * @st: st->sz must be set (PMTRACK_OPTS() does it)
 *
 * Return: 0, or -EINVAL (NULL, or sz smaller than a size_t).
 */
PMTRACK_API int pmtrack_rx_get_stats(const struct pmtrack_rx *rx,
				     struct pmtrack_rx_stats *st);

/* ------------------------------------------------------------------------ */
/* Incremental checkpoints                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A checkpoint directory holds images NNNNNN.pmts (000000, 000001, ...).
 * Image 0 holds every page; image k holds the pages written since image
 * k-1 and names it as its parent.  An image appears under its name only
 * once it is complete (written to an unnamed O_TMPFILE, or where the file
 * system has none to a hidden name created exclusively, then linked to its
 * name), so a failed dump leaves the chain as it was.  Nothing already at
 * an image's name is ever replaced or followed: the dump fails with
 * -EEXIST and keeps its pages.
 */

struct pmtrack_ckpt_opts {
	size_t sz;
	/* tracker options; NULL = automatic backend with
	   PMTRACK_CAP_ATOMIC_RESET required */
	const struct pmtrack_opts *tracker;
	int level;		/* zstd level, 0 = none */
	unsigned int enc_flags; /* PMTRACK_ENC_ADAPTIVE */
	/* pages per BATCH record; 0 = 256; at most 65536, and at most
	   2 GiB of pages, else the dump fails with -EINVAL */
	uint32_t batch_pages;
	/* the images' producer string (copied), at most 255 bytes, else the
	   dump fails with -EINVAL; NULL = "libpmtrack VERSION" */
	const char *producer;
	/* 1: no fsync of images and directory (faster, not durable) */
	int no_sync;
	/* transport for the image files */
	enum pmtrack_xport_kind xport;
	/* batch threads (see PMTRACK_NO_WORKERS); 0 = automatic */
	uint32_t workers;
	size_t : 0;
};
#define pmtrack_ckpt_opts__last_field workers

struct pmtrack_ckpt;

/**
 * pmtrack_ckpt_new() - start a chain of checkpoints of @regions in @dir.
 * @dir: created (mode 0755) if missing; it must hold no images
 * @opts: options; NULL for defaults
 * @regions, @n: the memory to checkpoint
 * @out: receives the handle, freed with pmtrack_ckpt_free()
 *
 * The regions are watched from this call on.
 *
 * Return: 0; -EINVAL;
 * -EEXIST if @dir already holds images; -errno from mkdir/open; the
 * tracker's errors.
 */
PMTRACK_API int pmtrack_ckpt_new(const char *dir,
				 const struct pmtrack_ckpt_opts *opts,
				 const struct pmtrack_mem_region *regions,
				 size_t n, struct pmtrack_ckpt **out);

/**
 * pmtrack_ckpt_free() - stop watching and free; images stay.
 * @ck: the handle; NULL is a no-op
 */
PMTRACK_API void pmtrack_ckpt_free(struct pmtrack_ckpt *ck);

enum pmtrack_dump_flags {
	/*
	 * The caller guarantees nothing writes the regions during the dump
	 * (its workload is paused): pages are sent straight from memory, and
	 * restoring up to the image gives the memory as it was.  Without it
	 * the dump is a live pre-dump: pages written during it are sent again
	 * by the next dump.  Every image, stopped or not, ends with the state
	 * digest of the chain (see pmtrack_pagesums_state()), which a restore
	 * checks: the restored memory holds exactly every page the chain
	 * sent, last content of each.  That costs one hash per page sent.
	 */
	PMTRACK_DUMP_STOPPED = 1u << 0,
	/*
	 * With STOPPED: after writing the image, read all the memory once (on
	 * every CPU) and check that it holds what the chain sent, which
	 * proves that the tracker missed no write.  A page that differs fails
	 * the dump with -EBADMSG (the image is not published) and every page
	 * goes into the next image.  Costs a read of all memory.
	 */
	PMTRACK_DUMP_AUDIT = 1u << 1,
	/*
	 * With STOPPED: the image also carries the digest of all the memory,
	 * which a restore checks by reading all restored memory (the
	 * verification before the state digest).  Costs a read of all memory on each side.
	 */
	PMTRACK_DUMP_FULL_DIGEST = 1u << 2,
};

struct pmtrack_dump_info {
	size_t sz;
	uint32_t index;	     /* the image's number */
	uint64_t pages;	     /* pages in the image (zero pages included) */
	uint64_t zero_pages; /* of which sent as zero bits */
	uint64_t bytes;	     /* the image's size */
	/* the dump, from the call to the image published and synced, in
	   nanoseconds; 0 if it failed */
	uint64_t duration_ns;
	int has_digest; /* PMTRACK_DUMP_FULL_DIGEST: the memory digest */
	int has_state;	/* the chain's state digest (always: every image carries one) */
	/* PMTRACK_DUMP_AUDIT: 1 if the memory held exactly what the chain
	   sent */
	int audited;
	/* PMTRACK_DUMP_AUDIT: pages that differ from what the chain sent, or
	   that it never sent; 0 if none */
	uint64_t audit_differ;
	/* with audit_differ: the address of the first of them; else 0 */
	uint64_t audit_first_addr;
	size_t : 0;
};
#define pmtrack_dump_info__last_field audit_first_addr

/**
 * pmtrack_ckpt_dump() - write the next image.
 * @flags: enum pmtrack_dump_flags
 * @info: optional (sz must be set)
 *
 * The pages collected for an image that could not be written are kept
 * and go into the next successful one: a failed dump loses nothing.
 * @info is filled on failure too (the audit's findings).
 * Return: 0; -EINVAL (unknown flags; AUDIT or FULL_DIGEST without
 * STOPPED); -EBADMSG if the audit found a page that is not what the chain
 * sent; -EEXIST if something (a file, a symlink, a FIFO...)
 * already has the image's name; the file system's error (-ENOSPC,
 * -EIO...); the tracker's; -ENOMEM.
 */
PMTRACK_API int pmtrack_ckpt_dump(struct pmtrack_ckpt *ck, unsigned int flags,
				  struct pmtrack_dump_info *info);

struct pmtrack_restore_info {
	size_t sz;
	uint32_t images;     /* images applied */
	uint64_t bytes;	     /* their total size */
	/* the last image's state digest matched (and its memory digest, if
	   it had one) */
	int digest_verified;
	size_t : 0;
};
#define pmtrack_restore_info__last_field digest_verified

/**
 * pmtrack_ckpt_restore() - replay images 0..@upto of @dir into @rx.
 * @rx: a fresh receiver (destinations may be set first)
 * @upto: the last image to apply; UINT32_MAX = the newest
 * @info: optional
 *
 * Each image is applied with pmtrack_rx_apply(): checksums, parent links
 * and every image's state digest are checked (and the memory digest of an
 * image dumped with PMTRACK_DUMP_FULL_DIGEST).
 * On failure @info->images says how many images were applied; the
 * receiver's state says what its memory holds (COMPLETE: exactly image
 * images - 1, when the failing image wrote nothing or was missing).
 * Return: 0; -ENOENT if @dir has no image 0 or no image @upto (or a gap);
 * pmtrack_rx_apply()'s errors.
 */
PMTRACK_API int pmtrack_ckpt_restore(struct pmtrack_rx *rx, const char *dir,
				     uint32_t upto,
				     struct pmtrack_restore_info *info);

#ifdef __cplusplus
}
#endif

#endif /* PMTRACK_MIGRATE_H */

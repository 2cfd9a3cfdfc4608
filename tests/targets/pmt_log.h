/* SPDX-License-Identifier: MIT */
/*
 * The store log that pmt-target writes and pmt-logcheck reads.
 *
 * One file per process and generation: LOG.<pid> (LOG.<pid>.g<G> in the
 * execer mode), sized with ftruncate (sparse) and mapped MAP_SHARED, so
 * what the process wrote survives it being stopped or killed and another
 * process reads it through the page cache.  All fields are host-endian.
 *
 *   offset 0                 struct pmt_log_hdr (one page)
 *   regions_off              regions_cap x struct pmt_log_region: the
 *                            region table, append-only (see below)
 *   slice_off + k*slice_size slice k: struct pmt_log_slice, then
 *                            records (struct pmt_log_rec) up to the end
 *                            of the slice
 *
 * Slice k belongs to thread k of the process: 0 is the main thread (the
 * first write pass, the mapper's stores, a forked child's stores), 1..N
 * the writer threads.  A thread writes its record i after its store i is
 * done, then publishes count = i + 1 with a release store: a reader that
 * loads count with acquire sees records 0..count-1 complete.
 *
 * Values: thread k's store i in generation G of process P stores
 *   PMT_TAG(P, k) | (PMT_COUNTER_BASE(G) + i + 1)
 * so a value is never 0, names its process and thread, and is never
 * repeated (the counter base moves with the generation, as the pid stays
 * the same across execve).
 *
 * The region table: entry 0..nregions-1, published like a slice's count.
 * The static regions the process writes are MAP entries (kind ANON,
 * MEMFD or SHANON) written before anything else.  The mapper mode adds
 * entries for its private regions (kind DYN) as it maps, unmaps and
 * remaps them; all of that and every store to a DYN region happen in
 * the main thread, so an entry's (slice, at) places it exactly among
 * that thread's records: the change happened after records 0..at-1 of
 * slice `slice` and before record `at`.
 *   MAP    [start, start+len) mapped (logged after mmap, state DONE);
 *   UNMAP  [start, start+len) unmapped (logged PENDING before munmap,
 *          DONE after);
 *   REMAP  [old_start, old_start+old_len) is now [start, start+len),
 *          contents moved along (mremap: growing in place when start ==
 *          old_start, else moving to a fixed address); PENDING before,
 *          DONE or FAILED (nothing changed) after.
 * At most the last entry can be PENDING: the thread was stopped between
 * logging the change and finishing the system call, so whether it
 * happened is unknown.
 */
#ifndef PMT_LOG_H
#define PMT_LOG_H

#include <stdint.h>

#define PMT_LOG_MAGIC 0x31474f4c544d50ULL /* "PMTLOG1\0" */
#define PMT_LOG_VERSION 1u

#define PMT_TAG(pid, thread) \
	((uint64_t)(pid) << 40 | (uint64_t)(thread) << 32)
#define PMT_VALUE_PID(v) ((uint64_t)(v) >> 40)
#define PMT_VALUE_THREAD(v) (((uint64_t)(v) >> 32) & 0xff)
#define PMT_VALUE_COUNTER(v) ((uint64_t)(v) & 0xffffffffu)
#define PMT_COUNTER_BASE(gen) ((uint64_t)(gen) << 30)
#define PMT_MAX_THREADS 64 /* slices per process, the main thread's too */

enum pmt_kind {
	PMT_KIND_ANON = 1, /* (a) private anonymous */
	PMT_KIND_MEMFD = 2, /* (b) memfd, MAP_SHARED */
	PMT_KIND_SHANON = 3, /* (c) MAP_SHARED|MAP_ANONYMOUS */
	PMT_KIND_DYN = 4, /* mapper: private anonymous, mapped at run time */
};

enum pmt_op {
	PMT_OP_MAP = 1,
	PMT_OP_UNMAP = 2,
	PMT_OP_REMAP = 3,
};

enum pmt_state {
	PMT_STATE_PENDING = 1,
	PMT_STATE_DONE = 2,
	PMT_STATE_FAILED = 3,
};

struct pmt_log_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t page_size;
	uint64_t pid;
	uint64_t ppid; /* the parent's pid: a forked child's log */
	uint32_t gen; /* execer generation, else 0 */
	uint32_t nslices;
	uint64_t slice_off, slice_size; /* bytes, header included */
	uint64_t regions_off, regions_cap;
	uint64_t nregions; /* release-published */
	uint64_t ready; /* 1 once the process is ready (--ready) */
	uint64_t forks; /* forker, shmkids: children forked so far */
	char mode[16];
};

struct pmt_log_region {
	uint32_t op; /* enum pmt_op */
	uint32_t kind; /* enum pmt_kind */
	uint32_t state; /* enum pmt_state, release-published */
	uint32_t slice;
	uint64_t at;
	uint64_t start, len;
	uint64_t old_start, old_len; /* REMAP */
	uint64_t pad[2];
};

struct pmt_log_slice {
	uint64_t count; /* records written, release-published */
	uint64_t full; /* 1: the thread stopped storing, the slice is full */
	uint64_t pad[6];
};

/*
 * One store: the 8-byte word at addr was set to value by a single atomic
 * store that happened between t0 and t1 (CLOCK_MONOTONIC ns read just
 * before and just after it; the store is a full barrier, so it is visible
 * to every CPU by t1).
 */
struct pmt_log_rec {
	uint64_t addr;
	uint64_t value;
	uint64_t t0;
	uint64_t t1;
};

#endif

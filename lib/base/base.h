/* SPDX-License-Identifier: MIT */
/*
 * The base part: what every other part of the library may use.  Symbol
 * visibility, options and statistics structs as the public headers define
 * them (a size field first, see <pmtrack/common.h>), time, byte order,
 * counters, and the annotation for reads of memory the application writes.
 * Private to the library: never installed.
 */
#ifndef PMT_BASE_H
#define PMT_BASE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pmtrack/common.h>

#define PMT_HIDDEN __attribute__((visibility("hidden")))

#define pmt_offsetofend(T, m) (offsetof(T, m) + sizeof(((T *)0)->m))

/*
 * An options struct from the caller is valid if it is NULL, or its size is
 * at least a size_t and every byte the library does not know is zero.
 */
PMT_HIDDEN bool pmt_opts_valid(const void *opts, size_t known, size_t user_sz);

/* bytes past the struct this library knows must be zero; its own tail
 * padding (after type##__last_field) is not looked at: a compound
 * literal assigned by PMTRACK_OPTS() may leave anything there, and no
 * later version puts a field in it (<pmtrack/common.h>) */
#define PMT_OPTS_VALID(o, type)                                                \
	(!(o) || pmt_opts_valid((o), sizeof(struct type), (o)->sz))
#define PMT_OPTS_GET(o, f, dflt)                                               \
	(((o) && (o)->sz >= pmt_offsetofend(__typeof__(*(o)), f)) ? (o)->f     \
								  : (dflt))

/*
 * Copy a stats struct out to a caller whose struct may be older (shorter)
 * or newer (longer, the tail zeroed) than @known bytes; both start with
 * size_t sz, which is left as the caller set it.  0, or -EINVAL if @dst is
 * NULL or its size is below a size_t.
 */
PMT_HIDDEN int pmt_stats_out(void *dst, const void *src, size_t known);

static inline void pmt_stat_add(atomic_uint_fast64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* CLOCK_MONOTONIC in nanoseconds */
PMT_HIDDEN uint64_t pmt_now_ns(void);

/* little-endian stores and loads */
PMT_HIDDEN void pmt_put_le32(uint8_t *p, uint32_t v);
PMT_HIDDEN void pmt_put_le64(uint8_t *p, uint64_t v);
PMT_HIDDEN uint32_t pmt_get_le32(const uint8_t *p);
PMT_HIDDEN uint64_t pmt_get_le64(const uint8_t *p);

/*
 * Reading memory the application may be writing at the same time (a live
 * round, a pre-dump): the race is the design (tracking reports every page
 * written during the read, and it is sent again), so ThreadSanitizer is
 * told to ignore these reads; the library's own data stays checked.
 */
#if defined(__SANITIZE_THREAD__)
/* in the TSan runtime (GCC 12's tsan_interface.h does not declare them) */
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define PMT_LIVE_READ_BEGIN() __tsan_ignore_thread_begin()
#define PMT_LIVE_READ_END() __tsan_ignore_thread_end()
#else
#define PMT_LIVE_READ_BEGIN() ((void)0)
#define PMT_LIVE_READ_END() ((void)0)
#endif

#endif /* PMT_BASE_H */

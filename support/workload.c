// SPDX-License-Identifier: MIT
/* Synthetic guest RAM with rate-limited writer threads; see workload.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "workload.h"

struct wl {
	uint8_t *mem;
	size_t len, ps, pages;
	struct wl_opts o;
	pthread_t th[64];
	int started;
	atomic_int quit, pause, parked;
	atomic_ulong writes;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t next_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/*
 * Realistic contents: a quarter of the pages zero, a quarter random, half
 * sparse structures (a word every 128 bytes, like page tables or heaps).
 */
static void fill(struct wl *w)
{
	uint64_t s = w->o.seed | 1;

	for (size_t p = 0; p < w->pages; p++) {
		uint64_t *q = (uint64_t *)(w->mem + p * w->ps);
		uint64_t r = next_rand(&s), step;

		if (r % 4 == 0)
			continue;
		step = r % 4 == 1 ? 1 : 16;
		for (size_t k = 0; k < w->ps / 8; k += step)
			q[k] = next_rand(&s);
	}
}

static void *writer(void *arg)
{
	struct wl *w = arg;
	uint64_t s = w->o.seed ^ ((uint64_t)(uintptr_t)&s << 7) ^ now_ns();
	uint64_t per = w->o.rate / (uint64_t)w->o.writers, done = 0, t0;
	size_t hot = w->pages / 16 ? w->pages / 16 : 1;
	bool parked = false;

	t0 = now_ns();
	while (!atomic_load(&w->quit)) {
		uint64_t due;

		if (atomic_load(&w->pause)) {
			if (!parked)
				atomic_fetch_add(&w->parked, 1);
			parked = true;
			usleep(100);
			continue;
		}
		if (parked) {
			atomic_fetch_sub(&w->parked, 1);
			parked = false;
			/* no catching up on the time spent paused */
			t0 = now_ns();
			done = 0;
		}
		due = per ? (uint64_t)((double)(now_ns() - t0) * 1e-9 *
				       (double)per)
			  : done + 256;
		if (done >= due) {
			usleep(200);
			continue;
		}
		for (; done < due; done++) {
			uint64_t r = next_rand(&s);
			size_t p = (r % 100) < w->o.hot ? (r >> 8) % hot
							: (r >> 8) % w->pages;
			uint64_t *q = (uint64_t *)(w->mem + p * w->ps);

			/* a short record: 64 bytes at a random line */
			q += (r >> 40) % (w->ps / 64) * 8;
			/* writers may meet on a word: relaxed atomics, so
			   that ThreadSanitizer sees no race between them */
			for (int k = 0; k < 8; k++)
				__atomic_store_n(&q[k], r + (uint64_t)k,
						 __ATOMIC_RELAXED);
			atomic_fetch_add_explicit(&w->writes, 1,
						  memory_order_relaxed);
			if (atomic_load_explicit(&w->pause,
						 memory_order_relaxed))
				break;
		}
	}
	if (parked)
		atomic_fetch_sub(&w->parked, 1);
	return NULL;
}

int wl_start(const struct wl_opts *o, struct wl **out)
{
	struct wl *w;
	int err;

	*out = NULL;
	if (!o || !o->bytes || o->writers < 0 || o->writers > 64 ||
	    o->hot > 100)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->o = *o;
	w->ps = (size_t)sysconf(_SC_PAGESIZE);
	w->len = (o->bytes + w->ps - 1) / w->ps * w->ps;
	w->pages = w->len / w->ps;
	w->mem = mmap(NULL, w->len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->mem == MAP_FAILED) {
		free(w);
		return -ENOMEM;
	}
	/* guest RAM the way VMMs map it: transparent huge pages */
	madvise(w->mem, w->len, MADV_HUGEPAGE);
	fill(w);
	for (; w->started < o->writers; w->started++) {
		err = pthread_create(&w->th[w->started], NULL, writer, w);
		if (err) {
			wl_free(w);
			return -err;
		}
	}
	*out = w;
	return 0;
}

void *wl_mem(const struct wl *w)
{
	return w->mem;
}

size_t wl_len(const struct wl *w)
{
	return w->len;
}

int wl_pause(void *arg)
{
	struct wl *w = arg;

	atomic_store(&w->pause, 1);
	while (atomic_load(&w->parked) < w->started)
		sched_yield();
	return 0;
}

void wl_resume(void *arg)
{
	struct wl *w = arg;

	atomic_store(&w->pause, 0);
}

uint64_t wl_writes(const struct wl *w)
{
	return atomic_load(&((struct wl *)w)->writes);
}

void wl_free(struct wl *w)
{
	if (!w)
		return;
	atomic_store(&w->quit, 1);
	for (int i = 0; i < w->started; i++)
		pthread_join(w->th[i], NULL);
	munmap(w->mem, w->len);
	free(w);
}

int wl_parse_size(const char *s, uint64_t *out)
{
	return pmt_parse_u64(s, PMT_NUM_SUFFIX, 0, UINT64_MAX, out);
}

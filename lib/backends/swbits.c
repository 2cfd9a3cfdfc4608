// SPDX-License-Identifier: MIT
/*
 * Software dirty bits (struct pmt_sb), the library's own, for the backends
 * whose kernel mechanism only tells about the first write to an armed page
 * (mprotect, sync uffd-wp) or whose kernel state is process-wide: the
 * soft-dirty backend (soft_dirty.c) folds the kernel's soft-dirty bits
 * into these, which keep what a reset would erase.
 *
 * Each watched range has one bit per base page.  Fault handlers find the
 * range through a lock-free table and set bits with atomic ORs, so they can
 * run in a signal handler and on many threads at once.  Collectors take
 * bits with atomic ANDs and then re-arm what they took.
 *
 * Why no write is lost, with a handler doing "set bit, un-protect, set bit
 * again" and a collector doing "clear bit, then protect": a page whose bit
 * is clear is either armed, or a handler is about to set its bit, or the
 * collector that cleared it is about to arm it and reports it now (a write
 * in that window landed before the collect returned, so the caller's copy
 * of the page has it).  The first set makes a thread's own write visible
 * to the collect it makes next; the second covers a collect that took the
 * first bit and armed the page before the handler un-protected it.
 *
 * RESET collects, resets and prepares of one range run one at a time (its
 * lock), and a collect takes the bits of a run only once the run before it
 * is armed.  So while one re-arms a run, every other page of the range
 * whose bit is clear is armed, unless a handler is between its two sets:
 * a backend can tell its own pages from memory mapped there since.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "backend.h"
#include "uapi_compat.h"

/* ---- lookup table ------------------------------------------------------- */

/*
 * Slots live in chunks that are allocated once and never freed, so a
 * handler can walk them without a lock.  A handler pins a slot by raising
 * its user count and re-reading the pointer; unpublish clears the pointer
 * and waits for the count to drop (sequentially consistent on both sides).
 */
#define SLOTS_PER_CHUNK 256
#define MAX_CHUNKS 256

struct slot {
	_Atomic uintptr_t start, end;
	_Atomic(struct pmt_sb *) sb;
	atomic_uint users;
} __attribute__((aligned(64)));

static _Atomic(struct slot *) chunks[MAX_CHUNKS];
static atomic_int nslots; /* high-water mark of used slot indices */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
/* odd while the table changes, bumped twice per change (a seqcount) */
static atomic_uint table_gen;

unsigned int pmt_sb_gen(void)
{
	return atomic_load(&table_gen);
}

static struct slot *slot_at(int i)
{
	struct slot *c = atomic_load_explicit(&chunks[i / SLOTS_PER_CHUNK],
					      memory_order_acquire);

	return c ? &c[i % SLOTS_PER_CHUNK] : NULL;
}

int pmt_sb_publish(struct pmt_sb *sb)
{
	int n, i, ret = 0;
	struct slot *s = NULL;

	pthread_mutex_lock(&table_lock);
	atomic_fetch_add(&table_gen, 1);
	n = atomic_load(&nslots);
	for (i = 0; i < n; i++) {
		s = slot_at(i);
		if (!atomic_load(&s->sb) && !atomic_load(&s->users))
			break;
	}
	if (i == n) {
		if (n == SLOTS_PER_CHUNK * MAX_CHUNKS) {
			ret = -ENOSPC;
			goto out;
		}
		if (!(n % SLOTS_PER_CHUNK)) {
			struct slot *c = calloc(SLOTS_PER_CHUNK, sizeof(*c));

			if (!c) {
				ret = -ENOMEM;
				goto out;
			}
			atomic_store(&chunks[n / SLOTS_PER_CHUNK], c);
		}
		s = slot_at(n);
	}
	atomic_store(&s->start, sb->start);
	atomic_store(&s->end, sb->end);
	sb->slot = i;
	atomic_store(&s->sb, sb);
	if (i == n)
		atomic_store(&nslots, n + 1);
out:
	atomic_fetch_add(&table_gen, 1);
	pthread_mutex_unlock(&table_lock);
	return ret;
}

void pmt_sb_unpublish(struct pmt_sb *sb)
{
	struct slot *s;

	if (sb->slot < 0)
		return;
	s = slot_at(sb->slot);
	pthread_mutex_lock(&table_lock);
	atomic_fetch_add(&table_gen, 1);
	atomic_store(&s->sb, NULL);
	while (atomic_load(&s->users))
		sched_yield();
	atomic_store(&s->start, 0);
	atomic_store(&s->end, 0);
	atomic_fetch_add(&table_gen, 1);
	pthread_mutex_unlock(&table_lock);
	sb->slot = -1;
}

struct pmt_sb *pmt_sb_get(enum pmt_sb_kind kind, const void *owner,
			  uintptr_t addr, int *slot)
{
	int n = atomic_load(&nslots);

	for (int i = 0; i < n; i++) {
		struct slot *s = slot_at(i);
		struct pmt_sb *sb;

		if (!s ||
		    addr < atomic_load_explicit(&s->start,
						memory_order_relaxed) ||
		    addr >= atomic_load_explicit(&s->end, memory_order_relaxed))
			continue;
		atomic_fetch_add(&s->users, 1);
		sb = atomic_load(&s->sb);
		if (sb && sb->kind == kind && (!owner || sb->owner == owner) &&
		    addr >= sb->start && addr < sb->end) {
			*slot = i;
			return sb;
		}
		atomic_fetch_sub(&s->users, 1);
	}
	return NULL;
}

bool pmt_sb_overlaps(enum pmt_sb_kind kind, uintptr_t s, uintptr_t e)
{
	bool hit = false;

	pthread_mutex_lock(&table_lock);
	for (int i = 0; i < atomic_load(&nslots) && !hit; i++) {
		struct pmt_sb *sb = atomic_load(&slot_at(i)->sb);

		hit = sb && sb->kind == kind && sb->start < e && s < sb->end;
	}
	pthread_mutex_unlock(&table_lock);
	return hit;
}

void pmt_sb_put(int slot)
{
	atomic_fetch_sub(&slot_at(slot)->users, 1);
}

/* ---- the bits ----------------------------------------------------------- */

struct pmt_sb *pmt_sb_new(const struct pmtrack *t, enum pmt_sb_kind kind,
			  uintptr_t s, uintptr_t e, size_t gran)
{
	size_t npages = (e - s) / t->page_size;
	size_t nwords = (npages + 63) / 64;
	struct pmt_sb *sb =
		calloc(1, sizeof(*sb) + 2 * nwords * sizeof(uint64_t));

	if (!sb)
		return NULL;
	if (pthread_mutex_init(&sb->lock, NULL)) {
		free(sb);
		return NULL;
	}
	if (kind == PMT_SB_MPROTECT)
		sb->deny = sb->bits + nwords;
	else
		sb->filled = sb->bits + nwords;
	sb->start = s;
	sb->end = e;
	sb->gran = gran;
	sb->pshift = (unsigned int)__builtin_ctzl(t->page_size);
	sb->kind = kind;
	sb->owner = t;
	sb->slot = -1;
	sb->nwords = nwords;
	return sb;
}

void pmt_sb_free(struct pmt_sb *sb)
{
	if (!sb)
		return;
	pmt_sb_unpublish(sb);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

static void sb_span(const struct pmt_sb *sb, uintptr_t s, uintptr_t e,
		    size_t *from, size_t *to)
{
	if (s < sb->start)
		s = sb->start;
	if (e > sb->end)
		e = sb->end;
	*from = (s - sb->start) >> sb->pshift;
	*to = e > s ? (e - sb->start) >> sb->pshift : *from;
}

void pmt_sb_unit_span(const struct pmt_sb *sb, uintptr_t s, uintptr_t e,
		      uintptr_t *a, uintptr_t *b)
{
	uintptr_t m = (uintptr_t)sb->gran - 1;

	*a = s > sb->start ? s & ~m : sb->start;
	*b = e < sb->end ? (e + m) & ~m : sb->end;
	if (*b > sb->end)
		*b = sb->end;
}

/* set or clear the bits of [s, e) (clipped to the range) in @words */
static void words_update(const struct pmt_sb *sb, _Atomic uint64_t *words,
			 uintptr_t s, uintptr_t e, bool on)
{
	size_t from, to;

	sb_span(sb, s, e, &from, &to);
	if (from >= to)
		return; /* [s, e) missed the range */
	for (size_t w = from / 64; w < pmt_nwords(to); w++) {
		if (on)
			atomic_fetch_or(&words[w], pmt_word_mask(w, from, to));
		else
			atomic_fetch_and(&words[w],
					 ~pmt_word_mask(w, from, to));
	}
}

void pmt_sb_mark(struct pmt_sb *sb, uintptr_t s, uintptr_t e)
{
	words_update(sb, sb->bits, s, e, true);
}

void pmt_sb_clear(struct pmt_sb *sb, uintptr_t s, uintptr_t e)
{
	words_update(sb, sb->bits, s, e, false);
}

void pmt_sb_deny(struct pmt_sb *sb, uintptr_t s, uintptr_t e, bool on)
{
	words_update(sb, sb->deny, s, e, on);
}

bool pmt_sb_set_filled(struct pmt_sb *sb, uintptr_t page, bool on)
{
	size_t i = (page - sb->start) >> sb->pshift;
	uint64_t m = 1ULL << (i % 64);
	uint64_t old = on ? atomic_fetch_or(&sb->filled[i / 64], m)
			  : atomic_fetch_and(&sb->filled[i / 64], ~m);

	return old & m;
}

void pmt_sb_fill(struct pmt_sb *sb, uintptr_t s, uintptr_t e)
{
	words_update(sb, sb->filled, s, e, true);
}

/* any bit of @words set in [from, to)?  With @take, clear them all too. */
static bool words_any(_Atomic uint64_t *words, size_t from, size_t to,
		      bool take)
{
	bool any = false;

	if (from >= to)
		return false;
	for (size_t w = from / 64; w < pmt_nwords(to); w++) {
		uint64_t m = pmt_word_mask(w, from, to);
		uint64_t v = take ? atomic_fetch_and(&words[w], ~m)
				  : atomic_load(&words[w]);

		any |= (v & m) != 0;
		if (any && !take)
			break;
	}
	return any;
}

bool pmt_sb_denied(const struct pmt_sb *sb, uintptr_t s, uintptr_t e)
{
	size_t from, to;

	if (!sb->deny)
		return false;
	sb_span(sb, s, e, &from, &to);
	return words_any(sb->deny, from, to, false);
}

bool pmt_sb_undenied(const struct pmt_sb *sb, uintptr_t s, uintptr_t e)
{
	size_t from, to;

	sb_span(sb, s, e, &from, &to);
	if (!sb->deny || from >= to)
		return from < to;
	for (size_t w = from / 64; w < pmt_nwords(to); w++)
		if (~atomic_load(&sb->deny[w]) & pmt_word_mask(w, from, to))
			return true;
	return false;
}

bool pmt_sb_all_written(const struct pmt_sb *sb, uintptr_t s, uintptr_t e,
			uintptr_t held_s, uintptr_t held_e)
{
	size_t from, to, hf, ht;

	sb_span(sb, s, e, &from, &to);
	sb_span(sb, held_s, held_e, &hf, &ht);
	if (from >= to)
		return true; /* nothing of it in the range */
	for (size_t w = from / 64; w < pmt_nwords(to); w++) {
		uint64_t held = 0, bad;

		if (hf < ht && hf < w * 64 + 64 && ht > w * 64)
			held = pmt_word_mask(w, hf, ht);
		bad = ~atomic_load(&sb->bits[w]) & ~held;
		if (sb->deny)
			bad |= atomic_load(&sb->deny[w]);
		if (bad & pmt_word_mask(w, from, to))
			return false;
	}
	return true;
}

/* ---- collecting --------------------------------------------------------- */

struct sb_walk {
	struct pmtrack *t;
	struct pmt_collect *c;
	struct pmt_sb *sb;
	pmt_arm_fn arm;
	struct pmt_arming arming;
	uintptr_t run_s, run_e; /* taken, not yet armed and emitted */
	/* the sink's limits, as they will be once the run is emitted */
	size_t pages_left, runs_left;
	uintptr_t last_end;
};

/*
 * Arm [s, e) after its bits were taken, and emit it to @c unless NULL.
 * Where the mapping is gone in part (a hole, or on older kernels a run
 * that crosses VMAs), halve the run until each piece arms or is wholly
 * gone, so the mapped parts are never dropped with it.  A piece that stays
 * writable, or whose arming failed, is marked written again.  @a holds the
 * whole of what was taken.
 */
static int arm_pieces(struct pmtrack *t, struct pmt_sb *sb, pmt_arm_fn arm,
		      struct pmt_arming *a, struct pmt_collect *c, uintptr_t s,
		      uintptr_t e)
{
	int r = arm(t, sb, s, e, a);

	if (r == PMT_ARM_GONE && e - s > sb->gran) {
		uintptr_t mid = s + (e - s) / sb->gran / 2 * sb->gran;

		r = arm_pieces(t, sb, arm, a, c, s, mid);
		if (r < 0) {
			pmt_sb_mark(sb, mid, e);
			return r;
		}
		return arm_pieces(t, sb, arm, a, c, mid, e);
	}
	if (r == PMT_ARM_GONE)
		return 0;
	if (r != 0)
		pmt_sb_mark(sb, s, e);
	if (r < 0)
		return r;
	if (c)
		c->emit(c, s, e);
	return 0;
}

int pmt_sb_arm(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s, uintptr_t e)
{
	struct pmt_arming a = { .held_s = s, .held_e = e };
	int r;

	pmt_vma_iter_init(&a.vmas, t);
	r = arm_pieces(t, sb, t->ops->arm, &a, NULL, s, e);
	pmt_vma_iter_end(&a.vmas);
	return r;
}

/* Arm and emit the pending run. */
static int walk_flush(struct sb_walk *w)
{
	uintptr_t s = w->run_s, e = w->run_e;

	if (s == e)
		return 0;
	w->run_s = w->run_e = 0;
	if (w->c->reset && w->arm) {
		w->arming.held_s = s;
		w->arming.held_e = e;
		return arm_pieces(w->t, w->sb, w->arm, &w->arming, w->c, s, e);
	}
	w->c->emit(w->c, s, e);
	return 0;
}

/* Would a unit of @n pages at @a fit the sink?  If so, account for it. */
static bool walk_fits(struct sb_walk *w, uintptr_t a, size_t n, size_t bytes)
{
	bool new_run = a != w->last_end;

	if (w->pages_left < n || (new_run && !w->runs_left))
		return false;
	if (w->pages_left != SIZE_MAX)
		w->pages_left -= n;
	if (new_run && w->runs_left != SIZE_MAX)
		w->runs_left--;
	w->last_end = a + bytes;
	return true;
}

/* Add a run, to be taken once this returns: the pending run is armed
 * first unless the two touch.  On an error the pending run was given back
 * by walk_flush(). */
static int walk_add(struct sb_walk *w, uintptr_t s, uintptr_t e)
{
	int r;

	if (w->run_e == s && s) {
		w->run_e = e;
		return 0;
	}
	r = walk_flush(w);
	if (r)
		return r;
	w->run_s = s;
	w->run_e = e;
	return 0;
}

/*
 * Base-page ranges: a word at a time, a run at a time.  A RESET collect
 * holds the range's lock, so a bit it finds set stays set until it takes
 * it.  Bits that do not fit the sink are not taken.
 */
static int walk_pages(struct sb_walk *w, size_t from, size_t to,
		      uintptr_t *stop)
{
	struct pmt_sb *sb = w->sb;
	bool unlimited = w->pages_left == SIZE_MAX && w->runs_left == SIZE_MAX;
	int r;

	for (size_t wi = from / 64; wi < pmt_nwords(to); wi++) {
		uint64_t m = pmt_word_mask(wi, from, to);
		uint64_t got = atomic_load_explicit(&sb->bits[wi],
						    memory_order_relaxed) &
			       m;

		while (got) {
			unsigned int b = (unsigned int)__builtin_ctzll(got);
			/* the run of set bits starting at b, bit i */
			uint64_t run = got >> b;
			unsigned int len =
				run == ~0ULL
					? 64
					: (unsigned int)__builtin_ctzll(~run);
			size_t i = wi * 64 + b;
			uintptr_t a = sb->start + (i << sb->pshift);
			unsigned int k = len;

			if (!unlimited) {
				/* as many pages of the run as fit */
				for (k = 0; k < len; k++)
					if (!walk_fits(w,
						       a + ((uintptr_t)k
							    << sb->pshift),
						       1,
						       (size_t)1 << sb->pshift))
						break;
			}
			if (k) {
				r = walk_add(w, a,
					     a + ((uintptr_t)k << sb->pshift));
				if (r)
					return r;
				if (w->c->reset)
					atomic_fetch_and(
						&sb->bits[wi],
						~pmt_word_mask(wi, i, i + k));
			}
			if (k < len) {
				/* full */
				*stop = a + ((uintptr_t)k << sb->pshift);
				return 0;
			}
			got &= ~pmt_word_mask(wi, i, i + len);
		}
	}
	return 0;
}

/* Huge-page ranges: a protection unit (gran) at a time, whole or not. */
static int walk_units(struct sb_walk *w, size_t from, size_t to,
		      uintptr_t *stop)
{
	struct pmt_sb *sb = w->sb;
	size_t per = sb->gran >> sb->pshift;
	int r;

	for (size_t u = from / per * per; u < to; u += per) {
		uintptr_t a = sb->start + (u << sb->pshift);

		if (!words_any(sb->bits, u, u + per, false))
			continue;
		if (!walk_fits(w, a, per, sb->gran)) {
			/* a report without reset may end inside a unit */
			size_t k = w->pages_left;

			*stop = a;
			if (w->c->reset || !k || k >= per ||
			    !walk_fits(w, a, k, k << sb->pshift))
				return 0;
			*stop = a + (k << sb->pshift);
			return walk_add(w, a, *stop);
		}
		r = walk_add(w, a, a + sb->gran);
		if (r)
			return r;
		if (w->c->reset)
			words_any(sb->bits, u, u + per, true);
	}
	return 0;
}

int pmt_sb_collect(struct pmtrack *t, struct pmt_collect *c, size_t first)
{
	struct sb_walk w = {
		.t = t,
		.c = c,
		.arm = t->ops->arm,
		.pages_left = c->pages_left,
		.runs_left = c->runs_left,
		.last_end = c->last_end,
	};
	int ret = 0;

	pmt_vma_iter_init(&w.arming.vmas, t);
	c->next = c->start;
	for (size_t i = first; i < t->nranges && t->ranges[i].start < c->end;
	     i++) {
		struct pmt_range *r = &t->ranges[i];
		uintptr_t stop = 0;
		size_t from, to;

		w.sb = r->sb;
		sb_span(r->sb, c->start, c->end, &from, &to);
		if (c->reset)
			pthread_mutex_lock(&r->sb->lock);
		if (r->sb->gran >> r->sb->pshift == 1)
			ret = walk_pages(&w, from, to, &stop);
		else
			ret = walk_units(&w, from, to, &stop);
		if (!ret)
			ret = walk_flush(&w);
		if (c->reset)
			pthread_mutex_unlock(&r->sb->lock);
		if (ret)
			break; /* next stays where the report is whole */
		if (stop) {
			c->next = stop;
			break;
		}
		c->next = r->end < c->end ? r->end : c->end;
	}
	pmt_vma_iter_end(&w.arming.vmas);
	return ret;
}

int pmt_sb_first_written(struct pmtrack *t, uintptr_t s, uintptr_t e,
			 size_t first, uintptr_t *addr)
{
	for (size_t i = first; i < t->nranges && t->ranges[i].start < e; i++) {
		struct pmt_sb *sb = t->ranges[i].sb;
		size_t from, to;

		sb_span(sb, s, e, &from, &to);
		for (size_t wi = from / 64; wi < pmt_nwords(to); wi++) {
			uint64_t v = atomic_load(&sb->bits[wi]) &
				     pmt_word_mask(wi, from, to);

			if (v) {
				size_t b = wi * 64 + (size_t)__builtin_ctzll(v);

				*addr = (sb->start + (b << sb->pshift)) &
					~(uintptr_t)(sb->gran - 1);
				return 0;
			}
		}
	}
	*addr = e;
	return 0;
}

int pmt_sb_reset(struct pmtrack *t, uintptr_t s, uintptr_t e, size_t first)
{
	for (size_t i = first; i < t->nranges && t->ranges[i].start < e; i++) {
		struct pmt_sb *sb = t->ranges[i].sb;
		uintptr_t a = s > sb->start ? s : sb->start;
		uintptr_t b = e < sb->end ? e : sb->end;
		int r = 0;

		pthread_mutex_lock(&sb->lock);
		pmt_sb_clear(sb, a, b);
		if (t->ops->arm)
			r = pmt_sb_arm(t, sb, a, b);
		pthread_mutex_unlock(&sb->lock);
		if (r < 0)
			return r;
	}
	return 0;
}

int pmt_sb_prepare(struct pmtrack *t, uintptr_t s, uintptr_t e, size_t first)
{
	pmt_unarm_fn unarm = t->ops->unarm;

	for (size_t i = first; i < t->nranges && t->ranges[i].start < e; i++) {
		struct pmt_sb *sb = t->ranges[i].sb;
		uintptr_t a, b;
		int r;

		pmt_sb_unit_span(sb, s, e, &a, &b);
		/* mark, un-protect, mark again: like a fault handler, and for
		 * the same reasons (a collect between the first mark and the
		 * un-protect would otherwise leave the pages writable with
		 * clear bits); and under the lock, so that no collect sees
		 * the pages between the two */
		pthread_mutex_lock(&sb->lock);
		pmt_sb_mark(sb, a, b);
		r = unarm(t, sb, a, b);
		if (r >= 0)
			pmt_sb_mark(sb, a, b);
		pthread_mutex_unlock(&sb->lock);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- unwatch ------------------------------------------------------------ */

/* 64 bits of @words (@nwords long) starting at bit @i; bits past the end
 * read as 0 */
static uint64_t bits_at(_Atomic uint64_t *words, size_t nwords, size_t i)
{
	size_t w = i / 64;
	unsigned int sh = (unsigned int)(i % 64);
	uint64_t v = atomic_load(&words[w]) >> sh;

	if (sh && w + 1 < nwords)
		v |= atomic_load(&words[w + 1]) << (64 - sh);
	return v;
}

/* OR @src's bits (and deny or filled bits) into @dst, a sub-range of it,
 * a word at a time */
static void copy_bits(struct pmt_sb *dst, struct pmt_sb *src)
{
	size_t off = (dst->start - src->start) >> src->pshift;
	size_t n = (dst->end - dst->start) >> dst->pshift;

	for (size_t w = 0; w < dst->nwords; w++) {
		uint64_t m = pmt_word_mask(w, 0, n);
		uint64_t v = bits_at(src->bits, src->nwords, off + w * 64) & m;

		if (v)
			atomic_fetch_or(&dst->bits[w], v);
		if (src->deny) {
			v = bits_at(src->deny, src->nwords, off + w * 64) & m;
			if (v)
				atomic_fetch_or(&dst->deny[w], v);
		}
		if (src->filled) {
			v = bits_at(src->filled, src->nwords, off + w * 64) & m;
			if (v)
				atomic_fetch_or(&dst->filled[w], v);
		}
	}
}

int pmt_sb_split(struct pmtrack *t, struct pmt_range *r, struct pmt_range *head,
		 struct pmt_range *tail, bool published)
{
	struct pmt_sb *old = r->sb, *h = NULL, *tl = NULL;
	int ret = -ENOMEM;

	if (head->end > head->start) {
		h = pmt_sb_new(t, old->kind, head->start, head->end, old->gran);
		if (!h)
			goto fail;
		h->prot = old->prot;
		h->id = old->id;
		h->id_known = old->id_known;
	}
	if (tail->end > tail->start) {
		tl = pmt_sb_new(t, old->kind, tail->start, tail->end,
				old->gran);
		if (!tl)
			goto fail;
		tl->prot = old->prot;
		tl->id = old->id;
		tl->id_known = old->id_known;
	}
	if (published) {
		/* the new ranges first, so no fault finds nothing */
		if (h && (ret = pmt_sb_publish(h)))
			goto fail;
		if (tl && (ret = pmt_sb_publish(tl)))
			goto fail;
		pmt_sb_unpublish(old);
	}
	/* no handler uses old any more: its bits are final */
	if (h)
		copy_bits(h, old);
	if (tl)
		copy_bits(tl, old);
	pmt_sb_free(old);
	r->sb = NULL;
	head->sb = h;
	tail->sb = tl;
	return 0;
fail:
	pmt_sb_free(h);
	pmt_sb_free(tl);
	return ret;
}

int pmt_sb_mark_scan(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
		     uintptr_t e, uint64_t cat)
{
	struct page_region vec[PMT_SCAN_BATCH_DEFAULT];

	while (s < e) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = s,
			.end = e,
			.vec = (uintptr_t)vec,
			.vec_len = PMT_SCAN_BATCH_DEFAULT,
			.category_mask = cat,
			.return_mask = cat,
		};
		uint64_t t0 = pmt_now_ns();
		int n = ioctl(t->pagemap_fd, PAGEMAP_SCAN, &arg);

		pmt_stat_add(&t->st.scan_ns, pmt_now_ns() - t0);
		pmt_stat_add(&t->st.scans, 1);
		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++)
			pmt_sb_mark(sb, (uintptr_t)vec[i].start,
				    (uintptr_t)vec[i].end);
		if (n < (int)PMT_SCAN_BATCH_DEFAULT)
			break;
		/* walk_end can be stale after a full batch: see
		 * pagemap_scan.c */
		s = arg.walk_end > vec[n - 1].end ? (uintptr_t)arg.walk_end
						  : (uintptr_t)vec[n - 1].end;
	}
	return 0;
}

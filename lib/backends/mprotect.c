// SPDX-License-Identifier: MIT
/*
 * Backend: mprotect(PROT_READ) and a SIGSEGV handler.  Works on any kernel
 * and any mapping the process may write.
 *
 * The handler is process-wide and installed once, by the first mprotect
 * tracker; it stays installed for the life of the process (a handler
 * installed later may chain to it).  On a write fault in a watched range it
 * un-protects the page and sets its bit; it takes no lock and allocates
 * nothing, so it is async-signal-safe, and threads faulting at once only
 * share the range's user count and bit words.  Any other fault goes to the
 * handler that was installed before.
 *
 * Each isolated writable page splits a VMA.  When mprotect() fails with
 * ENOMEM because vm.max_map_count is reached, the handler un-protects a
 * larger span around the page (64 units, then 4096, then the whole range)
 * and marks all of it written: reports grow, no write is lost.
 *
 * pmt_protect() may make watched pages non-writable (the winwatch shim's
 * VirtualProtect).  Such pages get deny bits: a write fault there is the
 * program's own and goes to the previous handler, and arming, unwatching
 * and un-protecting leave their protection alone.  To deny, pmt_protect()
 * sets the bits, mprotect()s, waits until every handler that may have
 * looked at the bits before has finished (a grace period over two
 * counters), and mprotect()s again, undoing a late un-protect.
 *
 * Memory the program maps over a watched range (munmap() and mmap(), or
 * MAP_FIXED) is not ours, and its protection is not ours to change.
 * Nothing names a private anonymous mapping, so this backend tells its
 * own pages by what it left there: the object the range mapped when
 * watched (a file, memfd or shared anonymous mapping, at its offset), and
 * a protection that only it sets.  Its own undenied pages are armed
 * (read-only, PROT_EXEC kept) or writable as watched, and a writable one
 * was written: under the range's lock (swbits.c), a mapping writable as
 * watched is ours only if every page of the range it spans has its bit
 * set or is the run being armed.  A handler in flight may have made a
 * page writable and not yet marked it, so a mapping that fails only that
 * test is looked at again after a grace period.  Before re-arming a run,
 * a collect checks the mappings under it; if one is not ours it fails with
 * -ESTALE and arms nothing (the run stays written).  Unwatch, free and
 * pmtrack_prepare_kernel_write() give the watched protection back only to
 * armed mappings of the watched object.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "backend.h"

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool installed;
static struct sigaction old_sa;

/* Was the fault a write?  Only x86 tells in the context; elsewhere the
 * range lookup and SEGV_ACCERR must do. */
static bool fault_is_write(const void *uctx)
{
#if defined(__x86_64__)
	const ucontext_t *uc = uctx;

	return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
	(void)uctx;
	return true;
#endif
}

static void chain(int sig, siginfo_t *si, void *uctx)
{
	struct sigaction dfl;

	if (old_sa.sa_flags & SA_SIGINFO) {
		old_sa.sa_sigaction(sig, si, uctx);
		return;
	}
	if (old_sa.sa_handler != SIG_DFL && old_sa.sa_handler != SIG_IGN) {
		old_sa.sa_handler(sig);
		return;
	}
	/* a signal sent with kill() that was ignored stays ignored */
	if (old_sa.sa_handler == SIG_IGN && si->si_code <= 0)
		return;
	/*
	 * Default action (an ignored fault cannot be ignored either): put
	 * SIG_DFL back.  A real fault happens again on return and kills
	 * the process with the usual status and core; a sent signal is
	 * raised again and delivered once this handler returns.
	 */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

/* shrink [*s, *e) to the units around the one at @a that are not denied */
static void undenied_around(const struct pmt_sb *sb, uintptr_t a, uintptr_t *s,
			    uintptr_t *e)
{
	uintptr_t u = a & ~(uintptr_t)(sb->gran - 1), lo = u, hi = u + sb->gran;

	while (lo > *s && !pmt_sb_denied(sb, lo - sb->gran, lo))
		lo -= sb->gran;
	while (hi < *e && !pmt_sb_denied(sb, hi, hi + sb->gran))
		hi += sb->gran;
	*s = lo;
	*e = hi;
}

/* Un-protect the unit holding @a, or a larger span if map count is out. */
static bool mp_fault(struct pmt_sb *sb, uintptr_t a)
{
	size_t span = sb->gran;

	for (;;) {
		uintptr_t s = a & ~(uintptr_t)(span - 1);
		uintptr_t e = s + span;

		if (s < sb->start || e < s)
			s = sb->start;
		if (e > sb->end || e < s)
			e = sb->end;
		/* the last try is the whole range, even where an aligned
		   window of that size would cross its middle */
		if (span >= sb->end - sb->start) {
			s = sb->start;
			e = sb->end;
		}
		if (span > sb->gran)
			undenied_around(sb, a, &s, &e);
		/*
		 * Marked before the span is writable, so another thread
		 * that writes it and then collects sees it; marked again
		 * after, in case a collect took the bits and armed the
		 * span meanwhile (see swbits.c).  A failed attempt only
		 * leaves extra marks.
		 */
		pmt_sb_mark(sb, s, e);
		if (!mprotect((void *)s, e - s, (int)sb->prot)) {
			pmt_sb_mark(sb, s, e);
			return true;
		}
		if (errno != ENOMEM || span >= sb->end - sb->start)
			return false;
		span = span > (SIZE_MAX >> 7) ? SIZE_MAX / 2 + 1 : span * 64;
	}
}

/*
 * This thread's last fault that found no range: its address, and the
 * table generation (pmt_sb_gen()) its lookup saw.  A lookup can miss a
 * watched page for a moment: unwatch makes pages writable and then drops
 * their range, and a split publishes the new ranges in slots the scan may
 * already have passed, or between dropping the old range and publishing
 * the new ones; the thread doing it may be preempted right there.  So a
 * miss returns and lets the access run again, and only a second miss at
 * the same address, with the table unchanged (and not changing) since
 * the first, is passed on: nothing was being published or dropped, and
 * the page still faults, so it is not ours.
 * Initial-exec TLS: no allocation or lock on first use in the handler.
 */
static __thread uintptr_t last_miss __attribute__((tls_model("initial-exec")));
static __thread unsigned int last_gen
	__attribute__((tls_model("initial-exec")));

/* a miss at @a whose lookup began at generation @gen: retry (true)? */
static bool miss_retry(uintptr_t a, unsigned int gen)
{
	bool same = last_miss == a && last_gen == gen && !(gen & 1) &&
		    pmt_sb_gen() == gen;

	last_miss = a;
	last_gen = gen;
	return !same;
}

/* the grace period of pmt_protect(): enter, leave, wait */
static unsigned int grace_enter(struct pmt_sb *sb)
{
	for (;;) {
		unsigned int ep = atomic_load(&sb->epoch);

		atomic_fetch_add(&sb->inflight[ep & 1], 1);
		if (atomic_load(&sb->epoch) == ep)
			return ep;
		atomic_fetch_sub(&sb->inflight[ep & 1], 1);
	}
}

static void grace_leave(struct pmt_sb *sb, unsigned int ep)
{
	atomic_fetch_sub(&sb->inflight[ep & 1], 1);
}

static void grace_wait(struct pmt_sb *sb)
{
	unsigned int ep = atomic_fetch_add(&sb->epoch, 1);

	while (atomic_load(&sb->inflight[ep & 1]))
		sched_yield();
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno;
	uintptr_t a = (uintptr_t)si->si_addr;

	if (si->si_code == SEGV_ACCERR && fault_is_write(uctx)) {
		unsigned int gen = pmt_sb_gen();
		int slot;
		struct pmt_sb *sb = pmt_sb_get(PMT_SB_MPROTECT, NULL, a, &slot);

		if (sb) {
			uintptr_t pg = a >> sb->pshift << sb->pshift;
			unsigned int ep = grace_enter(sb);
			bool done = !pmt_sb_denied(sb, pg,
						   pg + (1u << sb->pshift)) &&
				    mp_fault(sb, a);

			grace_leave(sb, ep);
			pmt_sb_put(slot);
			last_miss = 0;
			if (done) {
				errno = saved;
				return;
			}
		} else if (miss_retry(a, gen)) {
			errno = saved;
			return;
		}
	}
	last_miss = 0;
	chain(sig, si, uctx);
	errno = saved;
}

static int install_handler(void)
{
	struct sigaction sa;
	int ret = 0;

	if (atomic_load(&installed))
		return 0;
	pthread_mutex_lock(&install_lock);
	if (!atomic_load(&installed)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = segv_handler;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSEGV, &sa, &old_sa))
			ret = -errno;
		else
			atomic_store(&installed, true);
	}
	pthread_mutex_unlock(&install_lock);
	return ret;
}

static int mp_usable(void)
{
	return 1;
}

static int mp_open(struct pmtrack *t)
{
	t->caps = PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET |
		  PMTRACK_CAP_SHARED_EXACT | PMTRACK_CAP_FILE_MAPPINGS |
		  PMTRACK_CAP_HUGETLB;
	return install_handler();
}

static int mp_give_back(struct pmt_sb *sb, struct pmt_vma_iter *it, uintptr_t s,
			uintptr_t e);

static void mp_close(struct pmtrack *t)
{
	struct pmt_vma_iter it;

	/* writable again first, then forgotten (see mp_unwatch) */
	pmt_vma_iter_init(&it, t);
	for (size_t i = 0; i < t->nranges; i++) {
		struct pmt_sb *sb = t->ranges[i].sb;

		mp_give_back(sb, &it, sb->start, sb->end);
		pmt_sb_free(sb);
		t->ranges[i].sb = NULL;
	}
	pmt_vma_iter_end(&it);
}

static int mp_protect(uintptr_t s, uintptr_t e, int prot)
{
	return mprotect((void *)s, e - s, prot) ? -errno : 0;
}

/* mp_protect() the units of [s, e) that are not denied; the first error */
static int mp_protect_allowed(const struct pmt_sb *sb, uintptr_t s, uintptr_t e,
			      int prot)
{
	int ret = 0;

	if (!pmt_sb_denied(sb, s, e))
		return mp_protect(s, e, prot);
	while (s < e) {
		uintptr_t run;
		int r;

		while (s < e && pmt_sb_denied(sb, s, s + sb->gran))
			s += sb->gran;
		for (run = s;
		     run < e && !pmt_sb_denied(sb, run, run + sb->gran);
		     run += sb->gran)
			;
		if (run > s && (r = mp_protect(s, run, prot)) && !ret)
			ret = r;
		s = run;
	}
	return ret;
}

static unsigned int armed_prot(const struct pmt_sb *sb)
{
	return PROT_READ | (sb->prot & PROT_EXEC);
}

/* does @v map what the range mapped when watched? */
static bool same_object(const struct pmt_sb *sb, const struct pmt_vma *v)
{
	return !sb->id_known || pmt_vma_id_eq(&sb->id, &v->id);
}

enum { MP_OURS, MP_NOT_OURS, MP_UNSURE };

/* Is @v, which holds undenied pages of @sb, the mapping this backend
 * armed, with the pages @a holds about to be armed again? */
static int mp_judge(const struct pmt_sb *sb, const struct pmt_vma *v,
		    const struct pmt_arming *a)
{
	if (!same_object(sb, v))
		return MP_NOT_OURS;
	if (v->prot == armed_prot(sb))
		return MP_OURS;
	if (v->prot != sb->prot)
		return MP_NOT_OURS;
	/* writable: ours if written throughout the range, as far as it
	 * reaches; else some page there should be armed and is not */
	return pmt_sb_all_written(sb, v->start, v->end, a->held_s, a->held_e)
		       ? MP_OURS
		       : MP_UNSURE;
}

/*
 * May [s, e), whose bits the caller holds, be armed?  0 if all of it is
 * mapped and ours; PMT_ARM_GONE if part is not mapped (the caller arms
 * the rest piece by piece); -ESTALE if some of it is mapped by something
 * else now; another -errno if the mappings cannot be read.
 */
static int mp_owned(struct pmt_sb *sb, uintptr_t s, uintptr_t e,
		    struct pmt_arming *a)
{
	bool hole = false, waited = false;
	uintptr_t p = s;

	while (p < e) {
		struct pmt_vma v;
		uintptr_t q;
		int r = pmt_vma_find(&a->vmas, p, &v);

		if (r == -ENOMEM || (!r && v.start >= e))
			return PMT_ARM_GONE;
		if (r)
			return r;
		if (v.start > p) {
			hole = true;
			p = v.start;
			continue;
		}
		q = v.end < e ? v.end : e;
		/* arming leaves denied pages alone, whatever maps them */
		if (!pmt_sb_undenied(sb, p, q)) {
			p = q;
			continue;
		}
		r = mp_judge(sb, &v, a);
		if (r == MP_UNSURE && !waited) {
			/* a handler between making a page writable and
			 * marking it looks like this: wait until those in
			 * flight are done, and look again */
			grace_wait(sb);
			pmt_vma_iter_reset(&a->vmas);
			waited = true;
			continue;
		}
		if (r != MP_OURS)
			return -ESTALE;
		p = q;
	}
	return hole ? PMT_ARM_GONE : 0;
}

/* Arm [s, e) again after a collect took its bits. */
static int mp_arm(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
		  uintptr_t e, struct pmt_arming *a)
{
	struct pmt_vma_span span;
	int r = mp_owned(sb, s, e, a);

	if (r)
		return r;
	r = mp_protect_allowed(sb, s, e, (int)armed_prot(sb));
	if (r != -ENOMEM)
		return r;
	/* out of map count, or unmapped since it was looked at? */
	if (pmt_vma_check(t, s, e, &span) == -ENOMEM)
		return PMT_ARM_GONE;
	return PMT_ARM_DIRTY;
}

/* give [from, to) back the watched protection, if not empty; the first
 * error goes to *ret */
static void give_back_run(struct pmt_sb *sb, uintptr_t from, uintptr_t to,
			  int *ret)
{
	int r = from < to ? mp_protect_allowed(sb, from, to, (int)sb->prot) : 0;

	if (r && !*ret)
		*ret = r;
}

/*
 * Give the armed mappings of the watched object in [s, e) the protection
 * the range was watched with; holes and memory mapped there since keep
 * theirs.  Mappings that already have it need nothing, but one mprotect()
 * may span them (it changes nothing there).  Returns the first error.
 */
static int mp_give_back(struct pmt_sb *sb, struct pmt_vma_iter *it, uintptr_t s,
			uintptr_t e)
{
	/* [from, to) is to be given back; it may grow on past reach */
	uintptr_t from = s, to = s, reach = s, p = s;
	int ret = 0;

	while (p < e) {
		struct pmt_vma v;
		uintptr_t q;
		int r = pmt_vma_find(it, p, &v);

		if (r == -ENOMEM || (!r && v.start >= e))
			break;
		if (r) {
			ret = r;
			break;
		}
		if (v.start > p) {
			/* a hole */
			give_back_run(sb, from, to, &ret);
			from = to = p = v.start;
			continue;
		}
		q = v.end < e ? v.end : e;
		if (v.prot == armed_prot(sb) && same_object(sb, &v)) {
			if (from == to || reach != p) {
				give_back_run(sb, from, to, &ret);
				from = p;
			}
			to = q;
		} else if (v.prot != sb->prot) {
			give_back_run(sb, from, to, &ret);
			from = to = q;
		}
		reach = p = q;
	}
	give_back_run(sb, from, to, &ret);
	return ret;
}

static int mp_watch(struct pmtrack *t, struct pmt_range *r,
		    const struct pmt_vma_span *span)
{
	struct pmt_sb *sb;
	int ret;

	/* another mprotect tracker has it (and made it read-only) */
	if (pmt_sb_overlaps(PMT_SB_MPROTECT, r->start, r->end))
		return -EBUSY;
	if (span->prot_all != span->prot_any ||
	    (span->prot_all & (PROT_READ | PROT_WRITE)) !=
		    (PROT_READ | PROT_WRITE))
		return -EACCES;
	sb = pmt_sb_new(t, PMT_SB_MPROTECT, r->start, r->end, r->align);
	if (!sb)
		return -ENOMEM;
	sb->prot = span->prot_all;
	sb->id = span->id;
	sb->id_known = !span->id_mixed;
	ret = pmt_sb_publish(sb);
	if (ret)
		goto fail;
	ret = mp_protect(r->start, r->end,
			 PROT_READ | (int)(sb->prot & PROT_EXEC));
	if (ret) {
		/* part may be protected: give it back before forgetting it */
		mp_protect(r->start, r->end, (int)sb->prot);
		goto fail;
	}
	r->sb = sb;
	return 0;
fail:
	pmt_sb_free(sb);
	return ret;
}

static int mp_unwatch(struct pmtrack *t, struct pmt_range *r, uintptr_t s,
		      uintptr_t e, struct pmt_range *head,
		      struct pmt_range *tail)
{
	/* writable first, so no write there faults once it is forgotten */
	struct pmt_vma_iter it;
	int ret;

	pmt_vma_iter_init(&it, t);
	ret = mp_give_back(r->sb, &it, s, e);
	pmt_vma_iter_end(&it);
	if (!ret)
		ret = pmt_sb_split(t, r, head, tail, true);
	/* out of map count, say: part may be writable now and stays
	 * watched, so it must read as written */
	if (ret)
		pmt_sb_mark(r->sb, s, e);
	return ret;
}

static int mp_unarm(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
		    uintptr_t e)
{
	struct pmt_vma_iter it;
	int ret;

	pmt_vma_iter_init(&it, t);
	ret = mp_give_back(sb, &it, s, e);
	pmt_vma_iter_end(&it);
	return ret;
}

/* a reset takes and re-arms the written runs like a RESET collect, with
 * the same checks: a page whose bit is clear is armed already */
static void discard(struct pmt_collect *c, uintptr_t s, uintptr_t e)
{
	(void)c;
	(void)s;
	(void)e;
}

static int mp_reset(struct pmtrack *t, uintptr_t s, uintptr_t e, size_t first)
{
	struct pmt_collect c = {
		.start = s,
		.end = e,
		.reset = true,
		.pages_left = SIZE_MAX,
		.runs_left = SIZE_MAX,
		.emit = discard,
	};

	return pmt_sb_collect(t, &c, first);
}

static int mp_set_prot(struct pmtrack *t, struct pmt_range *r, uintptr_t s,
		       uintptr_t e, int prot)
{
	struct pmt_sb *sb = r->sb;
	int armed = PROT_READ | (int)(sb->prot & PROT_EXEC);
	int ret;

	(void)t;
	if ((s | e) & (sb->gran - 1))
		return -EINVAL;
	if (prot & PROT_WRITE) {
		/* only the protection it was watched with can be tracked */
		if (prot != (int)sb->prot)
			return -EOPNOTSUPP;
		/* armed while still denied, then allowed: pending bits stay
		 * and the next write faults and is ours */
		ret = mp_protect(s, e, armed);
		if (!ret)
			pmt_sb_deny(sb, s, e, false);
		return ret;
	}
	pmt_sb_deny(sb, s, e, true);
	ret = mp_protect(s, e, prot);
	grace_wait(sb);
	if (!ret)
		ret = mp_protect(s, e, prot);
	if (ret) {
		/* back to tracked; a page left writable reads as written */
		mp_protect(s, e, armed);
		pmt_sb_mark(sb, s, e);
		pmt_sb_deny(sb, s, e, false);
	}
	return ret;
}

const struct pmt_backend_ops pmt_mprotect_ops = {
	.id = PMTRACK_BACKEND_MPROTECT,
	.usable = mp_usable,
	.open = mp_open,
	.close = mp_close,
	.watch = mp_watch,
	.unwatch = mp_unwatch,
	.collect = pmt_sb_collect,
	.reset = mp_reset,
	.first_written = pmt_sb_first_written,
	.arm = mp_arm,
	.unarm = mp_unarm,
	.protect = mp_set_prot,
};

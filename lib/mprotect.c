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

#include "internal.h"

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
		if (span > sb->gran)
			undenied_around(sb, a, &s, &e);
		/*
		 * Marked before the span is writable, so another thread
		 * that writes it and then collects sees it; marked again
		 * after, in case a collect took the bits and armed the
		 * span meanwhile (see softbits.c).  A failed attempt only
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
 * The address of this thread's last fault that found no range.  A lookup
 * can miss a watched page for a moment: unwatch makes pages writable and
 * then drops their range, and a split publishes the new ranges in slots
 * the scan may already have passed.  So a miss first returns and lets the
 * access run again; only the same fault twice in a row is passed on.
 * Initial-exec TLS: no allocation or lock on first use in the handler.
 */
static __thread uintptr_t last_miss __attribute__((tls_model("initial-exec")));

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
		} else if (last_miss != a) {
			last_miss = a;
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
		  PMTRACK_CAP_SHARED_EXACT |
		  PMTRACK_CAP_FILE_MAPPINGS | PMTRACK_CAP_HUGETLB;
	return install_handler();
}

static int mp_protect(uintptr_t s, uintptr_t e, int prot);
static int mp_protect_allowed(const struct pmt_sb *sb, uintptr_t s, uintptr_t e,
			      int prot);

static void mp_close(struct pmtrack *t)
{
	/* writable again first, then forgotten (see mp_unwatch) */
	for (size_t i = 0; i < t->nranges; i++) {
		struct pmt_sb *sb = t->ranges[i].sb;

		if (mp_protect_allowed(sb, sb->start, sb->end, (int)sb->prot))
			for (uintptr_t a = sb->start; a < sb->end;
			     a += sb->gran)
				mp_protect_allowed(sb, a, a + sb->gran,
						   (int)sb->prot);
		pmt_sb_unpublish(sb);
		pmt_sb_free(sb);
		t->ranges[i].sb = NULL;
	}
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

/* Arm [s, e) again after a collect took its bits. */
static int mp_arm(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
		  uintptr_t e, struct pmt_arming *a)
{
	struct pmt_vma_span span;
	int r = mp_protect_allowed(sb, s, e,
				   PROT_READ | (int)(sb->prot & PROT_EXEC));

	(void)a;
	if (r != -ENOMEM)
		return r;
	/* out of map count, or unmapped since it was watched? */
	if (pmt_vma_check(t, s, e, &span) == -ENOMEM)
		return PMT_ARM_GONE;
	return PMT_ARM_DIRTY;
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
	pmt_sb_unpublish(sb);
	pmt_sb_free(sb);
	return ret;
}

static int mp_unwatch(struct pmtrack *t, struct pmt_range *r, uintptr_t s,
		      uintptr_t e, struct pmt_range *head,
		      struct pmt_range *tail)
{
	/* writable first, so no write there faults once it is forgotten; a
	 * hole (unmapped since) is fine */
	int ret = mp_protect_allowed(r->sb, s, e, (int)r->sb->prot);

	if (ret == -ENOMEM) {
		struct pmt_vma_span span;

		if (pmt_vma_check(t, s, e, &span) != -ENOMEM) {
			/* out of map count: part may be writable now and
			 * stays watched, so it must read as written */
			pmt_sb_mark(r->sb, s, e);
			return ret;
		}
		/* partly unmapped: give back what is still there */
		for (uintptr_t a = s; a < e; a += r->sb->gran)
			mp_protect_allowed(r->sb, a, a + r->sb->gran,
					   (int)r->sb->prot);
	}
	ret = pmt_sb_split(t, r, head, tail, true);
	if (ret) /* [s, e) is writable but still watched */
		pmt_sb_mark(r->sb, s, e);
	return ret;
}

static int mp_unarm(struct pmtrack *t, struct pmt_sb *sb, uintptr_t s,
		    uintptr_t e)
{
	(void)t;
	return mp_protect_allowed(sb, s, e, (int)sb->prot);
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
	.reset = pmt_sb_reset,
	.first_written = pmt_sb_first_written,
	.arm = mp_arm,
	.unarm = mp_unarm,
	.protect = mp_set_prot,
};

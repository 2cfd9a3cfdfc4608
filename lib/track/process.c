// SPDX-License-Identifier: MIT
/*
 * Whole processes (<pmtrack/process.h>): one tracker per process, whose
 * watched ranges follow the process's writable mappings from collect to
 * collect.  The children's part (following fork, exec and exit with
 * ptrace events) is in procmon.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/process.h>

#include "proc.h"
#include "procint.h"

/* ---- the processes ------------------------------------------------------ */

struct pp_proc *pp_find(struct pmtrack_proc *p, pid_t pid)
{
	for (size_t i = 0; i < p->nprocs; i++)
		if (p->procs[i]->pid == pid)
			return p->procs[i];
	return NULL;
}

/* a tracker of @pid: injected (or given @uffd), or soft-dirty */
static int pp_tracker(struct pmtrack_proc *p, pid_t pid, int uffd,
		      struct pmtrack **t)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = p->backend, .pid = pid,
		     .rearm = p->rearm);
	PMTRACK_OPTS(pmtrack_stats, st);
	struct pmt_uffd_how how = { .fd = uffd,
				    .features = p->uffd_features };
	int ret = pmt_track_new_uffd(&o, &how, t);

	if (ret)
		return ret;
	pmtrack_get_stats(*t, &st);
	if (st.injections) {
		atomic_fetch_add(&p->st.injections, st.injections);
		atomic_fetch_add(&p->st.inject_stop_ns, st.inject_stop_ns);
		if (st.inject_stop_ns > atomic_load(&p->st.inject_stop_max_ns))
			atomic_store(&p->st.inject_stop_max_ns,
				     st.inject_stop_ns);
	}
	return 0;
}

static void pp_unwatch_all(struct pp_proc *pr)
{
	pr->nw = 0;
}

/* (re)start tracking @pr's current address space: a new tracker (the old
 * one and what it watched dropped) and page-state handle */
int pp_rebind(struct pmtrack_proc *p, struct pp_proc *pr, int uffd)
{
	PMTRACK_OPTS(pmtrack_pstate_opts, po, .pid = pr->pid);
	int ret;

	pmtrack_free(pr->t);
	pr->t = NULL;
	pmtrack_pstate_free(pr->ps);
	pr->ps = NULL;
	pp_unwatch_all(pr);
	pr->stale = false;
	pr->bind_err = 0;
	ret = pp_tracker(p, pr->pid, uffd, &pr->t);
	if (!ret)
		ret = pmtrack_pstate_new(&po, &pr->ps);
	if (ret) {
		/* reported by every collect until tracking works again */
		pmtrack_free(pr->t);
		pr->t = NULL;
		pr->bind_err = ret;
	}
	return ret;
}

int pp_add(struct pmtrack_proc *p, pid_t pid, int uffd, unsigned int flags,
	   struct pp_proc **out)
{
	struct pp_proc *pr = calloc(1, sizeof(*pr));
	int ret;

	if (!pr) {
		if (uffd >= 0)
			close(uffd);
		return -ENOMEM;
	}
	pr->pid = pid;
	pr->next_flags = flags | PMTRACK_PROC_NEW;
	ret = pp_rebind(p, pr, uffd);
	/* in the middle of an exec (its old memory gone under us) */
	for (int k = 0; k < 200 && ret == -ESRCH && uffd < 0 && pp_alive(pid);
	     k++) {
		struct timespec ts = { 0, 5000000 };

		nanosleep(&ts, NULL);
		ret = pp_rebind(p, pr, uffd);
	}
	if (!ret)
		ret = pp_insert(p, pr);
	if (ret) {
		pp_free(pr);
		return ret;
	}
	if (out)
		*out = pr;
	return 0;
}

int pp_insert(struct pmtrack_proc *p, struct pp_proc *pr)
{
	size_t i;

	if (p->nprocs == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		struct pp_proc **v = realloc(p->procs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->procs = v;
		p->cap = cap;
	}
	/* ascending pids */
	i = p->nprocs;
	while (i && p->procs[i - 1]->pid > pr->pid) {
		p->procs[i] = p->procs[i - 1];
		i--;
	}
	p->procs[i] = pr;
	p->nprocs++;
	return 0;
}

void pp_free(struct pp_proc *pr)
{
	if (!pr)
		return;
	pmtrack_free(pr->t);
	pmtrack_pstate_free(pr->ps);
	free(pr->w);
	pp_stash_free(pr->stash);
	pp_shm_free(pr->shm);
	free(pr);
}

void pp_remove(struct pmtrack_proc *p, struct pp_proc *pr)
{
	size_t i = 0;

	while (i < p->nprocs && p->procs[i] != pr)
		i++;
	if (i == p->nprocs)
		return;
	memmove(&p->procs[i], &p->procs[i + 1],
		(p->nprocs - i - 1) * sizeof(p->procs[0]));
	p->nprocs--;
	pp_free(pr);
}

bool pp_injects(const struct pmtrack_proc *p)
{
	if (p->backend == PMTRACK_BACKEND_SOFT_DIRTY)
		return false;
	/* AUTO: pagemap-scan where it works (the probes are cached) */
	return pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL) == 1 &&
	       pmtrack_probe(PMTRACK_FEAT_UFFD_WP_ASYNC, NULL) == 1;
}

/* is @pid alive (not gone, not a zombie)? */
bool pp_alive(pid_t pid)
{
	return pmt_proc_alive(pid);
}

/* ---- the watched set ------------------------------------------------------ */

static int w_push(struct pp_proc *pr, uint64_t s, uint64_t e)
{
	if (pr->nw == pr->capw) {
		size_t cap = pr->capw ? 2 * pr->capw : 32;
		struct pp_span *v = realloc(pr->w, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		pr->w = v;
		pr->capw = cap;
	}
	pr->w[pr->nw].s = s;
	pr->w[pr->nw].e = e;
	pr->nw++;
	return 0;
}

static bool tracked_map(const struct pmtrack_mapping *m)
{
	return (m->prot & PROT_WRITE) && !(m->flags & PMTRACK_MAP_SPECIAL);
}

/* ---- one collect of one process -------------------------------------------- */

struct pp_emit {
	struct pmtrack_proc *p;
	struct pp_proc *pr;
	pmtrack_proc_fn fn;
	void *arg;
	struct pmtrack_page_run runs[PP_RUNS];
	struct pmtrack_run kruns[PP_RUNS];
};

static int emit(struct pp_emit *e, const struct pmtrack_mapping *m,
		unsigned int flags, size_t n)
{
	struct pmtrack_proc_report r = {
		.pid = e->pr->pid,
		.flags = flags | e->pr->next_flags,
		.map = m,
		.runs = e->runs,
		.nruns = n,
	};
	uint64_t pages = 0;

	if (e->fn == pp_discard)
		return 0;
	for (size_t i = 0; i < n; i++)
		pages += (e->runs[i].end - e->runs[i].start) /
			 (uint64_t)e->p->page_size;
	atomic_fetch_add(&e->p->st.pages_reported, pages);
	if (flags & PMTRACK_PROC_FULL)
		atomic_fetch_add(&e->p->st.maps_new, 1);
	return e->fn(e->arg, &r);
}

int pp_discard(void *arg, const struct pmtrack_proc_report *r)
{
	(void)arg;
	(void)r;
	return 0;
}

static int emit_full(struct pp_emit *e, const struct pmtrack_mapping *m,
		     bool untracked)
{
	e->runs[0] = (struct pmtrack_page_run){ .start = m->start,
						.end = m->end,
						.states = PMTRACK_PAGE_WRITTEN };
	return emit(e, m,
		    PMTRACK_PROC_FULL | (untracked ? PMTRACK_PROC_UNTRACKED : 0),
		    1);
}

/*
 * Collect [s, e) of mapping @m (watched) and report it.  Returns 0,
 * 1 if the kernel says part of it lost its registration (nothing of it
 * was reported after that point: the caller reports it in full), or
 * -errno.
 */
static int collect_span(struct pp_emit *e, const struct pmtrack_mapping *m,
			uint64_t s, uint64_t end, unsigned int flags)
{
	struct pmtrack *t = e->pr->t;
	uint64_t cur = s;

	while (cur < end) {
		size_t n = PP_RUNS;
		void *next = NULL;
		int ret = pmtrack_collect_runs(t, (void *)(uintptr_t)cur,
					       end - cur, flags, e->kruns, &n,
					       &next);

		for (size_t i = 0; i < n; i++) {
			uint64_t a = (uintptr_t)e->kruns[i].addr;

			e->runs[i] = (struct pmtrack_page_run){
				.start = a,
				.end = a + e->kruns[i].len,
				.states = PMTRACK_PAGE_WRITTEN,
			};
		}
		if (n) {
			int r = emit(e, m, 0, n);

			if (r)
				return r;
		}
		if (ret == -ESTALE)
			return 1;
		if (ret)
			return ret;
		if (!next || (uintptr_t)next <= cur)
			break;
		cur = (uintptr_t)next;
	}
	return 0;
}

/* watch [s, e) and add it to the set: 0, or 1 if it cannot be watched
 * (gone meanwhile, refused by the backend): it is reported in full */
static int watch_span(struct pp_proc *pr, uint64_t s, uint64_t e)
{
	int ret = pmtrack_watch(pr->t, (void *)(uintptr_t)s, e - s);

	if (ret == -ENOMEM || ret == -EINVAL || ret == -EBUSY ||
	    ret == -EOPNOTSUPP || ret == -EACCES || ret == -EPERM)
		return 1;
	return ret ? ret : w_push(pr, s, e);
}

/* [s, e) of a watched span lost its registration: register it again */
static int rewatch_span(struct pp_proc *pr, uint64_t s, uint64_t e)
{
	int ret = pmtrack_unwatch(pr->t, (void *)(uintptr_t)s, e - s);

	if (ret)
		return ret;
	ret = watch_span(pr, s, e);
	return ret < 0 ? ret : 0;
}

/*
 * Is @m a large mapping of which few pages exist, like a reservation made
 * with MAP_NORESERVE?  Arming gives every page of a range a page-table
 * entry (a write-protect marker where there is none yet): 2 MiB of page
 * tables per GiB, 32 GiB for a sanitizer's 16 TiB shadow.  Such a mapping
 * is not armed and is reported in full by every collect, which costs its
 * existing pages instead.
 */
static bool too_sparse(struct pp_emit *e, const struct pmtrack_mapping *m)
{
	uint64_t pages = (m->end - m->start) / e->p->page_size, exist;
	PMTRACK_OPTS(pmtrack_page_counts, c);

	if (m->end - m->start < PP_SPARSE_MIN)
		return false;
	if (pmtrack_pstate_count(e->pr->ps, m->start, m->end,
				 PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_SWAPPED |
					 PMTRACK_PAGE_UNSURE,
				 &c))
		return false; /* cannot tell: arm it */
	exist = c.state[0] + c.state[1] + c.state[7];
	if (exist * PP_SPARSE_RATIO >= pages)
		return false;
	atomic_fetch_add(&e->p->st.maps_sparse, 1);
	return true;
}

/* does mapping @m have a part no span of @old covers? */
static bool has_gap(const struct pmtrack_mapping *m, const struct pp_span *old,
		    size_t nold)
{
	uint64_t cur = m->start;

	for (size_t i = 0; i < nold && cur < m->end; i++) {
		if (old[i].e <= cur)
			continue;
		if (old[i].s > cur)
			return true;
		cur = old[i].e;
	}
	return cur < m->end;
}

/* one watched span of mapping @m: collect it (or, if the mapping is
 * reported in full anyway, just reset it) and keep it in the set */
static int do_span(struct pp_emit *e, const struct pmtrack_mapping *m,
		   uint64_t s, uint64_t x, bool full, unsigned int flags)
{
	struct pp_proc *pr = e->pr;
	int ret;

	if (full)
		ret = pmtrack_reset(pr->t, (void *)(uintptr_t)s, x - s);
	else
		ret = collect_span(e, m, s, x, flags);
	if (ret == -ESTALE)
		ret = 1;
	if (ret < 0)
		return ret;
	if (ret) {
		ret = rewatch_span(pr, s, x);
		return ret ? ret : 1;
	}
	return w_push(pr, s, x);
}

/*
 * One mapping: collect what of it was watched (the spans of @old it
 * overlaps), watch what was not, and report.  What stays watched is
 * pushed onto pr->w; spans of a mapping no longer writable are left out
 * (and unwatched by the caller).
 */
static int do_map(struct pp_emit *e, const struct pmtrack_mapping *m,
		  const struct pp_span *old, size_t nold, unsigned int flags)
{
	struct pp_proc *pr = e->pr;
	bool tracked = tracked_map(m);
	bool full = tracked && (pr->full_next || has_gap(m, old, nold));
	bool arm = full && !too_sparse(e, m), untracked = full && !arm;
	uint64_t cur = m->start;
	int ret;

	for (size_t i = 0; i < nold; i++) {
		uint64_t s = old[i].s > m->start ? old[i].s : m->start;
		uint64_t x = old[i].e < m->end ? old[i].e : m->end;

		if (s >= x)
			continue;
		if (arm && cur < s) {
			ret = watch_span(pr, cur, s);
			if (ret < 0)
				return ret;
			untracked |= ret;
		}
		cur = x;
		if (!tracked) {
			/* no longer writable: what was written before goes
			 * out once more, then the caller unwatches it */
			ret = collect_span(e, m, s, x, flags);
			if (ret < 0)
				return ret;
			continue;
		}
		ret = do_span(e, m, s, x, full, flags);
		if (ret < 0)
			return ret;
		full |= ret;
	}
	if (!full)
		return 0;
	if (arm && cur < m->end) {
		ret = watch_span(pr, cur, m->end);
		if (ret < 0)
			return ret;
		untracked |= ret;
	}
	return emit_full(e, m, untracked);
}

/* unwatch what of @old is not in pr->w (both sorted and disjoint) */
static void unwatch_dropped(struct pp_proc *pr, const struct pp_span *old,
			    size_t nold)
{
	size_t k = 0;

	for (size_t i = 0; i < nold; i++) {
		uint64_t cur = old[i].s;

		while (k < pr->nw && pr->w[k].e <= cur)
			k++;
		for (size_t j = k; j < pr->nw && pr->w[j].s < old[i].e;
		     j++) {
			if (pr->w[j].s > cur)
				pmtrack_unwatch(pr->t, (void *)(uintptr_t)cur,
						pr->w[j].s - cur);
			if (pr->w[j].e > cur)
				cur = pr->w[j].e;
		}
		if (cur < old[i].e)
			pmtrack_unwatch(pr->t, (void *)(uintptr_t)cur,
					old[i].e - cur);
	}
}

/* collect one process (its tracker bound to its current address space) */
static int collect_proc(struct pp_emit *e, unsigned int flags)
{
	struct pp_proc *pr = e->pr;
	const struct pmtrack_mapping *maps;
	struct pp_span *old = pr->w;
	size_t nmaps, nold = pr->nw, j = 0;
	int ret;

	ret = pmtrack_pstate_maps(pr->ps, &maps, &nmaps);
	if (ret)
		return ret;
	pr->w = NULL;
	pr->nw = pr->capw = 0;
	for (size_t i = 0; i < nmaps && !ret; i++) {
		size_t k;

		while (j < nold && old[j].e <= maps[i].start)
			j++;
		k = j;
		while (k < nold && old[k].s < maps[i].end)
			k++;
		ret = do_map(e, &maps[i], old + j, k - j, flags);
		/* a span reaching past this mapping is looked at again */
		if (k > j && old[k - 1].e > maps[i].end)
			k--;
		j = k;
	}
	if (!ret) {
		unwatch_dropped(pr, old, nold);
		if (e->p->cn)
			cn_keep_maps(pr, maps, nmaps);
	} else
		pr->stale = true; /* the set is not what the tracker has */
	free(old);
	return ret;
}

/* the process's address space went (exec, exit): which one? */
/*
 * A userfaultfd for frozen process @pid, injected through the freeze's
 * ptrace stops (a second PTRACE_SEIZE would be refused); -1 when not
 * frozen by this thread's stops or when that fails (pp_rebind() then
 * injects, or says why it cannot).
 */
static int frozen_uffd(struct pmtrack_proc *p, pid_t pid)
{
	bool user_only;
	int fd;

	if (!p->frozen || !pp_injects(p))
		return -1;
	for (size_t i = 0; i < p->nstops; i++) {
		if (p->stops[i].pid != pid)
			continue;
		fd = pmt_stopped_uffd(&p->stops[i], &user_only);
		if (fd >= 0)
			atomic_fetch_add(&p->st.injections, 1);
		return fd >= 0 ? fd : -1;
	}
	return -1;
}

static int pp_lost(struct pmtrack_proc *p, struct pp_proc *pr)
{
	int ret;

	/* with a monitor, execs are followed as they happen */
	if (p->mon || !pp_alive(pr->pid))
		return -ESRCH;
	/* exec'd: track its new program, every mapping in full.  Frozen,
	 * the freeze's ptrace stops serve for the injection.  In the
	 * middle of an execve() its threads vanish under the injection
	 * (-ESRCH while it lives): try again once the call is through. */
	ret = pp_rebind(p, pr, frozen_uffd(p, pr->pid));
	for (int k = 0; k < 200 && ret == -ESRCH && pp_alive(pr->pid); k++) {
		struct timespec ts = { 0, 5000000 };

		nanosleep(&ts, NULL);
		ret = pp_rebind(p, pr, -1);
	}
	if (ret)
		return ret;
	atomic_fetch_add(&p->st.execs, 1);
	pr->next_flags |= PMTRACK_PROC_NEW | PMTRACK_PROC_EXEC;
	return 0;
}

int pp_collect_one(struct pmtrack_proc *p, struct pp_proc *pr,
		   unsigned int flags, pmtrack_proc_fn fn, void *arg)
{
	struct pp_emit *e = malloc(sizeof(*e));
	int ret;

	if (!e)
		return -ENOMEM;
	*e = (struct pp_emit){ .p = p, .pr = pr, .fn = fn, .arg = arg };
	ret = 0;
	if (pr->stale) {
		/* a collect failed half-way: start again, every mapping in
		 * full, nothing lost */
		ret = pp_rebind(p, pr, -1);
		pr->stale = ret != 0;
	}
	if (!ret && !pr->t && pr->bind_err && pp_alive(pr->pid))
		ret = p->mon ? pr->bind_err : pp_rebind(p, pr, -1);
	if (!ret)
		ret = pr->t ? collect_proc(e, flags) : -ESRCH;
	/* lost again: it exec'd once more right after the re-injection,
	 * or the new tracker's pagemap was opened on the memory an exec
	 * was dropping (pp_lost() says -ESRCH once it is really gone) */
	for (int k = 0; k < 100 && ret == -ESRCH; k++) {
		ret = pp_lost(p, pr);
		if (ret)
			break; /* gone, or followed by the monitor */
		ret = collect_proc(e, flags);
	}
	if (!ret) {
		pr->next_flags = 0;
		pr->full_next = false;
	}
	free(e);
	return ret;
}

/* ---- the API ---------------------------------------------------------------- */

/*
 * What PMTRACK_PROC_EVENTS_AUTO picks where both work: the connector,
 * which costs a fork-heavy tree far less than ptrace stops
 * (docs/process-events.md, bench/bench_procevents.c).
 */
#define PP_EVENTS_AUTO PMTRACK_PROC_EVENTS_CONNECTOR

static int pp_children(struct pmtrack_proc *p, enum pmtrack_proc_events ev)
{
	enum pmtrack_proc_events want =
		ev == PMTRACK_PROC_EVENTS_AUTO ? PP_EVENTS_AUTO : ev;
	int ret;

	if (want == PMTRACK_PROC_EVENTS_PTRACE)
		return pm_start(p);
	ret = cn_start(p);
	/* not usable here (not root, no uffd fork events): ptrace */
	if ((ret == -EPERM || ret == -EOPNOTSUPP) &&
	    ev == PMTRACK_PROC_EVENTS_AUTO)
		ret = pm_start(p);
	return ret;
}

PMTRACK_API int pmtrack_proc_new(int pid, const struct pmtrack_proc_opts *opts,
				 struct pmtrack_proc **out)
{
	enum pmtrack_proc_events ev;
	enum pmtrack_rearm rearm;
	struct pmtrack_proc *p;
	enum pmtrack_backend b;
	unsigned int flags;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!PMT_OPTS_VALID(opts, pmtrack_proc_opts) || pid <= 0 ||
	    pid == getpid())
		return -EINVAL;
	flags = PMT_OPTS_GET(opts, flags, 0u);
	b = PMT_OPTS_GET(opts, backend, PMTRACK_BACKEND_AUTO);
	ev = PMT_OPTS_GET(opts, events, PMTRACK_PROC_EVENTS_AUTO);
	rearm = PMT_OPTS_GET(opts, rearm, PMTRACK_REARM_AUTO);
	if ((flags & ~PMTRACK_PROC_CHILDREN) ||
	    (unsigned int)ev > PMTRACK_PROC_EVENTS_CONNECTOR ||
	    (unsigned int)rearm > PMTRACK_REARM_RANGE)
		return -EINVAL;
	if (b != PMTRACK_BACKEND_AUTO && b != PMTRACK_BACKEND_PAGEMAP_SCAN &&
	    b != PMTRACK_BACKEND_SOFT_DIRTY)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->flags = flags;
	p->backend = b;
	p->rearm = rearm;
	p->root = pid;
	p->page_size = (size_t)sysconf(_SC_PAGESIZE);
	p->creator = getpid();
	if (!pp_alive(pid))
		ret = -ESRCH;
	else if (flags & PMTRACK_PROC_CHILDREN)
		ret = pp_children(p, ev);
	else
		ret = pp_add(p, pid, -1, 0, NULL);
	if (ret) {
		pmtrack_proc_free(p);
		return ret;
	}
	*out = p;
	return 0;
}

PMTRACK_API void pmtrack_proc_free(struct pmtrack_proc *p)
{
	if (!p)
		return;
	if (p->mon) {
		pm_stop(p);
	} else {
		if (p->frozen)
			pmtrack_proc_thaw(p);
		if (p->cn)
			cn_stop(p);
	}
	for (size_t i = 0; i < p->nprocs; i++)
		pp_free(p->procs[i]);
	free(p->procs);
	pp_stash_free(p->exited);
	free(p);
}

PMTRACK_API enum pmtrack_backend
pmtrack_proc_backend(const struct pmtrack_proc *p)
{
	enum pmtrack_backend b = PMTRACK_BACKEND_AUTO;

	if (!p)
		return b;
	/* a monitor's thread may be changing the table */
	pm_lock((struct pmtrack_proc *)p);
	for (size_t i = 0; i < p->nprocs; i++) {
		if (p->procs[i]->t) {
			b = pmtrack_backend(p->procs[i]->t);
			break;
		}
	}
	pm_unlock((struct pmtrack_proc *)p);
	return b;
}

static int collect_all(struct pmtrack_proc *p, unsigned int flags,
		       pmtrack_proc_fn fn, void *arg)
{
	int ret = pp_stash_deliver(p, fn, arg);

	for (size_t i = 0; !ret && i < p->nprocs;) {
		struct pp_proc *pr = p->procs[i];

		ret = pp_collect_one(p, pr, flags, fn, arg);
		if (ret == -ESRCH && p->mon) {
			/* exiting: the monitor hears of it and scans it */
			ret = 0;
		} else if (ret == -ESRCH && p->cn) {
			/* gone before the connector said so: its shared
			 * mappings in full, like at its exit event */
			cn_gone(p, pr);
			ret = 0;
			continue;
		} else if (ret == -ESRCH) {
			/* it exited: nothing to report of it any more */
			atomic_fetch_add(&p->st.exits, 1);
			pp_remove(p, pr);
			ret = 0;
			continue;
		}
		i++;
	}
	/* processes found gone during this collect */
	if (!ret && p->exited)
		ret = pp_stash_deliver(p, fn, arg);
	if (!ret && !p->nprocs)
		ret = -ESRCH;
	return ret;
}

/* do the trackers lose writes that race with a reset (soft-dirty)? */
static bool racy_reset(struct pmtrack_proc *p)
{
	bool racy = false;

	pm_lock(p);
	for (size_t i = 0; i < p->nprocs && !racy; i++)
		racy = p->procs[i]->t &&
		       !(pmtrack_caps(p->procs[i]->t) &
			 PMTRACK_CAP_ATOMIC_RESET);
	pm_unlock(p);
	return racy;
}

static int collect_any(struct pmtrack_proc *p, unsigned int flags,
		       pmtrack_proc_fn fn, void *arg)
{
	int ret;

	if (p->mon)
		return pm_collect(p, flags, fn, arg);
	if (p->cn)
		return cn_collect(p, flags, fn, arg);
	ret = collect_all(p, flags, fn, arg);
	if (!ret)
		atomic_fetch_add(&p->st.collects, 1);
	return ret;
}

PMTRACK_API int pmtrack_proc_collect(struct pmtrack_proc *p, unsigned int flags,
				     pmtrack_proc_fn fn, void *arg)
{
	bool stop;
	int ret;

	if (!p || !fn || (flags & ~PMTRACK_COLLECT_RESET))
		return -EINVAL;
	if (getpid() != p->creator)
		return -ECHILD;
	/* where a reset can lose a racing write, the processes are stopped
	 * around it, as CRIU's pre-dump freezes the tree around clear_refs */
	stop = (flags & PMTRACK_COLLECT_RESET) && !p->frozen && racy_reset(p);
	if (stop) {
		ret = pmtrack_proc_freeze(p);
		if (ret)
			return ret;
	}
	ret = collect_any(p, flags, fn, arg);
	if (stop && p->frozen)
		pmtrack_proc_thaw(p);
	return ret;
}

int pp_collect_locked(struct pmtrack_proc *p, unsigned int flags,
		      pmtrack_proc_fn fn, void *arg)
{
	int ret = collect_all(p, flags, fn, arg);

	if (!ret)
		atomic_fetch_add(&p->st.collects, 1);
	return ret;
}

/* freeze without a monitor: the calling thread stops every thread */
int pp_freeze_here(struct pmtrack_proc *p)
{
	int ret = 0;

	p->stops = calloc(p->nprocs ? p->nprocs : 1, sizeof(*p->stops));
	if (!p->stops)
		return -ENOMEM;
	p->nstops = 0;
	for (size_t i = 0; i < p->nprocs; i++) {
		ret = pmt_stop_begin(&p->stops[p->nstops], p->procs[i]->pid);
		if (ret == -ESRCH) {
			ret = 0;
			continue;
		}
		if (ret)
			break;
		p->nstops++;
	}
	if (!ret && !p->nstops)
		ret = -ESRCH;
	if (ret) {
		pp_thaw_here(p);
		return ret;
	}
	p->frozen = true;
	return 0;
}

void pp_thaw_here(struct pmtrack_proc *p)
{
	for (size_t i = 0; i < p->nstops; i++)
		pmt_stop_end(&p->stops[i]);
	free(p->stops);
	p->stops = NULL;
	p->nstops = 0;
	p->frozen = false;
}

PMTRACK_API int pmtrack_proc_freeze(struct pmtrack_proc *p)
{
	if (!p)
		return -EINVAL;
	if (getpid() != p->creator)
		return -ECHILD;
	if (p->frozen)
		return -EALREADY;
	if (p->mon)
		return pm_freeze(p, true);
	return p->cn ? cn_freeze(p) : pp_freeze_here(p);
}

PMTRACK_API int pmtrack_proc_thaw(struct pmtrack_proc *p)
{
	if (!p)
		return -EINVAL;
	if (getpid() != p->creator)
		return -ECHILD;
	if (!p->frozen)
		return -EALREADY;
	if (p->mon)
		return pm_freeze(p, false);
	pp_thaw_here(p);
	return 0;
}

PMTRACK_API int pmtrack_proc_pids(const struct pmtrack_proc *p, int *pids,
				  size_t *n)
{
	size_t cap;

	if (!p || !n || (*n && !pids))
		return -EINVAL;
	pm_lock((struct pmtrack_proc *)p);
	cap = *n;
	*n = p->nprocs;
	for (size_t i = 0; i < p->nprocs && i < cap; i++)
		pids[i] = p->procs[i]->pid;
	pm_unlock((struct pmtrack_proc *)p);
	return *n > cap ? -ENOSPC : 0;
}

PMTRACK_API int pmtrack_proc_get_stats(const struct pmtrack_proc *p,
				       struct pmtrack_proc_stats *st)
{
	struct pmtrack_proc_stats s = { 0 };

	if (!p)
		return -EINVAL;
	s.collects = atomic_load(&p->st.collects);
	s.processes = atomic_load(&p->st.processes);
	s.forks = atomic_load(&p->st.forks);
	s.execs = atomic_load(&p->st.execs);
	s.exits = atomic_load(&p->st.exits);
	s.exit_scans = atomic_load(&p->st.exit_scans);
	s.injections = atomic_load(&p->st.injections);
	s.inject_stop_ns = atomic_load(&p->st.inject_stop_ns);
	s.inject_stop_max_ns = atomic_load(&p->st.inject_stop_max_ns);
	s.maps_new = atomic_load(&p->st.maps_new);
	s.pages_reported = atomic_load(&p->st.pages_reported);
	s.maps_sparse = atomic_load(&p->st.maps_sparse);
	pm_lock((struct pmtrack_proc *)p);
	s.processes = p->nprocs;
	pm_unlock((struct pmtrack_proc *)p);
	return pmt_stats_out(st, &s, sizeof(s));
}

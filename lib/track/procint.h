/* SPDX-License-Identifier: MIT */
/*
 * Inside the whole-process tracker (process.c), its ptrace monitor
 * (procmon.c) and its proc-connector monitor (proccn.c).
 */
#ifndef PMT_PROCINT_H
#define PMT_PROCINT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <pmtrack/process.h>

#include "base.h"
#include "inject.h"
#include "track.h"

#define PP_RUNS 256 /* runs per report call */
/* a mapping this large (bytes) of which fewer than 1 / PP_SPARSE_RATIO
 * of the pages exist is not armed (process.c, too_sparse()) */
#define PP_SPARSE_MIN (1ull << 30)
#define PP_SPARSE_RATIO 16

struct pp_span {
	uint64_t s, e;
};

/* reports kept for a later collect (a process scanned at its exit) */
struct pp_stash;
/* proccn.c: a process's shared writable mappings, as last known */
struct pp_shm;

/* one tracked process */
struct pp_proc {
	pid_t pid;
	struct pmtrack *t;	 /* bound to its current address space */
	struct pmtrack_pstate *ps; /* its mappings */
	struct pp_span *w;	 /* what t watches, sorted, disjoint */
	size_t nw, capw;
	unsigned int next_flags; /* PMTRACK_PROC_NEW / EXEC for the next report */
	bool stale;		 /* w may differ from t's: rebind first */
	bool full_next;		 /* report every mapping in full next time */
	int bind_err;		 /* why t is NULL while the process lives */
	struct pp_stash *stash;
	/* procmon.c */
	bool traced;	 /* the monitor is its (leader's) tracer */
	bool stopped;	 /* in a ptrace stop the monitor holds */
	int stop_sig;	 /* signal to give back when it goes on */
	bool vfork_child; /* shares its parent's memory until exec */
	/* proccn.c */
	struct pp_shm *shm; /* reported in full if it exits */
};

struct pp_stats {
	atomic_uint_fast64_t collects, processes, forks, execs, exits,
		exit_scans, injections, inject_stop_ns, inject_stop_max_ns,
		maps_new, pages_reported, maps_sparse;
};

struct pmtrack_proc {
	unsigned int flags;
	enum pmtrack_backend backend;
	enum pmtrack_rearm rearm; /* for every tracker */
	pid_t root;
	pid_t creator;
	size_t page_size;
	struct pp_proc **procs; /* ascending pids */
	size_t nprocs, cap;
	struct pp_stash *exited; /* reports of processes that exited */
	bool frozen;
	struct pmt_stopped *stops; /* without a monitor: the frozen ones */
	size_t nstops;
	struct pp_stats st;
	struct pm_monitor *mon; /* PMTRACK_PROC_CHILDREN with ptrace */
	struct cn_monitor *cn;	/* PMTRACK_PROC_CHILDREN with the connector */
	pthread_mutex_t *lock;	/* the monitor's, held while it handles */
	uint64_t uffd_features; /* asked of every tracker's UFFDIO_API */
};

/* process.c */
PMT_HIDDEN struct pp_proc *pp_find(struct pmtrack_proc *p, pid_t pid);
PMT_HIDDEN int pp_add(struct pmtrack_proc *p, pid_t pid, int uffd,
		      unsigned int flags, struct pp_proc **out);
/* put @pr, whose tracker is set up, in the table */
PMT_HIDDEN int pp_insert(struct pmtrack_proc *p, struct pp_proc *pr);
PMT_HIDDEN int pp_rebind(struct pmtrack_proc *p, struct pp_proc *pr, int uffd);
PMT_HIDDEN void pp_free(struct pp_proc *pr);
PMT_HIDDEN void pp_remove(struct pmtrack_proc *p, struct pp_proc *pr);
PMT_HIDDEN bool pp_alive(pid_t pid);
/* will the trackers of @p use an injected userfaultfd (pagemap-scan)? */
PMT_HIDDEN bool pp_injects(const struct pmtrack_proc *p);
PMT_HIDDEN int pp_collect_one(struct pmtrack_proc *p, struct pp_proc *pr,
			       unsigned int flags, pmtrack_proc_fn fn,
			       void *arg);
/* a report callback that drops everything: arming a process whose pages
 * start clean (a child that has not run yet) */
PMT_HIDDEN int pp_discard(void *arg, const struct pmtrack_proc_report *r);
PMT_HIDDEN int pp_collect_locked(struct pmtrack_proc *p, unsigned int flags,
				 pmtrack_proc_fn fn, void *arg);
PMT_HIDDEN int pp_freeze_here(struct pmtrack_proc *p);
PMT_HIDDEN void pp_thaw_here(struct pmtrack_proc *p);

/* procstash.c: reports kept for later */
PMT_HIDDEN int pp_stash_add(struct pp_stash **st,
			    const struct pmtrack_proc_report *r);
PMT_HIDDEN int pp_stash_deliver(struct pmtrack_proc *p, pmtrack_proc_fn fn,
				void *arg);
PMT_HIDDEN void pp_stash_free(struct pp_stash *st);

/* proccn.c: PMTRACK_PROC_CHILDREN with the proc connector */
PMT_HIDDEN int cn_start(struct pmtrack_proc *p);
PMT_HIDDEN void cn_stop(struct pmtrack_proc *p);
PMT_HIDDEN int cn_collect(struct pmtrack_proc *p, unsigned int flags,
			  pmtrack_proc_fn fn, void *arg);
/* @pr's process is gone: keep its shared mappings' reports, drop it */
PMT_HIDDEN void cn_gone(struct pmtrack_proc *p, struct pp_proc *pr);
/* a collect read @pr's mappings: note its shared writable ones */
PMT_HIDDEN void cn_keep_maps(struct pp_proc *pr,
			     const struct pmtrack_mapping *maps, size_t n);
PMT_HIDDEN void pp_shm_free(struct pp_shm *s);
/* pp_freeze_here() of a tree the connector thread may be growing */
PMT_HIDDEN int cn_freeze(struct pmtrack_proc *p);

/* procmon.c: PMTRACK_PROC_CHILDREN with ptrace */
PMT_HIDDEN int pm_start(struct pmtrack_proc *p);
PMT_HIDDEN void pm_stop(struct pmtrack_proc *p);
PMT_HIDDEN int pm_collect(struct pmtrack_proc *p, unsigned int flags,
			  pmtrack_proc_fn fn, void *arg);
PMT_HIDDEN int pm_freeze(struct pmtrack_proc *p, bool freeze);
PMT_HIDDEN void pm_lock(struct pmtrack_proc *p);
PMT_HIDDEN void pm_unlock(struct pmtrack_proc *p);

#endif /* PMT_PROCINT_H */

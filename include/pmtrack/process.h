/* SPDX-License-Identifier: MIT */
/*
 * libpmtrack whole-process tracking: every writable mapping of another
 * process, as it maps, grows, moves and unmaps memory, execs and exits,
 * and optionally its children, from their first instruction.
 *
 * One tracker (<pmtrack/pmtrack.h>) per process does the work: with
 * pagemap-scan (the default where it works) the process's own userfaultfd
 * is injected and held by this process only (see pmtrack_new(), "Another
 * process"), with soft-dirty (kernels without PAGEMAP_SCAN) nothing is
 * injected.  A pmtrack_proc keeps each tracker's watched ranges equal to
 * the process's writable mappings at each collect and says, per mapping,
 * which pages were written since the previous collect.
 *
 * The guarantee, per process tracked: a page written through one of its
 * mappings after a RESET collect reported it (or after the mapping was
 * first seen) is reported by a later collect, in that mapping, or the
 * whole mapping is reported with PMTRACK_PROC_FULL.  Mappings that appear
 * between two collects, grow, move (mremap) or lost their registration
 * some other way are reported in full, as their writes could not be seen;
 * a mapping that vanished is not reported (its memory is gone).  What no
 * tracker sees (<pmtrack/pmtrack.h>, pmtrack_watch(), "What a tracker
 * sees") still holds: a write by a process that is not tracked, or by
 * write(2) to a file, into memory a tracked process maps is not reported;
 * with PMTRACK_PROC_CHILDREN the children are tracked, so their writes
 * into memory they share with their parent are reported in their own
 * reports (the caller folds them, e.g. by the mapping's object: device,
 * inode and offset).
 *
 * Thread safety: a pmtrack_proc is used by one thread at a time.  Without
 * PMTRACK_PROC_CHILDREN every ptrace request is made from the calling
 * thread: pmtrack_proc_freeze() and pmtrack_proc_thaw() must be called
 * from the same thread.  With it and PMTRACK_PROC_EVENTS_PTRACE a thread
 * of the library is the tracer of every tracked process.  ptrace stops
 * are reported to every thread of the tracer's process, so while such a
 * handle exists no other thread may wait for "any child" (wait(),
 * waitpid(-1, ...), waitid(P_ALL, ...)) nor for a tracked process by its
 * pid or pidfd (one of your children that is tracked, typically): that
 * would take the tracer's events and leave the process stopped.  Free
 * the handle first.  The same holds, for their duration, around the
 * short ptrace stops every mode makes (pmtrack_proc_new(), a freeze, an
 * injection after an exec).  With PMTRACK_PROC_EVENTS_CONNECTOR freeze
 * and thaw are the caller's, as without children.
 */
#ifndef PMTRACK_PROCESS_H
#define PMTRACK_PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pmtrack_proc; /* opaque */

/* pmtrack_proc_opts.flags */
/*
 * Track the children too: every process the tracked ones fork (fork(),
 * clone() with a new address space) is tracked from its first
 * instruction, and a process that exits is scanned at its exit, so that
 * what it wrote (into shared memory, typically) is reported by the next
 * collect (PMTRACK_PROC_EXITED).  vfork() children and clone(CLONE_VM)
 * share their parent's memory, whose tracker sees their writes, until
 * they exec (then they are tracked as new processes) or exit.  Uses
 * ptrace events (PTRACE_O_TRACEFORK, TRACEVFORK, TRACEEXEC, TRACEEXIT):
 * each fork, exec and exit of a tracked process stops it briefly; or the
 * kernel's process events (pmtrack_proc_opts.events below).
 */
#define PMTRACK_PROC_CHILDREN (1u << 0)

/*
 * How PMTRACK_PROC_CHILDREN follows the tree (pmtrack_proc_opts.events;
 * ignored without it).  docs/process-events.md has the measured costs.
 */
enum pmtrack_proc_events {
	/* the mode measured cheaper for a fork-heavy tree where it is
	 * usable, else the other: CONNECTOR where it can be had (root, a
	 * kernel with pagemap-scan), else PTRACE */
	PMTRACK_PROC_EVENTS_AUTO = 0,
	/*
	 * A library thread is the ptrace tracer of every tracked thread and
	 * stops each process at its fork, exec and exit: a child is tracked
	 * exactly from its first instruction, and a process is scanned at
	 * its exit stop, so what it wrote is reported exactly, private
	 * mappings included.  Works with both backends.  The new child's
	 * userfaultfd is injected by that thread, the child's tracer: a
	 * tracker killed (SIGKILL) in the tens of microseconds a child's
	 * registers are the injection's leaves that child to crash (the
	 * processes tracked before it, and the other children, run on).
	 * pmtrack_new() and the other modes inject from a process forked
	 * for it, which finishes the injection if the tracker dies (see
	 * pmtrack_new() for what is not covered yet).
	 */
	PMTRACK_PROC_EVENTS_PTRACE = 1,
	/*
	 * No ptrace stop at fork or exit: the kernel's proc connector
	 * (netlink, root only) says which process forked, exec'd or exited,
	 * and each tracked process's userfaultfd is opened with
	 * UFFD_FEATURE_EVENT_FORK (CAP_SYS_PTRACE), so the kernel hands a
	 * child its parent's registrations and write-protect state and this
	 * library the child's userfaultfd at the fork.  A library thread
	 * reads those fork events at once (the forking thread waits in
	 * fork() until it has; and while a collect runs, which holds it off
	 * for that long).  Pagemap-scan only.  What it cannot do:
	 * - an exec is still followed by injecting a userfaultfd, a short
	 *   ptrace stop (the new program is reported in full anyway);
	 * - a child's first report also holds the pages its parent had
	 *   written and not yet collected at the fork (the child inherits
	 *   that state; writes of its own are exact from its first
	 *   instruction);
	 * - a process that exits is not scanned: its memory is gone by the
	 *   time the event arrives.  Every shared writable mapping it had
	 *   (as read at its last collect, or its parent's at the fork) is
	 *   reported in full, PMTRACK_PROC_FULL | PMTRACK_PROC_EXITED; its
	 *   private memory is not reported (it is gone).  A shared mapping
	 *   it made after its last collect (or after its fork) is missed;
	 * - a child whose fork event cannot be matched with its pid (events
	 *   lost to an overflowing netlink socket, clone(CLONE_PARENT)) is
	 *   not listed by pmtrack_proc_pids() nor collected; when it exits,
	 *   its shared writable mappings at its fork are reported in full
	 *   under the pid of the tracked process it was forked from.
	 * Fails with -EPERM where the connector cannot be bound or fork
	 * events may not be asked for (not root), -EOPNOTSUPP where
	 * userfaultfd fork events are unavailable (the soft-dirty backend,
	 * no pagemap-scan).
	 */
	PMTRACK_PROC_EVENTS_CONNECTOR = 2,
};

struct pmtrack_proc_opts {
	size_t sz; /* sizeof(struct pmtrack_proc_opts) */
	unsigned int flags; /* PMTRACK_PROC_* */
	/* PMTRACK_BACKEND_AUTO: pagemap-scan where the library can inject
	 * into the process, else soft-dirty; or one of those two */
	enum pmtrack_backend backend;
	/* with PMTRACK_PROC_CHILDREN: how the tree is followed */
	enum pmtrack_proc_events events;
	/* how RESET collects re-protect on pagemap-scan (pmtrack_opts.rearm,
	 * <pmtrack/pmtrack.h>): PMTRACK_REARM_WRITTEN for a process whose
	 * memory a secondary MMU maps (a VMM's guest RAM: its guest keeps
	 * KVM's mappings of clean pages); AUTO is RANGE.  No effect on
	 * soft-dirty. */
	enum pmtrack_rearm rearm;
	size_t : 0;
};
#define pmtrack_proc_opts__last_field rearm

/**
 * pmtrack_proc_new() - track every writable mapping of process @pid.
 * @pid: a process (its thread-group id), not the caller
 * @opts: NULL for defaults
 * @out: the handle, freed with pmtrack_proc_free()
 *
 * The first collect reports every mapping in full.  With
 * PMTRACK_PROC_CHILDREN the children @pid already has are not tracked:
 * only those it forks from now on (and theirs).
 *
 * Return: 0; -EINVAL (bad @pid or options; @pid is the caller); -ESRCH if
 * it does not exist (or is a zombie); -EPERM or -EACCES without ptrace
 * access (or, PMTRACK_PROC_EVENTS_CONNECTOR, without the privileges it
 * needs); -EOPNOTSUPP if no backend can track another process here (or
 * the events asked for are unavailable); -ENOMEM.
 */
PMTRACK_API int pmtrack_proc_new(int pid, const struct pmtrack_proc_opts *opts,
				 struct pmtrack_proc **out);

/**
 * pmtrack_proc_free() - stop tracking; a frozen tree is thawed first.
 * Every userfaultfd is closed, so the processes run on as if they had
 * never been tracked.  NULL is a no-op.
 */
PMTRACK_API void pmtrack_proc_free(struct pmtrack_proc *p);

/**
 * pmtrack_proc_backend() - the backend the trackers use.
 * @p: the handle
 *
 * Return: PMTRACK_BACKEND_PAGEMAP_SCAN or PMTRACK_BACKEND_SOFT_DIRTY.
 */
PMTRACK_API enum pmtrack_backend
pmtrack_proc_backend(const struct pmtrack_proc *p);

/* pmtrack_proc_report.flags */
/*
 * Every page of the mapping is reported: it is new to the tracker since
 * the last collect (mapped, grown, moved, re-registered, after an exec)
 * or cannot be tracked, so writes to it could not be seen.  Pages that
 * hold nothing are reported too; <pmtrack/pagestate.h> tells which exist.
 * Not tracked, and so reported in full by every collect: a mapping the
 * backend refuses (1 GiB hugetlb pages, PFN mappings), and a mapping of
 * 1 GiB or more of which fewer than 1/16 of the pages exist (present,
 * swapped or unsure), such as a MAP_NORESERVE reservation or a
 * sanitizer's shadow: arming gives every page a page-table entry, 2 MiB
 * of the target's memory per GiB, where resending its few existing pages
 * costs less.  It is armed once it is denser.
 */
#define PMTRACK_PROC_FULL (1u << 0)
/* With PMTRACK_PROC_FULL: the mapping is not tracked (refused by the
 * backend, or too sparse to arm, see above): every collect reports it in
 * full, not just this one. */
#define PMTRACK_PROC_UNTRACKED (1u << 4)
/* The process exited after the last collect; the report was taken at
 * its exit (PMTRACK_PROC_CHILDREN), or it holds what was collected
 * before.  Its mapping descriptions are as they were then. */
#define PMTRACK_PROC_EXITED (1u << 1)
/* The first report of this process (or of its new program after an
 * exec): the caller has not heard of it before. */
#define PMTRACK_PROC_NEW (1u << 2)
/* The process exec'd since the last collect: this is its new program. */
#define PMTRACK_PROC_EXEC (1u << 3)

/* What one collect found written in one mapping of one process. */
struct pmtrack_proc_report {
	int pid; /* the process (its thread-group id) the mapping is of */
	/* PMTRACK_PROC_FULL, _UNTRACKED, _EXITED, _NEW and _EXEC, defined
	   before this struct in <pmtrack/process.h> */
	unsigned int flags;
	/* the mapping as /proc/PID/maps showed it at this collect */
	const struct pmtrack_mapping *map;
	/* the written pages: ascending, disjoint, inside the mapping, states
	 * PMTRACK_PAGE_WRITTEN, map 0.  With PMTRACK_PROC_FULL one run that
	 * spans the mapping. */
	const struct pmtrack_page_run *runs;
	size_t nruns; /* entries in runs, at least 1 */
};

/*
 * Called once or more per mapping with written pages (a mapping's runs
 * may come in several calls, in ascending order); pointers are valid
 * during the call only.  A negative return stops the collect, which
 * returns it; pages reported in earlier calls were reset.
 */
typedef int (*pmtrack_proc_fn)(void *arg, const struct pmtrack_proc_report *r);

/**
 * pmtrack_proc_collect() - report the pages written since the last collect.
 * @flags: PMTRACK_COLLECT_RESET to reset what is reported (the usual way);
 *	without it the next collect reports them again (mappings reported
 *	with PMTRACK_PROC_FULL excepted: they are watched from now on)
 * @fn, @arg: the report callback
 *
 * The mappings are read first (/proc/PID/maps), new writable ones are
 * watched, vanished ones dropped; then every watched mapping is scanned.
 * Reports of processes that exited before the collect come first, then
 * the processes in ascending pid order with their mappings in ascending
 * address order, then those found gone during the collect.  On pagemap-scan the reset is atomic
 * (PMTRACK_CAP_ATOMIC_RESET): a write racing with the collect is in this
 * report or the next, and the processes run on.  On soft-dirty, whose
 * resets lose racing writes, a RESET collect freezes the processes for
 * its duration (as CRIU's pre-dump does around clear_refs), so that
 * nothing is lost there either.
 *
 * Return: 0 (the processes may be running or frozen); -ESRCH if the
 * process (and every child) is gone, after any exit reports; the
 * callback's error; -EPERM/-EACCES if a re-injection after an exec was
 * refused; -ENOMEM.
 */
PMTRACK_API int pmtrack_proc_collect(struct pmtrack_proc *p, unsigned int flags,
				     pmtrack_proc_fn fn, void *arg);

/**
 * pmtrack_proc_freeze() - stop every thread of every tracked process.
 *
 * With ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT): no signal is sent and
 * their parents see no stop; what the processes may notice is the time
 * that passes, and a blocking call that Linux does not restart after a
 * stop (sigtimedwait(), epoll_wait(), ...: signal(7)) failing with EINTR.
 * Threads created while freezing are stopped too.  Until thaw, nothing
 * they map changes but by other processes or by the kernel (I/O in
 * flight, another process's writes into shared memory).
 *
 * Return: 0; -EALREADY if frozen; -ESRCH if every process is gone; -EPERM.
 */
PMTRACK_API int pmtrack_proc_freeze(struct pmtrack_proc *p);

/**
 * pmtrack_proc_thaw() - let the processes pmtrack_proc_freeze() stopped
 * run again.
 * @p: the handle
 *
 * Signals that arrived while frozen are delivered.
 *
 * Return: 0, or -EALREADY if not frozen.
 */
PMTRACK_API int pmtrack_proc_thaw(struct pmtrack_proc *p);

/**
 * pmtrack_proc_pids() - the processes tracked now, ascending.  With
 * PMTRACK_PROC_EVENTS_CONNECTOR a child that has just been forked is
 * listed (and collected) once its proc-connector fork event has arrived
 * and been paired with its userfaultfd fork event, which may be after
 * fork() returned in the parent; its writes are tracked from its first
 * instruction all the same, and a collect after that reports them.
 * @pids: array of *@n entries; @n: in capacity, out the number tracked
 * Return: 0, or -ENOSPC (then *@n is the number needed).
 */
PMTRACK_API int pmtrack_proc_pids(const struct pmtrack_proc *p, int *pids,
				  size_t *n);

struct pmtrack_proc_stats {
	size_t sz; /* set by the caller */
	uint64_t collects;    /* successful pmtrack_proc_collect() calls */
	uint64_t processes;   /* tracked now */
	uint64_t forks;	      /* children that came to be tracked */
	uint64_t execs;	      /* execs followed (re-injections) */
	uint64_t exits;	      /* processes that exited while tracked */
	uint64_t exit_scans;  /* of which scanned at their exit stop */
	uint64_t injections;  /* userfaultfd() calls injected */
	/* total time processes were stopped for injections, nanoseconds */
	uint64_t inject_stop_ns;
	/* the longest of those stops, nanoseconds */
	uint64_t inject_stop_max_ns;
	uint64_t maps_new;	 /* reports with PMTRACK_PROC_FULL */
	uint64_t pages_reported; /* pages in all reports */
	/* times a mapping was left unarmed as too sparse (see
	 * PMTRACK_PROC_FULL) */
	uint64_t maps_sparse;
	size_t : 0;
};
#define pmtrack_proc_stats__last_field maps_sparse

/**
 * pmtrack_proc_get_stats() - counters since pmtrack_proc_new().
 * @p: the handle
 * @st: st->sz must be set (PMTRACK_OPTS() does it)
 *
 * Return: 0, or -EINVAL (NULL, or sz smaller than a size_t).
 */
PMTRACK_API int pmtrack_proc_get_stats(const struct pmtrack_proc *p,
				       struct pmtrack_proc_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* PMTRACK_PROCESS_H */

// SPDX-License-Identifier: MIT
/*
 * PMTRACK_PROC_CHILDREN: a thread of the library is the ptrace tracer of
 * every thread of every tracked process (PTRACE_SEIZE with TRACEFORK,
 * TRACEVFORK, TRACECLONE, TRACEEXEC and TRACEEXIT).  At a fork it injects
 * the child's userfaultfd and watches the child's mappings before the
 * child's first instruction; at an exec it does the same for the new
 * program; at a process's exit it scans it while its memory still
 * exists and keeps the reports for the next collect.
 *
 * ptrace requests must come from the tracer thread, which spends its
 * life in waitpid(): requests of the API (freeze, thaw, free) reach it
 * through a sentinel, a child of the tracer thread that exits when a byte
 * arrives on a pipe, which wakes waitpid().  waitpid() is called with
 * __WNOTHREAD, so it never reaps the children of other threads of the
 * program.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procint.h"

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define PM_OPTIONS                                                         \
	(PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |  \
	 PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT)

enum pm_cmd { PM_NONE, PM_FREEZE, PM_THAW, PM_STOP };

/* one traced thread */
struct pm_task {
	pid_t tid, tgid;
	bool stopped; /* held in a ptrace stop */
	bool group;   /* that stop is a group stop (SIGSTOP and the like) */
	bool in_call; /* that stop is inside a system call (an event of
			 fork, exec, exit): nothing can be injected there */
	int sig;      /* signal to deliver when it goes on */
};

struct pm_monitor {
	pthread_t th;
	pthread_mutex_t mu; /* the process table; held while handling */
	pthread_cond_t cv;
	enum pm_cmd cmd;
	int result;
	bool done, started, running;
	int start_ret;
	int wake[2];
	pid_t sentinel;
	struct pm_task *tasks;
	size_t ntasks, cap;
	bool freezing; /* hold every stop, continue nothing */
	/* tasks whose first stop came before their parent's event */
	pid_t early[64];
	size_t nearly;
};

/* ---- tasks ----------------------------------------------------------------- */

static struct pm_task *task(struct pm_monitor *m, pid_t tid)
{
	for (size_t i = 0; i < m->ntasks; i++)
		if (m->tasks[i].tid == tid)
			return &m->tasks[i];
	return NULL;
}

static struct pm_task *task_add(struct pm_monitor *m, pid_t tid, pid_t tgid)
{
	if (m->ntasks == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;
		struct pm_task *v = realloc(m->tasks, cap * sizeof(*v));

		if (!v)
			return NULL;
		m->tasks = v;
		m->cap = cap;
	}
	m->tasks[m->ntasks] = (struct pm_task){ .tid = tid, .tgid = tgid };
	return &m->tasks[m->ntasks++];
}

static void task_drop(struct pm_monitor *m, pid_t tid)
{
	struct pm_task *t = task(m, tid);

	if (t)
		*t = m->tasks[--m->ntasks];
}

static pid_t tgid_of(pid_t tid)
{
	char path[64], line[128];
	pid_t tgid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Tgid:", 5)) {
			tgid = (pid_t)atoi(line + 5);
			break;
		}
	fclose(f);
	return tgid;
}

/* let @t run on (unless the tree is being frozen) */
static void task_go(struct pm_monitor *m, struct pm_task *t)
{
	if (m->freezing) {
		t->stopped = true;
		return;
	}
	if (t->group)
		ptrace(PTRACE_LISTEN, t->tid, NULL, NULL);
	else
		ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)t->sig);
	t->stopped = false;
	t->group = false;
	t->in_call = false;
	t->sig = 0;
}

/* wait for one event of @tid (or any task with -1); false on error */
static pid_t wait_one(pid_t tid, int *st)
{
	pid_t r;

	do {
		r = waitpid(tid, st, __WALL | __WNOTHREAD);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* ---- processes ------------------------------------------------------------ */

/* inject a userfaultfd into stopped @tid (alone in its process) */
static int pm_uffd(struct pmtrack_proc *p, pid_t tid)
{
	int sig = 0;
	struct pmt_stopped s = { .pid = tid, .tids = &tid, .sigs = &sig,
				 .n = 1, .victim = tid };
	uint64_t t0 = pmt_now_ns(), d;
	bool user_only;
	int fd;

	if (!pp_injects(p))
		return -1; /* no uffd: the tracker does without */
	fd = pmt_stopped_uffd(&s, &user_only);
	d = pmt_now_ns() - t0;
	if (fd >= 0) {
		atomic_fetch_add(&p->st.injections, 1);
		atomic_fetch_add(&p->st.inject_stop_ns, d);
		if (d > atomic_load(&p->st.inject_stop_max_ns))
			atomic_store(&p->st.inject_stop_max_ns, d);
	}
	return fd == -EOPNOTSUPP ? -1 : fd;
}

/*
 * Track process @pid, stopped with one thread: a new child (@clean: its
 * pages start clean, it has not run) or a new program after an exec.
 */
static int pm_track_new(struct pmtrack_proc *p, pid_t pid, bool clean,
			unsigned int flags)
{
	struct pp_proc *pr = pp_find(p, pid);
	int fd = pm_uffd(p, pid), ret;

	if (fd < -1)
		return fd;
	if (pr) {
		ret = pp_rebind(p, pr, fd);
		pr->next_flags |= flags | PMTRACK_PROC_NEW;
	} else {
		ret = pp_add(p, pid, fd, flags, &pr);
	}
	if (ret)
		return ret;
	if (clean) {
		unsigned int keep = pr->next_flags;

		ret = pp_collect_one(p, pr, PMTRACK_COLLECT_RESET, pp_discard,
				     NULL);
		pr->next_flags = keep;
	}
	return ret;
}

/* the process of leader @pid is exiting: scan it while its memory is
 * there, keeping the reports for the next collect */
static int pm_stash(void *arg, const struct pmtrack_proc_report *r)
{
	return pp_stash_add(&((struct pmtrack_proc *)arg)->exited, r);
}

static void pm_exit_scan(struct pmtrack_proc *p, pid_t pid)
{
	struct pp_proc *pr = pp_find(p, pid);

	if (!pr || !pr->t)
		return;
	if (!pp_collect_one(p, pr, PMTRACK_COLLECT_RESET, pm_stash, p))
		atomic_fetch_add(&p->st.exit_scans, 1);
}

static void pm_gone(struct pmtrack_proc *p, pid_t tid)
{
	struct pp_proc *pr = pp_find(p, tid);

	task_drop(p->mon, tid);
	if (pr) {
		atomic_fetch_add(&p->st.exits, 1);
		pp_remove(p, pr);
	}
}

/* ---- events --------------------------------------------------------------- */

static bool early_take(struct pm_monitor *m, pid_t tid)
{
	for (size_t i = 0; i < m->nearly; i++)
		if (m->early[i] == tid) {
			m->early[i] = m->early[--m->nearly];
			return true;
		}
	return false;
}

/* wait for new task @tid's first stop (unless it came already) */
static bool new_task_stopped(struct pm_monitor *m, pid_t tid)
{
	int st;

	if (early_take(m, tid))
		return true;
	for (;;) {
		if (wait_one(tid, &st) < 0)
			return false;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return false;
		if (WIFSTOPPED(st))
			return true;
	}
}

/*
 * @tid is stopped inside a system call (the exec event): let it finish the
 * call and stop again before its next user instruction, where a system
 * call can be injected (inside one, the call's return value would
 * overwrite the injected call's number).  0, or -ESRCH if it died.
 */
static int pm_user_stop(pid_t tid)
{
	int st;

	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) ||
	    ptrace(PTRACE_CONT, tid, NULL, NULL))
		return -ESRCH;
	for (;;) {
		if (wait_one(tid, &st) < 0 || WIFEXITED(st) || WIFSIGNALED(st))
			return -ESRCH;
		if (WIFSTOPPED(st) && (st >> 16) == PTRACE_EVENT_STOP)
			return 0;
		/* a signal first: keep it stopped there and go on */
		if (WIFSTOPPED(st) &&
		    ptrace(PTRACE_CONT, tid, NULL, (void *)(long)WSTOPSIG(st)))
			return -ESRCH;
	}
}

/* do @a and @b share their memory? */
static bool same_vm(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, 1 /* KCMP_VM */, 0, 0) == 0;
}

/* @parent (thread @ptid of process @ptgid) forked, vforked or cloned
 * @child: track it if it is a process with memory of its own */
static void pm_new_task(struct pmtrack_proc *p, pid_t ptid, pid_t ptgid,
			pid_t child, int event)
{
	struct pm_monitor *m = p->mon;
	struct pm_task *c;
	pid_t tgid;

	if (!new_task_stopped(m, child))
		return;
	tgid = tgid_of(child);
	c = task_add(m, child, tgid ? tgid : child);
	if (!c) {
		ptrace(PTRACE_DETACH, child, NULL, NULL);
		return;
	}
	c->stopped = true;
	/* vfork children and clone(CLONE_VM) run in their parent's
	 * memory, which its tracker watches, until they exec */
	if (event != PTRACE_EVENT_VFORK && c->tgid != ptgid &&
	    !same_vm(child, ptid)) {
		if (!pm_track_new(p, child, true, 0))
			atomic_fetch_add(&p->st.forks, 1);
	}
	task_go(m, task(m, child));
}

/* is the stop of ptrace event @ev inside a system call? */
static bool in_call(int ev)
{
	switch (ev) {
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
	case PTRACE_EVENT_CLONE:
	case PTRACE_EVENT_EXEC:
	case PTRACE_EVENT_EXIT:
		return true;
	}
	return false;
}

static void pm_event(struct pmtrack_proc *p, struct pm_task *t, int st)
{
	pid_t tid = t->tid, tgid = t->tgid;
	int ev = st >> 16;
	unsigned long msg = 0;

	t->stopped = true;
	switch (ev) {
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
	case PTRACE_EVENT_CLONE:
		if (!ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg))
			pm_new_task(p, tid, tgid, (pid_t)msg, ev);
		break;
	case PTRACE_EVENT_EXEC:
		/* one thread is left, with the leader's id */
		if (!ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg) &&
		    (pid_t)msg != tid)
			task_drop(p->mon, (pid_t)msg);
		if (!pm_user_stop(tid) &&
		    !pm_track_new(p, tgid, false, PMTRACK_PROC_EXEC))
			atomic_fetch_add(&p->st.execs, 1);
		break;
	case PTRACE_EVENT_EXIT:
		if (tid == tgid)
			pm_exit_scan(p, tid);
		break;
	case PTRACE_EVENT_STOP:
		/* a group stop keeps its meaning; our own interrupts and
		 * new tasks' first stops are just stops */
		if (WSTOPSIG(st) == SIGSTOP || WSTOPSIG(st) == SIGTSTP ||
		    WSTOPSIG(st) == SIGTTIN || WSTOPSIG(st) == SIGTTOU)
			t->group = true;
		break;
	default:
		t->sig = WSTOPSIG(st);
		break;
	}
	/* the table may have moved */
	t = task(p->mon, tid);
	if (t) {
		t->in_call = in_call(ev);
		task_go(p->mon, t);
	}
}

static void pm_handle(struct pmtrack_proc *p, pid_t tid, int st)
{
	struct pm_monitor *m = p->mon;
	struct pm_task *t = task(m, tid);

	if (!t) {
		/* a new task's first stop, before its parent's event */
		if (WIFSTOPPED(st) && m->nearly < 64)
			m->early[m->nearly++] = tid;
		return;
	}
	if (WIFEXITED(st) || WIFSIGNALED(st)) {
		pm_gone(p, tid);
		return;
	}
	if (WIFSTOPPED(st))
		pm_event(p, t, st);
}

/* ---- freezing ---------------------------------------------------------------- */

static bool all_stopped(struct pm_monitor *m)
{
	for (size_t i = 0; i < m->ntasks; i++)
		if (!m->tasks[i].stopped)
			return false;
	return true;
}

static int pm_do_freeze(struct pmtrack_proc *p)
{
	struct pm_monitor *m = p->mon;
	int st;

	m->freezing = true;
	for (size_t i = 0; i < m->ntasks; i++)
		if (!m->tasks[i].stopped)
			ptrace(PTRACE_INTERRUPT, m->tasks[i].tid, NULL, NULL);
	while (!all_stopped(m)) {
		pid_t tid = wait_one(-1, &st);

		if (tid < 0)
			break;
		if (tid == m->sentinel)
			continue; /* cannot happen: no command is pending */
		pm_handle(p, tid, st);
	}
	if (!m->ntasks) {
		m->freezing = false;
		return -ESRCH;
	}
	p->frozen = true;
	return 0;
}

static void pm_do_thaw(struct pmtrack_proc *p)
{
	struct pm_monitor *m = p->mon;

	m->freezing = false;
	for (size_t i = 0; i < m->ntasks; i++)
		if (m->tasks[i].stopped)
			task_go(m, &m->tasks[i]);
	p->frozen = false;
}

static void pm_detach_all(struct pmtrack_proc *p)
{
	struct pm_monitor *m = p->mon;

	if (!p->frozen)
		pm_do_freeze(p);
	for (size_t i = 0; i < m->ntasks; i++) {
		struct pm_task *t = &m->tasks[i];

		ptrace(PTRACE_DETACH, t->tid, NULL,
		       (void *)(long)(t->group ? 0 : t->sig));
	}
	m->ntasks = 0;
	m->freezing = false;
	p->frozen = false;
}

/* ---- the tracer thread ------------------------------------------------------ */

static pid_t sentinel(struct pm_monitor *m)
{
	pid_t pid = fork();

	if (pid == 0) {
		char c;

		/* hold nothing of the tracker's (its userfaultfds above
		 * all), and die with the tracer thread */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (m->wake[0] > 0)
			syscall(SYS_close_range, 0, m->wake[0] - 1, 0);
		syscall(SYS_close_range, m->wake[0] + 1, ~0U, 0);
		while (read(m->wake[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	return pid;
}

/* seize every thread of @pid with the options, and track it */
static int pm_attach_root(struct pmtrack_proc *p, pid_t pid)
{
	struct pm_monitor *m = p->mon;
	bool more = true;
	int ret;

	while (more) {
		char path[64];
		struct dirent *d;
		DIR *dir;

		more = false;
		snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
		dir = opendir(path);
		if (!dir)
			return -ESRCH;
		while ((d = readdir(dir))) {
			pid_t tid = (pid_t)atoi(d->d_name);
			struct pm_task *t;

			if (tid <= 0 || task(m, tid))
				continue;
			if (ptrace(PTRACE_SEIZE, tid, NULL,
				   (void *)(long)PM_OPTIONS)) {
				/* gone, or exiting (EPERM, once a sibling
				 * was seized) */
				if (errno == ESRCH || (errno == EPERM && m->ntasks))
					continue;
				closedir(dir);
				return -errno;
			}
			t = task_add(m, tid, pid);
			if (!t) {
				closedir(dir);
				return -ENOMEM;
			}
			more = true;
		}
		closedir(dir);
	}
	/* every thread stopped (none may fork while the target holds its
	 * copy of the userfaultfd), inject, and let everything run */
	ret = pm_do_freeze(p);
	if (!ret && !task(m, pid))
		ret = -ESRCH;
	/* caught inside fork() (its event stop): finish the call first */
	if (!ret && task(m, pid)->in_call) {
		ret = pm_user_stop(pid);
		if (!ret)
			task(m, pid)->in_call = false;
	}
	if (!ret)
		ret = pm_track_new(p, pid, false, 0);
	pm_do_thaw(p);
	return ret;
}

static void pm_command(struct pmtrack_proc *p)
{
	struct pm_monitor *m = p->mon;

	switch (m->cmd) {
	case PM_FREEZE:
		m->result = p->frozen ? -EALREADY : pm_do_freeze(p);
		break;
	case PM_THAW:
		if (p->frozen)
			pm_do_thaw(p);
		m->result = 0;
		break;
	case PM_STOP:
		pm_detach_all(p);
		m->running = false;
		m->result = 0;
		break;
	case PM_NONE:
		break;
	}
	m->cmd = PM_NONE;
	m->done = true;
	pthread_cond_broadcast(&m->cv);
}

static void *pm_main(void *arg)
{
	struct pmtrack_proc *p = arg;
	struct pm_monitor *m = p->mon;
	int st;

	pthread_mutex_lock(&m->mu);
	m->start_ret = pm_attach_root(p, p->root);
	if (!m->start_ret) {
		m->sentinel = sentinel(m);
		if (m->sentinel < 0)
			m->start_ret = -errno;
	}
	if (m->start_ret)
		pm_detach_all(p);
	m->started = true;
	m->running = !m->start_ret;
	pthread_cond_broadcast(&m->cv);
	while (m->running) {
		pid_t tid;

		pthread_mutex_unlock(&m->mu);
		tid = wait_one(-1, &st);
		pthread_mutex_lock(&m->mu);
		if (tid < 0)
			continue;
		if (tid != m->sentinel) {
			pm_handle(p, tid, st);
			continue;
		}
		pm_command(p);
		if (m->running) {
			m->sentinel = sentinel(m);
			if (m->sentinel < 0) {
				pm_detach_all(p);
				m->running = false;
			}
		}
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* ---- the API's side ------------------------------------------------------------ */

int pm_start(struct pmtrack_proc *p)
{
	struct pm_monitor *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	if (pipe2(m->wake, O_CLOEXEC)) {
		ret = -errno;
		goto fail;
	}
	p->mon = m;
	p->lock = &m->mu;
	ret = -pthread_create(&m->th, NULL, pm_main, p);
	if (ret)
		goto fail;
	pthread_mutex_lock(&m->mu);
	while (!m->started)
		pthread_cond_wait(&m->cv, &m->mu);
	ret = m->start_ret;
	pthread_mutex_unlock(&m->mu);
	if (ret) {
		pthread_join(m->th, NULL);
		goto fail;
	}
	return 0;
fail:
	if (m->wake[0] > 0) {
		close(m->wake[0]);
		close(m->wake[1]);
	}
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	free(m->tasks);
	free(m);
	p->mon = NULL;
	p->lock = NULL;
	return ret;
}

/* run @cmd on the tracer thread and wait for it */
static int pm_run(struct pmtrack_proc *p, enum pm_cmd cmd)
{
	struct pm_monitor *m = p->mon;
	char c = 1;
	int ret;

	pthread_mutex_lock(&m->mu);
	if (!m->running) {
		pthread_mutex_unlock(&m->mu);
		return -ESRCH;
	}
	m->cmd = cmd;
	m->done = false;
	pthread_mutex_unlock(&m->mu);
	while (write(m->wake[1], &c, 1) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&m->mu);
	while (!m->done)
		pthread_cond_wait(&m->cv, &m->mu);
	ret = m->result;
	pthread_mutex_unlock(&m->mu);
	return ret;
}

void pm_stop(struct pmtrack_proc *p)
{
	struct pm_monitor *m = p->mon;

	pm_run(p, PM_STOP);
	pthread_join(m->th, NULL);
	close(m->wake[0]);
	close(m->wake[1]);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	free(m->tasks);
	free(m);
	p->mon = NULL;
	p->lock = NULL;
}

int pm_freeze(struct pmtrack_proc *p, bool freeze)
{
	return pm_run(p, freeze ? PM_FREEZE : PM_THAW);
}

int pm_collect(struct pmtrack_proc *p, unsigned int flags, pmtrack_proc_fn fn,
	       void *arg)
{
	int ret;

	pthread_mutex_lock(&p->mon->mu);
	ret = pp_collect_locked(p, flags, fn, arg);
	pthread_mutex_unlock(&p->mon->mu);
	return ret;
}

/* the table's lock of whichever monitor there is (procmon, proccn) */
void pm_lock(struct pmtrack_proc *p)
{
	if (p->lock)
		pthread_mutex_lock(p->lock);
}

void pm_unlock(struct pmtrack_proc *p)
{
	if (p->lock)
		pthread_mutex_unlock(p->lock);
}

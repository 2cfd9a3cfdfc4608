// SPDX-License-Identifier: MIT
/*
 * Stopping another process and running one system call in it (see
 * inject.h): how a tracker gets a userfaultfd of another process's memory.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "proc.h"
#include "uapi_compat.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

static bool have_tid(const struct pmt_stopped *s, pid_t tid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->tids[i] == tid)
			return true;
	return false;
}

static int add_tid(struct pmt_stopped *s, pid_t tid)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		pid_t *t = realloc(s->tids, cap * sizeof(*t));
		int *g;

		if (!t)
			return -ENOMEM;
		s->tids = t;
		g = realloc(s->sigs, cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		s->sigs = g;
		s->cap = cap;
	}
	s->tids[s->n] = tid;
	s->sigs[s->n] = 0;
	s->n++;
	return 0;
}

/* seize and interrupt one thread: 0, 1 if it is gone, or -errno */
static int seize(struct pmt_stopped *s, pid_t tid)
{
	int ret;

	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL)) {
		/* an exiting thread refuses with EPERM: once one thread of
		 * the process was seized, permission is not what is wrong */
		if (errno == ESRCH || (errno == EPERM && s->n))
			return 1;
		return -errno;
	}
	ret = add_tid(s, tid);
	if (ret) {
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		return ret;
	}
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) && errno != ESRCH)
		return -errno;
	return 0;
}

/* one pass over /proc/PID/task: seize the threads not seized yet; the
 * number seized now, or -errno */
static int seize_pass(struct pmt_stopped *s)
{
	char path[64];
	struct dirent *d;
	int added = 0, ret = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)s->pid);
	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((d = readdir(dir))) {
		pid_t tid = (pid_t)atoi(d->d_name);

		if (tid <= 0 || have_tid(s, tid))
			continue;
		ret = seize(s, tid);
		if (ret < 0)
			break;
		added += ret == 0;
		ret = 0;
	}
	closedir(dir);
	return ret < 0 ? ret : added;
}

/*
 * Has thread @i stopped?  0 once it is in a ptrace stop; 1 if it exited
 * (it is dropped); 2 if not yet; -errno.  A signal that stops it first is
 * kept to be given back at detach.
 */
static int poll_stop(struct pmt_stopped *s, size_t i)
{
	pid_t tid = s->tids[i];
	int st;

	for (;;) {
		pid_t r = waitpid(tid, &st, __WALL | WNOHANG);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == ECHILD ? 1 : -errno;
		if (r == 0)
			return 2;
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			s->tids[i] = 0;
			return 1;
		}
		if (!WIFSTOPPED(st))
			continue;
		if ((st >> 16) == PTRACE_EVENT_STOP)
			return 0;
		/* a signal-delivery stop: hold the signal, the interrupt
		 * still stops it */
		s->sigs[i] = WSTOPSIG(st);
		if (ptrace(PTRACE_CONT, tid, NULL, NULL))
			return errno == ESRCH ? 1 : -errno;
	}
}

/*
 * Wait until every thread stopped or exited, polling them all: a thread
 * in execve() waits for its siblings to be reaped, and those that exit
 * are our tracees, so waiting for one thread alone could wait for ever.
 * A thread that does not stop within PMT_STOP_TIMEOUT_NS (stuck in an
 * uninterruptible sleep) fails it with -ETIMEDOUT.
 */
#define PMT_STOP_TIMEOUT_NS (10ull * 1000000000)

static int wait_all(struct pmt_stopped *s)
{
	bool *done = calloc(s->n ? s->n : 1, sizeof(*done));
	size_t left = s->n;
	uint64_t t0 = pmt_now_ns();
	int ret = 0;

	if (!done)
		return -ENOMEM;
	while (left && !ret) {
		size_t before = left;

		for (size_t i = 0; i < s->n && !ret; i++) {
			if (done[i])
				continue;
			ret = poll_stop(s, i);
			if (ret == 2) {
				ret = 0;
				continue;
			}
			if (ret >= 0) {
				done[i] = true;
				left--;
				ret = 0;
			}
		}
		if (!ret && left == before) {
			struct timespec ts = { 0, 20000 };

			if (pmt_now_ns() - t0 > PMT_STOP_TIMEOUT_NS)
				ret = -ETIMEDOUT;
			nanosleep(&ts, NULL);
		}
	}
	free(done);
	return ret;
}

/* a system-call instruction in the target's vDSO, or 0 */
static uintptr_t find_insn(pid_t pid)
{
	unsigned char buf[16384];
	struct pmt_maps_line ml;
	uintptr_t at = 0;
	char line[512];
	FILE *f;
	int err;

	f = pmt_proc_stream(pid, "maps", &err);
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "[vdso]") || pmt_maps_parse(line, &ml))
			continue;
		size_t len = ml.end - ml.start;
		struct iovec l = { buf, len < sizeof(buf) ? len : sizeof(buf) };
		struct iovec r = { (void *)ml.start, l.iov_len };
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

		for (ssize_t k = 0;
		     n > 0 && k + (ssize_t)pmt_arch_syscall_insn_len <= n;
		     k++) {
			if (!memcmp(buf + k, pmt_arch_syscall_insn,
				    pmt_arch_syscall_insn_len)) {
				at = ml.start + (uintptr_t)k;
				break;
			}
		}
		break;
	}
	fclose(f);
	return at;
}


int pmt_stop_begin(struct pmt_stopped *s, pid_t pid)
{
	int ret;

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	s->t0 = pmt_now_ns();
	/* threads a running thread creates meanwhile show up in a later
	 * pass; stop when a pass finds none */
	do {
		ret = seize_pass(s);
	} while (ret > 0);
	/* a process whose last thread is exiting refuses the seize with
	 * EPERM too: wait a little for it to be gone before saying EPERM */
	for (int k = 0; ret == -EPERM && !s->n && k < 20; k++) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
		if (!pmt_proc_alive(pid))
			ret = -ESRCH;
		else
			ret = seize_pass(s);
	}
	if (!ret && !s->n)
		ret = -ESRCH;
	if (!ret)
		ret = wait_all(s);
	if (!ret) {
		for (size_t i = 0; i < s->n && !s->victim; i++)
			if (s->tids[i] == pid)
				s->victim = pid;
		for (size_t i = 0; i < s->n && !s->victim; i++)
			s->victim = s->tids[i];
		if (!s->victim)
			ret = -ESRCH;
	}
	if (ret)
		pmt_stop_end(s);
	return ret;
}

/*
 * Resume the victim with @req (PTRACE_SINGLESTEP or PTRACE_CONT) until it
 * stops as wanted: after the step (a SIGTRAP), or at a stop request
 * (@event_stop).  A signal that comes first is kept for the detach, and
 * the victim resumed again.  0, or -ESRCH if it died, or -errno.
 */
static int run_victim(struct pmt_stopped *s, enum __ptrace_request req,
		      bool event_stop)
{
	size_t vi = 0;
	int st;

	while (s->tids[vi] != s->victim)
		vi++;
	for (;;) {
		if (ptrace(req, s->victim, NULL, NULL))
			return -errno;
		do {
			if (waitpid(s->victim, &st, __WALL) >= 0)
				break;
			if (errno != EINTR)
				return -errno;
		} while (1);
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			s->tids[vi] = 0;
			s->victim = 0;
			return -ESRCH;
		}
		if (!WIFSTOPPED(st))
			return -EIO;
		if (event_stop ? (st >> 16) == PTRACE_EVENT_STOP
			       : (WSTOPSIG(st) == SIGTRAP && !(st >> 16)))
			return 0;
		if (!(st >> 16) && WSTOPSIG(st) != SIGTRAP)
			s->sigs[vi] = WSTOPSIG(st);
	}
}

/* step the victim over the prepared call; 0 once it trapped after it */
static int step(struct pmt_stopped *s)
{
	return run_victim(s, PTRACE_SINGLESTEP, false);
}

/*
 * After a single step the thread's single-step flag stays set until it
 * is resumed: a tracer that died now would leave it to trap (SIGTRAP
 * kills it) at its next instruction.  Resume it with a stop request
 * already pending, which stops it again before its next instruction and
 * clears the flag.  0, or -ESRCH if it died.
 */
static int settle(struct pmt_stopped *s)
{
	if (ptrace(PTRACE_INTERRUPT, s->victim, NULL, NULL))
		return -errno;
	return run_victim(s, PTRACE_CONT, true);
}

int pmt_stop_syscall(struct pmt_stopped *s, long nr, const unsigned long a[6],
		     long *res)
{
	struct pmt_arch_regs *saved, *r;
	int ret;

	if (!pmt_arch_inject)
		return -EOPNOTSUPP;
	if (!s->insn)
		s->insn = find_insn(s->pid);
	if (!s->insn)
		return -EOPNOTSUPP;
	saved = malloc(2 * pmt_arch_regs_size);
	if (!saved)
		return -ENOMEM;
	r = (struct pmt_arch_regs *)((char *)saved + pmt_arch_regs_size);
	ret = pmt_arch_get_regs(s->victim, saved);
	if (ret)
		goto out;
	memcpy(r, saved, pmt_arch_regs_size);
	pmt_arch_prep_syscall(r, s->insn, nr, a);
	ret = pmt_arch_set_regs(s->victim, r);
	if (ret)
		goto out;
	ret = step(s);
	if (!ret)
		ret = pmt_arch_get_regs(s->victim, r);
	if (!ret)
		*res = pmt_arch_syscall_ret(r);
	if (s->victim) {
		int r2 = pmt_arch_set_regs(s->victim, saved);

		if (!r2)
			r2 = settle(s);
		if (!ret)
			ret = r2;
	}
out:
	free(saved);
	return ret;
}

/*
 * Let a seized thread go.  PTRACE_DETACH needs it in a ptrace stop: one
 * that was asked to stop and has not yet, or died while stopped (an
 * execve() in another thread kills the others, and waits until they are
 * reaped), is waited for, then detached or reaped.  One that is not our
 * tracee any more is ECHILD at once.
 */
static void detach(pid_t tid, int sig)
{
	int st;

	while (ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)sig)) {
		pid_t r = waitpid(tid, &st, __WALL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st))
			return;
		/* a stop: detach now, giving back a signal it stopped for */
		if (!(st >> 16) && WSTOPSIG(st) != SIGTRAP && !sig)
			sig = WSTOPSIG(st);
	}
}

uint64_t pmt_stop_end(struct pmt_stopped *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->tids[i])
			detach(s->tids[i], s->sigs[i]);
	free(s->tids);
	free(s->sigs);
	s->tids = NULL;
	s->sigs = NULL;
	s->n = s->cap = 0;
	return pmt_now_ns() - s->t0;
}

int pmt_stopped_uffd(struct pmt_stopped *s, bool *user_only)
{
	unsigned long a[6] = { O_CLOEXEC | O_NONBLOCK };
	long tfd = -1, r;
	int pidfd, fd = -1, ret;

	*user_only = false;
	if (!pmt_arch_inject)
		return -EOPNOTSUPP;
	pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	if (pidfd < 0)
		return errno == ENOSYS ? -EOPNOTSUPP : -errno;
	ret = pmt_stop_syscall(s, SYS_userfaultfd, a, &tfd);
	if (!ret && tfd == -EPERM) {
		/* the target may not trap kernel faults: ask for user-mode
		 * faults only, which async write-protect does not need */
		a[0] |= UFFD_USER_MODE_ONLY;
		*user_only = true;
		ret = pmt_stop_syscall(s, SYS_userfaultfd, a, &tfd);
	}
	if (!ret && tfd < 0)
		ret = tfd == -ENOSYS ? -EOPNOTSUPP : (int)tfd;
	if (!ret) {
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)tfd, 0);
		if (fd < 0)
			ret = errno == ENOSYS ? -EOPNOTSUPP : -errno;
		/* the target's copy goes whatever happened: it must never
		 * run holding one */
		a[0] = (unsigned long)tfd;
		if (pmt_stop_syscall(s, SYS_close, a, &r) && !ret)
			ret = -EIO;
	}
	close(pidfd);
	if (ret && fd >= 0)
		close(fd);
	return ret ? ret : fd;
}

/* what the injecting process sends back with the descriptor */
struct inj_reply {
	int ret;
	bool user_only;
	uint64_t stop_ns;
};

/* in the injecting process: inject, send the descriptor, exit */
static void __attribute__((noreturn)) injector(int sock, pid_t pid)
{
	struct inj_reply rep = { 0 };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &rep, sizeof(rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct pmt_stopped s;
	int fd = -1;

	rep.ret = pmt_stop_begin(&s, pid);
	if (!rep.ret) {
		fd = pmt_stopped_uffd(&s, &rep.user_only);
		rep.stop_ns = pmt_stop_end(&s);
		rep.ret = fd < 0 ? fd : 0;
	}
	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	/* if the tracker died meanwhile this fails, and the descriptor
	 * goes with this process: the target was left as it was */
	sendmsg(sock, &mh, MSG_NOSIGNAL);
	_exit(0);
}

/* in the tracker: the injecting process's answer */
static int injected(int sock, uint64_t *stop_ns, bool *user_only)
{
	struct inj_reply rep = { .ret = -EIO };
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &rep, sizeof(rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n;
	int fd = -1;

	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(rep))
		return n < 0 ? -errno : -EIO;
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	*stop_ns = rep.stop_ns;
	*user_only = rep.user_only;
	if (!rep.ret && fd < 0)
		return -EIO;
	if (rep.ret && fd >= 0)
		close(fd);
	return rep.ret ? rep.ret : fd;
}

/*
 * The injection runs in a process of its own, forked for it, which sends
 * the descriptor back: if the tracker dies in the middle (even by
 * SIGKILL), that process still puts the target's registers back and lets
 * it go.  Done by the tracker's own thread, a tracker killed while the
 * target's registers are changed would leave it to run with them.
 */
int pmt_remote_uffd(pid_t pid, uint64_t *stop_ns, bool *user_only)
{
	int sv[2], ret, st;
	pid_t child;

	*stop_ns = 0;
	*user_only = false;
	if (!pmt_arch_inject)
		return -EOPNOTSUPP;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	child = fork();
	if (child < 0) {
		ret = -errno;
		close(sv[0]);
		close(sv[1]);
		return ret;
	}
	if (!child) {
		close(sv[0]);
		injector(sv[1], pid);
	}
	close(sv[1]);
	ret = injected(sv[0], stop_ns, user_only);
	close(sv[0]);
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	return ret;
}

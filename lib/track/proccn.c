// SPDX-License-Identifier: MIT
/*
 * PMTRACK_PROC_CHILDREN with PMTRACK_PROC_EVENTS_CONNECTOR: the tree is
 * followed without stopping it at forks and exits.  One thread of the
 * library reads two sources:
 *
 * - the kernel's proc connector (NETLINK_CONNECTOR, group CN_IDX_PROC,
 *   through libnl-3; the events come as NLMSG_DONE messages, so on the
 *   "finish" callback): which task forked which, exec'd, exited.  It only
 *   notifies; the processes run on.
 * - the trackers' userfaultfds, whose UFFDIO_API asked for
 *   UFFD_FEATURE_EVENT_FORK (CAP_SYS_PTRACE): at a fork of a tracked
 *   process the kernel gives the child a userfaultfd context of its own,
 *   with its parent's registrations and write-protect state, and queues a
 *   UFFD_EVENT_FORK message on the parent's; reading it installs the
 *   child's descriptor in the reader, this process.  The forking thread
 *   waits in fork() until the message is read, so the thread reads them
 *   as soon as they come.
 *
 * Which pid a child's descriptor belongs to: the message carries no pid.
 * The kernel copies the memory and queues the message before the child
 * has a pid, and sends the connector's fork event (parent tgid, child pid)
 * after the message was read, before fork() returns.  So the thread reads
 * one fork message of a process at a time: once it has one, it leaves that
 * process's userfaultfd alone (a second thread forking waits in fork())
 * until the connector's fork event of that process came, which is that
 * message's.  A vfork() or clone(CLONE_VM) child has no message and is told
 * apart with kcmp(KCMP_VM).  And the connector socket is always drained
 * before fork messages are read: a child's fork event is sent before it
 * runs, so it is paired before any fork of its own is read.
 *
 * A fork that fails after the copy (a signal came) sends no event: the
 * descriptor's memory goes (UFFDIO_WRITEPROTECT says ESRCH).  One whose
 * event does not come within CN_PAIR_NS (events lost to an overflowing
 * socket, CLONE_PARENT) becomes an orphan, so its parent's forks go on:
 * an orphan's forks are read, and when its memory goes, its shared
 * mappings are reported in full under the pid of the process it was
 * forked from (a fork that failed is reported so too: nothing is lost).
 *
 * An exited process cannot be scanned (its memory is gone when the event
 * comes): every shared writable mapping it had, as read at its last
 * collect or its parent's at its fork, is reported in full with
 * PMTRACK_PROC_EXITED by the next collect (procstash.c).
 *
 * Locking: the thread handles everything under m->mu, which the API's
 * collect takes too (pm_lock()); it polls without it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/kcmp.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "proc.h"
#include "procint.h"
#include "uapi_compat.h"

#define CN_PAIR_NS (1000ull * 1000 * 1000) /* longest wait for a fork event */
#define CN_POLL_MS 5	    /* poll period while a descriptor waits */
#define CN_RCVBUF (8 << 20) /* the connector socket's receive buffer */
#define CN_DRAIN_MAX 65536  /* messages handled per drain */
/* a page for mm_alive(): above any vm.mmap_min_addr, below PIE programs */
#define CN_PROBE_ADDR 0x1000000ul

/* a process's shared writable mappings */
struct pp_shm {
	size_t n, cap;
	struct pmtrack_mapping *m; /* names are the table's */
};

/* a child's userfaultfd, read from its parent's fork event */
struct cn_fork {
	int fd;
	pid_t parent;	   /* the process whose fork it is (tgid) */
	bool orphan;	   /* its pid is not to be known */
	bool dead;	   /* its memory was found gone */
	uint64_t t0;	   /* when it was read */
	struct pp_span *w; /* the parent's watched spans then */
	size_t nw;
	struct pp_shm *shm; /* the parent's shared mappings then */
};

/* a vfork() or clone(CLONE_VM) child of a tracked process */
struct cn_vfork {
	pid_t pid, parent;
};

struct cn_monitor {
	pthread_t th;
	pthread_mutex_t mu;
	int wake[2];
	bool stop;
	struct nl_sock *sk;
	struct pmtrack_proc *p;
	struct cn_fork *forks;
	size_t nforks, capf;
	struct cn_vfork *vf;
	size_t nvf, capvf;
	struct pollfd *pfd;
	size_t npfd, cappfd;
};

/* ---- shared mappings ----------------------------------------------------- */

void pp_shm_free(struct pp_shm *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free((char *)s->m[i].name);
	free(s->m);
	free(s);
}

static int shm_push(struct pp_shm *s, const struct pmtrack_mapping *m)
{
	char *name;

	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		struct pmtrack_mapping *v = realloc(s->m, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->m = v;
		s->cap = cap;
	}
	name = strdup(m->name ? m->name : "");
	if (!name)
		return -ENOMEM;
	s->m[s->n] = *m;
	s->m[s->n++].name = name;
	return 0;
}

static bool shm_kind(const struct pmtrack_mapping *m)
{
	return (m->flags & PMTRACK_MAP_SHARED) && (m->prot & PROT_WRITE) &&
	       !(m->flags & PMTRACK_MAP_SPECIAL);
}

static struct pp_shm *shm_dup(const struct pp_shm *from)
{
	struct pp_shm *s = calloc(1, sizeof(*s));

	for (size_t i = 0; s && from && i < from->n; i++) {
		if (shm_push(s, &from->m[i])) {
			pp_shm_free(s);
			return NULL;
		}
	}
	return s;
}

/* the shared writable mappings of @pid by PROCMAP_QUERY (Linux 6.11) */
static int shm_query(pid_t pid, struct pp_shm *s)
{
	char name[4096];
	struct procmap_query q;
	uint64_t addr = 0;
	int fd = pmt_proc_open(pid, "maps", O_RDONLY), ret = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		memset(&q, 0, sizeof(q));
		q.size = sizeof(q);
		q.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA |
				PROCMAP_QUERY_VMA_WRITABLE |
				PROCMAP_QUERY_VMA_SHARED;
		q.query_addr = addr;
		q.vma_name_addr = (uintptr_t)name;
		q.vma_name_size = sizeof(name);
		if (ioctl(fd, PROCMAP_QUERY, &q)) {
			ret = errno == ENOENT ? 0 : -errno;
			break;
		}
		ret = shm_push(s, &(struct pmtrack_mapping){
			.start = q.vma_start, .end = q.vma_end,
			.offset = q.vma_offset, .inode = q.inode,
			.dev_major = q.dev_major, .dev_minor = q.dev_minor,
			.prot = PROT_WRITE |
				(q.vma_flags & PROCMAP_QUERY_VMA_READABLE
					 ? PROT_READ : 0) |
				(q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE
					 ? PROT_EXEC : 0),
			.flags = PMTRACK_MAP_SHARED,
			.name = q.vma_name_size ? name : "" });
		if (ret)
			break;
		addr = q.vma_end;
	}
	close(fd);
	return ret;
}

/* the same by reading /proc/PID/maps (before 6.11) */
static int shm_parse(pid_t pid, struct pp_shm *s)
{
	struct pmt_maps_line ml;
	char line[4200];
	int ret = 0;
	FILE *f = pmt_proc_stream(pid, "maps", &ret);

	if (!f)
		return ret;
	while (!ret && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (pmt_maps_parse(line, &ml) || !ml.shared ||
		    !(ml.prot & PROT_WRITE))
			continue;
		ret = shm_push(s, &(struct pmtrack_mapping){
			.start = ml.start, .end = ml.end, .offset = ml.offset,
			.inode = ml.inode, .dev_major = ml.dev_major,
			.dev_minor = ml.dev_minor, .prot = ml.prot,
			.flags = PMTRACK_MAP_SHARED,
			.name = line + ml.name_at });
	}
	fclose(f);
	return ret;
}

/* @pid's shared writable mappings now; NULL if they cannot be read */
static struct pp_shm *shm_read(pid_t pid)
{
	struct pp_shm *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return NULL;
	ret = shm_query(pid, s);
	if (ret == -ENOTTY || ret == -EINVAL) {
		pp_shm_free(s);
		s = calloc(1, sizeof(*s));
		ret = s ? shm_parse(pid, s) : -ENOMEM;
	}
	if (ret) {
		pp_shm_free(s);
		return NULL;
	}
	return s;
}

/* keep the reports of @s, written in full, for the next collect */
static void shm_stash(struct pmtrack_proc *p, pid_t pid,
		      const struct pp_shm *s, unsigned int flags)
{
	for (size_t i = 0; s && i < s->n; i++) {
		struct pmtrack_page_run run = {
			.start = s->m[i].start,
			.end = s->m[i].end,
			.states = PMTRACK_PAGE_WRITTEN,
		};
		struct pmtrack_proc_report r = {
			.pid = pid,
			.flags = PMTRACK_PROC_FULL | PMTRACK_PROC_EXITED |
				 flags,
			.map = &s->m[i],
			.runs = &run,
			.nruns = 1,
		};

		if (!pp_stash_add(&p->exited, &r))
			atomic_fetch_add(&p->st.pages_reported,
					 (run.end - run.start) / p->page_size);
	}
}

/* ---- processes ----------------------------------------------------------- */

/* is the memory of userfaultfd @fd still there? */
static bool mm_alive(int fd)
{
	/* the kernel answers ESRCH once the memory is gone; removing the
	 * write protection of one page, which is not even mapped as a rule,
	 * can only make it read as written: harmless */
	struct uffdio_writeprotect wp = {
		.range = { .start = CN_PROBE_ADDR, .len = 4096 },
	};

	return !ioctl(fd, UFFDIO_WRITEPROTECT, &wp) || errno != ESRCH;
}

/* has @pr's process exited (not exec'd)? */
static bool pr_gone(const struct pp_proc *pr)
{
	int fd = pmt_track_uffd(pr->t);

	if (fd >= 0 && mm_alive(fd))
		return false;
	return !pp_alive(pr->pid);
}

void cn_gone(struct pmtrack_proc *p, struct pp_proc *pr)
{
	/* a process never reported before is new to the caller */
	shm_stash(p, pr->pid, pr->shm, pr->next_flags & PMTRACK_PROC_NEW);
	atomic_fetch_add(&p->st.exits, 1);
	pp_remove(p, pr);
}

void cn_keep_maps(struct pp_proc *pr, const struct pmtrack_mapping *maps,
		  size_t n)
{
	int fd = pmt_track_uffd(pr->t);
	struct pp_shm *s;

	/* maps read after the process exited are empty: keep the last */
	if (fd >= 0 && !mm_alive(fd))
		return;
	s = calloc(1, sizeof(*s));
	for (size_t i = 0; s && i < n; i++) {
		if (shm_kind(&maps[i]) && shm_push(s, &maps[i])) {
			pp_shm_free(s);
			return; /* keep the last */
		}
	}
	if (s) {
		pp_shm_free(pr->shm);
		pr->shm = s;
	}
}

/* ---- children's userfaultfds --------------------------------------------- */

static void fork_free(struct cn_fork *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->w);
	pp_shm_free(f->shm);
}

static void fork_drop(struct cn_monitor *m, size_t i)
{
	fork_free(&m->forks[i]);
	memmove(&m->forks[i], &m->forks[i + 1],
		(m->nforks - i - 1) * sizeof(m->forks[0]));
	m->nforks--;
}

static int fork_push(struct cn_monitor *m, const struct cn_fork *f)
{
	if (m->nforks == m->capf) {
		size_t cap = m->capf ? 2 * m->capf : 8;
		struct cn_fork *v = realloc(m->forks, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->forks = v;
		m->capf = cap;
	}
	m->forks[m->nforks++] = *f;
	return 0;
}

/* the oldest descriptor of @parent's forks waiting for its pid, or -1 */
static ssize_t fork_waiting(const struct cn_monitor *m, pid_t parent)
{
	for (size_t i = 0; i < m->nforks; i++)
		if (!m->forks[i].orphan && m->forks[i].parent == parent)
			return (ssize_t)i;
	return -1;
}

static struct cn_vfork *vfork_find(struct cn_monitor *m, pid_t pid)
{
	for (size_t i = 0; i < m->nvf; i++)
		if (m->vf[i].pid == pid)
			return &m->vf[i];
	return NULL;
}

static void vfork_add(struct cn_monitor *m, pid_t pid, pid_t parent)
{
	if (m->nvf == m->capvf) {
		size_t cap = m->capvf ? 2 * m->capvf : 8;
		struct cn_vfork *v = realloc(m->vf, cap * sizeof(*v));

		if (!v)
			return; /* tracked, if it execs, as a new child */
		m->vf = v;
		m->capvf = cap;
	}
	m->vf[m->nvf++] = (struct cn_vfork){ .pid = pid, .parent = parent };
}

static void vfork_drop(struct cn_monitor *m, pid_t pid)
{
	struct cn_vfork *v = vfork_find(m, pid);

	if (v)
		*v = m->vf[--m->nvf];
}

/* do @a and @b share their memory? */
static bool same_vm(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
}

/* watch the spans the child inherited, keeping their state; those that
 * cannot be are left out (its first collect reports them in full) */
static void adopt(struct pp_proc *pr, struct pp_span *w, size_t nw)
{
	size_t k = 0;

	for (size_t i = 0; i < nw; i++)
		if (!pmt_adopt(pr->t, (void *)(uintptr_t)w[i].s,
			       w[i].e - w[i].s))
			w[k++] = w[i];
	pr->w = w;
	pr->nw = k;
	pr->capw = nw;
}

/* track child @pid from the descriptor of its fork, *@f (consumed) */
static int child_new(struct pmtrack_proc *p, struct cn_fork *f, pid_t pid)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .pid = pid, .rearm = p->rearm);
	PMTRACK_OPTS(pmtrack_pstate_opts, po, .pid = pid);
	struct pmt_uffd_how how = { .fd = f->fd, .ready = true };
	struct pp_proc *pr;
	int ret;

	if (!mm_alive(f->fd))
		return -ESRCH; /* it exited already */
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return -ENOMEM;
	pr->pid = pid;
	pr->next_flags = PMTRACK_PROC_NEW;
	f->fd = -1; /* the tracker's, whatever happens */
	ret = pmt_track_new_uffd(&o, &how, &pr->t);
	if (!ret)
		ret = pmtrack_pstate_new(&po, &pr->ps);
	if (!ret) {
		adopt(pr, f->w, f->nw);
		f->w = NULL;
		ret = pp_insert(p, pr);
	}
	if (ret) {
		pp_free(pr);
		return ret;
	}
	pr->shm = f->shm;
	f->shm = NULL;
	return 0;
}

/* a child without a fork message (its parent had no registered memory,
 * or had just exec'd): inject, and report it in full */
static bool child_inject(struct pmtrack_proc *p, pid_t pid, unsigned int flags)
{
	struct pp_proc *pr;

	if (pp_add(p, pid, -1, flags, &pr))
		return false; /* gone already */
	pr->shm = shm_read(pid);
	return true;
}

/* the connector says @pid is the child of the fork waiting at @i */
static void pair(struct pmtrack_proc *p, size_t i, pid_t pid)
{
	struct cn_monitor *m = p->cn;
	struct cn_fork f = m->forks[i];

	memmove(&m->forks[i], &m->forks[i + 1],
		(m->nforks - i - 1) * sizeof(m->forks[0]));
	m->nforks--;
	atomic_fetch_add(&p->st.forks, 1);
	if (child_new(p, &f, pid)) {
		/* its forked image is gone already (or there is no memory
		 * to track it): what it may have written in shared memory,
		 * in full, in the first report of it */
		shm_stash(p, pid, f.shm, PMTRACK_PROC_NEW);
		atomic_fetch_add(&p->st.exits, 1);
		/* gone by an exec (fork + exec): its new program is
		 * tracked from now on, in full (its exec event, read
		 * next, injects it once more) */
		if (pp_alive(pid))
			child_inject(p, pid, PMTRACK_PROC_EXEC);
	}
	fork_free(&f);
}

/* ---- the connector's events ---------------------------------------------- */

static void ev_fork(struct pmtrack_proc *p, const struct proc_event *ev)
{
	pid_t parent = ev->event_data.fork.parent_tgid;
	pid_t pid = ev->event_data.fork.child_pid;
	struct cn_monitor *m = p->cn;
	struct cn_vfork *v;
	ssize_t i;

	if (pid != ev->event_data.fork.child_tgid || pid == parent)
		return; /* a thread */
	/* a vfork child that forks does so in its parent's memory */
	v = vfork_find(m, parent);
	if (v)
		parent = v->parent;
	i = fork_waiting(m, parent);
	if (i < 0 && !pp_find(p, parent))
		return; /* not of the tree */
	if (same_vm(pid, ev->event_data.fork.parent_pid)) {
		vfork_add(m, pid, parent);
		return;
	}
	if (i >= 0)
		pair(p, (size_t)i, pid);
	else if (child_inject(p, pid, 0))
		atomic_fetch_add(&p->st.forks, 1);
}

static void ev_exec(struct pmtrack_proc *p, const struct proc_event *ev)
{
	pid_t pid = ev->event_data.exec.process_tgid;
	struct pp_proc *pr = pp_find(p, pid);
	struct cn_monitor *m = p->cn;

	if (!pr && vfork_find(m, pid)) {
		/* a vfork child becomes a process of its own */
		vfork_drop(m, pid);
		if (child_inject(p, pid, PMTRACK_PROC_EXEC))
			atomic_fetch_add(&p->st.execs, 1);
		return;
	}
	if (!pr)
		return;
	/* its new program, every mapping in full (a failure is the next
	 * collect's: it tries again) */
	if (!pp_rebind(p, pr, -1))
		atomic_fetch_add(&p->st.execs, 1);
	pr->next_flags |= PMTRACK_PROC_NEW | PMTRACK_PROC_EXEC;
	pp_shm_free(pr->shm);
	pr->shm = shm_read(pid);
}

static void ev_exit(struct pmtrack_proc *p, const struct proc_event *ev)
{
	pid_t pid = ev->event_data.exit.process_tgid;
	struct pp_proc *pr = pp_find(p, pid);

	if (pid == ev->event_data.exit.process_pid)
		vfork_drop(p->cn, pid);
	/* a thread's exit, or an exec's (the exec event follows) */
	if (pr && pr_gone(pr))
		cn_gone(p, pr);
}

static int on_msg(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	const struct cn_msg *cn = nlmsg_data(h);
	struct proc_event e;
	const struct proc_event *ev = &e;

	if (nlmsg_datalen(h) < (int)(sizeof(*cn) + sizeof(e)) ||
	    cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC)
		return NL_OK;
	/* the event follows a 20-byte header: copied out, as it is not
	 * aligned for its 8-byte fields */
	memcpy(&e, cn->data, sizeof(e));
	switch (ev->what) {
	case PROC_EVENT_FORK:
		ev_fork(arg, ev);
		break;
	case PROC_EVENT_EXEC:
		ev_exec(arg, ev);
		break;
	case PROC_EVENT_EXIT:
		ev_exit(arg, ev);
		break;
	default:
		break;
	}
	return NL_OK;
}

/* handle every event queued on the socket */
static void drain(struct pmtrack_proc *p)
{
	for (int i = 0; i < CN_DRAIN_MAX; i++) {
		int ret = nl_recvmsgs_default(p->cn->sk);

		/* -NLE_NOMEM: ENOBUFS, events were lost (see the top) */
		if (ret < 0 && ret != -NLE_NOMEM && ret != -NLE_INTR)
			break;
	}
}

static int nl_errno(int err)
{
	switch (err < 0 ? -err : err) {
	case NLE_PERM:
		return -EPERM;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_PROTO_MISMATCH:
	case NLE_OPNOTSUPP:
	case NLE_AF_NOSUPPORT:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

/* PROC_CN_MCAST_LISTEN or _IGNORE */
static int mcast(struct nl_sock *sk, enum proc_cn_mcast_op op)
{
	char buf[sizeof(struct cn_msg) + sizeof(op)] = { 0 };
	struct cn_msg *cn = (struct cn_msg *)buf;
	struct nl_msg *msg = nlmsg_alloc_simple(NLMSG_DONE, 0);
	int ret;

	if (!msg)
		return -ENOMEM;
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->len = sizeof(op);
	memcpy(cn->data, &op, sizeof(op));
	ret = nlmsg_append(msg, buf, sizeof(buf), 0);
	if (!ret)
		ret = nl_send_auto(sk, msg);
	nlmsg_free(msg);
	return ret < 0 ? nl_errno(ret) : 0;
}

/* the connector's socket, listening; -EPERM where it cannot be bound */
static int cn_socket(struct pmtrack_proc *p)
{
	struct nl_sock *sk = nl_socket_alloc();
	int ret, sz = CN_RCVBUF;

	if (!sk)
		return -ENOMEM;
	nl_socket_disable_seq_check(sk);
	nl_socket_disable_auto_ack(sk);
	nl_socket_disable_msg_peek(sk);
	nl_join_groups(sk, CN_IDX_PROC);
	ret = nl_connect(sk, NETLINK_CONNECTOR);
	if (!ret)
		ret = nl_socket_set_nonblocking(sk);
	if (!ret)
		ret = nl_socket_modify_cb(sk, NL_CB_FINISH, NL_CB_CUSTOM,
					  on_msg, p);
	ret = ret ? nl_errno(ret) : mcast(sk, PROC_CN_MCAST_LISTEN);
	if (ret) {
		nl_socket_free(sk);
		return ret;
	}
	/* room for bursts of the whole system's events (root may) */
	if (setsockopt(nl_socket_get_fd(sk), SOL_SOCKET, SO_RCVBUFFORCE, &sz,
		       sizeof(sz)))
		setsockopt(nl_socket_get_fd(sk), SOL_SOCKET, SO_RCVBUF, &sz,
			   sizeof(sz));
	p->cn->sk = sk;
	return 0;
}

/* ---- fork messages ------------------------------------------------------- */

static struct pp_proc *uffd_proc(struct pmtrack_proc *p, int fd)
{
	for (size_t i = 0; i < p->nprocs; i++)
		if (pmt_track_uffd(p->procs[i]->t) == fd)
			return p->procs[i];
	return NULL;
}

static struct cn_fork *uffd_fork(struct cn_monitor *m, int fd)
{
	for (size_t i = 0; i < m->nforks; i++)
		if (m->forks[i].fd == fd)
			return &m->forks[i];
	return NULL;
}

static struct pp_span *spans_dup(const struct pp_span *w, size_t n)
{
	struct pp_span *v = n ? malloc(n * sizeof(*v)) : NULL;

	if (v)
		memcpy(v, w, n * sizeof(*v));
	return v;
}

/*
 * What a child of tracked @pr starts with: @pr's watched spans, and its
 * shared writable mappings, read now that the forking thread waits (the
 * last known ones if they cannot be read).
 */
static void fork_of_proc(struct cn_fork *f, const struct pp_proc *pr)
{
	f->parent = pr->pid;
	if (!pr->stale) {
		f->w = spans_dup(pr->w, pr->nw);
		f->nw = f->w ? pr->nw : 0;
	}
	f->shm = shm_read(pr->pid);
	if (!f->shm)
		f->shm = shm_dup(pr->shm);
}

/* userfaultfd @fd is readable: read its fork message, if it may be */
static void on_uffd(struct pmtrack_proc *p, int fd)
{
	struct cn_monitor *m = p->cn;
	struct pp_proc *pr = uffd_proc(p, fd);
	struct cn_fork *of = pr ? NULL : uffd_fork(m, fd);
	struct cn_fork f = { .fd = -1 };
	struct uffd_msg msg;

	if (pr && fork_waiting(m, pr->pid) >= 0)
		return; /* one at a time: after the last one's pid */
	if (pr) {
		fork_of_proc(&f, pr);
	} else if (of) {
		/* a child whose pid is unknown forks: an orphan too */
		f.parent = of->parent;
		f.orphan = true;
		f.w = spans_dup(of->w, of->nw);
		f.nw = f.w ? of->nw : 0;
		f.shm = shm_dup(of->shm);
	} else {
		return;
	}
	if (read(fd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg) &&
	    msg.event == UFFD_EVENT_FORK) {
		f.fd = (int)msg.arg.fork.ufd;
		f.t0 = pmt_now_ns();
		if (!fork_push(m, &f))
			return;
		/* no memory: dropping the descriptor drops the child's
		 * registrations; its writes are then beyond reach */
	}
	fork_free(&f);
}

/* descriptors waiting for a pid: gone (a failed fork, a lost event), or
 * waiting too long (orphans from now on) */
static void check_forks(struct pmtrack_proc *p)
{
	struct cn_monitor *m = p->cn;
	uint64_t now = pmt_now_ns();
	bool dead = false;

	for (size_t i = 0; i < m->nforks; i++) {
		m->forks[i].dead = !mm_alive(m->forks[i].fd);
		dead |= m->forks[i].dead;
	}
	/* a child's fork event is queued before it runs, so before it
	 * can exit: one still unpaired after this had none */
	if (dead)
		drain(p);
	for (size_t i = 0; i < m->nforks;) {
		struct cn_fork *f = &m->forks[i];

		if (f->dead) {
			shm_stash(p, f->parent, f->shm, 0);
			atomic_fetch_add(&p->st.exits, 1);
			fork_drop(m, i);
			continue;
		}
		if (now - f->t0 > CN_PAIR_NS)
			f->orphan = true;
		i++;
	}
}

/* ---- the thread ---------------------------------------------------------- */

static int pfd_add(struct cn_monitor *m, int fd)
{
	if (m->npfd == m->cappfd) {
		size_t cap = m->cappfd ? 2 * m->cappfd : 16;
		struct pollfd *v = realloc(m->pfd, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->pfd = v;
		m->cappfd = cap;
	}
	m->pfd[m->npfd++] = (struct pollfd){ .fd = fd, .events = POLLIN };
	return 0;
}

/* what to wait for: the wake pipe, the socket, and every userfaultfd
 * whose fork messages may be read now */
static int pollset(struct pmtrack_proc *p)
{
	struct cn_monitor *m = p->cn;
	int ret;

	m->npfd = 0;
	ret = pfd_add(m, m->wake[0]);
	if (!ret)
		ret = pfd_add(m, nl_socket_get_fd(m->sk));
	for (size_t i = 0; !ret && i < p->nprocs; i++) {
		int fd = pmt_track_uffd(p->procs[i]->t);

		if (fd >= 0 && fork_waiting(m, p->procs[i]->pid) < 0)
			ret = pfd_add(m, fd);
	}
	for (size_t i = 0; !ret && i < m->nforks; i++)
		ret = pfd_add(m, m->forks[i].fd);
	return ret;
}

static void handle(struct pmtrack_proc *p, int n)
{
	struct cn_monitor *m = p->cn;
	char buf[64];

	if (n > 0 && m->pfd[0].revents)
		while (read(m->wake[0], buf, sizeof(buf)) > 0)
			;
	/* the connector first: children are paired before their forks */
	drain(p);
	for (size_t i = 2; n > 0 && i < m->npfd; i++)
		if (m->pfd[i].revents)
			on_uffd(p, m->pfd[i].fd);
	if (m->nforks)
		check_forks(p);
}

static void *cn_main(void *arg)
{
	struct pmtrack_proc *p = arg;
	struct cn_monitor *m = p->cn;

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		int timeout = m->nforks ? CN_POLL_MS : -1, n;

		if (pollset(p))
			timeout = CN_POLL_MS; /* no memory: try again */
		pthread_mutex_unlock(&m->mu);
		n = poll(m->pfd, m->npfd, timeout);
		pthread_mutex_lock(&m->mu);
		if (!m->stop)
			handle(p, n);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* ---- the API's side ------------------------------------------------------ */

static void wake(struct cn_monitor *m)
{
	char c = 1;

	/* non-blocking: a full pipe wakes the thread as well */
	while (write(m->wake[1], &c, 1) < 0 && errno == EINTR)
		;
}

static void monitor_free(struct pmtrack_proc *p)
{
	struct cn_monitor *m = p->cn;

	if (m->sk) {
		mcast(m->sk, PROC_CN_MCAST_IGNORE);
		nl_socket_free(m->sk);
	}
	while (m->nforks)
		fork_drop(m, m->nforks - 1);
	free(m->forks);
	free(m->vf);
	free(m->pfd);
	if (m->wake[0] >= 0) {
		close(m->wake[0]);
		close(m->wake[1]);
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
	p->cn = NULL;
	p->lock = NULL;
	p->uffd_features = 0;
}

/*
 * Track the root, its userfaultfd asking for fork events, and watch its
 * mappings now, so that children forked before the first collect inherit
 * them; that collect still reports every mapping in full.
 */
static int track_root(struct pmtrack_proc *p)
{
	struct pp_proc *pr;
	int ret;

	p->uffd_features = UFFD_FEATURE_EVENT_FORK;
	ret = pp_add(p, p->root, -1, 0, &pr);
	if (ret)
		return ret;
	pr->shm = shm_read(p->root);
	ret = pp_collect_one(p, pr, 0, pp_discard, NULL);
	pr->next_flags = PMTRACK_PROC_NEW;
	pr->full_next = true;
	return ret;
}

int cn_start(struct pmtrack_proc *p)
{
	enum pmtrack_backend b = p->backend;
	struct cn_monitor *m;
	int ret;

	/* fork events need a userfaultfd: pagemap-scan */
	if (b != PMTRACK_BACKEND_AUTO && b != PMTRACK_BACKEND_PAGEMAP_SCAN)
		return -EOPNOTSUPP;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->wake[0] = m->wake[1] = -1;
	pthread_mutex_init(&m->mu, NULL);
	p->cn = m;
	ret = pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) ? -errno : 0;
	if (!ret)
		ret = cn_socket(p);
	if (!ret) {
		p->backend = PMTRACK_BACKEND_PAGEMAP_SCAN;
		ret = track_root(p);
	}
	if (!ret)
		ret = -pthread_create(&m->th, NULL, cn_main, p);
	if (ret) {
		while (p->nprocs)
			pp_remove(p, p->procs[0]);
		p->backend = b;
		monitor_free(p);
		return ret;
	}
	p->lock = &m->mu;
	return 0;
}

void cn_stop(struct pmtrack_proc *p)
{
	struct cn_monitor *m = p->cn;

	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_mutex_unlock(&m->mu);
	wake(m);
	pthread_join(m->th, NULL);
	monitor_free(p);
}

/* processes whose memory is gone, before their exit event is read */
static void sweep(struct pmtrack_proc *p)
{
	for (size_t i = 0; i < p->nprocs;) {
		struct pp_proc *pr = p->procs[i];

		if (pr->t && pr_gone(pr)) {
			cn_gone(p, pr);
			continue;
		}
		i++;
	}
}

int cn_collect(struct pmtrack_proc *p, unsigned int flags, pmtrack_proc_fn fn,
	       void *arg)
{
	struct cn_monitor *m = p->cn;
	int ret;

	pthread_mutex_lock(&m->mu);
	drain(p);
	sweep(p);
	ret = pp_collect_locked(p, flags, fn, arg);
	pthread_mutex_unlock(&m->mu);
	/* trackers may have been rebuilt: new userfaultfds to poll */
	wake(m);
	return ret;
}

/* the tracked pids not stopped yet, after the events queued now */
static pid_t *unstopped(struct pmtrack_proc *p, size_t *n)
{
	pid_t *v;

	pthread_mutex_lock(&p->cn->mu);
	drain(p);
	v = malloc((p->nprocs ? p->nprocs : 1) * sizeof(*v));
	*n = 0;
	for (size_t i = 0; v && i < p->nprocs; i++) {
		size_t j = 0;

		while (j < p->nstops && p->stops[j].pid != p->procs[i]->pid)
			j++;
		if (j == p->nstops)
			v[(*n)++] = p->procs[i]->pid;
	}
	pthread_mutex_unlock(&p->cn->mu);
	return v;
}

/* stop what is tracked; then what was forked meanwhile, until nothing
 * new is stopped (a stopped process forks no more) */
static int freeze_round(struct pmtrack_proc *p, size_t *cap, bool *more)
{
	size_t n;
	pid_t *v = unstopped(p, &n);
	int ret = v ? 0 : -ENOMEM;

	*more = false;
	for (size_t i = 0; !ret && i < n; i++) {
		if (p->nstops == *cap) {
			size_t c = *cap ? 2 * *cap : 8;
			struct pmt_stopped *s =
				realloc(p->stops, c * sizeof(*s));

			if (!s) {
				ret = -ENOMEM;
				break;
			}
			p->stops = s;
			*cap = c;
		}
		ret = pmt_stop_begin(&p->stops[p->nstops], v[i]);
		if (ret == -ESRCH) {
			ret = 0;
			continue;
		}
		p->nstops += !ret;
		*more |= !ret;
	}
	free(v);
	return ret;
}

int cn_freeze(struct pmtrack_proc *p)
{
	size_t cap = 0;
	bool more = true;
	int ret = 0;

	p->stops = NULL;
	p->nstops = 0;
	while (!ret && more)
		ret = freeze_round(p, &cap, &more);
	if (!ret && !p->nstops)
		ret = -ESRCH;
	if (ret) {
		pp_thaw_here(p);
		return ret;
	}
	p->frozen = true;
	return 0;
}

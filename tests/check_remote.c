// SPDX-License-Identifier: MIT
/*
 * Tracking another process: pmtrack_new() with pmtrack_opts.pid (the
 * pagemap-scan backend with a userfaultfd injected into the target) and
 * whole processes (<pmtrack/process.h>).  check_remote CASE runs one case
 * (all without an argument):
 *   basic         a writing child: caps, stats, no lost write (stores by
 *                 three threads; read(2) into the memory)
 *   errors        no such process, the caller, a zombie, bad options, a
 *                 target that exec'd
 *   killed        a tracker process killed with SIGKILL mid-run: the
 *                 target runs and forks on, never holding a userfaultfd
 *   unprivileged  tracker and target as uid 65534 (root only: 77 else);
 *                 65534 against root's process gets -EPERM/-EACCES
 *   mappings      pmtrack_proc reports as mappings appear, grow, move,
 *                 go and turn read-only
 *   exec          the target execs: EXEC|NEW, every mapping FULL
 *   children      PMTRACK_PROC_CHILDREN: exited and living children's
 *                 writes; a fork storm, tracked and after free
 *   freeze        pmtrack_proc_freeze/thaw as the target's parent sees it
 *   closefds      a target that closes every descriptor, over and over
 *
 * Targets are children forked by the test: plain code writing memory,
 * never calling the library.  "No lost write" is checked with a shadow
 * copy: after every RESET collect the reported pages are copied from the
 * target (process_vm_readv); then the target is stopped, the last collect
 * copied, and the shadow compared with the target's memory page by page.
 * Every store writes a value never written before, so a write the
 * tracker missed leaves a page that differs.
 *
 * Waits have long deadlines (DEADLINE_MS): they tell a hang from a slow
 * machine, and no assertion is about how long anything took.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/process.h>

#include "helpers.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif

#define DEADLINE_MS 20000 /* "it is not hung" */
#define NREG 3		  /* regions of a writer target */
#define MAXTHR 8
#define NOBODY 65534

/* ---- shared between the test, its targets and its tracker processes ---- */

struct ctl {
	_Atomic uint64_t stores[MAXTHR]; /* per writer thread */
	_Atomic uint64_t kbytes;	 /* read(2) into tracked memory */
	_Atomic uint64_t reads;
	_Atomic uint64_t closes;  /* close_range() calls */
	_Atomic uint64_t counter; /* freeze: moves while the target runs */
	_Atomic uint64_t forks;	  /* children forked and reaped */
	_Atomic uint64_t bad;	  /* of which did not exit with 0 */
	_Atomic int bad_status;	  /* the first such wait status */
	_Atomic int stop;
	_Atomic int ready;
	_Atomic int phase;	    /* test <-> tracker process */
	_Atomic uint64_t kcollects; /* collects by a tracker process */
	_Atomic int kerr;
	uintptr_t addr[NREG];
	size_t len[NREG];
	long res[16];
	uint64_t out[16];
	char msg[1024];
};

static struct ctl *ctl_new(void)
{
	struct ctl *c = mmap(NULL, sizeof(struct ctl), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return c == MAP_FAILED ? NULL : c;
}

/* what went wrong, for code that cannot call Check (forked processes) */
static char emsg[1024];
#define FAIL(...)                                                              \
	do {                                                                   \
		snprintf(emsg, sizeof(emsg), __VA_ARGS__);                     \
		return -1;                                                     \
	} while (0)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* poll @cond every millisecond for up to @ms; its last value */
#define WAIT_FOR(cond, ms)                                                     \
	({                                                                     \
		uint64_t end_ = now_ms() + (ms);                               \
		bool ok_;                                                      \
		while (!(ok_ = (cond)) && now_ms() < end_)                     \
			usleep(1000);                                          \
		ok_;                                                           \
	})

/* a child that dies with the process (thread) that forked it */
static pid_t fork_child(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
	}
	return pid;
}

static int wait_pid(pid_t pid, int *st, int flags)
{
	int r;

	do {
		r = waitpid(pid, st, flags);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* wait up to @ms for @pid to end; false if it did not */
static bool wait_exit(pid_t pid, int ms, int *st)
{
	return WAIT_FOR(wait_pid(pid, st, WNOHANG) == pid, (uint64_t)ms);
}

static void kill_reap(pid_t pid)
{
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	wait_pid(pid, &st, 0);
}

static void pin_cpu(int idx)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (n < 1)
		return;
	CPU_ZERO(&set);
	CPU_SET(idx % n, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

/* does @pid hold a userfaultfd?  1, 0, or -1 if it is gone */
static int has_uffd(pid_t pid)
{
	char path[64], link[128], lpath[320];
	struct dirent *d;
	int found = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		ssize_t n;

		if (d->d_name[0] == '.')
			continue;
		snprintf(lpath, sizeof(lpath), "%s/%s", path, d->d_name);
		n = readlink(lpath, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strcmp(link, "anon_inode:[userfaultfd]"))
			found = 1;
	}
	closedir(dir);
	return found;
}

/* the state letter of /proc/PID/task/TID/stat (or PID/stat), 0 if gone */
static char task_state(pid_t pid, pid_t tid)
{
	char path[96], buf[512], *c;
	char st = 0;
	FILE *f;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid,
			 (int)tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		c = strrchr(buf, ')');
		if (c && c[1] == ' ')
			st = c[2];
	}
	fclose(f);
	return st;
}

/* the TracerPid of /proc/PID/status, -1 if unreadable */
static int tracer_of(pid_t pid)
{
	char path[64], line[128];
	int tp = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "TracerPid:", 10))
			tp = atoi(line + 10);
	fclose(f);
	return tp;
}

/* wait up to DEADLINE_MS for end of file on @fd (every writer closed it,
 * by exec for a close-on-exec one); false on data or timeout */
static bool wait_eof(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char ch;

	if (poll(&pf, 1, DEADLINE_MS) != 1)
		return false;
	return read(fd, &ch, 1) == 0;
}

/* does /proc/PID/exe name @what? */
static bool exe_is(pid_t pid, const char *what)
{
	char path[64], exe[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	return strstr(exe, what) != NULL;
}

/* ---- writer targets ------------------------------------------------------ */

#define W_STORES 1u   /* threads store counters at random places */
#define W_READ 2u     /* threads read(2) from a pipe into the regions */
#define W_CLOSEFDS 4u /* a thread closes every descriptor >= 3, often */

struct wctx {
	struct ctl *c;
	int idx;
	int fd;
};

/* a 64-bit value no store wrote before: thread in the top byte */
static void *store_thread(void *arg)
{
	struct wctx *w = arg;
	struct ctl *c = w->c;
	uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->idx + 1), n = 0;
	size_t words = ps / 8;

	pin_cpu(w->idx);
	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		uint64_t r = t_rand(&rng);
		/* half of the stores into the big private region */
		unsigned int k = (r & 1) ? 0 : 1 + (unsigned int)((r >> 1) & 1);
		size_t page = (size_t)(r >> 8) % (c->len[k] / ps);
		volatile uint64_t *p = (uint64_t *)(c->addr[k] + page * ps);

		p[(r >> 40) % words] = ((uint64_t)(w->idx + 1) << 56) | ++n;
		atomic_store_explicit(&c->stores[w->idx], n,
				      memory_order_relaxed);
	}
	return NULL;
}

/* fills a pipe with counters, for the readers */
static void *feed_thread(void *arg)
{
	struct wctx *w = arg;
	uint64_t buf[512], n = 0;

	for (;;) {
		for (size_t i = 0; i < 512; i++)
			buf[i] = (0xfeULL << 56) | ++n;
		if (write(w->fd, buf, sizeof(buf)) < 0 && errno != EINTR)
			return NULL;
	}
}

/* read(2) from the pipe into the regions: the kernel writes there */
static void *read_thread(void *arg)
{
	struct wctx *w = arg;
	struct ctl *c = w->c;
	uint64_t rng = 0xabcdef12345ULL * (uint64_t)(w->idx + 1), n = 0;

	pin_cpu(w->idx);
	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		uint64_t r = t_rand(&rng);
		unsigned int k = (unsigned int)(r % NREG);
		size_t words = c->len[k] / 8;
		size_t off = (size_t)((r >> 8) % words) * 8;
		size_t len = 8 * (1 + (size_t)((r >> 40) % (3 * ps / 8)));
		ssize_t got;

		if (off + len > c->len[k])
			len = c->len[k] - off;
		got = read(w->fd, (char *)c->addr[k] + off, len);
		if (got > 0) {
			atomic_fetch_add(&c->kbytes, (uint64_t)got);
			atomic_store_explicit(&c->stores[w->idx], ++n,
					      memory_order_relaxed);
		}
	}
	return NULL;
}

static void *close_thread(void *arg)
{
	struct wctx *w = arg;
	struct ctl *c = w->c;

	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		if (!syscall(SYS_close_range, 3u, ~0u, 0u))
			atomic_fetch_add(&c->closes, 1);
		usleep(500);
	}
	return NULL;
}

/* map the regions: 64 MiB private, 4 MiB shared anonymous, 4 MiB memfd */
static void map_regions(struct ctl *c, size_t priv_mb)
{
	size_t len[NREG] = { priv_mb << 20, 4u << 20, 4u << 20 };
	int fd = memfd_create("pmt-remote", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)len[2]))
		_exit(10);
	for (int k = 0; k < NREG; k++) {
		int flags = k ? MAP_SHARED : MAP_PRIVATE;
		void *p = mmap(NULL, len[k], PROT_READ | PROT_WRITE,
			       flags | (k == 2 ? 0 : MAP_ANONYMOUS),
			       k == 2 ? fd : -1, 0);

		if (p == MAP_FAILED)
			_exit(11);
		c->addr[k] = (uintptr_t)p;
		c->len[k] = len[k];
	}
	close(fd);
}

/* the body of a writer target: never returns */
static void writer_target(struct ctl *c, unsigned int mode, int nthreads)
{
	struct wctx w[MAXTHR + 2];
	pthread_t th[MAXTHR + 2];
	int pfd[2], n = 0;

	map_regions(c, 64);
	if ((mode & W_READ) && pipe(pfd))
		_exit(12);
	for (int i = 0; i < nthreads && i < MAXTHR; i++) {
		w[n] = (struct wctx){ .c = c, .idx = i, .fd = pfd[0] };
		if (pthread_create(&th[n], NULL,
				   (mode & W_READ) ? read_thread : store_thread,
				   &w[n]))
			_exit(13);
		n++;
	}
	if (mode & W_READ) {
		w[n] = (struct wctx){ .c = c, .idx = MAXTHR, .fd = pfd[1] };
		if (pthread_create(&th[n], NULL, feed_thread, &w[n]))
			_exit(13);
		n++;
	}
	if (mode & W_CLOSEFDS) {
		w[n] = (struct wctx){ .c = c, .idx = MAXTHR + 1 };
		if (pthread_create(&th[n], NULL, close_thread, &w[n]))
			_exit(13);
		n++;
	}
	atomic_store(&c->ready, 1);
	while (!atomic_load(&c->stop))
		usleep(10000);
	_exit(0);
}

/* fork a writer target and wait until it runs; its pid, or -1 */
static pid_t spawn_writer(struct ctl *c, unsigned int mode, int nthreads)
{
	pid_t pid = fork_child();
	int st;

	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		writer_target(c, mode, nthreads);
	if (!WAIT_FOR(atomic_load(&c->ready) ||
			      wait_pid(pid, &st, WNOHANG) == pid,
		      DEADLINE_MS) ||
	    !atomic_load(&c->ready)) {
		kill_reap(pid);
		FAIL("the writer target did not start");
	}
	return pid;
}

static uint64_t total_stores(struct ctl *c)
{
	uint64_t n = 0;

	for (int i = 0; i < MAXTHR; i++)
		n += atomic_load(&c->stores[i]);
	return n;
}

/* ---- the shadow copy --------------------------------------------------- */

struct shadow {
	pid_t pid;
	uintptr_t addr[NREG];
	size_t len[NREG];
	char *copy[NREG];
	uint64_t rounds, pages, lost;
};

static int rv_read(pid_t pid, uintptr_t remote, char *local, size_t len)
{
	while (len) {
		struct iovec l = { local, len };
		struct iovec r = { (void *)remote, len };
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		local += n;
		remote += (size_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int shadow_init(struct shadow *sh, pid_t pid, const struct ctl *c)
{
	memset(sh, 0, sizeof(*sh));
	sh->pid = pid;
	for (int k = 0; k < NREG; k++) {
		sh->addr[k] = c->addr[k];
		sh->len[k] = c->len[k];
		sh->copy[k] = malloc(c->len[k]);
		if (!sh->copy[k])
			FAIL("out of memory");
	}
	return 0;
}

static void shadow_free(struct shadow *sh)
{
	for (int k = 0; k < NREG; k++)
		free(sh->copy[k]);
}

/* copy what of [s, e) lies in the regions from the target */
static int shadow_copy(struct shadow *sh, uintptr_t s, uintptr_t e)
{
	for (int k = 0; k < NREG; k++) {
		uintptr_t a = s > sh->addr[k] ? s : sh->addr[k];
		uintptr_t b = e < sh->addr[k] + sh->len[k] ? e
							   : sh->addr[k] +
								     sh->len[k];
		int r;

		if (a >= b)
			continue;
		r = rv_read(sh->pid, a, sh->copy[k] + (a - sh->addr[k]), b - a);
		if (r)
			FAIL("process_vm_readv of %#lx..%#lx: %s",
			     (unsigned long)a, (unsigned long)b, strerror(-r));
	}
	return 0;
}

/* compare the stopped target's memory with the shadow: differing pages
 * are lost writes */
static int shadow_compare(struct shadow *sh)
{
	char first[256] = "";
	size_t fl = 0;

	sh->lost = 0;
	for (int k = 0; k < NREG; k++) {
		char *now = malloc(sh->len[k]);
		int r;

		if (!now)
			FAIL("out of memory");
		r = rv_read(sh->pid, sh->addr[k], now, sh->len[k]);
		if (r) {
			free(now);
			FAIL("process_vm_readv: %s", strerror(-r));
		}
		for (size_t i = 0; i < sh->len[k] / ps; i++) {
			if (!memcmp(now + i * ps, sh->copy[k] + i * ps, ps))
				continue;
			if (sh->lost++ < 8 && fl < sizeof(first) - 32)
				fl += (size_t)snprintf(first + fl,
						       sizeof(first) - fl,
						       " r%d:p%zu", k, i);
		}
		free(now);
	}
	if (sh->lost)
		printf("lost pages (region:page):%s%s\n", first,
		       sh->lost > 8 ? " ..." : "");
	return 0;
}

/* ---- one tracker (pmtrack_new with a pid) over a writer target -------- */

static int plain_collect(struct pmtrack *t, struct shadow *sh)
{
	struct pmtrack_run runs[256];

	for (int k = 0; k < NREG; k++) {
		uintptr_t cur = sh->addr[k], end = cur + sh->len[k];

		while (cur < end) {
			size_t n = 256;
			void *next = NULL;
			int r = pmtrack_collect_runs(t, (void *)cur, end - cur,
						     PMTRACK_COLLECT_RESET,
						     runs, &n, &next);

			if (r)
				FAIL("collect_runs: %s", strerror(-r));
			for (size_t i = 0; i < n; i++) {
				uintptr_t a = (uintptr_t)runs[i].addr;

				if (shadow_copy(sh, a, a + runs[i].len))
					return -1;
				sh->pages += runs[i].len / ps;
			}
			if ((uintptr_t)next <= cur)
				FAIL("collect_runs made no progress");
			cur = (uintptr_t)next;
		}
	}
	return 0;
}

#define REMOTE_CAPS                                                            \
	(PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET |                  \
	 PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_OTHER_PROCESS)

/*
 * Track writer target @pid for about @ms of RESET collect rounds, each
 * followed by copying the reported pages; then SIGSTOP it, collect once
 * more and count the pages that differ from the shadow (sh->lost).
 * The target is left stopped.  0, or -1 with emsg.
 */
static int plain_shadow(pid_t pid, struct ctl *c, unsigned int ms,
			struct shadow *sh)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .pid = pid);
	PMTRACK_OPTS(pmtrack_stats, st);
	struct pmtrack *t = NULL;
	uint64_t end;
	int r, ws;

	if (shadow_init(sh, pid, c))
		return -1;
	r = pmtrack_new(&o, &t);
	if (r)
		FAIL("pmtrack_new(pid %d): %s", (int)pid, strerror(-r));
	if (pmtrack_backend(t) != PMTRACK_BACKEND_PAGEMAP_SCAN ||
	    (pmtrack_caps(t) & REMOTE_CAPS) != REMOTE_CAPS) {
		snprintf(emsg, sizeof(emsg), "backend %s, caps %#x",
			 pmtrack_backend_name(pmtrack_backend(t)),
			 pmtrack_caps(t));
		goto fail;
	}
	if (pmtrack_get_stats(t, &st) || st.injections != 1 ||
	    !st.inject_stop_ns) {
		snprintf(emsg, sizeof(emsg),
			 "stats: injections %llu (1 expected), inject_stop_ns "
			 "%llu (> 0 expected)",
			 (unsigned long long)st.injections,
			 (unsigned long long)st.inject_stop_ns);
		goto fail;
	}
	c->out[8] = st.inject_stop_ns;
	for (int k = 0; k < NREG; k++) {
		r = pmtrack_watch(t, (void *)sh->addr[k], sh->len[k]);
		if (r) {
			snprintf(emsg, sizeof(emsg), "watch region %d: %s", k,
				 strerror(-r));
			goto fail;
		}
		/* pages start clean: what is there now, or later reported */
		if (shadow_copy(sh, sh->addr[k], sh->addr[k] + sh->len[k]))
			goto fail;
	}
	end = now_ms() + ms;
	do {
		if (plain_collect(t, sh))
			goto fail;
		sh->rounds++;
	} while (now_ms() < end);
	/* stop it, and the last round */
	kill(pid, SIGSTOP);
	if (wait_pid(pid, &ws, WUNTRACED) != pid || !WIFSTOPPED(ws)) {
		snprintf(emsg, sizeof(emsg), "the target did not stop (%#x)",
			 ws);
		goto fail;
	}
	if (plain_collect(t, sh))
		goto fail;
	sh->rounds++;
	if (shadow_compare(sh))
		goto fail;
	pmtrack_free(t);
	return 0;
fail:
	pmtrack_free(t);
	return -1;
}

/* ---- whole-process tracking over a writer target ----------------------- */

struct pcopy {
	struct shadow *sh;
	int err;
};

static int pcopy_fn(void *arg, const struct pmtrack_proc_report *r)
{
	struct pcopy *pc = arg;

	if (r->pid != pc->sh->pid)
		return 0;
	for (size_t i = 0; i < r->nruns; i++) {
		if (shadow_copy(pc->sh, r->runs[i].start, r->runs[i].end)) {
			pc->err = -EIO;
			return -EIO;
		}
		pc->sh->pages += (r->runs[i].end - r->runs[i].start) / ps;
	}
	return 0;
}

/* plain_shadow() with pmtrack_proc (@flags) and its freeze; the first
 * collect reports everything in full, which makes the first copy */
static int proc_shadow(pid_t pid, struct ctl *c, unsigned int flags,
		       unsigned int ms, struct shadow *sh)
{
	PMTRACK_OPTS(pmtrack_proc_opts, o, .flags = flags);
	struct pmtrack_proc *p = NULL;
	struct pcopy pc = { .sh = sh };
	uint64_t end;
	int r;

	emsg[0] = 0;
	if (shadow_init(sh, pid, c))
		return -1;
	r = pmtrack_proc_new(pid, &o, &p);
	if (r)
		FAIL("pmtrack_proc_new(%d, flags %#x): %s", (int)pid, flags,
		     strerror(-r));
	end = now_ms() + ms;
	do {
		r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, pcopy_fn,
					 &pc);
		if (r) {
			snprintf(emsg + strlen(emsg), 64, " (collect: %s)",
				 strerror(-r));
			goto fail;
		}
		sh->rounds++;
	} while (now_ms() < end);
	r = pmtrack_proc_freeze(p);
	if (r) {
		snprintf(emsg, sizeof(emsg), "freeze: %s", strerror(-r));
		goto fail;
	}
	r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, pcopy_fn, &pc);
	if (r) {
		snprintf(emsg + strlen(emsg), 64, " (collect: %s)",
			 strerror(-r));
		goto fail;
	}
	sh->rounds++;
	if (shadow_compare(sh))
		goto fail;
	r = pmtrack_proc_thaw(p);
	if (r) {
		snprintf(emsg, sizeof(emsg), "thaw: %s", strerror(-r));
		goto fail;
	}
	pmtrack_proc_free(p);
	return 0;
fail:
	pmtrack_proc_free(p);
	return -1;
}

/* ---- 1. basic --------------------------------------------------------- */

/* pmtrack_new(pid) on a child whose three threads store (_i 0) or read(2)
 * from a pipe into the regions (_i 1), on both CPUs */
START_TEST(remote_basic)
{
	unsigned int mode = _i ? W_READ : W_STORES;
	struct ctl *c = ctl_new();
	uint64_t stores;
	struct shadow sh;
	pid_t pid;
	int r;

	ck_assert_ptr_nonnull(c);
	pid = spawn_writer(c, mode, 3);
	ck_assert_msg(pid > 0, "%s", emsg);
	r = plain_shadow(pid, c, 2000, &sh);
	stores = total_stores(c);
	kill_reap(pid);
	ck_assert_msg(r == 0, "%s", emsg);
	printf("basic/%s: %llu %s (%llu bytes read), %llu rounds, %llu "
	       "pages reported, target stopped %llu ns for the injection, "
	       "%llu lost pages\n",
	       _i ? "read" : "stores", (unsigned long long)stores,
	       _i ? "reads" : "stores",
	       (unsigned long long)atomic_load(&c->kbytes),
	       (unsigned long long)sh.rounds, (unsigned long long)sh.pages,
	       (unsigned long long)c->out[8], (unsigned long long)sh.lost);
	ck_assert_msg(sh.lost == 0, "%llu pages lost",
		      (unsigned long long)sh.lost);
	ck_assert_uint_gt(stores, 0);
	if (mode == W_READ)
		ck_assert_uint_gt(atomic_load(&c->kbytes), 0);
	ck_assert_uint_gt(sh.rounds, 1);
	shadow_free(&sh);
}
END_TEST

/* ---- 2. errors -------------------------------------------------------- */

static int nop_fn(void *arg, const struct pmtrack_proc_report *r)
{
	(void)arg;
	(void)r;
	return 0;
}

static pid_t sleeper(void)
{
	pid_t pid = fork_child();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

START_TEST(remote_errors)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN);
	PMTRACK_OPTS(pmtrack_proc_opts, po);
	PMTRACK_OPTS(pmtrack_proc_opts, pc, .flags = PMTRACK_PROC_CHILDREN);
	struct pmtrack_proc *p = (void *)1;
	struct pmtrack *t = (void *)1;
	siginfo_t si;
	pid_t dead, z, live;
	int r, st;

	/* a process that does not exist: a child reaped */
	dead = fork();
	ck_assert_int_ge(dead, 0);
	if (dead == 0)
		_exit(0);
	ck_assert_int_eq(wait_pid(dead, &st, 0), dead);
	o.pid = dead;
	ck_assert_int_eq(pmtrack_new(&o, &t), -ESRCH);
	ck_assert_ptr_null(t);
	o.backend = PMTRACK_BACKEND_AUTO;
	t = (void *)1;
	ck_assert_int_eq(pmtrack_new(&o, &t), -ESRCH);
	ck_assert_ptr_null(t);
	ck_assert_int_eq(pmtrack_proc_new(dead, NULL, &p), -ESRCH);
	ck_assert_ptr_null(p);
	p = (void *)1;
	ck_assert_int_eq(pmtrack_proc_new(dead, &pc, &p), -ESRCH);
	ck_assert_ptr_null(p);

	/* the caller, and pids that are none */
	p = (void *)1;
	ck_assert_int_eq(pmtrack_proc_new(getpid(), NULL, &p), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(pmtrack_proc_new(getpid(), &pc, &p), -EINVAL);
	ck_assert_int_eq(pmtrack_proc_new(0, NULL, &p), -EINVAL);
	ck_assert_int_eq(pmtrack_proc_new(-1, NULL, &p), -EINVAL);

	/* a zombie */
	z = fork();
	ck_assert_int_ge(z, 0);
	if (z == 0)
		_exit(0);
	ck_assert_int_eq(waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT), 0);
	ck_assert_int_eq(task_state(z, 0), 'Z');
	p = (void *)1;
	ck_assert_int_eq(pmtrack_proc_new(z, NULL, &p), -ESRCH);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(pmtrack_proc_new(z, &pc, &p), -ESRCH);
	o.pid = z;
	o.backend = PMTRACK_BACKEND_PAGEMAP_SCAN;
	r = pmtrack_new(&o, &t);
	printf("errors: pmtrack_new on a zombie: %s\n", strerror(-r));
	ck_assert_msg(r == -ESRCH || r == -EPERM || r == -EACCES,
		      "pmtrack_new on a zombie: %s", strerror(-r));
	ck_assert_ptr_null(t);
	ck_assert_int_eq(wait_pid(z, &st, 0), z);

	/* bad options, for a process that exists */
	live = sleeper();
	po.flags = 1u << 7;
	ck_assert_int_eq(pmtrack_proc_new(live, &po, &p), -EINVAL);
	po.flags = ~0u;
	ck_assert_int_eq(pmtrack_proc_new(live, &po, &p), -EINVAL);
	po.flags = 0;
	po.backend = PMTRACK_BACKEND_UFFD_WP;
	ck_assert_int_eq(pmtrack_proc_new(live, &po, &p), -EINVAL);
	po.backend = PMTRACK_BACKEND_MPROTECT;
	ck_assert_int_eq(pmtrack_proc_new(live, &po, &p), -EINVAL);
	po.backend = (enum pmtrack_backend)99;
	ck_assert_int_eq(pmtrack_proc_new(live, &po, &p), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(pmtrack_proc_new(live, NULL, NULL), -EINVAL);
	/* and for the calls of one that works */
	r = pmtrack_proc_new(live, NULL, &p);
	ck_assert_msg(r == 0, "pmtrack_proc_new: %s", strerror(-r));
	ck_assert_int_eq(pmtrack_proc_collect(p, 1u << 5, nop_fn, NULL),
			 -EINVAL);
	ck_assert_int_eq(pmtrack_proc_collect(p, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_proc_thaw(p), -EALREADY);
	{
		int pids[1];
		size_t n = 0;

		ck_assert_int_eq(pmtrack_proc_pids(p, pids, &n), -ENOSPC);
		ck_assert_uint_eq(n, 1);
		n = 1;
		ck_assert_int_eq(pmtrack_proc_pids(p, pids, &n), 0);
		ck_assert_int_eq(pids[0], live);
	}
	ck_assert_int_eq(pmtrack_proc_collect(p, 0, nop_fn, NULL), 0);
	pmtrack_proc_free(p);
	kill_reap(live);
}
END_TEST

/* a target that maps 16 pages (their address in *@page), writes them,
 * then waits for a byte on @cmd and execs /bin/sleep */
static pid_t exec_sleep_target(int cmd, uintptr_t *page)
{
	int pfd[2];
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork_child();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *m = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char ch;

		close(pfd[0]);
		if (m == MAP_FAILED)
			_exit(10);
		memset(m, 1, 16 * ps);
		if (write(pfd[1], &m, sizeof(m)) != sizeof(m))
			_exit(11);
		while (read(cmd, &ch, 1) < 0 && errno == EINTR)
			;
		m[0] = 2;
		execl("/bin/sleep", "sleep", "1000", (char *)NULL);
		_exit(12);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], page, sizeof(*page)), sizeof(*page));
	close(pfd[0]);
	return pid;
}

/* a tracker of a process that exec'd: -ESRCH from every call, no crash */
START_TEST(remote_exec_esrch)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN);
	struct pmtrack_bitmap *bm = NULL;
	struct pmtrack_run runs[4];
	void *pages[4], *next;
	int cmd[2], sync[2], r;
	uintptr_t m;
	size_t n;
	pid_t pid;
	struct pmtrack *t = NULL;

	ck_assert_int_eq(pipe(cmd), 0);
	ck_assert_int_eq(pipe2(sync, O_CLOEXEC), 0);
	pid = exec_sleep_target(cmd[0], &m);
	close(cmd[0]);
	o.pid = pid;
	r = pmtrack_new(&o, &t);
	ck_assert_msg(r == 0, "pmtrack_new: %s", strerror(-r));
	ck_assert_int_eq(pmtrack_watch(t, (void *)m, 8 * ps), 0);
	n = 4;
	ck_assert_int_eq(pmtrack_collect_runs(t, (void *)m, 8 * ps,
					      PMTRACK_COLLECT_RESET, runs, &n,
					      NULL),
			 0);
	ck_assert_uint_eq(n, 0);
	/* exec: the close-on-exec end the target holds closes */
	close(sync[1]);
	ck_assert_int_eq(write(cmd[1], "x", 1), 1);
	ck_assert_msg(wait_eof(sync[0]), "the target did not exec");
	close(sync[0]);
	ck_assert_msg(WAIT_FOR(exe_is(pid, "sleep"), DEADLINE_MS),
		      "the target did not exec /bin/sleep");
	n = 4;
	r = pmtrack_collect_runs(t, (void *)m, 8 * ps, PMTRACK_COLLECT_RESET,
				 runs, &n, &next);
	ck_assert_msg(r == -ESRCH, "collect_runs after exec: %s",
		      strerror(-r));
	n = 4;
	r = pmtrack_collect_pages(t, (void *)m, 8 * ps, 0, pages, &n, NULL);
	ck_assert_msg(r == -ESRCH, "collect_pages after exec: %s",
		      strerror(-r));
	ck_assert_int_eq(pmtrack_bitmap_new(&bm), 0);
	r = pmtrack_collect_bitmap(t, (void *)m, 8 * ps, PMTRACK_COLLECT_RESET,
				   bm);
	ck_assert_msg(r == -ESRCH, "collect_bitmap after exec: %s",
		      strerror(-r));
	pmtrack_bitmap_free(bm);
	r = pmtrack_reset(t, (void *)m, 8 * ps);
	ck_assert_msg(r == -ESRCH, "reset after exec: %s", strerror(-r));
	r = pmtrack_watch(t, (void *)(m + 8 * ps), 8 * ps);
	ck_assert_msg(r == -ESRCH, "watch after exec: %s", strerror(-r));
	pmtrack_free(t);
	/* and the target is none the worse */
	ck_assert_int_eq(kill(pid, 0), 0);
	ck_assert_int_ne(task_state(pid, 0), 'Z');
	ck_assert_int_eq(has_uffd(pid), 0);
	close(cmd[1]);
	kill_reap(pid);
}
END_TEST

/* ---- a target that forks, and trackers in processes of their own ------- */

/* a child of the forker: writes 16 pages of each shared region, and
 * checks that it holds no userfaultfd (exit 3 if it does) */
static void forked_child(struct ctl *c)
{
	uint64_t me = (uint64_t)getpid() << 32;

	for (int k = 1; k < NREG; k++) {
		uint64_t page0 = ((uint64_t)getpid() * 16) % (c->len[k] / ps - 16);

		for (uint64_t i = 0; i < 16; i++)
			*(volatile uint64_t *)(c->addr[k] +
					       (page0 + i) * ps) = me | i;
	}
	_exit(has_uffd(getpid()) > 0 ? 3 : 0);
}

/* store into the regions and fork a child every @every_us microseconds
 * (0: as fast as it can), waiting for each; never returns */
static void forker_target(struct ctl *c, unsigned int every_us)
{
	uint64_t rng = 0x1234567ULL, n = 0;
	size_t words = ps / 8;

	map_regions(c, 16);
	atomic_store(&c->ready, 1);
	while (!atomic_load(&c->stop)) {
		struct timespec t0, t1;
		pid_t ch;
		int st;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {
			for (int i = 0; i < 256; i++) {
				uint64_t r = t_rand(&rng);
				unsigned int k = (unsigned int)(r % NREG);
				size_t page = (size_t)(r >> 8) %
					      (c->len[k] / ps);

				((volatile uint64_t *)(c->addr[k] +
						       page * ps))[(r >> 40) %
								   words] = ++n;
			}
			atomic_store_explicit(&c->stores[0], n,
					      memory_order_relaxed);
			clock_gettime(CLOCK_MONOTONIC, &t1);
		} while ((uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000u +
				 (uint64_t)(t1.tv_nsec - t0.tv_nsec) / 1000u <
			 every_us);
		ch = fork();
		if (ch == 0)
			forked_child(c);
		if (ch < 0 || wait_pid(ch, &st, 0) != ch) {
			st = -1;
		} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			atomic_fetch_add(&c->forks, 1);
			continue;
		}
		if (!atomic_fetch_add(&c->bad, 1))
			atomic_store(&c->bad_status, st);
		atomic_fetch_add(&c->forks, 1);
	}
	_exit(0);
}

/* record a failure of a forked helper process and end it */
static void die(struct ctl *c, int r)
{
	snprintf(c->msg, sizeof(c->msg), "%s", emsg);
	atomic_store(&c->kerr, r ? r : -1);
	_exit(1);
}

/*
 * A tracker process of forker @g until it is killed: pmtrack_new (0),
 * pmtrack_proc (1) or pmtrack_proc with children (2), collecting in a
 * loop; the pmtrack_proc ones freeze the target for every other collect,
 * so the kill finds them frozen or not.  c->phase = 1 once tracking.
 */
static void killed_tracker(struct ctl *c, pid_t g, int variant)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .pid = g);
	PMTRACK_OPTS(pmtrack_proc_opts, po,
		     .flags = variant == 2 ? PMTRACK_PROC_CHILDREN : 0);
	struct pmtrack_proc *p = NULL;
	struct pmtrack *t = NULL;
	struct shadow sh;
	int r;

	if (variant == 0) {
		r = pmtrack_new(&o, &t);
		if (r) {
			snprintf(emsg, sizeof(emsg), "pmtrack_new: %s",
				 strerror(-r));
			die(c, r);
		}
		if (shadow_init(&sh, g, c))
			die(c, -ENOMEM);
		for (int k = 0; k < NREG; k++) {
			r = pmtrack_watch(t, (void *)c->addr[k], c->len[k]);
			if (r) {
				snprintf(emsg, sizeof(emsg), "watch: %s",
					 strerror(-r));
				die(c, r);
			}
		}
		for (;;) {
			if (plain_collect(t, &sh))
				die(c, -EIO);
			atomic_fetch_add(&c->kcollects, 1);
			atomic_store(&c->phase, 1);
		}
	}
	r = pmtrack_proc_new(g, &po, &p);
	if (r) {
		snprintf(emsg, sizeof(emsg), "pmtrack_proc_new: %s",
			 strerror(-r));
		die(c, r);
	}
	for (uint64_t i = 0;; i++) {
		if (i & 1) {
			r = pmtrack_proc_freeze(p);
			if (r) {
				snprintf(emsg, sizeof(emsg), "freeze: %s",
					 strerror(-r));
				die(c, r);
			}
		}
		r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, nop_fn,
					 NULL);
		if (r) {
			snprintf(emsg, sizeof(emsg), "collect: %s",
				 strerror(-r));
			die(c, r);
		}
		if (i & 1) {
			r = pmtrack_proc_thaw(p);
			if (r) {
				snprintf(emsg, sizeof(emsg), "thaw: %s",
					 strerror(-r));
				die(c, r);
			}
		}
		atomic_fetch_add(&c->kcollects, 1);
		atomic_store(&c->phase, 1);
	}
}

/* ---- 3. tracker killed ------------------------------------------------- */

/* count, into *seen, the times @pid was found holding a userfaultfd */
static bool no_uffd(pid_t pid, unsigned int *seen, unsigned int *polls)
{
	(*polls)++;
	if (has_uffd(pid) > 0)
		(*seen)++;
	return true;
}

START_TEST(tracker_killed)
{
	static const char *const names[] = { "pmtrack_new", "pmtrack_proc",
					     "pmtrack_proc+CHILDREN" };
	unsigned int seen = 0, polls = 0;
	struct ctl *c = ctl_new();
	uint64_t f0, tracked = 0, after = 0;
	pid_t g, k;
	int st;

	ck_assert_ptr_nonnull(c);
	g = fork_child();
	ck_assert_int_ge(g, 0);
	if (g == 0)
		forker_target(c, 2000);
	ck_assert_msg(WAIT_FOR(atomic_load(&c->ready), DEADLINE_MS),
		      "the target did not start");
	for (int cycle = 0; cycle < 3; cycle++) {
		atomic_store(&c->phase, 0);
		atomic_store(&c->kcollects, 0);
		k = fork_child();
		ck_assert_int_ge(k, 0);
		if (k == 0)
			killed_tracker(c, g, _i);
		ck_assert_msg(WAIT_FOR(atomic_load(&c->phase) ||
					       atomic_load(&c->kerr),
				       DEADLINE_MS),
			      "%s: the tracker did not start", names[_i]);
		ck_assert_msg(!atomic_load(&c->kerr), "%s: tracker: %s",
			      names[_i], c->msg);
		/* tracked while it forks */
		f0 = atomic_load(&c->forks);
		ck_assert_msg(WAIT_FOR(no_uffd(g, &seen, &polls) &&
					       atomic_load(&c->kcollects) >=
						       20 &&
					       atomic_load(&c->forks) >= f0 + 30,
				       DEADLINE_MS),
			      "%s: %llu collects, %llu forks while tracked%s%s",
			      names[_i],
			      (unsigned long long)atomic_load(&c->kcollects),
			      (unsigned long long)(atomic_load(&c->forks) - f0),
			      atomic_load(&c->kerr) ? ": " : "", c->msg);
		tracked += atomic_load(&c->forks) - f0;
		ck_assert_int_eq(kill(k, SIGKILL), 0);
		ck_assert_int_eq(wait_pid(k, &st, 0), k);
		ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
			      "the tracker ended with %#x, not by SIGKILL: %s",
			      st, c->msg);
		ck_assert_int_eq(tracer_of(g), 0);
		/* and the target goes on */
		f0 = atomic_load(&c->forks);
		ck_assert_msg(WAIT_FOR(no_uffd(g, &seen, &polls) &&
					       atomic_load(&c->forks) >= f0 + 50,
				       DEADLINE_MS),
			      "%s: the target hangs after its tracker was "
			      "killed: %llu forks, state %c",
			      names[_i],
			      (unsigned long long)(atomic_load(&c->forks) - f0),
			      task_state(g, 0));
		after += atomic_load(&c->forks) - f0;
		ck_assert_msg(!atomic_load(&c->bad),
			      "%s: %llu children of the target ended badly "
			      "(first: wait status %#x)",
			      names[_i],
			      (unsigned long long)atomic_load(&c->bad),
			      atomic_load(&c->bad_status));
	}
	atomic_store(&c->stop, 1);
	ck_assert_msg(wait_exit(g, DEADLINE_MS, &st), "the target hangs");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the target ended with %#x", st);
	printf("killed/%s: 3 trackers killed; %llu forks while tracked, %llu "
	       "after, %llu stores; userfaultfd in the target %u times in %u "
	       "looks\n",
	       names[_i], (unsigned long long)tracked,
	       (unsigned long long)after,
	       (unsigned long long)atomic_load(&c->stores[0]), seen, polls);
	ck_assert_msg(seen == 0, "the target held a userfaultfd %u times",
		      seen);
	ck_assert_uint_gt(polls, 0);
}
END_TEST

/* ---- 4. unprivileged ------------------------------------------------- */

static bool perm_err(long r)
{
	return r == -EPERM || r == -EACCES;
}

/* as uid 65534: against root's @root_target (c->res[0..3], then
 * c->phase = 1), then tracking its own children; 0 or -1 with emsg */
static int unpriv_main(struct ctl *c, pid_t root_target)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .pid = root_target);
	PMTRACK_OPTS(pmtrack_proc_opts, pc, .flags = PMTRACK_PROC_CHILDREN);
	struct pmtrack_proc *p = NULL;
	struct pmtrack *t = NULL;
	struct ctl *w = ctl_new();
	struct shadow sh;
	pid_t pid;
	int r;

	if (!w)
		FAIL("out of memory");
	if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		FAIL("cannot become uid %d: %s", NOBODY, strerror(errno));
	/* what a program exec'd by this user would be */
	prctl(PR_SET_DUMPABLE, 1);

	c->res[0] = pmtrack_new(&o, &t);
	pmtrack_free(t);
	t = NULL;
	o.backend = PMTRACK_BACKEND_AUTO;
	c->res[1] = pmtrack_new(&o, &t);
	pmtrack_free(t);
	c->res[2] = pmtrack_proc_new(root_target, NULL, &p);
	pmtrack_proc_free(p);
	p = NULL;
	c->res[3] = pmtrack_proc_new(root_target, &pc, &p);
	pmtrack_proc_free(p);
	atomic_store(&c->phase, 1);

	/* its own children: stores, then read(2) */
	for (int m = 0; m < 2; m++) {
		memset(w, 0, sizeof(*w));
		pid = spawn_writer(w, m ? W_READ : W_STORES, 3);
		if (pid < 0)
			return -1;
		r = plain_shadow(pid, w, 1500, &sh);
		c->out[4 * m + 2] = m ? atomic_load(&w->kbytes)
				      : total_stores(w);
		kill_reap(pid);
		if (r)
			return -1;
		c->out[4 * m] = sh.rounds;
		c->out[4 * m + 1] = sh.lost;
		shadow_free(&sh);
	}
	/* a whole process with its children */
	memset(w, 0, sizeof(*w));
	pid = spawn_writer(w, W_STORES, 2);
	if (pid < 0)
		return -1;
	r = proc_shadow(pid, w, PMTRACK_PROC_CHILDREN, 1500, &sh);
	c->out[10] = total_stores(w);
	kill_reap(pid);
	if (r)
		return -1;
	c->out[8] = sh.rounds;
	c->out[9] = sh.lost;
	shadow_free(&sh);
	return 0;
}

START_TEST(unprivileged)
{
	static const char *const what[] = {
		"pmtrack_new (pagemap-scan)", "pmtrack_new (auto)",
		"pmtrack_proc_new", "pmtrack_proc_new (CHILDREN)"
	};
	struct ctl *c = ctl_new(), *rc = ctl_new();
	pid_t root_g, u;
	int st;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(rc);
	root_g = spawn_writer(rc, W_STORES, 1);
	ck_assert_msg(root_g > 0, "%s", emsg);
	u = fork_child();
	ck_assert_int_ge(u, 0);
	if (u == 0) {
		if (unpriv_main(c, root_g)) {
			snprintf(c->msg, sizeof(c->msg), "%s", emsg);
			_exit(1);
		}
		_exit(0);
	}
	/* refused, and promptly: not after the deadline */
	ck_assert_msg(WAIT_FOR(atomic_load(&c->phase) || c->msg[0],
			       DEADLINE_MS),
		      "uid %d tracking root's process: no answer (hung)",
		      NOBODY);
	ck_assert_msg(atomic_load(&c->phase), "%s", c->msg);
	for (int i = 0; i < 4; i++) {
		printf("unprivileged: %s of root's process: %s\n", what[i],
		       strerror((int)-c->res[i]));
		ck_assert_msg(perm_err(c->res[i]),
			      "%s of root's process as uid %d: %ld (%s), not "
			      "-EPERM or -EACCES",
			      what[i], NOBODY, c->res[i],
			      strerror((int)-c->res[i]));
	}
	ck_assert_msg(wait_exit(u, 10 * DEADLINE_MS, &st),
		      "tracking as uid %d hangs", NOBODY);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "as uid %d (status %#x): %s", NOBODY, st, c->msg);
	printf("unprivileged: stores: %llu stores, %llu rounds, %llu lost "
	       "pages; read(2): %llu bytes, %llu rounds, %llu lost pages; "
	       "pmtrack_proc with children: %llu stores, %llu rounds, %llu "
	       "lost pages (vm.unprivileged_userfaultfd=%ld)\n",
	       (unsigned long long)c->out[2], (unsigned long long)c->out[0],
	       (unsigned long long)c->out[1], (unsigned long long)c->out[6],
	       (unsigned long long)c->out[4], (unsigned long long)c->out[5],
	       (unsigned long long)c->out[10], (unsigned long long)c->out[8],
	       (unsigned long long)c->out[9],
	       t_read_long("/proc/sys/vm/unprivileged_userfaultfd"));
	ck_assert_uint_eq(c->out[1], 0);
	ck_assert_uint_eq(c->out[5], 0);
	ck_assert_uint_eq(c->out[9], 0);
	ck_assert_uint_gt(c->out[2], 0);
	ck_assert_uint_gt(c->out[6], 0);
	kill_reap(root_g);
}
END_TEST

/* ---- main --------------------------------------------------------------- */

struct tcase_def {
	const char *name;
	void (*add)(TCase *tc);
};

static void add_basic(TCase *tc)
{
	tcase_add_loop_test(tc, remote_basic, 0, 2);
}

static void add_errors(TCase *tc)
{
	tcase_add_test(tc, remote_errors);
	tcase_add_test(tc, remote_exec_esrch);
}

static void add_killed(TCase *tc)
{
	tcase_add_loop_test(tc, tracker_killed, 0, 3);
}

static void add_unprivileged(TCase *tc)
{
	tcase_add_test(tc, unprivileged);
}

static const struct tcase_def cases[] = {
	{ "basic", add_basic },
	{ "errors", add_errors },
	{ "killed", add_killed },
	{ "unprivileged", add_unprivileged },
};

/* can this machine track another process with pagemap-scan at all? */
static int can_track_remote(void)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN);
	struct pmtrack *t = NULL;
	pid_t pid;
	int r, st;

	r = t_need(PMTRACK_FEAT_PAGEMAP_SCAN,
		   "tracking another process needs PAGEMAP_SCAN (Linux 6.7+)");
	if (!r)
		r = t_need(PMTRACK_FEAT_UFFD_WP_ASYNC,
			   "tracking another process needs async userfaultfd "
			   "write-protect (Linux 6.7+)");
	if (r)
		return r;
	if (t_read_long("/proc/sys/kernel/yama/ptrace_scope") == 3) {
		printf("SKIP: ptrace is disabled (yama ptrace_scope 3)\n");
		return T_SKIP;
	}
	pid = fork_child();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		for (;;)
			pause();
	}
	o.pid = pid;
	r = pmtrack_new(&o, &t);
	pmtrack_free(t);
	kill(pid, SIGKILL);
	wait_pid(pid, &st, 0);
	if (r == -EOPNOTSUPP || r == -ENOSYS) {
		printf("SKIP: pagemap-scan cannot track another process here "
		       "(%s: no injection for this architecture, or no "
		       "pidfd_getfd)\n",
		       strerror(-r));
		return T_SKIP;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	Suite *s;
	int r;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	/* the backend is ours to choose: pagemap-scan, or AUTO for
	 * pmtrack_proc (which then picks it) */
	unsetenv("PMTRACK_BACKEND");
	r = can_track_remote();
	if (r)
		return r;
	if (only && !strcmp(only, "unprivileged") && geteuid() != 0) {
		printf("SKIP: switching to uid %d needs root\n", NOBODY);
		return T_SKIP;
	}
	s = suite_create("remote");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc;

		if (only && strcmp(only, cases[i].name))
			continue;
		tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 240);
		cases[i].add(tc);
		suite_add_tcase(s, tc);
	}
	return t_run(s);
}

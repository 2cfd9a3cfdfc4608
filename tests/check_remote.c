// SPDX-License-Identifier: MIT
/*
 * Tracking another process: pmtrack_new() with pmtrack_opts.pid and whole
 * processes (<pmtrack/process.h>), on the backend the library picks for
 * another process here (PMTRACK_BACKEND_AUTO): pagemap-scan, with a
 * userfaultfd injected into the target, where the kernel has PAGEMAP_SCAN
 * and the architecture an injection; else soft-dirty, which injects
 * nothing and whose resets lose racing writes: a plain tracker's target
 * is stopped around each RESET collect (the documented rule), a
 * pmtrack_proc stops its processes by itself.  Each test asserts what the
 * headers promise of that backend and prints which it ran with.
 * check_remote CASE runs one case (all without an argument):
 *   basic         a writing child: caps, stats, no lost write (stores by
 *                 three threads; read(2) into the memory)
 *   errors        no such process, the caller, a zombie, bad options,
 *                 forced backends, a target that exec'd
 *   killed        a tracker process killed with SIGKILL mid-run: the
 *                 target runs and forks on, never holding a userfaultfd
 *   killed_attach   ... while pmtrack_new(pid) has the target stopped
 *                 (pagemap-scan only: soft-dirty stops nothing: 77)
 *   killed_forking  ... (CHILDREN) while its target forks non-stop
 *   unprivileged  tracker and target as uid 65534 (root only: 77 else);
 *                 65534 against root's process gets -EPERM/-EACCES
 *   mappings      pmtrack_proc reports as mappings appear, grow, move,
 *                 go and turn read-only
 *   exec          the target execs: EXEC|NEW, every mapping FULL
 *   exec_frozen   the same, collecting while it is frozen
 *   children      PMTRACK_PROC_CHILDREN: exited and living children's
 *                 writes; a fork storm, tracked and after free
 *   attach_forking  CHILDREN attaching to a process in a fork loop
 *   freeze        pmtrack_proc_freeze/thaw as the target's parent sees it
 *   thread_churn  attach and freeze a process whose threads (or
 *                 children) come and go
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
#include <limits.h>
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
#include <sys/resource.h>
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

/*
 * The backend pmtrack_new(pid) and pmtrack_proc_new() must pick here for
 * another process (AUTO), as the probes say (main): pagemap-scan where it
 * can inject into a process, else soft-dirty.  sd: it is soft-dirty.
 */
static enum pmtrack_backend rbackend;
static bool sd;

static const char *bn(void)
{
	return pmtrack_backend_name(rbackend);
}

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
	_Atomic int hold, held;	  /* the forker pauses while hold is set */
	_Atomic uint64_t forkerr; /* fork() failed */
	_Atomic int forkerrno;	  /* the first time, with this */
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
	return (int)t_status_long(pid, "TracerPid:");
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

/* does /proc/PID/exe name program @what (after symbolic links: sleep
 * may be busybox)? */
static bool exe_is(pid_t pid, const char *what)
{
	char path[64], exe[PATH_MAX], want[PATH_MAX];
	ssize_t n;

	if (!realpath(what, want))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	return !strcmp(exe, want);
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

/*
 * Stores of 64-bit values no store wrote before (thread in the top byte).
 * Most go to a hot set (the first HOT pages of each region), which every
 * round reports; one in COLD_EVERY sweeps through all the pages, so most
 * pages are written once or twice in a run: a write lost there is never
 * covered by a later report of the same page, and shows.
 */
#define HOT 64
#define COLD_EVERY 4096
static void *store_thread(void *arg)
{
	struct wctx *w = arg;
	struct ctl *c = w->c;
	uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->idx + 1), n = 0;
	size_t words = ps / 8, total = 0, cold = (size_t)w->idx * 1237;

	for (int k = 0; k < NREG; k++)
		total += c->len[k] / ps;
	pin_cpu(w->idx);
	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		uint64_t r = t_rand(&rng);
		unsigned int k = (unsigned int)((r >> 1) % NREG);
		size_t page = (size_t)(r >> 8) % HOT;
		volatile uint64_t *p;

		if (!(r % COLD_EVERY)) {
			page = (cold++ * 7) % total;
			for (k = 0; page >= c->len[k] / ps; k++)
				page -= c->len[k] / ps;
		}
		p = (uint64_t *)(c->addr[k] + page * ps);
		/* several threads store to the same words on purpose: a
		 * relaxed atomic store, so that ThreadSanitizer (which the
		 * target inherits in its builds) does not call it a race */
		__atomic_store_n(&p[(r >> 40) % words],
				 ((uint64_t)(w->idx + 1) << 56) | ++n,
				 __ATOMIC_RELAXED);
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
	uint64_t stops; /* of the target around collects (plain_shadow) */
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
		uintptr_t b = e < sh->addr[k] + sh->len[k]
				      ? e
				      : sh->addr[k] + sh->len[k];
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
	if (sh->lost) {
		printf("lost pages (region:page):%s%s\n", first,
		       sh->lost > 8 ? " ..." : "");
		fflush(stdout);
	}
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

/* what pmtrack_new(pid) must give on pagemap-scan, and what soft-dirty
 * must have and lack (pmtrack.h, PMTRACK_CAP_*) */
#define REMOTE_CAPS                                                            \
	(PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET |                  \
	 PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_OTHER_PROCESS)
#define SD_CAPS (PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_OTHER_PROCESS)
#define SD_NOT_CAPS (PMTRACK_CAP_ATOMIC_RESET | PMTRACK_CAP_RANGE_RESET)

/*
 * Without PMTRACK_CAP_ATOMIC_RESET (soft-dirty) a write racing with a
 * reset may be lost, and the header's rule is to stop the target around
 * resets: with SIGSTOP (the target is the caller's child) or with
 * pmtrack_proc_freeze().  Where the reset is atomic the target runs on.
 */
enum stopby { BY_SIGSTOP, BY_FREEZE };
static const char *const stopby_name[] = { "SIGSTOP", "pmtrack_proc_freeze" };

struct stopper {
	enum stopby by;
	bool on; /* the tracker's resets are not atomic: stop */
	pid_t pid;
	struct pmtrack_proc *p; /* BY_FREEZE */
	uint64_t stops;
};

static int stopper_init(struct stopper *s, enum stopby by, pid_t pid,
			const struct pmtrack *t)
{
	int r;

	*s = (struct stopper){ .by = by, .pid = pid };
	s->on = !(pmtrack_caps(t) & PMTRACK_CAP_ATOMIC_RESET);
	if (!s->on || by != BY_FREEZE)
		return 0;
	r = pmtrack_proc_new(pid, NULL, &s->p);
	if (r)
		FAIL("pmtrack_proc_new(%d) to freeze it: %s", (int)pid,
		     strerror(-r));
	return 0;
}

static int stop_target(struct stopper *s)
{
	int ws = 0, r;

	if (!s->on)
		return 0;
	if (s->by == BY_FREEZE) {
		r = pmtrack_proc_freeze(s->p);
		if (r)
			FAIL("pmtrack_proc_freeze: %s", strerror(-r));
	} else if (kill(s->pid, SIGSTOP) ||
		   wait_pid(s->pid, &ws, WUNTRACED) != s->pid ||
		   !WIFSTOPPED(ws)) {
		FAIL("the target did not stop (%#x)", ws);
	}
	s->stops++;
	return 0;
}

static int cont_target(struct stopper *s)
{
	int r;

	if (!s->on)
		return 0;
	if (s->by == BY_FREEZE) {
		r = pmtrack_proc_thaw(s->p);
		if (r)
			FAIL("pmtrack_proc_thaw: %s", strerror(-r));
	} else if (kill(s->pid, SIGCONT)) {
		FAIL("SIGCONT: %s", strerror(errno));
	}
	return 0;
}

static void stopper_end(struct stopper *s)
{
	pmtrack_proc_free(s->p); /* thawed if frozen */
	s->p = NULL;
}

/* does @t have what pmtrack_new(pid) promises on its backend?  0, or -1
 * with emsg */
static int check_remote_tracker(struct pmtrack *t)
{
	PMTRACK_OPTS(pmtrack_stats, st);
	enum pmtrack_backend b = pmtrack_backend(t);
	unsigned int caps = pmtrack_caps(t);

	if (b != rbackend)
		FAIL("AUTO picked %s for another process, not %s",
		     pmtrack_backend_name(b), bn());
	if (pmtrack_get_stats(t, &st))
		FAIL("pmtrack_get_stats failed");
	if (!sd && (caps & REMOTE_CAPS) != REMOTE_CAPS)
		FAIL("backend %s, caps %#x: not all of %#x", bn(), caps,
		     REMOTE_CAPS);
	if (sd && ((caps & SD_CAPS) != SD_CAPS || (caps & SD_NOT_CAPS)))
		FAIL("backend %s, caps %#x: want %#x, none of %#x", bn(), caps,
		     SD_CAPS, SD_NOT_CAPS);
	/* pagemap-scan injects one userfaultfd() and says how long the
	 * target was stopped for it; soft-dirty injects nothing */
	if (!sd && (st.injections != 1 || !st.inject_stop_ns))
		FAIL("stats: injections %llu (1 expected), inject_stop_ns "
		     "%llu (> 0 expected)",
		     (unsigned long long)st.injections,
		     (unsigned long long)st.inject_stop_ns);
	if (sd && (st.injections || st.inject_stop_ns))
		FAIL("stats on soft-dirty: injections %llu, inject_stop_ns "
		     "%llu (0 expected: nothing is injected)",
		     (unsigned long long)st.injections,
		     (unsigned long long)st.inject_stop_ns);
	return 0;
}

/*
 * Where RESET collects stop the target (soft-dirty: a plain tracker's
 * caller stops it, a pmtrack_proc stops it by itself), let it run after
 * each, as long as the collect took that began at @since (at least 2 ms):
 * back-to-back collects would leave it stopped nearly all the time.
 */
static void let_run(uint64_t since)
{
	if (sd)
		usleep((useconds_t)(1000 * (now_ms() - since) + 2000));
}

/*
 * Track writer target @pid (AUTO) for about @ms of RESET collect rounds,
 * each followed by copying the reported pages; then SIGSTOP it, collect
 * once more and count the pages that differ from the shadow (sh->lost).
 * Where resets are not atomic the target is stopped by @by around the
 * watches and around each collect (sh->stops counts them), and runs in
 * between.  The target is left stopped.  0, or -1 with emsg.
 */
static int plain_shadow(pid_t pid, struct ctl *c, enum stopby by,
			unsigned int ms, struct shadow *sh)
{
	PMTRACK_OPTS(pmtrack_opts, o, .pid = pid);
	PMTRACK_OPTS(pmtrack_stats, st);
	struct stopper s = { .on = false };
	struct pmtrack *t = NULL;
	uint64_t end;
	int r, ws;

	if (shadow_init(sh, pid, c))
		return -1;
	r = pmtrack_new(&o, &t);
	if (r)
		FAIL("pmtrack_new(pid %d): %s", (int)pid, strerror(-r));
	if (check_remote_tracker(t) || pmtrack_get_stats(t, &st) ||
	    stopper_init(&s, by, pid, t))
		goto fail;
	c->out[8] = st.inject_stop_ns;
	if (stop_target(&s))
		goto fail;
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
	if (cont_target(&s))
		goto fail;
	end = now_ms() + ms;
	do {
		uint64_t t0 = now_ms();

		if (stop_target(&s) || plain_collect(t, sh) || cont_target(&s))
			goto fail;
		sh->rounds++;
		let_run(t0);
	} while (now_ms() < end);
	sh->stops = s.stops;
	stopper_end(&s);
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
	stopper_end(&s);
	pmtrack_free(t);
	return -1;
}

/* ---- whole-process tracking over a writer target ----------------------- */

/* how a pmtrack_proc follows its process: alone, or with its children by
 * ptrace or by the proc connector */
enum pmode { PM_ALONE, PM_PTRACE, PM_CONNECTOR, PM_N };
static const char *const pm_name[] = { "alone", "children/ptrace",
				       "children/connector" };
/* can this machine follow children with the proc connector? (main) */
static bool have_connector;
static char no_connector[96];

/* PMTRACK_TEST_REARM=written|range: the trackers' re-arm mode */
static void popts(enum pmode m, struct pmtrack_proc_opts *o)
{
	const char *rearm = getenv("PMTRACK_TEST_REARM");

	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	if (rearm && !strcmp(rearm, "written"))
		o->rearm = PMTRACK_REARM_WRITTEN;
	else if (rearm && !strcmp(rearm, "range"))
		o->rearm = PMTRACK_REARM_RANGE;
	o->flags = m == PM_ALONE ? 0 : PMTRACK_PROC_CHILDREN;
	o->events = m == PM_PTRACE	? PMTRACK_PROC_EVENTS_PTRACE
		    : m == PM_CONNECTOR ? PMTRACK_PROC_EVENTS_CONNECTOR
					: PMTRACK_PROC_EVENTS_AUTO;
}

static pid_t sleeper(void);

/*
 * On soft-dirty the connector mode is refused: it needs userfaultfd fork
 * events, so pagemap-scan (process.h: -EOPNOTSUPP; -EPERM too where the
 * caller is not root, which holds as well)
 */
static void connector_refused(void)
{
	struct pmtrack_proc_opts o;
	struct pmtrack_proc *p = (void *)1;
	pid_t pid = sleeper();
	int r;

	popts(PM_CONNECTOR, &o);
	r = pmtrack_proc_new(pid, &o, &p);
	kill_reap(pid);
	printf("%s [%s]: pmtrack_proc_new: %s\n", pm_name[PM_CONNECTOR], bn(),
	       strerror(-r));
	fflush(stdout);
	ck_assert_msg(r == -EOPNOTSUPP || (geteuid() && r == -EPERM),
		      "%s on %s: %d (%s), not -EOPNOTSUPP",
		      pm_name[PM_CONNECTOR], bn(), r, strerror(-r));
	ck_assert_ptr_null(p);
}

/* a connector variant where the connector cannot be had says so (on
 * soft-dirty: checks that it is refused) and returns (from a test
 * function) */
#define NEED_MODE(m)                                                           \
	do {                                                                   \
		if ((m) == PM_CONNECTOR && !have_connector) {                  \
			if (sd) {                                              \
				connector_refused();                           \
				return;                                        \
			}                                                      \
			printf("%s: not run, %s\n", pm_name[m], no_connector); \
			fflush(stdout);                                        \
			return;                                                \
		}                                                              \
	} while (0)

/* does @p use the backend it must, and inject only where it can?  0, or
 * -1 with emsg */
static int check_proc(struct pmtrack_proc *p)
{
	struct pmtrack_proc_stats st = { .sz = sizeof(st) };

	if (pmtrack_proc_backend(p) != rbackend)
		FAIL("pmtrack_proc uses %s, not %s",
		     pmtrack_backend_name(pmtrack_proc_backend(p)), bn());
	if (pmtrack_proc_get_stats(p, &st))
		FAIL("pmtrack_proc_get_stats failed");
	if (sd && (st.injections || st.inject_stop_ns))
		FAIL("soft-dirty: %llu injections, %llu ns stopped for them "
		     "(nothing is injected)",
		     (unsigned long long)st.injections,
		     (unsigned long long)st.inject_stop_ns);
	return 0;
}

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
static int proc_shadow(pid_t pid, struct ctl *c, enum pmode m, unsigned int ms,
		       struct shadow *sh)
{
	struct pmtrack_proc_opts o;
	struct pmtrack_proc *p = NULL;
	struct pcopy pc = { .sh = sh };
	uint64_t end;
	int r;

	emsg[0] = 0;
	popts(m, &o);
	if (shadow_init(sh, pid, c))
		return -1;
	r = pmtrack_proc_new(pid, &o, &p);
	if (r)
		FAIL("pmtrack_proc_new(%d, %s): %s", (int)pid, pm_name[m],
		     strerror(-r));
	if (check_proc(p))
		goto fail;
	/* the processes run: on soft-dirty each RESET collect stops them
	 * by itself */
	end = now_ms() + ms;
	do {
		uint64_t t0 = now_ms();

		r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, pcopy_fn,
					 &pc);
		if (r) {
			snprintf(emsg + strlen(emsg), 64, " (collect: %s)",
				 strerror(-r));
			goto fail;
		}
		sh->rounds++;
		let_run(t0);
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
	if (shadow_compare(sh) || check_proc(p))
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
 * from a pipe into the regions (_i 1), on both CPUs.  On soft-dirty the
 * target is stopped around each RESET collect, by SIGSTOP (_i 0) or by
 * pmtrack_proc_freeze() (_i 1), and writes between them */
START_TEST(remote_basic)
{
	unsigned int mode = _i ? W_READ : W_STORES;
	enum stopby by = _i ? BY_FREEZE : BY_SIGSTOP;
	struct ctl *c = ctl_new();
	uint64_t stores;
	struct shadow sh;
	pid_t pid;
	int r;

	ck_assert_ptr_nonnull(c);
	pid = spawn_writer(c, mode, 3);
	ck_assert_msg(pid > 0, "%s", emsg);
	r = plain_shadow(pid, c, by, 2000, &sh);
	stores = total_stores(c);
	kill_reap(pid);
	ck_assert_msg(r == 0, "%s", emsg);
	printf("basic/%s [%s]: %llu %s (%llu bytes read), %llu rounds, %llu "
	       "pages reported, target stopped %llu ns for the injection, "
	       "stopped %llu times by %s around collects, %llu lost pages\n",
	       _i ? "read" : "stores", bn(), (unsigned long long)stores,
	       _i ? "reads" : "stores",
	       (unsigned long long)atomic_load(&c->kbytes),
	       (unsigned long long)sh.rounds, (unsigned long long)sh.pages,
	       (unsigned long long)c->out[8], (unsigned long long)sh.stops,
	       stopby_name[by], (unsigned long long)sh.lost);
	fflush(stdout);
	ck_assert_msg(sh.lost == 0, "%llu pages lost",
		      (unsigned long long)sh.lost);
	ck_assert_uint_gt(stores, 0);
	if (mode == W_READ)
		ck_assert_uint_gt(atomic_load(&c->kbytes), 0);
	ck_assert_uint_gt(sh.rounds, 1);
	/* stopped around every collect but the last (SIGSTOP), and around
	 * the watches, exactly where resets are not atomic */
	if (sd)
		ck_assert_uint_eq(sh.stops, sh.rounds);
	else
		ck_assert_uint_eq(sh.stops, 0);
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
	PMTRACK_OPTS(pmtrack_opts, o, .backend = rbackend);
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
	o.backend = rbackend;
	r = pmtrack_new(&o, &t);
	printf("errors [%s]: pmtrack_new on a zombie: %s\n", bn(),
	       strerror(-r));
	fflush(stdout);
	ck_assert_msg(r == -ESRCH || r == -EPERM || r == -EACCES,
		      "pmtrack_new (%s) on a zombie: %s", bn(), strerror(-r));
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
	po.backend = PMTRACK_BACKEND_AUTO;
	po.flags = PMTRACK_PROC_CHILDREN;
	po.events = (enum pmtrack_proc_events)7;
	ck_assert_int_eq(pmtrack_proc_new(live, &po, &p), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(pmtrack_proc_new(live, NULL, NULL), -EINVAL);
	/* a backend named: used where it can track another process (the
	 * one AUTO picks; soft-dirty wherever its probe passes), else
	 * -EOPNOTSUPP, never another */
	po.flags = 0;
	po.events = PMTRACK_PROC_EVENTS_AUTO;
	for (int b = PMTRACK_BACKEND_PAGEMAP_SCAN;
	     b <= PMTRACK_BACKEND_SOFT_DIRTY; b++) {
		bool can = b == (int)rbackend ||
			   (b == PMTRACK_BACKEND_SOFT_DIRTY &&
			    pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY, NULL) == 1);
		const char *name = pmtrack_backend_name(b);

		o.backend = (enum pmtrack_backend)b;
		o.pid = live;
		t = (void *)1;
		r = pmtrack_new(&o, &t);
		printf("errors: pmtrack_new(pid) with %s forced: %s\n", name,
		       r ? strerror(-r) : "works");
		fflush(stdout);
		ck_assert_msg(r == (can ? 0 : -EOPNOTSUPP),
			      "pmtrack_new(pid) with %s forced: %s", name,
			      strerror(-r));
		if (can)
			ck_assert_int_eq(pmtrack_backend(t), b);
		else
			ck_assert_ptr_null(t);
		pmtrack_free(t);
		po.backend = (enum pmtrack_backend)b;
		p = (void *)1;
		r = pmtrack_proc_new(live, &po, &p);
		ck_assert_msg(r == (can ? 0 : -EOPNOTSUPP),
			      "pmtrack_proc_new with %s forced: %s", name,
			      strerror(-r));
		if (can)
			ck_assert_int_eq(pmtrack_proc_backend(p), b);
		else
			ck_assert_ptr_null(p);
		pmtrack_proc_free(p);
	}
	po.backend = PMTRACK_BACKEND_AUTO;
	/* and for the calls of one that works */
	r = pmtrack_proc_new(live, NULL, &p);
	ck_assert_msg(r == 0, "pmtrack_proc_new: %s", strerror(-r));
	ck_assert_int_eq(pmtrack_proc_backend(p), rbackend);
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
	PMTRACK_OPTS(pmtrack_opts, o);
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
	ck_assert_int_eq(pmtrack_backend(t), rbackend);
	printf("errors [%s]: a tracker of a process that execs\n", bn());
	fflush(stdout);
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
	ck_assert_msg(WAIT_FOR(exe_is(pid, "/bin/sleep"), DEADLINE_MS),
		      "the target did not exec /bin/sleep");
	n = 4;
	r = pmtrack_collect_runs(t, (void *)m, 8 * ps, PMTRACK_COLLECT_RESET,
				 runs, &n, &next);
	ck_assert_msg(r == -ESRCH, "collect_runs after exec: %s", strerror(-r));
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
		uint64_t page0 =
			((uint64_t)getpid() * 16) % (c->len[k] / ps - 16);

		for (uint64_t i = 0; i < 16; i++)
			*(volatile uint64_t *)(c->addr[k] + (page0 + i) * ps) =
				me | i;
	}
	_exit(has_uffd(getpid()) > 0 ? 3 : 0);
}

/* store into the regions and fork a child every @every_us microseconds
 * (0: as fast as it can), waiting for each; @light: the child exits at
 * once.  A fork() that fails, or a result that is no child to wait for,
 * counts as a bad child.  Never returns. */
static void forker_target(struct ctl *c, unsigned int every_us, bool light)
{
	uint64_t rng = 0x1234567ULL, n = 0;
	size_t words = ps / 8;

	map_regions(c, 16);
	atomic_store(&c->ready, 1);
	while (!atomic_load(&c->stop)) {
		struct timespec t0, t1;
		pid_t ch;
		int st;

		while (atomic_load(&c->hold)) {
			atomic_store(&c->held, 1);
			usleep(100);
		}
		atomic_store(&c->held, 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {
			if (light)
				break;
			for (int i = 0; i < 256; i++) {
				uint64_t r = t_rand(&rng);
				unsigned int k = (unsigned int)(r % NREG);
				size_t page =
					(size_t)(r >> 8) % (c->len[k] / ps);

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
		if (ch == 0) {
			if (light)
				_exit(0);
			forked_child(c);
		}
		if (ch < 0 && !atomic_fetch_add(&c->forkerr, 1))
			atomic_store(&c->forkerrno, errno);
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
 * A tracker process of forker @g until it is killed: pmtrack_new (0), or
 * pmtrack_proc in mode @variant - 1, collecting in a loop; the
 * pmtrack_proc ones freeze the target for every other collect, so the
 * kill finds them frozen or not.  c->phase = 1 once tracking.
 */
static void killed_tracker(struct ctl *c, pid_t g, int variant)
{
	PMTRACK_OPTS(pmtrack_opts, o, .pid = g);
	struct pmtrack_proc_opts po;
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
		if (check_remote_tracker(t))
			die(c, -EINVAL);
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
	popts((enum pmode)(variant - 1), &po);
	r = pmtrack_proc_new(g, &po, &p);
	if (r) {
		snprintf(emsg, sizeof(emsg), "pmtrack_proc_new: %s",
			 strerror(-r));
		die(c, r);
	}
	if (check_proc(p))
		die(c, -EINVAL);
	for (uint64_t i = 0;; i++) {
		uint64_t t0 = now_ms();
		bool frozen = false;

		if (i & 1) {
			/* a failed freeze is thread_churn's business: here
			 * it is counted (c->res[0], the first error in
			 * c->res[1]) */
			r = pmtrack_proc_freeze(p);
			if (r && !c->res[0]++)
				c->res[1] = r;
			frozen = !r;
		}
		r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, nop_fn,
					 NULL);
		if (r) {
			snprintf(emsg, sizeof(emsg), "collect: %s",
				 strerror(-r));
			die(c, r);
		}
		if (frozen) {
			r = pmtrack_proc_thaw(p);
			if (r) {
				snprintf(emsg, sizeof(emsg), "thaw: %s",
					 strerror(-r));
				die(c, r);
			}
		}
		atomic_fetch_add(&c->kcollects, 1);
		atomic_store(&c->phase, 1);
		let_run(t0);
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
	static const char *const names[] = {
		"pmtrack_new", "pmtrack_proc", "pmtrack_proc children/ptrace",
		"pmtrack_proc children/connector"
	};
	unsigned int seen = 0, polls = 0;
	struct ctl *c = ctl_new();
	uint64_t f0, tracked = 0, after = 0;
	pid_t g, k;
	int st;

	if (_i)
		NEED_MODE(_i - 1);
	ck_assert_ptr_nonnull(c);
	g = fork_child();
	ck_assert_int_ge(g, 0);
	if (g == 0)
		forker_target(c, 2000, false);
	ck_assert_msg(WAIT_FOR(atomic_load(&c->ready), DEADLINE_MS),
		      "the target did not start");
	for (int cycle = 0; cycle < 3; cycle++) {
		atomic_store(&c->phase, 0);
		atomic_store(&c->kcollects, 0);
		/* attached between two forks (proc_attach_forking attaches
		 * in the middle of one) */
		atomic_store(&c->hold, 1);
		ck_assert(WAIT_FOR(atomic_load(&c->held), DEADLINE_MS));
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
		atomic_store(&c->hold, 0);
		/* tracked while it forks */
		f0 = atomic_load(&c->forks);
		ck_assert_msg(
			WAIT_FOR(no_uffd(g, &seen, &polls) &&
					 atomic_load(&c->kcollects) >= 20 &&
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
		ck_assert_msg(
			WAIT_FOR(no_uffd(g, &seen, &polls) &&
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
	printf("killed/%s [%s]: 3 trackers killed; %llu forks while tracked, "
	       "%llu after, %llu stores; userfaultfd in the target %u times in "
	       "%u looks; freezes that failed: %ld (%s)\n",
	       names[_i], bn(), (unsigned long long)tracked,
	       (unsigned long long)after,
	       (unsigned long long)atomic_load(&c->stores[0]), seen, polls,
	       c->res[0], strerror((int)-c->res[1]));
	fflush(stdout);
	ck_assert_msg(seen == 0, "the target held a userfaultfd %u times",
		      seen);
	ck_assert_uint_gt(polls, 0);
}
END_TEST

/* a tracker process killed while pmtrack_new(pid) has the target stopped
 * (it attaches over and over): the target lives on, untraced */
/* the repetitions of the loops that hunt rare races: fewer in sanitizer
 * builds, which run everything several times slower (CI's time) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define REPS(n) ((n) / 5)
#else
#define REPS(n) (n)
#endif
#define ATTACH_KILLS REPS(200)
START_TEST(tracker_killed_attach)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN);
	struct ctl *c = ctl_new();
	uint64_t rng = 42, s0;
	bool dead = false;
	pid_t g, k;
	int st = 0;

	ck_assert_ptr_nonnull(c);
	g = spawn_writer(c, W_STORES, 2);
	ck_assert_msg(g > 0, "%s", emsg);
	o.pid = g;
	for (int i = 0; i < ATTACH_KILLS; i++) {
		atomic_store(&c->phase, 0);
		k = fork_child();
		ck_assert_int_ge(k, 0);
		if (k == 0) {
			for (;;) {
				struct pmtrack *t = NULL;
				int r = pmtrack_new(&o, &t);

				if (r) {
					snprintf(emsg, sizeof(emsg),
						 "pmtrack_new: %s",
						 strerror(-r));
					die(c, r);
				}
				pmtrack_free(t);
				atomic_store(&c->phase, 1);
			}
		}
		ck_assert_msg(WAIT_FOR(atomic_load(&c->phase) ||
					       atomic_load(&c->kerr),
				       DEADLINE_MS),
			      "the tracker does not attach");
		if (atomic_load(&c->kerr))
			dead = wait_pid(g, &st, WNOHANG) == g;
		ck_assert_msg(!atomic_load(&c->kerr),
			      "kill %d: tracker: %s (the target %s, status "
			      "%#x)",
			      i, c->msg, dead ? "is dead" : "lives",
			      dead ? st : 0);
		/* somewhere in an attach or between two */
		usleep((useconds_t)(t_rand(&rng) % 3000));
		ck_assert_int_eq(kill(k, SIGKILL), 0);
		ck_assert_int_eq(wait_pid(k, &st, 0), k);
		/* the target runs on, well past the moment it was let go */
		s0 = total_stores(c);
		WAIT_FOR((dead = wait_pid(g, &st, WNOHANG) == g) ||
				 total_stores(c) > s0 + 1000000,
			 DEADLINE_MS);
		ck_assert_msg(!dead,
			      "kill %d: the target died (status %#x, signal "
			      "%d) with its tracker",
			      i, st, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		ck_assert_msg(total_stores(c) > s0 + 1000000,
			      "kill %d: the target does not run on (state %c)",
			      i, task_state(g, 0));
		/* the injection runs in a process of the tracker's own,
		 * which finishes it and lets the target go: soon, not at
		 * once */
		WAIT_FOR(tracer_of(g) == 0, DEADLINE_MS);
		ck_assert_msg(tracer_of(g) == 0,
			      "kill %d: the target is still traced by %d", i,
			      tracer_of(g));
		ck_assert_msg(has_uffd(g) == 0,
			      "kill %d: the target holds a userfaultfd", i);
	}
	printf("killed/attach: %d trackers killed while attaching, the "
	       "target lives (%llu stores)\n",
	       ATTACH_KILLS, (unsigned long long)total_stores(c));
	fflush(stdout);
	kill_reap(g);
}
END_TEST

/* a PMTRACK_PROC_CHILDREN tracker process (_i: ptrace, connector)
 * killed mid-run, over and over, while its target forks without a pause
 * (each child tracked as it is born): the target lives on, and with the
 * connector every child too.  By ptrace events, a child the tracker was
 * injecting into when it was killed (the tens of microseconds its
 * registers are the injection's) may die: <pmtrack/process.h> says so;
 * those are counted, not failed.  Soft-dirty injects nothing: there no
 * child may come to harm */
#define STORM_KILLS REPS(100)
START_TEST(tracker_killed_forking)
{
	enum pmode m = _i ? PM_CONNECTOR : PM_PTRACE;
	struct pmtrack_proc_opts o;
	struct ctl *c = ctl_new();
	uint64_t rng = 7, f0, tracked = 0, harmed = 0;
	bool dead = false;
	pid_t g, k;
	int st = 0;

	NEED_MODE(m);
	popts(m, &o);
	ck_assert_ptr_nonnull(c);
	g = fork_child();
	ck_assert_int_ge(g, 0);
	if (g == 0)
		forker_target(c, 0, true);
	ck_assert_msg(WAIT_FOR(atomic_load(&c->ready), DEADLINE_MS),
		      "the target did not start");
	for (int i = 0; i < STORM_KILLS; i++) {
		atomic_store(&c->phase, 0);
		/* not attached in the middle of a fork: proc_attach_forking
		 * is about that */
		atomic_store(&c->hold, 1);
		ck_assert(WAIT_FOR(atomic_load(&c->held), DEADLINE_MS));
		k = fork_child();
		ck_assert_int_ge(k, 0);
		if (k == 0) {
			struct pmtrack_proc *p = NULL;
			int r = pmtrack_proc_new(g, &o, &p);

			if (r) {
				snprintf(emsg, sizeof(emsg),
					 "pmtrack_proc_new: %s", strerror(-r));
				die(c, r);
			}
			atomic_store(&c->phase, 1);
			/* with pauses: a collect holds the connector's fork
			 * events off, and the forks with them */
			for (;;) {
				pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET,
						     nop_fn, NULL);
				usleep(200);
			}
		}
		ck_assert_msg(WAIT_FOR(atomic_load(&c->phase) ||
					       atomic_load(&c->kerr),
				       DEADLINE_MS),
			      "the tracker does not start");
		if (atomic_load(&c->kerr))
			dead = wait_pid(g, &st, WNOHANG) == g;
		ck_assert_msg(!atomic_load(&c->kerr),
			      "kill %d: tracker: %s (the target %s, status "
			      "%#x)",
			      i, c->msg, dead ? "is dead" : "lives",
			      dead ? st : 0);
		/* tracking: children are born, injected, armed */
		atomic_store(&c->hold, 0);
		f0 = atomic_load(&c->forks);
		usleep((useconds_t)(t_rand(&rng) % 3000));
		ck_assert_int_eq(kill(k, SIGKILL), 0);
		ck_assert_int_eq(wait_pid(k, &st, 0), k);
		tracked += atomic_load(&c->forks) - f0;
		f0 = atomic_load(&c->forks);
		WAIT_FOR((dead = wait_pid(g, &st, WNOHANG) == g) ||
				 atomic_load(&c->forks) >= f0 + 20,
			 DEADLINE_MS);
		ck_assert_msg(!dead,
			      "kill %d: the target died (status %#x) with its "
			      "tracker",
			      i, st);
		ck_assert_msg(atomic_load(&c->forks) >= f0 + 20,
			      "kill %d: the target hangs (state %c)", i,
			      task_state(g, 0));
		if (m == PM_PTRACE && !sd) {
			harmed += atomic_load(&c->bad);
			atomic_store(&c->bad, 0);
		}
		ck_assert_msg(!atomic_load(&c->bad) &&
				      !atomic_load(&c->forkerr),
			      "kill %d: %llu children of the target ended "
			      "badly (first: wait status %#x, signal %d), "
			      "fork() failed %llu times",
			      i, (unsigned long long)atomic_load(&c->bad),
			      atomic_load(&c->bad_status),
			      WIFSIGNALED(atomic_load(&c->bad_status))
				      ? WTERMSIG(atomic_load(&c->bad_status))
				      : 0,
			      (unsigned long long)atomic_load(&c->forkerr));
	}
	printf("killed/forking %s [%s]: %d trackers killed, %llu forks while "
	       "tracked, %llu children killed by a kill during their "
	       "injection\n",
	       pm_name[m], bn(), STORM_KILLS, (unsigned long long)tracked,
	       (unsigned long long)harmed);
	fflush(stdout);
	atomic_store(&c->stop, 1);
	ck_assert_msg(wait_exit(g, DEADLINE_MS, &st), "the target hangs");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the target ended with %#x", st);
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
	PMTRACK_OPTS(pmtrack_opts, o, .backend = rbackend, .pid = root_target);
	PMTRACK_OPTS(pmtrack_proc_opts, pc, .flags = PMTRACK_PROC_CHILDREN);
	struct pmtrack_proc_opts cn;
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
		r = plain_shadow(pid, w, m ? BY_FREEZE : BY_SIGSTOP, 1500, &sh);
		c->out[4 * m + 2] =
			m ? atomic_load(&w->kbytes) : total_stores(w);
		kill_reap(pid);
		if (r)
			return -1;
		c->out[4 * m] = sh.rounds;
		c->out[4 * m + 1] = sh.lost;
		shadow_free(&sh);
	}
	/* the connector needs root: refused, not used */
	memset(w, 0, sizeof(*w));
	pid = spawn_writer(w, W_STORES, 1);
	if (pid < 0)
		return -1;
	popts(PM_CONNECTOR, &cn);
	p = NULL;
	c->res[4] = pmtrack_proc_new(pid, &cn, &p);
	pmtrack_proc_free(p);
	kill_reap(pid);
	/* a whole process with its children, followed by ptrace */
	memset(w, 0, sizeof(*w));
	pid = spawn_writer(w, W_STORES, 2);
	if (pid < 0)
		return -1;
	r = proc_shadow(pid, w, PM_PTRACE, 1500, &sh);
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
	static const char *const what[] = { "pmtrack_new (forced)",
					    "pmtrack_new (auto)",
					    "pmtrack_proc_new",
					    "pmtrack_proc_new (CHILDREN)" };
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
	ck_assert_msg(
		WAIT_FOR(atomic_load(&c->phase) || c->msg[0], DEADLINE_MS),
		"uid %d tracking root's process: no answer (hung)", NOBODY);
	ck_assert_msg(atomic_load(&c->phase), "%s", c->msg);
	for (int i = 0; i < 4; i++) {
		printf("unprivileged [%s]: %s of root's process: %s\n", bn(),
		       what[i], strerror((int)-c->res[i]));
		fflush(stdout);
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
	printf("unprivileged: children by the proc connector as uid %d: %s\n",
	       NOBODY, strerror((int)-c->res[4]));
	fflush(stdout);
	/* not root; on soft-dirty no userfaultfd fork events either: both
	 * errors are documented */
	ck_assert_msg(c->res[4] == -EPERM || (sd && c->res[4] == -EOPNOTSUPP),
		      "PMTRACK_PROC_EVENTS_CONNECTOR as uid %d: %ld (%s), not "
		      "-EPERM%s",
		      NOBODY, c->res[4], strerror((int)-c->res[4]),
		      sd ? " or -EOPNOTSUPP" : "");
	printf("unprivileged [%s]: stores: %llu stores, %llu rounds, %llu "
	       "lost pages; read(2): %llu bytes, %llu rounds, %llu lost pages; "
	       "pmtrack_proc with children (ptrace): %llu stores, %llu rounds, "
	       "%llu lost pages (vm.unprivileged_userfaultfd=%ld)\n",
	       bn(), (unsigned long long)c->out[2],
	       (unsigned long long)c->out[0], (unsigned long long)c->out[1],
	       (unsigned long long)c->out[6], (unsigned long long)c->out[4],
	       (unsigned long long)c->out[5], (unsigned long long)c->out[10],
	       (unsigned long long)c->out[8], (unsigned long long)c->out[9],
	       t_read_long("/proc/sys/vm/unprivileged_userfaultfd"));
	fflush(stdout);
	ck_assert_uint_eq(c->out[1], 0);
	ck_assert_uint_eq(c->out[5], 0);
	ck_assert_uint_eq(c->out[9], 0);
	ck_assert_uint_gt(c->out[2], 0);
	ck_assert_uint_gt(c->out[6], 0);
	kill_reap(root_g);
}
END_TEST

/* ---- a target driven by commands -------------------------------------- */

enum {
	OP_WRITE = 1,  /* write pages p[0..n) of a */
	OP_MMAP,       /* mmap b bytes (at a, MAP_FIXED, unless 0); c: MK_* */
	OP_MUNMAP,     /* munmap a, b bytes */
	OP_GROW,       /* grow a from b to c bytes in place */
	OP_MOVE,       /* move a (b bytes) to c */
	OP_MPROTECT,   /* mprotect a, b bytes, to c */
	OP_EXEC,       /* exec this program: exec_target() */
	OP_SPAWN,      /* n children, child i writing 64 pages at
			* a + (b + i) * 64 pages, then exiting; v[i] pids */
	OP_SPAWN_LONG, /* one such child (b), which then waits for a byte
			* on the hold pipe; v[0] its pid */
	OP_REAP,       /* wait for child a; its status */
	OP_QUIT,
};
#define MK_SHARED 1u
#define MK_NONE 2u   /* PROT_NONE */
#define MK_NOHUGE 4u /* MADV_NOHUGEPAGE */
#define CHILD_PAGES 64

struct cmd {
	int op, n;
	uint64_t a, b, c;
	uint64_t p[8];
};

struct ack {
	long ret;
	uint64_t v[8];
};

/* a value never written before at both ends of the page at @a */
static void write_page(uintptr_t a)
{
	static uint64_t seq;
	volatile uint64_t *q = (uint64_t *)a;
	uint64_t v = ((uint64_t)getpid() << 32) | ++seq;

	q[0] = v;
	q[ps / 8 - 1] = v;
}

static void write_chunk(uintptr_t base, uint64_t chunk)
{
	for (uint64_t i = 0; i < CHILD_PAGES; i++)
		write_page(base + (chunk * CHILD_PAGES + i) * ps);
}

static void cmd_target(int cmdfd, int ackfd, int holdfd);

/* after OP_EXEC: map and write 16 pages, tell their address, obey */
static int exec_target(int cmdfd, int ackfd, int holdfd)
{
	struct ack k = { 0 };
	char *m = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (m == MAP_FAILED)
		return 10;
	madvise(m, 16 * ps, MADV_NOHUGEPAGE);
	for (int i = 0; i < 16; i++)
		write_page((uintptr_t)m + (size_t)i * ps);
	k.v[0] = (uintptr_t)m;
	if (write(ackfd, &k, sizeof(k)) != sizeof(k))
		return 11;
	cmd_target(cmdfd, ackfd, holdfd);
	return 0;
}

static long do_cmd(const struct cmd *m, struct ack *k, int cmdfd, int ackfd,
		   int holdfd)
{
	char a1[16], a2[16], a3[16];
	int prot, flags, st, sync[2];
	void *q;
	pid_t pid;
	char ch;

	switch (m->op) {
	case OP_WRITE:
		for (int i = 0; i < m->n && i < 8; i++)
			write_page(m->a + m->p[i] * ps);
		return 0;
	case OP_MMAP:
		prot = (m->c & MK_NONE) ? PROT_NONE : PROT_READ | PROT_WRITE;
		flags = ((m->c & MK_SHARED) ? MAP_SHARED : MAP_PRIVATE) |
			MAP_ANONYMOUS | (m->a ? MAP_FIXED : 0);
		q = mmap((void *)m->a, m->b, prot, flags, -1, 0);
		if (q == MAP_FAILED)
			return -errno;
		if (m->c & MK_NOHUGE)
			madvise(q, m->b, MADV_NOHUGEPAGE);
		k->v[0] = (uintptr_t)q;
		return 0;
	case OP_MUNMAP:
		return munmap((void *)m->a, m->b) ? -errno : 0;
	case OP_GROW:
		/* the room it grows into, and at once the growth */
		munmap((void *)(m->a + m->b), m->c - m->b);
		q = mremap((void *)m->a, m->b, m->c, 0);
		if (q == MAP_FAILED)
			return -errno;
		k->v[0] = (uintptr_t)q;
		return 0;
	case OP_MOVE:
		q = mremap((void *)m->a, m->b, m->b,
			   MREMAP_MAYMOVE | MREMAP_FIXED, (void *)m->c);
		if (q == MAP_FAILED)
			return -errno;
		k->v[0] = (uintptr_t)q;
		return 0;
	case OP_MPROTECT:
		return mprotect((void *)m->a, m->b, (int)m->c) ? -errno : 0;
	case OP_EXEC:
		snprintf(a1, sizeof(a1), "%d", cmdfd);
		snprintf(a2, sizeof(a2), "%d", ackfd);
		snprintf(a3, sizeof(a3), "%d", holdfd);
		execl("/proc/self/exe", "check_remote", "--exec-target", a1, a2,
		      a3, (char *)NULL);
		return -errno;
	case OP_SPAWN: {
		long bad = 0;

		for (int i = 0; i < m->n && i < 8; i++) {
			pid = fork();
			if (pid == 0) {
				write_chunk(m->a, m->b + (uint64_t)i);
				_exit(0);
			}
			if (pid < 0)
				return -errno;
			k->v[i] = (uint64_t)pid;
		}
		for (int i = 0; i < m->n && i < 8; i++)
			if (wait_pid((pid_t)k->v[i], &st, 0) < 0 ||
			    !WIFEXITED(st) || WEXITSTATUS(st))
				bad++;
		return bad;
	}
	case OP_SPAWN_LONG:
		if (pipe(sync))
			return -errno;
		pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(sync[0]);
			write_chunk(m->a, m->b);
			if (write(sync[1], "r", 1) != 1)
				_exit(2);
			while (read(holdfd, &ch, 1) < 0 && errno == EINTR)
				;
			_exit(0);
		}
		close(sync[1]);
		if (pid < 0 || read(sync[0], &ch, 1) != 1) {
			close(sync[0]);
			return -ECHILD;
		}
		close(sync[0]);
		k->v[0] = (uint64_t)pid;
		return 0;
	case OP_REAP:
		if (wait_pid((pid_t)m->a, &st, 0) < 0)
			return -errno;
		return st;
	case OP_QUIT:
		_exit(0);
	}
	return -EINVAL;
}

static void cmd_target(int cmdfd, int ackfd, int holdfd)
{
	for (;;) {
		struct ack k = { 0 };
		struct cmd m;
		ssize_t n;

		do {
			n = read(cmdfd, &m, sizeof(m));
		} while (n < 0 && errno == EINTR);
		if (n != sizeof(m))
			_exit(0);
		k.ret = do_cmd(&m, &k, cmdfd, ackfd, holdfd);
		if (write(ackfd, &k, sizeof(k)) != sizeof(k))
			_exit(1);
	}
}

struct tgt {
	pid_t pid;
	int cmd, ack, hold; /* the test's ends */
};

static void tgt_start(struct tgt *tg)
{
	int c[2], a[2], h[2];

	ck_assert_int_eq(pipe(c), 0);
	ck_assert_int_eq(pipe(a), 0);
	ck_assert_int_eq(pipe(h), 0);
	tg->pid = fork_child();
	ck_assert_int_ge(tg->pid, 0);
	if (tg->pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		/* a known fd 0, to see that nothing closes it */
		if (nul < 0 || dup2(nul, 0) < 0)
			_exit(10);
		if (nul)
			close(nul);
		close(c[1]);
		close(a[0]);
		close(h[1]);
		cmd_target(c[0], a[1], h[0]);
	}
	close(c[0]);
	close(a[1]);
	close(h[0]);
	tg->cmd = c[1];
	tg->ack = a[0];
	tg->hold = h[1];
}

static void tgt_ack(struct tgt *tg, struct ack *k)
{
	struct pollfd pf = { .fd = tg->ack, .events = POLLIN };

	ck_assert_msg(poll(&pf, 1, DEADLINE_MS) == 1,
		      "the target does not answer (state %c)",
		      task_state(tg->pid, 0));
	ck_assert_int_eq(read(tg->ack, k, sizeof(*k)), sizeof(*k));
}

/* run a command; its result */
static long tgt_do(struct tgt *tg, struct cmd m, struct ack *k)
{
	struct ack dummy;

	if (!k)
		k = &dummy;
	ck_assert_int_eq(write(tg->cmd, &m, sizeof(m)), sizeof(m));
	tgt_ack(tg, k);
	return k->ret;
}

static uintptr_t tgt_mmap(struct tgt *tg, uintptr_t at, size_t len,
			  unsigned int kind)
{
	struct ack k;
	long r = tgt_do(
		tg, (struct cmd){ .op = OP_MMAP, .a = at, .b = len, .c = kind },
		&k);

	ck_assert_msg(r == 0, "mmap in the target: %s", strerror((int)-r));
	ck_assert(!at || k.v[0] == at);
	return (uintptr_t)k.v[0];
}

static void tgt_quit(struct tgt *tg)
{
	struct cmd m = { .op = OP_QUIT };
	int st;

	ck_assert_int_eq(write(tg->cmd, &m, sizeof(m)), sizeof(m));
	ck_assert_msg(wait_exit(tg->pid, DEADLINE_MS, &st),
		      "the target does not quit");
	close(tg->cmd);
	close(tg->ack);
	close(tg->hold);
}

/* ---- what pmtrack_proc_collect() reports --------------------------------- */

struct rrun {
	int pid;
	unsigned int flags, prot;
	uint64_t ms, me; /* the mapping */
	uint64_t s, e;	 /* the run */
};

struct reps {
	struct rrun *v;
	size_t n, cap;
	char bad[256]; /* the first broken promise */
	/* exit reports that came after live ones: processes found gone
	 * during the collect, which the header puts last (after every live
	 * report, never between two); counted */
	size_t late_exits, late_total;
	bool seen_live, seen_late;
	int last_pid;
	uint64_t last_end;
};

/* keep every run, and check what the header promises of each report */
static int reps_fn(void *arg, const struct pmtrack_proc_report *r)
{
	struct reps *R = arg;
	const struct pmtrack_mapping *m = r->map;
	bool exited = r->flags & PMTRACK_PROC_EXITED;

	if (!R->bad[0]) {
		if (!m || !r->nruns || !r->runs)
			snprintf(R->bad, sizeof(R->bad),
				 "pid %d: a report without mapping or runs",
				 r->pid);
		else if ((r->flags & PMTRACK_PROC_FULL) &&
			 (r->nruns != 1 || r->runs[0].start != m->start ||
			  r->runs[0].end != m->end))
			snprintf(R->bad, sizeof(R->bad),
				 "pid %d: FULL report of %#llx..%#llx is not "
				 "one run spanning it",
				 r->pid, (unsigned long long)m->start,
				 (unsigned long long)m->end);
		else if (!exited && R->seen_live &&
			 (r->pid < R->last_pid ||
			  (r->pid == R->last_pid &&
			   r->runs[0].start < R->last_end)))
			snprintf(
				R->bad, sizeof(R->bad),
				"pid %d at %#llx after pid %d up to %#llx: not "
				"in ascending order",
				r->pid, (unsigned long long)r->runs[0].start,
				R->last_pid, (unsigned long long)R->last_end);
	}
	if ((r->flags & PMTRACK_PROC_UNTRACKED) &&
	    !(r->flags & PMTRACK_PROC_FULL) && !R->bad[0])
		snprintf(R->bad, sizeof(R->bad),
			 "pid %d: UNTRACKED without FULL (flags %#x)", r->pid,
			 r->flags);
	/* a mapping the library does not arm (a sanitizer's shadow, when
	 * this program is built with one) is in every collect: it is not
	 * the memory these tests write, so it is left out of their sets */
	if (r->flags & PMTRACK_PROC_UNTRACKED)
		return 0;
	if (exited && R->seen_live) {
		R->late_exits++;
		R->late_total++;
		R->seen_late = true;
	} else if (!exited && R->seen_late && !R->bad[0]) {
		snprintf(R->bad, sizeof(R->bad),
			 "pid %d: a live report after the exit reports at "
			 "the end of the collect",
			 r->pid);
	}
	for (size_t i = 0; i < r->nruns && m; i++) {
		const struct pmtrack_page_run *x = &r->runs[i];

		if (!R->bad[0] &&
		    (x->start >= x->end || x->start < m->start ||
		     x->end > m->end || x->states != PMTRACK_PAGE_WRITTEN ||
		     x->map != 0 || (x->start | x->end) % ps ||
		     (i && x->start < r->runs[i - 1].end)))
			snprintf(R->bad, sizeof(R->bad),
				 "pid %d: run %#llx..%#llx (states %#x, map "
				 "%u) in mapping %#llx..%#llx",
				 r->pid, (unsigned long long)x->start,
				 (unsigned long long)x->end, x->states, x->map,
				 (unsigned long long)m->start,
				 (unsigned long long)m->end);
		if (R->n == R->cap) {
			R->cap = R->cap ? 2 * R->cap : 256;
			R->v = realloc(R->v, R->cap * sizeof(*R->v));
			if (!R->v)
				return -ENOMEM;
		}
		R->v[R->n++] = (struct rrun){ .pid = r->pid,
					      .flags = r->flags,
					      .prot = m->prot,
					      .ms = m->start,
					      .me = m->end,
					      .s = x->start,
					      .e = x->end };
	}
	if (!exited && r->nruns) {
		R->seen_live = true;
		R->last_pid = r->pid;
		R->last_end = r->runs[r->nruns - 1].end;
	}
	return 0;
}

/* a RESET collect into @R, which must keep every promise */
static void pcollect(struct pmtrack_proc *p, struct reps *R)
{
	int r;

	R->n = 0;
	R->bad[0] = 0;
	R->late_exits = 0;
	R->seen_live = R->seen_late = false;
	r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, reps_fn, R);
	ck_assert_msg(r == 0, "pmtrack_proc_collect: %s", strerror(-r));
	ck_assert_msg(!R->bad[0], "%s", R->bad);
}

/* the pages of [a, a + n pages) reported for @pid; *@flags the union of
 * the flags of those reports; the count */
static size_t rpages(const struct reps *R, int pid, uintptr_t a, size_t n,
		     bool *hit, unsigned int *flags)
{
	size_t cnt = 0;

	memset(hit, 0, n);
	*flags = 0;
	for (size_t i = 0; i < R->n; i++) {
		const struct rrun *x = &R->v[i];
		uint64_t s = x->s > a ? x->s : a;
		uint64_t e = x->e < a + n * ps ? x->e : a + n * ps;

		if (x->pid != pid || s >= e)
			continue;
		*flags |= x->flags;
		for (uint64_t q = s; q < e; q += ps) {
			cnt += !hit[(q - a) / ps];
			hit[(q - a) / ps] = true;
		}
	}
	return cnt;
}

/* "p1 p2 ..." of the pages hit, for messages */
static const char *pagelist(const bool *hit, size_t n)
{
	static char buf[256];
	size_t l = 0;

	buf[0] = 0;
	for (size_t i = 0; i < n && l < sizeof(buf) - 24; i++)
		if (hit[i])
			l += (size_t)snprintf(buf + l, sizeof(buf) - l, " %zu",
					      i);
	return buf;
}

/* exactly pages @want[0..nw) of [a, a + n pages) reported, none FULL */
static void expect_exact(const struct reps *R, int pid, uintptr_t a, size_t n,
			 const size_t *want, size_t nw, const char *name)
{
	bool *hit = calloc(n, 1);
	unsigned int fl;
	size_t got;

	ck_assert_ptr_nonnull(hit);
	got = rpages(R, pid, a, n, hit, &fl);
	ck_assert_msg(!(fl & PMTRACK_PROC_FULL),
		      "%s: reported FULL, not the %zu pages written", name, nw);
	for (size_t i = 0; i < nw; i++)
		ck_assert_msg(hit[want[i]],
			      "%s: written page %zu not reported (got:%s)",
			      name, want[i], pagelist(hit, n));
	ck_assert_msg(got == nw, "%s: %zu pages reported, %zu written (got:%s)",
		      name, got, nw, pagelist(hit, n));
	free(hit);
}

/* [a, a + len) reported as one FULL mapping */
static void expect_full(const struct reps *R, int pid, uintptr_t a, size_t len,
			const char *name)
{
	for (size_t i = 0; i < R->n; i++) {
		const struct rrun *x = &R->v[i];

		if (x->pid == pid && (x->flags & PMTRACK_PROC_FULL) &&
		    x->ms == a && x->me == a + len && x->s == a &&
		    x->e == a + len)
			return;
	}
	ck_abort_msg("%s: %#lx..%#lx not reported FULL", name, (unsigned long)a,
		     (unsigned long)(a + len));
}

static void expect_none(const struct reps *R, int pid, uintptr_t a, size_t len,
			const char *name)
{
	for (size_t i = 0; i < R->n; i++) {
		const struct rrun *x = &R->v[i];

		ck_assert_msg(x->pid != pid || x->e <= a || x->s >= a + len,
			      "%s: %#llx..%#llx reported (flags %#x)", name,
			      (unsigned long long)x->s,
			      (unsigned long long)x->e, x->flags);
	}
}

/* every page of [a, a + n pages) reported, in full or page by page */
static void expect_every(const struct reps *R, int pid, uintptr_t a, size_t n,
			 const char *name)
{
	bool *hit = calloc(n, 1);
	unsigned int fl;
	size_t got;

	ck_assert_ptr_nonnull(hit);
	got = rpages(R, pid, a, n, hit, &fl);
	ck_assert_msg(got == n, "%s: %zu of its %zu pages reported (got:%s)",
		      name, got, n, pagelist(hit, n));
	free(hit);
}

/*
 * Shared memory (n pages at @a) of which pages @want[0..nw) were written:
 * exactly those where the backend has PMTRACK_CAP_SHARED_EXACT
 * (pagemap-scan); on soft-dirty, which lacks it, every page by every
 * collect (pmtrack.h: a range that was shared when watched is reported
 * written in full), a superset of the written ones
 */
static void expect_shared(const struct reps *R, int pid, uintptr_t a, size_t n,
			  const size_t *want, size_t nw, const char *name)
{
	if (sd)
		expect_every(R, pid, a, n, name);
	else if (nw)
		expect_exact(R, pid, a, n, want, nw, name);
	else
		expect_none(R, pid, a, n * ps, name);
}

/* every report of @pid has all of @want and none of @never */
static size_t expect_flags(const struct reps *R, int pid, unsigned int want,
			   unsigned int never, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < R->n; i++) {
		const struct rrun *x = &R->v[i];

		if (x->pid != pid)
			continue;
		n++;
		ck_assert_msg((x->flags & want) == want && !(x->flags & never),
			      "%s: report of %#llx..%#llx (mapping "
			      "%#llx..%#llx) has flags %#x",
			      name, (unsigned long long)x->s,
			      (unsigned long long)x->e,
			      (unsigned long long)x->ms,
			      (unsigned long long)x->me, x->flags);
	}
	return n;
}

static void proc_stats(struct pmtrack_proc *p, struct pmtrack_proc_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->sz = sizeof(*st);
	ck_assert_int_eq(pmtrack_proc_get_stats(p, st), 0);
}

/* thaw, run @m in the target, freeze again */
static long step(struct pmtrack_proc *p, struct tgt *tg, struct cmd m,
		 struct ack *k)
{
	long r;

	ck_assert_int_eq(pmtrack_proc_thaw(p), 0);
	r = tgt_do(tg, m, k);
	ck_assert_int_eq(pmtrack_proc_freeze(p), 0);
	return r;
}

#define WRITE(addr, ...)                                                       \
	((struct cmd){ .op = OP_WRITE,                                         \
		       .a = (addr),                                            \
		       .n = sizeof((uint64_t[]){ __VA_ARGS__ }) /              \
			    sizeof(uint64_t),                                  \
		       .p = { __VA_ARGS__ } })

/* ---- 5. mappings ---------------------------------------------------- */

/* _i: the mode */
START_TEST(proc_mappings)
{
	enum pmode m = (enum pmode)_i;
	struct pmtrack_proc_opts o;
	struct pmtrack_proc_stats st;
	struct pmtrack_proc *p = NULL;
	struct reps R = { 0 };
	struct tgt tg;
	uintptr_t rs, A, S, G, M, M2, U, P, F, N;
	const size_t pg = ps;
	struct ack k;
	bool hit[32];
	unsigned int fl;
	int r, pid;

	NEED_MODE(m);
	popts(m, &o);
	tgt_start(&tg);
	pid = tg.pid;
	/* a PROT_NONE reservation keeps the mappings apart */
	rs = tgt_mmap(&tg, 0, 8192 * pg, MK_NONE);
	A = tgt_mmap(&tg, rs + 16 * pg, 2048 * pg, MK_NOHUGE);
	S = tgt_mmap(&tg, rs + 2100 * pg, 64 * pg, MK_SHARED);
	G = tgt_mmap(&tg, rs + 2200 * pg, 32 * pg, MK_NOHUGE);
	M = tgt_mmap(&tg, rs + 2300 * pg, 32 * pg, MK_NOHUGE);
	U = tgt_mmap(&tg, rs + 2400 * pg, 32 * pg, MK_NOHUGE);
	P = tgt_mmap(&tg, rs + 2500 * pg, 32 * pg, MK_NOHUGE);
	F = tgt_mmap(&tg, rs + 2600 * pg, 32 * pg, MK_NOHUGE);
	N = rs + 3000 * pg;
	M2 = rs + 4000 * pg;

	r = pmtrack_proc_new(pid, &o, &p);
	ck_assert_msg(r == 0, "pmtrack_proc_new: %s", strerror(-r));
	ck_assert_msg(!check_proc(p), "%s", emsg);
	ck_assert_int_eq(pmtrack_proc_freeze(p), 0);

	/* 1: everything in full, new */
	pcollect(p, &R);
	expect_full(&R, pid, A, 2048 * pg, "first collect, A");
	expect_full(&R, pid, S, 64 * pg, "first collect, S");
	expect_full(&R, pid, G, 32 * pg, "first collect, G");
	expect_full(&R, pid, M, 32 * pg, "first collect, M");
	expect_full(&R, pid, U, 32 * pg, "first collect, U");
	expect_full(&R, pid, P, 32 * pg, "first collect, P");
	expect_full(&R, pid, F, 32 * pg, "first collect, F");
	ck_assert_uint_gt(expect_flags(&R, pid, PMTRACK_PROC_NEW,
				       PMTRACK_PROC_EXEC | PMTRACK_PROC_EXITED,
				       "first collect"),
			  0);
	/* the PROT_NONE parts are nothing */
	expect_none(&R, pid, rs, 16 * pg, "reservation");

	/* 2: the pages written, exactly */
	step(p, &tg, WRITE(A, 3, 17, 1000), NULL);
	step(p, &tg, WRITE(S, 1, 40), NULL);
	pcollect(p, &R);
	expect_exact(&R, pid, A, 2048, (size_t[]){ 3, 17, 1000 }, 3,
		     "written A");
	expect_shared(&R, pid, S, 64, (size_t[]){ 1, 40 }, 2, "written S");
	expect_none(&R, pid, G, 32 * pg, "unwritten G");
	expect_none(&R, pid, M, 32 * pg, "unwritten M");
	expect_none(&R, pid, U, 32 * pg, "unwritten U");
	expect_none(&R, pid, P, 32 * pg, "unwritten P");
	expect_none(&R, pid, F, 32 * pg, "unwritten F");
	expect_flags(&R, pid, 0, PMTRACK_PROC_NEW, "second collect");

	/* 3: a new mapping */
	ck_assert_int_eq(step(p, &tg,
			      (struct cmd){ .op = OP_MMAP,
					    .a = N,
					    .b = 16 * pg,
					    .c = MK_NOHUGE },
			      NULL),
			 0);
	pcollect(p, &R);
	expect_full(&R, pid, N, 16 * pg, "new N");
	expect_none(&R, pid, A, 2048 * pg, "A after new N");
	expect_shared(&R, pid, S, 64, NULL, 0, "S after new N");

	/* 4: grown in place */
	ck_assert_int_eq(step(p, &tg,
			      (struct cmd){ .op = OP_GROW,
					    .a = G,
					    .b = 32 * pg,
					    .c = 64 * pg },
			      &k),
			 0);
	ck_assert_uint_eq(k.v[0], G);
	pcollect(p, &R);
	expect_full(&R, pid, G, 64 * pg, "grown G");

	/* 5: moved (written before) */
	step(p, &tg, WRITE(M, 2), NULL);
	ck_assert_int_eq(
		step(p, &tg,
		     (struct cmd){
			     .op = OP_MOVE, .a = M, .b = 32 * pg, .c = M2 },
		     &k),
		0);
	ck_assert_uint_eq(k.v[0], M2);
	pcollect(p, &R);
	expect_full(&R, pid, M2, 32 * pg, "moved M");
	expect_none(&R, pid, M, 32 * pg, "M's old place");

	/* 6: unmapped (written before): not reported */
	step(p, &tg, WRITE(U, 0, 1, 2, 3), NULL);
	ck_assert_int_eq(
		step(p, &tg,
		     (struct cmd){ .op = OP_MUNMAP, .a = U, .b = 32 * pg },
		     NULL),
		0);
	pcollect(p, &R);
	expect_none(&R, pid, U, 32 * pg, "unmapped U");

	/* 7: a page written, then the mapping made read-only: reported */
	step(p, &tg, WRITE(P, 5), NULL);
	ck_assert_int_eq(step(p, &tg,
			      (struct cmd){ .op = OP_MPROTECT,
					    .a = P,
					    .b = 32 * pg,
					    .c = PROT_READ },
			      NULL),
			 0);
	pcollect(p, &R);
	rpages(&R, pid, P, 32, hit, &fl);
	ck_assert_msg(hit[5],
		      "page 5 of P, written before mprotect(PROT_READ),"
		      " not reported (got:%s)",
		      pagelist(hit, 32));
	printf("mappings %s [%s]: P read-only: pages reported:%s, flags "
	       "%#x\n",
	       pm_name[m], bn(), pagelist(hit, 32), fl);
	fflush(stdout);
	/* and then no more */
	pcollect(p, &R);
	expect_none(&R, pid, P, 32 * pg, "read-only P");
	/* writable again: new to the tracker */
	ck_assert_int_eq(step(p, &tg,
			      (struct cmd){ .op = OP_MPROTECT,
					    .a = P,
					    .b = 32 * pg,
					    .c = PROT_READ | PROT_WRITE },
			      NULL),
			 0);
	pcollect(p, &R);
	expect_full(&R, pid, P, 32 * pg, "P writable again");

	/* 8: replaced by a new mapping in the same place (written before) */
	step(p, &tg, WRITE(F, 1), NULL);
	ck_assert_int_eq(step(p, &tg,
			      (struct cmd){ .op = OP_MMAP,
					    .a = F,
					    .b = 32 * pg,
					    .c = MK_NOHUGE },
			      NULL),
			 0);
	pcollect(p, &R);
	rpages(&R, pid, F, 32, hit, &fl);
	printf("mappings %s [%s]: F replaced: flags %#x\n", pm_name[m], bn(),
	       fl);
	fflush(stdout);
	/*
	 * pagemap-scan finds the registration lost: FULL.  Soft-dirty
	 * reports the new mapping written throughout (VM_SOFTDIRTY), FULL
	 * or page by page: /proc/PID/maps shows it as the old one (same
	 * place, same kind)
	 */
	if (sd)
		expect_every(&R, pid, F, 32, "F replaced");
	else
		expect_full(&R, pid, F, 32 * pg, "F replaced");

	/* 9: and every one of them is watched, page by page, from then on */
	step(p, &tg, WRITE(A, 3), NULL);
	step(p, &tg, WRITE(G, 40), NULL);
	step(p, &tg, WRITE(N, 2), NULL);
	step(p, &tg, WRITE(M2, 1), NULL);
	step(p, &tg, WRITE(P, 7), NULL);
	step(p, &tg, WRITE(F, 9), NULL);
	pcollect(p, &R);
	expect_exact(&R, pid, A, 2048, (size_t[]){ 3 }, 1, "A at the end");
	expect_exact(&R, pid, G, 64, (size_t[]){ 40 }, 1, "grown G's new part");
	expect_exact(&R, pid, N, 16, (size_t[]){ 2 }, 1, "new N");
	expect_exact(&R, pid, M2, 32, (size_t[]){ 1 }, 1, "moved M");
	expect_exact(&R, pid, P, 32, (size_t[]){ 7 }, 1, "P writable again");
	expect_exact(&R, pid, F, 32, (size_t[]){ 9 }, 1, "replaced F");
	expect_flags(&R, pid, 0,
		     PMTRACK_PROC_NEW | PMTRACK_PROC_EXEC | PMTRACK_PROC_EXITED,
		     "last collect");

	proc_stats(p, &st);
	printf("mappings %s [%s]: %llu collects, %llu mappings new, %llu "
	       "pages reported, %llu injections\n",
	       pm_name[m], bn(), (unsigned long long)st.collects,
	       (unsigned long long)st.maps_new,
	       (unsigned long long)st.pages_reported,
	       (unsigned long long)st.injections);
	fflush(stdout);
	ck_assert_uint_eq(st.processes, 1);
	ck_assert_uint_eq(st.injections, sd ? 0 : 1);
	ck_assert_int_eq(pmtrack_proc_thaw(p), 0);
	pmtrack_proc_free(p);
	free(R.v);
	tgt_quit(&tg);
}
END_TEST

/* ---- 6. exec ------------------------------------------------------------ */

/* what /proc/PID/fd/FD links to ("" if not open) */
static const char *fd_link(pid_t pid, int fd)
{
	static char l[128];
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	n = readlink(path, l, sizeof(l) - 1);
	l[n > 0 ? n : 0] = 0;
	return l;
}

/* run @m in the target, frozen around it if @frozen */
static long step_if(bool frozen, struct pmtrack_proc *p, struct tgt *tg,
		    struct cmd m, struct ack *k)
{
	return frozen ? step(p, tg, m, k) : tgt_do(tg, m, k);
}

/*
 * The target execs this program, which maps 16 pages (E), writes them and
 * says where.  _i % 3: the mode; _i / 3: collect frozen (the target is
 * frozen from before the first collect, thawed for each command only).
 */
START_TEST(proc_exec)
{
	enum pmode m = (enum pmode)(_i % PM_N);
	bool frozen = _i >= PM_N;
	struct pmtrack_proc_opts o;
	struct pmtrack_proc_stats st;
	struct pmtrack_proc *p = NULL;
	struct reps R = { 0 };
	char fd0[128];
	struct ack k;
	struct tgt tg;
	uintptr_t A, E;
	size_t n;
	int r, pid;

	NEED_MODE(m);
	popts(m, &o);
	tgt_start(&tg);
	pid = tg.pid;
	A = tgt_mmap(&tg, 0, 16 * ps, MK_NOHUGE);
	r = pmtrack_proc_new(pid, &o, &p);
	ck_assert_msg(r == 0, "pmtrack_proc_new: %s", strerror(-r));
	ck_assert_msg(!check_proc(p), "%s", emsg);
	if (frozen)
		ck_assert_int_eq(pmtrack_proc_freeze(p), 0);
	pcollect(p, &R);
	expect_full(&R, pid, A, 16 * ps, "first collect, A");
	step_if(frozen, p, &tg, WRITE(A, 3), NULL);
	pcollect(p, &R);
	expect_exact(&R, pid, A, 16, (size_t[]){ 3 }, 1, "A");
	expect_flags(&R, pid, 0, PMTRACK_PROC_NEW | PMTRACK_PROC_EXEC,
		     "before exec");

	ck_assert_str_eq(fd_link(pid, 0), "/dev/null");
	r = (int)step_if(frozen, p, &tg, (struct cmd){ .op = OP_EXEC }, &k);
	ck_assert_msg(r == 0, "exec: %s", strerror(-r));
	E = (uintptr_t)k.v[0];
	snprintf(fd0, sizeof(fd0), "%s", fd_link(pid, 0));
	pcollect(p, &R);
	proc_stats(p, &st);
	n = expect_flags(&R, pid, 0, 0, "after exec");
	ck_assert_msg(n > 0,
		      "nothing reported of the process after its exec "
		      "(stats: execs %llu, injections %llu; its fd 0: \"%s\")",
		      (unsigned long long)st.execs,
		      (unsigned long long)st.injections, fd0);
	expect_flags(&R, pid,
		     PMTRACK_PROC_EXEC | PMTRACK_PROC_NEW | PMTRACK_PROC_FULL,
		     PMTRACK_PROC_EXITED, "after exec");
	expect_full(&R, pid, E, 16 * ps, "after exec, E");
	ck_assert_uint_eq(st.execs, 1);
	/* what the process holds is its own */
	ck_assert_msg(!strcmp(fd0, "/dev/null"),
		      "the target's fd 0 after exec: \"%s\", not /dev/null",
		      fd0);
	ck_assert_int_eq(has_uffd(pid), 0);

	/* the new program, watched page by page */
	step_if(frozen, p, &tg, WRITE(E, 5), NULL);
	pcollect(p, &R);
	proc_stats(p, &st);
	expect_exact(&R, pid, E, 16, (size_t[]){ 5 }, 1, "E after exec");
	expect_flags(&R, pid, 0,
		     PMTRACK_PROC_NEW | PMTRACK_PROC_EXEC | PMTRACK_PROC_FULL,
		     "the collect after the exec's");
	printf("exec %s%s [%s]: %zu mappings reported in full after the "
	       "exec; %llu execs, %llu injections, %llu collects\n",
	       pm_name[m], frozen ? ", frozen" : "", bn(), n,
	       (unsigned long long)st.execs, (unsigned long long)st.injections,
	       (unsigned long long)st.collects);
	fflush(stdout);
	ck_assert_uint_eq(st.execs, 1);
	ck_assert_uint_eq(st.processes, 1);
	/* the new program is tracked on the same backend, injected into
	 * only where that is pagemap-scan */
	ck_assert_msg(!check_proc(p), "%s", emsg);
	if (frozen)
		ck_assert_int_eq(pmtrack_proc_thaw(p), 0);
	pmtrack_proc_free(p);
	free(R.v);
	tgt_quit(&tg);
}
END_TEST

/* ---- 7. children -------------------------------------------------------- */

#define SPAWN_ROUNDS 4
#define SPAWN_N 6

/* every page child @pid wrote (chunk @chunk of @sh) was reported in its
 * reports, all with @want; the pages missed */
/* reports whose flags miss @want or have @never: the count, the first */
struct flagcheck {
	size_t bad;
	char first[256];
};

static void count_flags(const struct reps *R, int pid, unsigned int want,
			unsigned int never, const char *name,
			struct flagcheck *fc)
{
	for (size_t i = 0; i < R->n; i++) {
		const struct rrun *x = &R->v[i];

		if (x->pid != pid ||
		    ((x->flags & want) == want && !(x->flags & never)))
			continue;
		if (!fc->bad++)
			snprintf(fc->first, sizeof(fc->first),
				 "%s %d: report of %#llx..%#llx has flags "
				 "%#x, wants %#x, not %#x",
				 name, pid, (unsigned long long)x->s,
				 (unsigned long long)x->e, x->flags, want,
				 never);
	}
}

static size_t child_lost(const struct reps *R, int pid, uintptr_t sh,
			 uint64_t chunk, unsigned int want, unsigned int never,
			 const char *name, struct flagcheck *fc)
{
	bool hit[CHILD_PAGES];
	unsigned int fl;
	size_t got;

	got = rpages(R, pid, sh + chunk * CHILD_PAGES * ps, CHILD_PAGES, hit,
		     &fl);
	count_flags(R, pid, want, never, name, fc);
	if (got < CHILD_PAGES) {
		printf("%s %d: %zu of %d pages reported:%s\n", name, pid, got,
		       CHILD_PAGES, pagelist(hit, CHILD_PAGES));
		fflush(stdout);
	}
	return CHILD_PAGES - got;
}

/*
 * _i: ptrace, connector.  By ptrace an exited child was scanned at its
 * exit; by the connector it is not (its memory is gone), its shared
 * mappings are reported in full: either way each page it wrote is in a
 * report of its own pid with PMTRACK_PROC_EXITED, and, its first report,
 * PMTRACK_PROC_NEW.
 */
START_TEST(proc_children)
{
	enum pmode m = _i ? PM_CONNECTOR : PM_PTRACE;
	struct pmtrack_proc_opts o;
	const uint64_t nch = SPAWN_ROUNDS * SPAWN_N;
	struct pmtrack_proc_stats st, st1;
	struct pmtrack_proc *p = NULL;
	struct flagcheck fc = { 0 };
	struct reps R = { 0 };
	size_t lost = 0, live_lost, n;
	int r, pid, pids[8];
	struct ack k;
	struct tgt tg;
	uintptr_t sh;
	pid_t L;

	NEED_MODE(m);
	popts(m, &o);
	tgt_start(&tg);
	pid = tg.pid;
	sh = tgt_mmap(&tg, 0, (nch + 1) * CHILD_PAGES * ps, MK_SHARED);
	r = pmtrack_proc_new(pid, &o, &p);
	ck_assert_msg(r == 0, "pmtrack_proc_new: %s", strerror(-r));
	ck_assert_msg(!check_proc(p), "%s", emsg);
	pcollect(p, &R);

	/* children that wrote and exited before the collect */
	for (int round = 0; round < SPAWN_ROUNDS; round++) {
		r = (int)tgt_do(&tg,
				(struct cmd){ .op = OP_SPAWN,
					      .a = sh,
					      .b = (uint64_t)round * SPAWN_N,
					      .n = SPAWN_N },
				&k);
		ck_assert_msg(r == 0, "%d children ended badly", r);
		pcollect(p, &R);
		for (int i = 0; i < SPAWN_N; i++)
			lost += child_lost(&R, (int)k.v[i], sh,
					   (uint64_t)(round * SPAWN_N + i),
					   PMTRACK_PROC_EXITED |
						   PMTRACK_PROC_NEW,
					   0, "exited child", &fc);
		/* what the parent's tracker sees of their writes: nothing
		 * (another mapping), and no harm if it did */
	}
	proc_stats(p, &st);
	printf("children %s [%s]: %llu children wrote %llu pages, %zu not "
	       "reported; stats: forks %llu, exits %llu, exit scans %llu\n",
	       pm_name[m], bn(), (unsigned long long)nch,
	       (unsigned long long)(nch * CHILD_PAGES), lost,
	       (unsigned long long)st.forks, (unsigned long long)st.exits,
	       (unsigned long long)st.exit_scans);
	fflush(stdout);
	ck_assert_msg(lost == 0, "%zu pages written by children lost", lost);
	st1 = st;

	/* a child collected while it lives */
	ck_assert_int_eq(
		tgt_do(&tg,
		       (struct cmd){ .op = OP_SPAWN_LONG, .a = sh, .b = nch },
		       &k),
		0);
	L = (pid_t)k.v[0];
	/* by the connector, a child is listed once its netlink fork event
	 * is paired with its userfaultfd fork event (process.h) */
	WAIT_FOR((n = 8, pmtrack_proc_pids(p, pids, &n) == 0 && n == 2),
		 DEADLINE_MS);
	ck_assert_int_eq(pmtrack_proc_pids(p, pids, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(pids[0] < pids[1], 1);
	ck_assert_msg((pids[0] == pid && pids[1] == L) ||
			      (pids[0] == L && pids[1] == pid),
		      "tracked: %d %d, not %d and %d", pids[0], pids[1], pid,
		      (int)L);
	pcollect(p, &R);
	live_lost = child_lost(&R, L, sh, nch, PMTRACK_PROC_NEW,
			       PMTRACK_PROC_EXITED, "living child", &fc);
	ck_assert_msg(live_lost == 0, "%zu pages of the living child lost",
		      live_lost);
	/* it exits */
	ck_assert_int_eq(write(tg.hold, "x", 1), 1);
	r = (int)tgt_do(&tg, (struct cmd){ .op = OP_REAP, .a = (uint64_t)L },
			NULL);
	ck_assert_msg(WIFEXITED(r) && WEXITSTATUS(r) == 0,
		      "the living child ended with %#x", r);
	pcollect(p, &R);
	count_flags(&R, (int)L, PMTRACK_PROC_EXITED, PMTRACK_PROC_NEW,
		    "the living child's exit", &fc);
	proc_stats(p, &st);
	ck_assert_uint_eq(st.processes, 1);
	n = 8;
	ck_assert_int_eq(pmtrack_proc_pids(p, pids, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(pids[0], pid);
	/* each child's reports: EXITED once it exited, NEW the first */
	ck_assert_msg(!fc.bad, "%zu reports with wrong flags; first: %s",
		      fc.bad, fc.first);
	/* exit reports after live ones are allowed only at the end of a
	 * collect (pcollect checks that); how many there were */
	printf("children: %zu exit reports found during their collect\n",
	       R.late_total);
	/* the counts: every child tracked and exited; the connector scans
	 * nothing at an exit */
	ck_assert_msg(st1.forks == nch && st1.exits == nch &&
			      st1.exit_scans == (m == PM_PTRACE ? nch : 0),
		      "after %llu children: forks %llu, exits %llu, exit "
		      "scans %llu",
		      (unsigned long long)nch, (unsigned long long)st1.forks,
		      (unsigned long long)st1.exits,
		      (unsigned long long)st1.exit_scans);
	ck_assert_msg(st.forks == nch + 1 && st.exits == nch + 1 &&
			      st.exit_scans == (m == PM_PTRACE ? nch + 1 : 0),
		      "after %llu children: forks %llu, exits %llu, exit "
		      "scans %llu",
		      (unsigned long long)nch + 1, (unsigned long long)st.forks,
		      (unsigned long long)st.exits,
		      (unsigned long long)st.exit_scans);
	/* no child was injected into on soft-dirty */
	ck_assert_msg(!check_proc(p), "%s", emsg);
	pmtrack_proc_free(p);
	free(R.v);
	tgt_quit(&tg);
}
END_TEST

/* a fork storm under PMTRACK_PROC_CHILDREN (_i: ptrace, connector): it
 * goes on, collected, and after pmtrack_proc_free() */
START_TEST(proc_fork_storm)
{
	enum pmode m = _i ? PM_CONNECTOR : PM_PTRACE;
	struct pmtrack_proc_opts o;
	struct pmtrack_proc_stats st;
	struct pmtrack_proc *p = NULL;
	struct ctl *c = ctl_new();
	uint64_t f0, f1, f2, collects = 0, end;
	struct reps R = { 0 };
	pid_t g;
	int r, s;

	NEED_MODE(m);
	popts(m, &o);
	ck_assert_ptr_nonnull(c);
	g = fork_child();
	ck_assert_int_ge(g, 0);
	if (g == 0)
		forker_target(c, 0, false);
	ck_assert_msg(WAIT_FOR(atomic_load(&c->ready), DEADLINE_MS),
		      "the target did not start");
	r = pmtrack_proc_new(g, &o, &p);
	ck_assert_msg(r == 0, "pmtrack_proc_new: %s", strerror(-r));
	ck_assert_msg(!check_proc(p), "%s", emsg);
	f0 = atomic_load(&c->forks);
	end = now_ms() + 1000;
	do {
		uint64_t t0 = now_ms();

		pcollect(p, &R);
		collects++;
		let_run(t0);
	} while (now_ms() < end);
	f1 = atomic_load(&c->forks);
	/* it goes on: 100 forks, or on soft-dirty 20 (each child costs a
	 * tracker of its own, every mapping watched with a clear_refs of
	 * its own, and a scan at its exit: some 0.3 s each in the kernel
	 * matrix's emulated guest) */
	ck_assert_msg(WAIT_FOR(atomic_load(&c->forks) >= f1 + (sd ? 20 : 100),
			       DEADLINE_MS),
		      "the target hangs under tracking: %llu forks",
		      (unsigned long long)(atomic_load(&c->forks) - f1));
	proc_stats(p, &st);
	ck_assert_msg(!check_proc(p), "%s", emsg);
	pmtrack_proc_free(p);
	ck_assert_int_eq(tracer_of(g), 0);
	ck_assert_int_eq(has_uffd(g), 0);
	f2 = atomic_load(&c->forks);
	ck_assert_msg(WAIT_FOR(atomic_load(&c->forks) >= f2 + 100, DEADLINE_MS),
		      "the target hangs after pmtrack_proc_free(): %llu forks",
		      (unsigned long long)(atomic_load(&c->forks) - f2));
	printf("fork storm %s [%s]: %llu forks in the first %llu collects, "
	       "%llu forks tracked (stats: forks %llu, exit scans %llu); then "
	       "%llu forks after free\n",
	       pm_name[m], bn(), (unsigned long long)(f1 - f0),
	       (unsigned long long)collects, (unsigned long long)(f2 - f0),
	       (unsigned long long)st.forks, (unsigned long long)st.exit_scans,
	       (unsigned long long)(atomic_load(&c->forks) - f2));
	fflush(stdout);
	ck_assert_uint_gt(st.forks, 0);
	ck_assert_uint_gt(st.exits, 0);
	if (m == PM_PTRACE)
		ck_assert_uint_gt(st.exit_scans, 0);
	ck_assert_msg(!atomic_load(&c->bad),
		      "%llu children ended badly (first: wait status %#x)",
		      (unsigned long long)atomic_load(&c->bad),
		      atomic_load(&c->bad_status));
	atomic_store(&c->stop, 1);
	ck_assert_msg(wait_exit(g, DEADLINE_MS, &s), "the target hangs");
	ck_assert_msg(WIFEXITED(s) && WEXITSTATUS(s) == 0,
		      "the target ended with %#x", s);
	printf("fork storm: %zu exit reports found during their collect\n",
	       R.late_total);
	free(R.v);
}
END_TEST

/* PMTRACK_PROC_CHILDREN (_i: ptrace, connector) attaching to a process in
 * a tight fork loop, over and over: every attach works, and the target's
 * fork() returns what it would have (a child it waits for) */
#define ATTACHES REPS(600)
START_TEST(proc_attach_forking)
{
	enum pmode m = _i ? PM_CONNECTOR : PM_PTRACE;
	struct pmtrack_proc_opts o;
	struct ctl *c = ctl_new();
	int fails = 0, first = 0, at = -1, s;
	uint64_t f0;
	pid_t g;

	NEED_MODE(m);
	popts(m, &o);
	ck_assert_ptr_nonnull(c);
	g = fork_child();
	ck_assert_int_ge(g, 0);
	if (g == 0)
		forker_target(c, 0, true);
	ck_assert_msg(WAIT_FOR(atomic_load(&c->ready), DEADLINE_MS),
		      "the target did not start");
	for (int i = 0; i < ATTACHES; i++) {
		struct pmtrack_proc *p = NULL;
		int r = pmtrack_proc_new(g, &o, &p);

		if (r && !fails++) {
			first = r;
			at = i;
		}
		pmtrack_proc_free(p);
		f0 = atomic_load(&c->forks);
		ck_assert_msg(
			WAIT_FOR(atomic_load(&c->forks) >= f0 + 5, DEADLINE_MS),
			"attach %d: the target hangs (in system call: "
			"%s)",
			i, ({
				static char sc[128];
				char path[64];
				FILE *f;
				snprintf(path, sizeof(path), "/proc/%d/syscall",
					 (int)g);
				sc[0] = 0;
				f = fopen(path, "re");
				if (f) {
					if (!fgets(sc, sizeof(sc), f))
						sc[0] = 0;
					fclose(f);
				}
				sc;
			}));
	}
	printf("attach while forking, %s [%s]: %d attaches, %d failed (first: "
	       "#%d, %s); the target forked %llu times, fork() failed %llu "
	       "times (%s), %llu children it could not wait for or that ended "
	       "badly\n",
	       pm_name[m], bn(), ATTACHES, fails, at, strerror(-first),
	       (unsigned long long)atomic_load(&c->forks),
	       (unsigned long long)atomic_load(&c->forkerr),
	       strerror(atomic_load(&c->forkerrno)),
	       (unsigned long long)atomic_load(&c->bad));
	fflush(stdout);
	ck_assert_msg(!fails, "%d of %d attaches failed (first: attach %d, %s)",
		      fails, ATTACHES, at, strerror(-first));
	ck_assert_msg(!atomic_load(&c->forkerr),
		      "the target's fork() failed %llu times (first: %s)",
		      (unsigned long long)atomic_load(&c->forkerr),
		      strerror(atomic_load(&c->forkerrno)));
	ck_assert_msg(!atomic_load(&c->bad),
		      "%llu children of the target ended badly (first: %#x)",
		      (unsigned long long)atomic_load(&c->bad),
		      atomic_load(&c->bad_status));
	atomic_store(&c->stop, 1);
	ck_assert_msg(wait_exit(g, DEADLINE_MS, &s), "the target hangs");
	ck_assert_msg(WIFEXITED(s) && WEXITSTATUS(s) == 0,
		      "the target ended with %#x", s);
}
END_TEST

/* ---- 8. freeze ------------------------------------------------------------
 */

static void *count_thread(void *arg)
{
	struct ctl *c = arg;

	while (!atomic_load_explicit(&c->stop, memory_order_relaxed))
		atomic_fetch_add_explicit(&c->counter, 1, memory_order_relaxed);
	return NULL;
}

static void *short_thread(void *arg)
{
	struct ctl *c = arg;

	for (int i = 0; i < 2000; i++)
		atomic_fetch_add_explicit(&c->counter, 1, memory_order_relaxed);
	atomic_fetch_add(&c->forks, 1); /* threads, here */
	return NULL;
}

/* threads that come and go all the time */
static void *spawn_thread(void *arg)
{
	struct ctl *c = arg;

	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		pthread_t t;

		if (!pthread_create(&t, NULL, short_thread, c))
			pthread_join(t, NULL);
	}
	return NULL;
}

/* @churn: two of its threads create and join threads all the time */
static void freeze_target(struct ctl *c, bool churn)
{
	void *(*fn[])(void *) = { count_thread, count_thread,
				  churn ? spawn_thread : count_thread,
				  churn ? spawn_thread : count_thread };
	pthread_t th[4];

	for (int i = 0; i < 4; i++)
		if (pthread_create(&th[i], NULL, fn[i], c))
			_exit(13);
	atomic_store(&c->ready, 1);
	while (!atomic_load(&c->stop))
		usleep(10000);
	_exit(0);
}

#define FREEZES 20

/* the tracker process: freeze and thaw FREEZES times in phases with the
 * test; the second freeze and thaw of the first round in c->res[0..1] */
static void freeze_tracker(struct ctl *c, pid_t g, enum pmode m)
{
	struct pmtrack_proc_opts o;
	struct pmtrack_proc *p = NULL;
	int r;

	popts(m, &o);
	r = pmtrack_proc_new(g, &o, &p);
	if (r) {
		snprintf(emsg, sizeof(emsg), "pmtrack_proc_new: %s",
			 strerror(-r));
		die(c, r);
	}
	r = pmtrack_proc_collect(p, PMTRACK_COLLECT_RESET, nop_fn, NULL);
	if (r) {
		snprintf(emsg, sizeof(emsg), "collect: %s", strerror(-r));
		die(c, r);
	}
	for (int i = 0; i < FREEZES; i++) {
		r = pmtrack_proc_freeze(p);
		if (r) {
			snprintf(emsg, sizeof(emsg), "freeze: %s",
				 strerror(-r));
			die(c, r);
		}
		if (!i)
			c->res[0] = pmtrack_proc_freeze(p);
		atomic_store(&c->phase, 4 * i + 1);
		if (!WAIT_FOR(atomic_load(&c->phase) == 4 * i + 2,
			      DEADLINE_MS)) {
			snprintf(emsg, sizeof(emsg), "test gone");
			die(c, -ETIMEDOUT);
		}
		r = pmtrack_proc_thaw(p);
		if (r) {
			snprintf(emsg, sizeof(emsg), "thaw: %s", strerror(-r));
			die(c, r);
		}
		if (!i)
			c->res[1] = pmtrack_proc_thaw(p);
		atomic_store(&c->phase, 4 * i + 3);
		if (!WAIT_FOR(atomic_load(&c->phase) == 4 * i + 4,
			      DEADLINE_MS)) {
			snprintf(emsg, sizeof(emsg), "test gone");
			die(c, -ETIMEDOUT);
		}
	}
	pmtrack_proc_free(p);
	_exit(0);
}

/* every thread of @pid in a tracing stop ('t'); the threads seen */
static int all_traced(pid_t pid, char *why, size_t wl)
{
	char path[64];
	struct dirent *d;
	int n = 0, bad = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	ck_assert_ptr_nonnull(dir);
	why[0] = 0;
	while ((d = readdir(dir))) {
		pid_t tid = (pid_t)atoi(d->d_name);
		char s;

		if (tid <= 0)
			continue;
		s = task_state(pid, tid);
		/* a thread that has exited is not running either */
		if (s == 't' || s == 0 ||
		    (tid != pid && (s == 'Z' || s == 'X'))) {
			n++;
			continue;
		}
		bad++;
		if (strlen(why) < wl - 24)
			snprintf(why + strlen(why), wl - strlen(why), " %d:%c",
				 (int)tid, s);
	}
	closedir(dir);
	return bad ? -bad : n;
}

/* _i: the mode */
START_TEST(proc_freeze)
{
	enum pmode m = (enum pmode)_i;
	struct ctl *c = ctl_new();
	uint64_t c0, threads = 0;
	char why[256];
	pid_t g, k;
	int st, n;

	NEED_MODE(m);
	ck_assert_ptr_nonnull(c);
	g = fork_child();
	ck_assert_int_ge(g, 0);
	if (g == 0)
		freeze_target(c, false);
	ck_assert_msg(WAIT_FOR(atomic_load(&c->ready), DEADLINE_MS),
		      "the target did not start");
	/* the tracker is another process: the test is the parent */
	k = fork_child();
	ck_assert_int_ge(k, 0);
	if (k == 0)
		freeze_tracker(c, g, m);
	for (int i = 0; i < FREEZES; i++) {
		ck_assert_msg(WAIT_FOR(atomic_load(&c->phase) == 4 * i + 1 ||
					       atomic_load(&c->kerr),
				       DEADLINE_MS),
			      "freeze %d: no answer", i);
		ck_assert_msg(!atomic_load(&c->kerr), "tracker: %s", c->msg);
		n = all_traced(g, why, sizeof(why));
		ck_assert_msg(n > 0, "freeze %d: threads not stopped:%s", i,
			      why);
		threads += (uint64_t)n;
		c0 = atomic_load(&c->counter);
		usleep(i ? 20000 : 200000);
		ck_assert_msg(
			atomic_load(&c->counter) == c0,
			"freeze %d: the frozen target counted %llu", i,
			(unsigned long long)(atomic_load(&c->counter) - c0));
		ck_assert_msg(all_traced(g, why, sizeof(why)) > 0,
			      "freeze %d: threads not stopped:%s", i, why);
		/* its parent sees nothing */
		ck_assert_int_eq(wait_pid(g, &st, WNOHANG | WUNTRACED), 0);
		atomic_store(&c->phase, 4 * i + 2);
		ck_assert_msg(WAIT_FOR(atomic_load(&c->phase) == 4 * i + 3 ||
					       atomic_load(&c->kerr),
				       DEADLINE_MS),
			      "thaw %d: no answer", i);
		ck_assert_msg(!atomic_load(&c->kerr), "tracker: %s", c->msg);
		c0 = atomic_load(&c->counter);
		ck_assert_msg(
			WAIT_FOR(atomic_load(&c->counter) != c0, DEADLINE_MS),
			"thaw %d: the target does not run", i);
		ck_assert_int_eq(wait_pid(g, &st, WNOHANG | WUNTRACED), 0);
		atomic_store(&c->phase, 4 * i + 4);
	}
	ck_assert_msg(wait_exit(k, DEADLINE_MS, &st), "the tracker hangs");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the tracker ended with %#x: %s", st, c->msg);
	printf("freeze %s [%s]: %d freezes, %llu threads seen stopped; second "
	       "freeze: %s, second thaw: %s\n",
	       pm_name[m], bn(), FREEZES, (unsigned long long)threads,
	       strerror((int)-c->res[0]), strerror((int)-c->res[1]));
	fflush(stdout);
	ck_assert_int_eq(c->res[0], -EALREADY);
	ck_assert_int_eq(c->res[1], -EALREADY);
	ck_assert_int_eq(tracer_of(g), 0);
	c0 = atomic_load(&c->counter);
	ck_assert(WAIT_FOR(atomic_load(&c->counter) != c0, DEADLINE_MS));
	atomic_store(&c->stop, 1);
	ck_assert_msg(wait_exit(g, DEADLINE_MS, &st), "the target hangs");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the target ended with %#x", st);
}
END_TEST

/* the threads of @pid as " tid:state:tracer" into @buf */
static void thread_list(pid_t pid, char *buf, size_t len)
{
	char path[64];
	struct dirent *d;
	size_t l = 0;
	DIR *dir;

	buf[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	while (dir && (d = readdir(dir)) && l < len - 32) {
		pid_t tid = (pid_t)atoi(d->d_name);

		if (tid > 0)
			l += (size_t)snprintf(buf + l, len - l, " %d:%c:%d",
					      (int)tid, task_state(pid, tid),
					      tracer_of(tid));
	}
	if (dir)
		closedir(dir);
}

#define CHURN_TRIES REPS(1000)

/*
 * The tracker process of thread_churn: pmtrack_new(pid) (@how 0), or
 * pmtrack_proc_freeze/thaw in mode @how - 1, CHURN_TRIES times.
 * Failures in c->res[0], the first error in c->res[1], the target's
 * threads at the first failure in c->msg.
 */
static void churn_tracker(struct ctl *c, pid_t g, int how)
{
	PMTRACK_OPTS(pmtrack_opts, o, .pid = g);
	struct pmtrack_proc_opts po;
	struct pmtrack_proc *p = NULL;
	int r = 0;

	if (how)
		popts((enum pmode)(how - 1), &po);
	if (how)
		r = pmtrack_proc_new(g, &po, &p);
	/* an attach is cheaper than a freeze: more of them */
	for (int i = 0; i < (how ? 1 : 3) * CHURN_TRIES; i++) {
		struct pmtrack *t = NULL;

		if (!how) {
			r = pmtrack_new(&o, &t);
			pmtrack_free(t);
		} else if (i) {
			r = pmtrack_proc_freeze(p);
			if (!r)
				pmtrack_proc_thaw(p);
		}
		if (r && !c->res[0]++) {
			c->res[1] = r;
			thread_list(g, c->msg, sizeof(c->msg));
		}
		c->out[0] = (uint64_t)i + 1; /* tries made */
		if (!p && how)
			break;
	}
	pmtrack_proc_free(p);
	_exit(0);
}

/*
 * A target whose threads come and go: every attach (_i 0) and every
 * freeze (_i 1..3: in each mode) works, and the target runs on.  _i 4, 5:
 * the same for freezes (children by ptrace, by the connector) of a target
 * whose children come and go.
 */
START_TEST(thread_churn)
{
	static const char *const what[] = {
		"pmtrack_new(pid)",
		"pmtrack_proc_freeze (alone)",
		"pmtrack_proc_freeze (children/ptrace)",
		"pmtrack_proc_freeze (children/connector)",
		"pmtrack_proc_freeze (children/ptrace) of a forking process",
		"pmtrack_proc_freeze (children/connector) of a forking process",
	};
	bool forking = _i > PM_N;
	int how = forking ? _i - 2 : _i;
	struct ctl *c = ctl_new();
	uint64_t t0, ms;
	char now[512];
	pid_t g, k;
	int st;

	if (how)
		NEED_MODE(how - 1);
	ck_assert_ptr_nonnull(c);
	g = fork_child();
	ck_assert_int_ge(g, 0);
	if (g == 0) {
		if (forking)
			forker_target(c, 0, true);
		freeze_target(c, true);
	}
	ck_assert_msg(WAIT_FOR(atomic_load(&c->ready), DEADLINE_MS),
		      "the target did not start");
	/* a process of its own: a tracer left behind goes with it */
	ms = now_ms();
	k = fork_child();
	ck_assert_int_ge(k, 0);
	if (k == 0)
		churn_tracker(c, g, how);
	ck_assert_msg(wait_exit(k, 10 * DEADLINE_MS, &st),
		      "%s: the tracker hangs after %llu of %d tries", what[_i],
		      (unsigned long long)c->out[0],
		      (how ? 1 : 3) * CHURN_TRIES);
	ms = now_ms() - ms;
	thread_list(g, now, sizeof(now));
	t0 = atomic_load(&c->forks);
	printf("thread churn [%s]: %s failed %ld of %d times in %llu ms "
	       "(%s)%s%s\n",
	       bn(), what[_i], c->res[0], (how ? 1 : 3) * CHURN_TRIES,
	       (unsigned long long)ms, strerror((int)-c->res[1]),
	       c->msg[0] ? "; the target's threads (tid:state:tracer) at "
			   "the first failure:"
			 : "",
	       c->msg);
	fflush(stdout);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the tracker ended with %#x", st);
	ck_assert_msg(!c->res[0],
		      "%s failed %ld of %d times (first: %s); the target's "
		      "threads (tid:state:tracer) then:%s",
		      what[_i], c->res[0], (how ? 1 : 3) * CHURN_TRIES,
		      strerror((int)-c->res[1]), c->msg);
	ck_assert_msg(WAIT_FOR(atomic_load(&c->forks) > t0 + 10, DEADLINE_MS),
		      "the target does not run on:%s", now);
	atomic_store(&c->stop, 1);
	ck_assert_msg(wait_exit(g, DEADLINE_MS, &st), "the target hangs");
}
END_TEST

/* ---- 9. close_range ------------------------------------------------------ */

START_TEST(closefds)
{
	static const char *const names[] = {
		"pmtrack_new", "pmtrack_proc", "pmtrack_proc children/ptrace",
		"pmtrack_proc children/connector"
	};
	struct ctl *c = ctl_new();
	uint64_t stores, closes;
	struct shadow sh;
	pid_t pid;
	int r;

	if (_i)
		NEED_MODE(_i - 1);
	ck_assert_ptr_nonnull(c);
	pid = spawn_writer(c, W_STORES | W_CLOSEFDS, 2);
	ck_assert_msg(pid > 0, "%s", emsg);
	if (_i == 0)
		r = plain_shadow(pid, c, BY_FREEZE, 2000, &sh);
	else
		r = proc_shadow(pid, c, (enum pmode)(_i - 1), 2000, &sh);
	stores = total_stores(c);
	closes = atomic_load(&c->closes);
	kill_reap(pid);
	ck_assert_msg(r == 0, "%s", emsg);
	printf("closefds/%s [%s]: %llu stores, %llu close_range calls, %llu "
	       "rounds, %llu pages reported, %llu lost pages\n",
	       names[_i], bn(), (unsigned long long)stores,
	       (unsigned long long)closes, (unsigned long long)sh.rounds,
	       (unsigned long long)sh.pages, (unsigned long long)sh.lost);
	fflush(stdout);
	ck_assert_msg(sh.lost == 0, "%llu pages lost",
		      (unsigned long long)sh.lost);
	ck_assert_uint_gt(closes, 0);
	ck_assert_uint_gt(stores, 0);
	shadow_free(&sh);
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
	tcase_add_loop_test(tc, tracker_killed, 0, 1 + PM_N);
}

static void add_killed_attach(TCase *tc)
{
	tcase_add_test(tc, tracker_killed_attach);
}

static void add_killed_forking(TCase *tc)
{
	tcase_add_loop_test(tc, tracker_killed_forking, 0, 2);
}

static void add_unprivileged(TCase *tc)
{
	tcase_add_test(tc, unprivileged);
}

static void add_mappings(TCase *tc)
{
	tcase_add_loop_test(tc, proc_mappings, 0, PM_N);
}

/* collects while the target runs, and frozen, in each mode */
static void add_exec(TCase *tc)
{
	tcase_add_loop_test(tc, proc_exec, 0, PM_N);
}

static void add_exec_frozen(TCase *tc)
{
	tcase_add_loop_test(tc, proc_exec, PM_N, 2 * PM_N);
}

static void add_children(TCase *tc)
{
	tcase_add_loop_test(tc, proc_children, 0, 2);
	tcase_add_loop_test(tc, proc_fork_storm, 0, 2);
}

static void add_attach_forking(TCase *tc)
{
	tcase_add_loop_test(tc, proc_attach_forking, 0, 2);
}

static void add_freeze(TCase *tc)
{
	tcase_add_loop_test(tc, proc_freeze, 0, PM_N);
}

static void add_thread_churn(TCase *tc)
{
	tcase_add_loop_test(tc, thread_churn, 0, 3 + PM_N);
}

static void add_closefds(TCase *tc)
{
	tcase_add_loop_test(tc, closefds, 0, 1 + PM_N);
}

static const struct tcase_def cases[] = {
	{ "basic", add_basic },
	{ "errors", add_errors },
	{ "killed", add_killed },
	{ "killed_attach", add_killed_attach },
	{ "killed_forking", add_killed_forking },
	{ "unprivileged", add_unprivileged },
	{ "mappings", add_mappings },
	{ "exec", add_exec },
	{ "exec_frozen", add_exec_frozen },
	{ "children", add_children },
	{ "attach_forking", add_attach_forking },
	{ "freeze", add_freeze },
	{ "thread_churn", add_thread_churn },
	{ "closefds", add_closefds },
};

/*
 * Which backend must track another process here (rbackend): pagemap-scan
 * where its probes pass and it can inject into a process, else soft-dirty
 * where its probe passes; else skip.  And can children be followed by the
 * proc connector?  0, T_SKIP, or 1.
 */
static int pick_remote_backend(void)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN);
	struct pmtrack_proc_opts po;
	struct pmtrack_proc *p = NULL;
	struct pmtrack *t = NULL;
	char no_psc[192];
	int r, rc, psc, async, soft;
	pid_t pid;

	if (t_read_long("/proc/sys/kernel/yama/ptrace_scope") == 3) {
		printf("SKIP: ptrace is disabled (yama ptrace_scope 3)\n");
		fflush(stdout);
		return T_SKIP;
	}
	psc = pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL);
	async = pmtrack_probe(PMTRACK_FEAT_UFFD_WP_ASYNC, NULL);
	soft = pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY, NULL);
	if (psc < 0 || async < 0 || soft < 0) {
		printf("a probe failed: pagemap-scan %d, uffd-wp-async %d, "
		       "soft-dirty %d\n",
		       psc, async, soft);
		return 1;
	}
	pid = fork_child();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		for (;;)
			pause();
	}
	snprintf(no_psc, sizeof(no_psc),
		 "no PAGEMAP_SCAN with async userfaultfd write-protect "
		 "(Linux 6.7+)");
	r = 0;
	if (psc && async) {
		o.pid = pid;
		r = pmtrack_new(&o, &t);
		pmtrack_free(t);
		if (!r)
			rbackend = PMTRACK_BACKEND_PAGEMAP_SCAN;
		else if (r == -EOPNOTSUPP || r == -ENOSYS)
			snprintf(no_psc, sizeof(no_psc),
				 "pagemap-scan cannot inject into a process "
				 "here (%s: no injection for this "
				 "architecture, or no pidfd_getfd)",
				 strerror(-r));
	}
	if (!rbackend && soft && (!r || r == -EOPNOTSUPP || r == -ENOSYS))
		rbackend = PMTRACK_BACKEND_SOFT_DIRTY;
	sd = rbackend == PMTRACK_BACKEND_SOFT_DIRTY;
	if (rbackend) {
		/* children by the proc connector: root, and the kernel's
		 * process events, and userfaultfd fork events
		 * (pagemap-scan) */
		popts(PM_CONNECTOR, &po);
		rc = pmtrack_proc_new(pid, &po, &p);
		pmtrack_proc_free(p);
		have_connector = !rc;
		if (rc && sd)
			snprintf(no_connector, sizeof(no_connector),
				 "it needs pagemap-scan (%s)", strerror(-rc));
		else if (rc == -EPERM && geteuid())
			snprintf(no_connector, sizeof(no_connector),
				 "the proc connector needs root");
		else if (rc == -EOPNOTSUPP || rc == -ENOSYS ||
			 rc == -EPROTONOSUPPORT)
			snprintf(no_connector, sizeof(no_connector),
				 "no proc connector or userfaultfd fork "
				 "events here (%s)",
				 strerror(-rc));
		else
			have_connector = true; /* other errors: tests fail */
	}
	kill(pid, SIGKILL);
	wait_pid(pid, &rc, 0);
	if (r && r != -EOPNOTSUPP && r != -ENOSYS) {
		printf("pmtrack_new(pid) with pagemap-scan: %s\n",
		       strerror(-r));
		return 1;
	}
	if (!rbackend) {
		printf("SKIP: tracking another process needs pagemap-scan (%s) "
		       "or soft-dirty (CONFIG_MEM_SOFT_DIRTY), and neither is "
		       "here\n",
		       no_psc);
		fflush(stdout);
		return T_SKIP;
	}
	printf("another process is tracked with %s here%s%s\n", bn(),
	       sd ? ": " : "", sd ? no_psc : "");
	fflush(stdout);
	return 0;
}

/* the cases that are about the injection itself, which soft-dirty does
 * not make: why they are not run there */
static const char *injection_only(const char *name)
{
	if (!strcmp(name, "killed_attach"))
		return "killed_attach kills pmtrack_new(pid) while it has the "
		       "target stopped to inject a userfaultfd into it; on "
		       "soft-dirty, the backend here (no PAGEMAP_SCAN), "
		       "pmtrack_new(pid) stops and injects nothing";
	return NULL;
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	bool found = false;
	Suite *s;
	int r;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	/* a target killed by a signal leaves no core file behind */
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	if (argc == 5 && !strcmp(argv[1], "--exec-target"))
		return exec_target(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	/* the backend is the library's to choose (AUTO), by what this
	 * machine has */
	unsetenv("PMTRACK_BACKEND");
	r = pick_remote_backend();
	if (r)
		return r;
	if (only && sd && injection_only(only)) {
		printf("SKIP: %s\n", injection_only(only));
		fflush(stdout);
		return T_SKIP;
	}
	if (only && !strcmp(only, "unprivileged") && geteuid() != 0) {
		printf("SKIP: switching to uid %d needs root\n", NOBODY);
		fflush(stdout);
		return T_SKIP;
	}
	s = suite_create("remote");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc;

		if (only && strcmp(only, cases[i].name))
			continue;
		found = true;
		if (sd && injection_only(cases[i].name)) {
			printf("%s: not run: %s\n", cases[i].name,
			       injection_only(cases[i].name));
			continue;
		}
		tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 240);
		cases[i].add(tc);
		suite_add_tcase(s, tc);
	}
	if (!found) {
		fprintf(stderr, "no test case %s\n", only);
		return 2;
	}
	return t_run(s);
}

// SPDX-License-Identifier: MIT
/*
 * A process with a known memory layout for the `pmtrack stat` test: it maps
 *   kept:  8 MAP_SHARED|MAP_ANONYMOUS pages, all written, which a child
 *          (forked before anything else is mapped, and killed when the
 *          target dies) maps too;
 *   anon:  64 private anonymous pages, pages 0..31 written;
 *   memfd: 32 pages of a memfd it keeps open, pages 0..15 written and
 *          0..7 then dropped from its page tables (still in the memfd);
 *   shared: 16 MAP_SHARED|MAP_ANONYMOUS pages, all written;
 * and it has a child that exited and that it does not reap (a zombie);
 * writes "ANON MEMFD SHARED KEPT ZOMBIE" (hex addresses, the zombie's pid
 * in decimal) to the file named by argv[1], and sleeps until killed.
 *
 * pstate_target --leader FILE: a process whose main thread exits while
 * another thread runs on; writes "PID TID" (the other thread's id) to FILE.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* a child that maps the @n pages at @k and keeps them until we die */
static int share_with_child(const char *k, size_t n, size_t ps)
{
	pid_t parent = getpid();
	int pfd[2];
	char c = 0;

	if (pipe(pfd))
		return -1;
	switch (fork()) {
	case -1:
		return -1;
	case 0:
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(1);
		for (size_t i = 0; i < n; i++)
			c += *(volatile const char *)(k + i * ps);
		if (write(pfd[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	return read(pfd[0], &c, 1) == 1 ? 0 : -1;
}

/* a child that exits at once, left unreaped: its pid, or -1 */
static pid_t zombie(void)
{
	siginfo_t si;
	pid_t z = fork();

	if (z == 0)
		_exit(0);
	/* wait until it is a zombie, without reaping it */
	if (z < 0 || waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT))
		return -1;
	return z;
}

static const char *leader_file;

/* the state letter of the main thread (/proc/self/stat), or 0 */
static char leader_state(void)
{
	char buf[512], *p = NULL, st = 0;
	FILE *f = fopen("/proc/self/stat", "r");

	if (f && fgets(buf, sizeof(buf), f))
		p = strrchr(buf, ')');
	if (f)
		fclose(f);
	if (p && p[1] == ' ')
		st = p[2];
	return st;
}

static void *run_on(void *arg)
{
	FILE *f;

	(void)arg;
	/* tell only once the main thread is gone */
	for (int i = 0; leader_state() != 'Z'; i++) {
		if (i == 10000)
			_exit(1);
		usleep(1000);
	}
	f = fopen(leader_file, "w");
	if (!f)
		_exit(1);
	fprintf(f, "%d %ld\n", (int)getpid(), (long)syscall(SYS_gettid));
	if (fclose(f))
		_exit(1);
	for (;;)
		pause();
}

/* --leader: the main thread exits, another runs on */
static int leader_exits(const char *file)
{
	pthread_t t;

	leader_file = file;
	if (pthread_create(&t, NULL, run_on, NULL))
		return 1;
	syscall(SYS_exit, 0); /* this thread only */
	return 1;
}

int main(int argc, char **argv)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	char *a, *m, *s, *k;
	pid_t z;
	FILE *f;
	int fd;

	if (argc == 3 && !strcmp(argv[1], "--leader"))
		return leader_exits(argv[2]);
	if (argc != 2)
		return 2;
	k = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (k == MAP_FAILED)
		return 1;
	memset(k, 4, 8 * ps);
	if (share_with_child(k, 8, ps))
		return 1;
	z = zombie();
	if (z < 0)
		return 1;
	fd = memfd_create("pmtrack-target", 0);
	if (fd < 0 || ftruncate(fd, (off_t)(32 * ps)))
		return 2;
	/* fenced by PROT_NONE pages, so it never merges with a neighbour */
	a = mmap(NULL, 66 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED ||
	    mprotect(a + ps, 64 * ps, PROT_READ | PROT_WRITE))
		return 1;
	a += ps;
	m = mmap(NULL, 32 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	s = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || s == MAP_FAILED)
		return 1;
	memset(a, 1, 32 * ps);
	memset(m, 2, 16 * ps);
	memset(s, 3, 16 * ps);
	if (madvise(m, 8 * ps, MADV_DONTNEED))
		return 1;
	f = fopen(argv[1], "w");
	if (!f)
		return 1;
	fprintf(f, "%lx %lx %lx %lx %d\n", (unsigned long)a, (unsigned long)m,
		(unsigned long)s, (unsigned long)k, (int)z);
	if (fclose(f))
		return 1;
	for (;;)
		pause();
}

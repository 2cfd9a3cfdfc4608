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
 * writes "ANON MEMFD SHARED KEPT" (hex addresses) to the file named by
 * argv[1], and sleeps until killed.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
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

int main(int argc, char **argv)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	char *a, *m, *s, *k;
	FILE *f;
	int fd;

	if (argc != 2)
		return 2;
	k = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (k == MAP_FAILED)
		return 1;
	memset(k, 4, 8 * ps);
	if (share_with_child(k, 8, ps))
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
	fprintf(f, "%lx %lx %lx %lx\n", (unsigned long)a, (unsigned long)m,
		(unsigned long)s, (unsigned long)k);
	if (fclose(f))
		return 1;
	for (;;)
		pause();
}

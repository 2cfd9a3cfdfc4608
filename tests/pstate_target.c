// SPDX-License-Identifier: MIT
/*
 * A process with a known memory layout for the `pmtrack stat` test: it maps
 *   anon:  64 private anonymous pages, pages 0..31 written;
 *   memfd: 32 pages of a memfd it keeps open, pages 0..15 written and
 *          0..7 then dropped from its page tables (still in the memfd);
 *   shared: 16 MAP_SHARED|MAP_ANONYMOUS pages, all written;
 * writes "ANON MEMFD SHARED" (hex addresses) to the file named by argv[1],
 * and sleeps until killed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	int fd = memfd_create("pmtrack-target", 0);
	char *a, *m, *s;
	FILE *f;

	if (argc != 2 || fd < 0 || ftruncate(fd, (off_t)(32 * ps)))
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
	if (a == MAP_FAILED || m == MAP_FAILED || s == MAP_FAILED)
		return 1;
	memset(a, 1, 32 * ps);
	memset(m, 2, 16 * ps);
	memset(s, 3, 16 * ps);
	if (madvise(m, 8 * ps, MADV_DONTNEED))
		return 1;
	f = fopen(argv[1], "w");
	if (!f)
		return 1;
	fprintf(f, "%lx %lx %lx\n", (unsigned long)a, (unsigned long)m,
		(unsigned long)s);
	if (fclose(f))
		return 1;
	for (;;)
		pause();
}

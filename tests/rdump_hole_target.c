// SPDX-License-Identifier: MIT
/*
 * A process with large shared memory of which only a few pages exist, for
 * the `pmtrack dump --pid` test that holes of shared memory are never read
 * (tests/cli_rdump.sh): reading one would allocate a page in the target.
 *
 *   rdump_hole_target FILE
 *
 * It maps a memfd of 1 GiB (MAP_SHARED: so sparse that the tracker leaves
 * it unarmed and reports it in full) and 64 MiB of MAP_SHARED|
 * MAP_ANONYMOUS (armed), writes 16 pages spread over each, writes
 * "PID MEMFD SHANON" (the regions' start addresses in hex) to FILE and
 * sleeps until killed, touching nothing.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEMFD_LEN (1ul << 30)
#define SHANON_LEN (64ul << 20)
#define TOUCHED 16

static void touch(char *p, size_t len, size_t ps)
{
	for (size_t i = 0; i < TOUCHED; i++)
		memset(p + (len / ps / TOUCHED * i + 3) * ps, 0x5a + (int)i, ps);
}

int main(int argc, char **argv)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	int fd = memfd_create("rdump-hole", MFD_CLOEXEC);
	char *m, *s, tmp[4200];
	FILE *f;

	if (argc != 2 || fd < 0 || ftruncate(fd, (off_t)MEMFD_LEN)) {
		perror("rdump_hole_target: memfd");
		return 1;
	}
	m = mmap(NULL, MEMFD_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	s = mmap(NULL, SHANON_LEN, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || s == MAP_FAILED) {
		perror("rdump_hole_target: mmap");
		return 1;
	}
	touch(m, MEMFD_LEN, ps);
	touch(s, SHANON_LEN, ps);
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d %lx %lx\n", (int)getpid(), (unsigned long)m,
			  (unsigned long)s) < 0 || fclose(f) ||
	    rename(tmp, argv[1])) {
		perror(argv[1]);
		return 1;
	}
	for (;;)
		pause();
}

// SPDX-License-Identifier: MIT
/*
 * A program built against the *installed* libpmtrack, the way a user would:
 * through pkg-config, through find_package(pmtrack), and statically.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pmtrack/pmtrack.h>

int main(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = 4;
	struct pmtrack *t;
	void *pages[4];
	char *b;
	int r;

	printf("consumer: libpmtrack %s (headers %s)\n", pmtrack_version(),
	       PMTRACK_VERSION_STRING);
	if (strcmp(pmtrack_version(), PMTRACK_VERSION_STRING))
		return 1;
	r = pmtrack_new(NULL, &t);
	if (r) {
		/* linked and ran: that is what this program checks */
		printf("consumer: no usable backend here (%s)\n", strerror(-r));
		return 0;
	}
	b = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED || pmtrack_watch(t, b, 4 * ps))
		return 1;
	b[2 * ps] = 1;
	r = pmtrack_collect_pages(t, b, 4 * ps, PMTRACK_COLLECT_RESET, pages,
				  &n, NULL);
	if (r || n != 1 || pages[0] != b + 2 * ps)
		return 1;
	pmtrack_free(t);
	printf("consumer: ok\n");
	return 0;
}

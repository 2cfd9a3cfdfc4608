// SPDX-License-Identifier: MIT
/*
 * One public header, alone (tests/CMakeLists.txt, the header-alone tests): it
 * compiles by itself, and the headers that included <pmtrack/pmtrack.h>
 * in 0.1.0 still declare the tracker's API.
 */
#include PMT_HEADER

#include <stdio.h>

int main(void)
{
#ifdef PMTRACK_PMTRACK_H
	printf("%s\n", pmtrack_version());
#endif
	return 0;
}

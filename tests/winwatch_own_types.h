/* SPDX-License-Identifier: MIT */
/* winwatch_own_types.c: the shim called from a file with its own types. */
#ifndef PMTRACK_TEST_WINWATCH_OWN_TYPES_H
#define PMTRACK_TEST_WINWATCH_OWN_TYPES_H

#include <stddef.h>

unsigned int own_types_reset(void *base, size_t size);
unsigned int own_types_invalid_parameter(void);

#endif

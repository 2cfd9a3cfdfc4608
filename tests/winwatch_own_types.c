// SPDX-License-Identifier: MIT
/*
 * A program with Windows types and constants of its own (winelib-like)
 * includes the shim's header with PMTRACK_NO_WINTYPES: this file must
 * compile, and its calls reach the same functions.
 */
#include <stddef.h>
#include <stdint.h>

typedef unsigned int UINT;
typedef unsigned int DWORD;
typedef int BOOL;
typedef size_t SIZE_T;
typedef uintptr_t ULONG_PTR;
typedef void *PVOID;
typedef void *LPVOID;
typedef DWORD *PDWORD;
typedef DWORD *LPDWORD;
#define MEM_COMMIT 0x00001000
#define ERROR_INVALID_PARAMETER 87L

#define PMTRACK_NO_WINTYPES
#include <pmtrack/winwatch.h>

#include "winwatch_own_types.h"

unsigned int own_types_reset(void *base, size_t size)
{
	return pmtrack_ResetWriteWatch(base, size);
}

unsigned int own_types_invalid_parameter(void)
{
	return (unsigned int)ERROR_INVALID_PARAMETER;
}

/* SPDX-License-Identifier: MIT */
/*
 * Write watches as Windows has them, on libpmtrack: GetWriteWatch() and
 * ResetWriteWatch() with the behaviour, return values and error codes of
 * Windows, over the VirtualAlloc() / VirtualFree() / VirtualProtect() calls
 * that create and change the memory they watch.  For compatibility layers
 * (Wine-like) and for runtimes written against the Windows API.
 *
 * Every function has the Windows signature and a pmtrack_ prefix, so it
 * cannot clash with a real or emulated Windows API.  Define
 * PMTRACK_WINAPI_NAMES before including this header to also get the
 * unprefixed names (GetWriteWatch, VirtualAlloc, ...) as macros.
 *
 * Types and constants.  The header defines the Windows types it uses
 * (UINT, DWORD, BOOL, SIZE_T, ULONG_PTR, PVOID, LPVOID, PDWORD, LPDWORD)
 * unless PMTRACK_NO_WINTYPES is defined, for programs that have their own
 * (theirs must have the same sizes: DWORD and UINT 32 bits, SIZE_T and
 * ULONG_PTR pointer-sized).  Constants (MEM_*, PAGE_*, ERROR_*,
 * WRITE_WATCH_FLAG_RESET) are defined when not defined already.
 *
 * The model, as on Windows:
 *  - pmtrack_VirtualAlloc() reserves address space (MEM_RESERVE) at a
 *    64 KiB-aligned base and commits pages of it (MEM_COMMIT) with a
 *    protection: PAGE_NOACCESS, PAGE_READONLY or PAGE_READWRITE.  With
 *    MEM_WRITE_WATCH (which needs MEM_RESERVE) the allocation tracks
 *    writes for its whole life.  Reserved pages are not accessible.
 *  - pmtrack_GetWriteWatch() reports the 4096-byte pages of a range inside
 *    one write-watch allocation written since the allocation was made or
 *    the pages were last reset, as absolute addresses in ascending order.
 *    *count is the capacity in; the number stored out.  When the array
 *    fills, the scan stops there: with WRITE_WATCH_FLAG_RESET only the
 *    pages up to and including the last one returned are reset, and
 *    later written pages are still reported by the next call.  Nothing
 *    else tells the caller that more pages were left: *count equal to
 *    the capacity hints at it.  When no page is reported the array is
 *    not touched.  A RESET call reports and resets each page in one step:
 *    a write by another thread during the call is in this result or in
 *    the next one, never lost.  A write that straddles two pages marks
 *    both.
 *  - Writes made by the kernel count: read(2) into a write-watched
 *    buffer marks the pages it wrote.  On backends without
 *    PMTRACK_CAP_KERNEL_WRITES (mprotect, and uffd-wp when the process
 *    may not trap kernel faults) such a system call fails with EFAULT
 *    unless pmtrack_winwatch_prepare_io() was called on the buffer first;
 *    that call marks the whole buffer written, as Windows' ReadFile()
 *    does when it sets up the I/O.
 *  - Protection changes (pmtrack_VirtualProtect()) neither mark pages
 *    written nor clean them.  Decommit (pmtrack_VirtualFree(MEM_DECOMMIT))
 *    zeroes the pages and clears their write state, and recommitted pages
 *    start clean; but, as on Windows, a page written and then passed to
 *    VirtualProtect stays reported across decommit and recommit until it
 *    is reset (Windows "latches" the state there).
 *  - Releasing an allocation (MEM_RELEASE) ends its tracking.
 *
 * Errors.  Failing calls return (UINT)-1 (GetWriteWatch, ResetWriteWatch),
 * NULL (VirtualAlloc) or FALSE and set the calling thread's last error,
 * read with pmtrack_GetLastError().  The order of GetWriteWatch's checks
 * is Windows': NULL count or granularity: ERROR_NOACCESS; *count == 0 or
 * an empty range: ERROR_INVALID_PARAMETER; flags other than
 * WRITE_WATCH_FLAG_RESET: ERROR_INVALID_PARAMETER; NULL address array:
 * ERROR_NOACCESS; a range not inside one write-watch allocation (one byte
 * past its end included): ERROR_INVALID_PARAMETER.  An unaligned base
 * is rounded down, and the size rounded up to cover every page the
 * [base, base + size) bytes touch.  If the tracker itself fails, the
 * error is ERROR_NOT_ENOUGH_MEMORY (out of memory or map count) or
 * ERROR_GEN_FAILURE.
 *
 * Backend.  All write-watch allocations share one process-wide tracker,
 * created by the first of them: the best backend here that gives
 * PMTRACK_CAP_ATOMIC_RESET and PMTRACK_CAP_RANGE_RESET, or the one named
 * by the PMTRACK_BACKEND environment variable.  soft-dirty gives neither
 * (its resets are process-wide and not atomic), so it is never used:
 * with PMTRACK_BACKEND=soft-dirty, or where no other backend works,
 * MEM_WRITE_WATCH allocations fail with ERROR_NOT_SUPPORTED.  On the mprotect
 * backend the library owns SIGSEGV as pmtrack.h describes; a write to a page
 * that is not writable (reserved, PAGE_NOACCESS, PAGE_READONLY) still raises
 * SIGSEGV as it would without the library.  Only 4096-byte system pages are
 * supported (ERROR_NOT_SUPPORTED otherwise).
 *
 * Not supported, failing with ERROR_INVALID_PARAMETER: MEM_RESET,
 * MEM_RESET_UNDO, MEM_LARGE_PAGES, MEM_PHYSICAL and other allocation
 * types (MEM_TOP_DOWN is accepted and ignored); PAGE_EXECUTE*,
 * PAGE_WRITECOPY, PAGE_GUARD, PAGE_NOCACHE and the other protections.
 * Memory not allocated through pmtrack_VirtualAlloc() cannot be
 * protected, committed or freed here (ERROR_INVALID_ADDRESS), and
 * GetWriteWatch on it fails with ERROR_INVALID_PARAMETER.
 *
 * Thread safety: every function may be called from any thread at once;
 * they serialise on one process-wide lock.  Writes to watched memory take
 * no lock.  Not usable in a child after fork().
 */
#ifndef PMTRACK_WINWATCH_H
#define PMTRACK_WINWATCH_H

#include <stddef.h>
#include <stdint.h>

#include <pmtrack/pmtrack.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef PMTRACK_NO_WINTYPES
typedef unsigned int UINT;
typedef unsigned int DWORD;
typedef int BOOL;
typedef size_t SIZE_T;
typedef uintptr_t ULONG_PTR;
typedef void *PVOID;
typedef void *LPVOID;
typedef DWORD *PDWORD;
typedef DWORD *LPDWORD;
#endif

/* the shim's ABI: 32-bit DWORD and UINT, pointer-sized SIZE_T, ULONG_PTR */
#ifdef __cplusplus
#define PMTRACK_WW_ASSERT static_assert
#else
#define PMTRACK_WW_ASSERT _Static_assert
#endif
PMTRACK_WW_ASSERT(sizeof(DWORD) == 4 && sizeof(UINT) == 4,
		  "DWORD and UINT must be 32 bits");
PMTRACK_WW_ASSERT(sizeof(SIZE_T) == sizeof(void *) &&
			  sizeof(ULONG_PTR) == sizeof(void *),
		  "SIZE_T and ULONG_PTR must be pointer-sized");
#undef PMTRACK_WW_ASSERT

#ifndef MEM_COMMIT
#define MEM_COMMIT 0x00001000
#endif
#ifndef MEM_RESERVE
#define MEM_RESERVE 0x00002000
#endif
#ifndef MEM_DECOMMIT
#define MEM_DECOMMIT 0x00004000
#endif
#ifndef MEM_RELEASE
#define MEM_RELEASE 0x00008000
#endif
#ifndef MEM_RESET
#define MEM_RESET 0x00080000
#endif
#ifndef MEM_TOP_DOWN
#define MEM_TOP_DOWN 0x00100000
#endif
#ifndef MEM_WRITE_WATCH
#define MEM_WRITE_WATCH 0x00200000
#endif
#ifndef PAGE_NOACCESS
#define PAGE_NOACCESS 0x01
#endif
#ifndef PAGE_READONLY
#define PAGE_READONLY 0x02
#endif
#ifndef PAGE_READWRITE
#define PAGE_READWRITE 0x04
#endif
#ifndef WRITE_WATCH_FLAG_RESET
#define WRITE_WATCH_FLAG_RESET 0x01
#endif
#ifndef ERROR_NOT_ENOUGH_MEMORY
#define ERROR_NOT_ENOUGH_MEMORY 8L
#endif
#ifndef ERROR_GEN_FAILURE
#define ERROR_GEN_FAILURE 31L
#endif
#ifndef ERROR_NOT_SUPPORTED
#define ERROR_NOT_SUPPORTED 50L
#endif
#ifndef ERROR_INVALID_PARAMETER
#define ERROR_INVALID_PARAMETER 87L
#endif
#ifndef ERROR_INVALID_ADDRESS
#define ERROR_INVALID_ADDRESS 487L
#endif
#ifndef ERROR_NOACCESS
#define ERROR_NOACCESS 998L
#endif

/**
 * pmtrack_GetWriteWatch() - the pages of [@base, @base + @size) written
 * since they were last reset (see the top of this header).
 * @flags: 0 or WRITE_WATCH_FLAG_RESET
 * @addresses: receives up to *@count page addresses
 * @count: in: capacity of @addresses; out: addresses stored
 * @granularity: receives 4096
 * Return: 0, or (UINT)-1 with the last error set.
 */
PMTRACK_API UINT pmtrack_GetWriteWatch(DWORD flags, PVOID base, SIZE_T size,
				       PVOID *addresses, ULONG_PTR *count,
				       LPDWORD granularity);

/**
 * pmtrack_ResetWriteWatch() - mark the pages of [@base, @base + @size)
 * clean.  A write made by another thread between a GetWriteWatch() without
 * RESET and this call is lost, as on Windows: use WRITE_WATCH_FLAG_RESET.
 * Return: 0, or (UINT)-1 with the last error set (ERROR_INVALID_PARAMETER
 * for an empty range or one not inside one write-watch allocation).
 */
PMTRACK_API UINT pmtrack_ResetWriteWatch(LPVOID base, SIZE_T size);

/**
 * pmtrack_VirtualAlloc() - reserve and/or commit memory.
 * @addr: NULL to let the system choose; else the base to reserve at
 *	(rounded down to 64 KiB) or the start of pages to commit in an
 *	existing allocation (rounded down to 4 KiB)
 * @type: MEM_RESERVE and/or MEM_COMMIT, optionally MEM_WRITE_WATCH (with
 *	MEM_RESERVE) and MEM_TOP_DOWN.  MEM_COMMIT alone with @addr NULL
 *	reserves too.
 * @protect: PAGE_NOACCESS, PAGE_READONLY or PAGE_READWRITE; committing
 *	committed pages changes their protection and keeps their contents
 * Return: the base of the reservation or of the committed pages, or NULL
 * with the last error set: ERROR_INVALID_PARAMETER (bad @size, @type or
 * @protect), ERROR_INVALID_ADDRESS (the range to reserve is in use, or the
 * pages to commit are not inside one allocation), ERROR_NOT_ENOUGH_MEMORY.
 */
PMTRACK_API PVOID pmtrack_VirtualAlloc(PVOID addr, SIZE_T size, DWORD type,
				       DWORD protect);

/**
 * pmtrack_VirtualFree() - decommit pages or release an allocation.
 * @type: MEM_DECOMMIT (pages of [@addr, @addr + @size) inside one
 *	allocation, or the whole allocation if @size is 0 and @addr is its
 *	base) or MEM_RELEASE (@addr the base, @size 0)
 * Return: nonzero, or 0 (FALSE) with the last error set:
 * ERROR_INVALID_PARAMETER (another @type, MEM_RELEASE with a @size,
 * MEM_DECOMMIT of size 0 not at the base), ERROR_INVALID_ADDRESS (no
 * allocation there, MEM_RELEASE not at the base, pages past the end).
 */
PMTRACK_API BOOL pmtrack_VirtualFree(LPVOID addr, SIZE_T size, DWORD type);

/**
 * pmtrack_VirtualProtect() - change the protection of committed pages.
 * @oldprotect: receives the previous protection of the first page
 * Return: nonzero, or 0 with the last error set: ERROR_NOACCESS for a NULL
 * @oldprotect, ERROR_INVALID_PARAMETER for an unsupported protection or an
 * empty range, ERROR_INVALID_ADDRESS if the pages are not committed pages
 * of one allocation.
 */
PMTRACK_API BOOL pmtrack_VirtualProtect(LPVOID addr, SIZE_T size,
					DWORD newprotect, PDWORD oldprotect);

/**
 * pmtrack_GetLastError() - the calling thread's last error code.
 *
 * Return: the ERROR_* code the last failing call of this thread set.
 */
PMTRACK_API DWORD pmtrack_GetLastError(void);

/**
 * pmtrack_SetLastError() - set the calling thread's last error code.
 * @err: the code pmtrack_GetLastError() returns next
 */
PMTRACK_API void pmtrack_SetLastError(DWORD err);

/**
 * pmtrack_winwatch_prepare_io() - get [@buf, @buf + @len) ready for a
 * system call that writes into it (read(2), recv(2), ...).
 * @buf, @len: the buffer
 *
 * It does what Windows' ReadFile() does: every page of the buffer in a
 * write-watch allocation is marked written, and on backends without
 * PMTRACK_CAP_KERNEL_WRITES it is made writable for the kernel.  A
 * concurrent RESET call may re-arm the pages: retry both on EFAULT then.
 * It follows the library's conventions, not Windows'.
 *
 * Return: 0; -EINVAL for @len 0 or a
 * wrapping range; -EFAULT if the buffer is not committed PAGE_READWRITE
 * memory of one pmtrack_VirtualAlloc() allocation (nothing is marked);
 * another -errno from the tracker.
 */
PMTRACK_API int pmtrack_winwatch_prepare_io(const void *buf, size_t len);

/**
 * pmtrack_winwatch_backend() - the backend write-watch allocations use.
 *
 * It creates the process-wide tracker if no allocation did yet.  For
 * diagnostics and tests.
 *
 * Return: an enum pmtrack_backend, or -errno if none can be had.
 */
PMTRACK_API int pmtrack_winwatch_backend(void);

#ifdef PMTRACK_WINAPI_NAMES
#define GetWriteWatch pmtrack_GetWriteWatch
#define ResetWriteWatch pmtrack_ResetWriteWatch
#define VirtualAlloc pmtrack_VirtualAlloc
#define VirtualFree pmtrack_VirtualFree
#define VirtualProtect pmtrack_VirtualProtect
#define GetLastError pmtrack_GetLastError
#define SetLastError pmtrack_SetLastError
#endif

#ifdef __cplusplus
}
#endif

#endif /* PMTRACK_WINWATCH_H */

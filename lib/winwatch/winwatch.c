// SPDX-License-Identifier: MIT
/*
 * GetWriteWatch / ResetWriteWatch with Windows semantics (winwatch.h).
 *
 * Every allocation made by pmtrack_VirtualAlloc() is one mapping; its pages'
 * commit state and protection live here (Linux has no commit), and a
 * write-watch allocation is watched whole by one process-wide tracker for
 * its life.  Protections change through pmt_protect(), which leaves the
 * tracking alone on every backend.
 *
 * Write state.  Besides the tracker's state each write-watch allocation has
 * two bitmaps, one bit per 4 KiB page:
 *  - "held": written pages the tracker already gave us but that were not
 *    reset yet.  A RESET query takes every written page of the range from
 *    the tracker (atomically, so no racing write is lost) into held, then
 *    reports and clears held up to where the caller's array filled.  So
 *    the "reset only up to the last page returned" rule costs nothing and
 *    pages past it stay written.  A query without RESET reports held OR
 *    the tracker's pages and changes nothing.
 *  - "latch": pages that were written when VirtualProtect was called over
 *    them.  Decommit clears held except these (Windows' behaviour).
 * Both are protected by the process-wide lock.  Writers never take it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pmtrack/winwatch.h>

#include "bitmap.h"
#include "track.h"

#define WW_PAGE 4096u
#define WW_ALLOC_ALIGN 65536u

struct ww_alloc {
	uintptr_t base, end;
	bool watch;
	unsigned char *prot; /* per page: 0 reserved, else PAGE_* */
	uint64_t *held, *latch;
};

static pthread_mutex_t ww_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ww_alloc **allocs; /* sorted by base */
static size_t nallocs, cap_allocs;
static struct pmtrack *tracker;
static struct pmtrack_bitmap *scratch;
static __thread DWORD last_error;

PMTRACK_API DWORD pmtrack_GetLastError(void)
{
	return last_error;
}

PMTRACK_API void pmtrack_SetLastError(DWORD err)
{
	last_error = err;
}

static DWORD errno_to_error(int err)
{
	switch (err) {
	case -ENOMEM:
		return ERROR_NOT_ENOUGH_MEMORY;
	case -EOPNOTSUPP:
		return ERROR_NOT_SUPPORTED;
	default:
		return ERROR_GEN_FAILURE;
	}
}

/* ---- the allocation table ----------------------------------------------- */

/* the allocation holding [a, e), or NULL */
static struct ww_alloc *alloc_find(uintptr_t a, uintptr_t e)
{
	size_t lo = 0, hi = nallocs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (allocs[mid]->end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == nallocs || allocs[lo]->base > a || e > allocs[lo]->end)
		return NULL;
	return allocs[lo];
}

static int alloc_insert(struct ww_alloc *al)
{
	size_t i = 0;

	if (nallocs == cap_allocs) {
		size_t cap = cap_allocs ? 2 * cap_allocs : 16;
		struct ww_alloc **n = realloc(allocs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		allocs = n;
		cap_allocs = cap;
	}
	while (i < nallocs && allocs[i]->base < al->base)
		i++;
	memmove(&allocs[i + 1], &allocs[i], (nallocs - i) * sizeof(*allocs));
	allocs[i] = al;
	nallocs++;
	return 0;
}

static void alloc_remove(struct ww_alloc *al)
{
	for (size_t i = 0; i < nallocs; i++)
		if (allocs[i] == al) {
			memmove(&allocs[i], &allocs[i + 1],
				(nallocs - i - 1) * sizeof(*allocs));
			nallocs--;
			return;
		}
}

static void alloc_free(struct ww_alloc *al)
{
	if (!al)
		return;
	free(al->prot);
	free(al->held);
	free(al->latch);
	free(al);
}

static size_t page_index(const struct ww_alloc *al, uintptr_t a)
{
	return (a - al->base) / WW_PAGE;
}

/* ---- the tracker -------------------------------------------------------- */

static int tracker_get(void)
{
	int ret;
	/* Windows' RESET is atomic and resets only the range asked for:
	 * soft-dirty can do neither, and is passed over */
	PMTRACK_OPTS(pmtrack_opts, o,
		     .require = PMTRACK_CAP_ATOMIC_RESET |
				PMTRACK_CAP_RANGE_RESET);

	if (tracker)
		return 0;
	if (sysconf(_SC_PAGESIZE) != WW_PAGE)
		return -EOPNOTSUPP;
	ret = pmtrack_bitmap_new(&scratch);
	if (ret)
		return ret;
	ret = pmtrack_new(&o, &tracker);
	if (ret) {
		pmtrack_bitmap_free(scratch);
		scratch = NULL;
	}
	return ret;
}

PMTRACK_API int pmtrack_winwatch_backend(void)
{
	int ret;

	pthread_mutex_lock(&ww_lock);
	ret = tracker_get();
	if (!ret)
		ret = (int)pmtrack_backend(tracker);
	pthread_mutex_unlock(&ww_lock);
	return ret;
}

/* OR the pages of @bm (from the tracker, covering from @a) into @held */
static void held_add(struct ww_alloc *al, uintptr_t a,
		     const struct pmtrack_bitmap *bm)
{
	size_t n = pmtrack_bitmap_npages(bm), off = page_index(al, a);
	const uint64_t *w = pmtrack_bitmap_words(bm, NULL);

	for (size_t i = pmt_bits_next(w, n, 0); i < n;
	     i = pmt_bits_next(w, n, i + 1))
		pmt_bit_set(al->held, off + i);
}

/* move the pages of [a, e) the tracker saw written into held */
static int drain(struct ww_alloc *al, uintptr_t a, uintptr_t e)
{
	int ret = pmtrack_collect_bitmap(tracker, (void *)a, e - a,
					 PMTRACK_COLLECT_RESET, scratch);

	/* on an error, what was reset before it is in scratch */
	held_add(al, a, scratch);
	return ret;
}

/* ---- protections -------------------------------------------------------- */

static bool prot_valid(DWORD p)
{
	return p == PAGE_NOACCESS || p == PAGE_READONLY || p == PAGE_READWRITE;
}

static int unix_prot(DWORD p)
{
	switch (p) {
	case PAGE_READONLY:
		return PROT_READ;
	case PAGE_READWRITE:
		return PROT_READ | PROT_WRITE;
	default:
		return PROT_NONE;
	}
}

static int set_prot(struct ww_alloc *al, uintptr_t a, uintptr_t e, int prot)
{
	if (al->watch)
		return pmt_protect(tracker, (void *)a, e - a, prot);
	return mprotect((void *)a, e - a, prot) ? -errno : 0;
}

/* commit [a, e) with @p; reserved pages there are zero and clean */
static int commit(struct ww_alloc *al, uintptr_t a, uintptr_t e, DWORD p)
{
	int ret = set_prot(al, a, e, unix_prot(p));

	if (!ret)
		memset(al->prot + page_index(al, a), (int)p,
		       page_index(al, e) - page_index(al, a));
	return ret;
}

/* ---- VirtualAlloc ------------------------------------------------------- */

static void *map_aligned(uintptr_t want, size_t len)
{
	void *p;
	uintptr_t a;
	size_t slack;

	if (want) {
		p = mmap((void *)want, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
				 MAP_FIXED_NOREPLACE,
			 -1, 0);
		if (p != MAP_FAILED && (uintptr_t)p != want) {
			/* a kernel without MAP_FIXED_NOREPLACE took a hint */
			munmap(p, len);
			errno = EEXIST;
			return MAP_FAILED;
		}
		return p;
	}
	if (len > SIZE_MAX - WW_ALLOC_ALIGN) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	p = mmap(NULL, len + WW_ALLOC_ALIGN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return p;
	a = ((uintptr_t)p + WW_ALLOC_ALIGN - 1) &
	    ~(uintptr_t)(WW_ALLOC_ALIGN - 1);
	slack = a - (uintptr_t)p;
	if (slack)
		munmap(p, slack);
	munmap((void *)(a + len), WW_ALLOC_ALIGN - slack);
	return (void *)a;
}

static PVOID reserve(uintptr_t want, SIZE_T size, DWORD type, DWORD protect)
{
	uintptr_t base = want & ~(uintptr_t)(WW_ALLOC_ALIGN - 1), end;
	struct ww_alloc *al;
	size_t npages, nwords;
	void *p;
	int ret;

	if (want + size < want || want + size > UINTPTR_MAX - WW_PAGE)
		goto inval;
	end = want ? want + size : size;
	end = (end + WW_PAGE - 1) & ~(uintptr_t)(WW_PAGE - 1);
	npages = (end - base) / WW_PAGE;
	nwords = (npages + 63) / 64;
	al = calloc(1, sizeof(*al));
	if (!al || !(al->prot = calloc(npages, 1)))
		goto nomem;
	al->watch = type & MEM_WRITE_WATCH;
	if (al->watch && (!(al->held = calloc(nwords, 8)) ||
			  !(al->latch = calloc(nwords, 8))))
		goto nomem;
	if (al->watch && (ret = tracker_get())) {
		alloc_free(al);
		last_error = errno_to_error(ret);
		return NULL;
	}
	p = map_aligned(base, end - base);
	if (p == MAP_FAILED) {
		alloc_free(al);
		last_error = errno == EEXIST ? ERROR_INVALID_ADDRESS
					     : ERROR_NOT_ENOUGH_MEMORY;
		return NULL;
	}
	al->base = (uintptr_t)p;
	al->end = al->base + (end - base);
	/* whole 4 KiB pages are reported: no transparent huge pages */
	madvise(p, al->end - al->base, MADV_NOHUGEPAGE);
	ret = al->watch ? pmtrack_watch(tracker, p, al->end - al->base) : 0;
	if (!ret)
		ret = set_prot(al, al->base, al->end, PROT_NONE);
	if (!ret && (type & MEM_COMMIT))
		ret = commit(al, al->base, al->end, protect);
	if (!ret)
		ret = alloc_insert(al);
	if (ret) {
		if (al->watch)
			pmtrack_unwatch(tracker, p, al->end - al->base);
		munmap(p, al->end - al->base);
		alloc_free(al);
		last_error = errno_to_error(ret);
		return NULL;
	}
	return p;
inval:
	last_error = ERROR_INVALID_PARAMETER;
	return NULL;
nomem:
	alloc_free(al);
	last_error = ERROR_NOT_ENOUGH_MEMORY;
	return NULL;
}

PMTRACK_API PVOID pmtrack_VirtualAlloc(PVOID addr, SIZE_T size, DWORD type,
				       DWORD protect)
{
	const DWORD known =
		MEM_COMMIT | MEM_RESERVE | MEM_WRITE_WATCH | MEM_TOP_DOWN;
	uintptr_t a = (uintptr_t)addr, s, e;
	struct ww_alloc *al;
	PVOID ret = NULL;
	int r;

	if (!size || (type & ~known) || !(type & (MEM_COMMIT | MEM_RESERVE)) ||
	    ((type & MEM_WRITE_WATCH) && !(type & MEM_RESERVE)) ||
	    !prot_valid(protect)) {
		last_error = ERROR_INVALID_PARAMETER;
		return NULL;
	}
	pthread_mutex_lock(&ww_lock);
	if ((type & MEM_RESERVE) || !addr) {
		ret = reserve(a, size, type, protect);
		goto out;
	}
	s = a & ~(uintptr_t)(WW_PAGE - 1);
	e = a + size;
	if (e < a || e > UINTPTR_MAX - WW_PAGE) {
		last_error = ERROR_INVALID_PARAMETER;
		goto out;
	}
	e = (e + WW_PAGE - 1) & ~(uintptr_t)(WW_PAGE - 1);
	al = alloc_find(s, e);
	if (!al) {
		last_error = ERROR_INVALID_ADDRESS;
		goto out;
	}
	r = commit(al, s, e, protect);
	if (r)
		last_error = errno_to_error(r);
	else
		ret = (PVOID)s;
out:
	pthread_mutex_unlock(&ww_lock);
	return ret;
}

/* ---- VirtualFree, VirtualProtect ---------------------------------------- */

static int decommit(struct ww_alloc *al, uintptr_t a, uintptr_t e)
{
	size_t from = page_index(al, a), to = page_index(al, e);
	int ret = set_prot(al, a, e, PROT_NONE);

	if (ret)
		return ret;
	/* zero-filled on the next touch */
	if (madvise((void *)a, e - a, MADV_DONTNEED))
		return -errno;
	memset(al->prot + from, 0, to - from);
	if (!al->watch)
		return 0;
	/* clean in the tracker (which also re-arms the zapped pages), and in
	 * held except where VirtualProtect latched it */
	ret = pmtrack_reset(tracker, (void *)a, e - a);
	pmt_bits_and(al->held, al->latch, from, to - from);
	return ret;
}

PMTRACK_API BOOL pmtrack_VirtualFree(LPVOID addr, SIZE_T size, DWORD type)
{
	uintptr_t a = (uintptr_t)addr, s = a & ~(uintptr_t)(WW_PAGE - 1), e;
	struct ww_alloc *al;
	BOOL ok = 0;
	int r;

	if (type != MEM_DECOMMIT && type != MEM_RELEASE) {
		last_error = ERROR_INVALID_PARAMETER;
		return 0;
	}
	if (a + size < a || a + size > UINTPTR_MAX - WW_PAGE) {
		last_error = ERROR_INVALID_PARAMETER;
		return 0;
	}
	pthread_mutex_lock(&ww_lock);
	al = alloc_find(s, s + 1);
	if (!al) {
		last_error = ERROR_INVALID_ADDRESS;
		goto out;
	}
	if (type == MEM_RELEASE) {
		if (size || a != al->base) {
			/* not at the base: STATUS_FREE_VM_NOT_AT_BASE */
			last_error = size ? ERROR_INVALID_PARAMETER
					  : ERROR_INVALID_ADDRESS;
			goto out;
		}
		if (al->watch &&
		    (r = pmtrack_unwatch(tracker, addr, al->end - al->base))) {
			last_error = errno_to_error(r);
			goto out;
		}
		munmap(addr, al->end - al->base);
		alloc_remove(al);
		alloc_free(al);
		ok = 1;
		goto out;
	}
	if (!size && a != al->base) {
		last_error = ERROR_INVALID_PARAMETER;
		goto out;
	}
	e = size ? (a + size + WW_PAGE - 1) & ~(uintptr_t)(WW_PAGE - 1)
		 : al->end;
	if (e > al->end) {
		last_error = ERROR_INVALID_ADDRESS;
		goto out;
	}
	r = decommit(al, s, e);
	if (r)
		last_error = errno_to_error(r);
	ok = !r;
out:
	pthread_mutex_unlock(&ww_lock);
	return ok;
}

PMTRACK_API BOOL pmtrack_VirtualProtect(LPVOID addr, SIZE_T size,
					DWORD newprotect, PDWORD oldprotect)
{
	uintptr_t a = (uintptr_t)addr, s = a & ~(uintptr_t)(WW_PAGE - 1), e;
	struct ww_alloc *al;
	BOOL ok = 0;
	DWORD old;
	int r;

	if (!oldprotect) {
		last_error = ERROR_NOACCESS;
		return 0;
	}
	if (!prot_valid(newprotect) || !size || a + size < a ||
	    a + size > UINTPTR_MAX - WW_PAGE) {
		last_error = ERROR_INVALID_PARAMETER;
		return 0;
	}
	e = (a + size + WW_PAGE - 1) & ~(uintptr_t)(WW_PAGE - 1);
	pthread_mutex_lock(&ww_lock);
	al = alloc_find(s, e);
	if (al && memchr(al->prot + page_index(al, s), 0,
			 page_index(al, e) - page_index(al, s)))
		al = NULL; /* a reserved page */
	if (!al) {
		last_error = ERROR_INVALID_ADDRESS;
		goto out;
	}
	old = al->prot[page_index(al, s)];
	if (al->watch) {
		/* what is written now is latched (see the top) */
		r = drain(al, s, e);
		if (r) {
			last_error = errno_to_error(r);
			goto out;
		}
		pmt_bits_or(al->latch, al->held, page_index(al, s),
			    page_index(al, e) - page_index(al, s));
	}
	r = commit(al, s, e, newprotect);
	if (r) {
		last_error = errno_to_error(r);
		goto out;
	}
	*oldprotect = old;
	ok = 1;
out:
	pthread_mutex_unlock(&ww_lock);
	return ok;
}

/* ---- write watches ------------------------------------------------------ */

/* the rounded range of [base, base + size), false if it wraps */
static bool ww_range(PVOID base, SIZE_T size, uintptr_t *s, uintptr_t *e)
{
	uintptr_t a = (uintptr_t)base;

	if (a + size < a || a + size > UINTPTR_MAX - WW_PAGE)
		return false;
	*s = a & ~(uintptr_t)(WW_PAGE - 1);
	*e = (a + size + WW_PAGE - 1) & ~(uintptr_t)(WW_PAGE - 1);
	return true;
}

/* the write-watch allocation holding [s, e); else NULL and the error */
static struct ww_alloc *watch_find(uintptr_t s, uintptr_t e)
{
	struct ww_alloc *al = alloc_find(s, e);

	if (al && al->watch)
		return al;
	last_error = ERROR_INVALID_PARAMETER;
	return NULL;
}

static void reset_held(struct ww_alloc *al, uintptr_t s, uintptr_t e)
{
	size_t from = page_index(al, s), n = page_index(al, e) - from;

	pmt_bits_clear(al->held, from, n);
	pmt_bits_clear(al->latch, from, n);
}

PMTRACK_API UINT pmtrack_GetWriteWatch(DWORD flags, PVOID base, SIZE_T size,
				       PVOID *addresses, ULONG_PTR *count,
				       LPDWORD granularity)
{
	uintptr_t s = 0, e = 0, last = 0;
	struct ww_alloc *al;
	bool reset = flags & WRITE_WATCH_FLAG_RESET;
	size_t n = 0, from, to;
	UINT ret = (UINT)-1;
	int r;

	if (!count || !granularity) {
		last_error = ERROR_NOACCESS;
		return ret;
	}
	if (!ww_range(base, size, &s, &e)) {
		last_error = ERROR_INVALID_PARAMETER;
		return ret;
	}
	if (!*count || s == e || (flags & ~(DWORD)WRITE_WATCH_FLAG_RESET)) {
		last_error = ERROR_INVALID_PARAMETER;
		return ret;
	}
	if (!addresses) {
		last_error = ERROR_NOACCESS;
		return ret;
	}
	pthread_mutex_lock(&ww_lock);
	al = watch_find(s, e);
	if (!al)
		goto out;
	/* RESET: take the tracker's pages for good; else just look */
	r = reset ? drain(al, s, e)
		  : pmtrack_collect_bitmap(tracker, (void *)s, e - s, 0,
					   scratch);
	if (r) {
		last_error = errno_to_error(r);
		goto out;
	}
	from = page_index(al, s);
	to = page_index(al, e);
	/* held, or (without RESET, which moved them there) the tracker's */
	for (size_t i = from; n < *count; i++) {
		size_t h = pmt_bits_next(al->held, to, i);

		if (!reset) {
			/* scratch covers [from, to) */
			size_t k =
				from + pmtrack_bitmap_next(scratch, i - from);

			if (k < h)
				h = k;
		}
		if (h >= to)
			break;
		i = h;
		last = al->base + i * WW_PAGE;
		addresses[n++] = (PVOID)last;
	}
	if (reset)
		reset_held(al, s, n == *count ? last + WW_PAGE : e);
	*count = n;
	*granularity = WW_PAGE;
	ret = 0;
out:
	pthread_mutex_unlock(&ww_lock);
	return ret;
}

PMTRACK_API UINT pmtrack_ResetWriteWatch(LPVOID base, SIZE_T size)
{
	uintptr_t s, e;
	struct ww_alloc *al;
	UINT ret = (UINT)-1;
	int r;

	if (!ww_range(base, size, &s, &e) || s == e) {
		last_error = ERROR_INVALID_PARAMETER;
		return ret;
	}
	pthread_mutex_lock(&ww_lock);
	al = watch_find(s, e);
	if (!al)
		goto out;
	r = pmtrack_reset(tracker, (void *)s, e - s);
	if (r) {
		last_error = errno_to_error(r);
		goto out;
	}
	reset_held(al, s, e);
	ret = 0;
out:
	pthread_mutex_unlock(&ww_lock);
	return ret;
}

PMTRACK_API int pmtrack_winwatch_prepare_io(const void *buf, size_t len)
{
	uintptr_t a = (uintptr_t)buf, s, e;
	struct ww_alloc *al;
	int ret = 0;

	if (!len || !ww_range((PVOID)buf, len, &s, &e))
		return -EINVAL;
	pthread_mutex_lock(&ww_lock);
	al = alloc_find(s, e);
	if (!al) {
		ret = -EFAULT;
		goto out;
	}
	for (size_t i = page_index(al, s); i < page_index(al, e); i++)
		if (al->prot[i] != PAGE_READWRITE) {
			ret = -EFAULT;
			goto out;
		}
	if (!al->watch)
		goto out;
	pmt_bits_set(al->held, page_index(al, s),
		     page_index(al, e) - page_index(al, s));
	ret = pmtrack_prepare_kernel_write(tracker, (void *)a, len);
out:
	pthread_mutex_unlock(&ww_lock);
	return ret;
}

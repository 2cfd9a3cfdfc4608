// SPDX-License-Identifier: MIT
/*
 * Page-state maps (include/pmtrack/pagestate.h).
 *
 * Per mapping of /proc/PID/maps, the kernel's answer comes as runs of pages
 * with equal states: from PAGEMAP_SCAN, or from reads of /proc/PID/pagemap
 * folded into runs.  Each run then goes through refine(), which splits it
 * where the kernel's answer needs help: a "swapped" entry that may be a
 * userfaultfd marker, present pages whose exclusive bit PAGEMAP_SCAN does
 * not report, and the holes of shared memory, which are looked up in the
 * backing object.  What comes out is masked with what the caller wants and
 * handed to a sink (runs, bitmaps or counts).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <pmtrack/pagestate.h>

#include "base.h"
#include "bitmap.h"
#include "proc.h"
#include "uapi_compat.h"

/* internal run states, above the public ones */
#define PST_GAP (1u << 16)   /* no page-table entry */
#define PST_AMBIG (1u << 17) /* swap entry or uffd-wp marker */

#define PST_VEC_LEN 4096u
#define PST_PM_LEN 32768u /* pagemap entries per read */
#define PST_MC_LEN 65536u /* mincore bytes per call */

struct pst_obj {
	/* 0 not looked up, 1 usable, -1 out of reach, -2 not shared memory
	 * (hugetlbfs, a regular file: its holes are just holes) */
	int state;
	int fd;
	void *map; /* PROT_NONE view of the object, for mincore */
	size_t maplen;
	/* the last SEEK_DATA, valid in walk number gen: [from, d) is a hole
	 * (d = UINT64_MAX: no data after from) */
	uint64_t gen, from, d;
};

struct pmtrack_pstate {
	pid_t pid; /* 0: the caller */
	int pagemap_fd;
	unsigned int flags;
	bool use_scan, show_pfn, guard, zero_known;
	bool swap_on;  /* any swap area, at the start of this walk */
	uint64_t gen;  /* walks so far */
	int cachestat; /* 1 works, 0 missing, -1 not tried */
	uint64_t zero_pfn;
	unsigned int known;
	size_t page_size;
	unsigned int pshift;

	bool have_maps;
	struct pmtrack_mapping *maps;
	struct pst_obj *objs;
	size_t nmaps;
	char *names;

	struct page_region *vec;
	uint64_t *pm;
	uint64_t win_s; /* pm holds the entries of [win_s, + win_n pages) */
	size_t win_n;
	unsigned char *mc;
};

struct pst_sink {
	/* 0 to go on, 1 when full (stop set to @s) */
	int (*put)(struct pst_sink *k, uint64_t s, uint64_t e, unsigned int st,
		   unsigned int map);
	void (*span)(struct pst_sink *k, uint64_t pages);
	/* set where only the number of pages in each state matters (counts):
	 * shared memory may then be accounted without finding where its
	 * pages are */
	void (*add)(struct pst_sink *k, uint64_t pages, unsigned int st);
	uint64_t stop;
};

struct pst_ctx {
	struct pmtrack_pstate *ps;
	unsigned int mi;
	const struct pmtrack_mapping *m;
	unsigned int want;
	struct pst_sink *sink;
	/* counting a whole shared-memory object (whole_object()): gaps are
	 * not looked up; @held of its @blocks pages are accounted for */
	bool defer;
	uint64_t blocks, held;
};

/* ---- low-level helpers ------------------------------------------------ */

static int read_entries(struct pmtrack_pstate *ps, uint64_t s, size_t n)
{
	size_t want = n * sizeof(uint64_t), got = 0;
	off_t off = (off_t)((s >> ps->pshift) * sizeof(uint64_t));

	ps->win_n = 0;
	while (got < want) {
		ssize_t r = pread(ps->pagemap_fd, (char *)ps->pm + got,
				  want - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) /* the process exited */
			return -ESRCH;
		got += (size_t)r;
	}
	ps->win_s = s;
	ps->win_n = n;
	return 0;
}

/* pagemap entries of [s, s + n pages) (n <= PST_PM_LEN), from the last
 * read if it holds them, else read ahead up to @limit; NULL and *err on
 * failure */
static const uint64_t *entries(struct pmtrack_pstate *ps, uint64_t s, size_t n,
			       uint64_t limit, int *err)
{
	size_t want = (size_t)((limit - s) >> ps->pshift);

	if (ps->win_n && s >= ps->win_s &&
	    ((s - ps->win_s) >> ps->pshift) + n <= ps->win_n)
		return ps->pm + ((s - ps->win_s) >> ps->pshift);
	if (want > PST_PM_LEN)
		want = PST_PM_LEN;
	if (want < n)
		want = n;
	*err = read_entries(ps, s, want);
	return *err ? NULL : ps->pm;
}

static int emit(struct pst_ctx *c, uint64_t s, uint64_t e, unsigned int st)
{
	if (c->m->flags & PMTRACK_MAP_SHARED && st)
		st |= PMTRACK_PAGE_FILE;
	st &= c->want;
	if (!st || s >= e)
		return 0;
	return c->sink->put(c->sink, s, e, st, c->mi);
}

/* @pages pages in state @st, somewhere in the mapping (c->sink->add set) */
static void emit_pages(struct pst_ctx *c, uint64_t pages, unsigned int st)
{
	if (c->m->flags & PMTRACK_MAP_SHARED && st)
		st |= PMTRACK_PAGE_FILE;
	st &= c->want;
	if (st && pages)
		c->sink->add(c->sink, pages, st);
}

/* ---- shared memory: the backing object -------------------------------- */

static int open_via_fds(struct pmtrack_pstate *ps,
			const struct pmtrack_mapping *m)
{
	char dir[64], path[64 + 256];
	struct dirent *de;
	DIR *d;
	int fd = -1;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", ps->pid ? ps->pid : getpid());
	d = opendir(dir);
	if (!d)
		return -1;
	while (fd < 0 && (de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) || st.st_ino != m->inode ||
		    major(st.st_dev) != m->dev_major ||
		    minor(st.st_dev) != m->dev_minor)
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	closedir(d);
	return fd;
}

static struct pst_obj *get_obj(struct pmtrack_pstate *ps, unsigned int mi)
{
	const struct pmtrack_mapping *m = &ps->maps[mi];
	struct pst_obj *o = &ps->objs[mi];
	struct statfs sfs;
	char name[64];
	int fd;

	if (o->state)
		return o->state > 0 ? o : NULL;
	o->state = -1;
	if (ps->flags & PMTRACK_PSTATE_NO_OBJECTS)
		return NULL;
	snprintf(name, sizeof(name), "map_files/%" PRIx64 "-%" PRIx64, m->start,
		 m->end);
	fd = pmt_proc_open(ps->pid, name, O_RDONLY);
	if (fd < 0)
		fd = open_via_fds(ps, m);
	if (fd < 0)
		return NULL;
	if (fstatfs(fd, &sfs) || sfs.f_type != TMPFS_MAGIC) {
		o->state = -2;
		if (!fstatfs(fd, &sfs) && sfs.f_type == HUGETLBFS_MAGIC)
			ps->maps[mi].flags |= PMTRACK_MAP_HUGETLB;
		ps->maps[mi].flags &= ~PMTRACK_MAP_SHMEM;
		close(fd);
		return NULL;
	}
	o->maplen = m->end - m->start;
	o->map = mmap(NULL, o->maplen, PROT_NONE, MAP_SHARED, fd,
		      (off_t)m->offset);
	if (o->map == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	o->fd = fd;
	o->state = 1;
	return o;
}

static void put_objs(struct pmtrack_pstate *ps)
{
	for (size_t i = 0; i < ps->nmaps; i++) {
		if (ps->objs[i].state > 0) {
			munmap(ps->objs[i].map, ps->objs[i].maplen);
			close(ps->objs[i].fd);
		}
	}
}

/* cachestat(2) of the object's pages [a, b) (file offsets, a < b): 0, 1
 * where the kernel has none or refuses it (ps->cachestat is then 0), or
 * -errno */
static int obj_cachestat(struct pmtrack_pstate *ps, int fd, uint64_t a,
			 uint64_t b, struct pmt_cachestat *cs)
{
	struct pmt_cachestat_range r = { a, b - a };

	if (!ps->cachestat)
		return 1;
	if (syscall(__NR_cachestat, fd, &r, cs, 0)) {
		if (errno == ENOSYS || errno == EPERM) {
			ps->cachestat = 0;
			return 1;
		}
		return -errno;
	}
	ps->cachestat = 1;
	return 0;
}

/* resident object pages [a, b) (file offsets), mapped at @addr: page cache
 * or swap cache?  cachestat counts a shmem page whose slot holds a swap
 * entry as evicted, even while the swap cache still has it in RAM */
static int split_resident(struct pst_ctx *c, int fd, uint64_t a, uint64_t b,
			  uint64_t addr)
{
	struct pmtrack_pstate *ps = c->ps;
	struct pmt_cachestat cs;
	uint64_t mid;
	int ret;

	if (!ps->swap_on)
		return emit(c, addr, addr + (b - a), PMTRACK_PAGE_PRESENT);
	ret = obj_cachestat(ps, fd, a, b, &cs);
	if (ret < 0)
		return ret;
	if (ret || !cs.nr_evicted)
		return emit(c, addr, addr + (b - a), PMTRACK_PAGE_PRESENT);
	if (!cs.nr_cache || b - a <= ps->page_size)
		return emit(c, addr, addr + (b - a), PMTRACK_PAGE_SWAPPED);
	mid = a + (((b - a) >> ps->pshift) / 2 << ps->pshift);
	ret = split_resident(c, fd, a, mid, addr);
	return ret ? ret : split_resident(c, fd, mid, b, addr + (mid - a));
}

/*
 * [s, e) of @vec (mincore of the object, or of our own memory when @fd is
 * -1), file offset @off at @s: resident pages are in RAM (or the swap
 * cache); the others are holes, or swapped out if swap is on.  Without the
 * object, those cannot be told apart.
 */
static int by_residency(struct pst_ctx *c, const unsigned char *vec, uint64_t s,
			uint64_t e, int fd, uint64_t off, bool data)
{
	struct pmtrack_pstate *ps = c->ps;
	size_t n = (e - s) >> ps->pshift, i = 0;

	while (i < n) {
		size_t j = i + 1;
		bool in = vec[i] & 1;
		uint64_t a = s + (i << ps->pshift);
		uint64_t b;
		int ret;

		while (j < n && (vec[j] & 1) == in)
			j++;
		b = s + (j << ps->pshift);
		if (in && fd >= 0)
			ret = split_resident(c, fd, off + (a - s),
					     off + (b - s), a);
		else if (in)
			ret = emit(c, a, b, PMTRACK_PAGE_PRESENT);
		else if (!ps->swap_on)
			ret = 0; /* a hole: nothing can be in swap */
		else if (data)
			ret = emit(c, a, b, PMTRACK_PAGE_SWAPPED);
		else
			ret = emit(c, a, b, PMTRACK_PAGE_UNSURE);
		if (ret)
			return ret;
		i = j;
	}
	return 0;
}

/*
 * Object pages [x, y) (file offsets) at @addr that SEEK_DATA calls a hole
 * may still be in the page cache: pages fallocate(2) allocated and nobody
 * wrote yet.  They take RAM, and cachestat(2) counts them, but SEEK_DATA
 * and mincore(2) pass over them (not up to date); halving the range with
 * cachestat finds them.  (They cannot be in swap: swap-out writes them.)
 */
static int hole_pages(struct pst_ctx *c, struct pst_obj *o, uint64_t x,
		      uint64_t y, uint64_t addr)
{
	struct pmtrack_pstate *ps = c->ps;
	struct pmt_cachestat cs;
	uint64_t mid;
	int ret;

	if (x >= y)
		return 0;
	ret = obj_cachestat(ps, o->fd, x, y, &cs);
	if (ret || !cs.nr_cache)
		return ret < 0 ? ret : 0;
	if (cs.nr_cache >= (y - x) >> ps->pshift)
		return emit(c, addr, addr + (y - x), PMTRACK_PAGE_PRESENT);
	mid = x + (((y - x) >> ps->pshift) / 2 << ps->pshift);
	ret = hole_pages(c, o, x, mid, addr);
	return ret ? ret : hole_pages(c, o, mid, y, addr + (mid - x));
}

/*
 * The object's data in the pages of a gap [s, e): SEEK_DATA/SEEK_HOLE skip
 * its holes quickly.  Without swap, data is in RAM; with swap, mincore on
 * our PROT_NONE view tells RAM (page or swap cache) from swap.  With
 * @holes, SEEK_DATA's holes are checked for pages in the page cache too
 * (hole_pages()).
 */
static int object_data(struct pst_ctx *c, struct pst_obj *o, uint64_t s,
		       uint64_t e, bool holes)
{
	struct pmtrack_pstate *ps = c->ps;
	const struct pmtrack_mapping *m = c->m;
	uint64_t pg = ps->page_size, chunk = (uint64_t)PST_MC_LEN << ps->pshift;
	uint64_t off = m->offset + (s - m->start), end = off + (e - s);

	for (uint64_t pos = off; pos < end;) {
		uint64_t a, b;

		off_t d, h;

		/* gaps come in ascending order: a hole found last time often
		 * covers the next gap too */
		if (o->gen == ps->gen && pos >= o->from && pos < o->d) {
			d = (off_t)o->d;
		} else {
			d = lseek(o->fd, (off_t)pos, SEEK_DATA);
			if (d < 0 && errno != ENXIO)
				return -errno;
			o->gen = ps->gen;
			o->from = pos;
			o->d = d < 0 ? UINT64_MAX : (uint64_t)d;
		}
		if (o->d >= end)
			return holes ? hole_pages(c, o, pos, end,
						  s + (pos - off))
				     : 0;
		h = lseek(o->fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		/* i_size need not be a page multiple: a partial last page
		 * is a page */
		a = (uint64_t)d & ~(pg - 1);
		b = ((uint64_t)h + pg - 1) & ~(pg - 1);
		if (b > end)
			b = end;
		if (holes) {
			int ret = hole_pages(c, o, pos, a, s + (pos - off));

			if (ret)
				return ret;
		}
		pos = b;
		if (!ps->swap_on) {
			int ret = emit(c, s + (a - off), s + (b - off),
				       PMTRACK_PAGE_PRESENT);

			if (ret)
				return ret;
			continue;
		}
		for (uint64_t x = a; x < b;) {
			uint64_t y = b - x > chunk ? x + chunk : b;
			int ret;

			if (mincore((char *)o->map + (x - m->offset), y - x,
				    ps->mc))
				return -errno;
			ret = by_residency(c, ps->mc, s + (x - off),
					   s + (y - off), o->fd, x, true);
			if (ret)
				return ret;
			x = y;
		}
	}
	return 0;
}

/*
 * The object's pages in a gap [s, e): those in the page cache are in RAM
 * (PRESENT), swap entries are SWAPPED.  cachestat(2) counts both in one
 * call, which is all a count needs, and settles a gap that is all hole or
 * all one state; the others are walked with SEEK_DATA/SEEK_HOLE (and
 * mincore).  Without cachestat (before 6.5) only SEEK_DATA's data counts:
 * a page fallocate(2) allocated and nobody wrote is a hole there.
 */
static int object_pages(struct pst_ctx *c, struct pst_obj *o, uint64_t s,
			uint64_t e)
{
	struct pmtrack_pstate *ps = c->ps;
	uint64_t off = c->m->offset + (s - c->m->start);
	uint64_t n = (e - s) >> ps->pshift, in;
	struct pmt_cachestat cs;
	int ret = obj_cachestat(ps, o->fd, off, off + (e - s), &cs);

	if (ret)
		return ret < 0 ? ret : object_data(c, o, s, e, false);
	in = cs.nr_cache + cs.nr_evicted;
	if (!in)
		return 0;
	if (c->sink->add) {
		if (!ps->swap_on) { /* swapoff brought every page back */
			emit_pages(c, in, PMTRACK_PAGE_PRESENT);
		} else {
			emit_pages(c, cs.nr_cache, PMTRACK_PAGE_PRESENT);
			emit_pages(c, cs.nr_evicted, PMTRACK_PAGE_SWAPPED);
		}
		return 0;
	}
	if (in == n && (!ps->swap_on || !cs.nr_evicted))
		return emit(c, s, e, PMTRACK_PAGE_PRESENT);
	if (in == n && !cs.nr_cache)
		return emit(c, s, e, PMTRACK_PAGE_SWAPPED);
	return object_data(c, o, s, e, true);
}

/* a shared-memory range [s, e) with no page-table entry */
static int lookup_gap(struct pst_ctx *c, uint64_t s, uint64_t e)
{
	struct pmtrack_pstate *ps = c->ps;
	const struct pmtrack_mapping *m = c->m;
	uint64_t chunk = (uint64_t)PST_MC_LEN << ps->pshift;
	struct pst_obj *o;

	if (!(m->flags & PMTRACK_MAP_SHMEM) ||
	    !(c->want & (PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_SWAPPED |
			 PMTRACK_PAGE_UNSURE | PMTRACK_PAGE_FILE)))
		return 0;
	o = get_obj(ps, c->mi);
	if (!o && ps->objs[c->mi].state == -2)
		return 0;
	if (o)
		return object_pages(c, o, s, e);
	if (ps->pid)
		return emit(c, s, e, PMTRACK_PAGE_UNSURE);
	/* no object: our own memory still tells residency */
	for (uint64_t a = s; a < e;) {
		uint64_t b = e - a > chunk ? a + chunk : e;
		int ret;

		if (mincore((void *)(uintptr_t)a, b - a, ps->mc))
			return -errno;
		ret = by_residency(c, ps->mc, a, b, -1, 0, false);
		if (ret)
			return ret;
		a = b;
	}
	return 0;
}

/* ---- refining the kernel's runs --------------------------------------- */

/* EXCLUSIVE from a pagemap entry; a page mapped here but not exclusively
 * marks its mapping PMTRACK_MAP_MAPPED_ELSEWHERE */
static unsigned int excl_state(struct pst_ctx *c, uint64_t pm)
{
	if (pm & PMT_PM_EXCLUSIVE)
		return PMTRACK_PAGE_EXCLUSIVE;
	if (pm & PMT_PM_PRESENT && c->want & PMTRACK_PAGE_EXCLUSIVE)
		c->ps->maps[c->mi].flags |= PMTRACK_MAP_MAPPED_ELSEWHERE;
	return 0;
}

/* a page's state from its pagemap entry alone (reading pagemap) */
static inline unsigned int entry_state(const struct pst_ctx *c, uint64_t pm)
{
	const struct pmtrack_pstate *ps = c->ps;
	unsigned int st = 0;

	if (pm & PMT_PM_PRESENT) {
		st = PMTRACK_PAGE_PRESENT;
		if (pm & PMT_PM_EXCLUSIVE)
			st |= PMTRACK_PAGE_EXCLUSIVE;
		if (pm & PMT_PM_FILE)
			st |= PMTRACK_PAGE_FILE;
		if (ps->zero_known && (pm & PMT_PM_PFN_MASK) == ps->zero_pfn)
			st |= PMTRACK_PAGE_ZERO;
		return st;
	}
	if (!(pm & PMT_PM_SWAP))
		return PST_GAP;
	if (pm & PMT_PM_GUARD)
		return PMTRACK_PAGE_GUARD;
	/* with frame numbers shown, the swap type tells a PTE marker (uffd-wp,
	 * poison) from swap; without, only the uffd-wp bit hints at one */
	if (ps->show_pfn)
		return (pm & 31) == PMT_PM_SWP_TYPE_MARKER
			       ? PST_GAP
			       : PMTRACK_PAGE_SWAPPED;
	return pm & PMT_PM_UFFD_WP ? PST_AMBIG : PMTRACK_PAGE_SWAPPED;
}

static int refine(struct pst_ctx *c, uint64_t s, uint64_t e, unsigned int st);

/* what entry_runs() reads from pagemap entries, and where its runs go */
enum pst_split {
	PST_SPLIT_STATE,  /* entry_state(); runs are refined */
	PST_SPLIT_MARKER, /* base | SWAPPED, or nothing for a PTE marker */
	PST_SPLIT_EXCL,	  /* base, with EXCLUSIVE if the entry says so */
};

static inline unsigned int split_state(struct pst_ctx *c, uint64_t pm,
				       enum pst_split how, unsigned int base)
{
	switch (how) {
	case PST_SPLIT_MARKER:
		return (pm & PMT_PM_PFN_MASK & 31) == PMT_PM_SWP_TYPE_MARKER
			       ? 0
			       : base | PMTRACK_PAGE_SWAPPED;
	case PST_SPLIT_EXCL:
		return base | excl_state(c, pm);
	default:
		return entry_state(c, pm);
	}
}

/* the end of the run of one state that starts at entry @i of @pmv (@n
 * long); its state to *st */
static inline size_t run_end(struct pst_ctx *c, const uint64_t *pmv, size_t i,
			     size_t n, enum pst_split how, unsigned int base,
			     unsigned int *st)
{
	size_t j = i + 1;

	*st = split_state(c, pmv[i], how, base);
	while (j < n && split_state(c, pmv[j], how, base) == *st)
		j++;
	return j;
}

/* a run [s, e) in state @st, @pm its first entry: emitted, or refined */
static int split_run(struct pst_ctx *c, uint64_t s, uint64_t e, unsigned int st,
		     uint64_t pm, enum pst_split how)
{
	if (how != PST_SPLIT_STATE)
		return emit(c, s, e, st);
	if (st & PMTRACK_PAGE_PRESENT) /* the run shares it */
		(void)excl_state(c, pm);
	if (st == PST_GAP && !(c->m->flags & PMTRACK_MAP_SHMEM))
		return 0;
	return refine(c, s, e, st);
}

/*
 * The pages of [s, e) in runs of one state, as @how reads it from their
 * pagemap entries (entries(), reading ahead up to @limit).
 */
static int entry_runs(struct pst_ctx *c, uint64_t s, uint64_t e, uint64_t limit,
		      enum pst_split how, unsigned int base)
{
	struct pmtrack_pstate *ps = c->ps;

	while (s < e) {
		size_t n = (e - s) >> ps->pshift, i = 0;
		const uint64_t *pmv;
		int ret;

		if (n > PST_PM_LEN)
			n = PST_PM_LEN;
		pmv = entries(ps, s, n, limit, &ret);
		if (!pmv)
			return ret;
		while (i < n) {
			unsigned int st;
			size_t j;

			/* a copy of the loop for each kind, without the
			 * switch: reading pagemap, it runs for every page */
			if (how == PST_SPLIT_STATE)
				j = run_end(c, pmv, i, n, PST_SPLIT_STATE, 0,
					    &st);
			else if (how == PST_SPLIT_MARKER)
				j = run_end(c, pmv, i, n, PST_SPLIT_MARKER,
					    base, &st);
			else
				j = run_end(c, pmv, i, n, PST_SPLIT_EXCL, base,
					    &st);
			ret = split_run(c, s + (i << ps->pshift),
					s + (j << ps->pshift), st, pmv[i], how);
			if (ret)
				return ret;
			i = j;
		}
		s += n << ps->pshift;
	}
	return 0;
}

static int refine(struct pst_ctx *c, uint64_t s, uint64_t e, unsigned int st)
{
	bool shmem = c->m->flags & PMTRACK_MAP_SHMEM;

	/* shared memory has no swap PTEs: what reads as swapped there is a
	 * marker or a migration entry, so ask the object */
	if (st & PST_GAP || (shmem && st & (PMTRACK_PAGE_SWAPPED | PST_AMBIG)))
		return lookup_gap(c, s, e);
	if (st & PST_AMBIG) {
		if (!(c->want & (PMTRACK_PAGE_SWAPPED | PMTRACK_PAGE_UNSURE)))
			return 0;
		if (!c->ps->show_pfn)
			return emit(c, s, e, PMTRACK_PAGE_UNSURE);
		return entry_runs(c, s, e, c->m->end, PST_SPLIT_MARKER,
				  st & ~(PST_AMBIG | PMTRACK_PAGE_SWAPPED));
	}
	if (st & PMTRACK_PAGE_PRESENT && c->ps->use_scan &&
	    c->want & PMTRACK_PAGE_EXCLUSIVE)
		return entry_runs(c, s, e, c->m->end, PST_SPLIT_EXCL, st);
	return emit(c, s, e, st);
}

/* ---- the kernel's answer, per mapping ---------------------------------- */

static unsigned int scan_state(struct pst_ctx *c, uint64_t cat)
{
	unsigned int st = 0;

	if (cat & PAGE_IS_PRESENT)
		st |= PMTRACK_PAGE_PRESENT;
	if (cat & PAGE_IS_SWAPPED) {
		if (cat & PAGE_IS_GUARD)
			return PMTRACK_PAGE_GUARD;
		/* a write-protected swap entry, or a uffd-wp marker; with
		 * frame numbers, any swap-like entry is checked (poison
		 * markers carry no uffd-wp bit) */
		st |= cat & PAGE_IS_WRITTEN && !c->ps->show_pfn
			      ? PMTRACK_PAGE_SWAPPED
			      : PST_AMBIG;
	}
	if (cat & PAGE_IS_FILE)
		st |= PMTRACK_PAGE_FILE;
	if (cat & PAGE_IS_PFNZERO)
		st |= PMTRACK_PAGE_ZERO;
	if (cat & PAGE_IS_HUGE)
		st |= PMTRACK_PAGE_HUGE;
	if (cat & PAGE_IS_WPALLOWED) {
		c->ps->maps[c->mi].flags |= PMTRACK_MAP_TRACKED;
		if (cat & PAGE_IS_WRITTEN)
			st |= PMTRACK_PAGE_WRITTEN;
	}
	return st;
}

/* the categories scan_map() asks PAGEMAP_SCAN to return */
static uint64_t scan_return_mask(const struct pst_ctx *c)
{
	uint64_t mask = PAGE_IS_WPALLOWED | PAGE_IS_WRITTEN | PAGE_IS_PRESENT |
			PAGE_IS_SWAPPED | PAGE_IS_PFNZERO | PAGE_IS_HUGE;

	/* asking for PAGE_IS_FILE makes the kernel look at every present
	 * page's struct page: only private file mappings hold both kinds
	 * (emit() marks all of a shared mapping's pages FILE) */
	if (c->want & PMTRACK_PAGE_FILE &&
	    !(c->m->flags & (PMTRACK_MAP_ANON | PMTRACK_MAP_SHARED)))
		mask |= PAGE_IS_FILE;
	if (c->ps->guard)
		mask |= PAGE_IS_GUARD;
	return mask;
}

/* refine the @n regions of one PAGEMAP_SCAN answer (within [*gap, e)) and,
 * in shared memory, the gaps before them; *gap moves to the last's end */
static int scan_regions(struct pst_ctx *c, int n, uint64_t e, uint64_t *gap)
{
	bool gaps = c->m->flags & PMTRACK_MAP_SHMEM;

	for (int i = 0; i < n; i++) {
		const struct page_region *r = &c->ps->vec[i];
		int ret;

		if (r->start < *gap || r->end > e || r->start >= r->end)
			return -EIO;
		if (gaps && r->start > *gap) {
			ret = refine(c, *gap, r->start, PST_GAP);
			if (ret)
				return ret;
		}
		ret = refine(c, r->start, r->end, scan_state(c, r->categories));
		if (ret)
			return ret;
		*gap = r->end;
	}
	return 0;
}

static int scan_map(struct pst_ctx *c, uint64_t s, uint64_t e)
{
	struct pmtrack_pstate *ps = c->ps;
	bool gaps = c->m->flags & PMTRACK_MAP_SHMEM;
	uint64_t cur = s, gap = s, mask = scan_return_mask(c);
	int ret;

	while (cur < e) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = cur,
			.end = e,
			.vec = (uintptr_t)ps->vec,
			.vec_len = PST_VEC_LEN,
			.category_anyof_mask =
				PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			.return_mask = mask,
		};
		int n = ioctl(ps->pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ESRCH ? -ESRCH : -errno;
		ret = scan_regions(c, n, e, &gap);
		if (ret)
			return ret;
		if ((size_t)n < PST_VEC_LEN)
			break;
		/* walk_end can be stale after a full vector (see
		 * pagemap_scan.c): resume past both */
		cur = arg.walk_end > ps->vec[n - 1].end ? arg.walk_end
							: ps->vec[n - 1].end;
	}
	return gaps && gap < e ? refine(c, gap, e, PST_GAP) : 0;
}

/* the kernel's answer from reads of pagemap */
static int read_map(struct pst_ctx *c, uint64_t s, uint64_t e)
{
	return entry_runs(c, s, e, e, PST_SPLIT_STATE, 0);
}

/* ---- /proc/PID/maps --------------------------------------------------- */

static unsigned int classify(const char *name, bool shared, uint64_t inode,
			     unsigned int major)
{
	unsigned int f = shared ? PMTRACK_MAP_SHARED : 0;

	if (!strcmp(name, "[vsyscall]") || !strcmp(name, "[vvar]") ||
	    !strcmp(name, "[vvar_vclock]"))
		return f | PMTRACK_MAP_SPECIAL;
	if (!strncmp(name, "/anon_hugepage", 14))
		return f | PMTRACK_MAP_ANON | PMTRACK_MAP_HUGETLB;
	if (!inode || name[0] != '/')
		return f | PMTRACK_MAP_ANON;
	if (!shared)
		return f;
	if (!strncmp(name, "/dev/zero", 9))
		return f | PMTRACK_MAP_ANON | PMTRACK_MAP_SHMEM;
	/* memfd, SysV shm and tmpfs files (unlinked ones too) live on
	 * devices without a major number; so do hugetlbfs files, which the
	 * object's fstatfs() sorts out when a hole needs it */
	if (major == 0)
		return f | PMTRACK_MAP_SHMEM;
	return f;
}

static char *slurp(struct pmtrack_pstate *ps, const char *file, size_t *len,
		   int *err)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	int fd = pmt_proc_open(ps->pid, file, O_RDONLY);

	if (fd < 0 || !buf) {
		*err = fd < 0 ? (errno == ENOENT ? -ESRCH : -errno) : -ENOMEM;
		if (fd >= 0)
			close(fd);
		free(buf);
		return NULL;
	}
	for (;;) {
		ssize_t r;

		if (cap - n < 4096) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				*err = -ENOMEM;
				goto fail;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*err = errno == ENOENT ? -ESRCH : -errno;
			goto fail;
		}
		if (!r)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	*len = n;
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

static int load_maps(struct pmtrack_pstate *ps)
{
	size_t len, lines = 0, n = 0, pos = 0;
	struct pmtrack_mapping *maps;
	struct pst_obj *objs;
	int err = 0;
	char *buf = slurp(ps, "maps", &len, &err), *p;

	if (!buf)
		return err;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	maps = calloc(lines + 1, sizeof(*maps));
	objs = calloc(lines + 1, sizeof(*objs));
	if (!maps || !objs) {
		free(maps);
		free(objs);
		free(buf);
		return -ENOMEM;
	}
	/* names are kept in @buf, each line cut at its end */
	for (p = buf; pos < len && *p; n++) {
		struct pmtrack_mapping *m = &maps[n];
		char *nl = strchr(p, '\n'), *name;
		struct pmt_maps_line l;

		if (!nl)
			nl = buf + len;
		*nl = 0;
		if (pmt_maps_parse(p, &l)) {
			free(maps);
			free(objs);
			free(buf);
			return -EIO;
		}
		name = p + l.name_at;
		m->start = l.start;
		m->end = l.end;
		m->offset = l.offset;
		m->inode = l.inode;
		m->dev_major = l.dev_major;
		m->dev_minor = l.dev_minor;
		m->prot = l.prot;
		m->name = name;
		m->flags = classify(name, l.shared, l.inode, l.dev_major);
		pos = (size_t)(nl - buf) + 1;
		p = nl + 1;
	}
	put_objs(ps);
	free(ps->maps);
	free(ps->objs);
	free(ps->names);
	ps->maps = maps;
	ps->objs = objs;
	ps->nmaps = n;
	ps->names = buf;
	ps->have_maps = true;
	return 0;
}

/* ---- the walk ---------------------------------------------------------- */

static int walk(struct pmtrack_pstate *ps, uint64_t start, uint64_t end,
		unsigned int want, struct pst_sink *k)
{
	struct pst_ctx c = { .ps = ps, .want = want, .sink = k };
	struct sysinfo si;
	int ret;

	/* no swap area: nothing can be in swap, so a shared-memory page not in
	 * RAM is a hole (swapoff brings every page back first) */
	ps->swap_on = sysinfo(&si) || si.totalswap > 0;
	ps->win_n = 0; /* memory changed since the last call */
	ps->gen++;
	if (!ps->have_maps) {
		ret = load_maps(ps);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < ps->nmaps; i++) {
		const struct pmtrack_mapping *m = &ps->maps[i];
		uint64_t s = m->start > start ? m->start : start;
		uint64_t e = m->end < end ? m->end : end;

		if (m->end <= start)
			continue;
		if (m->start >= end)
			break;
		if (m->flags & PMTRACK_MAP_SPECIAL)
			continue;
		c.mi = (unsigned int)i;
		c.m = m;
		if (k->span)
			k->span(k, (e - s) >> ps->pshift);
		ret = ps->use_scan ? scan_map(&c, s, e) : read_map(&c, s, e);
		if (ret)
			return ret;
	}
	return 0;
}

static int check_args(const struct pmtrack_pstate *ps, uint64_t start,
		      uint64_t end, unsigned int want)
{
	uint64_t mask = ps ? ps->page_size - 1 : 0;

	if (!ps || start & mask || (end & mask && end != UINT64_MAX) ||
	    end < start || want & ~PMTRACK_PAGE_ALL)
		return -EINVAL;
	return 0;
}

/* ---- sinks ------------------------------------------------------------- */

struct runs_sink {
	struct pst_sink k;
	struct pmtrack_page_run *runs;
	size_t cap, n;
};

static int runs_put(struct pst_sink *k, uint64_t s, uint64_t e, unsigned int st,
		    unsigned int map)
{
	struct runs_sink *r = (struct runs_sink *)k;
	struct pmtrack_page_run *last = r->n ? &r->runs[r->n - 1] : NULL;

	if (last && last->end == s && last->states == st && last->map == map) {
		last->end = e;
		return 0;
	}
	if (r->n == r->cap) {
		k->stop = s;
		return 1;
	}
	r->runs[r->n++] = (struct pmtrack_page_run){ s, e, st, map };
	return 0;
}

struct bits_sink {
	struct pst_sink k;
	uint64_t start;
	unsigned int pshift;
	uint64_t *const *bits;
};

static int bits_put(struct pst_sink *k, uint64_t s, uint64_t e, unsigned int st,
		    unsigned int map)
{
	struct bits_sink *b = (struct bits_sink *)k;

	(void)map;
	for (unsigned int i = 0; i < PMTRACK_PAGE_NSTATES; i++)
		if (st & (1u << i))
			pmt_bits_set(b->bits[i], (s - b->start) >> b->pshift,
				     (e - s) >> b->pshift);
	return 0;
}

struct count_sink {
	struct pst_sink k;
	unsigned int pshift;
	struct pmtrack_page_counts c;
};

static int count_put(struct pst_sink *k, uint64_t s, uint64_t e,
		     unsigned int st, unsigned int map)
{
	struct count_sink *cs = (struct count_sink *)k;

	(void)map;
	for (unsigned int i = 0; i < PMTRACK_PAGE_NSTATES; i++)
		if (st & (1u << i))
			cs->c.state[i] += (e - s) >> cs->pshift;
	return 0;
}

static void count_add(struct pst_sink *k, uint64_t pages, unsigned int st)
{
	struct count_sink *cs = (struct count_sink *)k;

	for (unsigned int i = 0; i < PMTRACK_PAGE_NSTATES; i++)
		if (st & (1u << i))
			cs->c.state[i] += pages;
}

static void count_span(struct pst_sink *k, uint64_t pages)
{
	((struct count_sink *)k)->c.pages += pages;
}

/* ---- public API -------------------------------------------------------- */

/* with CAP_SYS_ADMIN pagemap shows frame numbers; then learn the zero
 * page's, if read faults map it (some kernels allocate a page instead) */
static void probe_pfns(struct pmtrack_pstate *ps)
{
	int fd = pmt_proc_open(0, "pagemap", O_RDONLY);
	volatile char *p;
	uint64_t pm = 0;

	if (fd < 0)
		return;
	p = mmap(NULL, ps->page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p != MAP_FAILED) {
		(void)p[0];
		if (pread(fd, &pm, sizeof(pm),
			  (off_t)(((uintptr_t)p >> ps->pshift) * 8)) ==
			    sizeof(pm) &&
		    pm & PMT_PM_PRESENT && pm & PMT_PM_PFN_MASK) {
			ps->show_pfn = true;
			if (!(pm & PMT_PM_EXCLUSIVE)) {
				ps->zero_pfn = pm & PMT_PM_PFN_MASK;
				ps->zero_known = true;
			}
		}
		munmap((void *)p, ps->page_size);
	}
	close(fd);
}

/*
 * Open the target's pagemap into ps->pagemap_fd: 0 or -errno (-ESRCH for a
 * task that is gone or has no memory).
 */
static int open_pagemap(struct pmtrack_pstate *ps)
{
	uint64_t e;
	ssize_t r;

	ps->pagemap_fd = pmt_proc_open(ps->pid, "pagemap", O_RDONLY);
	if (ps->pagemap_fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	/* a task without memory (a kernel thread, a zombie): newer kernels
	 * refuse the open with ESRCH, older ones (6.1) open a pagemap that
	 * reads as empty, next to an empty maps */
	if (!ps->pid)
		return 0;
	do
		r = pread(ps->pagemap_fd, &e, sizeof(e), 0);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		close(ps->pagemap_fd);
		ps->pagemap_fd = -1;
		return -ESRCH;
	}
	return 0;
}

/* the page states this kernel lets a walk tell (pmtrack_pstate_known()) */
static unsigned int known_states(const struct pmtrack_pstate *ps)
{
	unsigned int known = PMTRACK_PAGE_PRESENT | PMTRACK_PAGE_SWAPPED |
			     PMTRACK_PAGE_FILE | PMTRACK_PAGE_EXCLUSIVE |
			     PMTRACK_PAGE_UNSURE;

	if (ps->use_scan)
		return known | PMTRACK_PAGE_ZERO | PMTRACK_PAGE_HUGE |
		       PMTRACK_PAGE_WRITTEN |
		       (ps->guard ? PMTRACK_PAGE_GUARD : 0);
	if (ps->zero_known)
		known |= PMTRACK_PAGE_ZERO;
	if (pmtrack_probe(PMTRACK_FEAT_PAGE_IS_GUARD, NULL) == 1)
		known |= PMTRACK_PAGE_GUARD;
	return known;
}

PMTRACK_API int pmtrack_pstate_new(const struct pmtrack_pstate_opts *opts,
				   struct pmtrack_pstate **out)
{
	unsigned int flags = PMT_OPTS_GET(opts, flags, 0u);
	int pid = PMT_OPTS_GET(opts, pid, 0);
	struct pmtrack_pstate *ps;
	int ret;

	if (!out || !PMT_OPTS_VALID(opts, pmtrack_pstate_opts) ||
	    flags & ~(PMTRACK_PSTATE_PAGEMAP_READ |
		      PMTRACK_PSTATE_NO_OBJECTS) ||
	    pid < 0)
		return -EINVAL;
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->pid = pid == getpid() ? 0 : pid;
	ps->flags = flags;
	ps->cachestat = -1;
	ps->page_size = (size_t)sysconf(_SC_PAGESIZE);
	ps->pshift = (unsigned int)__builtin_ctzl(ps->page_size);
	ret = open_pagemap(ps);
	if (ret) {
		free(ps);
		return ret;
	}
	ps->vec = malloc(PST_VEC_LEN * sizeof(*ps->vec));
	ps->pm = malloc(PST_PM_LEN * sizeof(*ps->pm));
	ps->mc = malloc(PST_MC_LEN);
	if (!ps->vec || !ps->pm || !ps->mc) {
		pmtrack_pstate_free(ps);
		return -ENOMEM;
	}
	ps->use_scan = !(flags & PMTRACK_PSTATE_PAGEMAP_READ) &&
		       pmtrack_probe(PMTRACK_FEAT_PAGEMAP_SCAN, NULL) == 1;
	ps->guard = ps->use_scan &&
		    pmtrack_probe(PMTRACK_FEAT_PAGE_IS_GUARD, NULL) == 1;
	probe_pfns(ps);
	ps->known = known_states(ps);
	*out = ps;
	return 0;
}

PMTRACK_API void pmtrack_pstate_free(struct pmtrack_pstate *ps)
{
	if (!ps)
		return;
	put_objs(ps);
	if (ps->pagemap_fd >= 0)
		close(ps->pagemap_fd);
	free(ps->maps);
	free(ps->objs);
	free(ps->names);
	free(ps->vec);
	free(ps->pm);
	free(ps->mc);
	free(ps);
}

PMTRACK_API unsigned int pmtrack_pstate_known(const struct pmtrack_pstate *ps)
{
	return ps ? ps->known : 0;
}

PMTRACK_API int pmtrack_pstate_uses_scan(const struct pmtrack_pstate *ps)
{
	return ps && ps->use_scan;
}

PMTRACK_API int pmtrack_pstate_maps(struct pmtrack_pstate *ps,
				    const struct pmtrack_mapping **maps,
				    size_t *n)
{
	int ret;

	if (!ps || !maps || !n)
		return -EINVAL;
	ret = load_maps(ps);
	if (ret)
		return ret;
	*maps = ps->maps;
	*n = ps->nmaps;
	return 0;
}

PMTRACK_API int pmtrack_pstate_runs(struct pmtrack_pstate *ps, uint64_t start,
				    uint64_t end, unsigned int want,
				    struct pmtrack_page_run *runs,
				    size_t *count, uint64_t *next)
{
	struct runs_sink r = { .k.put = runs_put };
	int ret = check_args(ps, start, end, want);

	if (ret || !runs || !count || !*count)
		return ret ? ret : -EINVAL;
	r.runs = runs;
	r.cap = *count;
	ret = walk(ps, start, end, want, &r.k);
	if (ret < 0)
		return ret;
	*count = r.n;
	if (next)
		*next = ret ? r.k.stop : end;
	return 0;
}

PMTRACK_API int
pmtrack_pstate_bitmaps(struct pmtrack_pstate *ps, uint64_t start, uint64_t end,
		       unsigned int want,
		       uint64_t *const bits[PMTRACK_PAGE_NSTATES])
{
	struct bits_sink b = { .k.put = bits_put,
			       .start = start,
			       .bits = bits };
	int ret = check_args(ps, start, end, want);
	size_t words;

	if (ret || !bits || end == start || end == UINT64_MAX)
		return ret ? ret : -EINVAL;
	words = pmt_nwords((end - start) >> ps->pshift);
	for (unsigned int i = 0; i < PMTRACK_PAGE_NSTATES; i++) {
		if (!(want & (1u << i)))
			continue;
		if (!bits[i])
			return -EINVAL;
		memset(bits[i], 0, words * sizeof(uint64_t));
	}
	b.pshift = ps->pshift;
	ret = walk(ps, start, end, want, &b.k);
	return ret < 0 ? ret : 0;
}

PMTRACK_API int pmtrack_pstate_count(struct pmtrack_pstate *ps, uint64_t start,
				     uint64_t end, unsigned int want,
				     struct pmtrack_page_counts *c)
{
	struct count_sink cs = { .k.put = count_put,
				 .k.span = count_span,
				 .k.add = count_add };
	int ret = check_args(ps, start, end, want);

	if (ret || !c || c->sz < sizeof(size_t))
		return ret ? ret : -EINVAL;
	cs.pshift = ps->pshift;
	cs.c.sz = sizeof(cs.c);
	ret = walk(ps, start, end, want, &cs.k);
	if (ret < 0)
		return ret;
	return pmt_stats_out(c, &cs.c, sizeof(cs.c));
}

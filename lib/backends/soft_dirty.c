// SPDX-License-Identifier: MIT
/*
 * Backend: soft-dirty bits (CONFIG_MEM_SOFT_DIRTY; x86_64, s390, ppc64).
 *
 * The kernel sets bit 55 of a page's /proc/PID/pagemap entry on a write
 * after "4" was written to /proc/PID/clear_refs.  The bit includes the VMA
 * flag VM_SOFTDIRTY, so a new, grown or moved mapping (or one an adjacent
 * new mapping merged with) reads as written in full: the kernel's own rule
 * that soft-dirty may report too much but never too little.  A transparent
 * huge page is written as a whole, and khugepaged's collapse of pages into
 * one marks it written.
 *
 * A private page that the program drops (MADV_DONTNEED, MADV_FREE) takes
 * its bit with it, and reads zeroes (or the file) afterwards: its content
 * changed with no bit to show.  So each fold also remembers which pages
 * are filled, holding data of their own (present and exclusive, or in
 * swap: struct pmt_sb's filled bits), and a page filled at the last fold
 * and not now is written.  Fork (pages shared copy-on-write are not
 * exclusive) and KSM make that report too much, once.
 *
 * clear_refs has no range: it clears the whole process.  So before every
 * clear, every soft-dirty tracker of this program on that process folds
 * the kernel's bits of its watched pages into its software bits ("pending"
 * writes), and collects report kernel bits OR software bits.  Writes made
 * between the fold and the clear are lost: resets are not atomic against
 * concurrent writers (no PMTRACK_CAP_ATOMIC_RESET).  Every operation on a
 * soft-dirty tracker holds one process-wide lock, which keeps all the
 * trackers' tables still while one of them folds them all.
 *
 * Soft-dirty lives in page-table entries only.  In a MAP_SHARED mapping
 * (shmem, memfd, shared anonymous memory, page cache) the kernel drops the
 * entry when it swaps the page out, reclaims it, splits a huge page or the
 * program zaps it (MADV_DONTNEED), and a later read fault brings the page
 * back clean: a write made before that is lost to bit 55 (the pagemap
 * documentation says as much).  Nothing the kernel shows tells such a page
 * from one never written, so a watched range that was shared at watch time
 * is reported written in full by every collect: too much, never too little.
 * Private anonymous memory keeps the bit in its swap entries and is exact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "uapi_compat.h"

static pthread_mutex_t sd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pmtrack *sd_list; /* every open soft-dirty tracker */

#define SD_BATCH 512 /* pagemap entries per read */

static int sd_usable(void)
{
	return pmtrack_probe(PMTRACK_FEAT_SOFT_DIRTY, NULL);
}

static int sd_open(struct pmtrack *t)
{
	t->caps = PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_FILE_MAPPINGS |
		  PMTRACK_CAP_OTHER_PROCESS | PMTRACK_CAP_NO_SIGNALS;
	t->pagemap_fd = pmt_proc_open(t->target, "pagemap", O_RDONLY);
	if (t->pagemap_fd < 0)
		return -errno;
	t->clear_refs_fd = pmt_proc_open(t->target, "clear_refs", O_WRONLY);
	if (t->clear_refs_fd < 0)
		return -errno;
	t->sd_next = sd_list;
	sd_list = t; /* pmtrack_new() holds sd_lock around open */
	return 0;
}

static void sd_close(struct pmtrack *t)
{
	struct pmtrack **p;

	/* pmtrack_free() holds sd_lock around close */
	for (p = &sd_list; *p; p = &(*p)->sd_next)
		if (*p == t) {
			*p = t->sd_next;
			break;
		}
	for (size_t i = 0; i < t->nranges; i++) {
		pmt_sb_free(t->ranges[i].sb);
		t->ranges[i].sb = NULL;
	}
	if (t->clear_refs_fd >= 0)
		close(t->clear_refs_fd);
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
}

/*
 * A window of pagemap entries, read SD_BATCH at a time and kept for the
 * ranges that follow: a fold over thousands of small ranges then costs one
 * read per SD_BATCH pages of address space, not one per range.  Good for
 * one fold (bits move on after it), for every tracker of one process.
 */
struct sd_window {
	uintptr_t base; /* address of ent[0] */
	size_t n;	/* entries held */
	uint64_t ent[SD_BATCH];
};

/*
 * Written pages of [s, e) into @sb, from pagemap entries: bit 55, or data
 * of its own at the last fold and none now; remember which pages hold
 * data.  @init only remembers (a new range).
 */
static int fold_read(struct pmtrack *t, struct sd_window *w, struct pmt_sb *sb,
		     uintptr_t s, uintptr_t e, bool init)
{
	size_t ps = t->page_size;

	for (; s < e; s += ps) {
		if (s < w->base || s >= w->base + w->n * ps) {
			uint64_t t0 = pmt_now_ns();
			ssize_t n = pread(t->pagemap_fd, w->ent, sizeof(w->ent),
					  (off_t)(s / ps * sizeof(w->ent[0])));

			pmt_stat_add(&t->st.scan_ns, pmt_now_ns() - t0);
			pmt_stat_add(&t->st.scans, 1);
			w->n = 0;
			if (n < 0)
				return -errno;
			if (n == 0) /* the process's memory is gone */
				return -ESRCH;
			if (n < (ssize_t)sizeof(w->ent[0]))
				return -EIO;
			w->base = s;
			w->n = (size_t)n / sizeof(w->ent[0]);
		}
		uint64_t ent = w->ent[(s - w->base) / ps];
		bool filled = ent & PMT_PM_SWAP ||
			      (ent & PMT_PM_PRESENT && ent & PMT_PM_EXCLUSIVE);
		bool was = pmt_sb_set_filled(sb, s, filled);

		if (!init && (ent & PMT_PM_SOFT_DIRTY || (was && !filled)))
			pmt_sb_mark(sb, s, s + ps);
	}
	return 0;
}

/* OR the kernel's bits of [s, e) (within t's ranges) into software bits. */
static int fold(struct pmtrack *t, struct sd_window *w, uintptr_t s,
		uintptr_t e)
{
	for (size_t i = 0; i < t->nranges; i++) {
		struct pmt_range *r = &t->ranges[i];
		uintptr_t a = s > r->start ? s : r->start;
		uintptr_t b = e < r->end ? e : r->end;
		int ret;

		if (a >= b)
			continue;
		if (r->shared) { /* see the top of this file */
			pmt_sb_mark(r->sb, a, b);
			continue;
		}
		ret = fold_read(t, w, r->sb, a, b, false);
		if (ret)
			return ret;
	}
	return 0;
}

/* Fold every watched page of every tracker on t's process. */
static int fold_all(struct pmtrack *t)
{
	struct sd_window w = { .n = 0 };
	int ret;

	for (struct pmtrack *u = sd_list; u; u = u->sd_next)
		if (u->target == t->target &&
		    (ret = fold(u, &w, 0, UINTPTR_MAX)))
			return ret;
	return 0;
}

/* Clear the soft-dirty bits of t's whole process. */
static int clear_refs(struct pmtrack *t)
{
	if (write(t->clear_refs_fd, "4", 1) != 1)
		return errno ? -errno : -EIO;
	return 0;
}

/* Fold every watched page of every tracker on t's process, then clear. */
static int fold_all_and_clear(struct pmtrack *t)
{
	int ret = fold_all(t);

	return ret ? ret : clear_refs(t);
}

static int sd_watch(struct pmtrack *t, struct pmt_range *r,
		    const struct pmt_vma_span *span)
{
	int ret;

	(void)span;
	/* clear_refs never write-protects hugetlb entries, so after the
	 * first clear a write to one would not set bit 55 again */
	if (r->align != t->page_size)
		return -EOPNOTSUPP;
	r->sb = pmt_sb_new(t, PMT_SB_PLAIN, r->start, r->end, r->align);
	if (!r->sb)
		return -ENOMEM;
	/* the new range starts clean: clear the kernel's bits, keeping
	 * everyone else's; then note which of its pages hold data */
	ret = fold_all_and_clear(t);
	if (!ret && !r->shared) {
		struct sd_window w = { .n = 0 };

		ret = fold_read(t, &w, r->sb, r->start, r->end, true);
	}
	if (ret) {
		pmt_sb_free(r->sb);
		r->sb = NULL;
	}
	return ret;
}

static int sd_unwatch(struct pmtrack *t, struct pmt_range *r, uintptr_t s,
		      uintptr_t e, struct pmt_range *head,
		      struct pmt_range *tail)
{
	int ret;

	(void)s;
	(void)e;
	/* what stays keeps the kernel's bits as they are */
	ret = pmt_sb_split(t, r, head, tail, false);
	return ret;
}

static int sd_collect(struct pmtrack *t, struct pmt_collect *c, size_t first)
{
	struct sd_window w = { .n = 0 };
	int ret;

	if (!c->reset) {
		ret = fold(t, &w, c->start, c->end);
		return ret ? ret : pmt_sb_collect(t, c, first);
	}
	/*
	 * Fold everything (the bits are about to be cleared), report from
	 * the software bits and take what was reported, then clear.  Pages
	 * that did not fit the output keep their software bits.
	 */
	ret = fold_all(t);
	if (ret)
		return ret;
	ret = pmt_sb_collect(t, c, first);
	if (ret)
		return ret;
	/* if this fails the kernel bits stay set: reported again, not lost */
	return clear_refs(t);
}

static int sd_reset(struct pmtrack *t, uintptr_t s, uintptr_t e, size_t first)
{
	int ret = fold_all_and_clear(t);

	if (ret)
		return ret;
	/* after the clear: the fold put this range's old bits in too */
	return pmt_sb_reset(t, s, e, first);
}

static int sd_first_written(struct pmtrack *t, uintptr_t s, uintptr_t e,
			    size_t first, uintptr_t *addr)
{
	struct sd_window w = { .n = 0 };
	int ret = fold(t, &w, s, e);

	return ret ? ret : pmt_sb_first_written(t, s, e, first, addr);
}

const struct pmt_backend_ops pmt_soft_dirty_ops = {
	.id = PMTRACK_BACKEND_SOFT_DIRTY,
	.outer = &sd_lock,
	.usable = sd_usable,
	.open = sd_open,
	.close = sd_close,
	.watch = sd_watch,
	.unwatch = sd_unwatch,
	.collect = sd_collect,
	.reset = sd_reset,
	.first_written = sd_first_written,
};

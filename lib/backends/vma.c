// SPDX-License-Identifier: MIT
/*
 * Which mappings cover a range of the tracked process, with what page size
 * and protection.  The PROCMAP_QUERY ioctl on /proc/PID/maps (Linux 6.11)
 * answers one VMA per call without walking page tables.  Older kernels get
 * a parse of /proc/PID/maps, which does not walk them either, and which
 * lacks only the page size of hugetlb memory: a VMA without an inode is
 * anonymous (base pages), and the file of a file VMA is asked for its file
 * system.  Where that file cannot be reached, /proc/PID/smaps says the
 * same, at the price of walking the page tables of every VMA up to the
 * range (with thousands of VMAs, milliseconds per call).
 *
 * Both also name the object a mapping maps (device, inode and offset), so
 * a watch can record what it watched, and a cursor looks mappings up one
 * by one in ascending order: a PROCMAP_QUERY call each, or one pass over
 * /proc/PID/maps however many are looked up.
 */
#define _GNU_SOURCE
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
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backend.h"
#include "uapi_compat.h"

static void span_add(struct pmt_vma_span *s, uint64_t page_size,
		     const struct pmt_vma *v)
{
	if (!s->min_page_size) {
		s->min_page_size = page_size;
		s->prot_all = v->prot;
		s->id = v->id;
	}
	if (page_size < s->min_page_size)
		s->min_page_size = page_size;
	if (page_size > s->max_page_size)
		s->max_page_size = page_size;
	s->prot_all &= v->prot;
	s->prot_any |= v->prot;
	s->any_shared |= v->id.shared;
	s->id_mixed |= !pmt_vma_id_eq(&s->id, &v->id);
}

/* the object a mapping maps; @off is the file offset of @start */
static struct pmt_vma_id vma_id(uint64_t ino, unsigned int maj,
				unsigned int min, uint64_t off, uint64_t start,
				bool shared)
{
	return (struct pmt_vma_id){
		.ino = ino,
		.dev_major = maj,
		.dev_minor = min,
		/* constant over splits and merges; anonymous memory has
		 * no file offset */
		.base = ino ? off - start : 0,
		.shared = shared,
	};
}

static void query_vma(const struct procmap_query *q, struct pmt_vma *v)
{
	uint64_t f = q->vma_flags;

	v->start = (uintptr_t)q->vma_start;
	v->end = (uintptr_t)q->vma_end;
	v->prot = (f & PROCMAP_QUERY_VMA_READABLE ? PROT_READ : 0) |
		  (f & PROCMAP_QUERY_VMA_WRITABLE ? PROT_WRITE : 0) |
		  (f & PROCMAP_QUERY_VMA_EXECUTABLE ? PROT_EXEC : 0);
	v->id = vma_id(q->inode, q->dev_major, q->dev_minor, q->vma_offset,
		       q->vma_start, f & PROCMAP_QUERY_VMA_SHARED);
}

/* 1 = answered, 0 = PROCMAP_QUERY not available, <0 = error */
static int vma_check_query(int fd, uintptr_t start, uintptr_t end,
			   struct pmt_vma_span *out)
{
	uintptr_t addr = start;
	struct pmt_vma v;

	while (addr < end) {
		struct procmap_query q = {
			.size = sizeof(q),
			.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
			.query_addr = addr,
		};

		if (ioctl(fd, PROCMAP_QUERY, &q)) {
			if (errno == ENOENT)
				return -ENOMEM; /* nothing mapped at or after
						   addr */
			if (errno == ENOTTY || errno == EINVAL)
				return addr == start ? 0 : -EIO;
			return -errno;
		}
		if (q.vma_start > addr)
			return -ENOMEM; /* hole before the next VMA */
		query_vma(&q, &v);
		span_add(out, q.vma_page_size, &v);
		addr = q.vma_end;
	}
	return 1;
}

/*
 * The page size of the file VMA [a, b) (device @dev, inode @ino, @path as
 * the maps line names it, or NULL), from the file system of that file,
 * reached through map_files (root or CAP_CHECKPOINT_RESTORE) or through the
 * path if it still names that file.  O_PATH opens no device.
 * Return: 1 with *@psz set, 0 when the file cannot be reached.
 */
static int file_page_size(pid_t pid, uintmax_t a, uintmax_t b, const char *path,
			  dev_t dev, ino_t ino, size_t *psz)
{
	char p[PATH_MAX + 64], who[24];
	struct statfs sfs;
	struct stat st;

	if (pid)
		snprintf(who, sizeof(who), "%d", (int)pid);
	else
		snprintf(who, sizeof(who), "self");
	for (int i = 0; i < 2; i++) {
		int fd, ok;

		if (!i)
			snprintf(p, sizeof(p), "/proc/%s/map_files/%jx-%jx",
				 who, a, b);
		else if (path)
			snprintf(p, sizeof(p), "/proc/%s/root%s", who, path);
		else
			break;
		fd = open(p, O_PATH | O_CLOEXEC);
		if (fd < 0)
			continue;
		ok = !fstat(fd, &st) && st.st_dev == dev && st.st_ino == ino &&
		     !fstatfs(fd, &sfs);
		close(fd);
		if (ok) {
			*psz = sfs.f_type == HUGETLBFS_MAGIC
				       ? (size_t)sfs.f_bsize
				       : (size_t)sysconf(_SC_PAGESIZE);
			return 1;
		}
	}
	return 0;
}

/*
 * The mapping a line of /proc/PID/maps (or a first line of smaps) names;
 * *@path_at is where its path starts.  0, or -EIO if it is no such line.
 */
static int maps_line(const char *line, struct pmt_vma *v, int *path_at)
{
	struct pmt_maps_line m;

	if (pmt_maps_parse(line, &m))
		return -EIO;
	v->start = m.start;
	v->end = m.end;
	v->prot = m.prot;
	v->id = vma_id(m.inode, m.dev_major, m.dev_minor, m.offset, m.start,
		       m.shared);
	*path_at = m.name_at;
	return 0;
}

/* 1 = answered, 0 = ask smaps (a file out of reach), <0 = error */
static int vma_check_maps(pid_t pid, uintptr_t start, uintptr_t end,
			  struct pmt_vma_span *out)
{
	const size_t host_ps = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t covered = start;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int ret = -ENOMEM;
	FILE *f = pmt_proc_stream(pid, "maps", &ret);

	if (!f)
		return ret;
	while ((len = getline(&line, &cap, f)) > 0) {
		size_t psz = host_ps;
		char *path, *dash = strchr(line, '-');
		struct pmt_vma v;
		int at;

		/* lines that end below the range (most of them: a watch of
		   many ranges reads many lines) are read for their end only */
		if (dash && (uintptr_t)strtoull(dash + 1, NULL, 16) <= covered)
			continue;
		if (maps_line(line, &v, &at)) {
			ret = -EIO;
			break;
		}
		if (v.start > covered)
			break; /* a hole, or past the end */
		if (v.id.ino) {
			if (line[len - 1] == '\n')
				line[--len] = '\0';
			path = line + at;
			/* a deleted file (memfd, SysV, shared anonymous
			 * memory) or a name with escapes: map_files only */
			if (*path != '/' || strstr(path, " (deleted)") ||
			    strchr(path, '\\'))
				path = NULL;
			ret = file_page_size(
				pid, v.start, v.end, path,
				makedev(v.id.dev_major, v.id.dev_minor),
				(ino_t)v.id.ino, &psz);
			if (!ret)
				break;
		}
		covered = v.end;
		span_add(out, psz, &v);
		if (covered >= end) {
			ret = 1;
			break;
		}
	}
	free(line);
	fclose(f);
	return ret;
}

static int vma_check_smaps(pid_t pid, uintptr_t start, uintptr_t end,
			   struct pmt_vma_span *out)
{
	uintptr_t covered = start;
	struct pmt_vma v = { 0 };
	bool pending = false; /* a VMA in range whose page size is unread */
	char *line = NULL;
	size_t cap = 0;
	int ret = -ENOMEM;
	FILE *f = pmt_proc_stream(pid, "smaps", &ret);

	if (!f)
		return ret;
	while (getline(&line, &cap, f) > 0) {
		uintmax_t kb;
		int at;

		if (strchr(line, '-') < strchr(line, ' ') &&
		    !maps_line(line, &v, &at)) {
			if (pending) {
				ret = -EIO; /* no KernelPageSize line */
				break;
			}
			if (v.end <= covered)
				continue; /* before the range */
			if (v.start > covered)
				break; /* a hole, or past the end */
			covered = v.end;
			pending = true;
			continue;
		}
		if (pending &&
		    sscanf(line, "KernelPageSize: %ju kB", &kb) == 1) {
			span_add(out, kb * 1024, &v);
			pending = false;
			if (covered >= end) {
				ret = 0;
				break;
			}
		}
	}
	free(line);
	fclose(f);
	return ret;
}

/*
 * Check that [start, end) is fully mapped in the tracked process; report the
 * VMA page sizes and protections.
 * Return: 0, -ENOMEM if some page is not mapped, or another -errno.
 */
int pmt_vma_check(struct pmtrack *t, uintptr_t start, uintptr_t end,
		  struct pmt_vma_span *out)
{
	int ret;

	*out = (struct pmt_vma_span){ 0 };
	if (t->maps_fd >= 0) {
		ret = vma_check_query(t->maps_fd, start, end, out);
		if (ret)
			return ret < 0 ? ret : 0;
	}
	if (!t->smaps_only) {
		ret = vma_check_maps(t->target, start, end, out);
		if (ret)
			return ret < 0 ? ret : 0;
		*out = (struct pmt_vma_span){ 0 };
	}
	return vma_check_smaps(t->target, start, end, out);
}

/* ---- the cursor --------------------------------------------------------- */

void pmt_vma_iter_init(struct pmt_vma_iter *it, struct pmtrack *t)
{
	*it = (struct pmt_vma_iter){ .t = t };
}

void pmt_vma_iter_reset(struct pmt_vma_iter *it)
{
	if (it->maps)
		fclose(it->maps);
	it->maps = NULL;
	it->have = it->eof = false;
	it->passed = 0;
}

void pmt_vma_iter_end(struct pmt_vma_iter *it)
{
	pmt_vma_iter_reset(it);
	free(it->line);
	it->line = NULL;
	it->cap = 0;
}

/* 1 = answered, 0 = PROCMAP_QUERY not available, <0 = error */
static int find_query(struct pmt_vma_iter *it, uintptr_t addr,
		      struct pmt_vma *out)
{
	struct procmap_query q = {
		.size = sizeof(q),
		.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
		.query_addr = addr,
	};

	if (!ioctl(it->t->maps_fd, PROCMAP_QUERY, &q)) {
		query_vma(&q, out);
		return 1;
	}
	if (errno == ENOENT)
		return -ENOMEM;
	if (errno == ENOTTY || errno == EINVAL) {
		it->no_query = true;
		return 0;
	}
	return -errno;
}

/*
 * The maps file is read forward once.  Lines come in ascending order; one
 * may start below the end of the last (the mapping there changed since),
 * never end below it.  Everything ending at or below it->passed was read
 * and dropped: a lookup below that starts over.
 */
static int find_maps(struct pmt_vma_iter *it, uintptr_t addr,
		     struct pmt_vma *out)
{
	int ret = 0;

	if (it->maps && addr < it->passed)
		pmt_vma_iter_reset(it);
	if (!it->maps) {
		it->maps = pmt_proc_stream(it->t->target, "maps", &ret);
		if (!it->maps)
			return ret;
	}
	while (!it->have || it->cur.end <= addr) {
		uintptr_t end;
		char *dash;
		int at;

		if (it->eof)
			return -ENOMEM;
		if (it->have)
			it->passed = it->cur.end;
		it->have = false;
		if (getline(&it->line, &it->cap, it->maps) <= 0) {
			it->eof = true;
			return -ENOMEM;
		}
		/* most lines end below @addr: their end is all they are
		 * read for */
		dash = strchr(it->line, '-');
		end = dash ? (uintptr_t)strtoull(dash + 1, NULL, 16) : 0;
		if (end && end <= addr) {
			it->passed = end;
			continue;
		}
		if (maps_line(it->line, &it->cur, &at))
			return -EIO;
		it->have = true;
	}
	*out = it->cur;
	return 0;
}

int pmt_vma_find(struct pmt_vma_iter *it, uintptr_t addr, struct pmt_vma *out)
{
	if (it->t->maps_fd >= 0 && !it->no_query) {
		int ret = find_query(it, addr, out);

		if (ret)
			return ret < 0 ? ret : 0;
	}
	return find_maps(it, addr, out);
}

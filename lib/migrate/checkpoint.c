// SPDX-License-Identifier: MIT
/*
 * Incremental checkpoint images: numbered streams in a directory, each
 * chained to the previous one, written from a source (struct pmt_src,
 * source.c), and their replay into a receiver.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "base.h"
#include "source.h"

struct pmtrack_ckpt {
	int dfd;
	struct pmt_src src;
	uint32_t next; /* index of the next image */
	uint8_t last_id[PMTRACK_STREAM_ID_LEN];
	int level;
	unsigned int enc_flags;
	uint32_t batch_pages;
	char *producer;
	int no_sync;
	enum pmtrack_xport_kind xport;
	uint32_t workers;
	/* what the chain holds of each page: state digests, audits */
	struct pmtrack_pagesums *sums;
};

/* Image @i's file name. */
static void img_name(char *buf, size_t len, uint32_t i)
{
	snprintf(buf, len, "%06u.pmts", i);
}

/*
 * A new file in @dfd for image @i that nobody sees before it is published:
 * unnamed (O_TMPFILE) where the file system has them, else a hidden name
 * of its own, created exclusively (so nothing at that name is followed or
 * truncated).  @tmp receives the name, "" for an unnamed file.
 */
static int img_create(int dfd, uint32_t i, char tmp[64])
{
	uint32_t r;
	int fd;

	tmp[0] = 0;
	fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	for (int k = 0; k < 64; k++) {
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return errno ? -errno : -EIO;
		snprintf(tmp, 64, ".%06u.pmts.%08x.tmp", i, r);
		fd = openat(dfd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    0644);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		tmp[0] = 0;
	return fd < 0 ? -errno : fd;
}

/* Give the complete image its name; -EEXIST if anything has it already. */
static int img_publish(int dfd, int fd, const char *tmp, const char *name)
{
	char proc[48];

	if (!tmp[0]) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (!linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW))
			return 0;
		if (errno != ENOENT)
			return -errno;
		/* no /proc: this needs CAP_DAC_READ_SEARCH */
		return linkat(fd, "", dfd, name, AT_EMPTY_PATH) ? -errno : 0;
	}
	if (!renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE))
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* a file system without RENAME_NOREPLACE: link, which never
	   replaces either, then drop the temporary name */
	if (linkat(dfd, tmp, dfd, name, 0))
		return -errno;
	unlinkat(dfd, tmp, 0);
	return 0;
}

/* The image number a directory entry names, or -1. */
static long img_index(const char *name)
{
	char *end;
	unsigned long v;

	if (strlen(name) != 11 || strcmp(name + 6, ".pmts"))
		return -1;
	for (int i = 0; i < 6; i++)
		if (name[i] < '0' || name[i] > '9')
			return -1;
	v = strtoul(name, &end, 10);
	return end == name + 6 ? (long)v : -1;
}

/* The highest image number in @dfd into *@last (-1 if none); 0 or -errno. */
static int img_last(int dfd, long *last)
{
	struct dirent *de;
	long k;
	int fd = dup(dfd);
	DIR *d;

	*last = -1;
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d)))
		if ((k = img_index(de->d_name)) > *last)
			*last = k;
	closedir(d);
	return 0;
}

int pmtrack_ckpt_new(const char *dir, const struct pmtrack_ckpt_opts *o,
		     const struct pmtrack_mem_region *regions, size_t n,
		     struct pmtrack_ckpt **out)
{
	struct pmtrack_ckpt *ck;
	long last;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!dir || !*dir || !PMT_OPTS_VALID(o, pmtrack_ckpt_opts) ||
	    PMT_OPTS_GET(o, xport, PMTRACK_XPORT_AUTO) > PMTRACK_XPORT_SYSCALL)
		return -EINVAL;
	ck = calloc(1, sizeof(*ck));
	if (!ck)
		return -ENOMEM;
	ck->dfd = -1;
	if (mkdir(dir, 0755) && errno != EEXIST) {
		err = -errno;
		goto fail;
	}
	ck->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ck->dfd < 0) {
		err = -errno;
		goto fail;
	}
	err = img_last(ck->dfd, &last);
	if (!err && last >= 0)
		err = -EEXIST;
	if (err)
		goto fail;
	ck->level = PMT_OPTS_GET(o, level, 0);
	ck->enc_flags = PMT_OPTS_GET(o, enc_flags, 0u);
	ck->batch_pages = PMT_OPTS_GET(o, batch_pages, 0u);
	ck->workers = PMT_OPTS_GET(o, workers, (uint32_t)0);
	ck->no_sync = PMT_OPTS_GET(o, no_sync, 0);
	ck->xport = PMT_OPTS_GET(o, xport, PMTRACK_XPORT_AUTO);
	if (PMT_OPTS_GET(o, producer, (const char *)NULL)) {
		ck->producer = strdup(o->producer);
		if (!ck->producer) {
			err = -ENOMEM;
			goto fail;
		}
	}
	err = pmt_src_init(
		&ck->src,
		PMT_OPTS_GET(o, tracker, (const struct pmtrack_opts *)NULL),
		regions, n);
	if (!err)
		err = pmtrack_pagesums_new(&ck->sums);
	if (err)
		goto fail;
	pmt_src_all(&ck->src);
	*out = ck;
	return 0;
fail:
	pmtrack_ckpt_free(ck);
	return err;
}

void pmtrack_ckpt_free(struct pmtrack_ckpt *ck)
{
	if (!ck)
		return;
	pmt_src_free(&ck->src);
	pmtrack_pagesums_free(ck->sums);
	if (ck->dfd >= 0)
		close(ck->dfd);
	free(ck->producer);
	free(ck);
}

/*
 * The stopped memory against what the chain sent: -EBADMSG if a page was
 * written without the tracker reporting it.  Every page then goes into
 * the next image, which so holds the memory whole again.
 */
static int ckpt_audit(struct pmtrack_ckpt *ck, struct pmtrack_dump_info *info)
{
	int err = pmt_src_audit(&ck->src, ck->sums, &info->audit_differ,
				&info->audit_first_addr);

	if (err == -EBADMSG)
		pmt_src_all(&ck->src);
	info->audited = !err;
	return err;
}

/* Write image ck->next to @fd. */
static int ckpt_write(struct pmtrack_ckpt *ck, int fd, unsigned int flags,
		      const uint8_t id[PMTRACK_STREAM_ID_LEN],
		      struct pmtrack_dump_info *info)
{
	PMTRACK_OPTS(pmtrack_xport_opts, xo, .kind = ck->xport);
	struct pmtrack_enc_stats es = { .sz = sizeof(es) };
	struct pmtrack_xport *x = NULL;
	struct pmtrack_enc *enc = NULL;
	uint8_t digest[PMTRACK_DIGEST_LEN];
	bool full = flags & PMTRACK_DUMP_FULL_DIGEST;
	int err;

	err = pmtrack_xport_new(fd, &xo, &x);
	if (err)
		return err;
	{
		PMTRACK_OPTS(pmtrack_enc_opts, eo, .write = pmtrack_xport_write,
			     .write_arg = x, .page_size = ck->src.ps,
			     .level = ck->level,
			     .flags = ck->enc_flags |
				      ((flags & PMTRACK_DUMP_STOPPED)
					       ? PMTRACK_ENC_STABLE
					       : 0u),
			     .batch_pages = ck->batch_pages,
			     .producer = ck->producer, .stream_id = id,
			     .parent_id = ck->next ? ck->last_id : NULL,
			     .sums = ck->sums,
			     .workers = pmt_src_workers(ck->workers));
		err = pmtrack_enc_new(&eo, ck->src.sr, ck->src.n, &enc);
	}
	if (!err)
		err = pmt_src_round(&ck->src, enc, 0);
	if (!err && full)
		err = pmt_src_digest(&ck->src, digest);
	if (!err)
		err = pmtrack_enc_end(enc, full ? digest : NULL);
	if (!err)
		err = pmtrack_xport_flush(x);
	if (!err && (flags & PMTRACK_DUMP_AUDIT))
		err = ckpt_audit(ck, info);
	if (!err && !ck->no_sync && fsync(fd))
		err = -errno;
	if (enc && !pmtrack_enc_get_stats(enc, &es)) {
		info->pages = es.pages + es.zero_pages;
		info->zero_pages = es.zero_pages;
		info->bytes = es.wire_bytes;
	}
	info->has_digest = full;
	info->has_state = 1;
	pmtrack_enc_free(enc);
	pmtrack_xport_free(x);
	return err;
}

/*
 * Write image ck->next, named by stream @id, and give it its name; on
 * failure nothing of it is left in the directory.
 */
static int ckpt_image(struct pmtrack_ckpt *ck, unsigned int flags,
		      const uint8_t id[PMTRACK_STREAM_ID_LEN],
		      struct pmtrack_dump_info *info)
{
	char tmp[64], name[32];
	bool published;
	int fd, err;

	img_name(name, sizeof(name), ck->next);
	fd = img_create(ck->dfd, ck->next, tmp);
	if (fd < 0)
		return fd;
	err = ckpt_write(ck, fd, flags, id, info);
	if (!err)
		err = img_publish(ck->dfd, fd, tmp, name);
	published = !err;
	if (close(fd) && !err)
		err = -errno;
	if (!err && !ck->no_sync && fsync(ck->dfd))
		err = -errno;
	if (err) {
		/* the chain as it was */
		if (published)
			unlinkat(ck->dfd, name, 0);
		else if (tmp[0])
			unlinkat(ck->dfd, tmp, 0);
	}
	return err;
}

int pmtrack_ckpt_dump(struct pmtrack_ckpt *ck, unsigned int flags,
		      struct pmtrack_dump_info *infoout)
{
	struct pmtrack_dump_info info = { .sz = sizeof(info) };
	uint8_t id[PMTRACK_STREAM_ID_LEN];
	uint64_t t0 = pmt_now_ns(), pending;
	int err;

	if (!ck ||
	    (flags & ~(unsigned int)(PMTRACK_DUMP_STOPPED |
				     PMTRACK_DUMP_FULL_DIGEST |
				     PMTRACK_DUMP_AUDIT)) ||
	    ((flags & (PMTRACK_DUMP_FULL_DIGEST | PMTRACK_DUMP_AUDIT)) &&
	     !(flags & PMTRACK_DUMP_STOPPED)) ||
	    (infoout && infoout->sz < sizeof(size_t)) || ck->next > 999999)
		return -EINVAL;
	info.index = ck->next;
	/* image 0 sends everything (set at creation); later ones what was
	   written since, plus whatever a failed dump could not deliver */
	if (ck->next) {
		err = pmt_src_collect(&ck->src, &pending);
		if (err)
			return err;
	}
	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id))
		return errno ? -errno : -EIO;
	err = ckpt_image(ck, flags, id, &info);
	if (err) {
		/* the pages stay pending, and the next image sends them again
		   as the child of the last one published */
		if (ck->next)
			pmtrack_pagesums_resume(ck->sums, ck->last_id);
		if (infoout)
			pmt_stats_out(infoout, &info, sizeof(info));
		return err;
	}
	pmt_src_sent(&ck->src);
	memcpy(ck->last_id, id, sizeof(id));
	ck->next++;
	info.duration_ns = pmt_now_ns() - t0;
	if (infoout)
		pmt_stats_out(infoout, &info, sizeof(info));
	return 0;
}

int pmtrack_ckpt_restore(struct pmtrack_rx *rx, const char *dir, uint32_t upto,
			 struct pmtrack_restore_info *infoout)
{
	struct pmtrack_restore_info info = { .sz = sizeof(info) };
	struct pmtrack_rx_stats rs = { .sz = sizeof(rs) };
	char name[32];
	uint32_t i;
	long last;
	int dfd, fd, err = 0;
	struct stat sb;

	if (!rx || !dir || (infoout && infoout->sz < sizeof(size_t)))
		return -EINVAL;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	err = img_last(dfd, &last);
	if (!err && last < 0)
		err = -ENOENT;
	if (err)
		goto out;
	if (upto == UINT32_MAX)
		upto = (uint32_t)last;
	for (i = 0; i <= upto && !err; i++) {
		img_name(name, sizeof(name), i);
		fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = -errno;
			break;
		}
		err = pmtrack_rx_apply_fd(rx, fd);
		if (!err) {
			info.images++;
			if (!fstat(fd, &sb))
				info.bytes += (uint64_t)sb.st_size;
		}
		close(fd);
	}
	if (!err && !pmtrack_rx_get_stats(rx, &rs))
		info.digest_verified = rs.digest_verified;
out:
	close(dfd);
	if (infoout)
		pmt_stats_out(infoout, &info, sizeof(info));
	return err;
}

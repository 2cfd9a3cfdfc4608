// SPDX-License-Identifier: MIT
/* The image files of a `pmtrack dump --pid` chain (rimage.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rimage.h"

void rimg_name(char buf[16], uint32_t i)
{
	snprintf(buf, 16, "%06u.pmts", i);
}

/* the number of the image @name names (NNNNNN.pmts), or -1 */
static long image_index(const char *name)
{
	long v = 0;

	if (strlen(name) != 11 || strcmp(name + 6, ".pmts"))
		return -1;
	for (int i = 0; i < 6; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (name[i] - '0');
	}
	return v;
}

int rimg_last(int dfd, long *last)
{
	int fd = dup(dfd);
	struct dirent *de;
	long k;
	DIR *d;

	*last = -1;
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if ((k = image_index(de->d_name)) > *last)
			*last = k;
	closedir(d);
	return 0;
}

int rimg_dir_open(const char *path)
{
	long last;
	int dfd, err;

	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	err = rimg_last(dfd, &last);
	if (!err && last >= 0)
		err = -EEXIST;
	if (err) {
		close(dfd);
		return err;
	}
	return dfd;
}

/* An unnamed file in @dfd, else a hidden one created exclusively. */
static int img_create(struct rimg *im)
{
	uint32_t r;
	int fd;

	im->tmp[0] = 0;
	fd = openat(im->dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	for (int k = 0; k < 64; k++) {
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return errno ? -errno : -EIO;
		snprintf(im->tmp, sizeof(im->tmp), ".%06u.pmts.%08x.tmp",
			 im->index, r);
		fd = openat(im->dfd, im->tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    0644);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		im->tmp[0] = 0;
	return fd < 0 ? -errno : fd;
}

/* Give the complete image its name; -EEXIST if anything has it already. */
static int img_publish(struct rimg *im, const char *name)
{
	char proc[48];

	if (im->tmp[0]) {
		if (renameat2(im->dfd, im->tmp, im->dfd, name,
			      RENAME_NOREPLACE))
			return -errno;
		im->tmp[0] = 0;
		return 0;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", im->fd);
	if (!linkat(AT_FDCWD, proc, im->dfd, name, AT_SYMLINK_FOLLOW))
		return 0;
	if (errno != ENOENT)
		return -errno;
	return linkat(im->fd, "", im->dfd, name, AT_EMPTY_PATH) ? -errno : 0;
}

int rimg_begin(struct rimg *im, int dfd, uint32_t index, const uint8_t *parent,
	       int level, const struct pmtrack_stream_region *r, size_t n)
{
	int err;

	memset(im, 0, sizeof(*im));
	im->fd = -1;
	im->dfd = dfd;
	im->index = index;
	if (getrandom(im->id, sizeof(im->id), 0) != (ssize_t)sizeof(im->id))
		return errno ? -errno : -EIO;
	im->fd = img_create(im);
	if (im->fd < 0)
		return im->fd;
	err = pmtrack_xport_new(im->fd, NULL, &im->x);
	if (!err) {
		/* the pages are our copy, which nothing writes meanwhile */
		PMTRACK_OPTS(pmtrack_enc_opts, eo, .write = pmtrack_xport_write,
			     .write_arg = im->x, .level = level,
			     .flags = PMTRACK_ENC_STABLE |
				      (level ? PMTRACK_ENC_ADAPTIVE : 0u),
			     .producer = RD_PRODUCER, .stream_id = im->id,
			     .parent_id = parent);

		err = pmtrack_enc_new(&eo, r, n, &im->enc);
	}
	if (err)
		rimg_abort(im);
	return err;
}

int rimg_end(struct rimg *im, const uint8_t *digest,
	     struct pmtrack_enc_stats *st)
{
	char name[16];
	int err;

	err = pmtrack_enc_end(im->enc, digest);
	if (st)
		pmtrack_enc_get_stats(im->enc, st);
	if (!err)
		err = pmtrack_xport_flush(im->x);
	if (!err && fsync(im->fd))
		err = -errno;
	rimg_name(name, im->index);
	if (!err)
		err = img_publish(im, name);
	if (!err && fsync(im->dfd)) {
		err = -errno;
		unlinkat(im->dfd, name, 0);
	}
	rimg_abort(im);
	return err;
}

void rimg_abort(struct rimg *im)
{
	pmtrack_enc_free(im->enc);
	pmtrack_xport_free(im->x);
	im->enc = NULL;
	im->x = NULL;
	if (im->fd >= 0)
		close(im->fd);
	im->fd = -1;
	if (im->tmp[0])
		unlinkat(im->dfd, im->tmp, 0);
	im->tmp[0] = 0;
}

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

/* Is @name an image's, NNNNNN.pmts? */
static int is_image(const char *name)
{
	if (strlen(name) != 11 || strcmp(name + 6, ".pmts"))
		return 0;
	for (int i = 0; i < 6; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	return 1;
}

/* -EEXIST if @dfd holds an image, else 0 or -errno */
static int no_images(int dfd)
{
	int fd = dup(dfd), err = 0;
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (!err && (de = readdir(d)))
		if (is_image(de->d_name))
			err = -EEXIST;
	closedir(d);
	return err;
}

int rimg_dir_open(const char *path)
{
	int dfd, err;

	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	err = no_images(dfd);
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

int rimg_begin(struct rimg *im, int dfd, uint32_t index,
	       const uint8_t *parent, int level,
	       const struct pmtrack_stream_region *r, size_t n)
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

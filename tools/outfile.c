// SPDX-License-Identifier: MIT
/*
 * Files the tool writes (send --out, recv --image, --port-file), by what is
 * at the path:
 *
 *   nothing, or a regular file   written to a temporary file beside it
 *                                (NAME.partial-XXXXXX) and renamed over
 *                                NAME once complete; a failure or
 *                                SIGINT/SIGTERM/SIGHUP removes it
 *   a symlink                    followed: the rule is applied to what it
 *                                points to (a dangling one is refused)
 *   a character or block device,
 *   a FIFO                       written in place (opened for writing)
 *   a Unix socket                connected to, and written in place
 *   a directory                  refused, before any work starts
 *
 * So the tool never replaces a device, a FIFO, a socket or a symlink, and a
 * write error on one is an error like any other.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "outfile.h"

/* the temporary file a fatal signal removes */
static char *volatile partial_path;

static void on_fatal_signal(int sig)
{
	char *p = partial_path;

	if (p)
		unlink(p);
	raise(sig); /* SA_RESETHAND: the default action now */
}

static void catch_fatal_signals(void)
{
	struct sigaction sa = { .sa_handler = on_fatal_signal,
				.sa_flags = SA_RESETHAND };
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Open what is at @path in place (a device, FIFO or socket). */
static int open_in_place(const char *cmd, struct outfile *of, const char *what,
			 const struct stat *sb)
{
	int fd = S_ISSOCK(sb->st_mode)
			 ? unix_connect(of->path)
			 : open(of->path, O_WRONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		int e = S_ISSOCK(sb->st_mode) ? -fd : errno;

		cli_err(cmd, "%s %s: %s", what, of->path, strerror(e));
		return -e;
	}
	of->fd = fd;
	of->in_place = true;
	of->conn = S_ISSOCK(sb->st_mode);
	return 0;
}

int outfile_open(const char *cmd, const char *what, struct outfile *of,
		 const char *path)
{
	struct stat lsb, sb;
	char *real = NULL;
	int e;

	memset(of, 0, sizeof(*of));
	of->fd = -1;
	if (lstat(path, &lsb)) {
		if (errno != ENOENT) {
			e = errno;
			cli_err(cmd, "%s %s: %s", what, path, strerror(e));
			return -e;
		}
		sb.st_mode = 0; /* nothing there: created */
	} else if (S_ISLNK(lsb.st_mode)) {
		if (stat(path, &sb)) {
			e = errno;
			cli_err(cmd, "%s %s: a symlink to %s: refusing to replace it",
			    what, path,
			    e == ENOENT ? "nothing" : strerror(e));
			return e == ENOENT ? -ENOENT : -e;
		}
		/* a regular file behind it is replaced where it is */
		if (S_ISREG(sb.st_mode) && !(real = realpath(path, NULL))) {
			e = errno;
			cli_err(cmd, "%s %s: %s", what, path, strerror(e));
			return -e;
		}
	} else {
		sb = lsb;
	}
	if (S_ISDIR(sb.st_mode)) {
		cli_err(cmd, "%s %s: is a directory", what, path);
		return -EISDIR;
	}
	of->path = real ? real : strdup(path);
	if (!of->path) {
		cli_err(cmd, "out of memory");
		return -ENOMEM;
	}
	if (sb.st_mode && !S_ISREG(sb.st_mode)) {
		e = open_in_place(cmd, of, what, &sb);
		if (e)
			outfile_release(of);
		return e;
	}
	if (asprintf(&of->tmp, "%s.partial-XXXXXX", of->path) < 0) {
		of->tmp = NULL;
		outfile_release(of);
		cli_err(cmd, "out of memory");
		return -ENOMEM;
	}
	of->fd = mkostemp(of->tmp, O_CLOEXEC);
	if (of->fd < 0) {
		e = errno;
		cli_err(cmd, "%s %s: %s", what, of->tmp, strerror(e));
		outfile_release(of);
		return -e;
	}
	if (fchmod(of->fd, 0644)) {
		e = errno;
		cli_err(cmd, "%s %s: %s", what, of->tmp, strerror(e));
		outfile_abort(of);
		return -e;
	}
	partial_path = of->tmp;
	catch_fatal_signals();
	return 0;
}

void outfile_release(struct outfile *of)
{
	if (of->tmp && partial_path == of->tmp)
		partial_path = NULL;
	if (of->fd >= 0)
		close(of->fd);
	of->fd = -1;
	free(of->path);
	free(of->tmp);
	of->path = of->tmp = NULL;
}

void outfile_abort(struct outfile *of)
{
	if (of->tmp)
		unlink(of->tmp);
	outfile_release(of);
}

int outfile_commit(const char *cmd, struct outfile *of)
{
	int e = 0;

	/* a device or FIFO may not sync: only a file we replace must */
	if (!of->in_place && fsync(of->fd))
		e = errno;
	if (close(of->fd) && !e)
		e = errno;
	of->fd = -1;
	if (!e && of->tmp && rename(of->tmp, of->path))
		e = errno;
	if (e) {
		cli_err(cmd, "%s: %s", of->path, strerror(e));
		outfile_abort(of);
		return -e;
	}
	outfile_release(of);
	return 0;
}

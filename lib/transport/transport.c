// SPDX-License-Identifier: MIT
/*
 * Stream transport: buffered writes and reads over a socket, pipe or file,
 * with io_uring (liburing) or plain system calls.
 *
 * io_uring writes copy into @depth buffers (registered with the ring when
 * the kernel lets us) and submit a full buffer while the next one fills.
 * Files are written at explicit offsets, so several buffers may be in
 * flight; a socket or pipe has one write in flight at a time, because two
 * in-flight sends on one stream may complete out of order.  File reads keep
 * @depth reads in flight ahead of the reader; socket and pipe reads keep
 * one.  The system-call path copies only small writes (into one buffer) and
 * sends large ones straight from the caller's iovecs with that buffer in
 * front, in one sendmsg()/writev().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "base.h"

#define XP_DEPTH_MAX 64u
/* iovecs sent without copying: a stable batch is up to 256 runs plus its
   frame and metadata */
#define XP_IOV_MAX 512

struct xp_slot {
	size_t len;  /* bytes queued in the buffer (write) or read (read) */
	size_t done; /* bytes of len already transferred (write) */
	off_t off;   /* file offset of the buffer's first byte */
	bool busy;   /* submitted, completion not yet reaped */
	int res;     /* read: result once reaped */
	bool reaped;
};

struct pmtrack_xport {
	int fd;
	enum pmtrack_xport_kind kind;
	bool sock, file;
	bool registered;     /* buffers registered with the ring */
	bool uring_required; /* no fallback: asked for by option or env */
	unsigned int depth;
	size_t bufsz;
	int timeout_ms; /* sockets and pipes; -1 = none */
	uint8_t *mem; /* depth * bufsz bytes in use */
	size_t maplen; /* bytes mapped at mem (the depth asked for) */
	struct xp_slot slot[XP_DEPTH_MAX];
	unsigned int cur;      /* write: buffer being filled; read: next */
	unsigned int inflight; /* submitted, not reaped */
	off_t off;	       /* file offset of the next submission */
	int err;	       /* sticky error */
	/* read side: q holds the slots in flight, oldest first */
	bool reading, eof;
	bool written; /* pmtrack_xport_write() was called */
	off_t roff; /* file offset the reader has consumed up to */
	unsigned int q[XP_DEPTH_MAX], qh, qn;
	int held; /* slot the caller is reading, or -1 */
	struct io_uring ring;
	bool ring_ok;
	struct pmtrack_xport_stats st;
};

static uint8_t *xp_buf(struct pmtrack_xport *x, unsigned int i)
{
	return x->mem + (size_t)i * x->bufsz;
}

static bool uring_unsupported(int err)
{
	return err == -ENOSYS || err == -EPERM || err == -EACCES ||
	       err == -EOPNOTSUPP || err == -EINVAL;
}

static int xp_pick(int fd, const struct pmtrack_xport_opts *o,
		   struct pmtrack_xport *x)
{
	enum pmtrack_xport_kind k = PMT_OPTS_GET(o, kind, PMTRACK_XPORT_AUTO);
	const char *env;
	struct stat sb;

	if (fstat(fd, &sb))
		return -errno == -EBADF ? -EINVAL : -errno;
	x->sock = S_ISSOCK(sb.st_mode);
	x->file = S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode);
	if (x->file) {
		x->off = lseek(fd, 0, SEEK_CUR);
		if (x->off < 0)
			return -errno;
		x->roff = x->off;
	}
	if (k > PMTRACK_XPORT_SYSCALL)
		return -EINVAL;
	if (k == PMTRACK_XPORT_AUTO) {
		env = getenv("PMTRACK_TRANSPORT");
		if (env && !strcmp(env, "uring"))
			k = PMTRACK_XPORT_URING;
		else if (env && !strcmp(env, "syscall"))
			k = PMTRACK_XPORT_SYSCALL;
		else if (env && *env && strcmp(env, "auto"))
			return -EINVAL;
	}
	x->uring_required = k == PMTRACK_XPORT_URING;
	x->kind = k;
	return 0;
}

static int xp_ring_init(struct pmtrack_xport *x, bool forced)
{
	struct iovec iov[XP_DEPTH_MAX];
	unsigned int i;
	int r;

	r = io_uring_queue_init(x->depth * 2, &x->ring, 0);
	if (r < 0) {
		if (!forced && (uring_unsupported(r) || r == -ENOMEM))
			return 1; /* fall back */
		return uring_unsupported(r) ? -EOPNOTSUPP : r;
	}
	x->ring_ok = true;
	for (i = 0; i < x->depth; i++) {
		iov[i].iov_base = xp_buf(x, i);
		iov[i].iov_len = x->bufsz;
	}
	/* pinning pays for files (no get_user_pages per I/O); a failure
	   (RLIMIT_MEMLOCK on old kernels) just means plain buffers */
	if (x->file && !io_uring_register_buffers(&x->ring, iov, x->depth))
		x->registered = true;
	return 0;
}

/* The buffer count and size the options ask for, or the defaults. */
static int xp_sizes(const struct pmtrack_xport_opts *o, size_t *depth,
		    size_t *bufsz)
{
	*depth = PMT_OPTS_GET(o, depth, 0u);
	*bufsz = PMT_OPTS_GET(o, buf_size, (size_t)0);
	if (!*depth)
		*depth = 4;
	if (!*bufsz)
		*bufsz = 1u << 20;
	if (*depth > XP_DEPTH_MAX || *bufsz < 4096 || *bufsz > (64u << 20))
		return -EINVAL;
	return 0;
}

/* The timeout of a socket or pipe in milliseconds, rounded up; -1 = none. */
static int xp_timeout_ms(const struct pmtrack_xport_opts *o, bool file)
{
	uint64_t tmo = PMT_OPTS_GET(o, timeout_ns, (uint64_t)0);

	if (!tmo || file)
		return -1;
	return tmo / 1000000u >= INT_MAX ? INT_MAX
					 : (int)((tmo + 999999u) / 1000000u);
}

/*
 * Settle the kind (AUTO: io_uring for files, system calls otherwise), map
 * the buffers and set up the ring, falling back to system calls where
 * io_uring is not to be had and was not required.
 */
static int xp_setup_io(struct pmtrack_xport *x)
{
	int r;

	if (x->kind == PMTRACK_XPORT_AUTO)
		x->kind = x->file ? PMTRACK_XPORT_URING : PMTRACK_XPORT_SYSCALL;
	else if (x->kind == PMTRACK_XPORT_SYSCALL)
		x->depth = 1;
	x->mem = mmap(NULL, x->depth * x->bufsz, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (x->mem == MAP_FAILED) {
		x->mem = NULL;
		return -ENOMEM;
	}
	x->maplen = x->depth * x->bufsz;
	if (x->kind != PMTRACK_XPORT_URING)
		return 0;
	/* required if the caller or PMTRACK_TRANSPORT=uring asked */
	r = xp_ring_init(x, x->uring_required);
	if (r < 0)
		return r;
	if (r > 0) {
		x->kind = PMTRACK_XPORT_SYSCALL;
		x->depth = 1;
	}
	return 0;
}

int pmtrack_xport_new(int fd, const struct pmtrack_xport_opts *o,
		      struct pmtrack_xport **out)
{
	struct pmtrack_xport *x;
	size_t depth, bufsz;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (fd < 0 || !PMT_OPTS_VALID(o, pmtrack_xport_opts))
		return -EINVAL;
	r = xp_sizes(o, &depth, &bufsz);
	if (r)
		return r;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->fd = fd;
	x->depth = depth;
	x->bufsz = bufsz;
	r = xp_pick(fd, o, x);
	if (r)
		goto fail;
	x->timeout_ms = xp_timeout_ms(o, x->file);
	r = xp_setup_io(x);
	if (r)
		goto fail;
	*out = x;
	return 0;
fail:
	pmtrack_xport_free(x);
	return r;
}

int pmtrack_xport_fd(const struct pmtrack_xport *x)
{
	return x ? x->fd : -EINVAL;
}

/*
 * Wait until @fd can be read (POLLIN) or written (POLLOUT), for at most the
 * transport's timeout: 0, -ETIMEDOUT, or -errno.
 */
static int xp_wait(struct pmtrack_xport *x, short what)
{
	struct pollfd p = { .fd = x->fd, .events = what };
	int r;

	if (x->timeout_ms < 0)
		return 0;
	do
		r = poll(&p, 1, x->timeout_ms);
	while (r < 0 && errno == EINTR);
	x->st.calls++;
	if (r < 0)
		return -errno;
	return r ? 0 : -ETIMEDOUT;
}

enum pmtrack_xport_kind pmtrack_xport_kind(const struct pmtrack_xport *x)
{
	return x ? x->kind : PMTRACK_XPORT_AUTO;
}

int pmtrack_xport_get_stats(const struct pmtrack_xport *x,
			    struct pmtrack_xport_stats *st)
{
	if (!x)
		return -EINVAL;
	return pmt_stats_out(st, &x->st, sizeof(x->st));
}

/* ---- io_uring ---------------------------------------------------------- */

static void xp_prep_write(struct pmtrack_xport *x, unsigned int i)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&x->ring);
	struct xp_slot *s = &x->slot[i];
	uint8_t *p = xp_buf(x, i) + s->done;
	unsigned int n = (unsigned int)(s->len - s->done);

	/* the ring has 2 * depth entries and at most depth are queued */
	if (x->file && x->registered)
		io_uring_prep_write_fixed(sqe, x->fd, p, n, s->off + s->done,
					  (int)i);
	else if (x->file)
		io_uring_prep_write(sqe, x->fd, p, n, s->off + s->done);
	else if (x->sock)
		io_uring_prep_send(sqe, x->fd, p, n,
				   MSG_NOSIGNAL | MSG_WAITALL);
	else
		io_uring_prep_write(sqe, x->fd, p, n, (uint64_t)-1);
	io_uring_sqe_set_data64(sqe, i);
	s->busy = true;
	x->inflight++;
}

static void xp_prep_read(struct pmtrack_xport *x, unsigned int i)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&x->ring);
	struct xp_slot *s = &x->slot[i];

	s->off = x->off;
	if (x->file && x->registered)
		io_uring_prep_read_fixed(sqe, x->fd, xp_buf(x, i),
					 (unsigned int)x->bufsz, s->off,
					 (int)i);
	else if (x->file)
		io_uring_prep_read(sqe, x->fd, xp_buf(x, i),
				   (unsigned int)x->bufsz, s->off);
	else if (x->sock)
		io_uring_prep_recv(sqe, x->fd, xp_buf(x, i), x->bufsz, 0);
	else
		io_uring_prep_read(sqe, x->fd, xp_buf(x, i),
				   (unsigned int)x->bufsz, (uint64_t)-1);
	io_uring_sqe_set_data64(sqe, i);
	if (x->file)
		x->off += (off_t)x->bufsz;
	s->busy = true;
	s->reaped = false;
	x->inflight++;
}

static int xp_submit(struct pmtrack_xport *x)
{
	int r;

	do
		r = io_uring_submit(&x->ring);
	while (r == -EINTR);
	x->st.calls++;
	return r < 0 ? r : 0;
}

/* Wait for one completion and account it; resubmits short writes. */
static int xp_reap_one(struct pmtrack_xport *x)
{
	struct io_uring_cqe *cqe;
	struct xp_slot *s;
	unsigned int i;
	int r, res;

	do {
		if (x->timeout_ms >= 0) {
			struct __kernel_timespec ts = {
				.tv_sec = x->timeout_ms / 1000,
				.tv_nsec = (x->timeout_ms % 1000) * 1000000L,
			};

			r = io_uring_wait_cqe_timeout(&x->ring, &cqe, &ts);
			if (r == -ETIME)
				r = -ETIMEDOUT; /* the I/O stays in flight */
		} else {
			r = io_uring_wait_cqe(&x->ring, &cqe);
		}
		x->st.calls++;
	} while (r == -EINTR || r == -EAGAIN);
	if (r < 0)
		return r;
	i = (unsigned int)io_uring_cqe_get_data64(cqe);
	res = cqe->res;
	io_uring_cqe_seen(&x->ring, cqe);
	if (i >= x->depth)
		return 0; /* not a buffer's */
	s = &x->slot[i];
	s->busy = false;
	x->inflight--;
	if (x->reading) {
		s->res = res;
		s->reaped = true;
		return 0;
	}
	if (res == -EINTR || res == -EAGAIN || res == -ECANCELED) {
		xp_prep_write(x, i); /* interrupted: send the rest again */
		return xp_submit(x);
	}
	if (res < 0)
		return res;
	if (res == 0)
		return -EIO; /* the file or peer takes nothing */
	s->done += (size_t)res;
	x->st.bytes += (uint64_t)res;
	if (s->done < s->len) {
		xp_prep_write(x, i);
		return xp_submit(x);
	}
	return 0;
}

/* Submit the current buffer and move to a free one. */
static int xp_uring_push(struct pmtrack_xport *x)
{
	unsigned int i = x->cur, max = x->file ? x->depth : 1;
	struct xp_slot *s = &x->slot[i];
	int r;

	if (!s->len)
		return 0;
	/* on a stream, the previous send must finish first */
	while (x->inflight >= max) {
		x->st.waits++;
		r = xp_reap_one(x);
		if (r)
			return r;
	}
	s->done = 0;
	s->off = x->off;
	if (x->file)
		x->off += (off_t)s->len;
	xp_prep_write(x, i);
	r = xp_submit(x);
	if (r)
		return r;
	x->cur = (i + 1) % x->depth;
	while (x->slot[x->cur].busy) {
		x->st.waits++;
		r = xp_reap_one(x);
		if (r)
			return r;
	}
	x->slot[x->cur].len = 0;
	return 0;
}

static int xp_uring_drain(struct pmtrack_xport *x)
{
	int r;

	while (x->inflight) {
		r = xp_reap_one(x);
		if (r)
			return r;
	}
	return 0;
}

/* ---- system calls ------------------------------------------------------ */

static int xp_sys_writev(struct pmtrack_xport *x, struct iovec *iov, int n)
{
	struct msghdr mh = { 0 };
	ssize_t w;

	while (n > 0) {
		int r = xp_wait(x, POLLOUT);

		if (r)
			return r;
		if (x->sock) {
			mh.msg_iov = iov;
			mh.msg_iovlen = (size_t)n;
			/* with a timeout, never block past what poll saw */
			w = sendmsg(x->fd, &mh,
				    MSG_NOSIGNAL | (x->timeout_ms >= 0
							    ? MSG_DONTWAIT
							    : 0));
		} else if (x->file) {
			w = pwritev(x->fd, iov, n, x->off);
		} else {
			w = writev(x->fd, iov, n);
		}
		x->st.calls++;
		if (w < 0) {
			if (errno == EINTR ||
			    (errno == EAGAIN && x->timeout_ms >= 0))
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		x->st.bytes += (uint64_t)w;
		if (x->file)
			x->off += w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int xp_sys_flushbuf(struct pmtrack_xport *x)
{
	struct iovec v = { xp_buf(x, 0), x->slot[0].len };
	int r;

	if (!v.iov_len)
		return 0;
	r = xp_sys_writev(x, &v, 1);
	x->slot[0].len = 0;
	return r;
}

/* ---- common ------------------------------------------------------------ */

static int xp_fail(struct pmtrack_xport *x, int r)
{
	if (r && !x->err)
		x->err = r;
	return x->err;
}

int pmtrack_xport_write(void *arg, const struct iovec *iov, int iovcnt)
{
	struct pmtrack_xport *x = arg;
	struct iovec v[XP_IOV_MAX + 1];
	size_t total = 0, k, fill;
	int i, r = 0;

	if (!x || iovcnt < 0 || (iovcnt && !iov) || x->reading)
		return -EINVAL;
	if (x->err)
		return x->err;
	x->written = true;
	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (x->kind == PMTRACK_XPORT_SYSCALL && iovcnt <= XP_IOV_MAX &&
	    x->slot[0].len + total > x->bufsz) {
		/* large: the buffer, then the caller's bytes, no copy */
		v[0].iov_base = xp_buf(x, 0);
		v[0].iov_len = x->slot[0].len;
		memcpy(v + 1, iov, (size_t)iovcnt * sizeof(*iov));
		r = xp_sys_writev(x, v, iovcnt + 1);
		x->slot[0].len = 0;
		return xp_fail(x, r);
	}
	for (i = 0; i < iovcnt && !r; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left && !r) {
			fill = x->slot[x->cur].len;
			k = x->bufsz - fill < left ? x->bufsz - fill : left;
			memcpy(xp_buf(x, x->cur) + fill, p, k);
			x->slot[x->cur].len = fill + k;
			p += k;
			left -= k;
			if (x->slot[x->cur].len == x->bufsz)
				r = x->kind == PMTRACK_XPORT_URING
					    ? xp_uring_push(x)
					    : xp_sys_flushbuf(x);
		}
	}
	return xp_fail(x, r);
}

int pmtrack_xport_flush(struct pmtrack_xport *x)
{
	int r;

	if (!x || x->reading)
		return -EINVAL;
	if (x->err)
		return x->err;
	if (x->kind == PMTRACK_XPORT_URING) {
		r = xp_uring_push(x);
		if (!r)
			r = xp_uring_drain(x);
	} else {
		r = xp_sys_flushbuf(x);
	}
	if (!r && x->file && lseek(x->fd, x->off, SEEK_SET) < 0)
		r = -errno;
	return xp_fail(x, r);
}

static ssize_t xp_sys_read(struct pmtrack_xport *x, const void **buf)
{
	ssize_t n;

	for (;;) {
		int r = xp_wait(x, POLLIN);

		if (r)
			return r;
		n = x->file ? pread(x->fd, xp_buf(x, 0), x->bufsz, x->roff)
			    : read(x->fd, xp_buf(x, 0), x->bufsz);
		x->st.calls++;
		if (n >= 0)
			break;
		if (errno != EINTR)
			return -errno;
	}
	x->roff += n;
	x->st.bytes += (uint64_t)n;
	*buf = xp_buf(x, 0);
	return n;
}

/* Wait for every read in flight and forget them; reads restart at x->off. */
static int xp_uring_forget(struct pmtrack_xport *x)
{
	int r = xp_uring_drain(x);

	for (unsigned int i = 0; i < x->depth; i++)
		x->slot[i].reaped = false; /* free for the next reads */
	x->qn = 0;
	return r;
}

static int xp_uring_fill(struct pmtrack_xport *x)
{
	unsigned int i, want = x->file ? x->depth : 1, queued = 0;

	for (i = 0; i < x->depth && x->qn < want; i++) {
		if (x->slot[i].busy || x->slot[i].reaped || (int)i == x->held)
			continue;
		xp_prep_read(x, i);
		x->q[(x->qh + x->qn++) % XP_DEPTH_MAX] = i;
		queued++;
	}
	return queued ? xp_submit(x) : 0;
}

static ssize_t xp_uring_read(struct pmtrack_xport *x, const void **buf)
{
	struct xp_slot *s;
	unsigned int i;
	int r, res;

	if (!x->reading) {
		x->reading = true;
		x->off = x->roff;
	}
	x->held = -1; /* the caller is done with the last buffer */
	for (;;) {
		if (x->eof)
			return 0;
		r = xp_uring_fill(x);
		if (r)
			return r;
		i = x->q[x->qh];
		s = &x->slot[i];
		while (!s->reaped) {
			r = xp_reap_one(x);
			if (r)
				return r;
		}
		x->qh = (x->qh + 1) % XP_DEPTH_MAX;
		x->qn--;
		s->reaped = false;
		res = s->res;
		if (res == -EINTR || res == -EAGAIN || res == -ECANCELED) {
			/* read that place again */
			r = xp_uring_forget(x);
			if (r)
				return r;
			x->off = s->off;
			continue;
		}
		if (res < 0)
			return res;
		if (res == 0) {
			x->eof = true;
			return 0;
		}
		break;
	}
	if (x->file)
		x->roff = s->off + res;
	if (x->file && (size_t)res < x->bufsz) {
		/* the reads queued after a short one started too far on */
		r = xp_uring_forget(x);
		if (r)
			return r;
		x->off = x->roff;
	}
	x->st.bytes += (uint64_t)res;
	x->held = (int)i;
	if (!x->file) {
		r = xp_uring_fill(x); /* read ahead while the caller works */
		if (r)
			return r;
	}
	*buf = xp_buf(x, i);
	return res;
}

ssize_t pmtrack_xport_read(struct pmtrack_xport *x, const void **buf)
{
	ssize_t n;

	if (!x || !buf)
		return -EINVAL;
	if (!x->reading && (x->slot[x->cur].len || x->inflight ||
			    (x->written && !x->sock)))
		return -EINVAL; /* unflushed, or a file or pipe it wrote */
	if (x->err)
		return x->err;
	if (x->kind == PMTRACK_XPORT_SYSCALL) {
		x->reading = true;
		n = xp_sys_read(x, buf);
	} else {
		n = xp_uring_read(x, buf);
	}
	if (n < 0)
		return xp_fail(x, (int)n);
	/* at the end, leave a file's offset after the bytes read (also done
	   by pmtrack_xport_free() for a reader that stops early) */
	if (!n && x->file && lseek(x->fd, x->roff, SEEK_SET) < 0)
		return xp_fail(x, -errno);
	return n;
}

ssize_t pmtrack_xport_read_exact(struct pmtrack_xport *x, void *buf,
				 size_t len)
{
	size_t got = 0;
	ssize_t n;
	int r;

	if (!x || (!buf && len) || x->reading || x->slot[x->cur].len ||
	    x->inflight)
		return -EINVAL;
	if (x->err)
		return x->err;
	while (got < len) {
		r = xp_wait(x, POLLIN);
		if (r)
			return xp_fail(x, r);
		n = x->file ? pread(x->fd, (char *)buf + got, len - got,
				    x->roff)
			    : read(x->fd, (char *)buf + got, len - got);
		x->st.calls++;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return xp_fail(x, -errno);
		if (!n)
			break;
		got += (size_t)n;
		x->st.bytes += (uint64_t)n;
		if (x->file)
			x->roff += n;
	}
	if (x->file && lseek(x->fd, x->roff, SEEK_SET) < 0)
		return xp_fail(x, -errno);
	return (ssize_t)got;
}

/*
 * Cancel whatever is in flight and wait for it: the kernel must be done
 * with the buffers before they are unmapped.
 */
static void xp_uring_cancel(struct pmtrack_xport *x)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&x->ring);
	struct io_uring_cqe *cqe;
	unsigned int i;
	int r;

	if (sqe) {
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		io_uring_sqe_set_data64(sqe, UINT64_MAX);
		xp_submit(x);
	}
	while (x->inflight) {
		r = io_uring_wait_cqe(&x->ring, &cqe);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0)
			break;
		i = (unsigned int)io_uring_cqe_get_data64(cqe);
		io_uring_cqe_seen(&x->ring, cqe);
		if (i < x->depth && x->slot[i].busy) {
			x->slot[i].busy = false;
			x->inflight--;
		}
	}
}

void pmtrack_xport_free(struct pmtrack_xport *x)
{
	if (!x)
		return;
	if (x->ring_ok) {
		if (x->inflight)
			xp_uring_cancel(x);
		io_uring_queue_exit(&x->ring);
	}
	/* a reader that stopped early; nowhere to report a failure */
	if (x->reading && x->file)
		lseek(x->fd, x->roff, SEEK_SET);
	if (x->mem)
		munmap(x->mem, x->maplen);
	free(x);
}

// SPDX-License-Identifier: MIT
/* TCP for pmtrack send and recv: addresses, listening, connecting. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"

/*
 * Split "HOST:PORT", "[IPV6]:PORT" or, if @host_optional, "PORT" (host
 * NULL).  @s is modified.  false if malformed.
 */
static bool split_hostport(char *s, bool host_optional, char **host,
			   char **port)
{
	char *c;

	*host = NULL;
	if (s[0] == '[') {
		c = strchr(s, ']');
		if (!c || c[1] != ':')
			return false;
		*c = 0;
		*host = s + 1;
		*port = c + 2;
	} else if ((c = strrchr(s, ':'))) {
		if (strchr(s, ':') != c)
			return false; /* a bare IPv6 address: use [ ] */
		*c = 0;
		*host = s;
		*port = c + 1;
	} else if (host_optional) {
		*port = s;
	} else {
		return false;
	}
	if (*host && !**host)
		return false;
	for (c = *port; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return **port && strlen(*port) <= 5 && atoi(*port) <= 65535;
}

int hostport_port(const char *spec, bool host_optional)
{
	char *copy = strdup(spec), *host, *port;
	int r = -1;

	if (copy && split_hostport(copy, host_optional, &host, &port))
		r = atoi(port);
	free(copy);
	return r;
}

/* "ADDR:PORT" or "[ADDR]:PORT" of a socket address. */
void addr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, size, "?");
		return;
	}
	snprintf(buf, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host,
		 serv);
}

/* connect(), giving up after @timeout_ms ms (0: the kernel's own) */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len,
			  uint64_t timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int fl = fcntl(fd, F_GETFL), e = 0, r;
	socklen_t el = sizeof(e);

	if (!timeout_ms)
		return connect(fd, sa, len) ? errno : 0;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return errno;
	if (connect(fd, sa, len) && errno != EINPROGRESS)
		return errno;
	do
		r = poll(&p, 1,
			 (int)(timeout_ms > INT_MAX ? INT_MAX : timeout_ms));
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r ? errno : ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el))
		return errno;
	if (!e && fcntl(fd, F_SETFL, fl))
		return errno;
	return e;
}

/* what tcp_open() makes of an address: a listening or a connected socket */
struct tcp_how {
	bool listen;
	uint64_t timeout_ms; /* connect's */
};

/* Bind @fd to @ai and listen, or connect it: 0 or an errno. */
static int tcp_try(int fd, const struct addrinfo *ai, bool wildcard,
		   const struct tcp_how *how)
{
	int one = 1, zero = 0;

	if (!how->listen)
		return connect_within(fd, ai->ai_addr, ai->ai_addrlen,
				      how->timeout_ms);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* no address given: the IPv6 wildcard takes IPv4 too */
	if (ai->ai_family == AF_INET6 && wildcard)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 1))
		return 0;
	return errno;
}

/* A socket listening on [ADDR:]PORT or connected to HOST:PORT: the first
   of @spec's addresses that works; -1 after a message. */
static int tcp_open(const char *cmd, const char *spec,
		    const struct tcp_how *how)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | (how->listen ? AI_PASSIVE : 0),
	};
	struct addrinfo *res, *ai;
	char *copy = strdup(spec), *host = NULL, *port = NULL;
	int fd = -1, r, e = how->listen ? 0 : ECONNREFUSED;

	if (!copy) {
		cli_err(cmd, "out of memory");
		return -1;
	}
	/* checked by the caller */
	split_hostport(copy, how->listen, &host, &port);
	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		cli_err(cmd, "%s%s: %s", how->listen ? "--listen " : "", spec,
			gai_strerror(r));
		free(copy);
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		e = tcp_try(fd, ai, !host, how);
		if (!e)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	free(copy);
	if (fd < 0)
		cli_err(cmd, "cannot %s %s: %s",
			how->listen ? "listen on" : "connect to", spec,
			strerror(e));
	return fd;
}

int tcp_listen(const char *cmd, const char *spec, char *desc, size_t desc_size,
	       unsigned int *port_out)
{
	static const struct tcp_how how = { .listen = true };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = tcp_open(cmd, spec, &how);

	if (fd < 0)
		return -1;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		cli_err(cmd, "getsockname: %s", strerror(errno));
		close(fd);
		return -1;
	}
	addr_str((struct sockaddr *)&ss, sl, desc, desc_size);
	*port_out = ntohs(ss.ss_family == AF_INET6
				  ? ((struct sockaddr_in6 *)&ss)->sin6_port
				  : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

int tcp_connect(const char *cmd, const char *spec, uint64_t timeout_ms)
{
	const struct tcp_how how = { .timeout_ms = timeout_ms };
	int fd = tcp_open(cmd, spec, &how), one = 1;

	/* the transport sends whole buffers; the last one should not wait */
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

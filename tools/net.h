/* SPDX-License-Identifier: MIT */
/* TCP for pmtrack send and recv (net.c). */
#ifndef PMTRACK_TOOLS_NET_H
#define PMTRACK_TOOLS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The port of "HOST:PORT", "[IPV6]:PORT" or, if @host_optional, "PORT";
   or -1 if @spec is none of those. */
int hostport_port(const char *spec, bool host_optional);
/* "ADDR:PORT" or "[ADDR]:PORT" of a socket address. */
void addr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
/* A listening socket on [ADDR:]PORT (@spec, already checked), its address
   in @desc and its port; or -1 after a message. */
int tcp_listen(const char *cmd, const char *spec, char *desc, size_t desc_size,
	       unsigned int *port_out);
/* A connected socket to HOST:PORT (@spec, already checked), giving up after
   @timeout_ms milliseconds (0: the kernel's own); or -1 after a message. */
int tcp_connect(const char *cmd, const char *spec, uint64_t timeout_ms);

/* --timeout-ms's default (send, recv) */
#define DEF_TIMEOUT_MS 60000
/* --timeout-ms's line of a usage text */
#define TIMEOUT_MS_USAGE                                                       \
	"  --timeout-ms MS       give up on a connection or pipe that stays "    \
	"silent this\n"                                                          \
	"                        long; 0 = never; default 60000\n"

#endif /* PMTRACK_TOOLS_NET_H */

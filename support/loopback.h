/* SPDX-License-Identifier: MIT */
/*
 * TCP over the loopback interface for the migration examples: a listening
 * socket on a port the kernel picks, and a connection to it.  Not part of
 * the library's API.
 */
#ifndef PMTRACK_SUPPORT_LOOPBACK_H
#define PMTRACK_SUPPORT_LOOPBACK_H

#include <stdint.h>

/* A socket listening on 127.0.0.1, backlog 1; its port in *@port.  The
 * descriptor (close-on-exec), or -1 after perror(). */
int pmt_loopback_listen(uint16_t *port);

/* A socket connected to 127.0.0.1:@port (close-on-exec), or -1 after
 * perror(). */
int pmt_loopback_connect(uint16_t port);

#endif /* PMTRACK_SUPPORT_LOOPBACK_H */

// SPDX-License-Identifier: MIT
/*
 * TCP peers that are not libpmtrack receivers or senders, for the command
 * line tests of the return path and the timeouts:
 *
 *   tcp_peer sink PORT_FILE      listen on 127.0.0.1 (a free port, written
 *                                to PORT_FILE), take one connection, read
 *                                and drop everything until it closes
 *   tcp_peer idle PORT SECONDS   connect to 127.0.0.1:PORT, send nothing,
 *                                hold the connection SECONDS, close
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sink(const char *port_file)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char buf[65536];
	FILE *f;
	int lfd, fd;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&a, &len)) {
		perror("tcp_peer: listen");
		return 1;
	}
	f = fopen(port_file, "w");
	if (!f || fprintf(f, "%u\n", ntohs(a.sin_port)) < 0 || fclose(f)) {
		perror(port_file);
		return 1;
	}
	fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		perror("tcp_peer: accept");
		return 1;
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	close(lfd);
	return 0;
}

static int idle(const char *port, const char *seconds)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)atoi(port)) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("tcp_peer: connect");
		return 1;
	}
	sleep((unsigned int)atoi(seconds));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "sink"))
		return sink(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "idle"))
		return idle(argv[2], argv[3]);
	fprintf(stderr, "usage: tcp_peer sink PORT_FILE | idle PORT SECONDS\n");
	return 2;
}

/* SPDX-License-Identifier: MIT */
/* pmtrack command-line tool: the subcommands and the exit codes. */
#ifndef PMTRACK_TOOLS_CLI_H
#define PMTRACK_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
	CLI_OK = 0,    /* success */
	CLI_ERROR = 1, /* invalid stream, I/O or other error */
	CLI_USAGE = 2, /* bad command line */
};

/* Each subcommand gets argv[0] = its name and returns an exit code. */
int cmd_inspect(int argc, char **argv);
/* migrate_cmds.c */
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_restore(int argc, char **argv);
/* pstate_cmds.c */
int cmd_probe(int argc, char **argv);
int cmd_stat(int argc, char **argv);

/*
 * outfile.c: a file the tool writes.  A regular file (or none yet) is
 * written beside the path and renamed over it by outfile_commit(); a
 * device, FIFO or socket is written in place; a symlink is followed; a
 * directory is refused.  @what names the option in messages.
 */
struct outfile {
	char *path;    /* where the output goes (a symlink resolved) */
	char *tmp;     /* the temporary file renamed over path, or NULL */
	int fd;	       /* -1 when not open */
	bool in_place; /* a device, FIFO or socket: no rename */
};
int outfile_open(const char *cmd, const char *what, struct outfile *of,
		 const char *path);
/* sync (a regular file), close and rename; 0 or -errno after a message */
int outfile_commit(const char *cmd, struct outfile *of);
/* close, and remove the temporary file if any (nothing once committed) */
void outfile_abort(struct outfile *of);
void outfile_release(struct outfile *of);

/* cli_out.c: "pmtrack CMD: message" on stderr */
__attribute__((format(printf, 2, 3))) void cli_err(const char *cmd,
						   const char *fmt, ...);

/* cli_out.c: a quoted, escaped string (NULL is null in JSON, - in text),
   and bytes as lower-case hex */
void put_str(FILE *f, const char *s, bool json);
void put_hex(FILE *f, const uint8_t *b, size_t n);

#endif /* PMTRACK_TOOLS_CLI_H */

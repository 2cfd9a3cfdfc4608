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

/* cli_out.c: a quoted, escaped string (NULL is null in JSON, - in text),
   and bytes as lower-case hex */
void put_str(FILE *f, const char *s, bool json);
void put_hex(FILE *f, const uint8_t *b, size_t n);

#endif /* PMTRACK_TOOLS_CLI_H */

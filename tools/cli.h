/* SPDX-License-Identifier: MIT */
/* pmtrack command-line tool: the subcommands and the exit codes. */
#ifndef PMTRACK_TOOLS_CLI_H
#define PMTRACK_TOOLS_CLI_H

enum {
	CLI_OK = 0,    /* success */
	CLI_ERROR = 1, /* invalid stream, I/O or other error */
	CLI_USAGE = 2, /* bad command line */
};

/* Each subcommand gets argv[0] = its name and returns an exit code. */
int cmd_inspect(int argc, char **argv);

#endif /* PMTRACK_TOOLS_CLI_H */

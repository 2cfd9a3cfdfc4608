// SPDX-License-Identifier: MIT
/*
 * pmtrack: the libpmtrack command-line tool.  A subcommand is a row of the
 * table below; main() runs it with argv[0] set to the subcommand's name.
 */
#include <stdio.h>
#include <string.h>

#include <pmtrack/pmtrack.h>

#include "cli.h"

static int cmd_help(int argc, char **argv);

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "probe", cmd_probe,
	  "which kernel features this process can use (like criu check)" },
	{ "stat", cmd_stat,
	  "pages present/swapped/file/zero/exclusive per mapping of a PID" },
	{ "inspect", cmd_inspect,
	  "print a stream's contents, as text or JSON" },
	{ "send", cmd_send,
	  "live pre-copy of a synthetic workload to a receiver or a file" },
	{ "recv", cmd_recv,
	  "receive a stream (TCP, file, stdin) into memory and verify it" },
	{ "dump", cmd_dump,
	  "incremental checkpoints of a synthetic workload, or of a PID" },
	{ "restore", cmd_restore,
	  "replay a checkpoint DIR into memory and verify it" },
	{ "track", cmd_track, "the live dirty rate of a PID, per mapping" },
	{ "help", cmd_help, "list the commands, or show one's usage" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fputs("usage: pmtrack COMMAND [ARGS...]\n"
	      "       pmtrack --help | --version\n"
	      "\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
	fputs("\nRun 'pmtrack help COMMAND' for a command's options.\n", f);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int unknown_command(const char *name)
{
	fprintf(stderr, "pmtrack: unknown command '%s'; try 'pmtrack --help'\n",
		name);
	return CLI_USAGE;
}

static int cmd_help(int argc, char **argv)
{
	static char help_opt[] = "--help";
	const struct command *c;
	char *args[3];

	if (argc > 2) {
		fputs("usage: pmtrack help [COMMAND]\n", stderr);
		return CLI_USAGE;
	}
	if (argc < 2 || !strcmp(argv[1], "help")) {
		usage(stdout);
		return CLI_OK;
	}
	c = find_command(argv[1]);
	if (!c)
		return unknown_command(argv[1]);
	args[0] = argv[1];
	args[1] = help_opt;
	args[2] = NULL;
	return c->fn(2, args);
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("pmtrack (libpmtrack %s)\n", pmtrack_version());
		return CLI_OK;
	}
	if (argv[1][0] == '-') {
		fprintf(stderr,
			"pmtrack: unknown option '%s'; try 'pmtrack --help'\n",
			argv[1]);
		return CLI_USAGE;
	}
	c = find_command(argv[1]);
	if (!c)
		return unknown_command(argv[1]);
	return c->fn(argc - 1, argv + 1);
}

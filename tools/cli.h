/* SPDX-License-Identifier: MIT */
/* pmtrack command-line tool: the subcommands, the exit codes, messages. */
#ifndef PMTRACK_TOOLS_CLI_H
#define PMTRACK_TOOLS_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
	CLI_OK = 0,    /* success */
	CLI_ERROR = 1, /* invalid stream, I/O or other error */
	CLI_USAGE = 2, /* bad command line */
};

/* Each subcommand (cmd_NAME.c) gets argv[0] = its name and returns an exit
   code. */
int cmd_probe(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_track(int argc, char **argv);

/* cli_out.c: "pmtrack CMD: message" on stderr */
__attribute__((format(printf, 2, 3))) void cli_err(const char *cmd,
						   const char *fmt, ...);
__attribute__((format(printf, 2, 0))) void
cli_verr(const char *cmd, const char *fmt, va_list ap);
/* cli_out.c: "pmtrack CMD: try 'pmtrack help CMD'" on stderr, after the
   message of a bad command line */
void cli_hint(const char *cmd);
/* cli_out.c: flush @f; CLI_OK, or CLI_ERROR after a message */
int cli_flush(const char *cmd, FILE *f);
/* cli_out.c: the first message cli_err() printed (without "pmtrack CMD: "),
   or NULL if none: the "error" of a --json result */
const char *cli_last_error(void);

/* cli_out.c: the length of the UTF-8 character at @s (1 to 4; 1 for
   ASCII), or 0 if no valid one starts there */
size_t utf8_char_len(const char *s);
/* cli_out.c: a quoted, escaped string for text output (NULL is -), and
   bytes as lower-case hex */
void put_str(FILE *f, const char *s);
void put_hex(FILE *f, const uint8_t *b, size_t n);

/* the units of the reports */
static inline double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* bytes per second, 0 if no time passed */
static inline uint64_t bytes_per_s(uint64_t bytes, uint64_t ns)
{
	return ns ? (uint64_t)((double)bytes * 1e9 / (double)ns) : 0;
}

/* CLI_IEC_LEN bytes hold any iec() or iec_rate() text */
#define CLI_IEC_LEN 24
/* cli_out.c: @bytes in IEC units ("256 MiB"), into @buf */
const char *iec(char buf[CLI_IEC_LEN], uint64_t bytes);
/* cli_out.c: a rate of bytes per second in IEC units ("812 MiB/s") */
const char *iec_rate(char buf[CLI_IEC_LEN], uint64_t bytes_per_sec);
/* cli_out.c: a duration, "12.3 ms", or "12.3 s" from 10 s on */
const char *dur(char buf[CLI_IEC_LEN], uint64_t ns);

#endif /* PMTRACK_TOOLS_CLI_H */

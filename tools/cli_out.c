// SPDX-License-Identifier: MIT
/* Output helpers shared by the pmtrack subcommands. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pmtrack %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_flush(const char *cmd, FILE *f)
{
	if (fflush(f) || ferror(f)) {
		cli_err(cmd, "writing output: %s", strerror(errno));
		return CLI_ERROR;
	}
	return CLI_OK;
}

/* Length of the valid UTF-8 sequence at @s (1..4), or 0 if there is none. */
static int utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	int n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f; /* past U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * A quoted string.  Valid UTF-8 passes through; quotes and backslashes are
 * escaped; control characters and bytes that are not UTF-8 become \u00XX
 * (JSON) or \xXX (text).  NULL is null (JSON) or - (text).
 */
void put_str(FILE *f, const char *s, bool json)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		fputs(json ? "null" : "-", f);
		return;
	}
	fputc('"', f);
	while (*p) {
		int n = utf8_len(p);

		if (n > 1) {
			fwrite(p, 1, n, f);
			p += n;
			continue;
		}
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (n == 0 || *p < 0x20 || *p == 0x7f)
			fprintf(f, json ? "\\u%04x" : "\\x%02x", *p);
		else
			fputc(*p, f);
		p++;
	}
	fputc('"', f);
}

void put_hex(FILE *f, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
}

// SPDX-License-Identifier: MIT
/* Output helpers shared by the pmtrack subcommands. */
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

#include "args.h" /* support/: pmt_fmt_iec() */
#include "cli.h"
#include "status.h" /* support/: pmt_fmt_dur(), pmt_status_line() */

static char last_error[512]; /* the first message */
static bool have_error;

void cli_verr(const char *cmd, const char *fmt, va_list ap)
{
	va_list ap2;

	if (!have_error) {
		va_copy(ap2, ap);
		vsnprintf(last_error, sizeof(last_error), fmt, ap2);
		va_end(ap2);
		have_error = true;
	}
	fprintf(stderr, "pmtrack %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

const char *cli_last_error(void)
{
	return have_error ? last_error : NULL;
}

const char *iec(char buf[CLI_IEC_LEN], uint64_t bytes)
{
	return pmt_fmt_iec(buf, CLI_IEC_LEN, bytes);
}

const char *iec_rate(char buf[CLI_IEC_LEN], uint64_t bytes_per_sec)
{
	return pmt_fmt_rate(buf, CLI_IEC_LEN, bytes_per_sec);
}

const char *dur(char buf[CLI_IEC_LEN], uint64_t ns)
{
	return pmt_fmt_dur(buf, CLI_IEC_LEN, ns);
}

void cli_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_verr(cmd, fmt, ap);
	va_end(ap);
}

void cli_hint(const char *cmd)
{
	fprintf(stderr, "pmtrack %s: try 'pmtrack help %s'\n", cmd, cmd);
}

int cli_flush(const char *cmd, FILE *f)
{
	if (fflush(f) || ferror(f)) {
		cli_err(cmd, "writing output: %s", strerror(errno));
		return CLI_ERROR;
	}
	return CLI_OK;
}

/*
 * The C library's UTF-8 decoder, whatever the process's locale: mbrtowc()
 * in the C.UTF-8 locale.  Without that locale (not on Debian, whose libc
 * has it built in) no byte past ASCII is taken for UTF-8.
 */
size_t utf8_char_len(const char *s)
{
	static locale_t utf8;
	mbstate_t ps;
	locale_t old;
	wchar_t wc;
	size_t n;

	if ((unsigned char)*s < 0x80)
		return 1;
	if (!utf8)
		utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (!utf8)
		return 0;
	memset(&ps, 0, sizeof(ps));
	old = uselocale(utf8);
	n = mbrtowc(&wc, s, strnlen(s, MB_LEN_MAX), &ps);
	uselocale(old);
	/* glibc decodes up to U+7FFFFFFF; Unicode ends at U+10FFFF */
	if (n == (size_t)-1 || n == (size_t)-2 || (uint32_t)wc > 0x10ffff)
		return 0;
	return n;
}

/*
 * A quoted string.  Valid UTF-8 passes through; quotes and backslashes are
 * escaped; control characters and bytes that are not UTF-8 become \xXX.
 * NULL is -.
 */
void put_str(FILE *f, const char *s)
{
	if (!s) {
		fputc('-', f);
		return;
	}
	fputc('"', f);
	while (*s) {
		unsigned char c = (unsigned char)*s;
		size_t n = utf8_char_len(s);

		if (n > 1) {
			fwrite(s, 1, n, f);
			s += n;
			continue;
		}
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (n == 0 || c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
		s++;
	}
	fputc('"', f);
}

void put_hex(FILE *f, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
}

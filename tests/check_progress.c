// SPDX-License-Identifier: MIT
/*
 * The progress bar of support/progress.c on a pseudo-terminal of a known
 * width: drawn on a terminal only, never with quiet, never on a file; a
 * text too long for the line loses whole parts (after ", " or "; "), and
 * erasing leaves the line clean.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "progress.h"

/* a pseudo-terminal @cols wide: its master in *@master, the slave as a
   FILE, or NULL when this machine has no pseudo-terminals */
static FILE *pty(int cols, int *master)
{
	struct winsize ws = { .ws_row = 24, .ws_col = (unsigned short)cols };
	int m = posix_openpt(O_RDWR | O_NOCTTY), s;
	FILE *f;

	if (m < 0 || grantpt(m) || unlockpt(m))
		return NULL;
	s = open(ptsname(m), O_RDWR | O_NOCTTY);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(ioctl(s, TIOCSWINSZ, &ws), 0);
	f = fdopen(s, "w");
	ck_assert_ptr_nonnull(f);
	*master = m;
	return f;
}

/* what the terminal got so far (raw: no newline translation) */
static char *drain(int m, char *buf, size_t n)
{
	ssize_t r;
	int fl = fcntl(m, F_GETFL);

	fcntl(m, F_SETFL, fl | O_NONBLOCK);
	r = read(m, buf, n - 1);
	buf[r > 0 ? r : 0] = 0;
	fcntl(m, F_SETFL, fl);
	return buf;
}

START_TEST(cut_at_parts)
{
	char out[4096], *text, *end;
	struct pmt_bar b;
	int m;
	FILE *f = pty(80, &m);

	if (!f) {
		puts("SKIP: no pseudo-terminals here");
		exit(77);
	}
	pmt_bar_init(&b, f, false);
	ck_assert(b.on);
	pmt_bar_draw(&b, true, 1, 4,
		     "round 3: 100/400 pages, transferred 20 MiB, 812 MiB/s");
	drain(m, out, sizeof(out));
	/* "\r" + bar + text + "\033[K": the text is cut before a part */
	ck_assert_msg(out[0] == '\r', "%s", out);
	text = strstr(out, "% round");
	ck_assert_ptr_nonnull(text);
	end = strstr(out, "\033[K");
	ck_assert_ptr_nonnull(end);
	*end = 0;
	ck_assert_msg(strlen(out + 1) <= 79, "line of %zu columns: '%s'",
		      strlen(out + 1), out + 1);
	ck_assert_str_eq(text + 2, "round 3: 100/400 pages, transferred 20 MiB");
	/* a text that fits is drawn whole */
	pmt_bar_draw(&b, true, 2, 4, "round 3: 200/400 pages");
	drain(m, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, " 50% round 3: 200/400 pages\033[K"));
	/* erased: a carriage return and clear-to-end, nothing after */
	pmt_bar_clear(&b);
	drain(m, out, sizeof(out));
	ck_assert_str_eq(out, "\r\033[K");
	ck_assert(!b.shown);
	fclose(f);
	close(m);
}
END_TEST

START_TEST(not_drawn)
{
	char path[] = "/tmp/pmt-progress-XXXXXX", out[256];
	struct pmt_bar b;
	int fd = mkstemp(path), m;
	FILE *f, *t;

	/* a file: never */
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w+");
	pmt_bar_init(&b, f, false);
	ck_assert(!b.on);
	pmt_bar_draw(&b, true, 1, 2, "x");
	pmt_bar_clear(&b);
	fflush(f);
	ck_assert_int_eq(ftell(f), 0);
	fclose(f);
	unlink(path);
	/* a terminal, but quiet: never */
	t = pty(80, &m);
	if (!t)
		return;
	pmt_bar_init(&b, t, true);
	ck_assert(!b.on);
	pmt_bar_draw(&b, true, 1, 2, "x");
	fflush(t);
	ck_assert_str_eq(drain(m, out, sizeof(out)), "");
	fclose(t);
	close(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("progress");
	TCase *tc = tcase_create("progress");
	SRunner *sr;
	int failed;

	/* TERM=dumb turns the bar off */
	setenv("TERM", "xterm", 1);
	tcase_add_test(tc, cut_at_parts);
	tcase_add_test(tc, not_drawn);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

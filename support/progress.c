// SPDX-License-Identifier: MIT
/* The progress bar of the long-running commands; see progress.h. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#define BAR_WIDTH 24

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pmt_bar_init(struct pmt_bar *b, FILE *f, bool quiet)
{
	const char *term = getenv("TERM");

	memset(b, 0, sizeof(*b));
	b->f = f;
	b->on = !quiet && isatty(fileno(f)) && !(term && !strcmp(term, "dumb"));
}

static size_t columns(FILE *f)
{
	struct winsize ws;

	if (!ioctl(fileno(f), TIOCGWINSZ, &ws) && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

void pmt_bar_draw(struct pmt_bar *b, bool force, uint64_t done, uint64_t total,
		  const char *fmt, ...)
{
	char line[512];
	size_t n = 0, width;
	uint64_t now;
	va_list ap;

	if (!b->on)
		return;
	now = mono_ns();
	if (!force && b->shown && now - b->last_ns < 100000000u)
		return;
	b->last_ns = now;
	if (total) {
		unsigned int fill;

		if (done > total)
			done = total;
		fill = (unsigned int)((double)done / (double)total * BAR_WIDTH);
		line[n++] = '[';
		for (unsigned int i = 0; i < BAR_WIDTH; i++)
			line[n++] = i < fill ? '#' : ' ';
		n += (size_t)snprintf(line + n, sizeof(line) - n, "] %3u%% ",
				      (unsigned int)(done * 100 / total));
	}
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* one column short of the width, so the terminal never wraps; a
	   text too long loses whole parts (after ", " or "; "), not half of
	   one */
	width = columns(b->f) - 1;
	if (strlen(line) > width) {
		size_t cut = width;

		while (cut > n && !(line[cut] == ' ' &&
				    (line[cut - 1] == ',' || line[cut - 1] == ';')))
			cut--;
		line[cut > n ? cut - 1 : width] = 0;
	}
	fprintf(b->f, "\r%s\033[K", line);
	fflush(b->f);
	b->shown = true;
}

void pmt_bar_clear(struct pmt_bar *b)
{
	if (!b->shown)
		return;
	fputs("\r\033[K", b->f);
	fflush(b->f);
	b->shown = false;
}

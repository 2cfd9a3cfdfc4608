// SPDX-License-Identifier: MIT
/* The synthetic workload that pmtrack send and dump drive (workload.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cmdline.h"
#include "cli.h"
#include "wldrive.h"

const char wl_usage_text[] =
	"  --size SIZE           memory of the workload (K/KiB, M/MiB, G/GiB, "
	"T/TiB),\n"
	"                        rounded up to whole pages; default 256 MiB\n"
	"  --writers N           writer threads, 0..64; default 2\n"
	"  --rate PAGES/S        pages the writers dirty per second, all "
	"together; 0 = as\n"
	"                        fast as they can; default 10000\n"
	"  --level N             zstd level, -131072..22; 0 = no "
	"compression (default)\n";

bool wl_opt(struct cmdline *p, int id, struct wl_args *w)
{
	switch (id) {
	case WL_OPT_SIZE:
		return opt_u64(p, true, 1, (uint64_t)1 << 46, &w->size);
	case WL_OPT_WRITERS:
		return opt_u64(p, false, 0, 64, &w->writers);
	case WL_OPT_RATE:
		return opt_u64(p, false, 0, (uint64_t)1 << 40, &w->rate);
	}
	return opt_level(p, &w->level);
}

int wl_begin(const char *cmd, const struct wl_args *a, FILE *info,
	     struct wl **out)
{
	struct wl_opts o = { .bytes = (size_t)a->size,
			     .writers = (int)a->writers,
			     .rate = a->rate,
			     .seed = 1 };
	char buf[CLI_IEC_LEN];
	int r;

	r = wl_start(&o, out);
	if (r) {
		cli_err(cmd, "starting the workload (%s): %s",
			iec(buf, a->size), strerror(-r));
		return -1;
	}
	if (!info)
		return 0;
	fprintf(info, "workload: %s, %d writers", iec(buf, wl_len(*out)),
		o.writers);
	if (o.writers && o.rate)
		fprintf(info, " at %" PRIu64 " pages/s", o.rate);
	else if (o.writers)
		fputs(" at full speed", info);
	fputc('\n', info);
	return 0;
}

struct pmtrack_mem_region wl_region(struct wl *w)
{
	return (struct pmtrack_mem_region){ .addr = wl_mem(w),
					    .len = wl_len(w),
					    .id = WL_REGION_ID,
					    .name = WL_REGION_NAME };
}

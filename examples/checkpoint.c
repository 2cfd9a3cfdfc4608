// SPDX-License-Identifier: MIT
/*
 * checkpoint: an application that checkpoints itself incrementally while
 * it runs, CRIU pre-dump style, and a restore that verifies.
 *
 * Writer threads keep writing the application's memory.  Every interval
 * the application writes a live pre-dump into a checkpoint directory:
 * image 0 holds every page, each later image the pages written since the
 * previous one, chained to it.  The last image is taken with the writers
 * paused, so the chain ends consistent.  Every image carries the chain's
 * state digest.  Then a child process (a copy of the paused application)
 * replays the chain into fresh memory, which checks the digest, and
 * compares it with its copy byte for byte.
 *
 *   pmtrack-checkpoint [--dir DIR] [--size SIZE] [--writers N]
 *                      [--rate PAGES/S] [--hot PCT] [--dumps N]
 *                      [--interval-ms MS] [--level N] [--keep] [--quiet]
 *   pmtrack-checkpoint --restore DIR
 *
 * The options and their defaults are in help() below (--help prints
 * them); the grammar is docs/cli.md's.  Exit status: 0 verified, 1
 * failed, 2 a bad command line, 77 this machine cannot run it (no backend
 * here tracks the memory; why on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "args.h"
#include "excli.h"
#include "progress.h"
#include "status.h"
#include "workload.h"

#define PROG "pmtrack-checkpoint"

struct args {
	struct wl_opts wo;
	uint64_t dumps, interval_ms;
	const char *dir, *restore;
	int level, keep, quiet;
};

static void help(FILE *f)
{
	fputs("usage: " PROG " [--dir DIR] [--size SIZE] [--writers N]\n"
	      "         [--rate PAGES/S] [--hot PCT] [--dumps N] "
	      "[--interval-ms MS]\n"
	      "         [--level N] [--keep] [--quiet]\n"
	      "       " PROG " --restore DIR\n"
	      "       " PROG " --help | --version\n"
	      "\n"
	      "An application that checkpoints itself while its writer threads "
	      "run, CRIU\n"
	      "pre-dump style: image 0 holds every page, each later image the "
	      "pages written\n"
	      "since the one before, chained to it; the last image is taken "
	      "with the writers\n"
	      "paused.  A copy of the paused application then restores the "
	      "chain, checking\n"
	      "its state digest, and compares it byte for byte.  Page counts "
	      "include the\n"
	      "zero pages, which are also given apart.  Exit status: 0 "
	      "verified, 1 failed,\n"
	      "2 a bad command line, 77 this machine cannot run it (why on "
	      "stderr).\n"
	      "\n"
	      "  --dir DIR          write the images into DIR and keep them "
	      "(default a new\n"
	      "                     directory in /tmp, removed at the end)\n"
	      "  --size SIZE        the application's memory (default 256 "
	      "MiB)\n"
	      "  --writers N        writer threads, 0..64 (default 2)\n"
	      "  --rate PAGES/S     pages the writers dirty per second, all "
	      "together;\n"
	      "                     0 = as fast as they can (default 10000)\n"
	      "  --hot PCT          share of the writes that go to a hot 1/16 "
	      "of memory\n"
	      "                     (default 0)\n"
	      "  --dumps N          checkpoint images, the final one included "
	      "(default 3)\n"
	      "  --interval-ms MS   time between images (default 500)\n"
	      "  --level N          zstd level, -131072..22; 0 = no "
	      "compression\n"
	      "                     (default 0)\n"
	      "  --keep             keep the images of the default directory\n"
	      "  --restore DIR      only restore the chain in DIR and check its "
	      "digest\n"
	      "  --quiet            no progress bar and no per-image lines\n"
	      "  -h, --help         print this help and exit\n"
	      "  --version          print the version and exit\n",
	      f);
}

/* a count or rate (@suffix 0) or a size (PMT_NUM_SUFFIX) */
static uint64_t num(const char *opt, unsigned int suffix, uint64_t min,
		    uint64_t max)
{
	return pmt_arg_u64(PROG, opt, optarg, suffix, min, max);
}

static void parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "writers", required_argument, NULL, 'w' },
		{ "rate", required_argument, NULL, 'r' },
		{ "hot", required_argument, NULL, 't' },
		{ "dumps", required_argument, NULL, 'n' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "level", required_argument, NULL, 'l' },
		{ "keep", no_argument, NULL, 'k' },
		{ "restore", required_argument, NULL, 'R' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, PMT_CLI_HELP },
		{ "version", no_argument, NULL, PMT_CLI_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const struct pmt_cli cli = { PROG, longopts, help };
	int opt;

	while ((opt = pmt_cli_next(&cli, argc, argv)) != -1) {
		switch (opt) {
		case 'd':
			a->dir = optarg;
			a->keep = 1;
			break;
		case 's':
			a->wo.bytes = num("--size", PMT_NUM_SUFFIX, 1, SIZE_MAX);
			break;
		case 'w':
			a->wo.writers = (int)num("--writers", 0, 0, 64);
			break;
		case 'r':
			a->wo.rate = num("--rate", 0, 0, UINT64_MAX);
			break;
		case 't':
			a->wo.hot = (unsigned int)num("--hot", 0, 0, 100);
			break;
		case 'n':
			a->dumps = num("--dumps", 0, 1, UINT64_MAX);
			break;
		case 'i': /* usleep() takes a 32-bit count of microseconds */
			a->interval_ms = num("--interval-ms", 0, 0,
					     UINT32_MAX / 1000);
			break;
		case 'l':
			a->level = pmt_arg_int(PROG, "--level", optarg,
					       PMT_LEVEL_MIN, PMT_LEVEL_MAX);
			break;
		case 'k':
			a->keep = 1;
			break;
		case 'R':
			a->restore = optarg;
			break;
		case 'q':
			a->quiet = 1;
			break;
		}
	}
	pmt_cli_end(&cli, argc, argv);
}

/*
 * Replay the chain in @dir.  With @expect, compare the result with it
 * byte for byte.  Returns 0 if the restore succeeded and verified.
 */
static int restore(const char *dir, const void *expect, size_t len)
{
	struct pmtrack_restore_info ri = { .sz = sizeof(ri) };
	struct pmtrack_rx_region rg;
	struct pmtrack_rx *rx;
	int err, same = 1;

	err = pmtrack_rx_new(NULL, &rx);
	if (!err)
		err = pmtrack_ckpt_restore(rx, dir, UINT32_MAX, &ri);
	if (err) {
		fprintf(stderr, PROG ": restore: %s: %s\n", strerror(-err),
			rx ? pmtrack_rx_error(rx, NULL) : "");
		pmtrack_rx_free(rx);
		return 1;
	}
	if (expect)
		same = !pmtrack_rx_region(rx, 0, &rg) && rg.len == len &&
		       !memcmp(rg.mem, expect, len);
	printf("restore: %u images, %s read, digest %s%s\n", ri.images,
	       pmt_iec(ri.bytes),
	       ri.digest_verified ? "verified" : "NOT verified",
	       !expect ? ""
	       : same  ? ", memory equals the application's byte for byte"
		       : ", memory DIFFERS from the application's");
	/* the child leaves with _exit(), which flushes nothing */
	fflush(stdout);
	pmtrack_rx_free(rx);
	return ri.digest_verified && same ? 0 : 1;
}

/* Start the workload and a checkpoint of its memory in a->dir: 0, or the
 * exit status after a message (77: no backend here tracks the memory). */
static int start(const struct args *a, struct wl **wl, struct pmtrack_ckpt **ck)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .level = a->level);
	struct pmtrack_mem_region reg;
	int err;

	err = wl_start(&a->wo, wl);
	if (err) {
		fprintf(stderr, PROG ": workload: %s\n", strerror(-err));
		return 1;
	}
	reg = (struct pmtrack_mem_region){ wl_mem(*wl), wl_len(*wl), 1,
					   "heap" };
	err = pmtrack_ckpt_new(a->dir, &co, &reg, 1, ck);
	if (err == -EOPNOTSUPP) {
		fprintf(stderr,
			PROG ": this machine cannot run it: no backend here "
			     "tracks the memory with atomic resets (%s; "
			     "'pmtrack probe' lists the kernel features)\n",
			strerror(-err));
		return 77;
	}
	if (err) {
		fprintf(stderr, PROG ": checkpoint %s: %s\n", a->dir,
			strerror(-err));
		return 1;
	}
	printf("application: %s, %d writers dirtying %llu pages/s; "
	       "checkpoints in %s\n",
	       pmt_iec(wl_len(*wl)), a->wo.writers,
	       (unsigned long long)a->wo.rate, a->dir);
	return 0;
}

static void print_image(const struct pmtrack_dump_info *di, int last)
{
	char d[PMT_UNIT_LEN];

	printf("image %u%s %8llu pages (%llu of them zero) %10s %9s%s%s\n",
	       di->index, last ? "*" : " ", (unsigned long long)di->pages,
	       (unsigned long long)di->zero_pages, pmt_iec(di->bytes),
	       pmt_fmt_dur(d, sizeof(d), di->duration_ns),
	       last ? "  (writers paused)" : "  (live pre-dump)",
	       di->has_state ? ", with the chain's state digest" : "");
}

/* The wait before image @i, the bar redrawn every 100 ms meanwhile. */
static void wait_interval(const struct args *a, struct pmt_bar *bar,
			  uint64_t i)
{
	uint64_t left = a->interval_ms;

	while (left) {
		uint64_t ms = left < 100 ? left : 100;

		pmt_bar_draw(bar, true, i, a->dumps,
			     "%llu of %llu images written, the next in %llu "
			     "ms",
			     (unsigned long long)i,
			     (unsigned long long)a->dumps,
			     (unsigned long long)left);
		usleep((useconds_t)(ms * 1000));
		left -= ms;
	}
	pmt_bar_draw(bar, true, i, a->dumps, "writing image %llu of %llu",
		     (unsigned long long)i + 1, (unsigned long long)a->dumps);
}

/*
 * a->dumps images every a->interval_ms, the last one with the writers
 * paused (they stay paused).  0, or 1 after a message.
 */
static int dump_all(const struct args *a, struct wl *wl,
		    struct pmtrack_ckpt *ck)
{
	struct pmtrack_dump_info di = { .sz = sizeof(di) };
	uint64_t full = 0, incr = 0, pages = 0, zero = 0;
	struct pmt_bar bar;
	int err;

	pmt_bar_init(&bar, stderr, a->quiet);
	for (uint64_t i = 0; i < a->dumps; i++) {
		int last = i + 1 == a->dumps;

		if (i)
			wait_interval(a, &bar, i);
		else
			pmt_bar_draw(&bar, true, 0, a->dumps,
				     "writing image 1 of %llu",
				     (unsigned long long)a->dumps);
		if (last)
			wl_pause(wl); /* the final, consistent image */
		err = pmtrack_ckpt_dump(ck, last ? PMTRACK_DUMP_STOPPED : 0,
					&di);
		pmt_bar_clear(&bar);
		if (err) {
			fprintf(stderr, PROG ": dump %llu: %s\n",
				(unsigned long long)i, strerror(-err));
			return 1;
		}
		if (!a->quiet)
			print_image(&di, last);
		fflush(stdout);
		pages += di.pages;
		zero += di.zero_pages;
		if (!i)
			full = di.bytes;
		else
			incr += di.bytes;
	}
	printf("checkpoint: %llu images, %llu pages (zero pages included; "
	       "%llu zero), %s\n",
	       (unsigned long long)a->dumps, (unsigned long long)pages,
	       (unsigned long long)zero, pmt_iec(full + incr));
	if (a->dumps > 1)
		printf("incremental images: %.1f%% of the full image on "
		       "average\n",
		       100.0 * (double)incr / (double)(a->dumps - 1) /
			       (double)full);
	fflush(stdout);
	return 0;
}

/*
 * A copy of the paused application restores @dir and compares: its wait
 * status, or -1 if there is no child.
 */
static int restore_in_child(const char *dir, struct wl *wl)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (!pid)
		_exit(restore(dir, wl_mem(wl), wl_len(wl)));
	if (waitpid(pid, &status, 0) != pid)
		status = 1 << 8;
	return status;
}

static void remove_dir(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, PROG ": could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
	struct args a = { .wo = { .bytes = 256u << 20,
				  .writers = 2,
				  .rate = 10000,
				  .seed = 0xc0ffee,
				  .hot = 0 },
			  .dumps = 3,
			  .interval_ms = 500 };
	char tmpl[] = "/tmp/pmtrack-ckpt-XXXXXX";
	struct pmtrack_ckpt *ck;
	struct wl *wl;
	int status, r;

	parse_args(argc, argv, &a);
	if (a.restore)
		return restore(a.restore, NULL, 0);
	if (!a.dir && !(a.dir = mkdtemp(tmpl))) {
		perror("mkdtemp");
		return 1;
	}
	r = start(&a, &wl, &ck);
	if (r) {
		if (!a.keep)
			remove_dir(a.dir);
		return r;
	}
	if (dump_all(&a, wl, ck))
		return 1;
	status = restore_in_child(a.dir, wl);
	if (status < 0)
		return 1;
	wl_resume(wl);
	pmtrack_ckpt_free(ck);
	wl_free(wl);
	if (!a.keep)
		remove_dir(a.dir);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, PROG ": restore check failed\n");
		return 1;
	}
	printf("verified\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * checkpoint: an application that checkpoints itself incrementally while
 * it runs, CRIU pre-dump style, and a restore that verifies.
 *
 * Worker threads keep writing the application's memory.  Every interval
 * the application writes a live pre-dump into a checkpoint directory:
 * image 0 holds every page, each later image the pages written since the
 * previous one, chained to it.  The last image is taken with the workers
 * paused, so it carries the digest of the memory.  Then a child process
 * (a copy of the paused application) replays the chain into fresh memory
 * and checks it against its copy byte for byte, and the digest.
 *
 *   pmtrack-checkpoint [--dir DIR] [--size 256M] [--writers 2]
 *                      [--rate 20000] [--dumps 5] [--interval-ms 200]
 *                      [--level N] [--keep]
 *   pmtrack-checkpoint --restore DIR
 *
 * Sizes, counts and rates are decimal, optionally followed by K, M or G;
 * --level is a zstd level (0 = no compression).  Exit status: 0 verified,
 * 1 failed, 2 usage (--help prints it).
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
#include "workload.h"

#define PROG "pmtrack-checkpoint"

struct args {
	struct wl_opts wo;
	uint64_t dumps, interval_ms;
	const char *dir, *restore;
	int level, keep;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--dir DIR] [--size 256M] [--writers 2] "
		   "[--rate 20000]\n"
		   "         [--dumps 5] [--interval-ms 200] [--level N] "
		   "[--keep]\n"
		   "       " PROG " --restore DIR\n");
}

/* a size, count or rate: decimal digits, then K, M or G if wanted */
static uint64_t num(const char *opt, uint64_t min, uint64_t max)
{
	return pmt_arg_u64(PROG, opt, optarg, PMT_NUM_SUFFIX, min, max);
}

static void parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "writers", required_argument, NULL, 'w' },
		{ "rate", required_argument, NULL, 'r' },
		{ "dumps", required_argument, NULL, 'n' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "level", required_argument, NULL, 'l' },
		{ "keep", no_argument, NULL, 'k' },
		{ "restore", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			a->dir = optarg;
			a->keep = 1;
			break;
		case 's':
			a->wo.bytes = num("--size", 1, SIZE_MAX);
			break;
		case 'w':
			a->wo.writers = (int)num("--writers", 0, 64);
			break;
		case 'r':
			a->wo.rate = num("--rate", 0, UINT64_MAX);
			break;
		case 'n':
			a->dumps = num("--dumps", 1, UINT64_MAX);
			break;
		case 'i': /* usleep() takes a 32-bit count of microseconds */
			a->interval_ms = num("--interval-ms", 0,
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
		default:
			pmt_usage_exit(opt, usage);
		}
	}
	pmt_no_operands(argc, usage);
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
		fprintf(stderr, "restore: %s: %s\n", strerror(-err),
			rx ? pmtrack_rx_error(rx, NULL) : "");
		pmtrack_rx_free(rx);
		return 1;
	}
	if (expect)
		same = !pmtrack_rx_region(rx, 0, &rg) && rg.len == len &&
		       !memcmp(rg.mem, expect, len);
	printf("restore: %u images, %.1f MiB read, digest %s%s\n", ri.images,
	       (double)ri.bytes / 1048576.0,
	       ri.digest_verified ? "verified" : "NOT verified",
	       !expect ? ""
	       : same  ? ", memory equals the application's byte for byte"
		       : ", memory DIFFERS from the application's");
	pmtrack_rx_free(rx);
	return ri.digest_verified && same ? 0 : 1;
}

/* Start the workload and a checkpoint of its memory in a->dir. */
static int start(const struct args *a, struct wl **wl, struct pmtrack_ckpt **ck)
{
	PMTRACK_OPTS(pmtrack_ckpt_opts, co, .level = a->level);
	struct pmtrack_mem_region reg;
	int err;

	err = wl_start(&a->wo, wl);
	if (err) {
		fprintf(stderr, "workload: %s\n", strerror(-err));
		return 1;
	}
	reg = (struct pmtrack_mem_region){ wl_mem(*wl), wl_len(*wl), 1,
					   "heap" };
	err = pmtrack_ckpt_new(a->dir, &co, &reg, 1, ck);
	if (err) {
		fprintf(stderr, "checkpoint %s: %s\n", a->dir, strerror(-err));
		return 1;
	}
	printf("application: %.0f MiB, %d workers writing %llu pages/s; "
	       "checkpoints in %s\n",
	       (double)wl_len(*wl) / 1048576.0, a->wo.writers,
	       (unsigned long long)a->wo.rate, a->dir);
	return 0;
}

static void print_image(const struct pmtrack_dump_info *di, int last)
{
	printf("image %u%s %8llu pages (%llu zero) %8.2f MiB %6.1f ms%s\n",
	       di->index, last ? "*" : " ", (unsigned long long)di->pages,
	       (unsigned long long)di->zero_pages,
	       (double)di->bytes / 1048576.0, (double)di->duration_ns / 1e6,
	       di->has_digest ? "  (workers paused, with digest)"
			      : "  (live pre-dump)");
}

/*
 * a->dumps images every a->interval_ms, the last one with the workers
 * paused (they stay paused).  0, or 1 after a message.
 */
static int dump_all(const struct args *a, struct wl *wl,
		    struct pmtrack_ckpt *ck)
{
	struct pmtrack_dump_info di = { .sz = sizeof(di) };
	uint64_t full = 0, incr = 0;
	int err;

	for (uint64_t i = 0; i < a->dumps; i++) {
		int last = i + 1 == a->dumps;

		if (i)
			usleep((useconds_t)(a->interval_ms * 1000));
		if (last)
			wl_pause(wl); /* the final, consistent image */
		err = pmtrack_ckpt_dump(ck, last ? PMTRACK_DUMP_STOPPED : 0,
					&di);
		if (err) {
			fprintf(stderr, "dump %llu: %s\n",
				(unsigned long long)i, strerror(-err));
			return 1;
		}
		print_image(&di, last);
		if (!i)
			full = di.bytes;
		else
			incr += di.bytes;
	}
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
		fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
	struct args a = { .wo = { .bytes = 256u << 20,
				  .writers = 2,
				  .rate = 20000,
				  .seed = 0xc0ffee,
				  .hot = 80 },
			  .dumps = 5,
			  .interval_ms = 200 };
	char tmpl[] = "/tmp/pmtrack-ckpt-XXXXXX";
	struct pmtrack_ckpt *ck;
	struct wl *wl;
	int status;

	parse_args(argc, argv, &a);
	if (a.restore)
		return restore(a.restore, NULL, 0);
	if (!a.dir && !(a.dir = mkdtemp(tmpl))) {
		perror("mkdtemp");
		return 1;
	}
	if (start(&a, &wl, &ck) || dump_all(&a, wl, ck))
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
		fprintf(stderr, "restore check failed\n");
		return 1;
	}
	printf("verified\n");
	return 0;
}

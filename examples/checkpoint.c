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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "workload.h"

static uint64_t arg_num(const char *s)
{
	uint64_t v;

	if (!wl_parse_size(s, &v))
		return v;
	fprintf(stderr, "usage: pmtrack-checkpoint [--dir DIR] [--size 256M] "
			"[--writers 2] [--rate 20000]\n"
			"         [--dumps 5] [--interval-ms 200] [--level N] "
			"[--keep]\n"
			"       pmtrack-checkpoint --restore DIR\n");
	exit(2);
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

int main(int argc, char **argv)
{
	struct wl_opts wo = { .bytes = 256u << 20,
			      .writers = 2,
			      .rate = 20000,
			      .seed = 0xc0ffee,
			      .hot = 80 };
	uint64_t dumps = 5, interval_ms = 200, full = 0, incr = 0;
	char tmpl[] = "/tmp/pmtrack-ckpt-XXXXXX", *dir = NULL;
	struct pmtrack_dump_info di = { .sz = sizeof(di) };
	struct pmtrack_mem_region reg;
	struct pmtrack_ckpt *ck;
	struct wl *wl;
	int level = 0, keep = 0, err, status;
	pid_t pid;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";

		if (!strcmp(a, "--keep")) {
			keep = 1;
			continue;
		}
		if (i + 1 >= argc)
			arg_num("");
		i++;
		if (!strcmp(a, "--restore"))
			return restore(v, NULL, 0);
		else if (!strcmp(a, "--dir"))
			dir = argv[i], keep = 1;
		else if (!strcmp(a, "--size"))
			wo.bytes = arg_num(v);
		else if (!strcmp(a, "--writers"))
			wo.writers = (int)arg_num(v);
		else if (!strcmp(a, "--rate"))
			wo.rate = arg_num(v);
		else if (!strcmp(a, "--dumps"))
			dumps = arg_num(v);
		else if (!strcmp(a, "--interval-ms"))
			interval_ms = arg_num(v);
		else if (!strcmp(a, "--level"))
			level = (int)arg_num(v);
		else
			arg_num("");
	}
	if (!dumps || !wo.bytes || wo.writers > 64)
		arg_num("");
	if (!dir && !(dir = mkdtemp(tmpl))) {
		perror("mkdtemp");
		return 1;
	}
	err = wl_start(&wo, &wl);
	if (err) {
		fprintf(stderr, "workload: %s\n", strerror(-err));
		return 1;
	}
	reg = (struct pmtrack_mem_region){ wl_mem(wl), wl_len(wl), 1, "heap" };
	{
		PMTRACK_OPTS(pmtrack_ckpt_opts, co, .level = level);

		err = pmtrack_ckpt_new(dir, &co, &reg, 1, &ck);
	}
	if (err) {
		fprintf(stderr, "checkpoint %s: %s\n", dir, strerror(-err));
		return 1;
	}
	printf("application: %.0f MiB, %d workers writing %llu pages/s; "
	       "checkpoints in %s\n",
	       (double)wl_len(wl) / 1048576.0, wo.writers,
	       (unsigned long long)wo.rate, dir);
	for (uint64_t i = 0; i < dumps; i++) {
		int last = i + 1 == dumps;

		if (i)
			usleep((useconds_t)(interval_ms * 1000));
		if (last)
			wl_pause(wl); /* the final, consistent image */
		err = pmtrack_ckpt_dump(ck, last ? PMTRACK_DUMP_STOPPED : 0,
					&di);
		if (err) {
			fprintf(stderr, "dump %llu: %s\n",
				(unsigned long long)i, strerror(-err));
			return 1;
		}
		printf("image %u%s %8llu pages (%llu zero) %8.2f MiB %6.1f "
		       "ms%s\n",
		       di.index, last ? "*" : " ", (unsigned long long)di.pages,
		       (unsigned long long)di.zero_pages,
		       (double)di.bytes / 1048576.0,
		       (double)di.duration_ns / 1e6,
		       di.has_digest ? "  (workers paused, with digest)"
				     : "  (live pre-dump)");
		if (!i)
			full = di.bytes;
		else
			incr += di.bytes;
	}
	if (dumps > 1)
		printf("incremental images: %.1f%% of the full image on "
		       "average\n",
		       100.0 * (double)incr / (double)(dumps - 1) /
			       (double)full);
	fflush(stdout);
	/* a copy of the paused application restores and compares */
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (!pid)
		_exit(restore(dir, wl_mem(wl), wl_len(wl)));
	if (waitpid(pid, &status, 0) != pid)
		status = 1 << 8;
	wl_resume(wl);
	pmtrack_ckpt_free(ck);
	wl_free(wl);
	if (!keep) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "could not remove %s\n", dir);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "restore check failed\n");
		return 1;
	}
	printf("verified\n");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * pmtrack-bench-kvm: the dirty tracking of a real KVM guest's RAM, round by
 * round, four ways side by side in one run:
 *
 *   none      no tracking (the guest's own cost)
 *   range     a pagemap-scan tracker re-arming the whole range
 *             (PMTRACK_REARM_RANGE): guest and device writes
 *   written   the same re-arming only written runs (PMTRACK_REARM_WRITTEN)
 *   dirtylog  KVM's dirty log (KVM_GET_DIRTY_LOG) for the guest's writes
 *             plus a VMM bitmap the device marks, the way QEMU does
 *
 * The guest (support/kvmguest.h) does one phase per round and then waits
 * for the device: read-mostly rounds read every page of the working set
 * and write one in 8 (16,384 and 2,048 pages by default), write-heavy
 * rounds write every page; the device writes its buffer each round.  A
 * round is timed from releasing the guest to the end of the harvest that
 * follows its phase (collect + reset, or get the dirty log + swap the
 * bitmap; its own time is shown too); faults are KVM's pf_fixed over the
 * round.  The harvest runs
 * while the guest waits.  Reported: the median of the measured rounds,
 * and the ratios the README quotes (written ÷ dirtylog in read-mostly
 * rounds; target ≤ 1.5).
 *
 *   pmtrack-bench-kvm [--ws-pages N] [--rounds N] [--warmup N]
 *
 * Exit 77 where KVM or pagemap-scan is not usable; 1 if a harvest missed
 * a page the guest or the device wrote (every way is checked against the
 * pages the round's phase must have written).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pmtrack/pmtrack.h>

#include "bench_util.h"
#include "kvmguest.h"

#define PROG "pmtrack-bench-kvm"
#define PG 4096u

enum way { W_NONE, W_RANGE, W_WRITTEN, W_DIRTYLOG, W_NUM };
static const char *const way_name[W_NUM] = { "none", "range", "written",
					     "dirtylog" };

struct result {
	double ms, harvest_ms, faults, pages;
};

struct run {
	struct kg g;
	struct pmtrack *t;
	uint64_t *log, *devmap; /* dirtylog: KVM's bitmap, the device's */
	size_t words;
	void *ram;
	uint64_t ram_len;
};

/* pages reported dirty, or -1 on an error */
static long harvest(struct run *r, enum way w)
{
	static struct pmtrack_run runs[4096];
	long pages = 0;

	if (w == W_NONE)
		return 0;
	if (w == W_DIRTYLOG) {
		if (kg_dirty_log_get(&r->g, r->log))
			return -1;
		for (size_t i = 0; i < r->words; i++) {
			uint64_t d = __atomic_exchange_n(&r->devmap[i], 0,
							 __ATOMIC_ACQ_REL);

			pages += __builtin_popcountll(r->log[i] | d);
		}
		return pages;
	}
	for (char *at = r->ram; at < (char *)r->ram + r->ram_len;) {
		size_t n = 4096;
		void *next;

		if (pmtrack_collect_runs(
			    r->t, at,
			    (size_t)((char *)r->ram + r->ram_len - at),
			    PMTRACK_COLLECT_RESET, runs, &n, &next))
			return -1;
		for (size_t i = 0; i < n; i++)
			pages += (long)(runs[i].len / PG);
		at = next;
	}
	return pages;
}

static int setup(struct run *r, enum way w, const struct kg_params *p)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .require = PMTRACK_CAP_KERNEL_WRITES,
		     .rearm = w == W_RANGE ? PMTRACK_REARM_RANGE
					   : PMTRACK_REARM_WRITTEN);
	int e;

	r->ram_len = kg_ram_needed(p);
	r->ram = mmap(NULL, r->ram_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->ram == MAP_FAILED)
		return -1;
	(void)madvise(r->ram, r->ram_len, MADV_NOHUGEPAGE);
	e = kg_open(&r->g, r->ram, r->ram_len);
	if (e == -2) {
		printf("SKIP: KVM is not usable here: %s\n", r->g.error);
		exit(77);
	}
	if (e || kg_load(&r->g, p)) {
		fprintf(stderr, PROG ": %s\n", r->g.error);
		return -1;
	}
	r->words = (size_t)(r->ram_len / PG + 63) / 64;
	if (w == W_DIRTYLOG) {
		r->log = calloc(r->words, 8);
		r->devmap = calloc(r->words, 8);
		if (!r->log || !r->devmap || kg_dirty_log_start(&r->g))
			return -1;
		r->g.dev_bitmap = r->devmap;
	} else if (w != W_NONE) {
		e = pmtrack_new(&o, &r->t);
		if (e == -EOPNOTSUPP) {
			printf("SKIP: pagemap-scan is not usable here\n");
			exit(77);
		}
		if (e || pmtrack_watch(r->t, r->ram, r->ram_len))
			return -1;
	}
	return 0;
}

static void teardown(struct run *r)
{
	kg_close(&r->g);
	pmtrack_free(r->t);
	free(r->log);
	free(r->devmap);
	munmap(r->ram, r->ram_len);
	memset(r, 0, sizeof(*r));
}

/* the median round of @rounds after @warmup, for way @w; 0 or -1 */
static int measure(enum way w, int write_heavy, uint64_t ws, int warmup,
		   int rounds, struct result *res)
{
	int total = 1 + warmup + rounds;
	struct kg_params p = {
		.ws_pages = ws,
		.seed = 42,
		.phases = (uint64_t)total + 1,
		.write_words = 1,
		.read_passes = 1,
		.read_stride = 8,
		.dev_pages = 16,
		/* phase 0 writes everything; then rounds of one kind */
		.write_mask = write_heavy ? ~0ull : 1,
	};
	double *ms = calloc((size_t)rounds, sizeof(double));
	double *faults = calloc((size_t)rounds, sizeof(double));
	double *pages = calloc((size_t)rounds, sizeof(double));
	double *hms = calloc((size_t)rounds, sizeof(double));
	/* what a round must report at least: its phase's writes */
	long floor = write_heavy ? (long)ws : (long)(ws / 8);
	struct run r = { 0 };
	int ret = -1;

	if (!ms || !faults || !pages || !hms || setup(&r, w, &p))
		goto out;
	kg_hold(&r.g, 1);
	if (kg_start(&r.g) || kg_wait_rung(&r.g, 1) || harvest(&r, w) < 0)
		goto out;
	for (int i = 1; i < total; i++) {
		uint64_t f0 = 0, f1 = 0, t0 = bench_now_ns(), t1;
		long n;

		kg_stat(&r.g, "pf_fixed", &f0);
		kg_hold(&r.g, (uint64_t)i + 1);
		if (kg_wait_rung(&r.g, (uint64_t)i + 1))
			goto out;
		t1 = bench_now_ns();
		n = harvest(&r, w);
		kg_stat(&r.g, "pf_fixed", &f1);
		if (n < 0)
			goto out;
		if (w != W_NONE && i > 1 && n < floor) {
			fprintf(stderr,
				PROG ": %s round %d reported %ld pages, "
				     "fewer than the %ld written\n",
				way_name[w], i, n, floor);
			goto out;
		}
		if (i > warmup) {
			ms[i - warmup - 1] =
				(double)(bench_now_ns() - t0) / 1e6;
			hms[i - warmup - 1] =
				(double)(bench_now_ns() - t1) / 1e6;
			faults[i - warmup - 1] = (double)(f1 - f0);
			pages[i - warmup - 1] = (double)n;
		}
	}
	kg_hold(&r.g, 0);
	if (kg_wait(&r.g))
		goto out;
	res->ms = bench_median(ms, rounds);
	res->faults = bench_median(faults, rounds);
	res->pages = bench_median(pages, rounds);
	res->harvest_ms = bench_median(hms, rounds);
	ret = 0;
out:
	if (ret && r.g.error[0])
		fprintf(stderr, PROG ": %s\n", r.g.error);
	teardown(&r);
	free(ms);
	free(faults);
	free(pages);
	free(hms);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned long ws = 16384, rounds = 8, warmup = 2;
	struct result res[2][W_NUM];

	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && !strcmp(argv[i], "--ws-pages"))
			ws = bench_parse_num(PROG, argv[++i], "--ws-pages");
		else if (i + 1 < argc && !strcmp(argv[i], "--rounds"))
			rounds = bench_parse_num(PROG, argv[++i], "--rounds");
		else if (i + 1 < argc && !strcmp(argv[i], "--warmup"))
			warmup = bench_parse_num(PROG, argv[++i], "--warmup");
		else {
			fprintf(stderr, "usage: " PROG " [--ws-pages N] "
					"[--rounds N] [--warmup N]\n");
			return 2;
		}
	}
	if (!ws || !rounds || ws > (1ul << 24) || rounds > 10000 ||
	    warmup > 10000) {
		fprintf(stderr, PROG ": bad value\n");
		return 2;
	}
	printf("guest working set %lu pages, %lu rounds after %lu warm-up; "
	       "medians\n",
	       ws, rounds, warmup);
	printf("%-12s %-9s %10s %11s %10s %10s\n", "rounds", "way", "round ms",
	       "harvest ms", "faults", "pages");
	for (int wh = 0; wh < 2; wh++) {
		for (int w = 0; w < W_NUM; w++) {
			struct result *x = &res[wh][w];

			if (measure((enum way)w, wh, ws, (int)warmup,
				    (int)rounds, x))
				return 1;
			printf("%-12s %-9s %10.2f %11.2f %10.0f %10.0f\n",
			       wh ? "write-heavy" : "read-mostly", way_name[w],
			       x->ms, x->harvest_ms, x->faults, x->pages);
			fflush(stdout);
		}
	}
	printf("read-mostly: written / dirtylog %.2f (target <= 1.5), range / "
	       "dirtylog %.2f, written / range %.2f\n",
	       res[0][W_WRITTEN].ms / res[0][W_DIRTYLOG].ms,
	       res[0][W_RANGE].ms / res[0][W_DIRTYLOG].ms,
	       res[0][W_WRITTEN].ms / res[0][W_RANGE].ms);
	printf("write-heavy: written / dirtylog %.2f, range / dirtylog %.2f, "
	       "written / range %.2f\n",
	       res[1][W_WRITTEN].ms / res[1][W_DIRTYLOG].ms,
	       res[1][W_RANGE].ms / res[1][W_DIRTYLOG].ms,
	       res[1][W_WRITTEN].ms / res[1][W_RANGE].ms);
	return 0;
}

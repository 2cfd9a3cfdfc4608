// SPDX-License-Identifier: MIT
/*
 * A real KVM guest's RAM tracked by one tracker (support/kvmguest.h: a
 * ring-3 64-bit guest and a device thread writing guest RAM):
 *
 *   native          the guest runs natively, not through KVM's instruction
 *                   emulator: page faults fixed > 0, instructions emulated
 *                   = the MMIO stores (so no other test here can pass
 *                   through the emulator path by accident)
 *   shadow-written  a shadow copy harvested every 2 ms while the guest
 *   shadow-range    and the device run equals guest RAM at the end (guest
 *                   and device writes, nothing lost), re-arming written
 *                   runs / the whole range
 *   rearm-written   a read-only round of the guest after a harvest faults
 *                   on almost no page: KVM kept its mappings of clean pages
 *   rearm-range     the control: re-arming the whole range makes the same
 *                   round fault on every page of the working set again
 *                   (the kernel's behaviour PMTRACK_REARM_WRITTEN avoids)
 *   proc-rearm-written, proc-rearm-range
 *                   the same two, with the guest run by a child process
 *                   (a VMM) that <pmtrack/process.h> tracks whole, the mode
 *                   given in pmtrack_proc_opts.rearm
 *
 * Usage: check_kvm CASE.  Skips (77) where /dev/kvm is missing or refuses
 * a VM, or pagemap-scan is unusable.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/pmtrack.h>
#include <pmtrack/process.h>

#include "helpers.h"
#include "kvmguest.h"

#define RAM (64ull << 20)

/*
 * The harvest copies guest RAM while the device thread writes it: that
 * race is what the test is about (a page written during the copy is
 * reported again), so ThreadSanitizer builds ignore the copy.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define LIVE_READ_BEGIN() __tsan_ignore_thread_begin()
#define LIVE_READ_END() __tsan_ignore_thread_end()
#else
#define LIVE_READ_BEGIN() ((void)0)
#define LIVE_READ_END() ((void)0)
#endif

static void *ram;

static void map_ram(void)
{
	ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(ram, MAP_FAILED);
	/* base pages: a tracked write splits a huge page anyway */
	(void)madvise(ram, RAM, MADV_NOHUGEPAGE);
}

static void guest_open(struct kg *g, const struct kg_params *p)
{
	map_ram();
	ck_assert_msg(kg_open(g, ram, RAM) == 0, "%s", g->error);
	ck_assert_msg(kg_load(g, p) == 0, "%s", g->error);
}

static uint64_t stat_of(struct kg *g, const char *name)
{
	uint64_t v = 0;

	ck_assert_msg(kg_stat(g, name, &v) == 0, "no KVM statistic %s", name);
	return v;
}

/* the guest ran its own instructions: the shadow page tables fixed
 * faults, and KVM emulated no instruction but the MMIO stores */
static void assert_native(struct kg *g)
{
	uint64_t pf = stat_of(g, "pf_fixed");
	uint64_t emu = stat_of(g, "insn_emulation");
	uint64_t mmio = stat_of(g, "mmio_exits");

	printf("pf_fixed %llu, insn_emulation %llu, mmio_exits %llu\n",
	       (unsigned long long)pf, (unsigned long long)emu,
	       (unsigned long long)mmio);
	ck_assert_uint_gt(pf, 0);
	ck_assert_uint_gt(mmio, 0);
	ck_assert_uint_le(emu, mmio);
}

static struct pmtrack *tracker(enum pmtrack_rearm mode)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = PMTRACK_BACKEND_PAGEMAP_SCAN,
		     .require = PMTRACK_CAP_KERNEL_WRITES |
				PMTRACK_CAP_ATOMIC_RESET,
		     .rearm = mode);
	struct pmtrack *t;

	ck_assert_int_eq(pmtrack_new(&o, &t), 0);
	return t;
}

START_TEST(native)
{
	struct kg_params p = { .ws_pages = 4096,
			       .seed = 7,
			       .phases = 4,
			       .write_words = 2,
			       .read_passes = 4,
			       .read_stride = 8,
			       .dev_pages = 16 };
	struct kg g;

	guest_open(&g, &p);
	ck_assert_int_eq(kg_start(&g), 0);
	ck_assert_msg(kg_wait(&g) == 0, "%s", g.error);
	ck_assert_uint_eq(kg_phases_done(&g), 4);
	assert_native(&g);
	kg_close(&g);
}
END_TEST

/* copy every reported run from guest RAM to the shadow; pages */
static size_t harvest(struct pmtrack *t, char *shadow)
{
	static struct pmtrack_run runs[4096];
	size_t pages = 0;
	void *at = ram, *next;

	while (at < (void *)((char *)ram + RAM)) {
		size_t n = 4096;
		size_t len = (size_t)((char *)ram + RAM - (char *)at);

		ck_assert_int_eq(pmtrack_collect_runs(t, at, len,
						      PMTRACK_COLLECT_RESET,
						      runs, &n, &next),
				 0);
		for (size_t i = 0; i < n; i++) {
			size_t off =
				(size_t)((char *)runs[i].addr - (char *)ram);

			LIVE_READ_BEGIN();
			memcpy(shadow + off, runs[i].addr, runs[i].len);
			LIVE_READ_END();
			pages += runs[i].len / ps;
		}
		at = next;
	}
	return pages;
}

static void shadow_case(enum pmtrack_rearm mode)
{
	struct kg_params p = { .ws_pages = (RAM - (4u << 20)) / 4096,
			       .seed = 11,
			       .phases = 6,
			       .write_words = 2,
			       .read_passes = 6,
			       .read_stride = 8,
			       .dev_pages = 64 };
	struct timespec tick = { 0, 2000000 };
	struct pmtrack *t = tracker(mode);
	size_t live = 0, rounds = 0, during = 0;
	char *shadow = malloc(RAM);
	struct kg g;

	ck_assert_ptr_nonnull(shadow);
	guest_open(&g, &p);
	ck_assert_int_eq(pmtrack_watch(t, ram, RAM), 0);
	memcpy(shadow, ram, RAM);
	ck_assert_int_eq(kg_start(&g), 0);
	while (!kg_done(&g)) {
		size_t n = harvest(t, shadow);

		rounds++;
		live += n;
		if (n)
			during++;
		nanosleep(&tick, NULL);
	}
	ck_assert_msg(kg_wait(&g) == 0, "%s", g.error);
	assert_native(&g);
	/* the device thread is stopped too: nothing writes any more */
	kg_close(&g);
	harvest(t, shadow);
	printf("%zu harvests while the guest ran, %zu of them with pages, "
	       "%zu pages\n",
	       rounds, during, live);
	ck_assert_uint_ge(during, 3);
	ck_assert_msg(memcmp(shadow, ram, RAM) == 0,
		      "the shadow copy differs from guest RAM");
	pmtrack_free(t);
	free(shadow);
	munmap(ram, RAM);
}

START_TEST(shadow_written)
{
	shadow_case(PMTRACK_REARM_WRITTEN);
}
END_TEST

START_TEST(shadow_range)
{
	shadow_case(PMTRACK_REARM_RANGE);
}
END_TEST

/* the guest both re-arm tests run: phase 0 write-heavy, the rest read-mostly */
static const struct kg_params rearm_params = {
	.ws_pages = (RAM - (4u << 20)) / 4096,
	.seed = 3,
	.phases = 4,
	.write_words = 1,
	.read_passes = 2,
	.read_stride = UINT64_MAX,
	.dev_pages = 16,
	.write_mask = 1,
};

/*
 * Faults of a read-only round after a harvest: phase 0 writes the working
 * set, phase 1 reads it (KVM maps it again), a harvest re-arms what was
 * written since (the device buffer, the parameter block), then phase 2
 * reads the working set once more.
 */
static uint64_t read_round_faults(enum pmtrack_rearm mode, uint64_t *ws)
{
	struct kg_params p = rearm_params;
	struct pmtrack *t = tracker(mode);
	char *shadow = malloc(RAM);
	uint64_t a, b;
	struct kg g;

	ck_assert_ptr_nonnull(shadow);
	guest_open(&g, &p);
	ck_assert_int_eq(pmtrack_watch(t, ram, RAM), 0);
	kg_hold(&g, 1);
	ck_assert_int_eq(kg_start(&g), 0);
	ck_assert_msg(kg_wait_rung(&g, 1) == 0, "%s", g.error);
	harvest(t, shadow); /* everything the fill and phase 0 wrote */
	kg_hold(&g, 2);
	ck_assert_msg(kg_wait_rung(&g, 2) == 0, "%s", g.error);
	ck_assert_uint_le(harvest(t, shadow), 64);
	a = stat_of(&g, "pf_fixed");
	kg_hold(&g, 3);
	ck_assert_msg(kg_wait_rung(&g, 3) == 0, "%s", g.error);
	b = stat_of(&g, "pf_fixed");
	kg_hold(&g, 0);
	ck_assert_msg(kg_wait(&g) == 0, "%s", g.error);
	assert_native(&g);
	kg_close(&g);
	pmtrack_free(t);
	free(shadow);
	munmap(ram, RAM);
	*ws = p.ws_pages;
	printf("read-only round of %llu pages after a harvest: %llu faults\n",
	       (unsigned long long)p.ws_pages, (unsigned long long)(b - a));
	return b - a;
}

START_TEST(rearm_written)
{
	uint64_t ws, f = read_round_faults(PMTRACK_REARM_WRITTEN, &ws);

	/* the device buffer and the parameter block, not the working set */
	ck_assert_uint_lt(f, ws / 16);
}
END_TEST

START_TEST(rearm_range)
{
	uint64_t ws, f = read_round_faults(PMTRACK_REARM_RANGE, &ws);

	ck_assert_uint_ge(f, ws);
}
END_TEST

/* ---- a VMM process tracked whole (process.h) --------------------------- */

/*
 * The child: the same guest as read_round_faults(), held at request 1;
 * then, for each request number it reads from @cmd, it lets the guest run
 * up to that request and answers on @ans with pf_fixed (UINT64_MAX on an
 * error).  0 ends it.
 */
static void vmm_child(int cmd, int ans)
{
	struct kg_params p = rearm_params;
	uint64_t id = 1, v = 0;
	struct kg g;

	map_ram();
	if (kg_open(&g, ram, RAM) || kg_load(&g, &p))
		_exit(1);
	kg_hold(&g, 1);
	if (kg_start(&g) || kg_wait_rung(&g, 1))
		_exit(1);
	while (id) {
		if (write(ans, &v, sizeof(v)) != sizeof(v) ||
		    read(cmd, &id, sizeof(id)) != sizeof(id))
			_exit(1);
		if (!id)
			break;
		kg_hold(&g, id);
		v = kg_wait_rung(&g, id) || kg_stat(&g, "pf_fixed", &v)
			    ? UINT64_MAX
			    : v;
	}
	kg_hold(&g, 0);
	id = (uint64_t)kg_wait(&g);
	kg_close(&g); /* the threads joined: TSan counts them */
	_exit(id ? 1 : 0);
}

static int count_fn(void *arg, const struct pmtrack_proc_report *r)
{
	(void)arg;
	(void)r;
	return 0;
}

/* let the child's guest run up to request @id; its pf_fixed then */
static uint64_t vmm_step(int cmd, int ans, uint64_t id)
{
	uint64_t v;

	ck_assert_int_eq(write(cmd, &id, sizeof(id)), sizeof(id));
	ck_assert_int_eq(read(ans, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_ne(v, UINT64_MAX);
	return v;
}

static uint64_t proc_read_round_faults(enum pmtrack_rearm mode)
{
	PMTRACK_OPTS(pmtrack_proc_opts, o, .rearm = mode);
	int cmd[2], ans[2], r, status;
	struct pmtrack_proc *pp;
	uint64_t a, b, v;
	pid_t pid;

	ck_assert_int_eq(pipe(cmd), 0);
	ck_assert_int_eq(pipe(ans), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid)
		vmm_child(cmd[0], ans[1]);
	ck_assert_int_eq(read(ans[0], &v, sizeof(v)), sizeof(v));
	r = pmtrack_proc_new(pid, &o, &pp);
	ck_assert_msg(r == 0, "pmtrack_proc_new: %s", strerror(-r));
	ck_assert_int_eq(pmtrack_proc_backend(pp),
			 PMTRACK_BACKEND_PAGEMAP_SCAN);
	/* everything in full, armed; phase 1 reads the working set in */
	ck_assert_int_eq(
		pmtrack_proc_collect(pp, PMTRACK_COLLECT_RESET, count_fn, NULL),
		0);
	vmm_step(cmd[1], ans[0], 2);
	ck_assert_int_eq(
		pmtrack_proc_collect(pp, PMTRACK_COLLECT_RESET, count_fn, NULL),
		0);
	a = vmm_step(cmd[1], ans[0], 2); /* no run: pf_fixed now */
	b = vmm_step(cmd[1], ans[0], 3);
	v = 0;
	ck_assert_int_eq(write(cmd[1], &v, sizeof(v)), sizeof(v));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && !WEXITSTATUS(status),
		      "the VMM process ended with %#x", status);
	pmtrack_proc_free(pp);
	printf("tracked VMM process: read-only round after a collect: %llu "
	       "faults\n",
	       (unsigned long long)(b - a));
	return b - a;
}

START_TEST(proc_rearm_written)
{
	ck_assert_uint_lt(proc_read_round_faults(PMTRACK_REARM_WRITTEN),
			  (RAM - (4u << 20)) / 4096 / 16);
}
END_TEST

START_TEST(proc_rearm_range)
{
	ck_assert_uint_ge(proc_read_round_faults(PMTRACK_REARM_RANGE),
			  (RAM - (4u << 20)) / 4096);
}
END_TEST

/* 0, or T_SKIP where KVM or pagemap-scan is not usable here */
static int can_run(void)
{
	struct kg g;
	void *m = mmap(NULL, 6u << 20, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r;

	if (m == MAP_FAILED)
		return 1;
	r = kg_open(&g, m, 6u << 20);
	kg_close(&g);
	munmap(m, 6u << 20);
	if (r == -2) {
		printf("SKIP: KVM is not usable here: %s\n", g.error);
		return T_SKIP;
	}
	if (r) {
		printf("kg_open: %s\n", g.error);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct {
		const char *name;
		const TTest *fn;
		int tracked;
	} cases[] = {
		{ "native", native, 0 },
		{ "shadow-written", shadow_written, 1 },
		{ "shadow-range", shadow_range, 1 },
		{ "rearm-written", rearm_written, 1 },
		{ "rearm-range", rearm_range, 1 },
		{ "proc-rearm-written", proc_rearm_written, 1 },
		{ "proc-rearm-range", proc_rearm_range, 1 },
	};
	Suite *s = suite_create("kvm");
	TCase *tc = tcase_create("kvm");
	size_t i;
	int r;

	if (argc != 2)
		return 2;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(argv[1], cases[i].name))
			break;
	if (i == sizeof(cases) / sizeof(cases[0]))
		return 2;
	r = t_init();
	if (!r)
		r = can_run();
	if (!r && cases[i].tracked)
		r = t_need(PMTRACK_FEAT_UFFD_WP_ASYNC,
			   "pagemap-scan (async uffd-wp) tracks guest RAM");
	if (!r && cases[i].tracked)
		r = t_need(PMTRACK_FEAT_PAGEMAP_SCAN,
			   "pagemap-scan tracks guest RAM");
	fflush(stdout);
	if (r)
		return r;
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, cases[i].fn);
	suite_add_tcase(s, tc);
	return t_run(s);
}

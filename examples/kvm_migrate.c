// SPDX-License-Identifier: MIT
/*
 * kvm_migrate: a minimal VMM that live-migrates a running KVM guest over
 * TCP loopback.
 *
 * The guest (support/kvmguest.h) is 64-bit ring-3 code computing a
 * checksum over a working set in write-heavy and read-mostly phases; an
 * emulated device thread in the VMM writes its buffer into guest RAM
 * between phases, as a DMA engine would.  One tracker on the guest RAM
 * mapping sees both kinds of writes: the guest's (through KVM) and the
 * device's (the VMM's own stores), which is why the tracker must have
 * PMTRACK_CAP_KERNEL_WRITES (see <pmtrack/pmtrack.h>): KVM writes guest
 * memory through get_user_pages(), which mprotect and user-mode-only
 * userfaultfd make fail.
 *
 * The source pre-copies guest RAM with pmtrack_precopy() to a destination
 * process while the vCPU runs; at the switchover it pauses the vCPU and
 * the device, and once the destination acknowledged the last round (its
 * state digest verified) sends, from pmtrack_precopy()'s switchover
 * callback, the vCPU registers, special registers, XSAVE area and the
 * device's state.  While the guest resumes there, pmtrack_precopy() audits
 * the paused source RAM against what it sent.  The destination creates
 * its own VM over the RAM it received, resumes the guest, which finishes
 * there, and answers with the guest's result and a digest of its final
 * RAM.  The source then runs the same guest without migration and checks
 * that both agree.
 *
 *   pmtrack-kvm-migrate [--size SIZE] [--working-set SIZE] [--phases N]
 *                       [--write-words N] [--read-passes N]
 *                       [--read-stride N] [--device-pages N] [--seed N]
 *                       [--downtime-ms MS] [--max-rounds N]
 *                       [--max-bandwidth SIZE/S] [--migrate-after-ms MS]
 *                       [--rearm written|range] [--backend NAME]
 *                       [--finish-on-source] [--no-migrate]
 *                       [--no-verify] [--no-reference] [--ram-out FILE]
 *                       [--quiet]
 *
 * The migration starts once the guest has run --migrate-after-ms.  By
 * default the device holds the guest's last request until the
 * switchover, so the guest always finishes on the destination
 * (--finish-on-source lets it finish wherever it gets to).  --no-migrate
 * runs the guest here only (the reference run); --no-reference migrates
 * without it.  --no-verify turns off the state digest and the audit
 * (PMTRACK_PRECOPY_NO_DIGEST), as everywhere.  --ram-out writes the final
 * guest RAM (of the destination, or of the reference run) to FILE.  The
 * options and their defaults are in help() below (--help prints them);
 * the grammar is docs/cli.md's.  Exit status: 0 verified, 1 failed, 2 a
 * bad command line, 77 this machine cannot run it (KVM is not usable, or
 * no backend here tracks KVM's writes; why on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmtrack/migrate.h>

#include "args.h"
#include "excli.h"
#include "kvmguest.h"
#include "loopback.h"
#include "progress.h"
#include "status.h"

#define PROG "pmtrack-kvm-migrate"
/* this machine cannot run it (automake's SKIP) */
#define EXIT_CANNOT 77
#define STATE_MAGIC 0x4b564d5354415445ull  /* "KVMSTATE" */
#define ANSWER_MAGIC 0x4b564d414e535752ull /* "KVMANSWR" */

struct cfg {
	uint64_t size, ws, phases, write_words, read_passes, read_stride;
	uint64_t dev_pages, seed, downtime_ms, max_rounds, after_ms, bw;
	enum pmtrack_backend backend;
	enum pmtrack_rearm rearm;
	int hold, migrate, verify, reference, quiet;
	const char *ram_out;
};

/* what the source sends after the last round */
struct state_msg {
	uint64_t magic;
	struct kg_state st;
};

/* what the destination answers when its guest has finished */
struct answer_msg {
	uint64_t magic;
	uint64_t resume_ns; /* CLOCK_MONOTONIC when its vCPU started */
	uint64_t result;
	uint64_t phases_on_arrival;
	uint64_t pf_fixed, insn_emulation;
	int32_t ok;
	char error[160];
	uint8_t digest[PMTRACK_DIGEST_LEN];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void help(FILE *f)
{
	fputs("usage: " PROG " [--size SIZE] [--working-set SIZE] "
	      "[--phases N]\n"
	      "         [--write-words N] [--read-passes N] [--read-stride N]\n"
	      "         [--device-pages N] [--seed N] [--downtime-ms MS] "
	      "[--max-rounds N]\n"
	      "         [--max-bandwidth SIZE/S] [--migrate-after-ms MS]\n"
	      "         [--rearm written|range] [--backend NAME]\n"
	      "         [--finish-on-source] [--no-migrate] [--no-verify]\n"
	      "         [--no-reference] [--ram-out FILE] [--quiet]\n"
	      "       " PROG " --help | --version\n"
	      "\n"
	      "A minimal VMM that live-migrates a running KVM guest (64-bit "
	      "ring-3 code, and\n"
	      "a device thread writing guest RAM) to a destination process over "
	      "TCP loopback,\n"
	      "where the guest finishes; the result and final RAM are then "
	      "compared with a\n"
	      "run of the same guest without migration.  Page counts include "
	      "the zero pages,\n"
	      "which are also given apart.  After each round a status line "
	      "like pmtrack\n"
	      "send's.  Exit status: 0 verified, 1 failed, 2 a bad command "
	      "line, 77 this\n"
	      "machine cannot run it (why on stderr: KVM is not usable, or no "
	      "backend here\n"
	      "tracks KVM's writes).\n"
	      "\n"
	      "  --size SIZE            guest RAM, 6 MiB..62 GiB, rounded up to "
	      "2 MiB\n"
	      "                         (default 256 MiB)\n"
	      "  --working-set SIZE     memory the guest computes over (default "
	      "64 MiB)\n"
	      "  --phases N             write-heavy and read-mostly phases "
	      "(default 6)\n"
	      "  --write-words N        words the guest writes per page in a "
	      "write phase\n"
	      "                         (default 4)\n"
	      "  --read-passes N        passes over the working set in a read "
	      "phase\n"
	      "                         (default 400)\n"
	      "  --read-stride N        a read phase writes 1 page in N "
	      "(default 16)\n"
	      "  --device-pages N       pages the device writes between phases, "
	      "1..512\n"
	      "                         (default 64)\n"
	      "  --seed N               the guest's seed (default 0)\n"
	      "  --downtime-ms MS       longest pause of the guest to aim for "
	      "(default 300)\n"
	      "  --max-rounds N         pre-copy rounds before stopping anyway "
	      "(default 30)\n"
	      "  --max-bandwidth SIZE/S\n"
	      "                         cap on the pre-copy's bytes per second;\n"
	      "                         0 = none (default 0)\n"
	      "  --migrate-after-ms MS  let the guest run this long before the "
	      "migration\n"
	      "                         starts (default 500)\n"
	      "  --rearm MODE           written (re-protect the written runs) or "
	      "range (all of\n"
	      "                         guest RAM) after each collect (default "
	      "written)\n"
	      "  --backend NAME         auto, pagemap-scan, soft-dirty, uffd-wp "
	      "or mprotect;\n"
	      "                         one that cannot track KVM's writes is "
	      "refused\n"
	      "                         (default auto)\n"
	      "  --finish-on-source     let the guest finish wherever it gets "
	      "to (by\n"
	      "                         default the device holds its last "
	      "request until the\n"
	      "                         switchover)\n"
	      "  --no-migrate           only run the guest here (the reference "
	      "run)\n"
	      "  --no-verify            no state digest and no audit (default "
	      "verification\n"
	      "                         on)\n"
	      "  --no-reference         no reference run: the migrated guest's "
	      "result and\n"
	      "                         final RAM are not compared with an "
	      "unmigrated run's\n"
	      "  --ram-out FILE         write the final guest RAM (of the "
	      "destination, or of\n"
	      "                         the reference run) to FILE\n"
	      "  --quiet                no progress bar and no per-round lines\n"
	      "  -h, --help             print this help and exit\n"
	      "  --version              print the version and exit\n",
	      f);
}

enum opt_id {
	O_SIZE,
	O_WS,
	O_PHASES,
	O_WWORDS,
	O_RPASSES,
	O_RSTRIDE,
	O_DEVPAGES,
	O_SEED,
	O_DOWNTIME,
	O_ROUNDS,
	O_AFTER,
	O_BW,
	O_NUM,
	O_REARM = 'r',
	O_BACKEND = 'B',
	O_SOURCE = 's',
	O_NOMIG = 'n',
	O_NOVERIFY = 'v',
	O_NOREF = 'N',
	O_RAMOUT = 'o',
	O_QUIET = 'q',
};

static const struct {
	const char *name;
	size_t off;
	uint64_t min, max;
	unsigned int flags;
} num_opt[O_NUM] = {
	[O_SIZE] = { "--size", offsetof(struct cfg, size), 6 << 20,
		     62ull << 30, PMT_NUM_SUFFIX },
	[O_WS] = { "--working-set", offsetof(struct cfg, ws), 4096, 62ull << 30,
		   PMT_NUM_SUFFIX },
	[O_PHASES] = { "--phases", offsetof(struct cfg, phases), 1, 1 << 20,
		       0 },
	[O_WWORDS] = { "--write-words", offsetof(struct cfg, write_words), 1,
		       1 << 20, 0 },
	[O_RPASSES] = { "--read-passes", offsetof(struct cfg, read_passes), 1,
			1 << 24, 0 },
	[O_RSTRIDE] = { "--read-stride", offsetof(struct cfg, read_stride), 1,
			UINT64_MAX, 0 },
	[O_DEVPAGES] = { "--device-pages", offsetof(struct cfg, dev_pages), 1,
			 512, 0 },
	[O_SEED] = { "--seed", offsetof(struct cfg, seed), 0, UINT64_MAX, 0 },
	[O_DOWNTIME] = { "--downtime-ms", offsetof(struct cfg, downtime_ms), 1,
			 UINT64_MAX / 1000000, 0 },
	[O_ROUNDS] = { "--max-rounds", offsetof(struct cfg, max_rounds), 0,
		       UINT32_MAX, 0 },
	[O_AFTER] = { "--migrate-after-ms", offsetof(struct cfg, after_ms), 0,
		      UINT32_MAX, 0 },
	[O_BW] = { "--max-bandwidth", offsetof(struct cfg, bw), 0, UINT64_MAX,
		   PMT_NUM_SUFFIX },
};

/* "auto" or a name pmtrack_backend_name() gives: 0, or -1 */
static int backend_from_name(const char *s, enum pmtrack_backend *b)
{
	static const enum pmtrack_backend all[] = {
		PMTRACK_BACKEND_PAGEMAP_SCAN,
		PMTRACK_BACKEND_SOFT_DIRTY,
		PMTRACK_BACKEND_UFFD_WP,
		PMTRACK_BACKEND_MPROTECT,
	};

	if (!strcmp(s, "auto")) {
		*b = PMTRACK_BACKEND_AUTO;
		return 0;
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(s, pmtrack_backend_name(all[i]))) {
			*b = all[i];
			return 0;
		}
	}
	return -1;
}

static void parse(int argc, char **argv, struct cfg *c)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, O_SIZE },
		{ "working-set", required_argument, NULL, O_WS },
		{ "phases", required_argument, NULL, O_PHASES },
		{ "write-words", required_argument, NULL, O_WWORDS },
		{ "read-passes", required_argument, NULL, O_RPASSES },
		{ "read-stride", required_argument, NULL, O_RSTRIDE },
		{ "device-pages", required_argument, NULL, O_DEVPAGES },
		{ "seed", required_argument, NULL, O_SEED },
		{ "downtime-ms", required_argument, NULL, O_DOWNTIME },
		{ "max-rounds", required_argument, NULL, O_ROUNDS },
		{ "migrate-after-ms", required_argument, NULL, O_AFTER },
		{ "max-bandwidth", required_argument, NULL, O_BW },
		{ "rearm", required_argument, NULL, O_REARM },
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "finish-on-source", no_argument, NULL, O_SOURCE },
		{ "no-migrate", no_argument, NULL, O_NOMIG },
		{ "no-verify", no_argument, NULL, O_NOVERIFY },
		{ "no-reference", no_argument, NULL, O_NOREF },
		{ "ram-out", required_argument, NULL, O_RAMOUT },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, PMT_CLI_HELP },
		{ "version", no_argument, NULL, PMT_CLI_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const struct pmt_cli cli = { PROG, longopts, help };
	int opt;

	while ((opt = pmt_cli_next(&cli, argc, argv)) != -1) {
		if (opt >= 0 && opt < O_NUM) {
			*(uint64_t *)((char *)c + num_opt[opt].off) =
				pmt_arg_u64(PROG, num_opt[opt].name, optarg,
					    num_opt[opt].flags,
					    num_opt[opt].min, num_opt[opt].max);
			continue;
		}
		switch (opt) {
		case O_REARM:
			if (!strcmp(optarg, "written"))
				c->rearm = PMTRACK_REARM_WRITTEN;
			else if (!strcmp(optarg, "range"))
				c->rearm = PMTRACK_REARM_RANGE;
			else
				pmt_bad_value(PROG, "--rearm", optarg,
					      "written or range");
			break;
		case O_BACKEND:
			if (backend_from_name(optarg, &c->backend))
				pmt_bad_value(PROG, "--backend", optarg,
					      "auto, pagemap-scan, soft-dirty, "
					      "uffd-wp or mprotect");
			break;
		case O_SOURCE:
			c->hold = 0;
			break;
		case O_NOMIG:
			c->migrate = 0;
			break;
		case O_NOVERIFY:
			c->verify = 0;
			break;
		case O_NOREF:
			c->reference = 0;
			break;
		case O_RAMOUT:
			c->ram_out = optarg;
			break;
		case O_QUIET:
			c->quiet = 1;
			break;
		}
	}
	pmt_cli_end(&cli, argc, argv);
}

static void guest_params(const struct cfg *c, struct kg_params *p)
{
	*p = (struct kg_params){
		.ws_pages = c->ws / 4096 ? c->ws / 4096 : 1,
		.seed = c->seed,
		.phases = c->phases,
		.write_words = c->write_words,
		.read_passes = c->read_passes,
		.read_stride = c->read_stride,
		.dev_pages = c->dev_pages,
	};
}

/* guest RAM: private anonymous, 2 MiB aligned (for huge pages) */
static void *map_ram(uint64_t len)
{
	uint8_t *m = mmap(NULL, len + (2u << 20), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	if (m == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)m + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
	if (a > (uintptr_t)m)
		munmap(m, a - (uintptr_t)m);
	munmap((void *)(a + len), (uintptr_t)m + (2u << 20) - a);
	return (void *)a;
}

static int digest_ram(const void *ram, uint64_t len,
		      uint8_t out[PMTRACK_DIGEST_LEN])
{
	struct iovec iov = { (void *)ram, len };

	return pmtrack_digest(&iov, 1, out);
}

static int write_file(const char *path, const void *mem, uint64_t len)
{
	const char *p = mem;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while (len) {
		ssize_t n = write(fd, p, len > (1u << 30) ? 1u << 30 : len);

		if (n <= 0) {
			fprintf(stderr, "%s: %s\n", path,
				n ? strerror(errno) : "short write");
			close(fd);
			return -1;
		}
		p += n;
		len -= (uint64_t)n;
	}
	return close(fd);
}

static int io_all(int fd, void *buf, size_t len, int out)
{
	char *c = buf;

	while (len) {
		ssize_t n = out ? send(fd, c, len, MSG_NOSIGNAL)
				: recv(fd, c, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

/* the unmigrated run: result, digest and RAM of the guest run here */
static int run_local(const struct cfg *c, uint64_t *result,
		     uint8_t digest[PMTRACK_DIGEST_LEN], int *nokvm)
{
	struct kg_params p;
	struct kg g;
	uint64_t len;
	void *ram;
	int r;

	guest_params(c, &p);
	len = c->size;
	ram = map_ram(len);
	if (!ram) {
		perror("mmap");
		return -1;
	}
	r = kg_open(&g, ram, len);
	if (!r)
		r = kg_load(&g, &p);
	if (!r)
		r = kg_start(&g);
	if (!r)
		r = kg_wait(&g);
	if (r) {
		*nokvm = r == -2;
		if (*nokvm)
			fprintf(stderr, PROG ": this machine cannot run it: KVM "
					     "is not usable here: %s\n",
				g.error);
		else
			fprintf(stderr, "reference run: %s\n", g.error);
	} else {
		*result = kg_result(&g);
	}
	kg_close(&g);
	if (!r && digest_ram(ram, len, digest))
		r = -1;
	if (!r && c->ram_out && !c->migrate)
		r = write_file(c->ram_out, ram, len);
	munmap(ram, len);
	return r;
}

static void hex(const uint8_t *d, char *out)
{
	for (unsigned int i = 0; i < PMTRACK_DIGEST_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* ---- destination (child process) --------------------------------------- */

static int dest_receive(int fd, void *ram, uint64_t len)
{
	struct pmtrack_rx *rx = NULL;
	int err, reason;

	err = pmtrack_rx_new(NULL, &rx);
	if (!err)
		err = pmtrack_rx_set_dest(rx, 0, ram, len);
	if (!err)
		err = pmtrack_rx_apply_fd(rx, fd);
	if (err) {
		const char *msg = rx ? pmtrack_rx_error(rx, &reason) : "";

		fprintf(stderr, "destination: %s: %s\n", strerror(-err), msg);
	}
	pmtrack_rx_free(rx);
	return err ? -1 : 0;
}

/* create a VM over the received RAM, resume the guest, let it finish */
static void dest_run(const struct cfg *c, void *ram, uint64_t len,
		     const struct state_msg *sm, struct answer_msg *a)
{
	struct kg g;
	int r;

	r = kg_open(&g, ram, len);
	if (!r)
		r = kg_set_state(&g, &sm->st);
	if (!r) {
		a->phases_on_arrival = kg_phases_done(&g);
		a->resume_ns = now_ns();
		r = kg_start(&g);
	}
	if (!r)
		r = kg_wait(&g);
	if (r) {
		snprintf(a->error, sizeof(a->error), "%s", g.error);
	} else {
		a->result = kg_result(&g);
		kg_stat(&g, "pf_fixed", &a->pf_fixed);
		kg_stat(&g, "insn_emulation", &a->insn_emulation);
	}
	kg_close(&g);
	if (!r && digest_ram(ram, len, a->digest))
		r = -1;
	if (!r && c->ram_out && write_file(c->ram_out, ram, len))
		r = -1;
	a->ok = !r;
}

static int destination(const struct cfg *c, int lfd)
{
	struct answer_msg a = { .magic = ANSWER_MAGIC };
	struct state_msg sm;
	void *ram = map_ram(c->size);
	int fd = accept(lfd, NULL, NULL);

	close(lfd);
	if (fd < 0 || !ram) {
		perror("destination");
		return 1;
	}
	if (dest_receive(fd, ram, c->size))
		return 1;
	if (io_all(fd, &sm, sizeof(sm), 0) || sm.magic != STATE_MAGIC) {
		fprintf(stderr, "destination: no vCPU state after the last "
				"round\n");
		return 1;
	}
	dest_run(c, ram, c->size, &sm, &a);
	if (!a.ok)
		fprintf(stderr, "destination: %s\n", a.error);
	if (io_all(fd, &a, sizeof(a), 1))
		return 1;
	close(fd);
	return a.ok ? 0 : 1;
}

/* ---- source ------------------------------------------------------------ */

struct src {
	const struct cfg *c;
	struct kg g;
	struct pmtrack_xport *x;
	int fd;
	uint64_t stop_ns;
	bool state_sent;
	struct pmt_bar bar;
	/* the bar: bytes written this round against its estimate */
	uint64_t round, round_bytes, round_est;
};

static int src_write(void *arg, const struct iovec *iov, int n)
{
	struct src *s = arg;

	for (int i = 0; i < n; i++)
		s->round_bytes += iov[i].iov_len;
	pmt_bar_draw(&s->bar, false, s->round_bytes, s->round_est,
		     "round %llu: %s of about %s",
		     (unsigned long long)s->round, pmt_iec(s->round_bytes),
		     pmt_iec(s->round_est));
	return pmtrack_xport_write(s->x, iov, n);
}

static int src_flush(void *arg)
{
	return pmtrack_xport_flush(((struct src *)arg)->x);
}

static int src_stop(void *arg)
{
	struct src *s = arg;

	s->stop_ns = now_ns();
	pmt_bar_clear(&s->bar);
	if (kg_pause(&s->g)) {
		fprintf(stderr, PROG ": source: %s\n", s->g.error);
		return -EIO;
	}
	if (!s->c->quiet) {
		printf("stop: vCPU paused after %llu of %llu phases, device "
		       "quiesced\n",
		       (unsigned long long)kg_phases_done(&s->g),
		       (unsigned long long)s->c->phases);
		fflush(stdout);
	}
	return 0;
}

static void src_resume(void *arg)
{
	struct src *s = arg;

	pmt_bar_clear(&s->bar);
	fprintf(stderr, PROG ": stop-and-copy failed: the guest runs on "
			     "here\n");
	kg_resume(&s->g);
}

/* after each round, its status line (pmtrack send's, support/status.h) */
static int src_round(void *arg, const struct pmtrack_precopy_round *r)
{
	struct src *s = arg;
	char line[PMT_STATUS_LEN];

	pmt_bar_clear(&s->bar);
	if (!s->c->quiet) {
		pmt_status_line(line, sizeof(line), r);
		printf("%s\n", line);
		fflush(stdout);
	}
	/* the next round sends what was dirtied, at this round's ratio */
	s->round++;
	s->round_bytes = 0;
	s->round_est = r->pages ? r->bytes * r->dirty_pages / r->pages : 0;
	return 0;
}

static void tracker_opts(const struct cfg *c, struct pmtrack_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->backend = c->backend;
	/* KVM writes guest RAM through get_user_pages(); and writes racing
	   with a collect must never be lost */
	o->require = PMTRACK_CAP_KERNEL_WRITES | PMTRACK_CAP_ATOMIC_RESET;
	o->rearm = c->rearm;
}

/* @c's backend runs here at all (KVM aside): 1, or 0 */
static int backend_runs(const struct cfg *c)
{
	PMTRACK_OPTS(pmtrack_opts, o, .backend = c->backend);
	struct pmtrack *t;

	if (pmtrack_new(&o, &t))
		return 0;
	pmtrack_free(t);
	return 1;
}

/*
 * Refuse a tracker KVM cannot work with, before any guest runs: 0, or the
 * exit status after a message (77 if no backend, or not the one asked
 * for, runs here; 1 if the one asked for runs but cannot track KVM's
 * writes).
 */
static int check_backend(const struct cfg *c)
{
	struct pmtrack_opts o;
	struct pmtrack *t;
	int r;

	tracker_opts(c, &o);
	r = pmtrack_new(&o, &t);
	if (r == -EOPNOTSUPP && !backend_runs(c)) {
		if (c->backend == PMTRACK_BACKEND_AUTO)
			fprintf(stderr, PROG ": this machine cannot run it: "
					     "no backend runs here");
		else
			fprintf(stderr,
				PROG ": this machine cannot run it: the %s "
				     "backend does not run here",
				pmtrack_backend_name(c->backend));
		fprintf(stderr, " ('pmtrack probe' lists the kernel "
				"features)\n");
		return EXIT_CANNOT;
	}
	if (r == -EOPNOTSUPP && c->backend == PMTRACK_BACKEND_AUTO) {
		fprintf(stderr,
			PROG ": this machine cannot run it: no backend here "
			     "tracks KVM guest RAM (it needs "
			     "PMTRACK_CAP_KERNEL_WRITES and "
			     "PMTRACK_CAP_ATOMIC_RESET)\n");
		return EXIT_CANNOT;
	}
	if (r == -EOPNOTSUPP) {
		fprintf(stderr,
			PROG ": the %s backend cannot track KVM guest RAM "
			     "here: guest RAM needs a tracker with "
			     "PMTRACK_CAP_KERNEL_WRITES (KVM writes it through "
			     "get_user_pages(), which mprotect and user-mode-"
			     "only userfaultfd make fail: KVM_RUN gets EFAULT "
			     "or an emulated write is lost) and "
			     "PMTRACK_CAP_ATOMIC_RESET\n",
			pmtrack_backend_name(c->backend));
		return 1;
	}
	if (r) {
		fprintf(stderr, PROG ": pmtrack_new: %s\n", strerror(-r));
		return 1;
	}
	printf("tracker: %s, re-arm %s\n",
	       pmtrack_backend_name(pmtrack_backend(t)),
	       c->rearm == PMTRACK_REARM_RANGE ? "whole range"
					       : "written runs");
	pmtrack_free(t);
	return 0;
}

static int listen_fork(const struct cfg *c, uint16_t *port, pid_t *pid)
{
	int lfd = pmt_loopback_listen(port);

	if (lfd < 0)
		return -1;
	fflush(stdout);
	*pid = fork();
	if (*pid < 0) {
		perror("fork");
		return -1;
	}
	if (!*pid)
		_exit(destination(c, lfd));
	close(lfd);
	return 0;
}

/*
 * The switchover: the destination holds all of guest RAM (its state digest
 * verified); send it the vCPU and device state so that it resumes the
 * guest while pmtrack_precopy() audits the source.
 */
static int src_switchover(void *arg)
{
	struct src *s = arg;
	struct state_msg sm = { .magic = STATE_MAGIC };

	if (kg_get_state(&s->g, &sm.st)) {
		fprintf(stderr, "source: %s\n", s->g.error);
		return -EIO;
	}
	if (io_all(s->fd, &sm, sizeof(sm), 1))
		return -EPIPE;
	s->state_sent = true;
	return 0;
}

static int precopy(struct src *s, void *ram, struct pmtrack_precopy_stats *st)
{
	static const struct pmtrack_precopy_ops ops = {
		.stop = src_stop,
		.resume = src_resume,
		.progress = src_round,
	};
	const struct cfg *c = s->c;
	struct pmtrack_mem_region reg = { ram, c->size, 0, "guest-ram" };
	struct pmtrack_opts to;

	tracker_opts(c, &to);
	PMTRACK_OPTS(pmtrack_precopy_opts, o, .write = src_write,
		     .write_arg = s, .flush = src_flush, .ops = &ops, .arg = s,
		     .tracker = &to,
		     .downtime_limit_ns = c->downtime_ms * 1000000,
		     .max_rounds = (uint32_t)c->max_rounds,
		     .max_bandwidth = c->bw, .reply = s->x,
		     .switchover = src_switchover,
		     .flags = c->verify ? 0 : PMTRACK_PRECOPY_NO_DIGEST);
	int err;

	s->round_est = c->size;
	err = pmtrack_precopy(&o, &reg, 1, st);
	pmt_bar_clear(&s->bar);
	return err;
}

/* the guest on the source: start it, migrate it, hand its state over */
static int source(struct src *s, int fd, void *ram,
		  struct pmtrack_precopy_stats *st, struct answer_msg *a)
{
	const struct cfg *c = s->c;
	char t[PMT_UNIT_LEN], d[PMT_UNIT_LEN], l[PMT_UNIT_LEN],
		rs[PMT_UNIT_LEN];
	uint64_t v;
	int err;

	s->fd = fd;
	err = pmtrack_xport_new(fd, NULL, &s->x);
	if (err) {
		fprintf(stderr, PROG ": transport: %s\n", strerror(-err));
		return -1;
	}
	err = precopy(s, ram, st);
	pmtrack_xport_free(s->x);
	if (err) {
		fprintf(stderr, PROG ": migration failed: %s%s%s\n",
			strerror(-err),
			st->remote_message[0] ? ": " : "", st->remote_message);
		if (err == -EBADMSG && s->state_sent)
			fprintf(stderr, PROG ": the audit found guest RAM at %#llx "
					"written without the tracker seeing "
					"it; the destination is wrong\n",
				(unsigned long long)st->audit_first_addr);
		return -1;
	}
	if (!kg_stat(&s->g, "pf_fixed", &v))
		printf("source vCPU: pf_fixed %llu", (unsigned long long)v);
	if (!kg_stat(&s->g, "insn_emulation", &v))
		printf(", insn_emulation %llu (the MMIO stores)",
		       (unsigned long long)v);
	printf(", exits %llu\n", (unsigned long long)s->g.exits);
	if (io_all(fd, a, sizeof(*a), 0) || a->magic != ANSWER_MAGIC) {
		fprintf(stderr, PROG ": source: no answer from the "
				"destination\n");
		return -1;
	}
	if (!a->ok) {
		fprintf(stderr, PROG ": destination: %s\n", a->error);
		return -1;
	}
	printf("migrated: %llu rounds, %llu pages (zero pages included; %llu "
	       "zero), %s sent in %s, backend %s; downtime %s to the "
	       "stream's end (limit %s), %s until the guest resumed "
	       "on the destination\n",
	       (unsigned long long)st->rounds, (unsigned long long)st->pages,
	       (unsigned long long)st->zero_pages, pmt_iec(st->bytes),
	       pmt_fmt_dur(t, sizeof(t), st->total_ns),
	       pmtrack_backend_name(st->backend),
	       pmt_fmt_dur(d, sizeof(d), st->downtime_ns),
	       pmt_fmt_dur(l, sizeof(l), c->downtime_ms * 1000000),
	       pmt_fmt_dur(rs, sizeof(rs), a->resume_ns - s->stop_ns));
	if (c->verify)
		printf("audit: the paused source RAM is what was sent (%s, "
		       "while the guest resumed on the destination)\n",
		       pmt_fmt_dur(d, sizeof(d), st->audit_ns));
	printf("destination: resumed at phase %llu of %llu, finished: result "
	       "%016llx (pf_fixed %llu, insn_emulation %llu)\n",
	       (unsigned long long)a->phases_on_arrival,
	       (unsigned long long)c->phases, (unsigned long long)a->result,
	       (unsigned long long)a->pf_fixed,
	       (unsigned long long)a->insn_emulation);
	return 0;
}

/* start the guest here, then migrate it to a forked destination */
static int migrate(const struct cfg *c, struct answer_msg *a)
{
	struct pmtrack_precopy_stats st = { .sz = sizeof(st) };
	struct src s = { .c = c };
	struct kg_params p;
	int fd, r, status, nokvm;
	uint16_t port;
	void *ram;
	pid_t pid;

	pmt_bar_init(&s.bar, stderr, c->quiet);
	guest_params(c, &p);
	if (listen_fork(c, &port, &pid))
		return 1;
	ram = map_ram(c->size);
	if (!ram) {
		perror("mmap");
		return 1;
	}
	r = kg_open(&s.g, ram, c->size);
	nokvm = r == -2;
	if (!r)
		r = kg_load(&s.g, &p);
	if (!r) {
		/* the last request waits for the switchover */
		s.g.dev_hold = c->hold ? c->phases : 0;
		r = kg_start(&s.g);
	}
	if (!r && c->after_ms)
		usleep((useconds_t)(c->after_ms * 1000));
	fd = r ? -1 : pmt_loopback_connect(port);
	if (nokvm)
		fprintf(stderr, PROG ": this machine cannot run it: KVM is "
				     "not usable here: %s\n", s.g.error);
	else if (r)
		fprintf(stderr, "source: %s\n", s.g.error);
	else if (fd >= 0)
		r = source(&s, fd, ram, &st, a);
	if (fd >= 0)
		close(fd);
	else
		kill(pid, SIGKILL);
	kg_close(&s.g);
	munmap(ram, c->size);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		r = -1;
	return nokvm ? EXIT_CANNOT : r ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct cfg c = { .size = 256u << 20,
			 .ws = 64ull << 20,
			 .phases = 6,
			 .write_words = 4,
			 .read_passes = 400,
			 .read_stride = 16,
			 .dev_pages = 64,
			 .downtime_ms = 300,
			 .max_rounds = 30,
			 .after_ms = 500,
			 .rearm = PMTRACK_REARM_WRITTEN,
			 .hold = 1,
			 .migrate = 1,
			 .verify = 1,
			 .reference = 1 };
	struct answer_msg a = { 0 };
	uint8_t ref_digest[PMTRACK_DIGEST_LEN];
	char h1[2 * PMTRACK_DIGEST_LEN + 1], h2[2 * PMTRACK_DIGEST_LEN + 1];
	uint64_t ref = 0, need;
	struct kg_params p;
	int nokvm = 0, r;

	parse(argc, argv, &c);
	c.size = (c.size + (2u << 20) - 1) / (2u << 20) * (2u << 20);
	guest_params(&c, &p);
	need = kg_ram_needed(&p);
	if (need > c.size) {
		fprintf(stderr,
			PROG ": a %s working set needs a --size of at "
			     "least %s\n",
			pmt_iec(c.ws), pmt_iec(need));
		return 2;
	}
	printf("guest: %s RAM, working set %llu pages, %llu phases "
	       "(write %llu words/page; read %llu passes, 1 page in %llu "
	       "written), device %llu pages, seed %llu\n",
	       pmt_iec(c.size),
	       (unsigned long long)p.ws_pages, (unsigned long long)c.phases,
	       (unsigned long long)c.write_words,
	       (unsigned long long)c.read_passes,
	       (unsigned long long)c.read_stride,
	       (unsigned long long)c.dev_pages, (unsigned long long)c.seed);
	if (!c.migrate) {
		r = run_local(&c, &ref, ref_digest, &nokvm);
		if (r)
			return nokvm ? EXIT_CANNOT : 1;
		hex(ref_digest, h1);
		printf("result %016llx, final RAM digest %s\n",
		       (unsigned long long)ref, h1);
		return 0;
	}
	r = check_backend(&c);
	if (r)
		return r;
	fflush(stdout);
	r = migrate(&c, &a);
	if (r)
		return r;
	if (!c.reference) {
		printf("done: the migrated guest's result is %016llx; no "
		       "reference run to compare it with (--no-reference)\n",
		       (unsigned long long)a.result);
		return 0;
	}
	if (run_local(&c, &ref, ref_digest, &nokvm))
		return 1;
	hex(a.digest, h1);
	hex(ref_digest, h2);
	if (ref != a.result || memcmp(ref_digest, a.digest, sizeof(a.digest))) {
		printf("FAILED: migrated result %016llx, RAM %s; unmigrated "
		       "result %016llx, RAM %s\n",
		       (unsigned long long)a.result, h1,
		       (unsigned long long)ref, h2);
		return 1;
	}
	printf("verified: the migrated guest's result %016llx and final RAM "
	       "(digest %s) equal an unmigrated run's\n",
	       (unsigned long long)ref, h1);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * A minimal KVM virtual machine for the KVM example, its tests and its
 * benchmark: one vCPU running a deterministic 64-bit guest program in ring
 * 3 (the one mode that runs natively on kvm_pvm's shadow paging; every
 * other mode is emulated instruction by instruction), and one emulated
 * device that writes into guest RAM from a VMM thread, as a DMA engine
 * would.  Not part of the library's API.
 *
 * Guest physical memory is one slot at address 0, identity-mapped with
 * 2 MiB pages by page tables inside it:
 *
 *   0x000000  page tables, the program, the parameter block
 *   0x200000  the device buffer (dev_pages pages)
 *   then      the working set (ws_pages pages, 2 MiB aligned)
 *
 * The program: fill the working set from a xorshift64 generator seeded
 * with @seed, then run @phases phases.  Phases in @write_mask are write-heavy
 * (@write_words random words of every working-set page are changed and
 * summed); the others are read-mostly (@read_passes passes reading one
 * word of every page, writing one page in @read_stride).  After each
 * phase the guest rings the device's doorbell (an MMIO store: one exit)
 * with the phase number + 1, spins reading RAM until the device says it is
 * done, and folds the device buffer into its sum.  At the end it stores
 * the sum in the parameter block and exits through another MMIO store.
 * The same parameters give the same result and the same final RAM, on
 * any VM, migrated or not.
 *
 * The device writes its whole buffer for each request (a pattern fixed by
 * seed and request number), then the completion word.  Its state is two
 * numbers, the last request rung and the last completed, which migrate
 * with the vCPU.
 */
#ifndef PMTRACK_SUPPORT_KVMGUEST_H
#define PMTRACK_SUPPORT_KVMGUEST_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define KG_DEV_BASE 0x200000ull

struct kg_params {
	uint64_t ws_pages;    /* working set, pages (> 0) */
	uint64_t seed;	      /* any; 0 is replaced by a constant */
	uint64_t phases;      /* > 0 */
	uint64_t write_words; /* per page per write-heavy phase (> 0) */
	uint64_t read_passes; /* per read-mostly phase (> 0) */
	uint64_t read_stride; /* one page in this many written on a read pass */
	uint64_t dev_pages;   /* device buffer, pages (1 .. 512) */
	/* bit k (mod 64) set: phase k is write-heavy; 0 = even phases */
	uint64_t write_mask;
};

/* the RAM these parameters need, bytes */
uint64_t kg_ram_needed(const struct kg_params *p);

/* the vCPU and device state that migrates */
struct kg_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	uint64_t dev_rung, dev_done;
};

struct kg {
	int kvm, vm, vcpu, stats;
	struct kvm_run *run;
	size_t run_len;
	uint8_t *ram;
	uint64_t ram_len;

	/* the vCPU thread */
	pthread_t thread;
	int started;
	/* the device thread */
	pthread_t dev_thread;
	int dev_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop_req; /* pause the vCPU */
	int paused;   /* the vCPU is paused (or has finished) */
	int finished; /* the guest stored its result */
	int failed;   /* an unexpected exit: error holds why */
	int quit;
	uint64_t dev_rung, dev_done;
	/* serve no request from this one on (0 = serve all): kg_hold() */
	uint64_t dev_hold;
	int dev_frozen, dev_busy;
	uint64_t exits;
	/* optional, set before kg_start(): the device marks each guest page
	 * it wrote here (bit = guest page number), after writing it, the way
	 * QEMU keeps a VMM dirty bitmap beside KVM's dirty log */
	uint64_t *dev_bitmap;
	char error[160];
};

/*
 * Create the VM over @ram (@ram_len bytes, page-aligned, a multiple of
 * 2 MiB, 6 MiB .. 62 GiB) and its vCPU.  0, or -1 with g->error set
 * (-2 when /dev/kvm is missing or refuses us: skip, not fail).
 */
int kg_open(struct kg *g, void *ram, uint64_t ram_len);
/* Write the page tables, the program and @p into RAM; set the vCPU to
 * start it.  0 or -1 (g->error). */
int kg_load(struct kg *g, const struct kg_params *p);
/* Start the vCPU and device threads (state from kg_load() or
 * kg_set_state()).  0 or -1. */
int kg_start(struct kg *g);
/* Pause the vCPU at an instruction boundary and freeze the device after
 * the request it is serving; kg_resume() undoes both. */
int kg_pause(struct kg *g);
void kg_resume(struct kg *g);
/* Serve no device request from @id on (0: serve all).  A guest that
 * rings for request @id then spins, reading RAM only, until released. */
void kg_hold(struct kg *g, uint64_t id);
/* Wait until the guest rang for request @id: 0, or -1 if it finished or
 * failed first. */
int kg_wait_rung(struct kg *g, uint64_t id);
/* 1 once the guest finished or failed, else 0; does not wait. */
int kg_done(struct kg *g);
/* Wait until the guest finished (0) or failed (-1). */
int kg_wait(struct kg *g);
/* The state of a paused guest, and setting it before kg_start(). */
int kg_get_state(struct kg *g, struct kg_state *s);
int kg_set_state(struct kg *g, const struct kg_state *s);
/* Stop the threads (a running guest is paused first) and close the VM;
 * RAM stays the caller's. */
void kg_close(struct kg *g);

/*
 * KVM's own dirty log on guest RAM (KVM_MEM_LOG_DIRTY_PAGES): turn it on
 * (0 or -1), and get-and-reset it into @bitmap (one bit per guest page,
 * ram_len / 4096 bits, zeroed by KVM where nothing was written; 0 or -1).
 * It sees the guest's writes only, never the VMM's (the device's).
 */
int kg_dirty_log_start(struct kg *g);
int kg_dirty_log_get(struct kg *g, uint64_t *bitmap);

/* the parameter block, as the guest sees it */
uint64_t kg_result(const struct kg *g);
uint64_t kg_phases_done(const struct kg *g);

/*
 * A vCPU statistic from KVM_GET_STATS_FD ("pf_fixed", "insn_emulation",
 * "mmio_exits"...): 0, or -1 if the kernel has no such counter.
 */
int kg_stat(const struct kg *g, const char *name, uint64_t *val);

#endif /* PMTRACK_SUPPORT_KVMGUEST_H */

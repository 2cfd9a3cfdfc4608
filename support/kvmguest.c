// SPDX-License-Identifier: MIT
/*
 * The minimal KVM virtual machine of kvmguest.h: page tables, a ring-3
 * 64-bit guest program, a vCPU thread and a device thread.
 */
#define _GNU_SOURCE
#include "kvmguest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096ull
#define HUGE (2ull << 20)
#define GIB (1ull << 30)
/* Without KVM_SET_CPUID2 the guest has 36 physical address bits: RAM and
 * the device registers stay below 64 GiB */
#define RAM_MAX (62 * GIB)

/* the first 2 MiB of guest RAM */
#define PML4 0x1000ull
#define PDPT 0x2000ull
#define PD_MMIO 0x3000ull
#define PD_RAM 0x4000ull  /* one per GiB of RAM, up to 0x44000 */
#define PARAMS 0x60000ull /* the parameter block */
#define CODE 0x70000ull	  /* the program */
#define WS_BASE 0x400000ull
/* the device registers: a 2 MiB page with no memory slot, so every store
 * there exits to the VMM as KVM_EXIT_MMIO */
#define MMIO (63 * GIB)
#define MMIO_DOORBELL (MMIO + 0)
#define MMIO_DONE (MMIO + 8)

/* the parameter block, in 64-bit words */
enum {
	P_WS_BASE,
	P_WS_PAGES,
	P_SEED,
	P_PHASES,
	P_WRITE_WORDS,
	P_READ_PASSES,
	P_READ_STRIDE,
	P_DEV_BASE,
	P_DEV_PAGES,
	P_MMIO,
	P_RESULT,
	P_PHASES_DONE,
	P_DEV_DONE,
	P_FINISHED,
	P_WRITE_MASK,
};

/* page-table entry bits: present, writable, user, page size */
#define PTE_P 0x1ull
#define PTE_W 0x2ull
#define PTE_U 0x4ull
#define PTE_PS 0x80ull

extern const unsigned char kg_guest_start[], kg_guest_end[];

/*
 * The guest program, position-independent 64-bit code using only general
 * registers:
 *   r15 the parameter block, r14 the xorshift64 state, r13 the sum,
 *   r12 the phase, rbx the page, rcx/rdx/r8-r10 counters and scratch.
 * The register offsets below are the P_* indices times 8.
 */
__asm__(".pushsection .rodata.kg_guest, \"a\"\n"
	".globl kg_guest_start\n"
	".hidden kg_guest_start\n"
	".globl kg_guest_end\n"
	".hidden kg_guest_end\n"
	".macro kg_xs\n"
	"	mov %r14, %r8\n"
	"	shl $13, %r8\n"
	"	xor %r8, %r14\n"
	"	mov %r14, %r8\n"
	"	shr $7, %r8\n"
	"	xor %r8, %r14\n"
	"	mov %r14, %r8\n"
	"	shl $17, %r8\n"
	"	xor %r8, %r14\n"
	".endm\n"
	"kg_guest_start:\n"
	"	mov $0x60000, %r15\n"
	"	mov 16(%r15), %r14\n"
	"	xor %r13, %r13\n"
	/* fill: one word of every page */
	"	mov 0(%r15), %rbx\n"
	"	mov 8(%r15), %rcx\n"
	"1:	kg_xs\n"
	"	mov %r14, (%rbx)\n"
	"	add $4096, %rbx\n"
	"	dec %rcx\n"
	"	jnz 1b\n"
	"	xor %r12, %r12\n"
	/* the phases */
	"2:	cmp 24(%r15), %r12\n"
	"	jae 9f\n"
	"	mov 112(%r15), %r8\n"
	"	bt %r12, %r8\n"
	"	jnc 4f\n"
	/* write-heavy: write_words random words of every page */
	"	mov 0(%r15), %rbx\n"
	"	mov 8(%r15), %rcx\n"
	"3:	mov 32(%r15), %r9\n"
	"31:	kg_xs\n"
	"	mov %r14, %r8\n"
	"	and $511, %r8\n"
	"	xor %r14, (%rbx,%r8,8)\n"
	"	add (%rbx,%r8,8), %r13\n"
	"	dec %r9\n"
	"	jnz 31b\n"
	"	add $4096, %rbx\n"
	"	dec %rcx\n"
	"	jnz 3b\n"
	"	jmp 6f\n"
	/* read-mostly: read_passes passes, one word read per page, one
	 * page in read_stride written */
	"4:	mov 40(%r15), %r10\n"
	"41:	mov 0(%r15), %rbx\n"
	"	mov 8(%r15), %rcx\n"
	"	mov 48(%r15), %rdx\n"
	"42:	mov %r13, %r9\n"
	"	xor %rcx, %r9\n"
	"	and $511, %r9\n"
	"	add (%rbx,%r9,8), %r13\n"
	"	rol $5, %r13\n"
	"	dec %rdx\n"
	"	jnz 43f\n"
	"	mov 48(%r15), %rdx\n"
	"	kg_xs\n"
	"	mov %r14, (%rbx,%r9,8)\n"
	"43:	add $4096, %rbx\n"
	"	dec %rcx\n"
	"	jnz 42b\n"
	"	dec %r10\n"
	"	jnz 41b\n"
	/* ring the device with the phase number + 1, wait for it */
	"6:	lea 1(%r12), %r8\n"
	"	mov 72(%r15), %r9\n"
	"	mov %r8, (%r9)\n"
	"7:	pause\n"
	"	cmp 96(%r15), %r8\n"
	"	jne 7b\n"
	/* fold the device buffer into the sum */
	"	mov 56(%r15), %rbx\n"
	"	mov 64(%r15), %rcx\n"
	"8:	add (%rbx), %r13\n"
	"	rol $3, %r13\n"
	"	add 4088(%rbx), %r13\n"
	"	add $4096, %rbx\n"
	"	dec %rcx\n"
	"	jnz 8b\n"
	"	inc %r12\n"
	"	mov %r12, 88(%r15)\n"
	"	jmp 2b\n"
	/* the result, then the done register for ever */
	"9:	mov %r13, 80(%r15)\n"
	"	movq $1, 104(%r15)\n"
	"	mov 72(%r15), %r9\n"
	"10:	movq $0, 8(%r9)\n"
	"	jmp 10b\n"
	"kg_guest_end:\n"
	".purgem kg_xs\n"
	".popsection\n");

static void set_error(struct kg *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_error(struct kg *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->error, sizeof(g->error), fmt, ap);
	va_end(ap);
}

static uint64_t *params(const struct kg *g)
{
	return (uint64_t *)(g->ram + PARAMS);
}

uint64_t kg_ram_needed(const struct kg_params *p)
{
	uint64_t end = WS_BASE + p->ws_pages * PG;

	return (end + HUGE - 1) / HUGE * HUGE;
}

static int set_slot(struct kg *g, uint32_t flags);

static void on_kick(int sig)
{
	(void)sig;
}

int kg_open(struct kg *g, void *ram, uint64_t ram_len)
{
	struct sigaction sa = { .sa_handler = on_kick };
	int n;

	memset(g, 0, sizeof(*g));
	g->kvm = g->vm = g->vcpu = g->stats = -1;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	if (ram_len < WS_BASE + HUGE || ram_len % HUGE || ram_len > RAM_MAX ||
	    (uintptr_t)ram % PG) {
		set_error(g, "guest RAM must be 6 MiB .. 62 GiB, a multiple of "
			     "2 MiB and page-aligned");
		return -1;
	}
	g->ram = ram;
	g->ram_len = ram_len;
	g->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (g->kvm < 0) {
		set_error(g, "/dev/kvm: %s", strerror(errno));
		return -2;
	}
	if (ioctl(g->kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		set_error(g, "/dev/kvm: not KVM API version %d",
			  KVM_API_VERSION);
		return -2;
	}
	g->vm = ioctl(g->kvm, KVM_CREATE_VM, 0);
	if (g->vm < 0) {
		set_error(g, "KVM_CREATE_VM: %s", strerror(errno));
		return -2;
	}
	if (set_slot(g, 0))
		return -1;
	g->vcpu = ioctl(g->vm, KVM_CREATE_VCPU, 0);
	if (g->vcpu < 0) {
		set_error(g, "KVM_CREATE_VCPU: %s", strerror(errno));
		return -2;
	}
	n = ioctl(g->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (n <= 0) {
		set_error(g, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -1;
	}
	g->run_len = (size_t)n;
	g->run = mmap(NULL, g->run_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		      g->vcpu, 0);
	if (g->run == MAP_FAILED) {
		g->run = NULL;
		set_error(g, "mmap(kvm_run): %s", strerror(errno));
		return -1;
	}
	g->stats = ioctl(g->vcpu, KVM_GET_STATS_FD, 0);
	/* the kick that interrupts KVM_RUN: a handler, never SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	return 0;
}

static void page_tables(struct kg *g)
{
	uint64_t *pml4 = (uint64_t *)(g->ram + PML4);
	uint64_t *pdpt = (uint64_t *)(g->ram + PDPT);
	uint64_t *pdm = (uint64_t *)(g->ram + PD_MMIO);
	uint64_t gib = (g->ram_len + GIB - 1) / GIB;
	uint64_t flags = PTE_P | PTE_W | PTE_U;

	memset(g->ram, 0, WS_BASE);
	pml4[0] = PDPT | flags;
	for (uint64_t i = 0; i < gib; i++) {
		uint64_t *pd = (uint64_t *)(g->ram + PD_RAM + i * PG);

		pdpt[i] = (PD_RAM + i * PG) | flags;
		for (uint64_t j = 0; j < 512; j++) {
			uint64_t gpa = i * GIB + j * HUGE;

			if (gpa < g->ram_len)
				pd[j] = gpa | flags | PTE_PS;
		}
	}
	pdpt[MMIO / GIB] = PD_MMIO | flags;
	pdm[0] = MMIO | flags | PTE_PS;
}

/* ring 3, 64-bit, flat; paging with PAE and long mode */
static int long_mode(struct kg *g, uint64_t rip)
{
	struct kvm_segment code = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = 0x33,
		.type = 11,
		.present = 1,
		.dpl = 3,
		.s = 1,
		.l = 1,
		.g = 1,
	};
	struct kvm_segment data = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = 0x2b,
		.type = 3,
		.present = 1,
		.dpl = 3,
		.db = 1,
		.s = 1,
		.g = 1,
	};
	struct kvm_regs regs = { .rip = rip, .rflags = 0x2 };
	struct kvm_sregs s;

	if (ioctl(g->vcpu, KVM_GET_SREGS, &s)) {
		set_error(g, "KVM_GET_SREGS: %s", strerror(errno));
		return -1;
	}
	s.cr3 = PML4;
	s.cr4 = 0x20 | 0x200 | 0x400; /* PAE, OSFXSR, OSXMMEXCPT */
	s.cr0 = 0x80000000 | 0x20 | 0x10 | 0x2 | 0x1; /* PG NE ET MP PE */
	s.efer = 0x500;				      /* LME, LMA */
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	if (ioctl(g->vcpu, KVM_SET_SREGS, &s) ||
	    ioctl(g->vcpu, KVM_SET_REGS, &regs)) {
		set_error(g, "setting the vCPU to long mode: %s",
			  strerror(errno));
		return -1;
	}
	return 0;
}

int kg_load(struct kg *g, const struct kg_params *p)
{
	size_t code = (size_t)(kg_guest_end - kg_guest_start);
	uint64_t *pb;

	if (!p->ws_pages || !p->phases || !p->write_words || !p->read_passes ||
	    !p->read_stride || !p->dev_pages || p->dev_pages > 512 ||
	    kg_ram_needed(p) > g->ram_len) {
		set_error(g,
			  "bad guest parameters or too little RAM (%llu "
			  "MiB needed)",
			  (unsigned long long)(kg_ram_needed(p) >> 20));
		return -1;
	}
	page_tables(g);
	memcpy(g->ram + CODE, kg_guest_start, code);
	pb = params(g);
	pb[P_WS_BASE] = WS_BASE;
	pb[P_WS_PAGES] = p->ws_pages;
	pb[P_SEED] = p->seed ? p->seed : 0x9e3779b97f4a7c15ull;
	pb[P_PHASES] = p->phases;
	pb[P_WRITE_WORDS] = p->write_words;
	pb[P_READ_PASSES] = p->read_passes;
	pb[P_READ_STRIDE] = p->read_stride;
	pb[P_DEV_BASE] = KG_DEV_BASE;
	pb[P_DEV_PAGES] = p->dev_pages;
	pb[P_MMIO] = MMIO;
	pb[P_WRITE_MASK] =
		p->write_mask ? p->write_mask : 0x5555555555555555ull;
	return long_mode(g, CODE);
}

uint64_t kg_result(const struct kg *g)
{
	return __atomic_load_n(&params(g)[P_RESULT], __ATOMIC_ACQUIRE);
}

uint64_t kg_phases_done(const struct kg *g)
{
	return __atomic_load_n(&params(g)[P_PHASES_DONE], __ATOMIC_ACQUIRE);
}

/* ---- the device -------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* request @id: the whole buffer, then the completion word */
static void dev_serve(struct kg *g, uint64_t id)
{
	uint64_t *pb = params(g);
	uint64_t pages = pb[P_DEV_PAGES];
	uint64_t *buf = (uint64_t *)(g->ram + KG_DEV_BASE);

	for (uint64_t pg = 0; pg < pages; pg++) {
		uint64_t gfn = KG_DEV_BASE / PG + pg;

		for (uint64_t i = pg * 512; i < (pg + 1) * 512; i++)
			buf[i] = mix(pb[P_SEED] ^ (id << 40) ^ i);
		if (g->dev_bitmap)
			__atomic_fetch_or(&g->dev_bitmap[gfn / 64],
					  1ull << (gfn % 64), __ATOMIC_RELEASE);
	}
	__atomic_store_n(&pb[P_DEV_DONE], id, __ATOMIC_RELEASE);
}

static void *dev_main(void *arg)
{
	struct kg *g = arg;

	pthread_mutex_lock(&g->lock);
	for (;;) {
		uint64_t id = g->dev_done + 1;

		if (g->quit)
			break;
		if (g->dev_frozen || g->dev_rung < id ||
		    (g->dev_hold && id >= g->dev_hold)) {
			pthread_cond_wait(&g->cond, &g->lock);
			continue;
		}
		g->dev_busy = 1;
		pthread_mutex_unlock(&g->lock);
		dev_serve(g, id);
		pthread_mutex_lock(&g->lock);
		g->dev_busy = 0;
		g->dev_done = id;
		pthread_cond_broadcast(&g->cond);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

/* ---- the vCPU ---------------------------------------------------------- */

/* an MMIO exit, with g->lock held: 0 to go on, 1 when done, -1 */
static int on_mmio(struct kg *g)
{
	struct kvm_run *r = g->run;
	uint64_t v = 0;

	if (!r->mmio.is_write || r->mmio.len != 8) {
		set_error(g, "guest: %u-byte MMIO %s at %#llx", r->mmio.len,
			  r->mmio.is_write ? "write" : "read",
			  (unsigned long long)r->mmio.phys_addr);
		return -1;
	}
	memcpy(&v, r->mmio.data, sizeof(v));
	if (r->mmio.phys_addr == MMIO_DOORBELL) {
		g->dev_rung = v;
		pthread_cond_broadcast(&g->cond);
		return 0;
	}
	if (r->mmio.phys_addr == MMIO_DONE)
		return 1;
	set_error(g, "guest: MMIO write to %#llx",
		  (unsigned long long)r->mmio.phys_addr);
	return -1;
}

static void *vcpu_main(void *arg)
{
	struct kg *g = arg;
	int pending = 0; /* an MMIO exit KVM_RUN has not completed yet */
	int r;

	pthread_mutex_lock(&g->lock);
	for (;;) {
		/* pause only where the vCPU state is whole: KVM finishes an
		 * MMIO instruction in the next KVM_RUN, which returns at once
		 * (EINTR) with immediate_exit set */
		while (g->stop_req && !pending && !g->quit) {
			g->paused = 1;
			pthread_cond_broadcast(&g->cond);
			pthread_cond_wait(&g->cond, &g->lock);
		}
		g->paused = 0;
		if (g->quit)
			break;
		pthread_mutex_unlock(&g->lock);
		r = ioctl(g->vcpu, KVM_RUN, 0);
		pthread_mutex_lock(&g->lock);
		pending = 0;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			set_error(g, "KVM_RUN: %s", strerror(errno));
			g->failed = 1;
			break;
		}
		g->exits++;
		if (g->run->exit_reason == KVM_EXIT_INTR)
			continue;
		if (g->run->exit_reason != KVM_EXIT_MMIO) {
			set_error(g, "guest: unexpected exit, reason %u",
				  g->run->exit_reason);
			g->failed = 1;
			break;
		}
		r = on_mmio(g);
		if (r < 0) {
			g->failed = 1;
			break;
		}
		if (r > 0) {
			g->finished = 1;
			break;
		}
		pending = 1;
	}
	g->paused = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int kg_start(struct kg *g)
{
	int e;

	e = pthread_create(&g->dev_thread, NULL, dev_main, g);
	if (e) {
		set_error(g, "pthread_create: %s", strerror(e));
		return -1;
	}
	g->dev_started = 1;
	e = pthread_create(&g->thread, NULL, vcpu_main, g);
	if (e) {
		set_error(g, "pthread_create: %s", strerror(e));
		return -1;
	}
	g->started = 1;
	return 0;
}

int kg_pause(struct kg *g)
{
	pthread_mutex_lock(&g->lock);
	g->stop_req = 1;
	g->run->immediate_exit = 1;
	if (g->started && !g->paused)
		pthread_kill(g->thread, SIGUSR1);
	while (g->started && !g->paused)
		pthread_cond_wait(&g->cond, &g->lock);
	/* the device finishes the request it is serving, then waits */
	g->dev_frozen = 1;
	while (g->dev_busy)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return g->failed ? -1 : 0;
}

void kg_resume(struct kg *g)
{
	pthread_mutex_lock(&g->lock);
	g->stop_req = 0;
	g->dev_frozen = 0;
	g->run->immediate_exit = 0;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void kg_hold(struct kg *g, uint64_t id)
{
	pthread_mutex_lock(&g->lock);
	g->dev_hold = id;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

int kg_wait_rung(struct kg *g, uint64_t id)
{
	pthread_mutex_lock(&g->lock);
	while (g->dev_rung < id && !g->finished && !g->failed)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return g->dev_rung >= id ? 0 : -1;
}

int kg_done(struct kg *g)
{
	int done;

	pthread_mutex_lock(&g->lock);
	done = g->finished || g->failed;
	pthread_mutex_unlock(&g->lock);
	return done;
}

int kg_wait(struct kg *g)
{
	pthread_mutex_lock(&g->lock);
	while (!g->finished && !g->failed)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return g->finished ? 0 : -1;
}

int kg_get_state(struct kg *g, struct kg_state *s)
{
	memset(s, 0, sizeof(*s));
	if (ioctl(g->vcpu, KVM_GET_REGS, &s->regs) ||
	    ioctl(g->vcpu, KVM_GET_SREGS, &s->sregs) ||
	    ioctl(g->vcpu, KVM_GET_XSAVE, &s->xsave)) {
		set_error(g, "reading the vCPU state: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&g->lock);
	s->dev_rung = g->dev_rung;
	s->dev_done = g->dev_done;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int kg_set_state(struct kg *g, const struct kg_state *s)
{
	if (ioctl(g->vcpu, KVM_SET_SREGS, &s->sregs) ||
	    ioctl(g->vcpu, KVM_SET_REGS, &s->regs) ||
	    ioctl(g->vcpu, KVM_SET_XSAVE, &s->xsave)) {
		set_error(g, "setting the vCPU state: %s", strerror(errno));
		return -1;
	}
	g->dev_rung = s->dev_rung;
	g->dev_done = s->dev_done;
	return 0;
}

void kg_close(struct kg *g)
{
	pthread_mutex_lock(&g->lock);
	g->quit = 1;
	if (g->run)
		g->run->immediate_exit = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	if (g->started) {
		pthread_kill(g->thread, SIGUSR1);
		pthread_join(g->thread, NULL);
	}
	if (g->dev_started)
		pthread_join(g->dev_thread, NULL);
	if (g->run)
		munmap(g->run, g->run_len);
	if (g->stats >= 0)
		close(g->stats);
	if (g->vcpu >= 0)
		close(g->vcpu);
	if (g->vm >= 0)
		close(g->vm);
	if (g->kvm >= 0)
		close(g->kvm);
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
	g->run = NULL;
	g->stats = g->vcpu = g->vm = g->kvm = -1;
}

static int set_slot(struct kg *g, uint32_t flags)
{
	struct kvm_userspace_memory_region slot = {
		.slot = 0,
		.flags = flags,
		.guest_phys_addr = 0,
		.memory_size = g->ram_len,
		.userspace_addr = (uintptr_t)g->ram,
	};

	if (ioctl(g->vm, KVM_SET_USER_MEMORY_REGION, &slot)) {
		set_error(g, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int kg_dirty_log_start(struct kg *g)
{
	return set_slot(g, KVM_MEM_LOG_DIRTY_PAGES);
}

int kg_dirty_log_get(struct kg *g, uint64_t *bitmap)
{
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };

	if (ioctl(g->vm, KVM_GET_DIRTY_LOG, &log)) {
		set_error(g, "KVM_GET_DIRTY_LOG: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int kg_stat(const struct kg *g, const char *name, uint64_t *val)
{
	struct kvm_stats_header h;
	size_t dsz, total;
	char *d;
	int ret = -1;

	if (g->stats < 0 || pread(g->stats, &h, sizeof(h), 0) != sizeof(h))
		return -1;
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	total = dsz * h.num_desc;
	d = malloc(total);
	if (!d)
		return -1;
	if (pread(g->stats, d, total, h.desc_offset) != (ssize_t)total)
		goto out;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *x = (void *)(d + i * dsz);

		if (strncmp(x->name, name, h.name_size))
			continue;
		if (pread(g->stats, val, sizeof(*val),
			  h.data_offset + x->offset) == sizeof(*val))
			ret = 0;
		break;
	}
out:
	free(d);
	return ret;
}

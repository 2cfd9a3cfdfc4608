/* SPDX-License-Identifier: MIT */
/*
 * Running one system call inside another process (inject.c), so that a
 * tracker can own a userfaultfd of that process's memory, and what each
 * architecture provides for it (inject_<arch>.c).
 *
 * The target's threads are stopped with PTRACE_SEIZE + PTRACE_INTERRUPT
 * (no signal the target could see), one thread is pointed at a system-call
 * instruction of its vDSO with the call's arguments in its registers and
 * single-stepped, and everything is put back as it was.
 */
#ifndef PMT_INJECT_H
#define PMT_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base.h"

/* --- per architecture (inject_<arch>.c) -------------------------------- */

/*
 * What an architecture provides.  pmt_arch_regs is opaque here; the arch
 * file defines its size.  Another architecture needs: the bytes of its
 * system-call instruction (searched for in the vDSO; the program counter
 * is left after it), reading and writing the general registers with
 * PTRACE_GETREGSET / PTRACE_SETREGSET (NT_PRSTATUS), putting a call's
 * number and six arguments where its system-call ABI wants them and the
 * program counter on the instruction, cancelling any restart of an
 * interrupted system call for that step (x86_64: orig_rax = -1; arm64 has
 * no such register and needs NT_ARM_SYSTEM_CALL set to -1), and reading
 * the result.  PMT_ARCH_INJECT is 0 where none of this exists: remote
 * trackers then fall back to soft-dirty.
 */
struct pmt_arch_regs;
PMT_HIDDEN extern const int pmt_arch_inject;
PMT_HIDDEN extern const size_t pmt_arch_regs_size;
PMT_HIDDEN extern const unsigned char pmt_arch_syscall_insn[];
PMT_HIDDEN extern const size_t pmt_arch_syscall_insn_len;
PMT_HIDDEN int pmt_arch_get_regs(pid_t tid, struct pmt_arch_regs *r);
PMT_HIDDEN int pmt_arch_set_regs(pid_t tid, const struct pmt_arch_regs *r);
/* set up @r to run syscall @nr(@a[0..5]) at the instruction at @pc */
PMT_HIDDEN void pmt_arch_prep_syscall(struct pmt_arch_regs *r, uintptr_t pc,
				      long nr, const unsigned long a[6]);
/* the value the system call returned (a -errno on failure) */
PMT_HIDDEN long pmt_arch_syscall_ret(const struct pmt_arch_regs *r);

/* --- stopping a process and calling into it (inject.c) ------------------ */

/*
 * A stopped process: every thread seized and interrupted, by the calling
 * thread (ptrace requests are per tracer thread: the same thread must
 * call pmt_stop_end()).
 */
struct pmt_stopped {
	pid_t pid;
	pid_t *tids;
	int *sigs; /* a signal that arrived meanwhile, given back at detach */
	size_t n, cap;
	pid_t victim; /* the thread the calls run in */
	uintptr_t insn; /* a system-call instruction in the vDSO, 0: none */
	uint64_t t0;	/* when the first thread was asked to stop */
	bool attached_before; /* the caller traced it already (not seized) */
};

/*
 * Stop every thread of @pid.  0; -ESRCH (gone, or a zombie); -EPERM or
 * -EACCES without ptrace access (another uid, yama, a dumpable check);
 * -ENOMEM.  Threads that appear while stopping are stopped too.
 */
PMT_HIDDEN int pmt_stop_begin(struct pmt_stopped *s, pid_t pid);
/* run syscall @nr(@a) in the stopped process; *@ret its result.  0 or
 * -errno (the injection itself failed; the process is left as it was) */
PMT_HIDDEN int pmt_stop_syscall(struct pmt_stopped *s, long nr,
				const unsigned long a[6], long *ret);
/* let every thread go; returns the time the process was stopped */
PMT_HIDDEN uint64_t pmt_stop_end(struct pmt_stopped *s);

/*
 * A userfaultfd of @pid's memory, held by this process only: created in
 * the target (O_CLOEXEC | O_NONBLOCK, with UFFD_USER_MODE_ONLY where the
 * target may not have one without), taken with pidfd_getfd() and closed
 * in the target before it runs again, so nothing the target does (fork,
 * exec, close_range) can hold a reference.  @stop_ns receives how long
 * the target was stopped, @user_only whether UFFD_USER_MODE_ONLY was
 * needed.  The fd, or -errno: -EOPNOTSUPP where the architecture or the
 * kernel cannot (no pidfd_getfd, no vDSO system-call instruction).
 */
/* The work is done by a child process forked for it, which sends the
 * descriptor back and finishes (putting the target back as it was) even
 * if this process dies meanwhile. */
PMT_HIDDEN int pmt_remote_uffd(pid_t pid, uint64_t *stop_ns, bool *user_only);
/* the same in a process whose victim thread the caller holds stopped (a
 * tracer's tracee, s->tids = { victim }): nothing is detached */
PMT_HIDDEN int pmt_stopped_uffd(struct pmt_stopped *s, bool *user_only);

#endif /* PMT_INJECT_H */

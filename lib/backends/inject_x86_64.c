// SPDX-License-Identifier: MIT
/*
 * What x86_64 provides for running a system call in another process
 * (inject.h): "syscall" (0f 05), the number in rax, arguments in rdi, rsi,
 * rdx, r10, r8, r9, the result in rax; orig_rax = -1 keeps the kernel from
 * restarting a system call the thread was interrupted in, for the step.
 */
#include <elf.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include "inject.h"

struct pmt_arch_regs {
	struct user_regs_struct u;
};

const int pmt_arch_inject = 1;
const size_t pmt_arch_regs_size = sizeof(struct pmt_arch_regs);
const unsigned char pmt_arch_syscall_insn[] = { 0x0f, 0x05 };
const size_t pmt_arch_syscall_insn_len = sizeof(pmt_arch_syscall_insn);

int pmt_arch_get_regs(pid_t tid, struct pmt_arch_regs *r)
{
	struct iovec iov = { .iov_base = &r->u, .iov_len = sizeof(r->u) };

	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov))
		return -errno;
	return iov.iov_len == sizeof(r->u) ? 0 : -EIO;
}

int pmt_arch_set_regs(pid_t tid, const struct pmt_arch_regs *r)
{
	struct iovec iov = { .iov_base = (void *)&r->u,
			     .iov_len = sizeof(r->u) };

	return ptrace(PTRACE_SETREGSET, tid, (void *)NT_PRSTATUS, &iov) ? -errno
									 : 0;
}

void pmt_arch_prep_syscall(struct pmt_arch_regs *r, uintptr_t pc, long nr,
			   const unsigned long a[6])
{
	r->u.rip = pc;
	r->u.orig_rax = (unsigned long)-1;
	r->u.rax = (unsigned long)nr;
	r->u.rdi = a[0];
	r->u.rsi = a[1];
	r->u.rdx = a[2];
	r->u.r10 = a[3];
	r->u.r8 = a[4];
	r->u.r9 = a[5];
}

long pmt_arch_syscall_ret(const struct pmt_arch_regs *r)
{
	return (long)r->u.rax;
}

// SPDX-License-Identifier: MIT
/*
 * Architectures without an injection file (see inject.h for what one
 * needs): no remote userfaultfd; trackers of another process use
 * soft-dirty.
 */
#include <errno.h>

#include "inject.h"

struct pmt_arch_regs {
	unsigned long unused;
};

const int pmt_arch_inject = 0;
const size_t pmt_arch_regs_size = sizeof(struct pmt_arch_regs);
const unsigned char pmt_arch_syscall_insn[] = { 0 };
const size_t pmt_arch_syscall_insn_len = 0;

int pmt_arch_get_regs(pid_t tid, struct pmt_arch_regs *r)
{
	(void)tid;
	(void)r;
	return -EOPNOTSUPP;
}

int pmt_arch_set_regs(pid_t tid, const struct pmt_arch_regs *r)
{
	(void)tid;
	(void)r;
	return -EOPNOTSUPP;
}

void pmt_arch_prep_syscall(struct pmt_arch_regs *r, uintptr_t pc, long nr,
			   const unsigned long a[6])
{
	(void)r;
	(void)pc;
	(void)nr;
	(void)a;
}

long pmt_arch_syscall_ret(const struct pmt_arch_regs *r)
{
	(void)r;
	return -EOPNOTSUPP;
}

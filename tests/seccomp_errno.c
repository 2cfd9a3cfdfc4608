// SPDX-License-Identifier: MIT
/*
 * Run a program under a seccomp filter that makes some system calls fail
 * with ENOSYS, as a sandbox that forbids them would (cli_probe.sh: what
 * pmtrack probe says then).
 *   seccomp_errno SYSCALL... -- PROGRAM [ARG...]
 * SYSCALL: userfaultfd, ptrace, cachestat, pidfd_getfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if defined(__x86_64__)
#define PROBE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PROBE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define PROBE_AUDIT_ARCH AUDIT_ARCH_RISCV64
#else
#error "seccomp_errno: add this architecture's AUDIT_ARCH_*"
#endif

static const struct {
	const char *name;
	long nr;
} calls[] = {
	{ "userfaultfd", SYS_userfaultfd },
	{ "ptrace", SYS_ptrace },
	{ "cachestat", 451 },
	{ "pidfd_getfd", 438 },
};
#define NCALLS (sizeof(calls) / sizeof(*calls))

int main(int argc, char **argv)
{
	/* arch check, load the number, then a test per call, allow */
	struct sock_filter f[4 + 2 * NCALLS + 1];
	struct sock_fprog prog = { .filter = f };
	unsigned short n = 0;
	int i = 1;

	f[n++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	/* another architecture's calls: allowed (not ours to judge) */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
					      PROBE_AUDIT_ARCH, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_ALLOW);
	f[n++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (; i < argc && strcmp(argv[i], "--"); i++) {
		size_t c = 0;

		while (c < NCALLS && strcmp(calls[c].name, argv[i]))
			c++;
		if (c == NCALLS || n + 3 > (int)(sizeof(f) / sizeof(*f))) {
			fprintf(stderr,
				"seccomp_errno: unknown or repeated "
				"system call '%s'\n",
				argv[i]);
			return 2;
		}
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      (unsigned int)calls[c].nr,
						      0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(
			BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_ALLOW);
	if (i + 1 >= argc) {
		fprintf(stderr, "usage: seccomp_errno SYSCALL... -- PROGRAM "
				"[ARG...]\n");
		return 2;
	}
	prog.len = n;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
		perror("seccomp_errno: seccomp");
		return 1;
	}
	execvp(argv[i + 1], argv + i + 1);
	perror(argv[i + 1]);
	return 127;
}

// SPDX-License-Identifier: MIT
/*
 * The struct-size promises of <pmtrack/common.h>, for every function that
 * fills a caller's statistics struct: a caller compiled against a newer
 * header (a larger struct) gets the fields both know and the rest zeroed; a
 * caller with an older header (a smaller struct) gets no byte written past
 * its sz; an sz below a size_t is -EINVAL and writes nothing.  And
 * pmtrack_digest()'s contract.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pmtrack/migrate.h>
#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>
#include <pmtrack/process.h>
#include <pmtrack/stream.h>

#include "helpers.h"

#define TAIL 64 /* bytes a "newer header" adds */
#define JUNK 0xa5

/* the objects whose statistics are read */
static struct {
	struct pmtrack *t;
	struct pmtrack_enc *enc;
	struct pmtrack_dec *dec;
	struct pmtrack_xport *x;
	struct pmtrack_rx *rx;
	struct pmtrack_pstate *ps;
	struct pmtrack_proc *proc;
	pid_t child;
	int fds[2];
	void *mem;
	size_t len;
} o;

static int drop_write(void *arg, const struct iovec *iov, int n)
{
	(void)arg;
	(void)iov;
	(void)n;
	return 0;
}

static int get_tracker(void *st)
{
	return pmtrack_get_stats(o.t, st);
}

static int get_enc(void *st)
{
	return pmtrack_enc_get_stats(o.enc, st);
}

static int get_dec(void *st)
{
	return pmtrack_dec_get_stats(o.dec, st);
}

static int get_xport(void *st)
{
	return pmtrack_xport_get_stats(o.x, st);
}

static int get_rx(void *st)
{
	return pmtrack_rx_get_stats(o.rx, st);
}

static int get_pstate(void *st)
{
	return pmtrack_pstate_count(o.ps, (uintptr_t)o.mem,
				    (uintptr_t)o.mem + o.len, PMTRACK_PAGE_ALL,
				    st);
}

static int get_proc(void *st)
{
	return pmtrack_proc_get_stats(o.proc, st);
}

static const struct getter {
	const char *name;
	int (*get)(void *st);
	size_t size; /* of the struct in this header */
} getters[] = {
	{ "pmtrack_get_stats", get_tracker, sizeof(struct pmtrack_stats) },
	{ "pmtrack_enc_get_stats", get_enc, sizeof(struct pmtrack_enc_stats) },
	{ "pmtrack_dec_get_stats", get_dec, sizeof(struct pmtrack_dec_stats) },
	{ "pmtrack_xport_get_stats", get_xport,
	  sizeof(struct pmtrack_xport_stats) },
	{ "pmtrack_rx_get_stats", get_rx, sizeof(struct pmtrack_rx_stats) },
	{ "pmtrack_pstate_count", get_pstate,
	  sizeof(struct pmtrack_page_counts) },
	{ "pmtrack_proc_get_stats", get_proc,
	  sizeof(struct pmtrack_proc_stats) },
};
#define NGETTERS (sizeof(getters) / sizeof(getters[0]))

static void setup(void)
{
	PMTRACK_OPTS(pmtrack_enc_opts, eo, .write = drop_write);
	struct pmtrack_stream_region rg;
	size_t pgsz = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t stream[PMTRACK_STREAM_PREAMBLE_LEN];

	o.len = 4 * pgsz;
	o.mem = mmap(NULL, o.len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(o.mem, MAP_FAILED);
	memset(o.mem, 1, o.len);
	rg = (struct pmtrack_stream_region){ .id = 1, .length = o.len };

	/* AUTO: mprotect at least works everywhere */
	ck_assert_int_eq(pmtrack_new(NULL, &o.t), 0);
	ck_assert_int_eq(pmtrack_watch(o.t, o.mem, o.len), 0);
	((volatile char *)o.mem)[0] = 2;
	ck_assert_int_eq(pmtrack_enc_new(&eo, &rg, 1, &o.enc), 0);
	ck_assert_int_eq(pmtrack_dec_new(NULL, &o.dec), 0);
	/* a few bytes decoded, so that the counters are not all zero */
	memcpy(stream, "\x89PMT\r\n\x1a\n\1\0\0\0\0\0\0\0", sizeof(stream));
	ck_assert_int_eq(pmtrack_dec_feed(o.dec, stream, sizeof(stream)), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, o.fds), 0);
	ck_assert_int_eq(pmtrack_xport_new(o.fds[0], NULL, &o.x), 0);
	ck_assert_int_eq(pmtrack_rx_new(NULL, &o.rx), 0);
	ck_assert_int_eq(pmtrack_pstate_new(NULL, &o.ps), 0);
	/* a process tracker needs another process: a child that waits */
	o.child = fork();
	ck_assert_int_ge(o.child, 0);
	if (!o.child) {
		for (;;)
			pause();
	}
	ck_assert_int_eq(pmtrack_proc_new(o.child, NULL, &o.proc), 0);
}

static void teardown(void)
{
	pmtrack_proc_free(o.proc);
	kill(o.child, SIGKILL);
	waitpid(o.child, NULL, 0);
	pmtrack_pstate_free(o.ps);
	pmtrack_rx_free(o.rx);
	pmtrack_xport_free(o.x);
	close(o.fds[0]);
	close(o.fds[1]);
	pmtrack_dec_free(o.dec);
	pmtrack_enc_free(o.enc);
	pmtrack_free(o.t);
	munmap(o.mem, o.len);
}

/* A newer caller's struct: the known part as for an exact one, tail zero. */
START_TEST(larger_struct_gets_its_tail_zeroed)
{
	const struct getter *g = &getters[_i];
	size_t n = g->size + TAIL;
	unsigned char *exact = malloc(g->size), *big = malloc(n);

	ck_assert(exact && big);
	memset(exact, 0, g->size);
	*(size_t *)exact = g->size;
	ck_assert_msg(!g->get(exact), "%s: exact size", g->name);
	memset(big, JUNK, n);
	*(size_t *)big = n;
	ck_assert_msg(!g->get(big), "%s: larger struct", g->name);
	ck_assert_msg(*(size_t *)big == n, "%s: sz changed", g->name);
	for (size_t i = g->size; i < n; i++)
		ck_assert_msg(!big[i], "%s: byte %zu of a %zu-byte struct is %#x",
			      g->name, i, n, big[i]);
	/* nothing runs in between: the same values */
	ck_assert_msg(!memcmp(big + sizeof(size_t), exact + sizeof(size_t),
			      g->size - sizeof(size_t)),
		      "%s: the known fields differ", g->name);
	free(exact);
	free(big);
}
END_TEST

/* An older caller's struct: nothing written past its sz. */
START_TEST(smaller_struct_gets_no_write_past_its_size)
{
	const struct getter *g = &getters[_i];
	unsigned char *buf = malloc(g->size);

	ck_assert(buf);
	for (size_t sz = sizeof(size_t); sz < g->size; sz += 4) {
		memset(buf, JUNK, g->size);
		*(size_t *)buf = sz;
		ck_assert_msg(!g->get(buf), "%s: sz %zu", g->name, sz);
		ck_assert_msg(*(size_t *)buf == sz, "%s: sz changed", g->name);
		for (size_t i = sz; i < g->size; i++)
			ck_assert_msg(buf[i] == JUNK,
				      "%s: sz %zu, byte %zu written", g->name,
				      sz, i);
	}
	/* below a size_t: -EINVAL, nothing written */
	memset(buf, JUNK, g->size);
	*(size_t *)buf = sizeof(size_t) - 1;
	ck_assert_msg(g->get(buf) == -EINVAL, "%s: tiny sz", g->name);
	for (size_t i = sizeof(size_t); i < g->size; i++)
		ck_assert_msg(buf[i] == JUNK, "%s: tiny sz wrote", g->name);
	ck_assert_msg(g->get(NULL) == -EINVAL, "%s: NULL", g->name);
	free(buf);
}
END_TEST

START_TEST(digest_contract)
{
	static const char a[] = "abc", b[] = "defgh";
	static const char ab[] = "abcdefgh";
	struct iovec two[2] = { { (void *)a, 3 }, { (void *)b, 5 } };
	struct iovec one = { (void *)ab, 8 };
	uint8_t d1[PMTRACK_DIGEST_LEN], d2[PMTRACK_DIGEST_LEN];
	uint8_t e1[PMTRACK_DIGEST_LEN], e2[PMTRACK_DIGEST_LEN];

	/* the digest of the concatenation, however it is cut */
	ck_assert_int_eq(pmtrack_digest(two, 2, d1), 0);
	ck_assert_int_eq(pmtrack_digest(&one, 1, d2), 0);
	ck_assert_mem_eq(d1, d2, sizeof(d1));
	/* no input: NULL with 0 entries is the empty digest */
	ck_assert_int_eq(pmtrack_digest(NULL, 0, e1), 0);
	one.iov_len = 0;
	ck_assert_int_eq(pmtrack_digest(&one, 1, e2), 0);
	ck_assert_mem_eq(e1, e2, sizeof(e1));
	ck_assert_mem_ne(e1, d1, sizeof(e1));
	ck_assert_int_eq(pmtrack_digest(NULL, 1, e1), -EINVAL);
	ck_assert_int_eq(pmtrack_digest(two, 2, NULL), -EINVAL);
}
END_TEST

/* the piecewise digest equals the one-shot digest, however it is cut */
START_TEST(digest_pieces)
{
	static char mem[3 * 4096 + 17];
	uint8_t whole[PMTRACK_DIGEST_LEN], part[PMTRACK_DIGEST_LEN];
	struct iovec iov = { mem, sizeof(mem) };
	struct pmtrack_digest_ctx *d;
	size_t cuts[] = { 1, 7, 4096, 5000, sizeof(mem) };

	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (char)(i * 131 + 7);
	ck_assert_int_eq(pmtrack_digest(&iov, 1, whole), 0);
	for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		ck_assert_int_eq(pmtrack_digest_new(&d), 0);
		for (size_t at = 0; at < sizeof(mem); at += cuts[c]) {
			size_t n = sizeof(mem) - at < cuts[c] ? sizeof(mem) - at
							      : cuts[c];

			ck_assert_int_eq(pmtrack_digest_update(d, mem + at, n),
					 0);
		}
		ck_assert_int_eq(pmtrack_digest_final(d, part), 0);
		ck_assert_mem_eq(part, whole, sizeof(part));
		/* a snapshot: asking again gives the same */
		ck_assert_int_eq(pmtrack_digest_final(d, part), 0);
		ck_assert_mem_eq(part, whole, sizeof(part));
		pmtrack_digest_free(d);
	}
	ck_assert_int_eq(pmtrack_digest_new(NULL), -EINVAL);
	ck_assert_int_eq(pmtrack_digest_new(&d), 0);
	ck_assert_int_eq(pmtrack_digest_update(d, NULL, 1), -EINVAL);
	ck_assert_int_eq(pmtrack_digest_update(d, NULL, 0), 0);
	ck_assert_int_eq(pmtrack_digest_final(d, NULL), -EINVAL);
	pmtrack_digest_free(d);
	pmtrack_digest_free(NULL);
}
END_TEST

/*
 * pmtrack_proc_opts: rearm filled what was its tail padding (the struct
 * ends at its last field now), and a non-zero byte past the struct, a
 * newer caller's field, is refused.  (pmtrack_opts' padding: below.)
 */
START_TEST(opts_padding_is_not_read)
{
	struct {
		struct pmtrack_proc_opts o;
		unsigned char newer[16];
	} big;
	struct pmtrack_proc *p = NULL;
	size_t end = offsetof(struct pmtrack_proc_opts, rearm) +
		     sizeof(big.o.rearm);

	ck_assert_uint_eq(sizeof(big.o), end);
	memset(&big, 0, sizeof(big));
	big.o.sz = sizeof(big.o);
	big.o.rearm = PMTRACK_REARM_WRITTEN;
	ck_assert_int_eq(pmtrack_proc_new(o.child, &big.o, &p), 0);
	pmtrack_proc_free(p);
	big.o.rearm = 3;
	ck_assert_int_eq(pmtrack_proc_new(o.child, &big.o, &p), -EINVAL);
	ck_assert_ptr_null(p);
	big.o.rearm = PMTRACK_REARM_RANGE;
	/* a newer caller's field past our struct, non-zero: refused */
	big.o.sz = sizeof(big);
	big.newer[3] = 1;
	ck_assert_int_eq(pmtrack_proc_new(o.child, &big.o, &p), -EINVAL);
	ck_assert_ptr_null(p);
}
END_TEST

/* pmtrack_opts got tail padding with rearm (an int after pid): not read */
START_TEST(tracker_opts_padding_is_not_read)
{
	struct {
		struct pmtrack_opts o;
		unsigned char newer[16];
	} big;
	struct pmtrack *t = NULL;
	size_t end = offsetof(struct pmtrack_opts, rearm) + sizeof(big.o.rearm);

	ck_assert_uint_gt(sizeof(big.o), end);
	memset(&big, 0, sizeof(big));
	memset((char *)&big.o + end, JUNK, sizeof(big.o) - end);
	big.o.sz = sizeof(big.o);
	big.o.rearm = PMTRACK_REARM_WRITTEN;
	ck_assert_int_eq(pmtrack_new(&big.o, &t), 0);
	ck_assert_int_eq(pmtrack_rearm(t), PMTRACK_REARM_WRITTEN);
	pmtrack_free(t);
	big.o.sz = sizeof(big);
	big.newer[0] = 1;
	ck_assert_int_eq(pmtrack_new(&big.o, &t), -EINVAL);
	ck_assert_ptr_null(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("abi");
	TCase *tc = tcase_create("stats");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, larger_struct_gets_its_tail_zeroed, 0,
			    NGETTERS);
	tcase_add_loop_test(tc, smaller_struct_gets_no_write_past_its_size, 0,
			    NGETTERS);
	tcase_add_test(tc, opts_padding_is_not_read);
	tcase_add_test(tc, tracker_opts_padding_is_not_read);
	suite_add_tcase(s, tc);
	tc = tcase_create("digest");
	tcase_add_test(tc, digest_contract);
	tcase_add_test(tc, digest_pieces);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/*
 * A program built against the *installed* libpmtrack, the way a user would:
 * through pkg-config, through find_package(pmtrack), and statically.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pmtrack/pagestate.h>
#include <pmtrack/pmtrack.h>
#include <pmtrack/stream.h>

/* the stream codec (zstd, xxhash, protobuf-c inside): encode, decode */
struct buf {
	char b[65536];
	size_t len;
};

static int put(void *arg, const struct iovec *iov, int n)
{
	struct buf *o = arg;

	for (int i = 0; i < n; i++) {
		if (o->len + iov[i].iov_len > sizeof(o->b))
			return -1;
		memcpy(o->b + o->len, iov[i].iov_base, iov[i].iov_len);
		o->len += iov[i].iov_len;
	}
	return 0;
}

static int stream_round_trip(void)
{
	static char src[4 * 4096];
	static struct buf out;
	struct pmtrack_stream_region rg = { .id = 1, .length = sizeof(src) };
	PMTRACK_OPTS(pmtrack_enc_opts, eo, .write = put, .write_arg = &out,
		     .page_size = 4096, .level = 1);
	uint64_t dirty = 0xf;
	struct pmtrack_enc_region_round rr = { 0, &dirty, NULL, src };
	struct iovec iov = { src, sizeof(src) };
	uint8_t d[PMTRACK_DIGEST_LEN];
	struct pmtrack_enc *e;
	struct pmtrack_dec *dec;

	memset(src, 'x', sizeof(src));
	if (pmtrack_enc_new(&eo, &rg, 1, &e) ||
	    pmtrack_enc_round(e, 0, &rr, 1) || pmtrack_digest(&iov, 1, d) ||
	    pmtrack_enc_end(e, d))
		return 1;
	pmtrack_enc_free(e);
	if (pmtrack_dec_new(NULL, &dec) ||
	    pmtrack_dec_feed(dec, out.b, out.len) || pmtrack_dec_finish(dec))
		return 1;
	pmtrack_dec_free(dec);
	return 0;
}

int main(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = 4;
	struct pmtrack *t;
	void *pages[4];
	char *b;
	int r;

	printf("consumer: libpmtrack %s (headers %s)\n", pmtrack_version(),
	       PMTRACK_VERSION_STRING);
	if (strcmp(pmtrack_version(), PMTRACK_VERSION_STRING))
		return 1;
	if (stream_round_trip())
		return 1;
	{
		/* the installed page-state API: this process has present pages
		 */
		struct pmtrack_page_counts c = { .sz = sizeof(c) };
		struct pmtrack_pstate *st;

		if (pmtrack_pstate_new(NULL, &st) ||
		    pmtrack_pstate_count(st, 0, UINT64_MAX,
					 PMTRACK_PAGE_PRESENT, &c) ||
		    !c.state[0])
			return 1;
		pmtrack_pstate_free(st);
	}
	r = pmtrack_new(NULL, &t);
	if (r) {
		/* linked and ran: that is what this program checks */
		printf("consumer: no usable backend here (%s)\n", strerror(-r));
		return 0;
	}
	b = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED || pmtrack_watch(t, b, 4 * ps))
		return 1;
	b[2 * ps] = 1;
	r = pmtrack_collect_pages(t, b, 4 * ps, PMTRACK_COLLECT_RESET, pages,
				  &n, NULL);
	if (r || n != 1 || pages[0] != b + 2 * ps)
		return 1;
	pmtrack_free(t);
	printf("consumer: ok\n");
	return 0;
}

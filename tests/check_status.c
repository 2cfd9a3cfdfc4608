// SPDX-License-Identifier: MIT
/*
 * The status line of a live migration round (support/status), as pmtrack
 * send prints it and the migration examples too: a pre-copy round, the
 * stop-and-copy round, a bandwidth and an expected downtime not known yet,
 * sizes in IEC units; and the durations and rates of docs/cli.md.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

#define MIB (1ull << 20)

/* round 0 of README.md's pmtrack send example */
static struct pmtrack_precopy_round round0(void)
{
	struct pmtrack_precopy_round r = {
		.sz = sizeof(r),
		.round = 0,
		.pages = 65536,
		.zero_pages = 16194,
		.bytes = 193 * MIB,
		.duration_ns = 964000000,
		.dirty_pages = 16804,
		.dirty_rate = 17410,
		.bandwidth = 200 * MIB,
		.expected_downtime_ns = 328300000,
		.total_pages = 65536,
		.total_bytes = 193 * MIB + 1000,
		.elapsed_ns = 965500000,
		.remaining_pages = 16804,
		.remaining_bytes = (uint64_t)(65.7 * MIB),
	};
	return r;
}

START_TEST(precopy_round)
{
	struct pmtrack_precopy_round r = round0();
	char buf[PMT_STATUS_LEN];

	pmt_status_line(buf, sizeof(buf), &r);
	ck_assert_str_eq(buf,
			 "round 0: 65536 pages (16194 zero), 193 MiB in "
			 "964.0 ms; remaining 16804 pages (65.7 MiB); "
			 "transferred 193 MiB; dirty rate 17410 pages/s; "
			 "bandwidth 200 MiB/s; expected downtime 328.3 ms; "
			 "total 965.5 ms");
}
END_TEST

START_TEST(final_round)
{
	struct pmtrack_precopy_round r = {
		.sz = sizeof(r),
		.round = 2,
		.final = 1,
		.pages = 6236,
		.zero_pages = 0,
		.bytes = (uint64_t)(24.4 * MIB),
		.duration_ns = 39600000,
		.bandwidth = 201 * MIB,
		/* the final round's is 0, and is printed as "-" anyway */
		.expected_downtime_ns = PMTRACK_PRECOPY_UNKNOWN,
		.total_bytes = 283 * MIB,
		.elapsed_ns = 1333500000,
	};
	char buf[PMT_STATUS_LEN];

	pmt_status_line(buf, sizeof(buf), &r);
	ck_assert_str_eq(buf,
			 "round 2 (stop-and-copy): 6236 pages (0 zero), "
			 "24.4 MiB in 39.6 ms; remaining 0 pages (0 B); "
			 "transferred 283 MiB; dirty rate 0 pages/s; "
			 "bandwidth 201 MiB/s; expected downtime -; "
			 "total 1333.5 ms");
}
END_TEST

START_TEST(unknown_values)
{
	struct pmtrack_precopy_round r = round0();
	char buf[PMT_STATUS_LEN];

	r.bandwidth = 0;
	r.expected_downtime_ns = PMTRACK_PRECOPY_UNKNOWN;
	pmt_status_line(buf, sizeof(buf), &r);
	ck_assert_ptr_nonnull(strstr(buf, "; bandwidth unknown; expected "
					  "downtime unknown; total 965.5 ms"));
	/* nothing dirty: 0, which is known */
	r.expected_downtime_ns = 0;
	pmt_status_line(buf, sizeof(buf), &r);
	ck_assert_ptr_nonnull(strstr(buf, "; expected downtime 0.0 ms;"));
}
END_TEST

START_TEST(iec_sizes)
{
	struct pmtrack_precopy_round r = round0();
	char buf[PMT_STATUS_LEN];

	r.pages = 1;
	r.zero_pages = 1;
	r.bytes = 812;
	r.remaining_bytes = 64 << 10;
	r.total_bytes = 3ull << 39; /* 1.5 TiB */
	r.bandwidth = (5ull << 30) / 2;
	r.duration_ns = 12345000000ull;
	r.elapsed_ns = 3600ull * 1000000000;
	pmt_status_line(buf, sizeof(buf), &r);
	ck_assert_str_eq(buf,
			 "round 0: 1 pages (1 zero), 812 B in 12.3 s; "
			 "remaining 16804 pages (64 KiB); transferred 1.5 TiB; "
			 "dirty rate 17410 pages/s; bandwidth 2.5 GiB/s; "
			 "expected downtime 328.3 ms; total 3600.0 s");
}
END_TEST

START_TEST(cut_to_the_buffer)
{
	struct pmtrack_precopy_round r = round0();
	char buf[12];

	memset(buf, 'x', sizeof(buf));
	pmt_status_line(buf, sizeof(buf), &r);
	ck_assert_str_eq(buf, "round 0: 65");
}
END_TEST

START_TEST(durations_and_rates)
{
	static const struct {
		uint64_t ns;
		const char *s;
	} dur[] = {
		{ 0, "0.0 ms" },
		{ 190200000, "190.2 ms" },
		{ 9999000000ull, "9999.0 ms" },
		{ 10000000000ull, "10.0 s" },
		{ 125250000000ull, "125.2 s" },
	};
	char buf[PMT_UNIT_LEN];

	for (size_t i = 0; i < sizeof(dur) / sizeof(dur[0]); i++)
		ck_assert_str_eq(pmt_fmt_dur(buf, sizeof(buf), dur[i].ns),
				 dur[i].s);
	ck_assert_str_eq(pmt_fmt_rate(buf, sizeof(buf), 291 * MIB),
			 "291 MiB/s");
	ck_assert_str_eq(pmt_fmt_rate(buf, sizeof(buf), 100), "100 B/s");
	ck_assert_str_eq(pmt_fmt_expected(buf, sizeof(buf),
					  PMTRACK_PRECOPY_UNKNOWN),
			 "unknown");
	ck_assert_str_eq(pmt_fmt_expected(buf, sizeof(buf), 21000000),
			 "21.0 ms");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("status");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, precopy_round);
	tcase_add_test(tc, final_round);
	tcase_add_test(tc, unknown_values);
	tcase_add_test(tc, iec_sizes);
	tcase_add_test(tc, cut_to_the_buffer);
	tcase_add_test(tc, durations_and_rates);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

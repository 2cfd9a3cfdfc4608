// SPDX-License-Identifier: MIT
/*
 * The values of docs/cli.md as support/args reads and prints them: sizes
 * with IEC suffixes (K..T alone or as KiB..TiB, powers of 1024, upper case
 * only), numbers whole and in range, and sizes printed in IEC units with
 * three significant digits.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "args.h"

static uint64_t size_of(const char *s, int *rc)
{
	uint64_t v = 0;

	*rc = pmt_parse_u64(s, PMT_NUM_SUFFIX, 0, UINT64_MAX, &v);
	return v;
}

START_TEST(sizes_read)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "64K", 64ull << 10 },
		{ "64KiB", 64ull << 10 },
		{ "256M", 256ull << 20 },
		{ "256MiB", 256ull << 20 },
		{ "1G", 1ull << 30 },
		{ "1GiB", 1ull << 30 },
		{ "3T", 3ull << 40 },
		{ "3TiB", 3ull << 40 },
		{ "16777215T", 16777215ull << 40 },
	};
	static const char *const bad[] = {
		"",    "K",	"64k",	 "64m",	 "64KB", "64MB", "64GB",
		"64Ki", "64KiBs", "64 K", "-1",	 "1.5G", "0x10", "16777216T",
		"18446744073709551616",
	};
	int rc;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = size_of(ok[i].s, &rc);

		ck_assert_msg(rc == 0 && v == ok[i].v, "%s: rc %d, %llu", ok[i].s,
			      rc, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_of(bad[i], &rc);
		ck_assert_msg(rc == -1, "'%s' was accepted", bad[i]);
	}
}
END_TEST

START_TEST(suffix_only_when_asked)
{
	uint64_t v;

	ck_assert_int_eq(pmt_parse_u64("64K", 0, 0, UINT64_MAX, &v), -1);
	ck_assert_int_eq(pmt_parse_u64("64", 0, 0, UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, 64);
	/* the range is checked after the suffix */
	ck_assert_int_eq(pmt_parse_u64("2K", PMT_NUM_SUFFIX, 0, 2047, &v), -1);
	ck_assert_int_eq(pmt_parse_u64("2K", PMT_NUM_SUFFIX, 2048, 2048, &v),
			 0);
}
END_TEST

START_TEST(sizes_printed)
{
	static const struct {
		uint64_t v;
		const char *s;
	} cases[] = {
		{ 0, "0 B" },
		{ 812, "812 B" },
		{ 1023, "1023 B" },
		{ 1024, "1 KiB" },
		{ 1536, "1.5 KiB" },
		{ 64ull << 10, "64 KiB" },
		{ 256ull << 20, "256 MiB" },
		{ 1536ull << 20, "1.5 GiB" },
		{ 10ull << 30, "10 GiB" },
		{ 123456789, "118 MiB" },
		{ 12345678, "11.8 MiB" },
		{ 1234567, "1.18 MiB" },
		/* rounds up into the next unit, not "1024 MiB" */
		{ (1ull << 30) - 1000, "1 GiB" },
		{ 5ull << 40, "5 TiB" },
		{ UINT64_MAX, "16 EiB" },
	};
	char buf[PMT_IEC_LEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_str_eq(pmt_fmt_iec(buf, sizeof(buf), cases[i].v),
				 cases[i].s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("args");
	TCase *tc = tcase_create("args");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, sizes_read);
	tcase_add_test(tc, suffix_only_when_asked);
	tcase_add_test(tc, sizes_printed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

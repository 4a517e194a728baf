// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmigctl's shared helpers: the size parser and formatter, JSON strings.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "vmigctl.h"

TEST(sizes_with_suffixes)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "0", 0 }, { "1", 1 }, { "4096", 4096 }, { "0x1000", 4096 },
		{ "1K", 1024 }, { "1k", 1024 }, { "4KiB", 4096 },
		{ "4kb", 4096 }, { "1M", 1 << 20 }, { "3m", 3 << 20 },
		{ "1G", 1ULL << 30 }, { "2g", 2ULL << 30 },
		{ "1T", 1ULL << 40 }, { "16777215T", 16777215ULL << 40 },
		{ "18446744073709551615", UINT64_MAX },
	};
	unsigned int i;
	uint64_t v;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 12345;
		ASSERT_EQ(0, vmigctl_parse_size(ok[i].s, &v))
			TH_LOG("\"%s\"", ok[i].s);
		EXPECT_EQ(ok[i].v, v) TH_LOG("\"%s\"", ok[i].s);
	}
}

TEST(bad_sizes_are_einval)
{
	static const char *const bad[] = {
		"", " 1", "-1", "+1", "1 ", "K", "1X", "1KK", "1Ki", "1.5M",
		"1MiBs", "0x", "abc",
	};
	unsigned int i;
	uint64_t v = 7;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, vmigctl_parse_size(bad[i], &v))
			TH_LOG("\"%s\"", bad[i]);
	}
	EXPECT_EQ(7U, v);
	EXPECT_EQ(-EINVAL, vmigctl_parse_size(NULL, &v));
}

TEST(oversized_sizes_are_erange)
{
	uint64_t v = 7;

	EXPECT_EQ(-ERANGE, vmigctl_parse_size("18446744073709551616", &v));
	EXPECT_EQ(-ERANGE, vmigctl_parse_size("16777216T", &v));
	EXPECT_EQ(-ERANGE, vmigctl_parse_size("17179869184G", &v));
	EXPECT_EQ(7U, v);
}

TEST(format_size)
{
	char buf[32];

	EXPECT_STREQ("0 B", vmigctl_format_size(0, buf, sizeof(buf)));
	EXPECT_STREQ("1023 B", vmigctl_format_size(1023, buf, sizeof(buf)));
	EXPECT_STREQ("1.00 KiB", vmigctl_format_size(1024, buf, sizeof(buf)));
	EXPECT_STREQ("1.50 MiB",
		     vmigctl_format_size(3 << 19, buf, sizeof(buf)));
	EXPECT_STREQ("16.00 EiB",
		     vmigctl_format_size(UINT64_MAX, buf, sizeof(buf)));
}

TEST(json_strings_are_escaped)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ASSERT_NE(NULL, f);
	vmigctl_json_string(f, "a\"b\\c\nd\x01");
	fputc(' ', f);
	vmigctl_json_string(f, NULL);
	ASSERT_EQ(0, fclose(f));
	EXPECT_STREQ("\"a\\\"b\\\\c\\nd\\u0001\" \"\"", out);
	free(out);
}

TEST(missing_migsim_attr_is_enoent)
{
	char buf[16];

	EXPECT_EQ(-ENOENT, vmigctl_read_migsim_attr(
			"00000000-0000-0000-0000-00000000dead", "checksum",
			buf, sizeof(buf)));
}

TEST_HARNESS_MAIN

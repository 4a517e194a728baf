// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vmig_compat_check(): migration compatibility decided from two device
 * descriptions and the source's parameters, without a migration.
 */
#include <errno.h>
#include <string.h>

#include "kselftest_harness.h"
#include "vmig.h"

/* what vfio-migsim's migration_info says, with 1 MiB chunks by default */
#define INFO_V2 \
	"model vfio-migsim\n" \
	"param format uint allowed=1-2 off=1\n" \
	"param chunk_size uint allowed=4096,65536,1048576 off=1048576\n" \
	"param ext_regs bool allowed=0-1 off=0\n"

/* an older destination: format 1 only, no ext_regs */
#define INFO_V1 \
	"model vfio-migsim\n" \
	"param format uint allowed=1 off=1\n" \
	"param chunk_size uint allowed=4096,65536,1048576 off=1048576\n"

TEST(matching_parameters_migrate)
{
	char why[256] = "";

	EXPECT_EQ(0, vmig_compat_check(INFO_V2,
				       "format=2 chunk_size=65536 ext_regs=1",
				       INFO_V2, why, sizeof(why)));
	EXPECT_STREQ("", why);
}

TEST(value_not_allowed_is_refused)
{
	char why[256] = "";

	EXPECT_EQ(-EMEDIUMTYPE,
		  vmig_compat_check(INFO_V2, "format=2 chunk_size=1048576",
				    INFO_V1, why, sizeof(why)));
	EXPECT_NE(NULL, strstr(why, "format=2"));
	EXPECT_EQ(-EMEDIUMTYPE,
		  vmig_compat_check(INFO_V2, "chunk_size=8192", INFO_V2, why,
				    sizeof(why)));
	EXPECT_NE(NULL, strstr(why, "chunk_size=8192"));
}

TEST(missing_parameter_in_effect_is_refused)
{
	char why[256] = "";

	EXPECT_EQ(-EMEDIUMTYPE,
		  vmig_compat_check(INFO_V2, "format=1 ext_regs=1", INFO_V1,
				    why, sizeof(why)));
	EXPECT_NE(NULL, strstr(why, "no parameter ext_regs"));
}

TEST(missing_parameter_at_off_value_is_fine)
{
	/* the old destination lacks ext_regs, but it is off */
	EXPECT_EQ(0, vmig_compat_check(INFO_V2,
				       "format=1 chunk_size=1048576 ext_regs=0",
				       INFO_V1, NULL, 0));
	/* an old source lacks ext_regs: the new destination takes it off */
	EXPECT_EQ(0, vmig_compat_check(INFO_V1, "format=1", INFO_V2, NULL,
				       0));
}

TEST(other_model_is_refused)
{
	char why[256] = "";

	EXPECT_EQ(-EMEDIUMTYPE,
		  vmig_compat_check(INFO_V2, "format=1",
				    "model mtty\nparam format uint allowed=1 off=1\n",
				    why, sizeof(why)));
	EXPECT_NE(NULL, strstr(why, "mtty"));
}

TEST(bad_text_is_einval)
{
	EXPECT_EQ(-EINVAL, vmig_compat_check("param x uint\n", "", INFO_V2,
					     NULL, 0));
	EXPECT_EQ(-EINVAL, vmig_compat_check(INFO_V2, "nosuch=1", INFO_V2,
					     NULL, 0));
	EXPECT_EQ(-EINVAL, vmig_compat_check(INFO_V2, "format=x", INFO_V2,
					     NULL, 0));
	EXPECT_EQ(-EINVAL, vmig_compat_check(NULL, "", INFO_V2, NULL, 0));
}

TEST_HARNESS_MAIN

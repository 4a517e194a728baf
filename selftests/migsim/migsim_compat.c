// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: migration parameters and compatibility.
 *
 * An instance is created with migration parameters (format, chunk_size,
 * ext_regs) written to migration_params before its device is opened; the
 * stream header carries them, and a destination created with other ones
 * refuses the stream with EMEDIUMTYPE and says why.  The type describes its
 * parameters in migration_info, from which vmig_compat_check() decides
 * without a migration.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

static int read_info(char *buf, size_t len)
{
	return sysfs_read(MIGSIM_TYPE_DIR "/migration_info", buf, len);
}

/* Create an instance with parameters, then open it. */
static int create_with(struct migsim_inst *in, uint64_t size,
		       const char *params)
{
	int ret = migsim_inst_create(in, size);

	if (!ret && params)
		ret = migsim_attr_write(in->uuid, "migration_params", params);
	if (!ret)
		ret = migsim_inst_open(in);
	return ret;
}

FIXTURE(compat) {
	struct migsim_inst src, dst;
	struct migsim_buf stream;
};

FIXTURE_SETUP(compat)
{
	memset(&self->stream, 0, sizeof(self->stream));
	self->src.fd = -1;
	self->dst.fd = -1;
}

FIXTURE_TEARDOWN(compat)
{
	migsim_buf_free(&self->stream);
	migsim_inst_destroy(&self->src);
	migsim_inst_destroy(&self->dst);
}

TEST_F(compat, migration_info_describes_every_parameter)
{
	char info[1024];

	ASSERT_LT(0, read_info(info, sizeof(info)));
	EXPECT_NE(NULL, strstr(info, "model vfio-migsim\n"));
	EXPECT_NE(NULL, strstr(info, "param format uint allowed=1-2 off=1\n"));
	EXPECT_NE(NULL, strstr(info, "param chunk_size uint allowed=4096,8192,"));
	EXPECT_NE(NULL, strstr(info, ",67108864 off=1048576\n"));
	EXPECT_NE(NULL, strstr(info, "param ext_regs bool allowed=0-1 off=0"));
}

TEST_F(compat, parameters_set_before_open_only)
{
	char buf[128];

	ASSERT_EQ(0, migsim_inst_create(&self->src, 4 * MiB));
	ASSERT_LT(0, migsim_attr_read(self->src.uuid, "migration_params", buf,
				      sizeof(buf)));
	EXPECT_STREQ("format=1 chunk_size=1048576 ext_regs=0", buf);
	EXPECT_EQ(-EINVAL, migsim_attr_write(self->src.uuid,
					     "migration_params", "format=3"));
	EXPECT_EQ(-EINVAL, migsim_attr_write(self->src.uuid,
					     "migration_params",
					     "chunk_size=5000"));
	/* all or nothing */
	EXPECT_EQ(-EINVAL, migsim_attr_write(self->src.uuid,
					     "migration_params",
					     "format=2 nosuch=1"));
	ASSERT_LT(0, migsim_attr_read(self->src.uuid, "migration_params", buf,
				      sizeof(buf)));
	EXPECT_STREQ("format=1 chunk_size=1048576 ext_regs=0", buf);
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "migration_params",
				       "format=2 chunk_size=64K ext_regs=1"));
	ASSERT_LT(0, migsim_attr_read(self->src.uuid, "migration_params", buf,
				      sizeof(buf)));
	EXPECT_STREQ("format=2 chunk_size=65536 ext_regs=1", buf);
	ASSERT_EQ(0, migsim_inst_open(&self->src));
	EXPECT_EQ(-EBUSY, migsim_attr_write(self->src.uuid,
					    "migration_params", "format=1"));
}

TEST_F(compat, rechunking_keeps_the_content)
{
	uint32_t c0, c1, c2;

	ASSERT_EQ(0, migsim_inst_create(&self->src, 4 * MiB + 12 * KiB));
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c0));
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "migration_params",
				       "chunk_size=16K"));
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c1));
	/* the checksum covers chunk CRCs, so it depends on the chunking */
	EXPECT_NE(c0, c1);
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "migration_params",
				       "chunk_size=1M"));
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c2));
	EXPECT_EQ(c0, c2);
}

TEST_F(compat, matching_parameters_migrate)
{
	const char *p = "format=2 chunk_size=64K ext_regs=1";
	uint32_t a, b, reg;

	ASSERT_EQ(0, create_with(&self->src, 3 * MiB + 4 * KiB, p));
	ASSERT_EQ(0, create_with(&self->dst, 4 * KiB, p));
	/* an extended register travels */
	ASSERT_EQ(0, migsim_bar0_write32(self->src.fd,
					 MIGSIM_REG_SCRATCH0 + 4 * 60,
					 0xfeedf00d));
	ASSERT_EQ(0, migsim_save(&self->src, 65536, &self->stream));
	ASSERT_EQ(0, migsim_load(&self->dst, self->stream.data,
				 self->stream.len, 4096));
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &a));
	ASSERT_EQ(0, migsim_checksum(self->dst.uuid, &b));
	EXPECT_EQ(a, b);
	ASSERT_EQ(0, migsim_bar0_read32(self->dst.fd,
					MIGSIM_REG_SCRATCH0 + 4 * 60, &reg));
	EXPECT_EQ(0xfeedf00d, reg);
}

TEST_F(compat, mismatching_parameters_refused)
{
	static const struct {
		const char *src, *dst, *why;
	} cases[] = {
		{ "format=2", "format=1", "format 2" },
		{ "chunk_size=64K", "chunk_size=1M", "chunk_size 65536" },
		/* a parameter the destination was not created with */
		{ "ext_regs=1", "ext_regs=0", "features 0x1" },
	};
	char why[256];
	uint32_t before, after;
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		ASSERT_EQ(0, create_with(&self->src, 1 * MiB, cases[i].src));
		ASSERT_EQ(0, create_with(&self->dst, 4 * KiB, cases[i].dst));
		ASSERT_EQ(0, migsim_checksum(self->dst.uuid, &before));
		self->stream.len = 0;
		ASSERT_EQ(0, migsim_save(&self->src, 65536, &self->stream));
		ret = migsim_load(&self->dst, self->stream.data,
				  self->stream.len, 65536);
		EXPECT_EQ(-EMEDIUMTYPE, ret);
		ASSERT_LT(0, migsim_attr_read(self->dst.uuid, "last_error",
					      why, sizeof(why)));
		EXPECT_NE(NULL, strstr(why, cases[i].why)) {
			TH_LOG("case %u: last_error \"%s\"", i, why);
		}
		ASSERT_EQ(0, migsim_checksum(self->dst.uuid, &after));
		EXPECT_EQ(before, after);
		migsim_inst_destroy(&self->src);
		migsim_inst_destroy(&self->dst);
	}
}

TEST_F(compat, userspace_check_uses_the_real_description)
{
	char info[1024], why[256] = "";

	ASSERT_LT(0, read_info(info, sizeof(info)));
	EXPECT_EQ(0, vmig_compat_check(info, "format=2 chunk_size=8192 ext_regs=1",
				       info, why, sizeof(why)));
	EXPECT_EQ(-EMEDIUMTYPE,
		  vmig_compat_check(info, "format=2 ext_regs=1",
				    "model vfio-migsim\n"
				    "param format uint allowed=1 off=1\n",
				    why, sizeof(why)));
	EXPECT_NE(NULL, strstr(why, "format=2"));
}

TEST_HARNESS_MAIN

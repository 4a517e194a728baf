// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: the per-instance sysfs group migsim/: defaults, formats,
 * what state_size accepts, and when it may be written.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

/* An instance at its default state size, not opened. */
FIXTURE(sysfs) {
	struct migsim_inst in;
	uint64_t size0;		/* the state size it was created with */
};

FIXTURE_SETUP(sysfs)
{
	int ret;

	ASSERT_EQ(0, migsim_inst_create(&self->in, 0));
	ret = migsim_state_size(self->in.uuid, &self->size0);
	if (ret)
		migsim_inst_destroy(&self->in);
	ASSERT_EQ(0, ret);
}

FIXTURE_TEARDOWN_PARENT(sysfs)
{
	if (self->in.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->in.uuid));
}

static const char *const attrs[] = {
	"state_size", "chunk_size", "seed", "checksum", "generation",
	"migration_state", "last_error",
};

/* The first attribute of attrs[] that cannot be read, or NULL. */
static const char *unreadable_attr(const char *uuid)
{
	char buf[256];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(attrs); i++)
		if (migsim_attr_read(uuid, attrs[i], buf, sizeof(buf)) < 0)
			return attrs[i];
	return NULL;
}

TEST_F(sysfs, every_attribute_exists)
{
	const char *bad = unreadable_attr(self->in.uuid);

	EXPECT_EQ(NULL, bad) TH_LOG("migsim/%s unreadable", bad ? bad : "");
}

/*
 * 64 MiB unless the module was loaded with another default_state_size (a
 * test VM may load it with a small one: creating 64 MiB costs ~1 s there).
 */
TEST_F(sysfs, new_instance_has_default_state_size)
{
	EXPECT_EQ(migsim_default_state_size(), self->size0);
}

TEST_F(sysfs, default_chunk_size_is_1mib)
{
	uint64_t chunk;

	ASSERT_EQ(0, migsim_chunk_size(self->in.uuid, &chunk));
	EXPECT_EQ(MIGSIM_DEFAULT_CHUNK_SIZE, chunk);
}

TEST_F(sysfs, chunk_size_is_read_only)
{
	uint64_t chunk;

	EXPECT_NE(0, migsim_attr_write(self->in.uuid, "chunk_size", "4096"));
	ASSERT_EQ(0, migsim_chunk_size(self->in.uuid, &chunk));
	EXPECT_EQ(MIGSIM_DEFAULT_CHUNK_SIZE, chunk);
}

TEST_F(sysfs, checksum_is_0x_and_8_hex_digits)
{
	char buf[64];
	int i;

	ASSERT_EQ(10, migsim_attr_read(self->in.uuid, "checksum", buf,
				       sizeof(buf))) TH_LOG("\"%s\"", buf);
	EXPECT_EQ(0, strncmp(buf, "0x", 2)) TH_LOG("\"%s\"", buf);
	for (i = 2; i < 10; i++)
		EXPECT_TRUE(isxdigit((unsigned char)buf[i]) &&
			    !isupper((unsigned char)buf[i]))
			TH_LOG("\"%s\"", buf);
}

TEST_F(sysfs, seed_is_hex)
{
	char buf[64], *p;

	ASSERT_LT(0, migsim_attr_read(self->in.uuid, "seed", buf,
				      sizeof(buf)));
	p = buf;
	if (!strncmp(p, "0x", 2))
		p += 2;
	ASSERT_NE(0, *p) TH_LOG("\"%s\"", buf);
	for (; *p; p++)
		EXPECT_TRUE(isxdigit((unsigned char)*p)) TH_LOG("\"%s\"", buf);
}

TEST_F(sysfs, generation_is_decimal)
{
	uint64_t gen;

	EXPECT_EQ(0, migsim_generation(self->in.uuid, &gen));
}

TEST_F(sysfs, migration_state_is_running)
{
	enum vmig_dev_state st;

	ASSERT_EQ(0, migsim_sysfs_mig_state(self->in.uuid, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_sysfs_mig_state(self->in.uuid, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, migsim_get_state(&self->in, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
}

TEST_F(sysfs, last_error_is_none)
{
	char buf[256];

	ASSERT_LE(0, migsim_attr_read(self->in.uuid, "last_error", buf,
				      sizeof(buf)));
	EXPECT_STREQ("none", buf);
}

TEST_F(sysfs, state_size_takes_bytes)
{
	uint64_t size;

	ASSERT_EQ(0, migsim_attr_write(self->in.uuid, "state_size", "12288"));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(12288, size);
}

TEST_F(sysfs, state_size_takes_k_suffix)
{
	uint64_t size;

	ASSERT_EQ(0, migsim_attr_write(self->in.uuid, "state_size", "8K"));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(8 * KiB, size);
}

TEST_F(sysfs, state_size_takes_m_suffix)
{
	uint64_t size;

	ASSERT_EQ(0, migsim_attr_write(self->in.uuid, "state_size", "3M"));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(3 * MiB, size);
}

TEST_F(sysfs, state_size_refuses_unaligned)
{
	uint64_t size;

	EXPECT_NE(0, migsim_attr_write(self->in.uuid, "state_size", "4097"));
	EXPECT_NE(0, migsim_attr_write(self->in.uuid, "state_size", "6K"));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(self->size0, size);
}

TEST_F(sysfs, state_size_refuses_zero)
{
	uint64_t size;

	EXPECT_NE(0, migsim_attr_write(self->in.uuid, "state_size", "0"));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(self->size0, size);
}

TEST_F(sysfs, state_size_refuses_over_max)
{
	char buf[32];
	uint64_t size;

	/* module parameter max_state_size defaults to 4G */
	snprintf(buf, sizeof(buf), "%llu", 4 * GiB + 4 * KiB);
	EXPECT_NE(0, migsim_attr_write(self->in.uuid, "state_size", buf));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(self->size0, size);
}

TEST_F(sysfs, state_size_refuses_garbage)
{
	uint64_t size;

	EXPECT_NE(0, migsim_attr_write(self->in.uuid, "state_size", "lots"));
	EXPECT_NE(0, migsim_attr_write(self->in.uuid, "state_size", "-4096"));
	EXPECT_NE(0, migsim_attr_write(self->in.uuid, "state_size", "4096x"));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(self->size0, size);
}

TEST_F(sysfs, resize_changes_checksum_and_generation)
{
	uint64_t gen0, gen1;
	uint32_t c0, c1;

	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &c0));
	ASSERT_EQ(0, migsim_generation(self->in.uuid, &gen0));
	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 8 * KiB));
	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &c1));
	ASSERT_EQ(0, migsim_generation(self->in.uuid, &gen1));
	EXPECT_NE(c0, c1);
	EXPECT_GT(gen1, gen0);
}

TEST_F(sysfs, state_size_writable_while_running)
{
	uint64_t size;

	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 16 * KiB));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(16 * KiB, size);
}

TEST_F(sysfs, size_registers_follow_resize)
{
	uint32_t lo, hi;

	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 20 * KiB));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_SIZE_LO, &lo));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_SIZE_HI, &hi));
	EXPECT_EQ(20 * KiB, ((uint64_t)hi << 32) | lo);
}

TEST_F(sysfs, state_size_busy_in_stop)
{
	uint64_t size;

	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 8 * KiB));
	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, NULL));
	EXPECT_EQ(-EBUSY, migsim_set_state_size(self->in.uuid, 4 * KiB));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(8 * KiB, size);
}

/*
 * Documentation/driver.rst lets state_size change in PRE_COPY, also with
 * the precopy fd open (the stream then carries a RESIZE record), but in no
 * other state: PRE_COPY_P2P, with the same fd open, is busy.
 */
TEST_F(sysfs, state_size_busy_in_pre_copy_p2p)
{
	uint64_t size;
	int fd;

	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 8 * KiB));
	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_PRE_COPY, &fd));
	EXPECT_LE(0, fd);
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_PRE_COPY_P2P,
				      NULL));
	EXPECT_EQ(-EBUSY, migsim_set_state_size(self->in.uuid, 4 * KiB));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(8 * KiB, size);
	if (fd >= 0)
		close(fd);
}

TEST_F(sysfs, state_size_busy_in_stop_copy)
{
	uint64_t size;
	int fd;

	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 8 * KiB));
	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP_COPY, &fd));
	EXPECT_LE(0, fd);
	EXPECT_EQ(-EBUSY, migsim_set_state_size(self->in.uuid, 4 * KiB));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(8 * KiB, size);
	if (fd >= 0)
		close(fd);
}

TEST_F(sysfs, state_size_busy_in_resuming)
{
	uint64_t size;
	int fd;

	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 8 * KiB));
	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RESUMING, &fd));
	EXPECT_LE(0, fd);
	EXPECT_EQ(-EBUSY, migsim_set_state_size(self->in.uuid, 4 * KiB));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(8 * KiB, size);
	if (fd >= 0)
		close(fd);
}

TEST_F(sysfs, state_size_writable_after_close)
{
	uint64_t size;

	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 8 * KiB));
	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, NULL));
	migsim_inst_close(&self->in);
	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 4 * KiB));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(4 * KiB, size);
}

TEST_F(sysfs, migration_state_follows_device)
{
	enum vmig_dev_state st;

	ASSERT_EQ(0, migsim_set_state_size(self->in.uuid, 4 * KiB));
	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING_P2P,
				      NULL));
	ASSERT_EQ(0, migsim_sysfs_mig_state(self->in.uuid, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING_P2P, st);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvmig on a host without VFIO: the log callback, and the error paths of
 * opening a device and of the device ioctls.  Opening a real device is
 * tested in the VM (selftests/migsim).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vmig.h"

struct capture {
	int calls;
	enum vmig_log_level level;
	char last[512];
};

static void capture_log(enum vmig_log_level level, const char *msg,
			void *opaque)
{
	struct capture *cap = opaque;

	cap->calls++;
	cap->level = level;
	snprintf(cap->last, sizeof(cap->last), "%s", msg);
}

FIXTURE(fake_sysfs) {
	char dir[PATH_MAX];
	struct capture cap;
};

FIXTURE_SETUP(fake_sysfs)
{
	char tmpl[] = "/tmp/vmig-test-XXXXXX";

	ASSERT_NE(NULL, mkdtemp(tmpl));
	snprintf(self->dir, sizeof(self->dir), "%s", tmpl);
	memset(&self->cap, 0, sizeof(self->cap));
	vmig_set_log(capture_log, &self->cap, VMIG_LOG_DEBUG);
}

FIXTURE_TEARDOWN(fake_sysfs)
{
	char path[PATH_MAX + 16];

	vmig_set_log(NULL, NULL, VMIG_LOG_ERR);
	snprintf(path, sizeof(path), "%s/iommu_group", self->dir);
	unlink(path);
	rmdir(self->dir);
}

TEST_F(fake_sysfs, missing_device_is_enoent_and_logged)
{
	struct vmig_vfio_dev *dev = (void *)1;
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/nodev", self->dir);
	EXPECT_EQ(-ENOENT, vmig_vfio_open(path, &dev));
	EXPECT_EQ(NULL, dev);
	EXPECT_LT(0, self->cap.calls);
	EXPECT_EQ((enum vmig_log_level)VMIG_LOG_ERR, self->cap.level);
	EXPECT_NE(NULL, strstr(self->cap.last, "nodev"))
		TH_LOG("message: %s", self->cap.last);
}

TEST_F(fake_sysfs, device_without_iommu_group_is_enoent)
{
	struct vmig_vfio_dev *dev = (void *)1;

	EXPECT_EQ(-ENOENT, vmig_vfio_open(self->dir, &dev));
	EXPECT_EQ(NULL, dev);
	EXPECT_NE(NULL, strstr(self->cap.last, "IOMMU group"))
		TH_LOG("message: %s", self->cap.last);
}

TEST_F(fake_sysfs, bad_iommu_group_link_is_einval)
{
	struct vmig_vfio_dev *dev = (void *)1;
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/iommu_group", self->dir);
	ASSERT_EQ(0, symlink("../../kernel/iommu_groups/12x", path));
	EXPECT_EQ(-EINVAL, vmig_vfio_open(self->dir, &dev));
	EXPECT_EQ(NULL, dev);
}

TEST_F(fake_sysfs, log_level_filters_messages)
{
	struct vmig_vfio_dev *dev;

	vmig_set_log(capture_log, &self->cap, VMIG_LOG_ERR - 1);
	EXPECT_GT(0, vmig_vfio_open(self->dir, &dev));
	EXPECT_EQ(0, self->cap.calls);
}

TEST_F(fake_sysfs, null_log_discards_messages)
{
	struct vmig_vfio_dev *dev;

	vmig_set_log(NULL, &self->cap, VMIG_LOG_DEBUG);
	EXPECT_GT(0, vmig_vfio_open(self->dir, &dev));
	EXPECT_EQ(0, self->cap.calls);
}

TEST(open_mdev_rejects_bad_uuids)
{
	static const char *const bad[] = { "", ".", "..", "a/b", "../x" };
	struct vmig_vfio_dev *dev;
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, vmig_vfio_open_mdev(bad[i], &dev))
			TH_LOG("\"%s\"", bad[i]);
	}
}

TEST(open_mdev_of_missing_uuid_fails)
{
	struct vmig_vfio_dev *dev = (void *)1;

	EXPECT_GT(0, vmig_vfio_open_mdev(
			"00000000-0000-0000-0000-00000000dead", &dev));
	EXPECT_EQ(NULL, dev);
}

TEST(null_arguments_are_einval)
{
	struct vmig_vfio_dev *dev;
	enum vmig_dev_state state;
	uint64_t bytes;
	uint32_t flags;
	int fd;

	EXPECT_EQ(-EINVAL, vmig_vfio_open(NULL, &dev));
	EXPECT_EQ(-EINVAL, vmig_vfio_open("/sys", NULL));
	EXPECT_EQ(-EINVAL, vmig_vfio_open_mdev(NULL, &dev));
	EXPECT_EQ(-EINVAL, vmig_vfio_fd(NULL));
	EXPECT_EQ(NULL, vmig_vfio_name(NULL));
	EXPECT_EQ(-EINVAL, vmig_vfio_mig_flags(NULL, &flags));
	EXPECT_EQ(-EINVAL, vmig_vfio_get_state(NULL, &state));
	fd = 42;
	EXPECT_EQ(-EINVAL, vmig_vfio_set_state(NULL, VMIG_STATE_STOP, &fd));
	EXPECT_EQ(-1, fd);
	fd = 42;
	EXPECT_EQ(-EINVAL, vmig_vfio_set_state_raw(NULL, 1, &fd));
	EXPECT_EQ(-1, fd);
	EXPECT_EQ(-EINVAL, vmig_vfio_stop_copy_size(NULL, &bytes));
	EXPECT_EQ(-EINVAL, vmig_vfio_reset(NULL));
	vmig_vfio_close(NULL);
}

TEST(precopy_info_on_a_pipe_is_enotty)
{
	uint64_t initial = 7, dirty = 7;
	int p[2];

	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(-ENOTTY, vmig_precopy_info(p[0], &initial, &dirty, NULL));
	EXPECT_EQ(7U, initial);
	EXPECT_EQ(7U, dirty);
	close(p[0]);
	close(p[1]);
	EXPECT_EQ(-EBADF, vmig_precopy_info(-1, NULL, NULL, NULL));
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * vm_sanity: is the test VM what the other tests expect?  Runs first in
 * every VM run (selftests/vm/run-vm.sh): the VFIO container interface, the
 * vfio/mdev modules, nested KVM and, once vfio-migsim is loaded, its mdev
 * parent and type.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/vfio.h>
#include <linux/vfio_migsim.h>

#include "kselftest_harness.h"

static int is_chrdev(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISCHR(st.st_mode);
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

TEST(vfio_modules_loaded)
{
	ASSERT_TRUE(exists("/sys/module/vfio"));
	ASSERT_TRUE(exists("/sys/module/vfio_iommu_type1"));
	ASSERT_TRUE(exists("/sys/module/mdev"));
}

TEST(vfio_container)
{
	int fd;

	ASSERT_TRUE(is_chrdev("/dev/vfio/vfio")) {
		TH_LOG("/dev/vfio/vfio missing: %s", strerror(errno));
	}
	fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd) {
		TH_LOG("open /dev/vfio/vfio: %s", strerror(errno));
	}
	EXPECT_EQ(VFIO_API_VERSION, ioctl(fd, VFIO_GET_API_VERSION));
	EXPECT_LT(0, ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	close(fd);
}

TEST(kvm)
{
	int fd;

	ASSERT_TRUE(exists("/sys/module/kvm_amd"));
	ASSERT_TRUE(is_chrdev("/dev/kvm")) {
		TH_LOG("/dev/kvm missing: %s", strerror(errno));
	}
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd) {
		TH_LOG("open /dev/kvm: %s", strerror(errno));
	}
	EXPECT_EQ(KVM_API_VERSION, ioctl(fd, KVM_GET_API_VERSION));
	close(fd);
}

TEST(migsim_mdev_type)
{
	char path[PATH_MAX];

	if (!exists("/sys/module/vfio_migsim"))
		SKIP(return, "vfio_migsim is not loaded");

	snprintf(path, sizeof(path),
		 "/sys/class/mdev_bus/%s/mdev_supported_types/%s/create",
		 MIGSIM_PARENT_NAME, MIGSIM_TYPE_NAME);
	ASSERT_EQ(0, access(path, W_OK)) {
		TH_LOG("%s: %s", path, strerror(errno));
	}
}

TEST_HARNESS_MAIN

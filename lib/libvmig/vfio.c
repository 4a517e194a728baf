// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * VFIO devices: opening them, and the migration ioctls.
 *
 * Two ways in.  The legacy one: the device's IOMMU group (/dev/vfio/<N>)
 * joined to a new container (/dev/vfio/vfio) with a type1 IOMMU, and the
 * device fd from VFIO_GROUP_GET_DEVICE_FD.  The cdev one, used where the
 * kernel has iommufd: /dev/vfio/devices/vfioX bound to a new /dev/iommu
 * context and attached to a new IOAS.  Either way the device gets its own
 * container or iommufd context; none of them maps any memory yet.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif

#include "internal.h"

#ifndef IOMMU_IOAS_ALLOC
/* From the 6.12 uapi <linux/iommufd.h>, for systems without it. */
#define IOMMUFD_TYPE (';')
#define IOMMUFD_CMD_IOAS_ALLOC 0x81
struct iommu_ioas_alloc {
	__u32 size;
	__u32 flags;
	__u32 out_ioas_id;
};

#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC)
#endif

#define VFIO_CONTAINER_PATH	"/dev/vfio/vfio"
#define VFIO_CDEV_DIR		"/dev/vfio/devices"
#define IOMMUFD_PATH		"/dev/iommu"
#define MDEV_SYSFS_DIR		"/sys/bus/mdev/devices"

struct vmig_vfio_dev {
	int device_fd;
	int group_fd;		/* legacy interface, else -1 */
	int container_fd;	/* legacy interface, else -1 */
	int iommufd;		/* cdev interface, else -1 */
	uint32_t ioas_id;	/* cdev interface */
	bool have_mig_flags;
	uint32_t mig_flags;
	char name[NAME_MAX + 1];
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ------------------------------------------------------------- opening */

static int open_legacy(struct vmig_vfio_dev *dev, const char *sysfs)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[PATH_MAX], link[PATH_MAX];
	unsigned long group;
	const char *base;
	char *end;
	ssize_t len;
	int ret;

	snprintf(path, sizeof(path), "%s/iommu_group", sysfs);
	len = readlink(path, link, sizeof(link) - 1);
	if (len < 0) {
		ret = -errno;
		vmig_err("%s: no IOMMU group: %s: %m", dev->name, path);
		return ret;
	}
	link[len] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	errno = 0;
	group = strtoul(base, &end, 10);
	if (errno || end == base || *end || group > INT_MAX) {
		vmig_err("%s: bad IOMMU group link %s", dev->name, link);
		return -EINVAL;
	}

	dev->container_fd = open(VFIO_CONTAINER_PATH, O_RDWR | O_CLOEXEC);
	if (dev->container_fd < 0) {
		ret = -errno;
		vmig_err("%s: open %s: %m", dev->name, VFIO_CONTAINER_PATH);
		return ret;
	}
	ret = ioctl(dev->container_fd, VFIO_GET_API_VERSION);
	if (ret != VFIO_API_VERSION) {
		vmig_err("%s: VFIO API version %d, expected %d", dev->name,
			 ret, VFIO_API_VERSION);
		return -EPROTONOSUPPORT;
	}

	snprintf(path, sizeof(path), "/dev/vfio/%lu", group);
	dev->group_fd = open(path, O_RDWR | O_CLOEXEC);
	if (dev->group_fd < 0) {
		ret = -errno;
		vmig_err("%s: open %s: %m", dev->name, path);
		return ret;
	}
	if (ioctl(dev->group_fd, VFIO_GROUP_GET_STATUS, &status)) {
		ret = -errno;
		vmig_err("%s: VFIO_GROUP_GET_STATUS: %m", dev->name);
		return ret;
	}
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		vmig_err("%s: IOMMU group %lu is not viable (is every device in it bound to a VFIO driver?)",
			 dev->name, group);
		return -EBUSY;
	}
	if (ioctl(dev->group_fd, VFIO_GROUP_SET_CONTAINER,
		  &dev->container_fd)) {
		ret = -errno;
		vmig_err("%s: VFIO_GROUP_SET_CONTAINER: %m", dev->name);
		return ret;
	}
	if (ioctl(dev->container_fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) &&
	    ioctl(dev->container_fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU)) {
		ret = -errno;
		vmig_err("%s: VFIO_SET_IOMMU (type1): %m", dev->name);
		return ret;
	}

	dev->device_fd = ioctl(dev->group_fd, VFIO_GROUP_GET_DEVICE_FD,
			       dev->name);
	if (dev->device_fd < 0) {
		ret = -errno;
		dev->device_fd = -1;
		vmig_err("%s: VFIO_GROUP_GET_DEVICE_FD: %m", dev->name);
		return ret;
	}
	vmig_dbg("%s: opened through IOMMU group %lu", dev->name, group);
	return 0;
}

/* Find <sysfs>/vfio-dev/vfioX; 0 and the cdev's path if there is one. */
static int find_cdev(const char *sysfs, char *cdev, size_t len)
{
	char path[PATH_MAX];
	struct dirent *de;
	int ret = -ENOENT;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/vfio-dev", sysfs);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (!strncmp(de->d_name, "vfio", 4) && de->d_name[4]) {
			snprintf(cdev, len, VFIO_CDEV_DIR "/%s", de->d_name);
			ret = 0;
			break;
		}
	}
	closedir(dir);
	return ret;
}

static int open_cdev(struct vmig_vfio_dev *dev, const char *cdev)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = {
		.argsz = sizeof(attach),
	};
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	int ret;

	dev->device_fd = open(cdev, O_RDWR | O_CLOEXEC);
	if (dev->device_fd < 0) {
		ret = -errno;
		vmig_dbg("%s: open %s: %m", dev->name, cdev);
		return ret;
	}
	dev->iommufd = open(IOMMUFD_PATH, O_RDWR | O_CLOEXEC);
	if (dev->iommufd < 0) {
		ret = -errno;
		vmig_dbg("%s: open %s: %m", dev->name, IOMMUFD_PATH);
		return ret;
	}
	bind.iommufd = dev->iommufd;
	if (ioctl(dev->device_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind)) {
		ret = -errno;
		vmig_dbg("%s: VFIO_DEVICE_BIND_IOMMUFD: %m", dev->name);
		return ret;
	}
	if (ioctl(dev->iommufd, IOMMU_IOAS_ALLOC, &alloc)) {
		ret = -errno;
		vmig_dbg("%s: IOMMU_IOAS_ALLOC: %m", dev->name);
		return ret;
	}
	dev->ioas_id = alloc.out_ioas_id;
	attach.pt_id = dev->ioas_id;
	if (ioctl(dev->device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach)) {
		ret = -errno;
		vmig_dbg("%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT: %m", dev->name);
		return ret;
	}
	vmig_dbg("%s: opened through %s, IOAS %u", dev->name, cdev,
		 dev->ioas_id);
	return 0;
}

VMIG_EXPORT int vmig_vfio_open(const char *sysfs_path,
			       struct vmig_vfio_dev **out)
{
	struct vmig_vfio_dev *dev;
	char cdev[PATH_MAX];
	const char *base;
	char *real;
	int ret;

	if (!sysfs_path || !out)
		return -EINVAL;
	*out = NULL;

	real = realpath(sysfs_path, NULL);
	if (!real) {
		ret = -errno;
		vmig_err("%s: %m", sysfs_path);
		return ret;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		free(real);
		return -ENOMEM;
	}
	dev->device_fd = -1;
	dev->group_fd = -1;
	dev->container_fd = -1;
	dev->iommufd = -1;

	base = strrchr(real, '/');
	base = base ? base + 1 : real;
	if (!*base || strlen(base) >= sizeof(dev->name)) {
		vmig_err("%s: not a device path", sysfs_path);
		ret = -EINVAL;
		goto err;
	}
	memcpy(dev->name, base, strlen(base) + 1);

	if (!access(IOMMUFD_PATH, F_OK) &&
	    !find_cdev(real, cdev, sizeof(cdev))) {
		ret = open_cdev(dev, cdev);
		if (!ret)
			goto out;
		vmig_info("%s: cdev/iommufd interface failed (%d), trying the IOMMU group",
			  dev->name, ret);
		close_fd(&dev->device_fd);
		close_fd(&dev->iommufd);
	}

	ret = open_legacy(dev, real);
	if (ret)
		goto err;
out:
	free(real);
	*out = dev;
	return 0;
err:
	free(real);
	vmig_vfio_close(dev);
	return ret;
}

VMIG_EXPORT int vmig_vfio_open_mdev(const char *uuid,
				    struct vmig_vfio_dev **out)
{
	char path[PATH_MAX];

	if (!uuid || !out)
		return -EINVAL;
	*out = NULL;
	if (!*uuid || strchr(uuid, '/') || !strcmp(uuid, ".") ||
	    !strcmp(uuid, "..") || strlen(uuid) > NAME_MAX) {
		vmig_err("\"%s\" is not an mdev UUID", uuid);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), MDEV_SYSFS_DIR "/%s", uuid);
	return vmig_vfio_open(path, out);
}

VMIG_EXPORT void vmig_vfio_close(struct vmig_vfio_dev *dev)
{
	if (!dev)
		return;
	/* The device first: it holds references on its group and context. */
	close_fd(&dev->device_fd);
	close_fd(&dev->group_fd);
	close_fd(&dev->container_fd);
	close_fd(&dev->iommufd);
	free(dev);
}

VMIG_EXPORT int vmig_vfio_fd(const struct vmig_vfio_dev *dev)
{
	return dev ? dev->device_fd : -EINVAL;
}

VMIG_EXPORT int vmig_vfio_container_fd(const struct vmig_vfio_dev *dev)
{
	if (!dev)
		return -EINVAL;
	return dev->container_fd >= 0 ? dev->container_fd : -ENODEV;
}

VMIG_EXPORT const char *vmig_vfio_name(const struct vmig_vfio_dev *dev)
{
	return dev ? dev->name : NULL;
}

/* ------------------------------------------------------------ features */

/*
 * VFIO_DEVICE_FEATURE with a payload of len bytes (in and out).  The payload
 * follows the 8-byte header and is 8-byte aligned, as the kernel expects.
 */
static int vfio_feature(struct vmig_vfio_dev *dev, uint32_t flags,
			void *data, size_t len)
{
	struct {
		struct vfio_device_feature hdr;
		uint64_t payload[8];
	} arg;

	_Static_assert(offsetof(typeof(arg), payload) ==
		       sizeof(struct vfio_device_feature),
		       "feature payload must follow the header");

	if (!dev || len > sizeof(arg.payload))
		return -EINVAL;
	memset(&arg, 0, sizeof(arg));
	arg.hdr.argsz = sizeof(arg.hdr) + len;
	arg.hdr.flags = flags;
	memcpy(arg.payload, data, len);
	if (ioctl(dev->device_fd, VFIO_DEVICE_FEATURE, &arg))
		return -errno;
	memcpy(data, arg.payload, len);
	return 0;
}

VMIG_EXPORT int vmig_vfio_mig_flags(struct vmig_vfio_dev *dev,
				    uint32_t *flags)
{
	struct vfio_device_feature_migration mig = { 0 };
	int ret;

	if (!dev || !flags)
		return -EINVAL;
	if (!dev->have_mig_flags) {
		ret = vfio_feature(dev, VFIO_DEVICE_FEATURE_GET |
				   VFIO_DEVICE_FEATURE_MIGRATION,
				   &mig, sizeof(mig));
		if (ret) {
			errno = -ret;
			vmig_dbg("%s: FEATURE_MIGRATION: %m", dev->name);
			return ret;
		}
		dev->mig_flags = mig.flags;
		dev->have_mig_flags = true;
	}
	*flags = dev->mig_flags;
	return 0;
}

VMIG_EXPORT int vmig_vfio_get_state(struct vmig_vfio_dev *dev,
				    enum vmig_dev_state *state)
{
	struct vfio_device_feature_mig_state mig = { .data_fd = -1 };
	int ret;

	if (!dev || !state)
		return -EINVAL;
	ret = vfio_feature(dev, VFIO_DEVICE_FEATURE_GET |
			   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			   &mig, sizeof(mig));
	if (ret) {
		errno = -ret;
		vmig_dbg("%s: get MIG_DEVICE_STATE: %m", dev->name);
		return ret;
	}
	*state = mig.device_state;
	return 0;
}

VMIG_EXPORT int vmig_vfio_set_state_raw(struct vmig_vfio_dev *dev,
					uint32_t state, int *data_fd)
{
	struct vfio_device_feature_mig_state mig = {
		.device_state = state,
		.data_fd = -1,
	};
	int ret;

	if (data_fd)
		*data_fd = -1;
	if (!dev)
		return -EINVAL;
	ret = vfio_feature(dev, VFIO_DEVICE_FEATURE_SET |
			   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			   &mig, sizeof(mig));
	if (ret)
		return ret;
	if (data_fd)
		*data_fd = mig.data_fd;
	else if (mig.data_fd >= 0)
		close(mig.data_fd);
	return 0;
}

VMIG_EXPORT int vmig_vfio_set_state(struct vmig_vfio_dev *dev,
				    enum vmig_dev_state target, int *data_fd)
{
	enum vmig_dev_state path[VMIG_STATE_NR], cur;
	uint32_t flags;
	int ret, n, i, fd = -1;

	if (data_fd)
		*data_fd = -1;
	if (!dev)
		return -EINVAL;
	ret = vmig_vfio_mig_flags(dev, &flags);
	if (ret)
		return ret;
	ret = vmig_vfio_get_state(dev, &cur);
	if (ret)
		return ret;
	n = vmig_state_path(flags, cur, target, path, VMIG_ARRAY_SIZE(path));
	if (n < 0) {
		vmig_err("%s: no way from %s to %s (migration flags 0x%x)",
			 dev->name, vmig_state_name(cur),
			 vmig_state_name(target), flags);
		return n;
	}

	for (i = 0; i < n; i++) {
		/* Only the last arc of a walk should open a data session. */
		if (fd >= 0) {
			vmig_warn("%s: unexpected data fd from the arc into %s, closed",
				  dev->name, vmig_state_name(cur));
			close(fd);
		}
		ret = vmig_vfio_set_state_raw(dev, path[i], &fd);
		if (ret) {
			errno = -ret;
			vmig_err("%s: %s -> %s: %m", dev->name,
				 vmig_state_name(cur), vmig_state_name(path[i]));
			return ret;
		}
		vmig_dbg("%s: %s -> %s%s", dev->name, vmig_state_name(cur),
			 vmig_state_name(path[i]), fd >= 0 ? " (data fd)" : "");
		cur = path[i];
	}

	if (data_fd)
		*data_fd = fd;
	else if (fd >= 0)
		close(fd);
	return 0;
}

VMIG_EXPORT int vmig_vfio_stop_copy_size(struct vmig_vfio_dev *dev,
					 uint64_t *bytes)
{
	struct vfio_device_feature_mig_data_size size = { 0 };
	int ret;

	if (!dev || !bytes)
		return -EINVAL;
	ret = vfio_feature(dev, VFIO_DEVICE_FEATURE_GET |
			   VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
			   &size, sizeof(size));
	if (ret) {
		errno = -ret;
		vmig_dbg("%s: MIG_DATA_SIZE: %m", dev->name);
		return ret;
	}
	*bytes = size.stop_copy_length;
	return 0;
}

VMIG_EXPORT int vmig_precopy_info(int data_fd, uint64_t *initial_bytes,
				  uint64_t *dirty_bytes, uint32_t *flags)
{
	struct vfio_precopy_info info = { .argsz = sizeof(info) };

	if (ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		return -errno;
	if (initial_bytes)
		*initial_bytes = info.initial_bytes;
	if (dirty_bytes)
		*dirty_bytes = info.dirty_bytes;
	if (flags)
		*flags = info.flags;
	return 0;
}

VMIG_EXPORT int vmig_vfio_reset(struct vmig_vfio_dev *dev)
{
	int ret;

	if (!dev)
		return -EINVAL;
	if (ioctl(dev->device_fd, VFIO_DEVICE_RESET)) {
		ret = -errno;
		vmig_err("%s: VFIO_DEVICE_RESET: %m", dev->name);
		return ret;
	}
	/* A reset ends any migration session; RUNNING again. */
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-migsim: a VFIO mdev device with large, resizable migratable state.
 *
 * This file holds the module, the mdev parent and type, the vfio_device
 * lifecycle and the per-instance sysfs attributes.  Locking is described in
 * migsim.h.
 */
#include <linux/device.h>
#include <linux/kernel.h>
#include <linux/mdev.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/unaligned.h>
#include <linux/vfio.h>
#include "migsim.h"

#define MIGSIM_MAX_INSTANCES 64

/* A byte count module parameter that takes K/M/G suffixes. */
static int migsim_param_set_size(const char *val,
				 const struct kernel_param *kp)
{
	unsigned long *p = kp->arg;
	char *end;
	u64 v;

	v = memparse(val, &end);
	if (end == val || (*end && *end != '\n'))
		return -EINVAL;
	*p = v;
	return 0;
}

static const struct kernel_param_ops migsim_size_ops = {
	.set = migsim_param_set_size,
	.get = param_get_ulong,
};

static unsigned long default_state_size = SZ_64M;
module_param_cb(default_state_size, &migsim_size_ops, &default_state_size,
		0444);
MODULE_PARM_DESC(default_state_size,
		 "State size of a new instance in bytes, K/M/G allowed (default 64 MiB)");

static unsigned int chunk_size = SZ_1M;
module_param(chunk_size, uint, 0444);
MODULE_PARM_DESC(chunk_size,
		 "Bytes per state chunk, a power of two from 4 KiB to 64 MiB (default 1 MiB)");

unsigned long migsim_max_state_size = SZ_4G;
module_param_cb(max_state_size, &migsim_size_ops, &migsim_max_state_size,
		0644);
MODULE_PARM_DESC(max_state_size,
		 "Largest state an instance may have or load (default 4 GiB)");

static const char * const migsim_state_names[] = {
	[VFIO_DEVICE_STATE_ERROR] = "ERROR",
	[VFIO_DEVICE_STATE_STOP] = "STOP",
	[VFIO_DEVICE_STATE_RUNNING] = "RUNNING",
	[VFIO_DEVICE_STATE_STOP_COPY] = "STOP_COPY",
	[VFIO_DEVICE_STATE_RESUMING] = "RESUMING",
	[VFIO_DEVICE_STATE_RUNNING_P2P] = "RUNNING_P2P",
	[VFIO_DEVICE_STATE_PRE_COPY] = "PRE_COPY",
	[VFIO_DEVICE_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P",
};

const char *migsim_state_name(enum vfio_device_mig_state state)
{
	if (state < ARRAY_SIZE(migsim_state_names))
		return migsim_state_names[state];
	return "INVALID";
}

/* Record why the last operation failed, for sysfs and the kernel log. */
void migsim_set_error(struct migsim_dev *mdev, const char *fmt, ...)
{
	va_list args;

	char msg[sizeof(mdev->last_error)];

	va_start(args, fmt);
	vscnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	spin_lock(&mdev->error_lock);
	strscpy(mdev->last_error, msg, sizeof(mdev->last_error));
	spin_unlock(&mdev->error_lock);
	dev_info(mdev->vdev.dev, "%s\n", msg);
}

void migsim_faults_set(struct migsim_dev *mdev, const struct migsim_faults *f)
{
	spin_lock(&mdev->error_lock);
	mdev->faults = *f;
	spin_unlock(&mdev->error_lock);
}

/*
 * The state checksum.  Called with state_mutex held; an open save fd may be
 * filling chunk CRCs concurrently, so take its lock too.
 */
u32 migsim_checksum(struct migsim_dev *mdev)
{
	struct migsim_migf *migf = mdev->saving;
	u32 sum;

	lockdep_assert_held(&mdev->state_mutex);
	if (migf)
		mutex_lock(&migf->lock);
	sum = migsim_store_checksum(mdev->store);
	if (migf)
		mutex_unlock(&migf->lock);
	return sum;
}

/* ------------------------------------------------------------ vfio_device */

static int migsim_init_dev(struct vfio_device *vdev)
{
	struct migsim_dev *mdev = to_migsim(vdev);
	struct mdev_device *mdevice = to_mdev_device(vdev->dev);
	u64 seed;
	int ret;

	mdev->mdev = mdevice;
	mdev->format = MIGSIM_FORMAT_MIN;
	mutex_init(&mdev->state_mutex);
	mdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
	spin_lock_init(&mdev->error_lock);
	mdev->faults.save_offset = U64_MAX;
	mdev->faults.load_offset = U64_MAX;
	strscpy(mdev->last_error, "none", sizeof(mdev->last_error));
	memcpy(&seed, mdevice->uuid.b, sizeof(seed));
	seed ^= get_unaligned((u64 *)(mdevice->uuid.b + 8));

	mdev->store = migsim_store_alloc(chunk_size, seed);
	if (!mdev->store) {
		ret = -ENOMEM;
		goto err_mutex;
	}
	ret = migsim_store_resize(mdev->store, default_state_size);
	if (ret)
		goto err_store;
	ret = migsim_engine_init(mdev);
	if (ret)
		goto err_store;
	ret = migsim_dma_init(mdev);
	if (ret)
		goto err_engine;
	migsim_pci_init(mdev);

	vdev->migration_flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
				VFIO_MIGRATION_PRE_COPY;
	vdev->mig_ops = &migsim_migration_ops;
	return 0;

err_engine:
	migsim_engine_destroy(mdev);
err_store:
	migsim_store_free(mdev->store);
err_mutex:
	mutex_destroy(&mdev->state_mutex);
	return ret;
}

static void migsim_release_dev(struct vfio_device *vdev)
{
	struct migsim_dev *mdev = to_migsim(vdev);

	migsim_dma_destroy(mdev);
	migsim_engine_destroy(mdev);
	migsim_store_free(mdev->store);
	mutex_destroy(&mdev->state_mutex);
}

static int migsim_open_device(struct vfio_device *vdev)
{
	struct migsim_dev *mdev = to_migsim(vdev);

	mutex_lock(&mdev->state_mutex);
	mdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
	mdev->opened = true;
	migsim_pci_reset(mdev);
	mutex_unlock(&mdev->state_mutex);
	return 0;
}

static void migsim_close_device(struct vfio_device *vdev)
{
	struct migsim_dev *mdev = to_migsim(vdev);

	mutex_lock(&mdev->state_mutex);
	migsim_disable_fds(mdev);
	mdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
	mdev->precopy_info_v2 = false;
	mdev->opened = false;
	/* a DMA log does not outlive the user that started it */
	migsim_dma_log_reset(mdev);
	mutex_unlock(&mdev->state_mutex);
}

static const struct vfio_device_ops migsim_dev_ops = {
	.name = "vfio-migsim",
	.init = migsim_init_dev,
	.release = migsim_release_dev,
	.open_device = migsim_open_device,
	.close_device = migsim_close_device,
	.read = migsim_read,
	.write = migsim_write,
	.ioctl = migsim_ioctl,
	.device_feature = migsim_device_feature,
	.bind_iommufd = vfio_iommufd_emulated_bind,
	.unbind_iommufd = vfio_iommufd_emulated_unbind,
	.attach_ioas = vfio_iommufd_emulated_attach_ioas,
	.detach_ioas = vfio_iommufd_emulated_detach_ioas,
};

/* ------------------------------------------------------------ sysfs */

/* name_show(): one value of the instance, read under state_mutex. */
#define MIGSIM_SHOW(name, fmt, expr)					\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct migsim_dev *mdev = dev_to_migsim(dev);			\
	u64 v;								\
									\
	mutex_lock(&mdev->state_mutex);					\
	v = (expr);							\
	mutex_unlock(&mdev->state_mutex);				\
	return sysfs_emit(buf, fmt "\n", v);				\
}

/* A byte count with an optional K/M/G suffix, as memparse() reads it. */
static int migsim_parse_size(const char *buf, u64 *val)
{
	char *end;

	*val = memparse(buf, &end);
	if (end == buf || (*end && *end != '\n'))
		return -EINVAL;
	return 0;
}

static struct migsim_dev *dev_to_migsim(struct device *dev)
{
	return dev_get_drvdata(dev);
}

MIGSIM_SHOW(state_size, "%llu", mdev->store->size);

static ssize_t state_size_store(struct device *dev,
				struct device_attribute *attr,
				const char *buf, size_t count)
{
	struct migsim_dev *mdev = dev_to_migsim(dev);
	u64 size;
	int ret;

	ret = migsim_parse_size(buf, &size);
	if (ret)
		return ret;
	mutex_lock(&mdev->state_mutex);
	ret = migsim_resize(mdev, size);
	mutex_unlock(&mdev->state_mutex);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(state_size);

MIGSIM_SHOW(dirty_rate, "%llu", mdev->engine.rate);

static ssize_t dirty_rate_store(struct device *dev,
				struct device_attribute *attr,
				const char *buf, size_t count)
{
	struct migsim_dev *mdev = dev_to_migsim(dev);
	u64 rate;
	int ret;

	ret = migsim_parse_size(buf, &rate);
	if (ret)
		return ret;
	mutex_lock(&mdev->state_mutex);
	migsim_engine_set(mdev, rate, mdev->engine.hot_permille);
	mutex_unlock(&mdev->state_mutex);
	return count;
}
static DEVICE_ATTR_RW(dirty_rate);

MIGSIM_SHOW(hot_set, "%llu", mdev->engine.hot_permille);

static ssize_t hot_set_store(struct device *dev,
			     struct device_attribute *attr,
			     const char *buf, size_t count)
{
	struct migsim_dev *mdev = dev_to_migsim(dev);
	u32 hot;
	int ret;

	ret = kstrtou32(buf, 0, &hot);
	if (ret)
		return ret;
	if (!hot || hot > 1000)
		return -EINVAL;
	mutex_lock(&mdev->state_mutex);
	migsim_engine_set(mdev, mdev->engine.rate, hot);
	mutex_unlock(&mdev->state_mutex);
	return count;
}
static DEVICE_ATTR_RW(hot_set);

MIGSIM_SHOW(nonprecopy_size, "%llu", mdev->nonprecopy_size);

static ssize_t nonprecopy_size_store(struct device *dev,
				     struct device_attribute *attr,
				     const char *buf, size_t count)
{
	struct migsim_dev *mdev = dev_to_migsim(dev);
	u64 np;
	int ret;

	ret = migsim_parse_size(buf, &np);
	if (ret)
		return ret;
	if (np > migsim_max_state_size)
		return -EINVAL;
	mutex_lock(&mdev->state_mutex);
	if (mdev->saving || mdev->resuming)
		ret = -EBUSY;
	else
		mdev->nonprecopy_size = np;
	mutex_unlock(&mdev->state_mutex);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(nonprecopy_size);

MIGSIM_SHOW(bytes_dirtied, "%llu", mdev->engine.bytes_dirtied);
static DEVICE_ATTR_RO(bytes_dirtied);

static ssize_t migration_params_show(struct device *dev,
				     struct device_attribute *attr, char *buf)
{
	struct migsim_dev *mdev = dev_to_migsim(dev);
	ssize_t n;

	mutex_lock(&mdev->state_mutex);
	n = sysfs_emit(buf, "format=%u chunk_size=%u ext_regs=%u\n",
		       mdev->format, mdev->store->chunk_size,
		       !!(mdev->features & MIGSIM_FEAT_EXT_REGS));
	mutex_unlock(&mdev->state_mutex);
	return n;
}

/*
 * "name=value ..." with any of format, chunk_size and ext_regs: the
 * parameters the instance migrates with.  Only while the device is not
 * open, as a VMM sees them fixed; all or nothing.
 */
static ssize_t migration_params_store(struct device *dev,
				      struct device_attribute *attr,
				      const char *buf, size_t count)
{
	struct migsim_dev *mdev = dev_to_migsim(dev);
	char *copy, *cur, *tok, *val;
	u32 format, chunk, features;
	struct migsim_store *ns;
	int ret = 0;
	u32 v;

	copy = kstrndup(buf, count, GFP_KERNEL);
	if (!copy)
		return -ENOMEM;

	mutex_lock(&mdev->state_mutex);
	format = mdev->format;
	chunk = mdev->store->chunk_size;
	features = mdev->features;
	cur = strim(copy);
	while (!ret && (tok = strsep(&cur, " \t\n"))) {
		if (!*tok)
			continue;
		val = strchr(tok, '=');
		if (!val) {
			ret = -EINVAL;
			break;
		}
		*val++ = '\0';
		if (!strcmp(tok, "chunk_size")) {
			u64 c = memparse(val, &val);

			ret = *val || !is_power_of_2(c) || c < SZ_4K ||
			      c > SZ_64M ? -EINVAL : 0;
			chunk = c;
			continue;
		}
		ret = kstrtou32(val, 0, &v);
		if (ret)
			break;
		if (!strcmp(tok, "format") && v >= MIGSIM_FORMAT_MIN &&
		    v <= MIGSIM_FORMAT_MAX)
			format = v;
		else if (!strcmp(tok, "ext_regs") && v <= 1)
			features = v ? features | MIGSIM_FEAT_EXT_REGS :
				       features & ~MIGSIM_FEAT_EXT_REGS;
		else
			ret = -EINVAL;
	}
	if (!ret && mdev->opened)
		ret = -EBUSY;
	if (!ret && chunk != mdev->store->chunk_size) {
		ns = migsim_store_rechunk(mdev->store, chunk);
		if (ns) {
			migsim_store_free(mdev->store);
			mdev->store = ns;
		} else {
			ret = -ENOMEM;
		}
	}
	if (!ret) {
		mdev->format = format;
		mdev->features = features;
	}
	mutex_unlock(&mdev->state_mutex);
	kfree(copy);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(migration_params);

MIGSIM_SHOW(chunk_size, "%llu", mdev->store->chunk_size);
static DEVICE_ATTR_RO(chunk_size);

MIGSIM_SHOW(seed, "0x%016llx", mdev->store->seed);
static DEVICE_ATTR_RO(seed);

MIGSIM_SHOW(checksum, "0x%08llx", migsim_checksum(mdev));
static DEVICE_ATTR_RO(checksum);

MIGSIM_SHOW(generation, "%llu", mdev->generation);
static DEVICE_ATTR_RO(generation);

static ssize_t migration_state_show(struct device *dev,
				    struct device_attribute *attr, char *buf)
{
	struct migsim_dev *mdev = dev_to_migsim(dev);
	enum vfio_device_mig_state state;

	mutex_lock(&mdev->state_mutex);
	state = mdev->mig_state;
	mutex_unlock(&mdev->state_mutex);
	return sysfs_emit(buf, "%s\n", migsim_state_name(state));
}
static DEVICE_ATTR_RO(migration_state);

static ssize_t last_error_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	struct migsim_dev *mdev = dev_to_migsim(dev);
	ssize_t n;

	spin_lock(&mdev->error_lock);
	n = sysfs_emit(buf, "%s\n", mdev->last_error);
	spin_unlock(&mdev->error_lock);
	return n;
}
static DEVICE_ATTR_RO(last_error);

static struct attribute *migsim_dev_attrs[] = {
	&dev_attr_state_size.attr,
	&dev_attr_chunk_size.attr,
	&dev_attr_seed.attr,
	&dev_attr_checksum.attr,
	&dev_attr_generation.attr,
	&dev_attr_migration_state.attr,
	&dev_attr_last_error.attr,
	&dev_attr_dirty_rate.attr,
	&dev_attr_hot_set.attr,
	&dev_attr_nonprecopy_size.attr,
	&dev_attr_bytes_dirtied.attr,
	&dev_attr_migration_params.attr,
	NULL,
};

static const struct attribute_group migsim_dev_group = {
	.name = MIGSIM_SYSFS_GROUP,
	.attrs = migsim_dev_attrs,
};

static const struct attribute_group *migsim_dev_groups[] = {
	&migsim_dev_group,
	NULL,
};

/* ------------------------------------------------------------ mdev */

static int migsim_probe(struct mdev_device *mdevice)
{
	struct migsim_dev *mdev;
	int ret;

	mdev = vfio_alloc_device(migsim_dev, vdev, &mdevice->dev,
				 &migsim_dev_ops);
	if (IS_ERR(mdev))
		return PTR_ERR(mdev);

	dev_set_drvdata(&mdevice->dev, mdev);
	ret = vfio_register_emulated_iommu_dev(&mdev->vdev);
	if (ret)
		goto err_put;
	ret = migsim_nl_register(mdev);
	if (ret)
		goto err_unregister;
	return 0;

err_unregister:
	vfio_unregister_group_dev(&mdev->vdev);
err_put:
	dev_set_drvdata(&mdevice->dev, NULL);
	vfio_put_device(&mdev->vdev);
	return ret;
}

static void migsim_remove(struct mdev_device *mdevice)
{
	struct migsim_dev *mdev = dev_get_drvdata(&mdevice->dev);

	migsim_nl_unregister(mdev);
	vfio_unregister_group_dev(&mdev->vdev);
	vfio_put_device(&mdev->vdev);
}

static ssize_t migsim_show_description(struct mdev_type *mtype, char *buf)
{
	return sysfs_emit(buf,
			  "simulated device, %lu MiB of state in %u KiB chunks by default\n",
			  default_state_size >> 20, chunk_size >> 10);
}

/*
 * The type's migration_info: the device model and each migration parameter
 * with its type, allowed values and off value, one per line, so that a
 * management tool can tell whether an instance can migrate to another host
 * without starting a migration (Documentation/compatibility.rst).
 */
static ssize_t migration_info_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	int n, c;

	n = sysfs_emit(buf, "model %s\n", MIGSIM_MODEL);
	n += sysfs_emit_at(buf, n, "param format uint allowed=%u-%u off=%u\n",
			   MIGSIM_FORMAT_MIN, MIGSIM_FORMAT_MAX,
			   MIGSIM_FORMAT_MIN);
	n += sysfs_emit_at(buf, n, "param chunk_size uint allowed=");
	for (c = SZ_4K; c <= SZ_64M; c <<= 1)
		n += sysfs_emit_at(buf, n, "%s%d", c == SZ_4K ? "" : ",", c);
	n += sysfs_emit_at(buf, n, " off=%u\n", chunk_size);
	n += sysfs_emit_at(buf, n, "param ext_regs bool allowed=0-1 off=0\n");
	return n;
}

static struct kobj_attribute migsim_info_attr = __ATTR_RO(migration_info);

static struct mdev_type migsim_type = {
	.sysfs_name = "v1",
	.pretty_name = "vfio-migsim v1",
};

static struct mdev_type *migsim_types[] = {
	&migsim_type,
};

static struct mdev_driver migsim_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.max_instances = MIGSIM_MAX_INSTANCES,
	.driver = {
		.name = "vfio-migsim",
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
		.dev_groups = migsim_dev_groups,
	},
	.probe = migsim_probe,
	.remove = migsim_remove,
	.show_description = migsim_show_description,
};

static const struct class migsim_class = {
	.name = MIGSIM_PARENT_NAME,
};

static struct migsim_parent {
	struct device dev;
	struct mdev_parent parent;
} migsim_parent;

static void migsim_parent_release(struct device *dev)
{
}

static int __init migsim_init(void)
{
	int ret;

	if (!is_power_of_2(chunk_size) || chunk_size < SZ_4K ||
	    chunk_size > SZ_64M) {
		pr_err("vfio-migsim: chunk_size %u is not a power of two in [4K, 64M]\n",
		       chunk_size);
		return -EINVAL;
	}
	if (default_state_size < SZ_4K || default_state_size % SZ_4K ||
	    default_state_size > migsim_max_state_size) {
		pr_err("vfio-migsim: default_state_size %lu is out of range\n",
		       default_state_size);
		return -EINVAL;
	}

	ret = migsim_nl_init();
	if (ret)
		return ret;
	ret = mdev_register_driver(&migsim_driver);
	if (ret)
		goto err_nl;
	ret = class_register(&migsim_class);
	if (ret)
		goto err_driver;

	migsim_parent.dev.class = &migsim_class;
	migsim_parent.dev.release = migsim_parent_release;
	dev_set_name(&migsim_parent.dev, "%s", MIGSIM_PARENT_NAME);
	ret = device_register(&migsim_parent.dev);
	if (ret)
		goto err_put;
	ret = mdev_register_parent(&migsim_parent.parent, &migsim_parent.dev,
				   &migsim_driver, migsim_types,
				   ARRAY_SIZE(migsim_types));
	if (ret)
		goto err_device;
	ret = sysfs_create_file(&migsim_type.kobj, &migsim_info_attr.attr);
	if (ret)
		goto err_parent;
	return 0;

err_parent:
	mdev_unregister_parent(&migsim_parent.parent);
err_device:
	device_del(&migsim_parent.dev);
err_put:
	put_device(&migsim_parent.dev);
	class_unregister(&migsim_class);
err_driver:
	mdev_unregister_driver(&migsim_driver);
err_nl:
	migsim_nl_exit();
	return ret;
}

static void __exit migsim_exit(void)
{
	sysfs_remove_file(&migsim_type.kobj, &migsim_info_attr.attr);
	mdev_unregister_parent(&migsim_parent.parent);
	device_unregister(&migsim_parent.dev);
	class_unregister(&migsim_class);
	mdev_unregister_driver(&migsim_driver);
	migsim_nl_exit();
}

module_init(migsim_init);
module_exit(migsim_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VFIO mdev device simulating large migratable state");

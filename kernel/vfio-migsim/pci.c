// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-migsim: the PCI face of the device.
 *
 * A type 0 config space with one 32-bit memory BAR, and BAR0, a 4 KiB
 * register file (include/uapi/linux/vfio_migsim.h).  The device has no
 * interrupts and no capabilities, which is enough for a VMM's vfio-pci code
 * to enumerate, map and migrate it.  The scratch registers, the command
 * register and the BAR address are device state that migrates.
 *
 * Every access takes state_mutex (see migsim.h).
 */
#include <linux/pci_regs.h>
#include <linux/unaligned.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include "migsim.h"

#define MIGSIM_OFFSET_SHIFT 40
#define MIGSIM_OFFSET_MASK ((1ULL << MIGSIM_OFFSET_SHIFT) - 1)
#define MIGSIM_INDEX_TO_OFFSET(i) ((u64)(i) << MIGSIM_OFFSET_SHIFT)

/* Bits of each config space byte that the guest may change. */
static const u8 migsim_cfg_wmask[MIGSIM_CONFIG_SIZE] = {
	[PCI_COMMAND] = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
	[PCI_COMMAND + 1] = PCI_COMMAND_INTX_DISABLE >> 8,
	/* BAR0: 4 KiB, so address bits 31:12 are writable */
	[PCI_BASE_ADDRESS_0 + 1] = 0xf0,
	[PCI_BASE_ADDRESS_0 + 2] = 0xff,
	[PCI_BASE_ADDRESS_0 + 3] = 0xff,
	[PCI_INTERRUPT_LINE] = 0xff,
};

static void migsim_put16(u8 *cfg, int off, u16 v)
{
	put_unaligned_le16(v, cfg + off);
}

void migsim_pci_init(struct migsim_dev *mdev)
{
	u8 *cfg = mdev->config;

	memset(cfg, 0, MIGSIM_CONFIG_SIZE);
	migsim_put16(cfg, PCI_VENDOR_ID, MIGSIM_PCI_VENDOR_ID);
	migsim_put16(cfg, PCI_DEVICE_ID, MIGSIM_PCI_DEVICE_ID);
	cfg[PCI_REVISION_ID] = MIGSIM_PCI_REVISION;
	cfg[PCI_CLASS_PROG] = MIGSIM_PCI_CLASS & 0xff;
	cfg[PCI_CLASS_DEVICE] = (MIGSIM_PCI_CLASS >> 8) & 0xff;
	cfg[PCI_CLASS_DEVICE + 1] = (MIGSIM_PCI_CLASS >> 16) & 0xff;
	cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	put_unaligned_le32(PCI_BASE_ADDRESS_SPACE_MEMORY |
			   PCI_BASE_ADDRESS_MEM_TYPE_32,
			   cfg + PCI_BASE_ADDRESS_0);
	migsim_put16(cfg, PCI_SUBSYSTEM_VENDOR_ID, MIGSIM_PCI_VENDOR_ID);
	migsim_put16(cfg, PCI_SUBSYSTEM_ID, MIGSIM_PCI_DEVICE_ID);
	memset(mdev->scratch, 0, sizeof(mdev->scratch));
}

/* A function-level reset: registers back to power-on, state content kept. */
void migsim_pci_reset(struct migsim_dev *mdev)
{
	migsim_pci_init(mdev);
}

static u32 migsim_nr_scratch(struct migsim_dev *mdev)
{
	return mdev->features & MIGSIM_FEAT_EXT_REGS ? MIGSIM_NR_SCRATCH_EXT :
						       MIGSIM_NR_SCRATCH;
}

/* Bytes of the CONFIG payload: longer with the ext_regs feature. */
u32 migsim_config_len(struct migsim_dev *mdev)
{
	return sizeof(struct migsim_config_state) +
	       (mdev->features & MIGSIM_FEAT_EXT_REGS ?
		sizeof(struct migsim_config_ext) : 0);
}

void migsim_config_save(struct migsim_dev *mdev, void *buf)
{
	struct migsim_config_state *cfg = buf;
	struct migsim_config_ext *ext = (void *)(cfg + 1);
	int i;

	memset(buf, 0, migsim_config_len(mdev));
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++)
		cfg->scratch[i] = cpu_to_le32(mdev->scratch[i]);
	for (; i < migsim_nr_scratch(mdev); i++)
		ext->scratch[i - MIGSIM_NR_SCRATCH] =
			cpu_to_le32(mdev->scratch[i]);
	cfg->pci_command = cpu_to_le16(get_unaligned_le16(mdev->config +
							  PCI_COMMAND));
	cfg->bar0 = cpu_to_le32(get_unaligned_le32(mdev->config +
						   PCI_BASE_ADDRESS_0));
}

void migsim_config_load(struct migsim_dev *mdev, const void *buf)
{
	const struct migsim_config_state *cfg = buf;
	const struct migsim_config_ext *ext = (const void *)(cfg + 1);
	u16 cmd = le16_to_cpu(cfg->pci_command);
	u32 bar = le32_to_cpu(cfg->bar0);
	int i;

	for (i = 0; i < MIGSIM_NR_SCRATCH; i++)
		mdev->scratch[i] = le32_to_cpu(cfg->scratch[i]);
	for (; i < migsim_nr_scratch(mdev); i++)
		mdev->scratch[i] =
			le32_to_cpu(ext->scratch[i - MIGSIM_NR_SCRATCH]);
	for (i = 0; i < 2; i++)
		mdev->config[PCI_COMMAND + i] =
			((cmd >> (8 * i)) & migsim_cfg_wmask[PCI_COMMAND + i]);
	for (i = 0; i < 4; i++) {
		u8 m = migsim_cfg_wmask[PCI_BASE_ADDRESS_0 + i];
		u8 *b = &mdev->config[PCI_BASE_ADDRESS_0 + i];

		*b = (*b & ~m) | ((bar >> (8 * i)) & m);
	}
}

static u32 migsim_reg_read(struct migsim_dev *mdev, u32 off)
{
	struct migsim_store *st = mdev->store;

	switch (off) {
	case MIGSIM_REG_ID:
		return MIGSIM_REG_ID_VALUE;
	case MIGSIM_REG_VERSION:
		return MIGSIM_STREAM_VERSION;
	case MIGSIM_REG_SIZE_LO:
		return lower_32_bits(st->size);
	case MIGSIM_REG_SIZE_HI:
		return upper_32_bits(st->size);
	case MIGSIM_REG_GEN_LO:
		return lower_32_bits(mdev->generation);
	case MIGSIM_REG_GEN_HI:
		return upper_32_bits(mdev->generation);
	case MIGSIM_REG_CHUNK_SIZE:
		return st->chunk_size;
	case MIGSIM_REG_MIG_STATE:
		return mdev->mig_state;
	case MIGSIM_REG_CHECKSUM:
		return migsim_checksum(mdev);
	}
	if (off >= MIGSIM_REG_SCRATCH0 &&
	    off < MIGSIM_REG_SCRATCH0 + 4 * migsim_nr_scratch(mdev))
		return mdev->scratch[(off - MIGSIM_REG_SCRATCH0) / 4];
	return 0;
}

static void migsim_reg_write(struct migsim_dev *mdev, u32 off, u32 val)
{
	if (off >= MIGSIM_REG_SCRATCH0 &&
	    off < MIGSIM_REG_SCRATCH0 + 4 * migsim_nr_scratch(mdev))
		mdev->scratch[(off - MIGSIM_REG_SCRATCH0) / 4] = val;
	/* the other registers are read-only; writes are ignored */
}

/*
 * One access of at most 4 bytes that does not cross a 32-bit boundary.
 * buf is a kernel buffer.
 */
static int migsim_access(struct migsim_dev *mdev, u32 index, u64 off,
			 u8 *buf, u32 len, bool write)
{
	u32 i, word, shift;

	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		if (off + len > MIGSIM_CONFIG_SIZE)
			return -EINVAL;
		for (i = 0; i < len; i++) {
			u8 m = migsim_cfg_wmask[off + i];
			u8 *b = &mdev->config[off + i];

			if (write)
				*b = (*b & ~m) | (buf[i] & m);
			else
				buf[i] = *b;
		}
		return 0;
	case VFIO_PCI_BAR0_REGION_INDEX:
		if (off + len > MIGSIM_BAR0_SIZE)
			return -EINVAL;
		word = migsim_reg_read(mdev, off & ~3ULL);
		shift = (off & 3) * 8;
		if (!write) {
			word >>= shift;
			for (i = 0; i < len; i++, word >>= 8)
				buf[i] = word & 0xff;
			return 0;
		}
		for (i = 0; i < len; i++) {
			word &= ~(0xffU << (shift + 8 * i));
			word |= (u32)buf[i] << (shift + 8 * i);
		}
		migsim_reg_write(mdev, off & ~3ULL, word);
		return 0;
	}
	return -EINVAL;
}

static ssize_t migsim_rw(struct vfio_device *vdev, char __user *ubuf,
			 size_t count, loff_t *ppos, bool write)
{
	struct migsim_dev *mdev = to_migsim(vdev);
	u32 index = *ppos >> MIGSIM_OFFSET_SHIFT;
	u64 off = *ppos & MIGSIM_OFFSET_MASK;
	size_t done = 0;
	int ret = 0;

	mutex_lock(&mdev->state_mutex);
	while (done < count) {
		u32 len = min_t(u64, count - done, 4 - (off & 3));
		u8 buf[4];

		if (write && copy_from_user(buf, ubuf + done, len)) {
			ret = -EFAULT;
			break;
		}
		ret = migsim_access(mdev, index, off, buf, len, write);
		if (ret)
			break;
		if (!write && copy_to_user(ubuf + done, buf, len)) {
			ret = -EFAULT;
			break;
		}
		done += len;
		off += len;
	}
	mutex_unlock(&mdev->state_mutex);
	if (!done)
		return ret;
	*ppos += done;
	return done;
}

ssize_t migsim_read(struct vfio_device *vdev, char __user *buf, size_t count,
		    loff_t *ppos)
{
	return migsim_rw(vdev, buf, count, ppos, false);
}

ssize_t migsim_write(struct vfio_device *vdev, const char __user *buf,
		     size_t count, loff_t *ppos)
{
	return migsim_rw(vdev, (char __user *)buf, count, ppos, true);
}

static int migsim_region_info(struct vfio_region_info *info)
{
	if (info->index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	info->offset = MIGSIM_INDEX_TO_OFFSET(info->index);
	info->cap_offset = 0;
	switch (info->index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		info->size = MIGSIM_CONFIG_SIZE;
		break;
	case VFIO_PCI_BAR0_REGION_INDEX:
		info->size = MIGSIM_BAR0_SIZE;
		break;
	default:
		info->size = 0;
		info->flags = 0;
		return 0;
	}
	info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	return 0;
}

long migsim_ioctl(struct vfio_device *vdev, unsigned int cmd,
		  unsigned long arg)
{
	struct migsim_dev *mdev = to_migsim(vdev);
	void __user *uarg = (void __user *)arg;
	unsigned long minsz;
	int ret;

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO: {
		struct vfio_device_info info;

		minsz = offsetofend(struct vfio_device_info, num_irqs);
		if (copy_from_user(&info, uarg, minsz))
			return -EFAULT;
		if (info.argsz < minsz)
			return -EINVAL;
		info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
		info.num_regions = VFIO_PCI_NUM_REGIONS;
		info.num_irqs = VFIO_PCI_NUM_IRQS;
		return copy_to_user(uarg, &info, minsz) ? -EFAULT : 0;
	}
	case VFIO_DEVICE_GET_REGION_INFO: {
		struct vfio_region_info info;

		minsz = offsetofend(struct vfio_region_info, offset);
		if (copy_from_user(&info, uarg, minsz))
			return -EFAULT;
		if (info.argsz < minsz)
			return -EINVAL;
		ret = migsim_region_info(&info);
		if (ret)
			return ret;
		return copy_to_user(uarg, &info, minsz) ? -EFAULT : 0;
	}
	case VFIO_DEVICE_GET_IRQ_INFO: {
		struct vfio_irq_info info;

		minsz = offsetofend(struct vfio_irq_info, count);
		if (copy_from_user(&info, uarg, minsz))
			return -EFAULT;
		if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS)
			return -EINVAL;
		/* no interrupt of any kind: INTx pin 0, no MSI/MSI-X caps */
		info.flags = 0;
		info.count = 0;
		return copy_to_user(uarg, &info, minsz) ? -EFAULT : 0;
	}
	case VFIO_DEVICE_SET_IRQS: {
		struct vfio_irq_set hdr;
		size_t data_size = 0;

		minsz = offsetofend(struct vfio_irq_set, count);
		if (copy_from_user(&hdr, uarg, minsz))
			return -EFAULT;
		/* every index has zero vectors: only an empty set is valid */
		ret = vfio_set_irqs_validate_and_prepare(&hdr, 0,
							 VFIO_PCI_NUM_IRQS,
							 &data_size);
		return ret;
	}
	case VFIO_DEVICE_RESET:
		mutex_lock(&mdev->state_mutex);
		migsim_disable_fds(mdev);
		if (mdev->mig_state != VFIO_DEVICE_STATE_RUNNING)
			migsim_nl_state_event(mdev, mdev->mig_state,
					      VFIO_DEVICE_STATE_RUNNING);
		mdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
		mdev->precopy_info_v2 = false;
		migsim_pci_reset(mdev);
		mutex_unlock(&mdev->state_mutex);
		return 0;
	}
	return -ENOTTY;
}

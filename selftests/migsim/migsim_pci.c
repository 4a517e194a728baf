// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: the device's PCI face through VFIO: device, region and IRQ
 * info, config space identity and BAR sizing, the BAR0 register file, and
 * VFIO_DEVICE_RESET.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

#define PCI_VENDOR_ID_OFF	0x00
#define PCI_CLASS_REV_OFF	0x08
#define PCI_BAR0_OFF		0x10

FIXTURE(pci) {
	struct migsim_inst in;
};

FIXTURE_SETUP(pci)
{
	ASSERT_EQ(0, migsim_inst_create_open(&self->in, 4 * KiB));
}

FIXTURE_TEARDOWN_PARENT(pci)
{
	if (self->in.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->in.uuid));
}

TEST_F(pci, device_info_is_pci_with_reset)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };

	ASSERT_EQ(0, ioctl(self->in.fd, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_TRUE(info.flags & VFIO_DEVICE_FLAGS_PCI);
	EXPECT_TRUE(info.flags & VFIO_DEVICE_FLAGS_RESET);
	EXPECT_EQ(VFIO_PCI_NUM_REGIONS, info.num_regions);
	EXPECT_EQ(VFIO_PCI_NUM_IRQS, info.num_irqs);
}

TEST_F(pci, config_region_is_256_bytes_rw)
{
	struct vfio_region_info ri;

	ASSERT_EQ(0, migsim_region_info(self->in.fd,
					VFIO_PCI_CONFIG_REGION_INDEX, &ri));
	EXPECT_EQ(MIGSIM_CONFIG_SIZE, ri.size);
	EXPECT_TRUE(ri.flags & VFIO_REGION_INFO_FLAG_READ);
	EXPECT_TRUE(ri.flags & VFIO_REGION_INFO_FLAG_WRITE);
}

TEST_F(pci, bar0_region_is_4k_rw)
{
	struct vfio_region_info ri;

	ASSERT_EQ(0, migsim_region_info(self->in.fd,
					VFIO_PCI_BAR0_REGION_INDEX, &ri));
	EXPECT_EQ(MIGSIM_BAR0_SIZE, ri.size);
	EXPECT_TRUE(ri.flags & VFIO_REGION_INFO_FLAG_READ);
	EXPECT_TRUE(ri.flags & VFIO_REGION_INFO_FLAG_WRITE);
}

TEST_F(pci, other_regions_are_empty)
{
	struct vfio_region_info ri;
	uint32_t i;

	for (i = VFIO_PCI_BAR1_REGION_INDEX; i < VFIO_PCI_NUM_REGIONS; i++) {
		if (i == VFIO_PCI_CONFIG_REGION_INDEX)
			continue;
		ASSERT_EQ(0, migsim_region_info(self->in.fd, i, &ri))
			TH_LOG("region %u", i);
		EXPECT_EQ(0, ri.size) TH_LOG("region %u", i);
	}
}

TEST_F(pci, config_space_has_migsim_ids)
{
	uint32_t id, class_rev;

	ASSERT_EQ(0, migsim_cfg_read32(self->in.fd, PCI_VENDOR_ID_OFF, &id));
	ASSERT_EQ(0, migsim_cfg_read32(self->in.fd, PCI_CLASS_REV_OFF,
				       &class_rev));
	EXPECT_EQ(MIGSIM_PCI_VENDOR_ID, id & 0xffff);
	EXPECT_EQ(MIGSIM_PCI_DEVICE_ID, id >> 16);
	EXPECT_EQ(MIGSIM_PCI_CLASS, class_rev >> 8);
	EXPECT_EQ(MIGSIM_PCI_REVISION, class_rev & 0xff);
}

TEST_F(pci, bar0_is_32bit_memory_bar)
{
	uint32_t bar;

	ASSERT_EQ(0, migsim_cfg_read32(self->in.fd, PCI_BAR0_OFF, &bar));
	EXPECT_EQ(0, bar & 0x1);		/* memory space */
	EXPECT_EQ(0, (bar >> 1) & 0x3);		/* 32-bit */
}

TEST_F(pci, bar0_sizing_reads_size_mask)
{
	uint32_t bar;

	ASSERT_EQ(0, migsim_cfg_write32(self->in.fd, PCI_BAR0_OFF,
					0xffffffff));
	ASSERT_EQ(0, migsim_cfg_read32(self->in.fd, PCI_BAR0_OFF, &bar));
	EXPECT_EQ((uint32_t)~(MIGSIM_BAR0_SIZE - 1), bar & ~0xfU);
	EXPECT_EQ(0, bar & 0x7);	/* still a 32-bit memory BAR */
}

TEST_F(pci, bar0_keeps_written_address)
{
	const uint32_t addr = 0xfebf0000;
	uint32_t bar;

	ASSERT_EQ(0, migsim_cfg_write32(self->in.fd, PCI_BAR0_OFF, addr));
	ASSERT_EQ(0, migsim_cfg_read32(self->in.fd, PCI_BAR0_OFF, &bar));
	EXPECT_EQ(addr, bar & ~0xfU);
}

TEST_F(pci, id_registers_read_magic_and_version)
{
	uint32_t v;

	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_ID, &v));
	EXPECT_EQ(MIGSIM_REG_ID_VALUE, v);
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_VERSION, &v));
	EXPECT_EQ(MIGSIM_STREAM_VERSION, v);
}

TEST_F(pci, id_register_ignores_writes)
{
	uint32_t v;

	/* a write may fail or be dropped; the value must not change */
	migsim_bar0_write32(self->in.fd, MIGSIM_REG_ID, 0x12345678);
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_ID, &v));
	EXPECT_EQ(MIGSIM_REG_ID_VALUE, v);
}

TEST_F(pci, size_registers_match_state_size)
{
	uint32_t lo, hi;
	uint64_t size;

	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_SIZE_LO, &lo));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_SIZE_HI, &hi));
	EXPECT_EQ(4 * KiB, size);
	EXPECT_EQ(size, ((uint64_t)hi << 32) | lo);
}

TEST_F(pci, chunk_size_register_matches_sysfs)
{
	uint64_t chunk;
	uint32_t v;

	ASSERT_EQ(0, migsim_chunk_size(self->in.uuid, &chunk));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_CHUNK_SIZE,
					&v));
	EXPECT_EQ(chunk, v);
}

TEST_F(pci, generation_registers_match_sysfs)
{
	uint32_t lo, hi;
	uint64_t gen;

	ASSERT_EQ(0, migsim_generation(self->in.uuid, &gen));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_GEN_LO, &lo));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_GEN_HI, &hi));
	EXPECT_EQ(gen, ((uint64_t)hi << 32) | lo);
}

TEST_F(pci, checksum_register_matches_sysfs)
{
	uint32_t csum, v;

	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &csum));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_CHECKSUM, &v));
	EXPECT_EQ(csum, v);
}

TEST_F(pci, mig_state_register_follows_state)
{
	uint32_t v;

	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_MIG_STATE,
					&v));
	EXPECT_EQ(VMIG_STATE_RUNNING, v);
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_MIG_STATE,
					&v));
	EXPECT_EQ(VMIG_STATE_STOP, v);
}

TEST_F(pci, scratch_registers_read_back)
{
	uint32_t v;
	int i;

	for (i = 0; i < MIGSIM_NR_SCRATCH; i++)
		ASSERT_EQ(0, migsim_bar0_write32(self->in.fd,
				MIGSIM_REG_SCRATCH0 + 4 * i, 0xa5a50000 + i));
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++) {
		ASSERT_EQ(0, migsim_bar0_read32(self->in.fd,
				MIGSIM_REG_SCRATCH0 + 4 * i, &v));
		EXPECT_EQ(0xa5a50000 + i, v) TH_LOG("SCRATCH%d", i);
	}
}

TEST_F(pci, irq_info_reports_no_interrupts)
{
	struct vfio_irq_info irq;
	uint32_t i;

	for (i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
		memset(&irq, 0, sizeof(irq));
		irq.argsz = sizeof(irq);
		irq.index = i;
		if (ioctl(self->in.fd, VFIO_DEVICE_GET_IRQ_INFO, &irq)) {
			/* only INTx must be described */
			EXPECT_NE(VFIO_PCI_INTX_IRQ_INDEX, i);
			EXPECT_EQ(EINVAL, errno) TH_LOG("irq index %u", i);
			continue;
		}
		EXPECT_EQ(0, irq.count) TH_LOG("irq index %u", i);
	}
}

TEST_F(pci, reset_returns_to_running)
{
	enum vmig_dev_state st;

	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, vmig_vfio_reset(self->in.dev));
	ASSERT_EQ(0, migsim_get_state(&self->in, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, migsim_sysfs_mig_state(self->in.uuid, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
}

TEST_F(pci, reset_clears_scratch_registers)
{
	uint32_t v;
	int i;

	for (i = 0; i < MIGSIM_NR_SCRATCH; i++)
		ASSERT_EQ(0, migsim_bar0_write32(self->in.fd,
				MIGSIM_REG_SCRATCH0 + 4 * i, 0x5a5a0000 + i));
	ASSERT_EQ(0, vmig_vfio_reset(self->in.dev));
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++) {
		ASSERT_EQ(0, migsim_bar0_read32(self->in.fd,
				MIGSIM_REG_SCRATCH0 + 4 * i, &v));
		EXPECT_EQ(0, v) TH_LOG("SCRATCH%d", i);
	}
}

TEST_F(pci, reset_keeps_state_content)
{
	uint32_t before, after;

	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &before));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, vmig_vfio_reset(self->in.dev));
	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &after));
	EXPECT_EQ(before, after);
}

TEST_F(pci, migration_flags_are_stop_copy_p2p_pre_copy)
{
	uint32_t flags;

	ASSERT_EQ(0, vmig_vfio_mig_flags(self->in.dev, &flags));
	EXPECT_EQ(VMIG_MIG_STOP_COPY | VMIG_MIG_P2P | VMIG_MIG_PRE_COPY,
		  flags);
}

TEST_HARNESS_MAIN

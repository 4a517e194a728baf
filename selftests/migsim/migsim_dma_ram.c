// SPDX-License-Identifier: GPL-2.0
/*
 * RAM migration with a device writing guest memory (issue 7): a tiny KVM
 * guest (tools/testvm) dirties its RAM through the KVM dirty ring (the
 * bitmap where the ring is missing) while a migsim device's DMA engine
 * writes the same RAM, which the test mapped into the device's type1
 * container.  libvmig's RAM precopy runs into an in-process destination;
 * then the device stops (RUNNING_P2P), the guest pauses, and the
 * stop-and-copy runs.
 *
 * - With the container added (vmig_ram_add_vfio_container()), the
 *   destination's RAM equals the source's page by page, including pages
 *   the engine wrote after the last precopy harvest.
 * - Without it (the negative check), pages the engine wrote are lost: the
 *   destination differs, and every differing page is one the engine wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_nl.h"
#include "migsim_util.h"
#include "testvm.h"

#define PG		4096ULL
#define RAM_IOVA	0x100000000ULL	/* 4 GiB */
#define RAM_SIZE	(4 * MiB)
#define NPAGES		(RAM_SIZE / PG)
#define DMA_RATE	(8 * MiB)	/* bytes/s: 2048 pages/s */
#define PRECOPY_MS	400
#define TAIL_MS		60		/* device writes after the last sync */

/* ------------------------------------------------------------ helpers */

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000ULL + t.tv_nsec / 1000000;
}

static bool have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Does the page hold an engine write (its header) for this IOVA? */
static bool dma_written(const uint8_t *ram, uint64_t i)
{
	const struct migsim_dma_page *h = (const void *)(ram + i * PG);

	return le64toh(h->magic) == MIGSIM_DMA_MAGIC &&
	       le64toh(h->iova) == RAM_IOVA + i * PG;
}

static int ring_full(void *opaque, unsigned int vcpu)
{
	return vmig_ram_ring_full(opaque, vcpu);
}

/* ------------------------------------------------------------ fixture */

FIXTURE(dma_ram) {
	struct migsim_nl nl;
	struct migsim_inst in;
	int container;
	bool mapped;
	struct testvm *vm;
	enum vmig_tracker tracker;
	struct vmig_ram *ram;
	struct vmig_ram_dest *dest;
	uint8_t *dst;
};

FIXTURE_VARIANT(dma_ram) {
	bool add_container;
};

FIXTURE_VARIANT_ADD(dma_ram, container_merged)
{
	.add_container = true,
};

FIXTURE_VARIANT_ADD(dma_ram, container_not_added)
{
	.add_container = false,
};

FIXTURE_SETUP(dma_ram)
{
	struct testvm_config cfg = {
		.ram_size = RAM_SIZE,
		.nr_vcpus = 1,
		.dirty_ring_entries = 4096,
		.working_set = NPAGES / 4,
		.rate = 2000,
		.batch = 16,
		.step = 7,
	};
	struct vmig_ram_region r = { 0 };
	struct vmig_ram_kvm kvm = { 0 };
	uint64_t iova = RAM_IOVA;
	int ret, vcpu_fd;

	memset(&self->in, 0, sizeof(self->in));
	self->dst = MAP_FAILED;
	if (!have_kvm())
		SKIP(return, "no /dev/kvm");
	ret = migsim_nl_open(&self->nl);
	if (ret == -ENOENT && access(MIGSIM_TYPE_DIR, F_OK))
		SKIP(return, "vfio-migsim is not loaded");
	ASSERT_EQ(0, ret);

	/* The guest: the dirty ring if KVM has it, else the bitmap. */
	self->tracker = VMIG_TRACK_RING;
	ret = testvm_create(&cfg, &self->vm);
	if (ret == -EINVAL) {
		cfg.dirty_ring_entries = 0;
		self->tracker = VMIG_TRACK_BITMAP;
		ret = testvm_create(&cfg, &self->vm);
	}
	ASSERT_EQ(0, ret);
	testvm_fill_random(self->vm, 7);

	/* The device, with the guest's RAM mapped into its container. */
	ASSERT_EQ(0, migsim_inst_create_open(&self->in, 4 * MiB));
	self->container = vmig_vfio_container_fd(self->in.dev);
	ASSERT_LE(0, self->container);
	ASSERT_EQ(0, migsim_map_dma(self->container, testvm_ram(self->vm),
				    RAM_IOVA, RAM_SIZE));
	self->mapped = true;

	r.host_addr = testvm_ram(self->vm);
	r.size = RAM_SIZE;
	r.fd = -1;
	r.kvm_slot = TESTVM_RAM_SLOT;
	vcpu_fd = testvm_vcpu_fd(self->vm, 0);
	kvm.vm_fd = testvm_vm_fd(self->vm);
	kvm.vcpu_fds = &vcpu_fd;
	kvm.nr_vcpus = 1;
	kvm.ring_entries = cfg.dirty_ring_entries;
	ASSERT_EQ(0, vmig_ram_new(&r, 1, &kvm, &self->ram));
	testvm_set_ring_full_handler(self->vm, ring_full, self->ram);
	if (variant->add_container) {
		uint64_t bad = RAM_IOVA + 1;

		EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_container(self->ram,
				self->container, &bad, 0));
		EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_container(self->ram,
				self->container, &iova, PG));
		ASSERT_EQ(0, vmig_ram_add_vfio_container(self->ram,
				self->container, &iova, 0));
	}
	ASSERT_EQ(0, vmig_ram_track_start(self->ram, self->tracker));
	if (variant->add_container)
		EXPECT_EQ(-EBUSY, vmig_ram_add_vfio_container(self->ram,
				self->container, &iova, 0));

	self->dst = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->dst);
	r.host_addr = self->dst;
	ASSERT_EQ(0, vmig_ram_dest_new(&r, 1, &self->dest));
}

FIXTURE_TEARDOWN(dma_ram)
{
	if (self->nl.sk && self->in.uuid[0])
		migsim_dma_off(&self->nl, self->in.uuid);
	if (self->vm)
		testvm_pause(self->vm);
	vmig_ram_free(self->ram);
	vmig_ram_dest_free(self->dest);
	if (self->dst != MAP_FAILED)
		munmap(self->dst, RAM_SIZE);
	if (self->mapped)
		migsim_unmap_dma(self->container, RAM_IOVA, RAM_SIZE);
	migsim_inst_destroy(&self->in);
	testvm_destroy(self->vm);
	migsim_nl_close(&self->nl);
}

/* ------------------------------------------------------------ test */

TEST_F(dma_ram, precopy_then_stop_and_copy)
{
	struct vmig_ram_precopy_stats st;
	struct vmig_ram_stats rs0, rs1;
	struct vmig_ram_precopy *pc;
	struct vmig_ram_sink sink;
	const uint8_t *src = testvm_ram(self->vm);
	struct migsim_dma_range dr = { RAM_IOVA, RAM_SIZE };
	uint64_t t0, p_tail, p_stop, written0, i, bad = 0, bad_dma = 0,
		 dma_pgs = 0, guest;
	int ret, fd = -1;

	vmig_ram_dest_sink(self->dest, &sink);
	ASSERT_EQ(0, vmig_ram_precopy_new(self->ram, &sink, NULL, &pc));

	/* Guest and device both write while the precopy runs. */
	written0 = testvm_pages_written(self->vm);
	ASSERT_EQ(0, migsim_dma_set(&self->nl, self->in.uuid, DMA_RATE, &dr, 1,
				    0, NULL));
	ASSERT_EQ(0, testvm_resume(self->vm));
	t0 = now_ms();
	while (now_ms() - t0 < PRECOPY_MS) {
		ret = vmig_ram_precopy_step(pc);
		ASSERT_LE(0, ret);
		if (!ret)
			migsim_msleep(2);
	}
	/*
	 * Nothing harvests for TAIL_MS: what the device writes now only the
	 * stop-and-copy's sync can collect.
	 */
	p_tail = migsim_dma_pages(&self->nl, self->in.uuid);
	migsim_msleep(TAIL_MS);

	/* Switchover: the device's DMA first, then the vCPUs. */
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING_P2P, &fd));
	p_stop = migsim_dma_pages(&self->nl, self->in.uuid);
	ASSERT_EQ(0, testvm_pause(self->vm));
	guest = testvm_pages_written(self->vm) - written0;
	vmig_ram_get_stats(self->ram, &rs0);
	ASSERT_EQ(0, vmig_ram_precopy_complete(pc));
	vmig_ram_get_stats(self->ram, &rs1);
	vmig_ram_precopy_get_stats(pc, &st);
	/* Stopped: the engine wrote nothing more. */
	EXPECT_EQ(p_stop, migsim_dma_pages(&self->nl, self->in.uuid));
	ASSERT_LT(p_tail, p_stop) TH_LOG("the engine wrote nothing at the end");
	EXPECT_TRUE(st.background_done);

	for (i = 0; i < NPAGES; i++) {
		bool dw = dma_written(src, i);

		dma_pgs += dw;
		if (!memcmp(src + i * PG, self->dst + i * PG, PG))
			continue;
		bad++;
		bad_dma += dw;
	}
	TH_LOG("%s tracker%s: guest wrote %llu pages, engine %llu (%llu in the tail), %llu pages hold engine writes; sent %llu (%llu dirty, %llu at stop-and-copy); container bits %llu (%llu at stop-and-copy); %llu pages differ (%llu by the engine)",
	       self->tracker == VMIG_TRACK_RING ? "ring" : "bitmap",
	       variant->add_container ? " + VFIO container" : " alone",
	       (unsigned long long)guest, (unsigned long long)p_stop,
	       (unsigned long long)(p_stop - p_tail),
	       (unsigned long long)dma_pgs, (unsigned long long)st.pages,
	       (unsigned long long)st.dirty_pages,
	       (unsigned long long)st.final_pages,
	       (unsigned long long)rs1.vfio_reported,
	       (unsigned long long)(rs1.vfio_reported - rs0.vfio_reported),
	       (unsigned long long)bad, (unsigned long long)bad_dma);
	EXPECT_LT(0, guest);
	EXPECT_LT(0, dma_pgs);

	if (variant->add_container) {
		/* Equal, the engine's last writes included. */
		EXPECT_EQ(0, bad);
		EXPECT_LT(0, rs1.vfio_reported - rs0.vfio_reported);
		EXPECT_LE(p_stop - p_tail < NPAGES ? p_stop - p_tail : NPAGES,
			  rs1.vfio_reported - rs0.vfio_reported);
	} else {
		/* The engine's writes are lost, and only they. */
		EXPECT_LT(0, bad);
		EXPECT_EQ(bad, bad_dma);
		EXPECT_EQ(0, rs1.vfio_reported);
	}
	vmig_ram_precopy_free(pc);
}

TEST_HARNESS_MAIN

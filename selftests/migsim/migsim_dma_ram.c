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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "kselftest_harness.h"
#include "migsim_util.h"
#include "testvm.h"

#define PG		4096ULL
#define RAM_IOVA	0x100000000ULL	/* 4 GiB */
#define RAM_SIZE	(4 * MiB)
#define NPAGES		(RAM_SIZE / PG)
#define DMA_RATE	(8 * MiB)	/* bytes/s: 2048 pages/s */
#define PRECOPY_MS	400
#define TAIL_MS		60		/* device writes after the last sync */

/* ------------------------------------------------------------ netlink */

struct nl {
	struct nl_sock *sk;
	int family;
};

struct request {
	int err;
	bool done;
	uint64_t *pages;
};

static int nl_open(struct nl *nl)
{
	nl->sk = nl_socket_alloc();
	if (!nl->sk)
		return -ENOMEM;
	if (genl_connect(nl->sk) < 0)
		goto fail;
	nl->family = genl_ctrl_resolve(nl->sk, MIGSIM_GENL_NAME);
	if (nl->family < 0)
		goto fail;
	return 0;
fail:
	nl_socket_free(nl->sk);
	nl->sk = NULL;
	return -ENOENT;
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct request *r = arg;

	r->err = e->error;
	r->done = true;
	return NL_STOP;
}

static int on_done(struct nl_msg *m, void *arg)
{
	((struct request *)arg)->done = true;
	return NL_STOP;
}

static int on_valid(struct nl_msg *m, void *arg)
{
	struct nlattr *tb[MIGSIM_A_MAX + 1], *st[MIGSIM_STAT_MAX + 1];
	struct request *r = arg;

	if (!r->pages ||
	    genlmsg_parse(nlmsg_hdr(m), 0, tb, MIGSIM_A_MAX, NULL) < 0)
		return NL_OK;
	if (tb[MIGSIM_A_STATS] &&
	    !nla_parse_nested(st, MIGSIM_STAT_MAX, tb[MIGSIM_A_STATS], NULL) &&
	    st[MIGSIM_STAT_DMA_PAGES])
		*r->pages = nla_get_u64(st[MIGSIM_STAT_DMA_PAGES]);
	return NL_OK;
}

/* Send m (freed) and wait for the answer; 0 or -errno. */
static int nl_do(struct nl *nl, struct nl_msg *m, uint64_t *pages)
{
	struct request r = { .pages = pages };
	struct nl_cb *cb;
	int ret;

	if (!m)
		return -ENOMEM;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		nlmsg_free(m);
		return -ENOMEM;
	}
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, &r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_done, &r);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, &r);
	ret = nl_send_auto(nl->sk, m);
	while (ret >= 0 && !r.done)
		ret = nl_recvmsgs(nl->sk, cb);
	if (ret < 0 && !r.done)
		r.err = -EIO;
	nl_cb_put(cb);
	nlmsg_free(m);
	return r.err;
}

static struct nl_msg *req(struct nl *nl, int cmd, const char *uuid)
{
	struct nl_msg *m = nlmsg_alloc();

	if (m && (!genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, 0,
			       cmd, MIGSIM_GENL_VERSION) ||
		  nla_put_string(m, MIGSIM_A_UUID, uuid) < 0)) {
		nlmsg_free(m);
		m = NULL;
	}
	return m;
}

static uint64_t dma_pages(struct nl *nl, const char *uuid)
{
	uint64_t pages = UINT64_MAX;

	if (nl_do(nl, req(nl, MIGSIM_CMD_DEV_GET, uuid), &pages))
		return UINT64_MAX;
	return pages;
}

/* DMA_SET: rate bytes/s over [iova, iova + len); len 0: engine off. */
static int dma_set(struct nl *nl, const char *uuid, uint64_t rate,
		   uint64_t iova, uint64_t len)
{
	struct nl_msg *m = req(nl, MIGSIM_CMD_DMA_SET, uuid);
	struct nlattr *nest, *rn;

	if (!m)
		return -ENOMEM;
	if (!len) {
		/* an empty nest: off (nla_nest_end() would drop it) */
		if (nla_put(m, MIGSIM_A_DMA | NLA_F_NESTED, 0, NULL) < 0)
			goto fail;
		return nl_do(nl, m, NULL);
	}
	nest = nla_nest_start(m, MIGSIM_A_DMA);
	if (!nest || nla_put_u64(m, MIGSIM_DMA_A_RATE, rate))
		goto fail;
	rn = nla_nest_start(m, MIGSIM_DMA_A_RANGE);
	if (!rn || nla_put_u64(m, MIGSIM_DMA_RANGE_A_IOVA, iova) ||
	    nla_put_u64(m, MIGSIM_DMA_RANGE_A_LENGTH, len))
		goto fail;
	nla_nest_end(m, rn);
	nla_nest_end(m, nest);
	return nl_do(nl, m, NULL);
fail:
	nlmsg_free(m);
	return -EMSGSIZE;
}

/* ------------------------------------------------------------ helpers */

static int map_dma(int container, void *vaddr, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &map) ? -errno : 0;
}

static int unmap_dma(int container, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) ? -errno : 0;
}

static void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

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
	struct nl nl;
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
	ret = nl_open(&self->nl);
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
	ASSERT_EQ(0, map_dma(self->container, testvm_ram(self->vm), RAM_IOVA,
			     RAM_SIZE));
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
		dma_set(&self->nl, self->in.uuid, 0, 0, 0);
	if (self->vm)
		testvm_pause(self->vm);
	vmig_ram_free(self->ram);
	vmig_ram_dest_free(self->dest);
	if (self->dst != MAP_FAILED)
		munmap(self->dst, RAM_SIZE);
	if (self->mapped)
		unmap_dma(self->container, RAM_IOVA, RAM_SIZE);
	migsim_inst_destroy(&self->in);
	testvm_destroy(self->vm);
	if (self->nl.sk)
		nl_socket_free(self->nl.sk);
}

/* ------------------------------------------------------------ test */

TEST_F(dma_ram, precopy_then_stop_and_copy)
{
	struct vmig_ram_precopy_stats st;
	struct vmig_ram_stats rs0, rs1;
	struct vmig_ram_precopy *pc;
	struct vmig_ram_sink sink;
	const uint8_t *src = testvm_ram(self->vm);
	uint64_t t0, p_tail, p_stop, written0, i, bad = 0, bad_dma = 0,
		 dma_pgs = 0, guest;
	int ret, fd = -1;

	vmig_ram_dest_sink(self->dest, &sink);
	ASSERT_EQ(0, vmig_ram_precopy_new(self->ram, &sink, NULL, &pc));

	/* Guest and device both write while the precopy runs. */
	written0 = testvm_pages_written(self->vm);
	ASSERT_EQ(0, dma_set(&self->nl, self->in.uuid, DMA_RATE, RAM_IOVA,
			     RAM_SIZE));
	ASSERT_EQ(0, testvm_resume(self->vm));
	t0 = now_ms();
	while (now_ms() - t0 < PRECOPY_MS) {
		ret = vmig_ram_precopy_step(pc);
		ASSERT_LE(0, ret);
		if (!ret)
			msleep(2);
	}
	/*
	 * Nothing harvests for TAIL_MS: what the device writes now only the
	 * stop-and-copy's sync can collect.
	 */
	p_tail = dma_pages(&self->nl, self->in.uuid);
	msleep(TAIL_MS);

	/* Switchover: the device's DMA first, then the vCPUs. */
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING_P2P, &fd));
	p_stop = dma_pages(&self->nl, self->in.uuid);
	ASSERT_EQ(0, testvm_pause(self->vm));
	guest = testvm_pages_written(self->vm) - written0;
	vmig_ram_get_stats(self->ram, &rs0);
	ASSERT_EQ(0, vmig_ram_precopy_complete(pc));
	vmig_ram_get_stats(self->ram, &rs1);
	vmig_ram_precopy_get_stats(pc, &st);
	/* Stopped: the engine wrote nothing more. */
	EXPECT_EQ(p_stop, dma_pages(&self->nl, self->in.uuid));
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

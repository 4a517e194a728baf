// SPDX-License-Identifier: GPL-2.0
/*
 * The DMA engine (Documentation/driver.rst, issue 7): a migsim device that
 * writes memory the test mapped into its type1 container, through
 * vfio_dma_rw().
 *
 * - The pages the engine wrote (found by their struct migsim_dma_page
 *   header) are exactly the pages VFIO_IOMMU_DIRTY_PAGES reports, including
 *   those written just before the device stopped.
 * - In RUNNING_P2P and STOP it writes nothing.
 * - An unmapped IOVA, and a mapping removed under the running engine, give
 *   the error counter, last_error and a disabled range, with no splat (the
 *   VM runner checks dmesg).
 * - DMA_SET refuses bad input with an extack message.
 * - Device DMA logging is not advertised (ENOTTY), and libvmig's
 *   vmig_ram_add_vfio_device_log() gives -EOPNOTSUPP, so a VMM falls back
 *   to the container (vmig_ram_add_vfio_container()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_nl.h"
#include "migsim_util.h"

#define PG		4096ULL
#define MAP_IOVA	0x100000000ULL	/* 4 GiB */
#define MAP_SIZE	(2 * MiB)
#define NPAGES		(MAP_SIZE / PG)
#define BAD_IOVA	0x200000000ULL	/* never mapped */
#define RATE		(2 * MiB)	/* bytes/s: 512 pages/s */

/* ------------------------------------------------------------ helpers */

static bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

/*
 * The seq of the page at index i of the mapping if the engine wrote it
 * (header and fill all correct), -1 if the page is untouched (all zero),
 * -2 if it holds anything else.
 */
static int64_t page_seq(const uint8_t *mem, uint64_t i, const uint8_t *uuid)
{
	const struct migsim_dma_page *h = (const void *)(mem + i * PG);
	const uint64_t *w = (const void *)h;
	uint64_t iova = MAP_IOVA + i * PG, seq, k;

	if (le64toh(h->magic) != MIGSIM_DMA_MAGIC) {
		for (k = 0; k < PG / 8; k++)
			if (w[k])
				return -2;
		return -1;
	}
	seq = le64toh(h->seq);
	if (le64toh(h->iova) != iova || memcmp(h->uuid, uuid, 16))
		return -2;
	for (k = MIGSIM_DMA_HDR_WORDS; k < PG / 8; k++)
		if (le64toh(w[k]) != (seq ^ (iova + 8 * k)))
			return -2;
	return seq;
}

static int parse_uuid(const char *s, uint8_t *out)
{
	int i, n = 0;

	for (i = 0; s[i] && n < 16; i++) {
		if (s[i] == '-')
			continue;
		if (sscanf(s + i, "%2hhx", &out[n++]) != 1)
			return -EINVAL;
		i++;
	}
	return n == 16 ? 0 : -EINVAL;
}

/* ------------------------------------------------------------ fixture */

FIXTURE(dma) {
	struct migsim_nl nl;
	struct migsim_inst in;
	int container;
	uint8_t *mem;
	uint8_t uuid[16];
	uint64_t bits[NPAGES / 64], bits2[NPAGES / 64];
};

FIXTURE_SETUP(dma)
{
	int ret;

	memset(&self->in, 0, sizeof(self->in));
	self->mem = MAP_FAILED;
	ret = migsim_nl_open(&self->nl);
	if (ret == -ENOENT && access(MIGSIM_TYPE_DIR, F_OK))
		SKIP(return, "vfio-migsim is not loaded");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, migsim_inst_create_open(&self->in, 4 * MiB));
	ASSERT_EQ(0, parse_uuid(self->in.uuid, self->uuid));
	self->container = vmig_vfio_container_fd(self->in.dev);
	ASSERT_LE(0, self->container);
	self->mem = mmap(NULL, MAP_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->mem);
	ASSERT_EQ(0, migsim_map_dma(self->container, self->mem, MAP_IOVA,
				    MAP_SIZE));
}

FIXTURE_TEARDOWN(dma)
{
	if (self->nl.sk && self->in.uuid[0])
		migsim_dma_off(&self->nl, self->in.uuid);
	if (self->mem != MAP_FAILED)
		munmap(self->mem, MAP_SIZE);
	migsim_nl_close(&self->nl);
	migsim_inst_destroy(&self->in);
}

/* ------------------------------------------------------------ tests */

TEST_F(dma, off_by_default)
{
	struct migsim_dma_info d;

	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_TRUE(d.have);
	EXPECT_EQ(0, d.rate);
	EXPECT_EQ(0, d.nr_ranges);
	EXPECT_EQ(0, d.pages);
	EXPECT_EQ(0, d.errors);
	migsim_msleep(100);
	for (uint64_t i = 0; i < NPAGES; i++)
		ASSERT_EQ(-1, page_seq(self->mem, i, self->uuid));
}

TEST_F(dma, bitmap_exact_and_quiet_in_p2p)
{
	struct migsim_dma_range r = { MAP_IOVA, MAP_SIZE };
	uint64_t p0, p1, p2, i, written = 0, last_seq = 0, last_page = 0;
	uint8_t *snap;
	int fd = -1;
	struct migsim_dma_info d;

	ASSERT_EQ(0, migsim_dirty_ctl(self->container,
				      VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, migsim_dma_set(&self->nl, self->in.uuid, RATE, &r, 1, 0,
				    NULL));
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(RATE, d.rate);
	ASSERT_EQ(1, d.nr_ranges);
	EXPECT_EQ(MAP_IOVA, d.iova[0]);
	EXPECT_EQ(MAP_SIZE, d.len[0]);

	/* one harvest while the engine runs ... */
	migsim_msleep(300);
	p0 = migsim_dma_pages(&self->nl, self->in.uuid);
	ASSERT_EQ(0, migsim_get_bitmap(self->container, MAP_IOVA, MAP_SIZE,
				       PG, self->bits));
	p1 = migsim_dma_pages(&self->nl, self->in.uuid);
	ASSERT_LT(0, p0);
	/* ... and one after the device stopped */
	migsim_msleep(300);
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING_P2P, &fd));
	p2 = migsim_dma_pages(&self->nl, self->in.uuid);
	ASSERT_LT(p1, p2);
	ASSERT_EQ(0, migsim_get_bitmap(self->container, MAP_IOVA, MAP_SIZE,
				       PG, self->bits2));

	for (i = 0; i < NPAGES; i++) {
		int64_t seq = page_seq(self->mem, i, self->uuid);
		bool b1 = bit(self->bits, i), b2 = bit(self->bits2, i);

		ASSERT_NE(-2, seq) TH_LOG("page %llu holds garbage: %016llx %016llx %016llx",
					  (unsigned long long)i,
					  ((unsigned long long *)(self->mem + i * PG))[0],
					  ((unsigned long long *)(self->mem + i * PG))[1],
					  ((unsigned long long *)(self->mem + i * PG))[2]);
		if (seq < 0) {
			EXPECT_FALSE(b1 || b2)
				TH_LOG("page %llu reported, never written",
				       (unsigned long long)i);
			continue;
		}
		written++;
		ASSERT_LT((uint64_t)seq, p2);
		if ((uint64_t)seq >= last_seq) {
			last_seq = seq;
			last_page = i;
		}
		if ((uint64_t)seq >= p1) {
			EXPECT_TRUE(b2) TH_LOG("page %llu (seq %lld) written after the first harvest, not in the second",
					       (unsigned long long)i,
					       (long long)seq);
		} else if ((uint64_t)seq < p0) {
			EXPECT_TRUE(b1 && !b2)
				TH_LOG("page %llu (seq %lld, harvest at %llu): b1 %d b2 %d",
				       (unsigned long long)i, (long long)seq,
				       (unsigned long long)p0, b1, b2);
		} else {
			EXPECT_TRUE(b1 || b2);
		}
	}
	/* the last page written before the stop was written and reported */
	EXPECT_EQ(p2 - 1, last_seq);
	EXPECT_TRUE(bit(self->bits2, last_page));
	EXPECT_EQ(p2 < NPAGES ? p2 : NPAGES, written);
	TH_LOG("%llu writes, %llu pages; harvest at %llu..%llu",
	       (unsigned long long)p2, (unsigned long long)written,
	       (unsigned long long)p0, (unsigned long long)p1);

	/* RUNNING_P2P, then STOP: nothing changes */
	snap = malloc(MAP_SIZE);
	ASSERT_NE(NULL, snap);
	memcpy(snap, self->mem, MAP_SIZE);
	migsim_msleep(250);
	EXPECT_EQ(p2, migsim_dma_pages(&self->nl, self->in.uuid));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, &fd));
	migsim_msleep(250);
	EXPECT_EQ(p2, migsim_dma_pages(&self->nl, self->in.uuid));
	EXPECT_EQ(0, memcmp(snap, self->mem, MAP_SIZE));
	free(snap);
	ASSERT_EQ(0, migsim_get_bitmap(self->container, MAP_IOVA, MAP_SIZE,
				       PG, self->bits));
	for (i = 0; i < NPAGES / 64; i++)
		EXPECT_EQ(0, self->bits[i]);

	/* RUNNING again: the engine goes on */
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING, &fd));
	migsim_msleep(200);
	EXPECT_LT(p2, migsim_dma_pages(&self->nl, self->in.uuid));
	EXPECT_EQ(0, migsim_dirty_ctl(self->container,
				      VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(0, d.errors);
	EXPECT_EQ(d.pages * PG, d.bytes);
}

TEST_F(dma, bad_iova_disables_range)
{
	struct migsim_dma_range r[2] = {
		{ BAD_IOVA, 16 * PG },
		{ MAP_IOVA, 64 * PG },
	};
	struct migsim_dma_info d;
	char err[256];

	ASSERT_EQ(0, migsim_dma_set(&self->nl, self->in.uuid, RATE, r, 2, 0,
				    NULL));
	migsim_msleep(300);
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(1, d.errors);
	ASSERT_EQ(2, d.nr_ranges);
	EXPECT_TRUE(d.disabled[0]);
	EXPECT_FALSE(d.disabled[1]);
	EXPECT_LT(0, d.pages);
	ASSERT_LE(0, migsim_attr_read(self->in.uuid, "last_error", err,
				      sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "DMA write to IOVA 0x200000000 failed"))
		TH_LOG("last_error: %s", err);
	/* the good range got the writes */
	EXPECT_LE(0, page_seq(self->mem, 0, self->uuid));
	EXPECT_EQ(-1, page_seq(self->mem, 64, self->uuid));

	/* a new DMA_SET enables the range again (and it fails again) */
	ASSERT_EQ(0, migsim_dma_set(&self->nl, self->in.uuid, -1, r, 2, 0,
				    NULL));
	migsim_msleep(200);
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(2, d.errors);
}

TEST_F(dma, unmap_under_running_engine)
{
	struct migsim_dma_range r = { MAP_IOVA, MAP_SIZE };
	struct migsim_dma_info d;
	uint64_t p;

	ASSERT_EQ(0, migsim_dma_set(&self->nl, self->in.uuid, 8 * MiB, &r, 1,
				    0, NULL));
	migsim_msleep(150);
	ASSERT_EQ(0, migsim_unmap_dma(self->container, MAP_IOVA, MAP_SIZE));
	migsim_msleep(150);
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(1, d.errors);
	EXPECT_TRUE(d.disabled[0]);
	p = d.pages;
	EXPECT_LT(0, p);
	migsim_msleep(150);
	EXPECT_EQ(p, migsim_dma_pages(&self->nl, self->in.uuid));
	/* mapped again and re-armed: it writes again */
	ASSERT_EQ(0, migsim_map_dma(self->container, self->mem, MAP_IOVA,
				    MAP_SIZE));
	ASSERT_EQ(0, migsim_dma_set(&self->nl, self->in.uuid, -1, &r, 1, 0,
				    NULL));
	migsim_msleep(150);
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_LT(p, d.pages);
	EXPECT_EQ(1, d.errors);
}

#define EXPECT_NLERR(want, e) do { \
	EXPECT_EQ(-(want), (e).err) TH_LOG("errno %d, extack \"%s\"", \
					   -(e).err, (e).msg); \
	EXPECT_NE(0, (e).msg[0]) TH_LOG("no extack message"); \
} while (0)

TEST_F(dma, bad_input)
{
	struct migsim_dma_range r[MIGSIM_DMA_MAX_RANGES + 1];
	struct migsim_nl_ext e;
	struct migsim_dma_info d;
	int i;

	r[0] = (struct migsim_dma_range){ MAP_IOVA + 1, PG };
	migsim_dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_NLERR(EINVAL, e);
	r[0] = (struct migsim_dma_range){ MAP_IOVA, PG + 512 };
	migsim_dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_NLERR(EINVAL, e);
	r[0] = (struct migsim_dma_range){ MAP_IOVA, 0 };
	migsim_dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_NLERR(ERANGE, e);
	r[0] = (struct migsim_dma_range){ UINT64_MAX - 2 * PG + 1, 4 * PG };
	migsim_dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_NLERR(ERANGE, e);
	r[0] = (struct migsim_dma_range){ UINT64_MAX, PG };	/* no IOVA */
	migsim_dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_EQ(-EINVAL, e.err);
	r[0] = (struct migsim_dma_range){ MAP_IOVA, PG };
	migsim_dma_set(&self->nl, self->in.uuid, RATE, r, 1,
		       MIGSIM_DMA_RANGE_A_DISABLED, &e);
	EXPECT_NLERR(EINVAL, e);
	r[1] = (struct migsim_dma_range){ MAP_IOVA, 2 * PG };
	migsim_dma_set(&self->nl, self->in.uuid, RATE, r, 2, 0, &e);
	EXPECT_NLERR(EINVAL, e);
	for (i = 0; i <= MIGSIM_DMA_MAX_RANGES; i++)
		r[i] = (struct migsim_dma_range){ MAP_IOVA + i * PG, PG };
	migsim_dma_set(&self->nl, self->in.uuid, RATE, r, i, 0, &e);
	EXPECT_NLERR(E2BIG, e);
	migsim_dma_set(&self->nl, self->in.uuid, RATE, NULL, 0, 0, &e);
	EXPECT_NLERR(EINVAL, e);
	/* nothing of it stuck */
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(0, d.rate);
	EXPECT_EQ(0, d.nr_ranges);
	/* the most ranges, then an empty nest clears them */
	EXPECT_EQ(0, migsim_dma_set(&self->nl, self->in.uuid, 0, r,
				    MIGSIM_DMA_MAX_RANGES, 0, NULL));
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(MIGSIM_DMA_MAX_RANGES, d.nr_ranges);
	EXPECT_EQ(0, migsim_dma_off(&self->nl, self->in.uuid));
	ASSERT_EQ(0, migsim_dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(0, d.nr_ranges);
}

TEST_F(dma, dma_logging_not_advertised)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_dma_logging_control c;
	} req = {
		.f.argsz = sizeof(req),
		.f.flags = VFIO_DEVICE_FEATURE_PROBE |
			   VFIO_DEVICE_FEATURE_SET |
			   VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
	};

	struct vmig_ram_region r = {
		.host_addr = self->mem,
		.size = MAP_SIZE,
		.fd = -1,
		.kvm_slot = -1,
	};
	uint64_t iova = MAP_IOVA;
	struct vmig_ram *ram;

	EXPECT_EQ(-1, ioctl(self->in.fd, VFIO_DEVICE_FEATURE, &req));
	EXPECT_EQ(ENOTTY, errno);

	/* libvmig says so, and the VMM falls back to the container. */
	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
	EXPECT_EQ(-EOPNOTSUPP, vmig_ram_add_vfio_device_log(ram, self->in.fd,
							    &iova, 0));
	EXPECT_EQ(0, vmig_ram_add_vfio_container(ram, self->container,
						 &iova, 0));
	EXPECT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	vmig_ram_free(ram);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Device DMA logging (track_devlog.c, issue 7) against a model of a VFIO
 * device with log ops, put in place of the library's ioctl()
 * (ram_vfio_sys): no kernel we test on implements
 * VFIO_DEVICE_FEATURE_DMA_LOGGING_*, so this is where the START / REPORT /
 * STOP path runs.
 *
 * The model reads and writes the ioctl's argument at the byte offsets of
 * the 6.12 uAPI, written out here rather than taken from <linux/vfio.h>
 * (and checked against it), and validates it the way the vfio core does
 * (vfio_check_feature(), vfio_ioctl_device_feature_logging_start() and
 * _report() in drivers/vfio/vfio_main.c): flags, argsz, range count,
 * alignment, overlap, page size, overflow.  Its REPORT only sets bits, as
 * the kernel's iova_bitmap does, and forgets what it reported.  The
 * device "writes" by logging an IOVA, only inside the ranges it was
 * STARTed with, at its own granule.
 *
 * Asserted: a device that does not offer DMA logging, or offers it and
 * cannot report (the mtty case), gives -EOPNOTSUPP; bad arguments give
 * -EINVAL / -EBUSY; pages the device logs reach the dirty set exactly,
 * next to the write-protect tracker's, including the last ones at
 * vmig_ram_track_stop(); too many ranges are merged until the device takes
 * them; a device with larger pages is read at 4 KiB; a failed REPORT makes
 * every page dirty; a failed START fails vmig_ram_track_start(); and a
 * precopy whose last device writes come after the background pass ends
 * with the destination equal to the source (and without the device log,
 * those pages are lost).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "ram_int.h"

#define PG		4096ULL
#define MODEL_FD	1000

/* ---------------------------------------------- the uAPI, byte by byte */

/* _IO(VFIO_TYPE, VFIO_BASE + 17) */
#define M_VFIO_DEVICE_FEATURE	_IO(';', 100 + 17)
/* struct vfio_device_feature: argsz, flags, then the data */
#define M_ARGSZ		0
#define M_FLAGS		4
#define M_DATA		8
#define M_MASK		0xffffU
#define M_GET		(1U << 16)
#define M_SET		(1U << 17)
#define M_PROBE		(1U << 18)
#define M_LOG_START	6
#define M_LOG_STOP	7
#define M_LOG_REPORT	8
/* struct vfio_device_feature_dma_logging_control */
#define M_CTL_PAGE_SIZE	0
#define M_CTL_NUM	8
#define M_CTL_RSVD	12
#define M_CTL_RANGES	16
#define M_CTL_SIZE	24
/* struct vfio_device_feature_dma_logging_range */
#define M_RANGE_IOVA	0
#define M_RANGE_LEN	8
#define M_RANGE_SIZE	16
/* struct vfio_device_feature_dma_logging_report */
#define M_REP_IOVA	0
#define M_REP_LEN	8
#define M_REP_PAGE_SIZE	16
#define M_REP_BITMAP	24
#define M_REP_SIZE	32
/* LOG_MAX_RANGES: a kernel page of ranges */
#define M_CORE_MAX	(4096 / M_RANGE_SIZE)

_Static_assert(VFIO_DEVICE_FEATURE == M_VFIO_DEVICE_FEATURE, "ioctl");
_Static_assert(offsetof(struct vfio_device_feature, argsz) == M_ARGSZ &&
	       offsetof(struct vfio_device_feature, flags) == M_FLAGS &&
	       offsetof(struct vfio_device_feature, data) == M_DATA, "hdr");
_Static_assert(VFIO_DEVICE_FEATURE_MASK == M_MASK &&
	       VFIO_DEVICE_FEATURE_GET == M_GET &&
	       VFIO_DEVICE_FEATURE_SET == M_SET &&
	       VFIO_DEVICE_FEATURE_PROBE == M_PROBE, "flags");
_Static_assert(VFIO_DEVICE_FEATURE_DMA_LOGGING_START == M_LOG_START &&
	       VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP == M_LOG_STOP &&
	       VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT == M_LOG_REPORT,
	       "features");
_Static_assert(offsetof(struct vfio_device_feature_dma_logging_control,
			page_size) == M_CTL_PAGE_SIZE &&
	       offsetof(struct vfio_device_feature_dma_logging_control,
			num_ranges) == M_CTL_NUM &&
	       offsetof(struct vfio_device_feature_dma_logging_control,
			__reserved) == M_CTL_RSVD &&
	       offsetof(struct vfio_device_feature_dma_logging_control,
			ranges) == M_CTL_RANGES &&
	       sizeof(struct vfio_device_feature_dma_logging_control) ==
			M_CTL_SIZE, "control");
_Static_assert(offsetof(struct vfio_device_feature_dma_logging_range,
			iova) == M_RANGE_IOVA &&
	       offsetof(struct vfio_device_feature_dma_logging_range,
			length) == M_RANGE_LEN &&
	       sizeof(struct vfio_device_feature_dma_logging_range) ==
			M_RANGE_SIZE, "range");
_Static_assert(offsetof(struct vfio_device_feature_dma_logging_report,
			iova) == M_REP_IOVA &&
	       offsetof(struct vfio_device_feature_dma_logging_report,
			length) == M_REP_LEN &&
	       offsetof(struct vfio_device_feature_dma_logging_report,
			page_size) == M_REP_PAGE_SIZE &&
	       offsetof(struct vfio_device_feature_dma_logging_report,
			bitmap) == M_REP_BITMAP &&
	       sizeof(struct vfio_device_feature_dma_logging_report) ==
			M_REP_SIZE, "report");

static uint32_t get32(const void *p, size_t off)
{
	uint32_t v;

	memcpy(&v, (const char *)p + off, sizeof(v));
	return v;
}

static uint64_t get64(const void *p, size_t off)
{
	uint64_t v;

	memcpy(&v, (const char *)p + off, sizeof(v));
	return v;
}

static void put64(void *p, size_t off, uint64_t v)
{
	memcpy((char *)p + off, &v, sizeof(v));
}

static bool pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* ------------------------------------------------------------ the model */

#define MAX_LOGGED	4096

static struct model {
	/* how the device behaves */
	bool advertise;		/* has log ops */
	int probe_err;		/* without: what every call gives */
	int report_err;		/* REPORT fails with it (0: works) */
	int start_err;		/* the driver's log_start fails with it */
	unsigned int max_ranges;	/* the driver's limit, 0: none */
	int too_many_err;	/* beyond it */
	uint64_t granule;	/* what it logs at (>= 4 KiB) */
	/* its state */
	bool started;
	uint64_t asked_page_size;
	unsigned int nr_ranges;
	uint64_t rg_iova[M_CORE_MAX], rg_len[M_CORE_MAX];
	uint64_t logged[MAX_LOGGED];	/* granule-aligned IOVAs */
	unsigned int nr_logged;
	/* what it saw */
	unsigned int probes, start_calls, starts, stops, reports, bad;
	/* start_calls: START calls past the checks; starts: taken */
} m;

static void model_reset(void)
{
	memset(&m, 0, sizeof(m));
	m.advertise = true;
	m.probe_err = ENOTTY;
	m.too_many_err = E2BIG;
	m.granule = PG;
}

/* vfio_check_feature() */
static int check_feature(uint32_t flags, size_t argsz, uint32_t supported,
			 size_t minsz)
{
	if ((flags & (M_GET | M_SET)) & ~supported)
		return -EINVAL;
	if (flags & M_PROBE)
		return 0;
	if (!(flags & (M_GET | M_SET)))
		return -EINVAL;
	if (argsz < minsz)
		return -EINVAL;
	return 1;
}

static int model_start(uint32_t flags, void *data, size_t argsz)
{
	uint64_t ps, iova, len, end, rp;
	unsigned int n, i, j;
	int ret;

	ret = check_feature(flags, argsz, M_SET, M_CTL_SIZE);
	if (ret != 1) {
		if (!ret)
			m.probes++;
		return ret;
	}
	m.start_calls++;
	ps = get64(data, M_CTL_PAGE_SIZE);
	n = get32(data, M_CTL_NUM);
	rp = get64(data, M_CTL_RANGES);
	if (get32(data, M_CTL_RSVD))
		m.bad++;
	if (!n)
		return -EINVAL;
	if (n > M_CORE_MAX)
		return -E2BIG;
	if (!pow2(ps))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		const void *r = (const char *)(uintptr_t)rp + i * M_RANGE_SIZE;

		iova = get64(r, M_RANGE_IOVA);
		len = get64(r, M_RANGE_LEN);
		if (iova % ps || len % ps)
			return -EINVAL;
		if (__builtin_add_overflow(iova, len, &end))
			return -EOVERFLOW;
		for (j = 0; j < i; j++)
			if (iova < m.rg_iova[j] + m.rg_len[j] &&
			    m.rg_iova[j] < end)
				return -EINVAL;
		m.rg_iova[i] = iova;
		m.rg_len[i] = len;
	}
	/* the driver's log_start */
	if (m.started)
		return -EBUSY;
	if (m.start_err)
		return -m.start_err;
	if (m.max_ranges && n > m.max_ranges)
		return -m.too_many_err;
	m.nr_ranges = n;
	m.asked_page_size = ps;
	m.started = true;
	m.nr_logged = 0;
	m.starts++;
	put64(data, M_CTL_PAGE_SIZE, ps > m.granule ? ps : m.granule);
	return 0;
}

static int model_stop(uint32_t flags, size_t argsz)
{
	int ret = check_feature(flags, argsz, M_SET, 0);

	if (ret != 1)
		return ret;
	if (!m.started)
		m.bad++;
	m.started = false;
	m.stops++;
	return 0;
}

static int model_report(uint32_t flags, void *data, size_t argsz)
{
	uint64_t iova, len, ps, end, words, g, a, bit;
	uint64_t *bitmap;
	unsigned int i;
	int ret;

	ret = check_feature(flags, argsz, M_GET, M_REP_SIZE);
	if (ret != 1)
		return ret;
	iova = get64(data, M_REP_IOVA);
	len = get64(data, M_REP_LEN);
	ps = get64(data, M_REP_PAGE_SIZE);
	bitmap = (uint64_t *)(uintptr_t)get64(data, M_REP_BITMAP);
	if (ps < 4096 || !pow2(ps))
		return -EINVAL;
	if (__builtin_add_overflow(iova, len, &end))
		return -EOVERFLOW;
	if (!len || !bitmap) {
		m.bad++;
		return -EINVAL;
	}
	/* the stub iova_bitmap_for_each() of a kernel without IOMMUFD_DRIVER */
	if (m.report_err)
		return -m.report_err;
	if (!m.started)
		return -EINVAL;
	m.reports++;
	/* the words iova_bitmap_alloc() pins */
	words = (len - 1) / ps / 64 + 1;
	for (i = 0; i < m.nr_logged;) {
		g = m.logged[i];
		if (g + m.granule <= iova || g >= end) {
			i++;
			continue;
		}
		for (a = g > iova ? g : iova; a < g + m.granule && a < end;
		     a += ps) {
			bit = (a - iova) / ps;
			if (bit / 64 >= words) {
				m.bad++;
				break;
			}
			bitmap[bit / 64] |= 1ULL << (bit % 64);
		}
		/* read and clear */
		m.logged[i] = m.logged[--m.nr_logged];
	}
	return 0;
}

static int model_ioctl(int fd, unsigned long request, void *arg)
{
	uint32_t argsz, flags;

	if (fd != MODEL_FD || request != M_VFIO_DEVICE_FEATURE) {
		m.bad++;
		return -ENOTTY;
	}
	argsz = get32(arg, M_ARGSZ);
	flags = get32(arg, M_FLAGS);
	if (argsz < M_DATA)
		return -EINVAL;
	if (flags & ~(M_MASK | M_GET | M_SET | M_PROBE))
		return -EINVAL;
	if (!(flags & M_PROBE) && (flags & M_SET) && (flags & M_GET))
		return -EINVAL;
	switch (flags & M_MASK) {
	case M_LOG_START:
	case M_LOG_STOP:
	case M_LOG_REPORT:
		if (!m.advertise) {
			if (flags & M_PROBE)
				m.probes++;
			return -m.probe_err;
		}
		break;
	default:
		return -ENOTTY;
	}
	switch (flags & M_MASK) {
	case M_LOG_START:
		return model_start(flags, (char *)arg + M_DATA, argsz - M_DATA);
	case M_LOG_STOP:
		return model_stop(flags, argsz - M_DATA);
	default:
		return model_report(flags, (char *)arg + M_DATA,
				    argsz - M_DATA);
	}
}

/* The device writes the page at iova: logged if inside a started range. */
static bool model_dma(uint64_t iova)
{
	uint64_t g = iova & ~(m.granule - 1);
	unsigned int i;

	if (!m.started)
		return false;
	for (i = 0; i < m.nr_ranges; i++)
		if (iova >= m.rg_iova[i] && iova - m.rg_iova[i] < m.rg_len[i])
			break;
	if (i == m.nr_ranges)
		return false;
	for (i = 0; i < m.nr_logged; i++)
		if (m.logged[i] == g)
			return true;
	if (m.nr_logged == MAX_LOGGED)
		abort();
	m.logged[m.nr_logged++] = g;
	return true;
}

/* ------------------------------------------------------------ helpers */

static struct vmig_ram_region plain_region(void *addr, uint64_t size)
{
	struct vmig_ram_region r = {
		.host_addr = addr,
		.size = size,
		.fd = -1,
		.kvm_slot = -1,
	};

	return r;
}

/* Pop everything into count[] (global page numbers); returns the pages. */
static unsigned int drain(struct vmig_ram *ram, uint8_t *count,
			  const uint64_t *first)
{
	struct vmig_page pages[64];
	unsigned int total = 0;
	int n, i;

	while ((n = vmig_ram_pop_dirty(ram, pages, 64)) > 0) {
		for (i = 0; i < n; i++)
			count[first[pages[i].region] + pages[i].index]++;
		total += n;
	}
	return total;
}

FIXTURE(devlog) {
	char *mem;
	size_t size;
};

FIXTURE_SETUP(devlog)
{
	model_reset();
	ram_vfio_sys.ioctl = model_ioctl;
	self->size = 512 * PG;
	self->mem = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->mem);
}

FIXTURE_TEARDOWN(devlog)
{
	if (self->mem != MAP_FAILED)
		munmap(self->mem, self->size);
	EXPECT_EQ(0, m.bad);
}

/* ------------------------------------------------------------ tests */

TEST_F(devlog, not_offered_is_eopnotsupp)
{
	static const int errs[] = { ENOTTY, EOPNOTSUPP, EINVAL };
	struct vmig_ram_region r = plain_region(self->mem, 16 * PG);
	struct vmig_ram_stats st;
	uint64_t iova = 0x100000;
	struct vmig_ram *ram;
	unsigned int i;

	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
	m.advertise = false;
	for (i = 0; i < VMIG_ARRAY_SIZE(errs); i++) {
		m.probe_err = errs[i];
		EXPECT_EQ(-EOPNOTSUPP, vmig_ram_add_vfio_device_log(ram,
				MODEL_FD, &iova, 0));
	}
	EXPECT_EQ(VMIG_ARRAY_SIZE(errs), m.probes);
	/* Another failure of the probe is passed on. */
	m.probe_err = EFAULT;
	EXPECT_EQ(-EFAULT, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							&iova, 0));
	EXPECT_EQ(0, m.start_calls);
	/* Nothing was added: tracking runs without the device. */
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	self->mem[3 * PG] = 1;
	EXPECT_EQ(1, vmig_ram_sync(ram));
	vmig_ram_track_stop(ram);
	vmig_ram_get_stats(ram, &st);
	EXPECT_EQ(0, st.devlog_reported);
	EXPECT_EQ(0, m.starts);
	vmig_ram_free(ram);
}

TEST_F(devlog, offered_without_report_is_eopnotsupp)
{
	struct vmig_ram_region r = plain_region(self->mem, 16 * PG);
	uint64_t iova = 0x100000;
	struct vmig_ram *ram;

	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
	/* mtty's stub log ops on a kernel without CONFIG_IOMMUFD_DRIVER */
	m.report_err = EOPNOTSUPP;
	EXPECT_EQ(-EOPNOTSUPP, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							    &iova, 0));
	EXPECT_EQ(1, m.probes);
	EXPECT_EQ(1, m.starts);
	EXPECT_EQ(1, m.stops);
	EXPECT_FALSE(m.started);
	/* Any other report failure is passed on, logging stopped. */
	m.report_err = EIO;
	EXPECT_EQ(-EIO, vmig_ram_add_vfio_device_log(ram, MODEL_FD, &iova, 0));
	EXPECT_EQ(2, m.stops);
	EXPECT_FALSE(m.started);
	/* So is a START that fails. */
	m.report_err = 0;
	m.start_err = ENOMEM;
	EXPECT_EQ(-ENOMEM, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							&iova, 0));
	EXPECT_EQ(2, m.stops);
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	EXPECT_EQ(2, m.starts);
	vmig_ram_free(ram);
	EXPECT_EQ(2, m.stops);
}

TEST_F(devlog, bad_arguments)
{
	struct vmig_ram_region r[2] = {
		plain_region(self->mem, 16 * PG),
		plain_region(self->mem + 16 * PG, 16 * PG),
	};
	uint64_t iova[2] = { 0x100000, 0x200000 };
	uint64_t over[2] = { 0x100000, 0x10f000 };
	uint64_t none[2] = { VMIG_RAM_NO_IOVA, VMIG_RAM_NO_IOVA };
	uint64_t odd[2] = { 0x100800, VMIG_RAM_NO_IOVA };
	uint64_t wrap[2] = { -8 * PG, VMIG_RAM_NO_IOVA };
	struct vmig_ram *ram;

	ASSERT_EQ(0, vmig_ram_new(r, 2, NULL, &ram));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(NULL, MODEL_FD,
							iova, 0));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, -1, iova, 0));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							NULL, 0));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							none, 0));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							odd, 0));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							wrap, 0));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							over, 0));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							iova, 2048));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							iova, 3 * PG));
	EXPECT_EQ(0, m.start_calls);
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	EXPECT_EQ(-EBUSY, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
						       iova, 0));
	EXPECT_EQ(0, m.start_calls);
	vmig_ram_free(ram);
}

TEST_F(devlog, device_writes_reach_the_dirty_set)
{
	/* region 1 is not mapped; region 2 spans more than one word */
	struct vmig_ram_region r[3] = {
		plain_region(self->mem, 16 * PG),
		plain_region(self->mem + 16 * PG, 8 * PG),
		plain_region(self->mem + 32 * PG, 70 * PG),
	};
	uint64_t iova[3] = { 0x10000000, VMIG_RAM_NO_IOVA, 0x100000 };
	uint64_t first[3] = { 0, 16, 24 };
	uint8_t count[94] = { 0 };
	struct vmig_ram_stats st;
	struct vmig_page pg;
	struct vmig_ram *ram;
	unsigned int i;

	ASSERT_EQ(0, vmig_ram_new(r, 3, NULL, &ram));
	ASSERT_EQ(0, vmig_ram_add_vfio_device_log(ram, MODEL_FD, iova, 0));
	EXPECT_EQ(1, m.starts);
	EXPECT_EQ(1, m.stops);
	EXPECT_FALSE(m.started);
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	ASSERT_TRUE(m.started);
	EXPECT_EQ(PG, m.asked_page_size);
	/* one range per mapped region, in IOVA order */
	ASSERT_EQ(2, m.nr_ranges);
	EXPECT_EQ(0x100000, m.rg_iova[0]);
	EXPECT_EQ(70 * PG, m.rg_len[0]);
	EXPECT_EQ(0x10000000, m.rg_iova[1]);
	EXPECT_EQ(16 * PG, m.rg_len[1]);

	/* The device writes; a write outside the ranges is not logged. */
	EXPECT_TRUE(model_dma(0x10000000 + 3 * PG));
	EXPECT_TRUE(model_dma(0x10000000 + 15 * PG));
	EXPECT_TRUE(model_dma(0x100000));
	EXPECT_TRUE(model_dma(0x100000 + 65 * PG));
	EXPECT_TRUE(model_dma(0x100000 + 69 * PG));
	EXPECT_FALSE(model_dma(0x100000 + 70 * PG));
	/* The CPU writes too: one page of its own, one the device wrote. */
	self->mem[16 * PG + 2 * PG] = 1;
	self->mem[3 * PG] = 1;
	EXPECT_EQ(6, vmig_ram_sync(ram));
	EXPECT_EQ(6, drain(ram, count, first));
	for (i = 0; i < 94; i++)
		EXPECT_EQ(i == 3 || i == 15 || i == 18 || i == 24 ||
			  i == 24 + 65 || i == 24 + 69, count[i]);
	vmig_ram_get_stats(ram, &st);
	EXPECT_EQ(5, st.devlog_reported);
	EXPECT_EQ(0, st.vfio_reported);
	EXPECT_EQ(0, st.losses);
	EXPECT_EQ(0, m.nr_logged);

	/* Reported once: nothing new. */
	EXPECT_EQ(0, vmig_ram_sync(ram));
	EXPECT_EQ(0, vmig_ram_pop_dirty(ram, &pg, 1));

	/* Written after the last sync: collected when tracking stops. */
	memset(count, 0, sizeof(count));
	EXPECT_TRUE(model_dma(0x100000 + PG));
	EXPECT_TRUE(model_dma(0x10000000));
	vmig_ram_track_stop(ram);
	EXPECT_FALSE(m.started);
	EXPECT_EQ(2, m.stops);
	EXPECT_EQ(2, drain(ram, count, first));
	EXPECT_EQ(1, count[0]);
	EXPECT_EQ(1, count[24 + 1]);
	vmig_ram_get_stats(ram, &st);
	EXPECT_EQ(7, st.devlog_reported);

	/* Again: START, and STOP once more at the end. */
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	EXPECT_EQ(3, m.starts);
	vmig_ram_free(ram);
	EXPECT_EQ(3, m.stops);
}

/* 9 one-page regions, gaps (in pages) of 1, 9, 2, 50, 1, 3, 7, 1 */
static void ranges_merged(struct __test_metadata *_metadata, char *mem,
			  int too_many_err)
{
	static const uint64_t at[9] = { 0, 2, 12, 15, 66, 68, 72, 80, 82 };
	struct vmig_ram_region r[9];
	uint64_t iova[9], first[9];
	uint8_t count[9] = { 0 };
	struct vmig_ram *ram;
	unsigned int i, j;

	model_reset();
	for (i = 0; i < 9; i++) {
		r[i] = plain_region(mem + i * PG, PG);
		iova[i] = 0x40000000 + at[i] * PG;
		first[i] = i;
	}
	m.max_ranges = 3;
	m.too_many_err = too_many_err;
	ASSERT_EQ(0, vmig_ram_new(r, 9, NULL, &ram));
	ASSERT_EQ(0, vmig_ram_add_vfio_device_log(ram, MODEL_FD, iova, 0));
	/* 9 refused, 4 refused, 2 taken */
	EXPECT_EQ(3, m.start_calls);
	EXPECT_EQ(1, m.starts);
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	/* the count it took is kept */
	EXPECT_EQ(4, m.start_calls);
	ASSERT_EQ(2, m.nr_ranges);
	/* the largest gap (50 pages) is the one left */
	EXPECT_EQ(iova[0], m.rg_iova[0]);
	EXPECT_EQ(iova[3] + PG, m.rg_iova[0] + m.rg_len[0]);
	EXPECT_EQ(iova[4], m.rg_iova[1]);
	EXPECT_EQ(iova[8] + PG, m.rg_iova[1] + m.rg_len[1]);
	for (i = 0; i < 9; i++) {
		for (j = 0; j < m.nr_ranges; j++)
			if (iova[i] >= m.rg_iova[j] &&
			    iova[i] + PG <= m.rg_iova[j] + m.rg_len[j])
				break;
		EXPECT_GT(m.nr_ranges, j);
	}
	/* Every region's pages come back exactly; a gap's write does not. */
	for (i = 0; i < 9; i += 2)
		EXPECT_TRUE(model_dma(iova[i]));
	EXPECT_TRUE(model_dma(0x40000000 + 5 * PG));
	EXPECT_EQ(5, vmig_ram_sync(ram));
	EXPECT_EQ(5, drain(ram, count, first));
	for (i = 0; i < 9; i++)
		EXPECT_EQ(!(i % 2), count[i]);
	vmig_ram_free(ram);
	EXPECT_FALSE(m.started);
}

TEST_F(devlog, ranges_merged_until_the_device_takes_them_e2big)
{
	ranges_merged(_metadata, self->mem, E2BIG);
}

TEST_F(devlog, ranges_merged_until_the_device_takes_them_einval)
{
	ranges_merged(_metadata, self->mem, EINVAL);
}

TEST_F(devlog, more_ranges_than_the_core_takes)
{
	struct vmig_ram_region r[300];
	uint64_t iova[300];
	struct vmig_ram *ram;
	unsigned int i;

	for (i = 0; i < 300; i++) {
		r[i] = plain_region(self->mem + i * PG, PG);
		iova[i] = 0x40000000 + i * 2 * PG;
	}
	ASSERT_EQ(0, vmig_ram_new(r, 300, NULL, &ram));
	ASSERT_EQ(0, vmig_ram_add_vfio_device_log(ram, MODEL_FD, iova, 0));
	EXPECT_EQ(1, m.start_calls);
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	EXPECT_EQ(M_CORE_MAX, m.nr_ranges);
	for (i = 0; i < 300; i++)
		EXPECT_TRUE(model_dma(iova[i]));
	EXPECT_EQ(300, vmig_ram_sync(ram));
	vmig_ram_free(ram);
}

TEST_F(devlog, larger_device_pages_read_at_4k)
{
	struct vmig_ram_region r = plain_region(self->mem, 8 * PG);
	uint64_t iova = 0x101000;	/* not 16 KiB aligned */
	uint64_t first = 0;
	uint8_t count[8] = { 0 };
	struct vmig_ram *ram;
	unsigned int i;

	m.granule = 4 * PG;
	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
	EXPECT_EQ(-EINVAL, vmig_ram_add_vfio_device_log(ram, MODEL_FD,
							&iova, 4 * PG + 1));
	ASSERT_EQ(0, vmig_ram_add_vfio_device_log(ram, MODEL_FD, &iova,
						  4 * PG));
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	EXPECT_EQ(4 * PG, m.asked_page_size);
	/* the range is rounded out to the page size asked for */
	ASSERT_EQ(1, m.nr_ranges);
	EXPECT_EQ(0x100000, m.rg_iova[0]);
	EXPECT_EQ(12 * PG, m.rg_len[0]);
	/* One write dirties its 16 KiB: the region's 3 pages of it. */
	EXPECT_TRUE(model_dma(0x103000));
	EXPECT_EQ(3, vmig_ram_sync(ram));
	EXPECT_EQ(3, drain(ram, count, &first));
	for (i = 0; i < 8; i++)
		EXPECT_EQ(i < 3, count[i]);
	vmig_ram_free(ram);
}

TEST_F(devlog, failed_report_makes_every_page_dirty)
{
	struct vmig_ram_region r = plain_region(self->mem, 32 * PG);
	uint64_t iova = 0x100000, first = 0;
	uint8_t count[32] = { 0 };
	struct vmig_ram_stats st;
	struct vmig_ram *ram;
	unsigned int i;

	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
	ASSERT_EQ(0, vmig_ram_add_vfio_device_log(ram, MODEL_FD, &iova, 0));
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	EXPECT_TRUE(model_dma(iova));
	EXPECT_EQ(1, vmig_ram_sync(ram));
	EXPECT_EQ(1, drain(ram, count, &first));
	m.report_err = EIO;
	EXPECT_EQ(-EIO, vmig_ram_sync(ram));
	vmig_ram_get_stats(ram, &st);
	EXPECT_EQ(1, st.losses);
	memset(count, 0, sizeof(count));
	EXPECT_EQ(32, drain(ram, count, &first));
	for (i = 0; i < 32; i++)
		EXPECT_EQ(1, count[i]);
	/* STOP still follows. */
	vmig_ram_track_stop(ram);
	EXPECT_FALSE(m.started);
	vmig_ram_free(ram);
}

TEST_F(devlog, failed_start_fails_track_start)
{
	struct vmig_ram_region r = plain_region(self->mem, 16 * PG);
	uint64_t iova = 0x100000;
	struct vmig_ram *ram;

	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
	ASSERT_EQ(0, vmig_ram_add_vfio_device_log(ram, MODEL_FD, &iova, 0));
	m.start_err = EBUSY;
	EXPECT_EQ(-EBUSY, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	EXPECT_EQ(VMIG_TRACK_NONE, vmig_ram_tracker(ram));
	EXPECT_FALSE(m.started);
	m.start_err = 0;
	ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
	EXPECT_TRUE(m.started);
	vmig_ram_free(ram);
	EXPECT_FALSE(m.started);
}

/*
 * A precopy into an in-process destination.  The guest RAM is a memfd; the
 * "device" writes it through a second mapping, which the write-protect
 * tracker (on the first) does not see, as KVM does not see DMA.  Its last
 * writes come after the background pass, before the stop-and-copy.
 */
TEST_F(devlog, stop_and_copy_collects_device_writes)
{
	const uint64_t pages = 256, base = 0x80000000;
	struct vmig_ram_region r;
	struct vmig_ram_precopy_stats st;
	struct vmig_ram_precopy *pc;
	struct vmig_ram_dest *dest;
	struct vmig_ram_sink sink;
	struct vmig_ram *ram;
	uint8_t *src, *dma, *dst;
	uint64_t i, bad, bad_tail, written;
	int fd, pass, n;

	fd = memfd_create("devlog_test", 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, pages * PG));
	src = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	dma = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	dst = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	ASSERT_NE(MAP_FAILED, dma);
	ASSERT_NE(MAP_FAILED, dst);
	for (i = 0; i < pages * PG; i++)
		src[i] = i * 7 + i / PG;

	for (pass = 0; pass < 2; pass++) {
		bool with_log = !pass;

		model_reset();
		memset(dst, 0, pages * PG);
		r = plain_region(src, pages * PG);
		r.fd = fd;
		ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
		if (with_log)
			ASSERT_EQ(0, vmig_ram_add_vfio_device_log(ram,
					MODEL_FD, &base, 0));
		ASSERT_EQ(0, vmig_ram_track_start(ram, VMIG_TRACK_WP));
		r.host_addr = dst;
		ASSERT_EQ(0, vmig_ram_dest_new(&r, 1, &dest));
		vmig_ram_dest_sink(dest, &sink);
		ASSERT_EQ(0, vmig_ram_precopy_new(ram, &sink, NULL, &pc));

		/* The device writes during the pass, and after it. */
		for (n = 0, i = 0; (n = vmig_ram_precopy_step(pc)) > 0; i++) {
			dma[(i * 5 % pages) * PG + 8] ^= 0x5a;
			model_dma(base + i * 5 % pages * PG);
		}
		ASSERT_EQ(0, n);
		vmig_ram_precopy_get_stats(pc, &st);
		EXPECT_TRUE(st.background_done);
		for (written = 0, i = 0; i < pages; i += 3) {
			dma[i * PG + 100] ^= 0xa5;
			model_dma(base + i * PG);
			written++;
		}
		ASSERT_EQ(0, vmig_ram_precopy_complete(pc));
		vmig_ram_precopy_get_stats(pc, &st);
		vmig_ram_track_stop(ram);

		for (bad = bad_tail = 0, i = 0; i < pages; i++)
			if (memcmp(src + i * PG, dst + i * PG, PG)) {
				bad++;
				bad_tail += !(i % 3);
			}
		TH_LOG("%s the device log: %lu final pages, %lu differ",
		       with_log ? "with" : "without",
		       (unsigned long)st.final_pages, (unsigned long)bad);
		if (with_log) {
			EXPECT_EQ(0, bad);
			EXPECT_LE(written, st.final_pages);
		} else {
			/* The negative: the tracker alone misses them. */
			EXPECT_EQ(written, bad_tail);
		}
		vmig_ram_precopy_free(pc);
		vmig_ram_dest_free(dest);
		vmig_ram_free(ram);
	}
	munmap(src, pages * PG);
	munmap(dma, pages * PG);
	munmap(dst, pages * PG);
	close(fd);
}

TEST_HARNESS_MAIN

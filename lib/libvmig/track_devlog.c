// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Pages a VFIO device dirtied, read from the device's own DMA logging
 * (VFIO_DEVICE_FEATURE_DMA_LOGGING_START / _REPORT / _STOP), merged into
 * the RAM dirty set next to the KVM ring, the KVM bitmap, the write-protect
 * tracker and the type1 containers' bitmaps (track_vfio.c) (issue 7).
 *
 * Where a device offers it (a variant driver with vfio_log_ops, on a kernel
 * with CONFIG_IOMMUFD_DRIVER), the device logs its own writes, whatever
 * IOMMU backend maps its DMA.  Adding a device probes the feature and, if
 * it is offered, tries it once: START with the ranges, a REPORT of a few
 * pages, STOP.  A device that does not offer it, or offers it without
 * being able to report (the mtty sample's stub log ops on a kernel whose
 * iova_bitmap helpers are stubs: REPORT gives EOPNOTSUPP), gives
 * -EOPNOTSUPP, so the VMM adds its container instead.
 *
 * START gets one range per mapped region, rounded out to the page size
 * asked for, sorted, with touching ones joined.  The vfio core takes at
 * most a kernel page's worth of ranges (E2BIG beyond) and a driver may take
 * fewer (E2BIG or EINVAL): the ranges are then merged, the closest
 * neighbours first, into half as many, until the device takes them; the
 * count it took is kept for the next START.  A merged range covers IOVA
 * that is not RAM: the device logs writes there too, nobody asks for them.
 *
 * Every sync REPORTs each region's IOVA range at 4 KiB pages into a zeroed
 * bitmap (the kernel only sets bits) and pushes the pages into the dirty
 * set; a REPORT reads and clears the device's log of that range.  A REPORT
 * that fails leaves the log in an unknown state (the uAPI says so): every
 * page is made dirty again (ram_resync()) and the error is returned.
 * Stopping takes a last REPORT, then STOPs.  As with the containers, the
 * last harvest of a migration is the sync of the stop-and-copy
 * (vmig_ram_precopy_complete()), after the devices stopped their DMA.
 *
 * No kernel we test on implements these features (Debian's 6.12 has no
 * CONFIG_IOMMUFD_DRIVER), so the ioctl goes through ram_vfio_sys and
 * selftests/libvmig/devlog_test.c replaces it with a model of a device
 * that logs writes and checks the uAPI layouts byte by byte.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "ram_int.h"

/* The pages the trial REPORT of vmig_ram_add_vfio_device_log() reads. */
#define DEVLOG_TRIAL_PAGES	64

static int sys_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg) < 0 ? -errno : 0;
}

struct ram_vfio_sys ram_vfio_sys = {
	.ioctl = sys_ioctl,
};

/* VFIO_DEVICE_FEATURE's argument: the header, then the feature's data. */
struct devlog_control_req {
	struct vfio_device_feature f;
	struct vfio_device_feature_dma_logging_control c;
};

struct devlog_report_req {
	struct vfio_device_feature f;
	struct vfio_device_feature_dma_logging_report r;
};

_Static_assert(offsetof(struct devlog_control_req, c) ==
	       sizeof(struct vfio_device_feature), "control after the header");
_Static_assert(offsetof(struct devlog_report_req, r) ==
	       sizeof(struct vfio_device_feature), "report after the header");
_Static_assert(sizeof(struct vfio_device_feature_dma_logging_range) == 16,
	       "16-byte ranges");

struct ram_devlog {
	struct ram_devlog *next;
	int fd;
	bool started;
	uint64_t page_size;		/* asked of START */
	uint64_t dev_page_size;		/* what the device chose */
	unsigned int nr_ranges;		/* what START is given */
	struct vfio_device_feature_dma_logging_range *ranges;
	uint64_t *bits;			/* the largest region's bitmap */
	unsigned int nr;
	struct ram_iova rg[];		/* sorted by IOVA */
};

static bool unsupported(int err)
{
	return err == -ENOTTY || err == -EOPNOTSUPP || err == -EINVAL;
}

/* Does the device offer DMA logging?  0 if it does. */
static int devlog_probe(int fd)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
			 VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
	};

	return ram_vfio_sys.ioctl(fd, VFIO_DEVICE_FEATURE, &f);
}

static int devlog_stop_feature(int fd)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_SET |
			 VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
	};

	return ram_vfio_sys.ioctl(fd, VFIO_DEVICE_FEATURE, &f);
}

static int devlog_start_feature(struct ram_devlog *d)
{
	struct devlog_control_req req = {
		.f.argsz = sizeof(req),
		.f.flags = VFIO_DEVICE_FEATURE_SET |
			   VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
		.c.page_size = d->page_size,
		.c.num_ranges = d->nr_ranges,
		.c.ranges = (uintptr_t)d->ranges,
	};
	int err;

	err = ram_vfio_sys.ioctl(d->fd, VFIO_DEVICE_FEATURE, &req);
	if (!err)
		d->dev_page_size = req.c.page_size;
	return err;
}

/*
 * The device's log of [iova, iova + len) at 4 KiB pages into bits,
 * zeroed first; the device forgets what it reports.
 */
static int devlog_report(int fd, uint64_t iova, uint64_t len, uint64_t *bits)
{
	struct devlog_report_req req = {
		.f.argsz = sizeof(req),
		.f.flags = VFIO_DEVICE_FEATURE_GET |
			   VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
		.r.iova = iova,
		.r.length = len,
		.r.page_size = RAM_PAGE_SIZE,
		.r.bitmap = (uintptr_t)bits,
	};

	memset(bits, 0, (len / RAM_PAGE_SIZE + 63) / 64 * sizeof(*bits));
	return ram_vfio_sys.ioctl(fd, VFIO_DEVICE_FEATURE, &req);
}

/*
 * Merge sorted, disjoint ranges into at most k (>= 1), joining the
 * neighbours with the smallest gap first.  Returns the new count.
 */
static unsigned int merge_ranges(struct vfio_device_feature_dma_logging_range *r,
				 unsigned int n, unsigned int k)
{
	unsigned int i, best;
	uint64_t gap, best_gap;

	while (n > k) {
		best = 0;
		best_gap = UINT64_MAX;
		for (i = 0; i + 1 < n; i++) {
			gap = r[i + 1].iova - (r[i].iova + r[i].length);
			if (gap < best_gap) {
				best_gap = gap;
				best = i;
			}
		}
		r[best].length = r[best + 1].iova + r[best + 1].length -
				 r[best].iova;
		memmove(&r[best + 1], &r[best + 2],
			(n - best - 2) * sizeof(*r));
		n--;
	}
	return n;
}

/*
 * START, with fewer (merged) ranges each time the device refuses them as
 * too many.  The count it took stays in d.
 */
static int devlog_start(struct ram_devlog *d)
{
	unsigned int k;
	int err;

	for (;;) {
		err = devlog_start_feature(d);
		if (!err)
			return 0;
		if ((err != -E2BIG && err != -EINVAL) || d->nr_ranges == 1)
			return err;
		k = d->nr_ranges / 2;
		vmig_dbg("ram: VFIO device %d: DMA logging of %u ranges refused (%d), trying %u",
			 d->fd, d->nr_ranges, err, k);
		d->nr_ranges = merge_ranges(d->ranges, d->nr_ranges, k);
	}
}

static int cmp_rgn(const void *a, const void *b)
{
	const struct ram_iova *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/*
 * The ranges for START: each region's, rounded out to page_size, joined
 * where they touch or overlap (rounding), then merged down to what the
 * vfio core takes.  d->rg[] must be sorted and disjoint.
 */
static int devlog_ranges(struct ram_devlog *d)
{
	uint64_t ps = d->page_size, start, end;
	long kpage = sysconf(_SC_PAGESIZE);
	unsigned int i, n = 0, core_max;

	d->ranges = calloc(d->nr, sizeof(*d->ranges));
	if (!d->ranges)
		return -ENOMEM;
	for (i = 0; i < d->nr; i++) {
		start = d->rg[i].iova & ~(ps - 1);
		end = d->rg[i].iova + d->rg[i].r->r.size;
		if (end + (ps - 1) < end)
			return -EINVAL;
		end = (end + ps - 1) & ~(ps - 1);
		if (n && start <= d->ranges[n - 1].iova +
				  d->ranges[n - 1].length) {
			d->ranges[n - 1].length = end - d->ranges[n - 1].iova;
			continue;
		}
		d->ranges[n].iova = start;
		d->ranges[n].length = end - start;
		n++;
	}
	/* The vfio core takes a kernel page's worth of ranges (E2BIG). */
	core_max = (kpage > 0 ? (unsigned long)kpage : 4096) /
		   sizeof(*d->ranges);
	d->nr_ranges = merge_ranges(d->ranges, n, core_max);
	return 0;
}

static void devlog_free(struct ram_devlog *d)
{
	if (!d)
		return;
	free(d->ranges);
	free(d->bits);
	free(d);
}

/* Report every region; queue: into the dirty set, else dropped. */
static int sync_one(struct vmig_ram *ram, struct ram_devlog *d, bool queue)
{
	uint64_t w, b, n, idx, pages;
	unsigned int i;
	int err;

	for (i = 0; i < d->nr; i++) {
		const struct ram_region *r = d->rg[i].r;

		err = devlog_report(d->fd, d->rg[i].iova, r->r.size, d->bits);
		if (err) {
			vmig_err("ram: VFIO device %d: DMA logging report of IOVA 0x%llx+0x%llx: %d",
				 d->fd, (unsigned long long)d->rg[i].iova,
				 (unsigned long long)r->r.size, err);
			return err;
		}
		if (!queue)
			continue;
		pages = r->pages;
		n = 0;
		ram_lock(ram);
		for (w = 0; w < (pages + 63) / 64; w++)
			for (b = d->bits[w]; b; b &= b - 1) {
				idx = w * 64 + __builtin_ctzll(b);
				if (idx >= pages)
					break;
				ram_push_locked(ram, r->first + idx);
				n++;
			}
		ram->stats.reported += n;
		ram->stats.devlog_reported += n;
		ram_unlock(ram);
	}
	return 0;
}

VMIG_EXPORT int vmig_ram_add_vfio_device_log(struct vmig_ram *ram,
					     int device_fd,
					     const uint64_t *iova,
					     uint64_t page_size)
{
	struct ram_devlog *d;
	uint64_t words = 0, len;
	unsigned int i;
	int err, e, n;

	if (!page_size)
		page_size = RAM_PAGE_SIZE;
	if (!ram || device_fd < 0 || !iova || page_size < RAM_PAGE_SIZE ||
	    (page_size & (page_size - 1)))
		return -EINVAL;
	if (ram->ops)
		return -EBUSY;
	n = ram_iova_regions(ram, iova, NULL, NULL);
	if (n < 0)
		return n;

	d = calloc(1, sizeof(*d) + n * sizeof(d->rg[0]));
	if (!d)
		return -ENOMEM;
	d->fd = device_fd;
	d->page_size = page_size;
	d->nr = ram_iova_regions(ram, iova, d->rg, &words);
	qsort(d->rg, d->nr, sizeof(d->rg[0]), cmp_rgn);
	/* The device cannot tell two regions mapped at one IOVA apart. */
	for (i = 1; i < d->nr; i++)
		if (d->rg[i].iova < d->rg[i - 1].iova +
				    d->rg[i - 1].r->r.size) {
			err = -EINVAL;
			goto out;
		}
	err = devlog_ranges(d);
	if (err)
		goto out;
	d->bits = calloc(words, sizeof(uint64_t));
	if (!d->bits) {
		err = -ENOMEM;
		goto out;
	}

	err = devlog_probe(device_fd);
	if (unsupported(err)) {
		vmig_info("ram: VFIO device %d does not offer DMA logging (%d)",
			  device_fd, err);
		err = -EOPNOTSUPP;
		goto out;
	}
	if (err) {
		vmig_err("ram: VFIO device %d: DMA logging probe: %d",
			 device_fd, err);
		goto out;
	}
	/* Try it: a device may offer it and not be able to report. */
	err = devlog_start(d);
	if (err) {
		vmig_err("ram: VFIO device %d: DMA logging start (%u ranges): %d",
			 device_fd, d->nr_ranges, err);
		if (err == -ENOTTY || err == -EOPNOTSUPP)
			err = -EOPNOTSUPP;
		goto out;
	}
	len = d->rg[0].r->r.size;
	if (len > DEVLOG_TRIAL_PAGES * RAM_PAGE_SIZE)
		len = DEVLOG_TRIAL_PAGES * RAM_PAGE_SIZE;
	err = devlog_report(device_fd, d->rg[0].iova, len, d->bits);
	e = devlog_stop_feature(device_fd);
	if (err == -ENOTTY || err == -EOPNOTSUPP) {
		vmig_info("ram: VFIO device %d offers DMA logging but cannot report it (%d): not used",
			  device_fd, err);
		err = -EOPNOTSUPP;
		goto out;
	}
	if (err) {
		vmig_err("ram: VFIO device %d: DMA logging report: %d",
			 device_fd, err);
		goto out;
	}
	if (e) {
		vmig_err("ram: VFIO device %d: DMA logging stop: %d",
			 device_fd, e);
		err = e;
		goto out;
	}
	vmig_info("ram: VFIO device %d: DMA logging of %u regions in %u ranges, %llu-byte pages",
		  device_fd, d->nr, d->nr_ranges,
		  (unsigned long long)d->dev_page_size);
	pthread_mutex_lock(&ram->vfio_lock);
	d->next = ram->devlog;
	ram->devlog = d;
	pthread_mutex_unlock(&ram->vfio_lock);
	return 0;
out:
	devlog_free(d);
	return err;
}

int ram_devlog_sync(struct vmig_ram *ram, bool queue)
{
	uint64_t t0 = ram_cpu_ns();
	struct ram_devlog *d;
	int err = 0, e;

	pthread_mutex_lock(&ram->vfio_lock);
	for (d = ram->devlog; d; d = d->next) {
		if (!d->started)
			continue;
		e = sync_one(ram, d, queue);
		if (e && !err)
			err = e;
	}
	/* What a failed REPORT read is lost: every page is dirty. */
	if (err && queue)
		ram_resync(ram, "a VFIO device's DMA logging report failed");
	pthread_mutex_unlock(&ram->vfio_lock);
	if (ram->devlog)
		ram_add_sync_ns(ram, t0);
	return err;
}

static void stop_one(struct vmig_ram *ram, struct ram_devlog *d, bool harvest)
{
	int err;

	if (!d->started)
		return;
	/* Keep what the device wrote since the last sync. */
	if (harvest && sync_one(ram, d, true))
		ram_resync(ram, "a VFIO device's last DMA logging report failed");
	err = devlog_stop_feature(d->fd);
	if (err)
		vmig_warn("ram: VFIO device %d: DMA logging stop: %d",
			  d->fd, err);
	d->started = false;
}

int ram_devlog_start(struct vmig_ram *ram)
{
	struct ram_devlog *d;
	int err = 0;

	pthread_mutex_lock(&ram->vfio_lock);
	for (d = ram->devlog; d; d = d->next) {
		err = devlog_start(d);
		if (err) {
			vmig_err("ram: VFIO device %d: DMA logging start (%u ranges): %d",
				 d->fd, d->nr_ranges, err);
			break;
		}
		d->started = true;
	}
	if (err)
		for (d = ram->devlog; d; d = d->next)
			stop_one(ram, d, false);
	pthread_mutex_unlock(&ram->vfio_lock);
	return err;
}

void ram_devlog_stop(struct vmig_ram *ram)
{
	struct ram_devlog *d;

	pthread_mutex_lock(&ram->vfio_lock);
	for (d = ram->devlog; d; d = d->next)
		stop_one(ram, d, true);
	pthread_mutex_unlock(&ram->vfio_lock);
}

void ram_devlog_free(struct vmig_ram *ram)
{
	struct ram_devlog *d;

	while ((d = ram->devlog)) {
		ram->devlog = d->next;
		devlog_free(d);
	}
}

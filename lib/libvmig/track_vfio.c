// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Pages a VFIO device dirtied: the type1 container's dirty bitmap, merged
 * into the RAM dirty set next to the KVM ring, the KVM bitmap or the
 * write-protect tracker (issue 7).
 *
 * KVM logs the guest's writes, not a device's: a device that writes guest
 * memory through the type1 backend (vfio_dma_rw(), pinned pages) is logged
 * by VFIO_IOMMU_DIRTY_PAGES instead.  For each container the caller added,
 * with the IOVA it mapped each RAM region at, tracking issues START with
 * the tracker, every sync copies and clears the bitmap of each region
 * (GET_BITMAP, 4 KiB pages; one call per mapping when the caller mapped a
 * region in pieces, as a request may not split a mapping), and stopping
 * takes a last bitmap before STOP.  The kernel sets a bit and takes the
 * bitmap under the same lock: a write is in one harvest or the next.  The
 * pages go into the same dirty set as the tracker's, deduplicated there.
 *
 * The last harvest of a migration is the sync of the stop-and-copy
 * (vmig_ram_precopy_complete()): the caller stops its devices (RUNNING_P2P
 * or STOP) before it, so the pages a device wrote after the last precopy
 * sync are collected then.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/vfio.h>

#include "ram_int.h"

struct ram_vfio {
	struct ram_vfio *next;
	int fd;
	bool started;
	uint64_t chunk;			/* bytes per GET_BITMAP, 0: region */
	unsigned int nr;
	uint64_t *bits;			/* the largest region's bitmap */
	uint64_t words;
	struct ram_iova rg[];
};

static int dirty_ctl(int fd, uint32_t flag)
{
	struct vfio_iommu_type1_dirty_bitmap d = {
		.argsz = sizeof(d),
		.flags = flag,
	};

	return ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, &d) ? -errno : 0;
}

/* The bitmap of [iova, iova + size) into bits (zeroed), then cleared. */
static int get_bitmap(int fd, uint64_t iova, uint64_t size, uint64_t *bits)
{
	struct {
		struct vfio_iommu_type1_dirty_bitmap d;
		struct vfio_iommu_type1_dirty_bitmap_get g;
	} req = {
		.d.argsz = sizeof(req),
		.d.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
		.g.iova = iova,
		.g.size = size,
		.g.bitmap.pgsize = RAM_PAGE_SIZE,
		.g.bitmap.size = (size / RAM_PAGE_SIZE + 63) / 64 * 8,
		.g.bitmap.data = (__u64 *)bits,
	};

	memset(bits, 0, req.g.bitmap.size);
	return ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, &req) ? -errno : 0;
}

VMIG_EXPORT int vmig_ram_add_vfio_container(struct vmig_ram *ram,
					    int container_fd,
					    const uint64_t *iova,
					    uint64_t map_chunk)
{
	struct ram_vfio *v;
	uint64_t words = 0;
	int n;

	if (!ram || container_fd < 0 || !iova ||
	    map_chunk % (64 * RAM_PAGE_SIZE))
		return -EINVAL;
	if (ram->ops)
		return -EBUSY;
	n = ram_iova_regions(ram, iova, NULL, NULL);
	if (n < 0)
		return n;
	v = calloc(1, sizeof(*v) + n * sizeof(v->rg[0]));
	if (!v)
		return -ENOMEM;
	v->fd = container_fd;
	v->chunk = map_chunk;
	v->nr = ram_iova_regions(ram, iova, v->rg, &words);
	v->words = words;
	v->bits = calloc(words, sizeof(uint64_t));
	if (!v->bits) {
		free(v);
		return -ENOMEM;
	}
	v->next = ram->vfio;
	ram->vfio = v;
	return 0;
}

static int sync_one(struct vmig_ram *ram, struct ram_vfio *v, bool queue)
{
	uint64_t w, b, n = 0, off, len, pages;
	unsigned int i;
	int err;

	for (i = 0; i < v->nr; i++) {
		const struct ram_region *r = v->rg[i].r;

		for (off = 0; off < r->r.size; off += len) {
			len = r->r.size - off;
			if (v->chunk && len > v->chunk)
				len = v->chunk;
			err = get_bitmap(v->fd, v->rg[i].iova + off, len,
					 v->bits + off / RAM_PAGE_SIZE / 64);
			if (err) {
				vmig_err("ram: VFIO container %d: dirty bitmap of IOVA 0x%llx+0x%llx: %d",
					 v->fd,
					 (unsigned long long)(v->rg[i].iova + off),
					 (unsigned long long)len, err);
				return err;
			}
		}
		if (!queue)
			continue;
		pages = r->pages;
		ram_lock(ram);
		for (w = 0; w < (pages + 63) / 64; w++)
			for (b = v->bits[w]; b; b &= b - 1) {
				ram_push_locked(ram, r->first + w * 64 +
						__builtin_ctzll(b));
				n++;
			}
		ram->stats.reported += n;
		ram->stats.vfio_reported += n;
		ram_unlock(ram);
		n = 0;
	}
	return 0;
}

int ram_vfio_sync(struct vmig_ram *ram, bool queue)
{
	uint64_t t0 = ram_cpu_ns();
	struct ram_vfio *v;
	int err = 0, e;

	pthread_mutex_lock(&ram->vfio_lock);
	for (v = ram->vfio; v; v = v->next) {
		if (!v->started)
			continue;
		e = sync_one(ram, v, queue);
		if (e && !err)
			err = e;
	}
	pthread_mutex_unlock(&ram->vfio_lock);
	if (ram->vfio)
		ram_add_sync_ns(ram, t0);
	return err;
}

static void stop_one(struct vmig_ram *ram, struct ram_vfio *v, bool harvest)
{
	int err;

	if (!v->started)
		return;
	/* Keep what the device wrote since the last sync. */
	if (harvest)
		sync_one(ram, v, true);
	err = dirty_ctl(v->fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
	if (err)
		vmig_warn("ram: VFIO container %d: dirty tracking stop: %d",
			  v->fd, err);
	v->started = false;
}

int ram_vfio_start(struct vmig_ram *ram)
{
	struct ram_vfio *v;
	int err = 0;

	pthread_mutex_lock(&ram->vfio_lock);
	for (v = ram->vfio; v && !err; v = v->next) {
		err = dirty_ctl(v->fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
		if (err) {
			vmig_err("ram: VFIO container %d: dirty tracking start: %d",
				 v->fd, err);
			break;
		}
		v->started = true;
		/*
		 * What START reports (pinned pages) is not news: the
		 * precopy sends every page once anyway.  This also checks
		 * that every region is mapped whole at its IOVA.
		 */
		err = sync_one(ram, v, false);
	}
	if (err)
		for (v = ram->vfio; v; v = v->next)
			stop_one(ram, v, false);
	pthread_mutex_unlock(&ram->vfio_lock);
	return err;
}

void ram_vfio_stop(struct vmig_ram *ram)
{
	struct ram_vfio *v;

	pthread_mutex_lock(&ram->vfio_lock);
	for (v = ram->vfio; v; v = v->next)
		stop_one(ram, v, true);
	pthread_mutex_unlock(&ram->vfio_lock);
}

void ram_vfio_free(struct vmig_ram *ram)
{
	struct ram_vfio *v;

	while ((v = ram->vfio)) {
		ram->vfio = v->next;
		free(v->bits);
		free(v);
	}
}

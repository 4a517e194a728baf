// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-migsim: the DMA engine, a device that writes guest memory.
 *
 * While the device is open and RUNNING or PRE_COPY, a delayed work item
 * writes whole 4 KiB pages of the configured IOVA ranges at `rate` bytes
 * per second through vfio_dma_rw(), into the memory the VMM mapped into the
 * device's VFIO container.  It walks the ranges in order, page after page,
 * and starts over after the last one.  Every page carries a struct
 * migsim_dma_page header (magic, IOVA, the instance's write number "seq",
 * UUID) and a fill derived from seq and the IOVA, so a test can tell which
 * pages the device wrote, and in which order.  In every other state
 * (RUNNING_P2P, PRE_COPY_P2P and the stopped states) it writes nothing:
 * the state arcs run under state_mutex, which every write holds, so no
 * write is in flight once an arc to a P2P state has returned.
 *
 * The type1 IOMMU backend marks each page written through vfio_dma_rw() in
 * the container's dirty bitmap while VFIO_IOMMU_DIRTY_PAGES tracking is
 * on; that is how a VMM sees what this device dirtied.
 *
 * Device DMA logging (vfio_device.log_ops, at the end of this file) logs
 * every page the engine writes inside the ranges the VMM asked for, and
 * reports them exactly.  It is advertised only when the kernel has
 * CONFIG_IOMMUFD_DRIVER: without it, the iova_bitmap helpers the report
 * goes through are stubs (iova_bitmap_for_each() fails with EOPNOTSUPP),
 * so advertising it would only make a VMM fail migration setup the way
 * QEMU does with the mtty sample, instead of falling back to the
 * container's dirty tracking.  VFIO_DEVICE_FEATURE_DMA_LOGGING_* then give
 * ENOTTY.  The code is built either way, so that it stays compiled.
 *
 * A write that fails (an IOVA not mapped, a mapping removed while the
 * engine runs, read-only memory, a VMM that is gone) is counted, noted in
 * last_error and the kernel log, and the range it belongs to is skipped
 * from then on, until the next DMA_SET.  The engine pins no pages and has
 * no .dma_unmap: see the locking rules in migsim.h for why none is needed.
 */
#include <linux/interval_tree.h>
#include <linux/iova_bitmap.h>
#include <linux/jiffies.h>
#include <linux/math64.h>
#include <linux/mdev.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include "migsim.h"

#define MIGSIM_DMA_PERIOD_MS 10
/* pages written per tick at most: caps the rate at 100 MiB/s */
#define MIGSIM_DMA_MAX_TICK_PAGES 256U

static bool migsim_dma_active(struct migsim_dev *mdev)
{
	return mdev->opened &&
	       (mdev->mig_state == VFIO_DEVICE_STATE_RUNNING ||
		mdev->mig_state == VFIO_DEVICE_STATE_PRE_COPY);
}

/* The range to write next, moving past disabled ones; NULL if none left. */
static struct migsim_dma_range *migsim_dma_next(struct migsim_dma *dma)
{
	u32 i;

	for (i = 0; i < dma->nr_ranges; i++) {
		struct migsim_dma_range *r = &dma->ranges[dma->cur];

		if (!r->disabled)
			return r;
		dma->cur = (dma->cur + 1) % dma->nr_ranges;
		dma->off = 0;
	}
	return NULL;
}

static void migsim_dma_fill(struct migsim_dev *mdev, u64 iova, u64 seq)
{
	struct migsim_dma_page *hdr = mdev->dma.page;
	__le64 *w = mdev->dma.page;
	u32 i;

	for (i = MIGSIM_DMA_HDR_WORDS; i < MIGSIM_DMA_PAGE_SIZE / 8; i++)
		w[i] = cpu_to_le64(seq ^ (iova + 8 * i));
	hdr->magic = cpu_to_le64(MIGSIM_DMA_MAGIC);
	hdr->iova = cpu_to_le64(iova);
	hdr->seq = cpu_to_le64(seq);
	memcpy(hdr->uuid, mdev->dma.uuid, sizeof(hdr->uuid));
}

/* ------------------------------------------------------- DMA logging */

/* Is iova inside a range the VMM asked to log? */
static bool migsim_dma_logged(struct migsim_dma *dma, u64 iova)
{
	u32 i;

	for (i = 0; i < dma->nr_log; i++)
		if (iova >= dma->log_ranges[i].start &&
		    iova <= dma->log_ranges[i].last)
			return true;
	return false;
}

/* The engine wrote the page at iova.  state_mutex held. */
static void migsim_dma_log_page(struct migsim_dma *dma, u64 iova)
{
	if (dma->logging && migsim_dma_logged(dma, iova))
		xa_store(&dma->log, iova >> PAGE_SHIFT, xa_mk_value(1),
			 GFP_KERNEL);
}

static int migsim_log_start(struct vfio_device *vdev,
			    struct rb_root_cached *ranges, u32 nnodes,
			    u64 *page_size)
{
	struct migsim_dev *mdev = to_migsim(vdev);
	struct migsim_dma *dma = &mdev->dma;
	struct interval_tree_node *node;
	int ret = 0;
	u32 n = 0;

	/* too many ranges: log their span as one, as the core allows */
	if (nnodes > MIGSIM_DMA_MAX_LOG_RANGES) {
		vfio_combine_iova_ranges(ranges, nnodes,
					 MIGSIM_DMA_MAX_LOG_RANGES);
		nnodes = MIGSIM_DMA_MAX_LOG_RANGES;
	}
	mutex_lock(&mdev->state_mutex);
	if (dma->logging) {
		ret = -EBUSY;
		goto out;
	}
	for (node = interval_tree_iter_first(ranges, 0, ULONG_MAX);
	     node && n < nnodes;
	     node = interval_tree_iter_next(node, 0, ULONG_MAX), n++) {
		dma->log_ranges[n].start = node->start;
		dma->log_ranges[n].last = node->last;
	}
	dma->nr_log = n;
	/* the engine writes whole pages: log at that granularity */
	*page_size = PAGE_SIZE;
	dma->logging = true;
out:
	mutex_unlock(&mdev->state_mutex);
	return ret;
}

/* Stop logging and forget what was logged.  state_mutex held. */
void migsim_dma_log_reset(struct migsim_dev *mdev)
{
	struct migsim_dma *dma = &mdev->dma;

	lockdep_assert_held(&mdev->state_mutex);
	dma->logging = false;
	dma->nr_log = 0;
	xa_destroy(&dma->log);
}

static int migsim_log_stop(struct vfio_device *vdev)
{
	struct migsim_dev *mdev = to_migsim(vdev);

	mutex_lock(&mdev->state_mutex);
	migsim_dma_log_reset(mdev);
	mutex_unlock(&mdev->state_mutex);
	return 0;
}

/* Report, and forget, the pages written in [iova, iova + length). */
static int migsim_log_read_and_clear(struct vfio_device *vdev,
				     unsigned long iova, unsigned long length,
				     struct iova_bitmap *dirty)
{
	struct migsim_dev *mdev = to_migsim(vdev);
	struct migsim_dma *dma = &mdev->dma;
	unsigned long idx = iova >> PAGE_SHIFT;
	void *entry;
	int ret = 0;

	mutex_lock(&mdev->state_mutex);
	if (!dma->logging) {
		ret = -EINVAL;
		goto out;
	}
	xa_for_each_range(&dma->log, idx, entry, iova >> PAGE_SHIFT,
			  (iova + length - 1) >> PAGE_SHIFT) {
		iova_bitmap_set(dirty, idx << PAGE_SHIFT, PAGE_SIZE);
		xa_erase(&dma->log, idx);
	}
out:
	mutex_unlock(&mdev->state_mutex);
	return ret;
}

static const struct vfio_log_ops migsim_log_ops = {
	.log_start = migsim_log_start,
	.log_stop = migsim_log_stop,
	.log_read_and_clear = migsim_log_read_and_clear,
};

/* -------------------------------------------------------- the engine */

/*
 * Write the next page.  Returns false if no range is left.  Called with
 * state_mutex held, the device open and RUNNING or PRE_COPY.
 */
static bool migsim_dma_write_one(struct migsim_dev *mdev)
{
	struct migsim_dma *dma = &mdev->dma;
	struct migsim_dma_range *r = migsim_dma_next(dma);
	u64 iova;
	int ret;

	if (!r)
		return false;
	iova = r->iova + dma->off;
	migsim_dma_fill(mdev, iova, dma->pages);
	ret = vfio_dma_rw(&mdev->vdev, iova, dma->page, MIGSIM_DMA_PAGE_SIZE,
			  true);
	if (ret) {
		dma->errors++;
		r->disabled = true;
		migsim_set_error(mdev,
				 "DMA write to IOVA 0x%llx failed (%d), range 0x%llx+0x%llx disabled",
				 iova, ret, r->iova, r->len);
	} else {
		migsim_dma_log_page(dma, iova);
		dma->pages++;
		dma->bytes += MIGSIM_DMA_PAGE_SIZE;
		dma->off += MIGSIM_DMA_PAGE_SIZE;
	}
	if (ret || dma->off >= r->len) {
		dma->off = 0;
		dma->cur = (dma->cur + 1) % dma->nr_ranges;
	}
	return true;
}

static void migsim_dma_work(struct work_struct *work)
{
	struct migsim_dma *dma = container_of(to_delayed_work(work),
					      struct migsim_dma, work);
	struct migsim_dev *mdev = container_of(dma, struct migsim_dev, dma);
	ktime_t now = ktime_get();
	u64 max_credit = (u64)MIGSIM_DMA_MAX_TICK_PAGES * MIGSIM_DMA_PAGE_SIZE;
	u32 n;

	mutex_lock(&mdev->state_mutex);
	if (!dma->rate) {
		dma->scheduled = false;
		mutex_unlock(&mdev->state_mutex);
		return;
	}
	if (!migsim_dma_active(mdev)) {
		/* quiesced: nothing written, no backlog on resume */
		dma->last = now;
		dma->credit = 0;
		goto rearm;
	}
	dma->credit += mul_u64_u64_div_u64(dma->rate,
					   ktime_to_ns(ktime_sub(now,
								 dma->last)),
					   NSEC_PER_SEC);
	dma->last = now;
	dma->credit = min(dma->credit, max_credit);
	for (n = 0; dma->credit >= MIGSIM_DMA_PAGE_SIZE; n++) {
		if (!migsim_dma_write_one(mdev)) {
			/* every range is disabled: nothing left to owe */
			dma->credit = 0;
			break;
		}
		dma->credit -= MIGSIM_DMA_PAGE_SIZE;
	}
rearm:
	mutex_unlock(&mdev->state_mutex);
	schedule_delayed_work(&dma->work,
			      msecs_to_jiffies(MIGSIM_DMA_PERIOD_MS));
}

int migsim_dma_init(struct migsim_dev *mdev)
{
	struct migsim_dma *dma = &mdev->dma;
	const u8 *g = mdev->mdev->uuid.b;
	static const u8 order[16] = {
		3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15
	};
	int i;

	/* the mdev's guid_t in the byte order of its string form */
	for (i = 0; i < 16; i++)
		dma->uuid[i] = g[order[i]];
	dma->page = kzalloc(MIGSIM_DMA_PAGE_SIZE, GFP_KERNEL_ACCOUNT);
	if (!dma->page)
		return -ENOMEM;
	INIT_DELAYED_WORK(&dma->work, migsim_dma_work);
	xa_init(&dma->log);
	if (IS_ENABLED(CONFIG_IOMMUFD_DRIVER))
		mdev->vdev.log_ops = &migsim_log_ops;
	return 0;
}

void migsim_dma_destroy(struct migsim_dev *mdev)
{
	struct migsim_dma *dma = &mdev->dma;

	mutex_lock(&mdev->state_mutex);
	dma->rate = 0;
	mutex_unlock(&mdev->state_mutex);
	cancel_delayed_work_sync(&dma->work);
	xa_destroy(&dma->log);
	kfree(dma->page);
}

/*
 * Replace the rate (if conf->set_rate) and the ranges (if conf->set_ranges);
 * the walk starts over at the first range and every range is enabled again.
 * The caller has checked the ranges.  state_mutex held.
 */
void migsim_dma_set(struct migsim_dev *mdev, const struct migsim_dma_conf *conf)
{
	struct migsim_dma *dma = &mdev->dma;
	u32 i;

	lockdep_assert_held(&mdev->state_mutex);
	if (conf->set_rate)
		dma->rate = conf->rate;
	if (conf->set_ranges) {
		dma->nr_ranges = conf->nr_ranges;
		memcpy(dma->ranges, conf->ranges,
		       conf->nr_ranges * sizeof(conf->ranges[0]));
	}
	for (i = 0; i < dma->nr_ranges; i++)
		dma->ranges[i].disabled = false;
	dma->cur = 0;
	dma->off = 0;
	dma->last = ktime_get();
	dma->credit = 0;
	if (dma->rate && !dma->scheduled) {
		dma->scheduled = true;
		schedule_delayed_work(&dma->work,
				      msecs_to_jiffies(MIGSIM_DMA_PERIOD_MS));
	}
}

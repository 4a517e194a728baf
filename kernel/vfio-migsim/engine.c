// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-migsim: the workload that keeps dirtying the device's state.
 *
 * While the device is RUNNING or PRE_COPY, a delayed work item dirties
 * chunks of the state at `rate` bytes per second: each time, it picks a
 * chunk of the hot set (the first `hot_permille` thousandths of the chunks,
 * at least one), rewrites a 4 KiB page of it at random and counts the whole
 * chunk against the rate, since the whole chunk must now be sent again.
 * The rate is thus the rate at which the state becomes dirty, which is what
 * precopy convergence depends on, at the cost of a page write per chunk.
 * In every other state (RUNNING_P2P, PRE_COPY_P2P and the stopped states)
 * the engine changes nothing: that is the P2P quiescing contract.
 *
 * Each write keeps the chunk's CRC current (migsim_chunk_write()) and tells
 * an open save stream that the chunk changed (migsim_save_dirty()).
 *
 * Locking: the work takes state_mutex, then the save fd's lock (migsim.h).
 */
#include <linux/jiffies.h>
#include <linux/math64.h>
#include <linux/prandom.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include "migsim.h"

#define MIGSIM_ENGINE_PERIOD_MS 10
#define MIGSIM_ENGINE_PAGE 4096U
/* at most this much written per tick, so one tick never runs away */
#define MIGSIM_ENGINE_MAX_TICK (64U << 20)

static bool migsim_engine_active(struct migsim_dev *mdev)
{
	return mdev->mig_state == VFIO_DEVICE_STATE_RUNNING ||
	       mdev->mig_state == VFIO_DEVICE_STATE_PRE_COPY;
}

/*
 * Dirty one hot chunk by rewriting a page of it; returns the chunk's size.
 * Called with state_mutex (and the save fd's lock, if any) held.
 */
static u32 migsim_engine_dirty_chunk(struct migsim_dev *mdev,
				     struct migsim_engine *eng)
{
	struct migsim_store *st = mdev->store;
	unsigned long n = migsim_nr_chunks(st->size, st->chunk_size);
	unsigned long hot = max_t(unsigned long, 1,
				  div_u64((u64)n * eng->hot_permille, 1000));
	unsigned long idx = prandom_u32_state(&eng->rnd) % hot;
	struct migsim_chunk *c = migsim_store_chunk(st, idx);
	u32 pages = DIV_ROUND_UP(c->len, MIGSIM_ENGINE_PAGE);
	u32 off = (prandom_u32_state(&eng->rnd) % pages) * MIGSIM_ENGINE_PAGE;
	u32 len = min(MIGSIM_ENGINE_PAGE, c->len - off);

	eng->stamp++;
	migsim_fill(eng->page, len, st->seed ^ (eng->stamp << 32),
		    (u64)idx * st->chunk_size + off);
	if (mdev->saving)
		migsim_save_dirty(mdev->saving, idx, c);
	migsim_chunk_write(c, off, eng->page, len, eng->tmp);
	eng->bytes_dirtied += c->len;
	eng->chunks_dirtied++;
	return c->len;
}

static void migsim_engine_work(struct work_struct *work)
{
	struct migsim_engine *eng = container_of(to_delayed_work(work),
						 struct migsim_engine, work);
	struct migsim_dev *mdev = container_of(eng, struct migsim_dev, engine);
	ktime_t now = ktime_get();
	u64 budget;
	u32 done;

	mutex_lock(&mdev->state_mutex);
	if (!eng->rate) {
		mutex_unlock(&mdev->state_mutex);
		return;
	}
	if (!migsim_engine_active(mdev)) {
		/* quiesced: no change at all, and no backlog on resume */
		eng->last = now;
		eng->credit = 0;
		goto rearm;
	}

	eng->credit += mul_u64_u64_div_u64(eng->rate,
					   ktime_to_ns(ktime_sub(now,
								 eng->last)),
					   NSEC_PER_SEC);
	eng->last = now;
	budget = min_t(u64, eng->credit, MIGSIM_ENGINE_MAX_TICK);
	if (mdev->saving)
		mutex_lock(&mdev->saving->lock);
	/* a chunk is dirtied once its whole size is owed */
	while (budget >= mdev->store->chunk_size ||
	       budget >= mdev->store->size) {
		done = migsim_engine_dirty_chunk(mdev, eng);
		budget -= min_t(u64, budget, done);
		eng->credit -= min_t(u64, eng->credit, done);
		mdev->generation++;
	}
	if (mdev->saving)
		mutex_unlock(&mdev->saving->lock);
	/* keep at most one tick's worth of unspent credit */
	eng->credit = min_t(u64, eng->credit, MIGSIM_ENGINE_MAX_TICK);
rearm:
	mutex_unlock(&mdev->state_mutex);
	schedule_delayed_work(&eng->work,
			      msecs_to_jiffies(MIGSIM_ENGINE_PERIOD_MS));
}

int migsim_engine_init(struct migsim_dev *mdev)
{
	struct migsim_engine *eng = &mdev->engine;

	eng->page = kmalloc(MIGSIM_ENGINE_PAGE, GFP_KERNEL_ACCOUNT);
	eng->tmp = kmalloc(MIGSIM_ENGINE_PAGE, GFP_KERNEL_ACCOUNT);
	if (!eng->page || !eng->tmp) {
		kfree(eng->page);
		kfree(eng->tmp);
		return -ENOMEM;
	}
	INIT_DELAYED_WORK(&eng->work, migsim_engine_work);
	prandom_seed_state(&eng->rnd, mdev->store->seed);
	eng->hot_permille = 1000;
	return 0;
}

void migsim_engine_destroy(struct migsim_dev *mdev)
{
	struct migsim_engine *eng = &mdev->engine;

	mutex_lock(&mdev->state_mutex);
	eng->rate = 0;
	mutex_unlock(&mdev->state_mutex);
	cancel_delayed_work_sync(&eng->work);
	kfree(eng->page);
	kfree(eng->tmp);
}

/* Set the dirty rate (bytes/s, 0 = off) and hot set.  state_mutex held. */
void migsim_engine_set(struct migsim_dev *mdev, u64 rate, u32 hot_permille)
{
	struct migsim_engine *eng = &mdev->engine;
	bool start = rate && !eng->rate;

	lockdep_assert_held(&mdev->state_mutex);
	eng->rate = rate;
	eng->hot_permille = hot_permille;
	if (start) {
		eng->last = ktime_get();
		eng->credit = 0;
		schedule_delayed_work(&eng->work,
				      msecs_to_jiffies(MIGSIM_ENGINE_PERIOD_MS));
	}
}

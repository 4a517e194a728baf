// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The convergence model: when can the source stop the VM?
 *
 * pending = the dirty-RAM estimate + every device's stop-copy size; the
 * switchover comes when pending / bandwidth fits the downtime limit.  The
 * bandwidth is the caller's, or measured over windows of busy sending.
 *
 * The devices' stop-copy sizes come from an exact query that may be
 * costly, and a device's size may not shrink in precopy at all, so they
 * are cached (the cheap estimate) and refreshed (the exact query) at a
 * bounded rate: never more often than exact_min_ns, always when the cache
 * is exact_max_age_ns old, and when the estimate fits, so that a
 * switchover is decided on fresh sizes and a shrunk device is seen.
 * Neither does the loop spin on exact queries while the estimate fits and
 * the exact size does not, nor does it stick to a stale size.
 *
 * Not converging is a verdict too: when pending does not fit and has not
 * gone below 90 % of its lowest value for stall_ns, the answer is STUCK.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ram_int.h"

#define BW_WINDOW_NS	100000000ULL	/* a bandwidth sample */
#define BW_GAP_NS	20000000ULL	/* idle longer: restart the window */
#define BW_FIRST_NS	10000000ULL	/* the first sample, at least */

struct vmig_converge {
	struct vmig_converge_config cfg;
	uint64_t *sizes;		/* cached stop-copy sizes */
	bool have_sizes;
	uint64_t sizes_ns;		/* when they were queried */
	uint64_t exact_queries, estimates;
	/* Bandwidth measurement. */
	uint64_t win_start, win_last, win_bytes, bw;
	/* Stall detection. */
	bool have_best;
	uint64_t best, progress_ns;
};

VMIG_EXPORT void vmig_converge_config_init(struct vmig_converge_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->downtime_ns = 300000000ULL;
	cfg->stuck_size = 100ULL << 30;
	cfg->exact_min_ns = 100000000ULL;
	cfg->exact_max_age_ns = 1000000000ULL;
	cfg->stall_ns = 3000000000ULL;
}

VMIG_EXPORT int vmig_converge_new(const struct vmig_converge_config *cfg,
				  struct vmig_converge **out)
{
	struct vmig_converge *c;

	if (!cfg || !out || (cfg->nr_devices && !cfg->stop_copy_size) ||
	    cfg->exact_min_ns > cfg->exact_max_age_ns)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	if (cfg->nr_devices) {
		c->sizes = calloc(cfg->nr_devices, sizeof(*c->sizes));
		if (!c->sizes) {
			free(c);
			return -ENOMEM;
		}
	}
	*out = c;
	return 0;
}

VMIG_EXPORT void vmig_converge_free(struct vmig_converge *c)
{
	if (!c)
		return;
	free(c->sizes);
	free(c);
}

VMIG_EXPORT void vmig_converge_set_downtime(struct vmig_converge *c,
					    uint64_t ns)
{
	c->cfg.downtime_ns = ns;
	c->have_best = false;
}

VMIG_EXPORT void vmig_converge_account(struct vmig_converge *c,
				       uint64_t bytes, uint64_t now)
{
	uint64_t sample;

	if (!now)
		now = ram_now_ns();
	if (!c->win_start || now - c->win_last > BW_GAP_NS) {
		/*
		 * A window opens when this packet is done: its bytes went
		 * out before, so they are not the window's.
		 */
		c->win_start = now;
		c->win_last = now;
		c->win_bytes = 0;
		return;
	}
	c->win_last = now;
	c->win_bytes += bytes;
	/*
	 * A full window makes a sample; until the first one, a shorter
	 * window will do (a pass that takes less than a window would leave
	 * the model without any bandwidth).
	 */
	if (now - c->win_start < (c->bw ? BW_WINDOW_NS : BW_FIRST_NS))
		return;
	sample = (uint64_t)((double)c->win_bytes * 1e9 /
			    (now - c->win_start));
	c->bw = c->bw ? (c->bw * 3 + sample) / 4 : sample;
	c->win_start = now;
	c->win_bytes = 0;
}

static void refresh(struct vmig_converge *c, uint64_t now)
{
	unsigned int i;
	uint64_t v;
	int ret;

	for (i = 0; i < c->cfg.nr_devices; i++) {
		v = 0;
		ret = c->cfg.stop_copy_size(c->cfg.opaque, i, &v);
		if (ret) {
			vmig_warn("converge: device %u: stop-copy size: %d", i,
				  ret);
			v = c->cfg.stuck_size;
		}
		c->sizes[i] = v;
	}
	c->have_sizes = true;
	c->sizes_ns = now;
	c->exact_queries++;
}

static uint64_t device_bytes(const struct vmig_converge *c)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < c->cfg.nr_devices; i++)
		sum += c->sizes[i];
	return sum;
}

static bool evaluate(struct vmig_converge *c, uint64_t ram, uint64_t now,
		     struct vmig_converge_info *info)
{
	uint64_t bw = c->cfg.bandwidth ? c->cfg.bandwidth : c->bw;

	memset(info, 0, sizeof(*info));
	info->ram_bytes = ram;
	info->device_bytes = device_bytes(c);
	info->pending_bytes = info->ram_bytes + info->device_bytes;
	info->bandwidth = bw;
	info->downtime_ns = c->cfg.downtime_ns;
	info->device_age_ns = c->cfg.nr_devices ? now - c->sizes_ns : 0;
	info->exact_queries = c->exact_queries;
	info->estimates = c->estimates;
	if (!bw) {
		info->expected_downtime_ns = info->pending_bytes ? UINT64_MAX : 0;
		return !info->pending_bytes;
	}
	info->expected_downtime_ns =
		(uint64_t)((double)info->pending_bytes * 1e9 / bw);
	return info->expected_downtime_ns <= c->cfg.downtime_ns;
}

VMIG_EXPORT int vmig_converge_check(struct vmig_converge *c,
				    uint64_t ram_bytes, uint64_t now,
				    struct vmig_converge_info *info)
{
	struct vmig_converge_info tmp;
	bool exact = false, fits;

	if (!c)
		return -EINVAL;
	if (!info)
		info = &tmp;
	if (!now)
		now = ram_now_ns();
	if (c->cfg.nr_devices &&
	    (!c->have_sizes ||
	     now - c->sizes_ns >= c->cfg.exact_max_age_ns)) {
		refresh(c, now);
		exact = true;
	}
	fits = evaluate(c, ram_bytes, now, info);
	if (fits && c->cfg.nr_devices && !exact &&
	    now - c->sizes_ns > c->cfg.exact_min_ns) {
		/* The estimate fits: confirm it on fresh sizes. */
		refresh(c, now);
		exact = true;
		fits = evaluate(c, ram_bytes, now, info);
	}
	if (!exact && c->cfg.nr_devices) {
		c->estimates++;
		info->estimates = c->estimates;
	}
	if (fits)
		return VMIG_CONVERGE_SWITCHOVER;

	if (!c->have_best || info->pending_bytes < c->best / 10 * 9) {
		c->have_best = true;
		c->best = info->pending_bytes;
		c->progress_ns = now;
	}
	if (now - c->progress_ns < c->cfg.stall_ns)
		return VMIG_CONVERGE_CONTINUE;
	if (c->cfg.not_converging)
		c->cfg.not_converging(c->cfg.opaque, info);
	return VMIG_CONVERGE_STUCK;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The KVM dirty-bitmap tracker: the baseline the ring is measured against.
 *
 * With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_GET_DIRTY_LOG only copies the
 * bitmap out; the pages are re-protected by KVM_CLEAR_DIRTY_LOG, issued in
 * chunks and only where bits were set, before the pages are added to the
 * dirty set (a write between the two is then either in the copy or logged
 * again).  KVM_DIRTY_LOG_INITIALLY_SET defers the initial write-protection
 * to the first clears.  Without the capability, KVM_GET_DIRTY_LOG clears
 * and protects by itself.  Each sync scans every slot's bitmap: O(RAM).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "ram_int.h"

/* Pages per KVM_CLEAR_DIRTY_LOG: bounds how long KVM holds its MMU lock. */
#define CLEAR_CHUNK	(32768ULL)

struct bm_slot {
	const struct ram_region *r;
	uint64_t *bits;
	uint64_t words;
};

struct bm_priv {
	bool manual;
	unsigned int nr;
	struct bm_slot s[];
};

static void bm_free(struct bm_priv *p)
{
	unsigned int i;

	for (i = 0; i < p->nr; i++)
		free(p->s[i].bits);
	free(p);
}

static void push_words(struct vmig_ram *ram, const struct ram_region *r,
		       const uint64_t *bits, uint64_t w0, uint64_t w1)
{
	uint64_t w, v, n = 0;

	ram_lock(ram);
	for (w = w0; w < w1; w++) {
		for (v = bits[w]; v; v &= v - 1) {
			ram_push_locked(ram, r->first + w * 64 +
					__builtin_ctzll(v));
			n++;
		}
	}
	ram->stats.reported += n;
	ram_unlock(ram);
}

/* Copy a slot's bitmap out, re-protect what was set, queue the pages. */
static int bm_sync_slot(struct vmig_ram *ram, struct bm_priv *p,
			struct bm_slot *s, bool queue)
{
	struct kvm_dirty_log log = {
		.slot = s->r->r.kvm_slot,
		.dirty_bitmap = s->bits,
	};
	struct kvm_clear_dirty_log clr;
	uint64_t c, w, w0, w1, pages = s->r->pages;

	if (ioctl(ram->vm_fd, KVM_GET_DIRTY_LOG, &log))
		return -errno;
	for (c = 0; c < pages; c += CLEAR_CHUNK) {
		w0 = c / 64;
		w1 = (c + CLEAR_CHUNK < pages ? c + CLEAR_CHUNK : pages + 63) /
		     64;
		for (w = w0; w < w1 && !s->bits[w]; w++)
			;
		if (w == w1)
			continue;
		if (p->manual) {
			memset(&clr, 0, sizeof(clr));
			clr.slot = s->r->r.kvm_slot;
			clr.first_page = c;
			clr.num_pages = c + CLEAR_CHUNK < pages ?
					CLEAR_CHUNK : pages - c;
			clr.dirty_bitmap = &s->bits[w0];
			if (ioctl(ram->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr))
				return -errno;
		}
		if (queue)
			push_words(ram, s->r, s->bits, w0, w1);
	}
	return 0;
}

static int bm_sync_all(struct vmig_ram *ram, bool queue)
{
	struct bm_priv *p = ram->tracker_priv;
	uint64_t t0 = ram_cpu_ns(), before;
	unsigned int i;
	int err = 0;

	ram_lock(ram);
	before = ram->stats.reported;
	ram_unlock(ram);
	for (i = 0; i < p->nr && !err; i++)
		err = bm_sync_slot(ram, p, &p->s[i], queue);
	if (err)
		vmig_err("ram: dirty bitmap sync: %d", err);
	ram_lock(ram);
	if (ram->stats.reported != before)
		ram->stats.passes++;
	ram_unlock(ram);
	ram_add_sync_ns(ram, t0);
	return err;
}

static int bm_start(struct vmig_ram *ram)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };
	struct bm_priv *p;
	unsigned int i, n = 0;
	int caps, err;

	for (i = 0; i < ram->nr_regions; i++)
		n += ram->regions[i].r.kvm_slot >= 0;
	p = calloc(1, sizeof(*p) + n * sizeof(p->s[0]));
	if (!p)
		return -ENOMEM;
	for (i = 0; i < ram->nr_regions; i++) {
		struct bm_slot *s = &p->s[p->nr];

		if (ram->regions[i].r.kvm_slot < 0)
			continue;
		s->r = &ram->regions[i];
		s->words = (s->r->pages + 63) / 64;
		s->bits = calloc(s->words, sizeof(uint64_t));
		p->nr++;
		if (!s->bits) {
			bm_free(p);
			return -ENOMEM;
		}
	}

	caps = ioctl(ram->vm_fd, KVM_CHECK_EXTENSION,
		     KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	if (caps > 0 && (caps & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)) {
		cap.args[0] = caps & (KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
				      KVM_DIRTY_LOG_INITIALLY_SET);
		if (!ioctl(ram->vm_fd, KVM_ENABLE_CAP, &cap))
			p->manual = true;
		else
			vmig_warn("ram: MANUAL_DIRTY_LOG_PROTECT2: %d", -errno);
	}
	ram->tracker_priv = p;
	err = ram_kvm_log_dirty(ram, true);
	/* Arm the write-protection; what is set now is not news. */
	if (!err)
		err = bm_sync_all(ram, false);
	if (err) {
		ram_kvm_log_dirty(ram, false);
		ram->tracker_priv = NULL;
		bm_free(p);
	}
	return err;
}

static int bm_sync(struct vmig_ram *ram)
{
	return bm_sync_all(ram, true);
}

static void bm_stop(struct vmig_ram *ram)
{
	/* Keep what was written since the last sync. */
	bm_sync_all(ram, true);
	ram_kvm_log_dirty(ram, false);
	bm_free(ram->tracker_priv);
}

const struct ram_tracker_ops ram_track_bitmap = {
	.kind = VMIG_TRACK_BITMAP,
	.name = "dirty-bitmap",
	.start = bm_start,
	.sync = bm_sync,
	.stop = bm_stop,
};

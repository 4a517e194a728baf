/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvmig internals of guest RAM: the registration, the dirty-page set the
 * trackers feed, and the tracker interface.  Not installed.
 *
 * The dirty set is a queue of global page numbers plus a "pending" bitmap
 * that keeps each page in the queue at most once: its cost follows the
 * number of dirty pages, not the size of RAM.  A full re-sync (after a
 * tracker lost track) marks every page pending and sweeps them out first.
 */
#ifndef VMIG_RAM_INT_H
#define VMIG_RAM_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "internal.h"

#define RAM_PAGE_SHIFT	12
#define RAM_PAGE_SIZE	(1ULL << RAM_PAGE_SHIFT)

struct vmig_ram;

struct ram_region {
	struct vmig_ram_region r;
	uint64_t first;		/* global number of its first page */
	uint64_t pages;
};

/* One dirty tracker.  Every function is called with no ram lock held. */
struct ram_tracker_ops {
	enum vmig_tracker kind;
	const char *name;
	/* Start tracking; on success ram->tracker_priv is the tracker's. */
	int (*start)(struct vmig_ram *ram);
	/* Collect what was dirtied so far into the dirty set. */
	int (*sync)(struct vmig_ram *ram);
	/* KVM_EXIT_DIRTY_RING_FULL on vCPU vcpu (ring only). */
	int (*ring_full)(struct vmig_ram *ram, unsigned int vcpu);
	void (*stop)(struct vmig_ram *ram);
};

extern const struct ram_tracker_ops ram_track_ring;
extern const struct ram_tracker_ops ram_track_bitmap;
extern const struct ram_tracker_ops ram_track_wp;

struct vmig_ram {
	struct ram_region *regions;
	unsigned int nr_regions;
	uint64_t total_pages;

	int vm_fd;			/* the caller's, or -1 */
	int *vcpu_fds;			/* the caller's */
	unsigned int nr_vcpus;
	uint32_t ring_entries;

	const struct ram_tracker_ops *ops;	/* NULL: not tracking */
	void *tracker_priv;
	/*
	 * The dirty rings' mappings and walk positions: they outlive a
	 * tracker, as the kernel's ring indexes do.  See track_ring.c.
	 */
	void *rings;

	/* VFIO containers whose dirty bitmaps feed the set (track_vfio.c). */
	struct ram_vfio *vfio;
	/* VFIO devices whose DMA logs feed the set (track_devlog.c). */
	struct ram_devlog *devlog;
	pthread_mutex_t vfio_lock;	/* both lists */

	/* The dirty set, under lock. */
	pthread_mutex_t lock;
	uint64_t *pending;		/* bitmap, total_pages bits */
	uint32_t *queue;		/* total_pages entries, a ring */
	uint64_t q_head, q_len;
	uint64_t sweep;			/* full re-sync cursor; total: none */
	struct vmig_ram_stats stats;
};

/* The dirty set: lock, add pages, unlock.  ram_push_locked() dedupes. */
void ram_lock(struct vmig_ram *ram);
void ram_unlock(struct vmig_ram *ram);
/* Returns true when the page was not pending yet. */
bool ram_push_locked(struct vmig_ram *ram, uint64_t gpage);
/* Every page is dirty again: a tracker lost track (why, for the log). */
void ram_resync(struct vmig_ram *ram, const char *why);

/* A region a device can write, at the IOVA it is mapped at. */
struct ram_iova {
	const struct ram_region *r;
	uint64_t iova;
};

/*
 * The regions mapped at iova[i] (VMIG_RAM_NO_IOVA: region i is not):
 * checks every IOVA (4 KiB aligned, no wrap) and returns how many are
 * mapped, or -EINVAL (a bad IOVA, or none).  With rg, fills rg[] with
 * them in region order and *words with the bitmap words of the largest.
 */
int ram_iova_regions(const struct vmig_ram *ram, const uint64_t *iova,
		     struct ram_iova *rg, uint64_t *words);

/*
 * The VFIO containers (track_vfio.c), with the tracker: start (after the
 * tracker's start), harvest (queue: into the dirty set, else dropped),
 * stop (a last harvest, then STOP), free (vmig_ram_free()).
 */
int ram_vfio_start(struct vmig_ram *ram);
int ram_vfio_sync(struct vmig_ram *ram, bool queue);
void ram_vfio_stop(struct vmig_ram *ram);
void ram_vfio_free(struct vmig_ram *ram);

/* The same for the VFIO devices' DMA logs (track_devlog.c). */
int ram_devlog_start(struct vmig_ram *ram);
int ram_devlog_sync(struct vmig_ram *ram, bool queue);
void ram_devlog_stop(struct vmig_ram *ram);
void ram_devlog_free(struct vmig_ram *ram);

/*
 * The ioctl() the DMA logging makes on a device fd: ioctl() itself,
 * returning 0 or -errno.  No kernel we test on implements the DMA logging
 * features, so selftests/libvmig/devlog_test.c replaces it with a model of
 * a device that logs its writes.
 */
struct ram_vfio_sys {
	int (*ioctl)(int fd, unsigned long request, void *arg);
};

extern struct ram_vfio_sys ram_vfio_sys;

/* Unmap the dirty rings (vmig_ram_free()). */
void ram_rings_release(struct vmig_ram *ram);

/* The region of a KVM slot (as_id << 16 | id), or NULL. */
const struct ram_region *ram_slot_region(const struct vmig_ram *ram,
					 uint32_t slot);
/* Turn KVM_MEM_LOG_DIRTY_PAGES on or off on every KVM region. */
int ram_kvm_log_dirty(struct vmig_ram *ram, bool on);

/* CLOCK_MONOTONIC and the calling thread's CPU time, in ns. */
uint64_t ram_now_ns(void);
uint64_t ram_cpu_ns(void);
/* Add the CPU time this thread spent since t0 (ram_cpu_ns()). */
void ram_add_sync_ns(struct vmig_ram *ram, uint64_t t0);

/*
 * The dirty-ring walk of one vCPU ring, kept apart from the KVM calls so a
 * model of the kernel's ring can test it (selftests/libvmig/ring_test.c).
 *
 * Indexes run free (mod 2^32); entry i is gfns[i & (size - 1)].  fetch is
 * the next entry to look at; base is where fetch was at the last reset.
 */
struct ring_walk {
	struct kvm_dirty_gfn *gfns;
	uint32_t size;
	uint32_t fetch;
	uint32_t base;
	uint32_t stuck;		/* full exits in a row that found nothing */
	bool suspect;		/* since a loss: may be out of step */
};

typedef void (*ring_push_fn)(void *opaque, uint32_t slot, uint64_t offset);

/*
 * Take every published entry from fetch on: push it, mark it harvested.
 * Entries already harvested (after a realignment) are stepped over.  After
 * a loss (suspect), an empty entry at fetch may be one the kernel freed out
 * of order: ring_walk_recover() then looks further.  Returns the number of
 * entries pushed; sets *loss when the kernel may have overwritten entries
 * (a whole ring's worth since the last reset).
 */
uint32_t ring_walk_harvest(struct ring_walk *w, ring_push_fn push,
			   void *opaque, bool *loss);
/*
 * After KVM_RESET_DIRTY_RINGS: every entry in [base, fetch) must have been
 * reset.  One that was not was overwritten by the kernel: loss; fetch goes
 * back to it (where the kernel's reset index stopped).  Sets *loss.
 */
void ring_walk_after_reset(struct ring_walk *w, bool *loss);
/*
 * Nothing is published at fetch, yet the walk may be out of step (after a
 * loss, or the vCPU reports its ring full): an overrun can make the kernel
 * free entries it has just published and publish further on.  Find the
 * next published entry within one ring and mark the empty ones before it
 * harvested, so the kernel's reset walks past them.  Each mark is a
 * compare-and-swap from empty: an entry the kernel publishes meanwhile is
 * not overwritten (the walk stops there and harvests it).  Returns true if
 * a published entry was found.
 */
bool ring_walk_recover(struct ring_walk *w);

#endif /* VMIG_RAM_INT_H */

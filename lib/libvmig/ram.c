// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Guest RAM: registration, the dirty set, and the choice of tracker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "ram_int.h"

uint64_t ram_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

uint64_t ram_cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

void ram_add_sync_ns(struct vmig_ram *ram, uint64_t t0)
{
	__atomic_add_fetch(&ram->stats.sync_ns, ram_cpu_ns() - t0,
			   __ATOMIC_RELAXED);
}

void ram_lock(struct vmig_ram *ram)
{
	pthread_mutex_lock(&ram->lock);
}

void ram_unlock(struct vmig_ram *ram)
{
	pthread_mutex_unlock(&ram->lock);
}

static bool test_and_set(uint64_t *map, uint64_t bit)
{
	uint64_t m = 1ULL << (bit % 64);
	bool was = map[bit / 64] & m;

	map[bit / 64] |= m;
	return was;
}

bool ram_push_locked(struct vmig_ram *ram, uint64_t gpage)
{
	uint64_t tail;

	/*
	 * Pending already: in the queue, or ahead of a full re-sync's sweep,
	 * which clears the bits it passes.
	 */
	if (gpage >= ram->total_pages || test_and_set(ram->pending, gpage))
		return false;
	/* q_head < total and q_len < total here: one subtraction wraps. */
	tail = ram->q_head + ram->q_len;
	if (tail >= ram->total_pages)
		tail -= ram->total_pages;
	ram->queue[tail] = gpage;
	ram->q_len++;
	ram->stats.dirtied++;
	return true;
}

void ram_resync(struct vmig_ram *ram, const char *why)
{
	vmig_warn("ram: %s: every page is dirty again", why);
	ram_lock(ram);
	memset(ram->pending, 0xff, (ram->total_pages + 63) / 64 * 8);
	ram->q_head = 0;
	ram->q_len = 0;
	ram->sweep = 0;
	ram->stats.losses++;
	ram->stats.dirtied += ram->total_pages;
	ram_unlock(ram);
}

const struct ram_region *ram_slot_region(const struct vmig_ram *ram,
					 uint32_t slot)
{
	unsigned int i;

	for (i = 0; i < ram->nr_regions; i++)
		if (ram->regions[i].r.kvm_slot >= 0 &&
		    (uint32_t)ram->regions[i].r.kvm_slot == slot)
			return &ram->regions[i];
	return NULL;
}

int ram_kvm_log_dirty(struct vmig_ram *ram, bool on)
{
	struct kvm_userspace_memory_region m;
	unsigned int i;
	int err = 0;

	for (i = 0; i < ram->nr_regions; i++) {
		const struct vmig_ram_region *r = &ram->regions[i].r;

		if (r->kvm_slot < 0)
			continue;
		m.slot = r->kvm_slot;
		m.flags = r->kvm_flags & ~KVM_MEM_LOG_DIRTY_PAGES;
		if (on)
			m.flags |= KVM_MEM_LOG_DIRTY_PAGES;
		m.guest_phys_addr = r->gpa;
		m.memory_size = r->size;
		m.userspace_addr = (uintptr_t)r->host_addr;
		if (ioctl(ram->vm_fd, KVM_SET_USER_MEMORY_REGION, &m)) {
			err = -errno;
			vmig_err("ram: slot %d: dirty logging %s: %d", r->kvm_slot,
				 on ? "on" : "off", err);
			if (on)
				return err;
		}
	}
	return err;
}

static bool region_ok(const struct vmig_ram_region *r)
{
	return r->host_addr && r->size &&
	       !((uintptr_t)r->host_addr % RAM_PAGE_SIZE) &&
	       !(r->size % RAM_PAGE_SIZE) && !(r->gpa % RAM_PAGE_SIZE) &&
	       r->kvm_slot >= -1;
}

VMIG_EXPORT int vmig_ram_new(const struct vmig_ram_region *regions,
			     unsigned int nr, const struct vmig_ram_kvm *kvm,
			     struct vmig_ram **out)
{
	struct vmig_ram *ram;
	unsigned int i;
	uint64_t total = 0;

	if (!regions || !nr || !out)
		return -EINVAL;
	if (kvm && (kvm->vm_fd < 0 || (kvm->nr_vcpus && !kvm->vcpu_fds) ||
		    (kvm->ring_entries &&
		     (kvm->ring_entries & (kvm->ring_entries - 1)))))
		return -EINVAL;
	for (i = 0; i < nr; i++) {
		if (!region_ok(&regions[i]) ||
		    (regions[i].kvm_slot >= 0 && !kvm))
			return -EINVAL;
		total += regions[i].size / RAM_PAGE_SIZE;
	}
	/* The queue holds 32-bit page numbers. */
	if (total > UINT32_MAX)
		return -E2BIG;

	ram = calloc(1, sizeof(*ram));
	if (!ram)
		return -ENOMEM;
	pthread_mutex_init(&ram->lock, NULL);
	pthread_mutex_init(&ram->vfio_lock, NULL);
	ram->vm_fd = -1;
	ram->regions = calloc(nr, sizeof(*ram->regions));
	if (!ram->regions)
		goto nomem;
	ram->nr_regions = nr;
	for (i = 0; i < nr; i++) {
		ram->regions[i].r = regions[i];
		ram->regions[i].first = ram->total_pages;
		ram->regions[i].pages = regions[i].size / RAM_PAGE_SIZE;
		ram->total_pages += ram->regions[i].pages;
	}
	if (kvm) {
		ram->vm_fd = kvm->vm_fd;
		ram->nr_vcpus = kvm->nr_vcpus;
		ram->ring_entries = kvm->ring_entries;
		if (kvm->nr_vcpus) {
			ram->vcpu_fds = calloc(kvm->nr_vcpus, sizeof(int));
			if (!ram->vcpu_fds)
				goto nomem;
			memcpy(ram->vcpu_fds, kvm->vcpu_fds,
			       kvm->nr_vcpus * sizeof(int));
		}
	}
	/* Touched only as pages get dirty: NORESERVE, zero-filled. */
	ram->pending = mmap(NULL, (ram->total_pages + 63) / 64 * 8,
			    PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram->pending == MAP_FAILED) {
		ram->pending = NULL;
		goto nomem;
	}
	ram->queue = mmap(NULL, ram->total_pages * sizeof(uint32_t),
			  PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram->queue == MAP_FAILED) {
		ram->queue = NULL;
		goto nomem;
	}
	ram->sweep = ram->total_pages;
	*out = ram;
	return 0;
nomem:
	vmig_ram_free(ram);
	return -ENOMEM;
}

VMIG_EXPORT void vmig_ram_free(struct vmig_ram *ram)
{
	if (!ram)
		return;
	vmig_ram_track_stop(ram);
	ram_vfio_free(ram);
	ram_devlog_free(ram);
	ram_rings_release(ram);
	if (ram->pending)
		munmap(ram->pending, (ram->total_pages + 63) / 64 * 8);
	if (ram->queue)
		munmap(ram->queue, ram->total_pages * sizeof(uint32_t));
	free(ram->vcpu_fds);
	free(ram->regions);
	pthread_mutex_destroy(&ram->lock);
	pthread_mutex_destroy(&ram->vfio_lock);
	free(ram);
}

VMIG_EXPORT uint64_t vmig_ram_nr_pages(const struct vmig_ram *ram)
{
	return ram->total_pages;
}

int ram_iova_regions(const struct vmig_ram *ram, const uint64_t *iova,
		     struct ram_iova *rg, uint64_t *words)
{
	unsigned int i, n = 0;

	for (i = 0; i < ram->nr_regions; i++) {
		const struct ram_region *r = &ram->regions[i];

		if (iova[i] == VMIG_RAM_NO_IOVA)
			continue;
		if (iova[i] % RAM_PAGE_SIZE || iova[i] + r->r.size < iova[i])
			return -EINVAL;
		if (rg) {
			rg[n].r = r;
			rg[n].iova = iova[i];
			if ((r->pages + 63) / 64 > *words)
				*words = (r->pages + 63) / 64;
		}
		n++;
	}
	return n ? (int)n : -EINVAL;
}

VMIG_EXPORT void *vmig_ram_page_addr(const struct vmig_ram *ram,
				     const struct vmig_page *page)
{
	const struct ram_region *r;

	if (page->region >= ram->nr_regions)
		return NULL;
	r = &ram->regions[page->region];
	if (page->index >= r->pages)
		return NULL;
	return (char *)r->r.host_addr + page->index * RAM_PAGE_SIZE;
}

static const struct ram_tracker_ops *pick(const struct vmig_ram *ram,
					  enum vmig_tracker kind)
{
	unsigned int i;
	bool all_kvm = ram->vm_fd >= 0;

	for (i = 0; i < ram->nr_regions; i++)
		if (ram->regions[i].r.kvm_slot < 0)
			all_kvm = false;
	if (kind == VMIG_TRACK_AUTO)
		kind = !all_kvm ? VMIG_TRACK_WP :
		       ram->ring_entries ? VMIG_TRACK_RING : VMIG_TRACK_BITMAP;
	switch (kind) {
	case VMIG_TRACK_RING:
		return all_kvm && ram->ring_entries && ram->nr_vcpus ?
		       &ram_track_ring : NULL;
	case VMIG_TRACK_BITMAP:
		/* With the ring enabled, KVM_GET_DIRTY_LOG is refused. */
		return all_kvm && !ram->ring_entries ? &ram_track_bitmap : NULL;
	case VMIG_TRACK_WP:
		return &ram_track_wp;
	default:
		return NULL;
	}
}

VMIG_EXPORT int vmig_ram_track_start(struct vmig_ram *ram,
				     enum vmig_tracker kind)
{
	const struct ram_tracker_ops *ops;
	int err;

	if (!ram || kind == VMIG_TRACK_NONE || kind > VMIG_TRACK_AUTO)
		return -EINVAL;
	if (ram->ops)
		return -EBUSY;
	ops = pick(ram, kind);
	if (!ops)
		return -EOPNOTSUPP;
	err = ops->start(ram);
	if (err) {
		vmig_err("ram: starting the %s tracker: %d", ops->name, err);
		return err;
	}
	ram->ops = ops;
	/*
	 * Device writes: the VFIO containers' bitmaps and the devices' DMA
	 * logs, if any were added.
	 */
	err = ram_vfio_start(ram);
	if (!err) {
		err = ram_devlog_start(ram);
		if (err)
			ram_vfio_stop(ram);
	}
	if (err) {
		ops->stop(ram);
		ram->ops = NULL;
		ram->tracker_priv = NULL;
		return err;
	}
	vmig_info("ram: tracking %lu pages with the %s tracker%s%s",
		  (unsigned long)ram->total_pages, ops->name,
		  ram->vfio ? " and VFIO container bitmaps" : "",
		  ram->devlog ? " and VFIO device DMA logs" : "");
	return 0;
}

VMIG_EXPORT void vmig_ram_track_stop(struct vmig_ram *ram)
{
	if (!ram || !ram->ops)
		return;
	ram->ops->stop(ram);
	ram_vfio_stop(ram);
	ram_devlog_stop(ram);
	ram->ops = NULL;
	ram->tracker_priv = NULL;
}

VMIG_EXPORT enum vmig_tracker vmig_ram_tracker(const struct vmig_ram *ram)
{
	return ram && ram->ops ? ram->ops->kind : VMIG_TRACK_NONE;
}

VMIG_EXPORT int vmig_ram_sync(struct vmig_ram *ram)
{
	uint64_t before;
	int err;

	if (!ram || !ram->ops)
		return -EINVAL;
	ram_lock(ram);
	before = ram->stats.dirtied;
	ram_unlock(ram);
	err = ram->ops->sync(ram);
	if (err)
		return err;
	err = ram_vfio_sync(ram, true);
	if (err)
		return err;
	err = ram_devlog_sync(ram, true);
	if (err)
		return err;
	ram_lock(ram);
	before = ram->stats.dirtied - before;
	ram_unlock(ram);
	return before > INT32_MAX ? INT32_MAX : (int)before;
}

static void to_page(const struct vmig_ram *ram, uint64_t gpage,
		    struct vmig_page *p)
{
	unsigned int lo = 0, hi = ram->nr_regions;

	/* The region with the last first <= gpage. */
	while (hi - lo > 1) {
		unsigned int mid = (lo + hi) / 2;

		if (ram->regions[mid].first <= gpage)
			lo = mid;
		else
			hi = mid;
	}
	p->region = lo;
	p->reserved = 0;
	p->index = gpage - ram->regions[lo].first;
}

VMIG_EXPORT int vmig_ram_pop_dirty(struct vmig_ram *ram,
				   struct vmig_page *pages, unsigned int max)
{
	unsigned int n = 0;
	uint64_t g;

	if (!ram || (!pages && max))
		return -EINVAL;
	ram_lock(ram);
	/* A full re-sync's sweep first. */
	while (n < max && ram->sweep < ram->total_pages) {
		g = ram->sweep++;
		if (!(ram->pending[g / 64] & (1ULL << (g % 64))))
			continue;
		ram->pending[g / 64] &= ~(1ULL << (g % 64));
		to_page(ram, g, &pages[n++]);
	}
	while (n < max && ram->q_len) {
		g = ram->queue[ram->q_head];
		if (++ram->q_head == ram->total_pages)
			ram->q_head = 0;
		ram->q_len--;
		ram->pending[g / 64] &= ~(1ULL << (g % 64));
		to_page(ram, g, &pages[n++]);
	}
	ram_unlock(ram);
	return n;
}

VMIG_EXPORT uint64_t vmig_ram_dirty_count(struct vmig_ram *ram)
{
	uint64_t n, g;

	ram_lock(ram);
	n = ram->q_len;
	if (ram->sweep < ram->total_pages) {
		/* Rare (after a loss): count the sweep's pending pages. */
		for (g = ram->sweep; g < ram->total_pages; g++)
			n += !!(ram->pending[g / 64] & (1ULL << (g % 64)));
	}
	ram_unlock(ram);
	return n;
}

VMIG_EXPORT int vmig_ram_ring_full(struct vmig_ram *ram, unsigned int vcpu)
{
	if (!ram || vcpu >= ram->nr_vcpus)
		return -EINVAL;
	if (!ram->ops || !ram->ops->ring_full)
		return -EINVAL;
	__atomic_add_fetch(&ram->stats.ring_full, 1, __ATOMIC_RELAXED);
	return ram->ops->ring_full(ram, vcpu);
}

VMIG_EXPORT void vmig_ram_get_stats(struct vmig_ram *ram,
				    struct vmig_ram_stats *st)
{
	ram_lock(ram);
	*st = ram->stats;
	st->sync_ns = __atomic_load_n(&ram->stats.sync_ns, __ATOMIC_RELAXED);
	st->ring_full = __atomic_load_n(&ram->stats.ring_full,
					__ATOMIC_RELAXED);
	ram_unlock(ram);
}

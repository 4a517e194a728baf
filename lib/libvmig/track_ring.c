// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The KVM dirty-ring tracker.
 *
 * Each vCPU has a ring of struct kvm_dirty_gfn the kernel publishes entries
 * into (flags DIRTY).  A reaper thread walks every ring while the vCPUs run,
 * collects the pages, marks the entries harvested (RESET), calls
 * KVM_RESET_DIRTY_RINGS, which re-protects those pages and frees the
 * entries, and only then adds the pages to the dirty set, all of a pass
 * under one lock acquisition.  The order matters: until the reset, the
 * guest writes a harvested page without a new entry, so a sender that read
 * the page before the reset could miss such a write for good.  The cost of
 * a pass follows the number of entries, not RAM size.
 *
 * Harvesting concurrently matters: a host may fail to stop a vCPU at its
 * ring's soft limit (no KVM_EXIT_DIRTY_RING_FULL inside an emulation batch)
 * and the kernel then overwrites entries.  The walk cannot see which
 * entries were lost, only that it may have happened (see ring_walk_*());
 * every such case forces a full re-sync: over-reporting, never a silently
 * stale page.  A vCPU that does exit with the ring full is served on its
 * own thread (vmig_ram_ring_full()): one pass, then it may run again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ram_int.h"

/*
 * Reaper: a look at once after a busy pass (a quarter of a ring), else
 * after the time a vCPU dirtying MAX_RATE pages/s takes to fill half a
 * ring, within [REAP_MIN_NS, REAP_MAX_NS].  A vCPU may overrun a ring
 * nobody harvests (some hosts do not stop it at the soft limit), so the
 * ring must never get near full; but a pass costs a syscall and a TLB
 * flush however few its entries, so a look (one load per ring, no
 * syscall) decides: a pass only once a ring is so full that it could
 * reach REAP_FILL of its size before the next look (see pass_due()).
 * Otherwise the entries wait for the next look, or for vmig_ram_sync().
 */
#define MAX_RATE	400000ULL
#define REAP_MIN_NS	1000000ULL
#define REAP_MAX_NS	50000000ULL
#define REAP_FILL(size)	((size) / 4 * 3)
/* Full exits in a row with nothing harvested before the walk recovers. */
#define STUCK_RECOVER	2
#define STUCK_FAIL	8

/* ------------------------------------------------------------ the walk */

static uint32_t flags_load(struct kvm_dirty_gfn *e)
{
	return __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
}

static void flags_store(struct kvm_dirty_gfn *e, uint32_t v)
{
	__atomic_store_n(&e->flags, v, __ATOMIC_RELEASE);
}

uint32_t ring_walk_harvest(struct ring_walk *w, ring_push_fn push,
			   void *opaque, bool *loss)
{
	bool recovered = false, in_step = false;
	uint32_t n = 0, f;
	struct kvm_dirty_gfn *e;

	for (;;) {
		if (w->fetch - w->base >= w->size) {
			/*
			 * A whole ring since the last reset: the kernel went
			 * past its soft limit and may have overwritten some.
			 */
			*loss = true;
			w->suspect = true;
			break;
		}
		e = &w->gfns[w->fetch & (w->size - 1)];
		f = flags_load(e);
		if (f & KVM_DIRTY_GFN_F_DIRTY) {
			push(opaque, e->slot, e->offset);
			flags_store(e, KVM_DIRTY_GFN_F_RESET);
			if (!n && !recovered)
				in_step = true;
			n++;
		} else if (!(f & KVM_DIRTY_GFN_F_RESET)) {
			if (!w->suspect || recovered || !ring_walk_recover(w))
				break;
			recovered = true;
			continue;
		}
		w->fetch++;
	}
	if (n)
		w->stuck = 0;
	if (in_step && !*loss)
		w->suspect = false;
	return n;
}

void ring_walk_after_reset(struct ring_walk *w, bool *loss)
{
	uint32_t i;

	for (i = w->base; i != w->fetch; i++) {
		if (flags_load(&w->gfns[i & (w->size - 1)])) {
			/* Overwritten: the kernel's reset stopped here. */
			*loss = true;
			w->suspect = true;
			w->fetch = i;
			break;
		}
	}
	w->base = w->fetch;
}

bool ring_walk_recover(struct ring_walk *w)
{
	struct kvm_dirty_gfn *e;
	uint32_t d, k, f;

	for (d = 0; d < w->size; d++) {
		if (flags_load(&w->gfns[(w->fetch + d) & (w->size - 1)]) &
		    KVM_DIRTY_GFN_F_DIRTY)
			break;
	}
	if (d == w->size)
		return false;
	for (k = 0; k < d; k++) {
		e = &w->gfns[(w->fetch + k) & (w->size - 1)];
		f = 0;
		if (!__atomic_compare_exchange_n(&e->flags, &f,
						 KVM_DIRTY_GFN_F_RESET, false,
						 __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE) &&
		    f != KVM_DIRTY_GFN_F_RESET)
			break;	/* published meanwhile: harvest it */
	}
	return true;
}

/* ----------------------------------------------------------- the tracker */

struct ring_vcpu {
	struct ring_walk w;
	size_t map_len;
};

/* Kept in ram->rings from the first start until vmig_ram_free(). */
struct ring_maps {
	unsigned int nr;
	struct ring_vcpu v[];
};

struct ring_priv {
	struct vmig_ram *ram;
	struct ring_maps *maps;
	pthread_mutex_t pass_lock;	/* one pass at a time */
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	bool stop;
	pthread_t reaper;
	bool reaper_started;
	/* A pass is due with this many entries published in a ring. */
	uint32_t due_at;
	/* Under pass_lock. */
	const struct ram_region *last;
	/*
	 * The pages of a pass, held until the rings are reset: a pass takes
	 * at most a ring's worth from each ring (see ring_walk_harvest()).
	 */
	uint32_t *pages;
	size_t nr_pages, max_pages;
	bool overflow;
};

static void push_entry(void *opaque, uint32_t slot, uint64_t offset)
{
	struct ring_priv *p = opaque;
	const struct ram_region *r = p->last;

	if (!r || (uint32_t)r->r.kvm_slot != slot) {
		r = ram_slot_region(p->ram, slot);
		if (!r)
			return;		/* a slot not registered */
		p->last = r;
	}
	if (offset >= r->pages)
		return;
	if (p->nr_pages == p->max_pages) {
		p->overflow = true;	/* cannot happen; never drop one */
		return;
	}
	p->pages[p->nr_pages++] = r->first + offset;
}

/*
 * One pass over every ring: harvest, reset, check, then add the pages to
 * the dirty set.  Returns the entries harvested (*got_self those of vcpu,
 * if not NULL) or a negative errno.
 */
static int ring_pass(struct ring_priv *p, int vcpu, uint32_t *got_self,
		     uint32_t *most)
{
	struct vmig_ram *ram = p->ram;
	struct ring_maps *m = p->maps;
	uint64_t t0 = ram_cpu_ns();
	uint32_t got, total = 0;
	bool loss = false;
	unsigned int i;
	size_t k;
	int err = 0;

	pthread_mutex_lock(&p->pass_lock);
	if (most)
		*most = 0;
	p->nr_pages = 0;
	for (i = 0; i < m->nr; i++) {
		got = ring_walk_harvest(&m->v[i].w, push_entry, p, &loss);
		total += got;
		if ((int)i == vcpu && got_self)
			*got_self = got;
		if (most && got > *most)
			*most = got;
	}

	for (i = 0; i < m->nr; i++)
		if (m->v[i].w.fetch != m->v[i].w.base)
			break;
	if (i < m->nr) {
		if (ioctl(ram->vm_fd, KVM_RESET_DIRTY_RINGS) < 0) {
			err = -errno;
			vmig_err("ram: KVM_RESET_DIRTY_RINGS: %d", err);
		} else {
			for (i = 0; i < m->nr; i++)
				ring_walk_after_reset(&m->v[i].w, &loss);
		}
	}
	/* Re-protected (or failed): the senders may read them now. */
	if (total) {
		ram_lock(ram);
		for (k = 0; k < p->nr_pages; k++)
			ram_push_locked(ram, p->pages[k]);
		ram->stats.reported += total;
		ram->stats.passes++;
		ram_unlock(ram);
	}
	if (p->overflow) {
		p->overflow = false;
		loss = true;
	}
	pthread_mutex_unlock(&p->pass_lock);
	if (loss)
		ram_resync(ram, "dirty ring overrun");
	ram_add_sync_ns(ram, t0);
	return err ? err : (int)total;
}

/*
 * Whether a ring needs a pass now: due_at entries published from the walk
 * position on (they are published in order, so one load tells), or a walk
 * that is out of step or has entries harvested but not reset.
 */
static bool pass_due(struct ring_priv *p)
{
	struct ring_maps *m = p->maps;
	struct ring_walk *w;
	bool due = false;
	unsigned int i;

	if (!p->due_at)
		return true;
	pthread_mutex_lock(&p->pass_lock);
	for (i = 0; i < m->nr && !due; i++) {
		w = &m->v[i].w;
		due = w->suspect || w->fetch != w->base ||
		      (flags_load(&w->gfns[(w->fetch + p->due_at - 1) &
					   (w->size - 1)]) &
		       KVM_DIRTY_GFN_F_DIRTY);
	}
	pthread_mutex_unlock(&p->pass_lock);
	return due;
}

static void *reaper(void *arg)
{
	struct ring_priv *p = arg;
	uint32_t most, size = p->ram->ring_entries;
	uint64_t ns, interval, grow;
	struct timespec due;
	int ret;

	vmig_name_thread("reaper", 0);
	interval = size * 1000000000ULL / (2 * MAX_RATE);
	if (interval < REAP_MIN_NS)
		interval = REAP_MIN_NS;
	if (interval > REAP_MAX_NS)
		interval = REAP_MAX_NS;
	/*
	 * A ring with fewer than due_at entries is left alone: until the
	 * next look it grows by at most grow, to under REAP_FILL.  With a
	 * small ring (a short interval clamped up) every look is a pass.
	 */
	grow = (MAX_RATE * interval + 999999999ULL) / 1000000000ULL;
	p->due_at = grow < REAP_FILL(size) ? REAP_FILL(size) - grow : 0;

	pthread_mutex_lock(&p->wlock);
	while (!p->stop) {
		pthread_mutex_unlock(&p->wlock);
		ret = 0;
		most = 0;
		if (pass_due(p))
			ret = ring_pass(p, -1, NULL, &most);
		pthread_mutex_lock(&p->wlock);
		if (ret < 0 || p->stop)
			break;
		/* Over a quarter of a ring in one pass: look again at once. */
		if (most >= size / 4)
			continue;
		ns = ram_now_ns() + interval;
		due.tv_sec = ns / 1000000000ULL;
		due.tv_nsec = ns % 1000000000ULL;
		pthread_cond_timedwait(&p->wcond, &p->wlock, &due);
	}
	pthread_mutex_unlock(&p->wlock);
	return NULL;
}

static int maps_get(struct vmig_ram *ram, struct ring_maps **out)
{
	size_t len = (size_t)ram->ring_entries * sizeof(struct kvm_dirty_gfn);
	off_t off = (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * getpagesize();
	struct ring_maps *m = ram->rings;
	unsigned int i;
	void *map;

	if (m) {
		*out = m;
		return 0;
	}
	m = calloc(1, sizeof(*m) + ram->nr_vcpus * sizeof(m->v[0]));
	if (!m)
		return -ENOMEM;
	for (i = 0; i < ram->nr_vcpus; i++) {
		map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			   ram->vcpu_fds[i], off);
		if (map == MAP_FAILED) {
			int err = -errno;

			vmig_err("ram: vCPU %u: mapping its dirty ring: %d", i,
				 err);
			ram->rings = m;
			ram_rings_release(ram);
			return err;
		}
		m->v[i].w.gfns = map;
		m->v[i].w.size = ram->ring_entries;
		m->v[i].map_len = len;
		m->nr = i + 1;
	}
	ram->rings = m;
	*out = m;
	return 0;
}

void ram_rings_release(struct vmig_ram *ram)
{
	struct ring_maps *m = ram->rings;
	unsigned int i;

	if (!m)
		return;
	for (i = 0; i < m->nr; i++)
		munmap(m->v[i].w.gfns, m->v[i].map_len);
	free(m);
	ram->rings = NULL;
}

static void ring_free(struct ring_priv *p)
{
	if (p->pages)
		munmap(p->pages, p->max_pages * sizeof(*p->pages));
	pthread_cond_destroy(&p->wcond);
	pthread_mutex_destroy(&p->wlock);
	pthread_mutex_destroy(&p->pass_lock);
	free(p);
}

static void ring_stop(struct vmig_ram *ram)
{
	struct ring_priv *p = ram->tracker_priv;

	if (p->reaper_started) {
		pthread_mutex_lock(&p->wlock);
		p->stop = true;
		pthread_cond_broadcast(&p->wcond);
		pthread_mutex_unlock(&p->wlock);
		pthread_join(p->reaper, NULL);
	}
	ram_kvm_log_dirty(ram, false);
	/* What was published before logging went off is still dirty. */
	ring_pass(p, -1, NULL, NULL);
	ring_free(p);
}

static int ring_start(struct vmig_ram *ram)
{
	struct ring_priv *p;
	int err;

	if (ram->ring_entries < 64)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ram = ram;
	pthread_mutex_init(&p->pass_lock, NULL);
	pthread_mutex_init(&p->wlock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&p->wcond, &ca);
		pthread_condattr_destroy(&ca);
	}
	err = maps_get(ram, &p->maps);
	if (err)
		goto fail;
	/* Touched as far as passes fill it: NORESERVE. */
	p->max_pages = (size_t)p->maps->nr * ram->ring_entries;
	p->pages = mmap(NULL, p->max_pages * sizeof(*p->pages),
			PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->pages == MAP_FAILED) {
		p->pages = NULL;
		err = -ENOMEM;
		goto fail;
	}
	err = ram_kvm_log_dirty(ram, true);
	if (err)
		goto fail;
	err = -pthread_create(&p->reaper, NULL, reaper, p);
	if (err) {
		ram_kvm_log_dirty(ram, false);
		goto fail;
	}
	p->reaper_started = true;
	ram->tracker_priv = p;
	return 0;
fail:
	ring_free(p);
	return err;
}

static int ring_sync(struct vmig_ram *ram)
{
	int ret = ring_pass(ram->tracker_priv, -1, NULL, NULL);

	return ret < 0 ? ret : 0;
}

static int ring_full(struct vmig_ram *ram, unsigned int vcpu)
{
	struct ring_priv *p = ram->tracker_priv;
	struct ring_walk *w = &p->maps->v[vcpu].w;
	uint32_t got = 0;
	bool found;
	int ret;

	ret = ring_pass(p, vcpu, &got, NULL);
	if (ret < 0 || got)
		return ret < 0 ? ret : 0;
	/*
	 * Full, yet nothing to harvest (the reaper may just have emptied
	 * it: once is no proof).  Again: the walk and the kernel disagree.
	 */
	pthread_mutex_lock(&p->pass_lock);
	w->stuck++;
	if (w->stuck < STUCK_RECOVER) {
		pthread_mutex_unlock(&p->pass_lock);
		return 0;
	}
	if (w->stuck >= STUCK_FAIL) {
		pthread_mutex_unlock(&p->pass_lock);
		vmig_err("ram: vCPU %u: dirty ring stuck full", vcpu);
		return -EIO;
	}
	found = ring_walk_recover(w);
	pthread_mutex_unlock(&p->pass_lock);
	ram_resync(ram, "dirty ring out of step with the kernel");
	if (found)
		ret = ring_pass(p, vcpu, &got, NULL);
	return ret < 0 ? ret : 0;
}

const struct ram_tracker_ops ram_track_ring = {
	.kind = VMIG_TRACK_RING,
	.name = "dirty-ring",
	.start = ring_start,
	.sync = ring_sync,
	.ring_full = ring_full,
	.stop = ring_stop,
};

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The dirty-ring walk (track_ring.c) against a model of the kernel's ring:
 * kvm_dirty_ring_push() and kvm_dirty_ring_reset() as in Linux 6.12,
 * including what they do when a vCPU overruns the ring (a host that does
 * not stop it at the soft limit).  Normal use must be exact and raise no
 * loss; every overrun must be reported as a loss; after one, the walk must
 * get back in step with the kernel.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kselftest_harness.h"
#include "ram_int.h"

#define SIZE	256U

struct kring {
	struct kvm_dirty_gfn g[SIZE];
	uint32_t dirty_index, reset_index;
	uint64_t next_offset;		/* offsets pushed: 0, 1, 2, ... */
};

/* kvm_dirty_ring_push(): no check for a full ring (it only WARNs). */
static void kpush(struct kring *k)
{
	struct kvm_dirty_gfn *e = &k->g[k->dirty_index & (SIZE - 1)];

	e->slot = 0;
	e->offset = k->next_offset++;
	__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_DIRTY, __ATOMIC_RELEASE);
	k->dirty_index++;
}

/* kvm_dirty_ring_reset(): free harvested entries from reset_index on. */
static uint32_t kreset(struct kring *k)
{
	uint32_t n = 0;

	for (;;) {
		struct kvm_dirty_gfn *e = &k->g[k->reset_index & (SIZE - 1)];

		if (!(e->flags & KVM_DIRTY_GFN_F_RESET))
			break;
		e->flags = 0;
		k->reset_index++;
		n++;
	}
	return n;
}

static uint32_t kused(const struct kring *k)
{
	return k->dirty_index - k->reset_index;
}

/* The offsets the walk pushed, as a bitmap, and how many times. */
struct seen {
	uint8_t count[4 * SIZE * 8];
	uint32_t n;
};

static void record(void *opaque, uint32_t slot, uint64_t offset)
{
	struct seen *s = opaque;

	(void)slot;
	if (offset < sizeof(s->count))
		s->count[offset]++;
	s->n++;
}

struct walker {
	struct kring k;
	struct ring_walk w;
	struct seen s;
};

static void walker_init(struct walker *x)
{
	memset(x, 0, sizeof(*x));
	x->w.gfns = x->k.g;
	x->w.size = SIZE;
}

/* A reaper pass: harvest, reset, check.  Returns the loss flag. */
static bool pass(struct walker *x)
{
	bool loss = false;

	ring_walk_harvest(&x->w, record, &x->s, &loss);
	kreset(&x->k);
	ring_walk_after_reset(&x->w, &loss);
	return loss;
}

TEST(harvest_in_step_is_exact_and_lossless)
{
	struct walker x;
	uint32_t round, i, n = 0;

	walker_init(&x);
	/* Many laps around the ring, in passes of varying size. */
	for (round = 0; round < 60; round++) {
		uint32_t m = (round * 37) % (SIZE - 64) + 1;

		for (i = 0; i < m; i++)
			kpush(&x.k);
		n += m;
		ASSERT_FALSE(pass(&x)) TH_LOG("round %u", round);
		ASSERT_EQ(0U, kused(&x.k));
	}
	ASSERT_EQ(n, x.s.n);
	ASSERT_LT(n, sizeof(x.s.count));
	for (i = 0; i < n; i++)
		ASSERT_EQ(1, x.s.count[i]) TH_LOG("offset %u", i);
	ASSERT_EQ(x.k.reset_index, x.w.fetch);
}

TEST(entries_pushed_during_the_reset_are_not_a_loss)
{
	struct walker x;
	bool loss = false;
	uint32_t i;

	walker_init(&x);
	for (i = 0; i < 100; i++)
		kpush(&x.k);
	ring_walk_harvest(&x.w, record, &x.s, &loss);
	/* The vCPU goes on between the harvest and the reset ioctl. */
	for (i = 0; i < 50; i++)
		kpush(&x.k);
	kreset(&x.k);
	ring_walk_after_reset(&x.w, &loss);
	ASSERT_FALSE(loss);
	ASSERT_FALSE(pass(&x));
	ASSERT_EQ(150U, x.s.n);
	ASSERT_EQ(0U, kused(&x.k));
}

TEST(overrun_of_unharvested_entries_is_a_loss)
{
	struct walker x;
	uint32_t i;

	walker_init(&x);
	for (i = 0; i < SIZE + 10; i++)
		kpush(&x.k);
	ASSERT_TRUE(pass(&x));
}

TEST(overrun_of_harvested_entries_is_a_loss)
{
	struct walker x;
	bool loss = false;
	uint32_t i;

	walker_init(&x);
	for (i = 0; i < 100; i++)
		kpush(&x.k);
	ring_walk_harvest(&x.w, record, &x.s, &loss);
	ASSERT_FALSE(loss);
	/* Before the reset, the vCPU laps onto what was harvested. */
	for (i = 0; i < SIZE - 50; i++)
		kpush(&x.k);
	ASSERT_TRUE(pass(&x));
}

TEST(overrun_between_harvest_and_reset_is_a_loss)
{
	struct walker x;
	bool loss = false;
	uint32_t i;

	walker_init(&x);
	for (i = 0; i < SIZE - 20; i++)
		kpush(&x.k);
	ring_walk_harvest(&x.w, record, &x.s, &loss);
	ASSERT_FALSE(loss);
	for (i = 0; i < 30; i++)
		kpush(&x.k);
	/* The kernel's reset stops at the overwritten entry. */
	kreset(&x.k);
	ring_walk_after_reset(&x.w, &loss);
	ASSERT_TRUE(loss);
	ASSERT_EQ(x.k.reset_index, x.w.fetch);
}

/*
 * After an overrun, keep pushing and reaping: the walk must follow the
 * kernel again, harvesting every entry the kernel still holds, and the
 * kernel's ring must drain.
 */
static void resumes_after(struct __test_metadata *_metadata,
			  struct walker *x, const char *what)
{
	uint32_t round, i, before;
	bool loss;

	for (round = 0; round < 20; round++) {
		for (i = 0; i < 40; i++)
			kpush(&x->k);
		loss = pass(x);
		if (!loss)
			break;
		TH_LOG("%s: round %u: loss", what, round);
	}
	ASSERT_FALSE(loss) TH_LOG("%s: never back in step", what);
	/* Now in step: exact from here on. */
	for (round = 0; round < 10; round++) {
		for (i = 0; i < 100; i++)
			kpush(&x->k);
		before = x->s.n;
		ASSERT_FALSE(pass(x)) TH_LOG("%s: round %u", what, round);
		ASSERT_EQ(before + 100, x->s.n) TH_LOG("%s", what);
		ASSERT_EQ(0U, kused(&x->k)) TH_LOG("%s", what);
	}
}

TEST(walk_gets_back_in_step_after_overruns)
{
	struct walker x;
	bool loss = false;
	uint32_t i;

	walker_init(&x);
	for (i = 0; i < SIZE + 10; i++)
		kpush(&x.k);
	ASSERT_TRUE(pass(&x));
	resumes_after(_metadata, &x, "unharvested");

	walker_init(&x);
	for (i = 0; i < 100; i++)
		kpush(&x.k);
	ring_walk_harvest(&x.w, record, &x.s, &loss);
	for (i = 0; i < SIZE - 50; i++)
		kpush(&x.k);
	ASSERT_TRUE(pass(&x));
	resumes_after(_metadata, &x, "harvested");
}

/*
 * An overrun by j entries when the walk had harvested nothing since the
 * last reset: the kernel frees the j newest entries as if they were the
 * oldest, and then publishes further on while fetch points at an empty
 * entry.  The walk must find the published entries by itself (a host may
 * never deliver the ring-full exit), and the kernel's ring must drain.
 */
static void stuck_ring(struct __test_metadata *_metadata, struct walker *x)
{
	uint32_t i;

	walker_init(x);
	for (i = 0; i < SIZE + 16; i++)
		kpush(&x->k);
	ASSERT_TRUE(pass(x));
	/* The vCPU fills what the kernel thinks is left. */
	while (kused(&x->k) < SIZE - 8)
		kpush(&x->k);
	ASSERT_EQ(0U, x->k.g[x->w.fetch & (SIZE - 1)].flags);
}

TEST(stuck_walk_recovers_by_itself)
{
	struct walker x;
	bool loss = false;
	uint32_t got;

	stuck_ring(_metadata, &x);
	got = ring_walk_harvest(&x.w, record, &x.s, &loss);
	ASSERT_EQ(SIZE - 8 - 16, got);
	kreset(&x.k);
	ring_walk_after_reset(&x.w, &loss);
	ASSERT_FALSE(loss);
	ASSERT_EQ(0U, kused(&x.k));
	ASSERT_EQ(x.k.reset_index, x.w.fetch);
	resumes_after(_metadata, &x, "stuck");
}

/* The same, found through the ring-full path (walk not marked suspect). */
TEST(stuck_walk_recovers_on_ring_full)
{
	struct walker x;
	bool loss = false;
	uint32_t got;

	stuck_ring(_metadata, &x);
	x.w.suspect = false;
	got = ring_walk_harvest(&x.w, record, &x.s, &loss);
	ASSERT_EQ(0U, got);
	ASSERT_TRUE(ring_walk_recover(&x.w));
	got = ring_walk_harvest(&x.w, record, &x.s, &loss);
	ASSERT_EQ(SIZE - 8 - 16, got);
	kreset(&x.k);
	ring_walk_after_reset(&x.w, &loss);
	ASSERT_FALSE(loss);
	ASSERT_EQ(0U, kused(&x.k));
	resumes_after(_metadata, &x, "stuck, ring full");
}

/* In step, with nothing published, recovery must not skip anything. */
TEST(recover_in_step_skips_nothing)
{
	struct walker x;
	uint32_t i;

	walker_init(&x);
	x.w.suspect = true;
	for (i = 0; i < 100; i++)
		kpush(&x.k);
	ASSERT_FALSE(pass(&x));
	ASSERT_FALSE(ring_walk_recover(&x.w));
	ASSERT_EQ(x.k.reset_index, x.w.fetch);
}

TEST(recover_finds_nothing_in_an_empty_ring)
{
	struct walker x;

	walker_init(&x);
	ASSERT_FALSE(ring_walk_recover(&x.w));
}

TEST_HARNESS_MAIN

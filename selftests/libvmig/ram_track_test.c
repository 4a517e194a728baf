// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The KVM trackers against a running guest (tools/testvm): over several
 * rounds of the guest writing pages while the tracker runs (the ring's
 * reaper harvesting concurrently), the dirty set must hold every page the
 * guest stamped in the round and no other.  Skipped without /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testvm.h"
#include "vmig.h"

#define RAM_SIZE	(256ULL << 20)
#define NR_VCPUS	2
#define ROUNDS		3

static int ring_full(void *opaque, unsigned int vcpu)
{
	return vmig_ram_ring_full(opaque, vcpu);
}

FIXTURE(track)
{
	struct testvm *vm;
	struct vmig_ram *ram;
	uint8_t *seen;
	uint64_t pages;
};

FIXTURE_VARIANT(track)
{
	enum vmig_tracker tracker;
	bool memfd;
	uint32_t ring;
};

FIXTURE_VARIANT_ADD(track, ring)
{
	.tracker = VMIG_TRACK_RING, .ring = 1024,
};

FIXTURE_VARIANT_ADD(track, ring_memfd)
{
	.tracker = VMIG_TRACK_RING, .memfd = true, .ring = 1024,
};

FIXTURE_VARIANT_ADD(track, bitmap)
{
	.tracker = VMIG_TRACK_BITMAP,
};

FIXTURE_VARIANT_ADD(track, bitmap_memfd)
{
	.tracker = VMIG_TRACK_BITMAP, .memfd = true,
};

FIXTURE_SETUP(track)
{
	struct testvm_config cfg = {
		.ram_size = RAM_SIZE,
		.nr_vcpus = NR_VCPUS,
		.memfd = variant->memfd,
		.dirty_ring_entries = variant->ring,
		/* Half of each share: rounds dirty a strict subset. */
		.working_set = RAM_SIZE / 4096 / NR_VCPUS / 2,
		.rate = 40000,
		.batch = 32,
		.step = 97,
	};
	struct vmig_ram_region r = { 0 };
	struct vmig_ram_kvm kvm = { 0 };
	int fds[NR_VCPUS], err, fd;
	unsigned int i;

	fd = open("/dev/kvm", O_RDWR);
	if (fd < 0)
		SKIP(return, "no /dev/kvm");
	close(fd);
	err = testvm_create(&cfg, &self->vm);
	if (err == -EINVAL && variant->ring)
		SKIP(return, "no dirty ring");
	ASSERT_EQ(0, err);
	self->pages = RAM_SIZE / 4096;
	self->seen = calloc(self->pages, 1);
	ASSERT_NE(NULL, self->seen);

	r.host_addr = testvm_ram(self->vm);
	r.size = RAM_SIZE;
	r.fd = testvm_ram_fd(self->vm);
	r.kvm_slot = TESTVM_RAM_SLOT;
	for (i = 0; i < NR_VCPUS; i++)
		fds[i] = testvm_vcpu_fd(self->vm, i);
	kvm.vm_fd = testvm_vm_fd(self->vm);
	kvm.vcpu_fds = fds;
	kvm.nr_vcpus = NR_VCPUS;
	kvm.ring_entries = variant->ring;
	ASSERT_EQ(0, vmig_ram_new(&r, 1, &kvm, &self->ram));
	testvm_set_ring_full_handler(self->vm, ring_full, self->ram);
	ASSERT_EQ(0, vmig_ram_track_start(self->ram, variant->tracker));
	ASSERT_EQ(variant->tracker, vmig_ram_tracker(self->ram));
}

FIXTURE_TEARDOWN(track)
{
	if (self->vm)
		testvm_pause(self->vm);
	vmig_ram_free(self->ram);
	testvm_destroy(self->vm);
	free(self->seen);
}

/* Pop the whole dirty set into seen[]; returns pages popped. */
static uint64_t drain(struct vmig_ram *ram, uint8_t *seen)
{
	struct vmig_page p[256];
	uint64_t total = 0;
	int n, i;

	while ((n = vmig_ram_pop_dirty(ram, p, 256)) > 0) {
		for (i = 0; i < n; i++)
			if (seen)
				seen[p[i].index]++;
		total += n;
	}
	return total;
}

TEST_F(track, reports_exactly_the_pages_the_guest_wrote)
{
	uint64_t c0[NR_VCPUS], pg, counter, expected, missing, extra, twice;
	struct vmig_ram_stats st;
	unsigned int round, v;

	/* Let the guest run, then start each round from an empty set. */
	ASSERT_EQ(0, testvm_resume(self->vm));
	usleep(30000);
	ASSERT_EQ(0, testvm_pause(self->vm));
	ASSERT_LE(0, vmig_ram_sync(self->ram));
	drain(self->ram, NULL);

	for (round = 0; round < ROUNDS; round++) {
		for (v = 0; v < NR_VCPUS; v++)
			c0[v] = testvm_counter(self->vm, v);
		ASSERT_EQ(0, testvm_resume(self->vm));
		usleep(100000);
		ASSERT_EQ(0, testvm_pause(self->vm));
		ASSERT_LE(0, vmig_ram_sync(self->ram));
		memset(self->seen, 0, self->pages);
		drain(self->ram, self->seen);

		expected = missing = extra = twice = 0;
		for (pg = 0; pg < self->pages; pg++) {
			bool wrote = testvm_page_stamp(self->vm, pg, &counter) &&
				     counter > c0[testvm_page_owner(self->vm, pg)];

			expected += wrote;
			missing += wrote && !self->seen[pg];
			extra += !wrote && self->seen[pg];
			twice += self->seen[pg] > 1;
		}
		TH_LOG("round %u: %lu pages written, %lu missing, %lu extra",
		       round, (unsigned long)expected, (unsigned long)missing,
		       (unsigned long)extra);
		/* The round did write, and not the whole working set. */
		ASSERT_GT(expected, 500U);
		ASSERT_LT(expected, self->pages / 2);
		ASSERT_EQ(0U, missing);
		ASSERT_EQ(0U, extra);
		ASSERT_EQ(0U, twice);
	}
	ASSERT_EQ(0U, testvm_check_stamps(self->vm));
	vmig_ram_get_stats(self->ram, &st);
	EXPECT_EQ(0U, st.losses);
	EXPECT_GT(st.reported, 0U);
}

TEST_F(track, stop_keeps_the_last_writes)
{
	uint64_t c0[NR_VCPUS], pg, counter, expected = 0, got;
	unsigned int v;

	ASSERT_LE(0, vmig_ram_sync(self->ram));
	drain(self->ram, NULL);
	for (v = 0; v < NR_VCPUS; v++)
		c0[v] = testvm_counter(self->vm, v);
	ASSERT_EQ(0, testvm_resume(self->vm));
	usleep(50000);
	ASSERT_EQ(0, testvm_pause(self->vm));
	vmig_ram_track_stop(self->ram);
	got = drain(self->ram, self->seen);
	for (pg = 0; pg < self->pages; pg++)
		if (testvm_page_stamp(self->vm, pg, &counter) &&
		    counter > c0[testvm_page_owner(self->vm, pg)]) {
			expected++;
			ASSERT_EQ(1, self->seen[pg]) TH_LOG("page %lu",
							    (unsigned long)pg);
		}
	ASSERT_GT(expected, 0U);
	ASSERT_EQ(expected, got);
	/* Tracking can start again (the ring keeps its place). */
	ASSERT_EQ(0, vmig_ram_track_start(self->ram, VMIG_TRACK_AUTO));
	ASSERT_EQ(0, testvm_resume(self->vm));
	usleep(20000);
	ASSERT_EQ(0, testvm_pause(self->vm));
	ASSERT_LE(0, vmig_ram_sync(self->ram));
	ASSERT_LT(0U, drain(self->ram, NULL));
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Guest RAM without KVM: registration checks, the dirty set (each page
 * queued once, a full re-sync hands out every page once), and the
 * userfaultfd write-protect tracker on plain memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ram_int.h"

#define PG 4096UL

static struct vmig_ram_region plain_region(void *addr, uint64_t size)
{
	struct vmig_ram_region r = {
		.host_addr = addr,
		.gpa = 0,
		.size = size,
		.fd = -1,
		.kvm_slot = -1,
	};

	return r;
}

/* Pop everything; count per global page (regions laid end to end). */
static unsigned int drain(struct vmig_ram *ram, uint8_t *count,
			  const uint64_t *first)
{
	struct vmig_page pages[100];
	unsigned int total = 0;
	int n, i;

	while ((n = vmig_ram_pop_dirty(ram, pages, 100)) > 0) {
		for (i = 0; i < n; i++)
			count[first[pages[i].region] + pages[i].index]++;
		total += n;
	}
	return total;
}

TEST(bad_registrations_are_einval)
{
	void *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmig_ram_region r = plain_region(m, 4 * PG);
	struct vmig_ram_kvm kvm = { .vm_fd = -1 };
	struct vmig_ram *ram = NULL;

	ASSERT_NE(MAP_FAILED, m);
	EXPECT_EQ(-EINVAL, vmig_ram_new(NULL, 1, NULL, &ram));
	EXPECT_EQ(-EINVAL, vmig_ram_new(&r, 0, NULL, &ram));
	r.size = PG + 1;
	EXPECT_EQ(-EINVAL, vmig_ram_new(&r, 1, NULL, &ram));
	r = plain_region((char *)m + 1, PG);
	EXPECT_EQ(-EINVAL, vmig_ram_new(&r, 1, NULL, &ram));
	/* A KVM slot needs the KVM side. */
	r = plain_region(m, 4 * PG);
	r.kvm_slot = 0;
	EXPECT_EQ(-EINVAL, vmig_ram_new(&r, 1, NULL, &ram));
	EXPECT_EQ(-EINVAL, vmig_ram_new(&r, 1, &kvm, &ram));
	/* A ring size that is not a power of two. */
	kvm.vm_fd = 0;
	kvm.ring_entries = 1000;
	EXPECT_EQ(-EINVAL, vmig_ram_new(&r, 1, &kvm, &ram));
	EXPECT_EQ(NULL, ram);
	munmap(m, 4 * PG);
}

TEST(kvm_trackers_refuse_memory_without_kvm)
{
	void *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmig_ram_region r = plain_region(m, 4 * PG);
	struct vmig_ram *ram;

	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
	EXPECT_EQ(-EOPNOTSUPP, vmig_ram_track_start(ram, VMIG_TRACK_RING));
	EXPECT_EQ(-EOPNOTSUPP, vmig_ram_track_start(ram, VMIG_TRACK_BITMAP));
	EXPECT_EQ(-EINVAL, vmig_ram_track_start(ram, VMIG_TRACK_NONE));
	EXPECT_EQ(VMIG_TRACK_NONE, vmig_ram_tracker(ram));
	EXPECT_EQ(-EINVAL, vmig_ram_sync(ram));
	vmig_ram_free(ram);
	munmap(m, 4 * PG);
}

TEST(page_addresses_follow_the_regions)
{
	char *m = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmig_ram_region r[2] = { plain_region(m, 3 * PG),
					plain_region(m + 4 * PG, 4 * PG) };
	struct vmig_page p = { .region = 1, .index = 2 };
	struct vmig_ram *ram;

	ASSERT_EQ(0, vmig_ram_new(r, 2, NULL, &ram));
	EXPECT_EQ(7U, vmig_ram_nr_pages(ram));
	EXPECT_EQ(m + 6 * PG, vmig_ram_page_addr(ram, &p));
	p.index = 4;
	EXPECT_EQ(NULL, vmig_ram_page_addr(ram, &p));
	p.region = 2;
	p.index = 0;
	EXPECT_EQ(NULL, vmig_ram_page_addr(ram, &p));
	vmig_ram_free(ram);
	munmap(m, 8 * PG);
}

TEST(dirty_set_queues_each_page_once)
{
	char *m = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmig_ram_region r[2] = { plain_region(m, 3 * PG),
					plain_region(m + 4 * PG, 4 * PG) };
	uint64_t first[2] = { 0, 3 };
	struct vmig_page p[8];
	uint8_t count[7] = { 0 };
	struct vmig_ram *ram;

	ASSERT_EQ(0, vmig_ram_new(r, 2, NULL, &ram));
	ram_lock(ram);
	EXPECT_TRUE(ram_push_locked(ram, 5));
	EXPECT_TRUE(ram_push_locked(ram, 1));
	EXPECT_FALSE(ram_push_locked(ram, 5));
	EXPECT_FALSE(ram_push_locked(ram, 7));	/* out of range */
	EXPECT_TRUE(ram_push_locked(ram, 3));
	ram_unlock(ram);
	EXPECT_EQ(3U, vmig_ram_dirty_count(ram));
	/* In the order they became dirty; region-relative. */
	ASSERT_EQ(3, vmig_ram_pop_dirty(ram, p, 8));
	EXPECT_EQ(1U, p[0].region);
	EXPECT_EQ(2U, p[0].index);
	EXPECT_EQ(0U, p[1].region);
	EXPECT_EQ(1U, p[1].index);
	EXPECT_EQ(1U, p[2].region);
	EXPECT_EQ(0U, p[2].index);
	EXPECT_EQ(0, vmig_ram_pop_dirty(ram, p, 8));
	/* Popped pages can become dirty again. */
	ram_lock(ram);
	EXPECT_TRUE(ram_push_locked(ram, 5));
	ram_unlock(ram);
	EXPECT_EQ(1U, drain(ram, count, first));
	EXPECT_EQ(1, count[5]);
	vmig_ram_free(ram);
	munmap(m, 8 * PG);
}

TEST(full_resync_hands_out_every_page_once)
{
	enum { N = 1000 };
	char *m = mmap(NULL, N * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct vmig_ram_region r = plain_region(m, N * PG);
	uint64_t first[1] = { 0 };
	uint8_t count[N] = { 0 };
	struct vmig_ram_stats st;
	struct vmig_page p[10];
	struct vmig_ram *ram;
	unsigned int i;

	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &ram));
	ram_lock(ram);
	ram_push_locked(ram, 10);
	ram_push_locked(ram, 900);
	ram_unlock(ram);
	ram_resync(ram, "test");
	EXPECT_EQ((uint64_t)N, vmig_ram_dirty_count(ram));
	/* Half-way through the sweep, pages behind and ahead get dirty. */
	ASSERT_EQ(10, vmig_ram_pop_dirty(ram, p, 10));
	for (i = 0; i < 10; i++)
		count[p[i].index]++;
	ram_lock(ram);
	EXPECT_TRUE(ram_push_locked(ram, 3));	/* behind: again */
	EXPECT_FALSE(ram_push_locked(ram, 500)); /* ahead: covered */
	ram_unlock(ram);
	EXPECT_EQ((unsigned int)N - 10 + 1, drain(ram, count, first));
	for (i = 0; i < N; i++)
		ASSERT_EQ(i == 3 ? 2 : 1, count[i]) TH_LOG("page %u", i);
	vmig_ram_get_stats(ram, &st);
	EXPECT_EQ(1U, st.losses);
	vmig_ram_free(ram);
	munmap(m, N * PG);
}

/* ------------------------------------------------ write-protect tracker */

FIXTURE(wp)
{
	char *mem;
	size_t size;
	struct vmig_ram *ram;
	uint8_t *count;
	int memfd;
};

FIXTURE_VARIANT(wp)
{
	bool memfd;
};

FIXTURE_VARIANT_ADD(wp, anonymous)
{
	.memfd = false,
};

FIXTURE_VARIANT_ADD(wp, memfd)
{
	.memfd = true,
};

#define WP_PAGES 16384		/* 64 MiB */

FIXTURE_SETUP(wp)
{
	struct vmig_ram_region r;
	int err;

	self->size = WP_PAGES * PG;
	self->memfd = -1;
	if (variant->memfd) {
		self->memfd = memfd_create("ram_test", MFD_CLOEXEC);
		ASSERT_LE(0, self->memfd);
		ASSERT_EQ(0, ftruncate(self->memfd, self->size));
		self->mem = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, self->memfd, 0);
	} else {
		self->mem = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	ASSERT_NE(MAP_FAILED, self->mem);
	/* Half of it populated before tracking starts. */
	memset(self->mem, 1, self->size / 2);
	self->count = calloc(WP_PAGES, 1);
	ASSERT_NE(NULL, self->count);
	r = plain_region(self->mem, self->size);
	r.fd = self->memfd;
	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &self->ram));
	err = vmig_ram_track_start(self->ram, VMIG_TRACK_AUTO);
	if (err == -EOPNOTSUPP || err == -EPERM || err == -ENOSYS)
		SKIP(return, "userfaultfd WP_ASYNC unavailable (%d)", err);
	ASSERT_EQ(0, err);
	ASSERT_EQ(VMIG_TRACK_WP, vmig_ram_tracker(self->ram));
}

FIXTURE_TEARDOWN(wp)
{
	vmig_ram_free(self->ram);
	free(self->count);
	munmap(self->mem, self->size);
	if (self->memfd >= 0)
		close(self->memfd);
}

/* Write pages i with i % mod == rem; return how many. */
static unsigned int write_pages(char *mem, unsigned int mod, unsigned int rem,
				uint8_t v)
{
	unsigned int i, n = 0;

	for (i = rem; i < WP_PAGES; i += mod, n++)
		mem[i * PG + 17] = v;
	return n;
}

static unsigned int check_exact(struct __test_metadata *_metadata,
				struct vmig_ram *ram, uint8_t *count,
				unsigned int mod, unsigned int rem)
{
	uint64_t first[1] = { 0 };
	unsigned int i, n, bad = 0;

	memset(count, 0, WP_PAGES);
	EXPECT_LE(0, vmig_ram_sync(ram));
	n = drain(ram, count, first);
	for (i = 0; i < WP_PAGES; i++)
		if (count[i] != (i % mod == rem))
			bad++;
	EXPECT_EQ(0U, bad) TH_LOG("mod %u rem %u", mod, rem);
	return n;
}

TEST_F(wp, reports_exactly_the_written_pages)
{
	unsigned int n;

	/* Nothing written yet: nothing reported. */
	EXPECT_EQ(0, vmig_ram_sync(self->ram));
	/* Populated and never-touched pages alike; a page-straddling run. */
	n = write_pages(self->mem, 7, 3, 2);
	EXPECT_EQ(n, check_exact(_metadata, self->ram, self->count, 7, 3));
	/* Re-protected: a second round sees only its own writes. */
	n = write_pages(self->mem, 5, 0, 3);
	EXPECT_EQ(n, check_exact(_metadata, self->ram, self->count, 5, 0));
	n = write_pages(self->mem, 1, 0, 4);
	EXPECT_EQ(n, check_exact(_metadata, self->ram, self->count, 1, 0));
}

TEST_F(wp, reads_are_not_writes)
{
	volatile char sink = 0;
	unsigned int i;

	for (i = 0; i < WP_PAGES; i += 3)
		sink += self->mem[i * PG];
	(void)sink;
	EXPECT_EQ(0, vmig_ram_sync(self->ram));
}

TEST_F(wp, stop_keeps_the_last_writes_and_unprotects)
{
	uint64_t first[1] = { 0 };

	write_pages(self->mem, 1000, 1, 5);
	vmig_ram_track_stop(self->ram);
	EXPECT_EQ(VMIG_TRACK_NONE, vmig_ram_tracker(self->ram));
	EXPECT_EQ((WP_PAGES - 1 + 999) / 1000,
		  drain(self->ram, self->count, first));
	/* Unprotected: plain writes still work. */
	memset(self->mem, 6, self->size);
	EXPECT_EQ(6, self->mem[self->size - 1]);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: mdev instances.  Sixteen of them coexist, each with its own
 * seed, content and IOMMU group, all open at once; removing them leaves
 * nothing behind; UUIDs are unique.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

#define NR_INST		16

/*
 * Instances are created with the default 64 MiB state and shrunk to 4 KiB
 * at once, so that no more than one default-sized state exists at a time.
 */
FIXTURE(sixteen) {
	struct migsim_inst in[NR_INST];
	uint64_t avail_before;
	bool counts;		/* available_instances is readable */
};

FIXTURE_SETUP(sixteen)
{
	int i, ret = 0;

	self->counts = !migsim_available_instances(&self->avail_before);
	for (i = 0; i < NR_INST && !ret; i++)
		ret = migsim_inst_create(&self->in[i], 4 * KiB);
	if (ret) {
		while (i--)
			migsim_inst_destroy(&self->in[i]);
	}
	ASSERT_EQ(0, ret) TH_LOG("instance %d: %s", i, strerror(-ret));
}

FIXTURE_TEARDOWN_PARENT(sixteen)
{
	int i;

	for (i = 0; i < NR_INST; i++)
		if (self->in[i].uuid[0] && migsim_exists(self->in[i].uuid))
			EXPECT_EQ(0, migsim_remove_uuid(self->in[i].uuid));
}

/*
 * Three tests of sixteen instances each (creating one costs up to ~1 s in
 * the TCG guest at the default state size).
 */
TEST_F_TIMEOUT(sixteen, each_distinct_with_own_iommu_group, 180)
{
	uint32_t csum[NR_INST];
	char seed[NR_INST][64];
	int group[NR_INST];
	char path[64];
	struct stat st;
	int i, j;

	for (i = 0; i < NR_INST; i++) {
		EXPECT_TRUE(migsim_exists(self->in[i].uuid))
			TH_LOG("%s", self->in[i].uuid);
		ASSERT_LT(0, migsim_attr_read(self->in[i].uuid, "seed",
					      seed[i], sizeof(seed[i])));
		ASSERT_EQ(0, migsim_checksum(self->in[i].uuid, &csum[i]));
		ASSERT_EQ(0, migsim_iommu_group(self->in[i].uuid, &group[i]));
		snprintf(path, sizeof(path), "/dev/vfio/%d", group[i]);
		EXPECT_EQ(0, stat(path, &st)) TH_LOG("%s", path);
	}
	for (i = 0; i < NR_INST; i++) {
		for (j = i + 1; j < NR_INST; j++) {
			EXPECT_STRNE(seed[i], seed[j]);
			EXPECT_NE(csum[i], csum[j]);
			EXPECT_NE(group[i], group[j]);
		}
	}
}

TEST_F_TIMEOUT(sixteen, all_open_at_once, 180)
{
	enum vmig_dev_state st;
	int i;

	for (i = 0; i < NR_INST; i++)
		ASSERT_EQ(0, migsim_inst_open(&self->in[i])) TH_LOG("#%d", i);
	for (i = 0; i < NR_INST; i++) {
		ASSERT_EQ(0, migsim_get_state(&self->in[i], &st));
		EXPECT_EQ(VMIG_STATE_RUNNING, st);
	}
	for (i = 0; i < NR_INST; i++)
		migsim_inst_close(&self->in[i]);
}

TEST_F_TIMEOUT(sixteen, removal_leaves_nothing, 180)
{
	uint64_t with, without;
	int i;

	if (self->counts) {
		ASSERT_EQ(0, migsim_available_instances(&with));
		/* it need not go down, but if it does, by one per instance */
		EXPECT_TRUE(with == self->avail_before ||
			    with + NR_INST == self->avail_before)
			TH_LOG("%llu available before, %llu with %d instances",
			       (unsigned long long)self->avail_before,
			       (unsigned long long)with, NR_INST);
	}
	for (i = 0; i < NR_INST; i++)
		ASSERT_EQ(0, migsim_remove_uuid(self->in[i].uuid));
	for (i = 0; i < NR_INST; i++)
		EXPECT_FALSE(migsim_exists(self->in[i].uuid))
			TH_LOG("%s", self->in[i].uuid);
	if (self->counts) {
		ASSERT_EQ(0, migsim_available_instances(&without));
		EXPECT_EQ(self->avail_before, without);
	}
}

/* One instance, and a UUID of the test's own. */
FIXTURE(one) {
	struct migsim_inst in;
	char extra[MIGSIM_UUID_LEN + 1];
};

FIXTURE_SETUP(one)
{
	ASSERT_EQ(0, migsim_inst_create(&self->in, 4 * KiB));
}

FIXTURE_TEARDOWN_PARENT(one)
{
	if (self->in.uuid[0] && migsim_exists(self->in.uuid))
		EXPECT_EQ(0, migsim_remove_uuid(self->in.uuid));
	if (self->extra[0] && migsim_exists(self->extra))
		EXPECT_EQ(0, migsim_remove_uuid(self->extra));
}

TEST_F(one, duplicate_uuid_refused)
{
	uint64_t size;

	EXPECT_NE(0, migsim_create_uuid(self->in.uuid));
	/* the original is untouched */
	EXPECT_TRUE(migsim_exists(self->in.uuid));
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(4 * KiB, size);
}

TEST_F(one, invalid_uuid_refused)
{
	EXPECT_NE(0, migsim_create_uuid("not-a-uuid"));
	EXPECT_NE(0, migsim_create_uuid("\n"));
}

TEST_F(one, uuid_reusable_after_remove)
{
	ASSERT_EQ(0, migsim_uuid_random(self->extra));
	ASSERT_EQ(0, migsim_create_uuid(self->extra));
	ASSERT_EQ(0, migsim_set_state_size(self->extra, 4 * KiB));
	ASSERT_EQ(0, migsim_remove_uuid(self->extra));
	ASSERT_FALSE(migsim_exists(self->extra));
	ASSERT_EQ(0, migsim_create_uuid(self->extra));
	EXPECT_TRUE(migsim_exists(self->extra));
}

TEST_F(one, seed_derived_from_uuid)
{
	char seed0[64], seed1[64];

	ASSERT_EQ(0, migsim_uuid_random(self->extra));
	ASSERT_EQ(0, migsim_create_uuid(self->extra));
	ASSERT_EQ(0, migsim_set_state_size(self->extra, 4 * KiB));
	ASSERT_LT(0, migsim_attr_read(self->extra, "seed", seed0,
				      sizeof(seed0)));
	ASSERT_EQ(0, migsim_remove_uuid(self->extra));
	ASSERT_EQ(0, migsim_create_uuid(self->extra));
	ASSERT_LT(0, migsim_attr_read(self->extra, "seed", seed1,
				      sizeof(seed1)));
	EXPECT_STREQ(seed0, seed1);
}

TEST_HARNESS_MAIN

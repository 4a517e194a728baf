// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The convergence model with fake inputs and a fake clock: the switchover
 * rule, the measured bandwidth, the device stop-copy cache (stale values
 * are refreshed, exact queries are rate limited) and the STUCK verdict.
 */
#include <errno.h>
#include <stdlib.h>

#include "kselftest_harness.h"
#include "vmig.h"

#define MS	1000000ULL
#define MIB	(1ULL << 20)
#define GIB	(1ULL << 30)

struct fake_devs {
	uint64_t size[2];
	unsigned int queries;
	int fail;
};

static int fake_size(void *opaque, unsigned int dev, uint64_t *bytes)
{
	struct fake_devs *f = opaque;

	f->queries++;
	if (f->fail)
		return f->fail;
	*bytes = f->size[dev];
	return 0;
}

static unsigned int stuck_calls;

static void on_stuck(void *opaque, const struct vmig_converge_info *info)
{
	(void)opaque;
	(void)info;
	stuck_calls++;
}

static struct vmig_converge *make(struct fake_devs *f, uint64_t bw,
				  uint64_t downtime_ms)
{
	struct vmig_converge_config cfg;
	struct vmig_converge *c = NULL;

	vmig_converge_config_init(&cfg);
	cfg.downtime_ns = downtime_ms * MS;
	cfg.bandwidth = bw;
	cfg.nr_devices = f ? 2 : 0;
	cfg.stop_copy_size = fake_size;
	cfg.opaque = f;
	cfg.not_converging = on_stuck;
	if (vmig_converge_new(&cfg, &c))
		return NULL;
	return c;
}

TEST(switchover_when_pending_fits_the_downtime)
{
	struct fake_devs f = { .size = { 10 * MIB, 20 * MIB } };
	struct vmig_converge_info info;
	struct vmig_converge *c = make(&f, 1000 * MIB, 100);

	ASSERT_NE(NULL, c);
	/* 70 MiB + 30 MiB at 1000 MiB/s: 100 ms. */
	EXPECT_EQ(VMIG_CONVERGE_SWITCHOVER,
		  vmig_converge_check(c, 70 * MIB, 1000 * MS, &info));
	EXPECT_EQ(100 * MIB, info.pending_bytes);
	EXPECT_EQ(30 * MIB, info.device_bytes);
	EXPECT_EQ(100 * MS, info.expected_downtime_ns);
	/* One more MiB does not fit. */
	EXPECT_EQ(VMIG_CONVERGE_CONTINUE,
		  vmig_converge_check(c, 71 * MIB, 1001 * MS, &info));
	vmig_converge_free(c);
}

TEST(bandwidth_is_measured_when_not_given)
{
	struct vmig_converge_info info;
	struct vmig_converge *c = make(NULL, 0, 100);
	uint64_t t;

	ASSERT_NE(NULL, c);
	/* Nothing measured yet: no verdict but CONTINUE. */
	EXPECT_EQ(VMIG_CONVERGE_CONTINUE,
		  vmig_converge_check(c, MIB, 1 * MS, &info));
	EXPECT_EQ(0, info.bandwidth);
	/* 1 MiB every 10 ms: 100 MiB/s. */
	for (t = 10 * MS; t <= 1000 * MS; t += 10 * MS)
		vmig_converge_account(c, MIB, t);
	EXPECT_EQ(VMIG_CONVERGE_SWITCHOVER,
		  vmig_converge_check(c, 10 * MIB, 1000 * MS, &info));
	EXPECT_GE(info.bandwidth, 95 * MIB);
	EXPECT_LE(info.bandwidth, 105 * MIB);
	/* Idle gaps do not count as slow sending. */
	vmig_converge_account(c, MIB, 5000 * MS);
	vmig_converge_account(c, MIB, 5010 * MS);
	EXPECT_NE(VMIG_CONVERGE_SWITCHOVER,
		  vmig_converge_check(c, 20 * MIB, 5010 * MS, &info));
	EXPECT_GE(info.bandwidth, 95 * MIB);
	vmig_converge_free(c);
}

/*
 * A device reports 2 GiB, later 100 MiB: the cheap estimate uses the cache,
 * which is refreshed once it is exact_max_age_ns old (1 s), so the shrink
 * is seen and the migration converges; it never sticks to the stale size.
 */
TEST(stale_cache_is_refreshed_at_max_age)
{
	struct fake_devs f = { .size = { 2 * GIB, 0 } };
	struct vmig_converge_info info;
	struct vmig_converge *c = make(&f, 1000 * MIB, 300);
	uint64_t t;
	int r = -1;

	ASSERT_NE(NULL, c);
	EXPECT_EQ(VMIG_CONVERGE_CONTINUE,
		  vmig_converge_check(c, 0, 1000 * MS, &info));
	EXPECT_EQ(1, f.queries / 2);
	f.size[0] = 100 * MIB;
	for (t = 1010 * MS; t < 3000 * MS; t += 10 * MS) {
		r = vmig_converge_check(c, 0, t, &info);
		if (r)
			break;
		/* Until the cache is a second old, the stale size is used. */
		EXPECT_EQ(2 * GIB, info.device_bytes);
	}
	EXPECT_EQ(VMIG_CONVERGE_SWITCHOVER, r);
	EXPECT_EQ(2000 * MS, t);
	EXPECT_EQ(100 * MIB, info.device_bytes);
	EXPECT_EQ(2, f.queries / 2);
	EXPECT_GE(info.estimates, 90);
	vmig_converge_free(c);
}

/*
 * The estimate fits (RAM is done, the cached device size is small) but the
 * exact query says the device grew: exact queries must not follow every
 * check (seed 000's spin), only every exact_min_ns (100 ms).
 */
TEST(exact_queries_are_rate_limited)
{
	struct fake_devs f = { .size = { 10 * MIB, 0 } };
	struct vmig_converge_info info;
	struct vmig_converge *c = make(&f, 1000 * MIB, 100);
	unsigned int checks = 0;
	uint64_t t;

	ASSERT_NE(NULL, c);
	EXPECT_EQ(VMIG_CONVERGE_CONTINUE,
		  vmig_converge_check(c, GIB, 1000 * MS, &info));
	EXPECT_EQ(1, f.queries / 2);
	f.size[0] = 20 * GIB;
	/* RAM is done: the estimate (10 MiB cached) fits, the device not. */
	for (t = 1200 * MS; t <= 3200 * MS; t += 100000, checks++)
		ASSERT_EQ(VMIG_CONVERGE_CONTINUE,
			  vmig_converge_check(c, 0, t, &info));
	/* The first check confirmed on an exact query and saw 20 GiB... */
	EXPECT_EQ(20 * GIB, info.device_bytes);
	/* ...and then 20000 checks made one exact query a second. */
	EXPECT_GE(checks, 19000);
	EXPECT_LE(f.queries / 2, 4);
	EXPECT_GE(info.estimates, 19000);
	vmig_converge_free(c);
}

TEST(failed_query_counts_as_huge)
{
	struct fake_devs f = { .fail = -EIO };
	struct vmig_converge_info info;
	struct vmig_converge *c = make(&f, 1000 * MIB, 100);

	ASSERT_NE(NULL, c);
	EXPECT_EQ(VMIG_CONVERGE_CONTINUE,
		  vmig_converge_check(c, 0, 1000 * MS, &info));
	EXPECT_EQ(200 * GIB, info.device_bytes);
	vmig_converge_free(c);
}

TEST(no_progress_is_reported_stuck_then_a_higher_limit_converges)
{
	struct fake_devs f = { .size = { 500 * MIB, 0 } };
	struct vmig_converge_info info;
	struct vmig_converge *c = make(&f, 1000 * MIB, 100);
	uint64_t t;
	int r = 0;

	ASSERT_NE(NULL, c);
	stuck_calls = 0;
	/* Pending shrinks for a while, then stays at ~600 MiB. */
	for (t = 1000 * MS; t < 10000 * MS; t += 20 * MS) {
		uint64_t ram = t < 2000 * MS ? (2000 * MS - t) / MS * MIB : 0;

		r = vmig_converge_check(c, ram + 100 * MIB + (t / MS % 7) * MIB,
					t, &info);
		if (r)
			break;
	}
	EXPECT_EQ(VMIG_CONVERGE_STUCK, r);
	EXPECT_EQ(1, stuck_calls);
	/* Stuck 3 s (stall_ns) after the last progress, at about 2 s. */
	EXPECT_GE(t, 4700 * MS);
	EXPECT_LE(t, 5100 * MS);
	EXPECT_GT(info.expected_downtime_ns, 550 * MS);
	/* The caller raises the limit to what info says is needed. */
	vmig_converge_set_downtime(c, info.expected_downtime_ns + 50 * MS);
	EXPECT_EQ(VMIG_CONVERGE_SWITCHOVER,
		  vmig_converge_check(c, 100 * MIB, t + 20 * MS, &info));
	vmig_converge_free(c);
}

TEST_HARNESS_MAIN

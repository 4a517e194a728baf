// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: resizes racing with migrations and queries.
 *
 * For RACE_SECONDS, on one dirtying source instance:
 *  - a resizer thread sets random state sizes (4 KiB .. 24 MiB);
 *  - a query thread reads the checksum, MIG_DATA_SIZE, BAR0 registers and,
 *    when a precopy fd is open, PRECOPY_INFO;
 *  - the main thread migrates the source into a destination again and
 *    again (PRE_COPY, a few precopy reads, PRE_COPY_P2P, STOP_COPY), and
 *    checks each time that the destination ends with the checksum the
 *    source had while stopped.
 * The VM runner then checks the kernel log for splats.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

#define RACE_SECONDS	30

struct race {
	struct migsim_inst src, dst;
	atomic_bool stop;
	atomic_int precopy_fd;		/* dup of the open precopy fd, or -1 */
	atomic_ulong resizes_ok, resizes_busy, queries;
	atomic_ulong resize_errors, query_errors;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *resizer(void *arg)
{
	struct race *r = arg;
	unsigned int seed = 1;
	int ret;

	while (!atomic_load(&r->stop)) {
		uint64_t pages = 1 + rand_r(&seed) % (8 * MiB / 4096);

		ret = migsim_set_state_size(r->src.uuid, pages * 4096);
		if (!ret)
			atomic_fetch_add(&r->resizes_ok, 1);
		else if (ret == -EBUSY)
			atomic_fetch_add(&r->resizes_busy, 1);
		else
			atomic_fetch_add(&r->resize_errors, 1);
		usleep(rand_r(&seed) % 20000);
	}
	return NULL;
}

static void *querier(void *arg)
{
	struct race *r = arg;
	uint64_t v, init, dirty;
	uint32_t csum, reg, flags;
	int fd;

	while (!atomic_load(&r->stop)) {
		if (migsim_checksum(r->src.uuid, &csum) ||
		    vmig_vfio_stop_copy_size(r->src.dev, &v) ||
		    migsim_bar0_read32(r->src.fd, MIGSIM_REG_SIZE_LO, &reg) ||
		    migsim_bar0_read32(r->src.fd, MIGSIM_REG_CHECKSUM, &reg))
			atomic_fetch_add(&r->query_errors, 1);
		fd = atomic_exchange(&r->precopy_fd, -1);
		if (fd >= 0) {
			/* ENODEV or EINVAL once the arc to STOP_COPY happened */
			vmig_precopy_info(fd, &init, &dirty, &flags);
			close(fd);
		}
		atomic_fetch_add(&r->queries, 1);
		usleep(2000);
	}
	return NULL;
}

/* One migration, src -> dst.  Returns 0 and whether checksums matched. */
static int migrate_once(struct race *r, bool *match)
{
	struct migsim_buf b = { 0 };
	uint32_t want, got;
	int fd = -1, tmp = -1, ret, i;

	*match = false;
	ret = migsim_set_state(&r->src, VMIG_STATE_PRE_COPY, &fd);
	if (ret)
		return ret;
	tmp = atomic_exchange(&r->precopy_fd, dup(fd));
	if (tmp >= 0)
		close(tmp);
	for (i = 0; i < 3; i++) {
		ret = migsim_read_stream(fd, 1 * MiB, &b);
		if (ret != -ENOMSG)
			goto out;
		usleep(10000);
	}
	ret = migsim_set_state(&r->src, VMIG_STATE_PRE_COPY_P2P, NULL);
	if (!ret)
		ret = migsim_set_state(&r->src, VMIG_STATE_STOP_COPY, NULL);
	if (!ret)
		ret = migsim_read_stream(fd, 1 * MiB + 5, &b);
	if (!ret)
		ret = migsim_checksum(r->src.uuid, &want);
	if (ret)
		goto out;
	ret = migsim_load(&r->dst, b.data, b.len, 65536);
	if (!ret)
		ret = migsim_checksum(r->dst.uuid, &got);
	if (!ret)
		*match = want == got;
out:
	close(fd);
	migsim_buf_free(&b);
	if (vmig_vfio_set_state(r->src.dev, VMIG_STATE_RUNNING, NULL) && !ret)
		ret = -EIO;
	return ret;
}

FIXTURE(race) {
	struct race r;
};

FIXTURE_SETUP(race)
{
	memset(&self->r, 0, sizeof(self->r));
	self->r.src.fd = -1;
	self->r.dst.fd = -1;
	atomic_store(&self->r.precopy_fd, -1);
	ASSERT_EQ(0, migsim_inst_create_open(&self->r.src, 8 * MiB));
	ASSERT_EQ(0, migsim_inst_create_open(&self->r.dst, 4 * KiB));
}

FIXTURE_TEARDOWN(race)
{
	migsim_inst_destroy(&self->r.src);
	migsim_inst_destroy(&self->r.dst);
}

TEST_F_TIMEOUT(race, resize_races_reads_and_state_changes, RACE_SECONDS * 4)
{
	struct race *rp = &self->r;
	pthread_t t1, t2;
	unsigned int rounds = 0, mismatches = 0, failures = 0;
	double end;
	bool match;
	int ret;

	ASSERT_EQ(0, migsim_attr_write(rp->src.uuid, "dirty_rate", "16M"));
	ASSERT_EQ(0, migsim_attr_write(rp->src.uuid, "hot_set", "300"));

	ASSERT_EQ(0, pthread_create(&t1, NULL, resizer, rp));
	ASSERT_EQ(0, pthread_create(&t2, NULL, querier, rp));
	end = now_s() + RACE_SECONDS;
	while (now_s() < end) {
		ret = migrate_once(rp, &match);
		rounds++;
		if (ret) {
			failures++;
			TH_LOG("round %u failed: %s", rounds, strerror(-ret));
		} else if (!match) {
			mismatches++;
		}
	}
	atomic_store(&rp->stop, true);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	if (atomic_load(&rp->precopy_fd) >= 0)
		close(atomic_load(&rp->precopy_fd));

	TH_LOG("%u migrations, %lu resizes (%lu refused as busy), %lu query rounds",
	       rounds, atomic_load(&rp->resizes_ok),
	       atomic_load(&rp->resizes_busy), atomic_load(&rp->queries));
	EXPECT_LE(2, rounds);
	EXPECT_EQ(0, failures);
	EXPECT_EQ(0, mismatches);
	EXPECT_LT(0, atomic_load(&rp->resizes_ok));
	EXPECT_EQ(0, atomic_load(&rp->resize_errors));
	EXPECT_EQ(0, atomic_load(&rp->query_errors));

	EXPECT_EQ(0, migsim_attr_write(rp->src.uuid, "dirty_rate", "0"));
}

TEST_HARNESS_MAIN

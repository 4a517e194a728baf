// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: a whole migration between two instances.  The source's save
 * fd is copied straight into the destination's resume fd, with odd read and
 * write sizes, either in STOP_COPY alone or through PRE_COPY ->
 * PRE_COPY_P2P -> STOP_COPY on the same fd.  Afterwards the destination
 * has the source's state (checksum, size, scratch registers), and the
 * source is RUNNING with its state unchanged.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

#define SCRATCH(i)	(0x5ca70000U + (i))

/* A source and a destination instance. */
struct pair {
	struct migsim_inst src, dst;
	uint32_t src_csum;
	uint64_t bytes;		/* copied from the save fd */
	uint64_t data_size;	/* MIG_DATA_SIZE in STOP (stop-copy only) */
};

FIXTURE(migrate) {
	struct pair p;
};

FIXTURE_VARIANT(migrate) {
	uint64_t size;
	size_t rsz, wsz;
	bool precopy;
};

FIXTURE_VARIANT_ADD(migrate, s4k_bytewise) {
	.size = 4 * KiB, .rsz = 1, .wsz = 1,
};
FIXTURE_VARIANT_ADD(migrate, s4k_precopy_r4095_w1) {
	.size = 4 * KiB, .rsz = 4095, .wsz = 1, .precopy = true,
};
FIXTURE_VARIANT_ADD(migrate, s64m_r4095_w65537) {
	.size = 64 * MiB, .rsz = 4095, .wsz = 65537,
};
FIXTURE_VARIANT_ADD(migrate, s64m_precopy_r8m3_w4095) {
	.size = 64 * MiB, .rsz = 8 * MiB + 3, .wsz = 4095, .precopy = true,
};
FIXTURE_VARIANT_ADD(migrate, s8m_r65537_w8m3) {
	.size = 8 * MiB + 4 * KiB, .rsz = 65537, .wsz = 8 * MiB + 3,
};

/*
 * Create the pair: the source with state_size (a sysfs string, so that
 * suffixes get used too), the destination with 4 KiB; fill the source's
 * scratch registers.  On failure nothing is left behind.
 */
static int pair_create(struct pair *p, const char *state_size)
{
	int i, ret;

	ret = migsim_inst_create(&p->src, 0);
	if (!ret)
		ret = migsim_attr_write(p->src.uuid, "state_size", state_size);
	if (!ret)
		ret = migsim_inst_open(&p->src);
	if (!ret)
		ret = migsim_inst_create_open(&p->dst, 4 * KiB);
	for (i = 0; !ret && i < MIGSIM_NR_SCRATCH; i++)
		ret = migsim_bar0_write32(p->src.fd,
					  MIGSIM_REG_SCRATCH0 + 4 * i,
					  SCRATCH(i));
	if (!ret)
		ret = migsim_checksum(p->src.uuid, &p->src_csum);
	if (ret) {
		migsim_inst_destroy(&p->src);
		migsim_inst_destroy(&p->dst);
	}
	return ret;
}

static void pair_remove(struct __test_metadata *_metadata, struct pair *p)
{
	if (p->src.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(p->src.uuid));
	if (p->dst.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(p->dst.uuid));
}

FIXTURE_SETUP(migrate)
{
	char size[32];
	int ret;

	snprintf(size, sizeof(size), "%lluK",
		 (unsigned long long)(variant->size / KiB));
	ret = pair_create(&self->p, size);
	ASSERT_EQ(0, ret) TH_LOG("setup: %s", strerror(-ret));
}

FIXTURE_TEARDOWN_PARENT(migrate)
{
	pair_remove(_metadata, &self->p);
}

#define STEP(desc, expr) do {		\
		what = (desc);			\
		ret = (expr);			\
		if (ret)			\
			goto out;		\
	} while (0)

/*
 * Migrate p->src to p->dst, copying the save fd into the resume fd with
 * rsz-byte reads and wsz-byte writes; both end RUNNING.  Returns 0 or the
 * -errno of the first step that failed, which is logged.
 */
static int migrate(struct __test_metadata *_metadata, struct pair *p,
		   size_t rsz, size_t wsz, bool precopy)
{
	int sfd = -1, rfd = -1, fd2 = -1, ret;
	const char *what;
	bool wfail;
	uint64_t n;

	p->bytes = 0;
	p->data_size = 0;
	STEP("dst -> RESUMING",
	     migsim_set_state(&p->dst, VMIG_STATE_RESUMING, &rfd));
	STEP("dst: resume fd", rfd < 0 ? -EBADF : 0);
	if (precopy) {
		STEP("src -> PRE_COPY",
		     migsim_set_state(&p->src, VMIG_STATE_PRE_COPY, &sfd));
		STEP("src: precopy fd", sfd < 0 ? -EBADF : 0);
		ret = migsim_copy_stream(sfd, rfd, rsz, wsz, true, &n, &wfail);
		p->bytes += n;
		STEP(wfail ? "precopy: write" : "precopy: read", ret);
		STEP("src -> PRE_COPY_P2P",
		     migsim_set_state(&p->src, VMIG_STATE_PRE_COPY_P2P, &fd2));
		STEP("src: no new fd in PRE_COPY_P2P", fd2 >= 0 ? -EEXIST : 0);
		STEP("src -> STOP_COPY",
		     migsim_set_state(&p->src, VMIG_STATE_STOP_COPY, &fd2));
		STEP("src: no new fd in STOP_COPY", fd2 >= 0 ? -EEXIST : 0);
	} else {
		STEP("src -> STOP",
		     migsim_set_state(&p->src, VMIG_STATE_STOP, NULL));
		STEP("src: MIG_DATA_SIZE",
		     vmig_vfio_stop_copy_size(p->src.dev, &p->data_size));
		STEP("src -> STOP_COPY",
		     migsim_set_state(&p->src, VMIG_STATE_STOP_COPY, &sfd));
		STEP("src: save fd", sfd < 0 ? -EBADF : 0);
	}
	ret = migsim_copy_stream(sfd, rfd, rsz, wsz, false, &n, &wfail);
	p->bytes += n;
	STEP(wfail ? "stop-copy: write" : "stop-copy: read", ret);
	close(rfd);
	rfd = -1;
	STEP("dst -> STOP", migsim_set_state(&p->dst, VMIG_STATE_STOP, NULL));
	STEP("dst -> RUNNING",
	     migsim_set_state(&p->dst, VMIG_STATE_RUNNING, NULL));
	STEP("src -> RUNNING",
	     migsim_set_state(&p->src, VMIG_STATE_RUNNING, NULL));
out:
	if (ret)
		TH_LOG("%s: %s", what, strerror(-ret));
	if (fd2 >= 0)
		close(fd2);
	if (sfd >= 0)
		close(sfd);
	if (rfd >= 0)
		close(rfd);
	return ret;
}

TEST_F_TIMEOUT(migrate, destination_matches_source, 120)
{
	uint64_t size;
	uint32_t csum, v;
	int i;

	ASSERT_EQ(0, migrate(_metadata, &self->p, variant->rsz, variant->wsz,
			     variant->precopy));
	ASSERT_EQ(0, migsim_checksum(self->p.dst.uuid, &csum));
	EXPECT_EQ(self->p.src_csum, csum);
	ASSERT_EQ(0, migsim_state_size(self->p.dst.uuid, &size));
	EXPECT_EQ(variant->size, size);
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++) {
		ASSERT_EQ(0, migsim_bar0_read32(self->p.dst.fd,
				MIGSIM_REG_SCRATCH0 + 4 * i, &v));
		EXPECT_EQ(SCRATCH(i), v) TH_LOG("SCRATCH%d", i);
	}
}

TEST_F_TIMEOUT(migrate, source_running_and_unchanged, 120)
{
	enum vmig_dev_state st;
	uint64_t size;
	uint32_t csum, v;
	int i;

	ASSERT_EQ(0, migrate(_metadata, &self->p, variant->rsz, variant->wsz,
			     variant->precopy));
	ASSERT_EQ(0, migsim_get_state(&self->p.src, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, migsim_checksum(self->p.src.uuid, &csum));
	EXPECT_EQ(self->p.src_csum, csum);
	ASSERT_EQ(0, migsim_state_size(self->p.src.uuid, &size));
	EXPECT_EQ(variant->size, size);
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++) {
		ASSERT_EQ(0, migsim_bar0_read32(self->p.src.fd,
				MIGSIM_REG_SCRATCH0 + 4 * i, &v));
		EXPECT_EQ(SCRATCH(i), v) TH_LOG("SCRATCH%d", i);
	}
}

TEST_F_TIMEOUT(migrate, data_size_is_bytes_read, 120)
{
	if (variant->precopy)
		SKIP(return, "MIG_DATA_SIZE is for STOP_COPY entered from STOP");
	ASSERT_EQ(0, migrate(_metadata, &self->p, variant->rsz, variant->wsz,
			     variant->precopy));
	EXPECT_EQ(self->p.data_size, self->p.bytes);
	EXPECT_EQ(migsim_stream_len(variant->size, MIGSIM_DEFAULT_CHUNK_SIZE),
		  self->p.bytes);
}

/*
 * One 1 GiB migration (creating 1 GiB of state costs ~13 s under TCG, and
 * the destination allocates as much again).  The state size is written as
 * "1G", which also checks the G suffix.
 */
FIXTURE(big) {
	struct pair p;
};

FIXTURE_SETUP(big)
{
	int ret = pair_create(&self->p, "1G");

	ASSERT_EQ(0, ret) TH_LOG("setup: %s", strerror(-ret));
}

FIXTURE_TEARDOWN_PARENT(big)
{
	pair_remove(_metadata, &self->p);
}

TEST_F_TIMEOUT(big, one_gib_state_migrates, 600)
{
	enum vmig_dev_state st;
	uint64_t size;
	uint32_t csum;

	ASSERT_EQ(0, migsim_state_size(self->p.src.uuid, &size));
	ASSERT_EQ(GiB, size);
	ASSERT_EQ(0, migrate(_metadata, &self->p,
			     8 * MiB + 3, 65537, false));
	EXPECT_EQ(self->p.data_size, self->p.bytes);
	ASSERT_EQ(0, migsim_checksum(self->p.dst.uuid, &csum));
	EXPECT_EQ(self->p.src_csum, csum);
	ASSERT_EQ(0, migsim_state_size(self->p.dst.uuid, &size));
	EXPECT_EQ(GiB, size);
	ASSERT_EQ(0, migsim_get_state(&self->p.src, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, migsim_checksum(self->p.src.uuid, &csum));
	EXPECT_EQ(self->p.src_csum, csum);
}

TEST_HARNESS_MAIN

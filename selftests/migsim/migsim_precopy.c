// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: precopy of a state the device keeps dirtying.
 *
 * The engine dirties chunks of the hot set at dirty_rate bytes/s while the
 * device is RUNNING or PRE_COPY.  These tests check what a VMM relies on:
 * PRECOPY_INFO counts exactly what read() gives, precopy converges when the
 * dirty rate is below the read rate and visibly does not when it is above,
 * chunks sent in precopy and left alone are not sent again, the
 * non-precopyable tail comes only in STOP_COPY, MIG_DATA_SIZE equals what
 * STOP_COPY reads, the P2P states freeze the state, and the state may grow
 * and shrink during PRE_COPY (REINIT reported only after the opt-in).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"
#include <linux/vfio_compat.h>

#define REC_LEN		sizeof(struct migsim_record)
#define HDR_LEN		sizeof(struct migsim_stream_header)
#define CONFIG_LEN	(REC_LEN + sizeof(struct migsim_config_state))
#define END_LEN		(REC_LEN + sizeof(struct migsim_end))

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Read the data fd until ENOMSG (precopy pause) or EOF; append to b. */
static int read_until_pause(int fd, size_t rsz, struct migsim_buf *b,
			    uint64_t *bytes)
{
	int ret = migsim_read_stream(fd, rsz, b);

	if (bytes)
		*bytes = b->len;
	return ret == -ENOMSG ? 0 : (ret ? ret : -EPIPE);
}

/*
 * Read and discard up to max bytes, stopping early at the precopy pause.
 * *bytes gets what was read; returns 0 or -errno.
 */
static int read_discard(int fd, uint64_t max, uint64_t *bytes)
{
	static char buf[1 << 20];
	ssize_t n;

	*bytes = 0;
	while (*bytes < max) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0)
			return errno == ENOMSG ? 0 : -errno;
		if (!n)
			return -EPIPE;
		*bytes += n;
	}
	return 0;
}

static int opt_in_v2(int devfd, bool probe)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFO_V2 |
			 (probe ? VFIO_DEVICE_FEATURE_PROBE : 0) |
			 VFIO_DEVICE_FEATURE_SET,
	};

	return ioctl(devfd, VFIO_DEVICE_FEATURE, &f) ? -errno : 0;
}

/* Count the CHUNK records of a stream part, and the ones at offsets >= lo. */
static void count_chunks(struct migsim_buf *b, size_t off, uint64_t lo,
			 unsigned int *all, unsigned int *above)
{
	struct migsim_record *r;

	*all = 0;
	*above = 0;
	while ((r = migsim_next_record(b, &off))) {
		if (r->type != MIGSIM_REC_CHUNK)
			continue;
		(*all)++;
		if (r->offset >= lo)
			(*above)++;
	}
}

FIXTURE(precopy) {
	struct migsim_inst src, dst;
	struct migsim_buf stream;
	int fd;
};

FIXTURE_SETUP(precopy)
{
	memset(&self->stream, 0, sizeof(self->stream));
	self->fd = -1;
	ASSERT_EQ(0, migsim_inst_create_open(&self->src, 16 * MiB));
	ASSERT_EQ(0, migsim_inst_create_open(&self->dst, 4 * KiB));
}

FIXTURE_TEARDOWN(precopy)
{
	if (self->fd >= 0)
		close(self->fd);
	migsim_buf_free(&self->stream);
	migsim_inst_destroy(&self->src);
	migsim_inst_destroy(&self->dst);
}

/* Load the collected stream into dst and compare it with src. */
static int finish_and_compare(struct __test_metadata *_metadata,
			      FIXTURE_DATA(precopy) *self)
{
	uint32_t a, b;
	uint64_t sa, sb;

	EXPECT_EQ(0, migsim_load(&self->dst, self->stream.data,
				 self->stream.len, 1 * MiB));
	EXPECT_EQ(0, migsim_checksum(self->src.uuid, &a));
	EXPECT_EQ(0, migsim_checksum(self->dst.uuid, &b));
	EXPECT_EQ(a, b);
	EXPECT_EQ(0, migsim_state_size(self->src.uuid, &sa));
	EXPECT_EQ(0, migsim_state_size(self->dst.uuid, &sb));
	EXPECT_EQ(sa, sb);
	return a == b ? 0 : -1;
}

/*
 * Stop the source (PRE_COPY -> PRE_COPY_P2P -> STOP_COPY) and read the rest
 * of the same fd; checksums are taken while it is stopped.
 */
static int stop_and_drain(struct __test_metadata *_metadata,
			  FIXTURE_DATA(precopy) *self, uint64_t *predicted,
			  uint64_t *read_bytes)
{
	int fd2 = -1;
	size_t before;

	EXPECT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY_P2P,
				      &fd2));
	EXPECT_EQ(0, vmig_vfio_stop_copy_size(self->src.dev, predicted));
	EXPECT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_STOP_COPY, &fd2));
	EXPECT_EQ(-1, fd2);
	before = self->stream.len;
	EXPECT_EQ(0, migsim_read_stream(self->fd, 65536, &self->stream));
	*read_bytes = self->stream.len - before;
	return 0;
}

TEST_F_TIMEOUT(precopy, info_counts_exactly_what_read_gives, 120)
{
	uint64_t init0, init, dirty, got, full;
	struct pollfd pfd;
	uint32_t flags;
	char buf[4096];
	ssize_t n;

	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY,
				      &self->fd));
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, vmig_precopy_info(self->fd, &init0, &dirty, &flags));
	full = migsim_stream_len(16 * MiB, MIGSIM_DEFAULT_CHUNK_SIZE);
	/* the first pass is everything but CONFIG and END */
	EXPECT_EQ(full - CONFIG_LEN - END_LEN, init0);
	EXPECT_EQ(0, dirty);
	EXPECT_EQ(0, flags);

	n = read(self->fd, buf, 1000);
	ASSERT_EQ(1000, n);
	ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty, &flags));
	EXPECT_EQ(init0 - 1000, init);

	ASSERT_EQ(0, read_until_pause(self->fd, 1 * MiB + 7, &self->stream,
				      &got));
	EXPECT_EQ(init0 - 1000, got);
	ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty, &flags));
	EXPECT_EQ(0, init);
	EXPECT_EQ(0, dirty);
	/* the temporary end of stream */
	n = read(self->fd, buf, sizeof(buf));
	EXPECT_EQ(-1, n);
	EXPECT_EQ(ENOMSG, errno);
	/* poll: nothing to read now */
	pfd.fd = self->fd;
	pfd.events = POLLIN;
	EXPECT_EQ(0, poll(&pfd, 1, 0));
}

TEST_F_TIMEOUT(precopy, dirty_chunks_reported_and_sent_again, 120)
{
	uint64_t init, dirty, got, pred, rest;
	uint32_t flags;
	unsigned int all, above;

	/* the first quarter of the chunks is hot */
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "hot_set", "250"));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY,
				      &self->fd));
	ASSERT_EQ(0, read_until_pause(self->fd, 1 * MiB, &self->stream, &got));
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "40M"));
	sleep_ms(300);
	ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty, &flags));
	EXPECT_EQ(0, init);
	EXPECT_LT(0, dirty);
	/* dirty bytes are whole chunk records of the hot set */
	EXPECT_EQ(0, dirty % (REC_LEN + MIGSIM_DEFAULT_CHUNK_SIZE));
	EXPECT_GE(4 * (REC_LEN + MIGSIM_DEFAULT_CHUNK_SIZE), dirty);

	ASSERT_EQ(0, stop_and_drain(_metadata, self, &pred, &rest));
	EXPECT_EQ(pred, rest);
	/* only hot chunks were sent again */
	count_chunks(&self->stream, HDR_LEN, 0, &all, &above);
	EXPECT_LT(16, all);
	count_chunks(&self->stream, got, 4 * MiB, &all, &above);
	EXPECT_LT(0, all);
	EXPECT_EQ(0, above);
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "0"));
	finish_and_compare(_metadata, self);
}

TEST_F_TIMEOUT(precopy, converges_below_read_rate, 120)
{
	uint64_t init, dirty, got;
	uint32_t flags;
	int round, converged = -1;

	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "4M"));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY,
				      &self->fd));
	for (round = 1; round <= 20 && converged < 0; round++) {
		ASSERT_EQ(0, read_discard(self->fd, 256 * MiB, &got));
		sleep_ms(100);
		ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty,
					       &flags));
		TH_LOG("round %d: initial %llu dirty %llu", round,
		       (unsigned long long)init, (unsigned long long)dirty);
		/* 4 MiB/s for 100 ms dirties about one 1 MiB chunk */
		if (!init && dirty <= 2 * (MIGSIM_DEFAULT_CHUNK_SIZE + REC_LEN))
			converged = round;
	}
	EXPECT_LT(0, converged);
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "0"));
}

TEST_F_TIMEOUT(precopy, does_not_converge_above_read_rate, 120)
{
	uint64_t init, dirty, got, min_dirty = UINT64_MAX;
	uint32_t flags;
	int round;

	/* the whole 16 MiB state, dirtied four times a second over */
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "4G"));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY,
				      &self->fd));
	for (round = 1; round <= 5; round++) {
		/* a pass's worth: the stream never pauses at this rate */
		ASSERT_EQ(0, read_discard(self->fd, 16 * MiB, &got));
		sleep_ms(100);
		ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty,
					       &flags));
		TH_LOG("round %d: initial %llu dirty %llu", round,
		       (unsigned long long)init, (unsigned long long)dirty);
		if (dirty < min_dirty)
			min_dirty = dirty;
	}
	/* every round ends with (nearly) the whole state dirty again */
	EXPECT_LT(8 * MiB, min_dirty);
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "0"));
}

TEST_F_TIMEOUT(precopy, nonprecopy_tail_only_in_stop_copy, 120)
{
	uint64_t got, pred, rest, init, dirty;
	uint32_t flags;
	unsigned int all, above;
	size_t pre_len;

	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "nonprecopy_size",
				       "3M"));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY,
				      &self->fd));
	ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty, &flags));
	EXPECT_EQ(HDR_LEN + 13 * (REC_LEN + MIGSIM_DEFAULT_CHUNK_SIZE), init);
	ASSERT_EQ(0, read_until_pause(self->fd, 1 * MiB, &self->stream, &got));
	pre_len = self->stream.len;
	count_chunks(&self->stream, HDR_LEN, 13 * MiB, &all, &above);
	EXPECT_EQ(13, all);
	EXPECT_EQ(0, above);
	ASSERT_EQ(0, stop_and_drain(_metadata, self, &pred, &rest));
	EXPECT_EQ(pred, rest);
	EXPECT_EQ(3 * (REC_LEN + MIGSIM_DEFAULT_CHUNK_SIZE) + CONFIG_LEN +
		  END_LEN, rest);
	count_chunks(&self->stream, pre_len, 13 * MiB, &all, &above);
	EXPECT_EQ(3, all);
	EXPECT_EQ(3, above);
	finish_and_compare(_metadata, self);
}

TEST_F_TIMEOUT(precopy, p2p_and_stopped_states_freeze_the_state, 120)
{
	static const enum vmig_dev_state frozen[] = {
		VMIG_STATE_RUNNING_P2P, VMIG_STATE_STOP,
	};
	uint64_t gen0, gen1, d0, d1;
	uint32_t c0, c1;
	unsigned int i;
	int fd = -1;

	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "64M"));
	for (i = 0; i < ARRAY_SIZE(frozen); i++) {
		ASSERT_EQ(0, vmig_vfio_set_state(self->src.dev, frozen[i],
						 NULL));
		sleep_ms(30);	/* let a tick in flight finish */
		ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c0));
		ASSERT_EQ(0, migsim_generation(self->src.uuid, &gen0));
		ASSERT_EQ(0, migsim_attr_u64(self->src.uuid, "bytes_dirtied",
					     &d0));
		sleep_ms(300);
		ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c1));
		ASSERT_EQ(0, migsim_generation(self->src.uuid, &gen1));
		ASSERT_EQ(0, migsim_attr_u64(self->src.uuid, "bytes_dirtied",
					     &d1));
		EXPECT_EQ(c0, c1);
		EXPECT_EQ(gen0, gen1);
		EXPECT_EQ(d0, d1);
	}
	/* PRE_COPY_P2P with a stream open */
	ASSERT_EQ(0, vmig_vfio_set_state(self->src.dev, VMIG_STATE_RUNNING,
					 NULL));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY, &fd));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY_P2P,
				      NULL));
	sleep_ms(30);
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c0));
	sleep_ms(300);
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c1));
	EXPECT_EQ(c0, c1);
	/* and RUNNING resumes the work */
	ASSERT_EQ(0, vmig_vfio_set_state(self->src.dev, VMIG_STATE_RUNNING,
					 NULL));
	sleep_ms(300);
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c1));
	EXPECT_NE(c0, c1);
	close(fd);
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "0"));
}

FIXTURE(resize) {
	struct migsim_inst src, dst;
	struct migsim_buf stream;
	int fd;
};

FIXTURE_VARIANT(resize) {
	bool opt_in;
};
FIXTURE_VARIANT_ADD(resize, without_opt_in) { .opt_in = false };
FIXTURE_VARIANT_ADD(resize, with_opt_in) { .opt_in = true };

FIXTURE_SETUP(resize)
{
	memset(&self->stream, 0, sizeof(self->stream));
	self->fd = -1;
	ASSERT_EQ(0, migsim_inst_create_open(&self->src, 8 * MiB));
	ASSERT_EQ(0, migsim_inst_create_open(&self->dst, 4 * KiB));
}

FIXTURE_TEARDOWN(resize)
{
	if (self->fd >= 0)
		close(self->fd);
	migsim_buf_free(&self->stream);
	migsim_inst_destroy(&self->src);
	migsim_inst_destroy(&self->dst);
}

TEST_F_TIMEOUT(resize, grow_and_shrink_during_pre_copy, 120)
{
	uint64_t init, dirty, got, pred, size;
	uint32_t flags, a, b;
	size_t before;
	int fd2 = -1;

	ASSERT_EQ(0, opt_in_v2(self->src.fd, true));	/* PROBE */
	if (variant->opt_in)
		ASSERT_EQ(0, opt_in_v2(self->src.fd, false));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY,
				      &self->fd));
	ASSERT_EQ(0, read_until_pause(self->fd, 1 * MiB, &self->stream, &got));

	/* grow by 5 MiB + 4 KiB: new chunks join the first pass */
	ASSERT_EQ(0, migsim_set_state_size(self->src.uuid,
				  13 * MiB + 4 * KiB));
	ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty, &flags));
	EXPECT_EQ(variant->opt_in ? VFIO_PRECOPY_INFO_REINIT : 0, flags);
	EXPECT_EQ(5 * (REC_LEN + MIGSIM_DEFAULT_CHUNK_SIZE) + REC_LEN +
		  4 * KiB, init);
	/* a RESIZE record is owed */
	EXPECT_EQ(REC_LEN, dirty);
	/* reported once */
	ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty, &flags));
	EXPECT_EQ(0, flags);
	before = self->stream.len;
	ASSERT_EQ(0, read_until_pause(self->fd, 1 * MiB, &self->stream, &got));
	EXPECT_EQ(init + dirty, self->stream.len - before);

	/* shrink to 6 MiB + 8 KiB: the edge chunk changes, the rest goes */
	ASSERT_EQ(0, migsim_set_state_size(self->src.uuid,
				  6 * MiB + 8 * KiB));
	ASSERT_EQ(0, vmig_precopy_info(self->fd, &init, &dirty, &flags));
	EXPECT_EQ(0, flags);
	EXPECT_EQ(0, init);
	/* RESIZE and the edge chunk sent again */
	EXPECT_EQ(2 * REC_LEN + 8 * KiB, dirty);
	ASSERT_EQ(0, read_until_pause(self->fd, 1 * MiB, &self->stream, &got));

	/* refused outside RUNNING and PRE_COPY */
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY_P2P,
				      &fd2));
	EXPECT_EQ(-EBUSY, migsim_set_state_size(self->src.uuid, 8 * MiB));
	ASSERT_EQ(0, vmig_vfio_stop_copy_size(self->src.dev, &pred));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_STOP_COPY, &fd2));
	before = self->stream.len;
	ASSERT_EQ(0, migsim_read_stream(self->fd, 65536, &self->stream));
	EXPECT_EQ(pred, self->stream.len - before);
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &a));
	ASSERT_EQ(0, migsim_load(&self->dst, self->stream.data,
				 self->stream.len, 4095));
	ASSERT_EQ(0, migsim_checksum(self->dst.uuid, &b));
	EXPECT_EQ(a, b);
	ASSERT_EQ(0, migsim_state_size(self->dst.uuid, &size));
	EXPECT_EQ(6 * MiB + 8 * KiB, size);
}

TEST_F_TIMEOUT(resize, shrink_frees_and_grow_refills, 120)
{
	uint32_t c0, c1;

	/* no stream open: the state comes back as it was, seed-derived */
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c0));
	ASSERT_EQ(0, migsim_set_state_size(self->src.uuid, 4 * KiB));
	ASSERT_EQ(0, migsim_set_state_size(self->src.uuid, 8 * MiB));
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &c1));
	EXPECT_EQ(c0, c1);
	EXPECT_EQ(-EINVAL, migsim_set_state_size(self->src.uuid, 5000));
	EXPECT_EQ(-EINVAL, migsim_set_state_size(self->src.uuid, 0));
}

/* MIG_DATA_SIZE against STOP_COPY reads, at several sizes and rates */
FIXTURE(data_size) {
	struct migsim_inst src;
};

FIXTURE_VARIANT(data_size) {
	const char *size, *rate;
};
FIXTURE_VARIANT_ADD(data_size, s4k_idle) { "4K", "0" };
FIXTURE_VARIANT_ADD(data_size, s4k_dirty) { "4K", "64M" };
FIXTURE_VARIANT_ADD(data_size, s3m4k_dirty) { "3076K", "32M" };
FIXTURE_VARIANT_ADD(data_size, s16m_idle) { "16M", "0" };
FIXTURE_VARIANT_ADD(data_size, s16m_dirty) { "16M", "32M" };
FIXTURE_VARIANT_ADD(data_size, s16m_fast) { "16M", "1G" };

FIXTURE_SETUP(data_size)
{
	ASSERT_EQ(0, migsim_inst_create(&self->src, 0));
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "state_size",
				       variant->size));
	ASSERT_EQ(0, migsim_inst_open(&self->src));
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate",
				       variant->rate));
}

FIXTURE_TEARDOWN(data_size)
{
	migsim_attr_write(self->src.uuid, "dirty_rate", "0");
	migsim_inst_destroy(&self->src);
}

TEST_F_TIMEOUT(data_size, equals_stop_copy_bytes, 120)
{
	uint64_t pred, got, size;
	int fd = -1;

	/* whole stream from STOP */
	ASSERT_EQ(0, vmig_vfio_set_state(self->src.dev, VMIG_STATE_STOP,
					 NULL));
	ASSERT_EQ(0, vmig_vfio_stop_copy_size(self->src.dev, &pred));
	ASSERT_EQ(0, migsim_state_size(self->src.uuid, &size));
	EXPECT_EQ(migsim_stream_len(size, MIGSIM_DEFAULT_CHUNK_SIZE), pred);
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_STOP_COPY, &fd));
	ASSERT_EQ(0, read_discard(fd, UINT64_MAX, &got) == -EPIPE ? 0 : -1);
	close(fd);
	EXPECT_EQ(pred, got);

	/* the rest of a precopy stream, the device dirtying until P2P */
	ASSERT_EQ(0, vmig_vfio_set_state(self->src.dev, VMIG_STATE_RUNNING,
					 NULL));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY, &fd));
	/* to the pause, or a bounded amount if the device outpaces us */
	ASSERT_EQ(0, read_discard(fd, 4 * size + 1 * MiB, &got));
	sleep_ms(50);
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY_P2P,
				      NULL));
	ASSERT_EQ(0, vmig_vfio_stop_copy_size(self->src.dev, &pred));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, read_discard(fd, UINT64_MAX, &got) == -EPIPE ? 0 : -1);
	EXPECT_EQ(pred, got);
	close(fd);
}

FIXTURE(big) {
	struct migsim_inst src, dst;
};

FIXTURE_SETUP(big)
{
	ASSERT_EQ(0, migsim_inst_create_open(&self->src, 1 * GiB));
	ASSERT_EQ(0, migsim_inst_create_open(&self->dst, 4 * KiB));
}

FIXTURE_TEARDOWN(big)
{
	migsim_inst_destroy(&self->src);
	migsim_inst_destroy(&self->dst);
}

/* The data fds are joined directly: no stream is buffered in memory. */
TEST_F_TIMEOUT(big, one_gib_with_hot_tenth_migrates, 600)
{
	uint64_t bytes, init, dirty, total = 0;
	int sfd = -1, dfd = -1, round;
	uint32_t flags, a, b;
	bool wfail;

	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "hot_set", "100"));
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "32M"));
	ASSERT_EQ(0, migsim_set_state(&self->dst, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, migsim_set_state(&self->dst, VMIG_STATE_RESUMING, &dfd));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY, &sfd));
	for (round = 0; round < 3; round++) {
		ASSERT_EQ(0, migsim_copy_stream(sfd, dfd, 4 * MiB, 1 * MiB,
						true, &bytes, &wfail));
		total += bytes;
		ASSERT_EQ(0, vmig_precopy_info(sfd, &init, &dirty, &flags));
		TH_LOG("precopy round %d: %llu bytes, then dirty %llu",
		       round, (unsigned long long)bytes,
		       (unsigned long long)dirty);
		EXPECT_EQ(0, init);
		/* at most the hot tenth (103 chunks) is ever dirty */
		EXPECT_GE(103 * (REC_LEN + MIGSIM_DEFAULT_CHUNK_SIZE), dirty);
	}
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_PRE_COPY_P2P,
				      NULL));
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, migsim_copy_stream(sfd, dfd, 4 * MiB, 1 * MiB, false,
					&bytes, &wfail));
	total += bytes;
	/* the stop-copy part is the hot set at most, not the whole state */
	EXPECT_GT(200 * MiB, bytes);
	ASSERT_EQ(0, migsim_checksum(self->src.uuid, &a));
	close(sfd);
	close(dfd);
	ASSERT_EQ(0, migsim_set_state(&self->dst, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, migsim_checksum(self->dst.uuid, &b));
	EXPECT_EQ(a, b);
	TH_LOG("%llu stream bytes, stop-copy part %llu",
	       (unsigned long long)total, (unsigned long long)bytes);
	ASSERT_EQ(0, migsim_set_state(&self->src, VMIG_STATE_RUNNING, NULL));
	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "0"));
}

TEST_HARNESS_MAIN

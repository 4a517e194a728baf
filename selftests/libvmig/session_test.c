// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Migration sessions between a source and a destination with stand-in
 * devices (standin.c): success over 1 and 4 channels, TCP and UNIX, with
 * and without precopy, P2P, compression; switchover-ack; and failures on
 * either side, including a peer killed mid-transfer: the source's devices
 * end RUNNING with their state, the destination's are reset, and both say
 * which device or channel failed.  And the switchover's backlog: precopy
 * data still on its way when the devices stop is bounded, so that the
 * downtime is the stop-copy data's.  And a destination that checks every
 * packet's CRC, against a hand-made source that corrupts one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testnet.h"
#include "standin.h"
#include "transport.h"
#include "vmig.h"

#define NDEV		4
#define DEV_SIZE	(3U << 20)
#define PRECOPY_SIZE	(1U << 20)

static const char secret[] = "0123456789abcdef0123456789abcdef";

FIXTURE(mig) {
	int lfd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char sock_path[108];
	struct standin src[NDEV], dst[NDEV];
	uint8_t *orig[NDEV];
	struct vmig_session_config scfg, dcfg;
	struct vmig_session *s, *d;
	int src_ret, dst_ret;
	struct vmig_session_error serr, derr;
	struct vmig_session_stats sst, dst_st;
	/* switchover_waits_for_initial_data */
	bool check_ack;
	int ack_violations;
	int switchover_ret;
	/* the backlog at switchover */
	const struct vmig_device_ops *src_ops;
	bool stop_measured;
	uint64_t stop_read, stop_written, stop_loaded;
};

static void listen_tcp(FIXTURE_DATA(mig) *self)
{
	struct sockaddr_in *in = (void *)&self->addr;

	self->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	self->addrlen = sizeof(*in);
	bind(self->lfd, (void *)in, self->addrlen);
	listen(self->lfd, 16);
	getsockname(self->lfd, (void *)in, &self->addrlen);
}

static void listen_unix(FIXTURE_DATA(mig) *self)
{
	struct sockaddr_un *un = (void *)&self->addr;

	self->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	snprintf(self->sock_path, sizeof(self->sock_path),
		 "/tmp/vmig-session-%d.sock", getpid());
	unlink(self->sock_path);
	snprintf(un->sun_path, sizeof(un->sun_path), "%s", self->sock_path);
	self->addrlen = sizeof(*un);
	bind(self->lfd, (void *)un, self->addrlen);
	listen(self->lfd, 16);
}

FIXTURE_SETUP(mig)
{
	char name[16];
	int i;

	memset(self, 0, sizeof(*self));
	self->lfd = -1;
	for (i = 0; i < NDEV; i++) {
		snprintf(name, sizeof(name), "dev%d", i);
		standin_init_source(&self->src[i], name, DEV_SIZE + i * 4099,
				    PRECOPY_SIZE, i + 1, false);
		standin_init_dest(&self->dst[i], name);
		self->orig[i] = malloc(self->src[i].size);
		memcpy(self->orig[i], self->src[i].data, self->src[i].size);
	}
	vmig_session_config_init(&self->scfg);
	memcpy(self->scfg.session_id, "test-session-id", 16);
	self->scfg.secret = secret;
	self->scfg.secret_len = strlen(secret);
	self->scfg.chunk_size = 256 << 10;
	self->scfg.mem_limit = 4 << 20;
	self->dcfg = self->scfg;
}

FIXTURE_TEARDOWN(mig)
{
	int i;

	vmig_session_destroy(self->s);
	vmig_session_destroy(self->d);
	for (i = 0; i < NDEV; i++) {
		standin_release(&self->src[i]);
		standin_release(&self->dst[i]);
		free(self->orig[i]);
	}
	if (self->lfd >= 0)
		close(self->lfd);
	if (self->sock_path[0])
		unlink(self->sock_path);
}

static int add_devices_ops(struct vmig_session *s, struct standin *devs,
			   const struct vmig_device_ops *ops)
{
	int i, ret;

	for (i = 0; i < NDEV; i++) {
		ret = vmig_session_add_device(s, devs[i].name, devs[i].mig_flags,
					      ops, &devs[i]);
		if (ret != i)
			return ret < 0 ? ret : -EINVAL;
	}
	return 0;
}

static int add_devices(struct vmig_session *s, struct standin *devs)
{
	return add_devices_ops(s, devs, &standin_ops);
}

static int run_destination(FIXTURE_DATA(mig) *self)
{
	int ret = 0;

	/* A test may have created it already, devices and all. */
	if (!self->d) {
		ret = vmig_session_create(VMIG_ROLE_DESTINATION, &self->dcfg,
					  &self->d);
		if (!ret)
			ret = add_devices(self->d, self->dst);
	}
	if (!ret)
		ret = vmig_session_accept(self->d, self->lfd);
	if (!ret)
		ret = vmig_session_run_destination(self->d);
	vmig_session_get_error(self->d, &self->derr);
	vmig_session_get_stats(self->d, &self->dst_st);
	return ret;
}

static int run_source(FIXTURE_DATA(mig) *self)
{
	int ret;

	ret = vmig_session_create(VMIG_ROLE_SOURCE, &self->scfg, &self->s);
	if (!ret)
		ret = add_devices_ops(self->s, self->src, self->src_ops ?
				      self->src_ops : &standin_ops);
	if (!ret)
		ret = vmig_session_connect(self->s, (void *)&self->addr,
					   self->addrlen);
	if (!ret)
		ret = vmig_session_run_source(self->s);
	vmig_session_get_error(self->s, &self->serr);
	vmig_session_get_stats(self->s, &self->sst);
	return ret;
}

static void *dest_thread(void *arg)
{
	FIXTURE_DATA(mig) *self = arg;

	self->dst_ret = run_destination(self);
	return NULL;
}

static void migrate(FIXTURE_DATA(mig) *self)
{
	pthread_t t;

	pthread_create(&t, NULL, dest_thread, self);
	self->src_ret = run_source(self);
	pthread_join(t, NULL);
}

static bool source_intact(FIXTURE_DATA(mig) *self)
{
	int i;

	for (i = 0; i < NDEV; i++)
		if (standin_state(&self->src[i]) != VMIG_STATE_RUNNING ||
		    memcmp(self->orig[i], self->src[i].data, self->src[i].size))
			return false;
	return true;
}

static void expect_migrated(struct __test_metadata *_metadata,
			    FIXTURE_DATA(mig) *self)
{
	uint64_t total = 0;
	int i;

	ASSERT_EQ(0, self->dst_ret) TH_LOG("destination: %s", self->derr.msg);
	ASSERT_EQ(0, self->src_ret) TH_LOG("source: %s", self->serr.msg);
	for (i = 0; i < NDEV; i++) {
		EXPECT_EQ(VMIG_STATE_STOP, standin_state(&self->src[i]));
		EXPECT_EQ(VMIG_STATE_STOP, standin_state(&self->dst[i]));
		ASSERT_EQ(self->src[i].size, self->dst[i].loaded_size);
		EXPECT_EQ(0, memcmp(self->src[i].data, self->dst[i].loaded,
				    self->src[i].size)) TH_LOG("device %d", i);
		EXPECT_TRUE(self->src[i].checked_arcs_ok);
		EXPECT_TRUE(self->dst[i].checked_arcs_ok);
		total += self->src[i].size;
	}
	EXPECT_EQ(total, self->sst.device_bytes);
	EXPECT_EQ(total, self->dst_st.device_bytes);
	EXPECT_EQ(self->sst.wire_bytes, self->dst_st.wire_bytes);
	EXPECT_EQ(self->sst.packets, self->dst_st.packets);
	EXPECT_LE(self->sst.peak_mem, self->sst.mem_limit);
	EXPECT_LE(self->dst_st.peak_mem, self->dst_st.mem_limit);
	EXPECT_EQ(0, self->serr.err);
	EXPECT_EQ(0, self->derr.err);
	/* Destination devices run on request. */
	ASSERT_EQ(0, vmig_session_resume(self->d));
	for (i = 0; i < NDEV; i++)
		EXPECT_EQ(VMIG_STATE_RUNNING, standin_state(&self->dst[i]));
}

TEST_F(mig, four_devices_over_one_tcp_channel)
{
	listen_tcp(self);
	self->scfg.channels = 1;
	migrate(self);
	expect_migrated(_metadata, self);
	EXPECT_EQ(1U, self->sst.channels);
	EXPECT_EQ(1U, self->dst_st.channels);
	EXPECT_EQ((uint64_t)NDEV * PRECOPY_SIZE, self->sst.precopy_bytes);
}

TEST_F(mig, four_devices_over_four_unix_channels)
{
	listen_unix(self);
	self->scfg.channels = 4;
	migrate(self);
	expect_migrated(_metadata, self);
	EXPECT_EQ(4U, self->dst_st.channels);
}

TEST_F(mig, four_devices_over_four_tcp_channels_in_small_memory)
{
	listen_tcp(self);
	self->scfg.channels = 4;
	self->scfg.chunk_size = 64 << 10;
	self->scfg.mem_limit = 4 * (64 << 10) + 4 * 32;
	self->dcfg.mem_limit = 3 * (64 << 10);
	migrate(self);
	expect_migrated(_metadata, self);
	EXPECT_LE(self->dst_st.peak_mem, 3U * (64 << 10));
}

TEST_F(mig, compressed_packets)
{
	int i;

	for (i = 0; i < NDEV; i++) {
		standin_release(&self->src[i]);
		standin_init_source(&self->src[i], self->dst[i].name, DEV_SIZE,
				    PRECOPY_SIZE, i, true);
		memcpy(self->orig[i], self->src[i].data, DEV_SIZE);
	}
	listen_tcp(self);
	self->scfg.channels = 2;
	self->scfg.zstd_level = 1;
	migrate(self);
	expect_migrated(_metadata, self);
	EXPECT_LT(self->sst.wire_bytes * 10, self->sst.device_bytes);
}

TEST_F(mig, devices_without_precopy)
{
	int i;

	for (i = 0; i < NDEV; i++)
		self->src[i].mig_flags = self->dst[i].mig_flags =
			VMIG_MIG_STOP_COPY | VMIG_MIG_P2P;
	listen_tcp(self);
	migrate(self);
	expect_migrated(_metadata, self);
	EXPECT_EQ(0U, self->sst.precopy_bytes);
}

TEST_F(mig, precopy_turned_off)
{
	listen_tcp(self);
	self->scfg.precopy = false;
	migrate(self);
	expect_migrated(_metadata, self);
	EXPECT_EQ(0U, self->sst.precopy_bytes);
}

TEST_F(mig, devices_without_p2p)
{
	int i;

	for (i = 0; i < NDEV; i++)
		self->src[i].mig_flags = self->dst[i].mig_flags =
			VMIG_MIG_STOP_COPY | VMIG_MIG_PRE_COPY;
	listen_tcp(self);
	migrate(self);
	expect_migrated(_metadata, self);
}

/* Called on the source right before its devices stop. */
static int check_initial_loaded(void *opaque)
{
	FIXTURE_DATA(mig) *self = opaque;
	int i;

	for (i = 0; i < NDEV; i++) {
		if (standin_received(&self->dst[i]) < PRECOPY_SIZE)
			self->ack_violations++;
		if (standin_state(&self->src[i]) != VMIG_STATE_PRE_COPY)
			self->ack_violations++;
	}
	self->check_ack = true;
	return self->switchover_ret;
}

TEST_F(mig, switchover_waits_for_initial_data)
{
	listen_tcp(self);
	self->scfg.channels = 2;
	self->scfg.switchover = check_initial_loaded;
	self->scfg.opaque = self;
	migrate(self);
	expect_migrated(_metadata, self);
	EXPECT_TRUE(self->check_ack);
	EXPECT_EQ(0, self->ack_violations);
}

TEST_F(mig, switchover_refused_by_the_caller)
{
	listen_tcp(self);
	self->scfg.switchover = check_initial_loaded;
	self->scfg.opaque = self;
	self->switchover_ret = -ECANCELED;
	migrate(self);
	EXPECT_EQ(-ECANCELED, self->src_ret);
	EXPECT_FALSE(self->serr.remote);
	EXPECT_EQ(-ECANCELED, self->dst_ret);
	EXPECT_TRUE(self->derr.remote);
	EXPECT_TRUE(source_intact(self));
	for (int i = 0; i < NDEV; i++)
		EXPECT_EQ(1, self->dst[i].resets);
}

TEST_F(mig, destination_load_failure_rolls_both_back)
{
	int i;

	listen_tcp(self);
	self->scfg.channels = 4;
	self->dst[2].reject_load = true;
	migrate(self);
	EXPECT_EQ(-EINVAL, self->dst_ret);
	EXPECT_EQ(2, self->derr.device);
	EXPECT_FALSE(self->derr.remote);
	EXPECT_NE(NULL, strstr(self->derr.msg, "dev2")) TH_LOG("%s", self->derr.msg);
	EXPECT_EQ(-EINVAL, self->src_ret);
	EXPECT_TRUE(self->serr.remote);
	EXPECT_EQ(2, self->serr.device);
	EXPECT_NE(NULL, strstr(self->serr.msg, "dev2")) TH_LOG("%s", self->serr.msg);
	EXPECT_TRUE(source_intact(self));
	for (i = 0; i < NDEV; i++) {
		EXPECT_EQ(1, self->dst[i].resets);
		EXPECT_EQ(VMIG_STATE_RUNNING, standin_state(&self->dst[i]));
	}
}

TEST_F(mig, source_device_failure_rolls_both_back)
{
	int i;

	listen_tcp(self);
	self->scfg.channels = 2;
	self->src[1].fail_to = VMIG_STATE_STOP_COPY;
	migrate(self);
	EXPECT_EQ(-EIO, self->src_ret);
	EXPECT_EQ(1, self->serr.device);
	EXPECT_NE(NULL, strstr(self->serr.msg, "STOP_COPY")) TH_LOG("%s", self->serr.msg);
	EXPECT_EQ(-EIO, self->dst_ret);
	EXPECT_TRUE(self->derr.remote);
	EXPECT_EQ(1, self->derr.device);
	EXPECT_TRUE(source_intact(self));
	for (i = 0; i < NDEV; i++)
		EXPECT_EQ(1, self->dst[i].resets);
}

TEST_F(mig, mismatched_devices_are_refused_at_connect)
{
	listen_tcp(self);
	snprintf(self->dst[3].name, sizeof(self->dst[3].name), "other");
	migrate(self);
	EXPECT_EQ(-ENODEV, self->dst_ret);
	EXPECT_NE(NULL, strstr(self->derr.msg, "other"));
	EXPECT_EQ(-ENODEV, self->src_ret);
	EXPECT_TRUE(self->serr.remote);
	EXPECT_TRUE(source_intact(self));
	EXPECT_EQ(0U, self->src[0].arcs);
	EXPECT_EQ(0U, self->dst[0].arcs);
}

static void abort_dest(struct standin *d)
{
	vmig_session_abort(d->trigger_arg);
}

TEST_F(mig, abort_from_another_thread)
{
	pthread_t t;

	listen_tcp(self);
	self->scfg.channels = 2;
	self->dcfg.mem_limit = 1 << 20;
	/* Device 0's data goes through a pipe; past 2 MiB, abort. */
	self->dst[0].use_pipe = true;
	self->dst[0].trigger_bytes = 2 << 20;
	self->dst[0].trigger = abort_dest;
	ASSERT_EQ(0, vmig_session_create(VMIG_ROLE_DESTINATION, &self->dcfg,
					 &self->d));
	self->dst[0].trigger_arg = self->d;
	ASSERT_EQ(0, add_devices(self->d, self->dst));
	pthread_create(&t, NULL, dest_thread, self);
	self->src_ret = run_source(self);
	pthread_join(t, NULL);
	EXPECT_EQ(-ECANCELED, self->dst_ret);
	EXPECT_EQ(-ECANCELED, self->src_ret);
	EXPECT_TRUE(self->serr.remote);
	EXPECT_TRUE(source_intact(self));
	EXPECT_EQ(1, self->dst[0].resets);
}

/* ------------------------------------------ the backlog at switchover */

/*
 * Devices that keep producing precopy data after their initial data (as
 * dirtying devices do) into a destination that writes their data fds more
 * slowly than the source reads them: when the source's devices run dry,
 * much of their precopy data is still queued (send queue, sockets,
 * reassembly, pipes).  Whatever of it is not written at the destination
 * when the devices stop is downtime.
 */
#define BL_INITIAL	(1U << 20)
#define BL_PRECOPY	(6U << 20)
#define BL_SIZE		(7U << 20)
#define BL_RATE		(40ULL << 20)	/* bytes/s per destination device */
#define BL_MAX_QUEUED	(1ULL << 20)

/* The first source device to leave PRE_COPY: what is still on its way? */
static void measure_at_stop(struct standin *sd, enum vmig_dev_state from,
			    enum vmig_dev_state to)
{
	FIXTURE_DATA(mig) *self = sd->on_state_arg;
	struct vmig_session_dev_stats ds;
	int i;

	if (self->stop_measured || from != VMIG_STATE_PRE_COPY ||
	    (to != VMIG_STATE_PRE_COPY_P2P && to != VMIG_STATE_STOP_COPY))
		return;
	self->stop_measured = true;
	for (i = 0; i < NDEV; i++) {
		vmig_session_get_device_stats(self->s, i, &ds);
		self->stop_read += ds.precopy_bytes;
		vmig_session_get_device_stats(self->d, i, &ds);
		self->stop_written += ds.device_bytes;
		/* What the device itself took from its pipe. */
		self->stop_loaded += standin_received(&self->dst[i]);
	}
}

static void backlog_migrate(struct __test_metadata *_metadata,
			    FIXTURE_DATA(mig) *self, uint64_t max_queued,
			    bool never_clean)
{
	uint64_t stopcopy = 0;
	pthread_t t;
	int i;

	for (i = 0; i < NDEV; i++) {
		standin_release(&self->src[i]);
		standin_init_source(&self->src[i], self->dst[i].name, BL_SIZE,
				    BL_PRECOPY, i + 7, false);
		self->src[i].initial_size = BL_INITIAL;
		self->src[i].never_clean = never_clean;
		self->src[i].on_state = measure_at_stop;
		self->src[i].on_state_arg = self;
		free(self->orig[i]);
		self->orig[i] = malloc(BL_SIZE);
		memcpy(self->orig[i], self->src[i].data, BL_SIZE);
		self->dst[i].use_pipe = true;
		self->dst[i].pipe_rate = BL_RATE;
		stopcopy += BL_SIZE - BL_PRECOPY;
	}
	self->src_ops = &standin_ops_precopy_info;
	listen_tcp(self);
	self->scfg.channels = 4;
	self->scfg.switchover_max_queued = max_queued;
	/* Created here: the source's measure reads its device stats. */
	ASSERT_EQ(0, vmig_session_create(VMIG_ROLE_DESTINATION, &self->dcfg,
					 &self->d));
	ASSERT_EQ(0, add_devices(self->d, self->dst));
	pthread_create(&t, NULL, dest_thread, self);
	self->src_ret = run_source(self);
	pthread_join(t, NULL);
	expect_migrated(_metadata, self);
	ASSERT_TRUE(self->stop_measured);
	/* At precopy_max_ms the readers may not have read it all. */
	if (!never_clean)
		EXPECT_EQ((uint64_t)NDEV * BL_PRECOPY, self->stop_read);
	TH_LOG("bound %llu: at the stop %llu bytes read not yet written at the destination (%llu not yet taken by its devices, session says %llu); downtime %.1f ms for %llu stop-copy bytes (%.1f ms at the destination's %llu MiB/s)",
	       max_queued == UINT64_MAX ? 0ULL : (unsigned long long)max_queued,
	       (unsigned long long)(self->stop_read - self->stop_written),
	       (unsigned long long)(self->stop_read - self->stop_loaded),
	       (unsigned long long)self->sst.switchover_queued,
	       self->sst.downtime_ns / 1e6, (unsigned long long)stopcopy,
	       stopcopy * 1e3 / (NDEV * BL_RATE),
	       (unsigned long long)(NDEV * BL_RATE >> 20));
}

static void expect_backlog_bounded(struct __test_metadata *_metadata,
				   FIXTURE_DATA(mig) *self)
{
	int pipe_size = 0, i;

	/* As the destination's writes show, not only as the source thinks. */
	EXPECT_LE(self->stop_read - self->stop_written, BL_MAX_QUEUED);
	EXPECT_LE(self->sst.switchover_queued, BL_MAX_QUEUED);
	/* Written, but maybe still in the pipe the device has not read. */
	for (i = 0; i < NDEV; i++)
		pipe_size += self->dst[i].pipe_size;
	EXPECT_LE(self->stop_read - self->stop_loaded,
		  BL_MAX_QUEUED + pipe_size);
}

TEST_F(mig, switchover_waits_for_queued_precopy_data)
{
	backlog_migrate(_metadata, self, BL_MAX_QUEUED, false);
	expect_backlog_bounded(_metadata, self);
}

/*
 * Devices that never report themselves clean: the switchover comes at
 * precopy_max_ms, with a large backlog; the readers stop and the source
 * still waits for it to drain.
 */
TEST_F(mig, switchover_at_precopy_max_ms_drains_the_backlog_first)
{
	self->scfg.precopy_max_ms = 20;
	backlog_migrate(_metadata, self, BL_MAX_QUEUED, true);
	expect_backlog_bounded(_metadata, self);
}

/* The same without the bound (as before it): the backlog is downtime. */
TEST_F(mig, switchover_without_a_bound_carries_the_backlog)
{
	backlog_migrate(_metadata, self, UINT64_MAX, false);
	/* Else the test above proves nothing. */
	EXPECT_LT(4 * BL_MAX_QUEUED, self->stop_read - self->stop_written);
}

/* ------------------------------------------------- a peer dies mid-way */

static void die(struct standin *d)
{
	(void)d;
	raise(SIGKILL);
}

TEST_F(mig, killed_destination_leaves_source_running)
{
	int status;
	pid_t pid;

	listen_tcp(self);
	self->scfg.channels = 4;
	self->dcfg.mem_limit = 1 << 20;
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* Destination: killed once 1 MiB of device 0 arrived. */
		self->dst[0].use_pipe = true;
		self->dst[0].trigger_bytes = 1 << 20;
		self->dst[0].trigger = die;
		run_destination(self);
		_exit(0);
	}
	close(self->lfd);
	self->lfd = -1;
	self->src_ret = run_source(self);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	EXPECT_GT(0, self->src_ret);
	EXPECT_FALSE(self->serr.remote);
	/* A channel failed: the main one or a data one. */
	EXPECT_LE(0, self->serr.channel) TH_LOG("%s", self->serr.msg);
	EXPECT_NE(0, self->serr.msg[0]);
	TH_LOG("source reported: %s", self->serr.msg);
	EXPECT_TRUE(source_intact(self));
}

static int die_at_switchover(void *opaque)
{
	(void)opaque;
	raise(SIGKILL);
	return 0;
}

TEST_F(mig, killed_source_resets_destination)
{
	int status, i;
	pid_t pid;

	listen_tcp(self);
	self->scfg.channels = 2;
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* Source: dies after precopy, as its devices would stop. */
		close(self->lfd);
		self->scfg.switchover = die_at_switchover;
		run_source(self);
		_exit(0);
	}
	self->dst_ret = run_destination(self);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	EXPECT_GT(0, self->dst_ret);
	/* A channel closed, or a device's stream ended short. */
	EXPECT_TRUE(self->derr.channel >= 0 || self->derr.device >= 0)
		TH_LOG("%s", self->derr.msg);
	EXPECT_NE(0, self->derr.msg[0]);
	TH_LOG("destination reported: %s", self->derr.msg);
	for (i = 0; i < NDEV; i++) {
		EXPECT_EQ(1, self->dst[i].resets);
		EXPECT_EQ(VMIG_STATE_RUNNING, standin_state(&self->dst[i]));
	}
}

static void partition(struct standin *d)
{
	(void)d;
	lo_set_up(false);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/*
 * A network partition mid-transfer (loopback taken down in a network
 * namespace of the test's own: no FIN, no reset, every packet lost): both
 * sides fail within a few timeouts, not after TCP's minutes of retries,
 * the source's devices run on with their state, the destination's are
 * reset.
 */
TEST_F(mig, partition_fails_both_sides_in_bounded_time)
{
	uint64_t t0, ms;
	pthread_t t;
	int ret, i;

	ret = netns_private();
	if (ret)
		SKIP(return, "no network namespace of our own: %s",
		     strerror(-ret));
	listen_tcp(self);
	self->scfg.channels = 4;
	self->scfg.timeout_ms = 2000;
	self->dcfg.timeout_ms = 2000;
	self->dcfg.mem_limit = 1 << 20;
	/* Partitioned once 1 MiB of device 0 arrived. */
	self->dst[0].use_pipe = true;
	self->dst[0].trigger_bytes = 1 << 20;
	self->dst[0].trigger = partition;
	t0 = mono_ms();
	pthread_create(&t, NULL, dest_thread, self);
	self->src_ret = run_source(self);
	pthread_join(t, NULL);
	ms = mono_ms() - t0;
	TH_LOG("source %d: %s", self->src_ret, self->serr.msg);
	TH_LOG("destination %d: %s", self->dst_ret, self->derr.msg);
	TH_LOG("both ended %llu ms after the start",
	       (unsigned long long)ms);
	EXPECT_GT(0, self->src_ret);
	EXPECT_GT(0, self->dst_ret);
	EXPECT_GT(4 * 2000, ms);
	EXPECT_TRUE(source_intact(self));
	for (i = 0; i < NDEV; i++) {
		EXPECT_EQ(1, self->dst[i].resets);
		EXPECT_EQ(VMIG_STATE_RUNNING, standin_state(&self->dst[i]));
	}
}

/*
 * A hand-made source: CONFIG on the main channel, then one packet on the
 * data channel whose payload is corrupted after sealing, past the first
 * pieces the destination receives and checks (so that the CRC chained
 * over several pieces is what catches it).
 */
TEST_F(mig, corrupted_packet_is_refused_by_its_crc)
{
	const uint32_t chunk = 1 << 20, len = 700 << 10;
	struct vmig_chan_auth auth = {
		.secret = (const uint8_t *)secret,
		.secret_len = strlen(secret),
		.timeout_ms = 5000,
	};
	struct vmig_chan_id id = { .kind = VMIG_CHAN_MAIN, .count = 1 };
	uint8_t cfg[16 + NDEV * (4 + VMIG_DEVICE_NAME_MAX)] = { 0 };
	uint8_t msg[8], hdr[VMIG_PKT_HDR_LEN], *payload;
	struct vmig_pkt_hdr h = { .dev_id = 1, .len = len, .raw_len = len };
	int mfd, dfd, i;
	pthread_t t;

	listen_tcp(self);
	memcpy(auth.session_id, self->scfg.session_id, VMIG_SESSION_ID_LEN);
	memcpy(id.session_id, self->scfg.session_id, VMIG_SESSION_ID_LEN);
	pthread_create(&t, NULL, dest_thread, self);

	mfd = vmig_chan_connect((void *)&self->addr, self->addrlen, &auth, &id);
	ASSERT_LE(0, mfd);
	id.kind = VMIG_CHAN_DEVSTATE;
	dfd = vmig_chan_connect((void *)&self->addr, self->addrlen, &auth, &id);
	ASSERT_LE(0, dfd);

	put32(msg, 1);				/* CONFIG */
	put32(msg + 4, sizeof(cfg));
	put32(cfg, NDEV);
	put32(cfg + 4, 1);			/* channels */
	put32(cfg + 8, chunk);
	for (i = 0; i < NDEV; i++) {
		uint8_t *p = cfg + 16 + i * (4 + VMIG_DEVICE_NAME_MAX);

		put32(p, self->src[i].mig_flags);
		memcpy(p + 4, self->src[i].name, strlen(self->src[i].name));
	}
	ASSERT_EQ(0, vmig_send_all(mfd, msg, sizeof(msg)));
	ASSERT_EQ(0, vmig_send_all(mfd, cfg, sizeof(cfg)));
	ASSERT_EQ(8, vmig_recv_all(mfd, msg, sizeof(msg)));
	ASSERT_EQ(2U, get32(msg));		/* CONFIG_OK */

	payload = malloc(len);
	ASSERT_NE(NULL, payload);
	memcpy(payload, self->src[1].data, len);
	vmig_pkt_seal(&h, payload, hdr);
	payload[len - 1000] ^= 0x40;
	ASSERT_EQ(0, vmig_send_all(dfd, hdr, sizeof(hdr)));
	/* The destination may stop reading once it has seen enough. */
	vmig_send_all(dfd, payload, len);
	pthread_join(t, NULL);
	free(payload);
	close(dfd);
	close(mfd);

	EXPECT_EQ(-EBADMSG, self->dst_ret) TH_LOG("%s", self->derr.msg);
	EXPECT_EQ(1, self->derr.device);
	EXPECT_EQ(1, self->derr.channel);
	EXPECT_NE(NULL, strstr(self->derr.msg, "CRC mismatch"))
		TH_LOG("%s", self->derr.msg);
	for (i = 0; i < NDEV; i++) {
		EXPECT_EQ(1, self->dst[i].resets);
		EXPECT_EQ(VMIG_STATE_RUNNING, standin_state(&self->dst[i]));
	}
}

TEST_HARNESS_MAIN

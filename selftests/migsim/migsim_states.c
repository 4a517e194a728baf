// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: the VFIO migration state machine.  From each of the seven
 * states, one VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET reaches every other
 * state the vfio core allows (the driver steps through the intermediate
 * arcs), returns a data fd exactly when the last arc opens a data session,
 * and refuses targets that are not states.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

#define ST_ERROR	VMIG_STATE_ERROR
#define ST_STOP		VMIG_STATE_STOP
#define ST_RUNNING	VMIG_STATE_RUNNING
#define ST_STOP_COPY	VMIG_STATE_STOP_COPY
#define ST_RESUMING	VMIG_STATE_RESUMING
#define ST_RUNNING_P2P	VMIG_STATE_RUNNING_P2P
#define ST_PRE_COPY	VMIG_STATE_PRE_COPY
#define ST_PRE_COPY_P2P	VMIG_STATE_PRE_COPY_P2P

static const enum vmig_dev_state all_states[] = {
	ST_STOP, ST_RUNNING, ST_STOP_COPY, ST_RESUMING, ST_RUNNING_P2P,
	ST_PRE_COPY, ST_PRE_COPY_P2P,
};

/*
 * The next arc from a state towards a target: vfio_mig_get_next_state()'s
 * table in the 6.12 vfio core, for a device with STOP_COPY, P2P and
 * PRE_COPY (so no arc is skipped).  ERROR: the target is refused.
 */
static const uint8_t next_arc[VMIG_STATE_NR][VMIG_STATE_NR] = {
	[ST_STOP] = {
		[ST_STOP] = ST_STOP, [ST_RUNNING] = ST_RUNNING_P2P,
		[ST_PRE_COPY] = ST_RUNNING_P2P,
		[ST_PRE_COPY_P2P] = ST_RUNNING_P2P,
		[ST_STOP_COPY] = ST_STOP_COPY, [ST_RESUMING] = ST_RESUMING,
		[ST_RUNNING_P2P] = ST_RUNNING_P2P,
	},
	[ST_RUNNING] = {
		[ST_STOP] = ST_RUNNING_P2P, [ST_RUNNING] = ST_RUNNING,
		[ST_PRE_COPY] = ST_PRE_COPY,
		[ST_PRE_COPY_P2P] = ST_RUNNING_P2P,
		[ST_STOP_COPY] = ST_RUNNING_P2P,
		[ST_RESUMING] = ST_RUNNING_P2P,
		[ST_RUNNING_P2P] = ST_RUNNING_P2P,
	},
	[ST_PRE_COPY] = {
		[ST_STOP] = ST_RUNNING, [ST_RUNNING] = ST_RUNNING,
		[ST_PRE_COPY] = ST_PRE_COPY,
		[ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
		[ST_STOP_COPY] = ST_PRE_COPY_P2P, [ST_RESUMING] = ST_RUNNING,
		[ST_RUNNING_P2P] = ST_RUNNING,
	},
	[ST_PRE_COPY_P2P] = {
		[ST_STOP] = ST_RUNNING_P2P, [ST_RUNNING] = ST_RUNNING_P2P,
		[ST_PRE_COPY] = ST_PRE_COPY,
		[ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
		[ST_STOP_COPY] = ST_STOP_COPY, [ST_RESUMING] = ST_RUNNING_P2P,
		[ST_RUNNING_P2P] = ST_RUNNING_P2P,
	},
	[ST_STOP_COPY] = {
		[ST_STOP] = ST_STOP, [ST_RUNNING] = ST_STOP,
		[ST_PRE_COPY] = ST_ERROR, [ST_PRE_COPY_P2P] = ST_ERROR,
		[ST_STOP_COPY] = ST_STOP_COPY, [ST_RESUMING] = ST_STOP,
		[ST_RUNNING_P2P] = ST_STOP,
	},
	[ST_RESUMING] = {
		[ST_STOP] = ST_STOP, [ST_RUNNING] = ST_STOP,
		[ST_PRE_COPY] = ST_STOP, [ST_PRE_COPY_P2P] = ST_STOP,
		[ST_STOP_COPY] = ST_STOP, [ST_RESUMING] = ST_RESUMING,
		[ST_RUNNING_P2P] = ST_STOP,
	},
	[ST_RUNNING_P2P] = {
		[ST_STOP] = ST_STOP, [ST_RUNNING] = ST_RUNNING,
		[ST_PRE_COPY] = ST_RUNNING,
		[ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
		[ST_STOP_COPY] = ST_STOP, [ST_RESUMING] = ST_STOP,
		[ST_RUNNING_P2P] = ST_RUNNING_P2P,
	},
};

/* The vfio core refuses these two arcs (STOP_COPY -> PRE_COPY*). */
static bool arc_blocked(enum vmig_dev_state from, enum vmig_dev_state to)
{
	return from != to && next_arc[from][to] == ST_ERROR;
}

/* Does this single arc begin a data session, i.e. return a new data fd? */
static bool arc_opens_fd(enum vmig_dev_state from, enum vmig_dev_state to)
{
	return (from == ST_STOP && to == ST_STOP_COPY) ||
	       (from == ST_STOP && to == ST_RESUMING) ||
	       (from == ST_RUNNING && to == ST_PRE_COPY) ||
	       (from == ST_RUNNING_P2P && to == ST_PRE_COPY_P2P);
}

/* Does one SET from `from` to `to` return a data fd?  Its last arc says. */
static bool set_returns_fd(enum vmig_dev_state from, enum vmig_dev_state to)
{
	enum vmig_dev_state cur = from, prev = from;

	while (cur != to) {
		prev = cur;
		cur = next_arc[cur][to];
		if (cur == ST_ERROR)
			return false;
	}
	return from != to && arc_opens_fd(prev, to);
}

/*
 * A 4 KiB instance and its own saved stream, fed to every resume fd it
 * gets so that it can always leave RESUMING again.
 */
struct ctx {
	struct migsim_inst in;
	struct migsim_buf stream;
	int fds[8];
	int nfds;
};

static int ctx_setup(struct ctx *c)
{
	int ret;

	memset(&c->stream, 0, sizeof(c->stream));
	c->nfds = 0;
	ret = migsim_inst_create_open(&c->in, 4 * KiB);
	if (ret)
		return ret;
	ret = migsim_save(&c->in, 64 * KiB, &c->stream);
	if (ret)
		migsim_inst_destroy(&c->in);
	return ret;
}

static void ctx_close_fds(struct ctx *c)
{
	while (c->nfds)
		close(c->fds[--c->nfds]);
}

/* One SET; keep its data fd; give a resume fd the saved stream. */
static int step(struct ctx *c, enum vmig_dev_state to, int *fd_out)
{
	int fd = -1, ret;

	ret = migsim_set_state(&c->in, to, &fd);
	if (fd_out)
		*fd_out = fd;
	if (fd < 0)
		return ret;
	if (c->nfds == ARRAY_SIZE(c->fds)) {
		close(fd);
		return -EMFILE;
	}
	c->fds[c->nfds++] = fd;
	if (!ret && to == ST_RESUMING)
		ret = migsim_write_stream(fd, c->stream.data, c->stream.len,
					  64 * KiB, NULL);
	return ret;
}

/* Back to RUNNING with one SET; drop every data fd. */
static int back_to_running(struct ctx *c)
{
	int ret = migsim_set_state(&c->in, ST_RUNNING, NULL);

	ctx_close_fds(c);
	return ret;
}

FIXTURE(states) {
	struct ctx c;
};

FIXTURE_VARIANT(states) {
	enum vmig_dev_state from;
};

FIXTURE_VARIANT_ADD(states, from_stop) { .from = ST_STOP };
FIXTURE_VARIANT_ADD(states, from_running) { .from = ST_RUNNING };
FIXTURE_VARIANT_ADD(states, from_stop_copy) { .from = ST_STOP_COPY };
FIXTURE_VARIANT_ADD(states, from_resuming) { .from = ST_RESUMING };
FIXTURE_VARIANT_ADD(states, from_running_p2p) { .from = ST_RUNNING_P2P };
FIXTURE_VARIANT_ADD(states, from_pre_copy) { .from = ST_PRE_COPY };
FIXTURE_VARIANT_ADD(states, from_pre_copy_p2p) { .from = ST_PRE_COPY_P2P };

FIXTURE_SETUP(states)
{
	ASSERT_EQ(0, ctx_setup(&self->c));
}

FIXTURE_TEARDOWN_PARENT(states)
{
	if (self->c.in.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->c.in.uuid));
}

TEST_F(states, every_target_reached_in_one_set)
{
	enum vmig_dev_state from = variant->from, to, st;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(all_states); i++) {
		to = all_states[i];
		if (arc_blocked(from, to))
			continue;
		ASSERT_EQ(0, step(&self->c, from, NULL))
			TH_LOG("RUNNING -> %s", vmig_state_name(from));
		ASSERT_EQ(0, step(&self->c, to, NULL))
			TH_LOG("%s -> %s", vmig_state_name(from),
			       vmig_state_name(to));
		ASSERT_EQ(0, migsim_get_state(&self->c.in, &st));
		EXPECT_EQ(to, st) TH_LOG("%s -> %s: in %s",
					 vmig_state_name(from),
					 vmig_state_name(to),
					 vmig_state_name(st));
		ASSERT_EQ(0, back_to_running(&self->c))
			TH_LOG("%s -> RUNNING", vmig_state_name(to));
	}
}

TEST_F(states, data_fd_only_when_last_arc_opens_session)
{
	enum vmig_dev_state from = variant->from, to;
	bool want;
	size_t i;
	int fd;

	for (i = 0; i < ARRAY_SIZE(all_states); i++) {
		to = all_states[i];
		if (arc_blocked(from, to))
			continue;
		ASSERT_EQ(0, step(&self->c, from, NULL))
			TH_LOG("RUNNING -> %s", vmig_state_name(from));
		ASSERT_EQ(0, step(&self->c, to, &fd))
			TH_LOG("%s -> %s", vmig_state_name(from),
			       vmig_state_name(to));
		want = set_returns_fd(from, to);
		EXPECT_EQ(want, fd >= 0)
			TH_LOG("%s -> %s: data_fd %d, expected %s",
			       vmig_state_name(from), vmig_state_name(to), fd,
			       want ? "a new fd" : "-1");
		ASSERT_EQ(0, back_to_running(&self->c))
			TH_LOG("%s -> RUNNING", vmig_state_name(to));
	}
}

TEST_F(states, state_shown_in_sysfs_and_bar0)
{
	enum vmig_dev_state st;
	uint32_t reg;

	ASSERT_EQ(0, step(&self->c, variant->from, NULL));
	ASSERT_EQ(0, migsim_get_state(&self->c.in, &st));
	EXPECT_EQ(variant->from, st);
	ASSERT_EQ(0, migsim_sysfs_mig_state(self->c.in.uuid, &st));
	EXPECT_EQ(variant->from, st);
	ASSERT_EQ(0, migsim_bar0_read32(self->c.in.fd, MIGSIM_REG_MIG_STATE,
					&reg));
	EXPECT_EQ(variant->from, reg);
}

TEST_F(states, non_state_targets_refused)
{
	static const uint32_t bad[] = { ST_ERROR, 8, 1000, 0xffffffff };
	enum vmig_dev_state st;
	size_t i;
	int fd;

	ASSERT_EQ(0, step(&self->c, variant->from, NULL));
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, vmig_vfio_set_state_raw(self->c.in.dev,
							   bad[i], &fd))
			TH_LOG("%s -> %u", vmig_state_name(variant->from),
			       bad[i]);
		EXPECT_EQ(-1, fd);
		if (fd >= 0)
			close(fd);
		ASSERT_EQ(0, migsim_get_state(&self->c.in, &st));
		EXPECT_EQ(variant->from, st)
			TH_LOG("after target %u: in %s", bad[i],
			       vmig_state_name(st));
	}
}

/* The two arcs the vfio core blocks, from a live STOP_COPY session. */
FIXTURE(stop_copy) {
	struct ctx c;
	int fd;
};

FIXTURE_SETUP(stop_copy)
{
	int ret;

	ASSERT_EQ(0, ctx_setup(&self->c));
	ret = step(&self->c, ST_STOP, NULL);
	if (!ret)
		ret = step(&self->c, ST_STOP_COPY, &self->fd);
	if (!ret && self->fd < 0)
		ret = -EBADF;
	if (ret)
		migsim_inst_destroy(&self->c.in);
	ASSERT_EQ(0, ret) TH_LOG("setup: %s", strerror(-ret));
}

FIXTURE_TEARDOWN_PARENT(stop_copy)
{
	if (self->c.in.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->c.in.uuid));
}

TEST_F(stop_copy, pre_copy_refused)
{
	enum vmig_dev_state st;

	EXPECT_EQ(-EINVAL, migsim_set_state(&self->c.in, ST_PRE_COPY, NULL));
	ASSERT_EQ(0, migsim_get_state(&self->c.in, &st));
	EXPECT_EQ(ST_STOP_COPY, st);
}

TEST_F(stop_copy, pre_copy_p2p_refused)
{
	enum vmig_dev_state st;

	EXPECT_EQ(-EINVAL, migsim_set_state(&self->c.in, ST_PRE_COPY_P2P,
					    NULL));
	ASSERT_EQ(0, migsim_get_state(&self->c.in, &st));
	EXPECT_EQ(ST_STOP_COPY, st);
}

TEST_F(stop_copy, session_survives_refused_arcs)
{
	struct migsim_buf b = { 0 };

	EXPECT_EQ(-EINVAL, migsim_set_state(&self->c.in, ST_PRE_COPY, NULL));
	EXPECT_EQ(-EINVAL, migsim_set_state(&self->c.in, ST_PRE_COPY_P2P,
					    NULL));
	EXPECT_EQ(-EINVAL, migsim_set_state(&self->c.in, ST_ERROR, NULL));
	ASSERT_EQ(0, migsim_read_stream(self->fd, 64 * KiB, &b));
	EXPECT_EQ(migsim_stream_len(4 * KiB, MIGSIM_DEFAULT_CHUNK_SIZE), b.len);
	migsim_buf_free(&b);
}

TEST_F(stop_copy, same_state_keeps_session)
{
	struct migsim_buf b = { 0 };
	enum vmig_dev_state st;
	int fd;

	ASSERT_EQ(0, migsim_set_state(&self->c.in, ST_STOP_COPY, &fd));
	EXPECT_EQ(-1, fd);
	if (fd >= 0)
		close(fd);
	ASSERT_EQ(0, migsim_get_state(&self->c.in, &st));
	EXPECT_EQ(ST_STOP_COPY, st);
	ASSERT_EQ(0, migsim_read_stream(self->fd, 64 * KiB, &b));
	EXPECT_EQ(migsim_stream_len(4 * KiB, MIGSIM_DEFAULT_CHUNK_SIZE), b.len);
	migsim_buf_free(&b);
}

TEST_HARNESS_MAIN

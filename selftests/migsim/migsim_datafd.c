// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: what the migration data fds do when used as they should not
 * be, or after the session or the device behind them went away.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

/* 2 MiB + 8 KiB: three chunks, the last one partial */
#define STATE_SIZE	(2 * MiB + 8 * KiB)

FIXTURE(datafd) {
	struct migsim_inst in;
	int fd;
};

FIXTURE_SETUP(datafd)
{
	self->fd = -1;
	ASSERT_EQ(0, migsim_inst_create_open(&self->in, STATE_SIZE));
}

FIXTURE_TEARDOWN_PARENT(datafd)
{
	if (self->in.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->in.uuid));
}

/* RUNNING -> STOP -> STOP_COPY: self->fd is the save fd. */
static int enter_stop_copy(FIXTURE_DATA(datafd) *self)
{
	int ret = migsim_set_state(&self->in, VMIG_STATE_STOP, NULL);

	if (ret)
		return ret;
	ret = migsim_set_state(&self->in, VMIG_STATE_STOP_COPY, &self->fd);
	if (!ret && self->fd < 0)
		ret = -EBADF;
	return ret;
}

static int enter(FIXTURE_DATA(datafd) *self, enum vmig_dev_state st)
{
	int ret = migsim_set_state(&self->in, st, &self->fd);

	if (!ret && self->fd < 0)
		ret = -EBADF;
	return ret;
}

static int precopy_info(int fd, uint64_t *initial, uint64_t *dirty)
{
	uint32_t flags;

	return vmig_precopy_info(fd, initial, dirty, &flags);
}

/* -------------------------------------------------------------- save fd */

TEST_F(datafd, save_fd_is_read_only)
{
	int fl;

	ASSERT_EQ(0, enter_stop_copy(self));
	fl = fcntl(self->fd, F_GETFL);
	ASSERT_LE(0, fl);
	EXPECT_EQ(O_RDONLY, fl & O_ACCMODE);
}

TEST_F(datafd, save_fd_write_fails_ebadf)
{
	char buf[64] = { 0 };

	ASSERT_EQ(0, enter_stop_copy(self));
	EXPECT_EQ(-1, write(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(EBADF, errno);
}

TEST_F(datafd, save_fd_reads_eof_after_stream)
{
	struct migsim_buf b = { 0 };
	char c;
	int i;

	ASSERT_EQ(0, enter_stop_copy(self));
	ASSERT_EQ(0, migsim_read_stream(self->fd, 64 * KiB, &b));
	EXPECT_EQ(migsim_stream_len(STATE_SIZE, MIGSIM_DEFAULT_CHUNK_SIZE),
		  b.len);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(0, read(self->fd, &c, 1));
	migsim_buf_free(&b);
}

TEST_F(datafd, save_fd_enodev_after_stop)
{
	char buf[100];

	ASSERT_EQ(0, enter_stop_copy(self));
	ASSERT_EQ(sizeof(buf), read(self->fd, buf, sizeof(buf)));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, NULL));
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
}

TEST_F(datafd, unread_save_fd_enodev_after_running)
{
	char buf[100];

	ASSERT_EQ(0, enter_stop_copy(self));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING, NULL));
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
}

TEST_F(datafd, old_save_fd_enodev_in_new_session)
{
	char buf[100];
	int fd2;

	ASSERT_EQ(0, enter_stop_copy(self));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP_COPY, &fd2));
	ASSERT_LE(0, fd2);
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(sizeof(buf), read(fd2, buf, sizeof(buf)));
	close(fd2);
}

TEST_F(datafd, save_fd_precopy_info_einval)
{
	uint64_t initial, dirty;

	ASSERT_EQ(0, enter_stop_copy(self));
	EXPECT_EQ(-EINVAL, precopy_info(self->fd, &initial, &dirty));
}

/* ---------------------------------------------------------- precopy fd */

TEST_F(datafd, precopy_fd_enomsg_when_drained)
{
	struct migsim_buf b = { 0 };
	char c;

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	EXPECT_EQ(-ENOMSG, migsim_read_stream(self->fd, 64 * KiB, &b));
	EXPECT_LT(sizeof(struct migsim_stream_header), b.len);
	/* and again: nothing new comes while the device is idle */
	EXPECT_EQ(-1, read(self->fd, &c, 1));
	EXPECT_EQ(ENOMSG, errno);
	migsim_buf_free(&b);
}

TEST_F(datafd, precopy_initial_bytes_count_down_to_zero)
{
	uint64_t initial0, initial1, initial2, dirty;
	struct migsim_buf b = { 0 };
	char buf[65537];

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	ASSERT_EQ(0, precopy_info(self->fd, &initial0, &dirty));
	EXPECT_LT(0, initial0);
	ASSERT_EQ(sizeof(buf), read(self->fd, buf, sizeof(buf)));
	ASSERT_EQ(0, precopy_info(self->fd, &initial1, &dirty));
	EXPECT_GT(initial0, initial1);
	ASSERT_EQ(-ENOMSG, migsim_read_stream(self->fd, 64 * KiB, &b));
	ASSERT_EQ(0, precopy_info(self->fd, &initial2, &dirty));
	EXPECT_EQ(0, initial2);
	/* initial_bytes announced exactly what the first pass held */
	EXPECT_EQ(initial0, sizeof(buf) + b.len);
	migsim_buf_free(&b);
}

TEST_F(datafd, precopy_dirty_bytes_zero)
{
	struct migsim_buf b = { 0 };
	uint64_t initial, dirty;

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	ASSERT_EQ(0, precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(0, dirty);
	ASSERT_EQ(-ENOMSG, migsim_read_stream(self->fd, 64 * KiB, &b));
	ASSERT_EQ(0, precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(0, dirty);
	migsim_buf_free(&b);
}

TEST_F(datafd, precopy_info_works_in_pre_copy_p2p)
{
	uint64_t initial, dirty;
	int fd2;

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_PRE_COPY_P2P,
				      &fd2));
	EXPECT_EQ(-1, fd2);
	EXPECT_EQ(0, precopy_info(self->fd, &initial, &dirty));
	EXPECT_LT(0, initial);
}

TEST_F(datafd, precopy_fd_continues_into_stop_copy)
{
	struct migsim_buf pre = { 0 }, rest = { 0 };
	struct migsim_record *end;
	size_t off;
	int fd2;

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	ASSERT_EQ(-ENOMSG, migsim_read_stream(self->fd, 64 * KiB, &pre));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_PRE_COPY_P2P,
				      &fd2));
	EXPECT_EQ(-1, fd2);
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP_COPY, &fd2));
	EXPECT_EQ(-1, fd2);
	if (fd2 >= 0)
		close(fd2);
	/* the same fd gives the rest, ending with the END record, then EOF */
	ASSERT_EQ(0, migsim_read_stream(self->fd, 64 * KiB, &rest));
	ASSERT_LE(2 * sizeof(struct migsim_record) + sizeof(struct migsim_end),
		  rest.len);
	off = rest.len - sizeof(struct migsim_record) -
	      sizeof(struct migsim_end);
	end = (struct migsim_record *)(rest.data + off);
	EXPECT_EQ(MIGSIM_REC_END, le32toh(end->type));
	migsim_buf_free(&pre);
	migsim_buf_free(&rest);
}

TEST_F(datafd, precopy_info_einval_once_in_stop_copy)
{
	uint64_t initial, dirty;

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP_COPY, NULL));
	EXPECT_EQ(-EINVAL, precopy_info(self->fd, &initial, &dirty));
}

TEST_F(datafd, precopy_fd_enodev_after_running)
{
	char buf[100];

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	ASSERT_EQ(sizeof(buf), read(self->fd, buf, sizeof(buf)));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING, NULL));
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
}

TEST_F(datafd, precopy_fd_write_fails_ebadf)
{
	char buf[64] = { 0 };

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	EXPECT_EQ(-1, write(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(EBADF, errno);
}

/* ----------------------------------------------------------- resume fd */

TEST_F(datafd, resume_fd_read_fails_ebadf)
{
	char buf[64];

	ASSERT_EQ(0, enter(self, VMIG_STATE_RESUMING));
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(EBADF, errno);
}

TEST_F(datafd, resume_fd_refuses_precopy_info)
{
	uint64_t initial, dirty;
	int ret;

	/* the uAPI wants EINVAL outside PRE_COPY; a resume fd without an
	 * ioctl handler (as mlx5's) gives ENOTTY: either is fine */
	ASSERT_EQ(0, enter(self, VMIG_STATE_RESUMING));
	ret = precopy_info(self->fd, &initial, &dirty);
	EXPECT_TRUE(ret == -EINVAL || ret == -ENOTTY) TH_LOG("%d", ret);
}

/* ------------------------------------------- device closed under a fd */

TEST_F(datafd, save_fd_enodev_after_device_close)
{
	char buf[100];

	ASSERT_EQ(0, enter_stop_copy(self));
	ASSERT_EQ(sizeof(buf), read(self->fd, buf, sizeof(buf)));
	migsim_inst_close(&self->in);
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(0, close(self->fd));
}

TEST_F(datafd, precopy_fd_enodev_after_device_close)
{
	uint64_t initial, dirty;
	char buf[100];

	ASSERT_EQ(0, enter(self, VMIG_STATE_PRE_COPY));
	migsim_inst_close(&self->in);
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_NE(0, precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(0, close(self->fd));
}

TEST_F(datafd, resume_fd_enodev_after_device_close)
{
	struct migsim_buf b = { 0 };

	/* half a stream in, then the device goes away */
	ASSERT_EQ(0, migsim_save(&self->in, 64 * KiB, &b));
	ASSERT_EQ(0, enter(self, VMIG_STATE_RESUMING));
	ASSERT_EQ(0, migsim_write_stream(self->fd, b.data, b.len / 2,
					 64 * KiB, NULL));
	migsim_inst_close(&self->in);
	EXPECT_EQ(-1, write(self->fd, b.data + b.len / 2, 4096));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(0, close(self->fd));
	migsim_buf_free(&b);
}

TEST_F(datafd, device_reopens_running_after_close_under_fd)
{
	enum vmig_dev_state st;
	uint32_t before, after;

	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &before));
	ASSERT_EQ(0, enter_stop_copy(self));
	migsim_inst_close(&self->in);
	ASSERT_EQ(0, migsim_inst_open(&self->in));
	ASSERT_EQ(0, migsim_get_state(&self->in, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &after));
	EXPECT_EQ(before, after);
	close(self->fd);
}

TEST_HARNESS_MAIN

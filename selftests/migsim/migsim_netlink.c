// SPDX-License-Identifier: GPL-2.0
/*
 * The "vfio_migsim" generic netlink family (Documentation/netlink.rst):
 * every command, bad input and its extack messages, the permission check,
 * the injected faults (save, load, read delay, failed transition), the
 * "events" multicast group, and vmigctl's "dev" commands end to end.
 *
 * Requests go through libnl-3 directly, with NETLINK_EXT_ACK on, so that
 * errnos and extack messages can be checked exactly.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "kselftest_harness.h"
#include "migsim_nl.h"
#include "migsim_util.h"

#define STATE_SIZE	(4 * MiB)
#define RW_SIZE		(64 * KiB)
#define VMIGCTL		"/usr/bin/vmigctl"

/* ------------------------------------------------------------ netlink */

/* What the kernel said about a request. */
struct ext {
	int err;		/* 0 or -errno */
	char msg[256];		/* NLMSGERR_ATTR_MSG, "" if none */
	bool has_offs;
	uint32_t offs;		/* NLMSGERR_ATTR_OFFS */
	bool has_miss;
	uint32_t miss_type;	/* NLMSGERR_ATTR_MISS_TYPE */
};

static struct nl_msg *req(struct migsim_nl *nl, int cmd, int flags, const char *uuid)
{
	struct nl_msg *m = nlmsg_alloc();

	if (!m)
		return NULL;
	if (!genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, flags,
			 cmd, MIGSIM_GENL_VERSION) ||
	    (uuid && nla_put_string(m, MIGSIM_A_UUID, uuid) < 0)) {
		nlmsg_free(m);
		return NULL;
	}
	return m;
}

/* Byte offset of the last attribute put into m (for NLMSGERR_ATTR_OFFS). */
static uint32_t last_attr_offset(struct nl_msg *m, int type)
{
	struct nlmsghdr *nlh = nlmsg_hdr(m);
	struct nlattr *a, *found = NULL;
	int rem;

	nlmsg_for_each_attr(a, nlh, GENL_HDRLEN, rem)
		if (nla_type(a) == type)
			found = a;
	return found ? (uint32_t)((char *)found - (char *)nlh) : 0;
}

struct request {
	struct ext *ext;
	bool done;
	int (*valid)(struct nl_msg *m, void *arg);
	void *arg;
};

static void read_extack(struct ext *ext, struct nlattr *tlvs, int len)
{
	struct nlattr *a;
	int rem;

	nla_for_each_attr(a, tlvs, len, rem) {
		switch (nla_type(a)) {
		case NLMSGERR_ATTR_MSG:
			snprintf(ext->msg, sizeof(ext->msg), "%.*s",
				 nla_len(a), (char *)nla_data(a));
			break;
		case NLMSGERR_ATTR_OFFS:
			ext->has_offs = true;
			ext->offs = nla_get_u32(a);
			break;
		case NLMSGERR_ATTR_MISS_TYPE:
			ext->has_miss = true;
			ext->miss_type = nla_get_u32(a);
			break;
		}
	}
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	struct request *r = arg;
	int ack_len = sizeof(*e);

	r->ext->err = e->error;
	r->done = true;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
		if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
			ack_len += e->msg.nlmsg_len - NLMSG_HDRLEN;
		if ((int)nlh->nlmsg_len > NLMSG_HDRLEN + ack_len)
			read_extack(r->ext, (struct nlattr *)((char *)e + ack_len),
				    nlh->nlmsg_len - NLMSG_HDRLEN - ack_len);
	}
	return NL_STOP;
}

static int on_done(struct nl_msg *m, void *arg)
{
	struct request *r = arg;
	int err;

	r->done = true;
	if (nlmsg_hdr(m)->nlmsg_type == NLMSG_DONE &&
	    nlmsg_datalen(nlmsg_hdr(m)) >= (int)sizeof(int)) {
		memcpy(&err, nlmsg_data(nlmsg_hdr(m)), sizeof(err));
		if (err < 0)
			r->ext->err = err;
	}
	return NL_STOP;
}

static int on_valid(struct nl_msg *m, void *arg)
{
	struct request *r = arg;

	if (r->valid)
		r->valid(m, r->arg);
	return NL_OK;
}

/* Send m (freed), wait for the ACK / end of dump / error. */
static int nl_do(struct migsim_nl *nl, struct nl_msg *m,
		 int (*valid)(struct nl_msg *m, void *arg), void *arg,
		 struct ext *ext)
{
	struct ext local;
	struct request r = { .ext = ext ? ext : &local, .valid = valid,
			     .arg = arg };
	struct nl_cb *cb;
	int ret;

	memset(r.ext, 0, sizeof(*r.ext));
	if (!m)
		return -ENOMEM;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		nlmsg_free(m);
		return -ENOMEM;
	}
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, &r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_done, &r);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_done, &r);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, &r);
	ret = nl_send_auto(nl->sk, m);
	while (ret >= 0 && !r.done) {
		ret = nl_recvmsgs(nl->sk, cb);
		if (r.done)
			break;
	}
	if (ret < 0 && !r.done)
		r.ext->err = -EIO;
	nl_cb_put(cb);
	nlmsg_free(m);
	return r.ext->err;
}

/* DEV_GET's attributes. */
struct info {
	char uuid[MIGSIM_UUID_LEN + 1];
	bool has[MIGSIM_A_MAX + 1];
	bool has_stat[MIGSIM_STAT_MAX + 1];
	uint32_t state;
	uint64_t state_size, nonprecopy_size, dirty_rate, generation;
	uint32_t hot_set, checksum, chunk_size;
	uint64_t stat[MIGSIM_STAT_MAX + 1];
};

struct infos {
	struct info v[80];
	int n;
};

static int collect(struct nl_msg *m, void *arg)
{
	struct nlattr *tb[MIGSIM_A_MAX + 1], *st[MIGSIM_STAT_MAX + 1];
	struct infos *l = arg;
	struct info *d;
	int i;

	if (l->n >= (int)ARRAY_SIZE(l->v))
		return 0;
	d = &l->v[l->n++];
	memset(d, 0, sizeof(*d));
	if (genlmsg_parse(nlmsg_hdr(m), 0, tb, MIGSIM_A_MAX, NULL) < 0)
		return 0;
	for (i = 0; i <= MIGSIM_A_MAX; i++)
		d->has[i] = tb[i];
	if (tb[MIGSIM_A_UUID])
		snprintf(d->uuid, sizeof(d->uuid), "%s",
			 nla_get_string(tb[MIGSIM_A_UUID]));
	if (tb[MIGSIM_A_MIG_STATE])
		d->state = nla_get_u32(tb[MIGSIM_A_MIG_STATE]);
	if (tb[MIGSIM_A_STATE_SIZE])
		d->state_size = nla_get_u64(tb[MIGSIM_A_STATE_SIZE]);
	if (tb[MIGSIM_A_NONPRECOPY_SIZE])
		d->nonprecopy_size = nla_get_u64(tb[MIGSIM_A_NONPRECOPY_SIZE]);
	if (tb[MIGSIM_A_DIRTY_RATE])
		d->dirty_rate = nla_get_u64(tb[MIGSIM_A_DIRTY_RATE]);
	if (tb[MIGSIM_A_GENERATION])
		d->generation = nla_get_u64(tb[MIGSIM_A_GENERATION]);
	if (tb[MIGSIM_A_HOT_SET])
		d->hot_set = nla_get_u32(tb[MIGSIM_A_HOT_SET]);
	if (tb[MIGSIM_A_CHECKSUM])
		d->checksum = nla_get_u32(tb[MIGSIM_A_CHECKSUM]);
	if (tb[MIGSIM_A_CHUNK_SIZE])
		d->chunk_size = nla_get_u32(tb[MIGSIM_A_CHUNK_SIZE]);
	if (tb[MIGSIM_A_STATS] &&
	    !nla_parse_nested(st, MIGSIM_STAT_MAX, tb[MIGSIM_A_STATS], NULL)) {
		for (i = 0; i <= MIGSIM_STAT_MAX; i++) {
			d->has_stat[i] = st[i];
			if (st[i] && nla_len(st[i]) == sizeof(uint64_t))
				d->stat[i] = nla_get_u64(st[i]);
		}
	}
	return 0;
}

static int dev_get(struct migsim_nl *nl, const char *uuid, struct info *d,
		   struct ext *ext)
{
	struct infos *l = calloc(1, sizeof(*l));
	int ret;

	if (!l)
		return -ENOMEM;
	ret = nl_do(nl, req(nl, MIGSIM_CMD_DEV_GET, 0, uuid), collect, l, ext);
	if (!ret && l->n != 1)
		ret = -EBADMSG;
	if (!ret)
		*d = l->v[0];
	free(l);
	return ret;
}

static int dev_dump(struct migsim_nl *nl, struct infos *l, struct ext *ext)
{
	l->n = 0;
	return nl_do(nl, req(nl, MIGSIM_CMD_DEV_GET, NLM_F_DUMP, NULL),
		     collect, l, ext);
}

static int set_u64(struct migsim_nl *nl, const char *uuid, int attr, uint64_t v,
		   struct ext *ext, uint32_t *offs)
{
	struct nl_msg *m = req(nl, MIGSIM_CMD_DEV_SET, 0, uuid);

	if (m && nla_put_u64(m, attr, v) < 0) {
		nlmsg_free(m);
		m = NULL;
	}
	if (m && offs)
		*offs = last_attr_offset(m, attr);
	return nl_do(nl, m, NULL, NULL, ext);
}

static int set_u32(struct migsim_nl *nl, const char *uuid, int attr, uint32_t v,
		   struct ext *ext, uint32_t *offs)
{
	struct nl_msg *m = req(nl, MIGSIM_CMD_DEV_SET, 0, uuid);

	if (m && nla_put_u32(m, attr, v) < 0) {
		nlmsg_free(m);
		m = NULL;
	}
	if (m && offs)
		*offs = last_attr_offset(m, attr);
	return nl_do(nl, m, NULL, NULL, ext);
}

/* A fault: attributes with a value, type 0 ends the list. */
struct fattr {
	int type;
	uint64_t v;
};

static bool fault_is_u64(int type)
{
	return type == MIGSIM_FAULT_A_SAVE_OFFSET ||
	       type == MIGSIM_FAULT_A_LOAD_OFFSET;
}

/* FAULT_SET with these attributes in the nest; none: an empty nest. */
static int fault_set(struct migsim_nl *nl, const char *uuid, const struct fattr *fa,
		     struct ext *ext)
{
	struct nl_msg *m = req(nl, MIGSIM_CMD_FAULT_SET, 0, uuid);
	struct nlattr *nest;
	int ret = 0;

	if (!m)
		return -ENOMEM;
	if (!fa || !fa->type) {
		/* libnl's nla_nest_end() would drop an empty nest */
		if (nla_put(m, MIGSIM_A_FAULT | NLA_F_NESTED, 0, NULL) < 0) {
			nlmsg_free(m);
			return -ENOMEM;
		}
		return nl_do(nl, m, NULL, NULL, ext);
	}
	nest = nla_nest_start(m, MIGSIM_A_FAULT);
	if (!nest)
		ret = -ENOMEM;
	for (; !ret && fa && fa->type; fa++) {
		if (fault_is_u64(fa->type))
			ret = nla_put_u64(m, fa->type, fa->v);
		else
			ret = nla_put_u32(m, fa->type, fa->v);
	}
	if (ret) {
		nlmsg_free(m);
		return -ENOMEM;
	}
	nla_nest_end(m, nest);
	return nl_do(nl, m, NULL, NULL, ext);
}

#define FAULTS(...) ((const struct fattr[]){ __VA_ARGS__, { 0, 0 } })

static int fault_clear(struct migsim_nl *nl, const char *uuid)
{
	return fault_set(nl, uuid, NULL, NULL);
}

/* ------------------------------------------------------------ VFIO */

static int checksum_of(struct migsim_inst *in, uint32_t *sum)
{
	return migsim_checksum(in->uuid, sum);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ events */

struct event {
	uint32_t old, new;
};

struct events {
	const char *uuid;
	struct event v[64];
	int n;
};

static int on_event(struct nl_msg *m, void *arg)
{
	struct nlattr *tb[MIGSIM_A_MAX + 1];
	struct events *ev = arg;

	if (genlmsg_hdr(nlmsg_hdr(m))->cmd != MIGSIM_CMD_STATE_EVENT ||
	    genlmsg_parse(nlmsg_hdr(m), 0, tb, MIGSIM_A_MAX, NULL) < 0 ||
	    !tb[MIGSIM_A_UUID] || !tb[MIGSIM_A_OLD_STATE] ||
	    !tb[MIGSIM_A_MIG_STATE])
		return NL_SKIP;
	if (strcmp(nla_get_string(tb[MIGSIM_A_UUID]), ev->uuid))
		return NL_SKIP;
	if (ev->n < (int)ARRAY_SIZE(ev->v)) {
		ev->v[ev->n].old = nla_get_u32(tb[MIGSIM_A_OLD_STATE]);
		ev->v[ev->n].new = nla_get_u32(tb[MIGSIM_A_MIG_STATE]);
	}
	ev->n++;
	return NL_OK;
}

static int no_seq_check(struct nl_msg *m, void *arg)
{
	return NL_OK;
}

static int events_open(struct migsim_nl *nl)
{
	int grp, ret;

	ret = migsim_nl_open(nl);
	if (ret)
		return ret;
	grp = genl_ctrl_resolve_grp(nl->sk, MIGSIM_GENL_NAME,
				    MIGSIM_GENL_MCGRP);
	if (grp < 0 || nl_socket_add_membership(nl->sk, grp) < 0) {
		migsim_nl_close(nl);
		return -ENOENT;
	}
	nl_socket_disable_seq_check(nl->sk);
	nl_socket_set_nonblocking(nl->sk);
	return 0;
}

/* Collect the events until none came for quiet_ms. */
static int events_drain(struct migsim_nl *nl, struct events *ev, int quiet_ms)
{
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	struct pollfd pfd = { .fd = nl_socket_get_fd(nl->sk),
			      .events = POLLIN };
	int ret = 0;

	if (!cb)
		return -ENOMEM;
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, no_seq_check, NULL);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_event, ev);
	while (poll(&pfd, 1, quiet_ms) > 0) {
		ret = nl_recvmsgs(nl->sk, cb);
		if (ret < 0 && ret != -NLE_AGAIN)
			break;
		ret = 0;
	}
	nl_cb_put(cb);
	return ret;
}

/* ------------------------------------------------------------ processes */

/* Run vmigctl with argv; capture stdout and stderr; return exit status. */
static int run_vmigctl(char *out, size_t olen, char *err, size_t elen,
		       const char *const argv[])
{
	int po[2], pe[2], status;
	size_t no = 0, ne = 0;
	bool oe = false, ee = false;
	pid_t pid;

	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execv(VMIGCTL, (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	while (!oe || !ee) {
		struct pollfd p[2] = { { .fd = oe ? -1 : po[0], .events = POLLIN },
				       { .fd = ee ? -1 : pe[0], .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, 30000) <= 0)
			break;
		if (p[0].revents) {
			n = read(po[0], out + no, olen - 1 - no);
			if (n <= 0)
				oe = true;
			else
				no += n;
		}
		if (p[1].revents) {
			n = read(pe[0], err + ne, elen - 1 - ne);
			if (n <= 0)
				ee = true;
			else
				ne += n;
		}
	}
	out[no] = '\0';
	err[ne] = '\0';
	close(po[0]);
	close(pe[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) :
				   128 + WTERMSIG(status);
}

#define VMIGCTL_RUN(out, err, ...) \
	run_vmigctl(out, sizeof(out), err, sizeof(err), \
		    (const char *const[]){ "vmigctl", __VA_ARGS__, NULL })

/* A background vmigctl whose stdout we read line by line. */
struct child {
	pid_t pid;
	int fd;
	char buf[16384];
	size_t len;
};

static int child_start(struct child *c, const char *const argv[])
{
	int p[2];

	c->len = 0;
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (!c->pid) {
		dup2(p[1], 1);
		execv(VMIGCTL, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	c->fd = p[0];
	return 0;
}

/* The next line (without "\n") within timeout_ms; 0, or -ETIMEDOUT/-EPIPE. */
static int child_line(struct child *c, char *line, size_t len, int timeout_ms)
{
	double end = now() + timeout_ms / 1000.0;

	for (;;) {
		char *nlc = memchr(c->buf, '\n', c->len);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int left = (end - now()) * 1000;
		ssize_t n;

		if (nlc) {
			size_t l = nlc - c->buf;

			snprintf(line, len, "%.*s", (int)l, c->buf);
			memmove(c->buf, nlc + 1, c->len - l - 1);
			c->len -= l + 1;
			return 0;
		}
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -ETIMEDOUT;
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (n <= 0)
			return -EPIPE;
		c->len += n;
	}
}

/* Exit status of the child (waits up to timeout_ms, then kills it). */
static int child_wait(struct child *c, int timeout_ms)
{
	double end = now() + timeout_ms / 1000.0;
	int status;

	for (;;) {
		pid_t r = waitpid(c->pid, &status, WNOHANG);

		if (r == c->pid)
			break;
		if (now() > end) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	close(c->fd);
	return WIFEXITED(status) ? WEXITSTATUS(status) :
				   128 + WTERMSIG(status);
}

/* ------------------------------------------------------------ fixture */

FIXTURE(nl) {
	struct migsim_nl nl;
	struct migsim_inst a, b;	/* both open, STATE_SIZE */
	uint32_t offs;
	struct ext ext;
};

FIXTURE_SETUP(nl)
{
	int ret;

	memset(&self->a, 0, sizeof(self->a));
	memset(&self->b, 0, sizeof(self->b));
	ret = migsim_nl_open(&self->nl);
	if (ret == -ENOENT && access(MIGSIM_TYPE_DIR, F_OK))
		SKIP(return, "vfio-migsim is not loaded");
	ASSERT_EQ(0, ret) TH_LOG("no generic netlink family %s",
				 MIGSIM_GENL_NAME);
	ASSERT_EQ(0, migsim_inst_create_open(&self->a, STATE_SIZE));
	ASSERT_EQ(0, migsim_inst_create_open(&self->b, STATE_SIZE));
}

FIXTURE_TEARDOWN_PARENT(nl)
{
	if (self->a.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->a.uuid));
	if (self->b.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->b.uuid));
}

/* err and an extack message (or, for a missing attribute, its type). */
#define EXPECT_NLERR(want, e) do { \
	EXPECT_EQ(-(want), (e).err) TH_LOG("errno %d (%s), extack \"%s\"", \
		-(e).err, strerror(-(e).err), (e).msg); \
	EXPECT_TRUE((e).msg[0] || (e).has_miss) \
		TH_LOG("no extack message for errno %d", -(e).err); \
} while (0)

/* ------------------------------------------------------------ DEV_GET */

TEST_F(nl, get_one)
{
	struct info d;
	uint64_t gen, chunk;
	uint32_t sum;
	int i;

	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, &self->ext))
		TH_LOG("extack: %s", self->ext.msg);
	EXPECT_STREQ(self->a.uuid, d.uuid);
	for (i = MIGSIM_A_UUID; i <= MIGSIM_A_STATS; i++) {
		if (i == MIGSIM_A_OLD_STATE)
			continue;
		EXPECT_TRUE(d.has[i]) TH_LOG("attribute %d missing", i);
	}
	EXPECT_FALSE(d.has[MIGSIM_A_OLD_STATE]);
	EXPECT_FALSE(d.has[MIGSIM_A_FAULT]);
	for (i = MIGSIM_STAT_BYTES_SAVED; i <= MIGSIM_STAT_MAX; i++)
		EXPECT_TRUE(d.has_stat[i]) TH_LOG("stat %d missing", i);
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, d.state);
	EXPECT_EQ(STATE_SIZE, d.state_size);
	EXPECT_EQ(0, d.nonprecopy_size);
	EXPECT_EQ(0, d.dirty_rate);
	EXPECT_EQ(1000, d.hot_set);
	ASSERT_EQ(0, migsim_checksum(self->a.uuid, &sum));
	EXPECT_EQ(sum, d.checksum);
	ASSERT_EQ(0, migsim_generation(self->a.uuid, &gen));
	EXPECT_EQ(gen, d.generation);
	ASSERT_EQ(0, migsim_chunk_size(self->a.uuid, &chunk));
	EXPECT_EQ(chunk, d.chunk_size);
	EXPECT_EQ(0, d.stat[MIGSIM_STAT_BYTES_SAVED]);
	EXPECT_EQ(0, d.stat[MIGSIM_STAT_BYTES_LOADED]);
	EXPECT_EQ(0, d.stat[MIGSIM_STAT_PRECOPY_READS]);
}

TEST_F(nl, get_follows_state)
{
	struct info d;

	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP, d.state);
	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_RUNNING, NULL));
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, d.state);
}

TEST_F(nl, dump_lists_every_instance)
{
	struct infos *l = calloc(1, sizeof(*l));
	struct migsim_inst c;
	bool a = false, b = false, cc = false;
	int i;

	ASSERT_NE(NULL, l);
	ASSERT_EQ(0, migsim_inst_create(&c, 0));
	EXPECT_EQ(0, dev_dump(&self->nl, l, &self->ext))
		TH_LOG("extack: %s", self->ext.msg);
	for (i = 0; i < l->n; i++) {
		EXPECT_TRUE(l->v[i].has[MIGSIM_A_MIG_STATE]);
		EXPECT_TRUE(l->v[i].has[MIGSIM_A_STATS]);
		a |= !strcmp(l->v[i].uuid, self->a.uuid);
		b |= !strcmp(l->v[i].uuid, self->b.uuid);
		cc |= !strcmp(l->v[i].uuid, c.uuid);
	}
	EXPECT_TRUE(a && b && cc) TH_LOG("%d instances dumped", l->n);
	EXPECT_EQ(0, migsim_inst_destroy(&c));
	/* and gone from the next dump */
	EXPECT_EQ(0, dev_dump(&self->nl, l, NULL));
	for (i = 0; i < l->n; i++)
		EXPECT_STRNE(l->v[i].uuid, c.uuid);
	free(l);
}

/* ------------------------------------------------------------ DEV_SET */

TEST_F(nl, set_size)
{
	uint64_t v, gen0, gen1;
	struct info d;

	ASSERT_EQ(0, migsim_generation(self->a.uuid, &gen0));
	ASSERT_EQ(0, set_u64(&self->nl, self->a.uuid, MIGSIM_A_STATE_SIZE,
			     8 * MiB + 4 * KiB, &self->ext, NULL))
		TH_LOG("extack: %s", self->ext.msg);
	ASSERT_EQ(0, migsim_state_size(self->a.uuid, &v));
	EXPECT_EQ(8 * MiB + 4 * KiB, v);
	ASSERT_EQ(0, migsim_generation(self->a.uuid, &gen1));
	EXPECT_NE(gen0, gen1);
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(8 * MiB + 4 * KiB, d.state_size);
	EXPECT_EQ(gen1, d.generation);
	ASSERT_EQ(0, set_u64(&self->nl, self->a.uuid, MIGSIM_A_STATE_SIZE,
			     1 * MiB, NULL, NULL));
	ASSERT_EQ(0, migsim_state_size(self->a.uuid, &v));
	EXPECT_EQ(1 * MiB, v);
}

TEST_F(nl, set_size_busy_when_stopped)
{
	uint64_t v;

	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_STOP, NULL));
	EXPECT_EQ(-EBUSY, set_u64(&self->nl, self->a.uuid,
				  MIGSIM_A_STATE_SIZE, 8 * MiB, &self->ext,
				  NULL));
	EXPECT_NE(0, self->ext.msg[0]);
	ASSERT_EQ(0, migsim_state_size(self->a.uuid, &v));
	EXPECT_EQ(STATE_SIZE, v);
}

TEST_F(nl, set_workload_and_nonprecopy)
{
	struct nl_msg *m;
	struct info d;
	uint64_t v;

	m = req(&self->nl, MIGSIM_CMD_DEV_SET, 0, self->a.uuid);
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, nla_put_u64(m, MIGSIM_A_DIRTY_RATE, 2 * MiB));
	ASSERT_EQ(0, nla_put_u32(m, MIGSIM_A_HOT_SET, 250));
	ASSERT_EQ(0, nla_put_u64(m, MIGSIM_A_NONPRECOPY_SIZE, 1 * MiB));
	ASSERT_EQ(0, nl_do(&self->nl, m, NULL, NULL, &self->ext))
		TH_LOG("extack: %s", self->ext.msg);
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(2 * MiB, d.dirty_rate);
	EXPECT_EQ(250, d.hot_set);
	EXPECT_EQ(1 * MiB, d.nonprecopy_size);
	ASSERT_EQ(0, migsim_attr_u64(self->a.uuid, "dirty_rate", &v));
	EXPECT_EQ(2 * MiB, v);
	ASSERT_EQ(0, migsim_attr_u64(self->a.uuid, "hot_set", &v));
	EXPECT_EQ(250, v);
	ASSERT_EQ(0, migsim_attr_u64(self->a.uuid, "nonprecopy_size", &v));
	EXPECT_EQ(1 * MiB, v);

	/* one attribute alone leaves the others as they are */
	ASSERT_EQ(0, set_u32(&self->nl, self->a.uuid, MIGSIM_A_HOT_SET, 1000,
			     NULL, NULL));
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(2 * MiB, d.dirty_rate);
	EXPECT_EQ(1000, d.hot_set);
	ASSERT_EQ(0, set_u64(&self->nl, self->a.uuid, MIGSIM_A_DIRTY_RATE, 0,
			     NULL, NULL));
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(0, d.dirty_rate);
	EXPECT_EQ(1 * MiB, d.nonprecopy_size);
}

/* The engine's counter, and the save/load/precopy counters. */
TEST_F(nl, stats_count)
{
	uint64_t chunk, dirtied, len;
	struct migsim_buf s = { 0 };
	struct info d0, d;
	char buf[RW_SIZE];
	int fd = -1, i;

	ASSERT_EQ(0, migsim_chunk_size(self->a.uuid, &chunk));
	ASSERT_EQ(0, set_u64(&self->nl, self->a.uuid, MIGSIM_A_DIRTY_RATE,
			     16 * MiB, NULL, NULL));
	usleep(300000);
	ASSERT_EQ(0, set_u64(&self->nl, self->a.uuid, MIGSIM_A_DIRTY_RATE, 0,
			     NULL, NULL));
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_LT(0, d.stat[MIGSIM_STAT_CHUNKS_DIRTIED]);
	ASSERT_EQ(0, migsim_attr_u64(self->a.uuid, "bytes_dirtied",
				     &dirtied));
	EXPECT_EQ(dirtied, d.stat[MIGSIM_STAT_CHUNKS_DIRTIED] * chunk);

	/* a whole save, then a load of it into b */
	d0 = d;
	ASSERT_EQ(0, migsim_save(&self->a, RW_SIZE, &s));
	len = migsim_stream_len(STATE_SIZE, chunk);
	EXPECT_EQ(len, s.len);
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(d0.stat[MIGSIM_STAT_BYTES_SAVED] + s.len,
		  d.stat[MIGSIM_STAT_BYTES_SAVED]);
	EXPECT_EQ(0, d.stat[MIGSIM_STAT_PRECOPY_READS]);
	ASSERT_EQ(0, migsim_load(&self->b, s.data, s.len, RW_SIZE));
	ASSERT_EQ(0, dev_get(&self->nl, self->b.uuid, &d, NULL));
	EXPECT_EQ(s.len, d.stat[MIGSIM_STAT_BYTES_LOADED]);
	migsim_buf_free(&s);

	/* three read() calls on a precopy fd */
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d0, NULL));
	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(sizeof(buf), read(fd, buf, sizeof(buf)));
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(d0.stat[MIGSIM_STAT_PRECOPY_READS] + 3,
		  d.stat[MIGSIM_STAT_PRECOPY_READS]);
	EXPECT_EQ(d0.stat[MIGSIM_STAT_BYTES_SAVED] + 3 * sizeof(buf),
		  d.stat[MIGSIM_STAT_BYTES_SAVED]);
	close(fd);
	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_RUNNING, NULL));
}

/* ------------------------------------------------------------ bad input */

TEST_F(nl, missing_uuid)
{
	struct nl_msg *m;

	/* a DEV_GET that is not a dump names an instance */
	EXPECT_EQ(-EINVAL, nl_do(&self->nl,
				 req(&self->nl, MIGSIM_CMD_DEV_GET, 0, NULL),
				 NULL, NULL, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);
	if (self->ext.has_miss)
		EXPECT_EQ(MIGSIM_A_UUID, self->ext.miss_type);

	EXPECT_EQ(-EINVAL, set_u32(&self->nl, NULL, MIGSIM_A_HOT_SET, 10,
				   &self->ext, NULL));
	EXPECT_NLERR(EINVAL, self->ext);
	if (self->ext.has_miss)
		EXPECT_EQ(MIGSIM_A_UUID, self->ext.miss_type);

	EXPECT_EQ(-EINVAL, fault_set(&self->nl, NULL,
				     FAULTS({ MIGSIM_FAULT_A_READ_DELAY_US, 1 }),
				     &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);
	if (self->ext.has_miss)
		EXPECT_EQ(MIGSIM_A_UUID, self->ext.miss_type);

	/* FAULT_SET without its nest at all */
	m = req(&self->nl, MIGSIM_CMD_FAULT_SET, 0, self->a.uuid);
	EXPECT_EQ(-EINVAL, nl_do(&self->nl, m, NULL, NULL, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);
	if (self->ext.has_miss)
		EXPECT_EQ(MIGSIM_A_FAULT, self->ext.miss_type);
}

TEST_F(nl, unknown_uuid)
{
	char uuid[MIGSIM_UUID_LEN + 1];
	struct nl_msg *m;
	struct info d;
	uint32_t offs;

	ASSERT_EQ(0, migsim_uuid_random(uuid));
	ASSERT_FALSE(migsim_exists(uuid));

	m = req(&self->nl, MIGSIM_CMD_DEV_GET, 0, uuid);
	ASSERT_NE(NULL, m);
	offs = last_attr_offset(m, MIGSIM_A_UUID);
	EXPECT_EQ(-ENODEV, nl_do(&self->nl, m, NULL, NULL, &self->ext));
	EXPECT_NLERR(ENODEV, self->ext);
	EXPECT_TRUE(self->ext.has_offs);
	EXPECT_EQ(offs, self->ext.offs);

	EXPECT_EQ(-ENODEV, set_u32(&self->nl, uuid, MIGSIM_A_HOT_SET, 10,
				   &self->ext, NULL));
	EXPECT_NLERR(ENODEV, self->ext);
	EXPECT_EQ(-ENODEV, fault_set(&self->nl, uuid,
				     FAULTS({ MIGSIM_FAULT_A_READ_DELAY_US, 1 }),
				     &self->ext));
	EXPECT_NLERR(ENODEV, self->ext);
	EXPECT_EQ(-ENODEV, fault_set(&self->nl, uuid, NULL, &self->ext));
	EXPECT_NLERR(ENODEV, self->ext);

	/* a string longer than a UUID fails the policy */
	EXPECT_EQ(-EINVAL, dev_get(&self->nl,
				   "0123456789abcdef0123456789abcdef01234567",
				   &d, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);
}

TEST_F(nl, bad_size)
{
	uint64_t v;

	/* not a multiple of 4 KiB */
	EXPECT_EQ(-EINVAL, set_u64(&self->nl, self->a.uuid,
				   MIGSIM_A_STATE_SIZE, 8 * MiB + 1,
				   &self->ext, &self->offs));
	EXPECT_NLERR(EINVAL, self->ext);
	EXPECT_TRUE(self->ext.has_offs);
	EXPECT_EQ(self->offs, self->ext.offs);

	/* out of range: 0, over max_state_size (4 GiB by default) */
	EXPECT_EQ(-ERANGE, set_u64(&self->nl, self->a.uuid,
				   MIGSIM_A_STATE_SIZE, 0, &self->ext,
				   &self->offs));
	EXPECT_NLERR(ERANGE, self->ext);
	EXPECT_EQ(self->offs, self->ext.offs);
	EXPECT_EQ(-ERANGE, set_u64(&self->nl, self->a.uuid,
				   MIGSIM_A_STATE_SIZE, 64 * GiB, &self->ext,
				   &self->offs));
	EXPECT_NLERR(ERANGE, self->ext);
	EXPECT_EQ(self->offs, self->ext.offs);
	EXPECT_EQ(-ERANGE, set_u64(&self->nl, self->a.uuid,
				   MIGSIM_A_NONPRECOPY_SIZE, 64 * GiB,
				   &self->ext, &self->offs));
	EXPECT_NLERR(ERANGE, self->ext);

	ASSERT_EQ(0, migsim_state_size(self->a.uuid, &v));
	EXPECT_EQ(STATE_SIZE, v);
}

TEST_F(nl, bad_hot_set)
{
	struct info d;

	EXPECT_EQ(-ERANGE, set_u32(&self->nl, self->a.uuid, MIGSIM_A_HOT_SET,
				   0, &self->ext, &self->offs));
	EXPECT_NLERR(ERANGE, self->ext);
	EXPECT_TRUE(self->ext.has_offs);
	EXPECT_EQ(self->offs, self->ext.offs);
	EXPECT_EQ(-ERANGE, set_u32(&self->nl, self->a.uuid, MIGSIM_A_HOT_SET,
				   1001, &self->ext, &self->offs));
	EXPECT_NLERR(ERANGE, self->ext);
	EXPECT_EQ(self->offs, self->ext.offs);
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(1000, d.hot_set);
	/* the ends of the range are fine */
	EXPECT_EQ(0, set_u32(&self->nl, self->a.uuid, MIGSIM_A_HOT_SET, 1,
			     NULL, NULL));
	EXPECT_EQ(0, set_u32(&self->nl, self->a.uuid, MIGSIM_A_HOT_SET, 1000,
			     NULL, NULL));
}

/* Strict validation: unknown, unsettable and malformed attributes. */
TEST_F(nl, bad_attributes)
{
	uint32_t u32 = 4096;
	struct nl_msg *m;
	struct nlattr *nest;
	uint64_t v;

	/* a type past MIGSIM_A_MAX */
	m = req(&self->nl, MIGSIM_CMD_DEV_SET, 0, self->a.uuid);
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, nla_put_u32(m, MIGSIM_A_MAX + 1, 1));
	EXPECT_EQ(-EINVAL, nl_do(&self->nl, m, NULL, NULL, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);

	/* also on a DEV_GET */
	m = req(&self->nl, MIGSIM_CMD_DEV_GET, 0, self->a.uuid);
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, nla_put_u32(m, MIGSIM_A_MAX + 5, 1));
	EXPECT_EQ(-EINVAL, nl_do(&self->nl, m, NULL, NULL, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);

	/* a read-only attribute is not something DEV_SET takes */
	m = req(&self->nl, MIGSIM_CMD_DEV_SET, 0, self->a.uuid);
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, nla_put_u32(m, MIGSIM_A_CHECKSUM, 1));
	EXPECT_EQ(-EINVAL, nl_do(&self->nl, m, NULL, NULL, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);

	/* STATE_SIZE is a u64: 4 bytes of it are malformed */
	m = req(&self->nl, MIGSIM_CMD_DEV_SET, 0, self->a.uuid);
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, nla_put(m, MIGSIM_A_STATE_SIZE, sizeof(u32), &u32));
	EXPECT_EQ(-EINVAL, nl_do(&self->nl, m, NULL, NULL, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);

	/* an unknown attribute inside the FAULT nest */
	m = req(&self->nl, MIGSIM_CMD_FAULT_SET, 0, self->a.uuid);
	ASSERT_NE(NULL, m);
	nest = nla_nest_start(m, MIGSIM_A_FAULT);
	ASSERT_NE(NULL, nest);
	ASSERT_EQ(0, nla_put_u32(m, MIGSIM_FAULT_A_MAX + 1, 1));
	nla_nest_end(m, nest);
	EXPECT_EQ(-EINVAL, nl_do(&self->nl, m, NULL, NULL, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);

	/* FAULT as a plain u32 instead of a nest */
	m = req(&self->nl, MIGSIM_CMD_FAULT_SET, 0, self->a.uuid);
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, nla_put_u32(m, MIGSIM_A_FAULT, 1));
	EXPECT_NE(0, nl_do(&self->nl, m, NULL, NULL, &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);

	/* nothing changed */
	ASSERT_EQ(0, migsim_state_size(self->a.uuid, &v));
	EXPECT_EQ(STATE_SIZE, v);
}

TEST_F(nl, bad_fault_values)
{
	/* an errno is 1..4095 */
	EXPECT_NE(0, fault_set(&self->nl, self->a.uuid,
			       FAULTS({ MIGSIM_FAULT_A_SAVE_OFFSET, 100 },
				      { MIGSIM_FAULT_A_SAVE_ERRNO, 0 }),
			       &self->ext));
	EXPECT_TRUE(self->ext.err == -EINVAL || self->ext.err == -ERANGE);
	EXPECT_NE(0, self->ext.msg[0]);
	EXPECT_NE(0, fault_set(&self->nl, self->a.uuid,
			       FAULTS({ MIGSIM_FAULT_A_FAIL_TRANSITION, 5000 }),
			       &self->ext));
	EXPECT_TRUE(self->ext.err == -EINVAL || self->ext.err == -ERANGE);
	EXPECT_NE(0, self->ext.msg[0]);
	/* a save errno says how a save fault fails: alone it means nothing */
	EXPECT_EQ(-EINVAL, fault_set(&self->nl, self->a.uuid,
				     FAULTS({ MIGSIM_FAULT_A_SAVE_ERRNO, EIO }),
				     &self->ext));
	EXPECT_NLERR(EINVAL, self->ext);
}

/* ------------------------------------------------------------ permission */

enum {
	PERM_OK,
	PERM_DROP,
	PERM_OPEN,
	PERM_GET,
	PERM_DUMP,
	PERM_SET,
	PERM_FAULT,
	PERM_CLEAR,
};

static const char *const perm_step[] = {
	"ok", "dropping privileges", "opening the socket", "DEV_GET",
	"dump", "DEV_SET (want EPERM)", "FAULT_SET (want EPERM)",
	"FAULT_SET clear (want EPERM)",
};

/* In a child: drop CAP_NET_ADMIN (how: 0 capset, 1 setuid), then try. */
static int perm_child(const char *uuid, int how)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct c[2];
	struct infos *l;
	struct info d;
	struct migsim_nl nl;

	if (how == 0) {
		if (syscall(SYS_capget, &h, c))
			return PERM_DROP;
		c[CAP_TO_INDEX(CAP_NET_ADMIN)].effective &=
			~CAP_TO_MASK(CAP_NET_ADMIN);
		if (syscall(SYS_capset, &h, c))
			return PERM_DROP;
	} else if (setgid(65534) || setuid(65534)) {
		return PERM_DROP;
	}
	if (migsim_nl_open(&nl))
		return PERM_OPEN;
	if (dev_get(&nl, uuid, &d, NULL) || strcmp(d.uuid, uuid))
		return PERM_GET;
	l = calloc(1, sizeof(*l));
	if (!l || dev_dump(&nl, l, NULL) || l->n < 2)
		return PERM_DUMP;
	if (set_u32(&nl, uuid, MIGSIM_A_HOT_SET, 10, NULL, NULL) != -EPERM)
		return PERM_SET;
	if (fault_set(&nl, uuid, FAULTS({ MIGSIM_FAULT_A_READ_DELAY_US, 1 }),
		      NULL) != -EPERM)
		return PERM_FAULT;
	if (fault_set(&nl, uuid, NULL, NULL) != -EPERM)
		return PERM_CLEAR;
	return PERM_OK;
}

static int run_perm_child(const char *uuid, int how)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid)
		_exit(perm_child(uuid, how));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

TEST_F(nl, unprivileged_without_cap_net_admin)
{
	struct info d;
	int r;

	r = run_perm_child(self->a.uuid, 0);
	EXPECT_EQ(PERM_OK, r) TH_LOG("capset child failed at: %s",
				     r >= 0 && r < (int)ARRAY_SIZE(perm_step) ?
				     perm_step[r] : "crash");
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(1000, d.hot_set);
}

TEST_F(nl, unprivileged_nobody)
{
	struct info d;
	int r;

	r = run_perm_child(self->a.uuid, 1);
	EXPECT_EQ(PERM_OK, r) TH_LOG("uid 65534 child failed at: %s",
				     r >= 0 && r < (int)ARRAY_SIZE(perm_step) ?
				     perm_step[r] : "crash");
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(1000, d.hot_set);
}

/* ------------------------------------------------------------ faults */

/* Read a data fd in RW_SIZE reads: bytes until the first failure. */
static int read_until_error(int fd, uint64_t *bytes, int *reads,
			    ssize_t *last)
{
	char *buf = malloc(RW_SIZE);
	ssize_t n;

	*bytes = 0;
	*reads = 0;
	if (!buf)
		return -ENOMEM;
	for (;;) {
		n = read(fd, buf, RW_SIZE);
		(*reads)++;
		if (n <= 0)
			break;
		*last = n;
		*bytes += n;
	}
	free(buf);
	return n < 0 ? -errno : 0;
}

static void save_fault_case(struct __test_metadata *_metadata,
			    FIXTURE_DATA(nl) *self, bool with_errno,
			    int want_errno)
{
	const uint64_t at = 1000000;
	struct migsim_buf s = { 0 };
	uint32_t before, after;
	enum vmig_dev_state st;
	uint64_t bytes, chunk;
	ssize_t last = 0;
	int fd = -1, reads, ret;

	ASSERT_EQ(0, checksum_of(&self->a, &before));
	if (with_errno)
		ret = fault_set(&self->nl, self->a.uuid,
				FAULTS({ MIGSIM_FAULT_A_SAVE_OFFSET, at },
				       { MIGSIM_FAULT_A_SAVE_ERRNO, want_errno }),
				&self->ext);
	else
		ret = fault_set(&self->nl, self->a.uuid,
				FAULTS({ MIGSIM_FAULT_A_SAVE_OFFSET, at }),
				&self->ext);
	ASSERT_EQ(0, ret) TH_LOG("%s", self->ext.msg);

	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_STOP_COPY, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(-want_errno, read_until_error(fd, &bytes, &reads, &last));
	/* every byte before the offset, not one more */
	EXPECT_EQ(at, bytes);
	EXPECT_EQ(at % RW_SIZE, last);
	close(fd);

	/* the device is not broken: it goes back to RUNNING unchanged */
	ASSERT_EQ(0, migsim_get_state(&self->a, &st));
	EXPECT_EQ(VMIG_STATE_STOP_COPY, st);
	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_RUNNING, NULL));
	ASSERT_EQ(0, migsim_get_state(&self->a, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, checksum_of(&self->a, &after));
	EXPECT_EQ(before, after);

	/* one-shot: the next save is whole, and loads */
	ASSERT_EQ(0, migsim_save(&self->a, RW_SIZE, &s));
	ASSERT_EQ(0, migsim_chunk_size(self->a.uuid, &chunk));
	EXPECT_EQ(migsim_stream_len(STATE_SIZE, chunk), s.len);
	ASSERT_EQ(0, migsim_load(&self->b, s.data, s.len, RW_SIZE));
	ASSERT_EQ(0, checksum_of(&self->b, &after));
	EXPECT_EQ(before, after);
	migsim_buf_free(&s);
}

TEST_F(nl, save_fault_errno)
{
	save_fault_case(_metadata, self, true, ENOSPC);
}

TEST_F(nl, save_fault_default_eio)
{
	save_fault_case(_metadata, self, false, EIO);
}

TEST_F(nl, load_fault_then_reset)
{
	const uint64_t at = 1000003;
	struct migsim_buf s = { 0 };
	uint32_t src, dst0, dst;
	enum vmig_dev_state st;
	size_t off = 0;
	ssize_t n;
	int fd = -1;

	ASSERT_EQ(0, checksum_of(&self->a, &src));
	ASSERT_EQ(0, checksum_of(&self->b, &dst0));
	ASSERT_NE(src, dst0);
	ASSERT_EQ(0, migsim_save(&self->a, RW_SIZE, &s));
	ASSERT_LT(at + RW_SIZE, s.len);

	ASSERT_EQ(0, fault_set(&self->nl, self->b.uuid,
			       FAULTS({ MIGSIM_FAULT_A_LOAD_OFFSET, at }),
			       &self->ext)) TH_LOG("%s", self->ext.msg);
	ASSERT_EQ(0, migsim_set_state(&self->b, VMIG_STATE_RESUMING, &fd));
	ASSERT_LE(0, fd);
	/* writes before the offset go in; the one across it fails */
	while (off + RW_SIZE <= at) {
		n = write(fd, s.data + off, RW_SIZE);
		ASSERT_EQ(RW_SIZE, n) TH_LOG("write at %zu: %s", off,
					     strerror(errno));
		off += n;
	}
	n = write(fd, s.data + off, RW_SIZE);
	EXPECT_EQ(-1, n);
	EXPECT_EQ(EIO, errno);
	close(fd);

	/* RESUMING -> STOP fails with the same errno: ERROR */
	EXPECT_EQ(-EIO, migsim_set_state(&self->b, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, migsim_get_state(&self->b, &st));
	EXPECT_EQ(VMIG_STATE_ERROR, st);
	ASSERT_EQ(0, checksum_of(&self->b, &dst));
	EXPECT_EQ(dst0, dst);

	/* resettable, unchanged, and then a good load works */
	ASSERT_EQ(0, vmig_vfio_reset(self->b.dev));
	ASSERT_EQ(0, migsim_get_state(&self->b, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, checksum_of(&self->b, &dst));
	EXPECT_EQ(dst0, dst);
	ASSERT_EQ(0, migsim_load(&self->b, s.data, s.len, RW_SIZE));
	ASSERT_EQ(0, checksum_of(&self->b, &dst));
	EXPECT_EQ(src, dst);
	migsim_buf_free(&s);
}

/* Save with read() of RW_SIZE: the read() calls made and the time taken. */
static int timed_save(struct migsim_inst *in, struct migsim_buf *b,
		      int *reads, double *secs)
{
	double t0;
	int fd = -1, ret;
	char *tmp;

	ret = migsim_set_state(in, VMIG_STATE_STOP, NULL);
	if (!ret)
		ret = migsim_set_state(in, VMIG_STATE_STOP_COPY, &fd);
	if (ret)
		return ret;
	tmp = malloc(RW_SIZE);
	if (!tmp) {
		close(fd);
		return -ENOMEM;
	}
	*reads = 0;
	t0 = now();
	for (;;) {
		ssize_t n = read(fd, tmp, RW_SIZE);

		(*reads)++;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (!n)
			break;
		ret = migsim_buf_append(b, tmp, n);
		if (ret)
			break;
	}
	*secs = now() - t0;
	free(tmp);
	close(fd);
	return ret ? ret : migsim_set_state(in, VMIG_STATE_RUNNING, NULL);
}

TEST_F(nl, slow_device)
{
	const uint32_t delay_us = 2000;
	struct migsim_buf s = { 0 }, s2 = { 0 };
	uint32_t src, dst;
	double secs;
	int reads;

	ASSERT_EQ(0, checksum_of(&self->a, &src));
	ASSERT_EQ(0, fault_set(&self->nl, self->a.uuid,
			       FAULTS({ MIGSIM_FAULT_A_READ_DELAY_US,
					delay_us }),
			       &self->ext)) TH_LOG("%s", self->ext.msg);
	ASSERT_EQ(0, timed_save(&self->a, &s, &reads, &secs));
	TH_LOG("%d reads in %.3f s (at least %.3f s)", reads, secs,
	       reads * delay_us / 1e6);
	EXPECT_LE(reads * delay_us / 1e6, secs);
	/* correct all the same */
	ASSERT_EQ(0, migsim_load(&self->b, s.data, s.len, RW_SIZE));
	ASSERT_EQ(0, checksum_of(&self->b, &dst));
	EXPECT_EQ(src, dst);

	/* the delay is not one-shot */
	ASSERT_EQ(0, timed_save(&self->a, &s2, &reads, &secs));
	EXPECT_LE(reads * delay_us / 1e6, secs);
	EXPECT_EQ(s.len, s2.len);
	EXPECT_EQ(0, memcmp(s.data, s2.data, s.len));

	/* read-delay 0 turns it off: no longer a multiple of it */
	ASSERT_EQ(0, fault_set(&self->nl, self->a.uuid,
			       FAULTS({ MIGSIM_FAULT_A_READ_DELAY_US, 0 }),
			       NULL));
	migsim_buf_free(&s2);
	ASSERT_EQ(0, timed_save(&self->a, &s2, &reads, &secs));
	TH_LOG("without delay: %d reads in %.3f s", reads, secs);
	migsim_buf_free(&s);
	migsim_buf_free(&s2);
}

TEST_F(nl, fail_transition_then_reset)
{
	uint32_t before, after;
	enum vmig_dev_state st;

	ASSERT_EQ(0, checksum_of(&self->a, &before));
	ASSERT_EQ(0, fault_set(&self->nl, self->a.uuid,
			       FAULTS({ MIGSIM_FAULT_A_FAIL_TRANSITION,
					EXFULL }),
			       &self->ext)) TH_LOG("%s", self->ext.msg);
	EXPECT_EQ(-EXFULL, migsim_set_state(&self->a, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, migsim_get_state(&self->a, &st));
	EXPECT_EQ(VMIG_STATE_ERROR, st);
	ASSERT_EQ(0, vmig_vfio_reset(self->a.dev));
	ASSERT_EQ(0, migsim_get_state(&self->a, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, checksum_of(&self->a, &after));
	EXPECT_EQ(before, after);
	/* one-shot */
	EXPECT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_STOP, NULL));
	EXPECT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_RUNNING, NULL));
}

TEST_F(nl, clear_disarms_every_fault)
{
	struct migsim_buf s = { 0 };
	uint64_t chunk;

	ASSERT_EQ(0, fault_set(&self->nl, self->a.uuid,
			       FAULTS({ MIGSIM_FAULT_A_SAVE_OFFSET, 100 },
				      { MIGSIM_FAULT_A_FAIL_TRANSITION, EIO },
				      { MIGSIM_FAULT_A_READ_DELAY_US, 1000 }),
			       &self->ext)) TH_LOG("%s", self->ext.msg);
	ASSERT_EQ(0, fault_set(&self->nl, self->b.uuid,
			       FAULTS({ MIGSIM_FAULT_A_LOAD_OFFSET, 100 }),
			       &self->ext)) TH_LOG("%s", self->ext.msg);
	ASSERT_EQ(0, fault_clear(&self->nl, self->a.uuid));
	ASSERT_EQ(0, fault_clear(&self->nl, self->b.uuid));
	ASSERT_EQ(0, migsim_save(&self->a, RW_SIZE, &s));
	ASSERT_EQ(0, migsim_chunk_size(self->a.uuid, &chunk));
	EXPECT_EQ(migsim_stream_len(STATE_SIZE, chunk), s.len);
	EXPECT_EQ(0, migsim_load(&self->b, s.data, s.len, RW_SIZE));
	migsim_buf_free(&s);
}

/* ------------------------------------------------------------ events */

static const struct event script_events[] = {
	{ VFIO_DEVICE_STATE_RUNNING, VFIO_DEVICE_STATE_PRE_COPY },
	{ VFIO_DEVICE_STATE_PRE_COPY, VFIO_DEVICE_STATE_PRE_COPY_P2P },
	{ VFIO_DEVICE_STATE_PRE_COPY_P2P, VFIO_DEVICE_STATE_STOP_COPY },
	{ VFIO_DEVICE_STATE_STOP_COPY, VFIO_DEVICE_STATE_STOP },
	/* STOP -> RUNNING is two arcs with P2P */
	{ VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_RUNNING_P2P },
	{ VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_RUNNING },
	/* a failed arc, and the reset */
	{ VFIO_DEVICE_STATE_RUNNING, VFIO_DEVICE_STATE_ERROR },
	{ VFIO_DEVICE_STATE_ERROR, VFIO_DEVICE_STATE_RUNNING },
};

/* RUNNING -> PRE_COPY -> PRE_COPY_P2P -> STOP_COPY -> STOP -> RUNNING,
 * then a failing SET and a reset: each a single SET ioctl. */
static int run_script(struct migsim_nl *nl, struct migsim_inst *in)
{
	static const enum vmig_dev_state steps[] = {
		VMIG_STATE_PRE_COPY, VMIG_STATE_PRE_COPY_P2P,
		VMIG_STATE_STOP_COPY, VMIG_STATE_STOP, VMIG_STATE_RUNNING,
	};
	int fd = -1, ret;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(steps); i++) {
		int dfd = -1;

		ret = migsim_set_state(in, steps[i], &dfd);
		if (ret)
			return ret;
		if (dfd >= 0) {
			if (fd >= 0)
				close(fd);
			fd = dfd;
		}
	}
	if (fd >= 0)
		close(fd);
	ret = fault_set(nl, in->uuid,
			FAULTS({ MIGSIM_FAULT_A_FAIL_TRANSITION, EIO }), NULL);
	if (ret)
		return ret;
	if (migsim_set_state(in, VMIG_STATE_STOP, NULL) != -EIO)
		return -EPROTO;
	return vmig_vfio_reset(in->dev);
}

TEST_F(nl, events_follow_every_arc)
{
	struct events ev = { .uuid = self->a.uuid };
	struct events other = { .uuid = self->b.uuid };
	struct migsim_nl sub;
	int i;

	ASSERT_EQ(0, events_open(&sub));
	ASSERT_EQ(0, run_script(&self->nl, &self->a));
	ASSERT_EQ(0, events_drain(&sub, &ev, 300));
	EXPECT_EQ(ARRAY_SIZE(script_events), ev.n);
	for (i = 0; i < ev.n && i < (int)ARRAY_SIZE(script_events); i++) {
		EXPECT_EQ(script_events[i].old, ev.v[i].old)
			TH_LOG("event %d: %s -> %s", i,
			       vmig_state_name(ev.v[i].old),
			       vmig_state_name(ev.v[i].new));
		EXPECT_EQ(script_events[i].new, ev.v[i].new)
			TH_LOG("event %d: %s -> %s", i,
			       vmig_state_name(ev.v[i].old),
			       vmig_state_name(ev.v[i].new));
	}
	/* the other instance's events carry its own UUID */
	ASSERT_EQ(0, migsim_set_state(&self->b, VMIG_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, events_drain(&sub, &other, 200));
	EXPECT_EQ(1, other.n);
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, other.v[0].old);
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING_P2P, other.v[0].new);
	migsim_nl_close(&sub);
}

/* ------------------------------------------------------------ vmigctl */

#define NEED_VMIGCTL() do { \
	if (access(VMIGCTL, X_OK)) \
		SKIP(return, "no " VMIGCTL); \
} while (0)

TEST_F(nl, vmigctl_list_show)
{
	char out[16384], err[4096], want[128];
	int rc;

	NEED_VMIGCTL();
	rc = VMIGCTL_RUN(out, err, "dev", "list");
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	EXPECT_NE(NULL, strstr(out, "UUID"));
	EXPECT_NE(NULL, strstr(out, self->a.uuid));
	EXPECT_NE(NULL, strstr(out, self->b.uuid));

	rc = VMIGCTL_RUN(out, err, "dev", "list", "--json");
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	EXPECT_EQ('[', out[0]);
	snprintf(want, sizeof(want), "\"uuid\":\"%s\"", self->a.uuid);
	EXPECT_NE(NULL, strstr(out, want));

	rc = VMIGCTL_RUN(out, err, "dev", "show", self->a.uuid, "--json");
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	EXPECT_NE(NULL, strstr(out, want));
	EXPECT_NE(NULL, strstr(out, "\"state\":\"RUNNING\""));
	snprintf(want, sizeof(want), "\"state_size\":%llu",
		 (unsigned long long)STATE_SIZE);
	EXPECT_NE(NULL, strstr(out, want)) TH_LOG("%s", out);

	rc = VMIGCTL_RUN(out, err, "dev", "show", "dev", self->a.uuid);
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	EXPECT_NE(NULL, strstr(out, "4 MiB")) TH_LOG("%s", out);

	rc = VMIGCTL_RUN(out, err, "dev", "show", "--help");
	EXPECT_EQ(0, rc);
	EXPECT_NE(NULL, strstr(out, "usage:"));
}

TEST_F(nl, vmigctl_set_and_errors)
{
	char out[4096], err[4096], uuid[MIGSIM_UUID_LEN + 1];
	struct info d;
	int rc;

	NEED_VMIGCTL();
	rc = VMIGCTL_RUN(out, err, "dev", "set", self->a.uuid, "size", "8M",
			 "dirty-rate", "1M", "hot-set", "500",
			 "nonprecopy-size=2M");
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	ASSERT_EQ(0, dev_get(&self->nl, self->a.uuid, &d, NULL));
	EXPECT_EQ(8 * MiB, d.state_size);
	EXPECT_EQ(1 * MiB, d.dirty_rate);
	EXPECT_EQ(500, d.hot_set);
	EXPECT_EQ(2 * MiB, d.nonprecopy_size);
	EXPECT_EQ(0, VMIGCTL_RUN(out, err, "dev", "set", self->a.uuid,
				 "dirty-rate", "0"));

	/* the kernel's extack, naming the keyword */
	rc = VMIGCTL_RUN(out, err, "dev", "set", self->a.uuid, "hot-set", "0");
	EXPECT_EQ(1, rc);
	EXPECT_NE(NULL, strstr(err, "hot-set")) TH_LOG("stderr: %s", err);
	EXPECT_NE(NULL, strstr(err, "range")) TH_LOG("stderr: %s", err);

	ASSERT_EQ(0, migsim_uuid_random(uuid));
	rc = VMIGCTL_RUN(out, err, "dev", "show", uuid);
	EXPECT_EQ(1, rc);
	EXPECT_NE(NULL, strstr(err, "no vfio-migsim instance"))
		TH_LOG("stderr: %s", err);

	/* command-line errors: status 2 */
	EXPECT_EQ(2, VMIGCTL_RUN(out, err, "dev", "set", self->a.uuid));
	EXPECT_EQ(2, VMIGCTL_RUN(out, err, "dev", "set", "size", "1G"));
	EXPECT_EQ(2, VMIGCTL_RUN(out, err, "dev", "set", self->a.uuid,
				 "size", "1Q"));
	EXPECT_EQ(2, VMIGCTL_RUN(out, err, "dev", "set", self->a.uuid,
				 "colour", "red"));
	EXPECT_EQ(2, VMIGCTL_RUN(out, err, "dev", "fault", self->a.uuid,
				 "save-at", "1M", "errno", "ENOTANERRNO"));
	EXPECT_EQ(2, VMIGCTL_RUN(out, err, "dev", "frobnicate"));
}

TEST_F(nl, vmigctl_fault)
{
	char out[4096], err[4096];
	enum vmig_dev_state st;
	uint64_t bytes;
	ssize_t last = 0;
	int rc, fd = -1, reads;

	NEED_VMIGCTL();
	rc = VMIGCTL_RUN(out, err, "dev", "fault", self->a.uuid,
			 "fail-transition", "EXFULL");
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	EXPECT_EQ(-EXFULL, migsim_set_state(&self->a, VMIG_STATE_STOP, NULL));
	ASSERT_EQ(0, vmig_vfio_reset(self->a.dev));

	/* by number, and cleared again */
	rc = VMIGCTL_RUN(out, err, "dev", "fault", self->a.uuid,
			 "fail-transition", "5");
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	rc = VMIGCTL_RUN(out, err, "dev", "fault", self->a.uuid, "clear");
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	EXPECT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_STOP, NULL));

	/* save-at with a suffix and an errno name */
	rc = VMIGCTL_RUN(out, err, "dev", "fault", self->a.uuid, "save-at",
			 "512K", "errno", "enospc");
	EXPECT_EQ(0, rc) TH_LOG("stderr: %s", err);
	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_STOP_COPY, &fd));
	EXPECT_EQ(-ENOSPC, read_until_error(fd, &bytes, &reads, &last));
	EXPECT_EQ(512 * KiB, bytes);
	close(fd);
	ASSERT_EQ(0, migsim_set_state(&self->a, VMIG_STATE_RUNNING, NULL));
	ASSERT_EQ(0, migsim_get_state(&self->a, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
}

/* Toggle RUNNING <-> RUNNING_P2P until the watcher prints a line. */
static int sync_watcher(struct migsim_inst *in, struct child *c, char *line,
			size_t len)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (migsim_set_state(in, VMIG_STATE_RUNNING_P2P, NULL) ||
		    migsim_set_state(in, VMIG_STATE_RUNNING, NULL))
			return -EIO;
		if (!child_line(c, line, len, 20))
			return 0;
	}
	return -ETIMEDOUT;
}

static bool is_sync_line(const char *line)
{
	return strstr(line, " RUNNING -> RUNNING_P2P") ||
	       strstr(line, " RUNNING_P2P -> RUNNING");
}

TEST_F_TIMEOUT(nl, vmigctl_watch_sequence, 60)
{
	const char *const argv[] = { "vmigctl", "dev", "watch", self->a.uuid,
				     NULL };
	char line[512], want[128];
	struct child c;
	size_t i = 0;
	int ret;

	NEED_VMIGCTL();
	ASSERT_EQ(0, child_start(&c, argv));
	ret = sync_watcher(&self->a, &c, line, sizeof(line));
	if (ret)
		kill(c.pid, SIGKILL);
	ASSERT_EQ(0, ret) TH_LOG("vmigctl dev watch printed nothing");
	EXPECT_NE(NULL, strstr(line, self->a.uuid)) TH_LOG("%s", line);

	ASSERT_EQ(0, run_script(&self->nl, &self->a));
	/* events of b must not show up */
	ASSERT_EQ(0, migsim_set_state(&self->b, VMIG_STATE_STOP, NULL));
	for (;;) {
		if (child_line(&c, line, sizeof(line), 5000)) {
			line[0] = '\0';
			break;
		}
		if (!is_sync_line(line))
			break;
	}
	for (i = 0; i < ARRAY_SIZE(script_events); i++) {
		if (i) {
			if (child_line(&c, line, sizeof(line), 5000)) {
				EXPECT_TRUE(false)
					TH_LOG("no line for event %zu", i);
				break;
			}
		}
		snprintf(want, sizeof(want), " %s %s -> %s", self->a.uuid,
			 vmig_state_name(script_events[i].old),
			 vmig_state_name(script_events[i].new));
		EXPECT_NE(NULL, strstr(line, want))
			TH_LOG("line %zu: \"%s\", want \"...%s\"", i, line,
			       want);
	}
	EXPECT_EQ(-ETIMEDOUT, child_line(&c, line, sizeof(line), 300))
		TH_LOG("extra line: %s", line);
	/* SIGINT ends it, with status 0 */
	kill(c.pid, SIGINT);
	EXPECT_EQ(0, child_wait(&c, 5000));
}

TEST_F_TIMEOUT(nl, vmigctl_watch_count_json_timeout, 60)
{
	const char *const argv[] = { "vmigctl", "dev", "watch", self->a.uuid,
				     "--count", "1", "--json", NULL };
	const char *const quiet[] = { "vmigctl", "dev", "watch", self->b.uuid,
				      "--timeout", "1", NULL };
	const char *const short_[] = { "vmigctl", "dev", "watch",
				       self->b.uuid, "--timeout", "0.5",
				       "--count", "3", NULL };
	char line[512], want[128];
	struct child c;
	double t0;

	NEED_VMIGCTL();
	ASSERT_EQ(0, child_start(&c, argv));
	ASSERT_EQ(0, sync_watcher(&self->a, &c, line, sizeof(line)))
		kill(c.pid, SIGKILL);
	snprintf(want, sizeof(want), "\"uuid\":\"%s\"", self->a.uuid);
	EXPECT_NE(NULL, strstr(line, want)) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, "\"old\":\"RUNNING")) TH_LOG("%s", line);
	EXPECT_EQ('{', line[0]);
	/* --count 1: it ends by itself, after exactly one line */
	EXPECT_EQ(0, child_wait(&c, 5000));

	/* --timeout with nothing happening: status 0 and no output */
	t0 = now();
	ASSERT_EQ(0, child_start(&c, quiet));
	EXPECT_EQ(-EPIPE, child_line(&c, line, sizeof(line), 10000));
	EXPECT_EQ(0, child_wait(&c, 5000));
	EXPECT_LE(1.0, now() - t0);

	/* --count not reached before --timeout: status 1 */
	ASSERT_EQ(0, child_start(&c, short_));
	EXPECT_EQ(1, child_wait(&c, 10000));
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Channel handshake and authentication: a connection that cannot prove it
 * holds the session's secret is refused before any state is read, and the
 * destination keeps waiting for the real source.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "standin.h"
#include "transport.h"
#include "vmig.h"

static const uint8_t session_id[VMIG_SESSION_ID_LEN] = "session-0123456";
static const char secret[] = "a shared secret of 32 bytes.....";

FIXTURE(auth) {
	int lfd;
	struct sockaddr_in addr;
	struct vmig_session *dst;
	struct standin dd;
	pthread_t thread;
	int accept_ret;
};

static void config(struct vmig_session_config *cfg, const char *sec,
		   unsigned int timeout_ms)
{
	vmig_session_config_init(cfg);
	memcpy(cfg->session_id, session_id, sizeof(session_id));
	cfg->secret = sec;
	cfg->secret_len = strlen(sec);
	cfg->timeout_ms = timeout_ms;
	cfg->chunk_size = 64 << 10;
	cfg->mem_limit = 1 << 20;
}

static void *accept_thread(void *arg)
{
	FIXTURE_DATA(auth) *self = arg;

	self->accept_ret = vmig_session_accept(self->dst, self->lfd);
	return NULL;
}

FIXTURE_SETUP(auth)
{
	struct vmig_session_config cfg;
	socklen_t len = sizeof(self->addr);

	self->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, self->lfd);
	memset(&self->addr, 0, sizeof(self->addr));
	self->addr.sin_family = AF_INET;
	self->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(0, bind(self->lfd, (void *)&self->addr, sizeof(self->addr)));
	ASSERT_EQ(0, listen(self->lfd, 16));
	ASSERT_EQ(0, getsockname(self->lfd, (void *)&self->addr, &len));

	/* The destination's handshakes time out fast, the source's do not. */
	config(&cfg, secret, 300);
	ASSERT_EQ(0, vmig_session_create(VMIG_ROLE_DESTINATION, &cfg,
					 &self->dst));
	standin_init_dest(&self->dd, "dev0");
	ASSERT_EQ(0, vmig_session_add_device(self->dst, "dev0", STANDIN_FLAGS,
					     &standin_ops, &self->dd));
	self->accept_ret = 1;
	ASSERT_EQ(0, pthread_create(&self->thread, NULL, accept_thread, self));
}

FIXTURE_TEARDOWN(auth)
{
	if (self->accept_ret == 1) {
		vmig_session_abort(self->dst);
		pthread_join(self->thread, NULL);
	}
	vmig_session_destroy(self->dst);
	standin_release(&self->dd);
	close(self->lfd);
}

/* A source with this secret and session id; returns connect's result. */
static int source_connect(FIXTURE_DATA(auth) *self, const char *sec,
			  const uint8_t *sid, struct vmig_session **out)
{
	struct vmig_session_config cfg;
	struct vmig_session *src;
	static struct standin sd;
	int ret;

	standin_init_dest(&sd, "dev0");
	config(&cfg, sec, 5000);
	if (sid)
		memcpy(cfg.session_id, sid, VMIG_SESSION_ID_LEN);
	ret = vmig_session_create(VMIG_ROLE_SOURCE, &cfg, &src);
	if (ret)
		return ret;
	vmig_session_add_device(src, "dev0", STANDIN_FLAGS, &standin_ops, &sd);
	ret = vmig_session_connect(src, (void *)&self->addr,
				   sizeof(self->addr));
	if (out)
		*out = src;
	else
		vmig_session_destroy(src);
	return ret;
}

/* The right source connects; the destination's accept then succeeds. */
static void finish(struct __test_metadata *_metadata,
		   FIXTURE_DATA(auth) *self, uint64_t refused)
{
	struct vmig_session_stats st;
	struct vmig_session *src = NULL;

	ASSERT_EQ(0, source_connect(self, secret, NULL, &src));
	pthread_join(self->thread, NULL);
	EXPECT_EQ(0, self->accept_ret);
	self->accept_ret = 0;
	vmig_session_get_stats(self->dst, &st);
	EXPECT_EQ(refused, st.refused);
	/* Nothing was asked of the destination's device. */
	EXPECT_EQ(0U, self->dd.arcs);
	vmig_session_destroy(src);
}

TEST_F(auth, right_secret_connects)
{
	finish(_metadata, self, 0);
}

TEST_F(auth, wrong_secret_is_refused)
{
	struct vmig_session_error e;
	struct vmig_session *src = NULL;

	EXPECT_EQ(-EACCES, source_connect(self, "another secret of 32 bytes......",
					  NULL, &src));
	EXPECT_EQ(-EACCES, vmig_session_get_error(src, &e));
	EXPECT_EQ(0, e.channel);
	vmig_session_destroy(src);
	finish(_metadata, self, 1);
}

TEST_F(auth, wrong_session_id_is_refused)
{
	static const uint8_t other[VMIG_SESSION_ID_LEN] = "session-9999999";

	EXPECT_EQ(-ESTALE, source_connect(self, secret, other, NULL));
	finish(_metadata, self, 1);
}

static int raw_connect(FIXTURE_DATA(auth) *self)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (void *)&self->addr, sizeof(self->addr)))
		return -1;
	return fd;
}

TEST_F(auth, garbage_is_refused_after_its_header)
{
	uint8_t junk[VMIG_CHAN_HDR_LEN], reply[VMIG_AUTH_MSG_LEN];
	uint32_t status;
	int fd;

	memset(junk, 'G', sizeof(junk));
	fd = raw_connect(self);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(junk), send(fd, junk, sizeof(junk), 0));
	/* One refusal (status BAD_HEADER), then the connection closes. */
	ASSERT_EQ((ssize_t)sizeof(reply), recv(fd, reply, sizeof(reply),
					       MSG_WAITALL));
	memcpy(&status, reply + 4, 4);
	EXPECT_EQ(VMIG_CHAN_BAD_HEADER, (int)le32toh(status));
	EXPECT_GE(0, recv(fd, reply, sizeof(reply), 0));
	close(fd);
	finish(_metadata, self, 1);
}

TEST_F(auth, silent_connection_times_out)
{
	int fd = raw_connect(self);

	ASSERT_LE(0, fd);
	/* The refusal comes after the destination's 300 ms. */
	finish(_metadata, self, 1);
	close(fd);
}

TEST_F(auth, unwanted_channel_kind_is_refused)
{
	struct vmig_chan_auth a = {
		.secret = (const uint8_t *)secret,
		.secret_len = strlen(secret),
		.timeout_ms = 5000,
	};
	struct vmig_chan_id id = { .kind = VMIG_CHAN_RAM, .count = 1 };

	memcpy(a.session_id, session_id, sizeof(session_id));
	memcpy(id.session_id, session_id, sizeof(session_id));
	EXPECT_EQ(-EUSERS, vmig_chan_connect((void *)&self->addr,
					     sizeof(self->addr), &a, &id));
	finish(_metadata, self, 1);
}

/* ------------------------------------------ the source checks, too */

struct fake_server {
	int lfd;
	bool honest;		/* run the real handshake */
	struct vmig_chan_auth auth;
	struct vmig_chan_id id;
	int ret;
};

static void *fake_server(void *arg)
{
	struct fake_server *f = arg;
	uint8_t buf[VMIG_CHAN_HDR_LEN], reply[VMIG_AUTH_MSG_LEN] = { 0 };
	const char *why;
	uint32_t magic = htole32(VMIG_CHAN_MAGIC);
	int fd = accept(f->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (f->honest) {
		f->ret = vmig_chan_handshake_accept(fd, &f->auth, NULL, NULL,
						    &f->id, &why);
	} else {
		/* Accept anything, without knowing the secret. */
		memcpy(reply, &magic, 4);
		if (recv(fd, buf, sizeof(buf), MSG_WAITALL) == sizeof(buf) &&
		    send(fd, reply, sizeof(reply), 0) == sizeof(reply) &&
		    recv(fd, buf, 32, MSG_WAITALL) == 32)
			send(fd, reply, sizeof(reply), 0);
	}
	close(fd);
	return NULL;
}

TEST_F(auth, impostor_destination_is_detected)
{
	struct fake_server f = { .honest = false };
	struct sockaddr_in addr = self->addr;
	struct vmig_chan_auth a = {
		.secret = (const uint8_t *)secret,
		.secret_len = strlen(secret),
		.timeout_ms = 5000,
	};
	struct vmig_chan_id id = { .kind = VMIG_CHAN_DEVSTATE, .count = 1 };
	socklen_t len = sizeof(addr);
	pthread_t t;

	f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_port = 0;
	ASSERT_EQ(0, bind(f.lfd, (void *)&addr, sizeof(addr)));
	ASSERT_EQ(0, listen(f.lfd, 1));
	ASSERT_EQ(0, getsockname(f.lfd, (void *)&addr, &len));
	ASSERT_EQ(0, pthread_create(&t, NULL, fake_server, &f));
	EXPECT_EQ(-EACCES, vmig_chan_connect((void *)&addr, sizeof(addr),
					     &a, &id));
	pthread_join(t, NULL);
	close(f.lfd);
	finish(_metadata, self, 0);
}

TEST_F(auth, handshake_reports_kind_index_and_count)
{
	struct fake_server f = { .honest = true };
	struct sockaddr_in addr = self->addr;
	struct vmig_chan_id id = {
		.kind = VMIG_CHAN_DEVSTATE, .index = 2, .count = 4,
	};
	socklen_t len = sizeof(addr);
	pthread_t t;
	int fd;

	f.auth.secret = (const uint8_t *)secret;
	f.auth.secret_len = strlen(secret);
	f.auth.timeout_ms = 5000;
	memcpy(f.auth.session_id, session_id, sizeof(session_id));
	memcpy(id.session_id, session_id, sizeof(session_id));
	f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_port = 0;
	ASSERT_EQ(0, bind(f.lfd, (void *)&addr, sizeof(addr)));
	ASSERT_EQ(0, listen(f.lfd, 1));
	ASSERT_EQ(0, getsockname(f.lfd, (void *)&addr, &len));
	ASSERT_EQ(0, pthread_create(&t, NULL, fake_server, &f));
	fd = vmig_chan_connect((void *)&addr, sizeof(addr), &f.auth, &id);
	EXPECT_LE(0, fd);
	pthread_join(t, NULL);
	EXPECT_EQ(0, f.ret);
	EXPECT_EQ(VMIG_CHAN_DEVSTATE, f.id.kind);
	EXPECT_EQ(2, f.id.index);
	EXPECT_EQ(4, f.id.count);
	if (fd >= 0)
		close(fd);
	close(f.lfd);
	finish(_metadata, self, 0);
}

struct waiter {
	struct vmig_session *s;
	int lfd;
	int ret;
};

static void *wait_accept(void *arg)
{
	struct waiter *w = arg;

	w->ret = vmig_session_accept(w->s, w->lfd);
	return NULL;
}

/* A destination waiting without a time limit ends when aborted. */
TEST_F(auth, abort_ends_an_endless_wait)
{
	struct vmig_session_config cfg;
	struct waiter w = { .ret = 1 };
	struct sockaddr_in addr = self->addr;
	socklen_t len = sizeof(addr);
	pthread_t t;

	config(&cfg, secret, 0);
	ASSERT_EQ(0, vmig_session_create(VMIG_ROLE_DESTINATION, &cfg, &w.s));
	ASSERT_EQ(0, vmig_session_add_device(w.s, "dev0", STANDIN_FLAGS,
					     &standin_ops, &self->dd));
	w.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_port = 0;
	ASSERT_EQ(0, bind(w.lfd, (void *)&addr, sizeof(addr)));
	ASSERT_EQ(0, listen(w.lfd, 1));
	ASSERT_EQ(0, getsockname(w.lfd, (void *)&addr, &len));
	ASSERT_EQ(0, pthread_create(&t, NULL, wait_accept, &w));
	usleep(20000);
	vmig_session_abort(w.s);
	pthread_join(t, NULL);
	EXPECT_EQ(-ECANCELED, w.ret);
	vmig_session_destroy(w.s);
	close(w.lfd);
	finish(_metadata, self, 0);
}

TEST(short_or_long_secrets_are_refused)
{
	struct vmig_session_config cfg;
	struct vmig_session *s;

	vmig_session_config_init(&cfg);
	cfg.secret = "short";
	cfg.secret_len = 5;
	EXPECT_EQ(-EINVAL, vmig_session_create(VMIG_ROLE_SOURCE, &cfg, &s));
	cfg.secret = secret;
	cfg.secret_len = VMIG_SECRET_MAX_LEN + 1;
	EXPECT_EQ(-EINVAL, vmig_session_create(VMIG_ROLE_SOURCE, &cfg, &s));
}

TEST_HARNESS_MAIN

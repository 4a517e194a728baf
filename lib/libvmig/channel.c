// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Migration channels: the channel header, the challenge/response
 * authentication, and socket I/O (io_uring for the data path, plain
 * blocking calls for setup and control).
 *
 * Handshake (all integers little endian, see Documentation/wire.rst):
 *
 *	source -> destination   header (64 bytes): magic, version, kind,
 *	                        index, count, session id, source nonce
 *	destination -> source   challenge (48 bytes): magic, status,
 *	                        destination nonce
 *	source -> destination   proof (32 bytes):
 *	                        HMAC-SHA256(secret, "vmig-client" header challenge)
 *	destination -> source   verdict (48 bytes): magic, status,
 *	                        HMAC-SHA256(secret, "vmig-server" header challenge
 *	                        proof)
 *
 * Both sides prove they hold the secret over nonces chosen by the other,
 * so neither a proof nor a verdict can be replayed.  The destination reads
 * nothing from a connection but its header and proof before its verdict.
 *
 * HMAC-SHA256 comes from nettle: the kernel's AF_ALG "hmac(sha256)" is not
 * available on every host (CONFIG_CRYPTO_USER_API_HASH may be off or a
 * module), and one code path that runs everywhere is the one we test.
 */
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <nettle/hmac.h>
#include <nettle/memops.h>

#include "transport.h"

static const char client_label[] = "vmig-client";
static const char server_label[] = "vmig-server";

/* ------------------------------------------------------ blocking helpers */

int vmig_send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

ssize_t vmig_recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = recv(fd, p + done, len - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (!n)
			return done ? -ECONNRESET : 0;
		done += n;
	}
	return done;
}

/* Receive exactly len bytes; a clean EOF is an error here. */
static int recv_exact(int fd, void *buf, size_t len)
{
	ssize_t n = vmig_recv_all(fd, buf, len);

	if (n < 0)
		return n;
	return n ? 0 : -ECONNRESET;
}

int vmig_sock_set_timeout(int fd, unsigned int ms)
{
	struct timeval tv = {
		.tv_sec = ms / 1000,
		.tv_usec = (ms % 1000) * 1000,
	};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

/*
 * After the handshake: a TCP peer that acknowledges nothing for
 * timeout_ms (data left unacknowledged, TCP_USER_TIMEOUT, which counts a
 * zero window too; or keepalive probes unanswered on an idle connection)
 * fails the socket's calls with -ETIMEDOUT, so that a partition or a host
 * gone is noticed in about that long, not after TCP's minutes of retries.
 */
static int set_liveness(int fd, unsigned int timeout_ms)
{
	unsigned int user = timeout_ms;
	/* Probes from a third of the limit on, 1 s apart at least. */
	int one = 1, secs = (int)(timeout_ms / 3000) ?: 1, cnt = 3, domain;
	socklen_t len = sizeof(domain);

	if (!timeout_ms)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len))
		return -errno;
	if (domain != AF_INET && domain != AF_INET6)
		return 0;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user)))
		return -errno;
	return 0;
}

/* ------------------------------------------------------------ messages */

static void encode_header(const struct vmig_chan_id *id,
			  const uint8_t *nonce, uint8_t *b)
{
	memset(b, 0, VMIG_CHAN_HDR_LEN);
	put32(b, VMIG_CHAN_MAGIC);
	put16(b + 4, VMIG_CHAN_VERSION);
	b[6] = id->kind;
	put16(b + 8, id->index);
	put16(b + 10, id->count);
	memcpy(b + 16, id->session_id, VMIG_SESSION_ID_LEN);
	memcpy(b + 32, nonce, VMIG_AUTH_NONCE_LEN);
}

static void encode_reply(uint32_t status, const uint8_t *data, uint8_t *b)
{
	memset(b, 0, VMIG_AUTH_MSG_LEN);
	put32(b, VMIG_CHAN_MAGIC);
	put32(b + 4, status);
	if (data)
		memcpy(b + 8, data, 32);
}

static void mac(const struct vmig_chan_auth *auth, const char *label,
		const uint8_t *hdr, const uint8_t *challenge,
		const uint8_t *proof, uint8_t *out)
{
	struct hmac_sha256_ctx ctx;

	hmac_sha256_set_key(&ctx, auth->secret_len, auth->secret);
	hmac_sha256_update(&ctx, strlen(label) + 1, (const uint8_t *)label);
	hmac_sha256_update(&ctx, VMIG_CHAN_HDR_LEN, hdr);
	hmac_sha256_update(&ctx, VMIG_AUTH_MSG_LEN, challenge);
	if (proof)
		hmac_sha256_update(&ctx, VMIG_AUTH_MAC_LEN, proof);
	hmac_sha256_digest(&ctx, VMIG_AUTH_MAC_LEN, out);
	memset(&ctx, 0, sizeof(ctx));
}

static int random_nonce(uint8_t *nonce)
{
	ssize_t n;

	do {
		n = getrandom(nonce, VMIG_AUTH_NONCE_LEN, 0);
	} while (n < 0 && errno == EINTR);
	if (n != VMIG_AUTH_NONCE_LEN)
		return n < 0 ? -errno : -EIO;
	return 0;
}

static int status_errno(uint32_t status)
{
	switch (status) {
	case VMIG_CHAN_OK:
		return 0;
	case VMIG_CHAN_WRONG_SESSION:
		return -ESTALE;
	case VMIG_CHAN_UNWANTED:
		return -EUSERS;
	case VMIG_CHAN_AUTH_FAILED:
		return -EACCES;
	default:
		return -EPROTO;
	}
}

/*
 * Receive a message of the destination's (magic, status, then the rest):
 * 0, -EPROTO if it is not one, or the errno its status carries.
 */
static int recv_status(int fd, uint8_t *buf, size_t len)
{
	int ret = recv_exact(fd, buf, len);

	if (ret)
		return ret;
	if (get32(buf) != VMIG_CHAN_MAGIC)
		return -EPROTO;
	return status_errno(get32(buf + 4));
}

/* ----------------------------------------------------------- source side */

static int client_handshake(int fd, const struct vmig_chan_auth *auth,
			    const struct vmig_chan_id *id)
{
	uint8_t hdr[VMIG_CHAN_HDR_LEN], nonce[VMIG_AUTH_NONCE_LEN];
	uint8_t challenge[VMIG_AUTH_MSG_LEN], verdict[VMIG_AUTH_MSG_LEN];
	uint8_t proof[VMIG_AUTH_MAC_LEN], expect[VMIG_AUTH_MAC_LEN];
	int ret;

	ret = random_nonce(nonce);
	if (ret)
		return ret;
	encode_header(id, nonce, hdr);
	ret = vmig_send_all(fd, hdr, sizeof(hdr));
	if (ret)
		return ret;

	ret = recv_status(fd, challenge, sizeof(challenge));
	if (ret)
		return ret;

	mac(auth, client_label, hdr, challenge, NULL, proof);
	ret = vmig_send_all(fd, proof, sizeof(proof));
	if (ret)
		return ret;

	ret = recv_status(fd, verdict, sizeof(verdict));
	if (ret)
		return ret;
	/* The destination must hold the secret too. */
	mac(auth, server_label, hdr, challenge, proof, expect);
	if (!memeql_sec(expect, verdict + 8, VMIG_AUTH_MAC_LEN))
		return -EACCES;
	return 0;
}

int vmig_chan_connect(const struct sockaddr *addr, socklen_t addrlen,
		      const struct vmig_chan_auth *auth,
		      const struct vmig_chan_id *id)
{
	int fd, one = 1, ret;

	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (auth->timeout_ms) {
		ret = vmig_sock_set_timeout(fd, auth->timeout_ms);
		if (ret)
			goto fail;
	}
	while (connect(fd, addr, addrlen)) {
		if (errno == EINTR)
			continue;
		ret = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		goto fail;
	}
	if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	ret = client_handshake(fd, auth, id);
	if (ret)
		goto fail;
	if (auth->timeout_ms) {
		ret = vmig_sock_set_timeout(fd, 0);
		if (!ret)
			ret = set_liveness(fd, auth->timeout_ms);
		if (ret)
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return ret;
}

/* ------------------------------------------------------ destination side */

static int refuse(int fd, uint32_t status, int err, const char **why,
		  const char *reason)
{
	uint8_t msg[VMIG_AUTH_MSG_LEN];

	encode_reply(status, NULL, msg);
	/* Best effort: the peer may be gone, or not a vmig peer at all. */
	send(fd, msg, sizeof(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
	*why = reason;
	return err;
}

int vmig_chan_handshake_accept(int fd, const struct vmig_chan_auth *auth,
			       int (*wanted)(const struct vmig_chan_id *id,
					     void *opaque),
			       void *opaque, struct vmig_chan_id *id,
			       const char **why)
{
	uint8_t hdr[VMIG_CHAN_HDR_LEN], nonce[VMIG_AUTH_NONCE_LEN];
	uint8_t challenge[VMIG_AUTH_MSG_LEN], verdict[VMIG_AUTH_MSG_LEN];
	uint8_t proof[VMIG_AUTH_MAC_LEN], expect[VMIG_AUTH_MAC_LEN];
	int ret, one = 1;
	unsigned int i;

	*why = "I/O error";
	if (auth->timeout_ms) {
		ret = vmig_sock_set_timeout(fd, auth->timeout_ms);
		if (ret)
			return ret;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	ret = recv_exact(fd, hdr, sizeof(hdr));
	if (ret) {
		*why = ret == -ETIMEDOUT ? "no channel header in time" :
					   "connection ended in its header";
		return ret;
	}
	if (get32(hdr) != VMIG_CHAN_MAGIC || get16(hdr + 4) != VMIG_CHAN_VERSION)
		return refuse(fd, VMIG_CHAN_BAD_HEADER, -EPROTO, why,
			      "not a vmig channel header (magic or version)");
	for (i = 12; i < 16; i++)
		if (hdr[i])
			return refuse(fd, VMIG_CHAN_BAD_HEADER, -EPROTO, why,
				      "reserved header bytes are not zero");
	if (hdr[7] || hdr[6] < VMIG_CHAN_MAIN || hdr[6] > VMIG_CHAN_POSTCOPY)
		return refuse(fd, VMIG_CHAN_BAD_HEADER, -EPROTO, why,
			      "unknown channel kind");
	if (memcmp(hdr + 16, auth->session_id, VMIG_SESSION_ID_LEN))
		return refuse(fd, VMIG_CHAN_WRONG_SESSION, -ESTALE, why,
			      "wrong session id");

	ret = random_nonce(nonce);
	if (ret)
		return ret;
	encode_reply(VMIG_CHAN_OK, nonce, challenge);
	ret = vmig_send_all(fd, challenge, sizeof(challenge));
	if (ret)
		return ret;

	ret = recv_exact(fd, proof, sizeof(proof));
	if (ret) {
		*why = ret == -ETIMEDOUT ? "no proof in time" :
					   "connection ended before its proof";
		return ret;
	}
	mac(auth, client_label, hdr, challenge, NULL, expect);
	if (!memeql_sec(expect, proof, sizeof(proof)))
		return refuse(fd, VMIG_CHAN_AUTH_FAILED, -EACCES, why,
			      "authentication failed (wrong secret)");

	id->kind = hdr[6];
	id->index = get16(hdr + 8);
	id->count = get16(hdr + 10);
	memcpy(id->session_id, hdr + 16, VMIG_SESSION_ID_LEN);
	ret = wanted ? wanted(id, opaque) : 0;
	if (ret)
		return refuse(fd, VMIG_CHAN_UNWANTED, ret, why,
			      "channel kind or index not expected");

	mac(auth, server_label, hdr, challenge, proof, expect);
	encode_reply(VMIG_CHAN_OK, expect, verdict);
	ret = vmig_send_all(fd, verdict, sizeof(verdict));
	if (ret || !auth->timeout_ms)
		return ret;
	ret = vmig_sock_set_timeout(fd, 0);
	return ret ? ret : set_liveness(fd, auth->timeout_ms);
}

/* ------------------------------------------------------------- io_uring */

int vmig_uio_init(struct vmig_uio *io)
{
	int ret;

	/*
	 * One thread submits and always waits for what it submitted: the
	 * kernel's task work (retrying a partial MSG_WAITALL send or recv) can
	 * wait until then, instead of interrupting the thread (6.1 and later;
	 * older kernels refuse the flags).
	 */
	ret = io_uring_queue_init(4, &io->ring, IORING_SETUP_SINGLE_ISSUER |
				  IORING_SETUP_DEFER_TASKRUN);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(4, &io->ring,
					  IORING_SETUP_SINGLE_ISSUER |
					  IORING_SETUP_COOP_TASKRUN);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(4, &io->ring, 0);
	io->ready = !ret;
	return ret;
}

void vmig_uio_exit(struct vmig_uio *io)
{
	if (io->ready)
		io_uring_queue_exit(&io->ring);
	io->ready = false;
}

/* Submit one prepared SQE and return its result. */
static int uio_run(struct vmig_uio *io)
{
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_submit_and_wait(&io->ring, 1);
	if (ret < 0 && ret != -EINTR)
		return ret;
	do {
		ret = io_uring_wait_cqe(&io->ring, &cqe);
	} while (ret == -EINTR);
	if (ret)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(&io->ring, cqe);
	return ret;
}

/* Skip done bytes of the vector: the first entry left, *cnt updated. */
static struct iovec *iov_advance(struct iovec *iov, unsigned int *cnt,
				 size_t done)
{
	while (*cnt && done >= iov->iov_len) {
		done -= iov->iov_len;
		iov++;
		(*cnt)--;
	}
	if (*cnt) {
		iov->iov_base = (uint8_t *)iov->iov_base + done;
		iov->iov_len -= done;
	}
	return iov;
}

/* Send or receive the whole vector (see transport.h). */
static ssize_t uio_msg(struct vmig_uio *io, int fd, struct iovec *iov,
		       unsigned int cnt, bool send)
{
	struct msghdr mh = { 0 };
	size_t done = 0;
	int ret;

	iov = iov_advance(iov, &cnt, 0);	/* empty entries */
	while (cnt) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

		if (!sqe)
			return -EBUSY;
		mh.msg_iov = iov;
		mh.msg_iovlen = cnt;
		if (send)
			io_uring_prep_sendmsg(sqe, fd, &mh,
					      MSG_NOSIGNAL | MSG_WAITALL);
		else
			io_uring_prep_recvmsg(sqe, fd, &mh, MSG_WAITALL);
		ret = uio_run(io);
		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret < 0)
			return ret;
		if (!ret)
			return send ? -EPIPE : done ? -ECONNRESET : 0;
		done += ret;
		iov = iov_advance(iov, &cnt, ret);
	}
	return done;
}

ssize_t vmig_uio_send(struct vmig_uio *io, int fd, const void *buf,
		      size_t len)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	return uio_msg(io, fd, &v, 1, true);
}

ssize_t vmig_uio_recv(struct vmig_uio *io, int fd, void *buf, size_t len)
{
	struct iovec v = { .iov_base = buf, .iov_len = len };

	return uio_msg(io, fd, &v, 1, false);
}

ssize_t vmig_uio_sendv(struct vmig_uio *io, int fd, struct iovec *iov,
		       unsigned int cnt)
{
	return uio_msg(io, fd, iov, cnt, true);
}

ssize_t vmig_uio_recvv(struct vmig_uio *io, int fd, struct iovec *iov,
		       unsigned int cnt)
{
	return uio_msg(io, fd, iov, cnt, false);
}

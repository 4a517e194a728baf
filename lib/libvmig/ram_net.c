// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Guest RAM over the network: channels of kind RAM.
 *
 * Source: the precopy builds packets in buffers of a bounded queue (the
 * device-state transport's vmig_txq); one sender thread per channel takes
 * the oldest packet and sends it.  finish() closes the queue; each sender
 * ends its channel with an END packet, and channel 0 then waits for the
 * destination's acknowledgment (magic, status).
 *
 * Destination: one receiver thread per channel reads packets into guest
 * RAM (ram_dest_recv()); when every channel has ended, channel 0 carries
 * the acknowledgment.  Packets of one page from two channels are ordered
 * by their seq (see ram_recv.c).
 *
 * Once the source's RAM no longer changes, its packets are sent from
 * guest memory in place (ram_net_submit_pages()): the sender thread takes
 * the CRC, then its sendmsg() gathers the header and entries from the
 * queue's buffer and the data from the pages.
 *
 * The channels use the handshake of the device-state transport (same
 * session id and secret), with kind RAM; they run beside a struct
 * vmig_session, not inside it.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ram_xfer.h"
#include "transport.h"

struct net_chan {
	struct vmig_ram_net *net;
	unsigned int idx;
	int fd;
	pthread_t thread;
	bool started;
	int err;
};

struct vmig_ram_net {
	struct vmig_txq *q;
	unsigned int nchan;
	struct net_chan *chans;
	bool own_fds;			/* close them (not a session's) */
	int err;			/* first error */
	pthread_mutex_t lock;
	bool finished;
};

static void net_fail(struct vmig_ram_net *n, int err)
{
	pthread_mutex_lock(&n->lock);
	if (!n->err)
		n->err = err;
	pthread_mutex_unlock(&n->lock);
	vmig_txq_abort(n->q);
}

static int send_end(struct vmig_uio *io, int fd)
{
	uint8_t b[RAM_PKT_HDR_LEN];
	struct ram_pkt_hdr h = { .flags = RAM_PKT_F_END };
	ssize_t ret;

	ram_pkt_seal(&h, b);
	ret = vmig_uio_send(io, fd, b, sizeof(b));
	return ret < 0 ? (int)ret : 0;
}

/*
 * A packet sent in place keeps its pages' addresses in its buffer, after
 * room for the largest header and entries.
 */
#define PAGES_OFF	(RAM_PKT_HDR_LEN + RAM_MAX_BATCH * 8)
_Static_assert((offsetof(struct vmig_txbuf, data) + PAGES_OFF) %
	       _Alignof(void *) == 0, "page addresses must be aligned");

/* Send b: its bytes, then the pages it points to (adjacent ones merged). */
static ssize_t send_buf(struct vmig_uio *io, int fd, struct vmig_txbuf *b)
{
	struct iovec iov[RAM_MAX_BATCH + 1];
	const void *const *pages;
	unsigned int i, cnt = 0;
	uint32_t crc;

	if (!b->npages)
		return vmig_uio_send(io, fd, b->data, b->len);
	pages = (const void *const *)(b->data + PAGES_OFF);
	/* The CRC brings the pages into this core's cache for the send. */
	crc = vmig_crc32c(0, b->data, b->len);
	crc = ram_crc_pages(crc, pages, b->npages);
	put32(b->data + 28, crc);
	ram_iov_add(iov, &cnt, b->data, b->len);
	for (i = 0; i < b->npages; i++)
		ram_iov_add(iov, &cnt, (void *)pages[i], RAM_PAGE_SIZE);
	return vmig_uio_sendv(io, fd, iov, cnt);
}

static void *sender(void *arg)
{
	struct net_chan *c = arg;
	struct vmig_ram_net *n = c->net;
	struct vmig_uio io;
	struct vmig_txbuf *b;
	ssize_t ret;

	vmig_name_thread("ramtx", c->idx);
	c->err = vmig_uio_init(&io);
	if (c->err) {
		net_fail(n, c->err);
		return NULL;
	}
	while ((b = vmig_txq_pop(n->q))) {
		ret = send_buf(&io, c->fd, b);
		vmig_txq_put(n->q, b);
		if (ret < 0) {
			c->err = ret;
			vmig_err("ram channel %u: send: %d", c->idx, c->err);
			net_fail(n, c->err);
			break;
		}
	}
	if (!c->err && !n->err)
		c->err = send_end(&io, c->fd);
	vmig_uio_exit(&io);
	return NULL;
}

/* The queue and the channel slots; fds and threads come later. */
static int net_alloc(unsigned int nchan, uint64_t mem_limit,
		     struct vmig_ram_net **out)
{
	struct vmig_ram_net *n;
	uint64_t mem;
	unsigned int i;
	int ret;

	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->lock, NULL);
	n->nchan = nchan ? nchan : 1;
	/*
	 * A short queue: the convergence model measures the bandwidth where
	 * packets enter it, so what it holds is not counted as sent for long.
	 */
	mem = mem_limit ? mem_limit : 8ULL << 20;
	if (mem < 2 * RAM_MAX_PKT)
		mem = 2 * RAM_MAX_PKT;
	ret = vmig_txq_create(mem, RAM_MAX_PAYLOAD, &n->q);
	if (!ret) {
		n->chans = calloc(n->nchan, sizeof(*n->chans));
		if (!n->chans)
			ret = -ENOMEM;
	}
	if (ret) {
		vmig_ram_net_close(n);
		return ret;
	}
	for (i = 0; i < n->nchan; i++) {
		n->chans[i].fd = -1;
		n->chans[i].net = n;
		n->chans[i].idx = i;
	}
	*out = n;
	return 0;
}

static int net_start(struct vmig_ram_net *n)
{
	unsigned int i;
	int ret;

	for (i = 0; i < n->nchan; i++) {
		ret = -pthread_create(&n->chans[i].thread, NULL, sender,
				      &n->chans[i]);
		if (ret)
			return ret;
		n->chans[i].started = true;
	}
	return 0;
}

VMIG_EXPORT int vmig_ram_net_connect(const struct vmig_session_config *cfg,
				     const struct sockaddr *addr,
				     socklen_t addrlen,
				     struct vmig_ram_net **out)
{
	struct vmig_chan_auth auth = { 0 };
	struct vmig_chan_id id = { 0 };
	struct vmig_ram_net *n;
	unsigned int i;
	int ret;

	if (!cfg || !addr || !out || !cfg->secret ||
	    cfg->secret_len < VMIG_SECRET_MIN_LEN ||
	    cfg->secret_len > VMIG_SECRET_MAX_LEN ||
	    cfg->channels > VMIG_MAX_CHANNELS)
		return -EINVAL;
	ret = net_alloc(cfg->channels, cfg->mem_limit, &n);
	if (ret)
		return ret;
	n->own_fds = true;
	memcpy(auth.session_id, cfg->session_id, VMIG_SESSION_ID_LEN);
	auth.secret = cfg->secret;
	auth.secret_len = cfg->secret_len;
	auth.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
	memcpy(id.session_id, cfg->session_id, VMIG_SESSION_ID_LEN);
	id.kind = VMIG_CHAN_RAM;
	id.count = n->nchan;
	for (i = 0; i < n->nchan; i++) {
		id.index = i;
		ret = vmig_chan_connect(addr, addrlen, &auth, &id);
		if (ret < 0) {
			vmig_err("ram channel %u: connect: %d", i, ret);
			goto fail;
		}
		n->chans[i].fd = ret;
	}
	ret = net_start(n);
	if (ret)
		goto fail;
	*out = n;
	return 0;
fail:
	vmig_ram_net_close(n);
	return ret;
}

int ram_net_from_fds(const int *fds, unsigned int n, uint64_t mem_limit,
		     struct vmig_ram_net **out)
{
	struct vmig_ram_net *net;
	unsigned int i;
	int ret;

	if (!n || n > VMIG_MAX_CHANNELS)
		return -EINVAL;
	ret = net_alloc(n, mem_limit, &net);
	if (ret)
		return ret;
	for (i = 0; i < n; i++)
		net->chans[i].fd = fds[i];
	ret = net_start(net);
	if (ret) {
		vmig_ram_net_close(net);
		return ret;
	}
	*out = net;
	return 0;
}

void ram_net_abort(struct vmig_ram_net *n)
{
	net_fail(n, -ECANCELED);
}

static void join(struct vmig_ram_net *n)
{
	unsigned int i;

	for (i = 0; i < n->nchan; i++) {
		if (!n->chans[i].started)
			continue;
		pthread_join(n->chans[i].thread, NULL);
		n->chans[i].started = false;
		if (n->chans[i].err && !n->err)
			n->err = n->chans[i].err;
	}
}

VMIG_EXPORT void vmig_ram_net_close(struct vmig_ram_net *n)
{
	unsigned int i;

	if (!n)
		return;
	if (n->q)
		vmig_txq_abort(n->q);
	if (n->chans) {
		join(n);
		for (i = 0; n->own_fds && i < n->nchan; i++)
			if (n->chans[i].fd >= 0)
				close(n->chans[i].fd);
	}
	free(n->chans);
	vmig_txq_destroy(n->q);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

static int net_get_buf(void *opaque, size_t size, void **buf)
{
	struct vmig_ram_net *n = opaque;
	struct vmig_txbuf *b;
	int ret;

	if (size > RAM_MAX_PKT)
		return -EMSGSIZE;
	ret = vmig_txq_get(n->q, &b);
	if (ret)
		return n->err ? n->err : ret;
	*buf = b->data;
	return 0;
}

static int net_submit(void *opaque, void *buf, size_t len)
{
	struct vmig_ram_net *n = opaque;
	struct vmig_txbuf *b = (struct vmig_txbuf *)((uint8_t *)buf -
				offsetof(struct vmig_txbuf, data));

	b->len = len;
	vmig_txq_push(n->q, b);
	return n->err;
}

int ram_net_submit_pages(void *opaque, void *buf,
			 const struct ram_pkt_hdr *h,
			 const void *const *pages, unsigned int npages)
{
	struct vmig_ram_net *n = opaque;
	struct vmig_txbuf *b = (struct vmig_txbuf *)((uint8_t *)buf -
				offsetof(struct vmig_txbuf, data));

	if (h->nr > RAM_MAX_BATCH || npages > h->nr) {
		vmig_txq_put(n->q, b);
		return -EMSGSIZE;
	}
	ram_pkt_put_hdr(h, buf);
	memcpy(b->data + PAGES_OFF, pages, npages * sizeof(*pages));
	b->len = RAM_PKT_HDR_LEN + (size_t)h->nr * 8;
	b->npages = npages;
	/* Only zero pages: a packet like any other, sealed here. */
	if (!npages)
		put32(b->data + 28, vmig_crc32c(0, b->data, b->len));
	vmig_txq_push(n->q, b);
	return n->err;
}

static int net_finish(void *opaque)
{
	struct vmig_ram_net *n = opaque;
	uint8_t ack[RAM_ACK_LEN];
	uint32_t magic, status;
	ssize_t ret;

	if (n->finished)
		return -EINVAL;
	n->finished = true;
	vmig_txq_close(n->q);
	join(n);
	if (n->err)
		return n->err;
	ret = vmig_recv_all(n->chans[0].fd, ack, sizeof(ack));
	if (ret != sizeof(ack))
		return ret < 0 ? (int)ret : -ECONNRESET;
	memcpy(&magic, ack, 4);
	memcpy(&status, ack + 4, 4);
	if (le32toh(magic) != RAM_ACK_MAGIC)
		return -EPROTO;
	return -(int)le32toh(status);
}

static const struct vmig_ram_sink_ops net_ops = {
	.get_buf = net_get_buf,
	.submit = net_submit,
	.finish = net_finish,
};

bool ram_sink_in_place(const struct vmig_ram_sink *sink)
{
	return sink->ops == &net_ops;
}

VMIG_EXPORT void vmig_ram_net_sink(struct vmig_ram_net *n,
				   struct vmig_ram_sink *sink)
{
	sink->ops = &net_ops;
	sink->opaque = n;
}

/* ---------------------------------------------------------- destination */

struct serve {
	struct vmig_ram_dest *d;
	unsigned int count;		/* channels, 0 until the first */
	int *fds;
	int err;
	pthread_mutex_t lock;
};

struct recv_chan {
	struct serve *sv;
	unsigned int idx;
	pthread_t thread;
	int err;
};

static void *receiver(void *arg)
{
	struct recv_chan *rc = arg;
	struct serve *sv = rc->sv;
	int fd = sv->fds[rc->idx];
	struct vmig_uio io;
	const char *why;
	unsigned int i;
	uint8_t *buf;
	ssize_t ret;

	vmig_name_thread("ramrx", rc->idx);
	buf = malloc(RAM_MAX_PKT);
	if (!buf) {
		rc->err = -ENOMEM;
		return NULL;
	}
	ret = vmig_uio_init(&io);
	if (ret) {
		rc->err = ret;
		free(buf);
		return NULL;
	}
	for (;;) {
		ret = ram_dest_recv(sv->d, &io, fd, buf, &why);
		if (ret == 1)
			break;
		if (ret < 0) {
			rc->err = ret;
			vmig_err("ram channel %u: %s: %d", rc->idx, why,
				 rc->err);
			break;
		}
	}
	if (rc->err) {
		/* Unblock the others: the migration has failed. */
		pthread_mutex_lock(&sv->lock);
		if (!sv->err)
			sv->err = rc->err;
		pthread_mutex_unlock(&sv->lock);
		for (i = 0; i < sv->count; i++)
			shutdown(sv->fds[i], SHUT_RDWR);
	}
	vmig_uio_exit(&io);
	free(buf);
	return NULL;
}

int ram_serve_fds(struct vmig_ram_dest *d, const int *fds, unsigned int n)
{
	struct serve sv = { .d = d, .count = n, .fds = (int *)fds };
	struct recv_chan *rcs;
	uint8_t ack[RAM_ACK_LEN];
	unsigned int i, started = 0;
	uint32_t v;
	int ret = 0;

	rcs = calloc(n, sizeof(*rcs));
	if (!rcs)
		return -ENOMEM;
	pthread_mutex_init(&sv.lock, NULL);
	for (i = 0; i < n; i++) {
		rcs[i].sv = &sv;
		rcs[i].idx = i;
		ret = -pthread_create(&rcs[i].thread, NULL, receiver, &rcs[i]);
		if (ret) {
			for (i = 0; i < n; i++)
				shutdown(fds[i], SHUT_RDWR);
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(rcs[i].thread, NULL);
	if (!ret)
		ret = sv.err;
	v = htole32(RAM_ACK_MAGIC);
	memcpy(ack, &v, 4);
	v = htole32(-ret);
	memcpy(ack + 4, &v, 4);
	vmig_send_all(fds[0], ack, sizeof(ack));
	pthread_mutex_destroy(&sv.lock);
	free(rcs);
	return ret;
}

VMIG_EXPORT int vmig_ram_dest_serve(struct vmig_ram_dest *d,
				    const struct vmig_session_config *cfg,
				    int listen_fd)
{
	struct vmig_chan_auth auth = { 0 };
	int fds[VMIG_MAX_CHANNELS];
	unsigned int i, count;
	int ret;

	if (!d || !cfg || !cfg->secret || listen_fd < 0)
		return -EINVAL;
	memcpy(auth.session_id, cfg->session_id, VMIG_SESSION_ID_LEN);
	auth.secret = cfg->secret;
	auth.secret_len = cfg->secret_len;
	auth.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
	ret = vmig_chan_accept_set(listen_fd, &auth, VMIG_CHAN_RAM,
				   VMIG_MAX_CHANNELS, fds, &count);
	if (ret)
		return ret;
	ret = ram_serve_fds(d, fds, count);
	for (i = 0; i < count; i++)
		close(fds[i]);
	return ret;
}

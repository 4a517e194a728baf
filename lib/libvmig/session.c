// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A device-state migration session between a source and a destination
 * process.
 *
 * Threads, source:      the caller's (control: main channel, phases, device
 *                       states), one reader per device (data fd -> packets
 *                       in the send queue), one sender per data channel
 *                       (queue -> socket, io_uring).
 * Threads, destination: the caller's (control), one receiver per data
 *                       channel (socket -> reassembly, io_uring), one writer
 *                       per device (reassembly -> data fd, in devstate.c).
 *
 * Control messages on the main channel (Documentation/wire.rst):
 *	CONFIG          source -> dest: devices, channels, chunk size, flags
 *	CONFIG_OK       dest -> source
 *	INIT_DONE       source -> dest: a device's first N packets are its
 *	                initial data
 *	SWITCHOVER_ACK  dest -> source: every device's initial data is loaded
 *	LOADED          dest -> source: every device loaded its state (STOP)
 *	ERROR           either way: errno, device, channel, message
 *	PROGRESS        dest -> source: bytes written to the devices' data fds
 *	                so far (after SWITCHOVER_ACK, as they change)
 *
 * Switchover: precopy data the source has read but the destination has
 * not written yet (queue, sockets, reassembly) would be written while the
 * devices are stopped, so the source stops them only once the destination
 * reports that backlog below cfg.switchover_max_queued.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "ram_xfer.h"
#include "transport.h"

#define DEFAULT_CHUNK		(1U << 20)
#define DEFAULT_MEM		(64ULL << 20)
#define DEFAULT_TIMEOUT_MS	10000
#define PRECOPY_POLL_MS		5
#define PROGRESS_MS		2	/* destination: PROGRESS about this often */
#define DEFAULT_MAX_QUEUED	(1ULL << 20)
#define PEER_ERROR_GRACE_MS	200
#define MSG_HDR_LEN		8
#define MSG_MAX_LEN		(64U << 10)
#define ERR_MSG_LEN		256
#define NO_INDEX		0xffffffffU
/* Destination: payload bytes received at a time, CRC'd while in the cache. */
#define RX_PIECE		(256U << 10)
/* Source: send queue buffers per data channel (besides one per device). */
#define TXQ_PER_CHAN		2
/*
 * Source: unsent bytes a data channel's socket may hold (TCP_NOTSENT_LOWAT;
 * bytes in flight are not limited, so neither is the bandwidth-delay
 * product).  A channel whose peer reads slowly then holds little more
 * than the packet it sends, and the packets that follow go to the other
 * channels: less reordering, so less of the destination's reassembly
 * memory holds packets that wait for one behind them.
 */
#define DATA_NOTSENT_LOWAT	(256 << 10)

enum msg_type {
	MSG_CONFIG = 1,
	MSG_CONFIG_OK = 2,
	MSG_INIT_DONE = 3,
	MSG_SWITCHOVER_ACK = 4,
	MSG_LOADED = 5,
	MSG_ERROR = 6,
	MSG_PROGRESS = 7,
};

#define CONFIG_F_ZSTD		(1U << 0)
#define CONFIG_F_PRECOPY	(1U << 1)
#define CONFIG_F_RAM		(1U << 2)	/* a RAM trailer follows */
#define CONFIG_RAM_LEN		16	/* pages (8), channels (4), flags (4) */
#define CONFIG_RAM_POSTCOPY	(1U << 0)	/* postcopy follows */
#define CONFIG_HDR_LEN		16
#define CONFIG_DEV_LEN		(4 + VMIG_DEVICE_NAME_MAX)

enum dev_mode {
	MODE_IDLE,		/* no data fd read now */
	MODE_PRECOPY,
	MODE_STOPCOPY,
	MODE_DONE,
};

struct vmig_session;

struct sdev {
	struct vmig_session *s;
	unsigned int idx;
	char name[VMIG_DEVICE_NAME_MAX];
	uint32_t mig_flags;
	const struct vmig_device_ops *ops;
	void *opaque;
	int data_fd;
	bool moved;		/* set_state was called on it */
	/* source */
	enum dev_mode mode;
	struct vmig_tx_dev tx;
	pthread_t reader;
	bool reader_started;
	bool parked, idle, init_sent;
	uint64_t precopy_bytes;		/* under s->lock */
	uint64_t stopcopy_bytes;	/* atomic: the reader adds, any reads */
};

struct chan {
	struct vmig_session *s;
	unsigned int index;	/* 1..N */
	int fd;
	pthread_t thread;
	bool started;
	/* Updated by the channel's thread alone, read by any (atomics). */
	uint64_t wire_bytes, packets;
};

struct vmig_session {
	enum vmig_role role;
	struct vmig_session_config cfg;
	uint8_t secret[VMIG_SECRET_MAX_LEN];
	struct vmig_chan_auth auth;

	unsigned int ndev;
	struct sdev *devs;
	int main_fd;
	unsigned int nchan;
	struct chan *chans;
	uint32_t chunk;		/* the source's, on both sides */
	int zstd_level;
	bool precopy;
	bool connected, ran;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_mutex_t send_lock;	/* main channel writers */
	int efd;			/* wakes the control thread */

	bool failed;
	bool error_sent;
	struct vmig_session_error error;

	/* source */
	struct vmig_txq *txq;
	bool stop_readers;
	unsigned int readers_done;
	uint64_t dest_written;		/* the last PROGRESS */
	uint64_t switchover_queued;	/* queued_bytes() at t_stop */
	/* destination */
	struct vmig_rx *rx;
	unsigned int chans_ended;
	bool loaded;
	uint64_t refused;

	/* guest RAM (ram_session.c), if added */
	struct ram_sess *ram;
	int *ram_fds;
	unsigned int ram_nchan;		/* destination: 0 until the first */

	uint64_t t_start, t_stop, t_end;
};

static void wake(struct vmig_session *s)
{
	uint64_t one = 1;

	if (write(s->efd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; nothing to do. */
	}
}

/* ------------------------------------------------------------- failures */

static void send_error(struct vmig_session *s);

static void stop_io(struct vmig_session *s)
{
	unsigned int i;

	if (s->txq)
		vmig_txq_abort(s->txq);
	for (i = 0; i < s->nchan; i++)
		if (s->chans[i].fd >= 0)
			shutdown(s->chans[i].fd, SHUT_RDWR);
	for (i = 0; s->ram_fds && i < s->ram_nchan; i++)
		if (s->ram_fds[i] >= 0)
			shutdown(s->ram_fds[i], SHUT_RDWR);
}

/*
 * Record the first failure (later ones are consequences), stop the data
 * path and wake the control thread.  dev and chan are -1 when unknown.
 */
static void vfail(struct vmig_session *s, int err, int dev, int chan,
		  bool remote, const char *fmt, va_list ap)
{
	bool first;

	pthread_mutex_lock(&s->lock);
	first = !s->failed;
	if (first) {
		s->failed = true;
		s->error.err = err < 0 ? err : -EIO;
		s->error.device = dev;
		s->error.channel = chan;
		s->error.remote = remote;
		vsnprintf(s->error.msg, sizeof(s->error.msg), fmt, ap);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (!first)
		return;
	vmig_err("migration %s: %s%s", s->role == VMIG_ROLE_SOURCE ?
		 "source" : "destination", remote ? "peer reported: " : "",
		 s->error.msg);
	/*
	 * Tell the peer why before its data channels end, so that it reports
	 * the cause rather than a consequence (a stream ending short).
	 */
	send_error(s);
	stop_io(s);
	if (s->rx)
		vmig_rx_fail(s->rx, s->error.err, dev, "%s", s->error.msg);
	wake(s);
}

static void fail(struct vmig_session *s, int err, int dev, int chan,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void fail(struct vmig_session *s, int err, int dev, int chan,
		 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(s, err, dev, chan, false, fmt, ap);
	va_end(ap);
}

static void fail_remote(struct vmig_session *s, int err, int dev, int chan,
			const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void fail_remote(struct vmig_session *s, int err, int dev, int chan,
			const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(s, err, dev, chan, true, fmt, ap);
	va_end(ap);
}

static bool failed(struct vmig_session *s)
{
	bool f;

	pthread_mutex_lock(&s->lock);
	f = s->failed;
	pthread_mutex_unlock(&s->lock);
	return f;
}

/* --------------------------------------------------------- main channel */

static int send_msg(struct vmig_session *s, uint32_t type, const void *data,
		    uint32_t len)
{
	uint8_t hdr[MSG_HDR_LEN];
	int ret;

	put32(hdr, type);
	put32(hdr + 4, len);
	pthread_mutex_lock(&s->send_lock);
	ret = vmig_send_all(s->main_fd, hdr, sizeof(hdr));
	if (!ret && len)
		ret = vmig_send_all(s->main_fd, data, len);
	pthread_mutex_unlock(&s->send_lock);
	return ret;
}

/* One message into buf[MSG_MAX_LEN]; -ECONNRESET at EOF. */
static int recv_msg(struct vmig_session *s, uint32_t *type, uint8_t *buf,
		    uint32_t *len)
{
	uint8_t hdr[MSG_HDR_LEN];
	ssize_t n;

	n = vmig_recv_all(s->main_fd, hdr, sizeof(hdr));
	if (n <= 0)
		return n ? n : -ECONNRESET;
	*type = get32(hdr);
	*len = get32(hdr + 4);
	if (*len > MSG_MAX_LEN)
		return -EMSGSIZE;
	if (!*len)
		return 0;
	n = vmig_recv_all(s->main_fd, buf, *len);
	if (n <= 0)
		return n ? n : -ECONNRESET;
	return 0;
}

/*
 * Once, and without blocking: the peer may be gone, or not reading.  A
 * partial send can only cut this last message short.
 */
static void send_error(struct vmig_session *s)
{
	uint8_t m[MSG_HDR_LEN + 12 + ERR_MSG_LEN] = { 0 };
	uint8_t *p = m + MSG_HDR_LEN;
	bool send_it;

	pthread_mutex_lock(&s->lock);
	send_it = s->main_fd >= 0 && s->failed && !s->error.remote &&
		  !s->error_sent;
	s->error_sent = true;
	pthread_mutex_unlock(&s->lock);
	if (!send_it)
		return;
	put32(m, MSG_ERROR);
	put32(m + 4, 12 + ERR_MSG_LEN);
	put32(p, -s->error.err);
	put32(p + 4, s->error.device < 0 ? NO_INDEX : (uint32_t)s->error.device);
	put32(p + 8, s->error.channel < 0 ? NO_INDEX :
		     (uint32_t)s->error.channel);
	memcpy(p + 12, s->error.msg, strnlen(s->error.msg, ERR_MSG_LEN - 1));
	pthread_mutex_lock(&s->send_lock);
	if (send(s->main_fd, m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		vmig_dbg("could not send the error to the peer: %m");
	pthread_mutex_unlock(&s->send_lock);
}

static void got_error(struct vmig_session *s, const uint8_t *m, uint32_t len)
{
	char msg[ERR_MSG_LEN + 1] = "";
	uint32_t err = EIO, dev = NO_INDEX, chan = NO_INDEX;

	if (len >= 12) {
		err = get32(m);
		dev = get32(m + 4);
		chan = get32(m + 8);
		memcpy(msg, m + 12, len - 12 < ERR_MSG_LEN ? len - 12 :
		       ERR_MSG_LEN);
	}
	if (!err || err > 4095)
		err = EIO;
	fail_remote(s, -(int)err, dev == NO_INDEX ? -1 : (int)dev,
		    chan == NO_INDEX ? -1 : (int)chan, "%s", msg);
}

/* Handle a message both sides may get at any time; false if unexpected. */
static void unexpected(struct vmig_session *s, uint32_t type)
{
	fail(s, -EPROTO, -1, 0, "main channel: unexpected message %u", type);
}

/* ------------------------------------------------------------- creation */

VMIG_EXPORT void vmig_session_config_init(struct vmig_session_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->channels = 1;
	cfg->chunk_size = DEFAULT_CHUNK;
	cfg->mem_limit = DEFAULT_MEM;
	cfg->precopy = true;
	cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
	cfg->switchover_max_queued = DEFAULT_MAX_QUEUED;
}

VMIG_EXPORT int vmig_session_create(enum vmig_role role,
				    const struct vmig_session_config *cfg,
				    struct vmig_session **out)
{
	struct vmig_session *s;

	if (!cfg || !out ||
	    (role != VMIG_ROLE_SOURCE && role != VMIG_ROLE_DESTINATION))
		return -EINVAL;
	if (!cfg->secret || cfg->secret_len < VMIG_SECRET_MIN_LEN ||
	    cfg->secret_len > VMIG_SECRET_MAX_LEN) {
		vmig_err("session: the secret must have %d to %d bytes",
			 VMIG_SECRET_MIN_LEN, VMIG_SECRET_MAX_LEN);
		return -EINVAL;
	}
	if (role == VMIG_ROLE_SOURCE &&
	    (!cfg->channels || cfg->channels > VMIG_MAX_CHANNELS ||
	     !cfg->chunk_size || cfg->chunk_size > VMIG_PKT_MAX_PAYLOAD ||
	     cfg->zstd_level < 0 || cfg->zstd_level > ZSTD_maxCLevel())) {
		vmig_err("session: bad channels, chunk size or zstd level");
		return -EINVAL;
	}
	/* The destination takes the source's chunk size (checked then). */
	if (role == VMIG_ROLE_SOURCE && cfg->mem_limit / cfg->chunk_size < 2) {
		vmig_err("session: mem_limit must hold two chunks");
		return -EINVAL;
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->efd < 0) {
		free(s);
		return -errno;
	}
	s->role = role;
	s->cfg = *cfg;
	memcpy(s->secret, cfg->secret, cfg->secret_len);
	s->cfg.secret = s->secret;
	memcpy(s->auth.session_id, cfg->session_id, VMIG_SESSION_ID_LEN);
	s->auth.secret = s->secret;
	s->auth.secret_len = cfg->secret_len;
	s->auth.timeout_ms = cfg->timeout_ms;
	s->main_fd = -1;
	s->error.device = -1;
	s->error.channel = -1;
	s->chunk = cfg->chunk_size;
	s->zstd_level = cfg->zstd_level;
	s->precopy = cfg->precopy;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->send_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	*out = s;
	return 0;
}

static void close_data_fd(struct sdev *d)
{
	if (d->data_fd >= 0)
		close(d->data_fd);
	d->data_fd = -1;
}

VMIG_EXPORT void vmig_session_destroy(struct vmig_session *s)
{
	unsigned int i;

	if (!s)
		return;
	/* RAM first: its threads use the RAM channels. */
	for (i = 0; s->ram_fds && i < s->ram_nchan; i++)
		if (s->ram_fds[i] >= 0)
			shutdown(s->ram_fds[i], SHUT_RDWR);
	ram_sess_free(s->ram);
	for (i = 0; s->ram_fds && i < s->ram_nchan; i++)
		if (s->ram_fds[i] >= 0)
			close(s->ram_fds[i]);
	free(s->ram_fds);
	vmig_rx_destroy(s->rx);
	vmig_txq_destroy(s->txq);
	for (i = 0; i < s->nchan; i++)
		if (s->chans[i].fd >= 0)
			close(s->chans[i].fd);
	if (s->main_fd >= 0)
		close(s->main_fd);
	for (i = 0; i < s->ndev; i++) {
		close_data_fd(&s->devs[i]);
		vmig_tx_dev_release(&s->devs[i].tx);
	}
	close(s->efd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->send_lock);
	pthread_mutex_destroy(&s->lock);
	memset(s->secret, 0, sizeof(s->secret));
	free(s->chans);
	free(s->devs);
	free(s);
}

VMIG_EXPORT int vmig_session_add_device(struct vmig_session *s,
					const char *name, uint32_t mig_flags,
					const struct vmig_device_ops *ops,
					void *opaque)
{
	struct sdev *devs, *d;

	if (!s || !name || !*name || !ops || !ops->set_state ||
	    strlen(name) >= VMIG_DEVICE_NAME_MAX)
		return -EINVAL;
	if (s->connected)
		return -EBUSY;
	if (s->ndev == VMIG_MAX_DEVICES)
		return -ENOSPC;
	if (!(mig_flags & VMIG_MIG_STOP_COPY)) {
		vmig_err("%s: device does not support STOP_COPY", name);
		return -EOPNOTSUPP;
	}
	devs = realloc(s->devs, (s->ndev + 1) * sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	s->devs = devs;
	d = &devs[s->ndev];
	memset(d, 0, sizeof(*d));
	d->idx = s->ndev;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->mig_flags = mig_flags;
	d->ops = ops;
	d->opaque = opaque;
	d->data_fd = -1;
	s->ndev++;
	/* The array may have moved: set the back pointers again. */
	for (d = devs; d < devs + s->ndev; d++)
		d->s = s;
	return s->ndev - 1;
}

static int vfio_ops_set_state(void *opaque, enum vmig_dev_state state,
			      int *data_fd)
{
	return vmig_vfio_set_state(opaque, state, data_fd);
}

static int vfio_ops_precopy_info(void *opaque, int data_fd, uint64_t *initial,
				 uint64_t *dirty)
{
	uint32_t flags;

	(void)opaque;
	return vmig_precopy_info(data_fd, initial, dirty, &flags);
}

static int vfio_ops_reset(void *opaque)
{
	return vmig_vfio_reset(opaque);
}

static int vfio_ops_stop_copy_size(void *opaque, uint64_t *bytes)
{
	return vmig_vfio_stop_copy_size(opaque, bytes);
}

static const struct vmig_device_ops vfio_ops = {
	.set_state = vfio_ops_set_state,
	.precopy_info = vfio_ops_precopy_info,
	.reset = vfio_ops_reset,
	.stop_copy_size = vfio_ops_stop_copy_size,
};

VMIG_EXPORT int vmig_session_add_vfio_named(struct vmig_session *s,
					    struct vmig_vfio_dev *dev,
					    const char *name)
{
	uint32_t flags;
	int ret;

	if (!s || !dev)
		return -EINVAL;
	ret = vmig_vfio_mig_flags(dev, &flags);
	if (ret)
		return ret;
	return vmig_session_add_device(s, name ? name : vmig_vfio_name(dev),
				       flags, &vfio_ops, dev);
}

VMIG_EXPORT int vmig_session_add_vfio(struct vmig_session *s,
				      struct vmig_vfio_dev *dev)
{
	return vmig_session_add_vfio_named(s, dev, NULL);
}

VMIG_EXPORT int vmig_session_add_ram(struct vmig_session *s,
				     const struct vmig_session_ram *ram)
{
	int ret;

	if (!s || !ram)
		return -EINVAL;
	if (s->connected || s->ram)
		return -EALREADY;
	ret = ram_sess_new(ram, s->role == VMIG_ROLE_SOURCE, &s->ram);
	if (ret)
		vmig_err("session: guest RAM: %s", strerror(-ret));
	return ret;
}

VMIG_EXPORT int vmig_session_set_downtime(struct vmig_session *s, uint64_t ns)
{
	if (!s || s->role != VMIG_ROLE_SOURCE || !ns)
		return -EINVAL;
	if (!s->ram)
		return -ENODATA;
	return ram_sess_set_downtime(s->ram, ns);
}

VMIG_EXPORT void vmig_session_get_ram_stats(struct vmig_session *s,
					    struct vmig_session_ram_stats *st)
{
	if (s->ram)
		ram_sess_get_stats(s->ram, st);
	else
		memset(st, 0, sizeof(*st));
}

/* ------------------------------------------------------------ handshake */

static int alloc_chans(struct vmig_session *s, unsigned int n)
{
	unsigned int i;

	s->chans = calloc(n, sizeof(*s->chans));
	if (!s->chans)
		return -ENOMEM;
	s->nchan = n;
	for (i = 0; i < n; i++) {
		s->chans[i].s = s;
		s->chans[i].index = i + 1;
		s->chans[i].fd = -1;
	}
	return 0;
}

/*
 * Socket options of a source data channel (TCP only; best effort).  With
 * one channel nothing can be reordered: there, the unsent backlog only
 * saves the sender wake-ups (a paced socket sends in bursts).
 */
static void data_sockopts(const struct vmig_session *s, int fd,
			  sa_family_t family)
{
	int v = DATA_NOTSENT_LOWAT;

	if (s->nchan > 1 && (family == AF_INET || family == AF_INET6))
		setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v));
}

static bool dev_precopy(const struct vmig_session *s, const struct sdev *d)
{
	return s->precopy && (d->mig_flags & VMIG_MIG_PRE_COPY);
}

static int send_config(struct vmig_session *s)
{
	uint32_t len = CONFIG_HDR_LEN + s->ndev * CONFIG_DEV_LEN +
		       (s->ram ? CONFIG_RAM_LEN : 0);
	uint8_t *m = calloc(1, len);
	unsigned int i;
	int ret;

	if (!m)
		return -ENOMEM;
	put32(m, s->ndev);
	put32(m + 4, s->nchan);
	put32(m + 8, s->chunk);
	put32(m + 12, (s->zstd_level ? CONFIG_F_ZSTD : 0) |
	      (s->precopy ? CONFIG_F_PRECOPY : 0) |
	      (s->ram ? CONFIG_F_RAM : 0));
	if (s->ram) {
		uint8_t *p = m + CONFIG_HDR_LEN + s->ndev * CONFIG_DEV_LEN;

		put64(p, ram_sess_pages(s->ram));
		put32(p + 8, ram_sess_channels(s->ram));
		put32(p + 12, ram_sess_postcopy(s->ram) ?
			      CONFIG_RAM_POSTCOPY : 0);
	}
	for (i = 0; i < s->ndev; i++) {
		uint8_t *p = m + CONFIG_HDR_LEN + i * CONFIG_DEV_LEN;

		put32(p, s->devs[i].mig_flags);
		memcpy(p + 4, s->devs[i].name, strlen(s->devs[i].name));
	}
	ret = send_msg(s, MSG_CONFIG, m, len);
	free(m);
	return ret;
}

/* Source: the RAM channels, after the data channels. */
static int connect_ram(struct vmig_session *s, const struct sockaddr *addr,
		       socklen_t addrlen)
{
	struct vmig_chan_id id = { .kind = VMIG_CHAN_RAM };
	unsigned int i;
	int fd;

	if (!s->ram)
		return 0;
	memcpy(id.session_id, s->auth.session_id, VMIG_SESSION_ID_LEN);
	s->ram_nchan = ram_sess_channels(s->ram);
	s->ram_fds = malloc(s->ram_nchan * sizeof(int));
	if (!s->ram_fds)
		return -ENOMEM;
	for (i = 0; i < s->ram_nchan; i++)
		s->ram_fds[i] = -1;
	id.count = s->ram_nchan;
	for (i = 0; i < s->ram_nchan; i++) {
		id.index = i;
		fd = vmig_chan_connect(addr, addrlen, &s->auth, &id);
		if (fd < 0) {
			fail(s, fd, -1, -1, "RAM channel %u: %s", i,
			     strerror(-fd));
			send_error(s);
			return fd;
		}
		s->ram_fds[i] = fd;
	}
	return 0;
}

VMIG_EXPORT int vmig_session_connect(struct vmig_session *s,
				     const struct sockaddr *addr,
				     socklen_t addrlen)
{
	struct vmig_chan_id id = { .kind = VMIG_CHAN_MAIN, .count = 1 };
	uint8_t *buf = NULL;
	uint32_t type, len;
	unsigned int i;
	int ret, fd;

	if (!s || !addr || s->role != VMIG_ROLE_SOURCE)
		return -EINVAL;
	if (s->connected)
		return -EALREADY;
	if (!s->ndev)
		return -ENODEV;
	memcpy(id.session_id, s->auth.session_id, VMIG_SESSION_ID_LEN);

	fd = vmig_chan_connect(addr, addrlen, &s->auth, &id);
	if (fd < 0) {
		fail(s, fd, -1, 0, "main channel: %s", strerror(-fd));
		return fd;
	}
	s->main_fd = fd;
	ret = alloc_chans(s, s->cfg.channels);
	if (ret)
		return ret;
	id.kind = VMIG_CHAN_DEVSTATE;
	id.count = s->nchan;
	for (i = 0; i < s->nchan; i++) {
		id.index = i;
		fd = vmig_chan_connect(addr, addrlen, &s->auth, &id);
		if (fd < 0) {
			fail(s, fd, -1, i + 1, "data channel %u: %s", i + 1,
			     strerror(-fd));
			return fd;
		}
		s->chans[i].fd = fd;
		data_sockopts(s, fd, addr->sa_family);
	}

	ret = send_config(s);
	buf = malloc(MSG_MAX_LEN);
	if (!ret && !buf)
		ret = -ENOMEM;
	if (!ret)
		ret = recv_msg(s, &type, buf, &len);
	if (ret) {
		fail(s, ret, -1, 0, "main channel: %s", strerror(-ret));
	} else if (type == MSG_ERROR) {
		got_error(s, buf, len);
		ret = s->error.err;
	} else if (type != MSG_CONFIG_OK) {
		unexpected(s, type);
		ret = -EPROTO;
	}
	free(buf);
	/* The destination knows the RAM channels from CONFIG. */
	if (!ret)
		ret = connect_ram(s, addr, addrlen);
	if (ret)
		return ret;
	s->connected = true;
	vmig_info("migration source: connected, %u data channels", s->nchan);
	return 0;
}

/* Destination: which channels the session takes (called after auth). */
static int wanted(const struct vmig_chan_id *id, void *opaque)
{
	struct vmig_session *s = opaque;

	switch (id->kind) {
	case VMIG_CHAN_MAIN:
		if (id->index || id->count != 1 || s->main_fd >= 0)
			return -EEXIST;
		return 0;
	case VMIG_CHAN_DEVSTATE:
		if (!id->count || id->count > VMIG_MAX_CHANNELS ||
		    id->index >= id->count)
			return -EINVAL;
		if (s->nchan && id->count != s->nchan)
			return -EINVAL;
		if (s->nchan && s->chans[id->index].fd >= 0)
			return -EEXIST;
		return 0;
	case VMIG_CHAN_RAM:
		/* Only after CONFIG, which says how many. */
		if (!s->ram || !s->ram_fds)
			return -EPROTONOSUPPORT;
		if (id->count != s->ram_nchan || id->index >= id->count)
			return -EINVAL;
		if (s->ram_fds[id->index] >= 0)
			return -EEXIST;
		return 0;
	default:
		/* Postcopy channels are not this session's. */
		return -EPROTONOSUPPORT;
	}
}

static int check_config(struct vmig_session *s, const uint8_t *m,
			uint32_t len, char *why, size_t why_len)
{
	uint32_t ndev, nchan, chunk, flags, i;

	if (len < CONFIG_HDR_LEN) {
		snprintf(why, why_len, "short CONFIG message");
		return -EPROTO;
	}
	ndev = get32(m);
	nchan = get32(m + 4);
	chunk = get32(m + 8);
	flags = get32(m + 12);
	if (len != CONFIG_HDR_LEN + (uint64_t)ndev * CONFIG_DEV_LEN +
	    (flags & CONFIG_F_RAM ? CONFIG_RAM_LEN : 0)) {
		snprintf(why, why_len, "CONFIG message of the wrong length");
		return -EPROTO;
	}
	if (!(flags & CONFIG_F_RAM) != !s->ram) {
		snprintf(why, why_len, s->ram ?
			 "the source migrates no guest RAM, the destination expects it" :
			 "the source migrates guest RAM, the destination has none");
		return -EMEDIUMTYPE;
	}
	if (s->ram) {
		const uint8_t *p = m + CONFIG_HDR_LEN +
				   (uint64_t)ndev * CONFIG_DEV_LEN;

		if (get64(p) != ram_sess_pages(s->ram)) {
			snprintf(why, why_len,
				 "guest RAM has %llu pages on the source, %llu here",
				 (unsigned long long)get64(p),
				 (unsigned long long)ram_sess_pages(s->ram));
			return -EMEDIUMTYPE;
		}
		if (!get32(p + 8) || get32(p + 8) > VMIG_MAX_CHANNELS ||
		    (get32(p + 12) & ~CONFIG_RAM_POSTCOPY)) {
			snprintf(why, why_len, "CONFIG names %u RAM channels",
				 get32(p + 8));
			return -EPROTO;
		}
		s->ram_fds = malloc(get32(p + 8) * sizeof(int));
		if (!s->ram_fds)
			return -ENOMEM;
		s->ram_nchan = get32(p + 8);
		ram_sess_set_postcopy(s->ram,
				      get32(p + 12) & CONFIG_RAM_POSTCOPY);
		for (i = 0; i < s->ram_nchan; i++)
			s->ram_fds[i] = -1;
	}
	if (ndev != s->ndev) {
		snprintf(why, why_len,
			 "the source has %u devices, the destination %u",
			 ndev, s->ndev);
		return -ENODEV;
	}
	if (nchan != s->nchan) {
		snprintf(why, why_len, "CONFIG names %u channels, %u connected",
			 nchan, s->nchan);
		return -EPROTO;
	}
	if (!chunk || chunk > VMIG_PKT_MAX_PAYLOAD ||
	    s->cfg.mem_limit / chunk < 2) {
		snprintf(why, why_len,
			 "chunk size %u does not fit the destination's memory limit",
			 chunk);
		return -EMSGSIZE;
	}
	for (i = 0; i < ndev; i++) {
		const uint8_t *p = m + CONFIG_HDR_LEN + i * CONFIG_DEV_LEN;
		char name[VMIG_DEVICE_NAME_MAX + 1] = "";

		memcpy(name, p + 4, VMIG_DEVICE_NAME_MAX);
		if (strcmp(name, s->devs[i].name)) {
			snprintf(why, why_len,
				 "device %u is \"%.64s\" on the source, \"%s\" here",
				 i, name, s->devs[i].name);
			return -ENODEV;
		}
	}
	s->chunk = chunk;
	s->precopy = !!(flags & CONFIG_F_PRECOPY);
	return 0;
}

static int accept_one(struct vmig_session *s, int listen_fd)
{
	struct pollfd pfd[2] = {
		{ .fd = listen_fd, .events = POLLIN },
		{ .fd = s->efd, .events = POLLIN },	/* an abort */
	};
	struct vmig_chan_id id;
	const char *why;
	int fd, ret;

	ret = poll(pfd, 2, s->cfg.timeout_ms ? (int)s->cfg.timeout_ms : -1);
	if (ret < 0)
		return errno == EINTR ? 0 : -errno;
	if (!ret)
		return -ETIMEDOUT;
	if (failed(s))
		return s->error.err;
	if (!pfd[0].revents)
		return 0;
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EINTR || errno == EAGAIN ||
		       errno == ECONNABORTED ? 0 : -errno;

	ret = vmig_chan_handshake_accept(fd, &s->auth, wanted, s, &id, &why);
	if (ret) {
		s->refused++;
		vmig_warn("migration destination: refused a connection: %s (%s)",
			  why, strerror(-ret));
		close(fd);
		return 0;
	}
	if (id.kind == VMIG_CHAN_MAIN) {
		s->main_fd = fd;
	} else if (id.kind == VMIG_CHAN_RAM) {
		s->ram_fds[id.index] = fd;
	} else {
		if (!s->nchan) {
			ret = alloc_chans(s, id.count);
			if (ret) {
				close(fd);
				return ret;
			}
		}
		s->chans[id.index].fd = fd;
	}
	return 0;
}

/* Destination: after CONFIG_OK, the RAM channels CONFIG announced. */
static int accept_ram(struct vmig_session *s, int listen_fd)
{
	unsigned int i, have;
	int ret;

	for (;;) {
		have = 0;
		for (i = 0; i < s->ram_nchan; i++)
			have += s->ram_fds[i] >= 0;
		if (have == s->ram_nchan)
			return 0;
		ret = accept_one(s, listen_fd);
		if (ret) {
			fail(s, ret, -1, -1, "waiting for RAM channels: %s",
			     strerror(-ret));
			return s->error.err;
		}
	}
}

VMIG_EXPORT int vmig_session_accept(struct vmig_session *s, int listen_fd)
{
	char why[256];
	unsigned int i, have;
	uint8_t *buf;
	uint32_t type, len;
	int ret;

	if (!s || listen_fd < 0 || s->role != VMIG_ROLE_DESTINATION)
		return -EINVAL;
	if (s->connected)
		return -EALREADY;
	if (!s->ndev)
		return -ENODEV;
	for (;;) {
		have = 0;
		for (i = 0; i < s->nchan; i++)
			have += s->chans[i].fd >= 0;
		if (s->main_fd >= 0 && s->nchan && have == s->nchan)
			break;
		ret = accept_one(s, listen_fd);
		if (ret) {
			fail(s, ret, -1, -1, "waiting for channels: %s",
			     strerror(-ret));
			return s->error.err;
		}
	}

	buf = malloc(MSG_MAX_LEN);
	if (!buf)
		return -ENOMEM;
	ret = recv_msg(s, &type, buf, &len);
	if (ret) {
		fail(s, ret, -1, 0, "main channel: %s", strerror(-ret));
	} else if (type == MSG_ERROR) {
		got_error(s, buf, len);
		ret = s->error.err;
	} else if (type != MSG_CONFIG) {
		unexpected(s, type);
		ret = -EPROTO;
	} else {
		ret = check_config(s, buf, len, why, sizeof(why));
		if (ret) {
			fail(s, ret, -1, 0, "%s", why);
			send_error(s);
		} else {
			ret = send_msg(s, MSG_CONFIG_OK, NULL, 0);
			if (ret)
				fail(s, ret, -1, 0, "main channel: %s",
				     strerror(-ret));
		}
	}
	free(buf);
	if (!ret && s->ram)
		ret = accept_ram(s, listen_fd);
	if (ret)
		return ret;
	s->connected = true;
	vmig_info("migration destination: connected, %u data channels (%llu refused)",
		  s->nchan, (unsigned long long)s->refused);
	return 0;
}

/* --------------------------------------------------------------- source */

static int set_state(struct sdev *d, enum vmig_dev_state st, int *data_fd)
{
	int fd = -1, ret;

	d->moved = true;
	ret = d->ops->set_state(d->opaque, st, &fd);
	if (data_fd)
		*data_fd = fd;
	else if (fd >= 0)
		close(fd);
	if (ret >= 0)
		ret = 0;
	return ret;
}

/*
 * A data channel broke.  If the peer failed, it sent ERROR on the main
 * channel before it shut its data channels: give the control thread a
 * moment to read it, so that the cause is reported rather than this
 * consequence (which is reported if nothing else comes).
 */
static void await_peer_error(struct vmig_session *s)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += PEER_ERROR_GRACE_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&s->lock);
	while (!s->failed &&
	       pthread_cond_timedwait(&s->cond, &s->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&s->lock);
}

static void *sender(void *arg)
{
	struct chan *c = arg;
	struct vmig_session *s = c->s;
	struct vmig_txbuf *b;
	struct vmig_uio io;
	ssize_t n;
	int ret;

	vmig_name_thread("send", c->index);
	ret = vmig_uio_init(&io);
	if (ret) {
		fail(s, ret, -1, c->index, "data channel %u: io_uring: %s",
		     c->index, strerror(-ret));
		return NULL;
	}
	while ((b = vmig_txq_pop(s->txq))) {
		n = vmig_uio_send(&io, c->fd, b->data, b->len);
		if (n >= 0) {
			__atomic_fetch_add(&c->wire_bytes, n, __ATOMIC_RELAXED);
			__atomic_fetch_add(&c->packets, 1, __ATOMIC_RELAXED);
		}
		vmig_txq_put(s->txq, b);
		if (n < 0) {
			if (n == -EPIPE || n == -ECONNRESET)
				await_peer_error(s);
			fail(s, n, -1, c->index, "data channel %u: sending: %s",
			     c->index, strerror(-n));
			break;
		}
	}
	/* Queue closed and empty: tell the destination nothing more comes. */
	if (!failed(s))
		shutdown(c->fd, SHUT_WR);
	vmig_uio_exit(&io);
	return NULL;
}

static int send_init_done(struct vmig_session *s, struct sdev *d,
			  uint64_t count)
{
	uint8_t m[16] = { 0 };
	int ret;

	put32(m, d->idx);
	put64(m + 8, count);
	ret = send_msg(s, MSG_INIT_DONE, m, sizeof(m));
	if (ret)
		fail(s, ret, -1, 0, "main channel: sending: %s",
		     strerror(-ret));
	else
		vmig_dbg("%s: initial data is %llu packets", d->name,
			 (unsigned long long)count);
	return ret;
}

static void reader_precopy_step(struct sdev *d)
{
	struct vmig_session *s = d->s;
	uint64_t initial = 0, dirty = 0;
	bool have_info = d->ops->precopy_info, init_done;
	struct timespec until;
	ssize_t n;
	int ret = 0;

	pthread_mutex_unlock(&s->lock);
	n = vmig_tx_read(&d->tx, s->txq);
	if (n >= 0 && have_info && (!d->init_sent || d->tx.drained))
		ret = d->ops->precopy_info(d->opaque, d->data_fd, &initial,
					   &dirty);
	pthread_mutex_lock(&s->lock);

	if (n < 0 || ret < 0) {
		pthread_mutex_unlock(&s->lock);
		/* -ECANCELED: the queue was aborted for another failure. */
		if (n < 0 && n != -ECANCELED)
			fail(s, n, d->idx, -1,
			     "device %s: reading its data fd in PRE_COPY: %s",
			     d->name, strerror(-n));
		else if (n >= 0)
			fail(s, ret, d->idx, -1,
			     "device %s: PRECOPY_INFO: %s", d->name,
			     strerror(-ret));
		pthread_mutex_lock(&s->lock);
		return;
	}
	d->precopy_bytes += n;
	init_done = !d->init_sent &&
		    (have_info ? initial == 0 : d->tx.drained);
	d->idle = d->tx.drained && (!have_info || !dirty);
	if (init_done) {
		d->init_sent = true;
		pthread_mutex_unlock(&s->lock);
		send_init_done(s, d, d->tx.seq);
		pthread_mutex_lock(&s->lock);
	}
	if (d->tx.drained) {
		pthread_mutex_unlock(&s->lock);
		wake(s);
		pthread_mutex_lock(&s->lock);
		if (s->failed || s->stop_readers)
			return;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += PRECOPY_POLL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &until);
	}
}

static void reader_stopcopy(struct sdev *d)
{
	struct vmig_session *s = d->s;
	ssize_t n;
	int ret;

	pthread_mutex_unlock(&s->lock);
	do {
		n = vmig_tx_read(&d->tx, s->txq);
		if (n > 0)
			__atomic_fetch_add(&d->stopcopy_bytes, n,
					   __ATOMIC_RELAXED);
	} while (n > 0);
	ret = n ? n : vmig_tx_end(&d->tx, s->txq);
	if (ret && ret != -ECANCELED)
		fail(s, ret, d->idx, -1,
		     "device %s: reading its data fd in STOP_COPY: %s",
		     d->name, strerror(-ret));
	pthread_mutex_lock(&s->lock);
	d->mode = MODE_DONE;
	if (!ret)
		s->readers_done++;
	pthread_mutex_unlock(&s->lock);
	wake(s);
	pthread_mutex_lock(&s->lock);
}

static void *reader(void *arg)
{
	struct sdev *d = arg;
	struct vmig_session *s = d->s;

	vmig_name_thread("read", d->idx);
	pthread_mutex_lock(&s->lock);
	while (!s->failed && d->mode != MODE_DONE) {
		if (d->mode == MODE_PRECOPY && !s->stop_readers) {
			d->parked = false;
			reader_precopy_step(d);
		} else if (d->mode == MODE_STOPCOPY) {
			reader_stopcopy(d);
		} else {
			if (!d->parked) {
				d->parked = true;
				pthread_cond_broadcast(&s->cond);
			}
			pthread_cond_wait(&s->cond, &s->lock);
		}
	}
	d->parked = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void drain_efd(struct vmig_session *s)
{
	uint64_t v;

	if (read(s->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing pending. */
	}
}

/*
 * Wait for the main channel or a wake-up.  Returns 1 with a message in
 * *type/buf/len, 0 on a wake-up or timeout, or a negative errno.
 */
static int control_wait(struct vmig_session *s, int timeout_ms,
			uint32_t *type, uint8_t *buf, uint32_t *len)
{
	struct pollfd pfd[2] = {
		{ .fd = s->efd, .events = POLLIN },
		{ .fd = s->main_fd, .events = POLLIN },
	};
	int ret;

	ret = poll(pfd, 2, timeout_ms);
	if (ret < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd[0].revents)
		drain_efd(s);
	if (!pfd[1].revents || failed(s))
		return 0;
	ret = recv_msg(s, type, buf, len);
	if (ret) {
		fail(s, ret, -1, 0, "main channel: %s",
		     ret == -ECONNRESET ? "closed by the peer" :
					  strerror(-ret));
		return ret;
	}
	if (*type == MSG_ERROR) {
		got_error(s, buf, *len);
		return s->error.err;
	}
	return 1;
}

static bool all_idle(struct vmig_session *s)
{
	unsigned int i;
	bool idle = true;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->ndev; i++)
		idle &= s->devs[i].mode != MODE_PRECOPY || s->devs[i].idle;
	pthread_mutex_unlock(&s->lock);
	return idle;
}

/*
 * Precopy data read from the devices that the destination has not reported
 * written to their data fds yet: what the switchover would still have to
 * carry besides the stop-copy data.
 */
static uint64_t queued_bytes(struct vmig_session *s)
{
	uint64_t read = 0, written;
	unsigned int i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->ndev; i++)
		read += s->devs[i].precopy_bytes;
	written = s->dest_written;
	pthread_mutex_unlock(&s->lock);
	return read > written ? read - written : 0;
}

/* A message before the switchover: SWITCHOVER_ACK (once) or PROGRESS. */
static int precopy_msg(struct vmig_session *s, uint32_t type,
		       const uint8_t *buf, uint32_t len, bool *ack)
{
	if (type == MSG_PROGRESS && len >= 8) {
		pthread_mutex_lock(&s->lock);
		s->dest_written = get64(buf);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (type == MSG_SWITCHOVER_ACK && ack && !*ack) {
		*ack = true;
		return 0;
	}
	unexpected(s, type);
	return -EPROTO;
}

/*
 * Precopy until acknowledged and settled: every device ran dry and the
 * backlog fits cfg.switchover_max_queued, or precopy_max_ms is up.
 */
static int source_precopy(struct vmig_session *s, uint8_t *buf)
{
	uint64_t t_ack = 0, limit = s->cfg.precopy_max_ms * 1000000ULL;
	uint32_t type, len;
	bool ack = false;
	int ret, timeout, ram;

	for (;;) {
		if (failed(s))
			return s->error.err;
		ram = s->ram ? ram_sess_ready(s->ram) : 1;
		if (ram < 0) {
			fail(s, ram, -1, -1, "guest RAM: %s", strerror(-ram));
			return ram;
		}
		if (ack && ((all_idle(s) && ram &&
			     queued_bytes(s) <= s->cfg.switchover_max_queued) ||
			    (limit && ram_now_ns() - t_ack >= limit)))
			return 0;
		timeout = ack && limit ? PRECOPY_POLL_MS : -1;
		ret = control_wait(s, timeout, &type, buf, &len);
		if (ret < 0)
			return ret;
		if (ret == 0)
			continue;
		ret = precopy_msg(s, type, buf, len, &ack);
		if (ret)
			return ret;
		if (ack && !t_ack) {
			t_ack = ram_now_ns();
			vmig_info("migration source: switchover acknowledged after %.1f ms",
				  (t_ack - s->t_start) / 1e6);
		}
	}
}

/* Readers off the PRE_COPY fds: nothing more is read until STOP_COPY. */
static int park_readers(struct vmig_session *s)
{
	unsigned int i;
	bool parked;

	pthread_mutex_lock(&s->lock);
	s->stop_readers = true;
	pthread_cond_broadcast(&s->cond);
	for (;;) {
		parked = true;
		for (i = 0; i < s->ndev; i++)
			parked &= s->devs[i].parked;
		if (parked || s->failed)
			break;
		pthread_cond_wait(&s->cond, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return failed(s) ? s->error.err : 0;
}

/*
 * With the readers parked, the backlog only shrinks: wait until the
 * destination reports it within cfg.switchover_max_queued.
 */
static int source_drain(struct vmig_session *s, uint8_t *buf)
{
	uint64_t t0 = ram_now_ns(), queued;
	uint32_t type, len;
	int ret;

	ret = park_readers(s);
	if (ret)
		return ret;
	for (;;) {
		if (failed(s))
			return s->error.err;
		queued = queued_bytes(s);
		if (queued <= s->cfg.switchover_max_queued)
			break;
		ret = control_wait(s, -1, &type, buf, &len);
		if (ret < 0)
			return ret;
		if (ret == 0)
			continue;
		ret = precopy_msg(s, type, buf, len, NULL);
		if (ret)
			return ret;
	}
	vmig_info("migration source: switching over, %llu bytes of precopy data not yet written at the destination (waited %.1f ms for it)",
		  (unsigned long long)queued, (ram_now_ns() - t0) / 1e6);
	return 0;
}

static int source_switchover(struct vmig_session *s)
{
	uint64_t queued;
	unsigned int i;
	int ret, fd;

	if (s->cfg.switchover) {
		ret = s->cfg.switchover(s->cfg.opaque);
		if (ret < 0) {
			fail(s, ret, -1, -1, "switchover refused by the caller");
			return ret;
		}
	}

	queued = queued_bytes(s);
	pthread_mutex_lock(&s->lock);
	s->switchover_queued = queued;
	s->t_stop = ram_now_ns();
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < s->ndev; i++) {
		struct sdev *d = &s->devs[i];

		if (!(d->mig_flags & VMIG_MIG_P2P))
			continue;
		ret = set_state(d, d->mode == MODE_PRECOPY ?
				VMIG_STATE_PRE_COPY_P2P :
				VMIG_STATE_RUNNING_P2P, NULL);
		if (ret) {
			fail(s, ret, i, -1, "device %s: to P2P: %s", d->name,
			     strerror(-ret));
			return ret;
		}
	}
	/* Devices and vCPUs write no more: RAM's last pass. */
	if (s->ram)
		ram_sess_switchover(s->ram);
	for (i = 0; i < s->ndev; i++) {
		struct sdev *d = &s->devs[i];

		ret = set_state(d, VMIG_STATE_STOP_COPY, &fd);
		if (ret) {
			fail(s, ret, i, -1, "device %s: to STOP_COPY: %s",
			     d->name, strerror(-ret));
			return ret;
		}
		if (fd >= 0) {
			close_data_fd(d);
			d->data_fd = fd;
			d->tx.fd = fd;
		}
		if (d->data_fd < 0) {
			fail(s, -EBADF, i, -1,
			     "device %s: no data fd in STOP_COPY", d->name);
			return -EBADF;
		}
		pthread_mutex_lock(&s->lock);
		d->mode = MODE_STOPCOPY;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

/*
 * Stop-copy until the destination reports the devices loaded, and the
 * guest RAM's last pass is acknowledged.
 */
static int source_finish(struct vmig_session *s, uint8_t *buf)
{
	uint32_t type, len;
	bool closed = false, loaded = false;
	int ret, ram;

	for (;;) {
		if (failed(s))
			return s->error.err;
		pthread_mutex_lock(&s->lock);
		if (!closed && s->readers_done == s->ndev) {
			closed = true;
			vmig_txq_close(s->txq);
		}
		pthread_mutex_unlock(&s->lock);
		ram = s->ram ? ram_sess_status(s->ram) : 1;
		if (ram < 0) {
			fail(s, ram, -1, -1, "guest RAM: %s", strerror(-ram));
			return ram;
		}
		if (loaded && ram == 1)
			return 0;
		ret = control_wait(s, -1, &type, buf, &len);
		if (ret < 0)
			return ret;
		if (ret == 0)
			continue;
		if (type == MSG_PROGRESS)
			continue;	/* only counts before the switchover */
		if (type != MSG_LOADED || loaded) {
			unexpected(s, type);
			return -EPROTO;
		}
		loaded = true;
	}
}

static void join_threads(struct vmig_session *s)
{
	unsigned int i;

	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < s->ndev; i++) {
		if (s->devs[i].reader_started)
			pthread_join(s->devs[i].reader, NULL);
		s->devs[i].reader_started = false;
	}
	for (i = 0; i < s->nchan; i++) {
		if (s->chans[i].started)
			pthread_join(s->chans[i].thread, NULL);
		s->chans[i].started = false;
	}
	/* The device writers, before their data fds close. */
	if (s->rx)
		vmig_rx_stop(s->rx);
	if (s->ram)
		ram_sess_stop(s->ram);
}

static void source_rollback(struct vmig_session *s)
{
	unsigned int i;
	int ret;

	for (i = 0; i < s->ndev; i++) {
		struct sdev *d = &s->devs[i];

		if (d->moved) {
			ret = set_state(d, VMIG_STATE_RUNNING, NULL);
			if (ret)
				vmig_err("device %s: cannot return to RUNNING: %s",
					 d->name, strerror(-ret));
		}
		close_data_fd(d);
	}
}

/*
 * The send queue's memory: mem_limit at most, but no more buffers than the
 * pipeline uses, one per device (being read) and TXQ_PER_CHAN per channel
 * (being sent, and the next one).  A deeper queue only adds buffers that
 * are cold by the time they are sent or reused, and backlog at the
 * switchover; readers wait for a buffer whatever the depth.
 */
static uint64_t txq_mem(const struct vmig_session *s)
{
	uint64_t per = VMIG_PKT_HDR_LEN + (uint64_t)s->chunk;
	uint64_t want = ((uint64_t)s->ndev + TXQ_PER_CHAN * s->nchan) * per;

	return want < s->cfg.mem_limit ? want : s->cfg.mem_limit;
}

/* One thread per data channel: the senders, or the receivers. */
static int start_chans(struct vmig_session *s, void *(*fn)(void *))
{
	unsigned int i;
	int ret;

	for (i = 0; i < s->nchan; i++) {
		ret = -pthread_create(&s->chans[i].thread, NULL, fn,
				      &s->chans[i]);
		if (ret) {
			fail(s, ret, -1, -1, "cannot start threads");
			return ret;
		}
		s->chans[i].started = true;
	}
	return 0;
}

/* For the convergence model: what device i would send in STOP_COPY. */
static int dev_stop_copy_size(void *opaque, unsigned int i, uint64_t *bytes)
{
	struct vmig_session *s = opaque;
	struct sdev *d = &s->devs[i];
	uint64_t initial, dirty;
	int ret, fd = d->data_fd;

	if (d->ops->stop_copy_size)
		return d->ops->stop_copy_size(d->opaque, bytes);
	*bytes = 0;
	if (!d->ops->precopy_info || fd < 0)
		return 0;
	ret = d->ops->precopy_info(d->opaque, fd, &initial, &dirty);
	if (!ret)
		*bytes = initial + dirty;
	return ret;
}

static void notify_wake(void *opaque)
{
	wake(opaque);
}

static int source_start(struct vmig_session *s)
{
	unsigned int i;
	int ret, fd;

	ret = vmig_txq_create(txq_mem(s), s->chunk, &s->txq);
	if (ret)
		return ret;
	for (i = 0; i < s->ndev; i++) {
		struct sdev *d = &s->devs[i];

		d->tx.dev_id = i;
		d->tx.chunk_size = s->chunk;
		d->tx.zstd_level = s->zstd_level;
		d->tx.fd = -1;
		d->mode = MODE_IDLE;
		if (dev_precopy(s, d)) {
			ret = set_state(d, VMIG_STATE_PRE_COPY, &fd);
			if (!ret && fd < 0)
				ret = -EBADF;
			if (ret) {
				fail(s, ret, i, -1, "device %s: to PRE_COPY: %s",
				     d->name, strerror(-ret));
				return ret;
			}
			d->data_fd = fd;
			d->tx.fd = fd;
			d->mode = MODE_PRECOPY;
		} else {
			ret = send_init_done(s, d, 0);
			if (ret)
				return ret;
			d->init_sent = true;
		}
	}
	ret = start_chans(s, sender);
	if (ret)
		return ret;
	for (i = 0; i < s->ndev; i++) {
		ret = -pthread_create(&s->devs[i].reader, NULL, reader,
				      &s->devs[i]);
		if (ret) {
			fail(s, ret, -1, -1, "cannot start threads");
			return ret;
		}
		s->devs[i].reader_started = true;
	}
	if (s->ram) {
		ret = ram_sess_src_start(s->ram, s->ram_fds, s->ram_nchan,
					 s->ndev, dev_stop_copy_size, s,
					 notify_wake, s);
		if (ret) {
			fail(s, ret, -1, -1, "guest RAM: %s", strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* A session runs once, connected, in its role; buf: a message buffer. */
static int session_begin(struct vmig_session *s, enum vmig_role role,
			 uint8_t **buf)
{
	if (!s || s->role != role)
		return -EINVAL;
	if (!s->connected || s->ran)
		return s->ran ? -EALREADY : -ENOTCONN;
	s->ran = true;
	*buf = malloc(MSG_MAX_LEN);
	if (!*buf)
		return -ENOMEM;
	s->t_start = ram_now_ns();
	return 0;
}

/*
 * A run's phases are over with ret (or a failure another thread recorded):
 * on failure, record it, stop the threads, tell the peer and undo (the
 * source's rollback or the destination's reset).  Returns the error, or 0.
 */
static int session_end(struct vmig_session *s, int ret, uint8_t *buf,
		       void (*undo)(struct vmig_session *s))
{
	s->t_end = ram_now_ns();
	free(buf);
	if (!ret && failed(s))
		ret = s->error.err;
	if (!ret)
		return 0;
	if (!failed(s))
		fail(s, ret, -1, -1, "%s", strerror(-ret));
	join_threads(s);
	send_error(s);
	undo(s);
	return s->error.err;
}

VMIG_EXPORT int vmig_session_run_source(struct vmig_session *s)
{
	uint8_t *buf;
	unsigned int i;
	int ret;

	ret = session_begin(s, VMIG_ROLE_SOURCE, &buf);
	if (ret)
		return ret;

	ret = source_start(s);
	if (!ret)
		ret = source_precopy(s, buf);
	if (!ret)
		ret = source_drain(s, buf);
	if (!ret)
		ret = source_switchover(s);
	if (!ret)
		ret = source_finish(s, buf);
	ret = session_end(s, ret, buf, source_rollback);
	if (ret)
		return ret;
	/* LOADED may come in the same wake-up as the last reader's end. */
	vmig_txq_close(s->txq);
	join_threads(s);
	/* Migrated: the source's devices stay stopped. */
	for (i = 0; i < s->ndev; i++) {
		set_state(&s->devs[i], VMIG_STATE_STOP, NULL);
		close_data_fd(&s->devs[i]);
	}
	vmig_info("migration source: done, downtime %.3f ms",
		  (s->t_end - s->t_stop) / 1e6);
	return 0;
}

/* ---------------------------------------------------------- destination */

static void rx_notify(void *opaque)
{
	wake(opaque);
}

/*
 * Receive a payload of len bytes into buf, RX_PIECE bytes at a time, each
 * piece added to the CRC right after it arrived (still in the cache).
 */
static int recv_crc(struct vmig_uio *io, int fd, uint8_t *buf, size_t len,
		    uint32_t *crc)
{
	size_t done = 0, want;
	ssize_t r;

	while (done < len) {
		want = len - done < RX_PIECE ? len - done : RX_PIECE;
		r = vmig_uio_recv(io, fd, buf + done, want);
		if (r != (ssize_t)want)
			return r < 0 ? r : -ECONNRESET;
		*crc = vmig_crc32c(*crc, buf + done, want);
		done += want;
	}
	return 0;
}

static int recv_payload(struct chan *c, struct vmig_uio *io,
			const uint8_t *hdr, const struct vmig_pkt_hdr *h,
			void *dst, void **scratch, void **dctx)
{
	struct vmig_session *s = c->s;
	bool zstd = h->flags & VMIG_PKT_F_ZSTD;
	uint32_t crc = vmig_pkt_hdr_crc(hdr);
	void *in = dst;
	size_t n;
	int ret;

	if (zstd || !dst) {
		if (!*scratch)
			*scratch = malloc(s->chunk);
		if (!*scratch)
			return -ENOMEM;
		in = *scratch;
	}
	ret = recv_crc(io, c->fd, in, h->len, &crc);
	if (ret)
		return ret;
	if (crc != h->crc)
		return -EBADMSG;
	if (!zstd || !dst)
		return 0;
	if (!*dctx)
		*dctx = ZSTD_createDCtx();
	if (!*dctx)
		return -ENOMEM;
	n = ZSTD_decompressDCtx(*dctx, dst, h->raw_len, in, h->len);
	if (ZSTD_isError(n) || n != h->raw_len)
		return -EILSEQ;
	return 0;
}

static void *receiver(void *arg)
{
	struct chan *c = arg;
	struct vmig_session *s = c->s;
	uint8_t hdr[VMIG_PKT_HDR_LEN];
	void *scratch = NULL, *dctx = NULL;
	struct vmig_pkt_hdr h;
	struct vmig_rxbuf *b;
	struct vmig_uio io;
	const char *why;
	ssize_t n;
	int ret;

	vmig_name_thread("recv", c->index);
	ret = vmig_uio_init(&io);
	if (ret) {
		fail(s, ret, -1, c->index, "data channel %u: io_uring: %s",
		     c->index, strerror(-ret));
		return NULL;
	}
	for (;;) {
		n = vmig_uio_recv(&io, c->fd, hdr, sizeof(hdr));
		if (!n) {
			pthread_mutex_lock(&s->lock);
			s->chans_ended++;
			pthread_mutex_unlock(&s->lock);
			wake(s);
			break;
		}
		if (n < 0) {
			fail(s, n, -1, c->index, "data channel %u: receiving: %s",
			     c->index, strerror(-n));
			break;
		}
		ret = vmig_pkt_decode(hdr, s->chunk, &h, &why);
		if (ret) {
			fail(s, ret, -1, c->index, "data channel %u: %s",
			     c->index, why);
			break;
		}
		b = NULL;
		ret = vmig_rx_reserve(s->rx, &h, true, &b);
		if (ret < 0)
			break;		/* the reassembly failed: it says why */
		ret = recv_payload(c, &io, hdr, &h, ret ? NULL : vmig_rxbuf_data(b),
				   &scratch, &dctx);
		if (ret) {
			const char *dn = h.dev_id < s->ndev ?
					 s->devs[h.dev_id].name : "?";

			fail(s, ret, h.dev_id < s->ndev ? (int)h.dev_id : -1,
			     c->index,
			     "data channel %u: device %s packet %llu: %s",
			     c->index, dn, (unsigned long long)h.seq,
			     ret == -EBADMSG ? "CRC mismatch" :
			     ret == -EILSEQ ? "bad compressed payload" :
			     strerror(-ret));
			break;
		}
		__atomic_fetch_add(&c->wire_bytes, sizeof(hdr) + h.len,
				   __ATOMIC_RELAXED);
		__atomic_fetch_add(&c->packets, 1, __ATOMIC_RELAXED);
		if (b)
			vmig_rx_commit(s->rx, b);
	}
	free(scratch);
	ZSTD_freeDCtx(dctx);
	vmig_uio_exit(&io);
	return NULL;
}

static int dest_start(struct vmig_session *s)
{
	const char **names;
	unsigned int i;
	int *fds, ret;

	fds = calloc(s->ndev, sizeof(*fds));
	names = calloc(s->ndev, sizeof(*names));
	if (!fds || !names) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < s->ndev; i++) {
		struct sdev *d = &s->devs[i];

		ret = set_state(d, VMIG_STATE_RESUMING, &d->data_fd);
		if (!ret && d->data_fd < 0)
			ret = -EBADF;
		if (ret) {
			fail(s, ret, i, -1, "device %s: to RESUMING: %s",
			     d->name, strerror(-ret));
			goto out;
		}
		fds[i] = d->data_fd;
		names[i] = d->name;
	}
	ret = vmig_rx_create(s->ndev, fds, names, s->cfg.mem_limit, s->chunk,
			     rx_notify, s, &s->rx);
	if (!ret)
		ret = vmig_rx_start(s->rx);
	if (ret) {
		fail(s, ret, -1, -1, "reassembly: %s", strerror(-ret));
		goto out;
	}
	ret = start_chans(s, receiver);
	if (ret)
		goto out;
	if (s->ram) {
		ret = ram_sess_dst_start(s->ram, s->ram_fds, s->ram_nchan,
					 notify_wake, s);
		if (ret)
			fail(s, ret, -1, -1, "guest RAM: %s", strerror(-ret));
	}
out:
	free(fds);
	free(names);
	return ret;
}

static int dest_load(struct vmig_session *s)
{
	unsigned int i;
	int ret;

	for (i = 0; i < s->ndev; i++) {
		struct sdev *d = &s->devs[i];

		ret = set_state(d, VMIG_STATE_STOP, NULL);
		close_data_fd(d);
		if (ret) {
			fail(s, ret, i, -1, "device %s: loading its state (RESUMING -> STOP): %s",
			     d->name, strerror(-ret));
			return ret;
		}
	}
	return send_msg(s, MSG_LOADED, NULL, 0);
}

/* Is there a message on the main channel, or is it closed? */
static bool main_pending(struct vmig_session *s)
{
	struct pollfd pfd = { .fd = s->main_fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

/* After SWITCHOVER_ACK: tell the source what its devices have written. */
static int send_progress(struct vmig_session *s, uint64_t *reported)
{
	struct vmig_rx_stats rs;
	uint8_t m[8];
	int ret;

	vmig_rx_get_stats(s->rx, &rs);
	if (rs.bytes == *reported)
		return 0;
	*reported = rs.bytes;
	put64(m, rs.bytes);
	ret = send_msg(s, MSG_PROGRESS, m, sizeof(m));
	if (ret)
		fail(s, ret, -1, 0, "main channel: %s", strerror(-ret));
	return ret;
}

static int dest_loop(struct vmig_session *s, uint8_t *buf)
{
	bool ack_sent = false, input_done = false;
	uint64_t reported = 0;
	char msg[256];
	uint32_t type, len;
	int ret, st, dev, ram;

	for (;;) {
		if (failed(s))
			return s->error.err;
		st = vmig_rx_status(s->rx, &dev, msg, sizeof(msg));
		if (st < 0) {
			fail(s, st, dev, -1, "%s", msg);
			return st;
		}
		ram = s->ram ? ram_sess_status(s->ram) : 1;
		if (ram < 0) {
			fail(s, ram, -1, -1, "guest RAM: %s", strerror(-ram));
			return ram;
		}
		if (st == 1 && ram == 1)
			break;
		if (!ack_sent && vmig_rx_initial_loaded(s->rx)) {
			ack_sent = true;
			ret = send_msg(s, MSG_SWITCHOVER_ACK, NULL, 0);
			if (ret) {
				fail(s, ret, -1, 0, "main channel: %s",
				     strerror(-ret));
				return ret;
			}
			vmig_info("migration destination: initial data loaded");
		}
		if (ack_sent) {
			ret = send_progress(s, &reported);
			if (ret)
				return ret;
		}
		pthread_mutex_lock(&s->lock);
		st = !input_done && s->chans_ended == s->nchan;
		pthread_mutex_unlock(&s->lock);
		if (st && main_pending(s)) {
			st = 0;		/* the peer may say why first */
		} else if (st) {
			input_done = true;
			/* Fails, and wakes us, if a device misses data. */
			vmig_rx_input_done(s->rx);
			continue;
		}
		ret = control_wait(s, ack_sent ? PROGRESS_MS : -1, &type, buf,
				   &len);
		if (ret < 0)
			return ret;
		if (ret == 0)
			continue;
		if (type != MSG_INIT_DONE || len < 16 ||
		    vmig_rx_set_initial(s->rx, get32(buf), get64(buf + 8))) {
			unexpected(s, type);
			return -EPROTO;
		}
	}
	vmig_rx_stop(s->rx);
	return dest_load(s);
}

static void dest_reset(struct vmig_session *s)
{
	unsigned int i;
	int ret;

	for (i = 0; i < s->ndev; i++) {
		struct sdev *d = &s->devs[i];

		close_data_fd(d);
		if (!d->moved)
			continue;
		ret = d->ops->reset ? d->ops->reset(d->opaque) :
				      set_state(d, VMIG_STATE_RUNNING, NULL);
		if (ret < 0)
			vmig_err("device %s: reset failed: %s", d->name,
				 strerror(-ret));
	}
}

VMIG_EXPORT int vmig_session_run_destination(struct vmig_session *s)
{
	uint8_t *buf;
	int ret;

	ret = session_begin(s, VMIG_ROLE_DESTINATION, &buf);
	if (ret)
		return ret;
	ret = dest_start(s);
	if (!ret)
		ret = dest_loop(s, buf);
	ret = session_end(s, ret, buf, dest_reset);
	if (ret)
		return ret;
	/* Every device is complete: the receivers need not wait for EOF. */
	stop_io(s);
	join_threads(s);
	s->loaded = true;
	vmig_info("migration destination: loaded");
	return 0;
}

VMIG_EXPORT int vmig_session_resume(struct vmig_session *s)
{
	unsigned int i;
	int ret;

	if (!s || s->role != VMIG_ROLE_DESTINATION)
		return -EINVAL;
	if (!s->loaded)
		return -ENOTCONN;
	for (i = 0; i < s->ndev; i++) {
		ret = set_state(&s->devs[i], VMIG_STATE_RUNNING, NULL);
		if (ret) {
			vmig_err("device %s: to RUNNING: %s", s->devs[i].name,
				 strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- misc */

VMIG_EXPORT void vmig_session_abort(struct vmig_session *s)
{
	if (s)
		fail(s, -ECANCELED, -1, -1, "aborted by the caller");
}

VMIG_EXPORT void vmig_session_get_stats(struct vmig_session *s,
					struct vmig_session_stats *st)
{
	struct vmig_rx_stats rs;
	unsigned int i;

	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	st->channels = s->nchan;
	st->refused = s->refused;
	for (i = 0; i < s->nchan; i++) {
		st->wire_bytes += __atomic_load_n(&s->chans[i].wire_bytes,
						  __ATOMIC_RELAXED);
		st->packets += __atomic_load_n(&s->chans[i].packets,
					       __ATOMIC_RELAXED);
	}
	for (i = 0; i < s->ndev; i++) {
		st->precopy_bytes += s->devs[i].precopy_bytes;
		st->device_bytes += s->devs[i].precopy_bytes +
				    __atomic_load_n(&s->devs[i].stopcopy_bytes,
						    __ATOMIC_RELAXED);
	}
	if (s->t_start)
		st->total_ns = (s->t_end ? s->t_end : ram_now_ns()) - s->t_start;
	if (s->t_stop)
		st->downtime_ns = (s->t_end ? s->t_end : ram_now_ns()) - s->t_stop;
	st->switchover_queued = s->switchover_queued;
	pthread_mutex_unlock(&s->lock);

	st->mem_limit = s->cfg.mem_limit;
	if (s->txq) {
		st->peak_mem = vmig_txq_peak(s->txq);
	} else if (s->rx) {
		vmig_rx_get_stats(s->rx, &rs);
		st->device_bytes = rs.bytes;
		st->duplicates = rs.duplicates;
		st->mem_limit = rs.mem_limit;
		st->peak_mem = rs.peak_bytes;
	}
}

VMIG_EXPORT int vmig_session_get_device_stats(struct vmig_session *s,
					      unsigned int dev,
					      struct vmig_session_dev_stats *st)
{
	struct sdev *d;

	if (!s || !st || dev >= s->ndev)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	d = &s->devs[dev];
	if (s->role == VMIG_ROLE_DESTINATION) {
		if (s->rx)
			vmig_rx_get_dev_stats(s->rx, dev, &st->device_bytes);
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	st->precopy_bytes = d->precopy_bytes;
	st->stopcopy_bytes = __atomic_load_n(&d->stopcopy_bytes,
					     __ATOMIC_RELAXED);
	st->device_bytes = st->precopy_bytes + st->stopcopy_bytes;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

VMIG_EXPORT int vmig_session_get_error(struct vmig_session *s,
				       struct vmig_session_error *e)
{
	if (!s || !e)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	*e = s->error;
	pthread_mutex_unlock(&s->lock);
	return e->err;
}

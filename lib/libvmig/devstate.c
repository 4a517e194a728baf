// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Device state between the data fds and the channels.
 *
 * Source: each device's reader turns what its data fd gives into packets
 * in buffers of a bounded queue (vmig_txq); the channels' senders take
 * packets from it in FIFO order, so a free channel always takes the oldest
 * packet.  When the queue's memory is used up, readers wait.
 *
 * Destination: the channels' receivers admit packets into the per-device
 * reassembly (vmig_rx); one writer thread per device writes its packets to
 * its data fd strictly by seq.  Memory is counted in chunk-sized buffers
 * and never exceeds mem_limit.  A packet that arrives ahead of a missing
 * one may only take a buffer while more than RX_RESERVE buffers stay free;
 * the reserve is for in-order packets.  That is enough for progress: the
 * senders take packets in FIFO order, so the oldest packet not yet admitted
 * is at the head of its channel and is the next one its device needs
 * (everything queued before it, including its device's earlier packets, was
 * admitted), and the buffers of in-order packets are freed by the writers
 * whatever the network does.  A receiver that cannot take a buffer stops
 * reading its socket, and TCP's flow control holds the sender back.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "transport.h"

#define RX_RESERVE	1
/*
 * Source: bytes read from a data fd at a time, each CRC'd right after its
 * read (while in the L2 cache).
 */
#define TX_PIECE	(256U << 10)

/* -------------------------------------------------------- source queue */

struct vmig_txq {
	pthread_mutex_t lock;
	pthread_cond_t can_get;
	pthread_cond_t can_pop;
	size_t buf_size;
	unsigned int nbufs, inuse, peak;
	struct vmig_txbuf *free;
	struct vmig_txbuf *head, *tail;
	bool closed, aborted;
};

int vmig_txq_create(size_t mem_limit, uint32_t chunk_size,
		    struct vmig_txq **out)
{
	size_t per = VMIG_PKT_HDR_LEN + (size_t)chunk_size;
	struct vmig_txq *q;

	if (!chunk_size || chunk_size > VMIG_PKT_MAX_PAYLOAD ||
	    mem_limit / per < 2)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->can_get, NULL);
	pthread_cond_init(&q->can_pop, NULL);
	q->buf_size = sizeof(struct vmig_txbuf) + per;
	q->nbufs = mem_limit / per;
	*out = q;
	return 0;
}

static void free_txbufs(struct vmig_txbuf *b)
{
	struct vmig_txbuf *next;

	for (; b; b = next) {
		next = b->next;
		free(b);
	}
}

void vmig_txq_destroy(struct vmig_txq *q)
{
	if (!q)
		return;
	free_txbufs(q->free);
	free_txbufs(q->head);
	pthread_cond_destroy(&q->can_get);
	pthread_cond_destroy(&q->can_pop);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int vmig_txq_get(struct vmig_txq *q, struct vmig_txbuf **out)
{
	struct vmig_txbuf *b;

	pthread_mutex_lock(&q->lock);
	while (!q->aborted && q->inuse == q->nbufs)
		pthread_cond_wait(&q->can_get, &q->lock);
	if (q->aborted) {
		pthread_mutex_unlock(&q->lock);
		return -ECANCELED;
	}
	q->inuse++;
	if (q->inuse > q->peak)
		q->peak = q->inuse;
	b = q->free;
	if (b)
		q->free = b->next;
	pthread_mutex_unlock(&q->lock);

	if (!b) {
		b = malloc(q->buf_size);
		if (!b) {
			pthread_mutex_lock(&q->lock);
			q->inuse--;
			pthread_cond_signal(&q->can_get);
			pthread_mutex_unlock(&q->lock);
			return -ENOMEM;
		}
	}
	b->next = NULL;
	b->len = 0;
	b->npages = 0;
	*out = b;
	return 0;
}

/*
 * Signals go out after the unlock here and below: a thread woken while the
 * lock is held would preempt the waker only to block on the lock, and be
 * woken a second time by the unlock.
 */
void vmig_txq_put(struct vmig_txq *q, struct vmig_txbuf *b)
{
	pthread_mutex_lock(&q->lock);
	b->next = q->free;
	q->free = b;
	q->inuse--;
	pthread_mutex_unlock(&q->lock);
	pthread_cond_signal(&q->can_get);
}

void vmig_txq_push(struct vmig_txq *q, struct vmig_txbuf *b)
{
	pthread_mutex_lock(&q->lock);
	b->next = NULL;
	if (q->tail)
		q->tail->next = b;
	else
		q->head = b;
	q->tail = b;
	pthread_mutex_unlock(&q->lock);
	pthread_cond_signal(&q->can_pop);
}

struct vmig_txbuf *vmig_txq_pop(struct vmig_txq *q)
{
	struct vmig_txbuf *b = NULL;

	pthread_mutex_lock(&q->lock);
	while (!q->aborted && !q->head && !q->closed)
		pthread_cond_wait(&q->can_pop, &q->lock);
	if (!q->aborted && q->head) {
		b = q->head;
		q->head = b->next;
		if (!q->head)
			q->tail = NULL;
		b->next = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	return b;
}

void vmig_txq_close(struct vmig_txq *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->can_pop);
	pthread_mutex_unlock(&q->lock);
}

void vmig_txq_abort(struct vmig_txq *q)
{
	pthread_mutex_lock(&q->lock);
	q->aborted = true;
	pthread_cond_broadcast(&q->can_pop);
	pthread_cond_broadcast(&q->can_get);
	pthread_mutex_unlock(&q->lock);
}

size_t vmig_txq_peak(struct vmig_txq *q)
{
	size_t peak;

	pthread_mutex_lock(&q->lock);
	peak = (size_t)q->peak * (q->buf_size - sizeof(struct vmig_txbuf));
	pthread_mutex_unlock(&q->lock);
	return peak;
}

/* ------------------------------------------------------ source devices */

/*
 * Fill buf with up to len bytes from fd; sets *drained when fd ran dry.
 * Each read is at most TX_PIECE bytes, and its bytes are added to *crc
 * right after it, while they are still in the cache: the payload is not
 * read again until it is sent.
 */
static ssize_t read_chunk(int fd, uint8_t *buf, size_t len, bool *drained,
			  uint32_t *crc)
{
	size_t done = 0;
	ssize_t n;

	*drained = false;
	while (done < len) {
		n = read(fd, buf + done, len - done < TX_PIECE ?
			 len - done : TX_PIECE);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOMSG || errno == EAGAIN) {
				*drained = true;
				break;
			}
			return -errno;
		}
		if (!n) {
			*drained = true;
			break;
		}
		*crc = vmig_crc32c(*crc, buf + done, n);
		done += n;
	}
	return done;
}

/*
 * payload[raw] holds what was read: compress it into zbuf and, if that is
 * smaller, copy the frame back over it (*crc then covers the frame).
 * Otherwise the payload goes as it is, with the CRC of the read.
 */
static int tx_compress(struct vmig_tx_dev *d, uint8_t *payload, size_t raw,
		       size_t *len, uint32_t *crc)
{
	size_t n;

	n = ZSTD_compressCCtx(d->zctx, d->zbuf, d->chunk_size, payload, raw,
			      d->zstd_level);
	if (ZSTD_isError(n) || n >= raw) {
		*len = raw;
		return 0;
	}
	memcpy(payload, d->zbuf, n);
	*crc = vmig_crc32c(0, payload, n);
	*len = n;
	return VMIG_PKT_F_ZSTD;
}

ssize_t vmig_tx_read(struct vmig_tx_dev *d, struct vmig_txq *q)
{
	struct vmig_pkt_hdr h = { .dev_id = d->dev_id };
	struct vmig_txbuf *b;
	uint32_t crc = 0;
	uint8_t *payload;
	size_t len;
	ssize_t n;
	int ret;

	if (d->zstd_level && !d->zctx) {
		d->zctx = ZSTD_createCCtx();
		d->zbuf = malloc(d->chunk_size);
		if (!d->zctx || !d->zbuf)
			return -ENOMEM;
	}
	ret = vmig_txq_get(q, &b);
	if (ret)
		return ret;
	payload = b->data + VMIG_PKT_HDR_LEN;
	n = read_chunk(d->fd, payload, d->chunk_size, &d->drained, &crc);
	if (n <= 0) {
		vmig_txq_put(q, b);
		return n;
	}
	len = n;
	if (d->zstd_level)
		h.flags |= tx_compress(d, payload, n, &len, &crc);
	h.seq = d->seq++;
	h.len = len;
	h.raw_len = n;
	vmig_pkt_seal_crc(&h, crc, b->data);
	b->len = VMIG_PKT_HDR_LEN + len;
	d->raw_bytes += n;
	d->wire_bytes += b->len;
	vmig_txq_push(q, b);
	return n;
}

int vmig_tx_end(struct vmig_tx_dev *d, struct vmig_txq *q)
{
	struct vmig_pkt_hdr h = {
		.dev_id = d->dev_id,
		.flags = VMIG_PKT_F_END,
	};
	struct vmig_txbuf *b;
	int ret;

	ret = vmig_txq_get(q, &b);
	if (ret)
		return ret;
	h.seq = d->seq++;
	vmig_pkt_seal(&h, NULL, b->data);
	b->len = VMIG_PKT_HDR_LEN;
	d->wire_bytes += b->len;
	vmig_txq_push(q, b);
	return 0;
}

void vmig_tx_dev_release(struct vmig_tx_dev *d)
{
	ZSTD_freeCCtx(d->zctx);
	free(d->zbuf);
	d->zctx = NULL;
	d->zbuf = NULL;
}

/* ------------------------------------------------ destination reassembly */

struct rx_dev;

struct vmig_rxbuf {
	struct vmig_rxbuf *next;	/* in its device's pending list */
	struct rx_dev *dev;
	uint64_t seq;
	uint32_t len;
	uint32_t flags;
	bool ready;
	uint8_t data[];
};

struct rx_dev {
	struct vmig_rx *rx;
	unsigned int idx;
	const char *name;
	int fd;
	uint64_t next_write;		/* next seq to write */
	uint64_t contig;		/* lowest seq not admitted yet */
	bool have_end;
	uint64_t end_seq;
	bool done;
	bool initial_set, initial_loaded;
	uint64_t initial;
	uint64_t bytes;			/* written to fd */
	struct vmig_rxbuf *pending;	/* admitted, not written; by seq */
	pthread_cond_t cond;
	pthread_t thread;
	bool started;
};

struct vmig_rx {
	pthread_mutex_t lock;
	pthread_cond_t space;
	unsigned int space_waiters;	/* receivers waiting on space */
	unsigned int ndev, ndone;
	struct rx_dev *devs;
	uint32_t chunk;
	unsigned int nbufs, inuse, peak;
	struct vmig_rxbuf *free;
	int err, err_dev;
	char msg[256];
	void (*notify)(void *opaque);
	void *opaque;
	uint64_t packets, bytes, duplicates;
};

static void rx_notify(struct vmig_rx *rx)
{
	if (rx->notify)
		rx->notify(rx->opaque);
}

/* Record the first error and wake everyone; called with the lock held. */
static void rx_vfail_locked(struct vmig_rx *rx, int err, int dev,
			    const char *fmt, va_list ap)
{
	unsigned int i;

	if (rx->err)
		return;
	rx->err = err;
	rx->err_dev = dev;
	vsnprintf(rx->msg, sizeof(rx->msg), fmt, ap);
	pthread_cond_broadcast(&rx->space);
	for (i = 0; i < rx->ndev; i++)
		pthread_cond_broadcast(&rx->devs[i].cond);
}

static void rx_fail_locked(struct vmig_rx *rx, int err, int dev,
			   const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void rx_fail_locked(struct vmig_rx *rx, int err, int dev,
			   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rx_vfail_locked(rx, err, dev, fmt, ap);
	va_end(ap);
}

void vmig_rx_fail(struct vmig_rx *rx, int err, int dev, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&rx->lock);
	va_start(ap, fmt);
	rx_vfail_locked(rx, err, dev, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&rx->lock);
	rx_notify(rx);
}

int vmig_rx_create(unsigned int ndev, const int *fds, const char *const *names,
		   size_t mem_limit, uint32_t chunk_size,
		   void (*notify)(void *opaque), void *opaque,
		   struct vmig_rx **out)
{
	struct vmig_rx *rx;
	unsigned int i;

	if (!ndev || !chunk_size || chunk_size > VMIG_PKT_MAX_PAYLOAD ||
	    mem_limit / chunk_size < RX_RESERVE + 1)
		return -EINVAL;
	rx = calloc(1, sizeof(*rx));
	if (!rx)
		return -ENOMEM;
	rx->devs = calloc(ndev, sizeof(*rx->devs));
	if (!rx->devs) {
		free(rx);
		return -ENOMEM;
	}
	pthread_mutex_init(&rx->lock, NULL);
	pthread_cond_init(&rx->space, NULL);
	rx->ndev = ndev;
	rx->chunk = chunk_size;
	rx->nbufs = mem_limit / chunk_size;
	rx->err_dev = -1;
	rx->notify = notify;
	rx->opaque = opaque;
	for (i = 0; i < ndev; i++) {
		rx->devs[i].rx = rx;
		rx->devs[i].idx = i;
		rx->devs[i].fd = fds[i];
		rx->devs[i].name = names ? names[i] : "?";
		pthread_cond_init(&rx->devs[i].cond, NULL);
	}
	*out = rx;
	return 0;
}

static void free_rxbufs(struct vmig_rxbuf *b)
{
	struct vmig_rxbuf *next;

	for (; b; b = next) {
		next = b->next;
		free(b);
	}
}

void vmig_rx_stop(struct vmig_rx *rx)
{
	unsigned int i;

	pthread_mutex_lock(&rx->lock);
	if (!rx->err && rx->ndone < rx->ndev)
		rx_fail_locked(rx, -ECANCELED, -1, "reassembly stopped");
	pthread_mutex_unlock(&rx->lock);
	for (i = 0; i < rx->ndev; i++) {
		if (rx->devs[i].started)
			pthread_join(rx->devs[i].thread, NULL);
		rx->devs[i].started = false;
	}
}

void vmig_rx_destroy(struct vmig_rx *rx)
{
	unsigned int i;

	if (!rx)
		return;
	vmig_rx_stop(rx);
	for (i = 0; i < rx->ndev; i++) {
		free_rxbufs(rx->devs[i].pending);
		pthread_cond_destroy(&rx->devs[i].cond);
	}
	free_rxbufs(rx->free);
	pthread_cond_destroy(&rx->space);
	pthread_mutex_destroy(&rx->lock);
	free(rx->devs);
	free(rx);
}

void *vmig_rxbuf_data(struct vmig_rxbuf *buf)
{
	return buf->data;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				poll(&pfd, 1, -1);
				continue;
			}
			return -errno;
		}
		if (!n)
			return -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

/* Returns whether receivers wait for the buffer (to wake, unlocked). */
static bool release_locked(struct vmig_rx *rx, struct vmig_rxbuf *b)
{
	b->next = rx->free;
	rx->free = b;
	rx->inuse--;
	return rx->space_waiters;
}

static void *rx_writer(void *arg)
{
	struct rx_dev *d = arg;
	struct vmig_rx *rx = d->rx;
	struct vmig_rxbuf *b;
	bool notify, space;
	int ret;

	vmig_name_thread("write", d->idx);
	pthread_mutex_lock(&rx->lock);
	while (!rx->err && !d->done) {
		b = d->pending;
		if (!b || b->seq != d->next_write || !b->ready) {
			pthread_cond_wait(&d->cond, &rx->lock);
			continue;
		}
		d->pending = b->next;
		pthread_mutex_unlock(&rx->lock);

		ret = write_all(d->fd, b->data, b->len);

		pthread_mutex_lock(&rx->lock);
		notify = false;
		if (ret) {
			space = release_locked(rx, b);
			rx_fail_locked(rx, ret, d->idx,
				       "device %s: writing its data fd: %s",
				       d->name, strerror(-ret));
			notify = true;
		} else {
			d->next_write++;
			d->bytes += b->len;
			rx->bytes += b->len;
			if (d->initial_set && !d->initial_loaded &&
			    d->next_write >= d->initial) {
				d->initial_loaded = true;
				notify = true;
			}
			if (b->flags & VMIG_PKT_F_END) {
				d->done = true;
				if (++rx->ndone == rx->ndev)
					notify = true;
			}
			space = release_locked(rx, b);
		}
		if (notify || space) {
			pthread_mutex_unlock(&rx->lock);
			if (space)
				pthread_cond_broadcast(&rx->space);
			if (notify)
				rx_notify(rx);
			pthread_mutex_lock(&rx->lock);
		}
	}
	pthread_mutex_unlock(&rx->lock);
	return NULL;
}

int vmig_rx_start(struct vmig_rx *rx)
{
	unsigned int i;
	int ret;

	for (i = 0; i < rx->ndev; i++) {
		ret = -pthread_create(&rx->devs[i].thread, NULL, rx_writer,
				      &rx->devs[i]);
		if (ret) {
			vmig_rx_fail(rx, ret, -1, "cannot start writer threads");
			return ret;
		}
		rx->devs[i].started = true;
	}
	return 0;
}

static bool is_pending(const struct rx_dev *d, uint64_t seq)
{
	const struct vmig_rxbuf *b;

	for (b = d->pending; b && b->seq <= seq; b = b->next)
		if (b->seq == seq)
			return true;
	return false;
}

/* Insert b by seq and advance contig over what is now admitted. */
static void insert_pending(struct rx_dev *d, struct vmig_rxbuf *b)
{
	struct vmig_rxbuf **pp = &d->pending, *p;

	while (*pp && (*pp)->seq < b->seq)
		pp = &(*pp)->next;
	b->next = *pp;
	*pp = b;
	for (p = b; p && p->seq == d->contig; p = p->next)
		d->contig++;
}

int vmig_rx_reserve(struct vmig_rx *rx, const struct vmig_pkt_hdr *h,
		    bool wait, struct vmig_rxbuf **out)
{
	struct vmig_rxbuf *b, *last;
	struct rx_dev *d;
	bool in_order;
	int ret;

	pthread_mutex_lock(&rx->lock);
	if (h->dev_id >= rx->ndev) {
		rx_fail_locked(rx, -EPROTO, -1,
			       "packet for unknown device %u", h->dev_id);
		goto fail;
	}
	d = &rx->devs[h->dev_id];
	if (h->raw_len > rx->chunk) {
		rx_fail_locked(rx, -EMSGSIZE, d->idx,
			       "device %s: packet %llu longer than a chunk",
			       d->name, (unsigned long long)h->seq);
		goto fail;
	}
	for (;;) {
		if (rx->err)
			goto fail;
		if (h->seq < d->contig || is_pending(d, h->seq)) {
			rx->duplicates++;
			pthread_mutex_unlock(&rx->lock);
			return 1;
		}
		if (d->have_end && h->seq > d->end_seq) {
			rx_fail_locked(rx, -EPROTO, d->idx,
				       "device %s: packet %llu after its END packet %llu",
				       d->name, (unsigned long long)h->seq,
				       (unsigned long long)d->end_seq);
			goto fail;
		}
		if (h->flags & VMIG_PKT_F_END) {
			for (last = d->pending; last && last->next;)
				last = last->next;
			if (last && last->seq > h->seq) {
				rx_fail_locked(rx, -EPROTO, d->idx,
					       "device %s: END packet %llu before packet %llu",
					       d->name, (unsigned long long)h->seq,
					       (unsigned long long)last->seq);
				goto fail;
			}
		}
		in_order = h->seq == d->contig;
		if (rx->nbufs - rx->inuse > (in_order ? 0U : RX_RESERVE))
			break;
		if (!wait) {
			pthread_mutex_unlock(&rx->lock);
			return -EAGAIN;
		}
		rx->space_waiters++;
		pthread_cond_wait(&rx->space, &rx->lock);
		rx->space_waiters--;
	}

	b = rx->free;
	if (b) {
		rx->free = b->next;
	} else {
		b = malloc(sizeof(*b) + rx->chunk);
		if (!b) {
			rx_fail_locked(rx, -ENOMEM, d->idx,
				       "device %s: out of memory", d->name);
			goto fail;
		}
	}
	rx->inuse++;
	if (rx->inuse > rx->peak)
		rx->peak = rx->inuse;
	b->dev = d;
	b->seq = h->seq;
	b->len = h->raw_len;
	b->flags = h->flags;
	b->ready = false;
	insert_pending(d, b);
	if (h->flags & VMIG_PKT_F_END) {
		d->have_end = true;
		d->end_seq = h->seq;
	}
	pthread_mutex_unlock(&rx->lock);
	*out = b;
	return 0;

fail:
	ret = rx->err;
	pthread_mutex_unlock(&rx->lock);
	rx_notify(rx);
	return ret;
}

void vmig_rx_commit(struct vmig_rx *rx, struct vmig_rxbuf *b)
{
	struct rx_dev *d = b->dev;
	bool next;

	pthread_mutex_lock(&rx->lock);
	b->ready = true;
	rx->packets++;
	/* Its writer waits for nothing else (errors broadcast). */
	next = b->seq == d->next_write;
	pthread_mutex_unlock(&rx->lock);
	if (next)
		pthread_cond_signal(&d->cond);
}

int vmig_rx_set_initial(struct vmig_rx *rx, uint32_t dev_id, uint64_t count)
{
	bool notify = false;
	struct rx_dev *d;

	pthread_mutex_lock(&rx->lock);
	if (dev_id >= rx->ndev) {
		pthread_mutex_unlock(&rx->lock);
		return -EINVAL;
	}
	d = &rx->devs[dev_id];
	d->initial = count;
	d->initial_set = true;
	if (d->next_write >= count && !d->initial_loaded) {
		d->initial_loaded = true;
		notify = true;
	}
	pthread_mutex_unlock(&rx->lock);
	if (notify)
		rx_notify(rx);
	return 0;
}

bool vmig_rx_initial_loaded(struct vmig_rx *rx)
{
	bool loaded = true;
	unsigned int i;

	pthread_mutex_lock(&rx->lock);
	for (i = 0; i < rx->ndev; i++)
		loaded &= rx->devs[i].initial_loaded;
	pthread_mutex_unlock(&rx->lock);
	return loaded;
}

int vmig_rx_input_done(struct vmig_rx *rx)
{
	unsigned int i;
	int ret;

	pthread_mutex_lock(&rx->lock);
	for (i = 0; i < rx->ndev && !rx->err; i++) {
		struct rx_dev *d = &rx->devs[i];

		if (!d->have_end)
			rx_fail_locked(rx, -ENODATA, i,
				       "device %s: its stream ended without an END packet (%llu packets received)",
				       d->name, (unsigned long long)d->contig);
		else if (d->contig <= d->end_seq)
			rx_fail_locked(rx, -ENODATA, i,
				       "device %s: packet %llu of %llu never arrived",
				       d->name, (unsigned long long)d->contig,
				       (unsigned long long)d->end_seq + 1);
	}
	ret = rx->err;
	pthread_mutex_unlock(&rx->lock);
	if (ret)
		rx_notify(rx);
	return ret;
}

int vmig_rx_status(struct vmig_rx *rx, int *err_dev, char *msg, size_t len)
{
	int ret;

	pthread_mutex_lock(&rx->lock);
	if (rx->err) {
		ret = rx->err;
		if (err_dev)
			*err_dev = rx->err_dev;
		if (msg && len)
			snprintf(msg, len, "%s", rx->msg);
	} else {
		ret = rx->ndone == rx->ndev;
	}
	pthread_mutex_unlock(&rx->lock);
	return ret;
}

void vmig_rx_get_stats(struct vmig_rx *rx, struct vmig_rx_stats *st)
{
	pthread_mutex_lock(&rx->lock);
	st->packets = rx->packets;
	st->bytes = rx->bytes;
	st->duplicates = rx->duplicates;
	st->mem_limit = (size_t)rx->nbufs * rx->chunk;
	st->peak_bytes = (size_t)rx->peak * rx->chunk;
	pthread_mutex_unlock(&rx->lock);
}

void vmig_rx_get_dev_stats(struct vmig_rx *rx, unsigned int dev,
			   uint64_t *bytes)
{
	pthread_mutex_lock(&rx->lock);
	*bytes = rx->devs[dev].bytes;
	pthread_mutex_unlock(&rx->lock);
}

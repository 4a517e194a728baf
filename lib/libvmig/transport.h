/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvmig internals of the migration transport: CRC32C, the device-state
 * packet, channels (header, authentication, io_uring I/O) and the
 * device-state queues (source send queue, destination reassembly).
 * Not installed.  The wire formats are described in Documentation/wire.rst.
 */
#ifndef VMIG_TRANSPORT_H
#define VMIG_TRANSPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <endian.h>
#include <string.h>

#include <liburing.h>

#include "internal.h"

/* ------------------------------------------- little-endian wire fields */

static inline void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* ------------------------------------------------------------- crc32c.c */

/*
 * CRC32C (Castagnoli), chainable: start with crc = 0 and feed the result of
 * one call into the next.  vmig_crc32c() folds long buffers with
 * VPCLMULQDQ (AVX-512) when the CPU has it, and otherwise uses the SSE4.2
 * crc32 instruction (three interleaved streams), or a table.  The others
 * force one implementation, for tests: each falls back to the next simpler
 * one when the CPU lacks what it needs (vmig_crc32c_have_*() tell).
 */
uint32_t vmig_crc32c(uint32_t crc, const void *buf, size_t len);
/* The CRC of A then B, given the CRCs of A and of B, and B's length. */
uint32_t vmig_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);
uint32_t vmig_crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t vmig_crc32c_hw(uint32_t crc, const void *buf, size_t len);
uint32_t vmig_crc32c_clmul(uint32_t crc, const void *buf, size_t len);
bool vmig_crc32c_have_hw(void);
bool vmig_crc32c_have_clmul(void);

/* ------------------------------------------------------------- packet.c */

#define VMIG_PKT_MAGIC		0x50444d56U	/* bytes "VMDP" */
#define VMIG_PKT_HDR_LEN	32
#define VMIG_PKT_F_END		(1U << 0)	/* last packet of the device */
#define VMIG_PKT_F_ZSTD		(1U << 1)	/* payload is one zstd frame */
#define VMIG_PKT_F_ALL		(VMIG_PKT_F_END | VMIG_PKT_F_ZSTD)
/* Largest payload the format allows (a session uses its chunk size). */
#define VMIG_PKT_MAX_PAYLOAD	(64U << 20)

/* A device-state packet header, decoded (host byte order). */
struct vmig_pkt_hdr {
	uint32_t dev_id;
	uint64_t seq;
	uint32_t flags;
	uint32_t len;		/* payload bytes on the wire */
	uint32_t raw_len;	/* payload bytes once decompressed */
	uint32_t crc;		/* CRC32C of header (crc field 0) + payload */
};

/*
 * Encode h into buf[VMIG_PKT_HDR_LEN], computing h->crc over the header and
 * payload[h->len] first.
 */
void vmig_pkt_seal(struct vmig_pkt_hdr *h, const void *payload, void *buf);
/*
 * The same, given the CRC32C of the payload alone (computed piece by piece
 * while the payload was hot in the cache), which is combined with the
 * header's.
 */
void vmig_pkt_seal_crc(struct vmig_pkt_hdr *h, uint32_t payload_crc,
		       void *buf);
/*
 * The CRC32C of an encoded header with its CRC field taken as zero: where
 * the packet's CRC starts, to be chained over the payload as it arrives
 * and compared with the decoded crc.
 */
uint32_t vmig_pkt_hdr_crc(const void *hdr_buf);

/*
 * Decode and validate a header: magic, flags, lengths (len and raw_len at
 * most max_payload, raw_len == len unless ZSTD, data packets not empty).
 * Returns 0, or -EPROTO (malformed) / -EMSGSIZE (too long) with *why set
 * to a static description.
 */
int vmig_pkt_decode(const void *buf, uint32_t max_payload,
		    struct vmig_pkt_hdr *h, const char **why);

/* Check the CRC of a decoded header and its payload: 0 or -EBADMSG. */
int vmig_pkt_check(const void *hdr_buf, const struct vmig_pkt_hdr *h,
		   const void *payload);

/* ------------------------------------------------------------ channel.c */

#define VMIG_CHAN_MAGIC		0x48434d56U	/* bytes "VMCH" */
#define VMIG_CHAN_VERSION	1
#define VMIG_CHAN_HDR_LEN	64
#define VMIG_AUTH_NONCE_LEN	32
#define VMIG_AUTH_MAC_LEN	32
#define VMIG_AUTH_MSG_LEN	48	/* challenge and verdict */

/* Handshake statuses (challenge and verdict). */
enum vmig_chan_status {
	VMIG_CHAN_OK = 0,
	VMIG_CHAN_BAD_HEADER = 1,	/* magic, version, kind, index */
	VMIG_CHAN_WRONG_SESSION = 2,
	VMIG_CHAN_UNWANTED = 3,		/* the session has no use for it */
	VMIG_CHAN_AUTH_FAILED = 4,
};

/* What a channel carries; the destination never guesses it from content. */
enum vmig_chan_kind {
	VMIG_CHAN_MAIN = 1,		/* control messages */
	VMIG_CHAN_DEVSTATE = 2,		/* device-state packets */
	VMIG_CHAN_RAM = 3,		/* guest RAM pages */
	VMIG_CHAN_POSTCOPY = 4,		/* postcopy page requests/answers */
};

struct vmig_chan_id {
	uint8_t session_id[VMIG_SESSION_ID_LEN];
	enum vmig_chan_kind kind;
	uint16_t index;
	uint16_t count;		/* channels of this kind in the session */
};

/*
 * The session's credentials for the handshake.  secret is not copied by
 * the channel functions.
 */
struct vmig_chan_auth {
	uint8_t session_id[VMIG_SESSION_ID_LEN];
	const uint8_t *secret;
	size_t secret_len;
	/*
	 * The whole handshake; 0: none.  Past its handshake a TCP channel
	 * (either side) also fails with -ETIMEDOUT once its peer has
	 * acknowledged nothing for that long, data or keepalive probe: a
	 * partition, a host gone.  A peer whose kernel still answers is not
	 * caught: that is for the protocol's own timeouts.
	 */
	unsigned int timeout_ms;
};

/*
 * Source side: open a stream socket to addr, send the channel header,
 * prove knowledge of the secret and check the destination's proof.
 * Returns the connected socket (owned by the caller) or a negative errno:
 * -EPROTO, -ESTALE (wrong session), -EUSERS (unwanted channel), -EACCES
 * (authentication failed, either way), -ETIMEDOUT, or a socket error.
 */
int vmig_chan_connect(const struct sockaddr *addr, socklen_t addrlen,
		      const struct vmig_chan_auth *auth,
		      const struct vmig_chan_id *id);

/*
 * Destination side: run the handshake on an accepted socket fd.  wanted()
 * decides, after authentication, whether the session takes a channel of
 * that kind and index (0 or a negative errno).  Returns 0 with *id filled
 * in, or a negative errno; *why then says why the peer was refused.  The
 * handshake reads only the header and the proof before its verdict.
 */
int vmig_chan_handshake_accept(int fd, const struct vmig_chan_auth *auth,
			       int (*wanted)(const struct vmig_chan_id *id,
					     void *opaque),
			       void *opaque, struct vmig_chan_id *id,
			       const char **why);

/* SO_RCVTIMEO and SO_SNDTIMEO of fd to ms (0: none); 0 or -errno. */
int vmig_sock_set_timeout(int fd, unsigned int ms);

/* Blocking socket I/O through one io_uring (one per thread). */
struct vmig_uio {
	struct io_uring ring;
	bool ready;
};

int vmig_uio_init(struct vmig_uio *io);
void vmig_uio_exit(struct vmig_uio *io);
/* Send/receive exactly len bytes.  recv returns 0 at a clean EOF before
 * the first byte, -ECONNRESET at an EOF after it, len on success. */
ssize_t vmig_uio_send(struct vmig_uio *io, int fd, const void *buf,
		      size_t len);
ssize_t vmig_uio_recv(struct vmig_uio *io, int fd, void *buf, size_t len);
/*
 * The same over a vector of at most IOV_MAX entries (entries of length 0
 * allowed).  iov is consumed: its entries are advanced past what was sent
 * or received.
 */
ssize_t vmig_uio_sendv(struct vmig_uio *io, int fd, struct iovec *iov,
		       unsigned int cnt);
ssize_t vmig_uio_recvv(struct vmig_uio *io, int fd, struct iovec *iov,
		       unsigned int cnt);

/* Plain blocking helpers (setup, control channel). */
int vmig_send_all(int fd, const void *buf, size_t len);
/* 0 at a clean EOF before any byte, else len or a negative errno. */
ssize_t vmig_recv_all(int fd, void *buf, size_t len);

/*
 * Destination (chan_accept.c): accept channels of one kind on listen_fd
 * until all of them are there: as many as the first one announces (its
 * count, at most max).  fds[index] gets each (fds has max entries).
 * Connections that fail the handshake, or are not of that kind, or
 * repeat an index, are refused and closed.  Returns 0 with *count set,
 * or a negative errno (-ETIMEDOUT after auth->timeout_ms without a
 * connection) with every accepted fd closed.
 */
int vmig_chan_accept_set(int listen_fd, const struct vmig_chan_auth *auth,
			 enum vmig_chan_kind kind, unsigned int max, int *fds,
			 unsigned int *count);

/* ----------------------------------------------------------- devstate.c */

/*
 * Source: a bounded queue of encoded packets.  Readers take a free buffer
 * (blocking while mem_limit is used up: back-pressure), fill and push it;
 * channel senders pop packets in FIFO order, send them and release them.
 */
struct vmig_txbuf {
	struct vmig_txbuf *next;
	size_t len;			/* bytes to send: header + payload */
	/*
	 * RAM packets sent in place (ram_net.c): len bytes of data, then
	 * npages pages whose addresses the user stored in data; 0 from
	 * vmig_txq_get().
	 */
	size_t npages;
	uint8_t data[];			/* header, then payload */
};

struct vmig_txq;

int vmig_txq_create(size_t mem_limit, uint32_t chunk_size,
		    struct vmig_txq **out);
void vmig_txq_destroy(struct vmig_txq *q);
/* 0 with *b, -ECANCELED once the queue is aborted, or -ENOMEM. */
int vmig_txq_get(struct vmig_txq *q, struct vmig_txbuf **b);
void vmig_txq_put(struct vmig_txq *q, struct vmig_txbuf *b);
void vmig_txq_push(struct vmig_txq *q, struct vmig_txbuf *b);
/* NULL when closed and empty, or aborted. */
struct vmig_txbuf *vmig_txq_pop(struct vmig_txq *q);
void vmig_txq_close(struct vmig_txq *q);
void vmig_txq_abort(struct vmig_txq *q);
size_t vmig_txq_peak(struct vmig_txq *q);

/*
 * Source: one device's packetizer.  vmig_tx_read() reads from fd until a
 * chunk is full or read() has nothing more (0, ENOMSG or EAGAIN: then it
 * sets drained), and queues what it read as packet seq (then increments
 * seq).  Returns the bytes queued (0: nothing to read), or a negative
 * errno (-ECANCELED when the queue was aborted).  vmig_tx_end() queues the
 * device's END packet.
 */
struct vmig_tx_dev {
	uint32_t dev_id;
	int fd;
	uint64_t seq;
	uint32_t chunk_size;
	int zstd_level;			/* 0: no compression */
	void *zctx;			/* ZSTD_CCtx, created on first use */
	void *zbuf;
	bool drained;
	uint64_t raw_bytes, wire_bytes;
};

ssize_t vmig_tx_read(struct vmig_tx_dev *d, struct vmig_txq *q);
int vmig_tx_end(struct vmig_tx_dev *d, struct vmig_txq *q);
void vmig_tx_dev_release(struct vmig_tx_dev *d);

/*
 * Destination: per-device reassembly with bounded memory, and one writer
 * thread per device writing its packets to its fd strictly by seq.
 */
struct vmig_rx;
struct vmig_rxbuf;

struct vmig_rx_stats {
	uint64_t packets, bytes, duplicates;
	size_t mem_limit, peak_bytes;
};

/*
 * fds[ndev]: the devices' data fds (not owned).  notify(opaque) is called
 * (without locks held) when a device's initial data is loaded, when all
 * devices are complete and on an error.
 */
int vmig_rx_create(unsigned int ndev, const int *fds, const char *const *names,
		   size_t mem_limit, uint32_t chunk_size,
		   void (*notify)(void *opaque), void *opaque,
		   struct vmig_rx **out);
int vmig_rx_start(struct vmig_rx *rx);
/* Join the writers (stopping them first unless every device is done). */
void vmig_rx_stop(struct vmig_rx *rx);
void vmig_rx_destroy(struct vmig_rx *rx);

/*
 * Admit a packet whose header was decoded: returns 0 with *buf (len
 * raw_len bytes of payload space at vmig_rxbuf_data()), 1 for a duplicate
 * to be read and dropped, -EAGAIN (wait false) when the memory bound does
 * not admit it now, or an error (also recorded: the reassembly stops).
 */
int vmig_rx_reserve(struct vmig_rx *rx, const struct vmig_pkt_hdr *h,
		    bool wait, struct vmig_rxbuf **buf);
void *vmig_rxbuf_data(struct vmig_rxbuf *buf);
/* The payload is in place (decompressed, checked): hand it to the writer. */
void vmig_rx_commit(struct vmig_rx *rx, struct vmig_rxbuf *buf);
/* The device's first count packets are its initial (precopy) data. */
int vmig_rx_set_initial(struct vmig_rx *rx, uint32_t dev_id, uint64_t count);
/* Every channel has ended: any device still missing packets is an error. */
int vmig_rx_input_done(struct vmig_rx *rx);
/* Record an error (first one wins) and stop; wakes every waiter. */
void vmig_rx_fail(struct vmig_rx *rx, int err, int dev, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Non-blocking status: 1 all written, 0 still running, negative error. */
int vmig_rx_status(struct vmig_rx *rx, int *err_dev, char *msg, size_t len);
bool vmig_rx_initial_loaded(struct vmig_rx *rx);
void vmig_rx_get_stats(struct vmig_rx *rx, struct vmig_rx_stats *st);
/* Bytes written to device dev's data fd so far. */
void vmig_rx_get_dev_stats(struct vmig_rx *rx, unsigned int dev,
			   uint64_t *bytes);

#endif /* VMIG_TRANSPORT_H */

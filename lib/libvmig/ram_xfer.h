/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvmig internals of guest RAM transfer: the RAM packet (see
 * Documentation/wire.rst, "RAM packets"), shared by the precopy sender
 * (ram_send.c), the destination (ram_recv.c) and the RAM channels
 * (ram_net.c).  Not installed.
 *
 *	0  magic    "VMRP"
 *	4  nr       page entries
 *	8  seq      packet number in the stream, from 1, in the order the
 *		    source built the packets (over all channels)
 *	16 flags    END: the channel's last packet (no entries)
 *	20 len      payload bytes that follow
 *	24 zero
 *	28 crc      CRC32C of the header with this field 0, then the payload
 *
 * The payload is nr 8-byte entries, (page number << 8) | page flags (bit 0
 * ZERO: the page is all zero and no data follows), then the 4 KiB of every
 * page without ZERO, in entry order.  Page numbers count the pages of the
 * registered regions in registration order.
 */
#ifndef VMIG_RAM_XFER_H
#define VMIG_RAM_XFER_H

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ram_int.h"
#include "transport.h"

#define RAM_PKT_MAGIC		0x50524d56U	/* bytes "VMRP" */
#define RAM_PKT_HDR_LEN		32
#define RAM_PKT_F_END		(1U << 0)
#define RAM_PKT_F_ALL		RAM_PKT_F_END
#define RAM_ENT_ZERO		(1U << 0)
#define RAM_ENT_SHIFT		8
/* Largest batch, and so the largest payload. */
#define RAM_MAX_BATCH		256
#define RAM_MAX_PAYLOAD		(RAM_MAX_BATCH * (8 + RAM_PAGE_SIZE))
#define RAM_MAX_PKT		(RAM_PKT_HDR_LEN + RAM_MAX_PAYLOAD)
/* The destination's acknowledgment on RAM channel 0: magic, status. */
#define RAM_ACK_MAGIC		0x41524d56U	/* bytes "VMRA" */
#define RAM_ACK_LEN		8

struct ram_pkt_hdr {
	uint32_t nr;
	uint64_t seq;
	uint32_t flags;
	uint32_t len;
	uint32_t crc;
};

/* Encode h into buf, computing the CRC over the header and payload. */
void ram_pkt_seal(struct ram_pkt_hdr *h, void *buf);
/* Encode h into buf with the CRC field 0. */
void ram_pkt_put_hdr(const struct ram_pkt_hdr *h, void *buf);
/* Append len bytes at p to iov[*cnt], merged with the last if adjacent. */
void ram_iov_add(struct iovec *iov, unsigned int *cnt, void *p,
		 size_t len);
/* Continue crc over the npages pages at pages[] (adjacent ones at once). */
uint32_t ram_crc_pages(uint32_t crc, const void *const *pages,
		       unsigned int npages);
/* Decode and check the header: 0 or -EPROTO / -EMSGSIZE, *why set. */
int ram_pkt_decode(const void *buf, struct ram_pkt_hdr *h, const char **why);
/*
 * Check a whole packet of len bytes for RAM of total_pages pages: the
 * header, the length, the CRC and every entry.  0 with *h filled in, or
 * -EPROTO / -EMSGSIZE / -EBADMSG with *why set.
 */
int ram_pkt_check(const void *pkt, size_t len, uint64_t total_pages,
		  struct ram_pkt_hdr *h, const char **why);
/* Entry i of a checked packet's payload. */
static inline uint64_t ram_pkt_entry(const void *pkt, unsigned int i)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)pkt + RAM_PKT_HDR_LEN + (size_t)i * 8, 8);
	return le64toh(v);
}

/* Whether a 4 KiB page is all zero. */
bool ram_page_is_zero(const void *page);

/*
 * RAM channels a device-state session opened (ram_net.c; the fds stay the
 * caller's).  Source: a sender over them, its sink vmig_ram_net_sink().
 * Destination: receive until every channel ENDs, acknowledge on fds[0].
 */
int ram_net_from_fds(const int *fds, unsigned int n, uint64_t mem_limit,
		     struct vmig_ram_net **out);
int ram_serve_fds(struct vmig_ram_dest *d, const int *fds, unsigned int n);
/*
 * Whether sink is vmig_ram_net_sink()'s, which can send page data in
 * place: ram_net_submit_pages() queues the packet whose header (h, CRC
 * not computed) and entries the caller built in buf, with the data of the
 * npages pages at pages[].  The sender computes the CRC just before it
 * sends, while it reads the pages anyway.  The pages must not change
 * until the sink's finish() returns.
 */
bool ram_sink_in_place(const struct vmig_ram_sink *sink);
int ram_net_submit_pages(void *opaque, void *buf,
			 const struct ram_pkt_hdr *h,
			 const void *const *pages, unsigned int npages);
/* Make the sender fail: its queue's waiters return at once. */
void ram_net_abort(struct vmig_ram_net *n);

/* Make a running vmig_ram_precopy_run() return -EINTR (any thread). */
void ram_precopy_interrupt(struct vmig_ram_precopy *p);
/*
 * The figures of the last check vmig_ram_precopy_run() made, the one
 * behind the verdict it returned (read in the thread that ran it).
 */
const struct vmig_converge_info *
ram_precopy_last_info(const struct vmig_ram_precopy *p);

/*
 * Guest RAM inside a device-state session (ram_session.c), driven by
 * session.c.  Status: 0 running, 1 done, or a negative errno.  notify() is
 * called (from the RAM thread) whenever the verdict or the status changes.
 */
struct ram_sess;
typedef int (*ram_sess_size_fn)(void *opaque, unsigned int dev,
				uint64_t *bytes);

int ram_sess_new(const struct vmig_session_ram *cfg, bool source,
		 struct ram_sess **out);
void ram_sess_free(struct ram_sess *r);
unsigned int ram_sess_channels(const struct ram_sess *r);
uint64_t ram_sess_pages(const struct ram_sess *r);
/* Source: precopy on the RAM channels, the devices' sizes from size(). */
int ram_sess_src_start(struct ram_sess *r, const int *fds, unsigned int n,
		       unsigned int ndev, ram_sess_size_fn size,
		       void *size_opaque, void (*notify)(void *opaque),
		       void *notify_opaque);
/*
 * 1: the model said "switch over" lately (or, for postcopy, "stuck");
 * 0: not; < 0: RAM failed.
 */
int ram_sess_ready(struct ram_sess *r);
int ram_sess_set_downtime(struct ram_sess *r, uint64_t ns);
/* Postcopy follows the session: the source's choice, told by CONFIG. */
bool ram_sess_postcopy(const struct ram_sess *r);
void ram_sess_set_postcopy(struct ram_sess *r, bool postcopy);
/* The vCPUs are stopped: RAM's last pass, in its thread. */
void ram_sess_switchover(struct ram_sess *r);
/* Destination: apply what the RAM channels carry. */
int ram_sess_dst_start(struct ram_sess *r, const int *fds, unsigned int n,
		       void (*notify)(void *opaque), void *notify_opaque);
int ram_sess_status(struct ram_sess *r);
/* Stop and join the thread (the destination's fds must be shut first). */
void ram_sess_stop(struct ram_sess *r);
void ram_sess_get_stats(struct ram_sess *r,
			struct vmig_session_ram_stats *st);

/*
 * The destination's RAM (ram_recv.c); postcopy (postcopy_dst.c) takes
 * over from the stamps: a page is held when its stamp is not 0.  A stamp
 * with DEST_BUSY set is a page being written, by the thread that set it.
 */
#define DEST_BUSY	(1ULL << 63)

struct vmig_ram_dest {
	struct ram_region *regions;
	unsigned int nr_regions;
	uint64_t total_pages;
	_Atomic uint64_t *stamp;	/* seq of the copy placed, 0: none */
	pthread_mutex_t lock;		/* stats, and the sink's buffer */
	struct vmig_ram_dest_stats st;
	void *sink_buf;
};

/* The address of page g; *reg caches its region (start with 0). */
void *ram_dest_page(struct vmig_ram_dest *d, uint64_t g, unsigned int *reg);
uint64_t ram_dest_pages(const struct vmig_ram_dest *d);
/*
 * Receive one RAM packet from fd, placing its pages straight into guest
 * RAM where no other copy of them is being placed (buf, RAM_MAX_PKT
 * bytes, takes the rest).  Returns 1 for the channel's END, 0 for a
 * packet placed, or a negative errno with *why set (-ECONNRESET when the
 * channel ends before its END).
 */
int ram_dest_recv(struct vmig_ram_dest *d, struct vmig_uio *io, int fd,
		  uint8_t *buf, const char **why);

#endif /* VMIG_RAM_XFER_H */

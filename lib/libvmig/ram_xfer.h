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

#include <stdint.h>

#include "ram_int.h"

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
/* Decode and check the header: 0 or -EPROTO / -EMSGSIZE, *why set. */
int ram_pkt_decode(const void *buf, struct ram_pkt_hdr *h, const char **why);

#endif /* VMIG_RAM_XFER_H */

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The device-state packet: a 32-byte little-endian header and a payload.
 *
 *	0  magic    "VMDP"
 *	4  dev_id   device index in the session
 *	8  seq      packet index within the device's stream, from 0
 *	16 flags    END (last packet of the device), ZSTD (payload compressed)
 *	20 len      payload bytes that follow
 *	24 raw_len  payload bytes after decompression (== len without ZSTD)
 *	28 crc      CRC32C of the header with this field 0, then the payload
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "transport.h"

static void encode(const struct vmig_pkt_hdr *h, uint32_t crc, uint8_t *b)
{
	put32(b, VMIG_PKT_MAGIC);
	put32(b + 4, h->dev_id);
	put64(b + 8, h->seq);
	put32(b + 16, h->flags);
	put32(b + 20, h->len);
	put32(b + 24, h->raw_len);
	put32(b + 28, crc);
}

uint32_t vmig_pkt_hdr_crc(const void *hdr)
{
	uint8_t tmp[VMIG_PKT_HDR_LEN];

	memcpy(tmp, hdr, VMIG_PKT_HDR_LEN);
	memset(tmp + 28, 0, 4);
	return vmig_crc32c(0, tmp, sizeof(tmp));
}

void vmig_pkt_seal_crc(struct vmig_pkt_hdr *h, uint32_t payload_crc,
		       void *buf)
{
	encode(h, 0, buf);
	h->crc = vmig_crc32c_combine(vmig_pkt_hdr_crc(buf), payload_crc,
				     h->len);
	put32((uint8_t *)buf + 28, h->crc);
}

void vmig_pkt_seal(struct vmig_pkt_hdr *h, const void *payload, void *buf)
{
	encode(h, 0, buf);
	h->crc = vmig_crc32c(vmig_pkt_hdr_crc(buf), payload, h->len);
	put32((uint8_t *)buf + 28, h->crc);
}

int vmig_pkt_decode(const void *buf, uint32_t max_payload,
		    struct vmig_pkt_hdr *h, const char **why)
{
	const uint8_t *b = buf;

	if (get32(b) != VMIG_PKT_MAGIC) {
		*why = "bad packet magic";
		return -EPROTO;
	}
	h->dev_id = get32(b + 4);
	h->seq = get64(b + 8);
	h->flags = get32(b + 16);
	h->len = get32(b + 20);
	h->raw_len = get32(b + 24);
	h->crc = get32(b + 28);

	if (h->flags & ~VMIG_PKT_F_ALL) {
		*why = "unknown packet flags";
		return -EPROTO;
	}
	if (h->len > max_payload || h->raw_len > max_payload) {
		*why = "packet longer than the session's chunk size";
		return -EMSGSIZE;
	}
	if (!(h->flags & VMIG_PKT_F_ZSTD) && h->raw_len != h->len) {
		*why = "raw length differs from length without compression";
		return -EPROTO;
	}
	if ((h->flags & VMIG_PKT_F_ZSTD) && (!h->len || !h->raw_len)) {
		*why = "empty compressed packet";
		return -EPROTO;
	}
	if (!h->raw_len && !(h->flags & VMIG_PKT_F_END)) {
		*why = "empty data packet";
		return -EPROTO;
	}
	return 0;
}

int vmig_pkt_check(const void *hdr_buf, const struct vmig_pkt_hdr *h,
		   const void *payload)
{
	uint32_t crc = vmig_crc32c(vmig_pkt_hdr_crc(hdr_buf), payload, h->len);

	return crc == h->crc ? 0 : -EBADMSG;
}

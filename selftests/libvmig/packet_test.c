// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * CRC32C and the device-state packet format.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "transport.h"

/* RFC 3720 (iSCSI) appendix B.4 and the usual check value. */
TEST(crc32c_known_vectors)
{
	uint8_t buf[32];
	int i;

	EXPECT_EQ(0xe3069283U, vmig_crc32c(0, "123456789", 9));
	EXPECT_EQ(0U, vmig_crc32c(0, "", 0));
	memset(buf, 0, sizeof(buf));
	EXPECT_EQ(0x8a9136aaU, vmig_crc32c(0, buf, 32));
	memset(buf, 0xff, sizeof(buf));
	EXPECT_EQ(0x62a8ab43U, vmig_crc32c(0, buf, 32));
	for (i = 0; i < 32; i++)
		buf[i] = i;
	EXPECT_EQ(0x46dd794eU, vmig_crc32c(0, buf, 32));
	for (i = 0; i < 32; i++)
		buf[i] = 31 - i;
	EXPECT_EQ(0x113fdb5cU, vmig_crc32c(0, buf, 32));
	EXPECT_EQ(0xe3069283U, vmig_crc32c_sw(0, "123456789", 9));
}

/* Lengths across the 3-stream blocks (256 and 8192), at every alignment. */
TEST(crc32c_hardware_and_table_agree)
{
	static const size_t lens[] = {
		0, 1, 7, 8, 9, 63, 255, 767, 768, 769, 1000, 8191,
		3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 6 * 8192 + 3 * 256 + 5,
		(1 << 20) + 3,
	};
	size_t max = (1 << 20) + 16, i, off;
	uint8_t *buf = malloc(max);

	ASSERT_NE(NULL, buf);
	srand(1);
	for (i = 0; i < max; i++)
		buf[i] = rand();
	if (!vmig_crc32c_have_hw())
		TH_LOG("no SSE4.2 here: both paths are the table");
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (off = 0; off < 8; off++)
			ASSERT_EQ(vmig_crc32c_sw(0, buf + off, lens[i]),
				  vmig_crc32c_hw(0, buf + off, lens[i]))
				TH_LOG("len %zu off %zu", lens[i], off);
	free(buf);
}

/* The VPCLMULQDQ folding: around its 256-byte blocks, from any CRC. */
TEST(crc32c_folding_and_table_agree)
{
	static const size_t lens[] = {
		255, 256, 257, 511, 512, 513, 767, 1024, 4096 + 255,
		65536, 65536 + 100, (256 << 10), (1 << 20) + 3,
	};
	size_t max = (1 << 20) + 64, i, off, len;
	uint8_t *buf = malloc(max);

	ASSERT_NE(NULL, buf);
	srand(2);
	for (i = 0; i < max; i++)
		buf[i] = rand();
	if (!vmig_crc32c_have_clmul())
		TH_LOG("no VPCLMULQDQ here: the folding path is not exercised");
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (off = 0; off < 64; off += 13) {
			len = lens[i];
			ASSERT_EQ(vmig_crc32c_sw(0, buf + off, len),
				  vmig_crc32c_clmul(0, buf + off, len))
				TH_LOG("len %zu off %zu", len, off);
			ASSERT_EQ(vmig_crc32c_sw(0xdeadbeef, buf + off, len),
				  vmig_crc32c_clmul(0xdeadbeef, buf + off, len))
				TH_LOG("len %zu off %zu, chained", len, off);
		}
	/* All zeros and all ones, where a wrong constant could hide. */
	memset(buf, 0, 4096);
	EXPECT_EQ(vmig_crc32c_sw(0, buf, 4096),
		  vmig_crc32c_clmul(0, buf, 4096));
	memset(buf, 0xff, 4096);
	EXPECT_EQ(vmig_crc32c_sw(0, buf, 4096),
		  vmig_crc32c_clmul(0, buf, 4096));
	free(buf);
}

TEST(crc32c_combine)
{
	static uint8_t buf[100000];
	size_t i, cut;
	uint32_t whole, a, b;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = i * 13 + (i >> 9);
	whole = vmig_crc32c(0, buf, sizeof(buf));
	for (cut = 0; cut <= sizeof(buf); cut += 7777) {
		a = vmig_crc32c(0, buf, cut);
		b = vmig_crc32c(0, buf + cut, sizeof(buf) - cut);
		EXPECT_EQ(whole, vmig_crc32c_combine(a, b, sizeof(buf) - cut))
			TH_LOG("cut %zu", cut);
	}
	EXPECT_EQ(whole, vmig_crc32c_combine(whole, 0, 0));
	EXPECT_EQ(whole, vmig_crc32c_combine(0, whole, sizeof(buf)));
}

TEST(crc32c_chains)
{
	uint8_t buf[40000];
	size_t i, cut;
	uint32_t whole;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = i * 7 + (i >> 8);
	whole = vmig_crc32c(0, buf, sizeof(buf));
	for (cut = 0; cut <= sizeof(buf); cut += 3331)
		EXPECT_EQ(whole, vmig_crc32c(vmig_crc32c(0, buf, cut),
					     buf + cut, sizeof(buf) - cut));
}

static void make(struct vmig_pkt_hdr *h, uint32_t dev, uint64_t seq,
		 uint32_t flags, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->dev_id = dev;
	h->seq = seq;
	h->flags = flags;
	h->len = len;
	h->raw_len = len;
}

TEST(packet_round_trip)
{
	uint8_t buf[VMIG_PKT_HDR_LEN], payload[100];
	struct vmig_pkt_hdr h, out;
	const char *why = NULL;

	memset(payload, 0x5a, sizeof(payload));
	make(&h, 3, 0x123456789aULL, 0, sizeof(payload));
	vmig_pkt_seal(&h, payload, buf);
	ASSERT_EQ(0, vmig_pkt_decode(buf, 4096, &out, &why));
	EXPECT_EQ(3U, out.dev_id);
	EXPECT_EQ(0x123456789aULL, out.seq);
	EXPECT_EQ(0U, out.flags);
	EXPECT_EQ(100U, out.len);
	EXPECT_EQ(100U, out.raw_len);
	EXPECT_EQ(h.crc, out.crc);
	EXPECT_EQ(0, vmig_pkt_check(buf, &out, payload));
	/* Little endian on the wire: the magic reads "VMDP". */
	EXPECT_EQ(0, memcmp(buf, "VMDP", 4));
}

/*
 * The source seals with the payload's CRC computed alone, the destination
 * chains the header's CRC over the payload as it arrives: both give the
 * CRC of vmig_pkt_seal().
 */
TEST(packet_crc_in_pieces)
{
	uint8_t a[VMIG_PKT_HDR_LEN], b[VMIG_PKT_HDR_LEN], payload[5000];
	struct vmig_pkt_hdr h1, h2, out;
	const char *why;
	uint32_t crc;
	size_t i;

	for (i = 0; i < sizeof(payload); i++)
		payload[i] = i ^ (i >> 7);
	make(&h1, 2, 77, 0, sizeof(payload));
	h2 = h1;
	vmig_pkt_seal(&h1, payload, a);
	vmig_pkt_seal_crc(&h2, vmig_crc32c(vmig_crc32c(0, payload, 1000),
					   payload + 1000, 4000), b);
	EXPECT_EQ(h1.crc, h2.crc);
	EXPECT_EQ(0, memcmp(a, b, sizeof(a)));

	ASSERT_EQ(0, vmig_pkt_decode(b, 8192, &out, &why));
	crc = vmig_pkt_hdr_crc(b);
	crc = vmig_crc32c(crc, payload, 3000);
	crc = vmig_crc32c(crc, payload + 3000, 2000);
	EXPECT_EQ(out.crc, crc);
	payload[4999] ^= 0x10;
	EXPECT_NE(out.crc, vmig_crc32c(vmig_pkt_hdr_crc(b), payload,
				       sizeof(payload)));
}

TEST(empty_end_packet_is_valid)
{
	uint8_t buf[VMIG_PKT_HDR_LEN];
	struct vmig_pkt_hdr h, out;
	const char *why;

	make(&h, 0, 9, VMIG_PKT_F_END, 0);
	vmig_pkt_seal(&h, NULL, buf);
	ASSERT_EQ(0, vmig_pkt_decode(buf, 4096, &out, &why));
	EXPECT_EQ(VMIG_PKT_F_END, out.flags);
	EXPECT_EQ(0, vmig_pkt_check(buf, &out, NULL));
}

static int decode_made(const struct vmig_pkt_hdr *in, uint32_t max,
		       const char **why)
{
	static const uint8_t zeros[8192];
	struct vmig_pkt_hdr h = *in, out;
	uint8_t buf[VMIG_PKT_HDR_LEN];

	vmig_pkt_seal(&h, zeros, buf);
	return vmig_pkt_decode(buf, max, &out, why);
}

TEST(malformed_headers_are_refused)
{
	uint8_t buf[VMIG_PKT_HDR_LEN];
	struct vmig_pkt_hdr h, out;
	const char *why = NULL;

	make(&h, 0, 0, 0, 10);
	vmig_pkt_seal(&h, "0123456789", buf);
	buf[0] ^= 1;
	EXPECT_EQ(-EPROTO, vmig_pkt_decode(buf, 4096, &out, &why));
	EXPECT_STREQ("bad packet magic", why);

	make(&h, 0, 0, 1U << 7, 10);
	EXPECT_EQ(-EPROTO, decode_made(&h, 4096, &why));
	EXPECT_STREQ("unknown packet flags", why);

	make(&h, 0, 0, 0, 4097);
	EXPECT_EQ(-EMSGSIZE, decode_made(&h, 4096, &why));

	make(&h, 0, 0, VMIG_PKT_F_ZSTD, 100);
	h.raw_len = 4097;
	EXPECT_EQ(-EMSGSIZE, decode_made(&h, 4096, &why));

	make(&h, 0, 0, 0, 100);
	h.raw_len = 99;
	EXPECT_EQ(-EPROTO, decode_made(&h, 4096, &why));

	make(&h, 0, 0, 0, 0);
	EXPECT_EQ(-EPROTO, decode_made(&h, 4096, &why));
	EXPECT_STREQ("empty data packet", why);

	make(&h, 0, 0, VMIG_PKT_F_ZSTD, 0);
	h.raw_len = 10;
	EXPECT_EQ(-EPROTO, decode_made(&h, 4096, &why));
}

/* Every single-bit error in the header or payload is caught. */
TEST(crc_catches_every_flipped_bit)
{
	uint8_t buf[VMIG_PKT_HDR_LEN], payload[64];
	struct vmig_pkt_hdr h, out;
	const char *why;
	unsigned int bit;

	memset(payload, 0xa5, sizeof(payload));
	make(&h, 1, 2, 0, sizeof(payload));
	vmig_pkt_seal(&h, payload, buf);
	ASSERT_EQ(0, vmig_pkt_decode(buf, 4096, &out, &why));

	for (bit = 0; bit < sizeof(payload) * 8; bit++) {
		payload[bit / 8] ^= 1 << (bit % 8);
		EXPECT_EQ(-EBADMSG, vmig_pkt_check(buf, &out, payload))
			TH_LOG("payload bit %u", bit);
		payload[bit / 8] ^= 1 << (bit % 8);
	}
	/* Header bits that still decode: dev_id and seq. */
	for (bit = 4 * 8; bit < 16 * 8; bit++) {
		buf[bit / 8] ^= 1 << (bit % 8);
		ASSERT_EQ(0, vmig_pkt_decode(buf, 4096, &out, &why));
		EXPECT_EQ(-EBADMSG, vmig_pkt_check(buf, &out, payload))
			TH_LOG("header bit %u", bit);
		buf[bit / 8] ^= 1 << (bit % 8);
	}
	ASSERT_EQ(0, vmig_pkt_decode(buf, 4096, &out, &why));
	EXPECT_EQ(0, vmig_pkt_check(buf, &out, payload));
}

TEST_HARNESS_MAIN

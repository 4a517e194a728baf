// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: a RESUMING device refuses a bad stream.  A good stream is
 * saved from a source instance, damaged in one way, and written to a
 * destination instance.  For each kind of damage: write() fails (sticky)
 * as soon as the stream is known bad, RESUMING -> STOP fails with the errno
 * include/uapi/linux/vfio_migsim.h documents, the destination is then in
 * ERROR with its own state untouched and last_error set, and after
 * VFIO_DEVICE_RESET it is RUNNING and takes the good stream.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

/* source: two chunks, 1 MiB and 8 KiB; destination: one 4 KiB chunk */
#define SRC_SIZE	(1 * MiB + 8 * KiB)
#define DST_SIZE	(4 * KiB)
#define HDR_LEN		sizeof(struct migsim_stream_header)
#define REC_LEN		sizeof(struct migsim_record)
#define WRITE_SIZE	4093	/* odd, so headers straddle writes */

enum damage {
	HDR_BITFLIP,		/* a reserved header bit: header CRC */
	REC_BITFLIP,		/* a CHUNK record's seq: record CRC */
	PAYLOAD_BITFLIP,	/* a CHUNK payload byte: payload CRC */
	CONFIG_BITFLIP,		/* a CONFIG payload byte: payload CRC */
	EMPTY,			/* no bytes at all */
	TRUNC_MID_HEADER,	/* 50 bytes of the header */
	TRUNC_AFTER_HEADER,	/* the header alone */
	TRUNC_MID_PAYLOAD,	/* stops inside the first chunk's payload */
	TRUNC_BEFORE_END,	/* everything but the END record */
	GARBAGE_AFTER_END,	/* 100 bytes after the END record */
	BAD_MAGIC,		/* magic changed, CRC fixed */
	BAD_VERSION,		/* version 2, CRC fixed */
	BAD_MODEL,		/* model "vfio-migsix", CRC fixed */
	BAD_CHUNK_SIZE,		/* chunk size 2 MiB, CRC fixed */
	SIZE_OVER_LIMIT,	/* state size 8 GiB (> max_state_size) */
	CHUNK_PAST_SIZE,	/* a CHUNK at 16 MiB of a 1 MiB + 8 KiB state */
	UNKNOWN_RECORD,		/* record type 99, CRC fixed */
	END_CHECKSUM,		/* END's state checksum off by one bit */
	MISSING_CHUNK,		/* a CHUNK left out, seq and END fixed up */
};

FIXTURE(bad_stream) {
	struct migsim_inst src, dst;
	struct migsim_buf good, bad;
	uint32_t src_csum, dst_csum;
};

/* write_err: 0 = every write() succeeds, -1 = either succeeds or fails
 * with err; else the errno write() must fail with. */
FIXTURE_VARIANT(bad_stream) {
	enum damage damage;
	int err;		/* errno of RESUMING -> STOP */
	int alt_err;		/* another acceptable errno, or 0 */
	int write_err;
};

FIXTURE_VARIANT_ADD(bad_stream, header_bitflip) {
	.damage = HDR_BITFLIP, .err = EBADMSG, .write_err = EBADMSG,
};
FIXTURE_VARIANT_ADD(bad_stream, record_bitflip) {
	.damage = REC_BITFLIP, .err = EBADMSG, .write_err = EBADMSG,
};
FIXTURE_VARIANT_ADD(bad_stream, payload_bitflip) {
	.damage = PAYLOAD_BITFLIP, .err = EBADMSG, .write_err = EBADMSG,
};
FIXTURE_VARIANT_ADD(bad_stream, config_bitflip) {
	.damage = CONFIG_BITFLIP, .err = EBADMSG, .write_err = EBADMSG,
};
FIXTURE_VARIANT_ADD(bad_stream, empty) {
	.damage = EMPTY, .err = ENODATA, .write_err = 0,
};
FIXTURE_VARIANT_ADD(bad_stream, truncated_mid_header) {
	.damage = TRUNC_MID_HEADER, .err = ENODATA, .write_err = 0,
};
FIXTURE_VARIANT_ADD(bad_stream, truncated_after_header) {
	.damage = TRUNC_AFTER_HEADER, .err = ENODATA, .write_err = 0,
};
FIXTURE_VARIANT_ADD(bad_stream, truncated_mid_payload) {
	.damage = TRUNC_MID_PAYLOAD, .err = ENODATA, .write_err = 0,
};
FIXTURE_VARIANT_ADD(bad_stream, truncated_before_end) {
	.damage = TRUNC_BEFORE_END, .err = ENODATA, .write_err = 0,
};
FIXTURE_VARIANT_ADD(bad_stream, garbage_after_end) {
	.damage = GARBAGE_AFTER_END, .err = EFBIG, .write_err = EFBIG,
};
FIXTURE_VARIANT_ADD(bad_stream, wrong_magic) {
	.damage = BAD_MAGIC, .err = EPROTO, .write_err = EPROTO,
};
FIXTURE_VARIANT_ADD(bad_stream, wrong_version) {
	.damage = BAD_VERSION, .err = EPROTO, .write_err = EPROTO,
};
FIXTURE_VARIANT_ADD(bad_stream, wrong_model) {
	.damage = BAD_MODEL, .err = EMEDIUMTYPE, .write_err = EMEDIUMTYPE,
};
FIXTURE_VARIANT_ADD(bad_stream, wrong_chunk_size) {
	.damage = BAD_CHUNK_SIZE, .err = EMEDIUMTYPE,
	.write_err = EMEDIUMTYPE,
};
FIXTURE_VARIANT_ADD(bad_stream, size_over_limit) {
	.damage = SIZE_OVER_LIMIT, .err = EFBIG, .write_err = EFBIG,
};
FIXTURE_VARIANT_ADD(bad_stream, chunk_past_size) {
	.damage = CHUNK_PAST_SIZE, .err = EFBIG, .write_err = EFBIG,
};
FIXTURE_VARIANT_ADD(bad_stream, unknown_record_type) {
	.damage = UNKNOWN_RECORD, .err = EBADMSG, .write_err = EBADMSG,
};
FIXTURE_VARIANT_ADD(bad_stream, end_checksum_mismatch) {
	.damage = END_CHECKSUM, .err = EBADMSG, .write_err = -1,
};
FIXTURE_VARIANT_ADD(bad_stream, missing_chunk) {
	.damage = MISSING_CHUNK, .err = ENODATA, .write_err = 0,
};

/* Recompute a record's payload CRC and record CRC after an edit. */
static void fix_record(struct migsim_record *r)
{
	r->payload_crc = htole32(migsim_crc32c(r + 1, le32toh(r->length)));
	migsim_fix_record_crc(r);
}

static struct migsim_stream_header *bad_hdr(FIXTURE_DATA(bad_stream) *self)
{
	return (struct migsim_stream_header *)self->bad.data;
}

/* Cut out the second CHUNK record; renumber and fix up END. */
static int drop_chunk(struct migsim_buf *b)
{
	struct migsim_record *r, *end;
	struct migsim_end *e;
	size_t at, len, off;
	uint32_t seq;

	r = migsim_find_record(b, MIGSIM_REC_CHUNK, MiB, &at);
	if (!r)
		return -ENOENT;
	len = REC_LEN + le32toh(r->length);
	seq = le32toh(r->seq);
	memmove(b->data + at, b->data + at + len, b->len - at - len);
	b->len -= len;
	off = at;
	while ((r = migsim_next_record(b, &off))) {
		r->seq = htole32(seq++);
		migsim_fix_record_crc(r);
	}
	end = migsim_find_record(b, MIGSIM_REC_END, 0, NULL);
	if (!end)
		return -ENOENT;
	e = (struct migsim_end *)(end + 1);
	e->records = htole64(le64toh(e->records) - 1);
	e->payload_bytes = htole64(le64toh(e->payload_bytes) - 8 * KiB);
	fix_record(end);
	return 0;
}

static int damage_stream(FIXTURE_DATA(bad_stream) *self, enum damage d)
{
	struct migsim_record *r;
	struct migsim_end *e;
	uint8_t junk[100];
	size_t at;
	int ret;

	ret = migsim_buf_append(&self->bad, self->good.data, self->good.len);
	if (ret)
		return ret;

	switch (d) {
	case HDR_BITFLIP:
		self->bad.data[offsetof(struct migsim_stream_header,
					reserved) + 4] ^= 0x08;
		break;
	case REC_BITFLIP:
		r = migsim_find_record(&self->bad, MIGSIM_REC_CHUNK, 0, NULL);
		if (!r)
			return -ENOENT;
		((uint8_t *)&r->seq)[0] ^= 0x01;
		break;
	case PAYLOAD_BITFLIP:
		r = migsim_find_record(&self->bad, MIGSIM_REC_CHUNK, 0, NULL);
		if (!r)
			return -ENOENT;
		((uint8_t *)(r + 1))[le32toh(r->length) / 2] ^= 0x10;
		break;
	case CONFIG_BITFLIP:
		r = migsim_find_record(&self->bad, MIGSIM_REC_CONFIG, 0, NULL);
		if (!r)
			return -ENOENT;
		((uint8_t *)(r + 1))[0] ^= 0x01;
		break;
	case EMPTY:
		self->bad.len = 0;
		break;
	case TRUNC_MID_HEADER:
		self->bad.len = 50;
		break;
	case TRUNC_AFTER_HEADER:
		self->bad.len = HDR_LEN;
		break;
	case TRUNC_MID_PAYLOAD:
		r = migsim_find_record(&self->bad, MIGSIM_REC_CHUNK, 0, &at);
		if (!r)
			return -ENOENT;
		self->bad.len = at + REC_LEN + 1000;
		break;
	case TRUNC_BEFORE_END:
		if (!migsim_find_record(&self->bad, MIGSIM_REC_END, 0, &at))
			return -ENOENT;
		self->bad.len = at;
		break;
	case GARBAGE_AFTER_END:
		memset(junk, 0xa5, sizeof(junk));
		ret = migsim_buf_append(&self->bad, junk, sizeof(junk));
		break;
	case BAD_MAGIC:
		bad_hdr(self)->magic = htole32(MIGSIM_STREAM_MAGIC ^ 0x100);
		migsim_fix_header_crc(bad_hdr(self));
		break;
	case BAD_VERSION:
		bad_hdr(self)->version = htole16(MIGSIM_STREAM_VERSION + 1);
		migsim_fix_header_crc(bad_hdr(self));
		break;
	case BAD_MODEL:
		memset(bad_hdr(self)->model, 0, MIGSIM_MODEL_LEN);
		strcpy(bad_hdr(self)->model, "vfio-migsix");
		migsim_fix_header_crc(bad_hdr(self));
		break;
	case BAD_CHUNK_SIZE:
		bad_hdr(self)->chunk_size = htole32(2 * MiB);
		migsim_fix_header_crc(bad_hdr(self));
		break;
	case SIZE_OVER_LIMIT:
		bad_hdr(self)->state_size = htole64(8 * GiB);
		migsim_fix_header_crc(bad_hdr(self));
		break;
	case CHUNK_PAST_SIZE:
		r = migsim_find_record(&self->bad, MIGSIM_REC_CHUNK, MiB, NULL);
		if (!r)
			return -ENOENT;
		r->offset = htole64(16 * MiB);
		migsim_fix_record_crc(r);
		break;
	case UNKNOWN_RECORD:
		r = migsim_find_record(&self->bad, MIGSIM_REC_CHUNK, 0, NULL);
		if (!r)
			return -ENOENT;
		r->type = htole32(99);
		migsim_fix_record_crc(r);
		break;
	case END_CHECKSUM:
		r = migsim_find_record(&self->bad, MIGSIM_REC_END, 0, NULL);
		if (!r)
			return -ENOENT;
		e = (struct migsim_end *)(r + 1);
		e->state_checksum = htole32(le32toh(e->state_checksum) ^ 1);
		fix_record(r);
		break;
	case MISSING_CHUNK:
		ret = drop_chunk(&self->bad);
		break;
	}
	return ret;
}

static int prepare_bad(FIXTURE_DATA(bad_stream) *self, enum damage d)
{
	int i, ret;

	ret = migsim_inst_create_open(&self->src, SRC_SIZE);
	if (ret)
		return ret;
	ret = migsim_inst_create_open(&self->dst, DST_SIZE);
	if (ret)
		return ret;
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++) {
		ret = migsim_bar0_write32(self->src.fd,
					  MIGSIM_REG_SCRATCH0 + 4 * i,
					  0x600d0000 + i);
		if (ret)
			return ret;
	}
	ret = migsim_save(&self->src, MiB, &self->good);
	if (ret)
		return ret;
	ret = migsim_checksum(self->src.uuid, &self->src_csum);
	if (ret)
		return ret;
	ret = migsim_checksum(self->dst.uuid, &self->dst_csum);
	if (ret)
		return ret;
	if (self->src_csum == self->dst_csum)
		return -EEXIST;
	return damage_stream(self, d);
}

FIXTURE_SETUP(bad_stream)
{
	int ret;

	memset(&self->good, 0, sizeof(self->good));
	memset(&self->bad, 0, sizeof(self->bad));
	ret = prepare_bad(self, variant->damage);
	if (ret) {
		migsim_inst_destroy(&self->src);
		migsim_inst_destroy(&self->dst);
	}
	ASSERT_EQ(0, ret);
}

FIXTURE_TEARDOWN_PARENT(bad_stream)
{
	if (self->src.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->src.uuid));
	if (self->dst.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->dst.uuid));
}

/*
 * Two tests per kind of damage (each costs two fresh instances):
 *   refused_with_documented_errno  what write() and RESUMING -> STOP say
 *   fails_safe_and_recovers        what is left of the device afterwards
 */

static bool is_err(const FIXTURE_VARIANT(bad_stream) *variant, int ret)
{
	return ret == -variant->err ||
	       (variant->alt_err && ret == -variant->alt_err);
}

/* Enter RESUMING and write the damaged stream; *rfd stays open. */
static int write_bad(FIXTURE_DATA(bad_stream) *self, int *rfd,
		     int *write_ret)
{
	int ret;

	ret = migsim_set_state(&self->dst, VMIG_STATE_RESUMING, rfd);
	if (ret)
		return ret;
	if (*rfd < 0)
		return -EBADF;
	*write_ret = migsim_write_stream(*rfd, self->bad.data, self->bad.len,
					 WRITE_SIZE, NULL);
	return 0;
}

TEST_F(bad_stream, refused_with_documented_errno)
{
	int rfd, wret, sret;

	ASSERT_EQ(0, write_bad(self, &rfd, &wret));

	/* write() fails as soon as the stream is known bad... */
	if (variant->write_err == 0) {
		EXPECT_EQ(0, wret) TH_LOG("write: %s", strerror(-wret));
	} else if (variant->write_err > 0) {
		EXPECT_EQ(-variant->write_err, wret)
			TH_LOG("write: %s, expected %s", strerror(-wret),
			       strerror(variant->write_err));
	} else {
		EXPECT_TRUE(wret == 0 || is_err(variant, wret))
			TH_LOG("write: %s", strerror(-wret));
	}
	/* ...and keeps failing, even for a good stream's bytes */
	if (wret) {
		EXPECT_EQ(-1, write(rfd, self->good.data, 1));
		EXPECT_EQ(-wret, errno) TH_LOG("second write: %s",
					       strerror(errno));
		EXPECT_EQ(-1, write(rfd, self->good.data, 4096));
		EXPECT_EQ(-wret, errno) TH_LOG("third write: %s",
					       strerror(errno));
	}

	/* RESUMING -> STOP fails with the documented errno */
	sret = migsim_set_state(&self->dst, VMIG_STATE_STOP, NULL);
	EXPECT_TRUE(is_err(variant, sret))
		TH_LOG("RESUMING -> STOP: %s, expected %s%s", strerror(-sret),
		       strerror(variant->err),
		       variant->alt_err ? " (or another)" : "");
	close(rfd);
}

TEST_F(bad_stream, fails_safe_and_recovers)
{
	enum vmig_dev_state st;
	int rfd, wret, sret, i;
	uint32_t csum, v;
	char why[256];
	uint64_t size;

	ASSERT_EQ(0, write_bad(self, &rfd, &wret));
	sret = migsim_set_state(&self->dst, VMIG_STATE_STOP, NULL);
	close(rfd);
	ASSERT_NE(0, sret) TH_LOG("the damaged stream was accepted");

	/* ERROR, with a reason */
	ASSERT_EQ(0, migsim_get_state(&self->dst, &st));
	EXPECT_EQ(VMIG_STATE_ERROR, st) TH_LOG("in %s", vmig_state_name(st));
	ASSERT_EQ(0, migsim_sysfs_mig_state(self->dst.uuid, &st));
	EXPECT_EQ(VMIG_STATE_ERROR, st) TH_LOG("sysfs: %s",
					       vmig_state_name(st));
	ASSERT_LT(0, migsim_attr_read(self->dst.uuid, "last_error", why,
				      sizeof(why)));
	EXPECT_STRNE("none", why);

	/* its own state untouched */
	ASSERT_EQ(0, migsim_checksum(self->dst.uuid, &csum));
	EXPECT_EQ(self->dst_csum, csum);
	ASSERT_EQ(0, migsim_state_size(self->dst.uuid, &size));
	EXPECT_EQ(DST_SIZE, size);

	/* reset: RUNNING, and a good migration into it works */
	ASSERT_EQ(0, vmig_vfio_reset(self->dst.dev));
	ASSERT_EQ(0, migsim_get_state(&self->dst, &st));
	ASSERT_EQ(VMIG_STATE_RUNNING, st) TH_LOG("after reset: %s",
						 vmig_state_name(st));
	ASSERT_EQ(0, migsim_load(&self->dst, self->good.data, self->good.len,
				 WRITE_SIZE));
	ASSERT_EQ(0, migsim_checksum(self->dst.uuid, &csum));
	EXPECT_EQ(self->src_csum, csum);
	ASSERT_EQ(0, migsim_state_size(self->dst.uuid, &size));
	EXPECT_EQ(SRC_SIZE, size);
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++) {
		ASSERT_EQ(0, migsim_bar0_read32(self->dst.fd,
				MIGSIM_REG_SCRATCH0 + 4 * i, &v));
		EXPECT_EQ(0x600d0000 + i, v) TH_LOG("SCRATCH%d", i);
	}
}

/*
 * Not damage: a later CHUNK record for a chunk replaces an earlier one.  A
 * stream with a corrupted-content (but well-formed) copy of chunk 0 put
 * before the real one loads, and ends with the real content.
 */
FIXTURE(replace) {
	struct migsim_inst src, dst;
	struct migsim_buf good, edited;
	uint32_t src_csum;
};

static int prepare_replace(FIXTURE_DATA(replace) *self)
{
	struct migsim_record *r, *end;
	struct migsim_end *e;
	size_t at, off, len;
	uint32_t seq;
	uint8_t *copy;
	int ret;

	ret = migsim_inst_create_open(&self->src, SRC_SIZE);
	if (ret)
		return ret;
	ret = migsim_inst_create_open(&self->dst, DST_SIZE);
	if (ret)
		return ret;
	ret = migsim_save(&self->src, MiB, &self->good);
	if (ret)
		return ret;
	ret = migsim_checksum(self->src.uuid, &self->src_csum);
	if (ret)
		return ret;

	/* edited = good up to chunk 0, a changed chunk 0, then good on */
	r = migsim_find_record(&self->good, MIGSIM_REC_CHUNK, 0, &at);
	if (!r)
		return -ENOENT;
	len = REC_LEN + le32toh(r->length);
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, r, len);
	copy[REC_LEN + 123] ^= 0xff;
	if (migsim_buf_append(&self->edited, self->good.data, at) ||
	    migsim_buf_append(&self->edited, copy, len) ||
	    migsim_buf_append(&self->edited, self->good.data + at,
			      self->good.len - at)) {
		free(copy);
		return -ENOMEM;
	}
	free(copy);
	/* renumber from the inserted record on, fix CRCs and END totals */
	off = at;
	seq = le32toh(((struct migsim_record *)(self->edited.data + at))->seq);
	while ((r = migsim_next_record(&self->edited, &off))) {
		r->seq = htole32(seq++);
		if (le32toh(r->type) == MIGSIM_REC_END) {
			e = (struct migsim_end *)(r + 1);
			e->records = htole64(le64toh(e->records) + 1);
			e->payload_bytes = htole64(le64toh(e->payload_bytes) +
						   len - REC_LEN);
		}
		fix_record(r);
	}
	end = migsim_find_record(&self->edited, MIGSIM_REC_END, 0, NULL);
	return end ? 0 : -ENOENT;
}

FIXTURE_SETUP(replace)
{
	int ret;

	memset(&self->good, 0, sizeof(self->good));
	memset(&self->edited, 0, sizeof(self->edited));
	ret = prepare_replace(self);
	if (ret) {
		migsim_inst_destroy(&self->src);
		migsim_inst_destroy(&self->dst);
	}
	ASSERT_EQ(0, ret);
}

FIXTURE_TEARDOWN_PARENT(replace)
{
	if (self->src.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->src.uuid));
	if (self->dst.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->dst.uuid));
}

TEST_F(replace, later_chunk_record_wins)
{
	uint32_t csum;

	ASSERT_EQ(0, migsim_load(&self->dst, self->edited.data,
				 self->edited.len, WRITE_SIZE));
	ASSERT_EQ(0, migsim_checksum(self->dst.uuid, &csum));
	EXPECT_EQ(self->src_csum, csum);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: the bytes a save fd produces follow the stream format of
 * include/uapi/linux/vfio_migsim.h: header, records numbered from 0 with
 * valid CRCs, every chunk once, the device registers in a CONFIG record,
 * an END record whose totals and state checksum add up, and exactly as many
 * bytes as VFIO_DEVICE_FEATURE_MIG_DATA_SIZE announced.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

/* 2 MiB + 8 KiB: three chunks, the last one partial */
#define STATE_SIZE	(2 * MiB + 8 * KiB)
#define HDR_LEN		sizeof(struct migsim_stream_header)
#define REC_LEN		sizeof(struct migsim_record)

FIXTURE(stream) {
	struct migsim_inst in;
	struct migsim_buf b;
	uint64_t data_size;	/* MIG_DATA_SIZE, asked in STOP */
	uint32_t scratch[MIGSIM_NR_SCRATCH];
	uint32_t bar0;
};

/*
 * Fill the scratch registers and BAR0, then save the whole state from STOP
 * (after asking MIG_DATA_SIZE) and go back to RUNNING.
 */
static int save_once(FIXTURE_DATA(stream) *self)
{
	int i, fd = -1, ret;

	for (i = 0; i < MIGSIM_NR_SCRATCH; i++) {
		self->scratch[i] = 0xc0de0000 | (i << 8) | i;
		ret = migsim_bar0_write32(self->in.fd,
					  MIGSIM_REG_SCRATCH0 + 4 * i,
					  self->scratch[i]);
		if (ret)
			return ret;
	}
	ret = migsim_cfg_write32(self->in.fd, 0x10, 0xfebf0000);
	if (!ret)
		ret = migsim_cfg_read32(self->in.fd, 0x10, &self->bar0);
	if (!ret)
		ret = migsim_set_state(&self->in, VMIG_STATE_STOP, NULL);
	if (!ret)
		ret = vmig_vfio_stop_copy_size(self->in.dev, &self->data_size);
	if (!ret)
		ret = migsim_set_state(&self->in, VMIG_STATE_STOP_COPY, &fd);
	if (!ret && fd < 0)
		ret = -EBADF;
	if (!ret)
		ret = migsim_read_stream(fd, 64 * KiB, &self->b);
	if (fd >= 0)
		close(fd);
	if (!ret)
		ret = migsim_set_state(&self->in, VMIG_STATE_RUNNING, NULL);
	if (!ret && self->b.len < HDR_LEN)
		ret = -ENODATA;
	return ret;
}

FIXTURE_SETUP(stream)
{
	int ret;

	memset(&self->b, 0, sizeof(self->b));
	ret = migsim_inst_create_open(&self->in, STATE_SIZE);
	if (!ret) {
		ret = save_once(self);
		if (ret)
			migsim_inst_destroy(&self->in);
	}
	ASSERT_EQ(0, ret) TH_LOG("setup: %s", strerror(-ret));
}

FIXTURE_TEARDOWN_PARENT(stream)
{
	if (self->in.uuid[0])
		EXPECT_EQ(0, migsim_remove_uuid(self->in.uuid));
}

static struct migsim_stream_header *hdr(FIXTURE_DATA(stream) *self)
{
	return (struct migsim_stream_header *)self->b.data;
}

TEST_F(stream, length_is_announced_data_size)
{
	EXPECT_EQ(self->data_size, self->b.len);
}

TEST_F(stream, length_is_header_config_chunks_end)
{
	EXPECT_EQ(migsim_stream_len(STATE_SIZE, MIGSIM_DEFAULT_CHUNK_SIZE),
		  self->b.len);
}

TEST_F(stream, header_identifies_stream)
{
	struct migsim_stream_header *h = hdr(self);
	char model[MIGSIM_MODEL_LEN] = MIGSIM_MODEL;
	size_t i;

	EXPECT_EQ(MIGSIM_STREAM_MAGIC, le32toh(h->magic));
	EXPECT_EQ(MIGSIM_STREAM_VERSION, le16toh(h->version));
	EXPECT_EQ(HDR_LEN, le16toh(h->header_len));
	EXPECT_EQ(0, memcmp(model, h->model, sizeof(model)));
	EXPECT_EQ(STATE_SIZE, le64toh(h->state_size));
	EXPECT_EQ(MIGSIM_DEFAULT_CHUNK_SIZE, le32toh(h->chunk_size));
	EXPECT_EQ(0, le32toh(h->flags) & MIGSIM_STREAM_F_PRECOPY);
	for (i = 0; i < ARRAY_SIZE(h->reserved); i++)
		EXPECT_EQ(0, h->reserved[i]);
}

TEST_F(stream, header_crc_valid)
{
	struct migsim_stream_header *h = hdr(self);

	EXPECT_EQ(migsim_crc32c(h, offsetof(struct migsim_stream_header,
					    header_crc)),
		  le32toh(h->header_crc));
}

TEST_F(stream, records_tile_stream_and_count_from_zero)
{
	size_t off = HDR_LEN;
	struct migsim_record *r;
	uint32_t seq = 0;

	while ((r = migsim_next_record(&self->b, &off))) {
		EXPECT_EQ(seq, le32toh(r->seq));
		EXPECT_EQ(0, le32toh(r->flags));
		seq++;
	}
	EXPECT_EQ(self->b.len, off) TH_LOG("records stop at %zu of %zu",
					   off, self->b.len);
	/* CONFIG, three CHUNKs, END */
	EXPECT_EQ(5, seq);
}

TEST_F(stream, record_and_payload_crcs_valid)
{
	size_t off = HDR_LEN;
	struct migsim_record *r;

	while ((r = migsim_next_record(&self->b, &off))) {
		EXPECT_EQ(migsim_crc32c(r, offsetof(struct migsim_record,
						    record_crc)),
			  le32toh(r->record_crc)) TH_LOG("record %u",
							 le32toh(r->seq));
		EXPECT_EQ(migsim_crc32c(r + 1, le32toh(r->length)),
			  le32toh(r->payload_crc)) TH_LOG("record %u",
							  le32toh(r->seq));
	}
}

TEST_F(stream, every_chunk_sent_once)
{
	uint64_t nr = (STATE_SIZE + MIGSIM_DEFAULT_CHUNK_SIZE - 1) /
		      MIGSIM_DEFAULT_CHUNK_SIZE;
	unsigned int seen[8] = { 0 };
	size_t off = HDR_LEN;
	struct migsim_record *r;
	uint64_t i, o;

	ASSERT_GE(ARRAY_SIZE(seen), nr);
	while ((r = migsim_next_record(&self->b, &off))) {
		if (le32toh(r->type) != MIGSIM_REC_CHUNK)
			continue;
		o = le64toh(r->offset);
		ASSERT_EQ(0, o % MIGSIM_DEFAULT_CHUNK_SIZE);
		i = o / MIGSIM_DEFAULT_CHUNK_SIZE;
		ASSERT_GT(nr, i);
		seen[i]++;
		EXPECT_EQ(i == nr - 1 ? STATE_SIZE - o :
			  MIGSIM_DEFAULT_CHUNK_SIZE, le32toh(r->length));
	}
	for (i = 0; i < nr; i++)
		EXPECT_EQ(1, seen[i]) TH_LOG("chunk %llu",
					     (unsigned long long)i);
}

TEST_F(stream, config_record_carries_registers)
{
	struct migsim_config_state *cfg;
	struct migsim_record *r;
	int i;

	r = migsim_find_record(&self->b, MIGSIM_REC_CONFIG, 0, NULL);
	ASSERT_NE(NULL, r);
	ASSERT_EQ(sizeof(*cfg), le32toh(r->length));
	cfg = (struct migsim_config_state *)(r + 1);
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++)
		EXPECT_EQ(self->scratch[i], le32toh(cfg->scratch[i]))
			TH_LOG("SCRATCH%d", i);
	EXPECT_EQ(self->bar0, le32toh(cfg->bar0));
}

TEST_F(stream, end_record_is_last_and_adds_up)
{
	size_t off = HDR_LEN, at = 0;
	struct migsim_record *r, *last = NULL;
	uint64_t payload = 0, records = 0;
	struct migsim_end *end;
	uint32_t csum;

	for (;;) {
		at = off;
		r = migsim_next_record(&self->b, &off);
		if (!r)
			break;
		if (le32toh(r->type) == MIGSIM_REC_END) {
			last = r;
			break;
		}
		if (le32toh(r->type) == MIGSIM_REC_CHUNK)
			payload += le32toh(r->length);
		records++;
	}
	ASSERT_NE(NULL, last);
	EXPECT_EQ(self->b.len, off) TH_LOG("END at %zu, %zu bytes follow", at,
					   self->b.len - off);
	ASSERT_EQ(sizeof(*end), le32toh(last->length));
	end = (struct migsim_end *)(last + 1);
	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &csum));
	EXPECT_EQ(STATE_SIZE, le64toh(end->state_size));
	EXPECT_EQ(records, le64toh(end->records));
	EXPECT_EQ(STATE_SIZE, le64toh(end->payload_bytes));
	EXPECT_EQ(payload, le64toh(end->payload_bytes));
	EXPECT_EQ(csum, le32toh(end->state_checksum));
}

TEST_F(stream, checksum_is_crc_of_size_and_chunk_crcs)
{
	uint64_t nr = (STATE_SIZE + MIGSIM_DEFAULT_CHUNK_SIZE - 1) /
		      MIGSIM_DEFAULT_CHUNK_SIZE;
	uint64_t size_le = htole64(STATE_SIZE), i;
	struct migsim_record *r;
	uint32_t crc, c, csum, reg;

	crc = migsim_crc32c_update(~0U, &size_le, sizeof(size_le));
	for (i = 0; i < nr; i++) {
		r = migsim_find_record(&self->b, MIGSIM_REC_CHUNK,
				       i * MIGSIM_DEFAULT_CHUNK_SIZE, NULL);
		ASSERT_NE(NULL, r) TH_LOG("chunk %llu", (unsigned long long)i);
		c = htole32(migsim_crc32c(r + 1, le32toh(r->length)));
		crc = migsim_crc32c_update(crc, &c, sizeof(c));
	}
	crc ^= ~0U;
	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &csum));
	EXPECT_EQ(csum, crc);
	ASSERT_EQ(0, migsim_bar0_read32(self->in.fd, MIGSIM_REG_CHECKSUM,
					&reg));
	EXPECT_EQ(csum, reg);
}

TEST_F(stream, saving_leaves_source_unchanged)
{
	enum vmig_dev_state st;
	uint64_t size;
	uint32_t csum, v;
	struct migsim_end *end;
	int i;

	end = (struct migsim_end *)(self->b.data + self->b.len -
				    sizeof(*end));
	ASSERT_EQ(0, migsim_get_state(&self->in, &st));
	EXPECT_EQ(VMIG_STATE_RUNNING, st);
	ASSERT_EQ(0, migsim_state_size(self->in.uuid, &size));
	EXPECT_EQ(STATE_SIZE, size);
	ASSERT_EQ(0, migsim_checksum(self->in.uuid, &csum));
	EXPECT_EQ(le32toh(end->state_checksum), csum);
	for (i = 0; i < MIGSIM_NR_SCRATCH; i++) {
		ASSERT_EQ(0, migsim_bar0_read32(self->in.fd,
				MIGSIM_REG_SCRATCH0 + 4 * i, &v));
		EXPECT_EQ(self->scratch[i], v);
	}
}

TEST_F(stream, precopy_stream_flags_precopy)
{
	struct migsim_buf b = { 0 };
	struct migsim_stream_header *h;
	int fd = -1;

	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(-ENOMSG, migsim_read_stream(fd, 64 * KiB, &b));
	ASSERT_LE(HDR_LEN, b.len);
	h = (struct migsim_stream_header *)b.data;
	EXPECT_EQ(MIGSIM_STREAM_MAGIC, le32toh(h->magic));
	EXPECT_TRUE(le32toh(h->flags) & MIGSIM_STREAM_F_PRECOPY);
	close(fd);
	migsim_buf_free(&b);
}

TEST_F(stream, precopy_then_stop_copy_is_one_stream)
{
	struct migsim_buf b = { 0 };
	struct migsim_record *r;
	size_t off = HDR_LEN;
	uint32_t seq = 0;
	int fd = -1;

	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(-ENOMSG, migsim_read_stream(fd, 64 * KiB, &b));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, migsim_read_stream(fd, 64 * KiB, &b));
	close(fd);
	while ((r = migsim_next_record(&b, &off))) {
		EXPECT_EQ(seq, le32toh(r->seq));
		seq++;
	}
	EXPECT_EQ(b.len, off);
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING, NULL));
	migsim_buf_free(&b);
}

TEST_HARNESS_MAIN

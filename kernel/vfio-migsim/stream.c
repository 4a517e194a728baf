// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-migsim: the migration stream format, emitted and parsed.
 *
 * The format is defined in include/uapi/linux/vfio_migsim.h and described in
 * Documentation/stream-format.rst.  The emitter lives in mig.c, which walks
 * the device's chunks; this file builds the framing and parses a stream
 * written to a RESUMING data fd, into a staging store that replaces the
 * device's state only when the whole stream has been checked.
 */
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include "migsim.h"

#define MIGSIM_HDR_CRC_LEN offsetof(struct migsim_stream_header, header_crc)
#define MIGSIM_REC_CRC_LEN offsetof(struct migsim_record, record_crc)

static u32 migsim_crc_final(const void *buf, size_t len)
{
	return migsim_crc(~0U, buf, len) ^ ~0U;
}

void migsim_stream_header(struct migsim_dev *mdev,
			  struct migsim_stream_header *hdr, u32 flags)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = cpu_to_le32(MIGSIM_STREAM_MAGIC);
	hdr->version = cpu_to_le16(MIGSIM_STREAM_VERSION);
	hdr->header_len = cpu_to_le16(sizeof(*hdr));
	strscpy_pad(hdr->model, MIGSIM_MODEL, sizeof(hdr->model));
	hdr->state_size = cpu_to_le64(mdev->store->size);
	hdr->chunk_size = cpu_to_le32(mdev->store->chunk_size);
	hdr->flags = cpu_to_le32(flags);
	hdr->format = cpu_to_le32(mdev->format);
	hdr->features = cpu_to_le32(mdev->features);
	hdr->nonprecopy_size = cpu_to_le64(mdev->nonprecopy_size);
	hdr->header_crc = cpu_to_le32(migsim_crc_final(hdr,
						       MIGSIM_HDR_CRC_LEN));
}

void migsim_stream_record(struct migsim_record *rec, u32 type, u64 offset,
			  u32 len, u32 payload_crc, u32 seq)
{
	rec->type = cpu_to_le32(type);
	rec->flags = 0;
	rec->offset = cpu_to_le64(offset);
	rec->length = cpu_to_le32(len);
	rec->payload_crc = cpu_to_le32(payload_crc);
	rec->seq = cpu_to_le32(seq);
	rec->record_crc = cpu_to_le32(migsim_crc_final(rec,
						       MIGSIM_REC_CRC_LEN));
}

int migsim_parser_init(struct migsim_parser *p, u32 chunk_size)
{
	memset(p, 0, sizeof(*p));
	p->phase = MIGSIM_PARSE_HEADER;
	p->staged = migsim_store_alloc(chunk_size, 0);
	return p->staged ? 0 : -ENOMEM;
}

void migsim_parser_destroy(struct migsim_parser *p)
{
	migsim_store_free(p->staged);
	p->staged = NULL;
}

static __printf(3, 4)
int migsim_parse_fail(struct migsim_parser *p, int err, const char *fmt, ...)
{
	va_list args;
	int n;

	n = scnprintf(p->why, sizeof(p->why), "stream byte %llu: ", p->pos);
	va_start(args, fmt);
	vscnprintf(p->why + n, sizeof(p->why) - n, fmt, args);
	va_end(args);
	p->error = err;
	return err;
}

static int migsim_check_size(struct migsim_parser *p, u64 size)
{
	if (size > migsim_max_state_size)
		return migsim_parse_fail(p, -MIGSIM_ERR_OVERSIZED,
					 "state size %llu over the limit %lu",
					 size, migsim_max_state_size);
	if (size < PAGE_SIZE || size % PAGE_SIZE)
		return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
					 "state size %llu is not a whole number of 4 KiB pages",
					 size);
	return 0;
}

static int migsim_check_header(struct migsim_parser *p,
			       struct migsim_dev *mdev)
{
	struct migsim_stream_header *h = &p->frame.hdr;
	u64 size = le64_to_cpu(h->state_size);
	u32 chunk = le32_to_cpu(h->chunk_size);
	int ret;

	if (le32_to_cpu(h->magic) != MIGSIM_STREAM_MAGIC)
		return migsim_parse_fail(p, -MIGSIM_ERR_PROTO,
					 "bad magic 0x%08x",
					 le32_to_cpu(h->magic));
	if (le32_to_cpu(h->header_crc) !=
	    migsim_crc_final(h, MIGSIM_HDR_CRC_LEN))
		return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
					 "header CRC mismatch");
	if (le16_to_cpu(h->version) != MIGSIM_STREAM_VERSION ||
	    le16_to_cpu(h->header_len) != sizeof(*h))
		return migsim_parse_fail(p, -MIGSIM_ERR_PROTO,
					 "format version %u (header %u bytes) not supported",
					 le16_to_cpu(h->version),
					 le16_to_cpu(h->header_len));
	if (strncmp(h->model, MIGSIM_MODEL, sizeof(h->model)))
		return migsim_parse_fail(p, -MIGSIM_ERR_MODEL,
					 "device model \"%.*s\" is not \"%s\"",
					 (int)sizeof(h->model), h->model,
					 MIGSIM_MODEL);
	if (chunk != mdev->store->chunk_size)
		return migsim_parse_fail(p, -MIGSIM_ERR_MODEL,
					 "stream chunk_size %u, this instance was created with %u",
					 chunk, mdev->store->chunk_size);
	if (le32_to_cpu(h->format) != mdev->format)
		return migsim_parse_fail(p, -MIGSIM_ERR_MODEL,
					 "stream format %u, this instance was created with format %u",
					 le32_to_cpu(h->format), mdev->format);
	if (le32_to_cpu(h->features) != mdev->features)
		return migsim_parse_fail(p, -MIGSIM_ERR_MODEL,
					 "stream features 0x%x, this instance was created with 0x%x",
					 le32_to_cpu(h->features), mdev->features);
	ret = migsim_check_size(p, size);
	if (ret)
		return ret;
	p->hdr = *h;
	p->staged->size = size;
	p->format = mdev->format;
	p->config_len = migsim_config_len(mdev);
	return 0;
}

/* A record header is complete: check it and aim the payload. */
static int migsim_check_record(struct migsim_parser *p)
{
	struct migsim_record *r = &p->frame.rec;
	u32 type = le32_to_cpu(r->type);
	u32 len = le32_to_cpu(r->length);
	u64 off = le64_to_cpu(r->offset);
	struct migsim_store *st = p->staged;
	struct migsim_chunk *c;

	if (le32_to_cpu(r->record_crc) !=
	    migsim_crc_final(r, MIGSIM_REC_CRC_LEN))
		return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
					 "record %u: CRC mismatch", p->seq);
	if (le32_to_cpu(r->seq) != p->seq || r->flags)
		return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
					 "record %u: seq %u flags 0x%x",
					 p->seq, le32_to_cpu(r->seq),
					 le32_to_cpu(r->flags));
	p->rec = *r;
	p->dst_pos = 0;
	p->dst_crc = ~0U;
	if (type == MIGSIM_REC_CHUNK && p->format >= 2) {
		__le64 o = r->offset;

		/* format 2: the CRC covers the offset, then the payload */
		p->dst_crc = migsim_crc(~0U, &o, sizeof(o));
	}

	switch (type) {
	case MIGSIM_REC_CHUNK:
		if (off >= st->size)
			return migsim_parse_fail(p, -MIGSIM_ERR_OVERSIZED,
						 "record %u: chunk at %llu past the state size %llu",
						 p->seq, off, st->size);
		if (off % st->chunk_size ||
		    len != migsim_chunk_len(st->size, st->chunk_size,
					    off / st->chunk_size))
			return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
						 "record %u: chunk at %llu has length %u",
						 p->seq, off, len);
		c = migsim_store_stage(st, off / st->chunk_size, len);
		if (!c)
			return migsim_parse_fail(p, -ENOMEM,
						 "out of memory staging chunk at %llu",
						 off);
		p->dst = c->data;
		break;
	case MIGSIM_REC_CONFIG:
		if (len != p->config_len || off)
			return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
						 "record %u: config record of %u bytes, not %u",
						 p->seq, len, p->config_len);
		p->dst = p->config;
		break;
	case MIGSIM_REC_RESIZE:
		if (len)
			return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
						 "record %u: resize record with a payload",
						 p->seq);
		if (migsim_check_size(p, off))
			return p->error;
		p->dst = NULL;
		break;
	case MIGSIM_REC_END:
		if (len != sizeof(p->end) || off)
			return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
						 "record %u: end record of %u bytes",
						 p->seq, len);
		p->dst = &p->end;
		break;
	default:
		return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
					 "record %u: unknown type %u",
					 p->seq, type);
	}
	p->phase = MIGSIM_PARSE_PAYLOAD;
	return 0;
}

/* A payload is complete: check its CRC and account for it. */
static int migsim_finish_payload(struct migsim_parser *p)
{
	struct migsim_record *r = &p->rec;
	u32 type = le32_to_cpu(r->type);

	if ((p->dst_crc ^ ~0U) != le32_to_cpu(r->payload_crc))
		return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
					 "record %u (type %u at %llu): payload CRC mismatch",
					 p->seq, type, le64_to_cpu(r->offset));
	p->seq++;
	p->phase = MIGSIM_PARSE_RECORD;

	switch (type) {
	case MIGSIM_REC_CHUNK: {
		struct migsim_chunk *c;

		u64 off = le64_to_cpu(r->offset);
		u32 len = le32_to_cpu(r->length);

		c = migsim_store_chunk(p->staged, off / p->staged->chunk_size);
		/* the chunk's own CRC, whatever the format covers */
		c->crc = migsim_crc_format(p->format, off, len,
					   le32_to_cpu(r->payload_crc));
		c->crc_valid = true;
		p->payload_bytes += le32_to_cpu(r->length);
		break;
	}
	case MIGSIM_REC_CONFIG:
		p->have_config = true;
		break;
	case MIGSIM_REC_RESIZE:
		migsim_store_truncate(p->staged, le64_to_cpu(r->offset));
		break;
	case MIGSIM_REC_END:
		if (le64_to_cpu(p->end.records) != p->seq - 1 ||
		    le64_to_cpu(p->end.state_size) != p->staged->size ||
		    le64_to_cpu(p->end.payload_bytes) != p->payload_bytes)
			return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
						 "end record disagrees with the stream (records %llu/%u, size %llu/%llu, bytes %llu/%llu)",
						 le64_to_cpu(p->end.records),
						 p->seq - 1,
						 le64_to_cpu(p->end.state_size),
						 p->staged->size,
						 le64_to_cpu(p->end.payload_bytes),
						 p->payload_bytes);
		p->phase = MIGSIM_PARSE_DONE;
		break;
	}
	return 0;
}

/*
 * Consume up to len bytes of stream from user memory.  Returns the number of
 * bytes consumed (short only when a user copy faults after progress) or a
 * negative errno; a stream error is sticky.
 */
ssize_t migsim_parse(struct migsim_parser *p, struct migsim_dev *mdev,
		     const char __user *buf, size_t len)
{
	size_t done = 0;
	int ret;

	if (p->error)
		return p->error;

	while (done < len) {
		size_t want, n;

		switch (p->phase) {
		case MIGSIM_PARSE_HEADER:
		case MIGSIM_PARSE_RECORD:
			want = p->phase == MIGSIM_PARSE_HEADER ?
			       sizeof(struct migsim_stream_header) :
			       sizeof(struct migsim_record);
			n = min_t(size_t, want - p->frame_pos, len - done);
			if (copy_from_user(p->frame.raw + p->frame_pos,
					   buf + done, n))
				return done ? done : -EFAULT;
			p->frame_pos += n;
			done += n;
			p->pos += n;
			if (p->frame_pos < want)
				break;
			p->frame_pos = 0;
			if (p->phase == MIGSIM_PARSE_HEADER) {
				ret = migsim_check_header(p, mdev);
				p->phase = MIGSIM_PARSE_RECORD;
			} else {
				ret = migsim_check_record(p);
			}
			if (ret)
				return ret;
			if (p->phase == MIGSIM_PARSE_PAYLOAD &&
			    !le32_to_cpu(p->rec.length)) {
				ret = migsim_finish_payload(p);
				if (ret)
					return ret;
			}
			break;
		case MIGSIM_PARSE_PAYLOAD:
			n = min_t(size_t, le32_to_cpu(p->rec.length) -
				  p->dst_pos, len - done);
			if (copy_from_user(p->dst + p->dst_pos, buf + done, n))
				return done ? done : -EFAULT;
			p->dst_crc = migsim_crc(p->dst_crc, p->dst + p->dst_pos,
						n);
			p->dst_pos += n;
			done += n;
			p->pos += n;
			if (p->dst_pos == le32_to_cpu(p->rec.length)) {
				ret = migsim_finish_payload(p);
				if (ret)
					return ret;
			}
			break;
		case MIGSIM_PARSE_DONE:
			return migsim_parse_fail(p, -MIGSIM_ERR_OVERSIZED,
						 "data after the end record");
		}
		if (done < len)
			cond_resched();
	}
	return done;
}

/*
 * The stream has been written whole: check that it is complete and that
 * the state it describes matches the source's checksum.  On success
 * p->staged holds the new state.
 */
int migsim_parse_finish(struct migsim_parser *p)
{
	unsigned long missing;
	u32 sum;

	if (p->error)
		return p->error;
	if (p->phase != MIGSIM_PARSE_DONE)
		return migsim_parse_fail(p, -MIGSIM_ERR_TRUNCATED,
					 "stream ended before its end record (%u records)",
					 p->seq);
	if (!p->have_config)
		return migsim_parse_fail(p, -MIGSIM_ERR_TRUNCATED,
					 "stream has no config record");
	if (!migsim_store_complete(p->staged, &missing))
		return migsim_parse_fail(p, -MIGSIM_ERR_TRUNCATED,
					 "chunk %lu of the state was never sent",
					 missing);
	sum = migsim_store_checksum(p->staged);
	if (sum != le32_to_cpu(p->end.state_checksum))
		return migsim_parse_fail(p, -MIGSIM_ERR_CORRUPT,
					 "state checksum 0x%08x, source had 0x%08x",
					 sum, le32_to_cpu(p->end.state_checksum));
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-migsim: the chunk store that holds a device's state.
 *
 * The state is `size` bytes cut into chunks of `chunk_size` bytes (the last
 * one may be shorter), kept in an xarray indexed by chunk number.  Initial
 * content is a pure function of the instance seed and the byte offset, so a
 * restored device can be checked byte for byte.  Each chunk caches the
 * CRC32C of its content; the state checksum is the CRC32C of the size and
 * the chunk CRCs (see include/uapi/linux/vfio_migsim.h).
 *
 * The store has no lock of its own: its owner serialises access (see the
 * locking comment in migsim.h).
 */
#include <linux/crc32.h>
#include <linux/crc32c.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/xarray.h>
#include "migsim.h"

u32 migsim_crc(u32 crc, const void *buf, size_t len)
{
	return crc32c(crc, buf, len);
}

/*
 * The CRC a CHUNK record carries for a payload whose own CRC is payload_crc:
 * format 1, that CRC; format 2, the CRC of the offset (__le64) followed by
 * the payload.  CRC32C is linear, so the offset's CRC, shifted past the
 * payload, is all that changes it; no pass over the payload is needed.
 * The same function turns one into the other both ways.
 */
u32 migsim_crc_format(u32 format, u64 offset, u32 len, u32 payload_crc)
{
	__le64 off = cpu_to_le64(offset);
	u32 head;

	if (format < 2)
		return payload_crc;
	head = migsim_crc(~0U, &off, sizeof(off)) ^ ~0U;
	return payload_crc ^ __crc32c_le_shift(head, len);
}

static u64 migsim_mix(u64 x)
{
	/* splitmix64 finaliser: cheap and well distributed */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fill buf with the initial content of the state at byte offset off. */
void migsim_fill(void *buf, u32 len, u64 seed, u64 off)
{
	__le64 *p = buf;
	u64 word = off / sizeof(u64);
	u32 i;

	for (i = 0; i < len / sizeof(u64); i++)
		p[i] = cpu_to_le64(migsim_mix(seed ^ (word + i)));
}

struct migsim_store *migsim_store_alloc(u32 chunk_size, u64 seed)
{
	struct migsim_store *st = kzalloc(sizeof(*st), GFP_KERNEL_ACCOUNT);

	if (!st)
		return NULL;
	xa_init(&st->chunks);
	st->chunk_size = chunk_size;
	st->seed = seed;
	return st;
}

static void migsim_chunk_free(struct migsim_chunk *c)
{
	if (!c)
		return;
	kvfree(c->data);
	kfree(c);
}

static struct migsim_chunk *migsim_chunk_alloc(u32 len, u32 alloc_len)
{
	struct migsim_chunk *c;

	c = kzalloc(sizeof(*c), GFP_KERNEL_ACCOUNT);
	if (!c)
		return NULL;
	c->data = kvmalloc(alloc_len, GFP_KERNEL_ACCOUNT);
	if (!c->data) {
		kfree(c);
		return NULL;
	}
	c->len = len;
	return c;
}

struct migsim_chunk *migsim_store_chunk(struct migsim_store *st,
					unsigned long idx)
{
	return xa_load(&st->chunks, idx);
}

/*
 * Grow or shrink the state.  Growing fills the new bytes with their initial
 * content; shrinking frees whole chunks past the end.  Every chunk is
 * allocated at the full chunk size so that a partial last chunk can grow in
 * place.  On failure the store is left at its old size.
 */
int migsim_store_resize(struct migsim_store *st, u64 new_size)
{
	unsigned long old_n = migsim_nr_chunks(st->size, st->chunk_size);
	unsigned long new_n = migsim_nr_chunks(new_size, st->chunk_size);
	struct migsim_chunk *c;
	unsigned long i;
	int ret;

	if (new_size < st->size) {
		for (i = new_n; i < old_n; i++)
			migsim_chunk_free(xa_erase(&st->chunks, i));
		if (new_n) {
			c = xa_load(&st->chunks, new_n - 1);
			c->len = migsim_chunk_len(new_size, st->chunk_size,
						  new_n - 1);
			c->crc_valid = false;
		}
		st->size = new_size;
		return 0;
	}

	/* extend a partial last chunk in place */
	if (old_n && (st->size % st->chunk_size)) {
		u32 old_len, len;

		c = xa_load(&st->chunks, old_n - 1);
		old_len = c->len;
		len = migsim_chunk_len(new_size, st->chunk_size, old_n - 1);
		migsim_fill(c->data + old_len, len - old_len, st->seed,
			    (u64)(old_n - 1) * st->chunk_size + old_len);
		c->len = len;
		c->crc_valid = false;
		migsim_chunk_crc(c);
	}

	for (i = old_n; i < new_n; i++) {
		u32 len = migsim_chunk_len(new_size, st->chunk_size, i);

		c = migsim_chunk_alloc(len, st->chunk_size);
		if (!c) {
			ret = -ENOMEM;
			goto undo;
		}
		migsim_fill(c->data, len, st->seed, (u64)i * st->chunk_size);
		migsim_chunk_crc(c);
		ret = xa_err(xa_store(&st->chunks, i, c, GFP_KERNEL_ACCOUNT));
		if (ret) {
			migsim_chunk_free(c);
			goto undo;
		}
		cond_resched();
	}
	st->size = new_size;
	return 0;

undo:
	while (i-- > old_n)
		migsim_chunk_free(xa_erase(&st->chunks, i));
	if (old_n && (st->size % st->chunk_size)) {
		c = xa_load(&st->chunks, old_n - 1);
		c->len = migsim_chunk_len(st->size, st->chunk_size, old_n - 1);
		c->crc_valid = false;
	}
	return ret;
}

void migsim_store_free(struct migsim_store *st)
{
	struct migsim_chunk *c;
	unsigned long i;

	if (!st)
		return;
	xa_for_each(&st->chunks, i, c)
		migsim_chunk_free(c);
	xa_destroy(&st->chunks);
	kfree(st);
}

/*
 * Staging (RESUMING): return chunk idx of a store that is being filled from
 * a stream, allocating it (content undefined) on first use.
 */
struct migsim_chunk *migsim_store_stage(struct migsim_store *st,
					unsigned long idx, u32 len)
{
	struct migsim_chunk *c = xa_load(&st->chunks, idx);

	if (c) {
		c->len = len;
		c->crc_valid = false;
		return c;
	}
	c = migsim_chunk_alloc(len, st->chunk_size);
	if (!c)
		return NULL;
	if (xa_err(xa_store(&st->chunks, idx, c, GFP_KERNEL_ACCOUNT))) {
		migsim_chunk_free(c);
		return NULL;
	}
	return c;
}

/*
 * Staging: the state now has size bytes.  Chunks past the end go; a chunk
 * cut short keeps its prefix.  A chunk that grows keeps its old length, so
 * it counts as missing until the stream sends it again.
 */
void migsim_store_truncate(struct migsim_store *st, u64 size)
{
	unsigned long n = migsim_nr_chunks(size, st->chunk_size);
	struct migsim_chunk *c;
	unsigned long i;
	u32 len;

	xa_for_each_start(&st->chunks, i, c, n)
		migsim_chunk_free(xa_erase(&st->chunks, i));
	c = n ? xa_load(&st->chunks, n - 1) : NULL;
	len = n ? migsim_chunk_len(size, st->chunk_size, n - 1) : 0;
	if (c && c->len > len) {
		c->len = len;
		c->crc_valid = false;
	}
	st->size = size;
}

/*
 * A new store with the same size, seed and content as st, cut into chunks
 * of chunk_size bytes; st is left as it was.
 */
struct migsim_store *migsim_store_rechunk(struct migsim_store *st,
					  u32 chunk_size)
{
	unsigned long n = migsim_nr_chunks(st->size, chunk_size);
	struct migsim_store *ns = migsim_store_alloc(chunk_size, st->seed);
	struct migsim_chunk *c;
	unsigned long i;
	u64 off, done;

	if (!ns)
		return NULL;
	for (i = 0; i < n; i++) {
		u32 len = migsim_chunk_len(st->size, chunk_size, i);

		c = migsim_store_stage(ns, i, len);
		if (!c) {
			migsim_store_free(ns);
			return NULL;
		}
		/* copy from the old chunks that overlap this one */
		for (done = 0; done < len; ) {
			struct migsim_chunk *o;
			u32 in, n_copy;

			off = (u64)i * chunk_size + done;
			o = xa_load(&st->chunks, off / st->chunk_size);
			in = off % st->chunk_size;
			n_copy = min_t(u64, len - done, o->len - in);
			memcpy(c->data + done, o->data + in, n_copy);
			done += n_copy;
		}
		migsim_chunk_crc(c);
		cond_resched();
	}
	ns->size = st->size;
	return ns;
}

/* Does the staged store hold every chunk of its size, and no other? */
bool migsim_store_complete(struct migsim_store *st, unsigned long *missing)
{
	unsigned long n = migsim_nr_chunks(st->size, st->chunk_size);
	struct migsim_chunk *c;
	unsigned long i;

	for (i = 0; i < n; i++) {
		c = xa_load(&st->chunks, i);
		if (!c || c->len != migsim_chunk_len(st->size,
						     st->chunk_size, i)) {
			*missing = i;
			return false;
		}
	}
	xa_for_each_start(&st->chunks, i, c, n)
		migsim_chunk_free(xa_erase(&st->chunks, i));
	return true;
}

/*
 * Overwrite len bytes at off inside chunk c with src, keeping the chunk's
 * CRC current without reading the rest of the chunk: CRC32C is linear, so
 * the CRC of the change (old ^ new), shifted past the bytes after it, is
 * what the CRC changes by.  tmp is a caller buffer of len bytes.
 */
void migsim_chunk_write(struct migsim_chunk *c, u32 off, const void *src,
			u32 len, void *tmp)
{
	const u8 *s = src;
	u8 *d = c->data + off, *x = tmp;
	u32 i, delta;

	if (!c->crc_valid) {
		memcpy(d, src, len);
		return;
	}
	for (i = 0; i < len; i++)
		x[i] = d[i] ^ s[i];
	/* the raw CRC (no pre or post inversion) of the change */
	delta = migsim_crc(0, x, len);
	c->crc ^= __crc32c_le_shift(delta, c->len - off - len);
	memcpy(d, src, len);
}

u32 migsim_chunk_crc(struct migsim_chunk *c)
{
	if (!c->crc_valid) {
		c->crc = migsim_crc(~0U, c->data, c->len) ^ ~0U;
		c->crc_valid = true;
	}
	return c->crc;
}

u32 migsim_store_checksum(struct migsim_store *st)
{
	unsigned long n = migsim_nr_chunks(st->size, st->chunk_size);
	__le64 size = cpu_to_le64(st->size);
	u32 crc = migsim_crc(~0U, &size, sizeof(size));
	unsigned long i;

	for (i = 0; i < n; i++) {
		__le32 v = cpu_to_le32(migsim_chunk_crc(xa_load(&st->chunks,
								 i)));

		crc = migsim_crc(crc, &v, sizeof(v));
		if (!(i % 64))
			cond_resched();
	}
	return crc ^ ~0U;
}

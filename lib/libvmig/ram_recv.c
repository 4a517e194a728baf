// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Guest RAM precopy, destination side: placing the pages of RAM packets.
 *
 * Packets may come over several channels, so two copies of a page can
 * arrive out of order.  Every page remembers the seq of the packet its
 * copy came in (a 64-bit stamp per page, allocated as pages arrive); an
 * older copy is dropped.  A thread that writes a page first claims it:
 * one compare-and-exchange sets the stamp to its seq with DEST_BUSY, and
 * clearing DEST_BUSY afterwards releases the page.  So packets can be
 * applied from any thread, and a page is never written by two at once.
 *
 * A receiving channel (ram_dest_recv()) reads a packet's entries first,
 * claims the pages it can, and has the kernel copy their data straight
 * into guest RAM: one copy, as in a plain receive.  Only pages already
 * held by a newer copy, or being written by another thread, go through
 * the channel's buffer.  The CRC is checked when the packet is in; a bad
 * one fails the migration, and the destination is not run then.
 */
#include <endian.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ram_xfer.h"
#include "transport.h"


VMIG_EXPORT int vmig_ram_dest_new(const struct vmig_ram_region *regions,
				  unsigned int nr, struct vmig_ram_dest **out)
{
	struct vmig_ram_dest *d;
	unsigned int i;

	if (!regions || !nr || !out)
		return -EINVAL;
	for (i = 0; i < nr; i++)
		if (!regions[i].host_addr || !regions[i].size ||
		    (uintptr_t)regions[i].host_addr % RAM_PAGE_SIZE ||
		    regions[i].size % RAM_PAGE_SIZE)
			return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->regions = calloc(nr, sizeof(*d->regions));
	if (!d->regions) {
		free(d);
		return -ENOMEM;
	}
	d->nr_regions = nr;
	for (i = 0; i < nr; i++) {
		d->regions[i].r = regions[i];
		d->regions[i].first = d->total_pages;
		d->regions[i].pages = regions[i].size / RAM_PAGE_SIZE;
		d->total_pages += d->regions[i].pages;
	}
	d->stamp = mmap(NULL, d->total_pages * 8, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (d->stamp == MAP_FAILED) {
		free(d->regions);
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_init(&d->lock, NULL);
	*out = d;
	return 0;
}

uint64_t ram_dest_pages(const struct vmig_ram_dest *d)
{
	return d->total_pages;
}

VMIG_EXPORT void vmig_ram_dest_free(struct vmig_ram_dest *d)
{
	if (!d)
		return;
	munmap((void *)d->stamp, d->total_pages * 8);
	pthread_mutex_destroy(&d->lock);
	free(d->sink_buf);
	free(d->regions);
	free(d);
}

void *ram_dest_page(struct vmig_ram_dest *d, uint64_t g, unsigned int *reg)
{
	unsigned int r = *reg;

	if (g < d->regions[r].first ||
	    g >= d->regions[r].first + d->regions[r].pages) {
		unsigned int lo = 0, hi = d->nr_regions;

		while (hi - lo > 1) {
			unsigned int mid = (lo + hi) / 2;

			if (d->regions[mid].first <= g)
				lo = mid;
			else
				hi = mid;
		}
		r = lo;
		*reg = r;
	}
	return (char *)d->regions[r].r.host_addr +
	       (g - d->regions[r].first) * RAM_PAGE_SIZE;
}

/*
 * Check the nr entries at ent for RAM of total_pages pages, against the
 * payload length len: 0, or -EPROTO with *why set.
 */
static int check_entries(const uint8_t *ent, unsigned int nr, uint32_t len,
			 uint64_t total_pages, const char **why)
{
	unsigned int i, nz = 0;
	uint64_t e;

	for (i = 0; i < nr; i++) {
		memcpy(&e, ent + (size_t)i * 8, 8);
		e = le64toh(e);
		if ((e & ((1ULL << RAM_ENT_SHIFT) - 1) & ~RAM_ENT_ZERO) ||
		    (e >> RAM_ENT_SHIFT) >= total_pages) {
			*why = "bad page entry in a RAM packet";
			return -EPROTO;
		}
		nz += !(e & RAM_ENT_ZERO);
	}
	if (len != nr * 8 + (uint64_t)nz * RAM_PAGE_SIZE) {
		*why = "RAM packet length does not match its entries";
		return -EPROTO;
	}
	return 0;
}

/* The CRC of a header as sent: its CRC field taken as 0. */
static uint32_t hdr_crc(const uint8_t *b)
{
	uint8_t tmp[RAM_PKT_HDR_LEN];

	memcpy(tmp, b, RAM_PKT_HDR_LEN);
	memset(tmp + 28, 0, 4);
	return vmig_crc32c(0, tmp, sizeof(tmp));
}

int ram_pkt_check(const void *pkt, size_t len, uint64_t total_pages,
		  struct ram_pkt_hdr *h, const char **why)
{
	const uint8_t *b = pkt;
	int ret;

	if (len < RAM_PKT_HDR_LEN) {
		*why = "RAM packet shorter than its header";
		return -EPROTO;
	}
	ret = ram_pkt_decode(pkt, h, why);
	if (ret)
		return ret;
	if (len != RAM_PKT_HDR_LEN + (size_t)h->len) {
		*why = "RAM packet length does not match its header";
		return -EPROTO;
	}
	if (vmig_crc32c(hdr_crc(b), b + RAM_PKT_HDR_LEN, h->len) != h->crc) {
		*why = "bad CRC on a RAM packet";
		return -EBADMSG;
	}
	/* Check every entry before anything is placed. */
	return check_entries(b + RAM_PKT_HDR_LEN, h->nr, h->len, total_pages,
			     why);
}

/* ------------------------------------------------------ claiming pages */

enum claim {
	CLAIMED,			/* the caller writes the page */
	STALE,				/* it holds this copy or a newer one */
	BUSY,				/* another thread is writing it */
};

/* *prev: the stamp before (a claim may have to be undone). */
static enum claim claim_try(struct vmig_ram_dest *d, uint64_t g,
			    uint64_t seq, uint64_t *prev)
{
	uint64_t old = atomic_load_explicit(&d->stamp[g],
					    memory_order_acquire);

	for (;;) {
		*prev = old;
		if ((old & ~DEST_BUSY) >= seq)
			return STALE;
		if (old & DEST_BUSY)
			return BUSY;
		if (atomic_compare_exchange_weak_explicit(&d->stamp[g], &old,
							  seq | DEST_BUSY,
							  memory_order_acquire,
							  memory_order_acquire))
			return CLAIMED;
	}
}

/*
 * Claim page g for seq, waiting while another thread writes it (that
 * thread holds no claim it waits for, so this ends): CLAIMED or STALE.
 */
static enum claim claim_wait(struct vmig_ram_dest *d, uint64_t g,
			     uint64_t seq)
{
	struct timespec ts = { .tv_nsec = 20000 };
	unsigned int spins = 0;
	uint64_t prev;
	enum claim c;

	while ((c = claim_try(d, g, seq, &prev)) == BUSY) {
		if (++spins < 16)
			sched_yield();
		else
			nanosleep(&ts, NULL);
	}
	return c;
}

static void release(struct vmig_ram_dest *d, uint64_t g, uint64_t stamp)
{
	atomic_store_explicit(&d->stamp[g], stamp, memory_order_release);
}

/* Write a claimed page: data, or zeros (not written if already zero). */
static void put_page(void *dst, const void *data)
{
	if (data)
		memcpy(dst, data, RAM_PAGE_SIZE);
	else if (!ram_page_is_zero(dst))
		memset(dst, 0, RAM_PAGE_SIZE);
}

/*
 * Place a copy of page g from packet seq (data, or NULL for zeros),
 * waiting while another thread writes the page: false if the page holds
 * this copy or a newer one.
 */
static bool place(struct vmig_ram_dest *d, uint64_t g, uint64_t seq,
		  const void *data, unsigned int *reg)
{
	if (claim_wait(d, g, seq) == STALE)
		return false;
	put_page(ram_dest_page(d, g, reg), data);
	release(d, g, seq);
	return true;
}

static void add_stats(struct vmig_ram_dest *d, unsigned int nr,
		      uint64_t zeros, uint64_t stale, size_t len)
{
	pthread_mutex_lock(&d->lock);
	d->st.packets++;
	d->st.pages += nr;
	d->st.zero_pages += zeros;
	d->st.stale += stale;
	d->st.bytes += len;
	pthread_mutex_unlock(&d->lock);
}

VMIG_EXPORT int vmig_ram_dest_feed(struct vmig_ram_dest *d, const void *pkt,
				   size_t len)
{
	const uint8_t *data;
	uint64_t stale = 0, zeros = 0;
	struct ram_pkt_hdr h = { 0 };
	unsigned int i, reg = 0;
	const char *why;
	int ret;

	if (!d || !pkt)
		return -EINVAL;
	ret = ram_pkt_check(pkt, len, d->total_pages, &h, &why);
	if (ret) {
		vmig_err("ram dest: RAM packet %llu: %s",
			 (unsigned long long)h.seq, why);
		return ret;
	}
	if (h.flags & RAM_PKT_F_END)
		return 0;
	data = (const uint8_t *)pkt + RAM_PKT_HDR_LEN + h.nr * 8;
	for (i = 0; i < h.nr; i++) {
		uint64_t e = ram_pkt_entry(pkt, i);
		uint64_t g = e >> RAM_ENT_SHIFT;
		bool zero = e & RAM_ENT_ZERO;

		if (!place(d, g, h.seq, zero ? NULL : data, &reg))
			stale++;
		zeros += zero;
		if (!zero)
			data += RAM_PAGE_SIZE;
	}
	add_stats(d, h.nr, zeros, stale, len);
	return 0;
}

/* ------------------------------------------- receiving into guest RAM */

/* The fate of a packet's entry in ram_dest_recv(). */
struct recv_ent {
	uint64_t g;
	uint64_t old;			/* the stamp before a claim */
	uint8_t *where;			/* the data's place: page or buf */
	enum claim c;
	bool zero;
};

int ram_dest_recv(struct vmig_ram_dest *d, struct vmig_uio *io, int fd,
		  uint8_t *buf, const char **why)
{
	struct recv_ent ents[RAM_MAX_BATCH];
	struct iovec iov[RAM_MAX_BATCH];
	const void *data[RAM_MAX_BATCH];
	uint8_t *scratch, *ent = buf + RAM_PKT_HDR_LEN;
	uint64_t stale = 0, zeros = 0, nz = 0;
	unsigned int i, cnt = 0, reg = 0;
	struct ram_pkt_hdr h;
	uint32_t crc;
	ssize_t n;
	int ret;

	n = vmig_uio_recv(io, fd, buf, RAM_PKT_HDR_LEN);
	if (n != RAM_PKT_HDR_LEN) {
		*why = "channel ended before its END";
		return n < 0 ? (int)n : -ECONNRESET;
	}
	ret = ram_pkt_decode(buf, &h, why);
	if (ret)
		return ret;
	if (h.flags & RAM_PKT_F_END) {
		if (h.len && vmig_uio_recv(io, fd, ent, h.len) != h.len) {
			*why = "channel ended in its END";
			return -ECONNRESET;
		}
		ret = ram_pkt_check(buf, RAM_PKT_HDR_LEN + h.len,
				    d->total_pages, &h, why);
		return ret ? ret : 1;
	}
	n = vmig_uio_recv(io, fd, ent, (size_t)h.nr * 8);
	if (n != h.nr * 8) {
		*why = "channel ended in a packet";
		return n < 0 ? (int)n : -ECONNRESET;
	}
	ret = check_entries(ent, h.nr, h.len, d->total_pages, why);
	if (ret)
		return ret;

	/* Claim what can be written in place; the rest goes to buf. */
	scratch = ent + h.nr * 8;
	for (i = 0; i < h.nr; i++) {
		uint64_t e = ram_pkt_entry(buf, i);
		struct recv_ent *r = &ents[i];

		r->g = e >> RAM_ENT_SHIFT;
		r->zero = e & RAM_ENT_ZERO;
		r->where = NULL;
		if (r->zero) {
			r->c = BUSY;	/* placed after the CRC */
			continue;
		}
		r->c = claim_try(d, r->g, h.seq, &r->old);
		nz++;
		r->where = r->c == CLAIMED ? ram_dest_page(d, r->g, &reg) :
			   scratch;
		ram_iov_add(iov, &cnt, r->where, RAM_PAGE_SIZE);
		data[nz - 1] = r->where;
		scratch += RAM_PAGE_SIZE;
	}
	n = cnt ? vmig_uio_recvv(io, fd, iov, cnt) : 0;
	if (n >= 0 && (uint64_t)n != nz * RAM_PAGE_SIZE)
		n = -ECONNRESET;
	crc = vmig_crc32c(hdr_crc(buf), ent, (size_t)h.nr * 8);
	if (n >= 0)
		crc = ram_crc_pages(crc, data, nz);
	/*
	 * A failed packet leaves its pages' data undefined, and the migration
	 * fails: the destination's RAM is not run.
	 */
	for (i = 0; i < h.nr; i++)
		if (ents[i].c == CLAIMED)
			release(d, ents[i].g, n >= 0 ? h.seq : ents[i].old);
	if (n < 0) {
		*why = "channel ended in a packet";
		return (int)n;
	}
	if (crc != h.crc) {
		*why = "bad CRC on a RAM packet";
		return -EBADMSG;
	}

	/* Zero pages, and pages another thread was writing. */
	for (i = 0; i < h.nr; i++) {
		struct recv_ent *r = &ents[i];

		zeros += r->zero;
		if (r->c == CLAIMED)
			continue;	/* in place already */
		if (r->c == STALE || !place(d, r->g, h.seq, r->where, &reg))
			stale++;
	}
	add_stats(d, h.nr, zeros, stale, RAM_PKT_HDR_LEN + (size_t)h.len);
	return 0;
}

VMIG_EXPORT void vmig_ram_dest_get_stats(struct vmig_ram_dest *d,
					 struct vmig_ram_dest_stats *st)
{
	pthread_mutex_lock(&d->lock);
	*st = d->st;
	pthread_mutex_unlock(&d->lock);
}

/* ------------------------------------------------- the in-process sink */

static int local_get_buf(void *opaque, size_t size, void **buf)
{
	struct vmig_ram_dest *d = opaque;

	if (size > RAM_MAX_PKT)
		return -EMSGSIZE;
	if (!d->sink_buf) {
		d->sink_buf = malloc(RAM_MAX_PKT);
		if (!d->sink_buf)
			return -ENOMEM;
	}
	*buf = d->sink_buf;
	return 0;
}

static int local_submit(void *opaque, void *buf, size_t len)
{
	return vmig_ram_dest_feed(opaque, buf, len);
}

static int local_finish(void *opaque)
{
	(void)opaque;
	return 0;
}

static const struct vmig_ram_sink_ops local_ops = {
	.get_buf = local_get_buf,
	.submit = local_submit,
	.finish = local_finish,
};

VMIG_EXPORT void vmig_ram_dest_sink(struct vmig_ram_dest *d,
				    struct vmig_ram_sink *sink)
{
	sink->ops = &local_ops;
	sink->opaque = d;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Guest RAM precopy, destination side: placing the pages of RAM packets.
 *
 * Packets may come over several channels, so two copies of a page can
 * arrive out of order.  Every page remembers the seq of the packet its
 * copy came in (a 64-bit stamp per page, allocated as pages arrive); an
 * older copy is dropped.  The stamp check and the copy happen under one of
 * a set of striped locks, so packets can be applied from any thread.
 */
#include <endian.h>
#include <errno.h>
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
	for (i = 0; i < DEST_STRIPES; i++)
		pthread_mutex_init(&d->stripes[i], NULL);
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
	unsigned int i;

	if (!d)
		return;
	munmap(d->stamp, d->total_pages * 8);
	for (i = 0; i < DEST_STRIPES; i++)
		pthread_mutex_destroy(&d->stripes[i]);
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

int ram_pkt_check(const void *pkt, size_t len, uint64_t total_pages,
		  struct ram_pkt_hdr *h, const char **why)
{
	const uint8_t *b = pkt;
	uint8_t tmp[RAM_PKT_HDR_LEN];
	unsigned int i, nz = 0;
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
	memcpy(tmp, b, RAM_PKT_HDR_LEN);
	memset(tmp + 28, 0, 4);
	if (vmig_crc32c(vmig_crc32c(0, tmp, sizeof(tmp)), b + RAM_PKT_HDR_LEN,
			h->len) != h->crc) {
		*why = "bad CRC on a RAM packet";
		return -EBADMSG;
	}
	/* Check every entry before anything is placed. */
	for (i = 0; i < h->nr; i++) {
		uint64_t e = ram_pkt_entry(pkt, i);

		if ((e & ((1ULL << RAM_ENT_SHIFT) - 1) & ~RAM_ENT_ZERO) ||
		    (e >> RAM_ENT_SHIFT) >= total_pages) {
			*why = "bad page entry in a RAM packet";
			return -EPROTO;
		}
		nz += !(e & RAM_ENT_ZERO);
	}
	if (h->len != h->nr * 8 + (uint64_t)nz * RAM_PAGE_SIZE) {
		*why = "RAM packet length does not match its entries";
		return -EPROTO;
	}
	return 0;
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
		pthread_mutex_t *m = &d->stripes[g % DEST_STRIPES];
		void *dst = ram_dest_page(d, g, &reg);

		pthread_mutex_lock(m);
		if (d->stamp[g] >= h.seq) {
			stale++;
		} else {
			d->stamp[g] = h.seq;
			if (!(e & RAM_ENT_ZERO))
				memcpy(dst, data, RAM_PAGE_SIZE);
			else if (!ram_page_is_zero(dst))
				memset(dst, 0, RAM_PAGE_SIZE);
		}
		pthread_mutex_unlock(m);
		if (e & RAM_ENT_ZERO)
			zeros++;
		else
			data += RAM_PAGE_SIZE;
	}
	pthread_mutex_lock(&d->lock);
	d->st.packets++;
	d->st.pages += h.nr;
	d->st.zero_pages += zeros;
	d->st.stale += stale;
	d->st.bytes += len;
	pthread_mutex_unlock(&d->lock);
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

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Guest RAM precopy, source side: the ring-first sender.
 *
 * Two page iterators feed the packets.  The background pass walks every
 * page once, from the first to the last; the dirty set (what the tracker
 * harvested, in the order it came) gives the pages written since.  Each
 * packet gives the dirty set at most batch - batch / background_share
 * slots while the pass runs, so the pass always gets its share and
 * finishes; after it, the dirty set has every slot.  A dirty page the pass
 * has not reached yet is left to it: the pass reads the page later, so it
 * sends a copy at least as new.  Nothing scans a bitmap: the pass is a
 * cursor, the dirty set a queue.
 *
 * While the guest runs, each page is copied into the packet when the
 * packet is built (so the CRC covers what is sent); a page written after
 * that is in the dirty set again.  Once the RAM no longer changes
 * (vmig_ram_precopy_stop(), or complete()), the network sink, which can
 * send pages in place, gets their addresses instead: its sender takes the
 * CRC of each page where it is and sends it from there, one copy fewer.
 * An all-zero page is sent as a marker without data.
 */
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ram_xfer.h"
#include "transport.h"

/* ------------------------------------------------------------- packets */





void ram_pkt_put_hdr(const struct ram_pkt_hdr *h, void *buf)
{
	uint8_t *b = buf;

	put32(b, RAM_PKT_MAGIC);
	put32(b + 4, h->nr);
	put64(b + 8, h->seq);
	put32(b + 16, h->flags);
	put32(b + 20, h->len);
	put32(b + 24, 0);
	put32(b + 28, 0);
}

void ram_pkt_seal(struct ram_pkt_hdr *h, void *buf)
{
	uint8_t *b = buf;

	ram_pkt_put_hdr(h, buf);
	h->crc = vmig_crc32c(0, b, RAM_PKT_HDR_LEN + (size_t)h->len);
	put32(b + 28, h->crc);
}

void ram_iov_add(struct iovec *iov, unsigned int *cnt, void *p,
		 size_t len)
{
	struct iovec *last = *cnt ? &iov[*cnt - 1] : NULL;

	if (last && (uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
		return;
	}
	iov[*cnt].iov_base = p;
	iov[*cnt].iov_len = len;
	(*cnt)++;
}

uint32_t ram_crc_pages(uint32_t crc, const void *const *pages,
		       unsigned int npages)
{
	unsigned int i, j;

	for (i = 0; i < npages; i = j) {
		for (j = i + 1; j < npages &&
		     pages[j] == (const uint8_t *)pages[j - 1] + RAM_PAGE_SIZE;
		     j++)
			;
		crc = vmig_crc32c(crc, pages[i],
				  (size_t)(j - i) * RAM_PAGE_SIZE);
	}
	return crc;
}

int ram_pkt_decode(const void *buf, struct ram_pkt_hdr *h, const char **why)
{
	const uint8_t *b = buf;

	if (get32(b) != RAM_PKT_MAGIC) {
		*why = "bad RAM packet magic";
		return -EPROTO;
	}
	h->nr = get32(b + 4);
	h->seq = get64(b + 8);
	h->flags = get32(b + 16);
	h->len = get32(b + 20);
	h->crc = get32(b + 28);
	if ((h->flags & ~RAM_PKT_F_ALL) || get32(b + 24)) {
		*why = "unknown RAM packet flags";
		return -EPROTO;
	}
	if (h->len > RAM_MAX_PAYLOAD || h->nr > RAM_MAX_BATCH) {
		*why = "RAM packet too long";
		return -EMSGSIZE;
	}
	if ((uint64_t)h->nr * 8 > h->len) {
		*why = "RAM packet shorter than its entries";
		return -EPROTO;
	}
	if ((h->flags & RAM_PKT_F_END) ? h->nr != 0 : !h->nr || !h->seq) {
		*why = "RAM packet without pages, or END with pages";
		return -EPROTO;
	}
	return 0;
}

/* ------------------------------------------------------------- precopy */

/* Pages whose first line is fetched ahead of the zero check. */
#define PREFETCH_AHEAD	8

struct vmig_ram_precopy {
	struct vmig_ram *ram;
	struct vmig_ram_sink sink;
	struct vmig_ram_precopy_config cfg;
	uint64_t cursor;		/* background pass: next page */
	unsigned int region;		/* the cursor's region */
	uint64_t seq;
	uint64_t last_sync_ns;
	uint64_t rl_start_ns, rl_bytes;	/* rate limit window */
	uint64_t *batch;		/* global page numbers */
	const void **pages;		/* in place: the data of a packet */
	struct vmig_page *popped;
	pthread_mutex_t lock;		/* stats */
	struct vmig_ram_precopy_stats st;
	bool done;			/* complete() ran */
	bool stopped;			/* RAM does not change: in place */
	atomic_bool interrupt;		/* ram_precopy_interrupt() */
	struct vmig_converge_info info;	/* of run()'s last check */
};

bool ram_page_is_zero(const void *page)
{
	const uint64_t *p = page;
	unsigned int i;

	/* One cache line decides for most data pages. */
	if (p[0])
		return false;
	if (p[RAM_PAGE_SIZE / 8 - 1])
		return false;
	for (i = 0; i < RAM_PAGE_SIZE / 8; i += 8)
		if (p[i] | p[i + 1] | p[i + 2] | p[i + 3] | p[i + 4] |
		    p[i + 5] | p[i + 6] | p[i + 7])
			return false;
	return true;
}

static void *gpage_addr(struct vmig_ram_precopy *p, uint64_t g,
			unsigned int *region)
{
	struct vmig_ram *ram = p->ram;
	unsigned int r = *region;

	if (r >= ram->nr_regions || g < ram->regions[r].first ||
	    g >= ram->regions[r].first + ram->regions[r].pages) {
		unsigned int lo = 0, hi = ram->nr_regions;

		while (hi - lo > 1) {
			unsigned int mid = (lo + hi) / 2;

			if (ram->regions[mid].first <= g)
				lo = mid;
			else
				hi = mid;
		}
		r = lo;
		*region = r;
	}
	return (char *)ram->regions[r].r.host_addr +
	       (g - ram->regions[r].first) * RAM_PAGE_SIZE;
}

VMIG_EXPORT int vmig_ram_precopy_new(struct vmig_ram *ram,
				     const struct vmig_ram_sink *sink,
				     const struct vmig_ram_precopy_config *cfg,
				     struct vmig_ram_precopy **out)
{
	struct vmig_ram_precopy *p;

	if (!ram || !sink || !sink->ops || !sink->ops->get_buf ||
	    !sink->ops->submit || !sink->ops->finish || !out)
		return -EINVAL;
	if (vmig_ram_tracker(ram) == VMIG_TRACK_NONE)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ram = ram;
	p->sink = *sink;
	if (cfg)
		p->cfg = *cfg;
	if (!p->cfg.batch_pages)
		p->cfg.batch_pages = 64;
	if (p->cfg.batch_pages > RAM_MAX_BATCH)
		p->cfg.batch_pages = RAM_MAX_BATCH;
	if (!p->cfg.background_share)
		p->cfg.background_share = 4;
	if (!p->cfg.sync_ms)
		p->cfg.sync_ms = 10;
	if (!p->cfg.check_ms)
		p->cfg.check_ms = 20;
	p->batch = calloc(p->cfg.batch_pages, sizeof(*p->batch));
	p->popped = calloc(p->cfg.batch_pages, sizeof(*p->popped));
	p->pages = calloc(p->cfg.batch_pages, sizeof(*p->pages));
	if (!p->batch || !p->popped || !p->pages) {
		free(p->batch);
		free(p->popped);
		free(p->pages);
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

VMIG_EXPORT void vmig_ram_precopy_free(struct vmig_ram_precopy *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p->batch);
	free(p->popped);
	free(p->pages);
	free(p);
}

static int maybe_sync(struct vmig_ram_precopy *p, bool force)
{
	uint64_t now = ram_now_ns();
	int ret;

	if (!force && now - p->last_sync_ns < p->cfg.sync_ms * 1000000ULL)
		return 0;
	p->last_sync_ns = now;
	ret = vmig_ram_sync(p->ram);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&p->lock);
	p->st.syncs++;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void rate_limit(struct vmig_ram_precopy *p, size_t bytes)
{
	uint64_t now, due;
	struct timespec ts;

	if (!p->cfg.max_bandwidth)
		return;
	now = ram_now_ns();
	/* A window of about a second, so idle time is not saved up. */
	if (!p->rl_start_ns || now - p->rl_start_ns > 1000000000ULL) {
		p->rl_start_ns = now;
		p->rl_bytes = 0;
	}
	p->rl_bytes += bytes;
	due = p->rl_start_ns +
	      (uint64_t)((double)p->rl_bytes * 1e9 / p->cfg.max_bandwidth);
	if (due > now) {
		ts.tv_sec = (due - now) / 1000000000ULL;
		ts.tv_nsec = (due - now) % 1000000000ULL;
		nanosleep(&ts, NULL);
	}
}

/* Choose the pages of the next packet into p->batch; returns how many. */
static unsigned int choose(struct vmig_ram_precopy *p, uint64_t *bg,
			   uint64_t *dirty, uint64_t *skipped)
{
	struct vmig_ram *ram = p->ram;
	unsigned int max = p->cfg.batch_pages, quota, n = 0, i;
	bool pass = p->cursor < ram->total_pages;
	int got;

	quota = max;
	if (pass)
		quota = max - (max + p->cfg.background_share - 1) /
			      p->cfg.background_share;
	got = quota ? vmig_ram_pop_dirty(ram, p->popped, quota) : 0;
	for (i = 0; got > 0 && i < (unsigned int)got; i++) {
		uint64_t g = ram->regions[p->popped[i].region].first +
			     p->popped[i].index;

		if (g >= p->cursor) {
			(*skipped)++;	/* the pass will read it later */
			continue;
		}
		p->batch[n++] = g;
		(*dirty)++;
	}
	while (n < max && p->cursor < ram->total_pages) {
		p->batch[n++] = p->cursor++;
		(*bg)++;
	}
	return n;
}

VMIG_EXPORT int vmig_ram_precopy_step(struct vmig_ram_precopy *p)
{
	uint64_t bg = 0, dirty = 0, skipped = 0, zero = 0;
	struct ram_pkt_hdr h = { 0 };
	unsigned int n, i, region = 0, np = 0;
	uint8_t *buf, *ent, *data;
	bool in_place;
	size_t size;
	void *vbuf;
	int ret;

	if (!p)
		return -EINVAL;
	ret = maybe_sync(p, false);
	if (ret)
		return ret;
	n = choose(p, &bg, &dirty, &skipped);
	if (!n) {
		pthread_mutex_lock(&p->lock);
		p->st.skipped += skipped;
		p->st.background_done = true;
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	in_place = p->stopped && ram_sink_in_place(&p->sink);
	size = RAM_PKT_HDR_LEN + (size_t)n * 8;
	if (!in_place)
		size += (size_t)n * RAM_PAGE_SIZE;
	ret = p->sink.ops->get_buf(p->sink.opaque, size, &vbuf);
	if (ret)
		return ret;
	buf = vbuf;
	ent = buf + RAM_PKT_HDR_LEN;
	data = ent + n * 8;
	/* Each page's first line is a miss: have a few on the way. */
	for (i = 0; i < n && i < PREFETCH_AHEAD; i++)
		__builtin_prefetch(gpage_addr(p, p->batch[i], &region));
	for (i = 0; i < n; i++) {
		const void *src = gpage_addr(p, p->batch[i], &region);
		uint64_t e = p->batch[i] << RAM_ENT_SHIFT;

		if (i + PREFETCH_AHEAD < n)
			__builtin_prefetch(gpage_addr(p, p->batch[i +
						      PREFETCH_AHEAD],
						      &region));

		if (ram_page_is_zero(src)) {
			e |= RAM_ENT_ZERO;
			zero++;
		} else if (in_place) {
			p->pages[np++] = src;
		} else {
			memcpy(data, src, RAM_PAGE_SIZE);
			data += RAM_PAGE_SIZE;
		}
		put64(ent + i * 8, e);
	}
	h.nr = n;
	h.seq = ++p->seq;
	if (in_place) {
		h.len = n * 8 + np * RAM_PAGE_SIZE;
		ret = ram_net_submit_pages(p->sink.opaque, buf, &h, p->pages,
					   np);
	} else {
		h.len = data - ent;
		ram_pkt_seal(&h, buf);
		ret = p->sink.ops->submit(p->sink.opaque, buf,
					  RAM_PKT_HDR_LEN + h.len);
	}
	if (ret)
		return ret;

	pthread_mutex_lock(&p->lock);
	p->st.packets++;
	p->st.bytes += RAM_PKT_HDR_LEN + h.len;
	p->st.pages += n;
	p->st.zero_pages += zero;
	p->st.in_place_pages += np;
	p->st.background_pages += bg;
	p->st.dirty_pages += dirty;
	p->st.skipped += skipped;
	p->st.background_done = p->cursor >= p->ram->total_pages;
	pthread_mutex_unlock(&p->lock);
	rate_limit(p, RAM_PKT_HDR_LEN + h.len);
	return n;
}

VMIG_EXPORT uint64_t vmig_ram_precopy_pending(struct vmig_ram_precopy *p)
{
	return p->ram->total_pages - p->cursor +
	       vmig_ram_dirty_count(p->ram);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (ms % 1000) * 1000000L,
	};

	nanosleep(&ts, NULL);
}

VMIG_EXPORT int vmig_ram_precopy_run(struct vmig_ram_precopy *p,
				     struct vmig_converge *c)
{
	uint64_t last_check = 0, bytes0, now;
	int ret;

	if (!p || !c || p->done)
		return -EINVAL;
	for (;;) {
		if (atomic_exchange(&p->interrupt, false))
			return -EINTR;
		pthread_mutex_lock(&p->lock);
		bytes0 = p->st.bytes;
		pthread_mutex_unlock(&p->lock);
		ret = vmig_ram_precopy_step(p);
		if (ret < 0)
			return ret;
		now = ram_now_ns();
		pthread_mutex_lock(&p->lock);
		bytes0 = p->st.bytes - bytes0;
		pthread_mutex_unlock(&p->lock);
		/*
		 * Only full packets measure the bandwidth: a short one means
		 * the sender caught up with the guest.
		 */
		if ((unsigned int)ret == p->cfg.batch_pages)
			vmig_converge_account(c, bytes0, now);
		if (!ret || now - last_check >= p->cfg.check_ms * 1000000ULL) {
			last_check = now;
			ret = vmig_converge_check(c,
				vmig_ram_precopy_pending(p) * RAM_PAGE_SIZE,
				now, &p->info);
			if (ret == VMIG_CONVERGE_SWITCHOVER) {
				/*
				 * The dirty set holds what the last sync
				 * found: confirm on a fresh one (the bitmap
				 * and write-protect trackers see nothing in
				 * between).
				 */
				ret = maybe_sync(p, true);
				if (ret)
					return ret;
				ret = vmig_converge_check(c,
					vmig_ram_precopy_pending(p) *
					RAM_PAGE_SIZE, now, &p->info);
			}
			if (ret)
				return ret;
			/* Nothing to send: wait for the guest, do not spin. */
			if (!vmig_ram_precopy_pending(p))
				sleep_ms(p->cfg.sync_ms);
		}
	}
}

const struct vmig_converge_info *
ram_precopy_last_info(const struct vmig_ram_precopy *p)
{
	return &p->info;
}

void ram_precopy_interrupt(struct vmig_ram_precopy *p)
{
	atomic_store(&p->interrupt, true);
}

VMIG_EXPORT int vmig_ram_precopy_stop(struct vmig_ram_precopy *p)
{
	if (!p || p->done)
		return -EINVAL;
	p->stopped = true;
	return 0;
}

VMIG_EXPORT int vmig_ram_precopy_complete(struct vmig_ram_precopy *p)
{
	uint64_t t0 = ram_now_ns(), pages = 0;
	int ret;

	if (!p || p->done)
		return -EINVAL;
	p->stopped = true;
	ret = maybe_sync(p, true);
	if (ret)
		return ret;
	while ((ret = vmig_ram_precopy_step(p)) > 0)
		pages += ret;
	if (ret < 0)
		return ret;
	ret = p->sink.ops->finish(p->sink.opaque);
	p->done = true;
	pthread_mutex_lock(&p->lock);
	p->st.final_pages = pages;
	p->st.complete_ns = ram_now_ns() - t0;
	pthread_mutex_unlock(&p->lock);
	return ret;
}

VMIG_EXPORT int vmig_ram_precopy_flush(struct vmig_ram_precopy *p)
{
	int ret;

	if (!p || p->done)
		return -EINVAL;
	ret = p->sink.ops->finish(p->sink.opaque);
	p->done = true;
	return ret;
}

VMIG_EXPORT void vmig_ram_precopy_get_stats(struct vmig_ram_precopy *p,
					    struct vmig_ram_precopy_stats *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	pthread_mutex_unlock(&p->lock);
}

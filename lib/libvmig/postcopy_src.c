// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Postcopy, source side: serve the destination's page requests first, on
 * channel 0, while push threads send every other page the destination
 * lacks on channels 1..N.  See postcopy.h for the exchange.
 *
 * The source's RAM no longer changes (its vCPUs are stopped), so a page can
 * be sent twice without harm: a requested page is sent even if the push
 * sent it already (it may still be in a socket buffer), and the push skips
 * pages already sent.  "sent" starts as the destination's received bitmap
 * at every connection: a resume sends exactly what the destination lacks.
 *
 * Threads of one run: the caller's (connect, OPEN/HAVE, then waits), the
 * request server (reads channel 0, writes the asked pages to it), and one
 * pusher per push channel.  s->lock guards the fds and the cut flag; the
 * bitmaps and counters are atomic.  The bandwidth limit has its own lock.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "postcopy.h"

struct push_thread {
	struct vmig_postcopy_src *s;
	unsigned int chan;
	pthread_t thread;
	bool started;
	int err;
};

struct vmig_postcopy_src {
	struct vmig_ram *ram;
	struct vmig_postcopy_config cfg;
	struct vmig_chan_auth auth;
	uint8_t *secret;
	uint64_t total;

	_Atomic uint64_t *discard;	/* stale on the destination */
	_Atomic uint64_t *sent;		/* held there, or sent this run */
	bool opened;			/* the destination took the discards */

	pthread_mutex_t lock;
	int fds[1 + PC_MAX_PUSH];
	unsigned int nfd;
	bool cut;

	_Atomic uint64_t cursor;	/* the push's next page */
	_Atomic uint64_t seq;
	_Atomic int err;		/* first error of the run */
	struct pc_push_activity push;	/* stops the request server's spin */

	pthread_mutex_t bw_lock;
	uint64_t bw_next_ns;

	struct {
		_Atomic uint64_t pushed, requests, requested_sent, zero_pages,
			bytes;
	} n;
	uint64_t discarded, have, connects;
};

VMIG_EXPORT void vmig_postcopy_config_init(struct vmig_postcopy_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->push_channels = 2;
	cfg->batch_pages = 64;
}

static void *gpage(struct vmig_postcopy_src *s, uint64_t g, unsigned int *reg)
{
	const struct ram_region *r = &s->ram->regions[*reg];

	if (g < r->first || g >= r->first + r->pages) {
		unsigned int lo = 0, hi = s->ram->nr_regions;

		while (hi - lo > 1) {
			unsigned int mid = (lo + hi) / 2;

			if (s->ram->regions[mid].first <= g)
				lo = mid;
			else
				hi = mid;
		}
		*reg = lo;
		r = &s->ram->regions[lo];
	}
	return (char *)r->r.host_addr + (g - r->first) * RAM_PAGE_SIZE;
}

VMIG_EXPORT int vmig_ram_postcopy_src_new(struct vmig_ram *ram,
					  const struct vmig_session_config *scfg,
					  const struct vmig_postcopy_config *cfg,
					  struct vmig_postcopy_src **out)
{
	struct vmig_postcopy_src *s;
	struct vmig_page pg[256];
	int n, i;

	if (!ram || !scfg || !out || !scfg->secret ||
	    scfg->secret_len < VMIG_SECRET_MIN_LEN ||
	    scfg->secret_len > VMIG_SECRET_MAX_LEN)
		return -EINVAL;
	if (ram->ops)
		return -EBUSY;		/* still tracking: RAM may change */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (cfg)
		s->cfg = *cfg;
	else
		vmig_postcopy_config_init(&s->cfg);
	if (!s->cfg.push_channels)
		s->cfg.push_channels = 2;
	if (!s->cfg.batch_pages)
		s->cfg.batch_pages = 64;
	if (s->cfg.push_channels > PC_MAX_PUSH ||
	    s->cfg.batch_pages > RAM_MAX_BATCH) {
		free(s);
		return -EINVAL;
	}
	s->ram = ram;
	s->total = ram->total_pages;
	s->secret = malloc(scfg->secret_len);
	s->discard = pc_bitmap_alloc(s->total);
	s->sent = pc_bitmap_alloc(s->total);
	if (!s->secret || !s->discard || !s->sent) {
		vmig_ram_postcopy_src_free(s);
		return -ENOMEM;
	}
	memcpy(s->secret, scfg->secret, scfg->secret_len);
	memcpy(s->auth.session_id, scfg->session_id, VMIG_SESSION_ID_LEN);
	s->auth.secret = s->secret;
	s->auth.secret_len = scfg->secret_len;
	s->auth.timeout_ms = scfg->timeout_ms ? scfg->timeout_ms : 10000;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->bw_lock, NULL);

	/* The dirty set: pages whose copy on the destination is stale. */
	while ((n = vmig_ram_pop_dirty(ram, pg, 256)) > 0) {
		for (i = 0; i < n; i++) {
			uint64_t g = ram->regions[pg[i].region].first +
				     pg[i].index;

			if (!pc_test_and_set(s->discard, g))
				s->discarded++;
		}
	}
	*out = s;
	return 0;
}

VMIG_EXPORT void vmig_ram_postcopy_src_free(struct vmig_postcopy_src *s)
{
	if (!s)
		return;
	pc_bitmap_free(s->discard, s->total);
	pc_bitmap_free(s->sent, s->total);
	if (s->secret) {
		memset(s->secret, 0, s->auth.secret_len);
		free(s->secret);
		pthread_mutex_destroy(&s->lock);
		pthread_mutex_destroy(&s->bw_lock);
	}
	free(s);
}

/* Stop the run: every thread's socket call fails. */
static void src_fail(struct vmig_postcopy_src *s, int err)
{
	unsigned int i;
	int zero = 0;

	atomic_compare_exchange_strong(&s->err, &zero, err);
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nfd; i++)
		shutdown(s->fds[i], SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
}

VMIG_EXPORT void vmig_ram_postcopy_src_cut(struct vmig_postcopy_src *s)
{
	pthread_mutex_lock(&s->lock);
	s->cut = true;
	pthread_mutex_unlock(&s->lock);
	src_fail(s, -ECONNABORTED);
}

/* Build and send one packet of the pages g[0..nr) on fd. */
static int send_pages(struct vmig_postcopy_src *s, int fd, uint8_t *buf,
		      const uint64_t *g, unsigned int nr, uint64_t *zeros)
{
	struct ram_pkt_hdr h = { .nr = nr };
	uint8_t *data = buf + RAM_PKT_HDR_LEN + (size_t)nr * 8;
	unsigned int i, reg = 0;
	int ret;

	for (i = 0; i < nr; i++) {
		const void *src = gpage(s, g[i], &reg);
		uint64_t e = g[i] << RAM_ENT_SHIFT;

		if (ram_page_is_zero(src)) {
			e |= RAM_ENT_ZERO;
			(*zeros)++;
		} else {
			memcpy(data, src, RAM_PAGE_SIZE);
			data += RAM_PAGE_SIZE;
		}
		put64(buf + RAM_PKT_HDR_LEN + (size_t)i * 8, e);
	}
	h.len = data - (buf + RAM_PKT_HDR_LEN);
	h.seq = atomic_fetch_add(&s->seq, 1) + 1;
	ram_pkt_seal(&h, buf);
	ret = vmig_send_all(fd, buf, RAM_PKT_HDR_LEN + h.len);
	if (!ret)
		atomic_fetch_add(&s->n.bytes, RAM_PKT_HDR_LEN + h.len);
	return ret;
}

/* The push's share of the bandwidth limit: wait for len bytes' turn. */
static void bw_wait(struct vmig_postcopy_src *s, size_t len)
{
	uint64_t t, now;
	struct timespec ts;

	pthread_mutex_lock(&s->bw_lock);
	if (!s->cfg.max_bandwidth) {
		pthread_mutex_unlock(&s->bw_lock);
		return;
	}
	now = ram_now_ns();
	t = s->bw_next_ns > now ? s->bw_next_ns : now;
	s->bw_next_ns = t + len * 1000000000ULL / s->cfg.max_bandwidth;
	pthread_mutex_unlock(&s->bw_lock);
	if (t > now) {
		ts.tv_sec = (t - now) / 1000000000ULL;
		ts.tv_nsec = (t - now) % 1000000000ULL;
		nanosleep(&ts, NULL);
	}
}

static void *pusher(void *arg)
{
	struct push_thread *pt = arg;
	struct vmig_postcopy_src *s = pt->s;
	unsigned int batch = s->cfg.batch_pages, nr;
	int fd = s->fds[pt->chan];
	uint64_t g[RAM_MAX_BATCH], lo, i, zeros;
	struct ram_pkt_hdr end = { .flags = RAM_PKT_F_END };
	uint8_t *buf;

	vmig_name_thread("pcpush", pt->chan);
	pc_background_thread();
	buf = malloc(RAM_PKT_HDR_LEN + (size_t)batch * (8 + RAM_PAGE_SIZE));
	if (!buf) {
		pt->err = -ENOMEM;
		src_fail(s, pt->err);
		return NULL;
	}
	while (!atomic_load(&s->err)) {
		lo = atomic_fetch_add(&s->cursor, batch);
		if (lo >= s->total)
			break;
		nr = 0;
		for (i = lo; i < lo + batch && i < s->total; i++)
			if (!pc_test_and_set(s->sent, i))
				g[nr++] = i;
		if (!nr)
			continue;
		bw_wait(s, (size_t)nr * RAM_PAGE_SIZE);
		zeros = 0;
		pc_push_begin(&s->push);
		pt->err = send_pages(s, fd, buf, g, nr, &zeros);
		pc_push_end(&s->push);
		if (pt->err) {
			src_fail(s, pt->err);
			break;
		}
		atomic_fetch_add(&s->n.pushed, nr);
		atomic_fetch_add(&s->n.zero_pages, zeros);
	}
	if (!pt->err && !atomic_load(&s->err)) {
		ram_pkt_seal(&end, buf);
		pt->err = vmig_send_all(fd, buf, RAM_PKT_HDR_LEN);
		if (pt->err)
			src_fail(s, pt->err);
	}
	free(buf);
	return NULL;
}

/*
 * Channel 0: read requests (and at last DONE), answer each request with
 * its page at once; requests already queued in the socket go out in the
 * same packet.  Returns 0 on DONE with status 0, else a negative errno.
 */
static int serve_requests(struct vmig_postcopy_src *s)
{
	int fd = s->fds[0], avail, ret;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t g[RAM_MAX_BATCH], zeros, spin_until = 0;
	unsigned int nr;
	uint8_t msg[PC_REQ_LEN], *buf;
	uint32_t magic;
	ssize_t r;

	buf = malloc(RAM_MAX_PKT);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		nr = 0;
		/* Within PC_SPIN_NS of the last answer (postcopy.h). */
		pc_spin_poll(&pfd, 1, spin_until, &s->push);
		do {
			r = vmig_recv_all(fd, msg, PC_DONE_LEN);
			if (r != PC_DONE_LEN) {
				ret = r < 0 ? (int)r : -ECONNRESET;
				goto out;
			}
			magic = get32(msg);
			if (magic == PC_DONE_MAGIC) {
				uint32_t st = get32(msg + 4);

				ret = pc_done_err(st);
				if (st > PC_MAX_ERRNO)
					vmig_err("postcopy: DONE with a bad status %u",
						 st);
				else if (ret)
					vmig_err("postcopy: the destination failed: %d",
						 ret);
				/* Pages asked for before DONE are moot. */
				goto out;
			}
			r = vmig_recv_all(fd, msg + PC_DONE_LEN,
					  PC_REQ_LEN - PC_DONE_LEN);
			if (magic != PC_REQ_MAGIC || get32(msg + 4) ||
			    r != PC_REQ_LEN - PC_DONE_LEN ||
			    get64(msg + 8) >= s->total) {
				vmig_err("postcopy: bad message from the destination");
				ret = r < 0 ? (int)r : -EPROTO;
				goto out;
			}
			g[nr++] = get64(msg + 8);
			pc_test_and_set(s->sent, g[nr - 1]);
			if (ioctl(fd, FIONREAD, &avail))
				avail = 0;
		} while (nr < RAM_MAX_BATCH && avail >= PC_REQ_LEN);
		atomic_fetch_add(&s->n.requests, nr);
		zeros = 0;
		ret = send_pages(s, fd, buf, g, nr, &zeros);
		if (ret)
			goto out;
		atomic_fetch_add(&s->n.requested_sent, nr);
		atomic_fetch_add(&s->n.zero_pages, zeros);
		spin_until = ram_now_ns() + PC_SPIN_NS;
	}
out:
	free(buf);
	return ret;
}

static int open_channels(struct vmig_postcopy_src *s,
			 const struct sockaddr *addr, socklen_t addrlen)
{
	struct vmig_chan_id id = { 0 };
	unsigned int i;
	int fd;

	memcpy(id.session_id, s->auth.session_id, VMIG_SESSION_ID_LEN);
	id.kind = VMIG_CHAN_POSTCOPY;
	id.count = 1 + s->cfg.push_channels;
	for (i = 0; i < id.count; i++) {
		id.index = i;
		fd = vmig_chan_connect(addr, addrlen, &s->auth, &id);
		if (fd < 0) {
			vmig_err("postcopy channel %u: connect: %d", i, fd);
			return fd;
		}
		pthread_mutex_lock(&s->lock);
		s->fds[s->nfd++] = fd;
		if (s->cut) {
			pthread_mutex_unlock(&s->lock);
			return -ECONNABORTED;
		}
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

/* OPEN, then the destination's HAVE into s->sent. */
static int exchange_bitmaps(struct vmig_postcopy_src *s)
{
	struct pc_bitmap_hdr h = {
		.magic = PC_OPEN_MAGIC,
		.pages = s->total,
	};
	const char *why = "";
	uint64_t i, have = 0;
	int ret;

	/*
	 * Until the destination has answered an OPEN, it may not have taken
	 * the discards: send them again (it takes them only once).
	 */
	h.kind = s->opened ? PC_OPEN_RESUME : PC_OPEN_START;
	h.len = s->opened ? 0 : pc_bitmap_bytes(s->total);
	ret = pc_send_bitmap(s->fds[0], &h, (const void *)s->discard);
	if (ret)
		return ret;
	ret = pc_recv_bitmap(s->fds[0], PC_HAVE_MAGIC, s->total, &h,
			     (void *)s->sent, &why);
	if (!ret && h.len != pc_bitmap_bytes(s->total)) {
		why = "no received bitmap";
		ret = -EPROTO;
	}
	if (ret) {
		vmig_err("postcopy: %s", why);
		return ret;
	}
	s->opened = true;
	for (i = 0; i < s->total; i++)
		have += pc_test(s->sent, i);
	s->have = have;
	return 0;
}

VMIG_EXPORT int vmig_ram_postcopy_src_run(struct vmig_postcopy_src *s,
					  const struct sockaddr *addr,
					  socklen_t addrlen)
{
	struct push_thread pt[PC_MAX_PUSH] = { 0 };
	unsigned int i;
	int ret, err;

	if (!s || !addr)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	s->cut = false;
	s->nfd = 0;
	pthread_mutex_unlock(&s->lock);
	atomic_store(&s->err, 0);
	atomic_store(&s->cursor, 0);
	s->connects++;

	ret = open_channels(s, addr, addrlen);
	if (!ret)
		ret = exchange_bitmaps(s);
	for (i = 0; !ret && i < s->cfg.push_channels; i++) {
		pt[i].s = s;
		pt[i].chan = 1 + i;
		ret = -pthread_create(&pt[i].thread, NULL, pusher, &pt[i]);
		pt[i].started = !ret;
	}
	if (!ret)
		ret = serve_requests(s);
	/* DONE or a failure: either way the run is over for every thread. */
	src_fail(s, ret ? ret : -ECANCELED);
	for (i = 0; i < s->cfg.push_channels; i++)
		if (pt[i].started)
			pthread_join(pt[i].thread, NULL);
	/* A failure's first cause, rather than the echoes of the shutdown. */
	err = atomic_load(&s->err);
	if (ret && err != -ECANCELED)
		ret = err;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nfd; i++)
		close(s->fds[i]);
	s->nfd = 0;
	pthread_mutex_unlock(&s->lock);
	if (ret)
		vmig_warn("postcopy: the run ended: %d (run again to resume)",
			  ret);
	return ret;
}

VMIG_EXPORT void vmig_ram_postcopy_src_set_bandwidth(struct vmig_postcopy_src *s,
						   uint64_t bytes_per_s)
{
	pthread_mutex_lock(&s->bw_lock);
	s->cfg.max_bandwidth = bytes_per_s;
	s->bw_next_ns = 0;
	pthread_mutex_unlock(&s->bw_lock);
}

VMIG_EXPORT void vmig_ram_postcopy_src_get_stats(struct vmig_postcopy_src *s,
					       struct vmig_postcopy_src_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->discarded = s->discarded;
	st->have = s->have;
	st->pushed = atomic_load(&s->n.pushed);
	st->requests = atomic_load(&s->n.requests);
	st->requested_sent = atomic_load(&s->n.requested_sent);
	st->zero_pages = atomic_load(&s->n.zero_pages);
	st->bytes = atomic_load(&s->n.bytes);
	st->connects = s->connects;
}

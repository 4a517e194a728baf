// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Postcopy, destination side: guest RAM registered with userfaultfd
 * (MISSING), faults turned into page requests, and every page placed
 * exactly once.  See postcopy.h for the exchange.
 *
 * Exactly once: "have" holds a bit per page, set by whoever places the
 * page before it calls UFFDIO_COPY (or UFFDIO_ZEROPAGE) and cleared again
 * only if that fails.  A copy that finds its bit set is a duplicate and is
 * dropped.  Before registering, every page not held is dropped from memory
 * (MADV_DONTNEED, or a hole punched in its backing fd), so each of them
 * faults until it is placed and UFFDIO_COPY never meets a page it did not
 * place itself (EEXIST is counted and would mean something else touched
 * the RAM).  A faulting thread is woken by the UFFDIO_COPY of its page.
 *
 * Threads: the fault thread (from the first accept until every page is
 * placed; it survives breaks, so faults during a break are recorded as
 * requests to send on resume), and one receiver per channel of a
 * connection.  p->lock guards the connection state (fds, receivers, err,
 * done) with p->cond; p->send_lock serialises writes to channel 0 and is
 * taken with p->lock held, never the other way round.  Bitmaps and
 * counters are atomic.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "postcopy.h"

struct recv_thread {
	struct vmig_postcopy_dest *p;
	unsigned int chan;
	pthread_t thread;
	bool started;
};

struct vmig_postcopy_dest {
	struct vmig_ram_dest *d;
	struct vmig_chan_auth auth;
	uint8_t *secret;
	uint64_t total;

	_Atomic uint64_t *have;		/* placed, or being placed */
	_Atomic uint64_t *requested;	/* asked for, not placed yet */
	_Atomic uint64_t nhave;

	int uffd;
	int evfd;			/* stops the fault thread */
	pthread_t fault_thread;
	bool fault_started;
	bool opened;			/* discards taken, RAM registered */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fds[1 + PC_MAX_PUSH];
	unsigned int nfd;
	struct recv_thread rt[1 + PC_MAX_PUSH];
	unsigned int running;		/* receivers not finished */
	int err;			/* the connection's first error */
	bool done;
	bool fatal;			/* a placement failed: no resume */

	pthread_mutex_t send_lock;
	int fd0;			/* channel 0 while connected, else -1 */

	_Atomic uint64_t asked_ns;	/* when the last request was sent */
	struct pc_push_activity push;	/* stops the spin (postcopy.h) */

	struct {
		_Atomic uint64_t faults, requests, placed, zero_placed,
			duplicates, eexist, bytes;
	} n;
	uint64_t present, discarded, breaks;
};

VMIG_EXPORT int vmig_ram_postcopy_dest_new(struct vmig_ram_dest *d,
					   const struct vmig_session_config *scfg,
					   struct vmig_postcopy_dest **out)
{
	struct vmig_postcopy_dest *p;
	uint64_t g;

	if (!d || !scfg || !out || !scfg->secret ||
	    scfg->secret_len < VMIG_SECRET_MIN_LEN ||
	    scfg->secret_len > VMIG_SECRET_MAX_LEN)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->d = d;
	p->total = d->total_pages;
	p->uffd = -1;
	p->evfd = -1;
	p->fd0 = -1;
	p->secret = malloc(scfg->secret_len);
	p->have = pc_bitmap_alloc(p->total);
	p->requested = pc_bitmap_alloc(p->total);
	if (!p->secret || !p->have || !p->requested) {
		vmig_ram_postcopy_dest_free(p);
		return -ENOMEM;
	}
	memcpy(p->secret, scfg->secret, scfg->secret_len);
	memcpy(p->auth.session_id, scfg->session_id, VMIG_SESSION_ID_LEN);
	p->auth.secret = p->secret;
	p->auth.secret_len = scfg->secret_len;
	p->auth.timeout_ms = scfg->timeout_ms ? scfg->timeout_ms : 10000;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	pthread_mutex_init(&p->send_lock, NULL);
	/* What precopy placed. */
	for (g = 0; g < p->total; g++)
		if (d->stamp[g])
			pc_test_and_set(p->have, g);
	p->present = 0;
	for (g = 0; g < p->total; g++)
		p->present += pc_test(p->have, g);
	atomic_store(&p->nhave, p->present);
	*out = p;
	return 0;
}

/* ------------------------------------------------------------- memory */

/* Drop pages [g, g + n) of one region from memory: they fault again. */
static int drop_range(struct vmig_postcopy_dest *p, uint64_t g, uint64_t n)
{
	unsigned int reg = 0;
	const struct ram_region *r;
	char *addr = ram_dest_page(p->d, g, &reg);
	uint64_t off;

	r = &p->d->regions[reg];
	off = (g - r->first) * RAM_PAGE_SIZE;
	if (r->r.fd >= 0 &&
	    fallocate(r->r.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      r->r.fd_offset + off, n * RAM_PAGE_SIZE))
		return -errno;
	if (madvise(addr, n * RAM_PAGE_SIZE, MADV_DONTNEED))
		return -errno;
	return 0;
}

/*
 * Take the discards, then drop every page not held, in runs that stay
 * inside one region.
 */
static int drop_missing(struct vmig_postcopy_dest *p,
			_Atomic uint64_t *discard)
{
	uint64_t g, start = 0;
	unsigned int r;
	bool in = false;
	int ret;

	for (g = 0; g < p->total; g++) {
		if (pc_test(discard, g) && pc_test(p->have, g)) {
			pc_clear(p->have, g);
			atomic_fetch_sub(&p->nhave, 1);
			p->discarded++;
		}
	}
	for (r = 0; r < p->d->nr_regions; r++) {
		const struct ram_region *rg = &p->d->regions[r];

		for (g = rg->first; g <= rg->first + rg->pages; g++) {
			bool miss = g < rg->first + rg->pages &&
				    !pc_test(p->have, g);

			if (miss && !in) {
				start = g;
				in = true;
			} else if (!miss && in) {
				ret = drop_range(p, start, g - start);
				if (ret) {
					vmig_err("postcopy: cannot drop pages: %d",
						 ret);
					return ret;
				}
				in = false;
			}
		}
	}
	return 0;
}

static int uffd_open(void)
{
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == EPERM) {
		/* Where unprivileged_userfaultfd is 0: the device node. */
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return -EPERM;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
	}
	return fd < 0 ? -errno : fd;
}

static int uffd_register(struct vmig_postcopy_dest *p)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	const uint64_t need = (1ULL << _UFFDIO_COPY) |
			      (1ULL << _UFFDIO_ZEROPAGE) |
			      (1ULL << _UFFDIO_WAKE);
	unsigned int r;
	int fd;

	for (r = 0; r < p->d->nr_regions; r++)
		if (p->d->regions[r].r.fd >= 0)
			api.features |= UFFD_FEATURE_MISSING_SHMEM;
	fd = uffd_open();
	if (fd < 0) {
		vmig_err("postcopy: userfaultfd: %d", fd);
		return fd;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		int ret = -errno;

		vmig_err("postcopy: UFFDIO_API: %d", ret);
		close(fd);
		return ret;
	}
	for (r = 0; r < p->d->nr_regions; r++) {
		const struct ram_region *rg = &p->d->regions[r];

		memset(&reg, 0, sizeof(reg));
		reg.range.start = (uintptr_t)rg->r.host_addr;
		reg.range.len = rg->pages * RAM_PAGE_SIZE;
		reg.mode = UFFDIO_REGISTER_MODE_MISSING;
		if (ioctl(fd, UFFDIO_REGISTER, &reg) ||
		    (reg.ioctls & need) != need) {
			int ret = (reg.ioctls & need) == need ? -errno :
				  -EOPNOTSUPP;

			vmig_err("postcopy: cannot register region %u: %d", r,
				 ret);
			close(fd);
			return ret;
		}
	}
	p->uffd = fd;
	return 0;
}

static void uffd_unregister(struct vmig_postcopy_dest *p)
{
	struct uffdio_range range;
	unsigned int r;

	for (r = 0; r < p->d->nr_regions; r++) {
		range.start = (uintptr_t)p->d->regions[r].r.host_addr;
		range.len = p->d->regions[r].pages * RAM_PAGE_SIZE;
		ioctl(p->uffd, UFFDIO_UNREGISTER, &range);
	}
}

/* ------------------------------------------------------------ placing */

static void set_done_locked(struct vmig_postcopy_dest *p)
{
	p->done = true;
	pthread_cond_broadcast(&p->cond);
}

/* Place page g from src (NULL: zero); 0 also for a dropped duplicate. */
static int place(struct vmig_postcopy_dest *p, uint64_t g, const void *src,
		 unsigned int *reg)
{
	void *dst = ram_dest_page(p->d, g, reg);
	int ret = 0;

	if (pc_test_and_set(p->have, g)) {
		atomic_fetch_add(&p->n.duplicates, 1);
		return 0;
	}
	for (;;) {
		if (src) {
			struct uffdio_copy c = {
				.dst = (uintptr_t)dst,
				.src = (uintptr_t)src,
				.len = RAM_PAGE_SIZE,
			};

			ret = ioctl(p->uffd, UFFDIO_COPY, &c);
		} else {
			struct uffdio_zeropage z = {
				.range.start = (uintptr_t)dst,
				.range.len = RAM_PAGE_SIZE,
			};

			ret = ioctl(p->uffd, UFFDIO_ZEROPAGE, &z);
		}
		if (!ret || errno != EAGAIN)
			break;
	}
	if (ret && errno == EEXIST) {
		struct uffdio_range w = {
			.start = (uintptr_t)dst,
			.len = RAM_PAGE_SIZE,
		};

		atomic_fetch_add(&p->n.eexist, 1);
		ioctl(p->uffd, UFFDIO_WAKE, &w);
		ret = 0;
	} else if (ret) {
		ret = -errno;
		pc_clear(p->have, g);
		vmig_err("postcopy: cannot place page %llu: %d",
			 (unsigned long long)g, ret);
		return ret;
	} else {
		atomic_fetch_add(src ? &p->n.placed : &p->n.zero_placed, 1);
	}
	pc_clear(p->requested, g);
	if (atomic_fetch_add(&p->nhave, 1) + 1 == p->total) {
		pthread_mutex_lock(&p->lock);
		set_done_locked(p);
		pthread_mutex_unlock(&p->lock);
	}
	return 0;
}

/* ------------------------------------------------------------- faults */

static void send_request(struct vmig_postcopy_dest *p, uint64_t g)
{
	uint8_t msg[PC_REQ_LEN];

	put32(msg, PC_REQ_MAGIC);
	put32(msg + 4, 0);
	put64(msg + 8, g);
	pthread_mutex_lock(&p->send_lock);
	/* Not connected: the request is sent again on resume. */
	if (p->fd0 >= 0 && !vmig_send_all(p->fd0, msg, sizeof(msg))) {
		atomic_fetch_add(&p->n.requests, 1);
		atomic_store_explicit(&p->asked_ns, ram_now_ns(),
				      memory_order_relaxed);
	}
	pthread_mutex_unlock(&p->send_lock);
}

static uint64_t fault_page(struct vmig_postcopy_dest *p, uint64_t addr)
{
	unsigned int r;

	for (r = 0; r < p->d->nr_regions; r++) {
		const struct ram_region *rg = &p->d->regions[r];
		uint64_t base = (uintptr_t)rg->r.host_addr;

		if (addr >= base && addr < base + rg->pages * RAM_PAGE_SIZE)
			return rg->first + (addr - base) / RAM_PAGE_SIZE;
	}
	return UINT64_MAX;
}

static void *fault_thread(void *arg)
{
	struct vmig_postcopy_dest *p = arg;
	struct pollfd pfd[2] = {
		{ .fd = p->uffd, .events = POLLIN },
		{ .fd = p->evfd, .events = POLLIN },
	};
	struct uffd_msg msg[64];
	uint64_t g, spin_until = 0;
	ssize_t n, i;

	vmig_name_thread("pcfault", 0);
	for (;;) {
		/* Within PC_SPIN_NS of the last fault (postcopy.h). */
		if (!pc_spin_poll(pfd, 2, spin_until, &p->push) &&
		    poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			vmig_err("postcopy: poll: %d", -errno);
			break;
		}
		if (pfd[1].revents)
			break;
		n = read(p->uffd, msg, sizeof(msg));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			vmig_err("postcopy: reading faults: %d", -errno);
			break;
		}
		spin_until = ram_now_ns() + PC_SPIN_NS;
		for (i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			atomic_fetch_add(&p->n.faults, 1);
			g = fault_page(p, msg[i].arg.pagefault.address);
			if (g == UINT64_MAX || pc_test(p->have, g) ||
			    pc_test_and_set(p->requested, g))
				continue;
			send_request(p, g);
		}
	}
	return NULL;
}

/* ---------------------------------------------------------- receiving */

/* The connection failed (err), or the source sent something wrong. */
static void conn_fail(struct vmig_postcopy_dest *p, int err, bool fatal)
{
	unsigned int i;

	pthread_mutex_lock(&p->lock);
	if (!p->err && !p->done)
		p->err = err;
	p->fatal |= fatal;
	for (i = 0; i < p->nfd; i++)
		shutdown(p->fds[i], SHUT_RDWR);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Channel 0's receiver, before it blocks for the next packet: spin within
 * PC_SPIN_NS of the later of its last packet and the last request sent
 * (postcopy.h); a request sent while it spins extends the window.
 */
static void spin_answer(struct vmig_postcopy_dest *p, int fd, uint64_t last)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t from;

	for (;;) {
		from = atomic_load_explicit(&p->asked_ns, memory_order_relaxed);
		if (from < last)
			from = last;
		if (pc_spin_poll(&pfd, 1, from + PC_SPIN_NS, &p->push) ||
		    atomic_load_explicit(&p->asked_ns,
					 memory_order_relaxed) <= from)
			break;
	}
}

static void *receiver(void *arg)
{
	struct recv_thread *rt = arg;
	struct vmig_postcopy_dest *p = rt->p;
	int fd = p->fds[rt->chan], ret = 0;
	struct ram_pkt_hdr h;
	const uint8_t *data;
	const char *why;
	unsigned int i, reg = 0;
	uint64_t last = 0;
	bool in_pkt = false;
	uint8_t *buf;
	ssize_t r;

	vmig_name_thread("pcrx", rt->chan);
	if (rt->chan)
		pc_background_thread();
	buf = malloc(RAM_MAX_PKT);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (in_pkt)
			pc_push_end(&p->push);
		in_pkt = false;
		if (!rt->chan)
			spin_answer(p, fd, last);
		r = vmig_recv_all(fd, buf, RAM_PKT_HDR_LEN);
		if (r != RAM_PKT_HDR_LEN) {
			ret = r < 0 ? (int)r : -ECONNRESET;
			break;
		}
		/* A push packet: channel 0's spinning threads stand back. */
		if (rt->chan) {
			pc_push_begin(&p->push);
			in_pkt = true;
		}
		ret = ram_pkt_decode(buf, &h, &why);
		if (!ret && h.len) {
			r = vmig_recv_all(fd, buf + RAM_PKT_HDR_LEN, h.len);
			if (r != h.len) {
				ret = r < 0 ? (int)r : -ECONNRESET;
				break;
			}
		}
		if (!ret)
			ret = ram_pkt_check(buf, RAM_PKT_HDR_LEN + h.len,
					    p->total, &h, &why);
		if (ret) {
			vmig_err("postcopy channel %u: %s", rt->chan, why);
			break;
		}
		atomic_fetch_add(&p->n.bytes, RAM_PKT_HDR_LEN + h.len);
		if (!rt->chan)
			last = ram_now_ns();
		if (h.flags & RAM_PKT_F_END) {
			if (rt->chan)
				break;		/* a push channel's last */
			ret = -EPROTO;
			vmig_err("postcopy channel 0: END");
			break;
		}
		data = buf + RAM_PKT_HDR_LEN + h.nr * 8;
		for (i = 0; i < h.nr && !ret; i++) {
			uint64_t e = ram_pkt_entry(buf, i);
			bool zero = e & RAM_ENT_ZERO;

			ret = place(p, e >> RAM_ENT_SHIFT, zero ? NULL : data,
				    &reg);
			if (!zero)
				data += RAM_PAGE_SIZE;
		}
		if (ret) {
			conn_fail(p, ret, true);
			break;
		}
	}
	if (in_pkt)
		pc_push_end(&p->push);
out:
	free(buf);
	pthread_mutex_lock(&p->lock);
	/* Once every page is placed, the end of a channel is its close. */
	if (ret && !p->done) {
		pthread_mutex_unlock(&p->lock);
		conn_fail(p, ret, false);
		pthread_mutex_lock(&p->lock);
	}
	p->running--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ------------------------------------------------------------ connect */

static int take_open(struct vmig_postcopy_dest *p)
{
	_Atomic uint64_t *discard;
	struct pc_bitmap_hdr h;
	const char *why = "";
	int ret;

	discard = pc_bitmap_alloc(p->total);
	if (!discard)
		return -ENOMEM;
	/* The source sends OPEN as soon as it is connected. */
	ret = vmig_sock_set_timeout(p->fds[0], p->auth.timeout_ms);
	if (!ret)
		ret = pc_recv_bitmap(p->fds[0], PC_OPEN_MAGIC, p->total, &h,
				     (void *)discard, &why);
	if (ret == -ETIMEDOUT)
		why = "no OPEN within the timeout";
	if (!ret)
		ret = vmig_sock_set_timeout(p->fds[0], 0);
	if (!ret && (h.kind != PC_OPEN_START && h.kind != PC_OPEN_RESUME)) {
		why = "unknown OPEN kind";
		ret = -EPROTO;
	}
	if (!ret && h.kind == PC_OPEN_RESUME && !p->opened) {
		why = "RESUME before any START";
		ret = -EPROTO;
	}
	if (!ret && h.kind == PC_OPEN_START && !h.len) {
		why = "START without its discard bitmap";
		ret = -EPROTO;
	}
	if (ret) {
		vmig_err("postcopy: %s", why);
		goto out;
	}
	/* A START seen again (its HAVE was lost) is a resume. */
	if (!p->opened) {
		ret = drop_missing(p, discard);
		if (!ret)
			ret = uffd_register(p);
		if (ret)
			goto out;
		p->evfd = eventfd(0, EFD_CLOEXEC);
		if (p->evfd < 0) {
			ret = -errno;
			goto out;
		}
		ret = -pthread_create(&p->fault_thread, NULL, fault_thread, p);
		if (ret)
			goto out;
		p->fault_started = true;
		p->opened = true;
	}
out:
	pc_bitmap_free(discard, p->total);
	return ret;
}

/* HAVE, then every request not answered yet. */
static int send_have(struct vmig_postcopy_dest *p)
{
	struct pc_bitmap_hdr h = {
		.magic = PC_HAVE_MAGIC,
		.pages = p->total,
		.len = pc_bitmap_bytes(p->total),
	};
	uint64_t w, g;
	int ret;

	pthread_mutex_lock(&p->send_lock);
	ret = pc_send_bitmap(p->fds[0], &h, (const void *)p->have);
	if (!ret)
		p->fd0 = p->fds[0];
	pthread_mutex_unlock(&p->send_lock);
	if (ret)
		return ret;
	for (w = 0; w < pc_bitmap_bytes(p->total) / 8; w++) {
		uint64_t bits = atomic_load(&p->requested[w]);

		while (bits) {
			g = w * 64 + __builtin_ctzll(bits);
			bits &= bits - 1;
			if (!pc_test(p->have, g))
				send_request(p, g);
		}
	}
	return 0;
}

static void close_conn_locked(struct vmig_postcopy_dest *p)
{
	unsigned int i;

	pthread_mutex_lock(&p->send_lock);
	p->fd0 = -1;
	pthread_mutex_unlock(&p->send_lock);
	for (i = 0; i < p->nfd; i++)
		close(p->fds[i]);
	p->nfd = 0;
}

static void send_done(struct vmig_postcopy_dest *p, int status)
{
	uint8_t msg[PC_DONE_LEN];

	put32(msg, PC_DONE_MAGIC);
	put32(msg + 4, -status);
	pthread_mutex_lock(&p->send_lock);
	if (p->fd0 >= 0)
		vmig_send_all(p->fd0, msg, sizeof(msg));
	pthread_mutex_unlock(&p->send_lock);
}

/*
 * With p->lock held, the connection's sockets shut or ending: join its
 * receivers (each leaves p->lock before it returns) and close it.
 */
static void end_conn_locked(struct vmig_postcopy_dest *p)
{
	unsigned int i;

	while (p->running)
		pthread_cond_wait(&p->cond, &p->lock);
	for (i = 0; i < 1 + PC_MAX_PUSH; i++) {
		if (p->rt[i].started)
			pthread_join(p->rt[i].thread, NULL);
		p->rt[i].started = false;
	}
	close_conn_locked(p);
}

VMIG_EXPORT int vmig_ram_postcopy_dest_accept(struct vmig_postcopy_dest *p,
					      int listen_fd)
{
	unsigned int i, count;
	int ret;

	if (!p || listen_fd < 0)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (p->nfd || p->running || p->fatal) {
		pthread_mutex_unlock(&p->lock);
		return p->fatal ? -EIO : -EBUSY;
	}
	pthread_mutex_unlock(&p->lock);
	ret = vmig_chan_accept_set(listen_fd, &p->auth, VMIG_CHAN_POSTCOPY,
				   1 + PC_MAX_PUSH, p->fds, &count);
	if (ret)
		return ret;
	pthread_mutex_lock(&p->lock);
	p->nfd = count;
	p->err = 0;
	ret = take_open(p);
	if (ret && ret != -ECONNRESET) {
		/* Tell the source why (best effort). */
		pthread_mutex_lock(&p->send_lock);
		p->fd0 = p->fds[0];
		pthread_mutex_unlock(&p->send_lock);
		send_done(p, ret);
	} else if (!ret) {
		ret = send_have(p);
	}
	for (i = 0; !ret && i < count; i++) {
		p->rt[i].p = p;
		p->rt[i].chan = i;
		ret = -pthread_create(&p->rt[i].thread, NULL, receiver,
				      &p->rt[i]);
		p->rt[i].started = !ret;
		p->running += !ret;
	}
	if (ret) {
		for (i = 0; i < count; i++)
			shutdown(p->fds[i], SHUT_RDWR);
		end_conn_locked(p);
	} else if (atomic_load(&p->nhave) == p->total) {
		set_done_locked(p);
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

VMIG_EXPORT int vmig_ram_postcopy_dest_wait(struct vmig_postcopy_dest *p)
{
	unsigned int i;
	uint64_t one = 1;
	int ret;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (!p->nfd && !p->done) {
		pthread_mutex_unlock(&p->lock);
		return -ENOTCONN;
	}
	while (!p->done && !(p->err && !p->running))
		pthread_cond_wait(&p->cond, &p->lock);
	ret = p->done ? 0 : p->err;
	if (p->nfd) {
		/*
		 * DONE tells the source the end: every page placed, or a
		 * page this side cannot place (then no resume can help).
		 */
		if (!ret || p->fatal)
			send_done(p, ret);
		/*
		 * Let the source read DONE and close: read what it still
		 * sends until then (bounded by the timeout), never reset.
		 */
		for (i = 0; i < p->nfd; i++) {
			vmig_sock_set_timeout(p->fds[i], p->auth.timeout_ms);
			shutdown(p->fds[i], SHUT_WR);
		}
		end_conn_locked(p);
		if (ret)
			p->breaks++;
	}
	pthread_mutex_unlock(&p->lock);
	if (!ret && p->fault_started) {
		uffd_unregister(p);
		if (write(p->evfd, &one, sizeof(one)) != sizeof(one))
			vmig_warn("postcopy: cannot stop the fault thread");
		pthread_join(p->fault_thread, NULL);
		p->fault_started = false;
	}
	return ret;
}

VMIG_EXPORT void vmig_ram_postcopy_dest_free(struct vmig_postcopy_dest *p)
{
	uint64_t one = 1;
	unsigned int i;

	if (!p)
		return;
	if (p->secret) {
		pthread_mutex_lock(&p->lock);
		for (i = 0; i < p->nfd; i++)
			shutdown(p->fds[i], SHUT_RDWR);
		end_conn_locked(p);
		pthread_mutex_unlock(&p->lock);
	}
	if (p->fault_started) {
		if (write(p->evfd, &one, sizeof(one)) != sizeof(one))
			vmig_warn("postcopy: cannot stop the fault thread");
		pthread_join(p->fault_thread, NULL);
	}
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->evfd >= 0)
		close(p->evfd);
	pc_bitmap_free(p->have, p->total);
	pc_bitmap_free(p->requested, p->total);
	if (p->secret) {
		memset(p->secret, 0, p->auth.secret_len);
		free(p->secret);
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->send_lock);
	}
	free(p);
}

VMIG_EXPORT void vmig_ram_postcopy_dest_get_stats(struct vmig_postcopy_dest *p,
					       struct vmig_postcopy_dest_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->present = p->present;
	st->faults = atomic_load(&p->n.faults);
	st->requests = atomic_load(&p->n.requests);
	st->placed = atomic_load(&p->n.placed);
	st->zero_placed = atomic_load(&p->n.zero_placed);
	st->duplicates = atomic_load(&p->n.duplicates);
	st->eexist = atomic_load(&p->n.eexist);
	st->bytes = atomic_load(&p->n.bytes);
	pthread_mutex_lock(&p->lock);
	st->discarded = p->discarded;
	st->breaks = p->breaks;
	st->done = p->done;
	pthread_mutex_unlock(&p->lock);
}

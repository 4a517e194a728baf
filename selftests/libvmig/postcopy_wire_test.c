// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Postcopy against a misbehaving peer: a hand-built source or destination
 * (the channel handshake done right, then messages and RAM packets built
 * by hand, Documentation/wire.rst "Postcopy") plays against the real
 * library on the other side of a postcopy connection, over loopback TCP.
 *
 * Destination side (the real vmig_postcopy_dest over a vmig_ram_dest that
 * holds pages [0, PRE) from a precopy):
 *
 * - an OPEN that is corrupt or wrong (bad CRC, RESUME before any START,
 *   START without its bitmap, unknown kind or magic, RAM of another size,
 *   cut short) is refused: accept fails with the errno that names it, the
 *   fake source reads that errno in DONE (none for a connection that just
 *   ended), no discard is taken, and a real source then completes;
 * - a bad RAM packet after a good START (bad CRC, cut short in its header
 *   or its payload, a page beyond the RAM, an END on channel 0) pauses the
 *   destination: wait fails with that errno, the pages of the good packets
 *   stay placed and those of the bad one are not, a thread that touches a
 *   missing page waits, and a real source resumes from the received bitmap
 *   and completes.
 *
 * Source side (the real vmig_postcopy_src):
 *
 * - a HAVE that is corrupt or wrong, an OPEN refused with DONE, a REQUEST
 *   with a bad magic, reserved field or page, a DONE with an error status
 *   or a status that is no errno: vmig_ram_postcopy_src_run() returns the
 *   errno that names it at once (the fake waits 3 s before it closes), the
 *   source closes its channels and its RAM is untouched; where no HAVE was
 *   taken, a run against the real destination then completes;
 * - a destination that closes before HAVE, or a relay that cuts the
 *   connection in the middle of the push: the run fails, and the next one
 *   completes against the real destination; a source that took a HAVE and
 *   lost that destination may not RESUME into a fresh one (refused).
 *
 * Silence and partition: a source that connects and says nothing is
 * given up after the timeout (accept fails with -ETIMEDOUT, nothing
 * taken); a partition in the middle of the push (loopback taken down in a
 * network namespace of the test's own, so no FIN and no reset) fails both
 * sides within a few timeouts, and once the network is back the source
 * resumes and completes.
 *
 * Completion always means: every page placed exactly once (no EEXIST, the
 * pages held plus those placed add up to the RAM) and the destination's
 * RAM equal to the source's.  Skipped without userfaultfd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "testnet.h"
#include "postcopy.h"
#include "vmig.h"

#define PG		4096ULL
#define PAGES		512ULL			/* 2 MiB of RAM */
#define SIZE		(PAGES * PG)
#define BM_BYTES	(PAGES / 8)		/* its bitmaps */
#define PRE		32ULL			/* held from precopy */
#define DISCARD_PG	5ULL			/* discarded by the fake START */
#define GOOD_PAGES	20ULL			/* the fake's good packets */
#define TOUCH_PG	300ULL			/* touched while paused */
#define REQ_PG		200ULL			/* asked by the fake destination */
#define LACK_PG		100ULL			/* the fake destination lacks */
#define LACK_N		8ULL			/* pages from LACK_PG */
#define NCHAN		3			/* the fake source's channels */
#define PEER_MS		3000			/* a fake's patience */
#define PROMPT_MS	2000			/* "at once", on a busy host */

/* ------------------------------------------------------------ helpers */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };

	nanosleep(&ts, NULL);
}

static bool have_uffd(void)
{
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC);

	if (fd < 0 && errno == EPERM) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return false;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
		close(dev);
	}
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void set_timeouts(int fd, unsigned int ms)
{
	struct timeval tv = { ms / 1000, ms % 1000 * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Page g of the source: a pattern, every seventh page zero. */
static bool page_zero(uint64_t g)
{
	return g % 7 == 3;
}

static void fill_pattern(uint8_t *mem)
{
	uint64_t g, i, *w;

	for (g = 0; g < PAGES; g++) {
		w = (uint64_t *)(mem + g * PG);
		for (i = 0; i < PG / 8; i++)
			w[i] = page_zero(g) ? 0 :
			       0x9e3779b97f4a7c15ULL * (g + 1) ^ (i << 3 | 1);
	}
}

static void bit_set(uint8_t *bm, uint64_t p)
{
	bm[p / 8] |= 1 << (p % 8);
}

static void bit_clear(uint8_t *bm, uint64_t p)
{
	bm[p / 8] &= ~(1 << (p % 8));
}

/*
 * A sealed RAM packet of pages g[0..n) with their data from mem (zero
 * pages as ZERO entries, as the source sends them); returns its length.
 */
static size_t build_pkt(uint8_t *pkt, uint64_t seq, const uint64_t *g,
			unsigned int n, const uint8_t *mem)
{
	struct ram_pkt_hdr h = { .nr = n, .seq = seq };
	uint8_t *ent = pkt + RAM_PKT_HDR_LEN, *data = ent + n * 8;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint64_t e = g[i] << RAM_ENT_SHIFT;

		if (g[i] < PAGES && page_zero(g[i])) {
			e |= RAM_ENT_ZERO;
		} else {
			memcpy(data, mem + (g[i] % PAGES) * PG, PG);
			data += PG;
		}
		put64(ent + i * 8, e);
	}
	h.len = data - ent;
	ram_pkt_seal(&h, pkt);
	return RAM_PKT_HDR_LEN + h.len;
}

/*
 * OPEN or HAVE by hand: the 24 header bytes, then send_len bytes of the
 * bitmap (len announced).  corrupt flips a bit of the bitmap after the
 * CRC is computed (a bit changed in transit).
 */
static int send_bitmap_msg(int fd, uint32_t magic, uint32_t kind,
			   uint64_t pages, const uint8_t *bm, uint32_t len,
			   uint32_t send_len, bool corrupt)
{
	uint8_t hb[PC_OPEN_LEN], *copy = NULL;
	uint32_t crc;
	int ret;

	put32(hb, magic);
	put32(hb + 4, kind);
	put64(hb + 8, pages);
	put32(hb + 16, len);
	put32(hb + 20, 0);
	crc = vmig_crc32c(0, hb, sizeof(hb));
	crc = vmig_crc32c(crc, bm, len);
	put32(hb + 20, crc);
	ret = vmig_send_all(fd, hb, sizeof(hb));
	if (ret || !send_len)
		return ret;
	copy = malloc(send_len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, bm, send_len);
	if (corrupt)
		copy[send_len / 2] ^= 0x80;
	ret = vmig_send_all(fd, copy, send_len);
	free(copy);
	return ret;
}

/*
 * Receive a bitmap message of PAGES pages, checked, into hb (whose first
 * got bytes are there already) and bm: 0 or an errno.
 */
static int recv_bitmap_msg(int fd, uint8_t *hb, size_t got, uint32_t magic,
			   uint32_t *kind, uint8_t *bm)
{
	uint32_t crc;
	ssize_t r;

	r = vmig_recv_all(fd, hb + got, PC_OPEN_LEN - got);
	if (r != (ssize_t)(PC_OPEN_LEN - got))
		return r < 0 ? (int)r : -ECONNRESET;
	*kind = get32(hb + 4);
	if (get32(hb) != magic || get64(hb + 8) != PAGES ||
	    get32(hb + 16) != BM_BYTES)
		return -EPROTO;
	crc = get32(hb + 20);
	put32(hb + 20, 0);
	r = vmig_recv_all(fd, bm, BM_BYTES);
	if (r != BM_BYTES)
		return r < 0 ? (int)r : -ECONNRESET;
	if (vmig_crc32c(vmig_crc32c(0, hb, PC_OPEN_LEN), bm, BM_BYTES) != crc)
		return -EBADMSG;
	return 0;
}

static int send_u32_pair(int fd, uint32_t a, uint32_t b)
{
	uint8_t m[8];

	put32(m, a);
	put32(m + 4, b);
	return vmig_send_all(fd, m, sizeof(m));
}

/*
 * Read and drop what fd still carries until the peer closes (or resets)
 * it, within PEER_MS: true if it did.  *extra counts the bytes read.
 */
static bool wait_eof(int fd, uint64_t *extra)
{
	uint64_t end = now_ms() + PEER_MS, t;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t buf[4096];
	ssize_t n;

	while ((t = now_ms()) < end) {
		if (poll(&pfd, 1, end - t) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
		if (n > 0 && extra)
			*extra += n;
	}
	return false;
}

static void close_all(int *fd, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (fd[i] >= 0)
			close(fd[i]);
		fd[i] = -1;
	}
}

/* ------------------------------------------------------------- world */

/* Both sides' RAM, the real destination, the listening socket. */
struct world {
	uint8_t *src_mem, *dst_mem, *orig;
	struct vmig_ram *ram;
	struct vmig_ram_dest *dest;
	struct vmig_postcopy_dest *pd;
	struct vmig_session_config scfg;
	struct vmig_chan_auth auth;
	struct sockaddr_in sa;
	int lfd;
	/* Helper threads not joined: teardown then leaves it to exit(). */
	unsigned int busy;
};

static const char secret[] = "postcopy wire test secret 012345";

static void world_init(struct __test_metadata *_metadata, struct world *w)
{
	struct vmig_ram_region r = { .size = SIZE, .fd = -1, .kvm_slot = -1 };
	uint64_t g[PRE], i;
	uint8_t *pkt;
	size_t len;

	w->lfd = -1;
	w->src_mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w->dst_mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, w->src_mem);
	ASSERT_NE(MAP_FAILED, w->dst_mem);
	w->orig = malloc(SIZE);
	ASSERT_NE(NULL, w->orig);
	fill_pattern(w->src_mem);
	memcpy(w->orig, w->src_mem, SIZE);

	memcpy(w->scfg.session_id, "pc-wire-test-001", VMIG_SESSION_ID_LEN);
	w->scfg.secret = secret;
	w->scfg.secret_len = sizeof(secret) - 1;
	w->scfg.timeout_ms = PEER_MS;
	memcpy(w->auth.session_id, w->scfg.session_id, VMIG_SESSION_ID_LEN);
	w->auth.secret = (const uint8_t *)secret;
	w->auth.secret_len = sizeof(secret) - 1;
	w->auth.timeout_ms = PEER_MS;

	r.host_addr = w->src_mem;
	ASSERT_EQ(0, vmig_ram_new(&r, 1, NULL, &w->ram));
	r.host_addr = w->dst_mem;
	ASSERT_EQ(0, vmig_ram_dest_new(&r, 1, &w->dest));
	/* Precopy placed pages [0, PRE). */
	pkt = malloc(RAM_MAX_PKT);
	ASSERT_NE(NULL, pkt);
	for (i = 0; i < PRE; i++)
		g[i] = i;
	len = build_pkt(pkt, 1, g, PRE, w->src_mem);
	ASSERT_EQ(0, vmig_ram_dest_feed(w->dest, pkt, len));
	free(pkt);
	ASSERT_EQ(0, vmig_ram_postcopy_dest_new(w->dest, &w->scfg, &w->pd));
	w->lfd = listen_lo(&w->sa);
	ASSERT_LE(0, w->lfd);
}

static void world_free(struct world *w)
{
	if (w->busy)
		return;
	vmig_ram_postcopy_dest_free(w->pd);
	vmig_ram_dest_free(w->dest);
	vmig_ram_free(w->ram);
	if (w->lfd >= 0)
		close(w->lfd);
	if (w->src_mem && w->src_mem != MAP_FAILED)
		munmap(w->src_mem, SIZE);
	if (w->dst_mem && w->dst_mem != MAP_FAILED)
		munmap(w->dst_mem, SIZE);
	free(w->orig);
}

static struct vmig_postcopy_src *new_source(struct world *w)
{
	struct vmig_postcopy_config cfg;
	struct vmig_postcopy_src *s = NULL;

	vmig_postcopy_config_init(&cfg);
	cfg.push_channels = 2;
	cfg.batch_pages = 16;
	if (vmig_ram_postcopy_src_new(w->ram, &w->scfg, &cfg, &s))
		return NULL;
	return s;
}

/* A real source's run, in a thread. */
struct src_run {
	struct vmig_postcopy_src *s;
	struct sockaddr_in sa;
	int ret;
	uint64_t ms;
	pthread_t th;
};

static void *src_main(void *arg)
{
	struct src_run *r = arg;
	uint64_t t0 = now_ms();

	r->ret = vmig_ram_postcopy_src_run(r->s, (struct sockaddr *)&r->sa,
					   sizeof(r->sa));
	r->ms = now_ms() - t0;
	return NULL;
}

static bool stats_reach(struct vmig_postcopy_dest *pd, uint64_t placed,
			uint64_t faults)
{
	struct vmig_postcopy_dest_stats ds;
	uint64_t end = now_ms() + PEER_MS;

	do {
		vmig_ram_postcopy_dest_get_stats(pd, &ds);
		if (ds.placed + ds.zero_placed >= placed && ds.faults >= faults)
			return true;
		sleep_ms(1);
	} while (now_ms() < end);
	return false;
}

/*
 * Every page placed exactly once, both RAMs equal.  Only once the
 * destination is done: before, reading its RAM would fault and wait.
 */
static void check_complete(struct __test_metadata *_metadata,
			   struct world *w)
{
	struct vmig_postcopy_dest_stats ds;

	vmig_ram_postcopy_dest_get_stats(w->pd, &ds);
	ASSERT_TRUE(ds.done);
	EXPECT_EQ(0, ds.eexist);
	EXPECT_EQ(PAGES, ds.present - ds.discarded + ds.placed +
			 ds.zero_placed);
	EXPECT_EQ(0, memcmp(w->src_mem, w->dst_mem, SIZE));
	EXPECT_EQ(0, memcmp(w->src_mem, w->orig, SIZE));
}

/* Source s against the real destination, to the end. */
static void complete_with_real(struct __test_metadata *_metadata,
			       struct world *w, struct vmig_postcopy_src *s)
{
	struct src_run sr = { .s = s, .sa = w->sa };

	ASSERT_EQ(0, pthread_create(&sr.th, NULL, src_main, &sr));
	w->busy++;
	ASSERT_EQ(0, vmig_ram_postcopy_dest_accept(w->pd, w->lfd));
	ASSERT_EQ(0, vmig_ram_postcopy_dest_wait(w->pd));
	pthread_join(sr.th, NULL);
	w->busy--;
	ASSERT_EQ(0, sr.ret);
	check_complete(_metadata, w);
}

/* A thread reading a word of a page: it waits while the page is missing. */
struct toucher {
	const uint64_t *addr;
	uint64_t val;
	atomic_bool done;
	pthread_t th;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	t->val = __atomic_load_n(t->addr, __ATOMIC_RELAXED);
	atomic_store(&t->done, true);
	return NULL;
}

/* -------------------------------------------------------- fake source */

enum src_bad {
	/* The OPEN */
	SB_OPEN_CRC = 1,
	SB_OPEN_RESUME,
	SB_OPEN_NO_BITMAP,
	SB_OPEN_KIND,
	SB_OPEN_MAGIC,
	SB_OPEN_PAGES,
	SB_OPEN_TRUNC,
	/* After a good START, HAVE and good packets */
	SB_PUSH_CRC,
	SB_PUSH_TRUNC,
	SB_PUSH_TRUNC_HDR,
	SB_PUSH_BEYOND,
	SB_END_ON_0,
};

struct fake_src {
	struct world *w;
	enum src_bad bad;
	pthread_t th;
	/* Results */
	int err;			/* the fake's own failure */
	const char *where;
	bool got_done;
	uint32_t done_status;
	bool got_have, have_ok;
	bool eof;			/* the destination closed channel 0 */
	uint64_t extra;			/* bytes sent after DONE, bad input */
};

/* A fake's own failure: where it failed, and the errno. */
static int fail(const char **where, const char *what, int err)
{
	*where = what;
	return err ? err : -EIO;
}

static int fake_src_open(struct fake_src *f, int fd)
{
	uint8_t bm[BM_BYTES], big[BM_BYTES * 2];
	int ret;

	memset(bm, 0, sizeof(bm));
	bit_set(bm, DISCARD_PG);
	switch (f->bad) {
	case SB_OPEN_CRC:
		return send_bitmap_msg(fd, PC_OPEN_MAGIC, PC_OPEN_START, PAGES,
				       bm, BM_BYTES, BM_BYTES, true);
	case SB_OPEN_RESUME:
		return send_bitmap_msg(fd, PC_OPEN_MAGIC, PC_OPEN_RESUME, PAGES,
				       NULL, 0, 0, false);
	case SB_OPEN_NO_BITMAP:
		return send_bitmap_msg(fd, PC_OPEN_MAGIC, PC_OPEN_START, PAGES,
				       NULL, 0, 0, false);
	case SB_OPEN_KIND:
		return send_bitmap_msg(fd, PC_OPEN_MAGIC, 3, PAGES, bm,
				       BM_BYTES, BM_BYTES, false);
	case SB_OPEN_MAGIC:
		return send_bitmap_msg(fd, PC_HAVE_MAGIC, PC_OPEN_START, PAGES,
				       bm, BM_BYTES, BM_BYTES, false);
	case SB_OPEN_PAGES:
		memset(big, 0, sizeof(big));
		return send_bitmap_msg(fd, PC_OPEN_MAGIC, PC_OPEN_START,
				       PAGES * 2, big, sizeof(big), sizeof(big),
				       false);
	case SB_OPEN_TRUNC:
		ret = send_bitmap_msg(fd, PC_OPEN_MAGIC, PC_OPEN_START, PAGES,
				      bm, BM_BYTES, BM_BYTES / 2, false);
		if (!ret && shutdown(fd, SHUT_WR))
			ret = -errno;
		return ret;
	default:
		return send_bitmap_msg(fd, PC_OPEN_MAGIC, PC_OPEN_START, PAGES,
				       bm, BM_BYTES, BM_BYTES, false);
	}
}

/* The bad input after the good packets; fd[] may lose a channel. */
static int fake_src_bad_packet(struct fake_src *f, int *fd, uint8_t *pkt)
{
	uint64_t g[4] = { PRE + GOOD_PAGES, PRE + GOOD_PAGES + 1,
			  PRE + GOOD_PAGES + 2, PRE + GOOD_PAGES + 3 };
	struct ram_pkt_hdr end = { .flags = RAM_PKT_F_END };
	size_t len;
	int ret;

	switch (f->bad) {
	case SB_PUSH_CRC:
		len = build_pkt(pkt, 10, g, 4, f->w->src_mem);
		pkt[len - 100] ^= 0x01;
		return vmig_send_all(fd[1], pkt, len);
	case SB_PUSH_TRUNC:
		len = build_pkt(pkt, 10, g, 4, f->w->src_mem);
		ret = vmig_send_all(fd[1], pkt, len / 2);
		close(fd[1]);
		fd[1] = -1;
		return ret;
	case SB_PUSH_TRUNC_HDR:
		len = build_pkt(pkt, 10, g, 4, f->w->src_mem);
		ret = vmig_send_all(fd[1], pkt, RAM_PKT_HDR_LEN / 2);
		close(fd[1]);
		fd[1] = -1;
		return ret;
	case SB_PUSH_BEYOND:
		g[3] = PAGES;
		len = build_pkt(pkt, 10, g, 4, f->w->src_mem);
		return vmig_send_all(fd[1], pkt, len);
	case SB_END_ON_0:
		ram_pkt_seal(&end, pkt);
		return vmig_send_all(fd[0], pkt, RAM_PKT_HDR_LEN);
	default:
		return -EINVAL;
	}
}

/* The fake source's side of the connection, on fd[] (it opens them). */
static int fake_src_talk(struct fake_src *f, int *fd, uint8_t *pkt)
{
	struct world *w = f->w;
	struct vmig_chan_id id = { .kind = VMIG_CHAN_POSTCOPY,
				   .count = NCHAN };
	struct vmig_postcopy_dest_stats ds;
	uint8_t bm[BM_BYTES], want[BM_BYTES], hb[PC_OPEN_LEN];
	uint64_t g[8], i;
	int ret;
	uint32_t kind;
	size_t len;
	ssize_t r;

	memcpy(id.session_id, w->scfg.session_id, VMIG_SESSION_ID_LEN);
	for (i = 0; i < NCHAN; i++) {
		id.index = i;
		fd[i] = vmig_chan_connect((struct sockaddr *)&w->sa,
					  sizeof(w->sa), &w->auth, &id);
		if (fd[i] < 0)
			return fail(&f->where, "connect", fd[i]);
		set_timeouts(fd[i], PEER_MS);
	}
	ret = fake_src_open(f, fd[0]);
	if (ret)
		return fail(&f->where, "sending OPEN", ret);

	/* HAVE, or DONE with the destination's refusal, or the end. */
	r = vmig_recv_all(fd[0], hb, PC_DONE_LEN);
	if (r <= 0) {
		f->eof = r == 0 || r == -ECONNRESET;
		return f->eof ? 0 : fail(&f->where, "reading HAVE", (int)r);
	}
	if (r != PC_DONE_LEN)
		return fail(&f->where, "short answer to OPEN", -EPROTO);
	if (get32(hb) == PC_DONE_MAGIC) {
		f->got_done = true;
		f->done_status = get32(hb + 4);
		f->eof = wait_eof(fd[0], &f->extra);
		return 0;
	}
	ret = recv_bitmap_msg(fd[0], hb, PC_DONE_LEN, PC_HAVE_MAGIC, &kind,
			      bm);
	if (ret || kind)
		return fail(&f->where, "a bad HAVE", ret ? ret : -EPROTO);
	f->got_have = true;
	/* Held: precopy's pages but the discarded one. */
	memset(want, 0, sizeof(want));
	for (i = 0; i < PRE; i++)
		bit_set(want, i);
	bit_clear(want, DISCARD_PG);
	f->have_ok = !memcmp(bm, want, BM_BYTES);

	/* Good packets: two on channel 1, one on 2 that repeats a page. */
	for (i = 0; i < 8; i++)
		g[i] = PRE + i;
	len = build_pkt(pkt, 1, g, 8, w->src_mem);
	ret = vmig_send_all(fd[1], pkt, len);
	for (i = 0; i < 8; i++)
		g[i] = PRE + 8 + i;
	len = build_pkt(pkt, 2, g, 8, w->src_mem);
	if (!ret)
		ret = vmig_send_all(fd[1], pkt, len);
	if (ret)
		return fail(&f->where, "sending good packets", ret);
	if (!stats_reach(w->pd, 16, 0))
		return fail(&f->where, "good packets not placed", -ETIMEDOUT);
	for (i = 0; i < 4; i++)
		g[i] = PRE + 16 + i;
	g[4] = PRE;
	len = build_pkt(pkt, 3, g, 5, w->src_mem);
	ret = vmig_send_all(fd[2], pkt, len);
	if (ret)
		return fail(&f->where, "sending good packets", ret);
	if (!stats_reach(w->pd, GOOD_PAGES, 0))
		return fail(&f->where, "good packets not placed", -ETIMEDOUT);
	/* The duplicate is counted once the packet is done with. */
	for (i = 0; i < 1000; i++) {
		vmig_ram_postcopy_dest_get_stats(w->pd, &ds);
		if (ds.duplicates)
			break;
		sleep_ms(1);
	}

	ret = fake_src_bad_packet(f, fd, pkt);
	if (ret)
		return fail(&f->where, "sending the bad packet", ret);
	f->eof = wait_eof(fd[0], &f->extra);
	return 0;
}

static void *fake_src_main(void *arg)
{
	struct fake_src *f = arg;
	uint8_t *pkt = malloc(RAM_MAX_PKT);
	int fd[NCHAN], i;

	for (i = 0; i < NCHAN; i++)
		fd[i] = -1;
	f->err = pkt ? fake_src_talk(f, fd, pkt) :
		       fail(&f->where, "malloc", -ENOMEM);
	close_all(fd, NCHAN);
	free(pkt);
	return NULL;
}

/* ---------------------------------------- destination: a refused OPEN */

FIXTURE(dst_open)
{
	struct world w;
};

FIXTURE_VARIANT(dst_open)
{
	enum src_bad bad;
	int err;		/* what accept returns, -errno */
	bool done;		/* the fake source is told so in DONE */
};

FIXTURE_VARIANT_ADD(dst_open, bad_crc)
{
	.bad = SB_OPEN_CRC, .err = -EBADMSG, .done = true,
};

FIXTURE_VARIANT_ADD(dst_open, resume_before_start)
{
	.bad = SB_OPEN_RESUME, .err = -EPROTO, .done = true,
};

FIXTURE_VARIANT_ADD(dst_open, start_without_bitmap)
{
	.bad = SB_OPEN_NO_BITMAP, .err = -EPROTO, .done = true,
};

FIXTURE_VARIANT_ADD(dst_open, unknown_kind)
{
	.bad = SB_OPEN_KIND, .err = -EPROTO, .done = true,
};

FIXTURE_VARIANT_ADD(dst_open, wrong_magic)
{
	.bad = SB_OPEN_MAGIC, .err = -EPROTO, .done = true,
};

FIXTURE_VARIANT_ADD(dst_open, ram_of_another_size)
{
	.bad = SB_OPEN_PAGES, .err = -EMEDIUMTYPE, .done = true,
};

/* The connection ended: nobody to tell. */
FIXTURE_VARIANT_ADD(dst_open, cut_in_its_bitmap)
{
	.bad = SB_OPEN_TRUNC, .err = -ECONNRESET, .done = false,
};

FIXTURE_SETUP(dst_open)
{
	if (!have_uffd())
		SKIP(return, "no userfaultfd");
	world_init(_metadata, &self->w);
}

FIXTURE_TEARDOWN(dst_open)
{
	world_free(&self->w);
}

TEST_F(dst_open, refused_then_a_real_source_completes)
{
	struct fake_src f = { .w = &self->w, .bad = variant->bad };
	struct vmig_postcopy_src_stats ss;
	struct vmig_postcopy_dest_stats ds;
	struct vmig_postcopy_src *s;
	int ret;

	ASSERT_EQ(0, pthread_create(&f.th, NULL, fake_src_main, &f));
	self->w.busy++;
	ret = vmig_ram_postcopy_dest_accept(self->w.pd, self->w.lfd);
	EXPECT_EQ(variant->err, ret);
	pthread_join(f.th, NULL);
	self->w.busy--;
	if (f.err)
		TH_LOG("fake source: %s: %d", f.where, f.err);
	ASSERT_EQ(0, f.err);
	EXPECT_FALSE(f.got_have);
	EXPECT_EQ(variant->done, f.got_done);
	if (variant->done)
		EXPECT_EQ((uint32_t)-variant->err, f.done_status);
	/* Then the destination closed the connection. */
	EXPECT_TRUE(f.eof);
	EXPECT_EQ(0, f.extra);

	/* Not connected, nothing taken. */
	EXPECT_EQ(-ENOTCONN, vmig_ram_postcopy_dest_wait(self->w.pd));
	vmig_ram_postcopy_dest_get_stats(self->w.pd, &ds);
	EXPECT_FALSE(ds.done);
	EXPECT_EQ(PRE, ds.present);
	EXPECT_EQ(0, ds.discarded);
	EXPECT_EQ(0, ds.placed + ds.zero_placed);
	EXPECT_EQ(0, ds.breaks);

	s = new_source(&self->w);
	ASSERT_NE(NULL, s);
	complete_with_real(_metadata, &self->w, s);
	vmig_ram_postcopy_src_get_stats(s, &ss);
	EXPECT_EQ(PRE, ss.have);
	EXPECT_EQ(1, ss.connects);
	vmig_ram_postcopy_dest_get_stats(self->w.pd, &ds);
	EXPECT_EQ(0, ds.discarded);
	EXPECT_EQ(0, ds.eexist);
	vmig_ram_postcopy_src_free(s);
}

/* ------------------------------------- destination: a bad RAM packet */

FIXTURE(dst_push)
{
	struct world w;
};

FIXTURE_VARIANT(dst_push)
{
	enum src_bad bad;
	int err;		/* what wait returns */
};

FIXTURE_VARIANT_ADD(dst_push, bad_crc)
{
	.bad = SB_PUSH_CRC, .err = -EBADMSG,
};

FIXTURE_VARIANT_ADD(dst_push, cut_in_its_payload)
{
	.bad = SB_PUSH_TRUNC, .err = -ECONNRESET,
};

FIXTURE_VARIANT_ADD(dst_push, cut_in_its_header)
{
	.bad = SB_PUSH_TRUNC_HDR, .err = -ECONNRESET,
};

FIXTURE_VARIANT_ADD(dst_push, page_beyond_the_ram)
{
	.bad = SB_PUSH_BEYOND, .err = -EPROTO,
};

FIXTURE_VARIANT_ADD(dst_push, end_on_channel_0)
{
	.bad = SB_END_ON_0, .err = -EPROTO,
};

FIXTURE_SETUP(dst_push)
{
	if (!have_uffd())
		SKIP(return, "no userfaultfd");
	world_init(_metadata, &self->w);
}

FIXTURE_TEARDOWN(dst_push)
{
	world_free(&self->w);
}

TEST_F(dst_push, pauses_then_a_real_source_resumes)
{
	struct fake_src f = { .w = &self->w, .bad = variant->bad };
	struct toucher t = {
		.addr = (const uint64_t *)(self->w.dst_mem +
						    TOUCH_PG * PG + 8),
	};
	struct vmig_postcopy_src_stats ss;
	struct vmig_postcopy_dest_stats ds;
	struct vmig_postcopy_src *s;
	int ret;

	ASSERT_EQ(0, pthread_create(&f.th, NULL, fake_src_main, &f));
	self->w.busy++;
	ASSERT_EQ(0, vmig_ram_postcopy_dest_accept(self->w.pd, self->w.lfd));
	ret = vmig_ram_postcopy_dest_wait(self->w.pd);
	pthread_join(f.th, NULL);
	self->w.busy--;
	if (f.err)
		TH_LOG("fake source: %s: %d", f.where, f.err);
	ASSERT_EQ(0, f.err);
	EXPECT_EQ(variant->err, ret);
	EXPECT_TRUE(f.got_have);
	EXPECT_TRUE(f.have_ok);
	/* A break, not a failure: no DONE, the connection is closed. */
	EXPECT_FALSE(f.got_done);
	EXPECT_TRUE(f.eof);
	EXPECT_EQ(0, f.extra);

	/* Paused: the good packets placed, none of the bad one's pages. */
	vmig_ram_postcopy_dest_get_stats(self->w.pd, &ds);
	EXPECT_FALSE(ds.done);
	EXPECT_EQ(1, ds.breaks);
	EXPECT_EQ(PRE, ds.present);
	EXPECT_EQ(1, ds.discarded);
	EXPECT_EQ(GOOD_PAGES, ds.placed + ds.zero_placed);
	EXPECT_EQ(1, ds.duplicates);
	EXPECT_EQ(0, ds.eexist);

	/* A thread touching a missing page waits for it. */
	ASSERT_EQ(0, pthread_create(&t.th, NULL, touch_main, &t));
	self->w.busy++;
	ASSERT_TRUE(stats_reach(self->w.pd, 0, 1));
	sleep_ms(50);
	EXPECT_FALSE(atomic_load(&t.done));

	s = new_source(&self->w);
	ASSERT_NE(NULL, s);
	complete_with_real(_metadata, &self->w, s);
	pthread_join(t.th, NULL);
	self->w.busy--;
	EXPECT_EQ(*(uint64_t *)(self->w.src_mem + TOUCH_PG * PG + 8), t.val);

	vmig_ram_postcopy_src_get_stats(s, &ss);
	/* It resumed from the received bitmap: what the fake placed held. */
	EXPECT_EQ(PRE - 1 + GOOD_PAGES, ss.have);
	EXPECT_EQ(1, ss.connects);
	/* The request made while paused was sent on resume, and served. */
	EXPECT_LE(1, ss.requests);
	vmig_ram_postcopy_dest_get_stats(self->w.pd, &ds);
	EXPECT_LE(1, ds.requests);
	EXPECT_EQ(1, ds.breaks);
	EXPECT_EQ(1, ds.discarded);
	vmig_ram_postcopy_src_free(s);
}

/* --------------------------------------------------- fake destination */

enum dst_bad {
	/* Instead of a good HAVE */
	DB_HAVE_CRC = 1,
	DB_HAVE_PAGES,
	DB_HAVE_NO_BITMAP,
	DB_HAVE_SHORT,
	DB_REFUSE,
	/* After a good HAVE */
	DB_REQ_MAGIC,
	DB_REQ_RESERVED,
	DB_REQ_BEYOND,
	DB_DONE,
	/* Closing */
	DB_CLOSE_BEFORE_HAVE,
	DB_CLOSE_MID_PUSH,
};

struct fake_dst {
	struct world *w;
	enum dst_bad bad;
	uint32_t status;		/* for DONE */
	pthread_t th;
	/* Results */
	int err;
	const char *where;
	bool open_ok;			/* a good START came */
	bool answer_ok;			/* a good REQUEST was answered */
	bool eof;			/* the source closed channel 0 */
	uint64_t pushed;		/* bytes read from channel 1 */
};

/* Ask for REQ_PG and check the answer on channel 0. */
static int fake_dst_request(struct fake_dst *f, int fd, uint8_t *pkt)
{
	const char *why;
	struct ram_pkt_hdr h;
	uint8_t q[PC_REQ_LEN];
	int ret;
	ssize_t r;

	put32(q, PC_REQ_MAGIC);
	put32(q + 4, 0);
	put64(q + 8, REQ_PG);
	ret = vmig_send_all(fd, q, sizeof(q));
	if (ret)
		return ret;
	r = vmig_recv_all(fd, pkt, RAM_PKT_HDR_LEN);
	if (r != RAM_PKT_HDR_LEN)
		return -ECONNRESET;
	ret = ram_pkt_decode(pkt, &h, &why);
	if (ret)
		return ret;
	r = vmig_recv_all(fd, pkt + RAM_PKT_HDR_LEN, h.len);
	if (r != h.len)
		return -ECONNRESET;
	ret = ram_pkt_check(pkt, RAM_PKT_HDR_LEN + h.len, PAGES, &h, &why);
	if (ret)
		return ret;
	f->answer_ok = h.nr == 1 &&
		       ram_pkt_entry(pkt, 0) == REQ_PG << RAM_ENT_SHIFT &&
		       !memcmp(pkt + RAM_PKT_HDR_LEN + 8,
			       f->w->src_mem + REQ_PG * PG, PG);
	return 0;
}

static int send_request(int fd, uint32_t magic, uint32_t zero, uint64_t g)
{
	uint8_t q[PC_REQ_LEN];

	put32(q, magic);
	put32(q + 4, zero);
	put64(q + 8, g);
	return vmig_send_all(fd, q, sizeof(q));
}

/* Read from the push channels fd[0..n) until SIZE / 4 bytes came. */
static int read_push(struct fake_dst *f, int *fd, unsigned int n,
		     uint8_t *buf)
{
	struct pollfd pfd[PC_MAX_PUSH];
	uint64_t end = now_ms() + PEER_MS;
	unsigned int i, open = n;
	ssize_t got;

	for (i = 0; i < n; i++) {
		pfd[i].fd = fd[i];
		pfd[i].events = POLLIN;
	}
	while (f->pushed < SIZE / 4) {
		if (!open || now_ms() >= end)
			return -ETIMEDOUT;
		if (poll(pfd, n, 100) <= 0)
			continue;
		for (i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			got = recv(fd[i], buf, RAM_MAX_PKT, MSG_DONTWAIT);
			if (got > 0) {
				f->pushed += got;
			} else if (!got || (errno != EAGAIN && errno != EINTR)) {
				pfd[i].fd = -1;
				open--;
			}
		}
	}
	return 0;
}

/* The fake destination's side: it accepts the channels into fd[]. */
static int fake_dst_talk(struct fake_dst *f, int *fd, uint8_t *pkt)
{
	struct world *w = f->w;
	uint8_t bm[BM_BYTES], have[BM_BYTES], big[BM_BYTES * 2];
	uint8_t hb[PC_OPEN_LEN];
	unsigned int count = 0, i;
	uint32_t kind;
	int ret;

	ret = vmig_chan_accept_set(w->lfd, &w->auth, VMIG_CHAN_POSTCOPY,
				   1 + PC_MAX_PUSH, fd, &count);
	if (ret)
		return fail(&f->where, "accepting the channels", ret);
	for (i = 0; i < count; i++)
		set_timeouts(fd[i], PEER_MS);
	ret = recv_bitmap_msg(fd[0], hb, 0, PC_OPEN_MAGIC, &kind, bm);
	if (ret)
		return fail(&f->where, "reading OPEN", ret);
	f->open_ok = kind == PC_OPEN_START;

	/* Held: all but LACK_N pages, so the push is short. */
	memset(have, 0xff, sizeof(have));
	for (i = 0; i < LACK_N; i++)
		bit_clear(have, LACK_PG + i);
	switch (f->bad) {
	case DB_HAVE_CRC:
		ret = send_bitmap_msg(fd[0], PC_HAVE_MAGIC, 0, PAGES, have,
				      BM_BYTES, BM_BYTES, true);
		break;
	case DB_HAVE_PAGES:
		memset(big, 0, sizeof(big));
		ret = send_bitmap_msg(fd[0], PC_HAVE_MAGIC, 0, PAGES * 2, big,
				      sizeof(big), sizeof(big), false);
		break;
	case DB_HAVE_NO_BITMAP:
		ret = send_bitmap_msg(fd[0], PC_HAVE_MAGIC, 0, PAGES, NULL, 0,
				      0, false);
		break;
	case DB_HAVE_SHORT:
		ret = send_bitmap_msg(fd[0], PC_HAVE_MAGIC, 0, PAGES, have,
				      BM_BYTES - 8, BM_BYTES - 8, false);
		break;
	case DB_REFUSE:
		ret = send_u32_pair(fd[0], PC_DONE_MAGIC, f->status);
		break;
	case DB_CLOSE_BEFORE_HAVE:
		return 0;
	case DB_CLOSE_MID_PUSH:
		/* Hold nothing: the push sends the whole RAM. */
		memset(have, 0, sizeof(have));
		ret = send_bitmap_msg(fd[0], PC_HAVE_MAGIC, 0, PAGES, have,
				      BM_BYTES, BM_BYTES, false);
		if (!ret)
			ret = read_push(f, fd + 1, count - 1, pkt);
		return ret ? fail(&f->where, "reading the push", ret) : 0;
	default:
		ret = send_bitmap_msg(fd[0], PC_HAVE_MAGIC, 0, PAGES, have,
				      BM_BYTES, BM_BYTES, false);
		if (!ret)
			ret = fake_dst_request(f, fd[0], pkt);
		if (ret)
			return fail(&f->where, "a good request", ret);
		if (f->bad == DB_REQ_MAGIC)
			ret = send_request(fd[0], 0x12345678, 0, REQ_PG);
		else if (f->bad == DB_REQ_RESERVED)
			ret = send_request(fd[0], PC_REQ_MAGIC, 1, REQ_PG);
		else if (f->bad == DB_REQ_BEYOND)
			ret = send_request(fd[0], PC_REQ_MAGIC, 0, PAGES);
		else
			ret = send_u32_pair(fd[0], PC_DONE_MAGIC, f->status);
		break;
	}
	if (ret)
		return fail(&f->where, "sending the bad message", ret);
	f->eof = wait_eof(fd[0], NULL);
	return 0;
}

static void *fake_dst_main(void *arg)
{
	struct fake_dst *f = arg;
	uint8_t *pkt = malloc(RAM_MAX_PKT);
	int fd[1 + PC_MAX_PUSH], i;

	for (i = 0; i < 1 + PC_MAX_PUSH; i++)
		fd[i] = -1;
	f->err = pkt ? fake_dst_talk(f, fd, pkt) :
		       fail(&f->where, "malloc", -ENOMEM);
	close_all(fd, 1 + PC_MAX_PUSH);
	free(pkt);
	return NULL;
}

/* ---------------------------------------------- source: bad messages */

FIXTURE(src_bad)
{
	struct world w;
};

FIXTURE_VARIANT(src_bad)
{
	enum dst_bad bad;
	uint32_t status;	/* of DONE */
	int err;		/* what src_run returns */
	bool resume;		/* no HAVE taken: complete with the real one */
};

FIXTURE_VARIANT_ADD(src_bad, have_bad_crc)
{
	.bad = DB_HAVE_CRC, .err = -EBADMSG, .resume = true,
};

FIXTURE_VARIANT_ADD(src_bad, have_of_another_size)
{
	.bad = DB_HAVE_PAGES, .err = -EMEDIUMTYPE, .resume = true,
};

FIXTURE_VARIANT_ADD(src_bad, have_without_bitmap)
{
	.bad = DB_HAVE_NO_BITMAP, .err = -EPROTO, .resume = true,
};

FIXTURE_VARIANT_ADD(src_bad, have_short_bitmap)
{
	.bad = DB_HAVE_SHORT, .err = -EPROTO, .resume = true,
};

FIXTURE_VARIANT_ADD(src_bad, open_refused)
{
	.bad = DB_REFUSE, .status = ENOSPC, .err = -ENOSPC, .resume = true,
};

/* A status that is no errno is a malformed message. */
FIXTURE_VARIANT_ADD(src_bad, open_refused_bogus_status)
{
	.bad = DB_REFUSE, .status = 0x80000000U, .err = -EPROTO,
	.resume = true,
};

FIXTURE_VARIANT_ADD(src_bad, open_refused_status_minus_one)
{
	.bad = DB_REFUSE, .status = 0xffffffffU, .err = -EPROTO,
	.resume = true,
};

FIXTURE_VARIANT_ADD(src_bad, request_bad_magic)
{
	.bad = DB_REQ_MAGIC, .err = -EPROTO,
};

FIXTURE_VARIANT_ADD(src_bad, request_reserved_not_zero)
{
	.bad = DB_REQ_RESERVED, .err = -EPROTO,
};

FIXTURE_VARIANT_ADD(src_bad, request_beyond_the_ram)
{
	.bad = DB_REQ_BEYOND, .err = -EPROTO,
};

FIXTURE_VARIANT_ADD(src_bad, done_with_an_error)
{
	.bad = DB_DONE, .status = EIO, .err = -EIO,
};

FIXTURE_VARIANT_ADD(src_bad, done_status_minus_one)
{
	.bad = DB_DONE, .status = 0xffffffffU, .err = -EPROTO,
};

FIXTURE_VARIANT_ADD(src_bad, done_status_int_min)
{
	.bad = DB_DONE, .status = 0x80000000U, .err = -EPROTO,
};

FIXTURE_SETUP(src_bad)
{
	if (!have_uffd())
		SKIP(return, "no userfaultfd");
	world_init(_metadata, &self->w);
}

FIXTURE_TEARDOWN(src_bad)
{
	world_free(&self->w);
}

TEST_F(src_bad, run_fails_at_once_ram_untouched)
{
	struct fake_dst f = { .w = &self->w, .bad = variant->bad,
			      .status = variant->status };
	struct vmig_postcopy_src_stats ss;
	struct vmig_postcopy_src *s;
	uint64_t t0, ms;
	int ret;

	s = new_source(&self->w);
	ASSERT_NE(NULL, s);
	ASSERT_EQ(0, pthread_create(&f.th, NULL, fake_dst_main, &f));
	self->w.busy++;
	t0 = now_ms();
	ret = vmig_ram_postcopy_src_run(s, (struct sockaddr *)&self->w.sa,
					sizeof(self->w.sa));
	ms = now_ms() - t0;
	pthread_join(f.th, NULL);
	self->w.busy--;
	if (f.err)
		TH_LOG("fake destination: %s: %d", f.where, f.err);
	ASSERT_EQ(0, f.err);
	EXPECT_TRUE(f.open_ok);
	EXPECT_EQ(variant->err, ret);
	EXPECT_GT(PROMPT_MS, ms);
	/* The source closed its channels. */
	EXPECT_TRUE(f.eof);
	if (variant->bad >= DB_REQ_MAGIC)
		EXPECT_TRUE(f.answer_ok);
	EXPECT_EQ(0, memcmp(self->w.src_mem, self->w.orig, SIZE));

	if (variant->resume) {
		/* No HAVE taken: it starts again, with its discards. */
		complete_with_real(_metadata, &self->w, s);
		vmig_ram_postcopy_src_get_stats(s, &ss);
		EXPECT_EQ(2, ss.connects);
		EXPECT_EQ(PRE, ss.have);
	}
	vmig_ram_postcopy_src_free(s);
}

/* ------------------------------------------------------------- relay */

#define RELAY_MAX	(2 * (1 + PC_MAX_PUSH))

/*
 * A TCP relay to the real destination that cuts every connection once
 * it has forwarded cut_after bytes from the source.
 */
struct relay {
	int lfd;
	struct sockaddr_in sa;		/* where the source connects */
	struct sockaddr_in up;		/* the real destination */
	uint64_t cut_after;
	uint64_t fwd;
	bool cut;
	int err;
	pthread_t th;
};

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	/* fd[2k]: from the source, fd[2k + 1]: to the destination. */
	int fd[RELAY_MAX], n = 0, i, j, np, idx[RELAY_MAX];
	bool rd[RELAY_MAX];
	struct pollfd pfd[1 + RELAY_MAX];
	uint64_t end = now_ms() + 2 * PEER_MS;
	uint8_t *buf = malloc(1 << 16);
	ssize_t got;

	if (!buf) {
		r->err = -ENOMEM;
		return NULL;
	}
	while (!r->cut && now_ms() < end) {
		pfd[0].fd = r->lfd;
		pfd[0].events = n < RELAY_MAX ? POLLIN : 0;
		np = 1;
		for (i = 0; i < n; i++) {
			if (!rd[i])
				continue;
			pfd[np].fd = fd[i];
			pfd[np].events = POLLIN;
			idx[np++] = i;
		}
		if (poll(pfd, np, 100) <= 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			int a = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
			int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

			if (a < 0 || u < 0 ||
			    connect(u, (struct sockaddr *)&r->up,
				    sizeof(r->up))) {
				r->err = -errno;
				break;
			}
			set_timeouts(a, PEER_MS);
			set_timeouts(u, PEER_MS);
			fd[n] = a;
			fd[n + 1] = u;
			rd[n] = true;
			rd[n + 1] = true;
			n += 2;
		}
		for (j = 1; j < np && !r->cut; j++) {
			if (!pfd[j].revents)
				continue;
			i = idx[j];
			got = recv(fd[i], buf, 1 << 16, MSG_DONTWAIT);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0) {
				rd[i] = false;
				shutdown(fd[i ^ 1], SHUT_WR);
				continue;
			}
			if (vmig_send_all(fd[i ^ 1], buf, got)) {
				rd[i] = false;
				continue;
			}
			if (!(i & 1)) {
				r->fwd += got;
				r->cut = r->fwd >= r->cut_after;
			}
		}
	}
	close_all(fd, n);
	free(buf);
	return NULL;
}

/* -------------------------------------------- source: a lost peer */

enum src_break {
	BR_CLOSE_BEFORE_HAVE = 1,
	BR_RELAY_CUT,
	BR_CLOSE_MID_PUSH,
};

FIXTURE(src_break)
{
	struct world w;
};

FIXTURE_VARIANT(src_break)
{
	enum src_break how;
};

FIXTURE_VARIANT_ADD(src_break, close_before_have)
{
	.how = BR_CLOSE_BEFORE_HAVE,
};

FIXTURE_VARIANT_ADD(src_break, relay_cut_mid_push)
{
	.how = BR_RELAY_CUT,
};

FIXTURE_VARIANT_ADD(src_break, fake_closes_mid_push)
{
	.how = BR_CLOSE_MID_PUSH,
};

FIXTURE_SETUP(src_break)
{
	if (!have_uffd())
		SKIP(return, "no userfaultfd");
	world_init(_metadata, &self->w);
}

FIXTURE_TEARDOWN(src_break)
{
	world_free(&self->w);
}

/* The relay in front of the real destination: both see the cut. */
static void relay_run(struct __test_metadata *_metadata, struct world *w,
		      struct vmig_postcopy_src *s, uint64_t *placed)
{
	struct relay r = { .up = w->sa, .cut_after = SIZE / 4 };
	struct src_run sr = { .s = s };
	struct vmig_postcopy_dest_stats ds;
	int ret;

	r.lfd = listen_lo(&r.sa);
	ASSERT_LE(0, r.lfd);
	sr.sa = r.sa;
	ASSERT_EQ(0, pthread_create(&r.th, NULL, relay_main, &r));
	w->busy++;
	ASSERT_EQ(0, pthread_create(&sr.th, NULL, src_main, &sr));
	w->busy++;
	ASSERT_EQ(0, vmig_ram_postcopy_dest_accept(w->pd, w->lfd));
	ret = vmig_ram_postcopy_dest_wait(w->pd);
	pthread_join(sr.th, NULL);
	w->busy--;
	pthread_join(r.th, NULL);
	w->busy--;
	close(r.lfd);
	ASSERT_EQ(0, r.err);
	EXPECT_TRUE(r.cut);
	TH_LOG("cut after %llu bytes: source %d, destination %d",
	       (unsigned long long)r.fwd, sr.ret, ret);
	EXPECT_GT(0, sr.ret);
	EXPECT_GT(PROMPT_MS, sr.ms);
	EXPECT_GT(0, ret);
	vmig_ram_postcopy_dest_get_stats(w->pd, &ds);
	EXPECT_FALSE(ds.done);
	EXPECT_EQ(1, ds.breaks);
	EXPECT_EQ(0, ds.discarded);
	*placed = ds.placed + ds.zero_placed;
	EXPECT_LT(0, *placed);
	EXPECT_GT(PAGES - PRE, *placed);
}

TEST_F(src_break, run_fails_then_resumes)
{
	struct fake_dst f = { .w = &self->w };
	struct vmig_postcopy_src_stats ss;
	struct vmig_postcopy_dest_stats ds;
	struct vmig_postcopy_src *s;
	uint64_t t0, ms, placed = 0;
	struct src_run sr;
	int ret;

	s = new_source(&self->w);
	ASSERT_NE(NULL, s);
	if (variant->how == BR_RELAY_CUT) {
		relay_run(_metadata, &self->w, s, &placed);
	} else {
		f.bad = variant->how == BR_CLOSE_BEFORE_HAVE ?
			DB_CLOSE_BEFORE_HAVE : DB_CLOSE_MID_PUSH;
		ASSERT_EQ(0, pthread_create(&f.th, NULL, fake_dst_main, &f));
		self->w.busy++;
		t0 = now_ms();
		ret = vmig_ram_postcopy_src_run(s,
						(struct sockaddr *)&self->w.sa,
						sizeof(self->w.sa));
		ms = now_ms() - t0;
		pthread_join(f.th, NULL);
		self->w.busy--;
		if (f.err)
			TH_LOG("fake destination: %s: %d", f.where, f.err);
		ASSERT_EQ(0, f.err);
		TH_LOG("the source's run: %d", ret);
		EXPECT_GT(0, ret);
		EXPECT_GT(PROMPT_MS, ms);
		EXPECT_EQ(0, memcmp(self->w.src_mem, self->w.orig, SIZE));
	}

	if (variant->how == BR_CLOSE_MID_PUSH) {
		/*
		 * It took that destination's HAVE: it resumes, which a
		 * destination that never saw a START refuses (its stale
		 * pages would stay).  Both say why.
		 */
		sr = (struct src_run){ .s = s, .sa = self->w.sa };
		ASSERT_EQ(0, pthread_create(&sr.th, NULL, src_main, &sr));
		self->w.busy++;
		EXPECT_EQ(-EPROTO, vmig_ram_postcopy_dest_accept(self->w.pd,
								 self->w.lfd));
		pthread_join(sr.th, NULL);
		self->w.busy--;
		EXPECT_EQ(-EPROTO, sr.ret);
		EXPECT_GT(PROMPT_MS, sr.ms);
		vmig_ram_postcopy_dest_get_stats(self->w.pd, &ds);
		EXPECT_EQ(0, ds.placed + ds.zero_placed);
		vmig_ram_postcopy_src_free(s);
		return;
	}
	complete_with_real(_metadata, &self->w, s);
	vmig_ram_postcopy_src_get_stats(s, &ss);
	EXPECT_EQ(2, ss.connects);
	vmig_ram_postcopy_dest_get_stats(self->w.pd, &ds);
	if (variant->how == BR_RELAY_CUT) {
		/* Resumed from exactly what the first connection placed. */
		EXPECT_EQ(1, ds.breaks);
		EXPECT_EQ(PRE + placed, ss.have);
	} else {
		EXPECT_EQ(0, ds.breaks);
		EXPECT_EQ(PRE, ss.have);
	}
	vmig_ram_postcopy_src_free(s);
}

/* ------------------------------------------------ silence and partition */

/* The real destination's accept, in a thread. */
struct dst_accept {
	struct world *w;
	int ret;
	uint64_t ms;
	pthread_t th;
};

static void *dst_accept_main(void *arg)
{
	struct dst_accept *a = arg;
	uint64_t t0 = now_ms();

	a->ret = vmig_ram_postcopy_dest_accept(a->w->pd, a->w->lfd);
	a->ms = now_ms() - t0;
	return NULL;
}

/* A source that connects and then says nothing: accept gives up. */
TEST(dst_silent_source_times_out)
{
	struct vmig_chan_id id = { .kind = VMIG_CHAN_POSTCOPY, .count = 1 };
	struct vmig_postcopy_src *s;
	struct dst_accept a = { 0 };
	struct world w = { 0 };
	int fd;

	if (!have_uffd())
		SKIP(return, "no userfaultfd");
	world_init(_metadata, &w);
	a.w = &w;
	ASSERT_EQ(0, pthread_create(&a.th, NULL, dst_accept_main, &a));
	w.busy++;
	memcpy(id.session_id, w.auth.session_id, VMIG_SESSION_ID_LEN);
	fd = vmig_chan_connect((struct sockaddr *)&w.sa, sizeof(w.sa),
			       &w.auth, &id);
	ASSERT_LE(0, fd);
	pthread_join(a.th, NULL);
	w.busy--;
	close(fd);
	TH_LOG("accept: %d after %llu ms", a.ret, (unsigned long long)a.ms);
	EXPECT_EQ(-ETIMEDOUT, a.ret);
	EXPECT_LE(PEER_MS - 100, a.ms);
	EXPECT_GT(PEER_MS + PROMPT_MS, a.ms);
	/* Nothing was taken: a real source still completes. */
	s = new_source(&w);
	ASSERT_NE(NULL, s);
	complete_with_real(_metadata, &w, s);
	vmig_ram_postcopy_src_free(s);
	world_free(&w);
}

/*
 * A network partition in the middle of the push: no FIN, no reset, every
 * packet lost (loopback taken down in a network namespace of the test's
 * own).  Both sides notice within a few timeouts (TCP_USER_TIMEOUT and
 * keepalive, vmig_chan_set_liveness()), the destination pauses with a
 * faulting thread waiting, and once the network is back the source
 * resumes and completes.
 */
TEST(partition_mid_push_pauses_both_then_resumes)
{
	struct vmig_postcopy_src_stats ss;
	struct vmig_postcopy_dest_stats ds;
	struct vmig_postcopy_config cfg;
	struct vmig_postcopy_src *s = NULL;
	struct toucher t = { 0 };
	struct src_run sr = { 0 };
	struct world w = { 0 };
	uint64_t t0, dst_ms, placed;
	int ret;

	if (!have_uffd())
		SKIP(return, "no userfaultfd");
	ret = netns_private();
	if (ret)
		SKIP(return, "no network namespace of our own: %s",
		     strerror(-ret));
	world_init(_metadata, &w);
	vmig_postcopy_config_init(&cfg);
	cfg.push_channels = 2;
	cfg.batch_pages = 16;
	cfg.max_bandwidth = SIZE / 8;	/* about 8 s for the whole RAM */
	ASSERT_EQ(0, vmig_ram_postcopy_src_new(w.ram, &w.scfg, &cfg, &s));
	sr.s = s;
	sr.sa = w.sa;
	ASSERT_EQ(0, pthread_create(&sr.th, NULL, src_main, &sr));
	w.busy++;
	ASSERT_EQ(0, vmig_ram_postcopy_dest_accept(w.pd, w.lfd));
	ASSERT_TRUE(stats_reach(w.pd, 64, 0));

	ASSERT_EQ(0, lo_set_up(false));
	t0 = now_ms();
	/* A fault during the partition: its request is lost with the rest. */
	t.addr = (const uint64_t *)(w.dst_mem + (PAGES - 1) * PG);
	ASSERT_EQ(0, pthread_create(&t.th, NULL, touch_main, &t));
	w.busy++;
	ret = vmig_ram_postcopy_dest_wait(w.pd);
	dst_ms = now_ms() - t0;
	pthread_join(sr.th, NULL);
	w.busy--;
	TH_LOG("partition: destination %d after %llu ms, source %d after %llu ms in all",
	       ret, (unsigned long long)dst_ms, sr.ret,
	       (unsigned long long)sr.ms);
	EXPECT_GT(0, ret);
	EXPECT_GT(0, sr.ret);
	/* Noticed within a few timeouts, not TCP's minutes of retries. */
	EXPECT_GT(4 * PEER_MS, dst_ms);
	EXPECT_GT(4 * PEER_MS, now_ms() - t0);
	vmig_ram_postcopy_dest_get_stats(w.pd, &ds);
	EXPECT_FALSE(ds.done);
	EXPECT_EQ(1, ds.breaks);
	placed = ds.placed + ds.zero_placed;
	EXPECT_GT(PAGES - PRE, placed);
	EXPECT_FALSE(atomic_load(&t.done));

	/* The network is back: the source resumes from what was placed. */
	ASSERT_EQ(0, lo_set_up(true));
	vmig_ram_postcopy_src_set_bandwidth(s, 0);
	complete_with_real(_metadata, &w, s);
	pthread_join(t.th, NULL);
	w.busy--;
	EXPECT_EQ(((const uint64_t *)(w.src_mem + (PAGES - 1) * PG))[0],
		  t.val);
	vmig_ram_postcopy_src_get_stats(s, &ss);
	EXPECT_EQ(2, ss.connects);
	EXPECT_EQ(PRE + placed, ss.have);
	vmig_ram_postcopy_src_free(s);
	world_free(&w);
}

TEST_HARNESS_MAIN

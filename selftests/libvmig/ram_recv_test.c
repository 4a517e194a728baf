// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The destination's receive path of RAM packets (ram_dest_recv()), which
 * has the kernel copy page data straight into guest RAM: pages and zero
 * markers placed, an older copy dropped, a newer copy that waits while
 * another channel is still writing the page, and packets that are bad
 * (CRC, truncated, bad entry) refused with the pages they claimed
 * released.  Over socketpairs, with packets built by hand.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ram_xfer.h"

#define PAGES		8
#define PG		4096

struct page_spec {
	uint64_t page;
	int fill;		/* byte value, or -1: a zero marker */
};

/* A sealed packet of the pages in spec; returns its length. */
static size_t build(uint8_t *pkt, uint64_t seq, const struct page_spec *spec,
		    unsigned int n)
{
	struct ram_pkt_hdr h = { .nr = n, .seq = seq };
	uint8_t *ent = pkt + RAM_PKT_HDR_LEN, *data = ent + n * 8;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint64_t e = spec[i].page << RAM_ENT_SHIFT;

		if (spec[i].fill < 0) {
			e |= RAM_ENT_ZERO;
		} else {
			memset(data, spec[i].fill, PG);
			data += PG;
		}
		e = htole64(e);
		memcpy(ent + i * 8, &e, 8);
	}
	h.len = data - ent;
	ram_pkt_seal(&h, pkt);
	return RAM_PKT_HDR_LEN + h.len;
}

static bool page_is(const uint8_t *p, int v)
{
	unsigned int i;

	for (i = 0; i < PG; i++)
		if (p[i] != v)
			return false;
	return true;
}

struct rx {
	struct vmig_ram_dest *d;
	int fd;
	int ret;
	const char *why;
	atomic_bool done;
	pthread_t th;
};

static void *rx_main(void *arg)
{
	struct rx *r = arg;
	struct vmig_uio io;
	uint8_t *buf = malloc(RAM_MAX_PKT);

	r->ret = -ENOMEM;
	if (buf && !vmig_uio_init(&io)) {
		r->ret = ram_dest_recv(r->d, &io, r->fd, buf, &r->why);
		vmig_uio_exit(&io);
	}
	free(buf);
	atomic_store(&r->done, true);
	return NULL;
}

/* Receive one packet from fd in this thread. */
static int recv_one(struct vmig_ram_dest *d, int fd)
{
	struct rx r = { .d = d, .fd = fd };

	rx_main(&r);
	return r.ret;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_nsec = ms * 1000000L };

	nanosleep(&ts, NULL);
}

FIXTURE(recv)
{
	uint8_t *mem;
	uint8_t *pkt;
	struct vmig_ram_dest *d;
	int sv[2];
};

FIXTURE_SETUP(recv)
{
	struct vmig_ram_region r = { .size = PAGES * PG, .fd = -1,
				     .kvm_slot = -1 };

	self->mem = aligned_alloc(PG, PAGES * PG);
	self->pkt = malloc(RAM_MAX_PKT);
	ASSERT_NE(NULL, self->mem);
	ASSERT_NE(NULL, self->pkt);
	memset(self->mem, 0x11, PAGES * PG);
	r.host_addr = self->mem;
	ASSERT_EQ(0, vmig_ram_dest_new(&r, 1, &self->d));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, self->sv));
}

FIXTURE_TEARDOWN(recv)
{
	close(self->sv[0]);
	close(self->sv[1]);
	vmig_ram_dest_free(self->d);
	free(self->pkt);
	free(self->mem);
}

TEST_F(recv, pages_and_zero_markers_are_placed_then_end)
{
	static const struct page_spec spec[] = {
		{ 0, 0xaa }, { 1, 0xab }, { 3, -1 }, { 5, 0xbb },
	};
	struct ram_pkt_hdr end = { .flags = RAM_PKT_F_END };
	struct vmig_ram_dest_stats st;
	size_t len = build(self->pkt, 1, spec, 4);

	ASSERT_EQ((ssize_t)len, write(self->sv[0], self->pkt, len));
	EXPECT_EQ(0, recv_one(self->d, self->sv[1]));
	EXPECT_TRUE(page_is(self->mem, 0xaa));
	EXPECT_TRUE(page_is(self->mem + 1 * PG, 0xab));
	EXPECT_TRUE(page_is(self->mem + 2 * PG, 0x11));
	EXPECT_TRUE(page_is(self->mem + 3 * PG, 0));
	EXPECT_TRUE(page_is(self->mem + 5 * PG, 0xbb));
	EXPECT_EQ(1, self->d->stamp[0]);
	EXPECT_EQ(1, self->d->stamp[3]);
	EXPECT_EQ(0, self->d->stamp[2]);
	vmig_ram_dest_get_stats(self->d, &st);
	EXPECT_EQ(4, st.pages);
	EXPECT_EQ(1, st.zero_pages);
	EXPECT_EQ(0, st.stale);

	ram_pkt_seal(&end, self->pkt);
	ASSERT_EQ(RAM_PKT_HDR_LEN,
		  write(self->sv[0], self->pkt, RAM_PKT_HDR_LEN));
	EXPECT_EQ(1, recv_one(self->d, self->sv[1]));
}

TEST_F(recv, an_older_copy_is_dropped)
{
	static const struct page_spec newer[] = { { 2, 0xbb } };
	static const struct page_spec older[] = { { 2, 0xaa }, { 4, 0xac } };
	struct vmig_ram_dest_stats st;
	size_t len;

	len = build(self->pkt, 5, newer, 1);
	ASSERT_EQ((ssize_t)len, write(self->sv[0], self->pkt, len));
	EXPECT_EQ(0, recv_one(self->d, self->sv[1]));
	len = build(self->pkt, 3, older, 2);
	ASSERT_EQ((ssize_t)len, write(self->sv[0], self->pkt, len));
	EXPECT_EQ(0, recv_one(self->d, self->sv[1]));
	EXPECT_TRUE(page_is(self->mem + 2 * PG, 0xbb));
	EXPECT_TRUE(page_is(self->mem + 4 * PG, 0xac));
	EXPECT_EQ(5, self->d->stamp[2]);
	EXPECT_EQ(3, self->d->stamp[4]);
	vmig_ram_dest_get_stats(self->d, &st);
	EXPECT_EQ(1, st.stale);
}

/*
 * Channel A's packet (seq 1) claims page 2 and is still coming in when
 * channel B's newer copy (seq 2) arrives: B places its other page at once
 * and waits for A to finish page 2, then overwrites it.
 */
TEST_F(recv, a_newer_copy_waits_for_the_older_in_flight)
{
	static const struct page_spec a_spec[] = { { 2, 0xaa } };
	static const struct page_spec b_spec[] = { { 2, 0xbb }, { 4, 0xcc } };
	struct rx a = { .d = self->d, .fd = self->sv[1] };
	struct rx b = { .d = self->d };
	uint8_t *bpkt = malloc(RAM_MAX_PKT);
	struct vmig_ram_dest_stats st;
	size_t alen, blen, head;
	unsigned int i;
	int bsv[2];

	ASSERT_NE(NULL, bpkt);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, bsv));
	b.fd = bsv[1];
	alen = build(self->pkt, 1, a_spec, 1);
	blen = build(bpkt, 2, b_spec, 2);

	/* A: the header, the entry and part of the page. */
	head = RAM_PKT_HDR_LEN + 8 + 1000;
	ASSERT_EQ((ssize_t)head, write(self->sv[0], self->pkt, head));
	ASSERT_EQ(0, pthread_create(&a.th, NULL, rx_main, &a));
	for (i = 0; i < 2000 && self->d->stamp[2] != (1 | DEST_BUSY); i++)
		sleep_ms(1);
	ASSERT_EQ(1 | DEST_BUSY, self->d->stamp[2]);

	ASSERT_EQ((ssize_t)blen, write(bsv[0], bpkt, blen));
	ASSERT_EQ(0, pthread_create(&b.th, NULL, rx_main, &b));
	for (i = 0; i < 2000 && !page_is(self->mem + 4 * PG, 0xcc); i++)
		sleep_ms(1);
	EXPECT_TRUE(page_is(self->mem + 4 * PG, 0xcc));
	sleep_ms(50);
	EXPECT_FALSE(atomic_load(&b.done));
	EXPECT_EQ(1 | DEST_BUSY, self->d->stamp[2]);

	ASSERT_EQ((ssize_t)(alen - head),
		  write(self->sv[0], self->pkt + head, alen - head));
	pthread_join(a.th, NULL);
	pthread_join(b.th, NULL);
	EXPECT_EQ(0, a.ret);
	EXPECT_EQ(0, b.ret);
	EXPECT_TRUE(page_is(self->mem + 2 * PG, 0xbb));
	EXPECT_EQ(2, self->d->stamp[2]);
	vmig_ram_dest_get_stats(self->d, &st);
	EXPECT_EQ(3, st.pages);
	EXPECT_EQ(0, st.stale);
	close(bsv[0]);
	close(bsv[1]);
	free(bpkt);
}

TEST_F(recv, a_bad_crc_is_refused_and_the_page_released)
{
	static const struct page_spec spec[] = { { 1, 0xaa } };
	static const struct page_spec next[] = { { 1, 0xcc } };
	struct vmig_ram_dest_stats st;
	struct rx r = { .d = self->d, .fd = self->sv[1] };
	size_t len = build(self->pkt, 1, spec, 1);

	self->pkt[len - 1] ^= 1;
	ASSERT_EQ((ssize_t)len, write(self->sv[0], self->pkt, len));
	rx_main(&r);
	EXPECT_EQ(-EBADMSG, r.ret);
	EXPECT_STREQ("bad CRC on a RAM packet", r.why);
	EXPECT_EQ(0, self->d->stamp[1] & DEST_BUSY);
	vmig_ram_dest_get_stats(self->d, &st);
	EXPECT_EQ(0, st.pages);

	/* Nothing is left claimed: a newer copy goes in. */
	len = build(self->pkt, 2, next, 1);
	ASSERT_EQ((ssize_t)len, write(self->sv[0], self->pkt, len));
	EXPECT_EQ(0, recv_one(self->d, self->sv[1]));
	EXPECT_TRUE(page_is(self->mem + PG, 0xcc));
}

TEST_F(recv, a_truncated_packet_gives_its_pages_back)
{
	static const struct page_spec spec[] = { { 6, 0xaa }, { 7, 0xab } };
	struct rx r = { .d = self->d, .fd = self->sv[1] };
	size_t len = build(self->pkt, 4, spec, 2);

	ASSERT_EQ((ssize_t)(len - 100),
		  write(self->sv[0], self->pkt, len - 100));
	ASSERT_EQ(0, shutdown(self->sv[0], SHUT_WR));
	rx_main(&r);
	EXPECT_EQ(-ECONNRESET, r.ret);
	EXPECT_EQ(0, self->d->stamp[6]);
	EXPECT_EQ(0, self->d->stamp[7]);
}

TEST_F(recv, a_bad_entry_is_refused_before_anything_is_placed)
{
	static const struct page_spec spec[] = { { 1, 0xaa }, { PAGES, 0xab } };
	struct rx r = { .d = self->d, .fd = self->sv[1] };
	size_t len = build(self->pkt, 1, spec, 2);

	ASSERT_EQ((ssize_t)len, write(self->sv[0], self->pkt, len));
	rx_main(&r);
	EXPECT_EQ(-EPROTO, r.ret);
	EXPECT_STREQ("bad page entry in a RAM packet", r.why);
	EXPECT_EQ(0, self->d->stamp[1]);
	EXPECT_TRUE(page_is(self->mem + PG, 0x11));
}

TEST_HARNESS_MAIN

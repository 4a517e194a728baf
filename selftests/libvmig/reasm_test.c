// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The destination's reassembly (vmig_rx): packets of several devices
 * admitted in any order, written to each device's fd strictly by seq,
 * with the buffered memory never above its bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "transport.h"

#define NDEV	4
#define CHUNK	4096

struct pkt {
	struct vmig_pkt_hdr h;
	const uint8_t *payload;
};

FIXTURE(rx) {
	int fds[NDEV];
	uint8_t *data[NDEV];
	size_t size[NDEV];
	struct pkt *pkts;
	unsigned int npkts;
	struct vmig_rx *rx;
};

/* Device d's stream: size bytes cut into CHUNK packets, then END. */
static void build(FIXTURE_DATA(rx) *self, unsigned int seed)
{
	unsigned int d, i, n = 0, total = 0;

	srand(seed);
	for (d = 0; d < NDEV; d++) {
		self->size[d] = CHUNK * (3 + d * 5) + 100 * d;
		self->data[d] = malloc(self->size[d]);
		for (i = 0; i < self->size[d]; i++)
			self->data[d][i] = rand();
		total += self->size[d] / CHUNK + 2;
	}
	self->pkts = calloc(total, sizeof(*self->pkts));
	for (d = 0; d < NDEV; d++) {
		size_t off = 0;
		uint64_t seq = 0;

		while (off < self->size[d]) {
			size_t len = self->size[d] - off < CHUNK ?
				     self->size[d] - off : CHUNK;
			struct pkt *p = &self->pkts[n++];

			p->h.dev_id = d;
			p->h.seq = seq++;
			p->h.len = p->h.raw_len = len;
			p->payload = self->data[d] + off;
			off += len;
		}
		self->pkts[n].h.dev_id = d;
		self->pkts[n].h.seq = seq;
		self->pkts[n].h.flags = VMIG_PKT_F_END;
		n++;
	}
	self->npkts = n;
}

static int setup_rx(FIXTURE_DATA(rx) *self, size_t mem)
{
	static const char *const names[NDEV] = { "d0", "d1", "d2", "d3" };
	int ret = vmig_rx_create(NDEV, self->fds, names, mem, CHUNK, NULL,
				 NULL, &self->rx);

	return ret ? ret : vmig_rx_start(self->rx);
}

FIXTURE_SETUP(rx)
{
	unsigned int d;

	memset(self, 0, sizeof(*self));
	for (d = 0; d < NDEV; d++) {
		self->fds[d] = memfd_create("rx", MFD_CLOEXEC);
		ASSERT_LE(0, self->fds[d]);
	}
	build(self, 7);
}

FIXTURE_TEARDOWN(rx)
{
	unsigned int d;

	vmig_rx_destroy(self->rx);
	for (d = 0; d < NDEV; d++) {
		close(self->fds[d]);
		free(self->data[d]);
	}
	free(self->pkts);
}

/* Admit one packet without waiting: 0, 1 (duplicate), -EAGAIN, error. */
static int feed(struct vmig_rx *rx, const struct pkt *p)
{
	struct vmig_rxbuf *b = NULL;
	int ret = vmig_rx_reserve(rx, &p->h, false, &b);

	if (ret)
		return ret;
	if (p->h.raw_len)
		memcpy(vmig_rxbuf_data(b), p->payload, p->h.raw_len);
	vmig_rx_commit(rx, b);
	return 0;
}

/* Feed in this order; a packet refused for memory goes to the back. */
static int feed_all(struct vmig_rx *rx, struct pkt *order, unsigned int n)
{
	unsigned int head = 0, tail = n, stalls = 0;
	struct pkt *q = calloc(n * 64 + 1, sizeof(*q));
	int ret = 0;

	memcpy(q, order, n * sizeof(*q));
	while (head < tail) {
		ret = feed(rx, &q[head]);
		if (ret == -EAGAIN) {
			if (tail == n * 64) {
				ret = -ENOSPC;
				break;
			}
			q[tail++] = q[head];
			if (++stalls > n)
				usleep(50);
		} else if (ret < 0) {
			break;
		} else {
			stalls = 0;
		}
		head++;
		ret = 0;
	}
	free(q);
	return ret;
}

static int wait_done(struct vmig_rx *rx)
{
	int i, st = 0;

	for (i = 0; i < 20000; i++) {
		st = vmig_rx_status(rx, NULL, NULL, 0);
		if (st)
			return st;
		usleep(100);
	}
	return st;
}

static void shuffle(struct pkt *p, unsigned int n, unsigned int seed)
{
	unsigned int i, j;
	struct pkt t;

	srand(seed);
	for (i = n - 1; i > 0; i--) {
		j = rand() % (i + 1);
		t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
}

static int check_output(FIXTURE_DATA(rx) *self)
{
	unsigned int d;
	struct stat st;
	uint8_t *buf;

	for (d = 0; d < NDEV; d++) {
		if (fstat(self->fds[d], &st) || (size_t)st.st_size != self->size[d])
			return -1;
		buf = malloc(st.st_size);
		if (pread(self->fds[d], buf, st.st_size, 0) != st.st_size ||
		    memcmp(buf, self->data[d], st.st_size)) {
			free(buf);
			return -1;
		}
		free(buf);
	}
	return 0;
}

TEST_F(rx, in_order_stream_is_written)
{
	struct vmig_rx_stats st;

	ASSERT_EQ(0, setup_rx(self, 64 * CHUNK));
	ASSERT_EQ(0, feed_all(self->rx, self->pkts, self->npkts));
	ASSERT_EQ(1, wait_done(self->rx));
	EXPECT_EQ(0, check_output(self));
	vmig_rx_get_stats(self->rx, &st);
	EXPECT_EQ(self->npkts, st.packets);
}

/* Any permutation, memory large enough to hold everything. */
TEST_F(rx, random_permutations_are_reassembled)
{
	unsigned int seed, d;

	for (seed = 1; seed <= 20; seed++) {
		for (d = 0; d < NDEV; d++)
			ASSERT_EQ(0, ftruncate(self->fds[d], 0));
		for (d = 0; d < NDEV; d++)
			lseek(self->fds[d], 0, SEEK_SET);
		shuffle(self->pkts, self->npkts, seed);
		ASSERT_EQ(0, setup_rx(self, 128 * CHUNK));
		ASSERT_EQ(0, feed_all(self->rx, self->pkts, self->npkts));
		ASSERT_EQ(1, wait_done(self->rx)) TH_LOG("seed %u", seed);
		ASSERT_EQ(0, check_output(self)) TH_LOG("seed %u", seed);
		vmig_rx_destroy(self->rx);
		self->rx = NULL;
	}
}

/* Whatever the order, at most mem_limit of buffers are in use. */
TEST_F(rx, memory_never_exceeds_its_bound)
{
	static const size_t limits[] = { 2 * CHUNK, 3 * CHUNK, 5 * CHUNK };
	struct vmig_rx_stats st;
	unsigned int seed, d, l;

	for (l = 0; l < 3; l++) {
		for (seed = 1; seed <= 10; seed++) {
			for (d = 0; d < NDEV; d++) {
				ASSERT_EQ(0, ftruncate(self->fds[d], 0));
				lseek(self->fds[d], 0, SEEK_SET);
			}
			shuffle(self->pkts, self->npkts, seed);
			ASSERT_EQ(0, setup_rx(self, limits[l]));
			ASSERT_EQ(0, feed_all(self->rx, self->pkts,
					      self->npkts));
			ASSERT_EQ(1, wait_done(self->rx));
			ASSERT_EQ(0, check_output(self));
			vmig_rx_get_stats(self->rx, &st);
			EXPECT_EQ(limits[l], st.mem_limit);
			EXPECT_LE(st.peak_bytes, limits[l])
				TH_LOG("limit %zu seed %u", limits[l], seed);
			vmig_rx_destroy(self->rx);
			self->rx = NULL;
		}
	}
}

/* Out-of-order packets leave the last buffer to the in-order one. */
TEST_F(rx, full_memory_admits_only_the_next_packet)
{
	struct pkt *d1 = NULL;
	unsigned int i;

	/* Device 0's writer cannot run ahead: we feed device 1 first. */
	for (i = 0; i < self->npkts; i++)
		if (self->pkts[i].h.dev_id == 1 && !d1)
			d1 = &self->pkts[i];
	ASSERT_EQ(0, setup_rx(self, 3 * CHUNK));
	/* Device 1, packets 1 and 2 (packet 0 missing): two buffers... */
	EXPECT_EQ(0, feed(self->rx, &d1[1]));
	EXPECT_EQ(0, feed(self->rx, &d1[2]));
	/* ...the third is the reserve: refused to out-of-order packets, */
	EXPECT_EQ(-EAGAIN, feed(self->rx, &d1[3]));
	/* taken by the one packet that lets the writer go on. */
	EXPECT_EQ(0, feed(self->rx, &d1[0]));
	/* Once written, the buffers are free again. */
	EXPECT_EQ(0, feed_all(self->rx, &d1[3], 1));
}

TEST_F(rx, duplicates_are_dropped)
{
	struct pkt *order = calloc(self->npkts * 2, sizeof(*order));
	struct vmig_rx_stats st;
	unsigned int i, n = 0;

	for (i = 0; i < self->npkts; i++) {
		order[n++] = self->pkts[i];
		if (i % 3 == 0)
			order[n++] = self->pkts[i];
	}
	shuffle(order, n, 3);
	ASSERT_EQ(0, setup_rx(self, 128 * CHUNK));
	for (i = 0; i < n; i++)
		ASSERT_LE(0, feed(self->rx, &order[i]));
	ASSERT_EQ(1, wait_done(self->rx));
	EXPECT_EQ(0, check_output(self));
	vmig_rx_get_stats(self->rx, &st);
	EXPECT_EQ(n - self->npkts, st.duplicates);
	free(order);
}

TEST_F(rx, a_gap_is_reported_with_its_device_and_seq)
{
	char msg[256];
	unsigned int i;
	int dev = -1;

	ASSERT_EQ(0, setup_rx(self, 128 * CHUNK));
	for (i = 0; i < self->npkts; i++) {
		if (self->pkts[i].h.dev_id == 2 && self->pkts[i].h.seq == 5)
			continue;
		ASSERT_EQ(0, feed(self->rx, &self->pkts[i]));
	}
	usleep(10000);
	EXPECT_EQ(0, vmig_rx_status(self->rx, NULL, NULL, 0));
	EXPECT_EQ(-ENODATA, vmig_rx_input_done(self->rx));
	EXPECT_EQ(-ENODATA, vmig_rx_status(self->rx, &dev, msg, sizeof(msg)));
	EXPECT_EQ(2, dev);
	EXPECT_NE(NULL, strstr(msg, "d2"));
	EXPECT_NE(NULL, strstr(msg, "packet 5 "));
}

TEST_F(rx, a_missing_end_is_reported)
{
	char msg[256];
	unsigned int i;
	int dev = -1;

	ASSERT_EQ(0, setup_rx(self, 128 * CHUNK));
	for (i = 0; i < self->npkts; i++) {
		if (self->pkts[i].h.dev_id == 3 &&
		    (self->pkts[i].h.flags & VMIG_PKT_F_END))
			continue;
		ASSERT_EQ(0, feed(self->rx, &self->pkts[i]));
	}
	EXPECT_EQ(-ENODATA, vmig_rx_input_done(self->rx));
	EXPECT_EQ(-ENODATA, vmig_rx_status(self->rx, &dev, msg, sizeof(msg)));
	EXPECT_EQ(3, dev);
	EXPECT_NE(NULL, strstr(msg, "without an END"));
}

TEST_F(rx, packets_after_end_are_refused)
{
	struct pkt extra;
	unsigned int i;
	int dev = -1;

	ASSERT_EQ(0, setup_rx(self, 128 * CHUNK));
	for (i = 0; i < self->npkts; i++)
		if (self->pkts[i].h.dev_id == 0 &&
		    (self->pkts[i].h.flags & VMIG_PKT_F_END))
			break;
	ASSERT_EQ(0, feed(self->rx, &self->pkts[i]));
	extra = self->pkts[0];
	extra.h.seq = self->pkts[i].h.seq + 1;
	EXPECT_EQ(-EPROTO, feed(self->rx, &extra));
	EXPECT_EQ(-EPROTO, vmig_rx_status(self->rx, &dev, NULL, 0));
	EXPECT_EQ(0, dev);
}

TEST_F(rx, unknown_device_is_refused)
{
	struct pkt p = self->pkts[0];

	ASSERT_EQ(0, setup_rx(self, 128 * CHUNK));
	p.h.dev_id = NDEV;
	EXPECT_EQ(-EPROTO, feed(self->rx, &p));
}

TEST_F(rx, initial_data_is_loaded_once_written)
{
	unsigned int i, d, done = 0;

	ASSERT_EQ(0, setup_rx(self, 128 * CHUNK));
	for (d = 0; d < NDEV; d++)
		ASSERT_EQ(0, vmig_rx_set_initial(self->rx, d, d == 1 ? 2 : 0));
	EXPECT_FALSE(vmig_rx_initial_loaded(self->rx));
	for (i = 0; i < self->npkts; i++)
		if (self->pkts[i].h.dev_id == 1 && self->pkts[i].h.seq < 2)
			ASSERT_EQ(0, feed(self->rx, &self->pkts[i]));
	for (i = 0; i < 1000 && !done; i++) {
		done = vmig_rx_initial_loaded(self->rx);
		usleep(1000);
	}
	EXPECT_TRUE(done);
	EXPECT_EQ(-EINVAL, vmig_rx_set_initial(self->rx, NDEV, 1));
}

TEST_F(rx, a_failing_fd_names_its_device)
{
	char msg[256];
	int dev = -1, i, st = 0;

	/* Device 1 writes into a read-only fd. */
	close(self->fds[1]);
	self->fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, self->fds[1]);
	ASSERT_EQ(0, setup_rx(self, 128 * CHUNK));
	/* the writer may fail while packets are still being fed */
	st = feed_all(self->rx, self->pkts, self->npkts);
	ASSERT_TRUE(st >= 0 || st == -EBADF);
	st = 0;
	for (i = 0; i < 1000 && !st; i++) {
		st = vmig_rx_status(self->rx, &dev, msg, sizeof(msg));
		usleep(1000);
	}
	EXPECT_EQ(-EBADF, st);
	EXPECT_EQ(1, dev);
	EXPECT_NE(NULL, strstr(msg, "d1"));
}

TEST_HARNESS_MAIN

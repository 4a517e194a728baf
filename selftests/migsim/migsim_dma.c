// SPDX-License-Identifier: GPL-2.0
/*
 * The DMA engine (Documentation/driver.rst, issue 7): a migsim device that
 * writes memory the test mapped into its type1 container, through
 * vfio_dma_rw().
 *
 * - The pages the engine wrote (found by their struct migsim_dma_page
 *   header) are exactly the pages VFIO_IOMMU_DIRTY_PAGES reports, including
 *   those written just before the device stopped.
 * - In RUNNING_P2P and STOP it writes nothing.
 * - An unmapped IOVA, and a mapping removed under the running engine, give
 *   the error counter, last_error and a disabled range, with no splat (the
 *   VM runner checks dmesg).
 * - DMA_SET refuses bad input with an extack message.
 * - Device DMA logging is not advertised (ENOTTY).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define PG		4096ULL
#define MAP_IOVA	0x100000000ULL	/* 4 GiB */
#define MAP_SIZE	(2 * MiB)
#define NPAGES		(MAP_SIZE / PG)
#define BAD_IOVA	0x200000000ULL	/* never mapped */
#define RATE		(2 * MiB)	/* bytes/s: 512 pages/s */

/* ------------------------------------------------------------ netlink */

struct nl {
	struct nl_sock *sk;
	int family;
};

struct ext {
	int err;
	char msg[256];
};

struct dma_info {
	uint64_t rate, bytes, pages, errors;
	int nr_ranges;
	uint64_t iova[MIGSIM_DMA_MAX_RANGES + 1], len[MIGSIM_DMA_MAX_RANGES + 1];
	bool disabled[MIGSIM_DMA_MAX_RANGES + 1];
	bool have;
};

struct request {
	struct ext *ext;
	bool done;
	struct dma_info *info;
};

static int nl_open(struct nl *nl)
{
	int one = 1;

	nl->sk = nl_socket_alloc();
	if (!nl->sk)
		return -ENOMEM;
	if (genl_connect(nl->sk) < 0 ||
	    setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_EXT_ACK,
		       &one, sizeof(one)))
		goto fail;
	nl->family = genl_ctrl_resolve(nl->sk, MIGSIM_GENL_NAME);
	if (nl->family < 0)
		goto fail;
	return 0;
fail:
	nl_socket_free(nl->sk);
	nl->sk = NULL;
	return -ENOENT;
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	struct request *r = arg;
	int ack_len = sizeof(*e);
	struct nlattr *a;
	int rem;

	r->ext->err = e->error;
	r->done = true;
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NL_STOP;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		ack_len += e->msg.nlmsg_len - NLMSG_HDRLEN;
	if ((int)nlh->nlmsg_len <= NLMSG_HDRLEN + ack_len)
		return NL_STOP;
	nla_for_each_attr(a, (struct nlattr *)((char *)e + ack_len),
			  nlh->nlmsg_len - NLMSG_HDRLEN - ack_len, rem)
		if (nla_type(a) == NLMSGERR_ATTR_MSG)
			snprintf(r->ext->msg, sizeof(r->ext->msg), "%.*s",
				 nla_len(a), (char *)nla_data(a));
	return NL_STOP;
}

static int on_done(struct nl_msg *m, void *arg)
{
	((struct request *)arg)->done = true;
	return NL_STOP;
}

static void parse_dma(struct nlattr *nest, struct dma_info *d)
{
	struct nlattr *a, *t[MIGSIM_DMA_RANGE_A_MAX + 1];
	int rem;

	nla_for_each_nested(a, nest, rem) {
		if (nla_type(a) == MIGSIM_DMA_A_RATE)
			d->rate = nla_get_u64(a);
		if (nla_type(a) != MIGSIM_DMA_A_RANGE ||
		    d->nr_ranges > MIGSIM_DMA_MAX_RANGES ||
		    nla_parse_nested(t, MIGSIM_DMA_RANGE_A_MAX, a, NULL))
			continue;
		if (t[MIGSIM_DMA_RANGE_A_IOVA])
			d->iova[d->nr_ranges] =
				nla_get_u64(t[MIGSIM_DMA_RANGE_A_IOVA]);
		if (t[MIGSIM_DMA_RANGE_A_LENGTH])
			d->len[d->nr_ranges] =
				nla_get_u64(t[MIGSIM_DMA_RANGE_A_LENGTH]);
		d->disabled[d->nr_ranges] = t[MIGSIM_DMA_RANGE_A_DISABLED];
		d->nr_ranges++;
	}
}

static int on_valid(struct nl_msg *m, void *arg)
{
	struct nlattr *tb[MIGSIM_A_MAX + 1], *st[MIGSIM_STAT_MAX + 1];
	struct dma_info *d = ((struct request *)arg)->info;

	if (!d || genlmsg_parse(nlmsg_hdr(m), 0, tb, MIGSIM_A_MAX, NULL) < 0)
		return NL_OK;
	memset(d, 0, sizeof(*d));
	if (tb[MIGSIM_A_STATS] &&
	    !nla_parse_nested(st, MIGSIM_STAT_MAX, tb[MIGSIM_A_STATS], NULL)) {
		if (st[MIGSIM_STAT_DMA_BYTES])
			d->bytes = nla_get_u64(st[MIGSIM_STAT_DMA_BYTES]);
		if (st[MIGSIM_STAT_DMA_PAGES])
			d->pages = nla_get_u64(st[MIGSIM_STAT_DMA_PAGES]);
		if (st[MIGSIM_STAT_DMA_ERRORS])
			d->errors = nla_get_u64(st[MIGSIM_STAT_DMA_ERRORS]);
	}
	if (tb[MIGSIM_A_DMA]) {
		d->have = true;
		parse_dma(tb[MIGSIM_A_DMA], d);
	}
	return NL_OK;
}

/* Send m (freed) and wait for the answer; 0 or -errno. */
static int nl_do(struct nl *nl, struct nl_msg *m, struct dma_info *info,
		 struct ext *ext)
{
	struct ext local;
	struct request r = { .ext = ext ? ext : &local, .info = info };
	struct nl_cb *cb;
	int ret;

	memset(r.ext, 0, sizeof(*r.ext));
	if (!m)
		return -ENOMEM;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		nlmsg_free(m);
		return -ENOMEM;
	}
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, &r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_done, &r);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, &r);
	ret = nl_send_auto(nl->sk, m);
	/* libnl asks for an ACK: it follows a DEV_GET reply */
	while (ret >= 0 && !r.done)
		ret = nl_recvmsgs(nl->sk, cb);
	if (ret < 0 && !r.done)
		r.ext->err = -EIO;
	nl_cb_put(cb);
	nlmsg_free(m);
	return r.ext->err;
}

static struct nl_msg *req(struct nl *nl, int cmd, const char *uuid)
{
	struct nl_msg *m = nlmsg_alloc();

	if (m && (!genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, 0,
			       cmd, MIGSIM_GENL_VERSION) ||
		  nla_put_string(m, MIGSIM_A_UUID, uuid) < 0)) {
		nlmsg_free(m);
		m = NULL;
	}
	return m;
}

static int dma_get(struct nl *nl, const char *uuid, struct dma_info *d)
{
	memset(d, 0, sizeof(*d));
	return nl_do(nl, req(nl, MIGSIM_CMD_DEV_GET, uuid), d, NULL);
}

static uint64_t dma_pages(struct nl *nl, const char *uuid)
{
	struct dma_info d;

	return dma_get(nl, uuid, &d) ? UINT64_MAX : d.pages;
}

struct range {
	uint64_t iova, len;
};

/* DMA_SET; rate < 0: no RATE; nr < 0: no RANGE; extra: a raw attribute. */
static int dma_set(struct nl *nl, const char *uuid, int64_t rate,
		   const struct range *r, int nr, int extra, struct ext *ext)
{
	struct nl_msg *m = req(nl, MIGSIM_CMD_DMA_SET, uuid);
	struct nlattr *nest, *rn;
	int i;

	if (!m)
		return -ENOMEM;
	if (rate < 0 && nr <= 0) {
		/* libnl's nla_nest_end() would drop an empty nest */
		if (nla_put(m, MIGSIM_A_DMA | NLA_F_NESTED, 0, NULL) < 0)
			goto fail;
		return nl_do(nl, m, NULL, ext);
	}
	nest = nla_nest_start(m, MIGSIM_A_DMA);
	if (!nest || (rate >= 0 && nla_put_u64(m, MIGSIM_DMA_A_RATE, rate)))
		goto fail;
	for (i = 0; i < nr; i++) {
		rn = nla_nest_start(m, MIGSIM_DMA_A_RANGE);
		if (!rn ||
		    (r[i].iova != UINT64_MAX &&
		     nla_put_u64(m, MIGSIM_DMA_RANGE_A_IOVA, r[i].iova)) ||
		    nla_put_u64(m, MIGSIM_DMA_RANGE_A_LENGTH, r[i].len) ||
		    (extra && nla_put_flag(m, extra)))
			goto fail;
		nla_nest_end(m, rn);
	}
	nla_nest_end(m, nest);
	return nl_do(nl, m, NULL, ext);
fail:
	nlmsg_free(m);
	return -EMSGSIZE;
}

static int dma_off(struct nl *nl, const char *uuid)
{
	return dma_set(nl, uuid, -1, NULL, 0, 0, NULL);
}

/* ------------------------------------------------------------ VFIO */

static int map_dma(int container, void *vaddr, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &map) ? -errno : 0;
}

static int unmap_dma(int container, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) ? -errno : 0;
}

static int dirty_ctl(int container, uint32_t flag)
{
	struct vfio_iommu_type1_dirty_bitmap d = {
		.argsz = sizeof(d),
		.flags = flag,
	};

	return ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &d) ? -errno : 0;
}

/* The container's dirty bitmap of [iova, iova + size), then cleared. */
static int get_bitmap(int container, uint64_t iova, uint64_t size,
		      uint64_t *bits)
{
	struct {
		struct vfio_iommu_type1_dirty_bitmap d;
		struct vfio_iommu_type1_dirty_bitmap_get g;
	} req = {
		.d.argsz = sizeof(req),
		.d.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
		.g.iova = iova,
		.g.size = size,
		.g.bitmap.pgsize = PG,
		.g.bitmap.size = (size / PG + 63) / 64 * 8,
		.g.bitmap.data = (__u64 *)bits,
	};

	memset(bits, 0, req.g.bitmap.size);
	return ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &req) ? -errno : 0;
}

static bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * The seq of the page at index i of the mapping if the engine wrote it
 * (header and fill all correct), -1 if the page is untouched (all zero),
 * -2 if it holds anything else.
 */
static int64_t page_seq(const uint8_t *mem, uint64_t i, const uint8_t *uuid)
{
	const struct migsim_dma_page *h = (const void *)(mem + i * PG);
	const uint64_t *w = (const void *)h;
	uint64_t iova = MAP_IOVA + i * PG, seq, k;

	if (le64toh(h->magic) != MIGSIM_DMA_MAGIC) {
		for (k = 0; k < PG / 8; k++)
			if (w[k])
				return -2;
		return -1;
	}
	seq = le64toh(h->seq);
	if (le64toh(h->iova) != iova || memcmp(h->uuid, uuid, 16))
		return -2;
	for (k = MIGSIM_DMA_HDR_WORDS; k < PG / 8; k++)
		if (le64toh(w[k]) != (seq ^ (iova + 8 * k)))
			return -2;
	return seq;
}

static int parse_uuid(const char *s, uint8_t *out)
{
	int i, n = 0;

	for (i = 0; s[i] && n < 16; i++) {
		if (s[i] == '-')
			continue;
		if (sscanf(s + i, "%2hhx", &out[n++]) != 1)
			return -EINVAL;
		i++;
	}
	return n == 16 ? 0 : -EINVAL;
}

/* ------------------------------------------------------------ fixture */

FIXTURE(dma) {
	struct nl nl;
	struct migsim_inst in;
	int container;
	uint8_t *mem;
	uint8_t uuid[16];
	uint64_t bits[NPAGES / 64], bits2[NPAGES / 64];
};

FIXTURE_SETUP(dma)
{
	int ret;

	memset(&self->in, 0, sizeof(self->in));
	self->mem = MAP_FAILED;
	ret = nl_open(&self->nl);
	if (ret == -ENOENT && access(MIGSIM_TYPE_DIR, F_OK))
		SKIP(return, "vfio-migsim is not loaded");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, migsim_inst_create_open(&self->in, 4 * MiB));
	ASSERT_EQ(0, parse_uuid(self->in.uuid, self->uuid));
	self->container = vmig_vfio_container_fd(self->in.dev);
	ASSERT_LE(0, self->container);
	self->mem = mmap(NULL, MAP_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->mem);
	ASSERT_EQ(0, map_dma(self->container, self->mem, MAP_IOVA, MAP_SIZE));
}

FIXTURE_TEARDOWN(dma)
{
	if (self->nl.sk && self->in.uuid[0])
		dma_off(&self->nl, self->in.uuid);
	if (self->mem != MAP_FAILED)
		munmap(self->mem, MAP_SIZE);
	if (self->nl.sk)
		nl_socket_free(self->nl.sk);
	migsim_inst_destroy(&self->in);
}

/* ------------------------------------------------------------ tests */

TEST_F(dma, off_by_default)
{
	struct dma_info d;

	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_TRUE(d.have);
	EXPECT_EQ(0, d.rate);
	EXPECT_EQ(0, d.nr_ranges);
	EXPECT_EQ(0, d.pages);
	EXPECT_EQ(0, d.errors);
	msleep(100);
	for (uint64_t i = 0; i < NPAGES; i++)
		ASSERT_EQ(-1, page_seq(self->mem, i, self->uuid));
}

TEST_F(dma, bitmap_exact_and_quiet_in_p2p)
{
	struct range r = { MAP_IOVA, MAP_SIZE };
	uint64_t p0, p1, p2, i, written = 0, last_seq = 0, last_page = 0;
	uint8_t *snap;
	int fd = -1;
	struct dma_info d;

	ASSERT_EQ(0, dirty_ctl(self->container,
			       VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	ASSERT_EQ(0, dma_set(&self->nl, self->in.uuid, RATE, &r, 1, 0, NULL));
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(RATE, d.rate);
	ASSERT_EQ(1, d.nr_ranges);
	EXPECT_EQ(MAP_IOVA, d.iova[0]);
	EXPECT_EQ(MAP_SIZE, d.len[0]);

	/* one harvest while the engine runs ... */
	msleep(300);
	p0 = dma_pages(&self->nl, self->in.uuid);
	ASSERT_EQ(0, get_bitmap(self->container, MAP_IOVA, MAP_SIZE,
				self->bits));
	p1 = dma_pages(&self->nl, self->in.uuid);
	ASSERT_LT(0, p0);
	/* ... and one after the device stopped */
	msleep(300);
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING_P2P, &fd));
	p2 = dma_pages(&self->nl, self->in.uuid);
	ASSERT_LT(p1, p2);
	ASSERT_EQ(0, get_bitmap(self->container, MAP_IOVA, MAP_SIZE,
				self->bits2));

	for (i = 0; i < NPAGES; i++) {
		int64_t seq = page_seq(self->mem, i, self->uuid);
		bool b1 = bit(self->bits, i), b2 = bit(self->bits2, i);

		ASSERT_NE(-2, seq) TH_LOG("page %llu holds garbage: %016llx %016llx %016llx",
					  (unsigned long long)i,
					  ((unsigned long long *)(self->mem + i * PG))[0],
					  ((unsigned long long *)(self->mem + i * PG))[1],
					  ((unsigned long long *)(self->mem + i * PG))[2]);
		if (seq < 0) {
			EXPECT_FALSE(b1 || b2)
				TH_LOG("page %llu reported, never written",
				       (unsigned long long)i);
			continue;
		}
		written++;
		ASSERT_LT((uint64_t)seq, p2);
		if ((uint64_t)seq >= last_seq) {
			last_seq = seq;
			last_page = i;
		}
		if ((uint64_t)seq >= p1) {
			EXPECT_TRUE(b2) TH_LOG("page %llu (seq %lld) written after the first harvest, not in the second",
					       (unsigned long long)i,
					       (long long)seq);
		} else if ((uint64_t)seq < p0) {
			EXPECT_TRUE(b1 && !b2)
				TH_LOG("page %llu (seq %lld, harvest at %llu): b1 %d b2 %d",
				       (unsigned long long)i, (long long)seq,
				       (unsigned long long)p0, b1, b2);
		} else {
			EXPECT_TRUE(b1 || b2);
		}
	}
	/* the last page written before the stop was written and reported */
	EXPECT_EQ(p2 - 1, last_seq);
	EXPECT_TRUE(bit(self->bits2, last_page));
	EXPECT_EQ(p2 < NPAGES ? p2 : NPAGES, written);
	TH_LOG("%llu writes, %llu pages; harvest at %llu..%llu",
	       (unsigned long long)p2, (unsigned long long)written,
	       (unsigned long long)p0, (unsigned long long)p1);

	/* RUNNING_P2P, then STOP: nothing changes */
	snap = malloc(MAP_SIZE);
	ASSERT_NE(NULL, snap);
	memcpy(snap, self->mem, MAP_SIZE);
	msleep(250);
	EXPECT_EQ(p2, dma_pages(&self->nl, self->in.uuid));
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_STOP, &fd));
	msleep(250);
	EXPECT_EQ(p2, dma_pages(&self->nl, self->in.uuid));
	EXPECT_EQ(0, memcmp(snap, self->mem, MAP_SIZE));
	free(snap);
	ASSERT_EQ(0, get_bitmap(self->container, MAP_IOVA, MAP_SIZE,
				self->bits));
	for (i = 0; i < NPAGES / 64; i++)
		EXPECT_EQ(0, self->bits[i]);

	/* RUNNING again: the engine goes on */
	ASSERT_EQ(0, migsim_set_state(&self->in, VMIG_STATE_RUNNING, &fd));
	msleep(200);
	EXPECT_LT(p2, dma_pages(&self->nl, self->in.uuid));
	EXPECT_EQ(0, dirty_ctl(self->container,
			       VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(0, d.errors);
	EXPECT_EQ(d.pages * PG, d.bytes);
}

TEST_F(dma, bad_iova_disables_range)
{
	struct range r[2] = {
		{ BAD_IOVA, 16 * PG },
		{ MAP_IOVA, 64 * PG },
	};
	struct dma_info d;
	char err[256];

	ASSERT_EQ(0, dma_set(&self->nl, self->in.uuid, RATE, r, 2, 0, NULL));
	msleep(300);
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(1, d.errors);
	ASSERT_EQ(2, d.nr_ranges);
	EXPECT_TRUE(d.disabled[0]);
	EXPECT_FALSE(d.disabled[1]);
	EXPECT_LT(0, d.pages);
	ASSERT_LE(0, migsim_attr_read(self->in.uuid, "last_error", err,
				      sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "DMA write to IOVA 0x200000000 failed"))
		TH_LOG("last_error: %s", err);
	/* the good range got the writes */
	EXPECT_LE(0, page_seq(self->mem, 0, self->uuid));
	EXPECT_EQ(-1, page_seq(self->mem, 64, self->uuid));

	/* a new DMA_SET enables the range again (and it fails again) */
	ASSERT_EQ(0, dma_set(&self->nl, self->in.uuid, -1, r, 2, 0, NULL));
	msleep(200);
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(2, d.errors);
}

TEST_F(dma, unmap_under_running_engine)
{
	struct range r = { MAP_IOVA, MAP_SIZE };
	struct dma_info d;
	uint64_t p;

	ASSERT_EQ(0, dma_set(&self->nl, self->in.uuid, 8 * MiB, &r, 1, 0,
			     NULL));
	msleep(150);
	ASSERT_EQ(0, unmap_dma(self->container, MAP_IOVA, MAP_SIZE));
	msleep(150);
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(1, d.errors);
	EXPECT_TRUE(d.disabled[0]);
	p = d.pages;
	EXPECT_LT(0, p);
	msleep(150);
	EXPECT_EQ(p, dma_pages(&self->nl, self->in.uuid));
	/* mapped again and re-armed: it writes again */
	ASSERT_EQ(0, map_dma(self->container, self->mem, MAP_IOVA, MAP_SIZE));
	ASSERT_EQ(0, dma_set(&self->nl, self->in.uuid, -1, &r, 1, 0, NULL));
	msleep(150);
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_LT(p, d.pages);
	EXPECT_EQ(1, d.errors);
}

#define EXPECT_NLERR(want, e) do { \
	EXPECT_EQ(-(want), (e).err) TH_LOG("errno %d, extack \"%s\"", \
					   -(e).err, (e).msg); \
	EXPECT_NE(0, (e).msg[0]) TH_LOG("no extack message"); \
} while (0)

TEST_F(dma, bad_input)
{
	struct range r[MIGSIM_DMA_MAX_RANGES + 1];
	struct ext e;
	struct dma_info d;
	int i;

	r[0] = (struct range){ MAP_IOVA + 1, PG };
	dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_NLERR(EINVAL, e);
	r[0] = (struct range){ MAP_IOVA, PG + 512 };
	dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_NLERR(EINVAL, e);
	r[0] = (struct range){ MAP_IOVA, 0 };
	dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_NLERR(ERANGE, e);
	r[0] = (struct range){ UINT64_MAX - 2 * PG + 1, 4 * PG };
	dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_NLERR(ERANGE, e);
	r[0] = (struct range){ UINT64_MAX, PG };	/* no IOVA */
	dma_set(&self->nl, self->in.uuid, RATE, r, 1, 0, &e);
	EXPECT_EQ(-EINVAL, e.err);
	r[0] = (struct range){ MAP_IOVA, PG };
	dma_set(&self->nl, self->in.uuid, RATE, r, 1,
		MIGSIM_DMA_RANGE_A_DISABLED, &e);
	EXPECT_NLERR(EINVAL, e);
	r[1] = (struct range){ MAP_IOVA, 2 * PG };
	dma_set(&self->nl, self->in.uuid, RATE, r, 2, 0, &e);
	EXPECT_NLERR(EINVAL, e);
	for (i = 0; i <= MIGSIM_DMA_MAX_RANGES; i++)
		r[i] = (struct range){ MAP_IOVA + i * PG, PG };
	dma_set(&self->nl, self->in.uuid, RATE, r, i, 0, &e);
	EXPECT_NLERR(E2BIG, e);
	dma_set(&self->nl, self->in.uuid, RATE, NULL, 0, 0, &e);
	EXPECT_NLERR(EINVAL, e);
	/* nothing of it stuck */
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(0, d.rate);
	EXPECT_EQ(0, d.nr_ranges);
	/* the most ranges, then an empty nest clears them */
	EXPECT_EQ(0, dma_set(&self->nl, self->in.uuid, 0, r,
			     MIGSIM_DMA_MAX_RANGES, 0, NULL));
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(MIGSIM_DMA_MAX_RANGES, d.nr_ranges);
	EXPECT_EQ(0, dma_off(&self->nl, self->in.uuid));
	ASSERT_EQ(0, dma_get(&self->nl, self->in.uuid, &d));
	EXPECT_EQ(0, d.nr_ranges);
}

TEST_F(dma, dma_logging_not_advertised)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_dma_logging_control c;
	} req = {
		.f.argsz = sizeof(req),
		.f.flags = VFIO_DEVICE_FEATURE_PROBE |
			   VFIO_DEVICE_FEATURE_SET |
			   VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
	};

	EXPECT_EQ(-1, ioctl(self->in.fd, VFIO_DEVICE_FEATURE, &req));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers for the migsim DMA engine selftests (see migsim_nl.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/netlink.h>
#include <linux/vfio.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "migsim_nl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* ------------------------------------------------------------ netlink */

struct request {
	struct migsim_nl_ext *ext;
	bool done;
	struct migsim_dma_info *info;
};

int migsim_nl_open(struct migsim_nl *nl)
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

void migsim_nl_close(struct migsim_nl *nl)
{
	if (nl->sk)
		nl_socket_free(nl->sk);
	nl->sk = NULL;
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	struct request *r = arg;
	int ack_len = sizeof(*e);
	struct nlattr *a;
	int rem;

	(void)who;
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
	(void)m;
	((struct request *)arg)->done = true;
	return NL_STOP;
}

static void parse_dma(struct nlattr *nest, struct migsim_dma_info *d)
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
	struct migsim_dma_info *d = ((struct request *)arg)->info;

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

int migsim_nl_do(struct migsim_nl *nl, struct nl_msg *m,
		 struct migsim_dma_info *info, struct migsim_nl_ext *ext)
{
	struct migsim_nl_ext local;
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

struct nl_msg *migsim_nl_req(struct migsim_nl *nl, int cmd, const char *uuid)
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

/* ------------------------------------------------------------ DMA engine */

int migsim_dma_get(struct migsim_nl *nl, const char *uuid,
		   struct migsim_dma_info *d)
{
	memset(d, 0, sizeof(*d));
	return migsim_nl_do(nl, migsim_nl_req(nl, MIGSIM_CMD_DEV_GET, uuid), d,
			    NULL);
}

uint64_t migsim_dma_pages(struct migsim_nl *nl, const char *uuid)
{
	struct migsim_dma_info d;

	return migsim_dma_get(nl, uuid, &d) ? UINT64_MAX : d.pages;
}

int migsim_dma_set(struct migsim_nl *nl, const char *uuid, int64_t rate,
		   const struct migsim_dma_range *r, int nr, int extra,
		   struct migsim_nl_ext *ext)
{
	struct nl_msg *m = migsim_nl_req(nl, MIGSIM_CMD_DMA_SET, uuid);
	struct nlattr *nest, *rn;
	int i;

	if (!m)
		return -ENOMEM;
	if (rate < 0 && nr <= 0) {
		/* libnl's nla_nest_end() would drop an empty nest */
		if (nla_put(m, MIGSIM_A_DMA | NLA_F_NESTED, 0, NULL) < 0)
			goto fail;
		return migsim_nl_do(nl, m, NULL, ext);
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
	return migsim_nl_do(nl, m, NULL, ext);
fail:
	nlmsg_free(m);
	return -EMSGSIZE;
}

int migsim_dma_off(struct migsim_nl *nl, const char *uuid)
{
	return migsim_dma_set(nl, uuid, -1, NULL, 0, 0, NULL);
}

/* ------------------------------------------------------------ container */

int migsim_map_dma(int container, void *vaddr, uint64_t iova, uint64_t size)
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

int migsim_unmap_dma(int container, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) ? -errno : 0;
}

int migsim_dirty_ctl(int container, uint32_t flag)
{
	struct vfio_iommu_type1_dirty_bitmap d = {
		.argsz = sizeof(d),
		.flags = flag,
	};

	return ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &d) ? -errno : 0;
}

int migsim_get_bitmap(int container, uint64_t iova, uint64_t size,
		      uint64_t pgsize, uint64_t *bits)
{
	struct {
		struct vfio_iommu_type1_dirty_bitmap d;
		struct vfio_iommu_type1_dirty_bitmap_get g;
	} req = {
		.d.argsz = sizeof(req),
		.d.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
		.g.iova = iova,
		.g.size = size,
		.g.bitmap.pgsize = pgsize,
		.g.bitmap.size = (size / pgsize + 63) / 64 * 8,
		.g.bitmap.data = (__u64 *)bits,
	};

	memset(bits, 0, req.g.bitmap.size);
	return ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &req) ? -errno : 0;
}

/* ------------------------------------------------------------ misc */

void migsim_msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

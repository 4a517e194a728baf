// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-migsim: the generic netlink control family "vfio_migsim".
 *
 * Test hosts steer instances from scripts with it: read an instance's
 * state and counters, set its size and workload, arm faults, and follow
 * every migration state change on the "events" multicast group.  Commands,
 * attributes and policies are in include/uapi/linux/vfio_migsim.h.
 *
 * Locking: migsim_devs_lock (the registry of instances) is taken before an
 * instance's state_mutex and held across a command, so that remove() cannot
 * free an instance a command is using.  Events are sent with state_mutex
 * held and take no lock of ours.
 */
#include <linux/capability.h>
#include <linux/mdev.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uuid.h>
#include <linux/xarray.h>
#include <net/genetlink.h>
#include "migsim.h"

static DEFINE_MUTEX(migsim_devs_lock);
static DEFINE_XARRAY_ALLOC(migsim_devs);	/* id -> struct migsim_dev */

static struct genl_family migsim_genl_family;

/* at most a second per read */
static const struct netlink_range_validation migsim_delay_range = {
	.max = USEC_PER_SEC,
};

static const struct nla_policy migsim_fault_policy[MIGSIM_FAULT_A_MAX + 1] = {
	[MIGSIM_FAULT_A_SAVE_OFFSET] = { .type = NLA_U64 },
	[MIGSIM_FAULT_A_SAVE_ERRNO] = NLA_POLICY_RANGE(NLA_U32, 1, 4095),
	[MIGSIM_FAULT_A_LOAD_OFFSET] = { .type = NLA_U64 },
	[MIGSIM_FAULT_A_READ_DELAY_US] =
		NLA_POLICY_FULL_RANGE(NLA_U32, &migsim_delay_range),
	[MIGSIM_FAULT_A_FAIL_TRANSITION] = NLA_POLICY_RANGE(NLA_U32, 1, 4095),
};

static const struct nla_policy
migsim_dma_range_policy[MIGSIM_DMA_RANGE_A_MAX + 1] = {
	[MIGSIM_DMA_RANGE_A_IOVA] = { .type = NLA_U64 },
	[MIGSIM_DMA_RANGE_A_LENGTH] = NLA_POLICY_MIN(NLA_U64, SZ_4K),
	[MIGSIM_DMA_RANGE_A_DISABLED] = { .type = NLA_REJECT },
};

static const struct nla_policy migsim_dma_policy[MIGSIM_DMA_A_MAX + 1] = {
	[MIGSIM_DMA_A_RATE] = { .type = NLA_U64 },
	[MIGSIM_DMA_A_RANGE] = NLA_POLICY_NESTED(migsim_dma_range_policy),
};

static const struct nla_policy migsim_policy[MIGSIM_A_MAX + 1] = {
	[MIGSIM_A_UUID] = { .type = NLA_NUL_STRING, .len = UUID_STRING_LEN },
	[MIGSIM_A_STATE_SIZE] = NLA_POLICY_MIN(NLA_U64, SZ_4K),
	[MIGSIM_A_NONPRECOPY_SIZE] = { .type = NLA_U64 },
	[MIGSIM_A_DIRTY_RATE] = { .type = NLA_U64 },
	[MIGSIM_A_HOT_SET] = NLA_POLICY_RANGE(NLA_U32, 1, 1000),
	[MIGSIM_A_FAULT] = NLA_POLICY_NESTED(migsim_fault_policy),
	[MIGSIM_A_DMA] = NLA_POLICY_NESTED(migsim_dma_policy),
};

/* ------------------------------------------------------------ registry */

int migsim_nl_register(struct migsim_dev *mdev)
{
	int ret;

	mutex_lock(&migsim_devs_lock);
	ret = xa_alloc(&migsim_devs, &mdev->nl_id, mdev, xa_limit_32b,
		       GFP_KERNEL);
	mutex_unlock(&migsim_devs_lock);
	return ret;
}

void migsim_nl_unregister(struct migsim_dev *mdev)
{
	mutex_lock(&migsim_devs_lock);
	xa_erase(&migsim_devs, mdev->nl_id);
	mutex_unlock(&migsim_devs_lock);
}

/* Find the instance a request names.  Called with migsim_devs_lock held. */
static struct migsim_dev *migsim_nl_find(struct genl_info *info)
{
	struct migsim_dev *mdev;
	unsigned long id;
	char uuid[UUID_STRING_LEN + 1];

	if (GENL_REQ_ATTR_CHECK(info, MIGSIM_A_UUID))
		return ERR_PTR(-EINVAL);
	nla_strscpy(uuid, info->attrs[MIGSIM_A_UUID], sizeof(uuid));
	xa_for_each(&migsim_devs, id, mdev) {
		char name[UUID_STRING_LEN + 1];

		snprintf(name, sizeof(name), "%pUl", &mdev->mdev->uuid);
		if (!strcmp(name, uuid))
			return mdev;
	}
	NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[MIGSIM_A_UUID],
			    "no vfio-migsim instance with this UUID");
	return ERR_PTR(-ENODEV);
}

/* ------------------------------------------------------------ DEV_GET */

/* The DMA engine's configuration.  state_mutex held. */
static int migsim_nl_fill_dma(struct sk_buff *skb, struct migsim_dma *dma)
{
	struct nlattr *nest, *rn;
	u32 i;

	nest = nla_nest_start(skb, MIGSIM_A_DMA);
	if (!nest ||
	    nla_put_u64_64bit(skb, MIGSIM_DMA_A_RATE, dma->rate,
			      MIGSIM_DMA_A_PAD))
		return -EMSGSIZE;
	for (i = 0; i < dma->nr_ranges; i++) {
		struct migsim_dma_range *r = &dma->ranges[i];

		rn = nla_nest_start(skb, MIGSIM_DMA_A_RANGE);
		if (!rn ||
		    nla_put_u64_64bit(skb, MIGSIM_DMA_RANGE_A_IOVA, r->iova,
				      MIGSIM_DMA_RANGE_A_PAD) ||
		    nla_put_u64_64bit(skb, MIGSIM_DMA_RANGE_A_LENGTH, r->len,
				      MIGSIM_DMA_RANGE_A_PAD) ||
		    (r->disabled &&
		     nla_put_flag(skb, MIGSIM_DMA_RANGE_A_DISABLED)))
			return -EMSGSIZE;
		nla_nest_end(skb, rn);
	}
	nla_nest_end(skb, nest);
	return 0;
}

static int migsim_nl_fill(struct sk_buff *skb, struct migsim_dev *mdev,
			  u32 portid, u32 seq, int flags)
{
	struct migsim_stats *s = &mdev->stats;
	struct nlattr *nest;
	char uuid[UUID_STRING_LEN + 1];
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &migsim_genl_family, flags,
			  MIGSIM_CMD_DEV_GET);
	if (!hdr)
		return -EMSGSIZE;
	snprintf(uuid, sizeof(uuid), "%pUl", &mdev->mdev->uuid);

	mutex_lock(&mdev->state_mutex);
	if (nla_put_string(skb, MIGSIM_A_UUID, uuid) ||
	    nla_put_u32(skb, MIGSIM_A_MIG_STATE, mdev->mig_state) ||
	    nla_put_u64_64bit(skb, MIGSIM_A_STATE_SIZE, mdev->store->size,
			      MIGSIM_A_PAD) ||
	    nla_put_u64_64bit(skb, MIGSIM_A_NONPRECOPY_SIZE,
			      mdev->nonprecopy_size, MIGSIM_A_PAD) ||
	    nla_put_u64_64bit(skb, MIGSIM_A_DIRTY_RATE, mdev->engine.rate,
			      MIGSIM_A_PAD) ||
	    nla_put_u32(skb, MIGSIM_A_HOT_SET, mdev->engine.hot_permille) ||
	    nla_put_u64_64bit(skb, MIGSIM_A_GENERATION, mdev->generation,
			      MIGSIM_A_PAD) ||
	    nla_put_u32(skb, MIGSIM_A_CHECKSUM, migsim_checksum(mdev)) ||
	    nla_put_u32(skb, MIGSIM_A_CHUNK_SIZE, mdev->store->chunk_size))
		goto cancel;
	nest = nla_nest_start(skb, MIGSIM_A_STATS);
	if (!nest ||
	    nla_put_u64_64bit(skb, MIGSIM_STAT_BYTES_SAVED,
			      atomic64_read(&s->bytes_saved),
			      MIGSIM_STAT_PAD) ||
	    nla_put_u64_64bit(skb, MIGSIM_STAT_BYTES_LOADED,
			      atomic64_read(&s->bytes_loaded),
			      MIGSIM_STAT_PAD) ||
	    nla_put_u64_64bit(skb, MIGSIM_STAT_CHUNKS_DIRTIED,
			      mdev->engine.chunks_dirtied, MIGSIM_STAT_PAD) ||
	    nla_put_u64_64bit(skb, MIGSIM_STAT_PRECOPY_READS,
			      atomic64_read(&s->precopy_reads),
			      MIGSIM_STAT_PAD) ||
	    nla_put_u64_64bit(skb, MIGSIM_STAT_DMA_BYTES, mdev->dma.bytes,
			      MIGSIM_STAT_PAD) ||
	    nla_put_u64_64bit(skb, MIGSIM_STAT_DMA_PAGES, mdev->dma.pages,
			      MIGSIM_STAT_PAD) ||
	    nla_put_u64_64bit(skb, MIGSIM_STAT_DMA_ERRORS, mdev->dma.errors,
			      MIGSIM_STAT_PAD))
		goto cancel;
	nla_nest_end(skb, nest);
	if (migsim_nl_fill_dma(skb, &mdev->dma))
		goto cancel;
	mutex_unlock(&mdev->state_mutex);
	genlmsg_end(skb, hdr);
	return 0;

cancel:
	mutex_unlock(&mdev->state_mutex);
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

static int migsim_nl_dev_get(struct sk_buff *skb, struct genl_info *info)
{
	struct migsim_dev *mdev;
	struct sk_buff *msg;
	int ret;

	msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	mutex_lock(&migsim_devs_lock);
	mdev = migsim_nl_find(info);
	if (IS_ERR(mdev))
		ret = PTR_ERR(mdev);
	else
		ret = migsim_nl_fill(msg, mdev, info->snd_portid,
				     info->snd_seq, 0);
	mutex_unlock(&migsim_devs_lock);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	return genlmsg_reply(msg, info);
}

static int migsim_nl_dev_dump(struct sk_buff *skb,
			      struct netlink_callback *cb)
{
	unsigned long id = cb->args[0];
	struct migsim_dev *mdev;
	int ret = 0;

	mutex_lock(&migsim_devs_lock);
	xa_for_each_start(&migsim_devs, id, mdev, cb->args[0]) {
		ret = migsim_nl_fill(skb, mdev, NETLINK_CB(cb->skb).portid,
				     cb->nlh->nlmsg_seq, NLM_F_MULTI);
		if (ret)
			break;
		cb->args[0] = id + 1;
	}
	mutex_unlock(&migsim_devs_lock);
	/* a full skb ends this part of the dump; the next one goes on */
	return ret == -EMSGSIZE ? skb->len : ret ? ret : skb->len;
}

/* ------------------------------------------------------------ DEV_SET */

static int migsim_nl_dev_set(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **a = info->attrs;
	struct migsim_dev *mdev;
	int ret = 0;

	mutex_lock(&migsim_devs_lock);
	mdev = migsim_nl_find(info);
	if (IS_ERR(mdev)) {
		ret = PTR_ERR(mdev);
		goto out;
	}
	mutex_lock(&mdev->state_mutex);
	if (a[MIGSIM_A_STATE_SIZE]) {
		u64 size = nla_get_u64(a[MIGSIM_A_STATE_SIZE]);

		if (size % SZ_4K) {
			NL_SET_ERR_MSG_ATTR(info->extack,
					    a[MIGSIM_A_STATE_SIZE],
					    "state size must be a multiple of 4 KiB");
			ret = -EINVAL;
			goto unlock;
		}
		if (size > migsim_max_state_size) {
			NL_SET_ERR_MSG_ATTR(info->extack,
					    a[MIGSIM_A_STATE_SIZE],
					    "state size over the module's max_state_size");
			ret = -ERANGE;
			goto unlock;
		}
		ret = migsim_resize(mdev, size);
		if (ret == -EBUSY)
			NL_SET_ERR_MSG_ATTR(info->extack,
					    a[MIGSIM_A_STATE_SIZE],
					    "the state can change size only in RUNNING or PRE_COPY");
		else if (ret)
			NL_SET_ERR_MSG_ATTR(info->extack,
					    a[MIGSIM_A_STATE_SIZE],
					    "resizing the state failed");
		if (ret)
			goto unlock;
	}
	if (a[MIGSIM_A_NONPRECOPY_SIZE]) {
		u64 np = nla_get_u64(a[MIGSIM_A_NONPRECOPY_SIZE]);

		if (np > migsim_max_state_size) {
			NL_SET_ERR_MSG_ATTR(info->extack,
					    a[MIGSIM_A_NONPRECOPY_SIZE],
					    "non-precopyable size over max_state_size");
			ret = -ERANGE;
			goto unlock;
		}
		if (mdev->saving || mdev->resuming) {
			NL_SET_ERR_MSG_ATTR(info->extack,
					    a[MIGSIM_A_NONPRECOPY_SIZE],
					    "cannot change while a migration data fd is open");
			ret = -EBUSY;
			goto unlock;
		}
		mdev->nonprecopy_size = np;
	}
	if (a[MIGSIM_A_DIRTY_RATE] || a[MIGSIM_A_HOT_SET])
		migsim_engine_set(mdev,
				  a[MIGSIM_A_DIRTY_RATE] ?
				  nla_get_u64(a[MIGSIM_A_DIRTY_RATE]) :
				  mdev->engine.rate,
				  a[MIGSIM_A_HOT_SET] ?
				  nla_get_u32(a[MIGSIM_A_HOT_SET]) :
				  mdev->engine.hot_permille);
unlock:
	mutex_unlock(&mdev->state_mutex);
out:
	mutex_unlock(&migsim_devs_lock);
	return ret;
}

/* ------------------------------------------------------------ FAULT_SET */

static int migsim_nl_fault_set(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr *f[MIGSIM_FAULT_A_MAX + 1];
	struct migsim_dev *mdev;
	struct migsim_faults nf = {
		.save_offset = U64_MAX,
		.save_errno = EIO,
		.load_offset = U64_MAX,
	};
	int ret;

	if (GENL_REQ_ATTR_CHECK(info, MIGSIM_A_FAULT))
		return -EINVAL;
	ret = nla_parse_nested(f, MIGSIM_FAULT_A_MAX,
			       info->attrs[MIGSIM_A_FAULT],
			       migsim_fault_policy, info->extack);
	if (ret)
		return ret;
	if (f[MIGSIM_FAULT_A_SAVE_ERRNO] && !f[MIGSIM_FAULT_A_SAVE_OFFSET]) {
		NL_SET_ERR_MSG_ATTR(info->extack, f[MIGSIM_FAULT_A_SAVE_ERRNO],
				    "a save errno needs a save offset");
		return -EINVAL;
	}
	if (f[MIGSIM_FAULT_A_SAVE_OFFSET])
		nf.save_offset = nla_get_u64(f[MIGSIM_FAULT_A_SAVE_OFFSET]);
	if (f[MIGSIM_FAULT_A_SAVE_ERRNO])
		nf.save_errno = nla_get_u32(f[MIGSIM_FAULT_A_SAVE_ERRNO]);
	if (f[MIGSIM_FAULT_A_LOAD_OFFSET])
		nf.load_offset = nla_get_u64(f[MIGSIM_FAULT_A_LOAD_OFFSET]);
	if (f[MIGSIM_FAULT_A_READ_DELAY_US])
		nf.read_delay_us = nla_get_u32(f[MIGSIM_FAULT_A_READ_DELAY_US]);
	if (f[MIGSIM_FAULT_A_FAIL_TRANSITION])
		nf.fail_transition =
			nla_get_u32(f[MIGSIM_FAULT_A_FAIL_TRANSITION]);

	mutex_lock(&migsim_devs_lock);
	mdev = migsim_nl_find(info);
	if (IS_ERR(mdev)) {
		ret = PTR_ERR(mdev);
	} else {
		migsim_faults_set(mdev, &nf);
		ret = 0;
	}
	mutex_unlock(&migsim_devs_lock);
	return ret;
}

/* ------------------------------------------------------------ DMA_SET */

/* One RANGE nest of a DMA_SET into r; 0 or -errno with an extack. */
static int migsim_nl_dma_range(struct nlattr *nest,
			       struct migsim_dma_range *r,
			       struct netlink_ext_ack *extack)
{
	struct nlattr *t[MIGSIM_DMA_RANGE_A_MAX + 1];
	int ret;

	ret = nla_parse_nested(t, MIGSIM_DMA_RANGE_A_MAX, nest,
			       migsim_dma_range_policy, extack);
	if (ret)
		return ret;
	if (NL_REQ_ATTR_CHECK(extack, nest, t, MIGSIM_DMA_RANGE_A_IOVA) ||
	    NL_REQ_ATTR_CHECK(extack, nest, t, MIGSIM_DMA_RANGE_A_LENGTH)) {
		NL_SET_ERR_MSG(extack, "a DMA range needs an IOVA and a length");
		return -EINVAL;
	}
	r->iova = nla_get_u64(t[MIGSIM_DMA_RANGE_A_IOVA]);
	r->len = nla_get_u64(t[MIGSIM_DMA_RANGE_A_LENGTH]);
	r->disabled = false;
	if (!IS_ALIGNED(r->iova, MIGSIM_DMA_PAGE_SIZE)) {
		NL_SET_ERR_MSG_ATTR(extack, t[MIGSIM_DMA_RANGE_A_IOVA],
				    "DMA range IOVA must be 4 KiB aligned");
		return -EINVAL;
	}
	if (!IS_ALIGNED(r->len, MIGSIM_DMA_PAGE_SIZE)) {
		NL_SET_ERR_MSG_ATTR(extack, t[MIGSIM_DMA_RANGE_A_LENGTH],
				    "DMA range length must be a multiple of 4 KiB");
		return -EINVAL;
	}
	if (r->iova + r->len < r->iova) {
		NL_SET_ERR_MSG_ATTR(extack, t[MIGSIM_DMA_RANGE_A_LENGTH],
				    "DMA range wraps around the IOVA space");
		return -ERANGE;
	}
	return 0;
}

static int migsim_nl_dma_parse(struct nlattr *nest,
			       struct migsim_dma_conf *conf,
			       struct netlink_ext_ack *extack)
{
	struct nlattr *t[MIGSIM_DMA_A_MAX + 1];
	struct nlattr *a;
	int rem, ret;
	u32 i;

	ret = nla_parse_nested(t, MIGSIM_DMA_A_MAX, nest, migsim_dma_policy,
			       extack);
	if (ret)
		return ret;
	if (t[MIGSIM_DMA_A_RATE]) {
		conf->set_rate = true;
		conf->rate = nla_get_u64(t[MIGSIM_DMA_A_RATE]);
	}
	nla_for_each_nested_type(a, MIGSIM_DMA_A_RANGE, nest, rem) {
		struct migsim_dma_range *r;

		if (conf->nr_ranges == MIGSIM_DMA_MAX_RANGES) {
			NL_SET_ERR_MSG_ATTR(extack, a, "too many DMA ranges");
			return -E2BIG;
		}
		r = &conf->ranges[conf->nr_ranges];
		ret = migsim_nl_dma_range(a, r, extack);
		if (ret)
			return ret;
		for (i = 0; i < conf->nr_ranges; i++) {
			struct migsim_dma_range *o = &conf->ranges[i];

			if (r->iova < o->iova + o->len &&
			    o->iova < r->iova + r->len) {
				NL_SET_ERR_MSG_ATTR(extack, a,
						    "DMA ranges overlap");
				return -EINVAL;
			}
		}
		conf->nr_ranges++;
		conf->set_ranges = true;
	}
	/* an empty nest: off, no ranges */
	if (!conf->set_rate && !conf->set_ranges) {
		conf->set_rate = true;
		conf->set_ranges = true;
	}
	return 0;
}

static int migsim_nl_dma_set(struct sk_buff *skb, struct genl_info *info)
{
	struct migsim_dma_conf *conf;
	struct migsim_dev *mdev;
	u64 rate;
	u32 nr;
	int ret;

	if (GENL_REQ_ATTR_CHECK(info, MIGSIM_A_DMA))
		return -EINVAL;
	conf = kzalloc(sizeof(*conf), GFP_KERNEL);
	if (!conf)
		return -ENOMEM;
	ret = migsim_nl_dma_parse(info->attrs[MIGSIM_A_DMA], conf,
				  info->extack);
	if (ret)
		goto free;

	mutex_lock(&migsim_devs_lock);
	mdev = migsim_nl_find(info);
	if (IS_ERR(mdev)) {
		ret = PTR_ERR(mdev);
		goto out;
	}
	mutex_lock(&mdev->state_mutex);
	rate = conf->set_rate ? conf->rate : mdev->dma.rate;
	nr = conf->set_ranges ? conf->nr_ranges : mdev->dma.nr_ranges;
	if (rate && !nr) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[MIGSIM_A_DMA],
				    "a DMA rate needs at least one range");
		ret = -EINVAL;
	} else {
		migsim_dma_set(mdev, conf);
	}
	mutex_unlock(&mdev->state_mutex);
out:
	mutex_unlock(&migsim_devs_lock);
free:
	kfree(conf);
	return ret;
}

/* ------------------------------------------------------------ events */

/* Announce a migration state change.  Called with state_mutex held. */
void migsim_nl_state_event(struct migsim_dev *mdev,
			   enum vfio_device_mig_state old,
			   enum vfio_device_mig_state new)
{
	char uuid[UUID_STRING_LEN + 1];
	struct sk_buff *msg;
	void *hdr;

	if (!genl_has_listeners(&migsim_genl_family, &init_net, 0))
		return;
	msg = nlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return;
	hdr = genlmsg_put(msg, 0, 0, &migsim_genl_family, 0,
			  MIGSIM_CMD_STATE_EVENT);
	if (!hdr)
		goto free;
	snprintf(uuid, sizeof(uuid), "%pUl", &mdev->mdev->uuid);
	if (nla_put_string(msg, MIGSIM_A_UUID, uuid) ||
	    nla_put_u32(msg, MIGSIM_A_OLD_STATE, old) ||
	    nla_put_u32(msg, MIGSIM_A_MIG_STATE, new))
		goto free;
	genlmsg_end(msg, hdr);
	genlmsg_multicast(&migsim_genl_family, msg, 0, 0, GFP_KERNEL);
	return;
free:
	nlmsg_free(msg);
}

/* ------------------------------------------------------------ family */

static const struct genl_small_ops migsim_genl_ops[] = {
	{
		.cmd = MIGSIM_CMD_DEV_GET,
		.doit = migsim_nl_dev_get,
		.dumpit = migsim_nl_dev_dump,
	},
	{
		.cmd = MIGSIM_CMD_DEV_SET,
		.doit = migsim_nl_dev_set,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = MIGSIM_CMD_FAULT_SET,
		.doit = migsim_nl_fault_set,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = MIGSIM_CMD_DMA_SET,
		.doit = migsim_nl_dma_set,
		.flags = GENL_ADMIN_PERM,
	},
};

static const struct genl_multicast_group migsim_genl_mcgrps[] = {
	{ .name = MIGSIM_GENL_MCGRP },
};

static struct genl_family migsim_genl_family __ro_after_init = {
	.name = MIGSIM_GENL_NAME,
	.version = MIGSIM_GENL_VERSION,
	.maxattr = MIGSIM_A_MAX,
	.policy = migsim_policy,
	.module = THIS_MODULE,
	.small_ops = migsim_genl_ops,
	.n_small_ops = ARRAY_SIZE(migsim_genl_ops),
	.resv_start_op = MIGSIM_CMD_STATE_EVENT + 1,
	.mcgrps = migsim_genl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(migsim_genl_mcgrps),
};

int __init migsim_nl_init(void)
{
	return genl_register_family(&migsim_genl_family);
}

void migsim_nl_exit(void)
{
	genl_unregister_family(&migsim_genl_family);
	WARN_ON(!xa_empty(&migsim_devs));
	xa_destroy(&migsim_devs);
}

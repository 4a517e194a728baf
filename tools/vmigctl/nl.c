// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmigctl: requests to the vfio_migsim generic netlink family (libnl-3,
 * libnl-genl-3), with the kernel's extended ACK (extack) messages.
 *
 * libnl 3.7 does not parse extack itself: the socket asks for it with
 * NETLINK_EXT_ACK, and the error callback reads the NLMSGERR_ATTR_MSG and
 * NLMSGERR_ATTR_OFFS TLVs that follow the struct nlmsgerr.  The offset
 * names the attribute of our request the kernel blamed, which is mapped
 * back to the command-line keyword that produced it.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include <linux/vfio_migsim.h>

#include "vmigctl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* The keywords of "vmigctl dev set/fault" for the attributes they set. */
static const char *const attr_keyword[MIGSIM_A_MAX + 1] = {
	[MIGSIM_A_UUID] = "UUID",
	[MIGSIM_A_STATE_SIZE] = "size",
	[MIGSIM_A_NONPRECOPY_SIZE] = "nonprecopy-size",
	[MIGSIM_A_DIRTY_RATE] = "dirty-rate",
	[MIGSIM_A_HOT_SET] = "hot-set",
	[MIGSIM_A_FAULT] = "fault",
};

static const char *const fault_keyword[MIGSIM_FAULT_A_MAX + 1] = {
	[MIGSIM_FAULT_A_SAVE_OFFSET] = "save-at",
	[MIGSIM_FAULT_A_SAVE_ERRNO] = "errno",
	[MIGSIM_FAULT_A_LOAD_OFFSET] = "load-at",
	[MIGSIM_FAULT_A_READ_DELAY_US] = "read-delay",
	[MIGSIM_FAULT_A_FAIL_TRANSITION] = "fail-transition",
};

int vmigctl_nl_open(struct vmigctl_nl *nl)
{
	int one = 1, ret;

	memset(nl, 0, sizeof(*nl));
	nl->sk = nl_socket_alloc();
	if (!nl->sk) {
		vmigctl_error("out of memory");
		return -ENOMEM;
	}
	ret = genl_connect(nl->sk);
	if (ret < 0) {
		vmigctl_error("generic netlink socket: %s", nl_geterror(ret));
		goto fail;
	}
	/* Best effort: without extack, errors have no message. */
	setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_EXT_ACK,
		   &one, sizeof(one));
	nl->family = genl_ctrl_resolve(nl->sk, MIGSIM_GENL_NAME);
	if (nl->family < 0) {
		if (nl->family == -NLE_OBJ_NOTFOUND)
			vmigctl_error("no generic netlink family \"%s\": is the vfio-migsim module loaded?",
				      MIGSIM_GENL_NAME);
		else
			vmigctl_error("resolving generic netlink family \"%s\": %s",
				      MIGSIM_GENL_NAME,
				      nl_geterror(nl->family));
		goto fail;
	}
	return 0;

fail:
	nl_socket_free(nl->sk);
	nl->sk = NULL;
	return -ENOENT;
}

void vmigctl_nl_close(struct vmigctl_nl *nl)
{
	if (nl->sk)
		nl_socket_free(nl->sk);
	nl->sk = NULL;
}

struct nl_msg *vmigctl_nl_msg(struct vmigctl_nl *nl, uint8_t cmd, int flags)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, flags,
			 cmd, MIGSIM_GENL_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

struct request {
	struct vmigctl_nl *nl;
	struct nlmsghdr *sent;
	int (*valid)(struct nl_msg *msg, void *arg);
	void *arg;
	bool done;
	int err;
};

/* The keyword of the attribute at byte offset off of the request. */
static const char *blamed_attr(struct nlmsghdr *sent, uint32_t off)
{
	int hdrlen = NLMSG_HDRLEN + GENL_HDRLEN;
	struct nlattr *a, *f;
	int rem, frem;

	if (!sent || off < (uint32_t)hdrlen || off >= sent->nlmsg_len)
		return NULL;
	nla_for_each_attr(a, (struct nlattr *)((char *)sent + hdrlen),
			  sent->nlmsg_len - hdrlen, rem) {
		uint32_t at = (char *)a - (char *)sent;
		int type = nla_type(a);

		if (off == at)
			return type <= MIGSIM_A_MAX ? attr_keyword[type] : NULL;
		if (type != MIGSIM_A_FAULT || off < at ||
		    off >= at + nla_total_size(nla_len(a)))
			continue;
		nla_for_each_nested(f, a, frem) {
			int ftype = nla_type(f);

			if ((char *)f - (char *)sent == off)
				return ftype <= MIGSIM_FAULT_A_MAX ?
				       fault_keyword[ftype] : NULL;
		}
	}
	return NULL;
}

/* Read the extack TLVs of an error (or of a dump's DONE) message. */
static void parse_extack(struct request *r, struct nlattr *tlvs, int len)
{
	struct nlattr *a;
	int rem;

	nla_for_each_attr(a, tlvs, len, rem) {
		switch (nla_type(a)) {
		case NLMSGERR_ATTR_MSG:
			if (nla_len(a) > 0) {
				snprintf(r->nl->ext_msg, sizeof(r->nl->ext_msg),
					 "%.*s", nla_len(a), (char *)nla_data(a));
			}
			break;
		case NLMSGERR_ATTR_MISS_TYPE:
			if (!r->nl->ext_msg[0] &&
			    nla_len(a) >= (int)sizeof(uint32_t)) {
				uint32_t t = nla_get_u32(a);
				const char *k = t <= MIGSIM_A_MAX ?
						attr_keyword[t] : NULL;

				snprintf(r->nl->ext_msg, sizeof(r->nl->ext_msg),
					 "missing attribute %s",
					 k ? k : "(unknown)");
			}
			break;
		case NLMSGERR_ATTR_OFFS:
			if (nla_len(a) >= (int)sizeof(uint32_t))
				r->nl->ext_attr = blamed_attr(r->sent,
							      nla_get_u32(a));
			break;
		}
	}
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	struct request *r = arg;
	int ack_len = sizeof(*e);

	(void)who;
	r->err = e->error;
	r->done = true;
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NL_STOP;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		ack_len += e->msg.nlmsg_len - NLMSG_HDRLEN;
	if ((int)nlh->nlmsg_len > NLMSG_HDRLEN + ack_len)
		parse_extack(r, (struct nlattr *)((char *)e + ack_len),
			     nlh->nlmsg_len - NLMSG_HDRLEN - ack_len);
	return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	struct request *r = arg;

	(void)msg;
	r->done = true;
	return NL_STOP;
}

static int on_finish(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct request *r = arg;
	int err;

	r->done = true;
	/* a dump that failed part way ends with DONE carrying -errno */
	if (nlmsg_datalen(nlh) >= (int)sizeof(int)) {
		memcpy(&err, nlmsg_data(nlh), sizeof(err));
		if (err < 0 && !r->err) {
			r->err = err;
			if (nlh->nlmsg_flags & NLM_F_ACK_TLVS)
				parse_extack(r, (struct nlattr *)
					     ((char *)nlmsg_data(nlh) +
					      NLA_ALIGN(sizeof(int))),
					     nlmsg_datalen(nlh) -
					     NLA_ALIGN(sizeof(int)));
		}
	}
	return NL_STOP;
}

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct request *r = arg;
	int ret;

	if (!r->valid || r->err)
		return NL_OK;
	ret = r->valid(msg, r->arg);
	if (ret < 0)
		r->err = ret;
	return NL_OK;
}

int vmigctl_nl_request(struct vmigctl_nl *nl, struct nl_msg *msg,
		       int (*valid)(struct nl_msg *msg, void *arg), void *arg)
{
	struct request r = {
		.nl = nl, .valid = valid, .arg = arg,
	};
	struct nl_cb *cb;
	int ret;

	nl->ext_msg[0] = '\0';
	nl->ext_attr = NULL;
	if (!msg)
		return -ENOMEM;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, &r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, &r);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_finish, &r);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, &r);

	ret = nl_send_auto(nl->sk, msg);
	if (ret < 0) {
		r.err = -EIO;
		snprintf(nl->ext_msg, sizeof(nl->ext_msg), "sending: %s",
			 nl_geterror(ret));
		goto out;
	}
	r.sent = nlmsg_hdr(msg);
	while (!r.done) {
		ret = nl_recvmsgs(nl->sk, cb);
		if (ret < 0 && !r.done) {
			r.err = -EIO;
			snprintf(nl->ext_msg, sizeof(nl->ext_msg),
				 "receiving: %s", nl_geterror(ret));
			break;
		}
	}
out:
	nl_cb_put(cb);
	nlmsg_free(msg);
	return r.err;
}

int vmigctl_nl_subscribe(struct vmigctl_nl *nl)
{
	int grp, ret;

	grp = genl_ctrl_resolve_grp(nl->sk, MIGSIM_GENL_NAME,
				    MIGSIM_GENL_MCGRP);
	if (grp < 0) {
		vmigctl_error("no multicast group \"%s\" in family \"%s\": %s",
			      MIGSIM_GENL_MCGRP, MIGSIM_GENL_NAME,
			      nl_geterror(grp));
		return -ENOENT;
	}
	ret = nl_socket_add_membership(nl->sk, grp);
	if (ret < 0) {
		vmigctl_error("joining multicast group \"%s\": %s",
			      MIGSIM_GENL_MCGRP, nl_geterror(ret));
		return -EIO;
	}
	nl_socket_disable_seq_check(nl->sk);
	return 0;
}

void vmigctl_nl_perror(struct vmigctl_nl *nl, int err, const char *what)
{
	const char *hint = "";

	if (err == -EPERM)
		hint = " (this needs CAP_NET_ADMIN)";
	if (nl->ext_msg[0]) {
		vmigctl_error("%s: %s%s%s (%s)%s", what,
			      nl->ext_attr ? nl->ext_attr : "",
			      nl->ext_attr ? ": " : "", nl->ext_msg,
			      strerror(-err), hint);
	} else {
		vmigctl_error("%s: %s%s", what, strerror(-err), hint);
	}
}

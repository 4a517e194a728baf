// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Destination: accepting the set of channels of one kind a source opens.
 * See vmig_chan_accept_set() in transport.h.
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "transport.h"

struct accept_set {
	enum vmig_chan_kind kind;
	unsigned int max;
	unsigned int count;		/* 0 until the first channel */
	int *fds;
};

static int set_wanted(const struct vmig_chan_id *id, void *opaque)
{
	struct accept_set *as = opaque;

	if (id->kind != as->kind)
		return -EPROTONOSUPPORT;
	if (!id->count || id->count > as->max || id->index >= id->count ||
	    (as->count && id->count != as->count))
		return -EINVAL;
	if (as->count && as->fds[id->index] >= 0)
		return -EEXIST;
	return 0;
}

int vmig_chan_accept_set(int listen_fd, const struct vmig_chan_auth *auth,
			 enum vmig_chan_kind kind, unsigned int max, int *fds,
			 unsigned int *count)
{
	struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
	struct accept_set as = { .kind = kind, .max = max, .fds = fds };
	unsigned int i, have = 0;
	struct vmig_chan_id id;
	const char *why;
	int fd, ret = 0;

	for (i = 0; i < max; i++)
		fds[i] = -1;
	while (!as.count || have < as.count) {
		ret = poll(&pfd, 1, auth->timeout_ms ? (int)auth->timeout_ms :
			   -1);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0) {
			ret = ret ? -errno : -ETIMEDOUT;
			break;
		}
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == ECONNABORTED)
				continue;
			ret = -errno;
			break;
		}
		ret = vmig_chan_handshake_accept(fd, auth, set_wanted, &as, &id,
						 &why);
		if (ret) {
			vmig_warn("refused a connection: %s", why);
			close(fd);
			continue;
		}
		as.count = id.count;
		fds[id.index] = fd;
		have++;
	}
	if (ret > 0)
		ret = 0;
	if (ret) {
		for (i = 0; i < max; i++) {
			if (fds[i] >= 0)
				close(fds[i]);
			fds[i] = -1;
		}
		return ret;
	}
	*count = as.count;
	return 0;
}

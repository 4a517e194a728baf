/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Network helpers for the tests: a loopback listener, and a network
 * partition.  For the partition, the calling process moves into a network
 * namespace of its own (kselftest runs each test in a child), so that
 * taking its loopback down loses every packet of its connections, with no
 * FIN and no reset, and bringing it up again heals them.
 */
#ifndef VMIG_TEST_NET_H
#define VMIG_TEST_NET_H

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* A TCP socket listening on 127.0.0.1, its address in *sa; -1 if none. */
static inline int listen_lo(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)sa, sizeof(*sa)) ||
	    listen(fd, 32) || getsockname(fd, (struct sockaddr *)sa, &len)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Bring the namespace's loopback up or down: 0 or a negative errno. */
static inline int lo_set_up(bool up)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ret = -errno;
	} else {
		if (up)
			ifr.ifr_flags |= IFF_UP;
		else
			ifr.ifr_flags &= ~IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr))
			ret = -errno;
	}
	close(fd);
	return ret;
}

/*
 * Into a network namespace of our own, its loopback up: 0, or a negative
 * errno (-EPERM without CAP_SYS_ADMIN: the caller skips).
 */
static inline int netns_private(void)
{
	if (unshare(CLONE_NEWNET))
		return -errno;
	return lo_set_up(true);
}

#endif /* VMIG_TEST_NET_H */

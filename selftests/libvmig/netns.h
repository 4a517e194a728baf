/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A network partition for the tests: the calling process moves into a
 * network namespace of its own (kselftest runs each test in a child), so
 * that taking its loopback down loses every packet of its connections,
 * with no FIN and no reset, and bringing it up again heals them.
 */
#ifndef VMIG_TEST_NETNS_H
#define VMIG_TEST_NETNS_H

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

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

#endif /* VMIG_TEST_NETNS_H */

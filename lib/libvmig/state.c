// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * VFIO migration states: names, and the arcs between them.
 *
 * The kernel's vfio core breaks a request for a far state into single arcs
 * (vfio_mig_get_next_state()); drivers only ever implement those arcs.
 * This file computes the same arcs in userspace, so that a caller can walk
 * a device one arc at a time and knows in advance which requests the kernel
 * will refuse.
 */
#include <errno.h>
#include <strings.h>

#include "internal.h"

static const char *const state_names[VMIG_STATE_NR] = {
	[VMIG_STATE_ERROR] = "ERROR",
	[VMIG_STATE_STOP] = "STOP",
	[VMIG_STATE_RUNNING] = "RUNNING",
	[VMIG_STATE_STOP_COPY] = "STOP_COPY",
	[VMIG_STATE_RESUMING] = "RESUMING",
	[VMIG_STATE_RUNNING_P2P] = "RUNNING_P2P",
	[VMIG_STATE_PRE_COPY] = "PRE_COPY",
	[VMIG_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P",
};

VMIG_EXPORT const char *vmig_state_name(enum vmig_dev_state state)
{
	if ((unsigned int)state >= VMIG_STATE_NR)
		return "INVALID";
	return state_names[state];
}

VMIG_EXPORT int vmig_state_parse(const char *name, enum vmig_dev_state *state)
{
	unsigned int i;

	if (!name || !state)
		return -EINVAL;
	for (i = 0; i < VMIG_STATE_NR; i++) {
		if (!strcasecmp(name, state_names[i])) {
			*state = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Short names for the step table below. */
enum {
	ERR = VMIG_STATE_ERROR,
	STOP = VMIG_STATE_STOP,
	RUN = VMIG_STATE_RUNNING,
	SCPY = VMIG_STATE_STOP_COPY,
	RES = VMIG_STATE_RESUMING,
	RP2P = VMIG_STATE_RUNNING_P2P,
	PRE = VMIG_STATE_PRE_COPY,
	PP2P = VMIG_STATE_PRE_COPY_P2P,
};

/*
 * step[cur][target]: the first state after cur on the way to target for a
 * device that supports every optional state (STOP_COPY, P2P and PRE_COPY).
 * ERR marks a request the kernel refuses.  The kernel's rules:
 *  - STOP_COPY and RESUMING are entered and left only through STOP;
 *  - with P2P, RUNNING and STOP are connected only through RUNNING_P2P, and
 *    PRE_COPY_P2P is the P2P twin of PRE_COPY, entered from RUNNING_P2P;
 *  - PRE_COPY is entered only from RUNNING (or PRE_COPY_P2P) and ends in
 *    STOP_COPY (through PRE_COPY_P2P) or back in RUNNING;
 *  - there is no way from STOP_COPY back into a PRE_COPY state;
 *  - nothing leads to or out of ERROR.
 * States the device lacks are skipped over in vmig_state_next().
 */
static const unsigned char step[VMIG_STATE_NR][VMIG_STATE_NR] = {
	/*          ERR  STOP  RUN   SCPY  RES   RP2P  PRE   PP2P <- target */
	[ERR]  = { ERR, ERR,  ERR,  ERR,  ERR,  ERR,  ERR,  ERR  },
	[STOP] = { ERR, STOP, RP2P, SCPY, RES,  RP2P, RP2P, RP2P },
	[RUN]  = { ERR, RP2P, RUN,  RP2P, RP2P, RP2P, PRE,  RP2P },
	[SCPY] = { ERR, STOP, STOP, SCPY, STOP, STOP, ERR,  ERR  },
	[RES]  = { ERR, STOP, STOP, STOP, RES,  STOP, STOP, STOP },
	[RP2P] = { ERR, STOP, RUN,  STOP, STOP, RP2P, RUN,  PP2P },
	[PRE]  = { ERR, RUN,  RUN,  PP2P, RUN,  RUN,  PRE,  PP2P },
	[PP2P] = { ERR, RP2P, RP2P, SCPY, RP2P, RP2P, PRE,  PP2P },
};

/* The migration flags a device needs to have a state; ERROR has none. */
static const uint32_t state_needs[VMIG_STATE_NR] = {
	[STOP] = VMIG_MIG_STOP_COPY,
	[RUN] = VMIG_MIG_STOP_COPY,
	[SCPY] = VMIG_MIG_STOP_COPY,
	[RES] = VMIG_MIG_STOP_COPY,
	[RP2P] = VMIG_MIG_STOP_COPY | VMIG_MIG_P2P,
	[PRE] = VMIG_MIG_STOP_COPY | VMIG_MIG_PRE_COPY,
	[PP2P] = VMIG_MIG_STOP_COPY | VMIG_MIG_P2P | VMIG_MIG_PRE_COPY,
};

static bool state_supported(uint32_t mig_flags, unsigned int state)
{
	if (state == ERR || state >= VMIG_STATE_NR)
		return false;
	return (mig_flags & state_needs[state]) == state_needs[state];
}

VMIG_EXPORT int vmig_state_next(uint32_t mig_flags, enum vmig_dev_state cur,
				enum vmig_dev_state target,
				enum vmig_dev_state *next)
{
	unsigned int n, hops;

	if (!next || !state_supported(mig_flags, cur) ||
	    !state_supported(mig_flags, target))
		return -EINVAL;

	/*
	 * Skip over states the device does not have: take the step the full
	 * table would take from there, as if the device had passed through.
	 */
	n = step[cur][target];
	for (hops = 0; n != ERR && !state_supported(mig_flags, n); hops++) {
		if (hops >= VMIG_STATE_NR)
			return -EINVAL;
		n = step[n][target];
	}
	if (n == ERR)
		return -EINVAL;

	*next = n;
	return 0;
}

VMIG_EXPORT int vmig_state_path(uint32_t mig_flags, enum vmig_dev_state cur,
				enum vmig_dev_state target,
				enum vmig_dev_state *path, size_t path_len)
{
	enum vmig_dev_state s = cur, next;
	size_t n = 0;
	int ret;

	/* Validates both ends even when cur == target. */
	ret = vmig_state_next(mig_flags, cur, target, &next);
	if (ret)
		return ret;

	while (s != target) {
		ret = vmig_state_next(mig_flags, s, target, &next);
		if (ret)
			return ret;
		/* A valid path visits every state at most once. */
		if (n >= VMIG_STATE_NR)
			return -ELOOP;
		if (n >= path_len || !path)
			return -ENOSPC;
		path[n++] = next;
		s = next;
	}
	return (int)n;
}

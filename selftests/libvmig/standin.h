/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stand-in devices for host tests of migration sessions: no VFIO, the
 * "device state" is a buffer, and the data fds are memfds (or a pipe, to
 * watch the destination's writes as they happen).
 *
 * Source:      PRE_COPY opens a memfd holding data[0, precopy_size); the
 *              move to STOP_COPY appends the rest, so the library reads
 *              the whole state through one fd, as from a VFIO device.
 *              With standin_ops_precopy_info, the device also reports
 *              PRECOPY_INFO: the first initial_size bytes are its initial
 *              data, the rest of the PRE_COPY data is "dirty" data.
 * Destination: RESUMING opens an empty memfd; RESUMING -> STOP copies what
 *              was written into loaded[] (and may reject it).  Or a pipe
 *              that a thread reads, as slowly as the test asks.
 */
#ifndef STANDIN_H
#define STANDIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmig.h"

struct standin {
	char name[32];
	uint32_t mig_flags;
	enum vmig_dev_state state;
	pthread_mutex_t lock;
	unsigned int arcs;		/* state changes made */
	int fail_to;			/* fail moving to this state, or -1 */
	int fail_err;
	int resets;
	bool checked_arcs_ok;		/* every arc was a legal one */
	/*
	 * Called before each arc, with the device's lock held (it must not
	 * call standin_*() on this device): tests watch state changes.
	 */
	void (*on_state)(struct standin *d, enum vmig_dev_state from,
			 enum vmig_dev_state to);
	void *on_state_arg;

	/* source */
	uint8_t *data;
	size_t size, precopy_size;
	size_t initial_size;		/* standin_ops_precopy_info: initial
					 * data (default precopy_size) */
	bool never_clean;		/* ... and always reports dirty data */
	int prefill_fd;			/* benchmarks: a memfd with the state */

	/* destination */
	int own_fd;			/* our end of the data fd, or -1 */
	/*
	 * RESUMING fd is a pipe's write end, read by a thread (at most
	 * pipe_rate bytes/s if set) that calls trigger() once past
	 * trigger_bytes.  RESUMING -> STOP waits for the thread to have
	 * read everything written.
	 */
	bool use_pipe;
	uint64_t pipe_rate;		/* bytes/s, 0: as fast as it can */
	int pipe_size;			/* the pipe's capacity */
	pthread_t pipe_thread;
	bool pipe_started, pipe_stop;
	uint64_t piped;			/* bytes the pipe thread read */
	size_t loaded_cap;
	uint64_t trigger_bytes;		/* call trigger() once past this */
	void (*trigger)(struct standin *d);
	void *trigger_arg;
	uint8_t *loaded;
	size_t loaded_size;
	bool reject_load;		/* RESUMING -> STOP fails with -EINVAL */
	bool sink;			/* RESUMING fd is /dev/null */
};

extern const struct vmig_device_ops standin_ops;
/*
 * The same, with precopy_info (initial_size bytes of initial data) and
 * stop_copy_size (the bytes only STOP_COPY gives).
 */
extern const struct vmig_device_ops standin_ops_precopy_info;

/* A source device of size bytes of seeded pseudo-random (or compressible)
 * data, precopy_size of them offered in PRE_COPY. */
void standin_init_source(struct standin *d, const char *name, size_t size,
			 size_t precopy_size, uint32_t seed, bool compressible);
void standin_init_dest(struct standin *d, const char *name);
/*
 * Benchmarks: a source whose state (size bytes, not kept in data[]) is in
 * a memfd filled now, so that STOP -> STOP_COPY costs nothing; precopy is
 * not offered.  A destination sink writes to /dev/null.
 */
int standin_init_source_memfd(struct standin *d, const char *name,
			      size_t size, uint32_t seed);
void standin_init_sink(struct standin *d, const char *name);
void standin_release(struct standin *d);

/* Bytes written into a destination device's data fd so far. */
uint64_t standin_received(struct standin *d);
enum vmig_dev_state standin_state(struct standin *d);

#define STANDIN_FLAGS	(VMIG_MIG_STOP_COPY | VMIG_MIG_P2P | VMIG_MIG_PRE_COPY)

#endif /* STANDIN_H */

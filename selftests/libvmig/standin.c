// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Stand-in devices for host tests of migration sessions (see standin.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "standin.h"

static int write_full(int fd, const uint8_t *p, size_t len, off_t off)
{
	ssize_t n;

	while (len) {
		n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Sleep until t (CLOCK_MONOTONIC, ns). */
static void sleep_until(uint64_t t)
{
	struct timespec ts = {
		.tv_sec = t / 1000000000ULL,
		.tv_nsec = t % 1000000000ULL,
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

/*
 * Reads the pipe until EOF, or until pipe_stop is set and nothing is left
 * to read (RESUMING -> STOP: every write into the pipe is done by then).
 */
static void *pipe_reader(void *arg)
{
	struct standin *d = arg;
	struct pollfd pfd = { .fd = d->own_fd, .events = POLLIN };
	uint64_t t0 = mono_ns(), rate = d->pipe_rate;
	uint8_t buf[65536];
	size_t off = 0;
	ssize_t n;
	bool fired = false, stop;
	int r;

	for (;;) {
		r = poll(&pfd, 1, 1);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0) {
			pthread_mutex_lock(&d->lock);
			stop = d->pipe_stop;
			pthread_mutex_unlock(&d->lock);
			if (stop)
				break;
			continue;
		}
		n = read(d->own_fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		pthread_mutex_lock(&d->lock);
		if (off + n > d->loaded_cap) {
			d->loaded_cap = (off + n) * 2;
			d->loaded = realloc(d->loaded, d->loaded_cap);
		}
		memcpy(d->loaded + off, buf, n);
		off += n;
		d->loaded_size = off;
		d->piped = off;
		pthread_mutex_unlock(&d->lock);
		if (!fired && d->trigger && (uint64_t)off >= d->trigger_bytes) {
			fired = true;
			d->trigger(d);
		}
		if (rate)
			sleep_until(t0 + off * 1000000000ULL / rate);
	}
	return NULL;
}

static int open_memfd(const char *name)
{
	return memfd_create(name, MFD_CLOEXEC);
}

/* One arc; called with the lock held. */
static int arc(struct standin *d, enum vmig_dev_state from,
	       enum vmig_dev_state to, int *data_fd)
{
	int fd, p[2];

	if (d->on_state)
		d->on_state(d, from, to);
	if ((int)to == d->fail_to)
		return d->fail_err;

	if (from == VMIG_STATE_STOP && to == VMIG_STATE_STOP_COPY &&
	    d->prefill_fd >= 0) {
		char path[64];

		/* A description of its own: the offset starts at 0. */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", d->prefill_fd);
		*data_fd = open(path, O_RDONLY | O_CLOEXEC);
		return *data_fd < 0 ? -errno : 0;
	}
	if (d->sink && to == VMIG_STATE_RESUMING) {
		*data_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		return *data_fd < 0 ? -errno : 0;
	}
	if (d->sink && from == VMIG_STATE_RESUMING)
		return 0;

	if ((from == VMIG_STATE_RUNNING && to == VMIG_STATE_PRE_COPY) ||
	    (from == VMIG_STATE_RUNNING_P2P && to == VMIG_STATE_PRE_COPY_P2P) ||
	    (from == VMIG_STATE_STOP && to == VMIG_STATE_STOP_COPY)) {
		size_t n = to == VMIG_STATE_STOP_COPY ? d->size :
						      d->precopy_size;

		fd = open_memfd(d->name);
		if (fd < 0 || write_full(fd, d->data, n, 0) ||
		    lseek(fd, 0, SEEK_SET))
			return -EIO;
		*data_fd = dup(fd);
		d->own_fd = fd;
	} else if ((from == VMIG_STATE_PRE_COPY_P2P ||
		    from == VMIG_STATE_PRE_COPY) && to == VMIG_STATE_STOP_COPY) {
		if (write_full(d->own_fd, d->data + d->precopy_size,
			       d->size - d->precopy_size, d->precopy_size))
			return -EIO;
	} else if (to == VMIG_STATE_RESUMING) {
		if (d->use_pipe) {
			if (pipe2(p, O_CLOEXEC))
				return -errno;
			d->own_fd = p[0];
			*data_fd = p[1];
			d->pipe_size = fcntl(p[0], F_GETPIPE_SZ);
			free(d->loaded);
			d->loaded = NULL;
			d->loaded_size = 0;
			d->loaded_cap = 0;
			d->piped = 0;
			d->pipe_stop = false;
			pthread_create(&d->pipe_thread, NULL, pipe_reader, d);
			d->pipe_started = true;
		} else {
			fd = open_memfd(d->name);
			if (fd < 0)
				return -EIO;
			*data_fd = dup(fd);
			d->own_fd = fd;
		}
	} else if (from == VMIG_STATE_RESUMING && to == VMIG_STATE_STOP) {
		if (d->use_pipe) {
			/* Everything is in the pipe: let the reader finish. */
			d->pipe_stop = true;
			pthread_mutex_unlock(&d->lock);
			pthread_join(d->pipe_thread, NULL);
			pthread_mutex_lock(&d->lock);
			d->pipe_started = false;
		} else {
			struct stat st;

			if (fstat(d->own_fd, &st))
				return -EIO;
			free(d->loaded);
			d->loaded = malloc(st.st_size + 1);
			d->loaded_size = st.st_size;
			if (pread(d->own_fd, d->loaded, st.st_size, 0) !=
			    st.st_size)
				return -EIO;
		}
		close(d->own_fd);
		d->own_fd = -1;
		if (d->reject_load)
			return -EINVAL;
	}

	/* Leaving the saving group or RESUMING ends the data session. */
	if ((to == VMIG_STATE_RUNNING || to == VMIG_STATE_STOP ||
	     to == VMIG_STATE_RUNNING_P2P) && d->own_fd >= 0 &&
	    !d->pipe_started) {
		close(d->own_fd);
		d->own_fd = -1;
	}
	return 0;
}

static int standin_set_state(void *opaque, enum vmig_dev_state target,
			     int *data_fd)
{
	struct standin *d = opaque;
	enum vmig_dev_state path[VMIG_STATE_NR];
	int n, i, ret = 0;

	*data_fd = -1;
	pthread_mutex_lock(&d->lock);
	n = vmig_state_path(d->mig_flags, d->state, target, path,
			    VMIG_STATE_NR);
	if (n < 0) {
		d->checked_arcs_ok = false;
		pthread_mutex_unlock(&d->lock);
		return n;
	}
	for (i = 0; i < n; i++) {
		ret = arc(d, d->state, path[i], data_fd);
		if (ret) {
			if (*data_fd >= 0)
				close(*data_fd);
			*data_fd = -1;
			break;
		}
		d->state = path[i];
		d->arcs++;
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static int standin_reset(void *opaque)
{
	struct standin *d = opaque;

	pthread_mutex_lock(&d->lock);
	if (d->pipe_started) {
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->pipe_thread, NULL);
		pthread_mutex_lock(&d->lock);
		d->pipe_started = false;
	}
	if (d->own_fd >= 0)
		close(d->own_fd);
	d->own_fd = -1;
	d->state = VMIG_STATE_RUNNING;
	d->resets++;
	free(d->loaded);
	d->loaded = NULL;
	d->loaded_size = 0;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

const struct vmig_device_ops standin_ops = {
	.set_state = standin_set_state,
	.reset = standin_reset,
};

/*
 * PRECOPY_INFO of a source in PRE_COPY: what is left of the first
 * initial_size bytes, and the rest of the PRE_COPY data not read yet.
 */
static int standin_precopy_info(void *opaque, int data_fd, uint64_t *initial,
				uint64_t *dirty)
{
	struct standin *d = opaque;
	size_t init = d->initial_size ? d->initial_size : d->precopy_size;
	off_t pos;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (d->state != VMIG_STATE_PRE_COPY &&
	    d->state != VMIG_STATE_PRE_COPY_P2P) {
		ret = -EINVAL;
		goto out;
	}
	pos = lseek(data_fd, 0, SEEK_CUR);
	if (pos < 0) {
		ret = -errno;
		goto out;
	}
	if ((size_t)pos > d->precopy_size)
		pos = d->precopy_size;
	if (init > d->precopy_size)
		init = d->precopy_size;
	*initial = (size_t)pos < init ? init - pos : 0;
	*dirty = d->precopy_size - pos - *initial;
	if (d->never_clean && !*dirty)
		*dirty = 1;	/* a device dirtying as fast as it is read */
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/* MIG_DATA_SIZE: at least the part only STOP_COPY gives. */
static int standin_stop_copy_size(void *opaque, uint64_t *bytes)
{
	struct standin *d = opaque;

	pthread_mutex_lock(&d->lock);
	*bytes = d->size - d->precopy_size;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

const struct vmig_device_ops standin_ops_precopy_info = {
	.set_state = standin_set_state,
	.precopy_info = standin_precopy_info,
	.reset = standin_reset,
	.stop_copy_size = standin_stop_copy_size,
};

static void init_common(struct standin *d, const char *name)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->mig_flags = STANDIN_FLAGS;
	d->state = VMIG_STATE_RUNNING;
	d->fail_to = -1;
	d->fail_err = -EIO;
	d->own_fd = -1;
	d->prefill_fd = -1;
	d->checked_arcs_ok = true;
	pthread_mutex_init(&d->lock, NULL);
}

int standin_init_source_memfd(struct standin *d, const char *name,
			      size_t size, uint32_t seed)
{
	size_t block = 1 << 20, off;
	struct standin tmp;
	int ret = 0;

	/* One MiB of pseudo-random data, tiled. */
	standin_init_source(&tmp, name, block, 0, seed, false);
	init_common(d, name);
	d->mig_flags = VMIG_MIG_STOP_COPY | VMIG_MIG_P2P;
	d->size = size;
	d->prefill_fd = memfd_create(name, MFD_CLOEXEC);
	if (d->prefill_fd < 0)
		ret = -errno;
	for (off = 0; !ret && off < size; off += block)
		ret = write_full(d->prefill_fd, tmp.data,
				 size - off < block ? size - off : block, off);
	standin_release(&tmp);
	return ret;
}

void standin_init_sink(struct standin *d, const char *name)
{
	init_common(d, name);
	d->mig_flags = VMIG_MIG_STOP_COPY | VMIG_MIG_P2P;
	d->sink = true;
}

void standin_init_source(struct standin *d, const char *name, size_t size,
			 size_t precopy_size, uint32_t seed, bool compressible)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i;

	init_common(d, name);
	d->size = size;
	d->precopy_size = precopy_size;
	d->data = malloc(size);
	for (i = 0; i < size; i++) {
		if (compressible) {
			d->data[i] = (i / 4096 + seed) & 0xff;
			continue;
		}
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		d->data[i] = x >> 56;
	}
}

void standin_init_dest(struct standin *d, const char *name)
{
	init_common(d, name);
}

void standin_release(struct standin *d)
{
	if (d->pipe_started)
		pthread_join(d->pipe_thread, NULL);
	if (d->own_fd >= 0)
		close(d->own_fd);
	if (d->prefill_fd >= 0)
		close(d->prefill_fd);
	free(d->data);
	free(d->loaded);
	pthread_mutex_destroy(&d->lock);
}

uint64_t standin_received(struct standin *d)
{
	struct stat st;
	uint64_t n = 0;

	pthread_mutex_lock(&d->lock);
	if (d->use_pipe)
		n = d->piped;
	else if (d->own_fd >= 0 && !fstat(d->own_fd, &st))
		n = st.st_size;
	else
		n = d->loaded_size;
	pthread_mutex_unlock(&d->lock);
	return n;
}

enum vmig_dev_state standin_state(struct standin *d)
{
	enum vmig_dev_state st;

	pthread_mutex_lock(&d->lock);
	st = d->state;
	pthread_mutex_unlock(&d->lock);
	return st;
}

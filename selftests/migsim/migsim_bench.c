// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim benchmark (not a test: it prints figures and judges nothing
 * but its own errors).  Run it in the test VM:
 *
 *	make vm-test T=migsim_bench [ARGS='SIZE_MIB']
 *
 * 1. Data fd read throughput in STOP_COPY against a plain memcpy of the
 *    same bytes into the same 8 MiB buffer, in the same run.
 * 2. Cost of MIG_DATA_SIZE and VFIO_MIG_GET_PRECOPY_INFO at a small and a
 *    large state: they must not walk the chunks.
 * 3. Precopy rounds until less than a chunk is pending, at three dirty
 *    rates (a round reads what PRECOPY_INFO said was pending).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define min(a, b) ((a) < (b) ? (a) : (b))

#include "migsim_util.h"

#define BUF_SIZE	(8 * MiB)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	printf("not ok 1 migsim_bench: %s: %s\n", what, strerror(-err));
	exit(1);
}

/* Read a STOP_COPY stream of the instance into buf; returns bytes. */
static uint64_t read_stop_copy(struct migsim_inst *in, char *buf,
			       double *secs)
{
	uint64_t total = 0;
	double t0;
	ssize_t n;
	int fd = -1, ret;

	ret = vmig_vfio_set_state(in->dev, VMIG_STATE_STOP_COPY, &fd);
	if (ret)
		die("STOP_COPY", ret);
	t0 = now_s();
	while ((n = read(fd, buf, BUF_SIZE)) > 0)
		total += n;
	*secs = now_s() - t0;
	if (n < 0)
		die("read", -errno);
	close(fd);
	ret = vmig_vfio_set_state(in->dev, VMIG_STATE_RUNNING, NULL);
	if (ret)
		die("RUNNING", ret);
	return total;
}

static void bench_read(uint64_t size)
{
	struct migsim_inst in = { .fd = -1 };
	double t_read = 1e9, t_copy = 1e9, t;
	char *buf, *src;
	uint64_t bytes = 0, off;
	int rep, ret;

	ret = migsim_inst_create_open(&in, size);
	if (ret)
		die("create", ret);
	buf = malloc(BUF_SIZE);
	src = malloc(size);
	if (!buf || !src)
		die("malloc", -ENOMEM);
	/* touch everything first: first-touch faults are not what we time */
	memset(buf, 1, BUF_SIZE);
	memset(src, 2, size);

	for (rep = 0; rep < 3; rep++) {
		bytes = read_stop_copy(&in, buf, &t);
		if (t < t_read)
			t_read = t;
		t = now_s();
		for (off = 0; off < size; off += BUF_SIZE)
			memcpy(buf, src + off, BUF_SIZE);
		t = now_s() - t;
		if (t < t_copy)
			t_copy = t;
	}
	printf("# read %llu MiB state: data fd %.0f MB/s (%llu stream bytes in %.3f s), memcpy %.0f MB/s, ratio %.2f\n",
	       (unsigned long long)(size / MiB), bytes / t_read / 1e6,
	       (unsigned long long)bytes, t_read, size / t_copy / 1e6,
	       (bytes / t_read) / (size / t_copy));
	free(src);
	free(buf);
	migsim_inst_destroy(&in);
}

static void bench_queries(uint64_t size)
{
	struct migsim_inst in = { .fd = -1 };
	uint64_t v, init, dirty;
	const int n = 20000;
	double t_size, t_info;
	uint32_t flags;
	int i, fd = -1, ret;

	ret = migsim_inst_create_open(&in, size);
	if (ret)
		die("create", ret);
	ret = vmig_vfio_set_state(in.dev, VMIG_STATE_PRE_COPY, &fd);
	if (ret)
		die("PRE_COPY", ret);
	t_size = now_s();
	for (i = 0; i < n; i++)
		if (vmig_vfio_stop_copy_size(in.dev, &v))
			die("MIG_DATA_SIZE", -errno);
	t_size = (now_s() - t_size) / n;
	t_info = now_s();
	for (i = 0; i < n; i++)
		if (vmig_precopy_info(fd, &init, &dirty, &flags))
			die("PRECOPY_INFO", -errno);
	t_info = (now_s() - t_info) / n;
	printf("# %llu KiB state: MIG_DATA_SIZE %.2f us, PRECOPY_INFO %.2f us per call\n",
	       (unsigned long long)(size / KiB), t_size * 1e6, t_info * 1e6);
	close(fd);
	migsim_inst_destroy(&in);
}

/*
 * Precopy rounds as a VMM runs them: each round reads what PRECOPY_INFO
 * said was pending when it began; converged when what is pending falls
 * under one chunk record.
 */
static void bench_rounds(const char *rate)
{
	struct migsim_inst in = { .fd = -1 };
	uint64_t init = 0, dirty = 0, pending, got, dirtied = 0;
	static char buf[BUF_SIZE];
	uint64_t dirtied0 = 0;
	double t0;
	uint32_t flags;
	int fd = -1, round, ret;
	ssize_t n;

	ret = migsim_inst_create_open(&in, 64 * MiB);
	if (!ret)
		ret = migsim_attr_write(in.uuid, "dirty_rate", rate);
	if (!ret)
		ret = vmig_vfio_set_state(in.dev, VMIG_STATE_PRE_COPY, &fd);
	if (ret)
		die("precopy setup", ret);
	t0 = now_s();
	migsim_attr_u64(in.uuid, "bytes_dirtied", &dirtied0);
	for (round = 1; round <= 30; round++) {
		if (vmig_precopy_info(fd, &init, &dirty, &flags))
			die("PRECOPY_INFO", -errno);
		pending = init + dirty;
		if (pending <= MIGSIM_DEFAULT_CHUNK_SIZE + 32)
			break;
		for (got = 0; got < pending; got += n) {
			n = read(fd, buf, min(sizeof(buf), pending - got));
			if (n <= 0)
				break;
		}
	}
	migsim_attr_u64(in.uuid, "bytes_dirtied", &dirtied);
	t0 = now_s() - t0;
	printf("# 64 MiB state, dirty rate %s/s: the device dirtied %.0f MB/s over %.2f s of precopy\n",
	       rate, (dirtied - dirtied0) / t0 / 1e6, t0);
	if (round <= 30)
		printf("# 64 MiB state, dirty rate %s/s: converged after %d rounds (then %llu bytes pending)\n",
		       rate, round - 1, (unsigned long long)pending);
	else
		printf("# 64 MiB state, dirty rate %s/s: not converged after 30 rounds (%llu bytes pending)\n",
		       rate, (unsigned long long)pending);
	migsim_attr_write(in.uuid, "dirty_rate", "0");
	close(fd);
	migsim_inst_destroy(&in);
}

int main(int argc, char **argv)
{
	uint64_t size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 256) * MiB;

	printf("TAP version 13\n1..1\n");
	bench_read(size);
	bench_queries(4 * KiB);
	bench_queries(size);
	bench_rounds("8M");
	bench_rounds("64M");
	bench_rounds("1G");
	printf("ok 1 migsim_bench\n");
	return 0;
}

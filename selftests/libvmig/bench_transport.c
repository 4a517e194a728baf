// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * bench_transport: device-state throughput of a libvmig session over 1 and
 * 4 channels, next to raw loopback TCP over 1 and 4 connections measured
 * in the same run, and the peak reassembly memory.  Not a test: it prints
 * figures.  Built by "make", never run by "make check".
 *
 * Devices are stand-ins (standin.c): each source device's state is a memfd
 * read through its own data fd (one copy, like reading a VFIO data fd);
 * each destination device writes to /dev/null (no copy: the destination's
 * device cost is left out).  The raw baseline sends the same number of
 * bytes from one buffer with send() and receives them with recv().
 *
 *	bench_transport [-s MiB per device] [-d devices] [-c chunk KiB]
 *	                [-m mem limit MiB] [-r repetitions] [-z zstd level]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "standin.h"
#include "vmig.h"

#define MAX_DEV		16
#define MAX_CONN	4
#define RAW_BUF		(1U << 20)

static struct {
	unsigned int ndev;
	size_t dev_size;
	uint32_t chunk;
	uint64_t mem_limit;
	unsigned int reps;
	int zstd;
} opt = {
	.ndev = 4,
	.dev_size = 256ULL << 20,
	.chunk = 1U << 20,
	.mem_limit = 64ULL << 20,
	.reps = 3,
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int listen_any(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (void *)addr, sizeof(*addr)) ||
	    listen(fd, 16) || getsockname(fd, (void *)addr, &len)) {
		perror("listen");
		exit(1);
	}
	return fd;
}

/* ------------------------------------------------------------- raw TCP */

struct raw_conn {
	int fd;
	uint64_t bytes;
	pthread_t thread;
};

static void *raw_send(void *arg)
{
	struct raw_conn *c = arg;
	uint8_t *buf = malloc(RAW_BUF);
	uint64_t left = c->bytes;
	ssize_t n;

	memset(buf, 0x5a, RAW_BUF);
	while (left) {
		n = send(c->fd, buf, left < RAW_BUF ? left : RAW_BUF,
			 MSG_NOSIGNAL);
		if (n <= 0) {
			perror("send");
			exit(1);
		}
		left -= n;
	}
	free(buf);
	return NULL;
}

static void *raw_recv(void *arg)
{
	struct raw_conn *c = arg;
	uint8_t *buf = malloc(RAW_BUF);
	uint64_t left = c->bytes;
	ssize_t n;

	while (left) {
		n = recv(c->fd, buf, left < RAW_BUF ? left : RAW_BUF, 0);
		if (n <= 0) {
			perror("recv");
			exit(1);
		}
		left -= n;
	}
	free(buf);
	return NULL;
}

/* Bytes per second over nconn connections. */
static double raw_tcp(unsigned int nconn, uint64_t total)
{
	struct raw_conn tx[MAX_CONN], rx[MAX_CONN];
	struct sockaddr_in addr;
	int lfd = listen_any(&addr);
	unsigned int i;
	double t0, t1;

	for (i = 0; i < nconn; i++) {
		tx[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(tx[i].fd, (void *)&addr, sizeof(addr))) {
			perror("connect");
			exit(1);
		}
		rx[i].fd = accept(lfd, NULL, NULL);
		tx[i].bytes = rx[i].bytes = total / nconn;
	}
	t0 = now();
	for (i = 0; i < nconn; i++) {
		pthread_create(&rx[i].thread, NULL, raw_recv, &rx[i]);
		pthread_create(&tx[i].thread, NULL, raw_send, &tx[i]);
	}
	for (i = 0; i < nconn; i++) {
		pthread_join(tx[i].thread, NULL);
		pthread_join(rx[i].thread, NULL);
	}
	t1 = now();
	for (i = 0; i < nconn; i++) {
		close(tx[i].fd);
		close(rx[i].fd);
	}
	close(lfd);
	return (total / nconn) * nconn / (t1 - t0);
}

/* ------------------------------------------------------------- session */

struct bench_dest {
	struct vmig_session *s;
	struct standin devs[MAX_DEV];
	int lfd;
	int ret;
	struct vmig_session_stats st;
};

static void config(struct vmig_session_config *cfg, unsigned int nchan)
{
	vmig_session_config_init(cfg);
	memcpy(cfg->session_id, "bench-session-01", VMIG_SESSION_ID_LEN);
	cfg->secret = "benchmark secret, 32 bytes long.";
	cfg->secret_len = 32;
	cfg->channels = nchan;
	cfg->chunk_size = opt.chunk;
	cfg->mem_limit = opt.mem_limit;
	cfg->zstd_level = opt.zstd;
}

static void *dest_main(void *arg)
{
	struct bench_dest *d = arg;

	d->ret = vmig_session_accept(d->s, d->lfd);
	if (!d->ret)
		d->ret = vmig_session_run_destination(d->s);
	vmig_session_get_stats(d->s, &d->st);
	return NULL;
}

struct session_result {
	double bps;		/* device bytes / run_source time */
	double stop_bps;	/* device bytes / downtime */
	uint64_t peak_dst, peak_src;
};

static int session(unsigned int nchan, struct standin *src,
		   struct session_result *res)
{
	struct vmig_session_config cfg;
	struct vmig_session_stats st;
	struct vmig_session_error e;
	struct sockaddr_in addr;
	struct vmig_session *s;
	static struct bench_dest d;
	unsigned int i;
	pthread_t t;
	int ret;

	memset(&d, 0, sizeof(d));
	d.lfd = listen_any(&addr);
	config(&cfg, nchan);
	if (vmig_session_create(VMIG_ROLE_DESTINATION, &cfg, &d.s) ||
	    vmig_session_create(VMIG_ROLE_SOURCE, &cfg, &s))
		return -1;
	for (i = 0; i < opt.ndev; i++) {
		standin_init_sink(&d.devs[i], src[i].name);
		vmig_session_add_device(d.s, src[i].name, d.devs[i].mig_flags,
					&standin_ops, &d.devs[i]);
		vmig_session_add_device(s, src[i].name, src[i].mig_flags,
					&standin_ops, &src[i]);
		/* The source device is RUNNING again for each run. */
		src[i].state = VMIG_STATE_RUNNING;
	}
	pthread_create(&t, NULL, dest_main, &d);
	ret = vmig_session_connect(s, (void *)&addr, sizeof(addr));
	if (!ret)
		ret = vmig_session_run_source(s);
	if (ret) {
		vmig_session_get_error(s, &e);
		fprintf(stderr, "source: %s\n", e.msg);
		vmig_session_abort(d.s);
	}
	pthread_join(t, NULL);
	if (!ret && d.ret) {
		vmig_session_get_error(d.s, &e);
		fprintf(stderr, "destination: %s\n", e.msg);
		ret = d.ret;
	}
	vmig_session_get_stats(s, &st);
	res->bps = st.device_bytes / (st.total_ns / 1e9);
	res->stop_bps = st.device_bytes / (st.downtime_ns / 1e9);
	res->peak_src = st.peak_mem;
	res->peak_dst = d.st.peak_mem;
	vmig_session_destroy(s);
	vmig_session_destroy(d.s);
	for (i = 0; i < opt.ndev; i++)
		standin_release(&d.devs[i]);
	close(d.lfd);
	return ret;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	static const unsigned int conns[2] = { 1, 4 };
	struct standin src[MAX_DEV];
	struct session_result r;
	double raw[2][32], dev[2][32], stop[2][32];
	uint64_t peak_dst[2] = { 0 }, peak_src[2] = { 0 };
	uint64_t total;
	unsigned int i, k, rep;
	char name[16];
	int c;

	while ((c = getopt(argc, argv, "s:d:c:m:r:z:h")) != -1) {
		switch (c) {
		case 's':
			opt.dev_size = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'd':
			opt.ndev = strtoul(optarg, NULL, 0);
			break;
		case 'c':
			opt.chunk = strtoul(optarg, NULL, 0) << 10;
			break;
		case 'm':
			opt.mem_limit = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'r':
			opt.reps = strtoul(optarg, NULL, 0);
			break;
		case 'z':
			opt.zstd = atoi(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: %s [-s MiB/device] [-d devices] [-c chunk KiB] [-m mem MiB] [-r reps] [-z zstd level]\n",
				argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	if (!opt.ndev || opt.ndev > MAX_DEV || !opt.reps || opt.reps > 32 ||
	    !opt.dev_size) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	total = opt.dev_size * opt.ndev;
	for (i = 0; i < opt.ndev; i++) {
		snprintf(name, sizeof(name), "dev%u", i);
		if (standin_init_source_memfd(&src[i], name, opt.dev_size,
					      i + 1)) {
			perror("memfd");
			return 1;
		}
	}

	printf("# bench_transport: %u devices x %zu MiB, chunk %u KiB, mem limit %llu MiB, zstd %d, %u runs (median)\n",
	       opt.ndev, opt.dev_size >> 20, opt.chunk >> 10,
	       (unsigned long long)(opt.mem_limit >> 20), opt.zstd, opt.reps);
	/* Interleaved, so that drift on a shared machine hits both alike. */
	for (rep = 0; rep < opt.reps; rep++) {
		for (k = 0; k < 2; k++) {
			raw[k][rep] = raw_tcp(conns[k], total);
			if (session(conns[k], src, &r)) {
				fprintf(stderr, "session failed\n");
				return 1;
			}
			dev[k][rep] = r.bps;
			stop[k][rep] = r.stop_bps;
			if (r.peak_dst > peak_dst[k])
				peak_dst[k] = r.peak_dst;
			if (r.peak_src > peak_src[k])
				peak_src[k] = r.peak_src;
		}
	}
	printf("%-28s %10s %10s %8s %22s\n", "", "GB/s", "stop GB/s",
	       "ratio", "peak reassembly MiB");
	for (k = 0; k < 2; k++) {
		double rw = median(raw[k], opt.reps);
		double dv = median(dev[k], opt.reps);
		double sp = median(stop[k], opt.reps);

		printf("raw TCP, %u connection%s %*s %10.2f\n", conns[k],
		       conns[k] > 1 ? "s" : " ", 10, "", rw / 1e9);
		printf("device state, %u channel%s %*s %10.2f %10.2f %8.2f %13.1f of %llu\n",
		       conns[k], conns[k] > 1 ? "s" : " ", 5, "", dv / 1e9,
		       sp / 1e9, dv / rw, peak_dst[k] / 1048576.0,
		       (unsigned long long)(opt.mem_limit >> 20));
	}
	printf("# GB/s: device bytes / whole run_source; stop GB/s: / stop-copy time (devices stopped -> loaded); ratio: GB/s / raw TCP\n");
	printf("# peak source send queue: %.1f MiB (1 channel), %.1f MiB (4 channels)\n",
	       peak_src[0] / 1048576.0, peak_src[1] / 1048576.0);
	for (i = 0; i < opt.ndev; i++)
		standin_release(&src[i]);
	return 0;
}

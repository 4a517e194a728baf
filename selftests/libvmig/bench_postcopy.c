// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Benchmark: postcopy page-fault latency over loopback TCP, against raw
 * userfaultfd service measured in the same run.
 *
 * A thread touches pages of the destination's RAM in random order and
 * times each touch that faults (mincore() says the page is absent before
 * the touch).  Cases:
 *
 *   raw      one thread faults, another serves it with UFFDIO_COPY from
 *            local memory: the floor any postcopy pays;
 *   idle     postcopy with the push limited to 1 MiB/s: a fault's cost is
 *            the request, the answer and the placement;
 *   pushing  postcopy with the push at full speed on 2 channels: requests
 *            compete with the push for the CPUs and the loopback.
 *
 * Prints p50, p90, p99 and max in microseconds per case.
 *
 * Usage: bench_postcopy [MIB [FAULTS]]  (defaults 512 and 4000).
 * Not a test: it prints figures only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vmig.h"

#define PAGE	4096ULL

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill_random(void *p, uint64_t len, uint64_t seed)
{
	uint64_t *w = p, i;

	for (i = 0; i < len / 8; i++)
		w[i] = rnd(&seed) | 1;
}

/* Touch up to n absent pages in random order; their latencies in lat[]. */
static unsigned int touch(volatile uint8_t *mem, uint64_t pages,
			  unsigned int n, uint64_t *lat)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL, g, t0;
	unsigned int got = 0, tries = 0;
	unsigned char vec;

	while (got < n && tries < 20 * n) {
		tries++;
		g = rnd(&seed) % pages;
		if (mincore((void *)(mem + g * PAGE), PAGE, &vec) || vec & 1)
			continue;
		t0 = now_ns();
		(void)mem[g * PAGE + 8];
		lat[got++] = now_ns() - t0;
	}
	return got;
}

static void report(const char *name, uint64_t *lat, unsigned int n)
{
	if (!n) {
		printf("%-8s  no faults measured\n", name);
		return;
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("%-8s  %6u faults  p50 %7.1f us  p90 %7.1f us  p99 %7.1f us  max %8.1f us\n",
	       name, n, lat[n / 2] / 1e3, lat[n * 9 / 10] / 1e3,
	       lat[n * 99 / 100] / 1e3, lat[n - 1] / 1e3);
}

/* ---------------------------------------------------------------- raw */

struct raw {
	int uffd;
	uint8_t *src;
	uint8_t *mem;
	volatile int stop;
};

static void *raw_server(void *arg)
{
	struct raw *r = arg;
	struct pollfd pfd = { .fd = r->uffd, .events = POLLIN };
	struct uffd_msg msg;

	while (!r->stop) {
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if (read(r->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t off = (msg.arg.pagefault.address & ~(PAGE - 1)) -
			       (uintptr_t)r->mem;
		struct uffdio_copy c = {
			.dst = (uintptr_t)r->mem + off,
			.src = (uintptr_t)r->src + off,
			.len = PAGE,
		};

		ioctl(r->uffd, UFFDIO_COPY, &c);
	}
	return NULL;
}

static int bench_raw(uint64_t size, unsigned int n, uint64_t *lat)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	struct raw r = { 0 };
	pthread_t th;
	unsigned int got;

	r.uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (r.uffd < 0 || ioctl(r.uffd, UFFDIO_API, &api))
		return -errno;
	r.src = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r.mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r.src == MAP_FAILED || r.mem == MAP_FAILED)
		return -ENOMEM;
	fill_random(r.src, size, 1);
	reg.range.start = (uintptr_t)r.mem;
	reg.range.len = size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(r.uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	pthread_create(&th, NULL, raw_server, &r);
	got = touch(r.mem, size / PAGE, n, lat);
	r.stop = 1;
	pthread_join(th, NULL);
	report("raw", lat, got);
	close(r.uffd);
	munmap(r.src, size);
	munmap(r.mem, size);
	return 0;
}

/* ----------------------------------------------------------- postcopy */

struct src_arg {
	struct vmig_postcopy_src *s;
	struct sockaddr_in sa;
	int ret;
};

static void *src_thread(void *p)
{
	struct src_arg *a = p;

	a->ret = vmig_ram_postcopy_src_run(a->s, (struct sockaddr *)&a->sa,
					   sizeof(a->sa));
	return NULL;
}

static int bench_postcopy(const char *name, uint64_t size, unsigned int n,
			  uint64_t *lat, uint64_t push_bw)
{
	static const char secret[] = "bench_postcopy secret 0123456789";
	struct vmig_ram_region r = { .fd = -1, .kvm_slot = -1 };
	struct vmig_postcopy_dest_stats ds;
	struct vmig_session_config scfg = { 0 };
	struct vmig_postcopy_config cfg;
	struct vmig_postcopy_dest *pd;
	struct vmig_ram_dest *dest;
	struct vmig_ram *ram;
	struct src_arg a = { 0 };
	socklen_t alen = sizeof(a.sa);
	void *src_mem, *dst_mem;
	unsigned int got;
	pthread_t th;
	int lfd, ret;

	memcpy(scfg.session_id, "bench-postcopy-1", VMIG_SESSION_ID_LEN);
	scfg.secret = secret;
	scfg.secret_len = sizeof(secret) - 1;
	src_mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst_mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (src_mem == MAP_FAILED || dst_mem == MAP_FAILED)
		return -ENOMEM;
	fill_random(src_mem, size, 2);
	r.size = size;
	r.host_addr = src_mem;
	ret = vmig_ram_new(&r, 1, NULL, &ram);
	if (ret)
		return ret;
	r.host_addr = dst_mem;
	ret = vmig_ram_dest_new(&r, 1, &dest);
	if (ret)
		return ret;
	vmig_postcopy_config_init(&cfg);
	cfg.max_bandwidth = push_bw;
	ret = vmig_ram_postcopy_src_new(ram, &scfg, &cfg, &a.s);
	if (!ret)
		ret = vmig_ram_postcopy_dest_new(dest, &scfg, &pd);
	if (ret)
		return ret;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sa.sin_family = AF_INET;
	a.sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a.sa, sizeof(a.sa)) ||
	    listen(lfd, 32) ||
	    getsockname(lfd, (struct sockaddr *)&a.sa, &alen))
		return -errno;
	pthread_create(&th, NULL, src_thread, &a);
	ret = vmig_ram_postcopy_dest_accept(pd, lfd);
	if (ret)
		return ret;
	got = touch(dst_mem, size / PAGE, n, lat);
	vmig_ram_postcopy_src_set_bandwidth(a.s, 0);	/* now finish */
	ret = vmig_ram_postcopy_dest_wait(pd);
	pthread_join(th, NULL);
	vmig_ram_postcopy_dest_get_stats(pd, &ds);
	report(name, lat, got);
	printf("          (%llu faults read, %llu requests, %llu placed, %llu duplicates, %llu eexist; wait %d, source %d)\n",
	       (unsigned long long)ds.faults,
	       (unsigned long long)ds.requests,
	       (unsigned long long)ds.placed,
	       (unsigned long long)ds.duplicates,
	       (unsigned long long)ds.eexist, ret, a.ret);
	if (!ret && memcmp(src_mem, dst_mem, size)) {
		fprintf(stderr, "%s: destination RAM differs\n", name);
		ret = -EIO;
	}
	vmig_ram_postcopy_dest_free(pd);
	vmig_ram_postcopy_src_free(a.s);
	vmig_ram_dest_free(dest);
	vmig_ram_free(ram);
	close(lfd);
	munmap(src_mem, size);
	munmap(dst_mem, size);
	return ret;
}

int main(int argc, char **argv)
{
	uint64_t size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 512) << 20;
	unsigned int n = argc > 2 ? strtoul(argv[2], NULL, 0) : 4000;
	uint64_t *lat = calloc(n, sizeof(*lat));
	int ret;

	if (!lat)
		return 1;
	printf("postcopy fault latency, %llu MiB of random data, loopback TCP\n",
	       (unsigned long long)(size >> 20));
	ret = bench_raw(size, n, lat);
	if (!ret)
		ret = bench_postcopy("idle", size, n, lat, 1 << 20);
	if (!ret)
		ret = bench_postcopy("pushing", size, n, lat, 0);
	free(lat);
	if (ret) {
		fprintf(stderr, "bench_postcopy: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Postcopy of a testvm guest into a second testvm over loopback TCP.
 *
 * The source guest runs and dirties pages during a short, bandwidth-limited
 * precopy (or none), then stops.  The destination guest takes over the
 * workload where the source left it and runs at once, faulting its pages
 * in through userfaultfd while the push, limited too, goes on.  At the end:
 *
 * - every page was placed exactly once: no UFFDIO_COPY found a page
 *   present (EEXIST), and the pages placed plus those precopy left in place
 *   add up to RAM;
 * - the destination's RAM equals the source's page by page, except the
 *   first 16 bytes (the stamp) of the pages the destination guest wrote,
 *   and exactly as many pages carry a destination stamp as the destination
 *   guest wrote: a page placed after its guest wrote it would have lost
 *   that write;
 * - with a network break in the middle (the source cut), the destination
 *   pauses, the source resumes from the destination's received bitmap, and
 *   the same holds.
 *
 * Also: RAM of another size is refused.  Skipped without /dev/kvm or
 * userfaultfd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testnet.h"
#include "test_scale.h"
#include "testvm.h"
#include "vmig.h"

#define NR_VCPUS	2
#define STAMP_LEN	16

static int ring_full(void *opaque, unsigned int vcpu)
{
	return vmig_ram_ring_full(opaque, vcpu);
}

static bool have_kvm_and_uffd(void)
{
	int fd = open("/dev/kvm", O_RDWR);

	if (fd < 0)
		return false;
	close(fd);
	fd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };

	nanosleep(&ts, NULL);
}

static void session_cfg(struct vmig_session_config *c)
{
	static const char secret[] = "postcopy test secret 0123456789";

	memset(c, 0, sizeof(*c));
	memcpy(c->session_id, "postcopy-test-01", VMIG_SESSION_ID_LEN);
	c->secret = secret;
	c->secret_len = sizeof(secret) - 1;
	c->timeout_ms = 10000;
}

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

FIXTURE(pc)
{
	struct testvm *src, *dst;
	struct vmig_ram *ram;
	struct vmig_ram_dest *dest;
	uint64_t size, ws;
};

FIXTURE_VARIANT(pc)
{
	unsigned int precopy_ms;	/* 0: pure postcopy */
	bool cut;			/* break the connection once */
};

FIXTURE_VARIANT_ADD(pc, after_precopy)
{
	.precopy_ms = 150,
};

FIXTURE_VARIANT_ADD(pc, pure)
{
	.precopy_ms = 0,
};

FIXTURE_VARIANT_ADD(pc, break_and_resume)
{
	.precopy_ms = 100, .cut = true,
};

FIXTURE_SETUP(pc)
{
	struct testvm_config cfg = {
		.ram_size = 64ULL << 20,
		.nr_vcpus = NR_VCPUS,
		.dirty_ring_entries = 4096,
		.rate = 4000,
		.batch = 16,
		.step = 97,
	};
	struct vmig_ram_region r = { .fd = -1 };
	struct vmig_ram_kvm kvm = { 0 };
	int fds[NR_VCPUS], err;
	uint8_t *ram;
	unsigned int i;

	if (!have_kvm_and_uffd())
		SKIP(return, "no /dev/kvm or no userfaultfd");
	cfg.ram_size /= test_scale();
	cfg.rate /= test_scale();
	self->size = cfg.ram_size;
	self->ws = self->size / 4096 / NR_VCPUS / 4;
	cfg.working_set = self->ws;
	err = testvm_create(&cfg, &self->src);
	if (err == -EINVAL)
		SKIP(return, "no dirty ring");
	ASSERT_EQ(0, err);
	ASSERT_EQ(0, testvm_create(&cfg, &self->dst));
	ram = testvm_ram(self->src);
	testvm_fill_random(self->src, 7);
	/* The last quarter zero: zero pages travel as markers. */
	memset(ram + self->size / 4 * 3, 0, self->size / 4);

	r.host_addr = ram;
	r.size = self->size;
	r.kvm_slot = TESTVM_RAM_SLOT;
	for (i = 0; i < NR_VCPUS; i++)
		fds[i] = testvm_vcpu_fd(self->src, i);
	kvm.vm_fd = testvm_vm_fd(self->src);
	kvm.vcpu_fds = fds;
	kvm.nr_vcpus = NR_VCPUS;
	kvm.ring_entries = 4096;
	ASSERT_EQ(0, vmig_ram_new(&r, 1, &kvm, &self->ram));
	testvm_set_ring_full_handler(self->src, ring_full, self->ram);
	r.host_addr = testvm_ram(self->dst);
	ASSERT_EQ(0, vmig_ram_dest_new(&r, 1, &self->dest));
}

FIXTURE_TEARDOWN(pc)
{
	if (self->src)
		testvm_pause(self->src);
	if (self->dst)
		testvm_pause(self->dst);
	vmig_ram_free(self->ram);
	vmig_ram_dest_free(self->dest);
	testvm_destroy(self->src);
	testvm_destroy(self->dst);
}

TEST_F(pc, pages_placed_once_and_ram_matches)
{
	/* Precopy sends a sixth of RAM at most, the push takes ~1.3 s. */
	struct vmig_ram_precopy_config pcfg = {
		.max_bandwidth = self->size,
	};
	struct vmig_postcopy_config cfg;
	struct vmig_postcopy_src_stats ss;
	struct vmig_postcopy_dest_stats ds;
	struct vmig_session_config scfg;
	struct vmig_postcopy_dest *pd;
	struct vmig_ram_precopy *pre;
	struct vmig_ram_sink sink;
	struct src_arg a = { 0 };
	struct testvm_cpu_state cs;
	uint64_t src_counter[NR_VCPUS], written[NR_VCPUS] = { 0 };
	uint64_t g, pages, bad = 0, c, t0;
	pthread_t th;
	int lfd, ret;
	unsigned int v;

	pages = self->size / 4096;
	session_cfg(&scfg);
	lfd = listen_lo(&a.sa);
	ASSERT_LE(0, lfd);

	/* Precopy while the guest runs, cut short. */
	ASSERT_EQ(0, vmig_ram_track_start(self->ram, VMIG_TRACK_RING));
	vmig_ram_dest_sink(self->dest, &sink);
	ASSERT_EQ(0, vmig_ram_precopy_new(self->ram, &sink, &pcfg, &pre));
	ASSERT_EQ(0, testvm_resume(self->src));
	t0 = time(NULL);
	if (variant->precopy_ms) {
		struct timespec s, n;

		clock_gettime(CLOCK_MONOTONIC, &s);
		do {
			ASSERT_LE(0, vmig_ram_precopy_step(pre));
			clock_gettime(CLOCK_MONOTONIC, &n);
		} while ((n.tv_sec - s.tv_sec) * 1000 +
			 (n.tv_nsec - s.tv_nsec) / 1000000 <
			 (long)variant->precopy_ms);
	} else {
		sleep_ms(50);
	}
	/* Switch over to postcopy. */
	ASSERT_EQ(0, testvm_pause(self->src));
	ASSERT_LE(0, vmig_ram_sync(self->ram));
	vmig_ram_track_stop(self->ram);
	ASSERT_EQ(0, vmig_ram_precopy_flush(pre));
	vmig_ram_precopy_free(pre);

	vmig_postcopy_config_init(&cfg);
	cfg.max_bandwidth = self->size * 3 / 4;
	ASSERT_EQ(0, vmig_ram_postcopy_src_new(self->ram, &scfg, &cfg, &a.s));
	ASSERT_EQ(0, vmig_ram_postcopy_dest_new(self->dest, &scfg, &pd));
	ASSERT_EQ(0, pthread_create(&th, NULL, src_thread, &a));
	ASSERT_EQ(0, vmig_ram_postcopy_dest_accept(pd, lfd));

	/* The destination runs at once, from where the source stopped. */
	for (v = 0; v < NR_VCPUS; v++) {
		ASSERT_EQ(0, testvm_get_cpu_state(self->src, v, &cs));
		src_counter[v] = cs.counter;
		ASSERT_EQ(0, testvm_set_cpu_state(self->dst, v, &cs));
	}
	ASSERT_EQ(0, testvm_resume(self->dst));

	if (variant->cut) {
		sleep_ms(250);
		vmig_ram_postcopy_src_cut(a.s);
		pthread_join(th, NULL);
		EXPECT_EQ(-ECONNABORTED, a.ret);
		ret = vmig_ram_postcopy_dest_wait(pd);
		EXPECT_GT(0, ret);
		vmig_ram_postcopy_dest_get_stats(pd, &ds);
		EXPECT_FALSE(ds.done);
		/* Paused: the guest waits on its faults a while. */
		sleep_ms(100);
		ASSERT_EQ(0, pthread_create(&th, NULL, src_thread, &a));
		ASSERT_EQ(0, vmig_ram_postcopy_dest_accept(pd, lfd));
	}
	ret = vmig_ram_postcopy_dest_wait(pd);
	ASSERT_EQ(0, ret);
	pthread_join(th, NULL);
	ASSERT_EQ(0, a.ret);
	ASSERT_EQ(0, testvm_pause(self->dst));
	TH_LOG("done in about %llu s", (unsigned long long)(time(NULL) - t0));

	vmig_ram_postcopy_src_get_stats(a.s, &ss);
	vmig_ram_postcopy_dest_get_stats(pd, &ds);
	TH_LOG("source: %llu discarded, %llu held, %llu pushed, %llu requests, %llu zero, %llu connects",
	       (unsigned long long)ss.discarded, (unsigned long long)ss.have,
	       (unsigned long long)ss.pushed,
	       (unsigned long long)ss.requests,
	       (unsigned long long)ss.zero_pages,
	       (unsigned long long)ss.connects);
	TH_LOG("destination: %llu present, %llu discarded, %llu faults, %llu requests, %llu placed, %llu zero, %llu duplicates, %llu eexist, %llu breaks",
	       (unsigned long long)ds.present,
	       (unsigned long long)ds.discarded,
	       (unsigned long long)ds.faults,
	       (unsigned long long)ds.requests,
	       (unsigned long long)ds.placed,
	       (unsigned long long)ds.zero_placed,
	       (unsigned long long)ds.duplicates,
	       (unsigned long long)ds.eexist, (unsigned long long)ds.breaks);
	EXPECT_TRUE(ds.done);
	/* Exactly once. */
	EXPECT_EQ(0, ds.eexist);
	EXPECT_EQ(pages, ds.present - ds.discarded + ds.placed +
			 ds.zero_placed);
	EXPECT_LT(0, ds.zero_placed);
	/* The guest did fault, and asked. */
	EXPECT_LT(0, ds.faults);
	EXPECT_LT(0, ds.requests);
	EXPECT_LT(0, ss.requests);
	if (variant->precopy_ms) {
		EXPECT_LT(0, ds.present);
		EXPECT_LT(0, ss.discarded);
	}
	if (variant->cut) {
		EXPECT_EQ(1, ds.breaks);
		EXPECT_EQ(2, ss.connects);
		EXPECT_LT(0, ss.have);
	}

	/* Page by page. */
	EXPECT_EQ(0, testvm_check_stamps(self->dst));
	for (g = 0; g < pages; g++) {
		const uint8_t *s = (const uint8_t *)testvm_ram(self->src) +
				   g * 4096;
		const uint8_t *d = (const uint8_t *)testvm_ram(self->dst) +
				   g * 4096;
		int o = testvm_page_owner(self->dst, g);
		size_t from = 0;

		if (o >= 0 && testvm_page_stamp(self->dst, g, &c) &&
		    c > src_counter[o]) {
			written[o]++;
			from = STAMP_LEN;
		}
		if (memcmp(s + from, d + from, 4096 - from))
			bad++;
	}
	EXPECT_EQ(0, bad);
	for (v = 0; v < NR_VCPUS; v++) {
		uint64_t w = testvm_counter(self->dst, v) - src_counter[v];

		TH_LOG("vCPU %u wrote %llu pages on the destination", v,
		       (unsigned long long)w);
		EXPECT_LT(0, w);
		EXPECT_EQ(w < self->ws ? w : self->ws, written[v]);
	}
	vmig_ram_postcopy_dest_free(pd);
	vmig_ram_postcopy_src_free(a.s);
	close(lfd);
}

TEST(ram_of_another_size_is_refused)
{
	struct vmig_ram_region rs = { .fd = -1, .kvm_slot = -1 };
	struct vmig_ram_region rd = { .fd = -1, .kvm_slot = -1 };
	struct vmig_session_config scfg;
	struct vmig_postcopy_dest *pd;
	struct vmig_ram_dest *dest;
	struct vmig_ram *ram;
	struct src_arg a = { 0 };
	pthread_t th;
	int lfd;

	if (!have_kvm_and_uffd())
		SKIP(return, "no userfaultfd");
	rs.size = 1 << 20;
	rd.size = 2 << 20;
	rs.host_addr = mmap(NULL, rs.size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rd.host_addr = mmap(NULL, rd.size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, rs.host_addr);
	ASSERT_NE(MAP_FAILED, rd.host_addr);
	session_cfg(&scfg);
	scfg.timeout_ms = 2000;
	ASSERT_EQ(0, vmig_ram_new(&rs, 1, NULL, &ram));
	ASSERT_EQ(0, vmig_ram_dest_new(&rd, 1, &dest));
	ASSERT_EQ(0, vmig_ram_postcopy_src_new(ram, &scfg, NULL, &a.s));
	ASSERT_EQ(0, vmig_ram_postcopy_dest_new(dest, &scfg, &pd));
	lfd = listen_lo(&a.sa);
	ASSERT_LE(0, lfd);
	ASSERT_EQ(0, pthread_create(&th, NULL, src_thread, &a));
	EXPECT_EQ(-EMEDIUMTYPE, vmig_ram_postcopy_dest_accept(pd, lfd));
	pthread_join(th, NULL);
	/* The source is told why. */
	EXPECT_EQ(-EMEDIUMTYPE, a.ret);
	vmig_ram_postcopy_dest_free(pd);
	vmig_ram_postcopy_src_free(a.s);
	vmig_ram_dest_free(dest);
	vmig_ram_free(ram);
	munmap(rs.host_addr, rs.size);
	munmap(rd.host_addr, rd.size);
	close(lfd);
}

TEST_HARNESS_MAIN

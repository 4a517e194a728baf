// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * RAM precopy of a running testvm guest into destination memory, with each
 * tracker: the guest dirties pages while the ring-first sender runs, the
 * convergence model decides, the guest is paused, the final stop-and-copy
 * runs, and the destination's RAM must equal the source's page by page.
 * Zero pages must travel as markers.  A high dirty rate against a limited
 * bandwidth must be reported as not converging (STUCK), and the migration
 * still completes correctly when the caller stops the guest anyway.
 * Also over 4 RAM channels on loopback TCP, and for a paused guest whose
 * pages all go in place.  Skipped without /dev/kvm.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "test_scale.h"
#include "testvm.h"
#include "vmig.h"

#define NR_VCPUS	2
#define MS		1000000ULL
/* A stuck variant's guest has begun once it wrote this many pages. */
#define STARTED_PAGES	1024

static int ring_full(void *opaque, unsigned int vcpu)
{
	return vmig_ram_ring_full(opaque, vcpu);
}

static bool have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

FIXTURE(mig)
{
	struct testvm *vm;
	struct vmig_ram *ram;
	struct vmig_ram_dest *dest;
	void *dst;
	uint64_t size;
};

FIXTURE_VARIANT(mig)
{
	enum vmig_tracker tracker;
	uint32_t ring;
	uint64_t mib;
	uint64_t rate;		/* pages/s per vCPU, 0: unlimited */
	uint64_t max_bw;	/* sender's limit, bytes/s */
	uint64_t downtime_ms;
	bool stuck;		/* expect VMIG_CONVERGE_STUCK */
	unsigned int channels;	/* 0: in-process sink */
	bool no_fill;		/* RAM zero but for the guest's writes */
	bool paused;		/* the guest never runs: precopy_stop() */
};

FIXTURE_VARIANT_ADD(mig, ring)
{
	.tracker = VMIG_TRACK_RING, .ring = 4096, .mib = 128, .rate = 2000,
	.downtime_ms = 20,
};

FIXTURE_VARIANT_ADD(mig, bitmap)
{
	.tracker = VMIG_TRACK_BITMAP, .mib = 128, .rate = 2000,
	.downtime_ms = 20,
};

FIXTURE_VARIANT_ADD(mig, wp)
{
	.tracker = VMIG_TRACK_WP, .mib = 128, .rate = 2000,
	.downtime_ms = 20,
};

FIXTURE_VARIANT_ADD(mig, ring_high_rate_stuck)
{
	.tracker = VMIG_TRACK_RING, .ring = 4096, .mib = 32, .rate = 20000,
	.max_bw = 16ULL << 20, .downtime_ms = 20, .stuck = true,
	.no_fill = true,
};

FIXTURE_VARIANT_ADD(mig, bitmap_high_rate_stuck)
{
	.tracker = VMIG_TRACK_BITMAP, .mib = 32, .rate = 20000,
	.max_bw = 16ULL << 20, .downtime_ms = 20, .stuck = true,
	.no_fill = true,
};

FIXTURE_VARIANT_ADD(mig, ring_tcp_4_channels)
{
	.tracker = VMIG_TRACK_RING, .ring = 4096, .mib = 128, .rate = 2000,
	.downtime_ms = 20, .channels = 4,
};

/* Sent in place from guest memory, and received straight into it. */
FIXTURE_VARIANT_ADD(mig, paused_tcp_4_channels)
{
	.tracker = VMIG_TRACK_RING, .ring = 4096, .mib = 128,
	.downtime_ms = 20, .channels = 4, .paused = true,
};

FIXTURE_SETUP(mig)
{
	struct testvm_config cfg = {
		.nr_vcpus = NR_VCPUS,
		.dirty_ring_entries = variant->ring,
		.rate = variant->rate,
		.batch = 32,
		.step = 97,
	};
	struct vmig_ram_region r = { 0 };
	struct vmig_ram_kvm kvm = { 0 };
	int fds[NR_VCPUS], err;
	uint8_t *ram;
	unsigned int i;

	if (!have_kvm())
		SKIP(return, "no /dev/kvm");
	self->size = (variant->mib << 20) / test_scale();
	/* Under TCG a stuck variant's guest needs all the speed it has. */
	if (!variant->stuck)
		cfg.rate /= test_scale();
	cfg.ram_size = self->size;
	/* A quarter of each vCPU's share is its working set. */
	cfg.working_set = self->size / 4096 / NR_VCPUS / 4;
	err = testvm_create(&cfg, &self->vm);
	if (err == -EINVAL && variant->ring)
		SKIP(return, "no dirty ring");
	ASSERT_EQ(0, err);
	/* Random data, with the last quarter of RAM left zero. */
	ram = testvm_ram(self->vm);
	if (!variant->no_fill) {
		testvm_fill_random(self->vm, 42);
		memset(ram + self->size / 4 * 3, 0, self->size / 4);
	}

	r.host_addr = ram;
	r.size = self->size;
	r.fd = -1;
	r.kvm_slot = variant->tracker == VMIG_TRACK_WP ? -1 : TESTVM_RAM_SLOT;
	for (i = 0; i < NR_VCPUS; i++)
		fds[i] = testvm_vcpu_fd(self->vm, i);
	kvm.vm_fd = testvm_vm_fd(self->vm);
	kvm.vcpu_fds = fds;
	kvm.nr_vcpus = NR_VCPUS;
	kvm.ring_entries = variant->ring;
	ASSERT_EQ(0, vmig_ram_new(&r, 1,
				  variant->tracker == VMIG_TRACK_WP ? NULL : &kvm,
				  &self->ram));
	testvm_set_ring_full_handler(self->vm, ring_full, self->ram);
	err = vmig_ram_track_start(self->ram, variant->tracker);
	if (variant->tracker == VMIG_TRACK_WP && err)
		SKIP(return, "write-protect tracking unavailable (%d)", err);
	ASSERT_EQ(0, err);

	self->dst = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->dst);
	r.host_addr = self->dst;
	ASSERT_EQ(0, vmig_ram_dest_new(&r, 1, &self->dest));
}

FIXTURE_TEARDOWN(mig)
{
	if (self->vm)
		testvm_pause(self->vm);
	vmig_ram_free(self->ram);
	vmig_ram_dest_free(self->dest);
	if (self->dst && self->dst != MAP_FAILED)
		munmap(self->dst, self->size);
	testvm_destroy(self->vm);
}

struct serve_arg {
	struct vmig_ram_dest *dest;
	struct vmig_session_config *cfg;
	int lfd;
	int ret;
};

static void *serve_thread(void *p)
{
	struct serve_arg *a = p;

	a->ret = vmig_ram_dest_serve(a->dest, a->cfg, a->lfd);
	return NULL;
}

/* Under TCG in the test VM, the high-rate variants take longer. */
TEST_F_TIMEOUT(mig, precopy_converges_or_reports_then_ram_matches, 120)
{
	static const char secret[] = "a secret of the ram migration test";
	struct vmig_ram_precopy_config pcfg = {
		.max_bandwidth = variant->max_bw / test_scale(),
	};
	struct vmig_session_config scfg;
	struct vmig_converge_config ccfg;
	struct vmig_ram_precopy_stats st;
	struct vmig_ram_dest_stats dst;
	struct vmig_ram_stats rst;
	struct vmig_converge *conv;
	struct vmig_ram_precopy *pc;
	struct vmig_ram_net *net = NULL;
	struct vmig_ram_sink sink;
	struct serve_arg sa = { 0 };
	struct sockaddr_in sin = { 0 };
	socklen_t slen = sizeof(sin);
	pthread_t th;
	uint64_t page, bad = 0, written0;
	const uint8_t *src = testvm_ram(self->vm), *dp = self->dst;
	unsigned int i;
	int r;

	vmig_session_config_init(&scfg);
	memset(scfg.session_id, 7, sizeof(scfg.session_id));
	scfg.secret = secret;
	scfg.secret_len = sizeof(secret);
	scfg.channels = variant->channels;
	if (variant->channels) {
		sa.lfd = socket(AF_INET, SOCK_STREAM, 0);
		ASSERT_LE(0, sa.lfd);
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ASSERT_EQ(0, bind(sa.lfd, (struct sockaddr *)&sin, sizeof(sin)));
		ASSERT_EQ(0, listen(sa.lfd, 8));
		ASSERT_EQ(0, getsockname(sa.lfd, (struct sockaddr *)&sin,
					 &slen));
		sa.dest = self->dest;
		sa.cfg = &scfg;
		ASSERT_EQ(0, pthread_create(&th, NULL, serve_thread, &sa));
		ASSERT_EQ(0, vmig_ram_net_connect(&scfg,
						  (struct sockaddr *)&sin,
						  sizeof(sin), &net));
		vmig_ram_net_sink(net, &sink);
	} else {
		vmig_ram_dest_sink(self->dest, &sink);
	}

	vmig_converge_config_init(&ccfg);
	ccfg.downtime_ns = variant->downtime_ms * MS;
	ccfg.stall_ns = 1000 * MS;
	ASSERT_EQ(0, vmig_converge_new(&ccfg, &conv));
	ASSERT_EQ(0, vmig_ram_precopy_new(self->ram, &sink, &pcfg, &pc));

	written0 = testvm_pages_written(self->vm);
	if (variant->paused) {
		ASSERT_EQ(0, vmig_ram_precopy_stop(pc));
	} else {
		ASSERT_EQ(0, testvm_resume(self->vm));
	}
	/*
	 * A stuck variant is about a guest that writes faster than the link
	 * carries.  Under TCG its vCPUs may take longer to start than a
	 * zero RAM takes to send (one run converged before the guest wrote
	 * a page), so the precopy starts once the guest has written.
	 */
	for (i = 0; variant->stuck && i < 10000 &&
	     testvm_pages_written(self->vm) - written0 < STARTED_PAGES; i++)
		usleep(1000);
	if (variant->stuck)
		ASSERT_LE(STARTED_PAGES,
			  testvm_pages_written(self->vm) - written0);
	r = vmig_ram_precopy_run(pc, conv);
	vmig_ram_precopy_get_stats(pc, &st);
	TH_LOG("%s after %lu packets: %lu pages (%lu zero, %lu background, "
	       "%lu dirty, %lu left to the pass), guest wrote %lu",
	       r == VMIG_CONVERGE_STUCK ? "stuck" : "switchover",
	       (unsigned long)st.packets, (unsigned long)st.pages,
	       (unsigned long)st.zero_pages,
	       (unsigned long)st.background_pages,
	       (unsigned long)st.dirty_pages, (unsigned long)st.skipped,
	       (unsigned long)(testvm_pages_written(self->vm) - written0));
	EXPECT_EQ(variant->stuck ? VMIG_CONVERGE_STUCK :
				   VMIG_CONVERGE_SWITCHOVER, r);
	ASSERT_EQ(0, testvm_pause(self->vm));
	ASSERT_EQ(0, vmig_ram_precopy_complete(pc));
	vmig_ram_precopy_get_stats(pc, &st);
	TH_LOG("stop-and-copy: %lu pages in %lu us",
	       (unsigned long)st.final_pages,
	       (unsigned long)(st.complete_ns / 1000));
	if (variant->channels) {
		pthread_join(th, NULL);
		EXPECT_EQ(0, sa.ret);
		vmig_ram_net_close(net);
		close(sa.lfd);
	}

	/* Every page once by the pass, zero pages as markers. */
	EXPECT_TRUE(st.background_done);
	EXPECT_EQ(self->size / 4096, st.background_pages);
	EXPECT_GE(st.zero_pages, self->size / 4096 / 4);
	if (!variant->paused)
		EXPECT_GT(st.dirty_pages + st.final_pages, 0);
	/*
	 * Page data goes in place once the RAM stops changing: all of it
	 * for a paused guest, the last pass's at most with the network
	 * sink (the pass may find nothing).
	 */
	if (variant->paused) {
		EXPECT_EQ(st.pages - st.zero_pages, st.in_place_pages);
	} else if (variant->channels) {
		EXPECT_LE(st.in_place_pages, st.final_pages);
	} else {
		EXPECT_EQ(0, st.in_place_pages);
	}
	vmig_ram_dest_get_stats(self->dest, &dst);
	EXPECT_EQ(st.pages, dst.pages);
	EXPECT_EQ(st.zero_pages, dst.zero_pages);
	vmig_ram_get_stats(self->ram, &rst);
	EXPECT_EQ(0, rst.losses);

	for (page = 0; page < self->size / 4096; page++)
		if (memcmp(src + page * 4096, dp + page * 4096, 4096))
			bad++;
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, testvm_check_stamps(self->vm));
	vmig_ram_precopy_free(pc);
	vmig_converge_free(conv);
}

TEST(corrupt_packets_are_refused)
{
	static uint8_t src[4 * 4096] __attribute__((aligned(4096)));
	static uint8_t dst[4 * 4096] __attribute__((aligned(4096)));
	struct vmig_ram_region r = { .host_addr = src, .size = sizeof(src),
				     .fd = -1, .kvm_slot = -1 };
	struct vmig_ram_dest_stats dst_st;
	struct vmig_ram_dest *d;
	uint8_t *pkt;
	size_t len;

	/* A packet by hand: header, two entries, one page of data. */
	memset(src + 4096, 0xab, 4096);
	r.host_addr = dst;
	ASSERT_EQ(0, vmig_ram_dest_new(&r, 1, &d));
	len = 32 + 16 + 4096;
	pkt = calloc(1, len);
	ASSERT_NE(NULL, pkt);
	memcpy(pkt, "VMRP", 4);
	pkt[4] = 2;			/* nr */
	pkt[8] = 1;			/* seq */
	pkt[20] = (16 + 4096) & 0xff;
	pkt[21] = (16 + 4096) >> 8;
	pkt[32] = 1;			/* page 0, ZERO */
	pkt[40 + 1] = 1;		/* page 1 (1 << 8) */
	memcpy(pkt + 48, src + 4096, 4096);
	/* The CRC field is 0: wrong. */
	EXPECT_EQ(-EBADMSG, vmig_ram_dest_feed(d, pkt, len));
	/* Truncated. */
	EXPECT_EQ(-EPROTO, vmig_ram_dest_feed(d, pkt, len - 1));
	pkt[0] = 'X';
	EXPECT_EQ(-EPROTO, vmig_ram_dest_feed(d, pkt, len));
	vmig_ram_dest_get_stats(d, &dst_st);
	EXPECT_EQ(0, dst_st.pages);
	EXPECT_EQ(0, dst[4096]);
	free(pkt);
	vmig_ram_dest_free(d);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Benchmark: the per-round dirty-sync cost of the KVM dirty ring against
 * the dirty bitmap (the baseline), at two RAM sizes and one dirty rate.
 *
 * A testvm guest dirties pages at a fixed rate in a fixed working set; a
 * round is ROUND_MS of running followed by vmig_ram_sync() and draining the
 * dirty set.  A round's cost is the time the tracker spent in it: the
 * ring's reaper passes plus the final pass, or the bitmap's GET, scan and
 * CLEARs (vmig_ram_stats.sync_ns, CPU time of the threads doing it).  Prints the median per round per case,
 * and the ratio of the larger size to the smaller for each tracker: with
 * the ring it should follow the dirty pages, not the RAM size.
 *
 * Usage: bench_dirty_sync [SMALL_GIB [LARGE_GIB [RATE [ROUNDS]]]]
 * (defaults 1 8 20000 10).  Not a test: it prints figures only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testvm.h"
#include "vmig.h"

#define ROUND_MS	100
#define WORKING_SET	65536		/* pages: 256 MiB */
#define RING_ENTRIES	4096

static int ring_full(void *opaque, unsigned int vcpu)
{
	return vmig_ram_ring_full(opaque, vcpu);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	uint64_t median_ns;
	uint64_t pages;		/* dirty pages per round, median */
	uint64_t written;	/* guest writes per round, median */
	uint64_t losses;
};

static int run_case(enum vmig_tracker tracker, uint64_t gib, uint64_t rate,
		    unsigned int rounds, struct result *res)
{
	struct testvm_config cfg = {
		.ram_size = gib << 30,
		.nr_vcpus = 1,
		.dirty_ring_entries = tracker == VMIG_TRACK_RING ?
				      RING_ENTRIES : 0,
		.working_set = WORKING_SET,
		.rate = rate,
		.batch = 16,
		.step = 101,
	};
	struct vmig_ram_region r = { 0 };
	struct vmig_ram_kvm kvm = { 0 };
	struct vmig_ram_stats st;
	uint64_t *cost, *pages, *written, before;
	struct vmig_page p[512];
	struct vmig_ram *ram = NULL;
	struct testvm *vm = NULL;
	unsigned int i;
	int fd, err, n;

	cost = calloc(rounds, sizeof(*cost));
	pages = calloc(rounds, sizeof(*pages));
	written = calloc(rounds, sizeof(*written));
	if (!cost || !pages || !written) {
		err = -ENOMEM;
		goto out;
	}
	err = testvm_create(&cfg, &vm);
	if (err)
		goto out;
	fd = testvm_vcpu_fd(vm, 0);
	r.host_addr = testvm_ram(vm);
	r.size = cfg.ram_size;
	r.fd = -1;
	r.kvm_slot = TESTVM_RAM_SLOT;
	kvm.vm_fd = testvm_vm_fd(vm);
	kvm.vcpu_fds = &fd;
	kvm.nr_vcpus = 1;
	kvm.ring_entries = cfg.dirty_ring_entries;
	err = vmig_ram_new(&r, 1, &kvm, &ram);
	if (err)
		goto out;
	testvm_set_ring_full_handler(vm, ring_full, ram);
	err = vmig_ram_track_start(ram, tracker);
	if (err)
		goto out;
	err = testvm_resume(vm);
	if (err)
		goto out;
	/* One round to settle (page faults of the first touches). */
	usleep(ROUND_MS * 1000);
	vmig_ram_sync(ram);
	while (vmig_ram_pop_dirty(ram, p, 512) > 0)
		;
	for (i = 0; i < rounds; i++) {
		uint64_t w0 = testvm_pages_written(vm);

		vmig_ram_get_stats(ram, &st);
		before = st.sync_ns;
		usleep(ROUND_MS * 1000);
		err = vmig_ram_sync(ram);
		if (err < 0)
			goto out;
		vmig_ram_get_stats(ram, &st);
		cost[i] = st.sync_ns - before;
		while ((n = vmig_ram_pop_dirty(ram, p, 512)) > 0)
			pages[i] += n;
		written[i] = testvm_pages_written(vm) - w0;
	}
	err = testvm_pause(vm);
	vmig_ram_get_stats(ram, &st);
	qsort(cost, rounds, sizeof(*cost), cmp_u64);
	qsort(pages, rounds, sizeof(*pages), cmp_u64);
	qsort(written, rounds, sizeof(*written), cmp_u64);
	res->written = written[rounds / 2];
	res->median_ns = cost[rounds / 2];
	res->pages = pages[rounds / 2];
	res->losses = st.losses;
out:
	if (vm)
		testvm_pause(vm);
	vmig_ram_free(ram);
	testvm_destroy(vm);
	free(cost);
	free(pages);
	free(written);
	return err;
}

int main(int argc, char **argv)
{
	uint64_t sizes[2] = { 1, 8 }, rate = 20000;
	static const enum vmig_tracker trackers[2] = { VMIG_TRACK_BITMAP,
						       VMIG_TRACK_RING };
	static const char *const names[2] = { "bitmap", "ring" };
	struct result res[2][2];
	unsigned int rounds = 10, t, s;
	int fd, err;

	if (argc > 1)
		sizes[0] = strtoull(argv[1], NULL, 0);
	if (argc > 2)
		sizes[1] = strtoull(argv[2], NULL, 0);
	if (argc > 3)
		rate = strtoull(argv[3], NULL, 0);
	if (argc > 4)
		rounds = strtoul(argv[4], NULL, 0);
	if (!sizes[0] || !sizes[1] || !rounds) {
		fprintf(stderr, "usage: %s [SMALL_GIB [LARGE_GIB [RATE [ROUNDS]]]]\n",
			argv[0]);
		return 2;
	}
	fd = open("/dev/kvm", O_RDWR);
	if (fd < 0) {
		printf("# bench_dirty_sync: no /dev/kvm, nothing measured\n");
		return 0;
	}
	close(fd);

	printf("# per-round dirty-sync cost: %u rounds of %d ms, 1 vCPU "
	       "dirtying %llu pages/s in a %d-page working set\n",
	       rounds, ROUND_MS, (unsigned long long)rate, WORKING_SET);
	printf("%-8s %6s %14s %12s %14s %8s\n", "tracker", "GiB",
	       "written/round", "dirty/round", "cpu us/round", "losses");
	for (t = 0; t < 2; t++) {
		for (s = 0; s < 2; s++) {
			err = run_case(trackers[t], sizes[s], rate, rounds,
				       &res[t][s]);
			if (err) {
				fprintf(stderr, "%s at %llu GiB: %s\n",
					names[t], (unsigned long long)sizes[s],
					strerror(-err));
				return 1;
			}
			printf("%-8s %6llu %14llu %12llu %14.1f %8llu\n",
			       names[t], (unsigned long long)sizes[s],
			       (unsigned long long)res[t][s].written,
			       (unsigned long long)res[t][s].pages,
			       res[t][s].median_ns / 1e3,
			       (unsigned long long)res[t][s].losses);
		}
	}
	for (t = 0; t < 2; t++)
		printf("%s: %llu GiB costs %.2fx what %llu GiB costs\n",
		       names[t], (unsigned long long)sizes[1],
		       (double)res[t][1].median_ns /
		       (res[t][0].median_ns ? res[t][0].median_ns : 1),
		       (unsigned long long)sizes[0]);
	for (s = 0; s < 2; s++)
		printf("at %llu GiB: ring costs %.2fx the bitmap\n",
		       (unsigned long long)sizes[s],
		       (double)res[1][s].median_ns /
		       (res[0][s].median_ns ? res[0][s].median_ns : 1));
	return 0;
}

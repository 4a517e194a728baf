/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * testvm: a minimal KVM VMM for libvmig's tests, benchmarks and demo.
 *
 * One VM with one RAM region (guest physical 0 .. ram_size, KVM memslot
 * TESTVM_RAM_SLOT, anonymous or memfd backed) and a small "firmware" slot
 * above it holding identity-mapped long-mode page tables (2 MiB pages, with
 * the accessed and dirty bits preset so the CPU never writes them) and the
 * guest code.  The firmware slot is never dirty-logged: every page a tracker
 * reports in the RAM slot is one the guest's workload wrote.
 *
 * The workload: vCPU i owns the i-th of nr_vcpus equal shares of RAM and
 * writes the first working_set pages of it, page idx, idx + step, ... (mod
 * working_set), batch pages between exits to the VMM.  Each write stores a
 * stamp in the page's first 16 bytes: the page's guest frame number, then the
 * vCPU's write counter (1, 2, 3, ...).  The VMM paces the exits to the
 * configured rate.  Everything else in a page is left as it was.
 *
 * Not thread-safe except where said; the vCPU threads are internal.
 */
#ifndef TESTVM_H
#define TESTVM_H

#include <stdbool.h>
#include <stdint.h>

#define TESTVM_PAGE_SIZE	4096ULL
#define TESTVM_RAM_SLOT		0
#define TESTVM_MAX_VCPUS	64

struct testvm;

struct testvm_config {
	uint64_t ram_size;		/* bytes, a multiple of 2 MiB, < 63 GiB */
	unsigned int nr_vcpus;		/* 1 .. TESTVM_MAX_VCPUS */
	bool memfd;			/* back RAM with a memfd (MAP_SHARED) */
	uint32_t dirty_ring_entries;	/* enable the KVM dirty ring (0: no) */
	uint64_t working_set;		/* pages per vCPU (0: its whole share) */
	uint64_t rate;			/* pages/s per vCPU (0: unlimited) */
	unsigned int batch;		/* pages per exit (0: 64) */
	uint64_t step;			/* page stride (0: 1); made coprime */
};

/*
 * Called on a vCPU thread at KVM_EXIT_DIRTY_RING_FULL; must return once the
 * ring has room (0) or fail (negative errno: the vCPU stops).
 */
typedef int (*testvm_ring_full_fn)(void *opaque, unsigned int vcpu);

/* Create the VM; its vCPU threads start paused.  Negative errno. */
int testvm_create(const struct testvm_config *cfg, struct testvm **out);
/* Stop and join the vCPU threads, close every fd, unmap RAM. */
void testvm_destroy(struct testvm *vm);

/* Set before the first testvm_resume(). */
void testvm_set_ring_full_handler(struct testvm *vm, testvm_ring_full_fn fn,
				  void *opaque);

/* Let the vCPUs run; restarts the rate pacing.  Negative errno. */
int testvm_resume(struct testvm *vm);
/*
 * Stop the vCPUs at their next exit and wait until all are out of KVM_RUN;
 * the write counters are then exact.  Returns the first vCPU error if any
 * vCPU failed (its thread has stopped), else 0.
 */
int testvm_pause(struct testvm *vm);

/* RAM and fds (owned by the VM). */
void *testvm_ram(const struct testvm *vm);
uint64_t testvm_ram_size(const struct testvm *vm);
int testvm_ram_fd(const struct testvm *vm);	/* -1 unless memfd */
int testvm_vm_fd(const struct testvm *vm);
int testvm_vcpu_fd(const struct testvm *vm, unsigned int vcpu);
unsigned int testvm_nr_vcpus(const struct testvm *vm);
uint32_t testvm_dirty_ring_entries(const struct testvm *vm);

/* Fill all of RAM with pseudo-random data from seed (VM paused). */
void testvm_fill_random(struct testvm *vm, uint64_t seed);

/* The vCPU's write counter: the last stamp it wrote (VM paused). */
uint64_t testvm_counter(const struct testvm *vm, unsigned int vcpu);
/* Pages written by all vCPUs since creation (approximate while running). */
uint64_t testvm_pages_written(const struct testvm *vm);

/*
 * The workload's position (counter and next page) per vCPU, to carry the
 * workload over to another testvm (both paused, same configuration).
 */
struct testvm_cpu_state {
	uint64_t counter;
	uint64_t next;
};
int testvm_get_cpu_state(const struct testvm *vm, unsigned int vcpu,
			 struct testvm_cpu_state *st);
int testvm_set_cpu_state(struct testvm *vm, unsigned int vcpu,
			 const struct testvm_cpu_state *st);

/*
 * The vCPU whose share holds page (-1 if none), and whether the page holds
 * a stamp of the workload; if so *counter is the stamp's counter.
 */
int testvm_page_owner(const struct testvm *vm, uint64_t page);
bool testvm_page_stamp(const struct testvm *vm, uint64_t page,
		       uint64_t *counter);

/*
 * Check every stamped page: frame number right, counter not above its
 * owner's counter.  Returns the number of bad pages (VM paused).
 */
uint64_t testvm_check_stamps(const struct testvm *vm);

#endif /* TESTVM_H */

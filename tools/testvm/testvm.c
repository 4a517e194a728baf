// SPDX-License-Identifier: GPL-2.0-only
/*
 * testvm: a minimal KVM VMM running a page-dirtying workload (see testvm.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "testvm.h"

#define MIB			(1ULL << 20)
#define GIB			(1ULL << 30)
/* The firmware slot: page tables and code, identity-mapped like RAM. */
#define FW_SLOT			1
#define FW_GPA			(63 * GIB)
#define FW_SIZE			(2 * MIB)
#define FW_PML4			0x0000
#define FW_PDPT			0x1000
#define FW_PD			0x2000	/* 64 PDs: 0 .. 64 GiB */
#define FW_CODE			0x80000
#define MAP_GIB			64
#define WORKLOAD_PORT		0x10

#define PTE_P			0x001ULL
#define PTE_RW			0x002ULL
#define PTE_A			0x020ULL
#define PTE_D			0x040ULL
#define PTE_PS			0x080ULL

/*
 * The guest code, 64-bit.  In: rdi share base (gpa), rsi working set
 * (pages), rdx batch, rcx step, r8 counter, r9 next page index.
 *
 * top:	mov %rdx,%r10
 * 1:	mov %r9,%rax; shl $12,%rax; add %rdi,%rax	# page address
 *	mov %rax,%r11; shr $12,%r11; mov %r11,(%rax)	# stamp: gfn
 *	inc %r8; mov %r8,8(%rax)			# stamp: counter
 *	add %rcx,%r9; cmp %rsi,%r9; jb 2f; sub %rsi,%r9	# next page
 * 2:	dec %r10; jnz 1b
 *	out %al,$0x10					# batch done
 *	jmp top
 */
static const uint8_t guest_code[] = {
	0x49, 0x89, 0xd2, 0x4c, 0x89, 0xc8, 0x48, 0xc1, 0xe0, 0x0c, 0x48, 0x01,
	0xf8, 0x49, 0x89, 0xc3, 0x49, 0xc1, 0xeb, 0x0c, 0x4c, 0x89, 0x18, 0x49,
	0xff, 0xc0, 0x4c, 0x89, 0x40, 0x08, 0x49, 0x01, 0xc9, 0x49, 0x39, 0xf1,
	0x72, 0x03, 0x49, 0x29, 0xf1, 0x49, 0xff, 0xca, 0x75, 0xd5, 0xe6, 0x10,
	0xeb, 0xce,
};

struct testvm_vcpu {
	struct testvm *vm;
	unsigned int idx;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	/* Under vm->lock. */
	bool parked;
	bool exited;
	int error;
	uint64_t counter;
	uint64_t next;
	bool state_dirty;	/* counter/next to be loaded into the regs */
	/* The vCPU thread's own. */
	uint64_t paced;		/* pages since the pacing restarted */
	struct timespec pace_start;
};

struct testvm {
	struct testvm_config cfg;
	int kvm_fd, vm_fd, ram_fd;
	void *ram, *fw;
	size_t run_size;
	uint64_t share;		/* pages per vCPU */
	testvm_ring_full_fn ring_full;
	void *ring_full_opaque;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_req;
	bool stop;
	uint64_t written;	/* atomic */
	struct testvm_vcpu vcpus[];
};

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

static int kvm_enable_ring(struct testvm *vm)
{
	struct kvm_enable_cap cap = { 0 };
	uint32_t n = vm->cfg.dirty_ring_entries;

	if (!n)
		return 0;
	if (n & (n - 1))
		return -EINVAL;
	cap.cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, cap.cap) <= 0)
		cap.cap = KVM_CAP_DIRTY_LOG_RING;
	cap.args[0] = (uint64_t)n * sizeof(struct kvm_dirty_gfn);
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap))
		return -errno;
	return 0;
}

static void build_firmware(struct testvm *vm)
{
	uint64_t *pml4 = (uint64_t *)((char *)vm->fw + FW_PML4);
	uint64_t *pdpt = (uint64_t *)((char *)vm->fw + FW_PDPT);
	uint64_t *pd = (uint64_t *)((char *)vm->fw + FW_PD);
	unsigned int i;

	pml4[0] = (FW_GPA + FW_PDPT) | PTE_P | PTE_RW | PTE_A;
	for (i = 0; i < MAP_GIB; i++)
		pdpt[i] = (FW_GPA + FW_PD + i * 0x1000ULL) | PTE_P | PTE_RW |
			  PTE_A;
	for (i = 0; i < MAP_GIB * 512; i++)
		pd[i] = (i * 2 * MIB) | PTE_P | PTE_RW | PTE_PS | PTE_A | PTE_D;
	memcpy((char *)vm->fw + FW_CODE, guest_code, sizeof(guest_code));
}

static int set_slot(struct testvm *vm, uint32_t slot, uint64_t gpa,
		    uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) ? -errno : 0;
}

static void seg64(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	if (type & 8)
		s->l = 1;	/* code */
	else
		s->db = 1;	/* data */
}

static int vcpu_setup(struct testvm *vm, struct testvm_vcpu *c,
		      struct kvm_cpuid2 *cpuid)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (cpuid && ioctl(c->fd, KVM_SET_CPUID2, cpuid))
		return -errno;
	if (ioctl(c->fd, KVM_GET_SREGS, &sregs))
		return -errno;
	sregs.cr0 = 0x80000021;		/* PG | NE | PE */
	sregs.cr4 = 0x220;		/* OSFXSR | PAE */
	sregs.efer = 0x500;		/* LMA | LME */
	sregs.cr3 = FW_GPA + FW_PML4;
	seg64(&sregs.cs, 0x8, 11);
	seg64(&sregs.ds, 0x10, 3);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.selector = 0x18;
	sregs.tr.limit = 0x67;
	sregs.tr.type = 11;
	sregs.tr.present = 1;
	memset(&sregs.ldt, 0, sizeof(sregs.ldt));
	sregs.ldt.unusable = 1;
	if (ioctl(c->fd, KVM_SET_SREGS, &sregs))
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = FW_GPA + FW_CODE;
	regs.rdi = c->idx * vm->share * TESTVM_PAGE_SIZE;
	regs.rsi = vm->cfg.working_set;
	regs.rdx = vm->cfg.batch;
	regs.rcx = vm->cfg.step;
	regs.r8 = c->counter;
	regs.r9 = c->next;
	if (ioctl(c->fd, KVM_SET_REGS, &regs))
		return -errno;
	return 0;
}

static struct kvm_cpuid2 *get_cpuid(int kvm_fd)
{
	unsigned int n = 100;
	struct kvm_cpuid2 *c;

	for (;;) {
		c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return NULL;
		c->nent = n;
		if (!ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c))
			return c;
		free(c);
		if (errno != E2BIG || n > 4000)
			return NULL;
		n *= 2;
	}
}

static int regs_load(struct testvm_vcpu *c)
{
	struct kvm_regs regs;

	if (ioctl(c->fd, KVM_GET_REGS, &regs))
		return -errno;
	regs.r8 = c->counter;
	regs.r9 = c->next;
	return ioctl(c->fd, KVM_SET_REGS, &regs) ? -errno : 0;
}

static int regs_save(struct testvm_vcpu *c)
{
	struct kvm_regs regs;

	if (ioctl(c->fd, KVM_GET_REGS, &regs))
		return -errno;
	c->counter = regs.r8;
	c->next = regs.r9;
	return 0;
}

static uint64_t ts_ns(const struct timespec *t)
{
	return t->tv_sec * 1000000000ULL + t->tv_nsec;
}

/*
 * Park while a pause is asked for, then pace: wait until the pages written
 * since the pacing restarted are due.  Called with vm->lock held.  Returns
 * false when the thread must stop.
 */
static bool vcpu_gate(struct testvm_vcpu *c)
{
	struct testvm *vm = c->vm;
	bool was_parked = false;
	struct timespec now, due;
	uint64_t due_ns;
	int err;

	for (;;) {
		if (vm->stop)
			return false;
		if (vm->pause_req) {
			if (!c->parked) {
				err = regs_save(c);
				if (err) {
					c->error = err;
					return false;
				}
				c->parked = true;
				pthread_cond_broadcast(&vm->cond);
			}
			was_parked = true;
			pthread_cond_wait(&vm->cond, &vm->lock);
			continue;
		}
		if (was_parked) {
			c->parked = false;
			if (c->state_dirty) {
				err = regs_load(c);
				if (err) {
					c->error = err;
					return false;
				}
				c->state_dirty = false;
			}
			c->paced = 0;
			clock_gettime(CLOCK_MONOTONIC, &c->pace_start);
			was_parked = false;
		}
		if (!vm->cfg.rate)
			return true;
		due_ns = ts_ns(&c->pace_start) +
			 c->paced * 1000000000ULL / vm->cfg.rate;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (ts_ns(&now) >= due_ns)
			return true;
		due.tv_sec = due_ns / 1000000000ULL;
		due.tv_nsec = due_ns % 1000000000ULL;
		pthread_cond_timedwait(&vm->cond, &vm->lock, &due);
	}
}

static void *vcpu_thread(void *arg)
{
	struct testvm_vcpu *c = arg;
	struct testvm *vm = c->vm;
	char name[16];
	int err = 0;

	/* For top -H, gdb and the kernel's reports. */
	snprintf(name, sizeof(name), "testvm-vcpu%u", c->idx);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&vm->lock);
	while (vcpu_gate(c)) {
		pthread_mutex_unlock(&vm->lock);
		if (ioctl(c->fd, KVM_RUN, NULL)) {
			err = errno == EINTR || errno == EAGAIN ? 0 : -errno;
		} else {
			switch (c->run->exit_reason) {
			case KVM_EXIT_IO:
				if (c->run->io.port != WORKLOAD_PORT) {
					err = -EPROTO;
					break;
				}
				c->paced += vm->cfg.batch;
				__atomic_add_fetch(&vm->written, vm->cfg.batch,
						   __ATOMIC_RELAXED);
				break;
			case KVM_EXIT_DIRTY_RING_FULL:
				err = vm->ring_full ?
				      vm->ring_full(vm->ring_full_opaque,
						    c->idx) : -ENOSPC;
				break;
			case KVM_EXIT_INTR:
				break;
			default:
				err = -EPROTO;
				break;
			}
		}
		if (err)
			fprintf(stderr, "testvm: vCPU %u stops: %s (last exit reason %u)\n",
				c->idx, strerror(-err), c->run->exit_reason);
		pthread_mutex_lock(&vm->lock);
		if (err) {
			c->error = err;
			break;
		}
	}
	/* Keep the counters exact for a pause that comes later. */
	if (!c->parked && !c->error && regs_save(c))
		c->error = -EIO;
	c->exited = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int testvm_create(const struct testvm_config *cfg, struct testvm **out)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct testvm *vm;
	unsigned int i;
	uint64_t pages;
	int err, flags;

	if (!cfg || !out || !cfg->nr_vcpus || cfg->nr_vcpus > TESTVM_MAX_VCPUS ||
	    !cfg->ram_size || cfg->ram_size % (2 * MIB) ||
	    cfg->ram_size > FW_GPA)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm) + cfg->nr_vcpus * sizeof(vm->vcpus[0]));
	if (!vm)
		return -ENOMEM;
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = vm->ram_fd = -1;
	vm->ram = vm->fw = MAP_FAILED;
	pthread_mutex_init(&vm->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&vm->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	vm->pause_req = true;
	for (i = 0; i < cfg->nr_vcpus; i++) {
		vm->vcpus[i].fd = -1;
		vm->vcpus[i].run = MAP_FAILED;
	}

	pages = cfg->ram_size / TESTVM_PAGE_SIZE;
	vm->share = pages / cfg->nr_vcpus;
	if (!vm->share) {
		err = -EINVAL;
		goto fail;
	}
	if (!vm->cfg.working_set || vm->cfg.working_set > vm->share)
		vm->cfg.working_set = vm->share;
	if (!vm->cfg.batch)
		vm->cfg.batch = 64;
	if (!vm->cfg.step)
		vm->cfg.step = 1;
	vm->cfg.step %= vm->cfg.working_set;
	if (!vm->cfg.step)
		vm->cfg.step = 1;
	while (gcd64(vm->cfg.step, vm->cfg.working_set) != 1)
		vm->cfg.step++;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		err = -errno;
		goto fail;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		err = -errno;
		goto fail;
	}
	err = kvm_enable_ring(vm);
	if (err)
		goto fail;

	if (cfg->memfd) {
		vm->ram_fd = memfd_create("testvm-ram", MFD_CLOEXEC);
		if (vm->ram_fd < 0 || ftruncate(vm->ram_fd, cfg->ram_size)) {
			err = -errno;
			goto fail;
		}
		vm->ram = mmap(NULL, cfg->ram_size, PROT_READ | PROT_WRITE,
			       MAP_SHARED, vm->ram_fd, 0);
	} else {
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
		vm->ram = mmap(NULL, cfg->ram_size, PROT_READ | PROT_WRITE,
			       flags, -1, 0);
	}
	if (vm->ram == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	vm->fw = mmap(NULL, FW_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->fw == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	build_firmware(vm);
	err = set_slot(vm, TESTVM_RAM_SLOT, 0, cfg->ram_size, vm->ram);
	if (!err)
		err = set_slot(vm, FW_SLOT, FW_GPA, FW_SIZE, vm->fw);
	if (err)
		goto fail;

	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)vm->run_size <= 0) {
		err = -EIO;
		goto fail;
	}
	cpuid = get_cpuid(vm->kvm_fd);
	for (i = 0; i < cfg->nr_vcpus; i++) {
		struct testvm_vcpu *c = &vm->vcpus[i];

		c->vm = vm;
		c->idx = i;
		c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (c->fd < 0) {
			err = -errno;
			goto fail;
		}
		c->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE,
			      MAP_SHARED, c->fd, 0);
		if (c->run == MAP_FAILED) {
			err = -errno;
			goto fail;
		}
		err = vcpu_setup(vm, c, cpuid);
		if (err)
			goto fail;
	}
	free(cpuid);
	cpuid = NULL;
	for (i = 0; i < cfg->nr_vcpus; i++) {
		err = -pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread,
				      &vm->vcpus[i]);
		if (err)
			goto fail;
		vm->vcpus[i].thread_started = true;
	}
	/* Wait until every vCPU has parked: the counters are then valid. */
	err = testvm_pause(vm);
	if (err)
		goto fail;
	*out = vm;
	return 0;
fail:
	free(cpuid);
	testvm_destroy(vm);
	return err;
}

void testvm_destroy(struct testvm *vm)
{
	unsigned int i;

	if (!vm)
		return;
	pthread_mutex_lock(&vm->lock);
	vm->stop = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->cfg.nr_vcpus; i++) {
		struct testvm_vcpu *c = &vm->vcpus[i];

		if (c->thread_started)
			pthread_join(c->thread, NULL);
		if (c->run != MAP_FAILED)
			munmap(c->run, vm->run_size);
		if (c->fd >= 0)
			close(c->fd);
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->ram != MAP_FAILED)
		munmap(vm->ram, vm->cfg.ram_size);
	if (vm->fw != MAP_FAILED)
		munmap(vm->fw, FW_SIZE);
	if (vm->ram_fd >= 0)
		close(vm->ram_fd);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

void testvm_set_ring_full_handler(struct testvm *vm, testvm_ring_full_fn fn,
				  void *opaque)
{
	vm->ring_full = fn;
	vm->ring_full_opaque = opaque;
}

int testvm_resume(struct testvm *vm)
{
	unsigned int i;
	int err = 0;

	pthread_mutex_lock(&vm->lock);
	for (i = 0; i < vm->cfg.nr_vcpus; i++)
		if (vm->vcpus[i].error && !err)
			err = vm->vcpus[i].error;
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return err;
}

int testvm_pause(struct testvm *vm)
{
	unsigned int i, n;
	int err = 0;

	pthread_mutex_lock(&vm->lock);
	vm->pause_req = true;
	pthread_cond_broadcast(&vm->cond);
	for (;;) {
		for (i = 0, n = 0; i < vm->cfg.nr_vcpus; i++) {
			struct testvm_vcpu *c = &vm->vcpus[i];

			if (!c->thread_started || c->parked || c->exited)
				n++;
		}
		if (n == vm->cfg.nr_vcpus)
			break;
		pthread_cond_wait(&vm->cond, &vm->lock);
	}
	for (i = 0; i < vm->cfg.nr_vcpus; i++)
		if (vm->vcpus[i].error && !err)
			err = vm->vcpus[i].error;
	pthread_mutex_unlock(&vm->lock);
	return err;
}

void *testvm_ram(const struct testvm *vm)
{
	return vm->ram;
}

uint64_t testvm_ram_size(const struct testvm *vm)
{
	return vm->cfg.ram_size;
}

int testvm_ram_fd(const struct testvm *vm)
{
	return vm->ram_fd;
}

int testvm_vm_fd(const struct testvm *vm)
{
	return vm->vm_fd;
}

int testvm_vcpu_fd(const struct testvm *vm, unsigned int vcpu)
{
	return vcpu < vm->cfg.nr_vcpus ? vm->vcpus[vcpu].fd : -1;
}

unsigned int testvm_nr_vcpus(const struct testvm *vm)
{
	return vm->cfg.nr_vcpus;
}

uint32_t testvm_dirty_ring_entries(const struct testvm *vm)
{
	return vm->cfg.dirty_ring_entries;
}

void testvm_fill_random(struct testvm *vm, uint64_t seed)
{
	uint64_t *p = vm->ram, n = vm->cfg.ram_size / 8, i;
	uint64_t x = seed | 1;

	for (i = 0; i < n; i++) {
		/* xorshift64* */
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = x * 0x2545F4914F6CDD1DULL;
	}
}

uint64_t testvm_counter(const struct testvm *vm, unsigned int vcpu)
{
	return vcpu < vm->cfg.nr_vcpus ? vm->vcpus[vcpu].counter : 0;
}

uint64_t testvm_pages_written(const struct testvm *vm)
{
	return __atomic_load_n(&vm->written, __ATOMIC_RELAXED);
}

int testvm_get_cpu_state(const struct testvm *vm, unsigned int vcpu,
			 struct testvm_cpu_state *st)
{
	if (vcpu >= vm->cfg.nr_vcpus)
		return -EINVAL;
	st->counter = vm->vcpus[vcpu].counter;
	st->next = vm->vcpus[vcpu].next;
	return 0;
}

int testvm_set_cpu_state(struct testvm *vm, unsigned int vcpu,
			 const struct testvm_cpu_state *st)
{
	struct testvm_vcpu *c;

	if (vcpu >= vm->cfg.nr_vcpus || st->next >= vm->cfg.working_set)
		return -EINVAL;
	c = &vm->vcpus[vcpu];
	pthread_mutex_lock(&vm->lock);
	c->counter = st->counter;
	c->next = st->next;
	c->state_dirty = true;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int testvm_page_owner(const struct testvm *vm, uint64_t page)
{
	uint64_t v = page / vm->share;

	if (page >= vm->cfg.ram_size / TESTVM_PAGE_SIZE ||
	    v >= vm->cfg.nr_vcpus)
		return -1;
	return (int)v;
}

bool testvm_page_stamp(const struct testvm *vm, uint64_t page,
		       uint64_t *counter)
{
	const uint64_t *p;

	if (page >= vm->cfg.ram_size / TESTVM_PAGE_SIZE)
		return false;
	p = (const uint64_t *)((const char *)vm->ram +
			       page * TESTVM_PAGE_SIZE);
	if (p[0] != page || testvm_page_owner(vm, page) < 0)
		return false;
	*counter = p[1];
	return true;
}

uint64_t testvm_check_stamps(const struct testvm *vm)
{
	uint64_t page, counter, bad = 0;
	unsigned int v;

	for (v = 0; v < vm->cfg.nr_vcpus; v++) {
		for (page = v * vm->share;
		     page < v * vm->share + vm->cfg.working_set; page++) {
			if (!testvm_page_stamp(vm, page, &counter))
				continue;
			if (counter > vm->vcpus[v].counter)
				bad++;
		}
	}
	return bad;
}

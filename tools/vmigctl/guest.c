// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmigctl migrate send|recv --guest: a guest's RAM migrated in the same
 * libvmig session as the devices (vmig_session_add_ram()).
 *
 * Source: a tools/testvm guest of SIZE bytes with one vCPU and the KVM
 * dirty ring (GUEST_RING entries).  Its RAM starts as random data; the
 * vCPU writes RATE pages/s in a working set of a quarter of the RAM, so
 * precopy has pages to send again.  The dirty ring tracks it from before
 * the session connects; the session's switchover() pauses the vCPU right
 * before the devices stop.  If the migration fails after that, the vCPU is
 * resumed: a source whose migration failed goes on running.
 *
 * Destination: anonymous memory of SIZE bytes, which the session fills.
 *
 * Each side ends with the SHA-256 of the whole RAM (nettle): the source's
 * with the vCPU stopped, the destination's once every page is in.  The two
 * must be equal.
 *
 * --postcopy: the session's RAM switches over to postcopy (also on a
 * STUCK verdict); after the session the source (vCPU still paused) runs
 * the postcopy source and the destination the postcopy destination on the
 * session's listening socket, and the destination's checksum is taken
 * once postcopy has placed every page.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "testvm.h"
#include "vmig.h"
#include "vmigctl.h"

#define GUEST_VCPUS		1
#define GUEST_RING		4096	/* dirty ring entries per vCPU */
#define GUEST_BATCH		16	/* pages per exit to the VMM */
#define GUEST_STEP		97	/* page stride of the workload */
#define GUEST_RAM_CHANNELS	2
#define GUEST_ALIGN		(2ULL << 20)
#define GUEST_MAX		(63ULL << 30)	/* testvm's limit */
#define SUM_SHOWN		16	/* hex digits in the human output */
#define PC_TRIES		4	/* postcopy: first run + 3 resumes */
#define PC_RETRY_MS		1000	/* source: pause between runs */

struct vmigctl_guest {
	bool source;
	uint64_t size;
	uint64_t rate;			/* source: pages/s per vCPU */
	uint64_t working_set;		/* source: pages per vCPU */
	bool postcopy;			/* --postcopy */
	uint64_t max_bandwidth;		/* source: precopy bytes/s */
	uint64_t downtime_ns;		/* source: the limit (0: default) */

	/* source */
	struct testvm *vm;
	struct vmig_ram *ram;
	bool paused;			/* by the switchover */
	int pause_err;
	bool resumed;			/* after a failure */
	int resume_err;
	uint64_t written;		/* pages the vCPU wrote */

	/* destination */
	void *mem;
	struct vmig_ram_dest *dest;

	/* both, once the session ran */
	bool failed;
	struct vmig_session_ram_stats st;
	bool have_sum;
	char sum[SHA256_DIGEST_SIZE * 2 + 1];

	/* --postcopy, once it ran */
	bool pc_ran;
	int pc_err;
	unsigned int pc_runs;		/* src_run calls / dest accepts */
	struct vmig_postcopy_src_stats pcs;
	struct vmig_postcopy_dest_stats pcd;
};

/* ------------------------------------------------------------ parsing */

int vmigctl_guest_parse(const char *arg, bool source, uint64_t *size,
			uint64_t *rate)
{
	const char *comma = strchr(arg, ',');
	char buf[64], *end;
	unsigned long long v;
	int ret;

	*rate = VMIGCTL_GUEST_RATE;
	if (comma && !source) {
		vmigctl_error("--guest: recv takes SIZE only (RATE is the source's)");
		return -EINVAL;
	}
	if ((comma ? (size_t)(comma - arg) : strlen(arg)) >= sizeof(buf)) {
		vmigctl_error("--guest: bad size \"%s\"", arg);
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%.*s",
		 (int)(comma ? comma - arg : (long)strlen(arg)), arg);
	ret = vmigctl_parse_size(buf, size);
	if (ret) {
		vmigctl_error("--guest: bad size \"%s\": %s", buf,
			      strerror(-ret));
		return -EINVAL;
	}
	if (!*size || *size % GUEST_ALIGN || *size > GUEST_MAX) {
		vmigctl_error("--guest: SIZE must be a multiple of 2M, 2M to 63G");
		return -EINVAL;
	}
	if (!comma)
		return 0;
	errno = 0;
	v = strtoull(comma + 1, &end, 10);
	if (!isdigit((unsigned char)comma[1]) || errno || *end ||
	    v > 100000000ULL) {
		vmigctl_error("--guest: bad rate \"%s\" (pages/s, 0..100000000)",
			      comma + 1);
		return -EINVAL;
	}
	*rate = v;
	return 0;
}

/* ------------------------------------------------------------- set-up */

static int ring_full(void *opaque, unsigned int vcpu)
{
	return vmig_ram_ring_full(opaque, vcpu);
}

/* /dev/kvm usable?  If not, say why in terms of what to do about it. */
static int check_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int err;

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	err = errno;
	if (err == ENOENT || err == ENODEV || err == ENXIO)
		vmigctl_error("--guest: /dev/kvm: %s: the source's guest needs KVM (load kvm_intel or kvm_amd; in a VM, nested virtualization must be on)",
			      strerror(err));
	else if (err == EACCES || err == EPERM)
		vmigctl_error("--guest: /dev/kvm: %s: the source's guest needs read-write access to it (e.g. group kvm)",
			      strerror(err));
	else
		vmigctl_error("--guest: /dev/kvm: %s", strerror(err));
	return -err;
}

static uint64_t random_seed(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), 0) == sizeof(seed))
		return seed;
	return (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
}

static int new_source(struct vmigctl_guest *g)
{
	struct testvm_config cfg = {
		.ram_size = g->size,
		.nr_vcpus = GUEST_VCPUS,
		.dirty_ring_entries = GUEST_RING,
		.rate = g->rate,
		.batch = GUEST_BATCH,
		.step = GUEST_STEP,
	};
	struct vmig_ram_region r = { .fd = -1 };
	struct vmig_ram_kvm kvm = { 0 };
	int fds[GUEST_VCPUS], ret;
	unsigned int i;

	ret = check_kvm();
	if (ret)
		return ret;
	g->working_set = g->size / TESTVM_PAGE_SIZE / GUEST_VCPUS / 4;
	if (!g->working_set)
		g->working_set = 1;
	cfg.working_set = g->working_set;
	ret = testvm_create(&cfg, &g->vm);
	if (ret) {
		g->vm = NULL;
		vmigctl_error("--guest: creating the KVM guest: %s%s",
			      strerror(-ret), ret == -EINVAL ?
			      " (does this KVM have the dirty ring?)" : "");
		return ret;
	}
	testvm_fill_random(g->vm, random_seed());

	r.host_addr = testvm_ram(g->vm);
	r.size = g->size;
	r.kvm_slot = TESTVM_RAM_SLOT;
	for (i = 0; i < GUEST_VCPUS; i++)
		fds[i] = testvm_vcpu_fd(g->vm, i);
	kvm.vm_fd = testvm_vm_fd(g->vm);
	kvm.vcpu_fds = fds;
	kvm.nr_vcpus = GUEST_VCPUS;
	kvm.ring_entries = GUEST_RING;
	ret = vmig_ram_new(&r, 1, &kvm, &g->ram);
	if (ret) {
		g->ram = NULL;
		vmigctl_error("--guest: registering the guest RAM: %s",
			      strerror(-ret));
		return ret;
	}
	testvm_set_ring_full_handler(g->vm, ring_full, g->ram);
	ret = vmig_ram_track_start(g->ram, VMIG_TRACK_RING);
	if (ret) {
		vmigctl_error("--guest: dirty ring tracking: %s",
			      strerror(-ret));
		return ret;
	}
	ret = testvm_resume(g->vm);
	if (ret) {
		vmigctl_error("--guest: starting the vCPU: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

static int new_dest(struct vmigctl_guest *g)
{
	struct vmig_ram_region r = { .fd = -1, .kvm_slot = -1 };
	int ret;

	g->mem = mmap(NULL, g->size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g->mem == MAP_FAILED) {
		g->mem = NULL;
		ret = -errno;
		vmigctl_error("--guest: mapping %llu bytes: %s",
			      (unsigned long long)g->size, strerror(-ret));
		return ret;
	}
	r.host_addr = g->mem;
	r.size = g->size;
	ret = vmig_ram_dest_new(&r, 1, &g->dest);
	if (ret) {
		g->dest = NULL;
		vmigctl_error("--guest: the destination's RAM: %s",
			      strerror(-ret));
	}
	return ret;
}

int vmigctl_guest_new(bool source, uint64_t size, uint64_t rate,
		      struct vmigctl_guest **out)
{
	struct vmigctl_guest *g;
	int ret;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->source = source;
	g->size = size;
	g->rate = rate;
	ret = source ? new_source(g) : new_dest(g);
	if (ret) {
		vmigctl_guest_free(g);
		return ret;
	}
	*out = g;
	return 0;
}

void vmigctl_guest_free(struct vmigctl_guest *g)
{
	if (!g)
		return;
	if (g->vm)
		testvm_pause(g->vm);
	vmig_ram_free(g->ram);		/* stops tracking */
	testvm_destroy(g->vm);
	vmig_ram_dest_free(g->dest);
	if (g->mem)
		munmap(g->mem, g->size);
	free(g);
}

/* ------------------------------------------------------------ session */

/* Right before the devices stop, on the session's thread. */
static int switchover(void *opaque)
{
	struct vmigctl_guest *g = opaque;

	g->paused = true;
	g->pause_err = testvm_pause(g->vm);
	if (g->pause_err)
		vmigctl_error("the guest's vCPU failed before the switchover: %s",
			      strerror(-g->pause_err));
	return g->pause_err;
}

void vmigctl_guest_config(struct vmigctl_guest *g,
			  struct vmig_session_config *cfg)
{
	if (!g->source)
		return;
	cfg->switchover = switchover;
	cfg->opaque = g;
}

void vmigctl_guest_set_options(struct vmigctl_guest *g, bool postcopy,
			       uint64_t max_bandwidth, uint64_t downtime_ns)
{
	g->postcopy = postcopy;
	g->max_bandwidth = max_bandwidth;
	g->downtime_ns = downtime_ns;
}

int vmigctl_guest_add(struct vmigctl_guest *g, struct vmig_session *s)
{
	struct vmig_session_ram r = { 0 };
	int ret;

	if (g->source) {
		r.ram = g->ram;
		r.channels = GUEST_RAM_CHANNELS;
		r.precopy.max_bandwidth = g->max_bandwidth;
		r.downtime_ns = g->downtime_ns;
	} else {
		r.dest = g->dest;
	}
	r.postcopy = g->postcopy;
	ret = vmig_session_add_ram(s, &r);
	if (ret)
		vmigctl_error("--guest: adding the RAM to the session: %s",
			      strerror(-ret));
	return ret;
}

static void checksum(struct vmigctl_guest *g)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;
	const uint8_t *p = g->source ? testvm_ram(g->vm) : g->mem;
	unsigned int i;

	sha256_init(&ctx);
	sha256_update(&ctx, g->size, p);
	sha256_digest(&ctx, sizeof(d), d);
	for (i = 0; i < sizeof(d); i++) {
		g->sum[2 * i] = hex[d[i] >> 4];
		g->sum[2 * i + 1] = hex[d[i] & 15];
	}
	g->sum[2 * i] = '\0';
	g->have_sum = true;
}

bool vmigctl_guest_postcopy(const struct vmigctl_guest *g)
{
	return g->postcopy;
}

void vmigctl_guest_end(struct vmigctl_guest *g, struct vmig_session *s,
		       int ret)
{
	if (s)
		vmig_session_get_ram_stats(s, &g->st);
	g->failed = ret != 0;
	if (!g->source) {
		/*
		 * The source's choice, from the session's CONFIG: with
		 * postcopy, the RAM is all in only after it.
		 */
		if (!ret)
			g->postcopy = g->st.postcopy;
		if (!ret && !g->postcopy)
			checksum(g);
		return;
	}
	if (ret) {
		/* The source goes on running, as its devices do. */
		if (g->paused) {
			g->resume_err = testvm_resume(g->vm);
			g->resumed = !g->resume_err;
		}
		g->written = testvm_pages_written(g->vm);
		return;
	}
	/* Migrated: the vCPU is stopped (switchover()), RAM is final. */
	g->written = testvm_pages_written(g->vm);
	if (g->postcopy)
		vmig_ram_sync(g->ram);	/* the last harvest: the discards */
	vmig_ram_track_stop(g->ram);
	checksum(g);
}

/* ----------------------------------------------------------- postcopy */

static bool pc_retryable(int err)
{
	/* The destination failed for good, or we did: no resume helps. */
	return err != -EPROTO && err != -EINVAL && err != -ENOMEM &&
	       err != -EIO && err != -EBADMSG;
}

int vmigctl_guest_postcopy_src(struct vmigctl_guest *g,
			       const struct vmig_session_config *cfg,
			       const struct sockaddr *addr, int addrlen)
{
	struct vmig_postcopy_src *pc;
	int ret;

	g->pc_ran = true;
	ret = vmig_ram_postcopy_src_new(g->ram, cfg, NULL, &pc);
	if (ret) {
		g->pc_err = ret;
		vmigctl_error("--postcopy: the postcopy source: %s",
			      strerror(-ret));
		return ret;
	}
	for (;;) {
		g->pc_runs++;
		ret = vmig_ram_postcopy_src_run(pc, addr, addrlen);
		if (!ret || g->pc_runs >= PC_TRIES || !pc_retryable(ret))
			break;
		vmigctl_error("--postcopy: run %u ended: %s; resuming in %d ms",
			      g->pc_runs, strerror(-ret), PC_RETRY_MS);
		usleep(PC_RETRY_MS * 1000);
	}
	vmig_ram_postcopy_src_get_stats(pc, &g->pcs);
	vmig_ram_postcopy_src_free(pc);
	g->pc_err = ret;
	if (ret)
		vmigctl_error("--postcopy: gave up after %u run%s: %s",
			      g->pc_runs, g->pc_runs == 1 ? "" : "s",
			      strerror(-ret));
	return ret;
}

int vmigctl_guest_postcopy_dest(struct vmigctl_guest *g,
				const struct vmig_session_config *cfg,
				int listen_fd)
{
	struct vmig_postcopy_dest *pc;
	bool connected = false;
	int ret;

	g->pc_ran = true;
	ret = vmig_ram_postcopy_dest_new(g->dest, cfg, &pc);
	if (ret) {
		g->pc_err = ret;
		vmigctl_error("--postcopy: the postcopy destination: %s",
			      strerror(-ret));
		return ret;
	}
	for (;;) {
		g->pc_runs++;
		ret = vmig_ram_postcopy_dest_accept(pc, listen_fd);
		/* A vCPU could run from here on; this one has none. */
		if (!ret) {
			connected = true;
			ret = vmig_ram_postcopy_dest_wait(pc);
		}
		if (!ret || g->pc_runs >= PC_TRIES || !pc_retryable(ret))
			break;
		/*
		 * No source within --timeout (e.g. send without --postcopy):
		 * waiting longer would not bring one.
		 */
		if (ret == -ETIMEDOUT && !connected) {
			vmigctl_error("--postcopy: no postcopy connection from the source");
			break;
		}
		vmigctl_error("--postcopy: connection %u ended: %s; accepting again (paused)",
			      g->pc_runs, strerror(-ret));
	}
	vmig_ram_postcopy_dest_get_stats(pc, &g->pcd);
	g->pc_err = ret;
	if (ret) {
		/*
		 * Pages are missing and the RAM is still registered: do not
		 * touch it (a read would wait for ever), abandon it.
		 */
		vmigctl_error("--postcopy: gave up after %u connection%s: %s; the guest RAM is incomplete",
			      g->pc_runs, g->pc_runs == 1 ? "" : "s",
			      strerror(-ret));
		vmig_ram_postcopy_dest_free(pc);
		return ret;
	}
	vmig_ram_postcopy_dest_free(pc);
	checksum(g);
	return 0;
}

const char *vmigctl_guest_failure_note(const struct vmigctl_guest *g)
{
	if (!g || !g->source)
		return NULL;
	if (g->pc_ran && g->pc_err)
		return "the guest's vCPU stays stopped: postcopy did not finish, part of its RAM is only here";
	if (g->resumed)
		return "the guest's vCPU was stopped at the switchover and runs again";
	if (g->paused)
		return "the guest's vCPU was stopped at the switchover and could not be resumed";
	return "the guest was not stopped and runs on";
}

/* ------------------------------------------------------------ printing */

static const char *verdict_name(int v)
{
	switch (v) {
	case VMIG_CONVERGE_CONTINUE:
		return "continue";
	case VMIG_CONVERGE_SWITCHOVER:
		return "switchover";
	case VMIG_CONVERGE_STUCK:
		return "stuck";
	default:
		return NULL;		/* none yet */
	}
}

void vmigctl_guest_print(const struct vmigctl_guest *g, FILE *f)
{
	const struct vmig_session_ram_stats *st = &g->st;
	const struct vmig_converge_info *in = &st->info;
	char a[32], b[32];

	fprintf(f, "  guest RAM:      %s (%llu pages)",
		vmigctl_format_size(g->size, a, sizeof(a)),
		(unsigned long long)(g->size / TESTVM_PAGE_SIZE));
	if (g->source)
		fprintf(f, ", %u vCPU writing %llu pages/s in %llu pages; it wrote %llu",
			GUEST_VCPUS, (unsigned long long)g->rate,
			(unsigned long long)g->working_set,
			(unsigned long long)g->written);
	fputc('\n', f);
	fprintf(f, "  RAM pages:      %llu %s (%llu zero pages), %s in packets",
		(unsigned long long)st->pages,
		g->source ? "sent" : "received",
		(unsigned long long)st->zero_pages,
		vmigctl_format_size(st->bytes, a, sizeof(a)));
	if (g->source)
		fprintf(f, " over %d RAM channels", GUEST_RAM_CHANNELS);
	fputc('\n', f);
	if (g->source && !g->failed) {
		fprintf(f, "  RAM at stop:    %llu pages after the switchover, last pass %.3f ms\n",
			(unsigned long long)st->final_pages,
			st->final_ns / 1e6);
		fprintf(f, "  model at stop:  %s RAM + %s device state pending, ",
			vmigctl_format_size(in->ram_bytes, a, sizeof(a)),
			vmigctl_format_size(in->device_bytes, b, sizeof(b)));
		/* No bandwidth measured: the expected downtime is "never". */
		if (in->expected_downtime_ns == UINT64_MAX)
			fprintf(f, "no bandwidth measured, expected downtime unknown");
		else
			fprintf(f, "%.1f MB/s, expected downtime %.3f ms",
				in->bandwidth / 1e6,
				in->expected_downtime_ns / 1e6);
		fprintf(f, " (limit %.0f ms)\n", in->downtime_ns / 1e6);
		/*
		 * Without a fresh "fits", only --precopy-max-ms ends precopy
		 * (or, with --postcopy, a STUCK verdict).
		 */
		fprintf(f, "  last verdict:   %s%s\n", verdict_name(st->verdict) ?
			verdict_name(st->verdict) : "none yet",
			st->verdict == VMIG_CONVERGE_SWITCHOVER ?
			" (the rest fit the limit)" :
			g->postcopy && st->verdict == VMIG_CONVERGE_STUCK ?
			" (not converging: switched over to postcopy)" :
			" (not converged: switched over at --precopy-max-ms)");
	}
	if (g->pc_ran && g->source)
		fprintf(f, "  postcopy:       %llu pages discarded, %llu held by the destination, %llu pushed, %llu requests (%llu pages sent for them), %llu zero pages, %s in %llu connection%s%s\n",
			(unsigned long long)g->pcs.discarded,
			(unsigned long long)g->pcs.have,
			(unsigned long long)g->pcs.pushed,
			(unsigned long long)g->pcs.requests,
			(unsigned long long)g->pcs.requested_sent,
			(unsigned long long)g->pcs.zero_pages,
			vmigctl_format_size(g->pcs.bytes, a, sizeof(a)),
			(unsigned long long)g->pcs.connects,
			g->pcs.connects == 1 ? "" : "s",
			g->pc_err ? ", FAILED" : "");
	else if (g->pc_ran)
		fprintf(f, "  postcopy:       %llu pages present, %llu discarded, %llu placed, %llu zero, %llu duplicates, %llu eexist, %llu faults, %s in %u connection%s (%llu breaks)%s\n",
			(unsigned long long)g->pcd.present,
			(unsigned long long)g->pcd.discarded,
			(unsigned long long)g->pcd.placed,
			(unsigned long long)g->pcd.zero_placed,
			(unsigned long long)g->pcd.duplicates,
			(unsigned long long)g->pcd.eexist,
			(unsigned long long)g->pcd.faults,
			vmigctl_format_size(g->pcd.bytes, a, sizeof(a)),
			g->pc_runs, g->pc_runs == 1 ? "" : "s",
			(unsigned long long)g->pcd.breaks,
			g->pcd.done ? "" : ", NOT DONE");
	if (g->have_sum)
		fprintf(f, "  guest sha256:   %.*s (first %d hex digits of the SHA-256 of all guest RAM, %s)\n",
			SUM_SHOWN, g->sum, SUM_SHOWN, g->source ?
			"vCPU stopped" : g->postcopy ?
			"every page in, after postcopy" : "every page in");
}

void vmigctl_guest_print_json(const struct vmigctl_guest *g, FILE *f)
{
	const struct vmig_session_ram_stats *st = &g->st;
	const struct vmig_converge_info *in = &st->info;

	fprintf(f, "{\"ram_size\":%llu,\"pages\":%llu,\"zero_pages\":%llu,\"bytes\":%llu,",
		(unsigned long long)g->size, (unsigned long long)st->pages,
		(unsigned long long)st->zero_pages,
		(unsigned long long)st->bytes);
	if (g->source) {
		fprintf(f, "\"vcpus\":%d,\"rate\":%llu,\"working_set_pages\":%llu,\"pages_written\":%llu,\"ram_channels\":%d,",
			GUEST_VCPUS, (unsigned long long)g->rate,
			(unsigned long long)g->working_set,
			(unsigned long long)g->written, GUEST_RAM_CHANNELS);
		fprintf(f, "\"final_pages\":%llu,\"final_ms\":%.3f,",
			(unsigned long long)st->final_pages,
			st->final_ns / 1e6);
		fprintf(f, "\"model\":{\"verdict\":");
		if (verdict_name(st->verdict))
			fprintf(f, "\"%s\"", verdict_name(st->verdict));
		else
			fprintf(f, "null");
		fprintf(f, ",\"ram_bytes\":%llu,\"device_bytes\":%llu,\"pending_bytes\":%llu,\"bandwidth\":%llu,\"expected_downtime_ms\":",
			(unsigned long long)in->ram_bytes,
			(unsigned long long)in->device_bytes,
			(unsigned long long)in->pending_bytes,
			(unsigned long long)in->bandwidth);
		if (in->expected_downtime_ns == UINT64_MAX)
			fprintf(f, "null");	/* no bandwidth measured */
		else
			fprintf(f, "%.3f", in->expected_downtime_ns / 1e6);
		fprintf(f, ",\"downtime_limit_ms\":%.3f},",
			in->downtime_ns / 1e6);
		fprintf(f, "\"paused\":%s,\"resumed\":%s,",
			g->paused ? "true" : "false",
			g->resumed ? "true" : "false");
	}
	fprintf(f, "\"postcopy\":");
	if (!g->postcopy)
		fprintf(f, "null,");
	else if (!g->pc_ran)
		fprintf(f, "{\"ran\":false},");
	else if (g->source)
		fprintf(f, "{\"ran\":true,\"ok\":%s,\"discarded\":%llu,\"have\":%llu,\"pushed\":%llu,\"requests\":%llu,\"requested_sent\":%llu,\"zero_pages\":%llu,\"bytes\":%llu,\"connects\":%llu},",
			g->pc_err ? "false" : "true",
			(unsigned long long)g->pcs.discarded,
			(unsigned long long)g->pcs.have,
			(unsigned long long)g->pcs.pushed,
			(unsigned long long)g->pcs.requests,
			(unsigned long long)g->pcs.requested_sent,
			(unsigned long long)g->pcs.zero_pages,
			(unsigned long long)g->pcs.bytes,
			(unsigned long long)g->pcs.connects);
	else
		fprintf(f, "{\"ran\":true,\"ok\":%s,\"present\":%llu,\"discarded\":%llu,\"placed\":%llu,\"zero_placed\":%llu,\"duplicates\":%llu,\"eexist\":%llu,\"faults\":%llu,\"requests\":%llu,\"breaks\":%llu,\"bytes\":%llu,\"accepts\":%u,\"done\":%s},",
			g->pc_err ? "false" : "true",
			(unsigned long long)g->pcd.present,
			(unsigned long long)g->pcd.discarded,
			(unsigned long long)g->pcd.placed,
			(unsigned long long)g->pcd.zero_placed,
			(unsigned long long)g->pcd.duplicates,
			(unsigned long long)g->pcd.eexist,
			(unsigned long long)g->pcd.faults,
			(unsigned long long)g->pcd.requests,
			(unsigned long long)g->pcd.breaks,
			(unsigned long long)g->pcd.bytes, g->pc_runs,
			g->pcd.done ? "true" : "false");
	fprintf(f, "\"sha256\":");
	if (g->have_sum)
		fprintf(f, "\"%s\"}", g->sum);
	else
		fprintf(f, "null}");
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * bench_ram_migrate: guest RAM migration figures over loopback RAM
 * channels, with the destination in a forked process.  Not a test: it
 * prints figures (issue 6's closing note), but every migration it makes
 * is verified page by page, and a mismatch makes it exit non-zero.
 *
 * Part 1, live migration: for each size (GiB, arguments; 1 4 8 by
 * default) and each tracker (dirty ring, dirty bitmap), a testvm guest
 * whose RAM is filled with non-zero data (a per-page pattern, plus the
 * workload's stamps) dirties pages at a fixed rate (-r pages/s over a
 * working set of -w pages, 1 vCPU) while vmig_ram_precopy_run() sends its
 * RAM over -c RAM channels with a vmig_converge model (downtime limit -d
 * ms, bandwidth measured); then the vCPUs stop and
 * vmig_ram_precopy_complete() runs.  STUCK while the first pass still
 * runs is answered by running on; STUCK after it, by stopping anyway
 * (counted).  Prints the total migration time (connect to the
 * destination's acknowledgment), the downtime (vCPUs told to stop to the
 * acknowledgment), pages sent, rounds (the tracker syncs of
 * vmig_ram_precopy_run(), every sync_ms) and the dirty-sync cost per
 * round: vmig_ram_stats.sync_ns over vmig_ram_precopy_run() / rounds, the
 * CPU time of the ring's reaper passes and syncs, or of the bitmap's GET,
 * scan and CLEARs.  Medians of -n runs, each on a new guest.
 *
 * Part 2, throughput: a paused guest (its vCPUs never run) of -s GiB of
 * random data, migrated over -c channels (vmig_ram_precopy_stop(), so
 * pages are sent in place, unless -C; vmig_ram_precopy_run(), then
 * vmig_ram_precopy_complete()), against raw loopback TCP over as many
 * connections moving the same bytes from the same source RAM into the
 * same kind of destination memory, interleaved run by run; prints GB/s of
 * both (connections open to the last byte received / acknowledged), the
 * ratio and the CPU time both processes spent per GB.  Twice: with the
 * destination's memory prefaulted, and fresh (faulted in by the
 * transfer).
 *
 * The destination is a child forked at start-up, before any guest RAM
 * exists.  Its RAM is a memfd the parent creates for each run and passes
 * over a socketpair with the listening socket; the child prefaults it
 * (MADV_POPULATE_WRITE) unless it is to be fresh, serves the run, and the
 * parent then maps the memfd and compares it with the source page by
 * page.  Part 1 prefaults it unless -F is given.
 *
 *	bench_ram_migrate [-r rate] [-w pages] [-d ms] [-c channels]
 *			  [-n runs] [-s GiB] [-t ring|bitmap|both] [-p 1|2]
 *			  [-F] [-b pages] [-R] [-M] [-C] [GiB ...]
 *
 * -p 1 or -p 2 runs one part only; -s 0 skips part 2; -b sets
 * batch_pages; -R and -M leave out part 2's raw transfers or its
 * migrations (for profiling the other).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testvm.h"
#include "vmig.h"

#define PAGE		4096ULL
#define GIB		(1ULL << 30)
#define MS		1000000ULL
#define MAX_SIZES	8
#define MAX_RUNS	15
#define MAX_CHAN	16
#define RING_ENTRIES	4096
#define RAW_CHUNK	(1U << 20)

static struct {
	uint64_t rate;		/* guest pages/s */
	uint64_t working_set;	/* pages */
	uint64_t downtime_ms;
	unsigned int channels;
	unsigned int runs;
	uint64_t tput_gib;	/* part 2 size; 0: skip */
	bool ring, bitmap;
	bool part1, part2;
	bool fresh;		/* part 1: destination RAM not prefaulted */
	bool no_raw;		/* part 2 without the raw baseline */
	bool no_mig;		/* part 2 without the migration */
	bool copy;		/* part 2 copies pages (no precopy_stop()) */
	unsigned int batch;	/* pages per packet (0: the library's) */
} opt = {
	.rate = 20000,
	.working_set = 65536,
	.downtime_ms = 300,
	.channels = 4,
	.runs = 3,
	.tput_gib = 2,
	.ring = true,
	.bitmap = true,
	.part1 = true,
	.part2 = true,
};
/* Destination RAM populated (MADV_POPULATE_WRITE) before the next run. */
static bool prefault;

static const char secret[] = "bench_ram_migrate: a shared secret";
static bool mismatch;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void log_cb(enum vmig_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	fprintf(stderr, "libvmig[%d]: %s\n", level, msg);
}

/* CPU time of the whole process (every thread), ns. */
static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

/* CPU time of the calling thread, ns. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static void load_average(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");

	buf[0] = 0;
	if (f) {
		if (!fgets(buf, len, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
}

static void session_cfg(struct vmig_session_config *cfg)
{
	vmig_session_config_init(cfg);
	memcpy(cfg->session_id, "bench-ram-migr01", VMIG_SESSION_ID_LEN);
	cfg->secret = secret;
	cfg->secret_len = sizeof(secret) - 1;
	cfg->channels = opt.channels;
}

/* ------------------------------------------------ the destination child */

enum { OP_RAM = 1, OP_RAW = 2, OP_QUIT = 3 };

struct cmd {
	uint32_t op;
	uint32_t conns;		/* OP_RAW */
	uint64_t size;
	bool prefault;
};

struct reply {
	int32_t ret;
	uint64_t t_end;		/* CLOCK_MONOTONIC, ns */
	uint64_t cpu_ns;	/* CPU time the destination spent on it */
	struct vmig_ram_dest_stats st;
};

static int ctl_fd = -1;		/* parent's end of the socketpair */
static pid_t child;

static int send_fds(int sock, const void *msg, size_t len, const int *fds,
		    unsigned int nfds)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nfds) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EIO;
}

/* Receive one message and up to 2 fds; returns the fds received. */
static int recv_fds(int sock, void *msg, size_t len, int *fds)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int n;

	if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != (ssize_t)len)
		return -EIO;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return 0;
	n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	if (n > 2 || !fds)
		return -EIO;
	memcpy(fds, CMSG_DATA(c), n * sizeof(int));
	return n;
}

struct raw_rx {
	int fd;
	uint8_t *dst;
	uint64_t len;
	int err;
	pthread_t th;
};

static void *raw_rx_main(void *arg)
{
	struct raw_rx *r = arg;
	uint64_t done = 0;
	ssize_t n;

	while (done < r->len) {
		n = recv(r->fd, r->dst + done, r->len - done, 0);
		if (n <= 0) {
			r->err = n ? -errno : -ECONNRESET;
			break;
		}
		done += n;
	}
	return NULL;
}

/* Receive size bytes over conns connections into dst, slice by slice. */
static int child_raw(int lfd, uint8_t *dst, uint64_t size, unsigned int conns)
{
	struct raw_rx rx[MAX_CHAN];
	uint64_t slice = size / conns;
	unsigned int i, idx;
	int err = 0;

	for (i = 0; i < conns; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		/* The sender says which slice this connection carries. */
		if (fd < 0 || recv(fd, &idx, sizeof(idx), MSG_WAITALL) !=
			      sizeof(idx) || idx >= conns)
			return -EIO;
		rx[idx].fd = fd;
	}
	for (i = 0; i < conns; i++) {
		rx[i].dst = dst + i * slice;
		rx[i].len = i == conns - 1 ? size - i * slice : slice;
		rx[i].err = 0;
		pthread_create(&rx[i].th, NULL, raw_rx_main, &rx[i]);
	}
	for (i = 0; i < conns; i++) {
		pthread_join(rx[i].th, NULL);
		if (rx[i].err && !err)
			err = rx[i].err;
		close(rx[i].fd);
	}
	return err;
}

static void child_main(int sock)
{
	struct vmig_session_config scfg;
	struct vmig_ram_region r = { 0 };
	struct vmig_ram_dest *d;
	struct reply rep;
	struct cmd c;
	uint64_t cpu0;
	int fds[2];
	void *mem;

	session_cfg(&scfg);
	for (;;) {
		if (recv_fds(sock, &c, sizeof(c), fds) != 2)
			break;
		memset(&rep, 0, sizeof(rep));
		mem = mmap(NULL, c.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			   fds[0], 0);
		if (mem == MAP_FAILED) {
			rep.ret = -errno;
			goto answer;
		}
		if (c.prefault && madvise(mem, c.size, MADV_POPULATE_WRITE))
			rep.ret = -errno;
		if (c.op == OP_RAM) {
			r.host_addr = mem;
			r.size = c.size;
			r.fd = fds[0];
			r.kvm_slot = -1;
			if (!rep.ret)
				rep.ret = vmig_ram_dest_new(&r, 1, &d);
			/* Ready (or failed): the parent may connect. */
			send_fds(sock, &rep, sizeof(rep), NULL, 0);
			if (rep.ret)
				goto unmap;
			cpu0 = cpu_ns();
			rep.ret = vmig_ram_dest_serve(d, &scfg, fds[1]);
			rep.t_end = now_ns();
			rep.cpu_ns = cpu_ns() - cpu0;
			vmig_ram_dest_get_stats(d, &rep.st);
			vmig_ram_dest_free(d);
		} else {
			send_fds(sock, &rep, sizeof(rep), NULL, 0);
			if (rep.ret)
				goto unmap;
			cpu0 = cpu_ns();
			rep.ret = child_raw(fds[1], mem, c.size, c.conns);
			rep.t_end = now_ns();
			rep.cpu_ns = cpu_ns() - cpu0;
		}
unmap:
		munmap(mem, c.size);
answer:
		close(fds[0]);
		close(fds[1]);
		send_fds(sock, &rep, sizeof(rep), NULL, 0);
	}
	_exit(0);
}

static void start_child(void)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		die("socketpair: %s", strerror(errno));
	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (!child) {
		close(sv[0]);
		child_main(sv[1]);
	}
	close(sv[1]);
	ctl_fd = sv[0];
}

static void stop_child(void)
{
	struct cmd c = { .op = OP_QUIT };

	send_fds(ctl_fd, &c, sizeof(c), NULL, 0);
	waitpid(child, NULL, 0);
	close(ctl_fd);
}

/* One destination run: its memory, its listening socket, its address. */
struct dest {
	int memfd, lfd;
	uint64_t size;
	struct sockaddr_in addr;
};

static void dest_start(struct dest *d, uint32_t op, uint64_t size)
{
	struct cmd c = { .op = op, .conns = opt.channels, .size = size,
			 .prefault = prefault };
	socklen_t alen = sizeof(d->addr);
	struct reply rep;
	int fds[2];

	d->size = size;
	d->memfd = memfd_create("bench-dest-ram", MFD_CLOEXEC);
	if (d->memfd < 0 || ftruncate(d->memfd, size))
		die("destination memfd: %s", strerror(errno));
	d->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&d->addr, 0, sizeof(d->addr));
	d->addr.sin_family = AF_INET;
	d->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (d->lfd < 0 || bind(d->lfd, (void *)&d->addr, sizeof(d->addr)) ||
	    listen(d->lfd, 64) ||
	    getsockname(d->lfd, (void *)&d->addr, &alen))
		die("listen: %s", strerror(errno));
	fds[0] = d->memfd;
	fds[1] = d->lfd;
	if (send_fds(ctl_fd, &c, sizeof(c), fds, 2) ||
	    recv_fds(ctl_fd, &rep, sizeof(rep), NULL))
		die("destination process gone");
	if (rep.ret)
		die("destination setup: %s", strerror(-rep.ret));
}

static void dest_wait(struct dest *d, struct reply *rep)
{
	if (recv_fds(ctl_fd, rep, sizeof(*rep), NULL))
		die("destination process gone");
	close(d->lfd);
}

/*
 * Compare the destination's RAM with src page by page; returns the pages
 * that differ (and says so loudly).  Closes the memfd.
 */
static uint64_t dest_verify(struct dest *d, const uint8_t *src,
			    const char *what)
{
	uint64_t page, bad = 0, pages = d->size / PAGE;
	const uint8_t *dst;

	dst = mmap(NULL, d->size, PROT_READ, MAP_SHARED, d->memfd, 0);
	if (dst == MAP_FAILED)
		die("mapping the destination's RAM: %s", strerror(errno));
	for (page = 0; page < pages; page++) {
		const uint64_t *a = (const uint64_t *)(src + page * PAGE);
		const uint64_t *b = (const uint64_t *)(dst + page * PAGE);
		unsigned int w;

		if (!memcmp(a, b, PAGE))
			continue;
		for (w = 0; w < PAGE / 8 - 1 && a[w] == b[w]; w++)
			;
		if (bad < 8)
			fprintf(stderr,
				"MISMATCH: %s: page %llu differs at byte %u: source %016llx, destination %016llx\n",
				what, (unsigned long long)page, w * 8,
				(unsigned long long)a[w],
				(unsigned long long)b[w]);
		bad++;
	}
	munmap((void *)dst, d->size);
	close(d->memfd);
	if (bad) {
		fprintf(stderr,
			"MISMATCH: %s: %llu of %llu pages differ between source and destination\n",
			what, (unsigned long long)bad,
			(unsigned long long)pages);
		printf("# MISMATCH: %s: %llu pages differ\n", what,
		       (unsigned long long)bad);
		mismatch = true;
	}
	return bad;
}

/* --------------------------------------------------------- the source */

static int ring_full(void *opaque, unsigned int vcpu)
{
	return vmig_ram_ring_full(opaque, vcpu);
}

/* Every page non-zero and different: word i of page g. */
static void fill_pattern(struct testvm *vm, uint64_t seed)
{
	uint64_t *p = testvm_ram(vm), n = testvm_ram_size(vm) / 8, i;

	for (i = 0; i < n; i++)
		p[i] = (i + 1) * 0x9e3779b97f4a7c15ULL ^ seed;
}

struct source {
	struct testvm *vm;
	struct vmig_ram *ram;
	int vcpu_fd;
};

static void source_new(struct source *s, uint64_t size, bool ring,
		       bool random)
{
	struct testvm_config cfg = {
		.ram_size = size,
		.nr_vcpus = 1,
		.dirty_ring_entries = ring ? RING_ENTRIES : 0,
		.working_set = opt.working_set,
		.rate = opt.rate,
		.batch = 16,
		.step = 101,
	};
	struct vmig_ram_region r = { 0 };
	struct vmig_ram_kvm kvm = { 0 };
	int err;

	err = testvm_create(&cfg, &s->vm);
	if (err)
		die("testvm_create(%llu GiB): %s",
		    (unsigned long long)(size / GIB), strerror(-err));
	if (random)
		testvm_fill_random(s->vm, 0x5eed);
	else
		fill_pattern(s->vm, 0xa5a5a5a5a5a5a5a5ULL);
	r.host_addr = testvm_ram(s->vm);
	r.size = size;
	r.fd = -1;
	r.kvm_slot = TESTVM_RAM_SLOT;
	s->vcpu_fd = testvm_vcpu_fd(s->vm, 0);
	kvm.vm_fd = testvm_vm_fd(s->vm);
	kvm.vcpu_fds = &s->vcpu_fd;
	kvm.nr_vcpus = 1;
	kvm.ring_entries = cfg.dirty_ring_entries;
	err = vmig_ram_new(&r, 1, &kvm, &s->ram);
	if (err)
		die("vmig_ram_new: %s", strerror(-err));
	testvm_set_ring_full_handler(s->vm, ring_full, s->ram);
	err = vmig_ram_track_start(s->ram, ring ? VMIG_TRACK_RING :
						  VMIG_TRACK_BITMAP);
	if (err)
		die("vmig_ram_track_start(%s): %s", ring ? "ring" : "bitmap",
		    strerror(-err));
}

static void source_free(struct source *s)
{
	testvm_pause(s->vm);
	vmig_ram_free(s->ram);
	testvm_destroy(s->vm);
}

struct mig_result {
	int verdict;			/* VMIG_CONVERGE_* */
	uint64_t total_ns, downtime_ns, run_ns;
	uint64_t xfer_ns;		/* connected to acknowledgment */
	uint64_t sync_ns, syncs, dirtied;	/* over the precopy */
	uint64_t written;		/* guest writes during the migration */
	uint64_t losses;
	struct vmig_ram_precopy_stats st;
	uint64_t bad;
	uint64_t src_cpu_ns, dst_cpu_ns;	/* connect to acknowledgment */
	uint64_t run_cpu_ns;		/* of it, the caller's thread */
};

/*
 * Migrate s's RAM to a fresh destination; the guest runs during the
 * precopy when live.  Verified page by page.
 */
static void migrate(struct source *s, bool live, const char *what,
		    struct mig_result *res)
{
	struct vmig_ram_precopy_config pcfg = { .batch_pages = opt.batch };
	uint64_t size = testvm_ram_size(s->vm), t0, t_conn, t_run, t_stop;
	uint64_t t_done, w0, syncs;
	struct vmig_session_config scfg;
	struct vmig_converge_config ccfg;
	struct vmig_ram_stats rs0, rs1;
	struct vmig_converge *conv;
	struct vmig_ram_precopy *pc;
	struct vmig_ram_net *net;
	struct vmig_ram_sink sink;
	struct reply rep;
	struct dest d;
	int ret;

	memset(res, 0, sizeof(*res));
	session_cfg(&scfg);
	vmig_converge_config_init(&ccfg);
	ccfg.downtime_ns = opt.downtime_ms * MS;
	if (vmig_converge_new(&ccfg, &conv))
		die("vmig_converge_new");
	dest_start(&d, OP_RAM, size);
	if (live && testvm_resume(s->vm))
		die("testvm_resume");
	w0 = testvm_pages_written(s->vm);

	t0 = now_ns();
	ret = vmig_ram_net_connect(&scfg, (void *)&d.addr, sizeof(d.addr),
				   &net);
	if (ret)
		die("%s: vmig_ram_net_connect: %s", what, strerror(-ret));
	t_conn = now_ns();
	res->src_cpu_ns = cpu_ns();
	res->run_cpu_ns = thread_cpu_ns();
	vmig_ram_net_sink(net, &sink);
	ret = vmig_ram_precopy_new(s->ram, &sink, &pcfg, &pc);
	if (ret)
		die("%s: vmig_ram_precopy_new: %s", what, strerror(-ret));
	/* A paused guest's RAM does not change: pages go in place. */
	if (!live && !opt.copy && vmig_ram_precopy_stop(pc))
		die("%s: vmig_ram_precopy_stop", what);
	vmig_ram_get_stats(s->ram, &rs0);
	t_run = now_ns();
	for (;;) {
		ret = vmig_ram_precopy_run(pc, conv);
		if (ret < 0)
			die("%s: vmig_ram_precopy_run: %s", what,
			    strerror(-ret));
		vmig_ram_precopy_get_stats(pc, &res->st);
		/*
		 * STUCK while the first pass still runs only says that
		 * pending shrinks slowly: go on until the pass is done.
		 */
		if (ret != VMIG_CONVERGE_STUCK || res->st.background_done)
			break;
		vmig_converge_set_downtime(conv, ccfg.downtime_ns);
	}
	res->verdict = ret;
	res->run_ns = now_ns() - t_run;
	vmig_ram_get_stats(s->ram, &rs1);
	vmig_ram_precopy_get_stats(pc, &res->st);
	syncs = res->st.syncs;

	t_stop = now_ns();
	if (testvm_pause(s->vm))
		die("%s: a vCPU failed", what);
	ret = vmig_ram_precopy_complete(pc);
	t_done = now_ns();
	res->src_cpu_ns = cpu_ns() - res->src_cpu_ns;
	res->run_cpu_ns = thread_cpu_ns() - res->run_cpu_ns;
	if (ret)
		die("%s: vmig_ram_precopy_complete: %s", what, strerror(-ret));
	dest_wait(&d, &rep);
	if (rep.ret)
		die("%s: destination: %s", what, strerror(-rep.ret));
	res->dst_cpu_ns = rep.cpu_ns;
	vmig_ram_precopy_get_stats(pc, &res->st);
	res->written = testvm_pages_written(s->vm) - w0;
	res->total_ns = t_done - t0;
	res->xfer_ns = t_done - t_conn;
	res->downtime_ns = t_done - t_stop;
	res->syncs = syncs;
	res->sync_ns = rs1.sync_ns - rs0.sync_ns;
	res->dirtied = rs1.dirtied - rs0.dirtied;
	vmig_ram_get_stats(s->ram, &rs1);
	res->losses = rs1.losses;
	if (rep.st.pages != res->st.pages) {
		fprintf(stderr,
			"MISMATCH: %s: %llu pages sent, %llu received\n", what,
			(unsigned long long)res->st.pages,
			(unsigned long long)rep.st.pages);
		mismatch = true;
	}
	vmig_ram_precopy_free(pc);
	vmig_ram_net_close(net);
	vmig_converge_free(conv);
	res->bad = dest_verify(&d, testvm_ram(s->vm), what);
	if (testvm_check_stamps(s->vm)) {
		fprintf(stderr, "MISMATCH: %s: bad stamps in the source\n",
			what);
		mismatch = true;
	}
}

/* ------------------------------------------------------- raw TCP */

struct raw_tx {
	int fd;
	const uint8_t *src;
	uint64_t len;
	int err;
	pthread_t th;
};

static void *raw_tx_main(void *arg)
{
	struct raw_tx *t = arg;
	uint64_t done = 0;
	ssize_t n;

	while (done < t->len) {
		n = send(t->fd, t->src + done,
			 t->len - done < RAW_CHUNK ? t->len - done : RAW_CHUNK,
			 MSG_NOSIGNAL);
		if (n <= 0) {
			t->err = -errno;
			break;
		}
		done += n;
	}
	return NULL;
}

/*
 * Raw loopback TCP: the source RAM over opt.channels connections into a
 * destination memfd like the migration's (prefaulted or not); verified
 * too.  Returns the time from the first byte sent (the connections are
 * open) to the last byte received.
 */
static uint64_t raw_tcp(const uint8_t *src, uint64_t size,
			uint64_t *src_cpu, uint64_t *dst_cpu)
{
	struct raw_tx tx[MAX_CHAN];
	uint64_t slice = size / opt.channels, t0, c0;
	struct reply rep;
	struct dest d;
	unsigned int i;
	int one = 1;

	dest_start(&d, OP_RAW, size);
	for (i = 0; i < opt.channels; i++) {
		tx[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (tx[i].fd < 0 ||
		    connect(tx[i].fd, (void *)&d.addr, sizeof(d.addr)) ||
		    send(tx[i].fd, &i, sizeof(i), MSG_NOSIGNAL) != sizeof(i))
			die("raw TCP: connect: %s", strerror(errno));
		setsockopt(tx[i].fd, IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		tx[i].src = src + i * slice;
		tx[i].len = i == opt.channels - 1 ? size - i * slice : slice;
		tx[i].err = 0;
	}
	c0 = cpu_ns();
	t0 = now_ns();
	for (i = 0; i < opt.channels; i++)
		pthread_create(&tx[i].th, NULL, raw_tx_main, &tx[i]);
	for (i = 0; i < opt.channels; i++) {
		pthread_join(tx[i].th, NULL);
		if (tx[i].err)
			die("raw TCP: send: %s", strerror(-tx[i].err));
	}
	dest_wait(&d, &rep);
	*src_cpu = cpu_ns() - c0;
	*dst_cpu = rep.cpu_ns;
	for (i = 0; i < opt.channels; i++)
		close(tx[i].fd);
	if (rep.ret)
		die("raw TCP: destination: %s", strerror(-rep.ret));
	dest_verify(&d, src, "raw TCP");
	return rep.t_end - t0;
}

/* ------------------------------------------------------------ figures */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(const uint64_t *v, unsigned int n)
{
	uint64_t s[MAX_RUNS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_u64);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

enum {
	F_TOTAL, F_DOWN, F_PAGES, F_ROUNDS, F_DIRTY, F_SYNC, F_SYNCPG,
	F_FINAL, F_WRATE, F_NR
};

static void part1(const uint64_t *sizes, unsigned int nsizes)
{
	static const char *const names[2] = { "ring", "bitmap" };
	uint64_t f[2][F_NR][MAX_RUNS], sync[2][MAX_SIZES] = { { 0 } };
	unsigned int si, t, run, stuck[2];
	struct mig_result res;
	struct source s;
	char what[64];

	prefault = !opt.fresh;
	printf("# part 1: live migration, %u RAM channels, downtime limit %llu ms, destination RAM %s; guest: 1 vCPU writing %llu pages/s over %llu pages; %u runs (trackers interleaved), medians\n",
	       opt.channels, (unsigned long long)opt.downtime_ms,
	       prefault ? "prefaulted" : "fresh",
	       (unsigned long long)opt.rate,
	       (unsigned long long)opt.working_set, opt.runs);
	printf("%-7s %4s %8s %9s %10s %7s %8s %10s %8s %7s %9s %6s\n",
	       "tracker", "GiB", "total_s", "downtime", "pages_sent", "rounds",
	       "dirty/rd", "sync_us/rd", "ns/dirty", "final", "wr_pg/s",
	       "stuck");
	for (si = 0; si < nsizes; si++) {
		stuck[0] = stuck[1] = 0;
		/* Interleaved, so that drift on a shared machine hits both. */
		for (run = 0; run < opt.runs; run++) {
			for (t = 0; t < 2; t++) {
				if ((t == 0 && !opt.ring) ||
				    (t == 1 && !opt.bitmap))
					continue;
				snprintf(what, sizeof(what),
					 "%s %llu GiB run %u", names[t],
					 (unsigned long long)sizes[si], run + 1);
				source_new(&s, sizes[si] * GIB, t == 0, false);
				migrate(&s, true, what, &res);
				source_free(&s);
				stuck[t] += res.verdict == VMIG_CONVERGE_STUCK;
				f[t][F_TOTAL][run] = res.total_ns;
				f[t][F_DOWN][run] = res.downtime_ns;
				f[t][F_PAGES][run] = res.st.pages;
				f[t][F_ROUNDS][run] = res.syncs;
				f[t][F_DIRTY][run] = res.syncs ?
					res.dirtied / res.syncs : 0;
				f[t][F_SYNC][run] = res.syncs ?
					res.sync_ns / res.syncs : 0;
				f[t][F_SYNCPG][run] = res.dirtied ?
					res.sync_ns / res.dirtied : 0;
				f[t][F_FINAL][run] = res.st.final_pages;
				f[t][F_WRATE][run] = res.written *
					1000000000ULL / res.total_ns;
				if (res.losses)
					fprintf(stderr, "%s: %llu tracker losses (full re-syncs)\n",
						what,
						(unsigned long long)res.losses);
			}
		}
		for (t = 0; t < 2; t++) {
			if ((t == 0 && !opt.ring) || (t == 1 && !opt.bitmap))
				continue;
			printf("%-7s %4llu %8.2f %9.1f %10llu %7llu %8llu %10.1f %8llu %7llu %9llu %3u/%u\n",
			       names[t], (unsigned long long)sizes[si],
			       median(f[t][F_TOTAL], opt.runs) / 1e9,
			       median(f[t][F_DOWN], opt.runs) / 1e6,
			       (unsigned long long)median(f[t][F_PAGES],
							  opt.runs),
			       (unsigned long long)median(f[t][F_ROUNDS],
							  opt.runs),
			       (unsigned long long)median(f[t][F_DIRTY],
							  opt.runs),
			       median(f[t][F_SYNC], opt.runs) / 1e3,
			       (unsigned long long)median(f[t][F_SYNCPG],
							  opt.runs),
			       (unsigned long long)median(f[t][F_FINAL],
							  opt.runs),
			       (unsigned long long)median(f[t][F_WRATE],
							  opt.runs),
			       stuck[t], opt.runs);
			sync[t][si] = median(f[t][F_SYNC], opt.runs);
		}
		fflush(stdout);
	}
	for (t = 0; t < 2 && nsizes > 1; t++)
		if (sync[t][0] && sync[t][nsizes - 1])
			printf("%s: per-round sync at %llu GiB costs %.2fx what it costs at %llu GiB\n",
			       names[t], (unsigned long long)sizes[nsizes - 1],
			       (double)sync[t][nsizes - 1] / sync[t][0],
			       (unsigned long long)sizes[0]);
	for (si = 0; si < nsizes; si++)
		if (sync[0][si] && sync[1][si])
			printf("at %llu GiB: the ring's per-round sync costs %.2fx the bitmap's\n",
			       (unsigned long long)sizes[si],
			       (double)sync[0][si] / sync[1][si]);
	printf("# total_s: connect to the destination's acknowledgment; downtime (ms): vCPUs told to stop to the acknowledgment; pages_sent: entries sent (zero markers included); rounds: tracker syncs during vmig_ram_precopy_run(); dirty/rd: pages added to the dirty set per round; sync_us/rd: tracker CPU time (vmig_ram_stats.sync_ns) per round; ns/dirty: the same per page added to the dirty set; final: pages sent with the vCPUs stopped; wr_pg/s: guest writes per second during the migration; stuck: runs that ended STUCK\n");
}

/*
 * Part 2, one destination mode (prefaulted or fresh memory): raw TCP and
 * the migration, interleaved run by run.
 */
static void part2_mode(struct source *s, bool populate)
{
	uint64_t raw[MAX_RUNS], mig[MAX_RUNS], size = opt.tput_gib * GIB;
	uint64_t cpu[5][MAX_RUNS] = { { 0 } };
	const char *mode = populate ? "prefaulted" : "fresh";
	struct mig_result res;
	unsigned int run;
	double r, m;
	char what[64];

	prefault = populate;
	for (run = 0; run < opt.runs; run++) {
		raw[run] = opt.no_raw ? 1 :
			   raw_tcp(testvm_ram(s->vm), size, &cpu[0][run],
				   &cpu[1][run]);
		if (opt.no_mig) {
			mig[run] = 1;
			continue;
		}
		snprintf(what, sizeof(what), "paused %llu GiB, %s, run %u",
			 (unsigned long long)opt.tput_gib, mode, run + 1);
		migrate(s, false, what, &res);
		/* Connected to acknowledged, like the raw transfer. */
		mig[run] = res.xfer_ns;
		cpu[2][run] = res.src_cpu_ns;
		cpu[3][run] = res.dst_cpu_ns;
		cpu[4][run] = res.run_cpu_ns;
		if (res.st.zero_pages)
			fprintf(stderr, "%s: %llu zero pages in random data?\n",
				what, (unsigned long long)res.st.zero_pages);
		printf("#   %s run %u: raw %.2f GB/s, migration %.2f GB/s (sender's caller thread busy %.0f%%)\n",
		       mode, run + 1, size / (raw[run] / 1e9) / 1e9,
		       size / (mig[run] / 1e9) / 1e9,
		       100.0 * res.run_cpu_ns / res.xfer_ns);
		fflush(stdout);
	}
	r = size / (median(raw, opt.runs) / 1e9) / 1e9;
	m = size / (median(mig, opt.runs) / 1e9) / 1e9;
	printf("%-10s %-27s %6.2f %12.2f %12.2f\n", mode,
	       "raw TCP, memory to memory", r,
	       median(cpu[0], opt.runs) / (size / 1e9) / 1e9,
	       median(cpu[1], opt.runs) / (size / 1e9) / 1e9);
	printf("%-10s %-27s %6.2f %12.2f %12.2f   ratio %.2f\n", mode,
	       "RAM migration", m,
	       median(cpu[2], opt.runs) / (size / 1e9) / 1e9,
	       median(cpu[3], opt.runs) / (size / 1e9) / 1e9, m / r);
	fflush(stdout);
}

static void part2(void)
{
	struct source s;

	printf("# part 2: paused guest, %llu GiB of random data, %u RAM channels vs raw loopback TCP over %u connections (source RAM -> destination memfd), %u runs interleaved, medians; issue 6 asks ratio >= 0.7\n",
	       (unsigned long long)opt.tput_gib, opt.channels, opt.channels,
	       opt.runs);
	source_new(&s, opt.tput_gib * GIB, true, true);
	printf("%-10s %-27s %6s %12s %12s\n", "dest RAM", "", "GB/s",
	       "src cpu s/GB", "dst cpu s/GB");
	part2_mode(&s, true);
	part2_mode(&s, false);
	source_free(&s);
	printf("# dest RAM prefaulted: populated before the transfer (MADV_POPULATE_WRITE); fresh: faulted in by the transfer; cpu s/GB: CPU time of the source and destination processes (all threads) per GB moved\n");
}

static void bad_usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-r rate] [-w pages] [-d ms] [-c channels] [-n runs] [-s GiB] [-t ring|bitmap|both] [-p 1|2] [-F] [-b pages] [-R] [-M] [-C] [GiB ...]\n",
		prog);
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t sizes[MAX_SIZES] = { 1, 4, 8 };
	unsigned int nsizes = 3;
	char load[128];
	int c, fd;

	while ((c = getopt(argc, argv, "r:w:d:c:n:s:t:p:b:FRMCh")) != -1) {
		switch (c) {
		case 'r':
			opt.rate = strtoull(optarg, NULL, 0);
			break;
		case 'w':
			opt.working_set = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			opt.downtime_ms = strtoull(optarg, NULL, 0);
			break;
		case 'c':
			opt.channels = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			opt.runs = strtoul(optarg, NULL, 0);
			break;
		case 's':
			opt.tput_gib = strtoull(optarg, NULL, 0);
			break;
		case 't':
			opt.ring = strcmp(optarg, "bitmap");
			opt.bitmap = strcmp(optarg, "ring");
			break;
		case 'p':
			opt.part1 = atoi(optarg) == 1;
			opt.part2 = atoi(optarg) == 2;
			break;
		case 'F':
			opt.fresh = true;
			break;
		case 'R':
			opt.no_raw = true;
			break;
		case 'M':
			opt.no_mig = true;
			break;
		case 'C':
			opt.copy = true;
			break;
		case 'b':
			opt.batch = strtoul(optarg, NULL, 0);
			break;
		default:
			bad_usage(argv[0]);
		}
	}
	if (optind < argc) {
		for (nsizes = 0; optind < argc && nsizes < MAX_SIZES; optind++)
			sizes[nsizes++] = strtoull(argv[optind], NULL, 0);
	}
	if (!opt.channels || opt.channels > MAX_CHAN || !opt.runs ||
	    opt.runs > MAX_RUNS || (!opt.ring && !opt.bitmap))
		bad_usage(argv[0]);
	for (c = 0; c < (int)nsizes; c++)
		if (!sizes[c] || sizes[c] > 62)
			bad_usage(argv[0]);
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("# bench_ram_migrate: no /dev/kvm, nothing measured\n");
		return 0;
	}
	close(fd);
	signal(SIGPIPE, SIG_IGN);
	vmig_set_log(log_cb, NULL, VMIG_LOG_WARNING);
	/* Before any guest RAM exists: the child shares none of it. */
	start_child();

	load_average(load, sizeof(load));
	printf("# bench_ram_migrate: destination in a forked process, loopback TCP; load average at start: %s\n",
	       load);
	if (opt.part1)
		part1(sizes, nsizes);
	if (opt.part2 && opt.tput_gib)
		part2();
	load_average(load, sizeof(load));
	printf("# load average at end: %s\n", load);
	stop_child();
	if (mismatch) {
		printf("# FAILED: the destination's RAM did not match the source's\n");
		return 1;
	}
	printf("# every migration verified page by page: destination == source\n");
	return 0;
}

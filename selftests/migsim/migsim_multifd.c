// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: device-state migration between two processes with a libvmig
 * session (one main channel, N data channels over a UNIX socket).
 *
 * Four instances of 64 MiB, dirtying during precopy, go from a source
 * process (the test) to a destination process (a forked child) over 1 and
 * over 4 channels; the source's checksums, read while its devices are
 * stopped, must equal the destination's once loaded.  Killing the
 * destination mid-transfer must leave the source devices RUNNING with
 * their original checksums.
 *
 * The eight instances are created once, before the tests (creating 64 MiB
 * costs about a second under TCG); each test leaves them RUNNING, with the
 * dirtying engine off.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

#define NDEV		4
#define STATE_SIZE	(64 * MiB)
#define DIRTY_RATE	"8M"
#define HOT_SET		"200"
#define PRECOPY_MS	300
#define SECRET		"migsim_multifd test secret 32b!!"
#define KILL_AT		(24 * MiB)	/* device bytes, well before the end */

static struct migsim_inst src_in[NDEV], dst_in[NDEV];
static bool setup_ok;

/* What the destination child reports through a pipe. */
struct dst_result {
	int ret;
	int err_device, err_channel;
	char msg[256];
	uint32_t csum[NDEV];
	enum vmig_dev_state state[NDEV];
	uint64_t bytes[NDEV];
	uint64_t total_ns;
};

static void log_stderr(enum vmig_log_level level, const char *msg,
		       void *opaque)
{
	fprintf(stderr, "# %s libvmig %s: %s\n", (const char *)opaque,
		level <= VMIG_LOG_ERR ? "error" : level <= VMIG_LOG_WARNING ?
		"warning" : "info", msg);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void config(struct vmig_session_config *cfg, unsigned int nchan)
{
	vmig_session_config_init(cfg);
	memcpy(cfg->session_id, "migsim-multifd-1", VMIG_SESSION_ID_LEN);
	cfg->secret = SECRET;
	cfg->secret_len = strlen(SECRET);
	cfg->channels = nchan;
	cfg->precopy_max_ms = PRECOPY_MS;
	cfg->timeout_ms = 20000;
}

static int open_all(struct migsim_inst *in)
{
	int i, ret;

	for (i = 0; i < NDEV; i++) {
		ret = migsim_inst_open(&in[i]);
		if (ret) {
			while (--i >= 0)
				migsim_inst_close(&in[i]);
			return ret;
		}
	}
	return 0;
}

static void close_all(struct migsim_inst *in)
{
	int i;

	for (i = 0; i < NDEV; i++)
		migsim_inst_close(&in[i]);
}

static int add_all(struct vmig_session *s, struct migsim_inst *in)
{
	char name[16];
	int i, ret;

	for (i = 0; i < NDEV; i++) {
		snprintf(name, sizeof(name), "dev%d", i);
		ret = vmig_session_add_vfio_named(s, in[i].dev, name);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The destination process: never returns. */
static void destination(int lfd, int out, unsigned int nchan)
{
	struct dst_result r = { .err_device = -1, .err_channel = -1 };
	struct vmig_session_config cfg;
	struct vmig_session_error e;
	struct vmig_session_stats st;
	struct vmig_session_dev_stats ds;
	struct vmig_session *s = NULL;
	int i, ret;

	vmig_set_log(log_stderr, "destination", VMIG_LOG_WARNING);
	config(&cfg, nchan);
	ret = open_all(dst_in);
	if (ret) {
		snprintf(r.msg, sizeof(r.msg), "opening: %s", strerror(-ret));
		goto out;
	}
	ret = vmig_session_create(VMIG_ROLE_DESTINATION, &cfg, &s);
	if (!ret)
		ret = add_all(s, dst_in);
	if (!ret)
		ret = vmig_session_accept(s, lfd);
	if (!ret)
		ret = vmig_session_run_destination(s);
	if (ret) {
		if (s && vmig_session_get_error(s, &e)) {
			r.err_device = e.device;
			r.err_channel = e.channel;
			snprintf(r.msg, sizeof(r.msg), "%s", e.msg);
		} else {
			snprintf(r.msg, sizeof(r.msg), "%s", strerror(-ret));
		}
		goto out;
	}
	/* Loaded, still in STOP: the state that arrived. */
	for (i = 0; i < NDEV && !ret; i++) {
		ret = migsim_checksum(dst_in[i].uuid, &r.csum[i]);
		vmig_session_get_device_stats(s, i, &ds);
		r.bytes[i] = ds.device_bytes;
	}
	if (!ret)
		ret = vmig_session_resume(s);
	for (i = 0; i < NDEV && !ret; i++)
		ret = migsim_get_state(&dst_in[i], &r.state[i]);
	vmig_session_get_stats(s, &st);
	r.total_ns = st.total_ns;
	if (ret)
		snprintf(r.msg, sizeof(r.msg), "after loading: %s",
			 strerror(-ret));
out:
	r.ret = ret;
	vmig_session_destroy(s);
	close_all(dst_in);
	if (write(out, &r, sizeof(r)) != sizeof(r))
		_exit(2);
	_exit(0);
}

struct killer {
	struct vmig_session *s;
	pid_t pid;
	uint64_t at;		/* device bytes */
	bool stop, killed;
	uint64_t killed_at;
};

static void *killer_thread(void *arg)
{
	struct killer *k = arg;
	struct vmig_session_stats st;
	struct timespec ms = { 0, 1000000 };

	while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
		vmig_session_get_stats(k->s, &st);
		if (st.device_bytes >= k->at) {
			kill(k->pid, SIGKILL);
			k->killed = true;
			k->killed_at = st.device_bytes;
			break;
		}
		nanosleep(&ms, NULL);
	}
	return NULL;
}

struct run {
	/* in */
	unsigned int nchan;
	bool kill;
	/* out */
	int src_ret;
	struct vmig_session_error src_err;
	struct vmig_session_stats src_st;
	struct vmig_session_dev_stats src_dev[NDEV];
	uint32_t src_csum[NDEV];	/* read while stopped (or after) */
	enum vmig_dev_state src_state[NDEV];
	struct dst_result dst;
	bool dst_reported;
	int dst_status;
	struct killer k;
	double seconds;
};

/*
 * One migration of the four source instances into the four destination
 * instances.  Returns 0 when the run could be made (whatever its result,
 * which is in *r) or a negative errno when the test's own setup failed.
 */
static int migrate(struct run *r)
{
	struct vmig_session_config cfg;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct vmig_session *s = NULL;
	int lfd, pfd[2], i, ret;
	pthread_t kt;
	pid_t pid;
	ssize_t n;
	double t0;

	snprintf(addr.sun_path, sizeof(addr.sun_path),
		 "/tmp/migsim_multifd.%d.sock", getpid());
	unlink(addr.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(lfd, 16) || pipe(pfd)) {
		ret = -errno;
		close(lfd);
		return ret;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(lfd);
		return ret;
	}
	if (!pid) {
		close(pfd[0]);
		destination(lfd, pfd[1], r->nchan);
	}
	close(pfd[1]);
	close(lfd);

	vmig_set_log(log_stderr, "source", VMIG_LOG_WARNING);
	config(&cfg, r->nchan);
	ret = open_all(src_in);
	if (!ret)
		ret = vmig_session_create(VMIG_ROLE_SOURCE, &cfg, &s);
	if (!ret)
		ret = add_all(s, src_in);
	if (ret) {
		kill(pid, SIGKILL);
		goto reap;
	}
	if (r->kill) {
		r->k.s = s;
		r->k.pid = pid;
		r->k.at = KILL_AT;
		pthread_create(&kt, NULL, killer_thread, &r->k);
	}
	t0 = now_s();
	r->src_ret = vmig_session_connect(s, (struct sockaddr *)&addr,
					  sizeof(addr));
	if (!r->src_ret)
		r->src_ret = vmig_session_run_source(s);
	r->seconds = now_s() - t0;
	if (r->kill) {
		__atomic_store_n(&r->k.stop, true, __ATOMIC_RELEASE);
		pthread_join(kt, NULL);
	}
	vmig_session_get_error(s, &r->src_err);
	vmig_session_get_stats(s, &r->src_st);
	for (i = 0; i < NDEV; i++) {
		vmig_session_get_device_stats(s, i, &r->src_dev[i]);
		/* Success: stopped; failure: RUNNING again (engine off). */
		migsim_checksum(src_in[i].uuid, &r->src_csum[i]);
		if (migsim_get_state(&src_in[i], &r->src_state[i]))
			r->src_state[i] = VMIG_STATE_ERROR;
	}

reap:
	vmig_session_destroy(s);
	close_all(src_in);
	n = read(pfd[0], &r->dst, sizeof(r->dst));
	r->dst_reported = n == sizeof(r->dst);
	close(pfd[0]);
	waitpid(pid, &r->dst_status, 0);
	unlink(addr.sun_path);
	return ret;
}

static int set_dirtying(const char *rate)
{
	int i, ret = 0;

	for (i = 0; i < NDEV && !ret; i++) {
		ret = migsim_attr_write(src_in[i].uuid, "hot_set", HOT_SET);
		if (!ret)
			ret = migsim_attr_write(src_in[i].uuid, "dirty_rate",
						rate);
	}
	return ret;
}

static void stop_dirtying(void)
{
	int i;

	for (i = 0; i < NDEV; i++)
		migsim_attr_write(src_in[i].uuid, "dirty_rate", "0");
}

static uint64_t total_dirtied(void)
{
	uint64_t sum = 0, v;
	int i;

	for (i = 0; i < NDEV; i++)
		if (!migsim_attr_u64(src_in[i].uuid, "bytes_dirtied", &v))
			sum += v;
	return sum;
}

FIXTURE(multifd) {
	uint64_t dirtied0;
};

FIXTURE_SETUP(multifd)
{
	if (!setup_ok)
		SKIP(return, "the instances could not be created");
	self->dirtied0 = total_dirtied();
}

FIXTURE_TEARDOWN(multifd)
{
	if (setup_ok)
		stop_dirtying();
}

static void check_migrated(struct __test_metadata *_metadata,
			   struct run *r, uint64_t dirtied0)
{
	uint64_t dirtied = total_dirtied() - dirtied0;
	int i;

	if (r->src_ret)
		TH_LOG("source: %s (device %d, channel %d)", r->src_err.msg,
		       r->src_err.device, r->src_err.channel);
	ASSERT_TRUE(r->dst_reported);
	if (r->dst.ret)
		TH_LOG("destination: %s (device %d, channel %d)", r->dst.msg,
		       r->dst.err_device, r->dst.err_channel);
	ASSERT_EQ(0, r->src_ret);
	ASSERT_EQ(0, r->dst.ret);
	ASSERT_TRUE(WIFEXITED(r->dst_status));
	ASSERT_EQ(0, WEXITSTATUS(r->dst_status));
	EXPECT_EQ(r->nchan, r->src_st.channels);
	for (i = 0; i < NDEV; i++) {
		TH_LOG("dev%d: precopy %llu + stop-copy %llu bytes, destination wrote %llu; checksums 0x%08x / 0x%08x",
		       i, (unsigned long long)r->src_dev[i].precopy_bytes,
		       (unsigned long long)r->src_dev[i].stopcopy_bytes,
		       (unsigned long long)r->dst.bytes[i], r->src_csum[i],
		       r->dst.csum[i]);
		/* The whole initial state came in precopy. */
		EXPECT_LE(STATE_SIZE, r->src_dev[i].precopy_bytes);
		EXPECT_LT(0, r->src_dev[i].stopcopy_bytes);
		EXPECT_EQ(r->src_dev[i].device_bytes, r->dst.bytes[i]);
		EXPECT_EQ(VMIG_STATE_STOP, r->src_state[i]);
		EXPECT_EQ(VMIG_STATE_RUNNING, r->dst.state[i]);
		EXPECT_EQ(r->src_csum[i], r->dst.csum[i]);
	}
	TH_LOG("%u channel%s: %llu device bytes (%llu in precopy, %llu dirtied meanwhile) in %.2f s, %.1f MB/s; downtime %.1f ms",
	       r->nchan, r->nchan > 1 ? "s" : "",
	       (unsigned long long)r->src_st.device_bytes,
	       (unsigned long long)r->src_st.precopy_bytes,
	       (unsigned long long)dirtied, r->seconds,
	       r->src_st.device_bytes / r->seconds / 1e6,
	       r->src_st.downtime_ns / 1e6);
	/* The devices dirtied state while precopy ran. */
	EXPECT_LT(0, dirtied);
	EXPECT_LT(NDEV * STATE_SIZE, r->src_st.device_bytes);
}

TEST_F_TIMEOUT(multifd, one_channel, 180)
{
	struct run r = { .nchan = 1 };

	ASSERT_EQ(0, set_dirtying(DIRTY_RATE));
	ASSERT_EQ(0, migrate(&r));
	check_migrated(_metadata, &r, self->dirtied0);
}

TEST_F_TIMEOUT(multifd, four_channels, 180)
{
	struct run r = { .nchan = 4 };

	ASSERT_EQ(0, set_dirtying(DIRTY_RATE));
	ASSERT_EQ(0, migrate(&r));
	check_migrated(_metadata, &r, self->dirtied0);
}

/* The destination dies mid-transfer: the source devices run on, intact. */
TEST_F_TIMEOUT(multifd, killed_destination, 180)
{
	struct run r = { .nchan = 4, .kill = true };
	uint32_t before[NDEV];
	int i;

	stop_dirtying();
	for (i = 0; i < NDEV; i++)
		ASSERT_EQ(0, migsim_checksum(src_in[i].uuid, &before[i]));
	ASSERT_EQ(0, migrate(&r));
	ASSERT_TRUE(r.k.killed);
	TH_LOG("destination killed after %llu device bytes; source: %s (%d), device %d, channel %d",
	       (unsigned long long)r.k.killed_at, r.src_err.msg, r.src_ret,
	       r.src_err.device, r.src_err.channel);
	EXPECT_NE(0, r.src_ret);
	EXPECT_FALSE(r.src_err.remote);
	EXPECT_FALSE(r.dst_reported);
	EXPECT_TRUE(WIFSIGNALED(r.dst_status));
	for (i = 0; i < NDEV; i++) {
		EXPECT_EQ(VMIG_STATE_RUNNING, r.src_state[i]);
		EXPECT_EQ(before[i], r.src_csum[i]);
	}
}

struct creator {
	struct migsim_inst *in;
	int ret;
};

static void *create_thread(void *arg)
{
	struct creator *c = arg;

	c->ret = migsim_inst_create(c->in, STATE_SIZE);
	return NULL;
}

/* Create the 2 x NDEV instances, two at a time (the VM has two CPUs). */
static int create_all(void)
{
	struct creator c[2 * NDEV];
	pthread_t t[2 * NDEV];
	int i, ret = 0;

	for (i = 0; i < 2 * NDEV; i++)
		c[i].in = i < NDEV ? &src_in[i] : &dst_in[i - NDEV];
	for (i = 0; i < 2 * NDEV; i += 2) {
		pthread_create(&t[i], NULL, create_thread, &c[i]);
		pthread_create(&t[i + 1], NULL, create_thread, &c[i + 1]);
		pthread_join(t[i], NULL);
		pthread_join(t[i + 1], NULL);
		if (!ret)
			ret = c[i].ret ? c[i].ret : c[i + 1].ret;
	}
	return ret;
}

int main(int argc, char **argv)
{
	double t0 = now_s();
	int i, ret;

	ret = create_all();
	setup_ok = !ret;
	printf("# created %d instances of %llu MiB in %.2f s%s%s\n", 2 * NDEV,
	       STATE_SIZE / MiB, now_s() - t0, ret ? ": " : "",
	       ret ? strerror(-ret) : "");
	fflush(stdout);
	ret = test_harness_run(argc, argv);
	for (i = 0; i < NDEV; i++) {
		migsim_inst_destroy(&src_in[i]);
		migsim_inst_destroy(&dst_in[i]);
	}
	return ret;
}

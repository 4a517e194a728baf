// SPDX-License-Identifier: GPL-2.0
/*
 * vfio-migsim: "vmigctl migrate send|recv --guest" end to end, as two
 * processes: a migsim device and the RAM of a KVM test guest (tools/testvm,
 * dirty ring, one vCPU writing pages) in one libvmig session over a UNIX
 * socket.  Both sides print JSON (--json), which the tests read.
 *
 * - The device's checksum as the source read it while stopped equals the
 *   destination's; the guest RAM's SHA-256 is the same on both sides; every
 *   page went at least once; the source's vCPU was paused at the
 *   switchover and not resumed.
 * - A destination with RAM of another size is refused; the source's guest
 *   was never paused.
 * - A load that fails after the switchover (the destination device's
 *   load-at fault, with --no-precopy so that the whole state goes in
 *   STOP_COPY) fails both sides; the source's vCPU is resumed and its
 *   device is RUNNING with its state unchanged.
 * - --postcopy with a guest precopy cannot keep up with (--ram-bandwidth,
 *   --downtime): the rest of the RAM goes by postcopy, the SHA-256s and
 *   device checksums are equal, every page held or placed once.  recv
 *   with --postcopy and send without fails recv after --timeout.
 *
 * Needs /usr/bin/vmigctl (the VM has it) and /dev/kvm (nested KVM in the
 * test VM); skipped without them.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "migsim_util.h"

#define VMIGCTL		"/usr/bin/vmigctl"
#define DEV_SIZE	(4 * MiB)
#define GUEST		"16M"
#define GUEST_PAGES	(16 * MiB / 4096)
#define SECRET		"migsim_migrate_guest secret 32b!"
#define OUT_MAX		(64 * 1024)

static bool have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Run argv with stdout to out and stderr to err (files); its pid. */
static pid_t spawn(const char *out, const char *err, const char *const argv[])
{
	pid_t pid = fork();
	int fo, fe;

	if (pid)
		return pid;
	fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fo < 0 || fe < 0)
		_exit(126);
	dup2(fo, 1);
	dup2(fe, 2);
	execv(VMIGCTL, (char *const *)argv);
	_exit(127);
}

/* Exit status of pid, or -1. */
static int reap(pid_t pid)
{
	int status;

	if (pid <= 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) :
				   128 + WTERMSIG(status);
}

static void slurp(const char *path, char *buf, size_t len)
{
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
}

/* The string value of "key" at or after from, into out ("" if none). */
static const char *json_str(const char *from, const char *key, char *out,
			    size_t len)
{
	char pat[64];
	const char *p, *q;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = from ? strstr(from, pat) : NULL;
	if (!p)
		return out;
	p += strlen(pat);
	q = strchr(p, '"');
	if (q && (size_t)(q - p) < len)
		snprintf(out, len, "%.*s", (int)(q - p), p);
	return out;
}

/* The number or literal after "key": (a copy of up to 15 chars). */
static const char *json_raw(const char *from, const char *key, char *out,
			    size_t len)
{
	char pat[64];
	const char *p;
	size_t n;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = from ? strstr(from, pat) : NULL;
	if (!p)
		return out;
	p += strlen(pat);
	n = strcspn(p, ",}]");
	snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
	return out;
}

static unsigned long long json_u64(const char *from, const char *key)
{
	char v[32];

	return strtoull(json_raw(from, key, v, sizeof(v)), NULL, 10);
}

static const char *const out_names[4] = {
	"send.json", "send.err", "recv.json", "recv.err",
};

FIXTURE(mg) {
	struct migsim_inst src, dst;
	char dir[64], sock[96], addr[112], secret[96];
	char out[4][96];		/* send out, send err, recv out, err */
	char *send_out, *recv_out;
	int send_rc, recv_rc;
	char send_err[4096], recv_err[4096];
	char before[32];
};

FIXTURE_SETUP(mg)
{
	int fd, i;

	memset(self, 0, sizeof(*self));
	if (access(VMIGCTL, X_OK))
		SKIP(return, "no %s", VMIGCTL);
	if (!have_kvm())
		SKIP(return, "no /dev/kvm");
	ASSERT_EQ(0, migsim_inst_create(&self->src, DEV_SIZE));
	ASSERT_EQ(0, migsim_inst_create(&self->dst, 0));
	ASSERT_LT(0, migsim_attr_read(self->src.uuid, "checksum",
				      self->before, sizeof(self->before)));
	snprintf(self->dir, sizeof(self->dir), "/tmp/migsim_mg.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->sock, sizeof(self->sock), "%s/sock", self->dir);
	snprintf(self->addr, sizeof(self->addr), "unix:%s", self->sock);
	snprintf(self->secret, sizeof(self->secret), "%s/secret", self->dir);
	fd = open(self->secret, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)strlen(SECRET), write(fd, SECRET, strlen(SECRET)));
	close(fd);
	for (i = 0; i < 4; i++)
		snprintf(self->out[i], sizeof(self->out[i]), "%s/%s",
			 self->dir, out_names[i]);
	self->send_out = calloc(1, OUT_MAX);
	self->recv_out = calloc(1, OUT_MAX);
	ASSERT_NE(NULL, self->send_out);
	ASSERT_NE(NULL, self->recv_out);
}

FIXTURE_TEARDOWN(mg)
{
	int i;

	migsim_inst_destroy(&self->src);
	migsim_inst_destroy(&self->dst);
	for (i = 0; i < 4; i++)
		if (self->out[i][0])
			unlink(self->out[i]);
	if (self->secret[0])
		unlink(self->secret);
	if (self->sock[0])
		unlink(self->sock);
	if (self->dir[0])
		rmdir(self->dir);
	free(self->send_out);
	free(self->recv_out);
}

/*
 * recv with --guest recv_guest and the options recv_extra (NULL-ended, or
 * NULL), then (once it listens) send with --guest send_guest and
 * send_extra; both outputs read in.
 */
#define EXTRA_MAX	8
static void run_pair_x(struct __test_metadata *_metadata,
		       FIXTURE_DATA(mg) *self, const char *send_guest,
		       const char *recv_guest, const char *const *send_extra,
		       const char *const *recv_extra)
{
	const char *recv_argv[12 + EXTRA_MAX] = {
		"vmigctl", "migrate", "recv", "--listen", self->addr,
		"--secret-file", self->secret, "--guest", recv_guest,
		"--json", self->dst.uuid,
	};
	const char *send_argv[14 + EXTRA_MAX] = {
		"vmigctl", "migrate", "send", "--connect", self->addr,
		"--secret-file", self->secret, "--guest", send_guest,
		"--precopy-max-ms", "500", "--json", self->src.uuid,
	};
	struct timespec ms = { 0, 10 * 1000000 };
	struct stat st;
	pid_t recv, send;
	int i;

	for (i = 0; recv_extra && recv_extra[i]; i++) {
		ASSERT_GT(EXTRA_MAX, i);
		recv_argv[11 + i] = recv_extra[i];
	}
	for (i = 0; send_extra && send_extra[i]; i++) {
		ASSERT_GT(EXTRA_MAX, i);
		send_argv[13 + i] = send_extra[i];
	}
	recv = spawn(self->out[2], self->out[3], recv_argv);
	ASSERT_LT(0, recv);
	/* It listens once the socket file exists (10 s at most). */
	for (i = 0; i < 1000 && stat(self->sock, &st); i++)
		nanosleep(&ms, NULL);
	if (stat(self->sock, &st)) {
		kill(recv, SIGKILL);
		reap(recv);
		slurp(self->out[3], self->recv_err, sizeof(self->recv_err));
		ASSERT_TRUE(false) TH_LOG("recv never listened: %s",
					  self->recv_err);
	}
	send = spawn(self->out[0], self->out[1], send_argv);
	ASSERT_LT(0, send);
	self->send_rc = reap(send);
	self->recv_rc = reap(recv);
	slurp(self->out[0], self->send_out, OUT_MAX);
	slurp(self->out[1], self->send_err, sizeof(self->send_err));
	slurp(self->out[2], self->recv_out, OUT_MAX);
	slurp(self->out[3], self->recv_err, sizeof(self->recv_err));
}

/* As run_pair_x(), with one extra option (or NULL) for send. */
static void run_pair(struct __test_metadata *_metadata,
		     FIXTURE_DATA(mg) *self, const char *send_guest,
		     const char *recv_guest, const char *extra)
{
	const char *send_extra[] = { extra, NULL };

	run_pair_x(_metadata, self, send_guest, recv_guest, send_extra, NULL);
}

TEST_F_TIMEOUT(mg, guest_and_device, 180)
{
	char a[80], b[80], v[32];
	char fms[32], exp[32], verdict[32], down[32], sum[80];
	const char *sg, *dg;

	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "2M"));
	run_pair(_metadata, self, GUEST ",2000", GUEST, NULL);
	ASSERT_EQ(0, self->send_rc) TH_LOG("send: %s\n%s", self->send_err,
					   self->send_out);
	ASSERT_EQ(0, self->recv_rc) TH_LOG("recv: %s\n%s", self->recv_err,
					   self->recv_out);
	sg = strstr(self->send_out, "\"guest\":{");
	dg = strstr(self->recv_out, "\"guest\":{");
	ASSERT_NE(NULL, sg) TH_LOG("%s", self->send_out);
	ASSERT_NE(NULL, dg) TH_LOG("%s", self->recv_out);

	/* The device: stopped on the source, loaded on the destination. */
	json_str(self->send_out, "checksum", a, sizeof(a));
	json_str(self->recv_out, "checksum", b, sizeof(b));
	EXPECT_NE(0, a[0]);
	EXPECT_STREQ(a, b);

	/* The guest RAM. */
	json_str(sg, "sha256", a, sizeof(a));
	json_str(dg, "sha256", b, sizeof(b));
	EXPECT_EQ(64, strlen(a)) TH_LOG("%s", self->send_out);
	EXPECT_STREQ(a, b);
	EXPECT_STREQ("true", json_raw(sg, "paused", v, sizeof(v)));
	EXPECT_STREQ("false", json_raw(sg, "resumed", v, sizeof(v)));
	EXPECT_EQ(16 * MiB, json_u64(sg, "ram_size"));
	EXPECT_LE(GUEST_PAGES, json_u64(sg, "pages"));
	EXPECT_EQ(json_u64(sg, "pages"), json_u64(dg, "pages"));
	EXPECT_LT(0, json_u64(sg, "pages_written"));
	/*
	 * Not device_bytes: libvmig takes the model's figures while the
	 * devices already drain their stop-copy data, which can be 0 by then.
	 */
	EXPECT_LT(0, json_u64(sg, "bandwidth"));
	TH_LOG("guest %s: %llu pages sent (%llu after the switchover, last pass %s ms), the vCPU wrote %llu; model: %llu RAM + %llu device bytes, %llu B/s, expected %s ms, verdict %s; downtime %s ms; sha256 %.16s",
	       GUEST, json_u64(sg, "pages"),
	       json_u64(sg, "final_pages"),
	       json_raw(sg, "final_ms", fms, sizeof(fms)),
	       json_u64(sg, "pages_written"),
	       json_u64(sg, "ram_bytes"),
	       json_u64(sg, "device_bytes"),
	       json_u64(sg, "bandwidth"),
	       json_raw(sg, "expected_downtime_ms", exp, sizeof(exp)),
	       json_raw(sg, "verdict", verdict, sizeof(verdict)),
	       json_raw(self->send_out, "downtime_ms", down,
			sizeof(down)),
	       json_str(sg, "sha256", sum, sizeof(sum)));
}

/*
 * --postcopy with a guest that precopy cannot keep up with (RAM precopy
 * limited to 4 MB/s, a 5 ms downtime limit): the session switches over
 * to postcopy (on STUCK, or at --precopy-max-ms), the rest of the RAM
 * goes by postcopy on the same socket, and the RAM is equal at the end;
 * every page is either held from precopy or placed exactly once.  recv
 * has no --postcopy: it follows the source (the session's CONFIG).
 */
TEST_F_TIMEOUT(mg, guest_by_postcopy, 180)
{
	const char *send_extra[] = {
		"--postcopy", "--ram-bandwidth", "4M/s", "--downtime", "5",
		NULL,
	};
	char a[80], b[80], v[32];
	const char *sg, *dg, *sp, *dp;

	ASSERT_EQ(0, migsim_attr_write(self->src.uuid, "dirty_rate", "2M"));
	run_pair_x(_metadata, self, GUEST ",20000", GUEST, send_extra, NULL);
	ASSERT_EQ(0, self->send_rc) TH_LOG("send: %s\n%s", self->send_err,
					   self->send_out);
	ASSERT_EQ(0, self->recv_rc) TH_LOG("recv: %s\n%s", self->recv_err,
					   self->recv_out);
	json_str(self->send_out, "checksum", a, sizeof(a));
	json_str(self->recv_out, "checksum", b, sizeof(b));
	EXPECT_NE(0, a[0]);
	EXPECT_STREQ(a, b);
	sg = strstr(self->send_out, "\"guest\":{");
	dg = strstr(self->recv_out, "\"guest\":{");
	ASSERT_NE(NULL, sg) TH_LOG("%s", self->send_out);
	ASSERT_NE(NULL, dg) TH_LOG("%s", self->recv_out);
	json_str(sg, "sha256", a, sizeof(a));
	json_str(dg, "sha256", b, sizeof(b));
	EXPECT_EQ(64, strlen(a)) TH_LOG("%s", self->send_out);
	EXPECT_STREQ(a, b);
	/* No last pass: what precopy had not sent went by postcopy. */
	EXPECT_EQ(0, json_u64(sg, "final_pages"));
	sp = strstr(sg, "\"postcopy\":{");
	dp = strstr(dg, "\"postcopy\":{");
	ASSERT_NE(NULL, sp) TH_LOG("%s", self->send_out);
	ASSERT_NE(NULL, dp) TH_LOG("%s", self->recv_out);
	EXPECT_STREQ("true", json_raw(sp, "ok", v, sizeof(v)));
	EXPECT_STREQ("true", json_raw(dp, "done", v, sizeof(v)));
	EXPECT_EQ(0, json_u64(dp, "eexist"));
	EXPECT_EQ(GUEST_PAGES, json_u64(dp, "present") -
		  json_u64(dp, "discarded") + json_u64(dp, "placed") +
		  json_u64(dp, "zero_placed"));
	EXPECT_LT(0, json_u64(sp, "pushed"));
	TH_LOG("verdict %s; postcopy: %llu discarded, %llu held, %llu pushed, %llu requests; destination: %llu present, %llu placed, %llu zero, %llu duplicates; sha256 %.16s",
	       json_raw(sg, "verdict", v, sizeof(v)),
	       json_u64(sp, "discarded"), json_u64(sp, "have"),
	       json_u64(sp, "pushed"), json_u64(sp, "requests"),
	       json_u64(dp, "present"), json_u64(dp, "placed"),
	       json_u64(dp, "zero_placed"), json_u64(dp, "duplicates"), a);
	TH_LOG("source: %.*s", (int)strcspn(sp, "}") + 1, sp);
	TH_LOG("destination: %.*s", (int)strcspn(dp, "}") + 1, dp);
}

/*
 * recv --postcopy, send without: recv follows the source, so the session
 * is the whole migration and the hashes are equal, with no postcopy.
 */
TEST_F_TIMEOUT(mg, recv_follows_a_source_without_postcopy, 120)
{
	const char *recv_extra[] = { "--postcopy", NULL };
	char a[80], b[80], v[32];
	const char *sg, *dg;

	run_pair_x(_metadata, self, GUEST ",2000", GUEST, NULL, recv_extra);
	ASSERT_EQ(0, self->send_rc) TH_LOG("send: %s\n%s", self->send_err,
					   self->send_out);
	ASSERT_EQ(0, self->recv_rc) TH_LOG("recv: %s\n%s", self->recv_err,
					   self->recv_out);
	sg = strstr(self->send_out, "\"guest\":{");
	dg = strstr(self->recv_out, "\"guest\":{");
	ASSERT_NE(NULL, sg) TH_LOG("%s", self->send_out);
	ASSERT_NE(NULL, dg) TH_LOG("%s", self->recv_out);
	json_str(sg, "sha256", a, sizeof(a));
	json_str(dg, "sha256", b, sizeof(b));
	EXPECT_EQ(64, strlen(a)) TH_LOG("%s", self->send_out);
	EXPECT_STREQ(a, b);
	EXPECT_STREQ("null", json_raw(dg, "postcopy", v, sizeof(v)));
}

TEST_F_TIMEOUT(mg, guest_of_another_size_is_refused, 120)
{
	char v[32], e[256];
	const char *sg;

	run_pair(_metadata, self, GUEST, "18M", NULL);
	EXPECT_EQ(1, self->send_rc) TH_LOG("%s", self->send_out);
	EXPECT_EQ(1, self->recv_rc) TH_LOG("%s", self->recv_out);
	json_str(self->send_out, "message", e, sizeof(e));
	EXPECT_NE(NULL, strstr(e, "pages")) TH_LOG("send: %s", e);
	sg = strstr(self->send_out, "\"guest\":{");
	ASSERT_NE(NULL, sg) TH_LOG("%s", self->send_out);
	EXPECT_STREQ("false", json_raw(sg, "paused", v, sizeof(v)));
	EXPECT_STREQ("null", json_raw(sg, "sha256", v, sizeof(v)));
}

TEST_F_TIMEOUT(mg, failure_after_the_switchover_resumes_the_guest, 180)
{
	const char *fault[] = { "vmigctl", "dev", "fault", self->dst.uuid,
				"load-at", "1M", NULL };
	char v[32], csum[32], state[32];
	const char *sg;
	pid_t pid;

	pid = spawn(self->out[0], self->out[1], fault);
	ASSERT_EQ(0, reap(pid));
	run_pair(_metadata, self, GUEST ",2000", GUEST, "--no-precopy");
	EXPECT_EQ(1, self->send_rc) TH_LOG("%s", self->send_out);
	EXPECT_EQ(1, self->recv_rc) TH_LOG("%s", self->recv_out);
	sg = strstr(self->send_out, "\"guest\":{");
	ASSERT_NE(NULL, sg) TH_LOG("%s", self->send_out);
	EXPECT_STREQ("true", json_raw(sg, "paused", v, sizeof(v)));
	EXPECT_STREQ("true", json_raw(sg, "resumed", v, sizeof(v)))
		TH_LOG("%s", self->send_err);
	EXPECT_STREQ("null", json_raw(sg, "sha256", v, sizeof(v)));
	/* The source device is RUNNING, its state what it was. */
	ASSERT_LT(0, migsim_attr_read(self->src.uuid, "checksum", csum,
				      sizeof(csum)));
	EXPECT_STREQ(self->before, csum);
	ASSERT_LT(0, migsim_attr_read(self->src.uuid, "migration_state",
				      state, sizeof(state)));
	EXPECT_STREQ("RUNNING", state);
}

TEST_HARNESS_MAIN

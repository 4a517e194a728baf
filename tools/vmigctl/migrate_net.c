// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmigctl migrate send|recv: migrate vfio-migsim devices from a source
 * process to a destination process with a libvmig session (one main
 * channel, N data channels, over a UNIX or loopback TCP socket).
 *
 *	vmigctl migrate recv --listen ADDR --secret-file F [NAME=]UUID...
 *	vmigctl migrate send --connect ADDR --secret-file F [NAME=]UUID...
 *
 * Both sides name the devices the same way (by position, "dev0", "dev1",
 * ..., or NAME=), since the source's and the destination's UUIDs differ.
 * The source ends with its devices stopped (or RUNNING again, on failure);
 * the destination loads the state and runs its devices.  Each side prints
 * the state checksums it sees: the source's while its devices are stopped,
 * the destination's once the state is loaded.
 *
 * With --guest, the session carries a guest's RAM too (guest.c): the
 * source runs a small KVM guest that dirties its RAM, pauses it at the
 * switchover, and both sides print the RAM's SHA-256.  With --postcopy
 * the RAM not sent by then goes after the session by postcopy, on the
 * same address (recv keeps its listening socket for it).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmig.h"
#include "vmigctl.h"

#define ATTR_LEN		64
#define DEFAULT_SESSION		"vmigctl"
#define DEFAULT_PRECOPY_MS	2000
#define COMPRESS_LEVEL		1
#define PC_RETRIES		3	/* as guest.c's PC_TRIES - 1 */
#define PC_RETRY_S		1

struct mn_dev {
	const char *uuid;
	char name[VMIG_DEVICE_NAME_MAX];
	struct vmig_vfio_dev *vfio;
	char sum_before[ATTR_LEN];
	char sum[ATTR_LEN];		/* source: stopped; dest: loaded */
	struct vmig_session_dev_stats st;
};

struct mn_opts {
	bool send;
	const char *addr;
	unsigned int channels;		/* 0: not given */
	uint8_t secret[VMIG_SECRET_MAX_LEN];
	size_t secret_len;
	char session[VMIG_SESSION_ID_LEN + 1];
	int zstd_level;
	bool precopy;
	unsigned int precopy_max_ms;
	unsigned int timeout_ms;
	uint64_t chunk_size;
	uint64_t mem_limit;
	bool json;
	uint64_t guest_size;		/* --guest: 0 without */
	uint64_t guest_rate;		/* pages/s per vCPU (source) */
	bool postcopy;			/* --postcopy */
	uint64_t ram_bandwidth;		/* --ram-bandwidth: bytes/s, 0 none */
	unsigned int downtime_ms;	/* --downtime: 0 the default */
	struct sockaddr_storage ss;
	int alen;
	unsigned int ndev;
	struct mn_dev *devs;
};

struct mn_result {
	int err;
	const char *stage;
	struct vmig_session_error e;
	bool have_error;
	struct vmig_session_stats st;
	bool ran;			/* the session was created */
	bool connected;			/* its channels were set up */
	bool resumed;
	const char *resume_problem;
	bool postcopy_failed;		/* the session succeeded, postcopy not */
	struct vmigctl_guest *guest;	/* --guest; freed after printing */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s migrate send [options] --connect ADDR [NAME=]UUID...\n"
		"       %s migrate recv [options] --listen ADDR [NAME=]UUID...\n"
		"\n"
		"Migrate vfio-migsim devices (by mdev UUID) from the process that\n"
		"runs \"send\" to the one that runs \"recv\", over one main channel\n"
		"and N data channels.  Give both sides the same number of devices\n"
		"in the same order: the source's first device goes to the\n"
		"destination's first, and so on (or name them, NAME=UUID, with the\n"
		"same names on both sides).  Start \"recv\" first.\n"
		"\n"
		"The source's devices end stopped (RUNNING again on failure); the\n"
		"destination's load the state and end RUNNING (reset on failure).\n"
		"Each side prints bytes per device, throughput and the devices'\n"
		"checksums: the source's read while stopped, the destination's once\n"
		"loaded; the two lists must be equal.\n"
		"\n"
		"ADDR: unix:/path, or HOST:PORT with a loopback HOST (127.0.0.1,\n"
		"[::1] or localhost): the state travels unencrypted.\n"
		"\n"
		"options:\n"
		"  --connect ADDR        send: the destination's address\n"
		"  --listen ADDR         recv: listen there (a UNIX socket file is\n"
		"                        created, and removed at the end)\n"
		"  --secret-file FILE    the shared secret: the file's bytes (16..256,\n"
		"                        one trailing newline dropped)\n"
		"  --secret HEX          the shared secret in hex (visible in ps)\n"
		"  --session NAME        session id, up to 16 bytes (default \"%s\")\n"
		"  --channels N          send: data channels (default 1, at most %d);\n"
		"                        recv: expect N (the source decides)\n"
		"  --compress[=LEVEL]    send: zstd-compress packets (level %d)\n"
		"  --no-precopy          send: no PRE_COPY phase, stop-copy only\n"
		"  --precopy-max-ms MS   send: switch over at the latest MS after the\n"
		"                        destination acknowledged the initial data\n"
		"                        (default %d; 0: only once no device has\n"
		"                        anything more to send)\n"
		"  --chunk-size SIZE     send: packet payload (default 1M)\n"
		"  --mem-limit SIZE      packet buffers per side (default 64M)\n"
		"  --timeout MS          handshakes, waiting for connections, and\n"
		"                        how long a TCP peer that acknowledges\n"
		"                        nothing (a partition) is waited for\n"
		"                        (default 10000)\n"
		"  --guest SIZE[,RATE]   migrate a guest's RAM in the same session.\n"
		"                        send: run a KVM test guest (needs /dev/kvm)\n"
		"                        of SIZE (a multiple of 2M) with 1 vCPU that\n"
		"                        writes RATE pages/s (default %d) in a\n"
		"                        quarter of its RAM, tracked with the KVM\n"
		"                        dirty ring; it is paused at the switchover\n"
		"                        (and resumed if the migration fails).\n"
		"                        recv: --guest SIZE, the same SIZE.  Both\n"
		"                        sides print the SHA-256 of the guest RAM.\n"
		"  --postcopy            send, with --guest: the RAM may switch\n"
		"                        over to postcopy (also on a STUCK verdict;\n"
		"                        recv follows the source, the option is\n"
		"                        accepted there and changes nothing):\n"
		"                        after the session, the source serves the\n"
		"                        rest of the RAM to the same ADDR (retried\n"
		"                        %d times, %d s apart, on a broken\n"
		"                        connection) and recv accepts it on its\n"
		"                        listening socket (again after a break);\n"
		"                        recv's SHA-256 is taken after postcopy\n"
		"  --ram-bandwidth SIZE[/s]  send, with --guest: limit the RAM\n"
		"                        precopy to SIZE bytes/s (default: none)\n"
		"  --downtime MS         send, with --guest: the downtime limit of\n"
		"                        the convergence model (default 300)\n"
		"  --json                print the result as one JSON object\n"
		"  -h, --help            this help\n"
		"\n"
		"exit status: 0 on success, 1 on failure, 2 on a bad command line.\n",
		vmigctl_prog, vmigctl_prog, DEFAULT_SESSION, VMIG_MAX_CHANNELS,
		COMPRESS_LEVEL, DEFAULT_PRECOPY_MS, VMIGCTL_GUEST_RATE,
		PC_RETRIES, PC_RETRY_S);
}

/* ------------------------------------------------------------ parsing */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_secret_hex(const char *s, struct mn_opts *o)
{
	size_t len = strlen(s), i;
	int hi, lo;

	if (len % 2 || len / 2 < VMIG_SECRET_MIN_LEN ||
	    len / 2 > VMIG_SECRET_MAX_LEN) {
		vmigctl_error("--secret: %d to %d bytes in hex", VMIG_SECRET_MIN_LEN,
			      VMIG_SECRET_MAX_LEN);
		return -EINVAL;
	}
	for (i = 0; i < len / 2; i++) {
		hi = hexval(s[2 * i]);
		lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			vmigctl_error("--secret: not a hex string");
			return -EINVAL;
		}
		o->secret[i] = hi << 4 | lo;
	}
	o->secret_len = len / 2;
	return 0;
}

static int read_secret_file(const char *path, struct mn_opts *o)
{
	uint8_t buf[VMIG_SECRET_MAX_LEN + 2];
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		vmigctl_error("--secret-file %s: %s", path, strerror(errno));
		return -errno;
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vmigctl_error("--secret-file %s: %s", path,
				      strerror(errno));
			close(fd);
			return -EIO;
		}
		if (!n)
			break;
		len += n;
	}
	close(fd);
	if (len && buf[len - 1] == '\n')
		len--;
	if (len < VMIG_SECRET_MIN_LEN || len > VMIG_SECRET_MAX_LEN) {
		vmigctl_error("--secret-file %s: the secret must have %d to %d bytes",
			      path, VMIG_SECRET_MIN_LEN, VMIG_SECRET_MAX_LEN);
		return -EINVAL;
	}
	memcpy(o->secret, buf, len);
	o->secret_len = len;
	memset(buf, 0, sizeof(buf));
	return 0;
}

static bool loopback4(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

/*
 * unix:/path, or HOST:PORT with a loopback host (IPv6 in brackets).  Fills
 * ss; returns the address length or a negative errno (with a message).
 */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
	char host[64];
	struct sockaddr_in *in;
	const char *colon, *h;
	unsigned long port;
	size_t hlen;
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (!strncmp(s, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;

		if (!s[5] || strlen(s + 5) >= sizeof(un->sun_path)) {
			vmigctl_error("%s: an empty or too long socket path", s);
			return -EINVAL;
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, s + 5);
		return sizeof(*un);
	}
	colon = strrchr(s, ':');
	if (!colon || colon == s) {
		vmigctl_error("%s: not unix:/path or HOST:PORT", s);
		return -EINVAL;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || !colon[1] || *end || !port || port > 65535) {
		vmigctl_error("%s: bad port", s);
		return -EINVAL;
	}
	h = s;
	hlen = colon - s;
	if (h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen >= sizeof(host)) {
		vmigctl_error("%s: bad host", s);
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (strchr(host, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
			vmigctl_error("%s: bad IPv6 address", s);
			return -EINVAL;
		}
		if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
			vmigctl_error("%s: only a loopback address is allowed", s);
			return -EPERM;
		}
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return sizeof(*in6);
	}
	in = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
		vmigctl_error("%s: bad IPv4 address (no host names but localhost)",
			      s);
		return -EINVAL;
	}
	if (!loopback4(&in->sin_addr)) {
		vmigctl_error("%s: only a loopback address is allowed", s);
		return -EPERM;
	}
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	return sizeof(*in);
}

static int parse_uint(const char *name, const char *arg, unsigned long max,
		      unsigned int *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 0);
	if (errno || !*arg || *end || v > max) {
		vmigctl_error("%s: bad number \"%s\" (0..%lu)", name, arg, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* SIZE or SIZE/s: bytes per second, at least 1. */
static int parse_bandwidth(const char *arg, uint64_t *out)
{
	char buf[64];
	size_t len = strlen(arg);
	int ret;

	if (len >= 2 && !strcmp(arg + len - 2, "/s"))
		len -= 2;
	if (!len || len >= sizeof(buf)) {
		vmigctl_error("--ram-bandwidth: bad rate \"%s\" (SIZE/s)", arg);
		return -EINVAL;
	}
	memcpy(buf, arg, len);
	buf[len] = '\0';
	ret = vmigctl_parse_size(buf, out);
	if (ret || !*out) {
		vmigctl_error("--ram-bandwidth: bad rate \"%s\" (SIZE/s, at least 1 byte/s)",
			      arg);
		return -EINVAL;
	}
	return 0;
}

static int parse_devs(struct mn_opts *o, int argc, char **argv)
{
	unsigned int i, j;
	const char *eq;

	o->ndev = argc;
	o->devs = calloc(argc, sizeof(*o->devs));
	if (!o->devs)
		return -ENOMEM;
	for (i = 0; i < o->ndev; i++) {
		struct mn_dev *d = &o->devs[i];

		eq = strchr(argv[i], '=');
		if (eq) {
			if (eq == argv[i] ||
			    (size_t)(eq - argv[i]) >= sizeof(d->name) ||
			    !eq[1]) {
				vmigctl_error("%s: NAME=UUID with a name of 1 to %d bytes",
					      argv[i], VMIG_DEVICE_NAME_MAX - 1);
				return -EINVAL;
			}
			memcpy(d->name, argv[i], eq - argv[i]);
			d->uuid = eq + 1;
		} else {
			snprintf(d->name, sizeof(d->name), "dev%u", i);
			d->uuid = argv[i];
		}
		for (j = 0; j < i; j++) {
			if (!strcmp(o->devs[j].uuid, d->uuid) ||
			    !strcmp(o->devs[j].name, d->name)) {
				vmigctl_error("%s: a device or name given twice",
					      argv[i]);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ running */

static void read_checksum(const char *uuid, char *buf)
{
	if (vmigctl_read_migsim_attr(uuid, "checksum", buf, ATTR_LEN))
		buf[0] = '\0';
}

static int listen_on(const struct sockaddr_storage *ss, int len)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
	struct stat st;
	int fd, one = 1;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (ss->ss_family == AF_UNIX) {
		/* A stale socket file of an earlier run, not any file. */
		if (!lstat(un->sun_path, &st) && S_ISSOCK(st.st_mode))
			unlink(un->sun_path);
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)ss, len) ||
	    listen(fd, VMIG_MAX_CHANNELS + 1)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void collect(struct vmig_session *s, struct mn_opts *o,
		    struct mn_result *r)
{
	unsigned int i;

	vmig_session_get_stats(s, &r->st);
	for (i = 0; i < o->ndev; i++)
		vmig_session_get_device_stats(s, i, &o->devs[i].st);
}

/*
 * The session ran (ret): its figures, the guest's end, and on success the
 * devices' checksums while they are stopped (the source's: the state that
 * was sent; the destination's: loaded, not started yet).
 */
static void session_over(struct vmig_session *s, struct mn_opts *o,
			 struct mn_result *r, int ret)
{
	unsigned int i;

	collect(s, o, r);
	if (r->guest)
		vmigctl_guest_end(r->guest, s, ret);
	for (i = 0; !ret && i < o->ndev; i++)
		read_checksum(o->devs[i].uuid, o->devs[i].sum);
}

static int migrate(struct mn_opts *o, struct mn_result *r)
{
	struct vmig_session_config cfg;
	struct vmig_session *s = NULL;
	int lfd = -1, ret;
	unsigned int i;

	if (o->guest_size) {
		/* First: without /dev/kvm nothing else is worth doing. */
		r->stage = "creating the guest";
		ret = vmigctl_guest_new(o->send, o->guest_size, o->guest_rate,
					&r->guest);
		if (ret)
			goto out;
		vmigctl_guest_set_options(r->guest, o->postcopy,
					  o->ram_bandwidth,
					  o->downtime_ms * 1000000ULL);
	}
	for (i = 0; i < o->ndev; i++) {
		struct mn_dev *d = &o->devs[i];

		read_checksum(d->uuid, d->sum_before);
		r->stage = "opening a device";
		ret = vmig_vfio_open_mdev(d->uuid, &d->vfio);
		if (ret) {
			d->vfio = NULL;
			vmigctl_error("%s: cannot open: %s", d->uuid,
				      strerror(-ret));
			goto out;
		}
	}

	vmig_session_config_init(&cfg);
	memcpy(cfg.session_id, o->session, VMIG_SESSION_ID_LEN);
	cfg.secret = o->secret;
	cfg.secret_len = o->secret_len;
	if (o->send && o->channels)
		cfg.channels = o->channels;
	if (o->chunk_size)
		cfg.chunk_size = o->chunk_size;
	if (o->mem_limit)
		cfg.mem_limit = o->mem_limit;
	cfg.zstd_level = o->zstd_level;
	cfg.precopy = o->precopy;
	cfg.precopy_max_ms = o->precopy_max_ms;
	if (o->timeout_ms)
		cfg.timeout_ms = o->timeout_ms;
	if (r->guest)
		vmigctl_guest_config(r->guest, &cfg);

	r->stage = "creating the session";
	ret = vmig_session_create(o->send ? VMIG_ROLE_SOURCE :
				  VMIG_ROLE_DESTINATION, &cfg, &s);
	if (ret) {
		s = NULL;
		goto out;
	}
	r->ran = true;
	r->stage = "adding the devices";
	for (i = 0; i < o->ndev; i++) {
		ret = vmig_session_add_vfio_named(s, o->devs[i].vfio,
						  o->devs[i].name);
		if (ret < 0) {
			vmigctl_error("%s: %s", o->devs[i].uuid,
				      strerror(-ret));
			goto out;
		}
	}
	if (r->guest) {
		r->stage = "adding the guest RAM";
		ret = vmigctl_guest_add(r->guest, s);
		if (ret)
			goto out;
	}

	if (o->send) {
		r->stage = "connecting";
		ret = vmig_session_connect(s, (struct sockaddr *)&o->ss,
					   o->alen);
		if (!ret) {
			r->connected = true;
			r->stage = "migrating";
			ret = vmig_session_run_source(s);
		}
		session_over(s, o, r, ret);
		if (!ret && r->guest && o->postcopy) {
			r->stage = "postcopy";
			ret = vmigctl_guest_postcopy_src(r->guest, &cfg,
					(struct sockaddr *)&o->ss, o->alen);
			r->postcopy_failed = ret != 0;
		}
	} else {
		r->stage = "listening";
		lfd = listen_on(&o->ss, o->alen);
		if (lfd < 0) {
			ret = lfd;
			vmigctl_error("%s: %s", o->addr, strerror(-ret));
			goto out;
		}
		r->stage = "waiting for the source";
		ret = vmig_session_accept(s, lfd);
		if (!ret && o->channels) {
			collect(s, o, r);
			if (r->st.channels != o->channels) {
				vmigctl_error("the source opened %u data channels, not %u",
					      r->st.channels, o->channels);
				/* Tells the source why. */
				vmig_session_abort(s);
				ret = -EPROTO;
			}
		}
		if (!ret) {
			r->connected = true;
			r->stage = "migrating";
			ret = vmig_session_run_destination(s);
		}
		session_over(s, o, r, ret);
		if (!ret) {
			r->stage = "starting the devices";
			ret = vmig_session_resume(s);
			if (ret)
				r->resume_problem = "the devices loaded but did not start";
			else
				r->resumed = true;
		}
		if (!ret && r->guest && vmigctl_guest_postcopy(r->guest)) {
			/* The listening socket is still open: the same ADDR. */
			r->stage = "postcopy";
			ret = vmigctl_guest_postcopy_dest(r->guest, &cfg, lfd);
			r->postcopy_failed = ret != 0;
		}
	}
	if (ret && !r->postcopy_failed && vmig_session_get_error(s, &r->e))
		r->have_error = true;
	if (!ret)
		r->stage = NULL;

out:
	r->err = ret;
	vmig_session_destroy(s);
	if (lfd >= 0) {
		close(lfd);
		if (o->ss.ss_family == AF_UNIX)
			unlink(((struct sockaddr_un *)&o->ss)->sun_path);
	}
	for (i = 0; i < o->ndev; i++)
		vmig_vfio_close(o->devs[i].vfio);
	return ret;
}

/* ----------------------------------------------------------- printing */

static double rate(uint64_t bytes, uint64_t ns)
{
	return ns ? bytes / (ns / 1e9) / 1e6 : 0.0;
}

static void print_human(const struct mn_opts *o, const struct mn_result *r)
{
	const struct vmig_session_stats *st = &r->st;
	unsigned int i;
	char sz[32];

	if (!r->connected)
		goto result;
	printf("migrate %s %s: %u device%s, %u data channel%s%s\n",
	       o->send ? "send to" : "recv on", o->addr, o->ndev,
	       o->ndev == 1 ? "" : "s", st->channels,
	       st->channels == 1 ? "" : "s",
	       o->zstd_level ? ", zstd" : "");
	for (i = 0; i < o->ndev; i++) {
		const struct mn_dev *d = &o->devs[i];

		printf("  %-8s %s  %12llu bytes", d->name, d->uuid,
		       (unsigned long long)d->st.device_bytes);
		if (o->send)
			printf(" (precopy %llu, stop-copy %llu)",
			       (unsigned long long)d->st.precopy_bytes,
			       (unsigned long long)d->st.stopcopy_bytes);
		if (*d->sum)
			printf("  checksum %s %s (before %s)", d->sum,
			       o->send ? "stopped" : "loaded",
			       *d->sum_before ? d->sum_before : "?");
		putchar('\n');
	}
	printf("  device bytes:   %llu (%s)\n",
	       (unsigned long long)st->device_bytes,
	       vmigctl_format_size(st->device_bytes, sz, sizeof(sz)));
	if (o->send)
		printf("  precopy bytes:  %llu\n",
		       (unsigned long long)st->precopy_bytes);
	printf("  wire bytes:     %llu in %llu packets\n",
	       (unsigned long long)st->wire_bytes,
	       (unsigned long long)st->packets);
	printf("  elapsed:        %.3f s\n", st->total_ns / 1e9);
	printf("  throughput:     %.1f MB/s\n",
	       rate(st->device_bytes, st->total_ns));
	if (o->send)
		printf("  downtime:       %.3f ms (devices stopped until the destination loaded)\n",
		       st->downtime_ns / 1e6);
	printf("  peak buffers:   %.1f of %.1f MiB\n", st->peak_mem / 1048576.0,
	       st->mem_limit / 1048576.0);
	if (r->guest)
		vmigctl_guest_print(r->guest, stdout);

result:
	if (!o->send && st->refused)
		printf("  refused:        %llu connections\n",
		       (unsigned long long)st->refused);
	if (r->err) {
		if (r->have_error) {
			vmigctl_error("migration failed: %s%s (%s)",
				      r->e.remote ? "the peer reported: " : "",
				      r->e.msg, strerror(-r->e.err));
			if (r->e.device >= 0 && r->e.device < (int)o->ndev)
				vmigctl_error("failed device: %d (%s, %s)",
					      r->e.device,
					      o->devs[r->e.device].name,
					      o->devs[r->e.device].uuid);
			if (r->e.channel >= 0)
				vmigctl_error("failed channel: %d (%s)",
					      r->e.channel, r->e.channel ?
					      "data" : "main");
		} else {
			vmigctl_error("migration failed %s: %s",
				      r->stage ? r->stage : "",
				      strerror(-r->err));
		}
		if (r->resume_problem)
			vmigctl_error("%s", r->resume_problem);
		else if (r->postcopy_failed)
			vmigctl_error("%s", o->send ?
				      "the devices' state is on the destination; postcopy did not finish" :
				      "the devices loaded and are RUNNING; the guest RAM is incomplete");
		else if (r->connected)
			vmigctl_error("%s", o->send ?
				      "the source devices are RUNNING again" :
				      "the destination devices were reset");
		if (r->connected && vmigctl_guest_failure_note(r->guest))
			vmigctl_error("%s",
				      vmigctl_guest_failure_note(r->guest));
		printf("  result:         FAILED\n");
	} else {
		printf("  result:         %s%s\n", o->send ?
		       "migrated; source devices stopped" :
		       "loaded; destination devices RUNNING",
		       r->guest && o->postcopy ?
		       (o->send ? "; guest RAM sent by postcopy" :
			"; guest RAM complete after postcopy") : "");
	}
}

static void print_json(const struct mn_opts *o, const struct mn_result *r)
{
	const struct vmig_session_stats *st = &r->st;
	unsigned int i;

	printf("{\"ok\":%s,\"role\":\"%s\",", r->err ? "false" : "true",
	       o->send ? "source" : "destination");
	printf("\"address\":");
	vmigctl_json_string(stdout, o->addr);
	printf(",\"channels\":%u,\"compress\":%s,\"devices\":[", st->channels,
	       o->zstd_level ? "true" : "false");
	for (i = 0; i < o->ndev; i++) {
		const struct mn_dev *d = &o->devs[i];

		printf("%s{\"name\":", i ? "," : "");
		vmigctl_json_string(stdout, d->name);
		printf(",\"uuid\":");
		vmigctl_json_string(stdout, d->uuid);
		printf(",\"bytes\":%llu",
		       (unsigned long long)d->st.device_bytes);
		if (o->send)
			printf(",\"precopy_bytes\":%llu,\"stop_copy_bytes\":%llu",
			       (unsigned long long)d->st.precopy_bytes,
			       (unsigned long long)d->st.stopcopy_bytes);
		printf(",\"checksum_before\":");
		if (*d->sum_before)
			vmigctl_json_string(stdout, d->sum_before);
		else
			printf("null");
		printf(",\"checksum\":");
		if (*d->sum)
			vmigctl_json_string(stdout, d->sum);
		else
			printf("null");
		printf("}");
	}
	printf("],\"device_bytes\":%llu,\"precopy_bytes\":%llu,",
	       (unsigned long long)st->device_bytes,
	       (unsigned long long)st->precopy_bytes);
	printf("\"wire_bytes\":%llu,\"packets\":%llu,",
	       (unsigned long long)st->wire_bytes,
	       (unsigned long long)st->packets);
	printf("\"elapsed_s\":%.6f,\"mb_per_s\":%.3f,", st->total_ns / 1e9,
	       rate(st->device_bytes, st->total_ns));
	if (o->send)
		printf("\"downtime_ms\":%.3f,", st->downtime_ns / 1e6);
	else
		printf("\"downtime_ms\":null,");
	printf("\"peak_mem\":%llu,\"mem_limit\":%llu,\"refused\":%llu,",
	       (unsigned long long)st->peak_mem,
	       (unsigned long long)st->mem_limit,
	       (unsigned long long)st->refused);
	printf("\"guest\":");
	if (r->guest)
		vmigctl_guest_print_json(r->guest, stdout);
	else
		printf("null");
	printf(",");
	if (!r->err) {
		printf("\"error\":null}\n");
		return;
	}
	printf("\"error\":{\"errno\":%d,\"message\":",
	       -(r->have_error ? r->e.err : r->err));
	vmigctl_json_string(stdout, r->have_error ? r->e.msg :
			    strerror(-r->err));
	printf(",\"stage\":");
	if (r->stage)
		vmigctl_json_string(stdout, r->stage);
	else
		printf("null");
	if (r->have_error)
		printf(",\"device\":%d,\"channel\":%d,\"remote\":%s}}\n",
		       r->e.device, r->e.channel,
		       r->e.remote ? "true" : "false");
	else
		printf(",\"device\":null,\"channel\":null,\"remote\":false}}\n");
}

/* ------------------------------------------------------------- command */

static int migrate_net_run(int argc, char **argv)
{
	enum {
		OPT_CONNECT = 256, OPT_LISTEN, OPT_SECRET_FILE, OPT_SECRET,
		OPT_SESSION, OPT_CHANNELS, OPT_COMPRESS, OPT_NO_PRECOPY,
		OPT_PRECOPY_MAX_MS, OPT_CHUNK, OPT_MEM, OPT_TIMEOUT, OPT_JSON,
		OPT_GUEST, OPT_POSTCOPY, OPT_RAM_BANDWIDTH, OPT_DOWNTIME,
	};
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, OPT_CONNECT },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "secret-file", required_argument, NULL, OPT_SECRET_FILE },
		{ "secret", required_argument, NULL, OPT_SECRET },
		{ "session", required_argument, NULL, OPT_SESSION },
		{ "channels", required_argument, NULL, OPT_CHANNELS },
		{ "compress", optional_argument, NULL, OPT_COMPRESS },
		{ "no-precopy", no_argument, NULL, OPT_NO_PRECOPY },
		{ "precopy-max-ms", required_argument, NULL,
		  OPT_PRECOPY_MAX_MS },
		{ "chunk-size", required_argument, NULL, OPT_CHUNK },
		{ "mem-limit", required_argument, NULL, OPT_MEM },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "guest", required_argument, NULL, OPT_GUEST },
		{ "postcopy", no_argument, NULL, OPT_POSTCOPY },
		{ "ram-bandwidth", required_argument, NULL, OPT_RAM_BANDWIDTH },
		{ "downtime", required_argument, NULL, OPT_DOWNTIME },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mn_opts o = {
		.precopy = true,
		.precopy_max_ms = DEFAULT_PRECOPY_MS,
	};
	struct mn_result r = { 0 };
	const char *connect_addr = NULL, *listen_addr = NULL;
	unsigned int level;
	bool have_secret = false;
	int c, ret;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? VMIGCTL_EXIT_USAGE : VMIGCTL_EXIT_OK;
	}
	if (!strcmp(argv[1], "send")) {
		o.send = true;
	} else if (strcmp(argv[1], "recv")) {
		vmigctl_error("migrate: unknown subcommand \"%s\" (send or recv)",
			      argv[1]);
		return VMIGCTL_EXIT_USAGE;
	}
	snprintf(o.session, sizeof(o.session), "%s", DEFAULT_SESSION);
	argc--;
	argv++;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_CONNECT:
			connect_addr = optarg;
			break;
		case OPT_LISTEN:
			listen_addr = optarg;
			break;
		case OPT_SECRET_FILE:
			if (have_secret || read_secret_file(optarg, &o))
				goto bad_secret;
			have_secret = true;
			break;
		case OPT_SECRET:
			if (have_secret || parse_secret_hex(optarg, &o))
				goto bad_secret;
			have_secret = true;
			break;
		case OPT_SESSION:
			if (!*optarg || strlen(optarg) > VMIG_SESSION_ID_LEN) {
				vmigctl_error("--session: 1 to %d bytes",
					      VMIG_SESSION_ID_LEN);
				return VMIGCTL_EXIT_USAGE;
			}
			memset(o.session, 0, sizeof(o.session));
			memcpy(o.session, optarg, strlen(optarg));
			break;
		case OPT_CHANNELS:
			if (parse_uint("--channels", optarg, VMIG_MAX_CHANNELS,
				       &o.channels))
				return VMIGCTL_EXIT_USAGE;
			if (!o.channels) {
				vmigctl_error("--channels: at least 1");
				return VMIGCTL_EXIT_USAGE;
			}
			break;
		case OPT_COMPRESS:
			level = COMPRESS_LEVEL;
			if (optarg && parse_uint("--compress", optarg, 19,
						 &level))
				return VMIGCTL_EXIT_USAGE;
			o.zstd_level = level ? level : COMPRESS_LEVEL;
			break;
		case OPT_NO_PRECOPY:
			o.precopy = false;
			break;
		case OPT_PRECOPY_MAX_MS:
			if (parse_uint("--precopy-max-ms", optarg, 3600000,
				       &o.precopy_max_ms))
				return VMIGCTL_EXIT_USAGE;
			break;
		case OPT_CHUNK:
			if (vmigctl_parse_size_opt("--chunk-size", optarg,
					   &o.chunk_size))
				return VMIGCTL_EXIT_USAGE;
			if (!o.chunk_size || o.chunk_size > (64ULL << 20)) {
				vmigctl_error("--chunk-size: 1 byte to 64M");
				return VMIGCTL_EXIT_USAGE;
			}
			break;
		case OPT_MEM:
			if (vmigctl_parse_size_opt("--mem-limit", optarg, &o.mem_limit))
				return VMIGCTL_EXIT_USAGE;
			break;
		case OPT_TIMEOUT:
			if (parse_uint("--timeout", optarg, 3600000,
				       &o.timeout_ms))
				return VMIGCTL_EXIT_USAGE;
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_GUEST:
			if (vmigctl_guest_parse(optarg, o.send, &o.guest_size,
						&o.guest_rate))
				return VMIGCTL_EXIT_USAGE;
			break;
		case OPT_POSTCOPY:
			o.postcopy = true;
			break;
		case OPT_RAM_BANDWIDTH:
			if (parse_bandwidth(optarg, &o.ram_bandwidth))
				return VMIGCTL_EXIT_USAGE;
			break;
		case OPT_DOWNTIME:
			if (parse_uint("--downtime", optarg, 3600000,
				       &o.downtime_ms))
				return VMIGCTL_EXIT_USAGE;
			if (!o.downtime_ms) {
				vmigctl_error("--downtime: at least 1 ms");
				return VMIGCTL_EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return VMIGCTL_EXIT_OK;
		default:
			usage(stderr);
			return VMIGCTL_EXIT_USAGE;
		}
	}
	if (o.send ? !connect_addr || listen_addr :
		     !listen_addr || connect_addr) {
		vmigctl_error("migrate %s needs %s ADDR", o.send ? "send" : "recv",
			      o.send ? "--connect" : "--listen");
		return VMIGCTL_EXIT_USAGE;
	}
	if (!o.send && (o.zstd_level || !o.precopy || o.chunk_size)) {
		vmigctl_error("--compress, --no-precopy and --chunk-size are the source's (send) options");
		return VMIGCTL_EXIT_USAGE;
	}
	if (!o.send && (o.ram_bandwidth || o.downtime_ms)) {
		vmigctl_error("--ram-bandwidth and --downtime are the source's (send) options");
		return VMIGCTL_EXIT_USAGE;
	}
	if (!o.guest_size && (o.postcopy || o.ram_bandwidth || o.downtime_ms)) {
		vmigctl_error("--postcopy, --ram-bandwidth and --downtime need --guest");
		return VMIGCTL_EXIT_USAGE;
	}
	if (!have_secret) {
		vmigctl_error("a secret is needed: --secret-file FILE or --secret HEX");
		return VMIGCTL_EXIT_USAGE;
	}
	if (optind >= argc) {
		vmigctl_error("no devices given");
		usage(stderr);
		return VMIGCTL_EXIT_USAGE;
	}
	if (argc - optind > VMIG_MAX_DEVICES) {
		vmigctl_error("at most %d devices", VMIG_MAX_DEVICES);
		return VMIGCTL_EXIT_USAGE;
	}
	o.addr = o.send ? connect_addr : listen_addr;
	o.alen = parse_addr(o.addr, &o.ss);
	if (o.alen < 0)
		return VMIGCTL_EXIT_USAGE;
	ret = parse_devs(&o, argc - optind, argv + optind);
	if (ret) {
		free(o.devs);
		return ret == -ENOMEM ? VMIGCTL_EXIT_FAIL : VMIGCTL_EXIT_USAGE;
	}

	ret = migrate(&o, &r);
	memset(o.secret, 0, sizeof(o.secret));
	if (o.json)
		print_json(&o, &r);
	else if (r.ran)
		print_human(&o, &r);
	else if (r.stage)
		vmigctl_error("migrate %s failed %s: %s", argv[0], r.stage,
			      strerror(-ret));
	vmigctl_guest_free(r.guest);
	free(o.devs);
	return ret ? VMIGCTL_EXIT_FAIL : VMIGCTL_EXIT_OK;

bad_secret:
	if (have_secret)
		vmigctl_error("give one of --secret-file and --secret");
	return VMIGCTL_EXIT_USAGE;
}

const struct vmigctl_group vmigctl_migrate_net = {
	.name = "migrate",
	.summary = "migrate devices to another process (send | recv)",
	.run = migrate_net_run,
	.usage = usage,
};

// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmigctl migrate-local: move one device's state into another device on the
 * same host through their VFIO migration data fds, and check the result
 * with the driver's state checksums.
 *
 *	source:      RUNNING [-> PRE_COPY, read until ENOMSG] -> STOP_COPY,
 *	             read until EOF, -> RUNNING
 *	destination: RUNNING -> RESUMING, write everything, -> STOP -> RUNNING
 *
 * On failure the source goes back to RUNNING and the destination is reset.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmig.h"
#include "vmigctl.h"

#define DEFAULT_BUF_SIZE	(1U << 20)
#define MAX_BUF_SIZE		(1ULL << 30)
#define ATTR_LEN		256

struct ml_opts {
	bool precopy;
	bool json;
	uint64_t buf_size;
	uint64_t precopy_limit;		/* 0: until ENOMSG */
	const char *src;
	const char *dst;
};

struct precopy_info {
	bool valid;
	uint64_t initial;
	uint64_t dirty;
};

struct ml_result {
	uint64_t precopy_bytes;
	uint64_t stop_copy_bytes;
	bool have_state_size;
	uint64_t state_size;
	bool have_data_size;
	uint64_t data_size;		/* MIG_DATA_SIZE before STOP_COPY */
	struct precopy_info pre_before, pre_after;
	bool precopy_limited;
	double elapsed;			/* first arc .. destination loaded */
	double downtime;		/* source stopped .. destination runs */
	char src_sum_before[ATTR_LEN], dst_sum_before[ATTR_LEN];
	char src_sum[ATTR_LEN], dst_sum[ATTR_LEN];
	bool compared;
	bool match;
	/* failure */
	int err;			/* negative errno, 0 */
	const char *stage;
	char dst_last_error[ATTR_LEN];
	bool rolled_back;
	const char *rollback_problem;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s migrate-local [options] <src-uuid> <dst-uuid>\n"
		"\n"
		"Migrate the state of one vfio-migsim device into another on this\n"
		"host through their VFIO migration data fds, then compare the\n"
		"devices' state checksums.  The source keeps running afterwards\n"
		"(or again, on failure); the destination runs with the state\n"
		"(or is reset, on failure).\n"
		"\n"
		"options:\n"
		"  --precopy             first move the source to PRE_COPY and copy\n"
		"                        until it has no more data (ENOMSG)\n"
		"  --precopy-limit SIZE  stop the precopy phase after SIZE bytes\n"
		"  --buf-size SIZE       read()/write() size (default 1M; K/M/G)\n"
		"  --json                print the result as one JSON object\n"
		"  -h, --help            this help\n"
		"\n"
		"exit status: 0 when the checksums match, 1 on a mismatch or any\n"
		"failure, 2 on a bad command line.\n", vmigctl_prog);
}

/* ------------------------------------------------------------ copying */

static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * Copy from the source data fd to the destination's until EOF or, in
 * PRE_COPY, until the source has nothing more for now (ENOMSG) or limit
 * bytes (0: no limit) have been copied.
 */
static int copy_stream(int in, int out, char *buf, size_t len, bool precopy,
		       uint64_t limit, uint64_t *bytes, bool *limited,
		       bool *refused, const char **stage)
{
	ssize_t n;
	int ret;

	for (;;) {
		if (precopy && limit && *bytes >= limit) {
			*limited = true;
			return 0;
		}
		n = read(in, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (precopy && errno == ENOMSG)
				return 0;
			*stage = "reading the source data fd";
			return -errno;
		}
		if (n == 0)
			return 0;
		ret = write_all(out, buf, n);
		if (ret) {
			*stage = "writing the destination data fd";
			*refused = true;
			return ret;
		}
		*bytes += n;
	}
}

static void get_precopy_info(int fd, struct precopy_info *pi)
{
	pi->valid = !vmig_precopy_info(fd, &pi->initial, &pi->dirty, NULL);
}

/* --------------------------------------------------------- migrating */

static void read_checksum(const char *uuid, char *buf)
{
	if (vmigctl_read_migsim_attr(uuid, "checksum", buf, ATTR_LEN))
		buf[0] = '\0';
}

static void read_last_error(const char *uuid, struct ml_result *r)
{
	if (vmigctl_read_migsim_attr(uuid, "last_error", r->dst_last_error,
				     sizeof(r->dst_last_error)))
		snprintf(r->dst_last_error, sizeof(r->dst_last_error),
			 "(unreadable)");
}

static bool checksums_equal(const char *a, const char *b)
{
	unsigned long long x, y;
	char *end;

	if (!*a || !*b)
		return false;
	x = strtoull(a, &end, 0);
	if (*end)
		return !strcmp(a, b);
	y = strtoull(b, &end, 0);
	if (*end)
		return !strcmp(a, b);
	return x == y;
}

static int check_flags(struct vmig_vfio_dev *dev, bool need_precopy,
		       const char **stage)
{
	uint32_t flags;
	int ret;

	ret = vmig_vfio_mig_flags(dev, &flags);
	if (ret) {
		*stage = "querying migration support";
		return ret;
	}
	if (!(flags & VMIG_MIG_STOP_COPY)) {
		*stage = "checking migration support (no STOP_COPY)";
		return -EOPNOTSUPP;
	}
	if (need_precopy && !(flags & VMIG_MIG_PRE_COPY)) {
		*stage = "checking migration support (no PRE_COPY)";
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Failure: source back to RUNNING, destination reset. */
static void roll_back(struct vmig_vfio_dev *src, struct vmig_vfio_dev *dst,
		      bool src_moved, bool dst_moved, struct ml_result *r)
{
	r->rolled_back = true;
	if (src_moved && vmig_vfio_set_state(src, VMIG_STATE_RUNNING, NULL)) {
		/* e.g. ERROR: only a reset brings it back. */
		if (vmig_vfio_reset(src))
			r->rollback_problem =
				"the source could not be returned to RUNNING";
		else
			r->rollback_problem =
				"the source had to be reset to return to RUNNING";
	}
	if (dst_moved && vmig_vfio_reset(dst) && !r->rollback_problem)
		r->rollback_problem = "the destination could not be reset";
}

static int migrate(const struct ml_opts *o, struct ml_result *r)
{
	struct vmig_vfio_dev *src = NULL, *dst = NULL;
	bool src_moved = false, dst_moved = false, unused = false;
	bool dst_refused = false;
	int src_fd = -1, dst_fd = -1, fd, ret;
	double t0, t_stop;
	char attr[ATTR_LEN];
	char *buf = NULL;

	read_checksum(o->src, r->src_sum_before);
	read_checksum(o->dst, r->dst_sum_before);
	if (!vmigctl_read_migsim_attr(o->src, "state_size", attr,
				      sizeof(attr)) &&
	    !vmigctl_parse_size(attr, &r->state_size))
		r->have_state_size = true;

	buf = malloc(o->buf_size);
	if (!buf) {
		r->stage = "allocating the copy buffer";
		ret = -ENOMEM;
		goto out;
	}

	r->stage = "opening the source";
	ret = vmig_vfio_open_mdev(o->src, &src);
	if (ret)
		goto out;
	r->stage = "opening the destination";
	ret = vmig_vfio_open_mdev(o->dst, &dst);
	if (ret)
		goto out;
	ret = check_flags(src, o->precopy, &r->stage);
	if (ret)
		goto out;
	ret = check_flags(dst, false, &r->stage);
	if (ret)
		goto out;

	t0 = vmigctl_now();

	r->stage = "moving the destination to RESUMING";
	dst_moved = true;
	ret = vmig_vfio_set_state(dst, VMIG_STATE_RESUMING, &dst_fd);
	if (!ret && dst_fd < 0)
		ret = -EBADF;
	if (ret)
		goto fail;

	if (o->precopy) {
		r->stage = "moving the source to PRE_COPY";
		src_moved = true;
		ret = vmig_vfio_set_state(src, VMIG_STATE_PRE_COPY, &src_fd);
		if (!ret && src_fd < 0)
			ret = -EBADF;
		if (ret)
			goto fail;
		get_precopy_info(src_fd, &r->pre_before);
		ret = copy_stream(src_fd, dst_fd, buf, o->buf_size, true,
				  o->precopy_limit, &r->precopy_bytes,
				  &r->precopy_limited, &dst_refused, &r->stage);
		if (ret)
			goto fail;
		get_precopy_info(src_fd, &r->pre_after);
	}

	if (!vmig_vfio_stop_copy_size(src, &r->data_size))
		r->have_data_size = true;

	r->stage = "moving the source to STOP_COPY";
	t_stop = vmigctl_now();
	src_moved = true;
	ret = vmig_vfio_set_state(src, VMIG_STATE_STOP_COPY, &fd);
	if (ret)
		goto fail;
	/* From PRE_COPY the same fd carries the rest of the stream. */
	if (fd >= 0) {
		if (src_fd >= 0)
			close(src_fd);
		src_fd = fd;
	}
	if (src_fd < 0) {
		ret = -EBADF;
		goto fail;
	}
	ret = copy_stream(src_fd, dst_fd, buf, o->buf_size, false, 0,
			  &r->stop_copy_bytes, &unused, &dst_refused,
			  &r->stage);
	if (ret)
		goto fail;
	close(src_fd);
	src_fd = -1;
	/* The source is stopped: this is the state that was sent. */
	read_checksum(o->src, r->src_sum);

	r->stage = "loading the stream (destination RESUMING -> STOP)";
	ret = vmig_vfio_set_state(dst, VMIG_STATE_STOP, NULL);
	if (ret)
		goto fail;
	close(dst_fd);
	dst_fd = -1;
	r->elapsed = vmigctl_now() - t0;
	read_checksum(o->dst, r->dst_sum);

	r->stage = "starting the destination";
	ret = vmig_vfio_set_state(dst, VMIG_STATE_RUNNING, NULL);
	if (ret)
		goto fail;
	r->downtime = vmigctl_now() - t_stop;

	r->stage = "restarting the source";
	ret = vmig_vfio_set_state(src, VMIG_STATE_RUNNING, NULL);
	if (ret) {
		/* The destination has the state; still, leave src usable. */
		dst_moved = false;
		goto fail;
	}

	r->stage = NULL;
	r->compared = *r->src_sum && *r->dst_sum;
	r->match = checksums_equal(r->src_sum, r->dst_sum);
	goto out;

fail:
	/*
	 * A destination that refused the stream says why when asked to
	 * leave RESUMING (the arc fails, the device goes to ERROR); the
	 * reset in roll_back() then returns it to RUNNING.
	 */
	if (dst_refused)
		vmig_vfio_set_state_raw(dst, VMIG_STATE_STOP, NULL);
	read_last_error(o->dst, r);
	if (src_fd >= 0)
		close(src_fd);
	if (dst_fd >= 0)
		close(dst_fd);
	src_fd = dst_fd = -1;
	roll_back(src, dst, src_moved, dst_moved, r);
out:
	r->err = ret;
	if (ret && dst && !*r->dst_last_error)
		read_last_error(o->dst, r);
	vmig_vfio_close(src);
	vmig_vfio_close(dst);
	free(buf);
	return ret;
}

/* ----------------------------------------------------------- printing */

static void print_human(const struct ml_opts *o, const struct ml_result *r)
{
	uint64_t total = r->precopy_bytes + r->stop_copy_bytes;
	char s[32];

	printf("migrate-local %s -> %s (%s)\n", o->src, o->dst,
	       o->precopy ? "precopy" : "stop-copy");
	if (o->precopy) {
		if (r->pre_before.valid)
			printf("  precopy info before:  initial %llu, dirty %llu bytes\n",
			       (unsigned long long)r->pre_before.initial,
			       (unsigned long long)r->pre_before.dirty);
		if (r->pre_after.valid)
			printf("  precopy info after:   initial %llu, dirty %llu bytes\n",
			       (unsigned long long)r->pre_after.initial,
			       (unsigned long long)r->pre_after.dirty);
		printf("  precopy bytes:        %llu%s\n",
		       (unsigned long long)r->precopy_bytes,
		       r->precopy_limited ? " (limit reached)" : "");
		printf("  stop-copy bytes:      %llu\n",
		       (unsigned long long)r->stop_copy_bytes);
	}
	printf("  stream bytes:         %llu (%s)\n", (unsigned long long)total,
	       vmigctl_format_size(total, s, sizeof(s)));
	if (r->have_state_size)
		printf("  state size:           %llu (%s)\n",
		       (unsigned long long)r->state_size,
		       vmigctl_format_size(r->state_size, s, sizeof(s)));
	else
		printf("  state size:           unknown\n");
	if (r->have_data_size)
		printf("  MIG_DATA_SIZE:        %llu (predicted before STOP_COPY)\n",
		       (unsigned long long)r->data_size);
	else
		printf("  MIG_DATA_SIZE:        not supported\n");
	if (!r->err) {
		printf("  elapsed:              %.3f s\n", r->elapsed);
		printf("  throughput:           %.1f MB/s\n",
		       r->elapsed > 0 ? total / r->elapsed / 1e6 : 0.0);
		printf("  downtime:             %.3f s\n", r->downtime);
	}
	printf("  source checksum:      %s (before: %s)\n",
	       *r->src_sum ? r->src_sum : "?",
	       *r->src_sum_before ? r->src_sum_before : "?");
	printf("  destination checksum: %s (before: %s)\n",
	       *r->dst_sum ? r->dst_sum : "?",
	       *r->dst_sum_before ? r->dst_sum_before : "?");

	if (r->err) {
		vmigctl_error("migrate-local failed %s: %s (errno %d)",
			      r->stage ? r->stage : "", strerror(-r->err),
			      -r->err);
		if (*r->dst_last_error)
			vmigctl_error("destination last_error: %s",
				      r->dst_last_error);
		if (r->rolled_back)
			vmigctl_error("%s",
				      r->rollback_problem ? r->rollback_problem :
				      "source back to RUNNING, destination reset");
		printf("  result:               FAILED\n");
	} else if (!r->compared) {
		vmigctl_error("could not read the checksums after migration");
		printf("  result:               checksums unreadable\n");
	} else if (!r->match) {
		vmigctl_error("checksum mismatch: source %s, destination %s",
			      r->src_sum, r->dst_sum);
		printf("  result:               CHECKSUM MISMATCH\n");
	} else {
		printf("  result:               checksums match\n");
	}
}

static void json_u64(const char *key, bool valid, uint64_t v, bool comma)
{
	printf("\"%s\":", key);
	if (valid)
		printf("%llu", (unsigned long long)v);
	else
		printf("null");
	if (comma)
		putchar(',');
}

static void json_str(const char *key, const char *v, bool comma)
{
	printf("\"%s\":", key);
	if (v && *v)
		vmigctl_json_string(stdout, v);
	else
		printf("null");
	if (comma)
		putchar(',');
}

static void json_precopy(const char *key, const struct precopy_info *pi)
{
	printf("\"%s\":", key);
	if (pi->valid)
		printf("{\"initial_bytes\":%llu,\"dirty_bytes\":%llu},",
		       (unsigned long long)pi->initial,
		       (unsigned long long)pi->dirty);
	else
		printf("null,");
}

static void print_json(const struct ml_opts *o, const struct ml_result *r)
{
	uint64_t total = r->precopy_bytes + r->stop_copy_bytes;
	bool ok = !r->err && r->compared && r->match;

	printf("{\"ok\":%s,", ok ? "true" : "false");
	json_str("src", o->src, true);
	json_str("dst", o->dst, true);
	printf("\"precopy\":%s,", o->precopy ? "true" : "false");
	json_u64("buf_size", true, o->buf_size, true);
	json_u64("stream_bytes", true, total, true);
	json_u64("precopy_bytes", true, r->precopy_bytes, true);
	json_u64("stop_copy_bytes", true, r->stop_copy_bytes, true);
	printf("\"precopy_limited\":%s,", r->precopy_limited ? "true" : "false");
	json_precopy("precopy_info_before", &r->pre_before);
	json_precopy("precopy_info_after", &r->pre_after);
	json_u64("state_size", r->have_state_size, r->state_size, true);
	json_u64("mig_data_size", r->have_data_size, r->data_size, true);
	if (r->err) {
		printf("\"elapsed_s\":null,\"mb_per_s\":null,\"downtime_s\":null,");
	} else {
		printf("\"elapsed_s\":%.6f,", r->elapsed);
		printf("\"mb_per_s\":%.3f,",
		       r->elapsed > 0 ? total / r->elapsed / 1e6 : 0.0);
		printf("\"downtime_s\":%.6f,", r->downtime);
	}
	json_str("src_checksum_before", r->src_sum_before, true);
	json_str("dst_checksum_before", r->dst_sum_before, true);
	json_str("src_checksum", r->src_sum, true);
	json_str("dst_checksum", r->dst_sum, true);
	printf("\"checksums_match\":%s,", r->compared && r->match ?
	       "true" : "false");
	if (r->err) {
		printf("\"error\":{\"errno\":%d,", -r->err);
		json_str("message", strerror(-r->err), true);
		json_str("stage", r->stage, true);
		json_str("dst_last_error", r->dst_last_error, true);
		printf("\"rolled_back\":%s,", r->rolled_back ? "true" : "false");
		json_str("rollback_problem", r->rollback_problem, false);
		printf("}");
	} else {
		printf("\"error\":null");
	}
	printf("}\n");
}

/* ------------------------------------------------------------- command */

static int migrate_local_run(int argc, char **argv)
{
	enum { OPT_PRECOPY = 256, OPT_PRECOPY_LIMIT, OPT_BUF_SIZE, OPT_JSON };
	static const struct option opts[] = {
		{ "precopy", no_argument, NULL, OPT_PRECOPY },
		{ "precopy-limit", required_argument, NULL, OPT_PRECOPY_LIMIT },
		{ "buf-size", required_argument, NULL, OPT_BUF_SIZE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ml_opts o = { .buf_size = DEFAULT_BUF_SIZE };
	struct ml_result r = { 0 };
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_PRECOPY:
			o.precopy = true;
			break;
		case OPT_PRECOPY_LIMIT:
			if (vmigctl_parse_size_opt("--precopy-limit", optarg,
					   &o.precopy_limit))
				return VMIGCTL_EXIT_USAGE;
			break;
		case OPT_BUF_SIZE:
			if (vmigctl_parse_size_opt("--buf-size", optarg, &o.buf_size))
				return VMIGCTL_EXIT_USAGE;
			if (!o.buf_size || o.buf_size > MAX_BUF_SIZE) {
				vmigctl_error("--buf-size: between 1 and 1G");
				return VMIGCTL_EXIT_USAGE;
			}
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case 'h':
			usage(stdout);
			return VMIGCTL_EXIT_OK;
		default:
			usage(stderr);
			return VMIGCTL_EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return VMIGCTL_EXIT_USAGE;
	}
	o.src = argv[optind];
	o.dst = argv[optind + 1];
	if (!strcmp(o.src, o.dst)) {
		vmigctl_error("source and destination are the same device");
		return VMIGCTL_EXIT_USAGE;
	}

	migrate(&o, &r);
	if (o.json)
		print_json(&o, &r);
	else
		print_human(&o, &r);
	return !r.err && r.compared && r.match ? VMIGCTL_EXIT_OK :
						 VMIGCTL_EXIT_FAIL;
}

const struct vmigctl_group vmigctl_migrate_local = {
	.name = "migrate-local",
	.summary = "migrate one device's state into another on this host",
	.run = migrate_local_run,
	.usage = usage,
};

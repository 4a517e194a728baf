// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmigctl dev: vfio-migsim instances over the "vfio_migsim" generic netlink
 * family (Documentation/netlink.rst, Documentation/vmigctl.rst).
 *
 *	vmigctl dev list [--json]
 *	vmigctl dev show UUID [--json]
 *	vmigctl dev set UUID [size SIZE] [dirty-rate RATE] [hot-set PERMILLE]
 *			     [nonprecopy-size SIZE]
 *	vmigctl dev fault UUID [save-at OFFSET [errno ERRNO]] [load-at OFFSET]
 *			       [read-delay USEC] [fail-transition ERRNO]
 *	vmigctl dev fault UUID clear
 *	vmigctl dev watch [UUID] [--count N] [--timeout SEC] [--json]
 *
 * Keywords and values are separate words, as in iproute2 ("size 1G"); the
 * form "size=1G" is accepted too.  A UUID may be preceded by "dev".
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/genl/genl.h>

#include <linux/vfio_migsim.h>

#include "vmig.h"
#include "vmigctl.h"

#define UUID_LEN	36

struct dev_opts {
	bool json;
	bool help;
	bool have_count;
	uint64_t count;
	bool have_timeout;
	double timeout;
	int argc;		/* the words left after the options */
	char **argv;
};

struct dev_info {
	char uuid[UUID_LEN + 1];
	uint32_t state;
	uint64_t state_size;
	uint64_t nonprecopy_size;
	uint64_t dirty_rate;
	uint32_t hot_set;
	uint64_t generation;
	uint32_t checksum;
	uint32_t chunk_size;
	uint64_t bytes_saved;
	uint64_t bytes_loaded;
	uint64_t chunks_dirtied;
	uint64_t precopy_reads;
};

/* ------------------------------------------------------------- usage */

static void usage_list(FILE *f)
{
	fprintf(f,
		"usage: %s dev list [--json]\n"
		"\n"
		"List every vfio-migsim instance: UUID, migration state, state size,\n"
		"non-precopyable size, dirty rate, hot set, generation, checksum.\n",
		vmigctl_prog);
}

static void usage_show(FILE *f)
{
	fprintf(f,
		"usage: %s dev show [dev] UUID [--json]\n"
		"\n"
		"Show one instance: its migration state, sizes, workload, generation,\n"
		"checksum and counters (bytes saved and loaded, chunks dirtied,\n"
		"precopy reads).\n", vmigctl_prog);
}

static void usage_set(FILE *f)
{
	fprintf(f,
		"usage: %s dev set [dev] UUID [size SIZE] [dirty-rate RATE]\n"
		"                  [hot-set PERMILLE] [nonprecopy-size SIZE]\n"
		"\n"
		"Change an instance (needs CAP_NET_ADMIN):\n"
		"  size SIZE             state size, a multiple of 4 KiB (RUNNING or\n"
		"                        PRE_COPY only)\n"
		"  dirty-rate RATE       bytes per second the device dirties, 0 = off\n"
		"  hot-set PERMILLE      thousandths of the chunks that take the\n"
		"                        writes, 1..1000\n"
		"  nonprecopy-size SIZE  bytes at the end of the state only STOP_COPY\n"
		"                        sends (not while a data fd is open)\n"
		"SIZE and RATE take K, M, G or T suffixes (binary: 1K = 1024).\n"
		"\"size=1G\" is the same as \"size 1G\".\n"
		"\n"
		"example: %s dev set $UUID size 1G dirty-rate 200M hot-set 100\n",
		vmigctl_prog, vmigctl_prog);
}

static void usage_fault(FILE *f)
{
	fprintf(f,
		"usage: %s dev fault [dev] UUID [save-at OFFSET [errno ERRNO]]\n"
		"                    [load-at OFFSET] [read-delay USEC]\n"
		"                    [fail-transition ERRNO]\n"
		"       %s dev fault [dev] UUID clear\n"
		"\n"
		"Arm injected faults (needs CAP_NET_ADMIN).  Each command replaces\n"
		"every fault armed before; \"clear\" disarms them all.\n"
		"  save-at OFFSET          a save stream read fails at stream byte\n"
		"                          OFFSET (reads stop short there), once\n"
		"  errno ERRNO             ... with this errno (default EIO)\n"
		"  load-at OFFSET          the resume stream write that crosses stream\n"
		"                          byte OFFSET fails with EIO, once\n"
		"  read-delay USEC         every save read() sleeps USEC microseconds\n"
		"                          (a slow device) until cleared; 0 = off\n"
		"  fail-transition ERRNO   the next migration arc fails with ERRNO\n"
		"                          and the device goes to ERROR, once\n"
		"OFFSET takes K/M/G suffixes; ERRNO is a name (EIO, ENOSPC) or a\n"
		"number.\n"
		"\n"
		"example: %s dev fault $UUID save-at 1M errno ENOSPC\n",
		vmigctl_prog, vmigctl_prog, vmigctl_prog);
}

static void usage_watch(FILE *f)
{
	fprintf(f,
		"usage: %s dev watch [[dev] UUID] [--count N] [--timeout SEC] [--json]\n"
		"\n"
		"Print every migration state change of every instance (or of one)\n"
		"as it happens, one line each: time, UUID, OLD -> NEW.  Every single\n"
		"arc the driver takes is one line, also the intermediate ones of a\n"
		"longer transition, a failure (-> ERROR) and a reset's return to\n"
		"RUNNING.  With --json, one JSON object per line.\n"
		"  --count N       exit after N changes\n"
		"  --timeout SEC   exit after SEC seconds (status 1 if --count was\n"
		"                  given and not reached)\n"
		"SIGINT and SIGTERM end it too (status 0).\n", vmigctl_prog);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s dev <command> [args]\n"
		"\n"
		"Control vfio-migsim instances over generic netlink.\n"
		"\n"
		"commands:\n"
		"  list     list every instance\n"
		"  show     show one instance\n"
		"  set      change size, dirty rate, hot set, non-precopyable size\n"
		"  fault    arm or clear injected faults\n"
		"  watch    print migration state changes as they happen\n"
		"\n"
		"\"%s dev <command> --help\" describes a command.  Tables by\n"
		"default; --json for scripts.  Exit status: 0 on success, 1 when the\n"
		"kernel refused or something failed, 2 on a bad command line.\n",
		vmigctl_prog, vmigctl_prog);
}

/* ------------------------------------------------------------- parsing */

static bool is_uuid(const char *s)
{
	int i;

	if (strlen(s) != UUID_LEN)
		return false;
	for (i = 0; i < UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/*
 * Take the options out of argv (anywhere; "--" ends them) and leave the
 * other words in o->argv.  allowed: the options the command knows, by
 * their first letter ("jct").
 */
static int parse_opts(int argc, char **argv, const char *cmd,
		      const char *allowed, struct dev_opts *o)
{
	bool opts_done = false;
	int i;

	memset(o, 0, sizeof(*o));
	o->argv = calloc(argc + 1, sizeof(char *));
	if (!o->argv) {
		vmigctl_error("out of memory");
		return VMIGCTL_EXIT_FAIL;
	}
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		char opt = 0;

		if (opts_done || a[0] != '-' || !a[1]) {
			o->argv[o->argc++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			opts_done = true;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			o->help = true;
			continue;
		}
		if (!strcmp(a, "-j") || !strcmp(a, "--json"))
			opt = 'j';
		else if (!strcmp(a, "-c") || !strcmp(a, "--count"))
			opt = 'c';
		else if (!strcmp(a, "-t") || !strcmp(a, "--timeout"))
			opt = 't';
		else if (!strncmp(a, "--count=", 8))
			opt = 'c', val = a + 8;
		else if (!strncmp(a, "--timeout=", 10))
			opt = 't', val = a + 10;
		if (!opt || !strchr(allowed, opt)) {
			vmigctl_error("dev %s: unknown option \"%s\" (try --help)",
				      cmd, a);
			return VMIGCTL_EXIT_USAGE;
		}
		if (opt == 'j') {
			o->json = true;
			continue;
		}
		if (!val) {
			if (i + 1 >= argc) {
				vmigctl_error("dev %s: %s needs a value", cmd, a);
				return VMIGCTL_EXIT_USAGE;
			}
			val = argv[++i];
		}
		if (opt == 'c') {
			char *end;

			errno = 0;
			o->count = strtoull(val, &end, 10);
			if (errno || end == val || *end || !o->count ||
			    val[0] == '-') {
				vmigctl_error("dev %s: --count wants a positive number, not \"%s\"",
					      cmd, val);
				return VMIGCTL_EXIT_USAGE;
			}
			o->have_count = true;
		} else {
			char *end;

			errno = 0;
			o->timeout = strtod(val, &end);
			if (errno || end == val || *end || !(o->timeout > 0)) {
				vmigctl_error("dev %s: --timeout wants a positive number of seconds, not \"%s\"",
					      cmd, val);
				return VMIGCTL_EXIT_USAGE;
			}
			o->have_timeout = true;
		}
	}
	return VMIGCTL_EXIT_OK;
}

/*
 * The UUID at o->argv[*i] (after an optional "dev"); advances *i.
 * required: a missing UUID is an error.
 */
static int take_uuid(struct dev_opts *o, int *i, const char *cmd,
		     bool required, const char **uuid)
{
	*uuid = NULL;
	if (*i < o->argc && !strcmp(o->argv[*i], "dev"))
		(*i)++;
	if (*i >= o->argc || !is_uuid(o->argv[*i])) {
		if (*i < o->argc && (strchr(o->argv[*i], '-') ||
				     strlen(o->argv[*i]) == UUID_LEN)) {
			vmigctl_error("dev %s: \"%s\" is not a UUID", cmd,
				      o->argv[*i]);
			return VMIGCTL_EXIT_USAGE;
		}
		if (!required)
			return VMIGCTL_EXIT_OK;
		vmigctl_error("dev %s: missing UUID (try --help)", cmd);
		return VMIGCTL_EXIT_USAGE;
	}
	*uuid = o->argv[(*i)++];
	return VMIGCTL_EXIT_OK;
}

/*
 * The next keyword and its value: "key value" or "key=value".  Returns
 * false at the end of the words.
 */
static bool next_pair(struct dev_opts *o, int *i, char *key, size_t klen,
		      const char **val)
{
	const char *w, *eq;

	if (*i >= o->argc)
		return false;
	w = o->argv[(*i)++];
	eq = strchr(w, '=');
	if (eq) {
		snprintf(key, klen, "%.*s", (int)(eq - w), w);
		*val = eq + 1;
	} else {
		snprintf(key, klen, "%s", w);
		*val = *i < o->argc ? o->argv[(*i)++] : NULL;
	}
	return true;
}

static int want_size(const char *cmd, const char *key, const char *val,
		     uint64_t *out)
{
	int ret;

	if (!val) {
		vmigctl_error("dev %s: %s needs a value", cmd, key);
		return VMIGCTL_EXIT_USAGE;
	}
	ret = vmigctl_parse_size(val, out);
	if (ret) {
		vmigctl_error("dev %s: %s: \"%s\" is not a size (a number with an optional K, M, G or T suffix)%s",
			      cmd, key, val,
			      ret == -ERANGE ? ": too large" : "");
		return VMIGCTL_EXIT_USAGE;
	}
	return VMIGCTL_EXIT_OK;
}

static int want_u32(const char *cmd, const char *key, const char *val,
		    uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!val) {
		vmigctl_error("dev %s: %s needs a value", cmd, key);
		return VMIGCTL_EXIT_USAGE;
	}
	errno = 0;
	v = strtoull(val, &end, 0);
	if (!isdigit((unsigned char)val[0]) || errno || end == val || *end ||
	    v > UINT32_MAX) {
		vmigctl_error("dev %s: %s: \"%s\" is not a number from 0 to %u",
			      cmd, key, val, UINT32_MAX);
		return VMIGCTL_EXIT_USAGE;
	}
	*out = v;
	return VMIGCTL_EXIT_OK;
}

static int want_errno(const char *cmd, const char *key, const char *val,
		      uint32_t *out)
{
	int err;

	if (!val) {
		vmigctl_error("dev %s: %s needs a value", cmd, key);
		return VMIGCTL_EXIT_USAGE;
	}
	if (vmigctl_parse_errno(val, &err)) {
		vmigctl_error("dev %s: %s: \"%s\" is not an errno (a name such as EIO, or 1..4095)",
			      cmd, key, val);
		return VMIGCTL_EXIT_USAGE;
	}
	*out = err;
	return VMIGCTL_EXIT_OK;
}

/* ------------------------------------------------------------- output */

/* "64 MiB" when exact, else "1.50 GiB"; "0" for 0. */
static const char *fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	int u;

	if (!v) {
		snprintf(buf, len, "0");
		return buf;
	}
	for (u = 3; u >= 0; u--) {
		unsigned int shift = 10 * (u + 1);

		if (v >= (1ULL << shift) && !(v & ((1ULL << shift) - 1))) {
			snprintf(buf, len, "%llu %s",
				 (unsigned long long)(v >> shift), units[u]);
			return buf;
		}
	}
	return vmigctl_format_size(v, buf, len);
}

static const char *fmt_rate(uint64_t v, char *buf, size_t len)
{
	size_t n;

	if (!v) {
		snprintf(buf, len, "off");
		return buf;
	}
	fmt_size(v, buf, len);
	n = strlen(buf);
	snprintf(buf + n, len - n, "/s");
	return buf;
}

static const char *state_name(uint32_t s)
{
	return s < VMIG_STATE_NR ? vmig_state_name(s) : "UNKNOWN";
}

static void json_info(FILE *f, const struct dev_info *d)
{
	fprintf(f, "{\"uuid\":");
	vmigctl_json_string(f, d->uuid);
	fprintf(f, ",\"state\":");
	vmigctl_json_string(f, state_name(d->state));
	fprintf(f,
		",\"state_size\":%llu,\"nonprecopy_size\":%llu"
		",\"dirty_rate\":%llu,\"hot_set\":%u,\"generation\":%llu"
		",\"checksum\":%u,\"chunk_size\":%u"
		",\"stats\":{\"bytes_saved\":%llu,\"bytes_loaded\":%llu"
		",\"chunks_dirtied\":%llu,\"precopy_reads\":%llu}}",
		(unsigned long long)d->state_size,
		(unsigned long long)d->nonprecopy_size,
		(unsigned long long)d->dirty_rate, d->hot_set,
		(unsigned long long)d->generation, d->checksum, d->chunk_size,
		(unsigned long long)d->bytes_saved,
		(unsigned long long)d->bytes_loaded,
		(unsigned long long)d->chunks_dirtied,
		(unsigned long long)d->precopy_reads);
}

static void show_info(const struct dev_info *d)
{
	char a[64];

	printf("%-16s %s\n", "uuid", d->uuid);
	printf("%-16s %s\n", "state", state_name(d->state));
	printf("%-16s %s (%llu bytes)\n", "size",
	       fmt_size(d->state_size, a, sizeof(a)),
	       (unsigned long long)d->state_size);
	printf("%-16s %s\n", "nonprecopy-size",
	       fmt_size(d->nonprecopy_size, a, sizeof(a)));
	printf("%-16s %s\n", "chunk-size",
	       fmt_size(d->chunk_size, a, sizeof(a)));
	printf("%-16s %s\n", "dirty-rate",
	       fmt_rate(d->dirty_rate, a, sizeof(a)));
	printf("%-16s %u (%.1f%% of the chunks)\n", "hot-set", d->hot_set,
	       d->hot_set / 10.0);
	printf("%-16s %llu\n", "generation",
	       (unsigned long long)d->generation);
	printf("%-16s 0x%08x\n", "checksum", d->checksum);
	printf("%-16s %llu (%s)\n", "bytes-saved",
	       (unsigned long long)d->bytes_saved,
	       fmt_size(d->bytes_saved, a, sizeof(a)));
	printf("%-16s %llu (%s)\n", "bytes-loaded",
	       (unsigned long long)d->bytes_loaded,
	       fmt_size(d->bytes_loaded, a, sizeof(a)));
	printf("%-16s %llu\n", "chunks-dirtied",
	       (unsigned long long)d->chunks_dirtied);
	printf("%-16s %llu\n", "precopy-reads",
	       (unsigned long long)d->precopy_reads);
}

#define LIST_FMT "%-36s  %-12s  %10s  %10s  %12s  %7s  %10s  %-10s\n"

static void list_header(void)
{
	printf(LIST_FMT, "UUID", "STATE", "SIZE", "NONPRECOPY", "DIRTY-RATE",
	       "HOT-SET", "GENERATION", "CHECKSUM");
}

static void list_row(const struct dev_info *d)
{
	char size[32], np[32], rate[32], hot[16], gen[24], sum[16];

	snprintf(hot, sizeof(hot), "%u", d->hot_set);
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)d->generation);
	snprintf(sum, sizeof(sum), "0x%08x", d->checksum);
	printf(LIST_FMT, d->uuid, state_name(d->state),
	       fmt_size(d->state_size, size, sizeof(size)),
	       fmt_size(d->nonprecopy_size, np, sizeof(np)),
	       fmt_rate(d->dirty_rate, rate, sizeof(rate)), hot, gen, sum);
}

/* ------------------------------------------------------------- DEV_GET */

static int parse_info(struct nl_msg *msg, struct dev_info *d)
{
	struct nlattr *tb[MIGSIM_A_MAX + 1];
	struct nlattr *st[MIGSIM_STAT_MAX + 1];
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct genlmsghdr *gh = genlmsg_hdr(nlh);

	memset(d, 0, sizeof(*d));
	if (gh->cmd != MIGSIM_CMD_DEV_GET)
		return 1;
	if (genlmsg_parse(nlh, 0, tb, MIGSIM_A_MAX, NULL) < 0 ||
	    !tb[MIGSIM_A_UUID])
		return -EBADMSG;
	snprintf(d->uuid, sizeof(d->uuid), "%s", nla_get_string(tb[MIGSIM_A_UUID]));
#define U32(a, f) do { if (tb[a]) d->f = nla_get_u32(tb[a]); } while (0)
#define U64(a, f) do { if (tb[a]) d->f = nla_get_u64(tb[a]); } while (0)
	U32(MIGSIM_A_MIG_STATE, state);
	U64(MIGSIM_A_STATE_SIZE, state_size);
	U64(MIGSIM_A_NONPRECOPY_SIZE, nonprecopy_size);
	U64(MIGSIM_A_DIRTY_RATE, dirty_rate);
	U32(MIGSIM_A_HOT_SET, hot_set);
	U64(MIGSIM_A_GENERATION, generation);
	U32(MIGSIM_A_CHECKSUM, checksum);
	U32(MIGSIM_A_CHUNK_SIZE, chunk_size);
#undef U32
#undef U64
	if (tb[MIGSIM_A_STATS] &&
	    !nla_parse_nested(st, MIGSIM_STAT_MAX, tb[MIGSIM_A_STATS], NULL)) {
		if (st[MIGSIM_STAT_BYTES_SAVED])
			d->bytes_saved = nla_get_u64(st[MIGSIM_STAT_BYTES_SAVED]);
		if (st[MIGSIM_STAT_BYTES_LOADED])
			d->bytes_loaded = nla_get_u64(st[MIGSIM_STAT_BYTES_LOADED]);
		if (st[MIGSIM_STAT_CHUNKS_DIRTIED])
			d->chunks_dirtied =
				nla_get_u64(st[MIGSIM_STAT_CHUNKS_DIRTIED]);
		if (st[MIGSIM_STAT_PRECOPY_READS])
			d->precopy_reads =
				nla_get_u64(st[MIGSIM_STAT_PRECOPY_READS]);
	}
	return 0;
}

struct info_list {
	struct dev_info *v;
	size_t n, cap;
};

static int collect_info(struct nl_msg *msg, void *arg)
{
	struct info_list *l = arg;
	struct dev_info d;
	int ret;

	ret = parse_info(msg, &d);
	if (ret)
		return ret < 0 ? ret : 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct dev_info *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = d;
	return 0;
}

static int get_info(struct vmigctl_nl *nl, const char *uuid,
		    struct info_list *l)
{
	struct nl_msg *msg;

	msg = vmigctl_nl_msg(nl, MIGSIM_CMD_DEV_GET, uuid ? 0 : NLM_F_DUMP);
	if (msg && uuid && nla_put_string(msg, MIGSIM_A_UUID, uuid) < 0) {
		nlmsg_free(msg);
		msg = NULL;
	}
	return vmigctl_nl_request(nl, msg, collect_info, l);
}

static int cmd_list(struct dev_opts *o)
{
	struct info_list l = { 0 };
	struct vmigctl_nl nl;
	size_t i;
	int ret;

	if (o->help) {
		usage_list(stdout);
		return VMIGCTL_EXIT_OK;
	}
	if (o->argc > 1) {
		vmigctl_error("dev list: unexpected \"%s\"", o->argv[1]);
		return VMIGCTL_EXIT_USAGE;
	}
	if (vmigctl_nl_open(&nl))
		return VMIGCTL_EXIT_FAIL;
	ret = get_info(&nl, NULL, &l);
	if (ret) {
		vmigctl_nl_perror(&nl, ret, "dev list");
		goto out;
	}
	if (o->json) {
		putchar('[');
		for (i = 0; i < l.n; i++) {
			if (i)
				putchar(',');
			json_info(stdout, &l.v[i]);
		}
		printf("]\n");
	} else {
		list_header();
		for (i = 0; i < l.n; i++)
			list_row(&l.v[i]);
	}
out:
	free(l.v);
	vmigctl_nl_close(&nl);
	return ret ? VMIGCTL_EXIT_FAIL : VMIGCTL_EXIT_OK;
}

static int cmd_show(struct dev_opts *o)
{
	struct info_list l = { 0 };
	struct vmigctl_nl nl;
	const char *uuid;
	char what[80];
	int i = 1, ret;

	if (o->help) {
		usage_show(stdout);
		return VMIGCTL_EXIT_OK;
	}
	ret = take_uuid(o, &i, "show", true, &uuid);
	if (ret)
		return ret;
	if (i < o->argc) {
		vmigctl_error("dev show: unexpected \"%s\"", o->argv[i]);
		return VMIGCTL_EXIT_USAGE;
	}
	if (vmigctl_nl_open(&nl))
		return VMIGCTL_EXIT_FAIL;
	ret = get_info(&nl, uuid, &l);
	if (!ret && l.n != 1)
		ret = -EBADMSG;
	if (ret) {
		snprintf(what, sizeof(what), "dev show %s", uuid);
		vmigctl_nl_perror(&nl, ret, what);
	} else if (o->json) {
		json_info(stdout, &l.v[0]);
		putchar('\n');
	} else {
		show_info(&l.v[0]);
	}
	free(l.v);
	vmigctl_nl_close(&nl);
	return ret ? VMIGCTL_EXIT_FAIL : VMIGCTL_EXIT_OK;
}

/* ------------------------------------------------------------- DEV_SET */

static int cmd_set(struct dev_opts *o)
{
	struct vmigctl_nl nl;
	struct nl_msg *msg;
	const char *uuid, *val;
	char key[64], what[80];
	uint64_t size = 0, np = 0, rate = 0;
	uint32_t hot = 0;
	bool has_size = false, has_np = false, has_rate = false;
	bool has_hot = false;
	int i = 1, ret;

	if (o->help) {
		usage_set(stdout);
		return VMIGCTL_EXIT_OK;
	}
	ret = take_uuid(o, &i, "set", true, &uuid);
	if (ret)
		return ret;
	while (next_pair(o, &i, key, sizeof(key), &val)) {
		if (!strcmp(key, "size")) {
			ret = want_size("set", key, val, &size);
			has_size = true;
		} else if (!strcmp(key, "nonprecopy-size")) {
			ret = want_size("set", key, val, &np);
			has_np = true;
		} else if (!strcmp(key, "dirty-rate")) {
			ret = want_size("set", key, val, &rate);
			has_rate = true;
		} else if (!strcmp(key, "hot-set")) {
			ret = want_u32("set", key, val, &hot);
			has_hot = true;
		} else {
			vmigctl_error("dev set: unknown keyword \"%s\" (try --help)",
				      key);
			ret = VMIGCTL_EXIT_USAGE;
		}
		if (ret)
			return ret;
	}
	if (!has_size && !has_np && !has_rate && !has_hot) {
		vmigctl_error("dev set: nothing to set (try --help)");
		return VMIGCTL_EXIT_USAGE;
	}

	if (vmigctl_nl_open(&nl))
		return VMIGCTL_EXIT_FAIL;
	msg = vmigctl_nl_msg(&nl, MIGSIM_CMD_DEV_SET, 0);
	if (msg &&
	    (nla_put_string(msg, MIGSIM_A_UUID, uuid) < 0 ||
	     (has_size && nla_put_u64(msg, MIGSIM_A_STATE_SIZE, size) < 0) ||
	     (has_np && nla_put_u64(msg, MIGSIM_A_NONPRECOPY_SIZE, np) < 0) ||
	     (has_rate && nla_put_u64(msg, MIGSIM_A_DIRTY_RATE, rate) < 0) ||
	     (has_hot && nla_put_u32(msg, MIGSIM_A_HOT_SET, hot) < 0))) {
		nlmsg_free(msg);
		msg = NULL;
	}
	ret = vmigctl_nl_request(&nl, msg, NULL, NULL);
	if (ret) {
		snprintf(what, sizeof(what), "dev set %s", uuid);
		vmigctl_nl_perror(&nl, ret, what);
	}
	vmigctl_nl_close(&nl);
	return ret ? VMIGCTL_EXIT_FAIL : VMIGCTL_EXIT_OK;
}

/* ------------------------------------------------------------- FAULT_SET */

static int cmd_fault(struct dev_opts *o)
{
	struct vmigctl_nl nl;
	struct nl_msg *msg;
	struct nlattr *nest;
	const char *uuid, *val;
	char key[64], what[80];
	uint64_t save_at = 0, load_at = 0;
	uint32_t save_errno = 0, delay = 0, fail = 0;
	bool has_save = false, has_errno = false, has_load = false;
	bool has_delay = false, has_fail = false, clear = false;
	int i = 1, ret;

	if (o->help) {
		usage_fault(stdout);
		return VMIGCTL_EXIT_OK;
	}
	ret = take_uuid(o, &i, "fault", true, &uuid);
	if (ret)
		return ret;
	if (i < o->argc && !strcmp(o->argv[i], "clear")) {
		clear = true;
		if (++i < o->argc) {
			vmigctl_error("dev fault: \"clear\" takes nothing after it");
			return VMIGCTL_EXIT_USAGE;
		}
	}
	while (next_pair(o, &i, key, sizeof(key), &val)) {
		if (!strcmp(key, "save-at")) {
			ret = want_size("fault", key, val, &save_at);
			has_save = true;
		} else if (!strcmp(key, "errno")) {
			ret = want_errno("fault", key, val, &save_errno);
			has_errno = true;
		} else if (!strcmp(key, "load-at")) {
			ret = want_size("fault", key, val, &load_at);
			has_load = true;
		} else if (!strcmp(key, "read-delay")) {
			ret = want_u32("fault", key, val, &delay);
			has_delay = true;
		} else if (!strcmp(key, "fail-transition")) {
			ret = want_errno("fault", key, val, &fail);
			has_fail = true;
		} else {
			vmigctl_error("dev fault: unknown keyword \"%s\" (try --help)",
				      key);
			ret = VMIGCTL_EXIT_USAGE;
		}
		if (ret)
			return ret;
	}
	if (has_errno && !has_save) {
		vmigctl_error("dev fault: errno belongs to save-at");
		return VMIGCTL_EXIT_USAGE;
	}
	if (!clear && !has_save && !has_load && !has_delay && !has_fail) {
		vmigctl_error("dev fault: no fault given; \"clear\" disarms them (try --help)");
		return VMIGCTL_EXIT_USAGE;
	}

	if (vmigctl_nl_open(&nl))
		return VMIGCTL_EXIT_FAIL;
	msg = vmigctl_nl_msg(&nl, MIGSIM_CMD_FAULT_SET, 0);
	if (!msg || nla_put_string(msg, MIGSIM_A_UUID, uuid) < 0)
		goto nomem;
	if (clear) {
		/* an empty nest; libnl's nla_nest_end() would drop it */
		if (nla_put(msg, MIGSIM_A_FAULT | NLA_F_NESTED, 0, NULL) < 0)
			goto nomem;
		ret = vmigctl_nl_request(&nl, msg, NULL, NULL);
		goto done;
	}
	nest = nla_nest_start(msg, MIGSIM_A_FAULT);
	if (!nest ||
	    (has_save &&
	     nla_put_u64(msg, MIGSIM_FAULT_A_SAVE_OFFSET, save_at) < 0) ||
	    (has_errno &&
	     nla_put_u32(msg, MIGSIM_FAULT_A_SAVE_ERRNO, save_errno) < 0) ||
	    (has_load &&
	     nla_put_u64(msg, MIGSIM_FAULT_A_LOAD_OFFSET, load_at) < 0) ||
	    (has_delay &&
	     nla_put_u32(msg, MIGSIM_FAULT_A_READ_DELAY_US, delay) < 0) ||
	    (has_fail &&
	     nla_put_u32(msg, MIGSIM_FAULT_A_FAIL_TRANSITION, fail) < 0))
		goto nomem;
	nla_nest_end(msg, nest);
	ret = vmigctl_nl_request(&nl, msg, NULL, NULL);
	goto done;
nomem:
	nlmsg_free(msg);
	ret = vmigctl_nl_request(&nl, NULL, NULL, NULL);
done:
	if (ret) {
		snprintf(what, sizeof(what), "dev fault %s", uuid);
		vmigctl_nl_perror(&nl, ret, what);
	}
	vmigctl_nl_close(&nl);
	return ret ? VMIGCTL_EXIT_FAIL : VMIGCTL_EXIT_OK;
}

/* ------------------------------------------------------------- watch */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

struct watch {
	const char *uuid;	/* NULL: every instance */
	bool json;
	uint64_t seen;
};

static int print_event(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct genlmsghdr *gh = genlmsg_hdr(nlh);
	struct nlattr *tb[MIGSIM_A_MAX + 1];
	struct watch *w = arg;
	const char *uuid;
	struct timespec ts;
	struct tm tm;
	uint32_t old, new;
	char when[32];

	if (gh->cmd != MIGSIM_CMD_STATE_EVENT ||
	    genlmsg_parse(nlh, 0, tb, MIGSIM_A_MAX, NULL) < 0 ||
	    !tb[MIGSIM_A_UUID] || !tb[MIGSIM_A_OLD_STATE] ||
	    !tb[MIGSIM_A_MIG_STATE])
		return NL_SKIP;
	uuid = nla_get_string(tb[MIGSIM_A_UUID]);
	if (w->uuid && strcasecmp(uuid, w->uuid))
		return NL_SKIP;
	old = nla_get_u32(tb[MIGSIM_A_OLD_STATE]);
	new = nla_get_u32(tb[MIGSIM_A_MIG_STATE]);
	clock_gettime(CLOCK_REALTIME, &ts);
	if (w->json) {
		printf("{\"time\":%lld.%06ld,\"uuid\":", (long long)ts.tv_sec,
		       ts.tv_nsec / 1000);
		vmigctl_json_string(stdout, uuid);
		printf(",\"old\":");
		vmigctl_json_string(stdout, state_name(old));
		printf(",\"new\":");
		vmigctl_json_string(stdout, state_name(new));
		printf("}\n");
	} else {
		localtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		printf("%s.%06ld %s %s -> %s\n", when, ts.tv_nsec / 1000,
		       uuid, state_name(old), state_name(new));
	}
	fflush(stdout);
	w->seen++;
	return NL_OK;
}

static int no_seq_check(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return NL_OK;
}

static int cmd_watch(struct dev_opts *o)
{
	struct watch w = { .json = o->json };
	struct info_list l = { 0 };
	struct sigaction sa;
	struct vmigctl_nl nl;
	struct nl_cb *cb = NULL;
	double deadline = 0;
	int i = 1, ret, status = VMIGCTL_EXIT_FAIL;
	char what[80];

	if (o->help) {
		usage_watch(stdout);
		return VMIGCTL_EXIT_OK;
	}
	ret = take_uuid(o, &i, "watch", false, &w.uuid);
	if (ret)
		return ret;
	if (i < o->argc) {
		vmigctl_error("dev watch: unexpected \"%s\"", o->argv[i]);
		return VMIGCTL_EXIT_USAGE;
	}
	if (vmigctl_nl_open(&nl))
		return VMIGCTL_EXIT_FAIL;
	/*
	 * An unknown UUID is an error, as for "show".  Asked before joining
	 * the group: events would otherwise mix with the reply.
	 */
	if (w.uuid) {
		ret = get_info(&nl, w.uuid, &l);
		free(l.v);
		if (ret) {
			snprintf(what, sizeof(what), "dev watch %s", w.uuid);
			vmigctl_nl_perror(&nl, ret, what);
			goto out;
		}
	}
	if (vmigctl_nl_subscribe(&nl))
		goto out;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		vmigctl_error("out of memory");
		goto out;
	}
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, no_seq_check, NULL);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, print_event, &w);
	nl_socket_set_nonblocking(nl.sk);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: poll() returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (o->have_timeout)
		deadline = vmigctl_now() + o->timeout;

	while (!stop_signal && !(o->have_count && w.seen >= o->count)) {
		struct pollfd pfd = {
			.fd = nl_socket_get_fd(nl.sk), .events = POLLIN,
		};
		int ms = -1;

		if (o->have_timeout) {
			double left = deadline - vmigctl_now();

			if (left <= 0)
				break;
			ms = left * 1000 + 1;
		}
		ret = poll(&pfd, 1, ms);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			vmigctl_error("dev watch: poll: %s", strerror(errno));
			goto out;
		}
		if (!ret)
			continue;
		ret = nl_recvmsgs(nl.sk, cb);
		if (ret == -NLE_AGAIN)
			continue;
		if (ret == -NLE_NOMEM) {
			/* ENOBUFS: the socket overran */
			vmigctl_error("dev watch: events were lost (receive buffer overrun)");
			continue;
		}
		if (ret < 0) {
			vmigctl_error("dev watch: receiving: %s",
				      nl_geterror(ret));
			goto out;
		}
	}
	if (o->have_count && w.seen < o->count && !stop_signal) {
		vmigctl_error("dev watch: timed out after %llu of %llu changes",
			      (unsigned long long)w.seen,
			      (unsigned long long)o->count);
		goto out;
	}
	status = VMIGCTL_EXIT_OK;
out:
	if (cb)
		nl_cb_put(cb);
	vmigctl_nl_close(&nl);
	return status;
}

/* ------------------------------------------------------------- group */

static const struct {
	const char *name;
	const char *opts;	/* options it takes, by letter */
	int (*run)(struct dev_opts *o);
} commands[] = {
	{ "list", "j", cmd_list },
	{ "show", "j", cmd_show },
	{ "set", "", cmd_set },
	{ "fault", "", cmd_fault },
	{ "watch", "jct", cmd_watch },
};

static int dev_run(int argc, char **argv)
{
	struct dev_opts o;
	unsigned int i;
	int ret;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		if (argc >= 3 && !strcmp(argv[1], "help")) {
			argv[1] = argv[2];
			argv[2] = "--help";
			argc = 3;
		} else {
			usage(argc < 2 ? stderr : stdout);
			return argc < 2 ? VMIGCTL_EXIT_USAGE : VMIGCTL_EXIT_OK;
		}
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		ret = parse_opts(argc - 1, argv + 1, commands[i].name,
				 commands[i].opts, &o);
		if (!ret)
			ret = commands[i].run(&o);
		else if (o.help)	/* "--help" wins over a bad option */
			ret = commands[i].run(&o);
		free(o.argv);
		return ret;
	}
	vmigctl_error("dev: unknown command \"%s\" (try \"%s dev --help\")",
		      argv[1], vmigctl_prog);
	return VMIGCTL_EXIT_USAGE;
}

const struct vmigctl_group vmigctl_dev = {
	.name = "dev",
	.summary = "list, show, change, fault and watch vfio-migsim instances",
	.run = dev_run,
	.usage = usage,
};

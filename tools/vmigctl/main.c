// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmigctl: command dispatch.
 *
 *	vmigctl [-v]... <group> [args]
 *	vmigctl --help | help [group]
 *	vmigctl <group> --help
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "vmig.h"
#include "vmigctl.h"

#define VMIGCTL_VERSION "0.1"

static const struct vmigctl_group *const groups[] = {
	&vmigctl_migrate_local,
	&vmigctl_migrate_net,
	&vmigctl_dev,
};

#define NR_GROUPS (sizeof(groups) / sizeof(groups[0]))

static void usage(FILE *f)
{
	unsigned int i;

	fprintf(f,
		"usage: %s [options] <command> [args]\n"
		"\n"
		"Control vfio-migsim devices and migrate VFIO devices with libvmig.\n"
		"\n"
		"options:\n"
		"  -v, --verbose   more libvmig messages on stderr (repeat for debug)\n"
		"  -q, --quiet     only libvmig errors on stderr\n"
		"  -V, --version   print the version\n"
		"  -h, --help      this help\n"
		"\n"
		"commands:\n", vmigctl_prog);
	for (i = 0; i < NR_GROUPS; i++)
		fprintf(f, "  %-15s %s\n", groups[i]->name, groups[i]->summary);
	fprintf(f, "\n\"%s <command> --help\" describes a command.\n",
		vmigctl_prog);
}

static const struct vmigctl_group *find_group(const char *name)
{
	unsigned int i;

	for (i = 0; i < NR_GROUPS; i++)
		if (!strcmp(groups[i]->name, name))
			return groups[i];
	return NULL;
}

static const char *const level_names[] = {
	[VMIG_LOG_ERR] = "error",
	[VMIG_LOG_WARNING] = "warning",
	[VMIG_LOG_INFO] = "info",
	[VMIG_LOG_DEBUG] = "debug",
};

static void log_to_stderr(enum vmig_log_level level, const char *msg,
			  void *opaque)
{
	const char *name = NULL;

	(void)opaque;
	if ((unsigned int)level < sizeof(level_names) / sizeof(level_names[0]))
		name = level_names[level];
	fprintf(stderr, "%s: libvmig %s: %s\n", vmigctl_prog,
		name ? name : "message", msg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum vmig_log_level level = VMIG_LOG_WARNING;
	const struct vmigctl_group *g;
	int c;

	/* "+": options end at the command name; the rest is the group's. */
	while ((c = getopt_long(argc, argv, "+vqVh", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			level = level == VMIG_LOG_WARNING ? VMIG_LOG_INFO :
							    VMIG_LOG_DEBUG;
			break;
		case 'q':
			level = VMIG_LOG_ERR;
			break;
		case 'V':
			printf("%s %s\n", vmigctl_prog, VMIGCTL_VERSION);
			return VMIGCTL_EXIT_OK;
		case 'h':
			usage(stdout);
			return VMIGCTL_EXIT_OK;
		default:
			usage(stderr);
			return VMIGCTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return VMIGCTL_EXIT_USAGE;
	}

	if (!strcmp(argv[optind], "help")) {
		if (optind + 1 >= argc) {
			usage(stdout);
			return VMIGCTL_EXIT_OK;
		}
		g = find_group(argv[optind + 1]);
		if (!g) {
			vmigctl_error("unknown command \"%s\"",
				      argv[optind + 1]);
			return VMIGCTL_EXIT_USAGE;
		}
		g->usage(stdout);
		return VMIGCTL_EXIT_OK;
	}

	g = find_group(argv[optind]);
	if (!g) {
		vmigctl_error("unknown command \"%s\" (try --help)",
			      argv[optind]);
		return VMIGCTL_EXIT_USAGE;
	}

	vmig_set_log(log_to_stderr, NULL, level);
	argc -= optind;
	argv += optind;
	/* The group parses its own argv; optind = 0 restarts getopt. */
	optind = 0;
	return g->run(argc, argv);
}

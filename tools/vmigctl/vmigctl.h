/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vmigctl: command-line control of vfio-migsim devices and libvmig.
 *
 * The command line is "vmigctl [global options] <group> [args]".  Each
 * command group lives in its own file and is one entry of the group table
 * in main.c; a group parses its own arguments (and its own subcommands,
 * e.g. "dev list") and prints its own --help.
 */
#ifndef VMIGCTL_H
#define VMIGCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of every command. */
#define VMIGCTL_EXIT_OK		0
#define VMIGCTL_EXIT_FAIL	1	/* the operation failed */
#define VMIGCTL_EXIT_USAGE	2	/* bad command line */

struct vmigctl_group {
	const char *name;
	const char *summary;		/* one line, for "vmigctl --help" */
	/* argv[0] is the group name; returns a VMIGCTL_EXIT_* status. */
	int (*run)(int argc, char **argv);
	void (*usage)(FILE *f);
};

extern const struct vmigctl_group vmigctl_migrate_local;

/* ------------------------------------------------------------- helpers */

extern const char *vmigctl_prog;	/* "vmigctl" */

/*
 * Parse a size: a number (decimal, or 0x hex) with an optional binary
 * suffix K, M, G or T (case-insensitive; KiB = 1024).  -EINVAL on syntax
 * errors, -ERANGE on overflow.
 */
int vmigctl_parse_size(const char *s, uint64_t *out);

/* "1.50 GiB", "512 B": for human output, into buf. */
const char *vmigctl_format_size(uint64_t bytes, char *buf, size_t len);

/*
 * Read /sys/bus/mdev/devices/<uuid>/migsim/<attr> into buf, without its
 * trailing whitespace.  Negative errno on failure.
 */
int vmigctl_read_migsim_attr(const char *uuid, const char *attr, char *buf,
			     size_t len);

/* Monotonic time in seconds. */
double vmigctl_now(void);

/* Print s as a JSON string literal (with quotes). */
void vmigctl_json_string(FILE *f, const char *s);

/* Print "vmigctl: <message>\n" on stderr. */
void vmigctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* VMIGCTL_H */

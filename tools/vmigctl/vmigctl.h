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
extern const struct vmigctl_group vmigctl_migrate_net;
extern const struct vmigctl_group vmigctl_dev;

/* ------------------------------------------------------------- helpers */

extern const char *vmigctl_prog;	/* "vmigctl" */

/*
 * Parse a size: a number (decimal, or 0x hex) with an optional binary
 * suffix K, M, G or T (case-insensitive; KiB = 1024).  -EINVAL on syntax
 * errors, -ERANGE on overflow.
 */
int vmigctl_parse_size(const char *s, uint64_t *out);
int vmigctl_parse_size_opt(const char *name, const char *arg, uint64_t *out);

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

/*
 * An errno by name ("EIO", "enospc") or number (1..4095): 0 or -EINVAL.
 */
int vmigctl_parse_errno(const char *s, int *out);

/* "EIO" for 5; NULL for a number without a name. */
const char *vmigctl_errno_name(int err);

/* Print "vmigctl: <message>\n" on stderr. */
void vmigctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------- generic netlink (nl.c) */

struct nl_sock;
struct nl_msg;

/* A socket of the vfio_migsim generic netlink family. */
struct vmigctl_nl {
	struct nl_sock *sk;
	int family;			/* resolved family id */
	/* after a failed request: the kernel's extack, if it sent one */
	char ext_msg[256];
	const char *ext_attr;		/* keyword of the attribute it blamed */
};

/*
 * Connect and resolve the family.  On failure prints why (e.g. the module
 * is not loaded) and returns a negative errno.
 */
int vmigctl_nl_open(struct vmigctl_nl *nl);
void vmigctl_nl_close(struct vmigctl_nl *nl);

/* A new request of the family: cmd, NLM_F_* flags (e.g. NLM_F_DUMP). */
struct nl_msg *vmigctl_nl_msg(struct vmigctl_nl *nl, uint8_t cmd, int flags);

/*
 * Send msg (always freed) and receive until its ACK, the end of a dump, or
 * an error.  valid (may be NULL) is called for every reply message; a
 * negative return from it fails the request with that errno.  Returns 0 or
 * a negative errno; nl->ext_msg and nl->ext_attr describe a kernel error.
 */
int vmigctl_nl_request(struct vmigctl_nl *nl, struct nl_msg *msg,
		       int (*valid)(struct nl_msg *msg, void *arg), void *arg);

/* Join the "events" multicast group and turn off sequence checks. */
int vmigctl_nl_subscribe(struct vmigctl_nl *nl);

/*
 * Print "vmigctl: <what>: [<attr>: ]<extack> (<strerror>)" for a failed
 * request, or "vmigctl: <what>: <strerror>" without an extack.
 */
void vmigctl_nl_perror(struct vmigctl_nl *nl, int err, const char *what);

/* ------------------------------------------------ guest RAM (guest.c) */

/*
 * "migrate send|recv --guest": a guest's RAM in the same session as the
 * devices.  The source runs a tools/testvm guest (KVM, one vCPU, the KVM
 * dirty ring) whose vCPU keeps writing its RAM; the session's switchover
 * pauses it.  The destination receives into anonymous memory of the same
 * size.  Each side ends with the SHA-256 of the whole RAM.
 */
#define VMIGCTL_GUEST_RATE	2000	/* pages/s per vCPU, by default */

struct vmigctl_guest;
struct vmig_session;
struct vmig_session_config;

/*
 * Parse "SIZE[,RATE]" (RATE only when source): SIZE a multiple of 2 MiB,
 * RATE pages/s (default VMIGCTL_GUEST_RATE).  0, or -EINVAL with a message.
 */
int vmigctl_guest_parse(const char *arg, bool source, uint64_t *size,
			uint64_t *rate);

/*
 * Source: create the guest, fill its RAM with random data, start the
 * dirty ring tracking and let the vCPU run.  Destination: map the memory.
 * Prints why on failure (e.g. no /dev/kvm); negative errno.
 */
int vmigctl_guest_new(bool source, uint64_t size, uint64_t rate,
		      struct vmigctl_guest **out);
/* Source: the switchover callback (pauses the vCPUs) into cfg. */
void vmigctl_guest_config(struct vmigctl_guest *g,
			  struct vmig_session_config *cfg);
/*
 * The RAM's session options: postcopy (both sides), and on the source the
 * precopy's bandwidth limit (bytes/s, 0: none) and the downtime limit (ns,
 * 0: libvmig's default).  Before vmigctl_guest_add().
 */
void vmigctl_guest_set_options(struct vmigctl_guest *g, bool postcopy,
			       uint64_t max_bandwidth, uint64_t downtime_ns);
/* vmig_session_add_ram(), before connect or accept.  Negative errno. */
int vmigctl_guest_add(struct vmigctl_guest *g, struct vmig_session *s);
/*
 * After vmig_session_run_source()/_destination() returned ret (s may be
 * NULL if it never ran): the RAM figures; on success the checksum (the
 * source stops tracking first); on the source's failure, resume the vCPUs
 * if the switchover had paused them.
 */
/*
 * Whether postcopy follows the session: send, --postcopy; recv, after
 * vmigctl_guest_end(), what the source chose (the session's CONFIG).
 */
bool vmigctl_guest_postcopy(const struct vmigctl_guest *g);
void vmigctl_guest_end(struct vmigctl_guest *g, struct vmig_session *s,
		       int ret);
/*
 * --postcopy, after the session succeeded.  Source: the postcopy source to
 * addr (retried on a broken connection).  Destination: the postcopy
 * destination on listen_fd (accepting again after a break), then the
 * checksum.  cfg: the session's (id, secret, timeout).  0 or a negative
 * errno, with a message.
 */
struct sockaddr;
int vmigctl_guest_postcopy_src(struct vmigctl_guest *g,
			       const struct vmig_session_config *cfg,
			       const struct sockaddr *addr, int addrlen);
int vmigctl_guest_postcopy_dest(struct vmigctl_guest *g,
				const struct vmig_session_config *cfg,
				int listen_fd);
/* The guest's lines of the human output, and its JSON object. */
void vmigctl_guest_print(const struct vmigctl_guest *g, FILE *f);
void vmigctl_guest_print_json(const struct vmigctl_guest *g, FILE *f);
/* After a failure: what became of the source's guest (NULL: nothing). */
const char *vmigctl_guest_failure_note(const struct vmigctl_guest *g);
/* Stop the vCPUs, free everything (NULL is fine). */
void vmigctl_guest_free(struct vmigctl_guest *g);

#endif /* VMIGCTL_H */

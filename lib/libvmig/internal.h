/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvmig internals shared by the library's source files.  Not installed.
 */
#ifndef VMIG_INTERNAL_H
#define VMIG_INTERNAL_H

#include "vmig.h"

/*
 * The library is built with -fvisibility=hidden; every function of the
 * public API is defined with VMIG_EXPORT (and listed in libvmig.map).
 */
#define VMIG_EXPORT __attribute__((visibility("default")))

#define VMIG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Send one message to the callback set with vmig_set_log(), if any and if
 * level is at most its maximum.  Preserves errno.
 */
void vmig_log(enum vmig_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define vmig_err(...)	vmig_log(VMIG_LOG_ERR, __VA_ARGS__)
#define vmig_warn(...)	vmig_log(VMIG_LOG_WARNING, __VA_ARGS__)
#define vmig_info(...)	vmig_log(VMIG_LOG_INFO, __VA_ARGS__)
#define vmig_dbg(...)	vmig_log(VMIG_LOG_DEBUG, __VA_ARGS__)

/*
 * Name the calling thread "vmig-<what><index>" (at most 15 bytes), so that
 * top -H, perf, gdb and the kernel's own reports tell the library's
 * threads apart.
 */
void vmig_name_thread(const char *what, unsigned int index);

#endif /* VMIG_INTERNAL_H */

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvmig logging: a single process-wide callback; and the names of the
 * library's threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/*
 * The callback, its argument and the level limit are read without a lock:
 * set them before other threads start using the library.
 */
static vmig_log_fn log_fn;
static void *log_opaque;
static enum vmig_log_level log_max = VMIG_LOG_ERR;

VMIG_EXPORT void vmig_set_log(vmig_log_fn fn, void *opaque,
			      enum vmig_log_level max)
{
	log_fn = fn;
	log_opaque = opaque;
	log_max = max;
}

void vmig_log(enum vmig_log_level level, const char *fmt, ...)
{
	char msg[512];
	int saved_errno = errno;
	va_list ap;

	if (!log_fn || level > log_max)
		return;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	log_fn(level, msg, log_opaque);
	errno = saved_errno;
}

void vmig_name_thread(const char *what, unsigned int index)
{
	char name[16];

	snprintf(name, sizeof(name), "vmig-%s%u", what, index);
	pthread_setname_np(pthread_self(), name);
}

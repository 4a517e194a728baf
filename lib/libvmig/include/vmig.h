/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvmig: live migration of VFIO devices and guest RAM for VMMs.
 *
 * This is the library's only public header.  Every function returns 0 (or a
 * non-negative count) on success and a negative errno on failure; none
 * exits the process or prints: diagnostics go to the log callback set with
 * vmig_set_log().  File descriptors the caller passes in stay the caller's.
 */
#ifndef VMIG_H
#define VMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- logging */

enum vmig_log_level {
	VMIG_LOG_ERR = 3,
	VMIG_LOG_WARNING = 4,
	VMIG_LOG_INFO = 6,
	VMIG_LOG_DEBUG = 7,
};

typedef void (*vmig_log_fn)(enum vmig_log_level level, const char *msg,
			    void *opaque);

/* Set the process-wide log callback (NULL: discard all messages). */
void vmig_set_log(vmig_log_fn fn, void *opaque, enum vmig_log_level max);

/* ------------------------------------------------ VFIO migration states */

/*
 * Device migration states, numerically equal to the kernel's
 * enum vfio_device_mig_state.
 */
enum vmig_dev_state {
	VMIG_STATE_ERROR = 0,
	VMIG_STATE_STOP = 1,
	VMIG_STATE_RUNNING = 2,
	VMIG_STATE_STOP_COPY = 3,
	VMIG_STATE_RESUMING = 4,
	VMIG_STATE_RUNNING_P2P = 5,
	VMIG_STATE_PRE_COPY = 6,
	VMIG_STATE_PRE_COPY_P2P = 7,
	VMIG_STATE_NR = 8,
};

/* Migration capability flags, equal to the kernel's VFIO_MIGRATION_*. */
#define VMIG_MIG_STOP_COPY	(1U << 0)
#define VMIG_MIG_P2P		(1U << 1)
#define VMIG_MIG_PRE_COPY	(1U << 2)

/* "RUNNING", "PRE_COPY_P2P", ...; "INVALID" for an out-of-range value. */
const char *vmig_state_name(enum vmig_dev_state state);
/* Parse a state name (case-insensitive); negative errno if unknown. */
int vmig_state_parse(const char *name, enum vmig_dev_state *state);

/*
 * The arcs the kernel's vfio core lets a driver be asked for, given the
 * device's migration flags: the userspace twin of vfio_mig_get_next_state().
 * vmig_state_next() gives the next single arc from cur towards target
 * (-EINVAL when target cannot be reached or a state is not supported);
 * vmig_state_path() fills path[] with every state after cur up to and
 * including target and returns how many there are (0 when cur == target);
 * -ENOSPC if path_len is too short (VMIG_STATE_NR entries always suffice).
 */
int vmig_state_next(uint32_t mig_flags, enum vmig_dev_state cur,
		    enum vmig_dev_state target, enum vmig_dev_state *next);
int vmig_state_path(uint32_t mig_flags, enum vmig_dev_state cur,
		    enum vmig_dev_state target, enum vmig_dev_state *path,
		    size_t path_len);

/* ------------------------------------------------------------ VFIO device */

struct vmig_vfio_dev;

/*
 * Open a VFIO device through the legacy container/group interface.
 * vmig_vfio_open_mdev() takes an mdev UUID ("a1b2...-..."); vmig_vfio_open()
 * takes a sysfs device path (/sys/bus/mdev/devices/<uuid>, or a PCI device's
 * /sys/bus/pci/devices/<bdf>).  Where /dev/vfio/devices/vfioX and /dev/iommu
 * exist, vmig_vfio_open() uses the cdev/iommufd interface instead.
 */
int vmig_vfio_open(const char *sysfs_path, struct vmig_vfio_dev **out);
int vmig_vfio_open_mdev(const char *uuid, struct vmig_vfio_dev **out);
void vmig_vfio_close(struct vmig_vfio_dev *dev);

/* The device fd (owned by the library; do not close it). */
int vmig_vfio_fd(const struct vmig_vfio_dev *dev);
/* The device name: the mdev UUID or the PCI address. */
const char *vmig_vfio_name(const struct vmig_vfio_dev *dev);

/* VFIO_DEVICE_FEATURE_MIGRATION: VMIG_MIG_* flags; -ENOTTY if none. */
int vmig_vfio_mig_flags(struct vmig_vfio_dev *dev, uint32_t *flags);

/* VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, GET. */
int vmig_vfio_get_state(struct vmig_vfio_dev *dev, enum vmig_dev_state *state);

/*
 * Move the device to target along the shortest legal path, one arc per
 * kernel call.  *data_fd (if not NULL) receives the data fd the final arc
 * returns, or -1; the caller owns and closes it (with data_fd NULL, the
 * library closes it).  On failure the device is in whatever state the
 * kernel left it in: vmig_vfio_get_state() tells.
 */
int vmig_vfio_set_state(struct vmig_vfio_dev *dev, enum vmig_dev_state target,
			int *data_fd);

/*
 * A single VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET, exactly as asked (the
 * kernel may then take several arcs).  For tests of the kernel's checks.
 * data_fd as for vmig_vfio_set_state().
 */
int vmig_vfio_set_state_raw(struct vmig_vfio_dev *dev, uint32_t state,
			    int *data_fd);

/* VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: the stop-copy length in bytes. */
int vmig_vfio_stop_copy_size(struct vmig_vfio_dev *dev, uint64_t *bytes);

/* VFIO_MIG_GET_PRECOPY_INFO on a PRE_COPY data fd. */
int vmig_precopy_info(int data_fd, uint64_t *initial_bytes,
		      uint64_t *dirty_bytes, uint32_t *flags);

/* VFIO_DEVICE_RESET. */
int vmig_vfio_reset(struct vmig_vfio_dev *dev);

#ifdef __cplusplus
}
#endif

#endif /* VMIG_H */

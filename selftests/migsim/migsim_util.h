/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the vfio-migsim selftests: mdev instances through
 * sysfs, their migsim/ attributes, VFIO access through libvmig, moving a
 * migration stream between data fds and memory, and the stream format's
 * CRC32C.
 *
 * Every function returns 0 (or a non-negative value) on success and a
 * negative errno on failure; none of them asserts, so they can be used from
 * any fixture or test and from the harness parent's teardown.
 */
#ifndef MIGSIM_UTIL_H
#define MIGSIM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/vfio.h>
#include <linux/vfio_migsim.h>

#include "vmig.h"

#define MIGSIM_PARENT_DIR	"/sys/class/mdev_bus/" MIGSIM_PARENT_NAME
#define MIGSIM_TYPE_DIR		MIGSIM_PARENT_DIR "/mdev_supported_types/" \
				MIGSIM_TYPE_NAME
#define MDEV_DEVICES_DIR	"/sys/bus/mdev/devices"

#define MIGSIM_UUID_LEN		36

#define KiB			1024ULL
#define MiB			(1024ULL * KiB)
#define GiB			(1024ULL * MiB)

#define MIGSIM_DEFAULT_STATE_SIZE	(64 * MiB)	/* the parameter's default */
#define MIGSIM_DEFAULT_CHUNK_SIZE	(1 * MiB)

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

/* ------------------------------------------------------------ instances */

/* One mdev instance of the migsim type, and its VFIO device once opened. */
struct migsim_inst {
	char uuid[MIGSIM_UUID_LEN + 1];	/* "" when not created */
	struct vmig_vfio_dev *dev;	/* NULL when not open */
	int fd;				/* the device fd, -1 when not open */
};

/* A random (version 4) UUID, lowercase, NUL terminated. */
int migsim_uuid_random(char uuid[MIGSIM_UUID_LEN + 1]);

/* Write uuid to the type's create attribute. */
int migsim_create_uuid(const char *uuid);
/* Write "1" to the instance's remove attribute. */
int migsim_remove_uuid(const char *uuid);
/*
 * The state size of a new instance: the module parameter
 * default_state_size if it can be read, else MIGSIM_DEFAULT_STATE_SIZE.
 */
uint64_t migsim_default_state_size(void);
/* Does /sys/bus/mdev/devices/<uuid> exist? */
bool migsim_exists(const char *uuid);
/* The type's available_instances. */
int migsim_available_instances(uint64_t *n);

/*
 * Create an instance with a random UUID and, if state_size is not 0, give it
 * that state size.  On failure nothing is left behind.
 */
int migsim_inst_create(struct migsim_inst *in, uint64_t state_size);
/* Open the instance's VFIO device through libvmig. */
int migsim_inst_open(struct migsim_inst *in);
/* Close the VFIO device (and so every fd libvmig holds for it). */
void migsim_inst_close(struct migsim_inst *in);
/* Close if open, then remove the instance if it was created. */
int migsim_inst_destroy(struct migsim_inst *in);
/* Create with the given state size (0: default) and open. */
int migsim_inst_create_open(struct migsim_inst *in, uint64_t state_size);

/* ---------------------------------------------------------------- sysfs */

/* Read a whole sysfs file; the trailing newline is removed. */
int sysfs_read(const char *path, char *buf, size_t len);
/* Write a string to a sysfs file in one write(). */
int sysfs_write(const char *path, const char *val);

/* The instance's migsim/<attr>. */
int migsim_attr_read(const char *uuid, const char *attr, char *buf,
		     size_t len);
int migsim_attr_write(const char *uuid, const char *attr, const char *val);
/* A number (decimal, 0x hex, optional K/M/G suffix) from migsim/<attr>. */
int migsim_attr_u64(const char *uuid, const char *attr, uint64_t *val);

int migsim_state_size(const char *uuid, uint64_t *bytes);
int migsim_set_state_size(const char *uuid, uint64_t bytes);
int migsim_checksum(const char *uuid, uint32_t *csum);
int migsim_generation(const char *uuid, uint64_t *gen);
int migsim_chunk_size(const char *uuid, uint64_t *bytes);
/* Parse the migration_state attribute into a state. */
int migsim_sysfs_mig_state(const char *uuid, enum vmig_dev_state *state);
/* The IOMMU group number the instance's iommu_group link points to. */
int migsim_iommu_group(const char *uuid, int *group);

/* ------------------------------------------------------------ VFIO access */

int migsim_region_info(int devfd, uint32_t index,
		       struct vfio_region_info *info);
/* Access a region at off (pread/pwrite at the region's offset). */
int migsim_region_read(int devfd, uint32_t index, uint64_t off, void *buf,
		       size_t len);
int migsim_region_write(int devfd, uint32_t index, uint64_t off,
			const void *buf, size_t len);
int migsim_cfg_read32(int devfd, uint32_t off, uint32_t *val);
int migsim_cfg_write32(int devfd, uint32_t off, uint32_t val);
int migsim_bar0_read32(int devfd, uint32_t off, uint32_t *val);
int migsim_bar0_write32(int devfd, uint32_t off, uint32_t val);

/* Set the state with one SET ioctl; *data_fd gets the fd or -1. */
int migsim_set_state(struct migsim_inst *in, enum vmig_dev_state state,
		     int *data_fd);
int migsim_get_state(struct migsim_inst *in, enum vmig_dev_state *state);

/* -------------------------------------------------------------- streams */

/* A growable byte buffer. */
struct migsim_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

int migsim_buf_append(struct migsim_buf *b, const void *data, size_t len);
void migsim_buf_free(struct migsim_buf *b);

/*
 * Read fd in read() calls of at most rsz bytes, appending to b, until EOF
 * (return 0) or a read() fails (return -errno; what was read before stays
 * in b).
 */
int migsim_read_stream(int fd, size_t rsz, struct migsim_buf *b);

/*
 * Write len bytes in write() calls of at most wsz bytes; a short write goes
 * on from where it stopped.  Returns 0, or -errno of the first failed
 * write(); *written (if not NULL) gets the bytes the fd accepted.
 */
int migsim_write_stream(int fd, const void *buf, size_t len, size_t wsz,
			size_t *written);

/*
 * Copy in_fd (read() of at most rsz bytes) to out_fd (write() of exactly
 * wsz bytes but the last) until in_fd gives EOF, or, with stop_at_enomsg,
 * until a read() fails with ENOMSG.  *bytes gets the bytes copied.  Returns
 * 0, or -errno; *failed_write then says which side failed.
 */
int migsim_copy_stream(int in_fd, int out_fd, size_t rsz, size_t wsz,
		       bool stop_at_enomsg, uint64_t *bytes,
		       bool *failed_write);

/*
 * Save a device's whole state: RUNNING -> STOP -> STOP_COPY, read the data
 * fd to EOF in rsz-sized reads into b, back to RUNNING.
 */
int migsim_save(struct migsim_inst *in, size_t rsz, struct migsim_buf *b);

/*
 * Load a stream: -> RESUMING, write len bytes in wsz-sized writes, close
 * the data fd, -> STOP -> RUNNING.  Returns 0 or the -errno of the first
 * step that failed.
 */
int migsim_load(struct migsim_inst *in, const void *buf, size_t len,
		size_t wsz);

/*
 * Bytes of a STOP_COPY stream entered from STOP for a state of this size:
 * header, CONFIG record, one CHUNK record per chunk, END record.
 */
uint64_t migsim_stream_len(uint64_t state_size, uint64_t chunk_size);

/* ---------------------------------------------------------------- CRC32C */

/* Raw CRC32C (Castagnoli, reflected) update: no pre or post inversion. */
uint32_t migsim_crc32c_update(uint32_t crc, const void *buf, size_t len);
/* The stream's CRC32C of a buffer: initial ~0, final xor ~0. */
uint32_t migsim_crc32c(const void *buf, size_t len);

/* Recompute the header_crc of a (patched) stream header in place. */
void migsim_fix_header_crc(struct migsim_stream_header *h);
/* Recompute the record_crc of a (patched) record in place. */
void migsim_fix_record_crc(struct migsim_record *r);

/*
 * Walk a stream in memory: *off is the offset of the next record (start at
 * sizeof(struct migsim_stream_header)); returns a pointer to the record and
 * advances *off past its payload, or NULL at the end of the buffer or if
 * the record does not fit.
 */
struct migsim_record *migsim_next_record(struct migsim_buf *b, size_t *off);
/* The first record of a type (and, for CHUNK, offset), or NULL. */
struct migsim_record *migsim_find_record(struct migsim_buf *b, uint32_t type,
					 uint64_t offset, size_t *rec_off);

#endif /* MIGSIM_UTIL_H */

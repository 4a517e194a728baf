/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vfio-migsim: a VFIO mdev device that simulates large, resizable device
 * state for testing VFIO live migration.
 *
 * This header is the driver's own uAPI: the migration stream format read
 * from and written to the VFIO migration data fd, the PCI identity and
 * BAR0 register file of the simulated device, and the names of its sysfs
 * attributes.  See Documentation/stream-format.rst and
 * Documentation/driver.rst for the prose.
 */
#ifndef _UAPI_LINUX_VFIO_MIGSIM_H
#define _UAPI_LINUX_VFIO_MIGSIM_H

#include <linux/types.h>

/* ----------------------------------------------------------------------
 * Identity
 */

/* The mdev parent device and its class: /sys/class/mdev_bus/migsim */
#define MIGSIM_PARENT_NAME	"migsim"
/* The mdev type directory: mdev_supported_types/migsim-v1 */
#define MIGSIM_TYPE_NAME	"migsim-v1"
/* Device model string carried in every stream header */
#define MIGSIM_MODEL		"vfio-migsim"
#define MIGSIM_MODEL_LEN	32

/* PCI identity (Red Hat/QEMU vendor, an ID from its test-device range) */
#define MIGSIM_PCI_VENDOR_ID	0x1b36
#define MIGSIM_PCI_DEVICE_ID	0x00f0
#define MIGSIM_PCI_CLASS	0xff0000	/* unassigned class */
#define MIGSIM_PCI_REVISION	0x01
#define MIGSIM_CONFIG_SIZE	256
#define MIGSIM_BAR0_SIZE	4096

/* ----------------------------------------------------------------------
 * BAR0 register file (little endian, 32-bit registers, 32-bit aligned)
 */
#define MIGSIM_REG_ID		0x00	/* RO: MIGSIM_REG_ID_VALUE */
#define MIGSIM_REG_VERSION	0x04	/* RO: stream format version */
#define MIGSIM_REG_SIZE_LO	0x08	/* RO: state size, bits 31:0 */
#define MIGSIM_REG_SIZE_HI	0x0c	/* RO: state size, bits 63:32 */
#define MIGSIM_REG_GEN_LO	0x10	/* RO: state generation, bits 31:0 */
#define MIGSIM_REG_GEN_HI	0x14	/* RO: state generation, bits 63:32 */
#define MIGSIM_REG_CHUNK_SIZE	0x18	/* RO: chunk size in bytes */
#define MIGSIM_REG_MIG_STATE	0x1c	/* RO: enum vfio_device_mig_state */
#define MIGSIM_REG_CHECKSUM	0x20	/* RO: state checksum (see below) */
#define MIGSIM_REG_SCRATCH0	0x40	/* RW: migrated with the device */
#define MIGSIM_NR_SCRATCH	8	/* SCRATCH0 .. SCRATCH0 + 4 * 7 */
/* with the ext_regs parameter: 64 scratch registers, 0x40 .. 0x13c */
#define MIGSIM_NR_SCRATCH_EXT	64

#define MIGSIM_REG_ID_VALUE	0x4d53474d	/* "MGSM" */

/* ----------------------------------------------------------------------
 * Migration stream (data fd)
 *
 * A stream is a header, then records, then an END record.  All integers are
 * little endian.  Every header and record carries a CRC32C (Castagnoli,
 * initial value ~0, final xor ~0, as in iSCSI) of its own bytes before the
 * CRC field; a CHUNK or CONFIG payload has its own CRC32C.  Records are
 * numbered from 0 in the order they appear ("seq").  A later CHUNK record
 * for the same chunk replaces an earlier one.  The stream is complete once
 * its END record has been read; a reader gets EOF after it.
 *
 * The checksum of a whole state (sysfs "checksum", BAR0 CHECKSUM, END
 * record) is the CRC32C, seeded with ~0, of: the state size as __le64,
 * followed by the payload CRC32C of every chunk in chunk order, each as
 * __le32.
 */
#define MIGSIM_STREAM_MAGIC	0x4d53474d	/* bytes "MGSM" */
#define MIGSIM_STREAM_VERSION	1

/* stream header flags */
#define MIGSIM_STREAM_F_PRECOPY	(1U << 0)	/* opened in PRE_COPY */

/*
 * Migration parameters.  An instance is created with them (sysfs
 * migration_params, before the device is first opened); a stream carries
 * them in its header, and a destination refuses a stream whose parameters
 * differ from its own (MIGSIM_ERR_MODEL).  The type's migration_info
 * attribute describes them; see Documentation/compatibility.rst.
 *
 * format 1: a CHUNK payload CRC covers the payload.
 * format 2: it covers the chunk's offset (__le64) followed by the payload,
 *           so that a chunk applied at the wrong place is caught.
 */
#define MIGSIM_FORMAT_MIN	1
#define MIGSIM_FORMAT_MAX	2
/* features: 64 scratch registers, carried by a longer CONFIG record */
#define MIGSIM_FEAT_EXT_REGS	(1U << 0)
#define MIGSIM_FEAT_ALL		MIGSIM_FEAT_EXT_REGS

struct migsim_stream_header {
	__le32 magic;		/* MIGSIM_STREAM_MAGIC */
	__le16 version;		/* MIGSIM_STREAM_VERSION */
	__le16 header_len;	/* sizeof(struct migsim_stream_header) */
	char model[MIGSIM_MODEL_LEN];	/* MIGSIM_MODEL, NUL padded */
	__le64 state_size;	/* size of the state when the stream began */
	__le32 chunk_size;	/* bytes per chunk, a power of two */
	__le32 flags;		/* MIGSIM_STREAM_F_* */
	__le32 format;		/* migration parameter: format version */
	__le32 features;	/* migration parameter: MIGSIM_FEAT_* */
	__le64 nonprecopy_size;	/* bytes sent only in STOP_COPY */
	__le32 reserved[5];	/* zero */
	__le32 header_crc;	/* CRC32C of the bytes above */
};

enum migsim_record_type {
	MIGSIM_REC_CHUNK = 1,	/* payload: state bytes at offset */
	MIGSIM_REC_CONFIG = 2,	/* payload: struct migsim_config_state */
	MIGSIM_REC_RESIZE = 3,	/* no payload; offset is the new state size */
	MIGSIM_REC_END = 4,	/* payload: struct migsim_end */
};

struct migsim_record {
	__le32 type;		/* enum migsim_record_type */
	__le32 flags;		/* zero */
	__le64 offset;		/* CHUNK: byte offset, a chunk boundary */
	__le32 length;		/* payload bytes that follow this record */
	__le32 payload_crc;	/* CRC32C of the payload */
	__le32 seq;		/* record index in the stream, from 0 */
	__le32 record_crc;	/* CRC32C of the 28 bytes above */
};

/* device registers and PCI config that travel with the state */
struct migsim_config_state {
	__le32 scratch[MIGSIM_NR_SCRATCH];
	__le16 pci_command;
	__le16 reserved0;
	__le32 bar0;		/* BAR0 base address register as written */
	__le32 reserved[6];
};

/* with MIGSIM_FEAT_EXT_REGS, the CONFIG payload goes on with this */
struct migsim_config_ext {
	__le32 scratch[MIGSIM_NR_SCRATCH_EXT - MIGSIM_NR_SCRATCH];
};

struct migsim_end {
	__le64 state_size;	/* final state size */
	__le64 records;		/* records before this one */
	__le64 payload_bytes;	/* CHUNK payload bytes in the stream */
	__le32 state_checksum;	/* checksum of the final state */
	__le32 reserved;
};

/*
 * Errors.  A RESUMING data fd checks the stream as it is written: write()
 * fails as soon as the stream is known to be bad, the failure is sticky, and
 * the RESUMING -> STOP arc then fails with the same errno, leaving the
 * device in ERROR with its own previous state untouched (VFIO_DEVICE_RESET
 * returns it to RUNNING).  The kernel log says why.
 */
#define MIGSIM_ERR_PROTO	EPROTO		/* bad magic or format version */
#define MIGSIM_ERR_MODEL	EMEDIUMTYPE	/* other device model or parameters */
#define MIGSIM_ERR_CORRUPT	EBADMSG		/* CRC mismatch, malformed record */
#define MIGSIM_ERR_TRUNCATED	ENODATA		/* RESUMING -> STOP before END */
#define MIGSIM_ERR_OVERSIZED	EFBIG		/* bytes past END, out of range */

/* ----------------------------------------------------------------------
 * sysfs, per instance: /sys/bus/mdev/devices/<uuid>/migsim/<attr>
 */
#define MIGSIM_SYSFS_GROUP	"migsim"
/*
 * state_size		rw  bytes (K/M/G suffixes accepted), multiple of 4 KiB
 * chunk_size		ro  bytes
 * seed			ro  seed of the initial content, hex
 * checksum		ro  state checksum, "0x%08x"
 * generation		ro  bumps on every change of the state's content
 * migration_state	ro  STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P,
 *			    PRE_COPY, PRE_COPY_P2P or ERROR
 * last_error		ro  why the last load or transition failed, or "none"
 * migration_params	rw  "format=N chunk_size=N ext_regs=0|1"; writable
 *			    (any subset) only while the device is not open
 * dirty_rate		rw  bytes/s the device dirties (K/M/G), 0 = off
 * hot_set		rw  thousandths of the chunks that take the writes
 * nonprecopy_size	rw  bytes only STOP_COPY sends
 * bytes_dirtied	ro  chunk bytes dirtied so far
 *
 * and per type: mdev_supported_types/migsim-v1/migration_info, the
 * description of the migration parameters (Documentation/compatibility.rst).
 */

/* ----------------------------------------------------------------------
 * Generic netlink control family (Documentation/netlink.rst)
 *
 * DEV_GET with MIGSIM_A_UUID gets one instance; as a dump, every instance.
 * DEV_SET, FAULT_SET and DMA_SET change an instance and need CAP_NET_ADMIN.  The
 * "events" multicast group gets a STATE_EVENT for every migration state
 * change of every instance.  Bad input is refused with an extack message.
 */
#define MIGSIM_GENL_NAME	"vfio_migsim"
#define MIGSIM_GENL_VERSION	1
#define MIGSIM_GENL_MCGRP	"events"

enum migsim_cmd {
	MIGSIM_CMD_UNSPEC,
	MIGSIM_CMD_DEV_GET,	/* UUID -> the instance's attributes */
	/* UUID + any of STATE_SIZE, DIRTY_RATE, HOT_SET, NONPRECOPY_SIZE */
	MIGSIM_CMD_DEV_SET,
	MIGSIM_CMD_FAULT_SET,	/* UUID + FAULT nest; an empty nest clears */
	MIGSIM_CMD_STATE_EVENT,	/* multicast: UUID, OLD_STATE, MIG_STATE */
	MIGSIM_CMD_DMA_SET,	/* UUID + DMA nest: the DMA engine */
	__MIGSIM_CMD_MAX,
};

#define MIGSIM_CMD_MAX (__MIGSIM_CMD_MAX - 1)

enum migsim_attr {
	MIGSIM_A_UNSPEC,
	MIGSIM_A_PAD,
	MIGSIM_A_UUID,			/* string, 36 characters */
	MIGSIM_A_MIG_STATE,		/* u32: enum vfio_device_mig_state */
	MIGSIM_A_OLD_STATE,		/* u32: before the change (events) */
	MIGSIM_A_STATE_SIZE,		/* u64: bytes, 4 KiB granules */
	MIGSIM_A_NONPRECOPY_SIZE,	/* u64: bytes */
	MIGSIM_A_DIRTY_RATE,		/* u64: bytes per second, 0 = off */
	MIGSIM_A_HOT_SET,		/* u32: thousandths, 1..1000 */
	MIGSIM_A_GENERATION,		/* u64 */
	MIGSIM_A_CHECKSUM,		/* u32 */
	MIGSIM_A_CHUNK_SIZE,		/* u32 */
	MIGSIM_A_STATS,			/* nest of MIGSIM_STAT_* (u64) */
	MIGSIM_A_FAULT,			/* nest of MIGSIM_FAULT_A_* */
	MIGSIM_A_DMA,			/* nest of MIGSIM_DMA_A_* */
	__MIGSIM_A_MAX,
};

#define MIGSIM_A_MAX (__MIGSIM_A_MAX - 1)

enum migsim_stat {
	MIGSIM_STAT_UNSPEC,
	MIGSIM_STAT_PAD,
	MIGSIM_STAT_BYTES_SAVED,	/* stream bytes read from save fds */
	MIGSIM_STAT_BYTES_LOADED,	/* stream bytes written to resume fds */
	MIGSIM_STAT_CHUNKS_DIRTIED,	/* by the engine */
	MIGSIM_STAT_PRECOPY_READS,	/* read() calls on a precopy fd */
	MIGSIM_STAT_DMA_BYTES,		/* bytes the DMA engine wrote */
	MIGSIM_STAT_DMA_PAGES,		/* pages it wrote: the next DMA seq */
	MIGSIM_STAT_DMA_ERRORS,		/* vfio_dma_rw() failures */
	__MIGSIM_STAT_MAX,
};

#define MIGSIM_STAT_MAX (__MIGSIM_STAT_MAX - 1)

/*
 * Faults, armed until they fire (once) or are cleared.  An offset counts
 * stream bytes from the start of the stream.
 */
enum migsim_fault_attr {
	MIGSIM_FAULT_A_UNSPEC,
	MIGSIM_FAULT_A_PAD,
	MIGSIM_FAULT_A_SAVE_OFFSET,	/* u64: a save read fails here ... */
	MIGSIM_FAULT_A_SAVE_ERRNO,	/* u32: ... with this errno (def. EIO) */
	MIGSIM_FAULT_A_LOAD_OFFSET,	/* u64: a load write fails here (EIO) */
	MIGSIM_FAULT_A_READ_DELAY_US,	/* u32: every save read() sleeps; 0 off */
	MIGSIM_FAULT_A_FAIL_TRANSITION,	/* u32 errno: the next arc fails */
	__MIGSIM_FAULT_A_MAX,
};

#define MIGSIM_FAULT_A_MAX (__MIGSIM_FAULT_A_MAX - 1)

/*
 * The DMA engine (Documentation/driver.rst).  While the device is RUNNING
 * or PRE_COPY and open, it writes whole 4 KiB pages of the configured IOVA
 * ranges, one after the other and round robin, at RATE bytes per second,
 * through vfio_dma_rw() into memory the VMM mapped into the VFIO container.
 * A range whose write fails is skipped from then on (MIGSIM_STAT_DMA_ERRORS,
 * last_error) until the next DMA_SET.
 *
 * DMA_SET: the RATE and the list of RANGEs are each replaced if the nest
 * carries them; an empty nest turns the engine off and clears the ranges.
 * DEV_GET reports the same nest, with DISABLED on the ranges skipped.
 */
#define MIGSIM_DMA_MAX_RANGES	16
#define MIGSIM_DMA_PAGE_SIZE	4096

enum migsim_dma_attr {
	MIGSIM_DMA_A_UNSPEC,
	MIGSIM_DMA_A_PAD,
	MIGSIM_DMA_A_RATE,		/* u64: bytes per second, 0 = off */
	MIGSIM_DMA_A_RANGE,		/* nest of MIGSIM_DMA_RANGE_A_*; repeated */
	__MIGSIM_DMA_A_MAX,
};

#define MIGSIM_DMA_A_MAX (__MIGSIM_DMA_A_MAX - 1)

enum migsim_dma_range_attr {
	MIGSIM_DMA_RANGE_A_UNSPEC,
	MIGSIM_DMA_RANGE_A_PAD,
	MIGSIM_DMA_RANGE_A_IOVA,	/* u64: 4 KiB aligned */
	MIGSIM_DMA_RANGE_A_LENGTH,	/* u64: 4 KiB multiple, not 0 */
	MIGSIM_DMA_RANGE_A_DISABLED,	/* flag, DEV_GET only: a write failed */
	__MIGSIM_DMA_RANGE_A_MAX,
};

#define MIGSIM_DMA_RANGE_A_MAX (__MIGSIM_DMA_RANGE_A_MAX - 1)

/*
 * Every page the engine writes starts with this header (little endian);
 * 64-bit word i of the page, for i from MIGSIM_DMA_HDR_WORDS up to 511, is
 * seq ^ (iova + 8 * i).  seq numbers the instance's page writes from 0:
 * MIGSIM_STAT_DMA_PAGES is the seq of the next write.
 */
#define MIGSIM_DMA_MAGIC	0x31414d444d53474dULL	/* bytes "MGSMDMA1" */

struct migsim_dma_page {
	__le64 magic;		/* MIGSIM_DMA_MAGIC */
	__le64 iova;		/* where the page was written */
	__le64 seq;		/* the instance's write number */
	__u8 uuid[16];		/* the UUID, in its string's byte order */
};

#define MIGSIM_DMA_HDR_WORDS	(sizeof(struct migsim_dma_page) / 8)

#endif /* _UAPI_LINUX_VFIO_MIGSIM_H */

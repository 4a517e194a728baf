/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vfio-migsim: internal declarations shared by the driver's files.
 *
 * Locking (outermost first):
 *   migsim_dev.state_mutex  the migration state, the chunk store's shape and
 *                           content, the data fd pointers, registers and
 *                           config space.
 *   migsim_migf.lock        one data fd's cursor, staging area and the
 *                           disabled flag.
 *   migsim_dev.error_lock   last_error and the armed faults; a spinlock
 *                           taken with or without the above.
 * netlink.c's registry lock (migsim_devs_lock) comes before all of these.
 *
 * The DMA engine (dma.c) calls vfio_dma_rw() with state_mutex held, so that
 * an arc to a P2P or stopped state waits for a write in flight and none
 * starts after it.  vfio_dma_rw() takes the type1 container's iommu->lock
 * and, in copy_to_user() under kthread_use_mm(), the VMM's mmap_lock (page
 * faults), so the order is
 *   state_mutex -> type1 iommu->lock -> mmap_lock.
 * It is safe because nothing of ours takes state_mutex under either: the
 * device has no mmap or fault handler, and no .dma_unmap op.  type1 calls
 * .dma_unmap (vfio_notify_dma_unmap()) only for mappings with pinned pages,
 * holding its device_list_lock after taking iommu->lock; this device pins
 * nothing, so it needs no callback: VFIO_IOMMU_UNMAP_DMA takes iommu->lock,
 * and a vfio_dma_rw() either finishes before the mapping goes or finds it
 * gone (-EINVAL), after which the engine skips that range.  A .dma_unmap
 * that took state_mutex would close the cycle iommu->lock ->
 * device_list_lock -> state_mutex -> iommu->lock; if one is ever added, it
 * must not take state_mutex.  A write into userfaultfd-registered memory
 * may wait for the VMM's fault handler with state_mutex held.
 * A data fd's read() and write() take only migf->lock.  Anything that
 * changes or frees the chunks a save fd may be copying takes state_mutex and
 * then disables the fd under migf->lock first, so a read() that finds its
 * fd enabled may use the device's chunks without state_mutex.
 */
#ifndef MIGSIM_H
#define MIGSIM_H

#include <linux/atomic.h>
#include <linux/ktime.h>
#include <linux/mutex.h>
#include <linux/prandom.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <uapi/linux/vfio_migsim.h>

struct mdev_device;

/* ---------------------------------------------------------------- state.c */

struct migsim_chunk {
	void *data;
	u32 len;
	u32 crc;
	bool crc_valid;
};

/* N bytes of device state in fixed-size chunks, indexed in an xarray. */
struct migsim_store {
	struct xarray chunks;		/* chunk index -> struct migsim_chunk */
	u64 size;
	u32 chunk_size;
	u64 seed;
};

static inline unsigned long migsim_nr_chunks(u64 size, u32 chunk_size)
{
	return DIV_ROUND_UP_ULL(size, chunk_size);
}

static inline u32 migsim_chunk_len(u64 size, u32 chunk_size,
				   unsigned long idx)
{
	u64 off = (u64)idx * chunk_size;

	return min_t(u64, chunk_size, size - off);
}

struct migsim_store *migsim_store_alloc(u32 chunk_size, u64 seed);
int migsim_store_resize(struct migsim_store *st, u64 new_size);
void migsim_store_free(struct migsim_store *st);
struct migsim_chunk *migsim_store_chunk(struct migsim_store *st,
					unsigned long idx);
struct migsim_chunk *migsim_store_stage(struct migsim_store *st,
					unsigned long idx, u32 len);
void migsim_store_truncate(struct migsim_store *st, u64 size);
bool migsim_store_complete(struct migsim_store *st, unsigned long *missing);
u32 migsim_chunk_crc(struct migsim_chunk *c);
void migsim_chunk_write(struct migsim_chunk *c, u32 off, const void *src,
			u32 len, void *tmp);
void migsim_fill(void *buf, u32 len, u64 seed, u64 off);
u32 migsim_store_checksum(struct migsim_store *st);
u32 migsim_crc(u32 crc, const void *buf, size_t len);
u32 migsim_crc_format(u32 format, u64 offset, u32 len, u32 payload_crc);
struct migsim_store *migsim_store_rechunk(struct migsim_store *st,
					  u32 chunk_size);

/* --------------------------------------------------------------- stream.c */

enum migsim_parse_phase {
	MIGSIM_PARSE_HEADER,
	MIGSIM_PARSE_RECORD,
	MIGSIM_PARSE_PAYLOAD,
	MIGSIM_PARSE_DONE,
};

/* What a RESUMING data fd has made of the bytes written to it so far. */
struct migsim_parser {
	enum migsim_parse_phase phase;
	int error;			/* sticky -errno, 0 while good */
	u64 pos;			/* stream bytes consumed */
	u32 seq;			/* next record's expected seq */
	u64 payload_bytes;
	union {
		struct migsim_stream_header hdr;
		struct migsim_record rec;
		u8 raw[sizeof(struct migsim_stream_header)];
	} frame;
	u32 frame_pos;
	struct migsim_stream_header hdr;	/* validated header */
	struct migsim_record rec;		/* record being received */
	void *dst;			/* payload destination */
	u32 dst_pos;
	u32 dst_crc;
	u8 config[sizeof(struct migsim_config_state) +
		  sizeof(struct migsim_config_ext)];
	u32 config_len;			/* the CONFIG payload's length */
	u32 format;			/* migration parameter of the stream */
	bool have_config;
	struct migsim_end end;
	struct migsim_store *staged;	/* chunks received so far */
	char why[128];			/* why error was set */
};

struct migsim_dev;

void migsim_stream_header(struct migsim_dev *mdev,
			  struct migsim_stream_header *hdr, u32 flags);
void migsim_stream_record(struct migsim_record *rec, u32 type, u64 offset,
			  u32 len, u32 payload_crc, u32 seq);
int migsim_parser_init(struct migsim_parser *p, u32 chunk_size);
void migsim_parser_destroy(struct migsim_parser *p);
ssize_t migsim_parse(struct migsim_parser *p, struct migsim_dev *mdev,
		     const char __user *buf, size_t len);
int migsim_parse_finish(struct migsim_parser *p);

/* ---------------------------------------------------------------- mig.c */

enum migsim_save_phase {
	MIGSIM_SAVE_HEADER,
	MIGSIM_SAVE_CHUNKS,
	MIGSIM_SAVE_CONFIG,
	MIGSIM_SAVE_END,
	MIGSIM_SAVE_DONE,
};

/* xarray mark on a store's chunks: sent, then changed (save stream) */
#define MIGSIM_MARK_DIRTY XA_MARK_1

/* A migration data fd, saving or resuming. */
struct migsim_migf {
	struct file *filp;
	struct migsim_dev *mdev;	/* valid only while !disabled */
	struct mutex lock;		/* inside state_mutex */
	wait_queue_head_t poll_wait;
	bool disabled;
	bool resuming;

	/* saving */
	enum migsim_save_phase phase;
	bool stop_copy;			/* the device reached STOP_COPY */
	bool resize_pending;		/* a RESIZE record is owed */
	bool reinit;			/* grew since the last PRECOPY_INFO */
	bool item_dirty;		/* the queued item is not initial data */
	unsigned long next_chunk;	/* first chunk of the pass not sent */
	long inflight;			/* chunk whose payload is queued, or -1 */
	unsigned long dirty_count;	/* chunks marked MIGSIM_MARK_DIRTY */
	u64 dirty_payload;		/* their bytes */
	u32 seq;
	u64 pos;			/* stream bytes given out so far */
	u64 payload_bytes;
	u8 frame[sizeof(struct migsim_record) +
		 sizeof(struct migsim_config_state) +
		 sizeof(struct migsim_config_ext)];
	u32 frame_len, frame_pos;	/* framing bytes to copy out */
	const u8 *payload;		/* chunk bytes to copy out */
	u32 payload_len, payload_pos;
	void *bounce;			/* private copy of a changed payload */
	/* taken on entering STOP_COPY: CONFIG payload and its length */
	u8 config[sizeof(struct migsim_config_state) +
		  sizeof(struct migsim_config_ext)];
	u32 config_len;

	/* resuming */
	struct migsim_parser parser;
};

extern const struct vfio_migration_ops migsim_migration_ops;
void migsim_disable_fds(struct migsim_dev *mdev);
u64 migsim_full_stream_size(struct migsim_dev *mdev);
void migsim_save_dirty(struct migsim_migf *migf, unsigned long idx,
		       struct migsim_chunk *c);
int migsim_resize(struct migsim_dev *mdev, u64 size);
int migsim_device_feature(struct vfio_device *vdev, u32 flags,
			  void __user *arg, size_t argsz);

/* ---------------------------------------------------------------- engine.c */

struct migsim_engine {
	struct delayed_work work;
	u64 rate;			/* bytes per second, 0 = off */
	u32 hot_permille;		/* share of chunks that take writes */
	ktime_t last;
	u64 credit;			/* bytes owed to the rate */
	u64 stamp;			/* makes every write different */
	struct rnd_state rnd;
	void *page, *tmp;		/* one page each */
	u64 bytes_dirtied;		/* chunk bytes made dirty */
	u64 chunks_dirtied;
};

int migsim_engine_init(struct migsim_dev *mdev);
void migsim_engine_destroy(struct migsim_dev *mdev);
void migsim_engine_set(struct migsim_dev *mdev, u64 rate, u32 hot_permille);

/* ---------------------------------------------------------------- dma.c */

struct migsim_dma_range {
	u64 iova;
	u64 len;			/* bytes, 4 KiB multiple */
	bool disabled;			/* a write failed: skipped */
};

/* The DMA engine; everything here is guarded by state_mutex. */
/* ranges a VMM may ask the device to log; more are merged by the core */
#define MIGSIM_DMA_MAX_LOG_RANGES 16

struct migsim_dma {
	struct delayed_work work;
	bool scheduled;			/* the work is queued or running */
	u64 rate;			/* bytes per second, 0 = off */
	struct migsim_dma_range ranges[MIGSIM_DMA_MAX_RANGES];
	u32 nr_ranges;
	u32 cur;			/* range written next */
	u64 off;			/* offset in it */
	ktime_t last;
	u64 credit;			/* bytes owed to the rate */
	void *page;			/* the page being written */
	u8 uuid[16];			/* the UUID in string byte order */
	u64 bytes;			/* counters (netlink DEV_GET) */
	u64 pages;			/* also the next write's seq */
	u64 errors;

	/* device DMA logging (vfio_log_ops), under state_mutex */
	bool logging;
	u32 nr_log;
	struct {
		u64 start, last;
	} log_ranges[MIGSIM_DMA_MAX_LOG_RANGES];
	struct xarray log;		/* page frame (iova >> PAGE_SHIFT) */
};

/* A DMA_SET request, checked. */
struct migsim_dma_conf {
	bool set_rate;
	bool set_ranges;
	u64 rate;
	u32 nr_ranges;
	struct migsim_dma_range ranges[MIGSIM_DMA_MAX_RANGES];
};

int migsim_dma_init(struct migsim_dev *mdev);
void migsim_dma_destroy(struct migsim_dev *mdev);
void migsim_dma_set(struct migsim_dev *mdev,
		    const struct migsim_dma_conf *conf);
void migsim_dma_log_reset(struct migsim_dev *mdev);

/* ---------------------------------------------------------------- pci.c */

void migsim_pci_init(struct migsim_dev *mdev);
void migsim_pci_reset(struct migsim_dev *mdev);
long migsim_ioctl(struct vfio_device *vdev, unsigned int cmd,
		  unsigned long arg);
ssize_t migsim_read(struct vfio_device *vdev, char __user *buf, size_t count,
		    loff_t *ppos);
ssize_t migsim_write(struct vfio_device *vdev, const char __user *buf,
		     size_t count, loff_t *ppos);
u32 migsim_config_len(struct migsim_dev *mdev);
void migsim_config_save(struct migsim_dev *mdev, void *buf);
void migsim_config_load(struct migsim_dev *mdev, const void *buf);

/* ---------------------------------------------------------------- netlink.c */

struct migsim_stats {
	atomic64_t bytes_saved;
	atomic64_t bytes_loaded;
	atomic64_t precopy_reads;
};

/* Armed faults (netlink FAULT_SET); guarded by migsim_dev.error_lock. */
struct migsim_faults {
	u64 save_offset;		/* U64_MAX: none */
	u32 save_errno;
	u64 load_offset;		/* U64_MAX: none */
	u32 read_delay_us;
	u32 fail_transition;		/* errno, 0: none */
};

int migsim_nl_init(void);
void migsim_nl_exit(void);
int migsim_nl_register(struct migsim_dev *mdev);
void migsim_nl_unregister(struct migsim_dev *mdev);
void migsim_nl_state_event(struct migsim_dev *mdev,
			   enum vfio_device_mig_state old,
			   enum vfio_device_mig_state new);
void migsim_faults_set(struct migsim_dev *mdev,
		       const struct migsim_faults *f);

/* ---------------------------------------------------------------- main.c */

struct migsim_dev {
	struct vfio_device vdev;
	struct mdev_device *mdev;

	struct mutex state_mutex;	/* see the locking comment above */
	enum vfio_device_mig_state mig_state;
	struct migsim_migf *saving;
	struct migsim_migf *resuming;
	struct migsim_store *store;	/* replaced whole by a load */
	u64 generation;
	spinlock_t error_lock;		/* innermost: last_error, faults */
	char last_error[128];
	struct migsim_faults faults;
	struct migsim_stats stats;
	u32 nl_id;			/* index in the netlink registry */
	u64 nonprecopy_size;		/* bytes kept for STOP_COPY */
	bool precopy_info_v2;		/* the PRECOPY_INFO_V2 opt-in */
	bool opened;			/* a user has the device open */
	struct migsim_engine engine;
	struct migsim_dma dma;

	/* PCI face */
	u8 config[MIGSIM_CONFIG_SIZE];
	u32 scratch[MIGSIM_NR_SCRATCH_EXT];

	/* migration parameters, fixed while the device is open */
	u32 format;
	u32 features;
};

static inline struct migsim_dev *to_migsim(struct vfio_device *vdev)
{
	return container_of(vdev, struct migsim_dev, vdev);
}

extern unsigned long migsim_max_state_size;

const char *migsim_state_name(enum vfio_device_mig_state state);
u32 migsim_checksum(struct migsim_dev *mdev);

void migsim_set_error(struct migsim_dev *mdev, const char *fmt, ...)
	__printf(2, 3);

#endif /* MIGSIM_H */

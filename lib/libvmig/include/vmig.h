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
#include <sys/socket.h>

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
/*
 * The type1 container fd (/dev/vfio/vfio) the device was opened through,
 * owned by the library like the device fd: map memory into it with
 * VFIO_IOMMU_MAP_DMA, track device writes with VFIO_IOMMU_DIRTY_PAGES.
 * -ENODEV if the device was opened through the cdev/iommufd interface.
 */
int vmig_vfio_container_fd(const struct vmig_vfio_dev *dev);
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

/* ---------------------------------------------- migration compatibility */

/*
 * Can a device described by src_info, with the migration parameters
 * src_params ("name=value ..."), migrate to a destination described by
 * dst_info?  The descriptions are "migration_info" texts (for vfio-migsim,
 * the mdev type's migration_info attribute; format in
 * Documentation/compatibility.rst).  Decided from the texts alone: no
 * device is opened and no migration started.  Returns 0 when it can,
 * -EMEDIUMTYPE with a sentence in why (if not NULL) when it cannot, and
 * -EINVAL when a text does not parse.
 */
int vmig_compat_check(const char *src_info, const char *src_params,
		      const char *dst_info, char *why, size_t why_len);

/* ------------------------------------------------- guest RAM (issue 6) */

/*
 * Guest RAM is handed over as regions.  A region KVM maps has its memslot
 * (as_id << 16 | slot id) and the flags the VMM created the slot with; the
 * library toggles KVM_MEM_LOG_DIRTY_PAGES on it while tracking, re-issuing
 * KVM_SET_USER_MEMORY_REGION with those values.  A region no KVM maps (a
 * vhost-user backend's, a device emulator's) has kvm_slot -1.  host_addr
 * and size are multiples of 4 KiB; pages are 4 KiB.
 */
struct vmig_ram_region {
	void *host_addr;
	uint64_t gpa;
	uint64_t size;
	int fd;			/* backing fd (memfd, ...), or -1 */
	uint64_t fd_offset;
	int32_t kvm_slot;	/* KVM memslot, or -1 */
	uint32_t kvm_flags;	/* the slot's flags, without LOG_DIRTY */
};

/*
 * The KVM side, or NULL for memory only.  When the VMM enabled the dirty
 * ring (KVM_CAP_DIRTY_LOG_RING[_ACQ_REL], before creating its vCPUs), it
 * passes the ring size in entries and every vCPU fd; its vCPU threads must
 * then call vmig_ram_ring_full() on KVM_EXIT_DIRTY_RING_FULL.
 */
struct vmig_ram_kvm {
	int vm_fd;
	const int *vcpu_fds;
	unsigned int nr_vcpus;
	uint32_t ring_entries;	/* 0: the ring is not enabled */
};

enum vmig_tracker {
	VMIG_TRACK_NONE = 0,
	/* KVM dirty ring: a reaper thread harvests the rings as vCPUs run. */
	VMIG_TRACK_RING = 1,
	/* KVM dirty bitmap, MANUAL_DIRTY_LOG_PROTECT2 with chunked clears. */
	VMIG_TRACK_BITMAP = 2,
	/* userfaultfd WP_ASYNC + PAGEMAP_SCAN, for memory no KVM tracks. */
	VMIG_TRACK_WP = 3,
	/* The ring if enabled, else the bitmap if KVM, else write-protect. */
	VMIG_TRACK_AUTO = 4,
};

/* A page: its region (index in the array given) and page in the region. */
struct vmig_page {
	uint32_t region;
	uint32_t reserved;
	uint64_t index;
};

struct vmig_ram_stats {
	uint64_t dirtied;	/* pages added to the dirty set */
	uint64_t reported;	/* tracker reports (ring entries, bits, pages) */
	uint64_t passes;	/* harvest passes that found something */
	uint64_t sync_ns;	/* CPU time harvesting, resetting, clearing */
	uint64_t ring_full;	/* KVM_EXIT_DIRTY_RING_FULL handled */
	uint64_t losses;	/* a tracker lost track: forced full re-syncs */
	uint64_t vfio_reported;	/* of reported: VFIO container bitmap bits */
	uint64_t devlog_reported; /* of reported: VFIO device DMA log bits */
};

struct vmig_ram;

/*
 * Register guest RAM.  Copies regions[] and the vCPU fd array; the fds
 * stay the caller's and must outlive the vmig_ram.
 */
int vmig_ram_new(const struct vmig_ram_region *regions, unsigned int nr,
		 const struct vmig_ram_kvm *kvm, struct vmig_ram **out);
/* Stops tracking, frees. */
void vmig_ram_free(struct vmig_ram *ram);

/* Number of 4 KiB pages registered; host address of a page (or NULL). */
uint64_t vmig_ram_nr_pages(const struct vmig_ram *ram);
void *vmig_ram_page_addr(const struct vmig_ram *ram,
			 const struct vmig_page *page);

/*
 * Start dirty tracking with the given tracker (-EOPNOTSUPP if it cannot
 * track these regions).  The dirty set starts empty: every page is to be
 * sent once anyway; what the guest writes from now on is added to it.
 */
int vmig_ram_track_start(struct vmig_ram *ram, enum vmig_tracker tracker);
/* Stop tracking; the dirty set is kept. */
void vmig_ram_track_stop(struct vmig_ram *ram);
/* The running tracker, or VMIG_TRACK_NONE. */
enum vmig_tracker vmig_ram_tracker(const struct vmig_ram *ram);

/*
 * Collect every page written before the call into the dirty set (the ring
 * is also harvested in the background).  Returns the pages added.
 */
int vmig_ram_sync(struct vmig_ram *ram);

/*
 * Take up to max pages out of the dirty set (each page comes out once per
 * time it became dirty); returns how many.  Thread-safe with the trackers.
 */
int vmig_ram_pop_dirty(struct vmig_ram *ram, struct vmig_page *pages,
		       unsigned int max);
/* Pages in the dirty set now. */
uint64_t vmig_ram_dirty_count(struct vmig_ram *ram);

/*
 * For the VMM's vCPU thread on KVM_EXIT_DIRTY_RING_FULL: returns once the
 * ring has room.  Negative errno if the ring cannot be recovered.  Not to
 * be called while vmig_ram_track_stop() or vmig_ram_free() runs: stop the
 * vCPUs first.
 */
int vmig_ram_ring_full(struct vmig_ram *ram, unsigned int vcpu);

void vmig_ram_get_stats(struct vmig_ram *ram, struct vmig_ram_stats *st);

/*
 * Pages a device wrote (issue 7).  KVM's trackers see the guest's writes
 * only; a VFIO device that writes guest memory through the type1 backend
 * (an mdev's vfio_dma_rw(), pinned pages) is logged by the container's
 * VFIO_IOMMU_DIRTY_PAGES bitmap.  Add each container (type1, e.g.
 * vmig_vfio_container_fd()) before vmig_ram_track_start(), with iova[i] the
 * IOVA region i (of the array given to vmig_ram_new()) is mapped at, or
 * VMIG_RAM_NO_IOVA if it is not mapped in that container.  map_chunk is 0
 * when each mapped region is covered by whole VFIO_IOMMU_MAP_DMA mappings,
 * else the size of the pieces the VMM mapped it in (a multiple of 256 KiB):
 * a bitmap request may not split a mapping.
 *
 * Tracking then starts VFIO_IOMMU_DIRTY_PAGES on the container (a failure
 * fails vmig_ram_track_start()), vmig_ram_sync() also takes and clears the
 * container's bitmap of every mapped region (4 KiB pages) and adds its
 * pages to the same dirty set (deduplicated), and vmig_ram_track_stop()
 * takes a last bitmap, then stops the container's tracking.  The
 * container's mappings must stay while tracking.
 *
 * Order at switchover: stop the devices' DMA (RUNNING_P2P) and the vCPUs,
 * then vmig_ram_precopy_complete(): its sync collects what the devices
 * wrote after the last harvest.  The containers stay the caller's.
 * -EBUSY while tracking, -EINVAL on a bad IOVA or map_chunk.
 */
#define VMIG_RAM_NO_IOVA	UINT64_MAX
int vmig_ram_add_vfio_container(struct vmig_ram *ram, int container_fd,
				const uint64_t *iova, uint64_t map_chunk);

/*
 * The same from a device's own DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_
 * START / REPORT / STOP), where the device offers it: a variant driver with
 * log ops, on a kernel with CONFIG_IOMMUFD_DRIVER.  device_fd is the VFIO
 * device (e.g. vmig_vfio_fd()), iova[] as above; page_size is the tracking
 * granularity to ask the device for (a power of two, at least 4096; 0:
 * 4096), which it may change.  Pages are read at 4 KiB either way (a
 * device that tracks larger pages reports every 4 KiB page of a written
 * one).
 *
 * Adding probes the feature and tries it once (START, a REPORT, STOP).
 * -EOPNOTSUPP: the device does not offer DMA logging, or offers it and
 * cannot report (stub log ops on a kernel without CONFIG_IOMMUFD_DRIVER,
 * as Debian's 6.12 and the mtty sample): add its container with
 * vmig_ram_add_vfio_container() instead.  Tracking then STARTs the logging
 * (a failure fails vmig_ram_track_start()), vmig_ram_sync() REPORTs each
 * mapped region and adds its pages to the dirty set, and
 * vmig_ram_track_stop() takes a last report, then STOPs.  A REPORT that
 * fails makes every page dirty again (the device's log is then unknown)
 * and fails the sync.  START gets one IOVA range per mapped region; ranges
 * the device refuses as too many (E2BIG, EINVAL) are merged, the closest
 * first, until it takes them.  Order at switchover as above.
 * -EBUSY while tracking, -EINVAL on a bad IOVA (or two regions mapped over
 * each other) or page_size; the device's errno when the probe or the trial
 * fails otherwise.
 */
int vmig_ram_add_vfio_device_log(struct vmig_ram *ram, int device_fd,
				 const uint64_t *iova, uint64_t page_size);

/* ------------------------------- device-state migration sessions (issue 5) */

/*
 * A migration session moves the state of a set of devices from a source
 * process to a destination process over one main (control) channel and N
 * data channels, TCP or UNIX stream sockets.  Every channel starts with a
 * header naming the session and its role, and proves with a challenge /
 * response (HMAC-SHA256 over nonces) that it holds the session's secret;
 * the destination refuses any other connection before reading state from
 * it.  Documentation/libvmig.rst and Documentation/wire.rst tell more.
 *
 * Source:       create, add devices, connect, run_source.
 * Destination:  create, add the same devices in the same order, accept,
 *               run_destination, then resume when the VMM wants to run.
 */

#define VMIG_SESSION_ID_LEN	16
#define VMIG_SECRET_MIN_LEN	16
#define VMIG_SECRET_MAX_LEN	256
#define VMIG_MAX_CHANNELS	64
#define VMIG_MAX_DEVICES	256
#define VMIG_DEVICE_NAME_MAX	64	/* including the NUL */

enum vmig_role {
	VMIG_ROLE_SOURCE = 1,
	VMIG_ROLE_DESTINATION = 2,
};

/*
 * A device as the session drives it.  vmig_session_add_vfio() provides
 * these for a struct vmig_vfio_dev; a VMM (or a test) can provide its own.
 *
 * set_state (required): move the device to state along a legal path.  When
 *	the last arc opens a data fd (RUNNING -> PRE_COPY, STOP -> STOP_COPY,
 *	STOP -> RESUMING), store it in *data_fd: it then belongs to the
 *	library, which closes it; otherwise store -1.
 * precopy_info (optional): VFIO_MIG_GET_PRECOPY_INFO on the device's data
 *	fd.  Without it, a device's initial data is what its data fd gives
 *	before it first runs dry.
 * reset (optional): reset a destination device after a failed migration
 *	(without it, the library moves the device to RUNNING).
 * stop_copy_size (optional): the bytes the device would send in STOP_COPY
 *	now (VFIO_DEVICE_FEATURE_MIG_DATA_SIZE), for a session that migrates
 *	guest RAM too (vmig_session_add_ram()).  Without it, the session
 *	counts what precopy_info reports as still to come, or nothing.
 */
struct vmig_device_ops {
	int (*set_state)(void *opaque, enum vmig_dev_state state, int *data_fd);
	int (*precopy_info)(void *opaque, int data_fd, uint64_t *initial_bytes,
			    uint64_t *dirty_bytes);
	int (*reset)(void *opaque);
	int (*stop_copy_size)(void *opaque, uint64_t *bytes);
};

struct vmig_session_config {
	uint8_t session_id[VMIG_SESSION_ID_LEN];
	/* The shared secret (copied): VMIG_SECRET_MIN_LEN..MAX_LEN bytes. */
	const void *secret;
	size_t secret_len;
	/* Source: data channels to open, 1..VMIG_MAX_CHANNELS (default 1). */
	unsigned int channels;
	/* Source: largest packet payload (default 1 MiB, at most 64 MiB). */
	uint32_t chunk_size;
	/*
	 * Bytes of packet buffers: the source's send queue, the destination's
	 * reassembly (default 64 MiB; at least two chunks).  Readers and
	 * receivers wait when it is used up.
	 */
	uint64_t mem_limit;
	/* Source: zstd level for packets, 0 to send them uncompressed. */
	int zstd_level;
	/* Source: read PRE_COPY data first where a device supports it. */
	bool precopy;
	/*
	 * Source: once the destination has acknowledged every device's
	 * initial data, switch over when every device's data fd has run dry
	 * at once, or at the latest after this long (0: no limit).
	 */
	unsigned int precopy_max_ms;
	/*
	 * Handshakes, and waiting for connections (default 10 s); after
	 * the handshake, how long a TCP peer may acknowledge nothing
	 * (data or keepalive probe) before its channel fails with
	 * -ETIMEDOUT (Documentation/wire.rst, "Handshake").  0: no limit.
	 */
	unsigned int timeout_ms;
	/*
	 * Source, optional: called right before the devices stop, from the
	 * thread in vmig_session_run_source(); the VMM stops its vCPUs here.
	 * A negative errno cancels the migration.
	 */
	int (*switchover)(void *opaque);
	void *opaque;
	/*
	 * Source: precopy data read from the devices but not yet written to
	 * the destination's devices (in the send queue, the sockets or the
	 * destination's reassembly) when the devices stop, at most (default
	 * 1 MiB).  That backlog would be part of the downtime: before the
	 * switchover, the session waits until the destination reports it
	 * written down to this bound, with the readers stopped if need be
	 * (at precopy_max_ms, or once the devices have run dry).
	 */
	uint64_t switchover_max_queued;
};

struct vmig_session_stats {
	unsigned int channels;		/* data channels */
	uint64_t device_bytes;		/* read from / written to data fds */
	uint64_t precopy_bytes;		/* source: read while running */
	uint64_t wire_bytes;		/* packets, headers included */
	uint64_t packets;
	uint64_t duplicates;		/* destination: dropped */
	uint64_t refused;		/* destination: connections refused */
	uint64_t mem_limit;		/* bytes of packet buffers allowed */
	uint64_t peak_mem;		/* most of them in use at once */
	uint64_t total_ns;		/* run_source / run_destination */
	uint64_t downtime_ns;		/* source: devices stopped until the
					 * destination reported them loaded */
	uint64_t switchover_queued;	/* source: precopy bytes not yet
					 * written at the destination, as far
					 * as it had reported, when the
					 * devices stopped */
};

/* One device's share of a session (vmig_session_get_device_stats()). */
struct vmig_session_dev_stats {
	uint64_t device_bytes;		/* read from / written to its data fd */
	uint64_t precopy_bytes;		/* source: read while running */
	uint64_t stopcopy_bytes;	/* source: read in STOP_COPY */
};

/* What failed: which device or channel, and why. */
struct vmig_session_error {
	int err;		/* negative errno; 0 if nothing failed */
	int device;		/* device index, or -1 */
	int channel;		/* 0 main, 1..N data channel, or -1 */
	bool remote;		/* reported by the peer */
	char msg[256];
};

struct vmig_session;

/* Defaults: 1 channel, 1 MiB chunks, 64 MiB, precopy on, 10 s timeout. */
void vmig_session_config_init(struct vmig_session_config *cfg);

int vmig_session_create(enum vmig_role role,
			const struct vmig_session_config *cfg,
			struct vmig_session **out);
/* Closes the session's sockets and data fds; aborts a session not done. */
void vmig_session_destroy(struct vmig_session *s);

/*
 * Add a device; its index is the number of devices added before it.  Both
 * sides must add the same devices (by name) in the same order.  mig_flags
 * are its VMIG_MIG_* flags.  ops is not copied.
 */
int vmig_session_add_device(struct vmig_session *s, const char *name,
			    uint32_t mig_flags,
			    const struct vmig_device_ops *ops, void *opaque);
/* Add a VFIO device (named after vmig_vfio_name()). */
int vmig_session_add_vfio(struct vmig_session *s, struct vmig_vfio_dev *dev);
/*
 * Add a VFIO device under a name of the caller's (NULL: vmig_vfio_name()).
 * The source's and the destination's device usually differ (another UUID
 * or PCI address); the name is what both sides agree on, e.g. the VM's
 * own name for the device.
 */
int vmig_session_add_vfio_named(struct vmig_session *s,
				struct vmig_vfio_dev *dev, const char *name);

/*
 * Source: open the main channel and the data channels to addr, and agree
 * on the devices with the destination.
 */
int vmig_session_connect(struct vmig_session *s, const struct sockaddr *addr,
			 socklen_t addrlen);
/*
 * Destination: accept connections on listen_fd (the caller's, left open)
 * until the session's main and data channels are all there.  Connections
 * that fail the handshake are refused, counted and logged, and waiting
 * goes on; -ETIMEDOUT after timeout_ms without a connection.
 */
int vmig_session_accept(struct vmig_session *s, int listen_fd);

/*
 * Source: precopy, switchover-ack, switchover (every device to its P2P
 * state, then STOP_COPY, drained in parallel), until the destination
 * reports every device loaded.  0: the devices are in STOP.  On error the
 * devices are back in RUNNING with their state, the destination was told,
 * and vmig_session_get_error() says what failed.
 */
int vmig_session_run_source(struct vmig_session *s);
/*
 * Destination: every device to RESUMING, load the streams, RESUMING ->
 * STOP.  0: the devices are in STOP with the source's state.  On error the
 * devices are reset and the source was told.
 */
int vmig_session_run_destination(struct vmig_session *s);
/* Destination, after success: every device to RUNNING. */
int vmig_session_resume(struct vmig_session *s);

/* From any thread: make a running session fail with -ECANCELED. */
void vmig_session_abort(struct vmig_session *s);

/* Thread-safe; while a run goes on the figures are so far. */
void vmig_session_get_stats(struct vmig_session *s,
			    struct vmig_session_stats *st);
/*
 * Thread-safe, like vmig_session_get_stats(), for device dev (its index):
 * -EINVAL if there is no such device.
 */
int vmig_session_get_device_stats(struct vmig_session *s, unsigned int dev,
				  struct vmig_session_dev_stats *st);
/* Returns e->err. */
int vmig_session_get_error(struct vmig_session *s,
			   struct vmig_session_error *e);

/* ------------------------------------ RAM precopy and convergence (issue 6) */

/*
 * Precopy of guest RAM follows a ring-first design: a background pass
 * sends every page once, in order, while the pages the tracker reports
 * dirty are sent as they come.  The background pass keeps at least one
 * send in background_share, so it always completes; a dirty page ahead of
 * the background cursor is left to the pass.  Nothing scans a bitmap (the
 * bitmap tracker's own sync excepted).  All-zero pages travel as a marker.
 *
 * Pages leave through a sink: packets (Documentation/wire.rst, "RAM
 * packets") built in buffers the sink lends.  vmig_ram_dest_sink() is an
 * in-process sink that applies them to a struct vmig_ram_dest directly;
 * vmig_ram_net_connect() sends them over authenticated RAM channels.
 */
struct vmig_ram_sink_ops {
	/* A buffer for one packet of up to size bytes (may wait for one). */
	int (*get_buf)(void *opaque, size_t size, void **buf);
	/* Send the packet built in buf (len bytes); buf goes back to the sink. */
	int (*submit)(void *opaque, void *buf, size_t len);
	/* No more packets: deliver all, wait for the destination to have them. */
	int (*finish)(void *opaque);
};

struct vmig_ram_sink {
	const struct vmig_ram_sink_ops *ops;
	void *opaque;
};

/* The destination's side: the same regions, in the same order. */
struct vmig_ram_dest;

struct vmig_ram_dest_stats {
	uint64_t packets;
	uint64_t pages;		/* entries received */
	uint64_t zero_pages;	/* of them, zero markers */
	uint64_t stale;		/* older than what the page holds: dropped */
	uint64_t bytes;		/* packets, headers included */
};

/*
 * Only host_addr and size of the regions are used.  Pages are placed by
 * packet order: a page older than the copy already placed is dropped, so
 * packets may be applied from several threads in any order.
 */
int vmig_ram_dest_new(const struct vmig_ram_region *regions, unsigned int nr,
		      struct vmig_ram_dest **out);
void vmig_ram_dest_free(struct vmig_ram_dest *d);
/* Check and apply one packet (any thread).  Negative errno if malformed. */
int vmig_ram_dest_feed(struct vmig_ram_dest *d, const void *pkt, size_t len);
/* An in-process sink feeding d (for tests, and same-process migration). */
void vmig_ram_dest_sink(struct vmig_ram_dest *d, struct vmig_ram_sink *sink);
void vmig_ram_dest_get_stats(struct vmig_ram_dest *d,
			     struct vmig_ram_dest_stats *st);

/*
 * RAM over the network: cfg->channels channels of kind RAM, each with the
 * handshake of Documentation/wire.rst (session id, secret, timeout_ms;
 * mem_limit bounds the send queue, 8 MiB by default here).  These channels
 * are not (yet) part of a struct vmig_session: the RAM stream runs beside
 * it.
 *
 * vmig_ram_net_connect() opens them and gives a sink whose finish() sends
 * every channel's END and waits for the destination's acknowledgment.
 * vmig_ram_dest_serve() accepts the channels on listen_fd and applies
 * packets until every channel has ended, then acknowledges.
 */
struct vmig_ram_net;
int vmig_ram_net_connect(const struct vmig_session_config *cfg,
			 const struct sockaddr *addr, socklen_t addrlen,
			 struct vmig_ram_net **out);
void vmig_ram_net_sink(struct vmig_ram_net *n, struct vmig_ram_sink *sink);
void vmig_ram_net_close(struct vmig_ram_net *n);
int vmig_ram_dest_serve(struct vmig_ram_dest *d,
			const struct vmig_session_config *cfg, int listen_fd);

/* The convergence model. */
struct vmig_converge_info;

enum vmig_converge_result {
	VMIG_CONVERGE_CONTINUE = 0,	/* keep sending */
	VMIG_CONVERGE_SWITCHOVER = 1,	/* what is left fits the downtime */
	VMIG_CONVERGE_STUCK = 2,	/* it will not fit: raise the limit,
					 * give more bandwidth, or postcopy */
};

struct vmig_converge_config {
	/* Largest acceptable downtime (default 300 ms). */
	uint64_t downtime_ns;
	/*
	 * Bytes/s the switchover can count on (QEMU's avail-switchover-
	 * bandwidth); 0: measured from vmig_converge_account().
	 */
	uint64_t bandwidth;
	/*
	 * The devices' stop-copy sizes: the exact query (for a VFIO device,
	 * vmig_vfio_stop_copy_size()).  Between queries a cached value is
	 * used.  A failing query counts as stuck_size (default 100 GiB).
	 */
	unsigned int nr_devices;
	int (*stop_copy_size)(void *opaque, unsigned int dev, uint64_t *bytes);
	void *opaque;
	uint64_t stuck_size;
	/*
	 * Exact queries are at least exact_min_ns apart (default 100 ms), and
	 * made when the cache is exact_max_age_ns old (default 1 s) or when
	 * the estimate fits the downtime: a switchover is decided only on
	 * sizes at most exact_min_ns old.
	 */
	uint64_t exact_min_ns;
	uint64_t exact_max_age_ns;
	/*
	 * STUCK when pending has not gone below 90 % of its lowest value for
	 * this long while it does not fit (default 3 s).
	 */
	uint64_t stall_ns;
	/* Optional: called with every STUCK verdict. */
	void (*not_converging)(void *opaque,
			       const struct vmig_converge_info *info);
};

struct vmig_converge_info {
	uint64_t ram_bytes;		/* the dirty-RAM estimate given */
	uint64_t device_bytes;		/* sum of the stop-copy sizes used */
	uint64_t pending_bytes;		/* ram + device */
	uint64_t bandwidth;		/* bytes/s used (0: none measured yet) */
	uint64_t expected_downtime_ns;	/* pending / bandwidth */
	uint64_t downtime_ns;		/* the limit */
	uint64_t device_age_ns;		/* age of the device sizes used */
	uint64_t exact_queries;		/* so far, per device */
	uint64_t estimates;		/* checks answered from the cache */
};

struct vmig_converge;

void vmig_converge_config_init(struct vmig_converge_config *cfg);
int vmig_converge_new(const struct vmig_converge_config *cfg,
		      struct vmig_converge **out);
void vmig_converge_free(struct vmig_converge *c);
/* Change the downtime limit (restarts the stall timer). */
void vmig_converge_set_downtime(struct vmig_converge *c, uint64_t ns);
/*
 * Bytes sent at time now_ns (CLOCK_MONOTONIC; 0: now), for the measured
 * bandwidth.
 */
void vmig_converge_account(struct vmig_converge *c, uint64_t bytes,
			   uint64_t now_ns);
/*
 * Decide, with ram_bytes of RAM still to send, at now_ns (0: now).
 * Returns an enum vmig_converge_result, or a negative errno; fills info
 * (if not NULL).
 */
int vmig_converge_check(struct vmig_converge *c, uint64_t ram_bytes,
			uint64_t now_ns, struct vmig_converge_info *info);

/* The precopy sender. */
struct vmig_ram_precopy_config {
	unsigned int batch_pages;	/* pages per packet (default 64,
					 * at most 256) */
	unsigned int background_share;	/* 1 page in N for the background
					 * pass at least (default 4) */
	uint64_t max_bandwidth;		/* bytes/s; 0: unlimited */
	unsigned int sync_ms;		/* tracker sync period (default 10) */
	unsigned int check_ms;		/* convergence checks (default 20) */
};

struct vmig_ram_precopy_stats {
	uint64_t packets;
	uint64_t bytes;			/* packets, headers included */
	uint64_t pages;			/* entries sent */
	uint64_t zero_pages;		/* of them, zero markers */
	uint64_t background_pages;	/* sent by the background pass */
	uint64_t dirty_pages;		/* sent from the dirty set */
	uint64_t skipped;		/* dirty, left to the background pass */
	uint64_t syncs;
	bool background_done;
	uint64_t final_pages;		/* sent by vmig_ram_precopy_complete() */
	uint64_t complete_ns;		/* its duration */
	uint64_t in_place_pages;	/* data sent from guest memory in place */
};

struct vmig_ram_precopy;

/*
 * Tracking must have started (vmig_ram_track_start()) before the precopy
 * is created; the sink stays the caller's.
 */
int vmig_ram_precopy_new(struct vmig_ram *ram,
			 const struct vmig_ram_sink *sink,
			 const struct vmig_ram_precopy_config *cfg,
			 struct vmig_ram_precopy **out);
void vmig_ram_precopy_free(struct vmig_ram_precopy *p);
/* Send one packet; returns the pages in it (0: nothing to send now). */
int vmig_ram_precopy_step(struct vmig_ram_precopy *p);
/* Pages still to send: background pass left plus the dirty set. */
uint64_t vmig_ram_precopy_pending(struct vmig_ram_precopy *p);
/*
 * Send until c says VMIG_CONVERGE_SWITCHOVER or VMIG_CONVERGE_STUCK
 * (returned), or a negative errno.  Sleeps when there is nothing to send.
 * On STUCK nothing runs until the caller calls again.
 */
int vmig_ram_precopy_run(struct vmig_ram_precopy *p, struct vmig_converge *c);
/*
 * The guest's RAM no longer changes until the precopy ends: its vCPUs are
 * stopped (a paused guest) and no device writes it.  From now on, the
 * sink of vmig_ram_net_sink() sends page data from guest memory in place
 * instead of a copy in the packet (other sinks still get copies).  A page
 * that changes all the same fails the migration on the destination (bad
 * CRC); it is never placed wrong without notice.
 */
int vmig_ram_precopy_stop(struct vmig_ram_precopy *p);
/*
 * The vCPUs are stopped: the last sync, every page left (in place, as
 * after vmig_ram_precopy_stop()), then the sink's finish().  Tracking may
 * then stop.
 */
int vmig_ram_precopy_complete(struct vmig_ram_precopy *p);
void vmig_ram_precopy_get_stats(struct vmig_ram_precopy *p,
				struct vmig_ram_precopy_stats *st);
/*
 * For postcopy instead of vmig_ram_precopy_complete(): the vCPUs are
 * stopped; send nothing more, finish the sink (every packet sent is then
 * applied on the destination).  The pages not sent are left to postcopy.
 */
int vmig_ram_precopy_flush(struct vmig_ram_precopy *p);

/* ------------------------------------- guest RAM inside a session (issue 6) */

/*
 * A session can carry guest RAM too: channels of kind RAM next to the
 * device-state channels, RAM precopy (the ring-first sender above) while
 * the devices' precopy runs, one convergence model that counts the RAM
 * still to send and every device's stop-copy size (cached, refreshed by
 * the exact query at a bounded rate), and one switchover: the session's
 * switchover() callback (the VMM stops its vCPUs), then the devices'
 * stop-copy and RAM's last pass (vmig_ram_precopy_complete()) in parallel.
 * The destination reports LOADED once both are in.
 *
 * The source switches over when the devices' precopy is done (as without
 * RAM) and the model says the rest fits downtime_ns, or when
 * precopy_max_ms is up.  While it does not fit (VMIG_CONVERGE_STUCK),
 * not_converging() is told and precopy goes on: the caller may raise the
 * limit (vmig_session_set_downtime()), abort, or wait for precopy_max_ms.
 *
 * Add before vmig_session_connect() / vmig_session_accept(); both sides
 * must have RAM of the same number of pages.
 */
struct vmig_session_ram {
	struct vmig_ram *ram;		/* source: tracking started */
	struct vmig_ram_dest *dest;	/* destination */
	unsigned int channels;		/* source: RAM channels (default 2) */
	uint64_t mem_limit;		/* source: send queue (default 8 MiB) */
	struct vmig_ram_precopy_config precopy;	/* zeros: the defaults */
	uint64_t downtime_ns;		/* default 300 ms */
	uint64_t bandwidth;		/* bytes/s; 0: precopy.max_bandwidth,
					 * or measured without a limit */
	void (*not_converging)(void *opaque,
			       const struct vmig_converge_info *info);
	void *opaque;
	/*
	 * Source: switch over to postcopy.  The switchover also comes on a
	 * STUCK verdict, and instead of RAM's last pass the precopy is only
	 * flushed (vmig_ram_precopy_flush()): the devices' state is all in
	 * when the session ends, the RAM still to send is not.  Then, on the
	 * source, vmig_ram_sync(), vmig_ram_track_stop() and the postcopy
	 * source (vmig_ram_postcopy_src_new()); on the destination, the
	 * postcopy destination on the same vmig_ram_dest, before its vCPUs
	 * run (see "postcopy" below).
	 */
	bool postcopy;
};

int vmig_session_add_ram(struct vmig_session *s,
			 const struct vmig_session_ram *ram);
/* Source: change the downtime limit of a running session. */
int vmig_session_set_downtime(struct vmig_session *s, uint64_t ns);

/* What the RAM of a session did (zeros without RAM). */
struct vmig_session_ram_stats {
	uint64_t pages;			/* entries sent / received */
	uint64_t zero_pages;
	uint64_t bytes;			/* RAM packets, headers included */
	uint64_t final_pages;		/* source: sent after the switchover */
	uint64_t final_ns;		/* source: RAM's last pass */
	int verdict;			/* source: the model's last verdict */
	bool postcopy;			/* postcopy follows (the source's
					 * choice; the destination learns it
					 * from CONFIG) */
	struct vmig_converge_info info;	/* source: the figures of its last
					 * verdict (before the switchover) */
};

void vmig_session_get_ram_stats(struct vmig_session *s,
				struct vmig_session_ram_stats *st);

/* ------------------------------------------------- postcopy (issue 6) */

/*
 * Postcopy: the destination runs before it has every page.  Its guest RAM
 * is registered with userfaultfd (MISSING); a vCPU that touches a page not
 * yet placed waits while the page is asked for on a return path, and the
 * source sends asked-for pages first, on a dedicated channel, while a
 * background push sends all the others.  A received bitmap makes sure
 * every page is placed exactly once (UFFDIO_COPY, or UFFDIO_ZEROPAGE for a
 * zero page); copies that arrive later are dropped and counted.
 *
 * The order on the source: precopy (optional), stop the vCPUs, the last
 * vmig_ram_sync(), vmig_ram_precopy_flush() (every precopy packet sent
 * and applied), the devices' stop-copy, then vmig_ram_postcopy_src_new()
 * and vmig_ram_postcopy_src_run().  The pages in the dirty set then (the
 * copies the destination holds of them are stale) are discarded on the
 * destination.
 *
 * On the destination: vmig_ram_dest_serve() has returned, device state is
 * loaded; vmig_ram_postcopy_dest_new(), vmig_ram_postcopy_dest_accept()
 * (after which the vCPUs may run), then vmig_ram_postcopy_dest_wait().
 *
 * A network break (a closed or reset connection, a corrupt message, or
 * over TCP a peer that acknowledges nothing for timeout_ms: a partition,
 * a host gone): vmig_ram_postcopy_dest_wait() returns a negative errno
 * and the destination is paused (faulting vCPUs wait, their requests are
 * kept); vmig_ram_postcopy_src_run() returns one too.  The source calls
 * vmig_ram_postcopy_src_run() again and the destination
 * vmig_ram_postcopy_dest_accept(): the source resumes from the
 * destination's received bitmap and the outstanding requests are sent
 * again.  Nothing is lost, and the destination must never give up its
 * RAM while paused: the source's copy is the only one of the pages not
 * received.
 *
 * The channels: 1 + push_channels connections of kind POSTCOPY, with the
 * handshake and credentials of a struct vmig_session_config (its
 * session_id, secret, timeout_ms).  timeout_ms also bounds the
 * destination's wait for OPEN.  Documentation/wire.rst, "Postcopy".
 */
struct vmig_postcopy_config {
	unsigned int push_channels;	/* background push (default 2, <= 16) */
	unsigned int batch_pages;	/* pages per push packet (default 64) */
	uint64_t max_bandwidth;		/* push bytes/s; 0: unlimited */
};

struct vmig_postcopy_src_stats {
	uint64_t discarded;		/* pages in the discard bitmap */
	uint64_t have;			/* pages the destination held (last) */
	uint64_t pushed;		/* pages sent by the background push */
	uint64_t requests;		/* page requests received */
	uint64_t requested_sent;	/* pages sent for them */
	uint64_t zero_pages;		/* sent as zero markers */
	uint64_t bytes;			/* packets sent, headers included */
	uint64_t connects;		/* connections (1 + resumes) */
};

struct vmig_postcopy_dest_stats {
	uint64_t present;		/* pages held from precopy at start */
	uint64_t discarded;		/* of them, dropped as stale */
	uint64_t faults;		/* userfaultfd page faults read */
	uint64_t requests;		/* page requests sent (incl. resends) */
	uint64_t placed;		/* pages placed with UFFDIO_COPY */
	uint64_t zero_placed;		/* pages placed with UFFDIO_ZEROPAGE */
	uint64_t duplicates;		/* copies of placed pages, dropped */
	uint64_t eexist;		/* placements the kernel found done */
	uint64_t breaks;		/* connections lost */
	uint64_t bytes;			/* packets received, headers included */
	bool done;			/* every page is placed */
};

struct vmig_postcopy_src;
struct vmig_postcopy_dest;

void vmig_postcopy_config_init(struct vmig_postcopy_config *cfg);

/*
 * Source: ram must no longer be tracked (vmig_ram_track_stop()), its
 * vCPUs stopped; its dirty set becomes the discard bitmap (and is
 * emptied).  cfg may be NULL for the defaults.
 */
int vmig_ram_postcopy_src_new(struct vmig_ram *ram,
			      const struct vmig_session_config *scfg,
			      const struct vmig_postcopy_config *cfg,
			      struct vmig_postcopy_src **out);
void vmig_ram_postcopy_src_free(struct vmig_postcopy_src *s);
/*
 * Connect to addr and serve until the destination reports every page
 * placed (0), or a negative errno: the connection broke or was refused
 * (call again to resume), or the destination failed (-EPROTO, ...).
 */
int vmig_ram_postcopy_src_run(struct vmig_postcopy_src *s,
			      const struct sockaddr *addr, socklen_t addrlen);
/* From another thread: make a running vmig_ram_postcopy_src_run() fail
 * with -ECONNABORTED (as a network break would). */
void vmig_ram_postcopy_src_cut(struct vmig_postcopy_src *s);
/* Change the push's limit (0: unlimited), from any thread. */
void vmig_ram_postcopy_src_set_bandwidth(struct vmig_postcopy_src *s,
					 uint64_t bytes_per_s);
void vmig_ram_postcopy_src_get_stats(struct vmig_postcopy_src *s,
				     struct vmig_postcopy_src_stats *st);

/*
 * Destination: d holds what precopy placed (vmig_ram_dest_serve() has
 * returned).  Regions with a backing fd drop pages with
 * FALLOC_FL_PUNCH_HOLE, the others with MADV_DONTNEED.
 */
int vmig_ram_postcopy_dest_new(struct vmig_ram_dest *d,
			       const struct vmig_session_config *scfg,
			       struct vmig_postcopy_dest **out);
/*
 * Accept the source's channels on listen_fd (the first time: take the
 * discard bitmap and register the RAM with userfaultfd), send the received
 * bitmap and the outstanding requests, and start serving faults.  After
 * the first 0 the vCPUs may run.
 */
int vmig_ram_postcopy_dest_accept(struct vmig_postcopy_dest *p,
				  int listen_fd);
/*
 * 0 once every page is placed (the RAM is then unregistered), or a
 * negative errno when the connection broke (paused: accept again) or the
 * source sent something wrong.
 */
int vmig_ram_postcopy_dest_wait(struct vmig_postcopy_dest *p);
/* Frees; while pages are missing, the RAM stays registered and faulting
 * threads would wait for ever: only free after done, or to abandon. */
void vmig_ram_postcopy_dest_free(struct vmig_postcopy_dest *p);
void vmig_ram_postcopy_dest_get_stats(struct vmig_postcopy_dest *p,
				      struct vmig_postcopy_dest_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* VMIG_H */

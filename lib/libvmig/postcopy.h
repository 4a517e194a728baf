/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvmig internals of postcopy: the messages of the postcopy channels
 * (Documentation/wire.rst, "Postcopy"), shared by the source
 * (postcopy_src.c) and the destination (postcopy_dst.c).  Not installed.
 *
 * A postcopy connection is 1 + N channels of kind POSTCOPY: channel 0
 * carries the control messages both ways and the pages the destination
 * asked for (urgent), channels 1..N the background push.  Pages travel in
 * RAM packets (ram_xfer.h).  Every page is sent from the source's stopped
 * RAM, so every copy of a page is the same: the destination places the
 * first one to arrive and drops the others.
 *
 *	source					destination
 *	OPEN (START + discard bitmap,	-->	drops the discarded pages,
 *	      or RESUME)			registers userfaultfd
 *					<--	HAVE + received bitmap
 *					<--	REQUEST page ... (any time)
 *	pages on 0 (requests first),	-->	places each page once
 *	pages and END on 1..N
 *					<--	DONE status (every page placed)
 */
#ifndef VMIG_POSTCOPY_H
#define VMIG_POSTCOPY_H

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ram_xfer.h"
#include "transport.h"

#define PC_OPEN_MAGIC		0x4f504d56U	/* bytes "VMPO" */
#define PC_HAVE_MAGIC		0x48504d56U	/* bytes "VMPH" */
#define PC_REQ_MAGIC		0x51504d56U	/* bytes "VMPQ" */
#define PC_DONE_MAGIC		0x44504d56U	/* bytes "VMPD" */

/* OPEN and HAVE: magic, kind, total pages, bitmap bytes, CRC; bitmap. */
#define PC_OPEN_LEN		24
#define PC_OPEN_START		1	/* first connection: a discard bitmap */
#define PC_OPEN_RESUME		2	/* after a break: no bitmap */
/* REQUEST: magic, zero, page number.  DONE: magic, status (errno). */
#define PC_REQ_LEN		16
#define PC_DONE_LEN		8
/* The largest DONE status that is an errno (the kernel's MAX_ERRNO). */
#define PC_MAX_ERRNO		4095

/* A DONE's status as 0 or a negative errno; -EPROTO if it is no errno. */
static inline int pc_done_err(uint32_t status)
{
	return status > PC_MAX_ERRNO ? -EPROTO : -(int)status;
}

/* Channel 0 plus at most this many background channels. */
#define PC_MAX_PUSH		16

struct pc_bitmap_hdr {
	uint32_t magic;
	uint32_t kind;		/* OPEN: START or RESUME; HAVE: 0 */
	uint64_t pages;		/* total pages of the RAM */
	uint32_t len;		/* bitmap bytes that follow */
	uint32_t crc;		/* CRC32C of the header (crc 0) + bitmap */
};

/* Bytes of a bitmap of n bits, in 64-bit little-endian words. */
static inline uint64_t pc_bitmap_bytes(uint64_t n)
{
	return (n + 63) / 64 * 8;
}

/* Send hdr (magic, kind, pages set) and len bytes of bitmap. */
int pc_send_bitmap(int fd, struct pc_bitmap_hdr *h, const void *bitmap);
/*
 * Receive a header with magic, check it (a DONE with an error status in
 * its place is the peer's refusal: that -status is returned); if the header announces a bitmap
 * of exactly pc_bitmap_bytes(pages) bytes, receive it into bitmap (which
 * holds that much) and check the CRC.  0 or a negative errno, *why set.
 */
int pc_recv_bitmap(int fd, uint32_t magic, uint64_t pages,
		   struct pc_bitmap_hdr *h, void *bitmap, const char **why);

/* Atomic bitmaps over _Atomic uint64_t words. */
static inline bool pc_test(_Atomic uint64_t *bm, uint64_t n)
{
	return atomic_load_explicit(&bm[n / 64], memory_order_acquire) &
	       (1ULL << (n % 64));
}

/* Set bit n; returns whether it was set already. */
static inline bool pc_test_and_set(_Atomic uint64_t *bm, uint64_t n)
{
	uint64_t bit = 1ULL << (n % 64);

	return atomic_fetch_or_explicit(&bm[n / 64], bit,
					memory_order_acq_rel) & bit;
}

static inline void pc_clear(_Atomic uint64_t *bm, uint64_t n)
{
	atomic_fetch_and_explicit(&bm[n / 64], ~(1ULL << (n % 64)),
				  memory_order_acq_rel);
}

/*
 * The calling thread carries the background push (either side): it yields
 * the CPUs to the threads that serve faults (nice 10; best effort).
 */
void pc_background_thread(void);

/*
 * Bounded busy-polling on the page-request path.  A fault is served by
 * three threads in turn: the destination's fault thread (reads the
 * userfaultfd, sends REQUEST), the source's request server (sends the
 * page), channel 0's receiver on the destination (UFFDIO_COPY, which wakes
 * the faulting thread).  Each of them would sleep in poll() or recv()
 * between two faults, and where idle CPUs halt (a virtual machine's
 * vCPUs, e.g. under Firecracker) every wake-up from that sleep costs some
 * 30 us: more than serving the request itself.  So after activity these
 * threads poll their fds without blocking (yielding the CPU between two
 * polls) for a bounded window before they fall back to blocking; with the
 * CPUs kept awake, the remaining wake-up of the faulting thread is cheap
 * too.  bench_postcopy on 2 idle vCPUs, 4000 faults back to back: p50
 * 60-80 us -> 14 us, p99 150-380 us -> 40-50 us.
 *
 * Bounds and CPU cost:
 * - a thread spins only within PC_SPIN_NS of its last activity (a fault
 *   read, a request answered, a packet or a request on channel 0), so a
 *   postcopy without faults burns no CPU; a stream of faults keeps up to
 *   one CPU per spinning thread busy while it lasts (with 2 vCPUs: 1.75
 *   CPUs while faults come back to back, against 0.8 blocking, but half
 *   the CPU time per fault, 31 us against 60 us);
 * - not while the background push works (a pusher inside a send, a
 *   push receiver placing a packet, or either within PC_SPIN_PUSH_NS of
 *   it): the push keeps the CPUs from halting, and a spinning thread at
 *   nice 0 would take the CPUs from the push (nice 10) and from the
 *   faulting threads.  Wake-ups across CPUs still cost 15-25 us then
 *   (Documentation/libvmig.rst, "Postcopy");
 * - not once a sched_yield() took longer than PC_SPIN_BUSY_NS: another
 *   thread needed the CPU, which then does not halt either.
 */
#define PC_SPIN_NS		100000ULL	/* 100 us */
#define PC_SPIN_PUSH_NS		1000000ULL	/* 1 ms */
#define PC_SPIN_BUSY_NS		20000ULL	/* 20 us */

/* The background push, as the spinning threads of its side see it. */
struct pc_push_activity {
	_Atomic unsigned int busy;	/* threads inside a push packet */
	_Atomic uint64_t last_ns;	/* when the last one ended */
};

/* Around the sending of a push packet, or the placing of its pages. */
static inline void pc_push_begin(struct pc_push_activity *pa)
{
	atomic_fetch_add_explicit(&pa->busy, 1, memory_order_relaxed);
}

static inline void pc_push_end(struct pc_push_activity *pa)
{
	atomic_store_explicit(&pa->last_ns, ram_now_ns(),
			      memory_order_relaxed);
	atomic_fetch_sub_explicit(&pa->busy, 1, memory_order_relaxed);
}

/*
 * Poll pfd[0..n) without blocking until one is ready, or until the clock
 * passes until_ns, the push pa runs, or the CPU is wanted (see above).
 * True if poll() reported something (or failed: the caller's blocking
 * call then meets the error), false to block.
 */
bool pc_spin_poll(struct pollfd *pfd, nfds_t n, uint64_t until_ns,
		  struct pc_push_activity *pa);

/* A zeroed bitmap of n bits (mmap), or NULL; pc_bitmap_free() frees it. */
_Atomic uint64_t *pc_bitmap_alloc(uint64_t n);
void pc_bitmap_free(_Atomic uint64_t *bm, uint64_t n);

#endif /* VMIG_POSTCOPY_H */

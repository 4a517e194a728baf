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

/* A zeroed bitmap of n bits (mmap), or NULL; pc_bitmap_free() frees it. */
_Atomic uint64_t *pc_bitmap_alloc(uint64_t n);
void pc_bitmap_free(_Atomic uint64_t *bm, uint64_t n);

#endif /* VMIG_POSTCOPY_H */

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Postcopy: the bitmap messages both sides exchange (OPEN, HAVE) and the
 * atomic bitmaps behind them.  See postcopy.h.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "postcopy.h"

#define PC_BITMAP_MAX	(1ULL << 31)	/* 64 TiB of RAM */

void pc_background_thread(void)
{
	/* On Linux, nice is per thread. */
	setpriority(PRIO_PROCESS, gettid(), 10);
}

static bool push_running(struct pc_push_activity *pa, uint64_t now)
{
	uint64_t last = atomic_load_explicit(&pa->last_ns,
					     memory_order_relaxed);

	return atomic_load_explicit(&pa->busy, memory_order_relaxed) ||
	       now < last + PC_SPIN_PUSH_NS;
}

/*
 * Between two polls the CPU is yielded rather than paused (cpu_relax()):
 * the spinning threads can outnumber the CPUs (3 of them and the faulting
 * thread on 2 vCPUs), and a spinner that does not yield holds its CPU
 * until the scheduler's tick (measured: p50 110-220 us, worse than
 * blocking).  The poll() and sched_yield() system calls are short enough
 * to be the pause.
 */
bool pc_spin_poll(struct pollfd *pfd, nfds_t n, uint64_t until_ns,
		  struct pc_push_activity *pa)
{
	uint64_t now = ram_now_ns(), t;
	int r;

	while (now < until_ns && !push_running(pa, now)) {
		r = poll(pfd, n, 0);
		if (r > 0 || (r < 0 && errno != EINTR))
			return true;
		t = ram_now_ns();
		sched_yield();
		now = ram_now_ns();
		if (now - t > PC_SPIN_BUSY_NS)
			break;
	}
	return false;
}

_Atomic uint64_t *pc_bitmap_alloc(uint64_t n)
{
	void *p = mmap(NULL, pc_bitmap_bytes(n) ? pc_bitmap_bytes(n) : 8,
		       PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void pc_bitmap_free(_Atomic uint64_t *bm, uint64_t n)
{
	if (bm)
		munmap((void *)bm, pc_bitmap_bytes(n) ? pc_bitmap_bytes(n) : 8);
}

static void put_hdr(uint8_t *b, const struct pc_bitmap_hdr *h)
{
	put32(b, h->magic);
	put32(b + 4, h->kind);
	put64(b + 8, h->pages);
	put32(b + 16, h->len);
	put32(b + 20, h->crc);
}

/* The wire form of a bitmap: little-endian words. */
static uint8_t *to_wire(const void *bitmap, uint32_t len)
{
	const _Atomic uint64_t *w = bitmap;
	uint8_t *b = malloc(len ? len : 1);
	uint32_t i;

	if (!b)
		return NULL;
	for (i = 0; i < len / 8; i++)
		put64(b + i * 8, atomic_load_explicit(&w[i],
						      memory_order_relaxed));
	return b;
}

int pc_send_bitmap(int fd, struct pc_bitmap_hdr *h, const void *bitmap)
{
	uint8_t hb[PC_OPEN_LEN], *wire = NULL;
	uint32_t crc;
	int ret;

	if (h->len) {
		wire = to_wire(bitmap, h->len);
		if (!wire)
			return -ENOMEM;
	}
	h->crc = 0;
	put_hdr(hb, h);
	crc = vmig_crc32c(0, hb, sizeof(hb));
	h->crc = vmig_crc32c(crc, wire, h->len);
	put32(hb + 20, h->crc);
	ret = vmig_send_all(fd, hb, sizeof(hb));
	if (!ret && h->len)
		ret = vmig_send_all(fd, wire, h->len);
	free(wire);
	return ret;
}

int pc_recv_bitmap(int fd, uint32_t magic, uint64_t pages,
		   struct pc_bitmap_hdr *h, void *bitmap, const char **why)
{
	_Atomic uint64_t *w = bitmap;
	uint8_t hb[PC_OPEN_LEN], *wire;
	uint32_t crc, i;
	ssize_t ret;

	ret = vmig_recv_all(fd, hb, PC_DONE_LEN);
	if (ret == PC_DONE_LEN && get32(hb) == PC_DONE_MAGIC && get32(hb + 4)) {
		*why = get32(hb + 4) > PC_MAX_ERRNO ?
		       "DONE with a status that is no errno" :
		       "the peer refused the connection";
		return pc_done_err(get32(hb + 4));
	}
	if (ret == PC_DONE_LEN)
		ret = vmig_recv_all(fd, hb + PC_DONE_LEN,
				    sizeof(hb) - PC_DONE_LEN);
	if (ret != sizeof(hb) - PC_DONE_LEN) {
		*why = "connection closed before the bitmap message";
		return ret < 0 ? (int)ret : -ECONNRESET;
	}
	h->magic = get32(hb);
	h->kind = get32(hb + 4);
	h->pages = get64(hb + 8);
	h->len = get32(hb + 16);
	h->crc = get32(hb + 20);
	if (h->magic != magic) {
		*why = "not the expected postcopy message";
		return -EPROTO;
	}
	if (h->pages != pages || pages > PC_BITMAP_MAX) {
		*why = "the two sides' RAM differs in size";
		return -EMEDIUMTYPE;
	}
	if (h->len && h->len != pc_bitmap_bytes(pages)) {
		*why = "bitmap length does not match the RAM";
		return -EPROTO;
	}
	memset(hb + 20, 0, 4);
	crc = vmig_crc32c(0, hb, sizeof(hb));
	if (!h->len) {
		if (crc != h->crc) {
			*why = "bad CRC on a postcopy message";
			return -EBADMSG;
		}
		return 0;
	}
	wire = malloc(h->len);
	if (!wire)
		return -ENOMEM;
	ret = vmig_recv_all(fd, wire, h->len);
	if (ret != h->len) {
		free(wire);
		*why = "connection closed inside a bitmap";
		return ret < 0 ? (int)ret : -ECONNRESET;
	}
	if (vmig_crc32c(crc, wire, h->len) != h->crc) {
		free(wire);
		*why = "bad CRC on a postcopy bitmap";
		return -EBADMSG;
	}
	for (i = 0; i < h->len / 8; i++)
		atomic_store_explicit(&w[i], get64(wire + i * 8),
				      memory_order_relaxed);
	free(wire);
	return 0;
}

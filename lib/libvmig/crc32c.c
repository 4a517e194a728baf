// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * CRC32C (Castagnoli, reflected polynomial 0x82f63b78), as used by iSCSI,
 * ext4 and the vfio-migsim stream.
 *
 * Two implementations give the same result: slicing-by-8 tables, and the
 * SSE4.2 crc32 instruction run on three interleaved streams (the
 * instruction's latency is three times its throughput) whose CRCs are then
 * combined by "shifting" a CRC over a block of zeros with a precomputed
 * GF(2) operator table, as in Mark Adler's crc32c.c.
 */
#include <endian.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "transport.h"

#define POLY		0x82f63b78U
/* Stream lengths of the interleaved hardware loop. */
#define LONG_BLOCK	8192
#define SHORT_BLOCK	256

static uint32_t table[8][256];
static uint32_t zeros_long[4][256], zeros_short[4][256];
static bool have_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------- GF(2) operators for shifts */

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
	int n;

	for (n = 0; n < 32; n++)
		square[n] = gf2_times(mat, mat[n]);
}

/* The operator that appends len (a power of two) zero bytes to a CRC. */
static void zeros_op(uint32_t *even, size_t len)
{
	uint32_t odd[32], row = 1;
	int n;

	odd[0] = POLY;			/* one zero bit */
	for (n = 1; n < 32; n++) {
		odd[n] = row;
		row <<= 1;
	}
	gf2_square(even, odd);		/* two zero bits */
	gf2_square(odd, even);		/* four zero bits */
	do {				/* one zero byte, two, four... */
		gf2_square(even, odd);
		len >>= 1;
		if (!len)
			return;
		gf2_square(odd, even);
		len >>= 1;
	} while (len);
	memcpy(even, odd, sizeof(odd));
}

static void zeros_table(uint32_t zeros[4][256], size_t len)
{
	uint32_t op[32];
	uint32_t n;

	zeros_op(op, len);
	for (n = 0; n < 256; n++) {
		zeros[0][n] = gf2_times(op, n);
		zeros[1][n] = gf2_times(op, n << 8);
		zeros[2][n] = gf2_times(op, n << 16);
		zeros[3][n] = gf2_times(op, n << 24);
	}
}

static inline uint32_t shift(uint32_t zeros[4][256], uint32_t crc)
{
	return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^
	       zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

static void crc32c_init(void)
{
	uint32_t n, c;
	int k;

	for (n = 0; n < 256; n++) {
		c = n;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][n] = c;
	}
	/* table[k][n]: the CRC of byte n followed by k zero bytes. */
	for (n = 0; n < 256; n++) {
		c = table[0][n];
		for (k = 1; k < 8; k++) {
			c = table[0][c & 0xff] ^ (c >> 8);
			table[k][n] = c;
		}
	}
	zeros_table(zeros_long, LONG_BLOCK);
	zeros_table(zeros_short, SHORT_BLOCK);
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* ------------------------------------------------------------- software */

static uint32_t sw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t w;

	while (len && ((uintptr_t)p & 7)) {
		crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		memcpy(&w, p, 8);
		w = le64toh(w) ^ crc;
		crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
		      table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
		      table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
		      table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t vmig_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	if (!len)
		return crc;
	pthread_once(&init_once, crc32c_init);
	return ~sw(~crc, buf, len);
}

/* ------------------------------------------------------------- hardware */

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c0 = crc, c1, c2, w0, w1, w2;
	const uint8_t *end;

	while (len && ((uintptr_t)p & 7)) {
		c0 = _mm_crc32_u8((uint32_t)c0, *p++);
		len--;
	}
	while (len >= 3 * LONG_BLOCK) {
		c1 = c2 = 0;
		end = p + LONG_BLOCK;
		do {
			memcpy(&w0, p, 8);
			memcpy(&w1, p + LONG_BLOCK, 8);
			memcpy(&w2, p + 2 * LONG_BLOCK, 8);
			c0 = _mm_crc32_u64(c0, w0);
			c1 = _mm_crc32_u64(c1, w1);
			c2 = _mm_crc32_u64(c2, w2);
			p += 8;
		} while (p < end);
		c0 = shift(zeros_long, (uint32_t)c0) ^ c1;
		c0 = shift(zeros_long, (uint32_t)c0) ^ c2;
		p += 2 * LONG_BLOCK;
		len -= 3 * LONG_BLOCK;
	}
	while (len >= 3 * SHORT_BLOCK) {
		c1 = c2 = 0;
		end = p + SHORT_BLOCK;
		do {
			memcpy(&w0, p, 8);
			memcpy(&w1, p + SHORT_BLOCK, 8);
			memcpy(&w2, p + 2 * SHORT_BLOCK, 8);
			c0 = _mm_crc32_u64(c0, w0);
			c1 = _mm_crc32_u64(c1, w1);
			c2 = _mm_crc32_u64(c2, w2);
			p += 8;
		} while (p < end);
		c0 = shift(zeros_short, (uint32_t)c0) ^ c1;
		c0 = shift(zeros_short, (uint32_t)c0) ^ c2;
		p += 2 * SHORT_BLOCK;
		len -= 3 * SHORT_BLOCK;
	}
	while (len >= 8) {
		memcpy(&w0, p, 8);
		c0 = _mm_crc32_u64(c0, w0);
		p += 8;
		len -= 8;
	}
	while (len--)
		c0 = _mm_crc32_u8((uint32_t)c0, *p++);
	return (uint32_t)c0;
}
#endif

bool vmig_crc32c_have_hw(void)
{
	pthread_once(&init_once, crc32c_init);
	return have_hw;
}

uint32_t vmig_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	if (!len)
		return crc;
	pthread_once(&init_once, crc32c_init);
#if defined(__x86_64__)
	if (have_hw)
		return ~hw(~crc, buf, len);
#endif
	return ~sw(~crc, buf, len);
}

uint32_t vmig_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return vmig_crc32c_hw(crc, buf, len);
}

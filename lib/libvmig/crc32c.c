// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * CRC32C (Castagnoli, reflected polynomial 0x82f63b78), as used by iSCSI,
 * ext4 and the vfio-migsim stream.
 *
 * Three implementations give the same result: slicing-by-8 tables; the
 * SSE4.2 crc32 instruction run on three interleaved streams (the
 * instruction's latency is three times its throughput) whose CRCs are then
 * combined by "shifting" a CRC over a block of zeros with a precomputed
 * GF(2) operator table, as in Mark Adler's crc32c.c; and, for long
 * buffers, carry-less multiplication (VPCLMULQDQ on 512-bit registers)
 * folding 256 bytes at a time into sixteen 128-bit remainders, which are
 * folded into one and reduced with two crc32 instructions (the method of
 * Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ").
 * The crc32 instruction does at most 8 bytes a cycle; the folding about
 * four times that, which matters because every payload is checked twice.
 */
#include <endian.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "transport.h"

#define POLY		0x82f63b78U
/* Stream lengths of the interleaved hardware loop. */
#define LONG_BLOCK	8192
#define SHORT_BLOCK	256

static uint32_t table[8][256];
static uint32_t zeros_long[4][256], zeros_short[4][256];
/* x2n[k]: x^(2^k) modulo the polynomial, for vmig_crc32c_combine(). */
#define X2N		(3 + 64)
static uint32_t x2n[X2N];
static bool have_hw, have_clmul;
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

/*
 * a(x) * b(x) modulo the polynomial, in the reflected bit order of the
 * CRC (x^0 is the top bit), as zlib's multmodp().
 */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1U << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if (!(a & (m - 1)))
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
	}
	return p;
}

/* x^n modulo the polynomial (n in bits), reflected as multmodp()'s. */
static uint32_t xnmodp(uint64_t n)
{
	uint32_t p = 1U << 31;		/* x^0 */
	unsigned int k;

	for (k = 0; n; n >>= 1, k++)
		if (n & 1)
			p = multmodp(x2n[k], p);
	return p;
}

/*
 * Folding a 128-bit remainder A (16 message bytes, the first byte in the
 * low bits) forward by d bits: its low 64 bits hold the higher-degree half
 * (A_hi x^64), its high 64 bits the lower one, and A x^d = A_hi x^(64+d) +
 * A_lo x^d.  A carry-less product of two reflected 64-bit halves comes out
 * one bit short of the 128-bit layout (bit 127 is always 0), which the
 * constants make up for: k[0] = x^(d+63) and k[1] = x^(d-1) modulo P, each
 * reflected into the top of a 64-bit lane.
 */
static uint64_t fold_2048[2], fold_512[2], fold_384[2], fold_256[2],
		fold_128[2];

static void fold_const(uint64_t *k, unsigned int d)
{
	k[0] = (uint64_t)xnmodp(d + 63) << 32;
	k[1] = (uint64_t)xnmodp(d - 1) << 32;
}

static void fold_consts(void)
{
	fold_const(fold_2048, 2048);	/* the main loop: 256 bytes */
	fold_const(fold_512, 512);	/* one register into the next */
	fold_const(fold_384, 384);	/* the lanes of the last one */
	fold_const(fold_256, 256);
	fold_const(fold_128, 128);
}

static void crc32c_init(void)
{
	uint32_t n, c;
	int k;

	x2n[0] = 1U << 30;		/* x^1 */
	for (k = 1; k < X2N; k++)
		x2n[k] = multmodp(x2n[k - 1], x2n[k - 1]);

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
	have_clmul = have_hw && __builtin_cpu_supports("avx512f") &&
		     __builtin_cpu_supports("vpclmulqdq");
	fold_consts();
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

#if defined(__x86_64__)
#define CLMUL_TARGET \
	__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))

CLMUL_TARGET
static inline __m512i fold512(__m512i x, __m512i k, __m512i data)
{
	__m512i lo = _mm512_clmulepi64_epi128(x, k, 0x00);
	__m512i hi = _mm512_clmulepi64_epi128(x, k, 0x11);

	return _mm512_ternarylogic_epi64(lo, hi, data, 0x96);	/* xor3 */
}

CLMUL_TARGET
static inline __m128i fold128(__m128i x, const uint64_t *k, __m128i data)
{
	__m128i kk = _mm_loadu_si128((const void *)k);
	__m128i lo = _mm_clmulepi64_si128(x, kk, 0x00);
	__m128i hi = _mm_clmulepi64_si128(x, kk, 0x11);

	return _mm_xor_si128(_mm_xor_si128(lo, hi), data);
}

/* The CRC (inverted form, as hw()) of p[len]; len a multiple of 256. */
CLMUL_TARGET
static uint32_t clmul(uint32_t crc, const uint8_t *p, size_t len)
{
	__m512i x0, x1, x2, x3, k;
	__m128i a;
	uint64_t c;

	x0 = _mm512_loadu_si512(p);
	x1 = _mm512_loadu_si512(p + 64);
	x2 = _mm512_loadu_si512(p + 128);
	x3 = _mm512_loadu_si512(p + 192);
	/* The CRC so far goes into the first 4 bytes. */
	x0 = _mm512_xor_si512(x0,
			      _mm512_zextsi128_si512(_mm_cvtsi32_si128(crc)));
	k = _mm512_broadcast_i32x4(_mm_loadu_si128((const void *)fold_2048));
	for (p += 256, len -= 256; len; p += 256, len -= 256) {
		x0 = fold512(x0, k, _mm512_loadu_si512(p));
		x1 = fold512(x1, k, _mm512_loadu_si512(p + 64));
		x2 = fold512(x2, k, _mm512_loadu_si512(p + 128));
		x3 = fold512(x3, k, _mm512_loadu_si512(p + 192));
	}
	k = _mm512_broadcast_i32x4(_mm_loadu_si128((const void *)fold_512));
	x1 = fold512(x0, k, x1);
	x2 = fold512(x1, k, x2);
	x3 = fold512(x2, k, x3);
	a = _mm512_extracti32x4_epi32(x3, 3);
	a = fold128(_mm512_extracti32x4_epi32(x3, 0), fold_384, a);
	a = fold128(_mm512_extracti32x4_epi32(x3, 1), fold_256, a);
	a = fold128(_mm512_extracti32x4_epi32(x3, 2), fold_128, a);
	/* A x^32 mod P: the CRC of A's 16 bytes from a zero CRC. */
	c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(a));
	c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(a, 1));
	return (uint32_t)c;
}
#endif

bool vmig_crc32c_have_hw(void)
{
	pthread_once(&init_once, crc32c_init);
	return have_hw;
}

bool vmig_crc32c_have_clmul(void)
{
	pthread_once(&init_once, crc32c_init);
	return have_clmul;
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

uint32_t vmig_crc32c_clmul(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
	size_t n = len & ~(size_t)255;

	pthread_once(&init_once, crc32c_init);
	if (have_clmul && n) {
		crc = ~clmul(~crc, buf, n);
		return vmig_crc32c_hw(crc, (const uint8_t *)buf + n, len - n);
	}
#endif
	return vmig_crc32c_hw(crc, buf, len);
}

uint32_t vmig_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return vmig_crc32c_clmul(crc, buf, len);
}

/*
 * crc(A B) from crc(A), crc(B) and the length of B: crc(A) times x^(8 len2)
 * plus crc(B), the pre- and post-inversions cancelling out (zlib's
 * crc32_combine()).  O(log len2) multiplications.
 */
uint32_t vmig_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	uint32_t p = 1U << 31;		/* x^0 */
	unsigned int k = 3;		/* len2 counts bytes: 2^3 bits */

	pthread_once(&init_once, crc32c_init);
	for (; len2; len2 >>= 1, k++)
		if (len2 & 1)
			p = multmodp(x2n[k], p);
	return multmodp(p, crc1) ^ crc2;
}

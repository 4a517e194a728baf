/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest RAM tests run at full size on the host's /dev/kvm.  The test
 * VM runs them again under TCG, where a nested guest dirties 15-30 K
 * pages/s and a postcopy fault costs 1-2 ms: its init sets
 * VMIG_TEST_SCALE (a divisor of sizes, rates and bandwidths; 1 by default).
 */
#ifndef VMIG_TEST_SCALE_H
#define VMIG_TEST_SCALE_H

#include <stdint.h>
#include <stdlib.h>

static inline uint64_t test_scale(void)
{
	const char *s = getenv("VMIG_TEST_SCALE");
	unsigned long v = s ? strtoul(s, NULL, 0) : 1;

	return v ? v : 1;
}

#endif /* VMIG_TEST_SCALE_H */

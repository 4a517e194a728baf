/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the selftests of the migsim DMA engine (issue 7): a small
 * libnl-3 client for the vfio_migsim generic netlink family, DMA_SET and
 * DEV_GET on top of it, and the type1 container calls the engine needs.
 *
 * Only the programs that link libnl (see the Makefile) link migsim_nl.o.
 *
 * Every function returns 0 on success and a negative errno on failure
 * (migsim_dma_pages() excepted); none of them asserts.
 */
#ifndef MIGSIM_NL_H
#define MIGSIM_NL_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/vfio_migsim.h>

struct nl_sock;
struct nl_msg;

/* ------------------------------------------------------------ netlink */

/* A generic netlink socket bound to the vfio_migsim family. */
struct migsim_nl {
	struct nl_sock *sk;	/* NULL: not open */
	int family;
};

/* The kernel's answer to a request: its errno and extack message. */
struct migsim_nl_ext {
	int err;		/* 0 or -errno */
	char msg[256];		/* NLMSGERR_ATTR_MSG, "" if none */
};

/*
 * Open the socket (extended ACKs on) and resolve the family; -ENOENT if
 * the family is not there (the driver is not loaded).
 */
int migsim_nl_open(struct migsim_nl *nl);
/* Close it; a closed or never opened one is fine. */
void migsim_nl_close(struct migsim_nl *nl);

/* A request for cmd on the instance uuid; NULL if out of memory. */
struct nl_msg *migsim_nl_req(struct migsim_nl *nl, int cmd, const char *uuid);

/*
 * The DMA engine's state and counters as DEV_GET reports them: the
 * MIGSIM_A_DMA nest and the DMA statistics.
 */
struct migsim_dma_info {
	uint64_t rate, bytes, pages, errors;
	int nr_ranges;
	uint64_t iova[MIGSIM_DMA_MAX_RANGES + 1], len[MIGSIM_DMA_MAX_RANGES + 1];
	bool disabled[MIGSIM_DMA_MAX_RANGES + 1];
	bool have;		/* the reply had MIGSIM_A_DMA */
};

/*
 * Send m (freed here; NULL gives -ENOMEM) and wait for the answer: 0 or
 * -errno.  A reply, if any, is parsed into info (may be NULL); the error
 * and extack message go to ext (may be NULL).
 */
int migsim_nl_do(struct migsim_nl *nl, struct nl_msg *m,
		 struct migsim_dma_info *info, struct migsim_nl_ext *ext);

/* ------------------------------------------------------------ DMA engine */

struct migsim_dma_range {
	uint64_t iova, len;	/* iova UINT64_MAX: send no IOVA attribute */
};

/* DEV_GET into d. */
int migsim_dma_get(struct migsim_nl *nl, const char *uuid,
		   struct migsim_dma_info *d);
/* The pages the engine wrote so far; UINT64_MAX on error. */
uint64_t migsim_dma_pages(struct migsim_nl *nl, const char *uuid);

/*
 * DMA_SET; rate < 0: no RATE; nr <= 0: no RANGE (both: an empty nest, the
 * engine off); extra: a raw flag attribute added to every range.
 */
int migsim_dma_set(struct migsim_nl *nl, const char *uuid, int64_t rate,
		   const struct migsim_dma_range *r, int nr, int extra,
		   struct migsim_nl_ext *ext);
/* DMA_SET with an empty nest: the engine off, its ranges cleared. */
int migsim_dma_off(struct migsim_nl *nl, const char *uuid);

/* ------------------------------------------------------------ container */

/* VFIO_IOMMU_MAP_DMA, read and write. */
int migsim_map_dma(int container, void *vaddr, uint64_t iova, uint64_t size);
/* VFIO_IOMMU_UNMAP_DMA. */
int migsim_unmap_dma(int container, uint64_t iova, uint64_t size);
/* VFIO_IOMMU_DIRTY_PAGES with flag (_FLAG_START or _FLAG_STOP). */
int migsim_dirty_ctl(int container, uint32_t flag);
/*
 * The container's dirty bitmap of [iova, iova + size) in pgsize pages,
 * then cleared: bits needs (size / pgsize + 63) / 64 words.
 */
int migsim_get_bitmap(int container, uint64_t iova, uint64_t size,
		      uint64_t pgsize, uint64_t *bits);

/* ------------------------------------------------------------ misc */

/* Sleep ms milliseconds, signals or not. */
void migsim_msleep(unsigned int ms);

#endif /* MIGSIM_NL_H */

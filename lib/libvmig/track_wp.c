// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The write-protect tracker, for memory no KVM tracks: userfaultfd
 * write-protection in asynchronous mode (UFFD_FEATURE_WP_ASYNC: the kernel
 * resolves a write fault itself and marks the page written) read back with
 * PAGEMAP_SCAN, which reports the written pages and re-protects them in
 * the same walk.  WP_UNPOPULATED makes pages never touched yet count too.
 *
 * The output array stays at 512 entries: with more, some kernels point
 * walk_end at where their internal 512-entry buffer filled and a
 * continuation scans part of the range twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/userfaultfd.h>

#include "ram_int.h"

#ifndef PAGEMAP_SCAN
/* From the 6.12 uapi <linux/fs.h>; Debian 12's 6.1 headers lack it. */
#define PAGEMAP_SCAN		_IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WRITTEN		(1 << 1)
#define PM_SCAN_WP_MATCHING	(1 << 0)
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#endif

#define WP_VEC_LEN	512

struct wp_priv {
	int uffd;
	int pagemap_fd;
	unsigned int registered;	/* regions registered so far */
	struct page_region vec[WP_VEC_LEN];
};

static int uffd_open(uint64_t features, uint64_t *avail)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (avail)
		*avail = api.features;
	return fd;
}

static int wp_range(int uffd, const struct ram_region *r, bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)r->r.host_addr,
			   .len = r->r.size },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

static void wp_release(struct vmig_ram *ram, struct wp_priv *p)
{
	unsigned int i;

	for (i = 0; i < p->registered; i++) {
		struct uffdio_range rg = {
			.start = (uintptr_t)ram->regions[i].r.host_addr,
			.len = ram->regions[i].r.size,
		};

		ioctl(p->uffd, UFFDIO_UNREGISTER, &rg);
	}
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
	free(p);
}

static int wp_start(struct vmig_ram *ram)
{
	uint64_t avail = 0, want;
	struct wp_priv *p;
	unsigned int i;
	int fd, err;

	/* The features can be asked for once per fd: probe on another. */
	fd = uffd_open(0, &avail);
	if (fd < 0)
		return fd;
	close(fd);
	want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
	if ((avail & want) != want)
		return -EOPNOTSUPP;
	want |= avail & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->pagemap_fd = -1;
	p->uffd = uffd_open(want, NULL);
	if (p->uffd < 0) {
		err = p->uffd;
		goto fail;
	}
	p->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (p->pagemap_fd < 0) {
		err = -errno;
		goto fail;
	}
	for (i = 0; i < ram->nr_regions; i++) {
		struct uffdio_register reg = {
			.range = {
				.start = (uintptr_t)ram->regions[i].r.host_addr,
				.len = ram->regions[i].r.size,
			},
			.mode = UFFDIO_REGISTER_MODE_WP,
		};

		if (ioctl(p->uffd, UFFDIO_REGISTER, &reg)) {
			err = -errno;
			vmig_err("ram: region %u: userfaultfd WP register: %d",
				 i, err);
			goto fail;
		}
		p->registered++;
		err = wp_range(p->uffd, &ram->regions[i], true);
		if (err)
			goto fail;
	}
	ram->tracker_priv = p;
	return 0;
fail:
	wp_release(ram, p);
	return err;
}

static int wp_sync_region(struct vmig_ram *ram, struct wp_priv *p,
			  const struct ram_region *r)
{
	uint64_t base = (uintptr_t)r->r.host_addr, end = base + r->r.size;
	struct pm_scan_arg a;
	uint64_t pg, n = 0;
	int ret, i;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
	a.start = base;
	a.end = end;
	a.vec = (uintptr_t)p->vec;
	a.vec_len = WP_VEC_LEN;
	a.category_mask = PAGE_IS_WRITTEN;
	a.return_mask = PAGE_IS_WRITTEN;
	for (;;) {
		ret = ioctl(p->pagemap_fd, PAGEMAP_SCAN, &a);
		if (ret < 0)
			return -errno;
		ram_lock(ram);
		for (i = 0; i < ret; i++) {
			for (pg = p->vec[i].start; pg < p->vec[i].end;
			     pg += RAM_PAGE_SIZE) {
				ram_push_locked(ram, r->first +
						(pg - base) / RAM_PAGE_SIZE);
				n++;
			}
		}
		ram->stats.reported += n;
		if (n)
			ram->stats.passes++;
		ram_unlock(ram);
		n = 0;
		if (a.walk_end >= end)
			return 0;
		a.start = a.walk_end;
	}
}

static int wp_sync(struct vmig_ram *ram)
{
	struct wp_priv *p = ram->tracker_priv;
	uint64_t t0 = ram_cpu_ns();
	unsigned int i;
	int err = 0;

	for (i = 0; i < ram->nr_regions && !err; i++)
		err = wp_sync_region(ram, p, &ram->regions[i]);
	if (err)
		vmig_err("ram: PAGEMAP_SCAN: %d", err);
	ram_add_sync_ns(ram, t0);
	return err;
}

static void wp_stop(struct vmig_ram *ram)
{
	struct wp_priv *p = ram->tracker_priv;

	wp_sync(ram);
	wp_release(ram, p);
}

const struct ram_tracker_ops ram_track_wp = {
	.kind = VMIG_TRACK_WP,
	.name = "uffd-wp",
	.start = wp_start,
	.sync = wp_sync,
	.stop = wp_stop,
};

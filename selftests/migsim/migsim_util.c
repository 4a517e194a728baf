// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the vfio-migsim selftests (see migsim_util.h).
 */
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migsim_util.h"

/* ------------------------------------------------------------ instances */

int migsim_uuid_random(char uuid[MIGSIM_UUID_LEN + 1])
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += n;
	}
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	snprintf(uuid, MIGSIM_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

int migsim_create_uuid(const char *uuid)
{
	return sysfs_write(MIGSIM_TYPE_DIR "/create", uuid);
}

int migsim_remove_uuid(const char *uuid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), MDEV_DEVICES_DIR "/%s/remove", uuid);
	return sysfs_write(path, "1");
}

bool migsim_exists(const char *uuid)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), MDEV_DEVICES_DIR "/%s", uuid);
	return stat(path, &st) == 0;
}

static int parse_u64(const char *s, uint64_t *val)
{
	unsigned long long v;
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -errno;
	if (end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K':
		v <<= 10;
		end++;
		break;
	case 'm': case 'M':
		v <<= 20;
		end++;
		break;
	case 'g': case 'G':
		v <<= 30;
		end++;
		break;
	}
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return -EINVAL;
	*val = v;
	return 0;
}

uint64_t migsim_default_state_size(void)
{
	char buf[64];
	uint64_t v;

	if (sysfs_read("/sys/module/vfio_migsim/parameters/default_state_size",
		       buf, sizeof(buf)) > 0 && !parse_u64(buf, &v))
		return v;
	return MIGSIM_DEFAULT_STATE_SIZE;
}

int migsim_available_instances(uint64_t *n)
{
	char buf[64];
	int ret;

	ret = sysfs_read(MIGSIM_TYPE_DIR "/available_instances", buf,
			 sizeof(buf));
	if (ret < 0)
		return ret;
	return parse_u64(buf, n);
}

int migsim_inst_create(struct migsim_inst *in, uint64_t state_size)
{
	char uuid[MIGSIM_UUID_LEN + 1];
	int ret;

	in->uuid[0] = '\0';
	in->dev = NULL;
	in->fd = -1;
	ret = migsim_uuid_random(uuid);
	if (ret)
		return ret;
	ret = migsim_create_uuid(uuid);
	if (ret)
		return ret;
	memcpy(in->uuid, uuid, sizeof(uuid));
	if (state_size) {
		ret = migsim_set_state_size(in->uuid, state_size);
		if (ret) {
			migsim_remove_uuid(in->uuid);
			in->uuid[0] = '\0';
			return ret;
		}
	}
	return 0;
}

int migsim_inst_open(struct migsim_inst *in)
{
	int ret;

	if (in->dev)
		return -EBUSY;
	ret = vmig_vfio_open_mdev(in->uuid, &in->dev);
	if (ret) {
		in->dev = NULL;
		return ret;
	}
	in->fd = vmig_vfio_fd(in->dev);
	if (in->fd < 0) {
		ret = in->fd;
		vmig_vfio_close(in->dev);
		in->dev = NULL;
		in->fd = -1;
		return ret;
	}
	return 0;
}

void migsim_inst_close(struct migsim_inst *in)
{
	if (in->dev)
		vmig_vfio_close(in->dev);
	in->dev = NULL;
	in->fd = -1;
}

int migsim_inst_destroy(struct migsim_inst *in)
{
	int ret = 0;

	migsim_inst_close(in);
	if (in->uuid[0]) {
		ret = migsim_remove_uuid(in->uuid);
		in->uuid[0] = '\0';
	}
	return ret;
}

int migsim_inst_create_open(struct migsim_inst *in, uint64_t state_size)
{
	int ret = migsim_inst_create(in, state_size);

	if (ret)
		return ret;
	ret = migsim_inst_open(in);
	if (ret)
		migsim_inst_destroy(in);
	return ret;
}

/* ---------------------------------------------------------------- sysfs */

int sysfs_read(const char *path, char *buf, size_t len)
{
	size_t got = 0;
	int fd, ret;

	if (!len)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got < len - 1) {
		ssize_t n = read(fd, buf + got, len - 1 - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			close(fd);
			return ret;
		}
		if (!n)
			break;
		got += n;
	}
	close(fd);
	buf[got] = '\0';
	while (got && buf[got - 1] == '\n')
		buf[--got] = '\0';
	return got;
}

int sysfs_write(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

static void attr_path(char *path, size_t len, const char *uuid,
		      const char *attr)
{
	snprintf(path, len, MDEV_DEVICES_DIR "/%s/" MIGSIM_SYSFS_GROUP "/%s",
		 uuid, attr);
}

int migsim_attr_read(const char *uuid, const char *attr, char *buf,
		     size_t len)
{
	char path[PATH_MAX];

	attr_path(path, sizeof(path), uuid, attr);
	return sysfs_read(path, buf, len);
}

int migsim_attr_write(const char *uuid, const char *attr, const char *val)
{
	char path[PATH_MAX];

	attr_path(path, sizeof(path), uuid, attr);
	return sysfs_write(path, val);
}

int migsim_attr_u64(const char *uuid, const char *attr, uint64_t *val)
{
	char buf[128];
	int ret;

	ret = migsim_attr_read(uuid, attr, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	return parse_u64(buf, val);
}

int migsim_state_size(const char *uuid, uint64_t *bytes)
{
	return migsim_attr_u64(uuid, "state_size", bytes);
}

int migsim_set_state_size(const char *uuid, uint64_t bytes)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)bytes);
	return migsim_attr_write(uuid, "state_size", buf);
}

int migsim_checksum(const char *uuid, uint32_t *csum)
{
	uint64_t v;
	int ret = migsim_attr_u64(uuid, "checksum", &v);

	if (ret)
		return ret;
	if (v > UINT32_MAX)
		return -ERANGE;
	*csum = v;
	return 0;
}

int migsim_generation(const char *uuid, uint64_t *gen)
{
	char buf[64];
	char *end;
	int ret;

	ret = migsim_attr_read(uuid, "generation", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	errno = 0;
	*gen = strtoull(buf, &end, 10);
	if (errno || end == buf || *end)
		return -EINVAL;
	return 0;
}

int migsim_chunk_size(const char *uuid, uint64_t *bytes)
{
	return migsim_attr_u64(uuid, "chunk_size", bytes);
}

int migsim_sysfs_mig_state(const char *uuid, enum vmig_dev_state *state)
{
	static const char *const names[VMIG_STATE_NR] = {
		[VMIG_STATE_ERROR] = "ERROR",
		[VMIG_STATE_STOP] = "STOP",
		[VMIG_STATE_RUNNING] = "RUNNING",
		[VMIG_STATE_STOP_COPY] = "STOP_COPY",
		[VMIG_STATE_RESUMING] = "RESUMING",
		[VMIG_STATE_RUNNING_P2P] = "RUNNING_P2P",
		[VMIG_STATE_PRE_COPY] = "PRE_COPY",
		[VMIG_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P",
	};
	char buf[64];
	int ret, i;

	ret = migsim_attr_read(uuid, "migration_state", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	for (i = 0; i < VMIG_STATE_NR; i++) {
		if (!strcmp(buf, names[i])) {
			*state = i;
			return 0;
		}
	}
	return -EINVAL;
}

int migsim_iommu_group(const char *uuid, int *group)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *base;
	ssize_t len;
	char *end;
	long g;

	snprintf(path, sizeof(path), MDEV_DEVICES_DIR "/%s/iommu_group", uuid);
	len = readlink(path, link, sizeof(link) - 1);
	if (len < 0)
		return -errno;
	link[len] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	errno = 0;
	g = strtol(base, &end, 10);
	if (errno || end == base || *end || g < 0 || g > INT_MAX)
		return -EINVAL;
	*group = g;
	return 0;
}

/* ------------------------------------------------------------ VFIO access */

int migsim_region_info(int devfd, uint32_t index,
		       struct vfio_region_info *info)
{
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	info->index = index;
	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, info))
		return -errno;
	return 0;
}

static int region_io(int devfd, uint32_t index, uint64_t off, void *buf,
		     size_t len, bool write)
{
	struct vfio_region_info info;
	ssize_t n;
	int ret;

	ret = migsim_region_info(devfd, index, &info);
	if (ret)
		return ret;
	if (write)
		n = pwrite(devfd, buf, len, info.offset + off);
	else
		n = pread(devfd, buf, len, info.offset + off);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EIO;
	return 0;
}

int migsim_region_read(int devfd, uint32_t index, uint64_t off, void *buf,
		       size_t len)
{
	return region_io(devfd, index, off, buf, len, false);
}

int migsim_region_write(int devfd, uint32_t index, uint64_t off,
			const void *buf, size_t len)
{
	return region_io(devfd, index, off, (void *)buf, len, true);
}

int migsim_cfg_read32(int devfd, uint32_t off, uint32_t *val)
{
	uint32_t le;
	int ret;

	ret = migsim_region_read(devfd, VFIO_PCI_CONFIG_REGION_INDEX, off, &le,
				 sizeof(le));
	if (!ret)
		*val = le32toh(le);
	return ret;
}

int migsim_cfg_write32(int devfd, uint32_t off, uint32_t val)
{
	uint32_t le = htole32(val);

	return migsim_region_write(devfd, VFIO_PCI_CONFIG_REGION_INDEX, off,
				   &le, sizeof(le));
}

int migsim_bar0_read32(int devfd, uint32_t off, uint32_t *val)
{
	uint32_t le;
	int ret;

	ret = migsim_region_read(devfd, VFIO_PCI_BAR0_REGION_INDEX, off, &le,
				 sizeof(le));
	if (!ret)
		*val = le32toh(le);
	return ret;
}

int migsim_bar0_write32(int devfd, uint32_t off, uint32_t val)
{
	uint32_t le = htole32(val);

	return migsim_region_write(devfd, VFIO_PCI_BAR0_REGION_INDEX, off,
				   &le, sizeof(le));
}

int migsim_set_state(struct migsim_inst *in, enum vmig_dev_state state,
		     int *data_fd)
{
	int fd = -1, ret;

	ret = vmig_vfio_set_state_raw(in->dev, state, &fd);
	if (data_fd)
		*data_fd = fd;
	else if (fd >= 0)
		close(fd);
	return ret;
}

int migsim_get_state(struct migsim_inst *in, enum vmig_dev_state *state)
{
	return vmig_vfio_get_state(in->dev, state);
}

/* -------------------------------------------------------------- streams */

int migsim_buf_append(struct migsim_buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 64 * KiB;
		uint8_t *p;

		while (cap < b->len + len)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

void migsim_buf_free(struct migsim_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int migsim_read_stream(int fd, size_t rsz, struct migsim_buf *b)
{
	uint8_t *tmp;
	int ret = 0;

	if (!rsz)
		return -EINVAL;
	tmp = malloc(rsz);
	if (!tmp)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, tmp, rsz);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (!n)
			break;
		ret = migsim_buf_append(b, tmp, n);
		if (ret)
			break;
	}
	free(tmp);
	return ret;
}

int migsim_write_stream(int fd, const void *buf, size_t len, size_t wsz,
			size_t *written)
{
	const uint8_t *p = buf;
	size_t done = 0;
	int ret = 0;

	if (!wsz)
		return -EINVAL;
	while (done < len) {
		size_t want = len - done < wsz ? len - done : wsz;
		ssize_t n = write(fd, p + done, want);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (!n) {
			ret = -EIO;
			break;
		}
		done += n;
	}
	if (written)
		*written = done;
	return ret;
}

int migsim_copy_stream(int in_fd, int out_fd, size_t rsz, size_t wsz,
		       bool stop_at_enomsg, uint64_t *bytes,
		       bool *failed_write)
{
	size_t cap = rsz + wsz, fill = 0;
	uint64_t total = 0;
	uint8_t *buf;
	int ret = 0;
	bool eof = false;

	*failed_write = false;
	if (!rsz || !wsz)
		return -EINVAL;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	while (!eof || fill) {
		if (!eof) {
			ssize_t n = read(in_fd, buf + fill, rsz);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == ENOMSG && stop_at_enomsg) {
					eof = true;
				} else {
					ret = -errno;
					break;
				}
			} else if (!n) {
				eof = true;
			} else {
				fill += n;
				total += n;
			}
		}
		/* write whole wsz pieces; the tail only once input ended */
		while (fill >= wsz || (eof && fill)) {
			size_t want = fill < wsz ? fill : wsz;
			size_t done;

			ret = migsim_write_stream(out_fd, buf, want, want,
						  &done);
			if (ret) {
				*failed_write = true;
				goto out;
			}
			memmove(buf, buf + want, fill - want);
			fill -= want;
		}
	}
out:
	free(buf);
	*bytes = total;
	return ret;
}

int migsim_save(struct migsim_inst *in, size_t rsz, struct migsim_buf *b)
{
	int fd = -1, ret;

	ret = migsim_set_state(in, VMIG_STATE_STOP, NULL);
	if (ret)
		return ret;
	ret = migsim_set_state(in, VMIG_STATE_STOP_COPY, &fd);
	if (ret)
		return ret;
	if (fd < 0)
		return -EBADF;
	ret = migsim_read_stream(fd, rsz, b);
	close(fd);
	if (ret)
		return ret;
	return migsim_set_state(in, VMIG_STATE_RUNNING, NULL);
}

int migsim_load(struct migsim_inst *in, const void *buf, size_t len,
		size_t wsz)
{
	int fd = -1, ret;

	ret = migsim_set_state(in, VMIG_STATE_RESUMING, &fd);
	if (ret)
		return ret;
	if (fd < 0)
		return -EBADF;
	ret = migsim_write_stream(fd, buf, len, wsz, NULL);
	close(fd);
	if (ret)
		return ret;
	ret = migsim_set_state(in, VMIG_STATE_STOP, NULL);
	if (ret)
		return ret;
	return migsim_set_state(in, VMIG_STATE_RUNNING, NULL);
}

uint64_t migsim_stream_len(uint64_t state_size, uint64_t chunk_size)
{
	uint64_t chunks = (state_size + chunk_size - 1) / chunk_size;

	return sizeof(struct migsim_stream_header) +
	       sizeof(struct migsim_record) +
	       sizeof(struct migsim_config_state) +
	       chunks * sizeof(struct migsim_record) + state_size +
	       sizeof(struct migsim_record) + sizeof(struct migsim_end);
}

/* ---------------------------------------------------------------- CRC32C */

static uint32_t crc32c_table[256];

static void crc32c_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c >> 1) ^ (c & 1 ? 0x82f63b78U : 0);
		crc32c_table[i] = c;
	}
}

uint32_t migsim_crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!crc32c_table[1])
		crc32c_init();
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t migsim_crc32c(const void *buf, size_t len)
{
	return migsim_crc32c_update(~0U, buf, len) ^ ~0U;
}

void migsim_fix_header_crc(struct migsim_stream_header *h)
{
	h->header_crc = htole32(migsim_crc32c(h,
			offsetof(struct migsim_stream_header, header_crc)));
}

void migsim_fix_record_crc(struct migsim_record *r)
{
	r->record_crc = htole32(migsim_crc32c(r,
			offsetof(struct migsim_record, record_crc)));
}

struct migsim_record *migsim_next_record(struct migsim_buf *b, size_t *off)
{
	struct migsim_record *r;
	size_t len;

	if (*off + sizeof(*r) > b->len)
		return NULL;
	r = (struct migsim_record *)(b->data + *off);
	len = le32toh(r->length);
	if (*off + sizeof(*r) + len > b->len)
		return NULL;
	*off += sizeof(*r) + len;
	return r;
}

struct migsim_record *migsim_find_record(struct migsim_buf *b, uint32_t type,
					 uint64_t offset, size_t *rec_off)
{
	size_t off = sizeof(struct migsim_stream_header), at;
	struct migsim_record *r;

	for (;;) {
		at = off;
		r = migsim_next_record(b, &off);
		if (!r)
			return NULL;
		if (le32toh(r->type) != type)
			continue;
		if (type == MIGSIM_REC_CHUNK && le64toh(r->offset) != offset)
			continue;
		if (rec_off)
			*rec_off = at;
		return r;
	}
}

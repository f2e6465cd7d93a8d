// SPDX-License-Identifier: MIT
/*
 * The system-memory backend: a device is a sealed memfd of the configured
 * size, and a window is exported with UDMABUF_CREATE, which pins the
 * memfd's pages and gives a real kernel dma-buf (exp_name "udmabuf") that
 * any DRM driver imports and that clients may mmap(). Nothing here pretends
 * to be a GPU: LIST_DEVICES reports these devices as sysmem, with no PCI
 * address.
 *
 * Reuse follows the core's rule unchanged: udmabuf fds are ordinary dma-buf
 * files, so fdinfo's "count" counts every fd, mapping and importer (vgem's
 * GEM object holds a file reference) exactly as for VFIO buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/udmabuf.h>

#include "daemon/backend.h"
#include "daemon/config.h"

#define UDMABUF_DEV "/dev/udmabuf"
#define UDMABUF_LIMIT "/sys/module/udmabuf/parameters/size_limit_mb"

struct backend_device {
	int memfd;
	int udmabuf; /* /dev/udmabuf */
	uint64_t size;
};

static struct backend_device *sysmem_close(struct backend_device *dev)
{
	if (!dev)
		return NULL;
	safe_close(dev->memfd);
	safe_close(dev->udmabuf);
	free(dev);
	return NULL;
}

/* udmabuf refuses buffers above its size_limit_mb parameter (64 by default). */
static uint64_t udmabuf_limit(void)
{
	FILE *f = fopen(UDMABUF_LIMIT, "re");
	unsigned long long mb = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &mb) != 1)
		mb = 0;
	fclose(f);
	return (uint64_t)mb << 20;
}

static void sysmem_info(const struct config_device *cfg, struct backend_info *ret)
{
	*ret = (struct backend_info){
		.bar_size = cfg->size, .page_size = (uint64_t)sysconf(_SC_PAGESIZE),
		.features = DEVICE_FEATURE_DMABUF | DEVICE_FEATURE_MMAP,
		.max_export = udmabuf_limit(),
	};
}

static int sysmem_open(const struct config_device *cfg, struct backend_device **ret,
		       struct backend_info *ret_info)
{
	struct backend_device *dev = calloc(1, sizeof(*dev));
	char name[64];
	int r;

	if (!dev)
		return -ENOMEM;
	dev->memfd = dev->udmabuf = -EBADF;
	dev->size = cfg->size;
	if (cfg->size == 0) {
		r = -EINVAL;
		goto fail;
	}
	dev->udmabuf = open(UDMABUF_DEV, O_RDWR | O_CLOEXEC);
	if (dev->udmabuf < 0) {
		r = -errno;
		goto fail;
	}
	snprintf(name, sizeof(name), "barkeep:%s", cfg->name);
	dev->memfd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (dev->memfd < 0) {
		r = -errno;
		goto fail;
	}
	/* udmabuf wants F_SEAL_SHRINK (pages cannot vanish under a buffer);
	 * no one else holds the memfd, so seal it for good. */
	if (ftruncate(dev->memfd, (off_t)cfg->size) < 0 ||
	    fcntl(dev->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		goto fail;
	}
	sysmem_info(cfg, ret_info);
	*ret = dev;
	return 0;
fail:
	sysmem_close(dev);
	return r;
}

/* The memfd is the device: the next barkeepd lends from the same pages. */
static size_t sysmem_stored_fds(struct backend_device *dev, struct backend_stored ret[BACKEND_STORED_MAX])
{
	ret[0] = (struct backend_stored){ "memory", dev->memfd };
	return 1;
}

static int sysmem_adopt(const struct config_device *cfg, const struct backend_stored *fds, size_t n,
			struct backend_device **ret, struct backend_info *ret_info)
{
	const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	int memfd = backend_stored_find(fds, n, "memory");
	struct stat st;

	if (memfd < 0)
		return -ENOENT;
	if (fstat(memfd, &st) < 0 || fcntl(memfd, F_GET_SEALS) != want)
		return -EBADFD;
	if ((uint64_t)st.st_size != cfg->size)
		return -EXDEV; /* the configured size changed: not the same device */
	struct backend_device *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->size = cfg->size;
	dev->memfd = -EBADF;
	dev->udmabuf = open(UDMABUF_DEV, O_RDWR | O_CLOEXEC);
	if (dev->udmabuf < 0) {
		int r = -errno;
		sysmem_close(dev);
		return r;
	}
	dev->memfd = memfd;
	sysmem_info(cfg, ret_info);
	*ret = dev;
	return 0;
}

static int sysmem_export(struct backend_device *dev, uint64_t offset, uint64_t size, int open_flags)
{
	struct udmabuf_create c = {
		.memfd = (uint32_t)dev->memfd, .flags = UDMABUF_FLAGS_CLOEXEC,
		.offset = offset, .size = size,
	};

	/* udmabuf buffers are always O_RDWR: a read-only one cannot be had. */
	if ((open_flags & O_ACCMODE) != O_RDWR)
		return -EOPNOTSUPP;
	if (offset > dev->size || size > dev->size - offset)
		return -ERANGE;
	int fd = ioctl(dev->udmabuf, UDMABUF_CREATE, &c);
	return fd < 0 ? -errno : fd;
}

static int sysmem_scrub(struct backend_device *dev, uint64_t offset, uint64_t size)
{
	if (offset > dev->size || size > dev->size - offset)
		return -ERANGE;
	/* Zeroes the range and gives the pages back to the system. Pages a
	 * still-open udmabuf pinned leave the file and die with that buffer. */
	if (fallocate(dev->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
		      (off_t)size) < 0)
		return -errno;
	return 0;
}

/* System memory has no device state to reset and udmabuf cannot revoke a
 * buffer: an admin reset still pauses and resumes the device, so clients
 * drop and re-import their buffers, but nothing is revoked or cleared. */
static int sysmem_reset(struct backend_device *dev)
{
	return 0;
}

static int sysmem_set_memory(struct backend_device *dev, bool enable)
{
	return -EOPNOTSUPP;
}

/* Memory reports no errors and is never unplugged. */
static int sysmem_notify(struct backend_device *dev, enum backend_notify which, int eventfd)
{
	return -EOPNOTSUPP;
}

const struct backend_ops backend_sysmem = {
	.name = "sysmem",
	.kind = BACKEND_KIND_SYSMEM,
	.open = sysmem_open,
	.close = sysmem_close,
	.stored_fds = sysmem_stored_fds,
	.adopt = sysmem_adopt,
	.export = sysmem_export,
	.scrub = sysmem_scrub,
	.reset = sysmem_reset,
	.set_memory = sysmem_set_memory,
	.notify = sysmem_notify,
};

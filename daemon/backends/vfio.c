// SPDX-License-Identifier: MIT
/*
 * The VFIO backend: a vfio-pci device opened through the legacy
 * container/group path, windows of one BAR exported with
 * VFIO_DEVICE_FEATURE_DMA_BUF, scrubbed through the BAR's region mmap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/pci_regs.h>

#include "common/vfio.h"
#include "common/vfio-uapi.h"
#include "daemon/backend.h"
#include "daemon/config.h"

struct backend_device {
	struct vfio_dev vfio;
	uint32_t bar;
	void *map; /* the whole BAR, for scrubbing; NULL if it cannot be mapped */
	uint64_t map_size;
};

static struct backend_device *vfio_close(struct backend_device *dev)
{
	if (!dev)
		return NULL;
	if (dev->map)
		munmap(dev->map, dev->map_size);
	vfio_dev_close(&dev->vfio);
	free(dev);
	return NULL;
}

/* What this kernel offers beyond 7.2's export: the kernel-patches/ series
 * (mmap of the dma-buf, per-buffer revoke, memory attribute). */
static uint32_t probe_features(struct backend_device *dev)
{
	uint32_t f = DEVICE_FEATURE_DMABUF;

	if (vfio_dmabuf_mmap_probe(&dev->vfio, dev->bar) == 0)
		f |= DEVICE_FEATURE_MMAP;
	if (vfio_feature_probe(&dev->vfio, VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE,
			       VFIO_DEVICE_FEATURE_SET) == 0)
		f |= DEVICE_FEATURE_REVOKE;
	if ((f & DEVICE_FEATURE_MMAP) &&
	    vfio_feature_probe(&dev->vfio, VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR,
			       VFIO_DEVICE_FEATURE_SET) == 0)
		f |= DEVICE_FEATURE_MEMATTR_WC;
	return f;
}

/* What open and adopt share once dev->vfio is up: the BAR, its region, the
 * kernel's dma-buf support, the ids and the scrub mapping. Frees dev on
 * failure (the fds with it). */
static int vfio_finish(struct backend_device *dev, const struct config_device *cfg,
		       struct backend_device **ret, struct backend_info *ret_info)
{
	struct vfio_region reg;
	uint16_t ids[2];
	int r;

	r = cfg->bar >= 0 ? cfg->bar : vfio_pick_vram_bar(&dev->vfio);
	if (r < 0 || r > VFIO_PCI_BAR5_REGION_INDEX) {
		r = -ENODEV;
		goto fail;
	}
	dev->bar = (uint32_t)r;
	r = vfio_region_info(&dev->vfio, dev->bar, &reg);
	if (r < 0)
		goto fail;
	if (reg.size == 0) {
		r = -ENODEV;
		goto fail;
	}
	r = vfio_dmabuf_probe(&dev->vfio);
	if (r < 0)
		goto fail;
	r = vfio_config_read(&dev->vfio, PCI_VENDOR_ID, ids, sizeof(ids));
	if (r < 0)
		goto fail;
	/* Scrubbing needs the CPU mapping; without it windows are never reused. */
	if (vfio_region_mmap(&dev->vfio, dev->bar, &dev->map, &dev->map_size) < 0)
		dev->map = NULL;

	*ret_info = (struct backend_info){
		.vendor = ids[0], .device = ids[1], .bar = dev->bar, .bar_size = reg.size,
		.page_size = (uint64_t)sysconf(_SC_PAGESIZE), .features = probe_features(dev),
	};
	snprintf(ret_info->pci_addr, sizeof(ret_info->pci_addr), "%s", cfg->pci);
	*ret = dev;
	return 0;
fail:
	vfio_close(dev);
	return r;
}

static int vfio_open(const struct config_device *cfg, struct backend_device **ret,
		     struct backend_info *ret_info)
{
	struct backend_device *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	int r = vfio_dev_open(cfg->pci, &dev->vfio);
	if (r < 0) {
		free(dev);
		return r;
	}
	return vfio_finish(dev, cfg, ret, ret_info);
}

static size_t vfio_stored_fds(struct backend_device *dev, struct backend_stored ret[BACKEND_STORED_MAX])
{
	ret[0] = (struct backend_stored){ "container", dev->vfio.container_fd };
	ret[1] = (struct backend_stored){ "group", dev->vfio.group_fd };
	ret[2] = (struct backend_stored){ "device", dev->vfio.device_fd };
	return 3;
}

static int vfio_adopt(const struct config_device *cfg, const struct backend_stored *fds, size_t n,
		      struct backend_device **ret, struct backend_info *ret_info)
{
	int container = backend_stored_find(fds, n, "container");
	int group = backend_stored_find(fds, n, "group");
	int device = backend_stored_find(fds, n, "device");
	if (container < 0 || group < 0 || device < 0)
		return -ENOENT;
	struct backend_device *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	int r = vfio_dev_adopt(cfg->pci, container, group, device, &dev->vfio);
	if (r < 0) {
		free(dev);
		return r;
	}
	return vfio_finish(dev, cfg, ret, ret_info);
}

static int vfio_export(struct backend_device *dev, uint64_t offset, uint64_t size, int open_flags)
{
	return vfio_dmabuf_export(&dev->vfio, dev->bar, offset, size, open_flags);
}

static int vfio_scrub(struct backend_device *dev, uint64_t offset, uint64_t size)
{
	if (!dev->map)
		return -EOPNOTSUPP;
	if (offset > dev->map_size || size > dev->map_size - offset)
		return -ERANGE;
	vfio_region_zero((char *)dev->map + offset, size);
	return 0;
}

static int vfio_reset(struct backend_device *dev)
{
	if (!(dev->vfio.flags & VFIO_DEVICE_FLAGS_RESET))
		return -EOPNOTSUPP;
	if (ioctl(dev->vfio.device_fd, VFIO_DEVICE_RESET) < 0)
		return -errno;
	return 0;
}

#define HOT_RESET_DEVICES_MAX 32

/* A slot or bus reset: only when every device it resets is in our group
 * (the kernel also insists that we own every affected group). */
static int vfio_bus_reset(struct backend_device *dev)
{
	union {
		struct vfio_pci_hot_reset_info info;
		uint8_t bytes[sizeof(struct vfio_pci_hot_reset_info) +
			      HOT_RESET_DEVICES_MAX * sizeof(struct vfio_pci_dependent_device)];
	} hi = { .info = { .argsz = sizeof(hi) } };
	union {
		struct vfio_pci_hot_reset reset;
		uint8_t bytes[sizeof(struct vfio_pci_hot_reset) + sizeof(int32_t)];
	} hr = { .reset = { .argsz = sizeof(hr), .count = 1 } };
	int32_t group_fd = dev->vfio.group_fd;

	/* ENODEV: no slot or bus reset for this device; ENOSPC: it would reset
	 * more devices than we could own anyway. */
	if (ioctl(dev->vfio.device_fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &hi) < 0)
		return errno == ENODEV || errno == ENOSPC ? -EOPNOTSUPP : -errno;
	for (uint32_t i = 0; i < hi.info.count && i < HOT_RESET_DEVICES_MAX; i++)
		if ((int)hi.info.devices[i].group_id != dev->vfio.group_id)
			return -EOPNOTSUPP;
	memcpy(hr.reset.group_fds, &group_fd, sizeof(group_fd));
	if (ioctl(dev->vfio.device_fd, VFIO_DEVICE_PCI_HOT_RESET, &hr) < 0)
		return -errno;
	return 0;
}

static int vfio_set_memory(struct backend_device *dev, bool enable)
{
	return vfio_set_memory_enable(&dev->vfio, enable);
}

static int vfio_notify(struct backend_device *dev, enum backend_notify which, int eventfd)
{
	union {
		struct vfio_irq_set set;
		uint8_t bytes[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	} irq = { .set = {
		.argsz = sizeof(irq), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = which == BACKEND_NOTIFY_ERROR ? VFIO_PCI_ERR_IRQ_INDEX : VFIO_PCI_REQ_IRQ_INDEX,
		.start = 0, .count = 1,
	} };
	int32_t fd = eventfd;

	memcpy(irq.set.data, &fd, sizeof(fd));
	if (ioctl(dev->vfio.device_fd, VFIO_DEVICE_SET_IRQS, &irq) < 0)
		return -errno;
	return 0;
}

static int vfio_revoke(struct backend_device *dev, int fd)
{
	return vfio_dmabuf_revoke(&dev->vfio, fd);
}

static int vfio_set_write_combine(struct backend_device *dev, int fd)
{
	return vfio_dmabuf_set_memattr(&dev->vfio, fd, VFIO_DEVICE_DMA_BUF_MEMATTR_WC);
}

const struct backend_ops backend_vfio = {
	.name = "vfio",
	.kind = BACKEND_KIND_VFIO,
	.open = vfio_open,
	.close = vfio_close,
	.stored_fds = vfio_stored_fds,
	.adopt = vfio_adopt,
	.export = vfio_export,
	.scrub = vfio_scrub,
	.reset = vfio_reset,
	.bus_reset = vfio_bus_reset,
	.set_memory = vfio_set_memory,
	.notify = vfio_notify,
	.revoke = vfio_revoke,
	.set_write_combine = vfio_set_write_combine,
};

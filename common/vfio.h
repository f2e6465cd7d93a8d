/* SPDX-License-Identifier: MIT */
/*
 * Low-level VFIO access shared by the daemon's VFIO backend and the guest
 * test programs: open a device through the legacy container/group path,
 * read region info, export BAR windows as dma-bufs, touch config space.
 * Returns 0/fd or -errno; never logs. Kernel facts: ../shared/KERNEL-FACTS.md.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"

struct vfio_dev {
	int container_fd;
	int group_fd;
	int device_fd;
	int group_id;
	char pci_addr[32];
	uint32_t num_regions;
	uint32_t flags; /* VFIO_DEVICE_FLAGS_* */
};

struct vfio_region {
	uint32_t index;
	uint32_t flags; /* VFIO_REGION_INFO_FLAG_* */
	uint64_t size;
	uint64_t offset; /* of the region in the device fd */
};

/* Opens "dddd:bb:dd.f". ret->*_fd are -EBADF on failure. -ENOENT: no such
 * device or not in an IOMMU group; -EBUSY: group not viable (a device in the
 * group is not bound to vfio-pci) or already in use; -EPERM: no interrupt
 * remapping or no access. */
int vfio_dev_open(const char *pci_addr, struct vfio_dev *ret);
void vfio_dev_close(struct vfio_dev *dev);
/* Takes up a device a previous process opened (the fds come back from
 * systemd's fd store) after checking that they are pci_addr's group, an
 * attached container and a PCI device with pci_addr's ids. Takes the fds
 * only on success. -EXDEV: they belong to another device; -EBADFD: not
 * what they should be. */
int vfio_dev_adopt(const char *pci_addr, int container_fd, int group_fd, int device_fd,
		   struct vfio_dev *ret);

int vfio_region_info(const struct vfio_dev *dev, uint32_t index, struct vfio_region *ret);

/* The BAR a broker should lend by default: the largest 64-bit prefetchable
 * memory BAR (read from config space), else the largest mappable BAR.
 * Returns the BAR index or -ENODEV. */
int vfio_pick_vram_bar(const struct vfio_dev *dev);

/* Returns 0 when the kernel can export dma-bufs of this device, -ENOTTY when
 * the kernel lacks VFIO dma-buf support, -EOPNOTSUPP when the driver does. */
int vfio_dmabuf_probe(const struct vfio_dev *dev);

/* Exports [offset, offset+length) of region bar as a dma-buf; returns its fd
 * (O_CLOEXEC, access mode from open_flags: O_RDWR or O_RDONLY) or -errno. */
int vfio_dmabuf_export(const struct vfio_dev *dev, uint32_t bar, uint64_t offset,
		       uint64_t length, int open_flags);

/* Config space access through the VFIO config region. */
int vfio_config_read(const struct vfio_dev *dev, uint32_t where, void *buf, size_t len);
int vfio_config_write(const struct vfio_dev *dev, uint32_t where, const void *buf, size_t len);
/* Sets or clears PCI_COMMAND_MEMORY: clearing it revokes every dma-buf of the
 * device until it is set again. */
int vfio_set_memory_enable(const struct vfio_dev *dev, bool enable);

/* Maps the whole of region index read/write; *ret_size gets its size. */
int vfio_region_mmap(const struct vfio_dev *dev, uint32_t index, void **ret, uint64_t *ret_size);
/* Zeroes size bytes (a multiple of 8) at p, inside such a mapping: plain
 * 64-bit stores, as uncached MMIO wants. */
void vfio_region_zero(void *p, uint64_t size);

/* Sets the name shown in the dma-buf's fdinfo (DMA_BUF_SET_NAME_B). */
int dmabuf_set_name(int fd, const char *name);
/* Reads the dma-buf's size (lseek end) and fdinfo fields; any may be NULL.
 * ret_count is the number of file references (fdinfo "count"). */
int dmabuf_query(int fd, uint64_t *ret_size, long *ret_count, char *ret_exp_name, size_t exp_name_len);
/* The same fields from fdinfo text already read; -ENOTTY when they are
 * missing (not a dma-buf), -EBADMSG or -ERANGE when count is not a number
 * (then *ret_count is left alone). */
int dmabuf_fdinfo_parse(const char *text, long *ret_count, char *ret_exp_name, size_t exp_name_len);

/* VFIO_DEVICE_FEATURE_PROBE of feature for ops (VFIO_DEVICE_FEATURE_GET and/or
 * _SET): 0 when the kernel has it, -ENOTTY when it does not. */
int vfio_feature_probe(const struct vfio_dev *dev, uint32_t feature, uint32_t ops);

/* The kernel-patches/ series (PROVISIONAL uAPI, common/vfio-uapi.h); stock
 * kernels answer -ENOTTY. Revokes a dma-buf of dev for good: -EBADFD already
 * revoked for good, -ENODEV not a dma-buf of dev. */
int vfio_dmabuf_revoke(const struct vfio_dev *dev, int dmabuf_fd);
/* Sets the memory attribute (VFIO_DEVICE_DMA_BUF_MEMATTR_NC/_WC) later
 * mmap()s of a dma-buf of dev use. */
int vfio_dmabuf_set_memattr(const struct vfio_dev *dev, int dmabuf_fd, uint32_t memattr);
/* 0 when the kernel can mmap() a dma-buf of region bar (exports and maps
 * its first page, touching nothing), -EINVAL when it cannot (stock 7.2). */
int vfio_dmabuf_mmap_probe(const struct vfio_dev *dev, uint32_t bar);

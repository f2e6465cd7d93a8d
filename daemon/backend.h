/* SPDX-License-Identifier: MIT */
/*
 * Device backends: what the broker core needs from a device, and nothing
 * else. The core carves windows and tracks leases; a backend opens the
 * device, exports a window as a dma-buf fd and scrubs a window before reuse.
 * Adding a backend is one file in daemon/backends/ plus a line in backend.c.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/macro.h"

/* Kernel features a device offers (reported to clients in LIST_DEVICES). */
enum {
	DEVICE_FEATURE_DMABUF = 1u << 0, /* windows export as dma-bufs */
	DEVICE_FEATURE_MMAP = 1u << 1,   /* clients may mmap their dma-buf */
	DEVICE_FEATURE_REVOKE = 1u << 2, /* one buffer can be revoked alone */
	DEVICE_FEATURE_MEMATTR_WC = 1u << 3, /* a buffer's CPU mappings can be write-combined */
};

struct backend_device;
struct config_device;

/* What a device really is, as LIST_DEVICES reports it. */
enum backend_kind {
	BACKEND_KIND_VFIO = 1,   /* a vfio-pci device's BAR */
	BACKEND_KIND_SYSMEM = 2, /* system memory (sealed memfd, udmabuf) */
};

/* What a backend can signal on an eventfd. */
enum backend_notify {
	BACKEND_NOTIFY_ERROR,   /* the device reported an error (PCIe AER) */
	BACKEND_NOTIFY_RELEASE, /* the host wants the device back (driver unbind) */
};

struct backend_info {
	char pci_addr[32];
	uint16_t vendor, device;
	uint32_t bar;      /* the BAR lent out */
	uint64_t bar_size;
	uint64_t page_size;
	uint32_t features; /* DEVICE_FEATURE_* */
	uint64_t max_export; /* largest window the kernel exports at once; 0: no limit */
};

/* An fd that keeps a device, and every buffer exported from it, alive:
 * what systemd's fd store holds across a restart (daemon/persist.c). */
#define BACKEND_STORED_MAX 3
struct backend_stored {
	const char *kind; /* "container", "group", "device"; "memory" */
	int fd;
};

struct backend_ops {
	const char *name;
	enum backend_kind kind;
	/* Opens what cfg describes (vfio: cfg->pci, cfg->bar < 0 picks the VRAM
	 * BAR, the largest 64-bit prefetchable; sysmem: cfg->size bytes). */
	int (*open)(const struct config_device *cfg, struct backend_device **ret,
		    struct backend_info *ret_info);
	struct backend_device *(*close)(struct backend_device *dev);
	/* The fds to keep in the fd store (the backend keeps owning them);
	 * returns how many, at most BACKEND_STORED_MAX. */
	size_t (*stored_fds)(struct backend_device *dev, struct backend_stored ret[BACKEND_STORED_MAX]);
	/* Opens cfg's device from the fds a previous barkeepd stored (the same
	 * kinds stored_fds gave), checking that they are the device cfg names:
	 * -EXDEV when not. Takes the fds only on success. */
	int (*adopt)(const struct config_device *cfg, const struct backend_stored *fds, size_t n,
		     struct backend_device **ret, struct backend_info *ret_info);
	/* Returns a new dma-buf fd (O_CLOEXEC) of [offset, offset+size). */
	int (*export)(struct backend_device *dev, uint64_t offset, uint64_t size, int open_flags);
	/* Zeroes a window before it is handed to someone else. */
	int (*scrub)(struct backend_device *dev, uint64_t offset, uint64_t size);
	/* Resets the device with its own reset method (function-level reset);
	 * every dma-buf of it is revoked meanwhile. -EOPNOTSUPP: the device has
	 * none. May block for long (the kernel waits for importers): called on a
	 * worker thread, never while the core uses dev on the loop. */
	int (*reset)(struct backend_device *dev);
	/* Optional (NULL: not offered). Resets the slot or bus the device sits
	 * on, where that touches no device the backend does not own; else
	 * -EOPNOTSUPP. Same threading rules as reset. */
	int (*bus_reset)(struct backend_device *dev);
	/* Turns the BAR's memory decode off or on: off revokes every dma-buf of
	 * the device, on restores them. Same threading rules as reset. */
	int (*set_memory)(struct backend_device *dev, bool enable);
	/* Signals eventfd (the caller's; the kernel keeps its own reference) on
	 * `which`. -errno when the device cannot tell (no AER without PCIe). */
	int (*notify)(struct backend_device *dev, enum backend_notify which, int eventfd);
	/* Optional (NULL: not offered). Revokes one exported buffer for good
	 * (DEVICE_FEATURE_REVOKE): its importers and CPU mappings lose access
	 * before this returns, every copy of fd is dead, other buffers are
	 * untouched. May wait for the buffer's importers (see reset). */
	int (*revoke)(struct backend_device *dev, int fd);
	/* Optional. Later CPU mappings of the buffer are write-combined
	 * (DEVICE_FEATURE_MEMATTR_WC). */
	int (*set_write_combine)(struct backend_device *dev, int fd);
};

extern const struct backend_ops backend_vfio;
extern const struct backend_ops backend_sysmem;

/* The fd of that kind in fds, or -EBADF. */
int backend_stored_find(const struct backend_stored *fds, size_t n, const char *kind);

/* NULL when no backend has that name. */
const struct backend_ops *backend_find(const char *name);

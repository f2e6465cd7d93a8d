/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * bk_observer: a test-only dma-buf importer that makes revocation visible.
 *
 * /dev/bk_observer is a peer-to-peer, revocation-aware dynamic importer
 * (allow_peer2peer, invalidate_mappings). Each open file has up to
 * BK_OBSERVER_MAX_SLOTS slots; a slot holds one dma-buf reference and, while
 * attached, one attachment. Closing the file detaches and frees every slot.
 * Usable from the kernel module and from userspace.
 */
#ifndef BK_OBSERVER_H
#define BK_OBSERVER_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define BK_OBSERVER_DEVICE	"/dev/bk_observer"
#define BK_OBSERVER_MAX_SLOTS	64

/*
 * Attach flag (ATTACH, REATTACH): also map the attachment
 * (dma_buf_map_attachment). VFIO maps only for a PCI importer with a
 * peer-to-peer route to the exporting device, so for the observer's own
 * (non-PCI) device the map fails with EINVAL.
 */
#define BK_OBSERVER_F_MAP	(1u << 0)

/* Slot state bits (STATUS). */
#define BK_OBSERVER_ATTACHED	(1u << 0)	/* an attachment exists */
#define BK_OBSERVER_MAPPED	(1u << 1)	/* and it is mapped */

struct bk_observer_attach {
	__s32 fd;		/* in: a dma-buf file descriptor */
	__u32 flags;		/* in: BK_OBSERVER_F_* */
	__u32 slot;		/* out: slot id, 0 .. BK_OBSERVER_MAX_SLOTS - 1 */
	__u32 pad;		/* must be 0 */
	__u64 size;		/* out: size of the dma-buf in bytes */
};

struct bk_observer_status {
	__u32 slot;		/* in */
	__u32 state;		/* out: BK_OBSERVER_ATTACHED | BK_OBSERVER_MAPPED */
	__u64 invalidations;	/* out: invalidate_mappings calls, all attachments of the slot */
	__u64 attaches;		/* out: successful attaches (ATTACH + REATTACH) */
	__s32 last_error;	/* out: -errno of the last REATTACH, 0 if it worked or none yet */
	__u32 pad;
};

struct bk_observer_reattach {
	__u32 slot;		/* in */
	__u32 flags;		/* in: BK_OBSERVER_F_* */
};

#define BK_OBSERVER_IOC_MAGIC	0xBE

/*
 * ATTACH: dma_buf_get(fd) and dma_buf_dynamic_attach(); on success fills slot
 * and size. Errors: the exporter's attach error (VFIO: ENODEV while revoked,
 * EOPNOTSUPP never here), EINVAL not a dma-buf or bad flags, ENOSPC no free
 * slot, the map error with BK_OBSERVER_F_MAP (the slot is then not kept).
 */
#define BK_OBSERVER_IOC_ATTACH	 _IOWR(BK_OBSERVER_IOC_MAGIC, 1, struct bk_observer_attach)
/* STATUS: the slot's counters and state. ENOENT: no such slot. */
#define BK_OBSERVER_IOC_STATUS	 _IOWR(BK_OBSERVER_IOC_MAGIC, 2, struct bk_observer_status)
/*
 * REATTACH: unmap and detach the slot's attachment if any, then attach again
 * to the same dma-buf. On failure the slot stays, unattached, with last_error
 * set, and the error is returned (VFIO: ENODEV while the buffer is revoked).
 */
#define BK_OBSERVER_IOC_REATTACH _IOW(BK_OBSERVER_IOC_MAGIC, 3, struct bk_observer_reattach)
/* DETACH: unmap, detach, drop the dma-buf reference and free the slot. */
#define BK_OBSERVER_IOC_DETACH	 _IOW(BK_OBSERVER_IOC_MAGIC, 4, __u32)

#endif /* BK_OBSERVER_H */

/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * bk_edu: a test-only peer-to-peer dma-buf importer that really DMAs.
 *
 * bk_edu.ko drives QEMU's "edu" PCI device (1234:11e8) and makes it the
 * "GPU B" of the tests: it imports a dma-buf (a barkeep lease, i.e. a VFIO
 * window of another device's BAR) as a dynamic peer-to-peer importer, maps it
 * for the edu device, and moves bytes between memory and that mapping with
 * edu's DMA engine, so they travel device to device. Each bound edu device
 * gets a misc device /dev/bk_edu<N> (mode 0600), N = 0, 1, ... in probe
 * order. Each open file imports at most one dma-buf at a time. Usable from
 * the kernel module and from userspace.
 */
#ifndef BK_EDU_H
#define BK_EDU_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define BK_EDU_DEVICE_FMT	"/dev/bk_edu%u"
#define BK_EDU_MAX_LEN		4096	/* bytes per WRITE or READ */
/* Bytes per DMA of the engine (see bk_edu.c): a transfer up to this long is one peer DMA. */
#define BK_EDU_CHUNK		4095

/* STATUS state bits */
#define BK_EDU_IMPORTED		(1u << 0)	/* a dma-buf is attached */
#define BK_EDU_MAPPED		(1u << 1)	/* and mapped for the edu device */

/*
 * XFER flags. SEED (WRITE): the bytes are bk_edu_pattern(seed, offset + i).
 * STAGED (WRITE): send what edu's buffer holds from the previous WRITE (no
 * RAM -> edu copy); len must not exceed that WRITE's last chunk, and a READ
 * in between uses the buffer (EINVAL).
 */
#define BK_EDU_F_SEED		(1u << 0)
#define BK_EDU_F_STAGED		(1u << 1)

struct bk_edu_import {
	__s32 fd;		/* in: a dma-buf file descriptor */
	__u32 flags;		/* in: 0 */
	__u64 size;		/* out: size of the dma-buf in bytes */
};

struct bk_edu_xfer {
	__u64 offset;		/* in: byte offset into the dma-buf */
	__u64 data;		/* in: user pointer: WRITE source, READ destination */
	__u32 len;		/* in: 1 .. BK_EDU_MAX_LEN; offset + len <= size */
	__u32 flags;		/* in: BK_EDU_F_* (WRITE only) */
	__u32 seed;		/* in: with BK_EDU_F_SEED */
	__u32 pad;		/* must be 0 */
};

struct bk_edu_status {
	__u32 state;		/* out: BK_EDU_IMPORTED | BK_EDU_MAPPED */
	__s32 last_error;	/* out: -errno of the last failed map, 0 after a good one */
	__u64 size;		/* out: size of the imported dma-buf, 0 if none */
	__u64 invalidations;	/* out: invalidate_mappings calls, all imports of this file */
	__u64 maps;		/* out: successful maps, all imports of this file */
	__u64 last_invalidation_ns; /* out: CLOCK_MONOTONIC time of the last one, 0 if none */
};

struct bk_edu_wait {
	__u64 invalidations;	/* in: wait until the count exceeds this */
	__u32 timeout_ms;	/* in */
	__u32 pad;		/* must be 0 */
};

#define BK_EDU_IOC_MAGIC	0xBD

/*
 * IMPORT: dma_buf_get(fd), dma_buf_dynamic_attach() to the edu device as a
 * peer-to-peer importer with an invalidate_mappings callback, and map it.
 * Errors: EBUSY this file already imports a buffer, EINVAL not a dma-buf or
 * no peer-to-peer route to the exporter (map), ENODEV the buffer is revoked
 * or the edu device is gone; nothing is kept on failure.
 */
#define BK_EDU_IOC_IMPORT	_IOWR(BK_EDU_IOC_MAGIC, 1, struct bk_edu_import)
/* RELEASE: unmap, detach and drop the imported buffer. ENOENT: none. */
#define BK_EDU_IOC_RELEASE	_IO(BK_EDU_IOC_MAGIC, 2)
/*
 * WRITE: DMA len bytes (from data, or the seed's pattern) to offset in the
 * buffer: RAM -> edu's internal buffer -> the peer mapping. READ: the other
 * way, into data. The mapping dropped by an invalidation is re-made first;
 * while the buffer is revoked that fails and so does the call (VFIO: ENODEV),
 * before any byte moves. ENOENT nothing imported, EINVAL bad range or flags,
 * ETIMEDOUT the DMA engine did not finish (the device is then unusable).
 */
#define BK_EDU_IOC_WRITE	_IOW(BK_EDU_IOC_MAGIC, 3, struct bk_edu_xfer)
#define BK_EDU_IOC_READ		_IOW(BK_EDU_IOC_MAGIC, 4, struct bk_edu_xfer)
/* STATUS: counters and state (also without an import). */
#define BK_EDU_IOC_STATUS	_IOR(BK_EDU_IOC_MAGIC, 5, struct bk_edu_status)
/*
 * WAIT: sleep until this file's invalidation count exceeds the given one
 * (returns at once if it already does). ETIMEDOUT, EINTR, ENODEV (device gone).
 */
#define BK_EDU_IOC_WAIT		_IOW(BK_EDU_IOC_MAGIC, 6, struct bk_edu_wait)
/* MAP: re-make a dropped mapping now, without DMA. Errors as for WRITE. */
#define BK_EDU_IOC_MAP		_IO(BK_EDU_IOC_MAGIC, 7)

/* The WRITE pattern: byte at buffer offset pos for seed. */
static inline __u8 bk_edu_pattern(__u32 seed, __u64 pos)
{
	__u32 x = seed ^ ((__u32)pos * 0x9e3779b1u) ^ (__u32)(pos >> 32);

	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return (__u8)x;
}

#endif /* BK_EDU_H */

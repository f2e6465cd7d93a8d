/* SPDX-License-Identifier: MIT */
/*
 * The VFIO dma-buf uAPI (Linux 6.19+). Build hosts may carry older uapi
 * headers than the kernel we run on, so the few definitions are carried
 * here when <linux/vfio.h> lacks them. Values match Linux 7.2.
 */
#pragma once

#include <linux/types.h>
#include <linux/vfio.h>
#include <linux/dma-buf.h>

#ifndef VFIO_DEVICE_FEATURE_DMA_BUF
#define VFIO_DEVICE_FEATURE_DMA_BUF 11

struct vfio_region_dma_range {
	__u64 offset;
	__u64 length;
};

struct vfio_device_feature_dma_buf {
	__u32 region_index;
	__u32 open_flags;
	__u32 flags;
	__u32 nr_ranges;
	struct vfio_region_dma_range dma_ranges[];
};
#endif

/*
 * PROVISIONAL features of the kernel-patches/ series (not in mainline Linux;
 * the numbers may change when merged). A stock 7.2 kernel answers ENOTTY.
 */
#ifndef VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE
struct vfio_device_feature_dma_buf_revoke {
	__s32 dmabuf_fd;
};
#define VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE 13
#endif

#ifndef VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR
struct vfio_device_feature_dma_buf_memattr {
	__s32 dmabuf_fd;
	__u32 memattr;
#define VFIO_DEVICE_DMA_BUF_MEMATTR_NC 0
#define VFIO_DEVICE_DMA_BUF_MEMATTR_WC 1
};
#define VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR 14
#endif

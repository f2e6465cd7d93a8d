// SPDX-License-Identifier: MIT
#include <stddef.h>
#include <drm_fourcc.h>

#include "common/fourcc.h"
#include "common/macro.h"

#define PACKED(f, c) { DRM_FORMAT_##f, 1, { c }, 1, 1 }
#define YUV2(f, c0, c1, h, v) { DRM_FORMAT_##f, 2, { c0, c1 }, h, v }
#define YUV3(f, h, v) { DRM_FORMAT_##f, 3, { 1, 1, 1 }, h, v }

static const struct fourcc_info formats[] = {
	PACKED(C8, 1), PACKED(R8, 1), PACKED(R16, 2), PACKED(RG88, 2), PACKED(GR88, 2),
	PACKED(RGB565, 2), PACKED(BGR565, 2), PACKED(XRGB1555, 2), PACKED(ARGB1555, 2),
	PACKED(XRGB4444, 2), PACKED(ARGB4444, 2),
	PACKED(RGB888, 3), PACKED(BGR888, 3),
	PACKED(XRGB8888, 4), PACKED(ARGB8888, 4), PACKED(XBGR8888, 4), PACKED(ABGR8888, 4),
	PACKED(RGBX8888, 4), PACKED(RGBA8888, 4), PACKED(BGRX8888, 4), PACKED(BGRA8888, 4),
	PACKED(XRGB2101010, 4), PACKED(ARGB2101010, 4), PACKED(XBGR2101010, 4),
	PACKED(ABGR2101010, 4),
	PACKED(XRGB16161616F, 8), PACKED(ARGB16161616F, 8), PACKED(XBGR16161616F, 8),
	PACKED(ABGR16161616F, 8), PACKED(XBGR16161616, 8), PACKED(ABGR16161616, 8),
	/* Packed YUV 4:2:2: one 4-byte block per two pixels, counted as 2 per pixel. */
	{ DRM_FORMAT_YUYV, 1, { 2 }, 2, 1 }, { DRM_FORMAT_YVYU, 1, { 2 }, 2, 1 },
	{ DRM_FORMAT_UYVY, 1, { 2 }, 2, 1 }, { DRM_FORMAT_VYUY, 1, { 2 }, 2, 1 },
	PACKED(AYUV, 4), PACKED(XYUV8888, 4),
	YUV2(NV12, 1, 2, 2, 2), YUV2(NV21, 1, 2, 2, 2), YUV2(NV16, 1, 2, 2, 1),
	YUV2(NV61, 1, 2, 2, 1), YUV2(NV24, 1, 2, 1, 1), YUV2(NV42, 1, 2, 1, 1),
	YUV2(P010, 2, 4, 2, 2), YUV2(P012, 2, 4, 2, 2), YUV2(P016, 2, 4, 2, 2),
	YUV3(YUV420, 2, 2), YUV3(YVU420, 2, 2), YUV3(YUV422, 2, 1), YUV3(YVU422, 2, 1),
	YUV3(YUV444, 1, 1), YUV3(YVU444, 1, 1),
};

const struct fourcc_info *fourcc_info(uint32_t fourcc)
{
	for (size_t i = 0; i < ARRAY_SIZE(formats); i++)
		if (formats[i].fourcc == fourcc)
			return &formats[i];
	return NULL;
}

uint32_t fourcc_plane_height(const struct fourcc_info *f, unsigned plane, uint32_t height)
{
	return plane == 0 ? height : (uint32_t)((height + f->vsub - 1u) / f->vsub);
}

uint64_t fourcc_plane_min_stride(const struct fourcc_info *f, unsigned plane, uint32_t width)
{
	/* Packed 4:2:2 has whole two-pixel blocks; planar chroma is narrower. */
	uint64_t w = f->n_planes == 1 ? ALIGN_UP((uint64_t)width, f->hsub)
		   : plane == 0       ? width
				      : ((uint64_t)width + f->hsub - 1) / f->hsub;
	return w * f->cpp[plane < 3 ? plane : 0];
}

uint64_t fourcc_plane_end(const struct fourcc_info *f, unsigned plane, uint32_t height,
			  uint32_t offset, uint32_t stride)
{
	return (uint64_t)offset + (uint64_t)stride * fourcc_plane_height(f, plane, height);
}

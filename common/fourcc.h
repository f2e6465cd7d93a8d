/* SPDX-License-Identifier: MIT */
/*
 * The DRM formats barkeep knows the layout of: planes, bytes per pixel and
 * chroma subsampling. libdrm 2.4.114 names formats (drmGetFormatName) but
 * has no layout table, so this is the one place that knows it; the daemon
 * checks image metadata with it at ALLOC and libbarkeep before an import.
 */
#pragma once

#include <stdint.h>

struct fourcc_info {
	uint32_t fourcc;
	uint8_t n_planes;
	uint8_t cpp[3];     /* bytes per pixel (per sample block) of each plane */
	uint8_t hsub, vsub; /* chroma subsampling of planes after the first */
};

/* NULL when the format is not in the table. */
const struct fourcc_info *fourcc_info(uint32_t fourcc);
/* Rows and the least stride (bytes) of a plane of a width x height image. */
uint32_t fourcc_plane_height(const struct fourcc_info *f, unsigned plane, uint32_t height);
uint64_t fourcc_plane_min_stride(const struct fourcc_info *f, unsigned plane, uint32_t width);
/* Bytes from the start of the buffer to the end of the plane. */
uint64_t fourcc_plane_end(const struct fourcc_info *f, unsigned plane, uint32_t height,
			  uint32_t offset, uint32_t stride);

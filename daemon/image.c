// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <drm_fourcc.h>
#include <xf86drm.h>

#include "common/fourcc.h"
#include "daemon/image.h"

/* "XR24" for a format libdrm can name, else the code in hex. */
static int format_error(struct error_info *err, uint32_t fourcc, const char *what)
{
	char *name = drmGetFormatName(fourcc);
	int r = error_set(err, EINVAL, "image format %s (%#010x) %s", name ? name : "?",
			  fourcc, what);
	free(name);
	return r;
}

int image_check(const struct lease_image *img, uint64_t lease_size, struct error_info *err)
{
	if (img->n_planes < 1 || img->n_planes > 4)
		return error_set(err, EINVAL, "image has %u planes; an image has 1 to 4", img->n_planes);
	if (img->width == 0 || img->height == 0)
		return error_set(err, EINVAL, "image is %ux%u; width and height must not be 0",
				 img->width, img->height);
	if (img->modifier != DRM_FORMAT_MOD_LINEAR) {
		char *name = drmGetFormatModifierName(img->modifier);
		int r = error_set(err, EINVAL, "image modifier %s (%#llx) is not supported: "
				  "barkeep windows are linear (DRM_FORMAT_MOD_LINEAR, 0)",
				  name ? name : "?", (unsigned long long)img->modifier);
		free(name);
		return r;
	}
	const struct fourcc_info *f = fourcc_info(img->fourcc);
	if (!f)
		return format_error(err, img->fourcc, "is not one barkeepd knows the layout of");
	if (img->n_planes != f->n_planes) {
		char what[64];
		snprintf(what, sizeof(what), "has %u plane%s; the image says %u", f->n_planes,
			 f->n_planes == 1 ? "" : "s", img->n_planes);
		return format_error(err, img->fourcc, what);
	}
	for (unsigned i = 0; i < 4; i++) {
		uint32_t off = img->offsets[i], stride = img->strides[i];

		if (i >= img->n_planes) {
			if (off || stride)
				return error_set(err, EINVAL, "image plane %u is not used but has "
						 "offset %u and stride %u; both must be 0", i, off, stride);
			continue;
		}
		uint64_t min = fourcc_plane_min_stride(f, i, img->width);
		if (stride < min)
			return error_set(err, EINVAL, "image plane %u: stride %u is less than one row "
					 "of %u pixels (%llu bytes)", i, stride, img->width,
					 (unsigned long long)min);
		uint64_t end = fourcc_plane_end(f, i, img->height, off, stride);
		if (end > lease_size)
			return error_set(err, EINVAL, "image plane %u (offset %u + stride %u x %u rows "
					 "= %llu bytes) does not fit the lease's %llu bytes", i, off,
					 stride, fourcc_plane_height(f, i, img->height),
					 (unsigned long long)end, (unsigned long long)lease_size);
	}
	return 0;
}

// SPDX-License-Identifier: MIT
/* Image metadata checks at ALLOC (daemon/image.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <drm_fourcc.h>

#include "daemon/image.h"
#include "tests/unit/unit.h"

#define PAGE 4096ull

/* image_check() refuses img with EINVAL and a sentence containing want. */
#define CHECK_REFUSED(img, size, want)                                                   \
	do {                                                                             \
		struct error_info _e = {};                                               \
		CHECK_EQ(image_check(&(img), (size), &_e), -EINVAL);                     \
		CHECK_EQ(_e.code, EINVAL);                                               \
		if (!strstr(_e.text, (want))) {                                          \
			fprintf(stderr, "  %s:%d: \"%s\" lacks \"%s\"\n", __FILE__,      \
				__LINE__, _e.text, (want));                              \
			unit_case_failed = 1;                                            \
		}                                                                        \
	} while (0)

static struct lease_image xrgb(uint32_t w, uint32_t h, uint32_t stride)
{
	return (struct lease_image){ .fourcc = DRM_FORMAT_XRGB8888, .width = w, .height = h,
				     .n_planes = 1, .modifier = DRM_FORMAT_MOD_LINEAR,
				     .strides = { stride } };
}

static void test_accepts_common_layouts(void)
{
	struct lease_image a = xrgb(256, 256, 1024);
	CHECK_EQ(image_check(&a, 256 * 1024, NULL), 0);
	a = xrgb(100, 10, 512); /* padded rows */
	CHECK_EQ(image_check(&a, PAGE * 2, NULL), 0);
	struct lease_image nv12 = { .fourcc = DRM_FORMAT_NV12, .width = 1920, .height = 1080,
				    .n_planes = 2, .strides = { 1920, 1920 },
				    .offsets = { 0, 1920 * 1080 } };
	CHECK_EQ(image_check(&nv12, 1920 * 1080 * 3 / 2, NULL), 0);
	struct lease_image yuv = { .fourcc = DRM_FORMAT_YUV420, .width = 63, .height = 33,
				   .n_planes = 3, .strides = { 64, 32, 32 },
				   .offsets = { 0, 64 * 33, 64 * 33 + 32 * 17 } };
	CHECK_EQ(image_check(&yuv, PAGE, NULL), 0);
	struct lease_image yuyv = { .fourcc = DRM_FORMAT_YUYV, .width = 3, .height = 1,
				    .n_planes = 1, .strides = { 8 } };
	CHECK_EQ(image_check(&yuyv, PAGE, NULL), 0);
}

static void test_plane_count(void)
{
	struct lease_image a = xrgb(16, 16, 64);
	a.n_planes = 0;
	CHECK_REFUSED(a, PAGE, "image has 0 planes; an image has 1 to 4");
	a.n_planes = 5;
	CHECK_REFUSED(a, PAGE, "image has 5 planes");
	a.n_planes = 2;
	a.strides[1] = 64;
	CHECK_REFUSED(a, PAGE, "image format XR24 (0x34325258) has 1 plane; the image says 2");
	a = xrgb(16, 16, 64);
	a.offsets[2] = 4;
	CHECK_REFUSED(a, PAGE, "image plane 2 is not used but has offset 4 and stride 0");
}

static void test_format_and_modifier(void)
{
	struct lease_image a = xrgb(16, 16, 64);
	a.fourcc = fourcc_code('Z', 'Z', 'Z', 'Z');
	CHECK_REFUSED(a, PAGE, "image format ZZZZ (0x5a5a5a5a) is not one barkeepd knows");
	a = xrgb(16, 16, 64);
	a.modifier = I915_FORMAT_MOD_X_TILED;
	CHECK_REFUSED(a, PAGE, "is not supported: barkeep windows are linear");
	a = xrgb(0, 16, 64);
	CHECK_REFUSED(a, PAGE, "image is 0x16; width and height must not be 0");
}

static void test_stride_and_size(void)
{
	struct lease_image a = xrgb(256, 256, 1000);
	CHECK_REFUSED(a, 1 << 20, "image plane 0: stride 1000 is less than one row of 256 pixels (1024 bytes)");
	a = xrgb(256, 256, 1024);
	CHECK_REFUSED(a, 256 * 1024 - PAGE,
		      "image plane 0 (offset 0 + stride 1024 x 256 rows = 262144 bytes) does not fit the lease's 258048 bytes");
	a.offsets[0] = 1;
	CHECK_REFUSED(a, 256 * 1024, "= 262145 bytes) does not fit");
	/* No overflow: 32-bit stride times 32-bit height is done in 64 bits. */
	a = xrgb(1, 0xffffffffu, 0xffffffffu);
	CHECK_REFUSED(a, 1ull << 40, "does not fit the lease's 1099511627776 bytes");
	struct lease_image nv12 = { .fourcc = DRM_FORMAT_NV12, .width = 64, .height = 64,
				    .n_planes = 2, .strides = { 64, 32 }, .offsets = { 0, 4096 } };
	CHECK_REFUSED(nv12, 2 * PAGE, "image plane 1: stride 32 is less than one row of 64 pixels (64 bytes)");
	nv12.strides[1] = 64;
	nv12.offsets[1] = 4096 + 2048 + 1;
	CHECK_REFUSED(nv12, 2 * PAGE, "image plane 1 (offset 6145 + stride 64 x 32 rows = 8193 bytes)");
}

int main(void)
{
	RUN(test_accepts_common_layouts);
	RUN(test_plane_count);
	RUN(test_format_and_modifier);
	RUN(test_stride_and_size);
	return UNIT_END();
}

// SPDX-License-Identifier: MIT
/*
 * Client interop on a real kernel: run inside the VM against a running
 * daemon (tests/vm/suites/60-interop.sh writes its config). Usage:
 *   interop_test SOCKET DAEMON_PID
 * Device 0 is a VFIO GPU (64 MiB BAR), device 1 a 128 MiB sysmem device.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <drm_fourcc.h>
#include <gbm.h>
#include <xf86drm.h>

#include "client/lib/barkeep.h"
#include "common/vfio.h"
#include "tests/lib/vmtest.h"
#include "tests/lib/testlib.h"
#include "tests/unit/unit.h"

#define MiB (1ull << 20)
#define GPU 0u
#define MEM 1u
#define W 256u
#define H 256u
#define STRIDE (W * 4)

static const char *sock_path;

static struct barkeep *conn(const char *name)
{
	return test_connect(sock_path, name);
}

static int alloc_on(struct barkeep *bk, uint32_t dev, uint64_t size, struct barkeep_lease **ret)
{
	int r = test_alloc_on(bk, dev, size, ret);
	if (r < 0)
		fprintf(stderr, "  alloc: %s\n", barkeep_error_message(bk));
	return r;
}

static void wait_sweep(void)
{
	usleep(800 * 1000); /* a few of the daemon's 250 ms sweeps */
}

/* LIST_DEVICES says what each device really is. */
static void test_list_devices(void)
{
	struct barkeep_device *d = test_devices(sock_path, 2);
	CHECK(d);
	if (!d)
		return;
	CHECK_EQ(d[0].backend, BARKEEP_BACKEND_VFIO);
	CHECK(strcmp(d[0].pci_address, "0000:00:03.0") == 0);
	CHECK(!(d[0].features & BARKEEP_FEATURE_DMABUF_MMAP));
	CHECK_EQ(d[1].backend, BARKEEP_BACKEND_SYSMEM);
	CHECK(strcmp(d[1].pci_address, "") == 0);
	CHECK_EQ(d[1].pci_vendor, 0);
	CHECK_EQ(d[1].bar_size, 128 * MiB);
	CHECK_EQ(d[1].free_bytes, 128 * MiB);
	CHECK(d[1].features & BARKEEP_FEATURE_DMABUF_EXPORT);
	CHECK(d[1].features & BARKEEP_FEATURE_DMABUF_MMAP);
	CHECK(strcmp(d[1].label, "system memory") == 0);
	free(d);
}

/* A sysmem lease is a udmabuf dma-buf of the asked (page-rounded) size. */
static void test_sysmem_lease_fd(void)
{
	struct barkeep *bk = conn("fd");
	struct barkeep_lease *l;
	uint64_t size = 0;
	long count = 0;
	char exp[64] = "";
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(alloc_on(bk, MEM, 3 * MiB + 1, &l), 0);
	CHECK_EQ(dmabuf_query(l->fd, &size, &count, exp, sizeof(exp)), 0);
	CHECK_EQ(size, 3 * MiB + 4096);
	CHECK_EQ(l->size, 3 * MiB + 4096);
	CHECK(strcmp(exp, "udmabuf") == 0);
	CHECK_EQ(count, 2); /* ours and the daemon's */
	barkeep_release(bk, l);
	barkeep_disconnect(bk);
}

/* udmabuf exports at most size_limit_mb at once: said before carving. */
static void test_sysmem_export_limit(void)
{
	struct barkeep *bk = conn("limit");
	struct barkeep_lease *l;
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(alloc_on(bk, MEM, 65 * MiB, &l), -E2BIG);
	CHECK(strstr(barkeep_error_message(bk), "at most 64 MiB at once (udmabuf's size_limit_mb)"));
	CHECK_EQ(test_free_bytes(bk, MEM), 128 * MiB);
	CHECK_EQ(alloc_on(bk, MEM, 64 * MiB, &l), 0);
	barkeep_release(bk, l);
	barkeep_disconnect(bk);
}

static int map_fill(int fd, uint64_t size, uint8_t v)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	memset(p, v, size);
	munmap(p, size);
	return 0;
}

/* 1 when every byte of the buffer is v. */
static int map_all(int fd, uint64_t size, uint8_t v)
{
	const uint8_t *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	int ok = 1;
	if (p == MAP_FAILED)
		return -errno;
	for (uint64_t i = 0; i < size && ok; i++)
		ok = p[i] == v;
	munmap((void *)p, size);
	return ok;
}

/* The reuse rule on udmabuf: fdinfo's count includes a passed-on copy, so
 * the window waits until the third process closes it, then is zeroed and
 * handed out again. */
static void test_sysmem_reuse(void)
{
	struct barkeep *b = conn("neighbour");
	struct barkeep_lease *a, *again;
	CHECK(b);
	if (!b)
		return;
	struct barkeep *owner = conn("owner");
	/* A listing waits for windows earlier tests released to be zeroed:
	 * then the first fit is the same window before and after. */
	(void)test_free_bytes(b, MEM);
	CHECK_EQ(alloc_on(owner, MEM, MiB, &a), 0);
	uint64_t x = a->bar_offset, before = test_free_bytes(b, MEM);
	CHECK_EQ(map_fill(a->fd, MiB, 0xa5), 0);

	int sock = -1;
	pid_t holder = test_holder_start(a->fd, &sock);
	CHECK(holder > 0);
	barkeep_lease_free(a);
	barkeep_disconnect(owner);
	wait_sweep();
	CHECK_EQ(test_free_bytes(b, MEM), before); /* still out of use */

	CHECK_EQ(test_holder_release(holder, sock), 0); /* the third process closed it */
	wait_sweep();
	CHECK_EQ(test_free_bytes(b, MEM), before + MiB);
	CHECK_EQ(alloc_on(b, MEM, MiB, &again), 0);
	CHECK_EQ(again->bar_offset, x);       /* reused */
	CHECK_EQ(map_all(again->fd, MiB, 0), 1); /* and scrubbed */
	barkeep_release(b, again);
	barkeep_disconnect(b);
}

/* A W x H XRGB8888 image lease. */
static int alloc_image(struct barkeep *bk, uint32_t dev, struct barkeep_lease **ret)
{
	struct barkeep_image im = { .fourcc = DRM_FORMAT_XRGB8888, .width = W, .height = H,
				    .n_planes = 1, .modifier = DRM_FORMAT_MOD_LINEAR,
				    .strides = { STRIDE } };
	struct barkeep_alloc_params p = { .by_id = true, .device_id = dev,
					  .size = (uint64_t)STRIDE * H, .image = &im };
	int r = barkeep_alloc(bk, &p, ret);
	if (r < 0)
		fprintf(stderr, "  alloc image: %s\n", barkeep_error_message(bk));
	return r;
}

static uint32_t pixel(uint32_t x, uint32_t y)
{
	return 0xff000000u | (x << 16) | (y << 8) | ((x ^ y) & 0xff);
}

/* Mesa's loader tells stderr at length that vgem has no DRI driver before
 * it falls back to kms_swrast: expected here, so not shown. */
static struct gbm_device *quiet_gbm_create_device(int drm)
{
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	fflush(stderr);
	if (saved >= 0 && null >= 0)
		dup2(null, STDERR_FILENO);
	struct gbm_device *gbm = gbm_create_device(drm);
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	if (null >= 0)
		close(null);
	return gbm;
}

/* The reader: maps the buffer it was sent and checks every pixel, and
 * imports it into gbm on vgem. Exit status 0 when all is right. */
static int reader(int sock)
{
	int fd = test_recv_fd(sock);
	if (fd < 0)
		return 1;
	const uint32_t *px = mmap(NULL, (size_t)STRIDE * H, PROT_READ, MAP_SHARED, fd, 0);
	if (px == MAP_FAILED)
		return 2;
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++)
			if (px[y * W + x] != pixel(x, y))
				return 3;
	struct barkeep_lease l = { .fd = fd, .size = (uint64_t)STRIDE * H, .has_image = true,
				   .image = { .fourcc = DRM_FORMAT_XRGB8888, .width = W, .height = H,
					      .n_planes = 1, .strides = { STRIDE } } };
	int drm = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	struct gbm_device *gbm = drm >= 0 ? quiet_gbm_create_device(drm) : NULL;
	struct gbm_bo *bo;
	if (!gbm || barkeep_import_gbm(&l, gbm, GBM_BO_USE_RENDERING, &bo, NULL) < 0)
		return 4;
	gbm_bo_destroy(bo);
	gbm_device_destroy(gbm);
	return write(sock, "k", 1) == 1 ? 0 : 5;
}

/* Pixels written through barkeep_lease_mmap() by one process are read by
 * another that received the buffer over SCM_RIGHTS. */
static void test_mmap_shared_pixels(void)
{
	struct barkeep *bk = conn("writer");
	struct barkeep_lease *l;
	const char *msg = NULL;
	uint32_t *px = NULL;
	int sv[2], st;
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(alloc_image(bk, MEM, &l), 0);
	CHECK_EQ(barkeep_lease_mmap(l, PROT_READ | PROT_WRITE, (void **)&px, &msg), 0);
	if (!px) {
		fprintf(stderr, "  mmap: %s\n", msg ? msg : "?");
		return;
	}
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++)
			px[y * W + x] = pixel(x, y);
	CHECK_EQ(barkeep_lease_munmap(l, px), 0);

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid_t child = fork();
	if (child == 0) {
		close(sv[0]);
		_exit(reader(sv[1]));
	}
	close(sv[1]);
	CHECK_EQ(test_send_fd(sv[0], l->fd), 0);
	waitpid(child, &st, 0);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
	close(sv[0]);
	barkeep_release(bk, l);
	barkeep_disconnect(bk);
}

/* Stock 7.2 cannot mmap a VFIO dma-buf: a sentence, not a mystery. */
static void test_mmap_vfio_refused(void)
{
	struct barkeep *bk = conn("vfio-map");
	struct barkeep_lease *l;
	const char *msg = NULL;
	void *p = NULL;
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(alloc_on(bk, GPU, MiB, &l), 0);
	CHECK_EQ(barkeep_lease_mmap(l, PROT_READ, &p, &msg), -EINVAL);
	CHECK(msg && strstr(msg, "cannot map this dma-buf for the CPU"));
	barkeep_release(bk, l);
	barkeep_disconnect(bk);
}

static struct gbm_device *gbm_on(const char *node, int *ret_fd)
{
	*ret_fd = open(node, O_RDWR | O_CLOEXEC);
	struct gbm_device *gbm = *ret_fd >= 0 ? quiet_gbm_create_device(*ret_fd) : NULL;
	if (!gbm)
		fprintf(stderr, "  gbm_create_device(%s) failed\n", node);
	return gbm;
}

/* gbm on vgem (Mesa falls back to kms_swrast: there is no vgem DRI driver)
 * takes a sysmem image lease with the lease's own stride and size. */
static void test_gbm_sysmem(void)
{
	static const char *const nodes[] = { "/dev/dri/card0", "/dev/dri/renderD128" };
	struct barkeep *bk = conn("gbm");
	struct barkeep_lease *l;
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(alloc_image(bk, MEM, &l), 0);
	for (size_t i = 0; i < 2; i++) {
		int drm;
		struct gbm_device *gbm = gbm_on(nodes[i], &drm);
		struct gbm_bo *bo = NULL;
		const char *msg = NULL;
		CHECK(gbm);
		if (!gbm)
			continue;
		CHECK_EQ(barkeep_import_gbm(l, gbm, GBM_BO_USE_RENDERING, &bo, &msg), 0);
		if (bo) {
			printf("  %s: gbm backend %s, bo %ux%u stride %u format %#x\n", nodes[i],
			       gbm_device_get_backend_name(gbm), gbm_bo_get_width(bo),
			       gbm_bo_get_height(bo), gbm_bo_get_stride(bo), gbm_bo_get_format(bo));
			CHECK_EQ(gbm_bo_get_width(bo), W);
			CHECK_EQ(gbm_bo_get_height(bo), H);
			CHECK_EQ(gbm_bo_get_stride(bo), STRIDE);
			CHECK_EQ(gbm_bo_get_format(bo), DRM_FORMAT_XRGB8888);
			gbm_bo_destroy(bo);
		} else {
			fprintf(stderr, "  %s: %s\n", nodes[i], msg ? msg : "?");
		}
		uint32_t handle;
		CHECK_EQ(barkeep_import_prime(l, drm, &handle, NULL), 0);
		gbm_device_destroy(gbm);
		close(drm);
	}
	barkeep_release(bk, l);
	barkeep_disconnect(bk);
}

/* vgem refuses a VFIO image lease through gbm and PRIME alike. */
static void test_gbm_vfio_refused(void)
{
	struct barkeep *bk = conn("gbm-vfio");
	struct barkeep_lease *l;
	struct gbm_bo *bo = NULL;
	const char *msg = NULL;
	uint32_t handle;
	int drm;
	struct gbm_device *gbm = gbm_on("/dev/dri/card0", &drm);
	CHECK(bk && gbm);
	if (!bk || !gbm)
		return;
	CHECK_EQ(alloc_image(bk, GPU, &l), 0);
	CHECK_EQ(barkeep_import_gbm(l, gbm, GBM_BO_USE_RENDERING, &bo, &msg), -EOPNOTSUPP);
	CHECK(!bo);
	CHECK(msg && strstr(msg, "cannot import peer-to-peer VFIO buffers"));
	printf("  gbm on vgem, VFIO lease: %s\n", msg ? msg : "(no message)");
	msg = NULL;
	CHECK_EQ(barkeep_import_prime(l, drm, &handle, &msg), -EOPNOTSUPP);
	CHECK(msg && strstr(msg, "cannot import peer-to-peer VFIO buffers"));
	barkeep_release(bk, l);
	gbm_device_destroy(gbm);
	close(drm);
	barkeep_disconnect(bk);
}

/* What barkeep_import_gbm() says before gbm is even asked. */
static void test_gbm_explains(void)
{
	struct barkeep *bk = conn("gbm-explain");
	struct barkeep_lease *plain, *img;
	struct gbm_bo *bo = NULL;
	const char *msg = NULL;
	int drm;
	struct gbm_device *gbm = gbm_on("/dev/dri/card0", &drm);
	CHECK(bk && gbm);
	if (!bk || !gbm)
		return;
	CHECK_EQ(alloc_on(bk, MEM, MiB, &plain), 0);
	CHECK_EQ(barkeep_import_gbm(plain, gbm, 0, &bo, &msg), -EINVAL);
	CHECK(msg && strstr(msg, "no image metadata"));
	CHECK_EQ(alloc_image(bk, MEM, &img), 0);
	img->image.height = 2 * H; /* as if the metadata lied */
	CHECK_EQ(barkeep_import_gbm(img, gbm, 0, &bo, &msg), -EINVAL);
	CHECK(msg && strstr(msg, "does not fit the lease's 262144 bytes"));
	printf("  %s\n", msg ? msg : "(no message)");
	barkeep_release(bk, plain);
	barkeep_release(bk, img);
	gbm_device_destroy(gbm);
	close(drm);
	barkeep_disconnect(bk);
}

/* The daemon checks image metadata at ALLOC, with sentences. */
static void test_alloc_image_checked(void)
{
	struct barkeep *bk = conn("image-check");
	struct barkeep_lease *l;
	struct barkeep_image im = { .fourcc = DRM_FORMAT_XRGB8888, .width = W, .height = H,
				    .n_planes = 1, .strides = { STRIDE - 4 } };
	struct barkeep_alloc_params p = { .by_id = true, .device_id = MEM,
					  .size = (uint64_t)STRIDE * H, .image = &im };
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(barkeep_alloc(bk, &p, &l), -EINVAL);
	CHECK(strstr(barkeep_error_message(bk), "stride 1020 is less than one row of 256 pixels (1024 bytes)"));
	im.strides[0] = STRIDE;
	im.modifier = I915_FORMAT_MOD_Y_TILED;
	CHECK_EQ(barkeep_alloc(bk, &p, &l), -EINVAL);
	CHECK(strstr(barkeep_error_message(bk), "barkeep windows are linear"));
	im.modifier = DRM_FORMAT_MOD_LINEAR;
	im.height = H + 1; /* one row more than the lease holds */
	CHECK_EQ(barkeep_alloc(bk, &p, &l), -EINVAL);
	printf("  %s\n", barkeep_error_message(bk));
	CHECK(strstr(barkeep_error_message(bk), "does not fit the lease's 262144 bytes"));
	p.size += STRIDE;
	CHECK_EQ(barkeep_alloc(bk, &p, &l), 0); /* 257 rows in 65 pages */
	barkeep_release(bk, l);
	CHECK_EQ(test_free_bytes(bk, MEM), 128 * MiB);
	barkeep_disconnect(bk);
}

/* A sysmem device has nothing to reset and udmabuf cannot revoke: an admin
 * reset pauses and resumes it, and the buffers keep working. */
static void test_sysmem_reset(void)
{
	struct barkeep *bk = conn("reset");
	struct barkeep_lease *l;
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(alloc_on(bk, MEM, MiB, &l), 0);
	CHECK_EQ(map_fill(l->fd, MiB, 0x5a), 0);
	CHECK_EQ(barkeep_reset(bk, MEM, true, 0), 0);
	CHECK_EQ(map_all(l->fd, MiB, 0x5a), 1);
	struct barkeep_device *d;
	size_t n = 0;
	CHECK_EQ(barkeep_list_devices(bk, &d, &n), 0);
	if (n == 2) {
		CHECK_EQ(d[1].state, BARKEEP_DEVICE_READY);
		CHECK_EQ(d[1].generation, 2);
		free(d);
	}
	barkeep_release(bk, l);
	barkeep_disconnect(bk);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: interop_test SOCKET DAEMON_PID\n");
		return 2;
	}
	sock_path = argv[1];

	RUN(test_list_devices);
	RUN(test_sysmem_lease_fd);
	RUN(test_sysmem_export_limit);
	RUN(test_sysmem_reuse);
	RUN(test_mmap_shared_pixels);
	RUN(test_mmap_vfio_refused);
	RUN(test_gbm_sysmem);
	RUN(test_gbm_vfio_refused);
	RUN(test_gbm_explains);
	RUN(test_alloc_image_checked);
	RUN(test_sysmem_reset);
	return UNIT_END();
}

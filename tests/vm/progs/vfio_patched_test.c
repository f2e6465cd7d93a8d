/* SPDX-License-Identifier: MIT */
/*
 * vfio_patched_test: the kernel-patches/ series in the guest, with the patched
 * vfio-pci-core.ko loaded (suite 30-kernel-patches). Selftest style: one
 * "ok   NAME" / "FAIL NAME: why" line per check, then "N passed, N failed".
 *  - mmap() of a VFIO dma-buf: reads and writes reach the BAR (the host's
 *    backing file $BARKEEP_VRAM_DIR/gpu0), several ranges, offsets, errors;
 *  - memory decode off: the mapping faults (SIGBUS), mmap fails ENODEV, and
 *    access comes back when decode is enabled again;
 *  - VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE kills exactly one buffer (mapping,
 *    bk_observer's attachment) and leaves another one of the device alone,
 *    also across a memory-decode cycle;
 *  - VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR: GET/SET, WC mappings still reach
 *    the BAR;
 *  - the documented errnos for bad inputs of both features;
 *  - closing the device kills every buffer.
 * Needs two GPUs ($BARKEEP_GPUS) for the other-device checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/udmabuf.h>

#include "common/macro.h"
#include "common/vfio.h"
#include "common/vfio-uapi.h"
#include "tests/kmod/bk_observer.h"
#include "tests/lib/report.h"
#include "tests/lib/vmtest.h"

#define KiB 1024ULL
#define MiB (1024ULL * 1024ULL)
#define PAGE 4096ULL

/* r: a -errno style result (0 or negative). */
static void expect_err(const char *name, int r, int want)
{
	if (r >= 0 && want != 0)
		test_fail(name, "succeeded, expected %s", strerrorname_np(want));
	else if (r > 0)
		test_fail(name, "returned %d, expected 0", r);
	else if (r < 0 && -r != want)
		test_fail(name, "failed with %s (%s), expected %s", strerrorname_np(-r),
			  strerror(-r),
			  want ? strerrorname_np(want) : "success");
	else
		test_ok(name);
}

static void fill_pattern(uint8_t *buf, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

/* ---- the devices ---------------------------------------------------------- */

static struct vfio_dev gpu0 = { .container_fd = -EBADF, .group_fd = -EBADF, .device_fd = -EBADF };
static struct vfio_dev gpu1 = { .container_fd = -EBADF, .group_fd = -EBADF, .device_fd = -EBADF };
static int bar0, bar1 = -1; /* VRAM BAR of gpu0, gpu1 */
static int vram_fd = -EBADF;  /* host backing file of gpu0's VRAM BAR, O_RDWR */

static void *map_buf(int fd, size_t len, off_t off)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);

	return p == MAP_FAILED ? NULL : p;
}

/* mmap result as 0 / -errno, unmapping on success. */
static int try_map(int fd, size_t len, int flags, off_t off)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, off);

	if (p == MAP_FAILED)
		return -errno;
	munmap(p, len);
	return 0;
}

/* Writes a pattern through p and checks the host file at file_off, then the
 * other way round. */
static void check_reaches_bar(const char *name, volatile uint8_t *p, uint64_t file_off, size_t n)
{
	uint8_t want[4096], got[4096];

	if (n > sizeof(want))
		n = sizeof(want);
	fill_pattern(want, n, (uint32_t)file_off ^ (uint32_t)getpid());
	for (size_t i = 0; i < n; i++)
		p[i] = want[i];
	__sync_synchronize();
	if (pread(vram_fd, got, n, (off_t)file_off) != (ssize_t)n) {
		test_fail(name, "pread of the host file at %#llx: %m",
			  (unsigned long long)file_off);
		return;
	}
	if (memcmp(want, got, n) != 0) {
		test_fail(name, "the host file at %#llx lacks what was written through the mapping",
			  (unsigned long long)file_off);
		return;
	}
	fill_pattern(want, n, (uint32_t)file_off ^ 0xa5a5a5a5u);
	if (pwrite(vram_fd, want, n, (off_t)file_off) != (ssize_t)n) {
		test_fail(name, "pwrite of the host file: %m");
		return;
	}
	for (size_t i = 0; i < n; i++)
		got[i] = p[i];
	if (memcmp(want, got, n) != 0) {
		test_fail(name, "the mapping does not show the host file's bytes at %#llx",
			  (unsigned long long)file_off);
		return;
	}
	test_ok(name);
}

static int export_ranges(const struct vfio_dev *dev, uint32_t bar,
			 const struct vfio_region_dma_range *ranges, uint32_t n)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_dma_buf dmabuf;
		struct vfio_region_dma_range range[4];
	} __attribute__((packed)) arg = {
		.hdr = { .argsz = sizeof(arg),
			 .flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF },
		.dmabuf = { .region_index = bar, .open_flags = O_RDWR | O_CLOEXEC, .nr_ranges = n },
	};

	memcpy(arg.range, ranges, n * sizeof(*ranges));
	int r = ioctl(dev->device_fd, VFIO_DEVICE_FEATURE, &arg);
	return r < 0 ? -errno : r;
}

/* A raw VFIO_DEVICE_FEATURE call: flags and a payload of len bytes. */
static int feature(const struct vfio_dev *dev, uint32_t flags, void *payload, size_t len)
{
	struct {
		struct vfio_device_feature hdr;
		uint8_t data[64];
	} __attribute__((packed)) arg = {
		.hdr = { .argsz = (uint32_t)(sizeof(arg.hdr) + len), .flags = flags },
	};

	memcpy(arg.data, payload, len);
	int r = ioctl(dev->device_fd, VFIO_DEVICE_FEATURE, &arg);
	if (r < 0)
		return -errno;
	memcpy(payload, arg.data, len);
	return r;
}

static int memattr_get(const struct vfio_dev *dev, int fd, uint32_t *ret)
{
	struct vfio_device_feature_dma_buf_memattr a = { .dmabuf_fd = fd, .memattr = 0xdead };
	int r = feature(dev, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR, &a,
			sizeof(a));
	if (r == 0)
		*ret = a.memattr;
	return r;
}

/* ---- bk_observer ------------------------------------------------------------ */

static int obs = -EBADF;

static int obs_attach(int dmabuf, uint32_t *ret_slot)
{
	struct bk_observer_attach a = { .fd = dmabuf };

	if (ioctl(obs, BK_OBSERVER_IOC_ATTACH, &a) < 0)
		return -errno;
	*ret_slot = a.slot;
	return 0;
}

static long long obs_invalidations(uint32_t slot)
{
	struct bk_observer_status s = { .slot = slot };

	if (ioctl(obs, BK_OBSERVER_IOC_STATUS, &s) < 0)
		return -errno;
	return (long long)s.invalidations;
}

static int obs_reattach(uint32_t slot)
{
	struct bk_observer_reattach r = { .slot = slot };

	return ioctl(obs, BK_OBSERVER_IOC_REATTACH, &r) < 0 ? -errno : 0;
}

static int create_udmabuf(size_t size)
{
	struct udmabuf_create create = { .flags = UDMABUF_FLAGS_CLOEXEC, .size = size };
	_cleanup_close_ int memfd = -EBADF, dev = -EBADF;
	int fd;

	memfd = memfd_create("vfio_patched_test", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, (off_t)size) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return -errno;
	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	create.memfd = (uint32_t)memfd;
	fd = ioctl(dev, UDMABUF_CREATE, &create);
	return fd < 0 ? -errno : fd;
}

/* ---- the checks ------------------------------------------------------------ */

static void check_probe(void)
{
	expect_err("probe-revoke-set",
		   vfio_feature_probe(&gpu0, VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE,
				      VFIO_DEVICE_FEATURE_SET), 0);
	expect_err("probe-revoke-get-einval",
		   vfio_feature_probe(&gpu0, VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE,
				      VFIO_DEVICE_FEATURE_GET), EINVAL);
	expect_err("probe-memattr-get-set",
		   vfio_feature_probe(&gpu0, VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR,
				      VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET), 0);
	expect_err("probe-feature-15-enotty", vfio_feature_probe(&gpu0, 15, VFIO_DEVICE_FEATURE_SET),
		   ENOTTY);
}

static void check_mmap_basics(void)
{
	_cleanup_close_ int fd = -EBADF, multi = -EBADF;
	uint8_t *p;

	fd = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 2 * MiB, 1 * MiB, O_RDWR);
	if (fd < 0) {
		test_fail("export", "%s", strerror(-fd));
		return;
	}
	p = map_buf(fd, 1 * MiB, 0);
	if (!p) {
		test_fail("mmap-shared", "%m");
		return;
	}
	test_ok("mmap-shared");
	check_reaches_bar("mmap-write-read-reaches-bar", p, 2 * MiB, 4096);
	check_reaches_bar("mmap-last-page-reaches-bar", p + 1 * MiB - PAGE, 3 * MiB - PAGE, 4096);
	munmap(p, 1 * MiB);

	p = map_buf(fd, 64 * KiB, 256 * KiB);
	if (!p) {
		test_fail("mmap-offset", "%m");
	} else {
		check_reaches_bar("mmap-offset-reaches-bar", p, 2 * MiB + 256 * KiB, 4096);
		munmap(p, 64 * KiB);
	}

	expect_err("mmap-private-einval", try_map(fd, 1 * MiB, MAP_PRIVATE, 0), EINVAL);
	expect_err("mmap-past-end-einval", try_map(fd, 1 * MiB + PAGE, MAP_SHARED, 0), EINVAL);
	expect_err("mmap-offset-past-end-einval", try_map(fd, 2 * PAGE, MAP_SHARED, 1 * MiB - PAGE),
		   EINVAL);

	/* Several ranges, out of order: the buffer is their concatenation. */
	const struct vfio_region_dma_range ranges[] = {
		{ .offset = 8 * MiB, .length = 64 * KiB },
		{ .offset = 4 * MiB, .length = 64 * KiB },
		{ .offset = 6 * MiB, .length = 128 * KiB },
	};
	multi = export_ranges(&gpu0, (uint32_t)bar0, ranges, 3);
	if (multi < 0) {
		test_fail("export-3-ranges", "%s", strerror(-multi));
		return;
	}
	p = map_buf(multi, 256 * KiB, 0);
	if (!p) {
		test_fail("mmap-3-ranges", "%m");
		return;
	}
	test_ok("mmap-3-ranges");
	check_reaches_bar("3-ranges-first", p, 8 * MiB, 4096);
	check_reaches_bar("3-ranges-second", p + 64 * KiB, 4 * MiB, 4096);
	check_reaches_bar("3-ranges-third-end", p + 256 * KiB - PAGE, 6 * MiB + 128 * KiB - PAGE,
			  4096);
	munmap(p, 256 * KiB);
}

static void check_memory_disable(void)
{
	_cleanup_close_ int fd = -EBADF, late = -EBADF;
	volatile uint32_t *p;
	uint32_t v;
	int r;

	fd = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 12 * MiB, 64 * KiB, O_RDWR);
	if (fd < 0) {
		test_fail("export", "%s", strerror(-fd));
		return;
	}
	p = map_buf(fd, 64 * KiB, 0);
	if (!p) {
		test_fail("mmap", "%m");
		return;
	}
	/* Fault the page in first: the revoke must zap it, not just refuse faults. */
	if (!test_write32(p, 0x11223344u) || !test_read32(p, &v) || v != 0x11223344u) {
		test_fail("mapped-before-disable", "access to the mapping failed");
		goto out;
	}
	test_ok("mapped-before-disable");

	r = vfio_set_memory_enable(&gpu0, false);
	if (r < 0) {
		test_fail("memory-disable", "%s", strerror(-r));
		goto out;
	}
	if (test_read32(p, &v))
		test_fail("disable-read-sigbus", "read %#x instead of faulting", v);
	else
		test_ok("disable-read-sigbus");
	if (test_write32(p + 4096 / 4, 1))
		test_fail("disable-write-other-page-sigbus", "write did not fault");
	else
		test_ok("disable-write-other-page-sigbus");
	expect_err("disable-mmap-enodev", try_map(fd, 64 * KiB, MAP_SHARED, 0), ENODEV);

	/* A buffer exported while decode is off starts revoked. */
	late = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 13 * MiB, 64 * KiB, O_RDWR);
	if (late < 0)
		test_fail("export-while-disabled", "%s", strerror(-late));
	else
		expect_err("export-while-disabled-mmap-enodev", try_map(late, 64 * KiB, MAP_SHARED, 0),
			   ENODEV);

	r = vfio_set_memory_enable(&gpu0, true);
	if (r < 0) {
		test_fail("memory-enable", "%s", strerror(-r));
		goto out;
	}
	if (!test_read32(p, &v))
		test_fail("enable-access-restored", "read still faults");
	else if (v != 0x11223344u)
		test_fail("enable-access-restored", "read %#x, expected 0x11223344", v);
	else
		test_ok("enable-access-restored");
	check_reaches_bar("enable-write-reaches-bar", (volatile uint8_t *)p + 8192,
			  12 * MiB + 8192, 4096);
	if (late >= 0)
		expect_err("enable-mmap-late-buffer", try_map(late, 64 * KiB, MAP_SHARED, 0), 0);
out:
	munmap((void *)p, 64 * KiB);
}

static void check_revoke(void)
{
	_cleanup_close_ int a = -EBADF, b = -EBADF, c = -EBADF;
	volatile uint32_t *pa = NULL, *pb = NULL;
	uint32_t slot_a = 0, slot_b = 0, v;
	long long inv_a, inv_b, n;
	int r;

	a = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 16 * MiB, 64 * KiB, O_RDWR);
	b = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 17 * MiB, 64 * KiB, O_RDWR);
	if (a < 0 || b < 0) {
		test_fail("revoke-export", "%s", strerror(-(a < 0 ? a : b)));
		return;
	}
	pa = map_buf(a, 64 * KiB, 0);
	pb = map_buf(b, 64 * KiB, 0);
	if (!pa || !pb) {
		test_fail("revoke-mmap", "%m");
		goto out;
	}
	if (!test_write32(pa, 0xaaaa0001u) || !test_write32(pb, 0xbbbb0001u)) {
		test_fail("revoke-mapped", "access to the mappings failed");
		goto out;
	}
	r = obs_attach(a, &slot_a);
	if (r == 0)
		r = obs_attach(b, &slot_b);
	if (r < 0) {
		test_fail("revoke-observer-attach", "%s", strerror(-r));
		goto out;
	}
	inv_a = obs_invalidations(slot_a);
	inv_b = obs_invalidations(slot_b);

	r = vfio_dmabuf_revoke(&gpu0, a);
	if (r < 0) {
		test_fail("revoke", "%s", strerror(-r));
		goto out;
	}
	test_ok("revoke");

	if (test_read32(pa, &v))
		test_fail("revoked-read-sigbus", "read %#x instead of faulting", v);
	else
		test_ok("revoked-read-sigbus");
	if (test_write32(pa + 8192 / 4, 1))
		test_fail("revoked-write-sigbus", "write did not fault");
	else
		test_ok("revoked-write-sigbus");
	n = obs_invalidations(slot_a);
	if (n != inv_a + 1)
		test_fail("revoked-observer-invalidated", "invalidations %lld, expected %lld", n,
			  inv_a + 1);
	else
		test_ok("revoked-observer-invalidated");
	expect_err("revoked-reattach-enodev", obs_reattach(slot_a), ENODEV);
	expect_err("revoked-mmap-enodev", try_map(a, 64 * KiB, MAP_SHARED, 0), ENODEV);

	n = obs_invalidations(slot_b);
	if (n != inv_b)
		test_fail("other-buffer-not-invalidated", "invalidations %lld, expected %lld", n,
			  inv_b);
	else
		test_ok("other-buffer-not-invalidated");
	if (!test_read32(pb, &v) || v != 0xbbbb0001u)
		test_fail("other-buffer-still-mapped", "read faulted or gave the wrong value");
	else
		test_ok("other-buffer-still-mapped");
	check_reaches_bar("other-buffer-reaches-bar", (volatile uint8_t *)pb + 4096,
			  17 * MiB + 4096, 4096);
	expect_err("other-buffer-mmap", try_map(b, 64 * KiB, MAP_SHARED, 0), 0);

	expect_err("revoke-again-ebadfd", vfio_dmabuf_revoke(&gpu0, a), EBADFD);
	expect_err("revoked-memattr-set-ebadfd",
		   vfio_dmabuf_set_memattr(&gpu0, a, VFIO_DEVICE_DMA_BUF_MEMATTR_WC), EBADFD);

	/* Revoked for good: a memory-decode cycle restores b, never a. */
	r = vfio_set_memory_enable(&gpu0, false);
	if (r == 0)
		r = vfio_set_memory_enable(&gpu0, true);
	if (r < 0) {
		test_fail("revoke-decode-cycle", "%s", strerror(-r));
		goto out;
	}
	if (test_read32(pa, &v))
		test_fail("revoked-stays-after-decode-cycle", "read %#x instead of faulting", v);
	else
		test_ok("revoked-stays-after-decode-cycle");
	expect_err("revoked-reattach-after-cycle-enodev", obs_reattach(slot_a), ENODEV);
	if (!test_read32(pb, &v) || v != 0xbbbb0001u)
		test_fail("other-buffer-back-after-decode-cycle",
			  "read faulted or gave the wrong value");
	else
		test_ok("other-buffer-back-after-decode-cycle");
	expect_err("other-buffer-reattach-after-cycle", obs_reattach(slot_b), 0);

	/* Revoking for good while decode is off (buffer revoked for now). */
	c = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 18 * MiB, 64 * KiB, O_RDWR);
	if (c < 0) {
		test_fail("revoke-while-disabled", "export: %s", strerror(-c));
		goto out;
	}
	r = vfio_set_memory_enable(&gpu0, false);
	if (r == 0)
		r = vfio_dmabuf_revoke(&gpu0, c);
	int r2 = vfio_set_memory_enable(&gpu0, true);
	if (r < 0 || r2 < 0)
		test_fail("revoke-while-disabled", "%s", strerror(-(r < 0 ? r : r2)));
	else
		test_ok("revoke-while-disabled");
	expect_err("revoke-while-disabled-stays-dead", try_map(c, 64 * KiB, MAP_SHARED, 0), ENODEV);
out:
	if (pa)
		munmap((void *)pa, 64 * KiB);
	if (pb)
		munmap((void *)pb, 64 * KiB);
}

static void check_memattr(void)
{
	_cleanup_close_ int fd = -EBADF;
	uint32_t attr = 0xdead;
	uint8_t *nc = NULL, *wc = NULL;
	int r;

	fd = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 20 * MiB, 64 * KiB, O_RDWR);
	if (fd < 0) {
		test_fail("memattr-export", "%s", strerror(-fd));
		return;
	}
	r = memattr_get(&gpu0, fd, &attr);
	if (r != 0)
		test_fail("memattr-default-nc", "GET: %d (%s)", r, strerror(r < 0 ? -r : 0));
	else if (attr != VFIO_DEVICE_DMA_BUF_MEMATTR_NC)
		test_fail("memattr-default-nc", "GET returned %u", attr);
	else
		test_ok("memattr-default-nc");

	nc = map_buf(fd, 64 * KiB, 0);
	expect_err("memattr-set-wc", vfio_dmabuf_set_memattr(&gpu0, fd, VFIO_DEVICE_DMA_BUF_MEMATTR_WC),
		   0);
	r = memattr_get(&gpu0, fd, &attr);
	if (r != 0 || attr != VFIO_DEVICE_DMA_BUF_MEMATTR_WC)
		test_fail("memattr-get-wc", "GET: %d, memattr %u", r, attr);
	else
		test_ok("memattr-get-wc");
	wc = map_buf(fd, 64 * KiB, 0);
	if (!wc) {
		test_fail("memattr-wc-mmap", "%m");
	} else {
		test_ok("memattr-wc-mmap");
		check_reaches_bar("memattr-wc-reaches-bar", wc, 20 * MiB, 4096);
	}
	if (nc)
		check_reaches_bar("memattr-earlier-nc-mapping-still-works", nc + 4096,
				  20 * MiB + 4096, 4096);
	expect_err("memattr-set-nc", vfio_dmabuf_set_memattr(&gpu0, fd, VFIO_DEVICE_DMA_BUF_MEMATTR_NC),
		   0);
	if (wc)
		munmap(wc, 64 * KiB);
	if (nc)
		munmap(nc, 64 * KiB);
}

static void check_bad_inputs(void)
{
	_cleanup_close_ int devnull = -EBADF, udma = -EBADF, other = -EBADF, mine = -EBADF;
	struct vfio_device_feature_dma_buf_memattr ma;
	struct vfio_device_feature_dma_buf_revoke rv;

	mine = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 24 * MiB, 64 * KiB, O_RDWR);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	udma = create_udmabuf(64 * KiB);
	if (mine < 0 || devnull < 0 || udma < 0) {
		test_fail("bad-inputs-setup", "export %d, /dev/null %d, udmabuf %d", mine, devnull,
			  udma);
		return;
	}

	expect_err("revoke-fd-minus-1-ebadf", vfio_dmabuf_revoke(&gpu0, -1), EBADF);
	expect_err("revoke-closed-fd-ebadf", vfio_dmabuf_revoke(&gpu0, 1000), EBADF);
	expect_err("revoke-not-dmabuf-einval", vfio_dmabuf_revoke(&gpu0, devnull), EINVAL);
	expect_err("revoke-udmabuf-enodev", vfio_dmabuf_revoke(&gpu0, udma), ENODEV);
	rv = (struct vfio_device_feature_dma_buf_revoke){ .dmabuf_fd = mine };
	expect_err("revoke-get-einval",
		   feature(&gpu0, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE, &rv,
			   sizeof(rv)), EINVAL);
	expect_err("revoke-short-argsz-einval",
		   feature(&gpu0, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE, &rv, 2),
		   EINVAL);

	expect_err("memattr-bad-value-einval", vfio_dmabuf_set_memattr(&gpu0, mine, 2), EINVAL);
	expect_err("memattr-fd-minus-1-ebadf",
		   vfio_dmabuf_set_memattr(&gpu0, -1, VFIO_DEVICE_DMA_BUF_MEMATTR_WC), EBADF);
	expect_err("memattr-not-dmabuf-einval",
		   vfio_dmabuf_set_memattr(&gpu0, devnull, VFIO_DEVICE_DMA_BUF_MEMATTR_WC), EINVAL);
	expect_err("memattr-udmabuf-enodev",
		   vfio_dmabuf_set_memattr(&gpu0, udma, VFIO_DEVICE_DMA_BUF_MEMATTR_WC), ENODEV);
	ma = (struct vfio_device_feature_dma_buf_memattr){ .dmabuf_fd = mine };
	expect_err("memattr-short-argsz-einval",
		   feature(&gpu0, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR, &ma,
			   4), EINVAL);

	if (gpu1.device_fd < 0) {
		test_fail("other-device", "a second GPU is needed (--gpus with two sizes)");
		return;
	}
	other = vfio_dmabuf_export(&gpu1, (uint32_t)bar1, 0, 64 * KiB, O_RDWR);
	if (other < 0) {
		test_fail("other-device-export", "%s", strerror(-other));
		return;
	}
	expect_err("revoke-other-device-enodev", vfio_dmabuf_revoke(&gpu0, other), ENODEV);
	expect_err("memattr-other-device-enodev",
		   vfio_dmabuf_set_memattr(&gpu0, other, VFIO_DEVICE_DMA_BUF_MEMATTR_WC), ENODEV);
	uint32_t attr;
	expect_err("memattr-get-other-device-enodev", memattr_get(&gpu0, other, &attr), ENODEV);
	/* ... and the buffers are intact: revoke through the right device works. */
	expect_err("revoke-through-own-device", vfio_dmabuf_revoke(&gpu1, other), 0);
	expect_err("own-buffer-untouched-by-bad-calls", try_map(mine, 64 * KiB, MAP_SHARED, 0), 0);
}

/* Last: closes gpu0. */
static void check_device_close(void)
{
	_cleanup_close_ int a = -EBADF, b = -EBADF;
	volatile uint32_t *pa = NULL, *pb = NULL;
	uint32_t slot_a = 0, v;
	long long inv;
	int r;

	a = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 28 * MiB, 64 * KiB, O_RDWR);
	b = vfio_dmabuf_export(&gpu0, (uint32_t)bar0, 29 * MiB, 64 * KiB, O_RDWR);
	if (a < 0 || b < 0) {
		test_fail("close-export", "%s", strerror(-(a < 0 ? a : b)));
		return;
	}
	pa = map_buf(a, 64 * KiB, 0);
	pb = map_buf(b, 64 * KiB, 0);
	if (!pa || !pb || !test_write32(pa, 1) || !test_write32(pb, 2)) {
		test_fail("close-mapped", "mmap or access failed");
		goto out;
	}
	r = obs_attach(a, &slot_a);
	if (r < 0) {
		test_fail("close-observer-attach", "%s", strerror(-r));
		goto out;
	}
	inv = obs_invalidations(slot_a);

	vfio_dev_close(&gpu0);

	if (test_read32(pa, &v) || test_read32(pb, &v))
		test_fail("close-kills-mappings",
			  "a mapping still reads after the device was closed");
	else
		test_ok("close-kills-mappings");
	if (obs_invalidations(slot_a) != inv + 1)
		test_fail("close-observer-invalidated", "invalidations %lld, expected %lld",
			  obs_invalidations(slot_a), inv + 1);
	else
		test_ok("close-observer-invalidated");
	expect_err("close-reattach-enodev", obs_reattach(slot_a), ENODEV);
	expect_err("close-mmap-a-enodev", try_map(a, 64 * KiB, MAP_SHARED, 0), ENODEV);
	expect_err("close-mmap-b-enodev", try_map(b, 64 * KiB, MAP_SHARED, 0), ENODEV);

	/* Reopened, the device does not own its old buffers any more. */
	char addr[sizeof(gpu0.pci_addr)];
	memcpy(addr, gpu0.pci_addr, sizeof(addr));
	r = vfio_dev_open(addr, &gpu0);
	if (r < 0) {
		test_fail("close-reopen", "%s", strerror(-r));
		goto out;
	}
	expect_err("reopened-revoke-old-buffer-enodev", vfio_dmabuf_revoke(&gpu0, a), ENODEV);
	expect_err("reopened-mmap-old-buffer-enodev", try_map(b, 64 * KiB, MAP_SHARED, 0), ENODEV);
out:
	if (pa)
		munmap((void *)pa, 64 * KiB);
	if (pb)
		munmap((void *)pb, 64 * KiB);
}

/* The n-th (0-based) PCI address of $BARKEEP_GPUS into buf; false if none. */
static bool nth_gpu(const char *gpus, int n, char *buf, size_t len)
{
	for (const char *p = gpus; *p;) {
		p += strspn(p, " ,");
		size_t l = strcspn(p, " ,");
		if (l == 0)
			break;
		if (n-- == 0) {
			if (l >= len)
				return false;
			memcpy(buf, p, l);
			buf[l] = 0;
			return true;
		}
		p += l;
	}
	return false;
}

int main(void)
{
	const char *gpus = getenv("BARKEEP_GPUS"), *vram_dir = getenv("BARKEEP_VRAM_DIR");
	char addr[32], path[PATH_MAX];
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!gpus || !vram_dir || !nth_gpu(gpus, 0, addr, sizeof(addr))) {
		test_fail("environment",
			  "BARKEEP_GPUS and BARKEEP_VRAM_DIR must be set (run in the VM)");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/gpu0", vram_dir);
	vram_fd = open(path, O_RDWR | O_CLOEXEC);
	if (vram_fd < 0) {
		test_fail("environment", "open %s: %m", path);
		goto out;
	}
	obs = open(BK_OBSERVER_DEVICE, O_RDWR | O_CLOEXEC);
	if (obs < 0) {
		test_fail("environment", "open %s: %m", BK_OBSERVER_DEVICE);
		goto out;
	}
	r = vfio_dev_open(addr, &gpu0);
	if (r < 0) {
		test_fail("open-gpu0", "%s: %s", addr, strerror(-r));
		goto out;
	}
	bar0 = vfio_pick_vram_bar(&gpu0);
	if (bar0 < 0) {
		test_fail("vram-bar", "%s", strerror(-bar0));
		goto out;
	}
	if (nth_gpu(gpus, 1, addr, sizeof(addr))) {
		r = vfio_dev_open(addr, &gpu1);
		if (r < 0)
			test_fail("open-gpu1", "%s: %s", addr, strerror(-r));
		else
			bar1 = vfio_pick_vram_bar(&gpu1);
	}

	check_probe();
	check_mmap_basics();
	check_memory_disable();
	check_revoke();
	check_memattr();
	check_bad_inputs();
	check_device_close();
out:
	vfio_dev_close(&gpu0);
	vfio_dev_close(&gpu1);
	safe_close(obs);
	safe_close(vram_fd);
	return test_finish();
}

/* SPDX-License-Identifier: MIT */
/*
 * kernel_bed: proves the VM test bed against the real kernel (issue 2, items
 * 6 and 7). Runs as root in the guest on the first of $BARKEEP_GPUS:
 *  - opens it through the legacy VFIO container/group path,
 *  - exports a 1 MiB window of BAR2 at 2 MiB as a dma-buf and checks it in
 *    another process (passed over SCM_RIGHTS to an exec'd child),
 *  - checks that BAR2 is the host's backing file, the export errors, and who
 *    can import it (vgem cannot; a udmabuf imports fine),
 *  - makes revocation visible with bk_observer: clearing PCI_COMMAND_MEMORY
 *    invalidates the attachment and re-attach fails until it is set again.
 * Prints "ok   NAME" or "FAIL NAME: why" per check and "N passed, N failed".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/udmabuf.h>
#include <xf86drm.h>

#include "common/macro.h"
#include "common/vfio-uapi.h"
#include "tests/kmod/bk_observer.h"
#include "tests/lib/report.h"
#include "tests/lib/testlib.h"
#include "tests/lib/vmtest.h"

#define MiB (1024ULL * 1024ULL)
#define WIN_OFFSET (2 * MiB)
#define WIN_SIZE (1 * MiB)

/* A check that expects a call to fail with a given errno. r is the call's
 * return value, err the errno it left. */
static void expect_errno(const char *name, long r, int err, int want)
{
	if (r >= 0)
		test_fail(name, "succeeded (returned %ld), expected %s", r, strerrorname_np(want));
	else if (err != want)
		test_fail(name, "failed with %s (%s), expected %s", strerrorname_np(err),
			  strerror(err),
			  strerrorname_np(want));
	else
		test_ok(name);
}

/* ---- VFIO --------------------------------------------------------------- */

struct gpu {
	char addr[32];
	int container;
	int group;
	int device;
	struct vfio_region_info bar2;
	struct vfio_region_info config;
	uint8_t *bar2_map;
};

static int open_group_path(const char *addr, char *ret_path, size_t n)
{
	char link[PATH_MAX], target[PATH_MAX];
	const char *group;
	ssize_t len;

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", addr);
	len = readlink(link, target, sizeof(target) - 1);
	if (len < 0)
		return -errno;
	target[len] = 0;
	group = strrchr(target, '/');
	group = group ? group + 1 : target;
	if (snprintf(ret_path, n, "/dev/vfio/%s", group) >= (int)n)
		return -ENAMETOOLONG;
	return 0;
}

/* The legacy container/group path: the only one Debian's 7.2 has. Returns
 * false when a step failed (reported), so that later checks are skipped. */
static bool open_gpu(struct gpu *g)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[PATH_MAX];
	int r;

	g->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (g->container < 0) {
		test_fail("vfio-container", "open /dev/vfio/vfio: %m");
		return false;
	}
	r = ioctl(g->container, VFIO_GET_API_VERSION);
	if (r != VFIO_API_VERSION) {
		test_fail("vfio-container", "VFIO_GET_API_VERSION = %d, expected %d", r,
			  VFIO_API_VERSION);
		return false;
	}
	test_ok("vfio-container");

	r = ioctl(g->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
	if (r != 1) {
		test_fail("vfio-type1v2", "VFIO_CHECK_EXTENSION(TYPE1v2) = %d%s", r,
			  r < 0 ? " (%m)" : "");
		return false;
	}
	test_ok("vfio-type1v2");

	r = open_group_path(g->addr, path, sizeof(path));
	if (r < 0) {
		test_fail("vfio-group-viable", "no iommu_group for %s: %s", g->addr, strerror(-r));
		return false;
	}
	g->group = open(path, O_RDWR | O_CLOEXEC);
	if (g->group < 0) {
		test_fail("vfio-group-viable", "open %s: %m", path);
		return false;
	}
	if (ioctl(g->group, VFIO_GROUP_GET_STATUS, &status) < 0) {
		test_fail("vfio-group-viable", "VFIO_GROUP_GET_STATUS: %m");
		return false;
	}
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		test_fail("vfio-group-viable", "%s is not viable (flags %#x)", path, status.flags);
		return false;
	}
	test_ok("vfio-group-viable");

	if (ioctl(g->group, VFIO_GROUP_SET_CONTAINER, &g->container) < 0) {
		test_fail("vfio-set-container", "%m");
		return false;
	}
	test_ok("vfio-set-container");

	if (ioctl(g->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
		test_fail("vfio-set-iommu", "%m");
		return false;
	}
	test_ok("vfio-set-iommu");

	g->device = ioctl(g->group, VFIO_GROUP_GET_DEVICE_FD, g->addr);
	if (g->device < 0) {
		test_fail("vfio-device-fd", "VFIO_GROUP_GET_DEVICE_FD(%s): %m", g->addr);
		return false;
	}
	test_ok("vfio-device-fd");
	return true;
}

static int region_info(int device, uint32_t index, struct vfio_region_info *ret)
{
	*ret = (struct vfio_region_info){ .argsz = sizeof(*ret), .index = index };
	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, ret) < 0)
		return -errno;
	return 0;
}

/* Returns the dma-buf fd or -errno. */
static int export_window(int device, uint32_t region, uint64_t offset, uint64_t length,
			 uint32_t nr_ranges)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_dma_buf dmabuf;
		struct vfio_region_dma_range range;
	} req = {
		.hdr = {
			.argsz = sizeof(req),
			.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF,
		},
		.dmabuf = {
			.region_index = region,
			.open_flags = O_RDWR | O_CLOEXEC,
			.nr_ranges = nr_ranges,
		},
		.range = { .offset = offset, .length = length },
	};
	int fd;

	fd = ioctl(device, VFIO_DEVICE_FEATURE, &req);
	return fd < 0 ? -errno : fd;
}

static int probe_dmabuf(int device)
{
	struct vfio_device_feature hdr = {
		.argsz = sizeof(hdr),
		.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
			 VFIO_DEVICE_FEATURE_DMA_BUF,
	};

	return ioctl(device, VFIO_DEVICE_FEATURE, &hdr) < 0 ? -errno : 0;
}

static int read_command(const struct gpu *g, uint16_t *ret)
{
	ssize_t n = pread(g->device, ret, sizeof(*ret), (off_t)g->config.offset + PCI_COMMAND);

	if (n < 0)
		return -errno;
	return n == sizeof(*ret) ? 0 : -EIO;
}

static int write_command(const struct gpu *g, uint16_t cmd)
{
	ssize_t n = pwrite(g->device, &cmd, sizeof(cmd), (off_t)g->config.offset + PCI_COMMAND);

	if (n < 0)
		return -errno;
	return n == sizeof(cmd) ? 0 : -EIO;
}

/* ---- the other process: receives the dma-buf over SCM_RIGHTS ------------- */

/* Checks run in the exec'd child; their result lines go back over the socket. */
static int child_main(int sock, uint64_t want_size)
{
	char path[64], line[256], buf[4096];
	_cleanup_close_ int fd = -EBADF;
	FILE *out, *f;
	off_t size;
	bool exp = false, sz = false;

	out = fdopen(sock, "w");
	if (!out)
		return 2;

	fd = test_recv_fd(sock);
	if (fd < 0) {
		fprintf(out, "FAIL scm-rights-receive: no fd received: %s\n", strerror(-fd));
		fclose(out);
		return 1;
	}
	fprintf(out, "ok   scm-rights-receive\n");

	size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		fprintf(out, "FAIL child-lseek-size: lseek(SEEK_END): %s\n", strerror(errno));
	else if ((uint64_t)size != want_size)
		fprintf(out, "FAIL child-lseek-size: %jd, expected %" PRIu64 "\n", (intmax_t)size,
			want_size);
	else
		fprintf(out, "ok   child-lseek-size\n");

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f) {
		fprintf(out, "FAIL child-fdinfo-exp-name: %s: %s\n", path, strerror(errno));
	} else {
		buf[0] = 0;
		while (fgets(line, sizeof(line), f)) {
			if (strcmp(line, "exp_name:\tvfio_pci_core\n") == 0)
				exp = true;
			if (strncmp(line, "size:\t", 6) == 0 && strtoull(line + 6, NULL, 10) == want_size)
				sz = true;
			line[strcspn(line, "\n")] = ' ';
			strncat(buf, line, sizeof(buf) - strlen(buf) - 1);
		}
		fclose(f);
		if (exp && sz)
			fprintf(out, "ok   child-fdinfo-exp-name\n");
		else
			fprintf(out, "FAIL child-fdinfo-exp-name: no 'exp_name:\\tvfio_pci_core' and "
				"'size:\\t%" PRIu64 "' in fdinfo: %s\n", want_size, buf);
	}
	fclose(out);
	return 0;
}

/* Passes fd to a forked and exec'd copy of this program and folds in its checks. */
static void check_other_process(int dmabuf, uint64_t size)
{
	char sockarg[16], sizearg[32], line[512];
	int sv[2], status;
	FILE *in;
	pid_t pid;
	int r, lines = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		test_fail("scm-rights-send", "socketpair: %m");
		return;
	}
	pid = fork();
	if (pid < 0) {
		test_fail("scm-rights-send", "fork: %m");
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		/* Only the socket survives exec: the dma-buf is O_CLOEXEC. */
		int s = dup(sv[1]);

		snprintf(sockarg, sizeof(sockarg), "%d", s);
		snprintf(sizearg, sizeof(sizearg), "%" PRIu64, size);
		execl("/proc/self/exe", "kernel_bed", "--child", sockarg, sizearg, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);

	r = test_send_fd(sv[0], dmabuf);
	if (r < 0)
		test_fail("scm-rights-send", "sendmsg: %s", strerror(-r));
	else
		test_ok("scm-rights-send");
	shutdown(sv[0], SHUT_WR);

	in = fdopen(sv[0], "r");
	if (!in) {
		close(sv[0]);
	} else {
		while (fgets(line, sizeof(line), in)) {
			fputs(line, stdout);
			lines++;
			if (strncmp(line, "ok   ", 5) == 0)
				test_passed++;
			else
				test_failed++;
		}
		fclose(in);
	}
	fflush(stdout);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		test_fail("child-process", "exited abnormally (status %#x)", status);
	else if (lines < 3)
		test_fail("child-process", "reported %d checks, expected 3", lines);
}

/* ---- BAR access through the VFIO region mmap ------------------------------ */

static void fill_pattern(uint8_t *buf, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static void check_bar_to_host(struct gpu *g, const char *vram_file)
{
	uint8_t want[4096], got[4096];
	_cleanup_close_ int fd = -EBADF;
	volatile uint8_t *dst;
	ssize_t n;

	fill_pattern(want, sizeof(want), (uint32_t)getpid() ^ 0x5a5a5a5au);
	dst = g->bar2_map + WIN_OFFSET;
	for (size_t i = 0; i < sizeof(want); i++)
		dst[i] = want[i];
	__sync_synchronize();

	fd = open(vram_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		test_fail("bar2-write-lands-in-host-file", "open %s: %m", vram_file);
		return;
	}
	n = pread(fd, got, sizeof(got), WIN_OFFSET);
	if (n != (ssize_t)sizeof(got))
		test_fail("bar2-write-lands-in-host-file", "pread %s at %llu: %zd (%m)", vram_file,
			  WIN_OFFSET, n);
	else if (memcmp(want, got, sizeof(want)) != 0)
		test_fail("bar2-write-lands-in-host-file",
			  "bytes at %llu of %s differ from what was "
			  "written through the BAR", WIN_OFFSET, vram_file);
	else
		test_ok("bar2-write-lands-in-host-file");

	/* And the other way: the host file's bytes are what the BAR reads. */
	fill_pattern(want, sizeof(want), (uint32_t)getpid() ^ 0xa5a5a5a5u);
	_cleanup_close_ int wfd = open(vram_file, O_WRONLY | O_CLOEXEC);
	if (wfd < 0 || pwrite(wfd, want, sizeof(want), WIN_OFFSET + 8192) != (ssize_t)sizeof(want)) {
		test_fail("host-file-write-reads-through-bar2", "write %s: %m", vram_file);
		return;
	}
	for (size_t i = 0; i < sizeof(got); i++)
		got[i] = g->bar2_map[WIN_OFFSET + 8192 + i];
	if (memcmp(want, got, sizeof(want)) != 0)
		test_fail("host-file-write-reads-through-bar2",
			  "BAR2 does not show the file's bytes");
	else
		test_ok("host-file-write-reads-through-bar2");
}

/* ---- dma-buf import into vgem --------------------------------------------- */

static int open_vgem(void)
{
	static const char *const paths[] = { "/dev/dri/renderD128", "/dev/dri/renderD129",
					     "/dev/dri/card0", "/dev/dri/card1" };

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		int fd = open(paths[i], O_RDWR | O_CLOEXEC);
		drmVersionPtr v;
		bool is_vgem;

		if (fd < 0)
			continue;
		v = drmGetVersion(fd);
		is_vgem = v && v->name && strcmp(v->name, "vgem") == 0;
		drmFreeVersion(v);
		if (is_vgem)
			return fd;
		close(fd);
	}
	return -ENOENT;
}

static int create_udmabuf(size_t size)
{
	struct udmabuf_create create = { .flags = UDMABUF_FLAGS_CLOEXEC, .size = size };
	_cleanup_close_ int memfd = -EBADF, dev = -EBADF;
	int fd;

	memfd = memfd_create("kernel_bed", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (memfd < 0)
		return -errno;
	if (ftruncate(memfd, (off_t)size) < 0)
		return -errno;
	if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return -errno;
	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	create.memfd = (uint32_t)memfd;
	fd = ioctl(dev, UDMABUF_CREATE, &create);
	return fd < 0 ? -errno : fd;
}

static void check_vgem(int vfio_dmabuf)
{
	_cleanup_close_ int drm = -EBADF, udma = -EBADF;
	uint32_t handle = 0;
	int r;

	drm = open_vgem();
	if (drm < 0) {
		test_fail("vgem-import-vfio-dmabuf", "no vgem device in /dev/dri");
		test_fail("vgem-import-udmabuf", "no vgem device in /dev/dri");
		return;
	}

	r = drmPrimeFDToHandle(drm, vfio_dmabuf, &handle);
	expect_errno("vgem-import-vfio-dmabuf", r, r < 0 ? errno : 0, EOPNOTSUPP);
	if (r == 0) {
		struct drm_gem_close c = { .handle = handle };
		drmIoctl(drm, DRM_IOCTL_GEM_CLOSE, &c);
	}

	udma = create_udmabuf(WIN_SIZE);
	if (udma < 0) {
		test_fail("udmabuf-create", "%s", strerror(-udma));
		return;
	}
	test_ok("udmabuf-create");

	r = drmPrimeFDToHandle(drm, udma, &handle);
	if (r < 0) {
		test_fail("vgem-import-udmabuf", "drmPrimeFDToHandle: %m");
	} else {
		struct drm_gem_close c = { .handle = handle };
		drmIoctl(drm, DRM_IOCTL_GEM_CLOSE, &c);
		test_ok("vgem-import-udmabuf");
	}
}

/* ---- export errors --------------------------------------------------------- */

static void check_export_errors(const struct gpu *g)
{
	uint64_t bar = g->bar2.size;
	int r;

	r = export_window(g->device, VFIO_PCI_BAR2_REGION_INDEX, WIN_OFFSET + 512, WIN_SIZE, 1);
	expect_errno("export-unaligned-offset", r, -r, EINVAL);
	if (r >= 0)
		close(r);

	r = export_window(g->device, VFIO_PCI_BAR2_REGION_INDEX, bar - WIN_SIZE, 2 * WIN_SIZE, 1);
	expect_errno("export-past-end", r, -r, EINVAL);
	if (r >= 0)
		close(r);

	r = export_window(g->device, VFIO_PCI_CONFIG_REGION_INDEX, 0, 4096, 1);
	expect_errno("export-config-region", r, -r, ENODEV);
	if (r >= 0)
		close(r);

	/* BAR0 of ivshmem is 256 bytes of registers: a page is past its end. */
	r = export_window(g->device, VFIO_PCI_BAR0_REGION_INDEX, 0, 4096, 1);
	expect_errno("export-bar0-too-small", r, -r, EINVAL);
	if (r >= 0)
		close(r);

	r = export_window(g->device, VFIO_PCI_BAR2_REGION_INDEX, WIN_OFFSET, WIN_SIZE, 0);
	expect_errno("export-no-ranges", r, -r, EINVAL);
	if (r >= 0)
		close(r);
}

/* ---- revocation, seen through bk_observer --------------------------------- */

static int obs_status(int obs, uint32_t slot, struct bk_observer_status *ret)
{
	*ret = (struct bk_observer_status){ .slot = slot };
	return ioctl(obs, BK_OBSERVER_IOC_STATUS, ret) < 0 ? -errno : 0;
}

static int obs_reattach(int obs, uint32_t slot)
{
	struct bk_observer_reattach re = { .slot = slot };

	return ioctl(obs, BK_OBSERVER_IOC_REATTACH, &re) < 0 ? -errno : 0;
}

static int obs_attach(int obs, int dmabuf, uint32_t flags, struct bk_observer_attach *ret)
{
	*ret = (struct bk_observer_attach){ .fd = dmabuf, .flags = flags };
	return ioctl(obs, BK_OBSERVER_IOC_ATTACH, ret) < 0 ? -errno : 0;
}

static void check_revocation(struct gpu *g, int dmabuf)
{
	_cleanup_close_ int obs = -EBADF;
	struct bk_observer_attach at;
	struct bk_observer_status st;
	uint64_t before;
	uint16_t cmd;
	uint32_t word;
	int r, late;

	obs = open(BK_OBSERVER_DEVICE, O_RDWR | O_CLOEXEC);
	if (obs < 0) {
		test_fail("observer-open", "open %s: %m (is bk_observer.ko loaded?)",
			  BK_OBSERVER_DEVICE);
		return;
	}
	test_ok("observer-open");

	r = obs_attach(obs, dmabuf, 0, &at);
	if (r < 0) {
		test_fail("observer-attach", "ATTACH: %s", strerror(-r));
		return;
	}
	r = obs_status(obs, at.slot, &st);
	if (r < 0)
		test_fail("observer-attach", "STATUS: %s", strerror(-r));
	else if (at.size != WIN_SIZE || st.state != BK_OBSERVER_ATTACHED || st.invalidations != 0)
		test_fail("observer-attach", "size %llu, state %#x, invalidations %llu",
			  (unsigned long long)at.size, st.state,
			  (unsigned long long)st.invalidations);
	else
		test_ok("observer-attach");

	/* VFIO maps only for a PCI importer with a P2P route to the BAR; the
	 * observer's misc device has none, so a map is refused, not faked. */
	{
		struct bk_observer_attach m;

		r = obs_attach(obs, dmabuf, BK_OBSERVER_F_MAP, &m);
		expect_errno("observer-map-needs-p2p-route", r, -r, EINVAL);
		if (r == 0)
			ioctl(obs, BK_OBSERVER_IOC_DETACH, &m.slot);
	}

	r = read_command(g, &cmd);
	if (r < 0) {
		test_fail("config-read-command", "pread PCI_COMMAND: %s", strerror(-r));
		return;
	}
	if (!(cmd & PCI_COMMAND_MEMORY)) {
		test_fail("config-read-command", "memory decode is off (PCI_COMMAND %#x)", cmd);
		return;
	}
	test_ok("config-read-command");
	before = st.invalidations;

	/* Revoke: clear memory decode through the VFIO config region. */
	r = write_command(g, cmd & ~PCI_COMMAND_MEMORY);
	if (r < 0) {
		test_fail("revoke-clear-memory", "pwrite PCI_COMMAND: %s", strerror(-r));
		return;
	}
	test_ok("revoke-clear-memory");

	r = obs_status(obs, at.slot, &st);
	if (r < 0)
		test_fail("observer-invalidated-on-revoke", "STATUS: %s", strerror(-r));
	else if (st.invalidations <= before)
		test_fail("observer-invalidated-on-revoke", "invalidations %llu, was %llu",
			  (unsigned long long)st.invalidations, (unsigned long long)before);
	else
		test_ok("observer-invalidated-on-revoke");

	r = obs_reattach(obs, at.slot);
	expect_errno("observer-reattach-fails-while-revoked", r, -r, ENODEV);
	r = obs_status(obs, at.slot, &st);
	if (r < 0 || st.state != 0 || st.last_error != -ENODEV)
		test_fail("observer-status-while-revoked", "STATUS %d, state %#x, last_error %d", r,
			  st.state, st.last_error);
	else
		test_ok("observer-status-while-revoked");

	if (!test_read32((volatile uint32_t *)(g->bar2_map + WIN_OFFSET), &word))
		test_ok("bar2-mmap-sigbus-while-revoked");
	else
		test_fail("bar2-mmap-sigbus-while-revoked",
			  "read through the BAR mmap worked (%#x)", word);

	/* A buffer exported while memory decode is off starts revoked. */
	late = export_window(g->device, VFIO_PCI_BAR2_REGION_INDEX, WIN_OFFSET, WIN_SIZE, 1);
	if (late < 0) {
		test_fail("export-while-revoked-starts-revoked", "export: %s", strerror(-late));
	} else {
		struct bk_observer_attach a2;

		r = obs_attach(obs, late, 0, &a2);
		expect_errno("export-while-revoked-starts-revoked", r, -r, ENODEV);
		if (r == 0)
			ioctl(obs, BK_OBSERVER_IOC_DETACH, &a2.slot);
	}

	/* Restore memory decode: re-attach works again, and so does the BAR. */
	r = write_command(g, cmd);
	if (r < 0) {
		test_fail("restore-memory", "pwrite PCI_COMMAND: %s", strerror(-r));
		safe_close(late);
		return;
	}
	test_ok("restore-memory");

	r = obs_reattach(obs, at.slot);
	if (r < 0) {
		test_fail("observer-reattach-after-restore", "REATTACH: %s", strerror(-r));
	} else {
		r = obs_status(obs, at.slot, &st);
		if (r < 0 || st.state != BK_OBSERVER_ATTACHED || st.last_error != 0 || st.attaches != 2)
			test_fail("observer-reattach-after-restore",
				  "STATUS %d, state %#x, last_error %d, "
				  "attaches %llu", r, st.state, st.last_error,
				  (unsigned long long)st.attaches);
		else
			test_ok("observer-reattach-after-restore");
	}

	if (late >= 0) {
		struct bk_observer_attach a2;

		r = obs_attach(obs, late, 0, &a2);
		if (r < 0)
			test_fail("late-export-attaches-after-restore", "ATTACH: %s", strerror(-r));
		else
			test_ok("late-export-attaches-after-restore");
		late = safe_close(late);
	}

	if (!test_read32((volatile uint32_t *)(g->bar2_map + WIN_OFFSET), &word))
		test_fail("bar2-mmap-works-after-restore", "SIGBUS");
	else
		test_ok("bar2-mmap-works-after-restore");

	/* A second revoke is seen too, and DETACH frees the slot. */
	before = st.invalidations;
	if (write_command(g, cmd & ~PCI_COMMAND_MEMORY) < 0 || write_command(g, cmd) < 0) {
		test_fail("observer-counts-every-revoke", "pwrite PCI_COMMAND: %m");
	} else {
		r = obs_status(obs, at.slot, &st);
		if (r < 0 || st.invalidations <= before)
			test_fail("observer-counts-every-revoke",
				  "STATUS %d, invalidations %llu, was %llu",
				  r, (unsigned long long)st.invalidations,
				  (unsigned long long)before);
		else
			test_ok("observer-counts-every-revoke");
	}

	if (ioctl(obs, BK_OBSERVER_IOC_DETACH, &at.slot) < 0)
		test_fail("observer-detach", "DETACH: %m");
	else if ((r = obs_status(obs, at.slot, &st)) != -ENOENT)
		test_fail("observer-detach", "STATUS after DETACH: %d, expected ENOENT", r);
	else
		test_ok("observer-detach");
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct gpu g = { .container = -EBADF, .group = -EBADF, .device = -EBADF };
	const char *gpus, *vram_dir;
	char vram_file[PATH_MAX];
	int dmabuf = -EBADF, r;
	size_t n;

	if (argc == 4 && strcmp(argv[1], "--child") == 0)
		return child_main(atoi(argv[2]), strtoull(argv[3], NULL, 10));

	setvbuf(stdout, NULL, _IOLBF, 0);
	gpus = getenv("BARKEEP_GPUS");
	vram_dir = getenv("BARKEEP_VRAM_DIR");
	if (!gpus || !*gpus || !vram_dir) {
		test_fail("environment",
			  "BARKEEP_GPUS and BARKEEP_VRAM_DIR must be set (run in the VM)");
		goto out;
	}
	gpus += strspn(gpus, " ,");
	n = strcspn(gpus, " ,");
	if (n == 0 || n >= sizeof(g.addr)) {
		test_fail("environment", "bad BARKEEP_GPUS '%s'", gpus);
		goto out;
	}
	memcpy(g.addr, gpus, n);
	if (snprintf(vram_file, sizeof(vram_file), "%s/gpu0", vram_dir) >= (int)sizeof(vram_file)) {
		test_fail("environment", "BARKEEP_VRAM_DIR is too long");
		goto out;
	}

	if (!open_gpu(&g))
		goto out;

	r = region_info(g.device, VFIO_PCI_BAR2_REGION_INDEX, &g.bar2);
	if (r < 0)
		test_fail("bar2-region-info", "%s", strerror(-r));
	else if (!(g.bar2.flags & VFIO_REGION_INFO_FLAG_MMAP) || g.bar2.size < WIN_OFFSET + WIN_SIZE)
		test_fail("bar2-region-info",
			  "flags %#x size %llu: not an mmap-able BAR of >= %llu bytes",
			  g.bar2.flags, (unsigned long long)g.bar2.size, WIN_OFFSET + WIN_SIZE);
	else
		test_ok("bar2-region-info");
	if (r < 0)
		goto out;

	r = region_info(g.device, VFIO_PCI_CONFIG_REGION_INDEX, &g.config);
	if (r < 0)
		test_fail("config-region-info", "%s", strerror(-r));
	else
		test_ok("config-region-info");

	r = probe_dmabuf(g.device);
	if (r < 0)
		test_fail("dmabuf-probe", "PROBE|GET|DMA_BUF: %s", strerror(-r));
	else
		test_ok("dmabuf-probe");

	dmabuf = export_window(g.device, VFIO_PCI_BAR2_REGION_INDEX, WIN_OFFSET, WIN_SIZE, 1);
	if (dmabuf < 0) {
		test_fail("dmabuf-export", "1 MiB at 2 MiB of BAR2: %s", strerror(-dmabuf));
		goto out;
	}
	test_ok("dmabuf-export");

	check_other_process(dmabuf, WIN_SIZE);

	g.bar2_map = mmap(NULL, g.bar2.size, PROT_READ | PROT_WRITE, MAP_SHARED, g.device,
			  (off_t)g.bar2.offset);
	if (g.bar2_map == MAP_FAILED) {
		test_fail("bar2-mmap", "%m");
		g.bar2_map = NULL;
	} else {
		test_ok("bar2-mmap");
		check_bar_to_host(&g, vram_file);
	}

	check_export_errors(&g);
	check_vgem(dmabuf);
	if (g.bar2_map && g.config.size)
		check_revocation(&g, dmabuf);

out:
	if (g.bar2_map)
		munmap(g.bar2_map, g.bar2.size);
	safe_close(dmabuf);
	safe_close(g.device);
	safe_close(g.group);
	safe_close(g.container);
	return test_finish();
}

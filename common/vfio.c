// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/pci_regs.h>

#include "common/vfio.h"
#include "common/vfio-uapi.h"

static int read_group_id(const char *pci_addr)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", pci_addr);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -ENOENT;
	link[n] = '\0';
	const char *base = strrchr(link, '/');
	char *end;
	long id = strtol(base ? base + 1 : link, &end, 10);
	if (*end || id < 0 || id > INT_MAX)
		return -EINVAL;
	return (int)id;
}

void vfio_dev_close(struct vfio_dev *dev)
{
	dev->device_fd = safe_close(dev->device_fd);
	dev->group_fd = safe_close(dev->group_fd);
	dev->container_fd = safe_close(dev->container_fd);
}

int vfio_dev_open(const char *pci_addr, struct vfio_dev *ret)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	char path[64];
	int r;

	*ret = (struct vfio_dev){ .container_fd = -EBADF, .group_fd = -EBADF, .device_fd = -EBADF };
	if (strlen(pci_addr) >= sizeof(ret->pci_addr))
		return -EINVAL;
	strcpy(ret->pci_addr, pci_addr);

	r = read_group_id(pci_addr);
	if (r < 0)
		return r;
	ret->group_id = r;

	ret->container_fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (ret->container_fd < 0)
		goto fail_errno;
	if (ioctl(ret->container_fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(ret->container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
		r = -EOPNOTSUPP;
		goto fail;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%d", ret->group_id);
	ret->group_fd = open(path, O_RDWR | O_CLOEXEC);
	if (ret->group_fd < 0)
		goto fail_errno;
	if (ioctl(ret->group_fd, VFIO_GROUP_GET_STATUS, &status) < 0)
		goto fail_errno;
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		r = -EBUSY;
		goto fail;
	}
	if (ioctl(ret->group_fd, VFIO_GROUP_SET_CONTAINER, &ret->container_fd) < 0 ||
	    ioctl(ret->container_fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		goto fail_errno;
	ret->device_fd = ioctl(ret->group_fd, VFIO_GROUP_GET_DEVICE_FD, pci_addr);
	if (ret->device_fd < 0)
		goto fail_errno;
	if (ioctl(ret->device_fd, VFIO_DEVICE_GET_INFO, &info) < 0)
		goto fail_errno;
	ret->num_regions = info.num_regions;
	ret->flags = info.flags;
	return 0;

fail_errno:
	r = -errno;
fail:
	vfio_dev_close(ret);
	return r;
}

/* Reads a sysfs attribute of the device holding a hex number ("0x1af4"). */
static int read_sysfs_hex(const char *pci_addr, const char *attr, unsigned long *ret)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", pci_addr, attr);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int n = fscanf(f, "%lx", ret);
	fclose(f);
	return n == 1 ? 0 : -EINVAL;
}

int vfio_dev_adopt(const char *pci_addr, int container_fd, int group_fd, int device_fd,
		   struct vfio_dev *ret)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct stat st_group, st_node;
	unsigned long vendor, device;
	uint16_t ids[2];
	char path[64];
	int r;

	*ret = (struct vfio_dev){ .container_fd = -EBADF, .group_fd = -EBADF, .device_fd = -EBADF };
	if (strlen(pci_addr) >= sizeof(ret->pci_addr))
		return -EINVAL;
	int group_id = read_group_id(pci_addr);
	if (group_id < 0)
		return group_id;
	/* The group fd is /dev/vfio/N of this device's group, attached to a
	 * container; the device fd answers as a PCI device with its ids. */
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_id);
	if (fstat(group_fd, &st_group) < 0 || stat(path, &st_node) < 0)
		return -errno;
	if (!S_ISCHR(st_group.st_mode) || st_group.st_rdev != st_node.st_rdev)
		return -EXDEV;
	if (ioctl(group_fd, VFIO_GROUP_GET_STATUS, &status) < 0)
		return -errno;
	if (!(status.flags & VFIO_GROUP_FLAGS_CONTAINER_SET))
		return -EBADFD;
	if (ioctl(container_fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return -EBADFD;
	if (ioctl(device_fd, VFIO_DEVICE_GET_INFO, &info) < 0)
		return -errno;
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI))
		return -EBADFD;
	struct vfio_dev probe = { .device_fd = device_fd, .num_regions = info.num_regions };
	r = vfio_config_read(&probe, PCI_VENDOR_ID, ids, sizeof(ids));
	if (r < 0)
		return r;
	if (read_sysfs_hex(pci_addr, "vendor", &vendor) < 0 || read_sysfs_hex(pci_addr, "device", &device) < 0 ||
	    vendor != ids[0] || device != ids[1])
		return -EXDEV;
	*ret = (struct vfio_dev){ .container_fd = container_fd, .group_fd = group_fd,
				  .device_fd = device_fd, .group_id = group_id,
				  .num_regions = info.num_regions, .flags = info.flags };
	strcpy(ret->pci_addr, pci_addr);
	return 0;
}

int vfio_region_info(const struct vfio_dev *dev, uint32_t index, struct vfio_region *ret)
{
	struct vfio_region_info info = { .argsz = sizeof(info), .index = index };

	if (index >= dev->num_regions)
		return -EINVAL;
	if (ioctl(dev->device_fd, VFIO_DEVICE_GET_REGION_INFO, &info) < 0)
		return -errno;
	*ret = (struct vfio_region){ .index = index, .flags = info.flags, .size = info.size,
				     .offset = info.offset };
	return 0;
}

int vfio_config_read(const struct vfio_dev *dev, uint32_t where, void *buf, size_t len)
{
	struct vfio_region cfg;
	int r = vfio_region_info(dev, VFIO_PCI_CONFIG_REGION_INDEX, &cfg);
	if (r < 0)
		return r;
	ssize_t n = pread(dev->device_fd, buf, len, (off_t)(cfg.offset + where));
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int vfio_config_write(const struct vfio_dev *dev, uint32_t where, const void *buf, size_t len)
{
	struct vfio_region cfg;
	int r = vfio_region_info(dev, VFIO_PCI_CONFIG_REGION_INDEX, &cfg);
	if (r < 0)
		return r;
	ssize_t n = pwrite(dev->device_fd, buf, len, (off_t)(cfg.offset + where));
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int vfio_set_memory_enable(const struct vfio_dev *dev, bool enable)
{
	uint16_t cmd;
	int r = vfio_config_read(dev, PCI_COMMAND, &cmd, sizeof(cmd));
	if (r < 0)
		return r;
	cmd = enable ? (cmd | PCI_COMMAND_MEMORY) : (cmd & ~PCI_COMMAND_MEMORY);
	return vfio_config_write(dev, PCI_COMMAND, &cmd, sizeof(cmd));
}

int vfio_pick_vram_bar(const struct vfio_dev *dev)
{
	int best = -ENODEV;
	uint64_t best_size = 0;
	bool best_pref64 = false;

	for (uint32_t i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX; i++) {
		struct vfio_region reg;
		uint32_t bar;

		if (vfio_region_info(dev, i, &reg) < 0 || reg.size == 0 ||
		    !(reg.flags & VFIO_REGION_INFO_FLAG_MMAP))
			continue;
		if (vfio_config_read(dev, PCI_BASE_ADDRESS_0 + 4 * i, &bar, sizeof(bar)) < 0)
			continue;
		if (bar & PCI_BASE_ADDRESS_SPACE_IO)
			continue;
		bool pref64 = (bar & PCI_BASE_ADDRESS_MEM_PREFETCH) &&
			      (bar & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
		if ((pref64 && !best_pref64) || (pref64 == best_pref64 && reg.size > best_size)) {
			best = (int)i;
			best_size = reg.size;
			best_pref64 = pref64;
		}
	}
	return best;
}

static int feature_dmabuf(const struct vfio_dev *dev, uint32_t flags, uint32_t bar,
			  uint64_t offset, uint64_t length, int open_flags)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_dma_buf dmabuf;
		struct vfio_region_dma_range range;
	} __attribute__((packed)) arg = {
		.hdr = { .argsz = sizeof(arg), .flags = flags | VFIO_DEVICE_FEATURE_DMA_BUF },
		.dmabuf = { .region_index = bar, .open_flags = (uint32_t)open_flags, .nr_ranges = 1 },
		.range = { .offset = offset, .length = length },
	};
	int r = ioctl(dev->device_fd, VFIO_DEVICE_FEATURE, &arg);
	return r < 0 ? -errno : r;
}

int vfio_dmabuf_probe(const struct vfio_dev *dev)
{
	return feature_dmabuf(dev, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET, 0, 0, 0, 0);
}

int vfio_dmabuf_export(const struct vfio_dev *dev, uint32_t bar, uint64_t offset,
		       uint64_t length, int open_flags)
{
	return feature_dmabuf(dev, VFIO_DEVICE_FEATURE_GET, bar, offset, length,
			      (open_flags & O_ACCMODE) | O_CLOEXEC);
}

int vfio_region_mmap(const struct vfio_dev *dev, uint32_t index, void **ret, uint64_t *ret_size)
{
	struct vfio_region reg;
	int r = vfio_region_info(dev, index, &reg);
	if (r < 0)
		return r;
	if (!(reg.flags & VFIO_REGION_INFO_FLAG_MMAP) || reg.size == 0)
		return -EOPNOTSUPP;
	void *p = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->device_fd,
		       (off_t)reg.offset);
	if (p == MAP_FAILED)
		return -errno;
	*ret = p;
	*ret_size = reg.size;
	return 0;
}

void vfio_region_zero(void *p, uint64_t size)
{
	/* No memset tricks; eight stores to a turn of the loop, which costs
	 * more than the stores on the daemon's loop thread. */
	volatile uint64_t *w = p;
	uint64_t words = size / sizeof(uint64_t), i = 0;

	for (; i + 8 <= words; i += 8) {
		w[i] = 0; w[i + 1] = 0; w[i + 2] = 0; w[i + 3] = 0;
		w[i + 4] = 0; w[i + 5] = 0; w[i + 6] = 0; w[i + 7] = 0;
	}
	for (; i < words; i++)
		w[i] = 0;
}

int dmabuf_set_name(int fd, const char *name)
{
	char buf[DMA_BUF_NAME_LEN] = "";

	memcpy(buf, name, strnlen(name, sizeof(buf) - 1)); /* cut to the kernel's length */
	return ioctl(fd, DMA_BUF_SET_NAME_B, buf) < 0 ? -errno : 0;
}

/* The value of fdinfo's "key:" line (blanks skipped), or NULL. The reuse
 * rule reads the count on every release: one pass, nothing copied, and no
 * call into libc (each costs more than the loop under emulation). */
static const char *fdinfo_value(const char *text, const char *key)
{
	for (const char *line = text; *line;) {
		const char *p = line, *k = key;

		while (*k && *p == *k)
			p++, k++;
		if (!*k && *p == ':') {
			for (p++; *p == ' ' || *p == '\t'; p++)
				;
			return p;
		}
		while (*p && *p != '\n')
			p++;
		line = *p ? p + 1 : p;
	}
	return NULL;
}

/* A count as the kernel prints it: decimal digits, then the line's end. */
static int parse_count(const char *v, long *ret)
{
	long n = 0;

	if (*v < '0' || *v > '9')
		return -EBADMSG;
	for (; *v >= '0' && *v <= '9'; v++) {
		int digit = *v - '0';

		if (n > (LONG_MAX - digit) / 10)
			return -ERANGE;
		n = n * 10 + digit;
	}
	if (*v && *v != '\n')
		return -EBADMSG;
	*ret = n;
	return 0;
}

int dmabuf_query(int fd, uint64_t *ret_size, long *ret_count, char *ret_exp_name, size_t exp_name_len)
{
	char path[64], text[1024];

	if (ret_size) {
		off_t end = lseek(fd, 0, SEEK_END);
		if (end < 0)
			return -errno;
		*ret_size = (uint64_t)end;
		lseek(fd, 0, SEEK_SET);
	}
	if (!ret_count && !ret_exp_name)
		return 0;
	/* One open and one read: the window reuse rule runs this per release. */
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	ssize_t n = read(f, text, sizeof(text) - 1);
	int r = n < 0 ? -errno : 0;
	close(f);
	if (r < 0)
		return r;
	text[n] = '\0';
	return dmabuf_fdinfo_parse(text, ret_count, ret_exp_name, exp_name_len);
}

int dmabuf_fdinfo_parse(const char *text, long *ret_count, char *ret_exp_name, size_t exp_name_len)
{
	const char *v;

	if (ret_count) {
		v = fdinfo_value(text, "count");
		if (!v)
			return -ENOTTY; /* not a dma-buf */
		int r = parse_count(v, ret_count);
		if (r < 0)
			return r;
	}
	if (ret_exp_name) {
		v = fdinfo_value(text, "exp_name");
		if (!v)
			return -ENOTTY;
		if (exp_name_len) {
			size_t n = MIN(strcspn(v, "\n"), exp_name_len - 1);
			memcpy(ret_exp_name, v, n);
			ret_exp_name[n] = '\0';
		}
	}
	return 0;
}

int vfio_feature_probe(const struct vfio_dev *dev, uint32_t feature, uint32_t ops)
{
	struct vfio_device_feature hdr = {
		.argsz = sizeof(hdr),
		.flags = VFIO_DEVICE_FEATURE_PROBE | ops | feature,
	};
	int r = ioctl(dev->device_fd, VFIO_DEVICE_FEATURE, &hdr);
	return r < 0 ? -errno : r;
}

int vfio_dmabuf_revoke(const struct vfio_dev *dev, int dmabuf_fd)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_dma_buf_revoke revoke;
	} __attribute__((packed)) arg = {
		.hdr = { .argsz = sizeof(arg),
			 .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE },
		.revoke = { .dmabuf_fd = dmabuf_fd },
	};
	int r = ioctl(dev->device_fd, VFIO_DEVICE_FEATURE, &arg);
	return r < 0 ? -errno : r;
}

int vfio_dmabuf_set_memattr(const struct vfio_dev *dev, int dmabuf_fd, uint32_t memattr)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_dma_buf_memattr attr;
	} __attribute__((packed)) arg = {
		.hdr = { .argsz = sizeof(arg),
			 .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR },
		.attr = { .dmabuf_fd = dmabuf_fd, .memattr = memattr },
	};
	int r = ioctl(dev->device_fd, VFIO_DEVICE_FEATURE, &arg);
	return r < 0 ? -errno : r;
}

int vfio_dmabuf_mmap_probe(const struct vfio_dev *dev, uint32_t bar)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = vfio_dmabuf_export(dev, bar, 0, (uint64_t)page, O_RDWR);
	if (fd < 0)
		return fd;
	void *p = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
	int r = p == MAP_FAILED ? -errno : 0;
	if (p != MAP_FAILED)
		munmap(p, (size_t)page);
	close(fd);
	/* ENODEV: the kernel maps dma-bufs, this one is revoked (decode off). */
	return r == -ENODEV ? 0 : r;
}

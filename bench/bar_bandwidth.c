// SPDX-License-Identifier: MIT
/*
 * bar_bandwidth: CPU write and read bandwidth of a VRAM window through a
 * leased dma-buf's mmap (kernel-patches/: uncached, and write-combined where
 * the lease asks), next to the limit measured in the same run: the same
 * window through the VFIO region mmap of the same BAR, which is how
 * barkeepd itself maps the BAR.
 *
 *   bar_bandwidth [-s SIZE] [-r ROUNDS] SOCKET FREE_PCI
 *
 * A VFIO group opens in one process only, so the limit maps the BAR through
 * a copy of the daemon's own device fd (pidfd_getfd(): root, as bench/run
 * runs it; the daemon is the socket's peer). Same device, same bytes: two
 * emulated devices' memory differ by a few percent under TCG, which is the
 * size of the target. Where the fd cannot be had, the limit falls back to
 * the region mmap of FREE_PCI (another device; it says so).
 *
 * The kinds are measured interleaved in rounds (SIZE bytes copied from and
 * to an ordinary buffer), so drift of the host hits all alike. The order
 * runs through every permutation of the kinds: the region and the uncached
 * lease are the same host memory, and whichever of the two comes right
 * after the other finds it in the host's cache (an order that only rotates
 * put the lease after the region twice as often, and its writes looked 10%
 * faster). Prints MB/s from the median transfer of each kind and
 * the ratios lease/limit (target 1.0 +- 5% for the same memory attribute:
 * the lease's uncached mapping against the region's, which is uncached too).
 * On a kernel without dma-buf mmap (stock 7.2) it says so and exits 0.
 * Under QEMU TCG memory attributes do not change the speed of guest stores,
 * so WC against uncached means nothing there.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/vfio.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"
#include "common/vfio.h"

#define MiB (1024ull * 1024ull)

enum { K_REGION, K_LEASE_NC, K_LEASE_WC, N_KINDS };
static const char *const kind_name[N_KINDS] = { "region", "lease-nc", "lease-wc" };

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The copy every kind is timed with: the same instructions whatever the
 * addresses. glibc's memcpy picks its strategy from the distance between
 * source and destination (4 KiB aliasing), and under TCG those strategies
 * differ in cost by more than the 5% measured here: two mappings of the
 * same bytes at different addresses timed 6% apart with memcpy.
 */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void copy_words(void *dst, const void *src, size_t size)
{
	uint64_t *d = dst;
	const uint64_t *s = src;

	for (size_t i = 0; i < size / sizeof(*d); i += 4) {
		d[i] = s[i];
		d[i + 1] = s[i + 1];
		d[i + 2] = s[i + 2];
		d[i + 3] = s[i + 3];
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median of v[0..n), which stays in its order. */
static double median(const double *v, unsigned n)
{
	double *s = malloc(n * sizeof(*s)), m;

	if (!s)
		return 0;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

/*
 * The ordinary buffer each kind copies from and to, at the same distance
 * from its mapping for every kind. QEMU's TCG looks guest pages up in a
 * direct-mapped TLB (a power of two of slots) indexed by the page number:
 * where the source's page and the destination's share a slot, every access
 * misses. With one buffer for all, that depended on where mmap() put each
 * mapping, and one lease's writes ran 13% faster than the region mapping
 * of the same bytes. An odd number of pages apart, they never share one.
 */
static int ram_buffers(void *const map[N_KINDS], size_t size, uint8_t *ret[N_KINDS])
{
	static const uint64_t gap[] = {
		(1ull << 32) + 37 * 4096, (1ull << 33) + 37 * 4096, (1ull << 34) + 37 * 4096,
		(1ull << 30) + 37 * 4096,
	};

	for (size_t g = 0; g < ARRAY_SIZE(gap); g++) {
		bool ok = true;
		for (int k = 0; k < N_KINDS; k++) {
			if (!map[k])
				continue;
			void *want = (uint8_t *)map[k] - gap[g], *p;
			p = mmap(want, size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (p == MAP_FAILED || p != want) {
				if (p != MAP_FAILED)
					munmap(p, size);
				ok = false;
				break;
			}
			ret[k] = p;
			memset(p, 0x5a, size);
		}
		if (ok)
			return 0;
		for (int k = 0; k < N_KINDS; k++)
			if (ret[k])
				munmap(ret[k], size);
		memset(ret, 0, N_KINDS * sizeof(*ret));
	}
	fprintf(stderr, "bar_bandwidth: no room for the copy buffers below the mappings\n");
	return -ENOMEM;
}

/* A copy of the daemon's VFIO device fd whose region bar_index is bar_size
 * long, or -errno. */
static int daemon_device_fd(struct barkeep *bk, uint32_t bar_index, uint64_t bar_size)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char dir[64], path[320], link[64];

	if (getsockopt(barkeep_get_fd(bk), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	int pidfd = pidfd_open(cred.pid, 0);
	if (pidfd < 0)
		return -errno;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)cred.pid);
	DIR *d = opendir(dir);
	int found = -ENOENT;
	for (struct dirent *e; d && found < 0 && (e = readdir(d));) {
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n < 0 || (link[n] = '\0', strcmp(link, "anon_inode:[vfio-device]") != 0))
			continue;
		int fd = pidfd_getfd(pidfd, atoi(e->d_name), 0);
		if (fd < 0) {
			found = -errno;
			break;
		}
		struct vfio_dev vd = { .container_fd = -1, .group_fd = -1, .device_fd = fd,
				       .num_regions = VFIO_PCI_NUM_REGIONS };
		struct vfio_region reg;
		if (vfio_region_info(&vd, bar_index, &reg) == 0 && reg.size == bar_size)
			found = fd;
		else
			close(fd);
	}
	if (d)
		closedir(d);
	close(pidfd);
	return found;
}

int main(int argc, char **argv)
{
	uint64_t size = 8 * MiB;
	unsigned rounds = 204; /* a multiple of the 6 orders */
	int opt;

	while ((opt = getopt(argc, argv, "s:r:")) != -1) {
		if (opt == 's')
			size = strtoull(optarg, NULL, 0) * MiB;
		else if (opt == 'r')
			rounds = (unsigned)strtoul(optarg, NULL, 0);
		else
			return 2;
	}
	if (argc - optind != 2 || size == 0 || rounds == 0) {
		fprintf(stderr, "usage: bar_bandwidth [-s MiB] [-r ROUNDS] SOCKET FREE_PCI\n");
		return 2;
	}
	const char *sock = argv[optind], *free_pci = argv[optind + 1];

	struct barkeep *bk = NULL;
	if (barkeep_connect(sock, "bar_bandwidth", &bk) < 0) {
		fprintf(stderr, "bar_bandwidth: connect: %s\n", barkeep_error_message(NULL));
		return 1;
	}
	struct barkeep_device *devs = NULL;
	size_t n_devs = 0;
	if (barkeep_list_devices(bk, &devs, &n_devs) < 0 || n_devs == 0) {
		fprintf(stderr, "bar_bandwidth: no device: %s\n", barkeep_error_message(bk));
		return 1;
	}
	uint64_t features = devs[0].features;
	uint32_t dev_id = devs[0].id, bar_index = devs[0].bar_index;
	uint64_t bar_size = devs[0].bar_size;
	free(devs);
	if (!(features & BARKEEP_FEATURE_DMABUF_MMAP)) {
		printf("bar_bandwidth: skipped: the kernel cannot mmap VFIO dma-bufs (load the "
		       "kernel-patches/ module: tests/vm/run --vfio-pci-core ...)\n");
		barkeep_disconnect(bk);
		return 0;
	}

	struct barkeep_lease *lease[2] = { NULL, NULL };
	void *map[N_KINDS] = { NULL };
	for (int i = 0; i < 2; i++) {
		struct barkeep_alloc_params p = {
			.by_id = true, .device_id = dev_id, .size = size,
			.flags = i ? BARKEEP_ALLOC_WRITE_COMBINE : 0,
		};
		if (i && !(features & BARKEEP_FEATURE_MEMATTR_WC))
			continue;
		const char *msg = NULL;
		if (barkeep_alloc(bk, &p, &lease[i]) < 0) {
			fprintf(stderr, "bar_bandwidth: alloc: %s\n", barkeep_error_message(bk));
			return 1;
		}
		int r = barkeep_lease_mmap(lease[i], PROT_READ | PROT_WRITE, &map[K_LEASE_NC + i], &msg);
		if (r < 0) {
			fprintf(stderr, "bar_bandwidth: lease mmap: %s\n", msg ? msg : strerror(-r));
			return 1;
		}
	}

	/* The limit: the region mmap of the same BAR, at the uncached lease's
	 * offset (the same bytes; the write-combined lease is another window). */
	struct vfio_dev vd = { .container_fd = -1, .group_fd = -1,
			       .num_regions = VFIO_PCI_NUM_REGIONS };
	void *region = NULL;
	uint64_t region_size = 0, at = 0;
	int r = daemon_device_fd(bk, bar_index, bar_size);
	if (r >= 0) {
		vd.device_fd = r;
		r = vfio_region_mmap(&vd, bar_index, &region, &region_size);
		at = lease[0]->bar_offset;
		printf("bar_bandwidth: limit: the daemon's VFIO device fd, BAR%u region mmap, "
		       "at the uncached lease's offset\n", bar_index);
	} else {
		printf("bar_bandwidth: no copy of the daemon's device fd (%s): the limit is the "
		       "region mmap of %s, another device\n", strerror(-r), free_pci);
		r = vfio_dev_open(free_pci, &vd);
		if (r >= 0) {
			int bar = vfio_pick_vram_bar(&vd);
			r = bar < 0 ? bar : vfio_region_mmap(&vd, (uint32_t)bar, &region, &region_size);
		}
	}
	if (r >= 0 && at + size > region_size)
		r = -ERANGE;
	if (r < 0 || region_size < size) {
		fprintf(stderr, "bar_bandwidth: region mmap: %s\n",
			r < 0 ? strerror(-r) : "BAR smaller than the window");
		return 1;
	}
	map[K_REGION] = (uint8_t *)region + at;

	uint8_t *ram[N_KINDS] = { NULL };
	if (ram_buffers(map, size, ram) < 0)
		return 1;
	double *wr[N_KINDS], *rd[N_KINDS];
	for (int k = 0; k < N_KINDS; k++) {
		wr[k] = calloc(rounds, sizeof(double));
		rd[k] = calloc(rounds, sizeof(double));
		if (!wr[k] || !rd[k])
			return 1;
	}

	/* A warm-up pass faults every page of every mapping in; then the rounds
	 * run through the orders, each kind following each other one as often. */
	static const int order[6][N_KINDS] = {
		{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
	};
	for (int k = 0; k < N_KINDS; k++)
		if (map[k])
			memcpy(map[k], ram[k], size);
	for (unsigned i = 0; i < rounds; i++) {
		for (int j = 0; j < N_KINDS; j++) {
			int k = order[i % ARRAY_SIZE(order)][j];
			if (!map[k])
				continue;
			double t = now();
			copy_words(map[k], ram[k], size);
			__sync_synchronize();
			wr[k][i] = now() - t;
			t = now();
			copy_words(ram[k], map[k], size);
			rd[k][i] = now() - t;
		}
	}

	double wmb[N_KINDS] = { 0 }, rmb[N_KINDS] = { 0 };
	printf("bar_bandwidth: %llu MiB window, %u interleaved rounds, 64-bit word copies, MB/s of "
	       "the median\n",
	       (unsigned long long)(size / MiB), rounds);
	for (int k = 0; k < N_KINDS; k++) {
		if (!map[k]) {
			printf("  %-8s  not measured (no write-combining on this device)\n", kind_name[k]);
			continue;
		}
		wmb[k] = (double)size / 1e6 / median(wr[k], rounds);
		rmb[k] = (double)size / 1e6 / median(rd[k], rounds);
		printf("  %-8s  write %9.1f MB/s   read %9.1f MB/s\n", kind_name[k], wmb[k], rmb[k]);
	}
	/* Ratios per round (the kinds ran back to back), then their median: drift
	 * of a loaded host between rounds cancels out. */
	double *ratio_w = calloc(rounds, sizeof(double)), *ratio_r = calloc(rounds, sizeof(double));
	if (!ratio_w || !ratio_r)
		return 1;
	for (int k = K_LEASE_NC; k < N_KINDS; k++) {
		if (!map[k])
			continue;
		for (unsigned i = 0; i < rounds; i++) {
			ratio_w[i] = wr[K_REGION][i] / wr[k][i];
			ratio_r[i] = rd[K_REGION][i] / rd[k][i];
		}
		printf("  %s/region: write %.3fx  read %.3fx  (medians of per-round ratios; of the "
		       "medians: %.3fx, %.3fx)%s\n", kind_name[k], median(ratio_w, rounds),
		       median(ratio_r, rounds), wmb[k] / wmb[K_REGION], rmb[k] / rmb[K_REGION],
		       k == K_LEASE_NC ? "  same attribute: target 1.0 +- 5%" :
					 "  different attribute: no target");
	}
	free(ratio_w);
	free(ratio_r);

	for (int i = 0; i < 2; i++) {
		if (!lease[i])
			continue;
		barkeep_lease_munmap(lease[i], map[K_LEASE_NC + i]);
		barkeep_release(bk, lease[i]);
	}
	munmap(region, region_size);
	vfio_dev_close(&vd);
	barkeep_disconnect(bk);
	for (int k = 0; k < N_KINDS; k++) {
		free(wr[k]);
		free(rd[k]);
	}
	for (int k = 0; k < N_KINDS; k++)
		if (ram[k])
			munmap(ram[k], size);
	return 0;
}

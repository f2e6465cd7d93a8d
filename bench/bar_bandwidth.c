// SPDX-License-Identifier: MIT
/*
 * bar_bandwidth: CPU write and read bandwidth of a VRAM window through a
 * leased dma-buf's mmap (kernel-patches/: uncached, and write-combined where
 * the lease asks), next to the limit measured in the same run: the VFIO
 * region mmap of a VRAM BAR, which is how barkeepd itself maps the BAR.
 *
 *   bar_bandwidth [-s SIZE] [-r ROUNDS] SOCKET FREE_PCI
 *
 * bench/run starts barkeepd on one emulated GPU and passes the other as
 * FREE_PCI: a VFIO group opens in one process only, so the limit maps that
 * device's VRAM BAR the way the daemon's backend does (vfio_region_mmap),
 * the same kind of BAR (ivshmem BAR2). The kinds are measured interleaved in
 * rounds (memcpy of SIZE bytes from/to an ordinary buffer), so drift of the
 * host hits all alike (after a warm-up pass that faults every page in, the
 * order of the kinds rotates per round). Prints MB/s from the median transfer of each kind and
 * the ratios lease/limit (target 1.0 +- 5% for the same memory attribute:
 * the lease's uncached mapping against the region's, which is uncached too).
 * On a kernel without dma-buf mmap (stock 7.2) it says so and exits 0.
 * Under QEMU TCG memory attributes do not change the speed of guest stores,
 * so WC against uncached means nothing there.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

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

int main(int argc, char **argv)
{
	uint64_t size = 8 * MiB;
	unsigned rounds = 61;
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
	uint32_t dev_id = devs[0].id;
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

	struct vfio_dev vd;
	int r = vfio_dev_open(free_pci, &vd);
	if (r < 0) {
		fprintf(stderr, "bar_bandwidth: open %s: %s\n", free_pci, strerror(-r));
		return 1;
	}
	int bar = vfio_pick_vram_bar(&vd);
	void *region = NULL;
	uint64_t region_size = 0;
	r = bar < 0 ? bar : vfio_region_mmap(&vd, (uint32_t)bar, &region, &region_size);
	if (r < 0 || region_size < size) {
		fprintf(stderr, "bar_bandwidth: region mmap of %s: %s\n", free_pci,
			r < 0 ? strerror(-r) : "BAR smaller than the window");
		return 1;
	}
	map[K_REGION] = region;

	uint8_t *ram = malloc(size);
	if (!ram)
		return 1;
	memset(ram, 0x5a, size);
	double *wr[N_KINDS], *rd[N_KINDS];
	for (int k = 0; k < N_KINDS; k++) {
		wr[k] = calloc(rounds, sizeof(double));
		rd[k] = calloc(rounds, sizeof(double));
		if (!wr[k] || !rd[k])
			return 1;
	}

	/* A warm-up pass faults every page of every mapping in; then the order
	 * of the kinds rotates per round, so none always follows the same one. */
	for (int k = 0; k < N_KINDS; k++)
		if (map[k])
			memcpy(map[k], ram, size);
	for (unsigned i = 0; i < rounds; i++) {
		for (int j = 0; j < N_KINDS; j++) {
			int k = (int)((i + (unsigned)j) % N_KINDS);
			if (!map[k])
				continue;
			double t = now();
			memcpy(map[k], ram, size);
			__sync_synchronize();
			wr[k][i] = now() - t;
			t = now();
			memcpy(ram, map[k], size);
			rd[k][i] = now() - t;
		}
	}

	double wmb[N_KINDS] = { 0 }, rmb[N_KINDS] = { 0 };
	printf("bar_bandwidth: %llu MiB window, %u interleaved rounds, memcpy, MB/s of the median\n",
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
	free(ram);
	return 0;
}

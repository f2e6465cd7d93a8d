// SPDX-License-Identifier: MIT
/*
 * p2p_bandwidth: peer-to-peer DMA bandwidth of an importer (the edu device
 * driven by tests/kmod/bk_edu.ko, /dev/bk_edu0) into a window leased from
 * barkeepd, next to the same importer's DMA into a window of the same size
 * exported directly with VFIO_DEVICE_FEATURE_DMA_BUF, without barkeep.
 *
 *   p2p_bandwidth [-r ROUNDS] [-n PER_ROUND] SOCKET FREE_PCI
 *
 * SOCKET is the daemon's; FREE_PCI is a vfio-pci device of the same kind
 * that the daemon does not hold (a VFIO group opens in one process only),
 * where the direct window is exported, at the lease's BAR offset when it
 * fits. bench/run and tests/vm/suites/40-p2p.sh give the daemon one emulated
 * GPU and pass the other; both sit on the root bus, where peer traffic goes
 * through the host bridge.
 *
 * Writes: peer DMAs of BK_EDU_CHUNK bytes from edu's internal buffer into
 * the window (BK_EDU_F_STAGED: the RAM -> edu copy is done before, untimed).
 * Reads: a peer DMA from the window into edu plus edu's copy to RAM. The
 * two windows take turns transfer by transfer, in alternating order, so
 * drift of the host hits both alike. Prints MB/s of each (from the median transfer
 * time: the machine's other load stalls single transfers) and the ratio
 * leased/direct against the target 1.00 +- 0.05 (the broker is not on the
 * data path: once the importer holds the dma-buf, barkeep has no part in
 * its DMA). QEMU's
 * edu completes each DMA on a 100 ms timer of the virtual clock, so the
 * absolute figures are the emulator's; the ratio is the point. Exits
 * non-zero only when something failed, not on the ratio; without
 * /dev/bk_edu0 (no --edu) it says it skipped and exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"
#include "common/vfio.h"
#include "tests/kmod/bk_edu.h"
#include "tests/lib/stats.h"

#define NAME "p2p_bandwidth"
#define die(...) bench_die(NAME, __VA_ARGS__)
#define WINDOW (1ull << 20)
#define SEED 0x5eedu
#define TARGET_TOLERANCE 0.05

enum kind { LEASED, DIRECT, N_KINDS };
static const char *const kind_name[N_KINDS] = { "leased", "direct" };

static int edu_open_import(int dmabuf)
{
	char path[64];
	struct bk_edu_import imp = { .fd = dmabuf };
	int fd;

	snprintf(path, sizeof(path), BK_EDU_DEVICE_FMT, 0u);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("cannot open %s (is bk_edu.ko loaded and an edu device present?): %m", path);
	if (ioctl(fd, BK_EDU_IOC_IMPORT, &imp) < 0)
		die("the importer cannot import the window: %m");
	if (imp.size != WINDOW)
		die("the imported window has %llu bytes, expected %llu",
		    (unsigned long long)imp.size, WINDOW);
	return fd;
}

static void xfer(int fd, unsigned long req, uint64_t off, uint32_t flags, uint32_t seed, void *data)
{
	struct bk_edu_xfer x = { .offset = off, .len = BK_EDU_CHUNK, .flags = flags, .seed = seed,
				 .data = (uintptr_t)data };

	if (ioctl(fd, req, &x) < 0)
		die("%s of %u bytes at %#llx: %m", req == BK_EDU_IOC_WRITE ? "WRITE" : "READ",
		    BK_EDU_CHUNK, (unsigned long long)off);
}

/* The PCI address of the edu device behind /dev/bk_edu0, for the report. */
static void edu_address(char *buf, size_t len)
{
	char link[PATH_MAX];
	ssize_t n = readlink("/sys/class/misc/bk_edu0/device", link, sizeof(link) - 1);
	const char *base;

	if (n < 0) {
		snprintf(buf, len, "?");
		return;
	}
	link[n] = 0;
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	if (strlen(base) >= len)
		snprintf(buf, len, "?");
	else
		memcpy(buf, base, strlen(base) + 1);
}

/*
 * MB/s of each window from the median transfer time (a busy host stalls
 * single transfers of either kind by hundreds of ms; the median does not
 * move), the mean next to it, and the ratio of the medians.
 */
static void report(const char *what, uint64_t *ns[N_KINDS], unsigned count)
{
	double mbs[N_KINDS];

	for (int k = 0; k < N_KINDS; k++) {
		uint64_t sum = 0;

		for (unsigned i = 0; i < count; i++)
			sum += ns[k][i];
		bench_sort_u64(ns[k], count);
		uint64_t med = ns[k][count / 2];
		mbs[k] = BK_EDU_CHUNK / ((double)med / 1e9) / 1e6;
		printf("%-5s %-6s %8.4f MB/s  (median of %u transfers %.1f ms; min %.1f, mean %.1f, "
		       "max %.1f ms)\n", what, kind_name[k], mbs[k], count, (double)med / 1e6,
		       (double)ns[k][0] / 1e6, (double)sum / count / 1e6,
		       (double)ns[k][count - 1] / 1e6);
	}
	double ratio = mbs[LEASED] / mbs[DIRECT];
	printf("%-5s ratio leased/direct %.3f (target 1.00 +- %.2f: %s)\n", what, ratio,
	       TARGET_TOLERANCE,
	       ratio >= 1 - TARGET_TOLERANCE && ratio <= 1 + TARGET_TOLERANCE ? "met" : "NOT met");
}

int main(int argc, char **argv)
{
	unsigned rounds = 6, per_round = 4;
	struct barkeep_alloc_params params = { .size = WINDOW };
	struct barkeep_lease *lease = NULL;
	struct barkeep_device *devs = NULL;
	struct barkeep *bk = NULL;
	struct vfio_region region;
	struct vfio_dev dev;
	uint64_t direct_off, *wns[N_KINDS], *rns[N_KINDS];
	const char *leased_pci = "?";
	unsigned leased_bar = 0;
	char edu_pci[64];
	size_t n_devs = 0;
	int fds[N_KINDS], direct, bar, r, c;

	while ((c = getopt(argc, argv, "r:n:")) != -1) {
		switch (c) {
		case 'r': rounds = (unsigned)atoi(optarg); break;
		case 'n': per_round = (unsigned)atoi(optarg); break;
		default: goto usage;
		}
	}
	if (argc - optind != 2 || !rounds || !per_round) {
usage:
		fprintf(stderr, "usage: " NAME " [-r ROUNDS] [-n PER_ROUND] SOCKET FREE_PCI\n");
		return 2;
	}

	/* bench/run runs every benchmark: without an importer there is nothing to do. */
	if (access("/dev/bk_edu0", F_OK) < 0) {
		printf(NAME ": skipped: no /dev/bk_edu0 (boot the VM with --edu 1; the harness "
		       "loads tests/kmod/bk_edu.ko, built by make kmod)\n");
		return 0;
	}

	r = barkeep_connect(argv[optind], NAME, &bk);
	if (r < 0)
		die("cannot connect to %s: %s", argv[optind], barkeep_error_message(NULL));
	r = barkeep_alloc(bk, &params, &lease);
	if (r < 0)
		die("ALLOC of %llu bytes: %s", WINDOW, barkeep_error_message(bk));
	if (barkeep_list_devices(bk, &devs, &n_devs) == 0)
		for (size_t i = 0; i < n_devs; i++)
			if (devs[i].id == lease->device_id) {
				leased_pci = devs[i].pci_address;
				leased_bar = devs[i].bar_index;
			}

	r = vfio_dev_open(argv[optind + 1], &dev);
	if (r < 0)
		die("cannot open %s through VFIO: %s", argv[optind + 1], strerror(-r));
	bar = vfio_pick_vram_bar(&dev);
	if (bar < 0 || vfio_region_info(&dev, (uint32_t)bar, &region) < 0)
		die("%s has no BAR to export", argv[optind + 1]);
	direct_off = lease->bar_offset + WINDOW <= region.size ? lease->bar_offset : 0;
	direct = vfio_dmabuf_export(&dev, (uint32_t)bar, direct_off, WINDOW, O_RDWR | O_CLOEXEC);
	if (direct < 0)
		die("cannot export a window of %s: %s", argv[optind + 1], strerror(-direct));

	fds[LEASED] = edu_open_import(lease->fd);
	fds[DIRECT] = edu_open_import(direct);
	edu_address(edu_pci, sizeof(edu_pci));
	printf(NAME ": importer bk_edu0 (%s), %llu KiB windows: leased from barkeepd on %s "
	       "BAR%u at %#llx, exported directly from %s BAR%d at %#llx\n", edu_pci,
	       WINDOW >> 10, leased_pci, leased_bar,
	       (unsigned long long)lease->bar_offset, argv[optind + 1], bar,
	       (unsigned long long)direct_off);
	printf(NAME ": %u rounds x %u transfers of %u bytes per window and direction, "
	       "interleaved one by one\n", rounds, per_round, BK_EDU_CHUNK);

	/* Both paths work before anything is timed. */
	for (int k = 0; k < N_KINDS; k++)
		xfer(fds[k], BK_EDU_IOC_WRITE, 0, BK_EDU_F_SEED, SEED, NULL);

	unsigned count = rounds * per_round, n = 0;
	for (int k = 0; k < N_KINDS; k++) {
		wns[k] = calloc(count, sizeof(uint64_t));
		rns[k] = calloc(count, sizeof(uint64_t));
		if (!wns[k] || !rns[k])
			die("out of memory");
	}

	uint64_t slots = WINDOW / 4096, step = 0;
	for (unsigned round = 0; round < rounds; round++) {
		/* The reads of the last round used edu's buffer: stage again, untimed. */
		xfer(fds[round % N_KINDS], BK_EDU_IOC_WRITE, 0, BK_EDU_F_SEED, SEED, NULL);
		/* Transfer by transfer, the two windows in turns, the first alternating. */
		for (unsigned i = 0; i < per_round; i++) {
			for (int j = 0; j < N_KINDS; j++) {
				int k = (int)((round + i + (unsigned)j) % N_KINDS);
				uint64_t t = bench_now_ns();
				xfer(fds[k], BK_EDU_IOC_WRITE, ((step + i) % slots) * 4096,
				     BK_EDU_F_STAGED, 0, NULL);
				wns[k][n + i] = bench_now_ns() - t;
			}
		}
		for (unsigned i = 0; i < per_round; i++) {
			for (int j = 0; j < N_KINDS; j++) {
				int k = (int)((round + i + (unsigned)j + 1) % N_KINDS);
				uint8_t buf[BK_EDU_CHUNK];
				uint64_t t = bench_now_ns();
				xfer(fds[k], BK_EDU_IOC_READ, ((step + i) % slots) * 4096, 0, 0, buf);
				rns[k][n + i] = bench_now_ns() - t;
			}
		}
		step += per_round;
		n += per_round;
	}

	/* What was read back last is what the staged writes put there. */
	for (int k = 0; k < N_KINDS; k++) {
		uint8_t buf[BK_EDU_CHUNK];

		xfer(fds[k], BK_EDU_IOC_READ, ((step - 1) % slots) * 4096, 0, 0, buf);
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i] != bk_edu_pattern(SEED, i))
				die("%s window: byte %zu read back as %#x, expected %#x", kind_name[k],
				    i, buf[i], bk_edu_pattern(SEED, i));
	}

	report("write", wns, count);
	report("read", rns, count);

	for (int k = 0; k < N_KINDS; k++)
		close(fds[k]);
	close(direct);
	vfio_dev_close(&dev);
	for (int k = 0; k < N_KINDS; k++) {
		free(wns[k]);
		free(rns[k]);
	}
	free(devs);
	barkeep_release(bk, lease);
	barkeep_disconnect(bk);
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * Device to device through a lease, on a real kernel: a window of gpu0's BAR
 * leased from barkeepd is imported by the edu device ("GPU B", driven by
 * tests/kmod/bk_edu.ko), which DMAs into it and out of it; the bytes are
 * checked in the host file that backs gpu0's BAR. Then a lease released
 * while the importer holds it (revoked alone where the kernel can), a reset
 * of gpu0 through barkeepd as the importer sees it, and the daemon's exit.
 * Run inside the VM by tests/vm/suites/40-p2p.sh:
 *   p2p_test SOCKET DAEMON_PID VRAM_FILE_OF_GPU0
 * or, under systemd (42-p2p-restart), "p2p_test SOCKET 0 VRAM_FILE restart":
 * import and write, then systemctl restart barkeepd and check the import.
 * The daemon must lend gpu0 (device 0) to root; its last test stops the daemon
 * with SIGTERM. With P2P_EXPECT_REVOKE=1 in the environment (suite
 * 41-p2p-patched, kernel-patches/ loaded) gpu0 must offer per-buffer revoke.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "tests/kmod/bk_edu.h"
#include "tests/unit/unit.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GUARD (64 * KiB) /* bytes checked on each side of a window */
#define FILL 0xa5

static const char *sock_path, *vram0;
static pid_t daemon_pid;
static struct barkeep *bk;
static struct barkeep_lease *spacer; /* first on gpu0: the lease below has neighbours */
static struct barkeep_lease *lease;  /* 1 MiB on gpu0, imported by edu */
static int edu = -1;

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int edu_open(void)
{
	char path[64];
	snprintf(path, sizeof(path), BK_EDU_DEVICE_FMT, 0u);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "  open %s: %m\n", path);
	return fd;
}

static int edu_import(int fd, int dmabuf, uint64_t *ret_size)
{
	struct bk_edu_import imp = { .fd = dmabuf };
	if (ioctl(fd, BK_EDU_IOC_IMPORT, &imp) < 0)
		return -errno;
	if (ret_size)
		*ret_size = imp.size;
	return 0;
}

static int edu_write_seed(int fd, uint64_t off, uint32_t len, uint32_t seed)
{
	struct bk_edu_xfer x = { .offset = off, .len = len, .flags = BK_EDU_F_SEED, .seed = seed };
	return ioctl(fd, BK_EDU_IOC_WRITE, &x) < 0 ? -errno : 0;
}

static int edu_write(int fd, uint64_t off, const void *data, uint32_t len)
{
	struct bk_edu_xfer x = { .offset = off, .len = len, .data = (uintptr_t)data };
	return ioctl(fd, BK_EDU_IOC_WRITE, &x) < 0 ? -errno : 0;
}

static int edu_read(int fd, uint64_t off, void *data, uint32_t len)
{
	struct bk_edu_xfer x = { .offset = off, .len = len, .data = (uintptr_t)data };
	return ioctl(fd, BK_EDU_IOC_READ, &x) < 0 ? -errno : 0;
}

static struct bk_edu_status edu_status(int fd)
{
	struct bk_edu_status st = { .invalidations = (uint64_t)-1 };
	if (ioctl(fd, BK_EDU_IOC_STATUS, &st) < 0)
		fprintf(stderr, "  STATUS: %m\n");
	return st;
}

/* ---- the host's view of gpu0's BAR: its backing file ---- */

static int vram_fill(uint64_t off, uint64_t len, uint8_t v)
{
	uint8_t buf[64 * KiB];
	int fd = open(vram0, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	memset(buf, v, sizeof(buf));
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		if (pwrite(fd, buf, n, (off_t)(off + done)) != (ssize_t)n)
			return close(fd), -1;
		done += n;
	}
	return close(fd);
}

static int vram_read(uint64_t off, void *buf, size_t len)
{
	int fd = open(vram0, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = pread(fd, buf, len, (off_t)off);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int vram_write(uint64_t off, const void *buf, size_t len)
{
	int fd = open(vram0, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = pwrite(fd, buf, len, (off_t)off);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/*
 * Checks [lo, hi) of the file: bytes in [pat_lo, pat_hi) must be the seed's
 * pattern at (file offset - base), the rest FILL. Returns the number of bad
 * bytes (-1 on error) and reports the first.
 */
static long vram_expect(uint64_t lo, uint64_t hi, uint64_t pat_lo, uint64_t pat_hi,
			uint64_t base, uint32_t seed)
{
	static uint8_t buf[4 * MiB];
	long bad = 0;
	if (hi - lo > sizeof(buf) || vram_read(lo, buf, hi - lo) < 0)
		return -1;
	for (uint64_t o = lo; o < hi; o++) {
		uint8_t want = o >= pat_lo && o < pat_hi ? bk_edu_pattern(seed, o - base) : FILL;
		if (buf[o - lo] != want && bad++ == 0)
			fprintf(stderr, "  file offset %#llx: %#x, expected %#x\n", (unsigned long long)o,
				buf[o - lo], want);
	}
	return bad;
}

/* The window of l and GUARD bytes each side, clipped to the 64 MiB BAR. */
static void guard_range(const struct barkeep_lease *l, uint64_t *lo, uint64_t *hi)
{
	*lo = l->bar_offset > GUARD ? l->bar_offset - GUARD : 0;
	*hi = l->bar_offset + l->size + GUARD;
	if (*hi > 64 * MiB)
		*hi = 64 * MiB;
}

/* ---- tests ---- */

static void test_import(void)
{
	struct barkeep_alloc_params p = { .by_id = true, .device_id = 0, .size = 1 * MiB };
	uint64_t size = 0;
	int r;

	CHECK_EQ(barkeep_connect(sock_path, "p2p-test", &bk), 0);
	if (!bk)
		return;
	CHECK_EQ(barkeep_alloc(bk, &p, &spacer), 0);
	CHECK_EQ(barkeep_alloc(bk, &p, &lease), 0);
	edu = edu_open();
	CHECK(edu >= 0);
	if (!lease || edu < 0)
		return;
	printf("  lease %llu: gpu0 BAR2 [%#llx, +%#llx)\n", (unsigned long long)lease->id,
	       (unsigned long long)lease->bar_offset, (unsigned long long)lease->size);
	/* Bytes on both sides of the window are checked. */
	CHECK(lease->bar_offset >= GUARD && lease->bar_offset + lease->size + GUARD <= 64 * MiB);

	/* Nothing imported yet. */
	struct bk_edu_status st = edu_status(edu);
	CHECK_EQ(st.state, 0);
	CHECK_EQ(edu_write_seed(edu, 0, 16, 1), -ENOENT);

	r = edu_import(edu, lease->fd, &size);
	if (r == -EINVAL)
		fprintf(stderr, "  IMPORT: EINVAL: no peer-to-peer route from edu to gpu0 "
			"(the harness's --edu picks an EPYC CPU for that)\n");
	CHECK_EQ(r, 0);
	if (r < 0) {
		/* Nothing below can work: say so once. */
		close(edu);
		edu = -1;
		return;
	}
	CHECK_EQ(size, 1 * MiB);
	CHECK_EQ(edu_import(edu, lease->fd, NULL), -EBUSY);
	st = edu_status(edu);
	CHECK_EQ(st.state, BK_EDU_IMPORTED | BK_EDU_MAPPED);
	CHECK_EQ(st.invalidations, 0);
	CHECK_EQ(st.maps, 1);
	CHECK_EQ(st.size, 1 * MiB);
}

/* A DMA write lands at bar_offset + offset, and nowhere else. */
static void test_write_lands_in_window(void)
{
	uint64_t lo, hi, base;
	long long t0;

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	guard_range(lease, &lo, &hi);
	base = lease->bar_offset;
	CHECK_EQ(vram_fill(lo, hi - lo, FILL), 0);

	/* Two chunks of edu's buffer, at an unaligned offset. */
	t0 = now_ns();
	CHECK_EQ(edu_write_seed(edu, 0x1234, BK_EDU_MAX_LEN, 0xc0ffee), 0);
	printf("  4 KiB DMA write through the importer took %lld ms\n", (now_ns() - t0) / 1000000);
	CHECK_EQ(vram_expect(lo, hi, base + 0x1234, base + 0x1234 + BK_EDU_MAX_LEN, base, 0xc0ffee), 0);

	/* The last bytes of the window; the next byte is not the window's. */
	uint64_t end = lease->size - 1000;
	CHECK_EQ(edu_write_seed(edu, end, 1000, 0xc0ffee), 0);
	CHECK_EQ(vram_expect(lo, base + end, base + 0x1234, base + 0x1234 + BK_EDU_MAX_LEN, base,
			     0xc0ffee), 0);
	CHECK_EQ(vram_expect(base + end, hi, base + end, base + lease->size, base, 0xc0ffee), 0);

	/* Past the end: refused, nothing moves. */
	CHECK_EQ(edu_write_seed(edu, lease->size - 10, 20, 7), -EINVAL);
	CHECK_EQ(edu_write_seed(edu, lease->size, 1, 7), -EINVAL);
	CHECK_EQ(edu_write_seed(edu, 0, BK_EDU_MAX_LEN + 1, 7), -EINVAL);
	CHECK_EQ(vram_expect(base + end, hi, base + end, base + lease->size, base, 0xc0ffee), 0);
	CHECK_EQ(vram_expect(lo, base, 0, 0, 0, 0), 0);
}

/* Caller's bytes (not a pattern) go out as they are. */
static void test_write_user_bytes(void)
{
	uint8_t src[333], got[333];

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 3);
	CHECK_EQ(edu_write(edu, 0x20007, src, sizeof(src)), 0);
	CHECK_EQ(vram_read(lease->bar_offset + 0x20007, got, sizeof(got)), 0);
	CHECK(memcmp(src, got, sizeof(src)) == 0);
}

/* The host writes the file; a DMA read through the importer returns it. */
static void test_read_host_bytes(void)
{
	uint8_t src[3000], got[3000];

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = bk_edu_pattern(0xbeef, i);
	CHECK_EQ(vram_write(lease->bar_offset + 0x8000, src, sizeof(src)), 0);
	memset(got, 0, sizeof(got));
	CHECK_EQ(edu_read(edu, 0x8000, got, sizeof(got)), 0);
	CHECK(memcmp(src, got, sizeof(src)) == 0);

	/* A full 4 KiB, across the chunk boundary of edu's buffer. */
	uint8_t big[BK_EDU_MAX_LEN], back[BK_EDU_MAX_LEN];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i ^ (i >> 8) ^ 0x5c);
	CHECK_EQ(vram_write(lease->bar_offset + lease->size - sizeof(big), big, sizeof(big)), 0);
	CHECK_EQ(edu_read(edu, lease->size - sizeof(big), back, sizeof(back)), 0);
	CHECK(memcmp(big, back, sizeof(big)) == 0);
	CHECK_EQ(edu_read(edu, lease->size - 1, back, 2), -EINVAL);
}

/* Two leases on the same device, two importers: each writes its own window. */
static void test_two_leases(void)
{
	struct barkeep_alloc_params p = { .by_id = true, .device_id = 0, .size = 256 * KiB };
	struct barkeep_lease *other = NULL;
	uint64_t lo, hi;
	int fd2;

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	CHECK_EQ(barkeep_alloc(bk, &p, &other), 0);
	fd2 = edu_open();
	if (!other || fd2 < 0) {
		if (other)
			barkeep_release(bk, other);
		if (fd2 >= 0)
			close(fd2);
		return unit_case_failed = 1, (void)0;
	}
	guard_range(other, &lo, &hi);
	CHECK_EQ(vram_fill(lo, hi - lo, FILL), 0);
	CHECK_EQ(edu_import(fd2, other->fd, NULL), 0);
	CHECK_EQ(edu_write_seed(fd2, 0, 2048, 0x2222), 0);
	CHECK_EQ(edu_write_seed(edu, 0, 2048, 0x1111), 0);
	CHECK_EQ(vram_expect(lo, hi, other->bar_offset, other->bar_offset + 2048, other->bar_offset,
			     0x2222), 0);
	CHECK_EQ(vram_expect(lease->bar_offset, lease->bar_offset + 2048, lease->bar_offset,
			     lease->bar_offset + 2048, lease->bar_offset, 0x1111), 0);
	close(fd2);
	CHECK_EQ(barkeep_release(bk, other), 0);
}

static bool device_can_revoke(uint32_t dev)
{
	struct barkeep_device *d;
	size_t n;
	bool can = false;

	if (barkeep_list_devices(bk, &d, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (d[i].id == dev)
			can = d[i].features & BARKEEP_FEATURE_DMABUF_REVOKE;
	free(d);
	return can;
}

static bool overlaps(const struct barkeep_lease *a, const struct barkeep_lease *b)
{
	return a->bar_offset < b->bar_offset + b->size && b->bar_offset < a->bar_offset + a->size;
}

/*
 * A lease released while the importer still holds its dma-buf. Where the
 * kernel can revoke one buffer (kernel-patches/, feature DMABUF_REVOKE) the
 * daemon revokes it for good: the importer loses exactly that lease, the
 * other lease's importer keeps working, and the window is scrubbed and can
 * be lent again, out of the first importer's reach. On a stock kernel the
 * window waits in quarantine: the importer keeps its access and nobody else
 * gets the window.
 */
static void test_release_while_imported(void)
{
	struct barkeep_alloc_params p = { .by_id = true, .device_id = 0, .size = 256 * KiB };
	struct barkeep_lease *a = NULL, *b = NULL, *c = NULL;
	bool revoke = device_can_revoke(0);
	uint64_t a_off, a_size;
	int fa, fb;

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	printf("  gpu0 %s revoke one buffer\n", revoke ? "can" : "cannot (stock kernel)");
	if (getenv("P2P_EXPECT_REVOKE"))
		CHECK(revoke);
	CHECK_EQ(barkeep_alloc(bk, &p, &a), 0);
	CHECK_EQ(barkeep_alloc(bk, &p, &b), 0);
	fa = edu_open();
	fb = edu_open();
	if (!a || !b || fa < 0 || fb < 0)
		goto out;
	CHECK_EQ(edu_import(fa, a->fd, NULL), 0);
	CHECK_EQ(edu_import(fb, b->fd, NULL), 0);
	CHECK_EQ(edu_write_seed(fa, 0, 1024, 0xa), 0);
	CHECK_EQ(edu_write_seed(fb, 0, 1024, 0xb), 0);
	uint64_t inv_a = edu_status(fa).invalidations, inv_b = edu_status(fb).invalidations;

	a_off = a->bar_offset;
	a_size = a->size;
	CHECK_EQ(barkeep_release(bk, a), 0); /* closes our fd; the importer keeps its reference */
	a = NULL;
	/* A request answered after the RELEASE: the broker handled that by now. */
	CHECK_EQ(device_can_revoke(0), revoke);

	if (revoke) {
		struct bk_edu_wait w = { .invalidations = inv_a, .timeout_ms = 10000 };
		CHECK_EQ(ioctl(fa, BK_EDU_IOC_WAIT, &w), 0);
		CHECK_EQ(edu_write_seed(fa, 0, 64, 0xaa), -ENODEV);
		struct bk_edu_status st = edu_status(fa);
		CHECK_EQ(st.state, BK_EDU_IMPORTED);
		CHECK_EQ(st.last_error, -ENODEV);
	} else {
		CHECK_EQ(edu_status(fa).invalidations, inv_a);
		CHECK_EQ(edu_write_seed(fa, 0, 64, 0xaa), 0);
		CHECK_EQ(vram_expect(a_off, a_off + 64, a_off, a_off + 64, a_off, 0xaa), 0);
	}
	/* The other lease on the device is untouched. */
	CHECK_EQ(edu_status(fb).invalidations, inv_b);
	CHECK_EQ(edu_write_seed(fb, 4096, 1024, 0xbb), 0);
	CHECK_EQ(vram_expect(b->bar_offset + 4096, b->bar_offset + 4096 + 1024, b->bar_offset + 4096,
			     b->bar_offset + 4096 + 1024, b->bar_offset, 0xbb), 0);

	/* Lend the space again: the new lease is out of the first importer's reach. */
	p.size = a_size;
	CHECK_EQ(barkeep_alloc(bk, &p, &c), 0);
	if (c) {
		struct barkeep_lease old = { .bar_offset = a_off, .size = a_size };
		if (revoke) {
			uint8_t buf[1024], zero[1024] = { 0 };
			/* Scrubbed before reuse; the old importer cannot write there. */
			CHECK_EQ(vram_read(a_off, buf, sizeof(buf)), 0);
			CHECK(memcmp(buf, zero, sizeof(buf)) == 0);
			CHECK_EQ(edu_write_seed(fa, 0, 1024, 0xaa), -ENODEV);
			CHECK_EQ(vram_read(a_off, buf, sizeof(buf)), 0);
			CHECK(memcmp(buf, zero, sizeof(buf)) == 0);
			printf("  the revoked window %s lent again\n", overlaps(c, &old) ? "was" : "was not");
		} else {
			CHECK(!overlaps(c, &old));
		}
	}
	if (!revoke) {
		/*
		 * Once the importer lets go, the daemon's sweep (every 250 ms)
		 * scrubs the window and frees it. Wait for that: it writes
		 * next to the lease the later tests check.
		 */
		uint8_t buf[1024], zero[1024] = { 0 };
		bool scrubbed = false;
		close(fa);
		fa = -1;
		for (int i = 0; i < 50 && !scrubbed; i++) {
			usleep(100 * 1000);
			scrubbed = vram_read(a_off, buf, sizeof(buf)) == 0 &&
				   memcmp(buf, zero, sizeof(buf)) == 0;
		}
		CHECK(scrubbed);
	}
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	if (a)
		barkeep_release(bk, a);
	if (b)
		barkeep_release(bk, b);
	if (c)
		barkeep_release(bk, c);
}

/* ---- reset of gpu0 through barkeepd, as the importer sees it ---- */

struct prober {
	uint64_t from;          /* invalidation count before the reset */
	int wait_result;        /* WAIT for the first invalidation */
	int write_result;       /* the WRITE right after it */
	struct bk_edu_status st; /* after that WRITE */
	long long woke_ns;
};

static struct {
	int n_pause, n_resume, n_other, ack;
	struct bk_edu_status at_pause, at_resume;
	long long pause_ns, resume_ns;
	uint64_t gen;
} seen;

static void on_event(struct barkeep *b, const struct barkeep_event *ev, void *userdata)
{
	switch (ev->type) {
	case BARKEEP_EVENT_DEVICE_PAUSE:
		seen.n_pause++;
		seen.pause_ns = now_ns();
		seen.at_pause = edu_status(edu);
		seen.gen = ev->generation;
		/*
		 * Acknowledge, but keep the import (as a misbehaving client
		 * would): the kernel must take it away regardless.
		 */
		if (!(ev->flags & 1))
			seen.ack = barkeep_ack_pause(b, ev->device_id, ev->generation);
		break;
	case BARKEEP_EVENT_DEVICE_RESUME:
		seen.n_resume++;
		seen.resume_ns = now_ns();
		seen.at_resume = edu_status(edu);
		break;
	default:
		seen.n_other++;
		break;
	}
}

/*
 * Sleeps until the importer is told to drop its mapping, then DMAs at once.
 * It runs SCHED_FIFO on the guest's one CPU, so it runs as soon as the
 * callback wakes it and again as soon as the exporter releases the
 * reservation lock, i.e. while the buffer is revoked (the daemon's reset
 * worker, an ordinary thread, cannot re-enable the BAR in between).
 */
static void *probe_revoked(void *arg)
{
	struct prober *pr = arg;
	struct bk_edu_wait w = { .invalidations = pr->from, .timeout_ms = 30000 };

	pr->wait_result = ioctl(edu, BK_EDU_IOC_WAIT, &w) < 0 ? -errno : 0;
	pr->woke_ns = now_ns();
	if (pr->wait_result == 0)
		pr->write_result = edu_write_seed(edu, 0x4000, 512, 0xdead);
	pr->st = edu_status(edu);
	return NULL;
}

/*
 * Resets gpu0 through barkeepd and takes the holder's events (on_event) until
 * RESUME. RESET blocks its caller until the device resumed: it is asked from
 * a child. Returns the child's wait status.
 */
static int reset_gpu0(void)
{
	int status = -1;

	memset(&seen, 0, sizeof(seen));
	barkeep_set_event_handler(bk, on_event, NULL);
	pid_t child = fork();
	if (child == 0) {
		struct barkeep *admin = NULL;
		if (barkeep_connect(sock_path, "p2p-resetter", &admin) < 0)
			_exit(3);
		int r = barkeep_reset(admin, 0, false, 10000);
		if (r < 0)
			fprintf(stderr, "  RESET: %s\n", barkeep_error_message(admin));
		barkeep_disconnect(admin);
		_exit(r < 0 ? 1 : 0);
	}
	long long deadline = now_ns() + 30 * 1000000000ll;
	while (child > 0 && now_ns() < deadline && !seen.n_resume) {
		struct pollfd pfd = { .fd = barkeep_get_fd(bk), .events = POLLIN };
		poll(&pfd, 1, 100);
		if (barkeep_dispatch(bk) < 0) {
			fprintf(stderr, "  dispatch: %s\n", barkeep_error_message(bk));
			break;
		}
	}
	if (child > 0)
		waitpid(child, &status, 0);
	barkeep_set_event_handler(bk, NULL, NULL);
	return status;
}

static void test_reset(void)
{
	struct sched_param sp = { .sched_priority = 10 };
	struct prober pr = { .wait_result = 1, .write_result = 1 };
	pthread_attr_t attr;
	pthread_t thread;
	int status = -1;

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	pr.from = edu_status(edu).invalidations;

	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
	pthread_attr_setschedparam(&attr, &sp);
	int r = pthread_create(&thread, &attr, probe_revoked, &pr);
	pthread_attr_destroy(&attr);
	CHECK_EQ(r, 0);
	if (r)
		return;

	status = reset_gpu0();
	pthread_join(thread, NULL);

	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(seen.n_pause, 1);
	CHECK_EQ(seen.n_resume, 1);
	CHECK_EQ(seen.n_other, 0);
	CHECK_EQ(seen.ack, 0);
	/* PAUSE came first: nothing was revoked yet, the mapping was intact. */
	CHECK_EQ(seen.at_pause.invalidations, pr.from);
	CHECK_EQ(seen.at_pause.state, BK_EDU_IMPORTED | BK_EDU_MAPPED);
	/* The kernel then invalidated the importer's mapping... */
	CHECK_EQ(pr.wait_result, 0);
	CHECK(pr.woke_ns > seen.pause_ns);
	/* ... and DMA failed, cleanly, while the buffer was revoked. */
	CHECK_EQ(pr.write_result, -ENODEV);
	CHECK_EQ(pr.st.last_error, -ENODEV);
	CHECK(!(pr.st.state & BK_EDU_MAPPED));
	/* RESUME came after the kernel was done: revoke and restore, two calls. */
	CHECK_EQ(seen.at_resume.invalidations, pr.from + 2);
	CHECK(seen.at_resume.last_invalidation_ns > 0 &&
	      (long long)seen.at_resume.last_invalidation_ns < seen.resume_ns);
	CHECK(seen.resume_ns > pr.woke_ns);
	CHECK(!(seen.at_resume.state & BK_EDU_MAPPED));
	printf("  PAUSE, then %llu invalidations; DMA while revoked: %s; RESUME %lld ms after PAUSE\n",
	       (unsigned long long)(seen.at_resume.invalidations - pr.from),
	       strerror(-pr.write_result), (seen.resume_ns - seen.pause_ns) / 1000000);

	/* After RESUME the importer re-maps and DMA works again. */
	uint64_t lo, hi, base = lease->bar_offset;
	guard_range(lease, &lo, &hi);
	CHECK_EQ(vram_fill(lo, hi - lo, FILL), 0);
	CHECK_EQ(edu_write_seed(edu, 0x4000, 512, 0xa11ce), 0);
	CHECK_EQ(vram_expect(lo, hi, base + 0x4000, base + 0x4000 + 512, base, 0xa11ce), 0);
	struct bk_edu_status st = edu_status(edu);
	CHECK_EQ(st.state, BK_EDU_IMPORTED | BK_EDU_MAPPED);
	CHECK_EQ(st.last_error, 0);
	CHECK_EQ(st.maps, pr.st.maps + 1);
}

struct hammer {
	volatile bool stop;
	int ok, revoked, other, last_other;
};

static void *hammer_writes(void *arg)
{
	struct hammer *h = arg;

	for (uint32_t i = 0; !h->stop; i++) {
		int r = edu_write_seed(edu, (i % 64) * 4096, 2048, i);
		if (r == 0)
			h->ok++;
		else if (r == -ENODEV)
			h->revoked++;
		else
			h->other++, h->last_other = r;
	}
	return NULL;
}

/*
 * A reset while the importer DMAs without pause: the revoke waits for the
 * transfer in flight (it holds the buffer's reservation lock), nothing
 * hangs, every DMA either completes or fails ENODEV, and DMA works after.
 */
static void test_reset_under_load(void)
{
	struct hammer h = {};
	pthread_t thread;

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	uint64_t from = edu_status(edu).invalidations;
	CHECK_EQ(pthread_create(&thread, NULL, hammer_writes, &h), 0);
	usleep(300 * 1000);
	int status = reset_gpu0();
	usleep(300 * 1000);
	h.stop = true;
	pthread_join(thread, NULL);

	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(seen.n_pause, 1);
	CHECK_EQ(seen.n_resume, 1);
	CHECK_EQ(seen.at_resume.invalidations, from + 2);
	CHECK(h.ok > 0);
	CHECK_EQ(h.other, 0);
	if (h.other)
		fprintf(stderr, "  a DMA failed with %s\n", strerror(-h.last_other));
	printf("  %d DMA writes went through, %d failed ENODEV while revoked\n", h.ok, h.revoked);

	uint64_t lo, hi, base = lease->bar_offset;
	guard_range(lease, &lo, &hi);
	CHECK_EQ(vram_fill(lo, hi - lo, FILL), 0);
	CHECK_EQ(edu_write_seed(edu, 0x4000, 512, 0xa11ce), 0);
	CHECK_EQ(vram_expect(lo, hi, base + 0x4000, base + 0x4000 + 512, base, 0xa11ce), 0);
}

/* The daemon's exit closes gpu0: its buffers are revoked for good. */
static void test_daemon_exit(void)
{
	struct bk_edu_wait w = { .timeout_ms = 20000 };

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	w.invalidations = edu_status(edu).invalidations;
	CHECK_EQ(kill(daemon_pid, SIGTERM), 0);
	CHECK_EQ(ioctl(edu, BK_EDU_IOC_WAIT, &w), 0);
	CHECK_EQ(edu_write_seed(edu, 0, 64, 1), -ENODEV);
	CHECK_EQ(ioctl(edu, BK_EDU_IOC_MAP) < 0 ? -errno : 0, -ENODEV);
	struct bk_edu_status st = edu_status(edu);
	CHECK_EQ(st.state, BK_EDU_IMPORTED);
	CHECK_EQ(st.invalidations, w.invalidations + 1);
	/* The import can still be dropped. */
	CHECK_EQ(ioctl(edu, BK_EDU_IOC_RELEASE), 0);
	CHECK_EQ(edu_status(edu).state, 0);
}

/*
 * systemctl restart barkeepd (the systemd bed): the daemon keeps its VFIO fds
 * in systemd's fd store, so the importer's mapping is never invalidated and
 * its DMA goes on landing in the window.
 */
static void test_restart(void)
{
	uint64_t lo, hi, base;

	if (!lease || edu < 0)
		return unit_case_failed = 1, (void)0;
	struct bk_edu_status before = edu_status(edu);
	CHECK_EQ(system("systemctl restart barkeepd.service"), 0);
	struct bk_edu_status after = edu_status(edu);
	CHECK_EQ(after.invalidations, before.invalidations);
	CHECK_EQ(after.state, BK_EDU_IMPORTED | BK_EDU_MAPPED);
	CHECK_EQ(after.maps, before.maps);

	guard_range(lease, &lo, &hi);
	base = lease->bar_offset;
	CHECK_EQ(vram_fill(lo, hi - lo, FILL), 0);
	CHECK_EQ(edu_write_seed(edu, 0x3000, 2048, 0x5eed), 0);
	CHECK_EQ(vram_expect(lo, hi, base + 0x3000, base + 0x3000 + 2048, base, 0x5eed), 0);
	CHECK_EQ(edu_status(edu).maps, before.maps);

	/* The restarted daemon answers, and the window is still out of its hands. */
	struct barkeep *again = NULL;
	struct barkeep_lease *l = NULL;
	struct barkeep_alloc_params p = { .by_id = true, .device_id = 0, .size = 1 * MiB };
	CHECK_EQ(barkeep_connect(sock_path, "p2p-after-restart", &again), 0);
	if (again) {
		CHECK_EQ(barkeep_alloc(again, &p, &l), 0);
		if (l) {
			CHECK(!overlaps(l, lease));
			barkeep_release(again, l);
		}
		barkeep_disconnect(again);
	}
}

int main(int argc, char **argv)
{
	if (argc != 4 && !(argc == 5 && strcmp(argv[4], "restart") == 0)) {
		fprintf(stderr, "usage: %s SOCKET DAEMON_PID VRAM_FILE_OF_GPU0 [restart]\n", argv[0]);
		return 2;
	}
	sock_path = argv[1];
	daemon_pid = atoi(argv[2]);
	vram0 = argv[3];
	RUN(test_import);
	RUN(test_write_lands_in_window);
	if (argc == 5) {
		RUN(test_restart);
	} else {
		RUN(test_write_user_bytes);
		RUN(test_read_host_bytes);
		RUN(test_two_leases);
		RUN(test_release_while_imported);
		RUN(test_reset);
		RUN(test_reset_under_load);
		RUN(test_daemon_exit);
	}
	if (edu >= 0)
		close(edu);
	barkeep_lease_free(lease);
	barkeep_lease_free(spacer);
	barkeep_disconnect(bk);
	return UNIT_END();
}

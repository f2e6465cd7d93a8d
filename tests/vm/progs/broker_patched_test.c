// SPDX-License-Identifier: MIT
/*
 * barkeepd on a kernel with the kernel-patches/ series (suite
 * 30-kernel-patches): the daemon finds the features, clients map their
 * leases (uncached and write-combined) with libbarkeep, and a released
 * window is revoked and reused at once even while a copy of its fd lives
 * elsewhere, also a shared window's holder's own buffer. Usage: broker_patched_test SOCKET VRAM_FILE_OF_GPU0
 * (gpu0 is device 0, open to root).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "tests/lib/vmtest.h"
#include "tests/unit/unit.h"

#define MiB (1ull << 20)

static const char *sock_path, *vram0;

static struct barkeep *conn(const char *name)
{
	struct barkeep *bk = NULL;
	if (barkeep_connect(sock_path, name, &bk) < 0)
		fprintf(stderr, "  connect: %s\n", barkeep_error_message(NULL));
	return bk;
}

static int alloc_on(struct barkeep *bk, uint64_t size, uint32_t flags, struct barkeep_lease **ret)
{
	struct barkeep_alloc_params p = { .by_id = true, .device_id = 0, .size = size,
					  .flags = flags };
	return barkeep_alloc(bk, &p, ret);
}

static uint64_t free_bytes(struct barkeep *bk)
{
	struct barkeep_device *d;
	size_t n;
	uint64_t f = 0;
	if (barkeep_list_devices(bk, &d, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (d[i].id == 0)
			f = d[i].free_bytes;
	free(d);
	return f;
}

/* 1 when reading p raised SIGBUS, 0 when it read. */
static int read_faults(const volatile uint32_t *p)
{
	uint32_t v;
	return !test_read32(p, &v);
}

/* The host file's 32-bit word at off. */
static uint32_t vram_word(uint64_t off)
{
	uint32_t v = 0;
	int fd = open(vram0, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &v, sizeof(v), (off_t)off) != sizeof(v))
			v = 0;
		close(fd);
	}
	return v;
}

static void test_features(void)
{
	struct barkeep *bk = conn("features");
	struct barkeep_device *d;
	size_t n = 0;
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(barkeep_list_devices(bk, &d, &n), 0);
	CHECK(n >= 1);
	if (n >= 1) {
		CHECK_EQ(d[0].backend, BARKEEP_BACKEND_VFIO);
		CHECK(d[0].features & BARKEEP_FEATURE_DMABUF_EXPORT);
		CHECK(d[0].features & BARKEEP_FEATURE_DMABUF_MMAP);
		CHECK(d[0].features & BARKEEP_FEATURE_DMABUF_REVOKE);
		CHECK(d[0].features & BARKEEP_FEATURE_MEMATTR_WC);
		free(d);
	}
	barkeep_disconnect(bk);
}

/* A lease maps, uncached or write-combined, and the bytes are the BAR's. */
static void test_lease_mmap(void)
{
	struct barkeep *bk = conn("mmap");
	struct barkeep_lease *l = NULL, *wc = NULL;
	void *p = NULL;
	const char *msg = NULL;
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(alloc_on(bk, MiB, 0, &l), 0);
	CHECK_EQ(alloc_on(bk, MiB, BARKEEP_ALLOC_WRITE_COMBINE, &wc), 0);
	if (l) {
		CHECK_EQ(barkeep_lease_mmap(l, PROT_READ | PROT_WRITE, &p, &msg), 0);
		if (p) {
			volatile uint32_t *w = p;
			w[1000] = 0x600dcafe;
			__sync_synchronize();
			CHECK_EQ(vram_word(l->bar_offset + 4000), 0x600dcafe);
			CHECK_EQ(barkeep_lease_munmap(l, p), 0);
		}
		CHECK_EQ(barkeep_release(bk, l), 0);
	}
	if (wc) {
		p = NULL;
		CHECK_EQ(barkeep_lease_mmap(wc, PROT_READ | PROT_WRITE, &p, &msg), 0);
		if (p) {
			volatile uint32_t *w = p;
			w[2000] = 0x0dd0c0de;
			__sync_synchronize();
			CHECK_EQ(vram_word(wc->bar_offset + 8000), 0x0dd0c0de);
			CHECK_EQ(barkeep_lease_munmap(wc, p), 0);
		}
		CHECK_EQ(barkeep_release(bk, wc), 0);
	}
	barkeep_disconnect(bk);
}

/* RELEASE with a copy of the fd alive elsewhere: the broker revokes the
 * buffer, so the window is scrubbed and free at once (no quarantine), and the
 * copy is dead: its mapping faults and it cannot be mapped again. */
static void test_release_revokes(void)
{
	struct barkeep *bk = conn("revoke");
	struct barkeep_lease *l = NULL, *again = NULL;
	void *p = NULL;
	CHECK(bk);
	if (!bk)
		return;
	uint64_t before = free_bytes(bk);
	CHECK_EQ(alloc_on(bk, MiB, 0, &l), 0);
	if (!l) {
		barkeep_disconnect(bk);
		return;
	}
	uint64_t x = l->bar_offset;
	CHECK_EQ(barkeep_lease_mmap(l, PROT_READ | PROT_WRITE, &p, NULL), 0);
	if (!p) {
		barkeep_release(bk, l);
		barkeep_disconnect(bk);
		return;
	}
	volatile uint32_t *w = p;
	w[0] = 0xa5a5a5a5;
	__sync_synchronize();
	int copy = fcntl(l->fd, F_DUPFD_CLOEXEC, 0); /* what a passed-on fd would be */
	CHECK(copy >= 0);

	CHECK_EQ(barkeep_release(bk, l), 0);
	CHECK_EQ(free_bytes(bk), before); /* at once: no sweep waited for */
	CHECK_EQ(read_faults(w), 1);
	void *q = mmap(NULL, MiB, PROT_READ, MAP_SHARED, copy, 0);
	CHECK(q == MAP_FAILED && errno == ENODEV);
	CHECK_EQ(vram_word(x), 0);        /* scrubbed */
	CHECK_EQ(alloc_on(bk, MiB, 0, &again), 0);
	if (again) {
		CHECK_EQ(again->bar_offset, x); /* and reused */
		barkeep_release(bk, again);
	}
	munmap(p, MiB);
	close(copy);
	barkeep_disconnect(bk);
}

/* The same when the connection ends with the lease held. */
static void test_disconnect_revokes(void)
{
	struct barkeep *watch = conn("watch");
	struct barkeep *bk = conn("leaver");
	struct barkeep_lease *l = NULL;
	CHECK(watch && bk);
	if (!watch || !bk)
		goto out;
	uint64_t before = free_bytes(watch);
	CHECK_EQ(alloc_on(bk, 2 * MiB, 0, &l), 0);
	if (!l)
		goto out;
	int copy = fcntl(l->fd, F_DUPFD_CLOEXEC, 0);
	CHECK(copy >= 0);
	barkeep_lease_free(l);
	barkeep_disconnect(bk);
	bk = NULL;
	/* The broker ends the lease when it sees the hang-up. */
	uint64_t now = 0;
	for (int i = 0; i < 50 && (now = free_bytes(watch)) != before; i++)
		usleep(20 * 1000);
	CHECK_EQ(now, before);
	void *q = mmap(NULL, MiB, PROT_READ, MAP_SHARED, copy, 0);
	CHECK(q == MAP_FAILED && errno == ENODEV);
	close(copy);
out:
	barkeep_disconnect(bk);
	barkeep_disconnect(watch);
}

/* A shared window: the holder's own dma-buf maps the bytes the owner wrote
 * through its own; the owner's release ends the holder's access by
 * revoking the holder's buffer alone, and the window is reused at once
 * although the holder still has its fd. */
static void test_shared_window_revoked(void)
{
	struct barkeep *owner = conn("owner"), *holder = conn("holder");
	struct barkeep_lease *mine = NULL, *theirs = NULL;
	struct barkeep_grant g;
	void *po = NULL, *ph = NULL;
	CHECK(owner && holder);
	if (!owner || !holder)
		goto out;
	uint64_t before = free_bytes(owner);
	CHECK_EQ(alloc_on(owner, MiB, 0, &mine), 0);
	struct barkeep_grant_params gp = { .lease_id = mine ? mine->id : 0,
					   .to = BARKEEP_GRANT_TO_TOKEN };
	CHECK_EQ(barkeep_grant(owner, &gp, &g), 0);
	struct barkeep_open_params op = { .by_token = true };
	memcpy(op.token, g.token, sizeof(op.token));
	CHECK_EQ(barkeep_open(holder, &op, &theirs), 0);
	if (!mine || !theirs)
		goto out;
	CHECK(theirs->fd != mine->fd);
	CHECK_EQ(barkeep_lease_mmap(mine, PROT_READ | PROT_WRITE, &po, NULL), 0);
	CHECK_EQ(barkeep_lease_mmap(theirs, PROT_READ, &ph, NULL), 0);
	if (!po || !ph)
		goto out;
	((volatile uint32_t *)po)[1] = 0x5eed5eed;
	__sync_synchronize();
	CHECK_EQ(((volatile uint32_t *)ph)[1], 0x5eed5eed);

	CHECK_EQ(barkeep_release(owner, mine), 0);
	mine = NULL;
	CHECK_EQ(free_bytes(owner), before);           /* reused at once */
	CHECK_EQ(read_faults((volatile uint32_t *)ph), 1); /* the holder's access is gone */
	void *q = mmap(NULL, MiB, PROT_READ, MAP_SHARED, theirs->fd, 0);
	CHECK(q == MAP_FAILED && errno == ENODEV);
	munmap(po, MiB);
	munmap(ph, MiB);
	barkeep_lease_free(theirs); /* its lease has ended: LEASE_REVOKED came */
	theirs = NULL;
out:
	barkeep_lease_free(theirs);
	if (mine)
		barkeep_release(owner, mine);
	barkeep_disconnect(holder);
	barkeep_disconnect(owner);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: broker_patched_test SOCKET VRAM_FILE_OF_GPU0\n");
		return 2;
	}
	sock_path = argv[1];
	vram0 = argv[2];

	RUN(test_features);
	RUN(test_lease_mmap);
	RUN(test_release_revokes);
	RUN(test_disconnect_revokes);
	RUN(test_shared_window_revoked);
	return UNIT_END();
}

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

#include "client/lib/barkeep.h"
#include "common/vfio.h"
#include "tests/lib/testlib.h"
#include "tests/unit/unit.h"

#define MiB (1ull << 20)
#define GPU 0u
#define MEM 1u

static const char *sock_path;

static struct barkeep *conn(const char *name)
{
	struct barkeep *bk = NULL;
	if (barkeep_connect(sock_path, name, &bk) < 0)
		fprintf(stderr, "  connect: %s\n", barkeep_error_message(NULL));
	return bk;
}

static int alloc_on(struct barkeep *bk, uint32_t dev, uint64_t size, struct barkeep_lease **ret)
{
	struct barkeep_alloc_params p = { .by_id = true, .device_id = dev, .size = size };
	int r = barkeep_alloc(bk, &p, ret);
	if (r < 0)
		fprintf(stderr, "  alloc: %s\n", barkeep_error_message(bk));
	return r;
}

static uint64_t free_bytes(struct barkeep *bk, uint32_t dev)
{
	struct barkeep_device *d;
	size_t n;
	uint64_t f = 0;
	if (barkeep_list_devices(bk, &d, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (d[i].id == dev)
			f = d[i].free_bytes;
	free(d);
	return f;
}

static void wait_sweep(void)
{
	usleep(800 * 1000); /* a few of the daemon's 250 ms sweeps */
}

/* LIST_DEVICES says what each device really is. */
static void test_list_devices(void)
{
	struct barkeep *bk = conn("list");
	struct barkeep_device *d;
	size_t n = 0;
	CHECK(bk);
	if (!bk)
		return;
	CHECK_EQ(barkeep_list_devices(bk, &d, &n), 0);
	CHECK_EQ(n, 2);
	if (n == 2) {
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
	barkeep_disconnect(bk);
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
	CHECK_EQ(free_bytes(bk, MEM), 128 * MiB);
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
	int sv[2];
	CHECK(b);
	if (!b)
		return;
	struct barkeep *owner = conn("owner");
	CHECK_EQ(alloc_on(owner, MEM, MiB, &a), 0);
	uint64_t x = a->bar_offset, before = free_bytes(b, MEM);
	CHECK_EQ(map_fill(a->fd, MiB, 0xa5), 0);

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid_t holder = fork();
	if (holder == 0) {
		close(sv[0]);
		int fd = test_recv_fd(sv[1]);
		char c;
		if (fd < 0 || read(sv[1], &c, 1) != 1)
			_exit(1);
		close(fd);
		_exit(write(sv[1], "k", 1) == 1 ? 0 : 1);
	}
	close(sv[1]);
	CHECK_EQ(test_send_fd(sv[0], a->fd), 0);
	barkeep_lease_free(a);
	barkeep_disconnect(owner);
	wait_sweep();
	CHECK_EQ(free_bytes(b, MEM), before); /* still out of use */

	char c;
	CHECK_EQ(write(sv[0], "g", 1), 1);
	CHECK_EQ(read(sv[0], &c, 1), 1);
	close(sv[0]);
	int st;
	waitpid(holder, &st, 0);
	wait_sweep();
	CHECK_EQ(free_bytes(b, MEM), before + MiB);
	CHECK_EQ(alloc_on(b, MEM, MiB, &again), 0);
	CHECK_EQ(again->bar_offset, x);       /* reused */
	CHECK_EQ(map_all(again->fd, MiB, 0), 1); /* and scrubbed */
	barkeep_release(b, again);
	barkeep_disconnect(b);
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
	return UNIT_END();
}

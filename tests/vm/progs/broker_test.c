// SPDX-License-Identifier: MIT
/*
 * barkeepd v1 on a real kernel: run inside the VM against a running daemon
 * (tests/vm/suites/10-barkeepd.sh writes its config). Usage:
 *   broker_test SOCKET DAEMON_PID VRAM_FILE_OF_GPU0
 * gpu0 is open to root only, gpu1 also to uid 1000 with a 8 MiB per-uid quota.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/vfio.h"
#include "proto/codec.h"
#include "tests/lib/testlib.h"
#include "tests/lib/vmtest.h"
#include "tests/unit/unit.h"

#define MiB (1ull << 20)

static const char *sock_path, *vram0;
static pid_t daemon_pid;
static struct barkeep_device devs[2];

static struct barkeep *conn(const char *name)
{
	return test_connect(sock_path, name);
}

static void test_list_devices(void)
{
	struct barkeep_device *d = test_devices(sock_path, 2);
	CHECK(d);
	if (!d)
		return;
	memcpy(devs, d, sizeof(devs));
	CHECK_EQ(d[0].bar_size, 64 * MiB);
	CHECK_EQ(d[1].bar_size, 256 * MiB);
	CHECK_EQ(d[0].bar_index, 2);
	CHECK_EQ(d[0].pci_vendor, 0x1af4);
	CHECK(d[0].features & BARKEEP_FEATURE_DMABUF_EXPORT);
	CHECK_EQ(d[0].free_bytes, 64 * MiB);
	CHECK_EQ(d[0].state, BARKEEP_DEVICE_READY);
	free(d);
}

/* Each fd is a real VFIO dma-buf of the asked size. */
static int check_lease_fd(const struct barkeep_lease *l, uint64_t size)
{
	uint64_t got = 0;
	char exp[64] = "";
	if (dmabuf_query(l->fd, &got, NULL, exp, sizeof(exp)) < 0)
		return -1;
	return got == size && strcmp(exp, "vfio_pci_core") == 0 ? 0 : -1;
}

static void test_concurrent_clients(void)
{
	enum { CLIENTS = 8, ROUNDS = 6 };
	pid_t pids[CLIENTS];

	for (int i = 0; i < CLIENTS; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct barkeep *bk = conn("worker");
			int bad = !bk;
			for (int r = 0; bk && r < ROUNDS; r++) {
				struct barkeep_lease *l;
				/* gpu1 has an 8 MiB per-uid quota, root included: 4 workers x 2 MiB. */
				uint64_t size = (uint64_t)(1 + (i + r) % (i % 2 ? 2 : 4)) * MiB;
				if (test_alloc_on(bk, (uint32_t)(i % 2), size, &l) < 0) {
					fprintf(stderr, "  worker %d: %s\n", i, barkeep_error_message(bk));
					bad = 1;
					break;
				}
				bad |= check_lease_fd(l, size) < 0;
				bad |= barkeep_release(bk, l) < 0;
			}
			barkeep_disconnect(bk);
			_exit(bad);
		}
	}
	int failures = 0;
	for (int i = 0; i < CLIENTS; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		failures += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	CHECK_EQ(failures, 0);
}

static int vram_fill(uint64_t off, uint64_t len, uint8_t v)
{
	int fd = open(vram0, O_WRONLY | O_CLOEXEC);
	uint8_t buf[65536];
	memset(buf, v, sizeof(buf));
	for (uint64_t done = 0, n; fd >= 0 && done < len; done += n) {
		n = MIN(len - done, sizeof(buf));
		if (pwrite(fd, buf, n, (off_t)(off + done)) != (ssize_t)n)
			return close(fd), -1;
	}
	return fd < 0 ? -1 : close(fd);
}

/* 1 when all of [off, off+len) is v, 0 if not, -1 on error. */
static int vram_all(uint64_t off, uint64_t len, uint8_t v)
{
	int fd = open(vram0, O_RDONLY | O_CLOEXEC);
	uint8_t buf[65536];
	int ok = 1;
	for (uint64_t done = 0, n; fd >= 0 && done < len && ok; done += n) {
		n = MIN(len - done, sizeof(buf));
		if (pread(fd, buf, n, (off_t)(off + done)) != (ssize_t)n)
			return close(fd), -1;
		for (size_t i = 0; i < n; i++)
			ok &= buf[i] == v;
	}
	if (fd < 0)
		return -1;
	close(fd);
	return ok;
}

/* Gives the daemon a few of its 250 ms sweeps: long enough that a window
 * wrongly freed would show. */
static void wait_sweep(void)
{
	usleep(800 * 1000);
}

/* A window whose fd was passed on is not reused until the last holder closes
 * it; then it is zeroed and handed out again. */
static void test_passed_fd_quarantine(void)
{
	struct barkeep *b = conn("neighbour");
	struct barkeep_lease *b1, *b2, *a, *again;
	CHECK(b);
	if (!b)
		return;
	CHECK_EQ(test_alloc_on(b, 0, MiB, &b1), 0);
	struct barkeep *owner = conn("owner");
	CHECK_EQ(test_alloc_on(owner, 0, MiB, &a), 0);
	CHECK_EQ(test_alloc_on(b, 0, MiB, &b2), 0);
	uint64_t x = a->bar_offset;
	CHECK_EQ(vram_fill(x, MiB, 0xa5), 0);
	uint64_t before = test_free_bytes(b, 0);

	int sock = -1;
	pid_t holder = test_holder_start(a->fd, &sock);
	CHECK(holder > 0);
	barkeep_lease_free(a);
	barkeep_disconnect(owner); /* the lease ends with the connection */
	wait_sweep();
	CHECK_EQ(test_free_bytes(b, 0), before);   /* still out of use */
	CHECK_EQ(vram_all(x, MiB, 0xa5), 1);  /* and untouched */

	CHECK_EQ(test_holder_release(holder, sock), 0); /* the third process closed it */
	/* The daemon notices on its next sweep; a loaded guest may take a while. */
	for (int i = 0; i < 100 && test_free_bytes(b, 0) != before + MiB; i++)
		usleep(100 * 1000);
	CHECK_EQ(test_free_bytes(b, 0), before + MiB);
	CHECK_EQ(vram_all(x, MiB, 0), 1);     /* scrubbed */
	CHECK_EQ(test_alloc_on(b, 0, MiB, &again), 0);
	CHECK_EQ(again->bar_offset, x);       /* and reused */
	barkeep_release(b, again);
	barkeep_release(b, b1);
	barkeep_release(b, b2);
	barkeep_disconnect(b);
}

/* Immediately reusable when nobody else holds the fd. */
static void test_release_reuses(void)
{
	struct barkeep *b = conn("reuse");
	struct barkeep_lease *l;
	CHECK(b);
	if (!b)
		return;
	uint64_t before = test_free_bytes(b, 1);
	CHECK_EQ(test_alloc_on(b, 1, 4 * MiB, &l), 0);
	CHECK_EQ(test_free_bytes(b, 1), before - 4 * MiB);
	CHECK_EQ(barkeep_release(b, l), 0);
	CHECK_EQ(test_free_bytes(b, 1), before);
	barkeep_disconnect(b);
}

static ino_t inode_of(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* A small buffer nobody else holds is lent again as it is (daemon/idle.h):
 * the same dma-buf, renamed for its new lease, on its zeroed window. One
 * that was passed on is never kept, and neither is its window lent while
 * the copy is open. */
static void test_idle_buffer_lent_again(void)
{
	struct barkeep *b = conn("idle");
	struct barkeep_lease *l, *again, *passed, *next;
	char name[64], want[64];
	CHECK(b);
	if (!b)
		return;
	uint64_t start = test_free_bytes(b, 0);
	CHECK_EQ(test_alloc_on(b, 0, 8192, &l), 0);
	if (!l)
		return;
	uint64_t off = l->bar_offset;
	ino_t ino = inode_of(l->fd);
	CHECK(ino != 0);
	CHECK_EQ(vram_fill(off, 8192, 0x5a), 0);
	CHECK_EQ(barkeep_release(b, l), 0);

	CHECK_EQ(test_alloc_on(b, 0, 8192, &again), 0);
	if (!again)
		return;
	CHECK_EQ(again->bar_offset, off);
	CHECK_EQ(inode_of(again->fd), ino);      /* the same dma-buf */
	CHECK_EQ(check_lease_fd(again, 8192), 0);
	CHECK_EQ(vram_all(off, 8192, 0), 1);     /* zeroed before it was lent again */
	test_dmabuf_name(again->fd, name, sizeof(name));
	snprintf(want, sizeof(want), "barkeep:%llu:0", (unsigned long long)again->id);
	CHECK_CONTAINS(name, want);              /* named for its new lease */

	/* Passed on: another process holds it, so it is neither kept nor its
	 * window reused until that copy is closed. */
	int sock = -1;
	pid_t holder = test_holder_start(again->fd, &sock);
	CHECK(holder > 0);
	CHECK_EQ(barkeep_release(b, again), 0);
	CHECK_EQ(test_alloc_on(b, 0, 8192, &passed), 0);
	if (passed) {
		CHECK(passed->bar_offset != off);
		CHECK(inode_of(passed->fd) != ino);
		barkeep_release(b, passed);
	}
	CHECK_EQ(test_holder_release(holder, sock), 0);

	/* A size that no kept buffer has gets a fresh export. */
	CHECK_EQ(test_alloc_on(b, 0, 12288, &next), 0);
	if (next) {
		CHECK(inode_of(next->fd) != ino);
		CHECK_EQ(check_lease_fd(next, 12288), 0);
		barkeep_release(b, next);
	}
	/* The passed-on window comes back at the daemon's next sweep. */
	for (int i = 0; i < 100 && test_free_bytes(b, 0) != start; i++)
		usleep(100 * 1000);
	CHECK_EQ(test_free_bytes(b, 0), start);
	barkeep_disconnect(b);
}

/* vgem, like most DRM drivers, cannot import a VFIO dma-buf: the helper
 * must say so clearly rather than fail obscurely. */
static void test_import_prime_refused(void)
{
	struct barkeep *b = conn("prime");
	struct barkeep_lease *l;
	const char *msg = NULL;
	uint32_t handle;
	int drm = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	CHECK(b && drm >= 0);
	if (!b || drm < 0)
		return;
	CHECK_EQ(test_alloc_on(b, 0, MiB, &l), 0);
	CHECK_EQ(barkeep_import_prime(l, drm, &handle, &msg), -EOPNOTSUPP);
	CHECK(msg && strstr(msg, "cannot import peer-to-peer VFIO buffers"));
	barkeep_release(b, l);
	barkeep_disconnect(b);
	close(drm);
}

static void test_too_big(void)
{
	struct barkeep *b = conn("big");
	struct barkeep_lease *l;
	CHECK(b);
	if (!b)
		return;
	CHECK_EQ(test_alloc_on(b, 0, 65 * MiB, &l), -E2BIG);
	CHECK(strstr(barkeep_error_message(b), "64 MiB") || strstr(barkeep_error_message(b), "67108864"));
	CHECK_EQ(test_alloc_on(b, 0, 0, &l), -EINVAL);
	barkeep_disconnect(b);
}

static int user_policy(void)
{
	struct barkeep *b = conn("user");
	struct barkeep_lease *l, *l1, *l2;
	if (!b)
		return 1;
	if (test_alloc_on(b, 0, MiB, &l) != -EACCES)
		return 2;
	if (!strstr(barkeep_error_message(b), "may not use"))
		return 3;
	if (test_alloc_on(b, 1, 4 * MiB, &l1) < 0 || test_alloc_on(b, 1, 4 * MiB, &l2) < 0)
		return 4;
	/* The per-uid quota on gpu1 is 8 MiB. */
	if (test_alloc_on(b, 1, MiB, &l) != -EDQUOT || !strstr(barkeep_error_message(b), "limit is 8 MiB"))
		return 5;
	barkeep_release(b, l1);
	if (test_alloc_on(b, 1, MiB, &l) < 0)
		return 6;
	barkeep_disconnect(b);
	barkeep_lease_free(l);
	barkeep_lease_free(l2);
	return 0;
}

static void test_policy_and_quota(void)
{
	CHECK_EQ(test_as_user(1000, user_policy), 0);
}

/* ---- malformed input ---------------------------------------------------- */

static int raw_connect(void)
{
	return test_raw_connect(sock_path);
}

static int raw_hello(int fd)
{
	return test_raw_hello(fd, 0);
}

static int encode(const struct proto_msg *m, uint8_t *buf)
{
	return proto_encode(m, buf, PROTO_MAX_MESSAGE, NULL);
}

/* Sends a packet (with fds) and expects an ERROR reply, then the hang-up.
 * Returns the ERROR code, 0 when the daemon only hung up, -1 otherwise. */
static int expect_refusal(int fd, const void *pkt, size_t len, const int *fds, size_t n_fds)
{
	if (test_send_raw(fd, pkt, len, fds, n_fds) < 0) {
		close(fd);
		return -1;
	}
	return test_expect_error_and_hangup(fd, 5, NULL, 0);
}

static void test_malformed(void)
{
	uint8_t pkt[PROTO_MAX_MESSAGE];
	struct proto_msg m = { .opcode = PROTO_OP_LIST_DEVICES, .request_id = 7 };
	int base = test_settled_fds(daemon_pid, -1), fd, n;
	int memfds[2] = { memfd_create("x", MFD_CLOEXEC), memfd_create("y", MFD_CLOEXEC) };

	n = encode(&m, pkt);
	/* truncated header */
	fd = raw_connect();
	CHECK(raw_hello(fd) == 0 && expect_refusal(fd, pkt, 10, NULL, 0) > 0);
	/* lying length: header says more than sent, then less */
	fd = raw_connect();
	pkt[12] = (uint8_t)(pkt[12] + 4);
	CHECK(raw_hello(fd) == 0 && expect_refusal(fd, pkt, (size_t)n, NULL, 0) > 0);
	pkt[12] = (uint8_t)(pkt[12] - 4);
	fd = raw_connect();
	uint8_t longer[PROTO_MAX_MESSAGE];
	memcpy(longer, pkt, (size_t)n);
	memset(longer + n, 0, 16);
	CHECK(raw_hello(fd) == 0 && expect_refusal(fd, longer, (size_t)n + 16, NULL, 0) > 0);
	/* unknown opcode */
	fd = raw_connect();
	uint8_t unk[PROTO_MAX_MESSAGE];
	memcpy(unk, pkt, (size_t)n);
	unk[6] = 0x77;
	CHECK(raw_hello(fd) == 0 && expect_refusal(fd, unk, (size_t)n, NULL, 0) == EPROTO);
	/* an fd on a message that takes none */
	fd = raw_connect();
	CHECK(raw_hello(fd) == 0 && expect_refusal(fd, pkt, (size_t)n, memfds, 1) > 0);
	/* too many fds */
	fd = raw_connect();
	CHECK(raw_hello(fd) == 0 && expect_refusal(fd, pkt, (size_t)n, memfds, 2) >= 0);
	/* a request before HELLO */
	fd = raw_connect();
	CHECK_EQ(expect_refusal(fd, pkt, (size_t)n, NULL, 0), EPROTO);
	/* a flood of HELLOs: the second one ends the connection */
	fd = raw_connect();
	struct proto_msg h = { .opcode = PROTO_OP_HELLO, .request_id = 1 };
	h.hello.min_version = h.hello.max_version = 1;
	int hn = encode(&h, pkt);
	CHECK(raw_hello(fd) == 0);
	for (int i = 0; i < 1000; i++)
		if (proto_send(fd, pkt, (size_t)hn, NULL, 0) < 0)
			break;
	close(fd);
	close(memfds[0]);
	close(memfds[1]);

	/* The daemon still serves, and holds no more fds than before. */
	struct barkeep *b = conn("after");
	struct barkeep_lease *l;
	CHECK(b && test_alloc_on(b, 1, MiB, &l) == 0);
	if (b) {
		barkeep_release(b, l);
		barkeep_disconnect(b);
	}
	CHECK_EQ(test_settled_fds(daemon_pid, base), base);
}

static int baseline_fds;

static void test_fds_back_to_baseline(void)
{
	CHECK_EQ(test_fds_report(daemon_pid, baseline_fds), baseline_fds);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: broker_test SOCKET DAEMON_PID VRAM_FILE_OF_GPU0\n");
		return 2;
	}
	sock_path = argv[1];
	daemon_pid = atoi(argv[2]);
	vram0 = argv[3];
	baseline_fds = test_count_fds(daemon_pid);

	RUN(test_list_devices);
	RUN(test_concurrent_clients);
	RUN(test_release_reuses);
	RUN(test_idle_buffer_lent_again);
	RUN(test_passed_fd_quarantine);
	RUN(test_too_big);
	RUN(test_import_prime_refused);
	RUN(test_policy_and_quota);
	RUN(test_malformed);
	RUN(test_fds_back_to_baseline);
	return UNIT_END();
}

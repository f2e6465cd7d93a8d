// SPDX-License-Identifier: MIT
/*
 * Every [limits] key and protocol limit, hit on purpose against a running
 * barkeepd (tests/vm/suites/15-limits.sh writes its config):
 *   limits_test SOCKET               everything but the idle timeout
 *   limits_test SOCKET IDLE_TIMEOUT_S  the idle timeout only
 * The config: max-clients 6, max-clients-per-uid 4, max-leases 5,
 * max-leases-per-client 3, max-leases-per-uid 4, max-bytes-per-uid 8M,
 * max-queued-events 4, handshake-timeout-ms 500, and idle-timeout-s 0, or
 * IDLE_TIMEOUT_S when given (a daemon of its own: held connections and
 * watchers would otherwise go idle in a slow run, e.g. under valgrind);
 * device 0 (gpu0) with max-bytes-per-uid 6M, device 1 (gpu1) without; both
 * open to root and uid 1000. Each refusal must name its config key or
 * limit. doc/limits.md lists where each limit is tested.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "proto/codec.h"
#include "tests/lib/vmtest.h"
#include "tests/unit/unit.h"

#define MiB (1ull << 20)
#define GPU0 0
#define GPU1 1

static const char *sock_path;
static unsigned idle_timeout_s;

/* Did the last failure of bk (NULL: the last connect) name key? */
static bool said(const struct barkeep *bk, const char *key)
{
	const char *msg = barkeep_error_message(bk);
	if (strstr(msg, key))
		return true;
	fprintf(stderr, "  wanted \"%s\" in: %s\n", key, msg);
	return false;
}

/* ---- connections -------------------------------------------------------- */

/* Root holds 4 connections (max-clients-per-uid); uid 1000 takes the last 2 of
 * max-clients = 6 and is refused the seventh. */
static int user_fills_clients(void)
{
	struct barkeep *a = NULL, *b = NULL, *c = NULL;
	if (barkeep_connect(sock_path, "u1", &a) < 0 || barkeep_connect(sock_path, "u2", &b) < 0)
		return 1;
	int r = barkeep_connect(sock_path, "u3", &c);
	if (r != -EDQUOT) {
		fprintf(stderr, "  a seventh connection: %s (%s)\n", strerror(-r),
			barkeep_error_message(NULL));
		return 2;
	}
	if (!said(NULL, "(max-clients)") || !said(NULL, "barkeepd serves 6 connections"))
		return 3;
	barkeep_disconnect(a);
	barkeep_disconnect(b);
	return 0;
}

static void test_clients(void)
{
	struct barkeep *c[5] = {};
	for (int i = 0; i < 4; i++)
		CHECK_EQ(barkeep_connect(sock_path, "root", &c[i]), 0);
	CHECK_EQ(barkeep_connect(sock_path, "root5", &c[4]), -EDQUOT);
	CHECK(said(NULL, "(max-clients-per-uid)") && said(NULL, "uid 0 has 4 connections"));
	CHECK_EQ(test_as_user(1000, user_fills_clients), 0);
	for (int i = 0; i < 4; i++)
		barkeep_disconnect(c[i]);
}

/* ---- leases and bytes ---------------------------------------------------- */

/* Root holds 4 leases: one more from uid 1000 fills max-leases = 5. */
static int user_fills_leases(void)
{
	struct barkeep *b = NULL;
	struct barkeep_lease *l, *l2;
	if (barkeep_connect(sock_path, "u", &b) < 0)
		return 1;
	if (test_alloc_on(b, GPU1, MiB, &l) < 0)
		return 2;
	if (test_alloc_on(b, GPU1, MiB, &l2) != -EDQUOT)
		return 3;
	if (!said(b, "(max-leases)") || !said(b, "barkeepd lends 5 leases to all clients"))
		return 4;
	barkeep_release(b, l);
	barkeep_disconnect(b);
	return 0;
}

static void test_leases(void)
{
	struct barkeep *a = test_connect(sock_path, "a"), *b = test_connect(sock_path, "b");
	struct barkeep_lease *la[4] = {}, *lb[2] = {};
	CHECK(a && b);
	if (!a || !b)
		return;
	for (int i = 0; i < 3; i++)
		CHECK_EQ(test_alloc_on(a, GPU1, MiB, &la[i]), 0);
	CHECK_EQ(test_alloc_on(a, GPU1, MiB, &la[3]), -EDQUOT);
	CHECK(said(a, "(max-leases-per-client)") && said(a, "this connection holds 3 leases"));
	CHECK_EQ(test_alloc_on(b, GPU1, MiB, &lb[0]), 0);
	CHECK_EQ(test_alloc_on(b, GPU1, MiB, &lb[1]), -EDQUOT);
	CHECK(said(b, "(max-leases-per-uid)") && said(b, "uid 0 holds 4 leases"));
	CHECK_EQ(test_as_user(1000, user_fills_leases), 0);
	barkeep_disconnect(a); /* ends its leases */
	barkeep_disconnect(b);
	for (int i = 0; i < 3; i++)
		barkeep_lease_free(la[i]);
	barkeep_lease_free(lb[0]);
}

static void test_bytes(void)
{
	struct barkeep *a = test_connect(sock_path, "bytes");
	struct barkeep_lease *l0, *l;
	CHECK(a);
	if (!a)
		return;
	CHECK_EQ(test_alloc_on(a, GPU0, 6 * MiB, &l0), 0);
	CHECK_EQ(test_alloc_on(a, GPU0, MiB, &l), -EDQUOT);
	CHECK(said(a, "(max-bytes-per-uid of [device gpu0])") && said(a, "limit is 6 MiB"));
	CHECK_EQ(test_alloc_on(a, GPU1, 4 * MiB, &l), -EDQUOT);
	CHECK(said(a, "limit is 8 MiB (max-bytes-per-uid)"));
	CHECK_EQ(test_alloc_on(a, GPU1, 2 * MiB, &l), 0); /* exactly the limit */
	barkeep_disconnect(a);
	barkeep_lease_free(l0);
	barkeep_lease_free(l);
}

/* ---- the protocol's own limits ------------------------------------------ */

static void test_message_size(void)
{
	static uint8_t big[PROTO_MAX_MESSAGE + 1];
	char msg[256] = "";
	int fd = test_raw_connect(sock_path);

	CHECK(fd >= 0 && test_raw_hello(fd, 0) == 0);
	CHECK_EQ(test_send_raw(fd, big, sizeof(big), NULL, 0), 0);
	CHECK_EQ(test_expect_error_and_hangup(fd, 5, msg, sizeof(msg)), E2BIG);
	CHECK_CONTAINS(msg, "larger than the 65536-byte limit");
}

static void test_fds_per_message(void)
{
	struct proto_msg m = { .opcode = PROTO_OP_LIST_DEVICES, .request_id = 2 };
	uint8_t pkt[PROTO_MAX_MESSAGE];
	int n = proto_encode(&m, pkt, sizeof(pkt), NULL);
	int fds[2] = { memfd_create("a", MFD_CLOEXEC), memfd_create("b", MFD_CLOEXEC) };
	char msg[256] = "";
	int fd = test_raw_connect(sock_path);

	CHECK(fd >= 0 && n > 0 && test_raw_hello(fd, 0) == 0);
	CHECK_EQ(test_send_raw(fd, pkt, (size_t)n, fds, 2), 0);
	CHECK_EQ(test_expect_error_and_hangup(fd, 5, msg, sizeof(msg)), E2BIG);
	CHECK_CONTAINS(msg, "more than 1 fd attached");
	close(fds[0]);
	close(fds[1]);
}

/* ---- time limits ----------------------------------------------------------- */

static void test_handshake_timeout(void)
{
	char msg[256] = "";
	int fd = test_raw_connect(sock_path);

	CHECK(fd >= 0);
	CHECK_EQ(test_expect_error_and_hangup(fd, 5, msg, sizeof(msg)), ETIMEDOUT);
	CHECK_CONTAINS(msg, "no HELLO within 500 ms (handshake-timeout-ms)");
}

static void test_idle_timeout(void)
{
	char msg[256] = "", want[128];
	int fd = test_raw_connect(sock_path);

	CHECK(fd >= 0 && test_raw_hello(fd, 0) == 0);
	CHECK_EQ(test_expect_error_and_hangup(fd, idle_timeout_s + 5, msg, sizeof(msg)), ETIMEDOUT);
	snprintf(want, sizeof(want), "no request and no lease for %u s (idle-timeout-s)",
		 idle_timeout_s);
	CHECK_CONTAINS(msg, want);
}

/* A connection that holds a lease is not idle, however quiet. */
static void test_lease_holder_not_idle(void)
{
	struct barkeep *b = test_connect(sock_path, "holder");
	struct barkeep_lease *l;
	struct barkeep_device *d;
	size_t n;

	CHECK(b);
	if (!b)
		return;
	CHECK_EQ(test_alloc_on(b, GPU1, MiB, &l), 0);
	sleep(2 * idle_timeout_s + 1);
	CHECK_EQ(barkeep_list_devices(b, &d, &n), 0);
	if (n)
		free(d);
	barkeep_disconnect(b);
	barkeep_lease_free(l);
}

/* ---- slow readers ------------------------------------------------------- */

/* Requests whose replies are never read: past max-queued-events replies
 * waiting in the daemon, it hangs up (it says why in its log only: the
 * client reads nothing). */
static void test_unread_replies(void)
{
	struct proto_msg m = { .opcode = PROTO_OP_LIST_DEVICES, .request_id = 3 };
	uint8_t pkt[PROTO_MAX_MESSAGE];
	int n = proto_encode(&m, pkt, sizeof(pkt), NULL);
	int fd = test_raw_connect(sock_path);
	bool hung_up = false;

	CHECK(fd >= 0 && n > 0 && test_raw_hello(fd, 0) == 0);
	for (int i = 0; i < 100000 && !hung_up; i++) {
		if (send(fd, pkt, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
			continue;
		if (errno != EAGAIN) {
			hung_up = errno == EPIPE || errno == ECONNRESET;
			break;
		}
		struct pollfd p = { fd, POLLOUT, 0 };
		(void)poll(&p, 1, 100);
		hung_up = p.revents & POLLHUP;
	}
	CHECK(hung_up);
	close(fd);
}

/* A WATCH client that never reads its events while resets of gpu1 produce
 * them: disconnected once max-queued-events wait in the daemon. */
static void test_unread_events(void)
{
	struct barkeep *admin = test_connect(sock_path, "admin");
	int fd = test_raw_connect(sock_path);
	int resets = 0;
	bool hung_up = false;

	CHECK(admin && fd >= 0 && test_raw_hello(fd, PROTO_CAP_WATCH) == 0);
	while (admin && resets < 2000 && !hung_up) {
		if (barkeep_reset(admin, GPU1, true, 0) < 0) {
			fprintf(stderr, "  reset: %s\n", barkeep_error_message(admin));
			break;
		}
		resets++;
		struct pollfd p = { fd, 0, 0 };
		hung_up = poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
	}
	printf("  the watcher was disconnected after %d resets (%d events)\n", resets, 2 * resets);
	CHECK(hung_up);
	close(fd);
	barkeep_disconnect(admin);
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: limits_test SOCKET [IDLE_TIMEOUT_S]\n");
		return 2;
	}
	sock_path = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3) {
		idle_timeout_s = (unsigned)atoi(argv[2]);
		RUN(test_idle_timeout);
		RUN(test_lease_holder_not_idle);
		return UNIT_END();
	}

	RUN(test_clients);
	RUN(test_leases);
	RUN(test_bytes);
	RUN(test_message_size);
	RUN(test_fds_per_message);
	RUN(test_handshake_timeout);
	RUN(test_unread_replies);
	RUN(test_unread_events);
	return UNIT_END();
}

// SPDX-License-Identifier: MIT
/*
 * A lease holder that survives a barkeepd restart (proto/PROTOCOL.md,
 * section 11), for the systemd suite:
 *
 *   reclaim_test SOCKET READY_FILE [TIMEOUT_S]
 *
 * Connects with BARKEEP_CONNECT_RECONNECT, borrows 1 MiB of any device
 * (with bk_observer attached to it when /dev/bk_observer exists), creates
 * READY_FILE and dispatches events until the library says it reconnected
 * (TIMEOUT_S, default 60); the suite restarts barkeepd meanwhile. Then it
 * checks that the lease was reclaimed (same id, same fd, listed as the
 * connection's own), that the buffer was never revoked, and releases it.
 *
 *   reclaim_test --refused SOCKET
 *
 * The refusals, which need no restart: RECLAIM of a live lease from another
 * connection, with its token and with a wrong one, is ENOENT with the
 * broker's sentence, and the lease stays its holder's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"
#include "tests/kmod/bk_observer.h"
#include "tests/lib/report.h"

struct outcome {
	bool reconnected;
	uint32_t n_reclaimed, n_lost;
	uint64_t revoked_id; /* a LEASE_REVOKED seen, or 0 */
	const char *revoke_reason;
};

static void on_event(struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	struct outcome *o = userdata;

	if (ev->type == BARKEEP_EVENT_RECONNECTED) {
		o->reconnected = true;
		o->n_reclaimed = ev->n_reclaimed;
		o->n_lost = ev->n_lost;
	} else if (ev->type == BARKEEP_EVENT_LEASE_REVOKED) {
		o->revoked_id = ev->lease_id;
		o->revoke_reason = barkeep_event_reason(ev);
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Dispatches until RECONNECTED; the LEASE_REVOKED of lost leases come in
 * the same batch. */
static int wait_for_reconnect(struct barkeep *bk, struct outcome *o, int timeout_s)
{
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;

	while (!o->reconnected && now_ms() < deadline) {
		struct pollfd p = { .fd = barkeep_get_fd(bk), .events = POLLIN };
		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			return -errno;
		int r = barkeep_dispatch(bk);
		if (r < 0)
			return r;
	}
	return o->reconnected ? 0 : -ETIMEDOUT;
}

/* The observer, when loaded: an importer that would see a revocation. */
static int observer_attach(int fd, uint32_t *ret_slot)
{
	struct bk_observer_attach at = { .fd = fd };
	int obs = open(BK_OBSERVER_DEVICE, O_RDWR | O_CLOEXEC);

	if (obs < 0)
		return -errno;
	if (ioctl(obs, BK_OBSERVER_IOC_ATTACH, &at) < 0) {
		int r = -errno;
		close(obs);
		return r;
	}
	*ret_slot = at.slot;
	return obs;
}

static void check_not_revoked(int obs, uint32_t slot)
{
	struct bk_observer_status st = { .slot = slot };

	if (obs < 0)
		return;
	if (ioctl(obs, BK_OBSERVER_IOC_STATUS, &st) < 0)
		test_fail("buffer not revoked", "observer STATUS: %m");
	else if (st.invalidations)
		test_fail("buffer not revoked", "the observer saw %" PRIu64 " invalidation(s)",
			  (uint64_t)st.invalidations);
	else
		test_ok("buffer not revoked (the observer saw no invalidation)");
}

static void check_listed(struct barkeep *bk, const struct barkeep_lease *lease)
{
	struct barkeep_lease *list = NULL;
	size_t n = 0;
	bool found = false;

	int r = barkeep_list_leases(bk, &list, &n);
	if (r < 0) {
		test_fail("lease listed as our own", "LIST_LEASES: %s", barkeep_error_message(bk));
		return;
	}
	for (size_t i = 0; i < n; i++)
		found |= list[i].id == lease->id && list[i].size == lease->size;
	free(list);
	if (found)
		test_ok("lease listed as our own, same id");
	else
		test_fail("lease listed as our own", "%zu leases listed, none is %" PRIu64, n,
			  lease->id);
}

static void check_reclaimed(struct barkeep *bk, const struct outcome *o,
			    const struct barkeep_lease *lease, uint64_t id, int fd)
{
	char name[64];

	snprintf(name, sizeof(name), "reclaimed lease %" PRIu64, id);
	if (o->n_reclaimed != 1 || o->n_lost != 0)
		test_fail(name, "reclaimed %" PRIu32 ", lost %" PRIu32 " (%s)", o->n_reclaimed,
			  o->n_lost, barkeep_error_message(bk));
	else if (o->revoked_id)
		test_fail(name, "LEASE_REVOKED for lease %" PRIu64 " (%s)", o->revoked_id,
			  o->revoke_reason);
	else if (lease->id != id || lease->fd != fd)
		test_fail(name, "now lease %" PRIu64 " fd %d, was fd %d", lease->id, lease->fd, fd);
	else if (lseek(lease->fd, 0, SEEK_END) != (off_t)lease->size)
		test_fail(name, "its fd's size is not the lease's %" PRIu64 " bytes", lease->size);
	else
		test_ok(name);
}

static int survive_restart(const char *sock, const char *ready, int timeout_s)
{
	struct barkeep_alloc_params p = { .size = 1 << 20 };
	struct barkeep_lease *lease = NULL;
	struct outcome o = {};
	struct barkeep *bk;
	uint32_t slot = 0;

	int r = barkeep_connect_with(sock, "reclaim-test", BARKEEP_CONNECT_RECONNECT, &bk);
	if (r < 0) {
		test_fail("connect", "%s", barkeep_error_message(NULL));
		return test_finish();
	}
	barkeep_set_event_handler(bk, on_event, &o);
	r = barkeep_alloc(bk, &p, &lease);
	if (r < 0) {
		test_fail("alloc", "%s", barkeep_error_message(bk));
		barkeep_disconnect(bk);
		return test_finish();
	}
	uint64_t id = lease->id;
	int fd = lease->fd;
	_cleanup_close_ int obs = observer_attach(lease->fd, &slot);
	if (obs < 0)
		fprintf(stderr, "  observer not attached (%s): revocation not watched\n",
			strerror(-obs));
	_cleanup_close_ int rf = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (rf < 0)
		test_fail("ready file", "%s: %m", ready);

	r = wait_for_reconnect(bk, &o, timeout_s);
	if (r < 0) {
		test_fail("reconnected", "%s", r == -ETIMEDOUT ? "no RECONNECTED event in time" :
			  barkeep_error_message(bk));
		barkeep_lease_free(lease);
		barkeep_disconnect(bk);
		return test_finish();
	}
	test_ok("reconnected");
	check_reclaimed(bk, &o, lease, id, fd);
	check_not_revoked(obs, slot);
	check_listed(bk, lease);
	r = barkeep_release(bk, lease);
	if (r < 0)
		test_fail("released", "%s", barkeep_error_message(bk));
	else
		test_ok("released");
	barkeep_disconnect(bk);
	return test_finish();
}

/* One refused RECLAIM: ENOENT, the broker's sentence, *lease untouched. */
static void expect_refused(struct barkeep *bk, const char *name, const struct barkeep_lease *held,
			   const uint8_t token[16])
{
	struct barkeep_lease copy = *held;

	int r = barkeep_reclaim(bk, held->id, token, &copy);
	if (r != -ENOENT)
		test_fail(name, "returned %d (%s), expected -ENOENT", r, barkeep_error_message(bk));
	else if (!strstr(barkeep_error_message(bk), "no orphaned lease"))
		test_fail(name, "ENOENT, but the sentence is \"%s\"", barkeep_error_message(bk));
	else if (memcmp(&copy, held, sizeof(copy)) != 0)
		test_fail(name, "the lease record changed");
	else
		test_ok(name);
	fprintf(stderr, "  broker: %s\n", barkeep_error_message(bk));
}

static int refusals(const char *sock)
{
	struct barkeep_alloc_params p = { .size = 1 << 20 };
	struct barkeep_lease *lease = NULL;
	struct barkeep *holder, *other;
	uint8_t wrong[16];

	if (barkeep_connect(sock, "reclaim-holder", &holder) < 0 ||
	    barkeep_connect(sock, "reclaim-thief", &other) < 0) {
		test_fail("connect", "%s", barkeep_error_message(NULL));
		return test_finish();
	}
	if (barkeep_alloc(holder, &p, &lease) < 0) {
		test_fail("alloc", "%s", barkeep_error_message(holder));
		return test_finish();
	}
	memcpy(wrong, lease->reclaim_token, sizeof(wrong));
	wrong[15] ^= 0x5a;
	expect_refused(other, "RECLAIM with a wrong token: ENOENT", lease, wrong);
	expect_refused(other, "RECLAIM of a live lease with its token: ENOENT", lease,
		       lease->reclaim_token);
	/* The refusal left the holder's lease alone. */
	if (barkeep_release(holder, lease) < 0)
		test_fail("holder still releases it", "%s", barkeep_error_message(holder));
	else
		test_ok("holder still releases it");
	barkeep_disconnect(other);
	barkeep_disconnect(holder);
	return test_finish();
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--refused") == 0)
		return refusals(argv[2]);
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: reclaim_test SOCKET READY_FILE [TIMEOUT_S]\n"
				"       reclaim_test --refused SOCKET\n");
		return 2;
	}
	int timeout_s = argc == 4 ? atoi(argv[3]) : 60;
	if (timeout_s <= 0) {
		fprintf(stderr, "reclaim_test: TIMEOUT_S '%s' is not a number of seconds\n",
			argv[3]);
		return 2;
	}
	return survive_restart(argv[1], argv[2], timeout_s);
}

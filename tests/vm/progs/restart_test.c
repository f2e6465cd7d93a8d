// SPDX-License-Identifier: MIT
/*
 * A lease holder for suite 70-systemd: what happens to a client's buffer when
 * barkeepd stops or restarts under systemd.
 *
 *   restart_test SOCKET READY_FILE kept|revoked|gone
 *
 * Connects, borrows 1 MiB of device 0, attaches bk_observer to the dma-buf,
 * creates READY_FILE and waits (60 s at most) for the connection to end; the
 * suite then stops or restarts barkeepd. Afterwards it checks what the mode
 * says barkeepd promises (barkeepd(8), RESTARTS):
 *   kept     a restart or crash with the fd store: the observer sees no
 *            invalidation, and the client reconnects and reclaims its lease
 *   revoked  without the fd store (FileDescriptorStoreMax=0): DEVICE_GONE
 *            (SHUTDOWN) first, then the buffer is revoked for good at the
 *            kernel's last close of the VFIO device fd — an invalidation, and
 *            attaching again fails ENODEV
 *   gone     systemctl stop: DEVICE_GONE (SHUTDOWN) arrives before the
 *            connection ends, then the buffer is revoked as above
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"
#include "tests/kmod/bk_observer.h"
#include "tests/lib/report.h"
#include "tests/lib/vmtest.h"

static int obs_status(int obs, uint32_t slot, struct bk_observer_status *ret)
{
	*ret = (struct bk_observer_status){ .slot = slot };
	return ioctl(obs, BK_OBSERVER_IOC_STATUS, ret) < 0 ? -errno : 0;
}

static int obs_reattach(int obs, uint32_t slot)
{
	struct bk_observer_reattach re = { .slot = slot };
	return ioctl(obs, BK_OBSERVER_IOC_REATTACH, &re) < 0 ? -errno : 0;
}

static bool saw_shutdown;

static void on_event(struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	if (ev->type == BARKEEP_EVENT_DEVICE_GONE && ev->reason == BARKEEP_REASON_SHUTDOWN)
		saw_shutdown = true;
}

/* Waits until barkeep_dispatch() says the broker went away. */
static int wait_for_hangup(struct barkeep *bk, int timeout_ms)
{
	struct pollfd p = { .fd = barkeep_get_fd(bk), .events = POLLIN };
	for (int waited = 0; waited < timeout_ms; waited += 100) {
		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			return -errno;
		int r = barkeep_dispatch(bk);
		if (r < 0)
			return r;
	}
	return -ETIMEDOUT;
}

/* The new barkeepd took the buffer up: no invalidation, ever. */
static void check_kept(int obs, uint32_t slot, const char *when)
{
	struct bk_observer_status st;
	int r = obs_status(obs, slot, &st);
	if (r < 0)
		test_fail("buffer kept", "STATUS %s: %s", when, strerror(-r));
	else if (st.invalidations)
		test_fail("buffer kept", "%llu invalidation(s) seen %s",
			  (unsigned long long)st.invalidations, when);
	else
		test_okf("buffer not revoked %s (the observer saw no invalidation)", when);
}

/* Connects again and takes the lease back with its token. */
static void reclaim_and_check(const char *path, struct barkeep_lease *lease, int obs, uint32_t slot)
{
	struct barkeep *bk = NULL;
	for (int i = 0; i < 100 && !bk; i++) {
		bk = test_connect(path, "restart-test");
		if (!bk)
			usleep(100 * 1000);
	}
	if (!bk) {
		test_fail("reconnect", "cannot connect to %s for 10 s", path);
		return;
	}
	test_ok("reconnected");
	uint64_t id = lease->id;
	int r = barkeep_reclaim(bk, lease->id, lease->reclaim_token, lease);
	if (r < 0)
		test_fail("reclaimed", "%s", barkeep_error_message(bk));
	else if (lease->id != id)
		test_fail("reclaimed", "lease %llu came back as %llu", (unsigned long long)id,
			  (unsigned long long)lease->id);
	else
		test_ok("reclaimed with its token, same id");
	check_kept(obs, slot, "after reconnecting");
	barkeep_disconnect(bk); /* ends the reclaimed lease: no orphan is left */
}

/* The revoke follows the daemon's exit; give it a moment. */
static void check_revoked(int obs, uint32_t slot)
{
	struct bk_observer_status st;
	for (int i = 0; i < 50; i++) {
		if (obs_status(obs, slot, &st) == 0 && st.invalidations > 0)
			break;
		usleep(100 * 1000);
	}
	int r = obs_status(obs, slot, &st);
	if (r < 0)
		test_fail("buffer revoked", "STATUS: %s", strerror(-r));
	else if (st.invalidations == 0)
		test_fail("buffer revoked", "no invalidation seen");
	else
		test_ok("buffer revoked (the observer saw it)");
	r = obs_reattach(obs, slot);
	if (r == -ENODEV)
		test_ok("for good: attaching again fails ENODEV");
	else
		test_fail("for good", "REATTACH: %s", r ? strerror(-r) : "worked");
}

int main(int argc, char **argv)
{
	struct barkeep_lease *lease = NULL;
	struct bk_observer_attach at = {};
	int r;

	if (argc != 4 || (strcmp(argv[3], "kept") && strcmp(argv[3], "revoked") && strcmp(argv[3], "gone"))) {
		fprintf(stderr, "usage: restart_test SOCKET READY_FILE kept|revoked|gone\n");
		return 2;
	}
	const char *mode = argv[3];
	struct barkeep *bk = test_connect(argv[1], "restart-test");
	if (!bk) {
		test_fail("connect", "cannot connect to %s", argv[1]);
		return test_finish();
	}
	barkeep_set_event_handler(bk, on_event, NULL);
	r = test_alloc_on(bk, 0, 1 << 20, &lease);
	if (r < 0) {
		test_fail("alloc", "%s", barkeep_error_message(bk));
		return test_finish();
	}
	_cleanup_close_ int obs = open(BK_OBSERVER_DEVICE, O_RDWR | O_CLOEXEC);
	at.fd = lease->fd;
	if (obs < 0 || ioctl(obs, BK_OBSERVER_IOC_ATTACH, &at) < 0) {
		test_fail("observer attached", "%m");
		return test_finish();
	}
	test_okf("lease %llu held, observer attached", (unsigned long long)lease->id);
	_cleanup_close_ int ready = open(argv[2], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	r = wait_for_hangup(bk, 60000);
	if (r == -ETIMEDOUT)
		test_fail("connection ends when barkeepd goes", "still connected after 60 s");
	else
		test_ok("connection ends when barkeepd goes");

	if (strcmp(mode, "kept") != 0) {
		/* The buffers die: a stop, or a restart without the fd store. */
		if (saw_shutdown)
			test_ok("DEVICE_GONE (shutdown) came before the connection ended");
		else
			test_fail("told before the end", "no DEVICE_GONE with reason SHUTDOWN");
	} else if (saw_shutdown) {
		test_fail("no DEVICE_GONE on a restart", "DEVICE_GONE (shutdown) came");
	}
	if (strcmp(mode, "kept") != 0) {
		check_revoked(obs, at.slot);
	} else {
		sleep(2); /* the old process's exit, systemd's restart */
		check_kept(obs, at.slot, "after the restart");
		reclaim_and_check(argv[1], lease, obs, at.slot);
	}
	barkeep_lease_free(lease);
	barkeep_disconnect(bk);
	return test_finish();
}

// SPDX-License-Identifier: MIT
/*
 * A lease holder for suite 70-systemd: what happens to a client's buffer when
 * barkeepd stops or restarts under systemd.
 *
 *   restart_test SOCKET READY_FILE
 *
 * Connects, borrows 1 MiB of device 0, attaches bk_observer to the dma-buf,
 * creates READY_FILE and waits (60 s at most) for the connection to end; the
 * suite then stops or restarts barkeepd. Afterwards it checks what barkeepd
 * promises today (barkeepd(8), FILES): the connection ends, and the buffer
 * is revoked for good (the kernel's last close of the VFIO device fd) —
 * the observer sees an invalidation and cannot attach again (ENODEV).
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

int main(int argc, char **argv)
{
	struct barkeep_lease *lease = NULL;
	struct bk_observer_attach at = {};
	struct bk_observer_status st;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: restart_test SOCKET READY_FILE\n");
		return 2;
	}
	struct barkeep *bk = test_connect(argv[1], "restart-test");
	if (!bk) {
		test_fail("connect", "cannot connect to %s", argv[1]);
		return test_finish();
	}
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
	test_ok("lease held, observer attached");
	_cleanup_close_ int ready = open(argv[2], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	r = wait_for_hangup(bk, 60000);
	if (r == -ETIMEDOUT)
		test_fail("connection ends when barkeepd goes", "still connected after 60 s");
	else
		test_ok("connection ends when barkeepd goes");

	/* The revoke follows the daemon's exit; give it a moment. */
	for (int i = 0; i < 50; i++) {
		if (obs_status(obs, at.slot, &st) == 0 && st.invalidations > 0)
			break;
		usleep(100 * 1000);
	}
	r = obs_status(obs, at.slot, &st);
	if (r < 0)
		test_fail("buffer revoked", "STATUS: %s", strerror(-r));
	else if (st.invalidations == 0)
		test_fail("buffer revoked", "no invalidation seen");
	else
		test_ok("buffer revoked (the observer saw it)");
	r = obs_reattach(obs, at.slot);
	if (r == -ENODEV)
		test_ok("for good: attaching again fails ENODEV");
	else
		test_fail("for good", "REATTACH: %s", r ? strerror(-r) : "worked");

	barkeep_lease_free(lease);
	barkeep_disconnect(bk);
	return test_finish();
}

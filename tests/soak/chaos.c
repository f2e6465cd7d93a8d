// SPDX-License-Identifier: MIT
/*
 * The chaos process: resets devices through the admin API (RESET blocks
 * until the device is back, so it cannot run in the soak's own loop),
 * restarts barkeepd with opts.restart_cmd, and once takes opts.unplug away
 * from vfio-pci (the daemon's request eventfd fires: PAUSE, then GONE) and
 * binds it again, so that a later restart brings it back. Each act is
 * reported to the soak over a SOCK_SEQPACKET socketpair.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/soak/soak.h"

static volatile sig_atomic_t stopping;
static int report_fd = -1;

/* What the chaos connection (WATCH) heard of each device. */
static uint64_t paused_gen[SOAK_MAX_DEV];
static bool gone[SOAK_MAX_DEV];

static void on_stop(int sig)
{
	stopping = 1;
}

static void on_event(struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	uint32_t d = ev->device_id % SOAK_MAX_DEV;

	if (ev->type == BARKEEP_EVENT_DEVICE_PAUSE)
		paused_gen[d] = ev->generation;
	else if (ev->type == BARKEEP_EVENT_DEVICE_GONE)
		gone[d] = true;
	else if (ev->type == BARKEEP_EVENT_DEVICE_RESUME)
		gone[d] = false;
}

static void report(const struct chaos_report *rep)
{
	if (send(report_fd, rep, sizeof(*rep), MSG_NOSIGNAL) < 0)
		_exit(1);
}

/* Sleeps up to ms; false when told to stop meanwhile. */
static bool nap(int64_t ms)
{
	int64_t end = soak_now_ms() + ms;
	while (!stopping && soak_now_ms() < end)
		usleep(20 * 1000);
	return !stopping;
}

static int write_sysfs(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int r = fd < 0 || write(fd, value, strlen(value)) < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	return r;
}

/* A random device that is not gone; -1 if none. */
static int pick_device(struct barkeep *bk, const char *pci)
{
	struct barkeep_device *d;
	size_t n;
	int id = -1;

	if (barkeep_list_devices(bk, &d, &n) < 0)
		return -1;
	size_t start = n ? soak_below(n) : 0;
	for (size_t k = 0; k < n && id < 0; k++) {
		const struct barkeep_device *x = &d[(start + k) % n];
		if (x->state != BARKEEP_DEVICE_GONE && x->id < SOAK_MAX_DEV &&
		    (!pci || strcmp(x->pci_address, pci) == 0))
			id = (int)x->id;
	}
	free(d);
	return id;
}

static void do_reset(struct barkeep *bk)
{
	int dev = pick_device(bk, NULL);
	if (dev < 0)
		return;
	bool force = soak_below(5) == 0;
	struct chaos_report rep = { .kind = CHAOS_RESET, .dev = (uint32_t)dev, .t_send = soak_now_ms() };
	rep.r = barkeep_reset(bk, (uint32_t)dev, force, 0);
	rep.t_done = soak_now_ms();
	barkeep_dispatch(bk);
	rep.gen = paused_gen[dev];
	rep.gone = gone[dev];
	report(&rep);
}

static void do_restart(struct barkeep *bk)
{
	struct chaos_report rep = { .kind = CHAOS_RESTART_BEGIN, .t_send = soak_now_ms() };
	char go;

	report(&rep);
	if (read(report_fd, &go, 1) != 1)
		_exit(1);
	int st = system(opts.restart_cmd);
	rep.t_stopped = soak_now_ms();
	rep.r = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
	/* Back when it answers (the library reconnects for us). */
	struct barkeep_device *d;
	size_t n;
	if (barkeep_list_devices(bk, &d, &n) == 0)
		free(d);
	rep.kind = CHAOS_RESTART_END;
	rep.t_done = soak_now_ms();
	report(&rep);
}

static void do_unplug(struct barkeep *bk)
{
	int dev = pick_device(bk, opts.unplug);
	if (dev < 0)
		return;
	struct chaos_report rep = { .kind = CHAOS_UNPLUG, .dev = (uint32_t)dev, .t_send = soak_now_ms() };
	/* Blocks until barkeepd has closed the device. */
	rep.r = write_sysfs("/sys/bus/pci/drivers/vfio-pci/unbind", opts.unplug);
	rep.t_done = soak_now_ms();
	/* Its events may trail the unbind a little. */
	for (int i = 0; i < 50 && !gone[dev]; i++) {
		barkeep_dispatch(bk);
		usleep(20 * 1000);
	}
	rep.gen = paused_gen[dev];
	rep.gone = gone[dev];
	report(&rep);
	/* driver_override still names vfio-pci: bind it again for the next start. */
	if (write_sysfs("/sys/bus/pci/drivers/vfio-pci/bind", opts.unplug) < 0)
		fprintf(stderr, "soak: chaos: cannot bind %s to vfio-pci again: %m\n", opts.unplug);
}

static void chaos_main(void)
{
	struct barkeep *bk;
	int64_t start = soak_now_ms();
	int64_t next_reset = start + (int64_t)soak_below(2 * (uint64_t)opts.reset_ms + 1);
	int64_t next_restart = start + (int64_t)opts.restart_ms / 2 +
			       (int64_t)soak_below(opts.restart_ms + 1);
	int64_t unplug_at = start + (int64_t)soak_below((uint64_t)opts.seconds * 500 + 1);

	signal(SIGTERM, on_stop);
	if (barkeep_connect_with(opts.sock, "soak-chaos",
				 BARKEEP_CONNECT_WATCH | BARKEEP_CONNECT_RECONNECT, &bk) < 0) {
		fprintf(stderr, "soak: chaos: %s\n", barkeep_error_message(NULL));
		_exit(1);
	}
	barkeep_set_event_handler(bk, on_event, NULL);
	while (nap(10)) {
		int64_t now = soak_now_ms();
		barkeep_dispatch(bk);
		if (opts.unplug && now >= unplug_at) {
			do_unplug(bk);
			opts.unplug = NULL;
		} else if (opts.restart_cmd && now >= next_restart) {
			do_restart(bk);
			next_restart = soak_now_ms() + (int64_t)soak_below(2 * (uint64_t)opts.restart_ms + 1);
		} else if (opts.reset_ms && now >= next_reset) {
			do_reset(bk);
			next_reset = soak_now_ms() + (int64_t)soak_below(2 * (uint64_t)opts.reset_ms + 1);
		}
	}
	barkeep_disconnect(bk);
	_exit(0);
}

pid_t chaos_start(int *ret_fd)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Its own stream of randomness, from the seed. */
	uint64_t seed = soak_rand();
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		report_fd = sv[1];
		soak_srand(seed);
		chaos_main();
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -errno;
	}
	*ret_fd = sv[0];
	return pid;
}

void chaos_stop(pid_t pid, int fd)
{
	kill(pid, SIGTERM);
	/* A restart waiting for its go gives up: no restart after the end. */
	shutdown(fd, SHUT_RDWR);
	waitpid(pid, NULL, 0);
	close(fd);
}

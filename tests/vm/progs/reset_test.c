// SPDX-License-Identifier: MIT
/*
 * Device reset on a real kernel: run inside the VM against a running daemon
 * (tests/vm/suites/20-reset.sh writes its config). Usage:
 *   reset_test SOCKET
 * Many connections from this one process hold leases on gpu0 (device 0) and
 * gpu1 (device 1) and take their events through barkeep_dispatch(); the
 * RESET requests come from forked children, since a RESET blocks its caller
 * until the device resumed.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "tests/kmod/bk_observer.h"
#include "tests/unit/unit.h"

#define KiB (1ull << 10)
#define N_GPU0 56 /* holders of gpu0 that acknowledge pauses */
#define N_GPU1 8  /* holders of gpu1 */
#define N_ALL (N_GPU0 + N_GPU1 + 2) /* + a gpu0 holder that never acknowledges, a watcher */

struct holder {
	struct barkeep *bk;
	struct barkeep_lease *lease;
	uint32_t dev;
	bool acks, connected;
	bool watches; /* holds nothing, hears of every device (WATCH) */
	/* what one round saw */
	int n_pause, n_resume, n_gone, n_other, ack_result;
	bool resume_before_pause;
	struct barkeep_event pause, resume, gone; /* the last of each */
};

struct reset_result {
	int r;
	long long ms;
	char msg[300];
};

static const char *sock_path;
static struct holder holders[N_ALL];
static size_t n_holders;
static struct barkeep *prober; /* for requests while a device is paused */
static int observer_fd = -1;
static uint32_t observer_slot;
static int round_no;          /* what the first PAUSE of a round probes */
static int error_fd = -1;     /* a copy of the daemon's error eventfd of gpu0 */
static const char *gpu1_addr;
static bool probed;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct barkeep *conn(const char *name)
{
	struct barkeep *bk = NULL;
	if (barkeep_connect(sock_path, name, &bk) < 0)
		fprintf(stderr, "  connect: %s\n", barkeep_error_message(NULL));
	return bk;
}

static bool device_state(uint32_t dev, enum barkeep_device_state *ret_state, uint64_t *ret_gen)
{
	struct barkeep_device *d;
	size_t n;
	bool found = false;
	if (barkeep_list_devices(prober, &d, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (d[i].id == dev) {
			*ret_state = d[i].state;
			*ret_gen = d[i].generation;
			found = true;
		}
	free(d);
	return found;
}

static uint64_t observed_invalidations(void)
{
	struct bk_observer_status st = { .slot = observer_slot };
	if (ioctl(observer_fd, BK_OBSERVER_IOC_STATUS, &st) < 0)
		return (uint64_t)-1;
	return st.invalidations;
}

static uint64_t invalidations_before;

/* The first DEVICE_PAUSE of a round: look at the device while it is paused. */
static void probe_paused(const struct barkeep_event *ev)
{
	enum barkeep_device_state state = 0;
	uint64_t gen = 0;
	struct barkeep_lease *l = NULL;
	struct barkeep_alloc_params p = { .by_id = true, .device_id = ev->device_id, .size = 64 * KiB };

	int r = barkeep_alloc(prober, &p, &l);
	if (r != -EAGAIN || !strstr(barkeep_error_message(prober), "resetting")) {
		fprintf(stderr, "  ALLOC while paused: %d (%s), expected -EAGAIN\n", r,
			barkeep_error_message(prober));
		unit_case_failed = 1;
		barkeep_lease_free(l);
	}
	CHECK(device_state(ev->device_id, &state, &gen));
	CHECK_EQ(state, BARKEEP_DEVICE_PAUSED);
	CHECK_EQ(gen, ev->generation);
	/* The holders are told before anything is revoked. */
	CHECK_EQ(observed_invalidations(), invalidations_before);
	if (round_no == 2) {
		r = barkeep_reset(prober, ev->device_id, false, 0);
		CHECK_EQ(r, -EBUSY);
		CHECK(strstr(barkeep_error_message(prober), "already being reset"));
	}
	if (round_no == 5) /* a device error during the grace period */
		CHECK_EQ(eventfd_write(error_fd, 1), 0);
	probed = true;
}

static void on_event(struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	struct holder *h = userdata;

	switch (ev->type) {
	case BARKEEP_EVENT_DEVICE_PAUSE:
		h->n_pause++;
		h->pause = *ev;
		if (!probed)
			probe_paused(ev);
		/* A forced pause needs no answer: revocation is already under way. */
		if (h->acks && !(ev->flags & 1))
			h->ack_result = barkeep_ack_pause(bk, ev->device_id, ev->generation);
		break;
	case BARKEEP_EVENT_DEVICE_RESUME:
		if (!h->n_pause)
			h->resume_before_pause = true;
		h->n_resume++;
		h->resume = *ev;
		break;
	case BARKEEP_EVENT_DEVICE_GONE:
		h->n_gone++;
		h->gone = *ev;
		break;
	default:
		h->n_other++;
		break;
	}
}

static bool add_holder(uint32_t dev, bool acks)
{
	struct holder *h = &holders[n_holders];
	struct barkeep_alloc_params p = { .by_id = true, .device_id = dev, .size = 256 * KiB };

	h->bk = conn(acks ? "holder" : "silent-holder");
	if (!h->bk)
		return false;
	if (barkeep_alloc(h->bk, &p, &h->lease) < 0) {
		fprintf(stderr, "  ALLOC on %u: %s\n", dev, barkeep_error_message(h->bk));
		barkeep_disconnect(h->bk);
		return false;
	}
	h->dev = dev;
	h->acks = acks;
	h->connected = true;
	barkeep_set_event_handler(h->bk, on_event, h);
	n_holders++;
	return true;
}

static struct holder *add_watcher(void)
{
	struct holder *h = &holders[n_holders];
	if (barkeep_connect_with(sock_path, "watcher", BARKEEP_CONNECT_WATCH, &h->bk) < 0) {
		fprintf(stderr, "  connect: %s\n", barkeep_error_message(NULL));
		return NULL;
	}
	h->dev = UINT32_MAX;
	h->watches = h->connected = true;
	barkeep_set_event_handler(h->bk, on_event, h);
	n_holders++;
	return h;
}

static struct holder *watcher;

static void dispatch_all(void)
{
	for (size_t i = 0; i < n_holders; i++)
		if (holders[i].connected && barkeep_dispatch(holders[i].bk) < 0) {
			fprintf(stderr, "  holder %zu: %s\n", i, barkeep_error_message(holders[i].bk));
			holders[i].connected = false;
		}
}

struct trigger {
	uint32_t dev;
	bool force;
	uint32_t grace_ms;
	struct reset_result (*fn)(const struct trigger *t); /* runs in a child */
	bool hold_lease; /* the resetter holds a lease on the device too */
};

static struct reset_result trigger_reset(const struct trigger *t)
{
	struct reset_result res = { .r = -ECONNREFUSED };
	struct barkeep *bk = conn("resetter");
	struct barkeep_lease *l = NULL;
	struct barkeep_alloc_params p = { .by_id = true, .device_id = t->dev, .size = 64 * KiB };
	if (bk && t->hold_lease && barkeep_alloc(bk, &p, &l) < 0)
		return res;
	long long t0 = now_ms();
	if (bk)
		res.r = barkeep_reset(bk, t->dev, t->force, t->grace_ms);
	res.ms = now_ms() - t0;
	snprintf(res.msg, sizeof(res.msg), "%s", barkeep_error_message(bk));
	return res;
}

/* A device error, as the kernel signals it; done when the generation moved. */
static struct reset_result trigger_error(const struct trigger *t)
{
	struct reset_result res = { .r = -ETIMEDOUT };
	enum barkeep_device_state st;
	uint64_t gen_before, gen;

	prober = conn("error-watcher");
	if (!prober || !device_state(t->dev, &st, &gen_before))
		return res;
	long long t0 = now_ms();
	if (eventfd_write(error_fd, 1) < 0) {
		res.r = -errno;
		return res;
	}
	while (now_ms() - t0 < 10000) {
		if (device_state(t->dev, &st, &gen) && gen > gen_before && st == BARKEEP_DEVICE_READY) {
			res.r = 0;
			break;
		}
		usleep(10 * 1000);
	}
	res.ms = now_ms() - t0;
	return res;
}

/* The host takes gpu1 back: the write blocks until the daemon closed it. */
static struct reset_result trigger_unbind(const struct trigger *t)
{
	struct reset_result res = { .r = 0 };
	long long t0 = now_ms();
	int fd = open("/sys/bus/pci/drivers/vfio-pci/unbind", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, gpu1_addr, strlen(gpu1_addr)) < 0)
		res.r = -errno;
	if (fd >= 0)
		close(fd);
	res.ms = now_ms() - t0;
	snprintf(res.msg, sizeof(res.msg), "unbind %s: %s", gpu1_addr, strerror(-res.r));
	return res;
}

/* Runs the trigger in a child process while this one serves every holder's
 * events; returns what the child said. */
static struct reset_result run_trigger(const struct trigger *t)
{
	struct reset_result res = { .r = -EIO };
	int pfd[2];

	for (size_t i = 0; i < n_holders; i++) {
		struct holder *h = &holders[i];
		h->n_pause = h->n_resume = h->n_gone = h->n_other = h->ack_result = 0;
		h->resume_before_pause = false;
	}
	/* A forced reset may be over before anyone could look. */
	probed = t->force || t->fn != trigger_reset;
	invalidations_before = observed_invalidations();
	if (pipe(pfd) < 0)
		return res;
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		res = t->fn(t);
		if (write(pfd[1], &res, sizeof(res)) != sizeof(res))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	struct pollfd fds[N_ALL + 1];
	for (;;) {
		size_t n = 0;
		for (size_t i = 0; i < n_holders; i++)
			fds[n++] = (struct pollfd){ .fd = holders[i].connected ? barkeep_get_fd(holders[i].bk) : -1,
						    .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = pfd[0], .events = POLLIN };
		if (poll(fds, n, 30000) <= 0) {
			fprintf(stderr, "  no progress for 30 s\n");
			break;
		}
		dispatch_all();
		if (fds[n - 1].revents) {
			if (read(pfd[0], &res, sizeof(res)) != sizeof(res))
				res.r = -EIO;
			break;
		}
	}
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	if (res.r)
		fprintf(stderr, "  %d: %s\n", res.r, res.msg);
	/* Every event was sent before the reply: whatever is left is in the sockets. */
	for (long long until = now_ms() + 300; now_ms() < until; usleep(20 * 1000))
		dispatch_all();
	return res;
}

static struct reset_result run_reset(uint32_t dev, bool force, uint32_t grace_ms)
{
	return run_trigger(&(struct trigger){ dev, force, grace_ms, trigger_reset });
}

/* Every gpu0 holder saw n_pause PAUSE(gen) (the last with reason, flags and
 * deadline), then RESUME(gen + 1), once; gpu1's saw nothing. */
static void check_round_full(uint64_t gen, int n_pause, uint32_t reason, uint32_t pause_flags,
			     uint32_t deadline)
{
	/* A forced reset may be over before an acknowledgement arrives. */
	bool forced = pause_flags & 1;
	int bad = 0;
	for (size_t i = 0; i < n_holders; i++) {
		struct holder *h = &holders[i];
		if (h->watches)
			continue;
		if (h->dev == 1) {
			if (h->n_pause || h->n_resume || h->n_other) {
				fprintf(stderr, "  gpu1 holder %zu got events (%d pause, %d resume)\n", i,
					h->n_pause, h->n_resume);
				bad++;
			}
			continue;
		}
		if (h->n_pause != n_pause || h->n_resume != 1 || h->n_gone || h->n_other ||
		    h->resume_before_pause || h->pause.device_id != 0 || h->pause.generation != gen ||
		    h->pause.reason != reason ||
		    h->pause.flags != pause_flags || h->pause.deadline_ms != deadline ||
		    h->resume.generation != gen + 1 || h->resume.flags != 1 ||
		    !(h->ack_result == 0 || (forced && h->ack_result == -ESTALE))) {
			fprintf(stderr, "  gpu0 holder %zu: %d pause (gen %llu reason %u flags %u deadline %u), "
				"%d resume (gen %llu flags %u), ack %d\n", i, h->n_pause,
				(unsigned long long)h->pause.generation, h->pause.reason, h->pause.flags,
				h->pause.deadline_ms, h->n_resume, (unsigned long long)h->resume.generation,
				h->resume.flags, h->ack_result);
			bad++;
		}
	}
	CHECK_EQ(bad, 0);
}

static void check_round(uint64_t gen, uint32_t pause_flags, uint32_t deadline)
{
	check_round_full(gen, 1, 1, pause_flags, deadline);
}

static uint64_t gen0;

static void test_setup(void)
{
	enum barkeep_device_state st;
	uint64_t gen1;

	prober = conn("prober");
	CHECK(prober);
	if (!prober)
		exit(1);
	for (int i = 0; i < N_GPU0; i++)
		CHECK(add_holder(0, true));
	for (int i = 0; i < N_GPU1; i++)
		CHECK(add_holder(1, true));
	CHECK_EQ(n_holders, N_GPU0 + N_GPU1);
	watcher = add_watcher();
	CHECK(watcher);
	CHECK(device_state(0, &st, &gen0));
	CHECK_EQ(st, BARKEEP_DEVICE_READY);
	CHECK(device_state(1, &st, &gen1));

	observer_fd = open(BK_OBSERVER_DEVICE, O_RDWR | O_CLOEXEC);
	CHECK(observer_fd >= 0);
	struct bk_observer_attach a = { .fd = holders[0].lease->fd };
	CHECK_EQ(ioctl(observer_fd, BK_OBSERVER_IOC_ATTACH, &a), 0);
	observer_slot = a.slot;
}

/* Everyone acknowledges: the reset does not wait for the 20 s grace. The
 * resetter holds a lease too, and is not waited for: it is busy waiting. */
static void test_reset_all_ack(void)
{
	round_no = 1;
	struct reset_result res = run_trigger(&(struct trigger){ .dev = 0, .grace_ms = 20000,
								  .fn = trigger_reset, .hold_lease = true });
	CHECK_EQ(res.r, 0);
	CHECK(res.ms < 10000);
	printf("  reset with %d acknowledging holders took %lld ms (grace 20000)\n", N_GPU0, res.ms);
	CHECK(probed);
	check_round(gen0, 0, 20000);
	/* The watcher holds no lease: told, not waited for (its ack is harmless). */
	CHECK(watcher && watcher->n_pause == 1 && watcher->n_resume == 1 &&
	      watcher->pause.generation == gen0 && watcher->resume.generation == gen0 + 1);

	enum barkeep_device_state st;
	uint64_t gen;
	CHECK(device_state(0, &st, &gen));
	CHECK_EQ(st, BARKEEP_DEVICE_READY);
	CHECK_EQ(gen, gen0 + 1);
}

/* The kernel really revoked the buffer, and it is usable again. */
static void test_revoked_and_back(void)
{
	uint64_t n = observed_invalidations();
	printf("  observer: %llu invalidation(s) during the reset\n",
	       (unsigned long long)(n - invalidations_before));
	CHECK(n != (uint64_t)-1 && n > invalidations_before);
	struct bk_observer_reattach ra = { .slot = observer_slot };
	CHECK_EQ(ioctl(observer_fd, BK_OBSERVER_IOC_REATTACH, &ra), 0);

	/* The lease survived with its generation; new leases get the new one. */
	struct barkeep_lease *ls, *l = NULL;
	size_t nl = 0;
	CHECK_EQ(barkeep_list_leases(holders[0].bk, &ls, &nl), 0);
	CHECK_EQ(nl, 1);
	if (nl == 1) {
		CHECK_EQ(ls[0].id, holders[0].lease->id);
		CHECK_EQ(ls[0].generation, gen0);
	}
	free(ls);
	struct barkeep_alloc_params p = { .by_id = true, .device_id = 0, .size = 64 * KiB };
	CHECK_EQ(barkeep_alloc(prober, &p, &l), 0);
	if (l) {
		CHECK_EQ(l->generation, gen0 + 1);
		CHECK_EQ(barkeep_release(prober, l), 0);
	}
}

static void test_stale_ack(void)
{
	CHECK_EQ(barkeep_ack_pause(holders[0].bk, 0, gen0), -ESTALE);
	CHECK_EQ(barkeep_ack_pause(holders[0].bk, 0, gen0 + 1), -ESTALE);
	CHECK_EQ(barkeep_ack_pause(holders[0].bk, 99, gen0), -ENODEV);
}

/* One holder never acknowledges: the reset waits for the deadline, no longer. */
static void test_reset_deadline(void)
{
	const uint32_t grace = 3000;
	CHECK(add_holder(0, false));
	round_no = 2;
	struct reset_result res = run_reset(0, false, grace);
	CHECK_EQ(res.r, 0);
	printf("  reset with one silent holder took %lld ms (grace %u)\n", res.ms, grace);
	CHECK(res.ms >= grace - 50);
	CHECK(res.ms < grace + 10000);
	check_round(gen0 + 1, 0, grace);
}

/* FORCE: no grace at all, even with the silent holder. */
static void test_reset_force(void)
{
	round_no = 3;
	struct reset_result res = run_reset(0, true, 0);
	CHECK_EQ(res.r, 0);
	CHECK(res.ms < 2500);
	check_round(gen0 + 2, 1, 0);
	enum barkeep_device_state st;
	uint64_t gen;
	CHECK(device_state(0, &st, &gen));
	CHECK_EQ(gen, gen0 + 3);
	CHECK(device_state(1, &st, &gen));
	CHECK_EQ(gen, 1);
}

static void test_reset_refused(void)
{
	CHECK_EQ(barkeep_reset(prober, 99, false, 0), -ENODEV);
	CHECK(strstr(barkeep_error_message(prober), "99"));

	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(1000) < 0 || setuid(1000) < 0)
			_exit(2);
		struct barkeep *bk = conn("not-admin");
		if (!bk)
			_exit(3);
		int r = barkeep_reset(bk, 0, false, 0);
		const char *msg = barkeep_error_message(bk);
		if (r != -EPERM || !strstr(msg, "may not reset")) {
			fprintf(stderr, "  RESET as uid 1000: %d (%s)\n", r, msg);
			_exit(4);
		}
		_exit(0);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A device error on a READY device: FORCE pause, reason ERROR, reset. */
static void test_device_error(void)
{
	round_no = 4;
	struct reset_result res = run_trigger(&(struct trigger){ .dev = 0, .fn = trigger_error });
	CHECK_EQ(res.r, 0);
	printf("  device error to resume: %lld ms\n", res.ms);
	check_round_full(gen0 + 3, 1, 2, 1, 0);
}

/* A device error while holders still have time: a second PAUSE with FORCE. */
static void test_error_escalates(void)
{
	round_no = 5;
	struct reset_result res = run_reset(0, false, 20000);
	CHECK_EQ(res.r, 0);
	CHECK(res.ms < 10000);
	CHECK(probed);
	check_round_full(gen0 + 4, 2, 2, 1, 0);
}

/* A client that holds a lease on gpu1 and stops reading: gpu1 is reset
 * (FORCE) until the daemon gives up on it. It is disconnected; every other
 * holder got every event; no reset failed. The resets come in batches, each
 * after the reading holders caught up, so that only the one that does not
 * read can fall behind, however slow this process is (sanitizers). */
#define RESET_BATCH 8

static bool gpu1_holders_caught_up(int n)
{
	for (size_t i = 0; i < n_holders; i++)
		if ((holders[i].dev == 1 || holders[i].watches) && holders[i].n_resume < n)
			return false;
	return true;
}

static bool serve_until(bool (*done)(int), int arg, int timeout_ms, int extra_fd)
{
	for (long long t0 = now_ms(); !done || !done(arg);) {
		struct pollfd fds[N_ALL + 1];
		size_t n = 0;
		for (size_t i = 0; i < n_holders; i++)
			fds[n++] = (struct pollfd){ .fd = holders[i].connected ? barkeep_get_fd(holders[i].bk) : -1,
						    .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = extra_fd, .events = POLLIN };
		if (now_ms() - t0 > timeout_ms)
			return false;
		if (poll(fds, n, 100) > 0)
			dispatch_all();
		if (extra_fd >= 0 && fds[n - 1].revents)
			return true;
	}
	return true;
}

static void test_slow_reader(void)
{
	struct barkeep *slow = conn("slow-reader");
	struct barkeep_lease *l = NULL;
	struct barkeep_alloc_params p = { .by_id = true, .device_id = 1, .size = 64 * KiB };
	int go[2], done[2], result[2] = { 0, 0 };

	CHECK(slow);
	if (!slow || barkeep_alloc(slow, &p, &l) < 0 || pipe2(go, O_CLOEXEC) < 0 ||
	    pipe2(done, O_CLOEXEC) < 0) {
		unit_case_failed = 1;
		return;
	}
	for (size_t i = 0; i < n_holders; i++)
		holders[i].n_pause = holders[i].n_resume = holders[i].n_gone = holders[i].n_other = 0;
	pid_t pid = fork();
	if (pid == 0) {
		struct barkeep *bk = conn("resetter");
		int res[2] = { 0, !bk };
		char c = 'g';
		while (!res[1] && c == 'g') {
			for (int i = 0; i < RESET_BATCH && !res[1]; i++, res[0]++)
				if (barkeep_reset(bk, 1, true, 0) < 0) {
					fprintf(stderr, "  reset %d: %s\n", res[0], barkeep_error_message(bk));
					res[1] = 1;
				}
			if (write(done[1], res, sizeof(res)) != sizeof(res) || read(go[0], &c, 1) != 1)
				break;
		}
		_exit(0);
	}
	close(go[0]);
	close(done[1]);
	bool hup = false;
	long long t0 = now_ms(), t_hup = 0;
	while (!hup && result[0] < 2000 && !result[1]) {
		if (!serve_until(NULL, 0, 30000, done[0]) ||
		    read(done[0], result, sizeof(result)) != sizeof(result)) {
			fprintf(stderr, "  the resetter stopped\n");
			result[1] = 1;
			break;
		}
		if (!serve_until(gpu1_holders_caught_up, result[0], 30000, -1)) {
			fprintf(stderr, "  the reading holders did not get %d resumes within 30 s\n", result[0]);
			break;
		}
		struct pollfd pf = { .fd = barkeep_get_fd(slow) }; /* POLLHUP only */
		hup = poll(&pf, 1, 0) == 1 && (pf.revents & POLLHUP);
		if (hup)
			t_hup = now_ms();
		if (write(go[1], hup ? "s" : "g", 1) != 1)
			break;
	}
	close(go[1]);
	close(done[0]);
	waitpid(pid, NULL, 0);
	for (long long until = now_ms() + 300; now_ms() < until; usleep(20 * 1000))
		dispatch_all();

	CHECK(hup);
	CHECK_EQ(result[1], 0);
	printf("  the client that stopped reading was cut off after %lld ms; %d resets in all\n",
	       t_hup - t0, result[0]);
	int bad = 0;
	for (size_t i = 0; i < n_holders; i++) {
		struct holder *h = &holders[i];
		int want = h->dev == 1 || h->watches ? result[0] : 0;
		if (h->n_pause != want || h->n_resume != want || h->n_gone || h->n_other || !h->connected) {
			fprintf(stderr, "  holder %zu of gpu%u: %d pause, %d resume, expected %d\n", i, h->dev,
				h->n_pause, h->n_resume, want);
			bad++;
		}
	}
	CHECK_EQ(bad, 0);
	/* What was sent before the cut is still there to read, then the end. */
	int r;
	while ((r = barkeep_dispatch(slow)) > 0)
		;
	CHECK_EQ(r, -ECONNRESET);
	barkeep_lease_free(l);
	barkeep_disconnect(slow);
}

/* The host takes gpu1 back: its holders get PAUSE(UNPLUG) then GONE, the
 * unbind completes, the leases have ended, gpu0 keeps working. */
static void test_unplug(void)
{
	struct holder *h1 = NULL;
	for (size_t i = 0; i < n_holders && !h1; i++)
		if (holders[i].dev == 1)
			h1 = &holders[i];
	CHECK(h1);
	if (!h1)
		return;
	struct bk_observer_attach a = { .fd = h1->lease->fd };
	CHECK_EQ(ioctl(observer_fd, BK_OBSERVER_IOC_ATTACH, &a), 0);

	round_no = 6;
	struct reset_result res = run_trigger(&(struct trigger){ .dev = 1, .fn = trigger_unbind });
	CHECK_EQ(res.r, 0);
	CHECK(res.ms < 10000);
	printf("  unbind of %s completed after %lld ms\n", gpu1_addr, res.ms);

	int bad = 0;
	for (size_t i = 0; i < n_holders; i++) {
		struct holder *h = &holders[i];
		bool ok = h->dev == 0 ? !h->n_pause && !h->n_resume && !h->n_gone && !h->n_other :
			  h->watches ? h->n_pause == 1 && h->n_gone == 1 && h->gone.device_id == 1 :
			  h->n_pause == 1 && h->pause.reason == 3 && h->pause.device_id == 1 &&
			  h->n_gone == 1 && h->gone.reason == 3 && h->gone.device_id == 1 &&
			  !h->n_resume && !h->n_other;
		if (!ok) {
			fprintf(stderr, "  holder %zu of gpu%u: %d pause (reason %u), %d gone, %d resume\n",
				i, h->dev, h->n_pause, h->pause.reason, h->n_gone, h->n_resume);
			bad++;
		}
	}
	CHECK_EQ(bad, 0);

	enum barkeep_device_state st;
	uint64_t gen;
	CHECK(device_state(1, &st, &gen));
	CHECK_EQ(st, BARKEEP_DEVICE_GONE);
	struct barkeep_lease *l = NULL;
	struct barkeep_alloc_params p = { .by_id = true, .device_id = 1, .size = 64 * KiB };
	CHECK_EQ(barkeep_alloc(prober, &p, &l), -ENODEV);
	barkeep_lease_free(l);
	l = NULL;
	/* The lease has ended; its buffer is revoked for good. */
	struct barkeep_lease *ls = NULL;
	size_t nl = 9;
	CHECK_EQ(barkeep_list_leases(h1->bk, &ls, &nl), 0);
	CHECK_EQ(nl, 0);
	free(ls);
	struct bk_observer_reattach ra = { .slot = a.slot };
	CHECK_EQ(ioctl(observer_fd, BK_OBSERVER_IOC_REATTACH, &ra), -1);
	CHECK_EQ(errno, ENODEV);
	/* gpu0 serves on. */
	p.device_id = 0;
	CHECK_EQ(barkeep_alloc(prober, &p, &l), 0);
	if (l)
		CHECK_EQ(barkeep_release(prober, l), 0);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s SOCKET DAEMON_PID ERROR_FD GPU1_PCI_ADDRESS\n", argv[0]);
		return 2;
	}
	sock_path = argv[1];
	gpu1_addr = argv[4];
	int pidfd = pidfd_open(atoi(argv[2]), 0);
	if (pidfd >= 0)
		error_fd = pidfd_getfd(pidfd, atoi(argv[3]), 0);
	if (error_fd < 0)
		fprintf(stderr, "  cannot copy the daemon's fd %s: %m\n", argv[3]);
	RUN(test_setup);
	RUN(test_reset_all_ack);
	RUN(test_revoked_and_back);
	RUN(test_stale_ack);
	RUN(test_reset_deadline);
	RUN(test_reset_force);
	RUN(test_reset_refused);
	RUN(test_device_error);
	RUN(test_error_escalates);
	RUN(test_slow_reader);
	RUN(test_unplug);
	for (size_t i = 0; i < n_holders; i++) {
		barkeep_lease_free(holders[i].lease);
		barkeep_disconnect(holders[i].bk);
	}
	barkeep_disconnect(prober);
	return UNIT_END();
}

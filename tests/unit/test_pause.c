// SPDX-License-Identifier: MIT
/*
 * The pause/reset state machine of the broker core, driven directly: fake
 * devices behind a fake backend, fake clients that record their events, a
 * real libevent loop and the real worker thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/allocator.h"
#include "daemon/broker-private.h"
#include "daemon/fdstore.h"
#include "tests/unit/unit.h"

#define MiB (1ull << 20)
#define USERS "root, 1000, 1001, 1002, 1003, 1004"

/* ---- the fake backend ---------------------------------------------------- */

struct backend_device {
	int reset_result;  /* what reset returns: -EOPNOTSUPP tries the bus reset */
	int bus_reset_result; /* -EOPNOTSUPP takes the memory-disable fallback */
	int block_fd;      /* >= 0: reset waits until this is readable, like a revoke */
	int n_resets, n_bus_resets, n_memory_off, n_memory_on, n_closes;
	uint64_t scrubbed; /* bytes, by the scrub worker */
};

static struct backend_device *fake_close(struct backend_device *dev)
{
	dev->n_closes++;
	return NULL;
}

static int fake_export(struct backend_device *dev, uint64_t offset, uint64_t size, int open_flags)
{
	int fd = memfd_create("fake-dmabuf", MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int fake_scrub(struct backend_device *dev, uint64_t offset, uint64_t size)
{
	__atomic_add_fetch(&dev->scrubbed, size, __ATOMIC_RELAXED);
	return 0;
}

/* With DEVICE_FEATURE_REVOKE a released window is done at once (the fake
 * buffers are memfds, which fdinfo never counts). */
static int fake_revoke(struct backend_device *dev, int fd) { return 0; }

static int fake_reset(struct backend_device *dev)
{
	if (dev->block_fd >= 0) {
		eventfd_t v;
		(void)eventfd_read(dev->block_fd, &v); /* blocking */
	}
	dev->n_resets++;
	return dev->reset_result;
}

static int fake_bus_reset(struct backend_device *dev)
{
	dev->n_bus_resets++;
	return dev->bus_reset_result;
}

static int fake_set_memory(struct backend_device *dev, bool enable)
{
	if (enable)
		dev->n_memory_on++;
	else
		dev->n_memory_off++;
	return 0;
}

static int fake_notify(struct backend_device *dev, enum backend_notify which, int fd)
{
	return -EOPNOTSUPP; /* like ivshmem's AER: the test writes to the fd itself */
}

static const struct backend_ops fake_ops = {
	.name = "fake", .close = fake_close, .export = fake_export, .scrub = fake_scrub,
	.reset = fake_reset, .bus_reset = fake_bus_reset, .set_memory = fake_set_memory,
	.notify = fake_notify, .revoke = fake_revoke,
};

/* ---- fake clients -------------------------------------------------------- */

#define MAX_EVENTS 16

struct rec {
	struct client *c;
	struct broker_event ev[MAX_EVENTS];
	int n_ev;
	bool refuse;   /* send_event fails as a full queue would */
	bool answered; /* reset_done came */
	int answer;
	struct error_info err;
};

static int rec_event(struct client *c, const struct broker_event *ev, void *userdata)
{
	struct rec *r = userdata;
	if (r->refuse)
		return -ENOBUFS;
	if (r->n_ev < MAX_EVENTS)
		r->ev[r->n_ev++] = *ev;
	return 0;
}

static void rec_reset_done(struct client *c, uint32_t request_id, int r,
			   const struct error_info *err, void *userdata)
{
	struct rec *rec = userdata;
	rec->answered = true;
	rec->answer = r;
	if (err)
		rec->err = *err;
}

static const struct client_ops rec_ops = { .send_event = rec_event, .reset_done = rec_reset_done };

/* ---- the fixture ----------------------------------------------------------- */

static struct config *cfg;
static struct broker *b;
static struct event_base *base;
static struct backend_device fake[2];

static void setup(uint32_t grace_ms)
{
	char text[512], *error = NULL;
	snprintf(text, sizeof(text),
		 "[daemon]\nsocket = /tmp/test_pause.sock\n"
		 "[limits]\npause-grace-ms = %u\n"
		 "[device gpu0]\npci = 0000:00:03.0\nallow-users = %s\n"
		 "[device gpu1]\npci = 0000:00:04.0\nallow-users = %s\n", grace_ms, USERS, USERS);
	if (config_load_string(text, "test", &cfg, &error) < 0) {
		fprintf(stderr, "%s\n", error);
		exit(1);
	}
	free(error);
	if (broker_new(cfg, &b) < 0)
		exit(1);
	b->devices = calloc(2, sizeof(*b->devices));
	for (uint32_t i = 0; i < 2; i++) {
		struct device *d = device_new(&cfg->devices[i], i);
		fake[i] = (struct backend_device){ .reset_result = -EOPNOTSUPP,
						   .bus_reset_result = -EOPNOTSUPP, .block_fd = -1 };
		d->ops = &fake_ops;
		d->backend = &fake[i];
		d->info = (struct backend_info){ .bar_size = 16 * MiB, .page_size = 4096 };
		if (allocator_new(d->info.bar_size, d->info.page_size, &d->alloc) < 0)
			exit(1);
		b->devices[b->n_devices++] = d;
	}
	base = event_base_new();
	broker_set_event_base(b, base);
}

static void teardown(void)
{
	b = broker_free(b);
	event_base_free(base);
	cfg = config_free(cfg);
}

static struct client *client(struct rec *r, uid_t uid, bool acks, bool watches)
{
	struct client_creds creds = { .uid = uid, .gid = uid, .pid = 1 };
	struct error_info err;
	*r = (struct rec){};
	if (broker_client_new(b, &creds, &rec_ops, r, &r->c, &err) < 0)
		exit(1);
	broker_client_set_events(r->c, acks, watches);
	return r->c;
}

static int lease_on(struct client *c, uint32_t dev)
{
	struct alloc_request req = { .device_by_id = true, .device_id = dev, .size = MiB };
	struct lease *l;
	struct error_info err;
	return broker_alloc(c, &req, &l, &err);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until the requester has its answer (or 5 s passed). */
static long long run_until_answered(struct rec *r)
{
	long long t0 = now_ms();
	while (!r->answered && now_ms() - t0 < 5000) {
		struct timeval tick = { 0, 10 * 1000 };
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	return now_ms() - t0;
}

static void run_briefly(void)
{
	struct timeval tick = { 0, 20 * 1000 };
	event_base_loopexit(base, &tick);
	event_base_dispatch(base);
}

static bool saw(const struct rec *r, int i, enum broker_event_type type, uint64_t generation)
{
	return i < r->n_ev && r->ev[i].type == type && r->ev[i].generation == generation;
}

/* ---- cases ----------------------------------------------------------------- */

static void test_reset_waits_for_acks(void)
{
	struct rec a, bb, noack, watcher, other, admin;
	struct error_info err = {};

	setup(2000);
	client(&a, 1000, true, false);
	client(&bb, 1001, true, false);
	client(&noack, 1002, false, false);
	client(&watcher, 1003, false, true);
	client(&other, 1004, true, false);
	client(&admin, 0, true, false);
	CHECK_EQ(lease_on(a.c, 0), 0);
	CHECK_EQ(lease_on(a.c, 0), 0); /* two leases: told once */
	CHECK_EQ(lease_on(bb.c, 0), 0);
	CHECK_EQ(lease_on(noack.c, 0), 0);
	CHECK_EQ(lease_on(other.c, 1), 0);

	CHECK_EQ(broker_reset(admin.c, 0, false, 10000, 7, &err), 0);
	struct device *d = b->devices[0];
	CHECK_EQ(d->state, DEVICE_PAUSED);
	CHECK_EQ(a.n_ev, 1);
	CHECK(saw(&a, 0, BROKER_EVENT_DEVICE_PAUSE, 1));
	CHECK_EQ(a.ev[0].deadline_ms, 10000);
	CHECK_EQ(a.ev[0].reason, BROKER_REASON_ADMIN);
	CHECK_EQ(a.ev[0].flags, 0);
	CHECK(saw(&bb, 0, BROKER_EVENT_DEVICE_PAUSE, 1));
	CHECK(saw(&noack, 0, BROKER_EVENT_DEVICE_PAUSE, 1));
	CHECK(saw(&watcher, 0, BROKER_EVENT_DEVICE_PAUSE, 1));
	CHECK_EQ(other.n_ev, 0);
	CHECK_EQ(admin.n_ev, 0);
	CHECK_EQ(lease_on(other.c, 0), -EAGAIN);
	CHECK_EQ(broker_reset(admin.c, 0, false, 0, 8, &err), -EBUSY);

	CHECK_EQ(broker_pause_ack(a.c, 0, 1, &err), 0);
	CHECK_EQ(broker_pause_ack(a.c, 0, 1, &err), 0); /* repeated */
	CHECK_EQ(broker_pause_ack(a.c, 0, 2, &err), -ESTALE);
	CHECK_EQ(broker_pause_ack(a.c, 1, 1, &err), -ESTALE);
	CHECK_EQ(broker_pause_ack(a.c, 9, 1, &err), -ENODEV);
	run_briefly();
	CHECK_EQ(d->state, DEVICE_PAUSED); /* bb has not answered */
	CHECK(!admin.answered);

	CHECK_EQ(broker_pause_ack(bb.c, 0, 1, &err), 0);
	long long ms = run_until_answered(&admin);
	CHECK(ms < 1000);
	CHECK(admin.answered);
	CHECK_EQ(admin.answer, 0);
	CHECK_EQ(d->state, DEVICE_READY);
	CHECK_EQ(d->generation, 2);
	CHECK_EQ(fake[0].n_resets, 1);
	CHECK_EQ(fake[0].n_bus_resets, 1);
	CHECK_EQ(fake[0].n_memory_off, 1); /* no reset method: the fallback */
	CHECK_EQ(fake[0].n_memory_on, 1);
	CHECK_EQ(a.n_ev, 2);
	CHECK(saw(&a, 1, BROKER_EVENT_DEVICE_RESUME, 2));
	CHECK_EQ(a.ev[1].flags, BROKER_RESUME_CONTENTS_LOST);
	CHECK(saw(&noack, 1, BROKER_EVENT_DEVICE_RESUME, 2));
	CHECK(saw(&watcher, 1, BROKER_EVENT_DEVICE_RESUME, 2));
	CHECK_EQ(other.n_ev, 0);
	CHECK_EQ(broker_pause_ack(bb.c, 0, 1, &err), -ESTALE);
	CHECK_EQ(lease_on(other.c, 0), 0);
	teardown();
}

static void test_deadline(void)
{
	struct rec silent, admin;
	struct error_info err;

	setup(150);
	client(&silent, 1000, true, false);
	client(&admin, 0, true, false);
	CHECK_EQ(lease_on(silent.c, 0), 0);
	fake[0].bus_reset_result = 0; /* no device reset, but a bus reset */
	CHECK_EQ(broker_reset(admin.c, 0, false, 0, 1, &err), 0); /* 0: the configured grace */
	CHECK_EQ(silent.ev[0].deadline_ms, 150);
	long long ms = run_until_answered(&admin);
	CHECK(ms >= 140 && ms < 2000);
	CHECK_EQ(admin.answer, 0);
	CHECK(saw(&silent, 1, BROKER_EVENT_DEVICE_RESUME, 2));
	CHECK_EQ(fake[0].n_bus_resets, 1);
	CHECK_EQ(fake[0].n_memory_off, 0);
	teardown();
}

/* Nobody left to wait for: a holder that goes away, or whose queue is
 * full, or the requester itself. */
static void test_not_waited_for(void)
{
	struct rec leaving, full, admin;
	struct error_info err;

	setup(2000);
	client(&leaving, 1000, true, false);
	client(&full, 1001, true, false);
	client(&admin, 0, true, false);
	CHECK_EQ(lease_on(leaving.c, 0), 0);
	CHECK_EQ(lease_on(full.c, 0), 0);
	CHECK_EQ(lease_on(admin.c, 0), 0);
	full.refuse = true;
	CHECK_EQ(broker_reset(admin.c, 0, false, 10000, 1, &err), 0);
	run_briefly();
	CHECK(!admin.answered);
	broker_client_free(leaving.c);
	long long ms = run_until_answered(&admin);
	CHECK(ms < 1000);
	CHECK_EQ(admin.answer, 0);
	CHECK(saw(&admin, 0, BROKER_EVENT_DEVICE_PAUSE, 1));
	CHECK(saw(&admin, 1, BROKER_EVENT_DEVICE_RESUME, 2));
	teardown();
}

static void test_refused(void)
{
	struct rec user, admin;
	struct error_info err = {};

	setup(2000);
	client(&user, 1000, true, false);
	client(&admin, 0, true, false);
	CHECK_EQ(broker_reset(user.c, 0, false, 0, 1, &err), -EPERM);
	CHECK(strstr(err.text, "uid 1000 may not reset devices"));
	CHECK_EQ(broker_reset(admin.c, 5, false, 0, 1, &err), -ENODEV);
	CHECK(strstr(err.text, "no device with id 5"));
	CHECK_EQ(b->devices[0]->state, DEVICE_READY);
	teardown();
}

/* The device's own reset method, when it has one; if it fails, GONE. */
static void test_reset_fails_gone(void)
{
	struct rec holder, admin;
	struct error_info err;

	setup(2000);
	client(&holder, 1000, false, false);
	client(&admin, 0, true, false);
	CHECK_EQ(lease_on(holder.c, 0), 0);
	fake[0].reset_result = -EIO;
	CHECK_EQ(broker_reset(admin.c, 0, true, 0, 1, &err), 0);
	CHECK_EQ(holder.ev[0].flags, BROKER_PAUSE_FORCE);
	CHECK_EQ(holder.ev[0].deadline_ms, 0);
	run_until_answered(&admin);
	CHECK_EQ(admin.answer, -EIO);
	CHECK(strstr(admin.err.text, "could not be reset"));
	CHECK_EQ(fake[0].n_memory_off, 0); /* it had a reset method */
	CHECK_EQ(fake[0].n_closes, 1);
	CHECK_EQ(b->devices[0]->state, DEVICE_GONE);
	CHECK(saw(&holder, 1, BROKER_EVENT_DEVICE_GONE, 0));
	CHECK_EQ(holder.c->n_leases, 0);
	CHECK_EQ(b->devices[0]->n_leases, 0);
	CHECK_EQ(lease_on(holder.c, 0), -ENODEV);
	CHECK_EQ(broker_reset(admin.c, 0, false, 0, 1, &err), -ENODEV);
	teardown();
}

/* A device error: FORCE pause and reset; during a grace period, escalation. */
static void test_device_error(void)
{
	struct rec holder, admin;
	struct error_info err;

	setup(2000);
	client(&holder, 1000, true, false);
	client(&admin, 0, true, false);
	CHECK_EQ(lease_on(holder.c, 0), 0);
	struct device *d = b->devices[0];
	CHECK(d->error_fd >= 0);
	CHECK(!d->signals_errors);

	CHECK_EQ(eventfd_write(d->error_fd, 1), 0);
	for (int i = 0; i < 100 && d->generation == 1; i++)
		run_briefly();
	CHECK_EQ(d->generation, 2);
	CHECK(saw(&holder, 0, BROKER_EVENT_DEVICE_PAUSE, 1));
	CHECK_EQ(holder.ev[0].reason, BROKER_REASON_ERROR);
	CHECK_EQ(holder.ev[0].flags, BROKER_PAUSE_FORCE);
	CHECK(saw(&holder, 1, BROKER_EVENT_DEVICE_RESUME, 2));

	CHECK_EQ(broker_reset(admin.c, 0, false, 10000, 1, &err), 0);
	run_briefly();
	CHECK_EQ(eventfd_write(d->error_fd, 1), 0);
	long long ms = run_until_answered(&admin);
	CHECK(ms < 1000);
	CHECK_EQ(admin.answer, 0);
	CHECK_EQ(holder.n_ev, 5);
	CHECK(saw(&holder, 2, BROKER_EVENT_DEVICE_PAUSE, 2));
	CHECK(saw(&holder, 3, BROKER_EVENT_DEVICE_PAUSE, 2)); /* escalated */
	CHECK_EQ(holder.ev[3].flags, BROKER_PAUSE_FORCE);
	CHECK_EQ(holder.ev[3].reason, BROKER_REASON_ERROR);
	CHECK(saw(&holder, 4, BROKER_EVENT_DEVICE_RESUME, 3));
	teardown();
}

/* The revoke blocks in the kernel: the loop serves the other device meanwhile. */
static void test_loop_serves_during_reset(void)
{
	struct rec holder, admin, user;
	struct error_info err;

	setup(2000);
	client(&holder, 1000, true, false);
	client(&admin, 0, true, false);
	client(&user, 1001, true, false);
	CHECK_EQ(lease_on(holder.c, 0), 0);
	fake[0].block_fd = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(broker_reset(admin.c, 0, true, 0, 1, &err), 0);
	for (int i = 0; i < 5; i++)
		run_briefly();
	CHECK(!admin.answered);
	CHECK_EQ(b->devices[0]->state, DEVICE_PAUSED);
	CHECK_EQ(lease_on(user.c, 1), 0);
	/* RELEASE works during the pause; the window waits, unscrubbed. */
	struct lease *l = container_of(holder.c->leases.next, struct lease, client_link);
	CHECK_EQ(broker_release(holder.c, l->id, &err), 0);
	CHECK_EQ(b->devices[0]->quarantined_bytes, MiB);
	CHECK_EQ(eventfd_write(fake[0].block_fd, 1), 0);
	run_until_answered(&admin);
	CHECK_EQ(admin.answer, 0);
	CHECK_EQ(b->devices[0]->state, DEVICE_READY);
	close(fake[0].block_fd);
	teardown();
}

/* Released windows are zeroed by the worker, not on the loop; an ALLOC that
 * fits nowhere else waits for it. */
static void test_scrub_worker(void)
{
	struct rec holder;
	struct error_info err;
	struct lease *l;

	setup(2000);
	struct device *d = b->devices[0];
	d->info.features |= DEVICE_FEATURE_REVOKE;
	client(&holder, 1000, true, false);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(lease_on(holder.c, 0), 0);
	while (!list_empty(&holder.c->leases)) {
		l = container_of(holder.c->leases.next, struct lease, client_link);
		CHECK_EQ(broker_release(holder.c, l->id, &err), 0);
	}
	CHECK_EQ(d->quarantined_bytes, 0);
	for (int i = 0; i < 50 && d->dirty_bytes; i++)
		run_briefly();
	CHECK_EQ(d->dirty_bytes, 0);
	CHECK_EQ(fake[0].scrubbed, 4 * MiB);
	CHECK_EQ(allocator_free_bytes(d->alloc), 16 * MiB);

	/* The whole BAR, released and asked for again at once. */
	struct alloc_request all = { .device_by_id = true, .device_id = 0, .size = 16 * MiB };
	CHECK_EQ(broker_alloc(holder.c, &all, &l, &err), 0);
	CHECK_EQ(broker_release(holder.c, l->id, &err), 0);
	CHECK_EQ(broker_alloc(holder.c, &all, &l, &err), 0);
	CHECK_EQ(fake[0].scrubbed, 20 * MiB);
	teardown();
}

/* A restored lease of uid 1000 on dev, as a restart adopts it. */
static void adopt_orphan(uint32_t dev, uint64_t id, uint8_t token_byte)
{
	struct fdstore_lease rec = { .id = id, .uid = 1000, .offset = id * MiB, .size = MiB,
				     .generation = 1 };
	memset(rec.token, token_byte, sizeof(rec.token));
	CHECK_EQ(broker_adopt_lease(b, b->devices[dev], &rec, fake_export(&fake[dev], 0, 0, 0),
				    &WINDOW_STORE_NONE), 0);
}

static int reclaim_with(struct client *c, uint64_t id, uint8_t token_byte, struct error_info *err)
{
	uint8_t token[BROKER_TOKEN_SIZE];
	struct lease *l;
	memset(token, token_byte, sizeof(token));
	return broker_reclaim(c, id, token, &l, err);
}

/* A late RECLAIM of an orphan that ended unclaimed says why; with a wrong
 * token it learns nothing. */
static void test_ended_orphans_say_why(void)
{
	struct rec holder, admin;
	struct error_info err;

	setup(2000);
	client(&holder, 1000, false, false);
	client(&admin, 0, true, false);
	adopt_orphan(0, 3, 0xaa);
	adopt_orphan(1, 4, 0xbb);
	/* Device 0 goes away (its reset fails) with lease 3 still unclaimed. */
	fake[0].reset_result = -EIO;
	CHECK_EQ(broker_reset(admin.c, 0, true, 0, 1, &err), 0);
	run_until_answered(&admin);
	CHECK_EQ(b->devices[0]->state, DEVICE_GONE);
	CHECK_EQ(reclaim_with(holder.c, 3, 0xaa, &err), -ENOENT);
	CHECK_CONTAINS(err.text, "no orphaned lease 3");
	CHECK_CONTAINS(err.text, "its device gpu0 went away");
	CHECK_EQ(reclaim_with(holder.c, 3, 0xab, &err), -ENOENT);
	CHECK(!strstr(err.text, "went away"));
	/* Lease 4 waits out the reclaim timeout. */
	CHECK_EQ(broker_arm_orphans(b, 10), 0);
	run_briefly();
	CHECK_EQ(b->n_orphans, 0);
	CHECK_EQ(reclaim_with(holder.c, 4, 0xbb, &err), -ENOENT);
	CHECK_CONTAINS(err.text, "nobody reclaimed it within reclaim-timeout-s");
	CHECK_EQ(reclaim_with(admin.c, 4, 0xbb, &err), -ENOENT); /* another uid */
	CHECK(!strstr(err.text, "nobody"));
	teardown();
}

/* A lease reclaimed while its device pauses brings its holder into the
 * pause: told at once, then RESUME with everyone (the soak saw holders
 * that heard neither, and leases that ended unannounced at a GONE). */
static void test_reclaim_joins_the_pause(void)
{
	struct rec early, late, admin;
	struct error_info err;

	setup(2000);
	client(&early, 1001, true, false);
	client(&late, 1000, true, false);
	client(&admin, 0, true, false);
	adopt_orphan(0, 3, 0xaa);
	CHECK_EQ(lease_on(early.c, 0), 0);
	CHECK_EQ(broker_reset(admin.c, 0, false, 10000, 1, &err), 0);
	CHECK_EQ(reclaim_with(late.c, 3, 0xaa, &err), 0);
	CHECK_EQ(late.n_ev, 1);
	CHECK(saw(&late, 0, BROKER_EVENT_DEVICE_PAUSE, 1));
	CHECK_EQ(late.ev[0].reason, BROKER_REASON_ADMIN);
	CHECK_EQ(reclaim_with(late.c, 3, 0xaa, &err), -ENOENT);
	CHECK_EQ(late.n_ev, 1);
	/* The pause waits for the early holder only. */
	CHECK_EQ(broker_pause_ack(early.c, 0, 1, &err), 0);
	run_until_answered(&admin);
	CHECK_EQ(admin.answer, 0);
	CHECK_EQ(late.n_ev, 2);
	CHECK(saw(&late, 1, BROKER_EVENT_DEVICE_RESUME, 2));
	teardown();
}

int main(void)
{
	RUN(test_reset_waits_for_acks);
	RUN(test_deadline);
	RUN(test_not_waited_for);
	RUN(test_refused);
	RUN(test_reset_fails_gone);
	RUN(test_device_error);
	RUN(test_loop_serves_during_reset);
	RUN(test_scrub_worker);
	RUN(test_ended_orphans_say_why);
	RUN(test_reclaim_joins_the_pause);
	return UNIT_END();
}

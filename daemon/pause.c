// SPDX-License-Identifier: MIT
/*
 * The pause of one device, from DEVICE_PAUSE to DEVICE_RESUME or
 * DEVICE_GONE. The revoke that a reset or close causes waits in the kernel,
 * uninterruptibly, for every importer to let go of the buffers, so it runs
 * on a thread of its own; the thread hands its result back to the loop
 * through an eventfd, and everything else happens on the loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/idle.h"
#include "daemon/pause.h"
#include "daemon/persist.h"
#include "daemon/scrub.h"

struct pause_holder {
	struct client *client;
	bool wait;  /* holds a lease and acknowledges pauses: the reset waits for it */
	bool acked;
};

struct device_pause {
	struct broker *broker;
	struct device *device;
	struct pause_params params;
	uint64_t generation; /* the one paused */
	struct pause_holder *holders; /* everyone told */
	size_t n_holders, cap_holders;
	size_t n_waiting;    /* holders with wait && !acked */
	struct event *ev_deadline; /* also fired early when the last holder acknowledged */
	struct event *ev_done;
	int done_fd;         /* eventfd the worker signals */
	pthread_t worker;
	bool worker_running;
	bool escalated;      /* a FORCE pause followed the first one */
	int result;          /* the worker's */
	const char *method;  /* the worker's */
	bool backend_closed; /* by the worker */
	struct timespec started;
};

static uint64_t elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)((now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000);
}

static void report(struct device_pause *p, enum broker_pause_stage stage, uint64_t generation)
{
	struct broker *b = p->broker;
	if (!b->hooks || !b->hooks->pause)
		return;
	struct broker_pause_report rep = {
		.stage = stage, .reason = p->params.reason, .flags = p->params.flags,
		.grace_ms = p->params.grace_ms, .generation = generation,
		.n_holders = (unsigned)p->n_holders, .n_unacked = (unsigned)p->n_waiting,
		.method = p->method, .result = p->result, .elapsed_ms = elapsed_ms(&p->started),
		.requester = stage == BROKER_PAUSE_STARTED ? p->params.requester : NULL,
	};
	b->hooks->pause(p->device, &rep, b->hooks_data);
}

static struct pause_holder *find_holder(struct device_pause *p, const struct client *c)
{
	for (size_t i = 0; i < p->n_holders; i++)
		if (p->holders[i].client == c)
			return &p->holders[i];
	return NULL;
}

/* Everyone who hears of this device's pause: its lease holders, and the
 * clients that watch every device. Returns -ENOMEM. */
static int collect_holders(struct device_pause *p)
{
	struct broker *b = p->broker;
	struct client *c;
	size_t n = 0;

	p->cap_holders = b->n_clients ? b->n_clients : 1;
	p->holders = calloc(p->cap_holders, sizeof(*p->holders));
	if (!p->holders)
		return -ENOMEM;
	list_for_each(c, &b->clients, link) {
		struct lease *l;
		bool holds = false;
		list_for_each(l, &c->leases, client_link)
			if (l->device == p->device) {
				holds = true;
				break;
			}
		if (!holds && !c->watches)
			continue;
		/* Whoever asked for the reset cannot answer while it waits for
		 * the reset (libbarkeep blocks): asking counts as acknowledging. */
		bool wait = holds && c->acks_pauses && c != p->params.requester;
		p->holders[n++] = (struct pause_holder){ .client = c, .wait = wait };
		if (wait)
			p->n_waiting++;
	}
	p->n_holders = n;
	return 0;
}

/* DEVICE_PAUSE as the pause stands now (a FORCE escalation gives no time). */
static struct broker_event pause_event(const struct device_pause *p)
{
	bool force = p->params.flags & BROKER_PAUSE_FORCE;
	return (struct broker_event){ .type = BROKER_EVENT_DEVICE_PAUSE,
		.device_id = p->device->id, .generation = p->generation,
		.reason = p->params.reason, .flags = p->params.flags,
		.deadline_ms = force ? 0 : p->params.grace_ms };
}

static void tell_holders(struct device_pause *p, const struct broker_event *ev)
{
	for (size_t i = 0; i < p->n_holders; i++) {
		struct pause_holder *h = &p->holders[i];
		/* A client that cannot take the event is being disconnected by
		 * its transport: do not wait for it. */
		if (h->client->ops->send_event(h->client, ev, h->client->userdata) < 0 &&
		    h->wait && !h->acked) {
			h->wait = false;
			p->n_waiting--;
		}
	}
}

static void pause_free(struct device_pause *p)
{
	if (p->worker_running)
		pthread_join(p->worker, NULL);
	if (p->ev_deadline)
		event_free(p->ev_deadline);
	if (p->ev_done)
		event_free(p->ev_done);
	if (p->done_fd >= 0)
		close(p->done_fd);
	p->device->pause = NULL;
	free(p->holders);
	free(p);
}

/* Back on the loop: resume the device or give it up, tell everyone. */
static void pause_finish(struct device_pause *p)
{
	struct device *d = p->device;
	struct error_info err = {};
	int r = p->result;

	if (r == 0 && p->params.action == PAUSE_THEN_RESET) {
		d->generation++;
		persist_device_generation(d->persist, d);
		d->state = DEVICE_READY;
		scrub_resume(d);
		tell_holders(p, &(struct broker_event){ .type = BROKER_EVENT_DEVICE_RESUME,
				.device_id = d->id, .generation = d->generation,
				.flags = BROKER_RESUME_CONTENTS_LOST });
	} else {
		/* The worker closed the backend: every buffer is revoked for
		 * good, and every lease on the device has ended. */
		if (p->backend_closed)
			d->backend = NULL;
		d->state = DEVICE_GONE;
		tell_holders(p, &(struct broker_event){ .type = BROKER_EVENT_DEVICE_GONE,
				.device_id = d->id, .reason = p->params.reason });
		broker_leases_end(&d->leases, offsetof(struct lease, device_link));
		while (!list_empty(&d->orphans))
			broker_orphan_end(p->broker, container_of(d->orphans.next, struct lease,
								  device_link), ORPHAN_END_DEVICE_GONE);
		device_drop_quarantine(d);
		persist_device_removed(d->persist, d);
		pause_unwatch(d);
		if (p->params.action == PAUSE_THEN_RESET)
			error_set(&err, EIO, "device %s could not be reset (%s); it is gone now",
				  device_name(d), strerror(-r));
		else
			error_set(&err, ENODEV, "device %s was taken back by the host; it is gone now",
				  device_name(d));
	}
	report(p, BROKER_PAUSE_DONE, d->generation);

	struct client *req = p->params.requester;
	uint32_t request_id = p->params.request_id;
	int answer = r == 0 && p->params.action == PAUSE_THEN_RESET ? 0 : -err.code;
	pause_free(p);
	if (req && req->ops->reset_done)
		req->ops->reset_done(req, request_id, answer, &err, req->userdata);
}

static void *worker_main(void *userdata)
{
	struct device_pause *p = userdata;
	struct device *d = p->device;

	/* No zeroing through the BAR while it is reset or closed. */
	scrub_wait_idle(d);
	if (p->params.action == PAUSE_THEN_RESET)
		p->result = device_reset(d, &p->method);
	else
		p->result = -ENODEV;
	/* A device that cannot be reset, or that the host wants back, is closed:
	 * the last close revokes every buffer for good and lets an unbind finish. */
	if (p->result < 0) {
		d->ops->close(d->backend);
		p->backend_closed = true;
	}
	(void)eventfd_write(p->done_fd, 1);
	return NULL;
}

static void on_worker_done(evutil_socket_t fd, short what, void *userdata)
{
	struct device_pause *p = userdata;
	eventfd_t v;

	(void)eventfd_read(fd, &v);
	pthread_join(p->worker, NULL);
	p->worker_running = false;
	pause_finish(p);
}

/* The eventfd the worker answers on: made only now, so that telling the
 * holders, which comes first, waits for nothing. Returns a positive errno. */
static int worker_channel(struct device_pause *p)
{
	p->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->done_fd < 0)
		return errno;
	p->ev_done = event_new(p->broker->base, p->done_fd, EV_READ, on_worker_done, p);
	if (!p->ev_done || event_add(p->ev_done, NULL) < 0)
		return ENOMEM;
	return 0;
}

static void pause_revoke(struct device_pause *p)
{
	if (p->worker_running)
		return;
	event_del(p->ev_deadline);
	report(p, BROKER_PAUSE_REVOKING, p->generation);
	int r = worker_channel(p);
	if (r == 0)
		r = pthread_create(&p->worker, NULL, worker_main, p);
	if (r == 0) {
		p->worker_running = true;
		return;
	}
	/* No thread to revoke on: give the device up without touching it (a
	 * close could block the loop); it is closed at exit. */
	p->result = -r;
	pause_finish(p);
}

static void on_deadline(evutil_socket_t fd, short what, void *userdata)
{
	pause_revoke(userdata);
}

/* Revocation starts from the loop, never from inside a request or a
 * client's teardown that is still iterating over state. */
static void revoke_soon(struct device_pause *p)
{
	if (!p->worker_running)
		event_active(p->ev_deadline, EV_TIMEOUT, 1);
}

int pause_begin(struct broker *b, struct device *d, const struct pause_params *params)
{
	struct device_pause *p = calloc(1, sizeof(*p));
	int r = -ENOMEM;

	if (!p)
		return -ENOMEM;
	p->broker = b;
	p->device = d;
	p->params = *params;
	p->generation = d->generation;
	p->done_fd = -EBADF;
	clock_gettime(CLOCK_MONOTONIC, &p->started);
	p->ev_deadline = evtimer_new(b->base, on_deadline, p);
	if (!p->ev_deadline)
		goto fail;
	r = collect_holders(p);
	if (r < 0)
		goto fail;

	d->pause = p;
	d->state = DEVICE_PAUSED;
	scrub_hold(d);
	idle_pool_drop(d->idle); /* a reset revokes them: lend none that was */
	struct broker_event ev = pause_event(p);
	tell_holders(p, &ev);
	report(p, BROKER_PAUSE_STARTED, p->generation);
	if ((params->flags & BROKER_PAUSE_FORCE) || p->n_waiting == 0) {
		revoke_soon(p);
	} else {
		struct timeval tv = { params->grace_ms / 1000, (params->grace_ms % 1000) * 1000 };
		evtimer_add(p->ev_deadline, &tv);
	}
	return 0;
fail:
	pause_free(p);
	return r;
}

int pause_ack(struct device *d, struct client *c, uint64_t generation)
{
	struct device_pause *p = d->pause;
	if (!p || p->generation != generation)
		return -ESTALE;
	struct pause_holder *h = find_holder(p, c);
	if (h && h->wait && !h->acked) {
		h->acked = true;
		if (--p->n_waiting == 0)
			revoke_soon(p);
	}
	return 0;
}

int pause_join(struct device *d, struct client *c)
{
	struct device_pause *p = d->pause;
	if (!p || find_holder(p, c))
		return 0;
	if (p->n_holders == p->cap_holders) {
		struct pause_holder *h = reallocarray(p->holders, p->cap_holders * 2, sizeof(*h));
		if (!h)
			return -ENOMEM;
		p->holders = h;
		p->cap_holders *= 2;
	}
	/* Its grace began before it came: the pause does not wait for it. */
	p->holders[p->n_holders++] = (struct pause_holder){ .client = c };
	struct broker_event ev = pause_event(p);
	(void)c->ops->send_event(c, &ev, c->userdata);
	return 0;
}

void pause_forget_client(struct device *d, struct client *c)
{
	struct device_pause *p = d->pause;
	if (!p)
		return;
	if (p->params.requester == c)
		p->params.requester = NULL;
	struct pause_holder *h = find_holder(p, c);
	if (!h)
		return;
	bool waited = h->wait && !h->acked;
	*h = p->holders[--p->n_holders];
	if (waited && --p->n_waiting == 0)
		revoke_soon(p);
}

void pause_abort(struct device *d)
{
	if (d->pause)
		pause_free(d->pause);
}

struct device_watch {
	struct broker *broker;
	struct device *device;
	int release_fd;
	struct event *ev_error, *ev_release;
};

/* A device error while holders still have time: the second DEVICE_PAUSE of
 * PROTOCOL.md section 8, with FORCE, and the revoke starts. */
static void pause_escalate(struct device_pause *p)
{
	if (p->worker_running || p->escalated || (p->params.flags & BROKER_PAUSE_FORCE))
		return;
	p->escalated = true;
	p->params.flags |= BROKER_PAUSE_FORCE;
	p->params.reason = BROKER_REASON_ERROR;
	struct broker_event ev = pause_event(p);
	tell_holders(p, &ev);
	report(p, BROKER_PAUSE_STARTED, p->generation);
	revoke_soon(p);
}

static void on_device_error(evutil_socket_t fd, short what, void *userdata)
{
	struct device_watch *w = userdata;
	struct device *d = w->device;
	eventfd_t v;

	(void)eventfd_read(fd, &v);
	if (d->state == DEVICE_PAUSED) {
		pause_escalate(d->pause);
		return;
	}
	if (d->state != DEVICE_READY)
		return;
	struct pause_params p = { .action = PAUSE_THEN_RESET, .reason = BROKER_REASON_ERROR,
				  .flags = BROKER_PAUSE_FORCE };
	/* Without memory for a pause, the next error signal tries again. */
	(void)pause_begin(w->broker, d, &p);
}

static void on_device_release(evutil_socket_t fd, short what, void *userdata)
{
	struct device_watch *w = userdata;
	struct device *d = w->device;
	eventfd_t v;

	(void)eventfd_read(fd, &v);
	/* The kernel asks again every 10 s until the device is closed: a
	 * request that comes while a worker runs is answered by the next one. */
	if (d->state == DEVICE_PAUSED) {
		struct device_pause *p = d->pause;
		if (!p->worker_running) {
			p->params.action = PAUSE_THEN_CLOSE;
			p->params.reason = BROKER_REASON_UNPLUG;
		}
		return;
	}
	if (d->state != DEVICE_READY)
		return;
	struct pause_params p = {
		.action = PAUSE_THEN_CLOSE, .reason = BROKER_REASON_UNPLUG,
		.grace_ms = MIN(w->broker->cfg->limits.pause_grace_ms, BROKER_GRACE_MAX_MS),
	};
	(void)pause_begin(w->broker, d, &p);
}

static int watch_one(struct device_watch *w, enum backend_notify which, int *ret_fd,
		     struct event **ret_ev, event_callback_fn cb, bool *ret_signals)
{
	*ret_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (*ret_fd < 0)
		return -errno;
	*ret_ev = event_new(w->broker->base, *ret_fd, EV_READ | EV_PERSIST, cb, w);
	if (!*ret_ev || event_add(*ret_ev, NULL) < 0)
		return -ENOMEM;
	*ret_signals = w->device->ops->notify(w->device->backend, which, *ret_fd) == 0;
	return 0;
}

int pause_watch(struct broker *b, struct device *d)
{
	struct device_watch *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	*w = (struct device_watch){ .broker = b, .device = d, .release_fd = -EBADF };
	d->watch = w;
	/* The error eventfd is kept even when the device cannot signal it (not
	 * PCIe): a test writes to it to drive the error path. */
	r = watch_one(w, BACKEND_NOTIFY_ERROR, &d->error_fd, &w->ev_error, on_device_error,
		      &d->signals_errors);
	if (r == 0)
		r = watch_one(w, BACKEND_NOTIFY_RELEASE, &w->release_fd, &w->ev_release,
			      on_device_release, &d->signals_release);
	if (r < 0)
		pause_unwatch(d);
	return r;
}

void pause_unwatch(struct device *d)
{
	struct device_watch *w = d->watch;
	if (!w)
		return;
	if (w->ev_error)
		event_free(w->ev_error);
	if (w->ev_release)
		event_free(w->ev_release);
	d->error_fd = safe_close(d->error_fd);
	safe_close(w->release_fd);
	d->watch = NULL;
	free(w);
}

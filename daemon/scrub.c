// SPDX-License-Identifier: MIT
/*
 * The scrub worker of one device. The loop queues released windows with
 * the daemon's references to their buffers and takes them back through an
 * eventfd; the worker reads the references (fdinfo), closes them and zeroes
 * the window through the backend, and touches nothing else of the device:
 * what happens to a window next is device.c's, on the loop. One lock guards
 * the lists and flags and is never held while working.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/device.h"
#include "daemon/scrub.h"

/* A pause stops a window under way after at most this much. */
#define SCRUB_CHUNK (1u << 20)

struct dirty_window {
	struct list link;
	uint64_t offset, size;
	uint64_t done; /* bytes zeroed so far: a held window goes on from there */
	int result;    /* 0 zeroed, -EBUSY still referenced, else why it was not zeroed */
	struct window_store store;
	size_t n_fds;  /* 0 once closed */
	int fds[];
};

struct device_scrub {
	struct device *device;
	pthread_mutex_t lock;
	pthread_cond_t wake;    /* the worker: work, a resume or the end */
	pthread_cond_t settled; /* waiters: a window finished or stopped */
	struct list queue;      /* struct dirty_window, in order */
	struct list done;       /* zeroed (or failed), for the loop */
	struct dirty_window *busy;
	bool held, stopping;
	int done_fd;
	struct event *ev_done;
	pthread_t thread;
};

static int zero_window(struct device_scrub *s, struct dirty_window *w)
{
	struct device *d = s->device;

	/* Held: the device is pausing; a revoke or a store waits for the resume. */
	if (__atomic_load_n(&s->held, __ATOMIC_RELAXED))
		return -EINTR;
	if (w->n_fds) {
		if (!device_window_done(d, w->fds, w->n_fds, &w->store))
			return -EBUSY;
		for (size_t i = 0; i < w->n_fds; i++)
			safe_close(w->fds[i]);
		w->n_fds = 0;
	}
	while (w->done < w->size) {
		if (w->done && __atomic_load_n(&s->held, __ATOMIC_RELAXED))
			return -EINTR;
		uint64_t n = MIN(w->size - w->done, (uint64_t)SCRUB_CHUNK);
		int r = d->ops->scrub(d->backend, w->offset + w->done, n);
		if (r < 0)
			return r;
		w->done += n;
	}
	return 0;
}

static void *worker_main(void *userdata)
{
	struct device_scrub *s = userdata;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->stopping && (s->held || list_empty(&s->queue)))
			pthread_cond_wait(&s->wake, &s->lock);
		if (s->held || list_empty(&s->queue))
			break; /* stopping */
		struct dirty_window *w = container_of(s->queue.next, struct dirty_window, link);
		list_remove(&w->link);
		s->busy = w;
		pthread_mutex_unlock(&s->lock);
		int r = zero_window(s, w);
		pthread_mutex_lock(&s->lock);
		s->busy = NULL;
		if (r == -EINTR) {
			list_insert_tail(s->queue.next, &w->link); /* first again */
		} else {
			/* One wake-up of the loop for all that is done meanwhile. */
			bool tell = list_empty(&s->done);
			w->result = r;
			list_insert_tail(&s->done, &w->link);
			if (tell)
				(void)eventfd_write(s->done_fd, 1);
		}
		pthread_cond_broadcast(&s->settled);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Back on the loop: device.c decides what becomes of each window. Returns
 * the bytes freed. */
static uint64_t collect(struct device_scrub *s)
{
	struct device *d = s->device;
	struct dirty_window *w, *tmp;
	struct list done;
	uint64_t freed = 0;

	list_init(&done);
	pthread_mutex_lock(&s->lock);
	if (!list_empty(&s->done)) {
		list_insert_tail(&s->done, &done); /* done takes the whole list over */
		list_remove(&s->done);
	}
	pthread_mutex_unlock(&s->lock);
	list_for_each_safe(w, tmp, &done, link) {
		d->dirty_bytes -= w->size;
		if (device_window_settled(d, w->offset, w->size, w->fds, w->n_fds, &w->store,
					  w->result))
			freed += w->size;
		list_remove(&w->link);
		free(w);
	}
	return freed;
}

static void on_done(evutil_socket_t fd, short what, void *userdata)
{
	eventfd_t v;

	(void)eventfd_read(fd, &v);
	collect(userdata);
}

static void scrub_free(struct device_scrub *s)
{
	struct dirty_window *w, *tmp;

	if (s->ev_done)
		event_free(s->ev_done);
	safe_close(s->done_fd);
	list_for_each_safe(w, tmp, &s->queue, link) {
		for (size_t i = 0; i < w->n_fds; i++)
			safe_close(w->fds[i]);
		free(w);
	}
	pthread_cond_destroy(&s->settled);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int scrub_start(struct device *d, struct event_base *base)
{
	struct device_scrub *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->device = d;
	list_init(&s->queue);
	list_init(&s->done);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->settled, NULL);
	s->held = d->state != DEVICE_READY;
	s->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->done_fd < 0) {
		r = -errno;
		goto fail;
	}
	s->ev_done = event_new(base, s->done_fd, EV_READ | EV_PERSIST, on_done, s);
	if (!s->ev_done || event_add(s->ev_done, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	r = -pthread_create(&s->thread, NULL, worker_main, s);
	if (r < 0)
		goto fail;
	d->scrub = s;
	return 0;
fail:
	scrub_free(s);
	return r;
}

void scrub_stop(struct device *d)
{
	struct device_scrub *s = d->scrub;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	collect(s);
	d->scrub = NULL;
	scrub_free(s);
}

int scrub_queue(struct device *d, uint64_t offset, uint64_t size, const int *fds, size_t n,
		const struct window_store *ws)
{
	struct device_scrub *s = d->scrub;

	if (!s)
		return -ENOSYS;
	struct dirty_window *w = malloc(sizeof(*w) + n * sizeof(int));
	if (!w)
		return -ENOMEM;
	*w = (struct dirty_window){ .offset = offset, .size = size, .store = *ws, .n_fds = n };
	if (n) /* fds may be NULL then: a window whose buffers all ended */
		memcpy(w->fds, fds, n * sizeof(int));
	d->dirty_bytes += size;
	pthread_mutex_lock(&s->lock);
	list_insert_tail(&s->queue, &w->link);
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

uint64_t scrub_wait(struct device *d)
{
	struct device_scrub *s = d->scrub;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	while (!s->held && (s->busy || !list_empty(&s->queue)))
		pthread_cond_wait(&s->settled, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return collect(s);
}

static void set_held(struct device *d, bool held)
{
	struct device_scrub *s = d->scrub;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->held, held, __ATOMIC_RELAXED);
	if (!held)
		pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void scrub_hold(struct device *d)
{
	set_held(d, true);
}

void scrub_wait_idle(struct device *d)
{
	struct device_scrub *s = d->scrub;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	while (s->busy)
		pthread_cond_wait(&s->settled, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

void scrub_resume(struct device *d)
{
	set_held(d, false);
}

void scrub_drop(struct device *d)
{
	struct device_scrub *s = d->scrub;
	struct dirty_window *w;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	while (!list_empty(&s->queue)) {
		w = container_of(s->queue.next, struct dirty_window, link);
		list_remove(&w->link);
		w->result = -ENODEV;
		list_insert_tail(&s->done, &w->link);
	}
	pthread_mutex_unlock(&s->lock);
	collect(s);
}

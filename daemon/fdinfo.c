// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/macro.h"
#include "common/vfio.h"
#include "daemon/fdinfo.h"
#include "daemon/lazytimer.h"

struct fdinfo_handle {
	int number; /* the fd whose fdinfo it reads; -1: free */
	int fd;
};

struct fdinfo_cache {
	struct fdinfo_handle handles[FDINFO_HANDLES_MAX];
	unsigned next; /* the one to replace next: round robin */
	int dir;       /* /proc/self/fdinfo; -EBADF while idle */
	struct lazy_timer idle;
};

static void drop_all(struct fdinfo_cache *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(c->handles); i++) {
		c->handles[i].fd = safe_close(c->handles[i].fd);
		c->handles[i].number = -1;
	}
	c->dir = safe_close(c->dir);
}

static void on_idle(void *userdata)
{
	drop_all(userdata);
}

struct fdinfo_cache *fdinfo_cache_new(struct event_base *base)
{
	struct fdinfo_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->dir = -EBADF;
	for (size_t i = 0; i < ARRAY_SIZE(c->handles); i++)
		c->handles[i] = (struct fdinfo_handle){ -1, -EBADF };
	if (lazy_timer_init(&c->idle, base, FDINFO_IDLE_MS, on_idle, c) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

struct fdinfo_cache *fdinfo_cache_free(struct fdinfo_cache *c)
{
	if (!c)
		return NULL;
	drop_all(c);
	lazy_timer_done(&c->idle);
	free(c);
	return NULL;
}

/* The handle reading fd's fdinfo, opened (replacing the oldest) if need be. */
static struct fdinfo_handle *handle_for(struct fdinfo_cache *c, int fd)
{
	char name[16];

	for (size_t i = 0; i < ARRAY_SIZE(c->handles); i++)
		if (c->handles[i].number == fd)
			return &c->handles[i];
	if (c->dir < 0) {
		c->dir = open("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c->dir < 0)
			return NULL;
	}
	struct fdinfo_handle *h = &c->handles[c->next];
	snprintf(name, sizeof(name), "%d", fd);
	int f = openat(c->dir, name, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return NULL;
	safe_close(h->fd);
	*h = (struct fdinfo_handle){ fd, f };
	c->next = (c->next + 1) % ARRAY_SIZE(c->handles);
	return h;
}

int fdinfo_dmabuf_count(struct fdinfo_cache *c, int fd, long *ret_count)
{
	char text[1024];
	struct fdinfo_handle *h = c ? handle_for(c, fd) : NULL;

	if (h) {
		lazy_timer_touch(&c->idle);
		/* From offset 0 the kernel describes the file at fd now, not the
		 * one that was there when the handle was opened. */
		ssize_t n = pread(h->fd, text, sizeof(text) - 1, 0);
		if (n >= 0) {
			text[n] = '\0';
			return dmabuf_fdinfo_parse(text, ret_count, NULL, 0);
		}
		h->fd = safe_close(h->fd);
		h->number = -1;
	}
	/* No cache, no handle, or it failed: the plain way. */
	return dmabuf_query(fd, NULL, ret_count, NULL, 0);
}

// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/macro.h"
#include "daemon/allocator.h"
#include "daemon/idle.h"
#include "daemon/lazytimer.h"

struct idle_buffer {
	uint64_t offset, size;
	int fd;
};

struct idle_pool {
	struct lazy_timer idle;
	unsigned max, n;
	struct idle_buffer kept[]; /* oldest first */
};

static void on_idle(void *userdata)
{
	idle_pool_drop(userdata);
}

struct idle_pool *idle_pool_new(struct event_base *base, unsigned max, unsigned idle_ms)
{
	if (max == 0)
		return NULL;
	struct idle_pool *p = calloc(1, sizeof(*p) + max * sizeof(p->kept[0]));
	if (!p)
		return NULL;
	p->max = max;
	if (lazy_timer_init(&p->idle, base, idle_ms, on_idle, p) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

struct idle_pool *idle_pool_free(struct idle_pool *p)
{
	if (!p)
		return NULL;
	idle_pool_drop(p);
	lazy_timer_done(&p->idle);
	free(p);
	return NULL;
}

static void forget(struct idle_pool *p, unsigned i)
{
	p->n--;
	if (i < p->n) /* taking the newest (the usual case) moves nothing */
		memmove(&p->kept[i], &p->kept[i + 1], (p->n - i) * sizeof(p->kept[0]));
}

void idle_pool_put(struct idle_pool *p, uint64_t offset, uint64_t size, int fd)
{
	if (!p) {
		safe_close(fd);
		return;
	}
	if (p->n == p->max) {
		safe_close(p->kept[0].fd);
		forget(p, 0);
	}
	p->kept[p->n++] = (struct idle_buffer){ offset, size, fd };
	lazy_timer_touch(&p->idle);
}

int idle_pool_take(struct idle_pool *p, struct allocator *a, uint64_t size, uint64_t align,
		   uint64_t *ret_offset)
{
	/* The newest first: the one most likely still free. */
	for (unsigned i = p ? p->n : 0; i-- > 0;) {
		struct idle_buffer *k = &p->kept[i];
		if (k->size != size || (align && (k->offset & (align - 1))))
			continue;
		uint64_t offset = k->offset;
		int fd = k->fd;
		forget(p, i);
		if (allocator_claim(a, offset, size) == 0) {
			*ret_offset = offset;
			return fd;
		}
		safe_close(fd); /* its window was carved for someone else */
	}
	return -ENOENT;
}

void idle_pool_drop(struct idle_pool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++)
		safe_close(p->kept[i].fd);
	p->n = 0;
	lazy_timer_stop(&p->idle);
}

unsigned idle_pool_count(const struct idle_pool *p)
{
	return p ? p->n : 0;
}

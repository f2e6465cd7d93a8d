// SPDX-License-Identifier: MIT
#include <errno.h>

#include <event2/event.h>

#include "daemon/lazytimer.h"

static void on_tick(evutil_socket_t fd, short what, void *userdata)
{
	struct lazy_timer *t = userdata;

	t->armed = false;
	if (t->touched) {
		lazy_timer_arm(t);
		return;
	}
	t->fire(t->userdata);
}

int lazy_timer_init(struct lazy_timer *t, struct event_base *base, unsigned period_ms,
		    void (*fire)(void *userdata), void *userdata)
{
	*t = (struct lazy_timer){ .period_ms = period_ms, .fire = fire, .userdata = userdata };
	t->ev = evtimer_new(base, on_tick, t);
	return t->ev ? 0 : -ENOMEM;
}

void lazy_timer_done(struct lazy_timer *t)
{
	if (t->ev)
		event_free(t->ev);
	t->ev = NULL;
	t->armed = t->touched = false;
}

/* Starts a period; the touch that called it counts as before it. */
void lazy_timer_arm(struct lazy_timer *t)
{
	const struct timeval period = { t->period_ms / 1000, t->period_ms % 1000 * 1000 };

	t->touched = false;
	t->armed = event_add(t->ev, &period) == 0;
}

void lazy_timer_stop(struct lazy_timer *t)
{
	if (t->ev)
		event_del(t->ev);
	t->armed = t->touched = false;
}

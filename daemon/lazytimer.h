/* SPDX-License-Identifier: MIT */
/*
 * A timer for "after a while without use": fires once a whole period has
 * passed without a touch. Touching costs a store, not a timer re-arm; the
 * idle checks of the window reuse rule touch theirs on every release, so
 * the ALLOC and RELEASE path no longer moves libevent's timer heap.
 *
 * The timer ticks once per period while touched (second chance): a tick
 * that finds a touch since the last one clears it and waits another
 * period; one that finds none fires. So it fires between one and two
 * periods after the last touch. Loop thread only.
 */
#pragma once

#include <stdbool.h>

struct event;
struct event_base;

struct lazy_timer {
	struct event *ev;
	unsigned period_ms;
	bool armed;   /* a tick is pending */
	bool touched; /* since the last tick */
	void (*fire)(void *userdata);
	void *userdata;
};

int lazy_timer_init(struct lazy_timer *t, struct event_base *base, unsigned period_ms,
		    void (*fire)(void *userdata), void *userdata);
void lazy_timer_done(struct lazy_timer *t);

void lazy_timer_arm(struct lazy_timer *t);
static inline void lazy_timer_touch(struct lazy_timer *t)
{
	t->touched = true;
	if (!t->armed)
		lazy_timer_arm(t);
}
/* No tick pending and nothing to fire, until the next touch. */
void lazy_timer_stop(struct lazy_timer *t);

// SPDX-License-Identifier: MIT
/* The idle timer touched at the cost of a store (daemon/lazytimer.h): it
 * fires only after a whole period without a touch, at most two periods
 * after the last one, and never once stopped. */
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "daemon/lazytimer.h"
#include "tests/unit/unit.h"

#define PERIOD_MS 40
/* libevent reads a coarse clock (a tick, 4 ms here) unless asked not to. */
#define CLOCK_SLACK_MS 10

struct probe {
	struct event_base *base;
	struct lazy_timer t;
	int fired;
	uint64_t fired_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_fire(void *userdata)
{
	struct probe *p = userdata;

	p->fired++;
	p->fired_ms = now_ms();
}

/* Runs the loop for ms, touching the timer every touch_ms (0: never). */
static void run_for(struct probe *p, unsigned ms, unsigned touch_ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end) {
		struct timeval step = { 0, (touch_ms ? touch_ms : 5) * 1000 };
		event_base_loopexit(p->base, &step);
		event_base_dispatch(p->base);
		if (touch_ms)
			lazy_timer_touch(&p->t);
	}
}

static void probe_init(struct probe *p)
{
	*p = (struct probe){ .base = event_base_new() };
	CHECK(p->base != NULL);
	CHECK_EQ(lazy_timer_init(&p->t, p->base, PERIOD_MS, on_fire, p), 0);
}

static void probe_done(struct probe *p)
{
	lazy_timer_done(&p->t);
	event_base_free(p->base);
}

static void test_fires_after_a_quiet_period(void)
{
	struct probe p;

	probe_init(&p);
	uint64_t touched = now_ms();
	lazy_timer_touch(&p.t);
	run_for(&p, 6 * PERIOD_MS, 0);
	CHECK_EQ(p.fired, 1);
	CHECK(p.fired_ms + CLOCK_SLACK_MS >= touched + PERIOD_MS);
	probe_done(&p);
}

static void test_touches_hold_it_off(void)
{
	struct probe p;

	probe_init(&p);
	lazy_timer_touch(&p.t);
	run_for(&p, 5 * PERIOD_MS, PERIOD_MS / 4); /* touched all along */
	CHECK_EQ(p.fired, 0);
	uint64_t last = now_ms();
	run_for(&p, 6 * PERIOD_MS, 0);
	CHECK_EQ(p.fired, 1);
	CHECK(p.fired_ms + CLOCK_SLACK_MS >= last + PERIOD_MS);
	probe_done(&p);
}

static void test_stopped_never_fires(void)
{
	struct probe p;

	probe_init(&p);
	lazy_timer_touch(&p.t);
	lazy_timer_touch(&p.t);
	lazy_timer_stop(&p.t);
	run_for(&p, 4 * PERIOD_MS, 0);
	CHECK_EQ(p.fired, 0);
	/* And starts again with the next touch. */
	lazy_timer_touch(&p.t);
	run_for(&p, 6 * PERIOD_MS, 0);
	CHECK_EQ(p.fired, 1);
	probe_done(&p);
}

int main(void)
{
	RUN(test_fires_after_a_quiet_period);
	RUN(test_touches_hold_it_off);
	RUN(test_stopped_never_fires);
	return UNIT_END();
}

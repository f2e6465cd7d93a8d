// SPDX-License-Identifier: MIT
/*
 * The soak's connections, all in this process and served from one poll
 * loop: each step picks a connection and does something random with it
 * (ALLOC, RELEASE, GRANT, OPEN, REVOKE_GRANT, LIST_LEASES checked against
 * what it holds, passing an fd to a child, dropping the connection with
 * its leases). Every window it gets goes into the ledger; every device
 * event is checked against the pause sequence of PROTOCOL.md section 8.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/soak/soak.h"

#define MAX_HELD 8
#define MAX_GRANTS 256
#define N_DONE 8

struct held {
	struct barkeep_lease *lease;
	int span;
	uint64_t key;
	uint64_t off, size; /* as first given: a reclaim must not move it */
	bool opened;        /* through a grant */
	bool outlives;      /* opened under OUTLIVE_OWNER */
	bool shared;        /* own lease that was granted */
};

/* One connection's view of one device's pauses. */
struct devwatch {
	int held;           /* leases on the device */
	int64_t hold_since; /* when held last went from 0 to 1 */
	bool paused;
	uint64_t pause_gen;
	uint64_t done[N_DONE]; /* the last pauses that ended (RESUME or GONE) */
	unsigned n_done;
};

struct conn {
	unsigned idx;
	struct barkeep *bk;
	bool reconnect;       /* BARKEEP_CONNECT_RECONNECT */
	int64_t since;        /* connected or reconnected */
	struct held held[MAX_HELD];
	unsigned n_held;
	struct devwatch dev[SOAK_MAX_DEV];
};

struct grant_rec {
	struct conn *owner;
	uint64_t lease_id, key, grant_id;
	bool token, outlives;
	uint8_t secret[BARKEEP_TOKEN_SIZE];
};

struct dev_info {
	uint32_t id, granule;
	uint64_t size;
};

static struct conn *conns;
static struct dev_info devs[SOAK_MAX_DEV];
static size_t n_devs;
static struct grant_rec grants[MAX_GRANTS];
static size_t n_grants;
static bool grants_held;
#define MAX_SHARED 65536
static uint64_t shared_keys[MAX_SHARED]; /* windows ever granted */
static size_t n_shared;

static bool broken(int r)
{
	return r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN;
}

static void check_error(const char *op, int r, struct conn *c)
{
	/* What a client may meet under chaos; anything else is a bug. */
	static const int fine[] = { ENOSPC, EAGAIN, EDQUOT, ENODEV, ENOENT, EACCES, ECONNRESET,
				    EPIPE, ENOTCONN, EBUSY, ECONNREFUSED, ESTALE };
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
		if (-r == fine[i])
			return;
	soak_violation("expected errors", "%s on connection %u: %s (%s)", op, c->idx, strerror(-r),
		       barkeep_error_message(c->bk));
}

/* ---- holding ---- */

static void hold(struct conn *c, struct barkeep_lease *l, uint64_t key, bool opened, bool outlives)
{
	struct devwatch *w = &c->dev[l->device_id % SOAK_MAX_DEV];
	struct held *h = &c->held[c->n_held++];

	*h = (struct held){ .lease = l, .key = key, .off = l->bar_offset, .size = l->size,
			    .opened = opened, .outlives = outlives };
	h->span = ledger_add(l->device_id, l->bar_offset, l->size, key, SPAN_CHILD_NONE);
	if (w->held++ == 0)
		w->hold_since = soak_now_ms();
}

static void forget_grants_of(struct conn *c, uint64_t lease_id)
{
	for (size_t i = 0; i < n_grants;)
		if (grants[i].owner == c && (lease_id == 0 || grants[i].lease_id == lease_id))
			grants[i] = grants[--n_grants];
		else
			i++;
}

/* Drops held lease i: released at the broker when release, else only freed. */
static int unhold(struct conn *c, unsigned i, bool release)
{
	struct held *h = &c->held[i];
	int r = 0;

	if (!h->opened)
		forget_grants_of(c, h->lease->id);
	c->dev[h->lease->device_id % SOAK_MAX_DEV].held--;
	/* The fd closes before the RELEASE goes out: the span may go now. */
	ledger_drop(h->span);
	if (release)
		r = barkeep_release(c->bk, h->lease);
	else
		barkeep_lease_free(h->lease);
	c->held[i] = c->held[--c->n_held];
	return r;
}

/* Leases that ended with a restart, their fds still open for a while. */
#define MAX_LINGER 512
static struct lingering {
	struct barkeep_lease *lease;
	int span;
	int64_t close_at;
} lingering[MAX_LINGER];
static size_t n_lingering;

static void linger(struct conn *c, unsigned i)
{
	struct held *h = &c->held[i];

	if (n_lingering == MAX_LINGER) {
		unhold(c, i, false);
		return;
	}
	lingering[n_lingering++] = (struct lingering){ h->lease, h->span,
						      soak_now_ms() + (int64_t)soak_below(3000) };
	c->dev[h->lease->device_id % SOAK_MAX_DEV].held--;
	c->held[i] = c->held[--c->n_held];
}

/* Closes the lingering fds whose time has come (all with force). */
static void lingering_close(bool force)
{
	int64_t now = soak_now_ms();
	for (size_t i = 0; i < n_lingering;)
		if (force || now >= lingering[i].close_at) {
			ledger_drop(lingering[i].span);
			barkeep_lease_free(lingering[i].lease);
			lingering[i] = lingering[--n_lingering];
		} else {
			i++;
		}
}

static int held_by_id(struct conn *c, uint64_t lease_id)
{
	for (unsigned i = 0; i < c->n_held; i++)
		if (c->held[i].lease->id == lease_id)
			return (int)i;
	return -1;
}

/* ---- events ---- */

static void pause_ended(struct devwatch *w)
{
	w->done[w->n_done++ % N_DONE] = w->pause_gen;
	w->paused = false;
}

static void on_device_event(struct conn *c, const struct barkeep_event *ev)
{
	struct devwatch *w = &c->dev[ev->device_id % SOAK_MAX_DEV];

	switch (ev->type) {
	case BARKEEP_EVENT_DEVICE_PAUSE:
		if (w->paused && !(ev->generation == w->pause_gen && (ev->flags & 1)))
			soak_violation("one pause per reset",
				       "connection %u: PAUSE of device %u generation %" PRIu64
				       " while generation %" PRIu64 " is paused",
				       c->idx, ev->device_id, ev->generation, w->pause_gen);
		w->paused = true;
		w->pause_gen = ev->generation;
		(void)barkeep_ack_pause(c->bk, ev->device_id, ev->generation);
		break;
	case BARKEEP_EVENT_DEVICE_RESUME:
		if (!w->paused || ev->generation <= w->pause_gen)
			soak_violation("pause then resume",
				       "connection %u: RESUME of device %u generation %" PRIu64
				       " %s (paused: %" PRIu64 ")",
				       c->idx, ev->device_id, ev->generation,
				       w->paused ? "not newer" : "without a PAUSE", w->pause_gen);
		pause_ended(w);
		break;
	case BARKEEP_EVENT_DEVICE_GONE:
		if (ev->reason == BARKEEP_REASON_UNPLUG && !w->paused)
			soak_violation("pause then gone", "connection %u: GONE (unplug) of device %u without a PAUSE",
				       c->idx, ev->device_id);
		if (w->paused)
			pause_ended(w);
		for (unsigned i = c->n_held; i-- > 0;)
			if (c->held[i].lease->device_id == ev->device_id)
				unhold(c, i, false);
		break;
	default:
		break;
	}
}

static void on_event(struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	struct conn *c = userdata;
	int i;

	switch (ev->type) {
	case BARKEEP_EVENT_LEASE_REVOKED:
	case BARKEEP_EVENT_GRANT_REVOKED:
		i = held_by_id(c, ev->lease_id);
		if (i < 0)
			break;
		if (ev->type == BARKEEP_EVENT_LEASE_REVOKED && ev->reason == BARKEEP_REVOKE_LOST) {
			stats.lost_leases++;
			if (!c->held[i].opened && !c->held[i].shared)
				soak_lost_plain(ev->device_id, c->idx, ev->lease_id, barkeep_error_message(bk));
		}
		if (ev->type == BARKEEP_EVENT_LEASE_REVOKED && ev->reason == BARKEEP_REVOKE_OWNER &&
		    (!c->held[i].opened || c->held[i].outlives))
			soak_violation("owner's release", "connection %u: lease %" PRIu64
				       " ended with its owner's release but %s", c->idx, ev->lease_id,
				       c->held[i].opened ? "was opened under OUTLIVE_OWNER" : "is its own");
		unhold(c, (unsigned)i, false);
		break;
	case BARKEEP_EVENT_RECONNECTED:
		stats.reconnects++;
		stats.reclaimed += ev->n_reclaimed;
		c->since = soak_now_ms();
		/* Grants die with the old broker, and the new one numbers its own
		 * from 1 again: an old record would lend its OUTLIVE_OWNER to a
		 * new grant of the same id. */
		forget_grants_of(c, 0);
		/* Events of the restart are not replayed: start afresh. */
		for (size_t d = 0; d < SOAK_MAX_DEV; d++) {
			c->dev[d].paused = false;
			c->dev[d].hold_since = c->since;
		}
		/* Opened leases are not reclaimed (barkeep.h: open them again);
		 * the library says nothing of them. Their fds linger a while:
		 * the restarted broker must keep the window out of use meanwhile. */
		for (unsigned k = c->n_held; k-- > 0;)
			if (c->held[k].opened)
				linger(c, k);
		for (unsigned k = 0; k < c->n_held; k++) {
			struct held *h = &c->held[k];
			if (h->lease->bar_offset != h->off || h->lease->size != h->size)
				soak_violation("reclaim", "connection %u: lease %" PRIu64 " came back at %#" PRIx64
					       "+%#" PRIx64 ", was %#" PRIx64 "+%#" PRIx64, c->idx,
					       h->lease->id, h->lease->bar_offset, h->lease->size, h->off,
					       h->size);
		}
		break;
	default:
		on_device_event(c, ev);
		break;
	}
}

/* ---- connections ---- */

static void conn_open(struct conn *c)
{
	uint32_t flags = c->reconnect ? BARKEEP_CONNECT_RECONNECT : 0;
	char name[32];

	snprintf(name, sizeof(name), "soak-%u", c->idx);
	if (barkeep_connect_with(opts.sock, name, flags, &c->bk) < 0) {
		c->bk = NULL;
		return;
	}
	barkeep_set_event_handler(c->bk, on_event, c);
	c->since = soak_now_ms();
	memset(c->dev, 0, sizeof(c->dev));
}

/* The connection ends with every lease (abruptly, or it broke). */
static void conn_close(struct conn *c)
{
	while (c->n_held)
		unhold(c, c->n_held - 1, false);
	forget_grants_of(c, 0);
	barkeep_disconnect(c->bk);
	c->bk = NULL;
}

static int dispatch(struct conn *c)
{
	if (!c->bk)
		return 0;
	int r = barkeep_dispatch(c->bk);
	if (r < 0 && broken(r)) {
		stats.lost_conns++;
		conn_close(c);
	}
	return r;
}

/* After a request: its error, if the connection broke, ends the connection. */
static void after(struct conn *c, const char *op, int r)
{
	if (r >= 0) {
		dispatch(c);
		return;
	}
	check_error(op, r, c);
	if (broken(r)) {
		stats.lost_conns++;
		conn_close(c);
	} else {
		dispatch(c);
	}
}

int clients_start(void)
{
	struct barkeep *bk;
	struct barkeep_device *d;
	size_t n;

	if (barkeep_connect(opts.sock, "soak-probe", &bk) < 0) {
		fprintf(stderr, "soak: cannot connect to %s: %s\n", opts.sock, barkeep_error_message(NULL));
		return -1;
	}
	if (barkeep_list_devices(bk, &d, &n) < 0) {
		barkeep_disconnect(bk);
		return -1;
	}
	for (size_t i = 0; i < n && n_devs < SOAK_MAX_DEV; i++)
		if (d[i].state != BARKEEP_DEVICE_GONE && d[i].id < SOAK_MAX_DEV)
			devs[n_devs++] = (struct dev_info){ d[i].id, d[i].granule, d[i].bar_size };
	free(d);
	barkeep_disconnect(bk);

	conns = calloc(opts.n_clients, sizeof(*conns));
	if (!conns)
		return -1;
	for (unsigned i = 0; i < opts.n_clients; i++) {
		conns[i].idx = i;
		conns[i].reconnect = i % 2 == 0;
		conn_open(&conns[i]);
		if (!conns[i].bk) {
			fprintf(stderr, "soak: connection %u: %s\n", i, barkeep_error_message(NULL));
			return -1;
		}
	}
	return 0;
}

/* ---- operations ---- */

static void op_alloc(struct conn *c)
{
	if (c->n_held == MAX_HELD || n_devs == 0)
		return;
	const struct dev_info *d = &devs[soak_below(n_devs)];
	uint64_t size = (uint64_t)d->granule << soak_below(6);
	if (soak_below(50) == 0)
		size = d->size / 8;
	struct barkeep_alloc_params p = { .by_id = true, .device_id = d->id, .size = size };
	struct barkeep_lease *l;
	int r = barkeep_alloc(c->bk, &p, &l);
	stats.allocs++;
	if (r == 0)
		hold(c, l, ledger_new_key(), false, false);
	else
		stats.alloc_refused++;
	after(c, "ALLOC", r);
}

static void op_release(struct conn *c)
{
	if (c->n_held == 0)
		return;
	stats.releases++;
	after(c, "RELEASE", unhold(c, (unsigned)soak_below(c->n_held), true));
}

static void op_grant(struct conn *c)
{
	if (c->n_held == 0 || n_grants == MAX_GRANTS || grants_held)
		return;
	struct held *h = &c->held[soak_below(c->n_held)];
	if (h->opened)
		return;
	struct grant_rec *g = &grants[n_grants];
	*g = (struct grant_rec){ .owner = c, .lease_id = h->lease->id, .key = h->key,
				 .token = soak_below(2), .outlives = soak_below(4) == 0 };
	struct barkeep_grant_params p = {
		.lease_id = h->lease->id,
		.to = g->token ? BARKEEP_GRANT_TO_TOKEN : BARKEEP_GRANT_TO_UID,
		.flags = g->outlives ? BARKEEP_GRANT_OUTLIVE_OWNER : 0,
		.ttl_ms = soak_below(4) == 0 ? 500 : 0,
	};
	struct barkeep_grant out;
	int r = barkeep_grant(c->bk, &p, &out);
	stats.grants++;
	if (r == 0) {
		h->shared = true; /* the owner's reclaim is no longer certain */
		g->grant_id = out.grant_id;
		memcpy(g->secret, out.token, sizeof(g->secret));
		n_grants++;
	}
	after(c, "GRANT", r);
}

/* OPEN by lease id takes any grant to the caller's uid: the broker says
 * which, and that one's OUTLIVE_OWNER counts. */
static bool grant_outlives(const struct grant_rec *used, uint64_t grant_id)
{
	for (size_t i = 0; !used->token && i < n_grants; i++)
		if (grants[i].grant_id == grant_id && grants[i].lease_id == used->lease_id)
			return grants[i].outlives;
	return used->outlives;
}

static void op_open(struct conn *c)
{
	if (n_grants == 0 || c->n_held == MAX_HELD)
		return;
	size_t gi = soak_below(n_grants);
	struct grant_rec g = grants[gi];
	if (g.owner == c)
		return;
	struct barkeep_open_params p = { .by_token = g.token, .lease_id = g.token ? 0 : g.lease_id };
	memcpy(p.token, g.secret, sizeof(p.token));
	if (g.token) /* a token opens once, whatever comes of it */
		grants[gi] = grants[--n_grants];
	struct barkeep_lease *l;
	int r = barkeep_open(c->bk, &p, &l);
	stats.opens++;
	if (r == 0) {
		hold(c, l, g.key, true, grant_outlives(&g, l->grant_id));
		/* A window a holder opened stays out of use after a restart. */
		bool known = false;
		for (size_t i = 0; i < n_shared && !known; i++)
			known = shared_keys[i] == g.key;
		if (!known && n_shared < MAX_SHARED)
			shared_keys[n_shared++] = g.key;
		soak_window_opened(g.key);
	}
	after(c, "OPEN", r);
}

static void op_revoke(struct conn *c)
{
	for (size_t i = 0; i < n_grants; i++) {
		if (grants[i].owner != c)
			continue;
		uint64_t id = grants[i].grant_id;
		grants[i] = grants[--n_grants];
		stats.revokes++;
		after(c, "REVOKE_GRANT", barkeep_revoke_grant(c->bk, id));
		return;
	}
}

/* LIST_LEASES must say exactly what this connection holds. */
static void op_list(struct conn *c)
{
	struct barkeep_lease *list;
	size_t n;
	int r = barkeep_list_leases(c->bk, &list, &n);

	stats.lists++;
	after(c, "LIST_LEASES", r);
	if (r < 0 || !c->bk) {
		if (r == 0)
			free(list);
		return;
	}
	/* after() dispatched: leases revoked meanwhile are gone from held. */
	stats.list_checks++;
	unsigned found = 0;
	for (size_t i = 0; i < n; i++) {
		int k = held_by_id(c, list[i].id);
		if (k < 0) {
			/* Revoked after the list was made: its event came since. */
			continue;
		}
		found++;
		const struct barkeep_lease *h = c->held[k].lease;
		if (h->bar_offset != list[i].bar_offset || h->size != list[i].size ||
		    h->device_id != list[i].device_id)
			soak_violation("LIST_LEASES", "connection %u: lease %" PRIu64 " listed at %u:%#" PRIx64
				       "+%#" PRIx64 ", held at %u:%#" PRIx64 "+%#" PRIx64, c->idx,
				       list[i].id, list[i].device_id, list[i].bar_offset, list[i].size,
				       h->device_id, h->bar_offset, h->size);
	}
	if (found != c->n_held)
		soak_violation("LIST_LEASES", "connection %u holds %u lease(s); the broker lists %u of them",
			       c->idx, c->n_held, found);
	free(list);
}

static void op_pass(struct conn *c)
{
	if (c->n_held == 0)
		return;
	struct held *h = &c->held[soak_below(c->n_held)];
	stats.passes++;
	children_pass_fd(h->lease->fd, h->lease->device_id, h->lease->bar_offset, h->lease->size,
			 h->key);
}

void clients_step(void)
{
	struct conn *c = &conns[soak_below(opts.n_clients)];

	lingering_close(false);
	if (!c->bk) {
		conn_open(c);
		return;
	}
	stats.ops++;
	uint64_t x = soak_below(1000);
	if (x < 330)
		op_alloc(c);
	else if (x < 560)
		op_release(c);
	else if (x < 660)
		op_grant(c);
	else if (x < 800)
		op_open(c);
	else if (x < 840)
		op_revoke(c);
	else if (x < 900)
		op_list(c);
	else if (x < 950)
		op_pass(c);
	else if (x < 975) {
		stats.abrupt++;
		children_spawn_tenant();
	} else {
		stats.disconnects++;
		conn_close(c);
		conn_open(c);
	}
}

void clients_dispatch_all(void)
{
	for (unsigned i = 0; i < opts.n_clients; i++)
		dispatch(&conns[i]);
}

static unsigned polled[4096]; /* the connection of each pollfd of the last clients_pollfds() */

size_t clients_pollfds(struct pollfd *pfd, size_t max)
{
	size_t n = 0;
	for (unsigned i = 0; i < opts.n_clients && n < max && n < 4096; i++)
		if (conns[i].bk) {
			polled[n] = i;
			pfd[n++] = (struct pollfd){ .fd = barkeep_get_fd(conns[i].bk), .events = POLLIN };
		}
	return n;
}

void clients_dispatch_ready(const struct pollfd *pfd, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pfd[i].revents)
			dispatch(&conns[polled[i]]);
}

static bool saw_end_of(const struct devwatch *w, uint64_t gen)
{
	for (unsigned i = 0; i < N_DONE && i < w->n_done; i++)
		if (w->done[i] == gen)
			return true;
	return false;
}

void clients_check_reset(uint32_t dev, uint64_t gen, int64_t t_send, bool gone)
{
	clients_dispatch_all();
	for (unsigned i = 0; i < opts.n_clients; i++) {
		struct conn *c = &conns[i];
		const struct devwatch *w = &c->dev[dev % SOAK_MAX_DEV];
		if (!c->bk || c->since >= t_send || w->held == 0 || w->hold_since >= t_send)
			continue;
		stats.pair_checks++;
		if (gone)
			soak_violation("gone", "connection %u still holds %d lease(s) on device %u, which went away",
				       c->idx, w->held, dev);
		else if (!saw_end_of(w, gen))
			soak_violation("one pause and resume per reset",
				       "connection %u held a lease on device %u since %" PRId64
				       " ms before the reset of generation %" PRIu64 " and %s",
				       c->idx, dev, t_send - w->hold_since, gen,
				       w->paused && w->pause_gen == gen ? "saw no RESUME" : "saw no PAUSE");
	}
}

const uint64_t *clients_shared_keys(size_t *ret_n)
{
	*ret_n = n_shared;
	return shared_keys;
}

void clients_hold_grants(bool hold_them)
{
	grants_held = hold_them;
}

void clients_stop(void)
{
	lingering_close(true);
	for (unsigned i = 0; i < opts.n_clients; i++) {
		struct conn *c = &conns[i];
		while (c->bk && c->n_held)
			if (broken(unhold(c, c->n_held - 1, true)))
				break;
		if (c->bk)
			conn_close(c);
	}
	free(conns);
	conns = NULL;
}

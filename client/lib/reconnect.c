// SPDX-License-Identifier: MIT
/*
 * Surviving a broker restart (BARKEEP_CONNECT_RECONNECT): the leases this
 * connection handed out are tracked; when the connection breaks, the
 * library connects again, says HELLO as before and RECLAIMs each of them
 * with its token (proto/PROTOCOL.md, section 11). The fds never left the
 * application, so a reclaimed lease goes on as if nothing happened.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/lib/private.h"

/* The connection ends; the leases stay the caller's to free. */
void bk_untrack_all(struct barkeep *bk)
{
	struct bk_lease *l, *tmp;

	list_for_each_safe(l, tmp, &bk->leases, link)
		bk_untrack(&l->pub);
}

void bk_note_event(struct barkeep *bk, const struct barkeep_event *ev)
{
	struct bk_lease *l, *tmp;

	if (ev->type != BARKEEP_EVENT_LEASE_REVOKED && ev->type != BARKEEP_EVENT_DEVICE_GONE)
		return;
	list_for_each_safe(l, tmp, &bk->leases, link)
		if (ev->type == BARKEEP_EVENT_DEVICE_GONE ? l->pub.device_id == ev->device_id
							  : l->pub.id == ev->lease_id)
			bk_untrack(&l->pub);
}

static int reclaim(struct barkeep *bk, struct barkeep_lease *lease)
{
	struct proto_msg req = { .opcode = PROTO_OP_RECLAIM }, rep;

	if (!(bk->server_caps & PROTO_CAP_RECLAIM))
		return bk_fail(bk, -EOPNOTSUPP, "the broker at %s cannot give leases back after a "
			       "restart (no RECLAIM)", bk->path);
	req.reclaim.lease_id = lease->id;
	memcpy(req.reclaim.reclaim_token, lease->reclaim_token, sizeof(req.reclaim.reclaim_token));
	int r = bk_request_once(bk, &req, &rep, NULL);
	if (r < 0)
		return r;
	bk_from_wire_lease(lease, &rep.lease, lease->fd);
	proto_msg_clear(&rep);
	return 0;
}

int barkeep_reclaim(struct barkeep *bk, uint64_t lease_id, const uint8_t token[16],
		    struct barkeep_lease *lease)
{
	if (!bk || !token || !lease)
		return -EINVAL;
	bk->error[0] = '\0';
	/* Keep what the caller holds unless the broker says it is theirs. */
	struct barkeep_lease l = *lease;
	l.id = lease_id;
	memcpy(l.reclaim_token, token, sizeof(l.reclaim_token));
	int r = reclaim(bk, &l);
	if (r < 0)
		return r;
	*lease = l;
	return 0;
}

void barkeep_set_reconnect_timeout(struct barkeep *bk, uint32_t timeout_ms)
{
	bk->reconnect_timeout_ms = timeout_ms;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RECLAIMs every tracked lease; the ones refused move to lost. Stops at a
 * broken connection (returned: the caller connects again, and the leases
 * not yet reclaimed are still tracked). */
static int reclaim_all(struct barkeep *bk, struct list *lost, uint32_t *n_reclaimed)
{
	struct bk_lease *l, *tmp;

	list_for_each_safe(l, tmp, &bk->leases, link) {
		int r = reclaim(bk, &l->pub);
		if (r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN)
			return r;
		if (r == 0) {
			(*n_reclaimed)++;
			continue;
		}
		bk_untrack(&l->pub);
		list_insert_tail(lost, &l->link);
	}
	return 0;
}

/* One attempt: connect, HELLO, reclaim. */
static int reconnect_once(struct barkeep *bk, struct list *lost, uint32_t *n_reclaimed)
{
	int r = bk_open(bk);
	if (r < 0)
		return r;
	/* Replies the old connection owed will never come. */
	bk->n_unanswered = 0;
	return reclaim_all(bk, lost, n_reclaimed);
}

/* An attempt broke after the broker it reached sent events (from index
 * mark on): keep the ones that ended leases (the library stopped tracking
 * them), drop pauses and resumes, which RECONNECTED makes moot. Returns the
 * next attempt's mark. */
static size_t keep_endings(struct barkeep *bk, size_t mark)
{
	for (size_t i = mark; i < bk->n_queued; i++) {
		enum barkeep_event_type t = bk->queue[i].type;
		if (t == BARKEEP_EVENT_LEASE_REVOKED || t == BARKEEP_EVENT_GRANT_REVOKED ||
		    t == BARKEEP_EVENT_DEVICE_GONE)
			bk->queue[mark++] = bk->queue[i];
	}
	bk->n_queued = mark;
	return mark;
}

static void reverse_events(struct barkeep_event *q, size_t begin, size_t end)
{
	while (begin + 1 < end) {
		struct barkeep_event t = q[begin];
		q[begin++] = q[--end];
		q[end] = t;
	}
}

/* Moves queue[from, n_queued) before queue[mark, from), in place: three
 * reversals. */
static void move_before(struct barkeep *bk, size_t mark, size_t from)
{
	reverse_events(bk->queue, mark, from);
	reverse_events(bk->queue, from, bk->n_queued);
	reverse_events(bk->queue, mark, bk->n_queued);
}

/* RECONNECTED, then a LEASE_REVOKED for each lost lease (now untracked),
 * ahead of the events the new connection brought while the leases were
 * reclaimed (from index mark on): the application learns of the restart
 * before it hears of, say, a pause on the new broker. */
static int queue_outcome(struct barkeep *bk, size_t mark, struct list *lost, uint32_t n_reclaimed)
{
	struct barkeep_event ev = { .type = BARKEEP_EVENT_RECONNECTED, .n_reclaimed = n_reclaimed,
				    .n_lost = (uint32_t)list_length(lost) };
	struct bk_lease *l, *tmp;
	size_t from = bk->n_queued;
	int r = bk_queue_event(bk, &ev);

	list_for_each_safe(l, tmp, lost, link) {
		ev = (struct barkeep_event){ .type = BARKEEP_EVENT_LEASE_REVOKED,
			.device_id = l->pub.device_id, .lease_id = l->pub.id,
			.reason = BARKEEP_REVOKE_LOST };
		list_remove(&l->link);
		if (r == 0)
			r = bk_queue_event(bk, &ev);
	}
	if (r == 0)
		move_before(bk, mark, from);
	return r;
}

int bk_reconnect(struct barkeep *bk)
{
	int64_t deadline = now_ms() + bk->reconnect_timeout_ms;
	char why[sizeof(bk->error)], last[sizeof(bk->error)];
	uint32_t n_reclaimed = 0;
	struct list lost;
	int r;

	list_init(&lost);
	snprintf(why, sizeof(why), "%s", bk->error);
	/* Undelivered events to the front: nothing is delivered until we are
	 * done, so what the new connection brings starts at index mark. */
	bk_compact_queue(bk);
	size_t mark = bk->n_queued;
	bk->reconnecting = true;
	for (;;) {
		r = reconnect_once(bk, &lost, &n_reclaimed);
		if (r == 0 || now_ms() >= deadline)
			break;
		mark = keep_endings(bk, mark);
		struct timespec pause = { 0, BK_RECONNECT_RETRY_MS * 1000000L };
		nanosleep(&pause, NULL);
	}
	bk->reconnecting = false;
	if (r < 0) {
		/* Track the refused ones again: the next reconnection reports them. */
		struct bk_lease *l, *tmp;
		list_for_each_safe(l, tmp, &lost, link) {
			list_remove(&l->link);
			bk_track(bk, l);
		}
		snprintf(last, sizeof(last), "%s", bk->error);
		return bk_fail(bk, r, "%s; reconnecting for %u ms failed: %s", why,
			       bk->reconnect_timeout_ms, last);
	}
	return queue_outcome(bk, mark, &lost, n_reclaimed);
}

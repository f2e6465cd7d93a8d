/* SPDX-License-Identifier: MIT */
/* libbarkeep internals shared between its files (not installed). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "client/lib/barkeep.h"
#include "common/list.h"
#include "common/macro.h"
#include "proto/codec.h"

/* What a driver that cannot take a VFIO (peer-to-peer) dma-buf means. */
extern const char bk_msg_p2p_refused[];

#define BK_RECONNECT_TIMEOUT_MS 30000 /* default bound of one reconnection */
#define BK_RECONNECT_RETRY_MS 100     /* between connection attempts */
#define BK_HELLO_TIMEOUT_MS 5000      /* a broker that accepts but never answers HELLO
				       * (barkeepd's own handshake-timeout-ms default) */

struct barkeep {
	int fd;
	uint32_t next_request;
	uint32_t flags;       /* BARKEEP_CONNECT_* */
	uint64_t server_caps; /* PROTO_CAP_* the broker announced */
	char path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	char name[PROTO_NAME_MAX + 1];
	barkeep_event_fn handler;
	void *handler_data;
	struct barkeep_event *queue; /* events that came while a request waited: */
	size_t q_head, n_queued, queue_cap; /* [q_head, n_queued) wait for delivery */
	char error[PROTO_ERROR_MESSAGE_MAX + 64];
	/* Requests sent without waiting (RELEASE): their replies are dropped. */
	uint32_t unanswered[64];
	size_t n_unanswered;
	struct list leases; /* struct bk_lease.link: from barkeep_alloc(), not yet released */
	struct bk_lease *spare; /* a released lease's record, for the next ALLOC: no malloc()
				 * and free() per lease */
	uint32_t reconnect_timeout_ms;
	int reply_timeout_ms; /* > 0: how long a read waits for a message (HELLO); else no end */
	bool reconnecting; /* inside bk_reconnect(): no nested attempt */
};

/* A lease barkeep_alloc() handed out: tracked so that a reconnection can
 * reclaim it. Callers only see pub. */
struct bk_lease {
	struct barkeep_lease pub;
	struct barkeep *bk; /* NULL once untracked */
	struct list link;
};

_printf_(3, 4) int bk_fail(struct barkeep *bk, int r, const char *fmt, ...);
int bk_queue_event(struct barkeep *bk, const struct barkeep_event *ev);
/* Moves the undelivered events to the front of the queue (q_head = 0). */
void bk_compact_queue(struct barkeep *bk);
/* Sends a request and waits for its reply (events that come first are
 * queued); an ERROR becomes -code with its message kept. *ret_fd (may be
 * NULL) gets the fd that came with the reply. In reconnect mode a broken
 * connection is reconnected and the request sent once more. */
int bk_request(struct barkeep *bk, struct proto_msg *req, struct proto_msg *ret, int *ret_fd);
/* Capability GRANT is in effect on the connection. */
bool bk_shares(const struct barkeep *bk);
/* Sends req and waits for its reply on the current connection, no retry. */
int bk_request_once(struct barkeep *bk, struct proto_msg *req, struct proto_msg *ret, int *ret_fd);
/* Connects a new socket to bk->path and says HELLO on it; on success it
 * becomes bk->fd (the same fd number when there was one). Fails with the
 * reason in bk->error. */
int bk_open(struct barkeep *bk);
void bk_from_wire_lease(struct barkeep_lease *l, const struct proto_lease *w, int fd);

/* reconnect.c; the three helpers every ALLOC and RELEASE calls are inline. */
static inline void bk_track(struct barkeep *bk, struct bk_lease *l)
{
	l->bk = bk;
	list_insert_tail(&bk->leases, &l->link);
}

static inline void bk_untrack(struct barkeep_lease *lease)
{
	struct bk_lease *l = container_of(lease, struct bk_lease, pub);

	if (!l->bk)
		return;
	list_remove(&l->link);
	l->bk = NULL;
}

/* True when r says the connection broke and bk may reconnect now. */
static inline bool bk_should_reconnect(const struct barkeep *bk, int r)
{
	bool broken = r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN;

	return broken && (bk->flags & BARKEEP_CONNECT_RECONNECT) && !bk->reconnecting;
}

void bk_untrack_all(struct barkeep *bk);
/* Stops tracking leases an event says have ended. */
void bk_note_event(struct barkeep *bk, const struct barkeep_event *ev);
/* Reconnects, says HELLO, reclaims the tracked leases and queues
 * RECONNECTED and a LEASE_REVOKED per lost lease. 0 or -errno. */
int bk_reconnect(struct barkeep *bk);

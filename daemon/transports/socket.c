// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/list.h"
#include "common/log.h"
#include "daemon/allocator.h"
#include "daemon/broker.h"
#include "daemon/transports/peer.h"
#include "daemon/transports/socket.h"
#include "proto/codec.h"

#define MESSAGES_PER_WAKEUP 16 /* then yield to other clients */
#define HELD_MAX 8     /* small replies held while a client's requests are read */
#define HELD_SIZE 512  /* an OK, an ERROR or an event fits */
_Static_assert(MESSAGES_PER_WAKEUP <= PROTO_RECV_MANY_MAX, "one recvmmsg() per wake-up");

struct outgoing {
	struct list link;
	size_t len;
	int fd; /* a dup, or -EBADF */
	uint8_t buf[];
};

struct conn {
	struct socket_server *server;
	struct list link;
	int fd;
	struct event *ev_read, *ev_write;
	struct event *ev_timeout; /* handshake-timeout-ms before HELLO, then idle-timeout-s */
	struct event *ev_close; /* a disconnect decided where freeing is not safe */
	struct client *client;
	bool hello_done;
	bool closing;
	bool knows_shutdown; /* announced RECLAIM: understands DEVICE_GONE reason SHUTDOWN */
	bool quiet_ok;       /* announced QUIET: may ask for no OK */
	struct list out; /* struct outgoing */
	unsigned n_out;
	unsigned resets_waiting; /* RESETs answered when their device resumes */
};

struct held_packet {
	size_t len;
	uint8_t buf[HELD_SIZE];
};

/* An event as last encoded: fan-out encodes it once for every client. */
struct encoded_event {
	bool valid;
	struct broker_event ev;
	bool old_reasons; /* for a client without capability RECLAIM */
	size_t len;
	uint8_t buf[HELD_SIZE];
};

struct socket_server {
	struct event_base *base;
	struct broker *broker;
	int listen_fd;
	char *path; /* unlinked on exit when we created it */
	struct event *ev_accept;
	struct list conns;
	/* The connection whose requests are being read: its small replies wait
	 * in held[] to go out with the next packet, or when the reading ends. */
	struct conn *corked;
	struct held_packet held[HELD_MAX];
	size_t n_held;
	struct encoded_event last_event;
	struct proto_receiver *inbox; /* MESSAGES_PER_WAKEUP packets */
};

static int conn_flush(struct conn *c, const void *buf, size_t len, int fd);

static void conn_free(struct conn *c)
{
	struct outgoing *o, *tmp;

	if (!c)
		return;
	log_debug("client %s (uid %u) disconnected", c->client ? c->client->name : "?",
		  c->client ? c->client->creds.uid : 0);
	if (c->server->corked == c) {
		(void)conn_flush(c, NULL, 0, -EBADF); /* best effort: the last reply says why */
		c->server->corked = NULL;
	}
	list_for_each_safe(o, tmp, &c->out, link) {
		safe_close(o->fd);
		free(o);
	}
	if (c->ev_read)
		event_free(c->ev_read);
	if (c->ev_write)
		event_free(c->ev_write);
	if (c->ev_timeout)
		event_free(c->ev_timeout);
	if (c->ev_close)
		event_free(c->ev_close);
	broker_client_free(c->client);
	safe_close(c->fd);
	list_remove(&c->link);
	free(c);
}

static void on_close(evutil_socket_t fd, short what, void *userdata)
{
	conn_free(userdata);
}

/* Disconnects the client from the loop, later: the broker may be iterating
 * over its clients right now. Nothing more is read from or sent to it. */
static void conn_close_soon(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	event_del(c->ev_read);
	event_del(c->ev_write);
	event_active(c->ev_close, EV_TIMEOUT, 1);
}

static const struct config_limits *conn_limits(const struct conn *c)
{
	return &broker_config(c->server->broker)->limits;
}

static int queue_limit(const struct conn *c)
{
	return (int)conn_limits(c)->max_queued_events;
}

/* (Re)starts the idle timer: called after HELLO and whenever the client sends. */
static void conn_arm_idle(struct conn *c)
{
	uint32_t s = conn_limits(c)->idle_timeout_s;
	struct timeval tv = { s, 0 };

	if (s)
		event_add(c->ev_timeout, &tv);
}

/* Queues a packet behind those the socket could not take yet. -ENOBUFS
 * when the client's queue is over its limit: the caller disconnects it. */
static int conn_queue(struct conn *c, const void *buf, size_t len, int fd)
{
	if (c->n_out >= (unsigned)queue_limit(c))
		return -ENOBUFS;
	struct outgoing *o = malloc(sizeof(*o) + len);
	if (!o)
		return -ENOMEM;
	o->len = len;
	o->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -EBADF;
	if (fd >= 0 && o->fd < 0) {
		free(o);
		return -errno;
	}
	memcpy(o->buf, buf, len);
	list_insert_tail(&c->out, &o->link);
	c->n_out++;
	event_add(c->ev_write, NULL);
	return 0;
}

/* Sends the held packets and then buf (when not NULL) in one go, queueing
 * what the socket cannot take now. */
static int conn_flush(struct conn *c, const void *buf, size_t len, int fd)
{
	struct socket_server *s = c->server;
	struct proto_packet p[HELD_MAX + 1];
	size_t n = 0;
	int sent = 0, r;

	if (s->corked == c) {
		for (size_t i = 0; i < s->n_held; i++)
			p[n++] = (struct proto_packet){ s->held[i].buf, s->held[i].len, -EBADF };
		s->n_held = 0;
	}
	if (buf)
		p[n++] = (struct proto_packet){ buf, len, fd };
	if (n && list_empty(&c->out)) {
		sent = proto_send_many(c->fd, p, n);
		if (sent == -EAGAIN)
			sent = 0;
		if (sent < 0)
			return sent;
	}
	for (size_t i = (size_t)sent; i < n; i++)
		if ((r = conn_queue(c, p[i].buf, p[i].len, p[i].fd)) < 0)
			return r;
	return 0;
}

/* Sends a packet now, or queues it when the socket is full. While the
 * client's requests are read, a small one without an fd is held, to go out
 * with the next: one send and one wake-up of the client for both (an fd
 * never waits: a later request may close it). Returns -ENOBUFS when the
 * client's queue is over its limit: the caller disconnects it. */
static int conn_send_packet(struct conn *c, const void *buf, size_t len, int fd)
{
	struct socket_server *s = c->server;

	if (c->closing)
		return -ENOBUFS;
	if (s->corked == c && fd < 0 && len <= HELD_SIZE && s->n_held < HELD_MAX &&
	    list_empty(&c->out)) {
		s->held[s->n_held].len = len;
		memcpy(s->held[s->n_held++].buf, buf, len);
		return 0;
	}
	return conn_flush(c, buf, len, fd);
}

static int conn_send(struct conn *c, const struct proto_msg *m, int fd)
{
	uint8_t buf[PROTO_MAX_MESSAGE];
	struct proto_diag diag;
	int n = proto_encode(m, buf, sizeof(buf), &diag);
	if (n < 0)
		return log_error_errno(n, "Failed to encode %s: %s", proto_op_name(m->opcode), diag.text);
	return conn_send_packet(c, buf, (size_t)n, fd);
}

/* quiet: it answers a request that asked for no OK (header flag QUIET). */
static int conn_send_error(struct conn *c, uint32_t request_id, uint16_t opcode, bool quiet,
			   const struct error_info *err)
{
	struct proto_msg m = { .opcode = PROTO_OP_ERROR, .request_id = request_id, .quiet = quiet };
	m.error.code = (uint32_t)err->code;
	m.error.request_opcode = opcode;
	snprintf(m.error.message, sizeof(m.error.message), "%s", err->text);
	return conn_send(c, &m, -EBADF);
}

static void on_write(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;
	struct outgoing *o, *tmp;

	list_for_each_safe(o, tmp, &c->out, link) {
		int r = proto_send(fd, o->buf, o->len, o->fd >= 0 ? &o->fd : NULL, o->fd >= 0);
		if (r == -EAGAIN)
			return; /* still armed */
		if (r < 0) {
			conn_free(c);
			return;
		}
		list_remove(&o->link);
		c->n_out--;
		safe_close(o->fd);
		free(o);
	}
	event_del(c->ev_write);
}

static bool event_equal(const struct broker_event *a, const struct broker_event *b)
{
	return a->type == b->type && a->device_id == b->device_id && a->lease_id == b->lease_id &&
	       a->grant_id == b->grant_id && a->generation == b->generation &&
	       a->reason == b->reason && a->flags == b->flags && a->deadline_ms == b->deadline_ms;
}

/* Encodes ev into e; old_reasons: as for a client without capability RECLAIM. */
static int encode_event(const struct broker_event *ev, bool old_reasons, struct encoded_event *e)
{
	struct proto_msg m = { .request_id = 0 };
	struct proto_diag diag;

	switch (ev->type) {
	case BROKER_EVENT_DEVICE_PAUSE:
		m.opcode = PROTO_OP_DEVICE_PAUSE;
		m.device_pause = (struct proto_device_pause){ ev->device_id, (uint16_t)ev->reason,
			(uint16_t)ev->flags, ev->generation, ev->deadline_ms };
		break;
	case BROKER_EVENT_DEVICE_RESUME:
		m.opcode = PROTO_OP_DEVICE_RESUME;
		m.device_resume = (struct proto_device_resume){ ev->device_id, ev->flags, ev->generation };
		break;
	case BROKER_EVENT_DEVICE_GONE:
		m.opcode = PROTO_OP_DEVICE_GONE;
		m.device_gone = (struct proto_device_gone){ ev->device_id, (uint16_t)ev->reason };
		/* Older clients reject reason values they do not know. */
		if (old_reasons)
			m.device_gone.reason = PROTO_REASON_ADMIN;
		break;
	case BROKER_EVENT_LEASE_REVOKED:
		m.opcode = PROTO_OP_LEASE_REVOKED;
		m.lease_revoked = (struct proto_lease_revoked){ ev->lease_id, ev->device_id,
			(uint16_t)ev->reason };
		break;
	case BROKER_EVENT_GRANT_REVOKED:
		m.opcode = PROTO_OP_GRANT_REVOKED;
		m.grant_revoked = (struct proto_grant_revoked){ ev->grant_id, ev->lease_id,
			ev->device_id, (uint16_t)ev->reason };
		break;
	}
	e->valid = false;
	int n = proto_encode(&m, e->buf, sizeof(e->buf), &diag);
	if (n < 0)
		return log_error_errno(n, "Failed to encode %s: %s", proto_op_name(m.opcode), diag.text);
	e->ev = *ev;
	e->old_reasons = old_reasons;
	e->len = (size_t)n;
	e->valid = true;
	return 0;
}

static int send_event(struct client *cl, const struct broker_event *ev, void *userdata)
{
	struct conn *c = userdata;
	struct encoded_event *e = &c->server->last_event;
	bool old_reasons = ev->type == BROKER_EVENT_DEVICE_GONE &&
			   ev->reason == BROKER_REASON_SHUTDOWN && !c->knows_shutdown;
	int r = 0;

	/* The same event for many clients in a row (a pause): encoded once. */
	if (!e->valid || e->old_reasons != old_reasons || !event_equal(&e->ev, ev))
		r = encode_event(ev, old_reasons, e);
	if (r == 0)
		r = conn_send_packet(c, e->buf, e->len, -EBADF);
	if (r < 0 && !c->closing) {
		if (r == -ENOBUFS)
			log_warning("client %s (uid %u) does not read its events (%u queued, limit is %u "
				    "(max-queued-events)); disconnecting it", cl->name, cl->creds.uid,
				    c->n_out, conn_limits(c)->max_queued_events);
		else
			log_warning_errno(r, "Failed to send an event to client %s; disconnecting it: %m",
					  cl->name);
		conn_close_soon(c);
	}
	return r;
}

static void reset_done(struct client *cl, uint32_t request_id, int r, const struct error_info *err,
		       void *userdata)
{
	struct conn *c = userdata;
	int q;

	c->resets_waiting--;
	if (r == 0) {
		struct proto_msg m = { .opcode = PROTO_OP_OK, .request_id = request_id };
		q = conn_send(c, &m, -EBADF);
	} else {
		q = conn_send_error(c, request_id, PROTO_OP_RESET, false, err);
	}
	if (q < 0)
		conn_close_soon(c);
}

static const struct client_ops socket_client_ops = { .send_event = send_event, .reset_done = reset_done };

static void fill_image(struct proto_image *w, const struct lease_image *img)
{
	*w = (struct proto_image){ img->fourcc, img->width, img->height, img->n_planes, img->modifier };
	memcpy(w->offsets, img->offsets, sizeof(w->offsets));
	memcpy(w->strides, img->strides, sizeof(w->strides));
}

static void fill_lease(struct proto_lease *w, const struct lease *l)
{
	*w = (struct proto_lease){ .id = l->id, .device_id = l->device->id, .flags = l->flags,
		.bar_offset = l->offset, .size = l->size, .generation = l->generation };
	fill_image(&w->image, &l->image);
	memcpy(w->reclaim_token, l->token, sizeof(w->reclaim_token));
}

static int handle_hello(struct conn *c, const struct proto_msg *req, struct error_info *err)
{
	const struct config_limits *lim = conn_limits(c);
	int v = proto_negotiate_version(req->hello.min_version, req->hello.max_version);
	if (v < 0)
		return error_set(err, EPROTONOSUPPORT,
				 "client speaks protocol versions %u-%u, this broker %u-%u",
				 req->hello.min_version, req->hello.max_version,
				 PROTO_VERSION_MIN, PROTO_VERSION_MAX);
	c->knows_shutdown = req->hello.capabilities & PROTO_CAP_RECLAIM;
	c->quiet_ok = req->hello.capabilities & PROTO_CAP_QUIET;
	if (req->hello.name[0])
		broker_client_set_name(c->client, req->hello.name);
	broker_client_set_events(c->client, req->hello.capabilities & PROTO_CAP_PAUSE_ACK,
				 req->hello.capabilities & PROTO_CAP_WATCH);
	broker_client_set_sharing(c->client, req->hello.capabilities & PROTO_CAP_GRANT);
	c->hello_done = true;
	event_del(c->ev_timeout);
	conn_arm_idle(c);
	if (c->client->container)
		log_info("client %s (container %s, uid %u, pid %d, cgroup %s) connected",
			 c->client->name, c->client->container->name, c->client->creds.uid,
			 (int)c->client->creds.pid, c->client->creds.cgroup);
	else
		log_info("client %s (uid %u, pid %d) connected", c->client->name,
			 c->client->creds.uid, (int)c->client->creds.pid);

	struct proto_msg m = { .opcode = PROTO_OP_WELCOME, .request_id = req->request_id };
	m.welcome = (struct proto_welcome){
		.version = (uint16_t)v, .max_message_size = PROTO_MAX_MESSAGE, .max_fds = PROTO_MAX_FDS,
		.max_leases = MIN(lim->max_leases_per_client, PROTO_MAX_LEASES),
		.max_queued_events = lim->max_queued_events,
		.max_lease_bytes = lim->max_bytes_per_uid,
		.capabilities = PROTO_CAP_PAUSE_ACK | PROTO_CAP_WATCH | PROTO_CAP_GRANT |
				PROTO_CAP_RECLAIM | PROTO_CAP_QUIET,
	};
	snprintf(m.welcome.server_name, sizeof(m.welcome.server_name), "barkeepd");
	return conn_send(c, &m, -EBADF);
}

static int handle_list_devices(struct conn *c, const struct proto_msg *req)
{
	struct broker *b = c->server->broker;
	struct proto_device entries[PROTO_MAX_DEVICES];
	struct proto_msg m = { .opcode = PROTO_OP_DEVICES, .request_id = req->request_id };
	size_t n = MIN(broker_n_devices(b), (size_t)PROTO_MAX_DEVICES);

	broker_settle(b);
	for (size_t i = 0; i < n; i++) {
		const struct device *d = broker_device(b, i);
		struct proto_device *e = &entries[i];
		*e = (struct proto_device){
			.id = d->id, .pci_vendor = d->info.vendor, .pci_device = d->info.device,
			.backend = d->ops->kind == BACKEND_KIND_SYSMEM ? PROTO_BACKEND_SYSMEM : PROTO_BACKEND_VFIO,
			.bar_index = (uint8_t)d->info.bar,
			.state = (uint8_t)d->state, .granule = (uint32_t)d->info.page_size,
			.bar_size = d->info.bar_size, .free_bytes = allocator_free_bytes(d->alloc),
			.largest_free = allocator_largest_free(d->alloc), .generation = d->generation,
			.features = (d->info.features & DEVICE_FEATURE_DMABUF ? PROTO_FEATURE_DMABUF_EXPORT : 0) |
				    (d->info.features & DEVICE_FEATURE_MMAP ? PROTO_FEATURE_DMABUF_MMAP : 0) |
				    (d->info.features & DEVICE_FEATURE_REVOKE ? PROTO_FEATURE_DMABUF_REVOKE : 0) |
				    (d->info.features & DEVICE_FEATURE_MEMATTR_WC ? PROTO_FEATURE_MEMATTR_WC : 0),
		};
		snprintf(e->pci_address, sizeof(e->pci_address), "%s", d->info.pci_addr);
		snprintf(e->label, sizeof(e->label), "%s", d->cfg->label ? d->cfg->label : d->cfg->name);
	}
	m.devices.count = (uint32_t)n;
	m.devices.entries = entries;
	return conn_send(c, &m, -EBADF);
}

static int handle_alloc(struct conn *c, const struct proto_msg *req, struct error_info *err)
{
	const struct proto_alloc *a = &req->alloc;
	struct alloc_request ar = {
		.device = a->selector == PROTO_SELECT_PCI_ADDRESS ? a->pci_address : NULL,
		.device_id = a->device_id, .device_by_id = a->selector == PROTO_SELECT_ID,
		.size = a->size, .alignment = a->alignment,
		.flags = a->flags, /* PROTO_ALLOC_* and LEASE_* share their bits */
	};
	ar.image = (struct lease_image){ a->image.fourcc, a->image.width, a->image.height,
					 a->image.n_planes, a->image.modifier };
	memcpy(ar.image.offsets, a->image.offsets, sizeof(ar.image.offsets));
	memcpy(ar.image.strides, a->image.strides, sizeof(ar.image.strides));

	struct lease *l;
	int r = broker_alloc(c->client, &ar, &l, err);
	if (r < 0)
		return r;
	log_debug("lease %llu: %llu bytes at %#llx of %s for %s (uid %u)", (unsigned long long)l->id,
		 (unsigned long long)l->size, (unsigned long long)l->offset, device_name(l->device),
		 c->client->name, c->client->creds.uid);
	struct proto_msg m = { .opcode = PROTO_OP_LEASE, .request_id = req->request_id };
	fill_lease(&m.lease, l);
	return conn_send(c, &m, l->fd);
}

/* Holder entries, as many as fit in the message after the lease records. */
struct holder_list {
	struct proto_holder *entries;
	uint32_t n, max;
};

static void add_holder(const struct share_holder_info *h, void *userdata)
{
	struct holder_list *hl = userdata;
	if (hl->n < hl->max)
		hl->entries[hl->n++] = (struct proto_holder){ h->lease_id, h->holder_lease_id,
			h->grant_id, h->uid, h->read_only ? PROTO_HOLDER_READ_ONLY : 0 };
}

_Static_assert(BROKER_TOKEN_SIZE == PROTO_TOKEN_SIZE, "one reclaim token size");

/* RECLAIMED carries the record only: the client kept its fd across the restart. */
static int handle_reclaim(struct conn *c, const struct proto_msg *req, struct error_info *err)
{
	struct lease *l;
	int r = broker_reclaim(c->client, req->reclaim.lease_id, req->reclaim.reclaim_token, &l,
			       err);
	if (r < 0)
		return r;
	log_info("lease %llu reclaimed by %s (uid %u)", (unsigned long long)l->id, c->client->name,
		 c->client->creds.uid);
	struct proto_msg m = { .opcode = PROTO_OP_RECLAIMED, .request_id = req->request_id };
	fill_lease(&m.lease, l);
	return conn_send(c, &m, -EBADF);
}

static int handle_list_leases(struct conn *c, const struct proto_msg *req)
{
	static struct proto_lease entries[PROTO_MAX_LEASES];
	static struct proto_holder holders[PROTO_MAX_HOLDERS];
	struct proto_msg m = { .opcode = PROTO_OP_LEASES, .request_id = req->request_id };
	struct lease *l;
	uint32_t n = 0;

	list_for_each(l, &c->client->leases, client_link) {
		if (n == PROTO_MAX_LEASES)
			break;
		fill_lease(&entries[n++], l);
	}
	size_t room = PROTO_MAX_MESSAGE - PROTO_HEADER_SIZE - sizeof(struct proto_wire_array) -
		      n * sizeof(struct proto_wire_lease);
	struct holder_list hl = { holders, 0,
				  (uint32_t)MIN(room / sizeof(struct proto_wire_holder), (size_t)PROTO_MAX_HOLDERS) };
	if (req->list_leases.flags & PROTO_LIST_HOLDERS)
		list_for_each(l, &c->client->leases, client_link)
			broker_lease_holders(l, add_holder, &hl);
	m.leases = (struct proto_leases){ n, entries, hl.n, holders };
	return conn_send(c, &m, -EBADF);
}

/* The first 4 hex digits of a token: enough to tell grants apart in the
 * log, far too few to use one. */
static const char *token_hint(const uint8_t *t, char buf[static 8])
{
	snprintf(buf, 8, "%02x%02x…", t[0], t[1]);
	return buf;
}

static int handle_grant(struct conn *c, const struct proto_msg *req, struct error_info *err)
{
	const struct proto_grant *g = &req->grant;
	struct grant_request gr = { .lease_id = g->lease_id, .to = (enum grant_to)g->to_kind,
				    .to_id = g->to_id, .flags = g->flags, .ttl_ms = g->ttl_ms };
	struct grant_info info;
	char hint[8];

	/* PROTO_GRANT_* and GRANT_* share their bits, PROTO_GRANT_TO_* and GRANT_TO_* their values. */
	int r = broker_grant(c->client, &gr, &info, err);
	if (r < 0)
		return r;
	char to[32];
	if (gr.to == GRANT_TO_TOKEN)
		snprintf(to, sizeof(to), "a token %s", token_hint(info.token, hint));
	else
		snprintf(to, sizeof(to), "%s %u", gr.to == GRANT_TO_UID ? "uid" : "gid", gr.to_id);
	log_info("client %s (uid %u) granted lease %llu to %s (grant %llu%s%s)", c->client->name,
		 c->client->creds.uid, (unsigned long long)g->lease_id, to,
		 (unsigned long long)info.grant_id, gr.flags & GRANT_READ_ONLY ? ", read-only" : "",
		 gr.flags & GRANT_OUTLIVE_OWNER ? ", outlives the owner" : "");
	struct proto_msg m = { .opcode = PROTO_OP_GRANTED, .request_id = req->request_id };
	m.granted = (struct proto_granted){ .grant_id = info.grant_id, .lease_id = g->lease_id };
	memcpy(m.granted.token, info.token, sizeof(m.granted.token));
	r = conn_send(c, &m, -EBADF);
	explicit_bzero(&m, sizeof(m));
	explicit_bzero(&info, sizeof(info));
	return r;
}

static int handle_open(struct conn *c, const struct proto_msg *req, struct error_info *err)
{
	const struct proto_open *o = &req->open;
	struct open_request orq = { .lease_id = o->lease_id, .by_token = o->by == PROTO_OPEN_BY_TOKEN,
				    .read_only = o->flags & PROTO_OPEN_READ_ONLY };
	struct lease *l;
	uid_t owner_uid;

	memcpy(orq.token, o->token, sizeof(orq.token));
	int r = broker_open(c->client, &orq, &l, err);
	explicit_bzero(&orq, sizeof(orq));
	if (r < 0)
		return r;
	struct proto_msg m = { .opcode = PROTO_OP_OPENED, .request_id = req->request_id };
	broker_opened_info(l, &m.opened.grant_id, &m.opened.shared_lease_id, &owner_uid);
	m.opened.owner_uid = owner_uid;
	fill_lease(&m.opened.lease, l);
	log_info("client %s (uid %u) opened lease %llu of uid %u as lease %llu (grant %llu%s)",
		 c->client->name, c->client->creds.uid, (unsigned long long)m.opened.shared_lease_id,
		 owner_uid, (unsigned long long)l->id, (unsigned long long)m.opened.grant_id,
		 l->flags & LEASE_READ_ONLY ? ", read-only" : "");
	return conn_send(c, &m, l->fd);
}

/* Sharing requests and holder lists need capability GRANT in effect. */
static bool needs_grant_cap(const struct proto_msg *req)
{
	return req->opcode == PROTO_OP_GRANT || req->opcode == PROTO_OP_OPEN ||
	       req->opcode == PROTO_OP_REVOKE_GRANT ||
	       (req->opcode == PROTO_OP_LIST_LEASES && (req->list_leases.flags & PROTO_LIST_HOLDERS));
}

/* OK, unless the request asked for none (QUIET). */
static int handle_ok(struct conn *c, const struct proto_msg *req)
{
	struct proto_msg m = { .opcode = PROTO_OP_OK, .request_id = req->request_id };
	return req->quiet ? 0 : conn_send(c, &m, -EBADF);
}

/* Returns < 0 when the connection must end (the reply is already queued). */
static int dispatch(struct conn *c, const struct proto_msg *req)
{
	struct error_info err;
	int r;

	error_clear(&err);
	if (!c->hello_done && req->opcode != PROTO_OP_HELLO) {
		error_set(&err, EPROTO, "%s before HELLO; say HELLO first", proto_op_name(req->opcode));
		conn_send_error(c, req->request_id, req->opcode, req->quiet, &err);
		return -EPROTO;
	}
	if (req->quiet && !c->quiet_ok) {
		error_set(&err, EPROTO, "%s has the QUIET flag, but your HELLO did not announce "
			  "capability QUIET", proto_op_name(req->opcode));
		conn_send_error(c, req->request_id, req->opcode, false, &err);
		return -EPROTO;
	}
	if (needs_grant_cap(req) && !c->client->shares) {
		error_set(&err, EPROTO, "%s needs capability GRANT, which your HELLO did not announce",
			  proto_op_name(req->opcode));
		conn_send_error(c, req->request_id, req->opcode, req->quiet, &err);
		return -EPROTO;
	}
	switch (req->opcode) {
	case PROTO_OP_HELLO:
		if (c->hello_done) {
			error_set(&err, EPROTO, "HELLO sent twice on one connection");
			conn_send_error(c, req->request_id, req->opcode, req->quiet, &err);
			return -EPROTO;
		}
		r = handle_hello(c, req, &err);
		if (r < 0 && err.code) {
			conn_send_error(c, req->request_id, req->opcode, req->quiet, &err);
			return r;
		}
		return r;
	case PROTO_OP_LIST_DEVICES:
		return handle_list_devices(c, req);
	case PROTO_OP_ALLOC:
		r = handle_alloc(c, req, &err);
		break;
	case PROTO_OP_RELEASE:
		if (!broker_find_lease(c->client, req->release.lease_id)) {
			r = error_set(&err, ENOENT, "you hold no lease %llu",
				      (unsigned long long)req->release.lease_id);
			break;
		}
		/* Answer first: checking the window's references and scrubbing it
		 * is the daemon's business, not the client's wait. */
		r = handle_ok(c, req);
		log_debug("lease %llu released by %s", (unsigned long long)req->release.lease_id,
			  c->client->name);
		broker_release(c->client, req->release.lease_id, &err);
		return r;
	case PROTO_OP_LIST_LEASES:
		return handle_list_leases(c, req);
	case PROTO_OP_RECLAIM:
		r = handle_reclaim(c, req, &err);
		break;
	case PROTO_OP_RESET:
		c->resets_waiting++; /* first: the answer may come from inside broker_reset() */
		r = broker_reset(c->client, req->reset.device_id, req->reset.flags & PROTO_RESET_FORCE,
				 req->reset.grace_ms, req->request_id, &err);
		if (r < 0)
			c->resets_waiting--;
		if (r == 0)
			return 0; /* answered when the device has resumed; the pause logs who asked */
		break;
	case PROTO_OP_GRANT:
		r = handle_grant(c, req, &err);
		break;
	case PROTO_OP_OPEN:
		r = handle_open(c, req, &err);
		break;
	case PROTO_OP_REVOKE_GRANT:
		r = broker_revoke_grant(c->client, req->revoke_grant.grant_id, &err);
		if (r == 0) {
			log_info("client %s (uid %u) revoked grant %llu", c->client->name,
				 c->client->creds.uid, (unsigned long long)req->revoke_grant.grant_id);
			return handle_ok(c, req);
		}
		break;
	case PROTO_OP_PAUSE_ACK:
		r = broker_pause_ack(c->client, req->pause_ack.device_id, req->pause_ack.generation, &err);
		if (r == 0) {
			log_debug("client %s acknowledged the pause of device #%u", c->client->name,
				  req->pause_ack.device_id);
			return handle_ok(c, req);
		}
		break;
	default:
		r = error_set(&err, EOPNOTSUPP, "%s is not supported by this broker",
			      proto_op_name(req->opcode));
		break;
	}
	if (r < 0 && err.code) {
		log_debug("%s from %s%s%s refused: %s", proto_op_name(req->opcode), c->client->name,
			  c->client->container ? " of container " : "",
			  c->client->container ? c->client->container->name : "", err.text);
		return conn_send_error(c, req->request_id, req->opcode, req->quiet, &err);
	}
	return r;
}

/* Replies could not go out (r): -ENOBUFS, the client's queue is full
 * because it does not read them. Disconnects it, saying so. */
static void conn_drop_unread(struct conn *c, int r)
{
	if (r == -ENOBUFS)
		log_warning("client %s does not read its replies (%u queued, limit is "
			    "%u (max-queued-events)); disconnecting it",
			    c->client ? c->client->name : "?", c->n_out,
			    conn_limits(c)->max_queued_events);
	conn_free(c);
}

/* Handles one received packet. Returns false when the connection was freed
 * or is closing: nothing more is read from it. */
static bool handle_packet(struct conn *c, const struct proto_slot *p)
{
	struct proto_msg m;
	struct proto_diag diag; /* proto_decode() fills it in */
	ssize_t n = p->len;

	if (n <= 0) {
		if (n < 0) {
			struct error_info err;
			if (n == -ETOOMANYREFS)
				error_set(&err, E2BIG, "message refused: more than %d fd attached, "
					  "the most any message carries", PROTO_MAX_FDS);
			else if (n == -EMSGSIZE)
				error_set(&err, E2BIG, "message refused: larger than the %d-byte "
					  "limit", PROTO_MAX_MESSAGE);
			else
				error_set(&err, (int)-n, "message refused: %s", strerror((int)-n));
			log_warning("Protocol error from %s: %s", c->client->name, err.text);
			conn_send_error(c, 0, 0, false, &err);
		}
		conn_free(c);
		return false;
	}
	int r = proto_decode(p->buf, (size_t)n, p->n_fds, PROTO_FROM_CLIENT, &m, &diag);
	/* No request takes fds: whatever came is closed here. */
	proto_close_fds(p->fds, p->n_fds);
	if (r < 0) {
		struct error_info err;
		error_set(&err, -r, "Protocol error: %s", diag.text);
		log_warning("Protocol error from %s (uid %u): %s", c->client->name,
			    c->client->creds.uid, diag.text);
		conn_send_error(c, m.request_id, m.opcode, false, &err);
		conn_free(c);
		return false;
	}
	r = dispatch(c, &m);
	proto_msg_clear(&m);
	if (r < 0) {
		conn_drop_unread(c, r);
		return false;
	}
	return !c->closing;
}

static void read_requests(struct conn *c, int fd)
{
	struct proto_slot *slot, failed;

	/* One recvmmsg() for all the client has sent (a pipelined RELEASE and
	 * ALLOC): no second read only to learn that nothing more is there. */
	int got = proto_receiver_recv(c->server->inbox, fd, &slot);
	if (got == -EAGAIN)
		return;
	if (got < 0) {
		failed = (struct proto_slot){ .len = got };
		slot = &failed;
		got = 1;
	}
	for (int i = 0; i < got; i++)
		if (!handle_packet(c, &slot[i])) {
			while (++i < got)
				proto_close_fds(slot[i].fds, slot[i].n_fds);
			return;
		}
}

static void on_read(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;
	struct socket_server *s = c->server;

	if (c->hello_done)
		conn_arm_idle(c);
	s->corked = c;
	read_requests(c, fd);
	if (s->corked != c)
		return; /* freed, and flushed first */
	/* The replies held back go now: they may be what fills the queue. */
	int r = conn_flush(c, NULL, 0, -EBADF);
	s->corked = NULL;
	if (r < 0 && !c->closing)
		conn_drop_unread(c, r);
}

static void on_timeout(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;
	struct error_info err;

	if (c->closing)
		return;
	if (!c->hello_done) {
		error_set(&err, ETIMEDOUT, "no HELLO within %u ms (handshake-timeout-ms)",
			  conn_limits(c)->handshake_timeout_ms);
	} else if (!list_empty(&c->client->leases) || c->resets_waiting) {
		conn_arm_idle(c); /* holding a lease or waiting for a reset is not idling */
		return;
	} else {
		error_set(&err, ETIMEDOUT, "no request and no lease for %u s (idle-timeout-s)",
			  conn_limits(c)->idle_timeout_s);
	}
	log_warning("client %s: %s; disconnecting it", c->client->name, err.text);
	conn_send_error(c, 0, 0, false, &err);
	conn_free(c);
}

static int peer_creds(int fd, struct client_creds *ret)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	*ret = (struct client_creds){ .uid = uc.uid, .gid = uc.gid, .pid = uc.pid };
	len = sizeof(ret->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, ret->groups, &len) == 0)
		ret->n_groups = len / sizeof(gid_t);
	/* More groups than we track: keep the first ones; the policy only loses matches. */
	ret->cgroup_error = peer_read_cgroup(fd, ret->pid, ret->cgroup, sizeof(ret->cgroup));
	if (ret->cgroup_error < 0)
		ret->cgroup[0] = '\0';
	return 0;
}

static void on_accept(evutil_socket_t lfd, short what, void *userdata)
{
	struct socket_server *s = userdata;
	struct client_creds creds;
	struct error_info err = {};

	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warning_errno(errno, "Failed to accept a connection: %m");
		return;
	}
	if (peer_creds(fd, &creds) < 0) {
		log_warning_errno(errno, "Failed to read a client's credentials: %m");
		close(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->server = s;
	c->fd = fd;
	list_init(&c->out);
	list_insert_tail(&s->conns, &c->link);
	if (broker_client_new(s->broker, &creds, &socket_client_ops, c, &c->client, &err) < 0) {
		log_warning("Refused a connection from uid %u pid %d: %s", creds.uid, (int)creds.pid, err.text);
		/* Best effort: the client learns why before the hang-up. */
		struct proto_msg m = { .opcode = PROTO_OP_ERROR };
		m.error.code = (uint32_t)err.code;
		snprintf(m.error.message, sizeof(m.error.message), "%s", err.text);
		uint8_t buf[PROTO_MAX_MESSAGE];
		int n = proto_encode(&m, buf, sizeof(buf), NULL);
		if (n > 0)
			(void)proto_send(fd, buf, (size_t)n, NULL, 0);
		conn_free(c);
		return;
	}
	c->ev_read = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->ev_write = event_new(s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	c->ev_timeout = evtimer_new(s->base, on_timeout, c);
	c->ev_close = evtimer_new(s->base, on_close, c);
	if (!c->ev_read || !c->ev_write || !c->ev_timeout || !c->ev_close) {
		conn_free(c);
		return;
	}
	uint32_t ms = broker_config(s->broker)->limits.handshake_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_add(c->ev_read, NULL);
	if (ms)
		event_add(c->ev_timeout, &tv);
}

static int listen_on(const struct socket_options *opts)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(opts->path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, opts->path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file left by a previous run would make bind() fail. */
	(void)unlink(opts->path);
	mode_t old = umask(0777 & ~opts->mode);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0)
		goto fail;
	if (chmod(opts->path, opts->mode) < 0)
		goto fail;
	if (opts->gid != (gid_t)-1 && chown(opts->path, (uid_t)-1, opts->gid) < 0)
		goto fail;
	return fd;
fail:
	r = -errno;
	close(fd);
	return r;
}

int socket_server_new(struct event_base *base, struct broker *b, const struct socket_options *opts,
		      struct socket_server **ret)
{
	struct socket_server *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->base = base;
	s->broker = b;
	list_init(&s->conns);
	r = proto_receiver_new(MESSAGES_PER_WAKEUP, PROTO_MAX_FDS, &s->inbox);
	if (r < 0) {
		free(s);
		return r;
	}
	if (opts->listen_fd >= 0) {
		s->listen_fd = opts->listen_fd;
		(void)fcntl(s->listen_fd, F_SETFL, fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK);
	} else {
		s->listen_fd = listen_on(opts);
		if (s->listen_fd < 0) {
			r = s->listen_fd;
			proto_receiver_free(s->inbox);
			free(s);
			return r;
		}
		s->path = strdup(opts->path);
	}
	s->ev_accept = event_new(base, s->listen_fd, EV_READ | EV_PERSIST, on_accept, s);
	if (!s->ev_accept || event_add(s->ev_accept, NULL) < 0) {
		socket_server_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

struct socket_server *socket_server_free(struct socket_server *s)
{
	struct conn *c, *tmp;

	if (!s)
		return NULL;
	list_for_each_safe(c, tmp, &s->conns, link)
		conn_free(c);
	if (s->ev_accept)
		event_free(s->ev_accept);
	safe_close(s->listen_fd);
	if (s->path) {
		unlink(s->path);
		free(s->path);
	}
	proto_receiver_free(s->inbox);
	free(s);
	return NULL;
}

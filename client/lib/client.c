// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/lib/private.h"
#include "common/poison.h"

#define QUEUED_EVENTS_MAX 1024

/* True (and forgets it) when id belongs to a request nobody waits for. */
static bool take_unanswered(struct barkeep *bk, uint32_t id)
{
	for (size_t i = 0; i < bk->n_unanswered; i++)
		if (bk->unanswered[i] == id) {
			bk->unanswered[i] = bk->unanswered[--bk->n_unanswered];
			return true;
		}
	return false;
}

int bk_fail(struct barkeep *bk, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(bk->error, sizeof(bk->error), fmt, ap);
	va_end(ap);
	return r;
}

/* Why the last barkeep_connect() of this thread failed. */
static __thread char connect_error[PROTO_ERROR_MESSAGE_MAX + 64];

const char *barkeep_error_message(const struct barkeep *bk)
{
	return bk ? bk->error : connect_error;
}

bool bk_shares(const struct barkeep *bk)
{
	return bk->server_caps & PROTO_CAP_GRANT;
}

int barkeep_get_fd(const struct barkeep *bk)
{
	return bk->fd;
}

void barkeep_set_event_handler(struct barkeep *bk, barkeep_event_fn fn, void *userdata)
{
	bk->handler = fn;
	bk->handler_data = userdata;
}

static bool to_event(const struct proto_msg *m, struct barkeep_event *ev)
{
	*ev = (struct barkeep_event){};
	switch (m->opcode) {
	case PROTO_OP_DEVICE_PAUSE:
		*ev = (struct barkeep_event){ BARKEEP_EVENT_DEVICE_PAUSE, m->device_pause.device_id, 0,
			m->device_pause.generation, m->device_pause.reason, m->device_pause.flags,
			m->device_pause.deadline_ms };
		return true;
	case PROTO_OP_DEVICE_RESUME:
		*ev = (struct barkeep_event){ .type = BARKEEP_EVENT_DEVICE_RESUME,
			.device_id = m->device_resume.device_id, .generation = m->device_resume.generation,
			.flags = m->device_resume.flags };
		return true;
	case PROTO_OP_DEVICE_GONE:
		*ev = (struct barkeep_event){ .type = BARKEEP_EVENT_DEVICE_GONE,
			.device_id = m->device_gone.device_id, .reason = m->device_gone.reason };
		return true;
	case PROTO_OP_LEASE_REVOKED:
		*ev = (struct barkeep_event){ .type = BARKEEP_EVENT_LEASE_REVOKED,
			.device_id = m->lease_revoked.device_id, .lease_id = m->lease_revoked.lease_id,
			.reason = m->lease_revoked.reason };
		return true;
	case PROTO_OP_GRANT_REVOKED:
		*ev = (struct barkeep_event){ .type = BARKEEP_EVENT_GRANT_REVOKED,
			.device_id = m->grant_revoked.device_id, .lease_id = m->grant_revoked.lease_id,
			.reason = m->grant_revoked.reason, .grant_id = m->grant_revoked.grant_id };
		return true;
	}
	return false;
}

void bk_compact_queue(struct barkeep *bk)
{
	if (bk->q_head == 0)
		return;
	memmove(bk->queue, bk->queue + bk->q_head, (bk->n_queued - bk->q_head) * sizeof(*bk->queue));
	bk->n_queued -= bk->q_head;
	bk->q_head = 0;
}

int bk_queue_event(struct barkeep *bk, const struct barkeep_event *ev)
{
	if (bk->q_head == bk->n_queued)
		bk->q_head = bk->n_queued = 0;
	if (bk->n_queued == bk->queue_cap)
		bk_compact_queue(bk); /* delivered entries at the front make room */
	if (bk->n_queued == bk->queue_cap) {
		if (bk->queue_cap >= QUEUED_EVENTS_MAX)
			return bk_fail(bk, -ENOBUFS,
				       "more than %d events arrived while waiting for a reply",
				       QUEUED_EVENTS_MAX);
		size_t cap = bk->queue_cap ? bk->queue_cap * 2 : 16;
		struct barkeep_event *q = realloc(bk->queue, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		bk->queue = q;
		bk->queue_cap = cap;
	}
	bk->queue[bk->n_queued++] = *ev;
	return 0;
}

enum read_mode {
	READ_NOW,  /* what is there, else -EAGAIN */
	READ_WAIT, /* until a message comes */
};

/* Reads one message. The fd that rides with it (if any) goes to *ret_fd.
 * The socket blocks (bk_open), so a wait costs no poll(); a caller that
 * made it non-blocking gets one. */
static int read_message(struct barkeep *bk, enum read_mode mode, struct proto_msg *ret, int *ret_fd)
{
	uint8_t buf[PROTO_MAX_MESSAGE];
	struct proto_diag diag;
	int fds[PROTO_MAX_FDS];
	size_t n_fds = 0;
	ssize_t n;
	bool block = mode == READ_WAIT;

	if (block && bk->reply_timeout_ms > 0) {
		struct pollfd p = { .fd = bk->fd, .events = POLLIN };
		int r = poll(&p, 1, bk->reply_timeout_ms);
		if (r == 0)
			return bk_fail(bk, -ETIMEDOUT, "the broker at %s did not answer within %d ms",
				       bk->path, bk->reply_timeout_ms);
		if (r < 0 && errno != EINTR)
			return bk_fail(bk, -errno, "poll on the broker socket failed: %s",
				       strerror(errno));
	}
	for (;;) {
		n = proto_recv_flags(bk->fd, block ? 0 : MSG_DONTWAIT, buf, sizeof(buf), fds,
				     PROTO_MAX_FDS, &n_fds);
		if (n != -EAGAIN || !block)
			break;
		struct pollfd p = { .fd = bk->fd, .events = POLLIN };
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return bk_fail(bk, -errno, "poll on the broker socket failed: %s",
				       strerror(errno));
	}
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n == 0)
		return bk_fail(bk, -ECONNRESET, "the broker closed the connection");
	if (n < 0)
		return bk_fail(bk, (int)n, "cannot read from the broker: %s", strerror((int)-n));
	int r = proto_decode(buf, (size_t)n, n_fds, PROTO_FROM_SERVER, ret, &diag);
	if (r < 0) {
		proto_close_fds(fds, n_fds);
		return bk_fail(bk, r, "the broker sent a malformed message: %s", diag.text);
	}
	*ret_fd = n_fds ? fds[0] : -EBADF;
	return 0;
}

/* Numbers and sends a request, waiting for room in the socket if need be. */
static int send_request(struct barkeep *bk, struct proto_msg *req)
{
	uint8_t buf[PROTO_MAX_MESSAGE];
	struct proto_diag diag;
	int r;

	bk->error[0] = '\0';
	req->request_id = bk->next_request++;
	if (bk->next_request == 0)
		bk->next_request = 1;
	r = proto_encode(req, buf, sizeof(buf), &diag);
	if (r < 0)
		return bk_fail(bk, r, "invalid request: %s", diag.text);
	size_t len = (size_t)r;
	for (;;) {
		r = proto_send(bk->fd, buf, len, NULL, 0);
		if (r != -EAGAIN)
			break;
		struct pollfd p = { .fd = bk->fd, .events = POLLOUT };
		(void)poll(&p, 1, -1);
	}
	if (r < 0)
		return bk_fail(bk, r, "cannot send to the broker: %s", strerror(-r));
	return 0;
}

/* A send or read failed with r because the broker hung up (a read reports
 * the hang-up once, before what is still queued). It may have said why just
 * before (a connection it refuses at once, e.g. over max-clients): then
 * that ERROR is the failure, else r stays. */
static int error_before_hangup(struct barkeep *bk, int r)
{
	struct proto_msg m;
	int fd = -EBADF;
	char why[sizeof(bk->error)];

	if (r != -EPIPE && r != -ECONNRESET)
		return r;
	memcpy(why, bk->error, sizeof(why));
	if (read_message(bk, READ_NOW, &m, &fd) < 0) {
		memcpy(bk->error, why, sizeof(why));
		return r;
	}
	safe_close(fd);
	if (m.opcode == PROTO_OP_ERROR && m.error.code)
		r = bk_fail(bk, -(int)m.error.code, "%s", m.error.message);
	else
		memcpy(bk->error, why, sizeof(why));
	proto_msg_clear(&m);
	return r;
}

/* Sends a request and waits for its reply, queueing events that come first.
 * An ERROR reply becomes -code with its message kept. */
int bk_request_once(struct barkeep *bk, struct proto_msg *req, struct proto_msg *ret, int *ret_fd)
{
	int r, fd = -EBADF;

	r = send_request(bk, req);
	if (r < 0)
		return error_before_hangup(bk, r);

	for (;;) {
		r = read_message(bk, READ_WAIT, ret, &fd);
		if (r == -ECONNRESET)
			return error_before_hangup(bk, r);
		if (r < 0)
			return r;
		struct barkeep_event ev;
		if (to_event(ret, &ev)) {
			proto_msg_clear(ret);
			bk_note_event(bk, &ev);
			r = bk_queue_event(bk, &ev);
			if (r < 0)
				return r;
			continue;
		}
		/* An ERROR for a QUIET release: that lease had ended anyway. */
		if (ret->request_id != req->request_id &&
		    (ret->quiet || take_unanswered(bk, ret->request_id))) {
			proto_msg_clear(ret);
			fd = safe_close(fd);
			continue;
		}
		if (ret->request_id != req->request_id && ret->request_id != 0) {
			proto_msg_clear(ret);
			fd = safe_close(fd);
			return bk_fail(bk, -EPROTO,
				       "the broker answered request %u while %u was waiting",
				       ret->request_id, req->request_id);
		}
		break;
	}
	if (ret->opcode == PROTO_OP_ERROR) {
		r = -(int)ret->error.code;
		bk_fail(bk, r ? r : -EIO, "%s", ret->error.message);
		proto_msg_clear(ret);
		safe_close(fd);
		return r ? r : -EIO;
	}
	if (ret->opcode != proto_op_reply(req->opcode)) {
		uint16_t op = ret->opcode;
		proto_msg_clear(ret);
		safe_close(fd);
		return bk_fail(bk, -EPROTO, "the broker answered %s with %s",
			       proto_op_name(req->opcode), proto_op_name(op));
	}
	if (ret_fd)
		*ret_fd = fd;
	else
		safe_close(fd);
	return 0;
}

/* A request that meets a broken connection, in reconnect mode: reconnect
 * (reclaiming the leases) and try once more. */
int bk_request(struct barkeep *bk, struct proto_msg *req, struct proto_msg *ret, int *ret_fd)
{
	int r = bk_request_once(bk, req, ret, ret_fd);
	if (!bk_should_reconnect(bk, r))
		return r;
	r = bk_reconnect(bk);
	if (r < 0)
		return r;
	return bk_request_once(bk, req, ret, ret_fd);
}

int barkeep_connect(const char *path, const char *name, struct barkeep **ret)
{
	return barkeep_connect_with(path, name, 0, ret);
}

/* A connected socket to bk->path, or -errno with the reason in bk->error. */
static int connect_socket(struct barkeep *bk)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return bk_fail(bk, -errno, "cannot create a socket: %s", strerror(errno));
	memcpy(sa.sun_path, bk->path, sizeof(bk->path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		return bk_fail(bk, r, "cannot connect to %s: %s%s", bk->path, strerror(-r),
			       r == -ENOENT || r == -ECONNREFUSED ? " (is barkeepd running?)" :
			       r == -EACCES ? " (are you in the socket's group?)" : "");
	}
	/* Connected without waiting for a full backlog; from now on it blocks,
	 * so that waiting for a reply is one recvmsg(), and reads that must
	 * not wait say MSG_DONTWAIT. */
	if (fcntl(fd, F_SETFL, 0) < 0)
		return bk_fail(bk, -errno, "cannot make the socket blocking: %s", strerror(errno));
	return TAKE_FD(fd);
}

static int say_hello(struct barkeep *bk)
{
	struct proto_msg req = { .opcode = PROTO_OP_HELLO }, rep;

	req.hello.min_version = PROTO_VERSION_MIN;
	req.hello.max_version = PROTO_VERSION_MAX;
	/* RECLAIM: this library knows DEVICE_GONE reason SHUTDOWN; QUIET: it
	 * tells the ERROR of a quiet RELEASE from the reply it waits for. */
	req.hello.capabilities = PROTO_CAP_PAUSE_ACK | PROTO_CAP_RECLAIM | PROTO_CAP_GRANT |
				 PROTO_CAP_QUIET |
				 (bk->flags & BARKEEP_CONNECT_WATCH ? PROTO_CAP_WATCH : 0);
	memcpy(req.hello.name, bk->name, sizeof(req.hello.name));
	/* A broker that accepted but hangs must not hang us: the one wait
	 * with an end. */
	bk->reply_timeout_ms = BK_HELLO_TIMEOUT_MS;
	int r = bk_request_once(bk, &req, &rep, NULL);
	bk->reply_timeout_ms = 0;
	if (r < 0)
		return r;
	bk->server_caps = rep.welcome.capabilities;
	proto_msg_clear(&rep);
	if ((bk->flags & BARKEEP_CONNECT_WATCH) && !(bk->server_caps & PROTO_CAP_WATCH))
		return bk_fail(bk, -EOPNOTSUPP,
			       "the broker at %s does not send the events of every device (no WATCH)",
			       bk->path);
	return 0;
}

int bk_open(struct barkeep *bk)
{
	int old = bk->fd, r;

	bk->fd = connect_socket(bk);
	if (bk->fd < 0) {
		r = bk->fd;
		bk->fd = old;
		return r;
	}
	r = say_hello(bk);
	if (r < 0) {
		safe_close(bk->fd);
		bk->fd = old;
		return r;
	}
	/* Keep the fd number callers poll on; dup3() closes the old socket. */
	if (old >= 0 && dup3(bk->fd, old, O_CLOEXEC) >= 0) {
		safe_close(bk->fd);
		bk->fd = old;
	} else {
		safe_close(old);
	}
	return 0;
}

int barkeep_connect_with(const char *path, const char *name, uint32_t flags, struct barkeep **ret)
{
	const uint32_t known = BARKEEP_CONNECT_WATCH | BARKEEP_CONNECT_RECONNECT;
	struct barkeep *bk;
	int r;

	if (flags & ~known) {
		snprintf(connect_error, sizeof(connect_error), "unknown connect flags %#x", flags);
		return -EINVAL;
	}
	if (!path)
		path = getenv(BARKEEP_SOCKET_ENV);
	if (!path || !*path)
		path = BARKEEP_DEFAULT_SOCKET;
	bk = calloc(1, sizeof(*bk));
	if (!bk)
		return -ENOMEM;
	if (strlen(path) >= sizeof(bk->path)) {
		free(bk);
		return -ENAMETOOLONG;
	}
	strcpy(bk->path, path);
	snprintf(bk->name, sizeof(bk->name), "%s", name ? name : program_invocation_short_name);
	bk->fd = -EBADF;
	bk->next_request = 1;
	bk->flags = flags;
	bk->reconnect_timeout_ms = BK_RECONNECT_TIMEOUT_MS;
	list_init(&bk->leases);
	r = bk_open(bk);
	if (r < 0) {
		/* Keep the broker's reason for the caller: it is the useful part. */
		snprintf(connect_error, sizeof(connect_error), "%s", bk->error);
		barkeep_disconnect(bk);
		return r;
	}
	*ret = bk;
	return 0;
}

void barkeep_disconnect(struct barkeep *bk)
{
	if (!bk)
		return;
	bk_untrack_all(bk);
	safe_close(bk->fd);
	free(bk->queue);
	if (bk->spare)
		mem_unpoison(bk->spare, sizeof(*bk->spare));
	free(bk->spare);
	free(bk);
}

/* The handler may call requests (barkeep_ack_pause), which queue the events
 * that overtake their replies: take events one at a time, queue first. */
int barkeep_dispatch(struct barkeep *bk)
{
	int delivered = 0;

	for (;;) {
		struct barkeep_event ev;
		if (bk->q_head < bk->n_queued) {
			ev = bk->queue[bk->q_head++];
		} else {
			struct proto_msg m;
			int fd = -EBADF;
			int r = read_message(bk, READ_NOW, &m, &fd);
			if (r == -EAGAIN)
				return delivered;
			if (bk_should_reconnect(bk, r)) {
				r = bk_reconnect(bk); /* queues RECONNECTED */
				if (r < 0)
					return r;
				continue;
			}
			if (r < 0)
				return r;
			safe_close(fd);
			bool is_event = to_event(&m, &ev);
			if (is_event)
				bk_note_event(bk, &ev);
			bool expected = !is_event && (m.quiet || take_unanswered(bk, m.request_id));
			proto_msg_clear(&m);
			if (expected)
				continue;
			if (!is_event)
				return bk_fail(bk, -EPROTO,
					       "the broker sent a reply nobody asked for");
		}
		if (bk->handler)
			bk->handler(bk, &ev, bk->handler_data);
		delivered++;
	}
}

static void from_wire_device(struct barkeep_device *d, const struct proto_device *w)
{
	*d = (struct barkeep_device){
		.id = w->id, .pci_vendor = w->pci_vendor, .pci_device = w->pci_device,
		.backend = (enum barkeep_backend)w->backend, .state = (enum barkeep_device_state)w->state,
		.bar_index = w->bar_index, .granule = w->granule, .bar_size = w->bar_size,
		.free_bytes = w->free_bytes, .largest_free = w->largest_free,
		.generation = w->generation, .features = w->features,
	};
	snprintf(d->pci_address, sizeof(d->pci_address), "%s", w->pci_address);
	snprintf(d->label, sizeof(d->label), "%s", w->label);
}

int barkeep_list_devices(struct barkeep *bk, struct barkeep_device **ret, size_t *ret_n)
{
	struct proto_msg req = { .opcode = PROTO_OP_LIST_DEVICES }, rep;
	int r = bk_request(bk, &req, &rep, NULL);
	if (r < 0)
		return r;
	struct barkeep_device *d = calloc(rep.devices.count ? rep.devices.count : 1, sizeof(*d));
	if (!d) {
		proto_msg_clear(&rep);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < rep.devices.count; i++)
		from_wire_device(&d[i], &rep.devices.entries[i]);
	*ret = d;
	*ret_n = rep.devices.count;
	proto_msg_clear(&rep);
	return 0;
}

void bk_from_wire_lease(struct barkeep_lease *l, const struct proto_lease *w, int fd)
{
	*l = (struct barkeep_lease){
		.id = w->id, .device_id = w->device_id, .flags = w->flags, .bar_offset = w->bar_offset,
		.size = w->size, .generation = w->generation, .has_image = w->image.n_planes > 0,
		.fd = fd,
	};
	l->image = (struct barkeep_image){ w->image.fourcc, w->image.width, w->image.height,
					   w->image.n_planes, w->image.modifier };
	memcpy(l->image.offsets, w->image.offsets, sizeof(l->image.offsets));
	memcpy(l->image.strides, w->image.strides, sizeof(l->image.strides));
	memcpy(l->reclaim_token, w->reclaim_token, sizeof(l->reclaim_token));
}

int barkeep_alloc(struct barkeep *bk, const struct barkeep_alloc_params *p, struct barkeep_lease **ret)
{
	struct proto_msg req = { .opcode = PROTO_OP_ALLOC }, rep;
	struct proto_alloc *a = &req.alloc;
	int fd = -EBADF, r;

	if (p->by_id) {
		a->selector = PROTO_SELECT_ID;
		a->device_id = p->device_id;
	} else if (p->device && *p->device) {
		a->selector = PROTO_SELECT_PCI_ADDRESS;
		if (strlen(p->device) >= sizeof(a->pci_address))
			return bk_fail(bk, -EINVAL, "device '%s' is too long for a PCI address",
				       p->device);
		strcpy(a->pci_address, p->device);
	} else {
		a->selector = PROTO_SELECT_ANY;
	}
	a->size = p->size;
	a->alignment = p->alignment;
	a->flags = p->flags;
	if (p->image) {
		a->flags |= PROTO_ALLOC_IMAGE;
		a->image = (struct proto_image){ p->image->fourcc, p->image->width, p->image->height,
						 p->image->n_planes, p->image->modifier };
		memcpy(a->image.offsets, p->image->offsets, sizeof(a->image.offsets));
		memcpy(a->image.strides, p->image->strides, sizeof(a->image.strides));
	}
	r = bk_request(bk, &req, &rep, &fd);
	if (r < 0)
		return r;
	struct bk_lease *l = bk->spare ? bk->spare : calloc(1, sizeof(*l));
	if (!l) {
		safe_close(fd);
		proto_msg_clear(&rep);
		return -ENOMEM;
	}
	bk->spare = NULL;
	mem_unpoison(l, sizeof(*l));
	*l = (struct bk_lease){};
	bk_from_wire_lease(&l->pub, &rep.lease, fd);
	proto_msg_clear(&rep);
	bk_track(bk, l);
	*ret = &l->pub;
	return 0;
}

void barkeep_lease_free(struct barkeep_lease *lease)
{
	if (!lease)
		return;
	bk_untrack(lease);
	safe_close(lease->fd);
	free(container_of(lease, struct bk_lease, pub));
}

/* A request answered by OK: with or without the reconnecting retry. */
static int ok_request(struct barkeep *bk, struct proto_msg *req, bool retry)
{
	struct proto_msg rep;
	int r = retry ? bk_request(bk, req, &rep, NULL) : bk_request_once(bk, req, &rep, NULL);
	if (r == 0)
		proto_msg_clear(&rep);
	return r;
}

int barkeep_release(struct barkeep *bk, struct barkeep_lease *lease)
{
	struct proto_msg req = { .opcode = PROTO_OP_RELEASE };
	int r;

	req.release.lease_id = lease->id;
	/* Close our fd first: the broker can then reuse the window at once;
	 * and a reconnection must not take the lease back. */
	lease->fd = safe_close(lease->fd);
	bk_untrack(lease);
	/* The broker handles one connection's requests in order, so later
	 * requests already see the window released: no need to wait for the
	 * OK. A broker with QUIET sends none; otherwise it is read later,
	 * unless too many answers are outstanding. */
	if (bk->server_caps & PROTO_CAP_QUIET) {
		req.quiet = true;
		r = send_request(bk, &req);
	} else if (bk->n_unanswered == ARRAY_SIZE(bk->unanswered)) {
		r = ok_request(bk, &req, false);
	} else {
		r = send_request(bk, &req);
		if (r == 0)
			bk->unanswered[bk->n_unanswered++] = req.request_id;
	}
	/* The lease ended with the broken connection (the restarted broker
	 * drops its orphan); reconnect for the others. */
	if (bk_should_reconnect(bk, r))
		r = bk_reconnect(bk);
	if (bk->spare) {
		barkeep_lease_free(lease);
	} else {
		bk->spare = container_of(lease, struct bk_lease, pub);
		mem_poison(bk->spare, sizeof(*bk->spare)); /* a use after release stays one */
	}
	return r;
}

int barkeep_list_leases(struct barkeep *bk, struct barkeep_lease **ret, size_t *ret_n)
{
	struct proto_msg req = { .opcode = PROTO_OP_LIST_LEASES }, rep;
	int r = bk_request(bk, &req, &rep, NULL);
	if (r < 0)
		return r;
	struct barkeep_lease *l = calloc(rep.leases.count ? rep.leases.count : 1, sizeof(*l));
	if (!l) {
		proto_msg_clear(&rep);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < rep.leases.count; i++)
		bk_from_wire_lease(&l[i], &rep.leases.entries[i], -1);
	*ret = l;
	*ret_n = rep.leases.count;
	proto_msg_clear(&rep);
	return 0;
}

int barkeep_ack_pause(struct barkeep *bk, uint32_t device_id, uint64_t generation)
{
	struct proto_msg req = { .opcode = PROTO_OP_PAUSE_ACK };
	req.pause_ack = (struct proto_pause_ack){ device_id, generation };
	return ok_request(bk, &req, true);
}

int barkeep_reset(struct barkeep *bk, uint32_t device_id, bool force, uint32_t grace_ms)
{
	struct proto_msg req = { .opcode = PROTO_OP_RESET };
	req.reset = (struct proto_reset){ device_id, force ? PROTO_RESET_FORCE : 0, grace_ms };
	return ok_request(bk, &req, true);
}

const char *barkeep_event_reason(const struct barkeep_event *ev)
{
	static const char *const device_reasons[] = { NULL, "admin", "device-error", "unplug",
						      "shutdown" };
	static const char *const lease_reasons[] = { NULL, "admin", "policy", "owner-released" };

	switch (ev->type) {
	case BARKEEP_EVENT_DEVICE_PAUSE:
	case BARKEEP_EVENT_DEVICE_GONE:
		if (ev->reason < ARRAY_SIZE(device_reasons) && device_reasons[ev->reason])
			return device_reasons[ev->reason];
		break;
	case BARKEEP_EVENT_LEASE_REVOKED:
		if (ev->reason == BARKEEP_REVOKE_LOST)
			return "lost";
		if (ev->reason < ARRAY_SIZE(lease_reasons) && lease_reasons[ev->reason])
			return lease_reasons[ev->reason];
		break;
	default:
		break;
	}
	return "unknown";
}

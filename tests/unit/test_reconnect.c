/* SPDX-License-Identifier: MIT */
/*
 * libbarkeep's reconnection (BARKEEP_CONNECT_RECONNECT) and barkeep_reclaim()
 * against a real AF_UNIX SOCK_SEQPACKET listener in this process: a thread
 * that speaks the protocol through the shared codec, hangs up after a given
 * number of replies (a broker restart, as the client sees it) and then takes
 * the next connection. Its "leases" are memfds; what is tested is the
 * library's side of the wire, not the broker's.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"
#include "common/poison.h"
#include "proto/codec.h"
#include "unit.h"

#define MAX_SESSIONS 3

struct server {
	int listen_fd;
	char path[108];
	pthread_t thread;
	/* per session (connection), in order: */
	unsigned n_sessions;
	unsigned hangup_after[MAX_SESSIONS]; /* replies, then close; 0: until the client does */
	uint64_t caps[MAX_SESSIONS];         /* WELCOME capabilities */
	bool stop_listening;                 /* after the first session: no broker comes back */
	uint64_t refuse_id;                  /* RECLAIM of this lease gets ENOENT */
	bool pause_after_reclaim;            /* DEVICE_PAUSE after the first RECLAIMED */
	/* what the server saw */
	uint64_t next_id;
	char hello_name[PROTO_NAME_MAX + 1];
	uint64_t hello_caps;
	unsigned n_hellos, n_reclaims;
	uint64_t held[8]; /* lease ids of the current session */
	unsigned n_held;
};

static void token_of(uint64_t id, uint8_t token[PROTO_TOKEN_SIZE])
{
	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
		token[i] = (uint8_t)(id * 31 + i);
}

static struct proto_lease lease_record(uint64_t id)
{
	struct proto_lease l = { .id = id, .device_id = 1, .bar_offset = id << 20,
				 .size = 1 << 20, .generation = 1 };
	token_of(id, l.reclaim_token);
	return l;
}

static int send_msg(int fd, struct proto_msg *m, int out_fd)
{
	uint8_t buf[PROTO_MAX_MESSAGE];
	int n = proto_encode(m, buf, sizeof(buf), NULL);
	if (n < 0)
		return n;
	return proto_send(fd, buf, (size_t)n, out_fd >= 0 ? &out_fd : NULL, out_fd >= 0);
}

static void answer_reclaim(struct server *s, const struct proto_msg *req, struct proto_msg *rep)
{
	uint8_t token[PROTO_TOKEN_SIZE];

	token_of(req->reclaim.lease_id, token);
	s->n_reclaims++;
	if (req->reclaim.lease_id == s->refuse_id ||
	    memcmp(token, req->reclaim.reclaim_token, sizeof(token)) != 0) {
		rep->opcode = PROTO_OP_ERROR;
		rep->error = (struct proto_error){ .code = ENOENT, .request_opcode = req->opcode };
		snprintf(rep->error.message, sizeof(rep->error.message),
			 "no orphaned lease %llu for this token and uid",
			 (unsigned long long)req->reclaim.lease_id);
		return;
	}
	rep->opcode = PROTO_OP_RECLAIMED;
	rep->lease = lease_record(req->reclaim.lease_id);
	rep->lease.generation = 2; /* the broker's record wins */
	s->held[s->n_held++] = req->reclaim.lease_id;
}

/* Answers one request; returns the fd to send with it or -EBADF. */
static int answer(struct server *s, unsigned session, const struct proto_msg *req,
		  struct proto_msg *rep, struct proto_lease *leases)
{
	*rep = (struct proto_msg){ .opcode = proto_op_reply(req->opcode),
				   .request_id = req->request_id };
	switch (req->opcode) {
	case PROTO_OP_HELLO:
		s->n_hellos++;
		s->hello_caps = req->hello.capabilities;
		memcpy(s->hello_name, req->hello.name, sizeof(s->hello_name));
		rep->welcome = (struct proto_welcome){ .version = 1,
			.max_message_size = PROTO_MAX_MESSAGE, .max_fds = 1, .max_leases = 8,
			.max_queued_events = 64, .max_lease_bytes = UINT64_MAX,
			.capabilities = s->caps[session] };
		strcpy(rep->welcome.server_name, "test server");
		return -EBADF;
	case PROTO_OP_ALLOC:
		rep->lease = lease_record(++s->next_id);
		s->held[s->n_held++] = s->next_id;
		return memfd_create("test-lease", MFD_CLOEXEC);
	case PROTO_OP_RECLAIM:
		answer_reclaim(s, req, rep);
		return -EBADF;
	case PROTO_OP_LIST_LEASES:
		for (unsigned i = 0; i < s->n_held; i++)
			leases[i] = lease_record(s->held[i]);
		rep->leases = (struct proto_leases){ s->n_held, leases };
		return -EBADF;
	case PROTO_OP_RELEASE:
		return -EBADF; /* OK */
	}
	rep->opcode = PROTO_OP_ERROR;
	rep->error = (struct proto_error){ .code = EOPNOTSUPP, .request_opcode = req->opcode };
	return -EBADF;
}

/* Serves one connection until its hang-up point or the client's close. */
static void serve_session(struct server *s, unsigned session, int fd)
{
	uint8_t buf[PROTO_MAX_MESSAGE];
	struct proto_lease leases[8];
	unsigned replies = 0;

	s->n_held = 0;
	for (;;) {
		int fds[PROTO_MAX_FDS];
		size_t n_fds = 0;
		struct proto_msg req, rep;
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (s->hangup_after[session] && replies == s->hangup_after[session])
			return;
		(void)poll(&p, 1, 5000);
		ssize_t n = proto_recv(fd, buf, sizeof(buf), fds, PROTO_MAX_FDS, &n_fds);
		if (n == -EAGAIN)
			continue;
		if (n <= 0)
			return;
		if (proto_decode(buf, (size_t)n, n_fds, PROTO_FROM_CLIENT, &req, NULL) < 0)
			return;
		int out = answer(s, session, &req, &rep, leases);
		proto_msg_clear(&req);
		int r = send_msg(fd, &rep, out);
		safe_close(out);
		if (r < 0)
			return;
		replies++;
		/* The restarted broker pauses the device of the lease just
		 * reclaimed, before the client has reclaimed the rest. */
		if (rep.opcode == PROTO_OP_RECLAIMED && s->pause_after_reclaim && s->n_held == 1 &&
		    send_msg(fd, &(struct proto_msg){ .opcode = PROTO_OP_DEVICE_PAUSE,
				.device_pause = { .device_id = 1, .generation = 2, .reason = PROTO_REASON_ADMIN,
						  .deadline_ms = 1000 } }, -EBADF) < 0)
			return;
	}
}

static void *server_main(void *userdata)
{
	struct server *s = userdata;

	for (unsigned i = 0; i < s->n_sessions; i++) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			break;
		serve_session(s, i, fd);
		close(fd);
		if (s->stop_listening) {
			s->listen_fd = safe_close(s->listen_fd);
			unlink(s->path);
			break;
		}
	}
	return NULL;
}

static int server_start(struct server *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(s->path, sizeof(s->path), "/tmp/barkeep-test-reconnect.%d.sock", (int)getpid());
	strcpy(sa.sun_path, s->path);
	unlink(s->path);
	s->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s->listen_fd, 8) < 0)
		return -errno;
	return -pthread_create(&s->thread, NULL, server_main, s);
}

static void server_stop(struct server *s)
{
	pthread_join(s->thread, NULL);
	safe_close(s->listen_fd);
	unlink(s->path);
}

/* A server for two connections: the first hangs up after hangup replies. */
static void server_two_sessions(struct server *s, unsigned hangup, uint64_t second_caps)
{
	*s = (struct server){ .n_sessions = 2, .hangup_after = { hangup, 0 },
			      .caps = { PROTO_CAP_RECLAIM | PROTO_CAP_PAUSE_ACK, second_caps } };
}

struct seen {
	struct barkeep_event ev[8];
	unsigned n;
};

static void on_event(struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	struct seen *seen = userdata;

	if (seen->n < ARRAY_SIZE(seen->ev))
		seen->ev[seen->n++] = *ev;
}

/* Waits for the hang-up and dispatches until RECONNECTED (and what follows
 * it in the same batch) was delivered. Returns the last dispatch result. */
static int dispatch_until_reconnected(struct barkeep *bk, struct seen *seen)
{
	int r = 0;

	for (int i = 0; i < 50; i++) {
		struct pollfd p = { .fd = barkeep_get_fd(bk), .events = POLLIN };
		(void)poll(&p, 1, 100);
		r = barkeep_dispatch(bk);
		if (r < 0)
			return r;
		for (unsigned k = 0; k < seen->n; k++)
			if (seen->ev[k].type == BARKEEP_EVENT_RECONNECTED)
				return r;
	}
	return -ETIMEDOUT;
}

static struct barkeep *connect_to(const struct server *s, uint32_t flags, struct seen *seen)
{
	struct barkeep *bk = NULL;
	int r = barkeep_connect_with(s->path, "reconnector", flags, &bk);

	CHECK_EQ(r, 0);
	if (r < 0)
		fprintf(stderr, "  connect: %s\n", barkeep_error_message(NULL));
	else if (seen)
		barkeep_set_event_handler(bk, on_event, seen);
	return bk;
}

static struct barkeep_lease *alloc_1m(struct barkeep *bk)
{
	struct barkeep_alloc_params p = { .size = 1 << 20 };
	struct barkeep_lease *l = NULL;

	CHECK_EQ(barkeep_alloc(bk, &p, &l), 0);
	return l;
}

/* LIST_LEASES names exactly the lease id. */
static void check_listed_alone(struct barkeep *bk, uint64_t id)
{
	struct barkeep_lease *list = NULL;
	size_t n = 0;

	CHECK_EQ(barkeep_list_leases(bk, &list, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(n == 1 && list[0].id == id);
	free(list);
}

static ino_t inode_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static void test_reconnect_reclaims_and_reports_lost(void)
{
	struct server s;
	struct seen seen = {};

	server_two_sessions(&s, 3, PROTO_CAP_RECLAIM); /* HELLO, ALLOC, ALLOC; restart */
	s.refuse_id = 2;
	CHECK_EQ(server_start(&s), 0);
	struct barkeep *bk = connect_to(&s, BARKEEP_CONNECT_RECONNECT, &seen);
	if (!bk)
		return server_stop(&s);
	int sock = barkeep_get_fd(bk);
	struct barkeep_lease *a = alloc_1m(bk), *b = alloc_1m(bk);
	if (!a || !b)
		return server_stop(&s);
	int a_fd = a->fd;
	ino_t a_ino = inode_of(a->fd);

	CHECK(dispatch_until_reconnected(bk, &seen) >= 0);
	CHECK_EQ(seen.n, 2);
	CHECK_EQ(seen.ev[0].type, BARKEEP_EVENT_RECONNECTED);
	CHECK_EQ(seen.ev[0].n_reclaimed, 1);
	CHECK_EQ(seen.ev[0].n_lost, 1);
	CHECK_EQ(seen.ev[1].type, BARKEEP_EVENT_LEASE_REVOKED);
	CHECK_EQ(seen.ev[1].lease_id, b->id);
	CHECK_EQ(seen.ev[1].reason, BARKEEP_REVOKE_LOST);
	CHECK(strcmp(barkeep_event_reason(&seen.ev[1]), "lost") == 0);
	/* the reclaimed lease kept its fd and took the broker's record */
	CHECK_EQ(a->fd, a_fd);
	CHECK_EQ(inode_of(a->fd), a_ino);
	CHECK_EQ(a->id, 1);
	CHECK_EQ(a->generation, 2);
	CHECK_EQ(barkeep_get_fd(bk), sock);
	/* the second HELLO was the first one again */
	CHECK_EQ(s.n_hellos, 2);
	CHECK_EQ(s.n_reclaims, 2);
	CHECK(strcmp(s.hello_name, "reconnector") == 0);
	CHECK(s.hello_caps & PROTO_CAP_RECLAIM);

	check_listed_alone(bk, a->id);
	barkeep_lease_free(b); /* lost: the application drops it */
	CHECK_EQ(barkeep_release(bk, a), 0);
	barkeep_disconnect(bk);
	server_stop(&s);
}

/* An event the new broker sends while the leases are reclaimed comes after
 * RECONNECTED and the lost leases, not before: RECONNECTED tells the
 * application to forget the old broker's pauses. */
static void test_events_during_reclaim_follow_reconnected(void)
{
	struct server s;
	struct seen seen = {};

	server_two_sessions(&s, 3, PROTO_CAP_RECLAIM | PROTO_CAP_PAUSE_ACK);
	s.refuse_id = 2;
	s.pause_after_reclaim = true;
	CHECK_EQ(server_start(&s), 0);
	struct barkeep *bk = connect_to(&s, BARKEEP_CONNECT_RECONNECT, &seen);
	if (!bk)
		return server_stop(&s);
	struct barkeep_lease *a = alloc_1m(bk), *b = alloc_1m(bk);
	if (!a || !b)
		return server_stop(&s);

	CHECK(dispatch_until_reconnected(bk, &seen) >= 0);
	for (int i = 0; i < 10 && seen.n < 3; i++)
		(void)barkeep_dispatch(bk);
	CHECK_EQ(seen.n, 3);
	CHECK_EQ(seen.ev[0].type, BARKEEP_EVENT_RECONNECTED);
	CHECK_EQ(seen.ev[0].n_reclaimed, 1);
	CHECK_EQ(seen.ev[1].type, BARKEEP_EVENT_LEASE_REVOKED);
	CHECK_EQ(seen.ev[1].lease_id, b->id);
	CHECK_EQ(seen.ev[2].type, BARKEEP_EVENT_DEVICE_PAUSE);
	CHECK_EQ(seen.ev[2].generation, 2);

	barkeep_lease_free(b);
	CHECK_EQ(barkeep_release(bk, a), 0);
	barkeep_disconnect(bk);
	server_stop(&s);
}

/* A request that meets the broken connection reconnects and is sent again. */
static void test_request_retried_once(void)
{
	struct server s;
	struct seen seen = {};

	server_two_sessions(&s, 2, PROTO_CAP_RECLAIM); /* HELLO, ALLOC; restart */
	CHECK_EQ(server_start(&s), 0);
	struct barkeep *bk = connect_to(&s, BARKEEP_CONNECT_RECONNECT, &seen);
	if (!bk)
		return server_stop(&s);
	struct barkeep_lease *a = alloc_1m(bk);
	if (!a)
		return server_stop(&s);

	check_listed_alone(bk, a->id); /* meets the hang-up, reconnects, asks again */
	CHECK_EQ(barkeep_dispatch(bk), 1);
	CHECK(seen.n == 1 && seen.ev[0].type == BARKEEP_EVENT_RECONNECTED &&
	      seen.ev[0].n_reclaimed == 1);
	CHECK_EQ(barkeep_release(bk, a), 0);
	barkeep_disconnect(bk);
	server_stop(&s);
}

/* A broker without RECLAIM: every lease is lost, and barkeep_reclaim() does
 * not send what that broker would take for a protocol error. */
static void test_broker_without_reclaim(void)
{
	struct server s;
	struct seen seen = {};

	server_two_sessions(&s, 2, PROTO_CAP_PAUSE_ACK);
	CHECK_EQ(server_start(&s), 0);
	struct barkeep *bk = connect_to(&s, BARKEEP_CONNECT_RECONNECT, &seen);
	if (!bk)
		return server_stop(&s);
	struct barkeep_lease *a = alloc_1m(bk);

	CHECK(dispatch_until_reconnected(bk, &seen) >= 0);
	CHECK(seen.n == 2 && seen.ev[0].n_reclaimed == 0 && seen.ev[0].n_lost == 1);
	CHECK_EQ(s.n_reclaims, 0);
	if (a) {
		CHECK_EQ(barkeep_reclaim(bk, a->id, a->reclaim_token, a), -EOPNOTSUPP);
		CHECK_CONTAINS(barkeep_error_message(bk), "no RECLAIM");
	}
	CHECK_EQ(s.n_reclaims, 0);
	barkeep_lease_free(a);
	barkeep_disconnect(bk);
	server_stop(&s);
}

static void test_without_the_flag(void)
{
	struct server s;

	server_two_sessions(&s, 2, PROTO_CAP_RECLAIM);
	s.n_sessions = 1;
	CHECK_EQ(server_start(&s), 0);
	struct barkeep *bk = connect_to(&s, 0, NULL);
	if (!bk)
		return server_stop(&s);
	struct barkeep_lease *a = alloc_1m(bk);
	struct pollfd p = { .fd = barkeep_get_fd(bk), .events = POLLIN };

	(void)poll(&p, 1, 5000);
	CHECK_EQ(barkeep_dispatch(bk), -ECONNRESET);
	CHECK_EQ(s.n_hellos, 1);
	barkeep_lease_free(a);
	barkeep_disconnect(bk);
	server_stop(&s);
}

/* A released lease's record waits for the next ALLOC poisoned: under ASan
 * a use after barkeep_release() is still reported as one. */
static void test_released_record_poisoned(void)
{
	struct server s;

	server_two_sessions(&s, 0, 0);
	s.n_sessions = 1;
	CHECK_EQ(server_start(&s), 0);
	struct barkeep *bk = connect_to(&s, 0, NULL);
	if (!bk)
		return server_stop(&s);
	struct barkeep_lease *a = alloc_1m(bk), *b;
	if (!a) {
		barkeep_disconnect(bk);
		return server_stop(&s);
	}
	CHECK_EQ(barkeep_release(bk, a), 0);
	CHECK_EQ(mem_poisoned(a, sizeof(*a)), MEM_POISON_ENABLED);
	b = alloc_1m(bk);
	CHECK(b == a); /* the kept record, in use again */
	CHECK(b && !mem_poisoned(b, sizeof(*b)));
	CHECK(b && b->id == 2 && b->fd >= 0);
	if (b)
		CHECK_EQ(barkeep_release(bk, b), 0);
	barkeep_disconnect(bk);
	server_stop(&s);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_reconnect_gives_up(void)
{
	struct server s;

	server_two_sessions(&s, 2, PROTO_CAP_RECLAIM);
	s.stop_listening = true;
	CHECK_EQ(server_start(&s), 0);
	struct barkeep *bk = connect_to(&s, BARKEEP_CONNECT_RECONNECT, NULL);
	if (!bk)
		return server_stop(&s);
	struct barkeep_lease *a = alloc_1m(bk);
	struct pollfd p = { .fd = barkeep_get_fd(bk), .events = POLLIN };

	barkeep_set_reconnect_timeout(bk, 300);
	(void)poll(&p, 1, 5000);
	pthread_join(s.thread, NULL); /* the socket is gone */
	int64_t t0 = now_ms();
	int r = barkeep_dispatch(bk);
	int64_t took = now_ms() - t0;
	CHECK(r == -ENOENT || r == -ECONNREFUSED);
	CHECK(took >= 300 && took < 3000);
	CHECK_CONTAINS(barkeep_error_message(bk), "reconnecting for 300 ms failed");
	barkeep_lease_free(a);
	barkeep_disconnect(bk);
	unlink(s.path);
}

/* barkeep_reclaim() by hand, on a new connection after the restart. */
static void test_reclaim_by_hand(void)
{
	struct server s;

	server_two_sessions(&s, 2, PROTO_CAP_RECLAIM);
	CHECK_EQ(server_start(&s), 0);
	struct barkeep *old = connect_to(&s, 0, NULL);
	if (!old)
		return server_stop(&s);
	struct barkeep_lease *a = alloc_1m(old);
	barkeep_disconnect(old); /* a stays the caller's */
	struct barkeep *bk = connect_to(&s, 0, NULL);
	if (!a || !bk)
		return server_stop(&s);
	int fd = a->fd;
	uint8_t wrong[16];

	memcpy(wrong, a->reclaim_token, sizeof(wrong));
	wrong[0] ^= 1;
	CHECK_EQ(barkeep_reclaim(bk, a->id, wrong, a), -ENOENT);
	CHECK_CONTAINS(barkeep_error_message(bk), "no orphaned lease 1");
	CHECK_EQ(a->generation, 1); /* unchanged on failure */
	CHECK_EQ(barkeep_reclaim(bk, a->id, a->reclaim_token, a), 0);
	CHECK_EQ(a->generation, 2);
	CHECK_EQ(a->fd, fd);
	CHECK_EQ(barkeep_reclaim(bk, a->id, NULL, a), -EINVAL);
	barkeep_lease_free(a);
	barkeep_disconnect(bk);
	server_stop(&s);
}

/* A broker that accepts but never answers: HELLO gives up with ETIMEDOUT
 * rather than hang its caller. Nobody accepts here: the connection waits in
 * the listener's backlog, HELLO in its queue. */
static void test_hello_timeout(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct barkeep *bk = NULL;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/barkeep-test-hello.%d.sock", (int)getpid());
	unlink(sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0);
	CHECK_EQ(barkeep_connect(sa.sun_path, "patient", &bk), -ETIMEDOUT);
	CHECK(bk == NULL);
	CHECK_CONTAINS(barkeep_error_message(NULL), "did not answer within 5000 ms");
	unlink(sa.sun_path);
	close(fd);
}

int main(void)
{
	RUN(test_reconnect_reclaims_and_reports_lost);
	RUN(test_events_during_reclaim_follow_reconnected);
	RUN(test_request_retried_once);
	RUN(test_broker_without_reclaim);
	RUN(test_without_the_flag);
	RUN(test_reconnect_gives_up);
	RUN(test_reclaim_by_hand);
	RUN(test_hello_timeout);
	RUN(test_released_record_poisoned);
	return UNIT_END();
}

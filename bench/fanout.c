// SPDX-License-Identifier: MIT
/*
 * fanout: how long a reset takes to reach every lease holder. From the
 * RESET request until the last of N clients (N = 10, 100, 1000) has its
 * DEVICE_PAUSE, against the limit measured in the same run: a process that,
 * woken by one packet, sends an event-sized packet to each of N
 * SOCK_SEQPACKET sockets (N bare sendmsg calls), received by the same loop.
 *
 *   fanout [-r ROUNDS] SOCKET FREE_PCI
 *
 * ROUNDS (21) is for N = 1000; smaller N run more rounds (10x for N = 10,
 * 3x for N = 100): a round of 10 holders takes about a millisecond, where a
 * single descheduling of the guest's one CPU moves it by half, and 21 of
 * them left the median of N = 10 anywhere between 1.1x and 1.75x.
 *
 * bench/run's daemon keeps the default client limits (128 clients), so
 * fanout starts a barkeepd of its own on FREE_PCI with room for 1000
 * clients and raised fd limits, and stops it at the end (SOCKET is not
 * used). The guest has one CPU: the holders acknowledge each pause only
 * after the last DEVICE_PAUSE came, so the revoke (the daemon's worker
 * thread, in the kernel) does not run inside the measurement. The receiver reads raw
 * packets from the clients' sockets in both measurements, so only the
 * sending sides differ. Rounds alternate between barkeep and the limit.
 * Figures: median and p90 per N, the ratio of the medians and the time
 * per client, which shows whether the cost is linear in N.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"
#include "proto/codec.h"
#include "tests/lib/benchd.h"
#include "tests/lib/stats.h"

#define NAME "fanout"
#define die(...) bench_die(NAME, __VA_ARGS__)
#define MAX_CLIENTS 1000
#define DIR "/run/barkeep-fanout"

static const unsigned sizes[] = { 10, 100, 1000 };

static size_t encode(const struct proto_msg *m, uint8_t *buf, size_t size)
{
	struct proto_diag diag;
	int n = proto_encode(m, buf, size, &diag);

	if (n < 0)
		die("cannot encode %s: %s", proto_op_name(m->opcode), diag.text);
	return (size_t)n;
}

/* ---- the daemon of our own ------------------------------------------------ */

static pid_t start_daemon(const char *pci, char *sock, size_t sock_size)
{
	char sections[512];

	snprintf(sections, sizeof(sections),
		 "[limits]\nmax-clients = %u\nmax-clients-per-uid = %u\nmax-leases-per-uid = %u\n\n"
		 "[device fanout]\npci = %s\nallow-users = root\n",
		 MAX_CLIENTS + 16, MAX_CLIENTS + 16, MAX_CLIENTS + 16, pci);
	return bench_daemon_start(NAME, DIR, sections, sock, sock_size);
}

/* ---- the receiving side, the same for both measurements ------------------- */

struct receiver {
	int ep;
	int fds[MAX_CLIENTS];
	unsigned n;
	uint8_t paused[MAX_CLIENTS], resumed[MAX_CLIENTS];
	unsigned n_paused, n_resumed;
	uint64_t generation; /* from the DEVICE_PAUSEs */
};

static void receiver_init(struct receiver *r, const int *fds, unsigned n)
{
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	if (r->ep < 0)
		die("epoll_create1: %m");
	r->n = n;
	r->n_paused = r->n_resumed = 0;
	memset(r->paused, 0, n);
	memset(r->resumed, 0, n);
	for (unsigned i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
		r->fds[i] = fds[i];
		if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			die("epoll_ctl: %m");
	}
}

static void receiver_fini(struct receiver *r)
{
	close(r->ep);
}

/* Reads until every socket has had a DEVICE_PAUSE (or DEVICE_RESUME, as
 * `want` says); returns when the last one came. Both are counted whatever
 * is waited for: one read may bring both. */
static uint64_t receive_all(struct receiver *r, uint16_t want)
{
	struct epoll_event evs[64];
	const unsigned *have = want == PROTO_OP_DEVICE_PAUSE ? &r->n_paused : &r->n_resumed;
	uint8_t buf[512];

	while (*have < r->n) {
		int k = epoll_wait(r->ep, evs, ARRAY_SIZE(evs), 10000);
		if (k <= 0)
			die("only %u of %u clients got %s within 10 s", *have, r->n, proto_op_name(want));
		for (int i = 0; i < k; i++) {
			unsigned idx = evs[i].data.u32;
			ssize_t len;
			while ((len = recv(r->fds[idx], buf, sizeof(buf), MSG_DONTWAIT)) >= 8) {
				uint16_t op = bench_packet_opcode(buf);
				if (op == PROTO_OP_DEVICE_PAUSE && !r->paused[idx]) {
					r->paused[idx] = 1;
					r->n_paused++;
					if (len >= 40) /* header 24, then device_id, reason, flags, generation */
						memcpy(&r->generation, buf + 32, sizeof(r->generation));
				} else if (op == PROTO_OP_DEVICE_RESUME && !r->resumed[idx]) {
					r->resumed[idx] = 1;
					r->n_resumed++;
				}
			}
			if (len == 0)
				die("client %u was disconnected", idx);
		}
	}
	return bench_now_ns();
}

/* ---- barkeep ---------------------------------------------------------------- */

struct holders {
	struct barkeep *bk[MAX_CLIENTS];
	int fds[MAX_CLIENTS];
	unsigned n;
};

static void add_holders(struct holders *h, const char *sock, unsigned n)
{
	while (h->n < n) {
		struct barkeep *bk;
		struct barkeep_lease *l;
		struct barkeep_alloc_params p = { .by_id = true, .device_id = 0, .size = 4096 };
		if (barkeep_connect(sock, "fanout", &bk) < 0)
			die("client %u: %s", h->n, barkeep_error_message(NULL));
		if (barkeep_alloc(bk, &p, &l) < 0)
			die("client %u: %s", h->n, barkeep_error_message(bk));
		barkeep_lease_free(l); /* the lease lives as long as the connection */
		h->fds[h->n] = barkeep_get_fd(bk);
		h->bk[h->n++] = bk;
	}
}

/* One reset: the time until the last holder had DEVICE_PAUSE. Then every
 * holder acknowledges (so the revoke, which competes for the guest's one
 * CPU, starts after the measurement), and the round waits for the RESUMEs
 * and the OK, so rounds do not overlap. */
static uint64_t barkeep_round(struct receiver *r, struct barkeep *admin, uint32_t *request_id)
{
	uint8_t pkt[128], buf[512];
	struct proto_msg m = { .opcode = PROTO_OP_RESET, .request_id = (*request_id)++ };
	m.reset = (struct proto_reset){ .device_id = 0, .grace_ms = 60000 };
	size_t len = encode(&m, pkt, sizeof(pkt));

	uint64_t t0 = bench_now_ns();
	if (proto_send(barkeep_get_fd(admin), pkt, len, NULL, 0) < 0)
		die("cannot send RESET: %m");
	uint64_t t1 = receive_all(r, PROTO_OP_DEVICE_PAUSE);
	for (unsigned i = 0; i < r->n; i++) {
		m = (struct proto_msg){ .opcode = PROTO_OP_PAUSE_ACK, .request_id = (*request_id)++ };
		m.pause_ack = (struct proto_pause_ack){ .device_id = 0, .generation = r->generation };
		len = encode(&m, pkt, sizeof(pkt));
		if (proto_send(r->fds[i], pkt, len, NULL, 0) < 0)
			die("cannot send PAUSE_ACK: %m");
	}
	receive_all(r, PROTO_OP_DEVICE_RESUME);
	for (;;) {
		ssize_t n = recv(barkeep_get_fd(admin), buf, sizeof(buf), 0);
		if (n < 0 && errno == EAGAIN) {
			usleep(100);
			continue;
		}
		if (n < 8)
			die("the RESET got no answer");
		if (bench_packet_opcode(buf) == PROTO_OP_OK)
			break;
		die("the RESET was answered %s", proto_op_name(bench_packet_opcode(buf)));
	}
	return t1 - t0;
}

/* ---- the limit ---------------------------------------------------------------- */

struct bare {
	int client[MAX_CLIENTS]; /* the receiving ends */
	int trigger;             /* wakes the sender */
	pid_t sender;
};

/* A process that sends one event-sized packet to every socket per wake-up. */
static void bare_start(struct bare *b, unsigned n)
{
	static int server[MAX_CLIENTS];
	uint8_t pkt[128];
	struct proto_msg m = { .opcode = PROTO_OP_DEVICE_PAUSE };
	m.device_pause = (struct proto_device_pause){ .device_id = 0, .reason = PROTO_REASON_ADMIN,
		.flags = PROTO_PAUSE_FORCE, .generation = 1 };
	size_t len = encode(&m, pkt, sizeof(pkt));
	int t[2];

	for (unsigned i = 0; i < n; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
			die("socketpair: %m");
		b->client[i] = sv[0];
		server[i] = sv[1];
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, t) < 0)
		die("socketpair: %m");
	b->sender = fork();
	if (b->sender == 0) {
		char c;
		close(t[0]);
		while (read(t[1], &c, 1) == 1)
			for (unsigned i = 0; i < n; i++)
				if (proto_send(server[i], pkt, len, NULL, 0) < 0)
					_exit(1);
		_exit(0);
	}
	close(t[1]);
	b->trigger = t[0];
	for (unsigned i = 0; i < n; i++)
		close(server[i]);
}

static void bare_stop(struct bare *b, unsigned n)
{
	close(b->trigger);
	waitpid(b->sender, NULL, 0);
	for (unsigned i = 0; i < n; i++)
		close(b->client[i]);
}

static uint64_t bare_round(struct receiver *r, struct bare *b)
{
	uint64_t t0 = bench_now_ns();
	if (write(b->trigger, "x", 1) != 1)
		die("cannot wake the sender: %m");
	return receive_all(r, PROTO_OP_DEVICE_PAUSE) - t0;
}

/* ---- figures ------------------------------------------------------------------ */

static uint64_t percentile(uint64_t *v, size_t n, unsigned p)
{
	bench_sort_u64(v, n);
	return v[(n - 1) * p / 100];
}

int main(int argc, char **argv)
{
	unsigned rounds = 21;
	int c;

	while ((c = getopt(argc, argv, "r:")) >= 0) {
		if (c != 'r')
			return EXIT_FAILURE;
		rounds = (unsigned)atoi(optarg);
	}
	if (argc - optind != 2 || rounds < 1)
		die("usage: fanout [-r ROUNDS] SOCKET FREE_PCI");
	const char *pci = argv[optind + 1];

	/* Two fds per holder here, more in the daemon, which inherits this. */
	struct rlimit rl = { 8192, 8192 };
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("cannot raise the fd limit to 8192 (run as root): %m");
	signal(SIGPIPE, SIG_IGN);
	char sock[128];
	pid_t daemon = start_daemon(pci, sock, sizeof(sock));

	struct barkeep *admin;
	if (barkeep_connect(sock, "fanout-admin", &admin) < 0)
		die("%s", barkeep_error_message(NULL));
	static struct holders h;
	static struct bare bare;
	static struct receiver rx;
	uint64_t *t_bk = calloc(rounds * 10, sizeof(uint64_t));
	uint64_t *t_bare = calloc(rounds * 10, sizeof(uint64_t));
	uint32_t request_id = 1000;

	printf("%6s %14s %14s %14s %14s %8s %12s\n", "N", "barkeep med", "barkeep p90",
	       "limit med", "limit p90", "ratio", "per client");
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		unsigned n = sizes[s], nr = rounds * (n <= 10 ? 10 : n <= 100 ? 3 : 1);
		add_holders(&h, sock, n);
		bare_start(&bare, n);
		/* One warm-up of each, then interleaved rounds. */
		receiver_init(&rx, h.fds, n);
		barkeep_round(&rx, admin, &request_id);
		receiver_fini(&rx);
		receiver_init(&rx, bare.client, n);
		bare_round(&rx, &bare);
		receiver_fini(&rx);
		for (unsigned i = 0; i < nr; i++) {
			receiver_init(&rx, h.fds, n);
			t_bk[i] = barkeep_round(&rx, admin, &request_id);
			receiver_fini(&rx);
			receiver_init(&rx, bare.client, n);
			t_bare[i] = bare_round(&rx, &bare);
			receiver_fini(&rx);
		}
		bare_stop(&bare, n);
		uint64_t bk_p90 = percentile(t_bk, nr, 90), bk_med = percentile(t_bk, nr, 50);
		uint64_t bare_p90 = percentile(t_bare, nr, 90), bare_med = percentile(t_bare, nr, 50);
		printf("%6u %11.1f us %11.1f us %11.1f us %11.1f us %8.2f %9.2f us\n", n, bk_med / 1e3,
		       bk_p90 / 1e3, bare_med / 1e3, bare_p90 / 1e3, (double)bk_med / (double)bare_med,
		       bk_med / 1e3 / n);
		fflush(stdout);
	}
	for (unsigned i = 0; i < h.n; i++)
		barkeep_disconnect(h.bk[i]);
	barkeep_disconnect(admin);
	free(t_bk);
	free(t_bare);
	bench_daemon_stop(NAME, DIR, daemon);
	return EXIT_SUCCESS;
}

// SPDX-License-Identifier: MIT
/*
 * lease_latency: the ALLOC+RELEASE round trip through libbarkeep against a
 * running barkeepd, next to the limit measured in the same run: a bare
 * SOCK_SEQPACKET request and reply of the protocol's ALLOC and LEASE sizes
 * carrying one fd, plus one VFIO_DEVICE_FEATURE_DMA_BUF export and the close
 * of the exported fd.
 *
 *   lease_latency [-n ITERATIONS] [-s SIZE] SOCKET FREE_PCI
 *
 * SOCKET is the daemon's; FREE_PCI is a vfio-pci device the daemon does not
 * hold (a VFIO group opens in one process only), where the limit exports
 * its windows. bench/run starts the daemon on one emulated GPU and passes
 * the other. The limit's server is a forked process, as the daemon is one:
 * every round trip pays the same two context switches.
 *
 * Figures (median and p99 of each): barkeep's ALLOC+RELEASE and its two
 * halves; the limit; the limit plus a bare RELEASE-sized round trip (the
 * floor of a protocol that answers RELEASE); the rule's floor: the limit
 * plus the least the window reuse rule (issue #3, PROTOCOL.md) adds, done
 * by the same bare server: the client closes its fd and sends RELEASE
 * without waiting, and the server, which kept its own fd, reads the
 * buffer's count from fdinfo, closes it, zeroes the window and names the
 * next buffer, reading RELEASE and ALLOC with one recvmmsg(); then the
 * ratios. The kinds are measured interleaved in short rounds (about 30
 * iterations, tens of ms, each), so drift of the host (TCG on a shared
 * machine moves absolute figures by tens of percent, within a run too)
 * hits all of them alike: with 10 longer rounds the same binaries gave
 * ratios from 1.0x to 1.5x. No figure is judged: it prints them.
 *
 * barkeepd may lend a kept buffer again instead of exporting anew
 * (daemon/idle.h): every iteration here asks for the same size, so every
 * ALLOC after the first takes the buffer the RELEASE before it left.
 * bench/run's BENCH_IDLE_BUFFERS=0 measures the daemon without that.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"
#include "common/vfio.h"
#include "proto/codec.h"
#include "tests/lib/stats.h"

#define NAME "lease_latency"
#define die(...) bench_die(NAME, __VA_ARGS__)
#define WARMUP 200
#define ROUNDS 100
#define MIN_ITERATIONS 500
#define BUDGET_NS (40ull * 1000000000ull) /* measuring time the bench allows itself */

enum kind { BARKEEP, LIMIT, TWO_TRIPS, RULE_FLOOR, N_KINDS };

/* The rule floor's packets carry this request id: the server keeps their
 * buffers and does not answer their RELEASE. */
#define FLOOR_REQUEST 7

/* Samples of one kind; barkeep also records its ALLOC and RELEASE halves. */
struct samples {
	uint64_t *total, *alloc, *release;
	size_t n;
};

#define PACKET_MAX 512 /* room for the four fixed-size messages the bare side sends */

/* The bare side: the packets of the protocol's sizes and the server process. */
struct bare {
	uint8_t alloc[PACKET_MAX], lease[PACKET_MAX], release[PACKET_MAX], ok[PACKET_MAX];
	uint8_t floor_alloc[PACKET_MAX], floor_release[PACKET_MAX];
	size_t alloc_len, lease_len, release_len, ok_len;
	int sock; /* the client end */
	pid_t server;
};

struct bench {
	struct barkeep *bk;
	struct barkeep_alloc_params params;
	struct bare bare;
	struct samples s[N_KINDS];
	pid_t daemon;            /* barkeepd, the socket's peer */
	uint64_t cpu_us[N_KINDS];        /* the serving side's CPU time in each kind's rounds */
	uint64_t client_cpu_us[N_KINDS]; /* this process's, the asking side */
	/* Wake-ups of the serving side (its waits) and preemptions of this
	 * process, in each kind's rounds: each is a context switch pair. */
	uint64_t server_waits[N_KINDS], client_preempted[N_KINDS];
};

/* Encodes m into buf; the bare packets are real protocol messages. */
static size_t encode(const struct proto_msg *m, uint8_t *buf)
{
	struct proto_diag diag;
	int n = proto_encode(m, buf, PACKET_MAX, &diag);

	if (n < 0)
		die("cannot encode %s: %s", proto_op_name(m->opcode), diag.text);
	return (size_t)n;
}

static void bare_packets(struct bare *b, uint64_t size)
{
	struct proto_msg m = { .opcode = PROTO_OP_ALLOC, .request_id = 1 };

	m.alloc.selector = PROTO_SELECT_ANY;
	m.alloc.size = size;
	b->alloc_len = encode(&m, b->alloc);
	m = (struct proto_msg){ .opcode = PROTO_OP_LEASE, .request_id = 1 };
	m.lease = (struct proto_lease){ .id = 1, .size = size, .generation = 1 };
	b->lease_len = encode(&m, b->lease);
	m = (struct proto_msg){ .opcode = PROTO_OP_RELEASE, .request_id = 2 };
	m.release.lease_id = 1;
	b->release_len = encode(&m, b->release);
	m = (struct proto_msg){ .opcode = PROTO_OP_OK, .request_id = 2 };
	b->ok_len = encode(&m, b->ok);
	memcpy(b->floor_alloc, b->alloc, b->alloc_len);
	memcpy(b->floor_release, b->release, b->release_len);
	bench_packet_set_request_id(b->floor_alloc, FLOOR_REQUEST);
	bench_packet_set_request_id(b->floor_release, FLOOR_REQUEST);
}

/* The rule floor's server state: the buffer it lent last, kept. */
struct floor_state {
	int kept;           /* its own fd of the lent buffer; -EBADF: none */
	int fdinfo;         /* /proc/self/fdinfo/<kept>, kept open as barkeepd does */
	void *window; /* the BAR, mapped, for the zeroing */
	unsigned next_name;
};

/* A RELEASE of the rule floor: the last reference, or the server fails. */
static int floor_release(struct floor_state *f, uint64_t size)
{
	char text[1024];
	long count = 0;

	if (f->kept < 0)
		return -EPROTO;
	ssize_t n = pread(f->fdinfo, text, sizeof(text) - 1, 0);
	if (n < 0)
		return -errno;
	text[n] = '\0';
	if (dmabuf_fdinfo_parse(text, &count, NULL, 0) < 0 || count != 1)
		return -EBUSY;
	f->kept = safe_close(f->kept);
	vfio_region_zero(f->window, size); /* as barkeepd zeroes */
	return 0;
}

/*
 * The bare server: answers an ALLOC-sized packet by exporting a window of
 * the device and sending a LEASE-sized reply with the fd, then closes its
 * fd; anything else gets an OK-sized reply. Blocking, no decoding, no
 * bookkeeping: only what any broker must do. Packets of the rule floor
 * (FLOOR_REQUEST) are served as the reuse rule wants instead: the ALLOC's
 * buffer is named and kept, the RELEASE is not answered. Exits at end of
 * stream.
 */
static _noreturn_ void bare_serve(const struct bare *b, int sock, const struct vfio_dev *dev,
				  uint32_t bar, uint64_t size)
{
	static uint8_t inbox[2][PROTO_MAX_MESSAGE];
	struct floor_state f = { .kept = -EBADF, .fdinfo = -EBADF };
	void *map;
	uint64_t map_size;

	if (vfio_region_mmap(dev, bar, &map, &map_size) < 0 || map_size < size)
		_exit(EXIT_FAILURE);
	f.window = map;
	for (;;) {
		struct proto_slot slot[2] = { { .buf = inbox[0], .size = sizeof(inbox[0]) },
					      { .buf = inbox[1], .size = sizeof(inbox[1]) } };
		int got = proto_recv_many(sock, slot, ARRAY_SIZE(slot), PROTO_PACKET_MAX_FDS);
		if (got == -EAGAIN)
			continue;
		if (got < 0)
			_exit(EXIT_FAILURE);
		for (int i = 0; i < got; i++) {
			const uint8_t *buf = slot[i].buf;
			bool floor = slot[i].len >= PROTO_HEADER_SIZE &&
				     bench_packet_request_id(buf) == FLOOR_REQUEST;
			int r;

			if (slot[i].len <= 0)
				_exit(slot[i].len == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
			proto_close_fds(slot[i].fds, slot[i].n_fds);
			if (floor && bench_packet_opcode(buf) == PROTO_OP_RELEASE) {
				r = floor_release(&f, size);
			} else if ((size_t)slot[i].len != b->alloc_len) {
				r = proto_send(sock, b->ok, b->ok_len, NULL, 0);
			} else {
				int fd = vfio_dmabuf_export(dev, bar, 0, size, O_RDWR);
				if (fd < 0)
					_exit(EXIT_FAILURE); /* the client sees the hang-up */
				if (floor) {
					char name[48];
					snprintf(name, sizeof(name), "barkeep:%u:0", ++f.next_name);
					(void)dmabuf_set_name(fd, name);
				}
				r = proto_send(sock, b->lease, b->lease_len, &fd, 1);
				if (floor && f.kept < 0 && f.fdinfo < 0) {
					char path[64];
					snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
					f.fdinfo = open(path, O_RDONLY | O_CLOEXEC);
					if (f.fdinfo < 0)
						_exit(EXIT_FAILURE);
				}
				/* Kept: the same number every time, nothing else opens. */
				if (floor && f.kept < 0)
					f.kept = fd;
				else
					close(fd);
			}
			if (r < 0)
				_exit(EXIT_FAILURE);
		}
	}
}

static void bare_start(struct bare *b, const char *pci, uint64_t size)
{
	struct vfio_dev dev;
	int sv[2], r, bar;

	r = vfio_dev_open(pci, &dev);
	if (r < 0)
		die("cannot open %s through VFIO: %s%s", pci, strerror(-r),
		    r == -EBUSY ? " (is barkeepd holding it? give a device it does not serve)" : "");
	bar = vfio_pick_vram_bar(&dev);
	if (bar < 0)
		die("%s has no BAR to export from", pci);
	r = vfio_dmabuf_probe(&dev);
	if (r < 0)
		die("%s cannot export dma-bufs: %s", pci, strerror(-r));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair: %m");
	b->server = fork();
	if (b->server < 0)
		die("fork: %m");
	if (b->server == 0) {
		close(sv[0]);
		bare_serve(b, sv[1], &dev, (uint32_t)bar, size);
	}
	close(sv[1]);
	vfio_dev_close(&dev);
	b->sock = sv[0];
	printf(NAME ": limit exports %llu bytes of %s BAR%d in a forked server; packets "
	       "ALLOC %zu, LEASE %zu (+1 fd), RELEASE %zu, OK %zu bytes\n", (unsigned long long)size,
	       pci, bar, b->alloc_len, b->lease_len, b->release_len, b->ok_len);
}

static void bare_stop(struct bare *b)
{
	int status;

	b->sock = safe_close(b->sock);
	if (waitpid(b->server, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("the bare server failed");
}

/* One bare request and its reply; the fd that comes with it is closed. */
static void bare_trip(const struct bare *b, const uint8_t *req, size_t len, size_t want_fds)
{
	uint8_t buf[PROTO_MAX_MESSAGE];
	int fds[PROTO_PACKET_MAX_FDS];
	size_t n_fds;
	ssize_t n;

	int r = proto_send(b->sock, req, len, NULL, 0);
	if (r < 0)
		die("bare send failed: %s", strerror(-r));
	do
		n = proto_recv(b->sock, buf, sizeof(buf), fds, ARRAY_SIZE(fds), &n_fds);
	while (n == -EAGAIN);
	if (n <= 0 || n_fds != want_fds)
		die("the bare server did not answer (export failed?)");
	proto_close_fds(fds, n_fds);
}

static void run_barkeep(struct bench *bn, struct samples *s)
{
	struct barkeep_lease *l;
	uint64_t t0 = bench_now_ns(), t1, t2;

	if (barkeep_alloc(bn->bk, &bn->params, &l) < 0)
		die("ALLOC failed: %s", barkeep_error_message(bn->bk));
	t1 = bench_now_ns();
	if (barkeep_release(bn->bk, l) < 0)
		die("RELEASE failed: %s", barkeep_error_message(bn->bk));
	t2 = bench_now_ns();
	if (s) {
		s->alloc[s->n] = t1 - t0;
		s->release[s->n] = t2 - t1;
		s->total[s->n++] = t2 - t0;
	}
}

/* The rule floor: the limit's trip, then RELEASE as libbarkeep sends it. */
static void run_floor(struct bench *bn, struct samples *s)
{
	const struct bare *b = &bn->bare;
	uint64_t t0 = bench_now_ns();

	bare_trip(b, b->floor_alloc, b->alloc_len, 1);
	int r = proto_send(b->sock, b->floor_release, b->release_len, NULL, 0);
	if (r < 0)
		die("bare send failed: %s", strerror(-r));
	if (s)
		s->total[s->n++] = bench_now_ns() - t0;
}

static void run_bare(struct bench *bn, struct samples *s, bool two_trips)
{
	const struct bare *b = &bn->bare;
	uint64_t t0 = bench_now_ns();

	bare_trip(b, b->alloc, b->alloc_len, 1);
	if (two_trips)
		bare_trip(b, b->release, b->release_len, 0);
	if (s)
		s->total[s->n++] = bench_now_ns() - t0;
}

static void run_one(struct bench *bn, enum kind k, struct samples *s)
{
	switch (k) {
	case BARKEEP: run_barkeep(bn, s); break;
	case LIMIT: run_bare(bn, s, false); break;
	case TWO_TRIPS: run_bare(bn, s, true); break;
	case RULE_FLOOR: run_floor(bn, s); break;
	case N_KINDS: break;
	}
}

/* Warms every kind up and returns the iterations that fit the budget. */
static size_t warm_up(struct bench *bn, size_t want)
{
	uint64_t per_iteration = 0;

	for (enum kind k = 0; k < N_KINDS; k++) {
		uint64_t t0 = bench_now_ns();
		for (int i = 0; i < WARMUP; i++)
			run_one(bn, k, NULL);
		per_iteration += (bench_now_ns() - t0) / WARMUP;
	}
	if (per_iteration * want <= BUDGET_NS)
		return want;
	size_t fit = MAX((size_t)(BUDGET_NS / per_iteration), (size_t)MIN_ITERATIONS);
	printf(NAME ": %zu iterations would take %.0f s here; measuring %zu\n", want,
	       (double)(per_iteration * want) / 1e9, fit);
	return fit;
}

static uint64_t *new_array(size_t n)
{
	uint64_t *a = calloc(n, sizeof(*a));
	if (!a)
		die("out of memory");
	return a;
}

static void measure(struct bench *bn, size_t n)
{
	for (enum kind k = 0; k < N_KINDS; k++) {
		bn->s[k].total = new_array(n);
		if (k == BARKEEP) {
			bn->s[k].alloc = new_array(n);
			bn->s[k].release = new_array(n);
		}
	}
	/* Rounds of each kind in turn, the order rotating, so drift spreads evenly. */
	for (size_t r = 0; r < ROUNDS; r++) {
		size_t per_round = n / ROUNDS + (r < n % ROUNDS);
		for (size_t j = 0; j < N_KINDS; j++) {
			enum kind k = (enum kind)((r + j) % N_KINDS);
			pid_t server = k == BARKEEP ? bn->daemon : bn->bare.server;
			struct bench_switches sw0 = bench_switches(server), me0 = bench_switches(0);
			uint64_t c0 = bench_cpu_us(server), self0 = bench_cpu_us(0);
			for (size_t i = 0; i < per_round; i++)
				run_one(bn, k, &bn->s[k]);
			bn->cpu_us[k] += bench_cpu_us(server) - c0;
			bn->client_cpu_us[k] += bench_cpu_us(0) - self0;
			bn->server_waits[k] += bench_switches(server).voluntary - sw0.voluntary;
			bn->client_preempted[k] += bench_switches(0).involuntary - me0.involuntary;
		}
	}
}

struct figure {
	double median, p99; /* microseconds */
};

/* Median and nearest-rank 99th percentile; sorts v. */
static struct figure figure_of(uint64_t *v, size_t n)
{
	bench_sort_u64(v, n);
	uint64_t med2 = n % 2 ? 2 * v[n / 2] : v[n / 2 - 1] + v[n / 2];
	size_t rank = (n * 99 + 99) / 100; /* ceil(0.99 n) */
	return (struct figure){ (double)med2 / 2e3, (double)v[rank - 1] / 1e3 };
}

static struct figure print_figure(const char *what, uint64_t *v, size_t n)
{
	struct figure f = figure_of(v, n);
	printf(NAME ": %-62s median %8.1f us, p99 %8.1f us\n", what, f.median, f.p99);
	return f;
}

static double per(uint64_t total_us, size_t n)
{
	return (double)total_us / (double)n;
}

static void report(struct bench *bn, size_t n)
{
	struct samples *s = bn->s;

	struct figure bk = print_figure("barkeep ALLOC+RELEASE (libbarkeep, barkeepd)", s[BARKEEP].total, n);
	print_figure("  ALLOC alone (request to LEASE + fd)", s[BARKEEP].alloc, n);
	print_figure("  RELEASE alone (close fd, send RELEASE: QUIET, no OK)", s[BARKEEP].release, n);
	struct figure lim = print_figure("limit: SEQPACKET round trip + 1 fd + DMA_BUF export + close",
					 s[LIMIT].total, n);
	struct figure two = print_figure("limit + a bare RELEASE-sized round trip", s[TWO_TRIPS].total, n);
	struct figure fl = print_figure("rule floor: limit + one-way RELEASE, count, zero, name",
					s[RULE_FLOOR].total, n);
	printf(NAME ": barkeep is median %.2fx, p99 %.2fx of two bare round trips\n",
	       bk.median / two.median, bk.p99 / two.p99);
	printf(NAME ": median %.2fx, p99 %.2fx of the limit (bare SEQPACKET+fd round trip + "
	       "DMA_BUF export)\n", bk.median / lim.median, bk.p99 / lim.p99);
	printf(NAME ": the rule floor is median %.2fx of the limit; barkeep is median %.2fx, "
	       "p99 %.2fx of the rule floor\n", fl.median / lim.median, bk.median / fl.median,
	       bk.p99 / fl.p99);
	/* The guest has one CPU: what either side burns per iteration is
	 * where the wall-clock difference comes from. */
	printf(NAME ": CPU per iteration, server + client: barkeep %.1f + %.1f us, limit %.1f + %.1f us, "
	       "two trips %.1f + %.1f us, rule floor %.1f + %.1f us\n",
	       per(bn->cpu_us[BARKEEP], n), per(bn->client_cpu_us[BARKEEP], n),
	       per(bn->cpu_us[LIMIT], n), per(bn->client_cpu_us[LIMIT], n),
	       per(bn->cpu_us[TWO_TRIPS], n), per(bn->client_cpu_us[TWO_TRIPS], n),
	       per(bn->cpu_us[RULE_FLOOR], n), per(bn->client_cpu_us[RULE_FLOOR], n));
	/* A one-way RELEASE that wakes the server at once costs a switch pair
	 * more than one read together with the next ALLOC. */
	printf(NAME ": per iteration, server wake-ups / client preemptions: barkeep %.2f / %.2f, "
	       "limit %.2f / %.2f, two trips %.2f / %.2f, rule floor %.2f / %.2f\n",
	       per(bn->server_waits[BARKEEP], n), per(bn->client_preempted[BARKEEP], n),
	       per(bn->server_waits[LIMIT], n), per(bn->client_preempted[LIMIT], n),
	       per(bn->server_waits[TWO_TRIPS], n), per(bn->client_preempted[TWO_TRIPS], n),
	       per(bn->server_waits[RULE_FLOOR], n), per(bn->client_preempted[RULE_FLOOR], n));
}

/* The PCI address of the daemon's device id, for the record. */
static const char *device_address(struct barkeep *bk, uint32_t id)
{
	static char addr[sizeof(((struct barkeep_device *)NULL)->pci_address)] = "an unknown device";
	struct barkeep_device *d;
	size_t n;

	if (barkeep_list_devices(bk, &d, &n) < 0)
		return addr;
	for (size_t i = 0; i < n; i++)
		if (d[i].id == id)
			snprintf(addr, sizeof(addr), "%s", d[i].pci_address);
	free(d);
	return addr;
}

/* One lease first: the daemon serves and the fd is as large as the lease.
 * Returns the lease's size (the size asked for, rounded up to a granule). */
static uint64_t check_lease(struct bench *bn)
{
	struct barkeep_lease *l;

	if (barkeep_alloc(bn->bk, &bn->params, &l) < 0)
		die("ALLOC of %llu bytes failed: %s", (unsigned long long)bn->params.size,
		    barkeep_error_message(bn->bk));
	off_t end = lseek(l->fd, 0, SEEK_END);
	if (end < 0 || (uint64_t)end != l->size)
		die("lease %llu: the fd is %lld bytes, the lease says %llu", (unsigned long long)l->id,
		    (long long)end, (unsigned long long)l->size);
	printf(NAME ": barkeepd lends %llu bytes of %s\n", (unsigned long long)l->size,
	       device_address(bn->bk, l->device_id));
	uint64_t size = l->size;
	if (barkeep_release(bn->bk, l) < 0)
		die("RELEASE failed: %s", barkeep_error_message(bn->bk));
	return size;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		die("'%s' is not a size", s);
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	}
	if (*end || v == 0)
		die("'%s' is not a size (bytes, or with K or M)", s);
	return v;
}

int main(int argc, char **argv)
{
	static struct bench bn = { .bare.sock = -EBADF };
	size_t want = 3000;
	uint64_t size = 4096;
	int c, r;

	while ((c = getopt(argc, argv, "n:s:h")) >= 0) {
		switch (c) {
		case 'n':
			want = (size_t)strtoul(optarg, NULL, 10);
			if (want < ROUNDS)
				die("-n wants at least %d iterations", ROUNDS);
			break;
		case 's': size = parse_size(optarg); break;
		default:
			fprintf(stderr, "Usage: %s [-n ITERATIONS] [-s SIZE] SOCKET FREE_PCI\n", argv[0]);
			return c == 'h' ? EXIT_SUCCESS : EXIT_FAILURE;
		}
	}
	if (argc - optind != 2)
		die("want SOCKET and FREE_PCI (a vfio-pci device barkeepd does not hold); see -h");
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	bn.params = (struct barkeep_alloc_params){ .size = size };
	r = barkeep_connect(argv[optind], NAME, &bn.bk);
	if (r < 0)
		die("%s", barkeep_error_message(NULL));
	struct ucred peer;
	socklen_t len = sizeof(peer);
	if (getsockopt(barkeep_get_fd(bn.bk), SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
		die("SO_PEERCRED: %m");
	bn.daemon = peer.pid;
	size = check_lease(&bn); /* rounded to the device's granule */
	bare_packets(&bn.bare, size);
	bare_start(&bn.bare, argv[optind + 1], size);

	size_t n = warm_up(&bn, want);
	printf(NAME ": %zu iterations of each, interleaved in %d rounds after %d warm-up, lease size %llu\n",
	       n, ROUNDS, WARMUP, (unsigned long long)size);
	measure(&bn, n);
	bare_stop(&bn.bare);
	barkeep_disconnect(bn.bk);
	report(&bn, n);
	return EXIT_SUCCESS;
}

// SPDX-License-Identifier: MIT
/*
 * stuck_client: does a client that never reads slow everyone else down?
 * One client measures ALLOC+RELEASE through libbarkeep while admin resets of
 * another device make events all the time, with K stuck clients present
 * (connected with WATCH, so they get every device event, and never reading)
 * and without them, interleaved in rounds in the same run. The limit is the
 * figure without stuck clients: the target is p99 with them below
 * twice that.
 *
 *   stuck_client [-n ITERATIONS] [-k STUCK] SOCKET FREE_PCI
 *
 * It starts a barkeepd of its own (bench/run's serves one device, and the
 * events must come from a device the measuring client does not use, or its
 * ALLOCs would wait out the resets): FREE_PCI (vfio) to measure on, and a
 * 16 MiB sysmem device whose resets only pause and resume it. SOCKET is not
 * used. A stuck client's queue fills until max-queued-events (default 128)
 * and the daemon disconnects it; the process that keeps the stuck clients
 * connects a new one at once, so K stay stuck throughout; each round with
 * them starts once the daemon has dropped K (the steady state). Figures: median
 * and p99 with and without, their ratios, resets done and stuck clients
 * disconnected, and for scale the figure with the resets stopped too. No
 * figure is judged: it prints them.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"
#include "proto/codec.h"
#include "tests/lib/benchd.h"
#include "tests/lib/stats.h"
#include "tests/lib/vmtest.h"

#define NAME "stuck_client"
#define die(...) bench_die(NAME, __VA_ARGS__)
#define DIR "/run/barkeep-stuck"
#define ROUNDS 4
#define WARMUP 100
#define MAX_STUCK 32
#define RESET_GAP_US 1000 /* between two resets: events keep coming, the CPU is shared */

/* QUIET: no stuck clients and the resets stopped (SIGSTOP), for scale. */
enum phase { WITHOUT, WITH, QUIET, N_PHASES };

/* Counted by the helper processes, read by the parent. */
struct counters {
	volatile unsigned long resets, stuck_dropped;
};

static const char *sock_path;
static struct counters *counters;

/* ---- the event source: admin resets of the sysmem device ------------------ */

static _noreturn_ void reset_loop(uint32_t device)
{
	struct barkeep *admin;

	if (barkeep_connect(sock_path, NAME "-admin", &admin) < 0)
		die("admin: %s", barkeep_error_message(NULL));
	for (;;) {
		if (barkeep_reset(admin, device, true, 0) < 0)
			die("reset of device %u failed: %s", device, barkeep_error_message(admin));
		counters->resets++;
		(void)barkeep_dispatch(admin); /* its own events, if any */
		usleep(RESET_GAP_US);
	}
}

/* ---- the stuck clients -------------------------------------------------------- */

/* Connects, says HELLO with WATCH and never reads again. */
static int stuck_connect(void)
{
	int fd = test_raw_connect(sock_path);

	if (fd < 0 || test_raw_hello(fd, PROTO_CAP_WATCH) < 0)
		die("a stuck client could not connect: %m");
	return fd;
}

/* Keeps k stuck clients connected while told 'S', none after 'N'; answers
 * each command with 'k' once done. Exits at end of stream. */
static _noreturn_ void stuck_keeper(int ctl, unsigned k)
{
	struct pollfd p[MAX_STUCK + 1];
	unsigned n = 0;

	p[0] = (struct pollfd){ ctl, POLLIN, 0 };
	for (;;) {
		if (poll(p, n + 1, -1) < 0 && errno != EINTR)
			die("poll: %m");
		for (unsigned i = 1; i <= n; i++)
			if (p[i].revents & (POLLHUP | POLLERR)) {
				close(p[i].fd);
				p[i].fd = stuck_connect();
				counters->stuck_dropped++;
			}
		if (!(p[0].revents & (POLLIN | POLLHUP)))
			continue;
		char c;
		if (read(ctl, &c, 1) != 1)
			_exit(EXIT_SUCCESS);
		for (unsigned i = 1; i <= n; i++)
			close(p[i].fd);
		n = c == 'S' ? k : 0;
		for (unsigned i = 1; i <= n; i++)
			p[i] = (struct pollfd){ stuck_connect(), 0, 0 };
		if (write(ctl, "k", 1) != 1)
			_exit(EXIT_FAILURE);
	}
}

/* Switches the stuck clients on or off. On: waits until the daemon has
 * dropped k of them for a full queue, so that the measurement sees the
 * steady state (queues full, clients dropped and replaced), not fresh
 * connections whose events still fit in the socket buffer. */
static void stuck_set(int ctl, enum phase ph, unsigned k)
{
	char c = ph == WITH ? 'S' : 'N';
	unsigned long dropped = counters->stuck_dropped;

	if (write(ctl, &c, 1) != 1 || read(ctl, &c, 1) != 1)
		die("the stuck client keeper died");
	for (int i = 0; ph == WITH && counters->stuck_dropped < dropped + k; i++) {
		if (i == 600)
			die("the daemon never disconnected the stuck clients (%lu of %u in 60 s)",
			    counters->stuck_dropped - dropped, k);
		usleep(100 * 1000);
	}
}

/* ---- measuring ------------------------------------------------------------------ */

static uint64_t alloc_release(struct barkeep *bk, const struct barkeep_alloc_params *p)
{
	struct barkeep_lease *l;
	uint64_t t0 = bench_now_ns();

	if (barkeep_alloc(bk, p, &l) < 0)
		die("ALLOC failed: %s", barkeep_error_message(bk));
	if (barkeep_release(bk, l) < 0)
		die("RELEASE failed: %s", barkeep_error_message(bk));
	return bench_now_ns() - t0;
}

static uint32_t device_id(struct barkeep *bk, const char *label)
{
	struct barkeep_device *d;
	size_t n;
	uint32_t id = UINT32_MAX;

	if (barkeep_list_devices(bk, &d, &n) < 0)
		die("LIST_DEVICES failed: %s", barkeep_error_message(bk));
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i].label, label) == 0)
			id = d[i].id;
	free(d);
	if (id == UINT32_MAX)
		die("the daemon has no device %s", label);
	return id;
}

static pid_t spawn(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %m");
	return pid;
}

static void print_figure(const char *what, uint64_t *v, size_t n, double *ret_med, double *ret_p99)
{
	*ret_med = (double)bench_percentile_u64(v, n, 50) / 1e3;
	*ret_p99 = (double)bench_percentile_u64(v, n, 99) / 1e3;
	printf(NAME ": %-50s median %8.1f us, p99 %8.1f us\n", what, *ret_med, *ret_p99);
}

int main(int argc, char **argv)
{
	size_t n = 2000;
	unsigned k = 4;
	int c;

	while ((c = getopt(argc, argv, "n:k:h")) >= 0) {
		switch (c) {
		case 'n': n = (size_t)strtoul(optarg, NULL, 10); break;
		case 'k': k = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "Usage: %s [-n ITERATIONS] [-k STUCK] SOCKET FREE_PCI\n", argv[0]);
			return c == 'h' ? EXIT_SUCCESS : EXIT_FAILURE;
		}
	}
	if (argc - optind != 2 || n < ROUNDS || k < 1 || k > MAX_STUCK)
		die("want SOCKET and FREE_PCI, at least %d iterations, 1 to %d stuck clients; see -h",
		    ROUNDS, MAX_STUCK);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	char sections[512], sock[128];
	snprintf(sections, sizeof(sections),
		 "[limits]\nmax-clients = 64\nmax-clients-per-uid = 64\n\n"
		 "[device vram]\npci = %s\nlabel = vram\nallow-users = root\n\n"
		 "[device events]\nbackend = sysmem\nsize = 16M\nlabel = events\nallow-users = root\n",
		 argv[optind + 1]);
	pid_t daemon = bench_daemon_start(NAME, DIR, sections, sock, sizeof(sock));
	sock_path = sock;
	counters = mmap(NULL, sizeof(*counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	if (counters == MAP_FAILED)
		die("mmap: %m");

	struct barkeep *bk;
	if (barkeep_connect(sock, NAME, &bk) < 0)
		die("%s", barkeep_error_message(NULL));
	struct barkeep_alloc_params params = { .by_id = true, .device_id = device_id(bk, "vram"),
					       .size = 4096 };
	uint32_t events_dev = device_id(bk, "events");

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair: %m");
	pid_t keeper = spawn();
	if (keeper == 0) {
		close(sv[0]);
		stuck_keeper(sv[1], k);
	}
	close(sv[1]);
	pid_t resetter = spawn();
	if (resetter == 0)
		reset_loop(events_dev);

	for (int i = 0; i < WARMUP; i++)
		(void)alloc_release(bk, &params);
	uint64_t *s[N_PHASES];
	size_t got[N_PHASES] = { 0 };
	for (int p = 0; p < N_PHASES; p++)
		if (!(s[p] = calloc(n, sizeof(uint64_t))))
			die("out of memory");
	unsigned long resets0 = counters->resets;
	for (size_t r = 0; r < ROUNDS; r++) {
		size_t per_round = n / ROUNDS + (r < n % ROUNDS);
		for (int j = 0; j < N_PHASES; j++) {
			enum phase ph = (enum phase)((r + (size_t)j) % N_PHASES);
			kill(resetter, ph == QUIET ? SIGSTOP : SIGCONT);
			stuck_set(sv[0], ph, k);
			for (size_t i = 0; i < per_round; i++)
				s[ph][got[ph]++] = alloc_release(bk, &params);
		}
	}
	stuck_set(sv[0], WITHOUT, k);
	kill(resetter, SIGCONT);
	unsigned long resets = counters->resets - resets0, dropped = counters->stuck_dropped;
	kill(resetter, SIGKILL);
	waitpid(resetter, NULL, 0);
	close(sv[0]);
	waitpid(keeper, NULL, 0);
	barkeep_disconnect(bk);
	bench_daemon_stop(NAME, DIR, daemon);

	double med[N_PHASES], p99[N_PHASES];
	printf(NAME ": %zu ALLOC+RELEASE of 4096 bytes per phase, interleaved in %d rounds; "
	       "%lu resets of a sysmem device meanwhile (%lu events to each watcher)\n",
	       n, ROUNDS, resets, 2 * resets);
	print_figure("limit: without stuck clients", s[WITHOUT], got[WITHOUT], &med[WITHOUT],
		     &p99[WITHOUT]);
	print_figure("for scale: no stuck clients, no resets", s[QUIET], got[QUIET], &med[QUIET],
		     &p99[QUIET]);
	char what[64];
	snprintf(what, sizeof(what), "with %u stuck clients (never read)", k);
	print_figure(what, s[WITH], got[WITH], &med[WITH], &p99[WITH]);
	printf(NAME ": stuck clients disconnected for a full queue: %lu (each replaced at once)\n",
	       dropped);
	printf(NAME ": with %u stuck clients: median %.2fx, p99 %.2fx of the figure without "
	       "(target p99 < 2x)\n", k, med[WITH] / med[WITHOUT], p99[WITH] / p99[WITHOUT]);
	return EXIT_SUCCESS;
}

// SPDX-License-Identifier: MIT
/*
 * dbus_latency: org.barkeep.Broker1's RequestBuffer + ReleaseBuffer round
 * trip against the limit measured in the same run through the same bus
 * daemon: a bare sd-bus method call to a forked server that exports one
 * VFIO dma-buf window per call and returns its fd (what any broker on D-Bus
 * must do), and that call plus one one-way message (the floor of an
 * interface that has a release call).
 *
 *   dbus_latency [-n ITERATIONS] [-s SIZE] [-d DEVICE] SOCKET FREE_PCI
 *
 * SOCKET is ignored (bench/run's calling convention). FREE_PCI is a vfio-pci
 * device barkeepd does not hold, for the limit's exports. The limit's server
 * owns org.barkeep.Bench1, which the bus policy must let root own
 * (tests/vm/dbus-bench.conf). ReleaseBuffer is sent without expecting a
 * reply, as libbarkeep does not wait for RELEASE's OK. When barkeepd is not
 * on the system bus the bench says so and exits 0: nothing to measure.
 *
 * Prints median and p99 of each kind, measured interleaved in rounds, the
 * ratios, and the CPU time barkeepd and the limit's server spend per round
 * trip (from /proc: steadier than wall-clock figures on a loaded TCG host;
 * note that the limit's server never frees a buffer, its client's close
 * does, while barkeepd closes the last reference itself on release).
 * Nothing is judged. Windows are 4 KiB by default, as in lease_latency.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "common/macro.h"
#include "common/vfio.h"
#include "tests/lib/stats.h"

#define NAME "dbus_latency"
#define die(...) bench_die(NAME, __VA_ARGS__)
#define BROKER "org.barkeep.Broker1"
#define BROKER_PATH "/org/barkeep/Broker1"
#define BENCH "org.barkeep.Bench1"
#define BENCH_PATH "/org/barkeep/Bench1"
#define WARMUP 100
#define ROUNDS 10
#define MIN_ITERATIONS 300
#define BUDGET_NS (30ull * 1000000000ull)

enum kind { BARKEEP, LIMIT, LIMIT_ONEWAY, N_KINDS };
static const char *const kind_names[N_KINDS] = {
	"RequestBuffer + ReleaseBuffer (barkeepd)",
	"bare call returning a dma-buf fd",
	"bare call + one one-way message",
};

struct samples {
	uint64_t *ns;
	size_t n;
};

/* ---- the limit's server ------------------------------------------------ */

struct server {
	struct vfio_dev dev;
	uint32_t bar;
};

static int method_export(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct server *s = userdata;
	uint64_t size;
	int r = sd_bus_message_read(m, "t", &size);
	if (r < 0)
		return r;
	int fd = vfio_dmabuf_export(&s->dev, s->bar, 0, size, O_RDWR);
	if (fd < 0)
		return fd;
	r = sd_bus_reply_method_return(m, "h", fd);
	close(fd);
	return r;
}

static int method_drop(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return sd_bus_reply_method_return(m, NULL); /* sent one-way: no reply goes out */
}

static const sd_bus_vtable bench_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Export", "t", "h", method_export, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Drop", "t", "", method_drop, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END,
};

static _noreturn_ void serve(struct server *s, int ready_fd)
{
	sd_bus *bus = NULL;
	int r = sd_bus_open_system(&bus);
	if (r >= 0)
		r = sd_bus_add_object_vtable(bus, NULL, BENCH_PATH, BENCH, bench_vtable, s);
	if (r >= 0)
		r = sd_bus_request_name(bus, BENCH, 0);
	if (r < 0) {
		fprintf(stderr, NAME ": the limit's server cannot own %s: %s (is tests/vm/dbus-bench.conf "
			"in /etc/dbus-1/system.d?)\n", BENCH, strerror(-r));
		_exit(EXIT_FAILURE);
	}
	(void)!write(ready_fd, "1", 1);
	close(ready_fd);
	for (;;) {
		r = sd_bus_process(bus, NULL);
		if (r < 0)
			_exit(EXIT_FAILURE);
		if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
			_exit(EXIT_FAILURE);
	}
}

static pid_t server_start(const char *pci)
{
	struct server s;
	int pipefd[2], r;
	char c;

	r = vfio_dev_open(pci, &s.dev);
	if (r < 0)
		die("cannot open %s through VFIO: %s%s", pci, strerror(-r),
		    r == -EBUSY ? " (is barkeepd holding it? give a device it does not serve)" : "");
	r = vfio_pick_vram_bar(&s.dev);
	if (r < 0)
		die("%s has no BAR to export from", pci);
	s.bar = (uint32_t)r;
	if (vfio_dmabuf_probe(&s.dev) < 0)
		die("%s cannot export dma-bufs", pci);
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		die("pipe: %m");
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %m");
	if (pid == 0) {
		close(pipefd[0]);
		serve(&s, pipefd[1]);
	}
	close(pipefd[1]);
	vfio_dev_close(&s.dev);
	if (read(pipefd[0], &c, 1) != 1)
		die("the limit's server did not start");
	close(pipefd[0]);
	printf(NAME ": limit: %s in a forked process exports windows of %s BAR%u\n", BENCH, pci, s.bar);
	return pid;
}

/* ---- the client -------------------------------------------------------- */

static void send_oneway(sd_bus *bus, const char *dest, const char *path, const char *iface,
			const char *member, const char *sig, ...)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	va_list ap;

	int r = sd_bus_message_new_method_call(bus, &m, dest, path, iface, member);
	if (r >= 0)
		r = sd_bus_message_set_expect_reply(m, 0);
	va_start(ap, sig);
	if (r >= 0)
		r = sd_bus_message_appendv(m, sig, ap);
	va_end(ap);
	if (r >= 0)
		r = sd_bus_send(bus, m, NULL);
	if (r < 0)
		die("cannot send %s: %s", member, strerror(-r));
}

/* The reply owns the fd it carries: dropping the reply closes it, so the
 * window is unreferenced by the time ReleaseBuffer arrives (else it would
 * wait in quarantine for barkeepd's next sweep). */
static uint64_t barkeep_once(sd_bus *bus, const char *device, uint64_t size, uint64_t *ret_request)
{
	_cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	char lease[128];
	const char *path;
	int fd;

	uint64_t t0 = bench_now_ns();
	int r = sd_bus_call_method(bus, BROKER, BROKER_PATH, BROKER, "RequestBuffer", &err, &reply,
				   "sta{sv}", device, size, 0);
	if (r < 0)
		die("RequestBuffer: %s", err.message ? err.message : strerror(-r));
	if (sd_bus_message_read(reply, "oh", &path, &fd) < 0 || strlen(path) >= sizeof(lease))
		die("RequestBuffer: unexpected reply");
	strcpy(lease, path);
	sd_bus_message_unref(reply);
	if (ret_request)
		*ret_request = bench_now_ns() - t0;
	send_oneway(bus, BROKER, BROKER_PATH, BROKER, "ReleaseBuffer", "o", lease);
	return bench_now_ns() - t0;
}

static uint64_t limit_once(sd_bus *bus, uint64_t size, bool oneway)
{
	_cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	int fd;

	uint64_t t0 = bench_now_ns();
	int r = sd_bus_call_method(bus, BENCH, BENCH_PATH, BENCH, "Export", &err, &reply, "t", size);
	if (r < 0)
		die("Export: %s", err.message ? err.message : strerror(-r));
	if (sd_bus_message_read(reply, "h", &fd) < 0)
		die("Export: unexpected reply");
	sd_bus_message_unref(reply);
	if (oneway)
		send_oneway(bus, BENCH, BENCH_PATH, BENCH, "Drop", "t", size);
	return bench_now_ns() - t0;
}

static double pct(struct samples *s, double p)
{
	bench_sort_u64(s->ns, s->n);
	size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
	return (double)s->ns[i] / 1000.0;
}

static pid_t name_pid(sd_bus *bus, const char *name)
{
	_cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	uint32_t pid = 0;
	if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
			       "GetConnectionUnixProcessID", &err, &reply, "s", name) < 0 ||
	    sd_bus_message_read(reply, "u", &pid) < 0)
		return 0;
	return (pid_t)pid;
}

static bool broker_on_bus(sd_bus *bus)
{
	_cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	return sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
				  "org.freedesktop.DBus", "GetNameOwner", &err, &reply, "s", BROKER) >= 0;
}

int main(int argc, char **argv)
{
	uint64_t size = 4096; /* as lease_latency: the IPC, not the scrub of a large window */
	size_t iterations = 0;
	const char *device = "";
	int c;

	while ((c = getopt(argc, argv, "n:s:d:")) >= 0) {
		switch (c) {
		case 'n': iterations = strtoull(optarg, NULL, 0); break;
		case 's': size = strtoull(optarg, NULL, 0); break;
		case 'd': device = optarg; break;
		default: return EXIT_FAILURE;
		}
	}
	if (argc - optind != 2)
		die("usage: " NAME " [-n ITERATIONS] [-s SIZE] [-d DEVICE] SOCKET FREE_PCI");
	const char *pci = argv[optind + 1];

	sd_bus *bus = NULL;
	int r = sd_bus_open_system(&bus);
	if (r < 0 || !broker_on_bus(bus)) {
		printf(NAME ": %s is not on the system bus: skipped (start barkeepd with a system bus "
		       "and the policy of systemd/org.barkeep.Broker1.conf)\n", BROKER);
		return EXIT_SUCCESS;
	}
	pid_t server = server_start(pci);

	for (int i = 0; i < WARMUP; i++) {
		barkeep_once(bus, device, size, NULL);
		limit_once(bus, size, false);
		limit_once(bus, size, true);
	}
	/* Size the run from the warm-up's pace unless told. */
	if (!iterations) {
		uint64_t t0 = bench_now_ns();
		for (int i = 0; i < 20; i++) {
			barkeep_once(bus, device, size, NULL);
			limit_once(bus, size, false);
			limit_once(bus, size, true);
		}
		uint64_t per = (bench_now_ns() - t0) / 20 + 1;
		iterations = MAX((size_t)(BUDGET_NS / per), (size_t)MIN_ITERATIONS);
	}
	size_t per_round = (iterations + ROUNDS - 1) / ROUNDS;
	struct samples s[N_KINDS], req = { calloc(per_round * ROUNDS, sizeof(uint64_t)), 0 };
	if (!req.ns)
		die("out of memory");
	for (int k = 0; k < N_KINDS; k++) {
		s[k].ns = calloc(per_round * ROUNDS, sizeof(uint64_t));
		s[k].n = 0;
		if (!s[k].ns)
			die("out of memory");
	}
	/* CPU time per round trip of each server: the wall-clock figures of a
	 * loaded TCG host drift; what each side burns does not. */
	pid_t broker_pid = name_pid(bus, BROKER);
	uint64_t cpu_barkeepd = 0, cpu_bare = 0;
	for (int round = 0; round < ROUNDS; round++) {
		/* Each round in a different order, so no kind always runs first. */
		for (int k0 = 0; k0 < N_KINDS; k0++) {
			int k = (k0 + round) % N_KINDS;
			uint64_t c0 = k == BARKEEP ? bench_cpu_us(broker_pid) : k == LIMIT ? bench_cpu_us(server) : 0;
			for (size_t i = 0; i < per_round; i++)
				s[k].ns[s[k].n++] = k == BARKEEP ? barkeep_once(bus, device, size, &req.ns[req.n++])
								 : limit_once(bus, size, k == LIMIT_ONEWAY);
			if (k == BARKEEP)
				cpu_barkeepd += bench_cpu_us(broker_pid) - c0;
			else if (k == LIMIT)
				cpu_bare += bench_cpu_us(server) - c0;
		}
	}

	printf(NAME ": %zu round trips of each kind, %llu-byte windows, %d interleaved rounds\n",
	       s[0].n, (unsigned long long)size, ROUNDS);
	double med[N_KINDS], p99[N_KINDS];
	for (int k = 0; k < N_KINDS; k++) {
		med[k] = pct(&s[k], 0.5);
		p99[k] = pct(&s[k], 0.99);
		printf("  %-42s median %8.1f us   p99 %8.1f us\n", kind_names[k], med[k], p99[k]);
		if (k == BARKEEP)
			printf("    %-40s median %8.1f us   p99 %8.1f us\n", "of which RequestBuffer's reply",
			       pct(&req, 0.5), pct(&req, 0.99));
	}
	printf("  ratio barkeepd / bare call:             median %.2fx   p99 %.2fx   (target <= 1.2x)\n",
	       med[BARKEEP] / med[LIMIT], p99[BARKEEP] / p99[LIMIT]);
	if (broker_pid > 0)
		printf("  CPU per round trip: barkeepd %.1f us (RequestBuffer + ReleaseBuffer), bare server %.1f us\n",
		       (double)cpu_barkeepd / (double)s[BARKEEP].n, (double)cpu_bare / (double)s[LIMIT].n);
	printf("  ratio barkeepd / bare call + one-way:   median %.2fx   p99 %.2fx\n",
	       med[BARKEEP] / med[LIMIT_ONEWAY], p99[BARKEEP] / p99[LIMIT_ONEWAY]);
	/* Any interface with a release call sends a second message through the
	 * bus daemon: no implementation of this one can come in under that. */
	printf("  floor (bare call + one-way) / bare call: median %.2fx   p99 %.2fx\n",
	       med[LIMIT_ONEWAY] / med[LIMIT], p99[LIMIT_ONEWAY] / p99[LIMIT]);

	kill(server, SIGTERM);
	waitpid(server, NULL, 0);
	sd_bus_flush_close_unref(bus);
	for (int k = 0; k < N_KINDS; k++)
		free(s[k].ns);
	free(req.ns);
	return EXIT_SUCCESS;
}

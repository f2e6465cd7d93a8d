// SPDX-License-Identifier: MIT
/*
 * soak: the chaos soak against a running barkeepd (README.md).
 *
 *   soak SOCKET [--clients N] [--seconds S] [--seed X] [--reset-ms MS]
 *        [--restart-cmd CMD --restart-ms MS] [--unplug PCI]
 *
 * Prints its seed first (the same seed makes the same choices; timing
 * still differs), one line of progress every 10 s, then one ok/FAIL line
 * per invariant and "N passed, N failed".
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/report.h"
#include "tests/soak/soak.h"

struct soak_opts opts = { .n_clients = 200, .seconds = 60, .reset_ms = 2000, .restart_ms = 15000 };
struct soak_stats stats;

static uint64_t rng_state;

void soak_srand(uint64_t seed)
{
	rng_state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t soak_rand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

uint64_t soak_below(uint64_t n)
{
	return soak_rand() % n;
}

int64_t soak_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- verdicts ---- */

static const char *const invariants[] = {
	"exclusivity", "one pause per reset", "pause then resume", "one pause and resume per reset",
	"pause then gone", "gone", "LIST_LEASES", "reclaim", "owner's release", "expected errors",
	"free bytes back",
};
#define N_INV (sizeof(invariants) / sizeof(invariants[0]))
static unsigned long violations[N_INV];

void soak_violation(const char *invariant, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	for (i = 0; i < N_INV - 1 && strcmp(invariants[i], invariant) != 0; i++)
		;
	stats.violations++;
	if (violations[i]++ >= 10)
		return;
	printf("  violation (%s, seed %#" PRIx64 "): ", invariant, opts.seed);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void verdicts(void)
{
	for (size_t i = 0; i < N_INV; i++)
		if (violations[i])
			test_fail(invariants[i], "%lu violation(s), seed %#" PRIx64, violations[i], opts.seed);
		else
			test_ok(invariants[i]);
}

/* ---- what a restart keeps out of use ---- */

/* A window a holder opened stays out of use after a restart (its holders'
 * exports are not in the fd store). One whose last reference ended just
 * before the restart may or may not: barkeepd settles a released window
 * after its sweep (250 ms) and the zeroing, and keeps it if the restart
 * came first; so may one that only children still hold. Such windows widen
 * the expected free bytes to a range. */
#define SETTLE_MS 3000

static uint64_t initial_free[SOAK_MAX_DEV];
struct counted {
	uint64_t key, off, size;
	uint32_t dev;
	bool surely;
	int restart; /* which restart counted it */
};
static struct counted *counted; /* windows a restart keeps, surely or maybe */
static size_t n_counted;

static bool was_counted(uint64_t key)
{
	for (size_t i = 0; i < n_counted; i++)
		if (counted[i].key == key)
			return true;
	return false;
}

static void forget_counted(uint32_t dev)
{
	size_t n = 0;

	for (size_t i = 0; i < n_counted; i++)
		if (counted[i].dev != dev)
			counted[n++] = counted[i];
	n_counted = n;
}

/* What the model keeps out of use on dev, for comparing with the daemon's
 * "kept out of use" log lines when the free bytes disagree. */
static void print_counted(uint32_t dev)
{
	for (size_t i = 0; i < n_counted; i++)
		if (counted[i].dev == dev)
			printf("    model: device %" PRIu32 " window %#" PRIx64 "+%" PRIu64 " (key %" PRIu64
			       ") %s at restart %d\n", dev, counted[i].off, counted[i].size, counted[i].key,
			       counted[i].surely ? "kept" : "maybe kept", counted[i].restart);
}

static int n_restarts_begun;
static bool restarting; /* from RESTART_BEGIN to RESTART_END */

static void count_window(uint64_t key, uint32_t dev, uint64_t off, uint64_t size, bool surely)
{
	struct counted *p = realloc(counted, (n_counted + 1) * sizeof(*p));
	if (!p)
		return;
	counted = p;
	counted[n_counted++] = (struct counted){ .key = key, .off = off, .size = size, .dev = dev,
						 .restart = n_restarts_begun, .surely = surely };
}

/* At RESTART_BEGIN: every window ever shared that is held now, or was
 * until SETTLE_MS ago. */
static void count_shared_windows(void)
{
	size_t n;
	const uint64_t *keys = clients_shared_keys(&n);
	int64_t since = soak_now_ms() - SETTLE_MS;
	uint32_t dev;
	uint64_t off, size;
	bool children;

	n_restarts_begun++;
	for (size_t i = 0; i < n; i++) {
		if (was_counted(keys[i]))
			continue;
		/* Children hold copies for moments and may have closed them
		 * already (exited, not reaped yet). */
		if (ledger_window(keys[i], &dev, &off, &size, &children))
			count_window(keys[i], dev, off, size, !children);
		else if (ledger_window_ended_since(keys[i], since, &dev, &off, &size))
			count_window(keys[i], dev, off, size, false);
	}
}

/* The soak goes on while the chaos restarts the broker, so what happens
 * between RESTART_BEGIN and the kill is a race: a window first opened then
 * (the old broker still answered) may be kept, and a window counted as
 * surely kept whose last hold ended then may be freed first. */
void soak_window_opened(uint64_t key)
{
	uint32_t dev;
	uint64_t off, size;
	bool children;

	if (restarting && !was_counted(key) && ledger_window(key, &dev, &off, &size, &children))
		count_window(key, dev, off, size, false);
}

/* t_stopped < 0: the chaos stopped before it said whether the restart
 * happened (the phase ended in it): nothing it counted is sure. */
static void settle_restart(int64_t t_stopped)
{
	for (size_t i = 0; i < n_counted; i++) {
		struct counted *c = &counted[i];
		if (c->restart == n_restarts_begun && c->surely &&
		    (t_stopped < 0 || !ledger_window_held_at(c->key, t_stopped)))
			c->surely = false;
	}
}

/* ---- leases lost at a restart ---- */

#define MAX_LOST 1024
#define MAX_RESTARTS 256

struct lost {
	uint32_t dev;
	unsigned conn;
	uint64_t lease_id;
	int64_t t;
	char why[128];
};

static struct lost lost[MAX_LOST];
static size_t n_lost;
static int64_t restart_ms[MAX_RESTARTS]; /* when each restart began */
static size_t n_restart_ms;
static int64_t unplug_ms[SOAK_MAX_DEV];  /* when an unplug of the device began */

static void say_lost(const struct lost *l)
{
	soak_violation("reclaim", "connection %u: lease %" PRIu64 " of device %" PRIu32
		       " was neither shared nor opened and was not reclaimed (%s)", l->conn,
		       l->lease_id, l->dev, l->why);
}

void soak_lost_plain(uint32_t dev, unsigned conn, uint64_t lease_id, const char *why)
{
	struct lost l = { .dev = dev, .conn = conn, .lease_id = lease_id, .t = soak_now_ms() };

	snprintf(l.why, sizeof(l.why), "%s", why);
	if (n_lost == MAX_LOST)
		say_lost(&l);
	else
		lost[n_lost++] = l;
}

void soak_judge_lost(void)
{
	for (size_t i = 0; i < n_lost; i++) {
		const struct lost *l = &lost[i];
		int64_t began = -1;
		for (size_t r = 0; r < n_restart_ms; r++)
			if (restart_ms[r] <= l->t)
				began = restart_ms[r];
		int64_t u = unplug_ms[l->dev % SOAK_MAX_DEV];
		if (began < 0 || !u || u < began || u > l->t)
			say_lost(l);
		else
			stats.lost_to_unplug++;
	}
	n_lost = 0;
}

/* ---- chaos reports ---- */

static void on_report(int fd)
{
	struct chaos_report rep;

	if (recv(fd, &rep, sizeof(rep), MSG_DONTWAIT) != sizeof(rep))
		return;
	switch (rep.kind) {
	case CHAOS_RESET:
		if (rep.r < 0) {
			stats.resets_failed++;
			break;
		}
		stats.resets++;
		clients_check_reset(rep.dev, rep.gen, rep.t_send, rep.gone);
		if (rep.gone)
			ledger_drop_device(rep.dev);
		break;
	case CHAOS_UNPLUG:
		stats.unplugs++;
		printf("  unplugged device %u in %" PRId64 " ms (%s)\n", rep.dev, rep.t_done - rep.t_send,
		       rep.r < 0 ? strerror(-rep.r) : "ok");
		clients_check_reset(rep.dev, rep.gen, rep.t_send, true);
		ledger_drop_device(rep.dev);
		unplug_ms[rep.dev % SOAK_MAX_DEV] = rep.t_send;
		forget_counted(rep.dev); /* a new start opens it afresh */
		break;
	case CHAOS_RESTART_BEGIN:
		if (n_restart_ms < MAX_RESTARTS)
			restart_ms[n_restart_ms++] = soak_now_ms();
		clients_hold_grants(true);
		count_shared_windows();
		restarting = true;
		(void)!write(fd, "g", 1);
		break;
	case CHAOS_RESTART_END:
		stats.restarts++;
		clients_hold_grants(false);
		settle_restart(rep.t_stopped);
		restarting = false;
		printf("  restart %lu took %" PRId64 " ms%s\n", stats.restarts, rep.t_done - rep.t_send,
		       rep.r < 0 ? " (the restart command failed)" : "");
		break;
	}
	fflush(stdout);
}

/* ---- the end: every window back ---- */

/* Free bytes per device; gone devices have bit id set in *ret_gone. */
static bool list_free(uint64_t out[SOAK_MAX_DEV], unsigned *ret_gone)
{
	struct barkeep *bk;
	struct barkeep_device *d;
	size_t n;

	memset(out, 0, SOAK_MAX_DEV * sizeof(*out));
	*ret_gone = 0;
	if (barkeep_connect(opts.sock, "soak-check", &bk) < 0)
		return false;
	bool ok = barkeep_list_devices(bk, &d, &n) == 0;
	for (size_t i = 0; ok && i < n; i++)
		if (d[i].id < SOAK_MAX_DEV) {
			out[d[i].id] = d[i].free_bytes;
			if (d[i].state == BARKEEP_DEVICE_GONE)
				*ret_gone |= 1u << d[i].id;
		}
	if (ok)
		free(d);
	barkeep_disconnect(bk);
	return ok;
}

/* After an unplug the device is back only after a restart. */
static void restart_for_unplugged(void)
{
	int st = system(opts.restart_cmd);
	printf("  restarted barkeepd to take the unplugged device up again (status %d)\n", st);
	for (int i = 0; i < 100; i++) {
		uint64_t f[SOAK_MAX_DEV];
		unsigned gone;
		if (list_free(f, &gone))
			break;
		usleep(100 * 1000);
	}
}

static void check_free_bytes(void)
{
	uint64_t now[SOAK_MAX_DEV];
	unsigned gone = 0;
	bool same = false;

	uint64_t out_of_use[SOAK_MAX_DEV] = {}; /* surely kept */
	uint64_t maybe_out[SOAK_MAX_DEV] = {};  /* kept if the restart came first */

	if (restarting)
		settle_restart(-1);
	restarting = false;
	for (size_t i = 0; i < n_counted; i++)
		*(counted[i].surely ? &out_of_use : &maybe_out)[counted[i].dev % SOAK_MAX_DEV] +=
			counted[i].size;
	/* Orphans wait reclaim-timeout; quarantined windows wait for the sweep. */
	for (int i = 0; i < 600 && !same; i++) {
		if (i)
			usleep(100 * 1000);
		same = list_free(now, &gone);
		for (size_t d = 0; same && d < SOAK_MAX_DEV; d++)
			same = (gone & (1u << d)) ||
			       (now[d] + out_of_use[d] <= initial_free[d] &&
				now[d] + out_of_use[d] + maybe_out[d] >= initial_free[d]);
	}
	for (size_t d = 0; d < SOAK_MAX_DEV; d++)
		if (initial_free[d])
			printf("  device %zu: %" PRIu64 " bytes free at start, %" PRIu64 " at end%s, %" PRIu64
			       " kept out of use by restarts (shared windows), %" PRIu64 " more that "
			       "may be (released within %d ms of a restart)\n", d, initial_free[d],
			       now[d], gone & (1u << d) ? " (gone)" : "", out_of_use[d], maybe_out[d],
			       SETTLE_MS);
	for (uint32_t d = 0; !same && d < SOAK_MAX_DEV; d++)
		if (initial_free[d] && !(gone & (1u << d)))
			print_counted(d);
	if (!same)
		soak_violation("free bytes back", "free bytes did not come back");
	if (gone && (!stats.unplugs || opts.restart_cmd))
		soak_violation("free bytes back", "a device is gone at the end (mask %#x)", gone);
}

/* ---- main ---- */

static int parse(int argc, char **argv)
{
	static const struct option o[] = {
		{ "clients", required_argument, NULL, 'c' },  { "seconds", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },     { "reset-ms", required_argument, NULL, 'r' },
		{ "restart-cmd", required_argument, NULL, 'R' }, { "restart-ms", required_argument, NULL, 'T' },
		{ "unplug", required_argument, NULL, 'u' },   {}
	};
	int c;
	bool seeded = false;

	while ((c = getopt_long(argc, argv, "", o, NULL)) >= 0) {
		switch (c) {
		case 'c': opts.n_clients = (unsigned)strtoul(optarg, NULL, 0); break;
		case 's': opts.seconds = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'S': opts.seed = strtoull(optarg, NULL, 0); seeded = true; break;
		case 'r': opts.reset_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'R': opts.restart_cmd = optarg; break;
		case 'T': opts.restart_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'u': opts.unplug = optarg; break;
		default: return -EINVAL;
		}
	}
	if (optind + 1 != argc || opts.n_clients == 0 || opts.restart_ms == 0)
		return -EINVAL;
	opts.sock = argv[optind];
	if (!seeded && getrandom(&opts.seed, sizeof(opts.seed), 0) != sizeof(opts.seed))
		opts.seed = (uint64_t)time(NULL);
	return 0;
}

static void loop(int chaos_fd)
{
	static struct pollfd pfd[4097];
	int64_t start = soak_now_ms(), end = start + (int64_t)opts.seconds * 1000, next_note = start;

	for (int64_t now = start; now < end; now = soak_now_ms()) {
		size_t n = clients_pollfds(pfd + 1, 4096);
		pfd[0] = (struct pollfd){ .fd = chaos_fd, .events = POLLIN };
		if (poll(pfd, n + 1, 0) > 0) {
			if (pfd[0].revents)
				on_report(chaos_fd);
			clients_dispatch_ready(pfd + 1, n);
		}
		for (int i = 0; i < 8; i++)
			clients_step();
		children_reap();
		if (now >= next_note) {
			printf("  %3" PRId64 " s: %lu ops, %lu resets, %lu restarts, %zu windows held, %zu children, %lu violation(s)\n",
			       (now - start) / 1000, stats.ops, stats.resets, stats.restarts, ledger_live(),
			       children_live(), stats.violations);
			fflush(stdout);
			next_note += 10000;
		}
	}
}

int main(int argc, char **argv)
{
	int chaos_fd;
	unsigned gone;

	if (parse(argc, argv) < 0) {
		fprintf(stderr, "usage: soak SOCKET [--clients N] [--seconds S] [--seed X] [--reset-ms MS] "
				"[--restart-cmd CMD] [--restart-ms MS] [--unplug PCI]\n");
		return 2;
	}
	soak_srand(opts.seed);
	printf("soak: seed %#" PRIx64 ", %u clients, %u s, resets every ~%u ms%s%s%s%s\n", opts.seed,
	       opts.n_clients, opts.seconds, opts.reset_ms, opts.restart_cmd ? ", restarts: " : "",
	       opts.restart_cmd ? opts.restart_cmd : "", opts.unplug ? ", unplug " : "",
	       opts.unplug ? opts.unplug : "");
	fflush(stdout);
	if (!list_free(initial_free, &gone))
		return test_fail("connect", "cannot list devices at %s", opts.sock), test_finish();
	pid_t chaos = chaos_start(&chaos_fd);
	if (chaos < 0 || clients_start() < 0)
		return test_fail("start", "cannot start the chaos process or the clients"), test_finish();
	int64_t t0 = soak_now_ms();
	loop(chaos_fd);
	chaos_stop(chaos, chaos_fd);
	children_stop();
	clients_stop();
	soak_judge_lost();
	int64_t t1 = soak_now_ms();
	/* Everything back before a restart takes the unplugged device up, so
	 * that the restart leaves no orphans behind. */
	check_free_bytes();
	if (stats.unplugs && opts.restart_cmd) {
		restart_for_unplugged();
		check_free_bytes();
	}
	printf("soak: seed %#" PRIx64 ": %u clients, %.0f s; %lu ops (%lu alloc, %lu refused, %lu release, "
	       "%lu grant, %lu open, %lu revoke, %lu list, %lu fd passes, %lu abrupt tenants, %lu disconnects); "
	       "%lu resets (%lu failed), %lu unplugs, %lu restarts (%lu reconnects, %lu reclaimed, %lu lost, "
	       "%lu of them with an unplugged device, %lu broken connections); checks: %lu overlap, %lu pause/resume, %lu list; %lu violation(s)\n",
	       opts.seed, opts.n_clients, (double)(t1 - t0) / 1000, stats.ops, stats.allocs,
	       stats.alloc_refused, stats.releases, stats.grants, stats.opens, stats.revokes, stats.lists,
	       stats.passes, stats.abrupt, stats.disconnects, stats.resets, stats.resets_failed,
	       stats.unplugs, stats.restarts, stats.reconnects, stats.reclaimed, stats.lost_leases,
	       stats.lost_to_unplug, stats.lost_conns, stats.overlap_checks, stats.pair_checks, stats.list_checks,
	       stats.violations);
	verdicts();
	return test_finish();
}

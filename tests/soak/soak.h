/* SPDX-License-Identifier: MIT */
/*
 * The chaos soak (README.md): many libbarkeep connections doing random
 * work against a real barkeepd while a chaos process resets devices,
 * restarts the daemon and takes a device away; invariants are checked as
 * it goes. One process holds the connections and the ledger; children
 * hold passed fds or die abruptly with leases.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/lib/barkeep.h"

#define SOAK_MAX_DEV 8

/* ---- main.c: options, randomness, time, verdicts ---- */
struct soak_opts {
	const char *sock;
	unsigned n_clients;
	unsigned seconds;
	uint64_t seed;
	unsigned reset_ms;       /* mean time between resets; 0: none */
	const char *restart_cmd; /* run by the chaos process to restart barkeepd */
	unsigned restart_ms;     /* mean time between restarts */
	const char *unplug;      /* PCI address the chaos process unbinds once */
};
extern struct soak_opts opts;

/* Counters printed at the end. */
struct soak_stats {
	unsigned long ops, allocs, alloc_refused, releases, grants, opens, revokes, lists, passes,
		abrupt, disconnects, lost_conns, reconnects, reclaimed, lost_leases, lost_to_unplug;
	unsigned long resets, resets_failed, restarts, unplugs;
	unsigned long overlap_checks, pair_checks, list_checks, violations;
};
extern struct soak_stats stats;

/* The soak's one stream of randomness (xorshift64*), from opts.seed. */
void soak_srand(uint64_t seed);
uint64_t soak_rand(void);
/* Uniform in [0, n); n > 0. */
uint64_t soak_below(uint64_t n);
int64_t soak_now_ms(void);
/* A plain lease the broker did not give back after a restart: a violation
 * unless its device was unplugged after that restart began (the orphan
 * ended with the device while its holder was away). Judged at the end by
 * soak_judge_lost(), when every unplug has been reported. */
void soak_lost_plain(uint32_t dev, unsigned conn, uint64_t lease_id, const char *why);
void soak_judge_lost(void);
/* A window of key was opened from a grant (it stays out of use after a restart). */
void soak_window_opened(uint64_t key);
/* Counts an invariant violation and prints it (the first few in full). */
__attribute__((format(printf, 2, 3))) void soak_violation(const char *invariant, const char *fmt,
							  ...);

/* ---- ledger.c: which tenant holds which device range ----
 * A span is one live reference to a window: a lease's fd in this process,
 * or a copy held by a child. Spans of different windows (keys) on one
 * device must never overlap. */
#define SPAN_CHILD_NONE 0
uint64_t ledger_new_key(void);
/* Adds a span and checks it against every live one; returns its handle. */
int ledger_add(uint32_t dev, uint64_t off, uint64_t size, uint64_t key, pid_t child);
void ledger_drop(int handle);
/* Drops the spans of a reaped child. */
void ledger_drop_child(pid_t child);
/* Drops every span on a device that went away (its buffers died with it). */
void ledger_drop_device(uint32_t dev);
size_t ledger_live(void);
/* The window of key, if a span of it is live: its device and size, and in
 * *ret_children whether only children hold it (they may be exiting). */
bool ledger_window(uint64_t key, uint32_t *ret_dev, uint64_t *ret_off, uint64_t *ret_size,
		   bool *ret_children);
/* The same for a window whose last span ended at or after since_ms (spans
 * are not reused for LEDGER_KEEP_MS after they end). */
#define LEDGER_KEEP_MS 10000
/* Whether this process held key at t_ms (or does still), within LEDGER_KEEP_MS;
 * children's copies do not count. */
bool ledger_window_held_at(uint64_t key, int64_t t_ms);
bool ledger_window_ended_since(uint64_t key, int64_t since_ms, uint32_t *ret_dev, uint64_t *ret_off,
			       uint64_t *ret_size);

/* ---- clients.c: the connections ---- */
int clients_start(void);
/* One random operation on one random connection. */
void clients_step(void);
/* Delivers the events of every connection (non-blocking). */
void clients_dispatch_all(void);
/* Fills pfd (up to max) for the connections' fds; returns how many. */
struct pollfd;
size_t clients_pollfds(struct pollfd *pfd, size_t max);
/* Delivers the events of the connections poll() found readable. */
void clients_dispatch_ready(const struct pollfd *pfd, size_t n);
/* A reset of dev that paused generation gen finished at t_done, asked at
 * t_send: checks that every connection that held a lease on dev throughout
 * saw exactly that PAUSE and a RESUME (or GONE when gone). */
void clients_check_reset(uint32_t dev, uint64_t gen, int64_t t_send, bool gone);
/* The keys of every window ever shared (granted): a restart keeps those
 * still open out of use for good. No new grants while a restart is held. */
const uint64_t *clients_shared_keys(size_t *ret_n);
void clients_hold_grants(bool hold);
/* Releases everything and disconnects every connection. */
void clients_stop(void);

/* ---- children.c: fd holders and tenants that die abruptly ---- */
/* Passes a copy of fd (a window of key on dev) to a child that holds it a while. */
void children_pass_fd(int fd, uint32_t dev, uint64_t off, uint64_t size, uint64_t key);
/* Forks a tenant with its own connection that takes leases and dies. */
void children_spawn_tenant(void);
/* Reaps exited children and drops their spans. */
void children_reap(void);
/* Kills every child and waits for it. */
void children_stop(void);
size_t children_live(void);

/* ---- chaos.c: the process that resets, restarts and unplugs ---- */
enum chaos_kind { CHAOS_RESET = 1, CHAOS_RESTART_BEGIN, CHAOS_RESTART_END, CHAOS_UNPLUG };
struct chaos_report {
	uint32_t kind;
	uint32_t dev;
	uint64_t gen;   /* RESET: the generation paused */
	int64_t t_send, t_done;
	int64_t t_stopped; /* RESTART_END: the restart command returned (the old broker is dead) */
	int32_t r;      /* 0 or -errno */
	uint32_t gone;  /* RESET/UNPLUG: the device went GONE */
};
/* Starts the chaos process; reports come on *ret_fd; for a restart it
 * waits for one byte on the same socket before it restarts. */
pid_t chaos_start(int *ret_fd);
void chaos_stop(pid_t pid, int fd);

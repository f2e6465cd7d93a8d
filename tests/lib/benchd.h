/* SPDX-License-Identifier: MIT */
/* A barkeepd of a benchmark's own, for benchmarks that need a configuration
 * bench/run's daemon does not have (more clients, other devices). */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Starts the barkeepd built next to this program (build/bench/NAME ->
 * build/barkeepd) with dir/barkeep.conf: a [daemon] section for the socket
 * dir/barkeep.sock (log level notice), then sections. Its stderr goes to
 * dir/barkeepd.log. Waits up to 10 s for the socket, whose path goes to
 * ret_sock. Returns the daemon's pid; dies (bench_die(name, ...)) on failure. */
pid_t bench_daemon_start(const char *name, const char *dir, const char *sections,
			 char *ret_sock, size_t sock_size);
/* SIGTERM, then waits; dies unless the daemon exited with status 0. */
void bench_daemon_stop(const char *name, const char *dir, pid_t pid);

/* SPDX-License-Identifier: MIT */
/*
 * Who is behind a connection beyond SO_PEERCRED: the cgroup of the process
 * that connected, which names its container (systemd scopes, podman's
 * libpod-ID.scope, Kubernetes' pod slices). Read from /proc/PID/cgroup at
 * connect time; where the kernel has SO_PEERPIDFD (Linux 6.5) the pidfd
 * proves afterwards that PID still was that process, so a reused pid cannot
 * lend a stranger's cgroup. Without it, pidfd_open(PID) narrows the window.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* The cgroup v2 path ("0::/path" line) of /proc/PID/cgroup's text. Returns
 * 0, -ENOENT if there is no v2 line, -ENAMETOOLONG if it does not fit size. */
int peer_parse_cgroup(const char *text, char *buf, size_t size);

/* The cgroup v2 path of the peer of the connected Unix socket fd, whose
 * SO_PEERCRED pid is pid (fd -EBADF: no socket to ask, e.g. the pid a D-Bus
 * daemon reported). Returns 0, -ESRCH if the process is gone (or pid was
 * reused), or another -errno. */
int peer_read_cgroup(int fd, pid_t pid, char *buf, size_t size);

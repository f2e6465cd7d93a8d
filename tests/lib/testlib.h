/* SPDX-License-Identifier: MIT */
/* Helpers the test and benchmark programs share. */
#pragma once

#include <sys/types.h>

/* Passes one fd over a Unix socket with a one-byte message (SCM_RIGHTS).
 * Returns 0 or -errno. */
int test_send_fd(int sock, int fd);
/* Receives one fd sent by test_send_fd() (O_CLOEXEC). Returns it or -errno. */
int test_recv_fd(int sock);
/* Open fds of a process (0: this one), or -errno. */
int test_count_fds(pid_t pid);
/* A daemon frees a closed connection's state asynchronously: waits (up to
 * 5 s) for pid's fd count to come back to want; returns the last count. */
int test_settled_fds(pid_t pid, int want);
/* test_settled_fds(pid, baseline), printed as "daemon fds: N at start, N at end". */
int test_fds_report(pid_t pid, int baseline);

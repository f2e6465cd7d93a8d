/* SPDX-License-Identifier: MIT */
/*
 * The Unix socket transport: a SOCK_SEQPACKET listener (created, or
 * inherited from systemd), one connection per client, the wire protocol of
 * proto/PROTOCOL.md decoded into broker requests. A malformed message gets
 * an ERROR naming what was wrong and the connection is closed; the daemon
 * serves everyone else undisturbed. Never blocks: replies that cannot be
 * sent at once wait in a bounded per-client queue.
 */
#pragma once

#include <event2/event.h>
#include <sys/types.h>

struct broker;
struct socket_server;

struct socket_options {
	const char *path;
	mode_t mode;
	gid_t gid;    /* (gid_t)-1: leave as created */
	int listen_fd; /* >= 0: use this inherited socket, do not create one */
};

int socket_server_new(struct event_base *base, struct broker *b, const struct socket_options *opts,
		      struct socket_server **ret);
struct socket_server *socket_server_free(struct socket_server *s);

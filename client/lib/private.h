/* SPDX-License-Identifier: MIT */
/* libbarkeep internals shared between its files (not installed). */
#pragma once

/* What a driver that cannot take a VFIO (peer-to-peer) dma-buf means. */
extern const char bk_msg_p2p_refused[];

#include <stdbool.h>

#include "common/macro.h"
#include "proto/codec.h"

struct barkeep;
struct barkeep_lease;

/* Keeps a sentence for barkeep_error_message(); returns r. */
int bk_fail(struct barkeep *bk, int r, const char *fmt, ...) _printf_(3, 4);
/* Sends a request and waits for its reply (events that come first are
 * queued); an ERROR becomes -code with its message kept. *ret_fd (may be
 * NULL) gets the fd that came with the reply. */
int bk_request(struct barkeep *bk, struct proto_msg *req, struct proto_msg *ret, int *ret_fd);
/* A lease record into the public struct, with its fd. */
void bk_from_wire_lease(struct barkeep_lease *l, const struct proto_lease *w, int fd);
/* Capability GRANT is in effect on the connection. */
bool bk_shares(const struct barkeep *bk);

/* SPDX-License-Identifier: MIT */
/*
 * Sharing a window (internal to the core): grants, holders and the one
 * lifetime of a window that several clients hold. The requests are in
 * broker.h (broker_grant, broker_open, broker_revoke_grant).
 *
 * A lease gets a struct share on its first GRANT. Each OPEN is a fresh
 * export of the same range as a new lease of the opener (LEASE_OPENED),
 * listed among the share's holders, so every holder's dma-buf can be
 * tracked, revoked and counted on its own. The window's bytes stay charged
 * to the owner's uid (and container) once, until the last hold ends; then
 * the window is released as one with every export it ever had that may
 * still be referenced, under the usual quarantine and scrub rules.
 */
#pragma once

#include "daemon/broker-private.h"

/* The lease l, which has l->share, is ending (broker_lease_end): its export
 * is revoked or kept for the window's reuse check; the owner's end
 * withdraws the grants and ends the holders whose grant does not outlive
 * it (LEASE_REVOKED, reason OWNER); the last hold ends the window. */
void share_lease_end(struct lease *l);

/* Shutdown, after every lease has ended: frees what remembers ended grants. */
void share_forget_all(struct broker *b);

/* SPDX-License-Identifier: MIT */
/*
 * Pausing a device (internal to the core): tell every holder, wait for
 * their PAUSE_ACKs or the deadline, then revoke on a worker thread (reset,
 * or close for good) and resume or give the device up on the event loop.
 * The sequence is proto/PROTOCOL.md section 8.
 */
#pragma once

#include "daemon/broker-private.h"

enum pause_action {
	PAUSE_THEN_RESET, /* resume with generation + 1; GONE if the reset fails */
	PAUSE_THEN_CLOSE, /* the host wants the device: close it, GONE */
};

struct pause_params {
	enum pause_action action;
	enum broker_reason reason;
	uint32_t flags;    /* BROKER_PAUSE_FORCE */
	uint32_t grace_ms; /* 0 with FORCE */
	struct client *requester; /* told through ops->reset_done; NULL: nobody */
	uint32_t request_id;
};

/* The device must be READY. */
int pause_begin(struct broker *b, struct device *d, const struct pause_params *p);
/* 0, or -ESTALE when no pause of that generation is under way. */
int pause_ack(struct device *d, struct client *c, uint64_t generation);
/* The client got a lease on the paused device (RECLAIM after a restart):
 * it hears DEVICE_PAUSE now and RESUME or GONE with the rest. 0 or -ENOMEM. */
int pause_join(struct device *d, struct client *c);
/* The client is going away: stop waiting for it and telling it. */
void pause_forget_client(struct device *d, struct client *c);
/* Shutdown: waits for a running worker and drops the pause. */
void pause_abort(struct device *d);

/* Listens for the device's own events: an error forces a pause and a
 * reset (an admin pause under way is escalated to FORCE); the host asking
 * for the device back pauses it with the configured grace, then closes it
 * (GONE) so that the unbind completes. Sets d->error_fd and d->signals_*. */
int pause_watch(struct broker *b, struct device *d);
void pause_unwatch(struct device *d);

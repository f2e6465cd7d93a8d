/* SPDX-License-Identifier: MIT */
/*
 * Printing broker events and waiting for them: used by `watch` and by
 * `alloc --hold`. A DEVICE_PAUSE is acknowledged after it is printed (when
 * asked to): barkeepctl holds no imports, so it has nothing to drop first.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/ctl/ctl.h"

#define WATCH_ACKS_MAX 64 /* pauses waiting to be acknowledged, one per device */

struct watch;

/* Lines read from stdin while holding (barkeepctl grant: revoke-grant). */
struct watch_command {
	/* Runs one line (no newline). Returns 0, or -errno when the connection broke. */
	int (*run)(struct watch *w, const char *line, void *userdata);
	void *userdata;
};

struct watch {
	const struct ctl *ctl;
	struct barkeep *bk;
	bool ack; /* acknowledge DEVICE_PAUSE */
	const struct barkeep_device *devs; /* for PCI addresses in messages; may be NULL */
	size_t n_devs;

	bool holding;          /* alloc --hold: a lease is held... */
	uint64_t lease_id;     /* ...this one */
	uint32_t lease_device; /* ...on this device */
	bool lease_ended;      /* an event said the held lease is gone... */
	int lease_end_errno;   /* ...-ENODEV: its device went; -ECANCELED: revoked;
				* -ESTALE: not reclaimed after a restart */
	int signal;            /* the signal that ended watch_run(), or 0 */
	const struct watch_command *command; /* NULL: stdin is not read */
	bool stdin_closed;
	bool local_error;      /* watch_run() failed here, not in the library */

	struct {
		uint32_t device_id;
		uint64_t generation;
	} acks[WATCH_ACKS_MAX];
	size_t n_acks;
};

/* Prints events until SIGINT or SIGTERM, until timeout_ms pass (< 0: no
 * limit) or until the held lease ends. Returns 0, or -errno when the
 * connection failed (-ECONNRESET: the broker went away; the reason is in
 * barkeep_error_message(w->bk)). */
int watch_run(struct watch *w, int64_t timeout_ms);

/* Reports watch_run()'s failure r ("<what> failed: ...") and returns the exit status. */
int watch_report(const struct watch *w, int r, const char *what);

/* "device 1 (0000:00:03.0)" into buf. Returns buf. */
const char *watch_device_name(const struct watch *w, uint32_t id, char *buf, size_t size);

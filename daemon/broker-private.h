/* SPDX-License-Identifier: MIT */
/* The broker's own state, shared by the files of the core (broker.c, pause.c). */
#pragma once

#include "daemon/broker.h"

struct broker {
	struct config *cfg;
	struct device **devices;
	size_t n_devices;
	struct list clients;
	size_t n_clients;
	size_t n_leases;
	uint64_t next_lease_id;
	uint32_t next_client_id;
	struct policy_usage *usage;
	struct event_base *base;
	const struct broker_hooks *hooks;
	void *hooks_data;
	struct persist *persist;    /* NULL: no fd store */
	size_t n_orphans;           /* restored leases nobody reclaimed yet (device.orphans) */
	struct event *ev_orphans;   /* ends them at the reclaim timeout */
	size_t n_unkept;            /* leases made while the fd store had no room */
};

/* Ends a restored lease nobody took back: its window goes to quarantine
 * (the old holder may still have the buffer open). */
void broker_orphan_end(struct broker *b, struct lease *l);

struct fdstore_lease;
/* Restart: a lease of the previous process, as an orphan on d until its
 * holder reclaims it (fd: the stored buffer, taken). */
int broker_adopt_lease(struct broker *b, struct device *d, const struct fdstore_lease *rec, int fd,
		       const struct window_store *ws);

/* Ends a lease as RELEASE does. */
void broker_lease_end(struct lease *l);

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
};

/* Ends a lease as RELEASE does. */
void broker_lease_end(struct lease *l);

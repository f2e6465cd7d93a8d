/* SPDX-License-Identifier: MIT */
/* The broker's own state, shared by the files of the core (broker.c, pause.c). */
#pragma once

#include "daemon/broker.h"

/* Why a restored lease ended before anyone took it back (SHUTDOWN leaves no
 * tomb: no RECLAIM can come after it). */
enum orphan_end { ORPHAN_END_TIMEOUT = 1, ORPHAN_END_DEVICE_GONE, ORPHAN_END_SHUTDOWN };

/* A restored lease that ended unclaimed, so that a late RECLAIM with its
 * token hears why rather than only "no such lease". */
struct orphan_tomb {
	uint64_t id;
	uint8_t token[BROKER_TOKEN_SIZE];
	uid_t uid;
	enum orphan_end why; /* 0: unused */
	const char *device;  /* the config's name */
};
#define ORPHAN_TOMBS_MAX 64

struct broker {
	struct lease *spare_lease; /* an ended lease's memory, for the next (broker_lease_new) */
	struct config *cfg;
	struct device **devices;
	size_t n_devices;
	struct list clients;
	size_t n_clients;
	size_t n_leases;
	uint64_t next_lease_id;
	uint64_t next_grant_id;
	struct list grants;       /* struct grant.broker_link: every live grant */
	struct share_tomb *tombs; /* recently ended grants, for clear refusals (share.c) */
	size_t next_tomb;
	uint32_t next_client_id;
	struct policy_usage *usage;
	struct event_base *base;
	struct fdinfo_cache *fdinfo; /* the devices' loop-side reference counts (fdinfo.h) */
	const struct broker_hooks *hooks;
	void *hooks_data;
	struct persist *persist;    /* NULL: no fd store */
	size_t n_orphans;           /* restored leases nobody reclaimed yet (device.orphans) */
	struct event *ev_orphans;   /* ends them at the reclaim timeout */
	struct orphan_tomb orphan_tombs[ORPHAN_TOMBS_MAX]; /* the last ones that ended */
	size_t next_orphan_tomb;
	uint8_t random[4096];       /* unused randomness for tokens, from the end */
	size_t n_random;
};

/* Fills buf (at most sizeof(b->random)) with fresh random bytes for a
 * token: one getrandom() serves many tokens. -EIO without randomness. */
int broker_random(struct broker *b, void *buf, size_t n);

/* Ends a restored lease nobody took back: its window goes to quarantine
 * (the old holder may still have the buffer open). */
void broker_orphan_end(struct broker *b, struct lease *l, enum orphan_end why);

struct fdstore_lease;
/* Restart: a lease of the previous process, as an orphan on d until its
 * holder reclaims it (fd: the stored buffer, taken). */
int broker_adopt_lease(struct broker *b, struct device *d, const struct fdstore_lease *rec, int fd,
		       const struct window_store *ws);

/* Ends a lease as RELEASE does. */
void broker_lease_end(struct lease *l);
/* Ends every lease of a list (device or client) as RELEASE does; safe when
 * ending one lease ends others (the holders of a shared window). */
void broker_leases_end(struct list *leases, size_t link_offset);
/* A zeroed lease, and its memory back once it ended: one is kept for the
 * next, so that an ALLOC and RELEASE cost no calloc() and free(). */
struct lease *broker_lease_new(struct broker *b);
void broker_lease_free(struct broker *b, struct lease *l);
/* Numbers a new lease of c on l->device (its window exported into l->fd,
 * the rest of it set), names its buffer and counts it. -EIO (no randomness). */
int broker_lease_add(struct client *c, struct lease *l, uid_t name_uid, uint64_t name_id,
		     struct error_info *err);
/* Ends the daemon's use of a window of d charged to uid (and container):
 * uncharges it and releases or quarantines it with its exports fds[0..n)
 * (reusable: see device_window_release_fds). */
void broker_window_end(struct broker *b, struct device *d, uid_t uid,
		       const struct config_container *ct, uint64_t offset, uint64_t size,
		       const int *fds, size_t n, const struct window_store *ws, bool reusable);

/* SPDX-License-Identifier: MIT */
/*
 * Who may do what, and how much of it: decisions only, no I/O, no logging.
 *
 * Access: root may use every device; others need their uid in the device's
 * allow-users or one of their groups in allow-groups (by default: group
 * "barkeep", resolved by config.c).
 *
 * Quotas: a per-uid usage table counts connections, leases and bytes (in all
 * and per device). A charge either fits every limit and is counted, or counts
 * nothing and returns -EDQUOT with a struct policy_quota_hit saying which
 * limit and by how much. Quotas apply to root too: they guard the daemon,
 * not the devices.
 *
 * Containers: a client that matches a [container NAME] section (by its
 * cgroup and/or uid) may use only that section's devices, root included, and
 * its leases count against the section's limits, shared by all its clients,
 * on top of the per-uid ones.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"
#include "daemon/config.h"

/* gids: the caller's primary and supplementary groups (any order, may repeat).
 * Returns 0 if uid may use d, else -EACCES. */
int policy_may_use_device(const struct config_device *d, uid_t uid, const gid_t *gids,
			  size_t ngids);

/* Sharing: may a client of (uid, gids) open a window whose owner is
 * (owner_uid, owner_gids), under [daemon] share-with? gids are each side's
 * primary and supplementary groups. Returns 0 or -EACCES. */
int policy_may_share(const struct config *c, uid_t owner_uid, const gid_t *owner_gids,
		     size_t n_owner_gids, uid_t uid, const gid_t *gids, size_t ngids);

/* Is a client of (uid, gids) in [daemon] share-with-users or share-with-groups? */
bool policy_share_listed(const struct config *c, uid_t uid, const gid_t *gids, size_t ngids);

/* Admin requests (RESET): root, or a member of [daemon] admin-group if that
 * group exists. Returns 0 or -EPERM. */
int policy_is_admin(const struct config *c, uid_t uid, const gid_t *gids, size_t ngids);

enum policy_limit {
	POLICY_LIMIT_NONE,
	POLICY_LIMIT_CLIENTS,               /* [limits] max-clients */
	POLICY_LIMIT_CLIENTS_PER_UID,       /* [limits] max-clients-per-uid */
	POLICY_LIMIT_LEASES,                /* [limits] max-leases */
	POLICY_LIMIT_LEASES_PER_CLIENT,     /* [limits] max-leases-per-client */
	POLICY_LIMIT_LEASES_PER_UID,        /* [limits] max-leases-per-uid */
	POLICY_LIMIT_BYTES_PER_UID,         /* [limits] max-bytes-per-uid */
	POLICY_LIMIT_DEVICE_BYTES_PER_UID,  /* [device NAME] max-bytes-per-uid */
	POLICY_LIMIT_CONTAINER_LEASES,      /* [container NAME] max-leases */
	POLICY_LIMIT_CONTAINER_BYTES,       /* [container NAME] max-bytes */
};

/* Which limit refused a charge: enough for "uid 1000 holds 3 leases, limit is 3". */
struct policy_quota_hit {
	enum policy_limit limit;
	uid_t uid;
	const char *device; /* the device's name for POLICY_LIMIT_DEVICE_BYTES_PER_UID, else NULL */
	const char *container; /* the container's name for POLICY_LIMIT_CONTAINER_*, else NULL */
	uint64_t held;      /* clients, leases or bytes counted now */
	uint64_t requested; /* asked for on top: 1 client or lease, or the lease's bytes */
	uint64_t max;       /* the limit */
};

/* The config key of the limit, e.g. "max-leases-per-uid". */
const char *policy_limit_to_string(enum policy_limit limit);

/* Writes a sentence like "uid 1000 holds 3 leases, limit is 3 (max-leases-per-uid)"
 * or "uid 1000 holds 48 MiB on gpu0 and asked for 32 MiB, limit is 64 MiB
 * (max-bytes-per-uid of [device gpu0])". Returns what snprintf() returns. */
int policy_quota_hit_format(const struct policy_quota_hit *hit, char *buf, size_t size);

/* One uid's counters. */
struct policy_uid_usage {
	uint32_t clients;
	uint32_t leases;
	uint64_t bytes;
};

struct policy_usage;

/* The table reads limits from c, which must outlive it. Returns 0 or -ENOMEM. */
int policy_usage_new(const struct config *c, struct policy_usage **ret);
struct policy_usage *policy_usage_free(struct policy_usage *u);

/* A new connection from uid. Returns 0, -EDQUOT (*ret_hit filled; may be
 * NULL) or -ENOMEM. */
int policy_charge_client(struct policy_usage *u, uid_t uid, struct policy_quota_hit *ret_hit);
/* Returns 0, or -EINVAL if uid has no connection counted (a caller bug). */
int policy_uncharge_client(struct policy_usage *u, uid_t uid);

/* A new lease of bytes on d (one of the config's devices) for a connection of
 * uid that already holds client_leases leases. Returns 0, -EDQUOT (*ret_hit
 * filled; may be NULL), -EINVAL if d is not in the config, or -ENOMEM. */
int policy_charge_lease(struct policy_usage *u, const struct config_device *d, uid_t uid,
			uint32_t client_leases, uint64_t bytes, struct policy_quota_hit *ret_hit);
/* Returns 0, or -EINVAL if that much is not counted for uid on d (a caller bug;
 * nothing is changed then). */
int policy_uncharge_lease(struct policy_usage *u, const struct config_device *d, uid_t uid,
			  uint64_t bytes);

/* What uid holds now (all zero if nothing). */
void policy_get_usage(const struct policy_usage *u, uid_t uid, struct policy_uid_usage *ret);
uint64_t policy_get_device_bytes(const struct policy_usage *u, const struct config_device *d,
				 uid_t uid);
/* Connections counted, all uids. */
uint32_t policy_total_clients(const struct policy_usage *u);

/* The first [container NAME] of c whose every criterion matches: one of its
 * cgroup globs matches cgroup (the cgroup v2 path; NULL or "" if unknown,
 * which no glob matches) and uid is in its uid-range. NULL if none does. */
const struct config_container *policy_find_container(const struct config *c, const char *cgroup,
						     uid_t uid);
/* Returns 0 if the container lists d in its devices =, else -EACCES. */
int policy_container_may_use(const struct config_container *ct, const struct config_device *d);

/* A new lease of bytes for a client of container ct (one of the config's).
 * Returns 0, -EDQUOT (*ret_hit filled; may be NULL) or -EINVAL if ct is not
 * in the config. */
int policy_charge_container_lease(struct policy_usage *u, const struct config_container *ct,
				  uint64_t bytes, struct policy_quota_hit *ret_hit);
/* Returns 0, or -EINVAL if that much is not counted for ct (a caller bug). */
int policy_uncharge_container_lease(struct policy_usage *u, const struct config_container *ct,
				    uint64_t bytes);
/* What all clients of ct hold now (clients is not counted: 0). */
void policy_get_container_usage(const struct policy_usage *u, const struct config_container *ct,
				struct policy_uid_usage *ret);

static inline void policy_usage_freep(struct policy_usage **u) { *u = policy_usage_free(*u); }
#define _cleanup_policy_usage_ _cleanup_(policy_usage_freep)

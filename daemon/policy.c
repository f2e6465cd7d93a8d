// SPDX-License-Identifier: MIT
/*
 * The usage table is a plain array searched linearly: an entry exists only
 * while its uid has a connection or a lease, and leases belong to
 * connections, so it never holds more than max-clients entries (128 by
 * default), which a scan handles faster than any hash.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "daemon/policy.h"

struct uid_entry {
	uid_t uid;
	struct policy_uid_usage usage;
	uint64_t device_bytes[]; /* per device, in config order */
};

struct policy_usage {
	const struct config *config;
	struct uid_entry **entries;
	size_t n_entries, n_allocated;
	uint32_t total_clients;
	uint32_t total_leases; /* charged by policy_charge_lease(), all uids */
	struct policy_uid_usage *containers; /* per [container NAME], in config order */
};

static bool gid_in(gid_t gid, const gid_t *gids, size_t ngids)
{
	for (size_t i = 0; i < ngids; i++)
		if (gids[i] == gid)
			return true;
	return false;
}

int policy_may_use_device(const struct config_device *d, uid_t uid, const gid_t *gids,
			  size_t ngids)
{
	if (uid == 0)
		return 0;
	for (size_t i = 0; i < d->n_allow_uids; i++)
		if (d->allow_uids[i] == uid)
			return 0;
	for (size_t i = 0; i < d->n_allow_gids; i++)
		if (gid_in(d->allow_gids[i], gids, ngids))
			return 0;
	return -EACCES;
}

bool policy_share_listed(const struct config *c, uid_t uid, const gid_t *gids, size_t ngids)
{
	for (size_t i = 0; i < c->n_share_uids; i++)
		if (c->share_uids[i] == uid)
			return true;
	for (size_t i = 0; i < c->n_share_gids; i++)
		if (gid_in(c->share_gids[i], gids, ngids))
			return true;
	return false;
}

int policy_may_share(const struct config *c, uid_t owner_uid, const gid_t *owner_gids,
		     size_t n_owner_gids, uid_t uid, const gid_t *gids, size_t ngids)
{
	if (c->share_with == CONFIG_SHARE_ANYONE || uid == owner_uid ||
	    policy_share_listed(c, uid, gids, ngids))
		return 0;
	if (c->share_with == CONFIG_SHARE_SAME_GROUP)
		for (size_t i = 0; i < n_owner_gids; i++)
			if (gid_in(owner_gids[i], gids, ngids))
				return 0;
	return -EACCES;
}

int policy_is_admin(const struct config *c, uid_t uid, const gid_t *gids, size_t ngids)
{
	if (uid == 0)
		return 0;
	if (c->admin_gid != CONFIG_GID_NONE && gid_in(c->admin_gid, gids, ngids))
		return 0;
	return -EPERM;
}

const char *policy_limit_to_string(enum policy_limit limit)
{
	switch (limit) {
	case POLICY_LIMIT_CLIENTS: return "max-clients";
	case POLICY_LIMIT_CLIENTS_PER_UID: return "max-clients-per-uid";
	case POLICY_LIMIT_LEASES: return "max-leases";
	case POLICY_LIMIT_LEASES_PER_CLIENT: return "max-leases-per-client";
	case POLICY_LIMIT_LEASES_PER_UID: return "max-leases-per-uid";
	case POLICY_LIMIT_BYTES_PER_UID:
	case POLICY_LIMIT_DEVICE_BYTES_PER_UID: return "max-bytes-per-uid";
	case POLICY_LIMIT_CONTAINER_LEASES: return "max-leases";
	case POLICY_LIMIT_CONTAINER_BYTES: return "max-bytes";
	case POLICY_LIMIT_NONE: break;
	}
	return "none";
}

int policy_quota_hit_format(const struct policy_quota_hit *h, char *buf, size_t size)
{
	const char *key = policy_limit_to_string(h->limit);
	unsigned uid = (unsigned)h->uid;
	unsigned long long held = h->held, max = h->max;
	char s_held[CONFIG_SIZE_STR_MAX], s_req[CONFIG_SIZE_STR_MAX], s_max[CONFIG_SIZE_STR_MAX];

	switch (h->limit) {
	case POLICY_LIMIT_CLIENTS:
		return snprintf(buf, size, "barkeepd serves %llu connections, limit is %llu (%s)",
				held, max, key);
	case POLICY_LIMIT_CLIENTS_PER_UID:
		return snprintf(buf, size, "uid %u has %llu connections, limit is %llu (%s)", uid,
				held, max, key);
	case POLICY_LIMIT_LEASES:
		return snprintf(buf, size, "barkeepd lends %llu leases to all clients, limit is %llu (%s)",
				held, max, key);
	case POLICY_LIMIT_LEASES_PER_CLIENT:
		return snprintf(buf, size, "this connection holds %llu leases, limit is %llu (%s)",
				held, max, key);
	case POLICY_LIMIT_LEASES_PER_UID:
		return snprintf(buf, size, "uid %u holds %llu leases, limit is %llu (%s)", uid,
				held, max, key);
	case POLICY_LIMIT_BYTES_PER_UID:
		return snprintf(buf, size, "uid %u holds %s and asked for %s, limit is %s (%s)", uid,
				config_format_size(h->held, s_held),
				config_format_size(h->requested, s_req),
				config_format_size(h->max, s_max), key);
	case POLICY_LIMIT_DEVICE_BYTES_PER_UID:
		return snprintf(buf, size, "uid %u holds %s on %s and asked for %s, limit is %s "
				"(%s of [device %s])", uid, config_format_size(h->held, s_held),
				h->device, config_format_size(h->requested, s_req),
				config_format_size(h->max, s_max), key, h->device);
	case POLICY_LIMIT_CONTAINER_LEASES:
		return snprintf(buf, size, "container %s holds %llu leases, limit is %llu (%s of "
				"[container %s])", h->container, held, max, key, h->container);
	case POLICY_LIMIT_CONTAINER_BYTES:
		return snprintf(buf, size, "container %s holds %s and asked for %s, limit is %s "
				"(%s of [container %s])", h->container,
				config_format_size(h->held, s_held),
				config_format_size(h->requested, s_req),
				config_format_size(h->max, s_max), key, h->container);
	case POLICY_LIMIT_NONE:
		break;
	}
	return snprintf(buf, size, "no limit was hit");
}

/* ---- usage table -------------------------------------------------------- */

int policy_usage_new(const struct config *c, struct policy_usage **ret)
{
	struct policy_usage *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->config = c;
	u->containers = calloc(c->n_containers ? c->n_containers : 1, sizeof(*u->containers));
	if (!u->containers) {
		free(u);
		return -ENOMEM;
	}
	*ret = u;
	return 0;
}

struct policy_usage *policy_usage_free(struct policy_usage *u)
{
	if (!u)
		return NULL;
	for (size_t i = 0; i < u->n_entries; i++)
		free(u->entries[i]);
	free(u->entries);
	free(u->containers);
	free(u);
	return NULL;
}

static struct uid_entry *find_entry(const struct policy_usage *u, uid_t uid)
{
	for (size_t i = 0; i < u->n_entries; i++)
		if (u->entries[i]->uid == uid)
			return u->entries[i];
	return NULL;
}

static struct uid_entry *get_entry(struct policy_usage *u, uid_t uid)
{
	struct uid_entry *e = find_entry(u, uid);

	if (e)
		return e;
	if (u->n_entries == u->n_allocated) {
		size_t n = MAX(u->n_allocated * 2, (size_t)8);
		struct uid_entry **a = reallocarray(u->entries, n, sizeof(*a));
		if (!a)
			return NULL;
		u->entries = a;
		u->n_allocated = n;
	}
	e = calloc(1, sizeof(*e) + u->config->n_devices * sizeof(e->device_bytes[0]));
	if (!e)
		return NULL;
	e->uid = uid;
	u->entries[u->n_entries++] = e;
	return e;
}

/* Drops an entry that counts nothing, so the table stays as small as the set
 * of connected uids. */
static void put_entry(struct policy_usage *u, struct uid_entry *e)
{
	if (e->usage.clients || e->usage.leases || e->usage.bytes)
		return;
	for (size_t i = 0; i < u->n_entries; i++)
		if (u->entries[i] == e) {
			u->entries[i] = u->entries[--u->n_entries];
			free(e);
			return;
		}
}

static int hit(struct policy_quota_hit *ret_hit, enum policy_limit limit, uid_t uid,
	       const char *device, uint64_t held, uint64_t requested, uint64_t max)
{
	if (ret_hit)
		*ret_hit = (struct policy_quota_hit){ .limit = limit, .uid = uid, .device = device,
						      .held = held, .requested = requested,
						      .max = max };
	return -EDQUOT;
}

/* Would held + requested pass max? Without overflowing. */
static bool exceeds(uint64_t held, uint64_t requested, uint64_t max)
{
	return requested > max || held > max - requested;
}

int policy_charge_client(struct policy_usage *u, uid_t uid, struct policy_quota_hit *ret_hit)
{
	const struct config_limits *l = &u->config->limits;
	struct uid_entry *e = find_entry(u, uid);
	uint32_t held = e ? e->usage.clients : 0;

	if (exceeds(u->total_clients, 1, l->max_clients))
		return hit(ret_hit, POLICY_LIMIT_CLIENTS, uid, NULL, u->total_clients, 1,
			   l->max_clients);
	if (exceeds(held, 1, l->max_clients_per_uid))
		return hit(ret_hit, POLICY_LIMIT_CLIENTS_PER_UID, uid, NULL, held, 1,
			   l->max_clients_per_uid);
	e = get_entry(u, uid);
	if (!e)
		return -ENOMEM;
	e->usage.clients++;
	u->total_clients++;
	return 0;
}

int policy_uncharge_client(struct policy_usage *u, uid_t uid)
{
	struct uid_entry *e = find_entry(u, uid);

	if (!e || e->usage.clients == 0)
		return -EINVAL;
	e->usage.clients--;
	u->total_clients--;
	put_entry(u, e);
	return 0;
}

/* The index of elem in array[n] of size-byte elements; -EINVAL if it is not one. */
static int array_index(const void *array, size_t n, size_t size, const void *elem, size_t *ret)
{
	/* Compare addresses as integers: elem may come from elsewhere by mistake. */
	uintptr_t first = (uintptr_t)array, p = (uintptr_t)elem;

	if (!elem || n == 0 || p < first || p >= first + n * size || (p - first) % size != 0)
		return -EINVAL;
	*ret = (p - first) / size;
	return 0;
}

static int device_index(const struct policy_usage *u, const struct config_device *d, size_t *ret)
{
	const struct config *c = u->config;

	return array_index(c->devices, c->n_devices, sizeof(c->devices[0]), d, ret);
}

int policy_charge_lease(struct policy_usage *u, const struct config_device *d, uid_t uid,
			uint32_t client_leases, uint64_t bytes, struct policy_quota_hit *ret_hit)
{
	const struct config_limits *l = &u->config->limits;
	struct uid_entry *e = find_entry(u, uid);
	struct policy_uid_usage held = e ? e->usage : (struct policy_uid_usage){ 0 };
	uint64_t dev_held;
	size_t di;

	if (device_index(u, d, &di) < 0)
		return -EINVAL;
	dev_held = e ? e->device_bytes[di] : 0;

	if (exceeds(u->total_leases, 1, l->max_leases))
		return hit(ret_hit, POLICY_LIMIT_LEASES, uid, NULL, u->total_leases, 1, l->max_leases);
	if (exceeds(client_leases, 1, l->max_leases_per_client))
		return hit(ret_hit, POLICY_LIMIT_LEASES_PER_CLIENT, uid, NULL, client_leases, 1,
			   l->max_leases_per_client);
	if (exceeds(held.leases, 1, l->max_leases_per_uid))
		return hit(ret_hit, POLICY_LIMIT_LEASES_PER_UID, uid, NULL, held.leases, 1,
			   l->max_leases_per_uid);
	if (exceeds(held.bytes, bytes, l->max_bytes_per_uid))
		return hit(ret_hit, POLICY_LIMIT_BYTES_PER_UID, uid, NULL, held.bytes, bytes,
			   l->max_bytes_per_uid);
	if (exceeds(dev_held, bytes, d->max_bytes_per_uid))
		return hit(ret_hit, POLICY_LIMIT_DEVICE_BYTES_PER_UID, uid, d->name, dev_held,
			   bytes, d->max_bytes_per_uid);

	e = get_entry(u, uid);
	if (!e)
		return -ENOMEM;
	e->usage.leases++;
	u->total_leases++;
	e->usage.bytes += bytes;
	e->device_bytes[di] += bytes;
	return 0;
}

int policy_uncharge_lease(struct policy_usage *u, const struct config_device *d, uid_t uid,
			  uint64_t bytes)
{
	struct uid_entry *e = find_entry(u, uid);
	size_t di;

	if (device_index(u, d, &di) < 0 || !e || e->usage.leases == 0 ||
	    e->device_bytes[di] < bytes)
		return -EINVAL;
	e->usage.leases--;
	u->total_leases--;
	e->usage.bytes -= bytes;
	e->device_bytes[di] -= bytes;
	put_entry(u, e);
	return 0;
}

void policy_get_usage(const struct policy_usage *u, uid_t uid, struct policy_uid_usage *ret)
{
	const struct uid_entry *e = find_entry(u, uid);

	*ret = e ? e->usage : (struct policy_uid_usage){ 0 };
}

uint64_t policy_get_device_bytes(const struct policy_usage *u, const struct config_device *d,
				 uid_t uid)
{
	const struct uid_entry *e = find_entry(u, uid);
	size_t di;

	if (!e || device_index(u, d, &di) < 0)
		return 0;
	return e->device_bytes[di];
}

uint32_t policy_total_clients(const struct policy_usage *u) { return u->total_clients; }

/* ---- containers --------------------------------------------------------- */

static bool container_matches(const struct config_container *ct, const char *cgroup, uid_t uid)
{
	if (ct->has_uid_range && (uid < ct->uid_min || uid > ct->uid_max))
		return false;
	if (ct->n_cgroups == 0)
		return ct->has_uid_range;
	if (!cgroup || !*cgroup)
		return false;
	/* No FNM_PATHNAME: '*' crosses '/', so libpod-* covers the scope's children. */
	for (size_t i = 0; i < ct->n_cgroups; i++)
		if (fnmatch(ct->cgroups[i], cgroup, 0) == 0)
			return true;
	return false;
}

const struct config_container *policy_find_container(const struct config *c, const char *cgroup,
						     uid_t uid)
{
	for (size_t i = 0; i < c->n_containers; i++)
		if (container_matches(&c->containers[i], cgroup, uid))
			return &c->containers[i];
	return NULL;
}

int policy_container_may_use(const struct config_container *ct, const struct config_device *d)
{
	for (size_t i = 0; i < ct->n_devices; i++)
		if (strcmp(ct->devices[i], d->name) == 0)
			return 0;
	return -EACCES;
}

static struct policy_uid_usage *container_usage(const struct policy_usage *u,
						const struct config_container *ct)
{
	const struct config *c = u->config;
	size_t i;

	if (array_index(c->containers, c->n_containers, sizeof(c->containers[0]), ct, &i) < 0)
		return NULL;
	return &u->containers[i];
}

int policy_charge_container_lease(struct policy_usage *u, const struct config_container *ct,
				  uint64_t bytes, struct policy_quota_hit *ret_hit)
{
	struct policy_uid_usage *cu = container_usage(u, ct);

	if (!cu)
		return -EINVAL;
	if (exceeds(cu->leases, 1, ct->max_leases)) {
		hit(ret_hit, POLICY_LIMIT_CONTAINER_LEASES, 0, NULL, cu->leases, 1, ct->max_leases);
		if (ret_hit)
			ret_hit->container = ct->name;
		return -EDQUOT;
	}
	if (exceeds(cu->bytes, bytes, ct->max_bytes)) {
		hit(ret_hit, POLICY_LIMIT_CONTAINER_BYTES, 0, NULL, cu->bytes, bytes, ct->max_bytes);
		if (ret_hit)
			ret_hit->container = ct->name;
		return -EDQUOT;
	}
	cu->leases++;
	cu->bytes += bytes;
	return 0;
}

int policy_uncharge_container_lease(struct policy_usage *u, const struct config_container *ct,
				    uint64_t bytes)
{
	struct policy_uid_usage *cu = container_usage(u, ct);

	if (!cu || cu->leases == 0 || cu->bytes < bytes)
		return -EINVAL;
	cu->leases--;
	cu->bytes -= bytes;
	return 0;
}

void policy_get_container_usage(const struct policy_usage *u, const struct config_container *ct,
				struct policy_uid_usage *ret)
{
	const struct policy_uid_usage *cu = container_usage(u, ct);

	*ret = cu ? *cu : (struct policy_uid_usage){ 0 };
}

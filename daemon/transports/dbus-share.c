// SPDX-License-Identifier: MIT
/*
 * org.barkeep.Broker1's sharing methods (Grant, Open, RevokeGrant) and the
 * lease reply RequestBuffer and Open share. Documented in
 * doc/org.barkeep.Broker1.5.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "common/hex.h"
#include "common/log.h"
#include "daemon/transports/dbus-private.h"

/* Reads an a{sv} of options: calls fn for each key. fn returns 0, -ENOENT
 * for an unknown key, or a read error (-ENXIO: the wrong type). */
typedef int (*option_fn)(sd_bus_message *m, const char *key, void *data);

static int read_options(sd_bus_message *m, option_fn fn, void *data, const char *known,
			struct error_info *err)
{
	const char *key;
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");

	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		if ((r = sd_bus_message_read(m, "s", &key)) < 0)
			return r;
		r = fn(m, key, data);
		if (r == -ENOENT)
			return error_set(err, EINVAL, "unknown option \"%s\" (known: %s)", key, known);
		if (r == -ENXIO)
			return error_set(err, EINVAL, "option \"%s\" has the wrong type (%s)", key, known);
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int read_bool(sd_bus_message *m, bool *ret)
{
	int b = 0;
	int r = sd_bus_message_read(m, "v", "b", &b);
	*ret = b;
	return r;
}

int dbus_append_lease_info(sd_bus_message *reply, const struct lease *l)
{
	char dpath[OBJECT_PATH_MAX];
	uint64_t grant_id, owner_lease;
	uid_t owner_uid;

	dbus_device_path(l->device, dpath, sizeof(dpath));
	broker_opened_info(l, &grant_id, &owner_lease, &owner_uid);
	int r = sd_bus_message_open_container(reply, 'a', "{sv}");
	if (r >= 0)
		r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
					  "id", "t", l->id,
					  "device", "s", l->device->cfg->name,
					  "address", "s", l->device->info.pci_addr,
					  "device_path", "o", dpath,
					  "offset", "t", l->offset,
					  "size", "t", l->size,
					  "generation", "t", l->generation,
					  "exclusive", "b", (int)!!(l->flags & LEASE_EXCLUSIVE),
					  "read_only", "b", (int)!!(l->flags & LEASE_READ_ONLY));
	if (r >= 0 && (l->flags & LEASE_OPENED))
		r = sd_bus_message_append(reply, "{sv}{sv}{sv}", "shared_lease", "t", owner_lease,
					  "grant", "t", grant_id, "owner_uid", "u", (uint32_t)owner_uid);
	/* The token for Reclaim after a restart: an "ay" inside the variant. */
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'e', "sv");
	if (r >= 0)
		r = sd_bus_message_append(reply, "s", "reclaim_token");
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'v', "ay");
	if (r >= 0)
		r = sd_bus_message_append_array(reply, 'y', l->token, sizeof(l->token));
	for (int i = 0; i < 3 && r >= 0; i++) /* the variant, the entry, the array */
		r = sd_bus_message_close_container(reply);
	return r;
}

int dbus_reply_lease(sd_bus_message *m, const struct lease *l)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	char path[OBJECT_PATH_MAX];

	dbus_lease_path(l, path, sizeof(path));
	int r = sd_bus_message_new_method_return(m, &reply);
	if (r >= 0)
		r = sd_bus_message_append(reply, "oh", path, l->fd);
	if (r >= 0)
		r = dbus_append_lease_info(reply, l);
	if (r >= 0)
		r = sd_bus_send(NULL, reply, NULL);
	return r;
}

/* ---- Grant ---------------------------------------------------------------- */

static int grant_option(sd_bus_message *m, const char *key, void *data)
{
	struct grant_request *g = data;
	bool b = false;
	int r;

	if (streq(key, "uid") || streq(key, "gid")) {
		r = sd_bus_message_read(m, "v", "u", &g->to_id);
		g->to = streq(key, "uid") ? GRANT_TO_UID : GRANT_TO_GID;
		return r;
	}
	if (streq(key, "ttl_ms"))
		return sd_bus_message_read(m, "v", "u", &g->ttl_ms);
	if (!streq(key, "token") && !streq(key, "read_only") && !streq(key, "outlive_owner"))
		return -ENOENT;
	r = read_bool(m, &b);
	if (b && streq(key, "token"))
		g->to = GRANT_TO_TOKEN;
	else if (b)
		g->flags |= streq(key, "read_only") ? GRANT_READ_ONLY : GRANT_OUTLIVE_OWNER;
	return r;
}

int dbus_method_grant(struct peer *p, sd_bus_message *m)
{
	struct grant_request g = {};
	struct grant_info info;
	struct error_info err = {};
	char token[2 * BROKER_TOKEN_SIZE + 1] = "";
	const char *path;

	int r = sd_bus_message_read(m, "o", &path);
	if (r < 0)
		return r;
	r = read_options(m, grant_option, &g, "uid u, gid u, token b, read_only b, outlive_owner b, "
			 "ttl_ms u", &err);
	if (r < 0)
		return err.code ? dbus_reply_error(m, &err) : r;
	if (!g.to) {
		error_set(&err, EINVAL, "say to whom: option uid, gid or token");
		return dbus_reply_error(m, &err);
	}
	if (dbus_path_id(path, LEASE_PREFIX, &g.lease_id) < 0) {
		error_set(&err, ENOENT, "you hold no lease %s", path);
		return dbus_reply_error(m, &err);
	}
	r = broker_grant(p->client, &g, &info, &err);
	if (r < 0)
		return dbus_reply_error(m, &err);
	log_info("D-Bus client %s (uid %u) granted lease %" PRIu64 " (grant %" PRIu64 "%s)", p->name,
		 p->client->creds.uid, g.lease_id, info.grant_id,
		 g.to == GRANT_TO_TOKEN ? ", to a token" : "");
	if (g.to == GRANT_TO_TOKEN)
		hex_format(info.token, sizeof(info.token), token);
	r = sd_bus_reply_method_return(m, "ts", info.grant_id, token);
	explicit_bzero(token, sizeof(token));
	explicit_bzero(&info, sizeof(info));
	return r;
}

/* ---- Open ------------------------------------------------------------------ */

static int open_option(sd_bus_message *m, const char *key, void *data)
{
	struct open_request *o = data;
	const char *token;
	int r;

	if (streq(key, "lease"))
		return sd_bus_message_read(m, "v", "t", &o->lease_id);
	if (streq(key, "read_only"))
		return read_bool(m, &o->read_only);
	if (!streq(key, "token"))
		return -ENOENT;
	r = sd_bus_message_read(m, "v", "s", &token);
	if (r >= 0 && hex_parse(token, o->token, sizeof(o->token)) < 0)
		return -ENXIO;
	o->by_token = true;
	return r;
}

int dbus_method_open(struct peer *p, sd_bus_message *m)
{
	struct open_request o = {};
	struct error_info err = {};
	struct lease *l;

	int r = read_options(m, open_option, &o, "token s (32 hex digits), lease t, read_only b", &err);
	if (r < 0)
		return err.code ? dbus_reply_error(m, &err) : r;
	if (o.by_token == (o.lease_id != 0)) {
		error_set(&err, EINVAL, "give either option token or option lease");
		return dbus_reply_error(m, &err);
	}
	r = broker_open(p->client, &o, &l, &err);
	explicit_bzero(&o, sizeof(o));
	if (r < 0) {
		log_debug("Open from %s refused: %s", p->name, err.text);
		return dbus_reply_error(m, &err);
	}
	log_info("D-Bus client %s (uid %u) opened a shared window as lease %" PRIu64, p->name,
		 p->client->creds.uid, l->id);
	r = dbus_reply_lease(m, l);
	if (r < 0) /* the caller never saw it: it is not theirs */
		broker_release(p->client, l->id, NULL);
	return r;
}

int dbus_method_revoke_grant(struct peer *p, sd_bus_message *m)
{
	struct error_info err = {};
	uint64_t id;

	int r = sd_bus_message_read(m, "t", &id);
	if (r < 0)
		return r;
	if (broker_revoke_grant(p->client, id, &err) < 0)
		return dbus_reply_error(m, &err);
	log_info("D-Bus client %s (uid %u) revoked grant %" PRIu64, p->name, p->client->creds.uid, id);
	return sd_bus_reply_method_return(m, NULL);
}

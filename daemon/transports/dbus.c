// SPDX-License-Identifier: MIT
/*
 * org.barkeep.Broker1 on the system bus. The interface is documented in
 * doc/org.barkeep.Broker1.5.md; this file maps it onto the broker core.
 *
 * Nothing here waits for the bus daemon. sd_bus_query_sender_creds() and
 * sd_bus_track_add_name() both make a synchronous call to it on a dbus1
 * bus (GetConnectionCredentials, GetNameOwner), so a caller's first method
 * call is parked while two asynchronous requests go out in order: AddMatch
 * for its NameOwnerChanged, then GetConnectionCredentials. The bus answers
 * in order, so either the credentials come back and every later departure
 * is seen, or the caller has already gone and the credentials call fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "daemon/allocator.h"
#include "daemon/transports/dbus-private.h"
#include "daemon/transports/peer.h"

#define MESSAGES_PER_WAKEUP 64 /* then yield to the rest of the loop */
#define PROPS_INTERVAL_MS 200  /* how often device properties are compared */

void dbus_server_kick(struct dbus_server *s)
{
	if (s->bus)
		event_active(s->ev_kick, EV_TIMEOUT, 1);
}

static const char *error_name(int code)
{
	switch (code) {
	case ENOSPC: return ERROR_PREFIX "NoSpace";
	case EACCES:
	case EPERM: return ERROR_PREFIX "PermissionDenied";
	case EDQUOT:
	case EUSERS: return ERROR_PREFIX "QuotaExceeded";
	case ENODEV: return ERROR_PREFIX "NoSuchDevice";
	case EBUSY:
	case EAGAIN: return ERROR_PREFIX "Busy";
	case EINVAL:
	case E2BIG: return ERROR_PREFIX "InvalidArgument";
	case ENOENT: return ERROR_PREFIX "NoSuchLease";
	case ESTALE: return ERROR_PREFIX "NotPaused";
	case EOPNOTSUPP: return ERROR_PREFIX "NotSupported";
	default: return ERROR_PREFIX "Failed";
	}
}

int dbus_reply_error(sd_bus_message *m, const struct error_info *err)
{
	return sd_bus_reply_method_errorf(m, error_name(err->code), "%s", err->text);
}

static struct device *device_by_key(struct broker *b, const char *key, struct error_info *err)
{
	const struct config_device *cd = config_find_device(broker_config(b), key);
	for (size_t i = 0; cd && i < broker_n_devices(b); i++)
		if (broker_device(b, i)->cfg == cd)
			return broker_device(b, i);
	if (cd)
		error_set(err, ENODEV, "device %s is configured but could not be opened", key);
	else
		error_set(err, ENODEV, "no device named %s (give a name from barkeep.conf or a PCI address)",
			  key);
	return NULL;
}

/* A lease of a D-Bus client, by id: the only leases with objects. */
static const char *reason_string(uint32_t reason)
{
	switch (reason) {
	case BROKER_REASON_ADMIN: return "admin";
	case BROKER_REASON_ERROR: return "error";
	case BROKER_REASON_UNPLUG: return "unplug";
	case BROKER_REASON_SHUTDOWN: return "shutdown";
	}
	return "unknown";
}

static const char *revoke_reason_string(uint32_t reason)
{
	switch (reason) {
	case BROKER_REVOKE_ADMIN: return "admin";
	case BROKER_REVOKE_POLICY: return "policy";
	case BROKER_REVOKE_OWNER: return "owner";
	}
	return "unknown";
}

/* ---- peers ------------------------------------------------------------- */

static void peer_free(struct peer *p)
{
	if (!p)
		return;
	if (p->client)
		log_debug("D-Bus client %s (uid %u) left", p->name, p->client->creds.uid);
	broker_client_free(p->client);
	for (size_t i = 0; i < p->n_pending; i++)
		sd_bus_message_unref(p->pending[i]);
	for (size_t i = 0; i < p->n_resets; i++)
		sd_bus_message_unref(p->resets[i].call);
	sd_bus_slot_unref(p->match);
	sd_bus_slot_unref(p->creds);
	list_remove(&p->link);
	free(p->name);
	free(p);
}

static struct peer *peer_find(struct dbus_server *s, const char *name)
{
	struct peer *p;
	list_for_each(p, &s->peers, link)
		if (streq(p->name, name))
			return p;
	return NULL;
}

static void peer_doom(struct peer *p)
{
	p->doomed = true;
	dbus_server_kick(p->server);
}

static void free_doomed(struct dbus_server *s)
{
	struct peer *p, *tmp;
	list_for_each_safe(p, tmp, &s->peers, link)
		if (p->doomed)
			peer_free(p);
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct peer *p = userdata;
	const char *name, *old_owner, *new_owner;

	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || new_owner[0])
		return 0;
	peer_free(p); /* ends its leases */
	return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct peer *p = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	if (e) {
		/* Without the match its leases could outlive it: refuse it. */
		log_warning("Cannot watch D-Bus client %s: %s; refusing its calls", p->name, e->message);
		for (size_t i = 0; i < p->n_pending; i++)
			(void)sd_bus_reply_method_errorf(p->pending[i], ERROR_PREFIX "Failed",
							 "barkeepd cannot watch your connection: %s", e->message);
		peer_doom(p);
	}
	return 0;
}

static int peer_dispatch(struct peer *p, sd_bus_message *m);

static void peer_fail(struct peer *p, const struct error_info *err)
{
	for (size_t i = 0; i < p->n_pending; i++)
		(void)dbus_reply_error(p->pending[i], err);
	peer_doom(p);
}

/* /proc/PID/status's Groups line, when the bus does not give groups. */
static void proc_groups(struct client_creds *c)
{
	char path[64], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)c->pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		char *p = line + 7, *end;
		while (c->n_groups < BROKER_MAX_GROUPS) {
			unsigned long g = strtoul(p, &end, 10);
			if (end == p)
				break;
			c->groups[c->n_groups++] = (gid_t)g;
			p = end;
		}
		break;
	}
	fclose(f);
}

static int read_creds(sd_bus_message *m, struct client_creds *c)
{
	bool have_uid = false, have_groups = false;
	const char *key;
	int r;

	*c = (struct client_creds){ .gid = (gid_t)-1 };
	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		uint32_t u;
		if ((r = sd_bus_message_read(m, "s", &key)) < 0)
			break;
		if (streq(key, "UnixUserID") && (r = sd_bus_message_read(m, "v", "u", &u)) >= 0) {
			c->uid = u;
			have_uid = true;
		} else if (streq(key, "ProcessID") && (r = sd_bus_message_read(m, "v", "u", &u)) >= 0) {
			c->pid = (pid_t)u;
		} else if (streq(key, "UnixGroupIDs") &&
			   (r = sd_bus_message_enter_container(m, 'v', "au")) >= 0) {
			const uint32_t *g;
			size_t n;
			r = sd_bus_message_read_array(m, 'u', (const void **)&g, &n);
			for (size_t i = 0; r >= 0 && i < n / sizeof(*g) && i < BROKER_MAX_GROUPS; i++)
				c->groups[c->n_groups++] = g[i];
			have_groups = true;
			if (r >= 0)
				r = sd_bus_message_exit_container(m);
		} else if (r >= 0) {
			r = sd_bus_message_skip(m, "v");
		}
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	if (r < 0)
		return r;
	if (!have_uid)
		return -ENODATA;
	/* Older bus daemons do not say; /proc is the next best source. */
	if (!have_groups && c->pid > 0)
		proc_groups(c);
	/* Which [container NAME] it is, by the pid the bus daemon saw. */
	c->cgroup_error = peer_read_cgroup(-EBADF, c->pid, c->cgroup, sizeof(c->cgroup));
	if (c->cgroup_error < 0)
		c->cgroup[0] = '\0';
	return 0;
}

static int on_creds(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct peer *p = userdata;
	struct dbus_server *s = p->server;
	struct client_creds creds;
	struct error_info err = {};
	int r;

	p->creds = sd_bus_slot_unref(p->creds);
	if (sd_bus_message_is_method_error(m, NULL)) {
		/* Gone before the bus could answer: nobody is left to tell. */
		log_debug("D-Bus client %s: no credentials: %s", p->name, sd_bus_message_get_error(m)->message);
		error_set(&err, EIO, "the bus daemon does not know who you are");
		peer_fail(p, &err);
		return 0;
	}
	r = read_creds(m, &creds);
	if (r < 0) {
		log_warning_errno(r, "Cannot read the credentials of D-Bus client %s: %m", p->name);
		error_set(&err, EIO, "barkeepd could not learn who you are from the bus daemon");
		peer_fail(p, &err);
		return 0;
	}
	r = broker_client_new(s->broker, &creds, &dbus_client_ops, p, &p->client, &err);
	if (r < 0) {
		log_warning("Refused D-Bus client %s (uid %u, pid %d): %s", p->name, creds.uid,
			    (int)creds.pid, err.text);
		peer_fail(p, &err);
		return 0;
	}
	broker_client_set_name(p->client, p->name);
	broker_client_set_sharing(p->client, true); /* the interface has Grant and Open */
	log_info("D-Bus client %s (%s%s%suid %u, pid %d) connected", p->name,
		 p->client->container ? "container " : "",
		 p->client->container ? p->client->container->name : "",
		 p->client->container ? ", " : "", creds.uid, (int)creds.pid);
	size_t n = p->n_pending;
	p->n_pending = 0;
	for (size_t i = 0; i < n; i++) {
		(void)peer_dispatch(p, p->pending[i]);
		sd_bus_message_unref(p->pending[i]);
	}
	return 0;
}

static int peer_new(struct dbus_server *s, const char *name, struct peer **ret)
{
	char match[256];
	int r;

	struct peer *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->server = s;
	list_insert_tail(&s->peers, &p->link);
	p->name = strdup(name);
	if (!p->name) {
		peer_free(p);
		return -ENOMEM;
	}
	snprintf(match, sizeof(match),
		 "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
		 "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'", name);
	r = sd_bus_add_match_async(s->bus, &p->match, match, on_name_owner_changed,
				   on_match_installed, p);
	if (r >= 0)
		r = sd_bus_call_method_async(s->bus, &p->creds, "org.freedesktop.DBus",
					     "/org/freedesktop/DBus", "org.freedesktop.DBus",
					     "GetConnectionCredentials", on_creds, p, "s", name);
	if (r < 0) {
		peer_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

/* ---- methods ----------------------------------------------------------- */

static int method_list_devices(struct peer *p, sd_bus_message *m)
{
	struct broker *b = p->server->broker;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	char path[OBJECT_PATH_MAX];

	broker_settle(b);
	int r = sd_bus_message_new_method_return(m, &reply);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'a', "(uossssttttb)");
	for (size_t i = 0; r >= 0 && i < broker_n_devices(b); i++) {
		const struct device *d = broker_device(b, i);
		dbus_device_path(d, path, sizeof(path));
		r = sd_bus_message_append(reply, "(uossssttttb)", d->id, path, d->cfg->name,
					  d->info.pci_addr, d->cfg->label ? d->cfg->label : d->cfg->name,
					  device_state_to_string(d->state), d->info.bar_size,
					  allocator_free_bytes(d->alloc), allocator_largest_free(d->alloc),
					  d->generation, broker_may_use(p->client, d));
	}
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	if (r >= 0)
		r = sd_bus_send(NULL, reply, NULL);
	return r;
}

/* Reads RequestBuffer's a{sv}. -EINVAL with err on a bad option. */
static int read_alloc_options(struct peer *p, sd_bus_message *m, struct alloc_request *ar,
			      struct error_info *err)
{
	const char *key;
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");

	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		int b = 0;
		if ((r = sd_bus_message_read(m, "s", &key)) < 0)
			return r;
		if (streq(key, "alignment")) {
			r = sd_bus_message_read(m, "v", "t", &ar->alignment);
		} else if (streq(key, "exclusive")) {
			r = sd_bus_message_read(m, "v", "b", &b);
			if (b)
				ar->flags |= LEASE_EXCLUSIVE;
		} else if (streq(key, "write_combine")) {
			r = sd_bus_message_read(m, "v", "b", &b);
			if (b)
				ar->flags |= LEASE_WRITE_COMBINE;
		} else if (streq(key, "acknowledge_pauses")) {
			r = sd_bus_message_read(m, "v", "b", &b);
			broker_client_set_events(p->client, b, p->client->watches);
		} else {
			return error_set(err, EINVAL, "unknown option \"%s\" (known: alignment, exclusive, write_combine, acknowledge_pauses)",
					 key);
		}
		if (r == -ENXIO)
			return error_set(err, EINVAL, "option \"%s\" has the wrong type (alignment is t, the others b)",
					 key);
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int method_request_buffer(struct peer *p, sd_bus_message *m)
{
	struct alloc_request ar = {};
	struct error_info err = {};
	struct lease *l;
	const char *dev;

	int r = sd_bus_message_read(m, "st", &dev, &ar.size);
	if (r < 0)
		return r;
	ar.device = dev;
	r = read_alloc_options(p, m, &ar, &err);
	if (r < 0 && err.code)
		return dbus_reply_error(m, &err);
	if (r < 0)
		return r;
	r = broker_alloc(p->client, &ar, &l, &err);
	if (r < 0) {
		log_debug("RequestBuffer from %s refused: %s", p->name, err.text);
		return dbus_reply_error(m, &err);
	}
	log_debug("lease %" PRIu64 ": %" PRIu64 " bytes at %#" PRIx64 " of %s for %s (uid %u)", l->id,
		  l->size, l->offset, device_name(l->device), p->name, p->client->creds.uid);
	r = dbus_reply_lease(m, l);
	if (r < 0) /* the caller never saw it: it is not theirs */
		broker_release(p->client, l->id, NULL);
	return r;
}

/* After a restart: the caller kept its fd, so the reply has none. */
static int method_reclaim(struct peer *p, sd_bus_message *m)
{
	struct error_info err = {};
	struct lease *l;
	const void *token;
	size_t n = 0;
	uint64_t id;
	char path[OBJECT_PATH_MAX];

	int r = sd_bus_message_read(m, "t", &id);
	if (r >= 0)
		r = sd_bus_message_read_array(m, 'y', &token, &n);
	if (r < 0)
		return r;
	if (n != BROKER_TOKEN_SIZE) {
		error_set(&err, EINVAL, "a reclaim token is %d bytes, not %zu", BROKER_TOKEN_SIZE,
			  n);
		return dbus_reply_error(m, &err);
	}
	r = broker_reclaim(p->client, id, token, &l, &err);
	if (r < 0) {
		log_debug("Reclaim from %s refused: %s", p->name, err.text);
		return dbus_reply_error(m, &err);
	}
	log_info("lease %" PRIu64 " reclaimed by %s (uid %u)", l->id, p->name,
		 p->client->creds.uid);
	dbus_lease_path(l, path, sizeof(path));
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	r = sd_bus_message_new_method_return(m, &reply);
	if (r >= 0)
		r = sd_bus_message_append(reply, "o", path);
	if (r >= 0)
		r = dbus_append_lease_info(reply, l);
	return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static int method_release_buffer(struct peer *p, sd_bus_message *m)
{
	struct error_info err = {};
	const char *path;
	uint64_t id;

	int r = sd_bus_message_read(m, "o", &path);
	if (r < 0)
		return r;
	if (dbus_path_id(path, LEASE_PREFIX, &id) < 0 || !broker_find_lease(p->client, id)) {
		error_set(&err, ENOENT, "you hold no lease %s", path);
		return dbus_reply_error(m, &err);
	}
	/* Answer first, as the socket does: the reuse check is not the caller's wait. */
	r = sd_bus_reply_method_return(m, NULL);
	log_debug("lease %" PRIu64 " released by %s", id, p->name);
	broker_release(p->client, id, &err);
	return r;
}

static int method_reset_device(struct peer *p, sd_bus_message *m)
{
	struct dbus_server *s = p->server;
	struct error_info err = {};
	const char *dev, *key;
	int force = 0;
	uint32_t grace_ms = 0;

	int r = sd_bus_message_read(m, "s", &dev);
	if (r >= 0)
		r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		if ((r = sd_bus_message_read(m, "s", &key)) < 0)
			return r;
		if (streq(key, "force"))
			r = sd_bus_message_read(m, "v", "b", &force);
		else if (streq(key, "grace_ms"))
			r = sd_bus_message_read(m, "v", "u", &grace_ms);
		else
			return dbus_reply_error(m, &(struct error_info){ EINVAL,
				"unknown option; ResetDevice knows force (b) and grace_ms (u)" });
		if (r == -ENXIO)
			return dbus_reply_error(m, &(struct error_info){ EINVAL,
				"option force is of type b, grace_ms of type u" });
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	if (r < 0)
		return r;
	struct device *d = device_by_key(s->broker, dev, &err);
	if (!d)
		return dbus_reply_error(m, &err);
	if (p->n_resets == RESETS_MAX) {
		error_set(&err, EBUSY, "you have %d resets waiting; wait for one to finish", RESETS_MAX);
		return dbus_reply_error(m, &err);
	}
	/* Stored first: the answer may come from inside broker_reset(). */
	uint32_t id = ++s->next_reset_id;
	p->resets[p->n_resets++] = (struct peer_reset){ id, sd_bus_message_ref(m) };
	r = broker_reset(p->client, d->id, force, grace_ms, id, &err);
	if (r < 0) {
		p->n_resets--;
		sd_bus_message_unref(m);
		return dbus_reply_error(m, &err);
	}
	return 1; /* answered when the device has resumed; the pause logs who asked */
}

static int method_acknowledge_pause(struct peer *p, sd_bus_message *m)
{
	struct error_info err = {};
	const char *dev;
	uint64_t generation;

	int r = sd_bus_message_read(m, "st", &dev, &generation);
	if (r < 0)
		return r;
	struct device *d = device_by_key(p->server->broker, dev, &err);
	if (!d || broker_pause_ack(p->client, d->id, generation, &err) < 0)
		return dbus_reply_error(m, &err);
	log_debug("D-Bus client %s acknowledged the pause of device %s", p->name, device_name(d));
	return sd_bus_reply_method_return(m, NULL);
}

static const struct {
	const char *member;
	int (*handler)(struct peer *p, sd_bus_message *m);
} methods[] = {
	{ "ListDevices", method_list_devices },
	{ "RequestBuffer", method_request_buffer },
	{ "ReleaseBuffer", method_release_buffer },
	{ "Reclaim", method_reclaim },
	{ "ResetDevice", method_reset_device },
	{ "AcknowledgePause", method_acknowledge_pause },
	{ "Grant", dbus_method_grant },
	{ "Open", dbus_method_open },
	{ "RevokeGrant", dbus_method_revoke_grant },
};

/* Runs one call of a known client; answers it in every case. */
static int peer_dispatch(struct peer *p, sd_bus_message *m)
{
	const char *member = sd_bus_message_get_member(m);
	int r = -EBADMSG;

	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		if (streq(member, methods[i].member)) {
			r = methods[i].handler(p, m);
			break;
		}
	if (r < 0)
		(void)sd_bus_reply_method_errno(m, r, NULL);
	return 1;
}

static int method_call(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct dbus_server *s = userdata;
	const char *sender = sd_bus_message_get_sender(m);
	struct peer *p;

	if (!sender)
		return sd_bus_error_set(ret_error, ERROR_PREFIX "Failed", "calls must come through the bus");
	p = peer_find(s, sender);
	if (p && p->doomed)
		return sd_bus_error_set(ret_error, ERROR_PREFIX "Failed",
					"barkeepd is dropping your connection's state; reconnect");
	if (!p) {
		int r = peer_new(s, sender, &p);
		if (r < 0)
			return r;
	}
	if (p->client)
		return peer_dispatch(p, m);
	if (p->n_pending == PENDING_MAX)
		return sd_bus_error_setf(ret_error, ERROR_PREFIX "Busy",
					 "%d calls are already waiting for the bus to say who you are",
					 PENDING_MAX);
	p->pending[p->n_pending++] = sd_bus_message_ref(m);
	return 1;
}

/* ---- events from the core ---------------------------------------------- */

static int send_event(struct client *c, const struct broker_event *ev, void *userdata)
{
	struct peer *p = userdata;
	struct dbus_server *s = p->server;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
	struct device *d = dbus_device_by_id(s->broker, ev->device_id);
	char dpath[OBJECT_PATH_MAX] = DEVICE_PREFIX, lpath[OBJECT_PATH_MAX];
	const char *dname = d ? d->cfg->name : "";
	static const char *const members[] = {
		[BROKER_EVENT_DEVICE_PAUSE] = "DevicePaused",
		[BROKER_EVENT_DEVICE_RESUME] = "DeviceResumed",
		[BROKER_EVENT_DEVICE_GONE] = "DeviceGone",
		[BROKER_EVENT_LEASE_REVOKED] = "LeaseRevoked",
		[BROKER_EVENT_GRANT_REVOKED] = "GrantRevoked",
	};
	int r;

	if (p->doomed || !s->bus)
		return -ENOBUFS;
	if (d)
		dbus_device_path(d, dpath, sizeof(dpath));
	r = sd_bus_message_new_signal(s->bus, &msg, BUS_PATH, BUS_IFACE, members[ev->type]);
	if (r >= 0)
		r = sd_bus_message_set_destination(msg, p->name);
	if (r < 0)
		goto fail;
	switch (ev->type) {
	case BROKER_EVENT_DEVICE_PAUSE:
		r = sd_bus_message_append(msg, "sotsbu", dname, dpath, ev->generation,
					  reason_string(ev->reason), (int)!!(ev->flags & BROKER_PAUSE_FORCE),
					  ev->deadline_ms);
		break;
	case BROKER_EVENT_DEVICE_RESUME:
		r = sd_bus_message_append(msg, "sotb", dname, dpath, ev->generation,
					  (int)!!(ev->flags & BROKER_RESUME_CONTENTS_LOST));
		break;
	case BROKER_EVENT_DEVICE_GONE:
		r = sd_bus_message_append(msg, "sos", dname, dpath, reason_string(ev->reason));
		break;
	case BROKER_EVENT_LEASE_REVOKED:
		snprintf(lpath, sizeof(lpath), LEASE_PREFIX "/%" PRIu64, ev->lease_id);
		r = sd_bus_message_append(msg, "oss", lpath, dname, revoke_reason_string(ev->reason));
		break;
	case BROKER_EVENT_GRANT_REVOKED:
		snprintf(lpath, sizeof(lpath), LEASE_PREFIX "/%" PRIu64, ev->lease_id);
		r = sd_bus_message_append(msg, "ots", lpath, ev->grant_id, dname);
		break;
	}
	if (r >= 0)
		r = sd_bus_send(s->bus, msg, NULL);
	if (r >= 0) {
		dbus_server_kick(s);
		return 0;
	}
fail:
	log_warning_errno(r, "Failed to send %s to D-Bus client %s; dropping it: %m",
			  members[ev->type], p->name);
	peer_doom(p);
	return -ENOBUFS;
}

static void reset_done(struct client *c, uint32_t request_id, int r, const struct error_info *err,
		       void *userdata)
{
	struct peer *p = userdata;

	for (size_t i = 0; i < p->n_resets; i++) {
		if (p->resets[i].id != request_id)
			continue;
		sd_bus_message *call = p->resets[i].call;
		p->resets[i] = p->resets[--p->n_resets];
		if (r == 0)
			(void)sd_bus_reply_method_return(call, NULL);
		else
			(void)dbus_reply_error(call, err);
		sd_bus_message_unref(call);
		dbus_server_kick(p->server);
		return;
	}
}

const struct client_ops dbus_client_ops = { .send_event = send_event, .reset_done = reset_done };

/* Who may call what is barkeepd's policy (barkeep.conf) and the bus policy;
 * sd-bus's own check would ask the bus daemon for the caller's capabilities
 * synchronously, on every call. */
#define UNPRIVILEGED SD_BUS_VTABLE_UNPRIVILEGED

static const sd_bus_vtable broker_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD_WITH_ARGS("ListDevices", SD_BUS_NO_ARGS,
				SD_BUS_RESULT("a(uossssttttb)", devices), method_call, UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RequestBuffer",
				SD_BUS_ARGS("s", device, "t", size, "a{sv}", options),
				SD_BUS_RESULT("o", lease, "h", fd, "a{sv}", info), method_call, UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("ReleaseBuffer", SD_BUS_ARGS("o", lease), SD_BUS_NO_RESULT,
				method_call, UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Reclaim", SD_BUS_ARGS("t", lease_id, "ay", token),
				SD_BUS_RESULT("o", lease, "a{sv}", info), method_call, UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("ResetDevice", SD_BUS_ARGS("s", device, "a{sv}", options),
				SD_BUS_NO_RESULT, method_call, UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("AcknowledgePause", SD_BUS_ARGS("s", device, "t", generation),
				SD_BUS_NO_RESULT, method_call, UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Grant", SD_BUS_ARGS("o", lease, "a{sv}", options),
				SD_BUS_RESULT("t", grant, "s", token), method_call, UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Open", SD_BUS_ARGS("a{sv}", options),
				SD_BUS_RESULT("o", lease, "h", fd, "a{sv}", info), method_call, UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RevokeGrant", SD_BUS_ARGS("t", grant), SD_BUS_NO_RESULT,
				method_call, UNPRIVILEGED),
	SD_BUS_SIGNAL_WITH_ARGS("DevicePaused",
				SD_BUS_ARGS("s", device, "o", device_path, "t", generation,
					    "s", reason, "b", force, "u", deadline_ms), 0),
	SD_BUS_SIGNAL_WITH_ARGS("DeviceResumed",
				SD_BUS_ARGS("s", device, "o", device_path, "t", generation,
					    "b", contents_lost), 0),
	SD_BUS_SIGNAL_WITH_ARGS("DeviceGone",
				SD_BUS_ARGS("s", device, "o", device_path, "s", reason), 0),
	SD_BUS_SIGNAL_WITH_ARGS("LeaseRevoked",
				SD_BUS_ARGS("o", lease, "s", device, "s", reason), 0),
	SD_BUS_SIGNAL_WITH_ARGS("GrantRevoked",
				SD_BUS_ARGS("o", lease, "t", grant, "s", device), 0),
	SD_BUS_VTABLE_END,
};

/* ---- the bus in the loop ----------------------------------------------- */

/* The core tells transports nothing about devices: their live properties
 * are compared with what was last announced, a few times a second. */
static void on_props(evutil_socket_t fd, short what, void *userdata)
{
	struct dbus_server *s = userdata;
	if (s->bus)
		dbus_objects_announce(s);
}

static void server_disconnect(struct dbus_server *s)
{
	struct peer *p, *tmp;

	list_for_each_safe(p, tmp, &s->peers, link)
		peer_free(p);
	if (s->ev_read)
		event_del(s->ev_read);
	if (s->ev_write)
		event_del(s->ev_write);
	if (s->ev_timeout)
		event_del(s->ev_timeout);
	if (s->ev_props)
		event_del(s->ev_props);
	s->name_slot = sd_bus_slot_unref(s->name_slot);
	/* Not flushed: that could wait on the bus daemon. */
	s->bus = sd_bus_close_unref(s->bus);
}

static void server_arm(struct dbus_server *s)
{
	int events = sd_bus_get_events(s->bus);
	uint64_t until;
	bool rd = events > 0 && (events & POLLIN), wr = events > 0 && (events & POLLOUT);

	if (rd != s->reading) {
		rd ? event_add(s->ev_read, NULL) : event_del(s->ev_read);
		s->reading = rd;
	}
	if (wr != s->writing) {
		wr ? event_add(s->ev_write, NULL) : event_del(s->ev_write);
		s->writing = wr;
	}
	if (sd_bus_get_timeout(s->bus, &until) >= 0 && until != UINT64_MAX) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
		uint64_t left = until > now ? until - now : 0;
		struct timeval tv = { (time_t)(left / 1000000u), (suseconds_t)(left % 1000000u) };
		evtimer_add(s->ev_timeout, &tv);
	} else {
		evtimer_del(s->ev_timeout);
	}
}

static void server_run(struct dbus_server *s)
{
	int r = 0;

	if (!s->bus)
		return;
	for (int i = 0; i < MESSAGES_PER_WAKEUP; i++) {
		r = sd_bus_process(s->bus, NULL);
		if (r <= 0)
			break;
	}
	free_doomed(s);
	if (r < 0) {
		log_warning_errno(r, "Lost the system bus: %m; the leases of D-Bus clients have ended, socket clients are served as before");
		server_disconnect(s);
		return;
	}
	if (r > 0) /* more to do: after the others had their turn */
		event_active(s->ev_kick, EV_TIMEOUT, 1);
	server_arm(s);
}

static void on_bus_event(evutil_socket_t fd, short what, void *userdata)
{
	server_run(userdata);
}

static int on_name_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct dbus_server *s = userdata;
	uint32_t ret = 0;

	s->name_slot = sd_bus_slot_unref(s->name_slot);
	if (sd_bus_message_is_method_error(m, NULL)) {
		log_warning("Cannot own %s on the system bus: %s; D-Bus clients cannot reach barkeepd "
			    "(is org.barkeep.Broker1.conf in /usr/share/dbus-1/system.d?)",
			    DBUS_SERVICE_NAME, sd_bus_message_get_error(m)->message);
		return 0;
	}
	if (sd_bus_message_read(m, "u", &ret) < 0 || (ret != 1 && ret != 4)) {
		log_warning("Cannot own %s on the system bus: another process owns it", DBUS_SERVICE_NAME);
		return 0;
	}
	log_info("On the system bus as %s", DBUS_SERVICE_NAME);
	return 0;
}

int dbus_server_new(struct event_base *base, struct broker *b, struct dbus_server **ret)
{
	struct dbus_server *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->base = base;
	s->broker = b;
	list_init(&s->peers);
	r = sd_bus_open_system_with_description(&s->bus, "barkeepd");
	if (r < 0)
		goto fail;
	r = sd_bus_add_object_vtable(s->bus, NULL, BUS_PATH, BUS_IFACE, broker_vtable, s);
	if (r >= 0)
		r = dbus_objects_add(s);
	/* DBUS_NAME_FLAG_DO_NOT_QUEUE: a second barkeepd is told at once. */
	if (r >= 0)
		r = sd_bus_call_method_async(s->bus, &s->name_slot, "org.freedesktop.DBus",
					     "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
					     on_name_reply, s, "su", DBUS_SERVICE_NAME, 4u);
	if (r < 0)
		goto fail;

	int fd = sd_bus_get_fd(s->bus);
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	s->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, on_bus_event, s);
	s->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, on_bus_event, s);
	s->ev_timeout = evtimer_new(base, on_bus_event, s);
	s->ev_kick = evtimer_new(base, on_bus_event, s);
	s->ev_props = event_new(base, -1, EV_PERSIST, on_props, s);
	struct timeval props = { 0, PROPS_INTERVAL_MS * 1000 };
	if (!s->ev_read || !s->ev_write || !s->ev_timeout || !s->ev_kick || !s->ev_props ||
	    event_add(s->ev_props, &props) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	server_arm(s);
	*ret = s;
	return 0;
fail:
	dbus_server_free(s);
	return r;
}

struct dbus_server *dbus_server_free(struct dbus_server *s)
{
	if (!s)
		return NULL;
	server_disconnect(s);
	if (s->ev_read)
		event_free(s->ev_read);
	if (s->ev_write)
		event_free(s->ev_write);
	if (s->ev_timeout)
		event_free(s->ev_timeout);
	if (s->ev_kick)
		event_free(s->ev_kick);
	if (s->ev_props)
		event_free(s->ev_props);
	free(s->seen);
	free(s);
	return NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * Shared by the files of the D-Bus transport: dbus.c (the bus in the loop,
 * callers, methods, signals) and dbus-objects.c (the device and lease
 * objects and their properties).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <event2/event.h>
#include <systemd/sd-bus.h>

#include "common/list.h"
#include "daemon/broker.h"
#include "daemon/transports/dbus.h"

#define BUS_PATH "/org/barkeep/Broker1"
#define BUS_IFACE "org.barkeep.Broker1"
#define DEVICE_PREFIX BUS_PATH "/device"
#define LEASE_PREFIX BUS_PATH "/lease"
#define DEVICE_IFACE BUS_IFACE ".Device"
#define LEASE_IFACE BUS_IFACE ".Lease"
#define ERROR_PREFIX BUS_IFACE ".Error."
#define OBJECT_PATH_MAX 64

#define PENDING_MAX 16         /* calls parked while the caller's identity is asked */
#define RESETS_MAX 8           /* ResetDevice calls one caller may have waiting */

#define streq(a, b) (strcmp((a), (b)) == 0)

struct peer_reset {
	uint32_t id;
	sd_bus_message *call;
};

/* One unique bus name that called us: one broker client. */
struct peer {
	struct dbus_server *server;
	struct list link;
	char *name;
	struct client *client; /* NULL until the bus said who it is */
	sd_bus_slot *match, *creds;
	sd_bus_message *pending[PENDING_MAX];
	size_t n_pending;
	struct peer_reset resets[RESETS_MAX];
	size_t n_resets;
	bool doomed; /* freed on the next pass of the loop */
};

/* What PropertiesChanged last said about a device. */
struct device_seen {
	enum device_state state;
	uint64_t generation, free_bytes, largest_free;
	unsigned n_leases;
};

struct dbus_server {
	struct event_base *base;
	struct broker *broker;
	sd_bus *bus;
	struct event *ev_read, *ev_write, *ev_timeout, *ev_kick, *ev_props;
	bool reading, writing;
	struct list peers;
	uint32_t next_reset_id;
	struct device_seen *seen;
	sd_bus_slot *name_slot;
};


/* Its leases are the ones with objects. */
extern const struct client_ops dbus_client_ops;

/* Runs the bus soon: after sending outside of sd_bus_process(). */
void dbus_server_kick(struct dbus_server *s);

void dbus_device_path(const struct device *d, char *buf, size_t size);
void dbus_lease_path(const struct lease *l, char *buf, size_t size);
/* The number after prefix + "/" in path; -EINVAL. */
int dbus_path_id(const char *path, const char *prefix, uint64_t *ret);
struct device *dbus_device_by_id(struct broker *b, uint64_t id);

/* Answers a method call with an error named after err->code. */
int dbus_reply_error(sd_bus_message *m, const struct error_info *err);
/* Answers RequestBuffer or Open: (o lease, h fd, a{sv} info). */
int dbus_reply_lease(sd_bus_message *m, const struct lease *l);
/* A lease's INFO a{sv} (RequestBuffer, Open, Reclaim). */
int dbus_append_lease_info(sd_bus_message *reply, const struct lease *l);
/* The sharing methods (dbus-share.c). */
int dbus_method_grant(struct peer *p, sd_bus_message *m);
int dbus_method_open(struct peer *p, sd_bus_message *m);
int dbus_method_revoke_grant(struct peer *p, sd_bus_message *m);

/* Publishes the device and lease objects and remembers the devices' state. */
int dbus_objects_add(struct dbus_server *s);
/* Emits PropertiesChanged for what changed on the devices since the last call. */
void dbus_objects_announce(struct dbus_server *s);

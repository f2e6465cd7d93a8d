/* SPDX-License-Identifier: MIT */
/*
 * The D-Bus transport: org.barkeep.Broker1 on the system bus (see
 * doc/org.barkeep.Broker1.5.md and systemd/org.barkeep.Broker1.xml). Each
 * unique bus name that calls a method becomes one broker client, made once
 * the bus daemon has said who it is; its leases end when the name leaves
 * the bus. sd-bus runs inside the daemon's libevent loop, and no call here
 * waits for the bus: credentials, name tracking and the name request are
 * all asynchronous.
 */
#pragma once

#include <event2/event.h>

struct broker;
struct dbus_server;

#define DBUS_SERVICE_NAME "org.barkeep.Broker1"

/* Connects to the system bus ($DBUS_SYSTEM_BUS_ADDRESS or the default
 * socket), publishes the objects and asks for the name. -errno when the bus
 * cannot be reached; losing the name or the bus later is logged. */
int dbus_server_new(struct event_base *base, struct broker *b, struct dbus_server **ret);
struct dbus_server *dbus_server_free(struct dbus_server *s);

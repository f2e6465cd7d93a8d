// SPDX-License-Identifier: MIT
/*
 * The objects of org.barkeep.Broker1 below /org/barkeep/Broker1: one per
 * device and one per lease of a D-Bus client. Nothing is copied from the
 * core: each call finds the device or lease the path names, so an object
 * exists exactly as long as what it shows.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "daemon/allocator.h"
#include "daemon/transports/dbus-private.h"

void dbus_device_path(const struct device *d, char *buf, size_t size)
{
	snprintf(buf, size, DEVICE_PREFIX "/%" PRIu32, d->id);
}

void dbus_lease_path(const struct lease *l, char *buf, size_t size)
{
	snprintf(buf, size, LEASE_PREFIX "/%" PRIu64, l->id);
}

/* The number after prefix + "/" in path, or -EINVAL. */
int dbus_path_id(const char *path, const char *prefix, uint64_t *ret)
{
	size_t n = strlen(prefix);
	char *end;

	if (strncmp(path, prefix, n) != 0 || path[n] != '/' || path[n + 1] < '0' || path[n + 1] > '9')
		return -EINVAL;
	errno = 0;
	*ret = strtoull(path + n + 1, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

struct device *dbus_device_by_id(struct broker *b, uint64_t id)
{
	for (size_t i = 0; i < broker_n_devices(b); i++)
		if (broker_device(b, i)->id == id)
			return broker_device(b, i);
	return NULL;
}

static struct lease *dbus_lease_by_id(struct broker *b, uint64_t id)
{
	for (size_t i = 0; i < broker_n_devices(b); i++) {
		struct lease *l;
		list_for_each(l, &broker_device(b, i)->leases, device_link)
			if (l->id == id && l->owner->ops == &dbus_client_ops)
				return l;
	}
	return NULL;
}

static int device_find(sd_bus *bus, const char *path, const char *iface, void *userdata,
		       void **ret_found, sd_bus_error *ret_error)
{
	struct dbus_server *s = userdata;
	uint64_t id;

	if (dbus_path_id(path, DEVICE_PREFIX, &id) < 0 || !(*ret_found = dbus_device_by_id(s->broker, id)))
		return 0;
	return 1;
}

static int device_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
			    sd_bus_error *ret_error)
{
	struct dbus_server *s = userdata;
	size_t n = broker_n_devices(s->broker);
	char **nodes = calloc(n + 1, sizeof(*nodes));

	if (!nodes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (asprintf(&nodes[i], DEVICE_PREFIX "/%" PRIu32, broker_device(s->broker, i)->id) < 0)
			nodes[i] = NULL; /* ends the list early; sd-bus frees what is there */
	*ret_nodes = nodes;
	return 0;
}

static int device_property(sd_bus *bus, const char *path, const char *iface, const char *property,
			   sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	const struct device *d = userdata;

	if (streq(property, "Id"))
		return sd_bus_message_append(reply, "u", d->id);
	if (streq(property, "Name"))
		return sd_bus_message_append(reply, "s", d->cfg->name);
	if (streq(property, "Address"))
		return sd_bus_message_append(reply, "s", d->info.pci_addr);
	if (streq(property, "Label"))
		return sd_bus_message_append(reply, "s", d->cfg->label ? d->cfg->label : d->cfg->name);
	if (streq(property, "BarSize"))
		return sd_bus_message_append(reply, "t", d->info.bar_size);
	if (streq(property, "FreeBytes"))
		return sd_bus_message_append(reply, "t", allocator_free_bytes(d->alloc));
	if (streq(property, "LargestFree"))
		return sd_bus_message_append(reply, "t", allocator_largest_free(d->alloc));
	if (streq(property, "State"))
		return sd_bus_message_append(reply, "s", device_state_to_string(d->state));
	if (streq(property, "Generation"))
		return sd_bus_message_append(reply, "t", d->generation);
	if (streq(property, "Leases"))
		return sd_bus_message_append(reply, "u", d->n_leases);
	return -ENOENT;
}

static int lease_find(sd_bus *bus, const char *path, const char *iface, void *userdata,
		      void **ret_found, sd_bus_error *ret_error)
{
	struct dbus_server *s = userdata;
	uint64_t id;

	if (dbus_path_id(path, LEASE_PREFIX, &id) < 0 || !(*ret_found = dbus_lease_by_id(s->broker, id)))
		return 0;
	return 1;
}

static int lease_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
			   sd_bus_error *ret_error)
{
	struct dbus_server *s = userdata;
	struct peer *p;
	size_t n = 0, i = 0;

	list_for_each(p, &s->peers, link)
		n += p->client ? p->client->n_leases + p->client->n_opens : 0;
	char **nodes = calloc(n + 1, sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	list_for_each(p, &s->peers, link) {
		struct lease *l;
		if (!p->client)
			continue;
		list_for_each(l, &p->client->leases, client_link)
			if (i < n && asprintf(&nodes[i], LEASE_PREFIX "/%" PRIu64, l->id) >= 0)
				i++;
	}
	*ret_nodes = nodes;
	return 0;
}

struct holders_reply {
	sd_bus_message *m;
	int r;
};

static void append_holder(const struct share_holder_info *h, void *userdata)
{
	struct holders_reply *hr = userdata;
	if (hr->r >= 0)
		hr->r = sd_bus_message_append(hr->m, "(ttub)", h->holder_lease_id, h->grant_id,
					      (uint32_t)h->uid, (int)h->read_only);
}

/* Who opened the lease: (holder's lease id, grant id, uid, read-only) each. */
static int append_holders(sd_bus_message *reply, const struct lease *l)
{
	struct holders_reply hr = { reply, sd_bus_message_open_container(reply, 'a', "(ttub)") };
	broker_lease_holders(l, append_holder, &hr);
	return hr.r < 0 ? hr.r : sd_bus_message_close_container(reply);
}

static int lease_property(sd_bus *bus, const char *path, const char *iface, const char *property,
			  sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	const struct lease *l = userdata;
	const struct peer *p = l->owner->userdata;
	char dpath[OBJECT_PATH_MAX];

	if (streq(property, "Id"))
		return sd_bus_message_append(reply, "t", l->id);
	if (streq(property, "Device")) {
		dbus_device_path(l->device, dpath, sizeof(dpath));
		return sd_bus_message_append(reply, "o", dpath);
	}
	if (streq(property, "DeviceName"))
		return sd_bus_message_append(reply, "s", l->device->cfg->name);
	if (streq(property, "Offset"))
		return sd_bus_message_append(reply, "t", l->offset);
	if (streq(property, "Size"))
		return sd_bus_message_append(reply, "t", l->size);
	if (streq(property, "Generation"))
		return sd_bus_message_append(reply, "t", l->generation);
	if (streq(property, "Owner"))
		return sd_bus_message_append(reply, "s", p->name);
	if (streq(property, "Exclusive"))
		return sd_bus_message_append(reply, "b", (int)!!(l->flags & LEASE_EXCLUSIVE));
	if (streq(property, "Holders"))
		return append_holders(reply, l);
	return -ENOENT;
}

#define CONST_PROP(name, sig, get) SD_BUS_PROPERTY(name, sig, get, 0, SD_BUS_VTABLE_PROPERTY_CONST)
#define LIVE_PROP(name, sig, get) SD_BUS_PROPERTY(name, sig, get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)

static const sd_bus_vtable device_vtable[] = {
	SD_BUS_VTABLE_START(0),
	CONST_PROP("Id", "u", device_property),
	CONST_PROP("Name", "s", device_property),
	CONST_PROP("Address", "s", device_property),
	CONST_PROP("Label", "s", device_property),
	CONST_PROP("BarSize", "t", device_property),
	LIVE_PROP("FreeBytes", "t", device_property),
	LIVE_PROP("LargestFree", "t", device_property),
	LIVE_PROP("State", "s", device_property),
	LIVE_PROP("Generation", "t", device_property),
	LIVE_PROP("Leases", "u", device_property),
	SD_BUS_VTABLE_END,
};

static const sd_bus_vtable lease_vtable[] = {
	SD_BUS_VTABLE_START(0),
	CONST_PROP("Id", "t", lease_property),
	CONST_PROP("Device", "o", lease_property),
	CONST_PROP("DeviceName", "s", lease_property),
	CONST_PROP("Offset", "t", lease_property),
	CONST_PROP("Size", "t", lease_property),
	CONST_PROP("Generation", "t", lease_property),
	CONST_PROP("Owner", "s", lease_property),
	CONST_PROP("Exclusive", "b", lease_property),
	SD_BUS_PROPERTY("Holders", "a(ttub)", lease_property, 0, 0), /* read when asked, not announced */
	SD_BUS_VTABLE_END,
};

/* The core tells transports nothing about devices: their live properties
 * are compared with what was last announced, a few times a second. */
void dbus_objects_announce(struct dbus_server *s)
{
	char path[OBJECT_PATH_MAX];

	for (size_t i = 0; s->bus && i < broker_n_devices(s->broker); i++) {
		const struct device *d = broker_device(s->broker, i);
		struct device_seen now = { d->state, d->generation, allocator_free_bytes(d->alloc),
					   allocator_largest_free(d->alloc), d->n_leases };
		struct device_seen *was = &s->seen[i];
		char *changed[6];
		size_t n = 0;

		if (now.free_bytes != was->free_bytes)
			changed[n++] = (char *)"FreeBytes";
		if (now.largest_free != was->largest_free)
			changed[n++] = (char *)"LargestFree";
		if (now.state != was->state)
			changed[n++] = (char *)"State";
		if (now.generation != was->generation)
			changed[n++] = (char *)"Generation";
		if (now.n_leases != was->n_leases)
			changed[n++] = (char *)"Leases";
		if (!n)
			continue;
		changed[n] = NULL;
		*was = now;
		dbus_device_path(d, path, sizeof(path));
		int r = sd_bus_emit_properties_changed_strv(s->bus, path, DEVICE_IFACE, changed);
		if (r < 0)
			log_debug("Failed to announce the properties of device %s: %s", device_name(d),
				  strerror(-r));
		dbus_server_kick(s);
	}
}

int dbus_objects_add(struct dbus_server *s)
{
	struct broker *b = s->broker;

	s->seen = calloc(broker_n_devices(b) + 1, sizeof(*s->seen));
	if (!s->seen)
		return -ENOMEM;
	for (size_t i = 0; i < broker_n_devices(b); i++) {
		const struct device *d = broker_device(b, i);
		s->seen[i] = (struct device_seen){ d->state, d->generation, allocator_free_bytes(d->alloc),
						   allocator_largest_free(d->alloc), d->n_leases };
	}
	int r = sd_bus_add_fallback_vtable(s->bus, NULL, DEVICE_PREFIX, DEVICE_IFACE, device_vtable,
					   device_find, s);
	if (r >= 0)
		r = sd_bus_add_node_enumerator(s->bus, NULL, DEVICE_PREFIX, device_enumerate, s);
	if (r >= 0)
		r = sd_bus_add_fallback_vtable(s->bus, NULL, LEASE_PREFIX, LEASE_IFACE, lease_vtable,
					       lease_find, s);
	if (r >= 0)
		r = sd_bus_add_node_enumerator(s->bus, NULL, LEASE_PREFIX, lease_enumerate, s);
	return r < 0 ? r : 0;
}

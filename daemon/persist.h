/* SPDX-License-Identifier: MIT */
/*
 * Keeping leases alive across a restart: what barkeepd puts in systemd's fd
 * store while it runs, and the live lease table (fdstore.h) beside it.
 *
 * The kernel revokes every dma-buf of a VFIO device at the last close of
 * its device fd, so the device's fds (and the daemon's own reference to
 * each lease's buffer) go into the store as soon as they exist; systemd
 * keeps them across `systemctl restart` and a crash with Restart=on-failure.
 * Every call takes a NULL persist (no fd store: standalone, or
 * FileDescriptorStoreMax too small) and then does nothing.
 *
 * The reuse rule (device.h) counts references to a buffer: systemd's copy of
 * a stored fd is one more, which window_store.stored tells device.c.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/device.h"
#include "daemon/fdstore.h"

struct device;
struct lease;
struct persist;

/* max_fds: the unit's FileDescriptorStoreMax=. writer: the table to
 * continue (taken), or NULL for a new one. */
int persist_new(unsigned max_fds, struct fdstore_writer *writer, struct persist **ret);
struct persist *persist_free(struct persist *p);
/* Stops every later store and table change: the process is exiting, and
 * what the store holds is for the next one. */
void persist_detach(struct persist *p);
/* Pushes the table (once, at start). 0 or -errno. */
int persist_publish_table(struct persist *p);

/* A device opened fresh: its slot in the table and its fds in the store.
 * An adopted one (already in both) passes its table slot to
 * persist_device_adopted() instead. */
int persist_device_added(struct persist *p, struct device *d);
void persist_device_adopted(struct persist *p, struct device *d, uint32_t slot);
void persist_device_generation(struct persist *p, const struct device *d);
/* A device gone for good: its fds and slot leave the store and table. */
void persist_device_removed(struct persist *p, struct device *d);
/* A device of the stored table that did not come back: its slot. */
void persist_drop_device_slot(struct persist *p, uint32_t slot);

/* A new lease, before its buffer leaves the daemon: the table slot first,
 * then the fd in the store. Fills l->store; a lease beyond the store's room
 * gets a live slot without its fd (a restart keeps its window out of use
 * but cannot give it back), and the log says so once per episode. */
void persist_lease_added(struct persist *p, struct lease *l, uint64_t next_lease_id);
/* A lease taken back from the previous process: already in both. */
void persist_lease_adopted(struct persist *p, const struct window_store *ws);
void persist_window_quarantined(struct persist *p, const struct window_store *ws);
/* The lease's window is about to be exported to another holder, whose
 * buffer the store does not keep: the slot becomes FDSTORE_LEASE_SHARED
 * (a restart keeps the window out of use instead of lending it while such
 * buffers may be open) and the fd leaves the store (ws->stored becomes
 * false). Not reclaimable after a restart. Call before the export leaves. */
void persist_lease_shared(struct persist *p, struct window_store *ws);
/* The window is free again: no slot, no stored fd. */
void persist_window_forget(struct persist *p, const struct window_store *ws);

/* Stored fds, and how many the unit allows. */
unsigned persist_n_stored(const struct persist *p);
unsigned persist_max_fds(const struct persist *p);

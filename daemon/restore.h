/* SPDX-License-Identifier: MIT */
/*
 * Starting from what a previous barkeepd left in systemd's fd store: the
 * lease table is validated as a whole (refused: every stored fd is released
 * and the daemon starts clean, saying why), configured devices are taken up
 * from their stored fds, live leases become orphans their holders can
 * reclaim, released windows go back to quarantine, and whatever the table
 * does not account for is released. Daemon glue: logs what it does.
 */
#pragma once

#include "daemon/broker.h"
#include "daemon/fdstore.h"
#include "daemon/persist.h"

struct restore;

/* Takes inh over. max_fds: FileDescriptorStoreMax= (0: no fd store; every
 * inherited entry is released). */
int restore_begin(struct fdstore_inherited *inh, unsigned max_fds, struct restore **ret);
/* broker_open_devices()'s adopt callback (userdata: the restore). */
int restore_adopt_device(const struct config_device *cfg, uint32_t id, struct device **ret,
			 void *userdata);
/* After the devices are open: stores the fresh ones, rebuilds leases and
 * quarantine, releases leftovers, publishes the table. */
void restore_finish(struct restore *rs, struct broker *b);
/* The persist the daemon keeps using (NULL: no fd store); taken. */
struct persist *restore_take_persist(struct restore *rs);
struct restore *restore_free(struct restore *rs);
static inline void restore_freep(struct restore **rs) { *rs = restore_free(*rs); }

/* SPDX-License-Identifier: MIT */
/*
 * What barkeepd keeps in systemd's fd store so that a restart revokes
 * nothing: the kernel kills every dma-buf of a VFIO device at the last close
 * of its device fd, so the fds must outlive the process. Stored entries:
 *
 *   bk-table                  the lease table below, in a sealed memfd
 *   bk-dev-NAME-container     the VFIO container, group and device fds of
 *   bk-dev-NAME-group         device NAME (the config's name)
 *   bk-dev-NAME-device
 *   bk-lease-ID               the daemon's own reference to lease ID's dma-buf
 *
 * The table is what a new process needs to rebuild its devices and leases.
 * It is not a snapshot but a file of fixed slots that the daemon updates in
 * place through a shared mapping, so every ALLOC and RELEASE costs a few
 * stores and no message to systemd, and a kill -9 at any instant leaves a
 * table that says no less than what clients could hold:
 *   - a slot's body and checksum are written while its state word says
 *     free; the aligned 32-bit state store that makes it live comes last,
 *     and only then is the buffer exported to a client or stored;
 *   - the fields that change later (a device's generation, the next lease
 *     id, a lease's state) are single aligned stores outside the checksums.
 * Deserializing checks every field (names, alignment, ranges inside the BAR,
 * no overlap, unique ids, known flags, every live slot's checksum) and
 * refuses the whole table on the first problem, with a sentence saying
 * which: a stale or corrupt table must never become a lease. No logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "daemon/broker.h"
#include "daemon/config.h"

#define FDSTORE_TABLE_VERSION 2
#define FDSTORE_MAX_DEVICES 64
#define FDSTORE_MAX_LEASES 65536
#define FDSTORE_NAME_MAX 64 /* systemd's FDNAME= limit is 255; ours are shorter */
#define FDSTORE_NAME_TABLE "bk-table"

struct fdstore_device {
	uint32_t slot; /* where it sits in the table */
	char name[CONFIG_DEVICE_NAME_MAX + 1];
	char pci[CONFIG_PCI_ADDR_MAX];
	uint32_t bar;
	uint64_t bar_size, page_size;
	uint64_t generation;
};

enum {
	FDSTORE_LEASE_FREE = 0,
	FDSTORE_LEASE_LIVE = 1,        /* held (or orphaned): reclaimable after a restart */
	FDSTORE_LEASE_QUARANTINED = 2, /* released; a copy of the buffer may be open somewhere */
	FDSTORE_LEASE_SHARED = 3,      /* other holders have exports the store does not keep:
					* a restart keeps the window out of use */
};

struct fdstore_lease {
	uint32_t slot;
	uint32_t state;  /* FDSTORE_LEASE_LIVE: held (or orphaned); _QUARANTINED: released,
			  * a copy of the buffer may still be open somewhere */
	uint64_t id;
	uint32_t device; /* index into fdstore_table.devices */
	uint32_t flags;  /* LEASE_* */
	uint32_t uid;    /* the holder; only this uid may reclaim it */
	uint64_t offset, size, generation;
	struct lease_image image;
	uint8_t token[BROKER_TOKEN_SIZE];
};

struct fdstore_table {
	uint64_t next_lease_id;
	struct fdstore_device *devices;
	size_t n_devices;
	struct fdstore_lease *leases;
	size_t n_leases;
};

struct fdstore_table *fdstore_table_free(struct fdstore_table *t);

/* Writes t into a new memfd with exactly as many slots as t fills (the
 * slot fields of t are ignored), sealed against resizing; returns its fd
 * (O_CLOEXEC) or -errno (-EINVAL: t itself would not pass validation). */
int fdstore_table_serialize(const struct fdstore_table *t);
/* Reads and validates a table. Returns 0; -EBADMSG (corrupt, bad checksum, a
 * field out of range), -EPROTONOSUPPORT (another version), -EPERM (the memfd
 * is not sealed against resizing), -errno; then *ret_error (may be NULL)
 * holds one sentence saying what is wrong. Leases' device fields index
 * ret->devices; slot fields say where each record sits. */
int fdstore_table_deserialize(int fd, struct fdstore_table **ret, char **ret_error);

/* The daemon's live table: FDSTORE_MAX_DEVICES and FDSTORE_MAX_LEASES slots
 * in a memfd mapped shared (sparse: about 9 MiB of address space, a page
 * of memory per 30 leases). */
struct fdstore_writer;
int fdstore_writer_new(struct fdstore_writer **ret);
/* Continues the table in fd, which fdstore_table_deserialize() read as t;
 * takes fd. */
int fdstore_writer_adopt(int fd, const struct fdstore_table *t, struct fdstore_writer **ret);
struct fdstore_writer *fdstore_writer_free(struct fdstore_writer *w);
int fdstore_writer_fd(const struct fdstore_writer *w);
/* Returns the slot, or -ENOSPC. d->slot is ignored. */
int fdstore_writer_put_device(struct fdstore_writer *w, const struct fdstore_device *d);
/* Frees the device's slot and every lease slot that names it. */
void fdstore_writer_drop_device(struct fdstore_writer *w, uint32_t slot);
void fdstore_writer_set_generation(struct fdstore_writer *w, uint32_t slot, uint64_t generation);
/* l->device is a device slot here; l->slot and l->state are ignored. Returns
 * the slot (live from now on), or -ENOSPC. */
int fdstore_writer_put_lease(struct fdstore_writer *w, const struct fdstore_lease *l);
/* The same, but the slot stays free (a restart ignores it) until
 * fdstore_writer_set_lease_state() makes it live or gives it back. */
int fdstore_writer_stage_lease(struct fdstore_writer *w, const struct fdstore_lease *l);
/* FDSTORE_LEASE_QUARANTINED, _SHARED, or FDSTORE_LEASE_FREE to give the slot back.
 * Does nothing unless the slot still holds lease_id (its device's drop may
 * have freed it). */
void fdstore_writer_set_lease_state(struct fdstore_writer *w, uint32_t slot, uint64_t lease_id,
				    uint32_t state);
void fdstore_writer_set_next_id(struct fdstore_writer *w, uint64_t next_lease_id);

/* The fd names above. Return 0, or -ENAMETOOLONG. kind: "container",
 * "group" or "device". */
int fdstore_name_device(char buf[static FDSTORE_NAME_MAX], const char *device, const char *kind);
int fdstore_name_lease(char buf[static FDSTORE_NAME_MAX], uint64_t lease_id);
/* Is name one of ours (any bk- name)? The socket from barkeepd.socket arrives
 * in LISTEN_FDS too, under its own name. */
bool fdstore_name_is_ours(const char *name);

/* What systemd passed in LISTEN_FDS/LISTEN_FDNAMES: the listening socket
 * from barkeepd.socket (any name that is not ours), and our stored entries. */
struct fdstore_inherited {
	int socket_fd;   /* -EBADF: none came */
	size_t n_other;  /* fds that were neither and were closed */
	size_t n;        /* our entries */
	int *fds;
	char **names;
};
/* Takes over every inherited fd (and unsets LISTEN_*). 0 or -errno. */
int fdstore_inherit(struct fdstore_inherited *ret);
/* Ends our entries: closes them here and asks systemd to drop its copies
 * (FDSTOREREMOVE=1), so no stale device or buffer reference survives. Returns
 * how many there were. The socket is left alone. */
size_t fdstore_inherited_drop(struct fdstore_inherited *inh);
/* Our entry of that name, or -EBADF. */
int fdstore_inherited_find(const struct fdstore_inherited *inh, const char *name);

static inline void fdstore_writer_freep(struct fdstore_writer **w) { *w = fdstore_writer_free(*w); }
#define _cleanup_fdstore_writer_ _cleanup_(fdstore_writer_freep)
static inline void fdstore_table_freep(struct fdstore_table **t) { *t = fdstore_table_free(*t); }
#define _cleanup_fdstore_table_ _cleanup_(fdstore_table_freep)

/* SPDX-License-Identifier: MIT */
/*
 * A device the broker lends from: a backend handle, the BAR's window
 * allocator, and the windows waiting in quarantine.
 *
 * The reuse rule: a window goes back to the allocator only when no dma-buf
 * that covered it is alive anywhere. Clients may pass their fd on, and the
 * kernel gives no notice when the last copy closes, so the daemon keeps its
 * own reference to every export and reads the file's reference count from
 * fdinfo: at 1 (ours alone) the window is zeroed (off the loop, scrub.h)
 * and then freed; above 1 it
 * waits in quarantine and is looked at again on every sweep. Where the
 * kernel can revoke one buffer (DEVICE_FEATURE_REVOKE, kernel-patches/),
 * the daemon revokes it instead: no copy reaches the window any more, so it
 * is zeroed and freed at once. The daemon's own reference to a small
 * buffer found unreferenced may be kept to lend that buffer again with its
 * zeroed window (daemon/idle.h) instead of exporting anew. A device that
 * is not READY is not touched at all: its windows wait in quarantine (a
 * paused BAR cannot be scrubbed), and those of a GONE one are dropped.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/list.h"
#include "daemon/backend.h"
#include "daemon/config.h"

struct allocator;
struct device_pause;
struct device_scrub;
struct device_watch;
struct persist;

/* How a window is known outside this process (daemon/persist.h). */
struct window_store {
	uint64_t lease_id;
	int32_t slot; /* in the fd store's lease table; -1: not in it */
	bool stored;  /* systemd holds a copy of the buffer's fd: one more reference */
};
#define WINDOW_STORE_NONE ((struct window_store){ .slot = -1 })

enum device_state { DEVICE_READY = 1, DEVICE_PAUSED = 2, DEVICE_GONE = 3 };

struct device {
	uint32_t id;
	const struct config_device *cfg;
	const struct backend_ops *ops;
	struct backend_device *backend;
	struct backend_info info;
	struct allocator *alloc;
	enum device_state state;
	uint64_t generation;
	struct list leases;     /* struct lease.device_link, live */
	struct list quarantine; /* struct window, released but still referenced */
	struct list orphans;    /* struct lease.device_link: restored, not yet reclaimed */
	unsigned n_orphans;
	struct persist *persist; /* NULL: no fd store */
	int32_t store_slot;      /* in the fd store's table; -1: not in it */
	const char *stored_kinds[BACKEND_STORED_MAX]; /* its fds in the store, by kind */
	size_t n_stored_kinds;
	unsigned n_leases;
	unsigned n_exclusive;
	uint64_t quarantined_bytes;
	uint64_t dirty_bytes;         /* released, unreferenced, waiting to be zeroed */
	struct device_scrub *scrub;   /* the worker that zeroes them (daemon/scrub.c); NULL: in place */
	struct idle_pool *idle;       /* released buffers kept to lend again (daemon/idle.h); NULL: none */
	struct fdinfo_cache *fdinfo;  /* the loop's reads of reference counts (the broker's); NULL: plain */
	struct device_pause *pause; /* while PAUSED: the pause under way (daemon/pause.c) */
	struct device_watch *watch; /* device errors, release requests (daemon/pause.c) */
	int error_fd;               /* eventfd: a write means a device error; -EBADF */
	bool signals_errors;        /* the backend writes to error_fd (else only a test can) */
	bool signals_release;       /* the host's "give the device back" reaches us */
};

/* A device that is READY at generation 1 with nothing set up: no backend,
 * no allocator (device_open() does both; unit tests set their own). */
struct device *device_new(const struct config_device *cfg, uint32_t id);
/* Opens the device the config describes, applies its reserved ranges; with
 * fds, takes it up from what a previous process stored (backend adopt).
 * -errno with err saying what failed. */
int device_open(const struct config_device *cfg, uint32_t id, const struct backend_stored *fds,
		size_t n_fds, struct device **ret, struct error_info *err);
struct device *device_free(struct device *d);

/* Carves a window and exports it, or takes a kept buffer of that size
 * (daemon/idle.h; O_RDWR only): *ret_fd is the daemon's own reference.
 * -ENOSPC (err says free and largest-free bytes), -errno from the kernel. */
int device_window_new(struct device *d, uint64_t size, uint64_t align, int open_flags,
		      uint64_t *ret_offset, int *ret_fd, struct error_info *err);

/* Another export of a window already carved (a holder's own dma-buf of a
 * shared window): *ret_fd is the daemon's reference. -errno with err. */
int device_window_export(struct device *d, uint64_t offset, uint64_t size, int open_flags,
			 int *ret_fd, struct error_info *err);

/* Ends the daemon's use of a window: hands it to the scrub worker (which
 * frees it when fd holds the last reference, else quarantines it), or
 * without one does that here (takes fd either way). Returns 1 when freed
 * here, 0 otherwise. */
int device_window_release(struct device *d, uint64_t offset, uint64_t size, int fd,
			  const struct window_store *ws);
/* Puts a window a previous process had released back into quarantine
 * (restart), or keeps it out of use for good when fd is -EBADF (its buffer
 * is unknown: it may still be open somewhere). */
int device_window_restore(struct device *d, uint64_t offset, uint64_t size, int fd,
			  const struct window_store *ws);

/* The same for a window exported several times (a shared window): freed
 * when every one of fds[0..n) is unreferenced or revoked; takes them all.
 * ws->stored counts for fds[0]. reusable: fds[0] (n 1) is a plain
 * read-write export, which may be kept to lend again (daemon/idle.h). */
int device_window_release_fds(struct device *d, uint64_t offset, uint64_t size, const int *fds,
			      size_t n, const struct window_store *ws, bool reusable);
/* A device gone for good: its quarantined windows are forgotten (their
 * buffers are dead), and its kept buffers closed. */
void device_drop_quarantine(struct device *d);
/* True when no copy of the export fd reaches the window any more: fd is its
 * only reference, or the kernel revoked it now (DEVICE_FEATURE_REVOKE, on a
 * READY device). fd may then be closed. */
bool device_buffer_done(struct device *d, int fd);

/* True when no export of the window reaches it any more: each of fds is
 * referenced by the daemon alone (ws->stored counts for fds[0]) or revoked
 * now. Reads fdinfo and may revoke: safe off the loop while the device is
 * READY (the scrub worker calls it). */
bool device_window_done(struct device *d, const int *fds, size_t n, const struct window_store *ws);
/* On the loop, a window back from the scrub worker (daemon/scrub.h) with
 * the fds it did not close: result 0 zeroed, it is freed (returns true);
 * -EBUSY still referenced, it waits in quarantine; else it stays out of use. */
bool device_window_settled(struct device *d, uint64_t offset, uint64_t size, const int *fds,
			   size_t n, const struct window_store *ws, int result);

/* Frees quarantined windows whose last outside reference has gone. Returns
 * the number freed. */
unsigned device_sweep(struct device *d);

/* Resets the device: its own reset method where it has one, else a slot
 * or bus reset that touches no other device, else memory decode off and on
 * again (which revokes and restores every dma-buf).
 * *ret_method names what ran. Blocks while importers hold the buffers: call
 * it off the event loop, while the device is PAUSED (nothing else uses the
 * backend then). */
int device_reset(struct device *d, const char **ret_method);

const char *device_name(const struct device *d);
const char *device_state_to_string(enum device_state s);

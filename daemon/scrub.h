/* SPDX-License-Identifier: MIT */
/*
 * Zeroing released windows off the event loop (internal to the core).
 * Small unreferenced windows never come here (device.c settles them on
 * the loop); the worker runs at the loop's priority, so that under load
 * it keeps up instead of piling windows up with an fd each.
 *
 * A released window goes to a worker thread of the device with the
 * daemon's references to its buffers: the worker applies the reuse rule
 * (device_window_done: fdinfo reads, maybe a revoke), closes them and zeroes
 * the window, and the loop then frees it, or quarantines it when a buffer
 * was still referenced (device_window_settled). Zeroing a BAR through
 * uncached MMIO is slow, and the loop must never wait for it; an ALLOC waits
 * only when nothing else fits (scrub_wait). A pause holds the
 * worker: nothing is zeroed while the device is PAUSED or being reset, and
 * a window under way stops at its next chunk and is finished after the
 * resume.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct device;
struct event_base;
struct window_store;

/* Starts d's worker, which hands finished windows back on base. Without
 * one (not started, or it could not start), windows are zeroed in place. */
int scrub_start(struct device *d, struct event_base *base);
/* Zeroes what is still queued (unless held), then ends the worker. */
void scrub_stop(struct device *d);

/* Queues a released window and takes its exports fds[0..n) (n may be 0:
 * known to be unreferenced); ws is its place in the fd store. -ENOSYS (no
 * worker) or -ENOMEM: nothing was taken, the caller does it all itself. */
int scrub_queue(struct device *d, uint64_t offset, uint64_t size, const int *fds, size_t n,
		const struct window_store *ws);
/* On the loop: waits until the queue is empty and settles every window.
 * Returns the bytes freed. For an ALLOC that fits nowhere else. */
uint64_t scrub_wait(struct device *d);

/* The device pauses (loop): the worker starts no new window. */
void scrub_hold(struct device *d);
/* From the pause's worker thread, before a reset or close: waits for the
 * window under way to stop. */
void scrub_wait_idle(struct device *d);
/* The device is READY again (loop): zeroing goes on. */
void scrub_resume(struct device *d);
/* The device is gone (loop, the worker held and idle): the queued windows
 * are settled as not zeroed. */
void scrub_drop(struct device *d);

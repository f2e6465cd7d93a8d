/* SPDX-License-Identifier: MIT */
/*
 * Released buffers kept to be lent again (internal to device.c).
 *
 * Exporting a dma-buf, and freeing it at its last close, is most of what an
 * ALLOC and RELEASE of a small window cost the daemon (a VFIO ioctl, an
 * anonymous file, the exporter's bookkeeping). So when the reuse rule
 * (device.h) finds a small released buffer that the daemon alone holds,
 * and its window has been zeroed and freed, the daemon may keep that
 * buffer instead of closing it: a later ALLOC of the same size that may
 * take the same window gets the same dma-buf, renamed for its new lease.
 * The rule still holds: when the window is lent again, nobody but the
 * daemon holds its buffer, and the window reads as zeroes.
 *
 * A kept buffer covers exactly its window, which stays free in the
 * allocator (listings count it as free and any ALLOC may carve it). Taking
 * the buffer claims the window again; a buffer whose window someone else
 * has carved meanwhile is closed. Only plain read-write exports are kept
 * (no write-combining; the caller decides). Bounded: at most `max` buffers
 * (the `idle-buffers` setting, per device), the oldest closed first; all
 * of them are closed one to two idle_ms after the last one was kept
 * (lazytimer.h), and at once when the device pauses (a reset revokes
 * buffers) or goes away. Loop thread only.
 */
#pragma once

#include <stdint.h>

struct allocator;
struct event_base;
struct idle_pool;

#define IDLE_POOL_TIMEOUT_MS 1000

/* NULL when max is 0 or without memory: then nothing is kept. */
struct idle_pool *idle_pool_new(struct event_base *base, unsigned max, unsigned idle_ms);
/* Closes what it holds. */
struct idle_pool *idle_pool_free(struct idle_pool *p);

/* Keeps fd, the only reference to the buffer of the free window [offset,
 * offset + size), closing the oldest kept one if full. p may be NULL: then
 * fd is closed. */
void idle_pool_put(struct idle_pool *p, uint64_t offset, uint64_t size, int fd);
/* A kept buffer of exactly size whose offset is a multiple of align (a
 * power of two, or 0), its window claimed in a again: returns the fd (the
 * caller's now) and its offset, or -ENOENT. */
int idle_pool_take(struct idle_pool *p, struct allocator *a, uint64_t size, uint64_t align,
		   uint64_t *ret_offset);
/* Closes every kept buffer. */
void idle_pool_drop(struct idle_pool *p);
unsigned idle_pool_count(const struct idle_pool *p);

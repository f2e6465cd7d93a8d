/* SPDX-License-Identifier: MIT */
/*
 * Window allocator for one device BAR: hands out page-aligned [offset, offset+size)
 * windows, best fit, with neighbouring free ranges coalesced on release.
 *
 * Offsets are relative to the start of the BAR. PCI BARs are naturally aligned
 * to their size, so an offset aligned to A is also physically aligned to A for
 * any A up to the BAR size.
 *
 * Every operation is O(log n) in the number of free/allocated ranges, except
 * aligned allocations in a badly fragmented BAR (see allocator_alloc()).
 * Pure logic: no I/O, no logging, not thread-safe (the daemon is one event loop).
 */
#pragma once

#include <stdint.h>

#include "common/macro.h"

struct allocator;

/* size: the BAR size, a non-zero multiple of page_size, at most 2^63.
 * page_size: a power of 2. Returns 0, -EINVAL or -ENOMEM. */
int allocator_new(uint64_t size, uint64_t page_size, struct allocator **ret);
struct allocator *allocator_free(struct allocator *a);

/* Takes [offset, offset+length) out of use for good (reserved ranges from the
 * config). Returns 0; -EINVAL if either is not page aligned, length is 0 or the
 * range runs past the end; -EEXIST if any part of it is not free; -ENOMEM. */
int allocator_reserve(struct allocator *a, uint64_t offset, uint64_t length);

/* Finds a window of size bytes (rounded up to the page size) whose offset is a
 * multiple of align (a power of 2; 0 or anything below the page size means the
 * page size). Best fit: the smallest free range that can hold the window at
 * that alignment; ties go to the lowest offset. Returns 0 and the offset;
 * -EINVAL if size is 0 or align not a power of 2; -ENOSPC if nothing fits;
 * -ENOMEM.
 *
 * Cost: O(log n) when align is the page size, since then the smallest range of
 * at least size bytes always fits. A larger alignment can waste up to
 * align - page bytes at the front of a range, so only ranges of at least
 * size + align - page bytes are certain to fit; smaller ranges are tried in
 * (size, offset) order, at most ALLOCATOR_ALIGN_CANDIDATES of them, before
 * taking the smallest range that is certain to fit: O(K log n). Only when no
 * range is certain to fit does the walk go on over the uncertain ones, which
 * are all at least size bytes: at most free_bytes / size of them. */
#define ALLOCATOR_ALIGN_CANDIDATES 16
int allocator_alloc(struct allocator *a, uint64_t size, uint64_t align, uint64_t *ret_offset);

/* Takes the window [offset, offset+size) as if allocator_alloc() had
 * returned it (size rounded up the same way): the restart path takes up
 * the windows of the stored lease table with it, and they are released like
 * any other. Returns 0; -EINVAL for a misaligned or out-of-range window;
 * -EEXIST if any part of it is not free; -ENOMEM. */
int allocator_claim(struct allocator *a, uint64_t offset, uint64_t size);

/* Gives back a window from allocator_alloc() or allocator_claim(); size is what was asked for (it is
 * rounded up the same way). Returns 0, or -EINVAL if [offset, size) is not
 * exactly a live allocation: a double free, a wrong size, a reserved range. */
int allocator_release(struct allocator *a, uint64_t offset, uint64_t size);

uint64_t allocator_size(const struct allocator *a);
uint64_t allocator_page_size(const struct allocator *a);
uint64_t allocator_free_bytes(const struct allocator *a);
uint64_t allocator_reserved_bytes(const struct allocator *a);
uint64_t allocator_largest_free(const struct allocator *a);
/* Number of free ranges and of live allocations. */
uint64_t allocator_n_free(const struct allocator *a);
uint64_t allocator_n_allocated(const struct allocator *a);

/* Calls cb for each free range in offset order; stops early and returns cb's
 * value if it is non-zero. */
typedef int (*allocator_range_cb)(uint64_t offset, uint64_t length, void *userdata);
int allocator_foreach_free(const struct allocator *a, allocator_range_cb cb, void *userdata);

/* For tests: checks every invariant (tree order and balance, both free trees
 * agree, free ranges fully coalesced, byte counts add up). O(n). Returns 0 or
 * -EUCLEAN. */
int allocator_verify(const struct allocator *a);

/* For tests and benchmarks: tree nodes visited so far, a machine-independent
 * measure of the work done. */
uint64_t allocator_node_visits(const struct allocator *a);

static inline void allocator_freep(struct allocator **a) { *a = allocator_free(*a); }
#define _cleanup_allocator_ _cleanup_(allocator_freep)

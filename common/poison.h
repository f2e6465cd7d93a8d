/* SPDX-License-Identifier: MIT */
/*
 * Records kept for reuse (a released lease's, an allocator node) are
 * poisoned while they wait, under AddressSanitizer: a use after release is
 * then still reported as one, as it was when they were freed. Without
 * ASan these do nothing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define MEM_POISON_ENABLED true
static inline void mem_poison(const volatile void *p, size_t n)
{
	ASAN_POISON_MEMORY_REGION(p, n);
}
static inline void mem_unpoison(const volatile void *p, size_t n)
{
	ASAN_UNPOISON_MEMORY_REGION(p, n);
}
/* True when any byte of [p, p + n) is poisoned. */
static inline bool mem_poisoned(const volatile void *p, size_t n)
{
	return __asan_region_is_poisoned((void *)(uintptr_t)p, n) != NULL;
}
#else
#define MEM_POISON_ENABLED false
static inline void mem_poison(const volatile void *p, size_t n) { (void)p, (void)n; }
static inline void mem_unpoison(const volatile void *p, size_t n) { (void)p, (void)n; }
static inline bool mem_poisoned(const volatile void *p, size_t n) { return (void)p, (void)n, false; }
#endif

/* SPDX-License-Identifier: MIT */
/* Sizes and numbers on the command line and in output; names of enum values. */
#pragma once

#include <stdint.h>

#include "client/lib/barkeep.h"

#define FORMAT_SIZE_MAX 32 /* "1023.9 KiB", "18446744073709551615 B" */
#define FORMAT_FEATURES_MAX 64

/* "64M", "64MiB", "2 GiB", "4096", "0x1000": a byte count with an optional
 * binary unit K, M, G, T or KiB, MiB, GiB, TiB, the syntax of sizes in
 * barkeep.conf(5). -EINVAL when it is not one, -ERANGE when it does not
 * fit in 64 bits. */
int parse_size(const char *s, uint64_t *ret);
/* A decimal number that fits in 32 (64) bits: -EINVAL or -ERANGE. */
int parse_u32(const char *s, uint32_t *ret);
int parse_u64(const char *s, uint64_t *ret);

/* "64 MiB", "1.5 GiB", "512 B": exact values print without a fraction. Returns buf. */
const char *format_size(uint64_t bytes, char buf[static FORMAT_SIZE_MAX]);
/* "export,mmap,revoke,wc", or "-" for none. Returns buf. */
const char *format_features(uint64_t features, char buf[static FORMAT_FEATURES_MAX]);
/* "exclusive,write-combine", or "-" for none. Returns buf. */
const char *format_lease_flags(uint32_t flags, char buf[static FORMAT_FEATURES_MAX]);

/* The name of BARKEEP_FEATURE_* bit ("export", "mmap", "revoke", "wc") or
 * BARKEEP_ALLOC_* bit ("exclusive", "write-combine", "image"); NULL if unknown. */
const char *feature_name(unsigned bit);
const char *lease_flag_name(unsigned bit);

const char *backend_name(enum barkeep_backend b);
const char *device_state_name(enum barkeep_device_state s);

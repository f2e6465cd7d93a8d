/* SPDX-License-Identifier: MIT */
/* Bytes as lower-case hex digits and back (grant tokens on D-Bus and in barkeepctl). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Writes 2 * n digits and a NUL into out (2 * n + 1 bytes). */
void hex_format(const uint8_t *bytes, size_t n, char *out);
/* Exactly 2 * n hex digits (either case) into bytes[0..n). 0 or -EINVAL. */
int hex_parse(const char *s, uint8_t *bytes, size_t n);

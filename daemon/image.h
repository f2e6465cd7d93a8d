/* SPDX-License-Identifier: MIT */
/*
 * Image metadata a client attaches to a lease, checked at ALLOC the way
 * wlroots checks client dma-bufs: a known format with its number of planes,
 * strides at least a row of pixels, every plane inside the (page-rounded)
 * lease, LINEAR only. What passes here imports cleanly wherever the buffer
 * itself can go.
 */
#pragma once

#include <stdint.h>

#include "common/error.h"
#include "daemon/broker.h"

/* 0, or -EINVAL with err saying what is wrong and with which values. */
int image_check(const struct lease_image *img, uint64_t lease_size, struct error_info *err);

/* SPDX-License-Identifier: MIT */
/* libbarkeep internals shared between its files (not installed). */
#pragma once

/* What a driver that cannot take a VFIO (peer-to-peer) dma-buf means. */
extern const char bk_msg_p2p_refused[];

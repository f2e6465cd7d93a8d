/* SPDX-License-Identifier: MIT */
/*
 * What systemd says about the unit barkeepd runs in, asked over the system
 * bus (systemd 252 does not put FileDescriptorStoreMax= in the environment,
 * nor tell a service whether SIGTERM means stop or restart). Blocking calls
 * with a short timeout: used at start and at exit only, never on the loop.
 */
#pragma once

#include <stdbool.h>

/* True when systemd runs us and can be told things (NOTIFY_SOCKET). */
bool unit_supervised(void);
/* The unit's FileDescriptorStoreMax=. 0 or -errno. */
int unit_fd_store_max(unsigned *ret);
/* Why we are asked to exit: 1 the unit stops for good (a stop job, or no job
 * at all: a plain SIGTERM, after which Restart=on-failure does not restart
 * and systemd empties the fd store), 0 it restarts, -errno unknown. */
int unit_stopping_for_good(void);

/* SPDX-License-Identifier: MIT */
/* Shorthands the VM test programs share: libbarkeep calls, fd holders. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/lib/barkeep.h"

/* Connects to the daemon at sock; NULL on failure, with why on stderr. */
struct barkeep *test_connect(const char *sock, const char *name);
/* LIST_DEVICES on a connection of its own: the array (free() it) when
 * exactly want devices came, else NULL with why on stderr. */
struct barkeep_device *test_devices(const char *sock, size_t want);
/* ALLOC of size bytes on the device with that id. 0 or -errno. */
int test_alloc_on(struct barkeep *bk, uint32_t dev, uint64_t size, struct barkeep_lease **ret);
/* The device's free bytes as LIST_DEVICES says; 0 on error. */
uint64_t test_free_bytes(struct barkeep *bk, uint32_t dev);

/* Runs fn in a child with uid and gid uid and no supplementary groups;
 * returns its exit status (99: it could not switch, 98: it did not exit). */
int test_as_user(uid_t uid, int (*fn)(void));

/* The protocol by hand, for what libbarkeep would never send. A blocking
 * SOCK_SEQPACKET connection to sock; -1 on failure. */
int test_raw_connect(const char *sock);
/* Sends HELLO (version 1, capabilities caps) and reads one reply. 0 or -1. */
int test_raw_hello(int fd, uint32_t caps);
/* Sends a packet with n_fds fds (up to 4: more than the codec allows). 0 or -1. */
int test_send_raw(int fd, const void *pkt, size_t len, const int *fds, size_t n_fds);
/* Waits up to timeout_s for an ERROR, then the hang-up; closes fd. Returns the
 * ERROR's code (its message into msg, when not NULL), 0 when the daemon only
 * hung up, -1 for anything else. */
int test_expect_error_and_hangup(int fd, unsigned timeout_s, char *msg, size_t msg_size);

/* Forks a process that holds a copy of fd (passed over SCM_RIGHTS) until
 * test_holder_release(). Returns its pid with *ret_sock the socket to it,
 * or -errno. */
pid_t test_holder_start(int fd, int *ret_sock);
/* Tells the holder to close its copy, waits until it has and has exited,
 * closes sock. 0, or -1 if the holder failed. */
int test_holder_release(pid_t pid, int sock);

/* The dma-buf's name (fdinfo "name:") into buf; "" when it has none or
 * fdinfo cannot be read. */
void test_dmabuf_name(int fd, char *buf, size_t size);

/* One 32-bit access to a mapping that a revoke may have taken away: false
 * when it raised SIGBUS (caught for the access only). */
bool test_read32(const volatile uint32_t *p, uint32_t *ret);
bool test_write32(volatile uint32_t *p, uint32_t v);

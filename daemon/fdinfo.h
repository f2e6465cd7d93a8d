/* SPDX-License-Identifier: MIT */
/*
 * The loop's reads of a dma-buf's reference count (fdinfo "count"), which
 * the window reuse rule makes once per released window.
 *
 * An open /proc/self/fdinfo/N describes, each time it is read from offset
 * 0, whatever file is at fd N at that moment; fd numbers are reused lowest
 * first, so a handle kept per number turns the path walk, open, read and
 * close of every check into one pread() (under TCG 50 against 270 us). The
 * handles are fds of the daemon too: at most FDINFO_HANDLES_MAX, all closed
 * one to two FDINFO_IDLE_MS after the last check (lazytimer.h). Loop
 * thread only; the scrub worker reads fdinfo the plain way (dmabuf_query).
 */
#pragma once

struct event_base;
struct fdinfo_cache;

#define FDINFO_HANDLES_MAX 4
#define FDINFO_IDLE_MS 1000

struct fdinfo_cache *fdinfo_cache_new(struct event_base *base);
struct fdinfo_cache *fdinfo_cache_free(struct fdinfo_cache *c);

/* The number of references to the dma-buf at fd (fdinfo "count"); c may be
 * NULL (no cache: a plain read). -ENOTTY: not a dma-buf; else -errno. */
int fdinfo_dmabuf_count(struct fdinfo_cache *c, int fd, long *ret_count);

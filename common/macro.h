/* SPDX-License-Identifier: MIT */
/* Small helpers shared by every part of barkeep (systemd style). */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))
#define IS_POWER_OF_2(x) ((x) != 0 && ((x) & ((x) - 1)) == 0)

/* Closes fd if valid, preserves errno, returns -EBADF for "p = safe_close(p)". */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void closep(int *fd) { safe_close(*fd); }
static inline void freep(void *p) { free(*(void **)p); }

#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)

/* Hands ownership of a cleanup-managed value to the caller. */
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -EBADF; _t; })
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })

/* SPDX-License-Identifier: MIT */
/*
 * Levelled logging for the daemon and tools. Lines go to stderr with a
 * "<N>" syslog priority prefix when stderr is the journal (JOURNAL_STREAM),
 * so journald files them at the right level; plain "level: " otherwise.
 * Library code (libbarkeep, proto/) never logs: it returns -errno.
 */
#pragma once

#include <stdarg.h>
#include "macro.h"

enum log_level { LOG_LEVEL_ERROR = 3, LOG_LEVEL_WARNING = 4, LOG_LEVEL_NOTICE = 5,
		 LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

void log_set_max_level(enum log_level level);
/* Read inline: log_full() checks it on every line, debug ones included. */
extern enum log_level log_max_level;
static inline enum log_level log_get_max_level(void)
{
	return log_max_level;
}
int log_parse_level(const char *s); /* returns level or -EINVAL */

/* Logs and returns -abs(err), so callers can "return log_error_errno(r, ...)".
 * %m in the format expands to strerror(abs(err)). */
int log_full_errno(enum log_level level, int err, const char *fmt, ...) _printf_(3, 4);

/* The level is checked first, so that a filtered line (debug, on the
 * request path) does not even evaluate its arguments. */
#define log_full(level, ...)                                                   \
	((void)(log_get_max_level() >= (level) ? log_full_errno((level), 0, __VA_ARGS__) : 0))
#define log_error(...) log_full(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_full(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_full(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_full(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_full(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_LEVEL_NOTICE, (e), __VA_ARGS__)

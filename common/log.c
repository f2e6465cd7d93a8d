// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

enum log_level log_max_level = LOG_LEVEL_INFO;

void log_set_max_level(enum log_level level) { log_max_level = level; }

int log_parse_level(const char *s)
{
	static const char *const names[] = {
		[LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARNING] = "warning",
		[LOG_LEVEL_NOTICE] = "notice", [LOG_LEVEL_INFO] = "info",
		[LOG_LEVEL_DEBUG] = "debug",
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i] && strcasecmp(s, names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

/* Whether stderr is the journal: read once, the environment stays. */
static bool to_journal(void)
{
	static int cached = -1;

	if (cached < 0)
		cached = getenv("JOURNAL_STREAM") != NULL;
	return cached;
}

/* Copies at most max bytes of s to p; returns how many. */
static size_t put(char *p, const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	memcpy(p, s, n);
	return n;
}

int log_full_errno(enum log_level level, int err, const char *fmt, ...)
{
	static const char *const prefix[] = {
		[LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARNING] = "warning",
		[LOG_LEVEL_NOTICE] = "notice", [LOG_LEVEL_INFO] = "info",
		[LOG_LEVEL_DEBUG] = "debug",
	};
	int saved = errno;

	err = err < 0 ? -err : err;
	if (level > log_max_level)
		return -err;

	/* "<N>message" for the journal, "name: level: message" otherwise, and
	 * one write(): lines of several threads do not mix, and a line costs
	 * one formatting pass (some go out while clients wait). */
	enum { MESSAGE_MAX = 1024, PREFIX_MAX = 128 };
	char line[PREFIX_MAX + MESSAGE_MAX + 1];
	size_t n = 0;
	if (to_journal()) {
		line[n++] = '<';
		line[n++] = (char)('0' + level);
		line[n++] = '>';
	} else {
		n += put(line + n, program_invocation_short_name, PREFIX_MAX - 16);
		n += put(line + n, ": ", 2);
		n += put(line + n, prefix[level], 8);
		n += put(line + n, ": ", 2);
	}
	va_list ap;
	va_start(ap, fmt);
	errno = err; /* so %m names the cause we were given */
	int len = vsnprintf(line + n, MESSAGE_MAX, fmt, ap);
	va_end(ap);
	if (len > 0)
		n += MIN((size_t)len, (size_t)MESSAGE_MAX - 1);
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
	errno = saved;
	return -err;
}

// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static enum log_level max_level = LOG_LEVEL_INFO;

void log_set_max_level(enum log_level level) { max_level = level; }
enum log_level log_get_max_level(void) { return max_level; }

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

int log_full_errno(enum log_level level, int err, const char *fmt, ...)
{
	static const char *const prefix[] = {
		[LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARNING] = "warning",
		[LOG_LEVEL_NOTICE] = "notice", [LOG_LEVEL_INFO] = "info",
		[LOG_LEVEL_DEBUG] = "debug",
	};
	int saved = errno;

	err = err < 0 ? -err : err;
	if (level > max_level)
		return -err;

	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	errno = err; /* so %m names the cause we were given */
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	if (getenv("JOURNAL_STREAM"))
		fprintf(stderr, "<%d>%s\n", level, buf);
	else
		fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, prefix[level], buf);
	errno = saved;
	return -err;
}

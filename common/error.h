/* SPDX-License-Identifier: MIT */
/*
 * An error a client can meet: an errno code and a sentence saying what
 * failed, with which value, and what to do. The core fills one in and
 * returns -code; the transport sends it back (ERROR, D-Bus error names).
 */
#pragma once

#include <stdarg.h>
#include <stdio.h>

#include "common/macro.h"

#define ERROR_TEXT_MAX 256

struct error_info {
	int code; /* positive errno */
	char text[ERROR_TEXT_MAX];
};

/* No error. Cheaper than "= {}" on a path taken per request: the text is
 * only read when code is set. */
static inline void error_clear(struct error_info *err)
{
	err->code = 0;
	err->text[0] = '\0';
}

/* Returns -code so callers can "return error_set(err, ENOSPC, ...)". err may be NULL. */
static inline _printf_(3, 4) int error_set(struct error_info *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		err->code = code;
		vsnprintf(err->text, sizeof(err->text), fmt, ap);
		va_end(ap);
	}
	return -code;
}

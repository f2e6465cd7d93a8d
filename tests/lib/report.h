/* SPDX-License-Identifier: MIT */
/* The ok/FAIL reporting of guest programs that count their own checks:
 * "ok   NAME" or "FAIL NAME: why" per check, then "N passed, N failed". */
#pragma once

#include "common/macro.h"

extern int test_passed, test_failed;

/* Prints "ok   NAME" and counts a pass. */
void test_ok(const char *name);
/* The same with a formatted name. */
_printf_(1, 2) void test_okf(const char *fmt, ...);
/* Prints "FAIL NAME: why" and counts a failure. */
_printf_(2, 3) void test_fail(const char *name, const char *fmt, ...);
/* Prints "N passed, N failed"; EXIT_FAILURE on any failure, else EXIT_SUCCESS. */
int test_finish(void);

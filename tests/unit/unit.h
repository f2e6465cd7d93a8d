/* SPDX-License-Identifier: MIT */
/* A tiny test harness: one line per case, a closing "N passed, N failed". */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed, unit_failed, unit_case_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			unit_case_failed = 1;                                  \
		}                                                              \
	} while (0)

#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long _a = (long long)(a), _b = (long long)(b);            \
		if (_a != _b) {                                                \
			fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", \
				__FILE__, __LINE__, #a, _a, #b, _b);           \
			unit_case_failed = 1;                                  \
		}                                                              \
	} while (0)

/* A string that contains needle (hay NULL fails). */
#define CHECK_CONTAINS(hay, needle)                                                    \
	do {                                                                           \
		const char *_h = (hay), *_n = (needle);                                \
		if (!_h || !strstr(_h, _n)) {                                          \
			fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n",   \
				__FILE__, __LINE__, _h ? _h : "(null)", _n);           \
			unit_case_failed = 1;                                          \
		}                                                                      \
	} while (0)

#define RUN(fn)                                                                \
	do {                                                                   \
		unit_case_failed = 0;                                          \
		fn();                                                          \
		printf("%s %s\n", unit_case_failed ? "FAIL" : "ok  ", #fn);    \
		if (unit_case_failed)                                          \
			unit_failed++;                                         \
		else                                                           \
			unit_passed++;                                         \
	} while (0)

#define UNIT_END()                                                             \
	({                                                                     \
		printf("%d passed, %d failed\n", unit_passed, unit_failed);    \
		unit_failed ? EXIT_FAILURE : EXIT_SUCCESS;                     \
	})

// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/lib/report.h"

int test_passed, test_failed;

void test_ok(const char *name)
{
	printf("ok   %s\n", name);
	fflush(stdout);
	test_passed++;
}

void test_okf(const char *fmt, ...)
{
	char name[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	test_ok(name);
}

void test_fail(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	test_failed++;
}

int test_finish(void)
{
	printf("%d passed, %d failed\n", test_passed, test_failed);
	return test_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "common/hex.h"

void hex_format(const uint8_t *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static int digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_parse(const char *s, uint8_t *bytes, size_t n)
{
	if (strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = digit(s[2 * i]), lo = digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl/format.h"
#include "common/macro.h"

/* strtoull() takes signs and leading blanks; a size or count on the
 * command line is only digits, decimal or 0x-prefixed hex. */
static int parse_digits(const char *s, uint64_t *ret, char **ret_end)
{
	int base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!isxdigit((unsigned char)s[0]))
			return -EINVAL;
	} else if (!isdigit((unsigned char)s[0])) {
		return -EINVAL;
	}
	errno = 0;
	unsigned long long v = strtoull(s, ret_end, base);
	if (errno == ERANGE)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 },     { "K", 10 },  { "KiB", 10 }, { "M", 20 },  { "MiB", 20 },
		{ "G", 30 },   { "GiB", 30 }, { "T", 40 },  { "TiB", 40 },
	};
	uint64_t v;
	char *end;
	int r = parse_digits(s, &v, &end);
	if (r < 0)
		return r;
	if (*end == ' ' && end[1])
		end++;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (v > UINT64_MAX >> units[i].shift)
			return -ERANGE;
		*ret = v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	int r = parse_digits(s, ret, &end);
	if (r < 0)
		return r;
	return *end ? -EINVAL : 0;
}

int parse_u32(const char *s, uint32_t *ret)
{
	uint64_t v;
	int r = parse_u64(s, &v);
	if (r < 0)
		return r;
	if (v > UINT32_MAX)
		return -ERANGE;
	*ret = (uint32_t)v;
	return 0;
}

const char *format_size(uint64_t bytes, char buf[static FORMAT_SIZE_MAX])
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned i = 0;

	while (i + 1 < ARRAY_SIZE(units) && bytes >> (10 * (i + 1)))
		i++;
	uint64_t unit = 1ull << (10 * i);
	if (bytes % unit == 0)
		snprintf(buf, FORMAT_SIZE_MAX, "%" PRIu64 " %s", bytes / unit, units[i]);
	else
		snprintf(buf, FORMAT_SIZE_MAX, "%.1f %s", (double)bytes / (double)unit, units[i]);
	return buf;
}

const char *feature_name(unsigned bit)
{
	static const char *const names[] = { "export", "mmap", "revoke", "wc" };
	return bit < ARRAY_SIZE(names) ? names[bit] : NULL;
}

const char *lease_flag_name(unsigned bit)
{
	static const char *const names[] = { "exclusive", "write-combine", "image", "opened",
					     "read-only" };
	return bit < ARRAY_SIZE(names) ? names[bit] : NULL;
}

/* Joins the names of the set bits with commas; "-" when none is set. */
static const char *format_bits(uint64_t bits, const char *(*name_of)(unsigned bit), char *buf,
			       size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 64; i++) {
		if (!(bits & (1ull << i)))
			continue;
		char unknown[16];
		snprintf(unknown, sizeof(unknown), "bit%u", i);
		const char *name = name_of(i) ? name_of(i) : unknown;
		int n = snprintf(buf + len, size - len, "%s%s", len ? "," : "", name);
		if (n < 0 || (size_t)n >= size - len)
			break;
		len += (size_t)n;
	}
	return len ? buf : "-";
}

const char *format_features(uint64_t features, char buf[static FORMAT_FEATURES_MAX])
{
	return format_bits(features, feature_name, buf, FORMAT_FEATURES_MAX);
}

const char *format_lease_flags(uint32_t flags, char buf[static FORMAT_FEATURES_MAX])
{
	return format_bits(flags, lease_flag_name, buf, FORMAT_FEATURES_MAX);
}

const char *backend_name(enum barkeep_backend b)
{
	switch (b) {
	case BARKEEP_BACKEND_VFIO: return "vfio";
	case BARKEEP_BACKEND_SYSMEM: return "sysmem";
	}
	return "unknown";
}

const char *device_state_name(enum barkeep_device_state s)
{
	switch (s) {
	case BARKEEP_DEVICE_READY: return "ready";
	case BARKEEP_DEVICE_PAUSED: return "paused";
	case BARKEEP_DEVICE_GONE: return "gone";
	}
	return "unknown";
}

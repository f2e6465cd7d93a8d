// SPDX-License-Identifier: MIT
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>

#include "client/ctl/json.h"

void json_init(struct json *j, FILE *f)
{
	*j = (struct json){ .f = f };
	j->first[0] = true;
}

/* The comma and key before a value at the current depth. */
static void json_prefix(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
	if (key) {
		json_escape(j->f, key);
		fputc(':', j->f);
	}
}

static void json_open(struct json *j, const char *key, char c)
{
	assert(j->depth < JSON_DEPTH_MAX);
	json_prefix(j, key);
	fputc(c, j->f);
	j->first[++j->depth] = true;
}

static void json_close(struct json *j, char c)
{
	assert(j->depth > 0);
	fputc(c, j->f);
	if (--j->depth == 0) {
		fputc('\n', j->f);
		j->first[0] = true; /* the next top-level value is a new line, no comma */
	}
}

void json_object_begin(struct json *j, const char *key) { json_open(j, key, '{'); }
void json_object_end(struct json *j) { json_close(j, '}'); }
void json_array_begin(struct json *j, const char *key) { json_open(j, key, '['); }
void json_array_end(struct json *j) { json_close(j, ']'); }

void json_string(struct json *j, const char *key, const char *value)
{
	json_prefix(j, key);
	if (value)
		json_escape(j->f, value);
	else
		fputs("null", j->f);
}

void json_u64(struct json *j, const char *key, uint64_t value)
{
	json_prefix(j, key);
	fprintf(j->f, "%" PRIu64, value);
}

void json_bool(struct json *j, const char *key, bool value)
{
	json_prefix(j, key);
	fputs(value ? "true" : "false", j->f);
}

void json_double(struct json *j, const char *key, double value, int decimals)
{
	json_prefix(j, key);
	fprintf(j->f, "%.*f", decimals, value);
}

static bool is_continuation(unsigned char c) { return (c & 0xc0) == 0x80; }

/* The length of the valid UTF-8 sequence at s, or 0 (overlong forms,
 * surrogates and code points above U+10FFFF are not valid). Reads no byte
 * past a NUL: each check fails on it before the next byte is looked at. */
static size_t utf8_length(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return is_continuation(s[1]) ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if (!is_continuation(s[1]) || !is_continuation(s[2]))
			return 0;
		if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))
			return 0;
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if (!is_continuation(s[1]) || !is_continuation(s[2]) || !is_continuation(s[3]))
			return 0;
		if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

void json_escape(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		size_t n = utf8_length(p);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		if (n > 1) {
			fwrite(p, 1, n, f);
			p += n;
			continue;
		}
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
		p++;
	}
	fputc('"', f);
}

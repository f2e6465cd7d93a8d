/* SPDX-License-Identifier: MIT */
/*
 * A tiny JSON writer: compact output, one top-level value per line (so a
 * stream of events is JSON Lines). Inside an object every value has a key;
 * in an array or at the top level the key is NULL.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_DEPTH_MAX 8

struct json {
	FILE *f;
	unsigned depth;
	bool first[JSON_DEPTH_MAX + 1]; /* no value written yet at this depth */
};

void json_init(struct json *j, FILE *f);
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j); /* at depth 0 also ends the line */
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_string(struct json *j, const char *key, const char *value); /* NULL: null */
void json_u64(struct json *j, const char *key, uint64_t value);
void json_bool(struct json *j, const char *key, bool value);
void json_double(struct json *j, const char *key, double value, int decimals);

/* Writes s as a JSON string with its quotes: control characters escaped,
 * bytes that are not valid UTF-8 replaced by U+FFFD. */
void json_escape(FILE *f, const char *s);

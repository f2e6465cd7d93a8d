/* SPDX-License-Identifier: MIT */
/* Plain-text tables: a header row and columns as wide as their widest cell. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TABLE_COLUMNS_MAX 16

struct table;

/* headers: n_cols strings (copied). -ENOMEM or -EINVAL (too many columns). */
int table_new(const char *const *headers, size_t n_cols, struct table **ret);
struct table *table_free(struct table *t);
/* Column i (bit i) is right-aligned: for numbers and sizes. */
void table_align_right(struct table *t, uint32_t columns);
/* cells: n_cols strings (copied; NULL or "" prints "-"). -ENOMEM. */
int table_add_row(struct table *t, const char *const *cells);
void table_print(const struct table *t, FILE *f);

static inline void table_freep(struct table **t) { table_free(*t); }
#define _cleanup_table_ __attribute__((cleanup(table_freep)))

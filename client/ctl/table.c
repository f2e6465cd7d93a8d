// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl/table.h"

struct table {
	size_t n_cols, n_rows, cap; /* rows include the header */
	char **cells;               /* n_rows * n_cols, row-major */
	size_t width[TABLE_COLUMNS_MAX];
	uint32_t right;             /* bit i: column i is right-aligned */
};

/* Columns a cell takes: its code points (UTF-8 continuation bytes take none). */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void pad(FILE *f, size_t n)
{
	while (n-- > 0)
		fputc(' ', f);
}

static int table_push(struct table *t, const char *const *cells)
{
	if (t->n_rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		char **c = realloc(t->cells, cap * t->n_cols * sizeof(*c));
		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->cap = cap;
	}
	char **row = t->cells + t->n_rows * t->n_cols;
	for (size_t i = 0; i < t->n_cols; i++) {
		row[i] = strdup(cells[i] && cells[i][0] ? cells[i] : "-");
		if (!row[i]) {
			while (i-- > 0)
				free(row[i]);
			return -ENOMEM;
		}
		size_t w = text_width(row[i]);
		if (w > t->width[i])
			t->width[i] = w;
	}
	t->n_rows++;
	return 0;
}

int table_new(const char *const *headers, size_t n_cols, struct table **ret)
{
	if (n_cols == 0 || n_cols > TABLE_COLUMNS_MAX)
		return -EINVAL;
	struct table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->n_cols = n_cols;
	int r = table_push(t, headers);
	if (r < 0) {
		table_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

struct table *table_free(struct table *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	return NULL;
}

void table_align_right(struct table *t, uint32_t columns)
{
	t->right = columns;
}

int table_add_row(struct table *t, const char *const *cells)
{
	return table_push(t, cells);
}

void table_print(const struct table *t, FILE *f)
{
	for (size_t r = 0; r < t->n_rows; r++) {
		char *const *row = t->cells + r * t->n_cols;
		for (size_t i = 0; i < t->n_cols; i++) {
			size_t gap = t->width[i] - text_width(row[i]);
			bool last = i + 1 == t->n_cols;
			if (t->right & (1u << i))
				pad(f, gap);
			fputs(row[i], f);
			if (last)
				fputc('\n', f);
			else
				pad(f, (t->right & (1u << i) ? 0 : gap) + 2);
		}
	}
}

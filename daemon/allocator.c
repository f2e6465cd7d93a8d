// SPDX-License-Identifier: MIT
/*
 * Each range is one node with two intrusive AVL links. A free range sits in
 * two trees: by (size, offset) to find the best fit, by offset to find its
 * neighbours when coalescing. A live allocation sits only in the allocated
 * tree, by offset, through the same by_offset link (a range is free or
 * allocated, never both), so a release can be told apart from a double free.
 * Reserved ranges are only counted: nothing ever gives them back.
 *
 * The trees are small recursive AVL trees without parent pointers: depth is
 * at most 1.44 log2(n), so recursion stays shallow, and successor walks go
 * back through the root (O(log n) each), which is all best fit needs.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "common/macro.h"
#include "common/poison.h"
#include "daemon/allocator.h"

struct avl {
	struct avl *child[2];
	int height;
};

struct range {
	uint64_t offset, size;
	struct avl by_size;
	struct avl by_offset;
};

struct allocator {
	uint64_t size, page_size;
	uint64_t align_cap; /* smallest power of 2 >= size: a larger alignment admits offset 0 only, too */
	uint64_t free_bytes, reserved_bytes;
	uint64_t n_free, n_allocated;
	struct avl *free_by_size, *free_by_offset, *allocated;
	uint64_t visits;
	/* Nodes that carving and merging let go, kept for the next take():
	 * an ALLOC and RELEASE of one window then cost no malloc() or free(). */
	struct range *spare[4];
	unsigned n_spare;
};

#define RANGE_OF(link, member) \
	((struct range *)(void *)((char *)(link) - offsetof(struct range, member)))

typedef int (*avl_cmp)(struct avl *x, struct avl *y);

static int cmp_u64(uint64_t x, uint64_t y) { return (x > y) - (x < y); }

static int cmp_by_size(struct avl *x, struct avl *y)
{
	struct range *a = RANGE_OF(x, by_size), *b = RANGE_OF(y, by_size);
	int c = cmp_u64(a->size, b->size);

	return c ? c : cmp_u64(a->offset, b->offset);
}

static int cmp_by_offset(struct avl *x, struct avl *y)
{
	return cmp_u64(RANGE_OF(x, by_offset)->offset, RANGE_OF(y, by_offset)->offset);
}

static int avl_height(const struct avl *n) { return n ? n->height : 0; }

static void avl_fix_height(struct avl *n)
{
	n->height = 1 + MAX(avl_height(n->child[0]), avl_height(n->child[1]));
}

/* dir 0 rotates left (the right child comes up), dir 1 rotates right. */
static struct avl *avl_rotate(struct avl *n, int dir)
{
	struct avl *c = n->child[!dir];

	n->child[!dir] = c->child[dir];
	c->child[dir] = n;
	avl_fix_height(n);
	avl_fix_height(c);
	return c;
}

static struct avl *avl_rebalance(struct avl *n)
{
	int balance = avl_height(n->child[0]) - avl_height(n->child[1]);

	avl_fix_height(n);
	if (balance > 1) {
		struct avl *l = n->child[0];
		if (avl_height(l->child[0]) < avl_height(l->child[1]))
			n->child[0] = avl_rotate(l, 0);
		return avl_rotate(n, 1);
	}
	if (balance < -1) {
		struct avl *r = n->child[1];
		if (avl_height(r->child[1]) < avl_height(r->child[0]))
			n->child[1] = avl_rotate(r, 1);
		return avl_rotate(n, 0);
	}
	return n;
}

/* Keys are unique in every tree ((size, offset) and offset both are). */
static struct avl *avl_insert(struct avl *t, struct avl *n, avl_cmp cmp, uint64_t *visits)
{
	if (!t) {
		n->child[0] = n->child[1] = NULL;
		n->height = 1;
		return n;
	}
	(*visits)++;
	int dir = cmp(n, t) > 0;
	t->child[dir] = avl_insert(t->child[dir], n, cmp, visits);
	return avl_rebalance(t);
}

static struct avl *avl_remove_min(struct avl *t, struct avl **ret_min, uint64_t *visits)
{
	(*visits)++;
	if (!t->child[0]) {
		*ret_min = t;
		return t->child[1];
	}
	t->child[0] = avl_remove_min(t->child[0], ret_min, visits);
	return avl_rebalance(t);
}

/* n must be in the tree. Nodes are relinked, never copied: they are intrusive. */
static struct avl *avl_remove(struct avl *t, struct avl *n, avl_cmp cmp, uint64_t *visits)
{
	(*visits)++;
	if (t != n) {
		int dir = cmp(n, t) > 0;
		t->child[dir] = avl_remove(t->child[dir], n, cmp, visits);
		return avl_rebalance(t);
	}
	if (!t->child[1])
		return t->child[0];

	struct avl *m;
	struct avl *right = avl_remove_min(t->child[1], &m, visits);
	m->child[0] = t->child[0];
	m->child[1] = right;
	return avl_rebalance(m);
}

static uint64_t align_up(uint64_t x, uint64_t align) { return (x + align - 1) & ~(align - 1); }

static bool is_aligned(uint64_t x, uint64_t align) { return (x & (align - 1)) == 0; }

/* The free range with the smallest (size, offset) >= (size, offset), or NULL. */
static struct range *free_lower_bound(struct allocator *a, uint64_t size, uint64_t offset)
{
	struct range *best = NULL;

	for (struct avl *n = a->free_by_size; n;) {
		struct range *r = RANGE_OF(n, by_size);
		a->visits++;
		if (r->size > size || (r->size == size && r->offset >= offset)) {
			best = r;
			n = n->child[0];
		} else
			n = n->child[1];
	}
	return best;
}

/* In an offset-ordered tree: the range with the largest offset <= offset. */
static struct range *offset_floor(struct avl *t, uint64_t offset, uint64_t *visits)
{
	struct range *best = NULL;

	while (t) {
		struct range *r = RANGE_OF(t, by_offset);
		(*visits)++;
		if (r->offset <= offset) {
			best = r;
			t = t->child[1];
		} else
			t = t->child[0];
	}
	return best;
}

/* In an offset-ordered tree: the range with the smallest offset > offset. */
static struct range *offset_above(struct avl *t, uint64_t offset, uint64_t *visits)
{
	struct range *best = NULL;

	while (t) {
		struct range *r = RANGE_OF(t, by_offset);
		(*visits)++;
		if (r->offset > offset) {
			best = r;
			t = t->child[0];
		} else
			t = t->child[1];
	}
	return best;
}

static struct range *range_new(struct allocator *a)
{
	if (a->n_spare == 0)
		return malloc(sizeof(struct range));
	struct range *r = a->spare[--a->n_spare];
	mem_unpoison(r, sizeof(*r));
	return r;
}

/* Keeps or frees r (may be NULL). */
static void range_drop(struct allocator *a, struct range *r)
{
	if (r && a->n_spare < ARRAY_SIZE(a->spare)) {
		mem_poison(r, sizeof(*r));
		a->spare[a->n_spare++] = r;
	} else {
		free(r);
	}
}

static void free_insert(struct allocator *a, struct range *r)
{
	a->free_by_size = avl_insert(a->free_by_size, &r->by_size, cmp_by_size, &a->visits);
	a->free_by_offset = avl_insert(a->free_by_offset, &r->by_offset, cmp_by_offset, &a->visits);
	a->n_free++;
}

static void free_remove(struct allocator *a, struct range *r)
{
	a->free_by_size = avl_remove(a->free_by_size, &r->by_size, cmp_by_size, &a->visits);
	a->free_by_offset = avl_remove(a->free_by_offset, &r->by_offset, cmp_by_offset, &a->visits);
	a->n_free--;
}

/* Takes [start, start+len) out of free range r, which holds it. What is left
 * on either side stays free; r's node is reused for one side, *spare (needed
 * only when both sides remain, and then consumed) for the other. */
static void carve(struct allocator *a, struct range *r, uint64_t start, uint64_t len,
		  struct range **spare)
{
	uint64_t end = r->offset + r->size;

	free_remove(a, r);
	a->free_bytes -= len;
	if (start > r->offset) {
		r->size = start - r->offset;
		free_insert(a, r);
		r = NULL;
	}
	if (start + len < end) {
		struct range *t = r ? TAKE_PTR(r) : TAKE_PTR(*spare);
		t->offset = start + len;
		t->size = end - t->offset;
		free_insert(a, t);
	}
	range_drop(a, r);
}

/* Puts r back among the free ranges, merged with a free neighbour on either side. */
static void free_insert_coalesced(struct allocator *a, struct range *r)
{
	struct range *prev = offset_floor(a->free_by_offset, r->offset, &a->visits);
	struct range *next = offset_above(a->free_by_offset, r->offset, &a->visits);

	a->free_bytes += r->size;
	if (prev && prev->offset + prev->size == r->offset) {
		free_remove(a, prev);
		prev->size += r->size;
		range_drop(a, r);
		r = prev;
	}
	if (next && r->offset + r->size == next->offset) {
		free_remove(a, next);
		r->size += next->size;
		range_drop(a, next);
	}
	free_insert(a, r);
}

int allocator_new(uint64_t size, uint64_t page_size, struct allocator **ret)
{
	if (!ret || !IS_POWER_OF_2(page_size) || size == 0 || size > (UINT64_C(1) << 63) ||
	    !is_aligned(size, page_size))
		return -EINVAL;

	_cleanup_free_ struct allocator *a = calloc(1, sizeof(*a));
	struct range *r = calloc(1, sizeof(*r));
	if (!a || !r) {
		free(r);
		return -ENOMEM;
	}
	a->size = size;
	a->page_size = page_size;
	a->align_cap = page_size;
	while (a->align_cap < size)
		a->align_cap <<= 1;
	r->offset = 0;
	r->size = size;
	free_insert(a, r);
	a->free_bytes = size;
	*ret = TAKE_PTR(a);
	return 0;
}

static void free_tree(struct avl *t)
{
	if (!t)
		return;
	free_tree(t->child[0]);
	free_tree(t->child[1]);
	free(RANGE_OF(t, by_offset));
}

struct allocator *allocator_free(struct allocator *a)
{
	if (!a)
		return NULL;
	/* Every node is in exactly one offset-ordered tree. */
	free_tree(a->free_by_offset);
	free_tree(a->allocated);
	while (a->n_spare > 0)
		free(range_new(a)); /* unpoisoned first */
	free(a);
	return NULL;
}

int allocator_reserve(struct allocator *a, uint64_t offset, uint64_t length)
{
	if (!a || length == 0 || !is_aligned(offset, a->page_size) ||
	    !is_aligned(length, a->page_size) || offset > a->size || length > a->size - offset)
		return -EINVAL;

	struct range *r = offset_floor(a->free_by_offset, offset, &a->visits);
	if (!r || offset + length > r->offset + r->size)
		return -EEXIST;

	struct range *spare = NULL;
	if (offset > r->offset && offset + length < r->offset + r->size) {
		spare = range_new(a);
		if (!spare)
			return -ENOMEM;
	}
	carve(a, r, offset, length, &spare);
	a->reserved_bytes += length;
	return 0;
}

static bool range_fits(const struct range *r, uint64_t size, uint64_t align, uint64_t *ret_start)
{
	uint64_t start = align_up(r->offset, align);
	uint64_t waste = start - r->offset;

	if (waste > r->size || r->size - waste < size)
		return false;
	*ret_start = start;
	return true;
}

/* Best fit at an alignment; the bound is explained at allocator_alloc() in the header. */
static struct range *find_fit(struct allocator *a, uint64_t size, uint64_t align,
			      uint64_t *ret_start)
{
	/* Front waste is at most align - page: a range this large always fits. */
	uint64_t certain = size + align - a->page_size;
	struct range *r = free_lower_bound(a, size, 0);

	for (unsigned tried = 1; r; tried++) {
		if (range_fits(r, size, align, ret_start))
			return r;
		if (tried == ALLOCATOR_ALIGN_CANDIDATES) {
			struct range *sure = free_lower_bound(a, certain, 0);
			if (sure && range_fits(sure, size, align, ret_start))
				return sure;
			/* Nothing is certain to fit: the remaining uncertain ranges must be tried. */
		}
		r = free_lower_bound(a, r->size, r->offset + 1);
	}
	return NULL;
}

/* Carves [start, start+size) out of the free range r as a live allocation,
 * which allocator_release() gives back. */
static int take(struct allocator *a, struct range *r, uint64_t start, uint64_t size)
{
	struct range *win = range_new(a), *spare = NULL;

	if (!win)
		return -ENOMEM;
	if (start > r->offset && start + size < r->offset + r->size) {
		spare = range_new(a);
		if (!spare) {
			range_drop(a, win);
			return -ENOMEM;
		}
	}
	carve(a, r, start, size, &spare); /* consumes spare */

	win->offset = start;
	win->size = size;
	a->allocated = avl_insert(a->allocated, &win->by_offset, cmp_by_offset, &a->visits);
	a->n_allocated++;
	return 0;
}

int allocator_alloc(struct allocator *a, uint64_t size, uint64_t align, uint64_t *ret_offset)
{
	if (!a || !ret_offset || size == 0 || (align != 0 && !IS_POWER_OF_2(align)))
		return -EINVAL;
	/* free_bytes is a page multiple, so rounding size up cannot pass it. */
	if (size > a->free_bytes)
		return -ENOSPC;
	size = align_up(size, a->page_size);
	align = MIN(MAX(align, a->page_size), a->align_cap);

	uint64_t start;
	struct range *r = find_fit(a, size, align, &start);
	if (!r)
		return -ENOSPC;

	int ret = take(a, r, start, size);
	if (ret < 0)
		return ret;
	*ret_offset = start;
	return 0;
}

int allocator_claim(struct allocator *a, uint64_t offset, uint64_t size)
{
	if (!a || size == 0 || size > a->size || !is_aligned(offset, a->page_size))
		return -EINVAL;
	size = align_up(size, a->page_size);
	if (offset > a->size - size)
		return -EINVAL;

	struct range *r = offset_floor(a->free_by_offset, offset, &a->visits);
	if (!r || offset + size > r->offset + r->size)
		return -EEXIST;
	return take(a, r, offset, size);
}

int allocator_release(struct allocator *a, uint64_t offset, uint64_t size)
{
	if (!a || size == 0 || size > a->size)
		return -EINVAL;
	size = align_up(size, a->page_size);

	struct range *w = offset_floor(a->allocated, offset, &a->visits);
	if (!w || w->offset != offset || w->size != size)
		return -EINVAL;

	a->allocated = avl_remove(a->allocated, &w->by_offset, cmp_by_offset, &a->visits);
	a->n_allocated--;
	free_insert_coalesced(a, w);
	return 0;
}

uint64_t allocator_size(const struct allocator *a) { return a->size; }
uint64_t allocator_page_size(const struct allocator *a) { return a->page_size; }
uint64_t allocator_free_bytes(const struct allocator *a) { return a->free_bytes; }
uint64_t allocator_reserved_bytes(const struct allocator *a) { return a->reserved_bytes; }
uint64_t allocator_n_free(const struct allocator *a) { return a->n_free; }
uint64_t allocator_n_allocated(const struct allocator *a) { return a->n_allocated; }
uint64_t allocator_node_visits(const struct allocator *a) { return a->visits; }

uint64_t allocator_largest_free(const struct allocator *a)
{
	const struct avl *n = a->free_by_size;

	if (!n)
		return 0;
	while (n->child[1])
		n = n->child[1];
	return RANGE_OF(n, by_size)->size;
}

static int foreach_in_order(struct avl *t, allocator_range_cb cb, void *userdata)
{
	if (!t)
		return 0;
	int r = foreach_in_order(t->child[0], cb, userdata);
	if (r != 0)
		return r;
	struct range *range = RANGE_OF(t, by_offset);
	r = cb(range->offset, range->size, userdata);
	if (r != 0)
		return r;
	return foreach_in_order(t->child[1], cb, userdata);
}

int allocator_foreach_free(const struct allocator *a, allocator_range_cb cb, void *userdata)
{
	return foreach_in_order(a->free_by_offset, cb, userdata);
}

/* ---- verification (tests) ---------------------------------------------- */

struct verify_state {
	const struct allocator *a;
	struct avl *prev;
	avl_cmp cmp;
	uint64_t count;
	bool bad;
};

/* Returns the subtree's height, checking stored heights, balance and order. */
static int verify_tree(struct avl *t, struct verify_state *s)
{
	if (!t)
		return 0;
	int hl = verify_tree(t->child[0], s);
	if (s->prev && s->cmp(s->prev, t) >= 0)
		s->bad = true;
	s->prev = t;
	s->count++;
	int hr = verify_tree(t->child[1], s);
	if (t->height != 1 + MAX(hl, hr) || hl - hr > 1 || hr - hl > 1)
		s->bad = true;
	return t->height;
}

struct verify_walk {
	const struct allocator *a;
	uint64_t end;     /* end of the previous range in offset order */
	uint64_t sum;
	bool first, bad;
};

static int verify_free_range(uint64_t offset, uint64_t length, void *userdata)
{
	struct verify_walk *w = userdata;
	uint64_t visits = 0;

	/* Not empty, page aligned, in bounds, apart from (not touching) the previous one. */
	if (length == 0 || !is_aligned(offset | length, w->a->page_size) ||
	    offset > w->a->size || length > w->a->size - offset ||
	    (!w->first && offset <= w->end))
		w->bad = true;
	/* No allocation may overlap it: the nearest one below must end before it. */
	struct range *al = offset_floor(w->a->allocated, offset + length - 1, &visits);
	if (al && al->offset + al->size > offset)
		w->bad = true;
	w->first = false;
	w->end = offset + length;
	w->sum += length;
	return 0;
}

static uint64_t verify_allocated(const struct allocator *a, struct avl *t, uint64_t *end, bool *bad)
{
	if (!t)
		return 0;
	uint64_t sum = verify_allocated(a, t->child[0], end, bad);
	struct range *r = RANGE_OF(t, by_offset);
	if (r->size == 0 || !is_aligned(r->offset | r->size, a->page_size) || r->offset < *end ||
	    r->offset > a->size || r->size > a->size - r->offset)
		*bad = true;
	*end = r->offset + r->size;
	return sum + r->size + verify_allocated(a, t->child[1], end, bad);
}

static bool verify_same_sets(const struct allocator *a, struct avl *t)
{
	uint64_t visits = 0;

	if (!t)
		return true;
	struct range *r = RANGE_OF(t, by_size);
	if (offset_floor(a->free_by_offset, r->offset, &visits) != r)
		return false;
	return verify_same_sets(a, t->child[0]) && verify_same_sets(a, t->child[1]);
}

int allocator_verify(const struct allocator *a)
{
	struct verify_state s = { .a = a, .cmp = cmp_by_size };
	verify_tree(a->free_by_size, &s);
	uint64_t n_by_size = s.count;
	s = (struct verify_state){ .a = a, .cmp = cmp_by_offset, .bad = s.bad };
	verify_tree(a->free_by_offset, &s);
	uint64_t n_by_offset = s.count;
	s.prev = NULL;
	s.count = 0;
	verify_tree(a->allocated, &s);
	if (s.bad || n_by_size != a->n_free || n_by_offset != a->n_free ||
	    s.count != a->n_allocated || !verify_same_sets(a, a->free_by_size))
		return -EUCLEAN;

	struct verify_walk w = { .a = a, .first = true };
	allocator_foreach_free(a, verify_free_range, &w);
	uint64_t end = 0;
	bool bad = false;
	uint64_t allocated = verify_allocated(a, a->allocated, &end, &bad);
	if (w.bad || bad || w.sum != a->free_bytes ||
	    w.sum + allocated + a->reserved_bytes != a->size)
		return -EUCLEAN;
	return 0;
}

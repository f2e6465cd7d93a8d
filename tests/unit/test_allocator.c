// SPDX-License-Identifier: MIT
/* The window allocator: fixed cases, then random operations against a page map. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "daemon/allocator.h"
#include "tests/unit/unit.h"

#define PAGE UINT64_C(4096)

static void test_new_args(void)
{
	struct allocator *a = NULL;

	CHECK_EQ(allocator_new(0, PAGE, &a), -EINVAL);
	CHECK_EQ(allocator_new(PAGE * 4, 3000, &a), -EINVAL);
	CHECK_EQ(allocator_new(PAGE * 4, 0, &a), -EINVAL);
	CHECK_EQ(allocator_new(PAGE * 4 + 1, PAGE, &a), -EINVAL);
	CHECK_EQ(allocator_new((UINT64_C(1) << 63) + PAGE, PAGE, &a), -EINVAL);
	CHECK(a == NULL);
	CHECK(allocator_free(NULL) == NULL);

	CHECK_EQ(allocator_new(PAGE * 4, PAGE, &a), 0);
	CHECK_EQ(allocator_size(a), PAGE * 4);
	CHECK_EQ(allocator_page_size(a), PAGE);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 4);
	CHECK_EQ(allocator_largest_free(a), PAGE * 4);
	CHECK_EQ(allocator_n_free(a), 1);
	a = allocator_free(a);
	CHECK(a == NULL);
}

static void test_alloc_basic(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	uint64_t off;

	CHECK_EQ(allocator_new(PAGE * 8, PAGE, &a), 0);
	CHECK_EQ(allocator_alloc(a, 0, 0, &off), -EINVAL);
	CHECK_EQ(allocator_alloc(a, PAGE, 3, &off), -EINVAL);
	CHECK_EQ(allocator_alloc(a, PAGE, PAGE * 3, &off), -EINVAL);

	/* Sizes round up to a page; small power-of-2 alignments mean "page". */
	CHECK_EQ(allocator_alloc(a, 1, 16, &off), 0);
	CHECK_EQ(off, 0);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 7);
	CHECK_EQ(allocator_alloc(a, PAGE + 1, 0, &off), 0);
	CHECK_EQ(off, PAGE);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 5);
	CHECK_EQ(allocator_n_allocated(a), 2);

	CHECK_EQ(allocator_alloc(a, PAGE * 6, 0, &off), -ENOSPC);
	CHECK_EQ(allocator_alloc(a, UINT64_MAX, 0, &off), -ENOSPC);
	CHECK_EQ(allocator_alloc(a, PAGE * 5, 0, &off), 0);
	CHECK_EQ(off, PAGE * 3);
	CHECK_EQ(allocator_free_bytes(a), 0);
	CHECK_EQ(allocator_largest_free(a), 0);
	CHECK_EQ(allocator_n_free(a), 0);
	CHECK_EQ(allocator_alloc(a, 1, 0, &off), -ENOSPC);
	CHECK_EQ(allocator_verify(a), 0);

	/* The caller gives back the size it asked for. */
	CHECK_EQ(allocator_release(a, PAGE, PAGE + 1), 0);
	CHECK_EQ(allocator_release(a, 0, 1), 0);
	CHECK_EQ(allocator_release(a, PAGE * 3, PAGE * 5), 0);
	CHECK_EQ(allocator_n_free(a), 1);
	CHECK_EQ(allocator_largest_free(a), PAGE * 8);
	CHECK_EQ(allocator_verify(a), 0);
}

static void test_release_errors(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	uint64_t off, off2;

	CHECK_EQ(allocator_new(PAGE * 8, PAGE, &a), 0);
	CHECK_EQ(allocator_alloc(a, PAGE * 2, 0, &off), 0);
	CHECK_EQ(allocator_alloc(a, PAGE * 2, 0, &off2), 0);
	CHECK_EQ(allocator_release(a, off, PAGE), -EINVAL);         /* wrong size */
	CHECK_EQ(allocator_release(a, off, PAGE * 3), -EINVAL);
	CHECK_EQ(allocator_release(a, off + PAGE, PAGE), -EINVAL);  /* inside */
	CHECK_EQ(allocator_release(a, PAGE * 6, PAGE), -EINVAL);    /* free space */
	CHECK_EQ(allocator_release(a, off, 0), -EINVAL);
	CHECK_EQ(allocator_release(a, off, UINT64_MAX), -EINVAL);
	CHECK_EQ(allocator_release(a, off, PAGE * 2), 0);
	CHECK_EQ(allocator_release(a, off, PAGE * 2), -EINVAL);     /* double free */
	CHECK_EQ(allocator_n_allocated(a), 1);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 6);
	CHECK_EQ(allocator_verify(a), 0);
}

static void test_alignment(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	uint64_t off;

	CHECK_EQ(allocator_new(PAGE * 64, PAGE, &a), 0);
	CHECK_EQ(allocator_alloc(a, PAGE, 0, &off), 0);
	CHECK_EQ(off, 0);
	CHECK_EQ(allocator_alloc(a, PAGE, PAGE * 4, &off), 0);
	CHECK_EQ(off, PAGE * 4);
	/* The front waste [1, 4) stays free and is used for the next small window. */
	CHECK_EQ(allocator_n_free(a), 2);
	CHECK_EQ(allocator_alloc(a, PAGE * 3, 0, &off), 0);
	CHECK_EQ(off, PAGE);
	CHECK_EQ(allocator_alloc(a, PAGE * 2, PAGE * 32, &off), 0);
	CHECK_EQ(off, PAGE * 32);
	/* Alignments beyond the BAR size only admit offset 0, which is taken. */
	CHECK_EQ(allocator_alloc(a, PAGE, UINT64_C(1) << 63, &off), -ENOSPC);
	CHECK_EQ(allocator_verify(a), 0);

	_cleanup_allocator_ struct allocator *b = NULL;
	CHECK_EQ(allocator_new(PAGE * 64, PAGE, &b), 0);
	CHECK_EQ(allocator_alloc(b, PAGE, UINT64_C(1) << 63, &off), 0);
	CHECK_EQ(off, 0);
}

/* Holes of 3, 1 and 2 pages: a 2-page request takes the 2-page hole. */
static void test_best_fit(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	uint64_t off[7], o;

	CHECK_EQ(allocator_new(PAGE * 9, PAGE, &a), 0);
	static const uint64_t pages[7] = { 3, 1, 1, 1, 2, 1 };
	for (int i = 0; i < 6; i++)
		CHECK_EQ(allocator_alloc(a, pages[i] * PAGE, 0, &off[i]), 0);
	CHECK_EQ(allocator_free_bytes(a), 0);
	CHECK_EQ(allocator_release(a, off[0], 3 * PAGE), 0);  /* [0,3) */
	CHECK_EQ(allocator_release(a, off[2], PAGE), 0);      /* [4,5) */
	CHECK_EQ(allocator_release(a, off[4], 2 * PAGE), 0);  /* [6,8) */
	CHECK_EQ(allocator_n_free(a), 3);
	CHECK_EQ(allocator_largest_free(a), 3 * PAGE);
	CHECK_EQ(allocator_alloc(a, 2 * PAGE, 0, &o), 0);
	CHECK_EQ(o, 6 * PAGE);
	CHECK_EQ(allocator_alloc(a, PAGE, 0, &o), 0);
	CHECK_EQ(o, 4 * PAGE);
	CHECK_EQ(allocator_alloc(a, PAGE, 0, &o), 0);
	CHECK_EQ(o, 0);
	CHECK_EQ(allocator_verify(a), 0);
}

static void test_coalesce(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	uint64_t off[4];

	CHECK_EQ(allocator_new(PAGE * 4, PAGE, &a), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(allocator_alloc(a, PAGE, 0, &off[i]), 0);
	CHECK_EQ(allocator_release(a, off[1], PAGE), 0);
	CHECK_EQ(allocator_release(a, off[3], PAGE), 0);
	CHECK_EQ(allocator_n_free(a), 2);
	CHECK_EQ(allocator_release(a, off[2], PAGE), 0);  /* joins both sides */
	CHECK_EQ(allocator_n_free(a), 1);
	CHECK_EQ(allocator_largest_free(a), 3 * PAGE);
	CHECK_EQ(allocator_release(a, off[0], PAGE), 0);  /* joins the right side */
	CHECK_EQ(allocator_n_free(a), 1);
	CHECK_EQ(allocator_largest_free(a), 4 * PAGE);
	CHECK_EQ(allocator_verify(a), 0);
}

static void test_reserve(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	uint64_t off;

	CHECK_EQ(allocator_new(PAGE * 16, PAGE, &a), 0);
	CHECK_EQ(allocator_reserve(a, 1, PAGE), -EINVAL);
	CHECK_EQ(allocator_reserve(a, 0, PAGE + 1), -EINVAL);
	CHECK_EQ(allocator_reserve(a, 0, 0), -EINVAL);
	CHECK_EQ(allocator_reserve(a, PAGE * 16, PAGE), -EINVAL);
	CHECK_EQ(allocator_reserve(a, PAGE * 15, PAGE * 2), -EINVAL);
	CHECK_EQ(allocator_reserve(a, PAGE, UINT64_MAX - PAGE + 1), -EINVAL);

	CHECK_EQ(allocator_reserve(a, PAGE * 4, PAGE * 4), 0);   /* middle: splits */
	CHECK_EQ(allocator_n_free(a), 2);
	CHECK_EQ(allocator_reserve(a, PAGE * 6, PAGE), -EEXIST);
	CHECK_EQ(allocator_reserve(a, PAGE * 3, PAGE * 2), -EEXIST);
	CHECK_EQ(allocator_reserve(a, 0, PAGE), 0);              /* front */
	CHECK_EQ(allocator_reserve(a, PAGE * 15, PAGE), 0);      /* back */
	CHECK_EQ(allocator_reserved_bytes(a), PAGE * 6);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 10);
	CHECK_EQ(allocator_largest_free(a), PAGE * 7);

	CHECK_EQ(allocator_alloc(a, PAGE, 0, &off), 0);
	CHECK_EQ(off, PAGE);
	CHECK_EQ(allocator_reserve(a, PAGE, PAGE), -EEXIST);     /* allocated */
	CHECK_EQ(allocator_release(a, PAGE * 4, PAGE * 4), -EINVAL); /* reserved */
	CHECK_EQ(allocator_release(a, off, PAGE), 0);
	CHECK_EQ(allocator_n_free(a), 2);
	CHECK_EQ(allocator_verify(a), 0);
}

/* The restart path takes stored windows up with allocator_claim(): they
 * must come back on release (a reserved range never does). */
static void test_claim(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;

	CHECK_EQ(allocator_new(PAGE * 16, PAGE, &a), 0);
	CHECK_EQ(allocator_claim(a, 1, PAGE), -EINVAL);
	CHECK_EQ(allocator_claim(a, 0, 0), -EINVAL);
	CHECK_EQ(allocator_claim(a, PAGE * 15, PAGE * 2), -EINVAL);
	CHECK_EQ(allocator_claim(a, PAGE, UINT64_MAX - PAGE + 1), -EINVAL);
	CHECK_EQ(allocator_claim(a, PAGE * 4, PAGE * 3 + 1), 0); /* rounded up, splits */
	CHECK_EQ(allocator_claim(a, PAGE * 6, PAGE), -EEXIST);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 12);
	CHECK_EQ(allocator_reserved_bytes(a), 0);
	CHECK_EQ(allocator_release(a, PAGE * 4, PAGE * 4), 0);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 16);
	CHECK_EQ(allocator_n_free(a), 1);
	CHECK_EQ(allocator_verify(a), 0);
}

/* ---- randomized against a page map ------------------------------------ */

enum { M_FREE, M_ALLOC, M_RESERVED };

#define MODEL_PAGES 1024
#define MAX_LIVE 512

struct model {
	uint8_t page[MODEL_PAGES];
	uint64_t n_ok, n_nospc, n_released, max_free_ranges;
	struct { uint64_t offset, asked; } live[MAX_LIVE];
	int n_live;
	uint64_t free_pages;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic across libcs, unlike rand(). */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static uint64_t rnd_below(uint64_t n) { return rnd() % n; }

/* Free runs of the model, in offset order; returns their count. */
static int model_runs(const struct model *m, uint64_t runs[][2])
{
	int n = 0;

	for (uint64_t p = 0; p < MODEL_PAGES;) {
		if (m->page[p] != M_FREE) {
			p++;
			continue;
		}
		uint64_t q = p;
		while (q < MODEL_PAGES && m->page[q] == M_FREE)
			q++;
		runs[n][0] = p;
		runs[n][1] = q - p;
		n++;
		p = q;
	}
	return n;
}

struct collect {
	uint64_t (*runs)[2];
	int n, max;
};

static int collect_cb(uint64_t offset, uint64_t length, void *userdata)
{
	struct collect *c = userdata;

	if (c->n == c->max)
		return -E2BIG;
	c->runs[c->n][0] = offset / PAGE;
	c->runs[c->n][1] = length / PAGE;
	c->n++;
	return 0;
}

/* The allocator's free ranges are exactly the model's maximal free runs: this
 * is what proves coalescing. */
static bool same_free_ranges(const struct allocator *a, const struct model *m)
{
	static uint64_t want[MODEL_PAGES][2], got[MODEL_PAGES][2];
	int n = model_runs(m, want);
	struct collect c = { .runs = got, .max = MODEL_PAGES };

	if (allocator_foreach_free(a, collect_cb, &c) != 0 || c.n != n)
		return false;
	return memcmp(want, got, sizeof(want[0]) * (size_t)n) == 0;
}

/* Smallest run that fits pages at align_pages (ties: lowest offset); -1 if none. */
static int64_t model_best_fit(const struct model *m, uint64_t pages, uint64_t align_pages,
			      uint64_t *ret_run_pages)
{
	static uint64_t runs[MODEL_PAGES][2];
	int n = model_runs(m, runs);
	int64_t best = -1;

	for (int i = 0; i < n; i++) {
		uint64_t start = (runs[i][0] + align_pages - 1) / align_pages * align_pages;
		if (start - runs[i][0] > runs[i][1] || runs[i][1] - (start - runs[i][0]) < pages)
			continue;
		if (best < 0 || runs[i][1] < *ret_run_pages) {
			best = (int64_t)start;
			*ret_run_pages = runs[i][1];
		}
	}
	return best;
}

static uint64_t model_largest(const struct model *m)
{
	uint64_t best = 0, cur = 0;

	for (int p = 0; p < MODEL_PAGES; p++) {
		cur = m->page[p] == M_FREE ? cur + 1 : 0;
		best = MAX(best, cur);
	}
	return best;
}

static void model_fill(struct model *m, uint64_t first, uint64_t pages, uint8_t state)
{
	memset(&m->page[first], state, pages);
}

static void random_alloc(struct allocator *a, struct model *m)
{
	uint64_t pages = 1 + (rnd_below(4) == 0 ? rnd_below(64) : rnd_below(8));
	uint64_t asked = pages * PAGE - (rnd_below(2) ? rnd_below(PAGE) : 0);
	uint64_t align_pages = rnd_below(3) == 0 ? UINT64_C(1) << rnd_below(7) : 1;
	uint64_t run_pages = 0, off;
	int64_t want = model_best_fit(m, pages, align_pages, &run_pages);
	int r = allocator_alloc(a, asked, align_pages * PAGE, &off);

	if (want < 0 || m->n_live == MAX_LIVE) {
		if (want < 0) {
			CHECK_EQ(r, -ENOSPC);
			m->n_nospc++;
		}
		if (r == 0)
			CHECK_EQ(allocator_release(a, off, asked), 0);
		return;
	}
	CHECK_EQ(r, 0);
	if (r != 0)
		return;
	CHECK_EQ(off % (align_pages * PAGE), 0);
	uint64_t first = off / PAGE;
	CHECK(first + pages <= MODEL_PAGES);
	for (uint64_t p = first; p < first + pages && p < MODEL_PAGES; p++)
		CHECK_EQ(m->page[p], M_FREE);
	/* Page alignment: exact best fit. Larger: best fit unless the candidate cap was hit. */
	if (align_pages == 1)
		CHECK_EQ(off, (uint64_t)want * PAGE);
	model_fill(m, first, pages, M_ALLOC);
	m->live[m->n_live].offset = off;
	m->live[m->n_live].asked = asked;
	m->n_live++;
	m->free_pages -= pages;
	m->n_ok++;
}

static void random_release(struct allocator *a, struct model *m)
{
	if (m->n_live == 0)
		return;
	int i = (int)rnd_below((uint64_t)m->n_live);
	uint64_t off = m->live[i].offset, asked = m->live[i].asked;
	uint64_t pages = (asked + PAGE - 1) / PAGE;

	if (rnd_below(8) == 0) /* a wrong size must not release anything */
		CHECK_EQ(allocator_release(a, off, asked + PAGE), -EINVAL);
	CHECK_EQ(allocator_release(a, off, asked), 0);
	CHECK_EQ(allocator_release(a, off, asked), -EINVAL); /* double free */
	model_fill(m, off / PAGE, pages, M_FREE);
	m->free_pages += pages;
	m->live[i] = m->live[--m->n_live];
	m->n_released++;
}

static void test_random(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	static struct model m;
	const int ops = 200000;

	memset(&m, 0, sizeof(m));
	rng_state = 0x9e3779b97f4a7c15;
	CHECK_EQ(allocator_new(MODEL_PAGES * PAGE, PAGE, &a), 0);

	/* A few reservations, as from a config file. */
	static const uint64_t res[][2] = { { 0, 2 }, { 100, 7 }, { 512, 1 }, { 1020, 4 } };
	for (size_t i = 0; i < ARRAY_SIZE(res); i++) {
		CHECK_EQ(allocator_reserve(a, res[i][0] * PAGE, res[i][1] * PAGE), 0);
		model_fill(&m, res[i][0], res[i][1], M_RESERVED);
	}
	m.free_pages = MODEL_PAGES - 14;

	for (int op = 0; op < ops && !unit_case_failed; op++) {
		/* Drift between filling up and draining so both full and empty BARs occur. */
		bool filling = (op / 5000) % 2 == 0;
		if (rnd_below(100) < (filling ? 65u : 35u))
			random_alloc(a, &m);
		else
			random_release(a, &m);

		CHECK_EQ(allocator_free_bytes(a), m.free_pages * PAGE);
		CHECK_EQ(allocator_largest_free(a), model_largest(&m) * PAGE);
		CHECK_EQ(allocator_n_allocated(a), m.n_live);
		m.max_free_ranges = MAX(m.max_free_ranges, allocator_n_free(a));
		if (op % 97 == 0) {
			CHECK(same_free_ranges(a, &m));
			CHECK_EQ(allocator_verify(a), 0);
		}
	}

	printf("  %d ops: %llu allocs, %llu ENOSPC, %llu releases, up to %llu free ranges\n", ops,
	       (unsigned long long)m.n_ok, (unsigned long long)m.n_nospc,
	       (unsigned long long)m.n_released, (unsigned long long)m.max_free_ranges);
	while (m.n_live > 0 && !unit_case_failed)
		random_release(a, &m);
	CHECK_EQ(allocator_verify(a), 0);
	CHECK(same_free_ranges(a, &m));
	/* Everything back: one range between each pair of reservations. */
	CHECK_EQ(allocator_n_free(a), 3);
	CHECK_EQ(allocator_free_bytes(a), (MODEL_PAGES - 14) * PAGE);
	CHECK_EQ(allocator_reserved_bytes(a), 14 * PAGE);
	CHECK_EQ(allocator_largest_free(a), (1020 - 513) * PAGE);
}

/* With no reservations, freeing everything leaves exactly one full range. */
static void test_random_no_reserve(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	static struct model m;

	memset(&m, 0, sizeof(m));
	rng_state = 42;
	m.free_pages = MODEL_PAGES;
	CHECK_EQ(allocator_new(MODEL_PAGES * PAGE, PAGE, &a), 0);
	for (int op = 0; op < 20000 && !unit_case_failed; op++) {
		if (rnd_below(100) < 60)
			random_alloc(a, &m);
		else
			random_release(a, &m);
	}
	while (m.n_live > 0 && !unit_case_failed)
		random_release(a, &m);
	CHECK_EQ(allocator_verify(a), 0);
	CHECK_EQ(allocator_n_free(a), 1);
	CHECK_EQ(allocator_largest_free(a), MODEL_PAGES * PAGE);
}

/* ---- cost by node visits ------------------------------------------------ */

static unsigned log2_floor(uint64_t x)
{
	unsigned l = 0;

	while (x >>= 1)
		l++;
	return l;
}

/* Fragments a BAR into holes + 1 free ranges (holes single pages, none
 * adjacent, and the tail), then returns the mean node visits of one
 * alloc+release pair. */
static double visits_per_pair(uint64_t holes, uint64_t align)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	uint64_t off;

	CHECK_EQ(allocator_new(PAGE * holes * 4, PAGE, &a), 0);
	for (uint64_t i = 0; i < holes * 2; i++) {
		CHECK_EQ(allocator_alloc(a, PAGE, 0, &off), 0);
		CHECK_EQ(off, i * PAGE);
	}
	for (uint64_t i = 0; i < holes * 2; i += 2)
		CHECK_EQ(allocator_release(a, i * PAGE, PAGE), 0);
	CHECK_EQ(allocator_n_free(a), holes + 1);
	if (unit_case_failed)
		return 0;

	uint64_t before = allocator_node_visits(a);
	const int pairs = 2000;
	for (int i = 0; i < pairs; i++) {
		CHECK_EQ(allocator_alloc(a, PAGE, align, &off), 0);
		CHECK_EQ(allocator_release(a, off, PAGE), 0);
	}
	return (double)(allocator_node_visits(a) - before) / pairs;
}

static void test_cost_logarithmic(void)
{
	double small = visits_per_pair(1 << 10, 0), large = visits_per_pair(1 << 17, 0);

	printf("  node visits per alloc+release: %.1f with 2^10 free ranges, %.1f with 2^17\n",
	       small, large);
	/* Each of the ~8 tree walks in a pair is at most 1.44 log2(n) + 2 deep. */
	CHECK(large <= 8 * (1.45 * 17 + 2));
	/* 128x the ranges must cost well under 2x: 17/10 for logarithmic growth. */
	CHECK(large < small * 2);
}

/* Many uncertain candidates (2-page holes, none 4-page aligned) and one large
 * range at the end: the walk gives up after the cap and jumps to the large one. */
static void test_cost_aligned_walk_capped(void)
{
	_cleanup_allocator_ struct allocator *a = NULL;
	const uint64_t holes = 10000;
	uint64_t off;

	CHECK_EQ(allocator_new(PAGE * (holes * 4 + 64), PAGE, &a), 0);
	for (uint64_t i = 0; i < holes; i++) {
		/* Window i covers pages [4i, 4i+4): reserve 4i+0 and 4i+3, leave [4i+1, 4i+3) free. */
		CHECK_EQ(allocator_reserve(a, (4 * i) * PAGE, PAGE), 0);
		CHECK_EQ(allocator_reserve(a, (4 * i + 3) * PAGE, PAGE), 0);
	}
	CHECK_EQ(allocator_n_free(a), holes + 1);

	uint64_t before = allocator_node_visits(a);
	CHECK_EQ(allocator_alloc(a, 2 * PAGE, 4 * PAGE, &off), 0);
	uint64_t cost = allocator_node_visits(a) - before;
	CHECK_EQ(off, holes * 4 * PAGE);
	printf("  aligned alloc over %llu misfitting ranges: %llu node visits\n",
	       (unsigned long long)holes, (unsigned long long)cost);
	CHECK(cost <= (ALLOCATOR_ALIGN_CANDIDATES + 8) * (1.45 * log2_floor(holes) + 2));

	/* With nothing certain to fit, the walk goes on past the cap: here every
	 * candidate misfits... */
	CHECK_EQ(allocator_release(a, off, 2 * PAGE), 0);
	CHECK_EQ(allocator_reserve(a, holes * 4 * PAGE, 64 * PAGE), 0);
	CHECK_EQ(allocator_alloc(a, 2 * PAGE, 4 * PAGE, &off), -ENOSPC);
	CHECK_EQ(allocator_verify(a), 0);

	/* ...and here the only fit is a 3-page run behind 1000 misfitting 2-page ones. */
	_cleanup_allocator_ struct allocator *b = NULL;
	CHECK_EQ(allocator_new(PAGE * 4096, PAGE, &b), 0);
	for (uint64_t i = 0; i < 1000; i++) {
		CHECK_EQ(allocator_reserve(b, (4 * i) * PAGE, PAGE), 0);
		CHECK_EQ(allocator_reserve(b, (4 * i + 3) * PAGE, PAGE), 0);
	}
	CHECK_EQ(allocator_reserve(b, 4000 * PAGE, 4 * PAGE), 0);
	CHECK_EQ(allocator_reserve(b, 4007 * PAGE, 89 * PAGE), 0);
	CHECK_EQ(allocator_alloc(b, 2 * PAGE, 4 * PAGE, &off), 0);
	CHECK_EQ(off, 4004 * PAGE);
	CHECK_EQ(allocator_alloc(b, 2 * PAGE, 0, &off), 0);
	CHECK_EQ(off, PAGE);
	CHECK_EQ(allocator_verify(b), 0);
}

int main(void)
{
	RUN(test_new_args);
	RUN(test_alloc_basic);
	RUN(test_release_errors);
	RUN(test_alignment);
	RUN(test_best_fit);
	RUN(test_coalesce);
	RUN(test_reserve);
	RUN(test_claim);
	RUN(test_random);
	RUN(test_random_no_reserve);
	RUN(test_cost_logarithmic);
	RUN(test_cost_aligned_walk_capped);
	return UNIT_END();
}

// SPDX-License-Identifier: MIT
/* The pool of released buffers kept to be lent again (daemon/idle.h), with
 * pipes standing in for dma-bufs: what is kept, what is taken, what is
 * closed, and when. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/allocator.h"
#include "daemon/idle.h"
#include "tests/unit/unit.h"

#define PAGE UINT64_C(4096)

/* A stand-in buffer: the read end of a pipe, whose write end tells whether
 * the pool closed it (a write then fails with EPIPE). */
struct buf {
	int fd, probe;
};

static struct buf buf_new(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return (struct buf){ -1, -1 };
	return (struct buf){ p[0], p[1] };
}

static int is_open(struct buf *b)
{
	return write(b->probe, "x", 1) == 1;
}

static void buf_done(struct buf *b)
{
	close(b->probe);
}

/* The window [offset, offset + size) as the device leaves it before
 * keeping its buffer: released to the allocator, free. */
static struct buf keep(struct idle_pool *p, struct allocator *a, uint64_t offset, uint64_t size)
{
	struct buf b = buf_new();
	CHECK_EQ(allocator_claim(a, offset, size), 0);
	CHECK_EQ(allocator_release(a, offset, size), 0);
	idle_pool_put(p, offset, size, b.fd);
	return b;
}

static void test_take_same_size(void)
{
	struct event_base *base = event_base_new();
	_cleanup_allocator_ struct allocator *a = NULL;
	struct idle_pool *p = idle_pool_new(base, 4, 1000);
	uint64_t off = 0;

	CHECK(p);
	CHECK_EQ(allocator_new(PAGE * 16, PAGE, &a), 0);
	struct buf b = keep(p, a, PAGE * 4, PAGE * 2);
	CHECK_EQ(idle_pool_count(p), 1);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 16); /* the window stays free */

	CHECK_EQ(idle_pool_take(p, a, PAGE, 0, &off), -ENOENT);         /* other size */
	CHECK_EQ(idle_pool_take(p, a, PAGE * 2, PAGE * 8, &off), -ENOENT); /* misaligned */
	CHECK_EQ(idle_pool_count(p), 1);
	CHECK_EQ(idle_pool_take(p, a, PAGE * 2, PAGE * 4, &off), b.fd);
	CHECK_EQ(off, PAGE * 4);
	CHECK_EQ(allocator_free_bytes(a), PAGE * 14);                  /* claimed again */
	CHECK_EQ(idle_pool_count(p), 0);
	CHECK(is_open(&b));                                              /* the caller's now */
	close(b.fd);
	buf_done(&b);
	idle_pool_free(p);
	event_base_free(base);
}

/* A kept buffer whose window was carved meanwhile is closed, not lent. */
static void test_window_carved(void)
{
	struct event_base *base = event_base_new();
	_cleanup_allocator_ struct allocator *a = NULL;
	struct idle_pool *p = idle_pool_new(base, 4, 1000);
	uint64_t off = 0;

	CHECK_EQ(allocator_new(PAGE * 4, PAGE, &a), 0);
	struct buf b = keep(p, a, 0, PAGE);
	CHECK_EQ(allocator_claim(a, 0, PAGE * 2), 0); /* someone else's ALLOC */
	CHECK_EQ(idle_pool_take(p, a, PAGE, 0, &off), -ENOENT);
	CHECK(!is_open(&b));
	CHECK_EQ(idle_pool_count(p), 0);
	buf_done(&b);
	idle_pool_free(p);
	event_base_free(base);
}

/* Full: the oldest goes first; drop and free close the rest. */
static void test_bounded(void)
{
	struct event_base *base = event_base_new();
	_cleanup_allocator_ struct allocator *a = NULL;
	struct idle_pool *p = idle_pool_new(base, 2, 1000);
	struct buf b[3];
	uint64_t off = 0;

	CHECK_EQ(allocator_new(PAGE * 8, PAGE, &a), 0);
	for (int i = 0; i < 3; i++)
		b[i] = keep(p, a, PAGE * (uint64_t)i, PAGE);
	CHECK_EQ(idle_pool_count(p), 2);
	CHECK(!is_open(&b[0]));
	CHECK(is_open(&b[1]) && is_open(&b[2]));
	/* The newest first. */
	CHECK_EQ(idle_pool_take(p, a, PAGE, 0, &off), b[2].fd);
	CHECK_EQ(off, PAGE * 2);
	close(b[2].fd);
	idle_pool_drop(p);
	CHECK_EQ(idle_pool_count(p), 0);
	CHECK(!is_open(&b[1]));
	struct buf last = keep(p, a, PAGE * 5, PAGE);
	idle_pool_free(p);
	CHECK(!is_open(&last));
	for (int i = 0; i < 3; i++)
		buf_done(&b[i]);
	buf_done(&last);
	event_base_free(base);
}

/* Unused for idle_ms: all closed by the loop. */
static void test_idle_timeout(void)
{
	struct event_base *base = event_base_new();
	_cleanup_allocator_ struct allocator *a = NULL;
	struct idle_pool *p = idle_pool_new(base, 4, 20);

	CHECK_EQ(allocator_new(PAGE * 4, PAGE, &a), 0);
	struct buf b = keep(p, a, 0, PAGE);
	CHECK_EQ(event_base_loop(base, EVLOOP_ONCE), 0); /* the timer fires */
	CHECK_EQ(idle_pool_count(p), 0);
	CHECK(!is_open(&b));
	buf_done(&b);
	idle_pool_free(p);
	event_base_free(base);
}

/* Off (0) or without a pool: nothing kept, the fd closed at once. */
static void test_off(void)
{
	struct event_base *base = event_base_new();
	struct idle_pool *p = idle_pool_new(base, 0, 1000);
	uint64_t off;

	CHECK(p == NULL);
	struct buf b = buf_new();
	idle_pool_put(p, 0, PAGE, b.fd);
	CHECK(!is_open(&b));
	CHECK_EQ(idle_pool_take(p, NULL, PAGE, 0, &off), -ENOENT);
	CHECK_EQ(idle_pool_count(p), 0);
	idle_pool_drop(p);
	CHECK(idle_pool_free(p) == NULL);
	buf_done(&b);
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_take_same_size);
	RUN(test_window_carved);
	RUN(test_bounded);
	RUN(test_idle_timeout);
	RUN(test_off);
	return UNIT_END();
}

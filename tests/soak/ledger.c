// SPDX-License-Identifier: MIT
/*
 * The exclusivity ledger: every live reference to a window that the soak
 * or one of its children holds, with the device range the broker said it
 * covers. barkeepd lends a range to one window at a time and keeps a
 * released window out of use while any copy of its dma-buf is open, so
 * two spans of different windows on one device never overlap.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/soak/soak.h"

struct span {
	uint32_t dev;
	bool live;
	uint64_t off, size, key;
	pid_t child; /* holder process, SPAN_CHILD_NONE: this one */
	int64_t ended_ms; /* when it stopped being live */
};

static struct span *spans;
static size_t n_spans, cap_spans, n_live;
static uint64_t last_key;

uint64_t ledger_new_key(void)
{
	return ++last_key;
}

/* A child whose fds are closed may not be reaped yet: exited or dying
 * (zombie) counts as gone. */
static bool child_gone(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 40; i++) {
		f = fopen(path, "re");
		if (!f)
			return true;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		const char *p = strrchr(buf, ')');
		if (!p || p[1] == 0 || p[2] == 'Z' || p[2] == 'X')
			return true;
		usleep(5000);
	}
	return false;
}

static bool overlap(const struct span *a, uint32_t dev, uint64_t off, uint64_t size)
{
	return a->live && a->dev == dev && off < a->off + a->size && a->off < off + size;
}

int ledger_add(uint32_t dev, uint64_t off, uint64_t size, uint64_t key, pid_t child)
{
	size_t slot = n_spans;
	int64_t now = soak_now_ms();

	stats.overlap_checks++;
	for (size_t i = 0; i < n_spans; i++) {
		struct span *s = &spans[i];
		if (!s->live) {
			if (now - s->ended_ms >= LEDGER_KEEP_MS)
				slot = slot == n_spans ? i : slot;
			continue;
		}
		if (s->key == key || !overlap(s, dev, off, size))
			continue;
		if (s->child != SPAN_CHILD_NONE && child_gone(s->child))
			continue; /* its fds are closed; children_reap() drops it */
		soak_violation("exclusivity",
			       "device %" PRIu32 " range %#" PRIx64 "+%#" PRIx64 " (window %" PRIu64
			       ") overlaps %#" PRIx64 "+%#" PRIx64 " (window %" PRIu64 ", held by %s %d)",
			       dev, off, size, key, s->off, s->size, s->key,
			       s->child ? "child" : "this process", (int)s->child);
	}
	if (slot == n_spans) {
		if (n_spans == cap_spans) {
			size_t cap = cap_spans ? cap_spans * 2 : 1024;
			struct span *p = realloc(spans, cap * sizeof(*p));
			if (!p) {
				perror("soak: realloc");
				exit(EXIT_FAILURE);
			}
			spans = p;
			cap_spans = cap;
		}
		n_spans++;
	}
	spans[slot] = (struct span){ .dev = dev, .live = true, .off = off, .size = size,
				     .key = key, .child = child };
	n_live++;
	return (int)slot;
}

void ledger_drop(int handle)
{
	if (handle < 0 || (size_t)handle >= n_spans || !spans[handle].live)
		return;
	spans[handle].live = false;
	spans[handle].ended_ms = soak_now_ms();
	n_live--;
}

void ledger_drop_child(pid_t child)
{
	for (size_t i = 0; i < n_spans; i++)
		if (spans[i].live && spans[i].child == child)
			ledger_drop((int)i);
}

size_t ledger_live(void)
{
	return n_live;
}

void ledger_drop_device(uint32_t dev)
{
	for (size_t i = 0; i < n_spans; i++)
		if (spans[i].live && spans[i].dev == dev)
			ledger_drop((int)i);
}

bool ledger_window(uint64_t key, uint32_t *ret_dev, uint64_t *ret_off, uint64_t *ret_size,
		   bool *ret_children)
{
	bool found = false;

	*ret_children = true;
	for (size_t i = 0; i < n_spans; i++)
		if (spans[i].live && spans[i].key == key) {
			*ret_dev = spans[i].dev;
			*ret_off = spans[i].off;
			*ret_size = spans[i].size;
			*ret_children &= spans[i].child != SPAN_CHILD_NONE;
			found = true;
		}
	return found;
}

bool ledger_window_held_at(uint64_t key, int64_t t_ms)
{
	/* A child's span ends when it is reaped, maybe long after its close. */
	for (size_t i = 0; i < n_spans; i++)
		if (spans[i].key == key && spans[i].child == SPAN_CHILD_NONE &&
		    (spans[i].live || spans[i].ended_ms >= t_ms))
			return true;
	return false;
}

bool ledger_window_ended_since(uint64_t key, int64_t since_ms, uint32_t *ret_dev, uint64_t *ret_off,
			       uint64_t *ret_size)
{
	bool found = false;

	for (size_t i = 0; i < n_spans; i++) {
		if (spans[i].key != key)
			continue;
		if (spans[i].live)
			return false;
		if (spans[i].ended_ms >= since_ms) {
			*ret_dev = spans[i].dev;
			*ret_off = spans[i].off;
			*ret_size = spans[i].size;
			found = true;
		}
	}
	return found;
}

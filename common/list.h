/* SPDX-License-Identifier: MIT */
/* Intrusive doubly-linked lists (the wl_list shape). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct list {
	struct list *prev, *next;
};

static inline void list_init(struct list *l) { l->prev = l->next = l; }
static inline bool list_empty(const struct list *l) { return l->next == l; }

static inline void list_insert_tail(struct list *head, struct list *elm)
{
	elm->prev = head->prev;
	elm->next = head;
	head->prev->next = elm;
	head->prev = elm;
}

static inline void list_remove(struct list *elm)
{
	elm->prev->next = elm->next;
	elm->next->prev = elm->prev;
	elm->prev = elm->next = elm;
}

static inline size_t list_length(const struct list *l)
{
	size_t n = 0;
	for (const struct list *e = l->next; e != l; e = e->next)
		n++;
	return n;
}

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define list_for_each(pos, head, member)                                          \
	for (pos = container_of((head)->next, __typeof__(*pos), member);           \
	     &pos->member != (head);                                               \
	     pos = container_of(pos->member.next, __typeof__(*pos), member))

/* Safe against removal of pos. */
#define list_for_each_safe(pos, tmp, head, member)                                \
	for (pos = container_of((head)->next, __typeof__(*pos), member),           \
	    tmp = container_of(pos->member.next, __typeof__(*pos), member);        \
	     &pos->member != (head);                                               \
	     pos = tmp, tmp = container_of(pos->member.next, __typeof__(*pos), member))

/* SPDX-License-Identifier: MIT */
/*
 * Internal to proto/: one description of each message's layout serves both
 * directions. A message's xfer function walks its fields once; in an
 * encoding xfer each call moves a host value into the wire struct and the
 * packet, in a decoding xfer from the packet and wire struct into the host
 * value, checking it. So encoder and decoder cannot disagree on a layout.
 *
 * The first error sticks (x->err) and turns later calls into no-ops, so an
 * xfer function reads as a plain list of fields and rules.
 */
#pragma once

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/macro.h"
#include "proto/codec.h"

struct xfer {
	bool encode;
	union {
		const uint8_t *in; /* decode */
		uint8_t *out;      /* encode */
	};
	size_t pos, end;  /* cursor and end of the payload, from the buffer start */
	const char *what; /* the message's name, for diagnostics */
	struct proto_diag *diag;
	int err;
};

/* Records the first failure (with its description); returns err. */
int xfer_fail(struct xfer *x, int err, const char *fmt, ...) _printf_(3, 4);
/* The error for a value that breaks a rule: -EINVAL encoding, -EPROTO decoding. */
int xfer_invalid(const struct xfer *x);

/*
 * The calls every message makes are inline and keep their diagnostics out
 * of line (the *_fail functions): under emulation (the test bed's TCG) each
 * call and return on the request path costs more than the work it does.
 */

/* Fails the claim of n bytes at the cursor; returns false. */
bool xfer_claim_fail(struct xfer *x, size_t n, const char *name);

/* Claims n bytes at the cursor; returns their offset, or fails. */
static inline bool xfer_claim(struct xfer *x, size_t n, const char *name, size_t *ret_pos)
{
	if (x->err)
		return false;
	if (n > x->end - x->pos)
		return xfer_claim_fail(x, n, name);
	*ret_pos = x->pos;
	x->pos += n;
	return true;
}

/* Starts a fixed-size wire struct: decoding copies it out of the packet,
 * encoding reserves its place. Returns the place for xfer_end(). */
static inline size_t xfer_begin(struct xfer *x, void *wire, size_t size)
{
	size_t place = 0;

	if (xfer_claim(x, size, "fixed part", &place) && !x->encode)
		memcpy(wire, x->in + place, size);
	return place;
}

/* Ends it: encoding copies the filled wire struct into its place. */
static inline void xfer_end(struct xfer *x, const void *wire, size_t size, size_t place)
{
	if (!x->err && x->encode)
		memcpy(x->out + place, wire, size);
}

/*
 * Field moves never fail, so they do not look at x->err: after an error
 * they move what is there (a decoding xfer_begin() that failed left the
 * wire struct zeroed, and an encoding one is never copied out), and the
 * caller's result is the error anyway. Without that branch, and inline
 * with a constant size, a run of fields is straight-line loads and stores.
 */

/* Raw bytes (the reclaim token). */
static inline void xfer_raw(struct xfer *x, void *wire, void *host, size_t size)
{
	memcpy(x->encode ? wire : host, x->encode ? host : wire, size);
}

/* Moves an integer of 1, 2, 4 or 8 bytes between wire (LE) and host order. */
static inline void xfer_int(struct xfer *x, void *wire, void *host, size_t size)
{
	const void *from = x->encode ? host : wire;
	void *to = x->encode ? wire : host;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	/* Only the fields' size is known here, so they are moved with memcpy(). */
	switch (size) {
	case 1:
		xfer_raw(x, wire, host, 1);
		break;
	case 2:
		memcpy(&v16, from, 2);
		v16 = x->encode ? htole16(v16) : le16toh(v16);
		memcpy(to, &v16, 2);
		break;
	case 4:
		memcpy(&v32, from, 4);
		v32 = x->encode ? htole32(v32) : le32toh(v32);
		memcpy(to, &v32, 4);
		break;
	case 8:
		memcpy(&v64, from, 8);
		v64 = x->encode ? htole64(v64) : le64toh(v64);
		memcpy(to, &v64, 8);
		break;
	default: /* XFER() only passes the sizes above */
		xfer_fail(x, -EINVAL, "%s has a %zu-byte integer field", x->what, size);
	}
}
#define XFER(x, wire_field, host_field)                                               \
	do {                                                                          \
		_Static_assert(sizeof(wire_field) == sizeof(host_field), #host_field); \
		_Static_assert(IS_POWER_OF_2(sizeof(host_field)) && sizeof(host_field) <= 8, \
			       #host_field);                                          \
		xfer_int((x), &(wire_field), &(host_field), sizeof(host_field));      \
	} while (0)

/* Reserved wire fields: written as 0, rejected unless 0. */
void xfer_reserved_fail(struct xfer *x, const char *name);
static inline void xfer_reserved(struct xfer *x, const void *wire, size_t size, const char *name)
{
	const uint8_t *b = wire;

	/* Encoding: the caller's wire struct starts zeroed. */
	if (x->err || x->encode)
		return;
	for (size_t i = 0; i < size; i++)
		if (b[i] != 0) {
			xfer_reserved_fail(x, name);
			return;
		}
}
#define XFER_RESERVED(x, wire_field) \
	xfer_reserved((x), &(wire_field), sizeof(wire_field), #wire_field)

/* xfer_string() without its shortcut for the empty string. */
void xfer_text(struct xfer *x, __le16 *wire_len, char *host, size_t max, const char *name);

/* A string: its length in *wire_len, its bytes appended to the tail.
 * host is NUL-terminated and has room for max + 1 bytes. */
static inline void xfer_string(struct xfer *x, __le16 *wire_len, char *host, size_t max,
			       const char *name)
{
	uint16_t len16 = 0;

	if (x->err)
		return;
	if (!x->encode)
		memcpy(&len16, wire_len, sizeof(len16));
	/* The empty string (an ALLOC without a PCI address): no bytes to
	 * claim or check, and the length is 0 both ways. */
	if (x->encode ? host[0] != '\0' : len16 != 0) {
		xfer_text(x, wire_len, host, max, name);
		return;
	}
	memset(wire_len, 0, sizeof(*wire_len));
	host[0] = '\0';
}

/* An array count: checks it against max and, decoding, against the bytes
 * left at entry_min bytes per entry. Returns false if the entries must not
 * be walked. */
bool xfer_count(struct xfer *x, __le32 *wire_count, uint32_t *count, uint32_t max,
		size_t entry_min);
/* The entries to walk: decoding allocates count zeroed ones (freed by
 * proto_msg_clear()), encoding checks the caller gave some. NULL on error. */
void *xfer_entries(struct xfer *x, void *entries, uint32_t count, size_t size);

/* Rules shared by several messages. */
void check_flags_fail(struct xfer *x, const char *name, uint64_t flags, uint64_t known);
static inline void check_flags(struct xfer *x, const char *name, uint64_t flags, uint64_t known)
{
	if (!x->err && (flags & ~known))
		check_flags_fail(x, name, flags, known);
}

void check_range_fail(struct xfer *x, const char *name, uint64_t value, uint64_t first,
		      uint64_t last);
static inline void check_range(struct xfer *x, const char *name, uint64_t value, uint64_t first,
			       uint64_t last)
{
	if (!x->err && (value < first || value > last))
		check_range_fail(x, name, value, first, last);
}

/* Image metadata, which the IMAGE flag says is there. */
void check_image_set(struct xfer *x, uint32_t flags, const struct proto_image *image);
static inline void check_image(struct xfer *x, uint32_t flags, const struct proto_image *image)
{
	_Static_assert(sizeof(*image) % 8 == 0 && sizeof(*image) == 56,
		       "no padding: the words below are the fields");
	uint64_t words[sizeof(*image) / 8], any = 0;

	memcpy(words, image, sizeof(words));
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		any |= words[i];
	/* Without the flag every field is 0: one test, the usual case. */
	if (!x->err && ((flags & PROTO_ALLOC_IMAGE) || any))
		check_image_set(x, flags, image);
}

/* Offset of the first byte that is not UTF-8 text without control
 * characters, or len if there is none. */
size_t text_invalid_at(const uint8_t *s, size_t len);

/* The per-opcode table (proto/messages.c). */
enum proto_kind { PROTO_KIND_REQUEST, PROTO_KIND_REPLY, PROTO_KIND_EVENT };

struct proto_op_info {
	uint16_t opcode;
	const char *name;
	enum proto_kind kind;
	size_t fixed_size; /* the payload's fixed part */
	bool has_tail;     /* strings or entries may follow the fixed part */
	unsigned n_fds;
	uint16_t reply;    /* requests: the success reply */
	void (*xfer)(struct xfer *x, struct proto_msg *m);
};

/*
 * The table is indexed by a slot computed from the opcode, so a lookup (a
 * few per message) is one load: the high byte (request, reply, event)
 * picks a run of 32, the low five bits the place in it, and replies with
 * bit 7 (OK, ERROR) go after the events. Two opcodes in one slot would
 * initialize it twice, which -Woverride-init refuses; one past the last
 * slot (ERROR's) exceeds the table's bounds, which does not compile either.
 */
#define PROTO_OP_SLOT(opcode) \
	(((opcode) >> 8) * 32u + ((opcode) & 0x1f) + ((opcode) & 0x80 ? 0x60 : 0))
#define PROTO_OP_SLOTS (PROTO_OP_SLOT(PROTO_OP_ERROR) + 1)

extern const struct proto_op_info proto_ops[PROTO_OP_SLOTS];

/* The opcode's table entry, or NULL. */
static inline const struct proto_op_info *proto_op_info(uint16_t opcode)
{
	size_t slot = PROTO_OP_SLOT(opcode);

	/* Empty slots have no xfer; other opcodes may share a used one. */
	if (slot >= PROTO_OP_SLOTS || !proto_ops[slot].xfer || proto_ops[slot].opcode != opcode)
		return NULL;
	return &proto_ops[slot];
}

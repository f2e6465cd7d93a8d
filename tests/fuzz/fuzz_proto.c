/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for proto_decode(): the input is one raw packet.
 *
 * The first byte picks the sender and how many fds "came with" the packet
 * (0..2): bit 0 the direction, bits 1-2 the fd count; the rest is the packet.
 * Whatever decodes must
 *   - re-encode to exactly the same bytes (the encoding is canonical: every
 *     reserved field and padding byte is 0, strings have no terminator),
 *   - not fit a buffer one byte shorter (-ENOBUFS, never an overrun),
 *   - decode again to an identical message.
 * Whatever fails must fail with a documented error, a description and no
 * entries left allocated. A broken rule aborts, which libFuzzer reports.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "proto/codec.h"
#include "tests/fuzz/fuzz.h"

static bool diag_ok(const struct proto_diag *d)
{
	return memchr(d->text, '\0', sizeof(d->text)) != NULL;
}

static bool documented_error(int r)
{
	return r == -EBADMSG || r == -EPROTONOSUPPORT || r == -EPROTO || r == -E2BIG ||
	       r == -ENOMEM;
}

/* Same message; arrays compared by content, not by where they were allocated. */
static bool msg_equal(const struct proto_msg *a, const struct proto_msg *b)
{
	struct proto_msg x = *a, y = *b;
	const void *ea = NULL, *eb = NULL;
	size_t n = 0;

	if (a->opcode != b->opcode)
		return false;
	if (a->opcode == PROTO_OP_DEVICES) {
		if (a->devices.count != b->devices.count)
			return false;
		ea = a->devices.entries, eb = b->devices.entries;
		n = a->devices.count * sizeof(*a->devices.entries);
		x.devices.entries = y.devices.entries = NULL;
	} else if (a->opcode == PROTO_OP_LEASES) {
		size_t nh = a->leases.holder_count * sizeof(*a->leases.holders);
		if (a->leases.count != b->leases.count || a->leases.holder_count != b->leases.holder_count)
			return false;
		if (nh > 0 && (!a->leases.holders || !b->leases.holders ||
			       memcmp(a->leases.holders, b->leases.holders, nh) != 0))
			return false;
		ea = a->leases.entries, eb = b->leases.entries;
		n = a->leases.count * sizeof(*a->leases.entries);
		x.leases.entries = y.leases.entries = NULL;
		x.leases.holders = y.leases.holders = NULL;
	}
	if (n > 0 && (!ea || !eb || memcmp(ea, eb, n) != 0))
		return false;
	return memcmp(&x, &y, sizeof(x)) == 0;
}

static void check_roundtrip(const uint8_t *pkt, size_t len, size_t n_fds, enum proto_sender from,
			    const struct proto_msg *m)
{
	struct proto_diag diag;
	struct proto_msg again;
	uint8_t *out;
	int r;

	FUZZ_ASSERT(n_fds == proto_op_fds(m->opcode));
	FUZZ_ASSERT(proto_op_is_request(m->opcode) == (from == PROTO_FROM_CLIENT));

	/* Exactly len bytes, on the heap, so ASan sees any write past them. */
	out = malloc(len);
	FUZZ_ASSERT(out);
	r = proto_encode(m, out, len, &diag);
	if (r < 0)
		fprintf(stderr, "re-encoding %s failed: %s\n", proto_op_name(m->opcode), diag.text);
	FUZZ_ASSERT(r >= 0 && (size_t)r == len);
	FUZZ_ASSERT(memcmp(out, pkt, len) == 0);

	r = proto_encode(m, out, len - 1, &diag);
	FUZZ_ASSERT(r == -ENOBUFS && diag_ok(&diag) && diag.text[0] != '\0');

	r = proto_encode(m, out, len, NULL);
	FUZZ_ASSERT(r >= 0 && (size_t)r == len);
	r = proto_decode(out, len, n_fds, from, &again, NULL);
	FUZZ_ASSERT(r == 0);
	FUZZ_ASSERT(msg_equal(m, &again));
	proto_msg_clear(&again);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum proto_sender from;
	struct proto_diag diag;
	struct proto_msg m;
	size_t n_fds, len;
	uint8_t *pkt;
	int r;

	if (size < 1)
		return 0;
	from = data[0] & 1 ? PROTO_FROM_SERVER : PROTO_FROM_CLIENT;
	n_fds = (data[0] >> 1 & 3) % 3;
	len = size - 1;

	/* A copy of exactly the packet's size: reads past it are caught. */
	pkt = malloc(MAX(len, (size_t)1));
	FUZZ_ASSERT(pkt);
	memcpy(pkt, data + 1, len);

	r = proto_decode(pkt, len, n_fds, from, &m, &diag);
	FUZZ_ASSERT(diag_ok(&diag));
	if (r == 0) {
		check_roundtrip(pkt, len, n_fds, from, &m);
	} else {
		FUZZ_ASSERT(documented_error(r));
		FUZZ_ASSERT(diag.text[0] != '\0');
		if (m.opcode == PROTO_OP_DEVICES)
			FUZZ_ASSERT(m.devices.entries == NULL);
		if (m.opcode == PROTO_OP_LEASES)
			FUZZ_ASSERT(m.leases.entries == NULL && m.leases.holders == NULL);
	}
	proto_msg_clear(&m);
	free(pkt);
	return 0;
}

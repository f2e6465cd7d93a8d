/* SPDX-License-Identifier: MIT */
/* The header and the public codec entry points; bodies are in messages.c. */
#include <endian.h>
#include <inttypes.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/xfer.h"

const char *proto_op_name(uint16_t opcode)
{
	const struct proto_op_info *op = proto_op_info(opcode);

	return op ? op->name : "unknown";
}

bool proto_op_is_request(uint16_t opcode)
{
	const struct proto_op_info *op = proto_op_info(opcode);

	return op && op->kind == PROTO_KIND_REQUEST;
}

bool proto_op_is_event(uint16_t opcode)
{
	const struct proto_op_info *op = proto_op_info(opcode);

	return op && op->kind == PROTO_KIND_EVENT;
}

uint16_t proto_op_reply(uint16_t request_opcode)
{
	const struct proto_op_info *op = proto_op_info(request_opcode);

	return op ? op->reply : 0;
}

unsigned proto_op_fds(uint16_t opcode)
{
	const struct proto_op_info *op = proto_op_info(opcode);

	return op ? op->n_fds : 0;
}

int proto_negotiate_version(uint16_t client_min, uint16_t client_max)
{
	uint16_t lo = MAX(client_min, (uint16_t)PROTO_VERSION_MIN);
	uint16_t hi = MIN(client_max, (uint16_t)PROTO_VERSION_MAX);

	return lo <= hi ? hi : -EPROTONOSUPPORT;
}

void proto_msg_clear(struct proto_msg *m)
{
	if (!m)
		return;
	if (m->opcode == PROTO_OP_DEVICES)
		free(m->devices.entries);
	else if (m->opcode == PROTO_OP_LEASES) {
		free(m->leases.entries);
		free(m->leases.holders);
	}
	memset(m, 0, sizeof(*m));
}

/* Request ids: chosen by the client for requests, echoed by replies, 0 on
 * events and on ERRORs that answer no request. */
static inline void check_request_id(struct xfer *x, const struct proto_op_info *op, uint32_t id)
{
	if (op->kind == PROTO_KIND_EVENT && id != 0)
		xfer_fail(x, xfer_invalid(x), "%s is an event but has request id %" PRIu32,
			  op->name, id);
	else if (op->kind != PROTO_KIND_EVENT && op->opcode != PROTO_OP_ERROR && id == 0)
		xfer_fail(x, xfer_invalid(x), "%s has request id 0, which only events use", op->name);
}

int proto_encode(const struct proto_msg *m, void *buf, size_t size, struct proto_diag *ret_diag)
{
	const struct proto_op_info *op = proto_op_info(m->opcode);
	struct proto_msg body = *m; /* xfer functions take a mutable message */
	struct xfer x = { .encode = true, .out = buf, .diag = ret_diag, .what = "message" };
	struct proto_wire_header w = {};

	if (ret_diag)
		ret_diag->text[0] = '\0';
	if (!op)
		return xfer_fail(&x, -EINVAL, "unknown opcode 0x%04x", m->opcode);
	x.what = op->name;
	check_request_id(&x, op, m->request_id);
	if (!x.err && m->quiet && !proto_may_be_quiet(op->opcode))
		xfer_fail(&x, -EINVAL, "%s cannot be QUIET", op->name);
	if (x.err)
		return x.err;
	if (size < sizeof(w))
		return xfer_fail(&x, -ENOBUFS, "%s: a %zu-byte buffer cannot hold the header",
				 op->name, size);

	x.pos = sizeof(w);
	x.end = MIN(size, (size_t)PROTO_MAX_MESSAGE);
	op->xfer(&x, &body);
	if (x.err)
		return x.err;

	w.magic = htole32(PROTO_MAGIC);
	w.version = htole16(PROTO_VERSION);
	w.opcode = htole16(op->opcode);
	w.flags = htole32((op->kind == PROTO_KIND_EVENT ? PROTO_FLAG_EVENT : 0) |
			  (m->quiet ? PROTO_FLAG_QUIET : 0));
	w.length = htole32((uint32_t)(x.pos - sizeof(w)));
	w.request_id = htole32(m->request_id);
	memcpy(buf, &w, sizeof(w));
	return (int)x.pos;
}

/* Everything the header alone decides; returns the opcode's table entry. */
static const struct proto_op_info *decode_header(struct xfer *x, size_t len, size_t n_fds,
						 enum proto_sender from, struct proto_msg *ret)
{
	struct proto_wire_header w;
	const struct proto_op_info *op;
	uint32_t flags, length, event;

	if (len < sizeof(w)) {
		xfer_fail(x, -EBADMSG, "message is %zu bytes, shorter than the %zu-byte header",
			  len, sizeof(w));
		return NULL;
	}
	if (len > PROTO_MAX_MESSAGE) {
		xfer_fail(x, -E2BIG, "message is %zu bytes, at most %d", len, PROTO_MAX_MESSAGE);
		return NULL;
	}
	memcpy(&w, x->in, sizeof(w));
	if (le32toh(w.magic) != PROTO_MAGIC) {
		xfer_fail(x, -EBADMSG, "bad magic 0x%08" PRIx32 ", expected 0x%08x (\"BARK\")",
			  le32toh(w.magic), PROTO_MAGIC);
		return NULL;
	}
	if (le16toh(w.version) != PROTO_VERSION) {
		xfer_fail(x, -EPROTONOSUPPORT, "message has version %u, this side speaks %d",
			  le16toh(w.version), PROTO_VERSION);
		return NULL;
	}
	ret->opcode = le16toh(w.opcode);
	ret->request_id = le32toh(w.request_id);
	flags = le32toh(w.flags);
	length = le32toh(w.length);

	if (length != len - sizeof(w)) {
		xfer_fail(x, -EBADMSG, "header declares a %" PRIu32 "-byte payload, the message "
			  "has %zu", length, len - sizeof(w));
		return NULL;
	}
	op = proto_op_info(ret->opcode);
	if (!op) {
		xfer_fail(x, -EPROTO, "unknown opcode 0x%04x", ret->opcode);
		return NULL;
	}
	x->what = op->name;
	if (from == PROTO_FROM_CLIENT && op->kind != PROTO_KIND_REQUEST)
		xfer_fail(x, -EPROTO, "%s (0x%04x) is not a request", op->name, op->opcode);
	if (from == PROTO_FROM_SERVER && op->kind == PROTO_KIND_REQUEST)
		xfer_fail(x, -EPROTO, "%s (0x%04x) is a request, not a reply or event", op->name,
			  op->opcode);
	check_flags(x, "header flags", flags, PROTO_FLAGS_KNOWN);
	event = op->kind == PROTO_KIND_EVENT ? PROTO_FLAG_EVENT : 0;
	if (!x->err && (flags & PROTO_FLAG_EVENT) != event)
		xfer_fail(x, -EPROTO, "%s must %shave the EVENT flag", op->name, event ? "" : "not ");
	ret->quiet = flags & PROTO_FLAG_QUIET;
	if (!x->err && ret->quiet && !proto_may_be_quiet(op->opcode))
		xfer_fail(x, -EPROTO, "%s cannot have the QUIET flag (only RELEASE, PAUSE_ACK, "
			  "REVOKE_GRANT and the ERROR answering one)", op->name);
	if (!x->err && w.reserved != 0)
		xfer_fail(x, -EPROTO, "%s header field reserved is not zero", op->name);
	check_request_id(x, op, ret->request_id);
	if (!x->err && n_fds != op->n_fds)
		xfer_fail(x, -EBADMSG, "%s came with %zu fds, it carries %u", op->name, n_fds,
			  op->n_fds);
	if (!x->err && (length < op->fixed_size || (!op->has_tail && length != op->fixed_size)))
		xfer_fail(x, -EBADMSG, "%s payload is %" PRIu32 " bytes, expected %s%zu", op->name,
			  length, op->has_tail ? "at least " : "", op->fixed_size);
	return x->err ? NULL : op;
}

int proto_decode(const void *buf, size_t len, size_t n_fds, enum proto_sender from,
		 struct proto_msg *ret, struct proto_diag *ret_diag)
{
	struct xfer x = { .in = buf, .diag = ret_diag, .what = "message" };
	const struct proto_op_info *op;
	uint16_t opcode;
	uint32_t request_id;

	memset(ret, 0, sizeof(*ret)); /* padding too: decoded messages compare with memcmp() */
	if (ret_diag)
		ret_diag->text[0] = '\0';
	op = decode_header(&x, len, n_fds, from, ret);
	if (op) {
		x.pos = sizeof(struct proto_wire_header);
		x.end = len;
		op->xfer(&x, ret);
		if (!x.err && x.pos != x.end)
			xfer_fail(&x, -EBADMSG, "%s payload has %zu bytes after its end", op->name,
				  x.end - x.pos);
	}
	if (x.err) {
		opcode = ret->opcode;
		request_id = ret->request_id;
		proto_msg_clear(ret);
		ret->opcode = opcode;
		ret->request_id = request_id;
	}
	return x.err;
}

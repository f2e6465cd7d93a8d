/* SPDX-License-Identifier: MIT */
/*
 * Each message's layout and rules, written once for both directions (see
 * xfer.h), and the table of opcodes. Field order here is wire order; the
 * rules after the fields are those of PROTOCOL.md that need no server state.
 */
#include <inttypes.h>
#include <stdint.h>

#include "proto/xfer.h"

/* The fds LEASE and OPENED carry: the table below and their n_fds field. */
#define LEASE_FDS 1
#define OPENED_FDS 1

static inline void image_fields(struct xfer *x, struct proto_wire_image *w, struct proto_image *h)
{
	XFER(x, w->fourcc, h->fourcc);
	XFER(x, w->width, h->width);
	XFER(x, w->height, h->height);
	XFER(x, w->n_planes, h->n_planes);
	XFER(x, w->modifier, h->modifier);
	for (size_t i = 0; i < PROTO_MAX_PLANES; i++) {
		XFER(x, w->offsets[i], h->offsets[i]);
		XFER(x, w->strides[i], h->strides[i]);
	}
}

static inline void lease_fields(struct xfer *x, struct proto_wire_lease *w, struct proto_lease *l)
{
	XFER(x, w->id, l->id);
	XFER(x, w->device_id, l->device_id);
	XFER(x, w->flags, l->flags);
	XFER(x, w->bar_offset, l->bar_offset);
	XFER(x, w->size, l->size);
	XFER(x, w->generation, l->generation);
	image_fields(x, &w->image, &l->image);
	xfer_raw(x, w->reclaim_token, l->reclaim_token, PROTO_TOKEN_SIZE);

	check_flags(x, "lease flags", l->flags, PROTO_LEASE_FLAGS_KNOWN);
	check_image(x, l->flags, &l->image);
}

/* A token is all zero exactly when it is not used. */
static bool token_is_zero(const uint8_t *t)
{
	uint8_t any = 0;
	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
		any |= t[i];
	return any == 0;
}

/* A lease record standing alone: an entry of LEASES, or RECLAIMED. */
static void lease_record_xfer(struct xfer *x, struct proto_lease *l)
{
	struct proto_wire_lease w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	lease_fields(x, &w, l);
	xfer_end(x, &w, sizeof(w), place);
}

static void hello_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_hello *h = &m->hello;
	struct proto_wire_hello w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.min_version, h->min_version);
	XFER(x, w.max_version, h->max_version);
	XFER_RESERVED(x, w.reserved);
	XFER(x, w.capabilities, h->capabilities);
	xfer_string(x, &w.name_len, h->name, PROTO_NAME_MAX, "client name");
	xfer_end(x, &w, sizeof(w), place);
}

static void welcome_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_welcome *h = &m->welcome;
	struct proto_wire_welcome w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.version, h->version);
	XFER(x, w.max_message_size, h->max_message_size);
	XFER(x, w.max_fds, h->max_fds);
	XFER(x, w.max_leases, h->max_leases);
	XFER(x, w.max_queued_events, h->max_queued_events);
	XFER_RESERVED(x, w.reserved);
	XFER(x, w.max_lease_bytes, h->max_lease_bytes);
	XFER(x, w.capabilities, h->capabilities);
	xfer_string(x, &w.server_name_len, h->server_name, PROTO_NAME_MAX, "server name");
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "version", h->version, PROTO_VERSION_MIN, PROTO_VERSION_MAX);
	check_range(x, "max_message_size", h->max_message_size, 1024, PROTO_MAX_MESSAGE);
	check_range(x, "max_fds", h->max_fds, 1, PROTO_MAX_FDS);
	check_range(x, "max_leases", h->max_leases, 0, PROTO_MAX_LEASES);
	check_range(x, "max_queued_events", h->max_queued_events, 1, UINT32_MAX);
}

/* LIST_DEVICES and LIST_LEASES */
static void list_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_list *h = m->opcode == PROTO_OP_LIST_DEVICES ? &m->list_devices
								  : &m->list_leases;
	struct proto_wire_list w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.flags, h->flags);
	XFER_RESERVED(x, w.reserved);
	xfer_end(x, &w, sizeof(w), place);

	check_flags(x, "flags", h->flags, m->opcode == PROTO_OP_LIST_LEASES ? PROTO_LIST_HOLDERS : 0);
}

static void device_xfer(struct xfer *x, struct proto_device *d)
{
	struct proto_wire_device w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.id, d->id);
	XFER(x, w.pci_vendor, d->pci_vendor);
	XFER(x, w.pci_device, d->pci_device);
	XFER(x, w.backend, d->backend);
	XFER(x, w.bar_index, d->bar_index);
	XFER(x, w.state, d->state);
	XFER_RESERVED(x, w.reserved0);
	XFER(x, w.bar_size, d->bar_size);
	XFER(x, w.free_bytes, d->free_bytes);
	XFER(x, w.largest_free, d->largest_free);
	XFER(x, w.generation, d->generation);
	XFER(x, w.features, d->features);
	XFER(x, w.granule, d->granule);
	XFER_RESERVED(x, w.reserved1);
	xfer_string(x, &w.pci_address_len, d->pci_address, PROTO_PCI_ADDRESS_MAX, "PCI address");
	xfer_string(x, &w.label_len, d->label, PROTO_LABEL_MAX, "label");
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "backend", d->backend, PROTO_BACKEND_VFIO, PROTO_BACKEND_SYSMEM);
	check_range(x, "state", d->state, PROTO_STATE_READY, PROTO_STATE_GONE);
	check_range(x, "BAR index", d->bar_index, 0, 5);
	check_range(x, "free_bytes", d->free_bytes, 0, d->bar_size);
	check_range(x, "largest_free", d->largest_free, 0, d->free_bytes);
}

static void devices_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_devices *h = &m->devices;
	struct proto_wire_array w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER_RESERVED(x, w.reserved);
	if (!xfer_count(x, &w.count, &h->count, PROTO_MAX_DEVICES, sizeof(struct proto_wire_device)))
		return;
	xfer_end(x, &w, sizeof(w), place);
	h->entries = xfer_entries(x, h->entries, h->count, sizeof(*h->entries));
	for (uint32_t i = 0; i < h->count && !x->err; i++)
		device_xfer(x, &h->entries[i]);
}

static void alloc_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_alloc *h = &m->alloc;
	struct proto_wire_alloc w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));
	bool by_address;

	XFER(x, w.selector, h->selector);
	XFER(x, w.device_id, h->device_id);
	XFER(x, w.flags, h->flags);
	XFER_RESERVED(x, w.reserved);
	XFER(x, w.size, h->size);
	XFER(x, w.alignment, h->alignment);
	image_fields(x, &w.image, &h->image);
	xfer_string(x, &w.pci_address_len, h->pci_address, PROTO_PCI_ADDRESS_MAX, "PCI address");
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "selector", h->selector, PROTO_SELECT_ANY, PROTO_SELECT_PCI_ADDRESS);
	check_flags(x, "flags", h->flags, PROTO_ALLOC_FLAGS_KNOWN);
	check_image(x, h->flags, &h->image);
	/* Only the selected way of naming a device may be filled in. */
	by_address = h->selector == PROTO_SELECT_PCI_ADDRESS;
	if (!x->err && by_address != (h->pci_address[0] != '\0'))
		xfer_fail(x, xfer_invalid(x), "ALLOC selector %u %s a PCI address", h->selector,
			  by_address ? "needs" : "must not have");
	if (!x->err && h->selector != PROTO_SELECT_ID && h->device_id != 0)
		xfer_fail(x, xfer_invalid(x), "ALLOC selector %u must have device_id 0, not %" PRIu32,
			  h->selector, h->device_id);
}

static void lease_reply_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_wire_lease_reply w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));
	uint32_t n_fds = LEASE_FDS;

	XFER(x, w.n_fds, n_fds);
	XFER_RESERVED(x, w.reserved);
	lease_fields(x, &w.lease, &m->lease);
	xfer_end(x, &w, sizeof(w), place);

	if (!x->err && n_fds != LEASE_FDS)
		xfer_fail(x, -EPROTO, "LEASE declares %" PRIu32 " fds, version 1 carries exactly %u",
			  n_fds, LEASE_FDS);
}

static void holder_xfer(struct xfer *x, struct proto_holder *h)
{
	struct proto_wire_holder w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.lease_id, h->lease_id);
	XFER(x, w.holder_lease_id, h->holder_lease_id);
	XFER(x, w.grant_id, h->grant_id);
	XFER(x, w.uid, h->uid);
	XFER(x, w.flags, h->flags);
	xfer_end(x, &w, sizeof(w), place);

	check_flags(x, "holder flags", h->flags, PROTO_HOLDER_FLAGS_KNOWN);
}

static void leases_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_leases *h = &m->leases;
	struct proto_wire_array w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));
	size_t lease_size = sizeof(struct proto_wire_lease), holder_size = sizeof(struct proto_wire_holder);

	if (!xfer_count(x, &w.count, &h->count, PROTO_MAX_LEASES, lease_size) ||
	    !xfer_count(x, &w.reserved, &h->holder_count, PROTO_MAX_HOLDERS, holder_size))
		return;
	if ((uint64_t)h->count * lease_size + (uint64_t)h->holder_count * holder_size >
	    x->end - x->pos) {
		xfer_fail(x, x->encode ? -ENOBUFS : -EBADMSG, "LEASES has %" PRIu32 " leases and %"
			  PRIu32 " holders, more than the %zu bytes that %s", h->count,
			  h->holder_count, x->end - x->pos, x->encode ? "fit" : "follow");
		return;
	}
	xfer_end(x, &w, sizeof(w), place);
	h->entries = xfer_entries(x, h->entries, h->count, sizeof(*h->entries));
	for (uint32_t i = 0; i < h->count && !x->err; i++)
		lease_record_xfer(x, &h->entries[i]);
	h->holders = xfer_entries(x, h->holders, h->holder_count, sizeof(*h->holders));
	for (uint32_t i = 0; i < h->holder_count && !x->err; i++)
		holder_xfer(x, &h->holders[i]);
}

static void reclaim_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_wire_reclaim w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.lease_id, m->reclaim.lease_id);
	xfer_raw(x, w.reclaim_token, m->reclaim.reclaim_token, PROTO_TOKEN_SIZE);
	xfer_end(x, &w, sizeof(w), place);
}

static void reclaimed_xfer(struct xfer *x, struct proto_msg *m)
{
	lease_record_xfer(x, &m->lease);
}

static void release_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_wire_release w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.lease_id, m->release.lease_id);
	xfer_end(x, &w, sizeof(w), place);
}

static void reset_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_reset *h = &m->reset;
	struct proto_wire_reset w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.device_id, h->device_id);
	XFER(x, w.flags, h->flags);
	XFER(x, w.grace_ms, h->grace_ms);
	XFER_RESERVED(x, w.reserved);
	xfer_end(x, &w, sizeof(w), place);

	check_flags(x, "flags", h->flags, PROTO_RESET_FLAGS_KNOWN);
	if (!x->err && (h->flags & PROTO_RESET_FORCE) && h->grace_ms != 0)
		xfer_fail(x, xfer_invalid(x), "RESET with FORCE has grace_ms %" PRIu32 ", must be 0",
			  h->grace_ms);
}

static void pause_ack_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_wire_pause_ack w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.device_id, m->pause_ack.device_id);
	XFER_RESERVED(x, w.reserved);
	XFER(x, w.generation, m->pause_ack.generation);
	xfer_end(x, &w, sizeof(w), place);
}

static void ok_xfer(_unused_ struct xfer *x, _unused_ struct proto_msg *m)
{
}

static void error_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_error *h = &m->error;
	struct proto_wire_error w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.code, h->code);
	XFER(x, w.request_opcode, h->request_opcode);
	xfer_string(x, &w.message_len, h->message, PROTO_ERROR_MESSAGE_MAX, "message");
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "code", h->code, 1, 4095);
}

static void device_pause_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_device_pause *h = &m->device_pause;
	struct proto_wire_device_pause w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.device_id, h->device_id);
	XFER(x, w.reason, h->reason);
	XFER(x, w.flags, h->flags);
	XFER(x, w.generation, h->generation);
	XFER(x, w.deadline_ms, h->deadline_ms);
	XFER_RESERVED(x, w.reserved);
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "reason", h->reason, PROTO_REASON_ADMIN, PROTO_REASON_UNPLUG);
	check_flags(x, "flags", h->flags, PROTO_PAUSE_FLAGS_KNOWN);
	if (!x->err && (h->flags & PROTO_PAUSE_FORCE) && h->deadline_ms != 0)
		xfer_fail(x, xfer_invalid(x), "DEVICE_PAUSE with FORCE has deadline_ms %" PRIu32
			  ", must be 0", h->deadline_ms);
}

static void device_resume_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_device_resume *h = &m->device_resume;
	struct proto_wire_device_resume w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.device_id, h->device_id);
	XFER(x, w.flags, h->flags);
	XFER(x, w.generation, h->generation);
	xfer_end(x, &w, sizeof(w), place);

	check_flags(x, "flags", h->flags, PROTO_RESUME_FLAGS_KNOWN);
}

static void device_gone_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_wire_device_gone w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.device_id, m->device_gone.device_id);
	XFER(x, w.reason, m->device_gone.reason);
	XFER_RESERVED(x, w.reserved);
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "reason", m->device_gone.reason, PROTO_REASON_ADMIN, PROTO_REASON_SHUTDOWN);
}

static void lease_revoked_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_lease_revoked *h = &m->lease_revoked;
	struct proto_wire_lease_revoked w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.lease_id, h->lease_id);
	XFER(x, w.device_id, h->device_id);
	XFER(x, w.reason, h->reason);
	XFER_RESERVED(x, w.reserved);
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "reason", h->reason, PROTO_REVOKE_ADMIN, PROTO_REVOKE_OWNER);
}

static void grant_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_grant *h = &m->grant;
	struct proto_wire_grant w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.lease_id, h->lease_id);
	XFER(x, w.to_id, h->to_id);
	XFER(x, w.to_kind, h->to_kind);
	XFER(x, w.flags, h->flags);
	XFER(x, w.ttl_ms, h->ttl_ms);
	XFER_RESERVED(x, w.reserved);
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "to_kind", h->to_kind, PROTO_GRANT_TO_UID, PROTO_GRANT_TO_TOKEN);
	check_flags(x, "flags", h->flags, PROTO_GRANT_FLAGS_KNOWN);
	if (!x->err && h->to_kind == PROTO_GRANT_TO_TOKEN && h->to_id != 0)
		xfer_fail(x, xfer_invalid(x), "GRANT to a TOKEN has to_id %" PRIu32 ", must be 0",
			  h->to_id);
}

static void granted_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_wire_granted w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.grant_id, m->granted.grant_id);
	XFER(x, w.lease_id, m->granted.lease_id);
	xfer_raw(x, w.token, m->granted.token, PROTO_TOKEN_SIZE);
	xfer_end(x, &w, sizeof(w), place);
}

static void open_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_open *h = &m->open;
	struct proto_wire_open w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));
	bool by_token;

	XFER(x, w.lease_id, h->lease_id);
	XFER(x, w.by, h->by);
	XFER(x, w.flags, h->flags);
	XFER_RESERVED(x, w.reserved);
	xfer_raw(x, w.token, h->token, PROTO_TOKEN_SIZE);
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "by", h->by, PROTO_OPEN_BY_LEASE, PROTO_OPEN_BY_TOKEN);
	check_flags(x, "flags", h->flags, PROTO_OPEN_FLAGS_KNOWN);
	/* Only the selected way of naming a window may be filled in. */
	by_token = h->by == PROTO_OPEN_BY_TOKEN;
	if (!x->err && by_token && h->lease_id != 0)
		xfer_fail(x, xfer_invalid(x), "OPEN by token has lease_id %" PRIu64 ", must be 0",
			  h->lease_id);
	if (!x->err && !by_token && !token_is_zero(h->token))
		xfer_fail(x, xfer_invalid(x), "OPEN by lease has a token, must be all zero");
}

static void opened_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_opened *h = &m->opened;
	struct proto_wire_opened w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));
	uint32_t n_fds = OPENED_FDS;

	XFER(x, w.n_fds, n_fds);
	XFER(x, w.owner_uid, h->owner_uid);
	XFER(x, w.shared_lease_id, h->shared_lease_id);
	XFER(x, w.grant_id, h->grant_id);
	lease_fields(x, &w.lease, &h->lease);
	xfer_end(x, &w, sizeof(w), place);

	if (!x->err && n_fds != OPENED_FDS)
		xfer_fail(x, -EPROTO, "OPENED declares %" PRIu32 " fds, it carries exactly %u",
			  n_fds, OPENED_FDS);
	if (!x->err && !(h->lease.flags & PROTO_LEASE_OPENED))
		xfer_fail(x, xfer_invalid(x), "OPENED lease flags %#" PRIx32 " lack OPENED",
			  h->lease.flags);
}

static void revoke_grant_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_wire_revoke_grant w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.grant_id, m->revoke_grant.grant_id);
	xfer_end(x, &w, sizeof(w), place);
}

static void grant_revoked_xfer(struct xfer *x, struct proto_msg *m)
{
	struct proto_grant_revoked *h = &m->grant_revoked;
	struct proto_wire_grant_revoked w = {};
	size_t place = xfer_begin(x, &w, sizeof(w));

	XFER(x, w.grant_id, h->grant_id);
	XFER(x, w.lease_id, h->lease_id);
	XFER(x, w.device_id, h->device_id);
	XFER(x, w.reason, h->reason);
	XFER_RESERVED(x, w.reserved);
	xfer_end(x, &w, sizeof(w), place);

	check_range(x, "reason", h->reason, PROTO_GRANT_REVOKED_OWNER, PROTO_GRANT_REVOKED_OWNER);
}

/* The opcode table (xfer.h): its slots are PROTO_OP_SLOT(opcode). */
#define W(name) sizeof(struct proto_wire_##name)
#define OP(op, kind, fixed_size, tail, fds, reply, fn) \
	[PROTO_OP_SLOT(PROTO_OP_##op)] = { PROTO_OP_##op, #op, PROTO_KIND_##kind, fixed_size, tail, \
				     fds, reply, fn }

const struct proto_op_info proto_ops[PROTO_OP_SLOTS] = {
	/*  opcode         kind     fixed part       tail?  fds success reply */
	OP(HELLO,         REQUEST, W(hello),         true,  0, PROTO_OP_WELCOME, hello_xfer),
	OP(LIST_DEVICES,  REQUEST, W(list),          false, 0, PROTO_OP_DEVICES, list_xfer),
	OP(ALLOC,         REQUEST, W(alloc),         true,  0, PROTO_OP_LEASE, alloc_xfer),
	OP(RELEASE,       REQUEST, W(release),       false, 0, PROTO_OP_OK, release_xfer),
	OP(LIST_LEASES,   REQUEST, W(list),          false, 0, PROTO_OP_LEASES, list_xfer),
	OP(RESET,         REQUEST, W(reset),         false, 0, PROTO_OP_OK, reset_xfer),
	OP(PAUSE_ACK,     REQUEST, W(pause_ack),     false, 0, PROTO_OP_OK, pause_ack_xfer),
	OP(GRANT,         REQUEST, W(grant),         false, 0, PROTO_OP_GRANTED, grant_xfer),
	OP(OPEN,          REQUEST, W(open),          false, 0, PROTO_OP_OPENED, open_xfer),
	OP(REVOKE_GRANT,  REQUEST, W(revoke_grant),  false, 0, PROTO_OP_OK, revoke_grant_xfer),
	OP(RECLAIM,       REQUEST, W(reclaim),       false, 0, PROTO_OP_RECLAIMED, reclaim_xfer),
	OP(WELCOME,       REPLY,   W(welcome),       true,  0, 0, welcome_xfer),
	OP(DEVICES,       REPLY,   W(array),         true,  0, 0, devices_xfer),
	OP(LEASE,         REPLY,   W(lease_reply),   false, LEASE_FDS, 0, lease_reply_xfer),
	OP(LEASES,        REPLY,   W(array),         true,  0, 0, leases_xfer),
	OP(GRANTED,       REPLY,   W(granted),       false, 0, 0, granted_xfer),
	OP(OPENED,        REPLY,   W(opened),        false, OPENED_FDS, 0, opened_xfer),
	OP(RECLAIMED,     REPLY,   W(lease),         false, 0, 0, reclaimed_xfer),
	OP(OK,            REPLY,   0,                false, 0, 0, ok_xfer),
	OP(ERROR,         REPLY,   W(error),         true,  0, 0, error_xfer),
	OP(DEVICE_PAUSE,  EVENT,   W(device_pause),  false, 0, 0, device_pause_xfer),
	OP(DEVICE_RESUME, EVENT,   W(device_resume), false, 0, 0, device_resume_xfer),
	OP(DEVICE_GONE,   EVENT,   W(device_gone),   false, 0, 0, device_gone_xfer),
	OP(LEASE_REVOKED, EVENT,   W(lease_revoked), false, 0, 0, lease_revoked_xfer),
	OP(GRANT_REVOKED, EVENT,   W(grant_revoked), false, 0, 0, grant_revoked_xfer),
};

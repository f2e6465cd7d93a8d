// SPDX-License-Identifier: MIT
/* libbarkeep: sharing a window (GRANT, OPEN, REVOKE_GRANT, holders). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "client/lib/private.h"
#include "common/hex.h"
#include "proto/codec.h"

_Static_assert(BARKEEP_TOKEN_SIZE == PROTO_TOKEN_SIZE, "one token size");

int barkeep_grant(struct barkeep *bk, const struct barkeep_grant_params *p, struct barkeep_grant *ret)
{
	struct proto_msg req = { .opcode = PROTO_OP_GRANT }, rep;

	if (!bk_shares(bk))
		return bk_fail(bk, -EOPNOTSUPP, "this broker does not share windows (no GRANT capability)");
	req.grant = (struct proto_grant){ .lease_id = p->lease_id, .to_kind = (uint16_t)p->to,
		.flags = (uint16_t)p->flags, .to_id = p->to_id, .ttl_ms = p->ttl_ms };
	if (p->flags > UINT16_MAX)
		return bk_fail(bk, -EINVAL, "unknown grant flags %#x", p->flags);
	int r = bk_request(bk, &req, &rep, NULL);
	if (r < 0)
		return r;
	*ret = (struct barkeep_grant){ .grant_id = rep.granted.grant_id };
	memcpy(ret->token, rep.granted.token, sizeof(ret->token));
	explicit_bzero(&rep, sizeof(rep));
	return 0;
}

int barkeep_open(struct barkeep *bk, const struct barkeep_open_params *p, struct barkeep_lease **ret)
{
	struct proto_msg req = { .opcode = PROTO_OP_OPEN }, rep;
	int fd = -1;

	if (!bk_shares(bk))
		return bk_fail(bk, -EOPNOTSUPP, "this broker does not share windows (no GRANT capability)");
	req.open = (struct proto_open){ .by = p->by_token ? PROTO_OPEN_BY_TOKEN : PROTO_OPEN_BY_LEASE,
		.lease_id = p->by_token ? 0 : p->lease_id,
		.flags = p->read_only ? PROTO_OPEN_READ_ONLY : 0 };
	if (p->by_token)
		memcpy(req.open.token, p->token, sizeof(req.open.token));
	int r = bk_request(bk, &req, &rep, &fd);
	explicit_bzero(&req, sizeof(req));
	if (r < 0)
		return r;
	/* A bk_lease, as barkeep_lease_free() expects, never tracked: an
	 * opened lease is not reclaimed after a restart (open it again). */
	struct bk_lease *bl = calloc(1, sizeof(*bl));
	if (!bl) {
		close(fd);
		return -ENOMEM;
	}
	struct barkeep_lease *l = &bl->pub;
	bk_from_wire_lease(l, &rep.opened.lease, fd);
	l->shared_lease_id = rep.opened.shared_lease_id;
	l->grant_id = rep.opened.grant_id;
	l->owner_uid = rep.opened.owner_uid;
	*ret = l;
	return 0;
}

int barkeep_revoke_grant(struct barkeep *bk, uint64_t grant_id)
{
	struct proto_msg req = { .opcode = PROTO_OP_REVOKE_GRANT }, rep;

	req.revoke_grant.grant_id = grant_id;
	int r = bk_request(bk, &req, &rep, NULL);
	if (r == 0)
		proto_msg_clear(&rep);
	return r;
}

int barkeep_list_holders(struct barkeep *bk, struct barkeep_holder **ret, size_t *ret_n)
{
	struct proto_msg req = { .opcode = PROTO_OP_LIST_LEASES }, rep;

	if (!bk_shares(bk))
		return bk_fail(bk, -EOPNOTSUPP, "this broker does not share windows (no GRANT capability)");
	req.list_leases.flags = PROTO_LIST_HOLDERS;
	int r = bk_request(bk, &req, &rep, NULL);
	if (r < 0)
		return r;
	uint32_t n = rep.leases.holder_count;
	struct barkeep_holder *h = calloc(n ? n : 1, sizeof(*h));
	if (!h) {
		proto_msg_clear(&rep);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct proto_holder *w = &rep.leases.holders[i];
		h[i] = (struct barkeep_holder){ w->lease_id, w->holder_lease_id, w->grant_id, w->uid,
						w->flags & PROTO_HOLDER_READ_ONLY };
	}
	proto_msg_clear(&rep);
	*ret = h;
	*ret_n = n;
	return 0;
}

void barkeep_token_format(const uint8_t token[BARKEEP_TOKEN_SIZE], char buf[BARKEEP_TOKEN_STRING_SIZE])
{
	hex_format(token, BARKEEP_TOKEN_SIZE, buf);
}

int barkeep_token_parse(const char *s, uint8_t token[BARKEEP_TOKEN_SIZE])
{
	return hex_parse(s, token, BARKEEP_TOKEN_SIZE);
}

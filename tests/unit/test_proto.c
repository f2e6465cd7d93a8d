/* SPDX-License-Identifier: MIT */
/* The protocol codec: round trips, the exact wire bytes, every rejection,
 * and packets with fds over a real SOCK_SEQPACKET socketpair. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "proto/codec.h"
#include "unit.h"
#include "tests/lib/testlib.h"

static uint8_t buf[PROTO_MAX_MESSAGE + 16];
static struct proto_device sample_devices[3];
static struct proto_lease sample_leases[PROTO_MAX_LEASES];
static struct proto_holder sample_holders[PROTO_MAX_HOLDERS];

static const struct proto_image sample_image = {
	.fourcc = 0x34325258, /* XR24 */
	.width = 1920,
	.height = 1080,
	.n_planes = 2,
	.modifier = 0x0100000000000002ull,
	.offsets = { 0, 8294400 },
	.strides = { 7680, 3840 },
};

static struct proto_lease sample_lease(uint64_t id)
{
	struct proto_lease l;

	memset(&l, 0, sizeof(l));
	l.id = id;
	l.device_id = 0x80000007;
	l.flags = PROTO_ALLOC_IMAGE | PROTO_ALLOC_WRITE_COMBINE;
	l.bar_offset = 0x8000000000001000ull;
	l.size = 0x0000000100000000ull;
	l.generation = 0xfedcba9876543210ull;
	l.image = sample_image;
	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
		l.reclaim_token[i] = (uint8_t)(0xf0 + i);
	return l;
}

static void fill_devices(void)
{
	static const char *const addresses[] = { "0000:00:03.0", "0000:00:04.0", "" };
	static const char *const labels[] = { "left GPU", "rechte GPU — Ü", "pool" };

	memset(sample_devices, 0, sizeof(sample_devices));
	for (size_t i = 0; i < ARRAY_SIZE(sample_devices); i++) {
		struct proto_device *d = &sample_devices[i];

		d->id = (uint32_t)i + 1;
		d->pci_vendor = 0x1af4;
		d->pci_device = 0x1110;
		d->backend = i == 2 ? PROTO_BACKEND_SYSMEM : PROTO_BACKEND_VFIO;
		d->bar_index = 2;
		d->state = (uint8_t)(PROTO_STATE_READY + i);
		d->granule = 4096;
		d->bar_size = 1ull << 36;
		d->free_bytes = 3ull << 34;
		d->largest_free = 1ull << 34;
		d->generation = 0x8000000000000001ull + i;
		d->features = PROTO_FEATURE_DMABUF_EXPORT | PROTO_FEATURE_DMABUF_REVOKE;
		strcpy(d->pci_address, addresses[i]);
		strcpy(d->label, labels[i]);
	}
}

/* A message of each type with every field set to a non-trivial value. */
static struct proto_msg sample(uint16_t opcode)
{
	struct proto_msg m;

	memset(&m, 0, sizeof(m));
	m.opcode = opcode;
	m.request_id = proto_op_is_event(opcode) ? 0 : 0xa1b2c3d4;
	switch (opcode) {
	case PROTO_OP_HELLO:
		m.hello = (struct proto_hello){ .min_version = 1, .max_version = 7,
						.capabilities = PROTO_CAP_PAUSE_ACK | 1ull << 63 };
		strcpy(m.hello.name, "barkeepctl");
		break;
	case PROTO_OP_WELCOME:
		m.welcome = (struct proto_welcome){
			.version = 1, .max_message_size = PROTO_MAX_MESSAGE, .max_fds = 1,
			.max_leases = 256, .max_queued_events = 1024,
			.max_lease_bytes = UINT64_MAX, .capabilities = PROTO_CAP_WATCH };
		strcpy(m.welcome.server_name, "barkeepd 0.1.0");
		break;
	case PROTO_OP_DEVICES:
		fill_devices();
		m.devices = (struct proto_devices){ ARRAY_SIZE(sample_devices), sample_devices };
		break;
	case PROTO_OP_ALLOC:
		m.alloc = (struct proto_alloc){ .selector = PROTO_SELECT_PCI_ADDRESS,
						.flags = PROTO_ALLOC_IMAGE | PROTO_ALLOC_EXCLUSIVE,
						.size = 0x123456789000ull, .alignment = 1ull << 21,
						.image = sample_image };
		strcpy(m.alloc.pci_address, "0000:00:03.0");
		break;
	case PROTO_OP_LEASE:
		m.lease = sample_lease(0x1122334455667788ull);
		break;
	case PROTO_OP_LEASES:
		for (size_t i = 0; i < 5; i++)
			sample_leases[i] = sample_lease(i + 1);
		m.leases = (struct proto_leases){ 5, sample_leases };
		break;
	case PROTO_OP_RELEASE:
		m.release.lease_id = 0x8877665544332211ull;
		break;
	case PROTO_OP_RECLAIM:
		m.reclaim.lease_id = 0x8877665544332211ull;
		for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
			m.reclaim.reclaim_token[i] = (uint8_t)(0xf0 + i);
		break;
	case PROTO_OP_RECLAIMED:
		m.lease = sample_lease(0x1122334455667788ull);
		break;
	case PROTO_OP_RESET:
		m.reset = (struct proto_reset){ .device_id = 9, .grace_ms = 2500 };
		break;
	case PROTO_OP_PAUSE_ACK:
		m.pause_ack = (struct proto_pause_ack){ .device_id = 9, .generation = 1ull << 40 };
		break;
	case PROTO_OP_ERROR:
		m.error = (struct proto_error){ .code = ENOSPC, .request_opcode = PROTO_OP_ALLOC };
		strcpy(m.error.message, "device 0000:00:03.0 has 12 MiB free; asked for 64 MiB");
		break;
	case PROTO_OP_DEVICE_PAUSE:
		m.device_pause = (struct proto_device_pause){
			.device_id = 9, .reason = PROTO_REASON_UNPLUG, .generation = 41,
			.deadline_ms = 3000 };
		break;
	case PROTO_OP_DEVICE_RESUME:
		m.device_resume = (struct proto_device_resume){
			.device_id = 9, .flags = PROTO_RESUME_CONTENTS_LOST, .generation = 42 };
		break;
	case PROTO_OP_DEVICE_GONE:
		m.device_gone = (struct proto_device_gone){ .device_id = 9,
							    .reason = PROTO_REASON_SHUTDOWN };
		break;
	case PROTO_OP_LEASE_REVOKED:
		m.lease_revoked = (struct proto_lease_revoked){
			.lease_id = 77, .device_id = 9, .reason = PROTO_REVOKE_POLICY };
		break;
	case PROTO_OP_GRANT:
		m.grant = (struct proto_grant){ .lease_id = 77, .to_kind = PROTO_GRANT_TO_GID,
			.flags = PROTO_GRANT_READ_ONLY | PROTO_GRANT_OUTLIVE_OWNER, .to_id = 1000,
			.ttl_ms = 60000 };
		break;
	case PROTO_OP_GRANTED:
		m.granted = (struct proto_granted){ .grant_id = 5, .lease_id = 77 };
		for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
			m.granted.token[i] = (uint8_t)(0x11 * i + 1);
		break;
	case PROTO_OP_OPEN:
		m.open = (struct proto_open){ .by = PROTO_OPEN_BY_TOKEN, .flags = PROTO_OPEN_READ_ONLY };
		for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
			m.open.token[i] = (uint8_t)(0x11 * i + 1);
		break;
	case PROTO_OP_OPENED:
		m.opened = (struct proto_opened){ .shared_lease_id = 77, .grant_id = 5,
			.owner_uid = 1001, .lease = sample_lease(78) };
		m.opened.lease.flags |= PROTO_LEASE_OPENED | PROTO_LEASE_READ_ONLY;
		break;
	case PROTO_OP_REVOKE_GRANT:
		m.revoke_grant.grant_id = 5;
		break;
	case PROTO_OP_GRANT_REVOKED:
		m.grant_revoked = (struct proto_grant_revoked){ .grant_id = 5, .lease_id = 78,
			.device_id = 9, .reason = PROTO_GRANT_REVOKED_OWNER };
		break;
	}
	return m;
}

static const uint16_t all_opcodes[] = {
	PROTO_OP_HELLO, PROTO_OP_LIST_DEVICES, PROTO_OP_ALLOC, PROTO_OP_RELEASE,
	PROTO_OP_LIST_LEASES, PROTO_OP_RESET, PROTO_OP_PAUSE_ACK, PROTO_OP_WELCOME,
	PROTO_OP_DEVICES, PROTO_OP_LEASE, PROTO_OP_LEASES, PROTO_OP_OK, PROTO_OP_ERROR,
	PROTO_OP_DEVICE_PAUSE, PROTO_OP_DEVICE_RESUME, PROTO_OP_DEVICE_GONE,
	PROTO_OP_LEASE_REVOKED, PROTO_OP_GRANT, PROTO_OP_GRANTED, PROTO_OP_OPEN, PROTO_OP_OPENED,
	PROTO_OP_REVOKE_GRANT, PROTO_OP_GRANT_REVOKED, PROTO_OP_RECLAIM, PROTO_OP_RECLAIMED,
};

static enum proto_sender sender_of(uint16_t opcode)
{
	return proto_op_is_request(opcode) ? PROTO_FROM_CLIENT : PROTO_FROM_SERVER;
}

static bool msg_equal(const struct proto_msg *a, const struct proto_msg *b)
{
	if (a->opcode != b->opcode || a->request_id != b->request_id)
		return false;
	if (a->opcode == PROTO_OP_DEVICES)
		return a->devices.count == b->devices.count &&
		       (a->devices.count == 0 ||
			memcmp(a->devices.entries, b->devices.entries,
			       a->devices.count * sizeof(*a->devices.entries)) == 0);
	if (a->opcode == PROTO_OP_LEASES)
		return a->leases.count == b->leases.count &&
		       (a->leases.count == 0 ||
			memcmp(a->leases.entries, b->leases.entries,
			       a->leases.count * sizeof(*a->leases.entries)) == 0) &&
		       a->leases.holder_count == b->leases.holder_count &&
		       (a->leases.holder_count == 0 ||
			memcmp(a->leases.holders, b->leases.holders,
			       a->leases.holder_count * sizeof(*a->leases.holders)) == 0);
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* Encodes m, decodes it back, and checks both agree; returns the length. */
static int roundtrip_msg(const struct proto_msg *m)
{
	struct proto_msg out;
	struct proto_diag diag;
	int len, r;

	len = proto_encode(m, buf, sizeof(buf), &diag);
	CHECK(len >= PROTO_HEADER_SIZE);
	if (len < 0) {
		fprintf(stderr, "  encode %s: %s\n", proto_op_name(m->opcode), diag.text);
		return len;
	}
	r = proto_decode(buf, (size_t)len, proto_op_fds(m->opcode), sender_of(m->opcode), &out,
			 &diag);
	CHECK_EQ(r, 0);
	if (r < 0)
		fprintf(stderr, "  decode %s: %s\n", proto_op_name(m->opcode), diag.text);
	CHECK(msg_equal(m, &out));
	proto_msg_clear(&out);
	return len;
}

static void roundtrip(uint16_t opcode)
{
	struct proto_msg m = sample(opcode);

	roundtrip_msg(&m);
}

#define ROUNDTRIP(op) \
	static void test_roundtrip_##op(void) { roundtrip(PROTO_OP_##op); }
ROUNDTRIP(HELLO)
ROUNDTRIP(WELCOME)
ROUNDTRIP(LIST_DEVICES)
ROUNDTRIP(DEVICES)
ROUNDTRIP(ALLOC)
ROUNDTRIP(LEASE)
ROUNDTRIP(RELEASE)
ROUNDTRIP(LIST_LEASES)
ROUNDTRIP(LEASES)
ROUNDTRIP(RESET)
ROUNDTRIP(PAUSE_ACK)
ROUNDTRIP(OK)
ROUNDTRIP(ERROR)
ROUNDTRIP(DEVICE_PAUSE)
ROUNDTRIP(DEVICE_RESUME)
ROUNDTRIP(DEVICE_GONE)
ROUNDTRIP(LEASE_REVOKED)
ROUNDTRIP(GRANT)
ROUNDTRIP(GRANTED)
ROUNDTRIP(OPEN)
ROUNDTRIP(OPENED)
ROUNDTRIP(REVOKE_GRANT)
ROUNDTRIP(GRANT_REVOKED)
ROUNDTRIP(RECLAIM)
ROUNDTRIP(RECLAIMED)

/* The sharing messages' own rules, and a LEASES of holders alone at its limit. */
static void test_sharing_rules(void)
{
	struct proto_msg m = sample(PROTO_OP_GRANT);
	struct proto_diag diag;

	m.grant.to_kind = PROTO_GRANT_TO_TOKEN;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), &diag), -EINVAL);
	CHECK_CONTAINS(diag.text, "GRANT to a TOKEN has to_id 1000, must be 0");
	m.grant.to_kind = 4;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	m = sample(PROTO_OP_GRANT);
	m.grant.flags = 1u << 2;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);

	m = sample(PROTO_OP_OPEN);
	m.open.lease_id = 3;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), &diag), -EINVAL);
	CHECK_CONTAINS(diag.text, "OPEN by token has lease_id 3, must be 0");
	m.open.by = PROTO_OPEN_BY_LEASE;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), &diag), -EINVAL);
	CHECK_CONTAINS(diag.text, "OPEN by lease has a token");
	memset(m.open.token, 0, sizeof(m.open.token));
	CHECK(roundtrip_msg(&m) > 0);

	m = sample(PROTO_OP_OPENED);
	m.opened.lease.flags &= ~PROTO_LEASE_OPENED;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), &diag), -EINVAL);
	CHECK_CONTAINS(diag.text, "lack OPENED");

	m = (struct proto_msg){ .opcode = PROTO_OP_LIST_LEASES, .request_id = 1 };
	m.list_leases.flags = PROTO_LIST_HOLDERS;
	CHECK(roundtrip_msg(&m) > 0);
	m.opcode = PROTO_OP_LIST_DEVICES;
	m.list_devices.flags = PROTO_LIST_HOLDERS;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);

	m = sample(PROTO_OP_LEASES);
	for (size_t i = 0; i < 3; i++)
		sample_holders[i] = (struct proto_holder){ .lease_id = 2, .holder_lease_id = 100 + i,
			.grant_id = 7, .uid = 1000 + (uint32_t)i,
			.flags = i == 1 ? PROTO_HOLDER_READ_ONLY : 0 };
	m.leases.holder_count = 3;
	m.leases.holders = sample_holders;
	CHECK(roundtrip_msg(&m) > 0);
	sample_holders[0].flags = 2;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);

	m = (struct proto_msg){ .opcode = PROTO_OP_LEASES, .request_id = 1 };
	for (size_t i = 0; i < PROTO_MAX_HOLDERS; i++)
		sample_holders[i] = (struct proto_holder){ 1, i + 2, 3, 1000, 0 };
	m.leases = (struct proto_leases){ 0, NULL, PROTO_MAX_HOLDERS, sample_holders };
	CHECK(roundtrip_msg(&m) > 0);
	/* a full lease list leaves room for only some holders */
	for (size_t i = 0; i < PROTO_MAX_LEASES; i++)
		sample_leases[i] = sample_lease(i + 1);
	m.leases = (struct proto_leases){ PROTO_MAX_LEASES, sample_leases, 300, sample_holders };
	CHECK_EQ(proto_encode(&m, buf, PROTO_MAX_MESSAGE, &diag), -ENOBUFS);
	CHECK_CONTAINS(diag.text, "LEASES has 512 leases and 300 holders");
	m.leases.holder_count = 255;
	CHECK(roundtrip_msg(&m) > 0);
}

static void test_roundtrip_alloc_selectors(void)
{
	struct proto_msg m = sample(PROTO_OP_ALLOC);

	memset(m.alloc.pci_address, 0, sizeof(m.alloc.pci_address));
	m.alloc.selector = PROTO_SELECT_ID;
	m.alloc.device_id = 3;
	roundtrip_msg(&m);
	m.alloc.selector = PROTO_SELECT_ANY;
	m.alloc.device_id = 0;
	m.alloc.flags = 0;
	memset(&m.alloc.image, 0, sizeof(m.alloc.image));
	roundtrip_msg(&m);
}

static void test_roundtrip_limits(void)
{
	struct proto_msg m = sample(PROTO_OP_LEASES);
	int len;

	/* a full LEASES reply fits in one message */
	for (size_t i = 0; i < PROTO_MAX_LEASES; i++)
		sample_leases[i] = sample_lease(i + 1);
	m.leases.count = PROTO_MAX_LEASES;
	len = roundtrip_msg(&m);
	CHECK_EQ(len, PROTO_HEADER_SIZE + 8 + PROTO_MAX_LEASES * 112);

	m.leases.count = 0;
	m.leases.entries = NULL;
	roundtrip_msg(&m);

	/* strings of the longest allowed length */
	m = sample(PROTO_OP_ERROR);
	memset(m.error.message, 'x', PROTO_ERROR_MESSAGE_MAX);
	m.error.message[PROTO_ERROR_MESSAGE_MAX] = '\0';
	roundtrip_msg(&m);
	m = sample(PROTO_OP_HELLO);
	memset(m.hello.name, 0, sizeof(m.hello.name));
	roundtrip_msg(&m);
}

static void put_le16(size_t off, uint16_t v)
{
	v = htole16(v);
	memcpy(buf + off, &v, 2);
}

static void put_le32(size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy(buf + off, &v, 4);
}

/* The exact bytes of the spec's examples: header layout, order, endianness. */
static void test_golden_release(void)
{
	static const uint8_t want[] = {
		'B', 'A', 'R', 'K', 1, 0, 0x04, 0x00,  /* magic, version, opcode */
		0, 0, 0, 0, 8, 0, 0, 0,                 /* flags, payload length */
		0xd4, 0xc3, 0xb2, 0xa1, 0, 0, 0, 0,     /* request id, reserved */
		0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* lease id */
	};
	struct proto_msg m = sample(PROTO_OP_RELEASE);
	int len = proto_encode(&m, buf, sizeof(buf), NULL);

	CHECK_EQ(len, sizeof(want));
	CHECK(memcmp(buf, want, sizeof(want)) == 0);
}

static void test_golden_hello(void)
{
	static const uint8_t want[] = {
		'B', 'A', 'R', 'K', 1, 0, 0x01, 0x00,
		0, 0, 0, 0, 19, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 0,
		1, 0, 2, 0, 3, 0, 0, 0,                 /* min, max, name_len, reserved */
		0x02, 0, 0, 0, 0, 0, 0, 0,              /* capabilities */
		'c', 't', 'l',
	};
	struct proto_msg m = { .opcode = PROTO_OP_HELLO, .request_id = 1 };
	int len;

	m.hello = (struct proto_hello){ .min_version = 1, .max_version = 2,
					.capabilities = PROTO_CAP_PAUSE_ACK, .name = "ctl" };
	len = proto_encode(&m, buf, sizeof(buf), NULL);
	CHECK_EQ(len, sizeof(want));
	CHECK(memcmp(buf, want, sizeof(want)) == 0);
}

static void test_golden_device_pause(void)
{
	static const uint8_t want[] = {
		'B', 'A', 'R', 'K', 1, 0, 0x01, 0x02,
		1, 0, 0, 0, 24, 0, 0, 0,                /* flags: EVENT */
		0, 0, 0, 0, 0, 0, 0, 0,                 /* request id 0 */
		9, 0, 0, 0, 3, 0, 0, 0,                 /* device, reason UNPLUG, flags */
		41, 0, 0, 0, 0, 0, 0, 0,                /* generation */
		0xb8, 0x0b, 0, 0, 0, 0, 0, 0,           /* deadline 3000 ms, reserved */
	};
	struct proto_msg m = sample(PROTO_OP_DEVICE_PAUSE);
	int len = proto_encode(&m, buf, sizeof(buf), NULL);

	CHECK_EQ(len, sizeof(want));
	CHECK(memcmp(buf, want, sizeof(want)) == 0);
}

/* Encodes a sample of opcode into buf; returns its length. */
static size_t encode_sample(uint16_t opcode)
{
	struct proto_msg m = sample(opcode);
	int len = proto_encode(&m, buf, sizeof(buf), NULL);

	CHECK(len > 0);
	return len > 0 ? (size_t)len : 0;
}

/* Decodes buf[0..len) and checks it fails with err, and the description. */
static void expect_reject(size_t len, size_t n_fds, enum proto_sender from, int err,
			  const char *text)
{
	struct proto_msg m;
	struct proto_diag diag;
	int r = proto_decode(buf, len, n_fds, from, &m, &diag);

	CHECK_EQ(r, err);
	CHECK(diag.text[0] != '\0');
	if (text && strcmp(diag.text, text) != 0) {
		fprintf(stderr, "  diag \"%s\", expected \"%s\"\n", diag.text, text);
		unit_case_failed = 1;
	}
	CHECK(m.devices.entries == NULL);
}

static void test_golden_reclaim(void)
{
	static const uint8_t want[] = {
		'B', 'A', 'R', 'K', 1, 0, 0x13, 0x00,
		0, 0, 0, 0, 24, 0, 0, 0,
		0xd4, 0xc3, 0xb2, 0xa1, 0, 0, 0, 0,
		0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* lease id */
		0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, /* token, as sent */
		0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
	};
	struct proto_msg m = sample(PROTO_OP_RECLAIM);
	int len = proto_encode(&m, buf, sizeof(buf), NULL);

	CHECK_EQ(len, sizeof(want));
	CHECK(memcmp(buf, want, sizeof(want)) == 0);
}

/* RECLAIMED is the LEASE record alone: the same 112 bytes, no fd. */
static void test_reclaimed_is_the_lease_record(void)
{
	static uint8_t lease[PROTO_MAX_MESSAGE];
	size_t lease_len = encode_sample(PROTO_OP_LEASE);

	memcpy(lease, buf, lease_len);
	size_t len = encode_sample(PROTO_OP_RECLAIMED);
	CHECK_EQ(len, PROTO_HEADER_SIZE + 112);
	CHECK_EQ(lease_len, len + 8);
	CHECK(memcmp(buf + PROTO_HEADER_SIZE, lease + PROTO_HEADER_SIZE + 8, 112) == 0);
}

static void test_reject_reclaim(void)
{
	static const uint32_t sizes[] = { 16, 28 }; /* short, and with bytes after its end */
	char want[64];
	size_t len;

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		encode_sample(PROTO_OP_RECLAIM);
		put_le32(12, sizes[i]);
		snprintf(want, sizeof(want), "RECLAIM payload is %u bytes, expected 24", sizes[i]);
		expect_reject(PROTO_HEADER_SIZE + sizes[i], 0, PROTO_FROM_CLIENT, -EBADMSG, want);
	}
	len = encode_sample(PROTO_OP_RECLAIM);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EPROTO, NULL);
	len = encode_sample(PROTO_OP_RECLAIMED);
	expect_reject(len, 1, PROTO_FROM_SERVER, -EBADMSG,
		      "RECLAIMED came with 1 fds, it carries 0");
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, "RECLAIMED (0x0113) is not a request");
	put_le32(PROTO_HEADER_SIZE + 12, 1u << 7); /* lease flags */
	expect_reject(len, 0, PROTO_FROM_SERVER, -EPROTO, NULL);
	/* DEVICE_GONE takes SHUTDOWN, DEVICE_PAUSE does not */
	len = encode_sample(PROTO_OP_DEVICE_GONE);
	put_le16(PROTO_HEADER_SIZE + 4, 5);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EPROTO, "DEVICE_GONE reason 5 is not in 1..4");
	len = encode_sample(PROTO_OP_DEVICE_PAUSE);
	put_le16(PROTO_HEADER_SIZE + 4, PROTO_REASON_SHUTDOWN);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EPROTO, "DEVICE_PAUSE reason 4 is not in 1..3");
}

static void test_reject_truncated_header(void)
{
	encode_sample(PROTO_OP_RELEASE);
	expect_reject(0, 0, PROTO_FROM_CLIENT, -EBADMSG, NULL);
	expect_reject(10, 0, PROTO_FROM_CLIENT, -EBADMSG,
		      "message is 10 bytes, shorter than the 24-byte header");
	expect_reject(PROTO_HEADER_SIZE - 1, 0, PROTO_FROM_CLIENT, -EBADMSG, NULL);
}

static void test_reject_lying_length(void)
{
	size_t len = encode_sample(PROTO_OP_RELEASE);

	put_le32(12, 16); /* bigger than what came */
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EBADMSG,
		      "header declares a 16-byte payload, the message has 8");
	put_le32(12, 4); /* smaller */
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EBADMSG,
		      "header declares a 4-byte payload, the message has 8");
	put_le32(12, 0xffffffff);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EBADMSG, NULL);
}

static void test_reject_wrong_payload_size(void)
{
	size_t len = encode_sample(PROTO_OP_RELEASE);

	put_le32(12, 12); /* header and packet agree, the body is too long */
	expect_reject(len + 4, 0, PROTO_FROM_CLIENT, -EBADMSG,
		      "RELEASE payload is 12 bytes, expected 8");
	len = encode_sample(PROTO_OP_ALLOC);
	put_le32(12, 20);
	expect_reject(PROTO_HEADER_SIZE + 20, 0, PROTO_FROM_CLIENT, -EBADMSG,
		      "ALLOC payload is 20 bytes, expected at least 88");
	/* bytes after the last string */
	len = encode_sample(PROTO_OP_HELLO);
	put_le32(12, (uint32_t)(len - PROTO_HEADER_SIZE + 3));
	expect_reject(len + 3, 0, PROTO_FROM_CLIENT, -EBADMSG,
		      "HELLO payload has 3 bytes after its end");
}

static void test_reject_oversized(void)
{
	encode_sample(PROTO_OP_RELEASE);
	put_le32(12, PROTO_MAX_MESSAGE + 1 - PROTO_HEADER_SIZE);
	expect_reject(PROTO_MAX_MESSAGE + 1, 0, PROTO_FROM_CLIENT, -E2BIG, NULL);
}

static void test_reject_bad_magic(void)
{
	size_t len = encode_sample(PROTO_OP_RELEASE);

	buf[0] = 'b';
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EBADMSG, NULL);
}

static void test_reject_version(void)
{
	size_t len = encode_sample(PROTO_OP_RELEASE);

	put_le16(4, 2);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTONOSUPPORT,
		      "message has version 2, this side speaks 1");
	put_le16(4, 0);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTONOSUPPORT, NULL);
}

static void test_reject_unknown_opcode(void)
{
	size_t len = encode_sample(PROTO_OP_RELEASE);
	struct proto_msg m;

	put_le16(6, 0x0042);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, "unknown opcode 0x0042");
	put_le16(6, 0x0014); /* the first request opcode not in use */
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);
	put_le16(6, 0);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);
	/* the header's opcode and request id survive for the ERROR reply */
	CHECK_EQ(proto_decode(buf, len, 0, PROTO_FROM_CLIENT, &m, NULL), -EPROTO);
	CHECK_EQ(m.request_id, 0xa1b2c3d4);
}

static void test_reject_wrong_direction(void)
{
	size_t len = encode_sample(PROTO_OP_WELCOME);

	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, "WELCOME (0x0101) is not a request");
	len = encode_sample(PROTO_OP_DEVICE_GONE);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);
	len = encode_sample(PROTO_OP_ALLOC);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EPROTO, NULL);
}

/* QUIET: bit 1 of the header flags, on the request and on its ERROR. */
static void test_quiet_flag(void)
{
	struct proto_msg m = sample(PROTO_OP_RELEASE), back;
	struct proto_diag diag;

	m.quiet = true;
	int len = proto_encode(&m, buf, sizeof(buf), NULL);
	CHECK_EQ(len, PROTO_HEADER_SIZE + 8);
	CHECK_EQ(buf[8], PROTO_FLAG_QUIET);
	CHECK_EQ(proto_decode(buf, (size_t)len, 0, PROTO_FROM_CLIENT, &back, &diag), 0);
	CHECK(back.quiet && back.release.lease_id == m.release.lease_id);

	m = (struct proto_msg){ .opcode = PROTO_OP_ERROR, .request_id = 9, .quiet = true };
	m.error.code = ENOENT;
	m.error.request_opcode = PROTO_OP_RELEASE;
	len = proto_encode(&m, buf, sizeof(buf), NULL);
	CHECK(len > 0);
	CHECK_EQ(proto_decode(buf, (size_t)len, 0, PROTO_FROM_SERVER, &back, &diag), 0);
	CHECK(back.quiet && back.request_id == 9);

	/* Only where no reply but OK could come at once. */
	m = sample(PROTO_OP_ALLOC);
	m.quiet = true;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), &diag), -EINVAL);
	CHECK(strstr(diag.text, "ALLOC cannot be QUIET") != NULL);
	size_t n = encode_sample(PROTO_OP_RESET);
	put_le32(8, PROTO_FLAG_QUIET);
	expect_reject(n, 0, PROTO_FROM_CLIENT, -EPROTO,
		      "RESET cannot have the QUIET flag (only RELEASE, PAUSE_ACK, REVOKE_GRANT and "
		      "the ERROR answering one)");
	n = encode_sample(PROTO_OP_OK);
	put_le32(8, PROTO_FLAG_QUIET);
	expect_reject(n, 0, PROTO_FROM_SERVER, -EPROTO, NULL);
	CHECK(proto_may_be_quiet(PROTO_OP_PAUSE_ACK) && proto_may_be_quiet(PROTO_OP_REVOKE_GRANT));
	CHECK(!proto_may_be_quiet(PROTO_OP_LEASE));
}

static void test_reject_unknown_flags(void)
{
	size_t len = encode_sample(PROTO_OP_RELEASE);

	put_le32(8, 1u << 5);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO,
		      "RELEASE header flags 0x20 has unknown bits 0x20");
	put_le32(8, PROTO_FLAG_EVENT); /* a request flagged as event */
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, "RELEASE must not have the EVENT flag");
	len = encode_sample(PROTO_OP_DEVICE_RESUME);
	put_le32(8, 0); /* an event without it */
	expect_reject(len, 0, PROTO_FROM_SERVER, -EPROTO, NULL);

	len = encode_sample(PROTO_OP_ALLOC);
	put_le32(PROTO_HEADER_SIZE + 8, 1u << 8);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);
	len = encode_sample(PROTO_OP_RESET);
	put_le32(PROTO_HEADER_SIZE + 4, 6);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO,
		      "RESET flags 0x6 has unknown bits 0x6");
}

static void test_reject_reserved_and_ids(void)
{
	size_t len = encode_sample(PROTO_OP_RELEASE);

	put_le32(20, 1);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);
	len = encode_sample(PROTO_OP_RELEASE);
	put_le32(16, 0);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO,
		      "RELEASE has request id 0, which only events use");
	len = encode_sample(PROTO_OP_DEVICE_GONE);
	put_le32(16, 5);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EPROTO, NULL);
	len = encode_sample(PROTO_OP_HELLO);
	put_le16(PROTO_HEADER_SIZE + 6, 1);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, "HELLO field reserved is not zero");
	len = encode_sample(PROTO_OP_DEVICE_PAUSE);
	put_le16(PROTO_HEADER_SIZE + 4, 4);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EPROTO, "DEVICE_PAUSE reason 4 is not in 1..3");
}

static void test_reject_strings(void)
{
	size_t len = encode_sample(PROTO_OP_HELLO); /* name "barkeepctl", 10 bytes */
	size_t name = PROTO_HEADER_SIZE + 16;

	put_le16(PROTO_HEADER_SIZE + 4, 60); /* past the end */
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EBADMSG,
		      "HELLO client name (60 bytes) runs past the end of the payload");
	put_le16(PROTO_HEADER_SIZE + 4, PROTO_NAME_MAX + 1);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -E2BIG,
		      "HELLO client name is 65 bytes, at most 64");

	len = encode_sample(PROTO_OP_HELLO);
	buf[name + 3] = '\0';
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO,
		      "HELLO client name has byte 0x00 at offset 3: not UTF-8 text without "
		      "control characters");
	buf[name + 3] = '\n';
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);
	buf[name + 3] = 0xc0; /* overlong lead byte */
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);
	buf[name + 9] = 0xe2; /* cut off in the middle of a character */
	buf[name + 3] = 'k';
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);

	/* strings in array entries: too long, and past the end (the last
	 * entry is 64 fixed bytes, no PCI address and the label "pool") */
	len = encode_sample(PROTO_OP_DEVICES);
	put_le16(PROTO_HEADER_SIZE + 8 + 8, PROTO_PCI_ADDRESS_MAX + 1);
	expect_reject(len, 0, PROTO_FROM_SERVER, -E2BIG,
		      "DEVICES PCI address is 33 bytes, at most 32");
	len = encode_sample(PROTO_OP_DEVICES);
	put_le16(len - 68 + 10, 60);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EBADMSG,
		      "DEVICES label (60 bytes) runs past the end of the payload");
}

static void test_text_rules(void)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "plain ascii", true }, { "Grüße", true }, { "日本", true }, { "🎉", true },
		{ "tab\there", false }, { "del\x7f", false }, { "\xc2\x85", false }, /* C1 NEL */
		{ "\xed\xa0\x80", false }, /* surrogate */ { "\xf4\x90\x80\x80", false },
		{ "\xe0\x80\xaf", false }, /* overlong */ { "\x80", false }, { "\xff", false },
	};
	struct proto_msg m = sample(PROTO_OP_HELLO);

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r;

		strcpy(m.hello.name, cases[i].s);
		r = proto_encode(&m, buf, sizeof(buf), NULL);
		if ((r > 0) != cases[i].ok) {
			fprintf(stderr, "  text case %zu: encode returned %d\n", i, r);
			unit_case_failed = 1;
		}
	}
}

static void test_reject_arrays(void)
{
	size_t len = encode_sample(PROTO_OP_DEVICES);

	put_le32(PROTO_HEADER_SIZE, 5); /* 3 entries present */
	expect_reject(len, 0, PROTO_FROM_SERVER, -EBADMSG, NULL);
	put_le32(PROTO_HEADER_SIZE, PROTO_MAX_DEVICES + 1);
	expect_reject(len, 0, PROTO_FROM_SERVER, -E2BIG, "DEVICES has 65 entries, at most 64");
	put_le32(PROTO_HEADER_SIZE, UINT32_MAX);
	expect_reject(len, 0, PROTO_FROM_SERVER, -E2BIG, NULL);

	len = encode_sample(PROTO_OP_LEASES);
	put_le32(PROTO_HEADER_SIZE, 6);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EBADMSG,
		      "LEASES declares 6 entries of at least 112 bytes, but only 560 bytes follow");
	put_le32(PROTO_HEADER_SIZE, 4);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EBADMSG, NULL);
	put_le32(PROTO_HEADER_SIZE, PROTO_MAX_LEASES + 1);
	expect_reject(len, 0, PROTO_FROM_SERVER, -E2BIG, NULL);
}

static void test_reject_fd_counts(void)
{
	size_t len = encode_sample(PROTO_OP_HELLO);

	expect_reject(len, 1, PROTO_FROM_CLIENT, -EBADMSG, "HELLO came with 1 fds, it carries 0");
	len = encode_sample(PROTO_OP_LEASE);
	expect_reject(len, 0, PROTO_FROM_SERVER, -EBADMSG, "LEASE came with 0 fds, it carries 1");
	expect_reject(len, 2, PROTO_FROM_SERVER, -EBADMSG, NULL);
	put_le32(PROTO_HEADER_SIZE, 2); /* the payload's own count */
	expect_reject(len, 1, PROTO_FROM_SERVER, -EPROTO,
		      "LEASE declares 2 fds, version 1 carries exactly 1");
}

static void test_reject_semantics(void)
{
	struct proto_msg m = sample(PROTO_OP_ALLOC);
	size_t len;

	/* selector PCI address without an address */
	m.alloc.pci_address[0] = '\0';
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	/* image metadata without the flag, or a plane that is not used */
	m = sample(PROTO_OP_ALLOC);
	m.alloc.flags &= ~PROTO_ALLOC_IMAGE;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	m = sample(PROTO_OP_ALLOC);
	m.alloc.image.strides[3] = 64;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	/* the same rules on the decoding side */
	len = encode_sample(PROTO_OP_ALLOC);
	put_le32(PROTO_HEADER_SIZE + 32 + 12, 5); /* n_planes */
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, NULL);
	len = encode_sample(PROTO_OP_ALLOC);
	put_le16(PROTO_HEADER_SIZE, PROTO_SELECT_ID);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO,
		      "ALLOC selector 1 must not have a PCI address");
	len = encode_sample(PROTO_OP_ALLOC);
	put_le32(PROTO_HEADER_SIZE + 8, 0); /* flags: the IMAGE flag gone, the metadata kept */
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO,
		      "ALLOC has image metadata without the IMAGE flag");
	/* selector PCI address whose address is empty on the wire */
	len = encode_sample(PROTO_OP_ALLOC);
	put_le16(PROTO_HEADER_SIZE + 2, 0);
	expect_reject(len, 0, PROTO_FROM_CLIENT, -EPROTO, "ALLOC selector 2 needs a PCI address");
	/* FORCE leaves no grace */
	m = sample(PROTO_OP_RESET);
	m.reset.flags = PROTO_RESET_FORCE;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	m = sample(PROTO_OP_DEVICE_PAUSE);
	m.device_pause.flags = PROTO_PAUSE_FORCE;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	m.device_pause.deadline_ms = 0;
	CHECK(proto_encode(&m, buf, sizeof(buf), NULL) > 0);
	/* ERROR needs a code */
	m = sample(PROTO_OP_ERROR);
	m.error.code = 0;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
}

static void test_encode_errors(void)
{
	struct proto_msg m = sample(PROTO_OP_HELLO);
	struct proto_diag diag;

	CHECK_EQ(proto_encode(&m, buf, 10, NULL), -ENOBUFS);
	CHECK_EQ(proto_encode(&m, buf, PROTO_HEADER_SIZE + 16 + 3, &diag), -ENOBUFS);
	CHECK(strstr(diag.text, "HELLO") != NULL);
	memset(m.hello.name, 'a', sizeof(m.hello.name)); /* no terminator */
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -E2BIG);
	m = sample(PROTO_OP_LIST_DEVICES);
	m.list_devices.flags = 1;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	m.opcode = 0x0014; /* not in use */
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	m = sample(PROTO_OP_DEVICES);
	m.devices.entries = NULL;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	m = sample(PROTO_OP_LEASES);
	m.leases.count = PROTO_MAX_LEASES + 1;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -E2BIG);
	m = sample(PROTO_OP_ALLOC);
	m.request_id = 0;
	CHECK_EQ(proto_encode(&m, buf, sizeof(buf), NULL), -EINVAL);
	m = sample(PROTO_OP_ERROR); /* an ERROR that answers no request */
	m.request_id = 0;
	CHECK(proto_encode(&m, buf, sizeof(buf), NULL) > 0);
}

static uint32_t rng_state = 0x12345678;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/*
 * Mutated and truncated packets never crash the decoder, and whatever it
 * accepts encodes back to the very same bytes (no byte goes unchecked).
 */
static void test_mutations(void)
{
	static uint8_t orig[PROTO_MAX_MESSAGE], again[PROTO_MAX_MESSAGE];
	unsigned accepted = 0, rejected = 0;

	for (size_t k = 0; k < ARRAY_SIZE(all_opcodes); k++) {
		uint16_t op = all_opcodes[k];
		size_t len = encode_sample(op);

		memcpy(orig, buf, len);
		for (unsigned iter = 0; iter < 3000; iter++) {
			struct proto_msg m;
			size_t n = len;
			int r, r2;

			memcpy(buf, orig, len);
			if (iter % 3 == 0) {
				n = rng() % (len + 1);
				if (n >= PROTO_HEADER_SIZE)
					put_le32(12, (uint32_t)(n - PROTO_HEADER_SIZE));
			} else {
				for (unsigned f = 1 + rng() % 3; f > 0; f--)
					buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
			}
			r = proto_decode(buf, n, proto_op_fds(op), sender_of(op), &m, NULL);
			if (r < 0) {
				rejected++;
				continue;
			}
			accepted++;
			r2 = proto_encode(&m, again, sizeof(again), NULL);
			CHECK_EQ(r2, n);
			CHECK(r2 < 0 || memcmp(again, buf, n) == 0);
			proto_msg_clear(&m);
		}
	}
	CHECK(accepted > 0);
	CHECK(rejected > 0);
}

static void test_op_helpers(void)
{
	CHECK(strcmp(proto_op_name(PROTO_OP_LEASE_REVOKED), "LEASE_REVOKED") == 0);
	CHECK(strcmp(proto_op_name(0x0014), "unknown") == 0);
	CHECK(strcmp(proto_op_name(0x0011), "OPEN") == 0);
	CHECK_EQ(proto_op_reply(PROTO_OP_OPEN), PROTO_OP_OPENED);
	CHECK_EQ(proto_op_reply(PROTO_OP_GRANT), PROTO_OP_GRANTED);
	CHECK_EQ(proto_op_reply(PROTO_OP_REVOKE_GRANT), PROTO_OP_OK);
	CHECK_EQ(proto_op_fds(PROTO_OP_OPENED), 1);
	CHECK(proto_op_is_event(PROTO_OP_GRANT_REVOKED));
	CHECK_EQ(proto_op_reply(PROTO_OP_HELLO), PROTO_OP_WELCOME);
	CHECK_EQ(proto_op_reply(PROTO_OP_ALLOC), PROTO_OP_LEASE);
	CHECK_EQ(proto_op_reply(PROTO_OP_PAUSE_ACK), PROTO_OP_OK);
	CHECK_EQ(proto_op_reply(PROTO_OP_OK), 0);
	CHECK_EQ(proto_op_fds(PROTO_OP_LEASE), 1);
	CHECK_EQ(proto_op_fds(PROTO_OP_ALLOC), 0);
	CHECK_EQ(proto_op_reply(PROTO_OP_RECLAIM), PROTO_OP_RECLAIMED);
	CHECK_EQ(proto_op_fds(PROTO_OP_RECLAIMED), 0);
	CHECK(strcmp(proto_op_name(PROTO_OP_RECLAIMED), "RECLAIMED") == 0);
	CHECK(proto_op_is_event(PROTO_OP_DEVICE_PAUSE));
	CHECK(!proto_op_is_event(PROTO_OP_ERROR));
	CHECK(proto_op_is_request(PROTO_OP_RESET));
	CHECK(!proto_op_is_request(PROTO_OP_WELCOME));
	/* The table is indexed by slots: a row in the wrong one, or another
	 * opcode taken for a known one sharing its slot, would show here. */
	static const uint16_t every_op[] = {
		PROTO_OP_HELLO, PROTO_OP_LIST_DEVICES, PROTO_OP_ALLOC, PROTO_OP_RELEASE,
		PROTO_OP_LIST_LEASES, PROTO_OP_RESET, PROTO_OP_PAUSE_ACK, PROTO_OP_GRANT,
		PROTO_OP_OPEN, PROTO_OP_REVOKE_GRANT, PROTO_OP_RECLAIM, PROTO_OP_WELCOME,
		PROTO_OP_DEVICES, PROTO_OP_LEASE, PROTO_OP_LEASES, PROTO_OP_OK, PROTO_OP_ERROR,
		PROTO_OP_GRANTED, PROTO_OP_OPENED, PROTO_OP_RECLAIMED, PROTO_OP_DEVICE_PAUSE,
		PROTO_OP_DEVICE_RESUME, PROTO_OP_DEVICE_GONE, PROTO_OP_LEASE_REVOKED,
		PROTO_OP_GRANT_REVOKED,
	};
	size_t known = 0;
	for (uint32_t op = 0; op <= 0xffff; op++)
		known += strcmp(proto_op_name((uint16_t)op), "unknown") != 0;
	CHECK_EQ(known, ARRAY_SIZE(every_op));
	for (size_t i = 0; i < ARRAY_SIZE(every_op); i++)
		CHECK(strcmp(proto_op_name(every_op[i]), "unknown") != 0);
}

static void test_negotiate_version(void)
{
	CHECK_EQ(proto_negotiate_version(1, 1), 1);
	CHECK_EQ(proto_negotiate_version(1, 9), 1);
	CHECK_EQ(proto_negotiate_version(0, 1), 1);
	CHECK_EQ(proto_negotiate_version(2, 9), -EPROTONOSUPPORT);
	CHECK_EQ(proto_negotiate_version(0, 0), -EPROTONOSUPPORT);
	CHECK_EQ(proto_negotiate_version(1, 0), -EPROTONOSUPPORT);
}

/* ---- sockets ------------------------------------------------------------ */

static int make_memfd(size_t size)
{
	int fd = memfd_create("test_proto", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* sendmsg() with more fds than proto_send() takes: to overflow proto_recv(). */
static int send_raw(int sock, const void *data, size_t len, const int *fds, size_t n_fds)
{
	union {
		struct cmsghdr align;
		uint8_t bytes[CMSG_SPACE(sizeof(int) * 16)];
	} control = {};
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (n_fds > 0) {
		mh.msg_control = control.bytes;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static void test_socket_lease_with_memfd(void)
{
	static uint8_t rbuf[PROTO_MAX_MESSAGE];
	struct proto_msg m = sample(PROTO_OP_LEASE), out;
	int sv[2], memfd, fds[PROTO_MAX_FDS] = { -1 };
	struct stat a, b;
	size_t n_fds = 99;
	ssize_t n;
	int len;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	memfd = make_memfd(1 << 20);
	CHECK(memfd >= 0);
	len = proto_encode(&m, buf, sizeof(buf), NULL);
	CHECK(len > 0);
	CHECK_EQ(proto_send(sv[0], buf, (size_t)len, &memfd, proto_op_fds(m.opcode)), 0);
	close(memfd); /* the receiver's copy keeps the file alive */

	n = proto_recv(sv[1], rbuf, sizeof(rbuf), fds, ARRAY_SIZE(fds), &n_fds);
	CHECK_EQ(n, len);
	CHECK_EQ(n_fds, 1);
	CHECK_EQ(proto_decode(rbuf, (size_t)n, n_fds, PROTO_FROM_SERVER, &out, NULL), 0);
	CHECK(msg_equal(&m, &out));
	CHECK(fstat(fds[0], &a) == 0 && a.st_size == 1 << 20);
	CHECK_EQ(lseek(fds[0], 0, SEEK_END), 1 << 20);
	CHECK((fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0);
	/* the same file: a second memfd would have another inode */
	memfd = make_memfd(1);
	CHECK(fstat(memfd, &b) == 0 && b.st_ino != a.st_ino);
	close(memfd);
	close(fds[0]);
	close(sv[0]);
	close(sv[1]);
}

static void test_socket_extra_fds_closed(void)
{
	static uint8_t rbuf[PROTO_MAX_MESSAGE];
	int sv[2], two[2], fds[4];
	size_t len = encode_sample(PROTO_OP_LEASE), n_fds;
	int before, after;
	ssize_t n;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	before = test_count_fds(0);
	two[0] = make_memfd(4096);
	two[1] = make_memfd(4096);

	/* a receiver that takes at most one fd refuses the packet */
	CHECK_EQ(proto_send(sv[0], buf, len, two, 2), 0);
	n = proto_recv(sv[1], rbuf, sizeof(rbuf), fds, 1, &n_fds);
	CHECK_EQ(n, -ETOOMANYREFS);
	CHECK_EQ(n_fds, 0);

	/* one that takes more hands them to the decoder, which refuses them */
	CHECK_EQ(proto_send(sv[0], buf, len, two, 2), 0);
	n = proto_recv(sv[1], rbuf, sizeof(rbuf), fds, ARRAY_SIZE(fds), &n_fds);
	CHECK_EQ(n, (ssize_t)len);
	CHECK_EQ(n_fds, 2);
	if (n > 0) {
		struct proto_msg m;

		CHECK_EQ(proto_decode(rbuf, (size_t)n, n_fds, PROTO_FROM_SERVER, &m, NULL),
			 -EBADMSG);
		proto_close_fds(fds, n_fds);
	}
	close(two[0]);
	close(two[1]);
	after = test_count_fds(0);
	CHECK_EQ(after, before);
	close(sv[0]);
	close(sv[1]);
}

static void test_socket_truncation_closes_fds(void)
{
	static uint8_t rbuf[64];
	int sv[2], many[12], fds[1];
	size_t len = encode_sample(PROTO_OP_LEASE), n_fds;
	int before;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	before = test_count_fds(0);
	for (size_t i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = make_memfd(1);

	/* a packet larger than the buffer: MSG_TRUNC */
	CHECK_EQ(proto_send(sv[0], buf, len, many, 1), 0);
	CHECK_EQ(proto_recv(sv[1], rbuf, sizeof(rbuf), fds, 1, &n_fds), -EMSGSIZE);
	/* more fds than the control buffer holds: MSG_CTRUNC */
	CHECK_EQ(send_raw(sv[0], buf, 40, many, ARRAY_SIZE(many)), 0);
	CHECK_EQ(proto_recv(sv[1], rbuf, sizeof(rbuf), fds, 1, &n_fds), -ETOOMANYREFS);
	/* an empty packet with an fd reads as end of stream, fd closed */
	CHECK_EQ(proto_send(sv[0], buf, 0, many, 1), 0);
	CHECK_EQ(proto_recv(sv[1], rbuf, sizeof(rbuf), fds, 1, &n_fds), 0);

	proto_close_fds(many, ARRAY_SIZE(many));
	CHECK_EQ(test_count_fds(0), before);
	close(sv[0]);
	close(sv[1]);
}

static void test_socket_eagain_and_eof(void)
{
	static uint8_t rbuf[PROTO_MAX_MESSAGE];
	int sv[2], fds[1], fd = 0;
	size_t n_fds;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	CHECK_EQ(proto_recv(sv[1], rbuf, sizeof(rbuf), fds, 1, &n_fds), -EAGAIN);
	CHECK_EQ(proto_send(sv[0], buf, 24, &fd, PROTO_PACKET_MAX_FDS + 1), -EINVAL);
	close(sv[0]);
	CHECK_EQ(proto_recv(sv[1], rbuf, sizeof(rbuf), fds, 1, &n_fds), 0);
	CHECK_EQ(proto_send(sv[1], buf, 24, NULL, 0), -EPIPE);
	close(sv[1]);
}

/* Several packets in one call each way, in order, an fd riding with one. */
static void test_socket_many(void)
{
	static uint8_t rbuf[3][PROTO_MAX_MESSAGE];
	uint8_t a[8] = "a", b[16] = "bb", c[24] = "ccc";
	struct proto_slot slot[3];
	int sv[2];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	for (int i = 0; i < 3; i++)
		slot[i] = (struct proto_slot){ .buf = rbuf[i], .size = sizeof(rbuf[i]) };
	CHECK_EQ(proto_recv_many(sv[1], slot, 3, 1), -EAGAIN);
	struct proto_packet p[3] = { { a, sizeof(a), -EBADF }, { b, sizeof(b), sv[0] },
				     { c, sizeof(c), -EBADF } };
	CHECK_EQ(proto_send_many(sv[0], p, 2), 2);
	CHECK_EQ(proto_send_many(sv[0], p + 2, 1), 1);
	CHECK_EQ(proto_recv_many(sv[1], slot, 3, 1), 3);
	CHECK_EQ(slot[0].len, (ssize_t)sizeof(a));
	CHECK_EQ(slot[0].n_fds, 0);
	CHECK_EQ(slot[1].len, (ssize_t)sizeof(b));
	CHECK_EQ(slot[1].n_fds, 1);
	CHECK(memcmp(rbuf[2], c, sizeof(c)) == 0);
	close(slot[1].fds[0]);
	close(sv[0]);
	CHECK_EQ(proto_recv_many(sv[1], slot, 3, 1), 3);
	CHECK_EQ(slot[0].len, 0);
	close(sv[1]);
}

/* The receiver's headers are set up once: each call still gets every
 * slot's fds, a slot that carried fds before included, and refuses too
 * many. */
static void test_receiver_reused(void)
{
	struct proto_receiver *r;
	struct proto_slot *slot;
	uint8_t a[8] = "a";
	int sv[2];

	CHECK_EQ(proto_receiver_new(PROTO_RECV_MANY_MAX + 1, 1, &r), -EINVAL);
	CHECK_EQ(proto_receiver_new(2, 1, &r), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	CHECK_EQ(proto_receiver_recv(r, sv[1], &slot), -EAGAIN);
	for (int round = 0; round < 3; round++) {
		struct proto_packet p[2] = { { a, sizeof(a), sv[0] }, { a, sizeof(a), sv[0] } };
		CHECK_EQ(proto_send_many(sv[0], p, 2), 2);
		CHECK_EQ(proto_receiver_recv(r, sv[1], &slot), 2);
		for (int i = 0; i < 2; i++) {
			CHECK_EQ(slot[i].len, (ssize_t)sizeof(a));
			CHECK_EQ(slot[i].n_fds, 1);
			CHECK(memcmp(slot[i].buf, a, sizeof(a)) == 0);
			proto_close_fds(slot[i].fds, slot[i].n_fds);
		}
	}
	int two[2] = { sv[0], sv[0] };
	CHECK_EQ(proto_send(sv[0], a, sizeof(a), two, 2), 0);
	CHECK_EQ(proto_receiver_recv(r, sv[1], &slot), 1);
	CHECK_EQ(slot[0].len, -ETOOMANYREFS);
	CHECK_EQ(slot[0].n_fds, 0);
	close(sv[0]);
	CHECK_EQ(proto_receiver_recv(r, sv[1], &slot), 2);
	CHECK_EQ(slot[0].len, 0);
	close(sv[1]);
	CHECK(proto_receiver_free(r) == NULL);
}

int main(void)
{
	RUN(test_roundtrip_HELLO);
	RUN(test_roundtrip_WELCOME);
	RUN(test_roundtrip_LIST_DEVICES);
	RUN(test_roundtrip_DEVICES);
	RUN(test_roundtrip_ALLOC);
	RUN(test_roundtrip_LEASE);
	RUN(test_roundtrip_RELEASE);
	RUN(test_roundtrip_LIST_LEASES);
	RUN(test_roundtrip_LEASES);
	RUN(test_roundtrip_RESET);
	RUN(test_roundtrip_PAUSE_ACK);
	RUN(test_roundtrip_OK);
	RUN(test_roundtrip_ERROR);
	RUN(test_roundtrip_DEVICE_PAUSE);
	RUN(test_roundtrip_DEVICE_RESUME);
	RUN(test_roundtrip_DEVICE_GONE);
	RUN(test_roundtrip_LEASE_REVOKED);
	RUN(test_roundtrip_RECLAIM);
	RUN(test_roundtrip_RECLAIMED);
	RUN(test_roundtrip_GRANT);
	RUN(test_roundtrip_GRANTED);
	RUN(test_roundtrip_OPEN);
	RUN(test_roundtrip_OPENED);
	RUN(test_roundtrip_REVOKE_GRANT);
	RUN(test_roundtrip_GRANT_REVOKED);
	RUN(test_sharing_rules);
	RUN(test_roundtrip_alloc_selectors);
	RUN(test_roundtrip_limits);
	RUN(test_golden_release);
	RUN(test_quiet_flag);
	RUN(test_golden_hello);
	RUN(test_golden_device_pause);
	RUN(test_golden_reclaim);
	RUN(test_reclaimed_is_the_lease_record);
	RUN(test_reject_reclaim);
	RUN(test_reject_truncated_header);
	RUN(test_reject_lying_length);
	RUN(test_reject_wrong_payload_size);
	RUN(test_reject_oversized);
	RUN(test_reject_bad_magic);
	RUN(test_reject_version);
	RUN(test_reject_unknown_opcode);
	RUN(test_reject_wrong_direction);
	RUN(test_reject_unknown_flags);
	RUN(test_reject_reserved_and_ids);
	RUN(test_reject_strings);
	RUN(test_text_rules);
	RUN(test_reject_arrays);
	RUN(test_reject_fd_counts);
	RUN(test_reject_semantics);
	RUN(test_encode_errors);
	RUN(test_mutations);
	RUN(test_op_helpers);
	RUN(test_negotiate_version);
	RUN(test_socket_lease_with_memfd);
	RUN(test_socket_extra_fds_closed);
	RUN(test_socket_truncation_closes_fds);
	RUN(test_socket_eagain_and_eof);
	RUN(test_socket_many);
	RUN(test_receiver_reused);
	return UNIT_END();
}

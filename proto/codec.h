/* SPDX-License-Identifier: MIT */
/*
 * The one codec for the barkeep protocol, used by barkeepd and libbarkeep.
 *
 * A message is a struct proto_msg: the opcode, the request id and one body
 * of the union, all in host byte order with NUL-terminated strings.
 * proto_encode() turns it into a packet, proto_decode() validates a packet
 * completely and turns it back; proto_send()/proto_recv() move one packet
 * and its fds over an AF_UNIX SOCK_SEQPACKET socket.
 *
 * Functions return 0 (or a length) on success and a negative errno on
 * failure; they never log and keep no global state. Where a description
 * of a failure helps, it is written into a caller's struct proto_diag.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"
#include "proto/proto.h"

/* One sentence saying exactly what was wrong, e.g.
 * "ALLOC payload is 20 bytes, expected at least 88". */
#define PROTO_DIAG_MAX 160
struct proto_diag {
	char text[PROTO_DIAG_MAX];
};

/* Who sent a message: proto_decode() accepts only requests from a client
 * and only replies and events from a server. */
enum proto_sender { PROTO_FROM_CLIENT, PROTO_FROM_SERVER };

/* ---- message bodies (host order) ---------------------------------------- */

struct proto_image {
	uint32_t fourcc;   /* DRM fourcc */
	uint32_t width, height;
	uint32_t n_planes; /* 1..PROTO_MAX_PLANES, 0 when not an image */
	uint64_t modifier; /* DRM format modifier */
	uint32_t offsets[PROTO_MAX_PLANES]; /* bytes from the start of the lease */
	uint32_t strides[PROTO_MAX_PLANES];
};

struct proto_hello {
	uint16_t min_version, max_version;
	uint64_t capabilities; /* PROTO_CAP_* */
	char name[PROTO_NAME_MAX + 1];
};

struct proto_welcome {
	uint16_t version; /* the chosen one */
	uint32_t max_message_size;
	uint32_t max_fds;
	uint32_t max_leases;        /* per client, <= PROTO_MAX_LEASES */
	uint32_t max_queued_events; /* per client */
	uint64_t max_lease_bytes;   /* per client, all devices; UINT64_MAX = no limit */
	uint64_t capabilities;
	char server_name[PROTO_NAME_MAX + 1];
};

struct proto_list {
	uint32_t flags; /* must be 0 in v1 */
};

struct proto_device {
	uint32_t id;
	uint16_t pci_vendor, pci_device;
	uint8_t backend;   /* enum proto_backend */
	uint8_t bar_index;
	uint8_t state;     /* enum proto_state */
	uint32_t granule;  /* allocation unit and smallest alignment, bytes */
	uint64_t bar_size;
	uint64_t free_bytes;
	uint64_t largest_free;
	uint64_t generation;
	uint64_t features; /* PROTO_FEATURE_* */
	char pci_address[PROTO_PCI_ADDRESS_MAX + 1]; /* "" for non-PCI backends */
	char label[PROTO_LABEL_MAX + 1];
};

/* Arrays: proto_decode() allocates entries (free with proto_msg_clear());
 * for proto_encode() the caller points entries at its own array. */
struct proto_devices {
	uint32_t count;
	struct proto_device *entries;
};

struct proto_alloc {
	uint16_t selector;  /* enum proto_selector */
	uint32_t device_id; /* PROTO_SELECT_ID, else 0 */
	char pci_address[PROTO_PCI_ADDRESS_MAX + 1]; /* PROTO_SELECT_PCI_ADDRESS, else "" */
	uint32_t flags;     /* PROTO_ALLOC_* */
	uint64_t size;
	uint64_t alignment; /* 0 = the device's granule, else a power of two */
	struct proto_image image; /* all zero unless PROTO_ALLOC_IMAGE */
};

struct proto_lease {
	uint64_t id;
	uint32_t device_id;
	uint32_t flags; /* PROTO_ALLOC_* as granted */
	uint64_t bar_offset;
	uint64_t size;
	uint64_t generation; /* the device generation the lease was created in */
	struct proto_image image;
	uint8_t reclaim_token[PROTO_TOKEN_SIZE];
};

/* Who opened one of the caller's leases (LIST_LEASES with PROTO_LIST_HOLDERS). */
struct proto_holder {
	uint64_t lease_id;        /* the caller's lease */
	uint64_t holder_lease_id; /* the holder's own lease */
	uint64_t grant_id;
	uint32_t uid;
	uint32_t flags; /* PROTO_HOLDER_* */
};

struct proto_leases {
	uint32_t count;
	struct proto_lease *entries;
	uint32_t holder_count; /* 0 unless PROTO_LIST_HOLDERS was asked for */
	struct proto_holder *holders;
};

struct proto_release {
	uint64_t lease_id;
};

struct proto_reclaim {
	uint64_t lease_id;
	uint8_t reclaim_token[PROTO_TOKEN_SIZE]; /* from the lease record */
};

struct proto_reset {
	uint32_t device_id;
	uint32_t flags;    /* PROTO_RESET_* */
	uint32_t grace_ms; /* 0 = the server's default */
};

struct proto_pause_ack {
	uint32_t device_id;
	uint64_t generation; /* from DEVICE_PAUSE */
};

struct proto_grant {
	uint64_t lease_id;
	uint16_t to_kind; /* enum proto_grant_to */
	uint16_t flags;   /* PROTO_GRANT_* */
	uint32_t to_id;   /* uid or gid; 0 for TOKEN */
	uint32_t ttl_ms;  /* 0: no expiry */
};

struct proto_granted {
	uint64_t grant_id;
	uint64_t lease_id;
	uint8_t token[PROTO_TOKEN_SIZE]; /* all zero unless a TOKEN grant */
};

struct proto_open {
	uint64_t lease_id; /* PROTO_OPEN_BY_LEASE, else 0 */
	uint16_t by;       /* enum proto_open_by */
	uint16_t flags;    /* PROTO_OPEN_* */
	uint8_t token[PROTO_TOKEN_SIZE]; /* PROTO_OPEN_BY_TOKEN, else zero */
};

struct proto_opened {
	uint64_t shared_lease_id; /* the owner's lease */
	uint64_t grant_id;
	uint32_t owner_uid;
	struct proto_lease lease; /* the caller's new lease (flags have PROTO_LEASE_OPENED) */
};

struct proto_revoke_grant {
	uint64_t grant_id;
};

struct proto_grant_revoked {
	uint64_t grant_id;
	uint64_t lease_id; /* the recipient's lease, which has ended */
	uint32_t device_id;
	uint16_t reason; /* enum proto_grant_revoked_reason */
};

struct proto_error {
	uint32_t code;           /* positive errno */
	uint16_t request_opcode; /* what it answers, 0 if unknown */
	char message[PROTO_ERROR_MESSAGE_MAX + 1];
};

struct proto_device_pause {
	uint32_t device_id;
	uint16_t reason; /* enum proto_reason */
	uint16_t flags;  /* PROTO_PAUSE_* */
	uint64_t generation; /* the generation being paused */
	uint32_t deadline_ms;
};

struct proto_device_resume {
	uint32_t device_id;
	uint32_t flags;      /* PROTO_RESUME_* */
	uint64_t generation; /* the new generation */
};

struct proto_device_gone {
	uint32_t device_id;
	uint16_t reason; /* enum proto_reason, SHUTDOWN included */
};

struct proto_lease_revoked {
	uint64_t lease_id;
	uint32_t device_id;
	uint16_t reason; /* enum proto_revoke_reason */
};

struct proto_msg {
	uint16_t opcode;     /* enum proto_opcode: selects the union member */
	uint32_t request_id; /* 0 on events (and on ERRORs that answer no request) */
	bool quiet;          /* header flag QUIET (proto_may_be_quiet()) */
	union {
		struct proto_hello hello;
		struct proto_welcome welcome;
		struct proto_list list_devices;
		struct proto_devices devices;
		struct proto_alloc alloc;
		struct proto_lease lease; /* LEASE (the ALLOC reply, one fd) and RECLAIMED */
		struct proto_release release;
		struct proto_list list_leases;
		struct proto_leases leases;
		struct proto_reclaim reclaim;
		struct proto_reset reset;
		struct proto_pause_ack pause_ack;
		struct proto_error error;
		struct proto_device_pause device_pause;
		struct proto_device_resume device_resume;
		struct proto_device_gone device_gone;
		struct proto_lease_revoked lease_revoked;
		struct proto_grant grant;
		struct proto_granted granted;
		struct proto_open open;
		struct proto_opened opened; /* OPENED: the OPEN reply, with one fd */
		struct proto_revoke_grant revoke_grant;
		struct proto_grant_revoked grant_revoked;
		/* OK has no body */
	};
};

/* ---- codec -------------------------------------------------------------- */

/*
 * Encodes m into buf (size bytes; PROTO_MAX_MESSAGE always suffices) after
 * checking it by the same rules proto_decode() applies. Returns the packet
 * length, or -ENOBUFS (buf too small), -E2BIG (a string or array over its
 * limit), -EINVAL (any other rule broken; unknown opcode). ret_diag may be
 * NULL. The packet must be sent with proto_op_fds(m->opcode) fds.
 */
int proto_encode(const struct proto_msg *m, void *buf, size_t size, struct proto_diag *ret_diag);

/*
 * Validates the packet buf[0..len) that arrived with n_fds fds from
 * `from` and decodes it into *ret. Checks the magic, the version, the
 * header's payload length against len, the opcode and its direction, the
 * flags, the request id, every reserved field, each payload's size, every
 * string (length, bounds, UTF-8 without control characters) and array
 * (count against limit and bytes), and that n_fds is what the message
 * declares. Returns 0 or
 *   -EBADMSG          the bytes do not parse (sizes, bounds, fd count)
 *   -EPROTONOSUPPORT  the header's version is not PROTO_VERSION
 *   -EPROTO           a value breaks the protocol (opcode, direction,
 *                     flags, reserved field, enum, request id, string text)
 *   -E2BIG            a limit is exceeded (message, string, array)
 *   -ENOMEM
 * and says why in ret_diag (may be NULL). On failure *ret is zeroed except
 * opcode and request_id, which keep the header's values when it was
 * readable, so the caller can address an ERROR reply. The fds stay the
 * caller's in every case (close them on failure). Release a decoded
 * message with proto_msg_clear().
 */
int proto_decode(const void *buf, size_t len, size_t n_fds, enum proto_sender from,
		 struct proto_msg *ret, struct proto_diag *ret_diag);

/* Frees what proto_decode() allocated (DEVICES/LEASES entries, holders) and zeroes
 * m. Accepts NULL and zeroed messages; not for messages whose arrays the
 * caller filled in. */
void proto_msg_clear(struct proto_msg *m);

/* "ALLOC", "DEVICE_PAUSE", ...; "unknown" for anything else. */
const char *proto_op_name(uint16_t opcode);
/* True for requests (client -> server). */
bool proto_op_is_request(uint16_t opcode);
/* True for events (server -> client, request id 0, PROTO_FLAG_EVENT). */
bool proto_op_is_event(uint16_t opcode);
/* True where header flag QUIET may be set: RELEASE, PAUSE_ACK and
 * REVOKE_GRANT (answered OK at once), and the ERROR answering one. */
static inline bool proto_may_be_quiet(uint16_t opcode)
{
	return opcode == PROTO_OP_RELEASE || opcode == PROTO_OP_PAUSE_ACK ||
	       opcode == PROTO_OP_REVOKE_GRANT || opcode == PROTO_OP_ERROR;
}
/* The success reply to a request (ERROR can always come instead), 0 if
 * the opcode is not a request. */
uint16_t proto_op_reply(uint16_t request_opcode);
/* How many fds ride with a message of this opcode (1 for LEASE and OPENED, else 0). */
unsigned proto_op_fds(uint16_t opcode);

/*
 * The version negotiation rule of PROTOCOL.md: the highest version in both
 * the client's [min, max] and [PROTO_VERSION_MIN, PROTO_VERSION_MAX].
 * Returns it, or -EPROTONOSUPPORT if the ranges do not overlap (or min >
 * max).
 */
int proto_negotiate_version(uint16_t client_min, uint16_t client_max);

/* ---- packets on a SOCK_SEQPACKET socket ---------------------------------- */

/* The most fds one packet carries at this layer: more than any message
 * declares (proto_op_fds()), so that a receiver can see and close every
 * extra fd a peer attached, and a test can attach some. */
#define PROTO_PACKET_MAX_FDS 8

/*
 * Sends the packet buf[0..len) with n_fds fds attached (SCM_RIGHTS,
 * MSG_NOSIGNAL); n_fds should be proto_op_fds() of the message. The fds
 * stay the caller's. Returns 0, -EAGAIN (would block, or interrupted: try
 * again), -EINVAL (more than PROTO_PACKET_MAX_FDS fds), or the sendmsg()
 * errno (-EPIPE when the peer is gone).
 */
int proto_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds);

/* One packet of proto_send_many(): at most one fd (-EBADF: none). */
struct proto_packet {
	const void *buf;
	size_t len;
	int fd;
};
#define PROTO_SEND_MANY_MAX 16

/*
 * Sends packets p[0..n) in order with one sendmmsg(): the receiver is woken
 * once for all of them. Returns how many went (fewer when the socket is
 * full), -EAGAIN when none could, -EINVAL (n above PROTO_SEND_MANY_MAX) or
 * the errno as proto_send().
 */
int proto_send_many(int sock, const struct proto_packet *p, size_t n);

/*
 * Receives one packet into buf (give it PROTO_MAX_MESSAGE bytes) and up to
 * max_fds fds into fds[] (opened O_CLOEXEC; *ret_n_fds says how many).
 * With max_fds = PROTO_MAX_FDS a packet with extra fds fails here; with
 * more, proto_decode() refuses it and names the count.
 * Returns the packet length, 0 at end of stream (an empty packet counts as
 * one), -EAGAIN (nothing to read, or interrupted), -EMSGSIZE (the packet
 * was larger than size), -ETOOMANYREFS (more than max_fds fds came with
 * it), or the recvmsg() errno. Unless it returns a positive length, no
 * received fd is left open.
 */
ssize_t proto_recv(int sock, void *buf, size_t size, int *fds, size_t max_fds,
		   size_t *ret_n_fds);
/* The same with recvmsg() flags: MSG_DONTWAIT reads a blocking socket
 * without waiting. */
ssize_t proto_recv_flags(int sock, int flags, void *buf, size_t size, int *fds, size_t max_fds,
			 size_t *ret_n_fds);

/* One packet of proto_recv_many(). */
struct proto_slot {
	void *buf;   /* in: room for size bytes (PROTO_MAX_MESSAGE) */
	size_t size;
	ssize_t len; /* out: as proto_recv() returns for one packet */
	int fds[PROTO_PACKET_MAX_FDS];
	size_t n_fds;
};
#define PROTO_RECV_MANY_MAX 16

/*
 * Receives up to n packets with one recvmmsg(), each as proto_recv() does
 * (max_fds at most PROTO_PACKET_MAX_FDS). Returns how many slots were
 * filled (what was there: fewer than n means the socket was empty),
 * -EAGAIN when nothing was, or -errno. After end of stream, every later
 * slot says so too. A blocking socket waits for the first packet only.
 */
int proto_recv_many(int sock, struct proto_slot *s, size_t n, size_t max_fds);

/*
 * proto_recv_many() into buffers of its own, with the recvmmsg() headers
 * set up once rather than per call: for a loop reading every wake-up.
 * n packets (at most PROTO_RECV_MANY_MAX) of PROTO_MAX_MESSAGE bytes.
 */
struct proto_receiver;
int proto_receiver_new(size_t n, size_t max_fds, struct proto_receiver **ret);
struct proto_receiver *proto_receiver_free(struct proto_receiver *r);
/* As proto_recv_many(); the packets are in (*ret_slots)[0..returned),
 * valid until the next call. */
int proto_receiver_recv(struct proto_receiver *r, int sock, struct proto_slot **ret_slots);

/* Closes fds[0..n) (for fds that came with a message that failed to decode).
 * Inline: receivers call it for every packet, which mostly has none. */
static inline void proto_close_fds(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		safe_close(fds[i]);
}

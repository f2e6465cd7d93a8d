/* SPDX-License-Identifier: MIT */
/*
 * barkeep wire protocol, version 1: constants and on-wire layouts.
 * proto/PROTOCOL.md is the specification; this header must agree with it.
 *
 * Every multi-byte field is little-endian (__le16/__le32/__le64). The codec
 * never casts a packet to these structs: it memcpy()s them in and out and
 * converts each field with le*toh()/htole*() (proto/xfer.c). Each struct is
 * laid out without implicit padding; the _Static_asserts pin the sizes the
 * spec's offset tables give.
 */
#pragma once

#include <linux/types.h>

/* ---- framing ----------------------------------------------------------- */

#define PROTO_MAGIC 0x4b524142u /* the bytes "BARK" on the wire */
#define PROTO_VERSION 1         /* the only version this codec speaks */
#define PROTO_VERSION_MIN 1
#define PROTO_VERSION_MAX 1

/* Header flags. Every other bit is reserved and rejected. */
#define PROTO_FLAG_EVENT (1u << 0) /* set exactly on event messages */
/* Capability QUIET: on RELEASE, PAUSE_ACK or REVOKE_GRANT, "answer only a
 * failure"; on the ERROR that answers such a request, says so. */
#define PROTO_FLAG_QUIET (1u << 1)
#define PROTO_FLAGS_KNOWN (PROTO_FLAG_EVENT | PROTO_FLAG_QUIET)

/* ---- limits (v1) ------------------------------------------------------- */

#define PROTO_MAX_MESSAGE 65536       /* header + payload, bytes */
#define PROTO_MAX_FDS 1               /* fds on one message */
#define PROTO_NAME_MAX 64             /* client and server names, bytes */
#define PROTO_PCI_ADDRESS_MAX 32      /* "0000:00:03.0" and longer domains */
#define PROTO_LABEL_MAX 64            /* device labels */
#define PROTO_ERROR_MESSAGE_MAX 256   /* ERROR message text */
#define PROTO_MAX_DEVICES 64          /* entries in one DEVICES reply */
#define PROTO_MAX_LEASES 512          /* entries in one LEASES reply */
#define PROTO_MAX_PLANES 4            /* image planes */
#define PROTO_TOKEN_SIZE 16           /* reclaim and grant tokens, bytes (128 bits) */
#define PROTO_MAX_HOLDERS 2047        /* holder entries in one LEASES reply */

/* ---- opcodes ----------------------------------------------------------- */

enum proto_opcode {
	/* requests, client -> server: 0x0001-0x00ff */
	PROTO_OP_HELLO = 0x0001,
	PROTO_OP_LIST_DEVICES = 0x0002,
	PROTO_OP_ALLOC = 0x0003,
	PROTO_OP_RELEASE = 0x0004,
	PROTO_OP_LIST_LEASES = 0x0005,
	PROTO_OP_RESET = 0x0006,
	PROTO_OP_PAUSE_ACK = 0x0007,
	/* sharing, with capability GRANT in effect */
	PROTO_OP_GRANT = 0x0010,
	PROTO_OP_OPEN = 0x0011,
	PROTO_OP_REVOKE_GRANT = 0x0012,
	PROTO_OP_RECLAIM = 0x0013, /* capability RECLAIM: take a lease back after a restart */

	/* replies, server -> client: 0x0100-0x01ff */
	PROTO_OP_WELCOME = 0x0101,      /* answers HELLO */
	PROTO_OP_DEVICES = 0x0102,      /* answers LIST_DEVICES */
	PROTO_OP_LEASE = 0x0103,        /* answers ALLOC, carries the fd */
	PROTO_OP_LEASES = 0x0105,       /* answers LIST_LEASES */
	PROTO_OP_OK = 0x0180,           /* answers RELEASE, RESET, PAUSE_ACK */
	PROTO_OP_ERROR = 0x0181,        /* answers any request */
	PROTO_OP_GRANTED = 0x0110,      /* answers GRANT */
	PROTO_OP_OPENED = 0x0111,       /* answers OPEN, carries the fd */
	PROTO_OP_RECLAIMED = 0x0113,    /* answers RECLAIM: a lease record, no fd */

	/* events, server -> client, request id 0: 0x0200-0x02ff */
	PROTO_OP_DEVICE_PAUSE = 0x0201,
	PROTO_OP_DEVICE_RESUME = 0x0202,
	PROTO_OP_DEVICE_GONE = 0x0203,
	PROTO_OP_LEASE_REVOKED = 0x0204,
	PROTO_OP_GRANT_REVOKED = 0x0210, /* with capability GRANT */
};

/* ---- field values ------------------------------------------------------ */

/* HELLO/WELCOME capabilities. Unknown bits are ignored, never rejected. */
#define PROTO_CAP_WATCH (1ull << 0)     /* device events for every device */
#define PROTO_CAP_PAUSE_ACK (1ull << 1) /* client answers DEVICE_PAUSE with PAUSE_ACK */
#define PROTO_CAP_GRANT (1ull << 8)     /* sharing: GRANT, OPEN, REVOKE_GRANT (section 6.1) */
#define PROTO_CAP_RECLAIM (1ull << 9)   /* server: RECLAIM after restarts; DEVICE_GONE reason
					 * SHUTDOWN. Client: understands reason SHUTDOWN */
#define PROTO_CAP_QUIET (1ull << 10)    /* header flag QUIET: no OK when such a request succeeds */

/* DEVICES: backend kinds */
enum proto_backend { PROTO_BACKEND_VFIO = 1, PROTO_BACKEND_SYSMEM = 2 };
/* DEVICES: device states */
enum proto_state { PROTO_STATE_READY = 1, PROTO_STATE_PAUSED = 2, PROTO_STATE_GONE = 3 };
/* DEVICES: kernel features (informational; unknown bits are ignored) */
#define PROTO_FEATURE_DMABUF_EXPORT (1ull << 0) /* VFIO_DEVICE_FEATURE_DMA_BUF */
#define PROTO_FEATURE_DMABUF_MMAP (1ull << 1)   /* mmap() of the dma-buf */
#define PROTO_FEATURE_DMABUF_REVOKE (1ull << 2) /* per-buffer revoke */
#define PROTO_FEATURE_MEMATTR_WC (1ull << 3)    /* write-combined CPU mappings */

/* ALLOC device selector */
enum proto_selector {
	PROTO_SELECT_ANY = 0,
	PROTO_SELECT_ID = 1,
	PROTO_SELECT_PCI_ADDRESS = 2,
};
/* ALLOC and lease flags */
#define PROTO_ALLOC_EXCLUSIVE (1u << 0)     /* the only lease on the device */
#define PROTO_ALLOC_WRITE_COMBINE (1u << 1) /* CPU mappings write-combined */
#define PROTO_ALLOC_IMAGE (1u << 2)         /* the image metadata is set */
#define PROTO_ALLOC_FLAGS_KNOWN \
	(PROTO_ALLOC_EXCLUSIVE | PROTO_ALLOC_WRITE_COMBINE | PROTO_ALLOC_IMAGE)
/* Lease record flags beyond ALLOC's (capability GRANT) */
#define PROTO_LEASE_OPENED (1u << 3)    /* opened through a grant: another's window */
#define PROTO_LEASE_READ_ONLY (1u << 4) /* the fd is O_RDONLY */
#define PROTO_LEASE_FLAGS_KNOWN \
	(PROTO_ALLOC_FLAGS_KNOWN | PROTO_LEASE_OPENED | PROTO_LEASE_READ_ONLY)

/* LIST_LEASES flags */
#define PROTO_LIST_HOLDERS (1u << 0) /* also list who opened the caller's leases (GRANT) */

/* GRANT: to whom */
enum proto_grant_to {
	PROTO_GRANT_TO_UID = 1,
	PROTO_GRANT_TO_GID = 2,
	PROTO_GRANT_TO_TOKEN = 3, /* whoever presents the returned token, once */
};
/* GRANT flags */
#define PROTO_GRANT_READ_ONLY (1u << 0)     /* holders get O_RDONLY fds */
#define PROTO_GRANT_OUTLIVE_OWNER (1u << 1) /* holders keep the window after the owner's RELEASE */
#define PROTO_GRANT_FLAGS_KNOWN (PROTO_GRANT_READ_ONLY | PROTO_GRANT_OUTLIVE_OWNER)

/* OPEN: by what */
enum proto_open_by { PROTO_OPEN_BY_LEASE = 1, PROTO_OPEN_BY_TOKEN = 2 };
/* OPEN flags */
#define PROTO_OPEN_READ_ONLY (1u << 0) /* ask for an O_RDONLY fd under a read-write grant */
#define PROTO_OPEN_FLAGS_KNOWN PROTO_OPEN_READ_ONLY

/* Holder entry flags (LEASES) */
#define PROTO_HOLDER_READ_ONLY (1u << 0)
#define PROTO_HOLDER_FLAGS_KNOWN PROTO_HOLDER_READ_ONLY

/* GRANT_REVOKED reasons */
enum proto_grant_revoked_reason {
	PROTO_GRANT_REVOKED_OWNER = 1, /* the owner withdrew it (REVOKE_GRANT) */
};

/* RESET flags */
#define PROTO_RESET_FORCE (1u << 0) /* no grace period */
#define PROTO_RESET_FLAGS_KNOWN PROTO_RESET_FORCE

/* DEVICE_PAUSE and DEVICE_GONE reasons */
enum proto_reason {
	PROTO_REASON_ADMIN = 1,  /* an administrator asked (RESET, removal) */
	PROTO_REASON_ERROR = 2,  /* the device reported an error */
	PROTO_REASON_UNPLUG = 3, /* the host takes the device back */
	PROTO_REASON_SHUTDOWN = 4, /* DEVICE_GONE only, capability RECLAIM: the server stops */
};
/* DEVICE_PAUSE flags */
#define PROTO_PAUSE_FORCE (1u << 0) /* no grace: revocation is under way */
#define PROTO_PAUSE_FLAGS_KNOWN PROTO_PAUSE_FORCE
/* DEVICE_RESUME flags */
#define PROTO_RESUME_CONTENTS_LOST (1u << 0)
#define PROTO_RESUME_FLAGS_KNOWN PROTO_RESUME_CONTENTS_LOST

/* LEASE_REVOKED reasons */
enum proto_revoke_reason {
	PROTO_REVOKE_ADMIN = 1,  /* an administrator ended the lease */
	PROTO_REVOKE_POLICY = 2, /* the policy no longer allows it */
	PROTO_REVOKE_OWNER = 3,  /* an opened lease: the owner released the window (GRANT) */
};

/* ---- wire layouts ------------------------------------------------------ */

struct proto_wire_header {
	__le32 magic;      /* PROTO_MAGIC */
	__le16 version;    /* PROTO_VERSION */
	__le16 opcode;
	__le32 flags;      /* PROTO_FLAG_* */
	__le32 length;     /* payload bytes after this header */
	__le32 request_id; /* echoed in the reply; 0 on events */
	__le32 reserved;
};
_Static_assert(sizeof(struct proto_wire_header) == 24, "header is 24 bytes");
#define PROTO_HEADER_SIZE 24

struct proto_wire_image {
	__le32 fourcc;
	__le32 width;
	__le32 height;
	__le32 n_planes;
	__le64 modifier;
	__le32 offsets[PROTO_MAX_PLANES];
	__le32 strides[PROTO_MAX_PLANES];
};
_Static_assert(sizeof(struct proto_wire_image) == 56, "image is 56 bytes");

struct proto_wire_hello {
	__le16 min_version;
	__le16 max_version;
	__le16 name_len; /* tail: client name */
	__le16 reserved;
	__le64 capabilities;
};
_Static_assert(sizeof(struct proto_wire_hello) == 16, "HELLO is 16 bytes");

struct proto_wire_welcome {
	__le16 version;
	__le16 server_name_len; /* tail: server name */
	__le32 max_message_size;
	__le32 max_fds;
	__le32 max_leases;
	__le32 max_queued_events;
	__le32 reserved;
	__le64 max_lease_bytes;
	__le64 capabilities;
};
_Static_assert(sizeof(struct proto_wire_welcome) == 40, "WELCOME is 40 bytes");

/* LIST_DEVICES and LIST_LEASES */
struct proto_wire_list {
	__le32 flags; /* none defined in v1 */
	__le32 reserved;
};
_Static_assert(sizeof(struct proto_wire_list) == 8, "LIST_* is 8 bytes");

/* DEVICES and LEASES: the fixed part before the entries. LEASES has a
 * second array, holders, after the leases (0 unless asked for). */
struct proto_wire_array {
	__le32 count;
	__le32 reserved; /* LEASES: holder_count */
};
_Static_assert(sizeof(struct proto_wire_array) == 8, "array head is 8 bytes");

struct proto_wire_device {
	__le32 id;
	__le16 pci_vendor;
	__le16 pci_device;
	__le16 pci_address_len; /* tail: PCI address, then label */
	__le16 label_len;
	__u8 backend;
	__u8 bar_index;
	__u8 state;
	__u8 reserved0;
	__le64 bar_size;
	__le64 free_bytes;
	__le64 largest_free;
	__le64 generation;
	__le64 features;
	__le32 granule;
	__le32 reserved1;
};
_Static_assert(sizeof(struct proto_wire_device) == 64, "device record is 64 bytes");

struct proto_wire_alloc {
	__le16 selector;
	__le16 pci_address_len; /* tail: PCI address */
	__le32 device_id;
	__le32 flags;
	__le32 reserved;
	__le64 size;
	__le64 alignment;
	struct proto_wire_image image;
};
_Static_assert(sizeof(struct proto_wire_alloc) == 88, "ALLOC is 88 bytes");

struct proto_wire_lease {
	__le64 id;
	__le32 device_id;
	__le32 flags;
	__le64 bar_offset;
	__le64 size;
	__le64 generation;
	struct proto_wire_image image;
	__u8 reclaim_token[PROTO_TOKEN_SIZE];
};
_Static_assert(sizeof(struct proto_wire_lease) == 112, "lease record is 112 bytes");

/* LEASE, the ALLOC reply */
struct proto_wire_lease_reply {
	__le32 n_fds; /* 1 */
	__le32 reserved;
	struct proto_wire_lease lease;
};
_Static_assert(sizeof(struct proto_wire_lease_reply) == 120, "LEASE is 120 bytes");

struct proto_wire_release {
	__le64 lease_id;
};
_Static_assert(sizeof(struct proto_wire_release) == 8, "RELEASE is 8 bytes");

struct proto_wire_reclaim {
	__le64 lease_id;
	__u8 reclaim_token[PROTO_TOKEN_SIZE];
};
_Static_assert(sizeof(struct proto_wire_reclaim) == 24, "RECLAIM is 24 bytes");

/* RECLAIMED, the RECLAIM reply, is a bare struct proto_wire_lease (112 bytes):
 * the client kept its fd, none rides along. */

struct proto_wire_reset {
	__le32 device_id;
	__le32 flags;
	__le32 grace_ms;
	__le32 reserved;
};
_Static_assert(sizeof(struct proto_wire_reset) == 16, "RESET is 16 bytes");

struct proto_wire_pause_ack {
	__le32 device_id;
	__le32 reserved;
	__le64 generation;
};
_Static_assert(sizeof(struct proto_wire_pause_ack) == 16, "PAUSE_ACK is 16 bytes");

struct proto_wire_error {
	__le32 code;           /* positive Linux errno */
	__le16 request_opcode; /* opcode of the request it answers, or 0 */
	__le16 message_len;    /* tail: message */
};
_Static_assert(sizeof(struct proto_wire_error) == 8, "ERROR is 8 bytes");

struct proto_wire_device_pause {
	__le32 device_id;
	__le16 reason;
	__le16 flags;
	__le64 generation;
	__le32 deadline_ms;
	__le32 reserved;
};
_Static_assert(sizeof(struct proto_wire_device_pause) == 24, "DEVICE_PAUSE is 24 bytes");

struct proto_wire_device_resume {
	__le32 device_id;
	__le32 flags;
	__le64 generation;
};
_Static_assert(sizeof(struct proto_wire_device_resume) == 16, "DEVICE_RESUME is 16 bytes");

struct proto_wire_device_gone {
	__le32 device_id;
	__le16 reason;
	__le16 reserved;
};
_Static_assert(sizeof(struct proto_wire_device_gone) == 8, "DEVICE_GONE is 8 bytes");

struct proto_wire_lease_revoked {
	__le64 lease_id;
	__le32 device_id;
	__le16 reason;
	__le16 reserved;
};
_Static_assert(sizeof(struct proto_wire_lease_revoked) == 16, "LEASE_REVOKED is 16 bytes");

struct proto_wire_grant {
	__le64 lease_id;
	__le32 to_id;   /* uid or gid; 0 for TOKEN */
	__le16 to_kind; /* enum proto_grant_to */
	__le16 flags;   /* PROTO_GRANT_* */
	__le32 ttl_ms;  /* 0: no expiry */
	__le32 reserved;
};
_Static_assert(sizeof(struct proto_wire_grant) == 24, "GRANT is 24 bytes");

struct proto_wire_granted {
	__le64 grant_id;
	__le64 lease_id;
	__u8 token[PROTO_TOKEN_SIZE]; /* zero unless TOKEN */
};
_Static_assert(sizeof(struct proto_wire_granted) == 32, "GRANTED is 32 bytes");

struct proto_wire_open {
	__le64 lease_id; /* BY_LEASE; 0 for BY_TOKEN */
	__le16 by;       /* enum proto_open_by */
	__le16 flags;    /* PROTO_OPEN_* */
	__le32 reserved;
	__u8 token[PROTO_TOKEN_SIZE]; /* BY_TOKEN; zero for BY_LEASE */
};
_Static_assert(sizeof(struct proto_wire_open) == 32, "OPEN is 32 bytes");

/* OPENED, the OPEN reply */
struct proto_wire_opened {
	__le32 n_fds; /* 1 */
	__le32 owner_uid;
	__le64 shared_lease_id; /* the owner's lease */
	__le64 grant_id;
	struct proto_wire_lease lease; /* the caller's new lease */
};
_Static_assert(sizeof(struct proto_wire_opened) == 136, "OPENED is 136 bytes");

struct proto_wire_revoke_grant {
	__le64 grant_id;
};
_Static_assert(sizeof(struct proto_wire_revoke_grant) == 8, "REVOKE_GRANT is 8 bytes");

/* LEASES: who opened one of the caller's leases */
struct proto_wire_holder {
	__le64 lease_id;        /* the caller's lease */
	__le64 holder_lease_id; /* the holder's lease */
	__le64 grant_id;
	__le32 uid;
	__le32 flags; /* PROTO_HOLDER_* */
};
_Static_assert(sizeof(struct proto_wire_holder) == 32, "holder entry is 32 bytes");

struct proto_wire_grant_revoked {
	__le64 grant_id;
	__le64 lease_id; /* the recipient's lease that ended */
	__le32 device_id;
	__le16 reason;
	__le16 reserved;
};
_Static_assert(sizeof(struct proto_wire_grant_revoked) == 24, "GRANT_REVOKED is 24 bytes");

/* The largest replies fit in one message. */
_Static_assert(PROTO_HEADER_SIZE + sizeof(struct proto_wire_array) +
		       PROTO_MAX_LEASES * sizeof(struct proto_wire_lease) <= PROTO_MAX_MESSAGE,
	       "a full LEASES reply fits in one message");
_Static_assert(PROTO_HEADER_SIZE + sizeof(struct proto_wire_array) +
		       PROTO_MAX_HOLDERS * sizeof(struct proto_wire_holder) <= PROTO_MAX_MESSAGE,
	       "a LEASES reply of holders alone fits in one message");
_Static_assert(PROTO_HEADER_SIZE + sizeof(struct proto_wire_array) +
		       PROTO_MAX_DEVICES * (sizeof(struct proto_wire_device) +
					    PROTO_PCI_ADDRESS_MAX + PROTO_LABEL_MAX) <=
	       PROTO_MAX_MESSAGE, "a full DEVICES reply fits in one message");

/* SPDX-License-Identifier: MIT */
/*
 * The broker core: devices, clients and their leases, policy and quotas.
 * It knows nothing about sockets, D-Bus or VFIO: transports create clients
 * and call the requests below; backends sit behind struct device. Requests
 * return 0 or -errno with a sentence in struct error_info for the client.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/list.h"
#include "daemon/config.h"
#include "daemon/device.h"

#define BROKER_MAX_GROUPS 64
#define BROKER_TOKEN_SIZE 16
#define BROKER_CGROUP_MAX 512

struct broker;
struct client;
struct policy_usage;
struct event_base;

struct client_creds {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[BROKER_MAX_GROUPS]; /* supplementary groups */
	size_t n_groups;
	char cgroup[BROKER_CGROUP_MAX];  /* cgroup v2 path at connect time; "" if not known */
	int cgroup_error;                /* -errno when the transport failed to read it */
};

struct lease_image {
	uint32_t fourcc, width, height, n_planes;
	uint64_t modifier;
	uint32_t offsets[4], strides[4];
};

enum {
	LEASE_EXCLUSIVE = 1u << 0,
	LEASE_WRITE_COMBINE = 1u << 1,
	LEASE_IMAGE = 1u << 2,
	LEASE_OPENED = 1u << 3,    /* opened through a grant: another client's window */
	LEASE_READ_ONLY = 1u << 4, /* its dma-buf is O_RDONLY */
};

struct share;
struct grant;

struct lease {
	uint64_t id;
	struct device *device;
	struct client *owner;
	struct list device_link, client_link;
	uint64_t offset, size;
	uint64_t generation; /* of the device when the lease was made */
	uint32_t flags;      /* LEASE_* */
	struct lease_image image;
	uint8_t token[BROKER_TOKEN_SIZE];
	int fd; /* the daemon's own reference to the dma-buf */
	struct share *share;    /* the window's holders and grants, once granted (daemon/share.c) */
	struct grant *grant;    /* LEASE_OPENED: the grant it was opened through */
	struct list share_link; /* LEASE_OPENED: in the share's holders */
	struct window_store store;
	uid_t orphan_uid; /* orphans (owner NULL): who may reclaim it */
};

/* Why a device is paused or gone (the protocol's reason values). */
enum broker_reason {
	BROKER_REASON_ADMIN = 1,
	BROKER_REASON_ERROR,
	BROKER_REASON_UNPLUG,
	BROKER_REASON_SHUTDOWN, /* DEVICE_GONE: barkeepd stops for good */
};
#define BROKER_PAUSE_FORCE (1u << 0)          /* DEVICE_PAUSE: no grace */
#define BROKER_RESUME_CONTENTS_LOST (1u << 0) /* DEVICE_RESUME */
#define BROKER_GRACE_MAX_MS 600000u           /* longest grace a RESET may ask for */

/* Broker -> transport: events for one client. */
enum broker_event_type {
	BROKER_EVENT_DEVICE_PAUSE = 1,
	BROKER_EVENT_DEVICE_RESUME,
	BROKER_EVENT_DEVICE_GONE,
	BROKER_EVENT_LEASE_REVOKED,
	BROKER_EVENT_GRANT_REVOKED, /* lease_id: the recipient's opened lease, which has ended */
};

/* LEASE_REVOKED reasons (the protocol's) */
enum broker_revoke_reason {
	BROKER_REVOKE_ADMIN = 1,
	BROKER_REVOKE_POLICY = 2,
	BROKER_REVOKE_OWNER = 3, /* an opened lease: the owner released the window */
};
/* GRANT_REVOKED reasons */
#define BROKER_GRANT_REVOKED_OWNER 1

struct broker_event {
	enum broker_event_type type;
	uint32_t device_id;
	uint64_t lease_id;
	uint64_t grant_id; /* GRANT_REVOKED */
	uint64_t generation;
	uint32_t reason, flags, deadline_ms;
};

struct client_ops {
	/* Queues an event; returns -ENOBUFS when the client's queue is full (the
	 * transport then disconnects the client later, never from inside this
	 * call: the broker is iterating its clients). */
	int (*send_event)(struct client *c, const struct broker_event *ev, void *userdata);
	/* Answers the client's RESET request_id: r 0 (the device resumed) or
	 * -errno with err. May be called from inside broker_reset(). */
	void (*reset_done)(struct client *c, uint32_t request_id, int r,
			   const struct error_info *err, void *userdata);
};

struct client {
	uint32_t id;
	struct broker *broker;
	struct client_creds creds;
	const struct config_container *container; /* the [container NAME] it matched, or NULL */
	char name[65];
	struct list link;
	struct list leases; /* struct lease.client_link */
	unsigned n_leases;  /* its own windows (ALLOC) */
	unsigned n_opens;   /* others' windows it opened (OPEN) */
	uint64_t bytes;     /* of its own windows */
	const struct client_ops *ops;
	void *userdata;
	bool acks_pauses; /* answers DEVICE_PAUSE with PAUSE_ACK: resets wait for it */
	bool watches;     /* gets device events of every device */
	bool shares;      /* announced GRANT: may GRANT/OPEN and be told of grants */
};

struct alloc_request {
	const char *device; /* NULL or "": any device; else name, PCI address or "#id" */
	uint32_t device_id; /* used when device_by_id */
	bool device_by_id;
	uint64_t size;
	uint64_t alignment; /* 0: the page size */
	uint32_t flags;     /* LEASE_* */
	struct lease_image image;
};

int broker_new(struct config *cfg, struct broker **ret);
struct broker *broker_free(struct broker *b);

/* Opens every configured device; one that fails is skipped and reported
 * through the callback (the daemon keeps serving the others). Returns the
 * number opened. */
typedef void (*broker_open_failed_cb)(const struct config_device *cfg, const struct error_info *err);
/* Restart: returns 1 with *ret when it took the device up from the fd store,
 * 0 to open it afresh. */
typedef int (*broker_adopt_cb)(const struct config_device *cfg, uint32_t id, struct device **ret,
			       void *userdata);
int broker_open_devices(struct broker *b, broker_open_failed_cb cb, broker_adopt_cb adopt,
			void *userdata);

/* -EUSERS when a connection limit is hit (err says which). */
int broker_client_new(struct broker *b, const struct client_creds *creds,
		      const struct client_ops *ops, void *userdata, struct client **ret,
		      struct error_info *err);
/* Ends every lease of the client and frees it. */
struct client *broker_client_free(struct client *c);
void broker_client_set_name(struct client *c, const char *name);
void broker_client_set_events(struct client *c, bool acks_pauses, bool watches);
void broker_client_set_sharing(struct client *c, bool shares);

int broker_alloc(struct client *c, const struct alloc_request *req, struct lease **ret,
		 struct error_info *err);
int broker_release(struct client *c, uint64_t lease_id, struct error_info *err);
/* The client's lease with that id, or NULL. */
struct lease *broker_find_lease(struct client *c, uint64_t lease_id);
/* After a restart (fd store, daemon/persist.c): takes over the orphaned lease
 * lease_id when token matches and the client has the uid it was made for.
 * The client still holds its buffer; nothing new is exported. -ENOENT with
 * one sentence for every mismatch (no such orphan, wrong token, other uid:
 * a guesser learns nothing), -EUSERS/-EDQUOT when the client's limits are
 * full. */
/* Compares secrets (grant and reclaim tokens) in a time that does not
 * depend on where they differ. */
bool broker_token_equal(const uint8_t a[BROKER_TOKEN_SIZE], const uint8_t b[BROKER_TOKEN_SIZE]);
int broker_reclaim(struct client *c, uint64_t lease_id, const uint8_t token[BROKER_TOKEN_SIZE],
		   struct lease **ret, struct error_info *err);

/* ---- sharing (daemon/share.c) ---- */

enum grant_to { GRANT_TO_UID = 1, GRANT_TO_GID = 2, GRANT_TO_TOKEN = 3 };
#define GRANT_READ_ONLY (1u << 0)     /* holders get O_RDONLY fds */
#define GRANT_OUTLIVE_OWNER (1u << 1) /* holders keep the window after the owner's release */
#define GRANT_FLAGS_KNOWN (GRANT_READ_ONLY | GRANT_OUTLIVE_OWNER)

struct grant_request {
	uint64_t lease_id;  /* one of the caller's own leases */
	enum grant_to to;
	uint32_t to_id;     /* uid or gid; 0 for a token */
	uint32_t flags;     /* GRANT_* */
	uint32_t ttl_ms;    /* 0: no expiry (opens only: holders keep their access) */
};

struct grant_info {
	uint64_t grant_id;
	uint8_t token[BROKER_TOKEN_SIZE]; /* a token grant's secret, else zero */
};

struct open_request {
	uint64_t lease_id;  /* a uid/gid grant's lease; 0 with by_token */
	bool by_token;
	uint8_t token[BROKER_TOKEN_SIZE];
	bool read_only;     /* ask for O_RDONLY under a read-write grant */
};

/* Lets others open one of the caller's leases. -ENOENT (not the caller's
 * lease), -EPERM (the policy forbids that recipient, or an opened lease),
 * -EDQUOT (max-grants-per-lease), -EOPNOTSUPP (read-only on a device that
 * cannot export read-only), -EINVAL, -EIO. */
int broker_grant(struct client *c, const struct grant_request *req, struct grant_info *ret,
		 struct error_info *err);
/* A fresh export of a granted window as a new lease of the caller (flags
 * LEASE_OPENED, LEASE_READ_ONLY under a read-only grant). -ENOENT (no such
 * grant or lease, a used, revoked or expired token: err says which),
 * -EACCES (not granted to the caller, or the policy forbids it), -EDQUOT
 * (max-opens-per-client, max-holders-per-window), -EAGAIN, -ENODEV, -EIO. */
int broker_open(struct client *c, const struct open_request *req, struct lease **ret,
		struct error_info *err);
/* Withdraws one of the caller's grants; every lease opened through it ends
 * and its holder is told (GRANT_REVOKED). -ENOENT. */
int broker_revoke_grant(struct client *c, uint64_t grant_id, struct error_info *err);

/* For LIST_LEASES: calls fn for each holder of the caller's lease l. */
struct share_holder_info {
	uint64_t lease_id, holder_lease_id, grant_id;
	uid_t uid;
	bool read_only;
};
typedef void (*share_holder_fn)(const struct share_holder_info *h, void *userdata);
void broker_lease_holders(const struct lease *l, share_holder_fn fn, void *userdata);
/* The grant id an opened lease came through, and the window's owner lease id
 * and owner uid (0, 0, 0 when the owner has released it). */
void broker_opened_info(const struct lease *l, uint64_t *ret_grant_id, uint64_t *ret_owner_lease,
			uid_t *ret_owner_uid);

/* Admin request: pauses the device, tells every holder, waits for their
 * acknowledgements or the deadline (grace_ms 0: the configured default;
 * force: none), resets the device off the loop and resumes it. Returns
 * -errno with err when refused at once; 0 when under way: the answer then
 * comes through c->ops->reset_done(request_id). */
int broker_reset(struct client *c, uint32_t device_id, bool force, uint32_t grace_ms,
		 uint32_t request_id, struct error_info *err);
/* The client dropped its imports of the device paused at generation. 0, or
 * -ESTALE (not the pause under way), -ENODEV. */
int broker_pause_ack(struct client *c, uint32_t device_id, uint64_t generation,
		     struct error_info *err);

/* What the core did with a pause, for the daemon's log (the core does not log). */
enum broker_pause_stage {
	BROKER_PAUSE_STARTED,  /* events sent; waiting */
	BROKER_PAUSE_REVOKING, /* acknowledged or deadline passed: the worker runs */
	BROKER_PAUSE_DONE,     /* resumed (result 0) or gone (result < 0) */
};
struct broker_pause_report {
	enum broker_pause_stage stage;
	enum broker_reason reason;
	uint32_t flags, grace_ms;
	uint64_t generation;   /* DONE: the new one when resumed */
	unsigned n_holders;    /* clients told */
	unsigned n_unacked;    /* REVOKING, DONE: holders the reset did not wait for any longer */
	const char *method;    /* DONE: how the device was reset, or NULL */
	int result;            /* DONE */
	uint64_t elapsed_ms;   /* DONE: since STARTED */
	const struct client *requester; /* STARTED: who asked for the reset, or NULL */
};
struct broker_hooks {
	void (*pause)(const struct device *d, const struct broker_pause_report *rep, void *userdata);
	/* The reclaim timeout passed: the orphans left have ended. */
	void (*orphans_expired)(struct broker *b, void *userdata);
};

/* The loop the core arms its timers on, hands worker results back to and
 * watches the devices' own events on (errors, release requests: see
 * device.signals_*); must be set before any request. */
void broker_set_event_base(struct broker *b, struct event_base *base);
void broker_set_hooks(struct broker *b, const struct broker_hooks *hooks, void *userdata);

struct persist;
/* Restart support (daemon/persist.h): where leases are recorded. */
void broker_set_persist(struct broker *b, struct persist *p);
/* Ends the orphans nobody reclaimed after timeout_ms (needs the event base). */
int broker_arm_orphans(struct broker *b, uint32_t timeout_ms);
size_t broker_n_orphans(const struct broker *b);
/* barkeepd stops for good: DEVICE_GONE (SHUTDOWN) to every client holding a
 * lease on a device, or watching. Returns the number of events queued. */
unsigned broker_shutdown(struct broker *b);

/* Frees quarantined windows whose buffers were closed; returns how many. */
/* Waits for the released windows being zeroed to be free again, so that a
 * listing shows what an ALLOC gets (a release then a listing sees the
 * window free, as before zeroing moved off the loop). Blocks the loop while
 * the scrub workers finish: for listings, never for lending. */
void broker_settle(struct broker *b);
unsigned broker_sweep(struct broker *b);
/* Bytes waiting in quarantine on all devices. */
uint64_t broker_quarantined_bytes(const struct broker *b);

const struct config *broker_config(const struct broker *b);
size_t broker_n_devices(const struct broker *b);
struct device *broker_device(const struct broker *b, size_t i);
size_t broker_n_clients(const struct broker *b);
size_t broker_n_leases(const struct broker *b);
/* May the client use (list, allocate on) this device? */
bool broker_may_use(const struct client *c, const struct device *d);

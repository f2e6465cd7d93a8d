/* SPDX-License-Identifier: MIT */
/*
 * libbarkeep: borrow windows of GPU VRAM from barkeepd as dma-buf fds.
 *
 *   struct barkeep *bk;
 *   barkeep_connect(NULL, "my-app", &bk);
 *   struct barkeep_alloc_params p = { .size = 64 << 20 };
 *   struct barkeep_lease *lease;
 *   if (barkeep_alloc(bk, &p, &lease) < 0)
 *           fprintf(stderr, "%s\n", barkeep_error_message(bk));
 *   ... use lease->fd (a dma-buf) ...
 *   barkeep_release(bk, lease);
 *   barkeep_disconnect(bk);
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno on failure; after a failure, barkeep_error_message() holds a
 * sentence from the broker or the library saying what went wrong. The
 * library never logs and never blocks except in the request functions,
 * which wait for their reply. A connection is not thread-safe: use it from
 * one thread at a time. Events (resets, revocations) that arrive while a
 * request waits are queued and delivered by barkeep_dispatch().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BARKEEP_DEFAULT_SOCKET "/run/barkeep/barkeep.sock"
#define BARKEEP_SOCKET_ENV "BARKEEP_SOCKET" /* overrides the default path */

struct barkeep;

enum barkeep_backend { BARKEEP_BACKEND_VFIO = 1, BARKEEP_BACKEND_SYSMEM = 2 };
enum barkeep_device_state { BARKEEP_DEVICE_READY = 1, BARKEEP_DEVICE_PAUSED = 2, BARKEEP_DEVICE_GONE = 3 };

/* Device features (struct barkeep_device.features) */
#define BARKEEP_FEATURE_DMABUF_EXPORT (1ull << 0)
#define BARKEEP_FEATURE_DMABUF_MMAP (1ull << 1)
#define BARKEEP_FEATURE_DMABUF_REVOKE (1ull << 2)
#define BARKEEP_FEATURE_MEMATTR_WC (1ull << 3)

struct barkeep_device {
	uint32_t id;
	char pci_address[33]; /* "0000:00:03.0"; "" for non-PCI backends */
	char label[65];
	uint16_t pci_vendor, pci_device;
	enum barkeep_backend backend;
	enum barkeep_device_state state;
	uint32_t bar_index;
	uint32_t granule;      /* allocation unit, bytes */
	uint64_t bar_size;
	uint64_t free_bytes;
	uint64_t largest_free; /* the largest window that can be had now */
	uint64_t generation;   /* bumps on every reset */
	uint64_t features;     /* BARKEEP_FEATURE_* */
};

/* Optional image metadata carried with a lease (for DRM/gbm/Wayland import). */
struct barkeep_image {
	uint32_t fourcc; /* DRM_FORMAT_* */
	uint32_t width, height;
	uint32_t n_planes; /* 1..4 */
	uint64_t modifier; /* DRM_FORMAT_MOD_LINEAR for VRAM windows */
	uint32_t offsets[4], strides[4];
};

/* Lease flags */
#define BARKEEP_ALLOC_EXCLUSIVE (1u << 0)     /* the only lease on its device */
#define BARKEEP_ALLOC_WRITE_COMBINE (1u << 1) /* CPU mappings write-combined */
#define BARKEEP_LEASE_OPENED (1u << 3)        /* another client's window, opened through a grant */
#define BARKEEP_LEASE_READ_ONLY (1u << 4)     /* the fd is O_RDONLY */

struct barkeep_alloc_params {
	const char *device;     /* NULL: any device; else its PCI address */
	bool by_id;             /* pick the device by device_id instead */
	uint32_t device_id;
	uint64_t size;          /* bytes; rounded up to the device's granule */
	uint64_t alignment;     /* 0: the granule; else a power of two */
	uint32_t flags;         /* BARKEEP_ALLOC_* */
	const struct barkeep_image *image; /* NULL: not an image */
};

struct barkeep_lease {
	uint64_t id;
	uint32_t device_id;
	uint32_t flags;
	uint64_t bar_offset; /* where the window starts in the device's BAR */
	uint64_t size;
	uint64_t generation; /* device generation when made: older than the device's = contents lost */
	bool has_image;
	struct barkeep_image image;
	uint8_t reclaim_token[16];
	int fd; /* the dma-buf, owned by the lease (-1 in barkeep_list_leases results) */
	/* BARKEEP_LEASE_OPENED leases from barkeep_open(): whose window it is
	 * (0 in barkeep_list_leases results and for the caller's own leases). */
	uint64_t shared_lease_id; /* the owner's lease */
	uint64_t grant_id;
	uint32_t owner_uid;
};

enum barkeep_event_type {
	BARKEEP_EVENT_DEVICE_PAUSE = 1, /* drop imports, then barkeep_ack_pause() */
	BARKEEP_EVENT_DEVICE_RESUME,    /* re-import; contents are lost */
	BARKEEP_EVENT_DEVICE_GONE,      /* the device and its leases are gone for good */
	BARKEEP_EVENT_LEASE_REVOKED,    /* that lease ended (reason 3: an opened lease whose owner
					 * released the window) */
	BARKEEP_EVENT_GRANT_REVOKED,    /* the grant an opened lease came through was withdrawn:
					 * that lease (lease_id) ended */
	BARKEEP_EVENT_RECONNECTED,      /* BARKEEP_CONNECT_RECONNECT: the broker restarted and the
					 * connection is back; n_reclaimed leases go on, n_lost
					 * follow as LEASE_REVOKED (reason LOST) */
};

/* barkeep_event.reason of DEVICE_PAUSE and DEVICE_GONE */
enum barkeep_reason {
	BARKEEP_REASON_ADMIN = 1,    /* an administrator: a reset, a removal */
	BARKEEP_REASON_ERROR = 2,    /* the device reported an error */
	BARKEEP_REASON_UNPLUG = 3,   /* the host takes the device back */
	BARKEEP_REASON_SHUTDOWN = 4, /* DEVICE_GONE: barkeepd stops for good; the buffers die
				      * when it has exited */
};
/* barkeep_event.reason of LEASE_REVOKED */
enum barkeep_revoke_reason {
	BARKEEP_REVOKE_ADMIN = 1,  /* an administrator ended the lease */
	BARKEEP_REVOKE_POLICY = 2, /* the policy no longer allows it */
	BARKEEP_REVOKE_OWNER = 3,  /* an opened lease: the owner released the window */
	BARKEEP_REVOKE_LOST = 0x100, /* the library's own, never on the wire: not reclaimed
				      * after a reconnection */
};

struct barkeep_event {
	enum barkeep_event_type type;
	uint32_t device_id;
	uint64_t lease_id;    /* LEASE_REVOKED */
	uint64_t generation;  /* PAUSE: being paused; RESUME: the new one */
	uint32_t reason;      /* enum barkeep_reason; LEASE_REVOKED: enum barkeep_revoke_reason */
	uint32_t flags;       /* PAUSE: 1 = forced; RESUME: 1 = contents lost */
	uint32_t deadline_ms; /* PAUSE: time left to acknowledge */
	uint32_t n_reclaimed; /* RECONNECTED: leases taken back */
	uint32_t n_lost;      /* RECONNECTED: leases that could not be (LEASE_REVOKED follows) */
	uint64_t grant_id;    /* GRANT_REVOKED */
};

/* "admin", "device-error", "unplug", "shutdown"; for LEASE_REVOKED "admin",
 * "policy", "owner", "lost"; "unknown" for other values and events without a
 * reason. */
const char *barkeep_event_reason(const struct barkeep_event *ev);

typedef void (*barkeep_event_fn)(struct barkeep *bk, const struct barkeep_event *ev, void *userdata);

/* Connects and says HELLO. path NULL: $BARKEEP_SOCKET, else the default.
 * name: how the broker's logs call this client (NULL: the program name).
 * A broker that accepts the connection but does not answer HELLO within
 * 5 s gives -ETIMEDOUT (the one wait of this library with an end). */
int barkeep_connect(const char *path, const char *name, struct barkeep **ret);

/* barkeep_connect_with() flags */
#define BARKEEP_CONNECT_WATCH (1u << 0) /* device events of every device, not only of
					 * the devices this connection holds leases on */
/*
 * BARKEEP_CONNECT_RECONNECT: survive broker restarts (systemctl restart, a
 * crash with Restart=on-failure). When the connection breaks, whichever call
 * notices (barkeep_dispatch() or a request) connects again to the same path,
 * every 100 ms for up to the reconnect timeout (30 s; see
 * barkeep_set_reconnect_timeout()), says HELLO with the same name and flags,
 * and RECLAIMs every lease barkeep_alloc() returned that was not released or
 * freed since, with its reclaim token. The leases keep their fds and pointers.
 * Then barkeep_dispatch() delivers BARKEEP_EVENT_RECONNECTED and one
 * LEASE_REVOKED (reason BARKEEP_REVOKE_LOST) per lease that could not be
 * taken back: drop those. Events the new broker sent meanwhile (a pause of
 * a device whose lease was already reclaimed) follow them; pauses and
 * resumes of a connection that broke are not delivered. A request that met
 * the broken connection is sent once more on the new one. That call blocks meanwhile; if the broker is not
 * back in time it fails as without the flag. The fd of barkeep_get_fd() keeps
 * its number (poll() needs nothing; epoll users add it again on RECONNECTED).
 * Replies the old connection owed are lost: a RELEASE sent just before the
 * break ends its lease anyway (the broker drops leases nobody reclaims).
 * Leases opened from another client's grant (barkeep_open()) are not
 * reclaimed: open them again.
 */
#define BARKEEP_CONNECT_RECONNECT (1u << 1)
/* barkeep_connect() with flags; -EINVAL for unknown flags, -EOPNOTSUPP when
 * the broker does not offer what a flag asks for. */
int barkeep_connect_with(const char *path, const char *name, uint32_t flags, struct barkeep **ret);
/* Closes the connection; the broker ends every lease still held (fds that
 * were handed out stay valid until closed). Accepts NULL. */
void barkeep_disconnect(struct barkeep *bk);
/* How long one reconnection (BARKEEP_CONNECT_RECONNECT) may try, in ms;
 * 0: a single attempt. */
void barkeep_set_reconnect_timeout(struct barkeep *bk, uint32_t timeout_ms);

/* The last error's sentence (never NULL; "" before any error). Valid until
 * the next call. With bk NULL: why this thread's last barkeep_connect() failed. */
const char *barkeep_error_message(const struct barkeep *bk);

/* For poll loops: readable when events wait. barkeep_dispatch() reads what is
 * there without blocking and calls the event handler; returns the number of
 * events delivered, or -errno (-ECONNRESET when the broker went away).
 * Events that arrived while a request waited for its reply are queued, and
 * the fd does not show them: call barkeep_dispatch() after requests too.
 * The handler may call requests on the same connection (barkeep_ack_pause()).
 * The socket is in blocking mode (a request waits for its reply in one
 * recvmsg()); the library reads it without waiting where it must. Leave the
 * mode alone: a caller that sets O_NONBLOCK costs every request a poll().
 *
 * Resets: on DEVICE_PAUSE, stop using the device's leases, drop every import
 * of them (GPU imports, mappings), then barkeep_ack_pause() with the event's
 * device and generation, before deadline_ms. The broker waits for that from
 * every libbarkeep client that holds a lease on the device (the library
 * announces PAUSE_ACK), up to the deadline. The leases and fds stay valid;
 * after DEVICE_RESUME import them again: their contents are lost. */
int barkeep_get_fd(const struct barkeep *bk);
void barkeep_set_event_handler(struct barkeep *bk, barkeep_event_fn fn, void *userdata);
int barkeep_dispatch(struct barkeep *bk);

/* Requests. Each blocks until the broker answers. */
int barkeep_list_devices(struct barkeep *bk, struct barkeep_device **ret, size_t *ret_n); /* free(*ret) */
int barkeep_alloc(struct barkeep *bk, const struct barkeep_alloc_params *p, struct barkeep_lease **ret);
/* Ends the lease at the broker, closes its fd and frees it (also on error).
 * Returns once the request is sent: the broker handles a connection's
 * requests in order, so every later request sees the lease gone. */
int barkeep_release(struct barkeep *bk, struct barkeep_lease *lease);
int barkeep_list_leases(struct barkeep *bk, struct barkeep_lease **ret, size_t *ret_n); /* free(*ret) */
/* After a broker restart, on a new connection: takes back the lease lease_id
 * with the reclaim_token its record had (lease->reclaim_token), and updates
 * *lease from the broker's record; lease->fd is kept (the buffer never left
 * the caller). BARKEEP_CONNECT_RECONNECT does this by itself for the leases
 * of its connection. 0, or -ENOENT (no such lease waits to be reclaimed, the
 * token is wrong, or it was made for another uid: the broker does not say
 * which), -EDQUOT/-EUSERS (this connection's limits are full), -EOPNOTSUPP
 * (the broker cannot: older than RECLAIM); *lease is unchanged on failure. */
int barkeep_reclaim(struct barkeep *bk, uint64_t lease_id, const uint8_t token[16],
		    struct barkeep_lease *lease);
/* Says the imports of the device paused at generation are dropped. 0, or
 * -ESTALE when that pause is over (harmless), -ENODEV. */
int barkeep_ack_pause(struct barkeep *bk, uint32_t device_id, uint64_t generation);
/* Admin: pause, revoke and reset a device. grace_ms 0: the broker's default;
 * force: no grace (grace_ms must be 0). Blocks until the device has resumed
 * (up to the grace period plus the reset): events for this connection queue
 * meanwhile. 0, or -EPERM (not an admin), -ENODEV, -EBUSY (a reset is under
 * way), -EIO (the reset failed and the device is gone). */
int barkeep_reset(struct barkeep *bk, uint32_t device_id, bool force, uint32_t grace_ms);

/* ---- sharing a window ----
 * The owner of a lease grants others access; each of them opens the window
 * and gets a lease of its own with its own dma-buf of the same range. The
 * window lives until its last holder releases it; quotas count its bytes
 * against the owner once. See barkeepctl(1) and proto/PROTOCOL.md. */

enum barkeep_grant_to { BARKEEP_GRANT_TO_UID = 1, BARKEEP_GRANT_TO_GID = 2, BARKEEP_GRANT_TO_TOKEN = 3 };
#define BARKEEP_GRANT_READ_ONLY (1u << 0)     /* holders get O_RDONLY fds */
#define BARKEEP_GRANT_OUTLIVE_OWNER (1u << 1) /* the owner's release leaves holders their access */

struct barkeep_grant_params {
	uint64_t lease_id;         /* one of this connection's own leases */
	enum barkeep_grant_to to;
	uint32_t to_id;            /* uid or gid; 0 for a token */
	uint32_t flags;            /* BARKEEP_GRANT_* */
	uint32_t ttl_ms;           /* 0: no expiry; after it, no more opens */
};

#define BARKEEP_TOKEN_SIZE 16
#define BARKEEP_TOKEN_STRING_SIZE 33 /* 32 hex digits and a NUL */

struct barkeep_grant {
	uint64_t grant_id;
	uint8_t token[BARKEEP_TOKEN_SIZE]; /* a token grant's secret: give it to one party, privately */
};

/* Grants access to a lease. 0, or -ENOENT (not this connection's lease),
 * -EPERM (the broker's share-with policy forbids it), -EDQUOT (too many
 * grants), -EOPNOTSUPP (the broker does not share, or read-only on a device
 * that cannot), -EINVAL. */
int barkeep_grant(struct barkeep *bk, const struct barkeep_grant_params *p, struct barkeep_grant *ret);

struct barkeep_open_params {
	bool by_token;     /* else by lease_id, under a grant to this uid or one of its groups */
	uint64_t lease_id;
	uint8_t token[BARKEEP_TOKEN_SIZE];
	bool read_only;    /* an O_RDONLY fd even under a read-write grant */
};

/* Opens a granted window: *ret is a new lease of this connection (flags
 * BARKEEP_LEASE_OPENED, and READ_ONLY under a read-only grant) with its own
 * dma-buf of the window; end it with barkeep_release(). -ENOENT (no such
 * grant, or the token was revoked or expired: the message says which),
 * -EACCES (not granted to you, a token already used, or the policy),
 * -EDQUOT, -EAGAIN (the device is resetting), -ENODEV, -EOPNOTSUPP. */
int barkeep_open(struct barkeep *bk, const struct barkeep_open_params *p, struct barkeep_lease **ret);

/* Withdraws a grant: every lease opened through it ends (its holder gets
 * BARKEEP_EVENT_GRANT_REVOKED). 0 or -ENOENT. */
int barkeep_revoke_grant(struct barkeep *bk, uint64_t grant_id);

/* Who holds this connection's leases open. */
struct barkeep_holder {
	uint64_t lease_id;        /* this connection's lease */
	uint64_t holder_lease_id; /* the holder's own lease */
	uint64_t grant_id;        /* 0 when the grant has ended since */
	uint32_t uid;
	bool read_only;
};
/* Lists them (as many as one reply holds: at least 255). free(*ret). */
int barkeep_list_holders(struct barkeep *bk, struct barkeep_holder **ret, size_t *ret_n);

/* A token as 32 lower-case hex digits, and back: 0 or -EINVAL. */
void barkeep_token_format(const uint8_t token[BARKEEP_TOKEN_SIZE], char buf[BARKEEP_TOKEN_STRING_SIZE]);
int barkeep_token_parse(const char *s, uint8_t token[BARKEEP_TOKEN_SIZE]);

/* Closes the fd and frees a lease without telling the broker (it ends when
 * the connection does). Accepts NULL. */
void barkeep_lease_free(struct barkeep_lease *lease);

/* Imports the lease's dma-buf into a DRM device (drmPrimeFDToHandle).
 * -EOPNOTSUPP: the driver cannot import peer-to-peer VFIO buffers (most
 * cannot: only amdgpu, xe and a few others); *ret_msg, if given, gets a
 * sentence saying so. */
int barkeep_import_prime(const struct barkeep_lease *lease, int drm_fd, uint32_t *ret_handle,
			 const char **ret_msg);

struct gbm_device;
struct gbm_bo;

/* Imports an image lease into gbm (GBM_BO_IMPORT_FD_MODIFIER) with the
 * lease's image metadata: fourcc, width, height, per-plane offsets and
 * strides (every plane in the lease's one fd), modifier. usage: GBM_BO_USE_*.
 * On success *ret is a new bo the caller destroys with gbm_bo_destroy(); it
 * holds its own reference to the buffer. -EINVAL: no image metadata, or a
 * plane (offset + stride x rows) does not fit the lease; -EOPNOTSUPP: the
 * driver cannot import peer-to-peer (VFIO) buffers; else gbm's error. On
 * failure *ret_msg, if given, gets a sentence saying which, valid until the
 * next call from this thread. */
int barkeep_import_gbm(const struct barkeep_lease *lease, struct gbm_device *gbm, uint32_t usage,
		       struct gbm_bo **ret, const char **ret_msg);

/* Maps the whole lease for the CPU (MAP_SHARED; prot: PROT_READ and/or
 * PROT_WRITE) and sets *ret. System-memory leases can always be mapped
 * (devices with BARKEEP_FEATURE_DMABUF_MMAP); VFIO leases only on kernels
 * with the dma-buf mmap patches. -EINVAL: the kernel cannot map this
 * buffer; -ENODEV: it is revoked (device paused), map it again after
 * DEVICE_RESUME; *ret_msg, if given, says which (a static sentence). The
 * mapping outlives the fd and the lease: undo it with barkeep_lease_munmap()
 * before barkeep_release() if the window must be reusable, since a mapping
 * keeps the buffer alive. When a device writes the buffer too, bracket CPU
 * access with DMA_BUF_IOCTL_SYNC on lease->fd. */
int barkeep_lease_mmap(const struct barkeep_lease *lease, int prot, void **ret,
		       const char **ret_msg);
/* Unmaps what barkeep_lease_mmap() returned for this lease. 0 or -errno. */
int barkeep_lease_munmap(const struct barkeep_lease *lease, void *addr);

#ifdef __cplusplus
}
#endif

/* SPDX-License-Identifier: MIT */
/*
 * /etc/barkeep/barkeep.conf: parsed and fully validated at load time (names
 * resolved, PCI addresses normalised, reserved ranges sorted), so the core only
 * reads plain values. The format is documented in doc/barkeep.conf.5.md.
 * No logging: errors come back as one string ("FILE:LINE: KEY: what is
 * wrong", one line per error), warnings as strings in struct config.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/macro.h"

#define CONFIG_DEFAULT_PATH "/etc/barkeep/barkeep.conf"
#define CONFIG_DEFAULT_SOCKET "/run/barkeep/barkeep.sock"
#define CONFIG_DEFAULT_GROUP "barkeep"             /* socket group and default device access */
#define CONFIG_DEFAULT_ADMIN_GROUP "barkeep-admin" /* may RESET devices */

#define CONFIG_DEVICE_NAME_MAX 32
#define CONFIG_PCI_ADDR_MAX 17      /* "ffffffff:bb:dd.f" + NUL; usually "0000:00:03.0" */
#define CONFIG_UNLIMITED UINT64_MAX /* a byte limit that was not set ("infinity") */
#define CONFIG_GID_NONE ((gid_t)-1) /* a group that is not configured or does not exist */
#define CONFIG_BAR_AUTO (-1)        /* the largest 64-bit prefetchable BAR, decided at runtime */
#define CONFIG_SIZE_STR_MAX 32

enum config_backend {
	CONFIG_BACKEND_VFIO,
	CONFIG_BACKEND_SYSMEM,
};

struct config_range {
	uint64_t offset, length;
	unsigned line; /* where it was written, for messages about it at runtime */
};

struct config_device {
	char name[CONFIG_DEVICE_NAME_MAX + 1]; /* [a-zA-Z0-9_-]{1,32} */
	enum config_backend backend;
	char pci[CONFIG_PCI_ADDR_MAX]; /* vfio: normalised "dddd:bb:dd.f", lower case; sysmem: "" */
	int bar;                       /* vfio: 0..5 or CONFIG_BAR_AUTO; sysmem: CONFIG_BAR_AUTO */
	uint64_t size;                 /* sysmem: bytes, page aligned; vfio: 0 (the BAR's size) */
	char *label;                   /* free text, NULL if not set */

	/* Sorted by offset, disjoint, page aligned. Not checked against the BAR
	 * size, which is known only at runtime (except for sysmem). */
	struct config_range *reserved;
	size_t n_reserved;

	/* Who may use the device besides root. Without allow-users/allow-groups,
	 * default_access is set and allow_gids holds group "barkeep" if it exists. */
	uid_t *allow_uids;
	char **allow_user_names; /* parallel; NULL where a number was written */
	size_t n_allow_uids;
	gid_t *allow_gids;
	char **allow_group_names; /* parallel; NULL where a number was written */
	size_t n_allow_gids;
	bool default_access;

	uint64_t max_bytes_per_uid; /* on this device; CONFIG_UNLIMITED if not set */
	unsigned line;              /* of the [device NAME] header */
};

/* A [container NAME] section: clients whose cgroup and/or uid match are that
 * container. Its devices = replaces allow-users/allow-groups for them (root
 * in a container gets only these), and its limits count all its clients together. */
struct config_container {
	char name[CONFIG_DEVICE_NAME_MAX + 1]; /* [a-zA-Z0-9_-]{1,32} */
	char **cgroups;    /* fnmatch() globs over the cgroup v2 path, '*' crossing '/' */
	size_t n_cgroups;
	bool has_uid_range;
	uid_t uid_min, uid_max; /* inclusive */
	char **devices;    /* names of [device NAME] sections it may use (checked at load) */
	size_t n_devices;
	uint64_t max_bytes;  /* all its clients, all devices; CONFIG_UNLIMITED if not set */
	uint32_t max_leases; /* all its clients; UINT32_MAX if not set */
	unsigned line;       /* of the [container NAME] header */
};

struct config_limits {
	uint32_t max_clients;           /* connections at once, all uids */
	uint32_t max_clients_per_uid;
	uint32_t max_leases;            /* leases at once, all clients */
	uint32_t max_leases_per_client;
	uint32_t max_leases_per_uid;
	uint64_t max_bytes_per_uid;     /* all devices together; CONFIG_UNLIMITED by default */
	uint32_t max_queued_events;     /* per client, before it is disconnected as too slow */
	uint32_t handshake_timeout_ms;  /* connect to HELLO */
	uint32_t idle_timeout_s;        /* 0: never */
	uint32_t pause_grace_ms;        /* default deadline given to clients before a reset */
	uint32_t reclaim_timeout_s;     /* after a restart: how long orphaned leases wait */
	uint32_t max_grants_per_lease;  /* GRANTs one lease may have at once */
	uint32_t max_holders_per_window; /* OPENs of one window at once, all clients */
	uint32_t max_opens_per_client;  /* windows of others one connection holds open */
	uint32_t idle_buffers;          /* released buffers kept per device to lend again */
};

/* [daemon] share-with: whom a lease's owner may share it with (GRANT/OPEN). */
enum config_share_with {
	CONFIG_SHARE_SAME_UID,   /* only clients of the owner's uid */
	CONFIG_SHARE_SAME_GROUP, /* also clients that share a group with the owner (default) */
	CONFIG_SHARE_ANYONE,     /* any client the socket lets in */
};

struct config {
	char *path; /* the file name used in messages */

	char *socket_path;
	mode_t socket_mode;
	char *socket_group; /* as written, or the default */
	gid_t socket_gid;   /* CONFIG_GID_NONE: leave the socket's group as created */
	int log_level;      /* enum log_level from common/log.h */
	char *admin_group;  /* as written, or the default */
	gid_t admin_gid;    /* CONFIG_GID_NONE: only root is admin */
	enum config_share_with share_with;
	/* [daemon] share-with-users, share-with-groups: who may be granted to
	 * and open shared windows besides what share-with allows. */
	uid_t *share_uids;
	char **share_user_names; /* parallel; NULL where a number was written */
	size_t n_share_uids;
	gid_t *share_gids;
	char **share_group_names;
	size_t n_share_gids;

	struct config_limits limits;

	struct config_device *devices;
	size_t n_devices;

	struct config_container *containers; /* in file order: the first match wins */
	size_t n_containers;

	/* Things that load but are probably not what the admin meant, e.g. no
	 * devices at all or a missing default group. The caller logs each. */
	char **warnings;
	size_t n_warnings;

	uint64_t page_size; /* the reserve alignment that was checked */
};

/* Returns 0, or -EINVAL with *ret_error set to one line per problem; -errno if
 * the file cannot be read (*ret_error says so too); -ENOMEM. On success
 * *ret_error is NULL. ret_error may be NULL. */
int config_load_file(const char *path, struct config **ret, char **ret_error);
/* Same for text in memory; name is used in messages (NULL: "barkeep.conf"). */
int config_load_string(const char *text, const char *name, struct config **ret,
		       char **ret_error);
struct config *config_free(struct config *c);

/* By name or PCI address (any accepted spelling); NULL if there is none. */
const struct config_device *config_find_device(const struct config *c, const char *key);

/* By name; NULL if there is none. */
const struct config_container *config_find_container(const struct config *c, const char *name);

/* "root, user alice (1001), group barkeep (999)": who may use d, for messages
 * such as a refused ALLOC (open_memstream() gives a string). */
void config_device_print_access(const struct config_device *d, FILE *f);

/* Writes a human summary, for barkeepd --check-config. */
void config_dump(const struct config *c, FILE *f);

/* A decimal or 0x-hex number with an optional binary unit: "4096", "0x1000",
 * "64M", "2 GiB". Returns 0, -EINVAL (not a size) or -ERANGE (2^64 or more). */
int config_parse_size(const char *s, uint64_t *ret);
/* "64 MiB" when exact in some unit, else bytes; "infinity" for CONFIG_UNLIMITED. */
const char *config_format_size(uint64_t bytes, char buf[static CONFIG_SIZE_STR_MAX]);
/* Accepts "0000:00:03.0", "10000:00:03.0" and the short "00:03.0"; writes the
 * normalised lower-case form. Returns 0 or -EINVAL. */
int config_parse_pci(const char *s, char ret[static CONFIG_PCI_ADDR_MAX]);
const char *config_backend_to_string(enum config_backend b);
/* "same-uid", "same-group", "anyone". */
const char *config_share_with_to_string(enum config_share_with s);

static inline void config_freep(struct config **c) { *c = config_free(*c); }
#define _cleanup_config_ _cleanup_(config_freep)

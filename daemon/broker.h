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

struct broker;
struct client;
struct policy_usage;

struct client_creds {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[BROKER_MAX_GROUPS]; /* supplementary groups */
	size_t n_groups;
};

struct lease_image {
	uint32_t fourcc, width, height, n_planes;
	uint64_t modifier;
	uint32_t offsets[4], strides[4];
};

enum { LEASE_EXCLUSIVE = 1u << 0, LEASE_WRITE_COMBINE = 1u << 1, LEASE_IMAGE = 1u << 2 };

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
};

/* Broker -> transport: events for one client. */
enum broker_event_type {
	BROKER_EVENT_DEVICE_PAUSE = 1,
	BROKER_EVENT_DEVICE_RESUME,
	BROKER_EVENT_DEVICE_GONE,
	BROKER_EVENT_LEASE_REVOKED,
};

struct broker_event {
	enum broker_event_type type;
	uint32_t device_id;
	uint64_t lease_id;
	uint64_t generation;
	uint32_t reason, flags, deadline_ms;
};

struct client_ops {
	/* Queues an event; returns -ENOBUFS when the client's queue is full. */
	int (*send_event)(struct client *c, const struct broker_event *ev, void *userdata);
};

struct client {
	uint32_t id;
	struct broker *broker;
	struct client_creds creds;
	char name[65];
	struct list link;
	struct list leases; /* struct lease.client_link */
	unsigned n_leases;
	uint64_t bytes;
	const struct client_ops *ops;
	void *userdata;
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
int broker_open_devices(struct broker *b, broker_open_failed_cb cb);

/* -EUSERS when a connection limit is hit (err says which). */
int broker_client_new(struct broker *b, const struct client_creds *creds,
		      const struct client_ops *ops, void *userdata, struct client **ret,
		      struct error_info *err);
/* Ends every lease of the client and frees it. */
struct client *broker_client_free(struct client *c);
void broker_client_set_name(struct client *c, const char *name);

int broker_alloc(struct client *c, const struct alloc_request *req, struct lease **ret,
		 struct error_info *err);
int broker_release(struct client *c, uint64_t lease_id, struct error_info *err);

/* Frees quarantined windows whose buffers were closed; returns how many. */
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

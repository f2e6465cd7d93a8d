// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>

#include "common/poison.h"
#include "common/vfio.h"
#include "daemon/allocator.h"
#include "daemon/broker-private.h"
#include "daemon/fdinfo.h"
#include "daemon/idle.h"
#include "daemon/image.h"
#include "daemon/pause.h"
#include "daemon/persist.h"
#include "daemon/policy.h"
#include "daemon/scrub.h"
#include "daemon/share.h"

int broker_new(struct config *cfg, struct broker **ret)
{
	struct broker *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = cfg;
	list_init(&b->clients);
	b->next_lease_id = 1;
	b->next_grant_id = 1;
	b->next_client_id = 1;
	list_init(&b->grants);
	int r = policy_usage_new(cfg, &b->usage);
	if (r < 0) {
		free(b);
		return r;
	}
	*ret = b;
	return 0;
}

struct broker *broker_free(struct broker *b)
{
	struct client *c, *tmp;

	if (!b)
		return NULL;
	list_for_each_safe(c, tmp, &b->clients, link)
		broker_client_free(c);
	if (b->ev_orphans)
		event_free(b->ev_orphans);
	for (size_t i = 0; i < b->n_devices; i++) {
		struct lease *l, *ltmp;
		list_for_each_safe(l, ltmp, &b->devices[i]->orphans, device_link)
			broker_orphan_end(b, l, ORPHAN_END_SHUTDOWN);
		pause_abort(b->devices[i]);
		pause_unwatch(b->devices[i]);
		device_free(b->devices[i]);
	}
	free(b->devices);
	fdinfo_cache_free(b->fdinfo);
	share_forget_all(b);
	policy_usage_free(b->usage);
	if (b->spare_lease)
		mem_unpoison(b->spare_lease, sizeof(*b->spare_lease));
	free(b->spare_lease);
	free(b);
	return NULL;
}

int broker_open_devices(struct broker *b, broker_open_failed_cb cb, broker_adopt_cb adopt,
			void *userdata)
{
	b->devices = calloc(b->cfg->n_devices ? b->cfg->n_devices : 1, sizeof(*b->devices));
	if (!b->devices)
		return -ENOMEM;
	for (size_t i = 0; i < b->cfg->n_devices; i++) {
		struct error_info err = {};
		struct device *d;
		/* Ids follow the config's order and survive skipped devices. */
		int r = adopt ? adopt(&b->cfg->devices[i], (uint32_t)i, &d, userdata) : 0;
		if (r > 0) {
			b->devices[b->n_devices++] = d;
			continue;
		}
		if (device_open(&b->cfg->devices[i], (uint32_t)i, NULL, 0, &d, &err) < 0) {
			if (cb)
				cb(&b->cfg->devices[i], &err);
			continue;
		}
		b->devices[b->n_devices++] = d;
	}
	return (int)b->n_devices;
}

const struct config *broker_config(const struct broker *b) { return b->cfg; }
size_t broker_n_devices(const struct broker *b) { return b->n_devices; }
struct device *broker_device(const struct broker *b, size_t i) { return i < b->n_devices ? b->devices[i] : NULL; }
size_t broker_n_clients(const struct broker *b) { return b->n_clients; }
size_t broker_n_leases(const struct broker *b) { return b->n_leases; }

bool broker_may_use(const struct client *c, const struct device *d)
{
	if (c->container)
		return policy_container_may_use(c->container, d->cfg) == 0;
	return policy_may_use_device(d->cfg, c->creds.uid, c->creds.groups, c->creds.n_groups) == 0;
}

static int quota_error(struct error_info *err, int r, const struct policy_quota_hit *hit)
{
	char why[ERROR_TEXT_MAX];

	if (hit->limit == POLICY_LIMIT_NONE || policy_quota_hit_format(hit, why, sizeof(why)) < 0)
		return error_set(err, -r, "%s", strerror(-r));
	return error_set(err, -r, "%s", why);
}

/* A new lease's bytes onto the client's uid's (and container's) quota. */
static int charge(struct broker *b, struct client *c, struct device *d, uint64_t size,
		  struct error_info *err)
{
	struct policy_quota_hit hit;
	int r = policy_charge_lease(b->usage, d->cfg, c->creds.uid, c->n_leases, size, &hit);
	if (r < 0)
		return quota_error(err, r, &hit);
	if (c->container) {
		r = policy_charge_container_lease(b->usage, c->container, size, &hit);
		if (r < 0) {
			policy_uncharge_lease(b->usage, d->cfg, c->creds.uid, size);
			return quota_error(err, r, &hit);
		}
	}
	return 0;
}

static bool broker_uses_cgroups(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_containers; i++)
		if (cfg->containers[i].n_cgroups)
			return true;
	return false;
}

int broker_client_new(struct broker *b, const struct client_creds *creds,
		      const struct client_ops *ops, void *userdata, struct client **ret,
		      struct error_info *err)
{
	const struct config_container *ct = policy_find_container(b->cfg, creds->cgroup, creds->uid);
	struct policy_quota_hit hit;
	int r;

	/* Fail closed: a client whose cgroup cannot be read might be a container's. */
	if (!ct && creds->cgroup_error < 0 && broker_uses_cgroups(b->cfg))
		return error_set(err, EACCES, "cannot read the cgroup of pid %d (%s), which decides "
				 "whether it is one of the [container] sections of %s",
				 (int)creds->pid, strerror(-creds->cgroup_error), b->cfg->path);
	r = policy_charge_client(b->usage, creds->uid, &hit);
	if (r < 0)
		return quota_error(err, r, &hit);

	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		policy_uncharge_client(b->usage, creds->uid);
		return error_set(err, ENOMEM, "out of memory");
	}
	c->id = b->next_client_id++;
	c->broker = b;
	c->creds = *creds;
	c->container = ct;
	c->ops = ops;
	c->userdata = userdata;
	snprintf(c->name, sizeof(c->name), "pid%d", (int)creds->pid);
	list_init(&c->leases);
	list_insert_tail(&b->clients, &c->link);
	b->n_clients++;
	*ret = c;
	return 0;
}

void broker_client_set_name(struct client *c, const char *name)
{
	snprintf(c->name, sizeof(c->name), "%s", name);
}

void broker_client_set_events(struct client *c, bool acks_pauses, bool watches)
{
	c->acks_pauses = acks_pauses;
	c->watches = watches;
}

void broker_client_set_sharing(struct client *c, bool shares)
{
	c->shares = shares;
}

void broker_set_event_base(struct broker *b, struct event_base *base)
{
	b->base = base;
	/* Without the cache (no memory) reference counts are read the plain way. */
	b->fdinfo = fdinfo_cache_new(base);
	/* A device that cannot be watched still lends; main.c says so. One
	 * without a scrub worker zeroes released windows in place. */
	for (size_t i = 0; i < b->n_devices; i++) {
		b->devices[i]->fdinfo = b->fdinfo;
		b->devices[i]->idle = idle_pool_new(base, b->cfg->limits.idle_buffers,
						    IDLE_POOL_TIMEOUT_MS);
		(void)pause_watch(b, b->devices[i]);
		(void)scrub_start(b->devices[i], base);
	}
}

void broker_set_hooks(struct broker *b, const struct broker_hooks *hooks, void *userdata)
{
	b->hooks = hooks;
	b->hooks_data = userdata;
}

/* A lease's bytes off its uid's (and container's) quota. */
static void uncharge(struct broker *b, struct device *d, uid_t uid,
		     const struct config_container *ct, uint64_t size)
{
	policy_uncharge_lease(b->usage, d->cfg, uid, size);
	if (ct)
		policy_uncharge_container_lease(b->usage, ct, size);
}

void broker_window_end(struct broker *b, struct device *d, uid_t uid,
		       const struct config_container *ct, uint64_t offset, uint64_t size,
		       const int *fds, size_t n, const struct window_store *ws, bool reusable)
{
	uncharge(b, d, uid, ct, size);
	device_window_release_fds(d, offset, size, fds, n, ws, reusable);
}

void broker_orphan_end(struct broker *b, struct lease *l, enum orphan_end why)
{
	struct device *d = l->device;

	if (why != ORPHAN_END_SHUTDOWN) {
		struct orphan_tomb *t = &b->orphan_tombs[b->next_orphan_tomb++ % ORPHAN_TOMBS_MAX];
		*t = (struct orphan_tomb){ .id = l->id, .uid = l->orphan_uid, .why = why,
					   .device = d->cfg->name };
		memcpy(t->token, l->token, sizeof(t->token));
	}

	list_remove(&l->device_link);
	d->n_orphans--;
	b->n_orphans--;
	device_window_release(d, l->offset, l->size, l->fd, &l->store);
	broker_lease_free(b, l);
}

void broker_lease_end(struct lease *l)
{
	struct client *c = l->owner;
	struct broker *b = c->broker;
	struct device *d = l->device;

	list_remove(&l->device_link);
	list_remove(&l->client_link);
	d->n_leases--;
	if (l->flags & LEASE_EXCLUSIVE)
		d->n_exclusive--;
	if (l->flags & LEASE_OPENED) {
		c->n_opens--;
	} else {
		c->n_leases--;
		c->bytes -= l->size;
	}
	b->n_leases--;
	if (l->share)
		share_lease_end(l); /* the window lives while anyone holds it */
	else
		broker_window_end(b, d, c->creds.uid, c->container, l->offset, l->size, &l->fd, 1,
				  &l->store, !(l->flags & (LEASE_WRITE_COMBINE | LEASE_READ_ONLY)));
	broker_lease_free(b, l);
}

void broker_leases_end(struct list *leases, size_t link_offset)
{
	/* Ending an owner's lease may end its holders' leases, which may be
	 * next in the list: always take the first one. */
	while (!list_empty(leases))
		broker_lease_end((struct lease *)((char *)leases->next - link_offset));
}

struct client *broker_client_free(struct client *c)
{
	if (!c)
		return NULL;
	broker_leases_end(&c->leases, offsetof(struct lease, client_link));
	for (size_t i = 0; i < c->broker->n_devices; i++)
		pause_forget_client(c->broker->devices[i], c);
	policy_uncharge_client(c->broker->usage, c->creds.uid);
	list_remove(&c->link);
	c->broker->n_clients--;
	free(c);
	return NULL;
}

static struct device *find_device(struct broker *b, const struct alloc_request *req)
{
	for (size_t i = 0; i < b->n_devices; i++) {
		struct device *d = b->devices[i];
		if (req->device_by_id ? d->id == req->device_id
				      : config_find_device(b->cfg, req->device) == d->cfg)
			return d;
	}
	return NULL;
}

/* "Any device": the first allowed, ready one with room; else one whose
 * released windows, once zeroed, may make room (the ALLOC waits for them). */
static struct device *pick_device(struct client *c, uint64_t size)
{
	struct broker *b = c->broker;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < b->n_devices; i++) {
			struct device *d = b->devices[i];
			if (d->state == DEVICE_READY && broker_may_use(c, d) && !d->n_exclusive &&
			    (pass ? d->dirty_bytes > 0 : allocator_largest_free(d->alloc) >= size))
				return d;
		}
	return NULL;
}

static int check_device(struct client *c, struct device *d, uint32_t flags, struct error_info *err)
{
	if (!broker_may_use(c, d)) {
		if (c->container)
			return error_set(err, EACCES, "container %s may not use device %s (it is not "
					 "in devices = of [container %s] in %s)", c->container->name,
					 device_name(d), c->container->name, c->broker->cfg->path);
		return error_set(err, EACCES, "uid %u may not use device %s (see allow-users/allow-groups in %s)",
				 c->creds.uid, device_name(d), c->broker->cfg->path);
	}
	if (d->state == DEVICE_PAUSED)
		return error_set(err, EAGAIN, "device %s is resetting, retry", device_name(d));
	if (d->state == DEVICE_GONE)
		return error_set(err, ENODEV, "device %s is gone", device_name(d));
	if (d->n_exclusive)
		return error_set(err, EBUSY, "device %s is held exclusively by another lease", device_name(d));
	if ((flags & LEASE_WRITE_COMBINE) && !(d->info.features & DEVICE_FEATURE_MEMATTR_WC))
		return error_set(err, EOPNOTSUPP, "device %s cannot map buffers write-combined "
				 "(the kernel lacks the dma-buf memory attribute feature)", device_name(d));
	if ((flags & LEASE_EXCLUSIVE) && d->n_leases)
		return error_set(err, EBUSY, "device %s has %u leases; an exclusive lease needs it idle",
				 device_name(d), d->n_leases);
	return 0;
}

/* Counts the lease as the client's and the device's. */
static void lease_link(struct broker *b, struct client *c, struct lease *l)
{
	struct device *d = l->device;

	list_insert_tail(&d->leases, &l->device_link);
	list_insert_tail(&c->leases, &l->client_link);
	d->n_leases++;
	if (l->flags & LEASE_EXCLUSIVE)
		d->n_exclusive++;
	if (l->flags & LEASE_OPENED) {
		c->n_opens++;
	} else {
		c->n_leases++;
		c->bytes += l->size;
	}
	b->n_leases++;
}

int broker_alloc(struct client *c, const struct alloc_request *req, struct lease **ret,
		 struct error_info *err)
{
	struct broker *b = c->broker;
	struct device *d;
	int r;

	if (req->size == 0)
		return error_set(err, EINVAL, "size 0 asked for; a lease needs at least one page");
	if (req->alignment && !IS_POWER_OF_2(req->alignment))
		return error_set(err, EINVAL, "alignment %llu is not a power of two",
				 (unsigned long long)req->alignment);
	if (req->flags & ~(uint32_t)(LEASE_EXCLUSIVE | LEASE_WRITE_COMBINE | LEASE_IMAGE))
		return error_set(err, EINVAL, "unknown ALLOC flags %#x", req->flags);

	if (req->device_by_id || (req->device && *req->device)) {
		d = find_device(b, req);
		if (!d) {
			if (req->device_by_id)
				return error_set(err, ENODEV, "no device with id %u", req->device_id);
			return error_set(err, ENODEV, "no device named %s", req->device);
		}
	} else {
		d = pick_device(c, req->size);
		if (!d)
			return error_set(err, ENOSPC, "no device you may use has %llu bytes free",
					 (unsigned long long)req->size);
	}
	r = check_device(c, d, req->flags, err);
	if (r < 0)
		return r;
	if (req->size > d->info.bar_size)
		return error_set(err, E2BIG, "asked for %llu bytes; device %s's BAR%u is only %llu bytes",
				 (unsigned long long)req->size, device_name(d), d->info.bar,
				 (unsigned long long)d->info.bar_size);
	uint64_t size = ALIGN_UP(req->size, d->info.page_size);
	if (req->flags & LEASE_IMAGE) {
		r = image_check(&req->image, size, err);
		if (r < 0)
			return r;
	}
	r = charge(b, c, d, size, err);
	if (r < 0)
		return r;

	struct lease *l = broker_lease_new(b);
	if (!l) {
		r = error_set(err, ENOMEM, "out of memory");
		goto fail_uncharge;
	}
	r = device_window_new(d, size, req->alignment, O_RDWR, &l->offset, &l->fd, err);
	if (r < 0)
		goto fail_free;
	if (req->flags & LEASE_WRITE_COMBINE) {
		r = d->ops->set_write_combine(d->backend, l->fd);
		if (r < 0) {
			device_window_release(d, l->offset, size, l->fd, &WINDOW_STORE_NONE);
			r = error_set(err, -r, "device %s refused write-combining for the buffer: %s",
				      device_name(d), strerror(-r));
			goto fail_free;
		}
	}
	l->device = d;
	l->size = size;
	l->flags = req->flags;
	l->image = req->image;
	r = broker_lease_add(c, l, c->creds.uid, 0, err);
	if (r < 0) {
		device_window_release(d, l->offset, size, l->fd, &WINDOW_STORE_NONE);
		goto fail_free;
	}
	*ret = l;
	return 0;

fail_free:
	broker_lease_free(b, l);
fail_uncharge:
	uncharge(b, d, c->creds.uid, c->container, size);
	return r;
}

struct lease *broker_lease_new(struct broker *b)
{
	struct lease *l = b->spare_lease;

	if (!l)
		return calloc(1, sizeof(*l));
	b->spare_lease = NULL;
	mem_unpoison(l, sizeof(*l));
	memset(l, 0, sizeof(*l));
	return l;
}

void broker_lease_free(struct broker *b, struct lease *l)
{
	if (b->spare_lease) {
		free(l);
		return;
	}
	explicit_bzero(l->token, sizeof(l->token)); /* a secret: not kept until reuse */
	b->spare_lease = l;
	mem_poison(l, sizeof(*l)); /* a use after the lease ended stays one */
}

int broker_random(struct broker *b, void *buf, size_t n)
{
	if (n > sizeof(b->random))
		return -EINVAL;
	if (b->n_random < n) {
		ssize_t got = getrandom(b->random, sizeof(b->random), 0);
		if (got != (ssize_t)sizeof(b->random))
			return -EIO;
		b->n_random = sizeof(b->random);
	}
	b->n_random -= n;
	/* Each byte is handed out once, and wiped as it goes: volatile keeps
	 * the wipe, and a token's few bytes need no call into libc. */
	volatile uint8_t *pool = b->random + b->n_random;
	uint8_t *out = buf;
	for (size_t i = 0; i < n; i++) {
		out[i] = pool[i];
		pool[i] = 0;
	}
	return 0;
}

/* Writes v in decimal at p (at most 20 characters); returns the end. */
static char *put_decimal(char *p, uint64_t v)
{
	char digits[20];
	size_t n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

int broker_lease_add(struct client *c, struct lease *l, uid_t name_uid, uint64_t name_id,
		     struct error_info *err)
{
	struct broker *b = c->broker;
	struct device *d = l->device;

	if (broker_random(b, l->token, sizeof(l->token)) < 0)
		return error_set(err, EIO, "no randomness for the lease token");
	l->id = b->next_lease_id++;
	l->owner = c;
	l->generation = d->generation;
	list_init(&l->share_link);

	/* fdinfo names the buffer after its window and holder, for admins:
	 * "barkeep:<lease>:<uid>", without snprintf() on the ALLOC path. */
	char name[64] = "barkeep:";
	char *p = put_decimal(name + strlen(name), name_id ? name_id : l->id);
	*p++ = ':';
	*put_decimal(p, name_uid) = '\0';
	(void)dmabuf_set_name(l->fd, name);
	/* A restart keeps the owner's lease; holders open theirs again. */
	l->store = WINDOW_STORE_NONE;
	if (!(l->flags & LEASE_OPENED)) {
		persist_lease_added(b->persist, l, b->next_lease_id);
	}
	lease_link(b, c, l);
	return 0;
}

struct lease *broker_find_lease(struct client *c, uint64_t lease_id)
{
	struct lease *l;

	list_for_each(l, &c->leases, client_link)
		if (l->id == lease_id)
			return l;
	return NULL;
}

int broker_release(struct client *c, uint64_t lease_id, struct error_info *err)
{
	struct lease *l = broker_find_lease(c, lease_id);
	if (!l)
		return error_set(err, ENOENT, "you hold no lease %llu", (unsigned long long)lease_id);
	broker_lease_end(l);
	return 0;
}

static struct device *device_by_id(struct broker *b, uint32_t id)
{
	for (size_t i = 0; i < b->n_devices; i++)
		if (b->devices[i]->id == id)
			return b->devices[i];
	return NULL;
}

int broker_reset(struct client *c, uint32_t device_id, bool force, uint32_t grace_ms,
		 uint32_t request_id, struct error_info *err)
{
	struct broker *b = c->broker;
	struct device *d;
	int r;

	if (c->container)
		return error_set(err, EPERM, "container %s may not reset devices, whatever its uid",
				 c->container->name);
	if (policy_is_admin(b->cfg, c->creds.uid, c->creds.groups, c->creds.n_groups) < 0) {
		if (b->cfg->admin_gid == CONFIG_GID_NONE)
			return error_set(err, EPERM, "uid %u may not reset devices: only root may",
					 c->creds.uid);
		return error_set(err, EPERM, "uid %u may not reset devices: only root and members of group %s may",
				 c->creds.uid, b->cfg->admin_group);
	}
	d = device_by_id(b, device_id);
	if (!d)
		return error_set(err, ENODEV, "no device with id %u", device_id);
	if (d->state == DEVICE_GONE)
		return error_set(err, ENODEV, "device %s is gone", device_name(d));
	if (d->state == DEVICE_PAUSED)
		return error_set(err, EBUSY, "device %s is already being reset; wait for it to resume",
				 device_name(d));
	struct pause_params p = {
		.action = PAUSE_THEN_RESET, .reason = BROKER_REASON_ADMIN,
		.flags = force ? BROKER_PAUSE_FORCE : 0,
		.grace_ms = force ? 0 : MIN(grace_ms ? grace_ms : b->cfg->limits.pause_grace_ms, BROKER_GRACE_MAX_MS),
		.requester = c, .request_id = request_id,
	};
	r = pause_begin(b, d, &p);
	if (r < 0)
		return error_set(err, -r, "device %s cannot be paused: %s", device_name(d), strerror(-r));
	return 0;
}

int broker_pause_ack(struct client *c, uint32_t device_id, uint64_t generation,
		     struct error_info *err)
{
	struct device *d = device_by_id(c->broker, device_id);
	if (!d)
		return error_set(err, ENODEV, "no device with id %u", device_id);
	if (pause_ack(d, c, generation) < 0) {
		if (d->state != DEVICE_PAUSED)
			return error_set(err, ESTALE, "device %s is not paused (generation %llu)",
					 device_name(d), (unsigned long long)d->generation);
		return error_set(err, ESTALE, "device %s is paused at generation %llu, not %llu",
				 device_name(d), (unsigned long long)d->generation,
				 (unsigned long long)generation);
	}
	return 0;
}

void broker_settle(struct broker *b)
{
	for (size_t i = 0; i < b->n_devices; i++)
		if (b->devices[i]->dirty_bytes)
			scrub_wait(b->devices[i]);
}

unsigned broker_sweep(struct broker *b)
{
	unsigned n = 0;
	for (size_t i = 0; i < b->n_devices; i++)
		n += device_sweep(b->devices[i]);
	return n;
}

uint64_t broker_quarantined_bytes(const struct broker *b)
{
	uint64_t n = 0;
	for (size_t i = 0; i < b->n_devices; i++)
		n += b->devices[i]->quarantined_bytes;
	return n;
}

bool broker_token_equal(const uint8_t a[BROKER_TOKEN_SIZE], const uint8_t b[BROKER_TOKEN_SIZE])
{
	uint8_t diff = 0;
	for (size_t i = 0; i < BROKER_TOKEN_SIZE; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static struct lease *find_orphan(struct broker *b, uint64_t lease_id)
{
	for (size_t i = 0; i < b->n_devices; i++) {
		struct lease *l;
		list_for_each(l, &b->devices[i]->orphans, device_link)
			if (l->id == lease_id)
				return l;
	}
	return NULL;
}

/* No orphan to give back: ENOENT, with the reason when the caller's token
 * names one that ended unclaimed. */
static int reclaim_refused(const struct broker *b, const struct client *c, uint64_t lease_id,
			   const uint8_t token[BROKER_TOKEN_SIZE], struct error_info *err)
{
	for (size_t i = 0; i < ORPHAN_TOMBS_MAX; i++) {
		const struct orphan_tomb *t = &b->orphan_tombs[i];
		if (!t->why || t->id != lease_id || t->uid != c->creds.uid ||
		    !broker_token_equal(t->token, token))
			continue;
		if (t->why == ORPHAN_END_DEVICE_GONE)
			return error_set(err, ENOENT, "no orphaned lease %llu for this token and uid: "
					 "it ended unclaimed when its device %s went away",
					 (unsigned long long)lease_id, t->device);
		return error_set(err, ENOENT, "no orphaned lease %llu for this token and uid: "
				 "nobody reclaimed it within reclaim-timeout-s (%u s) of the restart",
				 (unsigned long long)lease_id, b->cfg->limits.reclaim_timeout_s);
	}
	return error_set(err, ENOENT, "no orphaned lease %llu for this token and uid",
			 (unsigned long long)lease_id);
}

int broker_reclaim(struct client *c, uint64_t lease_id, const uint8_t token[BROKER_TOKEN_SIZE],
		   struct lease **ret, struct error_info *err)
{
	struct broker *b = c->broker;
	struct lease *l = find_orphan(b, lease_id);
	bool match = l && broker_token_equal(l->token, token);

	if (!match || l->orphan_uid != c->creds.uid)
		return reclaim_refused(b, c, lease_id, token, err);
	struct device *d = l->device;
	int r = charge(b, c, d, l->size, err);
	if (r < 0)
		return r;
	/* A holder that comes during a pause hears of it, and so of its end. */
	r = pause_join(d, c);
	if (r < 0) {
		uncharge(b, d, c->creds.uid, c->container, l->size);
		return error_set(err, -r, "out of memory while telling you of device %s's pause (%s)",
				 device_name(d), strerror(-r));
	}
	list_remove(&l->device_link);
	d->n_orphans--;
	b->n_orphans--;
	l->owner = c;
	lease_link(b, c, l);
	*ret = l;
	return 0;
}

int broker_adopt_lease(struct broker *b, struct device *d, const struct fdstore_lease *rec, int fd,
		       const struct window_store *ws)
{
	int r = allocator_claim(d->alloc, rec->offset, rec->size);
	if (r < 0)
		return r;
	struct lease *l = broker_lease_new(b);
	if (!l) {
		allocator_release(d->alloc, rec->offset, rec->size);
		return -ENOMEM;
	}
	*l = (struct lease){ .id = rec->id, .device = d, .offset = rec->offset, .size = rec->size,
			     .generation = rec->generation, .flags = rec->flags, .image = rec->image,
			     .fd = fd, .store = *ws, .orphan_uid = rec->uid };
	memcpy(l->token, rec->token, sizeof(l->token));
	list_init(&l->share_link);
	list_insert_tail(&d->orphans, &l->device_link);
	d->n_orphans++;
	b->n_orphans++;
	if (rec->id >= b->next_lease_id)
		b->next_lease_id = rec->id + 1;
	return 0;
}

static void on_orphans_expired(evutil_socket_t fd, short what, void *userdata)
{
	struct broker *b = userdata;
	for (size_t i = 0; i < b->n_devices; i++) {
		struct lease *l, *tmp;
		list_for_each_safe(l, tmp, &b->devices[i]->orphans, device_link)
			broker_orphan_end(b, l, ORPHAN_END_TIMEOUT);
	}
	if (b->hooks && b->hooks->orphans_expired)
		b->hooks->orphans_expired(b, b->hooks_data);
}

int broker_arm_orphans(struct broker *b, uint32_t timeout_ms)
{
	if (!b->n_orphans)
		return 0;
	b->ev_orphans = evtimer_new(b->base, on_orphans_expired, b);
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	if (!b->ev_orphans || evtimer_add(b->ev_orphans, &tv) < 0)
		return -ENOMEM;
	return 0;
}

static bool holds_on(const struct client *c, const struct device *d)
{
	const struct lease *l;
	list_for_each(l, &c->leases, client_link)
		if (l->device == d)
			return true;
	return false;
}

unsigned broker_shutdown(struct broker *b)
{
	struct client *c;
	unsigned n = 0;

	list_for_each(c, &b->clients, link)
		for (size_t i = 0; i < b->n_devices; i++) {
			struct device *d = b->devices[i];
			if (d->state == DEVICE_GONE || (!c->watches && !holds_on(c, d)))
				continue;
			struct broker_event ev = { .type = BROKER_EVENT_DEVICE_GONE, .device_id = d->id,
						   .reason = BROKER_REASON_SHUTDOWN };
			n += c->ops->send_event(c, &ev, c->userdata) == 0;
		}
	return n;
}

void broker_set_persist(struct broker *b, struct persist *p)
{
	b->persist = p;
}

size_t broker_n_orphans(const struct broker *b) { return b->n_orphans; }

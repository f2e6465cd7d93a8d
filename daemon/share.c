// SPDX-License-Identifier: MIT
/*
 * Grants and holders of shared windows; see share.h. Grants are few (at
 * most max-grants-per-lease per lease) and looked up by a linear scan of
 * the broker's list; a window's holders by its own list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/policy.h"
#include "daemon/persist.h"
#include "daemon/share.h"

#define TOMBS_MAX 256 /* ended token grants remembered for a clear refusal */

enum tomb_reason { TOMB_REVOKED = 1, TOMB_EXPIRED, TOMB_OWNER_RELEASED };

/* A token grant that ended: its token still gets a sentence saying why. */
struct share_tomb {
	uint8_t token[BROKER_TOKEN_SIZE];
	uint64_t grant_id, lease_id;
	enum tomb_reason reason;
};

struct grant {
	struct list link;        /* share->grants */
	struct list broker_link; /* broker->grants */
	struct share *share;
	uint64_t id;
	enum grant_to to;
	uint32_t to_id, flags;   /* GRANT_* */
	uint64_t expires_ms;     /* CLOCK_MONOTONIC; 0: never */
	uint8_t token[BROKER_TOKEN_SIZE];
	bool used;               /* a token grant that has been opened */
	unsigned n_holders;
};

struct share {
	struct broker *broker;
	struct device *device;
	uint64_t offset, size;
	uid_t owner_uid;         /* charged for the window until it ends */
	const struct config_container *owner_container;
	uint64_t owner_lease_id;
	struct lease *owner;     /* NULL once the owner released it */
	struct list grants;      /* struct grant.link */
	unsigned n_grants;
	struct list holders;     /* struct lease.share_link */
	unsigned n_holders;
	int *retired;            /* exports of ended holds that may still be referenced */
	size_t n_retired, cap_retired;
	unsigned busy;           /* an end walks the holders: free the share afterwards */
	struct window_store store; /* the owner's table slot (its fd left the fd store) */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static bool token_zero(const uint8_t *t)
{
	static const uint8_t zero[BROKER_TOKEN_SIZE];
	return broker_token_equal(t, zero);
}

static bool grant_expired(const struct grant *g, uint64_t now)
{
	return g->expires_ms && now >= g->expires_ms;
}

static const char *config_path(const struct broker *b)
{
	return b->cfg->path;
}

/* ---- ending grants -------------------------------------------------------- */

static void tomb_add(struct broker *b, const struct grant *g, enum tomb_reason reason)
{
	if (g->to != GRANT_TO_TOKEN)
		return;
	if (!b->tombs) {
		b->tombs = calloc(TOMBS_MAX, sizeof(*b->tombs));
		if (!b->tombs)
			return; /* the token is refused all the same, less precisely */
	}
	struct share_tomb *t = &b->tombs[b->next_tomb++ % TOMBS_MAX];
	memcpy(t->token, g->token, sizeof(t->token));
	t->grant_id = g->id;
	t->lease_id = g->share->owner_lease_id;
	t->reason = reason;
}

static const struct share_tomb *tomb_find(const struct broker *b, const uint8_t *token)
{
	for (size_t i = 0; b->tombs && i < TOMBS_MAX; i++)
		if (b->tombs[i].reason && broker_token_equal(b->tombs[i].token, token))
			return &b->tombs[i];
	return NULL;
}

/* Frees a grant; the leases opened through it stay (they forget it). */
static void grant_free(struct grant *g, enum tomb_reason reason)
{
	struct share *s = g->share;
	struct lease *h;

	tomb_add(s->broker, g, reason);
	list_for_each(h, &s->holders, share_link)
		if (h->grant == g)
			h->grant = NULL;
	list_remove(&g->link);
	list_remove(&g->broker_link);
	s->n_grants--;
	explicit_bzero(g->token, sizeof(g->token));
	free(g);
}

/* Grants past their expiry that nobody opened through hold no one's access:
 * they only take room. */
static void drop_expired(struct share *s)
{
	struct grant *g, *tmp;
	uint64_t now = now_ms();

	list_for_each_safe(g, tmp, &s->grants, link)
		if (grant_expired(g, now) && g->n_holders == 0)
			grant_free(g, TOMB_EXPIRED);
}

/* ---- the window's exports and lifetime ------------------------------------ */

/* Room to retire every export the window has now, so that ending a hold
 * never fails. */
static int share_reserve(struct share *s, size_t extra)
{
	size_t need = s->n_retired + s->n_holders + 1 + extra;
	if (need <= s->cap_retired)
		return 0;
	int *r = reallocarray(s->retired, need, sizeof(*r));
	if (!r)
		return -ENOMEM;
	s->retired = r;
	s->cap_retired = need;
	return 0;
}

/* An ended hold's export: gone at once when nobody else holds it or the
 * kernel revokes it, else kept so that the window is reused only when it
 * is unreferenced too. Looks again at the ones kept before. */
static void share_retire(struct share *s, int fd)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_retired; i++) {
		if (device_buffer_done(s->device, s->retired[i]))
			safe_close(s->retired[i]);
		else
			s->retired[n++] = s->retired[i];
	}
	s->n_retired = n;
	if (device_buffer_done(s->device, fd))
		safe_close(fd);
	else
		s->retired[s->n_retired++] = fd; /* reserved by share_reserve() */
}

static void share_maybe_free(struct share *s)
{
	if (s->busy || s->owner || s->n_holders)
		return;
	broker_window_end(s->broker, s->device, s->owner_uid, s->owner_container, s->offset,
			  s->size, s->retired, s->n_retired, &s->store, false);
	free(s->retired);
	free(s);
}

static void tell(struct lease *h, const struct broker_event *ev)
{
	struct client *c = h->owner;
	/* A client that cannot take it is being disconnected by its transport. */
	(void)c->ops->send_event(c, ev, c->userdata);
}

/* The owner released the window: its grants go, and so does every holder
 * whose grant does not outlive the owner. */
static void owner_released(struct share *s)
{
	struct lease *h, *tmp;

	s->busy++;
	list_for_each_safe(h, tmp, &s->holders, share_link) {
		if (h->grant && (h->grant->flags & GRANT_OUTLIVE_OWNER))
			continue;
		/* On a GONE device DEVICE_GONE already said every lease ended. */
		if (s->device->state != DEVICE_GONE)
			tell(h, &(struct broker_event){ .type = BROKER_EVENT_LEASE_REVOKED,
					.device_id = s->device->id, .lease_id = h->id,
					.reason = BROKER_REVOKE_OWNER });
		broker_lease_end(h);
	}
	while (!list_empty(&s->grants))
		grant_free(container_of(s->grants.next, struct grant, link), TOMB_OWNER_RELEASED);
	s->busy--;
}

void share_lease_end(struct lease *l)
{
	struct share *s = l->share;

	if (l->flags & LEASE_OPENED) {
		list_remove(&l->share_link);
		s->n_holders--;
		if (l->grant)
			l->grant->n_holders--;
	} else {
		s->owner = NULL;
		owner_released(s);
	}
	share_retire(s, l->fd);
	l->fd = -EBADF;
	share_maybe_free(s);
}

void share_forget_all(struct broker *b)
{
	if (b->tombs)
		explicit_bzero(b->tombs, TOMBS_MAX * sizeof(*b->tombs));
	free(b->tombs);
	b->tombs = NULL;
}

/* ---- GRANT ------------------------------------------------------------------ */

static bool client_in_group(const struct client *c, gid_t gid)
{
	if (c->creds.gid == gid)
		return true;
	for (size_t i = 0; i < c->creds.n_groups; i++)
		if (c->creds.groups[i] == gid)
			return true;
	return false;
}

/* What share-with allows before the recipient is known; OPEN checks again
 * with the opener's credentials. */
static int check_recipient(struct client *c, const struct grant_request *req,
			   struct error_info *err)
{
	const struct config *cfg = c->broker->cfg;

	gid_t to_gid = req->to_id;
	if (req->to == GRANT_TO_TOKEN || cfg->share_with == CONFIG_SHARE_ANYONE)
		return 0;
	/* Listed users and groups may be granted to whatever share-with says. */
	if (req->to == GRANT_TO_UID ? policy_share_listed(cfg, req->to_id, NULL, 0)
				    : policy_share_listed(cfg, (uid_t)-1, &to_gid, 1))
		return 0;
	if (cfg->share_with == CONFIG_SHARE_SAME_UID &&
	    (req->to != GRANT_TO_UID || req->to_id != c->creds.uid))
		return error_set(err, EPERM, "uid %u may grant only to itself (share-with = same-uid "
				 "in %s)", c->creds.uid, config_path(c->broker));
	if (req->to == GRANT_TO_GID && !client_in_group(c, req->to_id))
		return error_set(err, EPERM, "uid %u is not in group %u, and may grant only to its own "
				 "groups (share-with = same-group in %s)", c->creds.uid, req->to_id,
				 config_path(c->broker));
	return 0;
}

static int check_grant_request(struct client *c, const struct grant_request *req,
			       const struct lease *l, struct error_info *err)
{
	if (!l)
		return error_set(err, ENOENT, "you hold no lease %llu", (unsigned long long)req->lease_id);
	if (l->flags & LEASE_OPENED)
		return error_set(err, EPERM, "lease %llu is another client's window you opened; only "
				 "its owner may grant it", (unsigned long long)l->id);
	if (req->to < GRANT_TO_UID || req->to > GRANT_TO_TOKEN)
		return error_set(err, EINVAL, "grant recipient kind %d is not uid (1), gid (2) or token (3)",
				 (int)req->to);
	if (req->to == GRANT_TO_TOKEN && req->to_id)
		return error_set(err, EINVAL, "a token grant names no uid or gid, got %u", req->to_id);
	if (req->flags & ~(uint32_t)GRANT_FLAGS_KNOWN)
		return error_set(err, EINVAL, "unknown GRANT flags %#x", req->flags);
	if ((req->flags & GRANT_READ_ONLY) && l->device->ops->kind == BACKEND_KIND_SYSMEM)
		return error_set(err, EOPNOTSUPP, "device %s exports only read-write buffers (udmabuf); "
				 "grant read-write", device_name(l->device));
	return check_recipient(c, req, err);
}

static struct share *share_get(struct lease *l)
{
	if (l->share)
		return l->share;
	struct share *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	*s = (struct share){ .broker = l->owner->broker, .device = l->device, .offset = l->offset,
			     .size = l->size, .owner_uid = l->owner->creds.uid,
			     .owner_container = l->owner->container, .owner_lease_id = l->id,
			     .owner = l };
	s->store = l->store;
	list_init(&s->grants);
	list_init(&s->holders);
	if (share_reserve(s, 1) < 0) {
		free(s);
		return NULL;
	}
	l->share = s;
	return s;
}

int broker_grant(struct client *c, const struct grant_request *req, struct grant_info *ret,
		 struct error_info *err)
{
	struct broker *b = c->broker;
	struct lease *l = broker_find_lease(c, req->lease_id);
	uint32_t max = b->cfg->limits.max_grants_per_lease;
	int r = check_grant_request(c, req, l, err);

	if (r < 0)
		return r;
	if (l->share)
		drop_expired(l->share);
	if (l->share && l->share->n_grants >= max)
		return error_set(err, EDQUOT, "lease %llu has %u grants, limit is %u "
				 "(max-grants-per-lease in %s); revoke one first",
				 (unsigned long long)l->id, l->share->n_grants, max, config_path(b));
	struct share *s = share_get(l);
	struct grant *g = s ? calloc(1, sizeof(*g)) : NULL;
	if (!g)
		return error_set(err, ENOMEM, "out of memory");
	*g = (struct grant){ .share = s, .to = req->to, .to_id = req->to_id, .flags = req->flags,
			     .expires_ms = req->ttl_ms ? now_ms() + req->ttl_ms : 0 };
	if (req->to == GRANT_TO_TOKEN &&
	    broker_random(b, g->token, sizeof(g->token)) < 0) {
		free(g);
		return error_set(err, EIO, "no randomness for the grant token");
	}
	g->id = b->next_grant_id++;
	list_insert_tail(&s->grants, &g->link);
	list_insert_tail(&b->grants, &g->broker_link);
	s->n_grants++;
	*ret = (struct grant_info){ .grant_id = g->id };
	memcpy(ret->token, g->token, sizeof(ret->token));
	return 0;
}

/* ---- OPEN ------------------------------------------------------------------- */

static int refuse_token(const struct broker *b, const uint8_t *token, struct error_info *err)
{
	const struct share_tomb *t = tomb_find(b, token);
	static const char *const why[] = {
		[TOMB_REVOKED] = "was revoked by the lease's owner",
		[TOMB_EXPIRED] = "has expired",
		[TOMB_OWNER_RELEASED] = "ended: the owner released the lease",
	};

	if (token_zero(token))
		return error_set(err, ENOENT, "the token is empty");
	if (t)
		return error_set(err, ENOENT, "the token of grant %llu (lease %llu) %s; ask the owner "
				 "for a new one", (unsigned long long)t->grant_id,
				 (unsigned long long)t->lease_id, why[t->reason]);
	return error_set(err, ENOENT, "no grant has this token (it is a 128-bit secret: check "
			 "that all 32 hex digits were copied)");
}

static int find_by_token(struct client *c, const uint8_t *token, struct grant **ret,
			 struct error_info *err)
{
	struct broker *b = c->broker;
	struct grant *g;

	list_for_each(g, &b->grants, broker_link) {
		if (g->to != GRANT_TO_TOKEN || !broker_token_equal(g->token, token))
			continue;
		if (g->used)
			return error_set(err, EACCES, "the token of grant %llu (lease %llu) was already "
					 "used: a token opens a window once; ask the owner for another",
					 (unsigned long long)g->id,
					 (unsigned long long)g->share->owner_lease_id);
		if (grant_expired(g, now_ms()))
			return error_set(err, ENOENT, "the token of grant %llu (lease %llu) has expired; "
					 "ask the owner for a new one", (unsigned long long)g->id,
					 (unsigned long long)g->share->owner_lease_id);
		*ret = g;
		return 0;
	}
	return refuse_token(b, token, err);
}

static bool grant_covers(const struct grant *g, const struct client *c)
{
	return (g->to == GRANT_TO_UID && g->to_id == c->creds.uid) ||
	       (g->to == GRANT_TO_GID && client_in_group(c, g->to_id));
}

static struct lease *find_owner_lease(struct broker *b, uint64_t lease_id)
{
	for (size_t i = 0; i < b->n_devices; i++) {
		struct lease *l;
		list_for_each(l, &b->devices[i]->leases, device_link)
			if (l->id == lease_id && !(l->flags & LEASE_OPENED))
				return l;
	}
	return NULL;
}

/* The best grant of the lease for the caller: an unexpired one that covers
 * it, read-write before read-only unless read-only was asked for. */
static int find_by_lease(struct client *c, uint64_t lease_id, bool read_only, struct grant **ret,
			 struct error_info *err)
{
	struct lease *l = find_owner_lease(c->broker, lease_id);
	struct grant *g, *best = NULL;
	uint64_t now = now_ms();
	bool expired = false;

	if (!l || !l->share)
		return error_set(err, ENOENT, "no lease %llu is granted to anyone; OPEN by lease needs a "
				 "grant to your uid or group", (unsigned long long)lease_id);
	list_for_each(g, &l->share->grants, link) {
		if (!grant_covers(g, c))
			continue;
		if (grant_expired(g, now)) {
			expired = true;
			continue;
		}
		if (!best || ((best->flags & GRANT_READ_ONLY) && !(g->flags & GRANT_READ_ONLY) && !read_only))
			best = g;
	}
	if (best) {
		*ret = best;
		return 0;
	}
	if (expired)
		return error_set(err, ENOENT, "the grant of lease %llu to you has expired; ask the "
				 "owner for a new one", (unsigned long long)lease_id);
	return error_set(err, EACCES, "lease %llu is not granted to uid %u or its groups",
			 (unsigned long long)lease_id, c->creds.uid);
}

static int owner_gids(const struct client *o, gid_t *gids)
{
	size_t n = 0;
	gids[n++] = o->creds.gid;
	for (size_t i = 0; i < o->creds.n_groups && n < BROKER_MAX_GROUPS + 1; i++)
		gids[n++] = o->creds.groups[i];
	return (int)n;
}

/* Everything that may refuse the caller a hold on s, in the order a user
 * would fix them. */
static int check_open(struct client *c, struct share *s, struct error_info *err)
{
	const struct config *cfg = c->broker->cfg;
	const struct client *o = s->owner->owner;
	struct device *d = s->device;
	gid_t og[BROKER_MAX_GROUPS + 1], cg[BROKER_MAX_GROUPS + 1];
	int n_og = owner_gids(o, og), n_cg = owner_gids(c, cg);

	if (policy_may_share(cfg, o->creds.uid, og, (size_t)n_og, c->creds.uid, cg, (size_t)n_cg) < 0)
		return error_set(err, EACCES, "uid %u may not open windows of uid %u (share-with = %s "
				 "in %s)", c->creds.uid, o->creds.uid,
				 config_share_with_to_string(cfg->share_with), cfg->path);
	if (c->container && policy_container_may_use(c->container, d->cfg) < 0)
		return error_set(err, EACCES, "container %s may not use device %s, where lease %llu "
				 "lives", c->container->name, device_name(d),
				 (unsigned long long)s->owner_lease_id);
	if (d->state == DEVICE_PAUSED)
		return error_set(err, EAGAIN, "device %s is resetting, retry", device_name(d));
	if (d->state == DEVICE_GONE)
		return error_set(err, ENODEV, "device %s is gone", device_name(d));
	if (c->n_opens >= cfg->limits.max_opens_per_client)
		return error_set(err, EDQUOT, "you hold %u opened windows, limit is %u "
				 "(max-opens-per-client in %s)", c->n_opens,
				 cfg->limits.max_opens_per_client, cfg->path);
	if (s->n_holders >= cfg->limits.max_holders_per_window)
		return error_set(err, EDQUOT, "the window of lease %llu has %u holders, limit is %u "
				 "(max-holders-per-window in %s)", (unsigned long long)s->owner_lease_id,
				 s->n_holders, cfg->limits.max_holders_per_window, cfg->path);
	if (share_reserve(s, 1) < 0)
		return error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* The new lease's own export of the window. */
static int open_export(struct share *s, bool read_only, struct lease *l, struct error_info *err)
{
	const struct lease *o = s->owner;
	struct device *d = s->device;
	int r = device_window_export(d, s->offset, s->size, read_only ? O_RDONLY : O_RDWR, &l->fd, err);

	if (r < 0)
		return r;
	if (o->flags & LEASE_WRITE_COMBINE) {
		r = d->ops->set_write_combine(d->backend, l->fd);
		if (r < 0) {
			l->fd = safe_close(l->fd);
			return error_set(err, -r, "device %s refused write-combining for the buffer: %s",
					 device_name(d), strerror(-r));
		}
	}
	l->device = d;
	l->offset = s->offset;
	l->size = s->size;
	l->flags = LEASE_OPENED | (read_only ? LEASE_READ_ONLY : 0) |
		   (o->flags & (LEASE_WRITE_COMBINE | LEASE_IMAGE));
	l->image = o->image;
	return 0;
}

int broker_open(struct client *c, const struct open_request *req, struct lease **ret,
		struct error_info *err)
{
	struct grant *g = NULL;
	int r = req->by_token ? find_by_token(c, req->token, &g, err)
			      : find_by_lease(c, req->lease_id, req->read_only, &g, err);
	if (r < 0)
		return r;
	struct share *s = g->share;
	r = check_open(c, s, err);
	if (r < 0)
		return r;

	bool read_only = req->read_only || (g->flags & GRANT_READ_ONLY);
	struct lease *l = broker_lease_new(c->broker);
	if (!l)
		return error_set(err, ENOMEM, "out of memory");
	r = open_export(s, read_only, l, err);
	if (r == 0) {
		r = broker_lease_add(c, l, c->creds.uid, s->owner_lease_id, err);
		if (r < 0)
			safe_close(l->fd);
	}
	if (r < 0) {
		broker_lease_free(c->broker, l);
		return r;
	}
	l->share = s;
	l->grant = g;
	list_insert_tail(&s->holders, &l->share_link);
	s->n_holders++;
	g->n_holders++;
	if (g->to == GRANT_TO_TOKEN)
		g->used = true;
	/* Holders' exports are not in the fd store: a restart cannot see them,
	 * so the table keeps the window out of use (persist.h) rather than
	 * letting the next process hand it out while they may be open. Only
	 * once the open succeeded (a refused one shares nothing), and before
	 * the export leaves the daemon with the reply. */
	if (s->owner && s->owner->store.stored) {
		persist_lease_shared(s->device->persist, &s->owner->store);
		s->store = s->owner->store;
	}
	*ret = l;
	return 0;
}

/* ---- REVOKE_GRANT and queries ----------------------------------------------- */

int broker_revoke_grant(struct client *c, uint64_t grant_id, struct error_info *err)
{
	struct grant *g;

	list_for_each(g, &c->broker->grants, broker_link)
		if (g->id == grant_id && g->share->owner && g->share->owner->owner == c)
			break;
	if (&g->broker_link == &c->broker->grants)
		return error_set(err, ENOENT, "you have no grant %llu", (unsigned long long)grant_id);

	struct share *s = g->share;
	struct lease *h, *tmp;
	s->busy++;
	list_for_each_safe(h, tmp, &s->holders, share_link) {
		if (h->grant != g)
			continue;
		tell(h, &(struct broker_event){ .type = BROKER_EVENT_GRANT_REVOKED,
				.device_id = s->device->id, .lease_id = h->id, .grant_id = g->id,
				.reason = BROKER_GRANT_REVOKED_OWNER });
		broker_lease_end(h);
	}
	grant_free(g, TOMB_REVOKED);
	s->busy--;
	share_maybe_free(s);
	return 0;
}

void broker_lease_holders(const struct lease *l, share_holder_fn fn, void *userdata)
{
	const struct lease *h;

	if (!l->share || (l->flags & LEASE_OPENED))
		return;
	list_for_each(h, &l->share->holders, share_link)
		fn(&(struct share_holder_info){ .lease_id = l->id, .holder_lease_id = h->id,
			.grant_id = h->grant ? h->grant->id : 0, .uid = h->owner->creds.uid,
			.read_only = h->flags & LEASE_READ_ONLY }, userdata);
}

void broker_opened_info(const struct lease *l, uint64_t *ret_grant_id, uint64_t *ret_owner_lease,
			uid_t *ret_owner_uid)
{
	bool opened = l->share && (l->flags & LEASE_OPENED);
	*ret_grant_id = opened && l->grant ? l->grant->id : 0;
	*ret_owner_lease = opened ? l->share->owner_lease_id : 0;
	*ret_owner_uid = opened ? l->share->owner_uid : 0;
}

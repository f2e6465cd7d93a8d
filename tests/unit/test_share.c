// SPDX-License-Identifier: MIT
/*
 * Sharing a window, driven through the core: grants by uid, gid and token,
 * every refusal and its sentence, the one lifetime of a window held by
 * several clients, quotas, and what holders are told. Exports are memfds
 * from a fake backend that records the access mode it was asked for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/allocator.h"
#include "daemon/broker-private.h"
#include "daemon/policy.h"
#include "tests/unit/unit.h"

#define MiB (1ull << 20)

static int last_open_flags;
static unsigned n_exports;

static struct backend_device *share_fake_close(struct backend_device *dev) { return NULL; }
static int share_fake_scrub(struct backend_device *dev, uint64_t offset, uint64_t size) { return 0; }

static int share_fake_export(struct backend_device *dev, uint64_t offset, uint64_t size, int flags)
{
	last_open_flags = flags;
	n_exports++;
	int fd = memfd_create("share-export", MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static const struct backend_ops share_ops = {
	.name = "share-fake", .kind = BACKEND_KIND_VFIO, .close = share_fake_close,
	.export = share_fake_export, .scrub = share_fake_scrub,
};

/* A client and the events it was sent. */
struct who {
	struct client *c;
	struct broker_event ev[8];
	int n_ev;
};

static int who_event(struct client *c, const struct broker_event *ev, void *userdata)
{
	struct who *w = userdata;
	if (w->n_ev < 8)
		w->ev[w->n_ev++] = *ev;
	return 0;
}

static const struct client_ops who_ops = { .send_event = who_event };

static struct config *cfg;
static struct broker *b;

static void start(const char *extra)
{
	char text[1024], *error = NULL;
	snprintf(text, sizeof(text), "[daemon]\nsocket = /tmp/test_share.sock\n%s\n"
		 "[device gpu0]\npci = 0000:00:03.0\nallow-users = root, 1000, 1001, 1002\n", extra);
	if (config_load_string(text, "share.conf", &cfg, &error) < 0 || broker_new(cfg, &b) < 0) {
		fprintf(stderr, "%s\n", error ? error : "broker_new failed");
		exit(1);
	}
	free(error);
	struct device *d = calloc(1, sizeof(*d));
	b->devices = calloc(1, sizeof(*b->devices));
	*d = (struct device){ .cfg = &cfg->devices[0], .ops = &share_ops, .state = DEVICE_READY,
			      .generation = 1, .error_fd = -EBADF };
	d->info = (struct backend_info){ .bar_size = 16 * MiB, .page_size = 4096 };
	list_init(&d->leases);
	list_init(&d->quarantine);
	list_init(&d->orphans);
	if (allocator_new(d->info.bar_size, d->info.page_size, &d->alloc) < 0)
		exit(1);
	b->devices[b->n_devices++] = d;
}

static void stop(void)
{
	b = broker_free(b);
	cfg = config_free(cfg);
}

static struct client *join(struct who *w, uid_t uid, gid_t gid)
{
	struct client_creds creds = { .uid = uid, .gid = gid, .pid = 1 };
	struct error_info err;
	*w = (struct who){};
	if (broker_client_new(b, &creds, &who_ops, w, &w->c, &err) < 0)
		exit(1);
	broker_client_set_sharing(w->c, true);
	return w->c;
}

static struct lease *alloc_one(struct client *c)
{
	struct alloc_request req = { .device_by_id = true, .size = MiB };
	struct lease *l = NULL;
	struct error_info err;
	CHECK_EQ(broker_alloc(c, &req, &l, &err), 0);
	return l;
}

static int grant(struct client *c, uint64_t lease, enum grant_to to, uint32_t id, uint32_t flags,
		 struct grant_info *ret, struct error_info *err)
{
	struct grant_request req = { .lease_id = lease, .to = to, .to_id = id, .flags = flags };
	struct grant_info ignored;
	return broker_grant(c, &req, ret ? ret : &ignored, err);
}

static int open_token(struct client *c, const uint8_t *token, struct lease **ret,
		      struct error_info *err)
{
	struct open_request req = { .by_token = true };
	memcpy(req.token, token, sizeof(req.token));
	return broker_open(c, &req, ret, err);
}

static int open_lease(struct client *c, uint64_t id, struct lease **ret, struct error_info *err)
{
	struct open_request req = { .lease_id = id };
	return broker_open(c, &req, ret, err);
}

/* The usual cast under share-with = anyone: an owner (uid 1000) with a
 * lease, and two others (uids 1001 and 1002, the last with gid third_gid). */
static struct lease *scene(struct who w[3], gid_t third_gid)
{
	start("share-with = anyone");
	join(&w[0], 1000, 1000);
	join(&w[1], 1001, 1001);
	join(&w[2], 1002, third_gid);
	return alloc_one(w[0].c);
}

static uint64_t allocated(void)
{
	return 16 * MiB - allocator_free_bytes(b->devices[0]->alloc);
}

static void test_token_once(void)
{
	struct who w[3], *o = &w[0], *h = &w[1], *t = &w[2];
	struct grant_info gi;
	struct error_info err;
	struct lease *mine = scene(w, 1002), *l, *again;
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_TOKEN, 0, 0, &gi, &err), 0);
	CHECK(gi.grant_id > 0);
	CHECK_EQ(open_token(h->c, gi.token, &l, &err), 0);
	CHECK_EQ(l->offset, mine->offset);
	CHECK_EQ(l->size, mine->size);
	CHECK(l->fd != mine->fd && l->fd >= 0);
	CHECK_EQ(l->flags, LEASE_OPENED);
	CHECK_EQ(last_open_flags & O_ACCMODE, O_RDWR);
	CHECK_EQ(h->c->n_opens, 1);
	CHECK_EQ(h->c->n_leases, 0);
	/* stolen: the token opens once */
	CHECK_EQ(open_token(t->c, gi.token, &again, &err), -EACCES);
	CHECK_CONTAINS(err.text, "already used");
	/* guessed */
	gi.token[3] ^= 1;
	CHECK_EQ(open_token(t->c, gi.token, &again, &err), -ENOENT);
	CHECK_CONTAINS(err.text, "no grant has this token");
	memset(gi.token, 0, sizeof(gi.token));
	CHECK_EQ(open_token(t->c, gi.token, &again, &err), -ENOENT);
	CHECK_CONTAINS(err.text, "empty");
	stop();
}

static void test_revoked_and_expired(void)
{
	struct who w[3], *o = &w[0], *h = &w[1];
	struct grant_info gi, g2;
	struct error_info err;
	struct lease *mine = scene(w, 1002), *l;
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_TOKEN, 0, 0, &gi, &err), 0);
	CHECK_EQ(broker_revoke_grant(h->c, gi.grant_id, &err), -ENOENT); /* not the owner */
	CHECK_EQ(broker_revoke_grant(o->c, gi.grant_id, &err), 0);
	CHECK_EQ(open_token(h->c, gi.token, &l, &err), -ENOENT);
	CHECK_CONTAINS(err.text, "was revoked");
	struct grant_request req = { .lease_id = mine->id, .to = GRANT_TO_TOKEN, .ttl_ms = 1 };
	CHECK_EQ(broker_grant(o->c, &req, &g2, &err), 0);
	usleep(5000);
	CHECK_EQ(open_token(h->c, g2.token, &l, &err), -ENOENT);
	CHECK_CONTAINS(err.text, "has expired");
	/* an expired grant nobody opened makes room for new ones */
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_UID, 1001, 0, NULL, &err), 0);
	CHECK_EQ(open_token(h->c, g2.token, &l, &err), -ENOENT);
	CHECK_CONTAINS(err.text, "has expired");
	stop();
}

static void test_uid_gid_and_read_only(void)
{
	struct who w[3], *o = &w[0], *h = &w[1], *t = &w[2];
	struct error_info err;
	struct lease *mine = scene(w, 4242), *l, *l2;
	CHECK_EQ(open_lease(h->c, mine->id, &l, &err), -ENOENT);
	CHECK_CONTAINS(err.text, "is granted to anyone");
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_UID, 1001, GRANT_READ_ONLY, NULL, &err), 0);
	CHECK_EQ(open_lease(t->c, mine->id, &l, &err), -EACCES);
	CHECK_CONTAINS(err.text, "not granted to uid 1002");
	CHECK_EQ(open_lease(h->c, mine->id, &l, &err), 0);
	CHECK_EQ(l->flags, LEASE_OPENED | LEASE_READ_ONLY);
	CHECK_EQ(last_open_flags & O_ACCMODE, O_RDONLY);
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_GID, 4242, 0, NULL, &err), 0);
	CHECK_EQ(open_lease(t->c, mine->id, &l2, &err), 0);
	CHECK_EQ(l2->flags, LEASE_OPENED);
	/* only owners grant, and only their own leases */
	CHECK_EQ(grant(h->c, l->id, GRANT_TO_UID, 1002, 0, NULL, &err), -EPERM);
	CHECK_EQ(grant(h->c, mine->id, GRANT_TO_UID, 1002, 0, NULL, &err), -ENOENT);
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_TOKEN, 5, 0, NULL, &err), -EINVAL);
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_UID, 5, 1u << 7, NULL, &err), -EINVAL);
	stop();
}

static void count_holder(const struct share_holder_info *hi, void *userdata)
{
	(*(unsigned *)userdata)++;
}

/* Owner release ends every holder's access unless the grant outlives it;
 * the window is charged to the owner once and ends with the last hold. */
static void test_lifetime(void)
{
	struct who w[3], *o = &w[0], *h1 = &w[1], *h2 = &w[2];
	struct grant_info gi;
	struct error_info err;
	struct policy_uid_usage u;
	struct lease *mine = scene(w, 1002), *a, *c2;
	unsigned n = 0;
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_UID, 1001, 0, NULL, &err), 0);
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_UID, 1002, GRANT_OUTLIVE_OWNER, &gi, &err), 0);
	CHECK_EQ(open_lease(h1->c, mine->id, &a, &err), 0);
	CHECK_EQ(open_lease(h2->c, mine->id, &c2, &err), 0);
	broker_lease_holders(mine, count_holder, &n);
	CHECK_EQ(n, 2);
	policy_get_usage(b->usage, 1001, &u);
	CHECK_EQ(u.bytes, 0); /* holders are not charged bytes */
	uint64_t c2_id = c2->id;

	CHECK_EQ(broker_release(o->c, mine->id, &err), 0);
	CHECK_EQ(h1->n_ev, 1);
	CHECK_EQ(h1->ev[0].type, BROKER_EVENT_LEASE_REVOKED);
	CHECK_EQ(h1->ev[0].reason, BROKER_REVOKE_OWNER);
	CHECK_EQ(h1->c->n_opens, 0);
	CHECK_EQ(h2->n_ev, 0);
	CHECK(broker_find_lease(h2->c, c2_id) != NULL);
	CHECK_EQ(allocated(), MiB);                    /* the window lives on */
	CHECK_EQ(broker_quarantined_bytes(b), 0);
	policy_get_usage(b->usage, 1000, &u);
	CHECK_EQ(u.bytes, MiB);                        /* still the owner's */
	CHECK_EQ(o->c->bytes, 0);
	CHECK_EQ(broker_revoke_grant(o->c, gi.grant_id, &err), -ENOENT); /* grants ended too */

	CHECK_EQ(broker_release(h2->c, c2_id, &err), 0);
	policy_get_usage(b->usage, 1000, &u);
	CHECK_EQ(u.bytes, 0);
	/* memfds have no dma-buf count: the window waits in quarantine, as one */
	CHECK_EQ(broker_quarantined_bytes(b), MiB);
	stop();
}

static void test_revoke_tells_holders(void)
{
	struct who w[3], *o = &w[0], *h = &w[1];
	struct grant_info gi;
	struct error_info err;
	struct lease *mine = scene(w, 1002), *l;
	CHECK_EQ(grant(o->c, mine->id, GRANT_TO_UID, 1001, 0, &gi, &err), 0);
	CHECK_EQ(open_lease(h->c, mine->id, &l, &err), 0);
	uint64_t id = l->id;
	CHECK_EQ(broker_revoke_grant(o->c, gi.grant_id, &err), 0);
	CHECK_EQ(h->n_ev, 1);
	CHECK_EQ(h->ev[0].type, BROKER_EVENT_GRANT_REVOKED);
	CHECK_EQ(h->ev[0].grant_id, gi.grant_id);
	CHECK_EQ(h->ev[0].lease_id, id);
	CHECK(broker_find_lease(h->c, id) == NULL);
	CHECK(broker_find_lease(o->c, mine->id) != NULL);
	stop();
}

static void test_limits(void)
{
	struct who o, h;
	struct error_info err;
	struct lease *mine, *l;
	start("[limits]\nmax-grants-per-lease = 2\nmax-opens-per-client = 2\n"
	      "max-holders-per-window = 3\n[daemon]\nshare-with = anyone");
	join(&o, 1000, 1000);
	join(&h, 1001, 1001);
	mine = alloc_one(o.c);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_UID, 1001, 0, NULL, &err), 0);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_UID, 1000, 0, NULL, &err), 0);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_UID, 1002, 0, NULL, &err), -EDQUOT);
	CHECK_CONTAINS(err.text, "max-grants-per-lease");
	CHECK_EQ(open_lease(h.c, mine->id, &l, &err), 0);
	CHECK_EQ(open_lease(h.c, mine->id, &l, &err), 0);
	CHECK_EQ(open_lease(h.c, mine->id, &l, &err), -EDQUOT);
	CHECK_CONTAINS(err.text, "max-opens-per-client");
	CHECK_EQ(open_lease(o.c, mine->id, &l, &err), 0); /* the owner may hold its own too */
	CHECK_EQ(open_lease(o.c, mine->id, &l, &err), -EDQUOT);
	CHECK_CONTAINS(err.text, "max-holders-per-window");
	/* the owner's disconnect ends its own open and everyone's */
	o.c = broker_client_free(o.c);
	CHECK_EQ(h.c->n_opens, 0);
	CHECK_EQ(broker_n_leases(b), 0);
	stop();
}

static void test_policy(void)
{
	struct who o, same, other;
	struct grant_info gi;
	struct error_info err;
	struct lease *mine, *l;
	start("");
	join(&o, 1000, 1000);
	join(&same, 1001, 1000);   /* shares group 1000 with the owner */
	join(&other, 1002, 1002);
	mine = alloc_one(o.c);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_GID, 1002, 0, NULL, &err), -EPERM);
	CHECK_CONTAINS(err.text, "is not in group 1002");
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_TOKEN, 0, 0, &gi, &err), 0);
	CHECK_EQ(open_token(other.c, gi.token, &l, &err), -EACCES);
	CHECK_CONTAINS(err.text, "share-with = same-group");
	CHECK_EQ(open_token(same.c, gi.token, &l, &err), 0);
	stop();

	start("share-with = same-uid");
	join(&o, 1000, 1000);
	mine = alloc_one(o.c);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_UID, 1001, 0, NULL, &err), -EPERM);
	CHECK_CONTAINS(err.text, "may grant only to itself");
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_UID, 1000, 0, NULL, &err), 0);
	stop();

	/* listed users and groups, whatever share-with says */
	start("share-with = same-uid\nshare-with-users = 1001\nshare-with-groups = 777");
	join(&o, 1000, 1000);
	join(&same, 1002, 777);
	join(&other, 1003, 1003);
	mine = alloc_one(o.c);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_UID, 1001, 0, NULL, &err), 0);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_GID, 777, 0, NULL, &err), 0);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_UID, 1003, 0, NULL, &err), -EPERM);
	CHECK_EQ(grant(o.c, mine->id, GRANT_TO_TOKEN, 0, 0, &gi, &err), 0);
	CHECK_EQ(open_token(other.c, gi.token, &l, &err), -EACCES);
	CHECK_CONTAINS(err.text, "share-with = same-uid");
	CHECK_EQ(open_token(same.c, gi.token, &l, &err), 0);
	gid_t og[] = { 5, 6 }, g[] = { 7, 6 };
	CHECK_EQ(policy_may_share(cfg, 1, og, 2, 2, g, 2), -EACCES);
	CHECK_EQ(policy_may_share(cfg, 1, og, 2, 1001, g, 2), 0);
	cfg->share_with = CONFIG_SHARE_SAME_GROUP;
	CHECK_EQ(policy_may_share(cfg, 1, og, 2, 2, g, 2), 0);
	CHECK_EQ(policy_may_share(cfg, 1, og, 1, 2, g, 2), -EACCES);
	stop();
}

int main(void)
{
	RUN(test_token_once);
	RUN(test_revoked_and_expired);
	RUN(test_uid_gid_and_read_only);
	RUN(test_lifetime);
	RUN(test_revoke_tells_holders);
	RUN(test_limits);
	RUN(test_policy);
	return UNIT_END();
}

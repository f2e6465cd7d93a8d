// SPDX-License-Identifier: MIT
/* Access decisions and per-uid quotas. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "daemon/policy.h"
#include "tests/unit/unit.h"

#define CHECK_STREQ(a, b)                                                              \
	do {                                                                           \
		const char *_a = (a), *_b = (b);                                       \
		if (strcmp(_a, _b) != 0) {                                             \
			fprintf(stderr, "  %s:%d: \"%s\", expected \"%s\"\n", __FILE__, \
				__LINE__, _a, _b);                                     \
			unit_case_failed = 1;                                          \
		}                                                                      \
	} while (0)

static void test_may_use_device(void)
{
	uid_t uids[] = { 1000, 1002 };
	gid_t allowed_gids[] = { 500 };
	struct config_device d = {
		.name = "gpu0",
		.allow_uids = uids, .n_allow_uids = 2,
		.allow_gids = allowed_gids, .n_allow_gids = 1,
	};
	gid_t none[] = { 100 }, member[] = { 100, 7, 500 };

	CHECK_EQ(policy_may_use_device(&d, 0, NULL, 0), 0);          /* root, always */
	CHECK_EQ(policy_may_use_device(&d, 1000, NULL, 0), 0);
	CHECK_EQ(policy_may_use_device(&d, 1002, none, 1), 0);
	CHECK_EQ(policy_may_use_device(&d, 1001, none, 1), -EACCES);
	CHECK_EQ(policy_may_use_device(&d, 1001, NULL, 0), -EACCES);
	CHECK_EQ(policy_may_use_device(&d, 1001, member, 3), 0);      /* supplementary group */
	CHECK_EQ(policy_may_use_device(&d, 1001, member, 2), -EACCES);

	/* Nobody listed: root only. */
	struct config_device closed = { .name = "gpu1" };
	CHECK_EQ(policy_may_use_device(&closed, 0, NULL, 0), 0);
	CHECK_EQ(policy_may_use_device(&closed, 1000, member, 3), -EACCES);
	/* (uid_t)-1 and gid 0 are not wildcards. */
	gid_t root_group[] = { 0 };
	CHECK_EQ(policy_may_use_device(&closed, (uid_t)-1, root_group, 1), -EACCES);
}

/* Through the config: allow lists by name, and the default policy. */
static void test_may_use_device_from_config(void)
{
	struct config *c = NULL;
	char *err = NULL;
	int r = config_load_string("[device a]\npci = 00:01.0\nallow-users = daemon\n"
				   "allow-groups = 4242\n"
				   "[device b]\npci = 00:02.0\n", NULL, &c, &err);

	CHECK_EQ(r, 0);
	free(err);
	if (r < 0)
		return;
	const struct config_device *a = config_find_device(c, "a"), *b = config_find_device(c, "b");
	gid_t g4242[] = { 4242 };
	CHECK_EQ(policy_may_use_device(a, a->allow_uids[0], NULL, 0), 0);
	CHECK_EQ(policy_may_use_device(a, 31337, g4242, 1), 0);
	CHECK_EQ(policy_may_use_device(a, 31337, NULL, 0), -EACCES);
	CHECK_EQ(policy_may_use_device(b, 0, NULL, 0), 0);
	CHECK(b->default_access);
	/* Group barkeep, if it exists here, is the one group b admits. */
	for (size_t i = 0; i < b->n_allow_gids; i++)
		CHECK_EQ(policy_may_use_device(b, 31337, &b->allow_gids[i], 1), 0);
	CHECK_EQ(policy_may_use_device(b, 31337, g4242, 1), -EACCES);

	char *who = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&who, &size);
	if (f) {
		config_device_print_access(a, f);
		fclose(f);
		char want[128];
		snprintf(want, sizeof(want), "root, user daemon (%u), group 4242",
			 (unsigned)a->allow_uids[0]);
		CHECK_STREQ(who, want);
		free(who);
	}
	config_free(c);
}

static void test_is_admin(void)
{
	struct config c = { .admin_gid = 600 };
	gid_t in[] = { 5, 600 }, out[] = { 5 };

	CHECK_EQ(policy_is_admin(&c, 0, NULL, 0), 0);
	CHECK_EQ(policy_is_admin(&c, 1000, in, 2), 0);
	CHECK_EQ(policy_is_admin(&c, 1000, out, 1), -EPERM);
	CHECK_EQ(policy_is_admin(&c, 1000, NULL, 0), -EPERM);

	/* Without an admin group (it does not exist), only root. */
	c.admin_gid = CONFIG_GID_NONE;
	gid_t nogroup[] = { CONFIG_GID_NONE };
	CHECK_EQ(policy_is_admin(&c, 1000, nogroup, 1), -EPERM);
	CHECK_EQ(policy_is_admin(&c, 0, NULL, 0), 0);
}

static struct config *quota_config(void)
{
	struct config *c = NULL;
	char *err = NULL;
	int r = config_load_string("[limits]\n"
				   "max-clients = 3\n"
				   "max-clients-per-uid = 2\n"
				   "max-leases-per-client = 2\n"
				   "max-leases-per-uid = 3\n"
				   "max-bytes-per-uid = 64M\n"
				   "[device gpu0]\npci = 00:01.0\nmax-bytes-per-uid = 32M\n"
				   "[device gpu1]\npci = 00:02.0\n",
				   NULL, &c, &err);
	CHECK_EQ(r, 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	return c;
}

static void test_clients(void)
{
	_cleanup_config_ struct config *c = quota_config();
	_cleanup_policy_usage_ struct policy_usage *u = NULL;
	struct policy_quota_hit h;
	char msg[256];

	if (!c)
		return;
	CHECK_EQ(policy_usage_new(c, &u), 0);
	CHECK_EQ(policy_charge_client(u, 1000, &h), 0);
	CHECK_EQ(policy_charge_client(u, 1000, &h), 0);
	CHECK_EQ(policy_charge_client(u, 1000, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_CLIENTS_PER_UID);
	CHECK_EQ(h.uid, 1000);
	CHECK_EQ(h.held, 2);
	CHECK_EQ(h.max, 2);
	policy_quota_hit_format(&h, msg, sizeof(msg));
	CHECK_STREQ(msg, "uid 1000 has 2 connections, limit is 2 (max-clients-per-uid)");

	CHECK_EQ(policy_charge_client(u, 1001, NULL), 0);
	CHECK_EQ(policy_total_clients(u), 3);
	CHECK_EQ(policy_charge_client(u, 0, &h), -EDQUOT);  /* root counts too */
	CHECK_EQ(h.limit, POLICY_LIMIT_CLIENTS);
	policy_quota_hit_format(&h, msg, sizeof(msg));
	CHECK_STREQ(msg, "barkeepd serves 3 connections, limit is 3 (max-clients)");
	CHECK_EQ(policy_charge_client(u, 1002, NULL), -EDQUOT); /* ret_hit is optional */

	struct policy_uid_usage us;
	policy_get_usage(u, 1000, &us);
	CHECK_EQ(us.clients, 2);
	CHECK_EQ(policy_uncharge_client(u, 1000), 0);
	CHECK_EQ(policy_charge_client(u, 1002, NULL), 0);
	CHECK_EQ(policy_uncharge_client(u, 1002), 0);
	CHECK_EQ(policy_uncharge_client(u, 1002), -EINVAL);  /* not counted any more */
	CHECK_EQ(policy_uncharge_client(u, 4242), -EINVAL);
	CHECK_EQ(policy_uncharge_client(u, 1000), 0);
	CHECK_EQ(policy_uncharge_client(u, 1001), 0);
	CHECK_EQ(policy_total_clients(u), 0);
	policy_get_usage(u, 1000, &us);
	CHECK_EQ(us.clients, 0);
}

static void test_leases(void)
{
	_cleanup_config_ struct config *c = quota_config();
	_cleanup_policy_usage_ struct policy_usage *u = NULL;
	struct policy_quota_hit h;
	char msg[256];
	const uint64_t M = UINT64_C(1) << 20;

	if (!c)
		return;
	const struct config_device *gpu0 = &c->devices[0], *gpu1 = &c->devices[1];
	CHECK_EQ(policy_usage_new(c, &u), 0);
	CHECK_EQ(policy_charge_client(u, 1000, NULL), 0);
	CHECK_EQ(policy_charge_client(u, 1000, NULL), 0);

	/* Per connection: the caller says how many leases the connection holds. */
	CHECK_EQ(policy_charge_lease(u, gpu0, 1000, 2, M, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_LEASES_PER_CLIENT);
	policy_quota_hit_format(&h, msg, sizeof(msg));
	CHECK_STREQ(msg, "this connection holds 2 leases, limit is 2 (max-leases-per-client)");

	/* Per device bytes: 32M on gpu0. */
	CHECK_EQ(policy_charge_lease(u, gpu0, 1000, 0, 16 * M, &h), 0);
	CHECK_EQ(policy_charge_lease(u, gpu0, 1000, 1, 20 * M, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_DEVICE_BYTES_PER_UID);
	CHECK_STREQ(h.device, "gpu0");
	CHECK_EQ(h.held, 16 * M);
	CHECK_EQ(h.requested, 20 * M);
	CHECK_EQ(h.max, 32 * M);
	policy_quota_hit_format(&h, msg, sizeof(msg));
	CHECK_STREQ(msg, "uid 1000 holds 16 MiB on gpu0 and asked for 20 MiB, limit is 32 MiB "
		    "(max-bytes-per-uid of [device gpu0])");
	CHECK_EQ(policy_charge_lease(u, gpu0, 1000, 1, 16 * M, &h), 0); /* exactly the limit */
	CHECK_EQ(policy_get_device_bytes(u, gpu0, 1000), 32 * M);

	/* Per uid leases: 3, across connections and devices. */
	CHECK_EQ(policy_charge_lease(u, gpu1, 1000, 0, 4 * M, &h), 0);
	CHECK_EQ(policy_charge_lease(u, gpu1, 1000, 1, 4 * M, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_LEASES_PER_UID);
	policy_quota_hit_format(&h, msg, sizeof(msg));
	CHECK_STREQ(msg, "uid 1000 holds 3 leases, limit is 3 (max-leases-per-uid)");

	/* Per uid bytes: 64M over all devices (36M held). */
	CHECK_EQ(policy_uncharge_lease(u, gpu0, 1000, 16 * M), 0);
	CHECK_EQ(policy_charge_lease(u, gpu1, 1000, 1, 45 * M, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_BYTES_PER_UID);
	policy_quota_hit_format(&h, msg, sizeof(msg));
	CHECK_STREQ(msg, "uid 1000 holds 20 MiB and asked for 45 MiB, limit is 64 MiB "
		    "(max-bytes-per-uid)");
	CHECK_EQ(policy_charge_lease(u, gpu1, 1000, 1, 44 * M, &h), 0); /* exactly the limit */

	/* A refused charge counts nothing. */
	struct policy_uid_usage us;
	policy_get_usage(u, 1000, &us);
	CHECK_EQ(us.leases, 3);
	CHECK_EQ(us.bytes, 64 * M);
	CHECK_EQ(us.clients, 2);

	/* Another uid has its own counters. */
	CHECK_EQ(policy_charge_lease(u, gpu0, 1001, 0, 32 * M, &h), 0);

	/* Bad uncharges change nothing. */
	CHECK_EQ(policy_uncharge_lease(u, gpu0, 1000, 17 * M), -EINVAL);
	CHECK_EQ(policy_uncharge_lease(u, gpu0, 4242, M), -EINVAL);
	struct config_device stranger = { .name = "x" };
	CHECK_EQ(policy_uncharge_lease(u, &stranger, 1000, 0), -EINVAL);
	CHECK_EQ(policy_charge_lease(u, &stranger, 1000, 0, 1, &h), -EINVAL);
	CHECK_EQ(policy_charge_lease(u, NULL, 1000, 0, 1, &h), -EINVAL);
	policy_get_usage(u, 1000, &us);
	CHECK_EQ(us.leases, 3);

	CHECK_EQ(policy_uncharge_lease(u, gpu0, 1000, 16 * M), 0);
	CHECK_EQ(policy_uncharge_lease(u, gpu1, 1000, 4 * M), 0);
	CHECK_EQ(policy_uncharge_lease(u, gpu1, 1000, 44 * M), 0);
	CHECK_EQ(policy_uncharge_lease(u, gpu1, 1000, 0), -EINVAL); /* no lease left */
	CHECK_EQ(policy_uncharge_lease(u, gpu0, 1001, 32 * M), 0);
	policy_get_usage(u, 1000, &us);
	CHECK_EQ(us.leases, 0);
	CHECK_EQ(us.bytes, 0);
	CHECK_EQ(policy_get_device_bytes(u, gpu0, 1000), 0);
}

/* Unlimited bytes: counters saturate at the limit instead of wrapping. */
/* [limits] max-leases counts every uid's leases together. */
static void test_total_leases(void)
{
	_cleanup_config_ struct config *c = NULL;
	_cleanup_policy_usage_ struct policy_usage *u = NULL;
	struct policy_quota_hit h;
	char msg[256];

	CHECK_EQ(config_load_string("[limits]\nmax-leases = 2\n[device gpu0]\npci = 00:01.0\n",
				    NULL, &c, NULL), 0);
	if (!c)
		return;
	CHECK_EQ(policy_usage_new(c, &u), 0);
	CHECK_EQ(policy_charge_lease(u, &c->devices[0], 1000, 0, 4096, &h), 0);
	CHECK_EQ(policy_charge_lease(u, &c->devices[0], 1001, 0, 4096, &h), 0);
	CHECK_EQ(policy_charge_lease(u, &c->devices[0], 0, 0, 4096, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_LEASES);
	policy_quota_hit_format(&h, msg, sizeof(msg));
	CHECK_STREQ(msg, "barkeepd lends 2 leases to all clients, limit is 2 (max-leases)");
	CHECK_EQ(policy_uncharge_lease(u, &c->devices[0], 1000, 4096), 0);
	CHECK_EQ(policy_charge_lease(u, &c->devices[0], 0, 0, 4096, &h), 0);
}

static void test_unlimited_no_wrap(void)
{
	struct config *c = NULL;
	char *err = NULL;
	_cleanup_policy_usage_ struct policy_usage *u = NULL;
	struct policy_quota_hit h;
	char msg[256];

	CHECK_EQ(config_load_string("[device g]\npci = 00:01.0\n", NULL, &c, &err), 0);
	free(err);
	if (!c)
		return;
	CHECK_EQ(policy_usage_new(c, &u), 0);
	CHECK_EQ(policy_charge_lease(u, &c->devices[0], 7, 0, UINT64_MAX - 5, &h), 0);
	CHECK_EQ(policy_charge_lease(u, &c->devices[0], 7, 1, 10, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_BYTES_PER_UID);
	policy_quota_hit_format(&h, msg, sizeof(msg));
	CHECK_STREQ(msg, "uid 7 holds 18446744073709551610 bytes and asked for 10 bytes, limit "
		    "is infinity (max-bytes-per-uid)");
	CHECK_EQ(policy_uncharge_lease(u, &c->devices[0], 7, UINT64_MAX - 5), 0);
	u = policy_usage_free(u);
	config_free(c);
}

static void test_limit_names(void)
{
	CHECK_STREQ(policy_limit_to_string(POLICY_LIMIT_CLIENTS), "max-clients");
	CHECK_STREQ(policy_limit_to_string(POLICY_LIMIT_LEASES_PER_UID), "max-leases-per-uid");
	CHECK_STREQ(policy_limit_to_string(POLICY_LIMIT_DEVICE_BYTES_PER_UID),
		    "max-bytes-per-uid");
	CHECK_STREQ(policy_limit_to_string(POLICY_LIMIT_NONE), "none");
	CHECK(policy_usage_free(NULL) == NULL);
}

int main(void)
{
	RUN(test_may_use_device);
	RUN(test_may_use_device_from_config);
	RUN(test_is_admin);
	RUN(test_clients);
	RUN(test_leases);
	RUN(test_total_leases);
	RUN(test_unlimited_no_wrap);
	RUN(test_limit_names);
	return UNIT_END();
}

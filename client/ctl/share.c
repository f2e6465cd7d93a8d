// SPDX-License-Identifier: MIT
/* barkeepctl grant, open: sharing a window with another client. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl/ctl.h"
#include "client/ctl/events.h"
#include "client/ctl/format.h"
#include "client/ctl/json.h"

enum {
	OPT_UID = CTL_OPT_COMMAND + 16, OPT_GID, OPT_TOKEN, OPT_READ_ONLY, OPT_OUTLIVE, OPT_TTL,
	OPT_LEASE, OPT_HOLD_OPEN,
};

struct grant_args {
	struct barkeep_grant_params g;
	bool to_set;
};

static int grant_option(int c, const char *arg, void *data)
{
	struct grant_args *a = data;
	uint32_t u;

	switch (c) {
	case OPT_UID:
	case OPT_GID:
	case OPT_TOKEN:
		if (a->to_set)
			return ctl_usage_error("give one of --uid, --gid and --token, once");
		a->to_set = true;
		a->g.to = c == OPT_UID ? BARKEEP_GRANT_TO_UID : c == OPT_GID ? BARKEEP_GRANT_TO_GID
								   : BARKEEP_GRANT_TO_TOKEN;
		if (c != OPT_TOKEN && parse_u32(arg, &a->g.to_id) < 0)
			return ctl_usage_error("--%s: '%s' is not a number", c == OPT_UID ? "uid" : "gid", arg);
		return 0;
	case OPT_READ_ONLY:
		a->g.flags |= BARKEEP_GRANT_READ_ONLY;
		return 0;
	case OPT_OUTLIVE:
		a->g.flags |= BARKEEP_GRANT_OUTLIVE_OWNER;
		return 0;
	case OPT_TTL:
		if (parse_u32(arg, &u) < 0 || u == 0 || u > UINT32_MAX / 1000)
			return ctl_usage_error("--ttl: '%s' is not a number of seconds from 1 to %u", arg,
					       UINT32_MAX / 1000);
		a->g.ttl_ms = u * 1000;
		return 0;
	}
	return ctl_usage_error("unknown option");
}

static void print_grant(const struct ctl *ctl, const struct barkeep_grant_params *p,
			const struct barkeep_grant *g)
{
	static const char *const to[] = { "?", "uid", "gid", "token" };
	char token[BARKEEP_TOKEN_STRING_SIZE] = "";

	if (p->to == BARKEEP_GRANT_TO_TOKEN)
		barkeep_token_format(g->token, token);
	if (ctl->json) {
		struct json j;
		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		json_object_begin(&j, "grant");
		json_u64(&j, "id", g->grant_id);
		json_u64(&j, "lease_id", p->lease_id);
		json_string(&j, "to", to[p->to]);
		if (p->to == BARKEEP_GRANT_TO_TOKEN)
			json_string(&j, "token", token);
		else
			json_u64(&j, "to_id", p->to_id);
		json_bool(&j, "read_only", p->flags & BARKEEP_GRANT_READ_ONLY);
		json_bool(&j, "outlive_owner", p->flags & BARKEEP_GRANT_OUTLIVE_OWNER);
		json_u64(&j, "ttl_ms", p->ttl_ms);
		json_object_end(&j);
		json_object_end(&j);
	} else {
		printf("grant %" PRIu64 " of lease %" PRIu64 " to ", g->grant_id, p->lease_id);
		if (p->to == BARKEEP_GRANT_TO_TOKEN)
			printf("whoever opens it with token %s (once; keep it private)\n", token);
		else
			printf("%s %" PRIu32 "\n", to[p->to], p->to_id);
		printf("  %s, %s, %s\n", p->flags & BARKEEP_GRANT_READ_ONLY ? "read-only" : "read-write",
		       p->flags & BARKEEP_GRANT_OUTLIVE_OWNER ? "holders keep it after this release"
							      : "ends for everyone with this lease",
		       p->ttl_ms ? "expires" : "no expiry");
		printf("Type 'holders' to list who opened it, 'revoke-grant' to withdraw it.\n");
	}
	explicit_bzero(token, sizeof(token));
	fflush(stdout);
}

/* "holders": who holds the window open, one line (or JSON value) each. */
static int print_holders(struct watch *w)
{
	struct barkeep_holder *h;
	size_t n = 0;
	int r = barkeep_list_holders(w->bk, &h, &n);

	if (r < 0) {
		if (!ctl_is_disconnect(r))
			fprintf(stderr, "barkeepctl: holders: %s\n", barkeep_error_message(w->bk));
		return ctl_is_disconnect(r) ? r : 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (w->ctl->json) {
			struct json j;
			json_init(&j, stdout);
			json_object_begin(&j, NULL);
			json_object_begin(&j, "holder");
			json_u64(&j, "lease_id", h[i].lease_id);
			json_u64(&j, "holder_lease_id", h[i].holder_lease_id);
			json_u64(&j, "grant_id", h[i].grant_id);
			json_u64(&j, "uid", h[i].uid);
			json_bool(&j, "read_only", h[i].read_only);
			json_object_end(&j);
			json_object_end(&j);
		} else {
			printf("lease %" PRIu64 " is held by uid %" PRIu32 " as lease %" PRIu64
			       " (grant %" PRIu64 "%s)\n", h[i].lease_id, h[i].uid, h[i].holder_lease_id,
			       h[i].grant_id, h[i].read_only ? ", read-only" : "");
		}
	}
	if (n == 0 && !w->ctl->json)
		printf("Nobody holds the window open.\n");
	free(h);
	return 0;
}

/* stdin while holding: "revoke-grant" withdraws the grant, "holders" lists them. */
static int grant_command(struct watch *w, const char *line, void *userdata)
{
	uint64_t *grant_id = userdata;

	if (strcmp(line, "holders") == 0) {
		int q = print_holders(w);
		fflush(stdout);
		return q;
	}
	if (strcmp(line, "revoke-grant") != 0) {
		fprintf(stderr, "barkeepctl: unknown command '%s' (known: revoke-grant, holders)\n", line);
		return 0;
	}
	int r = barkeep_revoke_grant(w->bk, *grant_id);
	if (ctl_is_disconnect(r))
		return r;
	if (r < 0)
		fprintf(stderr, "barkeepctl: revoke-grant %" PRIu64 " refused: %s\n", *grant_id,
			barkeep_error_message(w->bk));
	else if (w->ctl->json)
		printf("{\"revoked_grant\":%" PRIu64 "}\n", *grant_id);
	else
		printf("Revoked grant %" PRIu64 ".\n", *grant_id);
	fflush(stdout);
	return 0;
}

static int grant_and_hold(const struct ctl *ctl, struct barkeep *bk, struct ctl_alloc_args *a,
			  struct grant_args *ga)
{
	_cleanup_free_ struct barkeep_device *devs = NULL;
	struct barkeep_lease *lease;
	struct barkeep_grant g;
	size_t n_devs = 0;

	int ret = ctl_alloc(ctl, bk, &a->p, &lease);
	if (ret != CTL_EXIT_OK)
		return ret;
	ctl_show_lease(ctl, bk, lease, &devs, &n_devs);
	ga->g.lease_id = lease->id;
	int r = barkeep_grant(bk, &ga->g, &g);
	if (r < 0) {
		ret = ctl_request_failed(ctl, bk, r, "grant of lease %" PRIu64, lease->id);
		barkeep_release(bk, lease);
		return ret;
	}
	print_grant(ctl, &ga->g, &g);
	struct watch_command cmd = { grant_command, &g.grant_id };
	ret = ctl_hold(ctl, bk, &lease, devs, n_devs, a->hold_ms, &cmd);
	if (ret != CTL_EXIT_OK)
		return ret;
	return ctl_release(ctl, bk, lease);
}

int cmd_grant(struct ctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{ "uid", required_argument, NULL, OPT_UID },
		{ "gid", required_argument, NULL, OPT_GID },
		{ "token", no_argument, NULL, OPT_TOKEN },
		{ "read-only", no_argument, NULL, OPT_READ_ONLY },
		{ "outlive-owner", no_argument, NULL, OPT_OUTLIVE },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{},
	};
	struct grant_args ga = { .g.to = BARKEEP_GRANT_TO_TOKEN };
	struct ctl_alloc_args a = { .hold_ms = -1, .more = options, .more_fn = grant_option,
				    .more_data = &ga };
	struct barkeep *bk;

	if (ctl_parse_alloc(ctl, argc, argv, &a) < 0)
		return CTL_EXIT_USAGE;
	if (ctl_connect(ctl, 0, &bk) < 0)
		return CTL_EXIT_CONNECT;
	int ret = grant_and_hold(ctl, bk, &a, &ga);
	barkeep_disconnect(bk);
	return ret;
}

struct open_args {
	struct barkeep_open_params p;
	bool by_lease, hold;
	int64_t hold_ms;
};

static int open_option(int c, const char *arg, void *data)
{
	struct open_args *a = data;

	switch (c) {
	case OPT_LEASE:
		a->by_lease = true;
		if (parse_u64(arg, &a->p.lease_id) < 0 || a->p.lease_id == 0)
			return ctl_usage_error("--lease: '%s' is not a lease id", arg);
		return 0;
	case OPT_READ_ONLY:
		a->p.read_only = true;
		return 0;
	case OPT_HOLD_OPEN:
		return ctl_parse_hold(arg, &a->hold, &a->hold_ms);
	}
	return ctl_usage_error("unknown option");
}

static int parse_open(struct ctl *ctl, int argc, char **argv, struct open_args *a)
{
	static const struct option options[] = {
		{ "lease", required_argument, NULL, OPT_LEASE },
		{ "read-only", no_argument, NULL, OPT_READ_ONLY },
		{ "hold", optional_argument, NULL, OPT_HOLD_OPEN },
		{},
	};

	if (ctl_parse_options(ctl, argc, argv, options, open_option, a) < 0)
		return -EINVAL;
	if (a->by_lease)
		return optind < argc ? ctl_usage_error("open takes a TOKEN or --lease ID, not both") : 0;
	if (optind + 1 != argc)
		return ctl_usage_error("open needs one TOKEN (32 hex digits from 'barkeepctl grant'), "
				       "or --lease ID for a grant to your uid or group");
	a->p.by_token = true;
	if (barkeep_token_parse(argv[optind], a->p.token) < 0)
		return ctl_usage_error("TOKEN '%.8s...' is not 32 hex digits", argv[optind]);
	return 0;
}

int cmd_open(struct ctl *ctl, int argc, char **argv)
{
	_cleanup_free_ struct barkeep_device *devs = NULL;
	struct open_args a = { .hold_ms = -1 };
	struct barkeep_lease *lease;
	struct barkeep *bk;
	size_t n_devs = 0;

	if (parse_open(ctl, argc, argv, &a) < 0)
		return CTL_EXIT_USAGE;
	if (ctl_connect(ctl, 0, &bk) < 0)
		return CTL_EXIT_CONNECT;
	int r = barkeep_open(bk, &a.p, &lease);
	explicit_bzero(&a.p, sizeof(a.p));
	int ret = CTL_EXIT_OK;
	if (r < 0) {
		ret = ctl_request_failed(ctl, bk, r, "open");
		goto out;
	}
	if (!ctl->json)
		printf("Opened lease %" PRIu64 " of uid %" PRIu32 " (grant %" PRIu64 ") as:\n",
		       lease->shared_lease_id, lease->owner_uid, lease->grant_id);
	ctl_show_lease(ctl, bk, lease, &devs, &n_devs);
	if (a.hold)
		ret = ctl_hold(ctl, bk, &lease, devs, n_devs, a.hold_ms, NULL);
	if (ret == CTL_EXIT_OK)
		ret = ctl_release(ctl, bk, lease);
out:
	barkeep_disconnect(bk);
	return ret;
}

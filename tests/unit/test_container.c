// SPDX-License-Identifier: MIT
/* [container NAME] sections: parsing, matching by cgroup and uid range, device
 * rights and shared quotas; reading a peer's cgroup. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/policy.h"
#include "daemon/transports/peer.h"
#include "tests/unit/unit.h"

#define M (UINT64_C(1) << 20)

static const char conf[] =
	"[device gpu0]\npci = 00:03.0\nallow-users = 1000\n"
	"[device gpu1]\npci = 00:04.0\n"
	"[container ci]\n"
	"cgroup = /machine.slice/libpod-*\n"
	"devices = gpu0, gpu1\n"
	"max-bytes = 64M\n"
	"max-leases = 2\n"
	"[container rootless]\n"
	"uid-range = 100000-165535\n"
	"devices = gpu1\n"
	"[container both]\n"
	"cgroup = /kubepods.slice/*\n"
	"	/system.slice/sandbox-*.scope\n"
	"uid-range = 200000\n";

static struct config *load(const char *text)
{
	struct config *c = NULL;
	char *err = NULL;
	int r = config_load_string(text, "barkeep.conf", &c, &err);

	CHECK_EQ(r, 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	return c;
}

static char *load_error(const char *text)
{
	struct config *c = NULL;
	char *err = NULL;

	CHECK_EQ(config_load_string(text, "barkeep.conf", &c, &err), -EINVAL);
	config_free(c);
	return err;
}

static void test_parse(void)
{
	_cleanup_config_ struct config *c = load(conf);

	if (!c)
		return;
	CHECK_EQ(c->n_containers, 3);
	const struct config_container *ci = config_find_container(c, "ci");
	const struct config_container *rl = config_find_container(c, "rootless");
	const struct config_container *both = config_find_container(c, "both");
	CHECK(ci && rl && both);
	CHECK(!config_find_container(c, "gpu0"));
	if (!ci || !rl || !both)
		return;
	CHECK_EQ(ci->n_cgroups, 1);
	CHECK(!ci->has_uid_range);
	CHECK_EQ(ci->n_devices, 2);
	CHECK_EQ(ci->max_bytes, 64 * M);
	CHECK_EQ(ci->max_leases, 2);
	CHECK(rl->has_uid_range);
	CHECK_EQ(rl->uid_min, 100000);
	CHECK_EQ(rl->uid_max, 165535);
	CHECK_EQ(rl->max_bytes, CONFIG_UNLIMITED);
	CHECK_EQ(rl->max_leases, UINT32_MAX);
	CHECK_EQ(both->n_cgroups, 2); /* a continuation line adds a glob */
	CHECK_EQ(both->uid_min, 200000);
	CHECK_EQ(both->uid_max, 200000);
	/* No devices: loads, with a warning. */
	CHECK_EQ(c->n_warnings >= 1, 1);
	int warned = 0;
	for (size_t i = 0; i < c->n_warnings; i++)
		warned |= strstr(c->warnings[i], "[container both] has no devices") != NULL;
	CHECK(warned);

	char *dump = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&dump, &size);
	if (f) {
		config_dump(c, f);
		fclose(f);
		CHECK_CONTAINS(dump, "[container ci] (line 6)");
		CHECK_CONTAINS(dump, "clients in cgroup /machine.slice/libpod-*");
		CHECK_CONTAINS(dump, "together at most 64 MiB in 2 leases");
		CHECK_CONTAINS(dump, "with uid 100000-165535");
		free(dump);
	}
}

static void test_parse_errors(void)
{
	char *e;

	e = load_error("[container ci]\ndevices = gpu0\n");
	CHECK_CONTAINS(e, "barkeep.conf:1: [container ci]: cgroup = or uid-range = is missing");
	CHECK_CONTAINS(e, "barkeep.conf:2: devices: no [device gpu0] in this file");
	free(e);
	e = load_error("[container ci]\nuid-range = 5-1\n");
	CHECK_CONTAINS(e, "barkeep.conf:2: uid-range: '5-1' is not a uid range FIRST-LAST");
	free(e);
	e = load_error("[container ci]\nuid-range = 100000-x\n");
	CHECK_CONTAINS(e, "is not a uid range");
	free(e);
	e = load_error("[container ci]\ncgroup = machine.slice\n");
	CHECK_CONTAINS(e, "'machine.slice' is not a cgroup path");
	free(e);
	e = load_error("[container ci]\ncgroup = /a\n[container ci]\ncgroup = /b\n");
	CHECK_CONTAINS(e, "barkeep.conf:3: [container ci] is already defined at line 1");
	free(e);
	e = load_error("[container]\n");
	CHECK_CONTAINS(e, "is not a valid container name");
	free(e);
	e = load_error("[container ci]\ncgroup = /a\nmax-leases = 0\n");
	CHECK_CONTAINS(e, "max-leases: 0 is out of range");
	free(e);
	e = load_error("[container ci]\ncgroup = /a\nmax-bytes = 0\n");
	CHECK_CONTAINS(e, "max-bytes: 0 would refuse every allocation");
	free(e);
	e = load_error("[container ci]\ncgroup = /a\npci = 00:03.0\n");
	CHECK_CONTAINS(e, "pci: not a key of [container NAME]; it belongs in [device NAME]");
	free(e);
	e = load_error("[container ci]\ncgroup = /a\ndevice = gpu0\n");
	CHECK_CONTAINS(e, "did you mean devices?");
	free(e);
}

static void test_match(void)
{
	_cleanup_config_ struct config *c = load(conf);

	if (!c)
		return;
	const struct config_container *ci = config_find_container(c, "ci");
	const struct config_container *rl = config_find_container(c, "rootless");
	const struct config_container *both = config_find_container(c, "both");

	/* '*' crosses '/': the scope and the cgroups podman makes below it. */
	CHECK(policy_find_container(c, "/machine.slice/libpod-abc.scope", 0) == ci);
	CHECK(policy_find_container(c, "/machine.slice/libpod-abc.scope/container", 1000) == ci);
	CHECK(policy_find_container(c, "/machine.slice/libpodX", 0) == NULL);
	CHECK(policy_find_container(c, "/user.slice/user-1000.slice/session-2.scope", 1000) == NULL);
	/* uid-range only: any cgroup, even an unknown one. */
	CHECK(policy_find_container(c, "/user.slice", 100000) == rl);
	CHECK(policy_find_container(c, NULL, 165535) == rl);
	CHECK(policy_find_container(c, "", 165536) == NULL);
	CHECK(policy_find_container(c, "/", 99999) == NULL);
	/* The first matching section wins. */
	CHECK(policy_find_container(c, "/machine.slice/libpod-1.scope", 100001) == ci);
	/* cgroup and uid-range: both must match; an unknown cgroup matches no glob. */
	CHECK(policy_find_container(c, "/kubepods.slice/pod1/cri-1.scope", 200000) == both);
	CHECK(policy_find_container(c, "/system.slice/sandbox-7.scope", 200000) == both);
	CHECK(policy_find_container(c, "/system.slice/sandbox-7.scope/x", 200000) == NULL);
	CHECK(policy_find_container(c, "/kubepods.slice/pod1/cri-1.scope", 0) == NULL);
	CHECK(policy_find_container(c, NULL, 200000) == NULL);

	const struct config_device *gpu0 = config_find_device(c, "gpu0");
	const struct config_device *gpu1 = config_find_device(c, "gpu1");
	CHECK_EQ(policy_container_may_use(ci, gpu0), 0);
	CHECK_EQ(policy_container_may_use(ci, gpu1), 0);
	CHECK_EQ(policy_container_may_use(rl, gpu0), -EACCES);
	CHECK_EQ(policy_container_may_use(rl, gpu1), 0);
	CHECK_EQ(policy_container_may_use(both, gpu0), -EACCES);
}

static void test_quota(void)
{
	_cleanup_config_ struct config *c = load(conf);
	_cleanup_policy_usage_ struct policy_usage *u = NULL;
	struct policy_quota_hit h;
	struct policy_uid_usage got;
	char buf[256];

	if (!c || policy_usage_new(c, &u) < 0)
		return;
	const struct config_container *ci = config_find_container(c, "ci");
	const struct config_container *rl = config_find_container(c, "rootless");

	CHECK_EQ(policy_charge_container_lease(u, ci, 48 * M, &h), 0);
	CHECK_EQ(policy_charge_container_lease(u, ci, 32 * M, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_CONTAINER_BYTES);
	policy_quota_hit_format(&h, buf, sizeof(buf));
	CHECK_CONTAINS(buf, "container ci holds 48 MiB and asked for 32 MiB, limit is 64 MiB "
		       "(max-bytes of [container ci])");
	CHECK_EQ(policy_charge_container_lease(u, ci, 16 * M, &h), 0); /* exactly the limit */
	policy_get_container_usage(u, ci, &got);
	CHECK_EQ(got.leases, 2);
	CHECK_EQ(got.bytes, 64 * M);
	CHECK_EQ(policy_uncharge_container_lease(u, ci, 16 * M), 0);
	CHECK_EQ(policy_charge_container_lease(u, ci, 1 * M, &h), 0);
	CHECK_EQ(policy_charge_container_lease(u, ci, 1 * M, &h), -EDQUOT);
	CHECK_EQ(h.limit, POLICY_LIMIT_CONTAINER_LEASES);
	policy_quota_hit_format(&h, buf, sizeof(buf));
	CHECK_CONTAINS(buf, "container ci holds 2 leases, limit is 2 (max-leases of [container ci])");

	/* Containers count apart; no limits set means none. */
	for (int i = 0; i < 100; i++)
		CHECK_EQ(policy_charge_container_lease(u, rl, 1024 * M, NULL), 0);
	policy_get_container_usage(u, rl, &got);
	CHECK_EQ(got.leases, 100);

	/* Caller bugs are refused, not counted. */
	CHECK_EQ(policy_uncharge_container_lease(u, ci, 1024 * M), -EINVAL);
	struct config_container stranger = *ci;
	CHECK_EQ(policy_charge_container_lease(u, &stranger, M, NULL), -EINVAL);
	policy_get_container_usage(u, ci, &got);
	CHECK_EQ(got.bytes, 49 * M);
}

static void test_parse_cgroup(void)
{
	char buf[64];

	CHECK_EQ(peer_parse_cgroup("0::/machine.slice/libpod-1.scope\n", buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "/machine.slice/libpod-1.scope") == 0);
	/* Hybrid hierarchy: v1 lines first. */
	CHECK_EQ(peer_parse_cgroup("12:pids:/a\n1:name=systemd:/b\n0::/c", buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "/c") == 0);
	CHECK_EQ(peer_parse_cgroup("12:pids:/a\n", buf, sizeof(buf)), -ENOENT);
	CHECK_EQ(peer_parse_cgroup("", buf, sizeof(buf)), -ENOENT);
	CHECK_EQ(peer_parse_cgroup("0::/0123456789\n", buf, 8), -ENAMETOOLONG);
}

/* Our own cgroup through a socketpair, as barkeepd reads a client's. */
static void test_read_cgroup(void)
{
	char buf[512], want[512];
	int sv[2];
	FILE *f = fopen("/proc/self/cgroup", "re");
	size_t n = f ? fread(want, 1, sizeof(want) - 1, f) : 0;

	if (f)
		fclose(f);
	want[n] = '\0';
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		CHECK(false);
		return;
	}
	int r = peer_read_cgroup(sv[0], getpid(), buf, sizeof(buf));
	char parsed[512];
	if (peer_parse_cgroup(want, parsed, sizeof(parsed)) == 0) {
		CHECK_EQ(r, 0);
		CHECK(strcmp(buf, parsed) == 0);
	} else
		CHECK_EQ(r, -ENOENT); /* cgroup v1 only here */
	CHECK_EQ(peer_read_cgroup(sv[0], 0, buf, sizeof(buf)), -ESRCH);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	RUN(test_parse);
	RUN(test_parse_errors);
	RUN(test_match);
	RUN(test_quota);
	RUN(test_parse_cgroup);
	RUN(test_read_cgroup);
	return UNIT_END();
}

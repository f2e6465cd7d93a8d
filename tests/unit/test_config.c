// SPDX-License-Identifier: MIT
/* barkeep.conf parsing: values, error messages with line numbers, files. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/config.h"
#include "tests/unit/unit.h"

#define CHECK_STREQ(a, b)                                                              \
	do {                                                                           \
		const char *_a = (a), *_b = (b);                                       \
		if (!_a || !_b || strcmp(_a, _b) != 0) {                               \
			fprintf(stderr, "  %s:%d: %s is \"%s\", expected \"%s\"\n",    \
				__FILE__, __LINE__, #a, _a ? _a : "(null)",            \
				_b ? _b : "(null)");                                   \
			unit_case_failed = 1;                                          \
		}                                                                      \
	} while (0)

static long page(void) { return sysconf(_SC_PAGESIZE); }

/* The test config names user "daemon" and group "video", which Debian has. */
static unsigned daemon_uid(void)
{
	struct passwd *pw = getpwnam("daemon");
	return pw ? (unsigned)pw->pw_uid : 0;
}

static unsigned video_gid(void)
{
	struct group *gr = getgrnam("video");
	return gr ? (unsigned)gr->gr_gid : 0;
}

/* Loads text that must fail; returns the error text (caller frees). */
static char *load_error(const char *text)
{
	struct config *c = NULL;
	char *err = NULL;
	int r = config_load_string(text, "barkeep.conf", &c, &err);

	CHECK_EQ(r, -EINVAL);
	CHECK(c == NULL);
	CHECK(err != NULL);
	config_free(c);
	return err;
}

/* The whole error text must be exactly want. */
#define CHECK_ERROR(text, want)                                                        \
	do {                                                                           \
		char *_e = load_error(text);                                           \
		CHECK_STREQ(_e, want);                                                 \
		free(_e);                                                              \
	} while (0)

static struct config *load_ok(const char *text)
{
	struct config *c = NULL;
	char *err = NULL;
	int r = config_load_string(text, "barkeep.conf", &c, &err);

	CHECK_EQ(r, 0);
	if (err)
		fprintf(stderr, "  unexpected error: %s\n", err);
	CHECK(err == NULL);
	free(err);
	return c;
}

static void test_defaults(void)
{
	_cleanup_config_ struct config *c = load_ok("# nothing but a comment\n");

	if (!c)
		return;
	CHECK_STREQ(c->socket_path, "/run/barkeep/barkeep.sock");
	CHECK_EQ(c->socket_mode, 0660);
	CHECK_STREQ(c->socket_group, "barkeep");
	CHECK_EQ(c->log_level, LOG_LEVEL_INFO);
	CHECK_STREQ(c->admin_group, "barkeep-admin");
	CHECK_EQ(c->limits.max_clients, 128);
	CHECK_EQ(c->limits.max_clients_per_uid, 16);
	CHECK_EQ(c->limits.max_leases, 4096);
	CHECK_EQ(c->limits.max_leases_per_client, 64);
	CHECK_EQ(c->limits.max_leases_per_uid, 256);
	CHECK(c->limits.max_bytes_per_uid == CONFIG_UNLIMITED);
	CHECK_EQ(c->limits.max_queued_events, 128);
	CHECK_EQ(c->limits.handshake_timeout_ms, 5000);
	CHECK_EQ(c->limits.idle_timeout_s, 0);
	CHECK_EQ(c->limits.pause_grace_ms, 2000);
	CHECK_EQ(c->n_devices, 0);
	/* Zero devices loads, with a warning the caller logs. */
	CHECK(c->n_warnings >= 1);
	if (c->n_warnings >= 1)
		CHECK_CONTAINS(c->warnings[0], "no [device NAME] sections");

	_cleanup_config_ struct config *empty = load_ok("");
	CHECK(empty != NULL);
}

static const char full_config[] =
	"\xEF\xBB\xBF# barkeep.conf with a byte order mark and CRLF line ends\r\n"
	"[daemon]\r\n"
	"socket = /run/bk.sock\r\n"
	"socket-mode = 0600\r\n"
	"socket-group = 0\r\n"
	"log-level = debug\r\n"
	"admin-group = root\r\n"
	"\r\n"
	"[limits]\n"
	"max-clients = 10\n"
	"max-clients-per-uid = 2\n"
	"max-leases = 9\n"
	"max-leases-per-client = 3\n"
	"max-leases-per-uid = 4\n"
	"max-bytes-per-uid = 1G\n"
	"max-queued-events = 5\n"
	"handshake-timeout-ms = 6\n"
	"idle-timeout-s = 7\n"
	"pause-grace-ms = 0\n"
	"\n"
	"[device gpu0]\n"
	"pci = 00:03.0\n"
	"bar = 2\n"
	"label = Main GPU ; an inline comment\n"
	"reserve = 0x200000+64K, 0+1M,\n"
	"    16M+4K\n"
	"  ; an indented comment is still a comment\n"
	"allow-users = root, 1000 daemon,1000\n"
	"allow-groups = video, 12345\n"
	"max-bytes-per-uid = 256M\n"
	"\n"
	"[ device  sys_mem-1 ]\n"
	"backend = sysmem\n"
	"size = 64M\n"
	"label: semi;colon\n";

static void test_full(void)
{
	_cleanup_config_ struct config *c = load_ok(full_config);

	if (!c)
		return;
	CHECK_STREQ(c->socket_path, "/run/bk.sock");
	CHECK_EQ(c->socket_mode, 0600);
	CHECK_EQ(c->socket_gid, 0);
	CHECK_EQ(c->log_level, LOG_LEVEL_DEBUG);
	CHECK_EQ(c->admin_gid, 0);
	CHECK_EQ(c->limits.max_clients, 10);
	CHECK_EQ(c->limits.max_clients_per_uid, 2);
	CHECK_EQ(c->limits.max_leases, 9);
	CHECK_EQ(c->limits.max_leases_per_client, 3);
	CHECK_EQ(c->limits.max_leases_per_uid, 4);
	CHECK(c->limits.max_bytes_per_uid == UINT64_C(1) << 30);
	CHECK_EQ(c->limits.max_queued_events, 5);
	CHECK_EQ(c->limits.handshake_timeout_ms, 6);
	CHECK_EQ(c->limits.idle_timeout_s, 7);
	CHECK_EQ(c->limits.pause_grace_ms, 0);
	CHECK_EQ(c->n_devices, 2);
	/* Only the one about group "barkeep" may come, depending on this system. */
	for (size_t i = 0; i < c->n_warnings; i++)
		CHECK_CONTAINS(c->warnings[i], "group 'barkeep' does not exist");
	if (c->n_devices != 2)
		return;

	const struct config_device *d = &c->devices[0];
	CHECK_STREQ(d->name, "gpu0");
	CHECK_EQ(d->line, 21);
	CHECK_EQ(d->backend, CONFIG_BACKEND_VFIO);
	CHECK_STREQ(d->pci, "0000:00:03.0");
	CHECK_EQ(d->bar, 2);
	CHECK_STREQ(d->label, "Main GPU");
	CHECK(d->max_bytes_per_uid == UINT64_C(256) << 20);
	CHECK(!d->default_access);
	CHECK_EQ(d->n_reserved, 3);
	if (d->n_reserved == 3) {
		/* Sorted by offset, each with its own line. */
		CHECK_EQ(d->reserved[0].offset, 0);
		CHECK_EQ(d->reserved[0].length, 1 << 20);
		CHECK_EQ(d->reserved[0].line, 25);
		CHECK_EQ(d->reserved[1].offset, 0x200000);
		CHECK_EQ(d->reserved[1].length, 64 << 10);
		CHECK_EQ(d->reserved[2].offset, 16 << 20);
		CHECK_EQ(d->reserved[2].line, 26);
	}
	/* Duplicates dropped; names kept for numbers-only entries as NULL. */
	CHECK_EQ(d->n_allow_uids, 3);
	if (d->n_allow_uids == 3) {
		CHECK_EQ(d->allow_uids[0], 0);
		CHECK_STREQ(d->allow_user_names[0], "root");
		CHECK_EQ(d->allow_uids[1], 1000);
		CHECK(d->allow_user_names[1] == NULL);
		CHECK_EQ(d->allow_uids[2], daemon_uid());
		CHECK_STREQ(d->allow_user_names[2], "daemon");
	}
	CHECK_EQ(d->n_allow_gids, 2);
	if (d->n_allow_gids == 2) {
		CHECK_EQ(d->allow_gids[0], video_gid());
		CHECK_EQ(d->allow_gids[1], 12345);
	}

	d = &c->devices[1];
	CHECK_STREQ(d->name, "sys_mem-1");
	CHECK_EQ(d->backend, CONFIG_BACKEND_SYSMEM);
	CHECK_STREQ(d->pci, "");
	CHECK_EQ(d->bar, CONFIG_BAR_AUTO);
	CHECK(d->size == UINT64_C(64) << 20);
	CHECK_STREQ(d->label, "semi;colon"); /* ';' without a space before it is text */
	CHECK(d->default_access);
	CHECK(d->max_bytes_per_uid == CONFIG_UNLIMITED);

	CHECK(config_find_device(c, "gpu0") == &c->devices[0]);
	CHECK(config_find_device(c, "0000:00:03.0") == &c->devices[0]);
	CHECK(config_find_device(c, "00:03.0") == &c->devices[0]);
	CHECK(config_find_device(c, "sys_mem-1") == &c->devices[1]);
	CHECK(config_find_device(c, "gpu1") == NULL);
	CHECK(config_find_device(c, "0000:00:04.0") == NULL);
}

static void test_parse_size(void)
{
	static const struct { const char *s; int r; uint64_t v; } cases[] = {
		{ "0", 0, 0 },
		{ "4096", 0, 4096 },
		{ "4K", 0, 4096 },
		{ "4 KiB", 0, 4096 },
		{ "64M", 0, UINT64_C(64) << 20 },
		{ "3GiB", 0, UINT64_C(3) << 30 },
		{ "2T", 0, UINT64_C(2) << 40 },
		{ "0x1000", 0, 0x1000 },
		{ "0X10M", 0, UINT64_C(16) << 20 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "0xffffffffffffffff", 0, UINT64_MAX },
		{ "16777215T", 0, UINT64_C(16777215) << 40 },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "0x10000000000000000", -ERANGE, 0 },
		{ "16777216T", -ERANGE, 0 },
		{ "17179869184G", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "+1", -EINVAL, 0 },
		{ " 1", -EINVAL, 0 },
		{ "1.5G", -EINVAL, 0 },
		{ "1KB", -EINVAL, 0 },
		{ "1k", -EINVAL, 0 },
		{ "1e3", -EINVAL, 0 },
		{ "0x", -EINVAL, 0 },
		{ "K", -EINVAL, 0 },
		{ "1 K B", -EINVAL, 0 },
		{ "infinity", -EINVAL, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 12345;
		int r = config_parse_size(cases[i].s, &v);
		if (r != cases[i].r || (r == 0 && v != cases[i].v)) {
			fprintf(stderr, "  config_parse_size(\"%s\") = %d, %llu\n", cases[i].s, r,
				(unsigned long long)v);
			unit_case_failed = 1;
		}
	}
}

static void test_format_size(void)
{
	char buf[CONFIG_SIZE_STR_MAX];

	CHECK_STREQ(config_format_size(0, buf), "0 bytes");
	CHECK_STREQ(config_format_size(1000, buf), "1000 bytes");
	CHECK_STREQ(config_format_size(4096, buf), "4 KiB");
	CHECK_STREQ(config_format_size(UINT64_C(3) << 20, buf), "3 MiB");
	CHECK_STREQ(config_format_size((UINT64_C(3) << 20) + 4096, buf), "3076 KiB");
	CHECK_STREQ(config_format_size(UINT64_C(1) << 40, buf), "1 TiB");
	CHECK_STREQ(config_format_size(CONFIG_UNLIMITED, buf), "infinity");
	CHECK_STREQ(config_format_size(UINT64_MAX - 1, buf), "18446744073709551614 bytes");
}

static void test_parse_pci(void)
{
	static const struct { const char *s; const char *want; } cases[] = {
		{ "0000:00:03.0", "0000:00:03.0" },
		{ "00:03.0", "0000:00:03.0" },
		{ "0000:AB:1F.7", "0000:ab:1f.7" },
		{ "10000:e1:00.0", "10000:e1:00.0" },
		{ "ffffffff:ff:1f.7", "ffffffff:ff:1f.7" },
		{ "0000:00:20.0", NULL },
		{ "0000:00:03.8", NULL },
		{ "0:00:03.0", NULL },
		{ "000:00:03.0", NULL },
		{ "100000000:00:03.0", NULL },
		{ "0000:0:03.0", NULL },
		{ "0000:00:3.0", NULL },
		{ "0000:00:03", NULL },
		{ "0000:00:03.0 ", NULL },
		{ "0000:00:03.00", NULL },
		{ "g000:00:03.0", NULL },
		{ "0000-00:03.0", NULL },
		{ "", NULL },
		{ "0000:00:00:03.0", NULL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[CONFIG_PCI_ADDR_MAX] = "";
		int r = config_parse_pci(cases[i].s, out);
		if (cases[i].want ? (r != 0 || strcmp(out, cases[i].want) != 0) : r != -EINVAL) {
			fprintf(stderr, "  config_parse_pci(\"%s\") = %d, \"%s\"\n", cases[i].s, r,
				out);
			unit_case_failed = 1;
		}
	}
}

static void test_errors_syntax(void)
{
	CHECK_ERROR("[daemon]\nsocket = /a\nthis is not a key\n",
		    "barkeep.conf:3: expected 'key = value', '[section]' or a comment, got "
		    "'this is not a key'");
	CHECK_ERROR("[daemon\n", "barkeep.conf:1: section header without a closing ']'");
	CHECK_ERROR("socket = /x\n",
		    "barkeep.conf:1: socket: outside of any section; keys go under [daemon], "
		    "[limits], [device NAME] or [container NAME]");
	CHECK_ERROR("[daemon]\n= 5\n", "barkeep.conf:2: missing key name before '='");
	CHECK_ERROR("[daemon]\nsocket =\n", "barkeep.conf:2: socket: empty value");
	CHECK_ERROR("[daemon]\nsocket = /a\nsocket = /b\n",
		    "barkeep.conf:3: socket: set twice (first at line 2)");

	/* inih would silently treat an indented key as part of the previous value. */
	CHECK_ERROR("[daemon]\nsocket = /a\n  log-level = debug\n",
		    "barkeep.conf:3: socket: an indented line continues the previous value, and "
		    "socket takes one value; do not indent keys");

	/* inih would silently cut this line at 199 characters. */
	char long_line[400];
	snprintf(long_line, sizeof(long_line), "[device gpu0]\npci = 0000:00:03.0\n"
		 "label = %0220d\n", 0);
	CHECK_ERROR(long_line, "barkeep.conf:3: line is longer than 199 characters; split a "
		    "long list over indented continuation lines");
}

static void test_errors_sections(void)
{
	CHECK_ERROR("[deamon]\nsocket = /x\n",
		    "barkeep.conf:1: unknown section [deamon]; did you mean [daemon]?");
	CHECK_ERROR("[network]\n",
		    "barkeep.conf:1: unknown section [network]; the sections are [daemon], "
		    "[limits], [device NAME] and [container NAME]");
	CHECK_ERROR("[device]\npci = 0000:00:03.0\n",
		    "barkeep.conf:1: [device] needs a name, e.g. [device gpu0]");
	CHECK_ERROR("[device gpu/0]\n",
		    "barkeep.conf:1: 'gpu/0' is not a valid device name: 1 to 32 characters from "
		    "a-z, A-Z, 0-9, _ and -");
	CHECK_ERROR("[device abcdefghijklmnopqrstuvwxyz0123456]\n",
		    "barkeep.conf:1: 'abcdefghijklmnopqrstuvwxyz0123456' is not a valid device "
		    "name: 1 to 32 characters from a-z, A-Z, 0-9, _ and -");
	CHECK_ERROR("[device a]\npci = 0000:00:03.0\n[device a]\npci = 0000:00:04.0\n",
		    "barkeep.conf:3: [device a] is already defined at line 1");
	/* An empty device section is not silently ignored. */
	CHECK_ERROR("[device gpu0]\n",
		    "barkeep.conf:1: [device gpu0]: pci = is missing (a vfio device is named by "
		    "its PCI address, e.g. pci = 0000:00:03.0)");
	/* A repeated [daemon] is fine; its keys still count once. */
	CHECK_ERROR("[daemon]\nsocket = /a\n[limits]\n[daemon]\nsocket = /b\n",
		    "barkeep.conf:5: socket: set twice (first at line 2)");
}

static void test_errors_keys(void)
{
	CHECK_ERROR("[limits]\nmax-client = 3\n",
		    "barkeep.conf:2: max-client: unknown key in [limits]; did you mean "
		    "max-clients?");
	CHECK_ERROR("[limits]\nfoo = 3\n", "barkeep.conf:2: foo: unknown key in [limits]");
	CHECK_ERROR("[daemon]\npci = 0000:00:03.0\n",
		    "barkeep.conf:2: pci: not a key of [daemon]; it belongs in [device NAME]");
	/* The continuation of an unknown key is not reported again. */
	CHECK_ERROR("[device g]\npci = 00:01.0\nallow-user = root,\n  daemon\n",
		    "barkeep.conf:3: allow-user: unknown key in [device NAME]; did you mean "
		    "allow-users?");
}

static void test_errors_values(void)
{
	CHECK_ERROR("[daemon]\nsocket = run/x\n",
		    "barkeep.conf:2: socket: 'run/x' is not an absolute path");
	CHECK_ERROR("[daemon]\nsocket-mode = 0999\n",
		    "barkeep.conf:2: socket-mode: '0999' is not an octal permission mode between "
		    "0000 and 0777");
	CHECK_ERROR("[daemon]\nsocket-mode = 1777\n",
		    "barkeep.conf:2: socket-mode: '1777' is not an octal permission mode between "
		    "0000 and 0777");
	CHECK_ERROR("[daemon]\nlog-level = loud\n",
		    "barkeep.conf:2: log-level: 'loud' is not a log level (error, warning, notice, "
		    "info, debug)");
	CHECK_ERROR("[daemon]\nsocket-group = no-such-group-xyz\n",
		    "barkeep.conf:2: socket-group: no such group 'no-such-group-xyz'");
	CHECK_ERROR("[daemon]\nadmin-group = 4294967295\n",
		    "barkeep.conf:2: admin-group: 4294967295 is not a valid gid");

	CHECK_ERROR("[limits]\nmax-clients = 0\n",
		    "barkeep.conf:2: max-clients: 0 is out of range (1 to 65536)");
	CHECK_ERROR("[limits]\nmax-clients = 99999999999999999999999\n",
		    "barkeep.conf:2: max-clients: 99999999999999999999999 is out of range (1 to "
		    "65536)");
	CHECK_ERROR("[limits]\nmax-clients = -1\n",
		    "barkeep.conf:2: max-clients: '-1' is not a number");
	CHECK_ERROR("[limits]\nmax-bytes-per-uid = 17Q\n",
		    "barkeep.conf:2: max-bytes-per-uid: '17Q' is not a size: expected a number "
		    "(decimal or 0x hex) with an optional unit K, M, G, T or KiB, MiB, GiB, TiB");
	CHECK_ERROR("[limits]\nmax-bytes-per-uid = 16777216T\n",
		    "barkeep.conf:2: max-bytes-per-uid: '16777216T' is too large (the limit is "
		    "2^64 - 1 bytes)");
	CHECK_ERROR("[limits]\nmax-bytes-per-uid = 0\n",
		    "barkeep.conf:2: max-bytes-per-uid: 0 would refuse every allocation: use "
		    "allow-users/allow-groups to deny access, or infinity for no limit");

	_cleanup_config_ struct config *c = load_ok("[limits]\nmax-bytes-per-uid = infinity\n"
						     "idle-timeout-s = 0\n");
	if (c)
		CHECK(c->limits.max_bytes_per_uid == CONFIG_UNLIMITED);
}

static void test_errors_device(void)
{
	char want[256];

	snprintf(want, sizeof(want),
		 "barkeep.conf:3: reserve: 0x1001+4096 is not page aligned (%ld)", page());
	CHECK_ERROR("[device gpu0]\npci = 0000:00:03.0\nreserve = 0x1001+4096\n", want);
	CHECK_ERROR("[device gpu0]\npci = 0000:00:03.0\nreserve = 0+1M, 4096\n",
		    "barkeep.conf:3: reserve: '4096' is not OFFSET+LENGTH (e.g. 0+1M or "
		    "0x100000+64K)");
	CHECK_ERROR("[device gpu0]\npci = 0000:00:03.0\nreserve = 0+0\n",
		    "barkeep.conf:3: reserve: 0+0 is empty");
	CHECK_ERROR("[device gpu0]\npci = 0000:00:03.0\nreserve = 16777215T+1T\n",
		    "barkeep.conf:3: reserve: 16777215T+1T ends past 2^64");
	CHECK_ERROR("[device gpu0]\npci = 0000:00:03.0\nreserve = 0x+1M\n",
		    "barkeep.conf:3: reserve: '0x' is not a size: expected a number (decimal or 0x "
		    "hex) with an optional unit K, M, G, T or KiB, MiB, GiB, TiB");
	CHECK_ERROR("[device gpu0]\npci = 0000:00:03.0\nreserve = 1M+1M,\n  0+2M\n",
		    "barkeep.conf:4: reserve: 0x100000+0x100000 overlaps 0x0+0x200000 (line 3)");
	CHECK_ERROR("[device gpu0]\npci = 0000:00:03.0\nreserve = 0+4K\nreserve = 1M+4K\n",
		    "barkeep.conf:4: reserve: set twice (first at line 3); give all entries in one "
		    "reserve = line, continued on indented lines");

	CHECK_ERROR("[device gpu0]\npci = 0000:00:20.0\n",
		    "barkeep.conf:2: pci: '0000:00:20.0' is not a PCI address: expected "
		    "DOMAIN:BUS:DEVICE.FUNCTION in hex, e.g. 0000:00:03.0 (device at most 1f, "
		    "function at most 7)");
	CHECK_ERROR("[device a]\npci = 0000:00:03.0\n\n[device b]\npci = 00:03.0\n",
		    "barkeep.conf:5: pci: 0000:00:03.0 is already used by [device a] (line 1)");
	CHECK_ERROR("[device a]\npci = 0000:00:03.0\nbar = 6\n",
		    "barkeep.conf:3: bar: '6' is not a BAR index (0 to 5)");
	CHECK_ERROR("[device a]\npci = 0000:00:03.0\nbackend = cuda\n",
		    "barkeep.conf:3: backend: 'cuda' is not a backend (vfio or sysmem)");
	CHECK_ERROR("[device a]\npci = 0000:00:03.0\nsize = 1M\n",
		    "barkeep.conf:3: size: only for backend = sysmem (a vfio device's size is its "
		    "BAR's)");

	CHECK_ERROR("[device m]\nbackend = sysmem\n",
		    "barkeep.conf:1: [device m]: size = is missing (backend sysmem needs the size "
		    "of memory to lend)");
	CHECK_ERROR("[device m]\nbackend = sysmem\nsize = 1M\npci = 0000:00:03.0\nbar = 1\n",
		    "barkeep.conf:4: pci: not used by backend sysmem\n"
		    "barkeep.conf:5: bar: not used by backend sysmem");
	snprintf(want, sizeof(want), "barkeep.conf:3: size: 1000 is not a non-zero multiple of "
		 "the page size (%ld)", page());
	CHECK_ERROR("[device m]\nbackend = sysmem\nsize = 1000\n", want);
	CHECK_ERROR("[device m]\nbackend = sysmem\nsize = 1M\nreserve = 1M+4K\n",
		    "barkeep.conf:4: reserve: 0x100000+0x1000 runs past the end of the device "
		    "(size = 1 MiB)");

	CHECK_ERROR("[device a]\npci = 0000:00:03.0\nallow-users = root, no-such-user-xyz\n",
		    "barkeep.conf:3: allow-users: no such user 'no-such-user-xyz'");
	CHECK_ERROR("[device a]\npci = 0000:00:03.0\nallow-users = 4294967295\n",
		    "barkeep.conf:3: allow-users: 4294967295 is not a valid uid");
	CHECK_ERROR("[device a]\npci = 0000:00:03.0\nallow-groups = video,\n  no-such-group-xyz\n",
		    "barkeep.conf:4: allow-groups: no such group 'no-such-group-xyz'");
	CHECK_ERROR("[device a]\npci = 0000:00:03.0\nlabel = a\tb\n",
		    "barkeep.conf:3: label: contains a control character");
}

/* All errors come back, one line each, in file order; a bad section does not cascade. */
static void test_errors_many(void)
{
	char want[1024];

	snprintf(want, sizeof(want),
		    "barkeep.conf:1: [device a]: pci = is missing (a vfio device is named by its "
		    "PCI address, e.g. pci = 0000:00:03.0)\n"
		    "barkeep.conf:2: reserve: 1+1 is not page aligned (%ld)\n"
		    "barkeep.conf:3: unknown section [bogus]; the sections are [daemon], [limits], "
		    "[device NAME] and [container NAME]\n"
		    "barkeep.conf:6: max-clients: 'x' is not a number", page());
	CHECK_ERROR("[device a]\n"               /* 1: pci missing (reported at the end) */
		    "reserve = 1+1\n"            /* 2 */
		    "[bogus]\n"                  /* 3 */
		    "foo = 1\n"                  /* 4: inside [bogus]: not reported */
		    "[limits]\n"                 /* 5 */
		    "max-clients = x\n",         /* 6 */
		    want);

	char text[4096] = "[limits]\n";
	for (int i = 0; i < 30; i++)
		strcat(text, "max-clients = x\n");
	char *err = load_error(text);
	CHECK_CONTAINS(err, "barkeep.conf:2: max-clients: 'x' is not a number\n");
	CHECK_CONTAINS(err, "barkeep.conf:3: max-clients: set twice (first at line 2)\n");
	CHECK_CONTAINS(err, "\nbarkeep.conf: 10 more errors not shown");
	free(err);
}

static void test_default_access(void)
{
	_cleanup_config_ struct config *c =
		load_ok("[device a]\npci = 0000:00:03.0\n[device b]\npci = 0000:00:04.0\n"
			"allow-groups = video\n");

	if (!c || c->n_devices != 2)
		return;
	CHECK(c->devices[0].default_access);
	CHECK(!c->devices[1].default_access);
	/* Group "barkeep" is in the default list only if it exists here. */
	bool have_barkeep = false;
	for (size_t i = 0; i < c->n_warnings; i++)
		if (strstr(c->warnings[i], "devices without allow-users"))
			have_barkeep = true;
	CHECK_EQ(c->devices[0].n_allow_gids, have_barkeep ? 0 : 1);
}

static char *write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/test_config.XXXXXX");
	int fd = path ? mkstemp(path) : -1;

	CHECK(fd >= 0);
	if (fd < 0) {
		free(path);
		return NULL;
	}
	CHECK_EQ(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_files(void)
{
	struct config *c = NULL;
	char *err = NULL;

	CHECK_EQ(config_load_file("/nonexistent/barkeep.conf", &c, &err), -ENOENT);
	CHECK_STREQ(err, "/nonexistent/barkeep.conf: cannot read: No such file or directory");
	free(err);

	CHECK_EQ(config_load_file("/tmp", &c, &err), -EINVAL);
	CHECK_CONTAINS(err, "/tmp: not a regular file");
	free(err);

	static const char nul[] = "[daemon]\nsocket = /a\0b\n";
	char *path = write_temp(nul, sizeof(nul) - 1);
	if (path) {
		char want[128];
		snprintf(want, sizeof(want), "%s:2: contains a NUL byte; is this a text file?", path);
		CHECK_EQ(config_load_file(path, &c, &err), -EINVAL);
		CHECK_STREQ(err, want);
		free(err);
		unlink(path);
		free(path);
	}

	static const char bad[] = "[limits]\n\nmax-leases-per-uid = none\n";
	path = write_temp(bad, sizeof(bad) - 1);
	if (path) {
		char want[128];
		snprintf(want, sizeof(want), "%s:3: max-leases-per-uid: 'none' is not a number",
			 path);
		CHECK_EQ(config_load_file(path, &c, &err), -EINVAL);
		CHECK_STREQ(err, want);
		free(err);
		unlink(path);
		free(path);
	}

	path = write_temp(full_config, sizeof(full_config) - 1);
	if (path) {
		CHECK_EQ(config_load_file(path, &c, &err), 0);
		CHECK(err == NULL);
		CHECK(c && c->n_devices == 2);
		CHECK_STREQ(c ? c->path : NULL, path);
		c = config_free(c);
		unlink(path);
		free(path);
	}
	CHECK(c == NULL);
	/* ret_error is optional. */
	CHECK_EQ(config_load_string("[x]\n", NULL, &c, NULL), -EINVAL);
}

static void test_dump(void)
{
	_cleanup_config_ struct config *c = load_ok(full_config);
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!c || !f)
		return;
	config_dump(c, f);
	fclose(f);
	CHECK_CONTAINS(buf, "barkeep.conf:\n[daemon]\n");
	CHECK_CONTAINS(buf, "  socket /run/bk.sock, mode 0600, group gid 0\n");
	CHECK_CONTAINS(buf, "  log level debug\n");
	CHECK_CONTAINS(buf, "  admin group (may reset devices): root (gid 0)\n");
	CHECK_CONTAINS(buf, "  clients: 10 in all, 2 per uid\n");
	CHECK_CONTAINS(buf, "  bytes per uid, all devices: 1 GiB\n");
	CHECK_CONTAINS(buf, "  handshake timeout: 6 ms; idle timeout: 7 s; pause grace: 0 ms\n");
	CHECK_CONTAINS(buf, "[device gpu0] (line 21)\n  vfio device 0000:00:03.0, BAR 2\n");
	CHECK_CONTAINS(buf, "  label: Main GPU\n");
	CHECK_CONTAINS(buf, "  reserved: 0x0+1 MiB (line 25)\n");
	CHECK_CONTAINS(buf, "  reserved: 0x1000000+4 KiB (line 26)\n");
	char want[256];
	snprintf(want, sizeof(want), "  may be used by: root, user root (0), user 1000, user "
		 "daemon (%u), group video (%u), group 12345\n", daemon_uid(), video_gid());
	CHECK_CONTAINS(buf, want);
	CHECK_CONTAINS(buf, "  at most 256 MiB per uid\n");
	CHECK_CONTAINS(buf, "[device sys_mem-1] (line 32)\n  system memory, 64 MiB\n");
	CHECK_CONTAINS(buf, "(default: no allow-users/allow-groups)\n");
	free(buf);
}

/* The shipped example must stay valid; only its user and group names may be
 * unknown on the machine running the test. */
static void test_example_file(void)
{
	const char *path = "systemd/barkeep.conf.example";
	struct config *c = NULL;
	char *err = NULL;

	if (access(path, R_OK) < 0) {
		printf("  %s not found (run from the top of the tree); skipped\n", path);
		return;
	}
	int r = config_load_file(path, &c, &err);
	if (r == 0)
		CHECK(c && c->n_devices == 2);
	else {
		CHECK_EQ(r, -EINVAL);
		for (char *line = err, *next; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			if (!strstr(line, ": no such user '") && !strstr(line, ": no such group '")) {
				fprintf(stderr, "  %s\n", line);
				unit_case_failed = 1;
			}
		}
	}
	free(err);
	config_free(c);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_full);
	RUN(test_parse_size);
	RUN(test_format_size);
	RUN(test_parse_pci);
	RUN(test_errors_syntax);
	RUN(test_errors_sections);
	RUN(test_errors_keys);
	RUN(test_errors_values);
	RUN(test_errors_device);
	RUN(test_errors_many);
	RUN(test_default_access);
	RUN(test_files);
	RUN(test_dump);
	RUN(test_example_file);
	return UNIT_END();
}

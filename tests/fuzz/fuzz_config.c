/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for config_load_string(): the input is a barkeep.conf
 * (up to its first NUL, as config_load_file() refuses files with one).
 * A config that loads is looked up, printed and freed; one that does not
 * must say why. LeakSanitizer checks that everything is freed either way.
 *
 * User and group names resolve in a small fixed table below instead of
 * through NSS: a lookup through nss-systemd opens dozens of files, which made
 * the target 20 times slower, and the host's /etc/group would decide what a
 * corpus entry covers.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "daemon/config.h"
#include "tests/fuzz/fuzz.h"

int getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size,
	       struct passwd **ret);
int getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, struct group **ret);

struct fake_id {
	const char *name;
	unsigned id;
};

/* Group "barkeep" exists, "barkeep-admin" does not: both default paths run. */
static const struct fake_id fake_users[] = { { "root", 0 }, { "daemon", 1 }, { "alice", 1001 } };
static const struct fake_id fake_groups[] = {
	{ "root", 0 }, { "video", 44 }, { "render", 105 }, { "barkeep", 999 },
};

/* Finds name; -ERANGE for "erange", which never fits (the retry loop). */
static int fake_lookup(const struct fake_id *table, size_t n, const char *name, size_t size,
		       const struct fake_id **ret)
{
	*ret = NULL;
	if (strcmp(name, "erange") == 0 || size < 64)
		return ERANGE;
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].name, name) == 0) {
			*ret = &table[i];
			break;
		}
	return 0;
}

int getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size,
	       struct passwd **ret)
{
	const struct fake_id *u;
	int r = fake_lookup(fake_users, ARRAY_SIZE(fake_users), name, size, &u);

	*ret = NULL;
	if (r != 0 || !u)
		return r;
	memset(pw, 0, sizeof(*pw));
	snprintf(buf, size, "%s", u->name);
	pw->pw_name = buf;
	pw->pw_uid = u->id;
	pw->pw_gid = u->id;
	*ret = pw;
	return 0;
}

int getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, struct group **ret)
{
	const struct fake_id *g;
	int r = fake_lookup(fake_groups, ARRAY_SIZE(fake_groups), name, size, &g);

	*ret = NULL;
	if (r != 0 || !g)
		return r;
	memset(gr, 0, sizeof(*gr));
	snprintf(buf, size, "%s", g->name);
	gr->gr_name = buf;
	gr->gr_gid = g->id;
	*ret = gr;
	return 0;
}

static void use_config(const struct config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	FUZZ_ASSERT(f);
	config_dump(c, f);
	for (size_t i = 0; i < c->n_devices; i++) {
		const struct config_device *d = &c->devices[i];

		FUZZ_ASSERT(config_find_device(c, d->name) == d);
		if (d->pci[0])
			FUZZ_ASSERT(config_find_device(c, d->pci) == d);
		config_device_print_access(d, f);
	}
	FUZZ_ASSERT(fclose(f) == 0);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	char *text, *err = NULL;
	int r;

	text = strndup((const char *)data, size);
	FUZZ_ASSERT(text);
	r = config_load_string(text, "fuzz.conf", &c, &err);
	if (r == 0) {
		FUZZ_ASSERT(c && !err);
		use_config(c);
	} else {
		FUZZ_ASSERT(!c);
		FUZZ_ASSERT(r == -EINVAL || r == -ENOMEM);
		FUZZ_ASSERT(r == -ENOMEM || (err && err[0] != '\0'));
	}
	config_free(c);
	free(err);
	free(text);
	return 0;
}

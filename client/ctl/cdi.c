// SPDX-License-Identifier: MIT
/*
 * barkeepctl cdi generate, cdi list: a Container Device Interface spec that
 * gives a container the broker's socket (never a VFIO device), and the CDI
 * names the spec directories hold for it. See doc/containers.md.
 *
 * The spec says cdiVersion 0.5.0, the newest that Debian 12's podman 4.3
 * (container-device-interface 0.5) reads; containerd 1.7+ and CRI-O read it too.
 * Only JSON specs are listed: YAML ones are not ours.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/ctl/ctl.h"
#include "client/ctl/json.h"
#include "common/log.h"

#define CDI_VERSION "0.5.0"
#define CDI_KIND "barkeep.dev/broker"
#define CDI_DEFAULT_NAME "broker"
#define CDI_CONTAINER_SOCKET BARKEEP_DEFAULT_SOCKET
#define CDI_SPEC_MAX (256 * 1024)

static const char *const spec_dirs[] = { "/etc/cdi", "/var/run/cdi" };

/* CDI device names: a letter or digit, then letters, digits, '_', '-', '.', ':'. */
static bool valid_cdi_name(const char *s)
{
	size_t len = strlen(s);
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

	return len > 0 && len <= 64 && strchr(alnum, s[0]) &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:") == len;
}

static void write_spec(FILE *f, const char *name, const char *host_socket)
{
	char env[600];

	snprintf(env, sizeof(env), "%s=%s", BARKEEP_SOCKET_ENV, CDI_CONTAINER_SOCKET);
	fprintf(f, "{\n  \"cdiVersion\": \"%s\",\n  \"kind\": \"%s\",\n", CDI_VERSION, CDI_KIND);
	fprintf(f, "  \"devices\": [\n    {\n      \"name\": ");
	json_escape(f, name);
	fprintf(f, ",\n      \"containerEdits\": {\n        \"env\": [ ");
	json_escape(f, env);
	fprintf(f, " ],\n        \"mounts\": [\n          {\n            \"hostPath\": ");
	json_escape(f, host_socket);
	fprintf(f, ",\n            \"containerPath\": ");
	json_escape(f, CDI_CONTAINER_SOCKET);
	fprintf(f, ",\n            \"type\": \"bind\",\n"
		"            \"options\": [ \"bind\", \"nosuid\", \"nodev\", \"noexec\" ]\n"
		"          }\n        ]\n      }\n    }\n  ]\n}\n");
}

/* Writes to path.tmp and renames, so a runtime never reads half a spec. */
static int write_spec_file(const char *path, const char *name, const char *host_socket)
{
	char tmp[4096];

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int r = -errno;
		close(fd);
		unlink(tmp);
		return r;
	}
	write_spec(f, name, host_socket);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0 || fclose(f) != 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	if (rename(tmp, path) < 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

struct generate_opts {
	const char *output, *name;
};

enum { OPT_OUTPUT = CTL_OPT_COMMAND, OPT_SPEC_DIR };

static int generate_option(int c, const char *arg, void *data)
{
	struct generate_opts *o = data;

	if (c == OPT_OUTPUT)
		o->output = arg;
	return 0;
}

static int cdi_generate(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ NULL, 0, NULL, 0 },
	};
	struct generate_opts o = { .name = CDI_DEFAULT_NAME };

	if (ctl_parse_options_only(ctl, argc, argv, opts, generate_option, &o) < 0)
		return CTL_EXIT_USAGE;
	/* --name is barkeepctl's global option (the client's name in the log);
	 * for cdi generate it names the CDI device, as the manual says. */
	if (ctl->name)
		o.name = ctl->name;
	if (!valid_cdi_name(o.name)) {
		ctl_usage_error("'%s' is not a CDI device name: a letter or digit, then letters, "
				"digits, '_', '-', '.' or ':' (at most 64)", o.name);
		return CTL_EXIT_USAGE;
	}
	const char *sock = ctl_socket_path(ctl);
	if (sock[0] != '/') {
		ctl_usage_error("the socket path must be absolute for a bind mount, got '%s'", sock);
		return CTL_EXIT_USAGE;
	}
	if (!o.output || strcmp(o.output, "-") == 0) {
		write_spec(stdout, o.name, sock);
		return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
	}
	int r = write_spec_file(o.output, o.name, sock);
	if (r < 0) {
		ctl_report(ctl, r, "", "cannot write %s", o.output);
		return CTL_EXIT_REFUSED;
	}
	if (!ctl->json)
		fprintf(stderr, "Wrote %s: %s=%s bind-mounts %s at %s in a container.\n",
			o.output, CDI_KIND, o.name, sock, CDI_CONTAINER_SOCKET);
	return CTL_EXIT_OK;
}

/* ---- a small JSON reader: enough to find kind and devices[].name ---------- */

struct scan {
	const char *p;
	int depth;
};

static void ws(struct scan *s)
{
	while (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')
		s->p++;
}

/* A string into buf (escapes other than \" and \\ are kept as written). */
static bool read_string(struct scan *s, char *buf, size_t size)
{
	size_t n = 0;

	ws(s);
	if (*s->p != '"')
		return false;
	for (s->p++; *s->p && *s->p != '"'; s->p++) {
		if (*s->p == '\\' && s->p[1])
			s->p++;
		if (n + 1 < size)
			buf[n++] = *s->p;
	}
	if (*s->p != '"')
		return false;
	s->p++;
	buf[n] = '\0';
	return true;
}

static bool skip_value(struct scan *s)
{
	char tmp[8];

	ws(s);
	if (*s->p == '"')
		return read_string(s, tmp, sizeof(tmp));
	if (*s->p == '{' || *s->p == '[') {
		char close = *s->p == '{' ? '}' : ']';
		if (++s->depth > 64)
			return false;
		s->p++;
		ws(s);
		while (*s->p && *s->p != close) {
			if (close == '}' && (!read_string(s, tmp, sizeof(tmp)) || (ws(s), *s->p++ != ':')))
				return false;
			if (!skip_value(s))
				return false;
			ws(s);
			if (*s->p == ',')
				s->p++;
			ws(s);
		}
		if (*s->p != close)
			return false;
		s->p++;
		s->depth--;
		return true;
	}
	size_t n = strspn(s->p, "-+.0123456789eEtruefalsn");
	s->p += n;
	return n > 0;
}

/* Calls fn for each devices[].name of a spec of our kind. Returns whether
 * the text is a JSON object at all. */
static bool scan_spec(const char *text, void (*fn)(const char *name, void *data), void *data)
{
	struct scan s = { text, 0 };
	char key[64], kind[128] = "", names[32][80];
	size_t n_names = 0;

	ws(&s);
	if (*s.p++ != '{')
		return false;
	for (ws(&s); *s.p && *s.p != '}'; ws(&s)) {
		if (!read_string(&s, key, sizeof(key)) || (ws(&s), *s.p++ != ':'))
			return false;
		ws(&s);
		if (strcmp(key, "kind") == 0) {
			if (!read_string(&s, kind, sizeof(kind)))
				return false;
		} else if (strcmp(key, "devices") == 0 && *s.p == '[') {
			for (s.p++, ws(&s); *s.p == '{'; ws(&s)) {
				for (s.p++, ws(&s); *s.p && *s.p != '}'; ws(&s)) {
					if (!read_string(&s, key, sizeof(key)) || (ws(&s), *s.p++ != ':'))
						return false;
					if (strcmp(key, "name") == 0 && n_names < ARRAY_SIZE(names)) {
						if (!read_string(&s, names[n_names++], sizeof(names[0])))
							return false;
					} else if (!skip_value(&s))
						return false;
					ws(&s);
					if (*s.p == ',')
						s.p++;
				}
				if (*s.p++ != '}')
					return false;
				ws(&s);
				if (*s.p == ',')
					s.p++;
			}
			if (*s.p++ != ']')
				return false;
		} else if (!skip_value(&s))
			return false;
		ws(&s);
		if (*s.p == ',')
			s.p++;
	}
	if (strcmp(kind, CDI_KIND) == 0)
		for (size_t i = 0; i < n_names; i++)
			fn(names[i], data);
	return true;
}

struct list_state {
	struct ctl *ctl;
	struct json j;
	const char *spec;
	unsigned n;
};

static void list_one(const char *name, void *data)
{
	struct list_state *st = data;

	st->n++;
	if (!st->ctl->json) {
		printf("%s=%s\t%s\n", CDI_KIND, name, st->spec);
		return;
	}
	char full[256];
	snprintf(full, sizeof(full), "%s=%s", CDI_KIND, name);
	json_object_begin(&st->j, NULL);
	json_string(&st->j, "name", full);
	json_string(&st->j, "spec", st->spec);
	json_object_end(&st->j);
}

static char *read_small_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(CDI_SPEC_MAX + 1);
	n = buf ? fread(buf, 1, CDI_SPEC_MAX, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

static void list_dir(struct list_state *st, const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		const char *e = ents[i]->d_name;
		size_t len = strlen(e);
		char path[4096];
		if (len > 5 && strcmp(e + len - 5, ".json") == 0 &&
		    snprintf(path, sizeof(path), "%s/%s", dir, e) < (int)sizeof(path)) {
			char *text = read_small_file(path);
			st->spec = path;
			if (text && !scan_spec(text, list_one, st))
				log_warning("%s: not a CDI spec in JSON; skipped", path);
			free(text);
		}
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
}

static int spec_dir_option(int c, const char *arg, void *data)
{
	*(const char **)data = arg;
	return 0;
}

static int cdi_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "spec-dir", required_argument, NULL, OPT_SPEC_DIR },
		{ NULL, 0, NULL, 0 },
	};
	struct list_state st = { .ctl = ctl };
	const char *only = NULL;

	if (ctl_parse_options_only(ctl, argc, argv, opts, spec_dir_option, &only) < 0)
		return CTL_EXIT_USAGE;
	if (ctl->json) {
		json_init(&st.j, stdout);
		json_object_begin(&st.j, NULL);
		json_array_begin(&st.j, "devices");
	}
	if (only)
		list_dir(&st, only);
	else
		for (size_t i = 0; i < ARRAY_SIZE(spec_dirs); i++)
			list_dir(&st, spec_dirs[i]);
	if (ctl->json) {
		json_array_end(&st.j);
		json_object_end(&st.j);
	} else if (st.n == 0)
		fprintf(stderr, "No CDI spec of kind %s in %s; write one with 'barkeepctl cdi "
			"generate --output /etc/cdi/barkeep.json'.\n", CDI_KIND,
			only ? only : "/etc/cdi or /var/run/cdi");
	return CTL_EXIT_OK;
}

int cmd_cdi(struct ctl *ctl, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "generate") == 0)
		return cdi_generate(ctl, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return cdi_list(ctl, argc - 1, argv + 1);
	ctl_usage_error("cdi takes 'generate' or 'list', got %s%s%s", argc >= 2 ? "'" : "nothing",
			argc >= 2 ? argv[1] : "", argc >= 2 ? "'" : "");
	return CTL_EXIT_USAGE;
}

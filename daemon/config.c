// SPDX-License-Identifier: MIT
/*
 * barkeep.conf goes through inih's ini_parse_stream() with our own line
 * reader. Debian's libinih is built without line numbers in the handler, so
 * the reader counts lines; and since it sees every raw line it also catches
 * what inih lets pass silently: over-long lines (inih cuts them at 199
 * characters), indented keys (inih takes them as a continuation of the
 * previous value) and empty sections (inih tells the handler only about keys).
 * The reader classifies each line exactly as inih 55 does, so both agree on
 * which line is a section, a key or a continuation.
 *
 * Every problem is collected (up to MAX_ERRORS) so that --check-config shows
 * them all at once; a section with a bad header is skipped to avoid cascades.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/config.h"

/* push_id() keeps uids and gids in one kind of array. */
_Static_assert(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t),
	       "uid_t and gid_t are 32 bits");

#define MAX_ERRORS 20
#define MAX_FILE_SIZE (1024 * 1024)
#define DEFAULT_NAME "barkeep.conf"

enum section_kind {
	SECTION_NONE, SECTION_DAEMON, SECTION_LIMITS, SECTION_DEVICE, SECTION_CONTAINER, SECTION_BAD
};

static const char *const section_names[] = {
	[SECTION_DAEMON] = "[daemon]",
	[SECTION_LIMITS] = "[limits]",
	[SECTION_DEVICE] = "[device NAME]",
	[SECTION_CONTAINER] = "[container NAME]",
};

struct parser;
struct key_def;
typedef void (*key_parse_fn)(struct parser *p, const struct key_def *k, const char *value,
			     void *dest);

struct key_def {
	enum section_kind section;
	const char *name;
	key_parse_fn parse;
	size_t offset;     /* into struct config, config_device or config_container */
	uint64_t min, max; /* for numbers */
	bool list;         /* indented continuation lines add more entries */
};

static void parse_socket_path(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_mode(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_name(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_log_level(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_share_with(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_share_users(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_share_groups(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_u32(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_byte_limit(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_pci(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_backend(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_bar(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_device_size(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_label(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_reserve(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_users(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_groups(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_cgroups(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_uid_range(struct parser *p, const struct key_def *k, const char *v, void *d);
static void parse_container_devices(struct parser *p, const struct key_def *k, const char *v,
				    void *d);

#define DAEMON(n, fn, field) { SECTION_DAEMON, n, fn, offsetof(struct config, field), 0, 0, false }
#define DAEMON_LIST(n, fn, field) { SECTION_DAEMON, n, fn, offsetof(struct config, field), 0, 0, true }
#define LIMIT(n, fn, field, lo, hi) \
	{ SECTION_LIMITS, n, fn, offsetof(struct config, limits.field), lo, hi, false }
#define DEVICE(n, fn, field, list) \
	{ SECTION_DEVICE, n, fn, offsetof(struct config_device, field), 0, 0, list }
#define CONTAINER(n, fn, field, lo, hi, list) \
	{ SECTION_CONTAINER, n, fn, offsetof(struct config_container, field), lo, hi, list }

static const struct key_def keys[] = {
	DAEMON("socket", parse_socket_path, socket_path),
	DAEMON("socket-mode", parse_mode, socket_mode),
	DAEMON("socket-group", parse_name, socket_group),
	DAEMON("log-level", parse_log_level, log_level),
	DAEMON("admin-group", parse_name, admin_group),
	DAEMON("share-with", parse_share_with, share_with),
	DAEMON_LIST("share-with-users", parse_share_users, share_uids),
	DAEMON_LIST("share-with-groups", parse_share_groups, share_gids),

	LIMIT("max-clients", parse_u32, max_clients, 1, 65536),
	LIMIT("max-clients-per-uid", parse_u32, max_clients_per_uid, 1, 65536),
	LIMIT("reclaim-timeout-s", parse_u32, reclaim_timeout_s, 1, 3600),
	LIMIT("max-leases", parse_u32, max_leases, 1, 1 << 20),
	LIMIT("max-leases-per-client", parse_u32, max_leases_per_client, 1, 1 << 20),
	LIMIT("max-leases-per-uid", parse_u32, max_leases_per_uid, 1, 1 << 20),
	LIMIT("max-bytes-per-uid", parse_byte_limit, max_bytes_per_uid, 1, UINT64_MAX),
	LIMIT("max-queued-events", parse_u32, max_queued_events, 1, 65536),
	LIMIT("handshake-timeout-ms", parse_u32, handshake_timeout_ms, 1, 600000),
	LIMIT("idle-timeout-s", parse_u32, idle_timeout_s, 0, 30 * 24 * 3600),
	LIMIT("pause-grace-ms", parse_u32, pause_grace_ms, 0, 600000),
	LIMIT("max-grants-per-lease", parse_u32, max_grants_per_lease, 1, 1024),
	LIMIT("max-holders-per-window", parse_u32, max_holders_per_window, 1, 65536),
	LIMIT("max-opens-per-client", parse_u32, max_opens_per_client, 0, 512),
	LIMIT("idle-buffers", parse_u32, idle_buffers, 0, 64),

	DEVICE("pci", parse_pci, pci, false),
	DEVICE("backend", parse_backend, backend, false),
	DEVICE("bar", parse_bar, bar, false),
	DEVICE("size", parse_device_size, size, false),
	DEVICE("reserve", parse_reserve, reserved, true),
	DEVICE("label", parse_label, label, false),
	DEVICE("allow-users", parse_users, allow_uids, true),
	DEVICE("allow-groups", parse_groups, allow_gids, true),
	DEVICE("max-bytes-per-uid", parse_byte_limit, max_bytes_per_uid, false),

	CONTAINER("cgroup", parse_cgroups, cgroups, 0, 0, true),
	CONTAINER("uid-range", parse_uid_range, uid_min, 0, 0, false),
	CONTAINER("devices", parse_container_devices, devices, 0, 0, true),
	CONTAINER("max-bytes", parse_byte_limit, max_bytes, 1, UINT64_MAX, false),
	CONTAINER("max-leases", parse_u32, max_leases, 1, 1 << 20, false),
};

static const struct config_limits default_limits = {
	.reclaim_timeout_s = 60,
	.max_clients = 128,
	.max_clients_per_uid = 16,
	.max_leases = 4096,
	.max_leases_per_client = 64,
	.max_leases_per_uid = 256,
	.max_bytes_per_uid = CONFIG_UNLIMITED,
	.max_queued_events = 128,
	.handshake_timeout_ms = 5000,
	.idle_timeout_s = 0,
	.pause_grace_ms = 2000,
	.max_grants_per_lease = 16,
	.max_holders_per_window = 1024,
	.max_opens_per_client = 256,
	.idle_buffers = 8,
};

struct device_state {
	unsigned key_line[ARRAY_SIZE(keys)]; /* where each key was set, 0 if not */
};

struct error_entry {
	unsigned line;
	unsigned seq; /* qsort() is not stable: errors on one line keep the order found */
	char *msg;
};

struct parser {
	const char *name; /* file name for messages */
	const char *pos;  /* reader position in the text */
	unsigned line;    /* of the line last handed to inih */
	bool line_failed; /* the reader already reported this line */
	bool continuation;
	bool have_prev_name; /* mirrors inih's prev_name: a key was seen in this section */

	enum section_kind section;
	unsigned key_line[ARRAY_SIZE(keys)]; /* [daemon] and [limits] keys */
	struct device_state *dev_state;      /* parallel to config->devices */
	struct device_state *ct_state;       /* parallel to config->containers */
	struct config *config;

	struct error_entry errors[MAX_ERRORS];
	size_t n_errors, n_more;
	bool oom;
};

/* ---- small helpers ------------------------------------------------------ */

static bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }

static const char *skip_space(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

/* A copy of s[0..len) without surrounding white space. */
static char *strndup_trim(const char *s, size_t len)
{
	while (len > 0 && isspace((unsigned char)*s))
		s++, len--;
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	return strndup(s, len);
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static void strv_free_n(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Grows *array (of elem bytes each) by one zeroed element; returns it or NULL. */
static void *array_push(void *array_ptr, size_t *n, size_t elem)
{
	void **array = array_ptr;
	char *a = reallocarray(*array, *n + 1, elem);

	if (!a)
		return NULL;
	*array = a;
	memset(a + *n * elem, 0, elem);
	return a + (*n)++ * elem;
}

/* Levenshtein distance, for "did you mean", if it is below limit; limit
 * otherwise (also for strings too long to be worth suggesting). */
static unsigned edit_distance(const char *a, const char *b, unsigned limit)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[64];

	if (la >= ARRAY_SIZE(row) || lb >= ARRAY_SIZE(row) || MAX(la, lb) - MIN(la, lb) >= limit)
		return limit;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0], row_min;
		row[0] = row_min = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j];
			unsigned best = diag + (a[i - 1] != b[j - 1]);
			best = MIN(best, up + 1);
			best = MIN(best, row[j - 1] + 1);
			row[j] = best;
			row_min = MIN(row_min, best);
			diag = up;
		}
		if (row_min >= limit) /* distances never shrink down the rows */
			return limit;
	}
	return MIN(row[lb], limit);
}

/* ---- errors ------------------------------------------------------------- */

_printf_(4, 0) static void add_errorv(struct parser *p, unsigned line, const char *key,
				      const char *fmt, va_list ap)
{
	_cleanup_free_ char *msg = NULL;
	char *full = NULL;

	if (p->n_errors == MAX_ERRORS) {
		p->n_more++;
		return;
	}
	if (vasprintf(&msg, fmt, ap) < 0) {
		msg = NULL;
		p->oom = true;
		return;
	}
	if (asprintf(&full, "%s:%u: %s%s%s", p->name, line, key ? key : "", key ? ": " : "",
		     msg) < 0) {
		p->oom = true;
		return;
	}
	p->errors[p->n_errors] = (struct error_entry){ .line = line, .seq = (unsigned)p->n_errors,
						       .msg = full };
	p->n_errors++;
}

_printf_(3, 4) static void line_error(struct parser *p, unsigned line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_errorv(p, line, NULL, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: KEY: ..." for the line being parsed. */
_printf_(3, 4) static void key_error(struct parser *p, const struct key_def *k, const char *fmt,
				     ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_errorv(p, p->line, k->name, fmt, ap);
	va_end(ap);
}

_printf_(4, 5) static void key_error_at(struct parser *p, unsigned line, const char *key,
					const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_errorv(p, line, key, fmt, ap);
	va_end(ap);
}

static bool line_has_error(const struct parser *p, unsigned line)
{
	for (size_t i = 0; i < p->n_errors; i++)
		if (p->errors[i].line == line)
			return true;
	return false;
}

static int cmp_errors(const void *x, const void *y)
{
	const struct error_entry *a = x, *b = y;

	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* One line per error, in file order. */
static char *errors_join(struct parser *p)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	qsort(p->errors, p->n_errors, sizeof(p->errors[0]), cmp_errors);
	for (size_t i = 0; i < p->n_errors; i++)
		fprintf(f, "%s%s", i ? "\n" : "", p->errors[i].msg);
	if (p->n_more)
		fprintf(f, "\n%s: %zu more errors not shown", p->name, p->n_more);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

_printf_(2, 3) static void add_warning(struct parser *p, const char *fmt, ...)
{
	struct config *c = p->config;
	char *msg, **slot;
	va_list ap;

	va_start(ap, fmt);
	int r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0 || !(slot = array_push(&c->warnings, &c->n_warnings, sizeof(char *)))) {
		if (r >= 0)
			free(msg);
		p->oom = true;
		return;
	}
	*slot = msg;
}

/* ---- values ------------------------------------------------------------- */

int config_parse_size(const char *s, uint64_t *ret)
{
	static const struct { const char *suffix; unsigned shift; } units[] = {
		{ "", 0 },      { "K", 10 },    { "M", 20 },    { "G", 30 },    { "T", 40 },
		{ "KiB", 10 },  { "MiB", 20 },  { "GiB", 30 },  { "TiB", 40 },
	};
	char *end;

	/* strtoull() would take "-1", " 1" and "+1": a size starts with a digit. */
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	unsigned long long v = strtoull(s, &end, hex ? 16 : 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (hex && end == s + 1) /* "0x" with no digits */
		return -EINVAL;
	end = (char *)skip_space(end);
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (!streq(end, units[i].suffix))
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
			return -ERANGE;
		*ret = (uint64_t)v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

const char *config_format_size(uint64_t bytes, char buf[static CONFIG_SIZE_STR_MAX])
{
	static const char *const units[] = { "TiB", "GiB", "MiB", "KiB" };

	if (bytes == CONFIG_UNLIMITED) {
		snprintf(buf, CONFIG_SIZE_STR_MAX, "infinity");
		return buf;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		unsigned shift = 40 - 10 * (unsigned)i;
		uint64_t unit = UINT64_C(1) << shift;
		if (bytes >= unit && bytes % unit == 0) {
			snprintf(buf, CONFIG_SIZE_STR_MAX, "%llu %s",
				 (unsigned long long)(bytes >> shift), units[i]);
			return buf;
		}
	}
	snprintf(buf, CONFIG_SIZE_STR_MAX, "%llu bytes", (unsigned long long)bytes);
	return buf;
}

/* Exactly digits hex digits from *s, advancing it. */
static bool hex_field(const char **s, int min_digits, int max_digits, unsigned long *ret)
{
	unsigned long v = 0;
	int n = 0;

	while (n < max_digits && isxdigit((unsigned char)**s)) {
		char c = (char)tolower((unsigned char)**s);
		v = v * 16 + (unsigned long)(isdigit((unsigned char)c) ? c - '0' : c - 'a' + 10);
		(*s)++;
		n++;
	}
	*ret = v;
	return n >= min_digits && !isxdigit((unsigned char)**s);
}

int config_parse_pci(const char *s, char ret[static CONFIG_PCI_ADDR_MAX])
{
	unsigned long domain = 0, bus, dev, fn;
	const char *first_colon = strchr(s, ':');

	/* Domains above 0xffff exist (e.g. Intel VMD) and sysfs prints them in full. */
	if (first_colon && strchr(first_colon + 1, ':')) {
		if (!hex_field(&s, 4, 8, &domain) || *s++ != ':')
			return -EINVAL;
	}
	if (!hex_field(&s, 2, 2, &bus) || *s++ != ':' || !hex_field(&s, 2, 2, &dev) ||
	    *s++ != '.' || !hex_field(&s, 1, 1, &fn) || *s != '\0')
		return -EINVAL;
	if (dev > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(ret, CONFIG_PCI_ADDR_MAX, "%04lx:%02lx:%02lx.%lx", domain, bus, dev, fn);
	return 0;
}

const char *config_backend_to_string(enum config_backend b)
{
	return b == CONFIG_BACKEND_SYSMEM ? "sysmem" : "vfio";
}

/* A decimal id that is not (uid_t)-1, which means "no change" to the kernel. */
static bool parse_id(const char *s, uint32_t *ret)
{
	if (!all_digits(s))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, 10);
	if (errno == ERANGE || v >= UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* getpwnam_r()/getgrnam_r() report "no such name" in several ways. */
static bool is_not_found(int r)
{
	return r == 0 || r == ENOENT || r == ESRCH || r == EBADF || r == EPERM;
}

static int lookup_user(const char *name, uid_t *ret)
{
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);

	for (size_t size = hint > 0 ? (size_t)hint : 1024; size <= (1 << 20); size *= 2) {
		_cleanup_free_ char *buf = malloc(size);
		struct passwd pw, *res = NULL;
		if (!buf)
			return -ENOMEM;
		int r = getpwnam_r(name, &pw, buf, size, &res);
		if (r == 0 && res) {
			*ret = res->pw_uid;
			return 0;
		}
		if (r != ERANGE)
			return is_not_found(r) ? -ENOENT : -r;
	}
	return -ERANGE;
}

static int lookup_group(const char *name, gid_t *ret)
{
	long hint = sysconf(_SC_GETGR_R_SIZE_MAX);

	for (size_t size = hint > 0 ? (size_t)hint : 1024; size <= (1 << 20); size *= 2) {
		_cleanup_free_ char *buf = malloc(size);
		struct group gr, *res = NULL;
		if (!buf)
			return -ENOMEM;
		int r = getgrnam_r(name, &gr, buf, size, &res);
		if (r == 0 && res) {
			*ret = res->gr_gid;
			return 0;
		}
		if (r != ERANGE)
			return is_not_found(r) ? -ENOENT : -r;
	}
	return -ERANGE;
}

/* A group given by name or number. */
static int resolve_group(const char *s, gid_t *ret)
{
	uint32_t id;

	if (all_digits(s)) {
		if (!parse_id(s, &id))
			return -EINVAL;
		*ret = id;
		return 0;
	}
	return lookup_group(s, ret);
}

/* ---- key parsers -------------------------------------------------------- */

static struct config_device *current_device(struct parser *p)
{
	return &p->config->devices[p->config->n_devices - 1];
}

static void set_string(struct parser *p, char **dest, const char *value)
{
	char *s = strdup(value);

	if (!s) {
		p->oom = true;
		return;
	}
	free(*dest);
	*dest = s;
}

static void parse_socket_path(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	struct sockaddr_un sa;

	if (v[0] != '/')
		key_error(p, k, "'%s' is not an absolute path", v);
	else if (strlen(v) >= sizeof(sa.sun_path))
		key_error(p, k, "path is %zu bytes long, a socket path must be shorter than %zu",
			  strlen(v), sizeof(sa.sun_path));
	else
		set_string(p, d, v);
}

static void parse_mode(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	char *end;
	size_t len = strspn(v, "01234567");

	errno = 0;
	unsigned long m = strtoul(v, &end, 8);
	if (len == 0 || len > 4 || v[len] != '\0' || m > 0777)
		key_error(p, k, "'%s' is not an octal permission mode between 0000 and 0777", v);
	else
		*(mode_t *)d = (mode_t)m;
}

/* A user or group name resolved later (its default may be missing, which is fine). */
static void parse_name(struct parser *p, const struct key_def *k _unused_, const char *v, void *d)
{
	set_string(p, d, v);
}

static void parse_log_level(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	int level = log_parse_level(v);

	if (level < 0)
		key_error(p, k, "'%s' is not a log level (error, warning, notice, info, debug)", v);
	else
		*(int *)d = level;
}

static const char *const share_with_names[] = {
	[CONFIG_SHARE_SAME_UID] = "same-uid",
	[CONFIG_SHARE_SAME_GROUP] = "same-group",
	[CONFIG_SHARE_ANYONE] = "anyone",
};

const char *config_share_with_to_string(enum config_share_with s)
{
	return (size_t)s < ARRAY_SIZE(share_with_names) ? share_with_names[s] : "?";
}

static void parse_share_with(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	for (size_t i = 0; i < ARRAY_SIZE(share_with_names); i++)
		if (streq(v, share_with_names[i])) {
			*(enum config_share_with *)d = (enum config_share_with)i;
			return;
		}
	key_error(p, k, "'%s' is not one of same-uid, same-group, anyone", v);
}

static void parse_u32(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	unsigned long long n;

	if (!all_digits(v)) {
		key_error(p, k, "'%s' is not a number", v);
		return;
	}
	errno = 0;
	n = strtoull(v, NULL, 10);
	if (errno == ERANGE || n < k->min || n > k->max) {
		key_error(p, k, "%s is out of range (%llu to %llu)", v, (unsigned long long)k->min,
			  (unsigned long long)k->max);
		return;
	}
	*(uint32_t *)d = (uint32_t)n;
}

static const char size_syntax[] =
	"a number (decimal or 0x hex) with an optional unit K, M, G, T or KiB, MiB, GiB, TiB";

/* Reports why s is not a size; returns whether it is one. */
static bool parse_size_or_error(struct parser *p, const struct key_def *k, const char *s,
				uint64_t *ret)
{
	int r = config_parse_size(s, ret);

	if (r == -ERANGE)
		key_error(p, k, "'%s' is too large (the limit is 2^64 - 1 bytes)", s);
	else if (r < 0)
		key_error(p, k, "'%s' is not a size: expected %s", s, size_syntax);
	return r == 0;
}

static void parse_byte_limit(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	uint64_t n;

	if (streq(v, "infinity")) {
		*(uint64_t *)d = CONFIG_UNLIMITED;
		return;
	}
	if (!parse_size_or_error(p, k, v, &n))
		return;
	if (n == 0)
		key_error(p, k, "0 would refuse every allocation: use allow-users/allow-groups to "
			  "deny access, or infinity for no limit");
	else
		*(uint64_t *)d = n;
}

static void parse_pci(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	if (config_parse_pci(v, d) < 0)
		key_error(p, k, "'%s' is not a PCI address: expected DOMAIN:BUS:DEVICE.FUNCTION in "
			  "hex, e.g. 0000:00:03.0 (device at most 1f, function at most 7)", v);
}

static void parse_backend(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	if (streq(v, "vfio"))
		*(enum config_backend *)d = CONFIG_BACKEND_VFIO;
	else if (streq(v, "sysmem"))
		*(enum config_backend *)d = CONFIG_BACKEND_SYSMEM;
	else
		key_error(p, k, "'%s' is not a backend (vfio or sysmem)", v);
}

static void parse_bar(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	if (strlen(v) != 1 || v[0] < '0' || v[0] > '5')
		key_error(p, k, "'%s' is not a BAR index (0 to 5)", v);
	else
		*(int *)d = v[0] - '0';
}

static void parse_device_size(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	uint64_t n;

	if (!parse_size_or_error(p, k, v, &n))
		return;
	if (n == 0 || n % p->config->page_size != 0)
		key_error(p, k, "%s is not a non-zero multiple of the page size (%llu)", v,
			  (unsigned long long)p->config->page_size);
	else
		*(uint64_t *)d = n;
}

static void parse_label(struct parser *p, const struct key_def *k, const char *v, void *d)
{
	for (const char *s = v; *s; s++)
		if (iscntrl((unsigned char)*s)) {
			key_error(p, k, "contains a control character");
			return;
		}
	set_string(p, d, v);
}

/* Calls fn for each entry of a list separated by commas (and, if spaces_too,
 * white space); empty entries are skipped, so a line may end with a comma. */
static void for_each_entry(struct parser *p, const struct key_def *k, const char *v,
			   bool spaces_too,
			   void (*fn)(struct parser *p, const struct key_def *k, const char *entry))
{
	const char *seps = spaces_too ? ", \t" : ",";

	while (*v) {
		size_t len = strcspn(v, seps);
		_cleanup_free_ char *entry = strndup_trim(v, len);
		if (!entry) {
			p->oom = true;
			return;
		}
		if (*entry)
			fn(p, k, entry);
		v += len;
		if (*v)
			v++;
	}
}

static void reserve_entry(struct parser *p, const struct key_def *k, const char *entry)
{
	struct config_device *dev = current_device(p);
	uint64_t page = p->config->page_size, offset, length;
	const char *plus = strchr(entry, '+');

	if (!plus) {
		key_error(p, k, "'%s' is not OFFSET+LENGTH (e.g. 0+1M or 0x100000+64K)", entry);
		return;
	}
	_cleanup_free_ char *off_s = strndup_trim(entry, (size_t)(plus - entry));
	_cleanup_free_ char *len_s = strndup_trim(plus + 1, strlen(plus + 1));
	if (!off_s || !len_s) {
		p->oom = true;
		return;
	}
	if (!parse_size_or_error(p, k, off_s, &offset) ||
	    !parse_size_or_error(p, k, len_s, &length))
		return;
	if (length == 0)
		key_error(p, k, "%s is empty", entry);
	else if (offset % page != 0 || length % page != 0)
		key_error(p, k, "%s is not page aligned (%llu)", entry, (unsigned long long)page);
	else if (length > UINT64_MAX - offset)
		key_error(p, k, "%s ends past 2^64", entry);
	else {
		struct config_range *r = array_push(&dev->reserved, &dev->n_reserved, sizeof(*r));
		if (!r) {
			p->oom = true;
			return;
		}
		*r = (struct config_range){ .offset = offset, .length = length, .line = p->line };
	}
}

static void parse_reserve(struct parser *p, const struct key_def *k, const char *v,
			  void *d _unused_)
{
	for_each_entry(p, k, v, false, reserve_entry);
}

/* Appends id (and its name, if given by name) unless already there. */
static void push_id(struct parser *p, uint32_t **ids, char ***names, size_t *n, uint32_t id,
		    const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if ((*ids)[i] == id)
			return;
	char *copy = name ? strdup(name) : NULL;
	char **rn = reallocarray(*names, *n + 1, sizeof(char *));
	if (rn)
		*names = rn;
	uint32_t *ri = rn ? reallocarray(*ids, *n + 1, sizeof(uint32_t)) : NULL;
	if (!ri || (name && !copy)) {
		free(copy);
		p->oom = true;
		return;
	}
	*ids = ri;
	(*ids)[*n] = id;
	(*names)[*n] = copy;
	(*n)++;
}

/* A user by name or number into a list of ids (and names). */
static void user_into(struct parser *p, const struct key_def *k, const char *entry, uint32_t **ids,
		      char ***names, size_t *n)
{
	uint32_t id;
	uid_t uid = (uid_t)-1;

	if (all_digits(entry)) {
		if (!parse_id(entry, &id))
			key_error(p, k, "%s is not a valid uid", entry);
		else
			push_id(p, ids, names, n, id, NULL);
		return;
	}
	int r = lookup_user(entry, &uid);
	if (r == -ENOENT)
		key_error(p, k, "no such user '%s'", entry);
	else if (r < 0)
		key_error(p, k, "cannot look up user '%s': %s", entry, strerror(-r));
	else
		push_id(p, ids, names, n, uid, entry);
}

/* A group by name or number into a list of ids (and names). */
static void group_into(struct parser *p, const struct key_def *k, const char *entry, uint32_t **ids,
		       char ***names, size_t *n)
{
	gid_t gid = CONFIG_GID_NONE;
	int r = resolve_group(entry, &gid);

	if (r == -EINVAL)
		key_error(p, k, "%s is not a valid gid", entry);
	else if (r == -ENOENT)
		key_error(p, k, "no such group '%s'", entry);
	else if (r < 0)
		key_error(p, k, "cannot look up group '%s': %s", entry, strerror(-r));
	else
		push_id(p, ids, names, n, gid, all_digits(entry) ? NULL : entry);
}

static void user_entry(struct parser *p, const struct key_def *k, const char *entry)
{
	struct config_device *dev = current_device(p);
	user_into(p, k, entry, &dev->allow_uids, &dev->allow_user_names, &dev->n_allow_uids);
}

static void group_entry(struct parser *p, const struct key_def *k, const char *entry)
{
	struct config_device *dev = current_device(p);
	group_into(p, k, entry, &dev->allow_gids, &dev->allow_group_names, &dev->n_allow_gids);
}

static void share_user_entry(struct parser *p, const struct key_def *k, const char *entry)
{
	struct config *c = p->config;
	user_into(p, k, entry, &c->share_uids, &c->share_user_names, &c->n_share_uids);
}

static void share_group_entry(struct parser *p, const struct key_def *k, const char *entry)
{
	struct config *c = p->config;
	group_into(p, k, entry, &c->share_gids, &c->share_group_names, &c->n_share_gids);
}

static void parse_share_users(struct parser *p, const struct key_def *k, const char *v,
			      void *d _unused_)
{
	for_each_entry(p, k, v, true, share_user_entry);
}

static void parse_share_groups(struct parser *p, const struct key_def *k, const char *v,
			       void *d _unused_)
{
	for_each_entry(p, k, v, true, share_group_entry);
}

static void parse_users(struct parser *p, const struct key_def *k, const char *v, void *d _unused_)
{
	for_each_entry(p, k, v, true, user_entry);
}

static void parse_groups(struct parser *p, const struct key_def *k, const char *v, void *d _unused_)
{
	for_each_entry(p, k, v, true, group_entry);
}

static struct config_container *current_container(struct parser *p)
{
	return &p->config->containers[p->config->n_containers - 1];
}

static void push_string(struct parser *p, char ***v, size_t *n, const char *s)
{
	char *copy = strdup(s), **slot = copy ? array_push(v, n, sizeof(char *)) : NULL;

	if (!slot) {
		free(copy);
		p->oom = true;
		return;
	}
	*slot = copy;
}

static void cgroup_entry(struct parser *p, const struct key_def *k, const char *entry)
{
	struct config_container *ct = current_container(p);

	if (entry[0] != '/' && entry[0] != '*')
		key_error(p, k, "'%s' is not a cgroup path: it starts with / as in /proc/PID/cgroup "
			  "(e.g. /machine.slice/libpod-*)", entry);
	else
		push_string(p, &ct->cgroups, &ct->n_cgroups, entry);
}

static void parse_cgroups(struct parser *p, const struct key_def *k, const char *v,
			  void *d _unused_)
{
	for_each_entry(p, k, v, true, cgroup_entry);
}

static void parse_uid_range(struct parser *p, const struct key_def *k, const char *v,
			    void *d _unused_)
{
	struct config_container *ct = current_container(p);
	const char *dash = strchr(v, '-');
	uint32_t lo, hi;

	_cleanup_free_ char *lo_s = dash ? strndup_trim(v, (size_t)(dash - v)) : strdup(v);
	_cleanup_free_ char *hi_s = dash ? strndup_trim(dash + 1, strlen(dash + 1)) : strdup(v);
	if (!lo_s || !hi_s) {
		p->oom = true;
		return;
	}
	if (!parse_id(lo_s, &lo) || !parse_id(hi_s, &hi) || lo > hi) {
		key_error(p, k, "'%s' is not a uid range FIRST-LAST (e.g. 100000-165535, as in "
			  "/etc/subuid)", v);
		return;
	}
	ct->has_uid_range = true;
	ct->uid_min = lo;
	ct->uid_max = hi;
}

static void container_device_entry(struct parser *p, const struct key_def *k _unused_,
				   const char *entry)
{
	struct config_container *ct = current_container(p);

	push_string(p, &ct->devices, &ct->n_devices, entry);
}

static void parse_container_devices(struct parser *p, const struct key_def *k, const char *v,
				    void *d _unused_)
{
	for_each_entry(p, k, v, true, container_device_entry);
}

/* ---- sections and keys -------------------------------------------------- */

static const struct key_def *find_key(enum section_kind section, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (keys[i].section == section && streq(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static size_t key_index(enum section_kind section, const char *name)
{
	return (size_t)(find_key(section, name) - keys);
}

static unsigned *key_lines(struct parser *p)
{
	if (p->section == SECTION_DEVICE)
		return p->dev_state[p->config->n_devices - 1].key_line;
	if (p->section == SECTION_CONTAINER)
		return p->ct_state[p->config->n_containers - 1].key_line;
	return p->key_line;
}

static void unknown_key(struct parser *p, const char *name)
{
	const struct key_def *best = NULL;
	unsigned best_d = 3;

	if (!*name) {
		line_error(p, p->line, "missing key name before '='");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (streq(keys[i].name, name)) {
			key_error_at(p, p->line, name, "not a key of %s; it belongs in %s",
				     section_names[p->section], section_names[keys[i].section]);
			return;
		}
		if (keys[i].section != p->section)
			continue;
		unsigned d = edit_distance(name, keys[i].name, best_d);
		if (d < best_d) {
			best = &keys[i];
			best_d = d;
		}
	}
	if (best)
		key_error_at(p, p->line, name, "unknown key in %s; did you mean %s?",
			     section_names[p->section], best->name);
	else
		key_error_at(p, p->line, name, "unknown key in %s", section_names[p->section]);
}

static int handler(void *user, const char *section _unused_, const char *name, const char *value)
{
	struct parser *p = user;

	/* Sections come from the reader, which also reported any problem with this line. */
	if (p->line_failed || p->section == SECTION_BAD)
		return 1;
	if (p->section == SECTION_NONE) {
		key_error_at(p, p->line, name, "outside of any section; keys go under [daemon], "
			     "[limits], [device NAME] or [container NAME]");
		return 1;
	}
	const struct key_def *k = find_key(p->section, name);
	if (!k) {
		if (!p->continuation) /* the key's own line was reported already */
			unknown_key(p, name);
		return 1;
	}
	unsigned *seen = &key_lines(p)[k - keys];
	if (p->continuation) {
		if (!k->list) {
			key_error(p, k, "an indented line continues the previous value, and %s "
				  "takes one value; do not indent keys", k->name);
			return 1;
		}
	} else if (*seen) {
		if (k->list)
			key_error(p, k, "set twice (first at line %u); give all entries in one "
				  "%s = line, continued on indented lines", *seen, k->name);
		else
			key_error(p, k, "set twice (first at line %u)", *seen);
		return 1;
	} else
		*seen = p->line;
	if (!*value) {
		key_error(p, k, "empty value");
		return 1;
	}
	void *base = p->section == SECTION_DEVICE    ? (void *)current_device(p) :
		     p->section == SECTION_CONTAINER ? (void *)current_container(p) :
						       (void *)p->config;
	k->parse(p, k, value, (char *)base + k->offset);
	return 1;
}

static bool valid_device_name(const char *s)
{
	size_t len = strlen(s);

	return len >= 1 && len <= CONFIG_DEVICE_NAME_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == len;
}

static void device_begin(struct parser *p, const char *name)
{
	struct config *c = p->config;

	if (!*name) {
		line_error(p, p->line, "[device] needs a name, e.g. [device gpu0]");
		return;
	}
	if (!valid_device_name(name)) {
		line_error(p, p->line, "'%s' is not a valid device name: 1 to %d characters "
			   "from a-z, A-Z, 0-9, _ and -", name, CONFIG_DEVICE_NAME_MAX);
		return;
	}
	for (size_t i = 0; i < c->n_devices; i++)
		if (streq(c->devices[i].name, name)) {
			line_error(p, p->line, "[device %s] is already defined at line %u", name,
				   c->devices[i].line);
			return;
		}

	/* dev_state has one entry per device: its length is c->n_devices too. */
	size_t n = c->n_devices;
	struct config_device *d = NULL;
	if (array_push(&p->dev_state, &n, sizeof(struct device_state)))
		d = array_push(&c->devices, &c->n_devices, sizeof(*d));
	if (!d) {
		p->oom = true;
		return;
	}
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->backend = CONFIG_BACKEND_VFIO;
	d->bar = CONFIG_BAR_AUTO;
	d->max_bytes_per_uid = CONFIG_UNLIMITED;
	d->line = p->line;
	p->section = SECTION_DEVICE;
}

static void container_begin(struct parser *p, const char *name)
{
	struct config *c = p->config;

	if (!valid_device_name(name)) {
		line_error(p, p->line, "'%s' is not a valid container name: 1 to %d characters "
			   "from a-z, A-Z, 0-9, _ and -, e.g. [container ci]", name,
			   CONFIG_DEVICE_NAME_MAX);
		return;
	}
	for (size_t i = 0; i < c->n_containers; i++)
		if (streq(c->containers[i].name, name)) {
			line_error(p, p->line, "[container %s] is already defined at line %u", name,
				   c->containers[i].line);
			return;
		}
	size_t n = c->n_containers;
	struct config_container *ct = NULL;
	if (array_push(&p->ct_state, &n, sizeof(struct device_state)))
		ct = array_push(&c->containers, &c->n_containers, sizeof(*ct));
	if (!ct) {
		p->oom = true;
		return;
	}
	snprintf(ct->name, sizeof(ct->name), "%s", name);
	ct->max_bytes = CONFIG_UNLIMITED;
	ct->max_leases = UINT32_MAX;
	ct->line = p->line;
	p->section = SECTION_CONTAINER;
}

static void section_begin(struct parser *p, const char *text, size_t len)
{
	_cleanup_free_ char *s = strndup_trim(text, len);

	p->section = SECTION_BAD;
	if (!s) {
		p->oom = true;
		return;
	}
	if (streq(s, "daemon"))
		p->section = SECTION_DAEMON;
	else if (streq(s, "limits"))
		p->section = SECTION_LIMITS;
	else if (strncmp(s, "device", 6) == 0 && (s[6] == '\0' || isspace((unsigned char)s[6])))
		device_begin(p, skip_space(s + 6));
	else if (strncmp(s, "container", 9) == 0 && (s[9] == '\0' || isspace((unsigned char)s[9])))
		container_begin(p, skip_space(s + 9));
	else if (edit_distance(s, "daemon", 3) <= 2 || edit_distance(s, "limits", 3) <= 2 ||
		 edit_distance(s, "device", 3) <= 2)
		line_error(p, p->line, "unknown section [%s]; did you mean [%s]?", s,
			   edit_distance(s, "daemon", 3) <= 2 ? "daemon" :
			   edit_distance(s, "limits", 3) <= 2 ? "limits" : "device NAME");
	else
		line_error(p, p->line, "unknown section [%s]; the sections are [daemon], [limits], "
			   "[device NAME] and [container NAME]", s);
}

/* inih's find_chars_or_comment(): an inline comment is ';' after white space. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

/* Classifies a raw line the way inih 55 will, before inih sees it. */
static void classify_line(struct parser *p, const char *line)
{
	const char *start = line;

	p->continuation = false;
	if (p->line == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3;
	start = skip_space(start);
	if (!*start || *start == ';' || *start == '#')
		return;
	if (p->have_prev_name && start > line) {
		p->continuation = true;
		return;
	}
	if (*start == '[') {
		const char *end = find_chars_or_comment(start + 1, "]");
		if (*end != ']') {
			line_error(p, p->line, "section header without a closing ']'");
			p->line_failed = true;
			p->section = SECTION_BAD;
		} else
			section_begin(p, start + 1, (size_t)(end - start - 1));
		p->have_prev_name = false;
		return;
	}
	const char *eq = find_chars_or_comment(start, "=:");
	if (*eq != '=' && *eq != ':') {
		line_error(p, p->line, "expected 'key = value', '[section]' or a comment, got '%s'",
			   start);
		p->line_failed = true;
		return;
	}
	p->have_prev_name = true;
}

static char *reader(char *buf, int size, void *stream)
{
	struct parser *p = stream;

	if (!*p->pos)
		return NULL;
	const char *line = p->pos, *eol = strchrnul(line, '\n');
	size_t len = (size_t)(eol - line);
	p->pos = *eol ? eol + 1 : eol;
	p->line++;
	p->line_failed = false;
	if (len >= (size_t)size) {
		line_error(p, p->line, "line is longer than %d characters; split a long list over "
			   "indented continuation lines", size - 1);
		p->line_failed = true;
		buf[0] = '\0'; /* inih skips it as blank */
		return buf;
	}
	memcpy(buf, line, len);
	buf[len] = '\0';
	classify_line(p, buf);
	return buf;
}

/* ---- checks after the whole file ---------------------------------------- */

static int cmp_ranges(const void *x, const void *y)
{
	const struct config_range *a = x, *b = y;

	return (a->offset > b->offset) - (a->offset < b->offset);
}

static void finish_reserved(struct parser *p, struct config_device *d)
{
	if (d->n_reserved > 1)
		qsort(d->reserved, d->n_reserved, sizeof(d->reserved[0]), cmp_ranges);
	for (size_t i = 0; i < d->n_reserved; i++) {
		const struct config_range *r = &d->reserved[i];
		if (i > 0 && r->offset < d->reserved[i - 1].offset + d->reserved[i - 1].length) {
			const struct config_range *q = &d->reserved[i - 1];
			key_error_at(p, MAX(r->line, q->line), "reserve",
				     "0x%llx+0x%llx overlaps 0x%llx+0x%llx (line %u)",
				     (unsigned long long)r->offset, (unsigned long long)r->length,
				     (unsigned long long)q->offset, (unsigned long long)q->length,
				     MIN(r->line, q->line));
		}
		char sz[CONFIG_SIZE_STR_MAX];
		if (d->backend == CONFIG_BACKEND_SYSMEM && d->size &&
		    (r->offset >= d->size || r->length > d->size - r->offset))
			key_error_at(p, r->line, "reserve",
				     "0x%llx+0x%llx runs past the end of the device (size = %s)",
				     (unsigned long long)r->offset, (unsigned long long)r->length,
				     config_format_size(d->size, sz));
	}
}

static void finish_device(struct parser *p, size_t i)
{
	struct config_device *d = &p->config->devices[i];
	const unsigned *lines = p->dev_state[i].key_line;
	unsigned pci_line = lines[key_index(SECTION_DEVICE, "pci")];
	unsigned bar_line = lines[key_index(SECTION_DEVICE, "bar")];
	unsigned size_line = lines[key_index(SECTION_DEVICE, "size")];

	if (d->backend == CONFIG_BACKEND_VFIO) {
		if (!pci_line)
			line_error(p, d->line, "[device %s]: pci = is missing (a vfio device is "
				   "named by its PCI address, e.g. pci = 0000:00:03.0)", d->name);
		if (size_line)
			key_error_at(p, size_line, "size", "only for backend = sysmem (a vfio "
				     "device's size is its BAR's)");
	} else {
		if (!size_line)
			line_error(p, d->line, "[device %s]: size = is missing (backend sysmem "
				   "needs the size of memory to lend)", d->name);
		if (pci_line)
			key_error_at(p, pci_line, "pci", "not used by backend sysmem");
		if (bar_line)
			key_error_at(p, bar_line, "bar", "not used by backend sysmem");
		d->pci[0] = '\0';
		d->bar = CONFIG_BAR_AUTO;
	}
	finish_reserved(p, d);

	for (size_t j = 0; j < i; j++)
		if (d->pci[0] && streq(d->pci, p->config->devices[j].pci))
			key_error_at(p, pci_line, "pci", "%s is already used by [device %s] (line %u)",
				     d->pci, p->config->devices[j].name, p->config->devices[j].line);

	if (d->n_allow_uids == 0 && d->n_allow_gids == 0 &&
	    !lines[key_index(SECTION_DEVICE, "allow-users")] &&
	    !lines[key_index(SECTION_DEVICE, "allow-groups")]) {
		gid_t gid;
		d->default_access = true;
		if (lookup_group(CONFIG_DEFAULT_GROUP, &gid) == 0)
			push_id(p, &d->allow_gids, &d->allow_group_names, &d->n_allow_gids, gid,
				CONFIG_DEFAULT_GROUP);
	}
}

/* An explicitly set group must exist; a default one may be missing. */
static void finish_group(struct parser *p, const char *key, const char *name, gid_t *ret)
{
	unsigned line = p->key_line[key_index(SECTION_DAEMON, key)];
	int r = resolve_group(name, ret);

	if (r == 0)
		return;
	*ret = CONFIG_GID_NONE;
	if (!line)
		return;
	if (r == -EINVAL)
		key_error_at(p, line, key, "%s is not a valid gid", name);
	else if (r == -ENOENT)
		key_error_at(p, line, key, "no such group '%s'", name);
	else
		key_error_at(p, line, key, "cannot look up group '%s': %s", name, strerror(-r));
}

static void finish_container(struct parser *p, size_t i)
{
	struct config_container *ct = &p->config->containers[i];
	unsigned dev_line = p->ct_state[i].key_line[key_index(SECTION_CONTAINER, "devices")];

	if (ct->n_cgroups == 0 && !ct->has_uid_range)
		line_error(p, ct->line, "[container %s]: cgroup = or uid-range = is missing (it "
			   "says which clients are this container)", ct->name);
	for (size_t j = 0; j < ct->n_devices; j++) {
		if (config_find_device(p->config, ct->devices[j]))
			continue;
		key_error_at(p, dev_line, "devices", "no [device %s] in this file", ct->devices[j]);
	}
}

static void finish(struct parser *p)
{
	struct config *c = p->config;

	finish_group(p, "socket-group", c->socket_group, &c->socket_gid);
	finish_group(p, "admin-group", c->admin_group, &c->admin_gid);
	for (size_t i = 0; i < c->n_devices; i++)
		finish_device(p, i);
	for (size_t i = 0; i < c->n_containers; i++)
		finish_container(p, i);
	if (p->n_errors > 0)
		return;

	if (c->n_devices == 0)
		add_warning(p, "%s: no [device NAME] sections: barkeepd will run but has nothing "
			    "to lend", p->name);
	if (c->socket_gid == CONFIG_GID_NONE)
		add_warning(p, "%s: group '%s' does not exist: the socket keeps root's group, so "
			    "only root can connect (create the group or set socket-group)",
			    p->name, c->socket_group);
	for (size_t i = 0; i < c->n_devices; i++)
		if (c->devices[i].default_access && c->devices[i].n_allow_gids == 0) {
			add_warning(p, "%s: group '%s' does not exist: devices without allow-users "
				    "or allow-groups are usable by root only", p->name,
				    CONFIG_DEFAULT_GROUP);
			break;
		}
	for (size_t i = 0; i < c->n_containers; i++)
		if (c->containers[i].n_devices == 0)
			add_warning(p, "%s: [container %s] has no devices =: its clients may use no "
				    "device", p->name, c->containers[i].name);
}

/* ---- load / free -------------------------------------------------------- */

static void device_done(struct config_device *d)
{
	free(d->label);
	free(d->reserved);
	free(d->allow_uids);
	strv_free_n(d->allow_user_names, d->n_allow_uids);
	free(d->allow_gids);
	strv_free_n(d->allow_group_names, d->n_allow_gids);
}

static void container_done(struct config_container *ct)
{
	strv_free_n(ct->cgroups, ct->n_cgroups);
	strv_free_n(ct->devices, ct->n_devices);
}

struct config *config_free(struct config *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_devices; i++)
		device_done(&c->devices[i]);
	free(c->devices);
	for (size_t i = 0; i < c->n_containers; i++)
		container_done(&c->containers[i]);
	free(c->containers);
	strv_free_n(c->warnings, c->n_warnings);
	free(c->share_uids);
	strv_free_n(c->share_user_names, c->n_share_uids);
	free(c->share_gids);
	strv_free_n(c->share_group_names, c->n_share_gids);
	free(c->path);
	free(c->socket_path);
	free(c->socket_group);
	free(c->admin_group);
	free(c);
	return NULL;
}

static int config_new_default(const char *name, struct config **ret)
{
	_cleanup_config_ struct config *c = calloc(1, sizeof(*c));
	long page = sysconf(_SC_PAGESIZE);

	if (!c)
		return -ENOMEM;
	c->path = strdup(name);
	c->socket_path = strdup(CONFIG_DEFAULT_SOCKET);
	c->socket_group = strdup(CONFIG_DEFAULT_GROUP);
	c->admin_group = strdup(CONFIG_DEFAULT_ADMIN_GROUP);
	if (!c->path || !c->socket_path || !c->socket_group || !c->admin_group)
		return -ENOMEM;
	c->socket_mode = 0660;
	c->socket_gid = CONFIG_GID_NONE;
	c->admin_gid = CONFIG_GID_NONE;
	c->log_level = LOG_LEVEL_INFO;
	c->share_with = CONFIG_SHARE_SAME_GROUP;
	c->limits = default_limits;
	c->page_size = page > 0 ? (uint64_t)page : 4096;
	*ret = TAKE_PTR(c);
	return 0;
}

int config_load_string(const char *text, const char *name, struct config **ret, char **ret_error)
{
	_cleanup_config_ struct config *c = NULL;
	struct parser p = { .name = name ? name : DEFAULT_NAME, .pos = text };
	int r;

	if (ret_error)
		*ret_error = NULL;
	r = config_new_default(p.name, &c);
	if (r < 0)
		return r;
	p.config = c;

	r = ini_parse_stream(reader, &p, handler, &p);
	if (r > 0 && !line_has_error(&p, (unsigned)r)) /* should not happen: the reader saw it */
		line_error(&p, (unsigned)r, "syntax error");
	else if (r < 0)
		p.oom = true;
	if (!p.oom)
		finish(&p);

	free(p.dev_state);
	free(p.ct_state);
	if (p.oom || p.n_errors > 0) {
		char *msg = p.oom ? NULL : errors_join(&p);
		for (size_t i = 0; i < p.n_errors; i++)
			free(p.errors[i].msg);
		if (!p.oom && !msg)
			p.oom = true;
		if (ret_error)
			*ret_error = msg;
		else
			free(msg);
		return p.oom ? -ENOMEM : -EINVAL;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

static int read_text_file(const char *path, char **ret, char **ret_error)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = -errno;
		if (ret_error && asprintf(ret_error, "%s: cannot read: %s", path, strerror(-r)) < 0)
			*ret_error = NULL;
		return r;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE_SIZE) {
		if (ret_error && asprintf(ret_error, "%s: not a regular file of at most %d bytes",
					  path, MAX_FILE_SIZE) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	size_t have = 0;
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;
			if (ret_error && asprintf(ret_error, "%s: cannot read: %s", path,
						  strerror(-r)) < 0)
				*ret_error = NULL;
			return r;
		}
		have += (size_t)n;
	}
	buf[have] = '\0';
	if (strlen(buf) != have) {
		unsigned line = 1;
		for (const char *s = buf; *s; s++)
			line += *s == '\n';
		if (ret_error && asprintf(ret_error, "%s:%u: contains a NUL byte; is this a text "
					  "file?", path, line) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	*ret = TAKE_PTR(buf);
	return 0;
}

int config_load_file(const char *path, struct config **ret, char **ret_error)
{
	_cleanup_free_ char *text = NULL;
	int r;

	if (ret_error)
		*ret_error = NULL;
	r = read_text_file(path, &text, ret_error);
	if (r < 0)
		return r;
	return config_load_string(text, path, ret, ret_error);
}

const struct config_device *config_find_device(const struct config *c, const char *key)
{
	char pci[CONFIG_PCI_ADDR_MAX];
	bool is_pci = config_parse_pci(key, pci) == 0;

	for (size_t i = 0; i < c->n_devices; i++)
		if (streq(c->devices[i].name, key) || (is_pci && streq(c->devices[i].pci, pci)))
			return &c->devices[i];
	return NULL;
}

const struct config_container *config_find_container(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_containers; i++)
		if (streq(c->containers[i].name, name))
			return &c->containers[i];
	return NULL;
}

/* ---- summary ------------------------------------------------------------ */

static void dump_group(FILE *f, const char *name, gid_t gid)
{
	if (gid == CONFIG_GID_NONE)
		fprintf(f, "%s (does not exist)", name);
	else if (all_digits(name))
		fprintf(f, "gid %s", name);
	else
		fprintf(f, "%s (gid %u)", name, (unsigned)gid);
}

static void print_ids(FILE *f, const char *what, const uint32_t *ids, char *const *names,
		      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (names[i])
			fprintf(f, ", %s %s (%u)", what, names[i], (unsigned)ids[i]);
		else
			fprintf(f, ", %s %u", what, (unsigned)ids[i]);
	}
}

void config_device_print_access(const struct config_device *d, FILE *f)
{
	fprintf(f, "root");
	print_ids(f, "user", d->allow_uids, d->allow_user_names, d->n_allow_uids);
	print_ids(f, "group", d->allow_gids, d->allow_group_names, d->n_allow_gids);
}

static void dump_device(const struct config_device *d, FILE *f)
{
	char sz[CONFIG_SIZE_STR_MAX];

	fprintf(f, "[device %s] (line %u)\n", d->name, d->line);
	if (d->backend == CONFIG_BACKEND_VFIO) {
		fprintf(f, "  vfio device %s, ", d->pci);
		if (d->bar == CONFIG_BAR_AUTO)
			fprintf(f, "largest 64-bit prefetchable BAR\n");
		else
			fprintf(f, "BAR %d\n", d->bar);
	} else
		fprintf(f, "  system memory, %s\n", config_format_size(d->size, sz));
	if (d->label)
		fprintf(f, "  label: %s\n", d->label);
	for (size_t i = 0; i < d->n_reserved; i++)
		fprintf(f, "  reserved: 0x%llx+%s (line %u)\n",
			(unsigned long long)d->reserved[i].offset,
			config_format_size(d->reserved[i].length, sz), d->reserved[i].line);
	fprintf(f, "  may be used by: ");
	config_device_print_access(d, f);
	fprintf(f, "%s\n", d->default_access ? " (default: no allow-users/allow-groups)" : "");
	if (d->max_bytes_per_uid != CONFIG_UNLIMITED)
		fprintf(f, "  at most %s per uid\n", config_format_size(d->max_bytes_per_uid, sz));
}

static void dump_container(const struct config_container *ct, FILE *f)
{
	char sz[CONFIG_SIZE_STR_MAX];

	fprintf(f, "[container %s] (line %u)\n  clients in cgroup ", ct->name, ct->line);
	for (size_t i = 0; i < ct->n_cgroups; i++)
		fprintf(f, "%s%s", i ? " or " : "", ct->cgroups[i]);
	if (!ct->n_cgroups)
		fprintf(f, "(any)");
	if (ct->has_uid_range)
		fprintf(f, " with uid %u-%u", (unsigned)ct->uid_min, (unsigned)ct->uid_max);
	fprintf(f, "\n  may use: ");
	for (size_t i = 0; i < ct->n_devices; i++)
		fprintf(f, "%s%s", i ? ", " : "", ct->devices[i]);
	fprintf(f, "%s\n", ct->n_devices ? "" : "no device");
	if (ct->max_bytes == CONFIG_UNLIMITED && ct->max_leases == UINT32_MAX)
		fprintf(f, "  no limits of its own (the per-uid ones apply)\n");
	else if (ct->max_leases == UINT32_MAX)
		fprintf(f, "  together at most %s\n", config_format_size(ct->max_bytes, sz));
	else
		fprintf(f, "  together at most %s in %u leases\n",
			config_format_size(ct->max_bytes, sz), ct->max_leases);
}

void config_dump(const struct config *c, FILE *f)
{
	static const char *const levels[] = {
		[LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARNING] = "warning",
		[LOG_LEVEL_NOTICE] = "notice", [LOG_LEVEL_INFO] = "info",
		[LOG_LEVEL_DEBUG] = "debug",
	};
	const struct config_limits *l = &c->limits;
	char sz[CONFIG_SIZE_STR_MAX];

	fprintf(f, "%s:\n[daemon]\n", c->path);
	fprintf(f, "  socket %s, mode %04o, group ", c->socket_path, (unsigned)c->socket_mode);
	dump_group(f, c->socket_group, c->socket_gid);
	fprintf(f, "\n  log level %s\n  admin group (may reset devices): ",
		c->log_level >= 0 && (size_t)c->log_level < ARRAY_SIZE(levels) &&
		levels[c->log_level] ? levels[c->log_level] : "?");
	dump_group(f, c->admin_group, c->admin_gid);
	fprintf(f, "%s\n", c->admin_gid == CONFIG_GID_NONE ? ": root only" : "");
	fprintf(f, "  share with: %s", config_share_with_to_string(c->share_with));
	print_ids(f, "user", c->share_uids, c->share_user_names, c->n_share_uids);
	print_ids(f, "group", c->share_gids, c->share_group_names, c->n_share_gids);
	fprintf(f, "\n");

	fprintf(f, "[limits]\n");
	fprintf(f, "  clients: %u in all, %u per uid\n", l->max_clients, l->max_clients_per_uid);
	fprintf(f, "  leases: %u in all, %u per client, %u per uid\n", l->max_leases,
		l->max_leases_per_client, l->max_leases_per_uid);
	fprintf(f, "  bytes per uid, all devices: %s\n",
		config_format_size(l->max_bytes_per_uid, sz));
	fprintf(f, "  queued events per client: %u\n", l->max_queued_events);
	fprintf(f, "  handshake timeout: %u ms; idle timeout: ", l->handshake_timeout_ms);
	if (l->idle_timeout_s)
		fprintf(f, "%u s", l->idle_timeout_s);
	else
		fprintf(f, "none");
	fprintf(f, "; pause grace: %u ms\n", l->pause_grace_ms);
	fprintf(f, "; reclaim timeout after a restart: %u s\n", l->reclaim_timeout_s);
	fprintf(f, "  sharing: %u grants per lease, %u holders per window, %u opens per client\n",
		l->max_grants_per_lease, l->max_holders_per_window, l->max_opens_per_client);
	fprintf(f, "  released buffers kept per device to lend again: %u\n", l->idle_buffers);

	for (size_t i = 0; i < c->n_devices; i++)
		dump_device(&c->devices[i], f);
	if (c->n_devices == 0)
		fprintf(f, "no devices\n");
	for (size_t i = 0; i < c->n_containers; i++)
		dump_container(&c->containers[i], f);
	/* Warnings are not repeated here: the caller logs c->warnings itself. */
}

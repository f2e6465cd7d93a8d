// SPDX-License-Identifier: MIT
/* The fd store's lease table: encoding, sealing and validation (fdstore.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon/fdstore.h"

#define TABLE_MAGIC "BKLEASES"
#define HEADER_SIZE 48
#define DEVICE_RECORD_SIZE 96
#define LEASE_RECORD_SIZE 120
#define CHECKSUM_OFFSET 40
#define TABLE_SIZE_MAX (HEADER_SIZE + FDSTORE_MAX_DEVICES * DEVICE_RECORD_SIZE + \
			(size_t)FDSTORE_MAX_LEASES * LEASE_RECORD_SIZE)
#define LEASE_FLAGS_KNOWN (LEASE_EXCLUSIVE | LEASE_WRITE_COMBINE | LEASE_IMAGE)

struct cursor {
	uint8_t *p;
	size_t pos, size;
};

static void put_bytes(struct cursor *c, const void *v, size_t n)
{
	memcpy(c->p + c->pos, v, n);
	c->pos += n;
}

static void put_u32(struct cursor *c, uint32_t v)
{
	uint8_t b[4] = { v, v >> 8, v >> 16, v >> 24 };
	put_bytes(c, b, sizeof(b));
}

static void put_u64(struct cursor *c, uint64_t v)
{
	put_u32(c, (uint32_t)v);
	put_u32(c, (uint32_t)(v >> 32));
}

static void get_bytes(struct cursor *c, void *v, size_t n)
{
	memcpy(v, c->p + c->pos, n);
	c->pos += n;
}

static uint32_t get_u32(struct cursor *c)
{
	const uint8_t *b = c->p + c->pos;
	c->pos += 4;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(struct cursor *c)
{
	uint64_t lo = get_u32(c);
	return lo | (uint64_t)get_u32(c) << 32;
}

/* FNV-1a, 64 bits: finds corruption, not attackers (the store is ours). */
static uint64_t checksum(const uint8_t *p, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < n; i++) {
		uint8_t b = i >= CHECKSUM_OFFSET && i < CHECKSUM_OFFSET + 8 ? 0 : p[i];
		h = (h ^ b) * UINT64_C(0x100000001b3);
	}
	return h;
}

static int fail(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;
	if (ret_error) {
		free(*ret_error);
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return r;
}

static bool name_valid(const char *s, size_t field)
{
	size_t n = strnlen(s, field);
	if (n == 0 || n > CONFIG_DEVICE_NAME_MAX || n == field)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

/* The field is NUL-terminated and zero after the string: no stray bytes. */
static bool field_clean(const char *s, size_t field)
{
	size_t n = strnlen(s, field);
	if (n == field)
		return false;
	for (size_t i = n; i < field; i++)
		if (s[i])
			return false;
	return true;
}

static bool pci_valid(const char *s)
{
	char norm[CONFIG_PCI_ADDR_MAX];
	if (!field_clean(s, CONFIG_PCI_ADDR_MAX))
		return false;
	if (!s[0]) /* sysmem devices have no address */
		return true;
	return config_parse_pci(s, norm) == 0 && strcmp(norm, s) == 0;
}

static int check_device(const struct fdstore_table *t, size_t i, char **ret_error)
{
	const struct fdstore_device *d = &t->devices[i];

	if (!field_clean(d->name, sizeof(d->name)) || !name_valid(d->name, sizeof(d->name)))
		return fail(ret_error, -EBADMSG, "device record %zu: the name is not a device name", i);
	if (!pci_valid(d->pci))
		return fail(ret_error, -EBADMSG, "device %s: '%.16s' is not a normalised PCI address",
			    d->name, d->pci);
	if (d->bar > 5)
		return fail(ret_error, -EBADMSG, "device %s: BAR %u does not exist", d->name, d->bar);
	if (!IS_POWER_OF_2(d->page_size) || d->page_size < 4096 || d->page_size > (UINT64_C(1) << 30))
		return fail(ret_error, -EBADMSG, "device %s: page size %llu is not a page size", d->name,
			    (unsigned long long)d->page_size);
	if (d->bar_size == 0 || d->bar_size % d->page_size || d->bar_size > (UINT64_C(1) << 63))
		return fail(ret_error, -EBADMSG, "device %s: BAR size %llu is not a multiple of the page size",
			    d->name, (unsigned long long)d->bar_size);
	for (size_t j = 0; j < i; j++)
		if (strcmp(t->devices[j].name, d->name) == 0)
			return fail(ret_error, -EBADMSG, "device %s is listed twice", d->name);
	return 0;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static int check_image(const struct fdstore_lease *l, char **ret_error)
{
	const struct lease_image *im = &l->image;
	if (!(l->flags & LEASE_IMAGE)) {
		if (!all_zero(im, sizeof(*im)))
			return fail(ret_error, -EBADMSG, "lease %llu: image fields set on a lease that is no image",
				    (unsigned long long)l->id);
		return 0;
	}
	if (im->n_planes < 1 || im->n_planes > 4 || im->width == 0 || im->height == 0 || im->fourcc == 0)
		return fail(ret_error, -EBADMSG, "lease %llu: image %ux%u with %u plane(s) is not an image",
			    (unsigned long long)l->id, im->width, im->height, im->n_planes);
	for (uint32_t p = 0; p < 4; p++)
		if (p < im->n_planes ? im->offsets[p] >= l->size || im->strides[p] == 0
				     : im->offsets[p] || im->strides[p])
			return fail(ret_error, -EBADMSG, "lease %llu: plane %u lies outside the lease",
				    (unsigned long long)l->id, p);
	return 0;
}

static int check_lease(const struct fdstore_table *t, size_t i, char **ret_error)
{
	const struct fdstore_lease *l = &t->leases[i];
	unsigned long long id = (unsigned long long)l->id;

	if (l->id == 0 || l->id >= t->next_lease_id)
		return fail(ret_error, -EBADMSG, "lease %llu: the id is not below the next id %llu", id,
			    (unsigned long long)t->next_lease_id);
	if (l->device >= t->n_devices)
		return fail(ret_error, -EBADMSG, "lease %llu: device %u is not in the table", id, l->device);
	const struct fdstore_device *d = &t->devices[l->device];
	if (l->flags & ~LEASE_FLAGS_KNOWN)
		return fail(ret_error, -EBADMSG, "lease %llu: unknown flags 0x%x", id, l->flags & ~LEASE_FLAGS_KNOWN);
	if (l->uid == UINT32_MAX)
		return fail(ret_error, -EBADMSG, "lease %llu: no holder uid", id);
	if (l->size == 0 || l->offset % d->page_size || l->size % d->page_size ||
	    l->offset > d->bar_size || l->size > d->bar_size - l->offset)
		return fail(ret_error, -EBADMSG,
			    "lease %llu: window %llu+%llu is not page aligned inside device %s's %llu-byte BAR",
			    id, (unsigned long long)l->offset, (unsigned long long)l->size, d->name,
			    (unsigned long long)d->bar_size);
	if (l->generation > d->generation)
		return fail(ret_error, -EBADMSG, "lease %llu: generation %llu is newer than device %s's %llu", id,
			    (unsigned long long)l->generation, d->name, (unsigned long long)d->generation);
	if (all_zero(l->token, sizeof(l->token)))
		return fail(ret_error, -EBADMSG, "lease %llu: no reclaim token", id);
	for (size_t j = 0; j < i; j++) {
		const struct fdstore_lease *o = &t->leases[j];
		if (o->id == l->id)
			return fail(ret_error, -EBADMSG, "lease %llu is listed twice", id);
		if (o->device != l->device)
			continue;
		if ((o->flags | l->flags) & LEASE_EXCLUSIVE)
			return fail(ret_error, -EBADMSG, "lease %llu: device %s has an exclusive lease and another",
				    id, d->name);
		if (l->offset < o->offset + o->size && o->offset < l->offset + l->size)
			return fail(ret_error, -EBADMSG, "lease %llu overlaps lease %llu on device %s", id,
				    (unsigned long long)o->id, d->name);
	}
	return check_image(l, ret_error);
}

static int check_table(const struct fdstore_table *t, char **ret_error)
{
	int r;
	if (t->n_devices > FDSTORE_MAX_DEVICES || t->n_leases > FDSTORE_MAX_LEASES)
		return fail(ret_error, -EBADMSG, "%zu devices and %zu leases are more than barkeepd keeps",
			    t->n_devices, t->n_leases);
	if (t->next_lease_id == 0)
		return fail(ret_error, -EBADMSG, "the next lease id is 0");
	for (size_t i = 0; i < t->n_devices; i++)
		if ((r = check_device(t, i, ret_error)) < 0)
			return r;
	for (size_t i = 0; i < t->n_leases; i++)
		if ((r = check_lease(t, i, ret_error)) < 0)
			return r;
	return 0;
}

struct fdstore_table *fdstore_table_free(struct fdstore_table *t)
{
	if (!t)
		return NULL;
	free(t->devices);
	free(t->leases);
	free(t);
	return NULL;
}

static void encode(const struct fdstore_table *t, struct cursor *c)
{
	put_bytes(c, TABLE_MAGIC, 8);
	put_u32(c, FDSTORE_TABLE_VERSION);
	put_u32(c, (uint32_t)t->n_devices);
	put_u32(c, (uint32_t)t->n_leases);
	put_u32(c, 0);
	put_u64(c, t->next_lease_id);
	put_u64(c, c->size - HEADER_SIZE);
	put_u64(c, 0); /* checksum, filled in last */
	for (size_t i = 0; i < t->n_devices; i++) {
		const struct fdstore_device *d = &t->devices[i];
		char name[40] = {}, pci[24] = {};
		memcpy(name, d->name, strnlen(d->name, sizeof(d->name) - 1));
		memcpy(pci, d->pci, strnlen(d->pci, sizeof(d->pci) - 1));
		put_bytes(c, name, sizeof(name));
		put_bytes(c, pci, sizeof(pci));
		put_u32(c, d->bar);
		put_u32(c, 0);
		put_u64(c, d->bar_size);
		put_u64(c, d->page_size);
		put_u64(c, d->generation);
	}
	for (size_t i = 0; i < t->n_leases; i++) {
		const struct fdstore_lease *l = &t->leases[i];
		put_u64(c, l->id);
		put_u32(c, l->device);
		put_u32(c, l->flags);
		put_u32(c, l->uid);
		put_u32(c, 0);
		put_u64(c, l->offset);
		put_u64(c, l->size);
		put_u64(c, l->generation);
		put_u32(c, l->image.fourcc);
		put_u32(c, l->image.width);
		put_u32(c, l->image.height);
		put_u32(c, l->image.n_planes);
		put_u64(c, l->image.modifier);
		for (int p = 0; p < 4; p++)
			put_u32(c, l->image.offsets[p]);
		for (int p = 0; p < 4; p++)
			put_u32(c, l->image.strides[p]);
		put_bytes(c, l->token, sizeof(l->token));
	}
	uint64_t sum = checksum(c->p, c->size);
	c->pos = CHECKSUM_OFFSET;
	put_u64(c, sum);
}

int fdstore_table_serialize(const struct fdstore_table *t)
{
	if (check_table(t, NULL) < 0)
		return -EINVAL;
	size_t size = HEADER_SIZE + t->n_devices * DEVICE_RECORD_SIZE + t->n_leases * LEASE_RECORD_SIZE;
	_cleanup_free_ uint8_t *buf = calloc(1, size);
	if (!buf)
		return -ENOMEM;
	struct cursor c = { .p = buf, .size = size };
	encode(t, &c);

	_cleanup_close_ int fd = memfd_create("barkeep-leases", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, buf + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static int decode(struct cursor *c, struct fdstore_table *t, char **ret_error)
{
	char magic[8];
	get_bytes(c, magic, sizeof(magic));
	if (memcmp(magic, TABLE_MAGIC, sizeof(magic)) != 0)
		return fail(ret_error, -EBADMSG, "it is not a barkeep lease table (bad magic)");
	uint32_t version = get_u32(c);
	if (version != FDSTORE_TABLE_VERSION)
		return fail(ret_error, -EPROTONOSUPPORT, "table version %u, this barkeepd reads version %u",
			    version, FDSTORE_TABLE_VERSION);
	uint32_t n_devices = get_u32(c), n_leases = get_u32(c), reserved = get_u32(c);
	t->next_lease_id = get_u64(c);
	uint64_t body = get_u64(c), sum = get_u64(c);
	if (n_devices > FDSTORE_MAX_DEVICES || n_leases > FDSTORE_MAX_LEASES || reserved ||
	    body != (uint64_t)n_devices * DEVICE_RECORD_SIZE + (uint64_t)n_leases * LEASE_RECORD_SIZE ||
	    body != c->size - HEADER_SIZE)
		return fail(ret_error, -EBADMSG, "the header's counts (%u devices, %u leases) do not match its %zu bytes",
			    n_devices, n_leases, c->size);
	if (checksum(c->p, c->size) != sum)
		return fail(ret_error, -EBADMSG, "the checksum does not match: the table is corrupt");

	t->devices = calloc(n_devices ? n_devices : 1, sizeof(*t->devices));
	t->leases = calloc(n_leases ? n_leases : 1, sizeof(*t->leases));
	if (!t->devices || !t->leases)
		return -ENOMEM;
	t->n_devices = n_devices;
	t->n_leases = n_leases;
	for (size_t i = 0; i < n_devices; i++) {
		struct fdstore_device *d = &t->devices[i];
		char name[40], pci[24];
		get_bytes(c, name, sizeof(name));
		get_bytes(c, pci, sizeof(pci));
		if (!all_zero(name + sizeof(d->name), sizeof(name) - sizeof(d->name)) ||
		    !all_zero(pci + sizeof(d->pci), sizeof(pci) - sizeof(d->pci)))
			return fail(ret_error, -EBADMSG, "device record %zu: stray bytes after a name", i);
		memcpy(d->name, name, sizeof(d->name));
		memcpy(d->pci, pci, sizeof(d->pci));
		d->bar = get_u32(c);
		if (get_u32(c))
			return fail(ret_error, -EBADMSG, "device record %zu: padding is not zero", i);
		d->bar_size = get_u64(c);
		d->page_size = get_u64(c);
		d->generation = get_u64(c);
	}
	for (size_t i = 0; i < n_leases; i++) {
		struct fdstore_lease *l = &t->leases[i];
		l->id = get_u64(c);
		l->device = get_u32(c);
		l->flags = get_u32(c);
		l->uid = get_u32(c);
		if (get_u32(c))
			return fail(ret_error, -EBADMSG, "lease record %zu: padding is not zero", i);
		l->offset = get_u64(c);
		l->size = get_u64(c);
		l->generation = get_u64(c);
		l->image.fourcc = get_u32(c);
		l->image.width = get_u32(c);
		l->image.height = get_u32(c);
		l->image.n_planes = get_u32(c);
		l->image.modifier = get_u64(c);
		for (int p = 0; p < 4; p++)
			l->image.offsets[p] = get_u32(c);
		for (int p = 0; p < 4; p++)
			l->image.strides[p] = get_u32(c);
		get_bytes(c, l->token, sizeof(l->token));
	}
	return check_table(t, ret_error);
}

int fdstore_table_deserialize(int fd, struct fdstore_table **ret, char **ret_error)
{
	struct stat st;
	int seals;

	if (ret_error)
		*ret_error = NULL;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return fail(ret_error, -errno, "it is not a sealed memfd: %s", strerror(errno));
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)) !=
	    (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE))
		return fail(ret_error, -EPERM, "the memfd is not sealed against writes");
	if (fstat(fd, &st) < 0)
		return fail(ret_error, -errno, "cannot stat it: %s", strerror(errno));
	if (st.st_size < HEADER_SIZE || (uint64_t)st.st_size > TABLE_SIZE_MAX)
		return fail(ret_error, -EBADMSG, "%lld bytes is no table size", (long long)st.st_size);

	size_t size = (size_t)st.st_size;
	_cleanup_free_ uint8_t *buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	for (size_t done = 0; done < size;) {
		ssize_t n = pread(fd, buf + done, size - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(ret_error, n < 0 ? -errno : -EBADMSG, "cannot read it: %s",
				    n < 0 ? strerror(errno) : "short file");
		done += (size_t)n;
	}
	struct fdstore_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	struct cursor c = { .p = buf, .size = size };
	int r = decode(&c, t, ret_error);
	if (r < 0) {
		fdstore_table_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

int fdstore_name_device(char buf[static FDSTORE_NAME_MAX], const char *device, const char *kind)
{
	int n = snprintf(buf, FDSTORE_NAME_MAX, "bk-dev-%s-%s", device, kind);
	return n < 0 || n >= FDSTORE_NAME_MAX ? -ENAMETOOLONG : 0;
}

int fdstore_name_lease(char buf[static FDSTORE_NAME_MAX], uint64_t lease_id)
{
	int n = snprintf(buf, FDSTORE_NAME_MAX, "bk-lease-%llu", (unsigned long long)lease_id);
	return n < 0 || n >= FDSTORE_NAME_MAX ? -ENAMETOOLONG : 0;
}

bool fdstore_name_is_ours(const char *name)
{
	return name && strncmp(name, "bk-", 3) == 0;
}

int fdstore_inherit(struct fdstore_inherited *ret)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);

	*ret = (struct fdstore_inherited){ .socket_fd = -EBADF };
	if (n <= 0) {
		free(names);
		return n;
	}
	ret->fds = calloc((size_t)n, sizeof(int));
	ret->names = calloc((size_t)n, sizeof(char *));
	if (!ret->fds || !ret->names) {
		for (int i = 0; i < n; i++) {
			safe_close(SD_LISTEN_FDS_START + i);
			free(names ? names[i] : NULL);
		}
		free(names);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		char *name = names ? names[i] : NULL;
		if (fdstore_name_is_ours(name)) {
			ret->fds[ret->n] = fd;
			ret->names[ret->n++] = name;
			continue;
		}
		if (ret->socket_fd < 0 && sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0) {
			ret->socket_fd = fd;
		} else {
			safe_close(fd);
			ret->n_other++;
		}
		free(name);
	}
	free(names);
	return 0;
}

size_t fdstore_inherited_drop(struct fdstore_inherited *inh)
{
	size_t n = inh->n;
	for (size_t i = 0; i < inh->n; i++) {
		(void)sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", inh->names[i]);
		safe_close(inh->fds[i]);
		free(inh->names[i]);
	}
	free(inh->fds);
	free(inh->names);
	inh->fds = NULL;
	inh->names = NULL;
	inh->n = 0;
	return n;
}

int fdstore_inherited_find(const struct fdstore_inherited *inh, const char *name)
{
	for (size_t i = 0; i < inh->n; i++)
		if (strcmp(inh->names[i], name) == 0)
			return inh->fds[i];
	return -EBADF;
}

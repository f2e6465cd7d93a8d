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

#define TABLE_MAGIC "BKLEASE2"
/* Layout (little-endian; docs in fdstore.h):
 * header 64: magic 8, version 4, device slots 4, lease slots 4, 0 4,
 *            checksum of [0,24) 8, next lease id 8 (live), zeros
 * device 112: state 4, 0 4, name 40, pci 24, bar 4, 0 4, BAR size 8,
 *             page size 8, checksum of [8,96) 8, generation 8 (live)
 * lease 136: state 4, 0 4, id 8, device slot 4, flags 4, uid 4, 0 4,
 *            offset 8, size 8, generation 8, image 56, token 16,
 *            checksum of [8,128) 8 */
#define HEADER_SIZE 64
#define HEADER_SUMMED 24
#define HEADER_NEXT_ID 32
#define DEVICE_RECORD_SIZE 112
#define DEVICE_SUMMED_END 96
#define DEVICE_GENERATION 104
#define LEASE_ID 8
#define LEASE_DEVICE 16
#define LEASE_RECORD_SIZE 136
#define LEASE_SUMMED_END 128
#define SLOT_USED 1
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

/* A fuzzer cannot fix up checksums: its build checks the fields behind them
 * instead (tests/fuzz/fuzz_fdstore.c). */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define checksum_matches(stored, computed) ((void)(stored), (void)(computed), true)
#else
#define checksum_matches(stored, computed) ((stored) == (computed))
#endif

/* FNV-1a, 64 bits: finds corruption, not attackers (the store is ours). */
static uint64_t checksum(const uint8_t *p, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * UINT64_C(0x100000001b3);
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

	if (l->state != FDSTORE_LEASE_LIVE && l->state != FDSTORE_LEASE_QUARANTINED &&
	    l->state != FDSTORE_LEASE_SHARED)
		return fail(ret_error, -EBADMSG, "lease %llu: state %u is not a state", id, l->state);
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
		if (o->state == FDSTORE_LEASE_LIVE && l->state == FDSTORE_LEASE_LIVE &&
		    ((o->flags | l->flags) & LEASE_EXCLUSIVE))
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

static struct cursor at(uint8_t *p, size_t size)
{
	return (struct cursor){ .p = p, .size = size };
}

static void encode_header(uint8_t *p, uint32_t n_device_slots, uint32_t n_lease_slots,
			  uint64_t next_lease_id)
{
	struct cursor c = at(p, HEADER_SIZE);
	put_bytes(&c, TABLE_MAGIC, 8);
	put_u32(&c, FDSTORE_TABLE_VERSION);
	put_u32(&c, n_device_slots);
	put_u32(&c, n_lease_slots);
	put_u32(&c, 0);
	put_u64(&c, checksum(p, HEADER_SUMMED));
	put_u64(&c, next_lease_id);
}

/* The body and checksum; the state word is the caller's (written last). */
static void encode_device(uint8_t *p, const struct fdstore_device *d)
{
	struct cursor c = at(p, DEVICE_RECORD_SIZE);
	char name[40] = {}, pci[24] = {};

	memcpy(name, d->name, strnlen(d->name, sizeof(d->name) - 1));
	memcpy(pci, d->pci, strnlen(d->pci, sizeof(d->pci) - 1));
	c.pos = 4;
	put_u32(&c, 0);
	put_bytes(&c, name, sizeof(name));
	put_bytes(&c, pci, sizeof(pci));
	put_u32(&c, d->bar);
	put_u32(&c, 0);
	put_u64(&c, d->bar_size);
	put_u64(&c, d->page_size);
	put_u64(&c, checksum(p + 8, DEVICE_SUMMED_END - 8));
	put_u64(&c, d->generation);
}

static void encode_lease(uint8_t *p, const struct fdstore_lease *l, uint32_t device_slot)
{
	struct cursor c = at(p, LEASE_RECORD_SIZE);

	c.pos = 4;
	put_u32(&c, 0);
	put_u64(&c, l->id);
	put_u32(&c, device_slot);
	put_u32(&c, l->flags);
	put_u32(&c, l->uid);
	put_u32(&c, 0);
	put_u64(&c, l->offset);
	put_u64(&c, l->size);
	put_u64(&c, l->generation);
	put_u32(&c, l->image.fourcc);
	put_u32(&c, l->image.width);
	put_u32(&c, l->image.height);
	put_u32(&c, l->image.n_planes);
	put_u64(&c, l->image.modifier);
	for (int i = 0; i < 4; i++)
		put_u32(&c, l->image.offsets[i]);
	for (int i = 0; i < 4; i++)
		put_u32(&c, l->image.strides[i]);
	put_bytes(&c, l->token, sizeof(l->token));
	put_u64(&c, checksum(p + 8, LEASE_SUMMED_END - 8));
}

/* The one store that makes a slot live, quarantined or free: aligned, so a
 * process killed at any instant leaves the old or the new value. */
static void store_state(uint8_t *slot, uint32_t state)
{
	uint8_t b[4] = { state, state >> 8, state >> 16, state >> 24 };
	uint32_t v;
	memcpy(&v, b, sizeof(v));
	__atomic_store_n((uint32_t *)(void *)slot, v, __ATOMIC_RELEASE);
}

static void store_u64(uint8_t *p, uint64_t value)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(value >> (8 * i));
	uint64_t v;
	memcpy(&v, b, sizeof(v));
	__atomic_store_n((uint64_t *)(void *)p, v, __ATOMIC_RELEASE);
}

static size_t table_size(uint32_t n_device_slots, uint32_t n_lease_slots)
{
	return HEADER_SIZE + (size_t)n_device_slots * DEVICE_RECORD_SIZE +
	       (size_t)n_lease_slots * LEASE_RECORD_SIZE;
}

static uint8_t *device_slot(uint8_t *table, uint32_t i)
{
	return table + HEADER_SIZE + (size_t)i * DEVICE_RECORD_SIZE;
}

static uint8_t *lease_slot(uint8_t *table, uint32_t n_device_slots, uint32_t i)
{
	return table + HEADER_SIZE + (size_t)n_device_slots * DEVICE_RECORD_SIZE +
	       (size_t)i * LEASE_RECORD_SIZE;
}

/* A memfd of size bytes, sealed against resizing, mapped shared. */
static int table_memfd(size_t size, uint8_t **ret_map)
{
	_cleanup_close_ int fd = memfd_create("barkeep-leases", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -errno;
	void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	*ret_map = map;
	return TAKE_FD(fd);
}

int fdstore_table_serialize(const struct fdstore_table *t)
{
	uint8_t *map;

	if (check_table(t, NULL) < 0)
		return -EINVAL;
	size_t size = table_size((uint32_t)t->n_devices, (uint32_t)t->n_leases);
	int fd = table_memfd(size, &map);
	if (fd < 0)
		return fd;
	encode_header(map, (uint32_t)t->n_devices, (uint32_t)t->n_leases, t->next_lease_id);
	for (size_t i = 0; i < t->n_devices; i++) {
		encode_device(device_slot(map, (uint32_t)i), &t->devices[i]);
		store_state(device_slot(map, (uint32_t)i), SLOT_USED);
	}
	for (size_t i = 0; i < t->n_leases; i++) {
		uint8_t *slot = lease_slot(map, (uint32_t)t->n_devices, (uint32_t)i);
		encode_lease(slot, &t->leases[i], t->leases[i].device);
		store_state(slot, t->leases[i].state);
	}
	munmap(map, size);
	return fd;
}

static int decode_device(struct cursor *c, uint32_t slot, struct fdstore_device *d, char **ret_error)
{
	char name[40], pci[24];

	c->pos = 4;
	if (get_u32(c))
		return fail(ret_error, -EBADMSG, "device slot %u: padding is not zero", slot);
	get_bytes(c, name, sizeof(name));
	get_bytes(c, pci, sizeof(pci));
	if (!all_zero(name + sizeof(d->name), sizeof(name) - sizeof(d->name)) ||
	    !all_zero(pci + sizeof(d->pci), sizeof(pci) - sizeof(d->pci)))
		return fail(ret_error, -EBADMSG, "device slot %u: stray bytes after a name", slot);
	memcpy(d->name, name, sizeof(d->name));
	memcpy(d->pci, pci, sizeof(d->pci));
	d->slot = slot;
	d->bar = get_u32(c);
	if (get_u32(c))
		return fail(ret_error, -EBADMSG, "device slot %u: padding is not zero", slot);
	d->bar_size = get_u64(c);
	d->page_size = get_u64(c);
	if (!checksum_matches(get_u64(c), checksum(c->p + 8, DEVICE_SUMMED_END - 8)))
		return fail(ret_error, -EBADMSG, "device slot %u: the checksum does not match", slot);
	d->generation = get_u64(c);
	return 0;
}

/* *ret_device_slot: the slot the record names, mapped by the caller. */
static int decode_lease(struct cursor *c, uint32_t slot, struct fdstore_lease *l,
			uint32_t *ret_device_slot, char **ret_error)
{
	c->pos = 4;
	if (get_u32(c))
		return fail(ret_error, -EBADMSG, "lease slot %u: padding is not zero", slot);
	l->slot = slot;
	l->id = get_u64(c);
	*ret_device_slot = get_u32(c);
	l->flags = get_u32(c);
	l->uid = get_u32(c);
	if (get_u32(c))
		return fail(ret_error, -EBADMSG, "lease slot %u: padding is not zero", slot);
	l->offset = get_u64(c);
	l->size = get_u64(c);
	l->generation = get_u64(c);
	l->image.fourcc = get_u32(c);
	l->image.width = get_u32(c);
	l->image.height = get_u32(c);
	l->image.n_planes = get_u32(c);
	l->image.modifier = get_u64(c);
	for (int i = 0; i < 4; i++)
		l->image.offsets[i] = get_u32(c);
	for (int i = 0; i < 4; i++)
		l->image.strides[i] = get_u32(c);
	get_bytes(c, l->token, sizeof(l->token));
	if (!checksum_matches(get_u64(c), checksum(c->p + 8, LEASE_SUMMED_END - 8)))
		return fail(ret_error, -EBADMSG, "lease slot %u: the checksum does not match", slot);
	return 0;
}

static int decode(uint8_t *p, size_t size, struct fdstore_table *t, char **ret_error)
{
	struct cursor c = at(p, HEADER_SIZE);
	char magic[8];
	int r;

	get_bytes(&c, magic, sizeof(magic));
	if (memcmp(magic, TABLE_MAGIC, sizeof(magic)) != 0)
		return fail(ret_error, -EBADMSG, "it is not a barkeep lease table (bad magic)");
	uint32_t version = get_u32(&c);
	if (version != FDSTORE_TABLE_VERSION)
		return fail(ret_error, -EPROTONOSUPPORT, "table version %u, this barkeepd reads version %u",
			    version, FDSTORE_TABLE_VERSION);
	uint32_t n_device_slots = get_u32(&c), n_lease_slots = get_u32(&c), reserved = get_u32(&c);
	if (n_device_slots > FDSTORE_MAX_DEVICES || n_lease_slots > FDSTORE_MAX_LEASES || reserved ||
	    size != table_size(n_device_slots, n_lease_slots))
		return fail(ret_error, -EBADMSG, "the header's counts (%u device and %u lease slots) do not match its %zu bytes",
			    n_device_slots, n_lease_slots, size);
	if (!checksum_matches(get_u64(&c), checksum(p, HEADER_SUMMED)))
		return fail(ret_error, -EBADMSG, "the checksum does not match: the table is corrupt");
	t->next_lease_id = get_u64(&c);
	if (!all_zero(p + c.pos, HEADER_SIZE - c.pos))
		return fail(ret_error, -EBADMSG, "the header's padding is not zero");

	t->devices = calloc(n_device_slots ? n_device_slots : 1, sizeof(*t->devices));
	t->leases = calloc(n_lease_slots ? n_lease_slots : 1, sizeof(*t->leases));
	if (!t->devices || !t->leases)
		return -ENOMEM;
	for (uint32_t i = 0; i < n_device_slots; i++) {
		c = at(device_slot(p, i), DEVICE_RECORD_SIZE);
		uint32_t state = get_u32(&c);
		if (state == 0)
			continue;
		if (state != SLOT_USED)
			return fail(ret_error, -EBADMSG, "device slot %u: state %u is not a state", i, state);
		r = decode_device(&c, i, &t->devices[t->n_devices], ret_error);
		if (r < 0)
			return r;
		t->n_devices++;
	}
	for (uint32_t i = 0; i < n_lease_slots; i++) {
		struct fdstore_lease *l = &t->leases[t->n_leases];
		uint32_t dslot = UINT32_MAX;
		c = at(lease_slot(p, n_device_slots, i), LEASE_RECORD_SIZE);
		l->state = get_u32(&c);
		if (l->state == FDSTORE_LEASE_FREE)
			continue;
		r = decode_lease(&c, i, l, &dslot, ret_error);
		if (r < 0)
			return r;
		l->device = UINT32_MAX;
		for (size_t d = 0; d < t->n_devices; d++)
			if (t->devices[d].slot == dslot)
				l->device = (uint32_t)d;
		/* A slot of a device that left the table (gone, unplugged): its
		 * buffers died with the device's fds. Stale, not corrupt. */
		if (l->device == UINT32_MAX && dslot < n_device_slots)
			continue;
		t->n_leases++;
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
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return fail(ret_error, -EPERM, "the memfd is not sealed against resizing");
	if (fstat(fd, &st) < 0)
		return fail(ret_error, -errno, "cannot stat it: %s", strerror(errno));
	if (st.st_size < HEADER_SIZE || (uint64_t)st.st_size > TABLE_SIZE_MAX)
		return fail(ret_error, -EBADMSG, "%lld bytes is no table size", (long long)st.st_size);

	size_t size = (size_t)st.st_size;
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return fail(ret_error, -errno, "cannot map it: %s", strerror(errno));
	struct fdstore_table *t = calloc(1, sizeof(*t));
	int r = t ? decode(map, size, t, ret_error) : -ENOMEM;
	munmap(map, size);
	if (r < 0) {
		fdstore_table_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

struct fdstore_writer {
	int fd;
	uint8_t *map;
	size_t size;
	uint32_t n_device_slots, n_lease_slots;
	bool device_used[FDSTORE_MAX_DEVICES];
	bool *lease_taken;     /* staged or in the table */
	uint32_t *free_leases; /* a stack of the others */
	uint32_t n_free;
};

static int writer_alloc(int fd, uint8_t *map, uint32_t n_device_slots, uint32_t n_lease_slots,
			struct fdstore_writer **ret)
{
	size_t n = n_lease_slots ? n_lease_slots : 1;
	struct fdstore_writer *w = calloc(1, sizeof(*w));
	if (w) {
		w->free_leases = malloc(n * sizeof(uint32_t));
		w->lease_taken = calloc(n, sizeof(bool));
	}
	if (!w || !w->free_leases || !w->lease_taken) {
		if (w) {
			free(w->free_leases);
			free(w->lease_taken);
		}
		free(w);
		return -ENOMEM;
	}
	w->fd = fd;
	w->map = map;
	w->size = table_size(n_device_slots, n_lease_slots);
	w->n_device_slots = n_device_slots;
	w->n_lease_slots = n_lease_slots;
	*ret = w;
	return 0;
}

int fdstore_writer_new(struct fdstore_writer **ret)
{
	size_t size = table_size(FDSTORE_MAX_DEVICES, FDSTORE_MAX_LEASES);
	uint8_t *map;
	int fd = table_memfd(size, &map);
	if (fd < 0)
		return fd;
	encode_header(map, FDSTORE_MAX_DEVICES, FDSTORE_MAX_LEASES, 1);
	int r = writer_alloc(fd, map, FDSTORE_MAX_DEVICES, FDSTORE_MAX_LEASES, ret);
	if (r < 0) {
		munmap(map, size);
		close(fd);
		return r;
	}
	/* Lowest slots first: the used part of the file stays small. */
	for (uint32_t i = FDSTORE_MAX_LEASES; i > 0; i--)
		(*ret)->free_leases[(*ret)->n_free++] = i - 1;
	return 0;
}

int fdstore_writer_adopt(int fd, const struct fdstore_table *t, struct fdstore_writer **ret)
{
	struct stat st;
	uint8_t *map;

	if (fstat(fd, &st) < 0 || st.st_size < HEADER_SIZE)
		return -EBADMSG;
	map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	struct cursor c = at(map, HEADER_SIZE);
	c.pos = 12;
	uint32_t n_device_slots = get_u32(&c), n_lease_slots = get_u32(&c);
	int r = writer_alloc(fd, map, n_device_slots, n_lease_slots, ret);
	if (r < 0) {
		munmap(map, (size_t)st.st_size);
		return r;
	}
	struct fdstore_writer *w = *ret;
	for (size_t i = 0; i < t->n_devices; i++)
		w->device_used[t->devices[i].slot] = true;
	for (size_t i = 0; i < t->n_leases; i++)
		w->lease_taken[t->leases[i].slot] = true;
	for (uint32_t i = n_lease_slots; i > 0; i--)
		if (!w->lease_taken[i - 1])
			w->free_leases[w->n_free++] = i - 1;
	return 0;
}

struct fdstore_writer *fdstore_writer_free(struct fdstore_writer *w)
{
	if (!w)
		return NULL;
	munmap(w->map, w->size);
	safe_close(w->fd);
	free(w->free_leases);
	free(w->lease_taken);
	free(w);
	return NULL;
}

int fdstore_writer_fd(const struct fdstore_writer *w)
{
	return w->fd;
}

int fdstore_writer_put_device(struct fdstore_writer *w, const struct fdstore_device *d)
{
	for (uint32_t i = 0; i < w->n_device_slots; i++) {
		if (w->device_used[i])
			continue;
		encode_device(device_slot(w->map, i), d);
		store_state(device_slot(w->map, i), SLOT_USED);
		w->device_used[i] = true;
		return (int)i;
	}
	return -ENOSPC;
}

static struct cursor lease_field(struct fdstore_writer *w, uint32_t slot, size_t pos)
{
	struct cursor c = at(lease_slot(w->map, w->n_device_slots, slot), LEASE_RECORD_SIZE);
	c.pos = pos;
	return c;
}

static uint32_t lease_device_slot(struct fdstore_writer *w, uint32_t slot)
{
	struct cursor c = lease_field(w, slot, LEASE_DEVICE);
	return get_u32(&c);
}

static uint64_t lease_id_in(struct fdstore_writer *w, uint32_t slot)
{
	struct cursor c = lease_field(w, slot, LEASE_ID);
	return get_u64(&c);
}

static void free_lease_slot(struct fdstore_writer *w, uint32_t slot)
{
	store_state(lease_slot(w->map, w->n_device_slots, slot), FDSTORE_LEASE_FREE);
	w->lease_taken[slot] = false;
	w->free_leases[w->n_free++] = slot;
}

void fdstore_writer_drop_device(struct fdstore_writer *w, uint32_t slot)
{
	if (slot >= w->n_device_slots || !w->device_used[slot])
		return;
	store_state(device_slot(w->map, slot), 0);
	w->device_used[slot] = false;
	/* Its leases go with it: left behind, they would belong to whatever
	 * device takes the slot next. */
	for (uint32_t i = 0; i < w->n_lease_slots; i++)
		if (w->lease_taken[i] && lease_device_slot(w, i) == slot)
			free_lease_slot(w, i);
}

void fdstore_writer_set_generation(struct fdstore_writer *w, uint32_t slot, uint64_t generation)
{
	if (slot < w->n_device_slots)
		store_u64(device_slot(w->map, slot) + DEVICE_GENERATION, generation);
}

int fdstore_writer_stage_lease(struct fdstore_writer *w, const struct fdstore_lease *l)
{
	if (w->n_free == 0)
		return -ENOSPC;
	uint32_t i = w->free_leases[--w->n_free];
	uint8_t *slot = lease_slot(w->map, w->n_device_slots, i);
	w->lease_taken[i] = true;
	/* A stale slot (fdstore_table_deserialize skips them) may still say
	 * live: free first, so that a half-written body is never read. */
	store_state(slot, FDSTORE_LEASE_FREE);
	encode_lease(slot, l, l->device);
	return (int)i;
}

int fdstore_writer_put_lease(struct fdstore_writer *w, const struct fdstore_lease *l)
{
	int slot = fdstore_writer_stage_lease(w, l);
	if (slot >= 0)
		store_state(lease_slot(w->map, w->n_device_slots, (uint32_t)slot), FDSTORE_LEASE_LIVE);
	return slot;
}

void fdstore_writer_set_lease_state(struct fdstore_writer *w, uint32_t slot, uint64_t lease_id,
				    uint32_t state)
{
	/* A staged slot is written and taken but still free: it may be given
	 * any state, FREE included. A slot its device's drop gave back (and
	 * maybe another lease took since) is no longer this lease's. */
	if (slot >= w->n_lease_slots || !w->lease_taken[slot] || lease_id_in(w, slot) != lease_id)
		return;
	if (state == FDSTORE_LEASE_FREE)
		free_lease_slot(w, slot);
	else
		store_state(lease_slot(w->map, w->n_device_slots, slot), state);
}

void fdstore_writer_set_next_id(struct fdstore_writer *w, uint64_t next_lease_id)
{
	store_u64(w->map + HEADER_NEXT_ID, next_lease_id);
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

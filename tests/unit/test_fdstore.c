// SPDX-License-Identifier: MIT
/* The fd store's lease table: round trip, sealing, and every refusal. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/fdstore.h"
#include "tests/unit/unit.h"

#define PAGE UINT64_C(4096)

static struct fdstore_device devices[2] = {
	{ .name = "gpu0", .pci = "0000:00:03.0", .bar = 2, .bar_size = 64 << 20, .page_size = PAGE,
	  .generation = 3 },
	{ .slot = 1, .name = "gpu1", .pci = "0000:00:04.0", .bar = 2, .bar_size = 256 << 20, .page_size = PAGE,
	  .generation = 1 },
};

static struct fdstore_lease leases[3];

static struct fdstore_table sample(void)
{
	memset(leases, 0, sizeof(leases));
	leases[0] = (struct fdstore_lease){ .id = 1, .device = 0, .uid = 1000, .offset = 0,
					    .size = PAGE * 16, .generation = 3 };
	leases[1] = (struct fdstore_lease){ .id = 4, .device = 0, .uid = 0, .offset = PAGE * 16,
					    .size = PAGE, .generation = 2, .flags = LEASE_WRITE_COMBINE };
	leases[2] = (struct fdstore_lease){ .id = 7, .device = 1, .uid = 1001, .offset = 1 << 20,
					    .size = 1 << 20, .generation = 1, .flags = LEASE_IMAGE,
					    .image = { .fourcc = 0x34325258, .width = 256, .height = 256,
						       .n_planes = 1, .strides = { 1024 } } };
	for (int i = 0; i < 3; i++) {
		leases[i].slot = (uint32_t)i;
		leases[i].state = FDSTORE_LEASE_LIVE;
	}
	leases[1].state = FDSTORE_LEASE_QUARANTINED;
	for (int i = 0; i < 3; i++)
		memset(leases[i].token, 0x11 * (i + 1), sizeof(leases[i].token));
	return (struct fdstore_table){ .next_lease_id = 8, .devices = devices, .n_devices = 2,
				       .leases = leases, .n_leases = 3 };
}

/* Reads the table back; 0 or the error, the sentence in *why. */
static int round_trip(const struct fdstore_table *t, struct fdstore_table **ret, char **why)
{
	int fd = fdstore_table_serialize(t);
	if (fd < 0)
		return fd;
	int r = fdstore_table_deserialize(fd, ret, why);
	close(fd);
	return r;
}

static void test_round_trip(void)
{
	struct fdstore_table t = sample();
	_cleanup_fdstore_table_ struct fdstore_table *back = NULL;
	_cleanup_free_ char *why = NULL;

	CHECK_EQ(round_trip(&t, &back, &why), 0);
	CHECK(why == NULL);
	if (!back)
		return;
	CHECK_EQ(back->next_lease_id, 8);
	CHECK_EQ(back->n_devices, 2);
	CHECK_EQ(back->n_leases, 3);
	CHECK(memcmp(back->devices, devices, sizeof(devices)) == 0);
	CHECK(memcmp(back->leases, leases, sizeof(leases)) == 0);
}

static void test_empty(void)
{
	struct fdstore_table t = { .next_lease_id = 1 };
	_cleanup_fdstore_table_ struct fdstore_table *back = NULL;

	CHECK_EQ(round_trip(&t, &back, NULL), 0);
	CHECK(back && back->n_devices == 0 && back->n_leases == 0);
}

static void test_sealed(void)
{
	struct fdstore_table t = sample();
	int fd = fdstore_table_serialize(&t);
	CHECK(fd >= 0);
	int seals = fcntl(fd, F_GET_SEALS);
	CHECK(seals & F_SEAL_SHRINK);
	CHECK(seals & F_SEAL_GROW);
	CHECK(seals & F_SEAL_SEAL);
	CHECK(ftruncate(fd, 1 << 20) < 0);
	close(fd);
}

/* A memfd holding bytes, sealed (or not). */
static int memfd_with(const void *p, size_t n, bool seal)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n)
		return -1;
	if (seal)
		fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
	return fd;
}

static size_t table_bytes(uint8_t *buf, size_t size)
{
	struct fdstore_table t = sample();
	int fd = fdstore_table_serialize(&t);
	ssize_t n = pread(fd, buf, size, 0);
	close(fd);
	return n > 0 ? (size_t)n : 0;
}

/* The fields updated in place by single stores, outside the checksums:
 * the next lease id (header 32..40) and each device's generation (the
 * last 8 bytes of its 112-byte slot). Range rules alone guard them. */
static bool live_field(size_t i)
{
	if (i >= 32 && i < 40)
		return true;
	return i >= 64 && i < 64 + 2 * 112 && (i - 64) % 112 >= 104;
}

static void test_corrupt_every_byte(void)
{
	uint8_t buf[4096];
	size_t n = table_bytes(buf, sizeof(buf));
	unsigned refused = 0, flipped = 0;

	CHECK(n == 64 + 2 * 112 + 3 * 136);
	for (size_t i = 0; i < n; i++) {
		if (live_field(i))
			continue;
		flipped++;
		buf[i] ^= 0x40;
		int fd = memfd_with(buf, n, true);
		struct fdstore_table *t = NULL;
		char *why = NULL;
		int r = fdstore_table_deserialize(fd, &t, &why);
		if (r < 0 && why && t == NULL)
			refused++;
		else
			fprintf(stderr, "  byte %zu flipped: accepted\n", i);
		fdstore_table_free(t);
		free(why);
		close(fd);
		buf[i] ^= 0x40;
	}
	CHECK_EQ(refused, flipped);
}

/* The live table: what a daemon writes survives being read by the next. */
static void test_writer(void)
{
	struct fdstore_table t = sample();
	_cleanup_fdstore_writer_ struct fdstore_writer *w = NULL, *w2 = NULL;
	_cleanup_fdstore_table_ struct fdstore_table *back = NULL, *back2 = NULL;
	_cleanup_free_ char *why = NULL;
	int slots[3];

	CHECK_EQ(fdstore_writer_new(&w), 0);
	if (!w)
		return;
	CHECK_EQ(fdstore_writer_put_device(w, &devices[0]), 0);
	CHECK_EQ(fdstore_writer_put_device(w, &devices[1]), 1);
	for (int i = 0; i < 3; i++)
		slots[i] = fdstore_writer_put_lease(w, &t.leases[i]);
	CHECK(slots[0] == 0 && slots[1] == 1 && slots[2] == 2);
	fdstore_writer_set_lease_state(w, (uint32_t)slots[1], 4, FDSTORE_LEASE_QUARANTINED);
	fdstore_writer_set_next_id(w, 8);
	fdstore_writer_set_generation(w, 0, 5);
	CHECK_EQ(fdstore_table_deserialize(fdstore_writer_fd(w), &back, &why), 0);
	if (!back)
		return;
	CHECK_EQ(back->n_devices, 2);
	CHECK_EQ(back->devices[0].generation, 5);
	CHECK_EQ(back->n_leases, 3);
	CHECK_EQ(back->leases[1].state, FDSTORE_LEASE_QUARANTINED);
	CHECK(memcmp(back->leases[2].token, leases[2].token, BROKER_TOKEN_SIZE) == 0);
	CHECK_EQ(back->next_lease_id, 8);

	/* A freed slot is gone from the table and used again first. */
	fdstore_writer_set_lease_state(w, (uint32_t)slots[0], 1, FDSTORE_LEASE_FREE);
	int copy = dup(fdstore_writer_fd(w));
	CHECK_EQ(fdstore_table_deserialize(copy, &back2, &why), 0);
	CHECK(back2 && back2->n_leases == 2);
	if (!back2)
		return;
	CHECK_EQ(fdstore_writer_adopt(copy, back2, &w2), 0);
	if (!w2)
		return;
	CHECK_EQ(fdstore_writer_put_lease(w2, &t.leases[0]), 0);
	/* A dropped device's leases are stale, not corrupt: skipped (their
	 * buffers died with the device), and their slots are used again. */
	fdstore_writer_drop_device(w2, 1);
	fdstore_table_free(back2);
	back2 = NULL;
	CHECK_EQ(fdstore_table_deserialize(fdstore_writer_fd(w2), &back2, &why), 0);
	CHECK(back2 && back2->n_leases == 2 && back2->n_devices == 1);
}

/* A device taken away and back within one process: the slot it gets again
 * starts with none of the old leases, and their holders' late calls change
 * nothing (soak: a stale lease of an unplugged GPU once made the next start
 * refuse the whole table). */
static void test_writer_device_slot_reused(void)
{
	struct fdstore_table t = sample();
	_cleanup_fdstore_writer_ struct fdstore_writer *w = NULL;
	_cleanup_fdstore_table_ struct fdstore_table *back = NULL;
	_cleanup_free_ char *why = NULL;

	CHECK_EQ(fdstore_writer_new(&w), 0);
	if (!w)
		return;
	CHECK_EQ(fdstore_writer_put_device(w, &devices[0]), 0);
	CHECK_EQ(fdstore_writer_put_device(w, &devices[1]), 1);
	int kept = fdstore_writer_put_lease(w, &t.leases[0]);     /* device 0 */
	int stale = fdstore_writer_put_lease(w, &t.leases[2]);    /* device 1 */
	fdstore_writer_set_lease_state(w, (uint32_t)stale, t.leases[2].id, FDSTORE_LEASE_SHARED);

	fdstore_writer_drop_device(w, 1);
	struct fdstore_device again = devices[1];
	again.generation = 0; /* older than the dropped lease's */
	CHECK_EQ(fdstore_writer_put_device(w, &again), 1);
	/* The freed slot goes to the next lease; the old holder's late calls
	 * must not touch it. */
	struct fdstore_lease fresh = t.leases[1];
	fresh.device = 1;
	fresh.generation = 0;
	CHECK_EQ(fdstore_writer_put_lease(w, &fresh), stale);
	fdstore_writer_set_lease_state(w, (uint32_t)stale, t.leases[2].id, FDSTORE_LEASE_FREE);
	fdstore_writer_set_lease_state(w, (uint32_t)stale, t.leases[2].id, FDSTORE_LEASE_SHARED);
	fdstore_writer_set_next_id(w, t.next_lease_id);

	CHECK_EQ(fdstore_table_deserialize(fdstore_writer_fd(w), &back, &why), 0);
	if (!back)
		return;
	CHECK_EQ(back->n_leases, 2);
	for (size_t i = 0; i < back->n_leases; i++) {
		const struct fdstore_lease *l = &back->leases[i];
		CHECK(l->slot == (uint32_t)kept ? l->id == t.leases[0].id
						 : l->id == fresh.id && l->state == FDSTORE_LEASE_LIVE);
	}
}

static void test_unsealed_truncated_wrong_version(void)
{
	uint8_t buf[4096];
	size_t n = table_bytes(buf, sizeof(buf));
	struct fdstore_table *t = NULL;
	char *why = NULL;

	int fd = memfd_with(buf, n, false);
	CHECK_EQ(fdstore_table_deserialize(fd, &t, &why), -EPERM);
	CHECK(why && strstr(why, "sealed"));
	close(fd);
	free(why);

	fd = memfd_with(buf, n - 1, true);
	CHECK_EQ(fdstore_table_deserialize(fd, &t, &why), -EBADMSG);
	close(fd);
	free(why);

	buf[8] = 3; /* the version */
	fd = memfd_with(buf, n, true);
	CHECK_EQ(fdstore_table_deserialize(fd, &t, &why), -EPROTONOSUPPORT);
	CHECK(why && strstr(why, "version 3"));
	close(fd);
	free(why);

	int pipefd[2];
	CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
	CHECK(fdstore_table_deserialize(pipefd[0], &t, &why) < 0);
	close(pipefd[0]);
	close(pipefd[1]);
	free(why);
	CHECK(t == NULL);
}

/* Tables that encode fine byte-wise but mean something impossible are
 * refused already when written. */
static void test_invalid_tables(void)
{
	struct fdstore_table ok = sample();
	_cleanup_fdstore_table_ struct fdstore_table *back = NULL;

	/* An exclusive lease may have a released one beside it, still open. */
	leases[0].flags = LEASE_EXCLUSIVE;
	CHECK_EQ(round_trip(&ok, &back, NULL), 0);

	struct fdstore_table t;
	struct fdstore_device bad_dev[2];

#define REFUSED(mutate)                                             \
	do {                                                        \
		t = sample();                                       \
		memcpy(bad_dev, devices, sizeof(devices));          \
		t.devices = bad_dev;                                \
		mutate;                                             \
		int _fd = fdstore_table_serialize(&t);              \
		CHECK_EQ(_fd, -EINVAL);                             \
		if (_fd >= 0)                                       \
			close(_fd);                                 \
	} while (0)

	REFUSED(leases[1].offset = PAGE * 15);                     /* overlap */
	REFUSED(leases[1].id = 1);                                 /* duplicate id */
	REFUSED(leases[2].id = 8);                                 /* >= next id */
	REFUSED(leases[0].offset = 100);                           /* unaligned */
	REFUSED(leases[0].size = 0);
	REFUSED(leases[2].offset = (256 << 20) - PAGE);            /* past the BAR */
	REFUSED(leases[0].offset = UINT64_MAX - PAGE + 1);         /* overflow */
	REFUSED(leases[0].device = 2);
	REFUSED(leases[0].flags = 1u << 7);
	REFUSED(leases[1].state = FDSTORE_LEASE_LIVE; leases[0].flags = LEASE_EXCLUSIVE); /* not alone */
	REFUSED(leases[1].state = 7);
	REFUSED(leases[0].generation = 4);
	REFUSED(memset(leases[0].token, 0, BROKER_TOKEN_SIZE));
	REFUSED(leases[0].uid = UINT32_MAX);
	REFUSED(leases[2].image.n_planes = 5);
	REFUSED(leases[2].image.offsets[0] = 1 << 20);
	REFUSED(leases[0].image.width = 5);                        /* image data, no image */
	REFUSED(strcpy(bad_dev[1].name, "gpu0"));                  /* twice */
	REFUSED(strcpy(bad_dev[1].name, "gpu 1"));
	REFUSED(bad_dev[1].name[0] = 0);
	REFUSED(strcpy(bad_dev[1].pci, "00:04.0"));                /* not normalised */
	REFUSED(bad_dev[1].bar = 6);
	REFUSED(bad_dev[1].page_size = 3000);
	REFUSED(bad_dev[1].bar_size = PAGE + 1);
	REFUSED(t.next_lease_id = 0);
#undef REFUSED
}

static void test_names(void)
{
	char buf[FDSTORE_NAME_MAX];
	char long_name[80];

	CHECK_EQ(fdstore_name_device(buf, "gpu0", "device"), 0);
	CHECK(strcmp(buf, "bk-dev-gpu0-device") == 0);
	CHECK_EQ(fdstore_name_lease(buf, 42), 0);
	CHECK(strcmp(buf, "bk-lease-42") == 0);
	CHECK(fdstore_name_is_ours(buf));
	CHECK(fdstore_name_is_ours(FDSTORE_NAME_TABLE));
	CHECK(!fdstore_name_is_ours("barkeepd.socket"));
	CHECK(!fdstore_name_is_ours(NULL));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	CHECK_EQ(fdstore_name_device(buf, long_name, "container"), -ENAMETOOLONG);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_empty);
	RUN(test_sealed);
	RUN(test_corrupt_every_byte);
	RUN(test_unsealed_truncated_wrong_version);
	RUN(test_invalid_tables);
	RUN(test_names);
	RUN(test_writer);
	RUN(test_writer_device_slot_reused);
	return UNIT_END();
}

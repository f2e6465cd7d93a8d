/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for fdstore_table_deserialize(), the restart path's
 * reader of a lease table the previous process left in systemd's fd store.
 * The input becomes a memfd sealed against resizing, as the daemon's own.
 * A table that is accepted must hold what the validator promises (leases in
 * their BAR, no two overlapping on a device) and must survive being
 * written again and read back unchanged; one that is refused must say why.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/fdstore.h"
#include "tests/fuzz/fuzz.h"

static int memfd_of(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-table", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	FUZZ_ASSERT(fd >= 0);
	FUZZ_ASSERT(write(fd, data, size) == (ssize_t)size);
	FUZZ_ASSERT(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
	return fd;
}

static void check_invariants(const struct fdstore_table *t)
{
	for (size_t i = 0; i < t->n_leases; i++) {
		const struct fdstore_lease *l = &t->leases[i];
		FUZZ_ASSERT(l->device < t->n_devices);
		const struct fdstore_device *d = &t->devices[l->device];
		FUZZ_ASSERT(l->size > 0 && l->offset + l->size <= d->bar_size);
		for (size_t j = 0; j < i; j++) {
			const struct fdstore_lease *o = &t->leases[j];
			FUZZ_ASSERT(o->id != l->id);
			FUZZ_ASSERT(o->device != l->device || o->offset + o->size <= l->offset ||
				    l->offset + l->size <= o->offset);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fdstore_table *t = NULL, *again = NULL;
	char *why = NULL;

	int fd = memfd_of(data, size);
	int r = fdstore_table_deserialize(fd, &t, &why);
	close(fd);
	if (r < 0) {
		FUZZ_ASSERT(t == NULL);
		FUZZ_ASSERT(why != NULL || r == -ENOMEM);
		free(why);
		return 0;
	}
	FUZZ_ASSERT(why == NULL);
	check_invariants(t);

	fd = fdstore_table_serialize(t);
	FUZZ_ASSERT(fd >= 0);
	FUZZ_ASSERT(fdstore_table_deserialize(fd, &again, &why) == 0);
	close(fd);
	FUZZ_ASSERT(again->n_devices == t->n_devices && again->n_leases == t->n_leases);
	FUZZ_ASSERT(again->next_lease_id == t->next_lease_id);
	for (size_t i = 0; i < t->n_leases; i++) {
		const struct fdstore_lease *a = &t->leases[i], *b = &again->leases[i];
		/* Slots are not compared: serialize packs them. */
		FUZZ_ASSERT(a->id == b->id && a->state == b->state && a->device == b->device);
		FUZZ_ASSERT(a->flags == b->flags && a->uid == b->uid && a->generation == b->generation);
		FUZZ_ASSERT(a->offset == b->offset && a->size == b->size);
		FUZZ_ASSERT(memcmp(&a->image, &b->image, sizeof(a->image)) == 0);
		FUZZ_ASSERT(memcmp(a->token, b->token, sizeof(a->token)) == 0);
	}
	fdstore_table_free(again);
	fdstore_table_free(t);
	return 0;
}

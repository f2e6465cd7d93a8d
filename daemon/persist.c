// SPDX-License-Identifier: MIT
/* What barkeepd keeps in systemd's fd store while it runs (persist.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "daemon/broker.h"
#include "daemon/persist.h"

struct persist {
	struct fdstore_writer *table;
	unsigned max_fds;  /* FileDescriptorStoreMax= */
	unsigned n_stored; /* fds we gave systemd and did not take back */
	bool detached;
	bool table_published;
	unsigned n_unkept; /* leases without their fd since the last stored one (warned at the first) */
};

int persist_new(unsigned max_fds, struct fdstore_writer *writer, struct persist **ret)
{
	bool adopted = writer != NULL;
	struct persist *p = calloc(1, sizeof(*p));
	if (!p) {
		fdstore_writer_free(writer);
		return -ENOMEM;
	}
	p->max_fds = max_fds;
	p->table = writer;
	p->n_stored = adopted; /* a table taken up is in the store already */
	p->table_published = adopted;
	if (!p->table) {
		int r = fdstore_writer_new(&p->table);
		if (r < 0) {
			free(p);
			return r;
		}
	}
	*ret = p;
	return 0;
}

struct persist *persist_free(struct persist *p)
{
	if (!p)
		return NULL;
	fdstore_writer_free(p->table);
	free(p);
	return NULL;
}

void persist_detach(struct persist *p)
{
	if (p)
		p->detached = true;
}

static bool active(const struct persist *p)
{
	return p && !p->detached;
}

/* Gives systemd a copy of fd under name; false when there is no room or
 * systemd could not be told. */
static bool store(struct persist *p, int fd, const char *name)
{
	if (p->n_stored >= p->max_fds)
		return false;
	char msg[32 + FDSTORE_NAME_MAX];
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	if (sd_pid_notify_with_fds(0, 0, msg, &fd, 1) <= 0)
		return false;
	p->n_stored++;
	return true;
}

static void unstore(struct persist *p, const char *name)
{
	(void)sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", name);
	if (p->n_stored)
		p->n_stored--;
}

int persist_publish_table(struct persist *p)
{
	if (!active(p))
		return 0;
	if (p->table_published)
		return 0;
	p->table_published = true;
	if (!store(p, fdstore_writer_fd(p->table), FDSTORE_NAME_TABLE))
		return -ENOSPC;
	return 0;
}

static void fill_device(const struct device *d, struct fdstore_device *fd)
{
	*fd = (struct fdstore_device){ .bar = d->info.bar, .bar_size = d->info.bar_size,
				       .page_size = d->info.page_size, .generation = d->generation };
	snprintf(fd->name, sizeof(fd->name), "%s", d->cfg->name);
	snprintf(fd->pci, sizeof(fd->pci), "%s", d->cfg->pci);
}

int persist_device_added(struct persist *p, struct device *d)
{
	struct backend_stored fds[BACKEND_STORED_MAX];
	struct fdstore_device rec;
	char name[FDSTORE_NAME_MAX];

	d->persist = p;
	if (!active(p))
		return 0;
	size_t n = d->ops->stored_fds ? d->ops->stored_fds(d->backend, fds) : 0;
	if (n == 0 || p->n_stored + n > p->max_fds)
		return -ENOSPC;
	for (size_t i = 0; i < n; i++) {
		int r = fdstore_name_device(name, d->cfg->name, fds[i].kind);
		if (r < 0 || !store(p, fds[i].fd, name))
			return r < 0 ? r : -EIO;
		d->stored_kinds[d->n_stored_kinds++] = fds[i].kind;
	}
	fill_device(d, &rec);
	int slot = fdstore_writer_put_device(p->table, &rec);
	if (slot < 0)
		return slot;
	d->store_slot = slot;
	return 0;
}

void persist_device_adopted(struct persist *p, struct device *d, uint32_t slot)
{
	struct backend_stored fds[BACKEND_STORED_MAX];

	d->persist = p;
	d->store_slot = (int32_t)slot;
	size_t n = d->ops->stored_fds ? d->ops->stored_fds(d->backend, fds) : 0;
	for (size_t i = 0; i < n; i++)
		d->stored_kinds[d->n_stored_kinds++] = fds[i].kind;
	if (p)
		p->n_stored += (unsigned)n;
}

void persist_device_generation(struct persist *p, const struct device *d)
{
	if (active(p) && d->store_slot >= 0)
		fdstore_writer_set_generation(p->table, (uint32_t)d->store_slot, d->generation);
}

void persist_device_removed(struct persist *p, struct device *d)
{
	char name[FDSTORE_NAME_MAX];

	if (!active(p) || d->store_slot < 0)
		return;
	fdstore_writer_drop_device(p->table, (uint32_t)d->store_slot);
	d->store_slot = -1;
	/* What was stored, by name: the backend may be closed by now. */
	for (size_t i = 0; i < d->n_stored_kinds; i++)
		if (fdstore_name_device(name, d->cfg->name, d->stored_kinds[i]) == 0)
			unstore(p, name);
	d->n_stored_kinds = 0;
}

void persist_drop_device_slot(struct persist *p, uint32_t slot)
{
	if (active(p))
		fdstore_writer_drop_device(p->table, slot);
}

void persist_lease_added(struct persist *p, struct lease *l, uint64_t next_lease_id)
{
	struct device *d = l->device;
	char name[FDSTORE_NAME_MAX];

	l->store = WINDOW_STORE_NONE;
	l->store.lease_id = l->id;
	if (!active(p) || d->store_slot < 0)
		return;
	struct fdstore_lease rec = {
		.id = l->id, .device = (uint32_t)d->store_slot, .flags = l->flags,
		.uid = l->owner->creds.uid, .offset = l->offset, .size = l->size,
		.generation = l->generation, .image = l->image,
	};
	memcpy(rec.token, l->token, sizeof(rec.token));
	fdstore_writer_set_next_id(p->table, next_lease_id);
	/* The fd goes to systemd before the slot turns live: a crash between
	 * the two leaves an fd the table does not name, which the next process
	 * releases (the client never got the buffer), not a live slot whose
	 * buffer it cannot see. */
	int slot = fdstore_writer_stage_lease(p->table, &rec);
	if (slot < 0) {
		log_warning("Lease %llu is not in the lease table (%s): a restart will not know "
			    "its window", (unsigned long long)l->id, strerror(-slot));
		return;
	}
	bool stored = fdstore_name_lease(name, l->id) == 0 && store(p, l->fd, name);
	/* Live either way: without its fd (the store is full or refused it) a
	 * restart cannot give the lease back, but it keeps the window out of
	 * use, as the client still holds the buffer. */
	fdstore_writer_set_lease_state(p->table, (uint32_t)slot, l->id, FDSTORE_LEASE_LIVE);
	l->store.slot = slot;
	l->store.stored = stored;
	if (!stored && !p->n_unkept)
		log_warning("Lease %llu's buffer is not in the fd store (%u of %u fds used): after a "
			    "restart its holder cannot reclaim it, and its window stays out of use "
			    "(said once until a buffer fits again)",
			    (unsigned long long)l->id, p->n_stored, p->max_fds);
	if (stored && p->n_unkept)
		log_notice("Buffers fit in the fd store again; %u lease(s) made meanwhile are not "
			   "in it", p->n_unkept);
	p->n_unkept = stored ? 0 : p->n_unkept + 1;
}

void persist_lease_adopted(struct persist *p, const struct window_store *ws)
{
	if (p && ws->stored)
		p->n_stored++;
}

void persist_window_quarantined(struct persist *p, const struct window_store *ws)
{
	if (active(p) && ws->slot >= 0)
		fdstore_writer_set_lease_state(p->table, (uint32_t)ws->slot, ws->lease_id,
					       FDSTORE_LEASE_QUARANTINED);
}

void persist_lease_shared(struct persist *p, struct window_store *ws)
{
	char name[FDSTORE_NAME_MAX];

	if (!active(p))
		return;
	/* The table says so first, with one store: the holder's export leaves
	 * the daemon only after it, and the unstore below is asynchronous. */
	if (ws->slot >= 0)
		fdstore_writer_set_lease_state(p->table, (uint32_t)ws->slot, ws->lease_id, FDSTORE_LEASE_SHARED);
	if (ws->stored && fdstore_name_lease(name, ws->lease_id) == 0)
		unstore(p, name);
	ws->stored = false;
}

void persist_window_forget(struct persist *p, const struct window_store *ws)
{
	char name[FDSTORE_NAME_MAX];

	if (!active(p))
		return;
	/* The fd leaves the store before the slot frees: a crash between the
	 * two leaves a slot without its fd, which the next process keeps out
	 * of use, never an fd without its slot. */
	if (ws->stored && fdstore_name_lease(name, ws->lease_id) == 0)
		unstore(p, name);
	if (ws->slot >= 0)
		fdstore_writer_set_lease_state(p->table, (uint32_t)ws->slot, ws->lease_id, FDSTORE_LEASE_FREE);
}

unsigned persist_n_stored(const struct persist *p)
{
	return p ? p->n_stored : 0;
}

unsigned persist_max_fds(const struct persist *p)
{
	return p ? p->max_fds : 0;
}

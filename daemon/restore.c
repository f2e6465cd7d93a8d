// SPDX-License-Identifier: MIT
/* Taking up what the previous barkeepd stored (restore.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "common/vfio.h"
#include "daemon/broker-private.h"
#include "daemon/restore.h"

struct restore {
	struct fdstore_inherited inh;
	bool *used;                  /* per inherited entry: accounted for */
	struct fdstore_table *table; /* NULL: none, or refused */
	bool *device_taken;          /* per table device */
	struct persist *persist;
};

/* The inherited entry of that name not yet used: its index, or -1. */
static int find_entry(struct restore *rs, const char *name)
{
	for (size_t i = 0; i < rs->inh.n; i++)
		if (!rs->used[i] && strcmp(rs->inh.names[i], name) == 0)
			return (int)i;
	return -1;
}

/* Closes an entry here and in systemd's store. */
static void release_entry(struct restore *rs, size_t i)
{
	(void)sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", rs->inh.names[i]);
	rs->inh.fds[i] = safe_close(rs->inh.fds[i]);
	rs->used[i] = true;
}

/* Waits until systemd has closed its copies of what was released: a VFIO
 * group it still holds open keeps the device busy for a fresh open. */
static void wait_released(void)
{
	int r = sd_notify_barrier(0, 5 * 1000000ULL);
	if (r < 0)
		log_warning_errno(r, "Failed to wait for systemd to release the stored fds: %m");
}

/* Kept by whoever uses the fd now; the entry stays in the store. */
static int take_entry(struct restore *rs, size_t i)
{
	rs->used[i] = true;
	return TAKE_FD(rs->inh.fds[i]);
}

static void release_all(struct restore *rs)
{
	size_t n = 0;
	for (size_t i = 0; i < rs->inh.n; i++)
		if (!rs->used[i]) {
			release_entry(rs, i);
			n++;
		}
	if (n) {
		log_notice("Released %zu stored fd(s); buffers they kept alive are revoked", n);
		wait_released();
	}
}

static int read_table(struct restore *rs, unsigned max_fds)
{
	_cleanup_free_ char *why = NULL;
	struct fdstore_writer *writer = NULL;

	int i = find_entry(rs, FDSTORE_NAME_TABLE);
	if (i < 0) {
		if (rs->inh.n)
			log_warning("Refusing %zu stored fd(s) without a lease table; starting clean",
				    rs->inh.n);
		return 0;
	}
	int r = fdstore_table_deserialize(rs->inh.fds[i], &rs->table, &why);
	if (r < 0) {
		log_error("Refusing the stored lease table: %s; starting clean", why ? why : strerror(-r));
		return 0;
	}
	r = fdstore_writer_adopt(rs->inh.fds[i], rs->table, &writer);
	if (r < 0) {
		log_error_errno(r, "Failed to map the stored lease table: %m; starting clean");
		rs->table = fdstore_table_free(rs->table);
		return 0;
	}
	take_entry(rs, (size_t)i);
	rs->device_taken = calloc(rs->table->n_devices ? rs->table->n_devices : 1, sizeof(bool));
	if (!rs->device_taken) {
		fdstore_writer_free(writer);
		return -ENOMEM;
	}
	return persist_new(max_fds, writer, &rs->persist);
}

int restore_begin(struct fdstore_inherited *inh, unsigned max_fds, struct restore **ret)
{
	struct restore *rs = calloc(1, sizeof(*rs));
	if (!rs) {
		fdstore_inherited_drop(inh);
		return -ENOMEM;
	}
	rs->inh = *inh;
	*inh = (struct fdstore_inherited){ .socket_fd = -EBADF };
	rs->used = calloc(rs->inh.n ? rs->inh.n : 1, sizeof(bool));
	if (!rs->used) {
		restore_free(rs);
		return -ENOMEM;
	}
	int r = max_fds ? read_table(rs, max_fds) : 0;
	if (r < 0) {
		restore_free(rs);
		return r;
	}
	if (!rs->table) {
		/* Nothing to take up: whatever came is released before the
		 * devices are opened (a stored group fd keeps a device busy). */
		release_all(rs);
		if (max_fds && (r = persist_new(max_fds, NULL, &rs->persist)) < 0) {
			restore_free(rs);
			return r;
		}
	}
	*ret = rs;
	return 0;
}

static const struct fdstore_device *table_device(struct restore *rs, const char *name, size_t *ret_i)
{
	for (size_t i = 0; rs->table && i < rs->table->n_devices; i++)
		if (strcmp(rs->table->devices[i].name, name) == 0) {
			*ret_i = i;
			return &rs->table->devices[i];
		}
	return NULL;
}

/* The entries of a device, by the kinds any backend stores. */
static size_t device_entries(struct restore *rs, const char *device, int idx[BACKEND_STORED_MAX + 1],
			     struct backend_stored fds[BACKEND_STORED_MAX + 1])
{
	static const char *const kinds[] = { "container", "group", "device", "memory" };
	char name[FDSTORE_NAME_MAX];
	size_t n = 0;

	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		if (fdstore_name_device(name, device, kinds[k]) < 0)
			continue;
		int i = find_entry(rs, name);
		if (i < 0)
			continue;
		idx[n] = i;
		fds[n++] = (struct backend_stored){ kinds[k], rs->inh.fds[i] };
	}
	return n;
}

int restore_adopt_device(const struct config_device *cfg, uint32_t id, struct device **ret,
			 void *userdata)
{
	struct restore *rs = userdata;
	struct backend_stored fds[BACKEND_STORED_MAX + 1];
	int idx[BACKEND_STORED_MAX + 1];
	struct error_info err = {};
	size_t ti;

	const struct fdstore_device *rec = table_device(rs, cfg->name, &ti);
	if (!rec)
		return 0;
	size_t n = device_entries(rs, cfg->name, idx, fds);
	struct device *d = NULL;
	int r = n ? device_open(cfg, id, fds, n, &d, &err) : -ENOENT;
	if (r == 0 && (d->info.bar != rec->bar || d->info.bar_size != rec->bar_size ||
		       d->info.page_size != rec->page_size)) {
		error_set(&err, EXDEV, "device %s: BAR%u of %llu bytes now, the table says BAR%u of %llu",
			  cfg->name, d->info.bar, (unsigned long long)d->info.bar_size, rec->bar,
			  (unsigned long long)rec->bar_size);
		for (size_t i = 0; i < n; i++) /* device_free closes them */
			take_entry(rs, (size_t)idx[i]);
		d = device_free(d);
		r = -EXDEV;
	}
	if (r < 0) {
		if (n == 0)
			log_error("Failed to take device %s up from the fd store: its fds were not stored; "
				  "its leases end", cfg->name);
		else
			log_error("Failed to take device %s up from the fd store: %s; its leases end",
				  cfg->name, err.text);
		for (size_t i = 0; i < n; i++)
			release_entry(rs, (size_t)idx[i]);
		wait_released();
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		take_entry(rs, (size_t)idx[i]);
	d->generation = rec->generation;
	persist_device_adopted(rs->persist, d, rec->slot);
	rs->device_taken[ti] = true;
	*ret = d;
	return 1;
}

static struct device *broker_device_named(struct broker *b, const char *name)
{
	for (size_t i = 0; i < b->n_devices; i++)
		if (strcmp(b->devices[i]->cfg->name, name) == 0)
			return b->devices[i];
	return NULL;
}

struct counts {
	size_t orphans, quarantined, shared, lost, dropped;
};

static void restore_lease(struct restore *rs, struct broker *b, const struct fdstore_lease *l,
			  struct counts *n)
{
	const struct fdstore_device *rec = &rs->table->devices[l->device];
	struct window_store ws = { .lease_id = l->id, .slot = (int32_t)l->slot };
	struct device *d = rs->device_taken[l->device] ? broker_device_named(b, rec->name) : NULL;
	char name[FDSTORE_NAME_MAX];
	uint64_t size = 0;
	int r;

	(void)fdstore_name_lease(name, l->id);
	int i = find_entry(rs, name);
	if (!d) {
		/* Its device is not back: the buffer died with the device fds. */
		if (i >= 0)
			release_entry(rs, (size_t)i);
		persist_window_forget(rs->persist, &ws);
		n->dropped++;
		return;
	}
	if (l->state == FDSTORE_LEASE_SHARED) {
		/* Other holders' exports may be open and nothing here counts
		 * them: out of use for as long as this table lives. */
		if (i >= 0)
			release_entry(rs, (size_t)i);
		r = device_window_restore(d, l->offset, l->size, -EBADF, &ws);
		if (r < 0)
			log_error_errno(r, "Failed to keep shared window %#llx+%llu of device %s out of use: %m",
					(unsigned long long)l->offset, (unsigned long long)l->size,
					rec->name);
		else
			log_info("device %s: lease %llu's window %#llx+%llu was shared; it stays out of use",
				 rec->name, (unsigned long long)l->id, (unsigned long long)l->offset,
				 (unsigned long long)l->size);
		n->shared++;
		return;
	}
	if (i >= 0 && (dmabuf_query(rs->inh.fds[i], &size, NULL, NULL, 0) < 0 || size != l->size)) {
		log_error("Stored fd %s is not the %llu-byte buffer the table says; releasing it",
			  name, (unsigned long long)l->size);
		release_entry(rs, (size_t)i);
		i = -1;
	}
	if (i < 0) {
		/* The buffer may be open somewhere and the daemon cannot see it:
		 * keep the window out of use for as long as this table lives. */
		r = device_window_restore(d, l->offset, l->size, -EBADF, &ws);
		log_warning("device %s: lease %llu's buffer is not in the fd store; its window "
			    "%#llx+%llu stays out of use", rec->name, (unsigned long long)l->id,
			    (unsigned long long)l->offset, (unsigned long long)l->size);
		n->lost++;
		return;
	}
	int fd = take_entry(rs, (size_t)i);
	ws.stored = true;
	persist_lease_adopted(rs->persist, &ws);
	if (l->state == FDSTORE_LEASE_LIVE) {
		r = broker_adopt_lease(b, d, l, fd, &ws);
		n->orphans += r == 0;
	} else {
		r = device_window_restore(d, l->offset, l->size, fd, &ws);
		n->quarantined += r == 0;
	}
	if (r < 0)
		log_error_errno(r, "Failed to take lease %llu on device %s back (%#llx+%llu): %m",
				(unsigned long long)l->id, rec->name, (unsigned long long)l->offset,
				(unsigned long long)l->size);
}

void restore_finish(struct restore *rs, struct broker *b)
{
	struct counts n = {};
	int r;

	for (size_t i = 0; i < b->n_devices; i++) {
		struct device *d = b->devices[i];
		if (!rs->persist || d->store_slot >= 0)
			continue;
		r = persist_device_added(rs->persist, d);
		if (r < 0)
			log_warning_errno(r, "device %s: not kept in the fd store (%m): a restart will revoke its buffers",
					  device_name(d));
	}
	if (rs->table) {
		for (size_t i = 0; i < rs->table->n_devices; i++)
			if (!rs->device_taken[i]) {
				log_notice("device %s from the stored table is not configured or could not be taken up; its leases end",
					   rs->table->devices[i].name);
				persist_drop_device_slot(rs->persist, rs->table->devices[i].slot);
			}
		/* Ids never repeat within a table's life: a stored fd's name
		 * (bk-lease-ID) must not meet a new lease's. */
		b->next_lease_id = MAX(b->next_lease_id, rs->table->next_lease_id);
		for (size_t i = 0; i < rs->table->n_leases; i++)
			restore_lease(rs, b, &rs->table->leases[i], &n);
		log_notice("Restored from the fd store: %zu device(s); %zu lease(s) wait for their holders to reclaim them, "
			   "%zu released window(s) back in quarantine, %zu shared window(s) kept out of use, "
			   "%zu lost, %zu ended with their device",
			   b->n_devices, n.orphans, n.quarantined, n.shared, n.lost, n.dropped);
	}
	size_t leftover = 0;
	for (size_t i = 0; i < rs->inh.n; i++)
		if (!rs->used[i]) {
			release_entry(rs, i);
			leftover++;
		}
	if (leftover)
		log_info("Released %zu stored fd(s) the table does not account for (windows freed just before the restart)",
			 leftover);
	r = persist_publish_table(rs->persist);
	if (r < 0)
		log_warning_errno(r, "Failed to put the lease table into the fd store (%m): a restart will revoke every buffer");
}

struct persist *restore_take_persist(struct restore *rs)
{
	struct persist *p = rs->persist;
	rs->persist = NULL;
	return p;
}

struct restore *restore_free(struct restore *rs)
{
	if (!rs)
		return NULL;
	for (size_t i = 0; i < rs->inh.n; i++) {
		safe_close(rs->inh.fds[i]);
		free(rs->inh.names[i]);
	}
	free(rs->inh.fds);
	free(rs->inh.names);
	free(rs->used);
	free(rs->device_taken);
	fdstore_table_free(rs->table);
	persist_free(rs->persist);
	free(rs);
	return NULL;
}

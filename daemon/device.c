// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "common/vfio.h"
#include "daemon/allocator.h"
#include "daemon/device.h"
#include "daemon/persist.h"
#include "daemon/fdinfo.h"
#include "daemon/idle.h"
#include "daemon/scrub.h"

/* A released window still referenced by some dma-buf outside the daemon. */
struct window {
	struct list link;
	uint64_t offset, size;
	struct window_store store; /* fds[0] may have a copy in systemd's fd store */
	size_t n_fds;
	int fds[]; /* the daemon's references to each export, to read the files' counts */
};

const char *device_name(const struct device *d)
{
	return d->cfg->name;
}

const char *device_state_to_string(enum device_state s)
{
	switch (s) {
	case DEVICE_READY: return "ready";
	case DEVICE_PAUSED: return "paused";
	case DEVICE_GONE: return "gone";
	}
	return "unknown";
}

struct device *device_new(const struct config_device *cfg, uint32_t id)
{
	struct device *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->id = id;
	d->cfg = cfg;
	d->state = DEVICE_READY;
	d->generation = 1;
	d->error_fd = -EBADF;
	list_init(&d->leases);
	list_init(&d->quarantine);
	list_init(&d->orphans);
	d->store_slot = -1;
	return d;
}

int device_open(const struct config_device *cfg, uint32_t id, const struct backend_stored *fds,
		size_t n_fds, struct device **ret, struct error_info *err)
{
	char size_a[CONFIG_SIZE_STR_MAX], size_b[CONFIG_SIZE_STR_MAX];
	int r;

	struct device *d = device_new(cfg, id);
	if (!d)
		return error_set(err, ENOMEM, "out of memory");
	d->ops = backend_find(config_backend_to_string(cfg->backend));
	if (!d->ops) {
		r = error_set(err, EOPNOTSUPP, "device %s: backend %s is not available in this build",
			      cfg->name, config_backend_to_string(cfg->backend));
		goto fail;
	}
	if (fds && !d->ops->adopt)
		r = -EOPNOTSUPP;
	else
		r = fds ? d->ops->adopt(cfg, fds, n_fds, &d->backend, &d->info)
			: d->ops->open(cfg, &d->backend, &d->info);
	if (r < 0) {
		error_set(err, -r, "device %s (%s): cannot %s through %s: %s", cfg->name,
			  cfg->pci[0] ? cfg->pci : "system memory",
			  fds ? "take it up again from the fd store" : "open it", d->ops->name,
			  strerror(-r));
		goto fail;
	}
	r = allocator_new(d->info.bar_size, d->info.page_size, &d->alloc);
	if (r < 0) {
		error_set(err, -r, "device %s: BAR%u of %s bytes cannot be managed: %s", cfg->name,
			  d->info.bar, config_format_size(d->info.bar_size, size_a), strerror(-r));
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_reserved; i++) {
		const struct config_range *rg = &cfg->reserved[i];
		r = allocator_reserve(d->alloc, rg->offset, rg->length);
		if (r < 0) {
			error_set(err, -r, "device %s: reserved range at line %u (%#llx+%s) does not fit BAR%u of %s",
				  cfg->name, rg->line, (unsigned long long)rg->offset,
				  config_format_size(rg->length, size_a), d->info.bar,
				  config_format_size(d->info.bar_size, size_b));
			goto fail;
		}
	}
	*ret = d;
	return 0;
fail:
	device_free(d);
	return r;
}

static struct window *window_free(struct window *w)
{
	if (!w)
		return NULL;
	list_remove(&w->link);
	for (size_t i = 0; i < w->n_fds; i++)
		safe_close(w->fds[i]);
	free(w);
	return NULL;
}

struct device *device_free(struct device *d)
{
	struct window *w, *tmp;

	if (!d)
		return NULL;
	scrub_stop(d); /* before the backend goes */
	list_for_each_safe(w, tmp, &d->quarantine, link)
		window_free(w);
	idle_pool_free(d->idle);
	allocator_free(d->alloc);
	if (d->ops && d->backend)
		d->ops->close(d->backend);
	free(d);
	return NULL;
}

int device_window_new(struct device *d, uint64_t size, uint64_t align, int open_flags,
		      uint64_t *ret_offset, int *ret_fd, struct error_info *err)
{
	char want[CONFIG_SIZE_STR_MAX], free_b[CONFIG_SIZE_STR_MAX], largest[CONFIG_SIZE_STR_MAX];
	uint64_t offset;
	int r, fd;

	if (d->info.max_export && ALIGN_UP(size, d->info.page_size) > d->info.max_export)
		return error_set(err, E2BIG, "device %s: the kernel exports at most %s at once "
				 "(%s); asked for %s", device_name(d),
				 config_format_size(d->info.max_export, free_b),
				 d->ops->kind == BACKEND_KIND_SYSMEM ?
				 "udmabuf's size_limit_mb" : "a driver limit",
				 config_format_size(size, want));
	if ((open_flags & O_ACCMODE) == O_RDWR && d->state == DEVICE_READY) {
		fd = idle_pool_take(d->idle, d->alloc, ALIGN_UP(size, d->info.page_size), align,
				    &offset);
		if (fd >= 0) { /* no export: a buffer nobody holds, on a zeroed window */
			*ret_offset = offset;
			*ret_fd = fd;
			return 0;
		}
	}
	r = allocator_alloc(d->alloc, size, align, &offset);
	if (r == -ENOSPC && device_sweep(d) > 0)
		r = allocator_alloc(d->alloc, size, align, &offset);
	/* Only when nothing else fits does a request wait for the zeroing. */
	uint64_t zeroed = 0;
	if (r == -ENOSPC && d->dirty_bytes && (zeroed = scrub_wait(d)) > 0)
		r = allocator_alloc(d->alloc, size, align, &offset);
	if (r == -ENOSPC)
		return error_set(err, ENOSPC,
				 "device %s has %s free (largest free window %s%s%s); asked for %s",
				 device_name(d), config_format_size(allocator_free_bytes(d->alloc), free_b),
				 config_format_size(allocator_largest_free(d->alloc), largest),
				 zeroed ? ", after waiting for released windows to be zeroed" : "",
				 d->quarantined_bytes ? ", more waits for released buffers to be closed" : "",
				 config_format_size(size, want));
	if (r < 0)
		return error_set(err, -r, "device %s: cannot carve a window of %s: %s",
				 device_name(d), config_format_size(size, want), strerror(-r));

	size = ALIGN_UP(size, d->info.page_size);
	r = device_window_export(d, offset, size, open_flags, &fd, err);
	if (r < 0) {
		allocator_release(d->alloc, offset, size);
		return r;
	}
	*ret_offset = offset;
	*ret_fd = fd;
	return 0;
}

int device_window_export(struct device *d, uint64_t offset, uint64_t size, int open_flags,
			 int *ret_fd, struct error_info *err)
{
	char want[CONFIG_SIZE_STR_MAX];
	int fd = d->ops->export(d->backend, offset, size, open_flags);

	if (fd < 0)
		return error_set(err, -fd, "device %s: the kernel refused to export %s at %#llx%s: %s",
				 device_name(d), config_format_size(size, want),
				 (unsigned long long)offset,
				 (open_flags & O_ACCMODE) == O_RDONLY ? " read-only" : "", strerror(-fd));
	*ret_fd = fd;
	return 0;
}

/* True when fd (and systemd's copy of it, when stored) is the only
 * reference to its dma-buf. cache: the loop's (NULL on the worker). */
static bool window_unreferenced(struct fdinfo_cache *cache, int fd, bool stored)
{
	long count = 0;
	return fdinfo_dmabuf_count(cache, fd, &count) == 0 && count <= 1 + (long)stored;
}

/* Revokes the buffer for good where the kernel can (DEVICE_FEATURE_REVOKE):
 * then no copy of fd reaches the window any more, and it can be reused at
 * once instead of waiting in quarantine for every copy to be closed. */
static bool window_revoke(struct device *d, int fd)
{
	if (!(d->info.features & DEVICE_FEATURE_REVOKE) || !d->ops->revoke)
		return false;
	int r = d->ops->revoke(d->backend, fd);
	return r == 0 || r == -EBADFD; /* EBADFD: already revoked for good */
}

bool device_buffer_done(struct device *d, int fd)
{
	return window_unreferenced(d->fdinfo, fd, false) ||
	       (d->state == DEVICE_READY && window_revoke(d, fd));
}

static bool window_done(struct device *d, struct fdinfo_cache *cache, const int *fds, size_t n,
			const struct window_store *ws)
{
	for (size_t i = 0; i < n; i++)
		if (!window_unreferenced(cache, fds[i], i == 0 && ws->stored) &&
		    !window_revoke(d, fds[i]))
			return false;
	return true;
}

bool device_window_done(struct device *d, const int *fds, size_t n, const struct window_store *ws)
{
	return window_done(d, NULL, fds, n, ws);
}

/* The window's buffers are gone: zeroed in place, then free again. Returns
 * false when it stays out of use. */
static bool window_reclaim(struct device *d, uint64_t offset, uint64_t size,
			   const struct window_store *ws)
{
	persist_window_forget(d->persist, ws);
	/* A window that cannot be scrubbed stays out of use: never hand one
	 * tenant's bytes to the next. */
	if (d->ops->scrub(d->backend, offset, size) < 0)
		return false;
	allocator_release(d->alloc, offset, size);
	return true;
}

static void close_all(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		safe_close(fds[i]);
}

int device_window_release(struct device *d, uint64_t offset, uint64_t size, int fd,
			  const struct window_store *ws)
{
	return device_window_release_fds(d, offset, size, &fd, 1, ws, false);
}

static void window_quarantine(struct device *d, uint64_t offset, uint64_t size, const int *fds,
			      size_t n, const struct window_store *ws)
{
	struct window *w = malloc(sizeof(*w) + n * sizeof(int));
	if (!w) {
		/* Without memory to track it, leak the window rather than reuse
		 * it; its stored copy stays, so the next process does the same. */
		close_all(fds, n);
		return;
	}
	*w = (struct window){ .offset = offset, .size = size, .store = *ws, .n_fds = n };
	if (n) /* fds may be NULL then: a window whose buffers all ended */
		memcpy(w->fds, fds, n * sizeof(int));
	list_insert_tail(&d->quarantine, &w->link);
	d->quarantined_bytes += size;
}

/* Small windows nobody else holds are settled at once, on the loop: a
 * reference count from fdinfo and a few KiB of zeroes cost less than the
 * two thread switches of the worker, and they must never pile up behind a
 * busy worker with an fd each. */
#define WINDOW_INLINE_MAX (16u * 1024u)

static bool window_small_and_unreferenced(const struct device *d, uint64_t size, const int *fds,
					  size_t n, const struct window_store *ws)
{
	if (d->state != DEVICE_READY || size > WINDOW_INLINE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!window_unreferenced(d->fdinfo, fds[i], i == 0 && ws->stored))
			return false;
	return true;
}

int device_window_release_fds(struct device *d, uint64_t offset, uint64_t size, const int *fds,
			      size_t n, const struct window_store *ws, bool reusable)
{
	if (d->state == DEVICE_GONE) {
		persist_window_forget(d->persist, ws);
		close_all(fds, n);
		return 0;
	}
	/* Until it is zeroed, a restart must not lend it: out of use in the table. */
	persist_window_quarantined(d->persist, ws);
	if (window_small_and_unreferenced(d, size, fds, n, ws)) {
		if (window_reclaim(d, offset, size, ws) && reusable && n == 1) {
			idle_pool_put(d->idle, offset, size, fds[0]);
			return 1;
		}
		close_all(fds, n);
		return 1;
	}
	/* Larger ones, and any still referenced (whose revoke waits for its
	 * importers), are the worker's. */
	if (d->state == DEVICE_READY && scrub_queue(d, offset, size, fds, n, ws) == 0)
		return 0;
	if (d->state == DEVICE_READY && window_done(d, d->fdinfo, fds, n, ws)) {
		close_all(fds, n);
		window_reclaim(d, offset, size, ws);
		return 1;
	}
	window_quarantine(d, offset, size, fds, n, ws);
	return 0;
}

bool device_window_settled(struct device *d, uint64_t offset, uint64_t size, const int *fds,
			   size_t n, const struct window_store *ws, int result)
{
	if (result == -EBUSY && d->state != DEVICE_GONE) {
		window_quarantine(d, offset, size, fds, n, ws);
		return false;
	}
	persist_window_forget(d->persist, ws);
	close_all(fds, n);
	/* One that could not be zeroed stays out of use; a gone device lends nothing. */
	if (result < 0 || d->state == DEVICE_GONE)
		return false;
	allocator_release(d->alloc, offset, size);
	return true;
}

int device_window_restore(struct device *d, uint64_t offset, uint64_t size, int fd,
			  const struct window_store *ws)
{
	int r = allocator_claim(d->alloc, offset, size);
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	if (fd >= 0)
		window_quarantine(d, offset, size, &fd, 1, ws);
	return 0;
}

void device_drop_quarantine(struct device *d)
{
	struct window *w, *tmp;

	list_for_each_safe(w, tmp, &d->quarantine, link) {
		persist_window_forget(d->persist, &w->store);
		d->quarantined_bytes -= w->size;
		window_free(w);
	}
	idle_pool_drop(d->idle);
	scrub_drop(d);
}

unsigned device_sweep(struct device *d)
{
	struct window *w, *tmp;
	unsigned n = 0;

	if (d->state != DEVICE_READY)
		return 0;
	list_for_each_safe(w, tmp, &d->quarantine, link) {
		if (!window_done(d, d->fdinfo, w->fds, w->n_fds, &w->store))
			continue;
		d->quarantined_bytes -= w->size;
		close_all(w->fds, w->n_fds);
		w->n_fds = 0;
		if (scrub_queue(d, w->offset, w->size, NULL, 0, &w->store) < 0)
			window_reclaim(d, w->offset, w->size, &w->store);
		window_free(w);
		n++;
	}
	return n;
}

int device_reset(struct device *d, const char **ret_method)
{
	int r = d->ops->reset(d->backend);
	if (r != -EOPNOTSUPP) {
		*ret_method = "device reset";
		return r;
	}
	r = d->ops->bus_reset ? d->ops->bus_reset(d->backend) : -EOPNOTSUPP;
	if (r != -EOPNOTSUPP) {
		*ret_method = "slot/bus reset";
		return r;
	}
	/* No reset method (ivshmem in the VM, some GPUs): revoke through memory
	 * decode, which is what a reset does to the buffers. */
	*ret_method = "memory-disable fallback (no device or bus reset)";
	r = d->ops->set_memory(d->backend, false);
	if (r < 0)
		return r;
	return d->ops->set_memory(d->backend, true);
}

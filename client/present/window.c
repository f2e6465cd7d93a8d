// SPDX-License-Identifier: MIT
/* barkeep-present's Wayland side (window.h). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <drm_fourcc.h>
#include <wayland-client.h>

#include "client/lib/barkeep.h"
#include "client/present/window.h"
#include "common/macro.h"
#include "linux-dmabuf-unstable-v1-client-protocol.h"
#include "xdg-shell-client-protocol.h"

struct window {
	struct wl_display *display;
	struct wl_registry *registry;
	struct wl_compositor *compositor;
	struct xdg_wm_base *wm_base;
	struct zwp_linux_dmabuf_v1 *dmabuf;
	struct wl_shm *shm;
	struct wl_surface *surface;
	struct xdg_surface *xdg_surface;
	struct xdg_toplevel *toplevel;
	struct wl_buffer *buffer; /* the imported lease, shown or waiting for a configure */
	struct wl_buffer *placeholder; /* grey wl_shm buffer shown while paused */
	int32_t width, height;    /* of the last lease shown */
	struct wl_callback *frame;
	bool xrgb_linear;         /* the compositor offered XRGB8888 with the LINEAR modifier */
	bool configured;          /* the toplevel may show a buffer */
	bool attached;            /* buffer is attached and committed */
	bool closed;
	bool import_failed;
	void (*presented)(void *userdata);
	void *userdata;
	char error[256];
};

_printf_(3, 4) static int window_fail(struct window *w, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
	return r;
}

/* The connection is dead (a protocol error, or the compositor went away). */
static int connection_broke(struct window *w)
{
	int err = wl_display_get_error(w->display) ?: EPIPE;
	return window_fail(w, -err, "the Wayland connection broke: %s", strerror(err));
}

static void dmabuf_format(void *data, struct zwp_linux_dmabuf_v1 *d, uint32_t format)
{
}

static void dmabuf_modifier(void *data, struct zwp_linux_dmabuf_v1 *d, uint32_t format,
			    uint32_t mod_hi, uint32_t mod_lo)
{
	struct window *w = data;

	if (format == DRM_FORMAT_XRGB8888 &&
	    (((uint64_t)mod_hi << 32) | mod_lo) == DRM_FORMAT_MOD_LINEAR)
		w->xrgb_linear = true;
}

static const struct zwp_linux_dmabuf_v1_listener dmabuf_listener = {
	.format = dmabuf_format,
	.modifier = dmabuf_modifier,
};

static void wm_base_ping(void *data, struct xdg_wm_base *b, uint32_t serial)
{
	xdg_wm_base_pong(b, serial);
}

static const struct xdg_wm_base_listener wm_base_listener = { .ping = wm_base_ping };

static void registry_global(void *data, struct wl_registry *reg, uint32_t name,
			    const char *iface, uint32_t version)
{
	struct window *w = data;

	if (strcmp(iface, wl_compositor_interface.name) == 0 && !w->compositor) {
		w->compositor = wl_registry_bind(reg, name, &wl_compositor_interface, 1);
	} else if (strcmp(iface, wl_shm_interface.name) == 0 && !w->shm) {
		w->shm = wl_registry_bind(reg, name, &wl_shm_interface, 1);
	} else if (strcmp(iface, xdg_wm_base_interface.name) == 0 && !w->wm_base) {
		w->wm_base = wl_registry_bind(reg, name, &xdg_wm_base_interface, 1);
		xdg_wm_base_add_listener(w->wm_base, &wm_base_listener, w);
	} else if (strcmp(iface, zwp_linux_dmabuf_v1_interface.name) == 0 && version >= 3 &&
		   !w->dmabuf) {
		/* v3 is the last version that lists modifiers as events; v4's
		 * feedback objects say the same at more length. */
		w->dmabuf = wl_registry_bind(reg, name, &zwp_linux_dmabuf_v1_interface, 3);
		zwp_linux_dmabuf_v1_add_listener(w->dmabuf, &dmabuf_listener, w);
	}
}

static void registry_global_remove(void *data, struct wl_registry *reg, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = {
	.global = registry_global,
	.global_remove = registry_global_remove,
};

static void attach_and_commit(struct window *w);

static void xdg_surface_configure(void *data, struct xdg_surface *s, uint32_t serial)
{
	struct window *w = data;

	xdg_surface_ack_configure(s, serial);
	w->configured = true;
	if (w->buffer && !w->attached)
		attach_and_commit(w);
}

static const struct xdg_surface_listener xdg_surface_listener = {
	.configure = xdg_surface_configure,
};

static void toplevel_configure(void *data, struct xdg_toplevel *t, int32_t width, int32_t height,
			       struct wl_array *states)
{
}

static void toplevel_close(void *data, struct xdg_toplevel *t)
{
	struct window *w = data;
	w->closed = true;
}

static const struct xdg_toplevel_listener toplevel_listener = {
	.configure = toplevel_configure,
	.close = toplevel_close,
};

static void frame_done(void *data, struct wl_callback *cb, uint32_t time)
{
	struct window *w = data;

	wl_callback_destroy(cb);
	w->frame = NULL;
	if (w->presented)
		w->presented(w->userdata);
}

static const struct wl_callback_listener frame_listener = { .done = frame_done };

static void attach_and_commit(struct window *w)
{
	w->frame = wl_surface_frame(w->surface);
	wl_callback_add_listener(w->frame, &frame_listener, w);
	wl_surface_attach(w->surface, w->buffer, 0, 0);
	wl_surface_damage(w->surface, 0, 0, INT32_MAX, INT32_MAX);
	wl_surface_commit(w->surface);
	w->attached = true;
}

int window_open(const char *title, struct window **ret)
{
	struct window *w = calloc(1, sizeof(*w));
	const char *name = getenv("WAYLAND_DISPLAY");
	int r;

	if (!w)
		return -ENOMEM;
	*ret = w; /* window_error() works on failure; the caller closes it */
	w->display = wl_display_connect(NULL);
	if (!w->display)
		return window_fail(w, -errno ?: -ENOENT,
				   "cannot connect to the Wayland compositor %s (is it running, and "
				   "XDG_RUNTIME_DIR set?)", name ? name : "wayland-0");
	w->registry = wl_display_get_registry(w->display);
	wl_registry_add_listener(w->registry, &registry_listener, w);
	/* Two roundtrips: the globals, then the events of what was bound. */
	if (wl_display_roundtrip(w->display) < 0 || wl_display_roundtrip(w->display) < 0)
		return window_fail(w, -errno ?: -EPROTO, "the compositor's registry could not be read");
	if (!w->compositor || !w->wm_base || !w->shm)
		return window_fail(w, -EOPNOTSUPP, "the compositor offers no %s",
				   !w->compositor ? "wl_compositor" :
				   !w->wm_base ? "xdg_wm_base (xdg-shell)" : "wl_shm");
	if (!w->dmabuf)
		return window_fail(w, -EOPNOTSUPP,
				   "the compositor offers no zwp_linux_dmabuf_v1 of version 3 or "
				   "later (a software renderer such as pixman imports no dma-bufs)");
	if (!w->xrgb_linear)
		return window_fail(w, -EOPNOTSUPP,
				   "the compositor does not import XRGB8888 dma-bufs with the "
				   "LINEAR modifier");
	w->surface = wl_compositor_create_surface(w->compositor);
	w->xdg_surface = xdg_wm_base_get_xdg_surface(w->wm_base, w->surface);
	xdg_surface_add_listener(w->xdg_surface, &xdg_surface_listener, w);
	w->toplevel = xdg_surface_get_toplevel(w->xdg_surface);
	xdg_toplevel_add_listener(w->toplevel, &toplevel_listener, w);
	xdg_toplevel_set_title(w->toplevel, title);
	xdg_toplevel_set_app_id(w->toplevel, "barkeep-present");
	wl_surface_commit(w->surface); /* the initial commit: the compositor configures */
	r = wl_display_flush(w->display);
	if (r < 0)
		return window_fail(w, -errno, "the compositor connection failed: %s", strerror(errno));
	return 0;
}

static void destroy_buffer(struct window *w)
{
	if (w->frame)
		wl_callback_destroy(w->frame);
	w->frame = NULL;
	if (w->buffer)
		wl_buffer_destroy(w->buffer);
	w->buffer = NULL;
	w->attached = false;
}

struct window *window_close(struct window *w)
{
	if (!w)
		return NULL;
	destroy_buffer(w);
	if (w->placeholder)
		wl_buffer_destroy(w->placeholder);
	if (w->toplevel)
		xdg_toplevel_destroy(w->toplevel);
	if (w->xdg_surface)
		xdg_surface_destroy(w->xdg_surface);
	if (w->surface)
		wl_surface_destroy(w->surface);
	if (w->dmabuf)
		zwp_linux_dmabuf_v1_destroy(w->dmabuf);
	if (w->wm_base)
		xdg_wm_base_destroy(w->wm_base);
	if (w->shm)
		wl_shm_destroy(w->shm);
	if (w->compositor)
		wl_compositor_destroy(w->compositor);
	if (w->registry)
		wl_registry_destroy(w->registry);
	if (w->display)
		wl_display_disconnect(w->display);
	free(w);
	return NULL;
}

int window_get_fd(struct window *w)
{
	return wl_display_get_fd(w->display);
}

int window_prepare(struct window *w)
{
	while (wl_display_prepare_read(w->display) != 0)
		if (wl_display_dispatch_pending(w->display) < 0)
			return connection_broke(w);
	/* EAGAIN: the socket is full; poll() says when it drains. */
	if (wl_display_flush(w->display) < 0 && errno != EAGAIN) {
		wl_display_cancel_read(w->display);
		return connection_broke(w);
	}
	return 0;
}

int window_dispatch(struct window *w, short revents)
{
	if (revents & (POLLIN | POLLERR | POLLHUP)) {
		if (wl_display_read_events(w->display) < 0)
			return connection_broke(w);
	} else {
		wl_display_cancel_read(w->display);
	}
	if (wl_display_dispatch_pending(w->display) < 0)
		return connection_broke(w);
	return 0;
}

static void params_created(void *data, struct zwp_linux_buffer_params_v1 *p, struct wl_buffer *b)
{
}

static void params_failed(void *data, struct zwp_linux_buffer_params_v1 *p)
{
	struct window *w = data;
	w->import_failed = true;
}

static const struct zwp_linux_buffer_params_v1_listener params_listener = {
	.created = params_created,
	.failed = params_failed,
};

int window_show(struct window *w, const struct barkeep_lease *lease,
		void (*presented)(void *userdata), void *userdata)
{
	const struct barkeep_image *im = &lease->image;

	if (w->buffer)
		return window_fail(w, -EBUSY, "a buffer is already shown");
	if (!lease->has_image || im->n_planes != 1 || im->fourcc != DRM_FORMAT_XRGB8888 ||
	    im->modifier != DRM_FORMAT_MOD_LINEAR)
		return window_fail(w, -EINVAL, "lease %" PRIu64 " is not a one-plane XRGB8888 "
				   "LINEAR image", lease->id);
	struct zwp_linux_buffer_params_v1 *params = zwp_linux_dmabuf_v1_create_params(w->dmabuf);
	zwp_linux_buffer_params_v1_add_listener(params, &params_listener, w);
	zwp_linux_buffer_params_v1_add(params, lease->fd, 0, im->offsets[0], im->strides[0],
				       (uint32_t)(im->modifier >> 32), (uint32_t)im->modifier);
	w->import_failed = false;
	w->buffer = zwp_linux_buffer_params_v1_create_immed(params, (int32_t)im->width,
							    (int32_t)im->height, im->fourcc, 0);
	w->presented = presented;
	w->userdata = userdata;
	/* A failed import is either a "failed" event or a protocol error:
	 * a roundtrip sees both before anything is drawn. */
	int r = wl_display_roundtrip(w->display);
	zwp_linux_buffer_params_v1_destroy(params);
	if (r < 0 || w->import_failed) {
		destroy_buffer(w);
		return window_fail(w, -EIO, "the compositor refused to import lease %" PRIu64
				   " (%" PRIu32 "x%" PRIu32 " XRGB8888 LINEAR, stride %" PRIu32 ")%s",
				   lease->id, im->width, im->height, im->strides[0],
				   r < 0 ? ": the connection broke" : "");
	}
	w->width = (int32_t)im->width;
	w->height = (int32_t)im->height;
	/* The roundtrip may have brought the first configure, which attached it. */
	if (w->configured && !w->attached)
		attach_and_commit(w); /* else xdg_surface_configure() does */
	return wl_display_flush(w->display) < 0 && errno != EAGAIN ? -errno : 0;
}

/* A grey wl_shm buffer of the last lease's size: what the toplevel shows
 * while paused. Unmapping it instead (a null buffer) would need the
 * initial commit again, and weston 16 answers that with no configure. */
static int placeholder_create(struct window *w)
{
	size_t stride = (size_t)w->width * 4, size = stride * (size_t)w->height;
	_cleanup_close_ int fd = memfd_create("barkeep-present-paused", MFD_CLOEXEC);
	uint32_t *px;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -errno;
	px = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (px == MAP_FAILED)
		return -errno;
	for (size_t i = 0; i < size / 4; i++)
		px[i] = 0xff404040u;
	munmap(px, size);
	struct wl_shm_pool *pool = wl_shm_create_pool(w->shm, fd, (int32_t)size);
	w->placeholder = wl_shm_pool_create_buffer(pool, 0, w->width, w->height, (int32_t)stride,
						   WL_SHM_FORMAT_XRGB8888);
	wl_shm_pool_destroy(pool);
	return 0;
}

int window_hide(struct window *w)
{
	int r;

	if (!w->buffer)
		return 0;
	if (w->attached) {
		if (!w->placeholder) {
			r = placeholder_create(w);
			if (r < 0)
				return window_fail(w, r, "cannot make a placeholder buffer: %s",
						   strerror(-r));
		}
		wl_surface_attach(w->surface, w->placeholder, 0, 0);
		wl_surface_damage(w->surface, 0, 0, INT32_MAX, INT32_MAX);
		wl_surface_commit(w->surface);
	}
	destroy_buffer(w);
	/* Once the compositor has handled the commit and the destruction, it
	 * holds no reference to the lease's buffer. */
	if (wl_display_roundtrip(w->display) < 0)
		return connection_broke(w);
	return 0;
}

bool window_closed(const struct window *w)
{
	return w->closed;
}

const char *window_error(const struct window *w)
{
	return w->error;
}

/* SPDX-License-Identifier: MIT */
/*
 * barkeep-present's Wayland side: one xdg_toplevel that shows an image
 * lease through zwp_linux_dmabuf_v1 (create_immed), and can drop it again.
 * Functions return 0 or -errno; on failure window_error() says why.
 */
#pragma once

#include <stdbool.h>

struct barkeep_lease;
struct window;

/* Connects to $WAYLAND_DISPLAY, binds wl_compositor, xdg_wm_base and
 * zwp_linux_dmabuf_v1 (v3: it lists format/modifier pairs), checks that
 * XRGB8888 LINEAR is offered, and makes an (unmapped) toplevel. *ret is
 * set on failure too, for window_error(): window_close() it either way. */
int window_open(const char *title, struct window **ret);
/* Destroys the window and disconnects. Accepts NULL. */
struct window *window_close(struct window *w);

/* For poll loops: the Wayland connection's fd. window_prepare() before
 * poll(), window_dispatch() after it with poll's revents for that fd. */
int window_get_fd(struct window *w);
int window_prepare(struct window *w);
int window_dispatch(struct window *w, short revents);

/* Imports the lease (its image metadata: one plane, XRGB8888, LINEAR) as a
 * new wl_buffer and shows it once the toplevel is configured; the lease
 * keeps its fd (the compositor gets a copy). presented() is called once the
 * compositor has drawn the first frame with it. */
int window_show(struct window *w, const struct barkeep_lease *lease,
		void (*presented)(void *userdata), void *userdata);
/* Replaces the lease's buffer by a grey wl_shm one, destroys it and waits
 * until the compositor has handled that, so it holds no import of the
 * lease any more. A no-op when nothing is shown. */
int window_hide(struct window *w);

/* True once the compositor asked the toplevel to close. */
bool window_closed(const struct window *w);
/* Why the last call failed: a sentence, "" if none. */
const char *window_error(const struct window *w);

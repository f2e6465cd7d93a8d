// SPDX-License-Identifier: MIT
/*
 * barkeep-present: leases an image from barkeepd, fills it and shows it in
 * a Wayland compositor through zwp_linux_dmabuf_v1, and follows the
 * broker's reset protocol: on DEVICE_PAUSE it drops the buffer (the
 * compositor's import with it) and acknowledges; on DEVICE_RESUME, when the
 * contents are lost, it fills the lease again, in the next colour, and
 * imports it anew. doc/compositor.md.
 *
 * The image: the left half one colour (blue, then orange after a reset,
 * alternating), the right half four bars, red, green, blue and white.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/dma-buf.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <drm_fourcc.h>

#include "client/lib/barkeep.h"
#include "client/present/window.h"
#include "common/log.h"
#include "common/macro.h"

#define WIDTH 256
#define HEIGHT 192

static const struct colour {
	const char *name;
	uint32_t xrgb;
} colours[] = { { "blue", 0x2060c0 }, { "orange", 0xe08010 } };
static const uint32_t bars[] = { 0xff0000, 0x00ff00, 0x0000ff, 0xffffff };

struct present {
	struct barkeep *bk;
	struct window *win;
	struct barkeep_lease *lease;
	unsigned shown;   /* how many times the lease was imported: picks the colour */
	int error;        /* set by the event handler: leave the loop */
};

static uint32_t pattern_pixel(uint32_t x, uint32_t colour)
{
	if (x < WIDTH / 2)
		return colour;
	return bars[(x - WIDTH / 2) * ARRAY_SIZE(bars) / (WIDTH - WIDTH / 2)];
}

/* Writes the pattern through a CPU mapping that lasts only as long as
 * this: nothing is left to drop when a pause comes. */
static int lease_fill(const struct barkeep_lease *lease, uint32_t colour)
{
	const struct barkeep_image *im = &lease->image;
	struct dma_buf_sync sync = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE };
	const char *msg;
	void *map;
	int r;

	r = barkeep_lease_mmap(lease, PROT_READ | PROT_WRITE, &map, &msg);
	if (r < 0)
		return log_error_errno(r, "Failed to map lease %" PRIu64 ": %s", lease->id,
				       msg ? msg : "%m");
	(void)ioctl(lease->fd, DMA_BUF_IOCTL_SYNC, &sync);
	for (uint32_t y = 0; y < im->height; y++) {
		uint32_t *row = (uint32_t *)((uint8_t *)map + im->offsets[0] + (size_t)y * im->strides[0]);
		for (uint32_t x = 0; x < im->width; x++)
			row[x] = 0xff000000u | pattern_pixel(x, colour);
	}
	sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE;
	(void)ioctl(lease->fd, DMA_BUF_IOCTL_SYNC, &sync);
	return barkeep_lease_munmap(lease, map);
}

static void presented(void *userdata)
{
	struct present *p = userdata;
	const struct colour *c = &colours[(p->shown - 1) % ARRAY_SIZE(colours)];

	log_info("presented lease %" PRIu64 " (%s, #%06" PRIx32 ")", p->lease->id, c->name, c->xrgb);
}

/* Fills the lease in the next colour and hands it to the compositor. */
static int present_show(struct present *p)
{
	const struct colour *c = &colours[p->shown % ARRAY_SIZE(colours)];
	int r;

	r = lease_fill(p->lease, c->xrgb);
	if (r < 0)
		return r;
	r = window_show(p->win, p->lease, presented, p);
	if (r < 0)
		return log_error_errno(r, "Failed to show lease %" PRIu64 ": %s", p->lease->id,
				       window_error(p->win));
	p->shown++;
	log_info("imported lease %" PRIu64 " into the compositor (create_immed), %s",
		 p->lease->id, c->name);
	return 0;
}

static void on_pause(struct present *p, const struct barkeep_event *ev)
{
	int r;

	log_info("device %" PRIu32 " pauses (generation %" PRIu64 ", %" PRIu32 " ms to answer): "
		 "dropping the buffer", ev->device_id, ev->generation, ev->deadline_ms);
	r = window_hide(p->win);
	if (r < 0) {
		p->error = log_error_errno(r, "Failed to drop the buffer: %s", window_error(p->win));
		return;
	}
	r = barkeep_ack_pause(p->bk, ev->device_id, ev->generation);
	if (r < 0 && r != -ESTALE)
		log_warning_errno(r, "Failed to acknowledge the pause: %s",
				  barkeep_error_message(p->bk));
	else
		log_info("buffer dropped, pause acknowledged");
}

static void on_event(struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	struct present *p = userdata;

	if (ev->device_id != p->lease->device_id)
		return;
	switch (ev->type) {
	case BARKEEP_EVENT_DEVICE_PAUSE:
		on_pause(p, ev);
		break;
	case BARKEEP_EVENT_DEVICE_RESUME:
		log_info("device %" PRIu32 " resumed (generation %" PRIu64 "%s): re-importing",
			 ev->device_id, ev->generation, ev->flags & 1 ? ", contents lost" : "");
		p->error = present_show(p);
		break;
	case BARKEEP_EVENT_DEVICE_GONE:
		log_error("device %" PRIu32 " is gone, and lease %" PRIu64 " with it", ev->device_id,
			  p->lease->id);
		p->error = -ENODEV;
		break;
	case BARKEEP_EVENT_LEASE_REVOKED:
		if (ev->lease_id != p->lease->id)
			break;
		log_error("lease %" PRIu64 " was revoked by the broker", ev->lease_id);
		p->error = -ECANCELED;
		break;
	case BARKEEP_EVENT_GRANT_REVOKED: /* it opens nothing */
	case BARKEEP_EVENT_RECONNECTED: /* not asked for (no BARKEEP_CONNECT_RECONNECT) */
		break;
	}
}

/* The device to lease from: the one asked for, else the first ready sysmem device. */
static int pick_device(struct barkeep *bk, int64_t want, uint32_t *ret)
{
	_cleanup_free_ struct barkeep_device *devs = NULL;
	size_t n;
	int r;

	r = barkeep_list_devices(bk, &devs, &n);
	if (r < 0)
		return log_error_errno(r, "Failed to list devices: %s", barkeep_error_message(bk));
	for (size_t i = 0; i < n; i++)
		if (want >= 0 ? devs[i].id == want
			      : devs[i].backend == BARKEEP_BACKEND_SYSMEM &&
					devs[i].state == BARKEEP_DEVICE_READY) {
			*ret = devs[i].id;
			return 0;
		}
	if (want >= 0)
		log_error("The broker has no device %" PRId64 " for this user (see barkeepctl devices).",
			  want);
	else
		log_error("The broker offers this user no ready system-memory device; configure one "
			  "with backend = sysmem or pass --device ID.");
	return -ENODEV;
}

static int lease_image(struct present *p, uint32_t device)
{
	struct barkeep_image im = { .fourcc = DRM_FORMAT_XRGB8888, .width = WIDTH,
				    .height = HEIGHT, .n_planes = 1,
				    .modifier = DRM_FORMAT_MOD_LINEAR, .strides = { WIDTH * 4 } };
	struct barkeep_alloc_params a = { .by_id = true, .device_id = device,
					  .size = (uint64_t)WIDTH * 4 * HEIGHT, .image = &im };
	int r;

	r = barkeep_alloc(p->bk, &a, &p->lease);
	if (r < 0)
		return log_error_errno(r, "Failed to lease a %dx%d image on device %" PRIu32 ": %s",
				       WIDTH, HEIGHT, device, barkeep_error_message(p->bk));
	log_info("leased %dx%d XRGB8888 LINEAR image: lease %" PRIu64 " on device %" PRIu32,
		 WIDTH, HEIGHT, p->lease->id, device);
	return 0;
}

static int signalfd_open(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	int fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* Serves Wayland and broker events until a signal, a closed window or an error. */
static int run(struct present *p)
{
	_cleanup_close_ int sfd = signalfd_open();
	int r;

	if (sfd < 0)
		return log_error_errno(sfd, "Failed to set up signal handling: %m");
	for (;;) {
		struct pollfd fds[] = {
			{ .fd = window_get_fd(p->win), .events = POLLIN },
			{ .fd = barkeep_get_fd(p->bk), .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};
		r = window_prepare(p->win);
		if (r < 0)
			return log_error_errno(r, "%s", window_error(p->win));
		if (poll(fds, ARRAY_SIZE(fds), -1) < 0) {
			r = -errno;
			window_dispatch(p->win, 0); /* cancels the prepared read */
			if (r == -EINTR)
				continue;
			return log_error_errno(r, "poll failed: %m");
		}
		r = window_dispatch(p->win, fds[0].revents);
		if (r < 0)
			return log_error_errno(r, "%s", window_error(p->win));
		/* Also when the fd is quiet: events may have queued during a request. */
		r = barkeep_dispatch(p->bk);
		if (r < 0)
			return log_error_errno(r, "Lost the broker: %s", barkeep_error_message(p->bk));
		if (p->error < 0)
			return p->error;
		if (fds[2].revents & POLLIN) {
			log_info("signal received, leaving");
			return 0;
		}
		if (window_closed(p->win)) {
			log_info("the compositor closed the window, leaving");
			return 0;
		}
	}
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: barkeep-present [--socket PATH] [--device ID]\n"
		   "Leases a %dx%d image from barkeepd and shows it in the Wayland compositor\n"
		   "of $WAYLAND_DISPLAY; re-imports it after device resets. See doc/compositor.md.\n",
		WIDTH, HEIGHT);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "device", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct present p = { 0 };
	const char *socket = NULL;
	int64_t want = -1;
	uint32_t device = 0;
	char *end;
	int c, r;

	while ((c = getopt_long(argc, argv, "s:d:h", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			socket = optarg;
			break;
		case 'd':
			errno = 0;
			want = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || want < 0 || want > UINT32_MAX) {
				log_error("--device: '%s' is not a device id (a number from "
					  "barkeepctl devices)", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s'", argv[optind]);
		return 2;
	}

	r = barkeep_connect(socket, "barkeep-present", &p.bk);
	if (r < 0) {
		log_error_errno(r, "Failed to connect to barkeepd: %s", barkeep_error_message(NULL));
		return 1;
	}
	barkeep_set_event_handler(p.bk, on_event, &p);
	r = window_open("barkeep-present", &p.win);
	if (r < 0)
		log_error_errno(r, "Failed to open a window: %s", window_error(p.win));
	if (r >= 0)
		r = pick_device(p.bk, want, &device);
	if (r >= 0)
		r = lease_image(&p, device);
	if (r >= 0)
		r = present_show(&p);
	if (r >= 0)
		r = run(&p);

	p.win = window_close(p.win); /* the compositor drops its import first */
	if (p.lease)
		barkeep_release(p.bk, p.lease);
	barkeep_disconnect(p.bk);
	return r < 0 ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/* gbm import of an image lease (GBM_BO_IMPORT_FD_MODIFIER). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gbm.h>
#include <xf86drm.h>

#include "client/lib/barkeep.h"
#include "client/lib/private.h"
#include "common/fourcc.h"
#include "common/macro.h"

static _Thread_local char msg_buf[256];

static const char *say(const char *fmt, ...) _printf_(1, 2);
static const char *say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg_buf, sizeof(msg_buf), fmt, ap);
	va_end(ap);
	return msg_buf;
}

/* Does a fresh open of the gbm device's node refuse the dma-buf as a
 * peer-to-peer buffer? A new DRM file, so no handle of the caller's is
 * touched (GEM handles are per file and not reference-counted). */
static bool refuses_p2p(struct gbm_device *gbm, int dmabuf)
{
	char link[64], node[256];
	uint32_t handle;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", gbm_device_get_fd(gbm));
	ssize_t n = readlink(link, node, sizeof(node) - 1);
	if (n <= 0)
		return false;
	node[n] = '\0';
	_cleanup_close_ int fd = open(node, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	return drmPrimeFDToHandle(fd, dmabuf, &handle) < 0 && errno == EOPNOTSUPP;
}

static int check_fits(const struct barkeep_lease *lease, const char **ret_msg)
{
	const struct barkeep_image *im = &lease->image;
	const struct fourcc_info *f = fourcc_info(im->fourcc);

	if (im->n_planes < 1 || im->n_planes > 4) {
		*ret_msg = say("the lease's image has %u planes; 1 to 4 can be imported", im->n_planes);
		return -EINVAL;
	}
	for (unsigned i = 0; f && i < im->n_planes && i < f->n_planes; i++) {
		uint64_t end = fourcc_plane_end(f, i, im->height, im->offsets[i], im->strides[i]);
		if (end > lease->size) {
			*ret_msg = say("image plane %u (offset %u + stride %u x %u rows = %llu bytes) "
				       "does not fit the lease's %llu bytes", i, im->offsets[i],
				       im->strides[i], fourcc_plane_height(f, i, im->height),
				       (unsigned long long)end, (unsigned long long)lease->size);
			return -EINVAL;
		}
	}
	return 0;
}

int barkeep_import_gbm(const struct barkeep_lease *lease, struct gbm_device *gbm, uint32_t usage,
		       struct gbm_bo **ret, const char **ret_msg)
{
	const char *msg = NULL;
	int r;

	if (ret_msg)
		*ret_msg = NULL;
	if (!lease || lease->fd < 0 || !gbm || !ret)
		return -EBADF;
	if (!lease->has_image) {
		if (ret_msg)
			*ret_msg = "the lease carries no image metadata (allocate it with "
				   "barkeep_alloc_params.image set)";
		return -EINVAL;
	}
	r = check_fits(lease, &msg);
	if (r < 0) {
		if (ret_msg)
			*ret_msg = msg;
		return r;
	}

	const struct barkeep_image *im = &lease->image;
	struct gbm_import_fd_modifier_data data = {
		.width = im->width, .height = im->height, .format = im->fourcc,
		.num_fds = im->n_planes, .modifier = im->modifier,
	};
	for (unsigned i = 0; i < im->n_planes; i++) {
		data.fds[i] = lease->fd; /* every plane lives in the one buffer */
		data.strides[i] = (int)im->strides[i];
		data.offsets[i] = (int)im->offsets[i];
	}
	errno = 0;
	struct gbm_bo *bo = gbm_bo_import(gbm, GBM_BO_IMPORT_FD_MODIFIER, &data, usage);
	if (bo) {
		*ret = bo;
		return 0;
	}
	r = errno > 0 ? -errno : -EINVAL;
	/* Mesa does not pass the kernel's refusal through: ask the kernel. */
	if (refuses_p2p(gbm, lease->fd)) {
		if (ret_msg)
			*ret_msg = bk_msg_p2p_refused;
		return -EOPNOTSUPP;
	}
	if (ret_msg) {
		char *name = drmGetFormatName(im->fourcc);
		*ret_msg = say("gbm (%s) refused the %ux%u %s image: %s", gbm_device_get_backend_name(gbm),
			       im->width, im->height, name ? name : "?", strerror(-r));
		free(name);
	}
	return r;
}

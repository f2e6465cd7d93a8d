// SPDX-License-Identifier: MIT
/* Import helpers: hand a lease's dma-buf to other drivers. */
#include <errno.h>
#include <xf86drm.h>

#include "client/lib/barkeep.h"
#include "client/lib/private.h"

const char bk_msg_p2p_refused[] = "this DRM driver cannot import peer-to-peer VFIO buffers "
				  "(only importers that support peer-to-peer DMA and move "
				  "notification, such as amdgpu or xe, can)";

int barkeep_import_prime(const struct barkeep_lease *lease, int drm_fd, uint32_t *ret_handle,
			 const char **ret_msg)
{
	if (ret_msg)
		*ret_msg = NULL;
	if (!lease || lease->fd < 0)
		return -EBADF;
	if (drmPrimeFDToHandle(drm_fd, lease->fd, ret_handle) == 0)
		return 0;
	int r = -errno;
	if (r == -EOPNOTSUPP && ret_msg)
		*ret_msg = bk_msg_p2p_refused;
	return r;
}

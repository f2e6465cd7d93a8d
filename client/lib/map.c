// SPDX-License-Identifier: MIT
/* CPU mappings of a lease's dma-buf, where the kernel allows them. */
#include <errno.h>
#include <sys/mman.h>

#include "client/lib/barkeep.h"

int barkeep_lease_mmap(const struct barkeep_lease *lease, int prot, void **ret,
		       const char **ret_msg)
{
	if (ret_msg)
		*ret_msg = NULL;
	if (!lease || lease->fd < 0 || !ret)
		return -EBADF;
	if (prot & ~(PROT_READ | PROT_WRITE) || !prot)
		return -EINVAL;
	/* Only shared mappings: a private copy of a buffer is not the buffer. */
	void *p = mmap(NULL, lease->size, prot, MAP_SHARED, lease->fd, 0);
	if (p == MAP_FAILED) {
		int r = -errno;
		if (ret_msg && r == -EINVAL)
			*ret_msg = "the kernel cannot map this dma-buf for the CPU (VFIO dma-bufs "
				   "can be mapped only by kernels with the dma-buf mmap patches; "
				   "system-memory leases always can)";
		else if (ret_msg && r == -ENODEV)
			*ret_msg = "the buffer is revoked (its device is paused for a reset); "
				   "map it again after DEVICE_RESUME";
		else if (ret_msg && r == -EACCES)
			*ret_msg = "the lease's fd is not open for writing";
		return r;
	}
	*ret = p;
	return 0;
}

int barkeep_lease_munmap(const struct barkeep_lease *lease, void *addr)
{
	if (!lease || !addr)
		return -EINVAL;
	return munmap(addr, lease->size) < 0 ? -errno : 0;
}

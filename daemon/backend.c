// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "daemon/backend.h"

static const struct backend_ops *const backends[] = {
	&backend_vfio,
	&backend_sysmem,
};

const struct backend_ops *backend_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

int backend_stored_find(const struct backend_stored *fds, size_t n, const char *kind)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fds[i].kind, kind) == 0)
			return fds[i].fd;
	return -EBADF;
}

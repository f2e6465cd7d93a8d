// SPDX-License-Identifier: MIT
/* Connecting to the broker and turning failures into messages and exit statuses. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl/ctl.h"
#include "client/ctl/json.h"
#include "common/log.h"

const char *ctl_socket_path(const struct ctl *ctl)
{
	if (ctl->socket)
		return ctl->socket;
	const char *env = getenv(BARKEEP_SOCKET_ENV);
	return env && *env ? env : BARKEEP_DEFAULT_SOCKET;
}

bool ctl_is_disconnect(int r)
{
	return r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN || r == -ESHUTDOWN;
}

void ctl_report(const struct ctl *ctl, int r, const char *reason, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (reason && !*reason)
		reason = strerror(r < 0 ? -r : r);
	if (reason)
		log_error("%s: %s", what, reason);
	else
		log_error("%s", what);
	if (!ctl->json)
		return;
	struct json j;
	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_object_begin(&j, "error");
	json_u64(&j, "errno", (uint64_t)(r < 0 ? -r : r));
	json_string(&j, "what", what);
	json_string(&j, "message", reason ? reason : what);
	json_object_end(&j);
	json_object_end(&j);
	fflush(stdout);
}

int ctl_connect(const struct ctl *ctl, uint32_t flags, struct barkeep **ret)
{
	const char *path = ctl_socket_path(ctl);
	int r = barkeep_connect_with(path, ctl->name, flags, ret);
	if (r >= 0)
		return r;
	/* The library's sentence is "cannot connect to PATH: why (hint)" when
	 * connect() failed, the broker's reason when the handshake was refused,
	 * and empty for errors found before either. */
	const char *msg = barkeep_error_message(NULL);
	if (strncmp(msg, "cannot connect", 14) == 0)
		ctl_report(ctl, r, NULL, "%s", msg);
	else if (*msg)
		ctl_report(ctl, r, msg, "barkeepd at %s refused the connection", path);
	else
		ctl_report(ctl, r, NULL, "cannot connect to %s: %s", path, strerror(-r));
	return r;
}

int ctl_request_failed(const struct ctl *ctl, const struct barkeep *bk, int r, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	const char *msg = barkeep_error_message(bk);
	if (ctl_is_disconnect(r)) {
		ctl_report(ctl, r, msg, "%s failed", what);
		return CTL_EXIT_GONE;
	}
	/* An ERROR reply and a failure inside the library look the same (both
	 * -errno with a sentence); the library's own come with these codes. */
	bool local = r == -ENOMEM || r == -EPROTO || r == -ENOBUFS;
	ctl_report(ctl, r, msg, "%s %s", what, local ? "failed" : "refused");
	return CTL_EXIT_REFUSED;
}

int ctl_connect_and_list(const struct ctl *ctl, struct barkeep **ret_bk,
			 struct barkeep_device **ret_devs, size_t *ret_n)
{
	struct barkeep *bk;

	if (ctl_connect(ctl, 0, &bk) < 0)
		return CTL_EXIT_CONNECT;
	int r = barkeep_list_devices(bk, ret_devs, ret_n);
	if (r < 0) {
		r = ctl_request_failed(ctl, bk, r, "listing the devices");
		barkeep_disconnect(bk);
		return r;
	}
	*ret_bk = bk;
	return CTL_EXIT_OK;
}

const struct barkeep_device *ctl_find_device(const struct barkeep_device *devs, size_t n,
					     uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (devs[i].id == id)
			return &devs[i];
	return NULL;
}

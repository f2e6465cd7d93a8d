// SPDX-License-Identifier: MIT
/* systemd's view of our unit (unit.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "common/macro.h"
#include "daemon/unit.h"

#define SYSTEMD "org.freedesktop.systemd1"
#define CALL_TIMEOUT_USEC (2 * 1000000ULL)

bool unit_supervised(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	return e && *e;
}

/* A bus connection and the object path of the unit holding this process. */
static int open_unit(sd_bus **ret_bus, char **ret_path)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	sd_bus *bus = NULL;
	const char *path;

	int r = sd_bus_open_system(&bus);
	if (r < 0)
		return r;
	(void)sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT_USEC);
	r = sd_bus_call_method(bus, SYSTEMD, "/org/freedesktop/systemd1", SYSTEMD ".Manager",
			       "GetUnitByPID", &error, &reply, "u", (uint32_t)getpid());
	if (r >= 0)
		r = sd_bus_message_read(reply, "o", &path);
	if (r >= 0 && !(*ret_path = strdup(path)))
		r = -ENOMEM;
	sd_bus_message_unref(reply);
	sd_bus_error_free(&error);
	if (r < 0) {
		sd_bus_flush_close_unref(bus);
		return r;
	}
	*ret_bus = bus;
	return 0;
}

int unit_fd_store_max(unsigned *ret)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_free_ char *path = NULL;
	sd_bus *bus;
	uint32_t max;

	int r = open_unit(&bus, &path);
	if (r < 0)
		return r;
	r = sd_bus_get_property_trivial(bus, SYSTEMD, path, SYSTEMD ".Service", "FileDescriptorStoreMax",
					&error, 'u', &max);
	sd_bus_error_free(&error);
	sd_bus_flush_close_unref(bus);
	if (r < 0)
		return r;
	*ret = max;
	return 0;
}

int unit_stopping_for_good(void)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	_cleanup_free_ char *path = NULL, *type = NULL;
	const char *job_path;
	uint32_t job_id;
	sd_bus *bus;

	int r = open_unit(&bus, &path);
	if (r < 0)
		return r;
	r = sd_bus_get_property(bus, SYSTEMD, path, SYSTEMD ".Unit", "Job", &error, &reply, "(uo)");
	if (r >= 0)
		r = sd_bus_message_read(reply, "(uo)", &job_id, &job_path);
	if (r >= 0 && job_id != 0)
		r = sd_bus_get_property_string(bus, SYSTEMD, job_path, SYSTEMD ".Job", "JobType", &error,
					       &type);
	sd_bus_message_unref(reply);
	sd_bus_error_free(&error);
	sd_bus_flush_close_unref(bus);
	if (r < 0)
		return r;
	if (job_id == 0)
		return 1;
	return strcmp(type, "stop") == 0 ? 1 : 0;
}

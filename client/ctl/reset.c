// SPDX-License-Identifier: MIT
/* barkeepctl reset: pause, revoke and reset a device (administrators). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "client/ctl/ctl.h"
#include "client/ctl/format.h"
#include "client/ctl/json.h"

struct reset_args {
	uint32_t device_id;
	bool force;
	uint32_t grace_ms; /* 0: the broker's default */
};

enum { OPT_FORCE = CTL_OPT_COMMAND, OPT_GRACE };

static int reset_option(int c, const char *arg, void *data)
{
	struct reset_args *a = data;

	if (c == OPT_FORCE) {
		a->force = true;
		return 0;
	}
	if (parse_u32(arg, &a->grace_ms) < 0 || a->grace_ms == 0)
		return ctl_usage_error("--grace: '%s' is not a number of milliseconds from 1 (for no "
				       "grace period use --force)", arg);
	return 0;
}

static int parse_reset(struct ctl *ctl, int argc, char **argv, struct reset_args *a)
{
	static const struct option options[] = {
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{},
	};

	if (ctl_parse_options(ctl, argc, argv, options, reset_option, a) < 0)
		return -EINVAL;
	if (a->force && a->grace_ms)
		return ctl_usage_error("--force skips the grace period; give --force or --grace, not both");
	if (optind >= argc)
		return ctl_usage_error("reset needs a DEVICE_ID (see barkeepctl devices)");
	if (optind + 1 < argc)
		return ctl_usage_error("reset takes one DEVICE_ID, got also '%s'", argv[optind + 1]);
	if (parse_u32(argv[optind], &a->device_id) < 0)
		return ctl_usage_error("DEVICE_ID '%s' is not a device id (a number from barkeepctl devices)",
				       argv[optind]);
	return 0;
}

/* After the reset: the device as the broker shows it now (NULL if unknown). */
static void print_result(const struct ctl *ctl, const struct reset_args *a,
			 const struct barkeep_device *d)
{
	if (ctl->json) {
		struct json j;
		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		json_object_begin(&j, "reset");
		json_u64(&j, "device_id", a->device_id);
		json_bool(&j, "force", a->force);
		json_u64(&j, "grace_ms", a->grace_ms);
		json_string(&j, "state", d ? device_state_name(d->state) : NULL);
		if (d)
			json_u64(&j, "generation", d->generation);
		json_object_end(&j);
		json_object_end(&j);
		return;
	}
	printf("Device %" PRIu32 "%s%s%s: reset done", a->device_id, d && d->pci_address[0] ? " (" : "",
	       d ? d->pci_address : "", d && d->pci_address[0] ? ")" : "");
	if (d)
		printf("; now %s, generation %" PRIu64, device_state_name(d->state), d->generation);
	printf(".\n");
}

int cmd_reset(struct ctl *ctl, int argc, char **argv)
{
	_cleanup_free_ struct barkeep_device *devs = NULL;
	struct reset_args a = {};
	struct barkeep *bk;
	size_t n = 0;

	if (parse_reset(ctl, argc, argv, &a) < 0)
		return CTL_EXIT_USAGE;
	if (ctl_connect(ctl, 0, &bk) < 0)
		return CTL_EXIT_CONNECT;
	int r = barkeep_reset(bk, a.device_id, a.force, a.grace_ms);
	if (r < 0) {
		r = ctl_request_failed(ctl, bk, r, "reset of device %" PRIu32, a.device_id);
		barkeep_disconnect(bk);
		return r;
	}
	/* Only to show the new state and generation; the reset itself is done. */
	if (barkeep_list_devices(bk, &devs, &n) < 0) {
		devs = NULL;
		n = 0;
	}
	barkeep_disconnect(bk);
	print_result(ctl, &a, ctl_find_device(devs, n, a.device_id));
	return CTL_EXIT_OK;
}

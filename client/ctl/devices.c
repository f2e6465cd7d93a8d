// SPDX-License-Identifier: MIT
/* barkeepctl devices, status: what the broker lends from. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "client/ctl/ctl.h"
#include "client/ctl/format.h"
#include "client/ctl/json.h"
#include "client/ctl/table.h"

/* Parses a command without arguments, connects and lists the devices.
 * Returns an exit status; on success the devices (free(*ret_devs)). */
static int get_devices(struct ctl *ctl, int argc, char **argv, struct barkeep_device **ret_devs,
		       size_t *ret_n)
{
	struct barkeep *bk;

	if (ctl_parse_options_only(ctl, argc, argv, NULL, NULL, NULL) < 0)
		return CTL_EXIT_USAGE;
	int ret = ctl_connect_and_list(ctl, &bk, ret_devs, ret_n);
	if (ret == CTL_EXIT_OK)
		barkeep_disconnect(bk);
	return ret;
}

static void json_device(struct json *j, const struct barkeep_device *d)
{
	json_object_begin(j, NULL);
	json_u64(j, "id", d->id);
	json_string(j, "pci_address", d->pci_address[0] ? d->pci_address : NULL);
	json_u64(j, "pci_vendor", d->pci_vendor);
	json_u64(j, "pci_device", d->pci_device);
	json_string(j, "label", d->label);
	json_string(j, "backend", backend_name(d->backend));
	json_u64(j, "bar_index", d->bar_index);
	json_u64(j, "bar_size", d->bar_size);
	json_u64(j, "granule", d->granule);
	json_u64(j, "free_bytes", d->free_bytes);
	json_u64(j, "largest_free", d->largest_free);
	json_string(j, "state", device_state_name(d->state));
	json_u64(j, "generation", d->generation);
	json_array_begin(j, "features");
	for (unsigned i = 0; i < 64; i++)
		if ((d->features & (1ull << i)) && feature_name(i))
			json_string(j, NULL, feature_name(i));
	json_array_end(j);
	json_object_end(j);
}

static void json_devices(struct json *j, const struct barkeep_device *devs, size_t n)
{
	json_array_begin(j, "devices");
	for (size_t i = 0; i < n; i++)
		json_device(j, &devs[i]);
	json_array_end(j);
}

static int print_table(const struct barkeep_device *devs, size_t n)
{
	static const char *const headers[] = { "ID", "PCI", "VENDOR", "LABEL", "BACKEND", "BAR",
		"SIZE", "FREE", "LARGEST", "STATE", "GEN", "FEATURES" };
	_cleanup_table_ struct table *t = NULL;
	int r = table_new(headers, ARRAY_SIZE(headers), &t);
	if (r < 0)
		return r;
	table_align_right(t, 1u << 0 | 1u << 6 | 1u << 7 | 1u << 8 | 1u << 10);
	for (size_t i = 0; i < n; i++) {
		const struct barkeep_device *d = &devs[i];
		char id[16], vendor[16], bar[16], gen[24], size[FORMAT_SIZE_MAX], free_[FORMAT_SIZE_MAX],
			largest[FORMAT_SIZE_MAX], features[FORMAT_FEATURES_MAX];
		snprintf(id, sizeof(id), "%" PRIu32, d->id);
		snprintf(vendor, sizeof(vendor), "%04x:%04x", d->pci_vendor, d->pci_device);
		snprintf(bar, sizeof(bar), "%" PRIu32, d->bar_index);
		snprintf(gen, sizeof(gen), "%" PRIu64, d->generation);
		const char *const row[] = { id, d->pci_address, d->pci_address[0] ? vendor : NULL,
			d->label, backend_name(d->backend), d->pci_address[0] ? bar : NULL,
			format_size(d->bar_size, size), format_size(d->free_bytes, free_),
			format_size(d->largest_free, largest), device_state_name(d->state), gen,
			format_features(d->features, features) };
		r = table_add_row(t, row);
		if (r < 0)
			return r;
	}
	table_print(t, stdout);
	return 0;
}

static void print_status(const struct ctl *ctl, const struct barkeep_device *devs, size_t n)
{
	printf("barkeepd answers on %s and lends from %zu device%s.\n", ctl_socket_path(ctl), n,
	       n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		const struct barkeep_device *d = &devs[i];
		char free_[FORMAT_SIZE_MAX], total[FORMAT_SIZE_MAX], largest[FORMAT_SIZE_MAX];
		printf("  device %" PRIu32 " %s%s%s%s: %s free of %s (largest %s), %s, generation %" PRIu64
		       "\n", d->id, d->pci_address[0] ? d->pci_address : backend_name(d->backend),
		       d->label[0] ? " (" : "", d->label, d->label[0] ? ")" : "",
		       format_size(d->free_bytes, free_), format_size(d->bar_size, total),
		       format_size(d->largest_free, largest), device_state_name(d->state),
		       d->generation);
	}
}

/* devices (a table) and status (a summary) differ only in how they print. */
static int show_devices(struct ctl *ctl, int argc, char **argv, bool status)
{
	_cleanup_free_ struct barkeep_device *devs = NULL;
	size_t n;

	int ret = get_devices(ctl, argc, argv, &devs, &n);
	if (ret != CTL_EXIT_OK)
		return ret;
	if (ctl->json) {
		struct json j;
		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		if (status) {
			json_string(&j, "socket", ctl_socket_path(ctl));
			json_bool(&j, "answering", true);
		}
		json_devices(&j, devs, n);
		json_object_end(&j);
	} else if (status) {
		print_status(ctl, devs, n);
	} else if (n == 0) {
		printf("The broker lends from no device (see barkeepd's log and barkeep.conf(5)).\n");
	} else if (print_table(devs, n) < 0) {
		ctl_report(ctl, -ENOMEM, "", "printing the device table");
		return CTL_EXIT_REFUSED;
	}
	return CTL_EXIT_OK;
}

int cmd_devices(struct ctl *ctl, int argc, char **argv)
{
	return show_devices(ctl, argc, argv, false);
}

int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	return show_devices(ctl, argc, argv, true);
}

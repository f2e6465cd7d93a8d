// SPDX-License-Identifier: MIT
/* barkeepctl alloc, leases: borrowing windows and showing them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/ctl/ctl.h"
#include "client/ctl/events.h"
#include "client/ctl/format.h"
#include "client/ctl/json.h"
#include "client/ctl/table.h"

#define FDINFO_VALUE_MAX 128

enum { OPT_DEVICE = CTL_OPT_COMMAND, OPT_DEVICE_ID, OPT_ALIGN, OPT_EXCLUSIVE, OPT_HOLD };

int ctl_parse_hold(const char *arg, bool *hold, int64_t *hold_ms)
{
	uint32_t u;

	*hold = true;
	if (!arg)
		return 0;
	if (parse_u32(arg, &u) < 0 || u == 0)
		return ctl_usage_error("--hold=%s: give a number of seconds from 1, or no value to "
				       "hold until Ctrl-C", arg);
	*hold_ms = (int64_t)u * 1000;
	return 0;
}

static int alloc_option(int c, const char *arg, void *data)
{
	struct ctl_alloc_args *a = data;
	int r;

	switch (c) {
	case OPT_DEVICE:
	case OPT_DEVICE_ID:
		if (a->p.by_id || a->p.device)
			return ctl_usage_error("give either --device or --device-id, once");
		if (c == OPT_DEVICE) {
			if (!*arg || strlen(arg) >= sizeof(((struct barkeep_device *)NULL)->pci_address))
				return ctl_usage_error("--device: '%s' is not a PCI address such as "
						       "0000:03:00.0 or a device name", arg);
			a->p.device = arg;
		} else if (parse_u32(arg, &a->p.device_id) < 0) {
			return ctl_usage_error("--device-id: '%s' is not a device id (see barkeepctl devices)", arg);
		}
		a->p.by_id = c == OPT_DEVICE_ID;
		return 0;
	case OPT_ALIGN:
		r = parse_size(arg, &a->p.alignment);
		if (r < 0 || !IS_POWER_OF_2(a->p.alignment))
			return ctl_usage_error("--align: '%s' is not a power of two such as 4096 or 2M", arg);
		return 0;
	case OPT_EXCLUSIVE:
		a->p.flags |= BARKEEP_ALLOC_EXCLUSIVE;
		return 0;
	case OPT_HOLD:
		return ctl_parse_hold(arg, &a->hold, &a->hold_ms);
	}
	return a->more_fn ? a->more_fn(c, arg, a->more_data) : ctl_usage_error("unknown option");
}

int ctl_parse_alloc(struct ctl *ctl, int argc, char **argv, struct ctl_alloc_args *a)
{
	static const struct option alloc_options[] = {
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "device-id", required_argument, NULL, OPT_DEVICE_ID },
		{ "align", required_argument, NULL, OPT_ALIGN },
		{ "exclusive", no_argument, NULL, OPT_EXCLUSIVE },
		{ "hold", optional_argument, NULL, OPT_HOLD },
	};
	struct option options[ARRAY_SIZE(alloc_options) + 16] = {};
	size_t n = ARRAY_SIZE(alloc_options);

	memcpy(options, alloc_options, sizeof(alloc_options));
	for (size_t i = 0; a->more && a->more[i].name && n + 1 < ARRAY_SIZE(options); i++)
		options[n++] = a->more[i];
	if (ctl_parse_options(ctl, argc, argv, options, alloc_option, a) < 0)
		return -EINVAL;
	if (optind >= argc)
		return ctl_usage_error("%s needs a SIZE such as 64M", argv[0]);
	if (optind + 1 < argc)
		return ctl_usage_error("%s takes one SIZE, got also '%s'%s", argv[0], argv[optind + 1],
				       a->hold && a->hold_ms < 0 ? " (for a time, write --hold=SECONDS)" : "");
	const char *s = argv[optind];
	int r = parse_size(s, &a->p.size);
	if (r == -ERANGE)
		return ctl_usage_error("SIZE '%s' is too large", s);
	if (r < 0)
		return ctl_usage_error("SIZE '%s' is not a size such as 4096, 64M or 1G", s);
	if (a->p.size == 0)
		return ctl_usage_error("SIZE must be at least 1 byte");
	return 0;
}

/* Reads the value of "key:" in /proc/self/fdinfo/FD into buf. */
static int fdinfo_field(int fd, const char *key, char buf[static FDINFO_VALUE_MAX])
{
	char path[64], line[256];
	size_t klen = strlen(key);
	int r = -ENOENT;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) != 0 || line[klen] != ':')
			continue;
		const char *v = line + klen + 1;
		v += strspn(v, " \t");
		snprintf(buf, FDINFO_VALUE_MAX, "%.*s", (int)strcspn(v, "\n"), v);
		r = 0;
		break;
	}
	fclose(f);
	return r;
}

struct fd_facts {
	int64_t size; /* lseek(SEEK_END), or -errno */
	char exp_name[FDINFO_VALUE_MAX], name[FDINFO_VALUE_MAX]; /* "" when unknown */
};

static void fd_facts(int fd, struct fd_facts *ret)
{
	off_t end = lseek(fd, 0, SEEK_END);
	ret->size = end < 0 ? -errno : (int64_t)end;
	if (fdinfo_field(fd, "exp_name", ret->exp_name) < 0)
		ret->exp_name[0] = '\0';
	if (fdinfo_field(fd, "name", ret->name) < 0)
		ret->name[0] = '\0';
}

static void json_lease_fields(struct json *j, const struct barkeep_lease *l,
			      const struct barkeep_device *d)
{
	json_u64(j, "id", l->id);
	json_u64(j, "device_id", l->device_id);
	json_string(j, "pci_address", d && d->pci_address[0] ? d->pci_address : NULL);
	json_u64(j, "bar_offset", l->bar_offset);
	json_u64(j, "size", l->size);
	json_u64(j, "generation", l->generation);
	json_array_begin(j, "flags");
	for (unsigned i = 0; i < 32; i++)
		if ((l->flags & (1u << i)) && lease_flag_name(i))
			json_string(j, NULL, lease_flag_name(i));
	json_array_end(j);
}

static void json_lease(const struct barkeep_lease *l, const struct barkeep_device *d,
		       const struct fd_facts *fd)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_object_begin(&j, "lease");
	json_lease_fields(&j, l, d);
	json_object_begin(&j, "fd");
	if (fd->size >= 0)
		json_u64(&j, "size", (uint64_t)fd->size);
	else
		json_string(&j, "size", NULL);
	json_string(&j, "exp_name", fd->exp_name[0] ? fd->exp_name : NULL);
	json_string(&j, "name", fd->name[0] ? fd->name : NULL);
	json_object_end(&j);
	json_object_end(&j);
	json_object_end(&j);
}

static void text_lease(const struct barkeep_lease *l, const struct barkeep_device *d,
		       const struct fd_facts *fd)
{
	char size[FORMAT_SIZE_MAX], flags[FORMAT_FEATURES_MAX];

	printf("lease %" PRIu64 "\n", l->id);
	printf("  device:     %" PRIu32, l->device_id);
	if (d && (d->pci_address[0] || d->label[0]))
		printf(" (%s%s%s)", d->pci_address, d->pci_address[0] && d->label[0] ? ", " : "", d->label);
	printf("\n  BAR offset: 0x%" PRIx64 "\n", l->bar_offset);
	printf("  size:       %s (%" PRIu64 " bytes)\n", format_size(l->size, size), l->size);
	printf("  generation: %" PRIu64 "\n", l->generation);
	printf("  flags:      %s\n", format_lease_flags(l->flags, flags));
	printf("  dma-buf:    fd %d, ", l->fd);
	if (fd->size >= 0)
		printf("%" PRId64 " bytes by lseek%s", fd->size,
		       (uint64_t)fd->size != l->size ? " (not the lease's size!)" : "");
	else
		printf("lseek failed: %s", strerror((int)-fd->size));
	printf(", exp_name %s, name %s\n", fd->exp_name[0] ? fd->exp_name : "?",
	       fd->name[0] ? fd->name : "?");
}

int ctl_hold(const struct ctl *ctl, struct barkeep *bk, struct barkeep_lease **lease,
	     const struct barkeep_device *devs, size_t n_devs, int64_t hold_ms,
	     const struct watch_command *cmd)
{
	struct watch w = { .ctl = ctl, .bk = bk, .ack = true, .devs = devs, .n_devs = n_devs,
			   .holding = true, .lease_id = (*lease)->id, .lease_device = (*lease)->device_id,
			   .command = cmd };
	char what[64];

	snprintf(what, sizeof(what), "holding lease %" PRIu64, w.lease_id);
	if (!ctl->json) {
		if (hold_ms < 0)
			printf("Holding lease %" PRIu64 " until Ctrl-C.\n", w.lease_id);
		else
			printf("Holding lease %" PRIu64 " for %" PRId64 " s (Ctrl-C ends it sooner).\n",
			       w.lease_id, hold_ms / 1000);
		fflush(stdout);
	}
	int r = watch_run(&w, hold_ms);
	if (r < 0 || w.lease_ended) {
		barkeep_lease_free(*lease);
		*lease = NULL;
		if (r < 0)
			return watch_report(&w, r, what);
		ctl_report(ctl, w.lease_end_errno, NULL, "lease %" PRIu64 " ended before it was released: %s",
			   w.lease_id, w.lease_end_errno == -ENODEV ? "its device is gone" :
			   w.lease_end_errno == -ESTALE ?
			   "barkeepd restarted and did not give it back" : "the broker revoked it");
		return CTL_EXIT_REFUSED;
	}
	return CTL_EXIT_OK;
}

/* "of 64 MiB on device 0000:03:00.0" for messages about the request. */
static const char *describe_request(const struct barkeep_alloc_params *p, char *buf, size_t size)
{
	char sz[FORMAT_SIZE_MAX];

	format_size(p->size, sz);
	if (p->by_id)
		snprintf(buf, size, "of %s on device %" PRIu32, sz, p->device_id);
	else if (p->device)
		snprintf(buf, size, "of %s on device %s", sz, p->device);
	else
		snprintf(buf, size, "of %s", sz);
	return buf;
}

void ctl_show_lease(const struct ctl *ctl, struct barkeep *bk, const struct barkeep_lease *lease,
		    struct barkeep_device **ret_devs, size_t *ret_n)
{
	struct fd_facts facts;

	/* For the device's PCI address only: a failure here shows in the release. */
	if (barkeep_list_devices(bk, ret_devs, ret_n) < 0) {
		*ret_devs = NULL;
		*ret_n = 0;
	}
	const struct barkeep_device *d = ctl_find_device(*ret_devs, *ret_n, lease->device_id);
	fd_facts(lease->fd, &facts);
	if (ctl->json)
		json_lease(lease, d, &facts);
	else
		text_lease(lease, d, &facts);
	fflush(stdout);
}

int ctl_release(const struct ctl *ctl, struct barkeep *bk, struct barkeep_lease *lease)
{
	uint64_t id = lease->id;
	int r = barkeep_release(bk, lease);
	if (r < 0)
		return ctl_request_failed(ctl, bk, r, "release of lease %" PRIu64, id);
	if (ctl->json) {
		struct json j;
		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		json_object_begin(&j, "released");
		json_u64(&j, "lease_id", id);
		json_object_end(&j);
		json_object_end(&j);
	} else {
		printf("Released lease %" PRIu64 ".\n", id);
	}
	return CTL_EXIT_OK;
}

int ctl_alloc(const struct ctl *ctl, struct barkeep *bk, const struct barkeep_alloc_params *p,
	      struct barkeep_lease **ret)
{
	char what[128];
	int r = barkeep_alloc(bk, p, ret);
	if (r < 0)
		return ctl_request_failed(ctl, bk, r, "alloc %s", describe_request(p, what, sizeof(what)));
	return CTL_EXIT_OK;
}

static int alloc_and_print(const struct ctl *ctl, struct barkeep *bk, const struct ctl_alloc_args *a)
{
	_cleanup_free_ struct barkeep_device *devs = NULL;
	struct barkeep_lease *lease;
	size_t n_devs = 0;

	int ret = ctl_alloc(ctl, bk, &a->p, &lease);
	if (ret != CTL_EXIT_OK)
		return ret;
	ctl_show_lease(ctl, bk, lease, &devs, &n_devs);
	if (a->hold) {
		ret = ctl_hold(ctl, bk, &lease, devs, n_devs, a->hold_ms, NULL);
		if (ret != CTL_EXIT_OK)
			return ret;
	}
	return ctl_release(ctl, bk, lease);
}

int cmd_alloc(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_alloc_args a = { .hold_ms = -1 };
	struct barkeep *bk;

	if (ctl_parse_alloc(ctl, argc, argv, &a) < 0)
		return CTL_EXIT_USAGE;
	/* Held leases outlive a restart of barkeepd: take them back. */
	if (ctl_connect(ctl, a.hold ? BARKEEP_CONNECT_RECONNECT : 0, &bk) < 0)
		return CTL_EXIT_CONNECT;
	int ret = alloc_and_print(ctl, bk, &a);
	barkeep_disconnect(bk);
	return ret;
}

static int print_leases_table(const struct barkeep_lease *leases, size_t n,
			      const struct barkeep_device *devs, size_t n_devs)
{
	static const char *const headers[] = { "ID", "DEVICE", "PCI", "BAR OFFSET", "SIZE", "GEN",
					       "FLAGS" };
	_cleanup_table_ struct table *t = NULL;
	int r = table_new(headers, ARRAY_SIZE(headers), &t);
	if (r < 0)
		return r;
	table_align_right(t, 1u << 0 | 1u << 1 | 1u << 3 | 1u << 4 | 1u << 5);
	for (size_t i = 0; i < n; i++) {
		const struct barkeep_lease *l = &leases[i];
		const struct barkeep_device *d = ctl_find_device(devs, n_devs, l->device_id);
		char id[24], dev[16], off[24], gen[24], size[FORMAT_SIZE_MAX], flags[FORMAT_FEATURES_MAX];
		snprintf(id, sizeof(id), "%" PRIu64, l->id);
		snprintf(dev, sizeof(dev), "%" PRIu32, l->device_id);
		snprintf(off, sizeof(off), "0x%" PRIx64, l->bar_offset);
		snprintf(gen, sizeof(gen), "%" PRIu64, l->generation);
		const char *const row[] = { id, dev, d ? d->pci_address : NULL, off,
					    format_size(l->size, size), gen,
					    format_lease_flags(l->flags, flags) };
		r = table_add_row(t, row);
		if (r < 0)
			return r;
	}
	table_print(t, stdout);
	return 0;
}

static void json_leases(const struct barkeep_lease *leases, size_t n,
			const struct barkeep_device *devs, size_t n_devs)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_array_begin(&j, "leases");
	for (size_t i = 0; i < n; i++) {
		json_object_begin(&j, NULL);
		json_lease_fields(&j, &leases[i], ctl_find_device(devs, n_devs, leases[i].device_id));
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
}

/* Lists the leases, and the devices for their PCI addresses. Returns an exit status. */
static int list_leases(const struct ctl *ctl, struct barkeep *bk, struct barkeep_lease **ret,
		       size_t *ret_n, struct barkeep_device **ret_devs, size_t *ret_n_devs)
{
	int r = barkeep_list_leases(bk, ret, ret_n);
	if (r < 0)
		return ctl_request_failed(ctl, bk, r, "listing the leases");
	r = barkeep_list_devices(bk, ret_devs, ret_n_devs);
	if (r < 0)
		return ctl_request_failed(ctl, bk, r, "listing the devices");
	return CTL_EXIT_OK;
}

int cmd_leases(struct ctl *ctl, int argc, char **argv)
{
	_cleanup_free_ struct barkeep_lease *leases = NULL;
	_cleanup_free_ struct barkeep_device *devs = NULL;
	size_t n = 0, n_devs = 0;
	struct barkeep *bk;

	if (ctl_parse_options_only(ctl, argc, argv, NULL, NULL, NULL) < 0)
		return CTL_EXIT_USAGE;
	if (ctl_connect(ctl, 0, &bk) < 0)
		return CTL_EXIT_CONNECT;
	int ret = list_leases(ctl, bk, &leases, &n, &devs, &n_devs);
	barkeep_disconnect(bk);
	if (ret != CTL_EXIT_OK)
		return ret;
	if (ctl->json)
		json_leases(leases, n, devs, n_devs);
	else if (n == 0)
		printf("This connection holds no leases. Leases belong to the connection that made\n"
		       "them, so a new barkeepctl has none: see barkeepctl(1).\n");
	else if (print_leases_table(leases, n, devs, n_devs) < 0) {
		ctl_report(ctl, -ENOMEM, "", "printing the lease table");
		return CTL_EXIT_REFUSED;
	}
	return CTL_EXIT_OK;
}

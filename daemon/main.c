// SPDX-License-Identifier: MIT
/* barkeepd: the broker daemon. See doc/barkeepd.8.md. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "daemon/broker.h"
#include "daemon/config.h"
#include "daemon/fdstore.h"
#include "daemon/persist.h"
#include "daemon/restore.h"
#include "daemon/unit.h"
#include "daemon/transports/dbus.h"
#include "daemon/transports/socket.h"

#define SWEEP_INTERVAL_MS 250 /* how often quarantined windows are looked at */
#define STATUS_INTERVAL_MS 1000 /* how often systemd's STATUS= is brought up to date */

struct daemon {
	struct event_base *base;
	struct broker *broker;
	struct socket_server *socket;
	struct dbus_server *dbus;
	struct event *ev_sigterm, *ev_sigint, *ev_sweep;
	struct event *ev_sighup, *ev_status, *ev_watchdog;
	struct config *cfg;
	struct persist *persist; /* NULL: no fd store */
	const char *config_path;
	bool log_level_fixed; /* --log-level given: a reload keeps it */
	size_t status[3];     /* devices, clients, leases last told to systemd */
};

static void help(void)
{
	printf("Usage: barkeepd [OPTIONS]\n\n"
	       "Lends windows of GPU VRAM BARs (vfio-pci devices) to clients as dma-bufs.\n\n"
	       "  -c, --config FILE        configuration file (default %s)\n"
	       "      --check-config FILE  validate FILE, print what it configures, and exit\n"
	       "  -s, --socket PATH        listen on PATH instead of the configured socket\n"
	       "      --bus                serve %s on the system bus; fail without it\n"
	       "      --no-bus             do not (default: try, and go on without it)\n"
	       "  -l, --log-level LEVEL    error, warning, notice, info or debug\n"
	       "  -h, --help               show this help\n"
	       "      --version            show the version\n",
	       CONFIG_DEFAULT_PATH, DBUS_SERVICE_NAME);
}

static void on_signal(evutil_socket_t sig, short what, void *userdata)
{
	struct daemon *d = userdata;
	log_info("Received %s, shutting down", strsignal((int)sig));
	event_base_loopbreak(d->base);
}

/* SIGHUP (systemctl reload): log-level and [limits] are taken from the file
 * again; devices, sockets and groups need a restart. Leases stay. */
static void on_reload(evutil_socket_t sig, short what, void *userdata)
{
	struct daemon *d = userdata;
	_cleanup_config_ struct config *cfg = NULL;
	_cleanup_free_ char *error = NULL;

	(void)sd_notify(0, "RELOADING=1");
	int r = config_load_file(d->config_path, &cfg, &error);
	if (r < 0) {
		log_error("Failed to reload %s; keeping the running configuration:\n%s", d->config_path,
			  error ? error : strerror(-r));
	} else {
		d->cfg->limits = cfg->limits;
		if (!d->log_level_fixed)
			log_set_max_level((enum log_level)cfg->log_level);
		log_notice("Reloaded log-level and [limits] from %s; device, socket and group changes need a restart",
			   d->config_path);
	}
	(void)sd_notify(0, "READY=1");
}

static void on_status(evutil_socket_t fd, short what, void *userdata)
{
	struct daemon *d = userdata;
	size_t now[3] = { broker_n_devices(d->broker), broker_n_clients(d->broker),
			  broker_n_leases(d->broker) };
	if (memcmp(now, d->status, sizeof(now)) == 0)
		return;
	memcpy(d->status, now, sizeof(now));
	(void)sd_notifyf(0, "STATUS=Serving %zu device(s), %zu client(s), %zu lease(s)", now[0], now[1],
			 now[2]);
}

static void on_watchdog(evutil_socket_t fd, short what, void *userdata)
{
	(void)sd_notify(0, "WATCHDOG=1");
}

static void on_sweep(evutil_socket_t fd, short what, void *userdata)
{
	struct daemon *d = userdata;
	unsigned n = broker_sweep(d->broker);
	if (n)
		log_info("%u released window(s) are closed everywhere now; scrubbed and free again", n);
}

static const char *reason_name(enum broker_reason r)
{
	switch (r) {
	case BROKER_REASON_ADMIN: return "an administrator's request";
	case BROKER_REASON_ERROR: return "a device error";
	case BROKER_REASON_UNPLUG: return "the host taking it back";
	case BROKER_REASON_SHUTDOWN: return "barkeepd stopping";
	}
	return "an unknown reason";
}

static void on_pause(const struct device *dev, const struct broker_pause_report *rep, void *userdata)
{
	switch (rep->stage) {
	case BROKER_PAUSE_STARTED: {
		/* One line: a fan-out to many clients waits for nothing else. */
		char who[sizeof(rep->requester->name) + 32] = "";
		if (rep->requester)
			snprintf(who, sizeof(who), " (client %s, uid %u)", rep->requester->name,
				 rep->requester->creds.uid);
		if (rep->flags & BROKER_PAUSE_FORCE)
			log_notice("device %s: paused for %s%s, no grace; told %u client(s)",
				   device_name(dev), reason_name(rep->reason), who, rep->n_holders);
		else
			log_notice("device %s: paused for %s%s; told %u client(s), waiting up to %u ms for them",
				   device_name(dev), reason_name(rep->reason), who, rep->n_holders,
				   rep->grace_ms);
		break;
	}
	case BROKER_PAUSE_REVOKING:
		if (rep->flags & BROKER_PAUSE_FORCE)
			log_info("device %s: revoking its buffers at once (forced)", device_name(dev));
		else if (rep->n_unacked)
			log_warning("device %s: %u client(s) did not acknowledge the pause within %u ms; revoking anyway",
				    device_name(dev), rep->n_unacked, rep->grace_ms);
		else
			log_info("device %s: revoking its buffers", device_name(dev));
		break;
	case BROKER_PAUSE_DONE:
		if (rep->result == 0)
			log_notice("device %s: reset by %s in %llu ms; resumed at generation %llu",
				   device_name(dev), rep->method ? rep->method : "?",
				   (unsigned long long)rep->elapsed_ms, (unsigned long long)rep->generation);
		else if (rep->reason == BROKER_REASON_UNPLUG)
			log_notice("device %s: closed and gone after %llu ms; its leases have ended",
				   device_name(dev), (unsigned long long)rep->elapsed_ms);
		else
			log_error("device %s: reset by %s failed: %s; the device is gone, its leases have ended",
				  device_name(dev), rep->method ? rep->method : "?", strerror(-rep->result));
		break;
	}
}

static void on_orphans_expired(struct broker *b, void *userdata)
{
	log_notice("The reclaim timeout passed: leases nobody took back after the restart have ended");
}

static const struct broker_hooks broker_hooks = { .pause = on_pause, .orphans_expired = on_orphans_expired };

static void device_failed(const struct config_device *cfg, const struct error_info *err)
{
	log_error("Failed to open device %s: %s", cfg->name, err->text);
}

static int check_config(const char *path)
{
	_cleanup_config_ struct config *cfg = NULL;
	_cleanup_free_ char *error = NULL;

	int r = config_load_file(path, &cfg, &error);
	if (r < 0) {
		fprintf(stderr, "%s", error ? error : "");
		if (error && error[0] && error[strlen(error) - 1] != '\n')
			fputc('\n', stderr);
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < cfg->n_warnings; i++)
		fprintf(stderr, "warning: %s\n", cfg->warnings[i]);
	config_dump(cfg, stdout);
	printf("%s: OK\n", path);
	return EXIT_SUCCESS;
}

/* systemd socket activation (one listening SEQPACKET socket) and the fd
 * store: what a previous barkeepd stored is taken up by daemon/restore.c
 * when the unit has a store (FileDescriptorStoreMax=), else released before
 * the devices are opened. Returns the socket or -EBADF. */
static int inherited_fds(struct restore **ret_rs)
{
	struct fdstore_inherited inh;
	unsigned max_fds = 0;

	int r = fdstore_inherit(&inh);
	if (r < 0)
		log_warning_errno(r, "Failed to take the inherited fds: %m");
	if (inh.n_other)
		log_warning("Closed %zu inherited fd(s) that are neither a listening SOCK_SEQPACKET socket nor barkeepd's",
			    inh.n_other);
	if (unit_supervised()) {
		r = unit_fd_store_max(&max_fds);
		if (r < 0)
			log_notice_errno(r, "Cannot ask systemd for the unit's FileDescriptorStoreMax= (%m): a restart will revoke every client's buffers");
		else if (max_fds == 0)
			log_notice("FileDescriptorStoreMax=0: a restart or crash revokes every client's buffers");
	}
	int socket_fd = inh.socket_fd;
	r = restore_begin(&inh, max_fds, ret_rs);
	if (r < 0) {
		log_error_errno(r, "Failed to look at the fd store: %m");
		*ret_rs = NULL;
	}
	return socket_fd;
}

/* On the way out. A restart keeps every lease (the fd store holds the
 * buffers; the next process takes them up); a stop for good tells clients
 * first, since their buffers die when systemd empties the store. */
static void say_goodbye(struct daemon *d)
{
	bool for_good = true;

	if (d->persist) {
		int r = unit_stopping_for_good();
		if (r < 0)
			log_notice_errno(r, "Cannot ask systemd whether this is a restart (%m); telling clients their devices are gone");
		for_good = r != 0;
	}
	persist_detach(d->persist);
	if (!for_good) {
		log_notice("Restarting: %zu lease(s) stay with their holders through the fd store",
			   broker_n_leases(d->broker));
		return;
	}
	unsigned n = broker_shutdown(d->broker);
	if (n == 0)
		return;
	log_notice("Stopping: told %u client(s) their devices are gone", n);
	/* Let the transports write the events out. */
	struct timeval flush = { 0, 200 * 1000 };
	event_base_loopexit(d->base, &flush);
	event_base_dispatch(d->base);
}

static void ensure_parent_dir(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash && slash != dir) {
		*slash = '\0';
		(void)mkdir(dir, 0755);
	}
}

enum bus_mode { BUS_TRY, BUS_YES, BUS_NO };

/* Every lease and every holder of a shared window costs the daemon one fd:
 * take the hard limit, not the 1024 of the soft one (systemd does the same
 * for services). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warning_errno(errno, "Failed to raise the fd limit to %llu: %m",
					  (unsigned long long)rl.rlim_max);
	}
}

static int run(struct config *cfg, const char *config_path, bool log_level_fixed,
	       const char *socket_override, enum bus_mode bus)
{
	struct daemon d = { .cfg = cfg, .config_path = config_path, .log_level_fixed = log_level_fixed };
	int r, ret = EXIT_FAILURE;

	_cleanup_(restore_freep) struct restore *rs = NULL;
	int listen_fd = inherited_fds(&rs);
	r = broker_new(cfg, &d.broker);
	if (r < 0)
		return log_error_errno(r, "Failed to create the broker: %m"), EXIT_FAILURE;
	int n = broker_open_devices(d.broker, device_failed, rs ? restore_adopt_device : NULL, rs);
	if (n < 0) {
		log_error_errno(n, "Failed to open devices: %m");
		goto out;
	}
	if (rs) {
		restore_finish(rs, d.broker);
		d.persist = restore_take_persist(rs);
		rs = restore_free(rs);
		broker_set_persist(d.broker, d.persist);
	}
	for (size_t i = 0; i < broker_n_devices(d.broker); i++) {
		const struct device *dev = broker_device(d.broker, i);
		if (dev->ops->kind == BACKEND_KIND_SYSMEM) {
			log_info("device %s: %llu MiB of system memory, lending through udmabuf",
				 device_name(dev), (unsigned long long)(dev->info.bar_size >> 20));
			continue;
		}
		log_info("device %s: %s [%04x:%04x] BAR%u, %llu MiB, lending through %s",
			 device_name(dev), dev->info.pci_addr, dev->info.vendor, dev->info.device,
			 dev->info.bar, (unsigned long long)(dev->info.bar_size >> 20), dev->ops->name);
	}
	if (n == 0 && cfg->n_devices > 0)
		log_warning("None of the %zu configured devices could be opened; serving none", cfg->n_devices);

	d.base = event_base_new();
	if (!d.base) {
		log_error("Failed to create the event loop");
		goto out;
	}
	broker_set_event_base(d.broker, d.base);
	broker_set_hooks(d.broker, &broker_hooks, NULL);
	if (broker_arm_orphans(d.broker, cfg->limits.reclaim_timeout_s * 1000u) < 0) {
		log_error("Failed to set up the reclaim timer");
		goto out;
	}
	for (size_t i = 0; i < broker_n_devices(d.broker); i++) {
		const struct device *dev = broker_device(d.broker, i);
		/* The fd is named for tests, which inject errors through it. */
		log_debug("device %s: error notifications on fd %d%s", device_name(dev), dev->error_fd,
			  dev->signals_errors ? "" : " (the device cannot send them: no AER, not PCIe)");
		if (!dev->signals_release && dev->ops->kind == BACKEND_KIND_VFIO)
			log_warning("device %s: the host cannot ask for it back: unbinding it from its driver will wait until barkeepd exits",
				    device_name(dev));
	}
	struct socket_options so = {
		.path = socket_override ? socket_override : cfg->socket_path,
		.mode = cfg->socket_mode, .gid = cfg->socket_gid, .listen_fd = listen_fd,
	};
	if (so.listen_fd < 0)
		ensure_parent_dir(so.path);
	r = socket_server_new(d.base, d.broker, &so, &d.socket);
	if (r < 0) {
		log_error_errno(r, "Failed to listen on %s: %m", so.path);
		goto out;
	}
	if (bus != BUS_NO) {
		r = dbus_server_new(d.base, d.broker, &d.dbus);
		if (r < 0 && bus == BUS_YES) {
			log_error_errno(r, "Failed to connect to the system bus: %m");
			goto out;
		}
		if (r < 0)
			log_full_errno(LOG_LEVEL_NOTICE, r, "Not on the system bus (%m); serving the socket only");
	}
	d.ev_sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
	d.ev_sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
	d.ev_sweep = event_new(d.base, -1, EV_PERSIST, on_sweep, &d);
	d.ev_sighup = evsignal_new(d.base, SIGHUP, on_reload, &d);
	d.ev_status = event_new(d.base, -1, EV_PERSIST, on_status, &d);
	struct timeval sweep = { 0, SWEEP_INTERVAL_MS * 1000 };
	struct timeval status = { 0, STATUS_INTERVAL_MS * 1000 };
	if (!d.ev_sigterm || !d.ev_sigint || !d.ev_sweep || !d.ev_sighup || !d.ev_status ||
	    event_add(d.ev_sigterm, NULL) < 0 || event_add(d.ev_sigint, NULL) < 0 ||
	    event_add(d.ev_sweep, &sweep) < 0 || event_add(d.ev_sighup, NULL) < 0 ||
	    event_add(d.ev_status, &status) < 0) {
		log_error("Failed to set up signal and timer events");
		goto out;
	}
	uint64_t watchdog_usec;
	if (sd_watchdog_enabled(0, &watchdog_usec) > 0) {
		struct timeval half = { (time_t)(watchdog_usec / 2 / 1000000),
					(suseconds_t)(watchdog_usec / 2 % 1000000) };
		d.ev_watchdog = event_new(d.base, -1, EV_PERSIST, on_watchdog, &d);
		if (!d.ev_watchdog || event_add(d.ev_watchdog, &half) < 0) {
			log_error("Failed to set up the watchdog timer");
			goto out;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	log_info("Listening on %s with %zu device(s)", so.listen_fd >= 0 ? "the inherited socket" : so.path,
		 broker_n_devices(d.broker));
	d.status[0] = broker_n_devices(d.broker);
	(void)sd_notifyf(0, "READY=1\nSTATUS=Serving %zu device(s), 0 client(s), 0 lease(s)", d.status[0]);
	if (event_base_dispatch(d.base) < 0)
		log_error("The event loop failed");
	else
		ret = EXIT_SUCCESS;
	(void)sd_notify(0, "STOPPING=1");
	say_goodbye(&d);
out:
	dbus_server_free(d.dbus);
	socket_server_free(d.socket);
	if (d.ev_sigterm)
		event_free(d.ev_sigterm);
	if (d.ev_sigint)
		event_free(d.ev_sigint);
	if (d.ev_sweep)
		event_free(d.ev_sweep);
	if (d.ev_sighup)
		event_free(d.ev_sighup);
	if (d.ev_status)
		event_free(d.ev_status);
	if (d.ev_watchdog)
		event_free(d.ev_watchdog);
	persist_detach(d.persist); /* what the store holds is the next process's */
	broker_free(d.broker);
	persist_free(d.persist);
	if (d.base)
		event_base_free(d.base);
	return ret;
}

int main(int argc, char **argv)
{
	enum { OPT_CHECK = 0x100, OPT_VERSION, OPT_BUS, OPT_NO_BUS };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, OPT_CHECK },
		{ "socket", required_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "bus", no_argument, NULL, OPT_BUS },
		{ "no-bus", no_argument, NULL, OPT_NO_BUS },
		{},
	};
	const char *config_path = CONFIG_DEFAULT_PATH, *socket_path = NULL, *level = NULL;
	enum bus_mode bus = BUS_TRY;
	int c;

	while ((c = getopt_long(argc, argv, "c:s:l:h", options, NULL)) >= 0) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 's': socket_path = optarg; break;
		case 'l': level = optarg; break;
		case OPT_BUS: bus = BUS_YES; break;
		case OPT_NO_BUS: bus = BUS_NO; break;
		case OPT_CHECK: return check_config(optarg);
		case 'h': help(); return EXIT_SUCCESS;
		case OPT_VERSION: printf("barkeepd 0.1.0\n"); return EXIT_SUCCESS;
		default: return EXIT_FAILURE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "barkeepd: unexpected argument '%s' (see --help)\n", argv[optind]);
		return EXIT_FAILURE;
	}

	_cleanup_config_ struct config *cfg = NULL;
	_cleanup_free_ char *error = NULL;
	int r = config_load_file(config_path, &cfg, &error);
	if (r < 0) {
		log_error("Failed to load %s:\n%s", config_path, error ? error : strerror(-r));
		return EXIT_FAILURE;
	}
	log_set_max_level((enum log_level)cfg->log_level);
	if (level) {
		int l = log_parse_level(level);
		if (l < 0) {
			log_error("--log-level: '%s' is not one of error, warning, notice, info, debug", level);
			return EXIT_FAILURE;
		}
		log_set_max_level((enum log_level)l);
	}
	for (size_t i = 0; i < cfg->n_warnings; i++)
		log_warning("%s", cfg->warnings[i]);
	return run(cfg, config_path, level != NULL, socket_path, bus);
}

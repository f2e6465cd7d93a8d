// SPDX-License-Identifier: MIT
/* barkeepctl: global options and command dispatch. See doc/barkeepctl.1.md. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl/ctl.h"
#include "common/log.h"

enum { OPT_NAME = 0x80, OPT_JSON, OPT_VERSION };

static const struct option global_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
};

#define OPTIONS_MAX 32

static void help(void)
{
	printf("Usage: barkeepctl [OPTIONS] COMMAND [ARGS...]\n\n"
	       "Borrows windows of GPU VRAM from barkeepd as dma-bufs and shows what it lends.\n\n"
	       "Commands:\n"
	       "  devices                  list the devices the broker lends from\n"
	       "  status                   check that the broker answers; free space per device\n"
	       "  alloc SIZE               borrow a window, print the lease, release it\n"
	       "      --device PCI         from the device at this PCI address\n"
	       "      --device-id N        from device N (see 'devices')\n"
	       "      --align N            start the window at a multiple of N (a power of two)\n"
	       "      --exclusive          be the only lease on the device\n"
	       "      --hold[=SECONDS]     hold it until Ctrl-C (or SECONDS), printing events\n"
	       "  leases                   list this connection's leases (see barkeepctl(1))\n"
	       "  watch                    print events as they come, until Ctrl-C\n"
	       "      --no-ack             do not acknowledge DEVICE_PAUSE\n"
	       "  reset DEVICE_ID          pause, revoke and reset a device (administrators)\n"
	       "      --force              no grace period for the lease holders\n"
	       "      --grace MS           give the holders MS milliseconds to acknowledge\n"
	       "  grant SIZE               borrow a window, let another client open it, hold it\n"
	       "      --token              to whoever presents the printed token, once (default)\n"
	       "      --uid UID, --gid GID to a user or group (they open it with --lease ID)\n"
	       "      --read-only          holders get read-only fds\n"
	       "      --outlive-owner      holders keep the window after this release\n"
	       "      --ttl SECONDS        no more opens after this time\n"
	       "      (and alloc's options; type revoke-grant on stdin to withdraw it)\n"
	       "  open TOKEN               open a window granted to you by token, print it\n"
	       "      --lease ID           by lease id, under a grant to your uid or group\n"
	       "      --read-only          ask for a read-only fd\n"
	       "      --hold[=SECONDS]     hold it until Ctrl-C (or SECONDS), printing events\n"
	       "  cdi generate             print a CDI spec giving containers the socket\n"
	       "      --output FILE        write it to FILE (e.g. /etc/cdi/barkeep.json)\n"
	       "      --name NAME          the CDI device name (default broker)\n"
	       "  cdi list                 the barkeep CDI names in /etc/cdi and /var/run/cdi\n"
	       "      --spec-dir DIR       look in DIR instead\n\n"
	       "Options (before or after the command):\n"
	       "  -s, --socket PATH        the broker's socket (default: $%s,\n"
	       "                           else %s)\n"
	       "      --name NAME          how the broker's log names this client\n"
	       "      --json               print JSON, one value per line\n"
	       "  -h, --help               show this help\n"
	       "      --version            show the version\n\n"
	       "SIZE and N take the suffixes K, M, G and T (KiB, MiB...): 64M, 1G, 0x200000.\n"
	       "Exit status: 0 done, 1 refused by the broker, 2 usage error, 3 cannot connect,\n"
	       "4 the broker went away.\n",
	       BARKEEP_SOCKET_ENV, BARKEEP_DEFAULT_SOCKET);
}

int ctl_usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s", msg);
	fprintf(stderr, "Try 'barkeepctl --help' for more information.\n");
	return -EINVAL;
}

/* What getopt stopped at, for the error message: "-x" or the argument as written. */
static const char *bad_option(char **argv, char *buf)
{
	if (optopt > 0 && optopt < 0x80 && isprint(optopt)) {
		buf[0] = '-', buf[1] = (char)optopt, buf[2] = '\0';
		return buf;
	}
	return argv[optind - 1];
}

static int global_option(struct ctl *ctl, int c, const char *arg)
{
	switch (c) {
	case 's': ctl->socket = arg; return 0;
	case OPT_NAME: ctl->name = arg; return 0;
	case OPT_JSON: ctl->json = true; return 0;
	case 'h': help(); exit(CTL_EXIT_OK);
	case OPT_VERSION: printf("barkeepctl %s\n", CTL_VERSION); exit(CTL_EXIT_OK);
	}
	return -ENOENT;
}

/* stop_at_command: for the top level, where the first positional argument is the command. */
static int parse(struct ctl *ctl, int argc, char **argv, const struct option *own, ctl_option_fn fn,
		 void *data, bool stop_at_command)
{
	struct option all[OPTIONS_MAX] = {};
	size_t n = 0;
	char buf[3];
	int c, r;

	for (; own && own[n].name; n++)
		all[n] = own[n];
	if (n + ARRAY_SIZE(global_options) >= OPTIONS_MAX)
		return ctl_usage_error("internal error: too many options");
	memcpy(all + n, global_options, sizeof(global_options));

	optind = 0; /* glibc: start over, also at argv[1] */
	opterr = 0;
	while ((c = getopt_long(argc, argv, stop_at_command ? "+:hs:" : ":hs:", all, NULL)) >= 0) {
		if (c == '?' && optopt && strncmp(argv[optind - 1], "--", 2) == 0 &&
		    strchr(argv[optind - 1], '='))
			return ctl_usage_error("option '%.*s' takes no value", (int)strcspn(argv[optind - 1], "="),
					       argv[optind - 1]);
		if (c == '?')
			return ctl_usage_error("unknown option '%s'", bad_option(argv, buf));
		if (c == ':')
			return ctl_usage_error("option '%s' needs a value", bad_option(argv, buf));
		r = global_option(ctl, c, optarg);
		if (r == -ENOENT)
			r = fn ? fn(c, optarg, data) : ctl_usage_error("unknown option");
		if (r < 0)
			return r;
	}
	return 0;
}

int ctl_parse_options(struct ctl *ctl, int argc, char **argv, const struct option *own,
		      ctl_option_fn fn, void *data)
{
	return parse(ctl, argc, argv, own, fn, data, false);
}

int ctl_parse_options_only(struct ctl *ctl, int argc, char **argv, const struct option *own,
			   ctl_option_fn fn, void *data)
{
	int r = parse(ctl, argc, argv, own, fn, data, false);
	if (r < 0)
		return r;
	if (optind < argc)
		return ctl_usage_error("%s takes no arguments, got '%s'", argv[0], argv[optind]);
	return 0;
}

static const struct command {
	const char *name;
	int (*run)(struct ctl *ctl, int argc, char **argv);
} commands[] = {
	{ "devices", cmd_devices }, { "status", cmd_status }, { "alloc", cmd_alloc },
	{ "leases", cmd_leases },   { "watch", cmd_watch },   { "reset", cmd_reset },
	{ "cdi", cmd_cdi },         { "grant", cmd_grant },   { "open", cmd_open },
};

int main(int argc, char **argv)
{
	struct ctl ctl = {};

	if (parse(&ctl, argc, argv, NULL, NULL, NULL, true) < 0)
		return CTL_EXIT_USAGE;
	if (optind >= argc) {
		ctl_usage_error("no command given");
		return CTL_EXIT_USAGE;
	}
	const char *name = argv[optind];
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].run(&ctl, argc - optind, argv + optind);
	if (strcmp(name, "help") == 0) {
		help();
		return CTL_EXIT_OK;
	}
	ctl_usage_error("unknown command '%s'", name);
	return CTL_EXIT_USAGE;
}

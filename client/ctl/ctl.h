/* SPDX-License-Identifier: MIT */
/*
 * barkeepctl: the command-line client of barkeepd. main.c parses the global
 * options and picks a command; each command parses its own options with
 * ctl_parse_options() and returns the process's exit status.
 * See doc/barkeepctl.1.md.
 */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/lib/barkeep.h"
#include "common/macro.h"

#define CTL_VERSION "0.1.0"

/* Exit statuses (documented in barkeepctl(1)). */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REFUSED = 1, /* the broker refused a request or ended the lease */
	CTL_EXIT_USAGE = 2,   /* bad command line */
	CTL_EXIT_CONNECT = 3, /* cannot connect to the broker */
	CTL_EXIT_GONE = 4,    /* the broker went away mid-way */
};

struct ctl {
	const char *socket; /* --socket; NULL: $BARKEEP_SOCKET, else the default */
	const char *name;   /* --name; NULL: "barkeepctl" */
	bool json;
};

/* ---- main.c ---- */

/* getopt codes (struct option.val) of command options start here, above
 * the global options' codes. */
#define CTL_OPT_COMMAND 0x100

/* A command's own option: c is the getopt code (val), arg its value or NULL.
 * Returns 0, or -EINVAL after printing a usage error. */
typedef int (*ctl_option_fn)(int c, const char *arg, void *data);

/* Parses argv (argv[0] is the command) with the global options and `own`
 * (may be NULL), leaving optind at the first positional argument. Prints
 * the help or version and exits 0 for -h/--version. Returns 0 or -EINVAL
 * after printing a usage error. */
int ctl_parse_options(struct ctl *ctl, int argc, char **argv, const struct option *own,
		      ctl_option_fn fn, void *data);
/* The same for commands that take no positional arguments. */
int ctl_parse_options_only(struct ctl *ctl, int argc, char **argv, const struct option *own,
			   ctl_option_fn fn, void *data);
/* Prints "barkeepctl: error: <message>" and a pointer to --help; returns -EINVAL. */
int ctl_usage_error(const char *fmt, ...) _printf_(1, 2);

/* ---- conn.c ---- */

/* The socket path the library will use for ctl->socket. */
const char *ctl_socket_path(const struct ctl *ctl);
/* Connects with BARKEEP_CONNECT_* flags; on failure says why and returns
 * -errno (exit with CTL_EXIT_CONNECT). */
int ctl_connect(const struct ctl *ctl, uint32_t flags, struct barkeep **ret);
/* Connects and lists the devices. Returns an exit status; on success the
 * connection and the devices (free(*ret_devs)). */
int ctl_connect_and_list(const struct ctl *ctl, struct barkeep **ret_bk,
			 struct barkeep_device **ret_devs, size_t *ret_n);
/* True for the errors that mean the connection to the broker is lost. */
bool ctl_is_disconnect(int r);
/* Reports a failed request r on bk, "<what> refused: <broker's sentence>" (or
 * "failed: ..." when the connection broke), and returns the exit status. */
int ctl_request_failed(const struct ctl *ctl, const struct barkeep *bk, int r, const char *fmt, ...)
	_printf_(4, 5);
/* Reports an error r as "<what>: <reason>" on stderr (reason NULL: <what>
 * alone; "": strerror(r)) and, with --json, as {"error":...} on stdout. */
void ctl_report(const struct ctl *ctl, int r, const char *reason, const char *fmt, ...)
	_printf_(4, 5);
/* The device with that id in devs, or NULL. */
const struct barkeep_device *ctl_find_device(const struct barkeep_device *devs, size_t n,
					     uint32_t id);

/* ---- lease.c: borrowing, showing, holding ---- */

struct watch_command;

struct ctl_alloc_args {
	struct barkeep_alloc_params p;
	bool hold;
	int64_t hold_ms; /* -1: until interrupted */
	/* A command's options beyond alloc's (codes from CTL_OPT_COMMAND + 16). */
	const struct option *more;
	ctl_option_fn more_fn;
	void *more_data;
};
/* Parses "COMMAND [alloc options and a->more] SIZE". 0 or -EINVAL (said). */
int ctl_parse_alloc(struct ctl *ctl, int argc, char **argv, struct ctl_alloc_args *a);
/* --hold[=SECONDS] into *hold and *hold_ms. 0 or -EINVAL (said). */
int ctl_parse_hold(const char *arg, bool *hold, int64_t *hold_ms);
/* barkeep_alloc(); returns an exit status, having said why it failed. */
int ctl_alloc(const struct ctl *ctl, struct barkeep *bk, const struct barkeep_alloc_params *p,
	      struct barkeep_lease **ret);
/* Prints the lease and facts about its fd; lists the devices for it (free(*ret_devs)). */
void ctl_show_lease(const struct ctl *ctl, struct barkeep *bk, const struct barkeep_lease *lease,
		    struct barkeep_device **ret_devs, size_t *ret_n);
/* Holds the lease, printing events (and running cmd's lines from stdin),
 * until Ctrl-C or hold_ms (< 0: no limit). Returns an exit status; on
 * failure the lease was freed (its fd closed) here. */
int ctl_hold(const struct ctl *ctl, struct barkeep *bk, struct barkeep_lease **lease,
	     const struct barkeep_device *devs, size_t n_devs, int64_t hold_ms,
	     const struct watch_command *cmd);
/* Releases the lease and says so; returns an exit status. */
int ctl_release(const struct ctl *ctl, struct barkeep *bk, struct barkeep_lease *lease);

/* ---- commands ---- */
int cmd_devices(struct ctl *ctl, int argc, char **argv);
int cmd_status(struct ctl *ctl, int argc, char **argv);
int cmd_alloc(struct ctl *ctl, int argc, char **argv);
int cmd_leases(struct ctl *ctl, int argc, char **argv);
int cmd_watch(struct ctl *ctl, int argc, char **argv);
int cmd_reset(struct ctl *ctl, int argc, char **argv);
int cmd_cdi(struct ctl *ctl, int argc, char **argv);
int cmd_grant(struct ctl *ctl, int argc, char **argv);
int cmd_open(struct ctl *ctl, int argc, char **argv);

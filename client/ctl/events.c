// SPDX-License-Identifier: MIT
/* barkeepctl watch, and the event loop `alloc --hold` shares. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>

#include "client/ctl/events.h"
#include "client/ctl/json.h"
#include "common/log.h"

#define PAUSE_FORCED 1u        /* barkeep_event.flags on DEVICE_PAUSE */
#define RESUME_CONTENTS_LOST 1u /* barkeep_event.flags on DEVICE_RESUME */

static const char *event_name(enum barkeep_event_type t)
{
	switch (t) {
	case BARKEEP_EVENT_DEVICE_PAUSE: return "device_pause";
	case BARKEEP_EVENT_DEVICE_RESUME: return "device_resume";
	case BARKEEP_EVENT_DEVICE_GONE: return "device_gone";
	case BARKEEP_EVENT_LEASE_REVOKED: return "lease_revoked";
	case BARKEEP_EVENT_RECONNECTED: return "reconnected";
	case BARKEEP_EVENT_GRANT_REVOKED: return "grant_revoked";
	}
	return "unknown";
}

const char *watch_device_name(const struct watch *w, uint32_t id, char *buf, size_t size)
{
	const struct barkeep_device *d = w->devs ? ctl_find_device(w->devs, w->n_devs, id) : NULL;
	if (d && d->pci_address[0])
		snprintf(buf, size, "device %" PRIu32 " (%s)", id, d->pci_address);
	else
		snprintf(buf, size, "device %" PRIu32, id);
	return buf;
}

/* Starts a JSON line {"event":name,"time":...,"device_id":...,"pci_address":...}. */
static void json_event_begin(struct json *j, const struct watch *w, const char *name, uint32_t dev)
{
	const struct barkeep_device *d = w->devs ? ctl_find_device(w->devs, w->n_devs, dev) : NULL;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	json_init(j, stdout);
	json_object_begin(j, NULL);
	json_string(j, "event", name);
	json_double(j, "time", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, 3);
	json_u64(j, "device_id", dev);
	json_string(j, "pci_address", d && d->pci_address[0] ? d->pci_address : NULL);
}

static void print_time(void)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	printf("%02d:%02d:%02d.%03ld ", tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void json_event(const struct watch *w, const struct barkeep_event *ev)
{
	struct json j;

	json_event_begin(&j, w, event_name(ev->type), ev->device_id);
	switch (ev->type) {
	case BARKEEP_EVENT_DEVICE_PAUSE:
		json_u64(&j, "generation", ev->generation);
		json_string(&j, "reason", barkeep_event_reason(ev));
		json_bool(&j, "forced", ev->flags & PAUSE_FORCED);
		json_u64(&j, "deadline_ms", ev->deadline_ms);
		break;
	case BARKEEP_EVENT_DEVICE_RESUME:
		json_u64(&j, "generation", ev->generation);
		json_bool(&j, "contents_lost", ev->flags & RESUME_CONTENTS_LOST);
		break;
	case BARKEEP_EVENT_DEVICE_GONE:
		json_string(&j, "reason", barkeep_event_reason(ev));
		break;
	case BARKEEP_EVENT_LEASE_REVOKED:
		json_u64(&j, "lease_id", ev->lease_id);
		json_string(&j, "reason", barkeep_event_reason(ev));
		break;
	case BARKEEP_EVENT_RECONNECTED:
		json_u64(&j, "reclaimed", ev->n_reclaimed);
		json_u64(&j, "lost", ev->n_lost);
		break;
	case BARKEEP_EVENT_GRANT_REVOKED:
		json_u64(&j, "lease_id", ev->lease_id);
		json_u64(&j, "grant_id", ev->grant_id);
		break;
	}
	json_object_end(&j);
}

static void text_event(const struct watch *w, const struct barkeep_event *ev)
{
	char dev[64];

	watch_device_name(w, ev->device_id, dev, sizeof(dev));
	const char *reason = barkeep_event_reason(ev);

	print_time();
	switch (ev->type) {
	case BARKEEP_EVENT_DEVICE_PAUSE:
		if (ev->flags & PAUSE_FORCED)
			printf("%s pausing now (%s, forced): buffers of generation %" PRIu64
			       " are being revoked\n", dev, reason, ev->generation);
		else
			printf("%s pausing (%s): drop imports of generation %" PRIu64 " within %" PRIu32
			       " ms\n", dev, reason, ev->generation, ev->deadline_ms);
		break;
	case BARKEEP_EVENT_DEVICE_RESUME:
		printf("%s resumed: generation %" PRIu64 ", contents %s\n", dev, ev->generation,
		       ev->flags & RESUME_CONTENTS_LOST ? "lost" : "kept");
		break;
	case BARKEEP_EVENT_DEVICE_GONE:
		printf("%s gone (%s): its leases have ended%s\n", dev, reason,
		       ev->reason == BARKEEP_REASON_SHUTDOWN ? "; barkeepd is stopping" : "");
		break;
	case BARKEEP_EVENT_LEASE_REVOKED:
		printf("lease %" PRIu64 " on %s revoked (%s)\n", ev->lease_id, dev, reason);
		break;
	case BARKEEP_EVENT_RECONNECTED:
		printf("reconnected: reclaimed %" PRIu32 " lease(s), lost %" PRIu32 "\n",
		       ev->n_reclaimed, ev->n_lost);
		break;
	case BARKEEP_EVENT_GRANT_REVOKED:
		printf("lease %" PRIu64 " on %s ended: its owner withdrew grant %" PRIu64 "\n",
		       ev->lease_id, dev, ev->grant_id);
		break;
	default:
		printf("%s: event of unknown type %d\n", dev, (int)ev->type);
	}
}

static void queue_ack(struct watch *w, uint32_t device_id, uint64_t generation)
{
	for (size_t i = 0; i < w->n_acks; i++)
		if (w->acks[i].device_id == device_id) {
			w->acks[i].generation = generation; /* a newer pause replaces an older one */
			return;
		}
	if (w->n_acks == WATCH_ACKS_MAX) {
		log_warning("Not acknowledging the pause of device %" PRIu32 ": %d pauses wait already",
			    device_id, WATCH_ACKS_MAX);
		return;
	}
	w->acks[w->n_acks].device_id = device_id;
	w->acks[w->n_acks++].generation = generation;
}

/* Runs inside barkeep_dispatch(): prints and notes what to do, but makes no
 * request (a request would queue events behind the dispatch loop's back). */
static void on_event(_unused_ struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	struct watch *w = userdata;

	if (w->ctl->json)
		json_event(w, ev);
	else
		text_event(w, ev);
	fflush(stdout);
	/* A forced pause revokes at once: there is nothing to acknowledge. */
	if (ev->type == BARKEEP_EVENT_DEVICE_PAUSE && w->ack && !(ev->flags & PAUSE_FORCED))
		queue_ack(w, ev->device_id, ev->generation);
	if (!w->holding)
		return;
	if ((ev->type == BARKEEP_EVENT_LEASE_REVOKED || ev->type == BARKEEP_EVENT_GRANT_REVOKED) &&
	    ev->lease_id == w->lease_id) {
		w->lease_ended = true;
		w->lease_end_errno = ev->reason == BARKEEP_REVOKE_LOST ? -ESTALE : -ECANCELED;
	} else if (ev->type == BARKEEP_EVENT_DEVICE_GONE && ev->device_id == w->lease_device) {
		w->lease_ended = true;
		w->lease_end_errno = -ENODEV;
	}
}

/* Sends the acknowledgements on_event() noted. Returns how many it tried, or
 * -errno when the connection broke (a refused one is only a warning). */
static int send_acks(struct watch *w)
{
	size_t n = w->n_acks;

	w->n_acks = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t dev = w->acks[i].device_id;
		uint64_t gen = w->acks[i].generation;
		char name[64];
		int r = barkeep_ack_pause(w->bk, dev, gen);
		watch_device_name(w, dev, name, sizeof(name));
		if (ctl_is_disconnect(r))
			return r;
		if (r == -ESTALE) {
			/* The pause ended (its deadline passed) before the ack arrived. */
			log_notice("The pause of %s, generation %" PRIu64 ", ended before it was "
				   "acknowledged: %s", name, gen, barkeep_error_message(w->bk));
		} else if (r < 0) {
			log_warning("Acknowledging the pause of %s, generation %" PRIu64 ", failed: %s",
				    name, gen, barkeep_error_message(w->bk));
		} else if (w->ctl->json) {
			struct json j;
			json_event_begin(&j, w, "pause_acknowledged", dev);
			json_u64(&j, "generation", gen);
			json_object_end(&j);
		} else {
			print_time();
			printf("%s: acknowledged the pause of generation %" PRIu64 "\n", name, gen);
		}
		fflush(stdout);
	}
	return (int)n;
}

/* Delivers every event that waits, acknowledging pauses, until none is left:
 * an acknowledgement is a request, and events that arrive while it waits
 * are queued in the library where poll() cannot see them. */
static int drain(struct watch *w)
{
	for (;;) {
		int n = barkeep_dispatch(w->bk);
		if (n < 0)
			return n;
		int sent = send_acks(w);
		if (sent < 0)
			return sent;
		if (n == 0 && sent == 0)
			return 0;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads one line of stdin and runs it; at end of file stops reading. */
static int run_command_line(struct watch *w)
{
	char line[256];
	ssize_t n = read(STDIN_FILENO, line, sizeof(line) - 1);

	if (n <= 0) {
		w->stdin_closed = true;
		return 0;
	}
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	return line[0] ? w->command->run(w, line, w->command->userdata) : 0;
}

/* poll() on the connection and the signalfd until a signal, the deadline
 * (< 0: none), the end of the held lease, or a failure. */
static int wait_loop(struct watch *w, int sfd, int64_t deadline)
{
	for (;;) {
		int r = drain(w);
		if (r < 0 || w->lease_ended)
			return r;
		int timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return 0;
			timeout = (int)MIN(left, (int64_t)INT_MAX);
		}
		bool reads = w->command && !w->stdin_closed;
		struct pollfd p[3] = { { .fd = barkeep_get_fd(w->bk), .events = POLLIN },
				       { .fd = sfd, .events = POLLIN },
				       { .fd = reads ? STDIN_FILENO : -1, .events = POLLIN } };
		if (poll(p, 3, timeout) < 0) {
			if (errno == EINTR)
				continue;
			w->local_error = true;
			return -errno;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				w->signal = (int)si.ssi_signo;
			return 0;
		}
		if (reads && (p[2].revents & (POLLIN | POLLHUP))) {
			r = run_command_line(w);
			if (r < 0)
				return r;
		}
	}
}

int watch_run(struct watch *w, int64_t timeout_ms)
{
	sigset_t mask, old;
	int r;

	/* SIGINT and SIGTERM end the wait through a signalfd, so the caller can
	 * release what it holds; they are unblocked again afterwards, so a
	 * second Ctrl-C during that still ends the process. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	w->local_error = true;
	if (sigprocmask(SIG_BLOCK, &mask, &old) < 0)
		return -errno;
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		r = -errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return r;
	}
	w->local_error = false;
	barkeep_set_event_handler(w->bk, on_event, w);
	r = wait_loop(w, sfd, timeout_ms >= 0 ? now_ms() + timeout_ms : -1);
	barkeep_set_event_handler(w->bk, NULL, NULL);
	safe_close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

int watch_report(const struct watch *w, int r, const char *what)
{
	if (!w->local_error)
		return ctl_request_failed(w->ctl, w->bk, r, "%s", what);
	ctl_report(w->ctl, r, "", "%s failed", what);
	return CTL_EXIT_REFUSED;
}

static int watch_option(int c, _unused_ const char *arg, void *data)
{
	bool *no_ack = data;
	if (c == CTL_OPT_COMMAND)
		*no_ack = true;
	return 0;
}

int cmd_watch(struct ctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{ "no-ack", no_argument, NULL, CTL_OPT_COMMAND },
		{},
	};
	_cleanup_free_ struct barkeep_device *devs = NULL;
	bool no_ack = false;
	struct barkeep *bk;
	size_t n_devs = 0;

	if (ctl_parse_options_only(ctl, argc, argv, options, watch_option, &no_ack) < 0)
		return CTL_EXIT_USAGE;
	int ret = ctl_connect_and_list(ctl, &bk, &devs, &n_devs);
	if (ret != CTL_EXIT_OK)
		return ret;
	if (!ctl->json) {
		printf("Watching barkeepd on %s; Ctrl-C stops.\n", ctl_socket_path(ctl));
		fflush(stdout);
	}
	struct watch w = { .ctl = ctl, .bk = bk, .ack = !no_ack, .devs = devs, .n_devs = n_devs };
	int r = watch_run(&w, -1);
	if (r < 0)
		ret = watch_report(&w, r, "watching events");
	barkeep_disconnect(bk);
	return ret;
}

// SPDX-License-Identifier: MIT
/*
 * Sharing a window between clients, on a real kernel: run inside the VM
 * against a running daemon (tests/vm/suites/45-sharing.sh writes its config:
 * gpu0 for root only, default share-with = same-group). Usage:
 *   sharing_test SOCKET DAEMON_PID VRAM_FILE_OF_GPU0
 * The owner is root in group 1234; holders are uids 1000, 1001 (group 1234)
 * and 1002 (not in it), each a child process with its own connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/barkeep.h"
#include "common/vfio.h"
#include "tests/lib/testlib.h"
#include "tests/lib/vmtest.h"
#include "tests/unit/unit.h"

#define MiB (1ull << 20)
#define GROUP 1234
#define HOLDERS 1000
#define HOLDER_PROCS 4

static const char *sock_path, *vram0;
static pid_t daemon_pid;

/* ---- children of another uid --------------------------------------------- */

struct child {
	pid_t pid;
	int ready; /* the child writes one byte when it holds what it should */
	int go;    /* the parent writes one byte when the child may go on */
};

struct child_ctx {
	int ready, go;
	const void *arg;
};

static void child_signal(const struct child_ctx *cx)
{
	(void)!write(cx->ready, "r", 1);
}

static void child_wait(const struct child_ctx *cx)
{
	char c;
	(void)!read(cx->go, &c, 1);
}

/* Runs fn(cx) as uid in a child with groups {GROUP} (or none); its exit
 * status is fn's. */
static struct child spawn_as(uid_t uid, bool in_group, int (*fn)(const struct child_ctx *), const void *arg)
{
	int ready[2], go[2];
	struct child ch = { -1, -1, -1 };
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
		return ch;
	ch.pid = fork();
	if (ch.pid == 0) {
		gid_t g = GROUP;
		close(ready[0]);
		close(go[1]);
		if (setgroups(in_group ? 1 : 0, &g) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
			_exit(99);
		struct child_ctx cx = { ready[1], go[0], arg };
		_exit(fn(&cx));
	}
	close(ready[1]);
	close(go[0]);
	ch.ready = ready[0];
	ch.go = go[1];
	return ch;
}

/* Waits (up to 30 s) for the child to say it is ready; false if it exited. */
static bool child_ready(const struct child *ch)
{
	struct pollfd p = { ch->ready, POLLIN, 0 };
	char c;
	return poll(&p, 1, 30000) == 1 && read(ch->ready, &c, 1) == 1;
}

static int child_finish(struct child *ch)
{
	int st = 0;
	(void)!write(ch->go, "g", 1);
	close(ch->go);
	close(ch->ready);
	if (waitpid(ch->pid, &st, 0) < 0)
		return 97;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 98;
}

static int run_as(uid_t uid, bool in_group, int (*fn)(const struct child_ctx *), const void *arg)
{
	struct child ch = spawn_as(uid, in_group, fn, arg);
	return child_finish(&ch);
}

/* Collects events of a connection for up to ms. */
struct seen {
	int pause, resume, revoked, grant_revoked, gone;
	uint32_t revoke_reason;
	uint64_t lease_id;
};

static void on_event(struct barkeep *bk, const struct barkeep_event *ev, void *userdata)
{
	struct seen *s = userdata;
	switch (ev->type) {
	case BARKEEP_EVENT_DEVICE_PAUSE:
		s->pause++;
		(void)barkeep_ack_pause(bk, ev->device_id, ev->generation);
		break;
	case BARKEEP_EVENT_DEVICE_RESUME: s->resume++; break;
	case BARKEEP_EVENT_DEVICE_GONE: s->gone++; break;
	case BARKEEP_EVENT_LEASE_REVOKED:
		s->revoked++;
		s->revoke_reason = ev->reason;
		s->lease_id = ev->lease_id;
		break;
	case BARKEEP_EVENT_GRANT_REVOKED:
		s->grant_revoked++;
		s->lease_id = ev->lease_id;
		break;
	case BARKEEP_EVENT_RECONNECTED: /* not asked for */
		break;
	}
}

static void collect(struct barkeep *bk, struct seen *s, int ms)
{
	barkeep_set_event_handler(bk, on_event, s);
	for (int waited = 0; waited < ms; waited += 50) {
		struct pollfd p = { barkeep_get_fd(bk), POLLIN, 0 };
		(void)poll(&p, 1, 50);
		if (barkeep_dispatch(bk) < 0)
			break;
	}
}

static bool has_lease(struct barkeep *bk, uint64_t id)
{
	struct barkeep_lease *ls;
	size_t n = 0;
	bool found = false;
	if (barkeep_list_leases(bk, &ls, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		found |= ls[i].id == id;
	free(ls);
	return found;
}

/* ---- the owner's side ----------------------------------------------------- */

static struct barkeep *owner_connect(void)
{
	gid_t g = GROUP;
	/* The owner's groups are what its connection carries: set them first. */
	if (setgroups(1, &g) < 0)
		return NULL;
	return test_connect(sock_path, "owner");
}

/* The owner's connection with a 1 MiB lease on gpu0 in *ret; NULL (a failed check) if not. */
static struct barkeep *owner_with_lease(struct barkeep_lease **ret)
{
	struct barkeep *bk = owner_connect();
	bool ok = bk && test_alloc_on(bk, 0, MiB, ret) == 0;
	CHECK(ok);
	if (!ok) {
		barkeep_disconnect(bk);
		return NULL;
	}
	return bk;
}

static int grant_to(struct barkeep *bk, const struct barkeep_grant_params *p,
		    struct barkeep_grant *ret)
{
	int r = barkeep_grant(bk, p, ret);
	if (r < 0)
		fprintf(stderr, "  grant: %s\n", barkeep_error_message(bk));
	return r;
}

static int grant_token(struct barkeep *bk, uint64_t lease, uint32_t flags, uint32_t ttl_ms,
		       struct barkeep_grant *ret)
{
	struct barkeep_grant_params p = { .lease_id = lease, .to = BARKEEP_GRANT_TO_TOKEN,
					  .flags = flags, .ttl_ms = ttl_ms };
	return grant_to(bk, &p, ret);
}

static int open_token(struct barkeep *bk, const uint8_t *token, struct barkeep_lease **ret)
{
	struct barkeep_open_params p = { .by_token = true };
	memcpy(p.token, token, sizeof(p.token));
	return barkeep_open(bk, &p, ret);
}

/* What the holder of the first test checks and reports back. */
struct opened_facts {
	uint64_t bar_offset, size, shared_lease_id;
	char name[64];
	int access;
};

static struct opened_facts facts;
static int facts_pipe[2];

static int holder_opens_token(const struct child_ctx *cx)
{
	const struct barkeep_grant *g = cx->arg;
	struct barkeep *bk = test_connect(sock_path, "holder");
	struct barkeep_lease *l;
	struct opened_facts f = {};
	uint64_t size = 0;
	if (!bk || open_token(bk, g->token, &l) < 0) {
		fprintf(stderr, "  open: %s\n", barkeep_error_message(bk));
		return 1;
	}
	if (dmabuf_query(l->fd, &size, NULL, NULL, 0) < 0)
		return 2;
	f = (struct opened_facts){ .bar_offset = l->bar_offset, .size = size,
				   .shared_lease_id = l->shared_lease_id,
				   .access = fcntl(l->fd, F_GETFL) & O_ACCMODE };
	if (!(l->flags & BARKEEP_LEASE_OPENED) || l->size != size)
		return 3;
	test_dmabuf_name(l->fd, f.name, sizeof(f.name));
	/* With the kernel-patches the holder sees the bytes through its own mapping. */
	void *map;
	if (barkeep_lease_mmap(l, PROT_READ, &map, NULL) == 0) {
		if (((uint8_t *)map)[4096] != 0x5a)
			return 4;
		barkeep_lease_munmap(l, map);
	}
	if (write(facts_pipe[1], &f, sizeof(f)) != sizeof(f))
		return 5;
	barkeep_release(bk, l);
	barkeep_disconnect(bk);
	return 0;
}

static int vram_write(uint64_t off, const void *buf, size_t len)
{
	int fd = open(vram0, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : pwrite(fd, buf, len, (off_t)off);
	if (fd >= 0)
		close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int vram_byte(uint64_t off)
{
	uint8_t b;
	int fd = open(vram0, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : pread(fd, &b, 1, (off_t)off);
	if (fd >= 0)
		close(fd);
	return n == 1 ? b : -1;
}

/* Owner grants by token; uid 1000 opens it: same BAR range, its own
 * dma-buf of the same size, named after the window. */
static void test_token_open(void)
{
	struct barkeep_lease *mine;
	struct barkeep *bk = owner_with_lease(&mine);
	struct barkeep_grant g;
	uint8_t pattern[8192];
	if (!bk)
		return;
	memset(pattern, 0x5a, sizeof(pattern));
	CHECK_EQ(vram_write(mine->bar_offset, pattern, sizeof(pattern)), 0);
	CHECK_EQ(grant_token(bk, mine->id, 0, 0, &g), 0);
	CHECK(pipe2(facts_pipe, O_CLOEXEC) == 0);
	CHECK_EQ(run_as(1000, true, holder_opens_token, &g), 0);
	CHECK_EQ(read(facts_pipe[0], &facts, sizeof(facts)), sizeof(facts));
	close(facts_pipe[0]);
	close(facts_pipe[1]);
	char want[64];
	snprintf(want, sizeof(want), "barkeep:%llu:1000", (unsigned long long)mine->id);
	printf("  owner lease %llu at BAR offset %#llx; holder: offset %#llx, %llu bytes, name %s\n",
	       (unsigned long long)mine->id, (unsigned long long)mine->bar_offset,
	       (unsigned long long)facts.bar_offset, (unsigned long long)facts.size, facts.name);
	CHECK_EQ(facts.bar_offset, mine->bar_offset);
	CHECK_EQ(facts.size, MiB);
	CHECK_EQ(facts.shared_lease_id, mine->id);
	CHECK_EQ(facts.access, O_RDWR);
	CHECK(strcmp(facts.name, want) == 0);
	/* The window's bytes are where both records say: the host's BAR file. */
	CHECK_EQ(vram_byte(facts.bar_offset + 4096), 0x5a);
	barkeep_release(bk, mine);
	barkeep_disconnect(bk);
}

struct refusal {
	uint8_t token[16];
	int want;
	const char *text;
};

static int holder_refused(const struct child_ctx *cx)
{
	const struct refusal *rf = cx->arg;
	struct barkeep *bk = test_connect(sock_path, "thief");
	struct barkeep_lease *l;
	if (!bk)
		return 1;
	int r = open_token(bk, rf->token, &l);
	const char *msg = barkeep_error_message(bk);
	if (r != rf->want || !strstr(msg, rf->text)) {
		fprintf(stderr, "  open gave %d (%s), expected %d with \"%s\"\n", r, msg, rf->want,
			rf->text);
		return 2;
	}
	printf("  refused: %s\n", msg);
	barkeep_disconnect(bk);
	return 0;
}

static int holder_opens_quietly(const struct child_ctx *cx)
{
	const struct barkeep_grant *g = cx->arg;
	struct barkeep *bk = test_connect(sock_path, "first");
	struct barkeep_lease *l;
	if (!bk || open_token(bk, g->token, &l) < 0)
		return 1;
	barkeep_release(bk, l);
	barkeep_disconnect(bk);
	return 0;
}

/* A stolen (used), guessed, expired or revoked token, or a uid the policy
 * does not let in, is refused with a sentence saying which. */
static void test_token_refusals(void)
{
	struct barkeep_lease *mine;
	struct barkeep *bk = owner_with_lease(&mine);
	struct barkeep_grant g;
	struct refusal rf;
	if (!bk)
		return;

	CHECK_EQ(grant_token(bk, mine->id, 0, 0, &g), 0);
	CHECK_EQ(run_as(1000, true, holder_opens_quietly, &g), 0);
	rf = (struct refusal){ .want = -EACCES, .text = "already used" };
	memcpy(rf.token, g.token, 16);
	CHECK_EQ(run_as(1001, true, holder_refused, &rf), 0);

	rf = (struct refusal){ .want = -ENOENT, .text = "no grant has this token" };
	memcpy(rf.token, g.token, 16);
	rf.token[15] ^= 0x80;
	CHECK_EQ(run_as(1001, true, holder_refused, &rf), 0);

	CHECK_EQ(grant_token(bk, mine->id, 0, 200, &g), 0);
	usleep(400 * 1000);
	rf = (struct refusal){ .want = -ENOENT, .text = "expired" };
	memcpy(rf.token, g.token, 16);
	CHECK_EQ(run_as(1001, true, holder_refused, &rf), 0);

	CHECK_EQ(grant_token(bk, mine->id, 0, 0, &g), 0);
	CHECK_EQ(barkeep_revoke_grant(bk, g.grant_id), 0);
	rf = (struct refusal){ .want = -ENOENT, .text = "revoked" };
	memcpy(rf.token, g.token, 16);
	CHECK_EQ(run_as(1001, true, holder_refused, &rf), 0);

	CHECK_EQ(grant_token(bk, mine->id, 0, 0, &g), 0);
	rf = (struct refusal){ .want = -EACCES, .text = "share-with = same-group" };
	memcpy(rf.token, g.token, 16);
	CHECK_EQ(run_as(1002, false, holder_refused, &rf), 0);

	barkeep_release(bk, mine);
	barkeep_disconnect(bk);
}

/* A read-only grant gives an O_RDONLY dma-buf. */
static void test_read_only(void)
{
	struct barkeep_lease *mine;
	struct barkeep *bk = owner_with_lease(&mine);
	struct barkeep_grant g;
	if (!bk)
		return;
	CHECK_EQ(grant_token(bk, mine->id, BARKEEP_GRANT_READ_ONLY, 0, &g), 0);
	CHECK(pipe2(facts_pipe, O_CLOEXEC) == 0);
	memset(&facts, 0, sizeof(facts));
	CHECK_EQ(vram_write(mine->bar_offset + 4096, "\x5a", 1), 0);
	CHECK_EQ(run_as(1000, true, holder_opens_token, &g), 0);
	CHECK_EQ(read(facts_pipe[0], &facts, sizeof(facts)), sizeof(facts));
	close(facts_pipe[0]);
	close(facts_pipe[1]);
	CHECK_EQ(facts.access, O_RDONLY);
	barkeep_release(bk, mine);
	barkeep_disconnect(bk);
}

/* Holders that open by lease id (a gid grant), signal, then record events
 * until told to go on; they report what they saw through the exit status. */
struct hold_plan {
	uint64_t lease_id;
	int expect;  /* 0 reset: one PAUSE and one RESUME; 1 owner release; 2 outlive; 3 revoke */
};

static int holder_watches(const struct child_ctx *cx)
{
	const struct hold_plan *plan = cx->arg;
	struct barkeep_open_params p = { .lease_id = plan->lease_id };
	struct barkeep *bk = test_connect(sock_path, "watcher");
	struct barkeep_lease *l;
	struct seen s = {};
	if (!bk || barkeep_open(bk, &p, &l) < 0) {
		fprintf(stderr, "  open by lease: %s\n", barkeep_error_message(bk));
		return 1;
	}
	child_signal(cx);
	child_wait(cx);
	collect(bk, &s, plan->expect == 0 ? 4000 : 1500);
	switch (plan->expect) {
	case 0:
		if (s.pause != 1 || s.resume != 1 || s.revoked || s.grant_revoked) {
			fprintf(stderr, "  holder saw %d pauses, %d resumes\n", s.pause, s.resume);
			return 2;
		}
		break;
	case 1:
		if (s.revoked != 1 || s.revoke_reason != 3 || s.lease_id != l->id || has_lease(bk, l->id))
			return 3;
		break;
	case 2:
		if (s.revoked || !has_lease(bk, l->id))
			return 4;
		break;
	case 3:
		if (s.grant_revoked != 1 || s.lease_id != l->id || has_lease(bk, l->id))
			return 5;
		break;
	}
	/* Still holding the dma-buf: the window must stay out of use until this closes. */
	child_signal(cx);
	child_wait(cx);
	if (plan->expect == 2) {
		barkeep_release(bk, l);
	} else if (plan->expect == 1) {
		/* Releasing what the broker revoked: a QUIET RELEASE, answered by
		 * an ERROR that libbarkeep drops; the connection goes on. */
		barkeep_release(bk, l);
		struct barkeep_lease *ls;
		size_t n;
		if (barkeep_list_leases(bk, &ls, &n) < 0) {
			fprintf(stderr, "  after releasing a revoked lease: %s\n",
				barkeep_error_message(bk));
			return 6;
		}
		free(ls);
	} else {
		barkeep_lease_free(l);
	}
	barkeep_disconnect(bk);
	return 0;
}

static int grant_gid(struct barkeep *bk, uint64_t lease, uint32_t flags, struct barkeep_grant *g)
{
	struct barkeep_grant_params p = { .lease_id = lease, .to = BARKEEP_GRANT_TO_GID,
					  .to_id = GROUP, .flags = flags };
	return grant_to(bk, &p, g);
}

/* A reset of the device reaches the owner and every holder exactly once. */
static void test_reset_reaches_holders(void)
{
	struct barkeep_lease *mine;
	struct barkeep *bk = owner_with_lease(&mine);
	struct barkeep_grant g;
	if (!bk)
		return;
	CHECK_EQ(grant_gid(bk, mine->id, 0, &g), 0);
	struct hold_plan plan = { mine->id, 0 };
	struct child a = spawn_as(1000, true, holder_watches, &plan);
	struct child b = spawn_as(1001, true, holder_watches, &plan);
	CHECK(child_ready(&a) && child_ready(&b));
	(void)!write(a.go, "g", 1);
	(void)!write(b.go, "g", 1);
	/* The owner (root) asks: the reset waits for the holders' acknowledgements. */
	CHECK_EQ(barkeep_reset(bk, 0, false, 3000), 0);
	CHECK(child_ready(&a) && child_ready(&b));
	CHECK_EQ(child_finish(&a), 0);
	CHECK_EQ(child_finish(&b), 0);
	barkeep_release(bk, mine);
	barkeep_disconnect(bk);
}

/* The owner's release ends every holder's access (default) or leaves it
 * (OUTLIVE_OWNER); a revoked grant ends its holders' access. The window is
 * reused only once the last holder's dma-buf is closed, then scrubbed. */
static void owner_ends(int expect, uint32_t flags)
{
	struct barkeep_lease *mine;
	struct barkeep *bk = owner_with_lease(&mine);
	struct barkeep_grant g;
	if (!bk)
		return;
	uint64_t off = mine->bar_offset, free0 = test_free_bytes(bk, 0);
	CHECK_EQ(vram_write(off + 8192, "\x77", 1), 0);
	CHECK_EQ(grant_gid(bk, mine->id, flags, &g), 0);
	struct hold_plan plan = { mine->id, expect };
	struct child a = spawn_as(1000, true, holder_watches, &plan);
	CHECK(child_ready(&a));
	if (expect == 3)
		CHECK_EQ(barkeep_revoke_grant(bk, g.grant_id), 0);
	barkeep_release(bk, mine);
	(void)!write(a.go, "g", 1);
	CHECK(child_ready(&a));
	usleep(600 * 1000); /* a few of the daemon's sweeps */
	CHECK_EQ(test_free_bytes(bk, 0), free0);   /* still out of use */
	CHECK_EQ(vram_byte(off + 8192), 0x77);     /* and untouched */
	CHECK_EQ(child_finish(&a), 0);
	for (int i = 0; i < 50 && test_free_bytes(bk, 0) != free0 + MiB; i++)
		usleep(100 * 1000);
	CHECK_EQ(test_free_bytes(bk, 0), free0 + MiB);
	CHECK_EQ(vram_byte(off + 8192), 0);         /* scrubbed */
	barkeep_disconnect(bk);
}

static void test_owner_release_ends_all(void) { owner_ends(1, 0); }
static void test_owner_release_outlived(void) { owner_ends(2, BARKEEP_GRANT_OUTLIVE_OWNER); }
static void test_revoke_grant_ends_holder(void) { owner_ends(3, 0); }

/* ---- 1000 holders ------------------------------------------------------------ */

static long daemon_rss_kib(void)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)daemon_pid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* An ASan daemon's redzones and quarantine say nothing of its own memory use. */
static bool daemon_sanitized(void)
{
	char path[64], line[512];
	bool found = false;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)daemon_pid);
	FILE *f = fopen(path, "re");
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, "libasan") != NULL;
	if (f)
		fclose(f);
	return found;
}

static int holder_opens_many(const struct child_ctx *cx)
{
	const struct hold_plan *plan = cx->arg;
	struct barkeep_open_params p = { .lease_id = plan->lease_id };
	struct barkeep *bk = test_connect(sock_path, "many");
	struct barkeep_lease *l;
	if (!bk)
		return 1;
	for (int i = 0; i < HOLDERS / HOLDER_PROCS; i++)
		if (barkeep_open(bk, &p, &l) < 0) {
			fprintf(stderr, "  open %d: %s\n", i, barkeep_error_message(bk));
			return 2;
		}
	child_signal(cx);
	child_wait(cx);
	barkeep_disconnect(bk); /* ends every hold; the fds close with the process */
	return 0;
}

static void test_thousand_holders(void)
{
	struct barkeep_lease *mine;
	struct barkeep *bk = owner_with_lease(&mine);
	struct barkeep_grant g;
	struct child ch[HOLDER_PROCS];
	if (!bk)
		return;
	CHECK_EQ(grant_gid(bk, mine->id, 0, &g), 0);
	struct hold_plan plan = { mine->id, 0 };
	/* The daemon's fdinfo handles (daemon/fdinfo.h) close one to two
	 * seconds after the last release: let them go first, so that the
	 * counts see holders only. */
	usleep(2200 * 1000);
	int fds0 = test_count_fds(daemon_pid);
	long rss0 = daemon_rss_kib();
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool all = true;
	for (int i = 0; i < HOLDER_PROCS; i++)
		ch[i] = spawn_as((uid_t)(1000 + i % 2), true, holder_opens_many, &plan);
	for (int i = 0; i < HOLDER_PROCS; i++)
		all &= child_ready(&ch[i]);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(all);
	int fds1 = test_count_fds(daemon_pid);
	long rss1 = daemon_rss_kib();
	struct barkeep_holder *h;
	size_t n = 0;
	CHECK_EQ(barkeep_list_holders(bk, &h, &n), 0);
	if (n)
		free(h);
	printf("  %d holders opened in %.1f s; daemon: +%d fds, RSS %ld -> %ld KiB (+%.0f bytes per holder)\n",
	       HOLDERS, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       fds1 - fds0, rss0, rss1, (double)(rss1 - rss0) * 1024 / HOLDERS);
	CHECK_EQ(n, HOLDERS);
	CHECK_EQ(fds1 - fds0, HOLDERS + HOLDER_PROCS); /* one export each, one socket per client */
	/* doc/barkeepd.8.md: at most 1 KiB of the daemon's memory per holder. */
	if (daemon_sanitized())
		printf("  (ASan build: memory per holder not compared)\n");
	else
		CHECK(rss1 - rss0 <= HOLDERS);
	for (int i = 0; i < HOLDER_PROCS; i++)
		CHECK_EQ(child_finish(&ch[i]), 0);
	barkeep_release(bk, mine);
	barkeep_disconnect(bk);
}

static int baseline_fds;

static void test_fds_back_to_baseline(void)
{
	CHECK_EQ(test_fds_report(daemon_pid, baseline_fds), baseline_fds);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sharing_test SOCKET DAEMON_PID VRAM_FILE_OF_GPU0\n");
		return 2;
	}
	sock_path = argv[1];
	daemon_pid = atoi(argv[2]);
	vram0 = argv[3];
	baseline_fds = test_count_fds(daemon_pid);

	RUN(test_token_open);
	RUN(test_token_refusals);
	RUN(test_read_only);
	RUN(test_reset_reaches_holders);
	RUN(test_owner_release_ends_all);
	RUN(test_owner_release_outlived);
	RUN(test_revoke_grant_ends_holder);
	RUN(test_thousand_holders);
	RUN(test_fds_back_to_baseline);
	return UNIT_END();
}

// SPDX-License-Identifier: MIT
/*
 * The soak's children. An fd holder gets a copy of a lease's dma-buf over
 * a socketpair and keeps it for a random while, so the window must stay
 * out of use after its lease ends. A tenant connects on its own, takes a
 * few leases, tells the soak where they are, and dies without releasing
 * them: at once, after a while, or by SIGKILL. Each child's windows stay in
 * the ledger until the child is reaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/testlib.h"
#include "tests/soak/soak.h"

#define MAX_CHILDREN 64
#define TENANT_LEASES 3

struct child {
	pid_t pid;
	int64_t kill_at; /* SIGKILL then, if still alive */
};

static struct child children[MAX_CHILDREN];
static size_t n_children;

/* A window a tenant took, as it reports it. */
struct tenant_window {
	uint32_t dev;
	uint64_t off, size;
};

/* In a child: keep only fd (as 3) and stdio. */
static void child_keep(int fd)
{
	if (dup2(fd, 3) < 0)
		_exit(2);
	close_range(4, ~0u, 0);
}

static pid_t child_fork(int64_t lifetime_ms)
{
	if (n_children == MAX_CHILDREN)
		return -EAGAIN;
	pid_t pid = fork();
	if (pid > 0)
		children[n_children++] = (struct child){ pid, soak_now_ms() + lifetime_ms };
	return pid;
}

void children_pass_fd(int fd, uint32_t dev, uint64_t off, uint64_t size, uint64_t key)
{
	int sv[2];
	int64_t hold_ms = (int64_t)soak_below(3000);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	pid_t pid = child_fork(hold_ms + 2000);
	if (pid == 0) {
		child_keep(sv[1]);
		int copy = test_recv_fd(3);
		if (copy >= 0)
			usleep((useconds_t)hold_ms * 1000);
		_exit(0);
	}
	close(sv[1]);
	/* The span goes in before the child has the copy: conservative. */
	if (pid > 0 && test_send_fd(sv[0], fd) == 0)
		ledger_add(dev, off, size, key, pid);
	close(sv[0]);
}

static void tenant_main(uint64_t seed)
{
	struct barkeep *bk;
	struct barkeep_device *d;
	size_t n;

	srandom((unsigned)seed);
	if (barkeep_connect(opts.sock, "soak-tenant", &bk) < 0 || barkeep_list_devices(bk, &d, &n) < 0 ||
	    n == 0)
		_exit(0);
	for (int i = 0; i < 1 + random() % TENANT_LEASES; i++) {
		const struct barkeep_device *dv = &d[random() % (long)n];
		struct barkeep_alloc_params p = { .by_id = true, .device_id = dv->id,
						  .size = (uint64_t)dv->granule << (random() % 4) };
		struct barkeep_lease *l;
		if (barkeep_alloc(bk, &p, &l) < 0)
			continue;
		struct tenant_window w = { l->device_id, l->bar_offset, l->size };
		if (write(3, &w, sizeof(w)) != sizeof(w))
			_exit(1);
		/* The lease and its fd stay: the process dies with them. */
	}
	close(3);
	switch (random() % 3) {
	case 0:
		_exit(0);
	case 1:
		usleep((useconds_t)(random() % 2000) * 1000);
		_exit(0);
	default:
		pause(); /* until SIGKILL */
	}
	_exit(0);
}

void children_spawn_tenant(void)
{
	int p[2];
	uint64_t seed = soak_rand();

	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid_t pid = child_fork((int64_t)soak_below(3000));
	if (pid == 0) {
		child_keep(p[1]);
		tenant_main(seed);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return;
	}
	/* Its windows go into the ledger as it reports them; it takes a few ms. */
	struct tenant_window w;
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	while (poll(&pfd, 1, 5000) > 0 && read(p[0], &w, sizeof(w)) == sizeof(w))
		ledger_add(w.dev, w.off, w.size, ledger_new_key(), pid);
	close(p[0]);
}

void children_reap(void)
{
	int64_t now = soak_now_ms();
	for (size_t i = 0; i < n_children;) {
		struct child *c = &children[i];
		if (now >= c->kill_at)
			kill(c->pid, SIGKILL);
		if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
			ledger_drop_child(c->pid);
			*c = children[--n_children];
		} else {
			i++;
		}
	}
}

void children_stop(void)
{
	while (n_children) {
		kill(children[n_children - 1].pid, SIGKILL);
		waitpid(children[n_children - 1].pid, NULL, 0);
		ledger_drop_child(children[n_children - 1].pid);
		n_children--;
	}
}

size_t children_live(void)
{
	return n_children;
}

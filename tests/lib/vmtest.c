// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/testlib.h"
#include "tests/lib/vmtest.h"

struct barkeep *test_connect(const char *sock, const char *name)
{
	struct barkeep *bk = NULL;
	if (barkeep_connect(sock, name, &bk) < 0)
		fprintf(stderr, "  connect: %s\n", barkeep_error_message(NULL));
	return bk;
}

int test_alloc_on(struct barkeep *bk, uint32_t dev, uint64_t size, struct barkeep_lease **ret)
{
	struct barkeep_alloc_params p = { .by_id = true, .device_id = dev, .size = size };
	return barkeep_alloc(bk, &p, ret);
}

uint64_t test_free_bytes(struct barkeep *bk, uint32_t dev)
{
	struct barkeep_device *d;
	size_t n;
	uint64_t f = 0;
	if (barkeep_list_devices(bk, &d, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (d[i].id == dev)
			f = d[i].free_bytes;
	free(d);
	return f;
}

pid_t test_holder_start(int fd, int *ret_sock)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		close(sv[0]);
		int copy = test_recv_fd(sv[1]);
		char c;
		/* Hold the buffer until told to let go. */
		if (copy < 0 || read(sv[1], &c, 1) != 1)
			_exit(1);
		close(copy);
		_exit(write(sv[1], "k", 1) == 1 ? 0 : 1);
	}
	close(sv[1]);
	if (test_send_fd(sv[0], fd) < 0) {
		close(sv[0]);
		waitpid(pid, NULL, 0);
		return -EIO;
	}
	*ret_sock = sv[0];
	return pid;
}

int test_holder_release(pid_t pid, int sock)
{
	char c;
	int st = 0, ok = write(sock, "g", 1) == 1 && read(sock, &c, 1) == 1;
	close(sock);
	ok &= waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	return ok ? 0 : -1;
}

// SPDX-License-Identifier: MIT
#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/codec.h"
#include "tests/lib/testlib.h"
#include "tests/lib/vmtest.h"

struct barkeep *test_connect(const char *sock, const char *name)
{
	struct barkeep *bk = NULL;
	if (barkeep_connect(sock, name, &bk) < 0)
		fprintf(stderr, "  connect: %s\n", barkeep_error_message(NULL));
	return bk;
}

struct barkeep_device *test_devices(const char *sock, size_t want)
{
	struct barkeep *bk = test_connect(sock, "list");
	struct barkeep_device *d = NULL;
	size_t n = 0;

	if (!bk)
		return NULL;
	if (barkeep_list_devices(bk, &d, &n) < 0)
		fprintf(stderr, "  list devices: %s\n", barkeep_error_message(bk));
	else if (n != want)
		fprintf(stderr, "  list devices: %zu devices, want %zu\n", n, want);
	barkeep_disconnect(bk);
	if (d && n != want) {
		free(d);
		d = NULL;
	}
	return d;
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

int test_raw_connect(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int test_raw_hello(int fd, uint32_t caps)
{
	uint8_t buf[PROTO_MAX_MESSAGE];
	struct proto_msg m = { .opcode = PROTO_OP_HELLO, .request_id = 1 };
	m.hello.min_version = m.hello.max_version = 1;
	m.hello.capabilities = caps;
	int n = proto_encode(&m, buf, sizeof(buf), NULL);
	if (n < 0 || proto_send(fd, buf, (size_t)n, NULL, 0) < 0)
		return -1;
	return recv(fd, buf, sizeof(buf), 0) > 0 ? 0 : -1;
}

int test_send_raw(int fd, const void *pkt, size_t len, const int *fds, size_t n_fds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)] = {};
	struct iovec iov = { (void *)pkt, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (n_fds > 4)
		return -1;
	if (n_fds) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

int test_expect_error_and_hangup(int fd, unsigned timeout_s, char *msg, size_t msg_size)
{
	uint8_t buf[PROTO_MAX_MESSAGE];
	struct proto_msg m;
	int code = 0;

	struct timeval tv = { (time_t)timeout_s, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n > 0) {
		if (proto_decode(buf, (size_t)n, 0, PROTO_FROM_SERVER, &m, NULL) < 0 ||
		    m.opcode != PROTO_OP_ERROR || !m.error.message[0]) {
			close(fd);
			return -1;
		}
		code = (int)m.error.code;
		if (msg)
			snprintf(msg, msg_size, "%s", m.error.message);
		n = recv(fd, buf, sizeof(buf), 0);
	}
	close(fd);
	return n == 0 ? code : -1;
}

int test_as_user(uid_t uid, int (*fn)(void))
{
	pid_t p = fork();
	if (p == 0) {
		if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0)
			_exit(99);
		_exit(fn());
	}
	int st;
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return 98;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 98;
}

static sigjmp_buf fault_env;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(fault_env, 1);
}

/* One 32-bit load or store with SIGBUS caught around it alone. */
static bool access32(volatile uint32_t *p, uint32_t *v, bool store)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	volatile bool good = false;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(fault_env, 1) == 0) {
		if (store) {
			*p = *v;
			__sync_synchronize();
		} else {
			*v = *p;
		}
		good = true;
	}
	sigaction(SIGBUS, &old, NULL);
	return good;
}

bool test_read32(const volatile uint32_t *p, uint32_t *ret)
{
	return access32((volatile uint32_t *)p, ret, false);
}

bool test_write32(volatile uint32_t *p, uint32_t v)
{
	return access32(p, &v, true);
}

void test_dmabuf_name(int fd, char *buf, size_t size)
{
	char path[64], line[256];

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "name:", 5) == 0)
			snprintf(buf, size, "%.*s", (int)strcspn(line + 6, "\n"), line + 6);
	if (f)
		fclose(f);
}

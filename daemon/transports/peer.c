// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon/transports/peer.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int peer_parse_cgroup(const char *text, char *buf, size_t size)
{
	for (const char *line = text; *line; ) {
		const char *eol = strchrnul(line, '\n');
		if (strncmp(line, "0::", 3) == 0) {
			size_t len = (size_t)(eol - line) - 3;
			if (len == 0 || len >= size)
				return len ? -ENAMETOOLONG : -ENOENT;
			memcpy(buf, line + 3, len);
			buf[len] = '\0';
			return 0;
		}
		line = *eol ? eol + 1 : eol;
	}
	return -ENOENT;
}

/* The peer's pidfd: from the socket where the kernel keeps it, else by pid. */
static int peer_pidfd(int fd, pid_t pid)
{
	int pidfd = -EBADF;
	socklen_t len = sizeof(pidfd);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0)
		return pidfd;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return pidfd >= 0 ? pidfd : -errno;
}

int peer_read_cgroup(int fd, pid_t pid, char *buf, size_t size)
{
	char path[64], text[4096];
	ssize_t n;

	if (pid <= 0)
		return -ESRCH;
	_cleanup_close_ int pidfd = peer_pidfd(fd, pid);
	if (pidfd == -ESRCH)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	_cleanup_close_ int cfd = open(path, O_RDONLY | O_CLOEXEC);
	if (cfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(cfd, text, sizeof(text) - 1);
	if (n < 0)
		return -errno;
	text[n] = '\0';
	/* Still alive after the read: pid was this process all along. */
	if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 && errno == ESRCH)
		return -ESRCH;
	return peer_parse_cgroup(text, buf, size);
}

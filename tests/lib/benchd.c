// SPDX-License-Identifier: MIT
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/benchd.h"
#include "tests/lib/stats.h"

pid_t bench_daemon_start(const char *name, const char *dir, const char *sections,
			 char *ret_sock, size_t sock_size)
{
	char exe[PATH_MAX], conf[PATH_MAX], log[PATH_MAX], daemon_path[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 0)
		bench_die(name, "cannot find myself: %m");
	exe[n] = '\0';
	snprintf(daemon_path, sizeof(daemon_path), "%s/barkeepd", dirname(dirname(exe)));
	snprintf(conf, sizeof(conf), "%s/barkeep.conf", dir);
	snprintf(log, sizeof(log), "%s/barkeepd.log", dir);
	snprintf(ret_sock, sock_size, "%s/barkeep.sock", dir);
	(void)mkdir(dir, 0755);
	FILE *f = fopen(conf, "w");
	if (!f)
		bench_die(name, "cannot write %s: %m", conf);
	fprintf(f, "[daemon]\nsocket = %s\nsocket-group = root\nlog-level = notice\n\n%s",
		ret_sock, sections);
	fclose(f);
	pid_t pid = fork();
	if (pid < 0)
		bench_die(name, "fork: %m");
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		execl(daemon_path, "barkeepd", "--config", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		struct stat st;
		if (stat(ret_sock, &st) == 0)
			return pid;
		usleep(100 * 1000);
	}
	bench_die(name, "%s did not listen on %s (see %s)", daemon_path, ret_sock, log);
}

void bench_daemon_stop(const char *name, const char *dir, pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bench_die(name, "barkeepd exited with status %d (see %s/barkeepd.log)", st, dir);
}

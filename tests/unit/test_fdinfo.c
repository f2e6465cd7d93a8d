// SPDX-License-Identifier: MIT
/*
 * The loop's fdinfo handles (daemon/fdinfo.c): what they answer for files
 * that are not dma-bufs, that they stay bounded, and that they close when
 * idle. Real dma-bufs are the VM suites' (10-barkeepd's window reuse rule).
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/macro.h"
#include "common/vfio.h"
#include "daemon/fdinfo.h"
#include "tests/unit/unit.h"

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* fdinfo of a VFIO dma-buf as Linux 7.2 prints it (KERNEL-FACTS.md). */
static void test_parse_dmabuf_fdinfo(void)
{
	static const char text[] = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1042\n"
				   "size:\t4096\ncount:\t2\nexp_name:\tvfio_pci_core\n"
				   "name:\tbarkeep:7:1000\n";
	char exp_name[16];
	long count = 0;

	CHECK_EQ(dmabuf_fdinfo_parse(text, &count, exp_name, sizeof(exp_name)), 0);
	CHECK_EQ(count, 2);
	CHECK(strcmp(exp_name, "vfio_pci_core") == 0);
	/* Cut to the room given. */
	CHECK_EQ(dmabuf_fdinfo_parse(text, NULL, exp_name, 5), 0);
	CHECK(strcmp(exp_name, "vfio") == 0);
	/* A key must match a whole name at a line start: "count" is not
	 * "mycount", nor a line's middle. */
	CHECK_EQ(dmabuf_fdinfo_parse("mycount:\t9\nx count:\t8\ncount:\t1\n", &count, NULL, 0), 0);
	CHECK_EQ(count, 1);
	CHECK_EQ(dmabuf_fdinfo_parse("counter:\t5\ncount: 3", &count, NULL, 0), 0);
	CHECK_EQ(count, 3);
	/* A count that is not a decimal number is refused, not read as 0. */
	count = 7;
	CHECK_EQ(dmabuf_fdinfo_parse("count:\t\nexp_name:\tx\n", &count, NULL, 0), -EBADMSG);
	CHECK_EQ(dmabuf_fdinfo_parse("count:\t-1\n", &count, NULL, 0), -EBADMSG);
	CHECK_EQ(dmabuf_fdinfo_parse("count:\t12ab\n", &count, NULL, 0), -EBADMSG);
	CHECK_EQ(dmabuf_fdinfo_parse("count:\t99999999999999999999\n", &count, NULL, 0), -ERANGE);
	CHECK_EQ(count, 7);
	CHECK_EQ(dmabuf_fdinfo_parse("count:\t9223372036854775807", &count, NULL, 0), 0);
	CHECK_EQ(count, 9223372036854775807L);
	/* What a pipe's fdinfo has: no count, so not a dma-buf. */
	CHECK_EQ(dmabuf_fdinfo_parse("pos:\t0\nflags:\t00\nmnt_id:\t15\nino:\t77\n", &count,
				     NULL, 0), -ENOTTY);
	CHECK_EQ(dmabuf_fdinfo_parse("", NULL, exp_name, sizeof(exp_name)), -ENOTTY);
}

static void test_not_a_dmabuf(void)
{
	struct event_base *base = event_base_new();
	struct fdinfo_cache *c = fdinfo_cache_new(base);
	int p[2];
	long count = 42;

	CHECK(c);
	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(fdinfo_dmabuf_count(c, p[0], &count), -ENOTTY);
	CHECK_EQ(fdinfo_dmabuf_count(c, p[0], &count), -ENOTTY); /* through the kept handle */
	CHECK_EQ(fdinfo_dmabuf_count(NULL, p[0], &count), -ENOTTY);
	CHECK_EQ(count, 42);
	close(p[0]);
	close(p[1]);
	fdinfo_cache_free(c);
	event_base_free(base);
}

static void on_stop(evutil_socket_t fd, short what, void *userdata)
{
	event_base_loopbreak(userdata);
}

static void test_bounded_then_closed_when_idle(void)
{
	struct event_base *base = event_base_new();
	struct fdinfo_cache *c = fdinfo_cache_new(base);
	int p[8][2];
	long count;

	for (size_t i = 0; i < ARRAY_SIZE(p); i++)
		CHECK_EQ(pipe(p[i]), 0);
	int before = open_fds();
	for (size_t i = 0; i < ARRAY_SIZE(p); i++)
		(void)fdinfo_dmabuf_count(c, p[i][0], &count);
	/* At most FDINFO_HANDLES_MAX handles and the directory. */
	int held = open_fds() - before;
	CHECK(held >= 1 && held <= FDINFO_HANDLES_MAX + 1);

	struct event *stop = evtimer_new(base, on_stop, base);
	/* Closed one to two periods after the last check (lazytimer.h). */
	const unsigned ms = 2 * FDINFO_IDLE_MS + 300;
	const struct timeval later = { ms / 1000, ms % 1000 * 1000 };
	evtimer_add(stop, &later);
	event_base_dispatch(base);
	CHECK_EQ(open_fds(), before);

	event_free(stop);
	for (size_t i = 0; i < ARRAY_SIZE(p); i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
	fdinfo_cache_free(c);
	event_base_free(base);
}

int main(void)
{
	RUN(test_parse_dmabuf_fdinfo);
	RUN(test_not_a_dmabuf);
	RUN(test_bounded_then_closed_when_idle);
	return UNIT_END();
}

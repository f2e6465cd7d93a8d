// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "tests/lib/stats.h"

void bench_die(const char *name, const char *fmt, ...)
{
	int saved = errno; /* for %m */
	va_list ap;

	fprintf(stderr, "%s: ", name);
	errno = saved;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILURE);
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void bench_sort_u64(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
}

uint64_t bench_percentile_u64(uint64_t *v, size_t n, unsigned p)
{
	size_t rank = (n * p + 99) / 100; /* ceil(p n / 100) */

	bench_sort_u64(v, n);
	return v[rank ? rank - 1 : 0];
}

uint64_t bench_cpu_us(int pid)
{
	clockid_t clock;
	struct timespec ts;

	/* The scheduler's own account, to the nanosecond: clock ticks would
	 * round a few hundred µs per iteration to 10 ms steps. */
	if (clock_getcpuclockid(pid, &clock) != 0 || clock_gettime(clock, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct bench_switches bench_switches(int pid)
{
	struct bench_switches s = {};
	char path[64], line[128];
	unsigned long long v;
	FILE *f;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/status", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "re");
	if (!f)
		return s;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
			s.voluntary = v;
		else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
			s.involuntary = v;
	}
	fclose(f);
	return s;
}

/* The fields where struct proto_wire_header puts them, little-endian. */
#define HEADER_AT(pkt, field) ((pkt) + offsetof(struct proto_wire_header, field))

uint16_t bench_packet_opcode(const uint8_t *pkt)
{
	uint16_t v;
	memcpy(&v, HEADER_AT(pkt, opcode), sizeof(v));
	return le16toh(v);
}

uint32_t bench_packet_request_id(const uint8_t *pkt)
{
	uint32_t v;
	memcpy(&v, HEADER_AT(pkt, request_id), sizeof(v));
	return le32toh(v);
}

void bench_packet_set_request_id(uint8_t *pkt, uint32_t id)
{
	uint32_t v = htole32(id);
	memcpy(HEADER_AT(pkt, request_id), &v, sizeof(v));
}

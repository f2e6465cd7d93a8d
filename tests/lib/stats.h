/* SPDX-License-Identifier: MIT */
/* What the benchmarks share: dying with a message, the clock, sorting samples. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

/* Prints "NAME: " and the message (%m is the errno at the call) to stderr
 * and exits with EXIT_FAILURE. */
_noreturn_ _printf_(2, 3) void bench_die(const char *name, const char *fmt, ...);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* Sorts n samples in ascending order. */
void bench_sort_u64(uint64_t *v, size_t n);
/* CPU time of process pid (0: the caller) in microseconds, all its threads;
 * 0 when unknown. */
uint64_t bench_cpu_us(int pid);
/* Context switches so far of process pid's main thread (0: the caller's),
 * as /proc counts them; zeroes when unknown. */
struct bench_switches {
	uint64_t voluntary;   /* it waited */
	uint64_t involuntary; /* it was preempted */
};
struct bench_switches bench_switches(int pid);
/* Header fields of an encoded packet (PROTOCOL.md section 3), read and
 * written in place: the benchmarks' bare sides do not decode. */
uint16_t bench_packet_opcode(const uint8_t *pkt);
uint32_t bench_packet_request_id(const uint8_t *pkt);
void bench_packet_set_request_id(uint8_t *pkt, uint32_t id);
/* The nearest-rank p-th percentile (1..100) of n > 0 samples; sorts v. */
uint64_t bench_percentile_u64(uint64_t *v, size_t n, unsigned p);

/* LTTng-UST side of the usertrace benchmark suite (bench/cmd/benchrun).
 *
 *   bench_lttng three|blob N THREADS [SIZE]
 *
 * Fires N events in all (N/THREADS per thread) of bench:three (the suite's
 * payload: uint64, uint32, 16-byte string) or bench:blob (SIZE bytes), after
 * one warm-up event per thread. Prints one line of key=value pairs:
 * ns_per_event is wall time (first thread released to last thread done) / N.
 * The loops are named run_* and not inlined, for callgrind --toggle-collect. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_tp.h"

static const char STR[17] = "sixteen bytes!!!"; /* 16 bytes + NUL, as usertrace's */
static int g_blob;
static uint8_t *g_data;
static size_t g_size;
static pthread_barrier_t g_bar;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

__attribute__((noinline)) void run_three(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		lttng_ust_tracepoint(bench, three, i, (uint32_t)i, STR);
}

__attribute__((noinline)) void run_blob(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		lttng_ust_tracepoint(bench, blob, g_data, g_size);
}

struct targ { uint64_t n, t0, t1; };

static void *worker(void *p)
{
	struct targ *a = p;
	/* warm-up: per-thread lazy initialization is not timed */
	if (g_blob) run_blob(1); else run_three(1);
	pthread_barrier_wait(&g_bar);
	a->t0 = now_ns();
	if (g_blob) run_blob(a->n); else run_three(a->n);
	a->t1 = now_ns();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s three|blob N THREADS [SIZE]\n", argv[0]);
		return 2;
	}
	g_blob = strcmp(argv[1], "blob") == 0;
	uint64_t n = strtoull(argv[2], NULL, 0);
	int nt = atoi(argv[3]);
	if (nt < 1 || nt > 64) { fprintf(stderr, "threads: 1..64\n"); return 2; }
	g_size = argc > 4 ? strtoull(argv[4], NULL, 0) : 0;
	g_data = calloc(1, g_size + 1);
	for (size_t i = 0; i < g_size; i++) g_data[i] = (uint8_t)i;
	pthread_t th[64];
	struct targ a[64];
	pthread_barrier_init(&g_bar, NULL, nt);
	for (int i = 0; i < nt; i++) {
		a[i].n = n / nt + ((uint64_t)i < n % nt);
		pthread_create(&th[i], NULL, worker, &a[i]);
	}
	uint64_t t0 = UINT64_MAX, t1 = 0;
	for (int i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		if (a[i].t0 < t0) t0 = a[i].t0;
		if (a[i].t1 > t1) t1 = a[i].t1;
	}
	printf("n=%llu threads=%d warmup=%d wall_ns=%llu ns_per_event=%.3f\n",
	       (unsigned long long)n, nt, nt, (unsigned long long)(t1 - t0), (double)(t1 - t0) / n);
	return 0;
}

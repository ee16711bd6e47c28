/* ftrace side of the usertrace benchmark suite (bench/cmd/benchrun).
 *
 *   bench_marker TRACEFS_DIR N THREADS
 *
 * Each event formats the suite's payload (uint64, uint32, 16-byte string)
 * with snprintf and write()s the line to TRACEFS_DIR/trace_marker, as a C
 * program tracing through ftrace does. Prints key=value pairs like
 * bench_lttng, and errors=COUNT (failed writes). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const char STR[17] = "sixteen bytes!!!";
static int g_fd;
static pthread_barrier_t g_bar;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

struct targ { uint64_t n, t0, t1; long errs; };

__attribute__((noinline)) long run_marker(uint64_t n)
{
	char buf[128];
	long errs = 0;
	for (uint64_t i = 0; i < n; i++) {
		int l = snprintf(buf, sizeof buf, "a=%llu b=%u s=%s", (unsigned long long)i, (uint32_t)i, STR);
		if (write(g_fd, buf, l) != l) errs++;
	}
	return errs;
}

static void *worker(void *p)
{
	struct targ *a = p;
	pthread_barrier_wait(&g_bar);
	a->t0 = now_ns();
	a->errs = run_marker(a->n);
	a->t1 = now_ns();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) { fprintf(stderr, "usage: %s TRACEFS_DIR N THREADS\n", argv[0]); return 2; }
	char path[512];
	snprintf(path, sizeof path, "%s/trace_marker", argv[1]);
	uint64_t n = strtoull(argv[2], NULL, 0);
	int nt = atoi(argv[3]);
	if (nt < 1 || nt > 64) { fprintf(stderr, "threads: 1..64\n"); return 2; }
	g_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (g_fd < 0) { perror(path); return 1; }
	pthread_t th[64];
	struct targ a[64];
	pthread_barrier_init(&g_bar, NULL, nt);
	for (int i = 0; i < nt; i++) {
		a[i].n = n / nt + ((uint64_t)i < n % nt);
		pthread_create(&th[i], NULL, worker, &a[i]);
	}
	uint64_t t0 = UINT64_MAX, t1 = 0;
	long errs = 0;
	for (int i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		if (a[i].t0 < t0) t0 = a[i].t0;
		if (a[i].t1 > t1) t1 = a[i].t1;
		errs += a[i].errs;
	}
	printf("n=%llu threads=%d wall_ns=%llu ns_per_event=%.3f errors=%ld\n",
	       (unsigned long long)n, nt, (unsigned long long)(t1 - t0), (double)(t1 - t0) / n, errs);
	return errs ? 1 : 0;
}

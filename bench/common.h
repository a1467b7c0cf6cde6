/*
 * common.h — helpers shared by the benchmark programs in bench/: clock, environment, the
 * offer both sides send, samples and their statistics, the process's own memory and threads.
 *
 * Header-only (static functions) so that each program is one translation unit.
 */
#ifndef KVS_BENCH_COMMON_H
#define KVS_BENCH_COMMON_H

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* The offer both the library driver and the floor send: examples-c/viewer.c's browser-style
 * offer (video + audio + data channel), cut out by scripts/bench.sh. */
#include "bench_offer.h"

static const char *bench_prog = "bench";

static inline void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* snprintf that refuses to truncate: a value too long for its buffer is an error. */
#define bprintf(buf, cap, ...)                                   \
  do {                                                           \
    int bprintf_n_ = snprintf((buf), (cap), __VA_ARGS__);        \
    if (bprintf_n_ < 0 || (size_t)bprintf_n_ >= (size_t)(cap))   \
      die("%s: %s too long", __func__, #buf);                    \
  } while (0)

/* Prints "<prog>: error: ..." on stderr and exits 1. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: error: ", bench_prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* A required environment variable: a clear error naming it when unset or empty. */
static inline const char *env_req(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v)
    die("environment variable %s is not set (scripts/bench.sh exports the emulator's env file)",
        name);
  return v;
}

static inline const char *env_opt(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

static inline int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A positive integer argument, or a clear error naming what it is. */
static inline long parse_count(const char *s, const char *what, long max) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > max)
    die("%s must be an integer in 1..%ld, got \"%s\"", what, max, s);
  return v;
}

static inline int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile (p in 0..100) of v[0..n), which it sorts. */
static inline int64_t percentile(int64_t *v, size_t n, int p) {
  if (n == 0) return -1;
  qsort(v, n, sizeof *v, cmp_i64);
  size_t rank = (size_t)((p * n + 99) / 100); /* ceil(p/100 * n) */
  if (rank < 1) rank = 1;
  return v[rank - 1];
}

/* A "VmRSS:" style line of /proc/self/status, in KiB (-1 if absent). */
static inline long proc_status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t klen = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      v = strtol(line + klen + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

/* Threads of this process: the entries of /proc/self/task. */
static inline int thread_count(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* CPU time (user + system, all threads) and voluntary context switches of this process. */
static inline void self_usage(int64_t *cpu_ns, long *nvcsw, long *nivcsw) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  *cpu_ns = ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
            ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
  *nvcsw = ru.ru_nvcsw;
  *nivcsw = ru.ru_nivcsw;
}

/* Parses "1,10,100" into up to `cap` increasing counts; returns how many. */
static inline size_t parse_counts(const char *s, long *out, size_t cap, long max) {
  size_t n = 0;
  char buf[256];
  bprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (n == cap) die("too many counts in \"%s\" (at most %zu)", s, cap);
    out[n] = parse_count(tok, "a viewer count", max);
    if (n > 0 && out[n] <= out[n - 1]) die("counts must increase: \"%s\"", s);
    n++;
  }
  if (n == 0) die("no counts in \"%s\"", s);
  return n;
}

/* The idle figure, printed the same way by both sides. */
static inline void print_idle(const char *side, double secs, int64_t cpu_ns, long nvcsw,
                              long nivcsw) {
  printf("%s.idle.seconds %.1f\n", side, secs);
  printf("%s.idle.cpu_us %lld\n", side, (long long)(cpu_ns / 1000));
  printf("%s.idle.nvcsw %ld\n", side, nvcsw);
  printf("%s.idle.nivcsw %ld\n", side, nivcsw);
}

/* The warm loop both sides run for bench/spawn.c, in lockstep over stdin/stdout: one command a
 * line (connect, discover, rtt, quit), one time in ns a line. `connect` opens a session (with
 * discovery when asked), returns the time it was open, and closes it untimed; `rtt` is one
 * offer -> answer on a session kept open. One of each first, so that what is timed is warm. */
typedef struct {
  int64_t (*connect)(void *side, int discovering);
  void (*rtt)(void *side);
  void *side;
} BenchWarm;

static inline void bench_warm_loop(const BenchWarm *w) {
  w->connect(w->side, 0);
  w->connect(w->side, 1);
  w->rtt(w->side);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = '\0';
    int64_t t0 = mono_ns(), t1;
    if (strcmp(line, "connect") == 0 || strcmp(line, "discover") == 0) {
      t1 = w->connect(w->side, line[0] == 'd');
    } else if (strcmp(line, "rtt") == 0) {
      w->rtt(w->side);
      t1 = mono_ns();
    } else if (strcmp(line, "quit") == 0) {
      break;
    } else {
      die("unknown command \"%s\" (connect, discover, rtt, quit)", line);
    }
    printf("%lld\n", (long long)(t1 - t0));
  }
}

#endif

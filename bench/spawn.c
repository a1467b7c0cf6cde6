/*
 * spawn.c — the benchmark harness: runs the library's and the floor's programs interleaved,
 * so that drift (the other load on the machine, the emulator's state) hits both alike.
 *
 *   spawn cold RUNS LABEL PROGRAM [ARGS...] [::: LABEL PROGRAM [ARGS...]]...
 *       RUNS rounds; each round posix_spawns every program once, in the order given. Each
 *       prints "answer_mono_ns <CLOCK_MONOTONIC ns>"; the time is that minus the clock read
 *       just before posix_spawn, so exec, dynamic loading and library initialisation count.
 *       Peak RSS from wait4's ru_maxrss. Prints, per label:
 *         LABEL.median_ns, LABEL.p90_ns, LABEL.maxrss_kib (median), LABEL.maxrss_max_kib,
 *         LABEL.runs
 *
 *   spawn lockstep RUNS CMD[,CMD...] LABEL PROGRAM [ARGS...] [::: LABEL PROGRAM [ARGS...]]...
 *       Starts every program once (stdin and stdout on pipes) and waits for its "ready" line;
 *       then for each CMD, RUNS rounds, each sending CMD to every program in turn and reading
 *       back one time in ns. Prints LABEL.CMD.median_ns, LABEL.CMD.p90_ns, LABEL.CMD.runs.
 *
 * PROGRAM is a path (no PATH search). Every wait is bounded (KVS_BENCH_STEP_TIMEOUT_S,
 * default 60 s per program start or command); on a failure the harness kills the programs it
 * started and exits 1, the program's own stderr explaining why.
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

#define MAX_PROGS 8
#define MAX_RUNS 10000

typedef struct {
  const char *label;
  char **argv;
  pid_t pid;
  int to_child, from_child;
  char buf[4096];
  size_t len;
} Prog;

static Prog progs[MAX_PROGS];
static size_t nprogs;
static int step_timeout_ms = 60000;

static void kill_started(void) {
  for (size_t i = 0; i < nprogs; i++)
    if (progs[i].pid > 0) {
      kill(progs[i].pid, SIGKILL);
      waitpid(progs[i].pid, NULL, 0);
      progs[i].pid = 0;
    }
}

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "spawn: error: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  kill_started();
  exit(1);
}

/* Splits "LABEL PROGRAM ARGS... ::: LABEL PROGRAM ARGS..." (argv is NULL-terminated). */
static void parse_progs(char **argv) {
  while (*argv) {
    if (nprogs == MAX_PROGS) fail("at most %d programs", MAX_PROGS);
    Prog *p = &progs[nprogs++];
    p->label = *argv++;
    if (!*argv || strcmp(*argv, ":::") == 0) fail("label %s has no program", p->label);
    p->argv = argv;
    while (*argv && strcmp(*argv, ":::") != 0) argv++;
    if (*argv) *argv++ = NULL; /* ends this program's argv */
    if (access(p->argv[0], X_OK) != 0) fail("%s: %s is not an executable", p->label, p->argv[0]);
  }
  if (nprogs == 0) fail("no programs given");
}

/* Starts p with stdout (and, if want_stdin, stdin) on pipes; returns the time just before
 * posix_spawn. */
static int64_t start(Prog *p, int want_stdin) {
  int out[2], in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0 || (want_stdin && pipe2(in, O_CLOEXEC) != 0))
    fail("pipe: %s", strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  if (want_stdin) posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int64_t t0 = mono_ns();
  int rc = posix_spawn(&p->pid, p->argv[0], &fa, NULL, p->argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) fail("%s: posix_spawn %s: %s", p->label, p->argv[0], strerror(rc));
  close(out[1]);
  p->from_child = out[0];
  p->len = 0;
  if (want_stdin) {
    close(in[0]);
    p->to_child = in[1];
  } else {
    p->to_child = -1;
  }
  return t0;
}

/* One line from p's stdout, within the step timeout; NULL at EOF. */
static char *read_line(Prog *p) {
  int64_t deadline = mono_ns() + (int64_t)step_timeout_ms * 1000000;
  for (;;) {
    char *nl = memchr(p->buf, '\n', p->len);
    if (nl) {
      static char line[sizeof p->buf];
      size_t n = (size_t)(nl - p->buf);
      memcpy(line, p->buf, n);
      line[n] = '\0';
      memmove(p->buf, nl + 1, p->len - n - 1);
      p->len -= n + 1;
      return line;
    }
    if (p->len == sizeof p->buf - 1) fail("%s: output line too long", p->label);
    int64_t left = (deadline - mono_ns()) / 1000000;
    if (left <= 0) fail("%s: no output within %d ms", p->label, step_timeout_ms);
    struct pollfd pfd = {p->from_child, POLLIN, 0};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno != EINTR) fail("poll: %s", strerror(errno));
    if (r <= 0) continue;
    ssize_t n = read(p->from_child, p->buf + p->len, sizeof p->buf - 1 - p->len);
    if (n < 0 && errno != EINTR) fail("%s: read: %s", p->label, strerror(errno));
    if (n == 0) return NULL;
    if (n > 0) p->len += (size_t)n;
  }
}

static void on_alarm(int sig) { (void)sig; }

/* Waits for p to exit, bounded by the step timeout (an alarm interrupts wait4); fails unless
 * it exited 0. Returns ru_maxrss in KiB. */
static long reap(Prog *p) {
  int status;
  struct rusage ru;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART: wait4 returns EINTR */
  sigaction(SIGALRM, &sa, NULL);
  alarm((unsigned)(step_timeout_ms + 999) / 1000);
  pid_t r = wait4(p->pid, &status, 0, &ru);
  int err = errno;
  alarm(0);
  if (r < 0 && err == EINTR) fail("%s: did not exit within %d ms", p->label, step_timeout_ms);
  if (r < 0) fail("%s: wait4: %s", p->label, strerror(err));
  p->pid = 0;
  close(p->from_child);
  if (p->to_child >= 0) close(p->to_child);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("%s (%s) failed: %s %d", p->label, p->argv[0],
         WIFEXITED(status) ? "exit status" : "signal",
         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  return ru.ru_maxrss;
}

static void report(const char *key, int64_t *v, size_t n) {
  printf("%s.median_ns %lld\n", key, (long long)percentile(v, n, 50));
  printf("%s.p90_ns %lld\n", key, (long long)percentile(v, n, 90));
  printf("%s.runs %zu\n", key, n);
}

static int cold(long runs) {
  int64_t *times[MAX_PROGS], *rss[MAX_PROGS];
  for (size_t i = 0; i < nprogs; i++) {
    times[i] = calloc((size_t)runs, sizeof **times);
    rss[i] = calloc((size_t)runs, sizeof **rss);
    if (!times[i] || !rss[i]) fail("out of memory");
  }
  for (long r = 0; r < runs; r++) {
    for (size_t i = 0; i < nprogs; i++) {
      Prog *p = &progs[i];
      int64_t t0 = start(p, 0);
      char *line = read_line(p);
      long long at = 0;
      if (!line || sscanf(line, "answer_mono_ns %lld", &at) != 1)
        fail("%s: run %ld printed no answer_mono_ns line%s%s", p->label, r + 1,
             line ? ": " : "", line ? line : "");
      times[i][r] = at - t0;
      rss[i][r] = reap(p);
    }
    if ((r + 1) % 10 == 0) fprintf(stderr, "    %ld/%ld rounds\n", r + 1, runs);
  }
  for (size_t i = 0; i < nprogs; i++) {
    report(progs[i].label, times[i], (size_t)runs);
    printf("%s.maxrss_kib %lld\n", progs[i].label, (long long)percentile(rss[i], (size_t)runs, 50));
    printf("%s.maxrss_max_kib %lld\n", progs[i].label,
           (long long)percentile(rss[i], (size_t)runs, 100));
    free(times[i]);
    free(rss[i]);
  }
  return 0;
}

static int lockstep(long runs, char *cmds) {
  for (size_t i = 0; i < nprogs; i++) start(&progs[i], 1);
  for (size_t i = 0; i < nprogs; i++) {
    char *line = read_line(&progs[i]);
    if (!line || strcmp(line, "ready") != 0)
      fail("%s: expected \"ready\", got %s", progs[i].label, line ? line : "end of output");
  }
  signal(SIGPIPE, SIG_IGN);
  int64_t *v[MAX_PROGS];
  for (size_t i = 0; i < nprogs; i++) {
    v[i] = calloc((size_t)runs, sizeof **v);
    if (!v[i]) fail("out of memory");
  }
  for (char *cmd = strtok(cmds, ","); cmd; cmd = strtok(NULL, ",")) {
    for (long r = 0; r < runs; r++) {
      for (size_t i = 0; i < nprogs; i++) {
        Prog *p = &progs[i];
        if (dprintf(p->to_child, "%s\n", cmd) < 0) fail("%s: write: %s", p->label, strerror(errno));
        char *line = read_line(p), *end = NULL;
        if (!line) fail("%s: ended during \"%s\"", p->label, cmd);
        v[i][r] = strtoll(line, &end, 10);
        if (end == line || *end) fail("%s: \"%s\" answered \"%s\"", p->label, cmd, line);
      }
    }
    for (size_t i = 0; i < nprogs; i++) {
      char key[128];
      bprintf(key, sizeof key, "%s.%s", progs[i].label, cmd);
      report(key, v[i], (size_t)runs);
    }
    fprintf(stderr, "    %s: %ld rounds\n", cmd, runs);
  }
  for (size_t i = 0; i < nprogs; i++) {
    dprintf(progs[i].to_child, "quit\n");
    close(progs[i].to_child);
    progs[i].to_child = -1;
    reap(&progs[i]);
    free(v[i]);
  }
  return 0;
}

int main(int argc, char **argv) {
  bench_prog = "spawn";
  const char *usage = "usage: spawn cold RUNS LABEL PROGRAM [ARGS...] [::: ...] | "
                      "spawn lockstep RUNS CMD[,CMD...] LABEL PROGRAM [ARGS...] [::: ...]";
  if (env_opt("KVS_BENCH_STEP_TIMEOUT_S"))
    step_timeout_ms = (int)parse_count(env_opt("KVS_BENCH_STEP_TIMEOUT_S"),
                                       "KVS_BENCH_STEP_TIMEOUT_S", 3600) * 1000;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 5 && strcmp(argv[1], "cold") == 0) {
    long runs = parse_count(argv[2], "RUNS", MAX_RUNS);
    parse_progs(argv + 3);
    return cold(runs);
  }
  if (argc >= 6 && strcmp(argv[1], "lockstep") == 0) {
    long runs = parse_count(argv[2], "RUNS", MAX_RUNS);
    char *cmds = argv[3];
    parse_progs(argv + 4);
    return lockstep(runs, cmds);
  }
  die("%s", usage);
}

/*
 * viewers.c — the library in one long-lived process, through the C API: the warm figures,
 * memory and threads per viewer, and idle CPU. bench/floor.c has the same modes, done with
 * plain OpenSSL.
 *
 *   viewers serve             warm loop driven over stdin by bench/spawn.c (lockstep):
 *                             connect  kvs_viewer_connect with the known endpoint (closed after,
 *                                      untimed)
 *                             discover kvs_viewer_connect with discovery (Describe by name,
 *                                      GetEndpoint, GetIceServerConfig, WebSocket)
 *                             rtt      kvs_viewer_send(SDP_OFFER) until kvs_viewer_recv gives
 *                                      the SDP_ANSWER, on one connected viewer
 *                             quit
 *                             one time in ns per command
 *   viewers multi 1,10,100    N connected viewers (distinct client ids); VmRSS and threads
 *                             after each N
 *   viewers idle SECONDS      one connected viewer blocked in kvs_viewer_recv; CPU time and
 *                             context switches
 *
 * Environment: the emulator's env file, as bench/cold.c.
 */
#include "viewer_common.h"

static unsigned long client_seq;
static char payload[KVS_MAX_PAYLOAD_LEN + 1];

/* Connects a new viewer with a fresh client id; `discovering` leaves out ARN and endpoint. */
static KvsViewer *open_viewer(int discovering, const char *what) {
  char client_id[96];
  bprintf(client_id, sizeof client_id, "bench-lib-%s-%ld-%lu", what, (long)getpid(),
           client_seq++);
  return bench_connect(client_id, discovering);
}

static void close_viewer(KvsViewer *v) {
  int32_t rc = kvs_viewer_close(v);
  if (rc != KVS_OK) kvs_die(rc, "close");
}

static void offer_answer(KvsViewer *v) {
  int32_t rc = kvs_viewer_send(v, KVS_MSG_SDP_OFFER, BENCH_OFFER, strlen(BENCH_OFFER), NULL);
  if (rc != KVS_OK) kvs_die(rc, "send");
  for (;;) {
    KvsMessage msg;
    kvs_message_init(&msg, payload, sizeof payload);
    rc = kvs_viewer_recv(v, &msg, 10000);
    if (rc != KVS_OK) kvs_die(rc, "recv");
    if (msg.message_type == KVS_MSG_SDP_ANSWER) return;
  }
}

static int64_t warm_connect(void *rtt, int discovering) {
  (void)rtt;
  KvsViewer *v = open_viewer(discovering, "warm");
  int64_t opened = mono_ns();
  close_viewer(v);
  return opened;
}

static void warm_rtt(void *rtt) { offer_answer(rtt); }

static int mode_serve(void) {
  KvsViewer *rtt = open_viewer(0, "rtt");
  BenchWarm w = {warm_connect, warm_rtt, rtt};
  bench_warm_loop(&w);
  close_viewer(rtt);
  return 0;
}

static int mode_multi(const char *counts_arg) {
  long counts[8];
  size_t nc = parse_counts(counts_arg, counts, 8, 10000);
  KvsViewer **vs = calloc((size_t)counts[nc - 1], sizeof *vs);
  if (!vs) die("out of memory");
  long open = 0;
  for (size_t i = 0; i < nc; i++) {
    for (; open < counts[i]; open++) vs[open] = open_viewer(0, "multi");
    printf("lib.multi.%ld.rss_kib %ld\n", counts[i], proc_status_kib("VmRSS"));
    printf("lib.multi.%ld.threads %d\n", counts[i], thread_count());
  }
  for (long i = 0; i < open; i++) close_viewer(vs[i]);
  free(vs);
  return 0;
}

static int mode_idle(const char *secs_arg) {
  long secs = parse_count(secs_arg, "the idle seconds", 86400);
  KvsViewer *v = open_viewer(0, "idle");
  int64_t cpu0, cpu1;
  long vcs0, vcs1, ics0, ics1;
  self_usage(&cpu0, &vcs0, &ics0);
  int64_t start = mono_ns(), end = start + secs * 1000000000LL, now;
  while ((now = mono_ns()) < end) {
    KvsMessage msg;
    kvs_message_init(&msg, payload, sizeof payload);
    int32_t rc = kvs_viewer_recv(v, &msg, (int32_t)((end - now) / 1000000) + 1);
    if (rc != KVS_OK && rc != KVS_ERR_TIMEOUT) kvs_die(rc, "recv");
  }
  self_usage(&cpu1, &vcs1, &ics1);
  print_idle("lib", (double)(mono_ns() - start) / 1e9, cpu1 - cpu0, vcs1 - vcs0, ics1 - ics0);
  close_viewer(v);
  return 0;
}

int main(int argc, char **argv) {
  bench_prog = "viewers";
  const char *usage = "usage: viewers serve | multi 1,10,100 | idle SECONDS";
  if (argc == 2 && strcmp(argv[1], "serve") == 0) return mode_serve();
  if (argc == 3 && strcmp(argv[1], "multi") == 0) return mode_multi(argv[2]);
  if (argc == 3 && strcmp(argv[1], "idle") == 0) return mode_idle(argv[2]);
  die("%s", usage);
}

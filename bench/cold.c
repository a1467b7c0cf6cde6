/*
 * cold.c — one viewer session through the C API, for the cold-start figures: connect, send the
 * SDP offer, block in recv until the SDP answer, print its CLOCK_MONOTONIC time, close, exit.
 * bench/spawn.c starts it as a new process for each run and subtracts the time it took just
 * before posix_spawn, so loading the libraries and their initialisation count.
 *
 *   cold                 known endpoint: KVS_WSS_ENDPOINT, no discovery
 *   cold --discover      DescribeSignalingChannel (by KVS_CHANNEL_NAME),
 *                        GetSignalingChannelEndpoint and GetIceServerConfig through
 *                        KVS_CONTROL_PLANE_URL, then the WebSocket
 *
 * Output: "answer_mono_ns <ns>". Also linked statically (libkvs_viewer.a) for the size figure.
 */
#include "viewer_common.h"

int main(int argc, char **argv) {
  bench_prog = "cold";
  int discovering = argc == 2 && strcmp(argv[1], "--discover") == 0;
  if (argc > 2 || (argc == 2 && !discovering)) die("usage: cold [--discover]");

  char client_id[64];
  bprintf(client_id, sizeof client_id, "bench-lib-cold-%ld", (long)getpid());
  KvsViewer *v = bench_connect(client_id, discovering);
  int32_t rc = kvs_viewer_send(v, KVS_MSG_SDP_OFFER, BENCH_OFFER, strlen(BENCH_OFFER), NULL);
  if (rc != KVS_OK) kvs_die(rc, "send");

  static char payload[KVS_MAX_PAYLOAD_LEN + 1];
  for (;;) {
    KvsMessage msg;
    kvs_message_init(&msg, payload, sizeof payload);
    rc = kvs_viewer_recv(v, &msg, 10000);
    if (rc != KVS_OK) kvs_die(rc, "recv");
    if (msg.message_type == KVS_MSG_SDP_ANSWER) break;
  }
  int64_t t = mono_ns();
  printf("answer_mono_ns %lld\n", (long long)t);
  fflush(stdout);
  rc = kvs_viewer_close(v);
  if (rc != KVS_OK) kvs_die(rc, "close");
  return 0;
}

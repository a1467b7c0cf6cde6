/*
 * viewer_threads.c — the threading pattern a WebRTC integration needs:
 *
 *   - a receive thread sits blocked in kvs_viewer_recv() and hands the master's answer and
 *     candidates to the WebRTC stack as they arrive;
 *   - meanwhile other threads call kvs_viewer_send() with local ICE candidates the moment the
 *     stack gathers them (here: the main thread, trickling three candidates).
 *
 * The library allows exactly this on one handle: one thread in recv while others send; a send
 * goes out at once, it does not wait for the blocked recv. Everything else (connect, close) is
 * serialised by the caller — here the main thread joins the receive thread before closing.
 *
 * Same environment as viewer.c (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * AWS_REGION, KVS_CHANNEL_ARN, KVS_CLIENT_ID, KVS_WSS_ENDPOINT, KVS_CA_FILE, KVS_RECV_SECONDS).
 * Exits 0 once the answer arrived and all candidates were sent, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kvs_viewer.h>

static const char OFFER[] =
    "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 2890844526 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\n"
    "t=0 0\\r\\na=group:BUNDLE 0\\r\\nm=video 9 UDP/TLS/RTP/SAVPF 96\\r\\nc=IN IP4 0.0.0.0\\r\\n"
    "a=ice-ufrag:W2x9\\r\\na=ice-pwd:Zk3PqM7x0aVbNcR2sT5uY8wE\\r\\na=ice-options:trickle\\r\\n"
    "a=fingerprint:sha-256 3A:1F:8C:22:5B:9E:04:D7:61:AA:3C:90:7E:15:B8:42:6D:F0:29:C3:"
    "88:1B:57:E6:0D:94:2F:A1:73:5C:B9:0E\\r\\na=setup:actpass\\r\\na=mid:0\\r\\na=recvonly\\r\\n"
    "a=rtcp-mux\\r\\na=rtpmap:96 H264/90000\\r\\n\"}";

/* What a WebRTC stack would gather: host, server-reflexive and relay candidates
 * (documentation addresses; nothing is sent to them). */
static const char *const CANDIDATES[] = {
    "{\"candidate\":\"candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host\","
    "\"sdpMid\":\"0\",\"sdpMLineIndex\":0}",
    "{\"candidate\":\"candidate:2 1 udp 1686052607 198.51.100.7 61000 typ srflx raddr 192.0.2.10 "
    "rport 50000\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}",
    "{\"candidate\":\"candidate:3 1 udp 41885439 203.0.113.20 3478 typ relay raddr 198.51.100.7 "
    "rport 61000\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}",
};

struct shared {
  KvsViewer *viewer;
  atomic_int stop;      /* set by main: the receive thread returns */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int got_answer;       /* under lock */
  int32_t recv_error;   /* under lock: a fatal recv error, or KVS_OK */
};

static void report(const char *who, int32_t rc) {
  char detail[512];
  detail[0] = '\0';
  kvs_last_error_message(detail, sizeof detail);
  printf("[%s] error %s (%d): %s\n", who, kvs_error_name(rc), (int)rc, detail);
}

static void *receive_thread(void *arg) {
  struct shared *s = arg;
  char payload[16384];
  while (!atomic_load(&s->stop)) {
    KvsMessage msg;
    kvs_message_init(&msg, payload, sizeof payload);
    /* Blocks without burning CPU; the 200 ms bound only lets this thread notice `stop`. */
    int32_t rc = kvs_viewer_recv(s->viewer, &msg, 200);
    if (rc == KVS_ERR_TIMEOUT) continue;
    if (rc != KVS_OK) {
      report("recv", rc);
      pthread_mutex_lock(&s->lock);
      s->recv_error = rc;
      pthread_cond_broadcast(&s->cond);
      pthread_mutex_unlock(&s->lock);
      return NULL;
    }
    printf("[recv] %s sender=%s %zu bytes\n", kvs_message_type_name(msg.message_type),
           msg.sender_client_id[0] ? msg.sender_client_id : "-", msg.payload_len);
    /* Here a real integration passes the payload to its WebRTC stack
     * (setRemoteDescription / addIceCandidate). */
    if (msg.message_type == KVS_MSG_SDP_ANSWER) {
      pthread_mutex_lock(&s->lock);
      s->got_answer = 1;
      pthread_cond_broadcast(&s->cond);
      pthread_mutex_unlock(&s->lock);
    }
  }
  return NULL;
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);

  KvsViewerConfig cfg;
  kvs_viewer_config_init(&cfg);
  cfg.region = env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
  cfg.channel_arn = env("KVS_CHANNEL_ARN");
  cfg.client_id = env("KVS_CLIENT_ID");
  cfg.wss_endpoint = env("KVS_WSS_ENDPOINT");
  cfg.access_key_id = env("AWS_ACCESS_KEY_ID");
  cfg.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
  cfg.session_token = env("AWS_SESSION_TOKEN");
  cfg.ca_file = env("KVS_CA_FILE");
  long wait_s = env("KVS_RECV_SECONDS") ? atol(env("KVS_RECV_SECONDS")) : 10;
  if (wait_s <= 0) wait_s = 10;

  struct shared s;
  memset(&s, 0, sizeof s);
  atomic_init(&s.stop, 0);
  pthread_mutex_init(&s.lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s.cond, &ca);
  pthread_condattr_destroy(&ca);

  /* The library checks the config (missing fields come back as KVS_ERR_INVALID_ARGUMENT). */
  int32_t rc = kvs_viewer_connect(&cfg, &s.viewer);
  if (rc != KVS_OK) {
    report("main", rc);
    return 1;
  }
  printf("[main] connected client_id=%s\n", cfg.client_id);

  pthread_t rx;
  if (pthread_create(&rx, NULL, receive_thread, &s) != 0) {
    printf("[main] cannot start the receive thread\n");
    kvs_viewer_close(s.viewer);
    return 1;
  }

  int ok = 1;
  rc = kvs_viewer_send(s.viewer, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL);
  if (rc != KVS_OK) {
    report("send", rc);
    ok = 0;
  } else {
    printf("[main] sent SDP_OFFER\n");
  }

  /* Candidates trickle out while the receive thread is blocked in recv. */
  for (size_t i = 0; ok && i < sizeof CANDIDATES / sizeof CANDIDATES[0]; i++) {
    sleep_ms(100); /* stands in for the stack's gathering time */
    rc = kvs_viewer_send(s.viewer, KVS_MSG_ICE_CANDIDATE, CANDIDATES[i], strlen(CANDIDATES[i]),
                         NULL);
    if (rc != KVS_OK) {
      report("send", rc);
      ok = 0;
    } else {
      printf("[main] sent ICE_CANDIDATE %zu\n", i + 1);
    }
  }

  /* Wait (bounded) for the answer, then give the master's candidates a second to arrive. */
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += wait_s;
  pthread_mutex_lock(&s.lock);
  while (ok && !s.got_answer && s.recv_error == KVS_OK) {
    if (pthread_cond_timedwait(&s.cond, &s.lock, &deadline) != 0) break;
  }
  int got_answer = s.got_answer;
  int32_t recv_error = s.recv_error;
  pthread_mutex_unlock(&s.lock);
  if (ok && got_answer && recv_error == KVS_OK) sleep_ms(1000);

  atomic_store(&s.stop, 1);
  pthread_join(rx, NULL);

  rc = kvs_viewer_close(s.viewer);
  if (rc != KVS_OK) {
    report("close", rc);
    ok = 0;
  }
  pthread_cond_destroy(&s.cond);
  pthread_mutex_destroy(&s.lock);

  if (!got_answer) printf("[main] no SDP answer within %ld s\n", wait_s);
  ok = ok && got_answer && recv_error == KVS_OK;
  printf("[main] %s\n", ok ? "done" : "failed");
  return ok ? 0 : 1;
}

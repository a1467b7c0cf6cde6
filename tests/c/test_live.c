/* Live tests against the signaling emulator (started by the ctest fixture, or by the caller):
 * connect, offer -> answer -> candidates, buffer too small then retry, local refusals on a
 * connected handle, send from one thread while another blocks in recv, service errors
 * (403, 404, client limit, untrusted certificate), close.
 *
 * Reads the emulator's env file (KEY=VALUE lines) named by KVS_TEST_ENV_FILE. */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvs_viewer.h"
#include "test_env.h"
#include "test_util.h"

static const char OFFER[] =
    "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\n"
    "s=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0 1\\r\\na=msid-semantic: WMS\\r\\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\\r\\nc=IN IP4 0.0.0.0\\r\\na=rtcp:9 IN IP4 0.0.0.0\\r\\n"
    "a=ice-ufrag:EsAw\\r\\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\\r\\na=ice-options:trickle\\r\\n"
    "a=fingerprint:sha-256 D1:2C:E4:54:8C:6D:6A:91:7F:28:2B:07:D4:4E:1E:0C:6F:2B:8A:5E:55:1B:"
    "1F:0A:34:9C:2D:EB:45:6C:19:63\\r\\na=setup:actpass\\r\\na=mid:0\\r\\na=recvonly\\r\\n"
    "a=rtcp-mux\\r\\na=rtpmap:96 H264/90000\\r\\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\nc=IN IP4 0.0.0.0\\r\\na=mid:1\\r\\na=recvonly\\r\\n"
    "a=rtcp-mux\\r\\na=rtpmap:111 opus/48000/2\\r\\n\"}";
static const char CANDIDATE[] =
    "{\"candidate\":\"candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host\","
    "\"sdpMid\":\"0\",\"sdpMLineIndex\":0}";

/* ---- tests --------------------------------------------------------------------------------- */

static void test_exchange(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, env_or("KVS_CLIENT_ID", "c-test-viewer"));
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;

  char buf[16384];
  KvsMessage msg;
  kvs_message_init(&msg, buf, sizeof buf);

  /* Nothing queued yet: a poll times out and leaves the handle usable. */
  CHECK_CODE(kvs_viewer_recv(v, &msg, 0), KVS_ERR_TIMEOUT);
  CHECK_CODE(kvs_viewer_recv(v, &msg, 50), KVS_ERR_TIMEOUT);

  /* NULL arguments on a live handle. */
  CHECK_CODE(kvs_viewer_recv(v, NULL, 0), KVS_ERR_NULL_POINTER);
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, NULL, 10, NULL), KVS_ERR_NULL_POINTER);

  /* Refused locally, the handle stays usable. */
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), "bad id!"),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("correlation");
  CHECK_CODE(kvs_viewer_send(v, 99, OFFER, strlen(OFFER), NULL), KVS_ERR_INVALID_ARGUMENT);
  {
    /* Valid JSON of 8000 bytes encodes to 10668 base64 bytes: over the service's 10 K limit. */
    size_t n = 8000;
    char *big = malloc(n + 1);
    if (!big) abort();
    memset(big, 'x', n);
    memcpy(big, "{\"candidate\":\"", 14);
    memcpy(big + n - 2, "\"}", 2);
    big[n] = '\0';
    CHECK_CODE(kvs_viewer_send(v, KVS_MSG_ICE_CANDIDATE, big, n, NULL), KVS_ERR_INVALID_ARGUMENT);
    CHECK_DETAIL_HAS("payload");
    /* KVS_MAX_PAYLOAD_LEN bytes still fit. */
    memcpy(big + KVS_MAX_PAYLOAD_LEN - 2, "\"}", 2);
    CHECK_CODE(kvs_viewer_send(v, KVS_MSG_ICE_CANDIDATE, big, KVS_MAX_PAYLOAD_LEN, NULL), KVS_OK);
    free(big);
  }

  /* The offer goes out; the emulator's built-in master answers. */
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), "offer-1"), KVS_OK);

  /* A too-small buffer reports the needed size, and the message stays queued. */
  char tiny[8];
  KvsMessage small;
  kvs_message_init(&small, tiny, sizeof tiny);
  CHECK_CODE(kvs_viewer_recv(v, &small, 10000), KVS_ERR_BUFFER_TOO_SMALL);
  size_t needed = small.payload_len;
  CHECK(needed >= sizeof tiny);
  /* Exactly needed bytes is still too small: the NUL needs one more. */
  char *exact = malloc(needed + 1);
  if (!exact) abort();
  kvs_message_init(&small, exact, needed);
  CHECK_CODE(kvs_viewer_recv(v, &small, 0), KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(small.payload_len == needed);
  kvs_message_init(&small, exact, needed + 1);
  CHECK_CODE(kvs_viewer_recv(v, &small, 0), KVS_OK);
  CHECK(small.payload_len == needed);
  CHECK(exact[needed] == '\0');
  CHECK(strlen(exact) == needed);
  CHECK(small.message_type == KVS_MSG_SDP_ANSWER);
  CHECK(strstr(exact, "\"answer\"") != NULL);
  CHECK(strstr(exact, "m=video") != NULL);
  CHECK(small.sender_client_id[0] == '\0'); /* from the master */
  CHECK(small.status_code == 0);
  free(exact);

  /* Then the master's candidates, until a quiet second. */
  int candidates = 0;
  for (;;) {
    kvs_message_init(&msg, buf, sizeof buf);
    int32_t rc = kvs_viewer_recv(v, &msg, 1000);
    if (rc == KVS_ERR_TIMEOUT) break;
    CHECK_CODE(rc, KVS_OK);
    if (rc != KVS_OK) break;
    CHECK(msg.message_type == KVS_MSG_ICE_CANDIDATE);
    CHECK(strstr(buf, "candidate") != NULL);
    CHECK(msg.payload_len == strlen(buf));
    candidates++;
  }
  CHECK(candidates >= 1);

  /* Our candidate, with and without a correlation id. */
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_ICE_CANDIDATE, CANDIDATE, strlen(CANDIDATE), NULL),
             KVS_OK);
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_ICE_CANDIDATE, CANDIDATE, strlen(CANDIDATE), "cand-1"),
             KVS_OK);

  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  printf("exchange: answer + %d candidates\n", candidates);
}

struct recv_thread {
  KvsViewer *v;
  int32_t rc;
  int32_t type;
  double got_at;
};

static void *recv_main(void *arg) {
  struct recv_thread *t = arg;
  char buf[16384];
  KvsMessage msg;
  kvs_message_init(&msg, buf, sizeof buf);
  /* Blocks (bounded at 20 s) until the answer to the offer sent by the main thread arrives. */
  t->rc = kvs_viewer_recv(t->v, &msg, 20000);
  t->type = msg.message_type;
  t->got_at = now_s();
  return NULL;
}

/* One thread blocked in recv, another sends: the send must not wait for recv's timeout. */
static void test_send_while_recv_blocks(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-threads");
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;
  struct recv_thread t = {v, 1, -1, 0.0};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, recv_main, &t) == 0);
  /* No handshake with the thread is needed: whether it is already blocked or not, the answer
   * can only arrive after this send, and the recv must return it well before its 20 s bound. */
  double sent_at = now_s();
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL), KVS_OK);
  double send_took = now_s() - sent_at;
  CHECK(pthread_join(th, NULL) == 0);
  CHECK_CODE(t.rc, KVS_OK);
  CHECK(t.type == KVS_MSG_SDP_ANSWER);
  CHECK(send_took < 5.0);
  CHECK(t.got_at - sent_at < 10.0);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  printf("threads: send took %.3f s, answer after %.3f s\n", send_took, t.got_at - sent_at);
}

static void test_access_denied(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-denied");
  cfg.secret_access_key = "wrong-secret-key-for-this-test";
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_ACCESS_DENIED);
  CHECK(v == NULL);
  CHECK(kvs_last_error_http_status() == 403);
  CHECK_DETAIL_HAS("AccessDenied");
}

static void test_resource_not_found(void) {
  /* Same account and region, a channel that does not exist. */
  const char *arn = getenv("KVS_CHANNEL_ARN");
  const char *ch = arn ? strstr(arn, ":channel/") : NULL;
  CHECK(ch != NULL);
  if (!ch) return;
  char other[1100];
  snprintf(other, sizeof other, "%.*s:channel/kvs-no-such-channel/1234567890123",
           (int)(ch - arn), arn);
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-notfound");
  cfg.channel_arn = other;
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_RESOURCE_NOT_FOUND);
  CHECK(v == NULL);
  CHECK(kvs_last_error_http_status() == 404);
}

/* Region + channel name + control plane only: the library discovers ARN, endpoints and ICE
 * servers, then connects and exchanges; the ICE servers come out STUN first, with credentials. */
static void test_discovery_and_ice_servers(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-discovery");
  cfg.channel_arn = NULL;
  cfg.wss_endpoint = NULL;
  cfg.channel_name = getenv("KVS_CHANNEL_NAME");
  cfg.control_plane_url = getenv("KVS_CONTROL_PLANE_URL");
  CHECK(cfg.channel_name != NULL && cfg.control_plane_url != NULL);
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;

  size_t count = 0;
  CHECK_CODE(kvs_viewer_ice_server_count(v, &count), KVS_OK);
  CHECK(count == 3); /* STUN + the emulator's two TURN servers */
  CHECK(count <= KVS_MAX_ICE_SERVERS);
  KvsIceServer ice;
  kvs_ice_server_init(&ice);
  CHECK_CODE(kvs_viewer_ice_server_get(v, 0, &ice), KVS_OK);
  CHECK(ice.uri_count == 1 && strncmp(ice.uris[0], "stun:", 5) == 0);
  CHECK(ice.ttl_s == 0 && ice.password[0] == '\0');
  for (size_t i = 1; i < count; i++) {
    kvs_ice_server_init(&ice);
    CHECK_CODE(kvs_viewer_ice_server_get(v, i, &ice), KVS_OK);
    CHECK(ice.uri_count >= 1 && ice.uri_count <= KVS_MAX_ICE_URIS);
    CHECK(strncmp(ice.uris[0], "turn", 4) == 0);
    CHECK(ice.username[0] != '\0' && ice.password[0] != '\0');
    CHECK(ice.ttl_s == 300);
  }
  CHECK_CODE(kvs_viewer_ice_server_get(v, count, &ice), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("index");
  ice.struct_size = 4;
  CHECK_CODE(kvs_viewer_ice_server_get(v, 0, &ice), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("struct_size");
  /* One fetch at once, with its generation; a refresh brings the next generation. */
  {
    KvsIceServer all[KVS_MAX_ICE_SERVERS];
    size_t n = 0, i;
    uint64_t gen = 0, gen2 = 0;
    for (i = 0; i < KVS_MAX_ICE_SERVERS; i++) kvs_ice_server_init(&all[i]);
    CHECK_CODE(kvs_viewer_ice_servers_snapshot(v, all, 1, &n, &gen), KVS_ERR_BUFFER_TOO_SMALL);
    CHECK(n == 3 && gen == 0); /* only the count needed is written */
    CHECK_CODE(kvs_viewer_ice_servers_snapshot(v, all, KVS_MAX_ICE_SERVERS, &n, &gen), KVS_OK);
    CHECK(n == 3 && gen >= 1);
    CHECK(strncmp(all[0].uris[0], "stun:", 5) == 0);
    CHECK(strncmp(all[2].uris[0], "turn", 4) == 0 && all[2].password[0] != '\0');
    CHECK_CODE(kvs_viewer_ice_servers_snapshot(v, NULL, 0, &n, NULL), KVS_ERR_BUFFER_TOO_SMALL);
    CHECK_CODE(kvs_viewer_ice_servers_snapshot(v, all, 3, NULL, NULL), KVS_ERR_NULL_POINTER);
    CHECK_CODE(kvs_viewer_refresh_ice_servers(v), KVS_OK);
    CHECK_CODE(kvs_viewer_ice_servers_snapshot(v, all, KVS_MAX_ICE_SERVERS, &n, &gen2), KVS_OK);
    CHECK(n == 3 && gen2 == gen + 1);
  }
  CHECK_CODE(kvs_viewer_ice_server_count(v, &count), KVS_OK);
  CHECK(count == 3);

  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL), KVS_OK);
  char buf[16384];
  KvsMessage msg;
  kvs_message_init(&msg, buf, sizeof buf);
  CHECK_CODE(kvs_viewer_recv(v, &msg, 10000), KVS_OK);
  CHECK(msg.message_type == KVS_MSG_SDP_ANSWER);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);

  /* A channel that does not exist fails at the named step. */
  cfg.channel_name = "kvs-no-such-channel";
  v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_RESOURCE_NOT_FOUND);
  CHECK(v == NULL);
  CHECK_DETAIL_HAS("describe");
}

static void test_untrusted_certificate(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-untrusted");
  cfg.ca_file = NULL; /* the emulator's CA is not in the system roots */
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_TLS);
  CHECK(v == NULL);
}

/* The fixture starts the emulator with --max-viewers 3: a 4th viewer is refused, and closing one
 * frees its slot at once. */
static void test_client_limit(void) {
  static const char *const ids[] = {"c-limit-1", "c-limit-2", "c-limit-3"};
  KvsViewer *vs[3] = {NULL, NULL, NULL};
  for (int i = 0; i < 3; i++) {
    KvsViewerConfig cfg;
    emulator_config(&cfg, ids[i]);
    CHECK_CODE(kvs_viewer_connect(&cfg, &vs[i]), KVS_OK);
  }
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-limit-4");
  KvsViewer *extra = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &extra), KVS_ERR_CLIENT_LIMIT_EXCEEDED);
  CHECK(extra == NULL);
  CHECK(kvs_last_error_http_status() == 400);
  CHECK_DETAIL_HAS("ClientLimitExceeded");

  CHECK_CODE(kvs_viewer_close(vs[0]), KVS_OK);
  vs[0] = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &extra), KVS_OK);
  CHECK_CODE(kvs_viewer_close(extra), KVS_OK);
  for (int i = 1; i < 3; i++) CHECK_CODE(kvs_viewer_close(vs[i]), KVS_OK);
}

/* Reconnect on the same handle: the old connection is closed first, unread messages stay. */
static void test_reconnect(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-reconnect");
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;
  char buf[16384];
  KvsMessage msg;
  kvs_message_init(&msg, buf, sizeof buf);

  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL), KVS_OK);
  CHECK_CODE(kvs_viewer_recv(v, &msg, 10000), KVS_OK); /* the answer arrived ... */
  CHECK(msg.message_type == KVS_MSG_SDP_ANSWER);
  CHECK_CODE(kvs_viewer_reconnect(v), KVS_OK); /* ... its candidates may be queued still */
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL), KVS_OK);
  int answers = 0;
  for (int i = 0; i < 20 && answers == 0; i++) {
    if (kvs_viewer_recv(v, &msg, 10000) != KVS_OK) break;
    if (msg.message_type == KVS_MSG_SDP_ANSWER) answers++;
  }
  CHECK(answers == 1);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
}

/* kvs_viewer_shutdown from the main thread wakes a receiver blocked without a bound and a
 * sender loop; both see KVS_ERR_CLOSED, the handle stays valid until close. No handshake with
 * the threads is needed: a call that starts after the shutdown gets KVS_ERR_CLOSED too. */
struct loop_thread {
  KvsViewer *v;
  int32_t rc;
  int sent;
};

static void *recv_forever_main(void *arg) {
  struct loop_thread *t = arg;
  char buf[16384];
  KvsMessage msg;
  for (;;) {
    kvs_message_init(&msg, buf, sizeof buf);
    t->rc = kvs_viewer_recv(t->v, &msg, -1);
    if (t->rc != KVS_OK) return NULL;
  }
}

static void *send_until_closed_main(void *arg) {
  struct loop_thread *t = arg;
  for (;;) {
    t->rc = kvs_viewer_send(t->v, KVS_MSG_ICE_CANDIDATE, CANDIDATE, strlen(CANDIDATE), NULL);
    if (t->rc != KVS_OK) return NULL;
    t->sent++;
  }
}

static void test_shutdown_wakes_blocked_calls(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-shutdown");
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;
  struct loop_thread r = {v, 1, 0}, s = {v, 1, 0};
  pthread_t rt, st;
  CHECK(pthread_create(&rt, NULL, recv_forever_main, &r) == 0);
  CHECK(pthread_create(&st, NULL, send_until_closed_main, &s) == 0);
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL), KVS_OK);
  double at = now_s();
  CHECK_CODE(kvs_viewer_shutdown(v), KVS_OK);
  CHECK_CODE(kvs_viewer_shutdown(v), KVS_OK); /* idempotent */
  CHECK(pthread_join(rt, NULL) == 0);
  CHECK(pthread_join(st, NULL) == 0);
  double took = now_s() - at;
  CHECK_CODE(r.rc, KVS_ERR_CLOSED);
  CHECK_CODE(s.rc, KVS_ERR_CLOSED);
  CHECK(took < 5.0);
  CHECK_CODE(kvs_viewer_reconnect(v), KVS_ERR_CLOSED);
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_ICE_CANDIDATE, CANDIDATE, strlen(CANDIDATE), NULL),
             KVS_ERR_CLOSED);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  printf("shutdown: both threads out after %.3f s (%d candidates sent)\n", took, s.sent);
}

/* Reconnects on the main thread while another thread sends: every send succeeds (it waits for
 * the new connection), and a receiver blocked meanwhile gets the answer sent afterwards. */
struct counted_sender {
  KvsViewer *v;
  int stop; /* under lock: set by the main thread after the reconnects */
  int failed;
  int sent;
  pthread_mutex_t lock;
};

static void *send_counted_main(void *arg) {
  struct counted_sender *t = arg;
  for (;;) {
    int stop;
    pthread_mutex_lock(&t->lock);
    stop = t->stop;
    pthread_mutex_unlock(&t->lock);
    if (stop) return NULL;
    if (kvs_viewer_send(t->v, KVS_MSG_ICE_CANDIDATE, CANDIDATE, strlen(CANDIDATE), NULL) != KVS_OK)
      t->failed++;
    else
      t->sent++;
  }
}

static void test_reconnect_during_sends(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-reconnect-sends");
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;
  struct counted_sender s;
  memset(&s, 0, sizeof s);
  s.v = v;
  pthread_mutex_init(&s.lock, NULL);
  struct recv_thread r = {v, 1, -1, 0.0};
  pthread_t st, rt;
  CHECK(pthread_create(&st, NULL, send_counted_main, &s) == 0);
  CHECK(pthread_create(&rt, NULL, recv_main, &r) == 0); /* waits up to 20 s for an answer */
  for (int i = 0; i < 5; i++) CHECK_CODE(kvs_viewer_reconnect(v), KVS_OK);
  pthread_mutex_lock(&s.lock);
  s.stop = 1;
  pthread_mutex_unlock(&s.lock);
  CHECK(pthread_join(st, NULL) == 0);
  CHECK(s.failed == 0);
  CHECK(s.sent > 0);
  /* The receiver survived the reconnects and gets the answer to an offer sent now. */
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL), KVS_OK);
  CHECK(pthread_join(rt, NULL) == 0);
  CHECK_CODE(r.rc, KVS_OK);
  CHECK(r.type == KVS_MSG_SDP_ANSWER);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  pthread_mutex_destroy(&s.lock);
  printf("reconnect during sends: %d sent, %d failed\n", s.sent, s.failed);
}

/* Structs from a future, larger header: struct_size bigger than the library's. The library
 * zeroes them whole on init, reads what it knows, and never writes past its own fields. */
#define FUTURE_TAIL 64
static int tail_is(const void *base, size_t from, unsigned char byte) {
  const unsigned char *p = (const unsigned char *)base;
  for (size_t i = 0; i < FUTURE_TAIL; i++)
    if (p[from + i] != byte) return 0;
  return 1;
}

static void test_future_struct_sizes(void) {
  KvsViewerConfig *cfg = malloc(sizeof *cfg + FUTURE_TAIL);
  KvsMessage *msg = malloc(sizeof *msg + FUTURE_TAIL);
  KvsIceServer *ice = malloc(sizeof *ice + FUTURE_TAIL);
  if (!cfg || !msg || !ice) abort();
  memset(cfg, 0xA5, sizeof *cfg + FUTURE_TAIL);
  CHECK_CODE(kvs_viewer_config_init_sized(cfg, sizeof *cfg + FUTURE_TAIL), KVS_OK);
  CHECK(cfg->struct_size == sizeof *cfg + FUTURE_TAIL);
  CHECK(tail_is(cfg, sizeof *cfg, 0)); /* future fields get their default, 0 */
  emulator_config(cfg, "c-test-future");    /* re-inits with sizeof: the current size */
  CHECK(cfg->struct_size == sizeof *cfg);
  cfg->struct_size = (uint32_t)(sizeof *cfg + FUTURE_TAIL); /* a future field set non-zero */
  memset((char *)cfg + sizeof *cfg, 0x01, FUTURE_TAIL);    /* is ignored, not misread */
  cfg->channel_arn = NULL;
  cfg->wss_endpoint = NULL;
  cfg->channel_name = getenv("KVS_CHANNEL_NAME");
  cfg->control_plane_url = getenv("KVS_CONTROL_PLANE_URL");
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(cfg, &v), KVS_OK);
  if (v) {
    char buf[16384];
    memset(msg, 0xA5, sizeof *msg + FUTURE_TAIL);
    CHECK_CODE(kvs_message_init_sized(msg, sizeof *msg + FUTURE_TAIL, buf, sizeof buf), KVS_OK);
    CHECK(msg->struct_size == sizeof *msg + FUTURE_TAIL && tail_is(msg, sizeof *msg, 0));
    memset((char *)msg + sizeof *msg, 0x5A, FUTURE_TAIL);
    CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL), KVS_OK);
    CHECK_CODE(kvs_viewer_recv(v, msg, 10000), KVS_OK);
    CHECK(msg->message_type == KVS_MSG_SDP_ANSWER && strstr(buf, "\"answer\"") != NULL);
    CHECK(tail_is(msg, sizeof *msg, 0x5A));

    memset(ice, 0xA5, sizeof *ice + FUTURE_TAIL);
    CHECK_CODE(kvs_ice_server_init_sized(ice, sizeof *ice + FUTURE_TAIL), KVS_OK);
    memset((char *)ice + sizeof *ice, 0x5A, FUTURE_TAIL);
    CHECK_CODE(kvs_viewer_ice_server_get(v, 1, ice), KVS_OK);
    CHECK(strncmp(ice->uris[0], "turn", 4) == 0 && ice->ttl_s == 300);
    CHECK(tail_is(ice, sizeof *ice, 0x5A));
    CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  }
  /* Sizes no header ever had are refused without a write. */
  memset(msg, 0xA5, sizeof *msg);
  CHECK_CODE(kvs_message_init_sized(msg, 8, NULL, 0), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("size");
  CHECK(((unsigned char *)msg)[0] == 0xA5);
  CHECK_CODE(kvs_ice_server_init_sized(ice, 3), KVS_ERR_INVALID_ARGUMENT);
  CHECK_CODE(kvs_viewer_config_init_sized(NULL, sizeof *cfg), KVS_ERR_NULL_POINTER);
  free(cfg);
  free(msg);
  free(ice);
}

/* An event loop instead of a receive thread: the handle's fd is readable exactly while
 * kvs_viewer_recv(v, &msg, 0) returns at once. */
static int fd_readable(int fd, int wait_ms) {
  struct pollfd p;
  p.fd = fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, wait_ms) == 1 && (p.revents & POLLIN);
}

static void test_pollable_fd(void) {
  CHECK_CODE(kvs_viewer_get_fd(NULL), KVS_ERR_NULL_POINTER);
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-poll");
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;
  int fd = kvs_viewer_get_fd(v);
  CHECK(fd >= 0);
  if (fd < 0) {
    kvs_viewer_close(v);
    return;
  }
  CHECK(!fd_readable(fd, 0));

  char small[8], buf[16384];
  KvsMessage msg;
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), NULL), KVS_OK);
  int answers = 0, rounds = 0;
  while (answers == 0 && rounds++ < 20) {
    if (!fd_readable(fd, 10000)) break;
    /* A buffer that is too small takes nothing: the fd stays readable. */
    kvs_message_init(&msg, small, sizeof small);
    CHECK_CODE(kvs_viewer_recv(v, &msg, 0), KVS_ERR_BUFFER_TOO_SMALL);
    CHECK(fd_readable(fd, 0));
    kvs_message_init(&msg, buf, sizeof buf);
    while (kvs_viewer_recv(v, &msg, 0) == KVS_OK) {
      if (msg.message_type == KVS_MSG_SDP_ANSWER) answers++;
      kvs_message_init(&msg, buf, sizeof buf);
    }
  }
  CHECK(answers == 1);
  CHECK(kvs_viewer_get_fd(v) == fd); /* the same fd for the handle's life */

  /* The end is news too: readable, and recv says why. */
  CHECK_CODE(kvs_viewer_shutdown(v), KVS_OK);
  CHECK(fd_readable(fd, 10000));
  kvs_message_init(&msg, buf, sizeof buf);
  while (kvs_viewer_recv(v, &msg, 0) == KVS_OK) kvs_message_init(&msg, buf, sizeof buf);
  CHECK_CODE(kvs_viewer_recv(v, &msg, 0), KVS_ERR_CLOSED);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
}

int main(void) {
  if (load_test_env() != 0) return 2;
  test_exchange();
  test_send_while_recv_blocks();
  test_access_denied();
  test_resource_not_found();
  test_discovery_and_ice_servers();
  test_untrusted_certificate();
  test_client_limit();
  test_reconnect();
  test_future_struct_sizes();
  test_shutdown_wakes_blocked_calls();
  test_reconnect_during_sends();
  test_pollable_fd();
  return test_summary("test_live");
}

/* The payload helpers and ICE URI formatting: every function, with escaping, truncation
 * (snprintf-style lengths), NULL and bad-UTF-8 paths; then, against the signaling emulator,
 * send_offer / send_candidate, the accessors on received messages and the ICE URIs of
 * discovered TURN servers.
 *
 * Reads the emulator's env file named by KVS_TEST_ENV_FILE. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs_viewer.h"
#include "test_env.h"
#include "test_util.h"

/* An SDP with everything JSON must escape: quotes, backslash, CR/LF, tab, a control byte,
 * and non-ASCII (which stays UTF-8). */
static const char SDP[] = "v=0\r\ns=\"q\" \\ \t\x01 \xc3\xa9\r\n";
static const char SDP_JSON[] =
    "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\ns=\\\"q\\\" \\\\ \\t\\u0001 \xc3\xa9\\r\\n\"}";

static const char LIVE_SDP[] =
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=mid:0\r\na=recvonly\r\n"
    "a=rtcp-mux\r\na=rtpmap:96 H264/90000\r\n";
static const char CAND[] = "candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host";

static void test_offer(void) {
  char buf[256];
  size_t len = 0;
  CHECK_CODE(kvs_payload_offer(SDP, buf, sizeof buf, &len), KVS_OK);
  CHECK_STR(buf, SDP_JSON);
  CHECK(len == strlen(SDP_JSON));

  /* Size query, exactly len bytes (no room for the NUL), len + 1. */
  size_t need = 0;
  CHECK_CODE(kvs_payload_offer(SDP, NULL, 0, &need), KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(need == len);
  CHECK_DETAIL_HAS("buf");
  char *exact = malloc(len + 1);
  if (!exact) abort();
  memset(exact, 'x', len + 1);
  CHECK_CODE(kvs_payload_offer(SDP, exact, len, &need), KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(need == len);
  CHECK(exact[len - 1] == '\0' && strlen(exact) == len - 1);
  CHECK(strncmp(exact, SDP_JSON, len - 1) == 0);
  CHECK(exact[len] == 'x'); /* nothing past cap */
  CHECK_CODE(kvs_payload_offer(SDP, exact, len + 1, &need), KVS_OK);
  CHECK_STR(exact, SDP_JSON);
  free(exact);

  /* A cut never splits a UTF-8 character: "…\xc3\xa9" cut between its two bytes. */
  const char *e_acute = strstr(SDP_JSON, "\xc3\xa9");
  size_t cut = (size_t)(e_acute - SDP_JSON) + 2; /* room up to and including \xc3 */
  CHECK_CODE(kvs_payload_offer(SDP, buf, cut, &need), KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(strlen(buf) == cut - 2);

  CHECK_CODE(kvs_payload_offer(NULL, buf, sizeof buf, &len), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("sdp");
  CHECK_CODE(kvs_payload_offer(SDP, buf, sizeof buf, NULL), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("out_len");
  CHECK_CODE(kvs_payload_offer(SDP, NULL, 10, &len), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("buf");
  CHECK_CODE(kvs_payload_offer("v=0\xff", buf, sizeof buf, &len), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("sdp");
  CHECK_DETAIL_HAS("UTF-8");
  CHECK_CODE(kvs_payload_offer("", buf, sizeof buf, &len), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("sdp");
}

static void test_answer_sdp(void) {
  static const char ANSWER[] =
      "{\"type\":\"answer\",\"sdp\":\"v=0\\r\\na=x:\\u00e9\\/\\\"\\\\\\ud83d\\ude00\\r\\n\"}";
  static const char WANT[] = "v=0\r\na=x:\xc3\xa9/\"\\\xf0\x9f\x98\x80\r\n";
  char buf[128];
  size_t len = 0;
  CHECK_CODE(kvs_payload_answer_sdp(ANSWER, 0, buf, sizeof buf, &len), KVS_OK);
  CHECK_STR(buf, WANT);
  CHECK(len == strlen(WANT));
  /* With an explicit length the payload needs no NUL. */
  CHECK_CODE(kvs_payload_answer_sdp(ANSWER, strlen(ANSWER), buf, sizeof buf, &len), KVS_OK);
  CHECK_STR(buf, WANT);
  CHECK_CODE(kvs_payload_answer_sdp(ANSWER, 0, buf, 4, &len), KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(len == strlen(WANT) && strcmp(buf, "v=0") == 0);

  CHECK_CODE(kvs_payload_answer_sdp("{\"type\":\"offer\",\"sdp\":\"v=0\"}", 0, buf, sizeof buf,
                                    &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("answer");
  CHECK_CODE(kvs_payload_answer_sdp("{\"type\":\"answer\"}", 0, buf, sizeof buf, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("sdp is missing");
  CHECK_CODE(kvs_payload_answer_sdp("{\"sdp\":", 0, buf, sizeof buf, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("payload");
  CHECK_CODE(kvs_payload_answer_sdp("{\"sdp\":\"\xc3\"}", 0, buf, sizeof buf, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("UTF-8");
  CHECK_CODE(kvs_payload_answer_sdp(NULL, 0, buf, sizeof buf, &len), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("payload");
  CHECK_CODE(kvs_payload_answer_sdp(ANSWER, 0, buf, sizeof buf, NULL), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("out_len");
}

static void test_candidate(void) {
  char buf[256];
  size_t len = 0;
  CHECK_CODE(kvs_payload_candidate(CAND, "0", 0, buf, sizeof buf, &len), KVS_OK);
  CHECK_STR(buf, "{\"candidate\":\"candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host\","
                 "\"sdpMid\":\"0\",\"sdpMLineIndex\":0}");
  CHECK(len == strlen(buf));
  /* webrtcbin gives only the m-line index; a mid alone is fine too. Absent = null. */
  CHECK_CODE(kvs_payload_candidate("c:\"x\"", NULL, 2, buf, sizeof buf, &len), KVS_OK);
  CHECK_STR(buf, "{\"candidate\":\"c:\\\"x\\\"\",\"sdpMid\":null,\"sdpMLineIndex\":2}");
  CHECK_CODE(kvs_payload_candidate("", "video0", -1, buf, sizeof buf, &len), KVS_OK);
  CHECK_STR(buf, "{\"candidate\":\"\",\"sdpMid\":\"video0\",\"sdpMLineIndex\":null}");
  CHECK_CODE(kvs_payload_candidate(CAND, "0", 65535, buf, sizeof buf, &len), KVS_OK);
  CHECK(strstr(buf, "\"sdpMLineIndex\":65535}") != NULL);

  CHECK_CODE(kvs_payload_candidate(CAND, "0", 0, buf, 10, &len), KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(strlen(buf) == 9 && len > 10);
  CHECK_CODE(kvs_payload_candidate(CAND, NULL, -1, buf, sizeof buf, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("sdp_mline_index");
  CHECK_CODE(kvs_payload_candidate(CAND, "0", 65536, buf, sizeof buf, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("sdp_mline_index");
  CHECK_CODE(kvs_payload_candidate(CAND, "\xff", 0, buf, sizeof buf, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("sdp_mid");
  CHECK_CODE(kvs_payload_candidate(NULL, "0", 0, buf, sizeof buf, &len), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("candidate");
  CHECK_CODE(kvs_payload_candidate(CAND, "0", 0, buf, sizeof buf, NULL), KVS_ERR_NULL_POINTER);
}

static void test_candidate_parse(void) {
  static const char BROWSER[] = "{\"candidate\":\"candidate:x \\u0041\\/y\",\"sdpMid\":\"m\\u00e9\","
                                "\"sdpMLineIndex\":3,\"usernameFragment\":\"u\"}";
  char cand[128], mid[16];
  size_t cand_len = 0, mid_len = 0;
  int32_t mline = 42;
  CHECK_CODE(kvs_payload_candidate_parse(BROWSER, 0, cand, sizeof cand, &cand_len, mid,
                                         sizeof mid, &mid_len, &mline),
             KVS_OK);
  CHECK_STR(cand, "candidate:x A/y");
  CHECK_STR(mid, "m\xc3\xa9");
  CHECK(cand_len == 15 && mid_len == 3 && mline == 3);

  /* Absent fields: "" and -1. Unwanted outputs: NULL. */
  CHECK_CODE(kvs_payload_candidate_parse("{\"candidate\":\"c\",\"sdpMid\":null}", 0, cand,
                                         sizeof cand, &cand_len, mid, sizeof mid, &mid_len,
                                         &mline),
             KVS_OK);
  CHECK(strcmp(cand, "c") == 0 && mid[0] == '\0' && mid_len == 0 && mline == -1);
  CHECK_CODE(kvs_payload_candidate_parse("{\"candidate\":\"c\",\"sdpMLineIndex\":1}", 0, cand,
                                         sizeof cand, &cand_len, NULL, 0, NULL, NULL),
             KVS_OK);
  CHECK_STR(cand, "c");

  /* Too small: every output is still written, the first short buffer is named. */
  mline = 42;
  CHECK_CODE(kvs_payload_candidate_parse(BROWSER, 0, cand, sizeof cand, &cand_len, mid, 2,
                                         &mid_len, &mline),
             KVS_ERR_BUFFER_TOO_SMALL);
  CHECK_DETAIL_HAS("sdp_mid_buf");
  CHECK_STR(cand, "candidate:x A/y");
  CHECK(mid_len == 3 && strcmp(mid, "m") == 0 && mline == 3);
  CHECK_CODE(kvs_payload_candidate_parse(BROWSER, 0, NULL, 0, &cand_len, NULL, 0, NULL, NULL),
             KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(cand_len == 15);
  CHECK_DETAIL_HAS("candidate_buf");

  CHECK_CODE(kvs_payload_candidate_parse("{\"sdpMid\":\"0\"}", 0, cand, sizeof cand, &cand_len,
                                         NULL, 0, NULL, NULL),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("candidate is missing");
  CHECK_CODE(kvs_payload_candidate_parse("{\"candidate\":\"c\",\"sdpMLineIndex\":-1}", 0, cand,
                                         sizeof cand, &cand_len, NULL, 0, NULL, NULL),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("payload");
  CHECK_CODE(kvs_payload_candidate_parse("not json", 0, cand, sizeof cand, &cand_len, NULL, 0,
                                         NULL, NULL),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_CODE(kvs_payload_candidate_parse(NULL, 0, cand, sizeof cand, &cand_len, NULL, 0, NULL,
                                         NULL),
             KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("payload");
  CHECK_CODE(kvs_payload_candidate_parse(BROWSER, 0, cand, sizeof cand, NULL, NULL, 0, NULL,
                                         NULL),
             KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("candidate_len");
  CHECK_CODE(kvs_payload_candidate_parse(BROWSER, 0, cand, sizeof cand, &cand_len, mid,
                                         sizeof mid, NULL, NULL),
             KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("sdp_mid_len");
}

/* ---- against the emulator ------------------------------------------------------------------ */

static void test_send_and_received_messages(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-payload");
  cfg.connect_timeout_ms = 30000; /* valgrind on a loaded machine */
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;

  CHECK_CODE(kvs_viewer_send_offer(v, NULL), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("sdp");
  CHECK_CODE(kvs_viewer_send_offer(NULL, LIVE_SDP), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("viewer");
  CHECK_CODE(kvs_viewer_send_offer(v, ""), KVS_ERR_INVALID_ARGUMENT);
  CHECK_CODE(kvs_viewer_send_offer(v, LIVE_SDP), KVS_OK);

  char payload[16384];
  KvsMessage msg;
  kvs_message_init(&msg, payload, sizeof payload);
  CHECK_CODE(kvs_viewer_recv(v, &msg, 10000), KVS_OK);
  CHECK(msg.message_type == KVS_MSG_SDP_ANSWER);
  char sdp[8192];
  size_t len = 0;
  CHECK_CODE(kvs_message_answer_sdp(&msg, sdp, sizeof sdp, &len), KVS_OK);
  CHECK(strncmp(sdp, "v=0\r\n", 5) == 0);
  CHECK(strstr(sdp, "m=video") != NULL);
  CHECK(len == strlen(sdp));
  CHECK_CODE(kvs_message_answer_sdp(&msg, sdp, 6, &len), KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(strcmp(sdp, "v=0\r\n") == 0 && len > 6);
  CHECK_CODE(kvs_message_candidate(&msg, sdp, sizeof sdp, &len, NULL, 0, NULL, NULL),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("message_type");
  CHECK_CODE(kvs_message_answer_sdp(NULL, sdp, sizeof sdp, &len), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("msg");

  /* The master's candidates, read field by field. */
  int candidates = 0;
  for (;;) {
    kvs_message_init(&msg, payload, sizeof payload);
    int32_t rc = kvs_viewer_recv(v, &msg, 1000);
    if (rc == KVS_ERR_TIMEOUT) break;
    CHECK_CODE(rc, KVS_OK);
    if (rc != KVS_OK) break;
    if (msg.message_type != KVS_MSG_ICE_CANDIDATE) continue;
    char cand[1024], mid[64];
    size_t cand_len = 0, mid_len = 0;
    int32_t mline = -2;
    CHECK_CODE(kvs_message_candidate(&msg, cand, sizeof cand, &cand_len, mid, sizeof mid,
                                     &mid_len, &mline),
               KVS_OK);
    CHECK(strncmp(cand, "candidate:", 10) == 0);
    CHECK(cand_len == strlen(cand));
    CHECK(mline >= -1 && (mline >= 0 || mid_len > 0));
    CHECK_CODE(kvs_message_answer_sdp(&msg, sdp, sizeof sdp, &len), KVS_ERR_INVALID_ARGUMENT);
    CHECK_DETAIL_HAS("SDP_ANSWER");
    candidates++;
  }
  CHECK(candidates >= 1);

  /* A message whose payload did not fit holds nothing to read. */
  KvsMessage empty;
  kvs_message_init(&empty, NULL, 0);
  empty.message_type = KVS_MSG_SDP_ANSWER;
  CHECK_CODE(kvs_message_answer_sdp(&empty, sdp, sizeof sdp, &len), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("msg.payload");

  CHECK_CODE(kvs_viewer_send_candidate(v, CAND, "0", 0), KVS_OK);
  CHECK_CODE(kvs_viewer_send_candidate(v, CAND, NULL, 0), KVS_OK);
  CHECK_CODE(kvs_viewer_send_candidate(v, CAND, NULL, -1), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("sdp_mid");
  CHECK_CODE(kvs_viewer_send_candidate(v, NULL, "0", 0), KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("candidate");
  CHECK_CODE(kvs_viewer_send_candidate(NULL, CAND, "0", 0), KVS_ERR_NULL_POINTER);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
}

/* RFC 3986 percent-encoding of everything but the unreserved characters. */
static void percent_encode(const char *in, char *out, size_t cap) {
  static const char HEX[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '_' || *p == '.' || *p == '~') {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = HEX[*p >> 4];
      out[o++] = HEX[*p & 15];
    }
  }
  out[o] = '\0';
}

static void test_ice_server_uris(void) {
  KvsViewerConfig cfg;
  emulator_config(&cfg, "c-test-ice-uri");
  cfg.connect_timeout_ms = 30000;
  cfg.channel_arn = NULL;
  cfg.wss_endpoint = NULL;
  cfg.channel_name = getenv("KVS_CHANNEL_NAME");
  cfg.control_plane_url = getenv("KVS_CONTROL_PLANE_URL");
  CHECK(cfg.channel_name != NULL && cfg.control_plane_url != NULL);
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;

  char uri[1024];
  size_t len = 0;
  KvsIceServer stun;
  kvs_ice_server_init(&stun);
  CHECK_CODE(kvs_viewer_ice_server_get(v, 0, &stun), KVS_OK);
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 0, 0, KVS_ICE_URI_WEBRTC, uri, sizeof uri, &len),
             KVS_OK);
  CHECK_STR(uri, stun.uris[0]);
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 0, 0, KVS_ICE_URI_GSTREAMER, uri, sizeof uri, &len),
             KVS_OK);
  char want[4096];
  snprintf(want, sizeof want, "stun://%s", stun.uris[0] + strlen("stun:"));
  CHECK_STR(uri, want);
  CHECK(len == strlen(want));

  /* A TURN server as the service lists it: turn udp, turns udp, turns tcp. */
  KvsIceServer turn;
  kvs_ice_server_init(&turn);
  CHECK_CODE(kvs_viewer_ice_server_get(v, 1, &turn), KVS_OK);
  CHECK(turn.uri_count == 3);
  CHECK(strncmp(turn.uris[1], "turns:", 6) == 0 && strstr(turn.uris[1], "transport=udp"));
  char user[1024], pass[1024];
  percent_encode(turn.username, user, sizeof user);
  percent_encode(turn.password, pass, sizeof pass);
  CHECK(strchr(turn.username, ':') != NULL && strchr(user, ':') == NULL);

  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 0, KVS_ICE_URI_WEBRTC, uri, sizeof uri, &len),
             KVS_OK);
  CHECK_STR(uri, turn.uris[0]);
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 0, KVS_ICE_URI_GSTREAMER, uri, sizeof uri, &len),
             KVS_OK);
  snprintf(want, sizeof want, "turn://%s:%s@%s", user, pass, turn.uris[0] + strlen("turn:"));
  CHECK_STR(uri, want);

  /* TURN over DTLS next to TURN over TLS/TCP: skip it (empty, KVS_OK) in both styles. */
  uri[0] = 'x';
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 1, KVS_ICE_URI_WEBRTC, uri, sizeof uri, &len),
             KVS_OK);
  CHECK(len == 0 && uri[0] == '\0');
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 1, KVS_ICE_URI_GSTREAMER, NULL, 0, &len), KVS_OK);
  CHECK(len == 0);

  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 2, KVS_ICE_URI_WEBRTC, uri, sizeof uri, &len),
             KVS_OK);
  CHECK_STR(uri, turn.uris[2]);
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 2, KVS_ICE_URI_GSTREAMER, uri, sizeof uri, &len),
             KVS_OK);
  char host_port[1100];
  snprintf(host_port, sizeof host_port, "%s", turn.uris[2] + strlen("turns:"));
  host_port[strcspn(host_port, "?")] = '\0';
  snprintf(want, sizeof want, "turns://%s:%s@%s", user, pass, host_port);
  CHECK_STR(uri, want);

  /* Size query and truncation. */
  size_t need = 0;
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 2, KVS_ICE_URI_GSTREAMER, NULL, 0, &need),
             KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(need == strlen(want));
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 2, KVS_ICE_URI_GSTREAMER, uri, 9, &need),
             KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(need == strlen(want) && strlen(uri) == 8 && strncmp(uri, "turns://", 8) == 0);
  CHECK_DETAIL_HAS("buf");

  /* Bad arguments, named. */
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 0, 7, uri, sizeof uri, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("style");
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 99, 0, KVS_ICE_URI_WEBRTC, uri, sizeof uri, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("server_index");
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 3, KVS_ICE_URI_WEBRTC, uri, sizeof uri, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("uri_index");
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 0, KVS_ICE_URI_WEBRTC, uri, sizeof uri, NULL),
             KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("out_len");
  CHECK_CODE(kvs_viewer_ice_server_uri(v, 1, 0, KVS_ICE_URI_WEBRTC, NULL, 5, &len),
             KVS_ERR_INVALID_ARGUMENT);
  CHECK_CODE(kvs_viewer_ice_server_uri(NULL, 1, 0, KVS_ICE_URI_WEBRTC, uri, sizeof uri, &len),
             KVS_ERR_NULL_POINTER);
  CHECK_DETAIL_HAS("viewer");
  /* The detail never carries the credentials. */
  CHECK(strstr(last_error(), turn.password) == NULL);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
}

int main(void) {
  test_offer();
  test_answer_sdp();
  test_candidate();
  test_candidate_parse();
  if (load_test_env() != 0) return 2;
  test_send_and_received_messages();
  test_ice_server_uris();
  return test_summary("test_payload");
}

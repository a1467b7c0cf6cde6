/*
 * viewer.c — join a Kinesis Video Streams WebRTC signaling channel as a viewer, send an SDP offer
 * and one ICE candidate, and print what the master sends back.
 *
 * Environment:
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   credentials (required, unless the KVS_IOT_*
 *                                              variables below are set)
 *   AWS_SESSION_TOKEN                          temporary credentials' token (optional)
 *   KVS_IOT_CREDENTIALS_ENDPOINT, KVS_IOT_ROLE_ALIAS, KVS_IOT_THING_NAME, KVS_IOT_CERT_FILE,
 *   KVS_IOT_KEY_FILE, optional KVS_IOT_CA_FILE  without AWS_ACCESS_KEY_ID: temporary
 *                                              credentials from the AWS IoT credentials
 *                                              provider, with the device certificate
 *   AWS_REGION (or AWS_DEFAULT_REGION)         e.g. us-west-2 (required)
 *   KVS_CHANNEL_ARN                            the signaling channel (or KVS_CHANNEL_NAME)
 *   KVS_CHANNEL_NAME                           channel name, looked up when there is no ARN
 *   KVS_CLIENT_ID                              this viewer's id (required)
 *   KVS_WSS_ENDPOINT                           wss://... from GetSignalingChannelEndpoint
 *                                              (optional: without it the viewer discovers it)
 *   KVS_CONTROL_PLANE_URL                      https://... control plane (optional; regional
 *                                              default)
 *   KVS_CA_FILE                                PEM file added to the trusted roots (optional)
 *   KVS_OFFER_FILE                             SDP offer payload JSON (optional; built-in otherwise)
 *   KVS_RECV_SECONDS                           how long to wait for messages (optional, default 10)
 *
 * Output, one line per event:
 *   connected client_id=<id>
 *   ice <uri> ttl=<s>                          one per ICE server URI, STUN first (never the
 *                                              password)
 *   send SDP_OFFER payload=<json>
 *   send ICE_CANDIDATE payload=<json>
 *   recv <TYPE> sender=<id or -> payload=<decoded payload>[ status=<code> error=<type>]
 *   closed
 * It stops after an SDP answer plus all candidates that arrive within 1 s after it (or after
 * KVS_RECV_SECONDS), closes and exits 0. On any failure it prints
 *   error <KVS_ERR_NAME> (<code>): <detail>
 * and exits 1. Control characters in payloads are printed escaped (\n, \r, \t, \xHH) so each
 * message stays on one line.
 *
 * Build: see examples-c/CMakeLists.txt, or with pkg-config:
 *   cc viewer.c $(pkg-config --cflags --libs kvs_viewer) -o viewer
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kvs_viewer.h>

/* A realistic browser-style offer (video + audio + data channel), used without KVS_OFFER_FILE. */
static const char BUILTIN_OFFER[] =
    "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\n"
    "s=-\\r\\n"
    "t=0 0\\r\\n"
    "a=group:BUNDLE 0 1 2\\r\\n"
    "a=extmap-allow-mixed\\r\\n"
    "a=msid-semantic: WMS\\r\\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97\\r\\n"
    "c=IN IP4 0.0.0.0\\r\\n"
    "a=rtcp:9 IN IP4 0.0.0.0\\r\\n"
    "a=ice-ufrag:EsAw\\r\\n"
    "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\\r\\n"
    "a=ice-options:trickle\\r\\n"
    "a=fingerprint:sha-256 D1:2C:E4:54:8C:6D:6A:91:7F:28:2B:07:D4:4E:1E:0C:6F:2B:8A:5E:55:1B:"
    "1F:0A:34:9C:2D:EB:45:6C:19:63\\r\\n"
    "a=setup:actpass\\r\\n"
    "a=mid:0\\r\\n"
    "a=recvonly\\r\\n"
    "a=rtcp-mux\\r\\n"
    "a=rtcp-rsize\\r\\n"
    "a=rtpmap:96 H264/90000\\r\\n"
    "a=rtcp-fb:96 nack\\r\\n"
    "a=rtcp-fb:96 nack pli\\r\\n"
    "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\\r\\n"
    "a=rtpmap:97 rtx/90000\\r\\n"
    "a=fmtp:97 apt=96\\r\\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n"
    "c=IN IP4 0.0.0.0\\r\\n"
    "a=rtcp:9 IN IP4 0.0.0.0\\r\\n"
    "a=ice-ufrag:EsAw\\r\\n"
    "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\\r\\n"
    "a=ice-options:trickle\\r\\n"
    "a=fingerprint:sha-256 D1:2C:E4:54:8C:6D:6A:91:7F:28:2B:07:D4:4E:1E:0C:6F:2B:8A:5E:55:1B:"
    "1F:0A:34:9C:2D:EB:45:6C:19:63\\r\\n"
    "a=setup:actpass\\r\\n"
    "a=mid:1\\r\\n"
    "a=sendrecv\\r\\n"
    "a=rtcp-mux\\r\\n"
    "a=rtpmap:111 opus/48000/2\\r\\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\\r\\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\\r\\n"
    "c=IN IP4 0.0.0.0\\r\\n"
    "a=ice-ufrag:EsAw\\r\\n"
    "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\\r\\n"
    "a=ice-options:trickle\\r\\n"
    "a=fingerprint:sha-256 D1:2C:E4:54:8C:6D:6A:91:7F:28:2B:07:D4:4E:1E:0C:6F:2B:8A:5E:55:1B:"
    "1F:0A:34:9C:2D:EB:45:6C:19:63\\r\\n"
    "a=setup:actpass\\r\\n"
    "a=mid:2\\r\\n"
    "a=sctp-port:5000\\r\\n"
    "a=max-message-size:262144\\r\\n\"}";

/* One host candidate (a documentation address: nothing is sent to it). */
static const char CANDIDATE[] =
    "{\"candidate\":\"candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host generation 0\","
    "\"sdpMid\":\"0\",\"sdpMLineIndex\":0}";

static int fail(int32_t code, const char *context) {
  char detail[1024];
  detail[0] = '\0';
  kvs_last_error_message(detail, sizeof detail);
  if (detail[0] == '\0' && context) snprintf(detail, sizeof detail, "%s", context);
  printf("error %s (%d): %s\n", kvs_error_name(code), (int)code, detail);
  return 1;
}

/* Failures of the example itself (environment, files) use the same one-line format. */
static int fail_local(int32_t code, const char *fmt, const char *arg) {
  char detail[1024];
  snprintf(detail, sizeof detail, fmt, arg);
  printf("error %s (%d): %s\n", kvs_error_name(code), (int)code, detail);
  return 1;
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints s[0..len) with control characters escaped, so a message is always one line. */
static void print_escaped(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n') fputs("\\n", stdout);
    else if (c == '\r') fputs("\\r", stdout);
    else if (c == '\t') fputs("\\t", stdout);
    else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
    else putchar(c);
  }
}

/* Reads a whole file into a NUL-terminated heap buffer, trailing whitespace removed. */
static char *read_file(const char *path, size_t *len_out) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) break;
    if (len + 1 == cap) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
  }
  int err = ferror(f);
  fclose(f);
  if (!buf || err) {
    free(buf);
    return NULL;
  }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                     buf[len - 1] == '\t'))
    len--;
  buf[len] = '\0';
  *len_out = len;
  return buf;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);

  /* ---- configuration from the environment ---- */
  /* Without IAM keys, a device trades its certificate at the AWS IoT credentials provider. */
  int use_iot = !env("AWS_ACCESS_KEY_ID") && env("KVS_IOT_CREDENTIALS_ENDPOINT");
  static const char *const required_keys[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                              "KVS_CLIENT_ID"};
  static const char *const required_iot[] = {"KVS_IOT_ROLE_ALIAS", "KVS_IOT_THING_NAME",
                                             "KVS_IOT_CERT_FILE", "KVS_IOT_KEY_FILE",
                                             "KVS_CLIENT_ID"};
  const char *const *required = use_iot ? required_iot : required_keys;
  size_t n_required = use_iot ? sizeof required_iot / sizeof required_iot[0]
                              : sizeof required_keys / sizeof required_keys[0];
  for (size_t i = 0; i < n_required; i++) {
    if (!env(required[i]))
      return fail_local(KVS_ERR_INVALID_ARGUMENT, "environment variable %s is not set",
                        required[i]);
  }
  if (!env("KVS_CHANNEL_ARN") && !env("KVS_CHANNEL_NAME"))
    return fail_local(KVS_ERR_INVALID_ARGUMENT, "environment variable %s is not set",
                      "KVS_CHANNEL_ARN (or KVS_CHANNEL_NAME)");
  const char *region = env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
  if (!region)
    return fail_local(KVS_ERR_INVALID_ARGUMENT, "environment variable %s is not set",
                      "AWS_REGION (or AWS_DEFAULT_REGION)");

  double recv_seconds = 10.0;
  if (env("KVS_RECV_SECONDS")) {
    char *end = NULL;
    errno = 0;
    recv_seconds = strtod(env("KVS_RECV_SECONDS"), &end);
    if (errno != 0 || end == env("KVS_RECV_SECONDS") || *end != '\0' || !(recv_seconds > 0) ||
        recv_seconds > 86400)
      return fail_local(KVS_ERR_INVALID_ARGUMENT,
                        "KVS_RECV_SECONDS must be a number of seconds in (0, 86400], got \"%s\"",
                        env("KVS_RECV_SECONDS"));
  }

  const char *offer = BUILTIN_OFFER;
  size_t offer_len = strlen(BUILTIN_OFFER);
  char *offer_file = NULL;
  if (env("KVS_OFFER_FILE")) {
    offer_file = read_file(env("KVS_OFFER_FILE"), &offer_len);
    if (!offer_file)
      return fail_local(KVS_ERR_INVALID_ARGUMENT, "cannot read KVS_OFFER_FILE %s",
                        env("KVS_OFFER_FILE"));
    offer = offer_file;
  }

  KvsViewerConfig cfg;
  kvs_viewer_config_init(&cfg);
  cfg.region = region;
  cfg.channel_arn = env("KVS_CHANNEL_ARN");
  cfg.client_id = env("KVS_CLIENT_ID");
  cfg.wss_endpoint = env("KVS_WSS_ENDPOINT");           /* NULL = discover */
  cfg.channel_name = env("KVS_CHANNEL_NAME");           /* used without an ARN */
  cfg.control_plane_url = env("KVS_CONTROL_PLANE_URL"); /* NULL = regional default */
  if (use_iot) {
    cfg.iot_credentials_endpoint = env("KVS_IOT_CREDENTIALS_ENDPOINT");
    cfg.iot_role_alias = env("KVS_IOT_ROLE_ALIAS");
    cfg.iot_thing_name = env("KVS_IOT_THING_NAME");
    cfg.iot_cert_file = env("KVS_IOT_CERT_FILE");
    cfg.iot_key_file = env("KVS_IOT_KEY_FILE");
    cfg.iot_ca_file = env("KVS_IOT_CA_FILE"); /* NULL = system roots only */
  } else {
    cfg.access_key_id = env("AWS_ACCESS_KEY_ID");
    cfg.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
    cfg.session_token = env("AWS_SESSION_TOKEN"); /* NULL when unset */
  }
  cfg.ca_file = env("KVS_CA_FILE");             /* NULL = system roots only */

  /* ---- connect, offer, candidate ---- */
  KvsViewer *viewer = NULL;
  int32_t rc = kvs_viewer_connect(&cfg, &viewer);
  if (rc != KVS_OK) {
    free(offer_file);
    return fail(rc, "connect failed");
  }
  printf("connected client_id=%s\n", cfg.client_id);

  /* The ICE servers for the peer connection: STUN first, then TURN (credentials not printed). */
  size_t ice_count = 0;
  rc = kvs_viewer_ice_server_count(viewer, &ice_count);
  if (rc != KVS_OK) goto failed;
  for (size_t i = 0; i < ice_count; i++) {
    KvsIceServer server;
    kvs_ice_server_init(&server);
    rc = kvs_viewer_ice_server_get(viewer, i, &server);
    if (rc != KVS_OK) goto failed;
    for (uint32_t u = 0; u < server.uri_count; u++)
      printf("ice %s ttl=%u\n", server.uris[u], (unsigned)server.ttl_s);
  }

  rc = kvs_viewer_send(viewer, KVS_MSG_SDP_OFFER, offer, offer_len, NULL);
  if (rc != KVS_OK) goto failed;
  printf("send SDP_OFFER payload=");
  print_escaped(offer, offer_len);
  printf("\n");

  rc = kvs_viewer_send(viewer, KVS_MSG_ICE_CANDIDATE, CANDIDATE, strlen(CANDIDATE), NULL);
  if (rc != KVS_OK) goto failed;
  printf("send ICE_CANDIDATE payload=%s\n", CANDIDATE);

  /* ---- receive: until 1 s after the answer, or the time limit ---- */
  size_t cap = 16384;
  char *payload = malloc(cap);
  if (!payload) {
    rc = KVS_ERR_INTERNAL;
    kvs_viewer_close(viewer);
    free(offer_file);
    return fail_local(rc, "%s", "out of memory");
  }
  double limit = now_s() + recv_seconds;
  double stop_at = limit;
  int got_answer = 0;
  for (;;) {
    double left = stop_at - now_s();
    if (left <= 0) break;
    KvsMessage msg;
    kvs_message_init(&msg, payload, cap);
    rc = kvs_viewer_recv(viewer, &msg, (int32_t)(left * 1000.0) + 1);
    if (rc == KVS_ERR_TIMEOUT) continue; /* the loop condition decides */
    if (rc == KVS_ERR_BUFFER_TOO_SMALL) {
      /* The message stays queued; msg.payload_len says how much room it needs. */
      char *bigger = realloc(payload, msg.payload_len + 1);
      if (!bigger) {
        rc = KVS_ERR_INTERNAL;
        break;
      }
      payload = bigger;
      cap = msg.payload_len + 1;
      continue;
    }
    if (rc != KVS_OK) break;

    printf("recv %s sender=%s payload=", kvs_message_type_name(msg.message_type),
           msg.sender_client_id[0] ? msg.sender_client_id : "-");
    print_escaped(msg.payload, msg.payload_len);
    if (msg.message_type == KVS_MSG_STATUS_RESPONSE)
      printf(" status=%d error=%s", (int)msg.status_code, msg.error_type);
    printf("\n");

    if (msg.message_type == KVS_MSG_SDP_ANSWER && !got_answer) {
      got_answer = 1;
      double after = now_s() + 1.0;
      if (after < stop_at) stop_at = after;
    }
  }
  free(payload);
  if (rc != KVS_OK && rc != KVS_ERR_TIMEOUT) goto failed;
  if (!got_answer)
    fprintf(stderr, "note: no SDP answer within %.1f s\n", recv_seconds);

  free(offer_file);
  rc = kvs_viewer_close(viewer);
  if (rc != KVS_OK) return fail(rc, "close failed");
  printf("closed\n");
  return 0;

failed:
  fail(rc, "failed");
  kvs_viewer_close(viewer); /* frees the handle whatever happened */
  free(offer_file);
  return 1;
}

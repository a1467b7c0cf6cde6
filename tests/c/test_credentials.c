/* Credential sources from C against the signaling emulator (ctest fixture, started with --iot):
 * the credentials callback (called on connect and again on a reconnect once its credentials
 * near expiry; a failing callback is KVS_ERR_ACCESS_DENIED), the AWS IoT credentials provider
 * through the iot_* fields (mutual TLS with the emulator's device certificate), a wrong thing
 * name (403), and incomplete iot_* fields refused before any I/O.
 *
 * Reads the emulator's env file (KEY=VALUE lines) named by KVS_TEST_ENV_FILE. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvs_viewer.h"
#include "test_util.h"

static const char OFFER[] =
    "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\\r\\nc=IN IP4 0.0.0.0\\r\\na=mid:0\\r\\na=recvonly\\r\\n"
    "a=rtpmap:96 H264/90000\\r\\n\"}";

/* Loads KEY=VALUE lines (optionally quoted) into the environment. */
static int load_env_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "cannot open env file %s\n", path);
    return -1;
  }
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    char *eq = strchr(line, '=');
    if (!eq || line[0] == '#') continue;
    *eq = '\0';
    char *val = eq + 1;
    size_t n = strlen(val);
    if (n >= 2 && (val[0] == '\'' || val[0] == '"') && val[n - 1] == val[0]) {
      val[n - 1] = '\0';
      val++;
    }
    setenv(line, val, 1);
  }
  fclose(f);
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Discovery (Describe, GetEndpoint, GetIceServerConfig) and the WSS upgrade: four signed
 * requests, all with the credentials of the source under test. No static keys. */
static void base_config(KvsViewerConfig *cfg, const char *client_id) {
  kvs_viewer_config_init(cfg);
  cfg->region = getenv("AWS_REGION");
  cfg->channel_name = getenv("KVS_CHANNEL_NAME");
  cfg->control_plane_url = getenv("KVS_CONTROL_PLANE_URL");
  cfg->client_id = client_id;
  cfg->ca_file = getenv("KVS_CA_FILE");
  cfg->connect_timeout_ms = 10000;
}

struct vault {
  int calls;
  int fail;             /* return this instead of filling */
  int lifetime_s;       /* expires_at = now + lifetime_s */
};

static void put(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

/* A device vault: hands out the emulator's keys with a short expiry. */
static int32_t vault_fill(void *user_data, KvsCredentials *out) {
  struct vault *v = user_data;
  v->calls++;
  if (v->fail) return v->fail;
  if (out->struct_size < sizeof *out) return -1;
  put(out->access_key_id, sizeof out->access_key_id, getenv("AWS_ACCESS_KEY_ID"));
  put(out->secret_access_key, sizeof out->secret_access_key, getenv("AWS_SECRET_ACCESS_KEY"));
  put(out->session_token, sizeof out->session_token, getenv("AWS_SESSION_TOKEN"));
  out->expires_at_unix_s = (int64_t)now_s() + v->lifetime_s;
  return 0;
}

static void exchange(KvsViewer *v) {
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, 0, NULL), KVS_OK);
  char payload[KVS_MAX_PAYLOAD_LEN + 1];
  KvsMessage msg;
  kvs_message_init(&msg, payload, sizeof payload);
  /* The answer, after any candidates still queued from an earlier offer. */
  int answered = 0;
  for (int i = 0; i < 8 && !answered; i++) {
    CHECK_CODE(kvs_viewer_recv(v, &msg, 10000), KVS_OK);
    answered = msg.message_type == KVS_MSG_SDP_ANSWER;
  }
  CHECK(answered);
}

static void test_callback(void) {
  struct vault vault = {0, 0, 4};
  KvsViewerConfig cfg;
  base_config(&cfg, "c-callback");
  cfg.credentials_callback = vault_fill;
  cfg.credentials_user_data = &vault;
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) return;
  int after_connect = vault.calls;
  CHECK(after_connect >= 1);
  exchange(v);
  /* 4 s credentials are due for a refresh 2 s (half the lifetime) plus jitter before expiry:
   * a reconnect after that asks the vault again. Bounded: at most 10 s. */
  double deadline = now_s() + 10.0;
  while (vault.calls == after_connect && now_s() < deadline) {
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK_CODE(kvs_viewer_reconnect(v), KVS_OK);
  }
  CHECK(vault.calls > after_connect);
  exchange(v);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);

  struct vault locked = {0, 42, 60};
  base_config(&cfg, "c-callback-fails");
  cfg.credentials_callback = vault_fill;
  cfg.credentials_user_data = &locked;
  v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_ACCESS_DENIED);
  CHECK(v == NULL);
  CHECK_DETAIL_HAS("credentials: the credentials callback failed (returned 42)");
}

static void iot_config(KvsViewerConfig *cfg, const char *client_id) {
  base_config(cfg, client_id);
  cfg->iot_credentials_endpoint = getenv("KVS_IOT_CREDENTIALS_ENDPOINT");
  cfg->iot_role_alias = getenv("KVS_IOT_ROLE_ALIAS");
  cfg->iot_thing_name = getenv("KVS_IOT_THING_NAME");
  cfg->iot_cert_file = getenv("KVS_IOT_CERT_FILE");
  cfg->iot_key_file = getenv("KVS_IOT_KEY_FILE");
  cfg->iot_ca_file = getenv("KVS_IOT_CA_FILE");
}

static void test_iot(void) {
  KvsViewerConfig cfg;
  iot_config(&cfg, "c-iot");
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (v) {
    exchange(v);
    CHECK_CODE(kvs_viewer_reconnect(v), KVS_OK);
    exchange(v);
    CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  }

  iot_config(&cfg, "c-iot-wrong-thing");
  cfg.iot_thing_name = "not-my-thing";
  v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_ACCESS_DENIED);
  CHECK(v == NULL);
  CHECK_DETAIL_HAS("credentials: IoT credentials provider: HTTP 403");
  CHECK(kvs_last_error_http_status() == 403);

  iot_config(&cfg, "c-iot-incomplete");
  cfg.iot_key_file = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_INVALID_ARGUMENT);
  CHECK_DETAIL_HAS("iot_key_file");
}

int main(void) {
  const char *env_file = getenv("KVS_TEST_ENV_FILE");
  if (!env_file || load_env_file(env_file) != 0) {
    fprintf(stderr, "KVS_TEST_ENV_FILE must name the emulator's env file\n");
    return 1;
  }
  if (!getenv("KVS_IOT_CREDENTIALS_ENDPOINT")) {
    fprintf(stderr, "the emulator runs without --iot: no KVS_IOT_* in %s\n", env_file);
    return 1;
  }
  test_callback();
  test_iot();
  return test_summary("test_credentials");
}

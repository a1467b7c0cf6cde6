/* Offline tests of every public function: versions, names, init helpers, NULL handling, config
 * validation (each bad field is refused before any network I/O, with a message naming the field)
 * and the per-thread error detail. The only socket opened goes to a refused port on 127.0.0.1. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kvs_viewer.h"
#include "test_util.h"

#define VALID_ARN "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123"
/* Nothing listens on port 1 of the loopback: a config that passes validation fails with
 * KVS_ERR_NETWORK, one that does not fails with KVS_ERR_INVALID_ARGUMENT. The control plane
 * points there too, so a config that makes the library discover never leaves the machine. */
#define REFUSED_ENDPOINT "wss://127.0.0.1:1"
#define REFUSED_CONTROL_PLANE "https://127.0.0.1:1"

static void valid_config(KvsViewerConfig *cfg) {
  kvs_viewer_config_init(cfg);
  cfg->region = "us-west-2";
  cfg->channel_arn = VALID_ARN;
  cfg->client_id = "viewer-1";
  cfg->wss_endpoint = REFUSED_ENDPOINT;
  cfg->access_key_id = "AKIDEXAMPLE";
  cfg->secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  cfg->control_plane_url = REFUSED_CONTROL_PLANE;
  cfg->connect_timeout_ms = 30000; /* valgrind on a loaded machine; refused ports fail at once */
}

static void test_versions(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", KVS_VIEWER_VERSION_MAJOR, KVS_VIEWER_VERSION_MINOR,
           KVS_VIEWER_VERSION_PATCH);
  CHECK_STR(kvs_viewer_version(), want);
  /* KVS_EXPECTED_VERSION comes from Cargo.toml through CMake. */
  CHECK_STR(kvs_viewer_version(), KVS_EXPECTED_VERSION);
  CHECK(kvs_viewer_abi_version() == KVS_VIEWER_ABI_VERSION);
  CHECK(KVS_MAX_ID_LEN == 256);
  CHECK(KVS_MAX_DESCRIPTION_LEN == 1024);
}

static void test_error_names(void) {
  static const struct {
    int32_t code;
    const char *name;
  } table[] = {
      {KVS_OK, "KVS_OK"},
      {KVS_ERR_INVALID_ARGUMENT, "KVS_ERR_INVALID_ARGUMENT"},
      {KVS_ERR_ACCESS_DENIED, "KVS_ERR_ACCESS_DENIED"},
      {KVS_ERR_RESOURCE_NOT_FOUND, "KVS_ERR_RESOURCE_NOT_FOUND"},
      {KVS_ERR_CLIENT_LIMIT_EXCEEDED, "KVS_ERR_CLIENT_LIMIT_EXCEEDED"},
      {KVS_ERR_SERVICE, "KVS_ERR_SERVICE"},
      {KVS_ERR_TIMEOUT, "KVS_ERR_TIMEOUT"},
      {KVS_ERR_CLOSED, "KVS_ERR_CLOSED"},
      {KVS_ERR_NETWORK, "KVS_ERR_NETWORK"},
      {KVS_ERR_TLS, "KVS_ERR_TLS"},
      {KVS_ERR_PROTOCOL, "KVS_ERR_PROTOCOL"},
      {KVS_ERR_HTTP_STATUS, "KVS_ERR_HTTP_STATUS"},
      {KVS_ERR_BUFFER_TOO_SMALL, "KVS_ERR_BUFFER_TOO_SMALL"},
      {KVS_ERR_NULL_POINTER, "KVS_ERR_NULL_POINTER"},
      {KVS_ERR_INTERNAL, "KVS_ERR_INTERNAL"},
  };
  /* The codes are a stable ABI: their values are fixed forever. */
  CHECK(KVS_OK == 0);
  CHECK(KVS_ERR_INVALID_ARGUMENT == -1);
  CHECK(KVS_ERR_ACCESS_DENIED == -2);
  CHECK(KVS_ERR_RESOURCE_NOT_FOUND == -3);
  CHECK(KVS_ERR_CLIENT_LIMIT_EXCEEDED == -4);
  CHECK(KVS_ERR_SERVICE == -5);
  CHECK(KVS_ERR_TIMEOUT == -10);
  CHECK(KVS_ERR_CLOSED == -11);
  CHECK(KVS_ERR_NETWORK == -12);
  CHECK(KVS_ERR_TLS == -13);
  CHECK(KVS_ERR_PROTOCOL == -14);
  CHECK(KVS_ERR_HTTP_STATUS == -15);
  CHECK(KVS_ERR_BUFFER_TOO_SMALL == -20);
  CHECK(KVS_ERR_NULL_POINTER == -21);
  CHECK(KVS_ERR_INTERNAL == -30);
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    CHECK_STR(kvs_error_name(table[i].code), table[i].name);
  }
  static const int32_t unknown[] = {1, -6, -9, -16, -19, -22, -29, -31, -1000, INT32_MIN, INT32_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    CHECK_STR(kvs_error_name(unknown[i]), "KVS_ERR_UNKNOWN");
    CHECK(kvs_status_is_retryable(unknown[i]) == 0);
  }
  /* Retry advice for the codes that do not depend on the failure's HTTP status. */
  {
    static const KvsStatus retry[] = {KVS_ERR_TIMEOUT, KVS_ERR_NETWORK, KVS_ERR_CLOSED,
                                      KVS_ERR_CLIENT_LIMIT_EXCEEDED};
    static const KvsStatus final[] = {KVS_OK, KVS_ERR_INVALID_ARGUMENT, KVS_ERR_ACCESS_DENIED,
                                      KVS_ERR_RESOURCE_NOT_FOUND, KVS_ERR_TLS, KVS_ERR_PROTOCOL,
                                      KVS_ERR_BUFFER_TOO_SMALL, KVS_ERR_NULL_POINTER,
                                      KVS_ERR_INTERNAL};
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++) {
      CHECK(kvs_status_is_retryable(retry[i]) == 1);
    }
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++) {
      CHECK(kvs_status_is_retryable(final[i]) == 0);
    }
    /* No failure with an HTTP status on this thread: no advice to retry. */
    CHECK_CODE(kvs_viewer_close(NULL), KVS_OK);
    CHECK(kvs_status_is_retryable(KVS_ERR_SERVICE) == 0);
    CHECK(kvs_status_is_retryable(KVS_ERR_HTTP_STATUS) == 0);
  }
}

static void test_message_type_names(void) {
  CHECK(KVS_MSG_UNKNOWN == 0);
  CHECK(KVS_MSG_SDP_OFFER == 1);
  CHECK(KVS_MSG_SDP_ANSWER == 2);
  CHECK(KVS_MSG_ICE_CANDIDATE == 3);
  CHECK(KVS_MSG_STATUS_RESPONSE == 4);
  CHECK(KVS_MSG_GO_AWAY == 5);
  CHECK(KVS_MSG_RECONNECT_ICE_SERVER == 6);
  CHECK_STR(kvs_message_type_name(KVS_MSG_UNKNOWN), "UNKNOWN");
  CHECK_STR(kvs_message_type_name(KVS_MSG_SDP_OFFER), "SDP_OFFER");
  CHECK_STR(kvs_message_type_name(KVS_MSG_SDP_ANSWER), "SDP_ANSWER");
  CHECK_STR(kvs_message_type_name(KVS_MSG_ICE_CANDIDATE), "ICE_CANDIDATE");
  CHECK_STR(kvs_message_type_name(KVS_MSG_STATUS_RESPONSE), "STATUS_RESPONSE");
  CHECK_STR(kvs_message_type_name(KVS_MSG_GO_AWAY), "GO_AWAY");
  CHECK_STR(kvs_message_type_name(KVS_MSG_RECONNECT_ICE_SERVER), "RECONNECT_ICE_SERVER");
  CHECK_STR(kvs_message_type_name(KVS_MSG_RECONNECTED), "RECONNECTED");
  CHECK_STR(kvs_message_type_name(8), "UNKNOWN");
  CHECK_STR(kvs_message_type_name(-1), "UNKNOWN");
  CHECK_STR(kvs_message_type_name(INT32_MAX), "UNKNOWN");
}

static void test_init_helpers(void) {
  KvsViewerConfig cfg;
  memset(&cfg, 0xAB, sizeof cfg);
  kvs_viewer_config_init(&cfg);
  CHECK(cfg.struct_size == sizeof(KvsViewerConfig));
  CHECK(cfg.region == NULL);
  CHECK(cfg.channel_arn == NULL);
  CHECK(cfg.client_id == NULL);
  CHECK(cfg.wss_endpoint == NULL);
  CHECK(cfg.access_key_id == NULL);
  CHECK(cfg.secret_access_key == NULL);
  CHECK(cfg.session_token == NULL);
  CHECK(cfg.ca_file == NULL);
  CHECK(cfg.channel_name == NULL);
  CHECK(cfg.control_plane_url == NULL);
  (kvs_viewer_config_init)(NULL); /* the 0.1 entry point: must not crash */
  CHECK_CODE(kvs_viewer_config_init_sized(NULL, sizeof cfg), KVS_ERR_NULL_POINTER);

  KvsIceServer ice;
  memset(&ice, 0xAB, sizeof ice);
  kvs_ice_server_init(&ice);
  CHECK(ice.struct_size == sizeof(KvsIceServer));
  CHECK(ice.uri_count == 0 && ice.ttl_s == 0 && ice.password[0] == '\0');
  (kvs_ice_server_init)(NULL); /* must not crash */
  CHECK_CODE(kvs_ice_server_init_sized(NULL, sizeof ice), KVS_ERR_NULL_POINTER);

  char buf[16];
  KvsMessage msg;
  memset(&msg, 0xAB, sizeof msg);
  kvs_message_init(&msg, buf, sizeof buf);
  CHECK(msg.struct_size == sizeof(KvsMessage));
  CHECK(msg.payload == buf);
  CHECK(msg.payload_cap == sizeof buf);
  CHECK(msg.payload_len == 0);
  CHECK(msg.message_type == KVS_MSG_UNKNOWN);
  CHECK(msg.sender_client_id[0] == '\0');
  (kvs_message_init)(NULL, buf, sizeof buf); /* must not crash */
  CHECK_CODE(kvs_message_init_sized(NULL, sizeof msg, buf, sizeof buf), KVS_ERR_NULL_POINTER);
  /* The 0.1 entry points write the 0.1 sizes, which this header's structs still have. */
  memset(&msg, 0xAB, sizeof msg);
  (kvs_message_init)(&msg, buf, sizeof buf);
  CHECK(msg.struct_size <= sizeof msg && msg.payload == buf && msg.description[0] == '\0');
}

static void test_null_pointers(void) {
  KvsViewerConfig cfg;
  valid_config(&cfg);
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(NULL, &v), KVS_ERR_NULL_POINTER);
  CHECK(v == NULL);
  CHECK_CODE(kvs_viewer_connect(&cfg, NULL), KVS_ERR_NULL_POINTER);

  char buf[64];
  KvsMessage msg;
  kvs_message_init(&msg, buf, sizeof buf);
  CHECK_CODE(kvs_viewer_send(NULL, KVS_MSG_SDP_OFFER, "{}", 2, NULL), KVS_ERR_NULL_POINTER);
  CHECK_CODE(kvs_viewer_recv(NULL, &msg, 0), KVS_ERR_NULL_POINTER);
  CHECK_CODE(kvs_viewer_close(NULL), KVS_OK);
  CHECK_CODE(kvs_viewer_reconnect(NULL), KVS_ERR_NULL_POINTER);
  CHECK_CODE(kvs_viewer_shutdown(NULL), KVS_ERR_NULL_POINTER);
  size_t count = 0;
  KvsIceServer ice;
  kvs_ice_server_init(&ice);
  CHECK_CODE(kvs_viewer_ice_server_count(NULL, &count), KVS_ERR_NULL_POINTER);
  CHECK_CODE(kvs_viewer_ice_server_get(NULL, 0, &ice), KVS_ERR_NULL_POINTER);
  CHECK_CODE(kvs_viewer_refresh_ice_servers(NULL), KVS_ERR_NULL_POINTER);

  /* Required string fields left NULL are refused, naming the field (wss_endpoint is optional:
   * NULL means discover it). */
  static const char *const fields[] = {"region", "channel_arn", "client_id", "access_key_id",
                                       "secret_access_key"};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    valid_config(&cfg);
    const char **slot[] = {&cfg.region, &cfg.channel_arn, &cfg.client_id, &cfg.access_key_id,
                           &cfg.secret_access_key};
    *slot[i] = NULL;
    v = NULL;
    int32_t rc = kvs_viewer_connect(&cfg, &v);
    CHECK(rc == KVS_ERR_INVALID_ARGUMENT || rc == KVS_ERR_NULL_POINTER);
    CHECK(v == NULL);
    CHECK_DETAIL_HAS(fields[i]);
  }
}

struct bad_case {
  const char *field;      /* the name the detail message must contain */
  const char *value;      /* value put into the field */
};

static void set_field(KvsViewerConfig *cfg, const char *field, const char *value) {
  if (strcmp(field, "region") == 0) cfg->region = value;
  else if (strcmp(field, "channel_arn") == 0) cfg->channel_arn = value;
  else if (strcmp(field, "client_id") == 0) cfg->client_id = value;
  else if (strcmp(field, "wss_endpoint") == 0) cfg->wss_endpoint = value;
  else if (strcmp(field, "access_key_id") == 0) cfg->access_key_id = value;
  else if (strcmp(field, "secret_access_key") == 0) cfg->secret_access_key = value;
  else if (strcmp(field, "session_token") == 0) cfg->session_token = value;
  else if (strcmp(field, "channel_name") == 0) {
    /* Used only without an ARN; discovery goes to a refused port. */
    cfg->channel_name = value;
    cfg->channel_arn = NULL;
    cfg->control_plane_url = "https://127.0.0.1:1";
  } else if (strcmp(field, "control_plane_url") == 0) {
    /* Used only to discover: without a WSS endpoint. */
    cfg->control_plane_url = value;
    cfg->wss_endpoint = NULL;
  }
}

static char *repeat(char c, size_t n, const char *prefix, const char *suffix) {
  size_t lp = strlen(prefix), ls = strlen(suffix);
  char *s = malloc(lp + n + ls + 1);
  if (!s) abort();
  memcpy(s, prefix, lp);
  memset(s + lp, c, n);
  memcpy(s + lp + n, suffix, ls + 1);
  return s;
}

static void test_bad_config(void) {
  char *id257 = repeat('a', 257, "", "");
  char *arn1025 = repeat('c', 1025 - strlen("arn:aws:kinesisvideo:us-west-2:1:channel/") - 2,
                         "arn:aws:kinesisvideo:us-west-2:1:channel/", "/1");
  const struct bad_case cases[] = {
      {"region", ""},
      {"channel_arn", ""},
      {"channel_arn", "not-an-arn"},
      {"channel_arn", "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo"},
      {"channel_arn", "arn:aws:s3:us-west-2:123456789012:channel/demo/1"},
      {"channel_arn", "arn:aws:kinesisvideo:us-west-2:123456789012:channel/bad name/1"},
      {"channel_arn", arn1025},
      {"client_id", ""},
      {"client_id", "AWS_viewer"},
      {"client_id", "aws_viewer"},
      {"client_id", "Aws_viewer"},
      {"client_id", "has space"},
      {"client_id", "bad/slash"},
      {"client_id", "\xff\xfe"},
      {"client_id", id257},
      {"wss_endpoint", "https://127.0.0.1:1"},
      {"wss_endpoint", "ws://127.0.0.1:1"},
      {"wss_endpoint", "127.0.0.1:1"},
      {"access_key_id", ""},
      {"secret_access_key", ""},
      {"channel_name", "bad name"},
      {"channel_name", id257},
      {"control_plane_url", "http://127.0.0.1:1"},
      {"control_plane_url", "127.0.0.1:1"},
      {"control_plane_url", "https://127.0.0.1:1/?q"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    KvsViewerConfig cfg;
    valid_config(&cfg);
    set_field(&cfg, cases[i].field, cases[i].value);
    KvsViewer *v = NULL;
    int32_t rc = kvs_viewer_connect(&cfg, &v);
    if (rc != KVS_ERR_INVALID_ARGUMENT) {
      fprintf(stderr, "bad config case %zu (%s=\"%.40s\")\n", i, cases[i].field, cases[i].value);
    }
    CHECK_CODE(rc, KVS_ERR_INVALID_ARGUMENT);
    CHECK(v == NULL);
    CHECK_DETAIL_HAS(cases[i].field);
    CHECK(kvs_last_error_http_status() == 0);
    kvs_viewer_close(v);
  }

  /* presign expiry: 1..604800 (0 means the default). */
  {
    KvsViewerConfig cfg;
    valid_config(&cfg);
    cfg.presign_expires_s = 604801;
    KvsViewer *v = NULL;
    CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_INVALID_ARGUMENT);
    CHECK_DETAIL_HAS("presign_expires_s");
  }
  /* keepalive: 0 means the default, below 100 ms is refused. */
  {
    KvsViewerConfig cfg;
    valid_config(&cfg);
    cfg.ping_interval_ms = 99;
    KvsViewer *v = NULL;
    CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_INVALID_ARGUMENT);
    CHECK_DETAIL_HAS("ping_interval");
    CHECK(v == NULL);
  }
  /* A struct_size too small to hold the required fields. */
  {
    KvsViewerConfig cfg;
    valid_config(&cfg);
    cfg.struct_size = 0;
    KvsViewer *v = NULL;
    CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_INVALID_ARGUMENT);
    CHECK(v == NULL);
    CHECK_DETAIL_HAS("struct_size");
  }
  free(id257);
  free(arn1025);
}

/* The other side of each bound passes validation: the connect then fails on the network. */
static void test_valid_bounds_reach_network(void) {
  char *id256 = repeat('b', 256, "", "");
  const struct bad_case cases[] = {
      {"client_id", id256},
      {"client_id", "a"},
      {"client_id", "viewer_AWS_1"},
      {"client_id", "aws-viewer"}, /* only the AWS_ prefix is reserved */
      {"client_id", "A-z_0.9"},
      {"channel_arn", "arn:aws-cn:kinesisvideo:cn-north-1:123456789012:channel/x/1"},
      {"wss_endpoint", "wss://127.0.0.1:1/"},
      {"session_token", "FwoGZXIvYXdzEXAMPLETOKEN"},
      {"channel_name", "demo-channel"},          /* Describe at the refused control plane */
      {"control_plane_url", "https://127.0.0.1:1"}, /* GetSignalingChannelEndpoint there */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    KvsViewerConfig cfg;
    valid_config(&cfg);
    set_field(&cfg, cases[i].field, cases[i].value);
    KvsViewer *v = NULL;
    int32_t rc = kvs_viewer_connect(&cfg, &v);
    if (rc != KVS_ERR_NETWORK) {
      fprintf(stderr, "valid config case %zu (%s=\"%.40s\")\n", i, cases[i].field,
              cases[i].value);
    }
    CHECK_CODE(rc, KVS_ERR_NETWORK);
    CHECK(v == NULL);
  }
  KvsViewerConfig cfg;
  valid_config(&cfg);
  cfg.presign_expires_s = 604800;
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_NETWORK);
  cfg.presign_expires_s = 1;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_NETWORK);
  cfg.ping_interval_ms = 100;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_NETWORK);
  cfg.ping_interval_ms = 0;
  CHECK_DETAIL_HAS("connect");
  /* A caller built against the header before channel_name/control_plane_url existed: the
   * library must not read past its struct_size (garbage there would crash or discover). */
  valid_config(&cfg);
  cfg.struct_size = (uint32_t)offsetof(KvsViewerConfig, channel_name);
  cfg.channel_name = (const char *)(uintptr_t)1;
  cfg.control_plane_url = (const char *)(uintptr_t)1;
  cfg.channel_arn = VALID_ARN;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_NETWORK);
  CHECK_DETAIL_HAS("connect");
  /* Discovery failing at the control plane names the step. */
  valid_config(&cfg);
  cfg.wss_endpoint = NULL;
  cfg.control_plane_url = "https://127.0.0.1:1";
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_NETWORK);
  CHECK_DETAIL_HAS("get_endpoint");
  free(id256);
}

static void test_last_error_message(void) {
  KvsViewerConfig cfg;
  valid_config(&cfg);
  cfg.client_id = "AWS_reserved";
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_INVALID_ARGUMENT);

  /* snprintf semantics: the full length is returned whatever the capacity. */
  size_t full = kvs_last_error_message(NULL, 0);
  CHECK(full > 0);
  char big[2048];
  CHECK(kvs_last_error_message(big, sizeof big) == full);
  CHECK(strlen(big) == full);
  char small[5];
  memset(small, 'x', sizeof small);
  CHECK(kvs_last_error_message(small, sizeof small) == full);
  CHECK(small[4] == '\0');
  CHECK(strncmp(small, big, 4) == 0);
  char one[1] = {'x'};
  CHECK(kvs_last_error_message(one, 1) == full);
  CHECK(one[0] == '\0');
  /* Reading does not consume it. */
  CHECK(kvs_last_error_message(NULL, 0) == full);
  CHECK(kvs_last_error_http_status() == 0);
}

static void *other_thread(void *arg) {
  size_t *len = arg;
  *len = kvs_last_error_message(NULL, 0);
  return NULL;
}

/* The detail is per thread: a new thread has none. */
static void test_last_error_is_per_thread(void) {
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(NULL, &v), KVS_ERR_NULL_POINTER);
  CHECK(kvs_last_error_message(NULL, 0) > 0);
  size_t other_len = 12345;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, other_thread, &other_len) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(other_len == 0);
}

static void test_refused_port_is_network(void) {
  KvsViewerConfig cfg;
  valid_config(&cfg);
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_ERR_NETWORK);
  CHECK(v == NULL);
  CHECK(kvs_last_error_message(NULL, 0) > 0);
  CHECK(kvs_last_error_http_status() == 0);
}

int main(void) {
  test_versions();
  test_error_names();
  test_message_type_names();
  test_init_helpers();
  test_null_pointers();
  test_bad_config();
  test_valid_bounds_reach_network();
  test_last_error_message();
  test_last_error_is_per_thread();
  test_refused_port_is_network();
  return test_summary("test_api");
}

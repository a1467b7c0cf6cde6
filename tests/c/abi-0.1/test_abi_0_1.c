/* A binary built against the 0.1.0 header (kvs_viewer.h beside this file, a verbatim copy)
 * runs unchanged against this library: every 0.1 struct lives in a malloc'ed block of exactly
 * its 0.1 sizeof, and goes through every init / recv / get path against the emulator. Under
 * valgrind (ctest) any byte the library reads or writes past a 0.1 struct is an invalid
 * access, which fails the test. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs_viewer.h"
#include "../test_env.h"
#include "../test_util.h"

#ifndef KVS_ERR_INTERNAL
#error "this test must be built against the 0.1 header (tests/c/abi-0.1/kvs_viewer.h)"
#endif

static const char OFFER[] =
    "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\\r\\nc=IN IP4 0.0.0.0\\r\\na=mid:0\\r\\na=recvonly\\r\\n"
    "a=ice-ufrag:EsAw\\r\\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\\r\\na=rtpmap:96 H264/90000\\r\\n\"}";

/* Exactly the 0.1 sizeof, so valgrind sees the end of the block as the end of the struct. */
static void *exact(size_t size) {
  void *p = malloc(size);
  if (!p) abort();
  memset(p, 0xA5, size);
  return p;
}

static void test_0_1_layouts(void) {
  /* The 0.1 symbols of the 0.1 header: no macro, plain calls. */
  KvsViewerConfig *cfg = exact(sizeof *cfg);
  kvs_viewer_config_init(cfg);
  CHECK(cfg->struct_size == sizeof *cfg);
  CHECK(cfg->region == NULL && cfg->ping_interval_ms == 0 && cfg->control_plane_url == NULL);

  KvsMessage *msg = exact(sizeof *msg);
  char payload[16];
  kvs_message_init(msg, payload, sizeof payload);
  CHECK(msg->struct_size == sizeof *msg);
  CHECK(msg->payload == payload && msg->payload_cap == sizeof payload);
  CHECK(msg->description[KVS_DESCRIPTION_BUF_LEN - 1] == '\0');

  KvsIceServer *ice = exact(sizeof *ice);
  kvs_ice_server_init(ice);
  CHECK(ice->struct_size == sizeof *ice && ice->ttl_s == 0);
  printf("0.1 sizes: config %u, message %u, ice server %u\n", (unsigned)sizeof *cfg,
         (unsigned)sizeof *msg, (unsigned)sizeof *ice);
  free(cfg);
  free(msg);
  free(ice);
}

static void test_0_1_exchange(void) {
  KvsViewerConfig *cfg = exact(sizeof *cfg);
  emulator_config(cfg, "c-abi-0-1");
  cfg->control_plane_url = getenv("KVS_CONTROL_PLANE_URL"); /* for the ICE servers */
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(cfg, &v), KVS_OK);
  if (!v) {
    free(cfg);
    return;
  }
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, strlen(OFFER), "abi-offer"), KVS_OK);

  /* Too small first: only payload_len is written, the message stays queued. */
  KvsMessage *msg = exact(sizeof *msg);
  char tiny[4];
  kvs_message_init(msg, tiny, sizeof tiny);
  CHECK_CODE(kvs_viewer_recv(v, msg, 10000), KVS_ERR_BUFFER_TOO_SMALL);
  CHECK(msg->payload_len >= sizeof tiny);
  CHECK(msg->message_type == KVS_MSG_UNKNOWN); /* not written on failure */

  char *buf = exact(16384);
  kvs_message_init(msg, buf, 16384);
  CHECK_CODE(kvs_viewer_recv(v, msg, 10000), KVS_OK);
  CHECK(msg->message_type == KVS_MSG_SDP_ANSWER);
  CHECK(msg->payload_len == strlen(buf) && strstr(buf, "\"answer\"") != NULL);
  CHECK(msg->sender_client_id[0] == '\0' && msg->status_code == 0);

  /* The master's candidates, each into the same 0.1-sized message. */
  int candidates = 0;
  for (;;) {
    int32_t rc;
    kvs_message_init(msg, buf, 16384);
    rc = kvs_viewer_recv(v, msg, 1000);
    if (rc == KVS_ERR_TIMEOUT) break;
    CHECK_CODE(rc, KVS_OK);
    if (rc != KVS_OK) break;
    CHECK(msg->message_type == KVS_MSG_ICE_CANDIDATE);
    candidates++;
  }
  CHECK(candidates >= 1);

  /* The ICE-server path: count, then every server into a 0.1-sized struct. */
  size_t count = 0;
  CHECK_CODE(kvs_viewer_ice_server_count(v, &count), KVS_OK);
  CHECK(count >= 2 && count <= KVS_MAX_ICE_SERVERS);
  for (size_t i = 0; i < count; i++) {
    KvsIceServer *ice = exact(sizeof *ice);
    kvs_ice_server_init(ice);
    CHECK_CODE(kvs_viewer_ice_server_get(v, i, ice), KVS_OK);
    CHECK(ice->uri_count >= 1 && ice->uri_count <= KVS_MAX_ICE_URIS);
    CHECK(strncmp(ice->uris[0], i == 0 ? "stun:" : "turn", i == 0 ? 5 : 4) == 0);
    CHECK(i == 0 ? ice->ttl_s == 0 : ice->ttl_s == 300);
    free(ice);
  }
  CHECK_CODE(kvs_viewer_refresh_ice_servers(v), KVS_OK);

  CHECK_CODE(kvs_viewer_reconnect(v), KVS_OK);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  printf("0.1 exchange: answer + %d candidates, %u ICE servers\n", candidates, (unsigned)count);
  free(buf);
  free(msg);
  free(cfg);
}

/* Discovery with a 0.1-sized config whose last fields (channel_name, control_plane_url,
 * ping_interval_ms) sit at the very end of the block. */
static void test_0_1_discovery(void) {
  KvsViewerConfig *cfg = exact(sizeof *cfg);
  emulator_config(cfg, "c-abi-0-1-discovery");
  cfg->channel_arn = NULL;
  cfg->wss_endpoint = NULL;
  cfg->channel_name = getenv("KVS_CHANNEL_NAME");
  cfg->control_plane_url = getenv("KVS_CONTROL_PLANE_URL");
  cfg->ping_interval_ms = 20000;
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(cfg, &v), KVS_OK);
  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  free(cfg);
}

int main(void) {
  if (load_test_env() != 0) return 2;
  CHECK(kvs_viewer_abi_version() == KVS_VIEWER_ABI_VERSION);
  test_0_1_layouts();
  test_0_1_exchange();
  test_0_1_discovery();
  return test_summary("test_abi_0_1");
}

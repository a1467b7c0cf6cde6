/*
 * viewer_common.h — what the library-side drivers (cold.c, viewers.c) share: the error exit and
 * the connect from the emulator's env file.
 */
#ifndef BENCH_VIEWER_COMMON_H
#define BENCH_VIEWER_COMMON_H

#include "common.h"

#include <kvs_viewer.h>

static void kvs_die(int32_t rc, const char *what) {
  char detail[1024] = "";
  kvs_last_error_message(detail, sizeof detail);
  die("%s: %s (%d): %s", what, kvs_error_name(rc), (int)rc, detail);
}

/* Connects a viewer named `client_id`; `discovering` leaves out ARN and endpoint, so the
 * library asks the control plane (by KVS_CHANNEL_NAME) first. */
static KvsViewer *bench_connect(const char *client_id, int discovering) {
  KvsViewerConfig cfg;
  kvs_viewer_config_init(&cfg);
  cfg.region = env_req("AWS_REGION");
  cfg.client_id = client_id;
  cfg.access_key_id = env_req("AWS_ACCESS_KEY_ID");
  cfg.secret_access_key = env_req("AWS_SECRET_ACCESS_KEY");
  cfg.session_token = env_opt("AWS_SESSION_TOKEN");
  cfg.ca_file = env_req("KVS_CA_FILE");
  if (discovering) {
    cfg.channel_name = env_req("KVS_CHANNEL_NAME");
    cfg.control_plane_url = env_req("KVS_CONTROL_PLANE_URL");
  } else {
    cfg.channel_arn = env_req("KVS_CHANNEL_ARN");
    cfg.wss_endpoint = env_req("KVS_WSS_ENDPOINT");
  }
  KvsViewer *v = NULL;
  int32_t rc = kvs_viewer_connect(&cfg, &v);
  if (rc != KVS_OK) kvs_die(rc, "connect");
  return v;
}

#endif

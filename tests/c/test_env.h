/* Shared by the live C tests: the emulator's env file and a config pointing at it. Works with
 * the current header and with the 0.1 copy in abi-0.1/. Needs _POSIX_C_SOURCE 200809L. */
#ifndef KVS_TEST_ENV_H
#define KVS_TEST_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvs_viewer.h"

/* ---- env file ------------------------------------------------------------------------------ */

/* Loads KEY=VALUE lines (optionally `export`ed, optionally quoted) into the environment. */
static inline int load_env_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "cannot open env file %s\n", path);
    return -1;
  }
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\0') continue;
    if (strncmp(p, "export ", 7) == 0) p += 7;
    char *eq = strchr(p, '=');
    if (!eq) continue;
    *eq = '\0';
    char *val = eq + 1;
    size_t n = strlen(val);
    if (n >= 2 && (val[0] == '\'' || val[0] == '"') && val[n - 1] == val[0]) {
      val[n - 1] = '\0';
      val++;
    }
    setenv(p, val, 1);
  }
  fclose(f);
  return 0;
}

static inline const char *env_or(const char *name, const char *fallback) {
  const char *v = getenv(name);
  return (v && *v) ? v : fallback;
}

static inline void emulator_config(KvsViewerConfig *cfg, const char *client_id) {
  kvs_viewer_config_init(cfg);
  cfg->region = env_or("AWS_REGION", "us-west-2");
  cfg->channel_arn = getenv("KVS_CHANNEL_ARN");
  cfg->client_id = client_id;
  cfg->wss_endpoint = getenv("KVS_WSS_ENDPOINT");
  cfg->access_key_id = getenv("AWS_ACCESS_KEY_ID");
  cfg->secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
  cfg->session_token = env_or("AWS_SESSION_TOKEN", NULL);
  cfg->ca_file = getenv("KVS_CA_FILE");
  cfg->connect_timeout_ms = 30000; /* the whole connect, CA store load included, under valgrind */
}

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads the env file named by KVS_TEST_ENV_FILE; 0 on success. */
static inline int load_test_env(void) {
  const char *env_file = getenv("KVS_TEST_ENV_FILE");
  if (!env_file || !*env_file) {
    fprintf(stderr, "KVS_TEST_ENV_FILE is not set (the emulator's --env-file)\n");
    return -1;
  }
  if (load_env_file(env_file) != 0) return -1;
  if (!getenv("KVS_CHANNEL_ARN") || !getenv("KVS_WSS_ENDPOINT")) {
    fprintf(stderr, "%s lacks KVS_CHANNEL_ARN or KVS_WSS_ENDPOINT\n", env_file);
    return -1;
  }
  return 0;
}

#endif

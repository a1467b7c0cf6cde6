/* Field diagnostics against the emulator (its own instance, with session credentials):
 *
 * - stderr: KVS_LOG_LEVEL=debug prints timestamped lines naming viewer and step; without it the
 *   default sink prints nothing (forked children, before this process configures logging).
 * - the story: a callback at DEBUG over a session with a drop and a clock jump of the
 *   service tells connect, drop, clock correction and reconnect with their causes at INFO,
 *   frames at DEBUG, nothing above DEBUG, and no secret key, session token, TURN password,
 *   access key id or 64-hex-digit string; kvs_viewer_get_stats agrees.
 * - TRACE shows headers and the presigned query, redacted.
 * - INFO bounds: nothing above the level asked for.
 * - no deadlock: a callback calling kvs_viewer_get_stats, kvs_viewer_ice_server_count and
 *   kvs_last_error_message, from the I/O thread too, while a worker runs a session (bounded).
 *
 * Reads the emulator's env file named by KVS_TEST_ENV_FILE; steers it through its admin API. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvs_viewer.h"
#include "test_env.h"
#include "test_util.h"

static const char OFFER[] =
    "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\nc=IN IP4 0.0.0.0\\r\\na=mid:0\\r\\na=recvonly\\r\\n"
    "a=rtpmap:111 opus/48000/2\\r\\n\"}";
static const char CANDIDATE[] =
    "{\"candidate\":\"candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host\","
    "\"sdpMid\":\"0\",\"sdpMLineIndex\":0}";

/* ---- collected lines ------------------------------------------------------------------------ */

#define MAX_LINES 4096
typedef struct {
  int32_t level;
  char *text;
  pthread_t thread;
} Line;

static pthread_mutex_t g_lines_lock = PTHREAD_MUTEX_INITIALIZER;
static Line g_lines[MAX_LINES];
static size_t g_line_count = 0;

static void collect(void *user_data, int32_t level, const char *message) {
  (void)user_data;
  pthread_mutex_lock(&g_lines_lock);
  if (g_line_count < MAX_LINES) {
    g_lines[g_line_count].level = level;
    g_lines[g_line_count].text = strdup(message ? message : "(null)");
    g_lines[g_line_count].thread = pthread_self();
    g_line_count++;
  }
  pthread_mutex_unlock(&g_lines_lock);
}

static void lines_clear(void) {
  pthread_mutex_lock(&g_lines_lock);
  for (size_t i = 0; i < g_line_count; i++) free(g_lines[i].text);
  g_line_count = 0;
  pthread_mutex_unlock(&g_lines_lock);
}

static void lines_dump(const char *why) {
  fprintf(stderr, "---- %s: %zu lines\n", why, g_line_count);
  for (size_t i = 0; i < g_line_count; i++)
    fprintf(stderr, "  [%d] %s\n", (int)g_lines[i].level, g_lines[i].text);
}

/* Index of the first line at `level` (0 = any) holding both needles (NULL = no need), or -1. */
static long find_line(int32_t level, const char *a, const char *b) {
  for (size_t i = 0; i < g_line_count; i++) {
    if (level && g_lines[i].level != level) continue;
    if (a && !strstr(g_lines[i].text, a)) continue;
    if (b && !strstr(g_lines[i].text, b)) continue;
    return (long)i;
  }
  return -1;
}

#define CHECK_LINE(level, a, b)                                                           \
  do {                                                                                   \
    g_checks++;                                                                          \
    if (find_line((level), (a), (b)) < 0) {                                              \
      g_failures++;                                                                      \
      fprintf(stderr, "%s:%d: no level-%d line with \"%s\" and \"%s\"\n", __FILE__,      \
              __LINE__, (int)(level), (a) ? (a) : "", (b) ? (b) : "");                   \
    }                                                                                    \
  } while (0)

/* A run of at least 64 hex digits: signatures and hashes look alike, none may be logged. */
static int has_hex64(const char *s) {
  size_t run = 0;
  for (; *s; s++) {
    run = isxdigit((unsigned char)*s) ? run + 1 : 0;
    if (run >= 64) return 1;
  }
  return 0;
}

#define MAX_SECRETS 16
static const char *g_secrets[MAX_SECRETS];
static size_t g_secret_count = 0;
static char g_turn_passwords[KVS_MAX_ICE_SERVERS][KVS_ICE_STRING_BUF_LEN];

static void add_secret(const char *s) {
  if (s && strlen(s) >= 4 && g_secret_count < MAX_SECRETS) g_secrets[g_secret_count++] = s;
}

/* Every line: level in 1..max_level, names the viewer and a step, holds no secret. */
static void check_every_line(int32_t max_level, const char *client_id) {
  static const char *steps[] = {"discovery", "connect", "tls",  "upgrade",     "reconnect",
                                "send",      "recv",    "ice",  "credentials", "close"};
  size_t bad_level = 0, bad_name = 0, bad_secret = 0, bad_hex = 0;
  for (size_t i = 0; i < g_line_count; i++) {
    const char *t = g_lines[i].text;
    if (g_lines[i].level < KVS_LOG_ERROR || g_lines[i].level > max_level) bad_level++;
    size_t id_len = strlen(client_id);
    int named = strncmp(t, client_id, id_len) == 0 && t[id_len] == ' ';
    if (named) {
      named = 0;
      for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        size_t n = strlen(steps[s]);
        if (strncmp(t + id_len + 1, steps[s], n) == 0 && t[id_len + 1 + n] == ':') named = 1;
      }
    }
    if (!named) bad_name++;
    for (size_t s = 0; s < g_secret_count; s++)
      if (strstr(t, g_secrets[s])) {
        bad_secret++;
        fprintf(stderr, "secret #%zu in line: %s\n", s, t);
      }
    for (size_t p = 0; p < KVS_MAX_ICE_SERVERS; p++)
      if (g_turn_passwords[p][0] && strstr(t, g_turn_passwords[p])) {
        bad_secret++;
        fprintf(stderr, "TURN password in line: %s\n", t);
      }
    if (has_hex64(t)) {
      bad_hex++;
      fprintf(stderr, "64 hex digits in line: %s\n", t);
    }
  }
  CHECK(g_line_count > 0);
  CHECK(bad_level == 0);
  CHECK(bad_name == 0);
  CHECK(bad_secret == 0);
  CHECK(bad_hex == 0);
  if (bad_level || bad_name || bad_secret || bad_hex) lines_dump("lines");
}

/* ---- the emulator's admin API (plain HTTP on 127.0.0.1) ------------------------------------ */

/* POSTs `json` to /v1/fault; returns the HTTP status (0 on a transport failure). */
static int admin_fault(const char *json) {
  const char *url = getenv("KVS_EMULATOR_ADMIN_URL"); /* http://127.0.0.1:PORT */
  const char *colon = url ? strrchr(url, ':') : NULL;
  if (!colon) return 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(colon + 1));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int status = 0;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /v1/fault HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(json), json);
    if (n > 0 && write(fd, req, (size_t)n) == n) {
      char resp[512];
      ssize_t got = read(fd, resp, sizeof resp - 1);
      if (got > 12) {
        resp[got] = '\0';
        status = atoi(resp + 9); /* "HTTP/1.1 200" */
      }
    }
  }
  close(fd);
  return status;
}

/* ---- session helpers ----------------------------------------------------------------------- */

/* A config that discovers the channel by name through the control plane. */
static void discovery_config(KvsViewerConfig *cfg, const char *client_id) {
  emulator_config(cfg, client_id);
  cfg->channel_arn = NULL;
  cfg->wss_endpoint = NULL;
  cfg->channel_name = getenv("KVS_CHANNEL_NAME");
  cfg->control_plane_url = getenv("KVS_CONTROL_PLANE_URL");
}

/* Waits (bounded) for a message of `type`; returns the last recv code. */
static int32_t recv_until(KvsViewer *v, int32_t type, double seconds) {
  static char buf[KVS_MAX_PAYLOAD_LEN + 1];
  KvsMessage m;
  kvs_message_init(&m, buf, sizeof buf);
  double end = now_s() + seconds;
  int32_t rc = KVS_ERR_TIMEOUT;
  while (now_s() < end) {
    rc = kvs_viewer_recv(v, &m, 1000);
    if (rc == KVS_OK && m.message_type == type) return KVS_OK;
    if (rc != KVS_OK && rc != KVS_ERR_TIMEOUT) return rc;
  }
  return rc;
}

static void offer_and_answer(KvsViewer *v) {
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, 0, NULL), KVS_OK);
  CHECK_CODE(kvs_viewer_send(v, KVS_MSG_ICE_CANDIDATE, CANDIDATE, 0, NULL), KVS_OK);
  CHECK_CODE(recv_until(v, KVS_MSG_SDP_ANSWER, 20), KVS_OK);
}

static void remember_turn_passwords(KvsViewer *v) {
  size_t n = 0;
  CHECK_CODE(kvs_viewer_ice_server_count(v, &n), KVS_OK);
  CHECK(n >= 2);
  for (size_t i = 0; i < n && i < KVS_MAX_ICE_SERVERS; i++) {
    KvsIceServer s;
    kvs_ice_server_init(&s);
    if (kvs_viewer_ice_server_get(v, i, &s) == KVS_OK)
      memcpy(g_turn_passwords[i], s.password, sizeof s.password);
  }
  CHECK(g_turn_passwords[1][0] != '\0');
}

/* ---- stderr (forked children, before this process touches logging) ------------------------ */

/* Runs a short session in a child with stderr in `path` and KVS_LOG_LEVEL = `level` (NULL =
 * unset); returns the child's exit status. */
static int session_in_child(const char *path, const char *level, const char *client_id) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    alarm(120); /* bound: a hung child is killed */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0) _exit(3);
    close(fd);
    if (level)
      setenv("KVS_LOG_LEVEL", level, 1);
    else
      unsetenv("KVS_LOG_LEVEL");
    KvsViewerConfig cfg;
    emulator_config(&cfg, client_id);
    cfg.control_plane_url = getenv("KVS_CONTROL_PLANE_URL");
    KvsViewer *v = NULL;
    if (kvs_viewer_connect(&cfg, &v) != KVS_OK) _exit(4);
    int rc = 0;
    if (kvs_viewer_send(v, KVS_MSG_SDP_OFFER, OFFER, 0, NULL) != KVS_OK) rc = 5;
    if (rc == 0 && recv_until(v, KVS_MSG_SDP_ANSWER, 20) != KVS_OK) rc = 6;
    if (kvs_viewer_close(v) != KVS_OK && rc == 0) rc = 7;
    _exit(rc);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void test_stderr_sink(void) {
  char path[] = "/tmp/kvs-log-stderr-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    CHECK(!"mkstemp");
    return;
  }
  close(fd);

  CHECK(session_in_child(path, "debug", "c-log-stderr") == 0);
  const char *out = read_file(path);
  CHECK(out != NULL);
  if (out) {
    /* 2026-12-02T00:41:40.123Z kvs-viewer INFO  c-log-stderr connect: connected to wss://... */
    const char *connected = strstr(out, "kvs-viewer INFO  c-log-stderr connect: connected to wss://");
    CHECK(connected != NULL);
    CHECK(strstr(out, "kvs-viewer DEBUG c-log-stderr send: SDP_OFFER frame, ") != NULL);
    CHECK(strstr(out, "kvs-viewer DEBUG c-log-stderr recv: SDP_ANSWER frame, ") != NULL);
    CHECK(strstr(out, " TRACE ") == NULL);
    /* Each line starts with a UTC timestamp. */
    size_t lines = 0, stamped = 0;
    for (const char *l = out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
      if (strstr(l, "kvs-viewer ") == NULL) continue;
      lines++;
      if (strlen(l) > 25 && isdigit((unsigned char)l[0]) && l[4] == '-' && l[10] == 'T' &&
          l[19] == '.' && l[23] == 'Z' && strncmp(l + 24, " kvs-viewer ", 12) == 0)
        stamped++;
    }
    CHECK(lines >= 4);
    CHECK(stamped == lines);
    CHECK(strstr(out, getenv("AWS_SECRET_ACCESS_KEY")) == NULL);
    CHECK(!has_hex64(out));
    if (!connected) fprintf(stderr, "---- child stderr:\n%s\n", out);
  }

  /* No KVS_LOG_LEVEL: the default sink is silent. */
  CHECK(session_in_child(path, NULL, "c-log-quiet") == 0);
  out = read_file(path);
  CHECK(out != NULL && strstr(out, "kvs-viewer") == NULL);
  unlink(path);
}

/* ---- the story at DEBUG, with a drop and a clock jump -------------------------------------- */

static void test_story(void) {
  const char *id = "c-log-story";
  lines_clear();
  kvs_set_log_callback(collect, NULL, KVS_LOG_DEBUG);

  KvsViewerConfig cfg;
  discovery_config(&cfg, id);
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (!v) {
    lines_dump("connect failed");
    return;
  }
  remember_turn_passwords(v);
  offer_and_answer(v);

  /* The service's clock jumps 15 minutes ahead, then the connection drops. */
  CHECK(admin_fault("{\"ClockOffset\":{\"secs\":900}}") == 200);
  CHECK(admin_fault("{\"DropConnection\":{\"client_id\":\"c-log-story\"}}") == 200);
  int32_t rc = recv_until(v, KVS_MSG_RECONNECTED, 30);
  if (rc == KVS_ERR_CLOSED) {
    /* Without automatic reconnect, the application reconnects. */
    CHECK_CODE(kvs_viewer_reconnect(v), KVS_OK);
  } else {
    CHECK_CODE(rc, KVS_OK);
  }
  offer_and_answer(v);

  KvsViewerStats stats;
  kvs_viewer_stats_init(&stats);
  CHECK_CODE(kvs_viewer_get_stats(v, &stats), KVS_OK);
  CHECK(stats.struct_size == sizeof stats);
  CHECK(stats.reconnects == 1);
  CHECK(stats.reconnects_by_cause[KVS_DISCONNECT_NETWORK] == 1);
  CHECK(stats.last_disconnect_cause == KVS_DISCONNECT_NETWORK);
  CHECK(stats.last_disconnect_status == KVS_ERR_CLOSED);
  CHECK(stats.clock_offset_s >= 890 && stats.clock_offset_s <= 910);
  CHECK(stats.messages_sent_by_type[KVS_MSG_SDP_OFFER] == 2);
  CHECK(stats.messages_sent_by_type[KVS_MSG_ICE_CANDIDATE] == 2);
  CHECK(stats.messages_sent == 4);
  CHECK(stats.messages_received_by_type[KVS_MSG_SDP_ANSWER] >= 2);
  CHECK(stats.messages_received >= stats.messages_received_by_type[KVS_MSG_SDP_ANSWER]);
  CHECK(stats.bytes_sent > sizeof OFFER);
  CHECK(stats.bytes_received > 0);
  CHECK(stats.connected == 1);
  CHECK(stats.connected_since_unix_ms > 1700000000000ULL);
  CHECK(stats.connected_for_ms < 60000);
  CHECK(stats.ice_refreshes == 0);

  CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  CHECK(admin_fault("{\"ClockOffset\":{\"secs\":0}}") == 200);
  kvs_set_log_callback(NULL, NULL, KVS_LOG_OFF);

  /* The story at INFO. */
  CHECK_LINE(KVS_LOG_INFO, "c-log-story discovery: channel ", " is arn:aws:kinesisvideo:");
  CHECK_LINE(KVS_LOG_INFO, "c-log-story discovery: endpoints wss://", " and https://");
  CHECK_LINE(KVS_LOG_INFO, "c-log-story ice: fetched ", " TURN servers (TTL ");
  CHECK_LINE(KVS_LOG_INFO, "c-log-story connect: connected to wss://", " ms");
  CHECK_LINE(KVS_LOG_WARN, "connection ended (network drop)", NULL);
  CHECK_LINE(KVS_LOG_INFO, "clock corrected to +", " s from the device clock");
  CHECK_LINE(KVS_LOG_INFO, "c-log-story reconnect: reconnected to wss://", "(cause: network drop)");
  CHECK_LINE(KVS_LOG_INFO, "c-log-story close: closed (4 messages sent", NULL);
  {
    long i = find_line(KVS_LOG_INFO, "clock corrected to +", NULL);
    long off = i >= 0 ? atol(strstr(g_lines[i].text, "corrected to +") + 14) : 0;
    CHECK(off >= 890 && off <= 910);
  }
  /* A few lines: the story is short. */
  size_t info = 0;
  for (size_t i = 0; i < g_line_count; i++) info += g_lines[i].level <= KVS_LOG_INFO;
  CHECK(info <= 15);
  /* DEBUG: frames with type and size, HTTP calls, TLS. */
  CHECK_LINE(KVS_LOG_DEBUG, "c-log-story send: SDP_OFFER frame, ", " bytes");
  CHECK_LINE(KVS_LOG_DEBUG, "c-log-story send: ICE_CANDIDATE frame, ", " bytes");
  CHECK_LINE(KVS_LOG_DEBUG, "c-log-story recv: SDP_ANSWER frame, ", " bytes");
  CHECK_LINE(KVS_LOG_DEBUG, "c-log-story tls: handshake with ", " ms");
  CHECK_LINE(KVS_LOG_DEBUG, "c-log-story discovery: POST /describeSignalingChannel: HTTP 200", NULL);
  CHECK_LINE(KVS_LOG_DEBUG, "c-log-story credentials: signing as access key id …", NULL);
  check_every_line(KVS_LOG_DEBUG, id);
  if (g_failures || getenv("KVS_TEST_DUMP_LINES")) lines_dump("story");
}

/* ---- TRACE: headers, redacted -------------------------------------------------------------- */

static void test_trace_redacts(void) {
  const char *id = "c-log-trace";
  lines_clear();
  kvs_set_log_callback(collect, NULL, KVS_LOG_TRACE);
  KvsViewerConfig cfg;
  discovery_config(&cfg, id);
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (v) {
    remember_turn_passwords(v);
    CHECK_CODE(kvs_viewer_refresh_ice_servers(v), KVS_OK);
    remember_turn_passwords(v);
    CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  }
  kvs_set_log_callback(NULL, NULL, KVS_LOG_OFF);
  CHECK_LINE(KVS_LOG_TRACE, "authorization: AWS4-HMAC-SHA256 Credential=<redacted>/", "Signature=<redacted>");
  CHECK_LINE(KVS_LOG_TRACE, "x-amz-security-token: <redacted>", NULL);
  CHECK_LINE(KVS_LOG_TRACE, "c-log-trace connect: GET wss://", "X-Amz-Signature=<redacted>");
  CHECK_LINE(KVS_LOG_TRACE, "X-Amz-Security-Token=<redacted>", NULL);
  CHECK_LINE(KVS_LOG_TRACE, "c-log-trace upgrade: HTTP 101 ", NULL);
  CHECK_LINE(KVS_LOG_INFO, "c-log-trace ice: refreshed: ", NULL);
  check_every_line(KVS_LOG_TRACE, id);
}

/* ---- INFO bounds --------------------------------------------------------------------------- */

static void test_info_bound(void) {
  const char *id = "c-log-info";
  lines_clear();
  kvs_set_log_callback(collect, NULL, KVS_LOG_INFO);
  KvsViewerConfig cfg;
  emulator_config(&cfg, id);
  cfg.control_plane_url = getenv("KVS_CONTROL_PLANE_URL");
  KvsViewer *v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (v) {
    offer_and_answer(v);
    CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  }
  kvs_set_log_callback(NULL, NULL, KVS_LOG_OFF);
  CHECK_LINE(KVS_LOG_INFO, "c-log-info connect: connected to wss://", NULL);
  check_every_line(KVS_LOG_INFO, id);
  /* Off: nothing at all. */
  lines_clear();
  kvs_set_log_callback(collect, NULL, KVS_LOG_OFF);
  v = NULL;
  CHECK_CODE(kvs_viewer_connect(&cfg, &v), KVS_OK);
  if (v) CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  kvs_set_log_callback(NULL, NULL, KVS_LOG_OFF);
  CHECK(g_line_count == 0);
}

/* ---- a callback that calls back in --------------------------------------------------------- */

static KvsViewer *volatile g_reentrant_viewer = NULL;
static pthread_mutex_t g_reentrant_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t g_reentrant_calls = 0, g_stats_ok = 0, g_ice_ok = 0, g_other_thread = 0;
static pthread_t g_worker;

static void reentrant(void *user_data, int32_t level, const char *message) {
  (void)user_data;
  (void)level;
  char detail[256];
  kvs_last_error_message(detail, sizeof detail);
  KvsViewer *v = g_reentrant_viewer;
  int stats_ok = 0, ice_ok = 0;
  if (v) {
    KvsViewerStats s;
    kvs_viewer_stats_init(&s);
    stats_ok = kvs_viewer_get_stats(v, &s) == KVS_OK;
    if (strstr(message, " ice: ")) {
      size_t n = 0;
      ice_ok = kvs_viewer_ice_server_count(v, &n) == KVS_OK && n >= 2;
    }
  }
  pthread_mutex_lock(&g_reentrant_lock);
  g_reentrant_calls++;
  g_stats_ok += (size_t)stats_ok;
  g_ice_ok += (size_t)ice_ok;
  if (stats_ok && !pthread_equal(pthread_self(), g_worker)) g_other_thread++;
  pthread_mutex_unlock(&g_reentrant_lock);
}

static pthread_mutex_t g_done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_done_cond = PTHREAD_COND_INITIALIZER;
static int g_done = 0;

static void *reentrant_session(void *arg) {
  (void)arg;
  KvsViewerConfig cfg;
  discovery_config(&cfg, "c-log-reentrant");
  KvsViewer *v = NULL;
  if (kvs_viewer_connect(&cfg, &v) == KVS_OK) {
    g_reentrant_viewer = v;
    offer_and_answer(v);
    CHECK_CODE(kvs_viewer_refresh_ice_servers(v), KVS_OK); /* logs under the ICE lock */
    size_t n = 0;
    CHECK_CODE(kvs_viewer_ice_server_count(v, &n), KVS_OK);
    /* Also during kvs_viewer_reconnect: the I/O thread logs while it opens the new
     * connection, and the callback's stats and ICE calls must not wait for the reconnect. */
    CHECK_CODE(kvs_viewer_reconnect(v), KVS_OK);
    offer_and_answer(v);
    g_reentrant_viewer = NULL;
    CHECK_CODE(kvs_viewer_close(v), KVS_OK);
  } else {
    CHECK(!"connect");
  }
  pthread_mutex_lock(&g_done_lock);
  g_done = 1;
  pthread_cond_signal(&g_done_cond);
  pthread_mutex_unlock(&g_done_lock);
  return NULL;
}

static void test_no_deadlock(void) {
  kvs_set_log_callback(reentrant, NULL, KVS_LOG_DEBUG);
  if (pthread_create(&g_worker, NULL, reentrant_session, NULL) != 0) {
    CHECK(!"pthread_create");
    return;
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 120; /* valgrind is slow; a deadlock never finishes */
  pthread_mutex_lock(&g_done_lock);
  int rc = 0;
  while (!g_done && rc == 0) rc = pthread_cond_timedwait(&g_done_cond, &g_done_lock, &until);
  int done = g_done;
  pthread_mutex_unlock(&g_done_lock);
  CHECK(done);
  if (!done) {
    fprintf(stderr, "the session did not finish: a callback deadlocked\n");
    fflush(NULL);
    _exit(1); /* cannot join a deadlocked thread */
  }
  pthread_join(g_worker, NULL);
  kvs_set_log_callback(NULL, NULL, KVS_LOG_OFF);
  CHECK(g_reentrant_calls > 0);
  CHECK(g_stats_ok > 0);
  CHECK(g_ice_ok > 0);      /* from inside a line logged under the ICE lock */
  CHECK(g_other_thread > 0); /* from the I/O thread */
}

int main(void) {
  if (load_test_env() != 0) return 2;
  add_secret(getenv("AWS_SECRET_ACCESS_KEY"));
  add_secret(getenv("AWS_SESSION_TOKEN"));
  add_secret(getenv("AWS_ACCESS_KEY_ID"));
  CHECK(getenv("AWS_SESSION_TOKEN") != NULL); /* the fixture runs with --session-token */

  test_stderr_sink(); /* first: the children must start with logging untouched */
  test_story();
  test_trace_redacts();
  test_info_bound();
  test_no_deadlock();
  lines_clear();
  return test_summary("test_log");
}

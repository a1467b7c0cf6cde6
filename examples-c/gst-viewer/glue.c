/* glue.c — see glue.h: stand-ins for kvs-viewer 0.2's payload helpers, GStreamer ICE URIs and
 * pollable handle. JSON goes through json-glib; nothing is parsed by hand. */
#include "glue.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

/* ---- payloads ---- */

static KvsStatus send_json(GlueSignaling *s, int32_t type, JsonBuilder *b);

KvsStatus glue_send_offer(GlueSignaling *s, const char *sdp) {
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "type");
  json_builder_add_string_value(b, "offer");
  json_builder_set_member_name(b, "sdp");
  json_builder_add_string_value(b, sdp);
  json_builder_end_object(b);
  return send_json(s, KVS_MSG_SDP_OFFER, b);
}

KvsStatus glue_send_candidate(GlueSignaling *s, const char *candidate, const char *mid, int mline) {
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "candidate");
  json_builder_add_string_value(b, candidate);
  if (mid) {
    json_builder_set_member_name(b, "sdpMid");
    json_builder_add_string_value(b, mid);
  }
  if (mline >= 0) {
    json_builder_set_member_name(b, "sdpMLineIndex");
    json_builder_add_int_value(b, mline);
  }
  json_builder_end_object(b);
  return send_json(s, KVS_MSG_ICE_CANDIDATE, b);
}

/* The payload's top-level object, or NULL. The parser owns it: unref the parser after use. */
static JsonObject *parse_object(const char *payload, JsonParser **parser) {
  *parser = json_parser_new();
  if (!json_parser_load_from_data(*parser, payload, -1, NULL)) return NULL;
  JsonNode *root = json_parser_get_root(*parser);
  return (root && JSON_NODE_HOLDS_OBJECT(root)) ? json_node_get_object(root) : NULL;
}

char *glue_answer_sdp(const char *payload) {
  JsonParser *parser;
  JsonObject *o = parse_object(payload, &parser);
  char *sdp = NULL;
  if (o && g_strcmp0(json_object_get_string_member_with_default(o, "type", ""), "answer") == 0)
    sdp = g_strdup(json_object_get_string_member_with_default(o, "sdp", NULL));
  g_object_unref(parser);
  return sdp;
}

gboolean glue_candidate_parse(const char *payload, char **candidate, char **mid, int *mline) {
  JsonParser *parser;
  JsonObject *o = parse_object(payload, &parser);
  const char *c = o ? json_object_get_string_member_with_default(o, "candidate", NULL) : NULL;
  if (c) {
    *candidate = g_strdup(c);
    *mid = g_strdup(json_object_get_string_member_with_default(o, "sdpMid", NULL));
    JsonNode *idx = json_object_get_member(o, "sdpMLineIndex");
    *mline = (idx && json_node_get_value_type(idx) == G_TYPE_INT64)
                 ? (int)json_node_get_int(idx)
                 : -1;
  }
  g_object_unref(parser);
  return c != NULL;
}

/* ---- ICE URIs for webrtcbin ---- */

char *glue_gst_ice_uri(const KvsIceServer *server, uint32_t j) {
  const char *uri = server->uris[j];
  if (g_str_has_prefix(uri, "stun:")) return g_strdup_printf("stun://%s", uri + 5);
  gboolean tls = g_str_has_prefix(uri, "turns:");
  if (!tls && !g_str_has_prefix(uri, "turn:")) return NULL;
  const char *hostport = uri + (tls ? 6 : 5);
  const char *query = strchr(hostport, '?');
  /* turns: is TURN over TLS over TCP for webrtcbin; KVS's turns:…?transport=udp (DTLS) has
   * no webrtcbin meaning, and ?transport=tcp is implied. */
  if (tls && query && strstr(query, "transport=udp")) return NULL;
  /* KVS user names are "<expiry>:<base64>": ':', '/', '+', '=' must be percent-encoded. */
  char *user = g_uri_escape_string(server->username, NULL, FALSE);
  char *pass = g_uri_escape_string(server->password, NULL, FALSE);
  int hp_len = query ? (int)(query - hostport) : (int)strlen(hostport);
  char *out = g_strdup_printf("%s://%s:%s@%.*s%s", tls ? "turns" : "turn", user, pass, hp_len,
                              hostport, (query && !tls) ? query : "");
  g_free(user);
  g_free(pass);
  return out;
}

/* ---- the receive thread (until the library's fd and automatic reconnect) ---- */

struct GlueSignaling {
  KvsViewer *viewer;
  GRWLock conn_lock; /* readers: send, recv; writer: reconnect */
  GThread *thread;
  gint stop;
  GlueMessageFn on_message;
  void *user_data;
  GAsyncQueue *inbox; /* received messages, in order, for the main loop */
  char buf[KVS_MAX_PAYLOAD_LEN + 1]; /* the receive thread's: holds any payload relayed */
};

typedef struct {
  int32_t type;
  char *payload;
} Received;

static void received_free(gpointer p) {
  Received *r = p;
  g_free(r->payload);
  g_free(r);
}

static KvsStatus send_json(GlueSignaling *s, int32_t type, JsonBuilder *b) {
  JsonGenerator *gen = json_generator_new();
  JsonNode *root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  gsize len = 0;
  char *json = json_generator_to_data(gen, &len);
  g_rw_lock_reader_lock(&s->conn_lock);
  KvsStatus rc = kvs_viewer_send(s->viewer, type, json, len, NULL);
  g_rw_lock_reader_unlock(&s->conn_lock);
  g_free(json);
  json_node_unref(root);
  g_object_unref(gen);
  g_object_unref(b);
  return rc;
}

/* Runs in the main context: hands the oldest queued message to the application. */
static gboolean deliver_one(gpointer data) {
  GlueSignaling *s = data;
  Received *r = g_async_queue_try_pop(s->inbox);
  if (r) {
    s->on_message(r->type, r->payload, s->user_data);
    received_free(r);
  }
  return G_SOURCE_REMOVE;
}

static void print_error(const char *what, KvsStatus rc) {
  char detail[512] = "";
  kvs_last_error_message(detail, sizeof detail);
  printf("signaling: %s: %s (%d) %s\n", what, kvs_error_name(rc), (int)rc, detail);
}

/* Reconnects until it works, stop is requested (TRUE) or the failure is final (FALSE: bad
 * credentials, channel gone); back-off 100 ms·2ⁿ capped at 5 s. */
static gboolean reconnect(GlueSignaling *s, const char *why) {
  gint64 start = g_get_monotonic_time();
  for (int attempt = 0; !g_atomic_int_get(&s->stop); attempt++) {
    g_rw_lock_writer_lock(&s->conn_lock);
    KvsStatus rc = kvs_viewer_reconnect(s->viewer);
    g_rw_lock_writer_unlock(&s->conn_lock);
    if (rc == KVS_OK) {
      printf("signaling: %s, reconnected in %d ms\n", why,
             (int)((g_get_monotonic_time() - start) / 1000));
      return TRUE;
    }
    print_error("reconnect failed", rc);
    if (!kvs_status_is_retryable(rc)) return FALSE;
    gint64 wait_ms = MIN(100 << MIN(attempt, 6), 5000);
    for (gint64 waited = 0; waited < wait_ms && !g_atomic_int_get(&s->stop); waited += 50)
      g_usleep(50 * 1000);
  }
  return TRUE;
}

static gpointer receive_thread(gpointer data) {
  GlueSignaling *s = data;
  /* Ends on stop, or when signaling cannot come back: media keeps flowing without it. */
  while (!g_atomic_int_get(&s->stop)) {
    KvsMessage msg;
    kvs_message_init(&msg, s->buf, sizeof s->buf);
    /* Bounded so that glue_signaling_stop is noticed; recv costs no CPU while it waits. */
    g_rw_lock_reader_lock(&s->conn_lock);
    KvsStatus rc = kvs_viewer_recv(s->viewer, &msg, 200);
    g_rw_lock_reader_unlock(&s->conn_lock);
    if (rc == KVS_ERR_TIMEOUT) continue;
    if (rc != KVS_OK) { /* KVS_ERR_CLOSED: dropped by the network or the server */
      print_error("connection lost", rc);
      if (!reconnect(s, "connection lost")) break;
      continue;
    }
    if (msg.message_type == KVS_MSG_GO_AWAY) {
      if (!reconnect(s, "GO_AWAY")) break;
      continue;
    }
    Received *r = g_new0(Received, 1);
    r->type = msg.message_type;
    r->payload = g_strndup(s->buf, msg.payload_len);
    g_async_queue_push(s->inbox, r);
    g_idle_add(deliver_one, s);
  }
  return NULL;
}

GlueSignaling *glue_signaling_start(KvsViewer *viewer, GlueMessageFn on_message, void *user_data) {
  GlueSignaling *s = g_new0(GlueSignaling, 1);
  s->viewer = viewer;
  s->on_message = on_message;
  s->user_data = user_data;
  g_rw_lock_init(&s->conn_lock);
  s->inbox = g_async_queue_new_full(received_free);
  s->thread = g_thread_new("kvs-recv", receive_thread, s);
  return s;
}

void glue_signaling_stop(GlueSignaling *s) {
  if (!s) return;
  g_atomic_int_set(&s->stop, 1);
  g_thread_join(s->thread);
  /* Pending deliver_one sources may still be queued in the main context: drop them. */
  while (g_source_remove_by_user_data(s)) {
  }
  g_async_queue_unref(s->inbox);
  g_rw_lock_clear(&s->conn_lock);
  g_free(s);
}

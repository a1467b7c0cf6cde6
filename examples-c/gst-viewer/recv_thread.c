/* recv_thread.c — see recv_thread.h. */
#include "recv_thread.h"

#include <stdio.h>

struct RecvThread {
  KvsViewer *viewer;
  GThread *thread;
  gint stop;
  RecvMessageFn on_message;
  void *user_data;
  GAsyncQueue *inbox;                /* received messages, in order, for the main loop */
  char buf[KVS_MAX_PAYLOAD_LEN + 1]; /* holds any payload the service relays */
};

typedef struct {
  int32_t type;
  char *payload;
  size_t len;
} Received;

static void received_free(gpointer p) {
  Received *r = p;
  g_free(r->payload);
  g_free(r);
}

/* Runs in the main context: hands the oldest queued message to the application. */
static gboolean deliver_one(gpointer data) {
  RecvThread *t = data;
  Received *r = g_async_queue_try_pop(t->inbox);
  if (r) {
    t->on_message(r->type, r->payload, r->len, t->user_data);
    received_free(r);
  }
  return G_SOURCE_REMOVE;
}

static void print_error(const char *what, KvsStatus rc) {
  char detail[512] = "";
  kvs_last_error_message(detail, sizeof detail);
  printf("signaling: %s: %s (%d) %s\n", what, kvs_error_name(rc), (int)rc, detail);
}

/* Reconnects with back-off (100 ms·2ⁿ, capped at 5 s). FALSE when it cannot come back: a
 * final error (bad credentials, channel gone) or the handle was shut down. */
static gboolean reconnect(RecvThread *t, const char *why) {
  gint64 start = g_get_monotonic_time();
  for (int attempt = 0; !g_atomic_int_get(&t->stop); attempt++) {
    KvsStatus rc = kvs_viewer_reconnect(t->viewer);
    if (rc == KVS_OK) {
      printf("signaling: %s, reconnected in %d ms\n", why,
             (int)((g_get_monotonic_time() - start) / 1000));
      return TRUE;
    }
    if (g_atomic_int_get(&t->stop)) break;
    print_error("reconnect failed", rc);
    if (!kvs_status_is_retryable(rc)) break;
    int wait_ms = MIN(100 << MIN(attempt, 6), 5000);
    for (int waited = 0; waited < wait_ms && !g_atomic_int_get(&t->stop); waited += 50)
      g_usleep(50 * 1000);
  }
  return FALSE;
}

static gpointer receive_thread(gpointer data) {
  RecvThread *t = data;
  /* Ends on recv_thread_stop, or when signaling cannot come back: media keeps flowing. */
  while (!g_atomic_int_get(&t->stop)) {
    KvsMessage msg;
    kvs_message_init(&msg, t->buf, sizeof t->buf);
    KvsStatus rc = kvs_viewer_recv(t->viewer, &msg, -1); /* burns no CPU while it waits */
    if (g_atomic_int_get(&t->stop)) break;
    if (rc != KVS_OK) { /* KVS_ERR_CLOSED: dropped by the network or the server */
      print_error("connection lost", rc);
      if (!reconnect(t, "connection lost")) break;
      continue;
    }
    if (msg.message_type == KVS_MSG_GO_AWAY) {
      if (!reconnect(t, "GO_AWAY")) break;
      continue;
    }
    if (msg.message_type == KVS_MSG_RECONNECTED) { /* the library reconnected by itself */
      printf("signaling: reconnected automatically\n");
      continue;
    }
    Received *r = g_new0(Received, 1);
    r->type = msg.message_type;
    r->payload = g_strndup(t->buf, msg.payload_len);
    r->len = msg.payload_len;
    g_async_queue_push(t->inbox, r);
    g_idle_add(deliver_one, t);
  }
  return NULL;
}

RecvThread *recv_thread_start(KvsViewer *viewer, RecvMessageFn on_message, void *user_data) {
  RecvThread *t = g_new0(RecvThread, 1);
  t->viewer = viewer;
  t->on_message = on_message;
  t->user_data = user_data;
  t->inbox = g_async_queue_new_full(received_free);
  t->thread = g_thread_new("kvs-recv", receive_thread, t);
  return t;
}

void recv_thread_stop(RecvThread *t) {
  if (!t) return;
  g_atomic_int_set(&t->stop, 1);
  kvs_viewer_shutdown(t->viewer); /* wakes the blocked recv (and a reconnect) */
  g_thread_join(t->thread);
  /* deliver_one sources may still be queued in the main context: drop them. */
  while (g_source_remove_by_user_data(t)) {
  }
  g_async_queue_unref(t->inbox);
  g_free(t);
}

/*
 * recv_thread.h — hands kvs-viewer's received messages to the GLib main loop.
 *
 * Until kvs-viewer has a pollable handle (kvs_viewer_get_fd() + g_unix_fd_add(), calling
 * kvs_viewer_recv(v, &msg, 0) in the callback, and automatic reconnects) this is a dedicated
 * thread: it blocks in kvs_viewer_recv, queues each message for the main loop and reconnects
 * after GO_AWAY or a lost connection (a library that reconnects by itself announces it with
 * KVS_MSG_RECONNECTED instead). kvs_viewer_reconnect may overlap the sends that
 * GStreamer's threads make meanwhile (they wait for the new connection), and
 * kvs_viewer_shutdown wakes the blocked recv to stop the thread.
 */
#ifndef GST_VIEWER_RECV_THREAD_H
#define GST_VIEWER_RECV_THREAD_H

#include <glib.h>
#include <kvs_viewer.h>

typedef struct RecvThread RecvThread;

/* Called in the default GLib main context for every received message, in arrival order.
 * `payload` is the decoded payload (NUL-terminated, `payload_len` bytes). */
typedef void (*RecvMessageFn)(int32_t message_type, const char *payload, size_t payload_len,
                              void *user_data);

/* Starts receiving on `viewer`, which stays the caller's. */
RecvThread *recv_thread_start(KvsViewer *viewer, RecvMessageFn on_message, void *user_data);
/* kvs_viewer_shutdown(viewer), then joins the thread: only kvs_viewer_close is left to call. */
void recv_thread_stop(RecvThread *t);

#endif

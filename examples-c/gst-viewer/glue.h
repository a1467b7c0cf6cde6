/*
 * glue.h — the few things gst_viewer.c needs that kvs-viewer 0.1 does not provide yet.
 *
 * Every function here stands in for a library call planned for 0.2; when it lands, the call
 * sites in gst_viewer.c change one for one and this file goes away:
 *
 *   glue_send_offer(s, sdp)              -> kvs_viewer_send_offer(v, sdp)
 *   glue_send_candidate(s, c, mid, idx)  -> kvs_viewer_send_candidate(v, c, mid, idx)
 *   glue_answer_sdp(payload)             -> the answer-SDP accessor on KvsMessage
 *   glue_candidate_parse(payload, ...)   -> the candidate accessor on KvsMessage
 *   glue_gst_ice_uri(server, j)          -> the library's GStreamer-style ICE URI formatting
 *   glue_signaling_start/stop            -> kvs_viewer_get_fd() + g_unix_fd_add() calling
 *                                           kvs_viewer_recv(v, &msg, 0), and the library's
 *                                           automatic reconnect (no thread, no lock)
 *
 * Until then a dedicated receive thread blocks in kvs_viewer_recv and hands each message to
 * the GLib main loop, and reconnects after GO_AWAY or a lost connection. kvs_viewer_reconnect
 * must not overlap any other call on the handle, so sends take a reader lock and the
 * reconnect a writer lock.
 */
#ifndef GST_VIEWER_GLUE_H
#define GST_VIEWER_GLUE_H

#include <glib.h>
#include <kvs_viewer.h>

typedef struct GlueSignaling GlueSignaling;

/* Called in the GLib main context (the default one) for every received message, in order. */
typedef void (*GlueMessageFn)(int32_t message_type, const char *payload, void *user_data);

/* Starts receiving on `viewer` (which stays owned by the caller; close it after _stop). */
GlueSignaling *glue_signaling_start(KvsViewer *viewer, GlueMessageFn on_message, void *user_data);
/* Stops the receive thread (returns within ~200 ms). */
void glue_signaling_stop(GlueSignaling *s);

/* Sends {"type":"offer","sdp":<sdp>}. Any thread. Returns KVS_OK or a KVS_ERR_* code. */
KvsStatus glue_send_offer(GlueSignaling *s, const char *sdp);
/* Sends {"candidate":…,"sdpMid":…,"sdpMLineIndex":…}; mid NULL or mline < 0 = field left out.
 * Any thread. Returns KVS_OK or a KVS_ERR_* code. */
KvsStatus glue_send_candidate(GlueSignaling *s, const char *candidate, const char *mid, int mline);

/* The SDP of an answer payload (g_free it), or NULL when the payload is not an answer. */
char *glue_answer_sdp(const char *payload);
/* Splits a candidate payload. *mid = NULL and *mline = -1 when absent. g_free the strings. */
gboolean glue_candidate_parse(const char *payload, char **candidate, char **mid, int *mline);

/* ICE URI `j` of `server` as webrtcbin wants it: stun://host:port, or
 * turn(s)://user:pass@host:port[?transport=…] with user and password percent-encoded.
 * NULL when webrtcbin has no equivalent (turns: with transport=udp). g_free it; it holds the
 * password, so never log it. */
char *glue_gst_ice_uri(const KvsIceServer *server, uint32_t j);

#endif

/*
 * gst_viewer.c — a KVS WebRTC viewer on GStreamer webrtcbin: signaling through kvs-viewer,
 * live video from the master, decoded and counted.
 *
 *   gst-viewer [FRAMES]      exit 0 once FRAMES video frames are decoded (default 30, or
 *                            KVS_GST_FRAMES); exit 2 when KVS_GST_TIMEOUT_S (default 60) passes
 *                            first; exit 1 on a setup error or a failed peer connection.
 *
 * Environment: as examples-c/viewer (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_REGION, KVS_CHANNEL_ARN or KVS_CHANNEL_NAME, KVS_CLIENT_ID,
 * KVS_WSS_ENDPOINT, KVS_CONTROL_PLANE_URL, KVS_CA_FILE).
 *
 * Prints "frames=N" for every decoded frame, "first_frame_ms=T" (since start) once, and one
 * line per signaling event. Never prints credentials.
 *
 * Order of operations (the part every integration must get right):
 *  1. connect, read the ICE servers, give them to webrtcbin (TURN user/password percent-encoded);
 *  2. on-negotiation-needed -> create-offer -> SEND THE OFFER, then set-local-description
 *     (candidate gathering starts there, so no candidate can overtake the offer);
 *  3. on-ice-candidate -> send each candidate with its sdpMid (from the offer's a=mid lines:
 *     webrtcbin gives only the m-line index);
 *  4. SDP_ANSWER -> set-remote-description; ICE_CANDIDATE -> add-ice-candidate, but hold the
 *     candidates that arrive before the answer is applied (the service may reorder them).
 *
 * Threads: GStreamer calls 2 and 3 on its own threads (kvs_viewer_send_* are safe from any
 * thread); received messages (4) are handled in the GLib main loop, one at a time: the
 * handle's fd (kvs_viewer_get_fd) is a main-loop source, so no receive thread is needed.
 * Reconnects (a dropped connection, GO_AWAY) are the library's own: it announces each with
 * KVS_MSG_RECONNECTED, and the peer connection, which does not depend on signaling once
 * connected, carries on.
 */
#define GST_USE_UNSTABLE_API /* webrtcbin's headers ask for it */
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <kvs_viewer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib-unix.h>

#define VIDEO_CAPS "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"
#define DECODE_CHAIN "rtpvp8depay ! vp8dec ! fakesink name=sink sync=false signal-handoffs=true"

typedef struct {
  GMainLoop *loop;
  GstElement *pipeline, *webrtc;
  KvsViewer *viewer;
  guint signaling_source; /* the handle's fd in the main loop; 0 once signaling ended */
  char recv_buf[KVS_MAX_PAYLOAD_LEN + 1]; /* holds any payload the service relays */
  gint64 start_us;
  int frames_wanted;
  gint frames;      /* atomic: written by the streaming thread */
  int exit_code;
  char **mids;      /* a=mid of each m-line of our offer; set before set-local-description */
  guint n_mids;
  /* main-loop only: */
  gboolean remote_set;
  GPtrArray *held;  /* candidate payloads that arrived before the answer was applied */
  char sdp_buf[KVS_MAX_PAYLOAD_LEN + 1]; /* a payload's SDP or candidate is never longer */
} App;

static const char *env(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

static void fail_kvs(KvsStatus rc, const char *what) {
  char detail[512] = "";
  kvs_last_error_message(detail, sizeof detail);
  printf("error %s (%d): %s: %s\n", kvs_error_name(rc), (int)rc, what, detail);
}

/* ---- ICE servers: the library's list, in webrtcbin's URI forms ---- */

static KvsStatus apply_ice_servers(KvsViewer *viewer, GstElement *webrtc) {
  size_t count = 0;
  KvsStatus rc = kvs_viewer_ice_server_count(viewer, &count);
  if (rc != KVS_OK) return rc;
  gboolean have_stun = FALSE;
  for (size_t i = 0; i < count; i++) {
    KvsIceServer server;
    kvs_ice_server_init(&server);
    if ((rc = kvs_viewer_ice_server_get(viewer, i, &server)) != KVS_OK) return rc;
    for (uint32_t j = 0; j < server.uri_count; j++) {
      char uri[1024]; /* stun://… or turn(s)://user:pass@…: holds the password, not printed */
      size_t len = 0;
      rc = kvs_viewer_ice_server_uri(viewer, i, j, KVS_ICE_URI_GSTREAMER, uri, sizeof uri, &len);
      if (rc != KVS_OK) return rc;
      const char *what = "skipped (no webrtcbin equivalent)"; /* len 0 */
      gboolean added = FALSE;
      if (len && g_str_has_prefix(uri, "stun://")) {
        what = "skipped (webrtcbin takes one STUN server)";
        if (!have_stun) {
          g_object_set(webrtc, "stun-server", uri, NULL);
          have_stun = TRUE;
          what = "stun-server";
        }
      } else if (len) {
        g_signal_emit_by_name(webrtc, "add-turn-server", uri, &added);
        what = added ? "add-turn-server" : "refused by webrtcbin";
      }
      printf("ice %s -> %s\n", server.uris[j], what);
    }
  }
  return KVS_OK;
}

/* ---- local side: offer and candidates (GStreamer's threads) ---- */

static void on_offer_created(GstPromise *promise, gpointer data) {
  App *app = data;
  GstWebRTCSessionDescription *offer = NULL;
  const GstStructure *reply = gst_promise_get_reply(promise);
  if (reply) gst_structure_get(reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, NULL);
  gst_promise_unref(promise);
  if (!offer) {
    printf("error: create-offer failed\n");
    return;
  }
  /* webrtcbin's candidates carry only the m-line index: keep the mids for sdpMid. */
  app->n_mids = gst_sdp_message_medias_len(offer->sdp);
  app->mids = g_new0(char *, app->n_mids + 1);
  for (guint i = 0; i < app->n_mids; i++)
    app->mids[i] = g_strdup(gst_sdp_media_get_attribute_val(
        gst_sdp_message_get_media(offer->sdp, i), "mid"));

  char *sdp = gst_sdp_message_as_text(offer->sdp);
  KvsStatus rc = kvs_viewer_send_offer(app->viewer, sdp);
  printf("send SDP_OFFER (%zu bytes): %s\n", strlen(sdp), kvs_error_name(rc));
  g_free(sdp);
  /* Only now: gathering starts here, and every candidate follows the offer. */
  g_signal_emit_by_name(app->webrtc, "set-local-description", offer, NULL);
  gst_webrtc_session_description_free(offer);
}

static void on_negotiation_needed(GstElement *webrtc, gpointer data) {
  static gint negotiated; /* one transceiver, one offer: this viewer never renegotiates */
  if (!g_atomic_int_compare_and_exchange(&negotiated, 0, 1)) return;
  GstPromise *promise = gst_promise_new_with_change_func(on_offer_created, data, NULL);
  g_signal_emit_by_name(webrtc, "create-offer", NULL, promise);
}

static void on_ice_candidate(GstElement *webrtc, guint mline, gchar *candidate, gpointer data) {
  (void)webrtc;
  App *app = data;
  if (!candidate || !*candidate) return; /* end of candidates */
  const char *mid = mline < app->n_mids ? app->mids[mline] : NULL;
  KvsStatus rc = kvs_viewer_send_candidate(app->viewer, candidate, mid, (int32_t)mline);
  printf("send ICE_CANDIDATE mid=%s: %s\n", mid ? mid : "-", kvs_error_name(rc));
}

/* ---- remote side: answer and candidates (main loop) ---- */

static void add_remote_candidate(App *app, const char *payload) {
  char mid[KVS_ID_BUF_LEN];
  size_t cand_len = 0, mid_len = 0;
  int32_t mline = -1;
  KvsStatus rc = kvs_payload_candidate_parse(payload, 0, app->sdp_buf, sizeof app->sdp_buf,
                                             &cand_len, mid, sizeof mid, &mid_len, &mline);
  if (rc != KVS_OK) {
    printf("recv ICE_CANDIDATE: %s, ignored\n", kvs_error_name(rc));
    return;
  }
  for (guint i = 0; mline < 0 && mid_len && i < app->n_mids; i++) /* only sdpMid: map it */
    if (g_strcmp0(app->mids[i], mid) == 0) mline = (int32_t)i;
  if (mline >= 0)
    g_signal_emit_by_name(app->webrtc, "add-ice-candidate", (guint)mline, app->sdp_buf);
  else
    printf("recv ICE_CANDIDATE without a known sdpMid/sdpMLineIndex, ignored\n");
}

static gboolean on_remote_set_main(gpointer data) {
  App *app = data;
  app->remote_set = TRUE;
  if (app->held->len) printf("applying %u candidate(s) held until the answer\n", app->held->len);
  for (guint i = 0; i < app->held->len; i++) add_remote_candidate(app, app->held->pdata[i]);
  g_ptr_array_set_size(app->held, 0);
  return G_SOURCE_REMOVE;
}

static void on_remote_set(GstPromise *promise, gpointer data) { /* a GStreamer thread */
  gst_promise_unref(promise);
  g_idle_add(on_remote_set_main, data);
}

static void on_signaling_message(int32_t type, const char *payload, size_t len, void *data) {
  App *app = data;
  if (type == KVS_MSG_SDP_ANSWER) {
    size_t sdp_len = 0;
    GstSDPMessage *sdp = NULL;
    KvsStatus rc = kvs_payload_answer_sdp(payload, len, app->sdp_buf, sizeof app->sdp_buf,
                                          &sdp_len);
    if (rc != KVS_OK || gst_sdp_message_new_from_text(app->sdp_buf, &sdp) != GST_SDP_OK) {
      printf("recv SDP_ANSWER: unusable payload (%s), ignored\n", kvs_error_name(rc));
      return;
    }
    printf("recv SDP_ANSWER (%zu bytes)\n", sdp_len);
    GstWebRTCSessionDescription *answer =
        gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
    GstPromise *promise = gst_promise_new_with_change_func(on_remote_set, app, NULL);
    g_signal_emit_by_name(app->webrtc, "set-remote-description", answer, promise);
    gst_webrtc_session_description_free(answer);
  } else if (type == KVS_MSG_ICE_CANDIDATE) {
    if (app->remote_set) {
      add_remote_candidate(app, payload);
    } else {
      printf("recv ICE_CANDIDATE before the answer: held\n");
      g_ptr_array_add(app->held, g_strdup(payload));
    }
  } else {
    printf("recv %s\n", kvs_message_type_name(type));
  }
}

/* ---- media: decode and count ---- */

static gboolean quit_loop(gpointer data) {
  g_main_loop_quit(((App *)data)->loop);
  return G_SOURCE_REMOVE;
}

static void on_frame(GstElement *sink, GstBuffer *buf, GstPad *pad, gpointer data) {
  (void)sink, (void)buf, (void)pad;
  App *app = data;
  int n = g_atomic_int_add(&app->frames, 1) + 1;
  if (n == 1)
    printf("first_frame_ms=%d\n", (int)((g_get_monotonic_time() - app->start_us) / 1000));
  printf("frames=%d\n", n);
  if (n == app->frames_wanted) g_idle_add(quit_loop, app);
}

static void on_pad_added(GstElement *webrtc, GstPad *pad, gpointer data) {
  (void)webrtc;
  App *app = data;
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  GstElement *chain = gst_parse_bin_from_description(DECODE_CHAIN, TRUE, NULL);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(chain), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(on_frame), app);
  gst_object_unref(sink);
  gst_bin_add(GST_BIN(app->pipeline), chain);
  gst_element_sync_state_with_parent(chain);
  GstPad *sinkpad = gst_element_get_static_pad(chain, "sink");
  if (gst_pad_link(pad, sinkpad) != GST_PAD_LINK_OK) printf("error: cannot link the decoder\n");
  gst_object_unref(sinkpad);
}

static gboolean quit_failed(gpointer data) {
  App *app = data;
  app->exit_code = 1;
  g_main_loop_quit(app->loop);
  return G_SOURCE_REMOVE;
}

static void on_connection_state(GObject *webrtc, GParamSpec *pspec, gpointer data) {
  (void)pspec;
  GstWebRTCPeerConnectionState state;
  g_object_get(webrtc, "connection-state", &state, NULL);
  GEnumValue *v = g_enum_get_value(
      g_type_class_peek(GST_TYPE_WEBRTC_PEER_CONNECTION_STATE), (gint)state);
  printf("peer connection: %s\n", v ? v->value_nick : "?");
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) g_idle_add(quit_failed, data);
}

static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer data) {
  (void)bus;
  App *app = data;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gst_message_parse_error(msg, &err, NULL);
    printf("error: %s: %s\n", GST_OBJECT_NAME(msg->src), err->message);
    g_error_free(err);
    app->exit_code = 1;
    g_main_loop_quit(app->loop);
  }
  return G_SOURCE_CONTINUE;
}

/* webrtcbin's DTLS elements generate one certificate per process (RSA 2048: 0.5-1 s on a small
 * board) when the first one is created: do that while kvs_viewer_connect runs. */
static gpointer warm_dtls_certificate(gpointer data) {
  (void)data;
  GstElement *dtls = gst_element_factory_make("dtlssrtpdec", NULL);
  if (dtls) gst_object_unref(dtls);
  return NULL;
}

static gboolean on_timeout(gpointer data) {
  App *app = data;
  printf("timeout: frames=%d of %d\n", g_atomic_int_get(&app->frames), app->frames_wanted);
  app->exit_code = 2;
  g_main_loop_quit(app->loop);
  return G_SOURCE_REMOVE;
}

/* The handle's fd is readable: take every message queued, without blocking. */
static gboolean on_signaling_ready(gint fd, GIOCondition cond, gpointer data) {
  App *app = data;
  (void)fd;
  (void)cond;
  for (;;) {
    KvsMessage msg;
    kvs_message_init(&msg, app->recv_buf, sizeof app->recv_buf);
    KvsStatus rc = kvs_viewer_recv(app->viewer, &msg, 0);
    if (rc == KVS_ERR_TIMEOUT) return G_SOURCE_CONTINUE; /* drained: wait for the fd */
    if (rc != KVS_OK) { /* signaling ended for good (a final error); media keeps flowing */
      char detail[512] = "";
      kvs_last_error_message(detail, sizeof detail);
      printf("signaling: ended: %s (%d) %s\n", kvs_error_name(rc), (int)rc, detail);
      app->signaling_source = 0;
      return G_SOURCE_REMOVE;
    }
    if (msg.message_type == KVS_MSG_GO_AWAY) {
      printf("signaling: GO_AWAY (the library moves to a new connection by itself)\n");
    } else if (msg.message_type == KVS_MSG_RECONNECTED) {
      printf("signaling: reconnected automatically\n");
    } else {
      on_signaling_message(msg.message_type, app->recv_buf, msg.payload_len, app);
    }
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  gst_init(&argc, &argv);
  App app = {0};
  app.start_us = g_get_monotonic_time();
  const char *frames_arg = argc > 1 ? argv[1] : env("KVS_GST_FRAMES");
  app.frames_wanted = frames_arg ? atoi(frames_arg) : 30;
  int timeout_s = env("KVS_GST_TIMEOUT_S") ? atoi(env("KVS_GST_TIMEOUT_S")) : 60;
  if (app.frames_wanted <= 0 || timeout_s <= 0) {
    printf("usage: gst-viewer [FRAMES > 0]; KVS_GST_TIMEOUT_S > 0\n");
    return 1;
  }

  KvsViewerConfig cfg;
  kvs_viewer_config_init(&cfg);
  cfg.region = env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
  cfg.channel_arn = env("KVS_CHANNEL_ARN");
  cfg.channel_name = env("KVS_CHANNEL_NAME");
  cfg.client_id = env("KVS_CLIENT_ID");
  cfg.wss_endpoint = env("KVS_WSS_ENDPOINT");
  cfg.control_plane_url = env("KVS_CONTROL_PLANE_URL");
  cfg.access_key_id = env("AWS_ACCESS_KEY_ID");
  cfg.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
  cfg.session_token = env("AWS_SESSION_TOKEN");
  cfg.ca_file = env("KVS_CA_FILE");
  GThread *warm = g_thread_new("dtls-warm", warm_dtls_certificate, NULL);
  KvsViewer *viewer = NULL;
  KvsStatus rc = kvs_viewer_connect(&cfg, &viewer);
  app.viewer = viewer;
  int connect_ms = (int)((g_get_monotonic_time() - app.start_us) / 1000);
  g_thread_join(warm);
  if (rc != KVS_OK) {
    fail_kvs(rc, "connect");
    return 1;
  }
  printf("connected client_id=%s in %d ms\n", cfg.client_id, connect_ms);

  app.loop = g_main_loop_new(NULL, FALSE);
  app.held = g_ptr_array_new_with_free_func(g_free);
  app.pipeline = gst_pipeline_new("viewer");
  app.webrtc = gst_element_factory_make("webrtcbin", "webrtc");
  if (!app.webrtc) {
    printf("error: no webrtcbin (install gstreamer1.0-plugins-bad and gstreamer1.0-nice)\n");
    kvs_viewer_close(viewer);
    return 1;
  }
  g_object_set(app.webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, NULL);
  gst_bin_add(GST_BIN(app.pipeline), app.webrtc);
  if ((rc = apply_ice_servers(viewer, app.webrtc)) != KVS_OK) {
    fail_kvs(rc, "ICE servers");
    kvs_viewer_close(viewer);
    return 1;
  }

  /* One receive-only video transceiver: webrtcbin then asks for negotiation. */
  GstWebRTCRTPTransceiver *trans = NULL;
  GstCaps *caps = gst_caps_from_string(VIDEO_CAPS);
  g_signal_emit_by_name(app.webrtc, "add-transceiver",
                        GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps, &trans);
  gst_caps_unref(caps);
  gst_object_unref(trans);

  g_signal_connect(app.webrtc, "on-negotiation-needed", G_CALLBACK(on_negotiation_needed), &app);
  g_signal_connect(app.webrtc, "on-ice-candidate", G_CALLBACK(on_ice_candidate), &app);
  g_signal_connect(app.webrtc, "pad-added", G_CALLBACK(on_pad_added), &app);
  g_signal_connect(app.webrtc, "notify::connection-state", G_CALLBACK(on_connection_state), &app);
  GstBus *bus = gst_pipeline_get_bus(GST_PIPELINE(app.pipeline));
  gst_bus_add_watch(bus, on_bus, &app);
  gst_object_unref(bus);

  int fd = kvs_viewer_get_fd(viewer);
  if (fd < 0) {
    fail_kvs((KvsStatus)fd, "kvs_viewer_get_fd");
    kvs_viewer_close(viewer);
    return 1;
  }
  app.signaling_source = g_unix_fd_add(fd, G_IO_IN, on_signaling_ready, &app);
  g_timeout_add_seconds((guint)timeout_s, on_timeout, &app);
  gst_element_set_state(app.pipeline, GST_STATE_PLAYING);
  g_main_loop_run(app.loop);

  gst_element_set_state(app.pipeline, GST_STATE_NULL);
  if (app.signaling_source) g_source_remove(app.signaling_source); /* before close frees the fd */
  kvs_viewer_close(viewer);
  printf("done frames=%d exit=%d\n", g_atomic_int_get(&app.frames), app.exit_code);
  gst_object_unref(app.pipeline);
  g_ptr_array_free(app.held, TRUE);
  g_strfreev(app.mids);
  g_main_loop_unref(app.loop);
  return app.exit_code;
}

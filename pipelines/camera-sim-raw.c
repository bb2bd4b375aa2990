/* SPDX-License-Identifier: Apache-2.0 */
/* The raw RTSP responder of the camera simulator: it answers OPTIONS,
 * DESCRIBE, SETUP, PLAY, GET_PARAMETER and TEARDOWN itself, so that it can
 * send what gst-rtsp-server never does (canned and broken SDP, odd challenges,
 * redirects, junk on the wire, strict session timeouts), and streams RTP from
 * an x264enc pipeline interleaved over TCP. Parsing requests is left to
 * GstRTSPConnection. */
#include "camera-sim.h"

#include <gst/app/gstappsink.h>
#include <gst/rtsp/rtsp.h>
#include <string.h>

#define RAW_REALM "cimshub-camera-sim"
#define RAW_SESSION_TIMEOUT_S 60
#define RAW_SHORT_SESSION_TIMEOUT_S 8
#define RAW_RECEIVE_TIMEOUT_US G_USEC_PER_SEC
/* fault=tcp-junk: what the camera writes between two frames. NOTE: only
 * blank lines, which GstRTSPConnection skips; arbitrary bytes there are not
 * simulated. */
#define RAW_JUNK "\r\n\r\n"

struct _CimsSimRawServer {
  const CimsSimCamera *camera;
  char *address;
  GSocketService *service;
  guint16 port;
  GSocketService *target_service;  /* fault=redirect: where DESCRIBE is sent */
  guint16 target_port;
};

/* One client connection and its session, on its own thread. */
typedef struct {
  CimsSimRawServer *server;
  const CimsSimCamera *camera;
  gboolean is_redirector;
  GOutputStream *output;           /* of the client's socket, writes under write_lock */
  GMutex write_lock;
  gboolean has_write_error;        /* under write_lock */
  char *session_id;
  char *nonce;
  guint8 channel;
  gboolean is_setup;
  gint64 last_refresh_us;
  GstElement *pipeline;
} RawSession;

/* ---- writing ------------------------------------------------------------------ */

static void
session_write (RawSession *session, const void *data, gsize size)
{
  g_autoptr(GError) error = NULL;

  g_mutex_lock (&session->write_lock);
  if (!session->has_write_error && !g_output_stream_write_all (session->output, data, size, NULL, NULL, &error)) {
    session->has_write_error = TRUE;
    g_debug ("camera=%s: write failed: %s", session->camera->mount_path, error->message);
  }
  g_mutex_unlock (&session->write_lock);
}

static void
session_write_interleaved (RawSession *session, guint8 channel, const guint8 *data, gsize size)
{
  g_autofree guint8 *frame = g_malloc (size + 4);

  frame[0] = '$';
  frame[1] = channel;
  frame[2] = (size >> 8) & 0xff;
  frame[3] = size & 0xff;
  memcpy (frame + 4, data, size);
  session_write (session, frame, size + 4);
}

/* Sends a response with @headers (each line ending in CRLF, or "") and
 * @body (nullable). fault=tcp-junk adds a header line of only spaces. */
static void
session_respond (RawSession *session, guint code, const char *reason, const char *cseq,
                 const char *headers, const char *body)
{
  g_autoptr(GString) text = g_string_new (NULL);
  gboolean has_junk = (session->camera->faults.flags & CIMS_SIM_FAULT_TCP_JUNK) != 0;

  g_string_append_printf (text, "RTSP/1.0 %u %s\r\nCSeq: %s\r\n%s", code, reason,
                          cseq != NULL ? cseq : "0", has_junk ? "   \r\n" : "");
  g_string_append (text, "Server: cimshub-camera-sim raw\r\n");
  g_string_append (text, headers);
  if (session->session_id != NULL && session->is_setup)
    g_string_append_printf (text, "Session: %s;timeout=%u\r\n", session->session_id,
                            (session->camera->faults.flags & CIMS_SIM_FAULT_SHORT_TIMEOUT)
                            ? RAW_SHORT_SESSION_TIMEOUT_S : RAW_SESSION_TIMEOUT_S);
  if (body != NULL)
    g_string_append_printf (text, "Content-Length: %zu\r\n", strlen (body));
  g_string_append (text, "\r\n");
  if (body != NULL)
    g_string_append (text, body);

  session_write (session, text->str, text->len);
}

/* ---- the media pipeline ---------------------------------------------------- */

static void
session_send_buffer (RawSession *session, GstBuffer *buffer)
{
  GstMapInfo map;
  gboolean is_frame_end;

  if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
    return;
  is_frame_end = map.size >= 2 && (map.data[1] & 0x80) != 0;
  session_write_interleaved (session, session->channel, map.data, map.size);
  gst_buffer_unmap (buffer, &map);

  if (is_frame_end && (session->camera->faults.flags & CIMS_SIM_FAULT_TCP_JUNK))
    session_write (session, RAW_JUNK, strlen (RAW_JUNK));
}

static GstFlowReturn
appsink_new_sample_cb (GstAppSink *appsink, gpointer user_data)
{
  RawSession *session = user_data;
  g_autoptr(GstSample) sample = gst_app_sink_pull_sample (appsink);
  GstBufferList *list;

  if (sample == NULL)
    return GST_FLOW_FLUSHING;

  list = gst_sample_get_buffer_list (sample);
  if (list != NULL) {
    for (guint i = 0; i < gst_buffer_list_length (list); i++)
      session_send_buffer (session, gst_buffer_list_get (list, i));
  } else {
    session_send_buffer (session, gst_sample_get_buffer (sample));
  }

  return GST_FLOW_OK;
}

static gboolean
session_start_media (RawSession *session, GError **error)
{
  const CimsSimCamera *camera = session->camera;
  GstAppSinkCallbacks callbacks = { .new_sample = appsink_new_sample_cb };
  g_autofree char *launch = NULL;
  g_autoptr(GstElement) appsink = NULL;

  launch = g_strdup_printf ("videotestsrc is-live=true pattern=%s horizontal-speed=4 ! "
                            "video/x-raw,width=%u,height=%u,framerate=%u/1 ! videoconvert ! "
                            "video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast "
                            "bframes=0 threads=1 key-int-max=%u bitrate=%u byte-stream=true "
                            "option-string=scenecut=0 ! video/x-h264,profile=constrained-baseline ! "
                            "rtph264pay pt=96 config-interval=-1 ! "
                            "appsink name=sink sync=false max-buffers=200 drop=true buffer-list=true",
                            camera->pattern, camera->width, camera->height, camera->fps,
                            camera->keyint_frames, camera->bitrate_kbps);
  session->pipeline = gst_parse_launch (launch, error);
  if (session->pipeline == NULL)
    return FALSE;

  appsink = gst_bin_get_by_name (GST_BIN (session->pipeline), "sink");
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &callbacks, session, NULL);
  gst_element_set_state (session->pipeline, GST_STATE_PLAYING);

  return TRUE;
}

static void
session_stop_media (RawSession *session)
{
  if (session->pipeline == NULL)
    return;

  gst_element_set_state (session->pipeline, GST_STATE_NULL);
  gst_clear_object (&session->pipeline);
}

/* fault=tcp-junk: an RTCP receiver report with no report block, sent on the
 * RTCP channel before the PLAY response. */
static void
session_send_early_rtcp (RawSession *session)
{
  static const guint8 rtcp[] = { 0x80, 201, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78 };

  session_write_interleaved (session, session->channel + 1, rtcp, sizeof rtcp);
}

/* ---- SDP and authentication ---------------------------------------------------- */

static char *
raw_build_sdp (const CimsSimCamera *camera)
{
  CimsSimFaultFlags flags = camera->faults.flags;
  GString *sdp = g_string_new (NULL);

  if (!(flags & CIMS_SIM_FAULT_BAD_SDP))
    g_string_append (sdp, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cimshub camera simulator\r\n");
  g_string_append (sdp, "t=0 0\r\na=control:*\r\n");

  if (flags & CIMS_SIM_FAULT_METADATA_TRACK)
    g_string_append (sdp, "m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n"
                          "a=control:track2\r\n"
                          "m=metadata 0 RTP/AVP 108\r\na=rtpmap:108 vnd.onvif.metadata/90000\r\n"
                          "a=control:track3\r\n");

  /* An AAC track whose fmtp names another payload type and has no config. */
  if (flags & CIMS_SIM_FAULT_BROKEN_AUDIO)
    g_string_append (sdp, "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\n"
                          "a=fmtp:98 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=;"
                          "sizelength=13;indexlength=3;indexdeltalength=3\r\na=control:track1\r\n");

  g_string_append (sdp, "m=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\n");
  /* The SPS then reaches a client only in the stream, before each IDR. */
  if (flags & CIMS_SIM_FAULT_INBAND_ONLY)
    g_string_append (sdp, "a=fmtp:96 packetization-mode=1\r\n");
  else
    g_string_append (sdp, "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n");
  g_string_append (sdp, "a=control:track0\r\n");

  return g_string_free (sdp, FALSE);
}

static const char *
auth_param_get (GstRTSPAuthCredential *credential, const char *name)
{
  for (guint i = 0; credential->params != NULL && credential->params[i] != NULL; i++) {
    if (g_ascii_strcasecmp (credential->params[i]->name, name) == 0)
      return credential->params[i]->value;
  }

  return NULL;
}

static gboolean
auth_basic_is_valid (const CimsSimCamera *camera, const char *authorization)
{
  g_autofree char *expected_plain = g_strdup_printf ("%s:%s", camera->user, camera->password);
  g_autofree char *expected = g_base64_encode ((const guchar *) expected_plain, strlen (expected_plain));

  return authorization != NULL && g_str_equal (authorization, expected);
}

static gboolean
auth_digest_is_valid (RawSession *session, GstRTSPAuthCredential *credential, const char *method)
{
  const char *username = auth_param_get (credential, "username");
  const char *uri = auth_param_get (credential, "uri");
  const char *nonce = auth_param_get (credential, "nonce");
  const char *response = auth_param_get (credential, "response");
  g_autofree char *expected = NULL;

  if (username == NULL || uri == NULL || nonce == NULL || response == NULL)
    return FALSE;
  if (!g_str_equal (username, session->camera->user) || !g_str_equal (nonce, session->nonce))
    return FALSE;

  expected = gst_rtsp_generate_digest_auth_response (NULL, method, RAW_REALM, username,
                                                     session->camera->password, uri, nonce);
  return expected != NULL && g_ascii_strcasecmp (expected, response) == 0;
}

/* Returns TRUE when @message may go on: the camera has no user, the method
 * is not checked, or its credentials are valid. */
static gboolean
session_check_auth (RawSession *session, GstRTSPMessage *message, GstRTSPMethod method)
{
  const CimsSimCamera *camera = session->camera;
  gboolean allows_basic = camera->allows_basic || (camera->faults.flags & CIMS_SIM_FAULT_BASIC_AND_DIGEST);
  GstRTSPAuthCredential **credentials;
  gboolean is_valid = FALSE;

  if (camera->user == NULL || method == GST_RTSP_OPTIONS)
    return TRUE;
  if ((camera->faults.flags & CIMS_SIM_FAULT_AUTH_DESCRIBE_ONLY) && method != GST_RTSP_DESCRIBE)
    return TRUE;

  credentials = gst_rtsp_message_parse_auth_credentials (message, GST_RTSP_HDR_AUTHORIZATION);
  for (guint i = 0; credentials != NULL && credentials[i] != NULL && !is_valid; i++) {
    GstRTSPAuthCredential *credential = credentials[i];

    if (credential->scheme == GST_RTSP_AUTH_DIGEST)
      is_valid = auth_digest_is_valid (session, credential, gst_rtsp_method_as_text (method));
    else if (credential->scheme == GST_RTSP_AUTH_BASIC && allows_basic)
      is_valid = auth_basic_is_valid (camera, credential->authorization);

    if (is_valid)
      g_message ("camera=%s: %s accepted with %s credentials", camera->mount_path,
                 gst_rtsp_method_as_text (method),
                 credential->scheme == GST_RTSP_AUTH_DIGEST ? "Digest" : "Basic");
  }
  gst_rtsp_auth_credentials_free (credentials);

  return is_valid;
}

static void
session_challenge (RawSession *session, const char *cseq)
{
  g_autofree char *headers = NULL;
  const char *basic = (session->camera->faults.flags & CIMS_SIM_FAULT_BASIC_AND_DIGEST)
                      ? "WWW-Authenticate: Basic realm=\"" RAW_REALM "\"\r\n" : "";

  headers = g_strdup_printf ("%sWWW-Authenticate: Digest realm=\"" RAW_REALM "\", nonce=\"%s\"\r\n",
                             basic, session->nonce);
  session_respond (session, 401, "Unauthorized", cseq, headers, NULL);
}

/* ---- requests ------------------------------------------------------------------ */

static void
session_handle_options (RawSession *session, const char *cseq)
{
  CimsSimFaultFlags flags = session->camera->faults.flags;
  const char *public = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n";

  if (flags & CIMS_SIM_FAULT_OPTIONS_BARE)
    public = "";
  else if (flags & CIMS_SIM_FAULT_GET_PARAMETER_UNLISTED)
    public = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n";

  session->last_refresh_us = g_get_monotonic_time ();
  session_respond (session, 200, "OK", cseq, public, NULL);
}

static void
session_handle_describe (RawSession *session, const char *cseq, const char *uri)
{
  g_autofree char *sdp = NULL;
  g_autofree char *headers = NULL;

  if (session->is_redirector) {
    headers = g_strdup_printf ("Location: rtsp://%s:%u%s\r\n", session->server->address,
                               session->server->target_port, session->camera->mount_path);
    g_message ("camera=%s: DESCRIBE redirected to port %u", session->camera->mount_path,
               session->server->target_port);
    session_respond (session, 302, "Moved Temporarily", cseq, headers, NULL);
    return;
  }

  sdp = raw_build_sdp (session->camera);
  headers = g_strdup_printf ("Content-Type: application/sdp\r\nContent-Base: %s/\r\n", uri);
  session_respond (session, 200, "OK", cseq, headers, sdp);
}

/* Only RTP over TCP is served: a UDP transport gets 461. NOTE: so every raw
 * responder camera also makes the client fall back from UDP to TCP. */
static void
session_handle_setup (RawSession *session, const char *cseq, GstRTSPMessage *message)
{
  g_autofree char *headers = NULL;
  const char *transport = NULL;
  const char *interleaved;
  guint channel = 0;

  gst_rtsp_message_get_header (message, GST_RTSP_HDR_TRANSPORT, (gchar **) &transport, 0);
  if (transport == NULL || strstr (transport, "RTP/AVP/TCP") == NULL) {
    session_respond (session, 461, "Unsupported Transport", cseq, "", NULL);
    return;
  }

  interleaved = strstr (transport, "interleaved=");
  if (interleaved != NULL)
    channel = (guint) g_ascii_strtoull (interleaved + strlen ("interleaved="), NULL, 10);
  session->channel = (guint8) MIN (channel, 254);
  session->is_setup = TRUE;
  session->last_refresh_us = g_get_monotonic_time ();

  headers = g_strdup_printf ("Transport: RTP/AVP/TCP;unicast;interleaved=%u-%u\r\n",
                             session->channel, session->channel + 1);
  session_respond (session, 200, "OK", cseq, headers, NULL);
}

static void
session_handle_play (RawSession *session, const char *cseq)
{
  g_autoptr(GError) error = NULL;

  if (!session->is_setup) {
    session_respond (session, 455, "Method Not Valid in This State", cseq, "", NULL);
    return;
  }

  session->last_refresh_us = g_get_monotonic_time ();
  if (session->camera->faults.flags & CIMS_SIM_FAULT_TCP_JUNK)
    session_send_early_rtcp (session);
  session_respond (session, 200, "OK", cseq, "Range: npt=now-\r\n", NULL);

  if (session->pipeline == NULL && !session_start_media (session, &error))
    g_warning ("camera=%s: media pipeline failed: %s", session->camera->mount_path, error->message);
}

/* A keep-alive refreshes the session, unless the camera's fault is to reject
 * GET_PARAMETER. */
static void
session_handle_get_parameter (RawSession *session, const char *cseq)
{
  CimsSimFaultFlags flags = session->camera->faults.flags;

  if (flags & CIMS_SIM_FAULT_GET_PARAMETER_454) {
    session_respond (session, 454, "Session Not Found", cseq, "", NULL);
    return;
  }
  if (flags & CIMS_SIM_FAULT_GET_PARAMETER_UNLISTED) {
    session_respond (session, 405, "Method Not Allowed", cseq,
                     "Allow: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n", NULL);
    return;
  }

  session->last_refresh_us = g_get_monotonic_time ();
  session_respond (session, 200, "OK", cseq, "", NULL);
}

/* Handles one request. Returns FALSE when the connection is to be closed. */
static gboolean
session_handle_request (RawSession *session, GstRTSPMessage *message)
{
  GstRTSPMethod method;
  const char *uri;
  GstRTSPVersion version;
  const char *cseq = NULL;

  gst_rtsp_message_parse_request (message, &method, &uri, &version);
  gst_rtsp_message_get_header (message, GST_RTSP_HDR_CSEQ, (gchar **) &cseq, 0);
  g_debug ("camera=%s: %s request", session->camera->mount_path, gst_rtsp_method_as_text (method));

  if (!session_check_auth (session, message, method)) {
    session_challenge (session, cseq);
    return TRUE;
  }

  switch (method) {
    case GST_RTSP_OPTIONS:
      session_handle_options (session, cseq);
      return TRUE;
    case GST_RTSP_DESCRIBE:
      session_handle_describe (session, cseq, uri);
      return TRUE;
    case GST_RTSP_SETUP:
      session_handle_setup (session, cseq, message);
      return TRUE;
    case GST_RTSP_PLAY:
      session_handle_play (session, cseq);
      return TRUE;
    case GST_RTSP_GET_PARAMETER:
      session_handle_get_parameter (session, cseq);
      return TRUE;
    case GST_RTSP_TEARDOWN:
      session_respond (session, 200, "OK", cseq, "", NULL);
      return FALSE;
    default:
      session_respond (session, 501, "Not Implemented", cseq, "", NULL);
      return TRUE;
  }
}

static gboolean
session_has_timed_out (RawSession *session)
{
  guint timeout_s = (session->camera->faults.flags & CIMS_SIM_FAULT_SHORT_TIMEOUT)
                    ? RAW_SHORT_SESSION_TIMEOUT_S : RAW_SESSION_TIMEOUT_S;

  if (!session->is_setup)
    return FALSE;
  if (g_get_monotonic_time () - session->last_refresh_us < (gint64) timeout_s * G_USEC_PER_SEC)
    return FALSE;

  g_message ("camera=%s: session %s had no keep-alive for %u s; closing the connection",
             session->camera->mount_path, session->session_id, timeout_s);
  return TRUE;
}

/* Reads requests until the client leaves, sends TEARDOWN or lets the session
 * time out. RTCP from the client (interleaved data) is read and ignored. */
static void
session_run (RawSession *session, GstRTSPConnection *connection)
{
  while (TRUE) {
    GstRTSPMessage message = { 0 };
    GstRTSPResult result = gst_rtsp_connection_receive_usec (connection, &message, RAW_RECEIVE_TIMEOUT_US);
    gboolean goes_on = TRUE;

    if (result == GST_RTSP_ETIMEOUT) {
      if (session_has_timed_out (session))
        break;
      continue;
    }
    if (result != GST_RTSP_OK)
      break;

    if (message.type == GST_RTSP_MESSAGE_REQUEST)
      goes_on = session_handle_request (session, &message);
    gst_rtsp_message_unset (&message);
    if (!goes_on || session_has_timed_out (session))
      break;
  }
}

static gboolean
service_run_cb (GThreadedSocketService *service, GSocketConnection *socket_connection,
                GObject *source_object, gpointer user_data)
{
  CimsSimRawServer *server = user_data;
  GstRTSPConnection *connection = NULL;
  RawSession session = { 0 };

  if (gst_rtsp_connection_create_from_socket (g_socket_connection_get_socket (socket_connection),
                                              "127.0.0.1", 0, NULL, &connection) != GST_RTSP_OK)
    return TRUE;

  session.server = server;
  session.camera = server->camera;
  session.is_redirector = server->target_service != NULL && G_OBJECT (service) == G_OBJECT (server->service);
  session.output = g_io_stream_get_output_stream (G_IO_STREAM (socket_connection));
  g_mutex_init (&session.write_lock);
  session.session_id = g_strdup_printf ("%08x", g_random_int ());
  session.nonce = (server->camera->faults.flags & CIMS_SIM_FAULT_EMPTY_NONCE)
                  ? g_strdup ("") : g_strdup_printf ("%08x%08x", g_random_int (), g_random_int ());

  session_run (&session, connection);

  session_stop_media (&session);
  gst_rtsp_connection_free (connection);
  g_io_stream_close (G_IO_STREAM (socket_connection), NULL, NULL);
  g_mutex_clear (&session.write_lock);
  g_free (session.session_id);
  g_free (session.nonce);
  g_debug ("camera=%s: client connection closed", server->camera->mount_path);

  return TRUE;
}

static GSocketService *
raw_listen (CimsSimRawServer *server, guint16 *port, GError **error)
{
  g_autoptr(GSocketService) service = g_threaded_socket_service_new (16);
  g_autoptr(GInetAddress) inet_address = g_inet_address_new_from_string (server->address);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;

  if (inet_address == NULL) {
    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_INVALID_SPEC,
                 "address '%s' is not an IP address", server->address);
    return NULL;
  }

  address = g_inet_socket_address_new (inet_address, 0);
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (service), address, G_SOCKET_TYPE_STREAM,
                                      G_SOCKET_PROTOCOL_TCP, NULL, &bound, error))
    return NULL;

  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_signal_connect (service, "run", G_CALLBACK (service_run_cb), server);
  g_socket_service_start (service);

  return g_steal_pointer (&service);
}

CimsSimRawServer *
cims_sim_raw_server_start (const CimsSimCamera *camera, const char *address, GError **error)
{
  g_autoptr(CimsSimRawServer) server = g_new0 (CimsSimRawServer, 1);

  g_return_val_if_fail (camera != NULL && address != NULL, NULL);

  server->camera = camera;
  server->address = g_strdup (address);
  if (camera->faults.flags & CIMS_SIM_FAULT_REDIRECT) {
    server->target_service = raw_listen (server, &server->target_port, error);
    if (server->target_service == NULL)
      return NULL;
  }

  server->service = raw_listen (server, &server->port, error);
  if (server->service == NULL)
    return NULL;

  return g_steal_pointer (&server);
}

guint16
cims_sim_raw_server_get_port (CimsSimRawServer *server)
{
  return server->port;
}

void
cims_sim_raw_server_free (CimsSimRawServer *server)
{
  if (server == NULL)
    return;

  if (server->service != NULL)
    g_socket_service_stop (server->service);
  if (server->target_service != NULL)
    g_socket_service_stop (server->target_service);
  g_clear_object (&server->service);
  g_clear_object (&server->target_service);
  g_free (server->address);
  g_free (server);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* One viewer's life: ICE agent, WHEP POST (or Janus signalling), DTLS, SRTP
 * receive, periodic RTCP and the end of the session (close_notify, ICE
 * failure, idle, duration), then DELETE. Offer, DTLS, SRTP, statistics and
 * Janus details live in their own files; whep-viewer.c runs many of these. */
#include "bench/whep-viewer.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <json-glib/json-glib.h>

#define DTLS_HANDSHAKE_TIMEOUT_US (10 * G_USEC_PER_SEC)
#define REPORT_INTERVAL_US G_USEC_PER_SEC
#define SRTP_MAX_TRAILER 32
#define RECEIVE_BUFFER_SIZE 2048
/* The hub sends a whole cached keyframe at once. On loopback each datagram
 * costs the socket several times its size, so the kernel's default
 * receive buffer (212992 bytes on Debian 12) overflows on a 640x480 keyframe
 * when the process is descheduled for a moment. Linux caps the request at
 * net.core.rmem_max. */
#define SOCKET_RECEIVE_BUFFER_BYTES (4 * 1024 * 1024)
/* Packets received closer together than this count as one burst. */
#define JOIN_BURST_GAP_US 500

struct _CimsWhepViewer {
  const CimsWhepViewerShared *shared;
  guint index;
  char *cname;

  NiceAgent *agent;
  GMainContext *agent_context;     /* transfer none: the loop group @agent runs in, or NULL */
  guint stream_id;
  gboolean is_ice_connected;
  int socket_fd;                   /* the selected pair's local socket; -1 before ICE connects */
  GCancellable *cancellable;
  SoupMessage *post;
  GSource *answer_timer;           /* under --answer-delay-ms, until the SDP answer is applied */
  SoupMessage *delete;
  guint status;
  guint delete_status;             /* 0 until a DELETE got a response */
  char *session_url;
  char *error_message;

  CimsWhepViewerAnswer answer;
  CimsWhepViewerDtls dtls;
  CimsWhepViewerSrtp srtp;
  CimsWhepViewerStats stats;
  CimsWhepViewerRtcp rtcp;
  const char *srtp_profile_name;   /* static string from OpenSSL */
  guint n_undecryptable;
  guint n_dtls_dropped;         /* of the first ones, under --drop-dtls */

  /* The frame whose first packet carried a send time, until its marker. */
  gboolean has_frame_send_time;
  guint32 frame_timestamp;
  gint64 frame_send_time_us;

  /* With --socket-timestamps: the longest run of packets before the first
   * whole keyframe that the kernel received less than JOIN_BURST_GAP_US
   * apart, which shows how the hub paced its cached keyframe. */
  gint64 join_burst_last_arrival_us;
  guint join_burst_run;
  guint join_burst_max;

  /* g_get_monotonic_time() microseconds, 0 until it happens. */
  gint64 post_us;
  gint64 answer_us;
  gint64 dtls_connected_us;
  gint64 next_report_us;
  gint64 next_pli_us;
  gint64 close_notify_us;
  gint64 ended_us;

  CimsWhepViewerEnd end;
  gboolean is_done;

  /* Janus mode: the viewer answers Janus's offer once both it and the local
   * candidates are there. */
  CimsWhepViewerJanus *janus;
  char *janus_offer;
  gboolean is_gathered;
  gboolean has_answered;
};

static void viewer_end (CimsWhepViewer *viewer, CimsWhepViewerEnd end, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

const char *
cims_whep_viewer_end_to_string (CimsWhepViewerEnd end)
{
  static const char *const names[] = {
    [CIMS_WHEP_VIEWER_END_NONE] = NULL,
    [CIMS_WHEP_VIEWER_END_CLOSE_NOTIFY] = "close-notify",
    [CIMS_WHEP_VIEWER_END_ICE_FAILED] = "ice-failed",
    [CIMS_WHEP_VIEWER_END_IDLE] = "idle",
    [CIMS_WHEP_VIEWER_END_DURATION] = "duration",
    [CIMS_WHEP_VIEWER_END_POST_FAILED] = "post-failed",
    [CIMS_WHEP_VIEWER_END_ANSWER_INVALID] = "answer-invalid",
    [CIMS_WHEP_VIEWER_END_DTLS_FAILED] = "dtls-failed",
    [CIMS_WHEP_VIEWER_END_INTERRUPTED] = "interrupted",
  };

  return end < G_N_ELEMENTS (names) ? names[end] : NULL;
}

CimsWhepViewer *
cims_whep_viewer_new (const CimsWhepViewerShared *shared, guint index)
{
  CimsWhepViewer *viewer = g_new0 (CimsWhepViewer, 1);

  viewer->shared = shared;
  viewer->index = index;
  viewer->socket_fd = -1;
  viewer->cname = g_strdup_printf ("whep-viewer-%u-%08x", index, g_random_int ());
  viewer->cancellable = g_cancellable_new ();
  viewer->rtcp.ssrc = g_random_int ();
  return viewer;
}

static void
viewer_transport_clear (CimsWhepViewer *viewer)
{
  cims_whep_viewer_dtls_clear (&viewer->dtls);
  cims_whep_viewer_srtp_clear (&viewer->srtp);
  if (viewer->agent != NULL)
    nice_agent_remove_stream (viewer->agent, viewer->stream_id);
  g_clear_object (&viewer->agent);
  if (viewer->agent_context != NULL)
    cims_worker_loop_leave_group (viewer->shared->loop, viewer->agent_context);
  viewer->agent_context = NULL;
  viewer->socket_fd = -1;
}

void
cims_whep_viewer_free (CimsWhepViewer *viewer)
{
  if (viewer == NULL)
    return;

  g_cancellable_cancel (viewer->cancellable);
  g_clear_pointer (&viewer->answer_timer, g_source_destroy);
  viewer_transport_clear (viewer);
  cims_whep_viewer_answer_clear (&viewer->answer);
  g_clear_object (&viewer->post);
  g_clear_object (&viewer->delete);
  g_clear_pointer (&viewer->janus, cims_whep_viewer_janus_free);
  g_clear_object (&viewer->cancellable);
  g_free (viewer->janus_offer);
  g_free (viewer->session_url);
  g_free (viewer->error_message);
  g_free (viewer->cname);
  g_free (viewer);
}

gboolean
cims_whep_viewer_is_done (CimsWhepViewer *viewer)
{
  return viewer->is_done;
}

static void
event_print (CimsWhepViewer *viewer, const char *event)
{
  g_autofree char *line = NULL;

  if (!viewer->shared->options->prints_events)
    return;

  line = cims_whep_viewer_event_to_json (viewer, event);
  fputs (line, stdout);
  fputc ('\n', stdout);
  fflush (stdout);
}

/* ---- the end ---------------------------------------------------------------- */

static void
viewer_done (CimsWhepViewer *viewer)
{
  viewer->is_done = TRUE;
  viewer->shared->ended_func (viewer, viewer->shared->ended_data);
}

static void
delete_done_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;
  g_autoptr (GBytes) body = NULL;
  g_autoptr (GError) error = NULL;

  body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &error);
  if (body == NULL)
    g_warning ("viewer %u: DELETE %s failed: %s", viewer->index, viewer->session_url, error->message);
  else
    viewer->delete_status = soup_message_get_status (viewer->delete);

  viewer_done (viewer);
}

static void
janus_destroyed_cb (CimsWhepViewerJanus *janus, const char *offer, const GError *error, gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;

  if (error != NULL)
    g_warning ("viewer %u: Janus destroy failed: %s", viewer->index, error->message);
  else
    viewer->delete_status = SOUP_STATUS_OK;

  viewer_done (viewer);
}

/* Frees the transport, then sends DELETE to the session URL (or destroys
 * the Janus session) when the viewer itself ended the session. The hub has
 * already dropped a session it ended. */
static gboolean
teardown_cb (gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;
  gboolean is_own_end = viewer->end == CIMS_WHEP_VIEWER_END_IDLE || viewer->end == CIMS_WHEP_VIEWER_END_DURATION
                        || viewer->end == CIMS_WHEP_VIEWER_END_INTERRUPTED;
  g_autofree char *authorization = NULL;

  viewer_transport_clear (viewer);
  if (viewer->janus != NULL && cims_whep_viewer_janus_has_session (viewer->janus)) {
    cims_whep_viewer_janus_destroy (viewer->janus, janus_destroyed_cb, viewer);
    return G_SOURCE_REMOVE;
  }
  if (!is_own_end || viewer->session_url == NULL) {
    viewer_done (viewer);
    return G_SOURCE_REMOVE;
  }

  viewer->delete = soup_message_new ("DELETE", viewer->session_url);
  if (viewer->delete == NULL) {
    viewer_done (viewer);
    return G_SOURCE_REMOVE;
  }
  authorization = g_strdup_printf ("Bearer %s", viewer->shared->options->token);
  soup_message_headers_replace (soup_message_get_request_headers (viewer->delete), "Authorization", authorization);
  soup_session_send_and_read_async (viewer->shared->soup, viewer->delete, G_PRIORITY_DEFAULT, NULL,
                                    delete_done_cb, viewer);
  return G_SOURCE_REMOVE;
}

/* Records why the session ended and schedules the teardown: this may run
 * inside a libnice callback, where the agent must not be freed. */
static void
viewer_end (CimsWhepViewer *viewer, CimsWhepViewerEnd end, const char *format, ...)
{
  va_list args;
  GSource *idle;

  if (viewer->end != CIMS_WHEP_VIEWER_END_NONE)
    return;

  viewer->end = end;
  viewer->ended_us = g_get_monotonic_time ();
  if (format != NULL) {
    va_start (args, format);
    viewer->error_message = g_strdup_vprintf (format, args);
    va_end (args);
  }
  cims_whep_viewer_stats_finish (&viewer->stats, viewer->ended_us);
  g_cancellable_cancel (viewer->cancellable);
  event_print (viewer, "ended");

  idle = g_idle_source_new ();
  g_source_set_callback (idle, teardown_cb, viewer, NULL);
  g_source_attach (idle, viewer->shared->context);
  g_source_unref (idle);
}

void
cims_whep_viewer_interrupt (CimsWhepViewer *viewer)
{
  if (viewer->end == CIMS_WHEP_VIEWER_END_NONE)
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_INTERRUPTED, NULL);
}

/* ---- DTLS and media ------------------------------------------------------------ */

static void
dtls_connected (CimsWhepViewer *viewer)
{
  g_autoptr (GError) error = NULL;

  if (!cims_whep_viewer_dtls_peer_matches (&viewer->dtls, &viewer->answer)) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_DTLS_FAILED,
                "The hub's DTLS certificate does not match the %s fingerprint in its answer",
                viewer->answer.fingerprint_algorithm);
    return;
  }

  if (!cims_whep_viewer_srtp_start (&viewer->srtp, viewer->dtls.ssl, viewer->dtls.is_client, &error)) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_DTLS_FAILED, "%s", error->message);
    return;
  }

  viewer->srtp_profile_name = viewer->srtp.profile_name;
  viewer->dtls_connected_us = g_get_monotonic_time ();
  viewer->next_report_us = viewer->dtls_connected_us;
  viewer->next_pli_us = viewer->next_report_us + viewer->shared->options->pli_interval_ms * 1000;
}

static void
dtls_status_handle (CimsWhepViewer *viewer, CimsWhepViewerDtlsStatus status)
{
  switch (status) {
  case CIMS_WHEP_VIEWER_DTLS_CONNECTED:
    dtls_connected (viewer);
    break;
  case CIMS_WHEP_VIEWER_DTLS_CLOSED:
    viewer->close_notify_us = g_get_monotonic_time ();
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_CLOSE_NOTIFY, NULL);
    break;
  case CIMS_WHEP_VIEWER_DTLS_FAILED:
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_DTLS_FAILED, "The DTLS handshake or a DTLS record failed");
    break;
  case CIMS_WHEP_VIEWER_DTLS_IN_PROGRESS:
  default:
    break;
  }
}

/* Adds the span from @since_us to now to @latency and, with
 * --socket-timestamps, the span to the kernel's receive time of the packet
 * just read to @socket_latency. libnice 0.1.21 calls recvmsg() once per
 * datagram before each callback (seen with strace), so that receive time
 * belongs to this packet. */
static void
latency_add_both (CimsWhepViewer *viewer, CimsWhepViewerLatency *latency, CimsWhepViewerLatency *socket_latency,
                  gint64 now_real_us, gint64 since_us)
{
  gint64 arrival_us = socket_latency != NULL ? cims_whep_viewer_socket_arrival_us (viewer->socket_fd) : -1;

  cims_whep_viewer_latency_add (latency, now_real_us - since_us);
  if (arrival_us > 0 && arrival_us <= now_real_us)
    cims_whep_viewer_latency_add (socket_latency, arrival_us - since_us);
}

/* Counts the source-to-viewer latency of a packet that carries a send time,
 * and of the last packet (marker bit) of that packet's frame: a frame can be
 * decoded only once that one arrives. Packets sent before this viewer's
 * first packet arrived are the hub's cached keyframe run, replayed late on
 * purpose, so they are left out. */
static void
latency_account (CimsWhepViewer *viewer, const guint8 *packet, gsize size, gint64 now_us)
{
  const CimsWhepViewerShared *shared = viewer->shared;
  gint64 now_real_us = now_us + shared->real_minus_monotonic_us;
  guint32 timestamp;
  gint64 send_time_us;

  if (shared->latency == NULL || now_us < shared->latency_from_us || size < 12)
    return;

  memcpy (&timestamp, packet + 4, sizeof timestamp);
  timestamp = GUINT32_FROM_BE (timestamp);
  if (cims_whep_viewer_send_time_parse (packet, size, &send_time_us)
      && send_time_us >= viewer->stats.first_packet_us + shared->real_minus_monotonic_us) {
    latency_add_both (viewer, shared->latency, shared->socket_latency, now_real_us, send_time_us);
    viewer->has_frame_send_time = TRUE;
    viewer->frame_timestamp = timestamp;
    viewer->frame_send_time_us = send_time_us;
  }

  if ((packet[1] & 0x80) != 0 && viewer->has_frame_send_time && timestamp == viewer->frame_timestamp) {
    latency_add_both (viewer, shared->frame_latency, shared->socket_frame_latency, now_real_us,
                      viewer->frame_send_time_us);
    viewer->has_frame_send_time = FALSE;
  }
}

/* Extends the current burst of packets, by kernel receive time, while the
 * viewer waits for its first whole keyframe. */
static void
join_burst_account (CimsWhepViewer *viewer)
{
  gint64 arrival_us;

  if (!viewer->shared->options->takes_socket_timestamps || viewer->stats.first_keyframe_us != 0)
    return;

  arrival_us = cims_whep_viewer_socket_arrival_us (viewer->socket_fd);
  if (arrival_us <= 0)
    return;

  if (viewer->join_burst_run > 0 && arrival_us - viewer->join_burst_last_arrival_us < JOIN_BURST_GAP_US)
    viewer->join_burst_run++;
  else
    viewer->join_burst_run = 1;
  viewer->join_burst_last_arrival_us = arrival_us;
  viewer->join_burst_max = MAX (viewer->join_burst_max, viewer->join_burst_run);
}

static void
rtp_handle (CimsWhepViewer *viewer, const guint8 *data, gsize size)
{
  guint8 packet[RECEIVE_BUFFER_SIZE];
  gint64 now_us;
  int length;

  if (size > sizeof packet)
    return;

  memcpy (packet, data, size);
  length = cims_whep_viewer_srtp_unprotect_rtp (&viewer->srtp, packet, size);
  if (length < 0) {
    viewer->n_undecryptable++;
    return;
  }

  join_burst_account (viewer);
  now_us = g_get_monotonic_time ();
  if (cims_whep_viewer_stats_add (&viewer->stats, packet, (gsize) length, now_us))
    event_print (viewer, "first-keyframe");
  latency_account (viewer, packet, (gsize) length, now_us);
}

static void
rtcp_handle (CimsWhepViewer *viewer, const guint8 *data, gsize size)
{
  guint8 packet[RECEIVE_BUFFER_SIZE];
  int length;

  if (size > sizeof packet)
    return;

  memcpy (packet, data, size);
  length = cims_whep_viewer_srtp_unprotect_rtcp (&viewer->srtp, packet, size);
  if (length < 0) {
    viewer->n_undecryptable++;
    return;
  }

  cims_whep_viewer_rtcp_parse (&viewer->rtcp, packet, (gsize) length, g_get_monotonic_time ());
}

/* Demultiplexes what arrives on the component (RFC 7983): libnice consumes
 * STUN, 20-63 is DTLS, 128-191 is RTP, or RTCP when the second byte is a
 * payload type of 192-223. */
static void
ice_recv_cb (NiceAgent *agent, guint stream_id, guint component_id, guint size, gchar *buffer,
             gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;
  const guint8 *data = (const guint8 *) buffer;

  if (size < 2 || viewer->end != CIMS_WHEP_VIEWER_END_NONE)
    return;

  if (data[0] >= 20 && data[0] <= 63) {
    if (viewer->n_dtls_dropped < viewer->shared->options->dtls_drops) {
      viewer->n_dtls_dropped++;
      return;
    }
    if (viewer->dtls.ssl != NULL)
      dtls_status_handle (viewer, cims_whep_viewer_dtls_receive (&viewer->dtls, data, size));
  } else if (data[0] >= 128 && data[0] <= 191 && viewer->srtp.inbound != NULL) {
    if (data[1] >= 192 && data[1] <= 223)
      rtcp_handle (viewer, data, size);
    else
      rtp_handle (viewer, data, size);
  }
}

/* ---- RTCP and timers ------------------------------------------------------------ */

static void
report_send (CimsWhepViewer *viewer, gboolean with_pli, gint64 now_us)
{
  guint8 buffer[256 + SRTP_MAX_TRAILER];
  gsize size;
  int length;

  if (viewer->rtcp.media_ssrc == 0)
    viewer->rtcp.media_ssrc = viewer->answer.ssrc;

  size = cims_whep_viewer_rtcp_build (&viewer->rtcp, &viewer->stats, viewer->cname, with_pli, now_us,
                                      buffer, 256);
  if (size == 0)
    return;

  length = cims_whep_viewer_srtp_protect_rtcp (&viewer->srtp, buffer, size);
  if (length > 0)
    nice_agent_send (viewer->agent, viewer->stream_id, 1, (guint) length, (const char *) buffer);
}

static void
tick_rtcp (CimsWhepViewer *viewer, gint64 now_us)
{
  guint pli_interval_ms = viewer->shared->options->pli_interval_ms;
  gboolean wants_pli = pli_interval_ms > 0 && now_us >= viewer->next_pli_us;

  if (now_us < viewer->next_report_us && !wants_pli)
    return;

  report_send (viewer, wants_pli, now_us);
  viewer->next_report_us = now_us + REPORT_INTERVAL_US;
  if (wants_pli)
    viewer->next_pli_us = now_us + (gint64) pli_interval_ms * 1000;
}

static void
tick_dtls (CimsWhepViewer *viewer, gint64 now_us)
{
  if (viewer->dtls.ssl == NULL || viewer->dtls.is_connected)
    return;

  if (now_us - viewer->dtls.started_us > DTLS_HANDSHAKE_TIMEOUT_US) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_DTLS_FAILED, "The DTLS handshake did not finish within %d s",
                (int) (DTLS_HANDSHAKE_TIMEOUT_US / G_USEC_PER_SEC));
    return;
  }

  cims_whep_viewer_dtls_handle_timeout (&viewer->dtls);
}

void
cims_whep_viewer_tick (CimsWhepViewer *viewer, gint64 now_us)
{
  const CimsWhepViewerOptions *options = viewer->shared->options;
  gint64 last_activity_us;

  if (viewer->end != CIMS_WHEP_VIEWER_END_NONE || viewer->post_us == 0)
    return;

  tick_dtls (viewer, now_us);
  if (viewer->srtp.outbound != NULL && viewer->end == CIMS_WHEP_VIEWER_END_NONE)
    tick_rtcp (viewer, now_us);

  last_activity_us = MAX (viewer->stats.last_packet_us, viewer->post_us);
  if (now_us - last_activity_us > (gint64) options->idle_timeout_ms * 1000) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_IDLE, "No media packet for %u ms", options->idle_timeout_ms);
    return;
  }

  if (options->duration_s > 0 && viewer->answer_us != 0
      && now_us - viewer->answer_us >= (gint64) options->duration_s * G_USEC_PER_SEC)
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_DURATION, NULL);
}

/* ---- the answer ------------------------------------------------------------------ */

static gboolean
answer_apply (CimsWhepViewer *viewer)
{
  /* The viewer's answer to Janus contains a=setup:active. */
  CimsWhepViewerSetup offered = viewer->janus != NULL ? CIMS_WHEP_VIEWER_SETUP_ACTIVE
                                                      : viewer->shared->options->setup;
  CimsWhepViewerSetup answered = viewer->answer.setup;
  GSList *candidates = NULL;
  gboolean is_client;

  /* The answerer takes the DTLS role that the offer left to it (RFC 5763). */
  if ((offered == CIMS_WHEP_VIEWER_SETUP_ACTIVE && answered != CIMS_WHEP_VIEWER_SETUP_PASSIVE)
      || (offered == CIMS_WHEP_VIEWER_SETUP_PASSIVE && answered != CIMS_WHEP_VIEWER_SETUP_ACTIVE)) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_ANSWER_INVALID, "The offer said a=setup:%s and the answer a=setup:%s",
                cims_whep_viewer_setup_to_string (offered), cims_whep_viewer_setup_to_string (answered));
    return FALSE;
  }
  is_client = answered == CIMS_WHEP_VIEWER_SETUP_PASSIVE;

  nice_agent_set_remote_credentials (viewer->agent, viewer->stream_id, viewer->answer.ice_ufrag,
                                     viewer->answer.ice_pwd);
  for (guint i = 0; i < viewer->answer.candidates->len; i++) {
    NiceCandidate *candidate = nice_agent_parse_remote_candidate_sdp (
        viewer->agent, viewer->stream_id, g_ptr_array_index (viewer->answer.candidates, i));

    if (candidate != NULL)
      candidates = g_slist_append (candidates, candidate);
  }
  nice_agent_set_remote_candidates (viewer->agent, viewer->stream_id, 1, candidates);
  g_slist_free_full (candidates, (GDestroyNotify) nice_candidate_free);
  /* libnice has just attached its check timer, outside the agent group's
   * pass, where an attach does not wake the loop (worker-loop.c). Without
   * the wake-up, a viewer whose first hub check came before the SDP answer
   * would send its own first check only at the group's next resync, 1 s. */
  g_main_context_wakeup (viewer->agent_context);

  if (!cims_whep_viewer_dtls_start (&viewer->dtls, viewer->shared->identity, viewer->agent, viewer->stream_id,
                                    is_client)) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_DTLS_FAILED, "SSL_new() failed");
    return FALSE;
  }
  if (is_client && viewer->is_ice_connected)
    dtls_status_handle (viewer, cims_whep_viewer_dtls_handshake (&viewer->dtls));

  return TRUE;
}

/* Applies the SDP answer held back by --answer-delay-ms. */
static gboolean
answer_delay_cb (gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;

  viewer->answer_timer = NULL;
  if (viewer->end == CIMS_WHEP_VIEWER_END_NONE)
    answer_apply (viewer);
  return G_SOURCE_REMOVE;
}

static void
session_url_set (CimsWhepViewer *viewer, const char *location)
{
  if (location == NULL)
    return;

  viewer->session_url = g_uri_resolve_relative (viewer->shared->options->base_url, location,
                                                G_URI_FLAGS_NONE, NULL);
}

static void
post_done_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;
  g_autoptr (GBytes) body = NULL;
  g_autoptr (GError) error = NULL;
  const char *text;
  gsize size = 0;

  body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (body == NULL) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_POST_FAILED, "POST failed: %s", error->message);
    return;
  }

  viewer->status = soup_message_get_status (viewer->post);
  viewer->answer_us = g_get_monotonic_time ();
  text = g_bytes_get_data (body, &size);
  if (viewer->status != SOUP_STATUS_CREATED) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_POST_FAILED, "POST returned %u: %.*s", viewer->status,
                (int) MIN (size, 300), text != NULL ? text : "");
    return;
  }

  session_url_set (viewer, soup_message_headers_get_one (soup_message_get_response_headers (viewer->post),
                                                         "Location"));
  if (!cims_whep_viewer_answer_parse (text != NULL ? text : "", size, &viewer->answer, &error)) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_ANSWER_INVALID, "%s", error->message);
    return;
  }

  cims_whep_viewer_stats_init (&viewer->stats, viewer->answer.codec, 90000);
  if (viewer->shared->options->answer_delay_ms == 0) {
    answer_apply (viewer);
    return;
  }

  viewer->answer_timer = g_timeout_source_new (viewer->shared->options->answer_delay_ms);
  g_source_set_callback (viewer->answer_timer, answer_delay_cb, viewer, NULL);
  g_source_attach (viewer->answer_timer, viewer->shared->context);
  /* The context holds the only reference; the field is cleared before it ends. */
  g_source_unref (viewer->answer_timer);
}

/* ---- the offer and the POST --------------------------------------------------------- */

static char *
post_url (const CimsWhepViewerOptions *options)
{
  g_autofree char *camera = g_uri_escape_string (options->camera_id, NULL, FALSE);
  g_autofree char *client = NULL;

  if (options->client == NULL)
    return g_strdup_printf ("%s/whep/cameras/%s", options->base_url, camera);

  client = g_uri_escape_string (options->client, NULL, FALSE);
  return g_strdup_printf ("%s/whep/cameras/%s?client=%s", options->base_url, camera, client);
}

static void
post_send (CimsWhepViewer *viewer, const char *offer)
{
  const CimsWhepViewerOptions *options = viewer->shared->options;
  g_autofree char *url = post_url (options);
  g_autofree char *authorization = g_strdup_printf ("Bearer %s", options->token);
  g_autoptr (GBytes) body = g_bytes_new (offer, strlen (offer));
  SoupMessageHeaders *headers;

  viewer->post = soup_message_new ("POST", url);
  if (viewer->post == NULL) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_POST_FAILED, "Invalid WHEP URL %s", url);
    return;
  }

  headers = soup_message_get_request_headers (viewer->post);
  soup_message_headers_replace (headers, "Authorization", authorization);
  if (options->incident_number != NULL)
    soup_message_headers_replace (headers, "X-Incident-Number", options->incident_number);
  soup_message_set_request_body_from_bytes (viewer->post, "application/sdp", body);

  viewer->post_us = g_get_monotonic_time ();
  soup_session_send_and_read_async (viewer->shared->soup, viewer->post, G_PRIORITY_DEFAULT,
                                    viewer->cancellable, post_done_cb, viewer);
}

static GPtrArray *
local_candidate_lines (CimsWhepViewer *viewer)
{
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);
  GSList *candidates = nice_agent_get_local_candidates (viewer->agent, viewer->stream_id, 1);

  for (GSList *l = candidates; l != NULL; l = l->next)
    g_ptr_array_add (lines, nice_agent_generate_local_candidate_sdp (viewer->agent, l->data));

  g_slist_free_full (candidates, (GDestroyNotify) nice_candidate_free);
  return lines;
}

/* Writes a fingerprint of the right form that matches no certificate: the
 * real one with every byte inverted. */
static char *
fingerprint_corrupt (const char *fingerprint)
{
  char *copy = g_strdup (fingerprint);

  for (char *c = copy; *c != '\0'; c++)
    if (g_ascii_isxdigit (*c))
      *c = "FEDCBA9876543210"[g_ascii_xdigit_value (*c)];

  return copy;
}

/* ---- Janus: answering its offer ------------------------------------------------------ */

static void
janus_started_cb (CimsWhepViewerJanus *janus, const char *offer, const GError *error, gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;

  if (error != NULL) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_POST_FAILED, "Janus start failed: %s", error->message);
    return;
  }

  viewer->status = SOUP_STATUS_OK;
  viewer->answer_us = g_get_monotonic_time ();
}

/* Answers Janus's offer with the viewer's candidates, a=setup:active (the
 * viewer is the DTLS client) and the offered payload type, then applies the
 * offer to the ICE agent and DTLS as a WHEP answer would be. */
static void
janus_answer (CimsWhepViewer *viewer, GPtrArray *candidates)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *ufrag = NULL;
  g_autofree char *pwd = NULL;
  g_autofree char *answer = NULL;
  CimsWhepViewerOfferParams params = { 0 };

  viewer->has_answered = TRUE;
  if (!cims_whep_viewer_remote_offer_parse (viewer->janus_offer, strlen (viewer->janus_offer), &viewer->answer,
                                            &error)) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_ANSWER_INVALID, "%s", error->message);
    return;
  }
  if (viewer->answer.codec != CIMS_CODEC_H264) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_ANSWER_INVALID, "Janus offered %s; the viewer answers H.264 only",
                cims_codec_to_string (viewer->answer.codec));
    return;
  }

  nice_agent_get_local_credentials (viewer->agent, viewer->stream_id, &ufrag, &pwd);
  params.ice_ufrag = ufrag;
  params.ice_pwd = pwd;
  params.fingerprint_sha256 = viewer->shared->identity->fingerprint_sha256;
  params.setup = CIMS_WHEP_VIEWER_SETUP_ACTIVE;
  params.candidates = candidates;
  params.answer_payload_type = viewer->answer.payload_type;
  params.answer_mid = viewer->answer.mid;
  answer = cims_whep_viewer_offer_build (&params);

  cims_whep_viewer_stats_init (&viewer->stats, viewer->answer.codec, 90000);
  if (answer_apply (viewer))
    cims_whep_viewer_janus_start (viewer->janus, answer, janus_started_cb, viewer);
}

static void
janus_answer_if_ready (CimsWhepViewer *viewer)
{
  g_autoptr (GPtrArray) candidates = NULL;

  if (!viewer->is_gathered || viewer->janus_offer == NULL || viewer->has_answered
      || viewer->end != CIMS_WHEP_VIEWER_END_NONE)
    return;

  candidates = local_candidate_lines (viewer);
  if (candidates->len == 0) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_POST_FAILED, "libnice gathered no candidate on %s",
                viewer->shared->options->local_address);
    return;
  }
  janus_answer (viewer, candidates);
}

static void
janus_offer_cb (CimsWhepViewerJanus *janus, const char *offer, const GError *error, gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;

  if (error != NULL) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_POST_FAILED, "Janus watch failed: %s", error->message);
    return;
  }

  viewer->janus_offer = g_strdup (offer);
  janus_answer_if_ready (viewer);
}

/* ---- WHEP: the offer ------------------------------------------------------------------ */

static void
gathering_done_cb (NiceAgent *agent, guint stream_id, gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;
  const CimsWhepViewerOptions *options = viewer->shared->options;
  g_autofree char *ufrag = NULL;
  g_autofree char *pwd = NULL;
  g_autofree char *fingerprint = NULL;
  g_autofree char *offer = NULL;
  g_autoptr (GPtrArray) candidates = NULL;
  CimsWhepViewerOfferParams params = { 0 };

  if (viewer->janus != NULL) {
    viewer->is_gathered = TRUE;
    janus_answer_if_ready (viewer);
    return;
  }

  candidates = local_candidate_lines (viewer);
  if (viewer->post != NULL || viewer->end != CIMS_WHEP_VIEWER_END_NONE)
    return;
  if (candidates->len == 0) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_POST_FAILED, "libnice gathered no candidate on %s",
                options->local_address);
    return;
  }

  nice_agent_get_local_credentials (agent, stream_id, &ufrag, &pwd);
  fingerprint = options->has_bad_fingerprint ? fingerprint_corrupt (viewer->shared->identity->fingerprint_sha256)
                                             : g_strdup (viewer->shared->identity->fingerprint_sha256);
  params.ice_ufrag = ufrag;
  params.ice_pwd = pwd;
  params.fingerprint_sha256 = fingerprint;
  params.setup = options->setup;
  params.candidates = candidates;
  params.offers_vp8 = options->offers_vp8;
  params.offers_h265 = options->offers_h265;
  params.omits_h264 = options->omits_h264;

  offer = cims_whep_viewer_offer_build (&params);
  post_send (viewer, offer);
}

/* Readies the socket ICE picked: a larger receive buffer, and kernel
 * receive timestamps for the latency histograms. */
static void
socket_prepare (CimsWhepViewer *viewer)
{
  g_autoptr (GSocket) socket = nice_agent_get_selected_socket (viewer->agent, viewer->stream_id, 1);
  int size = SOCKET_RECEIVE_BUFFER_BYTES;

  if (socket == NULL)
    return;

  viewer->socket_fd = g_socket_get_fd (socket);
  if (setsockopt (viewer->socket_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) != 0)
    g_warning ("viewer %u: setsockopt(SO_RCVBUF, %d) failed: %s", viewer->index, size, g_strerror (errno));
  if (viewer->shared->socket_latency != NULL)
    cims_whep_viewer_socket_timestamps_enable (viewer->socket_fd);
}

static void
ice_state_changed_cb (NiceAgent *agent, guint stream_id, guint component_id, guint state, gpointer user_data)
{
  CimsWhepViewer *viewer = user_data;

  if (viewer->end != CIMS_WHEP_VIEWER_END_NONE)
    return;

  if (state == NICE_COMPONENT_STATE_CONNECTED || state == NICE_COMPONENT_STATE_READY) {
    if (!viewer->is_ice_connected)
      socket_prepare (viewer);
    viewer->is_ice_connected = TRUE;
    if (viewer->dtls.ssl != NULL && viewer->dtls.is_client)
      dtls_status_handle (viewer, cims_whep_viewer_dtls_handshake (&viewer->dtls));
    return;
  }

  if (state == NICE_COMPONENT_STATE_FAILED)
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_ICE_FAILED, NULL);
}

void
cims_whep_viewer_start (CimsWhepViewer *viewer)
{
  NiceAddress address;

  const CimsWhepViewerOptions *options = viewer->shared->options;

  /* The offerer controls ICE (RFC 8445 6.1.1): the viewer in WHEP, Janus in
   * Janus mode. */
  viewer->agent_context = cims_worker_loop_join_group (viewer->shared->loop);
  viewer->agent = nice_agent_new (viewer->agent_context, NICE_COMPATIBILITY_RFC5245);
  g_object_set (viewer->agent, "controlling-mode", !options->is_janus, "ice-tcp", FALSE, "upnp", FALSE, NULL);

  /* One host candidate on --local-address (127.0.0.1 by default, where the
   * viewer and hub share loopback). */
  nice_address_init (&address);
  nice_address_set_from_string (&address, options->local_address);
  nice_agent_add_local_address (viewer->agent, &address);

  viewer->stream_id = nice_agent_add_stream (viewer->agent, 1);
  g_signal_connect (viewer->agent, "candidate-gathering-done", G_CALLBACK (gathering_done_cb), viewer);
  g_signal_connect (viewer->agent, "component-state-changed", G_CALLBACK (ice_state_changed_cb), viewer);
  nice_agent_attach_recv (viewer->agent, viewer->stream_id, 1, viewer->agent_context, ice_recv_cb, viewer);

  /* Before gathering, which may finish at once and must see Janus mode. */
  if (options->is_janus)
    viewer->janus = cims_whep_viewer_janus_new (viewer->shared->soup, options->base_url,
                                                options->janus_mountpoint_id, viewer->cancellable);

  if (!nice_agent_gather_candidates (viewer->agent, viewer->stream_id)) {
    viewer_end (viewer, CIMS_WHEP_VIEWER_END_POST_FAILED, "nice_agent_gather_candidates() failed");
    return;
  }

  if (viewer->janus != NULL) {
    viewer->post_us = g_get_monotonic_time ();
    cims_whep_viewer_janus_watch (viewer->janus, janus_offer_cb, viewer);
  }
}

/* ---- results ---------------------------------------------------------------------- */

gboolean
cims_whep_viewer_is_successful (CimsWhepViewer *viewer)
{
  guint expected_status = viewer->shared->options->expected_status;

  if (expected_status != 0)
    return viewer->status == expected_status;

  return SOUP_STATUS_IS_SUCCESSFUL (viewer->status) && viewer->stats.first_keyframe_us != 0;
}

static double
ms_since_post (CimsWhepViewer *viewer, gint64 time_us)
{
  if (time_us == 0 || viewer->post_us == 0)
    return -1;

  return (time_us - viewer->post_us) / 1000.0;
}

double
cims_whep_viewer_get_first_keyframe_ms (CimsWhepViewer *viewer)
{
  return ms_since_post (viewer, viewer->stats.first_keyframe_us);
}

static void
member_ms_add (JsonBuilder *builder, const char *name, double ms)
{
  json_builder_set_member_name (builder, name);
  if (ms < 0)
    json_builder_add_null_value (builder);
  else
    json_builder_add_double_value (builder, ms);
}

static void
member_unix_ms_add (JsonBuilder *builder, CimsWhepViewer *viewer, const char *name, gint64 monotonic_us)
{
  json_builder_set_member_name (builder, name);
  if (monotonic_us == 0)
    json_builder_add_null_value (builder);
  else
    json_builder_add_int_value (builder, (monotonic_us + viewer->shared->real_minus_monotonic_us) / 1000);
}

static void
member_string_add (JsonBuilder *builder, const char *name, const char *value)
{
  json_builder_set_member_name (builder, name);
  if (value == NULL)
    json_builder_add_null_value (builder);
  else
    json_builder_add_string_value (builder, value);
}

static void
member_int_add (JsonBuilder *builder, const char *name, gint64 value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_int_value (builder, value);
}

static char *
builder_to_line (JsonBuilder *builder)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (builder);

  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

static void
result_media_add (JsonBuilder *builder, CimsWhepViewer *viewer)
{
  const CimsWhepViewerStats *stats = &viewer->stats;

  member_int_add (builder, "packets", (gint64) stats->n_packets);
  member_int_add (builder, "lost", (gint64) stats->n_lost);
  member_int_add (builder, "bytes", (gint64) stats->n_bytes);
  member_int_add (builder, "undecryptable", viewer->n_undecryptable);
  member_int_add (builder, "dtls_dropped", viewer->n_dtls_dropped);
  member_string_add (builder, "codec", stats->codec != CIMS_CODEC_UNKNOWN ? cims_codec_to_string (stats->codec) : NULL);
  json_builder_set_member_name (builder, "width");
  if (stats->width != 0)
    json_builder_add_int_value (builder, stats->width);
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "height");
  if (stats->height != 0)
    json_builder_add_int_value (builder, stats->height);
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "sizes");
  json_builder_begin_array (builder);
  for (guint i = 0; i < stats->n_sizes; i++) {
    g_autofree char *size = g_strdup_printf ("%ux%u", stats->sizes[i][0], stats->sizes[i][1]);

    json_builder_add_string_value (builder, size);
  }
  json_builder_end_array (builder);
  member_int_add (builder, "keyframes", stats->n_keyframes);
  member_ms_add (builder, "longest_silence_ms",
                 stats->first_keyframe_us != 0 ? stats->longest_silence_us / 1000.0 : -1);
  json_builder_set_member_name (builder, "join_burst_packets");
  if (viewer->join_burst_max != 0)
    json_builder_add_int_value (builder, viewer->join_burst_max);
  else
    json_builder_add_null_value (builder);
  member_string_add (builder, "srtp_profile", viewer->srtp_profile_name);
  member_string_add (builder, "dtls_role", viewer->answer.setup == CIMS_WHEP_VIEWER_SETUP_PASSIVE ? "client"
                                           : viewer->answer.setup == CIMS_WHEP_VIEWER_SETUP_ACTIVE ? "server"
                                           : NULL);
}

char *
cims_whep_viewer_result_to_json (CimsWhepViewer *viewer)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  member_int_add (builder, "viewer", viewer->index);
  member_int_add (builder, "status", viewer->status);
  member_string_add (builder, "session_url", viewer->session_url);
  json_builder_set_member_name (builder, "delete_status");
  if (viewer->delete_status != 0)
    json_builder_add_int_value (builder, viewer->delete_status);
  else
    json_builder_add_null_value (builder);
  member_ms_add (builder, "answer_ms", ms_since_post (viewer, viewer->answer_us));
  member_ms_add (builder, "dtls_connected_ms", ms_since_post (viewer, viewer->dtls_connected_us));
  member_ms_add (builder, "first_packet_ms", ms_since_post (viewer, viewer->stats.first_packet_us));
  member_ms_add (builder, "first_keyframe_ms", ms_since_post (viewer, viewer->stats.first_keyframe_us));
  result_media_add (builder, viewer);
  member_string_add (builder, "ended_by", cims_whep_viewer_end_to_string (viewer->end));
  member_unix_ms_add (builder, viewer, "post_unix_ms", viewer->post_us);
  member_unix_ms_add (builder, viewer, "first_packet_unix_ms", viewer->stats.first_packet_us);
  member_unix_ms_add (builder, viewer, "last_packet_unix_ms", viewer->stats.last_packet_us);
  member_unix_ms_add (builder, viewer, "last_keyframe_unix_ms", viewer->stats.last_keyframe_us);
  member_unix_ms_add (builder, viewer, "close_notify_unix_ms", viewer->close_notify_us);
  member_unix_ms_add (builder, viewer, "ended_unix_ms", viewer->ended_us);
  member_string_add (builder, "error", viewer->error_message);
  json_builder_end_object (builder);

  return builder_to_line (builder);
}

char *
cims_whep_viewer_event_to_json (CimsWhepViewer *viewer, const char *event)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  member_string_add (builder, "event", event);
  member_int_add (builder, "viewer", viewer->index);
  member_int_add (builder, "status", viewer->status);
  member_ms_add (builder, "first_keyframe_ms", ms_since_post (viewer, viewer->stats.first_keyframe_us));
  member_int_add (builder, "packets", (gint64) viewer->stats.n_packets);
  member_string_add (builder, "ended_by", cims_whep_viewer_end_to_string (viewer->end));
  member_unix_ms_add (builder, viewer, "unix_ms", g_get_monotonic_time ());
  json_builder_end_object (builder);

  return builder_to_line (builder);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* RTSP ingest of one camera: an rtspsrc that sets up only the first H.264 or
 * H.265 video track and hands its RTP packets, not depayloaded, to the caller,
 * with reconnects and backoff. Classifying and caching the packets is left to
 * nal-classify.c and keyframe-cache.c. */
#include "pipelines/pipelines-private.h"

#include <gst/gst.h>
#include <gst/app/gstappsink.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

/* A connection that has been PLAYING this long resets the backoff. */
#define INGEST_STABLE_PLAYING_US (10 * G_USEC_PER_SEC)
#define INGEST_BACKOFF_JITTER 0.2
#define INGEST_APPSINK_MAX_BUFFERS 200
/* rtspsrc waits this long for the first UDP packet before it retries over
 * TCP. The wait is a quarter of connect_timeout_ms, clamped to this range. */
#define INGEST_UDP_TIMEOUT_MIN_MS 1000
#define INGEST_UDP_TIMEOUT_MAX_MS 3000
#define INGEST_WATCHDOG_MAX_INTERVAL_MS 500
/* The ingest asks rtspsrc for a keep-alive this often while playing: with
 * GStreamer 1.22 over TCP, a camera with Session timeout=8 got no keep-alive
 * from rtspsrc within 8 s (seen in the camera-faults test). rtspsrc sends the
 * requested one only when Public lists GET_PARAMETER, which
 * rtsp-keep-alive-ext.c ensures. NOTE: a camera whose session timeout is
 * below 5 s still drops the session and is reconnected. */
#define INGEST_KEEP_ALIVE_INTERVAL_US (5 * G_USEC_PER_SEC)

/* One connection attempt: one pipeline and what its streaming threads share
 * with the main context. Refcounted because a pending main-context callback
 * may outlive the attempt. */
typedef struct {
  CimsIngest *ingest;           /* set and cleared on the main context only */
  GstElement *pipeline;
  GstElement *funnel;
  GstElement *rtspsrc;          /* owned by the pipeline */
  gint64 last_keep_alive_us;    /* main context */
  GSource *bus_source;
  gint64 started_us;
  gint64 playing_since_us;      /* main context; 0 until PLAYING */
  _Atomic gint64 last_packet_us;
  gint has_packet;              /* atomic flag: first packet seen */
  guint epoch;                  /* atomic: epoch of the linked video pad */
  guint n_invalid_packets;      /* atomic */

  GMutex lock;                  /* protects the three fields below */
  gint video_stream_index;      /* -1 until select-stream picks a track */
  gchar *unsupported_encoding;  /* first video encoding that was not H.264/H.265 */
  gboolean has_unsupported_pad; /* a video pad of that encoding was added */
} IngestConnection;

struct _CimsIngest {
  gchar *camera_id;
  gchar *url;
  gchar *log_url;               /* url without user information */
  gchar *username;
  gchar *password;
  gchar *url_password;          /* password embedded in url, if any */
  guint latency_ms;
  guint connect_timeout_ms;
  guint reconnect_min_ms;
  guint reconnect_max_ms;

  CimsIngestCallbacks callbacks;
  gpointer user_data;
  GMainContext *main_context;

  CimsIngestState state;
  IngestConnection *connection; /* NULL between attempts */
  GSource *retry_source;
  GSource *watchdog_source;
  guint next_backoff_ms;
  guint n_epochs;               /* atomic: epochs handed out */
};

static void connection_fail (IngestConnection *connection, const char *reason);

/* ---- logging ----------------------------------------------------------- */

/* Replaces every occurrence of the camera's passwords in @text, so that
 * GStreamer messages that quote a URL never reach the log with them. */
static gchar *
ingest_redact (CimsIngest *ingest, const char *text)
{
  const char *secrets[] = { ingest->password, ingest->url_password };
  gchar *redacted = g_strdup (text);

  for (gsize i = 0; i < G_N_ELEMENTS (secrets); i++)
    {
      GString *buffer;

      if (secrets[i] == NULL || secrets[i][0] == '\0')
        continue;
      buffer = g_string_new (redacted);
      g_free (redacted);
      g_string_replace (buffer, secrets[i], "***", 0);
      redacted = g_string_free (buffer, FALSE);
    }

  return redacted;
}

static void G_GNUC_PRINTF (3, 4)
ingest_log (CimsIngest *ingest, GLogLevelFlags level, const char *format, ...)
{
  va_list args;
  g_autofree gchar *text = NULL;
  g_autofree gchar *redacted = NULL;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  redacted = ingest_redact (ingest, text);

  g_log_structured (G_LOG_DOMAIN, level,
                    "CIMS_CAMERA_ID", ingest->camera_id,
                    "MESSAGE", "camera=%s: %s", ingest->camera_id, redacted);
}

/* Returns (transfer full) @url without its user information, for logs. */
static gchar *
url_strip_userinfo (const char *url, gchar **password)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_HAS_PASSWORD, NULL);

  if (uri == NULL)
    return g_strdup ("(invalid URL)");

  *password = g_strdup (g_uri_get_password (uri));

  return g_uri_to_string_partial (uri, G_URI_HIDE_USERINFO);
}

/* ---- state ------------------------------------------------------------- */

static const char *
ingest_state_to_string (CimsIngestState state)
{
  switch (state)
    {
    case CIMS_INGEST_STATE_CONNECTING:
      return "connecting";
    case CIMS_INGEST_STATE_PLAYING:
      return "playing";
    case CIMS_INGEST_STATE_RECONNECTING:
      return "reconnecting";
    case CIMS_INGEST_STATE_STOPPED:
    default:
      return "stopped";
    }
}

/* Reports every change, and every new failure while RECONNECTING so the
 * caller sees each reason. Main context. */
static void
ingest_set_state (CimsIngest *ingest, CimsIngestState state, const char *message)
{
  if (state == ingest->state && state != CIMS_INGEST_STATE_RECONNECTING)
    return;

  ingest_log (ingest, G_LOG_LEVEL_DEBUG, "state %s -> %s", ingest_state_to_string (ingest->state),
              ingest_state_to_string (state));
  ingest->state = state;
  if (ingest->callbacks.on_state != NULL)
    ingest->callbacks.on_state (state, message, ingest->user_data);
}

/* ---- connection lifetime ------------------------------------------------ */

static void
connection_clear (IngestConnection *connection)
{
  g_assert (connection->pipeline == NULL);
  g_free (connection->unsupported_encoding);
  g_mutex_clear (&connection->lock);
}

static IngestConnection *
connection_ref (IngestConnection *connection)
{
  return g_atomic_rc_box_acquire (connection);
}

static void
connection_unref (IngestConnection *connection)
{
  g_atomic_rc_box_release_full (connection, (GDestroyNotify) connection_clear);
}

/* Returns the ingest when @connection is still its current attempt, NULL
 * when the attempt was torn down. Main context. */
static CimsIngest *
connection_get_ingest (IngestConnection *connection)
{
  CimsIngest *ingest = connection->ingest;

  if (ingest == NULL || ingest->connection != connection)
    return NULL;

  return ingest;
}

/* Runs @function on the main context, never on the calling streaming thread:
 * g_main_context_invoke() would call it right here whenever this thread can
 * acquire the main context. */
static void
connection_invoke (IngestConnection *connection, GSourceFunc function)
{
  g_autoptr(GSource) source = g_idle_source_new ();

  g_source_set_callback (source, function, connection_ref (connection), (GDestroyNotify) connection_unref);
  g_source_attach (source, connection->ingest->main_context);
}

/* Stops the pipeline and detaches @connection from its ingest. Setting the
 * pipeline to NULL joins rtspsrc's and the appsink's streaming threads, so no
 * packet callback runs after this returns. Main context. */
static void
connection_close (IngestConnection *connection)
{
  CimsIngest *ingest = connection->ingest;
  guint n_invalid = g_atomic_int_get (&connection->n_invalid_packets);

  if (connection->bus_source != NULL)
    {
      g_source_destroy (connection->bus_source);
      g_clear_pointer (&connection->bus_source, g_source_unref);
    }

  /* NOTE: rtspsrc sends TEARDOWN while going to NULL and waits up to its
   * teardown-timeout (100 ms by default), which blocks the main context. */
  gst_element_set_state (connection->pipeline, GST_STATE_NULL);
  gst_clear_object (&connection->pipeline);
  connection->funnel = NULL;

  if (n_invalid > 0)
    ingest_log (ingest, G_LOG_LEVEL_WARNING, "dropped %u packets that were not valid RTP", n_invalid);

  if (ingest->connection == connection)
    ingest->connection = NULL;
  connection->ingest = NULL;
  connection_unref (connection);
}

/* ---- codec and format ---------------------------------------------------- */

static CimsCodec
codec_from_encoding (const char *encoding)
{
  if (encoding == NULL)
    return CIMS_CODEC_UNKNOWN;
  if (g_ascii_strcasecmp (encoding, "H264") == 0)
    return CIMS_CODEC_H264;
  if (g_ascii_strcasecmp (encoding, "H265") == 0)
    return CIMS_CODEC_H265;

  return CIMS_CODEC_UNKNOWN;
}

/* Decodes a comma-separated list of base64 NAL units into @nal_units. */
static void
parameter_sets_add_base64 (GPtrArray *nal_units, const char *list)
{
  g_auto(GStrv) items = NULL;

  if (list == NULL)
    return;

  items = g_strsplit (list, ",", -1);
  for (gsize i = 0; items[i] != NULL; i++)
    {
      gsize size = 0;
      guchar *data;

      g_strstrip (items[i]);
      if (items[i][0] == '\0')
        continue;
      data = g_base64_decode (items[i], &size);
      if (size == 0)
        {
          g_free (data);
          continue;
        }
      g_ptr_array_add (nal_units, g_bytes_new_take (data, size));
    }
}

/* Returns (transfer full) the out-of-band parameter sets of the SDP, as
 * rtspsrc copies them from a=fmtp into the pad caps. */
static GPtrArray *
parameter_sets_from_caps (CimsCodec codec, const GstStructure *s)
{
  GPtrArray *nal_units = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  if (codec == CIMS_CODEC_H264)
    {
      parameter_sets_add_base64 (nal_units, gst_structure_get_string (s, "sprop-parameter-sets"));
    }
  else
    {
      parameter_sets_add_base64 (nal_units, gst_structure_get_string (s, "sprop-vps"));
      parameter_sets_add_base64 (nal_units, gst_structure_get_string (s, "sprop-sps"));
      parameter_sets_add_base64 (nal_units, gst_structure_get_string (s, "sprop-pps"));
    }

  return nal_units;
}

/* rtspsrc puts each a=fmtp parameter into the caps as a string field, next
 * to string fields of its own (media, encoding-name) and other SDP attributes
 * (a-*, x-*, rtcp-fb-*, extmap-*, ssrc-*), which are not fmtp parameters. */
static gboolean
caps_field_is_fmtp (const char *name)
{
  static const char *const not_fmtp[] = { "media", "encoding-name", "encoding-params" };
  static const char *const not_fmtp_prefixes[] = { "a-", "x-", "rtcp-fb-", "extmap-", "ssrc-" };

  for (gsize i = 0; i < G_N_ELEMENTS (not_fmtp); i++)
    if (strcmp (name, not_fmtp[i]) == 0)
      return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (not_fmtp_prefixes); i++)
    if (g_str_has_prefix (name, not_fmtp_prefixes[i]))
      return FALSE;

  return TRUE;
}

static gboolean
fmtp_append_field_cb (GQuark field_id, const GValue *value, gpointer user_data)
{
  GString *fmtp = user_data;
  const char *name = g_quark_to_string (field_id);

  if (!G_VALUE_HOLDS_STRING (value) || !caps_field_is_fmtp (name))
    return TRUE;

  if (fmtp->len > 0)
    g_string_append_c (fmtp, ';');
  g_string_append_printf (fmtp, "%s=%s", name, g_value_get_string (value));

  return TRUE;
}

/* Returns (transfer full) the fmtp parameters rebuilt from the pad caps, in
 * the form "key=value;key=value". */
static gchar *
fmtp_from_caps (const GstStructure *s)
{
  GString *fmtp = g_string_new (NULL);

  gst_structure_foreach (s, fmtp_append_field_cb, fmtp);

  return g_string_free (fmtp, FALSE);
}

/* ---- streaming-thread callbacks ------------------------------------------ */

static gboolean
connection_playing_cb (gpointer user_data)
{
  IngestConnection *connection = user_data;
  CimsIngest *ingest = connection_get_ingest (connection);
  g_autofree gchar *message = NULL;

  if (ingest == NULL)
    return G_SOURCE_REMOVE;

  connection->playing_since_us = g_get_monotonic_time ();
  message = g_strdup_printf ("video RTP is flowing from %s (epoch %u)", ingest->log_url,
                             g_atomic_int_get (&connection->epoch));
  ingest_log (ingest, G_LOG_LEVEL_MESSAGE, "%s", message);
  ingest_set_state (ingest, CIMS_INGEST_STATE_PLAYING, message);

  return G_SOURCE_REMOVE;
}

static void
connection_handle_buffer (GstBuffer *buffer, gpointer user_data)
{
  IngestConnection *connection = user_data;
  CimsIngest *ingest = connection->ingest;
  gint64 now_us = g_get_monotonic_time ();
  g_autoptr(CimsRtpPacket) packet = cims_rtp_packet_new_from_buffer (buffer, g_atomic_int_get (&connection->epoch),
                                                                     now_us);

  /* Counted, and logged once at close: a packet-path log would flood. */
  if (packet == NULL)
    {
      g_atomic_int_inc (&connection->n_invalid_packets);
      return;
    }

  atomic_store (&connection->last_packet_us, now_us);
  if (g_atomic_int_compare_and_exchange (&connection->has_packet, 0, 1))
    connection_invoke (connection, connection_playing_cb);

  ingest->callbacks.on_packet (packet, ingest->user_data);
}

static GstFlowReturn
appsink_new_sample_cb (GstAppSink *appsink, gpointer user_data)
{
  return cims_appsink_pull_buffers (appsink, connection_handle_buffer, user_data);
}

/* Picks the first H.264 or H.265 video track of the SDP. Every other track
 * (audio, ONVIF metadata, further video) is never SETUP, so its media never
 * reaches the hub. Called on rtspsrc's thread for each SDP media, again on
 * each reconnect that rtspsrc makes by itself, which keeps the same pick. */
static gboolean
rtspsrc_select_stream_cb (GstElement *rtspsrc, guint stream_index, GstCaps *caps, gpointer user_data)
{
  IngestConnection *connection = user_data;
  const GstStructure *s = gst_caps_get_structure (caps, 0);
  const char *media = gst_structure_get_string (s, "media");
  const char *encoding = gst_structure_get_string (s, "encoding-name");
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&connection->lock);

  if (connection->video_stream_index >= 0)
    return stream_index == (guint) connection->video_stream_index;

  if (g_strcmp0 (media, "video") != 0)
    {
      ingest_log (connection->ingest, G_LOG_LEVEL_DEBUG, "not setting up %s track %u (%s)",
                  media != NULL ? media : "unknown", stream_index, encoding != NULL ? encoding : "unknown");
      return FALSE;
    }

  if (codec_from_encoding (encoding) == CIMS_CODEC_UNKNOWN)
    {
      if (connection->unsupported_encoding == NULL)
        connection->unsupported_encoding = g_strdup (encoding != NULL ? encoding : "unknown");
      return FALSE;
    }

  connection->video_stream_index = stream_index;

  return TRUE;
}

static gboolean
connection_unsupported_cb (gpointer user_data)
{
  IngestConnection *connection = user_data;

  if (connection_get_ingest (connection) != NULL)
    connection_fail (connection, "unsupported video codec");

  return G_SOURCE_REMOVE;
}

/* Records a video pad whose codec the hub does not relay and has the main
 * context stop the ingest. */
static void
connection_reject_pad (IngestConnection *connection, const char *encoding)
{
  g_mutex_lock (&connection->lock);
  g_free (connection->unsupported_encoding);
  connection->unsupported_encoding = g_strdup (encoding != NULL ? encoding : "unknown");
  connection->has_unsupported_pad = TRUE;
  g_mutex_unlock (&connection->lock);

  connection_invoke (connection, connection_unsupported_cb);
}

/* Starts a new epoch for a video pad with caps @s and passes its format to
 * on_format. */
static void
connection_report_format (IngestConnection *connection, CimsCodec codec, const GstStructure *s)
{
  CimsIngest *ingest = connection->ingest;
  gint clock_rate = 0;
  guint epoch;
  g_autofree gchar *fmtp = fmtp_from_caps (s);
  g_autoptr(GPtrArray) parameter_sets = parameter_sets_from_caps (codec, s);

  gst_structure_get_int (s, "clock-rate", &clock_rate);
  epoch = (guint) g_atomic_int_add (&ingest->n_epochs, 1) + 1;
  g_atomic_int_set (&connection->epoch, epoch);
  ingest_log (ingest, G_LOG_LEVEL_INFO, "video track %s/%d, %u out-of-band parameter sets, epoch %u",
              cims_codec_to_string (codec), clock_rate, parameter_sets->len, epoch);

  if (ingest->callbacks.on_format != NULL)
    ingest->callbacks.on_format (codec, (guint) clock_rate, fmtp, parameter_sets, epoch, ingest->user_data);
}

/* Links a new rtspsrc video pad to the funnel in front of the appsink and
 * starts a new epoch. Runs on rtspsrc's thread before the pad's first
 * packet, so on_format always precedes the packets of its epoch. */
static void
rtspsrc_pad_added_cb (GstElement *rtspsrc, GstPad *pad, gpointer user_data)
{
  IngestConnection *connection = user_data;
  g_autoptr(GstCaps) caps = gst_pad_query_caps (pad, NULL);
  g_autoptr(GstPad) funnel_pad = NULL;
  const GstStructure *s;
  CimsCodec codec;

  if (gst_caps_is_empty (caps) || gst_caps_is_any (caps))
    return;
  s = gst_caps_get_structure (caps, 0);
  if (g_strcmp0 (gst_structure_get_string (s, "media"), "video") != 0)
    return;

  codec = codec_from_encoding (gst_structure_get_string (s, "encoding-name"));
  if (codec == CIMS_CODEC_UNKNOWN)
    {
      connection_reject_pad (connection, gst_structure_get_string (s, "encoding-name"));
      return;
    }

  connection_report_format (connection, codec, s);

  /* NOTE: a camera that changes SSRC gets a second pad; until rtspsrc
   * removes the old pad, its packets also carry the new epoch. */
  funnel_pad = gst_element_request_pad_simple (connection->funnel, "sink_%u");
  if (gst_pad_link (pad, funnel_pad) != GST_PAD_LINK_OK)
    {
      ingest_log (connection->ingest, G_LOG_LEVEL_WARNING, "failed to link the video pad %s", GST_PAD_NAME (pad));
      gst_element_release_request_pad (connection->funnel, funnel_pad);
      return;
    }
  g_object_set_data_full (G_OBJECT (pad), "cims-funnel-pad", gst_object_ref (funnel_pad), gst_object_unref);
}

/* Gives back the funnel pad of a video pad that rtspsrc removes, e.g. when
 * it reconnects over TCP after the UDP timeout. */
static void
rtspsrc_pad_removed_cb (GstElement *rtspsrc, GstPad *pad, gpointer user_data)
{
  IngestConnection *connection = user_data;
  GstPad *funnel_pad = g_object_get_data (G_OBJECT (pad), "cims-funnel-pad");

  if (funnel_pad != NULL && connection->funnel != NULL)
    gst_element_release_request_pad (connection->funnel, funnel_pad);
}

/* ---- bus ----------------------------------------------------------------- */

/* Returns the last line of a GStreamer debug string, where rtspsrc puts the
 * camera's own words ("Service Unavailable (503)"), or NULL when there is
 * none or it contains a URL, which may carry the camera's credentials. */
static const gchar *
debug_cause (const gchar *debug)
{
  const gchar *last_line;

  if (debug == NULL)
    return NULL;

  last_line = strrchr (debug, '\n');
  last_line = last_line != NULL ? last_line + 1 : NULL;
  if (last_line == NULL || last_line[0] == '\0' || strstr (last_line, "://") != NULL)
    return NULL;

  return last_line;
}

/* Returns (transfer full) "<element>: <error text> (<cause>)" for an ERROR
 * or WARNING, or "<element>: <cause>" when the cause begins with the text. */
static gchar *
bus_message_describe (GstMessage *message)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *debug = NULL;
  const gchar *cause;

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR)
    gst_message_parse_error (message, &error, &debug);
  else
    gst_message_parse_warning (message, &error, &debug);

  /* rtspsrc reports a 401 response as this resource error. */
  if (g_error_matches (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED))
    return g_strdup_printf ("%s: %s (RTSP 401 Unauthorized: check the camera's username and password)",
                            GST_MESSAGE_SRC_NAME (message), error->message);

  /* "Not found" with the cause "Not Found (404)" reads best as the cause. */
  cause = debug_cause (debug);
  if (cause != NULL && g_ascii_strncasecmp (cause, error->message, strlen (error->message)) == 0)
    return g_strdup_printf ("%s: %s", GST_MESSAGE_SRC_NAME (message), cause);
  if (cause != NULL)
    return g_strdup_printf ("%s: %s (%s)", GST_MESSAGE_SRC_NAME (message), error->message, cause);

  return g_strdup_printf ("%s: %s", GST_MESSAGE_SRC_NAME (message), error->message);
}

static gboolean
bus_message_cb (GstBus *bus, GstMessage *message, gpointer user_data)
{
  IngestConnection *connection = user_data;
  CimsIngest *ingest = connection_get_ingest (connection);
  g_autofree gchar *description = NULL;

  if (ingest == NULL)
    return G_SOURCE_REMOVE;

  switch (GST_MESSAGE_TYPE (message))
    {
    case GST_MESSAGE_ERROR:
      description = bus_message_describe (message);
      connection_fail (connection, description);
      return G_SOURCE_REMOVE;

    case GST_MESSAGE_EOS:
      connection_fail (connection, "end of stream from the camera");
      return G_SOURCE_REMOVE;

    case GST_MESSAGE_WARNING:
      /* e.g. rtspsrc falling back to TCP when no UDP packet arrives */
      description = bus_message_describe (message);
      ingest_log (ingest, G_LOG_LEVEL_INFO, "%s", description);
      return G_SOURCE_CONTINUE;

    default:
      return G_SOURCE_CONTINUE;
    }
}

/* ---- opening a connection ------------------------------------------------ */

static guint
ingest_udp_timeout_ms (CimsIngest *ingest)
{
  return CLAMP (ingest->connect_timeout_ms / 4, INGEST_UDP_TIMEOUT_MIN_MS, INGEST_UDP_TIMEOUT_MAX_MS);
}

/* rtspsrc 1.22 with its default protocols (udp, udp-mcast and tcp) first
 * SETUPs over UDP. It moves to TCP interleaved when the server rejects UDP
 * (461 Unsupported Transport), or when no UDP packet arrives within `timeout`
 * before its pads are activated. A UDP stream that stops later is not moved
 * to TCP by rtspsrc: the watchdog here tears it down and reconnects.
 * `tcp-timeout` bounds each RTSP request and reply on the TCP connection. */
static void
rtspsrc_configure (CimsIngest *ingest, GstElement *rtspsrc)
{
  g_object_set (rtspsrc,
                "location", ingest->url,
                "latency", ingest->latency_ms,
                "timeout", (guint64) ingest_udp_timeout_ms (ingest) * 1000,
                "tcp-timeout", (guint64) ingest->connect_timeout_ms * 1000,
                "do-rtcp", TRUE,
                /* Dropping to hold the latency would lose packets whenever
                 * the hub is briefly busy; late is better than lost here. */
                "drop-on-latency", FALSE,
                /* 4 MiB of kernel buffer rides out a burst (a big keyframe)
                 * while the streaming thread is busy; the kernel caps it at
                 * net.core.rmem_max. */
                "udp-buffer-size", 4 * 1024 * 1024,
                NULL);

  if (ingest->username != NULL)
    g_object_set (rtspsrc, "user-id", ingest->username, NULL);
  if (ingest->password != NULL)
    g_object_set (rtspsrc, "user-pw", ingest->password, NULL);
}

/* Asks rtspsrc for an empty GET_PARAMETER, which the extension of
 * rtsp-keep-alive-ext.c sends as OPTIONS. Main context. */
static void
connection_send_keep_alive (IngestConnection *connection, gint64 now_us)
{
  gchar *no_parameters[] = { NULL };
  g_autoptr(GstPromise) promise = NULL;
  gboolean is_queued = FALSE;

  if (!g_atomic_int_get (&connection->has_packet))
    return;
  if (connection->last_keep_alive_us == 0)
    connection->last_keep_alive_us = now_us;
  if (now_us - connection->last_keep_alive_us < INGEST_KEEP_ALIVE_INTERVAL_US)
    return;

  connection->last_keep_alive_us = now_us;
  promise = gst_promise_new ();
  g_signal_emit_by_name (connection->rtspsrc, "get-parameters", no_parameters, NULL, promise, &is_queued);
  if (!is_queued)
    ingest_log (connection->ingest, G_LOG_LEVEL_DEBUG, "rtspsrc did not queue the keep-alive");
}

/* The appsink gets the RTP packets as rtspsrc's jitterbuffer puts them out:
 * reordered, but with the camera's header (seq, timestamp, SSRC) intact. */
static void
appsink_configure (IngestConnection *connection, GstElement *appsink)
{
  GstAppSinkCallbacks callbacks = { .new_sample = appsink_new_sample_cb };

  g_object_set (appsink,
                "sync", FALSE,
                "async", FALSE,
                "max-buffers", INGEST_APPSINK_MAX_BUFFERS,
                "drop", TRUE,
                "buffer-list", TRUE,
                "enable-last-sample", FALSE,
                NULL);
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &callbacks, connection, NULL);
}

/* Returns (transfer full) a connection with its pipeline built but not
 * started, or NULL with @error set when an element is missing. */
static IngestConnection *
connection_new (CimsIngest *ingest, GError **error)
{
  IngestConnection *connection;
  GstElement *rtspsrc = gst_element_factory_make ("rtspsrc", NULL);
  GstElement *funnel = gst_element_factory_make ("funnel", NULL);
  GstElement *appsink = gst_element_factory_make ("appsink", NULL);

  if (rtspsrc == NULL || funnel == NULL || appsink == NULL)
    {
      gst_clear_object (&rtspsrc);
      gst_clear_object (&funnel);
      gst_clear_object (&appsink);
      g_set_error (error, CIMS_PIPELINES_ERROR, CIMS_PIPELINES_ERROR_FAILED,
                   "GStreamer element rtspsrc, funnel or appsink is missing");
      return NULL;
    }

  connection = g_atomic_rc_box_new0 (IngestConnection);
  connection->ingest = ingest;
  connection->video_stream_index = -1;
  g_mutex_init (&connection->lock);
  connection->pipeline = gst_pipeline_new (ingest->camera_id);
  connection->funnel = funnel;
  connection->rtspsrc = rtspsrc;

  rtspsrc_configure (ingest, rtspsrc);
  appsink_configure (connection, appsink);
  gst_bin_add_many (GST_BIN (connection->pipeline), rtspsrc, funnel, appsink, NULL);
  gst_element_link (funnel, appsink);

  g_signal_connect (rtspsrc, "select-stream", G_CALLBACK (rtspsrc_select_stream_cb), connection);
  g_signal_connect (rtspsrc, "pad-added", G_CALLBACK (rtspsrc_pad_added_cb), connection);
  g_signal_connect (rtspsrc, "pad-removed", G_CALLBACK (rtspsrc_pad_removed_cb), connection);

  return connection;
}

static void
connection_watch_bus (IngestConnection *connection, GMainContext *main_context)
{
  g_autoptr(GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (connection->pipeline));

  connection->bus_source = gst_bus_create_watch (bus);
  g_source_set_callback (connection->bus_source, (GSourceFunc) (void (*) (void)) bus_message_cb,
                         connection_ref (connection), (GDestroyNotify) connection_unref);
  g_source_attach (connection->bus_source, main_context);
}

/* Starts a new connection attempt. Main context. */
static void
ingest_open (CimsIngest *ingest)
{
  g_autoptr(GError) error = NULL;
  IngestConnection *connection = connection_new (ingest, &error);

  if (connection == NULL)
    {
      ingest_log (ingest, G_LOG_LEVEL_WARNING, "%s; ingest stopped", error->message);
      g_clear_pointer (&ingest->watchdog_source, g_source_destroy);
      ingest_set_state (ingest, CIMS_INGEST_STATE_STOPPED, error->message);
      return;
    }

  ingest->connection = connection;
  connection->started_us = g_get_monotonic_time ();
  connection_watch_bus (connection, ingest->main_context);
  ingest_log (ingest, G_LOG_LEVEL_INFO, "connecting to %s", ingest->log_url);

  /* A synchronous failure also posts an ERROR, which names the cause. */
  if (gst_element_set_state (connection->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    {
      g_autoptr(GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (connection->pipeline));
      g_autoptr(GstMessage) message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
      g_autofree gchar *description = message != NULL ? bus_message_describe (message) : NULL;

      connection_fail (connection, description != NULL ? description : "failed to start the pipeline");
    }
}

/* ---- failure, backoff and the watchdog ----------------------------------- */

static gboolean
ingest_retry_cb (gpointer user_data)
{
  CimsIngest *ingest = user_data;

  g_clear_pointer (&ingest->retry_source, g_source_unref);
  ingest_open (ingest);

  return G_SOURCE_REMOVE;
}

/* Exponential backoff: the delay starts at reconnect_min_ms and doubles
 * after each failure up to reconnect_max_ms, with a random +-20 % so that
 * cameras lost together do not all reconnect at the same moment. A
 * connection that played for 10 s restarts the sequence at the minimum. */
static guint
ingest_next_delay_ms (CimsIngest *ingest, gint64 playing_since_us)
{
  gint64 now_us = g_get_monotonic_time ();
  guint base_ms;

  if (playing_since_us > 0 && now_us - playing_since_us >= INGEST_STABLE_PLAYING_US)
    ingest->next_backoff_ms = ingest->reconnect_min_ms;

  base_ms = ingest->next_backoff_ms;
  ingest->next_backoff_ms = MIN ((guint64) base_ms * 2, ingest->reconnect_max_ms);

  return (guint) (base_ms * g_random_double_range (1.0 - INGEST_BACKOFF_JITTER, 1.0 + INGEST_BACKOFF_JITTER));
}

static gboolean
connection_stop_if_unsupported (IngestConnection *connection)
{
  CimsIngest *ingest = connection->ingest;
  g_autofree gchar *message = NULL;

  g_mutex_lock (&connection->lock);
  if (connection->unsupported_encoding != NULL
      && (connection->video_stream_index < 0 || connection->has_unsupported_pad))
    message = g_strdup_printf ("video codec %s is not supported (only H264 and H265 are relayed)",
                               connection->unsupported_encoding);
  g_mutex_unlock (&connection->lock);

  if (message == NULL)
    return FALSE;

  ingest_log (ingest, G_LOG_LEVEL_WARNING, "%s; ingest stopped", message);
  connection_close (connection);
  g_clear_pointer (&ingest->watchdog_source, g_source_destroy);
  ingest_set_state (ingest, CIMS_INGEST_STATE_STOPPED, message);

  return TRUE;
}

/* Tears the attempt down and schedules the next one. Main context. */
static void
connection_fail (IngestConnection *connection, const char *reason)
{
  CimsIngest *ingest = connection->ingest;
  g_autofree gchar *message = NULL;
  g_autofree gchar *redacted = NULL;
  guint delay_ms;

  if (connection_stop_if_unsupported (connection))
    return;

  delay_ms = ingest_next_delay_ms (ingest, connection->playing_since_us);
  connection_close (connection);

  redacted = ingest_redact (ingest, reason);
  message = g_strdup_printf ("%s; reconnecting in %u ms", redacted, delay_ms);
  ingest_log (ingest, G_LOG_LEVEL_WARNING, "%s", message);

  ingest->retry_source = g_timeout_source_new (delay_ms);
  g_source_set_callback (ingest->retry_source, ingest_retry_cb, ingest, NULL);
  g_source_attach (ingest->retry_source, ingest->main_context);
  ingest_set_state (ingest, CIMS_INGEST_STATE_RECONNECTING, message);
}

/* Fails the current attempt when no video packet arrived for
 * connect_timeout_ms, counted from the start of the attempt: this catches a
 * camera that accepts the RTSP session but sends nothing, or stops sending. */
static gboolean
ingest_watchdog_cb (gpointer user_data)
{
  CimsIngest *ingest = user_data;
  IngestConnection *connection = ingest->connection;
  g_autofree gchar *reason = NULL;
  gint64 last_us;

  if (connection == NULL)
    return G_SOURCE_CONTINUE;

  last_us = MAX (connection->started_us, atomic_load (&connection->last_packet_us));
  if (g_get_monotonic_time () - last_us < (gint64) ingest->connect_timeout_ms * 1000)
    {
      connection_send_keep_alive (connection, g_get_monotonic_time ());
      return G_SOURCE_CONTINUE;
    }

  reason = g_strdup_printf ("no video packet for %u ms", ingest->connect_timeout_ms);
  connection_fail (connection, reason);

  return G_SOURCE_CONTINUE;
}

/* ---- public API ---------------------------------------------------------- */

/* See pipelines.h. Copies @settings and @callbacks, and on_packet is
 * required. The thread-default main context at this call is the one every
 * main-context callback and timer runs on. */
CimsIngest *
cims_ingest_new (const CimsIngestSettings *settings,
                 const CimsIngestCallbacks *callbacks,
                 gpointer user_data)
{
  CimsIngest *ingest;

  g_return_val_if_fail (settings != NULL && settings->camera_id != NULL && settings->url != NULL, NULL);
  g_return_val_if_fail (callbacks != NULL && callbacks->on_packet != NULL, NULL);
  g_return_val_if_fail (settings->connect_timeout_ms > 0, NULL);
  g_return_val_if_fail (settings->reconnect_min_ms > 0, NULL);
  g_return_val_if_fail (settings->reconnect_min_ms <= settings->reconnect_max_ms, NULL);

  cims_rtsp_keep_alive_ext_register ();

  ingest = g_new0 (CimsIngest, 1);
  ingest->camera_id = g_strdup (settings->camera_id);
  ingest->url = g_strdup (settings->url);
  ingest->log_url = url_strip_userinfo (settings->url, &ingest->url_password);
  ingest->username = g_strdup (settings->username);
  ingest->password = g_strdup (settings->password);
  ingest->latency_ms = settings->latency_ms;
  ingest->n_epochs = settings->last_epoch;
  ingest->connect_timeout_ms = settings->connect_timeout_ms;
  ingest->reconnect_min_ms = settings->reconnect_min_ms;
  ingest->reconnect_max_ms = settings->reconnect_max_ms;
  ingest->next_backoff_ms = settings->reconnect_min_ms;
  ingest->callbacks = *callbacks;
  ingest->user_data = user_data;
  ingest->main_context = g_main_context_ref_thread_default ();
  ingest->state = CIMS_INGEST_STATE_STOPPED;

  return ingest;
}

/* Starts connecting and reports CONNECTING. Does nothing unless the ingest
 * is STOPPED. Main context. */
void
cims_ingest_start (CimsIngest *ingest)
{
  guint interval_ms;

  g_return_if_fail (ingest != NULL);

  if (ingest->state != CIMS_INGEST_STATE_STOPPED)
    return;

  ingest->next_backoff_ms = ingest->reconnect_min_ms;
  ingest_set_state (ingest, CIMS_INGEST_STATE_CONNECTING, "starting");

  interval_ms = CLAMP (ingest->connect_timeout_ms / 4, 1, INGEST_WATCHDOG_MAX_INTERVAL_MS);
  ingest->watchdog_source = g_timeout_source_new (interval_ms);
  g_source_set_callback (ingest->watchdog_source, ingest_watchdog_cb, ingest, NULL);
  g_source_attach (ingest->watchdog_source, ingest->main_context);
  g_source_unref (ingest->watchdog_source);

  ingest_open (ingest);
}

/* Tears the connection down, cancels the timers and reports STOPPED. No
 * callback runs after this returns. Main context. */
void
cims_ingest_stop (CimsIngest *ingest)
{
  g_return_if_fail (ingest != NULL);

  if (ingest->state == CIMS_INGEST_STATE_STOPPED)
    return;

  if (ingest->retry_source != NULL)
    {
      g_source_destroy (ingest->retry_source);
      g_clear_pointer (&ingest->retry_source, g_source_unref);
    }
  g_clear_pointer (&ingest->watchdog_source, g_source_destroy);
  if (ingest->connection != NULL)
    connection_close (ingest->connection);

  ingest_log (ingest, G_LOG_LEVEL_MESSAGE, "ingest stopped");
  ingest_set_state (ingest, CIMS_INGEST_STATE_STOPPED, "stopped by request");
}

/* Stops the ingest if needed and frees it. Main context. */
void
cims_ingest_free (CimsIngest *ingest)
{
  if (ingest == NULL)
    return;

  cims_ingest_stop (ingest);

  g_free (ingest->camera_id);
  g_free (ingest->url);
  g_free (ingest->log_url);
  g_free (ingest->username);
  if (ingest->password != NULL)
    memset (ingest->password, 0, strlen (ingest->password));
  g_free (ingest->password);
  if (ingest->url_password != NULL)
    memset (ingest->url_password, 0, strlen (ingest->url_password));
  g_free (ingest->url_password);
  g_main_context_unref (ingest->main_context);
  g_free (ingest);
}

/* Returns the current state. Main context. */
CimsIngestState
cims_ingest_get_state (CimsIngest *ingest)
{
  g_return_val_if_fail (ingest != NULL, CIMS_INGEST_STATE_STOPPED);

  return ingest->state;
}

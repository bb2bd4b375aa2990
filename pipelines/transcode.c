/* SPDX-License-Identifier: Apache-2.0 */
/* Transcoding of one camera's RTP for one output profile: decode, scale,
 * limit the frame rate and encode again as H.264 or VP8 RTP, shared by every
 * viewer of that profile. Choosing the profile is the hub's job. */
#include "pipelines/pipelines-private.h"

#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

#include <stdarg.h>
#include <string.h>

/* However many viewers ask, the encoder gets at most one keyframe request
 * per interval: a burst of joins or PLIs costs one keyframe, not one each. */
#define TRANSCODE_KEYFRAME_MIN_INTERVAL_US (500 * 1000)
#define TRANSCODE_RESTART_MIN_DELAY_MS 500
#define TRANSCODE_RESTART_MAX_DELAY_MS 10000
/* About 8 s of a 4 Mbit/s camera: past it the decoder is not keeping up
 * and new packets are dropped instead of queueing without bound. */
#define TRANSCODE_INPUT_MAX_BYTES (4 * 1024 * 1024)
/* Leaves room for SRTP, TURN and tunnel overheads under a 1500-byte MTU. */
#define TRANSCODE_OUTPUT_MTU 1200
/* Frames between the encoder's sink and src pads tracked for encode time;
 * zero-latency H.264 and VP8 without lag hold one at a time. */
#define TRANSCODE_ENCODE_SLOTS 16

/* One build of the pipeline. Refcounted because the bus watch and pending
 * main-context callbacks may outlive it. */
typedef struct {
  CimsTranscoder *transcoder;   /* atomic; cleared when the pipeline is closed */
  GstElement *pipeline;
  GstElement *appsrc;
  GstElement *size_filter;
  GstPad *encoder_src;
  GSource *bus_source;
  guint32 epoch;
  gint has_output;              /* atomic flag: first output packet seen */

  /* Under the transcoder's stats_lock: the latest QoS drop count of each
   * element, as QoS messages report running totals. */
  GHashTable *qos_dropped;      /* element name -> guint64 in a pointer */

  gint64 encode_start_us[TRANSCODE_ENCODE_SLOTS]; /* stats_lock: FIFO of frames in the encoder */
  guint encode_first;
  guint n_encoding;
} TranscodePipeline;

struct _CimsTranscoder {
  char *camera_id;
  char *profile_name;
  CimsCodec output_codec;
  guint max_width;
  guint max_height;
  guint max_fps;
  guint max_kbps;
  guint8 payload_type;
  guint32 ssrc;

  CimsTranscoderCallbacks callbacks;
  gpointer user_data;
  GMainContext *main_context;

  /* Guards the fields up to stats_lock. The pipeline's streaming threads
   * never take it, and a pipeline is closed (its threads joined) only after
   * releasing it, so closing cannot deadlock with a packet callback. */
  GMutex lock;
  gboolean is_started;
  CimsCodec input_codec;
  guint input_clock_rate;
  GstCaps *input_caps;
  TranscodePipeline *pipeline;
  gboolean is_opening;          /* a pipeline is being built on @opener, without the lock */
  GThread *opener;              /* the last thread that built one, joined before the next */
  guint32 n_stops;              /* a build that began before the last stop is closed */
  GPtrArray *held_packets;      /* refs of packets pushed while a pipeline is being built */
  gsize held_bytes;
  GSource *restart_source;      /* rebuilds the pipeline after a failure */
  GSource *report_source;       /* reports RESTARTING on the main context */
  gchar *restart_reason;
  guint restart_delay_ms;
  guint32 n_epochs;
  gboolean has_input_packet;
  guint32 input_epoch;          /* camera epoch of the last packet pushed */
  guint32 input_ssrc;           /* SSRC written on every packet pushed */
  guint16 input_seq_offset;     /* pushed seq = camera seq + offset */
  guint16 last_input_seq;
  gint64 last_keyframe_request_us;

  /* Counters; taken briefly on any thread, never while calling out. */
  GMutex stats_lock;
  CimsTranscoderStats stats;
  guint64 total_encode_us;
  guint64 n_timed_frames;
  guint64 n_frames_to_encoder;  /* decoded frames that passed the rate limit */

  /* Main context only. */
  CimsTranscoderState state;
};

static void transcoder_schedule_restart_locked (CimsTranscoder *transcoder, const char *reason);
static GstBuffer *transcoder_input_buffer_new_locked (CimsTranscoder *transcoder, const CimsRtpPacket *packet);

/* ---- logging ----------------------------------------------------------- */

static void G_GNUC_PRINTF (3, 4)
transcoder_log (CimsTranscoder *transcoder, GLogLevelFlags level, const char *format, ...)
{
  va_list args;
  g_autofree gchar *text = NULL;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  g_log_structured (G_LOG_DOMAIN, level,
                    "CIMS_CAMERA_ID", transcoder->camera_id,
                    "CIMS_PROFILE", transcoder->profile_name,
                    "MESSAGE", "camera=%s profile=%s: %s", transcoder->camera_id,
                    transcoder->profile_name, text);
}

static const char *
transcoder_state_to_string (CimsTranscoderState state)
{
  switch (state)
    {
    case CIMS_TRANSCODER_STATE_WAITING:
      return "waiting";
    case CIMS_TRANSCODER_STATE_RUNNING:
      return "running";
    case CIMS_TRANSCODER_STATE_RESTARTING:
      return "restarting";
    case CIMS_TRANSCODER_STATE_STOPPED:
    default:
      return "stopped";
    }
}

/* Reports every change, and each new failure while RESTARTING. Main context. */
static void
transcoder_set_state (CimsTranscoder *transcoder, CimsTranscoderState state, const char *message)
{
  if (state == transcoder->state && state != CIMS_TRANSCODER_STATE_RESTARTING)
    return;

  transcoder_log (transcoder, G_LOG_LEVEL_DEBUG, "state %s -> %s",
                  transcoder_state_to_string (transcoder->state), transcoder_state_to_string (state));
  transcoder->state = state;

  g_mutex_lock (&transcoder->stats_lock);
  transcoder->stats.state = state;
  transcoder->stats.is_running = state == CIMS_TRANSCODER_STATE_RUNNING;
  g_mutex_unlock (&transcoder->stats_lock);

  if (transcoder->callbacks.on_state != NULL)
    transcoder->callbacks.on_state (state, message, transcoder->user_data);
}

/* ---- output size --------------------------------------------------------- */

static guint
even_at_least_two (guint64 value)
{
  return MAX (2, (guint) (value & ~(guint64) 1));
}

/* See pipelines.h. The limiting side is the one whose ratio to its maximum
 * is larger; the other side is scaled by the same factor and rounded to the
 * nearest pixel, which stays within its maximum. */
gboolean
cims_transcode_fit_size (guint width, guint height, guint par_n, guint par_d,
                         guint max_width, guint max_height,
                         guint *out_width, guint *out_height)
{
  guint64 display_width;
  guint64 fitted_width;
  guint64 fitted_height;
  guint64 limit_width = max_width > 0 ? max_width : G_MAXUINT32;
  guint64 limit_height = max_height > 0 ? max_height : G_MAXUINT32;

  g_return_val_if_fail (out_width != NULL && out_height != NULL, FALSE);

  if (width == 0 || height == 0 || par_n == 0 || par_d == 0)
    return FALSE;

  display_width = MAX (1, ((guint64) width * par_n + par_d / 2) / par_d);
  fitted_width = display_width;
  fitted_height = height;

  if (display_width * limit_height >= (guint64) height * limit_width)
    {
      if (display_width > limit_width)
        {
          fitted_width = limit_width;
          fitted_height = ((guint64) height * limit_width + display_width / 2) / display_width;
        }
    }
  else if (height > limit_height)
    {
      fitted_height = limit_height;
      fitted_width = (display_width * limit_height + height / 2) / height;
    }

  *out_width = even_at_least_two (fitted_width);
  *out_height = even_at_least_two (fitted_height);

  return TRUE;
}

/* Returns (transfer full) the caps of the scaled, rate-limited raw video. */
static GstCaps *
transcoder_raw_caps (CimsTranscoder *transcoder, guint width, guint height)
{
  GstCaps *caps = gst_caps_new_simple ("video/x-raw",
                                       "format", G_TYPE_STRING, "I420",
                                       "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1,
                                       NULL);

  if (width > 0 && height > 0)
    gst_caps_set_simple (caps, "width", G_TYPE_INT, (int) width, "height", G_TYPE_INT, (int) height, NULL);

  /* A range and not a fixed rate, because videorate in drop-only mode cannot
   * raise a slower camera's rate: it fixates to the camera's rate up to
   * max_fps. */
  if (transcoder->max_fps > 0)
    gst_caps_set_simple (caps, "framerate", GST_TYPE_FRACTION_RANGE, 0, 1, (int) transcoder->max_fps, 1, NULL);

  return caps;
}

/* ---- input caps ---------------------------------------------------------- */

static const char *
codec_encoding_name (CimsCodec codec)
{
  return codec == CIMS_CODEC_H265 ? "H265" : "H264";
}

static void
sprop_append (GString *list, GBytes *nal_unit)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (nal_unit, &size);
  g_autofree gchar *encoded = g_base64_encode (data, size);

  if (list->len > 0)
    g_string_append_c (list, ',');
  g_string_append (list, encoded);
}

/* Writes out-of-band parameter sets as the sprop-* fields that rtph264depay
 * (sprop-parameter-sets) and rtph265depay (sprop-vps/sps/pps) read. */
static void
caps_add_parameter_sets (GstStructure *s, CimsCodec codec, GPtrArray *parameter_sets)
{
  g_autoptr(GString) all = g_string_new (NULL);
  g_autoptr(GString) vps = g_string_new (NULL);
  g_autoptr(GString) sps = g_string_new (NULL);
  g_autoptr(GString) pps = g_string_new (NULL);

  for (guint i = 0; i < parameter_sets->len; i++)
    {
      GBytes *nal_unit = g_ptr_array_index (parameter_sets, i);
      gsize size;
      const guint8 *data = g_bytes_get_data (nal_unit, &size);
      CimsNalFlags flags = cims_nal_classify_unit (codec, data, size);

      sprop_append (all, nal_unit);
      if (flags & CIMS_NAL_FLAG_VPS)
        sprop_append (vps, nal_unit);
      else if (flags & CIMS_NAL_FLAG_SPS)
        sprop_append (sps, nal_unit);
      else if (flags & CIMS_NAL_FLAG_PPS)
        sprop_append (pps, nal_unit);
    }

  if (codec == CIMS_CODEC_H264 && all->len > 0 && !gst_structure_has_field (s, "sprop-parameter-sets"))
    gst_structure_set (s, "sprop-parameter-sets", G_TYPE_STRING, all->str, NULL);

  if (codec == CIMS_CODEC_H265 && !gst_structure_has_field (s, "sprop-sps") && sps->len > 0)
    gst_structure_set (s, "sprop-vps", G_TYPE_STRING, vps->str,
                       "sprop-sps", G_TYPE_STRING, sps->str,
                       "sprop-pps", G_TYPE_STRING, pps->str, NULL);
}

/* Returns (transfer full) application/x-rtp caps for the camera's format,
 * with every fmtp parameter as a string field, as rtspsrc would set them. */
static GstCaps *
input_caps_new (CimsCodec codec, guint clock_rate, const char *fmtp, GPtrArray *parameter_sets)
{
  GstCaps *caps = gst_caps_new_simple ("application/x-rtp",
                                       "media", G_TYPE_STRING, "video",
                                       "encoding-name", G_TYPE_STRING, codec_encoding_name (codec),
                                       "clock-rate", G_TYPE_INT, (int) clock_rate,
                                       NULL);
  GstStructure *s = gst_caps_get_structure (caps, 0);
  g_auto(GStrv) parameters = g_strsplit (fmtp != NULL ? fmtp : "", ";", -1);

  for (gsize i = 0; parameters[i] != NULL; i++)
    {
      gchar *equals = strchr (parameters[i], '=');
      g_autofree gchar *raw_key = NULL;
      g_autofree gchar *key = NULL;

      if (equals == NULL)
        continue;
      raw_key = g_strndup (parameters[i], equals - parameters[i]);
      key = g_ascii_strdown (g_strstrip (raw_key), -1);
      if (key[0] == '\0' || !g_ascii_isalpha (key[0]))
        continue;
      gst_structure_set (s, key, G_TYPE_STRING, g_strstrip (equals + 1), NULL);
    }

  if (parameter_sets != NULL)
    caps_add_parameter_sets (s, codec, parameter_sets);

  return caps;
}

/* ---- pipeline lifetime --------------------------------------------------- */

static TranscodePipeline *
pipeline_ref (TranscodePipeline *pipeline)
{
  return g_atomic_rc_box_acquire (pipeline);
}

static void
pipeline_clear (TranscodePipeline *pipeline)
{
  g_assert (pipeline->pipeline == NULL);
  g_clear_pointer (&pipeline->qos_dropped, g_hash_table_unref);
}

static void
pipeline_unref (TranscodePipeline *pipeline)
{
  g_atomic_rc_box_release_full (pipeline, (GDestroyNotify) pipeline_clear);
}

/* Stops @pipeline and drops the caller's reference. Setting the pipeline to
 * NULL joins its streaming threads, so no packet callback runs after this
 * returns. Call it without the transcoder's lock, and never on one of this
 * pipeline's streaming threads. */
static void
pipeline_close (TranscodePipeline *pipeline)
{
  if (pipeline->bus_source != NULL)
    {
      g_source_destroy (pipeline->bus_source);
      g_clear_pointer (&pipeline->bus_source, g_source_unref);
    }

  gst_element_set_state (pipeline->pipeline, GST_STATE_NULL);

  gst_clear_object (&pipeline->encoder_src);
  gst_clear_object (&pipeline->pipeline);
  pipeline->appsrc = NULL;
  pipeline->size_filter = NULL;

  g_atomic_pointer_set (&pipeline->transcoder, NULL);
  pipeline_unref (pipeline);
}

/* ---- streaming-thread probes and output ---------------------------------- */

/* Sets the scaler's output size from the decoded size, on the decoder's
 * thread before the caps event reaches the scaler, so each new input size
 * (a new SPS) is fitted again instead of being stretched. */
static void
pipeline_fit_output (TranscodePipeline *pipeline, GstCaps *caps)
{
  CimsTranscoder *transcoder = pipeline->transcoder;
  GstVideoInfo info;
  guint width;
  guint height;
  g_autoptr(GstCaps) raw_caps = NULL;

  if (!gst_video_info_from_caps (&info, caps)
      || !cims_transcode_fit_size (GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info),
                                   GST_VIDEO_INFO_PAR_N (&info), GST_VIDEO_INFO_PAR_D (&info),
                                   transcoder->max_width, transcoder->max_height, &width, &height))
    {
      transcoder_log (transcoder, G_LOG_LEVEL_WARNING, "decoded caps without a usable size; keeping the output size");
      return;
    }

  g_mutex_lock (&transcoder->stats_lock);
  transcoder->stats.input_width = GST_VIDEO_INFO_WIDTH (&info);
  transcoder->stats.input_height = GST_VIDEO_INFO_HEIGHT (&info);
  transcoder->stats.output_width = width;
  transcoder->stats.output_height = height;
  g_mutex_unlock (&transcoder->stats_lock);

  raw_caps = transcoder_raw_caps (transcoder, width, height);
  g_object_set (pipeline->size_filter, "caps", raw_caps, NULL);
  transcoder_log (transcoder, G_LOG_LEVEL_INFO, "decoding %dx%d at %d/%d fps, encoding %s %ux%u (epoch %u)",
                  GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info),
                  GST_VIDEO_INFO_FPS_N (&info), GST_VIDEO_INFO_FPS_D (&info),
                  cims_codec_to_string (transcoder->output_codec), width, height, pipeline->epoch);
}

static GstPadProbeReturn
decoder_src_probe_cb (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  TranscodePipeline *pipeline = user_data;
  CimsTranscoder *transcoder = pipeline->transcoder;
  GstEvent *event;
  GstCaps *caps;

  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER)
    {
      g_mutex_lock (&transcoder->stats_lock);
      transcoder->stats.n_frames_in++;
      g_mutex_unlock (&transcoder->stats_lock);
      return GST_PAD_PROBE_OK;
    }

  event = GST_PAD_PROBE_INFO_EVENT (info);
  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS)
    {
      gst_event_parse_caps (event, &caps);
      pipeline_fit_output (pipeline, caps);
    }

  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
encoder_sink_probe_cb (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  TranscodePipeline *pipeline = user_data;
  CimsTranscoder *transcoder = pipeline->transcoder;

  g_mutex_lock (&transcoder->stats_lock);
  transcoder->n_frames_to_encoder++;

  /* Full only when the encoder holds frames back; the oldest is forgotten. */
  if (pipeline->n_encoding == TRANSCODE_ENCODE_SLOTS)
    {
      pipeline->encode_first = (pipeline->encode_first + 1) % TRANSCODE_ENCODE_SLOTS;
      pipeline->n_encoding--;
    }
  pipeline->encode_start_us[(pipeline->encode_first + pipeline->n_encoding) % TRANSCODE_ENCODE_SLOTS] =
    g_get_monotonic_time ();
  pipeline->n_encoding++;
  g_mutex_unlock (&transcoder->stats_lock);

  return GST_PAD_PROBE_OK;
}

/* Matches an output frame to the oldest input frame: both encoders, as
 * configured, put frames out in input order, one for one. PTS cannot be
 * matched, because x264enc (GStreamer 1.22) puts frames out with their PTS
 * shifted by 1000 hours. Called with stats_lock held. */
static void
pipeline_account_encoded_locked (TranscodePipeline *pipeline)
{
  CimsTranscoder *transcoder = pipeline->transcoder;
  guint64 elapsed_us;

  transcoder->stats.n_frames_out++;
  if (pipeline->n_encoding == 0)
    return;

  elapsed_us = g_get_monotonic_time () - pipeline->encode_start_us[pipeline->encode_first];
  pipeline->encode_first = (pipeline->encode_first + 1) % TRANSCODE_ENCODE_SLOTS;
  pipeline->n_encoding--;

  transcoder->total_encode_us += elapsed_us;
  transcoder->n_timed_frames++;
  transcoder->stats.max_encode_us = MAX (transcoder->stats.max_encode_us, elapsed_us);
}

/* Counts encoded frames, and keyframes made on request: the video encoder
 * base class sends a downstream force-key-unit event just before such a
 * keyframe. */
static GstPadProbeReturn
encoder_src_probe_cb (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  TranscodePipeline *pipeline = user_data;
  CimsTranscoder *transcoder = pipeline->transcoder;

  g_mutex_lock (&transcoder->stats_lock);
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER)
    pipeline_account_encoded_locked (pipeline);
  else if (gst_video_event_is_force_key_unit (GST_PAD_PROBE_INFO_EVENT (info)))
    transcoder->stats.n_forced_keyframes_out++;
  g_mutex_unlock (&transcoder->stats_lock);

  return GST_PAD_PROBE_OK;
}

static gboolean
pipeline_running_cb (gpointer user_data)
{
  TranscodePipeline *pipeline = user_data;
  CimsTranscoder *transcoder = g_atomic_pointer_get (&pipeline->transcoder);
  gboolean is_current;

  if (transcoder == NULL)
    return G_SOURCE_REMOVE;

  g_mutex_lock (&transcoder->lock);
  is_current = transcoder->pipeline == pipeline;
  if (is_current)
    transcoder->restart_delay_ms = TRANSCODE_RESTART_MIN_DELAY_MS;
  g_mutex_unlock (&transcoder->lock);

  if (is_current)
    transcoder_set_state (transcoder, CIMS_TRANSCODER_STATE_RUNNING, "encoded video is flowing");

  return G_SOURCE_REMOVE;
}

static void
pipeline_handle_output (GstBuffer *buffer, gpointer user_data)
{
  TranscodePipeline *pipeline = user_data;
  CimsTranscoder *transcoder = pipeline->transcoder;
  g_autoptr(CimsRtpPacket) packet = cims_rtp_packet_new_from_buffer (buffer, pipeline->epoch,
                                                                     g_get_monotonic_time ());
  g_autoptr(GSource) source = NULL;

  /* The payloader's MTU keeps packets valid; this only guards the callback. */
  if (packet == NULL)
    return;

  g_mutex_lock (&transcoder->stats_lock);
  transcoder->stats.n_packets_out++;
  g_mutex_unlock (&transcoder->stats_lock);

  if (g_atomic_int_compare_and_exchange (&pipeline->has_output, 0, 1))
    {
      source = g_idle_source_new ();
      g_source_set_callback (source, pipeline_running_cb, pipeline_ref (pipeline), (GDestroyNotify) pipeline_unref);
      g_source_attach (source, transcoder->main_context);
    }

  transcoder->callbacks.on_packet (packet, transcoder->user_data);
}

static GstFlowReturn
appsink_new_sample_cb (GstAppSink *appsink, gpointer user_data)
{
  return cims_appsink_pull_buffers (appsink, pipeline_handle_output, user_data);
}

/* ---- bus ------------------------------------------------------------------- */

/* Adds the growth of one element's QoS drop count to the stats. */
static void
pipeline_account_qos (TranscodePipeline *pipeline, CimsTranscoder *transcoder, GstMessage *message)
{
  GstFormat format;
  guint64 processed;
  guint64 dropped;
  guint64 previous;

  gst_message_parse_qos_stats (message, &format, &processed, &dropped);
  if (format != GST_FORMAT_BUFFERS && format != GST_FORMAT_DEFAULT)
    return;

  g_mutex_lock (&transcoder->stats_lock);
  previous = GPOINTER_TO_SIZE (g_hash_table_lookup (pipeline->qos_dropped, GST_MESSAGE_SRC_NAME (message)));
  if (dropped > previous)
    {
      transcoder->stats.n_frames_dropped += dropped - previous;
      g_hash_table_insert (pipeline->qos_dropped, g_strdup (GST_MESSAGE_SRC_NAME (message)),
                           GSIZE_TO_POINTER ((gsize) dropped));
    }
  g_mutex_unlock (&transcoder->stats_lock);
}

/* Returns (transfer full) "<element>: <error text>" for an ERROR or WARNING. */
static gchar *
bus_message_describe (GstMessage *message)
{
  g_autoptr(GError) error = NULL;

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR)
    gst_message_parse_error (message, &error, NULL);
  else
    gst_message_parse_warning (message, &error, NULL);

  return g_strdup_printf ("%s: %s", GST_MESSAGE_SRC_NAME (message), error->message);
}

/* Replaces the failed pipeline with a new one after a delay. Main context. */
static void
pipeline_fail (TranscodePipeline *pipeline, CimsTranscoder *transcoder, const char *reason)
{
  TranscodePipeline *failed = NULL;

  g_mutex_lock (&transcoder->lock);
  if (transcoder->pipeline == pipeline)
    {
      failed = g_steal_pointer (&transcoder->pipeline);
      transcoder_schedule_restart_locked (transcoder, reason);
    }
  g_mutex_unlock (&transcoder->lock);

  if (failed != NULL)
    pipeline_close (failed);
}

static gboolean
bus_message_cb (GstBus *bus, GstMessage *message, gpointer user_data)
{
  TranscodePipeline *pipeline = user_data;
  CimsTranscoder *transcoder = g_atomic_pointer_get (&pipeline->transcoder);
  g_autofree gchar *description = NULL;

  if (transcoder == NULL)
    return G_SOURCE_REMOVE;

  switch (GST_MESSAGE_TYPE (message))
    {
    case GST_MESSAGE_ERROR:
      description = bus_message_describe (message);
      pipeline_fail (pipeline, transcoder, description);
      return G_SOURCE_REMOVE;

    case GST_MESSAGE_EOS:
      pipeline_fail (pipeline, transcoder, "unexpected end of stream");
      return G_SOURCE_REMOVE;

    case GST_MESSAGE_WARNING:
      /* e.g. the decoder reporting a corrupt frame after packet loss */
      description = bus_message_describe (message);
      transcoder_log (transcoder, G_LOG_LEVEL_INFO, "%s", description);
      return G_SOURCE_CONTINUE;

    case GST_MESSAGE_QOS:
      pipeline_account_qos (pipeline, transcoder, message);
      return G_SOURCE_CONTINUE;

    default:
      return G_SOURCE_CONTINUE;
    }
}

/* ---- building a pipeline ----------------------------------------------------- */

static GstElement *
bin_add_element (GstBin *bin, const char *factory, GError **error)
{
  GstElement *element = gst_element_factory_make (factory, NULL);

  if (element == NULL)
    {
      g_set_error (error, CIMS_PIPELINES_ERROR, CIMS_PIPELINES_ERROR_FAILED,
                   "GStreamer element %s is missing (avdec_* come from gstreamer1.0-libav, "
                   "x264enc from gstreamer1.0-plugins-ugly, vp8enc from gstreamer1.0-plugins-good)",
                   factory);
      return NULL;
    }

  gst_bin_add (bin, element);

  return element;
}

static void
appsrc_configure (GstElement *appsrc, GstCaps *input_caps)
{
  g_object_set (appsrc,
                "caps", input_caps,
                "is-live", TRUE,
                "format", GST_FORMAT_TIME,
                "do-timestamp", TRUE,
                "block", FALSE,
                "max-bytes", (guint64) TRANSCODE_INPUT_MAX_BYTES,
                NULL);
}

/* Zero latency and no B-frames: a frame leaves the encoder as soon as it is
 * encoded. A keyframe every second bounds a joining viewer's wait even when
 * its keyframe request is suppressed. */
static void
x264enc_configure (CimsTranscoder *transcoder, GstElement *encoder, guint keyframe_interval)
{
  gst_util_set_object_arg (G_OBJECT (encoder), "tune", "zerolatency");
  gst_util_set_object_arg (G_OBJECT (encoder), "speed-preset", "superfast");
  g_object_set (encoder,
                "bitrate", transcoder->max_kbps,
                "key-int-max", keyframe_interval,
                "bframes", 0,
                "byte-stream", TRUE,
                "aud", FALSE,
                "threads", 1,
                NULL);
}

/* Realtime deadline, no frame lag, and error resilience so that a viewer
 * recovers from a lost packet without waiting for a keyframe. */
static void
vp8enc_configure (CimsTranscoder *transcoder, GstElement *encoder, guint keyframe_interval)
{
  gst_util_set_object_arg (G_OBJECT (encoder), "end-usage", "cbr");
  gst_util_set_object_arg (G_OBJECT (encoder), "error-resilient", "default");
  g_object_set (encoder,
                "deadline", (gint64) 1,
                "cpu-used", 8,
                "target-bitrate", (int) MIN (transcoder->max_kbps * 1000u, (guint) G_MAXINT),
                "keyframe-max-dist", (int) keyframe_interval,
                "lag-in-frames", 0,
                "threads", 1,
                NULL);
}

static void
payloader_configure (CimsTranscoder *transcoder, GstElement *payloader)
{
  g_object_set (payloader, "pt", (guint) transcoder->payload_type, "mtu", (guint) TRANSCODE_OUTPUT_MTU,
                "ssrc", transcoder->ssrc, NULL);

  /* SPS and PPS before every keyframe, aggregated with it, so each keyframe
   * is decodable on its own. */
  if (transcoder->output_codec == CIMS_CODEC_H264)
    {
      g_object_set (payloader, "config-interval", -1, NULL);
      gst_util_set_object_arg (G_OBJECT (payloader), "aggregate-mode", "zero-latency");
    }
  else
    {
      gst_util_set_object_arg (G_OBJECT (payloader), "picture-id-mode", "15-bit");
    }
}

static void
appsink_configure (TranscodePipeline *pipeline, GstElement *appsink)
{
  GstAppSinkCallbacks callbacks = { .new_sample = appsink_new_sample_cb };

  g_object_set (appsink,
                "sync", FALSE,
                "async", FALSE,
                "buffer-list", TRUE,
                "enable-last-sample", FALSE,
                NULL);
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &callbacks, pipeline, NULL);
}

/* Adds the encoder and what follows it up to the payloader, and returns
 * (transfer none) the encoder, or NULL with @error set. */
static GstElement *
pipeline_add_encoder (TranscodePipeline *pipeline, CimsTranscoder *transcoder,
                      GstElement **last, GError **error)
{
  GstBin *bin = GST_BIN (pipeline->pipeline);
  gboolean is_h264 = transcoder->output_codec == CIMS_CODEC_H264;
  guint keyframe_interval = transcoder->max_fps > 0 ? transcoder->max_fps : 30;
  GstElement *encoder = bin_add_element (bin, is_h264 ? "x264enc" : "vp8enc", error);
  GstElement *profile_filter = encoder != NULL && is_h264 ? bin_add_element (bin, "capsfilter", error) : NULL;
  GstElement *payloader = NULL;

  if (encoder == NULL || (is_h264 && profile_filter == NULL))
    return NULL;
  payloader = bin_add_element (bin, is_h264 ? "rtph264pay" : "rtpvp8pay", error);
  if (payloader == NULL)
    return NULL;

  if (is_h264)
    {
      g_autoptr(GstCaps) profile_caps = gst_caps_from_string (
        "video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au");

      x264enc_configure (transcoder, encoder, keyframe_interval);
      g_object_set (profile_filter, "caps", profile_caps, NULL);
      if (!gst_element_link_many (encoder, profile_filter, payloader, NULL))
        goto link_failed;
    }
  else
    {
      vp8enc_configure (transcoder, encoder, keyframe_interval);
      if (!gst_element_link (encoder, payloader))
        goto link_failed;
    }

  payloader_configure (transcoder, payloader);
  *last = payloader;

  return encoder;

link_failed:
  g_set_error (error, CIMS_PIPELINES_ERROR, CIMS_PIPELINES_ERROR_FAILED,
               "could not link %s to its payloader", GST_ELEMENT_NAME (encoder));
  return NULL;
}

/* Adds appsrc ! depayloader ! parser ! decoder and returns (transfer none)
 * the decoder, or NULL with @error set. No rtpjitterbuffer: the packets come
 * from the ingest's rtspsrc, whose jitterbuffer has already reordered them
 * and dropped late ones, and a second one would only add latency. */
static GstElement *
pipeline_add_decoder (TranscodePipeline *pipeline, CimsCodec input_codec, GstCaps *input_caps, GError **error)
{
  GstBin *bin = GST_BIN (pipeline->pipeline);
  gboolean is_h264 = input_codec == CIMS_CODEC_H264;
  GstElement *depayloader;
  GstElement *parser;
  GstElement *decoder;

  pipeline->appsrc = bin_add_element (bin, "appsrc", error);
  if (pipeline->appsrc == NULL
      || (depayloader = bin_add_element (bin, is_h264 ? "rtph264depay" : "rtph265depay", error)) == NULL
      || (parser = bin_add_element (bin, is_h264 ? "h264parse" : "h265parse", error)) == NULL
      || (decoder = bin_add_element (bin, is_h264 ? "avdec_h264" : "avdec_h265", error)) == NULL)
    return NULL;

  appsrc_configure (pipeline->appsrc, input_caps);

  /* One thread: one transcode then costs one core at most, and frame
   * threads would add a frame of latency each. Decode errors after packet
   * loss are not fatal: the next keyframe repairs the picture.
   * NOTE: one decoder thread may not keep up with a 4K camera at 30 fps; its
   * input queue then fills and packets are dropped (n_packets_dropped). */
  g_object_set (decoder, "max-threads", 1, "max-errors", -1, NULL);

  if (!gst_element_link_many (pipeline->appsrc, depayloader, parser, decoder, NULL))
    {
      g_set_error (error, CIMS_PIPELINES_ERROR, CIMS_PIPELINES_ERROR_FAILED,
                   "could not link the %s depayloader, parser and decoder", codec_encoding_name (input_codec));
      return NULL;
    }

  return decoder;
}

static void
pipeline_add_probes (TranscodePipeline *pipeline, GstElement *decoder, GstElement *encoder)
{
  g_autoptr(GstPad) decoder_src = gst_element_get_static_pad (decoder, "src");
  g_autoptr(GstPad) encoder_sink = gst_element_get_static_pad (encoder, "sink");

  pipeline->encoder_src = gst_element_get_static_pad (encoder, "src");
  gst_pad_add_probe (decoder_src, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                     decoder_src_probe_cb, pipeline, NULL);
  gst_pad_add_probe (encoder_sink, GST_PAD_PROBE_TYPE_BUFFER, encoder_sink_probe_cb, pipeline, NULL);
  gst_pad_add_probe (pipeline->encoder_src, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                     encoder_src_probe_cb, pipeline, NULL);
}

/* Builds appsrc ! depay ! parse ! decoder ! videoconvert ! videoscale !
 * videorate ! capsfilter ! encoder [! capsfilter] ! payloader ! appsink for
 * @input_codec and @input_caps. Returns (transfer full) the pipeline, not
 * started, or NULL with @error set. Reads only the transcoder's settings,
 * which never change, so it runs without the lock. */
static TranscodePipeline *
pipeline_new (CimsTranscoder *transcoder, CimsCodec input_codec, GstCaps *input_caps, GError **error)
{
  TranscodePipeline *pipeline = g_atomic_rc_box_new0 (TranscodePipeline);
  g_autofree gchar *name = g_strdup_printf ("transcode-%s-%s", transcoder->camera_id, transcoder->profile_name);
  g_autoptr(GstCaps) raw_caps = transcoder_raw_caps (transcoder, 0, 0);
  GstBin *bin;
  GstElement *decoder;
  GstElement *convert;
  GstElement *scale;
  GstElement *videorate;
  GstElement *encoder;
  GstElement *payloader = NULL;
  GstElement *appsink;

  pipeline->transcoder = transcoder;
  pipeline->qos_dropped = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  pipeline->pipeline = gst_pipeline_new (name);
  bin = GST_BIN (pipeline->pipeline);

  decoder = pipeline_add_decoder (pipeline, input_codec, input_caps, error);
  if (decoder == NULL
      || (convert = bin_add_element (bin, "videoconvert", error)) == NULL
      || (scale = bin_add_element (bin, "videoscale", error)) == NULL
      || (videorate = bin_add_element (bin, "videorate", error)) == NULL
      || (pipeline->size_filter = bin_add_element (bin, "capsfilter", error)) == NULL
      || (encoder = pipeline_add_encoder (pipeline, transcoder, &payloader, error)) == NULL
      || (appsink = bin_add_element (bin, "appsink", error)) == NULL)
    goto failed;

  /* drop-only: a camera slower than max_fps is never padded with copies. */
  g_object_set (videorate, "drop-only", TRUE, NULL);
  if (transcoder->max_fps > 0)
    g_object_set (videorate, "max-rate", (int) transcoder->max_fps, NULL);
  g_object_set (pipeline->size_filter, "caps", raw_caps, NULL);
  appsink_configure (pipeline, appsink);

  if (!gst_element_link_many (decoder, convert, scale, videorate, pipeline->size_filter, encoder, NULL)
      || !gst_element_link (payloader, appsink))
    {
      g_set_error (error, CIMS_PIPELINES_ERROR, CIMS_PIPELINES_ERROR_FAILED,
                   "could not link the decoder through the scaler to the encoder");
      goto failed;
    }

  pipeline_add_probes (pipeline, decoder, encoder);

  return pipeline;

failed:
  g_prefix_error (error, "camera=%s profile=%s: ", transcoder->camera_id, transcoder->profile_name);
  gst_clear_object (&pipeline->pipeline);
  pipeline_unref (pipeline);
  return NULL;
}

static void
pipeline_watch_bus (TranscodePipeline *pipeline, GMainContext *main_context)
{
  g_autoptr(GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline->pipeline));

  pipeline->bus_source = gst_bus_create_watch (bus);
  g_source_set_callback (pipeline->bus_source, (GSourceFunc) (void (*) (void)) bus_message_cb,
                         pipeline_ref (pipeline), (GDestroyNotify) pipeline_unref);
  g_source_attach (pipeline->bus_source, main_context);
}

/* Builds a pipeline for @input_codec and @input_caps and sets it playing.
 * Returns (transfer full) the pipeline, or NULL with @error set. Runs
 * without the lock: building and starting took 10 to 66 ms here, and up to
 * 290 ms under ASan. */
static TranscodePipeline *
pipeline_build (CimsTranscoder *transcoder, CimsCodec input_codec, GstCaps *input_caps, GError **error)
{
  TranscodePipeline *pipeline = pipeline_new (transcoder, input_codec, input_caps, error);

  if (pipeline == NULL)
    return NULL;

  if (gst_element_set_state (pipeline->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    {
      g_autoptr(GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline->pipeline));
      g_autoptr(GstMessage) message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
      g_autofree gchar *description = message != NULL ? bus_message_describe (message) : NULL;

      g_set_error (error, CIMS_PIPELINES_ERROR, CIMS_PIPELINES_ERROR_FAILED, "failed to start the pipeline: %s",
                   description != NULL ? description : "state change failed");
      pipeline_close (pipeline);
      return NULL;
    }

  return pipeline;
}

/* Empties the queue of packets held for a pipeline being built. Called
 * with the lock held. */
static void
held_packets_clear_locked (CimsTranscoder *transcoder)
{
  g_ptr_array_set_size (transcoder->held_packets, 0);
  transcoder->held_bytes = 0;
}

/* Discards the held packets of camera epochs before @epoch (all of them
 * for G_MAXUINT32), which then count as dropped instead of accepted.
 * Called with the lock held. */
static void
held_packets_drop_before_locked (CimsTranscoder *transcoder, guint32 epoch)
{
  GPtrArray *held = transcoder->held_packets;
  guint n_dropped = 0;

  for (guint i = held->len; i > 0; i--)
    {
      CimsRtpPacket *packet = g_ptr_array_index (held, i - 1);

      if (epoch != G_MAXUINT32 && packet->epoch >= epoch)
        continue;

      transcoder->held_bytes -= packet->size;
      g_ptr_array_remove_index (held, i - 1);
      n_dropped++;
    }

  g_mutex_lock (&transcoder->stats_lock);
  transcoder->stats.n_packets_in -= n_dropped;
  transcoder->stats.n_packets_dropped += n_dropped;
  g_mutex_unlock (&transcoder->stats_lock);
}

/* Discards every held packet. Called with the lock held. */
static void
held_packets_drop_locked (CimsTranscoder *transcoder)
{
  held_packets_drop_before_locked (transcoder, G_MAXUINT32);
}

/* Makes @pipeline the current one, feeds it the packets held while it was
 * built, and returns the previous pipeline (or NULL), which the caller
 * closes after releasing the lock. Called with the lock held. */
static TranscodePipeline *
pipeline_install_locked (CimsTranscoder *transcoder, TranscodePipeline *pipeline, GstCaps *built_caps)
{
  GstAppSrc *appsrc = GST_APP_SRC (pipeline->appsrc);
  TranscodePipeline *replaced = g_steal_pointer (&transcoder->pipeline);

  pipeline->epoch = ++transcoder->n_epochs;
  pipeline_watch_bus (pipeline, transcoder->main_context);
  transcoder->pipeline = pipeline;

  /* Parameter sets that came while it was built, for the same decoder. */
  if (!gst_caps_is_equal (built_caps, transcoder->input_caps))
    gst_app_src_set_caps (appsrc, transcoder->input_caps);

  /* appsrc stamps the held packets, and the cached run since the camera's
   * keyframe, with the time of this push, so the frame-rate limit keeps
   * few of their frames. That is on purpose: with their own spacing they
   * would leave the encoder as a backlog of up to a keyframe interval, and
   * a browser would play the stream that far behind live. */
  for (guint i = 0; i < transcoder->held_packets->len; i++)
    gst_app_src_push_buffer (appsrc, transcoder_input_buffer_new_locked (transcoder,
                                                                         g_ptr_array_index (transcoder->held_packets, i)));
  held_packets_clear_locked (transcoder);

  g_mutex_lock (&transcoder->stats_lock);
  transcoder->stats.epoch = pipeline->epoch;
  transcoder->stats.n_restarts = transcoder->n_epochs - 1;
  g_mutex_unlock (&transcoder->stats_lock);

  return replaced;
}

typedef struct {
  CimsTranscoder *transcoder;
  CimsCodec input_codec;
  guint input_clock_rate;
  GstCaps *input_caps;
  guint32 n_stops;
} OpenJob;

/* Makes @job the transcoder's current start and input format. Called with
 * the lock held. */
static void
open_job_update_locked (OpenJob *job, CimsTranscoder *transcoder)
{
  job->input_codec = transcoder->input_codec;
  job->input_clock_rate = transcoder->input_clock_rate;
  gst_caps_replace (&job->input_caps, transcoder->input_caps);
  job->n_stops = transcoder->n_stops;
}

/* Tells whether a pipeline built for @job fits the transcoder: the same
 * start, and a format the same decoder takes. Called with the lock held. */
static gboolean
open_job_is_current_locked (const OpenJob *job, const CimsTranscoder *transcoder)
{
  return job->n_stops == transcoder->n_stops && job->input_codec == transcoder->input_codec
         && job->input_clock_rate == transcoder->input_clock_rate;
}

/* The opener thread: builds a pipeline for the format of its start and
 * installs it. When the transcoder was stopped and started again, or the
 * camera changed codec meanwhile, it builds again for the new state, with
 * the packets still held. */
static gpointer
transcoder_open_thread (gpointer user_data)
{
  OpenJob *job = user_data;
  CimsTranscoder *transcoder = job->transcoder;
  TranscodePipeline *closed = NULL;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      TranscodePipeline *pipeline = pipeline_build (transcoder, job->input_codec, job->input_caps, &error);

      g_mutex_lock (&transcoder->lock);
      if (!transcoder->is_started)
        {
          closed = pipeline;
          held_packets_drop_locked (transcoder);
        }
      else if (!open_job_is_current_locked (job, transcoder))
        {
          open_job_update_locked (job, transcoder);
          g_mutex_unlock (&transcoder->lock);
          if (pipeline != NULL)
            pipeline_close (pipeline);
          continue;
        }
      else if (pipeline == NULL)
        {
          held_packets_drop_locked (transcoder);
          transcoder_schedule_restart_locked (transcoder, error->message);
        }
      else
        {
          closed = pipeline_install_locked (transcoder, pipeline, job->input_caps);
        }
      transcoder->is_opening = FALSE;
      g_mutex_unlock (&transcoder->lock);
      break;
    }

  if (closed != NULL)
    pipeline_close (closed);

  gst_caps_unref (job->input_caps);
  g_free (job);
  return NULL;
}

/* Starts building a pipeline for the current input format on a thread of
 * its own, so that the caller's context goes on. Packets pushed meanwhile
 * are held for it. Does nothing while a build is running: that build
 * checks the format when it ends. Called with the lock held. */
static void
transcoder_open_start_locked (CimsTranscoder *transcoder)
{
  g_autoptr(GError) error = NULL;
  OpenJob *job;

  if (transcoder->is_opening)
    return;

  /* The last opener has at most its pipeline_close() left to run. */
  if (transcoder->opener != NULL)
    g_thread_join (g_steal_pointer (&transcoder->opener));

  job = g_new0 (OpenJob, 1);
  job->transcoder = transcoder;
  open_job_update_locked (job, transcoder);
  transcoder->is_opening = TRUE;
  transcoder->opener = g_thread_try_new ("cims-transcode-open", transcoder_open_thread, job, &error);
  if (transcoder->opener == NULL)
    {
      transcoder->is_opening = FALSE;
      gst_caps_unref (job->input_caps);
      g_free (job);
      transcoder_schedule_restart_locked (transcoder, error->message);
    }
}

/* ---- restarts ---------------------------------------------------------------- */

static gboolean
transcoder_restart_cb (gpointer user_data)
{
  CimsTranscoder *transcoder = user_data;

  g_mutex_lock (&transcoder->lock);
  g_clear_pointer (&transcoder->restart_source, g_source_unref);
  if (transcoder->is_started && transcoder->pipeline == NULL && transcoder->input_caps != NULL)
    transcoder_open_start_locked (transcoder);
  g_mutex_unlock (&transcoder->lock);

  return G_SOURCE_REMOVE;
}

static gboolean
transcoder_report_restart_cb (gpointer user_data)
{
  CimsTranscoder *transcoder = user_data;
  g_autofree gchar *reason = NULL;

  g_mutex_lock (&transcoder->lock);
  g_clear_pointer (&transcoder->report_source, g_source_unref);
  reason = g_steal_pointer (&transcoder->restart_reason);
  g_mutex_unlock (&transcoder->lock);

  if (reason != NULL)
    transcoder_set_state (transcoder, CIMS_TRANSCODER_STATE_RESTARTING, reason);

  return G_SOURCE_REMOVE;
}

static GSource *
transcoder_attach (CimsTranscoder *transcoder, GSource *source, GSourceFunc function)
{
  g_source_set_callback (source, function, transcoder, NULL);
  g_source_attach (source, transcoder->main_context);

  return source;
}

/* Schedules a new pipeline after a delay that doubles after each failure
 * up to 10 s and returns to 500 ms once output flows, and reports
 * RESTARTING on the main context. Any thread, with the lock held and no
 * current pipeline. */
static void
transcoder_schedule_restart_locked (CimsTranscoder *transcoder, const char *reason)
{
  guint delay_ms = transcoder->restart_delay_ms;

  if (!transcoder->is_started || transcoder->restart_source != NULL)
    return;

  transcoder->restart_delay_ms = MIN (delay_ms * 2, TRANSCODE_RESTART_MAX_DELAY_MS);
  g_free (transcoder->restart_reason);
  transcoder->restart_reason = g_strdup_printf ("%s; rebuilding the pipeline in %u ms", reason, delay_ms);
  transcoder_log (transcoder, G_LOG_LEVEL_WARNING, "%s", transcoder->restart_reason);

  transcoder->restart_source = transcoder_attach (transcoder, g_timeout_source_new (delay_ms),
                                                  transcoder_restart_cb);
  if (transcoder->report_source == NULL)
    transcoder->report_source = transcoder_attach (transcoder, g_idle_source_new (),
                                                   transcoder_report_restart_cb);
}

/* ---- input packets ------------------------------------------------------------ */

/* Returns (transfer full) a buffer with a copy of @packet whose SSRC and
 * sequence number continue the previous epoch's: the depayloader would
 * otherwise drop a new epoch's packets whose sequence numbers fall just
 * behind the old ones as duplicates. The first packet of a new epoch is
 * marked DISCONT so the depayloader drops any partial frame. Called with
 * the lock held. */
static GstBuffer *
transcoder_input_buffer_new_locked (CimsTranscoder *transcoder, const CimsRtpPacket *packet)
{
  guint16 seq = cims_rtp_packet_get_seq (packet);
  gboolean is_discont = FALSE;
  guint8 *data;
  GstBuffer *buffer;

  if (!transcoder->has_input_packet)
    {
      transcoder->input_ssrc = cims_rtp_packet_get_ssrc (packet);
      transcoder->input_seq_offset = 0;
    }
  else if (packet->epoch != transcoder->input_epoch)
    {
      transcoder->input_seq_offset = (guint16) (transcoder->last_input_seq + 1 - seq);
      is_discont = TRUE;
    }
  transcoder->has_input_packet = TRUE;
  transcoder->input_epoch = packet->epoch;
  transcoder->last_input_seq = (guint16) (seq + transcoder->input_seq_offset);

  data = g_memdup2 (packet->data, packet->size);
  data[2] = transcoder->last_input_seq >> 8;
  data[3] = transcoder->last_input_seq & 0xff;
  data[8] = transcoder->input_ssrc >> 24;
  data[9] = (transcoder->input_ssrc >> 16) & 0xff;
  data[10] = (transcoder->input_ssrc >> 8) & 0xff;
  data[11] = transcoder->input_ssrc & 0xff;

  buffer = gst_buffer_new_wrapped (data, packet->size);
  if (is_discont)
    GST_BUFFER_FLAG_SET (buffer, GST_BUFFER_FLAG_DISCONT);

  return buffer;
}

/* See pipelines.h. */
void
cims_transcoder_push (CimsTranscoder *transcoder, CimsRtpPacket *packet)
{
  GstAppSrc *appsrc;
  gboolean is_accepted = FALSE;

  g_return_if_fail (transcoder != NULL && packet != NULL);

  g_mutex_lock (&transcoder->lock);
  appsrc = transcoder->pipeline != NULL ? GST_APP_SRC (transcoder->pipeline->appsrc) : NULL;
  if (appsrc != NULL && gst_app_src_get_current_level_bytes (appsrc) + packet->size <= TRANSCODE_INPUT_MAX_BYTES)
    {
      is_accepted = gst_app_src_push_buffer (appsrc, transcoder_input_buffer_new_locked (transcoder, packet))
                    == GST_FLOW_OK;
    }
  else if (appsrc == NULL && transcoder->is_started && transcoder->is_opening
           && transcoder->held_bytes + packet->size <= TRANSCODE_INPUT_MAX_BYTES)
    {
      g_ptr_array_add (transcoder->held_packets, cims_rtp_packet_ref (packet));
      transcoder->held_bytes += packet->size;
      is_accepted = TRUE;
    }

  /* Under the lock too, so that dropping held packets never finds them
   * accepted but not yet counted. */
  g_mutex_lock (&transcoder->stats_lock);
  if (is_accepted)
    transcoder->stats.n_packets_in++;
  else
    transcoder->stats.n_packets_dropped++;
  g_mutex_unlock (&transcoder->stats_lock);
  g_mutex_unlock (&transcoder->lock);
}

/* ---- public API ------------------------------------------------------------------ */

/* See pipelines.h. */
CimsTranscoder *
cims_transcoder_new (const CimsTranscoderSettings *settings,
                     const CimsTranscoderCallbacks *callbacks,
                     gpointer user_data)
{
  CimsTranscoder *transcoder;

  g_return_val_if_fail (settings != NULL && settings->camera_id != NULL && settings->profile_name != NULL, NULL);
  g_return_val_if_fail (settings->output_codec == CIMS_CODEC_H264 || settings->output_codec == CIMS_CODEC_VP8, NULL);
  g_return_val_if_fail (settings->max_kbps > 0 && settings->payload_type < 128, NULL);
  g_return_val_if_fail (callbacks != NULL && callbacks->on_packet != NULL, NULL);

  transcoder = g_new0 (CimsTranscoder, 1);
  transcoder->camera_id = g_strdup (settings->camera_id);
  transcoder->profile_name = g_strdup (settings->profile_name);
  transcoder->output_codec = settings->output_codec;
  transcoder->max_width = settings->max_width;
  transcoder->max_height = settings->max_height;
  transcoder->max_fps = settings->max_fps;
  transcoder->max_kbps = settings->max_kbps;
  transcoder->payload_type = settings->payload_type;
  transcoder->ssrc = settings->ssrc != 0 ? settings->ssrc : (guint32) g_random_int_range (1, G_MAXINT32);
  transcoder->callbacks = *callbacks;
  transcoder->user_data = user_data;
  transcoder->main_context = g_main_context_ref_thread_default ();
  transcoder->restart_delay_ms = TRANSCODE_RESTART_MIN_DELAY_MS;
  transcoder->state = CIMS_TRANSCODER_STATE_STOPPED;
  transcoder->held_packets = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_rtp_packet_unref);
  g_mutex_init (&transcoder->lock);
  g_mutex_init (&transcoder->stats_lock);

  return transcoder;
}

/* See pipelines.h. Must not be called from on_packet: rebuilding joins the
 * thread that runs it. */
void
cims_transcoder_set_input_format (CimsTranscoder *transcoder, CimsCodec codec, guint clock_rate,
                                  const char *fmtp, GPtrArray *parameter_sets, guint32 epoch)
{
  g_autoptr(GstCaps) caps = NULL;
  TranscodePipeline *replaced = NULL;
  gboolean is_same_decoder;
  gboolean is_new_codec;

  g_return_if_fail (transcoder != NULL);
  g_return_if_fail (codec == CIMS_CODEC_H264 || codec == CIMS_CODEC_H265);
  g_return_if_fail (clock_rate > 0);

  caps = input_caps_new (codec, clock_rate, fmtp, parameter_sets);

  g_mutex_lock (&transcoder->lock);
  is_new_codec = transcoder->input_caps != NULL
                 && (transcoder->input_codec != codec || transcoder->input_clock_rate != clock_rate);
  is_same_decoder = transcoder->pipeline != NULL && !is_new_codec;
  /* Packets held for a build from before @epoch are of the old codec: no
   * pipeline for the new one takes them. The new codec's first packets may
   * have come before this call. */
  if (is_new_codec)
    held_packets_drop_before_locked (transcoder, epoch);
  if (transcoder->pipeline != NULL && !is_same_decoder)
    transcoder_log (transcoder, G_LOG_LEVEL_MESSAGE, "camera video changed from %s to %s; rebuilding the pipeline",
                    codec_encoding_name (transcoder->input_codec), codec_encoding_name (codec));
  transcoder->input_codec = codec;
  transcoder->input_clock_rate = clock_rate;
  gst_caps_replace (&transcoder->input_caps, caps);

  /* The same depayloader takes new parameter sets as new caps, in order
   * with the packets; the decoder follows a new SPS by itself. Another
   * codec needs another pipeline. A build in progress finds the new format
   * when it ends, and builds again or takes the new caps. */
  if (is_same_decoder)
    {
      gst_app_src_set_caps (GST_APP_SRC (transcoder->pipeline->appsrc), caps);
    }
  else if (transcoder->is_started && transcoder->restart_source == NULL)
    {
      replaced = g_steal_pointer (&transcoder->pipeline);
      transcoder_open_start_locked (transcoder);
    }
  g_mutex_unlock (&transcoder->lock);

  if (replaced != NULL)
    pipeline_close (replaced);
}

/* See pipelines.h. */
void
cims_transcoder_request_keyframe (CimsTranscoder *transcoder)
{
  g_autoptr(GstPad) encoder_src = NULL;
  gint64 now_us = g_get_monotonic_time ();
  gboolean is_suppressed = FALSE;

  g_return_if_fail (transcoder != NULL);

  g_mutex_lock (&transcoder->lock);
  if (transcoder->last_keyframe_request_us != 0
      && now_us - transcoder->last_keyframe_request_us < TRANSCODE_KEYFRAME_MIN_INTERVAL_US)
    is_suppressed = TRUE;
  else if (transcoder->pipeline != NULL)
    encoder_src = gst_object_ref (transcoder->pipeline->encoder_src);
  if (encoder_src != NULL)
    transcoder->last_keyframe_request_us = now_us;
  g_mutex_unlock (&transcoder->lock);

  /* Without a pipeline there is nothing to force: a new pipeline starts
   * with a keyframe anyway. */
  if (!is_suppressed && encoder_src == NULL)
    return;

  g_mutex_lock (&transcoder->stats_lock);
  if (is_suppressed)
    transcoder->stats.n_keyframe_requests_suppressed++;
  else
    transcoder->stats.n_keyframe_requests++;
  g_mutex_unlock (&transcoder->stats_lock);

  if (encoder_src != NULL)
    gst_pad_send_event (encoder_src, gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 0));
}

/* See pipelines.h. */
void
cims_transcoder_start (CimsTranscoder *transcoder)
{
  g_return_if_fail (transcoder != NULL);

  g_mutex_lock (&transcoder->lock);
  if (transcoder->is_started)
    {
      g_mutex_unlock (&transcoder->lock);
      return;
    }
  transcoder->is_started = TRUE;
  transcoder->restart_delay_ms = TRANSCODE_RESTART_MIN_DELAY_MS;
  if (transcoder->input_caps != NULL)
    transcoder_open_start_locked (transcoder);
  g_mutex_unlock (&transcoder->lock);

  transcoder_log (transcoder, G_LOG_LEVEL_MESSAGE, "transcoder started: %s up to %ux%u, %u fps, %u kbit/s",
                  cims_codec_to_string (transcoder->output_codec), transcoder->max_width, transcoder->max_height,
                  transcoder->max_fps, transcoder->max_kbps);
  transcoder_set_state (transcoder, CIMS_TRANSCODER_STATE_WAITING, "started");
}

static void
source_clear (GSource **source)
{
  if (*source == NULL)
    return;

  g_source_destroy (*source);
  g_clear_pointer (source, g_source_unref);
}

/* See pipelines.h. */
void
cims_transcoder_stop (CimsTranscoder *transcoder)
{
  TranscodePipeline *pipeline;

  g_return_if_fail (transcoder != NULL);

  g_mutex_lock (&transcoder->lock);
  if (!transcoder->is_started)
    {
      g_mutex_unlock (&transcoder->lock);
      return;
    }
  transcoder->is_started = FALSE;
  transcoder->n_stops++;
  held_packets_drop_locked (transcoder);
  pipeline = g_steal_pointer (&transcoder->pipeline);
  source_clear (&transcoder->restart_source);
  source_clear (&transcoder->report_source);
  g_clear_pointer (&transcoder->restart_reason, g_free);
  g_mutex_unlock (&transcoder->lock);

  if (pipeline != NULL)
    pipeline_close (pipeline);

  transcoder_log (transcoder, G_LOG_LEVEL_MESSAGE, "transcoder stopped");
  transcoder_set_state (transcoder, CIMS_TRANSCODER_STATE_STOPPED, "stopped by request");
}

/* See pipelines.h. */
void
cims_transcoder_free (CimsTranscoder *transcoder)
{
  if (transcoder == NULL)
    return;

  cims_transcoder_stop (transcoder);

  /* A build still running finds the transcoder stopped and closes its
   * pipeline. Joining it takes up to a build's time, and only when the
   * last viewer left while the first one's pipeline was being built. */
  if (transcoder->opener != NULL)
    g_thread_join (g_steal_pointer (&transcoder->opener));

  g_ptr_array_unref (transcoder->held_packets);
  gst_clear_caps (&transcoder->input_caps);
  g_mutex_clear (&transcoder->lock);
  g_mutex_clear (&transcoder->stats_lock);
  g_main_context_unref (transcoder->main_context);
  g_free (transcoder->camera_id);
  g_free (transcoder->profile_name);
  g_free (transcoder);
}

/* See pipelines.h. Frames dropped are the QoS drops plus the decoded frames
 * that never reached the encoder, which are the frame-rate limiter's drops
 * and at most the one frame on its way between the two. */
void
cims_transcoder_get_stats (CimsTranscoder *transcoder, CimsTranscoderStats *stats)
{
  g_return_if_fail (transcoder != NULL && stats != NULL);

  g_mutex_lock (&transcoder->stats_lock);
  *stats = transcoder->stats;
  stats->n_frames_dropped += transcoder->stats.n_frames_in - MIN (transcoder->stats.n_frames_in,
                                                                  transcoder->n_frames_to_encoder);
  stats->mean_encode_us = transcoder->n_timed_frames > 0 ? transcoder->total_encode_us / transcoder->n_timed_frames : 0;
  g_mutex_unlock (&transcoder->stats_lock);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Endless playback of a footage file into a simulated camera's appsrc: a
 * separate decoding pipeline, sought back to the start at every end of file,
 * whose frames get fresh, evenly spaced timestamps so the stream never jumps.
 * Encoding and serving the frames is the media factory's job. */
#include "camera-sim.h"

#include <math.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>

#define PROBE_TIMEOUT_NS (10 * GST_SECOND)

/* decodebin picks the demuxer and decoder, e.g. avidemux and avdec_msmpeg4
 * (the DivX 3 decoder of gstreamer1.0-libav 1.22) for AVI footage. */
#define DECODE_LAUNCH "filesrc name=file ! decodebin ! videoconvert ! videoscale ! " \
                      "videorate ! capsfilter name=caps ! appsink name=sink sync=false"

struct _CimsSimFootage {
  char *path;
  GstElement *decoder;       /* the decoding pipeline */
  GSource *bus_watch;        /* on the main context */
  GstElement *appsrc;        /* of the media pipeline */
  GstPad *appsrc_pad;
  gulong stamp_probe_id;
  guint fps;

  /* Written by the media's streaming thread only, in footage_stamp_cb. */
  GstClockTime base_ns;      /* running time at the first frame */
  guint64 n_frames;          /* frames stamped since the start */
};

static GstElement *
footage_decoder_new (const char *path, GstCaps *caps, GError **error)
{
  g_autoptr(GstElement) decoder = gst_parse_launch (DECODE_LAUNCH, error);
  g_autoptr(GstElement) file = NULL;
  g_autoptr(GstElement) capsfilter = NULL;

  if (decoder == NULL)
    return NULL;
  gst_object_ref_sink (decoder);

  file = gst_bin_get_by_name (GST_BIN (decoder), "file");
  g_object_set (file, "location", path, NULL);

  capsfilter = gst_bin_get_by_name (GST_BIN (decoder), "caps");
  g_object_set (capsfilter, "caps", caps, NULL);

  return g_steal_pointer (&decoder);
}

/* Returns the first error message on @decoder's bus, for a probe failure. */
static char *
footage_bus_error (GstElement *decoder)
{
  g_autoptr(GstBus) bus = gst_element_get_bus (decoder);
  g_autoptr(GstMessage) message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  g_autoptr(GError) error = NULL;

  if (message == NULL)
    return g_strdup ("no frame decoded within 10 s");

  gst_message_parse_error (message, &error, NULL);
  return g_strdup (error->message);
}

static gboolean
footage_read_caps (GstCaps *caps, guint *width, guint *height, guint *fps)
{
  GstStructure *structure = gst_caps_get_structure (caps, 0);
  int w, h, fps_n, fps_d;

  if (!gst_structure_get_int (structure, "width", &w) ||
      !gst_structure_get_int (structure, "height", &h) ||
      !gst_structure_get_fraction (structure, "framerate", &fps_n, &fps_d) ||
      fps_n <= 0 || fps_d <= 0)
    return FALSE;

  /* NOTE: a fractional rate such as 30000/1001 is served rounded, as 30. */
  *width = (guint) w & ~1u;
  *height = (guint) h & ~1u;
  *fps = MAX (1, (guint) lround ((double) fps_n / fps_d));
  return TRUE;
}

gboolean
cims_sim_footage_probe (const char *path, guint *width, guint *height, guint *fps,
                        GError **error)
{
  g_autoptr(GstCaps) any_size = gst_caps_from_string ("video/x-raw,format=I420");
  g_autoptr(GstElement) decoder = NULL;
  g_autoptr(GstElement) sink = NULL;
  g_autoptr(GstSample) sample = NULL;
  gboolean is_read;

  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_FOOTAGE,
                 "footage file '%s' not found", path);
    return FALSE;
  }

  decoder = footage_decoder_new (path, any_size, error);
  if (decoder == NULL)
    return FALSE;

  sink = gst_bin_get_by_name (GST_BIN (decoder), "sink");
  gst_element_set_state (decoder, GST_STATE_PAUSED);
  if (gst_element_get_state (decoder, NULL, NULL, PROBE_TIMEOUT_NS) == GST_STATE_CHANGE_SUCCESS)
    sample = gst_app_sink_pull_preroll (GST_APP_SINK (sink));

  is_read = sample != NULL &&
            footage_read_caps (gst_sample_get_caps (sample), width, height, fps);
  if (!is_read) {
    g_autofree char *reason = footage_bus_error (decoder);

    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_FOOTAGE,
                 "footage file '%s' cannot be decoded: %s", path, reason);
  }

  gst_element_set_state (decoder, GST_STATE_NULL);
  return is_read;
}

/* Stamps each frame leaving the appsrc at base + n / fps, so the timestamps
 * run on evenly across every restart of the file. The base is the media's
 * running time at the first frame. clocksync downstream holds frame n until
 * that running time, and the full appsrc queue then holds back the decoder. */
static GstPadProbeReturn
footage_stamp_cb (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  CimsSimFootage *footage = user_data;
  GstBuffer *buffer = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  GstClockTime pts, next_pts;

  if (footage->n_frames == 0) {
    footage->base_ns = gst_element_get_current_running_time (footage->appsrc);
    if (!GST_CLOCK_TIME_IS_VALID (footage->base_ns))
      footage->base_ns = 0;
  }

  pts = footage->base_ns + gst_util_uint64_scale (footage->n_frames, GST_SECOND, footage->fps);
  next_pts = footage->base_ns + gst_util_uint64_scale (footage->n_frames + 1, GST_SECOND, footage->fps);
  footage->n_frames++;

  GST_BUFFER_PTS (buffer) = pts;
  GST_BUFFER_DTS (buffer) = pts;
  GST_BUFFER_DURATION (buffer) = next_pts - pts;
  GST_PAD_PROBE_INFO_DATA (info) = buffer;

  return GST_PAD_PROBE_OK;
}

/* Runs on the decoder's streaming thread. The push blocks while the appsrc
 * queue is full, and returns FLUSHING once the media pipeline has stopped. */
static GstFlowReturn
footage_new_sample_cb (GstAppSink *sink, gpointer user_data)
{
  CimsSimFootage *footage = user_data;
  g_autoptr(GstSample) sample = gst_app_sink_pull_sample (sink);
  GstBuffer *buffer;

  if (sample == NULL)
    return GST_FLOW_FLUSHING;

  buffer = gst_buffer_ref (gst_sample_get_buffer (sample));
  return gst_app_src_push_buffer (GST_APP_SRC (footage->appsrc), buffer);
}

static gboolean
footage_bus_cb (GstBus *bus, GstMessage *message, gpointer user_data)
{
  CimsSimFootage *footage = user_data;
  g_autoptr(GError) error = NULL;

  switch (GST_MESSAGE_TYPE (message)) {
    case GST_MESSAGE_EOS:
      g_debug ("footage '%s' ended, starting it again", footage->path);
      if (!gst_element_seek_simple (footage->decoder, GST_FORMAT_TIME,
                                    GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_KEY_UNIT, 0))
        g_warning ("footage '%s': seek to the start failed, the picture stops", footage->path);
      break;
    case GST_MESSAGE_ERROR:
      /* NOTE: a decoding error is not retried: the camera's picture freezes
       * until its last client leaves and a new media starts the loop again. */
      gst_message_parse_error (message, &error, NULL);
      g_warning ("footage '%s': decoding failed: %s; the picture stops", footage->path,
                 error->message);
      break;
    default:
      break;
  }

  return G_SOURCE_CONTINUE;
}

static void
footage_watch_bus (CimsSimFootage *footage)
{
  g_autoptr(GstBus) bus = gst_element_get_bus (footage->decoder);

  /* Attached to the main context explicitly: the media is configured on an
   * RTSP client thread whose thread-default context may go away. */
  footage->bus_watch = gst_bus_create_watch (bus);
  g_source_set_callback (footage->bus_watch, G_SOURCE_FUNC (footage_bus_cb), footage, NULL);
  g_source_attach (footage->bus_watch, NULL);
}

CimsSimFootage *
cims_sim_footage_start (const char *path, guint width, guint height, guint fps,
                        GstElement *appsrc, GError **error)
{
  g_autoptr(CimsSimFootage) footage = g_new0 (CimsSimFootage, 1);
  g_autoptr(GstCaps) caps = NULL;
  g_autoptr(GstElement) sink = NULL;
  GstAppSinkCallbacks callbacks = { .new_sample = footage_new_sample_cb };

  g_return_val_if_fail (GST_IS_APP_SRC (appsrc), NULL);
  g_return_val_if_fail (fps > 0, NULL);

  footage->path = g_strdup (path);
  footage->fps = fps;
  footage->appsrc = gst_object_ref (appsrc);

  caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "I420",
                              "width", G_TYPE_INT, (int) width, "height", G_TYPE_INT, (int) height,
                              "framerate", GST_TYPE_FRACTION, (int) fps, 1,
                              "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
  footage->decoder = footage_decoder_new (path, caps, error);
  if (footage->decoder == NULL)
    return NULL;

  footage->appsrc_pad = gst_element_get_static_pad (appsrc, "src");
  footage->stamp_probe_id = gst_pad_add_probe (footage->appsrc_pad, GST_PAD_PROBE_TYPE_BUFFER,
                                               footage_stamp_cb, footage, NULL);

  sink = gst_bin_get_by_name (GST_BIN (footage->decoder), "sink");
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &callbacks, footage, NULL);
  footage_watch_bus (footage);

  if (gst_element_set_state (footage->decoder, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_FOOTAGE,
                 "footage file '%s': decoding pipeline failed to start", path);
    return NULL;
  }

  return g_steal_pointer (&footage);
}

void
cims_sim_footage_free (CimsSimFootage *footage)
{
  if (footage == NULL)
    return;

  /* The decoder goes first: once it is at NULL its streaming thread has
   * left footage_new_sample_cb and no longer touches the appsrc. */
  if (footage->decoder != NULL)
    gst_element_set_state (footage->decoder, GST_STATE_NULL);
  g_debug ("footage '%s' stopped after %" G_GUINT64_FORMAT " frames", footage->path,
           footage->n_frames);

  if (footage->bus_watch != NULL) {
    g_source_destroy (footage->bus_watch);
    g_source_unref (footage->bus_watch);
  }

  if (footage->stamp_probe_id != 0)
    gst_pad_remove_probe (footage->appsrc_pad, footage->stamp_probe_id);

  g_clear_object (&footage->appsrc_pad);
  g_clear_object (&footage->appsrc);
  g_clear_object (&footage->decoder);
  g_free (footage->path);
  g_free (footage);
}

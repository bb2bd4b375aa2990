/* SPDX-License-Identifier: Apache-2.0 */
/* The transcoder fed with RTP from real encoders in the test (x264enc and
 * x265enc), its output depayloaded and decoded by a second pipeline: sizes,
 * codecs, camera changes mid-stream, keyframe request limits and stats. */
#include "pipelines/pipelines.h"

#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>

#include <string.h>

#define TEST_WAIT_TIMEOUT_MS 30000
#define TEST_OUTPUT_PT 102
#define TEST_OUTPUT_SSRC 0x5eed0001u

/* Live pattern sources, so packets reach the transcoder at the camera's pace
 * as they would from the ingest. */
#define TEST_H264_CAMERA \
  "videotestsrc is-live=true pattern=ball " \
  "! capsfilter name=size caps=video/x-raw,format=I420,width=%u,height=%u,framerate=30/1 " \
  "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bframes=0 " \
  "! rtph264pay name=pay pt=96 config-interval=-1 ssrc=%u seqnum-offset=%u " \
  "! appsink name=sink sync=false"
/* One keyframe in 20 s: a transcoder that lost the first one shows nothing. */
#define TEST_H264_CAMERA_ONE_KEYFRAME \
  "videotestsrc is-live=true pattern=ball " \
  "! capsfilter name=size caps=video/x-raw,format=I420,width=%u,height=%u,framerate=30/1 " \
  "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=600 bframes=0 " \
  "! rtph264pay name=pay pt=96 config-interval=-1 ssrc=%u seqnum-offset=%u " \
  "! appsink name=sink sync=false"
#define TEST_H265_CAMERA_ONE_KEYFRAME \
  "videotestsrc is-live=true pattern=ball " \
  "! capsfilter name=size caps=video/x-raw,format=I420,width=%u,height=%u,framerate=30/1 " \
  "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=600 " \
  "! rtph265pay name=pay pt=96 config-interval=-1 ssrc=%u seqnum-offset=%u " \
  "! appsink name=sink sync=false"
#define TEST_H265_CAMERA \
  "videotestsrc is-live=true pattern=ball " \
  "! capsfilter name=size caps=video/x-raw,format=I420,width=%u,height=%u,framerate=30/1 " \
  "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 " \
  "! rtph265pay name=pay pt=96 config-interval=-1 ssrc=%u seqnum-offset=%u " \
  "! appsink name=sink sync=false"

#define TEST_H264_VIEWER \
  "appsrc name=src is-live=true format=time do-timestamp=true " \
  "caps=application/x-rtp,media=video,encoding-name=H264,clock-rate=90000 " \
  "! rtph264depay ! h264parse ! avdec_h264 ! appsink name=sink sync=false"
#define TEST_VP8_VIEWER \
  "appsrc name=src is-live=true format=time do-timestamp=true " \
  "caps=application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000 " \
  "! rtpvp8depay ! vp8dec ! appsink name=sink sync=false"

/* ---- the viewer: decodes the transcoder's output -------------------------- */

typedef struct {
  GstElement *pipeline;
  GstElement *appsrc;

  GMutex lock;                  /* protects the fields below */
  guint n_frames;
  gint width;
  gint height;
  guint n_packets;
  guint n_wrong_payload_type;
  guint n_wrong_ssrc;
  guint32 last_epoch;
  guint n_epoch_changes;
} TestViewer;

static GstFlowReturn
test_viewer_new_sample_cb (GstAppSink *appsink, gpointer user_data)
{
  TestViewer *viewer = user_data;
  g_autoptr(GstSample) sample = gst_app_sink_pull_sample (appsink);
  const GstStructure *s;

  if (sample == NULL)
    return GST_FLOW_FLUSHING;

  s = gst_caps_get_structure (gst_sample_get_caps (sample), 0);
  g_mutex_lock (&viewer->lock);
  viewer->n_frames++;
  gst_structure_get_int (s, "width", &viewer->width);
  gst_structure_get_int (s, "height", &viewer->height);
  g_mutex_unlock (&viewer->lock);

  return GST_FLOW_OK;
}

static TestViewer *
test_viewer_new (const char *launch)
{
  TestViewer *viewer = g_new0 (TestViewer, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GstElement) appsink = NULL;
  GstAppSinkCallbacks callbacks = { .new_sample = test_viewer_new_sample_cb };

  g_mutex_init (&viewer->lock);
  viewer->pipeline = gst_parse_launch (launch, &error);
  g_assert_no_error (error);
  viewer->appsrc = gst_bin_get_by_name (GST_BIN (viewer->pipeline), "src");
  appsink = gst_bin_get_by_name (GST_BIN (viewer->pipeline), "sink");
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &callbacks, viewer, NULL);
  g_assert_cmpint (gst_element_set_state (viewer->pipeline, GST_STATE_PLAYING), !=, GST_STATE_CHANGE_FAILURE);

  return viewer;
}

static void
test_viewer_free (TestViewer *viewer)
{
  gst_element_set_state (viewer->pipeline, GST_STATE_NULL);
  gst_object_unref (viewer->appsrc);
  gst_object_unref (viewer->pipeline);
  g_mutex_clear (&viewer->lock);
  g_free (viewer);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestViewer, test_viewer_free)

/* The transcoder's on_packet: checks the header and feeds the decoder. */
static void
test_viewer_packet_cb (CimsRtpPacket *packet, gpointer user_data)
{
  TestViewer *viewer = user_data;
  GstBuffer *buffer = gst_buffer_new_memdup (packet->data, packet->size);

  g_mutex_lock (&viewer->lock);
  viewer->n_packets++;
  if (cims_rtp_packet_get_payload_type (packet) != TEST_OUTPUT_PT)
    viewer->n_wrong_payload_type++;
  if (cims_rtp_packet_get_ssrc (packet) != TEST_OUTPUT_SSRC)
    viewer->n_wrong_ssrc++;
  if (viewer->last_epoch != 0 && packet->epoch != viewer->last_epoch)
    viewer->n_epoch_changes++;
  viewer->last_epoch = packet->epoch;
  g_mutex_unlock (&viewer->lock);

  gst_app_src_push_buffer (GST_APP_SRC (viewer->appsrc), buffer);
}

static guint
test_viewer_get_frames (TestViewer *viewer, gint *width, gint *height)
{
  guint n_frames;

  g_mutex_lock (&viewer->lock);
  n_frames = viewer->n_frames;
  if (width != NULL)
    *width = viewer->width;
  if (height != NULL)
    *height = viewer->height;
  g_mutex_unlock (&viewer->lock);

  return n_frames;
}

/* ---- the camera: encodes a test pattern to RTP ----------------------------- */

typedef struct {
  GstElement *pipeline;
  CimsCodec codec;
  CimsTranscoder *transcoder;
  guint32 epoch;
  gboolean has_sent_format;     /* appsink thread only */
  guint16 last_seq;             /* appsink thread until the camera stops */
  gint n_frames;                /* atomic: packets with the marker bit pushed */
  GMutex recorded_lock;
  GPtrArray *recorded;          /* a recording camera's packets, instead of pushing them */
  gchar *fmtp;                  /* a recording camera's fmtp */
} TestCamera;

/* Returns (transfer full) the fmtp of the payloader's caps, as the ingest
 * rebuilds it from rtspsrc's caps. */
static gchar *
test_fmtp_from_caps (const GstStructure *s)
{
  static const char *const keys[] = { "packetization-mode", "profile-level-id", "sprop-parameter-sets",
                                      "sprop-vps", "sprop-sps", "sprop-pps" };
  GString *fmtp = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      const char *value = gst_structure_get_string (s, keys[i]);

      if (value == NULL)
        continue;
      if (fmtp->len > 0)
        g_string_append_c (fmtp, ';');
      g_string_append_printf (fmtp, "%s=%s", keys[i], value);
    }

  return g_string_free (fmtp, FALSE);
}

/* Sends the format once per camera (once per epoch, like the ingest), then
 * every packet. Runs on the camera's appsink thread. */
static GstFlowReturn
test_camera_new_sample_cb (GstAppSink *appsink, gpointer user_data)
{
  TestCamera *camera = user_data;
  g_autoptr(GstSample) sample = gst_app_sink_pull_sample (appsink);
  g_autoptr(CimsRtpPacket) packet = NULL;
  GstMapInfo map;

  if (sample == NULL)
    return GST_FLOW_FLUSHING;

  if (camera->recorded != NULL)
    {
      gst_buffer_map (gst_sample_get_buffer (sample), &map, GST_MAP_READ);
      packet = cims_rtp_packet_new (map.data, map.size, camera->epoch, g_get_monotonic_time ());
      gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
      g_mutex_lock (&camera->recorded_lock);
      if (camera->fmtp == NULL)
        camera->fmtp = test_fmtp_from_caps (gst_caps_get_structure (gst_sample_get_caps (sample), 0));
      g_ptr_array_add (camera->recorded, g_steal_pointer (&packet));
      g_mutex_unlock (&camera->recorded_lock);
      return GST_FLOW_OK;
    }

  if (!camera->has_sent_format)
    {
      g_autofree gchar *fmtp = test_fmtp_from_caps (gst_caps_get_structure (gst_sample_get_caps (sample), 0));

      cims_transcoder_set_input_format (camera->transcoder, camera->codec, 90000, fmtp, NULL, camera->epoch);
      camera->has_sent_format = TRUE;
    }

  gst_buffer_map (gst_sample_get_buffer (sample), &map, GST_MAP_READ);
  packet = cims_rtp_packet_new (map.data, map.size, camera->epoch, g_get_monotonic_time ());
  gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
  g_assert_nonnull (packet);
  camera->last_seq = cims_rtp_packet_get_seq (packet);
  if (cims_rtp_packet_get_marker (packet))
    g_atomic_int_inc (&camera->n_frames);
  cims_transcoder_push (camera->transcoder, packet);

  return GST_FLOW_OK;
}

static TestCamera *
test_camera_new_from_launch (CimsTranscoder *transcoder, const char *launch, CimsCodec codec, guint32 epoch)
{
  TestCamera *camera = g_new0 (TestCamera, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GstElement) appsink = NULL;
  GstAppSinkCallbacks callbacks = { .new_sample = test_camera_new_sample_cb };

  camera->codec = codec;
  camera->transcoder = transcoder;
  camera->epoch = epoch;
  g_mutex_init (&camera->recorded_lock);
  if (transcoder == NULL)
    camera->recorded = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_rtp_packet_unref);
  camera->pipeline = gst_parse_launch (launch, &error);
  g_assert_no_error (error);
  appsink = gst_bin_get_by_name (GST_BIN (camera->pipeline), "sink");
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &callbacks, camera, NULL);
  g_assert_cmpint (gst_element_set_state (camera->pipeline, GST_STATE_PLAYING), !=, GST_STATE_CHANGE_FAILURE);

  return camera;
}

static TestCamera *
test_camera_new (CimsTranscoder *transcoder, CimsCodec codec, guint width, guint height,
                 guint32 ssrc, guint16 seqnum_offset, guint32 epoch)
{
  g_autofree gchar *launch = g_strdup_printf (codec == CIMS_CODEC_H265 ? TEST_H265_CAMERA : TEST_H264_CAMERA,
                                              width, height, ssrc, seqnum_offset);

  return test_camera_new_from_launch (transcoder, launch, codec, epoch);
}

static void
test_camera_set_size (TestCamera *camera, guint width, guint height)
{
  g_autoptr(GstElement) size = gst_bin_get_by_name (GST_BIN (camera->pipeline), "size");
  g_autoptr(GstCaps) caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "I420",
                                                 "width", G_TYPE_INT, (int) width, "height", G_TYPE_INT, (int) height,
                                                 "framerate", GST_TYPE_FRACTION, 30, 1, NULL);

  g_object_set (size, "caps", caps, NULL);
}

static void
test_camera_free (TestCamera *camera)
{
  gst_element_set_state (camera->pipeline, GST_STATE_NULL);
  gst_object_unref (camera->pipeline);
  g_clear_pointer (&camera->recorded, g_ptr_array_unref);
  g_free (camera->fmtp);
  g_mutex_clear (&camera->recorded_lock);
  g_free (camera);
}

/* Records at least @n_frames frames of a camera that has one keyframe, at
 * its start, and stops it. Returns the camera with its packets in
 * recorded and its fmtp. */
static TestCamera *
test_camera_record (const char *launch_format, CimsCodec codec, guint32 epoch, guint n_frames)
{
  g_autofree gchar *launch = g_strdup_printf (launch_format, 320, 240, 0x5555, 0);
  TestCamera *camera = test_camera_new_from_launch (NULL, launch, codec, epoch);
  gint64 deadline_us = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_MS * 1000;
  guint n_markers = 0;

  while (n_markers < n_frames)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline_us);
      g_usleep (10000);
      g_mutex_lock (&camera->recorded_lock);
      n_markers = 0;
      for (guint i = 0; i < camera->recorded->len; i++)
        n_markers += cims_rtp_packet_get_marker (g_ptr_array_index (camera->recorded, i)) ? 1 : 0;
      g_mutex_unlock (&camera->recorded_lock);
    }

  gst_element_set_state (camera->pipeline, GST_STATE_NULL);
  return camera;
}

/* Pushes the recorded packets from the @first one on, the first frame at
 * once and then one frame each @frame_interval_ms, as a camera sends them
 * (0: all at once), and stops after @n_frames frames (0: all). Returns the
 * index of the next packet. */
static guint
test_camera_push_recorded (TestCamera *camera, CimsTranscoder *transcoder, guint first, guint n_frames,
                           guint frame_interval_ms)
{
  guint n_pushed_frames = 0;

  for (guint i = first; i < camera->recorded->len; i++)
    {
      CimsRtpPacket *packet = g_ptr_array_index (camera->recorded, i);

      cims_transcoder_push (transcoder, packet);
      if (!cims_rtp_packet_get_marker (packet))
        continue;

      if (n_frames > 0 && ++n_pushed_frames == n_frames)
        return i + 1;
      if (frame_interval_ms > 0)
        g_usleep (frame_interval_ms * 1000);
    }

  return camera->recorded->len;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestCamera, test_camera_free)

/* ---- helpers ---------------------------------------------------------------------- */

typedef struct {
  guint n_running;
  guint n_restarting;
  CimsTranscoderState last;
} TestStates;

static void
test_state_cb (CimsTranscoderState state, const char *message, gpointer user_data)
{
  TestStates *states = user_data;

  states->last = state;
  if (state == CIMS_TRANSCODER_STATE_RUNNING)
    states->n_running++;
  if (state == CIMS_TRANSCODER_STATE_RESTARTING)
    states->n_restarting++;
}

typedef struct {
  TestViewer *viewer;
  TestStates states;
} TestOutput;

static void
test_output_packet_cb (CimsRtpPacket *packet, gpointer user_data)
{
  TestOutput *output = user_data;

  test_viewer_packet_cb (packet, output->viewer);
}

static void
test_output_state_cb (CimsTranscoderState state, const char *message, gpointer user_data)
{
  TestOutput *output = user_data;

  test_state_cb (state, message, &output->states);
}

static CimsTranscoder *
test_transcoder_new (TestOutput *output, CimsCodec output_codec, guint max_width, guint max_height,
                     guint max_fps)
{
  CimsTranscoderSettings settings = {
    .camera_id = "test-cam",
    .profile_name = "legacy-640",
    .output_codec = output_codec,
    .max_width = max_width,
    .max_height = max_height,
    .max_fps = max_fps,
    .max_kbps = 600,
    .payload_type = TEST_OUTPUT_PT,
    .ssrc = TEST_OUTPUT_SSRC,
  };
  CimsTranscoderCallbacks callbacks = {
    .on_packet = test_output_packet_cb,
    .on_state = test_output_state_cb,
  };

  return cims_transcoder_new (&settings, &callbacks, output);
}

/* Iterates the main context until the viewer has decoded @n_frames frames
 * more than @since; fails the test after TEST_WAIT_TIMEOUT_MS. */
static void
test_wait_for_frames (TestViewer *viewer, guint since, guint n_frames)
{
  gint64 deadline_us = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_MS * 1000;

  while (test_viewer_get_frames (viewer, NULL, NULL) < since + n_frames)
    {
      if (g_get_monotonic_time () > deadline_us)
        g_error ("viewer decoded %u frames in %d ms, expected %u", test_viewer_get_frames (viewer, NULL, NULL) - since,
                 TEST_WAIT_TIMEOUT_MS, n_frames);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (2000);
    }
}

/* Iterates the main context for @duration_ms. */
static void
test_run_for (guint duration_ms)
{
  gint64 end_us = g_get_monotonic_time () + duration_ms * 1000;

  while (g_get_monotonic_time () < end_us)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (2000);
    }
}

/* Waits until the viewer's decoded size is @width x @height. */
static void
test_wait_for_size (TestViewer *viewer, gint width, gint height)
{
  gint64 deadline_us = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_MS * 1000;
  gint decoded_width = 0;
  gint decoded_height = 0;

  for (;;)
    {
      test_viewer_get_frames (viewer, &decoded_width, &decoded_height);
      if (decoded_width == width && decoded_height == height)
        return;
      if (g_get_monotonic_time () > deadline_us)
        g_error ("viewer decodes %dx%d after %d ms, expected %dx%d", decoded_width, decoded_height,
                 TEST_WAIT_TIMEOUT_MS, width, height);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (2000);
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static void
test_transcode_fits_size_keeping_aspect (void)
{
  static const struct {
    guint width, height, par_n, par_d, max_width, max_height;
    guint expected_width, expected_height;
  } cases[] = {
    { 1280, 720, 1, 1, 640, 360, 640, 360 },
    { 1920, 1080, 1, 1, 640, 360, 640, 360 },
    { 960, 540, 1, 1, 640, 360, 640, 360 },
    { 768, 576, 1, 1, 640, 360, 480, 360 },     /* 4:3 limited by height */
    { 1920, 800, 1, 1, 640, 360, 640, 266 },    /* 2.4:1 limited by width */
    { 320, 240, 1, 1, 640, 360, 320, 240 },     /* never upscaled */
    { 1920, 1080, 1, 1, 0, 0, 1920, 1080 },     /* no limit */
    { 1279, 719, 1, 1, 1920, 1080, 1278, 718 }, /* odd sizes rounded down to even */
    { 720, 576, 16, 15, 640, 360, 480, 360 },   /* PAL 4:3 with non-square pixels: 768x576 shown */
    { 1440, 1080, 4, 3, 640, 360, 640, 360 },   /* anamorphic 16:9 */
    { 4000, 2, 1, 1, 640, 360, 640, 2 },        /* at least 2 pixels high */
  };
  guint width;
  guint height;

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("case %zu: %ux%u par %u/%u into %ux%u", i, cases[i].width, cases[i].height,
                      cases[i].par_n, cases[i].par_d, cases[i].max_width, cases[i].max_height);
      g_assert_true (cims_transcode_fit_size (cases[i].width, cases[i].height, cases[i].par_n, cases[i].par_d,
                                              cases[i].max_width, cases[i].max_height, &width, &height));
      g_assert_cmpuint (width, ==, cases[i].expected_width);
      g_assert_cmpuint (height, ==, cases[i].expected_height);
    }

  g_assert_false (cims_transcode_fit_size (0, 720, 1, 1, 640, 360, &width, &height));
  g_assert_false (cims_transcode_fit_size (1280, 720, 0, 1, 640, 360, &width, &height));
}

static void
test_transcode_h264_to_legacy_640x360 (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats first;
  CimsTranscoderStats second;
  gint width;
  gint height;

  cims_transcoder_start (transcoder);
  camera = test_camera_new (transcoder, CIMS_CODEC_H264, 1280, 720, 0x1111, 0, 1);

  test_wait_for_frames (viewer, 0, 15);
  test_viewer_get_frames (viewer, &width, &height);
  g_assert_cmpint (width, ==, 640);
  g_assert_cmpint (height, ==, 360);
  g_assert_cmpuint (output.states.n_running, ==, 1);
  g_assert_cmpuint (output.states.n_restarting, ==, 0);
  g_assert_cmpuint (viewer->n_wrong_payload_type, ==, 0);
  g_assert_cmpuint (viewer->n_wrong_ssrc, ==, 0);

  cims_transcoder_get_stats (transcoder, &first);
  test_wait_for_frames (viewer, test_viewer_get_frames (viewer, NULL, NULL), 15);
  cims_transcoder_get_stats (transcoder, &second);

  g_assert_true (second.is_running);
  g_assert_cmpuint (second.epoch, ==, 1);
  g_assert_cmpuint (second.input_width, ==, 1280);
  g_assert_cmpuint (second.input_height, ==, 720);
  g_assert_cmpuint (second.output_width, ==, 640);
  g_assert_cmpuint (second.output_height, ==, 360);
  g_assert_cmpuint (second.n_packets_in, >, first.n_packets_in);
  g_assert_cmpuint (second.n_frames_in, >, first.n_frames_in);
  g_assert_cmpuint (second.n_frames_out, >, first.n_frames_out);
  g_assert_cmpuint (second.n_packets_out, >, first.n_packets_out);

  /* A 30 fps camera into a 15 fps profile: about every other frame dropped. */
  g_test_message ("frames in %" G_GUINT64_FORMAT ", out %" G_GUINT64_FORMAT ", dropped %" G_GUINT64_FORMAT,
                  second.n_frames_in, second.n_frames_out, second.n_frames_dropped);
  g_assert_cmpuint (second.n_frames_dropped, >, 0);
  g_assert_cmpuint (second.n_frames_out * 10, <, second.n_frames_in * 7);
  g_assert_cmpuint (second.n_frames_out * 10, >, second.n_frames_in * 3);
  g_assert_cmpuint (second.mean_encode_us, >, 0);
  g_assert_cmpuint (second.max_encode_us, >=, second.mean_encode_us);

  cims_transcoder_stop (transcoder);
  g_assert_cmpint (output.states.last, ==, CIMS_TRANSCODER_STATE_STOPPED);
}

static void
test_transcode_vp8_output_decodes (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_VP8_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_VP8, 640, 360, 30);
  g_autoptr(TestCamera) camera = NULL;

  cims_transcoder_start (transcoder);
  camera = test_camera_new (transcoder, CIMS_CODEC_H264, 1280, 720, 0x2222, 100, 1);

  test_wait_for_frames (viewer, 0, 20);
  test_wait_for_size (viewer, 640, 360);
  g_assert_cmpuint (viewer->n_wrong_payload_type, ==, 0);
}

static void
test_transcode_h265_to_h264 (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats stats;

  cims_transcoder_start (transcoder);
  camera = test_camera_new (transcoder, CIMS_CODEC_H265, 1280, 720, 0x3333, 200, 1);

  test_wait_for_frames (viewer, 0, 15);
  test_wait_for_size (viewer, 640, 360);
  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.input_width, ==, 1280);
  g_assert_cmpuint (stats.n_restarts, ==, 0);
}

/* A new SPS in the same epoch: the decoder and scaler follow it and the
 * encoder keeps going, without a restart. A change of aspect ratio is
 * fitted again instead of being stretched. */
static void
test_transcode_follows_resolution_change (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats stats;
  guint n_frames;

  cims_transcoder_start (transcoder);
  camera = test_camera_new (transcoder, CIMS_CODEC_H264, 1280, 720, 0x4444, 300, 1);
  test_wait_for_frames (viewer, 0, 10);

  test_camera_set_size (camera, 960, 540);
  n_frames = test_viewer_get_frames (viewer, NULL, NULL);
  test_wait_for_frames (viewer, n_frames, 20);
  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.input_width, ==, 960);
  g_assert_cmpuint (stats.input_height, ==, 540);
  test_wait_for_size (viewer, 640, 360);

  test_camera_set_size (camera, 768, 576);
  n_frames = test_viewer_get_frames (viewer, NULL, NULL);
  test_wait_for_frames (viewer, n_frames, 20);
  test_wait_for_size (viewer, 480, 360);

  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.input_width, ==, 768);
  g_assert_cmpuint (stats.output_width, ==, 480);
  g_assert_cmpuint (stats.epoch, ==, 1);
  g_assert_cmpuint (stats.n_restarts, ==, 0);
  g_assert_cmpuint (output.states.n_restarting, ==, 0);
  g_assert_cmpuint (viewer->n_epoch_changes, ==, 0);
}

/* A camera reboot: a new epoch with a new SSRC, sequence numbers just
 * behind the old ones (which a depayloader takes for duplicates) and new
 * parameter sets. The output continues in the same epoch. */
static void
test_transcode_follows_new_epoch (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats stats;
  guint16 last_seq;
  guint n_frames;

  cims_transcoder_start (transcoder);
  camera = test_camera_new (transcoder, CIMS_CODEC_H264, 1280, 720, 0x5555, 1000, 1);
  test_wait_for_frames (viewer, 0, 10);

  /* The new camera's sequence numbers restart 50 behind the old ones. */
  last_seq = camera->last_seq;
  g_clear_pointer (&camera, test_camera_free);
  n_frames = test_viewer_get_frames (viewer, NULL, NULL);
  camera = test_camera_new (transcoder, CIMS_CODEC_H264, 960, 540, 0x6666, (guint16) (last_seq - 50), 2);

  /* The new camera's first keyframe is decoded, not dropped as old packets:
   * the first 960x540 frame comes well before its second keyframe (frame 30). */
  do
    {
      test_run_for (2);
      cims_transcoder_get_stats (transcoder, &stats);
    }
  while (stats.input_width != 960 && g_atomic_int_get (&camera->n_frames) < 60);
  g_test_message ("first 960x540 frame decoded after %d camera frames", g_atomic_int_get (&camera->n_frames));
  g_assert_cmpuint (stats.input_width, ==, 960);
  g_assert_cmpint (g_atomic_int_get (&camera->n_frames), <, 15);

  test_wait_for_frames (viewer, n_frames, 20);
  test_wait_for_size (viewer, 640, 360);

  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.input_width, ==, 960);
  g_assert_cmpuint (stats.epoch, ==, 1);
  g_assert_cmpuint (stats.n_restarts, ==, 0);
  g_assert_cmpuint (output.states.n_restarting, ==, 0);
}

/* A camera that comes back as H.265: the pipeline is rebuilt with the other
 * decoder, and the output goes on in a new epoch. */
static void
test_transcode_restarts_on_codec_change (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats stats;
  guint n_frames;

  cims_transcoder_start (transcoder);
  camera = test_camera_new (transcoder, CIMS_CODEC_H264, 1280, 720, 0x7777, 0, 1);
  test_wait_for_frames (viewer, 0, 10);

  g_clear_pointer (&camera, test_camera_free);
  n_frames = test_viewer_get_frames (viewer, NULL, NULL);
  camera = test_camera_new (transcoder, CIMS_CODEC_H265, 1280, 720, 0x8888, 5000, 2);
  test_wait_for_frames (viewer, n_frames, 20);

  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.epoch, ==, 2);
  g_assert_cmpuint (stats.n_restarts, ==, 1);
  g_assert_cmpuint (viewer->last_epoch, ==, 2);
  g_assert_cmpuint (viewer->n_epoch_changes, ==, 1);
  g_assert_cmpuint (output.states.n_restarting, ==, 0);
}

static void
test_transcode_rate_limits_keyframe_requests (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats stats;
  gint64 start_us;
  gint64 deadline_us;

  cims_transcoder_start (transcoder);
  camera = test_camera_new (transcoder, CIMS_CODEC_H264, 1280, 720, 0x9999, 0, 1);
  test_wait_for_frames (viewer, 0, 10);

  start_us = g_get_monotonic_time ();
  for (guint i = 0; i < 10; i++)
    cims_transcoder_request_keyframe (transcoder);
  g_assert_cmpint (g_get_monotonic_time () - start_us, <, 100 * 1000);

  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.n_keyframe_requests, ==, 1);
  g_assert_cmpuint (stats.n_keyframe_requests_suppressed, ==, 9);

  /* The one request that passed makes exactly one keyframe. */
  deadline_us = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_MS * 1000;
  do
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline_us);
      test_run_for (20);
      cims_transcoder_get_stats (transcoder, &stats);
    }
  while (stats.n_forced_keyframes_out == 0);
  test_run_for (200);
  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.n_forced_keyframes_out, ==, 1);

  /* Past the 500 ms window a request goes through again. */
  while (g_get_monotonic_time () - start_us < 550 * 1000)
    test_run_for (10);
  cims_transcoder_request_keyframe (transcoder);
  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.n_keyframe_requests, ==, 2);
  g_assert_cmpuint (stats.n_keyframe_requests_suppressed, ==, 9);
}

static void
test_transcode_drops_packets_until_started (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats stats;

  camera = test_camera_new (transcoder, CIMS_CODEC_H264, 320, 240, 0xaaaa, 0, 1);
  test_run_for (300);
  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.n_packets_in, ==, 0);
  g_assert_cmpuint (stats.n_packets_dropped, >, 0);
  g_assert_cmpint (stats.state, ==, CIMS_TRANSCODER_STATE_STOPPED);

  /* The format arrived before the start; the start builds the pipeline. */
  cims_transcoder_start (transcoder);
  test_wait_for_frames (viewer, 0, 10);
  test_wait_for_size (viewer, 320, 240);
}

/* The pipeline is built on a thread of its own once the format is known.
 * The camera's first packets, its only keyframe among them, arrive while
 * it is built: they are held for it, not dropped. */
static void
test_transcode_holds_packets_while_building (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autofree gchar *launch = g_strdup_printf (TEST_H264_CAMERA_ONE_KEYFRAME, 320, 240, 0xbbbb, 0);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats stats;

  cims_transcoder_start (transcoder);
  camera = test_camera_new_from_launch (transcoder, launch, CIMS_CODEC_H264, 1);
  test_wait_for_frames (viewer, 0, 10);
  test_wait_for_size (viewer, 320, 240);

  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.n_packets_dropped, ==, 0);
  g_assert_cmpuint (stats.epoch, ==, 1);
  g_assert_cmpuint (stats.n_restarts, ==, 0);
}

#define TEST_H264_FMTP "packetization-mode=1;profile-level-id=42c01f"

/* A stop and a new start while the first pipeline is being built: that
 * pipeline is closed unused, and the new start gets one of its own, with
 * every packet pushed since the new start. */
static void
test_transcode_restarts_while_building (void)
{
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  g_autofree gchar *launch = g_strdup_printf (TEST_H264_CAMERA_ONE_KEYFRAME, 320, 240, 0xcccc, 0);
  g_autoptr(TestCamera) camera = NULL;
  CimsTranscoderStats stats;

  cims_transcoder_set_input_format (transcoder, CIMS_CODEC_H264, 90000, TEST_H264_FMTP, NULL, 1);
  cims_transcoder_start (transcoder);
  cims_transcoder_stop (transcoder);
  cims_transcoder_start (transcoder);

  camera = test_camera_new_from_launch (transcoder, launch, CIMS_CODEC_H264, 1);
  test_wait_for_frames (viewer, 0, 10);

  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.n_packets_dropped, ==, 0);
  g_assert_cmpuint (stats.epoch, ==, 1);
  g_assert_cmpuint (stats.n_restarts, ==, 0);
}

/* The camera turns out to send H.265 while an H.264 pipeline is being
 * built: the build is done again for H.265, and the H.265 packets pushed
 * meanwhile, the only keyframe among them, are kept for it. Its first
 * frame comes before the new format, as from the ingest, whose format
 * reaches the transcoder by way of the main context. */
static void
test_transcode_codec_change_while_building (void)
{
  g_autoptr(TestCamera) recording = test_camera_record (TEST_H265_CAMERA_ONE_KEYFRAME, CIMS_CODEC_H265, 2, 20);
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  CimsTranscoderStats stats;
  guint next;

  cims_transcoder_set_input_format (transcoder, CIMS_CODEC_H264, 90000, TEST_H264_FMTP, NULL, 1);
  cims_transcoder_start (transcoder);
  next = test_camera_push_recorded (recording, transcoder, 0, 1, 0);
  cims_transcoder_set_input_format (transcoder, CIMS_CODEC_H265, 90000, recording->fmtp, NULL, 2);
  test_camera_push_recorded (recording, transcoder, next, 0, 33);
  /* The held packets reach the new pipeline at once, so the frame-rate
   * limit keeps few of their frames; without the keyframe there are none. */
  test_wait_for_frames (viewer, 0, 1);

  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.n_packets_dropped, ==, 0);
  g_assert_cmpuint (stats.n_packets_in, ==, recording->recorded->len);
}

/* Packets pushed after a stop, while the pipeline of the start before is
 * still being built, are dropped: none reaches a later start. */
static void
test_transcode_drops_packets_after_stop_while_building (void)
{
  g_autoptr(TestCamera) recording = test_camera_record (TEST_H264_CAMERA_ONE_KEYFRAME, CIMS_CODEC_H264, 1, 20);
  g_autoptr(TestViewer) viewer = test_viewer_new (TEST_H264_VIEWER);
  TestOutput output = { viewer };
  g_autoptr(CimsTranscoder) transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);
  CimsTranscoderStats stats;

  cims_transcoder_set_input_format (transcoder, CIMS_CODEC_H264, 90000, recording->fmtp, NULL, 1);
  cims_transcoder_start (transcoder);
  cims_transcoder_stop (transcoder);
  test_camera_push_recorded (recording, transcoder, 0, 0, 0);

  cims_transcoder_get_stats (transcoder, &stats);
  g_assert_cmpuint (stats.n_packets_in, ==, 0);
  g_assert_cmpuint (stats.n_packets_dropped, ==, recording->recorded->len);

  cims_transcoder_start (transcoder);
  test_run_for (1000);
  g_assert_cmpuint (test_viewer_get_frames (viewer, NULL, NULL), ==, 0);
}

/* Freeing a transcoder whose pipeline is still being built waits for the
 * build and closes the pipeline (ASan checks that nothing is left). */
static void
test_transcode_frees_while_building (void)
{
  TestOutput output = { NULL };
  CimsTranscoder *transcoder = test_transcoder_new (&output, CIMS_CODEC_H264, 640, 360, 15);

  cims_transcoder_set_input_format (transcoder, CIMS_CODEC_H264, 90000, TEST_H264_FMTP, NULL, 1);
  cims_transcoder_start (transcoder);
  cims_transcoder_free (transcoder);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/pipelines/transcode/fits-size-keeping-aspect", test_transcode_fits_size_keeping_aspect);
  g_test_add_func ("/pipelines/transcode/h264-to-legacy-640x360", test_transcode_h264_to_legacy_640x360);
  g_test_add_func ("/pipelines/transcode/vp8-output-decodes", test_transcode_vp8_output_decodes);
  g_test_add_func ("/pipelines/transcode/h265-to-h264", test_transcode_h265_to_h264);
  g_test_add_func ("/pipelines/transcode/follows-resolution-change", test_transcode_follows_resolution_change);
  g_test_add_func ("/pipelines/transcode/follows-new-epoch", test_transcode_follows_new_epoch);
  g_test_add_func ("/pipelines/transcode/restarts-on-codec-change", test_transcode_restarts_on_codec_change);
  g_test_add_func ("/pipelines/transcode/rate-limits-keyframe-requests",
                   test_transcode_rate_limits_keyframe_requests);
  g_test_add_func ("/pipelines/transcode/drops-packets-until-started", test_transcode_drops_packets_until_started);
  g_test_add_func ("/pipelines/transcode/holds-packets-while-building", test_transcode_holds_packets_while_building);
  g_test_add_func ("/pipelines/transcode/restarts-while-building", test_transcode_restarts_while_building);
  g_test_add_func ("/pipelines/transcode/codec-change-while-building", test_transcode_codec_change_while_building);
  g_test_add_func ("/pipelines/transcode/drops-packets-after-stop-while-building",
                   test_transcode_drops_packets_after_stop_while_building);
  g_test_add_func ("/pipelines/transcode/frees-while-building", test_transcode_frees_while_building);

  return g_test_run ();
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The RTSP media factory of one simulated camera: a launch description that
 * encodes like a real camera (fixed keyframe interval, no B-frames, parameter
 * sets in-band before every IDR) and the hook that feeds file footage. The
 * footage loop itself lives in camera-sim-footage.c. */
#include "camera-sim.h"

#include <gst/app/gstappsrc.h>

/* The horizontal scroll of the test pattern in pixels per frame, so that
 * every frame differs and the encoder produces real inter frames. */
#define PATTERN_SCROLL_PX 4

/* What a file camera's media needs to start its footage loop. */
typedef struct {
  char *footage_path;
  char *mount_path;
  guint width;
  guint height;
  guint fps;
} FactoryFootage;

static void
factory_footage_free (gpointer data, GClosure *closure)
{
  FactoryFootage *config = data;

  g_free (config->footage_path);
  g_free (config->mount_path);
  g_free (config);
}

static gboolean
factory_has_element (const char *name)
{
  g_autoptr(GstElementFactory) factory = gst_element_factory_find (name);

  return factory != NULL;
}

/* Returns the AAC encoder to use: FFmpeg's when present, else VisualOn's. */
static const char *
factory_aac_encoder (void)
{
  return factory_has_element ("avenc_aac") ? "avenc_aac" : "voaacenc";
}

static gboolean
factory_check_elements (const CimsSimCamera *camera, GError **error)
{
  g_autoptr(GPtrArray) needed = g_ptr_array_new ();

  if (camera->codec == CIMS_SIM_CODEC_H264) {
    g_ptr_array_add (needed, "x264enc");
    g_ptr_array_add (needed, "rtph264pay");
  } else {
    g_ptr_array_add (needed, "x265enc");
    g_ptr_array_add (needed, "rtph265pay");
  }

  if (camera->source == CIMS_SIM_SOURCE_FILE)
    g_ptr_array_add (needed, "clocksync");

  if (camera->audio == CIMS_SIM_AUDIO_PCMA) {
    g_ptr_array_add (needed, "alawenc");
    g_ptr_array_add (needed, "rtppcmapay");
  } else if (camera->audio == CIMS_SIM_AUDIO_AAC) {
    g_ptr_array_add (needed, (gpointer) factory_aac_encoder ());
    g_ptr_array_add (needed, "rtpmp4gpay");
  } else if (camera->audio == CIMS_SIM_AUDIO_OPUS) {
    g_ptr_array_add (needed, "opusenc");
    g_ptr_array_add (needed, "rtpopuspay");
  }

  for (guint i = 0; i < needed->len; i++) {
    const char *name = g_ptr_array_index (needed, i);

    if (factory_has_element (name))
      continue;

    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_MISSING_ELEMENT,
                 "GStreamer element '%s' is not installed", name);
    return FALSE;
  }

  return TRUE;
}

/* The raw picture: a live test pattern, or the appsrc the footage loop
 * feeds. clocksync releases the footage frames at their timestamps, so the
 * decoder behind the appsrc runs at the camera's frame rate. */
static void
factory_append_picture (GString *launch, const CimsSimCamera *camera)
{
  if (camera->source == CIMS_SIM_SOURCE_FILE) {
    g_string_append (launch, "appsrc name=footage is-live=true format=time block=true "
                             "max-buffers=3 ! clocksync ! ");
    return;
  }

  g_string_append_printf (launch,
                          "videotestsrc is-live=true pattern=%s horizontal-speed=%d ! "
                          "video/x-raw,width=%u,height=%u,framerate=%u/1,pixel-aspect-ratio=1/1 ! ",
                          camera->pattern, PATTERN_SCROLL_PX,
                          camera->width, camera->height, camera->fps);

  /* NOTE: the clock overlay needs the pango plugin; without it the picture
   * still moves through the scroll but shows no time. */
  if (factory_has_element ("timeoverlay"))
    g_string_append (launch, "timeoverlay ! ");

  /* fault=resize: camera-sim-faults.c changes these caps every few seconds,
   * which makes x264enc start again with a new SPS and an IDR. */
  if (camera->faults.flags & CIMS_SIM_FAULT_RESIZE)
    g_string_append_printf (launch, "videoscale ! capsfilter name=resize caps=video/x-raw,width=%u,height=%u ! ",
                            camera->width, camera->height);
}

/* The x264enc tuning and payloader options of the H.264 faults, appended to
 * the payloader's. fault=bframes drops the zerolatency tune for two
 * B-frames without adaptive placement, which needs the main profile. */
static const char *
factory_h264_tune (const CimsSimCamera *camera)
{
  if (camera->faults.flags & CIMS_SIM_FAULT_BFRAMES)
    return "speed-preset=ultrafast bframes=2 b-adapt=false";

  return "tune=zerolatency speed-preset=ultrafast bframes=0";
}

static void
factory_append_h264_payloader (GString *launch, const CimsSimCamera *camera)
{
  CimsSimFaultFlags flags = camera->faults.flags;

  g_string_append_printf (launch, "rtph264pay name=pay0 pt=96 config-interval=%d",
                          (flags & CIMS_SIM_FAULT_SPROP_ONLY) ? 0 : -1);
  if (flags & CIMS_SIM_FAULT_BIG_KEYFRAME)
    g_string_append (launch, " mtu=200");
  if (flags & CIMS_SIM_FAULT_STAP_A)
    g_string_append (launch, " aggregate-mode=zero-latency");
}

/* scenecut=0 keeps the keyframe interval fixed, as real cameras do, and the
 * zerolatency tune turns off B-frames and lookahead. One x264 thread gives one
 * slice per frame (zerolatency would otherwise slice each frame per thread).
 * x265's open-gop=0 makes every keyframe an IDR instead of a CRA, because
 * config-interval=-1 sends the parameter sets in-band before IDRs only. */
static void
factory_append_video_encoder (GString *launch, const CimsSimCamera *camera)
{
  if (camera->codec == CIMS_SIM_CODEC_H264) {
    const char *profile = (camera->faults.flags & CIMS_SIM_FAULT_BFRAMES) ? "main" : camera->h264_profile;

    g_string_append_printf (launch,
                            "videoconvert ! video/x-raw,format=I420 ! "
                            "x264enc %s threads=1 "
                            "key-int-max=%u bitrate=%u byte-stream=true option-string=scenecut=0 ! "
                            "video/x-h264,profile=%s ! ",
                            factory_h264_tune (camera), camera->keyint_frames, camera->bitrate_kbps,
                            profile);
    factory_append_h264_payloader (launch, camera);
    return;
  }

  g_string_append_printf (launch,
                          "videoconvert ! video/x-raw,format=I420 ! "
                          "x265enc tune=zerolatency speed-preset=ultrafast "
                          "key-int-max=%u bitrate=%u option-string=scenecut=0:open-gop=0 ! "
                          "video/x-h265,profile=main ! "
                          "rtph265pay name=pay0 pt=96 config-interval=-1",
                          camera->keyint_frames, camera->bitrate_kbps);
}

/* A 440 Hz tone as the camera's microphone, in its own branch of the bin. */
static void
factory_append_audio (GString *launch, const CimsSimCamera *camera)
{
  const char *tone = " audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! "
                     "audioconvert ! audioresample ! ";

  switch (camera->audio) {
    case CIMS_SIM_AUDIO_PCMA:
      g_string_append_printf (launch, "%saudio/x-raw,rate=8000,channels=1 ! alawenc ! "
                                      "rtppcmapay name=pay1 pt=8", tone);
      break;
    case CIMS_SIM_AUDIO_AAC:
      g_string_append_printf (launch, "%saudio/x-raw,rate=48000,channels=1 ! %s ! "
                                      "rtpmp4gpay name=pay1 pt=97", tone, factory_aac_encoder ());
      break;
    case CIMS_SIM_AUDIO_OPUS:
      g_string_append_printf (launch, "%saudio/x-raw,rate=48000,channels=2 ! opusenc ! "
                                      "rtpopuspay name=pay1 pt=111", tone);
      break;
    case CIMS_SIM_AUDIO_NONE:
    default:
      break;
  }
}

static char *
factory_build_launch (const CimsSimCamera *camera)
{
  GString *launch = g_string_new ("( ");

  factory_append_picture (launch, camera);
  factory_append_video_encoder (launch, camera);
  factory_append_audio (launch, camera);
  g_string_append (launch, " )");

  return g_string_free (launch, FALSE);
}

/* Main-context side of freeing a media's footage loop: its bus watch runs on
 * the main context, so freeing it there cannot race with the watch. */
static gboolean
factory_footage_free_idle (gpointer data)
{
  cims_sim_footage_free (data);
  return G_SOURCE_REMOVE;
}

static void
factory_footage_release (gpointer data)
{
  g_main_context_invoke (NULL, factory_footage_free_idle, data);
}

/* The media is unprepared (its pipeline is at NULL, so a push into its appsrc
 * returns at once): the footage loop can stop. */
static void
factory_media_unprepared_cb (GstRTSPMedia *media, gpointer user_data)
{
  g_object_set_data (G_OBJECT (media), "cims-sim-footage", NULL);
}

static void
factory_media_configure_cb (GstRTSPMediaFactory *factory, GstRTSPMedia *media, gpointer user_data)
{
  FactoryFootage *config = user_data;
  g_autoptr(GstElement) bin = gst_rtsp_media_get_element (media);
  g_autoptr(GstElement) appsrc = gst_bin_get_by_name (GST_BIN (bin), "footage");
  g_autoptr(GstCaps) caps = NULL;
  g_autoptr(GError) error = NULL;
  CimsSimFootage *footage;

  g_assert (appsrc != NULL);

  caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "I420",
                              "width", G_TYPE_INT, (int) config->width,
                              "height", G_TYPE_INT, (int) config->height,
                              "framerate", GST_TYPE_FRACTION, (int) config->fps, 1,
                              "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
  gst_app_src_set_caps (GST_APP_SRC (appsrc), caps);

  footage = cims_sim_footage_start (config->footage_path, config->width, config->height,
                                    config->fps, appsrc, &error);
  if (footage == NULL) {
    g_warning ("camera=%s: footage loop failed to start: %s; the stream has no picture",
               config->mount_path, error->message);
    return;
  }

  g_object_set_data_full (G_OBJECT (media), "cims-sim-footage", footage, factory_footage_release);
  g_signal_connect (media, "unprepared", G_CALLBACK (factory_media_unprepared_cb), NULL);
  g_debug ("camera=%s: footage loop started for a new media", config->mount_path);
}

static void
factory_media_faults_cb (GstRTSPMediaFactory *factory, GstRTSPMedia *media, gpointer user_data)
{
  cims_sim_faults_configure_media (user_data, media);
}

static void
factory_connect_footage (GstRTSPMediaFactory *factory, const CimsSimCamera *camera)
{
  FactoryFootage *config = g_new0 (FactoryFootage, 1);

  config->footage_path = g_strdup (camera->footage_path);
  config->mount_path = g_strdup (camera->mount_path);
  config->width = camera->width;
  config->height = camera->height;
  config->fps = camera->fps;

  g_signal_connect_data (factory, "media-configure", G_CALLBACK (factory_media_configure_cb),
                         config, factory_footage_free, 0);
}

GstRTSPMediaFactory *
cims_sim_factory_new (const CimsSimCamera *camera, GError **error)
{
  g_autoptr(GstRTSPMediaFactory) factory = NULL;
  g_autofree char *launch = NULL;

  g_return_val_if_fail (camera != NULL, NULL);

  if (!factory_check_elements (camera, error))
    return NULL;

  launch = factory_build_launch (camera);
  g_debug ("camera=%s: launch %s", camera->mount_path, launch);

  factory = gst_rtsp_media_factory_new ();
  gst_rtsp_media_factory_set_launch (factory, launch);
  /* NOTE: gst-rtsp-server 1.22 hands a shared media that is still being torn
   * down to the next client, so a DESCRIBE right after the last client left
   * can get 503. Clients retry, as they do with a busy camera. */
  gst_rtsp_media_factory_set_shared (factory, TRUE);

  if (camera->faults.is_tcp_only)
    gst_rtsp_media_factory_set_protocols (factory, GST_RTSP_LOWER_TRANS_TCP);

  if (camera->source == CIMS_SIM_SOURCE_FILE)
    factory_connect_footage (factory, camera);

  /* The cameras live as long as the program, so the hook borrows @camera. */
  if (camera->faults.flags != 0)
    g_signal_connect (factory, "media-configure", G_CALLBACK (factory_media_faults_cb), (gpointer) camera);

  return g_steal_pointer (&factory);
}

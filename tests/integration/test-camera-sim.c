/* SPDX-License-Identifier: Apache-2.0 */
/* End-to-end tests of cimshub-camera-sim: the real program on a free loopback
 * port, pulled by GStreamer's rtspsrc and decoded. The program's path comes
 * from CIMS_CAMERA_SIM; CIMS_TEST_FOOTAGE enables the native-footage test. */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <gst/sdp/gstsdpmessage.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define STARTUP_TIMEOUT_S 20
#define PULL_TIMEOUT_S 30
#define PULL_BUSY_ATTEMPTS 3
#define PULL_BUSY_PAUSE_US (300 * 1000)

/* A running simulator and the URLs it printed, in --camera order. */
typedef struct {
  GSubprocess *process;
  GPtrArray *urls;
} SimProcess;

/* What one pull observed. */
typedef struct {
  GMainLoop *loop;
  guint n_frames_requested;
  guint n_frames;             /* decoded frames, counted on a streaming thread */
  int width;
  int height;
  GArray *pts_ns;             /* of every decoded frame */
  char *sdp;
  GError *error;              /* first error on the bus */
  char *error_debug;          /* its debug text, e.g. rtspsrc's RTSP status */
  gboolean has_timed_out;
} Pull;

static const char *
sim_program (void)
{
  const char *path = g_getenv ("CIMS_CAMERA_SIM");

  g_assert_nonnull (path);
  return path;
}

static void
on_line_read (GObject *stream, GAsyncResult *result, gpointer user_data)
{
  char **line = user_data;
  g_autoptr(GError) error = NULL;

  *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (stream), result,
                                                     NULL, &error);
  g_assert_no_error (error);
  g_main_context_wakeup (NULL);
}

static gboolean
on_startup_timeout (gpointer user_data)
{
  gboolean *has_timed_out = user_data;

  *has_timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

/* Reads one stdout line, or fails the test after STARTUP_TIMEOUT_S. */
static char *
sim_read_line (GDataInputStream *stdout_lines)
{
  char *line = NULL;
  gboolean has_timed_out = FALSE;
  guint timeout_id = g_timeout_add_seconds (STARTUP_TIMEOUT_S, on_startup_timeout, &has_timed_out);

  g_data_input_stream_read_line_async (stdout_lines, G_PRIORITY_DEFAULT, NULL, on_line_read, &line);
  while (line == NULL && !has_timed_out)
    g_main_context_iteration (NULL, TRUE);

  g_assert_false (has_timed_out);
  g_source_remove (timeout_id);
  g_assert_nonnull (line);
  return line;
}

/* Ends the simulator when the test process dies, e.g. on a meson timeout. */
static void
sim_child_setup (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

/* Starts the simulator on a free port with one mount per spec and waits for
 * its ready lines. @footage (nullable) is passed as --footage. */
static SimProcess *
sim_start (const char *const *specs, const char *footage)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) stdout_lines = NULL;
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  SimProcess *sim = g_new0 (SimProcess, 1);

  g_ptr_array_add (argv, (gpointer) sim_program ());
  g_ptr_array_add (argv, "--port");
  g_ptr_array_add (argv, "0");
  if (footage != NULL) {
    g_ptr_array_add (argv, "--footage");
    g_ptr_array_add (argv, (gpointer) footage);
  }
  for (guint i = 0; specs[i] != NULL; i++) {
    g_ptr_array_add (argv, "--camera");
    g_ptr_array_add (argv, (gpointer) specs[i]);
  }
  g_ptr_array_add (argv, NULL);

  g_subprocess_launcher_set_child_setup (launcher, sim_child_setup, NULL, NULL);
  sim->process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);

  stdout_lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (sim->process));
  sim->urls = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; specs[i] != NULL; i++) {
    g_autofree char *line = sim_read_line (stdout_lines);
    g_auto(GStrv) words = g_strsplit (line, " ", -1);

    g_assert_cmpstr (words[0], ==, "cimshub-camera-sim:");
    g_assert_cmpstr (words[1], ==, "serving");
    g_assert_true (g_str_has_prefix (words[2], "rtsp://127.0.0.1:"));
    g_ptr_array_add (sim->urls, g_strdup (words[2]));
  }

  return sim;
}

/* Stops the simulator with SIGTERM and checks that it exits with status 0. */
static void
sim_stop (SimProcess *sim)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_send_signal (sim->process, SIGTERM);
  g_subprocess_wait (sim->process, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (sim->process));
  g_assert_cmpint (g_subprocess_get_exit_status (sim->process), ==, 0);

  g_object_unref (sim->process);
  g_ptr_array_unref (sim->urls);
  g_free (sim);
}

static const char *
sim_url (SimProcess *sim, guint index)
{
  return g_ptr_array_index (sim->urls, index);
}

static void
pull_clear (Pull *pull)
{
  g_clear_pointer (&pull->loop, g_main_loop_unref);
  g_clear_pointer (&pull->pts_ns, g_array_unref);
  g_clear_pointer (&pull->sdp, g_free);
  g_clear_error (&pull->error);
  g_clear_pointer (&pull->error_debug, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Pull, pull_clear)

static GstPadProbeReturn
on_decoded_frame (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Pull *pull = user_data;
  GstClockTime pts = GST_BUFFER_PTS (GST_PAD_PROBE_INFO_BUFFER (info));

  if (pull->n_frames == 0) {
    g_autoptr(GstCaps) caps = gst_pad_get_current_caps (pad);
    GstStructure *structure = gst_caps_get_structure (caps, 0);

    gst_structure_get_int (structure, "width", &pull->width);
    gst_structure_get_int (structure, "height", &pull->height);
  }

  g_array_append_val (pull->pts_ns, pts);
  pull->n_frames++;
  if (pull->n_frames == pull->n_frames_requested)
    g_main_loop_quit (pull->loop);

  return pull->n_frames > pull->n_frames_requested ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
}

static void
on_sdp (GstElement *rtspsrc, GstSDPMessage *sdp, gpointer user_data)
{
  Pull *pull = user_data;

  g_free (pull->sdp);
  pull->sdp = gst_sdp_message_as_text (sdp);
}

/* Sets up the video track only, as the hub does. */
static gboolean
on_select_stream (GstElement *rtspsrc, guint num, GstCaps *caps, gpointer user_data)
{
  const char *media = gst_structure_get_string (gst_caps_get_structure (caps, 0), "media");

  return g_strcmp0 (media, "video") == 0;
}

static gboolean
on_bus_message (GstBus *bus, GstMessage *message, gpointer user_data)
{
  Pull *pull = user_data;

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR && pull->error == NULL) {
    gst_message_parse_error (message, &pull->error, &pull->error_debug);
    g_main_loop_quit (pull->loop);
  }

  return G_SOURCE_CONTINUE;
}

static gboolean
on_pull_timeout (gpointer user_data)
{
  Pull *pull = user_data;

  pull->has_timed_out = TRUE;
  g_main_loop_quit (pull->loop);
  return G_SOURCE_REMOVE;
}

static void
pull_connect (Pull *pull, GstElement *pipeline)
{
  g_autoptr(GstElement) rtspsrc = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  g_autoptr(GstElement) sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_autoptr(GstPad) sink_pad = gst_element_get_static_pad (sink, "sink");

  g_signal_connect (rtspsrc, "on-sdp", G_CALLBACK (on_sdp), pull);
  g_signal_connect (rtspsrc, "select-stream", G_CALLBACK (on_select_stream), pull);
  gst_pad_add_probe (sink_pad, GST_PAD_PROBE_TYPE_BUFFER, on_decoded_frame, pull, NULL);
}

/* One pull of @url; see pull_run(). */
static void
pull_run_once (Pull *pull, const char *url, const char *source_options, const char *codec,
          guint n_frames)
{
  g_autofree char *description = g_strdup_printf (
    "rtspsrc name=src location=%s latency=200 %s ! rtp%sdepay ! %sparse ! avdec_%s ! "
    "fakesink name=sink sync=false", url, source_options, codec, codec, codec);
  g_autoptr(GstElement) pipeline = NULL;
  g_autoptr(GstBus) bus = NULL;
  g_autoptr(GError) error = NULL;
  guint timeout_id;

  pull->loop = g_main_loop_new (NULL, FALSE);
  pull->pts_ns = g_array_new (FALSE, FALSE, sizeof (GstClockTime));
  pull->n_frames_requested = n_frames;

  pipeline = gst_parse_launch (description, &error);
  g_assert_no_error (error);
  pull_connect (pull, pipeline);

  bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, on_bus_message, pull);
  timeout_id = g_timeout_add_seconds (PULL_TIMEOUT_S, on_pull_timeout, pull);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_main_loop_run (pull->loop);
  gst_element_set_state (pipeline, GST_STATE_NULL);

  if (!pull->has_timed_out)
    g_source_remove (timeout_id);
  gst_bus_remove_watch (bus);
}

static gboolean
pull_was_busy (const Pull *pull)
{
  return pull->error != NULL && pull->error_debug != NULL && strstr (pull->error_debug, "(503)") != NULL;
}

/* Pulls @url with @source_options added to rtspsrc and decodes @codec
 * ("h264" or "h265") until @n_frames frames are decoded, an error arrives or
 * PULL_TIMEOUT_S passes. A 503 is retried because gst-rtsp-server 1.22 returns
 * 503 when a DESCRIBE finds the previous client's shared media still being
 * torn down. */
static void
pull_run (Pull *pull, const char *url, const char *source_options, const char *codec,
          guint n_frames)
{
  for (guint attempt = 1; attempt <= PULL_BUSY_ATTEMPTS; attempt++) {
    pull_run_once (pull, url, source_options, codec, n_frames);
    if (!pull_was_busy (pull) || attempt == PULL_BUSY_ATTEMPTS)
      return;

    g_test_message ("%s answered 503 on attempt %u; pulling again", url, attempt);
    pull_clear (pull);
    memset (pull, 0, sizeof *pull);
    g_usleep (PULL_BUSY_PAUSE_US);
  }
}

static void
assert_decoded (Pull *pull, guint n_frames, int width, int height)
{
  g_assert_no_error (pull->error);
  g_assert_false (pull->has_timed_out);
  g_assert_cmpuint (pull->n_frames, >=, n_frames);
  g_assert_cmpint (pull->width, ==, width);
  g_assert_cmpint (pull->height, ==, height);
}

static void
test_camera_sim_h264_decodes_frames (void)
{
  const char *specs[] = { "path=bos-0001,audio=pcma,width=320,height=240,keyint=10", NULL };
  SimProcess *sim = sim_start (specs, NULL);
  g_auto(Pull) pull = { 0 };

  pull_run (&pull, sim_url (sim, 0), "", "h264", 30);

  assert_decoded (&pull, 30, 320, 240);
  g_assert_nonnull (pull.sdp);
  g_assert_nonnull (strstr (pull.sdp, "a=rtpmap:96 H264/90000"));
  g_assert_nonnull (strstr (pull.sdp, "m=audio"));
  g_assert_nonnull (strstr (pull.sdp, "a=rtpmap:8 PCMA/8000"));
  sim_stop (sim);
}

static void
test_camera_sim_h265_decodes_frames (void)
{
  const char *specs[] = { "path=chl-0002,codec=h265,width=320,height=240,keyint=10", NULL };
  SimProcess *sim = sim_start (specs, NULL);
  g_auto(Pull) pull = { 0 };

  pull_run (&pull, sim_url (sim, 0), "", "h265", 30);

  assert_decoded (&pull, 30, 320, 240);
  g_assert_nonnull (strstr (pull.sdp, "H265/90000"));
  g_assert_null (strstr (pull.sdp, "m=audio"));
  sim_stop (sim);
}

static void
test_camera_sim_digest_rejects_anonymous (void)
{
  const char *specs[] = {
    "path=open,width=320,height=240",
    "path=locked,width=320,height=240,user=alice,password=plaza-7",
    "path=other,width=320,height=240,user=bob,password=dock-3",
    NULL
  };
  SimProcess *sim = sim_start (specs, NULL);
  g_auto(Pull) anonymous = { 0 };
  g_auto(Pull) wrong_password = { 0 };
  g_auto(Pull) other_user = { 0 };
  g_auto(Pull) open_mount = { 0 };

  pull_run (&anonymous, sim_url (sim, 1), "", "h264", 5);
  g_assert_error (anonymous.error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED);
  g_assert_cmpuint (anonymous.n_frames, ==, 0);

  pull_run (&wrong_password, sim_url (sim, 1), "user-id=alice user-pw=wrong", "h264", 5);
  g_assert_error (wrong_password.error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED);

  /* bob's credentials are valid, but for another camera: 403, not 401. */
  pull_run (&other_user, sim_url (sim, 1), "user-id=bob user-pw=dock-3", "h264", 5);
  g_assert_nonnull (other_user.error);
  g_assert_nonnull (other_user.error_debug);
  g_assert_nonnull (strstr (other_user.error_debug, "Forbidden (403)"));
  g_assert_cmpuint (other_user.n_frames, ==, 0);

  pull_run (&open_mount, sim_url (sim, 0), "", "h264", 10);
  assert_decoded (&open_mount, 10, 320, 240);
  sim_stop (sim);
}

static void
test_camera_sim_digest_accepts_credentials (void)
{
  const char *specs[] = { "path=locked,width=320,height=240,user=alice,password=plaza-7", NULL };
  SimProcess *sim = sim_start (specs, NULL);
  g_auto(Pull) pull = { 0 };

  pull_run (&pull, sim_url (sim, 0), "user-id=alice user-pw=plaza-7", "h264", 30);

  assert_decoded (&pull, 30, 320, 240);
  sim_stop (sim);
}

static void
test_camera_sim_tcp_only_rejects_udp (void)
{
  const char *specs[] = { "path=tcp-only,width=320,height=240,transport=tcp", NULL };
  SimProcess *sim = sim_start (specs, NULL);
  g_auto(Pull) over_udp = { 0 };
  g_auto(Pull) over_tcp = { 0 };

  pull_run (&over_udp, sim_url (sim, 0), "protocols=udp", "h264", 5);
  g_assert_nonnull (over_udp.error);
  g_assert_cmpuint (over_udp.n_frames, ==, 0);

  pull_run (&over_tcp, sim_url (sim, 0), "protocols=tcp", "h264", 10);
  assert_decoded (&over_tcp, 10, 320, 240);
  sim_stop (sim);
}

/* Writes a 1.5 s, 10 fps DivX 3 AVI like the test footage, but short. */
static char *
write_short_footage (void)
{
  g_autofree char *path = g_build_filename (g_get_tmp_dir (), "cims-sim-short-XXXXXX.avi", NULL);
  g_autofree char *description = NULL;
  g_autoptr(GstElement) pipeline = NULL;
  g_autoptr(GstBus) bus = NULL;
  g_autoptr(GstMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  int fd = g_mkstemp (path);

  g_assert_cmpint (fd, >=, 0);
  close (fd);

  description = g_strdup_printf ("videotestsrc num-buffers=15 pattern=ball ! "
                                 "video/x-raw,width=320,height=240,framerate=10/1 ! "
                                 "avenc_msmpeg4 ! avimux ! filesink location=%s", path);
  pipeline = gst_parse_launch (description, &error);
  g_assert_no_error (error);

  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  message = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  g_assert_nonnull (message);
  g_assert_cmpint (GST_MESSAGE_TYPE (message), ==, GST_MESSAGE_EOS);

  return g_steal_pointer (&path);
}

static void
test_camera_sim_footage_loops_seamlessly (void)
{
  g_autoptr(GstElementFactory) encoder = gst_element_factory_find ("avenc_msmpeg4");
  g_autofree char *footage = NULL;
  const char *specs[] = { "path=loop,source=file", NULL };
  SimProcess *sim;
  g_auto(Pull) pull = { 0 };

  if (encoder == NULL) {
    g_test_skip ("avenc_msmpeg4 (gstreamer1.0-libav) is not installed");
    return;
  }

  footage = write_short_footage ();
  sim = sim_start (specs, footage);

  /* 40 frames at 10 fps are 4 s, so the 1.5 s file plays more than twice. */
  pull_run (&pull, sim_url (sim, 0), "", "h264", 40);

  assert_decoded (&pull, 40, 320, 240);
  for (guint i = 1; i < 40; i++) {
    GstClockTime previous = g_array_index (pull.pts_ns, GstClockTime, i - 1);
    GstClockTime current = g_array_index (pull.pts_ns, GstClockTime, i);

    g_assert_cmpuint (current, >, previous);
    /* 100 ms per frame, within the 90 kHz RTP clock's rounding. */
    g_assert_cmpuint (current - previous, >=, 99 * GST_MSECOND);
    g_assert_cmpuint (current - previous, <=, 101 * GST_MSECOND);
  }
  sim_stop (sim);
  g_unlink (footage);
}

static void
test_camera_sim_footage_keeps_native_size (void)
{
  const char *footage = g_getenv ("CIMS_TEST_FOOTAGE");
  const char *specs[] = { "path=plaza,source=file", NULL };
  SimProcess *sim;
  g_auto(Pull) pull = { 0 };

  if (footage == NULL || !g_file_test (footage, G_FILE_TEST_IS_REGULAR)) {
    g_test_skip ("CIMS_TEST_FOOTAGE does not name a footage file");
    return;
  }

  /* The simulator reads CIMS_TEST_FOOTAGE from the inherited environment. */
  sim = sim_start (specs, NULL);
  pull_run (&pull, sim_url (sim, 0), "", "h264", 20);

  /* The street footage is 768x576; other footage has other sizes. */
  g_assert_no_error (pull.error);
  g_assert_cmpuint (pull.n_frames, >=, 20);
  if (strstr (footage, "768x576") != NULL) {
    g_assert_cmpint (pull.width, ==, 768);
    g_assert_cmpint (pull.height, ==, 576);
  }
  sim_stop (sim);
}

static void
test_camera_sim_spec_rejects_unknown_codec (void)
{
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *stderr_text = NULL;

  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                              &error, sim_program (), "--port", "0",
                              "--camera", "path=bad,codec=vp9", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, NULL, NULL, NULL, &stderr_text, &error);
  g_assert_no_error (error);

  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 2);
  g_assert_nonnull (strstr (stderr_text, "'codec'"));
  g_assert_nonnull (strstr (stderr_text, "'vp9'"));
}

static void
test_camera_sim_spec_rejects_missing_path (void)
{
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *stderr_text = NULL;

  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                              &error, sim_program (), "--port", "0",
                              "--camera", "codec=h264,width=640,height=480", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, NULL, NULL, NULL, &stderr_text, &error);
  g_assert_no_error (error);

  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 2);
  g_assert_nonnull (strstr (stderr_text, "'path'"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  gst_init (&argc, &argv);

  g_test_add_func ("/camera-sim/h264/decodes-frames", test_camera_sim_h264_decodes_frames);
  g_test_add_func ("/camera-sim/h265/decodes-frames", test_camera_sim_h265_decodes_frames);
  g_test_add_func ("/camera-sim/digest/rejects-anonymous", test_camera_sim_digest_rejects_anonymous);
  g_test_add_func ("/camera-sim/digest/accepts-credentials", test_camera_sim_digest_accepts_credentials);
  g_test_add_func ("/camera-sim/tcp-only/rejects-udp", test_camera_sim_tcp_only_rejects_udp);
  g_test_add_func ("/camera-sim/footage/loops-seamlessly", test_camera_sim_footage_loops_seamlessly);
  g_test_add_func ("/camera-sim/footage/keeps-native-size", test_camera_sim_footage_keeps_native_size);
  g_test_add_func ("/camera-sim/spec/rejects-unknown-codec", test_camera_sim_spec_rejects_unknown_codec);
  g_test_add_func ("/camera-sim/spec/rejects-missing-path", test_camera_sim_spec_rejects_missing_path);

  return g_test_run ();
}

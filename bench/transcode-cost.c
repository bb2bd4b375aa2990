/* SPDX-License-Identifier: Apache-2.0 */
/* Measures the CPU cost of one CimsTranscoder against the same GStreamer
 * pipeline run alone by gst-launch-1.0, on the same H.264 input file paced
 * in real time. bench/transcode-cost.sh builds the input and runs this. */
#include "pipelines/pipelines.h"

#include <gst/gst.h>
#include <gst/app/gstappsink.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_MAX_WIDTH 640
#define BENCH_MAX_HEIGHT 360
#define BENCH_MAX_FPS 15
#define BENCH_MAX_KBPS 600

/* Both runs read the file and payload it the same way, paced at the
 * file's frame rate: the transcoder behind an appsink, gst-launch behind
 * identity sync=true. */
#define BENCH_FEED \
  "filesrc location=\"%s\" ! matroskademux ! h264parse ! rtph264pay pt=96 config-interval=-1 mtu=1400 "

/* The transcoder's pipeline as pipelines/transcode.c builds it. */
#define BENCH_TRANSCODE \
  "! rtph264depay ! h264parse ! avdec_h264 max-threads=1 max-errors=-1 ! videoconvert ! videoscale " \
  "! videorate drop-only=true max-rate=%d " \
  "! video/x-raw,format=I420,pixel-aspect-ratio=1/1,width=%d,height=%d,framerate=[0/1,%d/1] " \
  "! x264enc tune=zerolatency speed-preset=superfast bitrate=%d key-int-max=%d bframes=0 byte-stream=true " \
  "aud=false threads=1 " \
  "! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au " \
  "! rtph264pay pt=102 mtu=1200 config-interval=-1 aggregate-mode=zero-latency ! fakesink sync=false"

typedef struct {
  GMainLoop *loop;
  CimsTranscoder *transcoder;
  gboolean has_format;
  guint64 n_packets_out;
} BenchRun;

/* Returns the CPU time (user + system) of @pid in seconds, from
 * /proc/PID/stat fields 14 and 15, or -1. */
static double
proc_cpu_seconds (pid_t pid)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree gchar *text = NULL;
  g_auto(GStrv) fields = NULL;
  const char *after_name;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return -1;

  /* The command name may hold spaces: fields start after its ')'. */
  after_name = strrchr (text, ')');
  if (after_name == NULL)
    return -1;
  fields = g_strsplit (after_name + 2, " ", -1);
  if (g_strv_length (fields) < 13)
    return -1;

  return (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) / sysconf (_SC_CLK_TCK);
}

static void
bench_packet_cb (CimsRtpPacket *packet, gpointer user_data)
{
  BenchRun *run = user_data;

  run->n_packets_out++;
}

static GstFlowReturn
bench_feed_sample_cb (GstAppSink *appsink, gpointer user_data)
{
  BenchRun *run = user_data;
  g_autoptr(GstSample) sample = gst_app_sink_pull_sample (appsink);
  g_autoptr(CimsRtpPacket) packet = NULL;
  GstMapInfo map;

  if (sample == NULL)
    return GST_FLOW_FLUSHING;

  if (!run->has_format)
    {
      const GstStructure *s = gst_caps_get_structure (gst_sample_get_caps (sample), 0);
      g_autofree gchar *fmtp = g_strdup_printf ("packetization-mode=1;sprop-parameter-sets=%s",
                                                gst_structure_get_string (s, "sprop-parameter-sets"));

      cims_transcoder_set_input_format (run->transcoder, CIMS_CODEC_H264, 90000, fmtp, NULL, 1);
      run->has_format = TRUE;
    }

  gst_buffer_map (gst_sample_get_buffer (sample), &map, GST_MAP_READ);
  packet = cims_rtp_packet_new (map.data, map.size, 1, g_get_monotonic_time ());
  gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
  if (packet != NULL)
    cims_transcoder_push (run->transcoder, packet);

  return GST_FLOW_OK;
}

static gboolean
bench_bus_cb (GstBus *bus, GstMessage *message, gpointer user_data)
{
  BenchRun *run = user_data;

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_EOS || GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR)
    g_main_loop_quit (run->loop);

  return G_SOURCE_CONTINUE;
}

/* Runs the input through a CimsTranscoder in this process. */
static void
bench_run_transcoder (const char *input, double media_seconds)
{
  CimsTranscoderSettings settings = {
    .camera_id = "bench", .profile_name = "legacy-640", .output_codec = CIMS_CODEC_H264,
    .max_width = BENCH_MAX_WIDTH, .max_height = BENCH_MAX_HEIGHT, .max_fps = BENCH_MAX_FPS,
    .max_kbps = BENCH_MAX_KBPS, .payload_type = 102,
  };
  CimsTranscoderCallbacks callbacks = { .on_packet = bench_packet_cb };
  GstAppSinkCallbacks feed_callbacks = { .new_sample = bench_feed_sample_cb };
  BenchRun run = { g_main_loop_new (NULL, FALSE) };
  g_autofree gchar *launch = g_strdup_printf (BENCH_FEED "! appsink name=sink sync=true", input);
  g_autoptr(GError) error = NULL;
  g_autoptr(GstElement) feed = gst_parse_launch (launch, &error);
  g_autoptr(GstElement) appsink = NULL;
  g_autoptr(GstBus) bus = NULL;
  CimsTranscoderStats stats;
  double cpu_start;
  double cpu_end;
  gint64 wall_start_us;
  double wall_seconds;

  g_assert_no_error (error);
  run.transcoder = cims_transcoder_new (&settings, &callbacks, &run);
  appsink = gst_bin_get_by_name (GST_BIN (feed), "sink");
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &feed_callbacks, &run, NULL);
  bus = gst_pipeline_get_bus (GST_PIPELINE (feed));
  gst_bus_add_watch (bus, bench_bus_cb, &run);

  cpu_start = proc_cpu_seconds (getpid ());
  wall_start_us = g_get_monotonic_time ();
  cims_transcoder_start (run.transcoder);
  gst_element_set_state (feed, GST_STATE_PLAYING);
  g_main_loop_run (run.loop);
  gst_element_set_state (feed, GST_STATE_NULL);
  cims_transcoder_get_stats (run.transcoder, &stats);
  cims_transcoder_free (run.transcoder);
  cpu_end = proc_cpu_seconds (getpid ());
  wall_seconds = (g_get_monotonic_time () - wall_start_us) / 1e6;

  printf ("transcoder: frames_in=%" G_GUINT64_FORMAT " frames_out=%" G_GUINT64_FORMAT
          " packets_out=%" G_GUINT64_FORMAT " mean_encode_us=%" G_GUINT64_FORMAT " max_encode_us=%" G_GUINT64_FORMAT
          " wall_s=%.2f cpu_s=%.2f fps_in=%.1f fps_out=%.1f transcodes_per_core=%.2f\n",
          stats.n_frames_in, stats.n_frames_out, run.n_packets_out, stats.mean_encode_us, stats.max_encode_us,
          wall_seconds, cpu_end - cpu_start, stats.n_frames_in / wall_seconds, stats.n_frames_out / wall_seconds,
          media_seconds / (cpu_end - cpu_start));
  g_main_loop_unref (run.loop);
}

/* Runs gst-launch-1.0 with @arguments and returns its CPU seconds, read
 * from /proc while it is a zombie (waitid with WNOWAIT), or -1. */
static double
bench_spawn_cpu_seconds (const char *arguments, double *wall_seconds)
{
  g_autofree gchar *command = g_strdup_printf ("gst-launch-1.0 -q %s", arguments);
  g_auto(GStrv) argv = NULL;
  g_autoptr(GError) error = NULL;
  GPid pid;
  siginfo_t info;
  double cpu_seconds;
  gint64 start_us = g_get_monotonic_time ();

  if (!g_shell_parse_argv (command, NULL, &argv, &error)
      || !g_spawn_async (NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, &error))
    {
      fprintf (stderr, "cannot run gst-launch-1.0: %s\n", error->message);
      return -1;
    }

  waitid (P_PID, pid, &info, WEXITED | WNOWAIT);
  cpu_seconds = proc_cpu_seconds (pid);
  waitpid (pid, NULL, 0);
  *wall_seconds = (g_get_monotonic_time () - start_us) / 1e6;

  return cpu_seconds;
}

static void
bench_run_gst_launch (const char *input, double media_seconds)
{
  g_autofree gchar *arguments = g_strdup_printf (BENCH_FEED "! identity sync=true " BENCH_TRANSCODE, input,
                                                 BENCH_MAX_FPS, BENCH_MAX_WIDTH, BENCH_MAX_HEIGHT, BENCH_MAX_FPS,
                                                 BENCH_MAX_KBPS, BENCH_MAX_FPS);
  double startup_wall;
  double startup_cpu = bench_spawn_cpu_seconds ("fakesrc num-buffers=1 ! fakesink", &startup_wall);
  double wall_seconds;
  double cpu_seconds = bench_spawn_cpu_seconds (arguments, &wall_seconds);

  printf ("gst-launch: command=\"gst-launch-1.0 %s\"\n", arguments);
  printf ("gst-launch: wall_s=%.2f cpu_s=%.2f startup_cpu_s=%.2f transcodes_per_core=%.2f\n",
          wall_seconds, cpu_seconds, startup_cpu, media_seconds / (cpu_seconds - startup_cpu));
}

int
main (int argc, char **argv)
{
  double media_seconds;

  gst_init (&argc, &argv);
  if (argc != 3)
    {
      fprintf (stderr, "usage: %s INPUT.mkv MEDIA_SECONDS\n"
               "Transcodes the H.264 input to 640x360 at 15 fps, first with CimsTranscoder, then with\n"
               "gst-launch-1.0, both paced in real time, and prints CPU seconds from /proc.\n", argv[0]);
      return 2;
    }
  media_seconds = g_ascii_strtod (argv[2], NULL);

  bench_run_transcoder (argv[1], media_seconds);
  bench_run_gst_launch (argv[1], media_seconds);

  return 0;
}

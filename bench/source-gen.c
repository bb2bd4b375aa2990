/* SPDX-License-Identifier: Apache-2.0 */
/* cimshub-source-gen: many camera-like H.264 streams from one clip encoded
 * once, served as RTSP mounts or sent as plain RTP over UDP, with a send time
 * in every frame for latency measurement. Nothing is encoded while it runs. */
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/rtsp-server/rtsp-server.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#define EXIT_USAGE 2
#define RTP_HEADER_SIZE 12
#define RTP_PAYLOAD_TYPE 96
#define RTP_CLOCK_RATE 90000
#define PACKET_PAYLOAD_MAX 1200
#define NAL_TYPE_SEI 6
#define NAL_TYPE_AUD 9
#define NAL_TYPE_FILLER 12
#define NAL_TYPE_FU_A 28
#define SEI_USER_DATA_UNREGISTERED 5

/* The send-time SEI (H.264 7.3.2.3, payload type 5 of D.1.6): a NAL header,
 * payload type, payload size, a 16-byte UUID and an 8-byte time, then the
 * RBSP stop bit. The time is the sender's CLOCK_REALTIME in microseconds, 7
 * bits per byte with the top bit set, most significant first: no byte is
 * ever 0, so the unit never needs emulation-prevention bytes. Viewers on the
 * same machine subtract it from their arrival time. */
#define SEI_UUID "cimshub-sendtime"
#define SEI_TIME_BYTES 8
#define SEI_PAYLOAD_SIZE (16 + SEI_TIME_BYTES)
#define SEI_NAL_SIZE (3 + SEI_PAYLOAD_SIZE + 1)
#define SEI_TIME_OFFSET 19          /* within the NAL unit */

typedef struct {
  char *clip_path;
  int n_sources;
  char *rtsp_address;
  int rtsp_port;
  char *rtp_host;
  int rtp_port;
  int width;
  int height;
  int fps;
  int keyint_frames;
  int bitrate_kbps;
  int clip_seconds;
  int duration_s;
  int added_delay_ms;
  int packet_payload_max;
} GenOptions;

/* One RTP packet of the clip without its RTP header. */
typedef struct {
  guint8 *payload;
  guint16 size;
  gboolean is_frame_end;            /* the marker bit */
  gboolean is_send_time;            /* the send-time SEI, stamped when sent */
} ClipPacket;

typedef struct {
  GArray *packets;                  /* of ClipPacket, all frames in order */
  GArray *frame_starts;             /* index of each frame's first packet, then the total */
  guint64 n_payload_bytes;
  guint n_keyframes;
} Clip;

/* One stream: its RTP numbering and where its packets go. */
typedef struct {
  guint index;
  guint32 ssrc;
  guint16 seq;
  guint32 timestamp_base;
  GstAppSrc *appsrc;                /* RTSP mode: set once a client plays it */
  GMutex lock;                      /* protects appsrc */
  struct sockaddr_in destination;   /* RTP mode */
} Source;

typedef struct {
  GenOptions options;
  Clip clip;
  Source *sources;
  int udp_fd;
  atomic_bool is_stopping;
  guint64 n_packets_sent;
  guint64 n_packets_dropped;        /* RTSP mode, before a client plays the mount */
  GMainLoop *loop;
} Gen;

static G_GNUC_NORETURN G_GNUC_PRINTF (1, 2) void
usage_fail (const char *format, ...)
{
  va_list args;

  va_start (args, format);
  fputs ("cimshub-source-gen: ", stderr);
  vfprintf (stderr, format, args);
  fputs ("\nRun with --help for the options.\n", stderr);
  va_end (args);
  exit (EXIT_USAGE);
}

static void
options_parse (int *argc, char ***argv, GenOptions *options)
{
  GOptionEntry entries[] = {
    { "clip", 0, 0, G_OPTION_ARG_FILENAME, &options->clip_path,
      "H.264 byte-stream clip; encoded with x264enc first when the file is missing (required)", "PATH" },
    { "sources", 0, 0, G_OPTION_ARG_INT, &options->n_sources, "Number of streams (default 1)", "N" },
    { "rtsp-address", 0, 0, G_OPTION_ARG_STRING, &options->rtsp_address,
      "Serve the streams as RTSP mounts /src-0, /src-1, ... on this address", "ADDRESS" },
    { "rtsp-port", 0, 0, G_OPTION_ARG_INT, &options->rtsp_port, "RTSP TCP port (default 8554)", "PORT" },
    { "rtp-host", 0, 0, G_OPTION_ARG_STRING, &options->rtp_host,
      "Send stream i as plain RTP over UDP to this IPv4 address, port --rtp-port + 2*i", "ADDRESS" },
    { "rtp-port", 0, 0, G_OPTION_ARG_INT, &options->rtp_port, "UDP port of stream 0 (default 5004)", "PORT" },
    { "width", 0, 0, G_OPTION_ARG_INT, &options->width, "Clip width when encoding it (default 1920)", "PX" },
    { "height", 0, 0, G_OPTION_ARG_INT, &options->height, "Clip height when encoding it (default 1080)", "PX" },
    { "fps", 0, 0, G_OPTION_ARG_INT, &options->fps, "Frame rate, when encoding and sending (default 25)", "FPS" },
    { "keyint", 0, 0, G_OPTION_ARG_INT, &options->keyint_frames,
      "Frames from one keyframe to the next when encoding (default 50)", "FRAMES" },
    { "kbps", 0, 0, G_OPTION_ARG_INT, &options->bitrate_kbps, "x264enc bitrate when encoding (default 2000)",
      "KBPS" },
    { "clip-seconds", 0, 0, G_OPTION_ARG_INT, &options->clip_seconds, "Clip length when encoding (default 10)",
      "S" },
    { "duration", 0, 0, G_OPTION_ARG_INT, &options->duration_s,
      "Stop after this many seconds (default 600)", "S" },
    { "added-delay-ms", 0, 0, G_OPTION_ARG_INT, &options->added_delay_ms,
      "Stamp each frame's send time this many ms before it is sent, as if the path held it that long "
      "(checks the latency measurement; default 0)", "MS" },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- camera-like RTP sources from one clip");
  g_autoptr (GError) error = NULL;

  *options = (GenOptions) { .n_sources = 1, .rtsp_port = 8554, .rtp_port = 5004, .width = 1920,
                            .height = 1080, .fps = 25, .keyint_frames = 50, .bitrate_kbps = 2000,
                            .clip_seconds = 10, .duration_s = 600, .packet_payload_max = PACKET_PAYLOAD_MAX };
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_group (context, gst_init_get_option_group ());
  if (!g_option_context_parse (context, argc, argv, &error))
    usage_fail ("%s", error->message);

  if (options->clip_path == NULL)
    usage_fail ("--clip is required");
  if ((options->rtsp_address == NULL) == (options->rtp_host == NULL))
    usage_fail ("give exactly one of --rtsp-address and --rtp-host");
  if (options->n_sources < 1 || options->n_sources > 1000)
    usage_fail ("--sources must be 1 to 1000, not %d", options->n_sources);
  if (options->fps < 1 || options->fps > 120 || options->keyint_frames < 1 || options->clip_seconds < 1)
    usage_fail ("--fps must be 1 to 120, --keyint and --clip-seconds at least 1");
  if (options->duration_s < 1 || options->added_delay_ms < 0 || options->added_delay_ms > 10000)
    usage_fail ("--duration must be at least 1 and --added-delay-ms 0 to 10000");
  if (options->rtp_port < 1 || options->rtp_port + 2 * options->n_sources > 65535)
    usage_fail ("--rtp-port %d leaves no room for %d streams", options->rtp_port, options->n_sources);
}

/* ---- encoding the clip once ----------------------------------------------------- */

/* Encodes --clip-seconds of test pattern with x264enc, parameter sets before
 * every IDR, no B-frames, as a camera sends it. The noise ("snow") pattern
 * keeps x264's rate control at the requested bitrate; scenecut=0 stops it
 * from making every noise frame a keyframe. */
static gboolean
clip_encode (const GenOptions *options, GError **error)
{
  g_autofree char *description = g_strdup_printf (
      "videotestsrc pattern=snow num-buffers=%d ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1 "
      "! x264enc bitrate=%d key-int-max=%d bframes=0 speed-preset=veryfast tune=zerolatency "
      "option-string=scenecut=0 "
      "! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au "
      "! filesink name=sink",
      options->clip_seconds * options->fps, options->width, options->height, options->fps,
      options->bitrate_kbps, options->keyint_frames);
  g_autoptr (GstElement) pipeline = gst_parse_launch (description, error);
  g_autoptr (GstElement) sink = NULL;
  g_autoptr (GstBus) bus = NULL;
  g_autoptr (GstMessage) message = NULL;

  if (pipeline == NULL)
    return FALSE;

  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (sink, "location", options->clip_path, NULL);

  g_printerr ("cimshub-source-gen: encoding %s (%dx%d, %d fps, %d kbps, keyint %d, %d s) once\n",
              options->clip_path, options->width, options->height, options->fps, options->bitrate_kbps,
              options->keyint_frames, options->clip_seconds);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  message = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gst_element_set_state (pipeline, GST_STATE_NULL);

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR) {
    gst_message_parse_error (message, error, NULL);
    g_unlink (options->clip_path);
    return FALSE;
  }

  return TRUE;
}

/* ---- packetizing the clip once (RFC 6184) -------------------------------------- */

static void
clip_packet_add (Clip *clip, const guint8 *payload, gsize size, gboolean is_send_time)
{
  ClipPacket packet = { .payload = g_memdup2 (payload, size), .size = (guint16) size,
                        .is_send_time = is_send_time };

  g_array_append_val (clip->packets, packet);
  clip->n_payload_bytes += size;
}

/* A single NAL unit packet, or FU-A fragments when the unit is larger than
 * @max_payload. */
static void
clip_nal_add (Clip *clip, const guint8 *nal, gsize size, gsize max_payload)
{
  guint8 fragment[PACKET_PAYLOAD_MAX + 2];
  gsize offset = 1;

  if (size <= max_payload) {
    clip_packet_add (clip, nal, size, FALSE);
    return;
  }

  while (offset < size) {
    gsize chunk = MIN (size - offset, max_payload - 2);

    fragment[0] = (nal[0] & 0xe0) | NAL_TYPE_FU_A;
    fragment[1] = (nal[0] & 0x1f) | (offset == 1 ? 0x80 : 0) | (offset + chunk == size ? 0x40 : 0);
    memcpy (fragment + 2, nal + offset, chunk);
    clip_packet_add (clip, fragment, chunk + 2, FALSE);
    offset += chunk;
  }
}

static void
clip_send_time_add (Clip *clip)
{
  guint8 sei[SEI_NAL_SIZE];

  sei[0] = NAL_TYPE_SEI;
  sei[1] = SEI_USER_DATA_UNREGISTERED;
  sei[2] = SEI_PAYLOAD_SIZE;
  memcpy (sei + 3, SEI_UUID, 16);
  memset (sei + SEI_TIME_OFFSET, 0x80, SEI_TIME_BYTES);
  sei[SEI_NAL_SIZE - 1] = 0x80;
  clip_packet_add (clip, sei, sizeof sei, TRUE);
}

/* Returns the offset of the next 00 00 01 start code at or after @from, or
 * @size when there is none. */
static gsize
start_code_find (const guint8 *data, gsize size, gsize from)
{
  for (gsize i = from; i + 3 <= size; i++)
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1)
      return i;

  return size;
}

/* Packetizes one access unit: the send-time SEI first, then its NAL units
 * without the access unit delimiters and filler data. */
static void
clip_frame_add (Clip *clip, const guint8 *data, gsize size, gsize max_payload)
{
  gsize start = start_code_find (data, size, 0);
  guint first = clip->packets->len;

  g_array_append_val (clip->frame_starts, first);
  clip_send_time_add (clip);

  while (start < size) {
    gsize nal = start + 3;
    gsize next = start_code_find (data, size, nal);
    gsize end = next;
    guint type;

    /* A four-byte start code leaves a zero byte before the next one. */
    while (end > nal && data[end - 1] == 0)
      end--;
    type = end > nal ? data[nal] & 0x1f : 0;
    if (end > nal && type != NAL_TYPE_AUD && type != NAL_TYPE_FILLER)
      clip_nal_add (clip, data + nal, end - nal, max_payload);
    start = next;
  }

  g_array_index (clip->packets, ClipPacket, clip->packets->len - 1).is_frame_end = TRUE;
}

static gboolean
frame_is_keyframe (const guint8 *data, gsize size)
{
  for (gsize start = start_code_find (data, size, 0); start < size; start = start_code_find (data, size, start + 3))
    if (start + 3 < size && (data[start + 3] & 0x1f) == 5)
      return TRUE;

  return FALSE;
}

static gboolean
clip_load (Clip *clip, const GenOptions *options, GError **error)
{
  g_autoptr (GstElement) pipeline = gst_parse_launch (
      "filesrc name=source ! h264parse config-interval=-1 "
      "! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false", error);
  g_autoptr (GstElement) source = NULL;
  g_autoptr (GstElement) sink = NULL;
  guint total;

  if (pipeline == NULL)
    return FALSE;

  source = gst_bin_get_by_name (GST_BIN (pipeline), "source");
  g_object_set (source, "location", options->clip_path, NULL);

  clip->packets = g_array_new (FALSE, FALSE, sizeof (ClipPacket));
  clip->frame_starts = g_array_new (FALSE, FALSE, sizeof (guint));
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);

  for (;;) {
    g_autoptr (GstSample) sample = gst_app_sink_pull_sample (GST_APP_SINK (sink));
    GstMapInfo map;

    if (sample == NULL)
      break;
    if (!gst_buffer_map (gst_sample_get_buffer (sample), &map, GST_MAP_READ))
      continue;
    if (frame_is_keyframe (map.data, map.size))
      clip->n_keyframes++;
    clip_frame_add (clip, map.data, map.size, (gsize) options->packet_payload_max);
    gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);

  if (clip->frame_starts->len == 0 || clip->n_keyframes == 0) {
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
                 "%s holds no H.264 frames or no keyframe; delete it to encode it again", options->clip_path);
    return FALSE;
  }

  total = clip->packets->len;
  g_array_append_val (clip->frame_starts, total);
  return TRUE;
}

/* ---- sending -------------------------------------------------------------------- */

static void
send_time_write (guint8 *sei_nal, gint64 time_us)
{
  guint64 value = (guint64) time_us;

  for (int i = SEI_TIME_BYTES - 1; i >= 0; i--) {
    sei_nal[SEI_TIME_OFFSET + i] = 0x80 | (value & 0x7f);
    value >>= 7;
  }
}

static gsize
packet_write (Source *source, const ClipPacket *clip_packet, guint32 timestamp, gint64 send_time_us,
              guint8 *out)
{
  out[0] = 0x80;
  out[1] = (clip_packet->is_frame_end ? 0x80 : 0) | RTP_PAYLOAD_TYPE;
  out[2] = source->seq >> 8;
  out[3] = source->seq & 0xff;
  out[4] = timestamp >> 24;
  out[5] = (timestamp >> 16) & 0xff;
  out[6] = (timestamp >> 8) & 0xff;
  out[7] = timestamp & 0xff;
  out[8] = source->ssrc >> 24;
  out[9] = (source->ssrc >> 16) & 0xff;
  out[10] = (source->ssrc >> 8) & 0xff;
  out[11] = source->ssrc & 0xff;
  memcpy (out + RTP_HEADER_SIZE, clip_packet->payload, clip_packet->size);
  if (clip_packet->is_send_time)
    send_time_write (out + RTP_HEADER_SIZE, send_time_us);

  source->seq++;
  return RTP_HEADER_SIZE + clip_packet->size;
}

static void
frame_send_udp (Gen *gen, Source *source, guint first, guint end, guint32 timestamp, gint64 send_time_us)
{
  static guint8 buffers[64][RTP_HEADER_SIZE + PACKET_PAYLOAD_MAX];
  struct mmsghdr messages[64];
  struct iovec vectors[64];
  guint i = first;

  while (i < end) {
    guint n = 0;
    int sent;

    for (; i < end && n < G_N_ELEMENTS (messages); i++, n++) {
      const ClipPacket *packet = &g_array_index (gen->clip.packets, ClipPacket, i);

      vectors[n].iov_base = buffers[n];
      vectors[n].iov_len = packet_write (source, packet, timestamp, send_time_us, buffers[n]);
      memset (&messages[n], 0, sizeof messages[n]);
      messages[n].msg_hdr.msg_iov = &vectors[n];
      messages[n].msg_hdr.msg_iovlen = 1;
      messages[n].msg_hdr.msg_name = &source->destination;
      messages[n].msg_hdr.msg_namelen = sizeof source->destination;
    }
    sent = sendmmsg (gen->udp_fd, messages, n, 0);
    if (sent > 0)
      gen->n_packets_sent += (guint) sent;
    if (sent < (int) n)
      gen->n_packets_dropped += n - MAX (sent, 0);
  }
}

static void
frame_send_rtsp (Gen *gen, Source *source, guint first, guint end, guint32 timestamp, gint64 send_time_us)
{
  g_autoptr (GstAppSrc) appsrc = NULL;
  GstBufferList *list;

  g_mutex_lock (&source->lock);
  if (source->appsrc != NULL)
    appsrc = g_object_ref (source->appsrc);
  g_mutex_unlock (&source->lock);

  if (appsrc == NULL) {
    /* Nobody plays the mount: keep numbering as a camera would. */
    source->seq += end - first;
    gen->n_packets_dropped += end - first;
    return;
  }

  list = gst_buffer_list_new_sized (end - first);
  for (guint i = first; i < end; i++) {
    const ClipPacket *packet = &g_array_index (gen->clip.packets, ClipPacket, i);
    GstBuffer *buffer = gst_buffer_new_allocate (NULL, RTP_HEADER_SIZE + packet->size, NULL);
    GstMapInfo map;

    gst_buffer_map (buffer, &map, GST_MAP_WRITE);
    packet_write (source, packet, timestamp, send_time_us, map.data);
    gst_buffer_unmap (buffer, &map);
    gst_buffer_list_add (list, buffer);
  }
  if (gst_app_src_push_buffer_list (appsrc, list) == GST_FLOW_OK)
    gen->n_packets_sent += end - first;
}

/* Sends frame @frame_number of @source: the clip's frame at that position
 * modulo its length, with this source's SSRC, its next sequence numbers and
 * a timestamp of frame_number / fps seconds after its base. */
static void
frame_send (Gen *gen, Source *source, guint64 frame_number)
{
  guint n_frames = gen->clip.frame_starts->len - 1;
  guint frame = (guint) (frame_number % n_frames);
  guint first = g_array_index (gen->clip.frame_starts, guint, frame);
  guint end = g_array_index (gen->clip.frame_starts, guint, frame + 1);
  guint32 timestamp = source->timestamp_base + (guint32) (frame_number * RTP_CLOCK_RATE / gen->options.fps);
  gint64 send_time_us = g_get_real_time () - (gint64) gen->options.added_delay_ms * 1000;

  if (gen->options.rtp_host != NULL)
    frame_send_udp (gen, source, first, end, timestamp, send_time_us);
  else
    frame_send_rtsp (gen, source, first, end, timestamp, send_time_us);
}

static void
sleep_until_ns (gint64 deadline_ns)
{
  struct timespec when = { .tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000 };

  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &when, NULL) == EINTR)
    ;
}

/* Paces every source on one thread: frame k of source i goes out at
 * start + k / fps + i / (fps * sources), so the sources' bursts interleave
 * as independent cameras' would. A late thread sends at once and catches
 * up instead of dropping frames. */
static gpointer
sender_thread (gpointer user_data)
{
  Gen *gen = user_data;
  gint64 interval_ns = 1000000000LL / gen->options.fps;
  gint64 slot_ns = interval_ns / gen->options.n_sources;
  gint64 start_ns = g_get_monotonic_time () * 1000;
  gint64 end_ns = start_ns + (gint64) gen->options.duration_s * 1000000000LL;

  for (guint64 frame_number = 0; !atomic_load (&gen->is_stopping); frame_number++) {
    for (int i = 0; i < gen->options.n_sources && !atomic_load (&gen->is_stopping); i++) {
      gint64 due_ns = start_ns + (gint64) frame_number * interval_ns + i * slot_ns;

      if (due_ns >= end_ns) {
        atomic_store (&gen->is_stopping, TRUE);
        break;
      }
      sleep_until_ns (due_ns);
      frame_send (gen, &gen->sources[i], frame_number);
    }
  }

  g_main_loop_quit (gen->loop);
  return NULL;
}

/* ---- RTSP mounts ------------------------------------------------------------------ */

static void
appsrc_unset_cb (gpointer data, GObject *where_the_object_was)
{
  Source *source = data;

  g_mutex_lock (&source->lock);
  if ((GObject *) source->appsrc == where_the_object_was)
    source->appsrc = NULL;
  g_mutex_unlock (&source->lock);
}

static void
media_configure_cb (GstRTSPMediaFactory *factory, GstRTSPMedia *media, gpointer user_data)
{
  Source *source = user_data;
  g_autoptr (GstElement) bin = gst_rtsp_media_get_element (media);
  g_autoptr (GstElement) appsrc = gst_bin_get_by_name (GST_BIN (bin), "pay0");

  g_mutex_lock (&source->lock);
  source->appsrc = GST_APP_SRC (appsrc);
  g_object_weak_ref (G_OBJECT (appsrc), appsrc_unset_cb, source);
  g_mutex_unlock (&source->lock);
}

/* The mount's pipeline is only an appsrc named pay0 that carries the
 * finished RTP packets, so the server neither parses nor payloads. */
static void
mount_add (GstRTSPMountPoints *mounts, Source *source)
{
  GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new ();
  g_autofree char *path = g_strdup_printf ("/src-%u", source->index);
  g_autofree char *launch = g_strdup_printf (
      "( appsrc name=pay0 is-live=true do-timestamp=true format=time max-bytes=4000000 "
      "caps=\"application/x-rtp,media=video,clock-rate=%d,encoding-name=H264,payload=%d,"
      "packetization-mode=(string)1\" )", RTP_CLOCK_RATE, RTP_PAYLOAD_TYPE);

  gst_rtsp_media_factory_set_launch (factory, launch);
  gst_rtsp_media_factory_set_shared (factory, TRUE);
  g_signal_connect (factory, "media-configure", G_CALLBACK (media_configure_cb), source);
  gst_rtsp_mount_points_add_factory (mounts, path, factory);
}

static void
rtsp_serve (Gen *gen)
{
  GstRTSPServer *server = gst_rtsp_server_new ();
  g_autoptr (GstRTSPMountPoints) mounts = gst_rtsp_server_get_mount_points (server);
  g_autofree char *port = g_strdup_printf ("%d", gen->options.rtsp_port);

  gst_rtsp_server_set_address (server, gen->options.rtsp_address);
  gst_rtsp_server_set_service (server, port);
  for (int i = 0; i < gen->options.n_sources; i++)
    mount_add (mounts, &gen->sources[i]);

  if (gst_rtsp_server_attach (server, NULL) == 0) {
    g_printerr ("cimshub-source-gen: cannot listen on %s:%d for RTSP\n", gen->options.rtsp_address,
                gen->options.rtsp_port);
    exit (1);
  }
  printf ("cimshub-source-gen: serving rtsp://%s:%d/src-0 to /src-%d\n", gen->options.rtsp_address,
          gen->options.rtsp_port, gen->options.n_sources - 1);
}

static void
udp_open (Gen *gen)
{
  gen->udp_fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (gen->udp_fd < 0) {
    g_printerr ("cimshub-source-gen: socket() failed: %s\n", g_strerror (errno));
    exit (1);
  }

  for (int i = 0; i < gen->options.n_sources; i++) {
    Source *source = &gen->sources[i];

    source->destination.sin_family = AF_INET;
    source->destination.sin_port = htons ((guint16) (gen->options.rtp_port + 2 * i));
    if (inet_pton (AF_INET, gen->options.rtp_host, &source->destination.sin_addr) != 1)
      usage_fail ("--rtp-host \"%s\" is not an IPv4 address", gen->options.rtp_host);
  }
  printf ("cimshub-source-gen: sending RTP to %s ports %d to %d\n", gen->options.rtp_host, gen->options.rtp_port,
          gen->options.rtp_port + 2 * (gen->options.n_sources - 1));
}

/* ---- main ---------------------------------------------------------------------------- */

static gboolean
stop_cb (gpointer user_data)
{
  Gen *gen = user_data;

  atomic_store (&gen->is_stopping, TRUE);
  g_main_loop_quit (gen->loop);
  return G_SOURCE_CONTINUE;
}

static void
clip_describe (const Gen *gen)
{
  guint n_frames = gen->clip.frame_starts->len - 1;
  double seconds = (double) n_frames / gen->options.fps;
  guint largest = 0;

  for (guint i = 0; i < n_frames; i++) {
    guint first = g_array_index (gen->clip.frame_starts, guint, i);
    guint end = g_array_index (gen->clip.frame_starts, guint, i + 1);

    largest = MAX (largest, end - first);
  }

  printf ("cimshub-source-gen: clip %s: %u frames, %u keyframes, %u packets, %.0f kbit/s of RTP payload "
          "at %d fps, largest frame %u packets\n", gen->options.clip_path, n_frames, gen->clip.n_keyframes,
          gen->clip.packets->len, gen->clip.n_payload_bytes * 8 / seconds / 1000, gen->options.fps, largest);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GThread) sender = NULL;
  Gen gen = { .udp_fd = -1 };

  options_parse (&argc, &argv, &gen.options);

  if (!g_file_test (gen.options.clip_path, G_FILE_TEST_EXISTS) && !clip_encode (&gen.options, &error)) {
    g_printerr ("cimshub-source-gen: encoding %s failed: %s\n", gen.options.clip_path, error->message);
    return 1;
  }
  if (!clip_load (&gen.clip, &gen.options, &error)) {
    g_printerr ("cimshub-source-gen: loading %s failed: %s\n", gen.options.clip_path, error->message);
    return 1;
  }
  clip_describe (&gen);

  gen.sources = g_new0 (Source, gen.options.n_sources);
  for (int i = 0; i < gen.options.n_sources; i++) {
    gen.sources[i].index = (guint) i;
    gen.sources[i].ssrc = g_random_int ();
    gen.sources[i].seq = (guint16) g_random_int ();
    gen.sources[i].timestamp_base = g_random_int ();
    g_mutex_init (&gen.sources[i].lock);
  }

  gen.loop = g_main_loop_new (NULL, FALSE);
  if (gen.options.rtsp_address != NULL)
    rtsp_serve (&gen);
  else
    udp_open (&gen);
  fflush (stdout);

  g_unix_signal_add (SIGINT, stop_cb, &gen);
  g_unix_signal_add (SIGTERM, stop_cb, &gen);
  sender = g_thread_new ("sender", sender_thread, &gen);
  g_main_loop_run (gen.loop);
  atomic_store (&gen.is_stopping, TRUE);
  g_thread_join (g_steal_pointer (&sender));

  printf ("cimshub-source-gen: sent %" G_GUINT64_FORMAT " packets, %" G_GUINT64_FORMAT " not sent\n",
          gen.n_packets_sent, gen.n_packets_dropped);
  return 0;
}

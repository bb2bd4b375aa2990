/* SPDX-License-Identifier: Apache-2.0 */
/* RTSP ingest against an in-process gst-rtsp-server on 127.0.0.1: video-only
 * relay of real RTP headers, reconnects, digest authentication, H.265, and
 * rejection of codecs the hub does not relay. */
#include "pipelines/pipelines.h"

#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

#include <string.h>

#define TEST_VIDEO_SSRC 0x1234abcdu
#define TEST_VIDEO_PT 96
#define TEST_WAIT_TIMEOUT_MS 15000
#define TEST_USERNAME "operator"
#define TEST_PASSWORD "digest-test-pass"

#define TEST_H264_AUDIO_LAUNCH \
  "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 " \
  "! x264enc tune=zerolatency key-int-max=30 bframes=0 " \
  "! rtph264pay pt=96 name=pay0 config-interval=-1 ssrc=305441741 " \
  "audiotestsrc is-live=true ! alawenc ! rtppcmapay name=pay1 pt=8 )"
#define TEST_H265_LAUNCH \
  "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 " \
  "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 " \
  "! rtph265pay pt=96 name=pay0 config-interval=-1 ssrc=305441741 )"
#define TEST_MJPEG_LAUNCH \
  "( videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 " \
  "! jpegenc ! rtpjpegpay pt=26 name=pay0 )"

/* ---- RTSP server on its own thread and main context ---------------------- */

typedef struct {
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  GstRTSPServer *server;
  guint port;
} TestServer;

static gpointer
test_server_thread (gpointer user_data)
{
  TestServer *server = user_data;

  g_main_context_push_thread_default (server->context);
  g_main_loop_run (server->loop);
  g_main_context_pop_thread_default (server->context);

  return NULL;
}

static GstRTSPMediaFactory *
test_factory_new (const char *launch)
{
  GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new ();

  gst_rtsp_media_factory_set_launch (factory, launch);

  return factory;
}

static void
test_server_mount (TestServer *server, const char *path, GstRTSPMediaFactory *factory)
{
  g_autoptr(GstRTSPMountPoints) mounts = gst_rtsp_server_get_mount_points (server->server);

  gst_rtsp_mount_points_add_factory (mounts, path, factory);
}

static void
test_server_unmount (TestServer *server, const char *path)
{
  g_autoptr(GstRTSPMountPoints) mounts = gst_rtsp_server_get_mount_points (server->server);

  gst_rtsp_mount_points_remove_factory (mounts, path);
}

static GstRTSPFilterResult
test_server_remove_client_cb (GstRTSPServer *server, GstRTSPClient *client, gpointer user_data)
{
  return GST_RTSP_FILTER_REMOVE;
}

/* Closes every client connection, as a camera that reboots does. */
static void
test_server_drop_clients (TestServer *server)
{
  GList *clients = gst_rtsp_server_client_filter (server->server, test_server_remove_client_cb, NULL);

  g_list_free_full (clients, g_object_unref);
}

/* Starts a server on 127.0.0.1 with a port chosen by the kernel. */
static TestServer *
test_server_new (GstRTSPAuth *auth)
{
  TestServer *server = g_new0 (TestServer, 1);

  server->context = g_main_context_new ();
  server->loop = g_main_loop_new (server->context, FALSE);
  server->server = gst_rtsp_server_new ();
  gst_rtsp_server_set_address (server->server, "127.0.0.1");
  gst_rtsp_server_set_service (server->server, "0");
  if (auth != NULL)
    gst_rtsp_server_set_auth (server->server, auth);
  g_assert_cmpuint (gst_rtsp_server_attach (server->server, server->context), >, 0);
  server->port = (guint) gst_rtsp_server_get_bound_port (server->server);
  g_assert_cmpuint (server->port, >, 0);
  server->thread = g_thread_new ("rtsp-server", test_server_thread, server);

  return server;
}

static void
test_server_free (TestServer *server)
{
  test_server_drop_clients (server);
  g_main_loop_quit (server->loop);
  g_thread_join (server->thread);
  g_object_unref (server->server);
  g_main_loop_unref (server->loop);
  g_main_context_unref (server->context);
  g_free (server);
}

static gchar *
test_server_url (TestServer *server, const char *path)
{
  return g_strdup_printf ("rtsp://127.0.0.1:%u%s", server->port, path);
}

/* ---- what the ingest reported -------------------------------------------- */

typedef struct {
  GMutex lock;                  /* the packet and format fields: streaming threads */
  guint n_packets;
  guint n_packets_in_epoch;
  guint n_wrong_payload_type;
  guint n_wrong_version;
  guint n_wrong_ssrc;
  guint n_seq_not_increasing;
  guint n_epoch_without_format;
  guint32 packet_epoch;
  guint16 last_seq;
  guint n_formats;
  CimsCodec codec;
  guint clock_rate;
  gchar *fmtp;
  guint n_parameter_sets;
  guint32 format_epoch;

  /* main context only */
  GArray *states;
  GPtrArray *messages;
} TestRecord;

static void
test_record_packet_cb (CimsRtpPacket *packet, gpointer user_data)
{
  TestRecord *record = user_data;
  guint16 seq = cims_rtp_packet_get_seq (packet);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&record->lock);

  if ((packet->data[0] >> 6) != 2)
    record->n_wrong_version++;
  if (cims_rtp_packet_get_payload_type (packet) != TEST_VIDEO_PT)
    record->n_wrong_payload_type++;
  if (cims_rtp_packet_get_ssrc (packet) != TEST_VIDEO_SSRC)
    record->n_wrong_ssrc++;
  if (packet->epoch != record->format_epoch)
    record->n_epoch_without_format++;

  if (packet->epoch != record->packet_epoch)
    {
      record->packet_epoch = packet->epoch;
      record->n_packets_in_epoch = 0;
    }
  else if ((gint16) (seq - record->last_seq) <= 0)
    {
      record->n_seq_not_increasing++;
    }

  record->last_seq = seq;
  record->n_packets++;
  record->n_packets_in_epoch++;
}

static void
test_record_format_cb (CimsCodec codec, guint clock_rate, const char *fmtp,
                       GPtrArray *parameter_sets, guint32 epoch, gpointer user_data)
{
  TestRecord *record = user_data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&record->lock);

  record->n_formats++;
  record->codec = codec;
  record->clock_rate = clock_rate;
  g_free (record->fmtp);
  record->fmtp = g_strdup (fmtp);
  record->n_parameter_sets = parameter_sets->len;
  record->format_epoch = epoch;
}

static void
test_record_state_cb (CimsIngestState state, const char *message, gpointer user_data)
{
  TestRecord *record = user_data;

  g_test_message ("state %d: %s", state, message);
  g_array_append_val (record->states, state);
  g_ptr_array_add (record->messages, g_strdup (message));
}

static TestRecord *
test_record_new (void)
{
  TestRecord *record = g_new0 (TestRecord, 1);

  g_mutex_init (&record->lock);
  record->states = g_array_new (FALSE, FALSE, sizeof (CimsIngestState));
  record->messages = g_ptr_array_new_with_free_func (g_free);

  return record;
}

static void
test_record_free (TestRecord *record)
{
  g_array_unref (record->states);
  g_ptr_array_unref (record->messages);
  g_free (record->fmtp);
  g_mutex_clear (&record->lock);
  g_free (record);
}

static guint
test_record_count_state (TestRecord *record, CimsIngestState state)
{
  guint n = 0;

  for (guint i = 0; i < record->states->len; i++)
    if (g_array_index (record->states, CimsIngestState, i) == state)
      n++;

  return n;
}

static gboolean
test_record_has_message (TestRecord *record, CimsIngestState state, const char *needle)
{
  for (guint i = 0; i < record->states->len; i++)
    {
      g_autofree gchar *lower = g_ascii_strdown (g_ptr_array_index (record->messages, i), -1);

      if (g_array_index (record->states, CimsIngestState, i) == state && strstr (lower, needle) != NULL)
        return TRUE;
    }

  return FALSE;
}

/* Returns the delay announced by the @nth RECONNECTING message, as in
 * "...; reconnecting in 230 ms", or G_MAXUINT when there is none. */
static guint
test_record_get_delay_ms (TestRecord *record, guint nth)
{
  for (guint i = 0; i < record->states->len; i++)
    {
      const char *message = g_ptr_array_index (record->messages, i);
      const char *delay;

      if (g_array_index (record->states, CimsIngestState, i) != CIMS_INGEST_STATE_RECONNECTING)
        continue;
      if (nth-- > 0)
        continue;
      delay = strstr (message, "reconnecting in ");
      return delay != NULL ? (guint) g_ascii_strtoull (delay + strlen ("reconnecting in "), NULL, 10) : G_MAXUINT;
    }

  return G_MAXUINT;
}

/* ---- running the ingest -------------------------------------------------- */

typedef gboolean (*TestPredicate) (TestRecord *record, gpointer data);

static gboolean
test_deadline_cb (gpointer user_data)
{
  gboolean *is_expired = user_data;

  *is_expired = TRUE;

  return G_SOURCE_REMOVE;
}

/* Iterates the main context until @predicate holds; fails the test after
 * @timeout_ms so no test can hang. */
static void
test_wait_until (TestRecord *record, TestPredicate predicate, gpointer data, guint timeout_ms,
                 const char *what)
{
  gboolean is_expired = FALSE;
  guint deadline_id = g_timeout_add (timeout_ms, test_deadline_cb, &is_expired);

  while (!is_expired)
    {
      gboolean is_done;

      g_mutex_lock (&record->lock);
      is_done = predicate (record, data);
      g_mutex_unlock (&record->lock);
      if (is_done)
        break;
      g_main_context_iteration (NULL, TRUE);
    }

  if (is_expired)
    g_error ("timed out after %u ms waiting for %s", timeout_ms, what);
  g_source_remove (deadline_id);
}

static CimsIngest *
test_ingest_new (const char *url, const char *username, const char *password, TestRecord *record)
{
  CimsIngestSettings settings = {
    .camera_id = "test-camera",
    .url = url,
    .username = username,
    .password = password,
    .latency_ms = 50,
    .connect_timeout_ms = 3000,
    .reconnect_min_ms = 200,
    .reconnect_max_ms = 1000,
  };
  CimsIngestCallbacks callbacks = {
    .on_packet = test_record_packet_cb,
    .on_format = test_record_format_cb,
    .on_state = test_record_state_cb,
  };

  return cims_ingest_new (&settings, &callbacks, record);
}

typedef struct {
  guint n_packets;
  guint32 min_epoch;
} TestPlayingGoal;

/* PLAYING was reported after the last failure, and enough packets of an
 * epoch of at least min_epoch have arrived. */
static gboolean
test_is_playing (TestRecord *record, gpointer data)
{
  TestPlayingGoal *goal = data;
  guint n_states = record->states->len;

  if (n_states == 0 || g_array_index (record->states, CimsIngestState, n_states - 1) != CIMS_INGEST_STATE_PLAYING)
    return FALSE;

  return record->packet_epoch >= goal->min_epoch && record->n_packets_in_epoch >= goal->n_packets;
}

static gboolean
test_has_state (TestRecord *record, gpointer data)
{
  return test_record_count_state (record, GPOINTER_TO_INT (data)) > 0;
}

/* The first failure is the silent camera, the next a retry that fails. */
static gboolean
test_has_failed_twice (TestRecord *record, gpointer data)
{
  return test_record_count_state (record, CIMS_INGEST_STATE_RECONNECTING) >= 2;
}

static void
test_assert_clean_video (TestRecord *record)
{
  g_assert_cmpuint (record->n_wrong_version, ==, 0);
  g_assert_cmpuint (record->n_wrong_payload_type, ==, 0);
  g_assert_cmpuint (record->n_wrong_ssrc, ==, 0);
  g_assert_cmpuint (record->n_seq_not_increasing, ==, 0);
  g_assert_cmpuint (record->n_epoch_without_format, ==, 0);
}

/* ---- tests ----------------------------------------------------------------- */

static void
test_rtsp_ingest_relays_h264_video_only (void)
{
  TestServer *server = test_server_new (NULL);
  TestRecord *record = test_record_new ();
  g_autofree gchar *url = test_server_url (server, "/cam");
  g_autoptr(CimsIngest) ingest = NULL;
  TestPlayingGoal goal = { .n_packets = 100, .min_epoch = 1 };

  test_server_mount (server, "/cam", test_factory_new (TEST_H264_AUDIO_LAUNCH));
  ingest = test_ingest_new (url, NULL, NULL, record);
  cims_ingest_start (ingest);
  g_assert_cmpint (cims_ingest_get_state (ingest), ==, CIMS_INGEST_STATE_CONNECTING);

  test_wait_until (record, test_is_playing, &goal, TEST_WAIT_TIMEOUT_MS, "100 H.264 packets");
  cims_ingest_stop (ingest);
  g_assert_cmpint (cims_ingest_get_state (ingest), ==, CIMS_INGEST_STATE_STOPPED);

  g_test_message ("fmtp: %s", record->fmtp);
  g_assert_cmpint (g_array_index (record->states, CimsIngestState, 0), ==, CIMS_INGEST_STATE_CONNECTING);
  g_assert_cmpuint (test_record_count_state (record, CIMS_INGEST_STATE_PLAYING), ==, 1);
  g_assert_cmpuint (test_record_count_state (record, CIMS_INGEST_STATE_RECONNECTING), ==, 0);
  g_assert_cmpint (record->codec, ==, CIMS_CODEC_H264);
  g_assert_cmpuint (record->clock_rate, ==, 90000);
  g_assert_cmpuint (record->n_parameter_sets, >=, 2);
  g_assert_nonnull (strstr (record->fmtp, "packetization-mode=1"));
  g_assert_nonnull (strstr (record->fmtp, "sprop-parameter-sets="));
  /* The SDP that gst-rtsp-server 1.22 makes for rtph264pay here has no
   * profile-level-id, so only the absence of non-fmtp attributes is checked. */
  g_assert_null (strstr (record->fmtp, "a-tool="));
  g_assert_null (strstr (record->fmtp, "cname"));
  g_assert_cmpuint (record->format_epoch, ==, 1);
  g_assert_cmpuint (record->n_packets, >=, 100);
  test_assert_clean_video (record);

  g_clear_pointer (&ingest, cims_ingest_free);
  test_record_free (record);
  test_server_free (server);
}

static void
test_rtsp_ingest_reconnects_after_server_loss (void)
{
  TestServer *server = test_server_new (NULL);
  TestRecord *record = test_record_new ();
  g_autofree gchar *url = test_server_url (server, "/cam");
  g_autoptr(CimsIngest) ingest = NULL;
  TestPlayingGoal first = { .n_packets = 30, .min_epoch = 1 };
  TestPlayingGoal second = { .n_packets = 30, .min_epoch = 2 };
  guint32 first_epoch;

  test_server_mount (server, "/cam", test_factory_new (TEST_H264_AUDIO_LAUNCH));
  ingest = test_ingest_new (url, NULL, NULL, record);
  cims_ingest_start (ingest);
  test_wait_until (record, test_is_playing, &first, TEST_WAIT_TIMEOUT_MS, "the first connection");
  first_epoch = record->format_epoch;

  /* The camera goes away: its stream is gone and connections are closed. */
  test_server_unmount (server, "/cam");
  test_server_drop_clients (server);
  test_wait_until (record, test_has_failed_twice, NULL, TEST_WAIT_TIMEOUT_MS, "two failed attempts");
  g_assert_cmpint (cims_ingest_get_state (ingest), ==, CIMS_INGEST_STATE_RECONNECTING);
  /* The retry reaches the server and names the RTSP error it gets back. */
  g_assert_true (test_record_has_message (record, CIMS_INGEST_STATE_RECONNECTING, "not found"));
  /* It also keeps the camera's own status line, which rtspsrc puts only in
   * its debug text. */
  g_assert_true (test_record_has_message (record, CIMS_INGEST_STATE_RECONNECTING, "(404)"));
  /* Backoff: reconnect_min_ms (200), then doubled, each within +-20 %. */
  g_assert_cmpuint (test_record_get_delay_ms (record, 0), >=, 160);
  g_assert_cmpuint (test_record_get_delay_ms (record, 0), <=, 240);
  g_assert_cmpuint (test_record_get_delay_ms (record, 1), >=, 320);
  g_assert_cmpuint (test_record_get_delay_ms (record, 1), <=, 480);

  test_server_mount (server, "/cam", test_factory_new (TEST_H264_AUDIO_LAUNCH));
  test_wait_until (record, test_is_playing, &second, TEST_WAIT_TIMEOUT_MS, "packets after reconnecting");
  cims_ingest_stop (ingest);

  g_assert_cmpuint (record->format_epoch, >, first_epoch);
  g_assert_cmpuint (record->packet_epoch, ==, record->format_epoch);
  g_assert_cmpuint (test_record_count_state (record, CIMS_INGEST_STATE_PLAYING), ==, 2);
  g_assert_cmpint (record->codec, ==, CIMS_CODEC_H264);
  test_assert_clean_video (record);

  g_clear_pointer (&ingest, cims_ingest_free);
  test_record_free (record);
  test_server_free (server);
}

static TestServer *
test_digest_server_new (void)
{
  g_autoptr(GstRTSPAuth) auth = gst_rtsp_auth_new ();
  g_autoptr(GstRTSPToken) token = gst_rtsp_token_new (GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING,
                                                      "viewer", NULL);
  GstRTSPMediaFactory *factory = test_factory_new (TEST_H264_AUDIO_LAUNCH);
  TestServer *server;

  gst_rtsp_auth_set_supported_methods (auth, GST_RTSP_AUTH_DIGEST);
  gst_rtsp_auth_add_digest (auth, TEST_USERNAME, TEST_PASSWORD, token);
  gst_rtsp_media_factory_add_role (factory, "viewer",
                                   GST_RTSP_PERM_MEDIA_FACTORY_ACCESS, G_TYPE_BOOLEAN, TRUE,
                                   GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, G_TYPE_BOOLEAN, TRUE, NULL);
  server = test_server_new (auth);
  test_server_mount (server, "/secure", factory);

  return server;
}

static void
test_rtsp_ingest_digest_accepts_right_credentials (void)
{
  TestServer *server = test_digest_server_new ();
  TestRecord *record = test_record_new ();
  g_autofree gchar *url = test_server_url (server, "/secure");
  g_autoptr(CimsIngest) ingest = test_ingest_new (url, TEST_USERNAME, TEST_PASSWORD, record);
  TestPlayingGoal goal = { .n_packets = 30, .min_epoch = 1 };

  cims_ingest_start (ingest);
  test_wait_until (record, test_is_playing, &goal, TEST_WAIT_TIMEOUT_MS, "packets with digest credentials");
  cims_ingest_stop (ingest);

  g_assert_cmpuint (test_record_count_state (record, CIMS_INGEST_STATE_RECONNECTING), ==, 0);
  g_assert_cmpint (record->codec, ==, CIMS_CODEC_H264);
  test_assert_clean_video (record);

  g_clear_pointer (&ingest, cims_ingest_free);
  test_record_free (record);
  test_server_free (server);
}

/* rtspsrc takes the credentials from the URL; they never reach a message. */
static void
test_rtsp_ingest_digest_accepts_credentials_in_url (void)
{
  TestServer *server = test_digest_server_new ();
  TestRecord *record = test_record_new ();
  g_autofree gchar *url = g_strdup_printf ("rtsp://%s:%s@127.0.0.1:%u/secure", TEST_USERNAME, TEST_PASSWORD,
                                           server->port);
  g_autoptr(CimsIngest) ingest = test_ingest_new (url, NULL, NULL, record);
  TestPlayingGoal goal = { .n_packets = 30, .min_epoch = 1 };

  cims_ingest_start (ingest);
  test_wait_until (record, test_is_playing, &goal, TEST_WAIT_TIMEOUT_MS, "packets with credentials in the URL");
  cims_ingest_stop (ingest);

  g_assert_cmpuint (test_record_count_state (record, CIMS_INGEST_STATE_RECONNECTING), ==, 0);
  for (guint i = 0; i < record->messages->len; i++)
    g_assert_null (strstr (g_ptr_array_index (record->messages, i), TEST_PASSWORD));
  test_assert_clean_video (record);

  g_clear_pointer (&ingest, cims_ingest_free);
  test_record_free (record);
  test_server_free (server);
}

static gboolean
test_is_unauthorized (TestRecord *record, gpointer data)
{
  return test_record_has_message (record, CIMS_INGEST_STATE_RECONNECTING, "401")
         || test_record_has_message (record, CIMS_INGEST_STATE_RECONNECTING, "unauthorized");
}

static void
test_rtsp_ingest_digest_rejects_wrong_credentials (void)
{
  TestServer *server = test_digest_server_new ();
  TestRecord *record = test_record_new ();
  g_autofree gchar *url = test_server_url (server, "/secure");
  g_autoptr(CimsIngest) ingest = test_ingest_new (url, TEST_USERNAME, "wrong-password", record);

  cims_ingest_start (ingest);
  test_wait_until (record, test_is_unauthorized, NULL, TEST_WAIT_TIMEOUT_MS, "a 401 failure");
  cims_ingest_stop (ingest);

  g_assert_cmpuint (test_record_count_state (record, CIMS_INGEST_STATE_PLAYING), ==, 0);
  g_assert_cmpuint (record->n_packets, ==, 0);
  for (guint i = 0; i < record->messages->len; i++)
    g_assert_null (strstr (g_ptr_array_index (record->messages, i), "wrong-password"));

  g_clear_pointer (&ingest, cims_ingest_free);
  test_record_free (record);
  test_server_free (server);
}

static void
test_rtsp_ingest_reports_h265 (void)
{
  TestServer *server = test_server_new (NULL);
  TestRecord *record = test_record_new ();
  g_autofree gchar *url = test_server_url (server, "/h265");
  g_autoptr(CimsIngest) ingest = NULL;
  TestPlayingGoal goal = { .n_packets = 30, .min_epoch = 1 };

  test_server_mount (server, "/h265", test_factory_new (TEST_H265_LAUNCH));
  ingest = test_ingest_new (url, NULL, NULL, record);
  cims_ingest_start (ingest);
  test_wait_until (record, test_is_playing, &goal, TEST_WAIT_TIMEOUT_MS, "H.265 packets");
  cims_ingest_stop (ingest);

  g_test_message ("fmtp: %s", record->fmtp);
  g_assert_cmpint (record->codec, ==, CIMS_CODEC_H265);
  g_assert_cmpuint (record->clock_rate, ==, 90000);
  g_assert_cmpuint (record->n_parameter_sets, >=, 3);
  g_assert_nonnull (strstr (record->fmtp, "sprop-vps="));
  test_assert_clean_video (record);

  g_clear_pointer (&ingest, cims_ingest_free);
  test_record_free (record);
  test_server_free (server);
}

/* A server that rejects UDP SETUP (461) makes rtspsrc retry over TCP. */
static void
test_rtsp_ingest_falls_back_to_tcp (void)
{
  TestServer *server = test_server_new (NULL);
  TestRecord *record = test_record_new ();
  g_autofree gchar *url = test_server_url (server, "/tcp");
  GstRTSPMediaFactory *factory = test_factory_new (TEST_H264_AUDIO_LAUNCH);
  g_autoptr(CimsIngest) ingest = NULL;
  TestPlayingGoal goal = { .n_packets = 30, .min_epoch = 1 };

  gst_rtsp_media_factory_set_protocols (factory, GST_RTSP_LOWER_TRANS_TCP);
  test_server_mount (server, "/tcp", factory);
  ingest = test_ingest_new (url, NULL, NULL, record);
  cims_ingest_start (ingest);
  test_wait_until (record, test_is_playing, &goal, TEST_WAIT_TIMEOUT_MS, "packets over TCP");
  cims_ingest_stop (ingest);

  g_assert_cmpuint (test_record_count_state (record, CIMS_INGEST_STATE_RECONNECTING), ==, 0);
  test_assert_clean_video (record);

  g_clear_pointer (&ingest, cims_ingest_free);
  test_record_free (record);
  test_server_free (server);
}

static void
test_rtsp_ingest_stops_on_mjpeg (void)
{
  TestServer *server = test_server_new (NULL);
  TestRecord *record = test_record_new ();
  g_autofree gchar *url = test_server_url (server, "/mjpeg");
  g_autoptr(CimsIngest) ingest = NULL;

  test_server_mount (server, "/mjpeg", test_factory_new (TEST_MJPEG_LAUNCH));
  ingest = test_ingest_new (url, NULL, NULL, record);
  cims_ingest_start (ingest);
  test_wait_until (record, test_has_state, GINT_TO_POINTER (CIMS_INGEST_STATE_STOPPED),
                   TEST_WAIT_TIMEOUT_MS, "STOPPED");

  g_assert_cmpint (cims_ingest_get_state (ingest), ==, CIMS_INGEST_STATE_STOPPED);
  g_assert_true (test_record_has_message (record, CIMS_INGEST_STATE_STOPPED, "jpeg"));
  g_assert_cmpuint (test_record_count_state (record, CIMS_INGEST_STATE_RECONNECTING), ==, 0);
  g_assert_cmpuint (record->n_packets, ==, 0);
  g_assert_cmpuint (record->n_formats, ==, 0);

  g_clear_pointer (&ingest, cims_ingest_free);
  test_record_free (record);
  test_server_free (server);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  /* The ingest logs a warning on every failed connection, which several
   * tests cause on purpose. Criticals stay fatal. */
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_FATAL_MASK);

  g_test_add_func ("/pipelines/rtsp-ingest/relays-h264-video-only", test_rtsp_ingest_relays_h264_video_only);
  g_test_add_func ("/pipelines/rtsp-ingest/reconnects-after-server-loss",
                   test_rtsp_ingest_reconnects_after_server_loss);
  g_test_add_func ("/pipelines/rtsp-ingest/digest-accepts-right-credentials",
                   test_rtsp_ingest_digest_accepts_right_credentials);
  g_test_add_func ("/pipelines/rtsp-ingest/digest-accepts-credentials-in-url",
                   test_rtsp_ingest_digest_accepts_credentials_in_url);
  g_test_add_func ("/pipelines/rtsp-ingest/digest-rejects-wrong-credentials",
                   test_rtsp_ingest_digest_rejects_wrong_credentials);
  g_test_add_func ("/pipelines/rtsp-ingest/reports-h265", test_rtsp_ingest_reports_h265);
  g_test_add_func ("/pipelines/rtsp-ingest/falls-back-to-tcp", test_rtsp_ingest_falls_back_to_tcp);
  g_test_add_func ("/pipelines/rtsp-ingest/stops-on-mjpeg", test_rtsp_ingest_stops_on_mjpeg);

  return g_test_run ();
}

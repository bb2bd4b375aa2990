/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of hub/marker-repair.c: marked cameras pass through at once,
 * unmarked and partly marked ones get the marker bit on each frame's last
 * packet, one packet late, and a long marked frame gets no extra marker. */
#include "hub/marker-repair.h"

/* RTP timestamp step of one frame: a 90 kHz clock at 30 frames per second. */
#define FRAME_TICKS 3000

/* A camera stream fed through the repair, with the packets that came out. */
typedef struct {
  CimsMarkerRepair repair;
  guint16 seq;
  guint32 timestamp;            /* RTP timestamp of the current frame */
  GPtrArray *out;               /* of CimsRtpPacket, in the order they came out */
} TestCamera;

static void
test_camera_init (TestCamera *camera)
{
  cims_marker_repair_init (&camera->repair);
  camera->seq = 1000;
  camera->timestamp = 90000;
  camera->out = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_rtp_packet_unref);
}

static void
test_camera_clear (TestCamera *camera)
{
  cims_marker_repair_clear (&camera->repair);
  g_ptr_array_unref (camera->out);
}

/* Sends one packet of the current frame; returns how many came out. */
static guint
test_camera_send (TestCamera *camera, gboolean marker)
{
  guint8 data[13] = { 0x80, 96 };
  g_autoptr (CimsRtpPacket) packet = NULL;
  CimsRtpPacket *ready[2];
  guint n_ready;

  data[1] |= marker ? 0x80 : 0;
  data[2] = camera->seq >> 8;
  data[3] = camera->seq & 0xff;
  data[4] = camera->timestamp >> 24;
  data[5] = (camera->timestamp >> 16) & 0xff;
  data[6] = (camera->timestamp >> 8) & 0xff;
  data[7] = camera->timestamp & 0xff;
  data[12] = 0x41;
  camera->seq++;

  packet = cims_rtp_packet_new (data, sizeof data, 1, 0);
  g_assert_nonnull (packet);
  n_ready = cims_marker_repair_push (&camera->repair, packet, ready);
  for (guint i = 0; i < n_ready; i++)
    g_ptr_array_add (camera->out, ready[i]);

  return n_ready;
}

/* Sends a frame of @n_packets, marking its last one when @marked. */
static void
test_camera_send_frame (TestCamera *camera, guint n_packets, gboolean marked)
{
  for (guint i = 0; i < n_packets; i++)
    test_camera_send (camera, marked && i + 1 == n_packets);
  camera->timestamp += FRAME_TICKS;
}

/* Returns how many of the packets that came out carry the marker bit. */
static guint
test_camera_count_markers (const TestCamera *camera)
{
  guint n_markers = 0;

  for (guint i = 0; i < camera->out->len; i++)
    if (cims_rtp_packet_get_marker (g_ptr_array_index (camera->out, i)))
      n_markers++;

  return n_markers;
}

/* Checks that the packets came out in sequence order with none missing. */
static void
test_camera_assert_in_order (const TestCamera *camera, guint16 first_seq)
{
  for (guint i = 0; i < camera->out->len; i++)
    g_assert_cmpuint (cims_rtp_packet_get_seq (g_ptr_array_index (camera->out, i)), ==,
                      (guint16) (first_seq + i));
}

/* Sends CIMS_MARKER_REPAIR_MARKED_FRAMES marked frames, which end the
 * repair that a new stream starts with. */
static void
test_camera_send_marked_frames (TestCamera *camera)
{
  for (guint frame = 0; frame < CIMS_MARKER_REPAIR_MARKED_FRAMES; frame++)
    test_camera_send_frame (camera, 3, TRUE);
}

static void
test_marked_camera_passes_at_once (void)
{
  TestCamera camera;

  test_camera_init (&camera);
  test_camera_send_marked_frames (&camera);
  g_assert_cmpuint (camera.out->len, ==, 3 * CIMS_MARKER_REPAIR_MARKED_FRAMES);

  for (guint frame = 0; frame < 10; frame++) {
    g_assert_cmpuint (test_camera_send (&camera, FALSE), ==, 1);
    g_assert_cmpuint (test_camera_send (&camera, FALSE), ==, 1);
    g_assert_cmpuint (test_camera_send (&camera, TRUE), ==, 1);
    camera.timestamp += FRAME_TICKS;
  }

  g_assert_cmpuint (test_camera_count_markers (&camera), ==, CIMS_MARKER_REPAIR_MARKED_FRAMES + 10);
  g_assert_cmpuint (camera.repair.n_repaired, ==, 0);
  test_camera_assert_in_order (&camera, 1000);
  test_camera_clear (&camera);
}

/* A new stream is repaired: each unmarked packet waits for the next, and
 * the marker packet releases the one before it and itself. */
static void
test_first_frame_waits_one_packet (void)
{
  TestCamera camera;

  test_camera_init (&camera);
  g_assert_cmpuint (test_camera_send (&camera, FALSE), ==, 0);
  g_assert_cmpuint (test_camera_send (&camera, FALSE), ==, 1);
  g_assert_cmpuint (test_camera_send (&camera, TRUE), ==, 2);

  g_assert_cmpuint (test_camera_count_markers (&camera), ==, 1);
  g_assert_true (cims_rtp_packet_get_marker (g_ptr_array_index (camera.out, 2)));
  g_assert_cmpuint (camera.repair.n_repaired, ==, 0);
  test_camera_clear (&camera);
}

static void
test_unmarked_camera_gets_frame_ends (void)
{
  TestCamera camera;

  test_camera_init (&camera);
  for (guint frame = 0; frame < 20; frame++)
    test_camera_send_frame (&camera, 4, FALSE);

  /* The last frame's last packet waits for a packet that has not come. */
  g_assert_cmpuint (camera.out->len, ==, 79);
  g_assert_nonnull (camera.repair.held_packet);
  test_camera_assert_in_order (&camera, 1000);
  for (guint i = 0; i < camera.out->len; i++)
    g_assert_cmpint (cims_rtp_packet_get_marker (g_ptr_array_index (camera.out, i)), ==, i % 4 == 3);
  g_assert_cmpuint (camera.repair.n_repaired, ==, 19);
  test_camera_clear (&camera);
}

/* A camera that marks only every third frame: every frame end gets one. */
static void
test_partly_marked_camera (void)
{
  TestCamera camera;

  test_camera_init (&camera);
  for (guint frame = 0; frame < 30; frame++)
    test_camera_send_frame (&camera, 5, frame % 3 == 2);

  g_assert_cmpuint (camera.out->len, ==, 150);
  test_camera_assert_in_order (&camera, 1000);
  for (guint i = 0; i < camera.out->len; i++)
    g_assert_cmpint (cims_rtp_packet_get_marker (g_ptr_array_index (camera.out, i)), ==, i % 5 == 4);
  g_assert_cmpuint (camera.repair.n_repaired, ==, 20);
  test_camera_clear (&camera);
}

/* A camera that marked frames and stops: its first unmarked frame has
 * already passed when its end shows, and every later one is repaired. */
static void
test_camera_that_stops_marking (void)
{
  TestCamera camera;
  guint n_before;

  test_camera_init (&camera);
  test_camera_send_marked_frames (&camera);
  for (guint frame = 0; frame < 10; frame++)
    test_camera_send_frame (&camera, 4, FALSE);

  g_assert_cmpuint (camera.repair.n_repaired, ==, 8);
  n_before = camera.out->len;

  /* Marking again: the held packet and the whole frame come out. */
  test_camera_send_frame (&camera, 4, TRUE);
  g_assert_cmpuint (camera.out->len, ==, n_before + 5);
  g_assert_null (camera.repair.held_packet);
  g_assert_cmpuint (camera.repair.n_repaired, ==, 9);
  test_camera_assert_in_order (&camera, 1000);
  test_camera_clear (&camera);
}

/* A marking camera that loses one marker packet is repaired again until
 * it has marked CIMS_MARKER_REPAIR_MARKED_FRAMES frames in a row. */
static void
test_lost_marker_restarts_repair (void)
{
  TestCamera camera;

  test_camera_init (&camera);
  test_camera_send_marked_frames (&camera);
  test_camera_send_frame (&camera, 3, FALSE);

  g_assert_cmpuint (test_camera_send (&camera, FALSE), ==, 0);
  g_assert_cmpuint (test_camera_send (&camera, TRUE), ==, 2);
  camera.timestamp += FRAME_TICKS;
  for (guint frame = 1; frame < CIMS_MARKER_REPAIR_MARKED_FRAMES; frame++)
    test_camera_send_frame (&camera, 2, TRUE);

  g_assert_cmpuint (test_camera_send (&camera, FALSE), ==, 1);
  g_assert_cmpuint (camera.repair.n_repaired, ==, 0);
  test_camera_assert_in_order (&camera, 1000);
  test_camera_clear (&camera);
}

/* A keyframe of hundreds of packets, marked at its end: its packets share
 * one timestamp, so none gets a marker too early. */
static void
test_long_marked_frame_keeps_one_marker (void)
{
  TestCamera camera;

  test_camera_init (&camera);
  test_camera_send_frame (&camera, 2, TRUE);
  test_camera_send_frame (&camera, 500, TRUE);
  test_camera_send_frame (&camera, 2, TRUE);

  g_assert_cmpuint (camera.out->len, ==, 504);
  g_assert_cmpuint (test_camera_count_markers (&camera), ==, 3);
  g_assert_cmpuint (camera.repair.n_repaired, ==, 0);
  test_camera_assert_in_order (&camera, 1000);
  test_camera_clear (&camera);
}

static void
test_clear_drops_held_packet (void)
{
  TestCamera camera;

  test_camera_init (&camera);
  test_camera_send (&camera, FALSE);
  g_assert_nonnull (camera.repair.held_packet);

  cims_marker_repair_clear (&camera.repair);
  g_assert_null (camera.repair.held_packet);
  cims_marker_repair_init (&camera.repair);
  g_assert_cmpuint (test_camera_send (&camera, TRUE), ==, 1);
  test_camera_clear (&camera);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/marker-repair/marked-camera-passes-at-once", test_marked_camera_passes_at_once);
  g_test_add_func ("/marker-repair/first-frame-waits-one-packet", test_first_frame_waits_one_packet);
  g_test_add_func ("/marker-repair/unmarked-camera-gets-frame-ends", test_unmarked_camera_gets_frame_ends);
  g_test_add_func ("/marker-repair/partly-marked-camera", test_partly_marked_camera);
  g_test_add_func ("/marker-repair/camera-that-stops-marking", test_camera_that_stops_marking);
  g_test_add_func ("/marker-repair/lost-marker-restarts-repair", test_lost_marker_restarts_repair);
  g_test_add_func ("/marker-repair/long-marked-frame-keeps-one-marker", test_long_marked_frame_keeps_one_marker);
  g_test_add_func ("/marker-repair/clear-drops-held-packet", test_clear_drops_held_packet);
  return g_test_run ();
}

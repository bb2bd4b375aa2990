/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of hub/frame-wake.c: which packets of a camera stream wake the
 * media workers, for marked frames, long frames, lost marker packets and
 * cameras that never or no longer set the marker bit. */
#include "hub/frame-wake.h"

/* RTP timestamp step of one frame: a 90 kHz clock at 30 frames per second. */
#define FRAME_TICKS 3000

/* A stream fed packet by packet, with a record of the packets that woke the
 * workers. Packets are numbered from 1 since the last test_stream_record(). */
typedef struct {
  CimsFrameWake wake;
  guint32 timestamp;            /* RTP timestamp of the next frame */
  guint n_packets;              /* packets fed since the record started */
  guint n_pending;              /* packets fed since the last wake */
  GArray *wakes;                /* of guint: the number of each packet that woke the workers */
  GArray *delivered;            /* of guint: packets each wake delivered */
} TestStream;

static void
test_stream_init (TestStream *stream)
{
  cims_frame_wake_init (&stream->wake);
  stream->timestamp = 0;
  stream->n_pending = 0;
  stream->n_packets = 0;
  stream->wakes = g_array_new (FALSE, FALSE, sizeof (guint));
  stream->delivered = g_array_new (FALSE, FALSE, sizeof (guint));
}

static void
test_stream_clear (TestStream *stream)
{
  g_array_unref (stream->wakes);
  g_array_unref (stream->delivered);
}

/* Forgets the recorded wakes and numbers the next packet 1. */
static void
test_stream_record (TestStream *stream)
{
  stream->n_packets = 0;
  g_array_set_size (stream->wakes, 0);
  g_array_set_size (stream->delivered, 0);
}

/* Feeds one frame of @n_packets packets that share an RTP timestamp, with
 * the marker bit on the last one when @has_marker. */
static void
test_stream_feed_frame (TestStream *stream, guint n_packets, gboolean has_marker)
{
  for (guint i = 1; i <= n_packets; i++) {
    gboolean marker = has_marker && i == n_packets;

    stream->n_packets++;
    stream->n_pending++;
    if (cims_frame_wake_packet (&stream->wake, marker, stream->timestamp)) {
      g_array_append_val (stream->wakes, stream->n_packets);
      g_array_append_val (stream->delivered, stream->n_pending);
      stream->n_pending = 0;
    }
  }

  stream->timestamp += FRAME_TICKS;
}

static void
assert_values (GArray *actual, const guint *expected, guint n_expected)
{
  for (guint i = 0; i < MIN (actual->len, n_expected); i++)
    g_assert_cmpuint (g_array_index (actual, guint, i), ==, expected[i]);
  g_assert_cmpuint (actual->len, ==, n_expected);
}

static void
test_frame_wake_marker_wakes (void)
{
  TestStream stream;
  const guint expected_wakes[] = { 3 };
  const guint expected_delivered[] = { 3 };

  test_stream_init (&stream);
  test_stream_feed_frame (&stream, 1, TRUE);
  test_stream_record (&stream);

  test_stream_feed_frame (&stream, 3, TRUE);
  assert_values (stream.wakes, expected_wakes, G_N_ELEMENTS (expected_wakes));
  assert_values (stream.delivered, expected_delivered, G_N_ELEMENTS (expected_delivered));

  test_stream_clear (&stream);
}

static void
test_frame_wake_long_frame_wakes_every_batch (void)
{
  TestStream stream;
  const guint expected_wakes[] = { 32, 64, 96, 100 };
  const guint expected_delivered[] = { 32, 32, 32, 4 };

  g_assert_cmpuint (CIMS_FRAME_WAKE_BATCH_MAX, ==, 32);

  test_stream_init (&stream);
  test_stream_feed_frame (&stream, 1, TRUE);
  test_stream_record (&stream);

  test_stream_feed_frame (&stream, 100, TRUE);
  assert_values (stream.wakes, expected_wakes, G_N_ELEMENTS (expected_wakes));
  assert_values (stream.delivered, expected_delivered, G_N_ELEMENTS (expected_delivered));

  test_stream_clear (&stream);
}

static void
test_frame_wake_lost_marker_wakes_on_next_frame (void)
{
  TestStream stream;
  const guint expected_wakes[] = { 6, 8 };
  const guint expected_delivered[] = { 6, 2 };

  test_stream_init (&stream);
  test_stream_feed_frame (&stream, 1, TRUE);
  test_stream_record (&stream);

  /* Frame N's marker packet is lost: nothing wakes until frame N+1's first
   * packet, which delivers frame N with it. */
  test_stream_feed_frame (&stream, 5, FALSE);
  g_assert_cmpuint (stream.wakes->len, ==, 0);
  test_stream_feed_frame (&stream, 3, TRUE);
  assert_values (stream.wakes, expected_wakes, G_N_ELEMENTS (expected_wakes));
  assert_values (stream.delivered, expected_delivered, G_N_ELEMENTS (expected_delivered));

  test_stream_clear (&stream);
}

static void
test_frame_wake_markerless_stream_wakes_every_packet (void)
{
  TestStream stream;

  test_stream_init (&stream);
  for (guint i = 0; i < 100; i++)
    test_stream_feed_frame (&stream, 3, FALSE);

  g_assert_cmpuint (stream.wakes->len, ==, 300);
  for (guint i = 0; i < stream.wakes->len; i++) {
    g_assert_cmpuint (g_array_index (stream.wakes, guint, i), ==, i + 1);
    g_assert_cmpuint (g_array_index (stream.delivered, guint, i), ==, 1);
  }

  test_stream_clear (&stream);
}

static void
test_frame_wake_lost_markers_wake_every_packet (void)
{
  TestStream stream;
  g_autoptr (GArray) expected = g_array_new (FALSE, FALSE, sizeof (guint));
  const guint expected_per_frame[] = { 10 };

  g_assert_cmpuint (CIMS_FRAME_WAKE_MARKERLESS_AFTER, ==, 256);

  test_stream_init (&stream);
  test_stream_feed_frame (&stream, 1, TRUE);
  test_stream_record (&stream);

  /* The camera stops marking frames of 10 packets. Until 256 packets went
   * by, only each new frame's first packet wakes the workers. From then on
   * every packet does. */
  for (guint i = 0; i < 30; i++)
    test_stream_feed_frame (&stream, 10, FALSE);
  for (guint number = 11; number < 256; number += 10)
    g_array_append_val (expected, number);
  for (guint number = 256; number <= 300; number++)
    g_array_append_val (expected, number);
  assert_values (stream.wakes, (const guint *) expected->data, expected->len);

  /* The next marked frame still wakes on every packet, its marker bit
   * included. The frame after it wakes once. */
  test_stream_record (&stream);
  test_stream_feed_frame (&stream, 10, TRUE);
  g_assert_cmpuint (stream.wakes->len, ==, 10);
  test_stream_record (&stream);
  test_stream_feed_frame (&stream, 10, TRUE);
  assert_values (stream.wakes, expected_per_frame, G_N_ELEMENTS (expected_per_frame));

  test_stream_clear (&stream);
}

static void
test_frame_wake_one_packet_frames_wake_once_each (void)
{
  TestStream stream;

  test_stream_init (&stream);
  for (guint i = 0; i < 20; i++)
    test_stream_feed_frame (&stream, 1, TRUE);

  g_assert_cmpuint (stream.wakes->len, ==, 20);
  for (guint i = 0; i < stream.wakes->len; i++) {
    g_assert_cmpuint (g_array_index (stream.wakes, guint, i), ==, i + 1);
    g_assert_cmpuint (g_array_index (stream.delivered, guint, i), ==, 1);
  }

  test_stream_clear (&stream);
}

static void
test_frame_wake_init_restarts_stream (void)
{
  TestStream stream;
  const guint expected_per_packet[] = { 1, 2, 3, 4, 5, 6 };
  const guint expected_per_frame[] = { 3 };

  test_stream_init (&stream);
  test_stream_feed_frame (&stream, 1, TRUE);
  test_stream_record (&stream);
  test_stream_feed_frame (&stream, 5, FALSE);
  g_assert_cmpuint (stream.wakes->len, ==, 0);

  /* The five queued packets are dropped with the old stream, and the new
   * one wakes on every packet until its first marker bit. */
  cims_frame_wake_init (&stream.wake);
  g_assert_cmpuint (stream.wake.n_queued, ==, 0);
  stream.n_pending = 0;
  test_stream_record (&stream);
  test_stream_feed_frame (&stream, 3, FALSE);
  test_stream_feed_frame (&stream, 3, TRUE);
  assert_values (stream.wakes, expected_per_packet, G_N_ELEMENTS (expected_per_packet));

  test_stream_record (&stream);
  test_stream_feed_frame (&stream, 3, TRUE);
  assert_values (stream.wakes, expected_per_frame, G_N_ELEMENTS (expected_per_frame));

  test_stream_clear (&stream);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/hub/frame-wake/marker-wakes", test_frame_wake_marker_wakes);
  g_test_add_func ("/hub/frame-wake/long-frame-wakes-every-batch",
                   test_frame_wake_long_frame_wakes_every_batch);
  g_test_add_func ("/hub/frame-wake/lost-marker-wakes-on-next-frame",
                   test_frame_wake_lost_marker_wakes_on_next_frame);
  g_test_add_func ("/hub/frame-wake/markerless-stream-wakes-every-packet",
                   test_frame_wake_markerless_stream_wakes_every_packet);
  g_test_add_func ("/hub/frame-wake/lost-markers-wake-every-packet",
                   test_frame_wake_lost_markers_wake_every_packet);
  g_test_add_func ("/hub/frame-wake/one-packet-frames-wake-once-each",
                   test_frame_wake_one_packet_frames_wake_once_each);
  g_test_add_func ("/hub/frame-wake/init-restarts-stream", test_frame_wake_init_restarts_stream);

  return g_test_run ();
}

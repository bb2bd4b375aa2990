/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of hub/snapshot-pacer.c: a snapshot comes out in runs no longer
 * than asked for, the run containing its last packet ends there, live packets
 * queued meanwhile follow it in order, pacing lasts until a frame's end went
 * out or the wait for it is over, and clearing drops every ref. */
#include "hub/snapshot-pacer.h"

/* Returns an array of @n packets numbered from @first_seq, the last one
 * with the marker bit when @ends_frame. */
static GPtrArray *
frame_packets_new (guint16 first_seq, guint n, gboolean ends_frame)
{
  GPtrArray *packets = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_rtp_packet_unref);

  for (guint i = 0; i < n; i++) {
    guint8 data[13] = { 0x80, 96 };
    guint16 seq = (guint16) (first_seq + i);
    CimsRtpPacket *packet;

    data[2] = seq >> 8;
    data[3] = seq & 0xff;
    data[12] = 0x41;
    if (ends_frame && i == n - 1)
      data[1] |= 0x80;
    packet = cims_rtp_packet_new (data, sizeof data, 1, 0);
    g_assert_nonnull (packet);
    g_ptr_array_add (packets, packet);
  }
  return packets;
}

/* Returns a snapshot array of @n packets numbered from @first_seq that ends
 * its frame. */
static GPtrArray *
packets_new (guint16 first_seq, guint n)
{
  return frame_packets_new (first_seq, n, TRUE);
}

/* Takes runs of at most @max_packets until the pacer is empty, checking
 * that sequence numbers follow on from @first_seq without a gap and that no
 * run crosses the snapshot's end. Returns the number of runs. */
static guint
take_all (CimsSnapshotPacer *pacer, guint max_packets, guint16 first_seq, guint snapshot_length,
          guint total)
{
  CimsRtpPacket *const *packets;
  gboolean is_snapshot;
  guint16 expected_seq = first_seq;
  guint n_taken = 0;
  guint n_runs = 0;
  guint n;

  while ((n = cims_snapshot_pacer_take (pacer, max_packets, &packets, &is_snapshot)) > 0) {
    g_assert_cmpuint (n, <=, max_packets);
    g_assert_cmpint (is_snapshot, ==, n_taken < snapshot_length);
    if (is_snapshot)
      g_assert_cmpuint (n_taken + n, <=, snapshot_length);

    for (guint i = 0; i < n; i++)
      g_assert_cmpuint (cims_rtp_packet_get_seq (packets[i]), ==, expected_seq++);
    n_taken += n;
    n_runs++;
  }

  g_assert_cmpuint (n_taken, ==, total);
  g_assert_false (cims_snapshot_pacer_is_active (pacer));
  return n_runs;
}

static void
test_snapshot_in_runs (void)
{
  CimsSnapshotPacer pacer = { 0 };

  g_assert_false (cims_snapshot_pacer_is_active (&pacer));
  cims_snapshot_pacer_start (&pacer, packets_new (100, 130));
  g_assert_true (cims_snapshot_pacer_is_active (&pacer));

  /* 130 packets in runs of 64: 64, 64 and 2. */
  g_assert_cmpuint (take_all (&pacer, 64, 100, 130, 130), ==, 3);
  cims_snapshot_pacer_clear (&pacer);
  g_assert_null (pacer.packets);
}

static void
test_live_packets_follow (void)
{
  CimsSnapshotPacer pacer = { 0 };
  g_autoptr (GPtrArray) live = packets_new (110, 30);
  CimsRtpPacket *const *packets;
  gboolean is_snapshot;

  cims_snapshot_pacer_start (&pacer, packets_new (100, 10));

  /* Live packets arrive after the first run, in two batches. */
  g_assert_cmpuint (cims_snapshot_pacer_take (&pacer, 4, &packets, &is_snapshot), ==, 4);
  g_assert_true (is_snapshot);
  cims_snapshot_pacer_queue (&pacer, (CimsRtpPacket *const *) live->pdata, 12);
  cims_snapshot_pacer_queue (&pacer, (CimsRtpPacket *const *) live->pdata + 12, 18);

  /* The run containing the snapshot's last packet stops there, although the
   * limit would take live packets too: 6 snapshot packets, then 16, 14. */
  g_assert_cmpuint (cims_snapshot_pacer_take (&pacer, 16, &packets, &is_snapshot), ==, 6);
  g_assert_true (is_snapshot);
  g_assert_cmpuint (cims_rtp_packet_get_seq (packets[5]), ==, 109);
  g_assert_cmpuint (take_all (&pacer, 16, 110, 0, 30), ==, 2);

  cims_snapshot_pacer_clear (&pacer);
}

static guint n_released;

static void
packet_release_counted (gpointer packet)
{
  n_released++;
  cims_rtp_packet_unref (packet);
}

static void
test_clear_drops_refs (void)
{
  CimsSnapshotPacer pacer = { 0 };
  GPtrArray *snapshot = packets_new (7, 3);
  g_autoptr (GPtrArray) live = packets_new (10, 2);
  CimsRtpPacket *const *packets;
  gboolean is_snapshot;

  /* The pacer keeps its queued refs in the snapshot's array: clearing it
   * releases the three snapshot packets and the pacer's refs to both live ones. */
  n_released = 0;
  g_ptr_array_set_free_func (snapshot, packet_release_counted);
  cims_snapshot_pacer_start (&pacer, snapshot);
  cims_snapshot_pacer_queue (&pacer, (CimsRtpPacket *const *) live->pdata, live->len);
  g_assert_cmpuint (cims_snapshot_pacer_take (&pacer, 1, &packets, &is_snapshot), ==, 1);

  cims_snapshot_pacer_clear (&pacer);
  g_assert_false (cims_snapshot_pacer_is_active (&pacer));
  g_assert_null (pacer.packets);
  g_assert_cmpuint (n_released, ==, 5);

  /* An idle pacer can start again. */
  cims_snapshot_pacer_start (&pacer, packets_new (20, 2));
  g_assert_cmpuint (take_all (&pacer, 64, 20, 2, 2), ==, 1);
  cims_snapshot_pacer_clear (&pacer);
}

/* Takes one burst of at most @budget packets, as the send path does, and
 * returns how many it took. */
static guint
take_burst (CimsSnapshotPacer *pacer, guint budget)
{
  CimsRtpPacket *const *packets;
  gboolean is_snapshot;
  guint n_taken = 0;
  guint n;

  while (n_taken < budget && (n = cims_snapshot_pacer_take (pacer, budget - n_taken, &packets, &is_snapshot)) > 0)
    n_taken += n;
  cims_snapshot_pacer_end_burst (pacer);
  return n_taken;
}

static void
test_done_at_frame_end (void)
{
  CimsSnapshotPacer pacer = { 0 };

  /* A whole keyframe cached: done with its last packet. */
  cims_snapshot_pacer_start (&pacer, packets_new (1, 70));
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 64);
  g_assert_false (cims_snapshot_pacer_is_done (&pacer, 50));
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 6);
  g_assert_true (cims_snapshot_pacer_is_done (&pacer, 50));
  cims_snapshot_pacer_clear (&pacer);

  /* An empty snapshot is done at once. */
  cims_snapshot_pacer_start (&pacer, g_ptr_array_new_with_free_func ((GDestroyNotify) cims_rtp_packet_unref));
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 0);
  g_assert_true (cims_snapshot_pacer_is_done (&pacer, 50));
  cims_snapshot_pacer_clear (&pacer);
}

static void
test_join_mid_keyframe (void)
{
  CimsSnapshotPacer pacer = { 0 };
  g_autoptr (GPtrArray) rest = frame_packets_new (41, 300, TRUE);

  /* The viewer joined when 40 packets of a 340-packet keyframe had arrived.
   * Every queued packet is taken, but the frame has not ended: pacing goes
   * on, and the rest of the keyframe, arriving at once, goes out paced. */
  cims_snapshot_pacer_start (&pacer, frame_packets_new (1, 40, FALSE));
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 40);
  g_assert_false (cims_snapshot_pacer_is_active (&pacer));
  g_assert_false (cims_snapshot_pacer_is_done (&pacer, 50));

  cims_snapshot_pacer_queue (&pacer, (CimsRtpPacket *const *) rest->pdata, 100);
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 64);
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 36);
  g_assert_false (cims_snapshot_pacer_is_done (&pacer, 50));

  cims_snapshot_pacer_queue (&pacer, (CimsRtpPacket *const *) rest->pdata + 100, 200);
  for (guint i = 0; i < 3; i++) {
    g_assert_cmpuint (take_burst (&pacer, 64), ==, 64);
    g_assert_false (cims_snapshot_pacer_is_done (&pacer, 50));
  }
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 8);
  g_assert_true (cims_snapshot_pacer_is_done (&pacer, 50));
  cims_snapshot_pacer_clear (&pacer);
}

static void
test_frame_end_wait_bounded (void)
{
  CimsSnapshotPacer pacer = { 0 };
  g_autoptr (GPtrArray) live = frame_packets_new (11, 1, FALSE);

  /* A snapshot that ends mid-frame and a camera that then goes quiet: the
   * wait ends after the given number of empty bursts in a row, and a burst
   * that takes a packet starts the count again. */
  cims_snapshot_pacer_start (&pacer, frame_packets_new (1, 10, FALSE));
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 10);
  for (guint i = 0; i < 4; i++) {
    g_assert_false (cims_snapshot_pacer_is_done (&pacer, 5));
    g_assert_cmpuint (take_burst (&pacer, 64), ==, 0);
  }

  cims_snapshot_pacer_queue (&pacer, (CimsRtpPacket *const *) live->pdata, 1);
  g_assert_cmpuint (take_burst (&pacer, 64), ==, 1);
  for (guint i = 0; i < 5; i++) {
    g_assert_false (cims_snapshot_pacer_is_done (&pacer, 5));
    g_assert_cmpuint (take_burst (&pacer, 64), ==, 0);
  }
  g_assert_true (cims_snapshot_pacer_is_done (&pacer, 5));
  cims_snapshot_pacer_clear (&pacer);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/snapshot-pacer/snapshot-in-runs", test_snapshot_in_runs);
  g_test_add_func ("/snapshot-pacer/live-packets-follow", test_live_packets_follow);
  g_test_add_func ("/snapshot-pacer/clear-drops-refs", test_clear_drops_refs);
  g_test_add_func ("/snapshot-pacer/done-at-frame-end", test_done_at_frame_end);
  g_test_add_func ("/snapshot-pacer/join-mid-keyframe", test_join_mid_keyframe);
  g_test_add_func ("/snapshot-pacer/frame-end-wait-bounded", test_frame_end_wait_bounded);
  return g_test_run ();
}

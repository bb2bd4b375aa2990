/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the keyframe cache and the NACK history, fed with RTP
 * packets built by hand as a camera would send them. */
#include "pipelines/pipelines.h"

#include <string.h>

#define TEST_PAYLOAD_TYPE 96
#define TEST_SSRC 0x11223344u
#define TEST_MAX_BYTES (1024 * 1024)
#define FRAME_TICKS 9000        /* 90 kHz clock, 10 frames per second */

static const guint8 H264_SPS[] = { 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16 };
static const guint8 H264_PPS[] = { 0x68, 0xce, 0x3c, 0x80 };
static const guint8 H264_SPS_OTHER[] = { 0x67, 0x64, 0x00, 0x28, 0xac, 0xd9 };
static const guint8 H264_PPS_OTHER[] = { 0x68, 0xeb, 0xe3, 0xcb };
static const guint8 H264_IDR[] = { 0x65, 0x88, 0x84, 0x00, 0x33, 0xff };
static const guint8 H264_P_SLICE[] = { 0x41, 0x9a, 0x02, 0x04, 0x05 };

static const guint8 H265_VPS[] = { 0x40, 0x01, 0x0c, 0x01, 0xff };
static const guint8 H265_SPS[] = { 0x42, 0x01, 0x01, 0x01, 0x60 };
static const guint8 H265_PPS[] = { 0x44, 0x01, 0xc1, 0x72 };
static const guint8 H265_IDR[] = { 0x26, 0x01, 0xaf, 0x06, 0xb8 };

/* A fake camera: consecutive sequence numbers from @seq. */
typedef struct {
  CimsKeyframeCache *cache;
  guint16 seq;
  guint32 epoch;
} Camera;

static CimsRtpPacket *
rtp_packet_build (guint16 seq, guint32 timestamp, gboolean marker, guint32 epoch,
                  const guint8 *payload, gsize payload_size)
{
  guint8 data[CIMS_RTP_MAX_PACKET];
  CimsRtpPacket *packet;

  g_assert_cmpuint (payload_size, <=, sizeof data - 12);
  data[0] = 0x80;
  data[1] = (marker ? 0x80 : 0) | TEST_PAYLOAD_TYPE;
  data[2] = seq >> 8;
  data[3] = seq & 0xff;
  data[4] = timestamp >> 24;
  data[5] = (timestamp >> 16) & 0xff;
  data[6] = (timestamp >> 8) & 0xff;
  data[7] = timestamp & 0xff;
  data[8] = TEST_SSRC >> 24;
  data[9] = (TEST_SSRC >> 16) & 0xff;
  data[10] = (TEST_SSRC >> 8) & 0xff;
  data[11] = TEST_SSRC & 0xff;
  memcpy (data + 12, payload, payload_size);

  packet = cims_rtp_packet_new (data, 12 + payload_size, epoch, g_get_monotonic_time ());
  g_assert_nonnull (packet);

  return packet;
}

/* Sends one packet from @camera and returns what push() returned. */
static gboolean
camera_send (Camera *camera, guint32 timestamp, gboolean marker, const guint8 *payload, gsize size)
{
  g_autoptr (CimsRtpPacket) packet = rtp_packet_build (camera->seq++, timestamp, marker, camera->epoch,
                                                       payload, size);

  return cims_keyframe_cache_push (camera->cache, packet);
}

/* Sends an H.264 STAP-A made of the given NAL units. */
static gboolean
camera_send_stap_a (Camera *camera, guint32 timestamp, gboolean marker, const guint8 *const *nals,
                    const gsize *sizes, guint n_nals)
{
  guint8 payload[CIMS_RTP_MAX_PACKET];
  gsize offset = 1;

  payload[0] = 0x78;
  for (guint i = 0; i < n_nals; i++)
    {
      payload[offset] = sizes[i] >> 8;
      payload[offset + 1] = sizes[i] & 0xff;
      memcpy (payload + offset + 2, nals[i], sizes[i]);
      offset += 2 + sizes[i];
    }

  return camera_send (camera, timestamp, marker, payload, offset);
}

/* Sends one FU-A fragment of an H.264 NAL unit of @nal_type, with
 * @fragment_size bytes of slice data. */
static gboolean
camera_send_fu_a (Camera *camera, guint32 timestamp, guint8 nal_type, gboolean is_start,
                  gboolean is_end, gsize fragment_size)
{
  guint8 payload[CIMS_RTP_MAX_PACKET];

  g_assert_cmpuint (fragment_size + 2, <=, sizeof payload - 12);
  payload[0] = 0x60 | 28;
  payload[1] = (is_start ? 0x80 : 0) | (is_end ? 0x40 : 0) | nal_type;
  memset (payload + 2, 0xab, fragment_size);

  return camera_send (camera, timestamp, is_end, payload, fragment_size + 2);
}

static gboolean
camera_send_p_frame (Camera *camera, guint32 timestamp)
{
  return camera_send (camera, timestamp, TRUE, H264_P_SLICE, sizeof H264_P_SLICE);
}

static const guint8 *
packet_payload (CimsRtpPacket *packet, gsize *size)
{
  const guint8 *payload = cims_rtp_packet_get_payload (packet, size);

  g_assert_nonnull (payload);

  return payload;
}

static CimsRtpPacket *
snapshot_get (GPtrArray *snapshot, guint index)
{
  g_assert_cmpuint (index, <, snapshot->len);

  return g_ptr_array_index (snapshot, index);
}

static void
assert_consecutive (GPtrArray *snapshot, guint16 first_seq)
{
  for (guint i = 0; i < snapshot->len; i++)
    g_assert_cmpuint (cims_rtp_packet_get_seq (snapshot_get (snapshot, i)), ==, (guint16) (first_seq + i));
}

static void
test_keyframe_cache_join_before_keyframe (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 1000, 1 };
  g_autoptr (GPtrArray) snapshot = NULL;

  for (guint i = 0; i < 5; i++)
    g_assert_false (camera_send_p_frame (&camera, i * FRAME_TICKS));
  g_assert_false (camera_send (&camera, 5 * FRAME_TICKS, FALSE, H264_SPS, sizeof H264_SPS));

  snapshot = cims_keyframe_cache_snapshot (cache);
  g_assert_nonnull (snapshot);
  g_assert_cmpuint (snapshot->len, ==, 0);
  g_assert_false (cims_keyframe_cache_has_keyframe (cache));
}

static void
test_keyframe_cache_gop_starts_at_sps (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 500, 1 };
  g_autoptr (GPtrArray) snapshot = NULL;
  guint16 sps_seq;

  g_assert_false (camera_send_p_frame (&camera, 0));

  sps_seq = camera.seq;
  g_assert_false (camera_send (&camera, FRAME_TICKS, FALSE, H264_SPS, sizeof H264_SPS));
  g_assert_false (camera_send (&camera, FRAME_TICKS, FALSE, H264_PPS, sizeof H264_PPS));
  g_assert_true (camera_send (&camera, FRAME_TICKS, TRUE, H264_IDR, sizeof H264_IDR));
  g_assert_true (cims_keyframe_cache_has_keyframe (cache));
  for (guint i = 2; i < 6; i++)
    g_assert_false (camera_send_p_frame (&camera, i * FRAME_TICKS));

  snapshot = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (snapshot->len, ==, 7);
  assert_consecutive (snapshot, sps_seq);
  for (guint i = 0; i < snapshot->len; i++)
    g_assert_false (snapshot_get (snapshot, i)->is_synthetic);
  g_assert_cmpuint (cims_rtp_packet_get_timestamp (snapshot_get (snapshot, 2)), ==, FRAME_TICKS);
}

static void
test_keyframe_cache_parameter_sets_with_previous_timestamp (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 65534, 1 };
  g_autoptr (GPtrArray) snapshot = NULL;
  guint16 sps_seq;

  /* The camera closes the P frame, then sends SPS and PPS with that frame's
   * timestamp and the marker set, and only then the IDR. */
  g_assert_false (camera_send_p_frame (&camera, 3 * FRAME_TICKS));
  sps_seq = camera.seq;
  g_assert_false (camera_send (&camera, 3 * FRAME_TICKS, TRUE, H264_SPS, sizeof H264_SPS));
  g_assert_false (camera_send (&camera, 3 * FRAME_TICKS, TRUE, H264_PPS, sizeof H264_PPS));
  g_assert_true (camera_send (&camera, 4 * FRAME_TICKS, TRUE, H264_IDR, sizeof H264_IDR));
  g_assert_false (camera_send_p_frame (&camera, 5 * FRAME_TICKS));

  snapshot = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (snapshot->len, ==, 4);
  assert_consecutive (snapshot, sps_seq);
  g_assert_cmpuint (cims_rtp_packet_get_timestamp (snapshot_get (snapshot, 0)), ==, 3 * FRAME_TICKS);
  g_assert_cmpuint (cims_rtp_packet_get_timestamp (snapshot_get (snapshot, 2)), ==, 4 * FRAME_TICKS);
  g_assert_false (snapshot_get (snapshot, 0)->is_synthetic);
}

/* Sends SPS, PPS and an IDR of @n_fragments FU-A fragments at @timestamp,
 * and takes a snapshot after @snapshot_after fragments into *@snapshot_out.
 * Returns how many pushes returned TRUE. */
static guint
camera_send_fragmented_keyframe (Camera *camera, guint32 timestamp, guint n_fragments,
                                 guint snapshot_after, GPtrArray **snapshot_out)
{
  guint n_true = 0;

  n_true += camera_send (camera, timestamp, FALSE, H264_SPS, sizeof H264_SPS);
  n_true += camera_send (camera, timestamp, FALSE, H264_PPS, sizeof H264_PPS);
  for (guint i = 0; i < n_fragments; i++)
    {
      n_true += camera_send_fu_a (camera, timestamp, 5, i == 0, i == n_fragments - 1, 1200);
      if (i + 1 == snapshot_after)
        *snapshot_out = cims_keyframe_cache_snapshot (camera->cache);
    }

  return n_true;
}

static void
test_keyframe_cache_fragmented_keyframe_midway (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 256);
  Camera camera = { cache, 40000, 1 };
  g_autoptr (GPtrArray) midway = NULL;
  g_autoptr (GPtrArray) complete = NULL;
  guint16 keyframe_seq;
  gsize size;

  /* A whole GOP before, which the new keyframe must replace. */
  g_assert_true (camera_send (&camera, 0, TRUE, H264_IDR, sizeof H264_IDR));
  for (guint i = 1; i < 10; i++)
    g_assert_false (camera_send_p_frame (&camera, i * FRAME_TICKS));

  keyframe_seq = camera.seq;
  g_assert_cmpuint (camera_send_fragmented_keyframe (&camera, 10 * FRAME_TICKS, 200, 80, &midway), ==, 1);

  g_assert_nonnull (midway);
  g_assert_cmpuint (midway->len, ==, 2 + 80);
  assert_consecutive (midway, keyframe_seq);
  g_assert_cmpmem (packet_payload (snapshot_get (midway, 0), &size), size, H264_SPS, sizeof H264_SPS);
  g_assert_cmpuint (cims_nal_classify (CIMS_CODEC_H264, packet_payload (snapshot_get (midway, 2), &size), size),
                    ==, CIMS_NAL_FLAG_FRAGMENT | CIMS_NAL_FLAG_FRAGMENT_START | CIMS_NAL_FLAG_KEYFRAME);
  for (guint i = 0; i < midway->len; i++)
    g_assert_false (snapshot_get (midway, i)->is_synthetic);

  complete = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (complete->len, ==, 202);
  assert_consecutive (complete, keyframe_seq);
  g_assert_true (cims_rtp_packet_get_marker (snapshot_get (complete, 201)));
}

static void
test_keyframe_cache_stap_a_keyframe_once (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 7, 1 };
  const guint8 *const nals[] = { H264_SPS, H264_PPS, H264_IDR };
  const gsize sizes[] = { sizeof H264_SPS, sizeof H264_PPS, sizeof H264_IDR };
  g_autoptr (GPtrArray) snapshot = NULL;
  guint16 second_keyframe_seq;
  guint n_true = 0;

  g_assert_false (camera_send_p_frame (&camera, 0));
  g_assert_true (camera_send_stap_a (&camera, FRAME_TICKS, FALSE, nals, sizes, 3));
  /* A second IDR slice of the same picture is not a new keyframe. */
  g_assert_false (camera_send_fu_a (&camera, FRAME_TICKS, 5, TRUE, FALSE, 100));
  g_assert_false (camera_send_fu_a (&camera, FRAME_TICKS, 5, FALSE, TRUE, 100));
  g_assert_false (camera_send_p_frame (&camera, 2 * FRAME_TICKS));

  second_keyframe_seq = camera.seq;
  n_true += camera_send_stap_a (&camera, 3 * FRAME_TICKS, TRUE, nals, sizes, 3);
  n_true += camera_send_p_frame (&camera, 4 * FRAME_TICKS);
  n_true += camera_send_p_frame (&camera, 5 * FRAME_TICKS);
  g_assert_cmpuint (n_true, ==, 1);

  snapshot = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (snapshot->len, ==, 3);
  assert_consecutive (snapshot, second_keyframe_seq);
}

static void
test_keyframe_cache_out_of_band_parameter_sets (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  g_autoptr (CimsKeyframeCache) other = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 99, 3 };
  g_autoptr (GPtrArray) parameter_sets = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GPtrArray) snapshot = NULL;
  const guint8 *payload;
  gsize size;

  g_ptr_array_add (parameter_sets, g_bytes_new_static (H264_SPS, sizeof H264_SPS));
  g_ptr_array_add (parameter_sets, g_bytes_new_static (H264_PPS, sizeof H264_PPS));
  cims_keyframe_cache_set_parameter_sets (cache, parameter_sets);

  g_assert_false (camera_send_p_frame (&camera, 0));
  g_assert_true (camera_send (&camera, FRAME_TICKS, TRUE, H264_IDR, sizeof H264_IDR));
  g_assert_false (camera_send_p_frame (&camera, 2 * FRAME_TICKS));

  snapshot = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (snapshot->len, ==, 4);
  assert_consecutive (snapshot, 98);

  for (guint i = 0; i < 2; i++)
    {
      CimsRtpPacket *synthetic = snapshot_get (snapshot, i);

      g_assert_true (synthetic->is_synthetic);
      g_assert_cmpuint (synthetic->epoch, ==, 3);
      g_assert_cmpuint (cims_rtp_packet_get_timestamp (synthetic), ==, FRAME_TICKS);
      g_assert_cmpuint (cims_rtp_packet_get_ssrc (synthetic), ==, TEST_SSRC);
      g_assert_cmpuint (cims_rtp_packet_get_payload_type (synthetic), ==, TEST_PAYLOAD_TYPE);
      g_assert_false (cims_rtp_packet_get_marker (synthetic));
    }
  payload = packet_payload (snapshot_get (snapshot, 0), &size);
  g_assert_cmpmem (payload, size, H264_SPS, sizeof H264_SPS);
  payload = packet_payload (snapshot_get (snapshot, 1), &size);
  g_assert_cmpmem (payload, size, H264_PPS, sizeof H264_PPS);
  g_assert_false (snapshot_get (snapshot, 2)->is_synthetic);

  /* Synthetic packets never enter the history: 98 was never sent, and
   * pushing a synthetic packet does not store it either. */
  g_assert_null (cims_keyframe_cache_lookup (cache, 98));
  g_assert_false (cims_keyframe_cache_lookup (cache, 99)->is_synthetic);
  cims_keyframe_cache_push (other, snapshot_get (snapshot, 0));
  g_assert_null (cims_keyframe_cache_lookup (other, 98));
}

static void
test_keyframe_cache_without_parameter_sets (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 10, 1 };
  g_autoptr (GPtrArray) snapshot = NULL;

  g_assert_true (camera_send (&camera, 0, TRUE, H264_IDR, sizeof H264_IDR));
  snapshot = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (snapshot->len, ==, 1);
  g_assert_false (snapshot_get (snapshot, 0)->is_synthetic);
  g_assert_cmpuint (cims_rtp_packet_get_seq (snapshot_get (snapshot, 0)), ==, 10);
}

static void
assert_synthetic_parameter_sets (CimsKeyframeCache *cache, const guint8 *sps, gsize sps_size,
                                 const guint8 *pps, gsize pps_size)
{
  g_autoptr (GPtrArray) snapshot = cims_keyframe_cache_snapshot (cache);
  const guint8 *payload;
  gsize size;

  g_assert_cmpuint (snapshot->len, >=, 3);
  g_assert_true (snapshot_get (snapshot, 0)->is_synthetic);
  g_assert_true (snapshot_get (snapshot, 1)->is_synthetic);
  g_assert_false (snapshot_get (snapshot, 2)->is_synthetic);
  payload = packet_payload (snapshot_get (snapshot, 0), &size);
  g_assert_cmpmem (payload, size, sps, sps_size);
  payload = packet_payload (snapshot_get (snapshot, 1), &size);
  g_assert_cmpmem (payload, size, pps, pps_size);
}

static void
test_keyframe_cache_in_band_replaces_out_of_band (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 1, 1 };
  g_autoptr (GPtrArray) parameter_sets = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  const guint8 *const nals[] = { H264_SPS_OTHER, H264_PPS_OTHER, H264_IDR };
  const gsize sizes[] = { sizeof H264_SPS_OTHER, sizeof H264_PPS_OTHER, sizeof H264_IDR };

  g_ptr_array_add (parameter_sets, g_bytes_new_static (H264_SPS, sizeof H264_SPS));
  g_ptr_array_add (parameter_sets, g_bytes_new_static (H264_PPS, sizeof H264_PPS));
  cims_keyframe_cache_set_parameter_sets (cache, parameter_sets);

  /* First GOP carries other parameter sets in-band; the second has none. */
  g_assert_true (camera_send_stap_a (&camera, 0, TRUE, nals, sizes, 3));
  g_assert_false (camera_send_p_frame (&camera, FRAME_TICKS));
  g_assert_true (camera_send (&camera, 2 * FRAME_TICKS, TRUE, H264_IDR, sizeof H264_IDR));
  assert_synthetic_parameter_sets (cache, H264_SPS_OTHER, sizeof H264_SPS_OTHER,
                                   H264_PPS_OTHER, sizeof H264_PPS_OTHER);

  /* A new epoch drops the in-band sets and falls back to the SDP's. */
  cims_keyframe_cache_reset (cache);
  g_assert_true (camera_send (&camera, 3 * FRAME_TICKS, TRUE, H264_IDR, sizeof H264_IDR));
  assert_synthetic_parameter_sets (cache, H264_SPS, sizeof H264_SPS, H264_PPS, sizeof H264_PPS);
}

static void
test_keyframe_cache_overflow_empties (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, 5000, 64);
  Camera camera = { cache, 1, 1 };
  guint8 big_slice[1000];
  g_autoptr (GPtrArray) empty = NULL;
  g_autoptr (GPtrArray) refilled = NULL;
  guint16 keyframe_seq;
  guint n_true = 0;

  memset (big_slice, 0x11, sizeof big_slice);
  big_slice[0] = 0x41;

  g_assert_true (camera_send (&camera, 0, TRUE, H264_IDR, sizeof H264_IDR));
  for (guint i = 1; i <= 4; i++)
    g_assert_false (camera_send (&camera, i * FRAME_TICKS, TRUE, big_slice, sizeof big_slice));
  g_assert_true (cims_keyframe_cache_has_keyframe (cache));
  g_assert_false (camera_send (&camera, 5 * FRAME_TICKS, TRUE, big_slice, sizeof big_slice));
  g_assert_false (cims_keyframe_cache_has_keyframe (cache));
  empty = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (empty->len, ==, 0);

  /* A keyframe larger than the bound is dropped too, and the later slice
   * starts of the same picture do not count as a keyframe. */
  for (guint i = 0; i < 8; i++)
    n_true += camera_send_fu_a (&camera, 6 * FRAME_TICKS, 5, i == 0 || i == 6, i == 7, 1000);
  g_assert_cmpuint (n_true, ==, 1);
  g_assert_false (cims_keyframe_cache_has_keyframe (cache));

  keyframe_seq = camera.seq;
  g_assert_true (camera_send (&camera, 7 * FRAME_TICKS, TRUE, H264_IDR, sizeof H264_IDR));
  g_assert_true (cims_keyframe_cache_has_keyframe (cache));
  refilled = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (refilled->len, ==, 1);
  g_assert_cmpuint (cims_rtp_packet_get_seq (snapshot_get (refilled, 0)), ==, keyframe_seq);
}

/* Before any keyframe only the current frame is held, so four big P frames
 * and an SPS do not add up past max_bytes and push the SPS out. */
static void
test_keyframe_cache_waiting_holds_one_frame (void)
{
  guint8 big_slice[1000];
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264,
                                                                  4 * (12 + sizeof big_slice) + 10, 64);
  Camera camera = { cache, 1, 1 };
  g_autoptr (GPtrArray) snapshot = NULL;
  guint16 sps_seq;

  memset (big_slice, 0x22, sizeof big_slice);
  big_slice[0] = 0x41;
  for (guint i = 0; i < 4; i++)
    g_assert_false (camera_send (&camera, i * FRAME_TICKS, TRUE, big_slice, sizeof big_slice));

  sps_seq = camera.seq;
  g_assert_false (camera_send (&camera, 4 * FRAME_TICKS, FALSE, H264_SPS, sizeof H264_SPS));
  g_assert_false (camera_send (&camera, 4 * FRAME_TICKS, FALSE, H264_PPS, sizeof H264_PPS));
  g_assert_true (camera_send (&camera, 4 * FRAME_TICKS, TRUE, H264_IDR, sizeof H264_IDR));

  snapshot = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (snapshot->len, ==, 3);
  assert_consecutive (snapshot, sps_seq);
  g_assert_false (snapshot_get (snapshot, 0)->is_synthetic);
}

static void
test_keyframe_cache_history_wraps (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 16);
  Camera camera = { cache, 65530, 1 };
  CimsRtpPacket *hit;

  for (guint i = 0; i < 40; i++)
    camera_send_p_frame (&camera, i * FRAME_TICKS);

  /* Sent: 65530 .. 65535, then 0 .. 33. The last 16 are 18 .. 33. */
  for (guint16 seq = 18; seq <= 33; seq++)
    {
      hit = cims_keyframe_cache_lookup (cache, seq);
      g_assert_nonnull (hit);
      g_assert_cmpuint (cims_rtp_packet_get_seq (hit), ==, seq);
    }
  g_assert_null (cims_keyframe_cache_lookup (cache, 17));
  g_assert_null (cims_keyframe_cache_lookup (cache, 2));
  g_assert_null (cims_keyframe_cache_lookup (cache, 65535));
  g_assert_null (cims_keyframe_cache_lookup (cache, 34));
  g_assert_null (cims_keyframe_cache_lookup (cache, 50));
}

static void
test_keyframe_cache_history_rounds_size (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 10);
  g_autoptr (CimsKeyframeCache) without_history = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 0);
  Camera camera = { cache, 0, 1 };
  Camera other = { without_history, 0, 1 };

  for (guint i = 0; i < 30; i++)
    {
      camera_send_p_frame (&camera, i * FRAME_TICKS);
      camera_send_p_frame (&other, i * FRAME_TICKS);
    }

  for (guint16 seq = 20; seq < 30; seq++)
    g_assert_nonnull (cims_keyframe_cache_lookup (cache, seq));
  g_assert_null (cims_keyframe_cache_lookup (without_history, 29));
}

static void
test_keyframe_cache_reset_clears (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H264, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 300, 1 };
  g_autoptr (GPtrArray) after_reset = NULL;
  g_autoptr (GPtrArray) after_epoch = NULL;

  g_assert_true (camera_send (&camera, 0, TRUE, H264_IDR, sizeof H264_IDR));
  g_assert_false (camera_send_p_frame (&camera, FRAME_TICKS));
  g_assert_nonnull (cims_keyframe_cache_lookup (cache, 301));

  cims_keyframe_cache_reset (cache);
  g_assert_false (cims_keyframe_cache_has_keyframe (cache));
  after_reset = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (after_reset->len, ==, 0);
  g_assert_null (cims_keyframe_cache_lookup (cache, 300));
  g_assert_null (cims_keyframe_cache_lookup (cache, 301));

  /* The same timestamp again after a reset is still a new keyframe. */
  g_assert_true (camera_send (&camera, FRAME_TICKS, TRUE, H264_IDR, sizeof H264_IDR));
  g_assert_nonnull (cims_keyframe_cache_lookup (cache, 302));

  /* A packet of a new epoch resets the cache by itself. */
  camera.epoch = 2;
  g_assert_false (camera_send_p_frame (&camera, 2 * FRAME_TICKS));
  g_assert_false (cims_keyframe_cache_has_keyframe (cache));
  g_assert_null (cims_keyframe_cache_lookup (cache, 302));
  after_epoch = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (after_epoch->len, ==, 0);
}

/* Sends an H.265 AP (type 48) made of the given NAL units. */
static gboolean
camera_send_h265_ap (Camera *camera, guint32 timestamp, const guint8 *const *nals,
                     const gsize *sizes, guint n_nals)
{
  guint8 payload[CIMS_RTP_MAX_PACKET];
  gsize offset = 2;

  payload[0] = 48 << 1;
  payload[1] = 0x01;
  for (guint i = 0; i < n_nals; i++)
    {
      payload[offset] = sizes[i] >> 8;
      payload[offset + 1] = sizes[i] & 0xff;
      memcpy (payload + offset + 2, nals[i], sizes[i]);
      offset += 2 + sizes[i];
    }

  return camera_send (camera, timestamp, FALSE, payload, offset);
}

static void
test_keyframe_cache_h265 (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_H265, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 20, 1 };
  const guint8 *const nals[] = { H265_VPS, H265_SPS, H265_PPS };
  const gsize sizes[] = { sizeof H265_VPS, sizeof H265_SPS, sizeof H265_PPS };
  const guint8 fu_start[] = { 49 << 1, 0x01, 0x80 | 19, 0xaf, 0x01 };
  const guint8 fu_end[] = { 49 << 1, 0x01, 0x40 | 19, 0x02 };
  g_autoptr (GPtrArray) in_band = NULL;
  g_autoptr (GPtrArray) synthetic = NULL;
  const guint8 *payload;
  gsize size;

  g_assert_false (camera_send_h265_ap (&camera, 0, nals, sizes, 3));
  g_assert_true (camera_send (&camera, 0, FALSE, fu_start, sizeof fu_start));
  g_assert_false (camera_send (&camera, 0, TRUE, fu_end, sizeof fu_end));
  in_band = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (in_band->len, ==, 3);
  assert_consecutive (in_band, 20);

  /* The next IDR comes alone: VPS, SPS and PPS are prepended in that order. */
  g_assert_true (camera_send (&camera, FRAME_TICKS, TRUE, H265_IDR, sizeof H265_IDR));
  synthetic = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (synthetic->len, ==, 4);
  assert_consecutive (synthetic, 20);
  for (guint i = 0; i < 3; i++)
    {
      g_assert_true (snapshot_get (synthetic, i)->is_synthetic);
      payload = packet_payload (snapshot_get (synthetic, i), &size);
      g_assert_cmpmem (payload, size, nals[i], sizes[i]);
    }
}

static void
test_keyframe_cache_vp8 (void)
{
  g_autoptr (CimsKeyframeCache) cache = cims_keyframe_cache_new (CIMS_CODEC_VP8, TEST_MAX_BYTES, 64);
  Camera camera = { cache, 5, 1 };
  const guint8 keyframe[] = { 0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a };
  const guint8 continuation[] = { 0x00, 0x11, 0x22 };
  const guint8 interframe[] = { 0x10, 0x51, 0x42, 0x00 };
  g_autoptr (GPtrArray) snapshot = NULL;

  g_assert_false (camera_send (&camera, 0, TRUE, interframe, sizeof interframe));
  g_assert_true (camera_send (&camera, FRAME_TICKS, FALSE, keyframe, sizeof keyframe));
  g_assert_false (camera_send (&camera, FRAME_TICKS, TRUE, continuation, sizeof continuation));
  g_assert_false (camera_send (&camera, 2 * FRAME_TICKS, TRUE, interframe, sizeof interframe));

  snapshot = cims_keyframe_cache_snapshot (cache);
  g_assert_cmpuint (snapshot->len, ==, 3);
  assert_consecutive (snapshot, 6);
  g_assert_false (snapshot_get (snapshot, 0)->is_synthetic);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/pipelines/keyframe-cache/join-before-keyframe", test_keyframe_cache_join_before_keyframe);
  g_test_add_func ("/pipelines/keyframe-cache/gop-starts-at-sps", test_keyframe_cache_gop_starts_at_sps);
  g_test_add_func ("/pipelines/keyframe-cache/parameter-sets-with-previous-timestamp",
                   test_keyframe_cache_parameter_sets_with_previous_timestamp);
  g_test_add_func ("/pipelines/keyframe-cache/fragmented-keyframe-midway",
                   test_keyframe_cache_fragmented_keyframe_midway);
  g_test_add_func ("/pipelines/keyframe-cache/stap-a-keyframe-once", test_keyframe_cache_stap_a_keyframe_once);
  g_test_add_func ("/pipelines/keyframe-cache/out-of-band-parameter-sets",
                   test_keyframe_cache_out_of_band_parameter_sets);
  g_test_add_func ("/pipelines/keyframe-cache/without-parameter-sets", test_keyframe_cache_without_parameter_sets);
  g_test_add_func ("/pipelines/keyframe-cache/in-band-replaces-out-of-band",
                   test_keyframe_cache_in_band_replaces_out_of_band);
  g_test_add_func ("/pipelines/keyframe-cache/overflow-empties", test_keyframe_cache_overflow_empties);
  g_test_add_func ("/pipelines/keyframe-cache/waiting-holds-one-frame",
                   test_keyframe_cache_waiting_holds_one_frame);
  g_test_add_func ("/pipelines/keyframe-cache/history-wraps", test_keyframe_cache_history_wraps);
  g_test_add_func ("/pipelines/keyframe-cache/history-rounds-size", test_keyframe_cache_history_rounds_size);
  g_test_add_func ("/pipelines/keyframe-cache/reset-clears", test_keyframe_cache_reset_clears);
  g_test_add_func ("/pipelines/keyframe-cache/h265", test_keyframe_cache_h265);
  g_test_add_func ("/pipelines/keyframe-cache/vp8", test_keyframe_cache_vp8);

  return g_test_run ();
}

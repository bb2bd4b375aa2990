/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for camera RTP: cims_rtp_packet_new and its accessors,
 * cims_nal_classify and the keyframe cache's push, snapshot and lookup over
 * a sequence of packets split from the input.
 *
 * Input: one byte choosing the codec (low two bits: H.264, H.265, VP8,
 * unknown), then records of one flags byte, a 16-bit big-endian length and
 * that many packet bytes. Flags: bit 0 starts a new source epoch, bit 1
 * takes a snapshot after the push, bit 2 sets the packet's payload as an
 * out-of-band parameter set, bit 3 looks up the packet's sequence number. */

#include <stdint.h>

#include "pipelines/pipelines.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Small enough that a few large packets overflow it. */
#define FUZZ_CACHE_MAX_BYTES (16 * 1024)
#define FUZZ_HISTORY_SIZE 64

#define RECORD_NEW_EPOCH 0x01
#define RECORD_SNAPSHOT 0x02
#define RECORD_OUT_OF_BAND 0x04
#define RECORD_LOOKUP 0x08

static const CimsCodec codecs[] = {
  CIMS_CODEC_H264, CIMS_CODEC_H265, CIMS_CODEC_VP8, CIMS_CODEC_UNKNOWN,
};

static void
count_unit_cb (const guint8 *nal, gsize size, gpointer user_data)
{
  const guint8 **bounds = user_data;

  g_assert_true (nal >= bounds[0]);
  g_assert_true (nal + size <= bounds[1]);
}

/* Exercises every accessor and classifier on one packet. */
static void
packet_check (CimsCodec codec, const CimsRtpPacket *packet)
{
  const guint8 *payload;
  const guint8 *bounds[2];
  gsize payload_size = 0;

  (void) cims_rtp_packet_get_seq (packet);
  (void) cims_rtp_packet_get_timestamp (packet);
  (void) cims_rtp_packet_get_ssrc (packet);
  (void) cims_rtp_packet_get_marker (packet);
  g_assert_cmpuint (cims_rtp_packet_get_payload_type (packet), <=, 127);

  /* A packet that cims_rtp_packet_new accepted always has a payload. */
  payload = cims_rtp_packet_get_payload (packet, &payload_size);
  g_assert_nonnull (payload);
  g_assert_true (payload >= packet->data + 12);
  g_assert_true (payload + payload_size <= packet->data + packet->size);

  (void) cims_nal_classify (codec, payload, payload_size);
  (void) cims_nal_classify_unit (codec, payload, payload_size);

  bounds[0] = payload;
  bounds[1] = payload + payload_size;
  (void) cims_nal_foreach_unit (codec, payload, payload_size, count_unit_cb, bounds);
}

static void
snapshot_check (CimsKeyframeCache *cache)
{
  g_autoptr(GPtrArray) snapshot = cims_keyframe_cache_snapshot (cache);

  g_assert_nonnull (snapshot);
  if (!cims_keyframe_cache_has_keyframe (cache))
    g_assert_cmpuint (snapshot->len, ==, 0);

  for (guint i = 0; i < snapshot->len; i++) {
    CimsRtpPacket *packet = g_ptr_array_index (snapshot, i);
    gsize payload_size = 0;

    g_assert_nonnull (packet);
    g_assert_nonnull (cims_rtp_packet_get_payload (packet, &payload_size));
  }
}

static void
out_of_band_set (CimsKeyframeCache *cache, const CimsRtpPacket *packet)
{
  g_autoptr(GPtrArray) nal_units = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gsize payload_size = 0;
  const guint8 *payload = cims_rtp_packet_get_payload (packet, &payload_size);

  g_ptr_array_add (nal_units, g_bytes_new (payload, payload_size));
  cims_keyframe_cache_set_parameter_sets (cache, nal_units);
}

static void
record_handle (CimsKeyframeCache *cache, CimsCodec codec, guint8 flags,
               const guint8 *bytes, gsize size, guint32 *epoch)
{
  g_autoptr(CimsRtpPacket) packet = NULL;

  if (flags & RECORD_NEW_EPOCH)
    (*epoch)++;

  packet = cims_rtp_packet_new (bytes, size, *epoch, 0);
  if (packet == NULL)
    return;
  g_assert_cmpuint (packet->size, ==, size);

  packet_check (codec, packet);
  if (flags & RECORD_OUT_OF_BAND)
    out_of_band_set (cache, packet);

  (void) cims_keyframe_cache_push (cache, packet);

  if (flags & RECORD_SNAPSHOT)
    snapshot_check (cache);

  if (flags & RECORD_LOOKUP) {
    CimsRtpPacket *found = cims_keyframe_cache_lookup (cache, cims_rtp_packet_get_seq (packet));

    if (found != NULL)
      g_assert_cmpuint (cims_rtp_packet_get_seq (found), ==, cims_rtp_packet_get_seq (packet));
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(CimsKeyframeCache) cache = NULL;
  CimsCodec codec;
  guint32 epoch = 0;
  gsize offset = 1;

  if (size < 1)
    return 0;

  codec = codecs[data[0] & 0x03];
  cache = cims_keyframe_cache_new (codec, FUZZ_CACHE_MAX_BYTES, FUZZ_HISTORY_SIZE);

  while (size - offset >= 3) {
    guint8 flags = data[offset];
    gsize length = (gsize) data[offset + 1] << 8 | data[offset + 2];

    offset += 3;
    length = MIN (length, size - offset);
    record_handle (cache, codec, flags, data + offset, length, &epoch);
    offset += length;
  }

  snapshot_check (cache);

  return 0;
}

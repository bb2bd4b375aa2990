/* SPDX-License-Identifier: Apache-2.0 */
/* Per-viewer reception statistics: loss from sequence gaps, jitter, and the
 * first whole keyframe with its picture size. Works on plain RTP after SRTP
 * removal and never allocates. */
#include "bench/whep-viewer.h"

#include <stdlib.h>
#include <string.h>

/* A number missing while at most this many newer ones have arrived may
 * still come late (reordering) and is not yet lost. */
#define REORDER_TOLERANCE 2
#define HISTORY_BITS 64

typedef struct {
  guint16 seq;
  guint32 timestamp;
  gboolean has_marker;
  const guint8 *payload;
  gsize payload_size;
} RtpView;

/* Parses the RTP header (RFC 3550 section 5.1) without copying. */
static gboolean
rtp_view_parse (const guint8 *packet, gsize size, RtpView *view)
{
  gsize offset = 12;
  gsize padding = 0;

  if (size < 12 || (packet[0] >> 6) != 2)
    return FALSE;

  offset += 4 * (packet[0] & 0x0f);
  if ((packet[0] & 0x10) != 0) {
    if (size < offset + 4)
      return FALSE;
    offset += 4 + 4 * (gsize) (packet[offset + 2] << 8 | packet[offset + 3]);
  }
  if ((packet[0] & 0x20) != 0)
    padding = packet[size - 1];
  if (size < offset + padding)
    return FALSE;

  view->seq = (guint16) (packet[2] << 8 | packet[3]);
  view->timestamp = (guint32) packet[4] << 24 | packet[5] << 16 | packet[6] << 8 | packet[7];
  view->has_marker = (packet[1] & 0x80) != 0;
  view->payload = packet + offset;
  view->payload_size = size - offset - padding;
  return TRUE;
}

void
cims_whep_viewer_stats_init (CimsWhepViewerStats *stats, CimsCodec codec, guint32 clock_rate)
{
  memset (stats, 0, sizeof *stats);
  stats->codec = codec;
  stats->clock_rate = clock_rate != 0 ? clock_rate : 90000;
}

/* ---- loss ------------------------------------------------------------------ */

/* Counts the numbers that move past the reorder tolerance when the highest
 * number advances by @delta, using the bitmap already shifted. A number
 * whose bit is clear when it leaves the tolerance is lost; a later arrival
 * does not take it back. */
static void
loss_count_advance (CimsWhepViewerStats *stats, guint32 delta)
{
  for (guint32 k = REORDER_TOLERANCE + 1; k <= delta + REORDER_TOLERANCE; k++) {
    guint32 number = stats->max_seq - k;

    if (number < stats->base_seq)
      continue;
    if (k >= HISTORY_BITS) {
      /* Beyond the bitmap only skipped numbers remain, none received. */
      stats->n_lost += delta + REORDER_TOLERANCE - k + 1;
      return;
    }
    if ((stats->received_bits & (G_GUINT64_CONSTANT (1) << k)) == 0)
      stats->n_lost++;
  }
}

static void
sequence_update (CimsWhepViewerStats *stats, guint16 seq)
{
  gint16 delta;

  if (!stats->has_sequence) {
    /* Starting one cycle up keeps numbers just below the first valid. */
    stats->has_sequence = TRUE;
    stats->base_seq = 0x10000 + seq;
    stats->max_seq = stats->base_seq;
    stats->received_bits = 1;
    return;
  }

  delta = (gint16) (seq - (guint16) stats->max_seq);
  if (delta > 1 || delta < 0)
    g_debug ("RTP sequence number %u after %u", seq, (guint16) stats->max_seq);
  if (delta > 0) {
    stats->max_seq += (guint32) delta;
    stats->received_bits = delta >= HISTORY_BITS ? 0 : stats->received_bits << delta;
    stats->received_bits |= 1;
    loss_count_advance (stats, (guint32) delta);
  } else if (delta < 0 && -delta < HISTORY_BITS) {
    stats->received_bits |= G_GUINT64_CONSTANT (1) << -delta;
  }
}

/* Counts the time since the last packet as a silence once the first whole
 * keyframe arrived. */
static void
silence_account (CimsWhepViewerStats *stats, gint64 now_us)
{
  if (stats->first_keyframe_us != 0)
    stats->longest_silence_us = MAX (stats->longest_silence_us, now_us - stats->last_packet_us);
}

void
cims_whep_viewer_stats_finish (CimsWhepViewerStats *stats, gint64 now_us)
{
  /* A stall at the end counts too. */
  silence_account (stats, now_us);

  if (!stats->has_sequence)
    return;

  /* The newest numbers never left the tolerance; the ones still missing
   * will not come now. */
  for (guint32 k = 1; k <= REORDER_TOLERANCE; k++) {
    if (stats->max_seq - k < stats->base_seq)
      break;
    if ((stats->received_bits & (G_GUINT64_CONSTANT (1) << k)) == 0)
      stats->n_lost++;
  }
  stats->has_sequence = FALSE;
}

guint32
cims_whep_viewer_stats_get_extended_max (const CimsWhepViewerStats *stats)
{
  return stats->max_seq - 0x10000;
}

guint8
cims_whep_viewer_stats_take_fraction_lost (CimsWhepViewerStats *stats)
{
  guint64 expected = stats->has_sequence ? stats->max_seq - stats->base_seq + 1 : 0;
  guint64 expected_interval = expected - stats->n_expected_prior;
  guint64 lost_interval = stats->n_lost - stats->n_lost_prior;

  stats->n_expected_prior = expected;
  stats->n_lost_prior = stats->n_lost;
  if (expected_interval == 0 || lost_interval == 0 || lost_interval > expected_interval)
    return 0;

  return (guint8) ((lost_interval << 8) / expected_interval);
}

/* RFC 3550 section 6.4.1 and appendix A.8: J += (|D| - J) / 16. */
static void
jitter_update (CimsWhepViewerStats *stats, guint32 timestamp, gint64 now_us)
{
  gint64 arrival = now_us * stats->clock_rate / G_USEC_PER_SEC;
  gint64 transit = arrival - timestamp;
  gint64 difference;

  if (stats->has_transit) {
    difference = llabs (transit - stats->last_transit);
    stats->jitter_q4 += (guint32) difference - ((stats->jitter_q4 + 8) >> 4);
  }
  stats->last_transit = transit;
  stats->has_transit = TRUE;
}

/* ---- keyframes ---------------------------------------------------------------- */

static void
sps_unit_cb (const guint8 *nal, gsize size, gpointer user_data)
{
  CimsWhepViewerStats *stats = user_data;
  guint type = stats->codec == CIMS_CODEC_H265 ? (nal[0] >> 1) & 0x3f : nal[0] & 0x1f;
  guint sps_type = stats->codec == CIMS_CODEC_H265 ? 33 : 7;

  guint width = 0, height = 0;

  if (type != sps_type || !cims_sps_parse_size (stats->codec, nal, size, &width, &height))
    return;

  if (stats->width == 0) {
    stats->width = width;
    stats->height = height;
  }

  for (guint i = 0; i < stats->n_sizes; i++) {
    if (stats->sizes[i][0] == width && stats->sizes[i][1] == height)
      return;
  }
  if (stats->n_sizes < G_N_ELEMENTS (stats->sizes)) {
    stats->sizes[stats->n_sizes][0] = width;
    stats->sizes[stats->n_sizes][1] = height;
    stats->n_sizes++;
  }
}

/* Reads the VP8 payload descriptor (RFC 7741 section 4.2) and, for the start
 * of a key frame, its size (RFC 6386 section 9.1). Returns TRUE for a key
 * frame start. */
static gboolean
vp8_keyframe_start_parse (CimsWhepViewerStats *stats, const guint8 *payload, gsize size)
{
  gsize offset = 1;

  if (size < 1 || (payload[0] & 0x10) == 0 || (payload[0] & 0x07) != 0)
    return FALSE;

  if ((payload[0] & 0x80) != 0 && size > 1) {
    guint8 extension = payload[1];

    offset = 2;
    if ((extension & 0x80) != 0)
      offset += size > offset && (payload[offset] & 0x80) != 0 ? 2 : 1;
    offset += (extension & 0x40) != 0 ? 1 : 0;
    offset += (extension & 0x30) != 0 ? 1 : 0;
  }

  if (size < offset + 10 || (payload[offset] & 0x01) != 0)
    return FALSE;

  if (payload[offset + 3] == 0x9d && payload[offset + 4] == 0x01 && payload[offset + 5] == 0x2a) {
    stats->width = (payload[offset + 6] | payload[offset + 7] << 8) & 0x3fff;
    stats->height = (payload[offset + 8] | payload[offset + 9] << 8) & 0x3fff;
  }

  return TRUE;
}

static guint
required_keyframe_flags (CimsCodec codec)
{
  if (codec == CIMS_CODEC_H265)
    return CIMS_NAL_FLAG_VPS | CIMS_NAL_FLAG_SPS | CIMS_NAL_FLAG_PPS | CIMS_NAL_FLAG_KEYFRAME;

  return CIMS_NAL_FLAG_SPS | CIMS_NAL_FLAG_PPS | CIMS_NAL_FLAG_KEYFRAME;
}

/* Starts a new access unit at @view unless the open one holds only parameter
 * sets: those may carry the previous frame's timestamp and still belong to
 * the keyframe that follows. */
static void
unit_open_or_continue (CimsWhepViewerStats *stats, const RtpView *view)
{
  gboolean is_new_timestamp = stats->unit_is_open && view->timestamp != stats->unit_timestamp;

  if (stats->unit_is_open && is_new_timestamp && stats->codec != CIMS_CODEC_VP8
      && !stats->unit_has_slices)
    stats->unit_timestamp = view->timestamp;
  else if (!stats->unit_is_open || is_new_timestamp) {
    stats->unit_is_open = TRUE;
    stats->unit_timestamp = view->timestamp;
    stats->unit_flags = 0;
    stats->unit_is_contiguous = TRUE;
    stats->unit_has_slices = FALSE;
    stats->unit_has_vp8_keyframe = FALSE;
    stats->unit_next_seq = view->seq;
  }

  if (view->seq != (guint16) stats->unit_next_seq)
    stats->unit_is_contiguous = FALSE;
  stats->unit_next_seq = (guint16) (view->seq + 1);
}

static void
unit_classify (CimsWhepViewerStats *stats, const RtpView *view)
{
  CimsNalFlags flags;

  if (stats->codec == CIMS_CODEC_VP8) {
    if (vp8_keyframe_start_parse (stats, view->payload, view->payload_size))
      stats->unit_has_vp8_keyframe = TRUE;
    return;
  }

  flags = cims_nal_classify (stats->codec, view->payload, view->payload_size);
  stats->unit_flags |= flags;
  if ((flags & CIMS_NAL_FLAG_PARAMETER_SET) == 0 || (flags & CIMS_NAL_FLAG_KEYFRAME) != 0)
    stats->unit_has_slices = TRUE;

  if ((flags & CIMS_NAL_FLAG_SPS) != 0)
    cims_nal_foreach_unit (stats->codec, view->payload, view->payload_size, sps_unit_cb, stats);
}

/* Closes the access unit at its marker bit and counts it when it is a whole
 * keyframe: every key part present, no sequence gap inside. Returns TRUE for
 * the first whole keyframe. */
static gboolean
unit_close (CimsWhepViewerStats *stats, gint64 now_us)
{
  guint required = required_keyframe_flags (stats->codec);
  gboolean is_keyframe;

  stats->unit_is_open = FALSE;
  if (stats->codec == CIMS_CODEC_VP8)
    is_keyframe = stats->unit_has_vp8_keyframe;
  else
    is_keyframe = (stats->unit_flags & required) == required;

  if (!is_keyframe || !stats->unit_is_contiguous)
    return FALSE;

  stats->n_keyframes++;
  stats->last_keyframe_us = now_us;
  if (stats->first_keyframe_us != 0)
    return FALSE;

  stats->first_keyframe_us = now_us;
  return TRUE;
}

gboolean
cims_whep_viewer_stats_add (CimsWhepViewerStats *stats, const guint8 *packet, gsize size, gint64 now_us)
{
  RtpView view;

  if (!rtp_view_parse (packet, size, &view))
    return FALSE;

  stats->n_packets++;
  stats->n_bytes += size;
  if (stats->first_packet_us == 0)
    stats->first_packet_us = now_us;
  silence_account (stats, now_us);
  stats->last_packet_us = now_us;

  sequence_update (stats, view.seq);
  jitter_update (stats, view.timestamp, now_us);

  unit_open_or_continue (stats, &view);
  unit_classify (stats, &view);

  /* Some cameras set the marker on parameter-set packets too: the access
   * unit goes on until a packet with slices carries the marker. */
  if (!view.has_marker || (stats->codec != CIMS_CODEC_VP8 && !stats->unit_has_slices))
    return FALSE;

  return unit_close (stats, now_us);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Per-viewer RTP rewriting: a fresh 12-byte header with the viewer's SSRC,
 * payload type, sequence numbers and timestamps, then the payload. Sending
 * the result (SRTP, ICE) is the viewer session's job. */

#include "hub/hub-private.h"

#include <string.h>

#define RTP_HEADER_SIZE 12

/* A sequence number step larger than this, either way, within one epoch is
 * treated as a restart of the camera's numbering, not as loss or reordering. */
#define SEQ_MAX_JUMP 3000

/* Catch-up frames are 90 ticks apart: 1 ms at the 90 kHz video clock, so a
 * keyframe-cache snapshot is decoded at once yet keeps increasing timestamps. */
#define CATCH_UP_TICKS_PER_FRAME 90

void
cims_rtp_rewriter_init (CimsRtpRewriter *rewriter, guint32 ssrc, guint8 payload_type,
                        guint32 clock_rate, guint16 initial_seq, guint32 initial_ts)
{
  g_return_if_fail (rewriter != NULL);
  g_return_if_fail (payload_type <= 127);
  g_return_if_fail (clock_rate > 0);

  memset (rewriter, 0, sizeof (*rewriter));
  rewriter->ssrc = ssrc;
  rewriter->payload_type = payload_type;
  rewriter->clock_rate = clock_rate;

  /* The first packet written continues from "last" + 1 and keeps the
   * timestamp, so it gets exactly initial_seq and initial_ts. */
  rewriter->last_out_seq = initial_seq - 1;
  rewriter->last_out_ts = initial_ts;
}

/* Returns the RTP clock ticks in @elapsed_us, at least 1. Wrapping modulo
 * 2^64 is harmless because only the low 32 bits reach the timestamp. */
static guint32
elapsed_ticks (const CimsRtpRewriter *rewriter, gint64 arrival_us)
{
  guint64 elapsed_us;
  guint64 ticks;

  if (arrival_us <= rewriter->last_out_us)
    return 1;

  elapsed_us = arrival_us - rewriter->last_out_us;
  ticks = (elapsed_us / G_USEC_PER_SEC) * rewriter->clock_rate +
          (elapsed_us % G_USEC_PER_SEC) * rewriter->clock_rate / G_USEC_PER_SEC;

  return MAX ((guint32) ticks, 1);
}

/* Starts a new timestamp mapping so that @src_ts continues the output. */
static void
ts_map (CimsRtpRewriter *rewriter, guint32 src_ts, gint64 arrival_us)
{
  guint32 out_ts = rewriter->last_out_ts;

  if (rewriter->started)
    out_ts += elapsed_ticks (rewriter, arrival_us);

  rewriter->ts_offset = out_ts - src_ts;
  rewriter->is_ts_mapped = TRUE;
}

/* Starts a new sequence mapping so that @src_seq becomes last + 1. */
static void
seq_map (CimsRtpRewriter *rewriter, guint16 src_seq)
{
  guint16 out_seq = rewriter->last_out_seq + 1;

  rewriter->seq_offset = out_seq - src_seq;
  rewriter->is_seq_mapped = TRUE;
  rewriter->first_mapped_out_seq = out_seq;
}

/* Decides whether @packet needs a new mapping: a new epoch, nothing mapped
 * yet, or a sequence jump of more than SEQ_MAX_JUMP either way. */
static void
mapping_update (CimsRtpRewriter *rewriter, const CimsRtpPacket *packet,
                guint16 src_seq, guint32 src_ts)
{
  gint16 seq_delta = (gint16) (guint16) (src_seq - rewriter->last_src_seq);

  if (!rewriter->started || packet->epoch != rewriter->epoch || !rewriter->is_ts_mapped) {
    rewriter->epoch = packet->epoch;
    rewriter->is_seq_mapped = FALSE;
    ts_map (rewriter, src_ts, packet->arrival_us);
  } else if (rewriter->is_seq_mapped && (seq_delta > SEQ_MAX_JUMP || seq_delta < -SEQ_MAX_JUMP)) {
    rewriter->is_seq_mapped = FALSE;
    ts_map (rewriter, src_ts, packet->arrival_us);
  }

  if (!rewriter->is_seq_mapped)
    seq_map (rewriter, src_seq);
}

/* During catch-up every new source timestamp is one frame step after the
 * previous output, and ts_offset follows, so that live packets after
 * end_catch_up() continue from the last catch-up frame. */
static void
catch_up_ts_update (CimsRtpRewriter *rewriter, guint32 src_ts)
{
  guint32 out_ts;
  guint index;

  if (rewriter->has_catch_up_frame && src_ts == rewriter->catch_up_src_ts)
    return;

  if (rewriter->has_catch_up_frame || rewriter->started)
    out_ts = rewriter->last_out_ts + CATCH_UP_TICKS_PER_FRAME;
  else
    out_ts = rewriter->last_out_ts;

  rewriter->ts_offset = out_ts - src_ts;
  rewriter->is_ts_mapped = TRUE;
  rewriter->has_catch_up_frame = TRUE;
  rewriter->catch_up_src_ts = src_ts;

  index = rewriter->n_catch_up_frames++ % CIMS_RTP_REWRITER_CATCH_UP_FRAMES;
  rewriter->catch_up_frame_src_ts[index] = src_ts;
  rewriter->catch_up_frame_out_ts[index] = out_ts;
}

/* A synthetic packet (parameter sets made by the hub) has no place in the
 * camera's numbering: it takes the next output sequence number, and the
 * offset moves by one so that the next camera packet follows it. */
static void
synthetic_seq_compute (CimsRtpRewriter *rewriter, guint16 *out_seq)
{
  *out_seq = rewriter->last_out_seq + 1;
  if (rewriter->is_seq_mapped) {
    rewriter->seq_offset++;
    rewriter->first_mapped_out_seq = *out_seq + 1;
  }
}

static void
header_write (guint8 *out, gboolean marker, guint8 payload_type, guint16 seq,
              guint32 ts, guint32 ssrc)
{
  out[0] = 0x80;                /* V=2, P=0, X=0, CC=0 */
  out[1] = (marker ? 0x80 : 0x00) | (payload_type & 0x7f);
  out[2] = seq >> 8;
  out[3] = seq & 0xff;
  out[4] = ts >> 24;
  out[5] = (ts >> 16) & 0xff;
  out[6] = (ts >> 8) & 0xff;
  out[7] = ts & 0xff;
  out[8] = ssrc >> 24;
  out[9] = (ssrc >> 16) & 0xff;
  out[10] = (ssrc >> 8) & 0xff;
  out[11] = ssrc & 0xff;
}

/* Records the packet as the newest written, unless it is older than the
 * newest (a reordered packet), so that last + 1 never reuses a number. */
static void
last_update (CimsRtpRewriter *rewriter, const CimsRtpPacket *packet, guint16 src_seq,
             guint32 src_ts, guint16 out_seq, guint32 out_ts)
{
  gint16 out_delta = (gint16) (guint16) (out_seq - rewriter->last_out_seq);

  if (rewriter->started && out_delta <= 0)
    return;

  rewriter->started = TRUE;
  rewriter->last_src_seq = src_seq;
  rewriter->last_src_ts = src_ts;
  rewriter->last_out_seq = out_seq;
  rewriter->last_out_ts = out_ts;
  if (packet->arrival_us > rewriter->last_out_us)
    rewriter->last_out_us = packet->arrival_us;
}

gsize
cims_rtp_rewriter_write (CimsRtpRewriter *rewriter, const CimsRtpPacket *packet,
                         guint8 *out, gsize out_size)
{
  const guint8 *payload;
  gsize payload_size = 0;
  guint16 src_seq, out_seq;
  guint32 src_ts, out_ts;

  g_return_val_if_fail (rewriter != NULL, 0);
  g_return_val_if_fail (packet != NULL, 0);
  g_return_val_if_fail (out != NULL, 0);

  if (packet->size < RTP_HEADER_SIZE || (packet->data[0] >> 6) != 2)
    return 0;

  payload = cims_rtp_packet_get_payload (packet, &payload_size);
  if (payload == NULL || out_size < RTP_HEADER_SIZE + payload_size)
    return 0;

  src_seq = cims_rtp_packet_get_seq (packet);
  src_ts = cims_rtp_packet_get_timestamp (packet);

  /* Sequence numbers. */
  if (packet->is_synthetic && rewriter->started && packet->epoch == rewriter->epoch &&
      rewriter->is_ts_mapped) {
    synthetic_seq_compute (rewriter, &out_seq);
  } else {
    mapping_update (rewriter, packet, src_seq, src_ts);
    if (packet->is_synthetic) {
      /* The next camera packet maps afresh, right after this one. */
      out_seq = rewriter->last_out_seq + 1;
      rewriter->is_seq_mapped = FALSE;
    } else {
      out_seq = src_seq + rewriter->seq_offset;
    }
  }

  /* Timestamps. */
  if (rewriter->is_catching_up)
    catch_up_ts_update (rewriter, src_ts);
  out_ts = src_ts + rewriter->ts_offset;

  header_write (out, cims_rtp_packet_get_marker (packet), rewriter->payload_type,
                out_seq, out_ts, rewriter->ssrc);
  memcpy (out + RTP_HEADER_SIZE, payload, payload_size);

  last_update (rewriter, packet, src_seq, src_ts, out_seq, out_ts);
  rewriter->packets_sent++;
  rewriter->octets_sent += payload_size;

  return RTP_HEADER_SIZE + payload_size;
}

gsize
cims_rtp_rewriter_write_again (const CimsRtpRewriter *rewriter, const CimsRtpPacket *packet,
                               guint8 *out, gsize out_size)
{
  CimsRtpRewriter copy = *rewriter;
  guint32 src_ts = cims_rtp_packet_get_timestamp (packet);
  guint n_frames = MIN (rewriter->n_catch_up_frames, CIMS_RTP_REWRITER_CATCH_UP_FRAMES);
  gboolean is_snapshot_frame = FALSE;

  for (guint i = 0; i < n_frames && !is_snapshot_frame; i++) {
    if (rewriter->catch_up_frame_src_ts[i] != src_ts)
      continue;

    copy.ts_offset = rewriter->catch_up_frame_out_ts[i] - src_ts;
    is_snapshot_frame = TRUE;
  }

  /* While a snapshot is sent, ts_offset is valid for its latest frame only. */
  if (!is_snapshot_frame && rewriter->is_catching_up)
    return 0;

  copy.is_catching_up = FALSE;
  return cims_rtp_rewriter_write (&copy, packet, out, out_size);
}

void
cims_rtp_rewriter_begin_catch_up (CimsRtpRewriter *rewriter)
{
  g_return_if_fail (rewriter != NULL);

  /* The snapshot restarts both mappings: its first packet continues the
   * output at last + 1 whatever the source or epoch it comes from. */
  rewriter->is_catching_up = TRUE;
  rewriter->has_catch_up_frame = FALSE;
  rewriter->n_catch_up_frames = 0;
  rewriter->is_seq_mapped = FALSE;
  rewriter->is_ts_mapped = FALSE;
}

void
cims_rtp_rewriter_end_catch_up (CimsRtpRewriter *rewriter)
{
  g_return_if_fail (rewriter != NULL);

  /* ts_offset already maps the last catch-up frame to its output timestamp. */
  rewriter->is_catching_up = FALSE;
  rewriter->has_catch_up_frame = FALSE;
}

gboolean
cims_rtp_rewriter_map_seq_to_source (const CimsRtpRewriter *rewriter, guint16 out_seq,
                                     guint16 *src_seq)
{

  g_return_val_if_fail (rewriter != NULL, FALSE);
  g_return_val_if_fail (src_seq != NULL, FALSE);

  if (!rewriter->started || !rewriter->is_seq_mapped)
    return FALSE;

  /* NOTE: only the current mapping is kept, so a NACK for a packet sent
   * before the latest remap (epoch change, jump, synthetic packet, catch-up)
   * cannot be mapped and that packet is not resent. */
  if ((gint16) (guint16) (out_seq - rewriter->first_mapped_out_seq) < 0 ||
      (gint16) (guint16) (rewriter->last_out_seq - out_seq) < 0)
    return FALSE;

  *src_seq = out_seq - rewriter->seq_offset;

  return TRUE;
}

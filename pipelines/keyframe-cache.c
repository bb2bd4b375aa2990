/* SPDX-License-Identifier: Apache-2.0 */
/* Per-source keyframe cache (the packets since the latest keyframe, for a
 * joining viewer) and packet history by sequence number (for NACKs).
 * Classifying payloads is left to nal-classify.c. */
#include "pipelines/pipelines.h"

#include <string.h>

/* An estimate: 1024 pointers (8 KiB) hold about five seconds of a 2 Mbit/s
 * stream in 1200-byte packets, so a usual GOP fits without regrowing. */
#define CACHE_PREALLOCATED_PACKETS 1024
#define HISTORY_MAX_SIZE 65536
#define RTP_HEADER_SIZE 12

/* Slots of the parameter-set tables, in the order a decoder needs them. */
typedef enum {
  PARAMETER_SET_VPS,
  PARAMETER_SET_SPS,
  PARAMETER_SET_PPS,
  N_PARAMETER_SETS,
} ParameterSetKind;

/* An in-band parameter set: a reference to the packet that carried it and
 * where the NAL unit lies in that packet, so keeping it costs no copy. */
typedef struct {
  CimsRtpPacket *packet;
  guint16 offset;
  guint16 size;
} InBandParameterSet;

struct _CimsKeyframeCache {
  CimsCodec codec;
  gsize max_bytes;

  /* The cached packets. While has_keyframe is TRUE they start with the
   * latest keyframe. Otherwise they only hold the current access unit and
   * the parameter-set packets just before it, in case it is a keyframe. */
  GPtrArray *packets;
  gsize cached_bytes;
  gboolean has_keyframe;
  CimsNalFlags keyframe_flags;  /* union of the flags before its first slice */
  guint32 keyframe_timestamp;

  /* The current access unit (packets sharing an RTP timestamp). */
  gboolean has_access_unit;
  guint32 access_unit_timestamp;
  guint access_unit_start;      /* index of the first packet of a keyframe in it */
  CimsNalFlags access_unit_flags;
  gboolean access_unit_has_keyframe;

  /* The run of parameter-set-only packets ending at the newest packet. */
  gboolean in_parameter_set_run;
  guint parameter_set_run_start;
  CimsNalFlags parameter_set_run_flags;

  gboolean has_epoch;
  guint32 epoch;

  InBandParameterSet in_band[N_PARAMETER_SETS];
  GBytes *out_of_band[N_PARAMETER_SETS];

  CimsRtpPacket **history;
  guint history_mask;
};

static void
packet_unref_cb (gpointer packet)
{
  cims_rtp_packet_unref (packet);
}

static guint
history_round_size (guint history_size)
{
  guint size = 1;

  if (history_size == 0)
    return 0;

  while (size < history_size && size < HISTORY_MAX_SIZE)
    size <<= 1;

  return size;
}

/**
 * cims_keyframe_cache_new:
 * Creates an empty cache for one source of @codec. A @history_size that is
 * not a power of two is rounded up to the next one (at most 65536, the
 * number of RTP sequence numbers). A @history_size of 0 keeps no history.
 * Returns: (transfer full)
 */
CimsKeyframeCache *
cims_keyframe_cache_new (CimsCodec codec, gsize max_bytes, guint history_size)
{
  CimsKeyframeCache *cache = g_new0 (CimsKeyframeCache, 1);
  guint history_slots = history_round_size (history_size);

  cache->codec = codec;
  cache->max_bytes = max_bytes;
  cache->packets = g_ptr_array_new_full (CACHE_PREALLOCATED_PACKETS, packet_unref_cb);

  if (history_slots > 0)
    {
      cache->history = g_new0 (CimsRtpPacket *, history_slots);
      cache->history_mask = history_slots - 1;
    }

  return cache;
}

static void
history_clear (CimsKeyframeCache *cache)
{
  if (cache->history == NULL)
    return;

  for (guint i = 0; i <= cache->history_mask; i++)
    g_clear_pointer (&cache->history[i], cims_rtp_packet_unref);
}

static void
in_band_clear (CimsKeyframeCache *cache)
{
  for (guint i = 0; i < N_PARAMETER_SETS; i++)
    g_clear_pointer (&cache->in_band[i].packet, cims_rtp_packet_unref);
}

static void
out_of_band_clear (CimsKeyframeCache *cache)
{
  for (guint i = 0; i < N_PARAMETER_SETS; i++)
    g_clear_pointer (&cache->out_of_band[i], g_bytes_unref);
}

/* Drops every cached packet. The current access unit stays known, so the
 * later slices of a keyframe that overflowed do not count as a new one. */
static void
cache_empty (CimsKeyframeCache *cache)
{
  g_ptr_array_set_size (cache->packets, 0);
  cache->cached_bytes = 0;
  cache->has_keyframe = FALSE;
  cache->keyframe_flags = CIMS_NAL_FLAG_NONE;
  cache->access_unit_start = 0;
  cache->in_parameter_set_run = FALSE;
  cache->parameter_set_run_start = 0;
}

void
cims_keyframe_cache_free (CimsKeyframeCache *cache)
{
  if (cache == NULL)
    return;

  g_clear_pointer (&cache->packets, g_ptr_array_unref);
  history_clear (cache);
  g_clear_pointer (&cache->history, g_free);
  in_band_clear (cache);
  out_of_band_clear (cache);
  g_free (cache);
}

static gint
parameter_set_kind (CimsNalFlags flags)
{
  if (flags & CIMS_NAL_FLAG_VPS)
    return PARAMETER_SET_VPS;
  if (flags & CIMS_NAL_FLAG_SPS)
    return PARAMETER_SET_SPS;
  if (flags & CIMS_NAL_FLAG_PPS)
    return PARAMETER_SET_PPS;

  return -1;
}

/* NOTE: only the latest parameter set of each kind is kept. A stream that
 * uses several SPS or PPS ids gets only the last one prepended. */
void
cims_keyframe_cache_set_parameter_sets (CimsKeyframeCache *cache, GPtrArray *nal_units)
{
  g_return_if_fail (cache != NULL);

  out_of_band_clear (cache);
  if (nal_units == NULL)
    return;

  for (guint i = 0; i < nal_units->len; i++)
    {
      GBytes *nal = g_ptr_array_index (nal_units, i);
      gsize size;
      const guint8 *data = g_bytes_get_data (nal, &size);
      gint kind = parameter_set_kind (cims_nal_classify_unit (cache->codec, data, size));

      if (kind < 0)
        {
          g_debug ("ignoring an out-of-band %s NAL unit of %" G_GSIZE_FORMAT
                   " bytes that is not a parameter set",
                   cims_codec_to_string (cache->codec), size);
          continue;
        }

      g_clear_pointer (&cache->out_of_band[kind], g_bytes_unref);
      cache->out_of_band[kind] = g_bytes_ref (nal);
    }
}

/* Drops the cache, the history and the in-band parameter sets. The
 * out-of-band ones stay because they come from the SDP, not the stream. */
void
cims_keyframe_cache_reset (CimsKeyframeCache *cache)
{
  g_return_if_fail (cache != NULL);

  cache_empty (cache);
  cache->has_access_unit = FALSE;
  cache->access_unit_has_keyframe = FALSE;
  cache->access_unit_flags = CIMS_NAL_FLAG_NONE;
  cache->has_epoch = FALSE;
  history_clear (cache);
  in_band_clear (cache);
}

static void
history_insert (CimsKeyframeCache *cache, CimsRtpPacket *packet)
{
  CimsRtpPacket **slot;

  if (cache->history == NULL || packet->is_synthetic)
    return;

  slot = &cache->history[cims_rtp_packet_get_seq (packet) & cache->history_mask];
  g_clear_pointer (slot, cims_rtp_packet_unref);
  *slot = cims_rtp_packet_ref (packet);
}

typedef struct {
  CimsKeyframeCache *cache;
  CimsRtpPacket *packet;
} InBandCollector;

static void
in_band_collect_cb (const guint8 *nal, gsize size, gpointer user_data)
{
  InBandCollector *collector = user_data;
  CimsKeyframeCache *cache = collector->cache;
  gint kind = parameter_set_kind (cims_nal_classify_unit (cache->codec, nal, size));
  InBandParameterSet *slot;

  if (kind < 0)
    return;

  slot = &cache->in_band[kind];
  g_clear_pointer (&slot->packet, cims_rtp_packet_unref);
  slot->packet = cims_rtp_packet_ref (collector->packet);
  slot->offset = (guint16) (nal - collector->packet->data);
  slot->size = (guint16) size;
}

/* NOTE: a parameter set split into FU fragments is not kept. Only those in
 * single NAL unit packets and STAP-A / AP units are. */
static void
in_band_collect (CimsKeyframeCache *cache, CimsRtpPacket *packet,
                 const guint8 *payload, gsize payload_size)
{
  InBandCollector collector = { cache, packet };

  cims_nal_foreach_unit (cache->codec, payload, payload_size, in_band_collect_cb, &collector);
}

/* Drops the first @count cached packets and shifts the indices into them. */
static void
cache_drop_front (CimsKeyframeCache *cache, guint count)
{
  if (count == 0)
    return;

  for (guint i = 0; i < count; i++)
    {
      CimsRtpPacket *dropped = g_ptr_array_index (cache->packets, i);

      cache->cached_bytes -= dropped->size;
    }
  g_ptr_array_remove_range (cache->packets, 0, count);

  cache->access_unit_start -= MIN (count, cache->access_unit_start);
  cache->parameter_set_run_start -= MIN (count, cache->parameter_set_run_start);
}

/* Starts a new access unit at the packet about to be appended. A keyframe in
 * it would start at the run of parameter-set-only packets right before it,
 * whatever their timestamp, or else at its own first packet. */
static void
access_unit_begin (CimsKeyframeCache *cache, guint32 timestamp)
{
  cache->has_access_unit = TRUE;
  cache->access_unit_timestamp = timestamp;
  cache->access_unit_has_keyframe = FALSE;

  if (cache->in_parameter_set_run)
    {
      cache->access_unit_start = cache->parameter_set_run_start;
      cache->access_unit_flags = cache->parameter_set_run_flags;
    }
  else
    {
      cache->access_unit_start = cache->packets->len;
      cache->access_unit_flags = CIMS_NAL_FLAG_NONE;
    }

  /* Without a keyframe nothing before a possible keyframe start is needed. */
  if (!cache->has_keyframe)
    cache_drop_front (cache, cache->access_unit_start);
}

static void
parameter_set_run_update (CimsKeyframeCache *cache, guint index, CimsNalFlags flags)
{
  gboolean is_parameter_set_only = (flags & CIMS_NAL_FLAG_PARAMETER_SET)
                                   && !(flags & CIMS_NAL_FLAG_KEYFRAME);

  if (!is_parameter_set_only)
    {
      cache->in_parameter_set_run = FALSE;
      return;
    }

  if (!cache->in_parameter_set_run)
    {
      cache->in_parameter_set_run = TRUE;
      cache->parameter_set_run_start = index;
      cache->parameter_set_run_flags = CIMS_NAL_FLAG_NONE;
    }
  cache->parameter_set_run_flags |= flags;
}

/* Makes the current access unit the latest keyframe: everything cached
 * before its start goes. */
static void
keyframe_begin (CimsKeyframeCache *cache)
{
  cache->access_unit_has_keyframe = TRUE;
  cache_drop_front (cache, cache->access_unit_start);
  cache->has_keyframe = TRUE;
  cache->keyframe_flags = cache->access_unit_flags;
  cache->keyframe_timestamp = cache->access_unit_timestamp;
}

static void
epoch_check (CimsKeyframeCache *cache, guint32 epoch)
{
  if (cache->has_epoch && cache->epoch == epoch)
    return;

  if (cache->has_epoch)
    {
      g_debug ("source epoch changed from %u to %u, resetting the keyframe cache",
               cache->epoch, epoch);
      cims_keyframe_cache_reset (cache);
    }
  cache->has_epoch = TRUE;
  cache->epoch = epoch;
}

/* A packet of another epoch than the previous ones resets the cache first,
 * as cims_keyframe_cache_reset() does. */
gboolean
cims_keyframe_cache_push (CimsKeyframeCache *cache, CimsRtpPacket *packet)
{
  const guint8 *payload;
  gsize payload_size;
  CimsNalFlags flags;
  guint32 timestamp;
  gboolean is_new_keyframe = FALSE;

  g_return_val_if_fail (cache != NULL, FALSE);
  g_return_val_if_fail (packet != NULL, FALSE);

  epoch_check (cache, packet->epoch);
  history_insert (cache, packet);

  payload = cims_rtp_packet_get_payload (packet, &payload_size);
  flags = cims_nal_classify (cache->codec, payload, payload_size);
  if (flags & CIMS_NAL_FLAG_PARAMETER_SET)
    in_band_collect (cache, packet, payload, payload_size);

  timestamp = cims_rtp_packet_get_timestamp (packet);
  if (!cache->has_access_unit || timestamp != cache->access_unit_timestamp)
    access_unit_begin (cache, timestamp);

  g_ptr_array_add (cache->packets, cims_rtp_packet_ref (packet));
  cache->cached_bytes += packet->size;
  cache->access_unit_flags |= flags;
  parameter_set_run_update (cache, cache->packets->len - 1, flags);

  if ((flags & CIMS_NAL_FLAG_KEYFRAME) && !cache->access_unit_has_keyframe)
    {
      keyframe_begin (cache);
      is_new_keyframe = TRUE;
    }

  if (cache->cached_bytes > cache->max_bytes)
    {
      g_debug ("keyframe cache over its %" G_GSIZE_FORMAT " bytes, emptied until the next keyframe",
               cache->max_bytes);
      cache_empty (cache);
      is_new_keyframe = FALSE;
    }

  return is_new_keyframe;
}

/* Returns the bytes of the parameter set of @kind to prepend, in-band when
 * one was seen in this epoch, else out-of-band, or NULL. (transfer none) */
static const guint8 *
parameter_set_get (CimsKeyframeCache *cache, ParameterSetKind kind, gsize *size)
{
  InBandParameterSet *in_band = &cache->in_band[kind];

  if (in_band->packet != NULL)
    {
      *size = in_band->size;
      return in_band->packet->data + in_band->offset;
    }

  if (cache->out_of_band[kind] != NULL)
    return g_bytes_get_data (cache->out_of_band[kind], size);

  *size = 0;

  return NULL;
}

/* Builds a single NAL unit packet (RFC 6184 section 5.6, RFC 7798 section
 * 4.4.1) with the payload type and SSRC of @first, marker 0, sequence number
 * @seq and RTP timestamp @timestamp. */
static CimsRtpPacket *
synthetic_packet_new (const CimsRtpPacket *first, guint16 seq, guint32 timestamp,
                      const guint8 *nal, gsize nal_size)
{
  guint8 data[CIMS_RTP_MAX_PACKET];
  CimsRtpPacket *packet;

  if (nal_size > CIMS_RTP_MAX_PACKET - RTP_HEADER_SIZE)
    return NULL;

  data[0] = 0x80;
  data[1] = cims_rtp_packet_get_payload_type (first);
  data[2] = seq >> 8;
  data[3] = seq & 0xff;
  data[4] = timestamp >> 24;
  data[5] = (timestamp >> 16) & 0xff;
  data[6] = (timestamp >> 8) & 0xff;
  data[7] = timestamp & 0xff;
  memcpy (data + 8, first->data + 8, 4);
  memcpy (data + RTP_HEADER_SIZE, nal, nal_size);

  packet = cims_rtp_packet_new (data, RTP_HEADER_SIZE + nal_size, first->epoch, first->arrival_us);
  packet->is_synthetic = TRUE;

  return packet;
}

/* NOTE: a parameter set longer than one RTP packet's payload is not sent,
 * because synthetic packets are never fragmented. */
static void
snapshot_add_parameter_sets (CimsKeyframeCache *cache, GPtrArray *snapshot)
{
  const CimsRtpPacket *first = g_ptr_array_index (cache->packets, 0);
  const guint8 *nals[N_PARAMETER_SETS];
  gsize nal_sizes[N_PARAMETER_SETS];
  guint n_nals = 0;
  guint16 seq;

  for (guint kind = 0; kind < N_PARAMETER_SETS; kind++)
    {
      gsize size;
      const guint8 *nal = parameter_set_get (cache, kind, &size);

      if (nal == NULL || size > CIMS_RTP_MAX_PACKET - RTP_HEADER_SIZE)
        continue;
      nals[n_nals] = nal;
      nal_sizes[n_nals] = size;
      n_nals++;
    }

  seq = cims_rtp_packet_get_seq (first) - n_nals;
  for (guint i = 0; i < n_nals; i++)
    g_ptr_array_add (snapshot, synthetic_packet_new (first, seq + i, cache->keyframe_timestamp,
                                                        nals[i], nal_sizes[i]));
}

static gboolean
keyframe_lacks_parameter_sets (CimsKeyframeCache *cache)
{
  CimsNalFlags required;

  switch (cache->codec)
    {
    case CIMS_CODEC_H264:
      required = CIMS_NAL_FLAG_SPS | CIMS_NAL_FLAG_PPS;
      break;
    case CIMS_CODEC_H265:
      required = CIMS_NAL_FLAG_VPS | CIMS_NAL_FLAG_SPS | CIMS_NAL_FLAG_PPS;
      break;
    case CIMS_CODEC_VP8:
    case CIMS_CODEC_UNKNOWN:
    default:
      return FALSE;
    }

  return (cache->keyframe_flags & required) != required;
}

/* When the keyframe lacks any of its parameter sets, all of them are
 * prepended in decoding order (VPS, SPS, PPS), since a PPS may need its SPS
 * to be parsed first. */
GPtrArray *
cims_keyframe_cache_snapshot (CimsKeyframeCache *cache)
{
  GPtrArray *snapshot;

  g_return_val_if_fail (cache != NULL, NULL);

  if (!cache->has_keyframe || cache->packets->len == 0)
    return g_ptr_array_new_with_free_func (packet_unref_cb);

  snapshot = g_ptr_array_new_full (cache->packets->len + N_PARAMETER_SETS, packet_unref_cb);
  if (keyframe_lacks_parameter_sets (cache))
    snapshot_add_parameter_sets (cache, snapshot);

  for (guint i = 0; i < cache->packets->len; i++)
    g_ptr_array_add (snapshot, cims_rtp_packet_ref (g_ptr_array_index (cache->packets, i)));

  return snapshot;
}

gboolean
cims_keyframe_cache_has_keyframe (CimsKeyframeCache *cache)
{
  g_return_val_if_fail (cache != NULL, FALSE);

  return cache->has_keyframe;
}

CimsRtpPacket *
cims_keyframe_cache_lookup (CimsKeyframeCache *cache, guint16 seq)
{
  CimsRtpPacket *packet;

  g_return_val_if_fail (cache != NULL, NULL);

  if (cache->history == NULL)
    return NULL;

  packet = cache->history[seq & cache->history_mask];
  if (packet == NULL || cims_rtp_packet_get_seq (packet) != seq)
    return NULL;

  return packet;
}

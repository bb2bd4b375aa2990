/* SPDX-License-Identifier: Apache-2.0 */
/* Codec-aware classification of RTP payloads without decoding: H.264
 * (RFC 6184), H.265 (RFC 7798) and VP8 (RFC 7741). Which packets to keep for
 * a joining viewer is decided in keyframe-cache.c. */
#include "pipelines/pipelines.h"

/* H.264 NAL unit types (ITU-T H.264 table 7-1, RFC 6184 table 1). */
#define H264_NAL_IDR 5
#define H264_NAL_SPS 7
#define H264_NAL_PPS 8
#define H264_NAL_SINGLE_LAST 23
#define H264_NAL_STAP_A 24
#define H264_NAL_FU_A 28

/* H.265 NAL unit types (ITU-T H.265 table 7-1, RFC 7798 section 4.4). */
#define H265_NAL_BLA_W_LP 16
#define H265_NAL_CRA 21
#define H265_NAL_VPS 32
#define H265_NAL_SPS 33
#define H265_NAL_PPS 34
#define H265_NAL_SINGLE_LAST 47
#define H265_NAL_AP 48
#define H265_NAL_FU 49
#define H265_NAL_HEADER_SIZE 2

/* FU header bits, the same in FU-A and H.265 FU. */
#define FU_START_BIT 0x80
#define FU_END_BIT 0x40

static CimsNalFlags
h264_classify_type (guint type)
{
  switch (type)
    {
    case H264_NAL_IDR:
      return CIMS_NAL_FLAG_KEYFRAME;
    case H264_NAL_SPS:
      return CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_SPS;
    case H264_NAL_PPS:
      return CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_PPS;
    default:
      return CIMS_NAL_FLAG_NONE;
    }
}

/* IRAP pictures 16..21 (BLA, IDR, CRA) can start decoding. Types 22 and 23
 * are reserved IRAP types that no encoder sends, so they are left out. */
static CimsNalFlags
h265_classify_type (guint type)
{
  if (type >= H265_NAL_BLA_W_LP && type <= H265_NAL_CRA)
    return CIMS_NAL_FLAG_KEYFRAME;

  switch (type)
    {
    case H265_NAL_VPS:
      return CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_VPS;
    case H265_NAL_SPS:
      return CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_SPS;
    case H265_NAL_PPS:
      return CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_PPS;
    default:
      return CIMS_NAL_FLAG_NONE;
    }
}

static guint
h265_nal_type (guint8 first_byte)
{
  return (first_byte >> 1) & 0x3f;
}

CimsNalFlags
cims_nal_classify_unit (CimsCodec codec, const guint8 *nal, gsize size)
{
  if (nal == NULL)
    return CIMS_NAL_FLAG_NONE;

  switch (codec)
    {
    case CIMS_CODEC_H264:
      if (size < 1)
        return CIMS_NAL_FLAG_NONE;
      return h264_classify_type (nal[0] & 0x1f);
    case CIMS_CODEC_H265:
      if (size < H265_NAL_HEADER_SIZE)
        return CIMS_NAL_FLAG_NONE;
      return h265_classify_type (h265_nal_type (nal[0]));
    case CIMS_CODEC_VP8:
    case CIMS_CODEC_UNKNOWN:
    default:
      return CIMS_NAL_FLAG_NONE;
    }
}

/* Walks the units of a STAP-A (after its 1-byte header) or an AP (after its
 * 2-byte header). Each unit is a 16-bit big-endian size followed by the NAL
 * unit, which contains at least its own NAL header. DONL/DOND fields of an
 * AP are not expected. */
static gboolean
aggregation_foreach_unit (const guint8 *payload, gsize size, gsize offset,
                          gsize min_unit_size, CimsNalUnitFunc func, gpointer user_data)
{
  if (offset >= size)
    return FALSE;

  while (offset < size)
    {
      gsize unit_size;

      if (size - offset < 2)
        return FALSE;
      unit_size = ((gsize) payload[offset] << 8) | payload[offset + 1];
      offset += 2;

      if (unit_size < min_unit_size || unit_size > size - offset)
        return FALSE;
      func (payload + offset, unit_size, user_data);
      offset += unit_size;
    }

  return TRUE;
}

/* NOTE: H.265 APs are read as sent with sprop-max-don-diff=0, without
 * DONL/DOND fields. The APs of a stream that interleaves NAL units are
 * misread, so they are reported as malformed or with the wrong types. */
gboolean
cims_nal_foreach_unit (CimsCodec codec, const guint8 *payload, gsize size,
                       CimsNalUnitFunc func, gpointer user_data)
{
  guint type;

  g_return_val_if_fail (func != NULL, FALSE);

  if (payload == NULL)
    return FALSE;

  if (codec == CIMS_CODEC_H264)
    {
      if (size < 1)
        return FALSE;
      type = payload[0] & 0x1f;
      if (type >= 1 && type <= H264_NAL_SINGLE_LAST)
        func (payload, size, user_data);
      else if (type == H264_NAL_STAP_A)
        return aggregation_foreach_unit (payload, size, 1, 1, func, user_data);

      return TRUE;
    }

  if (codec == CIMS_CODEC_H265)
    {
      if (size < H265_NAL_HEADER_SIZE)
        return FALSE;
      type = h265_nal_type (payload[0]);
      if (type <= H265_NAL_SINGLE_LAST)
        func (payload, size, user_data);
      else if (type == H265_NAL_AP)
        return aggregation_foreach_unit (payload, size, H265_NAL_HEADER_SIZE,
                                         H265_NAL_HEADER_SIZE, func, user_data);

      return TRUE;
    }

  return FALSE;
}

typedef struct {
  CimsCodec codec;
  CimsNalFlags flags;
} ClassifyAccumulator;

static void
classify_unit_cb (const guint8 *nal, gsize size, gpointer user_data)
{
  ClassifyAccumulator *accumulator = user_data;

  accumulator->flags |= cims_nal_classify_unit (accumulator->codec, nal, size);
}

/* Classifies an FU-A or H.265 FU whose FU header is at @fu_header_offset.
 * RFC 6184 section 5.8 and RFC 7798 section 4.4.3 forbid an FU with both S
 * and E set. Such a packet is reported as both rather than dropped. */
static CimsNalFlags
fragment_classify (CimsCodec codec, const guint8 *payload, gsize size, gsize fu_header_offset)
{
  CimsNalFlags flags = CIMS_NAL_FLAG_FRAGMENT;
  guint8 fu_header;
  guint type;

  if (size <= fu_header_offset)
    return CIMS_NAL_FLAG_NONE;

  fu_header = payload[fu_header_offset];
  if (codec == CIMS_CODEC_H264)
    type = fu_header & 0x1f;
  else
    type = fu_header & 0x3f;

  if (fu_header & FU_START_BIT)
    {
      flags |= CIMS_NAL_FLAG_FRAGMENT_START;
      flags |= codec == CIMS_CODEC_H264 ? h264_classify_type (type) : h265_classify_type (type);
    }
  if (fu_header & FU_END_BIT)
    flags |= CIMS_NAL_FLAG_FRAGMENT_END;

  return flags;
}

/* STAP-B, MTAP16, MTAP24 and FU-B belong to the interleaved mode, which the
 * hub does not negotiate, so they are reported as NONE. */
static CimsNalFlags
h264_classify (const guint8 *payload, gsize size)
{
  ClassifyAccumulator accumulator = { CIMS_CODEC_H264, CIMS_NAL_FLAG_NONE };
  guint type;

  if (size < 1)
    return CIMS_NAL_FLAG_NONE;

  type = payload[0] & 0x1f;
  if (type == H264_NAL_FU_A)
    return fragment_classify (CIMS_CODEC_H264, payload, size, 1);

  if (!cims_nal_foreach_unit (CIMS_CODEC_H264, payload, size, classify_unit_cb, &accumulator))
    return CIMS_NAL_FLAG_NONE;

  return accumulator.flags;
}

/* NOTE: H.265 PACI packets (type 50) are not looked into, so a keyframe sent
 * inside one is not detected. */
static CimsNalFlags
h265_classify (const guint8 *payload, gsize size)
{
  ClassifyAccumulator accumulator = { CIMS_CODEC_H265, CIMS_NAL_FLAG_NONE };
  guint type;

  if (size < H265_NAL_HEADER_SIZE)
    return CIMS_NAL_FLAG_NONE;

  type = h265_nal_type (payload[0]);
  if (type == H265_NAL_FU)
    return fragment_classify (CIMS_CODEC_H265, payload, size, H265_NAL_HEADER_SIZE);

  if (!cims_nal_foreach_unit (CIMS_CODEC_H265, payload, size, classify_unit_cb, &accumulator))
    return CIMS_NAL_FLAG_NONE;

  return accumulator.flags;
}

/* Skips the VP8 payload descriptor of RFC 7741 section 4.2. Its first byte
 * is X R N S R PID. When X is set, a byte I L T K follows, then the fields
 * those bits announce: picture ID (two bytes when its M bit is set),
 * TL0PICIDX, and one byte shared by TID and KEYIDX.
 * The VP8 payload header comes next only when S is set and PID is 0. It
 * starts with the frame tag, whose lowest bit P is 0 for a keyframe
 * (RFC 6386 section 9.1). */
static CimsNalFlags
vp8_classify (const guint8 *payload, gsize size)
{
  gsize offset = 1;
  guint8 descriptor;

  if (size < 1)
    return CIMS_NAL_FLAG_NONE;

  descriptor = payload[0];
  if (descriptor & 0x80)
    {
      guint8 extension;

      if (size < 2)
        return CIMS_NAL_FLAG_NONE;
      extension = payload[1];
      offset = 2;

      if (extension & 0x80)
        {
          if (size <= offset)
            return CIMS_NAL_FLAG_NONE;
          offset += (payload[offset] & 0x80) ? 2 : 1;
        }
      if (extension & 0x40)
        offset += 1;
      if (extension & 0x30)
        offset += 1;
    }

  if (!(descriptor & 0x10) || (descriptor & 0x0f) != 0)
    return CIMS_NAL_FLAG_NONE;

  /* The frame tag is 3 bytes long, so a shorter payload is malformed. */
  if (offset > size || size - offset < 3)
    return CIMS_NAL_FLAG_NONE;

  if ((payload[offset] & 0x01) == 0)
    return CIMS_NAL_FLAG_KEYFRAME;

  return CIMS_NAL_FLAG_NONE;
}

CimsNalFlags
cims_nal_classify (CimsCodec codec, const guint8 *payload, gsize size)
{
  if (payload == NULL)
    return CIMS_NAL_FLAG_NONE;

  switch (codec)
    {
    case CIMS_CODEC_H264:
      return h264_classify (payload, size);
    case CIMS_CODEC_H265:
      return h265_classify (payload, size);
    case CIMS_CODEC_VP8:
      return vp8_classify (payload, size);
    case CIMS_CODEC_UNKNOWN:
    default:
      return CIMS_NAL_FLAG_NONE;
    }
}

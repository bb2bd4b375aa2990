/* SPDX-License-Identifier: Apache-2.0 */
/* Reads the coded picture size from an H.264 or H.265 sequence parameter
 * set, cropping window included. Only the fields before the size are parsed;
 * VUI and everything after it are ignored. */
#include "pipelines/pipelines.h"

#include <string.h>

/* An SPS is a few dozen bytes; one with long scaling lists stays far below. */
#define MAX_RBSP_SIZE 512

typedef struct {
  const guint8 *data;
  gsize size_bits;
  gsize position;
  gboolean is_overrun;
} BitReader;

static guint
bits_read (BitReader *reader, guint n_bits)
{
  guint value = 0;

  for (guint i = 0; i < n_bits; i++) {
    if (reader->position >= reader->size_bits) {
      reader->is_overrun = TRUE;
      return 0;
    }
    value = value << 1 | ((reader->data[reader->position / 8] >> (7 - reader->position % 8)) & 1);
    reader->position++;
  }

  return value;
}

static void
bits_skip (BitReader *reader, gsize n_bits)
{
  reader->position += n_bits;
  if (reader->position > reader->size_bits)
    reader->is_overrun = TRUE;
}

/* Unsigned exp-Golomb code ue(v) (H.264 section 9.1). */
static guint
bits_read_ue (BitReader *reader)
{
  guint n_zeros = 0;

  while (bits_read (reader, 1) == 0 && !reader->is_overrun) {
    if (++n_zeros > 31) {
      reader->is_overrun = TRUE;
      return 0;
    }
  }

  return ((1u << n_zeros) - 1) + bits_read (reader, n_zeros);
}

static gint
bits_read_se (BitReader *reader)
{
  guint code = bits_read_ue (reader);

  return (code & 1) ? (gint) ((code + 1) / 2) : -(gint) (code / 2);
}

/* Copies the NAL unit's payload without emulation prevention bytes
 * (00 00 03 becomes 00 00). Returns the RBSP size. */
static gsize
rbsp_extract (const guint8 *nal, gsize size, guint8 *rbsp)
{
  gsize n_zeros = 0;
  gsize out = 0;

  for (gsize i = 0; i < size && out < MAX_RBSP_SIZE; i++) {
    if (n_zeros >= 2 && nal[i] == 3) {
      n_zeros = 0;
      continue;
    }
    n_zeros = nal[i] == 0 ? n_zeros + 1 : 0;
    rbsp[out++] = nal[i];
  }

  return out;
}

/* Skips scaling_list() entries of an H.264 SPS (section 7.3.2.1.1.1). */
static void
h264_scaling_list_skip (BitReader *reader, guint list_size)
{
  gint last_scale = 8;
  gint next_scale = 8;

  for (guint j = 0; j < list_size && !reader->is_overrun; j++) {
    if (next_scale != 0)
      next_scale = (last_scale + bits_read_se (reader) + 256) % 256;
    last_scale = next_scale == 0 ? last_scale : next_scale;
  }
}

static gboolean
h264_profile_has_chroma_info (guint profile_idc)
{
  static const guint profiles[] = { 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135 };

  for (gsize i = 0; i < G_N_ELEMENTS (profiles); i++)
    if (profiles[i] == profile_idc)
      return TRUE;

  return FALSE;
}

/* Reads chroma_format_idc and skips the bit depths and scaling lists. */
static guint
h264_chroma_info_read (BitReader *reader)
{
  guint chroma_format_idc = bits_read_ue (reader);

  if (chroma_format_idc == 3)
    bits_skip (reader, 1);                 /* separate_colour_plane_flag */
  bits_read_ue (reader);                   /* bit_depth_luma_minus8 */
  bits_read_ue (reader);                   /* bit_depth_chroma_minus8 */
  bits_skip (reader, 1);                   /* qpprime_y_zero_transform_bypass_flag */

  if (bits_read (reader, 1)) {             /* seq_scaling_matrix_present_flag */
    guint n_lists = chroma_format_idc != 3 ? 8 : 12;

    for (guint i = 0; i < n_lists; i++)
      if (bits_read (reader, 1))
        h264_scaling_list_skip (reader, i < 6 ? 16 : 64);
  }

  return chroma_format_idc;
}

static void
h264_pic_order_skip (BitReader *reader)
{
  guint pic_order_cnt_type = bits_read_ue (reader);

  if (pic_order_cnt_type == 0) {
    bits_read_ue (reader);                 /* log2_max_pic_order_cnt_lsb_minus4 */
  } else if (pic_order_cnt_type == 1) {
    guint n_cycle;

    bits_skip (reader, 1);                 /* delta_pic_order_always_zero_flag */
    bits_read_se (reader);                 /* offset_for_non_ref_pic */
    bits_read_se (reader);                 /* offset_for_top_to_bottom_field */
    n_cycle = bits_read_ue (reader);
    for (guint i = 0; i < n_cycle && !reader->is_overrun; i++)
      bits_read_se (reader);
  }
}

/* H.264 section 7.3.2.1.1; cropping units from table 6-1 and (7-19)-(7-22). */
static gboolean
h264_size_parse (BitReader *reader, guint *width, guint *height)
{
  guint profile_idc = bits_read (reader, 8);
  guint chroma_format_idc = 1;
  guint width_mbs, height_map_units, frame_mbs_only;
  guint crop_unit_x, crop_unit_y;
  guint crop[4] = { 0 };

  bits_skip (reader, 16);                  /* constraint flags, level_idc */
  bits_read_ue (reader);                   /* seq_parameter_set_id */
  if (h264_profile_has_chroma_info (profile_idc))
    chroma_format_idc = h264_chroma_info_read (reader);

  bits_read_ue (reader);                   /* log2_max_frame_num_minus4 */
  h264_pic_order_skip (reader);
  bits_read_ue (reader);                   /* max_num_ref_frames */
  bits_skip (reader, 1);                   /* gaps_in_frame_num_value_allowed_flag */
  width_mbs = bits_read_ue (reader) + 1;
  height_map_units = bits_read_ue (reader) + 1;
  frame_mbs_only = bits_read (reader, 1);
  if (!frame_mbs_only)
    bits_skip (reader, 1);                 /* mb_adaptive_frame_field_flag */
  bits_skip (reader, 1);                   /* direct_8x8_inference_flag */
  if (bits_read (reader, 1))
    for (guint i = 0; i < 4; i++)
      crop[i] = bits_read_ue (reader);     /* left, right, top, bottom */

  if (reader->is_overrun)
    return FALSE;

  crop_unit_x = chroma_format_idc == 1 || chroma_format_idc == 2 ? 2 : 1;
  crop_unit_y = (chroma_format_idc == 1 ? 2 : 1) * (2 - frame_mbs_only);
  *width = width_mbs * 16 - crop_unit_x * (crop[0] + crop[1]);
  *height = (2 - frame_mbs_only) * height_map_units * 16 - crop_unit_y * (crop[2] + crop[3]);
  return TRUE;
}

/* Skips profile_tier_level(1, max_sub_layers_minus1) (H.265 section 7.3.3). */
static void
h265_profile_tier_level_skip (BitReader *reader, guint max_sub_layers_minus1)
{
  gboolean has_profile[8] = { FALSE };
  gboolean has_level[8] = { FALSE };

  bits_skip (reader, 88 + 8);              /* general profile fields, general_level_idc */
  for (guint i = 0; i < max_sub_layers_minus1; i++) {
    has_profile[i] = bits_read (reader, 1);
    has_level[i] = bits_read (reader, 1);
  }
  if (max_sub_layers_minus1 > 0)
    bits_skip (reader, 2 * (8 - max_sub_layers_minus1));
  for (guint i = 0; i < max_sub_layers_minus1; i++)
    bits_skip (reader, (has_profile[i] ? 88 : 0) + (has_level[i] ? 8 : 0));
}

/* H.265 section 7.3.2.2; the conformance window is in chroma units
 * (SubWidthC, SubHeightC from table 6-1). */
static gboolean
h265_size_parse (BitReader *reader, guint *width, guint *height)
{
  guint max_sub_layers_minus1;
  guint chroma_format_idc;
  guint luma_width, luma_height;
  guint window[4] = { 0 };
  guint sub_width, sub_height;

  bits_skip (reader, 4);                   /* sps_video_parameter_set_id */
  max_sub_layers_minus1 = bits_read (reader, 3);
  bits_skip (reader, 1);                   /* sps_temporal_id_nesting_flag */
  if (max_sub_layers_minus1 > 6)
    return FALSE;
  h265_profile_tier_level_skip (reader, max_sub_layers_minus1);
  bits_read_ue (reader);                   /* sps_seq_parameter_set_id */
  chroma_format_idc = bits_read_ue (reader);
  if (chroma_format_idc == 3)
    bits_skip (reader, 1);                 /* separate_colour_plane_flag */
  luma_width = bits_read_ue (reader);
  luma_height = bits_read_ue (reader);
  if (bits_read (reader, 1))
    for (guint i = 0; i < 4; i++)
      window[i] = bits_read_ue (reader);   /* left, right, top, bottom */

  if (reader->is_overrun)
    return FALSE;

  sub_width = chroma_format_idc == 1 || chroma_format_idc == 2 ? 2 : 1;
  sub_height = chroma_format_idc == 1 ? 2 : 1;
  *width = luma_width - sub_width * (window[0] + window[1]);
  *height = luma_height - sub_height * (window[2] + window[3]);
  return TRUE;
}

gboolean
cims_sps_parse_size (CimsCodec codec, const guint8 *nal, gsize size, guint *width,
                                 guint *height)
{
  guint8 rbsp[MAX_RBSP_SIZE];
  gsize header_size = codec == CIMS_CODEC_H265 ? 2 : 1;
  BitReader reader = { 0 };

  if (size <= header_size)
    return FALSE;

  reader.data = rbsp;
  reader.size_bits = rbsp_extract (nal + header_size, size - header_size, rbsp) * 8;

  if (codec == CIMS_CODEC_H264)
    return h264_size_parse (&reader, width, height);
  if (codec == CIMS_CODEC_H265)
    return h265_size_parse (&reader, width, height);

  return FALSE;
}

guint32
cims_h264_sps_profile_level_id (const guint8 *nal, gsize size)
{
  /* The three bytes after the NAL header: profile_idc, the constraint flags
   * and level_idc, in the order of profile-level-id (RFC 6184). */
  if (size < 4 || (nal[0] & 0x1f) != 7)
    return 0;

  return ((guint32) nal[1] << 16) | ((guint32) nal[2] << 8) | nal[3];
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the codec-aware classification of H.264, H.265 and VP8 RTP
 * payloads, written out byte by byte. */
#include "pipelines/pipelines.h"

#include <string.h>

/* Classifies a heap copy of exactly @size bytes, so that a read past the end
 * is caught by AddressSanitizer or valgrind. */
static CimsNalFlags
classify_exact (CimsCodec codec, const guint8 *payload, gsize size)
{
  g_autofree guint8 *copy = g_memdup2 (payload, size);

  return cims_nal_classify (codec, copy, size);
}

#define CLASSIFY(codec, bytes) classify_exact ((codec), (const guint8 *) (bytes), sizeof (bytes) - 1)

static void
test_nal_classify_h264_single (void)
{
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x65\x88\x84\x21"), ==, CIMS_NAL_FLAG_KEYFRAME);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x67\x42\x00\x1f"), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_SPS);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x68\xce\x3c\x80"), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_PPS);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x41\x9a\x02"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x06\x05\x10"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x65"), ==, CIMS_NAL_FLAG_KEYFRAME);
  g_assert_cmpuint (cims_nal_classify (CIMS_CODEC_H264, (const guint8 *) "\x65", 0), ==,
                    CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (cims_nal_classify (CIMS_CODEC_H264, NULL, 0), ==, CIMS_NAL_FLAG_NONE);
}

static void
test_nal_classify_h264_stap_a (void)
{
  /* STAP-A: SPS (4 bytes), PPS (4 bytes), IDR (3 bytes). */
  static const char stap[] = "\x78"
                             "\x00\x04\x67\x42\x00\x1f"
                             "\x00\x04\x68\xce\x3c\x80"
                             "\x00\x03\x65\x88\x84";
  static const char stap_without_idr[] = "\x18"
                                         "\x00\x04\x67\x42\x00\x1f"
                                         "\x00\x02\x06\x05";

  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, stap), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_SPS | CIMS_NAL_FLAG_PPS
                    | CIMS_NAL_FLAG_KEYFRAME);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, stap_without_idr), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_SPS);
}

static void
test_nal_classify_h264_stap_a_truncated (void)
{
  static const struct {
    const char *name;
    const char *bytes;
    gsize size;
  } cases[] = {
    { "header only", "\x78", 1 },
    { "unit longer than the packet", "\x78\x00\x05\x65\x88\x84", 6 },
    { "second unit longer than the packet", "\x78\x00\x01\x67\x00\x09\x65\x88", 8 },
    { "one byte of a size field", "\x78\x00\x01\x65\x00", 5 },
    { "zero-size unit", "\x78\x00\x00\x00\x01\x65", 6 },
    { "size field at the very end", "\x78\x00\x01\x65\x00\x04", 6 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("case: %s", cases[i].name);
      g_assert_cmpuint (classify_exact (CIMS_CODEC_H264, (const guint8 *) cases[i].bytes, cases[i].size),
                        ==, CIMS_NAL_FLAG_NONE);
    }
}

static void
test_nal_classify_h264_fu_a (void)
{
  /* FU indicator 0x7c (NRI 3, type 28), then the FU header: S/E bits and type 5. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x7c\x85\x88\x84"), ==,
                    CIMS_NAL_FLAG_FRAGMENT | CIMS_NAL_FLAG_FRAGMENT_START | CIMS_NAL_FLAG_KEYFRAME);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x7c\x05\x11\x22"), ==, CIMS_NAL_FLAG_FRAGMENT);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x7c\x45\x11\x22"), ==,
                    CIMS_NAL_FLAG_FRAGMENT | CIMS_NAL_FLAG_FRAGMENT_END);

  /* A non-IDR slice start, and a middle fragment of an IDR, are not keyframes. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x5c\x81\x9a\x00"), ==,
                    CIMS_NAL_FLAG_FRAGMENT | CIMS_NAL_FLAG_FRAGMENT_START);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x7c\x87\x42\x00"), ==,
                    CIMS_NAL_FLAG_FRAGMENT | CIMS_NAL_FLAG_FRAGMENT_START
                    | CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_SPS);

  /* An FU indicator without its FU header is malformed. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x7c"), ==, CIMS_NAL_FLAG_NONE);
}

static void
test_nal_classify_h264_ignores_interleaved (void)
{
  /* STAP-B (25), MTAP16 (26), MTAP24 (27), FU-B (29) hiding an IDR. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x79\x00\x01\x00\x03\x65\x88\x84"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x7a\x00\x01\x00\x03\x65\x88\x84"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x7b\x00\x01\x00\x03\x65\x88\x84"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H264, "\x7d\x85\x00\x01\x88"), ==, CIMS_NAL_FLAG_NONE);
}

static void
test_nal_classify_h265_single (void)
{
  /* Two-byte NAL header: type in bits 1..6 of the first byte, TID 1. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x40\x01\x0c"), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_VPS);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x42\x01\x01"), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_SPS);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x44\x01\xc1"), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_PPS);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x26\x01\xaf"), ==, CIMS_NAL_FLAG_KEYFRAME); /* IDR_W_RADL */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x28\x01\xaf"), ==, CIMS_NAL_FLAG_KEYFRAME); /* IDR_N_LP */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x2a\x01\xaf"), ==, CIMS_NAL_FLAG_KEYFRAME); /* CRA */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x20\x01\xaf"), ==, CIMS_NAL_FLAG_KEYFRAME); /* BLA_W_LP */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x02\x01\xd0"), ==, CIMS_NAL_FLAG_NONE);     /* TRAIL_R */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x2c\x01\xaf"), ==, CIMS_NAL_FLAG_NONE);     /* reserved 22 */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x26"), ==, CIMS_NAL_FLAG_NONE);
}

static void
test_nal_classify_h265_ap (void)
{
  /* AP (type 48, header 0x60 0x01) with VPS, SPS, PPS. */
  static const char ap[] = "\x60\x01"
                           "\x00\x03\x40\x01\x0c"
                           "\x00\x03\x42\x01\x01"
                           "\x00\x03\x44\x01\xc1";
  static const char ap_with_cra[] = "\x60\x01"
                                    "\x00\x02\x4e\x01"
                                    "\x00\x03\x2a\x01\xaf";
  static const char ap_truncated[] = "\x60\x01"
                                     "\x00\x03\x40\x01\x0c"
                                     "\x00\x07\x42\x01\x01";
  static const char ap_short_unit[] = "\x60\x01"
                                      "\x00\x01\x40";

  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, ap), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_VPS | CIMS_NAL_FLAG_SPS | CIMS_NAL_FLAG_PPS);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, ap_with_cra), ==, CIMS_NAL_FLAG_KEYFRAME);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, ap_truncated), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, ap_short_unit), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x60\x01"), ==, CIMS_NAL_FLAG_NONE);
}

static void
test_nal_classify_h265_fu (void)
{
  /* FU (type 49, header 0x62 0x01), FU header S/E bits and type 19. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x62\x01\x93\xaf\x00"), ==,
                    CIMS_NAL_FLAG_FRAGMENT | CIMS_NAL_FLAG_FRAGMENT_START | CIMS_NAL_FLAG_KEYFRAME);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x62\x01\x13\x11"), ==, CIMS_NAL_FLAG_FRAGMENT);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x62\x01\x53\x11"), ==,
                    CIMS_NAL_FLAG_FRAGMENT | CIMS_NAL_FLAG_FRAGMENT_END);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x62\x01\x81\xd0"), ==,
                    CIMS_NAL_FLAG_FRAGMENT | CIMS_NAL_FLAG_FRAGMENT_START);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_H265, "\x62\x01"), ==, CIMS_NAL_FLAG_NONE);
}

static void
test_nal_classify_vp8_keyframe (void)
{
  /* Descriptor S=1 PID=0, frame tag with P=0, then the keyframe start code. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x10\x50\x42\x00\x9d\x01\x2a"), ==, CIMS_NAL_FLAG_KEYFRAME);
  /* The same with X, I (two-byte picture ID), L, T and K set. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x90\xf0\x81\x23\x05\x40\x50\x42\x00\x9d\x01\x2a"), ==,
                    CIMS_NAL_FLAG_KEYFRAME);
  /* X with K only: one TID/KEYIDX byte, whose lowest bit is not the P bit. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x90\x10\x41\x50\x42\x00"), ==, CIMS_NAL_FLAG_KEYFRAME);
  /* X with a one-byte picture ID only. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x90\x80\x23\x50\x42\x00"), ==, CIMS_NAL_FLAG_KEYFRAME);
}

static void
test_nal_classify_vp8_not_keyframe (void)
{
  /* Interframe: P=1. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x10\x51\x42\x00"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x90\x10\x40\x51\x42\x00"), ==, CIMS_NAL_FLAG_NONE);
  /* Not the start of a partition (S=0), so no frame tag to read. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x00\x50\x42\x00"), ==, CIMS_NAL_FLAG_NONE);
  /* Start of partition 1, not of the frame. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x11\x50\x42\x00"), ==, CIMS_NAL_FLAG_NONE);
  /* Truncated: the frame tag is cut, or the extension runs past the end. */
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x10\x50\x42"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x90\xf0\x81"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x90\x80"), ==, CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (CLASSIFY (CIMS_CODEC_VP8, "\x90"), ==, CIMS_NAL_FLAG_NONE);
}

static void
count_unit_cb (const guint8 *nal, gsize size, gpointer user_data)
{
  GArray *sizes = user_data;
  guint unit_size = size;

  g_array_append_val (sizes, unit_size);
}

static void
test_nal_classify_foreach_unit (void)
{
  static const char stap[] = "\x78"
                             "\x00\x04\x67\x42\x00\x1f"
                             "\x00\x02\x68\xce"
                             "\x00\x03\x65\x88\x84";
  g_autoptr (GArray) sizes = g_array_new (FALSE, FALSE, sizeof (guint));

  g_assert_true (cims_nal_foreach_unit (CIMS_CODEC_H264, (const guint8 *) stap, sizeof stap - 1,
                                        count_unit_cb, sizes));
  g_assert_cmpuint (sizes->len, ==, 3);
  g_assert_cmpuint (g_array_index (sizes, guint, 0), ==, 4);
  g_assert_cmpuint (g_array_index (sizes, guint, 1), ==, 2);
  g_assert_cmpuint (g_array_index (sizes, guint, 2), ==, 3);

  g_array_set_size (sizes, 0);
  g_assert_true (cims_nal_foreach_unit (CIMS_CODEC_H264, (const guint8 *) "\x7c\x85\x88", 3,
                                        count_unit_cb, sizes));
  g_assert_cmpuint (sizes->len, ==, 0);

  g_assert_false (cims_nal_foreach_unit (CIMS_CODEC_H264, (const guint8 *) "\x78\x00\x09\x65", 4,
                                         count_unit_cb, sizes));
}

static void
test_nal_classify_unit (void)
{
  g_assert_cmpuint (cims_nal_classify_unit (CIMS_CODEC_H264, (const guint8 *) "\x67\x42", 2), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_SPS);
  g_assert_cmpuint (cims_nal_classify_unit (CIMS_CODEC_H265, (const guint8 *) "\x40\x01", 2), ==,
                    CIMS_NAL_FLAG_PARAMETER_SET | CIMS_NAL_FLAG_VPS);
  g_assert_cmpuint (cims_nal_classify_unit (CIMS_CODEC_H265, (const guint8 *) "\x40", 1), ==,
                    CIMS_NAL_FLAG_NONE);
  g_assert_cmpuint (cims_nal_classify_unit (CIMS_CODEC_VP8, (const guint8 *) "\x67\x42", 2), ==,
                    CIMS_NAL_FLAG_NONE);
}

/* Classifies every prefix of pseudo-random payloads, each in a heap block of
 * exactly its size, so a read past the end shows under AddressSanitizer. The
 * first byte cycles through all packet types of each codec. */
static void
test_nal_classify_random_bytes (void)
{
  static const CimsCodec codecs[] = { CIMS_CODEC_H264, CIMS_CODEC_H265, CIMS_CODEC_VP8 };
  g_autoptr (GRand) rand = g_rand_new_with_seed (20240611);
  guint8 payload[64];

  for (guint round = 0; round < 2000; round++)
    {
      for (guint i = 0; i < sizeof payload; i++)
        payload[i] = g_rand_int_range (rand, 0, 256);
      /* Small sizes make aggregation lengths land near the end. */
      payload[2] = 0;
      payload[1] = round & 0x7e;
      payload[0] = round & 0xff;

      for (guint c = 0; c < G_N_ELEMENTS (codecs); c++)
        for (gsize size = 0; size <= sizeof payload; size++)
          classify_exact (codecs[c], payload, size);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/pipelines/nal-classify/h264-single", test_nal_classify_h264_single);
  g_test_add_func ("/pipelines/nal-classify/h264-stap-a", test_nal_classify_h264_stap_a);
  g_test_add_func ("/pipelines/nal-classify/h264-stap-a-truncated", test_nal_classify_h264_stap_a_truncated);
  g_test_add_func ("/pipelines/nal-classify/h264-fu-a", test_nal_classify_h264_fu_a);
  g_test_add_func ("/pipelines/nal-classify/h264-ignores-interleaved", test_nal_classify_h264_ignores_interleaved);
  g_test_add_func ("/pipelines/nal-classify/h265-single", test_nal_classify_h265_single);
  g_test_add_func ("/pipelines/nal-classify/h265-ap", test_nal_classify_h265_ap);
  g_test_add_func ("/pipelines/nal-classify/h265-fu", test_nal_classify_h265_fu);
  g_test_add_func ("/pipelines/nal-classify/vp8-keyframe", test_nal_classify_vp8_keyframe);
  g_test_add_func ("/pipelines/nal-classify/vp8-not-keyframe", test_nal_classify_vp8_not_keyframe);
  g_test_add_func ("/pipelines/nal-classify/foreach-unit", test_nal_classify_foreach_unit);
  g_test_add_func ("/pipelines/nal-classify/unit", test_nal_classify_unit);
  g_test_add_func ("/pipelines/nal-classify/random-bytes", test_nal_classify_random_bytes);

  return g_test_run ();
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of RTP packet validation and header accessors, on packets
 * built byte by byte. */
#include "pipelines/pipelines.h"

#include <string.h>

/* Writes a 12-byte RTP header: version 2, payload type 96. */
static void
write_header (guint8 *data, guint16 seq, guint32 timestamp, guint32 ssrc, gboolean marker)
{
  data[0] = 0x80;
  data[1] = (marker ? 0x80 : 0x00) | 96;
  data[2] = seq >> 8;
  data[3] = seq & 0xff;
  data[4] = timestamp >> 24;
  data[5] = (timestamp >> 16) & 0xff;
  data[6] = (timestamp >> 8) & 0xff;
  data[7] = timestamp & 0xff;
  data[8] = ssrc >> 24;
  data[9] = (ssrc >> 16) & 0xff;
  data[10] = (ssrc >> 8) & 0xff;
  data[11] = ssrc & 0xff;
}

static void
test_rtp_packet_parses_plain_header (void)
{
  guint8 data[16];
  g_autoptr (CimsRtpPacket) packet = NULL;
  const guint8 *payload;
  gsize payload_size = 99;

  write_header (data, 0xabcd, 0x01020304, 0xdeadbeef, TRUE);
  memcpy (data + 12, "\x65\x88\x84\x00", 4);

  packet = cims_rtp_packet_new (data, sizeof data, 7, 12345);
  g_assert_nonnull (packet);
  g_assert_cmpuint (packet->size, ==, 16);
  g_assert_cmpuint (packet->epoch, ==, 7);
  g_assert_cmpint (packet->arrival_us, ==, 12345);
  g_assert_false (packet->is_synthetic);
  g_assert_cmpuint (cims_rtp_packet_get_seq (packet), ==, 0xabcd);
  g_assert_cmpuint (cims_rtp_packet_get_timestamp (packet), ==, 0x01020304);
  g_assert_cmpuint (cims_rtp_packet_get_ssrc (packet), ==, 0xdeadbeef);
  g_assert_true (cims_rtp_packet_get_marker (packet));
  g_assert_cmpuint (cims_rtp_packet_get_payload_type (packet), ==, 96);

  payload = cims_rtp_packet_get_payload (packet, &payload_size);
  g_assert_nonnull (payload);
  g_assert_cmpuint (payload_size, ==, 4);
  g_assert_cmpmem (payload, payload_size, data + 12, 4);
}

static void
test_rtp_packet_parses_csrcs_extension_padding (void)
{
  /* 12 header + 2 CSRCs (8) + extension header (4) + 2 words (8)
   * + payload (5) + padding (3) = 40 bytes. */
  guint8 data[40];
  g_autoptr (CimsRtpPacket) packet = NULL;
  const guint8 *payload;
  gsize payload_size = 0;

  memset (data, 0xee, sizeof data);
  write_header (data, 1, 2, 3, FALSE);
  data[0] = 0x80 | 0x20 | 0x10 | 2;
  data[20] = 0xbe;
  data[21] = 0xde;
  data[22] = 0x00;
  data[23] = 0x02;
  memcpy (data + 32, "\x41\x9a\x01\x02\x03", 5);
  data[37] = 0;
  data[38] = 0;
  data[39] = 3;

  packet = cims_rtp_packet_new (data, sizeof data, 0, 0);
  g_assert_nonnull (packet);
  g_assert_false (cims_rtp_packet_get_marker (packet));
  g_assert_cmpuint (cims_rtp_packet_get_seq (packet), ==, 1);

  payload = cims_rtp_packet_get_payload (packet, &payload_size);
  g_assert_nonnull (payload);
  g_assert_cmpuint (payload_size, ==, 5);
  g_assert_cmpmem (payload, payload_size, "\x41\x9a\x01\x02\x03", 5);
}

static void
test_rtp_packet_accepts_empty_payload (void)
{
  guint8 data[12];
  g_autoptr (CimsRtpPacket) packet = NULL;
  gsize payload_size = 99;

  write_header (data, 1, 2, 3, FALSE);
  packet = cims_rtp_packet_new (data, sizeof data, 0, 0);
  g_assert_nonnull (packet);
  g_assert_nonnull (cims_rtp_packet_get_payload (packet, &payload_size));
  g_assert_cmpuint (payload_size, ==, 0);
}

typedef struct {
  const char *name;
  gsize size;
  guint8 byte0;
  gsize patch_offset;           /* 0: no patch */
  guint8 patch_value;
} MalformedCase;

static void
test_rtp_packet_rejects_malformed (void)
{
  static const MalformedCase cases[] = {
    { "empty", 0, 0x80, 0, 0 },
    { "shorter than the fixed header", 11, 0x80, 0, 0 },
    { "over the maximum packet size", CIMS_RTP_MAX_PACKET + 1, 0x80, 0, 0 },
    { "version 1", 20, 0x40, 0, 0 },
    { "version 0", 20, 0x00, 0, 0 },
    { "CSRC list past the end", 20, 0x83, 0, 0 },
    { "15 CSRCs in a short packet", 60, 0x8f, 0, 0 },
    { "extension header past the end", 14, 0x90, 0, 0 },
    { "extension words past the end", 24, 0x90, 15, 3 },
    { "padding count of zero", 20, 0xa0, 19, 0 },
    { "padding past the payload", 20, 0xa0, 19, 9 },
    { "padding into the CSRC list", 24, 0xa1, 23, 9 },
  };
  guint8 *data = g_malloc0 (CIMS_RTP_MAX_PACKET + 1);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (CimsRtpPacket) packet = NULL;

      memset (data, 0, CIMS_RTP_MAX_PACKET + 1);
      write_header (data, 1, 2, 3, FALSE);
      data[0] = cases[i].byte0;
      if (cases[i].patch_offset != 0)
        data[cases[i].patch_offset] = cases[i].patch_value;

      g_test_message ("case: %s", cases[i].name);
      packet = cims_rtp_packet_new (data, cases[i].size, 0, 0);
      g_assert_null (packet);
    }

  g_free (data);
}

static void
test_rtp_packet_accepts_boundary_sizes (void)
{
  guint8 *data = g_malloc0 (CIMS_RTP_MAX_PACKET);
  g_autoptr (CimsRtpPacket) largest = NULL;
  g_autoptr (CimsRtpPacket) all_padding = NULL;
  gsize payload_size = 99;

  write_header (data, 1, 2, 3, FALSE);
  largest = cims_rtp_packet_new (data, CIMS_RTP_MAX_PACKET, 0, 0);
  g_assert_nonnull (largest);
  g_assert_cmpuint (largest->size, ==, CIMS_RTP_MAX_PACKET);

  /* Padding that takes the whole space after the header is consistent. */
  data[0] = 0xa0;
  data[19] = 8;
  all_padding = cims_rtp_packet_new (data, 20, 0, 0);
  g_assert_nonnull (all_padding);
  g_assert_nonnull (cims_rtp_packet_get_payload (all_padding, &payload_size));
  g_assert_cmpuint (payload_size, ==, 0);

  g_free (data);
}

static void
test_rtp_packet_counts_references (void)
{
  guint8 data[12];
  CimsRtpPacket *packet;
  CimsRtpPacket *second;

  write_header (data, 5, 6, 7, FALSE);
  packet = cims_rtp_packet_new (data, sizeof data, 0, 0);
  second = cims_rtp_packet_ref (packet);
  g_assert_true (second == packet);
  cims_rtp_packet_unref (packet);
  g_assert_cmpuint (cims_rtp_packet_get_seq (second), ==, 5);
  cims_rtp_packet_unref (second);
  cims_rtp_packet_unref (NULL);
}

static void
test_rtp_packet_names_codecs (void)
{
  g_assert_cmpstr (cims_codec_to_string (CIMS_CODEC_H264), ==, "H264");
  g_assert_cmpstr (cims_codec_to_string (CIMS_CODEC_H265), ==, "H265");
  g_assert_cmpstr (cims_codec_to_string (CIMS_CODEC_VP8), ==, "VP8");
  g_assert_cmpstr (cims_codec_to_string (CIMS_CODEC_UNKNOWN), ==, "unknown");
  g_assert_cmpstr (g_quark_to_string (CIMS_PIPELINES_ERROR), ==, "cims-pipelines-error-quark");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/pipelines/rtp-packet/parses-plain-header", test_rtp_packet_parses_plain_header);
  g_test_add_func ("/pipelines/rtp-packet/parses-csrcs-extension-padding",
                   test_rtp_packet_parses_csrcs_extension_padding);
  g_test_add_func ("/pipelines/rtp-packet/accepts-empty-payload", test_rtp_packet_accepts_empty_payload);
  g_test_add_func ("/pipelines/rtp-packet/rejects-malformed", test_rtp_packet_rejects_malformed);
  g_test_add_func ("/pipelines/rtp-packet/accepts-boundary-sizes", test_rtp_packet_accepts_boundary_sizes);
  g_test_add_func ("/pipelines/rtp-packet/counts-references", test_rtp_packet_counts_references);
  g_test_add_func ("/pipelines/rtp-packet/names-codecs", test_rtp_packet_names_codecs);

  return g_test_run ();
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of RTCP parsing (NACK, PLI, FIR, receiver reports, malformed
 * input) and of the sender report the hub writes. */

#include "hub/hub-private.h"

#include <string.h>

#define MEDIA_SSRC 0x0a0b0c0du
#define OTHER_SSRC 0x01020304u
#define VIEWER_SSRC 0x55667788u

static void
put_u32 (GByteArray *bytes, guint32 value)
{
  guint8 data[4] = { value >> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff };

  g_byte_array_append (bytes, data, 4);
}

static void
put_u16 (GByteArray *bytes, guint16 value)
{
  guint8 data[2] = { value >> 8, value & 0xff };

  g_byte_array_append (bytes, data, 2);
}

/* Appends an RTCP header; the length is fixed later by packet_end(). */
static gsize
packet_begin (GByteArray *bytes, guint count, guint8 type)
{
  gsize start = bytes->len;
  guint8 header[4] = { 0x80 | (count & 0x1f), type, 0, 0 };

  g_byte_array_append (bytes, header, 4);

  return start;
}

static void
packet_end (GByteArray *bytes, gsize start)
{
  guint words = (bytes->len - start) / 4 - 1;

  g_assert_cmpuint ((bytes->len - start) % 4, ==, 0);
  bytes->data[start + 2] = words >> 8;
  bytes->data[start + 3] = words & 0xff;
}

static void
nack_append (GByteArray *bytes, guint32 media_ssrc, guint16 pid, guint16 blp)
{
  gsize start = packet_begin (bytes, 1, 205);

  put_u32 (bytes, VIEWER_SSRC);
  put_u32 (bytes, media_ssrc);
  put_u16 (bytes, pid);
  put_u16 (bytes, blp);
  packet_end (bytes, start);
}

static void
pli_append (GByteArray *bytes, guint32 media_ssrc)
{
  gsize start = packet_begin (bytes, 1, 206);

  put_u32 (bytes, VIEWER_SSRC);
  put_u32 (bytes, media_ssrc);
  packet_end (bytes, start);
}

static void
fir_append (GByteArray *bytes, guint32 target_ssrc)
{
  gsize start = packet_begin (bytes, 4, 206);

  put_u32 (bytes, VIEWER_SSRC);
  put_u32 (bytes, 0);           /* RFC 5104: media source SSRC is 0 */
  put_u32 (bytes, OTHER_SSRC + 100);
  put_u32 (bytes, 0x07000000);
  put_u32 (bytes, target_ssrc);
  put_u32 (bytes, 0x08000000);
  packet_end (bytes, start);
}

static void
report_block_append (GByteArray *bytes, guint32 ssrc, guint8 fraction, guint32 lost,
                     guint32 jitter)
{
  put_u32 (bytes, ssrc);
  put_u32 (bytes, (guint32) fraction << 24 | (lost & 0xffffff));
  put_u32 (bytes, 0x00010203);  /* extended highest sequence number */
  put_u32 (bytes, jitter);
  put_u32 (bytes, 0);           /* LSR */
  put_u32 (bytes, 0);           /* DLSR */
}

static void
rr_append (GByteArray *bytes)
{
  gsize start = packet_begin (bytes, 2, 201);

  put_u32 (bytes, VIEWER_SSRC);
  report_block_append (bytes, OTHER_SSRC, 200, 99999, 5555);
  report_block_append (bytes, MEDIA_SSRC, 25, 1234, 77);
  packet_end (bytes, start);
}

static void
sdes_append (GByteArray *bytes)
{
  static const guint8 item[] = { 1, 6, 'v', 'i', 'e', 'w', 'e', 'r', 0, 0 };
  gsize start = packet_begin (bytes, 1, 202);

  put_u32 (bytes, VIEWER_SSRC);
  g_byte_array_append (bytes, item, sizeof (item));
  while ((bytes->len - start) % 4 != 0)
    g_byte_array_append (bytes, (const guint8 *) "", 1);
  packet_end (bytes, start);
}

static void
transport_cc_append (GByteArray *bytes)
{
  gsize start = packet_begin (bytes, 15, 205);

  put_u32 (bytes, VIEWER_SSRC);
  put_u32 (bytes, MEDIA_SSRC);
  put_u32 (bytes, 0x00010002);
  put_u32 (bytes, 0x00000100);
  packet_end (bytes, start);
}

/* Parses a heap copy of exactly @size bytes, so that a sanitizer or
 * valgrind catches any read past the end. */
static gboolean
parse_exact (const guint8 *data, gsize size, CimsRtcpSummary *summary)
{
  g_autofree guint8 *copy = size > 0 ? g_memdup2 (data, size) : NULL;

  return cims_rtcp_parse_compound (copy, size, MEDIA_SSRC, summary);
}

static void
summary_init (CimsRtcpSummary *summary)
{
  memset (summary, 0, sizeof (*summary));
  summary->nacked_seqs = g_array_new (FALSE, FALSE, sizeof (guint16));
}

static void
summary_clear (CimsRtcpSummary *summary)
{
  g_clear_pointer (&summary->nacked_seqs, g_array_unref);
}

static void
test_rtcp_nack_expands_blp (void)
{
  static const guint16 expected[] = { 65530, 65531, 65533, 0, 10 };
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  CimsRtcpSummary summary;
  guint i;

  summary_init (&summary);
  rr_append (bytes);
  /* Bits 0, 2, 5 and 15: PID+1, PID+3, PID+6 (wrapping to 0) and PID+16. */
  nack_append (bytes, MEDIA_SSRC, 65530, 0x8025);

  g_assert_true (parse_exact (bytes->data, bytes->len, &summary));
  g_assert_true (summary.feedback & CIMS_RTCP_FEEDBACK_NACK);
  g_assert_cmpuint (summary.nacked_seqs->len, ==, G_N_ELEMENTS (expected));
  for (i = 0; i < G_N_ELEMENTS (expected); i++)
    g_assert_cmpuint (g_array_index (summary.nacked_seqs, guint16, i), ==, expected[i]);
  summary_clear (&summary);
}

static void
test_rtcp_nack_for_other_ssrc_ignored (void)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  CimsRtcpSummary summary;

  summary_init (&summary);
  nack_append (bytes, OTHER_SSRC, 100, 0xffff);

  g_assert_true (parse_exact (bytes->data, bytes->len, &summary));
  g_assert_false (summary.feedback & CIMS_RTCP_FEEDBACK_NACK);
  g_assert_cmpuint (summary.nacked_seqs->len, ==, 0);
  summary_clear (&summary);
}

static void
test_rtcp_nack_capped_per_call (void)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  CimsRtcpSummary summary;
  gsize start;
  guint i;

  summary_init (&summary);
  start = packet_begin (bytes, 1, 205);
  put_u32 (bytes, VIEWER_SSRC);
  put_u32 (bytes, MEDIA_SSRC);
  for (i = 0; i < 100; i++) {
    put_u16 (bytes, i * 17);
    put_u16 (bytes, 0xffff);
  }
  packet_end (bytes, start);

  g_assert_true (parse_exact (bytes->data, bytes->len, &summary));
  g_assert_cmpuint (summary.nacked_seqs->len, ==, 256);
  g_assert_cmpuint (g_array_index (summary.nacked_seqs, guint16, 255), ==, 255);
  summary_clear (&summary);
}

static void
test_rtcp_pli_for_media_ssrc (void)
{
  g_autoptr (GByteArray) mine = g_byte_array_new ();
  g_autoptr (GByteArray) other = g_byte_array_new ();
  CimsRtcpSummary summary;

  /* A reduced-size packet (RFC 5506): the PLI alone. */
  summary_init (&summary);
  pli_append (mine, MEDIA_SSRC);
  g_assert_true (parse_exact (mine->data, mine->len, &summary));
  g_assert_cmphex (summary.feedback, ==, CIMS_RTCP_FEEDBACK_PLI);
  summary_clear (&summary);

  summary_init (&summary);
  pli_append (other, OTHER_SSRC);
  g_assert_true (parse_exact (other->data, other->len, &summary));
  g_assert_cmphex (summary.feedback, ==, CIMS_RTCP_FEEDBACK_NONE);
  summary_clear (&summary);
}

static void
test_rtcp_fir_for_media_ssrc (void)
{
  g_autoptr (GByteArray) mine = g_byte_array_new ();
  g_autoptr (GByteArray) other = g_byte_array_new ();
  CimsRtcpSummary summary;

  summary_init (&summary);
  fir_append (mine, MEDIA_SSRC);
  g_assert_true (parse_exact (mine->data, mine->len, &summary));
  g_assert_cmphex (summary.feedback, ==, CIMS_RTCP_FEEDBACK_FIR);
  summary_clear (&summary);

  summary_init (&summary);
  fir_append (other, OTHER_SSRC);
  g_assert_true (parse_exact (other->data, other->len, &summary));
  g_assert_cmphex (summary.feedback, ==, CIMS_RTCP_FEEDBACK_NONE);
  summary_clear (&summary);
}

static void
test_rtcp_receiver_report_read (void)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  CimsRtcpSummary summary;

  summary_init (&summary);
  rr_append (bytes);
  sdes_append (bytes);
  transport_cc_append (bytes);

  g_assert_true (parse_exact (bytes->data, bytes->len, &summary));
  g_assert_cmphex (summary.feedback, ==, CIMS_RTCP_FEEDBACK_RECEIVER_REPORT);
  g_assert_cmpuint (summary.fraction_lost, ==, 25);
  g_assert_cmpuint (summary.cumulative_lost, ==, 1234);
  g_assert_cmpuint (summary.jitter, ==, 77);
  summary_clear (&summary);
}

static void
test_rtcp_negative_loss_reads_zero (void)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  CimsRtcpSummary summary;
  gsize start;

  summary_init (&summary);
  start = packet_begin (bytes, 1, 201);
  put_u32 (bytes, VIEWER_SSRC);
  report_block_append (bytes, MEDIA_SSRC, 0, 0xfffffe, 3);
  packet_end (bytes, start);

  g_assert_true (parse_exact (bytes->data, bytes->len, &summary));
  g_assert_cmpuint (summary.cumulative_lost, ==, 0);
  summary_clear (&summary);
}

static void
compound_build (GByteArray *bytes)
{
  rr_append (bytes);
  sdes_append (bytes);
  nack_append (bytes, MEDIA_SSRC, 500, 0x0003);
  pli_append (bytes, MEDIA_SSRC);
  fir_append (bytes, MEDIA_SSRC);
}

static void
test_rtcp_truncated_rejected (void)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  gsize boundaries[5];
  gsize size;

  rr_append (bytes);
  boundaries[0] = bytes->len;
  sdes_append (bytes);
  boundaries[1] = bytes->len;
  nack_append (bytes, MEDIA_SSRC, 500, 0x0003);
  boundaries[2] = bytes->len;
  pli_append (bytes, MEDIA_SSRC);
  boundaries[3] = bytes->len;
  fir_append (bytes, MEDIA_SSRC);
  boundaries[4] = bytes->len;

  for (size = 0; size <= bytes->len; size++) {
    CimsRtcpSummary summary;
    gboolean is_boundary = size > 0 && (size == boundaries[0] || size == boundaries[1] ||
                                        size == boundaries[2] || size == boundaries[3] ||
                                        size == boundaries[4]);

    summary_init (&summary);
    if (is_boundary)
      g_assert_true (parse_exact (bytes->data, size, &summary));
    else
      g_assert_false (parse_exact (bytes->data, size, &summary));
    summary_clear (&summary);
  }
}

static void
test_rtcp_oversized_length_rejected (void)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  CimsRtcpSummary summary;

  summary_init (&summary);
  pli_append (bytes, MEDIA_SSRC);
  bytes->data[3] = 3;           /* claims 16 bytes, contains 12 */
  g_assert_false (parse_exact (bytes->data, bytes->len, &summary));
  bytes->data[2] = 0xff;
  bytes->data[3] = 0xff;
  g_assert_false (parse_exact (bytes->data, bytes->len, &summary));
  summary_clear (&summary);
}

static void
test_rtcp_malformed_rejected (void)
{
  CimsRtcpSummary summary;
  g_autoptr (GByteArray) version = g_byte_array_new ();
  g_autoptr (GByteArray) blocks = g_byte_array_new ();
  g_autoptr (GByteArray) padding = g_byte_array_new ();
  g_autoptr (GByteArray) fir = g_byte_array_new ();
  g_autoptr (GByteArray) nack = g_byte_array_new ();
  gsize start;

  summary_init (&summary);

  pli_append (version, MEDIA_SSRC);
  version->data[0] = 0x41;      /* version 1 */
  g_assert_false (parse_exact (version->data, version->len, &summary));

  /* An RR that claims 31 report blocks but contains none. */
  start = packet_begin (blocks, 31, 201);
  put_u32 (blocks, VIEWER_SSRC);
  packet_end (blocks, start);
  g_assert_false (parse_exact (blocks->data, blocks->len, &summary));

  /* A padding count larger than the packet. */
  pli_append (padding, MEDIA_SSRC);
  padding->data[0] |= 0x20;
  padding->data[padding->len - 1] = 200;
  g_assert_false (parse_exact (padding->data, padding->len, &summary));
  padding->data[padding->len - 1] = 0;
  g_assert_false (parse_exact (padding->data, padding->len, &summary));

  /* A FIR whose FCI is not a whole number of 8-byte entries. */
  start = packet_begin (fir, 4, 206);
  put_u32 (fir, VIEWER_SSRC);
  put_u32 (fir, 0);
  put_u32 (fir, MEDIA_SSRC);
  packet_end (fir, start);
  g_assert_false (parse_exact (fir->data, fir->len, &summary));

  /* A NACK without any FCI entry. */
  start = packet_begin (nack, 1, 205);
  put_u32 (nack, VIEWER_SSRC);
  put_u32 (nack, MEDIA_SSRC);
  packet_end (nack, start);
  g_assert_false (parse_exact (nack->data, nack->len, &summary));

  g_assert_false (parse_exact (NULL, 0, &summary));
  g_assert_false (parse_exact ((const guint8 *) "\x80", 1, &summary));
  summary_clear (&summary);
}

static void
test_rtcp_keeps_data_before_error (void)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  CimsRtcpSummary summary;

  summary_init (&summary);
  pli_append (bytes, MEDIA_SSRC);
  g_byte_array_append (bytes, (const guint8 *) "\xff\xff\xff\xff", 4);

  g_assert_false (parse_exact (bytes->data, bytes->len, &summary));
  g_assert_true (summary.feedback & CIMS_RTCP_FEEDBACK_PLI);
  summary_clear (&summary);
}

static void
test_rtcp_garbage_does_not_crash (void)
{
  g_autoptr (GByteArray) valid = g_byte_array_new ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);
  guint8 buffer[512];
  guint round;

  compound_build (valid);
  g_assert_cmpuint (valid->len, <=, sizeof (buffer));

  for (round = 0; round < 20000; round++) {
    CimsRtcpSummary summary;
    gsize size = g_rand_int_range (rand, 0, valid->len + 1);
    guint n_flips = g_rand_int_range (rand, 1, 8);
    guint i;

    /* Valid packets with a few random bytes changed reach the deeper
     * checks; every fourth round is pure noise. */
    memcpy (buffer, valid->data, valid->len);
    for (i = 0; i < n_flips; i++)
      buffer[g_rand_int_range (rand, 0, valid->len)] = g_rand_int_range (rand, 0, 256);
    if (round % 4 == 0) {
      for (i = 0; i < size; i++)
        buffer[i] = g_rand_int_range (rand, 0, 256);
    }

    summary_init (&summary);
    parse_exact (buffer, size, &summary);
    g_assert_cmpuint (summary.nacked_seqs->len, <=, 256);
    summary_clear (&summary);
  }
}

static void
test_rtcp_sender_report_parses_back (void)
{
  guint8 out[128];
  CimsRtcpSummary summary;
  gsize size;
  guint sdes_words;

  size = cims_rtcp_build_sender_report (out, sizeof (out), MEDIA_SSRC, 0x0123456789abcdefull,
                                        90000, 1000, 1200000, "cimshub");
  /* 28 for the SR; SDES header 4 + chunk (4 + 2 + 7 + 1, padded to 16). */
  g_assert_cmpuint (size, ==, 28 + 4 + 16);
  g_assert_cmpuint (size % 4, ==, 0);

  g_assert_cmphex (out[0], ==, 0x80);
  g_assert_cmpuint (out[1], ==, 200);
  g_assert_cmpuint (out[2] << 8 | out[3], ==, 6);
  g_assert_cmphex ((guint32) out[4] << 24 | out[5] << 16 | out[6] << 8 | out[7], ==, MEDIA_SSRC);
  g_assert_cmphex ((guint32) out[8] << 24 | out[9] << 16 | out[10] << 8 | out[11], ==, 0x01234567);
  g_assert_cmphex ((guint32) out[12] << 24 | out[13] << 16 | out[14] << 8 | out[15], ==, 0x89abcdef);
  g_assert_cmpuint ((guint32) out[16] << 24 | out[17] << 16 | out[18] << 8 | out[19], ==, 90000);
  g_assert_cmpuint ((guint32) out[20] << 24 | out[21] << 16 | out[22] << 8 | out[23], ==, 1000);
  g_assert_cmpuint ((guint32) out[24] << 24 | out[25] << 16 | out[26] << 8 | out[27], ==, 1200000);

  g_assert_cmphex (out[28], ==, 0x81);
  g_assert_cmpuint (out[29], ==, 202);
  sdes_words = out[30] << 8 | out[31];
  g_assert_cmpuint ((sdes_words + 1) * 4, ==, size - 28);
  g_assert_cmpuint (out[36], ==, 1);
  g_assert_cmpuint (out[37], ==, 7);
  g_assert_cmpmem (out + 38, 7, "cimshub", 7);
  g_assert_cmpuint (out[45], ==, 0);

  summary_init (&summary);
  g_assert_true (parse_exact (out, size, &summary));
  g_assert_cmphex (summary.feedback, ==, CIMS_RTCP_FEEDBACK_NONE);
  summary_clear (&summary);
}

static void
test_rtcp_sender_report_pads_cname (void)
{
  guint8 out[128];
  gsize size;

  /* 4 + 2 + 2 = 8 already aligned: the end-of-items octet needs 4 more. */
  size = cims_rtcp_build_sender_report (out, sizeof (out), 1, 0, 0, 0, 0, "ab");
  g_assert_cmpuint (size, ==, 28 + 4 + 12);
  g_assert_cmpuint (out[40], ==, 0);
}

static void
test_rtcp_sender_report_checks_space (void)
{
  guint8 out[300];
  char cname[257];

  g_assert_cmpuint (cims_rtcp_build_sender_report (out, 47, 1, 0, 0, 0, 0, "cimshub"), ==, 0);
  g_assert_cmpuint (cims_rtcp_build_sender_report (out, 48, 1, 0, 0, 0, 0, "cimshub"), ==, 48);

  memset (cname, 'c', 256);
  cname[256] = '\0';
  g_assert_cmpuint (cims_rtcp_build_sender_report (out, sizeof (out), 1, 0, 0, 0, 0, cname), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/rtcp/nack-expands-blp", test_rtcp_nack_expands_blp);
  g_test_add_func ("/rtcp/nack-for-other-ssrc-ignored", test_rtcp_nack_for_other_ssrc_ignored);
  g_test_add_func ("/rtcp/nack-capped-per-call", test_rtcp_nack_capped_per_call);
  g_test_add_func ("/rtcp/pli-for-media-ssrc", test_rtcp_pli_for_media_ssrc);
  g_test_add_func ("/rtcp/fir-for-media-ssrc", test_rtcp_fir_for_media_ssrc);
  g_test_add_func ("/rtcp/receiver-report-read", test_rtcp_receiver_report_read);
  g_test_add_func ("/rtcp/negative-loss-reads-zero", test_rtcp_negative_loss_reads_zero);
  g_test_add_func ("/rtcp/truncated-rejected", test_rtcp_truncated_rejected);
  g_test_add_func ("/rtcp/oversized-length-rejected", test_rtcp_oversized_length_rejected);
  g_test_add_func ("/rtcp/malformed-rejected", test_rtcp_malformed_rejected);
  g_test_add_func ("/rtcp/keeps-data-before-error", test_rtcp_keeps_data_before_error);
  g_test_add_func ("/rtcp/garbage-does-not-crash", test_rtcp_garbage_does_not_crash);
  g_test_add_func ("/rtcp/sender-report-parses-back", test_rtcp_sender_report_parses_back);
  g_test_add_func ("/rtcp/sender-report-pads-cname", test_rtcp_sender_report_pads_cname);
  g_test_add_func ("/rtcp/sender-report-checks-space", test_rtcp_sender_report_checks_space);

  return g_test_run ();
}

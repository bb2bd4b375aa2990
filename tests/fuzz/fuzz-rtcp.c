/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for viewer RTCP: cims_rtcp_parse_compound on the whole input,
 * for the media SSRC the feedback in the corpus names and for the SSRC in
 * the first packet's media field, with and without a NACK array. */

#include <stdint.h>

#include "hub/hub-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The media SSRC of the feedback packets in the seed corpus. */
#define FUZZ_MEDIA_SSRC 0x11223344u

/* One call appends at most this many NACKed sequence numbers (rtcp.c). */
#define NACK_MAX_SEQS_PER_CALL 256

static void
parse_check (const uint8_t *data, size_t size, guint32 media_ssrc, gboolean with_nacks)
{
  g_autoptr(GArray) nacked = g_array_new (FALSE, FALSE, sizeof (guint16));
  CimsRtcpSummary summary = { 0 };

  summary.nacked_seqs = with_nacks ? nacked : NULL;
  (void) cims_rtcp_parse_compound (data, size, media_ssrc, &summary);

  g_assert_cmpuint (nacked->len, <=, NACK_MAX_SEQS_PER_CALL);
  g_assert_cmpuint (summary.fraction_lost, <=, 255);
  g_assert_cmpuint (summary.cumulative_lost, <, 0x800000);
  if (nacked->len > 0)
    g_assert_true (summary.feedback & CIMS_RTCP_FEEDBACK_NACK);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  parse_check (data, size, FUZZ_MEDIA_SSRC, TRUE);
  parse_check (data, size, FUZZ_MEDIA_SSRC, FALSE);

  if (size >= 12) {
    guint32 media_ssrc = (guint32) data[8] << 24 | (guint32) data[9] << 16
                         | (guint32) data[10] << 8 | data[11];

    parse_check (data, size, media_ssrc, TRUE);
  }

  return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* RTCP from and to viewers: walks decrypted compound packets for PLI, FIR,
 * NACK and receiver reports, and writes sender reports. SRTCP protection is
 * left to the viewer session. */

#include "hub/hub-private.h"

#include <string.h>

#define RTCP_HEADER_SIZE 4
#define RTCP_REPORT_BLOCK_SIZE 24
#define RTCP_FEEDBACK_HEADER_SIZE 12   /* header, sender SSRC, media SSRC */

/* RFC 3550 section 12.1 and RFC 4585 section 6.1. */
#define RTCP_TYPE_SR 200
#define RTCP_TYPE_RR 201
#define RTCP_TYPE_SDES 202
#define RTCP_TYPE_RTPFB 205
#define RTCP_TYPE_PSFB 206

#define RTPFB_FORMAT_NACK 1
#define PSFB_FORMAT_PLI 1
#define PSFB_FORMAT_FIR 4             /* RFC 5104 section 4.3.1 */

#define SDES_ITEM_CNAME 1

/* Bounds the NACKed sequence numbers one call appends: each NACK entry can
 * name 17 of them, and one packet must not make the hub resend thousands. */
#define NACK_MAX_SEQS_PER_CALL 256

static guint32
read_u32 (const guint8 *data)
{
  return (guint32) data[0] << 24 | (guint32) data[1] << 16 | (guint32) data[2] << 8 | data[3];
}

static guint16
read_u16 (const guint8 *data)
{
  return (guint16) (data[0] << 8 | data[1]);
}

static void
write_u32 (guint8 *out, guint32 value)
{
  out[0] = value >> 24;
  out[1] = (value >> 16) & 0xff;
  out[2] = (value >> 8) & 0xff;
  out[3] = value & 0xff;
}

/* Reads the report blocks (RFC 3550 section 6.4.1) of an SR or RR. */
static gboolean
report_blocks_parse (const guint8 *blocks, gsize size, guint n_blocks, guint32 media_ssrc,
                     CimsRtcpSummary *summary)
{
  guint i;

  if ((gsize) n_blocks * RTCP_REPORT_BLOCK_SIZE > size)
    return FALSE;

  for (i = 0; i < n_blocks; i++) {
    const guint8 *block = blocks + i * RTCP_REPORT_BLOCK_SIZE;
    guint32 lost;

    if (read_u32 (block) != media_ssrc)
      continue;

    /* The cumulative loss is a signed 24-bit count; duplicates can make it
     * negative, which counts as no loss here. */
    lost = (guint32) block[5] << 16 | (guint32) block[6] << 8 | block[7];
    summary->fraction_lost = block[4];
    summary->cumulative_lost = (lost & 0x800000) ? 0 : lost;
    summary->jitter = read_u32 (block + 12);
    summary->feedback |= CIMS_RTCP_FEEDBACK_RECEIVER_REPORT;
  }

  return TRUE;
}

/* Expands generic NACK entries (RFC 4585 section 6.2.1): PID is lost, and
 * bit i of BLP means PID + i + 1 is lost too. */
static gboolean
nack_parse (const guint8 *fci, gsize size, CimsRtcpSummary *summary, guint *n_nacked)
{
  gsize offset;

  if (size == 0 || size % 4 != 0)
    return FALSE;

  summary->feedback |= CIMS_RTCP_FEEDBACK_NACK;
  for (offset = 0; offset < size; offset += 4) {
    guint16 pid = read_u16 (fci + offset);
    guint16 blp = read_u16 (fci + offset + 2);
    guint bit;

    for (bit = 0; bit <= 16; bit++) {
      guint16 seq = pid + bit;

      if (bit > 0 && !(blp & (1 << (bit - 1))))
        continue;
      if (*n_nacked >= NACK_MAX_SEQS_PER_CALL)
        return TRUE;
      if (summary->nacked_seqs != NULL)
        g_array_append_val (summary->nacked_seqs, seq);
      (*n_nacked)++;
    }
  }

  return TRUE;
}

/* FIR (RFC 5104 section 4.3.1) names its target in 8-byte FCI entries. */
static gboolean
fir_parse (const guint8 *fci, gsize size, guint32 media_ssrc, CimsRtcpSummary *summary)
{
  gsize offset;

  if (size == 0 || size % 8 != 0)
    return FALSE;

  for (offset = 0; offset < size; offset += 8) {
    if (read_u32 (fci + offset) == media_ssrc)
      summary->feedback |= CIMS_RTCP_FEEDBACK_FIR;
  }

  return TRUE;
}

static gboolean
feedback_parse (const guint8 *packet, gsize size, guint32 media_ssrc,
                CimsRtcpSummary *summary, guint *n_nacked)
{
  guint8 type = packet[1];
  guint format = packet[0] & 0x1f;
  const guint8 *fci = packet + RTCP_FEEDBACK_HEADER_SIZE;
  gsize fci_size;
  gboolean is_for_media;

  if (size < RTCP_FEEDBACK_HEADER_SIZE)
    return FALSE;

  fci_size = size - RTCP_FEEDBACK_HEADER_SIZE;
  is_for_media = read_u32 (packet + 8) == media_ssrc;

  if (type == RTCP_TYPE_RTPFB && format == RTPFB_FORMAT_NACK)
    return is_for_media ? nack_parse (fci, fci_size, summary, n_nacked) : fci_size % 4 == 0;

  if (type == RTCP_TYPE_PSFB && format == PSFB_FORMAT_PLI) {
    if (is_for_media)
      summary->feedback |= CIMS_RTCP_FEEDBACK_PLI;
    return TRUE;
  }

  if (type == RTCP_TYPE_PSFB && format == PSFB_FORMAT_FIR)
    return fir_parse (fci, fci_size, media_ssrc, summary);

  /* Transport-wide congestion control (RTPFB 15), REMB (PSFB 15) and the
   * rest are not acted on. */
  return TRUE;
}

/* Parses one sub-packet whose padding is already removed. */
static gboolean
packet_parse (const guint8 *packet, gsize size, guint32 media_ssrc,
              CimsRtcpSummary *summary, guint *n_nacked)
{
  guint count = packet[0] & 0x1f;

  switch (packet[1]) {
  case RTCP_TYPE_SR:
    /* Header, sender SSRC and the 20-byte sender info come first. */
    if (size < 28)
      return FALSE;
    return report_blocks_parse (packet + 28, size - 28, count, media_ssrc, summary);
  case RTCP_TYPE_RR:
    if (size < 8)
      return FALSE;
    return report_blocks_parse (packet + 8, size - 8, count, media_ssrc, summary);
  case RTCP_TYPE_RTPFB:
  case RTCP_TYPE_PSFB:
    return feedback_parse (packet, size, media_ssrc, summary, n_nacked);
  default:
    /* SDES, BYE, APP and XR carry nothing the hub uses; the length check in
     * the caller is all they need. */
    return TRUE;
  }
}

gboolean
cims_rtcp_parse_compound (const guint8 *data, gsize size, guint32 media_ssrc,
                          CimsRtcpSummary *summary)
{
  gsize offset = 0;
  guint n_nacked = 0;

  g_return_val_if_fail (summary != NULL, FALSE);
  g_return_val_if_fail (data != NULL || size == 0, FALSE);

  if (size < RTCP_HEADER_SIZE)
    return FALSE;

  /* RFC 5506 reduced-size RTCP: a single feedback packet without a leading
   * SR or RR is accepted, so the first type is not checked. */
  while (offset < size) {
    const guint8 *packet = data + offset;
    gsize remaining = size - offset;
    gsize length;

    if (remaining < RTCP_HEADER_SIZE || (packet[0] >> 6) != 2)
      return FALSE;

    length = ((gsize) read_u16 (packet + 2) + 1) * 4;
    if (length > remaining)
      return FALSE;

    /* RFC 3550 section 6.4.1: with P set, the last octet counts padding
     * octets, itself included. */
    if (packet[0] & 0x20) {
      guint8 padding = packet[length - 1];

      if (padding == 0 || padding > length - RTCP_HEADER_SIZE)
        return FALSE;
      if (!packet_parse (packet, length - padding, media_ssrc, summary, &n_nacked))
        return FALSE;
    } else if (!packet_parse (packet, length, media_ssrc, summary, &n_nacked)) {
      return FALSE;
    }

    offset += length;
  }

  return TRUE;
}

gsize
cims_rtcp_build_sender_report (guint8 *out, gsize out_size, guint32 ssrc, guint64 ntp_time,
                               guint32 rtp_ts, guint32 packet_count, guint32 octet_count,
                               const char *cname)
{
  gsize cname_length;
  gsize chunk_size, sdes_size, total_size;

  g_return_val_if_fail (out != NULL, 0);
  g_return_val_if_fail (cname != NULL, 0);

  cname_length = strlen (cname);
  if (cname_length > 255)
    return 0;

  /* SDES chunk: SSRC, CNAME item (type, length, text) and at least one
   * zero octet ending the item list, padded to 32 bits (RFC 3550 6.5). */
  chunk_size = (4 + 2 + cname_length + 1 + 3) & ~(gsize) 3;
  sdes_size = RTCP_HEADER_SIZE + chunk_size;
  total_size = 28 + sdes_size;
  if (out_size < total_size)
    return 0;

  memset (out, 0, total_size);

  /* Sender report without report blocks (RFC 3550 section 6.4.1). */
  out[0] = 0x80;
  out[1] = RTCP_TYPE_SR;
  out[3] = 28 / 4 - 1;
  write_u32 (out + 4, ssrc);
  write_u32 (out + 8, ntp_time >> 32);
  write_u32 (out + 12, ntp_time & 0xffffffff);
  write_u32 (out + 16, rtp_ts);
  write_u32 (out + 20, packet_count);
  write_u32 (out + 24, octet_count);

  out[28] = 0x81;               /* V=2, one chunk */
  out[29] = RTCP_TYPE_SDES;
  out[30] = (sdes_size / 4 - 1) >> 8;
  out[31] = (sdes_size / 4 - 1) & 0xff;
  write_u32 (out + 32, ssrc);
  out[36] = SDES_ITEM_CNAME;
  out[37] = cname_length;
  memcpy (out + 38, cname, cname_length);

  return total_size;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The viewer's RTCP: writes its receiver reports and PLIs and reads the
 * hub's sender reports for the LSR/DLSR fields. SRTCP protection is in
 * whep-viewer-srtp.c. */
#include "bench/whep-viewer.h"

#include <string.h>

#define RTCP_SR 200
#define RTCP_RR 201
#define RTCP_SDES 202
#define RTCP_PSFB 206
#define PSFB_FMT_PLI 1
#define SDES_CNAME 1

static void
write_u16 (guint8 *out, guint16 value)
{
  out[0] = value >> 8;
  out[1] = value & 0xff;
}

static void
write_u32 (guint8 *out, guint32 value)
{
  out[0] = value >> 24;
  out[1] = (value >> 16) & 0xff;
  out[2] = (value >> 8) & 0xff;
  out[3] = value & 0xff;
}

static guint32
read_u32 (const guint8 *in)
{
  return (guint32) in[0] << 24 | (guint32) in[1] << 16 | (guint32) in[2] << 8 | in[3];
}

/* Writes the common header: version 2, @count, @type, length in words - 1. */
static void
header_write (guint8 *out, guint count, guint type, gsize size)
{
  out[0] = 0x80 | (count & 0x1f);
  out[1] = type;
  write_u16 (out + 2, (guint16) (size / 4 - 1));
}

/* One RR with one report block (RFC 3550 section 6.4.2): 32 bytes. */
static gsize
receiver_report_write (CimsWhepViewerRtcp *rtcp, CimsWhepViewerStats *stats, gint64 now_us, guint8 *out)
{
  guint32 cumulative_lost = (guint32) MIN (stats->n_lost, 0x7fffff);
  guint32 dlsr = 0;

  header_write (out, 1, RTCP_RR, 32);
  write_u32 (out + 4, rtcp->ssrc);
  write_u32 (out + 8, rtcp->media_ssrc);
  write_u32 (out + 12, (guint32) cims_whep_viewer_stats_take_fraction_lost (stats) << 24 | cumulative_lost);
  write_u32 (out + 16, cims_whep_viewer_stats_get_extended_max (stats));
  write_u32 (out + 20, stats->jitter_q4 >> 4);

  /* DLSR is in units of 1/65536 s since the last SR arrived. */
  if (rtcp->last_sr_us != 0)
    dlsr = (guint32) ((now_us - rtcp->last_sr_us) * 65536 / G_USEC_PER_SEC);
  write_u32 (out + 24, rtcp->last_sr_ntp_middle);
  write_u32 (out + 28, dlsr);
  return 32;
}

/* SDES with one chunk holding CNAME, padded to a word with null bytes. */
static gsize
sdes_write (CimsWhepViewerRtcp *rtcp, const char *cname, guint8 *out, gsize room)
{
  gsize cname_size = MIN (strlen (cname), 255);
  gsize size = (4 + 4 + 2 + cname_size + 1 + 3) & ~(gsize) 3;

  if (size > room)
    return 0;

  memset (out, 0, size);
  header_write (out, 1, RTCP_SDES, size);
  write_u32 (out + 4, rtcp->ssrc);
  out[8] = SDES_CNAME;
  out[9] = (guint8) cname_size;
  memcpy (out + 10, cname, cname_size);
  return size;
}

/* Picture loss indication (RFC 4585 section 6.3.1): 12 bytes. */
static gsize
pli_write (CimsWhepViewerRtcp *rtcp, guint8 *out)
{
  header_write (out, PSFB_FMT_PLI, RTCP_PSFB, 12);
  write_u32 (out + 4, rtcp->ssrc);
  write_u32 (out + 8, rtcp->media_ssrc);
  return 12;
}

gsize
cims_whep_viewer_rtcp_build (CimsWhepViewerRtcp *rtcp, CimsWhepViewerStats *stats, const char *cname,
                             gboolean with_pli, gint64 now_us, guint8 *buffer, gsize buffer_size)
{
  gsize size;
  gsize sdes_size;

  if (buffer_size < 32 + 12)
    return 0;

  size = receiver_report_write (rtcp, stats, now_us, buffer);
  sdes_size = sdes_write (rtcp, cname, buffer + size, buffer_size - size - 12);
  if (sdes_size == 0)
    return 0;
  size += sdes_size;

  if (with_pli)
    size += pli_write (rtcp, buffer + size);

  return size;
}

void
cims_whep_viewer_rtcp_parse (CimsWhepViewerRtcp *rtcp, const guint8 *packet, gsize size, gint64 now_us)
{
  gsize offset = 0;

  while (offset + 4 <= size) {
    const guint8 *header = packet + offset;
    gsize length = 4 * ((gsize) (header[2] << 8 | header[3]) + 1);

    if ((header[0] >> 6) != 2 || offset + length > size)
      return;

    /* SR: SSRC, then the 64-bit NTP time; LSR is its middle 32 bits. */
    if (header[1] == RTCP_SR && length >= 28) {
      rtcp->last_sr_ntp_middle = read_u32 (header + 10);
      rtcp->last_sr_us = now_us;
      if (rtcp->media_ssrc == 0)
        rtcp->media_ssrc = read_u32 (header + 4);
    }

    offset += length;
  }
}

/* SPDX-License-Identifier: Apache-2.0 */
/* RTP packets as received from a camera: validation of the fixed header
 * (RFC 3550 section 5.1), reference counting and header accessors. What the
 * payload means is left to nal-classify.c. */
#include "pipelines/pipelines.h"

#include <string.h>

#define RTP_HEADER_SIZE 12
#define RTP_VERSION 2

G_DEFINE_QUARK (cims-pipelines-error-quark, cims_pipelines_error)

const char *
cims_codec_to_string (CimsCodec codec)
{
  switch (codec)
    {
    case CIMS_CODEC_H264:
      return "H264";
    case CIMS_CODEC_H265:
      return "H265";
    case CIMS_CODEC_VP8:
      return "VP8";
    case CIMS_CODEC_UNKNOWN:
    default:
      return "unknown";
    }
}

/* Finds the payload of the RTP packet in @data: after the CSRC list and the
 * header extension, before the padding. Returns FALSE when the version is
 * not 2 or any of those parts does not fit in @size. */
static gboolean
rtp_header_parse (const guint8 *data, gsize size, gsize *payload_offset, gsize *payload_size)
{
  gsize offset;
  gsize end = size;

  if (size < RTP_HEADER_SIZE || (data[0] >> 6) != RTP_VERSION)
    return FALSE;

  offset = RTP_HEADER_SIZE + 4 * (gsize) (data[0] & 0x0f);
  if (offset > size)
    return FALSE;

  /* The extension is a 4-byte header whose second half is its length in
   * 32-bit words, not counting that header (RFC 3550 section 5.3.1). */
  if (data[0] & 0x10)
    {
      gsize extension_words;

      if (offset + 4 > size)
        return FALSE;
      extension_words = ((gsize) data[offset + 2] << 8) | data[offset + 3];
      offset += 4 + 4 * extension_words;
      if (offset > size)
        return FALSE;
    }

  /* The last byte counts the padding bytes, itself included, so it is at
   * least 1 and the padding cannot reach into the header. */
  if (data[0] & 0x20)
    {
      guint8 padding = data[size - 1];

      if (padding == 0 || padding > size - offset)
        return FALSE;
      end = size - padding;
    }

  *payload_offset = offset;
  *payload_size = end - offset;

  return TRUE;
}

CimsRtpPacket *
cims_rtp_packet_new (const guint8 *data, gsize size, guint32 epoch, gint64 arrival_us)
{
  CimsRtpPacket *packet;
  gsize payload_offset;
  gsize payload_size;

  g_return_val_if_fail (data != NULL || size == 0, NULL);

  if (size > CIMS_RTP_MAX_PACKET)
    return NULL;
  if (!rtp_header_parse (data, size, &payload_offset, &payload_size))
    return NULL;

  /* The reference count lives in the box header that GLib keeps before the
   * returned pointer, so the public struct needs no field for it. */
  packet = g_atomic_rc_box_alloc (sizeof (CimsRtpPacket) + size);
  packet->epoch = epoch;
  packet->arrival_us = arrival_us;
  packet->is_synthetic = FALSE;
  packet->size = (guint16) size;
  memcpy (packet->data, data, size);

  return packet;
}

/* Returns (transfer full) another reference to @packet. Any thread. */
CimsRtpPacket *
cims_rtp_packet_ref (CimsRtpPacket *packet)
{
  g_return_val_if_fail (packet != NULL, NULL);

  return g_atomic_rc_box_acquire (packet);
}

/* Drops one reference, and the last one frees the packet. Any thread. */
void
cims_rtp_packet_unref (CimsRtpPacket *packet)
{
  if (packet == NULL)
    return;

  g_atomic_rc_box_release (packet);
}

guint16
cims_rtp_packet_get_seq (const CimsRtpPacket *packet)
{
  return ((guint16) packet->data[2] << 8) | packet->data[3];
}

guint32
cims_rtp_packet_get_timestamp (const CimsRtpPacket *packet)
{
  return ((guint32) packet->data[4] << 24) | ((guint32) packet->data[5] << 16)
         | ((guint32) packet->data[6] << 8) | packet->data[7];
}

guint32
cims_rtp_packet_get_ssrc (const CimsRtpPacket *packet)
{
  return ((guint32) packet->data[8] << 24) | ((guint32) packet->data[9] << 16)
         | ((guint32) packet->data[10] << 8) | packet->data[11];
}

gboolean
cims_rtp_packet_get_marker (const CimsRtpPacket *packet)
{
  return (packet->data[1] & 0x80) != 0;
}

void
cims_rtp_packet_set_marker (CimsRtpPacket *packet)
{
  packet->data[1] |= 0x80;
}

guint8
cims_rtp_packet_get_payload_type (const CimsRtpPacket *packet)
{
  return packet->data[1] & 0x7f;
}

const guint8 *
cims_rtp_packet_get_payload (const CimsRtpPacket *packet, gsize *size)
{
  gsize payload_offset;
  gsize payload_size;

  g_return_val_if_fail (packet != NULL && size != NULL, NULL);

  if (!rtp_header_parse (packet->data, packet->size, &payload_offset, &payload_size))
    {
      *size = 0;
      return NULL;
    }

  *size = payload_size;

  return packet->data + payload_offset;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Source-to-viewer latency from the send-time SEI that cimshub-source-gen
 * puts before every frame, kept in one histogram per process. Relays pass
 * the payload untouched, so the time survives any header rewrite. The
 * kernel's receive timestamp of a viewer's socket gives the same latency
 * without the load generator's own queueing. */
#include "bench/whep-viewer.h"

#include <errno.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define NAL_TYPE_SEI 6
#define SEI_USER_DATA_UNREGISTERED 5
#define SEI_UUID "cimshub-sendtime"
#define SEI_PAYLOAD_SIZE 24
#define SEI_TIME_OFFSET 19
#define SEI_TIME_BYTES 8

/* Reads the send time from a plain RTP packet that carries the send-time SEI
 * as a single NAL unit packet (RFC 6184 5.6). The time is 8 bytes of 7 bits
 * each, the top bit set, most significant first (see bench/source-gen.c). */
gboolean
cims_whep_viewer_send_time_parse (const guint8 *packet, gsize size, gint64 *send_time_us)
{
  gsize offset = 12;
  const guint8 *nal;
  guint64 value = 0;

  if (size < 12 || (packet[0] >> 6) != 2)
    return FALSE;

  offset += 4 * (packet[0] & 0x0f);
  if ((packet[0] & 0x10) != 0) {
    if (size < offset + 4)
      return FALSE;
    offset += 4 + 4 * (gsize) (packet[offset + 2] << 8 | packet[offset + 3]);
  }
  if (size < offset + SEI_TIME_OFFSET + SEI_TIME_BYTES)
    return FALSE;

  nal = packet + offset;
  if ((nal[0] & 0x1f) != NAL_TYPE_SEI || nal[1] != SEI_USER_DATA_UNREGISTERED || nal[2] != SEI_PAYLOAD_SIZE
      || memcmp (nal + 3, SEI_UUID, 16) != 0)
    return FALSE;

  for (int i = 0; i < SEI_TIME_BYTES; i++) {
    if ((nal[SEI_TIME_OFFSET + i] & 0x80) == 0)
      return FALSE;
    value = value << 7 | (nal[SEI_TIME_OFFSET + i] & 0x7f);
  }

  *send_time_us = (gint64) value;
  return TRUE;
}

/* SIOCGSTAMPNS reads the socket's last receive time. Its first call makes
 * the kernel stamp every datagram on arrival (socket(7)), so it has no time
 * to return yet. */
void
cims_whep_viewer_socket_timestamps_enable (int fd)
{
  struct timespec arrival;

  if (ioctl (fd, SIOCGSTAMPNS, &arrival) != 0 && errno != ENOENT)
    g_warning ("socket %d: ioctl(SIOCGSTAMPNS) failed: %s; no socket latency", fd, g_strerror (errno));
}

gint64
cims_whep_viewer_socket_arrival_us (int fd)
{
  struct timespec arrival;

  if (fd < 0 || ioctl (fd, SIOCGSTAMPNS, &arrival) != 0)
    return -1;

  return (gint64) arrival.tv_sec * G_USEC_PER_SEC + arrival.tv_nsec / 1000;
}

void
cims_whep_viewer_latency_add (CimsWhepViewerLatency *latency, gint64 latency_us)
{
  gint64 bucket = latency_us / CIMS_WHEP_VIEWER_LATENCY_BUCKET_US;

  latency->counts[CLAMP (bucket, 0, CIMS_WHEP_VIEWER_LATENCY_N_BUCKETS - 1)]++;
  latency->n_samples++;
}

/* Nearest-rank percentile in milliseconds, at the bucket's upper edge; -1
 * without samples. */
double
cims_whep_viewer_latency_percentile_ms (const CimsWhepViewerLatency *latency, double fraction)
{
  guint64 rank;
  guint64 seen = 0;

  if (latency->n_samples == 0)
    return -1;

  rank = (guint64) (fraction * latency->n_samples + 0.999999);
  rank = CLAMP (rank, 1, latency->n_samples);
  for (guint i = 0; i < CIMS_WHEP_VIEWER_LATENCY_N_BUCKETS; i++) {
    seen += latency->counts[i];
    if (seen >= rank)
      return (i + 1) * CIMS_WHEP_VIEWER_LATENCY_BUCKET_US / 1000.0;
  }

  return CIMS_WHEP_VIEWER_LATENCY_N_BUCKETS * CIMS_WHEP_VIEWER_LATENCY_BUCKET_US / 1000.0;
}

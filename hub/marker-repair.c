/* SPDX-License-Identifier: Apache-2.0 */
/* Marks frame ends for cameras that leave the RTP marker bit unset. RFC 6184
 * and RFC 7798 require the bit on the last packet of each access unit, and
 * browsers assemble a frame only when it arrives: Chromium 156 decodes no
 * frame of an unmarked stream (the browser test's unmarked camera). A
 * receiver of such a stream learns that a frame has ended only when the next
 * frame's first packet arrives, so holding each packet until the next one
 * delays no frame's decoding. Some cameras mark only some frames (keyframes,
 * say), so the repair runs from the first frame that ends unmarked until
 * CIMS_MARKER_REPAIR_MARKED_FRAMES frames in a row came marked. */
#include "hub/marker-repair.h"

void
cims_marker_repair_init (CimsMarkerRepair *repair)
{
  repair->held_packet = NULL;
  repair->has_last = FALSE;
  repair->last_timestamp = 0;
  repair->last_marker = FALSE;
  repair->n_marked_frames = 0;
  repair->n_repaired = 0;
}

void
cims_marker_repair_clear (CimsMarkerRepair *repair)
{
  g_clear_pointer (&repair->held_packet, cims_rtp_packet_unref);
}

/* Notes @packet in the stream's history: a new RTP timestamp after an
 * unmarked packet is a frame that ended without a marker bit. */
static void
history_update (CimsMarkerRepair *repair, const CimsRtpPacket *packet)
{
  guint32 timestamp = cims_rtp_packet_get_timestamp (packet);
  gboolean marker = cims_rtp_packet_get_marker (packet);

  if (repair->has_last && timestamp != repair->last_timestamp && !repair->last_marker)
    repair->n_marked_frames = 0;
  if (marker && repair->n_marked_frames < CIMS_MARKER_REPAIR_MARKED_FRAMES)
    repair->n_marked_frames++;

  repair->has_last = TRUE;
  repair->last_timestamp = timestamp;
  repair->last_marker = marker;
}

/* Releases the held packet into @ready, marked when @next starts another
 * frame. The held packet is not shared yet, so it may still change. */
static guint
held_release (CimsMarkerRepair *repair, const CimsRtpPacket *next, CimsRtpPacket **ready)
{
  if (repair->held_packet == NULL)
    return 0;

  if (cims_rtp_packet_get_timestamp (repair->held_packet) != cims_rtp_packet_get_timestamp (next)
      && !cims_rtp_packet_get_marker (repair->held_packet)) {
    cims_rtp_packet_set_marker (repair->held_packet);
    repair->n_repaired++;
  }

  *ready = g_steal_pointer (&repair->held_packet);
  return 1;
}

guint
cims_marker_repair_push (CimsMarkerRepair *repair, CimsRtpPacket *packet, CimsRtpPacket *ready[2])
{
  guint n_ready = held_release (repair, packet, ready);

  history_update (repair, packet);

  /* A packet with the camera's own marker bit ends its frame, so only an
   * unmarked packet of a stream under repair waits for the next one. */
  if (repair->n_marked_frames >= CIMS_MARKER_REPAIR_MARKED_FRAMES || cims_rtp_packet_get_marker (packet)) {
    ready[n_ready++] = cims_rtp_packet_ref (packet);
    return n_ready;
  }

  repair->held_packet = cims_rtp_packet_ref (packet);
  return n_ready;
}

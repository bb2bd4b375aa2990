/* SPDX-License-Identifier: Apache-2.0 */
/* Marks frame ends for cameras that never set the RTP marker bit. RFC 6184
 * and RFC 7798 require the bit on the last packet of each access unit, and
 * browsers assemble a frame only when it arrives: Chromium 156 decodes no
 * frame of an unmarked stream (the browser test's unmarked camera). A receiver of such a stream learns that a frame has
 * ended only when the next frame's first packet arrives, so holding each
 * packet until the next one delays no frame's decoding. */
#include "hub/marker-repair.h"

void
cims_marker_repair_init (CimsMarkerRepair *repair)
{
  repair->held_packet = NULL;
  repair->n_since_marker = CIMS_MARKER_REPAIR_AFTER;
  repair->n_repaired = 0;
}

void
cims_marker_repair_clear (CimsMarkerRepair *repair)
{
  g_clear_pointer (&repair->held_packet, cims_rtp_packet_unref);
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

  if (cims_rtp_packet_get_marker (packet))
    repair->n_since_marker = 0;
  else if (repair->n_since_marker < CIMS_MARKER_REPAIR_AFTER)
    repair->n_since_marker++;

  /* A marked stream's packets pass at once. An unmarked one's wait for the
   * next packet, and so do the packets of a marked frame longer than
   * CIMS_MARKER_REPAIR_AFTER packets, which only costs them one packet's
   * delay because they share its timestamp. */
  if (repair->n_since_marker < CIMS_MARKER_REPAIR_AFTER) {
    ready[n_ready++] = cims_rtp_packet_ref (packet);
    return n_ready;
  }

  repair->held_packet = cims_rtp_packet_ref (packet);
  return n_ready;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Restores the RTP marker bit on the last packet of each frame for cameras
 * that leave it unset (marker-repair.c). */
#pragma once

#include "pipelines/pipelines.h"

G_BEGIN_DECLS

/* After this many packets without a marker bit the camera counts as one that
 * does not mark frame ends, and its packets are repaired. */
#define CIMS_MARKER_REPAIR_AFTER 256

/* Repair state of one camera stream. Callers serialize access to it. */
typedef struct {
  CimsRtpPacket *held_packet;   /* the last packet of an unmarked stream (transfer full), or NULL */
  guint n_since_marker;         /* camera packets since its last marker bit, capped at
                                 * CIMS_MARKER_REPAIR_AFTER */
  guint64 n_repaired;           /* marker bits set by the repair */
} CimsMarkerRepair;

/* Sets @repair to the state of a stream that has sent no marker bit yet, so
 * its packets are repaired until the first one. */
void cims_marker_repair_init (CimsMarkerRepair *repair);

/* Drops the held packet of a stream that ended or restarted. */
void cims_marker_repair_clear (CimsMarkerRepair *repair);

/* Takes the camera's next packet (transfer none) and stores in @ready the
 * packets to pass on now, in order (transfer full). Returns how many: 0, 1
 * or 2. A packet of an unmarked stream is held until the next one arrives,
 * and gets the marker bit when the next one starts a new frame (a new RTP
 * timestamp, RFC 3550 5.1). */
guint cims_marker_repair_push (CimsMarkerRepair *repair, CimsRtpPacket *packet, CimsRtpPacket *ready[2]);

G_END_DECLS

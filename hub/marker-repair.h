/* SPDX-License-Identifier: Apache-2.0 */
/* Restores the RTP marker bit on the last packet of each frame for cameras
 * that leave it unset on some or all frames (marker-repair.c). */
#pragma once

#include "pipelines/pipelines.h"

G_BEGIN_DECLS

/* The repair stops after this many frames in a row that ended with the
 * camera's own marker bit, and starts again at a frame that ends without. */
#define CIMS_MARKER_REPAIR_MARKED_FRAMES 8

/* Repair state of one camera stream. Callers serialize access to it. */
typedef struct {
  CimsRtpPacket *held_packet;   /* the last packet, while repairing (transfer full), or NULL */
  gboolean has_last;            /* a packet came before: last_timestamp and last_marker hold */
  guint32 last_timestamp;       /* RTP timestamp of the camera's last packet */
  gboolean last_marker;         /* whether the camera marked its last packet */
  guint n_marked_frames;        /* frames in a row that the camera marked, capped at
                                 * CIMS_MARKER_REPAIR_MARKED_FRAMES */
  guint64 n_repaired;           /* marker bits set by the repair */
} CimsMarkerRepair;

/* Sets @repair to the state of a new stream, which is repaired until it has
 * marked CIMS_MARKER_REPAIR_MARKED_FRAMES frames in a row. */
void cims_marker_repair_init (CimsMarkerRepair *repair);

/* Drops the held packet of a stream that ended or restarted. */
void cims_marker_repair_clear (CimsMarkerRepair *repair);

/* Takes the camera's next packet (transfer none) and stores in @ready the
 * packets to pass on now, in order (transfer full). Returns how many: 0, 1
 * or 2. While repairing, each packet is held until the next one arrives,
 * and gets the marker bit when the next one starts a new frame (a new RTP
 * timestamp, RFC 3550 5.1). */
guint cims_marker_repair_push (CimsMarkerRepair *repair, CimsRtpPacket *packet, CimsRtpPacket *ready[2]);

G_END_DECLS

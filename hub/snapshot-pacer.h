/* SPDX-License-Identifier: Apache-2.0 */
/* The queue that spreads a joining viewer's keyframe snapshot over several
 * bursts, with the live packets that arrive meanwhile kept behind it in
 * order (snapshot-pacer.c). */
#pragma once

#include "pipelines/pipelines.h"

G_BEGIN_DECLS

/* One viewer's snapshot in progress. Only the viewer's worker touches it. */
typedef struct {
  GPtrArray *packets;           /* the snapshot, then live packets (refs), or NULL when idle */
  guint snapshot_length;        /* how many of @packets belong to the snapshot */
  guint next;                   /* index of the next packet to send */
  gboolean is_mid_frame;        /* the last packet taken ends no frame */
  guint n_taken_in_burst;       /* packets taken since the last burst ended */
  guint n_idle_bursts;          /* bursts in a row that took nothing */
} CimsSnapshotPacer;

/* Starts pacing @snapshot (transfer full, of CimsRtpPacket with a free
 * function that drops their refs). @pacer must be idle. */
void cims_snapshot_pacer_start (CimsSnapshotPacer *pacer, GPtrArray *snapshot);

/* Returns TRUE from start until every queued packet was taken. */
gboolean cims_snapshot_pacer_is_active (const CimsSnapshotPacer *pacer);

/* Queues @n_packets live packets behind the snapshot, taking a ref on each.
 * @pacer must be active. */
void cims_snapshot_pacer_queue (CimsSnapshotPacer *pacer, CimsRtpPacket *const *packets, guint n_packets);

/* Takes up to @max_packets of the next packets and points @packets at them
 * (transfer none: valid until the next queue or clear). A run never mixes
 * snapshot and live packets: @is_snapshot is TRUE for a run of snapshot
 * packets, and such a run ends at the snapshot's last packet. Returns how
 * many, or 0 once every packet was taken. */
guint cims_snapshot_pacer_take (CimsSnapshotPacer *pacer, guint max_packets, CimsRtpPacket *const **packets,
                                gboolean *is_snapshot);

/* Ends a burst of takes, counting it as idle when it took nothing. */
void cims_snapshot_pacer_end_burst (CimsSnapshotPacer *pacer);

/* Returns TRUE once every queued packet was taken and the last one ended
 * its frame, or once @max_idle_bursts bursts in a row took nothing while
 * that frame's end was awaited. A viewer that joined while a keyframe was
 * still arriving thus gets the rest of that keyframe paced too. */
gboolean cims_snapshot_pacer_is_done (const CimsSnapshotPacer *pacer, guint max_idle_bursts);

/* Drops every packet, taken or not, and makes @pacer idle. */
void cims_snapshot_pacer_clear (CimsSnapshotPacer *pacer);

G_END_DECLS

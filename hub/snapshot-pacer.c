/* SPDX-License-Identifier: Apache-2.0 */
/* A joining viewer's keyframe snapshot, handed out a run at a time so that
 * the send path can pace it. Live packets that arrive before the snapshot is
 * sent wait behind it, so the viewer gets every packet once and in order.
 * The caller (viewer-media.c) sets the timing, and this file the order and
 * when pacing may end. */
#include "hub/snapshot-pacer.h"

void
cims_snapshot_pacer_start (CimsSnapshotPacer *pacer, GPtrArray *snapshot)
{
  g_return_if_fail (pacer->packets == NULL);

  pacer->packets = snapshot;
  pacer->snapshot_length = snapshot->len;
  pacer->next = 0;
  pacer->is_mid_frame = FALSE;
  pacer->n_taken_in_burst = 0;
  pacer->n_idle_bursts = 0;
}

gboolean
cims_snapshot_pacer_is_active (const CimsSnapshotPacer *pacer)
{
  return pacer->packets != NULL && pacer->next < pacer->packets->len;
}

void
cims_snapshot_pacer_queue (CimsSnapshotPacer *pacer, CimsRtpPacket *const *packets, guint n_packets)
{
  g_return_if_fail (pacer->packets != NULL);

  for (guint i = 0; i < n_packets; i++)
    g_ptr_array_add (pacer->packets, cims_rtp_packet_ref (packets[i]));
}

guint
cims_snapshot_pacer_take (CimsSnapshotPacer *pacer, guint max_packets, CimsRtpPacket *const **packets,
                          gboolean *is_snapshot)
{
  guint end;
  guint n;

  if (!cims_snapshot_pacer_is_active (pacer))
    return 0;

  /* A run stops at the snapshot's end, where the caller ends catch-up. */
  *is_snapshot = pacer->next < pacer->snapshot_length;
  end = *is_snapshot ? pacer->snapshot_length : pacer->packets->len;
  n = MIN (max_packets, end - pacer->next);

  *packets = (CimsRtpPacket *const *) pacer->packets->pdata + pacer->next;
  pacer->next += n;
  pacer->n_taken_in_burst += n;
  pacer->is_mid_frame = !cims_rtp_packet_get_marker ((*packets)[n - 1]);
  return n;
}

void
cims_snapshot_pacer_end_burst (CimsSnapshotPacer *pacer)
{
  pacer->n_idle_bursts = pacer->n_taken_in_burst == 0 ? pacer->n_idle_bursts + 1 : 0;
  pacer->n_taken_in_burst = 0;
}

gboolean
cims_snapshot_pacer_is_done (const CimsSnapshotPacer *pacer, guint max_idle_bursts)
{
  if (cims_snapshot_pacer_is_active (pacer))
    return FALSE;

  return !pacer->is_mid_frame || pacer->n_idle_bursts >= max_idle_bursts;
}

void
cims_snapshot_pacer_clear (CimsSnapshotPacer *pacer)
{
  g_clear_pointer (&pacer->packets, g_ptr_array_unref);
  pacer->snapshot_length = 0;
  pacer->next = 0;
  pacer->is_mid_frame = FALSE;
  pacer->n_taken_in_burst = 0;
  pacer->n_idle_bursts = 0;
}

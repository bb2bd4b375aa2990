/* SPDX-License-Identifier: Apache-2.0 */
/* Decides when a camera source wakes the media workers, from the marker bit
 * and RTP timestamp of each packet it queues. Queuing and waking stay in
 * source.c. */
#include "hub/frame-wake.h"

void
cims_frame_wake_init (CimsFrameWake *wake)
{
  wake->last_timestamp = 0;
  wake->n_since_marker = CIMS_FRAME_WAKE_MARKERLESS_AFTER;
  wake->n_queued = 0;
}

/* The workers wake at the end of each frame (the RTP marker bit), so a
 * frame's packets cost each worker one wake-up and go to each viewer in one
 * sendmmsg(). Since a frame is decodable only once its last packet arrives,
 * holding its first packets back delays no picture. A long frame wakes them
 * every CIMS_FRAME_WAKE_BATCH_MAX packets, and a new RTP timestamp behind
 * queued packets (the last frame's marker packet was lost) wakes them too.
 * A stream wakes them on every packet until its first marker bit and again
 * after CIMS_FRAME_WAKE_MARKERLESS_AFTER packets without one, so a stream
 * that never marks frame ends is not held back. A camera's packets reach
 * these rules after marker-repair.c has marked its frame ends. */
static gboolean
frame_wake_is_due (CimsFrameWake *wake, gboolean marker, guint32 timestamp)
{
  gboolean is_new_frame = timestamp != wake->last_timestamp;

  wake->last_timestamp = timestamp;
  if (marker) {
    wake->n_since_marker = 0;
    return TRUE;
  }

  if (wake->n_since_marker < CIMS_FRAME_WAKE_MARKERLESS_AFTER)
    wake->n_since_marker++;
  return wake->n_since_marker >= CIMS_FRAME_WAKE_MARKERLESS_AFTER
         || wake->n_queued >= CIMS_FRAME_WAKE_BATCH_MAX
         || (is_new_frame && wake->n_queued > 1);
}

gboolean
cims_frame_wake_packet (CimsFrameWake *wake, gboolean marker, guint32 timestamp)
{
  wake->n_queued++;
  if (!frame_wake_is_due (wake, marker, timestamp))
    return FALSE;

  wake->n_queued = 0;
  return TRUE;
}

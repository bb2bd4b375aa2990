/* SPDX-License-Identifier: Apache-2.0 */
/* The rules for when a camera source wakes the media workers for its queued
 * RTP packets (frame-wake.c). Queuing the packets and waking the workers
 * stay in source.c. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A frame longer than this many packets wakes the workers part way, so a
 * keyframe's first packets leave before its last ones arrive. */
#define CIMS_FRAME_WAKE_BATCH_MAX 32
/* After this many packets without a marker bit the stream counts as one that
 * does not mark frame ends, and every packet wakes the workers. */
#define CIMS_FRAME_WAKE_MARKERLESS_AFTER 256

/* Wake state of one RTP stream. Callers serialize access to it. */
typedef struct {
  guint32 last_timestamp;       /* RTP timestamp of the last packet */
  guint n_since_marker;         /* packets since the last marker bit, capped
                                 * at CIMS_FRAME_WAKE_MARKERLESS_AFTER */
  guint n_queued;               /* packets queued since the last wake */
} CimsFrameWake;

/* Sets @wake to the state of a stream that has sent no marker bit yet, so
 * every packet wakes the workers until the first one. Calling it on a state
 * in use starts that stream over. */
void cims_frame_wake_init (CimsFrameWake *wake);

/* Counts one packet that the caller has just queued for the workers, with
 * the RTP header's marker bit @marker and RTP timestamp @timestamp. Returns
 * TRUE when the workers should run now, and then counts the packets queued
 * so far as delivered. */
gboolean cims_frame_wake_packet (CimsFrameWake *wake, gboolean marker, guint32 timestamp);

G_END_DECLS

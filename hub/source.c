/* SPDX-License-Identifier: Apache-2.0 */
/* A camera source: the RTSP ingest of one camera, its master keyframe
 * cache, and the feeds that carry its packets to the media workers with
 * viewers of it. The ingest is pipelines/rtsp-ingest.c; fan-out to viewers
 * happens on the workers (worker.c). */
#include "hub/hub-runtime.h"

#include <string.h>

#include "hub/frame-wake.h"
#include "hub/marker-repair.h"

/* Enough for several seconds of a 4 Mbit/s camera between keyframes. */
#define KEYFRAME_CACHE_MAX_BYTES (4 * 1024 * 1024)
#define PACKET_HISTORY_SIZE 1024
/* A stream's marker repair is logged once it has marked this many frames. */
#define MARKER_REPAIRS_LOGGED_AFTER 8
/* Maximum wait of the viewers of an H.264 camera whose SDP gives no
 * profile, for the SPS it sends before each IDR. The wait is also at most
 * half the connect timeout, so it ends before the viewers give up. */
#define SPS_WAIT_MAX_US (3 * G_USEC_PER_SEC)

typedef struct {
  CimsSourceReadyFunc func;
  gpointer user_data;
} ReadyWaiter;

struct _CimsSource {
  CimsHub *hub;
  char *key;                    /* in hub->sources: the camera id, or camera/profile/codec */
  char *camera_id;
  CimsIngest *ingest;           /* camera sources only */

  /* A transcode source decodes its upstream camera source's packets. */
  CimsSource *upstream;
  CimsTranscoder *transcoder;
  char *profile_name;

  /* Guards everything below: taken by the streaming thread once per
   * packet, and by a worker when its first viewer of this camera joins or
   * its last one leaves. Never taken per viewer. */
  GMutex lock;
  CimsFeedRing *rings[CIMS_MAX_WORKERS];  /* NULL: no viewer on that worker */
  CimsKeyframeCache *cache;     /* seeds a new feed with the current keyframe */
  GPtrArray *parameter_sets;    /* of GBytes, out of band, for new feed caches */
  CimsCodec codec;
  guint32 profile_level_id;
  char *fmtp;
  guint32 epoch;
  gboolean has_format;          /* codec known, and the H.264 profile or the wait for it over */
  gboolean is_awaiting_sps;     /* H.264 without a profile in the SDP: waits for an in-band SPS */
  gint64 format_us;             /* when the format arrived */
  gint64 sps_wait_us;           /* how long viewers wait for that SPS */
  atomic_uint format_generation;
  atomic_int n_subscribers;
  guint clock_rate;
  guint width;                  /* from the camera's SPS; 0 until one is seen */
  guint height;
  GPtrArray *transcoders;       /* of CimsTranscoder fed by this camera (transfer none) */
  gboolean wake_pending[CIMS_MAX_WORKERS];  /* packets queued since that worker's last wake */
  CimsFrameWake frame_wake;
  CimsMarkerRepair marker_repair;  /* camera sources only */

  /* Main context only. */
  GArray *waiters;              /* of ReadyWaiter */
  guint ready_timeout_id;
  guint idle_timeout_id;
  char *last_error;
  gboolean is_stopping;
  gboolean is_ingest_stopped;   /* the ingest gave up (an unsupported codec, say) */
  gboolean is_kept;             /* pulled with or without viewers (on_demand = false) */
  char *url;                    /* the ingest's connection settings, to compare on reload */
  char *username;
  char *password;               /* never logged */
};

static void transcode_stop (CimsSource *source);

/* ---- format and readiness ------------------------------------------------ */

static void
waiters_notify (CimsSource *source, const GError *error)
{
  g_autoptr (GArray) waiters = g_steal_pointer (&source->waiters);

  source->waiters = g_array_new (FALSE, FALSE, sizeof (ReadyWaiter));
  g_clear_handle_id (&source->ready_timeout_id, g_source_remove);

  for (guint i = 0; i < waiters->len; i++) {
    ReadyWaiter *waiter = &g_array_index (waiters, ReadyWaiter, i);
    waiter->func (source, error, waiter->user_data);
  }
}

/* Takes the picture size from an SPS NAL unit and, for H.264, the
 * profile-level-id when the fmtp did not give one. */
static void
source_read_sps (CimsSource *source, const guint8 *nal, gsize size)
{
  cims_sps_parse_size (source->codec, nal, size, &source->width, &source->height);
  if (source->codec == CIMS_CODEC_H264 && source->profile_level_id == 0)
    source->profile_level_id = cims_h264_sps_profile_level_id (nal, size);
}

/* Reads the first parameter set that is an SPS. */
static void
source_read_parameter_sets (CimsSource *source, GPtrArray *parameter_sets)
{
  for (guint i = 0; parameter_sets != NULL && i < parameter_sets->len; i++) {
    gsize size = 0;
    const guint8 *nal = g_bytes_get_data (g_ptr_array_index (parameter_sets, i), &size);

    if (cims_nal_classify_unit (source->codec, nal, size) & CIMS_NAL_FLAG_SPS) {
      source_read_sps (source, nal, size);
      return;
    }
  }
}

static void
sps_unit_cb (const guint8 *nal, gsize size, gpointer user_data)
{
  CimsSource *source = user_data;

  if (cims_nal_classify_unit (source->codec, nal, size) & CIMS_NAL_FLAG_SPS)
    source_read_sps (source, nal, size);
}

/* Reads an in-band SPS, alone in its packet or in an aggregation (STAP-A,
 * AP) with the PPS, as many cameras send it before each IDR. */
static void
source_read_packet_sps (CimsSource *source, CimsRtpPacket *packet)
{
  gsize size = 0;
  const guint8 *payload = cims_rtp_packet_get_payload (packet, &size);

  if (payload == NULL || !(cims_nal_classify (source->codec, payload, size) & CIMS_NAL_FLAG_SPS))
    return;

  cims_nal_foreach_unit (source->codec, payload, size, sps_unit_cb, source);
}

/* Ends the wait for an in-band SPS once the profile is known or the wait
 * is over. Returns TRUE when it ended just now. Call with
 * source->lock held. */
static gboolean
source_sps_wait_end (CimsSource *source)
{
  if (!source->is_awaiting_sps)
    return FALSE;
  if (source->profile_level_id == 0 && g_get_monotonic_time () - source->format_us < source->sps_wait_us)
    return FALSE;

  source->is_awaiting_sps = FALSE;
  source->has_format = TRUE;
  return TRUE;
}

static gboolean
format_known_cb (gpointer user_data)
{
  CimsSource *source = user_data;

  /* The transcoders follow the camera's new format (a reboot can change
   * its codec parameters). */
  for (guint i = 0; source->transcoders != NULL && i < source->transcoders->len; i++)
    cims_transcoder_set_input_format (g_ptr_array_index (source->transcoders, i), source->codec,
                                      source->clock_rate, source->fmtp, source->parameter_sets, source->epoch);

  waiters_notify (source, NULL);
  return G_SOURCE_REMOVE;
}

/* Announces a format that waited for an in-band SPS. Streaming thread. */
static void
source_format_known_after_sps (CimsSource *source)
{
  guint32 profile_level_id;

  g_mutex_lock (&source->lock);
  profile_level_id = source->profile_level_id;
  g_mutex_unlock (&source->lock);

  if (profile_level_id != 0)
    g_message ("camera=%s: H.264 profile-level-id %06x, from the SPS in the stream", source->camera_id,
               profile_level_id);
  else
    g_message ("camera=%s: no SPS in the stream within %" G_GINT64_FORMAT " ms, so the H.264 profile "
               "stays unknown and viewers get the stream without a profile check", source->camera_id,
               source->sps_wait_us / 1000);
  g_main_context_invoke (source->hub->main_context, format_known_cb, source);
}

static void
ingest_format_cb (CimsCodec codec, guint clock_rate, const char *fmtp, GPtrArray *parameter_sets,
                  guint32 epoch, gpointer user_data)
{
  CimsSource *source = user_data;
  gboolean is_awaiting_sps;

  g_mutex_lock (&source->lock);
  if (source->cache == NULL || source->codec != codec) {
    g_clear_pointer (&source->cache, cims_keyframe_cache_free);
    source->cache = cims_keyframe_cache_new (codec, KEYFRAME_CACHE_MAX_BYTES, PACKET_HISTORY_SIZE);
  } else {
    cims_keyframe_cache_reset (source->cache);
  }
  g_clear_pointer (&source->parameter_sets, g_ptr_array_unref);
  if (parameter_sets != NULL && parameter_sets->len > 0) {
    cims_keyframe_cache_set_parameter_sets (source->cache, parameter_sets);
    source->parameter_sets = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
    for (guint i = 0; i < parameter_sets->len; i++)
      g_ptr_array_add (source->parameter_sets, g_bytes_ref (g_ptr_array_index (parameter_sets, i)));
  }

  /* A new stream: the packet held from the last one belongs to no frame of it. */
  cims_marker_repair_clear (&source->marker_repair);
  cims_marker_repair_init (&source->marker_repair);
  source->codec = codec;
  source->clock_rate = clock_rate;
  g_free (source->fmtp);
  source->fmtp = g_strdup (fmtp);
  source->profile_level_id = codec == CIMS_CODEC_H264 ? cims_h264_profile_level_id_from_fmtp (fmtp) : 0;
  source_read_parameter_sets (source, parameter_sets);
  source->epoch = epoch;
  source->format_us = g_get_monotonic_time ();
  /* Negotiation matches the viewer's offer to the camera's H.264 profile,
   * so without one in the SDP the viewers wait for the first SPS. */
  source->is_awaiting_sps = codec == CIMS_CODEC_H264 && source->profile_level_id == 0;
  source->has_format = !source->is_awaiting_sps;
  is_awaiting_sps = source->is_awaiting_sps;
  atomic_fetch_add (&source->format_generation, 1);
  g_mutex_unlock (&source->lock);

  g_message ("camera=%s: video is %s, epoch %u, fmtp \"%s\"%s", source->camera_id,
             cims_codec_to_string (codec), epoch, fmtp ? fmtp : "",
             is_awaiting_sps ? "; waiting for an SPS in the stream for the H.264 profile" : "");
  if (!is_awaiting_sps)
    g_main_context_invoke (source->hub->main_context, format_known_cb, source);
}

static gboolean
ready_timeout_cb (gpointer user_data)
{
  CimsSource *source = user_data;
  g_autoptr (GError) error = NULL;

  source->ready_timeout_id = 0;
  error = g_error_new (CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED,
                       "Camera %s did not deliver video within %u ms%s%s", source->camera_id,
                       source->hub->config->source_connect_timeout_ms,
                       source->last_error ? ": " : "", source->last_error ? source->last_error : "");
  waiters_notify (source, error);
  return G_SOURCE_REMOVE;
}

void
cims_source_when_ready (CimsSource *source, CimsSourceReadyFunc func, gpointer user_data)
{
  ReadyWaiter waiter = { func, user_data };
  gboolean has_format;

  g_mutex_lock (&source->lock);
  has_format = source->has_format;
  g_mutex_unlock (&source->lock);

  if (has_format) {
    func (source, NULL, user_data);
    return;
  }

  g_array_append_val (source->waiters, waiter);
  if (source->ready_timeout_id == 0)
    source->ready_timeout_id = g_timeout_add (source->hub->config->source_connect_timeout_ms,
                                              ready_timeout_cb, source);
}

/* ---- packets ----------------------------------------------------------------- */

/* Keeps the master cache current and hands the packet to every worker
 * with viewers of this source. Lock held. */
static void
source_dispatch_locked (CimsSource *source, CimsRtpPacket *packet)
{
  CimsHub *hub = source->hub;

  cims_keyframe_cache_push (source->cache, packet);
  for (guint i = 0; i < hub->n_workers; i++) {
    if (source->rings[i] == NULL)
      continue;
    if (cims_feed_ring_push (source->rings[i], cims_rtp_packet_ref (packet))) {
      source->wake_pending[i] = TRUE;
    } else {
      cims_rtp_packet_unref (packet);
      CIMS_METRIC_ADD (hub, feed_overflows, 1);
    }
  }
}

/* Queues @packet for the workers and, when the rules of frame-wake.c say
 * they should run now, moves the workers to wake into @wake. Lock held. */
static void
source_queue_locked (CimsSource *source, CimsRtpPacket *packet, gboolean *wake)
{
  source_dispatch_locked (source, packet);
  if (!cims_frame_wake_packet (&source->frame_wake, cims_rtp_packet_get_marker (packet),
                               cims_rtp_packet_get_timestamp (packet)))
    return;

  memcpy (wake, source->wake_pending, sizeof source->wake_pending);
  memset (source->wake_pending, 0, sizeof source->wake_pending);
}

static void
workers_wake (CimsHub *hub, const gboolean *wake)
{
  for (guint i = 0; i < hub->n_workers; i++)
    if (wake[i])
      cims_worker_wake (hub->workers[i]);
}

/* Queues one camera packet for the workers and the transcoders. Lock held. */
static void
camera_packet_queue_locked (CimsSource *source, CimsRtpPacket *packet, gboolean *wake)
{
  source_queue_locked (source, packet, wake);
  for (guint i = 0; i < source->transcoders->len; i++)
    cims_transcoder_push (g_ptr_array_index (source->transcoders, i), packet);
}

/* Streaming thread of the camera's ingest. */
static void
ingest_packet_cb (CimsRtpPacket *packet, gpointer user_data)
{
  CimsSource *source = user_data;
  gboolean wake[CIMS_MAX_WORKERS] = { FALSE };
  CimsRtpPacket *ready[2];
  guint n_ready;
  guint64 n_repaired;
  gboolean is_repair_logged;
  gboolean is_format_known;

  g_mutex_lock (&source->lock);
  if (source->cache == NULL || packet->epoch != source->epoch) {
    g_mutex_unlock (&source->lock);
    return;
  }

  if (source->width == 0 || (source->codec == CIMS_CODEC_H264 && source->profile_level_id == 0))
    source_read_packet_sps (source, packet);
  is_format_known = source_sps_wait_end (source);
  n_repaired = source->marker_repair.n_repaired;
  n_ready = cims_marker_repair_push (&source->marker_repair, packet, ready);
  for (guint i = 0; i < n_ready; i++) {
    camera_packet_queue_locked (source, ready[i], wake);
    cims_rtp_packet_unref (ready[i]);
  }
  /* Logged after several repairs, since a single one can come from a lost
   * packet or from parameter sets sent with their own timestamp. */
  is_repair_logged = n_repaired < MARKER_REPAIRS_LOGGED_AFTER
                     && source->marker_repair.n_repaired >= MARKER_REPAIRS_LOGGED_AFTER;
  g_mutex_unlock (&source->lock);

  workers_wake (source->hub, wake);
  if (is_format_known)
    source_format_known_after_sps (source);
  if (is_repair_logged)
    g_message ("camera=%s: the camera leaves the RTP marker bit unset at frame ends; the hub sets it on "
               "each such frame's last packet when the next frame starts", source->camera_id);
}

static void
ingest_state_cb (CimsIngestState state, const char *message, gpointer user_data)
{
  CimsSource *source = user_data;

  if (state == CIMS_INGEST_STATE_RECONNECTING) {
    CIMS_METRIC_ADD (source->hub, source_reconnects, 1);
    g_free (source->last_error);
    source->last_error = g_strdup (message);
    g_warning ("camera=%s: %s; viewers stay connected while the hub reconnects",
               source->camera_id, message ? message : "connection lost");
  } else if (state == CIMS_INGEST_STATE_PLAYING) {
    g_clear_pointer (&source->last_error, g_free);
    g_message ("camera=%s: receiving video", source->camera_id);
  } else if (state == CIMS_INGEST_STATE_STOPPED && message != NULL && !source->is_stopping) {
    source->is_ingest_stopped = TRUE;
    g_free (source->last_error);
    source->last_error = g_strdup (message);
    g_warning ("camera=%s: ingest stopped: %s", source->camera_id, message);
  }
}

/* ---- lifetime ---------------------------------------------------------------- */

/* Creates and starts the ingest of @camera's RTSP source, and keeps its
 * connection settings. */
static void
source_ingest_start (CimsSource *source, const CimsConfigCamera *camera)
{
  const CimsConfig *config = source->hub->config;
  CimsIngestSettings settings = {
    .camera_id = camera->id,
    .url = camera->source,
    .username = camera->source_username,
    .password = camera->source_password,
    .latency_ms = config->ingest_latency_ms,
    .connect_timeout_ms = config->source_connect_timeout_ms,
    .reconnect_min_ms = config->reconnect_min_ms,
    .reconnect_max_ms = config->reconnect_max_ms,
  };
  CimsIngestCallbacks callbacks = {
    .on_packet = ingest_packet_cb,
    .on_format = ingest_format_cb,
    .on_state = ingest_state_cb,
  };

  g_mutex_lock (&source->lock);
  settings.last_epoch = source->epoch;
  g_mutex_unlock (&source->lock);

  g_free (source->url);
  g_free (source->username);
  g_free (source->password);
  source->url = g_strdup (camera->source);
  source->username = g_strdup (camera->source_username);
  source->password = g_strdup (camera->source_password);
  source->ingest = cims_ingest_new (&settings, &callbacks, source);
  cims_ingest_start (source->ingest);
}

CimsSource *
cims_source_new (CimsHub *hub, const CimsConfigCamera *camera)
{
  CimsSource *source = g_new0 (CimsSource, 1);
  const CimsConfig *config = hub->config;

  source->hub = hub;
  cims_frame_wake_init (&source->frame_wake);
  cims_marker_repair_init (&source->marker_repair);
  source->key = g_strdup (camera->id);
  source->camera_id = g_strdup (camera->id);
  source->sps_wait_us = MIN (SPS_WAIT_MAX_US, (gint64) config->source_connect_timeout_ms * 1000 / 2);
  g_mutex_init (&source->lock);
  source->waiters = g_array_new (FALSE, FALSE, sizeof (ReadyWaiter));
  source->transcoders = g_ptr_array_new ();

  source_ingest_start (source, camera);
  atomic_fetch_add (&hub->metrics.sources_active, 1);
  g_message ("camera=%s: ingest started", camera->id);
  return source;
}

/* Replaces the ingest with a new one for @camera. Viewers stay: the new
 * connection's stream is a new epoch to them, as after a reconnect. The
 * keyframe caches are emptied, so that a new viewer never gets a picture of
 * the old connection. Main context. */
static void
source_ingest_restart (CimsSource *source, const CimsConfigCamera *camera)
{
  source->is_stopping = TRUE;
  cims_ingest_stop (source->ingest);
  g_clear_pointer (&source->ingest, cims_ingest_free);
  source->is_stopping = FALSE;
  source->is_ingest_stopped = FALSE;

  /* The workers replace their own caches too, before their next batch. */
  g_mutex_lock (&source->lock);
  if (source->cache != NULL)
    cims_keyframe_cache_reset (source->cache);
  atomic_fetch_add (&source->format_generation, 1);
  g_mutex_unlock (&source->lock);

  source_ingest_start (source, camera);
}

/* See hub-runtime.h. */
void
cims_source_update_camera (CimsSource *source, const CimsConfigCamera *camera)
{
  if (source->ingest == NULL
      || (g_strcmp0 (source->url, camera->source) == 0 && g_strcmp0 (source->username, camera->source_username) == 0
          && g_strcmp0 (source->password, camera->source_password) == 0))
    return;

  g_message ("camera=%s: its source URL or login changed, connecting again", source->camera_id);
  source_ingest_restart (source, camera);
}

/* See hub-runtime.h. */
void
cims_source_retry_stopped (CimsSource *source, const CimsConfigCamera *camera)
{
  if (source->ingest == NULL || !source->is_ingest_stopped)
    return;

  g_message ("camera=%s: its ingest had stopped (%s); connecting again", source->camera_id,
             source->last_error ? source->last_error : "no reason given");
  source_ingest_restart (source, camera);
}

void
cims_source_free (CimsSource *source)
{
  g_autoptr (GError) error = g_error_new (CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED,
                                          "The camera source was stopped");

  waiters_notify (source, error);
  g_clear_handle_id (&source->idle_timeout_id, g_source_remove);

  source->is_stopping = TRUE;
  if (source->ingest != NULL) {
    cims_ingest_stop (source->ingest);
    g_clear_pointer (&source->ingest, cims_ingest_free);
    atomic_fetch_sub (&source->hub->metrics.sources_active, 1);
  }
  if (source->transcoder != NULL)
    transcode_stop (source);

  g_mutex_lock (&source->lock);
  for (guint i = 0; i < CIMS_MAX_WORKERS; i++)
    g_warn_if_fail (source->rings[i] == NULL);
  g_clear_pointer (&source->cache, cims_keyframe_cache_free);
  g_clear_pointer (&source->parameter_sets, g_ptr_array_unref);
  cims_marker_repair_clear (&source->marker_repair);
  g_mutex_unlock (&source->lock);
  g_mutex_clear (&source->lock);

  g_array_unref (source->waiters);
  g_warn_if_fail (source->transcoders->len == 0);
  g_ptr_array_unref (source->transcoders);
  g_free (source->key);
  g_free (source->profile_name);
  g_free (source->fmtp);
  g_free (source->last_error);
  g_free (source->camera_id);
  g_free (source->url);
  g_free (source->username);
  g_free (source->password);
  g_free (source);
}

const char *
cims_source_get_camera_id (CimsSource *source)
{
  return source->camera_id;
}

const char *
cims_source_get_key (CimsSource *source)
{
  return source->key;
}

void
cims_source_get_size (CimsSource *source, guint *width, guint *height)
{
  g_mutex_lock (&source->lock);
  *width = source->width;
  *height = source->height;
  g_mutex_unlock (&source->lock);
}

CimsTranscoder *
cims_source_get_transcoder (CimsSource *source)
{
  return source->transcoder;
}

const char *
cims_source_get_profile_name (CimsSource *source)
{
  return source->profile_name;
}

CimsCodec
cims_source_get_codec (CimsSource *source)
{
  return source->codec;
}

guint32
cims_source_get_profile_level_id (CimsSource *source)
{
  guint32 profile_level_id;

  /* The streaming thread sets it from an in-band SPS. */
  g_mutex_lock (&source->lock);
  profile_level_id = source->profile_level_id;
  g_mutex_unlock (&source->lock);
  return profile_level_id;
}


/* ---- subscribers and idle stop ---------------------------------------------- */

static gboolean
source_has_sessions (CimsSource *source)
{
  GHashTableIter iter;
  gpointer entry;

  if (source->transcoders->len > 0)
    return TRUE;

  /* Sessions still negotiating are not subscribers yet, but they hold this
   * source: it stays while any session that uses it exists. */
  g_hash_table_iter_init (&iter, source->hub->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &entry)) {
    CimsViewerSession *session = entry;

    if (cims_viewer_session_get_source (session) == source
        || (source->upstream == NULL
            && g_strcmp0 (cims_viewer_session_get_camera_id (session), source->camera_id) == 0))
      return TRUE;
  }

  return cims_source_get_n_subscribers (source) > 0;
}

static gboolean
idle_stop_cb (gpointer user_data)
{
  CimsSource *source = user_data;

  source->idle_timeout_id = 0;
  if (source_has_sessions (source))
    return G_SOURCE_REMOVE;

  if (source->upstream == NULL)
    g_message ("camera=%s: no viewer for %u s, stopping the ingest", source->camera_id,
               source->hub->config->idle_source_stop_s);
  g_hash_table_remove (source->hub->sources, source->key);
  return G_SOURCE_REMOVE;
}

void
cims_source_check_idle (CimsSource *source)
{
  /* A transcode stops as soon as its last viewer leaves; it restarts at
   * the next keyframe. A camera connection is kept a while for the next. */
  guint delay_s = source->upstream != NULL ? 0 : source->hub->config->idle_source_stop_s;

  if (source->is_kept)
    return;

  if (!source_has_sessions (source) && source->idle_timeout_id == 0)
    source->idle_timeout_id = g_timeout_add_seconds (delay_s, idle_stop_cb, source);
}

guint
cims_source_get_n_subscribers (CimsSource *source)
{
  return (guint) atomic_load (&source->n_subscribers);
}

void
cims_source_count_subscriber (CimsSource *source, int delta)
{
  atomic_fetch_add (&source->n_subscribers, delta);
}

void
cims_source_cancel_idle_stop (CimsSource *source)
{
  g_clear_handle_id (&source->idle_timeout_id, g_source_remove);
}

/* See hub-runtime.h. */
void
cims_source_set_kept (CimsSource *source, gboolean is_kept, const char *reason)
{
  if (source->is_kept == is_kept)
    return;

  source->is_kept = is_kept;
  if (is_kept) {
    cims_source_cancel_idle_stop (source);
    g_message ("camera=%s: pulled whether or not anyone watches (on_demand = false)", source->camera_id);
  } else {
    g_message ("camera=%s: no longer pulled without viewers (%s); the ingest stops %u s after the last "
               "viewer leaves", source->camera_id, reason, source->hub->config->idle_source_stop_s);
    cims_source_check_idle (source);
  }
}

guint
cims_source_get_format_generation (CimsSource *source)
{
  return atomic_load (&source->format_generation);
}

static CimsKeyframeCache *
feed_cache_new (CimsSource *source)
{
  CimsKeyframeCache *cache = cims_keyframe_cache_new (source->codec, KEYFRAME_CACHE_MAX_BYTES,
                                                      PACKET_HISTORY_SIZE);

  if (source->parameter_sets != NULL)
    cims_keyframe_cache_set_parameter_sets (cache, source->parameter_sets);
  return cache;
}

guint
cims_source_attach_feed (CimsSource *source, guint worker_index, CimsFeedRing **ring,
                         CimsKeyframeCache **cache)
{
  g_autoptr (GPtrArray) snapshot = NULL;
  guint generation;

  g_mutex_lock (&source->lock);
  *ring = cims_feed_ring_new ();
  *cache = feed_cache_new (source);

  /* The worker's cache starts from the master's current keyframe, and the
   * ring carries every packet after it: nothing is missed or repeated,
   * because both happen under the lock the producer holds per packet. */
  if (source->cache != NULL) {
    snapshot = cims_keyframe_cache_snapshot (source->cache);
    for (guint i = 0; i < snapshot->len; i++) {
      CimsRtpPacket *packet = g_ptr_array_index (snapshot, i);
      if (!packet->is_synthetic)
        cims_keyframe_cache_push (*cache, packet);
    }
  }

  source->rings[worker_index] = *ring;
  generation = atomic_load (&source->format_generation);
  g_mutex_unlock (&source->lock);
  return generation;
}

void
cims_source_detach_feed (CimsSource *source, guint worker_index)
{
  g_mutex_lock (&source->lock);
  source->rings[worker_index] = NULL;
  g_mutex_unlock (&source->lock);
}

guint
cims_source_refresh_feed_cache (CimsSource *source, CimsKeyframeCache **cache)
{
  guint generation;

  g_mutex_lock (&source->lock);
  g_clear_pointer (cache, cims_keyframe_cache_free);
  *cache = feed_cache_new (source);
  generation = atomic_load (&source->format_generation);
  g_mutex_unlock (&source->lock);
  return generation;
}

/* ---- transcode sources --------------------------------------------------------- */

/* Streaming thread of the transcoder's encoder. */
static void
transcode_packet_cb (CimsRtpPacket *packet, gpointer user_data)
{
  CimsSource *source = user_data;
  gboolean wake[CIMS_MAX_WORKERS] = { FALSE };

  g_mutex_lock (&source->lock);
  if (packet->epoch != source->epoch) {
    /* The transcoder rebuilt its pipeline: a new stream for the caches. */
    cims_keyframe_cache_reset (source->cache);
    source->epoch = packet->epoch;
    atomic_fetch_add (&source->format_generation, 1);
  }
  source_queue_locked (source, packet, wake);
  g_mutex_unlock (&source->lock);

  workers_wake (source->hub, wake);
}

static void
transcode_state_cb (CimsTranscoderState state, const char *message, gpointer user_data)
{
  CimsSource *source = user_data;

  if (state == CIMS_TRANSCODER_STATE_RESTARTING)
    g_warning ("camera=%s profile=%s: transcoder restarting: %s", source->camera_id, source->profile_name,
               message ? message : "pipeline error");
  else if (state == CIMS_TRANSCODER_STATE_RUNNING)
    g_message ("camera=%s profile=%s: transcoded video is flowing", source->camera_id, source->profile_name);
}

/* Starts feeding the transcoder from the camera: its current keyframe
 * first, so the decoder starts at once, then every packet. */
static void
transcode_attach (CimsSource *source)
{
  CimsSource *camera = source->upstream;
  g_autoptr (GPtrArray) snapshot = NULL;

  g_mutex_lock (&camera->lock);
  if (camera->has_format)
    cims_transcoder_set_input_format (source->transcoder, camera->codec, camera->clock_rate, camera->fmtp,
                                      camera->parameter_sets, camera->epoch);
  cims_transcoder_start (source->transcoder);
  if (camera->cache != NULL) {
    snapshot = cims_keyframe_cache_snapshot (camera->cache);
    for (guint i = 0; i < snapshot->len; i++)
      cims_transcoder_push (source->transcoder, g_ptr_array_index (snapshot, i));
  }
  g_ptr_array_add (camera->transcoders, source->transcoder);
  g_mutex_unlock (&camera->lock);
}

static void
transcode_stop (CimsSource *source)
{
  CimsSource *camera = source->upstream;

  g_mutex_lock (&camera->lock);
  g_ptr_array_remove (camera->transcoders, source->transcoder);
  g_mutex_unlock (&camera->lock);

  g_clear_pointer (&source->transcoder, cims_transcoder_free);
  atomic_fetch_sub (&source->hub->metrics.transcoders_active, 1);
  g_message ("camera=%s profile=%s: transcoder stopped", source->camera_id, source->profile_name);
  cims_source_check_idle (camera);
}

char *
cims_source_transcode_key (const char *camera_id, const char *profile_name, CimsCodec codec)
{
  return g_strdup_printf ("%s/%s/%s", camera_id, profile_name, cims_codec_to_string (codec));
}

CimsSource *
cims_source_new_transcode (CimsHub *hub, CimsSource *camera, const CimsConfigProfile *profile,
                           CimsCodec output_codec)
{
  CimsSource *source = g_new0 (CimsSource, 1);
  CimsTranscoderSettings settings = {
    .camera_id = camera->camera_id,
    .profile_name = profile->name,
    .output_codec = output_codec,
    .max_width = profile->max_width,
    .max_height = profile->max_height,
    .max_fps = profile->max_fps,
    .max_kbps = profile->max_kbps,
    .payload_type = 96,
  };
  CimsTranscoderCallbacks callbacks = {
    .on_packet = transcode_packet_cb,
    .on_state = transcode_state_cb,
  };

  source->hub = hub;
  cims_frame_wake_init (&source->frame_wake);
  source->upstream = camera;
  source->key = cims_source_transcode_key (camera->camera_id, profile->name, output_codec);
  source->camera_id = g_strdup (camera->camera_id);
  source->profile_name = g_strdup (profile->name);
  g_mutex_init (&source->lock);
  source->waiters = g_array_new (FALSE, FALSE, sizeof (ReadyWaiter));
  source->transcoders = g_ptr_array_new ();
  source->codec = output_codec;
  source->clock_rate = 90000;
  source->has_format = TRUE;
  source->cache = cims_keyframe_cache_new (output_codec, KEYFRAME_CACHE_MAX_BYTES, PACKET_HISTORY_SIZE);
  if (output_codec == CIMS_CODEC_H264)
    source->fmtp = g_strdup ("packetization-mode=1;profile-level-id=42e01f");

  source->transcoder = cims_transcoder_new (&settings, &callbacks, source);
  atomic_fetch_add (&hub->metrics.transcoders_active, 1);
  transcode_attach (source);
  g_message ("camera=%s profile=%s: transcoder started to %s within %ux%u at %u fps, %u kbit/s",
             camera->camera_id, profile->name, cims_codec_to_string (output_codec), profile->max_width,
             profile->max_height, profile->max_fps, profile->max_kbps);
  return source;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* A camera source: the RTSP ingest of one camera, its keyframe cache and
 * packet history, and the viewers it fans packets out to. The ingest
 * itself is pipelines/rtsp-ingest.c; sending is viewer-session.c. */
#include "hub/hub-runtime.h"

#include <string.h>

/* Enough for several seconds of a 4 Mbit/s camera between keyframes. */
#define KEYFRAME_CACHE_MAX_BYTES (4 * 1024 * 1024)
#define PACKET_HISTORY_SIZE 1024

typedef struct {
  CimsSourceReadyFunc func;
  gpointer user_data;
} ReadyWaiter;

struct _CimsSource {
  CimsHub *hub;
  char *camera_id;
  CimsIngest *ingest;

  /* Guards everything below: taken by the streaming thread per packet and
   * by viewers joining, leaving or asking for a retransmission. */
  GMutex lock;
  GPtrArray *subscribers;       /* of CimsViewerSession (ref) */
  CimsKeyframeCache *cache;
  CimsCodec codec;
  guint32 profile_level_id;
  char *fmtp;
  guint32 epoch;
  gboolean has_format;

  /* Main context only. */
  GArray *waiters;              /* of ReadyWaiter */
  guint ready_timeout_id;
  guint idle_timeout_id;
  char *last_error;
  gboolean is_stopping;
};

/* ---- format and readiness ------------------------------------------------ */

static guint32
profile_level_id_from_fmtp (const char *fmtp)
{
  const char *found = fmtp ? strstr (fmtp, "profile-level-id=") : NULL;

  if (found == NULL)
    return 0;

  return (guint32) g_ascii_strtoull (found + strlen ("profile-level-id="), NULL, 16);
}

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

static gboolean
format_known_cb (gpointer user_data)
{
  CimsSource *source = user_data;

  waiters_notify (source, NULL);
  return G_SOURCE_REMOVE;
}

static void
ingest_format_cb (CimsCodec codec, guint clock_rate, const char *fmtp, GPtrArray *parameter_sets,
                  guint32 epoch, gpointer user_data)
{
  CimsSource *source = user_data;

  g_mutex_lock (&source->lock);
  if (source->cache == NULL || source->codec != codec) {
    g_clear_pointer (&source->cache, cims_keyframe_cache_free);
    source->cache = cims_keyframe_cache_new (codec, KEYFRAME_CACHE_MAX_BYTES, PACKET_HISTORY_SIZE);
  } else {
    cims_keyframe_cache_reset (source->cache);
  }
  if (parameter_sets != NULL && parameter_sets->len > 0)
    cims_keyframe_cache_set_parameter_sets (source->cache, parameter_sets);

  source->codec = codec;
  g_free (source->fmtp);
  source->fmtp = g_strdup (fmtp);
  source->profile_level_id = profile_level_id_from_fmtp (fmtp);
  source->epoch = epoch;
  source->has_format = TRUE;
  g_mutex_unlock (&source->lock);

  g_message ("camera=%s: video is %s, epoch %u, fmtp \"%s\"", source->camera_id,
             cims_codec_to_string (codec), epoch, fmtp ? fmtp : "");
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

static void
ingest_packet_cb (CimsRtpPacket *packet, gpointer user_data)
{
  CimsSource *source = user_data;
  gboolean starts_keyframe;

  g_mutex_lock (&source->lock);
  if (source->cache == NULL || packet->epoch != source->epoch) {
    g_mutex_unlock (&source->lock);
    return;
  }

  starts_keyframe = cims_keyframe_cache_push (source->cache, packet);
  for (guint i = 0; i < source->subscribers->len; i++)
    cims_viewer_session_deliver (g_ptr_array_index (source->subscribers, i), source,
                                 source->cache, packet, starts_keyframe);
  g_mutex_unlock (&source->lock);
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
    g_free (source->last_error);
    source->last_error = g_strdup (message);
    g_warning ("camera=%s: ingest stopped: %s", source->camera_id, message);
  }
}

/* ---- lifetime ---------------------------------------------------------------- */

CimsSource *
cims_source_new (CimsHub *hub, const CimsConfigCamera *camera)
{
  CimsSource *source = g_new0 (CimsSource, 1);
  const CimsConfig *config = hub->config;
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

  source->hub = hub;
  source->camera_id = g_strdup (camera->id);
  g_mutex_init (&source->lock);
  source->subscribers = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_viewer_session_unref);
  source->waiters = g_array_new (FALSE, FALSE, sizeof (ReadyWaiter));

  source->ingest = cims_ingest_new (&settings, &callbacks, source);
  cims_ingest_start (source->ingest);
  atomic_fetch_add (&hub->metrics.sources_active, 1);
  g_message ("camera=%s: ingest started", camera->id);
  return source;
}

void
cims_source_free (CimsSource *source)
{
  g_autoptr (GError) error = g_error_new (CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED,
                                          "The camera source was stopped");

  waiters_notify (source, error);
  g_clear_handle_id (&source->idle_timeout_id, g_source_remove);

  source->is_stopping = TRUE;
  cims_ingest_stop (source->ingest);
  g_clear_pointer (&source->ingest, cims_ingest_free);
  atomic_fetch_sub (&source->hub->metrics.sources_active, 1);

  g_mutex_lock (&source->lock);
  g_clear_pointer (&source->subscribers, g_ptr_array_unref);
  g_clear_pointer (&source->cache, cims_keyframe_cache_free);
  g_mutex_unlock (&source->lock);
  g_mutex_clear (&source->lock);

  g_array_unref (source->waiters);
  g_free (source->fmtp);
  g_free (source->last_error);
  g_free (source->camera_id);
  g_free (source);
}

const char *
cims_source_get_camera_id (CimsSource *source)
{
  return source->camera_id;
}

CimsCodec
cims_source_get_codec (CimsSource *source)
{
  return source->codec;
}

guint32
cims_source_get_profile_level_id (CimsSource *source)
{
  return source->profile_level_id;
}

const char *
cims_source_get_fmtp (CimsSource *source)
{
  return source->fmtp;
}

/* ---- subscribers and idle stop ---------------------------------------------- */

static gboolean
source_has_sessions (CimsSource *source)
{
  GHashTableIter iter;
  gpointer entry;

  /* Sessions still negotiating are not subscribers yet, but they hold this
   * source: it stays while any session of its camera exists. */
  g_hash_table_iter_init (&iter, source->hub->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &entry)) {
    CimsViewerSession *session = cims_hub_session_entry_get_session (entry);

    if (g_strcmp0 (cims_viewer_session_get_camera_id (session), source->camera_id) == 0)
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

  g_message ("camera=%s: no viewer for %u s, stopping the ingest", source->camera_id,
             source->hub->config->idle_source_stop_s);
  g_hash_table_remove (source->hub->sources, source->camera_id);
  return G_SOURCE_REMOVE;
}

void
cims_source_check_idle (CimsSource *source)
{
  if (!source_has_sessions (source) && source->idle_timeout_id == 0)
    source->idle_timeout_id = g_timeout_add_seconds (source->hub->config->idle_source_stop_s,
                                                     idle_stop_cb, source);
}

void
cims_source_add_subscriber (CimsSource *source, CimsViewerSession *session)
{
  g_mutex_lock (&source->lock);
  g_ptr_array_add (source->subscribers, cims_viewer_session_ref (session));
  g_mutex_unlock (&source->lock);
}

void
cims_source_remove_subscriber (CimsSource *source, CimsViewerSession *session)
{
  g_mutex_lock (&source->lock);
  g_ptr_array_remove (source->subscribers, session);
  g_mutex_unlock (&source->lock);
}

guint
cims_source_get_n_subscribers (CimsSource *source)
{
  guint n;

  g_mutex_lock (&source->lock);
  n = source->subscribers->len;
  g_mutex_unlock (&source->lock);
  return n;
}

void
cims_source_cancel_idle_stop (CimsSource *source)
{
  g_clear_handle_id (&source->idle_timeout_id, g_source_remove);
}

CimsRtpPacket *
cims_source_lookup_packet (CimsSource *source, guint16 seq)
{
  CimsRtpPacket *packet = NULL;

  g_mutex_lock (&source->lock);
  if (source->cache != NULL)
    packet = cims_keyframe_cache_lookup (source->cache, seq);
  if (packet != NULL)
    cims_rtp_packet_ref (packet);
  g_mutex_unlock (&source->lock);
  return packet;
}

GPtrArray *
cims_source_snapshot (CimsSource *source)
{
  GPtrArray *snapshot;

  g_mutex_lock (&source->lock);
  snapshot = source->cache ? cims_keyframe_cache_snapshot (source->cache)
                           : g_ptr_array_new_with_free_func ((GDestroyNotify) cims_rtp_packet_unref);
  g_mutex_unlock (&source->lock);
  return snapshot;
}

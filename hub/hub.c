/* SPDX-License-Identifier: Apache-2.0 */
/* The hub object: configuration, token keys, DTLS identity, the media
 * thread, and the tables of camera sources and viewer sessions with the
 * schedule of their ends. HTTP routing is in http-server.c. */
#include "hub/hub-runtime.h"

#include <gst/gst.h>
#include <sched.h>
#include <srtp2/srtp.h>

G_DEFINE_QUARK (cims-hub-error-quark, cims_hub_error)

/* A session's allowance has ended: decide again, which ends the session or
 * schedules its next end. */
static void
session_expiry_cb (const char *session_id, gpointer user_data)
{
  CimsHub *hub = user_data;
  CimsViewerSession *session = g_hash_table_lookup (hub->sessions, session_id);

  if (session != NULL)
    cims_hub_access_recheck_session (hub, session, CIMS_ACCESS_TRIGGER_TIMER);
}

/* Counts the processors this process may run on. g_get_num_processors()
 * counts every online processor, so a hub started under taskset or in a
 * cpuset would run more workers than cores and switch between them. */
static guint
usable_processor_count (void)
{
  cpu_set_t allowed;

  CPU_ZERO (&allowed);
  if (sched_getaffinity (0, sizeof allowed, &allowed) != 0)
    return (guint) g_get_num_processors ();

  return MAX (1, CPU_COUNT (&allowed));
}

/* Starts one worker per usable processor unless the configuration sets the
 * number. */
static gboolean
workers_start (CimsHub *hub, GError **error)
{
  guint n = hub->config->media_workers ? hub->config->media_workers : usable_processor_count ();

  hub->n_workers = CLAMP (n, 1, CIMS_MAX_WORKERS);
  for (guint i = 0; i < hub->n_workers; i++) {
    hub->workers[i] = cims_worker_new (hub, i, error);
    if (hub->workers[i] == NULL)
      return FALSE;
  }

  g_message ("media workers: %u (%s)", hub->n_workers,
             hub->config->media_workers ? "media_workers in the configuration"
                                        : "one per processor the hub may run on");
  return TRUE;
}

static gboolean
srtp_library_init (GError **error)
{
  static gsize done;
  static srtp_err_status_t status;

  if (g_once_init_enter (&done)) {
    status = srtp_init ();
    g_once_init_leave (&done, 1);
  }

  if (status != srtp_err_status_ok) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_SRTP, "srtp_init() failed with status %d",
                 (int) status);
    return FALSE;
  }
  return TRUE;
}

/* Raises the open-file limit, and logs a warning when it leaves room for
 * fewer viewers than the ICE port range could serve. */
static void
fd_budget_start (CimsHub *hub)
{
  guint64 previous = 0;
  guint64 limit = cims_fd_limit_raise (&previous);
  guint64 room;
  guint n_ice_ports = hub->config->ice_port_max - hub->config->ice_port_min + 1;

  cims_fd_budget_init (&hub->fd_budget, limit);
  room = cims_fd_budget_session_room (&hub->fd_budget, cims_fd_count_open ());
  if (limit != previous)
    g_message ("open-file limit raised from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT, previous, limit);
  if (room < n_ice_ports)
    g_warning ("the open-file limit of %" G_GUINT64_FORMAT " leaves room for about %" G_GUINT64_FORMAT
               " viewer sessions, fewer than the %u ports of ice_udp_ports: raise it (LimitNOFILE= in "
               "the systemd unit, or ulimit -n) to serve more", limit, room, n_ice_ports);
}

CimsHub *
cims_hub_new (CimsConfig *config, GError **error)
{
  g_autoptr (CimsAuthKeyring) keyring = NULL;
  g_autoptr (CimsDtlsIdentity) dtls = NULL;
  CimsHub *hub;

  if (!srtp_library_init (error))
    return NULL;

  keyring = cims_auth_keyring_new (config, error);
  if (keyring == NULL)
    return NULL;

  dtls = cims_dtls_identity_new (config, error);
  if (dtls == NULL)
    return NULL;

  hub = g_new0 (CimsHub, 1);
  hub->config = cims_config_ref (config);
  hub->start_config = cims_config_ref (config);
  hub->state_lock_fd = -1;
  if (!cims_hub_access_lock_existing (hub, error) || !cims_http_server_bind (hub, error)
      || !cims_hub_access_open (hub, error)) {
    g_clear_object (&hub->http_listener);
    g_clear_object (&hub->http_address);
    g_clear_pointer (&hub->store, cims_store_free);
    cims_state_lock_release (hub->state_lock_fd);
    g_clear_pointer (&hub->store_path, g_free);
    g_clear_pointer (&hub->grants, g_ptr_array_unref);
    g_clear_pointer (&hub->incidents, g_ptr_array_unref);
    cims_config_unref (hub->start_config);
    cims_config_unref (hub->config);
    g_free (hub);
    return NULL;
  }

  hub->keyring = g_steal_pointer (&keyring);
  hub->retired_configs = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_config_unref);
  hub->whep_limiter = cims_rate_limiter_new ();
  fd_budget_start (hub);
  hub->dtls = g_steal_pointer (&dtls);
  hub->started_us = g_get_monotonic_time ();
  hub->main_context = g_main_context_ref_thread_default ();
  /* Owned by this thread for the hub's whole life, also before and after
   * its loop runs: g_main_context_invoke() from a worker, ingest or report
   * thread then always queues, and never runs the callback on that thread. */
  hub->owns_main_context = g_main_context_acquire (hub->main_context);
  if (!hub->owns_main_context)
    g_warning ("the hub's main context is owned by another thread; callbacks from media threads may run there");
  hub->sessions = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                         (GDestroyNotify) cims_viewer_session_unref);
  hub->session_expiry = cims_session_expiry_new (hub->main_context, session_expiry_cb, hub);
  hub->sources = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                        (GDestroyNotify) cims_source_free);

  if (!workers_start (hub, error)) {
    cims_hub_free (hub);
    return NULL;
  }

  g_message ("DTLS certificate fingerprint sha-256 %s; SRTP suites: %s",
             hub->dtls->fingerprint_sha256,
             hub->dtls->has_gcm ? "AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_80"
                                : "AES_CM_128_HMAC_SHA1_80");
  return hub;
}

/* Returns (transfer full) the details of the config-loaded record at start:
 * the file and the camera count. */
static char *
start_details_new (const CimsConfig *config)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "config");
  json_builder_add_string_value (builder, config->path);
  json_builder_set_member_name (builder, "cameras");
  json_builder_add_int_value (builder, config->cameras->len);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  return json_to_string (root, FALSE);
}

gboolean
cims_hub_start (CimsHub *hub, GError **error)
{
  g_autofree char *details = NULL;

  cims_hub_recover_sessions (hub);
  cims_hub_access_check_tables (hub);
  if (!cims_http_server_start (hub, error))
    return FALSE;

  details = start_details_new (hub->config);
  cims_hub_audit_event (hub, "config-loaded", NULL, NULL, details);
  cims_hub_audit_event (hub, "hub-started", NULL, NULL, NULL);
  cims_hub_heartbeat_start (hub);
  cims_hub_keep_sources_start (hub);
  return TRUE;
}

guint16
cims_hub_get_http_port (CimsHub *hub)
{
  return hub->http_port;
}

static gboolean
source_is_transcode (gpointer key, gpointer value, gpointer user_data)
{
  return cims_source_get_transcoder (value) != NULL;
}

void
cims_hub_stop (CimsHub *hub)
{
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  gboolean was_started = hub->heartbeat_id != 0;
  GHashTableIter iter;
  gpointer key;

  g_clear_handle_id (&hub->http_check_id, g_source_remove);
  if (hub->http != NULL) {
    soup_server_disconnect (hub->http);
    g_clear_object (&hub->http);
  }
  g_clear_object (&hub->http_listener);
  g_clear_object (&hub->http_address);

  /* Every connection is closed, so no report or audit query has a request
   * to reply to. */
  cims_api_offload_stop (hub);

  g_hash_table_iter_init (&iter, hub->sessions);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (ids, g_strdup (key));
  for (guint i = 0; i < ids->len; i++)
    cims_hub_session_end (hub, g_ptr_array_index (ids, i), "hub-shutdown");

  cims_hub_keep_sources_stop (hub);

  /* Transcodes first: each detaches from its camera source. */
  g_hash_table_foreach_remove (hub->sources, source_is_transcode, NULL);
  g_hash_table_remove_all (hub->sources);

  if (was_started) {
    g_clear_handle_id (&hub->heartbeat_id, g_source_remove);
    cims_hub_audit_event (hub, "hub-stopped", NULL, NULL, NULL);
  }
  cims_hub_audit_flush (hub);

  /* Only now is every session's stop in the log, or counted as lost. */
  if (was_started)
    cims_hub_recovery_checkpoint_advance (hub);
}

void
cims_hub_free (CimsHub *hub)
{
  if (hub == NULL)
    return;

  cims_hub_stop (hub);

  for (guint i = 0; i < hub->n_workers; i++)
    g_clear_pointer (&hub->workers[i], cims_worker_free);

  /* Freed feeds queued idle checks here; sources are gone already. */
  while (g_main_context_iteration (hub->main_context, FALSE))
    ;

  g_clear_pointer (&hub->http_connections, cims_http_connections_free);
  g_hash_table_unref (hub->sessions);
  g_clear_pointer (&hub->session_expiry, cims_session_expiry_free);
  g_hash_table_unref (hub->sources);
  if (hub->owns_main_context)
    g_main_context_release (hub->main_context);
  g_main_context_unref (hub->main_context);
  g_clear_pointer (&hub->grants, g_ptr_array_unref);
  g_clear_pointer (&hub->incidents, g_ptr_array_unref);
  g_clear_pointer (&hub->store, cims_store_free);
  g_free (hub->store_path);
  cims_state_lock_release (hub->state_lock_fd);
  cims_dtls_identity_free (hub->dtls);
  cims_auth_keyring_free (hub->keyring);
  g_ptr_array_unref (hub->retired_configs);
  cims_rate_limiter_free (hub->whep_limiter);
  cims_config_unref (hub->start_config);
  cims_config_unref (hub->config);
  g_free (hub);
}

CimsSource *
cims_hub_source_acquire (CimsHub *hub, const CimsConfigCamera *camera)
{
  CimsSource *source = g_hash_table_lookup (hub->sources, camera->id);

  if (source == NULL) {
    source = cims_source_new (hub, camera);
    g_hash_table_insert (hub->sources, (gpointer) cims_source_get_key (source), source);
  }

  cims_source_cancel_idle_stop (source);
  return source;
}

CimsSource *
cims_hub_transcode_acquire (CimsHub *hub, CimsSource *camera, const CimsConfigProfile *profile,
                            CimsCodec codec)
{
  g_autofree char *key = cims_source_transcode_key (cims_source_get_camera_id (camera), profile->name, codec);
  CimsSource *source = g_hash_table_lookup (hub->sources, key);

  if (source == NULL) {
    source = cims_source_new_transcode (hub, camera, profile, codec);
    g_hash_table_insert (hub->sources, (gpointer) cims_source_get_key (source), source);
  }

  cims_source_cancel_idle_stop (source);
  return source;
}


/* Nothing polls for a session's end: the schedule calls back at the exact
 * instant its allowance ends. */
void
cims_hub_session_reschedule (CimsHub *hub, CimsViewerSession *session)
{
  const char *session_id = cims_viewer_session_get_id (session);

  if (!g_hash_table_contains (hub->sessions, session_id))
    return;

  cims_session_expiry_set (hub->session_expiry, session_id,
                           cims_viewer_session_get_allowed_until (session));
}

void
cims_hub_session_add (CimsHub *hub, CimsViewerSession *session)
{
  const char *session_id = cims_viewer_session_get_id (session);

  g_hash_table_insert (hub->sessions, (gpointer) session_id, cims_viewer_session_ref (session));
  cims_session_expiry_set (hub->session_expiry, session_id,
                           cims_viewer_session_get_allowed_until (session));
  atomic_fetch_add (&hub->metrics.sessions_active, 1);
}

gboolean
cims_hub_session_end (CimsHub *hub, const char *session_id, const char *reason)
{
  CimsViewerSession *entry = g_hash_table_lookup (hub->sessions, session_id);
  g_autoptr (CimsViewerSession) session = NULL;
  CimsSource *source;

  if (entry == NULL)
    return FALSE;

  session = cims_viewer_session_ref (entry);
  cims_viewer_session_close (session, reason);
  cims_hub_audit_session_stop (hub, session, reason);
  cims_session_expiry_remove (hub->session_expiry, cims_viewer_session_get_id (session));
  g_hash_table_remove (hub->sessions, cims_viewer_session_get_id (session));
  atomic_fetch_sub (&hub->metrics.sessions_active, 1);
  CIMS_METRIC_ADD (hub, sessions_ended, 1);

  source = cims_viewer_session_get_source (session);
  if (source != NULL)
    cims_source_check_idle (source);
  return TRUE;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Builds the hub's audit records (sessions, denials, grants, incidents,
 * configuration and lifecycle events) and appends them to the store. The
 * chained log itself is auth/store-*.c. */
#include "hub/hub-runtime.h"

#include "auth/report.h"

static CimsAuditRecord *
record_new (const char *event)
{
  CimsAuditRecord *record = g_new0 (CimsAuditRecord, 1);

  /* The store keeps the time it is given; the report and queries need it. */
  record->time_ms = g_get_real_time () / 1000;
  record->event = g_strdup (event);
  return record;
}

static void
record_set_person (CimsAuditRecord *record, const CimsAuthIdentity *identity)
{
  if (identity == NULL)
    return;

  record->person_id = g_strdup (identity->subject);
  record->person_name = g_strdup (identity->name);
  record->person_jurisdiction = g_strdup (identity->jurisdiction);
  record->client_version = g_strdup (identity->client);
}

static void
record_set_camera (CimsAuditRecord *record, const CimsConfigCamera *camera)
{
  if (camera == NULL)
    return;

  record->camera_id = g_strdup (camera->id);
  record->camera_owner = g_strdup (camera->jurisdiction);
  record->camera_location = g_strdup (camera->location);
}

/* Fills the fields every session record carries. @camera may be NULL
 * when it was removed from the configuration; the session still names it. */
static void
record_set_session (CimsAuditRecord *record, CimsViewerSession *session, const CimsConfigCamera *camera)
{
  record_set_person (record, cims_viewer_session_get_identity (session));
  record_set_camera (record, camera);
  if (camera == NULL) {
    record->camera_id = g_strdup (cims_viewer_session_get_camera_id (session));
    record->camera_owner = g_strdup (cims_viewer_session_get_camera_owner (session));
  }

  g_free (record->client_version);
  record->client_version = g_strdup (cims_viewer_session_get_client (session));
  record->session_id = g_strdup (cims_viewer_session_get_id (session));
  record->grant_id = g_strdup (cims_viewer_session_get_grant_id (session));
  record->incident_id = g_strdup (cims_viewer_session_get_incident_id (session));
  record->incident_number = g_strdup (cims_viewer_session_get_incident_number (session));
  record->viewer_address = g_strdup (cims_viewer_session_get_remote_address (session));
}

/* Records that could not be written wait in memory, in order, and are
 * retried on this interval. A stop record must not be lost because the
 * disk was briefly full. */
#define BACKLOG_RETRY_S 2
/* NOTE: past this many waiting records the oldest is dropped (logged as
 * critical and counted), bounding memory while the log stays unwritable. */
#define BACKLOG_MAX 100000

/* Appends @record and notes its sequence: the recovery checkpoint moves to
 * the last record this hub wrote when it stops cleanly. */
static gboolean
record_store (CimsHub *hub, CimsAuditRecord *record, GError **error)
{
  if (!cims_store_audit_append (hub->store, record, error))
    return FALSE;

  hub->audit_last_sequence = record->sequence;
  return TRUE;
}

/* Writes the waiting records in order; stops at the first failure. */
static gboolean
backlog_flush (CimsHub *hub, GError **error)
{
  while (!g_queue_is_empty (&hub->audit_backlog)) {
    CimsAuditRecord *record = g_queue_peek_head (&hub->audit_backlog);

    if (!record_store (hub, record, error))
      return FALSE;
    cims_audit_record_free (g_queue_pop_head (&hub->audit_backlog));
  }
  return TRUE;
}

static gboolean
backlog_retry_cb (gpointer user_data)
{
  CimsHub *hub = user_data;
  g_autoptr (GError) error = NULL;

  if (!backlog_flush (hub, &error))
    return G_SOURCE_CONTINUE;

  g_message ("audit log writable again: every waiting record was written");
  hub->audit_retry_id = 0;
  hub->audit_failed_at_us = 0;
  return G_SOURCE_REMOVE;
}

static void
backlog_push (CimsHub *hub, CimsAuditRecord *record)
{
  if (g_queue_get_length (&hub->audit_backlog) >= BACKLOG_MAX) {
    g_critical ("audit backlog full: dropping a waiting %s record", ((CimsAuditRecord *) g_queue_peek_head (
                                                                       &hub->audit_backlog))->event);
    cims_audit_record_free (g_queue_pop_head (&hub->audit_backlog));
    hub->n_audit_lost++;
  }

  g_queue_push_tail (&hub->audit_backlog, record);
  if (hub->audit_retry_id == 0)
    hub->audit_retry_id = g_timeout_add_seconds (BACKLOG_RETRY_S, backlog_retry_cb, hub);
}

/* Appends @record (transfer full) after any waiting ones. When the log
 * cannot be written, a @can_wait record joins the backlog for a retry, and
 * the call still fails. The failure is logged and counted here. */
static gboolean
record_append_full (CimsHub *hub, CimsAuditRecord *record, gboolean can_wait, GError **error)
{
  g_autoptr (CimsAuditRecord) owned = record;
  g_autoptr (GError) local_error = NULL;

  if (hub->store == NULL)
    return TRUE;

  if (backlog_flush (hub, &local_error) && record_store (hub, owned, &local_error)) {
    hub->audit_failed_at_us = 0;
    return TRUE;
  }

  if (hub->audit_failed_at_us == 0)
    hub->audit_failed_at_us = g_get_real_time ();
  CIMS_METRIC_ADD (hub, audit_failures, 1);
  g_warning ("audit log append of a %s record failed%s: %s", owned->event,
             can_wait ? ", kept for a retry" : "", local_error->message);
  if (can_wait)
    backlog_push (hub, g_steal_pointer (&owned));
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

static gboolean
record_append (CimsHub *hub, CimsAuditRecord *record, GError **error)
{
  return record_append_full (hub, record, TRUE, error);
}

void
cims_hub_audit_flush (CimsHub *hub)
{
  g_autoptr (GError) error = NULL;
  guint n_waiting;

  g_clear_handle_id (&hub->audit_retry_id, g_source_remove);
  if (hub->store == NULL || backlog_flush (hub, &error))
    return;

  n_waiting = g_queue_get_length (&hub->audit_backlog);
  hub->n_audit_lost += n_waiting;
  g_critical ("%u audit records could not be written before the hub stopped: %s", n_waiting,
              error->message);
  g_queue_clear_full (&hub->audit_backlog, (GDestroyNotify) cims_audit_record_free);
}

gboolean
cims_hub_audit_session_start (CimsHub *hub, CimsViewerSession *session,
                              const CimsConfigCamera *camera, GError **error)
{
  CimsAuditRecord *record = record_new ("session-start");

  record_set_session (record, session, camera);
  record->reason = g_strdup (cims_viewer_session_get_rule_name (session));
  /* The viewer's token permissions and roles: the annual report counts
   * users per permission and role from them. */
  record->details = cims_audit_details_from_identity (cims_viewer_session_get_identity (session));
  return record_append_full (hub, record, FALSE, error);
}

void
cims_hub_json_add_string_or_null (JsonBuilder *builder, const char *member, const char *value)
{
  json_builder_set_member_name (builder, member);
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

/* The record carries the new allowance in its grant and incident ids and
 * reason, as a start record does, and the replaced one in its details. A
 * session that outlived its first grant then shows what allowed it later. */
void
cims_hub_audit_session_allowance_changed (CimsHub *hub, CimsViewerSession *session,
                                          const char *previous_rule, const char *previous_grant_id,
                                          const char *previous_incident_id)
{
  const CimsConfigCamera *camera = cims_config_find_camera (hub->config,
                                                            cims_viewer_session_get_camera_id (session));
  CimsAuditRecord *record = record_new ("session-allowance-changed");
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  record_set_session (record, session, camera);
  record->reason = g_strdup (cims_viewer_session_get_rule_name (session));

  json_builder_begin_object (builder);
  cims_hub_json_add_string_or_null (builder, "previous_rule", previous_rule);
  cims_hub_json_add_string_or_null (builder, "previous_grant_id", previous_grant_id);
  cims_hub_json_add_string_or_null (builder, "previous_incident_id", previous_incident_id);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  record->details = json_to_string (root, FALSE);

  record_append (hub, record, NULL);
}

void
cims_hub_audit_session_stop (CimsHub *hub, CimsViewerSession *session, const char *reason)
{
  const CimsConfigCamera *camera = cims_config_find_camera (hub->config,
                                                            cims_viewer_session_get_camera_id (session));
  CimsAuditRecord *record = record_new ("session-stop");

  record_set_session (record, session, camera);
  record->reason = g_strdup (reason);
  record->bytes_sent = (gint64) cims_viewer_session_get_bytes_sent (session);
  record->duration_ms = (g_get_real_time () - cims_viewer_session_get_started_real_us (session)) / 1000;
  record_append (hub, record, NULL);
}

void
cims_hub_audit_denied (CimsHub *hub, const CimsAuthIdentity *identity, const CimsConfigCamera *camera,
                       const char *incident_number, const char *address, const char *rule)
{
  CimsAuditRecord *record = record_new ("request-denied");

  record_set_person (record, identity);
  record_set_camera (record, camera);
  record->incident_number = g_strdup (incident_number);
  record->viewer_address = g_strdup (address);
  record->reason = g_strdup (rule);
  record_append (hub, record, NULL);
}

/* The details carry the whole grant (grantee, cameras, time window,
 * revocation) and the rights of the person who acted. The hash chain covers
 * them, so a later edit of the grants table can be found by comparing the
 * table with this record. A caller's @details text goes in as the member
 * "note". */
void
cims_hub_audit_grant (CimsHub *hub, const char *event, const CimsAuthIdentity *actor,
                      const CimsGrant *grant, const char *details)
{
  CimsAuditRecord *record = record_new (event);

  record_set_person (record, actor);
  record->camera_owner = g_strdup (grant->owner);
  record->grant_id = g_strdup (grant->id);
  record->incident_number = g_strdup (grant->incident_number);
  record->reason = g_strdup (grant->purpose);
  record->details = cims_audit_details_from_grant (grant, actor, details);
  record_append (hub, record, NULL);
}

/* As for grants: the details carry the whole incident (cameras, partners,
 * time window, early end) and the actor's rights. */
void
cims_hub_audit_incident (CimsHub *hub, const char *event, const CimsAuthIdentity *actor,
                         const CimsIncident *incident, const char *details)
{
  CimsAuditRecord *record = record_new (event);

  record_set_person (record, actor);
  record->camera_owner = g_strdup (incident->owner);
  record->incident_id = g_strdup (incident->id);
  record->incident_number = g_strdup (incident->incident_number);
  record->reason = g_strdup (incident->description);
  record->details = cims_audit_details_from_incident (incident, actor, details);
  record_append (hub, record, NULL);
}

void
cims_hub_audit_event (CimsHub *hub, const char *event, const CimsConfigCamera *camera,
                      const char *reason, const char *details)
{
  CimsAuditRecord *record = record_new (event);

  record_set_camera (record, camera);
  record->reason = g_strdup (reason);
  record->details = g_strdup (details);
  record_append (hub, record, NULL);
}

/* Returns the details JSON of an archive-request record: the request's id,
 * requester, footage period, state and the step's note. (transfer full) */
static char *
archive_request_details (const CimsArchiveRequest *request, const char *note)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *from = cims_audit_time_format_ms (request->from_us / 1000);
  g_autofree char *to = cims_audit_time_format_ms (request->to_us / 1000);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "request_id");
  json_builder_add_string_value (builder, request->id);
  json_builder_set_member_name (builder, "requester_kind");
  json_builder_add_string_value (builder, cims_archive_requester_kind_to_string (request->requester_kind));
  json_builder_set_member_name (builder, "requester_id");
  json_builder_add_string_value (builder, request->requester_id);
  json_builder_set_member_name (builder, "requester_name");
  json_builder_add_string_value (builder, request->requester_name);
  json_builder_set_member_name (builder, "footage_from");
  json_builder_add_string_value (builder, from);
  json_builder_set_member_name (builder, "footage_to");
  json_builder_add_string_value (builder, to);
  json_builder_set_member_name (builder, "state");
  json_builder_add_string_value (builder, cims_archive_state_to_string (request->state));
  json_builder_set_member_name (builder, "note");
  json_builder_add_string_value (builder, note);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  return json_to_string (root, FALSE);
}

gboolean
cims_hub_audit_archive_request (CimsHub *hub, const char *event, const CimsAuthIdentity *actor,
                                const CimsArchiveRequest *request, const char *reason,
                                const char *note, GError **error)
{
  const CimsConfigCamera *camera = cims_config_find_camera (hub->config, request->camera_id);
  CimsAuditRecord *record = record_new (event);

  record_set_person (record, actor);
  record_set_camera (record, camera);
  if (camera == NULL) {
    record->camera_id = g_strdup (request->camera_id);
    record->camera_owner = g_strdup (request->owner);
  }
  record->incident_number = g_strdup (request->incident_number);
  record->reason = g_strdup (reason);
  record->details = archive_request_details (request, note);
  return record_append (hub, record, error);
}

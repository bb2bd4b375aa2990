/* SPDX-License-Identifier: Apache-2.0 */
/* Live authorization: the hub's copy of grants and major incidents, the
 * decision for a new viewer, and new decisions for running sessions when a
 * grant, an incident, a camera or a token changes. A session ends the
 * moment nothing allows it any more. The rules are auth/policy.c. */
#include "hub/hub-runtime.h"

#include "auth/state-tables.h"

#include <string.h>

gboolean
cims_hub_access_lock_existing (CimsHub *hub, GError **error)
{
  const char *folder = hub->config->state_dir;

  if (!g_file_test (folder, G_FILE_TEST_IS_DIR))
    return TRUE;

  hub->state_lock_fd = cims_state_lock_acquire (folder, error);
  return hub->state_lock_fd >= 0;
}

gboolean
cims_hub_access_open (CimsHub *hub, GError **error)
{
  const char *folder = hub->config->state_dir;
  g_autofree char *path = g_build_filename (folder, "cimshub.db", NULL);
  gboolean is_new_folder = !g_file_test (folder, G_FILE_TEST_IS_DIR);

  if (g_mkdir_with_parents (folder, 0700) != 0) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED, "Cannot create state_dir %s: %s", folder,
                 g_strerror (errno));
    return FALSE;
  }

  if (hub->state_lock_fd < 0)
    hub->state_lock_fd = cims_state_lock_acquire (folder, error);
  if (hub->state_lock_fd < 0)
    return FALSE;

  /* A mistyped state_dir must not pass unnoticed: it starts a new audit log. */
  if (is_new_folder)
    g_warning ("state_dir %s did not exist: created it, with a new, empty audit log and no grants", folder);
  else if (!g_file_test (path, G_FILE_TEST_EXISTS))
    g_message ("state store %s did not exist: starting a new, empty audit log with no grants", path);

  hub->store = cims_store_sqlite_open (path, error);
  if (hub->store == NULL)
    return FALSE;
  hub->store_path = g_strdup (path);

  hub->grants = cims_store_grant_list (hub->store, error);
  if (hub->grants == NULL)
    return FALSE;

  hub->incidents = cims_store_incident_list (hub->store, error);
  if (hub->incidents == NULL)
    return FALSE;

  g_message ("state store %s: %u grants, %u incidents", path, hub->grants->len, hub->incidents->len);
  return TRUE;
}

/* The start-up walk over the grant and incident records. */
typedef struct {
  CimsRecordedTables *tables;
  char *last_problems;          /* details of the latest state-tables-differ record, or NULL */
} TablesWalk;

static gboolean
tables_walk_record_cb (const CimsAuditRecord *record, gpointer user_data)
{
  TablesWalk *walk = user_data;

  if (g_strcmp0 (record->event, "audit-log-mismatch") != 0) {
    cims_recorded_tables_add (walk->tables, record);
    return TRUE;
  }

  if (g_strcmp0 (record->reason, "state-tables-differ") == 0) {
    g_free (walk->last_problems);
    walk->last_problems = g_strdup (record->details);
  }
  return TRUE;
}

static void
builder_add_id (JsonBuilder *builder, const char *id)
{
  if (id != NULL)
    json_builder_add_string_value (builder, id);
  else
    json_builder_add_null_value (builder);
}

/* Returns (transfer full) the details of a state-tables-differ record:
 * @problems and the disputed grants and incidents. */
static char *
tables_mismatch_details (const GString *problems, GPtrArray *grants, GPtrArray *incidents)
{
  g_auto (GStrv) lines = g_strsplit (problems->str, "\n", -1);
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "problems");
  json_builder_begin_array (builder);
  for (guint i = 0; lines[i] != NULL; i++) {
    if (lines[i][0] != '\0')
      json_builder_add_string_value (builder, lines[i]);
  }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "disputed_grants");
  json_builder_begin_array (builder);
  for (guint i = 0; i < grants->len; i++)
    builder_add_id (builder, ((CimsGrant *) g_ptr_array_index (grants, i))->id);
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "disputed_incidents");
  json_builder_begin_array (builder);
  for (guint i = 0; i < incidents->len; i++)
    builder_add_id (builder, ((CimsIncident *) g_ptr_array_index (incidents, i))->id);
  json_builder_end_array (builder);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  return json_to_string (root, FALSE);
}

/* Drops from @items the rows without an id, which nothing can name. */
static void
items_drop_without_id (GPtrArray *items)
{
  for (guint i = items->len; i > 0; i--) {
    if (*(const char **) g_ptr_array_index (items, i - 1) == NULL)
      g_ptr_array_remove_index (items, i - 1);
  }
}

void
cims_hub_access_check_tables (CimsHub *hub)
{
  static const char *const events[] = { "grant-created", "grant-revoked", "incident-started", "incident-ended",
                                        "audit-log-mismatch", NULL };
  CimsAuditFilter filter = { .events = events };
  g_autoptr (CimsRecordedTables) tables = cims_recorded_tables_new ();
  TablesWalk walk = { tables, NULL };
  g_autofree char *last_problems = NULL;
  g_autoptr (GString) problems = g_string_new (NULL);
  g_autoptr (GPtrArray) disputed_grants = g_ptr_array_new ();
  g_autoptr (GPtrArray) disputed_incidents = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *details = NULL;
  g_auto (GStrv) lines = NULL;
  guint n_unchecked = 0;

  gboolean is_read = cims_store_audit_foreach (hub->store, &filter, tables_walk_record_cb, &walk, NULL, &error);
  last_problems = walk.last_problems;
  if (!is_read) {
    g_warning ("cannot read the audit log to check the grants and incidents tables: %s", error->message);
    return;
  }

  cims_recorded_tables_compare (tables, hub->grants, hub->incidents, problems, disputed_grants, disputed_incidents,
                                &n_unchecked);
  if (problems->len == 0)
    return;

  lines = g_strsplit (problems->str, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    if (lines[i][0] != '\0')
      g_warning ("the state tables differ from the audit log: %s", lines[i]);
  }

  for (guint i = 0; i < disputed_grants->len; i++)
    ((CimsGrant *) g_ptr_array_index (disputed_grants, i))->is_disputed = TRUE;
  for (guint i = 0; i < disputed_incidents->len; i++)
    ((CimsIncident *) g_ptr_array_index (disputed_incidents, i))->is_disputed = TRUE;
  if (disputed_grants->len + disputed_incidents->len > 0)
    g_warning ("%u grants and %u incidents whose rows differ from their audit records allow no viewing; "
               "revoke or end each one to record it as it stands", disputed_grants->len, disputed_incidents->len);

  /* The same differences at every start need one record, not one a start. */
  details = tables_mismatch_details (problems, disputed_grants, disputed_incidents);
  if (g_strcmp0 (details, last_problems) != 0)
    cims_hub_audit_event (hub, "audit-log-mismatch", NULL, "state-tables-differ", details);

  /* A row without an id cannot be revoked or ended, so it is dropped. */
  g_ptr_array_set_size (disputed_grants, 0);
  g_ptr_array_set_size (disputed_incidents, 0);
  items_drop_without_id (hub->grants);
  items_drop_without_id (hub->incidents);
}

void
cims_hub_access_decide (CimsHub *hub, const CimsAuthIdentity *identity, const CimsConfigCamera *camera,
                        const char *incident_number, gint64 now_us, CimsAuthDecision *decision)
{
  CimsAuthPolicyInput input = {
    .grants = hub->grants,
    .incidents = hub->incidents,
    .incident_number = incident_number,
  };

  cims_auth_policy_decide (hub->config, identity, camera, &input, now_us, decision);
}

/* Tells whether the configuration that a reload just replaced would still
 * allow @session at @now_us, so that the reload, not a grant or incident
 * that ended at the same moment, is why it stops. */
static gboolean
previous_config_allows (CimsHub *hub, CimsViewerSession *session, gint64 now_us)
{
  const CimsConfig *previous;
  const CimsConfigCamera *camera;
  g_auto (CimsAuthDecision) decision = { 0 };
  CimsAuthPolicyInput input = {
    .grants = hub->grants,
    .incidents = hub->incidents,
    .incident_number = cims_viewer_session_get_incident_number (session),
  };

  if (hub->retired_configs->len == 0)
    return FALSE;

  previous = g_ptr_array_index (hub->retired_configs, hub->retired_configs->len - 1);
  camera = cims_config_find_camera (previous, cims_viewer_session_get_camera_id (session));
  if (camera == NULL)
    return FALSE;

  cims_auth_policy_decide (previous, cims_viewer_session_get_identity (session), camera, &input, now_us, &decision);
  return decision.allowed && decision.allowed_until_us > now_us;
}

/* Names why a session that was allowed no longer is. */
static const char *
stop_reason_for (CimsHub *hub, CimsViewerSession *session, const CimsAuthDecision *decision,
                 CimsAccessTrigger trigger, gint64 now_us)
{
  const CimsAuthIdentity *identity = cims_viewer_session_get_identity (session);

  if (decision->rule == CIMS_AUTH_RULE_OUT_OF_SERVICE)
    return "camera-out-of-service";
  if (decision->rule == CIMS_AUTH_RULE_RESTRICTED)
    return "camera-restricted";
  if (trigger == CIMS_ACCESS_TRIGGER_GRANT_REVOKED)
    return "grant-revoked";
  if (trigger == CIMS_ACCESS_TRIGGER_INCIDENT_ENDED)
    return "incident-ended";
  if (trigger == CIMS_ACCESS_TRIGGER_CAMERA_REMOVED)
    return "camera-removed";
  if (identity->expires_at_us <= now_us)
    return "token-expired";
  if (trigger == CIMS_ACCESS_TRIGGER_CONFIG_RELOADED && !decision->allowed
      && previous_config_allows (hub, session, now_us))
    return "config-changed";
  if (cims_viewer_session_get_grant_id (session) != NULL)
    return "grant-expired";
  if (cims_viewer_session_get_incident_id (session) != NULL)
    return "incident-ended";
  return "access-withdrawn";
}

/* Gives @session the allowance of @decision, and audits the change when
 * another grant, incident or rule allows it now. */
static void
session_allowance_update (CimsHub *hub, CimsViewerSession *session, const CimsAuthDecision *decision)
{
  g_autofree char *previous_rule = g_strdup (cims_viewer_session_get_rule_name (session));
  g_autofree char *previous_grant_id = g_strdup (cims_viewer_session_get_grant_id (session));
  g_autofree char *previous_incident_id = g_strdup (cims_viewer_session_get_incident_id (session));
  gboolean is_changed = g_strcmp0 (previous_rule, decision->rule_name) != 0
                        || g_strcmp0 (previous_grant_id, decision->grant_id) != 0
                        || g_strcmp0 (previous_incident_id, decision->incident_id) != 0;

  cims_viewer_session_set_decision (session, decision);
  if (!is_changed)
    return;

  cims_session_message (session, "now allowed under %s (grant %s, incident %s), before under %s (grant %s, "
                        "incident %s)", decision->rule_name, decision->grant_id ? decision->grant_id : "none",
                        decision->incident_id ? decision->incident_id : "none", previous_rule,
                        previous_grant_id ? previous_grant_id : "none",
                        previous_incident_id ? previous_incident_id : "none");
  cims_hub_audit_session_allowance_changed (hub, session, previous_rule, previous_grant_id, previous_incident_id);
}

gboolean
cims_hub_access_recheck_session (CimsHub *hub, CimsViewerSession *session, CimsAccessTrigger trigger)
{
  const CimsConfigCamera *camera = cims_config_find_camera (hub->config,
                                                            cims_viewer_session_get_camera_id (session));
  const CimsAuthIdentity *identity = cims_viewer_session_get_identity (session);
  g_auto (CimsAuthDecision) decision = { 0 };
  gint64 now_us = g_get_real_time ();
  g_autofree char *id = g_strdup (cims_viewer_session_get_id (session));

  if (camera == NULL) {
    cims_hub_session_end (hub, id, "camera-removed");
    return FALSE;
  }

  cims_hub_access_decide (hub, identity, camera, cims_viewer_session_get_incident_number (session),
                          now_us, &decision);
  if (decision.allowed && identity->expires_at_us > now_us && decision.allowed_until_us > now_us) {
    session_allowance_update (hub, session, &decision);
    cims_hub_session_reschedule (hub, session);
    return TRUE;
  }

  if (decision.allowed)
    cims_session_message (session, "no longer allowed: its token or its allowance under %s ended",
                          decision.rule_name);
  else
    cims_session_message (session, "no longer allowed (%s): %s", decision.rule_name,
                          decision.reason ? decision.reason : "allowance ended");
  cims_hub_session_end (hub, id, stop_reason_for (hub, session, &decision, trigger, now_us));
  return FALSE;
}

guint
cims_hub_access_recheck_all (CimsHub *hub, CimsAccessTrigger trigger)
{
  g_autoptr (GPtrArray) sessions = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_viewer_session_unref);
  GHashTableIter iter;
  gpointer value;
  guint n_ended = 0;

  /* Ending a session edits the table, so walk a copy. */
  g_hash_table_iter_init (&iter, hub->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (sessions, cims_viewer_session_ref (value));

  for (guint i = 0; i < sessions->len; i++)
    if (!cims_hub_access_recheck_session (hub, g_ptr_array_index (sessions, i), trigger))
      n_ended++;

  return n_ended;
}

static gpointer
find_by_id (GPtrArray *items, const char *id, gsize id_offset)
{
  for (guint i = 0; items != NULL && i < items->len; i++) {
    gpointer item = g_ptr_array_index (items, i);
    const char *item_id = *(const char **) ((const guint8 *) item + id_offset);

    if (g_strcmp0 (item_id, id) == 0)
      return item;
  }
  return NULL;
}

const CimsGrant *
cims_hub_access_find_grant (CimsHub *hub, const char *id)
{
  return find_by_id (hub->grants, id, G_STRUCT_OFFSET (CimsGrant, id));
}

const CimsIncident *
cims_hub_access_find_incident (CimsHub *hub, const char *id)
{
  return find_by_id (hub->incidents, id, G_STRUCT_OFFSET (CimsIncident, id));
}

gboolean
cims_hub_access_grant_create (CimsHub *hub, const CimsAuthIdentity *actor, CimsGrant *grant, GError **error)
{
  if (!cims_store_grant_insert (hub->store, grant, error))
    return FALSE;

  g_ptr_array_insert (hub->grants, 0, cims_grant_copy (grant));
  cims_hub_audit_grant (hub, "grant-created", actor, grant, NULL);
  g_message ("grant %s created by %s (%s): %s -> %s", grant->id, actor->subject, actor->jurisdiction,
             grant->owner, grant->grantee);
  return TRUE;
}

gboolean
cims_hub_access_grant_revoke (CimsHub *hub, const CimsAuthIdentity *actor, const char *grant_id,
                              guint *n_ended, GError **error)
{
  g_autoptr (CimsGrant) updated = NULL;
  gint64 now_us = g_get_real_time ();

  if (!cims_store_grant_revoke (hub->store, grant_id, actor->subject, now_us, error))
    return FALSE;

  updated = cims_store_grant_get (hub->store, grant_id, error);
  if (updated == NULL)
    return FALSE;

  for (guint i = 0; i < hub->grants->len; i++) {
    CimsGrant *grant = g_ptr_array_index (hub->grants, i);
    if (g_strcmp0 (grant->id, grant_id) == 0) {
      g_ptr_array_index (hub->grants, i) = cims_grant_copy (updated);
      cims_grant_free (grant);
    }
  }

  cims_hub_audit_grant (hub, "grant-revoked", actor, updated, NULL);
  *n_ended = cims_hub_access_recheck_all (hub, CIMS_ACCESS_TRIGGER_GRANT_REVOKED);
  g_message ("grant %s revoked by %s (%s); sessions ended: %u", grant_id, actor->subject,
             actor->jurisdiction, *n_ended);
  return TRUE;
}

gboolean
cims_hub_access_incident_start (CimsHub *hub, const CimsAuthIdentity *actor, CimsIncident *incident,
                                GError **error)
{
  if (!cims_store_incident_insert (hub->store, incident, error))
    return FALSE;

  g_ptr_array_insert (hub->incidents, 0, cims_incident_copy (incident));
  cims_hub_audit_incident (hub, "incident-started", actor, incident, NULL);
  g_message ("major incident %s (%s) declared by %s (%s) over %s's cameras", incident->id,
             incident->incident_number, actor->subject, actor->jurisdiction, incident->owner);
  return TRUE;
}

gboolean
cims_hub_access_incident_end (CimsHub *hub, const CimsAuthIdentity *actor, const char *incident_id,
                              guint *n_ended, GError **error)
{
  g_autoptr (CimsIncident) updated = NULL;
  gint64 now_us = g_get_real_time ();

  if (!cims_store_incident_end (hub->store, incident_id, actor->subject, now_us, error))
    return FALSE;

  updated = cims_store_incident_get (hub->store, incident_id, error);
  if (updated == NULL)
    return FALSE;

  for (guint i = 0; i < hub->incidents->len; i++) {
    CimsIncident *incident = g_ptr_array_index (hub->incidents, i);
    if (g_strcmp0 (incident->id, incident_id) == 0) {
      g_ptr_array_index (hub->incidents, i) = cims_incident_copy (updated);
      cims_incident_free (incident);
    }
  }

  cims_hub_audit_incident (hub, "incident-ended", actor, updated, NULL);
  *n_ended = cims_hub_access_recheck_all (hub, CIMS_ACCESS_TRIGGER_INCIDENT_ENDED);
  g_message ("major incident %s ended by %s (%s); sessions ended: %u", incident_id, actor->subject,
             actor->jurisdiction, *n_ended);
  return TRUE;
}

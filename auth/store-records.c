/* SPDX-License-Identifier: Apache-2.0 */
/* The store's value types: copying, freeing, time-window checks, names of
 * enum values and the checks made before a record is stored. Reading and
 * writing them is the backends' work. */

#include "auth/store.h"

#include "auth/store-private.h"

/* ---- grants ---------------------------------------------------------------- */

/* Copies @grant and every string it points to.
 * Returns: (transfer full) */
CimsGrant *
cims_grant_copy (const CimsGrant *grant)
{
  CimsGrant *copy;

  g_return_val_if_fail (grant != NULL, NULL);

  copy = g_new0 (CimsGrant, 1);
  *copy = *grant;
  copy->id = g_strdup (grant->id);
  copy->owner = g_strdup (grant->owner);
  copy->grantee = g_strdup (grant->grantee);
  copy->grantee_group = g_strdup (grant->grantee_group);
  copy->cameras = g_strdupv (grant->cameras);
  copy->purpose = g_strdup (grant->purpose);
  copy->incident_number = g_strdup (grant->incident_number);
  copy->authorized_by = g_strdup (grant->authorized_by);
  copy->authorized_by_name = g_strdup (grant->authorized_by_name);
  copy->revoked_by = g_strdup (grant->revoked_by);

  return copy;
}

/* Frees @grant (transfer full) and its strings. NULL is allowed. */
void
cims_grant_free (CimsGrant *grant)
{
  if (grant == NULL)
    return;

  g_free (grant->id);
  g_free (grant->owner);
  g_free (grant->grantee);
  g_free (grant->grantee_group);
  g_strfreev (grant->cameras);
  g_free (grant->purpose);
  g_free (grant->incident_number);
  g_free (grant->authorized_by);
  g_free (grant->authorized_by_name);
  g_free (grant->revoked_by);
  g_free (grant);
}

/* Whether a revocation or early end recorded at @at_us has taken effect by
 * @now_us. 0 means none was recorded. */
static gboolean
stopped_by (gint64 at_us, gint64 now_us)
{
  return at_us > 0 && at_us <= now_us;
}

gboolean
cims_grant_is_active (const CimsGrant *grant, gint64 now_us)
{
  g_return_val_if_fail (grant != NULL, FALSE);

  if (grant->is_disputed || now_us < grant->starts_at_us || now_us >= grant->ends_at_us)
    return FALSE;

  return !stopped_by (grant->revoked_at_us, now_us);
}

static gboolean
camera_list_covers (char **cameras, const char *camera_id)
{
  if (cameras == NULL)
    return TRUE;

  return g_strv_contains ((const char *const *) cameras, camera_id);
}

gboolean
cims_grant_covers_camera (const CimsGrant *grant, const char *camera_id)
{
  g_return_val_if_fail (grant != NULL, FALSE);
  g_return_val_if_fail (camera_id != NULL, FALSE);

  return camera_list_covers (grant->cameras, camera_id);
}

const char *
cims_grantee_kind_to_string (CimsGranteeKind kind)
{
  return kind == CIMS_GRANTEE_AGENCY ? "agency" : "jurisdiction";
}

gboolean
cims_grantee_kind_from_string (const char *name, CimsGranteeKind *out)
{
  if (g_strcmp0 (name, "jurisdiction") == 0)
    *out = CIMS_GRANTEE_JURISDICTION;
  else if (g_strcmp0 (name, "agency") == 0)
    *out = CIMS_GRANTEE_AGENCY;
  else
    return FALSE;

  return TRUE;
}

/* ---- incidents ------------------------------------------------------------- */

/* Copies @incident and every string it points to.
 * Returns: (transfer full) */
CimsIncident *
cims_incident_copy (const CimsIncident *incident)
{
  CimsIncident *copy;

  g_return_val_if_fail (incident != NULL, NULL);

  copy = g_new0 (CimsIncident, 1);
  *copy = *incident;
  copy->id = g_strdup (incident->id);
  copy->owner = g_strdup (incident->owner);
  copy->incident_number = g_strdup (incident->incident_number);
  copy->cameras = g_strdupv (incident->cameras);
  copy->partners = g_strdupv (incident->partners);
  copy->description = g_strdup (incident->description);
  copy->declared_by = g_strdup (incident->declared_by);
  copy->declared_by_name = g_strdup (incident->declared_by_name);
  copy->ended_by = g_strdup (incident->ended_by);

  return copy;
}

/* Frees @incident (transfer full) and its strings. NULL is allowed. */
void
cims_incident_free (CimsIncident *incident)
{
  if (incident == NULL)
    return;

  g_free (incident->id);
  g_free (incident->owner);
  g_free (incident->incident_number);
  g_strfreev (incident->cameras);
  g_strfreev (incident->partners);
  g_free (incident->description);
  g_free (incident->declared_by);
  g_free (incident->declared_by_name);
  g_free (incident->ended_by);
  g_free (incident);
}

gboolean
cims_incident_is_active (const CimsIncident *incident, gint64 now_us)
{
  g_return_val_if_fail (incident != NULL, FALSE);

  if (incident->is_disputed || now_us < incident->starts_at_us || now_us >= incident->ends_at_us)
    return FALSE;

  return !stopped_by (incident->ended_at_us, now_us);
}

gboolean
cims_incident_covers_camera (const CimsIncident *incident, const char *camera_id)
{
  g_return_val_if_fail (incident != NULL, FALSE);
  g_return_val_if_fail (camera_id != NULL, FALSE);

  return camera_list_covers (incident->cameras, camera_id);
}

/* ---- archive-footage requests ---------------------------------------------- */

/* Copies @request and every string it points to.
 * Returns: (transfer full) */
CimsArchiveRequest *
cims_archive_request_copy (const CimsArchiveRequest *request)
{
  CimsArchiveRequest *copy;

  g_return_val_if_fail (request != NULL, NULL);

  copy = g_new0 (CimsArchiveRequest, 1);
  *copy = *request;
  copy->id = g_strdup (request->id);
  copy->camera_id = g_strdup (request->camera_id);
  copy->owner = g_strdup (request->owner);
  copy->requester_id = g_strdup (request->requester_id);
  copy->requester_name = g_strdup (request->requester_name);
  copy->incident_number = g_strdup (request->incident_number);
  copy->purpose = g_strdup (request->purpose);
  copy->decided_by = g_strdup (request->decided_by);
  copy->legal_reviewed_by = g_strdup (request->legal_reviewed_by);
  copy->decision_note = g_strdup (request->decision_note);

  return copy;
}

/* Frees @request (transfer full) and its strings. NULL is allowed. */
void
cims_archive_request_free (CimsArchiveRequest *request)
{
  if (request == NULL)
    return;

  g_free (request->id);
  g_free (request->camera_id);
  g_free (request->owner);
  g_free (request->requester_id);
  g_free (request->requester_name);
  g_free (request->incident_number);
  g_free (request->purpose);
  g_free (request->decided_by);
  g_free (request->legal_reviewed_by);
  g_free (request->decision_note);
  g_free (request);
}

static const char *const requester_kind_names[] = {
  [CIMS_ARCHIVE_REQUESTER_JURISDICTION] = "jurisdiction",
  [CIMS_ARCHIVE_REQUESTER_AGENCY] = "agency",
  [CIMS_ARCHIVE_REQUESTER_CIVILIAN] = "civilian",
};

static const char *const archive_state_names[] = {
  [CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW] = "pending-legal-review",
  [CIMS_ARCHIVE_STATE_PENDING_APPROVAL] = "pending-approval",
  [CIMS_ARCHIVE_STATE_APPROVED] = "approved",
  [CIMS_ARCHIVE_STATE_DENIED] = "denied",
};

const char *
cims_archive_requester_kind_to_string (CimsArchiveRequesterKind kind)
{
  g_return_val_if_fail ((guint) kind < G_N_ELEMENTS (requester_kind_names), NULL);

  return requester_kind_names[kind];
}

gboolean
cims_archive_requester_kind_from_string (const char *name, CimsArchiveRequesterKind *out)
{
  for (guint i = 0; i < G_N_ELEMENTS (requester_kind_names); i++) {
    if (g_strcmp0 (name, requester_kind_names[i]) == 0) {
      *out = (CimsArchiveRequesterKind) i;
      return TRUE;
    }
  }

  return FALSE;
}

const char *
cims_archive_state_to_string (CimsArchiveState state)
{
  g_return_val_if_fail ((guint) state < G_N_ELEMENTS (archive_state_names), NULL);

  return archive_state_names[state];
}

gboolean
cims_archive_state_from_string (const char *name, CimsArchiveState *out)
{
  for (guint i = 0; i < G_N_ELEMENTS (archive_state_names); i++) {
    if (g_strcmp0 (name, archive_state_names[i]) == 0) {
      *out = (CimsArchiveState) i;
      return TRUE;
    }
  }

  return FALSE;
}

gboolean
cims_archive_state_can_move (CimsArchiveState from, CimsArchiveState to)
{
  switch (from) {
  case CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW:
    return to == CIMS_ARCHIVE_STATE_PENDING_APPROVAL || to == CIMS_ARCHIVE_STATE_DENIED;
  case CIMS_ARCHIVE_STATE_PENDING_APPROVAL:
    return to == CIMS_ARCHIVE_STATE_APPROVED || to == CIMS_ARCHIVE_STATE_DENIED;
  case CIMS_ARCHIVE_STATE_APPROVED:
  case CIMS_ARCHIVE_STATE_DENIED:
  default:
    return FALSE;
  }
}

/* ---- audit records --------------------------------------------------------- */

const char *const cims_audit_events[] = {
  "hub-started", "hub-stopped", "config-loaded", "config-rejected",
  "session-start", "session-allowance-changed", "session-stop", "request-denied",
  "grant-created", "grant-revoked", "incident-started", "incident-ended",
  "camera-restricted", "camera-out-of-service", "camera-removed",
  "archive-requested", "archive-legal-reviewed", "archive-approved", "archive-denied",
  "audit-log-mismatch",
  NULL
};

gboolean
cims_audit_event_is_known (const char *event)
{
  return event != NULL && g_strv_contains (cims_audit_events, event);
}

CimsAuditRecord *
cims_audit_record_copy (const CimsAuditRecord *record)
{
  CimsAuditRecord *copy;

  g_return_val_if_fail (record != NULL, NULL);

  copy = g_new0 (CimsAuditRecord, 1);
  *copy = *record;
  copy->event = g_strdup (record->event);
  copy->person_id = g_strdup (record->person_id);
  copy->person_name = g_strdup (record->person_name);
  copy->person_jurisdiction = g_strdup (record->person_jurisdiction);
  copy->camera_id = g_strdup (record->camera_id);
  copy->camera_owner = g_strdup (record->camera_owner);
  copy->camera_location = g_strdup (record->camera_location);
  copy->session_id = g_strdup (record->session_id);
  copy->grant_id = g_strdup (record->grant_id);
  copy->incident_id = g_strdup (record->incident_id);
  copy->incident_number = g_strdup (record->incident_number);
  copy->viewer_address = g_strdup (record->viewer_address);
  copy->client_version = g_strdup (record->client_version);
  copy->reason = g_strdup (record->reason);
  copy->details = g_strdup (record->details);
  copy->previous_hash = g_strdup (record->previous_hash);
  copy->hash = g_strdup (record->hash);

  return copy;
}

/* Frees @record (transfer full) and its strings. NULL is allowed. */
void
cims_audit_record_free (CimsAuditRecord *record)
{
  if (record == NULL)
    return;

  g_free (record->event);
  g_free (record->person_id);
  g_free (record->person_name);
  g_free (record->person_jurisdiction);
  g_free (record->camera_id);
  g_free (record->camera_owner);
  g_free (record->camera_location);
  g_free (record->session_id);
  g_free (record->grant_id);
  g_free (record->incident_id);
  g_free (record->incident_number);
  g_free (record->viewer_address);
  g_free (record->client_version);
  g_free (record->reason);
  g_free (record->details);
  g_free (record->previous_hash);
  g_free (record->hash);
  g_free (record);
}

/* ---- checks before storing ------------------------------------------------- */

/* Fails when @value is NULL or empty. @record_name names the record in the
 * message, e.g. "grant for owner boston". */
static gboolean
require_text (const char *value, const char *field, const char *operation, const char *record_name,
              GError **error)
{
  if (value != NULL && value[0] != '\0')
    return TRUE;

  g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID,
               "Cannot %s %s: %s is missing", operation, record_name, field);
  return FALSE;
}

static gboolean
require_window (gint64 starts_at_us, gint64 ends_at_us, const char *operation, const char *record_name,
                GError **error)
{
  g_autofree char *start_text = NULL;
  g_autofree char *end_text = NULL;

  if (starts_at_us < ends_at_us)
    return TRUE;

  start_text = cims_store_time_format (starts_at_us);
  end_text = cims_store_time_format (ends_at_us);
  g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID,
               "Cannot %s %s: it ends (%s) no later than it starts (%s)", operation, record_name,
               end_text, start_text);
  return FALSE;
}

/* An empty list would cover nothing, which no caller means: NULL is "all". */
static gboolean
require_list_not_empty (char **list, const char *field, const char *operation, const char *record_name,
                        GError **error)
{
  if (list == NULL || list[0] != NULL)
    return TRUE;

  g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID,
               "Cannot %s %s: %s is an empty list; leave it unset to mean all", operation,
               record_name, field);
  return FALSE;
}

gboolean
cims_store_grant_validate (const CimsGrant *grant, GError **error)
{
  g_autofree char *record_name = g_strdup_printf ("grant for owner %s",
                                           grant->owner != NULL ? grant->owner : "(none)");
  const char *op = "insert";

  return require_text (grant->owner, "owner", op, record_name, error) &&
         require_text (grant->grantee, "grantee", op, record_name, error) &&
         require_text (grant->purpose, "purpose", op, record_name, error) &&
         require_text (grant->authorized_by, "authorized_by", op, record_name, error) &&
         require_list_not_empty (grant->cameras, "cameras", op, record_name, error) &&
         require_window (grant->starts_at_us, grant->ends_at_us, op, record_name, error);
}

gboolean
cims_store_incident_validate (const CimsIncident *incident, GError **error)
{
  g_autofree char *record_name = g_strdup_printf ("incident %s of owner %s",
                                           incident->incident_number != NULL
                                             ? incident->incident_number : "(no number)",
                                           incident->owner != NULL ? incident->owner : "(none)");
  const char *op = "insert";

  return require_text (incident->owner, "owner", op, record_name, error) &&
         require_text (incident->incident_number, "incident_number", op, record_name, error) &&
         require_text (incident->declared_by, "declared_by", op, record_name, error) &&
         require_list_not_empty (incident->cameras, "cameras", op, record_name, error) &&
         require_list_not_empty (incident->partners, "partners", op, record_name, error) &&
         require_window (incident->starts_at_us, incident->ends_at_us, op, record_name, error);
}

gboolean
cims_store_archive_request_validate (const CimsArchiveRequest *request, GError **error)
{
  g_autofree char *record_name = g_strdup_printf ("archive request for camera %s",
                                           request->camera_id != NULL
                                             ? request->camera_id : "(none)");
  const char *op = "insert";

  if ((guint) request->requester_kind >= G_N_ELEMENTS (requester_kind_names)) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID,
                 "Cannot insert %s: requester kind %d is unknown", record_name,
                 (int) request->requester_kind);
    return FALSE;
  }

  return require_text (request->camera_id, "camera_id", op, record_name, error) &&
         require_text (request->owner, "owner", op, record_name, error) &&
         require_text (request->requester_id, "requester_id", op, record_name, error) &&
         require_text (request->requester_name, "requester_name", op, record_name, error) &&
         require_text (request->purpose, "purpose", op, record_name, error) &&
         require_window (request->from_us, request->to_us, op, record_name, error);
}

/* The canonical form hashes bytes, so text must be UTF-8 for two backends
 * (or a re-read through another driver) to agree on it. */
static gboolean
audit_field_is_utf8 (const char *value, const char *field, const char *event, GError **error)
{
  if (value == NULL || g_utf8_validate (value, -1, NULL))
    return TRUE;

  g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID,
               "Cannot append audit record %s: %s is not valid UTF-8", event, field);
  return FALSE;
}

gboolean
cims_store_audit_record_validate (const CimsAuditRecord *record, GError **error)
{
  const char *event = record->event != NULL ? record->event : "(no event)";
  const struct { const char *name; const char *value; } fields[] = {
    { "event", record->event },
    { "person_id", record->person_id },
    { "person_name", record->person_name },
    { "person_jurisdiction", record->person_jurisdiction },
    { "camera_id", record->camera_id },
    { "camera_owner", record->camera_owner },
    { "camera_location", record->camera_location },
    { "session_id", record->session_id },
    { "grant_id", record->grant_id },
    { "incident_id", record->incident_id },
    { "incident_number", record->incident_number },
    { "viewer_address", record->viewer_address },
    { "client_version", record->client_version },
    { "reason", record->reason },
    { "details", record->details },
  };

  if (!require_text (record->event, "event", "append", "audit record", error))
    return FALSE;

  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++) {
    if (!audit_field_is_utf8 (fields[i].value, fields[i].name, event, error))
      return FALSE;
  }

  return TRUE;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The store's public entry points: argument checks, then dispatch through the
 * backend's table of functions. Also the ids and time texts every backend
 * uses. The SQLite backend lives in store-sqlite*.c. */

#include "auth/store.h"

#include <openssl/rand.h>

#include "auth/auth.h"
#include "auth/auth-private.h"
#include "auth/store-private.h"

G_DEFINE_QUARK (cims-store-error-quark, cims_store_error)

/* Bytes of randomness in a record id: 8 bytes give 16 hex digits. */
#define STORE_ID_RANDOM_BYTES 8

char *
cims_store_id_new (const char *prefix, GError **error)
{
  guint8 bytes[STORE_ID_RANDOM_BYTES];
  GString *id = g_string_new (prefix);

  if (RAND_bytes (bytes, sizeof bytes) != 1) {
    g_autofree char *detail = cims_auth_describe_openssl_error ();
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_WRITE,
                 "Cannot make a new %s id: RAND_bytes() failed: %s", prefix, detail);
    g_string_free (id, TRUE);
    return NULL;
  }

  for (gsize i = 0; i < sizeof bytes; i++)
    g_string_append_printf (id, "%02x", bytes[i]);

  return g_string_free (id, FALSE);
}

char *
cims_store_time_format (gint64 time_us)
{
  char *text;

  if (time_us == G_MAXINT64)
    return g_strdup ("never");

  text = cims_auth_time_text (time_us);
  return text != NULL ? text : g_strdup_printf ("%" G_GINT64_FORMAT " us", time_us);
}

/* Frees the store and closes its backend. Must not race with other calls
 * on the same store. */
void
cims_store_free (CimsStore *store)
{
  if (store == NULL)
    return;

  store->backend->close (store);
  g_free (store);
}

/* ---- grants ---------------------------------------------------------------- */

/* Every function below may be called from any thread: the backend serialises
 * access to its connection. Ownership is as documented in store.h. */

gboolean
cims_store_grant_insert (CimsStore *store, CimsGrant *grant, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (grant != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!cims_store_grant_validate (grant, error))
    return FALSE;

  return store->backend->grant_insert (store, grant, error);
}

gboolean
cims_store_grant_revoke (CimsStore *store, const char *grant_id, const char *revoked_by,
                         gint64 revoked_at_us, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (grant_id != NULL, FALSE);
  g_return_val_if_fail (revoked_by != NULL, FALSE);
  g_return_val_if_fail (revoked_at_us > 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return store->backend->grant_revoke (store, grant_id, revoked_by, revoked_at_us, error);
}

CimsGrant *
cims_store_grant_get (CimsStore *store, const char *grant_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (grant_id != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return store->backend->grant_get (store, grant_id, error);
}

GPtrArray *
cims_store_grant_list (CimsStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return store->backend->grant_list (store, error);
}

/* ---- incidents ------------------------------------------------------------- */

gboolean
cims_store_incident_insert (CimsStore *store, CimsIncident *incident, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (incident != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!cims_store_incident_validate (incident, error))
    return FALSE;

  return store->backend->incident_insert (store, incident, error);
}

gboolean
cims_store_incident_end (CimsStore *store, const char *incident_id, const char *ended_by,
                         gint64 ended_at_us, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (incident_id != NULL, FALSE);
  g_return_val_if_fail (ended_by != NULL, FALSE);
  g_return_val_if_fail (ended_at_us > 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return store->backend->incident_end (store, incident_id, ended_by, ended_at_us, error);
}

CimsIncident *
cims_store_incident_get (CimsStore *store, const char *incident_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (incident_id != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return store->backend->incident_get (store, incident_id, error);
}

GPtrArray *
cims_store_incident_list (CimsStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return store->backend->incident_list (store, error);
}

/* ---- archive-footage requests ---------------------------------------------- */

gboolean
cims_store_archive_request_insert (CimsStore *store, CimsArchiveRequest *request, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (request != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!cims_store_archive_request_validate (request, error))
    return FALSE;

  return store->backend->archive_request_insert (store, request, error);
}

CimsArchiveRequest *
cims_store_archive_request_get (CimsStore *store, const char *request_id, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (request_id != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return store->backend->archive_request_get (store, request_id, error);
}

GPtrArray *
cims_store_archive_request_list (CimsStore *store, GError **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return store->backend->archive_request_list (store, error);
}

gboolean
cims_store_archive_request_update_state (CimsStore *store, const char *request_id,
                                         CimsArchiveState expected_state,
                                         CimsArchiveState new_state, const char *actor,
                                         gint64 at_us, const char *note, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (request_id != NULL, FALSE);
  g_return_val_if_fail (actor != NULL, FALSE);
  g_return_val_if_fail (at_us > 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!cims_archive_state_can_move (expected_state, new_state)) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT,
                 "Cannot move archive request %s from %s to %s: that change is not allowed",
                 request_id, cims_archive_state_to_string (expected_state),
                 cims_archive_state_to_string (new_state));
    return FALSE;
  }

  return store->backend->archive_request_update_state (store, request_id, expected_state,
                                                       new_state, actor, at_us, note, error);
}

/* ---- audit log ------------------------------------------------------------- */

gboolean
cims_store_audit_append (CimsStore *store, CimsAuditRecord *record, GError **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (record != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!cims_store_audit_record_validate (record, error))
    return FALSE;

  return store->backend->audit_append (store, record, error);
}

GPtrArray *
cims_store_audit_query (CimsStore *store, const CimsAuditFilter *filter, GError **error)
{
  CimsAuditFilter everything = { 0 };

  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return store->backend->audit_query (store, filter != NULL ? filter : &everything, error);
}

gboolean
cims_store_audit_foreach (CimsStore *store, const CimsAuditFilter *filter, CimsAuditRecordFunc func,
                          gpointer user_data, GCancellable *cancellable, GError **error)
{
  CimsAuditFilter everything = { 0 };

  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (func != NULL, FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return store->backend->audit_foreach (store, filter != NULL ? filter : &everything, func,
                                        user_data, cancellable, error);
}

gboolean
cims_store_audit_verify (CimsStore *store, guint64 *first_bad_sequence, GError **error)
{
  guint64 ignored = 0;

  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (first_bad_sequence == NULL)
    first_bad_sequence = &ignored;
  *first_bad_sequence = 0;

  return store->backend->audit_verify (store, first_bad_sequence, error);
}

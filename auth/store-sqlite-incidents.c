/* SPDX-License-Identifier: Apache-2.0 */
/* Major incidents in the SQLite store: insert, end early, get and list. The
 * incident type's own helpers are in store-records.c. */

#include "auth/store.h"

#include "auth/store-private.h"

/* Column order shared by every SELECT of an incident and incident_from_row. */
#define INCIDENT_COLUMNS \
  "id, owner, incident_number, cameras, partners, starts_at_us, ends_at_us, description, " \
  "declared_by, declared_by_name, ended_by, ended_at_us"

static const char sql_incident_insert[] =
  "INSERT INTO incidents (" INCIDENT_COLUMNS ") "
  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, 0)";

/* Only an incident not yet ended changes, so two ends cannot both win. */
static const char sql_incident_end[] =
  "UPDATE incidents SET ended_by = ?2, ended_at_us = ?3 WHERE id = ?1 AND ended_at_us = 0";

static const char sql_incident_get[] =
  "SELECT " INCIDENT_COLUMNS " FROM incidents WHERE id = ?1";

static const char sql_incident_list[] =
  "SELECT " INCIDENT_COLUMNS " FROM incidents ORDER BY starts_at_us DESC, rowid DESC";

static CimsIncident *
incident_from_row (sqlite3_stmt *stmt, GError **error)
{
  g_autoptr(CimsIncident) incident = g_new0 (CimsIncident, 1);
  g_autofree char *cameras = NULL;
  g_autofree char *partners = NULL;

  incident->id = cims_store_sqlite_column_dup (stmt, 0);
  incident->owner = cims_store_sqlite_column_dup (stmt, 1);
  incident->incident_number = cims_store_sqlite_column_dup (stmt, 2);
  cameras = cims_store_sqlite_column_dup (stmt, 3);
  partners = cims_store_sqlite_column_dup (stmt, 4);
  incident->starts_at_us = sqlite3_column_int64 (stmt, 5);
  incident->ends_at_us = sqlite3_column_int64 (stmt, 6);
  incident->description = cims_store_sqlite_column_dup (stmt, 7);
  incident->declared_by = cims_store_sqlite_column_dup (stmt, 8);
  incident->declared_by_name = cims_store_sqlite_column_dup (stmt, 9);
  incident->ended_by = cims_store_sqlite_column_dup (stmt, 10);
  incident->ended_at_us = sqlite3_column_int64 (stmt, 11);

  if (!cims_store_sqlite_strv_from_json (cameras, &incident->cameras, error)) {
    g_prefix_error (error, "Cannot read incident %s: camera ", incident->id);
    return NULL;
  }

  if (!cims_store_sqlite_strv_from_json (partners, &incident->partners, error)) {
    g_prefix_error (error, "Cannot read incident %s: partner ", incident->id);
    return NULL;
  }

  return g_steal_pointer (&incident);
}

static gboolean
incident_bind_insert (sqlite3_stmt *stmt, const CimsIncident *incident)
{
  g_autofree char *cameras = cims_store_sqlite_strv_to_json (incident->cameras);
  g_autofree char *partners = cims_store_sqlite_strv_to_json (incident->partners);

  return cims_store_sqlite_bind_text (stmt, 1, incident->id) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 2, incident->owner) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 3, incident->incident_number) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 4, cameras) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 5, partners) == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 6, incident->starts_at_us) == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 7, incident->ends_at_us) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 8, incident->description) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 9, incident->declared_by) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 10, incident->declared_by_name) == SQLITE_OK;
}

/* Stores @incident as a new incident that has not ended early and sets
 * incident->id (replacing any id it had). */
gboolean
cims_store_sqlite_incident_insert (CimsStore *store, CimsIncident *incident, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  g_autofree char *id = cims_store_id_new ("i-", error);

  if (id == NULL)
    return FALSE;

  stmt = cims_store_sqlite_statement_get (sq, sql_incident_insert, CIMS_STORE_ERROR_WRITE,
                                          error);
  if (stmt == NULL)
    return FALSE;

  g_free (incident->id);
  incident->id = g_steal_pointer (&id);

  if (!incident_bind_insert (stmt, incident) || sqlite3_step (stmt) != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE,
                                 "Cannot insert incident %s (number %s) of owner %s",
                                 incident->id, incident->incident_number, incident->owner);
    g_clear_pointer (&incident->id, g_free);
    return FALSE;
  }

  g_clear_pointer (&incident->ended_by, g_free);
  incident->ended_at_us = 0;

  return TRUE;
}

/* Call with sq->lock held. Sets NOT_FOUND when no incident has @incident_id. */
static CimsIncident *
incident_get_locked (CimsStoreSqlite *sq, const char *incident_id, GError **error)
{
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  int rc;

  stmt = cims_store_sqlite_statement_get (sq, sql_incident_get, CIMS_STORE_ERROR_READ, error);
  if (stmt == NULL)
    return NULL;

  cims_store_sqlite_bind_text (stmt, 1, incident_id);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND,
                 "Cannot find incident %s: no incident has that id", incident_id);
    return NULL;
  }
  if (rc != SQLITE_ROW) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ, "Cannot read incident %s",
                                 incident_id);
    return NULL;
  }

  return incident_from_row (stmt, error);
}

/* Explains why an end changed no row: the incident is unknown or was
 * already ended. */
static void
incident_end_explain (CimsStoreSqlite *sq, const char *incident_id, GError **error)
{
  g_autoptr(GError) get_error = NULL;
  g_autoptr(CimsIncident) incident = incident_get_locked (sq, incident_id, &get_error);
  g_autofree char *ended_at = NULL;

  if (incident == NULL) {
    g_set_error (error, CIMS_STORE_ERROR, get_error->code, "Cannot end incident %s: %s",
                 incident_id,
                 get_error->code == CIMS_STORE_ERROR_NOT_FOUND ? "no incident has that id"
                                                                : get_error->message);
    return;
  }

  ended_at = cims_store_time_format (incident->ended_at_us);
  g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT,
               "Cannot end incident %s: it was already ended at %s by %s", incident_id,
               ended_at, incident->ended_by != NULL ? incident->ended_by : "(unknown)");
}

gboolean
cims_store_sqlite_incident_end (CimsStore *store, const char *incident_id, const char *ended_by,
                                gint64 ended_at_us, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;

  stmt = cims_store_sqlite_statement_get (sq, sql_incident_end, CIMS_STORE_ERROR_WRITE, error);
  if (stmt == NULL)
    return FALSE;

  cims_store_sqlite_bind_text (stmt, 1, incident_id);
  cims_store_sqlite_bind_text (stmt, 2, ended_by);
  sqlite3_bind_int64 (stmt, 3, ended_at_us);
  if (sqlite3_step (stmt) != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE, "Cannot end incident %s",
                                 incident_id);
    return FALSE;
  }

  if (sqlite3_changes (sq->db) == 0) {
    incident_end_explain (sq, incident_id, error);
    return FALSE;
  }

  return TRUE;
}

CimsIncident *
cims_store_sqlite_incident_get (CimsStore *store, const char *incident_id, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);

  return incident_get_locked (sq, incident_id, error);
}

GPtrArray *
cims_store_sqlite_incident_list (CimsStore *store, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  g_autoptr(GPtrArray) incidents =
    g_ptr_array_new_with_free_func ((GDestroyNotify) cims_incident_free);
  int rc;

  stmt = cims_store_sqlite_statement_get (sq, sql_incident_list, CIMS_STORE_ERROR_READ, error);
  if (stmt == NULL)
    return NULL;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
    CimsIncident *incident = incident_from_row (stmt, error);

    if (incident == NULL)
      return NULL;
    g_ptr_array_add (incidents, incident);
  }

  if (rc != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ, "Cannot list incidents");
    return NULL;
  }

  return g_steal_pointer (&incidents);
}
